//! Attachments on the network: the actor that serves this node's blobs to members of the
//! documents they are attached to, and runs downloads (one per blob, shared by everyone who
//! asks for it). Its loop only decides (admission, busy, throttling) and keeps the table of
//! running downloads; file and store work runs in tracked tasks. The pure parts (pieces,
//! verification, the plan of a download over several sources) are `core::blob`'s.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use libp2p::request_response::ResponseChannel;
use libp2p::PeerId;
use tokio::sync::{mpsc, oneshot, watch, Semaphore};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::rooms::Rooms;
use super::store::{HeldKey, Store};
use crate::core::access::admission::{admit, Admission, Asked, Why};
use crate::core::access::{key_of, KeyBytes};

use crate::core::blob::wire::{BlobAsk, BlobRequest, BlobResponse, Refusal};
use crate::core::blob::BlobHash;
use crate::metrics::Metrics;
use crate::net::Net;

mod answer;
mod fetch;
pub(crate) mod files;
mod holders;
mod requests;

use answer::answer;
pub(crate) use fetch::FetchJob;
pub use fetch::{Transfer, TransferSource, TransferState};
use files::BlobFiles;
pub(crate) use holders::Offer;
use holders::{possesses, reoffer_all, room_for};

/// Requests waiting for the loop; beyond it they are refused as busy.
const REQUEST_QUEUE: usize = 256;
/// Pieces being read and sent at once; beyond it requests are refused as busy.
const MAX_SERVING: usize = 32;
/// Peers whose sending rate is tracked at most.
const MAX_RATED_PEERS: usize = 4096;
/// Downloads running at once at most (a holder refuses more asks to keep as busy).
const MAX_DOWNLOADS: usize = 16;
/// A piece held back longer than this by the throttle is refused as busy instead (a
/// requester waits 15 s at most).
const MAX_THROTTLE_DELAY: Duration = Duration::from_secs(5);

/// The blob settings of a node.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BlobLimits {
    /// Largest attachment this node seals or fetches.
    pub(crate) max_bytes: u64,
    /// Attachments of one document together, at most (a holder keeps within it too).
    pub(crate) max_doc_bytes: u64,
    /// On a holder: all blobs together at most (its `max_bytes`).
    pub(crate) held_total: Option<u64>,
    /// How often this node checks that the holders of its documents keep their attachments
    /// (one that was offline when one was added, or restarted while fetching it, gets it then).
    pub(crate) reoffer_every: Duration,
    /// Bytes per second sent to one peer at most (`None`: no limit).
    pub(crate) serve_rate: Option<u64>,
}

enum Input {
    Request(PeerId, Vec<u8>, ResponseChannel<Vec<u8>>),
    /// A request for a document this node holds for others, admitted by the holder's actor.
    Admitted(PeerId, BlobRequest, ResponseChannel<Vec<u8>>),
    /// Ask the document's holders to keep a blob (they fetch it from this node).
    Offer(Offer),
    Fetch(FetchJob, oneshot::Sender<watch::Receiver<Transfer>>),
    Running(BlobHash, oneshot::Sender<bool>),
    Finished(BlobHash),
}

#[derive(Clone)]
pub(crate) struct BlobsHandle {
    tx: mpsc::Sender<Input>,
    net: Net,
    pub(crate) files: BlobFiles,
    pub(crate) limits: BlobLimits,
}

impl std::fmt::Debug for BlobsHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobsHandle").finish_non_exhaustive()
    }
}

impl BlobsHandle {
    /// Hands over a blob request without waiting; a full queue answers "busy".
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
            BlobResponse::Refused(Refusal::Busy).encode(),
            |input| match input {
                Input::Request(_, _, channel) => Some(channel),
                _ => None,
            },
        );
    }

    /// Hands over a request for a document this node holds, admitted by the holder's actor.
    pub(crate) fn try_admitted(
        &self,
        net: &Net,
        peer: PeerId,
        request: BlobRequest,
        channel: ResponseChannel<Vec<u8>>,
    ) {
        super::hand_over(
            &self.tx,
            Input::Admitted(peer, request, channel),
            net,
            BlobResponse::Refused(Refusal::Busy).encode(),
            |input| match input {
                Input::Admitted(_, _, channel) => Some(channel),
                _ => None,
            },
        );
    }

    /// Asks `holders` to keep a blob of the document (in the background: each fetches it from
    /// this node; what they answer is logged).
    pub(crate) async fn offer(&self, offer: Offer) {
        let _ = self.tx.send(Input::Offer(offer)).await;
    }

    /// Starts (or joins) the download of a blob; how it goes.
    pub(crate) async fn fetch(&self, job: FetchJob) -> Option<watch::Receiver<Transfer>> {
        crate::actor::ask(&self.tx, |r| Input::Fetch(job, r)).await
    }

    /// Which of `peers` have the blob whole (each asked at once; no answer in time is a no).
    pub(crate) async fn who_has(
        &self,
        topic: [u8; 32],
        owner: KeyBytes,
        hash: BlobHash,
        peers: &[PeerId],
    ) -> Vec<PeerId> {
        let request = BlobRequest {
            topic,
            owner,
            hash,
            body: BlobAsk::Have,
        }
        .encode();
        let answers = futures::future::join_all(peers.iter().map(|&peer| {
            let request = request.clone();
            async move { has_whole(&self.net, peer, request).await.then_some(peer) }
        }))
        .await;
        answers.into_iter().flatten().collect()
    }

    /// Whether a download of `hash` is running (garbage collection leaves it alone).
    pub(crate) async fn is_running(&self, hash: BlobHash) -> bool {
        crate::actor::ask(&self.tx, |r| Input::Running(hash, r))
            .await
            .unwrap_or(true)
    }
}

/// Whether `peer` answers an encoded Have request (within 5 s) that it has the blob whole.
async fn has_whole(net: &Net, peer: PeerId, have: Vec<u8>) -> bool {
    let answer = tokio::time::timeout(Duration::from_secs(5), net.request(peer, have)).await;
    matches!(
        answer.map(|r| r.map(|bytes| BlobResponse::decode(&bytes))),
        Ok(Ok(Ok(BlobResponse::Have { complete: true })))
    )
}

/// What the loop's tasks need.
#[derive(Clone)]
pub(crate) struct BlobContext {
    pub(crate) me: KeyBytes,
    pub(crate) net: Net,
    pub(crate) store: Store,
    pub(crate) files: BlobFiles,
    pub(crate) metrics: Metrics,
    pub(crate) limits: BlobLimits,
    /// Test only: flip a byte of every piece sent.
    #[cfg(feature = "test-faults")]
    pub(crate) corrupt_pieces: bool,
}

pub(crate) struct BlobService {
    ctx: BlobContext,
    rooms: Rooms,
    downloads: HashMap<BlobHash, watch::Receiver<Transfer>>,
    /// Per peer: when the bytes sent to it so far are paid for, at `serve_rate`.
    paid_until: HashMap<PeerId, Instant>,
    serving: Arc<Semaphore>,
    tasks: TaskTracker,
    finished: mpsc::Sender<Input>,
    cancel: CancellationToken,
}

impl BlobService {
    pub(crate) fn spawn(
        ctx: BlobContext,
        rooms: Rooms,
        cancel: CancellationToken,
    ) -> (BlobsHandle, JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(REQUEST_QUEUE);
        let handle = BlobsHandle {
            tx: tx.clone(),
            net: ctx.net.clone(),
            files: ctx.files.clone(),
            limits: ctx.limits,
        };
        let service = BlobService {
            ctx,
            rooms,
            downloads: HashMap::new(),
            paid_until: HashMap::new(),
            serving: Arc::new(Semaphore::new(MAX_SERVING)),
            tasks: TaskTracker::new(),
            finished: tx,
            cancel,
        };
        (handle, tokio::spawn(service.run(rx)))
    }

    async fn run(mut self, mut rx: mpsc::Receiver<Input>) {
        let mut reoffer = tokio::time::interval(self.ctx.limits.reoffer_every);
        reoffer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut reoffering: Option<tokio::task::JoinHandle<()>> = None;
        loop {
            tokio::select! {
                _ = self.cancel.cancelled() => break,
                Some(input) = rx.recv() => self.on_input(input),
                _ = reoffer.tick() => {
                    // One pass at a time: a slow one is not stacked.
                    if reoffering.as_ref().is_none_or(|t| t.is_finished()) {
                        let (ctx, rooms, cancel) =
                            (self.ctx.clone(), self.rooms.clone(), self.cancel.clone());
                        reoffering = Some(self.tasks.spawn(async move {
                            cancel.run_until_cancelled(reoffer_all(&ctx, &rooms)).await;
                        }));
                    }
                }
            }
        }
        self.tasks.close();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.tasks.wait()).await;
    }

    fn on_input(&mut self, input: Input) {
        match input {
            Input::Request(peer, data, channel) => match BlobRequest::decode(&data) {
                Ok(request) => self.on_request(peer, request, channel),
                Err(e) => {
                    tracing::debug!(%peer, "malformed blob request: {e}");
                    self.refuse(peer, channel, Refusal::Malformed);
                }
            },
            Input::Admitted(peer, request, channel) => self.serve(peer, request, channel, true),
            Input::Offer(offer) => {
                let ctx = self.ctx.clone();
                let cancel = self.cancel.clone();
                self.tasks.spawn(async move {
                    cancel.run_until_cancelled(offer.send(&ctx)).await;
                });
            }
            Input::Fetch(job, reply) => {
                let hash = job.hash;
                if let Some(running) = self.downloads.get(&hash) {
                    let _ = reply.send(running.clone());
                    return;
                }
                let (tx, rx) = watch::channel(Transfer {
                    size: job.size,
                    have: 0,
                    sources: Vec::new(),
                    state: TransferState::Looking,
                });
                self.downloads.insert(hash, rx.clone());
                let _ = reply.send(rx);
                let (ctx, finished, cancel) =
                    (self.ctx.clone(), self.finished.clone(), self.cancel.clone());
                self.tasks.spawn(async move {
                    cancel.run_until_cancelled(fetch::run(ctx, job, tx)).await;
                    let _ = finished.send(Input::Finished(hash)).await;
                });
            }
            Input::Running(hash, reply) => {
                let _ = reply.send(self.downloads.contains_key(&hash));
            }
            Input::Finished(hash) => {
                self.downloads.remove(&hash);
            }
        }
    }
}
