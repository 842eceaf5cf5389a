//! The sync driver: the actor between the network and the rooms, and the only part that knows
//! both. It hands gossip to rooms and reports the verdict to gossipsub, publishes local edits,
//! answers `/peerdoc/sync/1` requests, pulls from peers that share a document (when they
//! appear, when gossip shows a gap or an announcement, and periodically as anti-entropy,
//! because gossip can drop messages) and redials known peers (at once when a member drops; its
//! address book: `peers`).
//!
//! Its loop never awaits another actor. Gossip goes to its room's queue without waiting (a
//! full queue means a pull instead), and the room reports the verdict to gossipsub itself.
//! Everything else that waits (a room computing a diff, a pull, a store write, a dial) runs in
//! a tracked task, bounded per kind: pulls ([`MAX_PULLS`], the rest queue in a [`PullQueue`]),
//! diff computations ([`MAX_SERVES`]). Network commands from the loop are queued without
//! waiting. So a stalled room or a slow disk delays only its own document. Results come back
//! to the loop as [`Report`]s. The protocol decisions are the core's ([`Responder`],
//! [`crate::core::sync::gossip`]), the same code the simulation runs.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use libp2p::request_response::ResponseChannel;
use libp2p::{Multiaddr, PeerId};
use tokio::sync::{mpsc, oneshot, watch, Notify, Semaphore};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::pull::{Gap, PullFailure, PullOutcome};
use super::room::{DiffAndSv, Outgoing, RoomError, RoomHandle};
use super::rooms::Rooms;
use super::store::Store;
use crate::actor::ask;
use crate::core::access::NameRecord;
use crate::core::doc::DocId;
use crate::core::limits::PeerGuard;
use crate::core::sync::members::Member;
use crate::core::sync::Responder;
use crate::metrics::Metrics;
use crate::net::{Net, NetEvent};

mod connections;
mod gossip;
mod members;
mod peers;
mod pulls;
mod rosters;
mod serve;

use peers::AddressBook;
use pulls::PullQueue;
use rosters::Rosters;

/// Pulls running at once; more wait in a queue.
const MAX_PULLS: usize = 32;
/// Sync requests whose diff is being computed at once; more are refused (the requester's
/// request fails and it retries later).
const MAX_SERVES: usize = 32;
/// Commands waiting for the driver.
const COMMAND_QUEUE: usize = 64;
/// Reports from the driver's tasks waiting for its loop.
const REPORT_QUEUE: usize = 256;
/// How long a redial may take.
const DIAL_TIMEOUT: Duration = Duration::from_secs(10);
/// How long shutdown waits for running tasks.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// Member exchanges with one peer for one document happen at most once per this many sync
/// intervals.
const MEMBER_EXCHANGE_EVERY: u32 = 6;

/// When and where to sync besides what gossip triggers.
#[derive(Debug, Clone)]
pub(crate) struct SyncSettings {
    /// Anti-entropy: pull every document from every peer sharing it this often.
    pub(crate) sync_interval: Duration,
    /// Reconnect to known peers that are not connected this often.
    pub(crate) redial_interval: Duration,
    /// Extra peers to keep connected (`--bootstrap`), besides the known peers in the store.
    pub(crate) bootstrap: Vec<(PeerId, Vec<Multiaddr>)>,
    pub(crate) metrics: Metrics,
    /// This node's identity key: it signs the gossip this node publishes.
    pub(crate) identity: libp2p_identity::ed25519::Keypair,
    /// Woken whenever a peer connects (a waiting join tries again at once).
    pub(crate) peer_connected: Arc<Notify>,
    /// This node's signed display name, as the node last set it (sent in member exchanges).
    pub(crate) name: watch::Receiver<Option<NameRecord>>,
    /// The holder's side, on a node that keeps documents for others (hold requests go there).
    pub(crate) held: Option<super::held::HeldHandle>,
    /// Attachments: blob requests go to it.
    pub(crate) blobs: super::blobs::BlobsHandle,
}

/// Sync state of one document with one peer, for `status`.
#[derive(Debug, Clone)]
pub(crate) struct PeerSync {
    pub(crate) peer: PeerId,
    /// When the last pull from this peer completed, and how the replicas compared then.
    pub(crate) last_sync: Option<(Instant, Gap)>,
}

enum Command {
    Status(oneshot::Sender<HashMap<DocId, Vec<PeerSync>>>),
    /// A document was opened: pull it from peers already known to share it.
    Opened(DocId),
    /// A document's membership changed here (a removal): tell the peers sharing it.
    Changed(DocId),
}

/// What the driver's tasks tell its loop.
enum Report {
    PullDone {
        peer: PeerId,
        doc: DocId,
        result: Result<PullOutcome, PullFailure>,
    },
    PullWanted {
        peer: PeerId,
        doc: DocId,
    },
    DiffReady {
        peer: PeerId,
        room: RoomHandle,
        /// The key epoch the request came in.
        epoch: u32,
        channel: ResponseChannel<Vec<u8>>,
        requester_sv: Vec<u8>,
        result: Result<DiffAndSv, RoomError>,
    },
    /// A member exchange a peer asked for, its records added to the room: answer it.
    MembersAsked(serve::MembersAsked),
    /// A member exchange we asked `peer` for failed: the next may be tried at once.
    ExchangeFailed {
        peer: PeerId,
        doc: DocId,
    },
    /// Gossip from `peer`'s side wrote through a client we have no claim of: exchange rosters
    /// (the pull that follows brings the edit).
    ExchangeWanted {
        peer: PeerId,
        doc: DocId,
    },
    /// A member exchange with `peer` for `doc` brought these members (its certificates are
    /// in the room already).
    MembersLearned {
        peer: PeerId,
        doc: DocId,
        members: Vec<Member>,
        /// It also brought new certificates or key grants.
        news: bool,
    },
    /// New certificates or key grants arrived for `doc` (or were made here): pass them on.
    RecordsLearned {
        doc: DocId,
    },
}

/// Handle to the sync driver task.
#[derive(Clone)]
pub(crate) struct SyncHandle {
    tx: mpsc::Sender<Command>,
}

impl SyncHandle {
    /// Per-document sync state with each peer sharing it.
    pub(crate) async fn status(&self) -> HashMap<DocId, Vec<PeerSync>> {
        ask(&self.tx, Command::Status).await.unwrap_or_default()
    }

    pub(crate) async fn opened(&self, doc: DocId) {
        let _ = self.tx.send(Command::Opened(doc)).await;
    }

    /// The document's membership changed here: send the news to the peers sharing it.
    pub(crate) async fn changed(&self, doc: DocId) {
        let _ = self.tx.send(Command::Changed(doc)).await;
    }
}

/// The sync driver's state, owned by its task.
pub(crate) struct SyncDriver {
    net: Net,
    rooms: Rooms,
    store: Store,
    settings: SyncSettings,
    /// Who is connected, and who listens on which topic.
    connected: connections::Connected,
    pulls: PullQueue<(PeerId, DocId)>,
    synced: HashMap<(DocId, PeerId), (Instant, Gap)>,
    responder: Responder,
    serve_slots: Arc<Semaphore>,
    /// Where peers are: announced, stored, redialled.
    addresses: AddressBook,
    /// Per-peer limits on sync requests.
    guard: PeerGuard<PeerId>,
    /// Where this node can be reached, as the network last said.
    own_addrs: Vec<Multiaddr>,
    /// Roster exchanges: when, whose heard since they connected (content is pulled from a
    /// peer, and edits taken from gossip, only after that, so a removal and the claims a cut
    /// names arrive before anything from the removed one), and each peer's key epoch.
    rosters: Rosters,
    tasks: TaskTracker,
    cancel: CancellationToken,
    reports: mpsc::Sender<Report>,
}

impl SyncDriver {
    /// Starts the driver; it runs until `cancel` fires, then waits briefly for its tasks.
    pub(crate) fn spawn(
        net: Net,
        rooms: Rooms,
        store: Store,
        settings: SyncSettings,
        events: mpsc::Receiver<NetEvent>,
        outbox: mpsc::Receiver<Outgoing>,
        cancel: CancellationToken,
    ) -> (SyncHandle, JoinHandle<()>) {
        let (tx, commands) = mpsc::channel(COMMAND_QUEUE);
        let (reports, reports_rx) = mpsc::channel(REPORT_QUEUE);
        let driver = SyncDriver {
            net,
            rooms,
            store,
            settings,
            connected: connections::Connected::default(),
            pulls: PullQueue::new(MAX_PULLS),
            synced: HashMap::new(),
            responder: Responder::default(),
            serve_slots: Arc::new(Semaphore::new(MAX_SERVES)),
            addresses: AddressBook::default(),
            guard: PeerGuard::default(),
            own_addrs: Vec::new(),
            rosters: Rosters::default(),
            tasks: TaskTracker::new(),
            cancel,
            reports,
        };
        let task = tokio::spawn(driver.run(events, outbox, commands, reports_rx));
        (SyncHandle { tx }, task)
    }

    async fn run(
        mut self,
        mut events: mpsc::Receiver<NetEvent>,
        mut outbox: mpsc::Receiver<Outgoing>,
        mut commands: mpsc::Receiver<Command>,
        mut reports: mpsc::Receiver<Report>,
    ) {
        let mut sync_tick = tokio::time::interval(self.settings.sync_interval);
        let mut redial_tick = tokio::time::interval(self.settings.redial_interval);
        sync_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        redial_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let cancel = self.cancel.clone();
        // Every arm is synchronous: the loop only ever waits here.
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                Some(event) = events.recv() => self.on_net_event(event),
                Some(Outgoing::Records(doc)) = outbox.recv() => self.spread_records(doc),
                Some(cmd) = commands.recv() => self.on_command(cmd),
                Some(report) = reports.recv() => self.on_report(report),
                _ = sync_tick.tick() => self.anti_entropy(),
                _ = redial_tick.tick() => self.redial(),
            }
        }
        self.tasks.close();
        if tokio::time::timeout(SHUTDOWN_GRACE, self.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("sync tasks did not stop in time");
        }
        tracing::debug!("sync driver stopped");
    }

    /// Runs `work` in a tracked task that ends at shutdown.
    fn spawn_task(&self, work: impl Future<Output = ()> + Send + 'static) {
        let cancel = self.cancel.clone();
        self.tasks.spawn(async move {
            cancel.run_until_cancelled(work).await;
        });
    }

    fn on_command(&mut self, cmd: Command) {
        match cmd {
            Command::Status(reply) => {
                let _ = reply.send(self.status());
            }
            Command::Opened(doc) => {
                if let Some(room) = self.rooms.get(&doc) {
                    self.tell_listened(&room);
                    for peer in self.peers_sharing(&room.topic) {
                        self.want_pull(peer, doc);
                    }
                }
            }
            Command::Changed(doc) => self.spread_records(doc),
        }
    }

    fn status(&self) -> HashMap<DocId, Vec<PeerSync>> {
        self.rooms
            .all()
            .into_iter()
            .map(|room| {
                let peers = self
                    .peers_sharing(&room.topic)
                    .into_iter()
                    .map(|peer| PeerSync {
                        peer,
                        last_sync: self.synced.get(&(room.id, peer)).copied(),
                    })
                    .collect();
                (room.id, peers)
            })
            .collect()
    }

    /// A roster exchange with `peer` for `doc` went through, either way.
    fn heard_roster(&mut self, peer: PeerId, doc: DocId) {
        self.rosters.heard(peer, doc);
    }

    /// Remembers the key epoch `peer` used for `doc` (only ever upwards).
    fn note_epoch(&mut self, peer: PeerId, doc: DocId, epoch: u32) {
        self.rosters.note_epoch(peer, doc, epoch);
    }

    fn on_report(&mut self, report: Report) {
        match report {
            Report::PullDone { peer, doc, result } => self.on_pull_done(peer, doc, result),
            Report::PullWanted { peer, doc } => self.want_pull(peer, doc),
            Report::DiffReady {
                peer,
                room,
                epoch,
                channel,
                requester_sv,
                result,
            } => self.answer_start(peer, room, epoch, channel, requester_sv, result),
            Report::MembersLearned {
                peer,
                doc,
                members,
                news,
            } => {
                self.meet(members);
                self.heard_roster(peer, doc);
                // Its role may be known now.
                self.want_pull(peer, doc);
                if news {
                    self.spread_records(doc);
                }
            }
            Report::RecordsLearned { doc } => self.spread_records(doc),
            Report::MembersAsked(asked) => self.answer_members(asked),
            Report::ExchangeFailed { peer, doc } => self.exchange_failed(peer, doc),
            Report::ExchangeWanted { peer, doc } => self.exchange_members(peer, doc, true),
        }
    }

    fn anti_entropy(&mut self) {
        let rooms = self.rooms.all();
        // What is kept per document goes with the document.
        let open: HashSet<DocId> = rooms.iter().map(|room| room.id).collect();
        self.synced.retain(|(doc, _), _| open.contains(doc));
        self.rosters.retain_docs(|doc| open.contains(doc));
        let connected = &self.connected;
        self.addresses
            .forget_unless(|peer| connected.contains(peer));
        for room in rooms {
            // Rooms opened or reopened since a subscription came learn of it here at the latest.
            self.tell_listened(&room);
            for peer in self.peers_sharing(&room.topic) {
                self.want_pull(peer, room.id);
            }
        }
    }

    fn on_net_event(&mut self, event: NetEvent) {
        match event {
            NetEvent::Gossip {
                topic,
                via,
                id,
                data,
            } => self.on_gossip(&topic, via, id, &data),
            NetEvent::Request {
                peer,
                data,
                channel,
            } => self.on_request(peer, &data, channel),
            NetEvent::Subscribed { peer, topic } => self.subscribed(peer, &topic),
            NetEvent::Connected { peer } => self.connected(peer),
            NetEvent::Disconnected { peer } => self.disconnected(peer),
            NetEvent::Identified { peer, addrs } => {
                if self.addresses.heard(peer, addrs) {
                    self.vouch(peer);
                }
            }
            NetEvent::Addresses(addrs) => self.own_addrs = addrs,
        }
    }
}
