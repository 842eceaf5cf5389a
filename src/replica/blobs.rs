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
use super::store::Store;
use crate::core::access::admission::{admit, Admission, Asked, Why};
use crate::core::access::{key_of, KeyBytes};
use crate::core::blob::pieces::piece_count;
use crate::core::blob::wire::{BlobAsk, BlobRequest, BlobResponse, Refusal};
use crate::core::blob::{Bitmap, BlobHash};
use crate::metrics::Metrics;
use crate::net::Net;

mod fetch;
pub(crate) mod files;

pub(crate) use fetch::FetchJob;
use files::BlobFiles;

/// Requests waiting for the loop; beyond it they are refused as busy.
const REQUEST_QUEUE: usize = 256;
/// Pieces being read and sent at once; beyond it requests are refused as busy.
const MAX_SERVING: usize = 32;
/// Peers whose sending rate is tracked at most.
const MAX_RATED_PEERS: usize = 4096;

/// How a download goes, as its watchers see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transfer {
    pub size: u64,
    /// Bytes verified and kept so far (pieces from before a restart included).
    pub have: u64,
    /// Each source asked, with the verified bytes it sent in this download.
    pub sources: Vec<TransferSource>,
    pub state: TransferState,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferSource {
    pub peer: PeerId,
    pub bytes: u64,
    /// It sent a piece that did not match the hash: asked nothing more.
    pub banned: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransferState {
    /// Asking the document's peers and holders who has it.
    Looking,
    Fetching,
    Done,
    /// No source has it, or every source failed; what was fetched is kept for next time.
    Failed(String),
}

/// The blob settings of a node.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BlobLimits {
    /// Largest attachment this node seals or fetches.
    pub(crate) max_bytes: u64,
    /// Attachments of one document together, at most (a holder keeps within it too).
    pub(crate) max_doc_bytes: u64,
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
    /// A download nobody watches (a holder keeping what a writer asked it to).
    FetchQuietly(FetchJob),
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
        if let Err(e) = self.tx.try_send(Input::Request(peer, data, channel)) {
            let (mpsc::error::TrySendError::Full(input) | mpsc::error::TrySendError::Closed(input)) =
                e;
            if let Input::Request(_, _, channel) = input {
                let _ = net.try_respond(channel, BlobResponse::Refused(Refusal::Busy).encode());
            }
        }
    }

    /// Hands over a request for a document this node holds, admitted by the holder's actor.
    pub(crate) fn try_admitted(
        &self,
        net: &Net,
        peer: PeerId,
        request: BlobRequest,
        channel: ResponseChannel<Vec<u8>>,
    ) {
        if let Err(e) = self.tx.try_send(Input::Admitted(peer, request, channel)) {
            let (mpsc::error::TrySendError::Full(input) | mpsc::error::TrySendError::Closed(input)) =
                e;
            if let Input::Admitted(_, _, channel) = input {
                let _ = net.try_respond(channel, BlobResponse::Refused(Refusal::Busy).encode());
            }
        }
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
            let (net, request) = (self.net.clone(), request.clone());
            async move {
                let answer =
                    tokio::time::timeout(Duration::from_secs(5), net.request(peer, request)).await;
                let has = matches!(
                    answer.map(|r| r.map(|bytes| BlobResponse::decode(&bytes))),
                    Ok(Ok(Ok(BlobResponse::Have { complete: true })))
                );
                has.then_some(peer)
            }
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

/// A blob to offer to a document's holders.
#[derive(Debug, Clone)]
pub(crate) struct Offer {
    pub(crate) topic: [u8; 32],
    pub(crate) owner: KeyBytes,
    pub(crate) hash: BlobHash,
    pub(crate) size: u64,
    pub(crate) holders: Vec<PeerId>,
}

impl Offer {
    async fn send(self, ctx: &BlobContext) {
        let request = BlobRequest {
            topic: self.topic,
            owner: self.owner,
            hash: self.hash,
            body: BlobAsk::Keep(self.size),
        }
        .encode();
        for holder in self.holders {
            let answer = tokio::time::timeout(
                Duration::from_secs(10),
                ctx.net.request(holder, request.clone()),
            )
            .await;
            match answer.map(|r| r.map(|bytes| BlobResponse::decode(&bytes))) {
                Ok(Ok(Ok(BlobResponse::Have { .. }))) => {
                    tracing::debug!(blob = %self.hash, %holder, "a holder keeps the attachment")
                }
                other => {
                    tracing::info!(blob = %self.hash, %holder, "a holder did not take the attachment: {other:?}")
                }
            }
        }
    }
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
        loop {
            tokio::select! {
                _ = self.cancel.cancelled() => break,
                Some(input) = rx.recv() => self.on_input(input),
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
            Input::FetchQuietly(job) => {
                let (reply, _) = oneshot::channel();
                self.on_input(Input::Fetch(job, reply));
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

    fn refuse(&self, peer: PeerId, channel: ResponseChannel<Vec<u8>>, why: Refusal) {
        self.ctx.metrics.refused("blob", why.as_str(), 1);
        if matches!(why, Refusal::NotMember | Refusal::Removed) {
            tracing::info!(%peer, reason = why.as_str(), "blob request refused");
        }
        let _ = self
            .ctx
            .net
            .try_respond(channel, BlobResponse::Refused(why).encode());
    }

    fn on_request(
        &mut self,
        peer: PeerId,
        request: BlobRequest,
        channel: ResponseChannel<Vec<u8>>,
    ) {
        let Some(room) = self.rooms.by_topic(&request.topic) else {
            return self.refuse(peer, channel, Refusal::Missing);
        };
        let access = room.access();
        let key = key_of(&peer).unwrap_or([0; 32]);
        let current = access.keys.current().0;
        let admission = admit(
            &access.membership,
            &self.ctx.me,
            &key,
            current,
            current,
            Asked::Content,
        );
        // A holder of the document fetches what it is asked to keep (it reads, sealed).
        let holder = access.membership.is_holder(&key) && !matches!(request.body, BlobAsk::Keep(_));
        if let Admission::RecordsOnly(why) = admission {
            let refusal = match why {
                Why::Removed => Refusal::Removed,
                _ => Refusal::NotMember,
            };
            if !(holder && refusal == Refusal::NotMember) {
                return self.refuse(peer, channel, refusal);
            }
        }
        if let BlobAsk::Keep(_) = request.body {
            // Members keep what they add or fetch themselves; only holders keep for others.
            return self.refuse(peer, channel, Refusal::Missing);
        }
        self.serve(peer, request, channel, false);
    }

    /// Answers an admitted request: a piece (throttled per peer), whether the blob is here, or,
    /// on a holder, a writer's ask to keep one.
    fn serve(
        &mut self,
        peer: PeerId,
        request: BlobRequest,
        channel: ResponseChannel<Vec<u8>>,
        holding: bool,
    ) {
        if let (BlobAsk::Keep(size), true) = (request.body, holding) {
            return self.keep(peer, request, size, channel);
        }
        let Ok(permit) = self.serving.clone().try_acquire_owned() else {
            return self.refuse(peer, channel, Refusal::Busy);
        };
        let delay = match request.body {
            BlobAsk::Piece(_) => self.throttle(peer),
            BlobAsk::Have | BlobAsk::Keep(_) => Duration::ZERO,
        };
        let ctx = self.ctx.clone();
        let cancel = self.cancel.clone();
        self.tasks.spawn(async move {
            let answer = cancel
                .run_until_cancelled(async {
                    let answer = answer(&ctx, &request).await;
                    tokio::time::sleep(delay).await;
                    answer
                })
                .await;
            if let Some(answer) = answer {
                if let BlobResponse::Refused(why) = &answer {
                    ctx.metrics.refused("blob", why.as_str(), 1);
                }
                if let BlobResponse::Piece(slice) = &answer {
                    ctx.metrics.blob_bytes_sent.inc_by(slice.len() as u64);
                }
                let _ = ctx.net.try_respond(channel, answer.encode());
            }
            drop(permit);
        });
    }

    /// A writer asks this holder to keep a blob: within the limits, it fetches it from the
    /// writer (and says whether it has it whole already).
    fn keep(
        &mut self,
        peer: PeerId,
        request: BlobRequest,
        size: u64,
        channel: ResponseChannel<Vec<u8>>,
    ) {
        if size > self.ctx.limits.max_bytes {
            return self.refuse(peer, channel, Refusal::Full);
        }
        let (ctx, finished) = (self.ctx.clone(), self.finished.clone());
        let cancel = self.cancel.clone();
        let running = self.downloads.contains_key(&request.hash);
        self.tasks.spawn(async move {
            let answer = cancel
                .run_until_cancelled(async {
                    let kept: u64 = match ctx.store.doc_blobs(request.topic).await {
                        Ok(rows) => rows
                            .iter()
                            .filter(|r| r.hash != request.hash)
                            .map(|r| r.size)
                            .sum(),
                        Err(_) => return BlobResponse::Refused(Refusal::Busy),
                    };
                    if kept.saturating_add(size) > ctx.limits.max_doc_bytes {
                        return BlobResponse::Refused(Refusal::Full);
                    }
                    let complete = matches!(
                        ctx.store.blob(request.hash).await,
                        Ok(Some(row)) if row.complete && ctx.files.has_complete(&request.hash)
                    );
                    if !complete && !running {
                        let job = FetchJob {
                            hash: request.hash,
                            size,
                            topic: request.topic,
                            owner: request.owner,
                            sources: vec![peer],
                        };
                        let _ = finished.send(Input::FetchQuietly(job)).await;
                    } else if complete {
                        // Here already (for another document): attached to this one too.
                        if let Ok(Some(row)) = ctx.store.blob(request.hash).await {
                            let _ = ctx.store.put_blob(row, request.topic).await;
                        }
                    }
                    BlobResponse::Have { complete }
                })
                .await;
            if let Some(answer) = answer {
                if let BlobResponse::Refused(why) = &answer {
                    ctx.metrics.refused("blob", why.as_str(), 1);
                }
                let _ = ctx.net.try_respond(channel, answer.encode());
            }
        });
    }

    /// How long to hold a piece back so that `peer` gets at most `serve_rate` bytes a second.
    fn throttle(&mut self, peer: PeerId) -> Duration {
        let Some(rate) = self.ctx.limits.serve_rate.filter(|&r| r > 0) else {
            return Duration::ZERO;
        };
        let now = Instant::now();
        if self.paid_until.len() >= MAX_RATED_PEERS {
            self.paid_until.retain(|_, until| *until > now);
        }
        let cost = Duration::from_secs_f64(crate::core::blob::PIECE_BYTES as f64 / rate as f64);
        let until = self.paid_until.entry(peer).or_insert(now);
        *until = (*until).max(now) + cost;
        until.saturating_duration_since(now + cost)
    }
}

/// The answer to an admitted request.
async fn answer(ctx: &BlobContext, request: &BlobRequest) -> BlobResponse {
    let missing = BlobResponse::Refused(Refusal::Missing);
    let row = match ctx.store.attached_blob(request.hash, request.topic).await {
        Ok(Some(row)) => row,
        Ok(None) => return missing,
        Err(e) => {
            tracing::warn!("cannot read the blob table: {e}");
            return BlobResponse::Refused(Refusal::Busy);
        }
    };
    match request.body {
        BlobAsk::Have => BlobResponse::Have {
            complete: row.complete,
        },
        // Answered by `BlobService::keep` (holders), refused elsewhere before this.
        BlobAsk::Keep(_) => missing,
        BlobAsk::Piece(piece) => {
            let count = piece_count(row.size);
            let have = row.complete
                || Bitmap::from_bytes(count, &row.have).is_some_and(|have| have.get(piece));
            if !have {
                return missing;
            }
            let files = ctx.files.clone();
            let hash = request.hash;
            let complete = row.complete;
            let size = row.size;
            match tokio::task::spawn_blocking(move || {
                files.encode_piece(&hash, size, complete, piece)
            })
            .await
            {
                #[cfg(feature = "test-faults")]
                Ok(Ok(mut slice)) if ctx.corrupt_pieces => {
                    let at = slice.len() / 2;
                    if let Some(b) = slice.get_mut(at) {
                        *b ^= 0x40;
                    }
                    BlobResponse::Piece(slice)
                }
                Ok(Ok(slice)) => BlobResponse::Piece(slice),
                Ok(Err(e)) => {
                    tracing::warn!(blob = %hash, piece, "cannot serve a piece (damaged file?): {e}");
                    missing
                }
                Err(_) => missing,
            }
        }
    }
}
