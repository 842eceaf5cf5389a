//! The holder's side (a node started with `--replica`, or a relay): the actor that keeps
//! documents sealed for their members and answers hold requests. It owns each held
//! document's [`Membership`] (rebuilt from the stored records on first use), decides with
//! [`admit`], and leaves the store work (commit, then answer) to tracked tasks, so its loop
//! never waits. It never holds a document key: it stores and serves signed, sealed entries.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use libp2p::request_response::ResponseChannel;
use libp2p::PeerId;
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::blobs::BlobsHandle;
use super::store::{HeldDoc, HeldKey, HeldLimits, SnapshotPart, Store, StoreError};
use crate::core::access::{key_of, KeyBytes, Membership};
use crate::core::blob::wire::{BlobRequest, BlobResponse, Refusal as BlobRefusal};
use crate::core::hold::wire::HoldBody;
use crate::core::hold::{admit, Asked, HoldRequest, HoldResponse, Refusal};
use crate::core::sync::members::{self, Roster};
use crate::metrics::Metrics;

mod blobs;
mod entries;
mod records;
mod snapshots;

use entries::answer_kept;

use crate::net::Net;
pub(crate) use records::hold_refusal;
use records::{add_roster, rebuild};

/// Requests waiting for the holder's loop; beyond it they are refused as busy.
const REQUEST_QUEUE: usize = 256;
/// Reports from its tasks.
const REPORT_QUEUE: usize = 256;
/// Store tasks (each answers one request) running at once.
const MAX_TASKS: usize = 64;

/// A document the holder keeps, as its loop knows it.
#[derive(Clone)]
struct Held {
    doc: crate::core::doc::DocId,
    membership: Arc<Membership>,
}

enum Slot {
    /// Being read from the store; these requests wait for it.
    Loading(Vec<Waiting>),
    /// Not held.
    Absent,
    Ready(Held),
}

struct Asking {
    peer: PeerId,
    request: HoldRequest,
    channel: ResponseChannel<Vec<u8>>,
}

/// A request waiting for a held document's membership: a hold request, or a blob request.
enum Waiting {
    Hold(Asking),
    Blob(PeerId, BlobRequest, ResponseChannel<Vec<u8>>),
}

enum Input {
    Request(PeerId, Vec<u8>, ResponseChannel<Vec<u8>>),
    /// A blob request for a document this node may hold: admitted here, served by `blobs`.
    Blob(PeerId, BlobRequest, ResponseChannel<Vec<u8>>),
    List(oneshot::Sender<Result<Vec<HeldDoc>, StoreError>>),
}

enum Report {
    Loaded(HeldKey, Result<Option<HeldDoc>, StoreError>),
    /// A write failed: forget what the loop assumed, read it again next time.
    Forget(HeldKey),
}

/// Cloneable handle to the holder's loop.
#[derive(Clone, Debug)]
pub(crate) struct HeldHandle {
    tx: mpsc::Sender<Input>,
}

impl HeldHandle {
    /// Hands over a hold request without waiting; a full queue answers "busy".
    pub(crate) fn try_request(
        &self,
        net: &Net,
        peer: PeerId,
        data: Vec<u8>,
        channel: ResponseChannel<Vec<u8>>,
    ) {
        super::hand_over(
            &self.tx,
            Input::Request(peer, data, channel),
            net,
            HoldResponse::Refused(Refusal::Busy).encode(),
            |input| match input {
                Input::Request(_, _, channel) => Some(channel),
                _ => None,
            },
        );
    }

    /// Hands over a blob request for a document this node has no room for: if it holds it, the
    /// requester is admitted by the document's roster and `blobs` answers.
    pub(crate) fn try_blob(
        &self,
        net: &Net,
        peer: PeerId,
        request: BlobRequest,
        channel: ResponseChannel<Vec<u8>>,
    ) {
        super::hand_over(
            &self.tx,
            Input::Blob(peer, request, channel),
            net,
            BlobResponse::Refused(BlobRefusal::Busy).encode(),
            |input| match input {
                Input::Blob(_, _, channel) => Some(channel),
                _ => None,
            },
        );
    }

    /// The documents this node keeps sealed for others.
    pub(crate) async fn list(&self) -> Result<Vec<HeldDoc>, StoreError> {
        crate::actor::ask(&self.tx, Input::List)
            .await
            .unwrap_or(Err(StoreError::Closed))
    }
}

/// The holder's loop.
pub(crate) struct HeldService {
    me: KeyBytes,
    net: Net,
    store: Store,
    blobs: BlobsHandle,
    limits: HeldLimits,
    /// Who may ask it to hold a new document (empty: anyone).
    allow: HashSet<KeyBytes>,
    metrics: Metrics,
    slots: HashMap<HeldKey, Slot>,
    reports: mpsc::Sender<Report>,
    tasks: TaskTracker,
    /// Tasks running at once at most.
    permits: Arc<Semaphore>,
    cancel: CancellationToken,
}

impl HeldService {
    pub(crate) fn spawn(
        me: KeyBytes,
        net: Net,
        store: Store,
        blobs: BlobsHandle,
        (limits, allow): (HeldLimits, HashSet<KeyBytes>),
        metrics: Metrics,
        cancel: CancellationToken,
    ) -> (HeldHandle, JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(REQUEST_QUEUE);
        let (reports, reports_rx) = mpsc::channel(REPORT_QUEUE);
        let service = HeldService {
            me,
            net,
            store,
            blobs,
            limits,
            allow,
            metrics,
            slots: HashMap::new(),
            reports,
            tasks: TaskTracker::new(),
            permits: Arc::new(Semaphore::new(MAX_TASKS)),
            cancel,
        };
        let task = tokio::spawn(service.run(rx, reports_rx));
        (HeldHandle { tx }, task)
    }

    async fn run(mut self, mut rx: mpsc::Receiver<Input>, mut reports: mpsc::Receiver<Report>) {
        loop {
            tokio::select! {
                _ = self.cancel.cancelled() => break,
                Some(input) = rx.recv() => self.on_input(input),
                Some(report) = reports.recv() => self.on_report(report),
            }
        }
        self.tasks.close();
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), self.tasks.wait()).await;
    }

    /// Runs store work in a tracked task, at most [`MAX_TASKS`] at once: past that the work
    /// is dropped, and with it the request's channel (the requester's request fails; it tries
    /// again at its next round).
    fn spawn_task(&self, work: impl std::future::Future<Output = ()> + Send + 'static) {
        let Ok(permit) = self.permits.clone().try_acquire_owned() else {
            tracing::debug!("holder busy: a request dropped");
            return;
        };
        let cancel = self.cancel.clone();
        self.tasks.spawn(async move {
            cancel.run_until_cancelled(work).await;
            drop(permit);
        });
    }

    fn on_input(&mut self, input: Input) {
        match input {
            Input::List(reply) => {
                let store = self.store.clone();
                self.spawn_task(async move {
                    let _ = reply.send(store.held_docs().await);
                });
            }
            Input::Blob(peer, request, channel) => self.on_blob(peer, request, channel),
            Input::Request(peer, data, channel) => match HoldRequest::decode(&data) {
                Ok(request) => self.on_request(Asking {
                    peer,
                    request,
                    channel,
                }),
                Err(e) => {
                    tracing::debug!(%peer, "malformed hold request: {e}");
                    self.refuse(peer, channel, Refusal::Malformed);
                }
            },
        }
    }

    fn on_report(&mut self, report: Report) {
        match report {
            Report::Loaded(key, result) => {
                let waiting = match self.slots.remove(&key) {
                    Some(Slot::Loading(waiting)) => waiting,
                    _ => Vec::new(),
                };
                let slot = match result {
                    Ok(Some(held)) => Slot::Ready(rebuild(&held)),
                    Ok(None) => Slot::Absent,
                    Err(e) => {
                        tracing::error!("cannot read a held document: {e}");
                        for waiting in waiting {
                            match waiting {
                                Waiting::Hold(asking) => {
                                    self.refuse(asking.peer, asking.channel, Refusal::Busy)
                                }
                                Waiting::Blob(_, _, channel) => {
                                    let busy = BlobResponse::Refused(BlobRefusal::Busy);
                                    let _ = self.net.try_respond(channel, busy.encode());
                                }
                            }
                        }
                        return;
                    }
                };
                self.slots.insert(key, slot);
                for waiting in waiting {
                    match waiting {
                        Waiting::Hold(asking) => self.on_request(asking),
                        Waiting::Blob(peer, request, channel) => {
                            self.on_blob(peer, request, channel)
                        }
                    }
                }
                // Not kept for documents it does not hold: anyone can name any number.
                if matches!(self.slots.get(&key), Some(Slot::Absent)) {
                    self.slots.remove(&key);
                }
            }
            Report::Forget(key) => {
                self.slots.remove(&key);
            }
        }
    }

    fn respond(&self, channel: ResponseChannel<Vec<u8>>, response: HoldResponse) {
        if let Err(e) = self.net.try_respond(channel, response.encode()) {
            tracing::debug!("hold response dropped: {e}");
        }
    }

    fn refuse(&self, peer: PeerId, channel: ResponseChannel<Vec<u8>>, why: Refusal) {
        self.metrics.refused("held", why.as_str(), 1);
        tracing::debug!(%peer, "hold request refused: {why}");
        self.respond(channel, HoldResponse::Refused(why));
    }

    /// The held document of `key` for a request: with it (`None` inside: not held) and the
    /// request back, or `None` when the request now waits for the document to be read.
    fn slot(&mut self, key: HeldKey, waiting: Waiting) -> Option<(Option<Held>, Waiting)> {
        let held = match self.slots.get_mut(&key) {
            Some(Slot::Loading(queue)) => {
                queue.push(waiting);
                return None;
            }
            Some(Slot::Ready(held)) => Some(held.clone()),
            Some(Slot::Absent) => None,
            None => {
                self.slots.insert(key, Slot::Loading(vec![waiting]));
                let store = self.store.clone();
                let reports = self.reports.clone();
                self.spawn_task(async move {
                    let loaded = store.held_doc(key).await;
                    let _ = reports.send(Report::Loaded(key, loaded)).await;
                });
                return None;
            }
        };
        Some((held, waiting))
    }

    fn on_request(&mut self, asking: Asking) {
        let key = HeldKey {
            topic: asking.request.topic,
            owner: asking.request.owner,
        };
        let (held, asking) = match self.slot(key, Waiting::Hold(asking)) {
            Some((held, Waiting::Hold(asking))) => (held, asking),
            _ => return,
        };
        let Ok(requester) = key_of(&asking.peer) else {
            return self.refuse(asking.peer, asking.channel, Refusal::NotMember);
        };
        let Asking {
            peer,
            request,
            channel,
        } = asking;
        match request.body {
            HoldBody::Records { doc, roster } => {
                self.on_records(key, held, peer, requester, doc, roster, channel)
            }
            body => {
                let Some(held) = held else {
                    return self.refuse(peer, channel, Refusal::UnknownDoc);
                };
                let asked = match body {
                    HoldBody::Append { .. } | HoldBody::Snapshot { .. } => Asked::Append,
                    _ => Asked::Read,
                };
                if let Err(why) = admit(&held.membership, &self.me, &requester, asked) {
                    return self.refuse(peer, channel, why);
                }
                match body {
                    HoldBody::Append { entry } => {
                        self.on_append(key, peer, requester, entry, channel)
                    }
                    HoldBody::Snapshot {
                        covers,
                        part,
                        parts,
                        entry,
                    } => {
                        let part = SnapshotPart {
                            uploader: requester,
                            covers,
                            part,
                            parts,
                            entry,
                        };
                        self.on_snapshot(key, peer, part, channel)
                    }
                    HoldBody::FetchSnapshot { part } => self.on_fetch_snapshot(key, part, channel),
                    HoldBody::Fetch { from } => self.on_fetch(key, from, channel),
                    HoldBody::Roster { page } => {
                        let roster = members::page(&held.membership, Vec::new(), page);
                        self.respond(channel, HoldResponse::Roster(roster));
                    }
                    HoldBody::Records { .. } => unreachable!("handled above"),
                }
            }
        }
    }

    /// Membership records from a member: added (the first time, holding starts if a writer
    /// asked this node), stored, then answered; a release makes the holder drop the document.
    #[allow(clippy::too_many_arguments)]
    fn on_records(
        &mut self,
        key: HeldKey,
        held: Option<Held>,
        peer: PeerId,
        requester: KeyBytes,
        doc: crate::core::doc::DocId,
        roster: Roster,
        channel: ResponseChannel<Vec<u8>>,
    ) {
        if doc.topic() != key.topic || held.as_ref().is_some_and(|h| h.doc != doc) {
            return self.refuse(peer, channel, Refusal::Malformed);
        }
        let mut next = held.as_ref().map_or_else(
            || Membership::new(doc, key.owner),
            |h| (*h.membership).clone(),
        );
        let fresh = add_roster(&mut next, roster, &self.metrics);
        let was_holding = held.is_some();
        let released = next.holds().any(|r| r.holder == self.me && !r.holds);
        // Only a member's word, carrying a release signed by an owner or a writer, drops it.
        let member = next.role_of_key(&requester).is_some();
        if was_holding && released && member {
            // Released by an owner or a writer: drop everything kept for it.
            self.slots.insert(key, Slot::Absent);
            let store = self.store.clone();
            let net = self.net.clone();
            self.spawn_task(async move {
                if let Err(e) = store.drop_held(key).await {
                    tracing::error!("cannot drop a released document: {e}");
                }
                tracing::info!(doc = %doc, "released: no longer holding the document");
                let _ = net.try_respond(channel, HoldResponse::Refused(Refusal::NotAsked).encode());
            });
            return;
        }
        if let Err(why) = admit(&next, &self.me, &requester, Asked::Records) {
            return self.refuse(peer, channel, why);
        }
        if !was_holding && !self.allow.is_empty() && !self.allow.contains(&requester) {
            return self.refuse(peer, channel, Refusal::NotAllowed);
        }
        let membership = Arc::new(next);
        self.slots.insert(
            key,
            Slot::Ready(Held {
                doc,
                membership: membership.clone(),
            }),
        );
        let store = self.store.clone();
        let limits = self.limits;
        let reports = self.reports.clone();
        let metrics = self.metrics.clone();
        let net = self.net.clone();
        self.spawn_task(async move {
            let kept = store.keep_held(key, doc, fresh, limits).await;
            if kept.as_ref().is_ok_and(Option::is_some) {
                if !was_holding {
                    tracing::info!(doc = %doc, %peer, "now holding the document, sealed");
                }
            } else {
                // Not stored: what the loop assumed goes.
                let _ = reports.send(Report::Forget(key)).await;
            }
            let response = answer_kept(kept, &metrics, peer, "membership records");
            let _ = net.try_respond(channel, response.encode());
        });
    }
}
