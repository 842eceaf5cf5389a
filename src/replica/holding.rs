//! The member's side of holders: the actor that keeps each holder of each document current.
//! For every document with holders it runs a [`round`] with each holder now and then (every
//! sync interval: records, new entries, uploads), and an upload-only round soon after a local
//! change; once more when the node stops. A round runs in a tracked task and reports back; one
//! runs per document and holder at a time, and one more is queued if asked for meanwhile.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures::FutureExt;
use libp2p::PeerId;
use libp2p_identity::ed25519;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::room::{RoomError, RoomHandle};
use super::rooms::Rooms;
use super::store::{HolderRow, Store, StoreError};
use crate::core::access::peer_of;
use crate::core::doc::DocId;
use crate::core::hold::wire::WireError;
use crate::core::hold::Refusal;
use crate::metrics::{Metrics, StopUploadLabels};
use crate::net::{Net, NetError};

mod once;
mod round;
mod running;
mod snapshot;

pub(crate) use once::{ask_to_hold, join_from};

pub(crate) use round::RoundOutcome;
use round::{Plan, Round};

/// Commands waiting for the loop.
const COMMAND_QUEUE: usize = 256;
/// Reports from rounds.
const REPORT_QUEUE: usize = 256;
/// How long a round may take before it counts as failed.
const ROUND_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a dial to a holder may take.
const DIAL_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub(crate) enum HoldingError {
    #[error(transparent)]
    Net(#[from] NetError),
    #[error(transparent)]
    Room(#[from] RoomError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the holder refused: {0}")]
    Refused(Refusal),
    #[error("the holder answered something malformed: {0}")]
    Wire(#[from] WireError),
    #[error("the holder broke the protocol: {0}")]
    Protocol(&'static str),
    #[error("the holder did not answer in time")]
    Timeout,
    #[error("{0}")]
    Failed(String),
    #[error("a held entry is malformed: {0}")]
    Entry(#[from] crate::core::hold::EntryError),
    #[error("a held change is malformed: {0}")]
    Doc(#[from] crate::core::doc::DocError),
}

enum Command {
    /// A local change in this document (an edit, or new membership records): upload it to its
    /// holders soon.
    Changed(DocId),
    /// A full round with one holder now; the reply once it ended.
    RoundNow(
        RoomHandle,
        PeerId,
        oneshot::Sender<Result<RoundOutcome, HoldingError>>,
    ),
    /// The key epoch changed (a removal here): a snapshot in the new epoch to every holder, so
    /// joiners with newer tickets can read it all.
    Compact(DocId),
    /// The last error of each holder of a document (none after a round that succeeded).
    Errors(DocId, oneshot::Sender<HashMap<PeerId, String>>),
    /// Upload what changed to every holder, then reply (the node is stopping).
    Flush(oneshot::Sender<()>),
}

struct Done {
    doc: DocId,
    holder: PeerId,
    /// Which round of this document and holder it was (see [`Tracked::rounds`]).
    round: u64,
    result: Result<RoundOutcome, HoldingError>,
    reply: Vec<oneshot::Sender<Result<RoundOutcome, HoldingError>>>,
}

/// What the holding loop signs with, counts in, and how often it runs a round with each holder.
pub(crate) struct HoldingSettings {
    pub(crate) identity: ed25519::Keypair,
    pub(crate) metrics: Metrics,
    pub(crate) interval: Duration,
}

/// Commands for the holding loop, queued until it runs (see [`Holding::channel`]).
pub(crate) struct HoldingInbox(mpsc::Receiver<Command>);

/// Cloneable handle to the holding loop.
#[derive(Clone, Debug)]
pub(crate) struct HoldingHandle {
    tx: mpsc::Sender<Command>,
}

impl HoldingHandle {
    /// A handle whose loop never runs: what it is told is dropped (unit tests).
    #[cfg(test)]
    pub(crate) fn detached() -> HoldingHandle {
        Holding::channel().0
    }

    /// A local change: without waiting (a full queue drops it; the periodic round covers it).
    pub(crate) fn changed(&self, doc: DocId) {
        let _ = self.tx.try_send(Command::Changed(doc));
    }

    /// After a removal: every holder gets a snapshot sealed in the new epoch.
    pub(crate) fn compact(&self, doc: DocId) {
        let _ = self.tx.try_send(Command::Compact(doc));
    }

    /// Runs a full round with `holder` now and returns its outcome.
    pub(crate) async fn round_now(
        &self,
        room: RoomHandle,
        holder: PeerId,
    ) -> Result<RoundOutcome, HoldingError> {
        crate::actor::ask(&self.tx, |r| Command::RoundNow(room, holder, r))
            .await
            .unwrap_or(Err(HoldingError::Net(NetError::Stopped)))
    }

    pub(crate) async fn errors(&self, doc: DocId) -> HashMap<PeerId, String> {
        crate::actor::ask(&self.tx, |r| Command::Errors(doc, r))
            .await
            .unwrap_or_default()
    }

    /// Uploads what changed to every holder reachable; returns when done (or given up).
    pub(crate) async fn flush(&self) {
        let _ = crate::actor::ask(&self.tx, Command::Flush).await;
    }
}

/// What the loop knows of one holder of one document.
#[derive(Default)]
struct Tracked {
    running: bool,
    /// Another round was asked for while one ran, and who waits for its outcome.
    again: Option<Plan>,
    waiting: Vec<oneshot::Sender<Result<RoundOutcome, HoldingError>>>,
    /// The room's digest when the holder last held everything this node had.
    pushed: Option<[u8; 32]>,
    /// Membership records this node had when it last sent them (a count of records).
    records_sent: Option<usize>,
    last_error: Option<String>,
    last_round: Option<Instant>,
    /// Rounds started so far; a round is known by this count when it started.
    rounds: u64,
}

/// A flush waiting for its rounds: for each document and holder, the round that carries
/// everything up to the flush (a round already running may have started before the last
/// edit, so it is the one queued after it), and the reply.
type Flush = (HashMap<(DocId, PeerId), u64>, oneshot::Sender<()>);

pub(crate) struct Holding {
    net: Net,
    rooms: Rooms,
    store: Store,
    identity: ed25519::Keypair,
    metrics: Metrics,
    interval: Duration,
    tracked: HashMap<(DocId, PeerId), Tracked>,
    reports: mpsc::Sender<Done>,
    tasks: TaskTracker,
    cancel: CancellationToken,
    /// Flushes waiting for their rounds.
    flushes: Vec<Flush>,
}

impl Holding {
    /// The loop's handle and its inbox, before the loop runs: rooms opened at start-up hold
    /// the handle, and the loop starts once they are all open (its first round covers them).
    pub(crate) fn channel() -> (HoldingHandle, HoldingInbox) {
        let (tx, rx) = mpsc::channel(COMMAND_QUEUE);
        (HoldingHandle { tx }, HoldingInbox(rx))
    }

    pub(crate) fn spawn(
        inbox: HoldingInbox,
        net: Net,
        rooms: Rooms,
        store: Store,
        settings: HoldingSettings,
        cancel: CancellationToken,
    ) -> JoinHandle<()> {
        let (reports, reports_rx) = mpsc::channel(REPORT_QUEUE);
        let HoldingSettings {
            identity,
            metrics,
            interval,
        } = settings;
        let holding = Holding {
            net,
            rooms,
            store,
            identity,
            metrics,
            interval,
            tracked: HashMap::new(),
            reports,
            tasks: TaskTracker::new(),
            cancel,
            flushes: Vec::new(),
        };
        tokio::spawn(holding.run(inbox.0, reports_rx))
    }

    async fn run(mut self, mut rx: mpsc::Receiver<Command>, mut reports: mpsc::Receiver<Done>) {
        let mut tick = tokio::time::interval(self.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = self.cancel.cancelled() => break,
                _ = tick.tick() => self.on_tick(),
                Some(cmd) = rx.recv() => self.on_command(cmd),
                Some(done) = reports.recv() => self.on_done(done),
            }
        }
        self.tasks.close();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.tasks.wait()).await;
    }

    /// The holders of a document other than this node.
    fn holders_of(&self, room: &RoomHandle) -> Vec<PeerId> {
        let me = self.net.peer_id();
        room.access()
            .membership
            .holders()
            .iter()
            .filter_map(peer_of)
            .filter(|peer| *peer != me)
            .collect()
    }

    fn on_tick(&mut self) {
        let now = Instant::now();
        for room in self.rooms.all() {
            for holder in self.holders_of(&room) {
                let due = self
                    .tracked
                    .get(&(room.id, holder))
                    .and_then(|t| t.last_round)
                    .is_none_or(|at| now.duration_since(at) >= self.interval);
                if due {
                    let plan = self.full_plan(&room, holder);
                    self.start(room.clone(), holder, plan, None);
                }
            }
        }
        // Holders released or documents deleted: forget them.
        let rooms = &self.rooms;
        self.tracked
            .retain(|(doc, _), t| t.running || rooms.get(doc).is_some());
    }

    /// A periodic round: records only if there are new ones since they were last sent.
    fn full_plan(&self, room: &RoomHandle, holder: PeerId) -> Plan {
        let sent = self
            .tracked
            .get(&(room.id, holder))
            .and_then(|t| t.records_sent);
        Plan {
            records: sent != Some(record_count(room)),
            fetch: true,
            compact: false,
        }
    }

    fn on_command(&mut self, cmd: Command) {
        match cmd {
            Command::Changed(doc) => {
                let Some(room) = self.rooms.get(&doc) else {
                    return;
                };
                for holder in self.holders_of(&room) {
                    // Uploads, and records if there are new ones (a ticket made, a removal).
                    let plan = Plan {
                        fetch: false,
                        ..self.full_plan(&room, holder)
                    };
                    self.start(room.clone(), holder, plan, None);
                }
            }
            Command::RoundNow(room, holder, reply) => {
                let plan = Plan {
                    records: true,
                    fetch: true,
                    compact: false,
                };
                self.start(room, holder, plan, Some(reply));
            }
            Command::Compact(doc) => {
                let Some(room) = self.rooms.get(&doc) else {
                    return;
                };
                for holder in self.holders_of(&room) {
                    let plan = Plan {
                        records: true,
                        fetch: true,
                        compact: true,
                    };
                    self.start(room.clone(), holder, plan, None);
                }
            }
            Command::Errors(doc, reply) => {
                let errors = self
                    .tracked
                    .iter()
                    .filter(|((d, _), _)| *d == doc)
                    .filter_map(|((_, peer), t)| Some((*peer, t.last_error.clone()?)))
                    .collect();
                let _ = reply.send(errors);
            }
            Command::Flush(reply) => {
                let mut waiting = HashMap::new();
                for room in self.rooms.all() {
                    for holder in self.holders_of(&room) {
                        // New records too (a ticket just made: its invitation admits joiners
                        // at the holder), but no reading: the node is stopping.
                        let plan = Plan {
                            fetch: false,
                            ..self.full_plan(&room, holder)
                        };
                        let id = room.id;
                        let round = self.start(room.clone(), holder, plan, None);
                        waiting.insert((id, holder), round);
                    }
                }
                if waiting.is_empty() {
                    let _ = reply.send(());
                } else {
                    self.flushes.push((waiting, reply));
                }
            }
        }
    }
}

/// How many membership records a room holds (a change means the holders may lack some).
fn record_count(room: &RoomHandle) -> usize {
    let access = room.access();
    let m = &access.membership;
    m.certs().count() + m.grants().count() + m.holds().count() + m.names().count()
}
