//! Drives document sync between the network and the rooms: the only module that knows both.
//! It validates and applies gossip, publishes local edits, serves `/peerdoc/sync/1` requests
//! (chunked diffs), pulls from peers that share a document when they appear and periodically
//! (anti-entropy, because gossip can drop messages), and redials known peers.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use libp2p::gossipsub::MessageAcceptance;
use libp2p::request_response::ResponseChannel;
use libp2p::{Multiaddr, PeerId};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::actor::ask;
use crate::doc::{parse_topic_name, sv_has_unseen, DocError, DocId};
use crate::envelope::Purpose;
use crate::net::{Net, NetError, NetEvent};
use crate::room::{Origin, Outgoing, RoomError, RoomHandle, Rooms};
use crate::store::Store;
use crate::sync::{
    chunk_response, open_request, Progress, Pull, PullError, RequestBody, SyncError, SyncRequest,
    SyncResponse, Transfers, YMessage, CHUNK_SIZE,
};

#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    #[error(transparent)]
    Net(#[from] NetError),
    #[error(transparent)]
    Room(#[from] RoomError),
    #[error("peer sent an invalid state vector: {0}")]
    Doc(#[from] DocError),
    #[error("pull from {peer} failed: {source}")]
    Pull { peer: PeerId, source: PullError },
}

/// Timing of background sync work.
#[derive(Debug, Clone)]
pub struct SyncTiming {
    /// Anti-entropy: pull every document from every peer sharing it this often.
    pub sync_interval: Duration,
    /// Reconnect to known peers that are not connected this often.
    pub redial_interval: Duration,
}

/// Result of one completed pull.
#[derive(Debug, Clone)]
pub struct PullOutcome {
    /// Our replica changed.
    pub changed: bool,
    /// Both replicas have seen the same operations (state vectors equal) after the pull.
    pub in_sync: bool,
}

/// Sync state of one document with one peer, for `status`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PeerDocState {
    pub peer: String,
    /// Seconds since the last completed pull from this peer, if any.
    pub last_sync_secs: Option<u64>,
    /// The last pull found both replicas at the same state vector.
    pub in_sync: bool,
}

/// Pulls what `peer` has of `room`'s document and we lack. Returns once applied.
pub async fn pull(net: &Net, room: &RoomHandle, peer: PeerId) -> Result<PullOutcome, PeerError> {
    let local_sv = room.state_vector().await?;
    let (mut session, mut request) = Pull::start(room.key.clone(), room.topic, local_sv);
    loop {
        let response = net.request(peer, request).await?;
        let progress = session
            .on_response(&response)
            .map_err(|source| PeerError::Pull { peer, source })?;
        match progress {
            Progress::Send(next) => request = next,
            Progress::Done { update, remote_sv } => {
                let applied = room.apply_remote(update).await?;
                let local_sv = room.state_vector().await?;
                let in_sync = !sv_has_unseen(&local_sv, &remote_sv)?
                    && !sv_has_unseen(&remote_sv, &local_sv)?;
                return Ok(PullOutcome {
                    changed: applied.delta.is_some(),
                    in_sync,
                });
            }
        }
    }
}

/// Answers one sync request. Also returns the document it was for and whether the requester's
/// state vector shows operations we lack (then the caller pulls them back).
async fn serve(
    rooms: &Rooms,
    transfers: &Mutex<Transfers>,
    data: &[u8],
) -> (SyncResponse, Option<(DocId, bool)>) {
    let Ok(request) = SyncRequest::decode(data) else {
        return (SyncResponse::BadRequest, None);
    };
    let Some(room) = rooms.by_topic(&request.topic) else {
        return (SyncResponse::UnknownDoc, None);
    };
    let body = match open_request(&room.key, &request) {
        Ok(body) => body,
        Err(e) => {
            tracing::warn!(doc = %room.id, "rejected sync request: {e}");
            return (SyncResponse::BadRequest, None);
        }
    };
    let (chunk, requester_ahead) = match body {
        RequestBody::Start { sv } => match room.diff(sv.clone()).await {
            Ok((diff, local_sv)) => {
                let ahead = sv_has_unseen(&local_sv, &sv).unwrap_or(false);
                let chunk = lock(transfers).start(diff, local_sv, CHUNK_SIZE);
                (Some(chunk), ahead)
            }
            Err(e) => {
                tracing::warn!(doc = %room.id, "cannot serve sync: {e}");
                return (SyncResponse::BadRequest, None);
            }
        },
        RequestBody::Continue { transfer, offset } => {
            (lock(transfers).chunk(transfer, offset, CHUNK_SIZE), false)
        }
    };
    let response = chunk_response(&room.key, &room.topic, chunk);
    (response, Some((room.id, requester_ahead)))
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

enum Command {
    Status(oneshot::Sender<HashMap<DocId, Vec<PeerDocState>>>),
    /// A document was opened: pull it from peers already known to share it.
    Opened(DocId),
}

/// Handle to the sync driver task.
#[derive(Clone)]
pub struct Syncer {
    tx: mpsc::Sender<Command>,
}

impl Syncer {
    /// Per-document sync state with each peer sharing it.
    pub async fn status(&self) -> HashMap<DocId, Vec<PeerDocState>> {
        ask(&self.tx, Command::Status).await.unwrap_or_default()
    }

    pub async fn opened(&self, doc: DocId) {
        let _ = self.tx.send(Command::Opened(doc)).await;
    }
}

/// Everything the driver task works with.
pub struct Driver {
    pub net: Net,
    pub rooms: Rooms,
    pub store: Store,
    pub timing: SyncTiming,
    /// Extra peers to keep connected (`--bootstrap`), besides the known peers in the store.
    pub bootstrap: Vec<(PeerId, Vec<Multiaddr>)>,
}

struct PullDone {
    peer: PeerId,
    doc: DocId,
    result: Result<PullOutcome, PeerError>,
}

struct State {
    d: Driver,
    topic_peers: HashMap<[u8; 32], HashSet<PeerId>>,
    in_flight: HashSet<(PeerId, DocId)>,
    synced: HashMap<(DocId, PeerId), (Instant, bool)>,
    transfers: Arc<Mutex<Transfers>>,
    done_tx: mpsc::Sender<PullDone>,
    ahead_tx: mpsc::Sender<(PeerId, DocId)>,
}

impl Driver {
    /// Starts the driver; it runs until `cancel` fires.
    pub fn spawn(
        self,
        mut events: mpsc::Receiver<NetEvent>,
        mut outbox: mpsc::Receiver<Outgoing>,
        cancel: CancellationToken,
    ) -> (Syncer, tokio::task::JoinHandle<()>) {
        let (tx, mut commands) = mpsc::channel(64);
        let (done_tx, mut done_rx) = mpsc::channel(256);
        let (ahead_tx, mut ahead_rx) = mpsc::channel(256);
        let mut sync_tick = tokio::time::interval(self.timing.sync_interval);
        let mut redial_tick = tokio::time::interval(self.timing.redial_interval);
        sync_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        redial_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut state = State {
            d: self,
            topic_peers: HashMap::new(),
            in_flight: HashSet::new(),
            synced: HashMap::new(),
            transfers: Arc::new(Mutex::new(Transfers::default())),
            done_tx,
            ahead_tx,
        };
        let task = tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    Some(event) = events.recv() => state.on_net_event(event).await,
                    Some(out) = outbox.recv() => state.publish(out).await,
                    Some(cmd) = commands.recv() => state.on_command(cmd),
                    Some(done) = done_rx.recv() => state.on_pull_done(done),
                    Some((peer, doc)) = ahead_rx.recv() => state.start_pull(peer, doc),
                    _ = sync_tick.tick() => state.anti_entropy(),
                    _ = redial_tick.tick() => state.redial(),
                }
            }
            tracing::debug!("sync driver stopped");
        });
        (Syncer { tx }, task)
    }
}

impl State {
    fn on_command(&mut self, cmd: Command) {
        match cmd {
            Command::Status(reply) => {
                let mut out: HashMap<DocId, Vec<PeerDocState>> = HashMap::new();
                for room in self.d.rooms.all() {
                    let peers = self
                        .topic_peers
                        .get(&room.topic)
                        .cloned()
                        .unwrap_or_default();
                    let states = peers
                        .into_iter()
                        .map(|peer| {
                            let s = self.synced.get(&(room.id, peer));
                            PeerDocState {
                                peer: peer.to_string(),
                                last_sync_secs: s.map(|(t, _)| t.elapsed().as_secs()),
                                in_sync: s.map(|(_, ok)| *ok).unwrap_or(false),
                            }
                        })
                        .collect();
                    out.insert(room.id, states);
                }
                let _ = reply.send(out);
            }
            Command::Opened(doc) => {
                if let Some(room) = self.d.rooms.get(&doc) {
                    let peers: Vec<PeerId> = self
                        .topic_peers
                        .get(&room.topic)
                        .map(|p| p.iter().copied().collect())
                        .unwrap_or_default();
                    for peer in peers {
                        self.start_pull(peer, doc);
                    }
                }
            }
        }
    }

    fn start_pull(&mut self, peer: PeerId, doc: DocId) {
        if peer == self.d.net.peer_id() || !self.in_flight.insert((peer, doc)) {
            return;
        }
        let Some(room) = self.d.rooms.get(&doc) else {
            self.in_flight.remove(&(peer, doc));
            return;
        };
        let net = self.d.net.clone();
        let done = self.done_tx.clone();
        tokio::spawn(async move {
            let result = pull(&net, &room, peer).await;
            let _ = done.send(PullDone { peer, doc, result }).await;
        });
    }

    fn on_pull_done(&mut self, done: PullDone) {
        self.in_flight.remove(&(done.peer, done.doc));
        match done.result {
            Ok(outcome) => {
                if outcome.changed {
                    tracing::debug!(doc = %done.doc, peer = %done.peer, "caught up from peer");
                }
                self.synced
                    .insert((done.doc, done.peer), (Instant::now(), outcome.in_sync));
            }
            Err(e) => tracing::debug!(doc = %done.doc, peer = %done.peer, "pull failed: {e}"),
        }
    }

    fn anti_entropy(&mut self) {
        let work: Vec<(PeerId, DocId)> = self
            .d
            .rooms
            .all()
            .into_iter()
            .flat_map(|room| {
                let peers = self
                    .topic_peers
                    .get(&room.topic)
                    .cloned()
                    .unwrap_or_default();
                peers.into_iter().map(move |p| (p, room.id))
            })
            .collect();
        for (peer, doc) in work {
            self.start_pull(peer, doc);
        }
    }

    fn redial(&self) {
        let net = self.d.net.clone();
        let store = self.d.store.clone();
        let bootstrap = self.d.bootstrap.clone();
        tokio::spawn(async move {
            let mut targets = bootstrap;
            match store.known_peers().await {
                Ok(known) => targets.extend(known.into_iter().filter_map(|(peer, addrs)| {
                    let peer: PeerId = peer.parse().ok()?;
                    let addrs = addrs.iter().filter_map(|a| a.parse().ok()).collect();
                    Some((peer, addrs))
                })),
                Err(e) => tracing::warn!("cannot read known peers: {e}"),
            }
            for (peer, addrs) in targets {
                if peer == net.peer_id() || net.is_connected(peer).await {
                    continue;
                }
                let net = net.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(Duration::from_secs(10), net.dial(peer, addrs)).await
                    {
                        Ok(Ok(())) => tracing::debug!(%peer, "reconnected"),
                        Ok(Err(e)) => tracing::debug!(%peer, "redial failed: {e}"),
                        Err(_) => tracing::debug!(%peer, "redial timed out"),
                    }
                });
            }
        });
    }

    async fn publish(&self, out: Outgoing) {
        let Some(room) = self.d.rooms.get(&out.doc) else {
            return;
        };
        let sealed = room
            .key
            .seal(&room.topic, Purpose::Gossip, &out.payload.encode());
        if let Err(e) = self.d.net.publish(room.id.topic_name(), sealed).await {
            // No peer subscribed yet is normal; anti-entropy delivers it later either way.
            tracing::debug!(doc = %room.id, "gossip not sent: {e}");
        }
    }

    async fn on_net_event(&mut self, event: NetEvent) {
        match event {
            NetEvent::Gossip {
                topic,
                source,
                via,
                id,
                data,
            } => {
                let verdict = self.on_gossip(&topic, source, via, &data).await;
                self.d.net.validate(id, via, verdict).await;
            }
            NetEvent::Request {
                peer,
                data,
                channel,
            } => self.on_request(peer, data, channel),
            NetEvent::Subscribed { peer, topic } => {
                let Some(topic) = parse_topic_name(&topic) else {
                    return;
                };
                self.topic_peers.entry(topic).or_default().insert(peer);
                if let Some(room) = self.d.rooms.by_topic(&topic) {
                    self.start_pull(peer, room.id);
                }
            }
            NetEvent::Connected { .. } => {}
            NetEvent::Disconnected { peer } => {
                for peers in self.topic_peers.values_mut() {
                    peers.remove(&peer);
                }
            }
            NetEvent::Identified { peer, addrs } => {
                let addrs: Vec<String> = addrs.iter().map(|a| a.to_string()).collect();
                if let Err(e) = self.d.store.save_peer(peer.to_string(), addrs).await {
                    tracing::warn!("cannot remember peer {peer}: {e}");
                }
            }
        }
    }

    /// Validates and applies one gossip message; the verdict tells gossipsub whether to forward
    /// it (accept), penalise the sender (reject) or neither (ignore).
    async fn on_gossip(
        &mut self,
        topic: &str,
        source: Option<PeerId>,
        via: PeerId,
        data: &[u8],
    ) -> MessageAcceptance {
        let Some(room) = parse_topic_name(topic).and_then(|t| self.d.rooms.by_topic(&t)) else {
            return MessageAcceptance::Ignore;
        };
        let from = source.unwrap_or(via);
        let payload = match room
            .key
            .open(&room.topic, Purpose::Gossip, data)
            .map_err(SyncError::from)
            .and_then(|plain| YMessage::decode(&plain))
        {
            Ok(payload) => payload,
            Err(e) => {
                tracing::warn!(doc = %room.id, peer = %from, "dropped gossip: {e}");
                return MessageAcceptance::Reject;
            }
        };
        match payload {
            YMessage::Update(update) => match room.apply_remote(update).await {
                Ok(applied) => {
                    if applied.incomplete {
                        self.start_pull(from, room.id);
                    }
                    MessageAcceptance::Accept
                }
                Err(e) => {
                    tracing::warn!(doc = %room.id, peer = %from, "dropped gossip update: {e}");
                    MessageAcceptance::Reject
                }
            },
            YMessage::SyncStep1(_) => {
                // The author has a change too big for gossip: fetch it from them if we can
                // reach them, else from the neighbour that forwarded the announcement.
                let target = match source {
                    Some(s) if self.d.net.is_connected(s).await => s,
                    _ => via,
                };
                self.start_pull(target, room.id);
                MessageAcceptance::Accept
            }
            YMessage::Awareness(update) => {
                match room.apply_awareness(update, Origin::Remote).await {
                    Ok(_) => MessageAcceptance::Accept,
                    Err(e) => {
                        tracing::warn!(doc = %room.id, peer = %from, "dropped presence: {e}");
                        MessageAcceptance::Reject
                    }
                }
            }
            YMessage::SyncStep2(_) | YMessage::QueryAwareness => {
                tracing::warn!(doc = %room.id, peer = %from, "dropped gossip: not a gossip message");
                MessageAcceptance::Reject
            }
        }
    }

    fn on_request(&self, peer: PeerId, data: Vec<u8>, channel: ResponseChannel<Vec<u8>>) {
        let rooms = self.d.rooms.clone();
        let transfers = self.transfers.clone();
        let net = self.d.net.clone();
        let ahead = self.ahead_tx.clone();
        tokio::spawn(async move {
            let (response, doc) = serve(&rooms, &transfers, &data).await;
            if matches!(response, SyncResponse::BadRequest) {
                tracing::warn!(%peer, "answered a bad sync request");
            }
            net.respond(channel, response.encode()).await;
            if let Some((doc, true)) = doc {
                let _ = ahead.send((peer, doc)).await;
            }
        });
    }
}
