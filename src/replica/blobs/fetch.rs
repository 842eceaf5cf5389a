//! One download: ask the sources who has the blob whole, then ask those that do for different
//! pieces at once ([`Schedule`]), verify each piece as it arrives, write it where it belongs,
//! and make the pieces durable (files synced, then the store's bitmap) every few pieces, so
//! that a restart resumes from what is verified. Memory is bounded by the pieces in flight.

use std::time::{Duration, Instant};

use futures::stream::{FuturesUnordered, StreamExt};
use libp2p::PeerId;
use tokio::sync::watch;

use super::files::FilesError;
use super::{BlobContext, Transfer, TransferSource, TransferState};
use crate::core::access::KeyBytes;
use crate::core::blob::pieces::{decode_piece, piece_count, piece_span, PieceError};
use crate::core::blob::wire::{BlobAsk, BlobRequest, BlobResponse, Refusal};
use crate::core::blob::{Bitmap, BlobHash, Schedule};
use crate::replica::store::{unix_now_ms, BlobRow};

/// Pieces kept between two syncs of the partial files at most…
const SYNC_EVERY_PIECES: u32 = 32;
/// …and time between them at most.
const SYNC_EVERY: Duration = Duration::from_secs(1);
/// Failed requests after which a source is asked nothing more in this download.
const MAX_FAILURES: u32 = 3;
/// How long a source that said "busy" is left alone.
const BUSY_PAUSE: Duration = Duration::from_millis(200);
/// How long a source has to say whether it has the blob.
const HAVE_TIMEOUT: Duration = Duration::from_secs(10);

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
}

#[derive(Debug, thiserror::Error)]
enum FetchError {
    #[error("no online peer or holder of the document has this attachment yet")]
    NoSource,
    #[error(
        "every peer that had this attachment failed or left ({0} of {1} bytes kept for next time)"
    )]
    SourcesFailed(u64, u64),
    #[error("{0}")]
    Local(String),
}

pub(super) async fn run(ctx: BlobContext, job: FetchJob, progress: watch::Sender<Transfer>) {
    let result = fetch(&ctx, &job, &progress).await;
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
    let added = row
        .as_ref()
        .map_or(unix_now_ms() as i64 / 1000, |r| r.added);
    if let Some(row) = row.as_ref().filter(|r| r.complete) {
        if ctx.files.has_complete(&hash) {
            // Here already (perhaps for another document): attach it to this one too.
            ctx.store
                .put_blob(row.clone(), job.topic)
                .await
                .map_err(|e| local(&e))?;
            progress.send_modify(|t| t.have = size);
            return Ok(());
        }
    }
    let have = row
        .filter(|r| !r.complete)
        .and_then(|r| Bitmap::from_bytes(count, &r.have))
        .unwrap_or_else(|| Bitmap::new(count));
    let save = |have: &Bitmap, complete: bool| BlobRow {
        hash,
        size,
        have: have.as_bytes().to_vec(),
        complete,
        added,
    };
    ctx.store
        .put_blob(save(&have, false), job.topic)
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
                flying.push(async move { (i, piece, request.await) });
            }
        }
        if schedule.is_done() {
            break;
        }
        let Some((i, piece, answer)) = flying.next().await else {
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
                tokio::time::sleep(BUSY_PAUSE).await;
                schedule.failed(i, piece);
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
    let files = ctx.files.clone();
    tokio::task::spawn_blocking(move || files.complete(&hash, size))
        .await
        .map_err(|e| local(&e))?
        .map_err(|e| local(&e))?;
    ctx.store
        .put_blob(save(schedule.have(), true), job.topic)
        .await
        .map_err(|e| local(&e))?;
    report(&schedule, TransferState::Fetching);
    Ok(())
}

/// Makes the pieces written so far durable, then records them.
async fn persist(ctx: &BlobContext, job: &FetchJob, row: BlobRow) -> Result<(), FetchError> {
    let files = ctx.files.clone();
    let hash = job.hash;
    tokio::task::spawn_blocking(move || files.sync_partial(&hash))
        .await
        .map_err(|e| FetchError::Local(e.to_string()))?
        .map_err(|e| FetchError::Local(e.to_string()))?;
    ctx.store
        .put_blob(row, job.topic)
        .await
        .map_err(|e| FetchError::Local(e.to_string()))
}
