//! Attachments (issue 24): files sealed for a document's members, content-addressed, fetched
//! piece by piece from every peer that has them, each piece verified on arrival. Refusals (a
//! stranger, a removed member, a bad piece) are counted where they arrive.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::common::*;
use peerdoc::core::blob::wire::{BlobAsk, BlobRequest, BlobResponse, Refusal};
use peerdoc::core::blob::{BlobRef, PIECE_BYTES};
use peerdoc::{Config, Error, Node, ReplicaLimits, Transfer, TransferState};
use tokio_util::sync::CancellationToken;

/// Bytes no sealed byte stream contains by chance: found in a file, they are plaintext.
const MARKER: &[u8] = b"attachment-plaintext-marker-k3v9";

/// A file of `size` bytes under `dir`: pseudo-random (no two pieces alike), the marker every
/// 64 KiB.
fn make_file(dir: &Path, name: &str, size: usize, seed: u64) -> (PathBuf, blake3::Hash) {
    let mut data = Vec::with_capacity(size + 8);
    let mut x = seed.wrapping_mul(2).wrapping_add(1);
    while data.len() < size {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        data.extend_from_slice(&x.to_le_bytes());
    }
    data.truncate(size);
    for at in (0..size.saturating_sub(MARKER.len())).step_by(64 * 1024) {
        data[at..at + MARKER.len()].copy_from_slice(MARKER);
    }
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, &data).unwrap();
    (path, blake3::hash(&data))
}

/// The attachment as `node` reads it back, hashed (read in parts, as the API streams it).
async fn read_hash(node: &Node, doc: &peerdoc::DocId, blob: BlobRef) -> blake3::Hash {
    let mut hasher = blake3::Hasher::new();
    let mut at = 0u64;
    while at < blob.size {
        let part = node.read_blob(doc, blob, at, 4 << 20).await.unwrap();
        assert!(!part.is_empty());
        at += part.len() as u64;
        hasher.update(&part);
    }
    hasher.finalize()
}

fn throttled(dir: &Path, rate: u64) -> Config {
    let mut config = test_config(dir, 0);
    config.attachments.serve_rate = rate;
    config
}

/// A document created on `a`, joined by every node of `others`, each seeing `a` as a peer.
async fn shared(a: &Node, others: &[&Node]) -> peerdoc::DocInfo {
    let doc = a.create_doc("with attachments").await.unwrap();
    a.write(&doc.id, "# Notes\n".into(), false).await.unwrap();
    for n in others {
        n.join(&a.ticket(&doc.id).await.unwrap(), None)
            .await
            .unwrap();
        wait_doc_peer(n, &doc.id, a).await;
    }
    doc
}

fn refused(node: &Node, what: &str, reason: &str) -> f64 {
    metric_value(
        &node.metrics_text(),
        &format!("peerdoc_access_refused_total{{what=\"{what}\",reason=\"{reason}\"}}"),
    )
}

async fn wait_done(rx: &mut tokio::sync::watch::Receiver<Transfer>) -> Transfer {
    tokio::time::timeout(
        Duration::from_secs(300),
        rx.wait_for(|t| matches!(t.state, TransferState::Done | TransferState::Failed(_))),
    )
    .await
    .expect("the download ends")
    .unwrap()
    .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_100_mb_file_added_on_a_is_fetched_byte_identical_on_b_and_stored_sealed() {
    let d = dirs(3);
    let (a, b) = (start(&d.paths[0]).await, start(&d.paths[1]).await);
    let doc = shared(&a, &[&b]).await;
    let (path, want) = make_file(&d.paths[2], "big.bin", 100 << 20, 7);
    let attached = a.attach(&doc.id, &path, None, true).await.unwrap();
    assert_eq!(attached.blob.size, 100 << 20);
    // The link reaches B with the document; the reference in it is all B needs.
    let text = wait_converged(&[&a, &b], &doc.id, |t| t.contains("big.bin")).await;
    let found = peerdoc::core::blob::refs_in(&text);
    assert_eq!(found, vec![attached.blob], "{text}");
    let transfer = b.fetch_blob_and_wait(&doc.id, found[0]).await.unwrap();
    assert_eq!(transfer.have, 100 << 20);
    assert_eq!(transfer.sources.len(), 1);
    assert_eq!(transfer.sources[0].peer, a.peer_id());
    assert_eq!(read_hash(&b, &doc.id, attached.blob).await, want);
    // Both keep ciphertext only; the marker is in the original file, so the search works.
    assert!(!files_containing(&d.paths[2], MARKER).is_empty());
    for (node, dir) in [(&a, &d.paths[0]), (&b, &d.paths[1])] {
        let _ = node;
        assert_eq!(files_containing(dir, MARKER), Vec::<String>::new());
    }
    // Listed on both, whole here, and each sees the other has it.
    let listed = b.blobs(&doc.id).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].here, 100 << 20);
    assert_eq!(listed[0].name.as_deref(), Some("big.bin"));
    assert_eq!(listed[0].peers, vec![a.peer_id()]);
    b.shutdown().await;
    a.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_holders_each_serve_part_of_a_download_and_one_leaving_changes_nothing() {
    let d = dirs(5);
    // Each source sends at most 4 MB/s: the download takes seconds, long enough to stop one.
    let a = start_with(throttled(&d.paths[0], 4 << 20)).await;
    let b = start_with(throttled(&d.paths[1], 4 << 20)).await;
    let c = start_with(throttled(&d.paths[2], 4 << 20)).await;
    let e = start(&d.paths[3]).await;
    let doc = shared(&a, &[&b, &c, &e]).await;
    let (path, want) = make_file(&d.paths[4], "video.mp4", 24 << 20, 11);
    let blob = a.attach(&doc.id, &path, None, false).await.unwrap().blob;
    for n in [&b, &c] {
        n.fetch_blob_and_wait(&doc.id, blob).await.unwrap();
    }
    for n in [&b, &c] {
        wait_doc_peer(&e, &doc.id, n).await;
    }
    let mut rx = e.fetch_blob(&doc.id, blob).await.unwrap();
    // C leaves a quarter of the way.
    tokio::time::timeout(
        Duration::from_secs(120),
        rx.wait_for(|t| t.have >= blob.size / 4 || t.state == TransferState::Done),
    )
    .await
    .unwrap()
    .unwrap();
    let left_at = rx.borrow().clone();
    assert_ne!(
        left_at.state,
        TransferState::Done,
        "the throttle made it slow"
    );
    c.shutdown().await;
    let done = wait_done(&mut rx).await;
    assert_eq!(done.state, TransferState::Done, "{done:?}");
    assert_eq!(read_hash(&e, &doc.id, blob).await, want);
    let bytes = |n: &Node| {
        done.sources
            .iter()
            .find(|s| s.peer == n.peer_id())
            .map_or(0, |s| s.bytes)
    };
    for n in [&a, &b, &c] {
        assert!(bytes(n) >= PIECE_BYTES, "every source served: {done:?}");
    }
    assert!(
        bytes(&a) + bytes(&b) > bytes(&c),
        "the others did the rest: {done:?}"
    );
    for n in [&e, &b, &a] {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_download_stopped_by_a_restart_resumes_from_what_was_verified() {
    let d = dirs(3);
    let a = start_with(throttled(&d.paths[0], 8 << 20)).await;
    let b = start(&d.paths[1]).await;
    let doc = shared(&a, &[&b]).await;
    let (path, want) = make_file(&d.paths[2], "data.bin", 32 << 20, 3);
    let blob = a.attach(&doc.id, &path, None, false).await.unwrap().blob;
    let mut rx = b.fetch_blob(&doc.id, blob).await.unwrap();
    tokio::time::timeout(
        Duration::from_secs(120),
        rx.wait_for(|t| t.have >= blob.size / 2),
    )
    .await
    .unwrap()
    .unwrap();
    b.shutdown().await;
    let b = start(&d.paths[1]).await;
    wait_doc_peer(&b, &doc.id, &a).await;
    let mut rx = b.fetch_blob(&doc.id, blob).await.unwrap();
    let kept = rx
        .wait_for(|t| t.state != TransferState::Looking)
        .await
        .unwrap()
        .have;
    let done = wait_done(&mut rx).await;
    assert_eq!(done.state, TransferState::Done, "{done:?}");
    assert!(
        kept >= blob.size / 3,
        "what was verified before the restart was kept: {kept}"
    );
    let fetched: u64 = done.sources.iter().map(|s| s.bytes).sum();
    assert!(
        fetched <= blob.size - kept + 4 * PIECE_BYTES,
        "only the rest was fetched again: {fetched} of {} with {kept} kept",
        blob.size
    );
    assert_eq!(read_hash(&b, &doc.id, blob).await, want);
    b.shutdown().await;
    a.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn strangers_and_removed_members_are_refused_and_see_only_ciphertext() {
    let d = dirs(3);
    let (a, b) = (start(&d.paths[0]).await, start(&d.paths[1]).await);
    let doc = shared(&a, &[&b]).await;
    let (path, _) = make_file(&d.paths[2], "secret.pdf", 600_000, 5);
    let blob = a.attach(&doc.id, &path, None, true).await.unwrap().blob;
    let owner = peerdoc::core::access::key_of(&a.peer_id()).unwrap();
    let cancel = CancellationToken::new();
    let stranger = bare_net_drained(&cancel).await;
    stranger
        .dial(a.peer_id(), vec![dial_addr(&a).await])
        .await
        .unwrap();
    let ask = |body| BlobRequest {
        topic: doc.id.topic(),
        owner,
        hash: blob.hash,
        body,
    };
    let before = refused(&a, "blob", "not_member");
    for body in [BlobAsk::Have, BlobAsk::Piece(0)] {
        let answer = stranger
            .request(a.peer_id(), ask(body).encode())
            .await
            .unwrap();
        assert_eq!(
            BlobResponse::decode(&answer).unwrap(),
            BlobResponse::Refused(Refusal::NotMember)
        );
    }
    assert_eq!(refused(&a, "blob", "not_member") - before, 2.0);
    // A member gets the piece: ciphertext, which verifies against the hash and is not the
    // file's bytes.
    let member = b.fetch_blob_and_wait(&doc.id, blob).await.unwrap();
    assert_eq!(member.state, TransferState::Done);
    // Garbage is refused as malformed, and counted.
    let answer = stranger
        .request(a.peer_id(), vec![3, 1, 2, 3])
        .await
        .unwrap();
    assert_eq!(
        BlobResponse::decode(&answer).unwrap(),
        BlobResponse::Refused(Refusal::Malformed)
    );
    assert_eq!(refused(&a, "blob", "malformed"), 1.0);
    // B is removed: the owner refuses its blob requests from then on. (B's own node knows
    // and asks no more; its key, on a modified node, asks anyway.)
    a.revoke(&doc.id, &b.peer_id().to_string(), &[])
        .await
        .unwrap();
    let (path2, _) = make_file(&d.paths[2], "after.pdf", 300_000, 6);
    let after = a.attach(&doc.id, &path2, None, true).await.unwrap().blob;
    b.shutdown().await;
    let modified = bare_net_as(&cancel, identity_of(&d.paths[1])).await.0;
    modified
        .dial(a.peer_id(), vec![dial_addr(&a).await])
        .await
        .unwrap();
    let before = refused(&a, "blob", "removed");
    for hash in [blob.hash, after.hash] {
        let request = BlobRequest {
            hash,
            ..ask(BlobAsk::Piece(0))
        };
        let answer = modified
            .request(a.peer_id(), request.encode())
            .await
            .unwrap();
        assert_eq!(
            BlobResponse::decode(&answer).unwrap(),
            BlobResponse::Refused(Refusal::Removed)
        );
    }
    assert_eq!(refused(&a, "blob", "removed") - before, 2.0);
    cancel.cancel();
    a.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_roles_and_garbage_collection() {
    let d = dirs(3);
    let mut config = test_config(&d.paths[0], 0);
    config.attachments.max_attachment_bytes = 1 << 20;
    config.attachments.max_doc_bytes = 3 << 20;
    let a = start_with(config).await;
    let r = start(&d.paths[1]).await;
    let doc = a.create_doc("limits").await.unwrap();
    let (big, _) = make_file(&d.paths[2], "big.bin", (1 << 20) + 1, 1);
    match a.attach(&doc.id, &big, None, false).await {
        Err(Error::AttachmentTooLarge { size, max }) => {
            assert_eq!((size, max), ((1 << 20) + 1, 1 << 20));
        }
        other => panic!("{other:?}"),
    }
    let mut blobs = Vec::new();
    for i in 0..3 {
        let (p, _) = make_file(&d.paths[2], &format!("f{i}.png"), 1 << 20, 100 + i);
        blobs.push(a.attach(&doc.id, &p, None, i == 0).await.unwrap().blob);
    }
    let (p, _) = make_file(&d.paths[2], "f3.png", 10, 200);
    assert!(matches!(
        a.attach(&doc.id, &p, None, false).await,
        Err(Error::DocAttachmentsFull { .. })
    ));
    // The same file again is the same attachment (no room taken).
    let (p0, _) = make_file(&d.paths[2], "f0.png", 1 << 20, 100);
    assert_eq!(
        a.attach(&doc.id, &p0, None, false).await.unwrap().blob,
        blobs[0]
    );
    // A reader adds nothing.
    let ticket = a.share(&doc.id, true).await.unwrap();
    r.join(&ticket, None).await.unwrap();
    assert!(matches!(
        r.attach(&doc.id, &p0, None, false).await,
        Err(Error::NotWriterForAttachments)
    ));
    // An attachment nobody online has: a clear error, and nothing kept.
    let nowhere = BlobRef {
        hash: peerdoc::core::blob::BlobHash([9; 32]),
        key: [1; 32],
        size: 5000,
    };
    match r.fetch_blob_and_wait(&doc.id, nowhere).await {
        Err(Error::AttachmentUnavailable(why)) => {
            assert!(why.contains("no online peer"), "{why}");
        }
        other => panic!("{other:?}"),
    }
    // Garbage collection: the grace period keeps everything young…
    assert_eq!(a.gc_blobs(None).await.unwrap().removed, 0);
    // …then what the document never referred to goes; the inserted one (now in a version
    // only) stays.
    a.record_version(&doc.id, Some("with picture"))
        .await
        .unwrap();
    a.write(&doc.id, "no more pictures".into(), false)
        .await
        .unwrap();
    let report = a.gc_blobs(Some(0)).await.unwrap();
    assert_eq!((report.removed, report.kept), (2, 1), "{report:?}");
    let listed = a.blobs(&doc.id).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].blob, Some(blobs[0]));
    assert_eq!(listed[0].here, 1 << 20);
    assert!(a.read_blob(&doc.id, blobs[1], 0, 10).await.is_err());
    r.shutdown().await;
    a.shutdown().await;
}

/// Tier 2 (a build with test faults): a hostile source that sends corrupted pieces.
#[cfg(feature = "test-faults")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "tier 2: needs the test-faults feature"]
async fn a_source_sending_a_corrupted_piece_is_banned_and_worked_around() {
    let d = dirs(4);
    let a = start(&d.paths[0]).await;
    let mut hostile = test_config(&d.paths[1], 0);
    hostile.corrupt_blob_pieces = true;
    let h = start_with(hostile).await;
    let c = start(&d.paths[2]).await;
    let doc = shared(&a, &[&h, &c]).await;
    let (path, want) = make_file(&d.paths[3], "photo.png", 4 << 20, 9);
    let blob = a.attach(&doc.id, &path, None, false).await.unwrap().blob;
    // H takes it honestly (its faults are in what it sends).
    h.fetch_blob_and_wait(&doc.id, blob).await.unwrap();
    wait_doc_peer(&c, &doc.id, &h).await;
    let before = refused(&c, "blob_piece", "corrupt");
    let done = c.fetch_blob_and_wait(&doc.id, blob).await.unwrap();
    let from_h = done
        .sources
        .iter()
        .find(|s| s.peer == h.peer_id())
        .expect("H was asked");
    assert!(from_h.banned, "{done:?}");
    assert_eq!(from_h.bytes, 0, "no byte of H's was kept");
    assert_eq!(refused(&c, "blob_piece", "corrupt") - before, 1.0);
    assert_eq!(read_hash(&c, &doc.id, blob).await, want);
    for n in [&c, &h, &a] {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_holder_keeps_attachments_sealed_and_serves_them_while_every_member_is_offline() {
    let d = dirs(4);
    let a = start(&d.paths[0]).await;
    let mut holder = test_config(&d.paths[1], 0);
    holder.replica = Some(ReplicaLimits::default());
    let r = start_with(holder).await;
    let doc = a.create_doc("album").await.unwrap();
    a.write(&doc.id, "# Album\n".into(), false).await.unwrap();
    let (early, _) = make_file(&d.paths[3], "before.png", 300_000, 30);
    let before = a.attach(&doc.id, &early, None, true).await.unwrap().blob;
    a.replicate(&doc.id, &dial_addr(&r).await.to_string())
        .await
        .unwrap();
    // Added after the holder was chosen: offered to it at once; the one before, when chosen.
    let (path, want) = make_file(&d.paths[3], "photo.png", 3 << 20, 31);
    let blob = a.attach(&doc.id, &path, None, true).await.unwrap().blob;
    wait_until("the holder keeps both attachments whole", async || {
        let listed = a.blobs(&doc.id).await.unwrap();
        listed.len() == 2 && listed.iter().all(|b| b.replicas == vec![r.peer_id()])
    })
    .await;
    let received = metric_value(&r.metrics_text(), "peerdoc_blob_bytes_received_total");
    assert!(received >= (blob.size + before.size) as f64, "{received}");
    // It keeps them sealed.
    assert_eq!(files_containing(&d.paths[1], MARKER), Vec::<String>::new());
    // Garbage collection on the holder keeps what it holds for others.
    assert_eq!(r.gc_blobs(Some(-1)).await.unwrap().removed, 0);
    let ticket = a.ticket(&doc.id).await.unwrap();
    a.shutdown().await;

    // B joins from the holder alone and fetches the attachment from it.
    let b = start(&d.paths[2]).await;
    b.join(&ticket, None).await.unwrap();
    let text = b.text(&doc.id).await.unwrap();
    assert!(text.contains(&blob.to_string()), "{text}");
    let done = b.fetch_blob_and_wait(&doc.id, blob).await.unwrap();
    assert_eq!(done.sources.len(), 1);
    assert_eq!(done.sources[0].peer, r.peer_id());
    assert_eq!(done.sources[0].bytes, blob.size);
    assert_eq!(read_hash(&b, &doc.id, blob).await, want);

    // A stranger asking the holder is refused, and counted there.
    let cancel = CancellationToken::new();
    let stranger = bare_net_drained(&cancel).await;
    stranger
        .dial(r.peer_id(), vec![dial_addr(&r).await])
        .await
        .unwrap();
    let owner = peerdoc::core::access::key_of(&a.peer_id()).unwrap();
    let before_refused = refused(&r, "blob", "not_member");
    for body in [BlobAsk::Have, BlobAsk::Piece(0), BlobAsk::Keep(10)] {
        let request = BlobRequest {
            topic: doc.id.topic(),
            owner,
            hash: blob.hash,
            body,
        };
        let answer = stranger
            .request(r.peer_id(), request.encode())
            .await
            .unwrap();
        assert_eq!(
            BlobResponse::decode(&answer).unwrap(),
            BlobResponse::Refused(Refusal::NotMember)
        );
    }
    assert_eq!(refused(&r, "blob", "not_member") - before_refused, 3.0);

    // The stranger makes the holder keep a document of its own under the same topic (it is
    // its owner there): the blobs of the real one stay apart, and a hash it merely knows
    // gets it nothing (asked to keep it, the holder wants a piece of it first).
    let (fake, mut events, fake_identity) = bare_net_keyed(&cancel).await;
    tokio::spawn(async move { while events.recv().await.is_some() {} });
    fake.dial(r.peer_id(), vec![dial_addr(&r).await])
        .await
        .unwrap();
    let fake_owner = peerdoc::core::access::key_of(&fake.peer_id()).unwrap();
    let r_key = peerdoc::core::access::key_of(&r.peer_id()).unwrap();
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let hold = peerdoc::core::access::HoldRecord::sign(doc.id, r_key, now_ms, true, &fake_identity);
    let records = peerdoc::core::hold::HoldRequest {
        topic: doc.id.topic(),
        owner: fake_owner,
        body: peerdoc::core::hold::wire::HoldBody::Records {
            doc: doc.id,
            roster: peerdoc::core::sync::members::Roster {
                holds: vec![hold],
                ..Default::default()
            },
        },
    };
    let answer = fake.request(r.peer_id(), records.encode()).await.unwrap();
    assert!(
        matches!(
            peerdoc::core::hold::HoldResponse::decode(&answer),
            Ok(peerdoc::core::hold::HoldResponse::Held(_))
        ),
        "the holder keeps the stranger's own document"
    );
    let missing_before = refused(&r, "blob", "missing");
    for body in [BlobAsk::Have, BlobAsk::Piece(0), BlobAsk::Keep(blob.size)] {
        let request = BlobRequest {
            topic: doc.id.topic(),
            owner: fake_owner,
            hash: blob.hash,
            body,
        };
        let answer = fake.request(r.peer_id(), request.encode()).await.unwrap();
        assert_eq!(
            BlobResponse::decode(&answer).unwrap(),
            BlobResponse::Refused(Refusal::Missing),
            "{body:?}"
        );
    }
    assert_eq!(refused(&r, "blob", "missing") - missing_before, 3.0);
    cancel.cancel();
    b.shutdown().await;
    r.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_holder_offline_when_an_attachment_was_added_gets_it_when_it_is_back() {
    let d = dirs(3);
    let a = start(&d.paths[0]).await;
    let mut holder = test_config(&d.paths[1], 0);
    holder.replica = Some(ReplicaLimits::default());
    let r = start_with(holder.clone()).await;
    let doc = a.create_doc("album").await.unwrap();
    a.replicate(&doc.id, &dial_addr(&r).await.to_string())
        .await
        .unwrap();
    r.shutdown().await;
    let (path, _) = make_file(&d.paths[2], "late.png", 700_000, 41);
    let blob = a.attach(&doc.id, &path, None, true).await.unwrap().blob;
    // The ask made while it was away gives up (a request waits for a connection until its
    // timeout, 5 s here): only a later check can reach it.
    tokio::time::sleep(Duration::from_secs(6)).await;
    // Back at another address: it dials A, and A's next check finds it lacks the attachment.
    let mut again = holder;
    again.bootstrap = vec![dial_addr(&a).await];
    let r = start_with(again).await;
    assert_eq!(
        metric_value(&r.metrics_text(), "peerdoc_blob_bytes_received_total"),
        0.0
    );
    wait_until(
        "the holder keeps the attachment it missed, whole",
        async || a.blobs(&doc.id).await.unwrap()[0].replicas == vec![r.peer_id()],
    )
    .await;
    assert!(
        metric_value(&r.metrics_text(), "peerdoc_blob_bytes_received_total") >= blob.size as f64
    );
    r.shutdown().await;
    a.shutdown().await;
}
