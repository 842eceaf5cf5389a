//! One download: ask the sources who has the blob whole, then ask those that do for different
//! pieces at once ([`Schedule`]), verify each piece as it arrives, write it where it belongs,
//! and make the pieces durable (files synced, then the store's bitmap) every few pieces, so
//! that a restart resumes from what is verified. Memory is bounded by the pieces in flight.

use std::time::{Duration, Instant};

use futures::stream::{FuturesUnordered, StreamExt};
use libp2p::PeerId;
use tokio::sync::watch;

use super::files::{BlobFiles, FilesError};
use super::BlobContext;
use crate::core::access::KeyBytes;
use crate::core::blob::pieces::{decode_piece, piece_count, piece_span, PieceError};
use crate::core::blob::wire::{BlobAsk, BlobRequest, BlobResponse, Refusal};
use crate::core::blob::{Bitmap, BlobHash, Schedule};
use crate::replica::store::{unix_now_ms, BlobRow, HeldKey};

/// Pieces kept between two syncs of the partial files at most…
const SYNC_EVERY_PIECES: u32 = 32;
/// …and time between them at most.
const SYNC_EVERY: Duration = Duration::from_secs(1);
/// Failed requests after which a source is asked nothing more in this download.
const MAX_FAILURES: u32 = 3;
/// How long a source that said "busy" is left alone…
const BUSY_PAUSE: Duration = Duration::from_millis(200);
/// …and how often it may say so before it is asked nothing more.
const MAX_BUSY: u32 = 50;
/// A download in which no answer came for this long gives up (what it has is kept).
const STALLED_AFTER: Duration = Duration::from_secs(60);
/// How long a source has to say whether it has the blob.
const HAVE_TIMEOUT: Duration = Duration::from_secs(10);

impl FetchJob {
    /// The document the blob is attached to, as the tables name it.
    pub(crate) fn doc(&self) -> HeldKey {
        HeldKey {
            topic: self.topic,
            owner: self.owner,
        }
    }
}

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

/// What became of a piece that arrived.
enum Written {
    Kept(u64),
    /// It does not match the hash: the source's fault.
    Bad(PieceError),
    /// It could not be written here.
    Local(FilesError),
}

/// A download to run: the blob (by its hash and size: the ciphertext is what travels, so a
/// holder fetches without a key), the document it is attached to, and who to ask.
#[derive(Debug, Clone)]
pub(crate) struct FetchJob {
    pub(crate) hash: BlobHash,
    pub(crate) size: u64,
    pub(crate) topic: [u8; 32],
    pub(crate) owner: KeyBytes,
    pub(crate) sources: Vec<PeerId>,
    /// Nobody watches it (a holder keeping what a writer asked it to): if it fails, what it
    /// fetched goes, so that a blob nobody sends does not hold room for ever.
    pub(crate) quiet: bool,
}

#[derive(Debug, thiserror::Error)]
enum FetchError {
    #[error("no online peer or holder of the document has this attachment yet")]
    NoSource,
    #[error(
        "every peer that had this attachment failed or left ({0} of {1} bytes kept for next time)"
    )]
    SourcesFailed(u64, u64),
    #[error("no peer answered for a minute ({0} of {1} bytes kept for next time)")]
    Stalled(u64, u64),
    #[error("{0}")]
    Local(String),
}

pub(super) async fn run(ctx: BlobContext, job: FetchJob, progress: watch::Sender<Transfer>) {
    let result = fetch(&ctx, &job, &progress).await;
    if let (Err(e), true) = (&result, job.quiet) {
        tracing::info!(blob = %job.hash, "a blob asked to be kept could not be fetched: {e}");
        if let Ok(Some(row)) = ctx.store.blob(job.hash).await {
            if !row.complete && matches!(ctx.store.delete_blob(job.hash, row.added).await, Ok(true))
            {
                let hash = job.hash;
                let _ = on_files(&ctx, move |f| f.remove_partial(&hash)).await;
            }
        }
    }
    progress.send_modify(|t| {
        t.state = match result {
            Ok(()) => TransferState::Done,
            Err(e) => TransferState::Failed(e.to_string()),
        }
    });
}

fn have_bytes(have: &Bitmap, size: u64) -> u64 {
    (0..have.len())
        .filter(|&p| have.get(p))
        .map(|p| piece_span(size, p).1)
        .sum()
}

async fn fetch(
    ctx: &BlobContext,
    job: &FetchJob,
    progress: &watch::Sender<Transfer>,
) -> Result<(), FetchError> {
    let (hash, size) = (job.hash, job.size);
    let local = |e: &dyn std::fmt::Display| FetchError::Local(e.to_string());
    if size > ctx.limits.max_bytes {
        return Err(FetchError::Local(format!(
            "the attachment is {size} bytes; this node takes at most {} (`max_attachment_bytes` in the config file)",
            ctx.limits.max_bytes
        )));
    }
    let count = piece_count(size);
    let row = ctx.store.blob(hash).await.map_err(|e| local(&e))?;
    // Fetched now: garbage collection leaves it alone for its grace period.
    let added = unix_now_ms() as i64 / 1000;
    if let Some(row) = row.as_ref().filter(|r| r.size != size) {
        if row.complete {
            return Err(FetchError::Local(format!(
                "this node has this attachment with {} bytes, not {size}: the reference is wrong",
                row.size
            )));
        }
        // A wrong size asked before (a bad reference): what was fetched for it goes.
        on_files(ctx, move |f| f.remove_partial(&hash))
            .await?
            .map_err(|e| local(&e))?;
    }
    let row = row.filter(|r| r.size == size);
    if let Some(mut row) = row
        .clone()
        .filter(|r| r.complete && ctx.files.has_complete(&hash))
    {
        // Here already (perhaps for another document): attach it to this one too.
        row.added = added;
        ctx.store
            .put_blob(row, job.doc())
            .await
            .map_err(|e| local(&e))?;
        progress.send_modify(|t| t.have = size);
        return Ok(());
    }
    if ctx.files.has_complete(&hash) {
        // Renamed into place, but stopped before the store said so: checked, then kept.
        if on_files(ctx, move |f| f.verify_complete(&hash, size)).await? {
            let row = BlobRow {
                hash,
                size,
                have: Bitmap::full(count).as_bytes().to_vec(),
                complete: true,
                added,
            };
            ctx.store
                .put_blob(row, job.doc())
                .await
                .map_err(|e| local(&e))?;
            progress.send_modify(|t| t.have = size);
            return Ok(());
        }
    }
    // Pieces the store says are here must be in the partial file (a file lost or cut short
    // since: fetched again).
    let partial_len = on_files(ctx, move |f| f.partial_len(&hash)).await?;
    let have = row
        .filter(|r| !r.complete)
        .and_then(|r| Bitmap::from_bytes(count, &r.have))
        .filter(|have| {
            (0..count).filter(|&p| have.get(p)).all(|p| {
                let (start, len) = piece_span(size, p);
                partial_len >= start + len
            })
        })
        .unwrap_or_else(|| Bitmap::new(count));
    let save = |have: &Bitmap, complete: bool| BlobRow {
        hash,
        size,
        have: have.as_bytes().to_vec(),
        complete,
        added,
    };
    ctx.store
        .put_blob(save(&have, false), job.doc())
        .await
        .map_err(|e| local(&e))?;
    progress.send_modify(|t| t.have = have_bytes(&have, size));

    let ask = |peer: PeerId, body: BlobAsk| {
        let request = BlobRequest {
            topic: job.topic,
            owner: job.owner,
            hash,
            body,
        }
        .encode();
        let net = ctx.net.clone();
        async move {
            let bytes = net
                .request(peer, request)
                .await
                .map_err(|e| e.to_string())?;
            BlobResponse::decode(&bytes).map_err(|e| e.to_string())
        }
    };
    // Who has it whole.
    let asked = futures::future::join_all(job.sources.iter().map(|&peer| async move {
        let answer = tokio::time::timeout(HAVE_TIMEOUT, ask(peer, BlobAsk::Have)).await;
        (peer, answer)
    }))
    .await;
    let mut schedule = Schedule::new(have);
    let mut peers: Vec<PeerId> = Vec::new();
    for (peer, answer) in asked {
        match answer {
            Ok(Ok(BlobResponse::Have { complete: true })) => {
                schedule.add_source();
                peers.push(peer);
            }
            other => tracing::debug!(blob = %hash, %peer, "not a source: {other:?}"),
        }
    }
    if peers.is_empty() && !schedule.is_done() {
        return Err(FetchError::NoSource);
    }
    let mut failures = vec![0u32; peers.len()];
    let mut busy = vec![0u32; peers.len()];
    let report = |schedule: &Schedule, state: TransferState| {
        let sources = peers
            .iter()
            .enumerate()
            .map(|(i, &peer)| TransferSource {
                peer,
                bytes: schedule.bytes_from(i),
                banned: schedule.is_banned(i),
            })
            .collect();
        progress.send_modify(|t| {
            t.have = have_bytes(schedule.have(), size);
            t.sources = sources;
            t.state = state;
        });
    };
    report(&schedule, TransferState::Fetching);

    let mut flying = FuturesUnordered::new();
    let (mut unsynced, mut synced_at) = (0u32, Instant::now());
    loop {
        for (i, &peer) in peers.iter().enumerate() {
            while let Some(piece) = schedule.next(i) {
                let request = ask(peer, BlobAsk::Piece(piece));
                flying.push(async move {
                    let answer = request.await;
                    // A busy source keeps its slot a moment: the others go on meanwhile.
                    if matches!(answer, Ok(BlobResponse::Refused(Refusal::Busy))) {
                        tokio::time::sleep(BUSY_PAUSE).await;
                    }
                    (i, piece, answer)
                });
            }
        }
        if schedule.is_done() {
            break;
        }
        let next = match tokio::time::timeout(STALLED_AFTER, flying.next()).await {
            Ok(next) => next,
            Err(_) => return Err(FetchError::Stalled(have_bytes(schedule.have(), size), size)),
        };
        let Some((i, piece, answer)) = next else {
            return Err(FetchError::SourcesFailed(
                have_bytes(schedule.have(), size),
                size,
            ));
        };
        if schedule.is_banned(i) {
            // Sent before the ban: nothing of a banned source is kept.
            schedule.failed(i, piece);
            continue;
        }
        match answer {
            Ok(BlobResponse::Piece(slice)) => {
                let files = ctx.files.clone();
                let written = tokio::task::spawn_blocking(move || {
                    match decode_piece(&hash, size, piece, &slice) {
                        Err(e) => Written::Bad(e),
                        Ok(v) => match files.write_piece(&hash, &v) {
                            Ok(()) => Written::Kept(v.data.len() as u64),
                            Err(e) => Written::Local(e),
                        },
                    }
                })
                .await
                .map_err(|e| local(&e))?;
                match written {
                    Written::Kept(bytes) => {
                        if schedule.arrived(i, piece, bytes) {
                            unsynced += 1;
                        }
                        ctx.metrics.blob_bytes_received.inc_by(bytes);
                    }
                    Written::Local(e) => return Err(local(&e)),
                    Written::Bad(e) => {
                        ctx.metrics.refused("blob_piece", "corrupt", 1);
                        tracing::warn!(blob = %hash, peer = %peers[i], piece, "a piece did not match the attachment's hash ({e}): that peer is asked nothing more for it");
                        schedule.corrupt(i, piece);
                    }
                }
            }
            Ok(BlobResponse::Refused(Refusal::Busy)) => {
                busy[i] += 1;
                if busy[i] >= MAX_BUSY {
                    schedule.gone(i);
                } else {
                    schedule.failed(i, piece);
                }
            }
            other => {
                tracing::debug!(blob = %hash, peer = %peers[i], piece, "piece request failed: {other:?}");
                failures[i] += 1;
                if failures[i] >= MAX_FAILURES || matches!(other, Ok(BlobResponse::Refused(_))) {
                    schedule.gone(i);
                } else {
                    schedule.failed(i, piece);
                }
            }
        }
        if unsynced >= SYNC_EVERY_PIECES || (unsynced > 0 && synced_at.elapsed() > SYNC_EVERY) {
            persist(ctx, job, save(schedule.have(), false)).await?;
            unsynced = 0;
            synced_at = Instant::now();
            report(&schedule, TransferState::Fetching);
        }
    }
    on_files(ctx, move |f| f.complete(&hash, size))
        .await?
        .map_err(|e| local(&e))?;
    ctx.store
        .put_blob(save(schedule.have(), true), job.doc())
        .await
        .map_err(|e| local(&e))?;
    report(&schedule, TransferState::Fetching);
    Ok(())
}

/// Runs file work on the blocking pool (the files block; the download's task must not).
async fn on_files<T: Send + 'static>(
    ctx: &BlobContext,
    work: impl FnOnce(&BlobFiles) -> T + Send + 'static,
) -> Result<T, FetchError> {
    let files = ctx.files.clone();
    tokio::task::spawn_blocking(move || work(&files))
        .await
        .map_err(|e| FetchError::Local(e.to_string()))
}

/// Makes the pieces written so far durable, then records them.
async fn persist(ctx: &BlobContext, job: &FetchJob, row: BlobRow) -> Result<(), FetchError> {
    let hash = job.hash;
    on_files(ctx, move |f| f.sync_partial(&hash))
        .await?
        .map_err(|e| FetchError::Local(e.to_string()))?;
    ctx.store
        .put_blob(row, job.doc())
        .await
        .map_err(|e| FetchError::Local(e.to_string()))
}
