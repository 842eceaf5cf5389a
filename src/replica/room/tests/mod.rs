//! Room tests: storage and compaction, hostile updates, size limits, commits and echoes, a
//! full disk, unloading and sleeping; what a room publishes and receives is in `network`.

use super::*;
use crate::core::sync::{decode_awareness, YMessage, MAX_GOSSIP_UPDATE};
use crate::net::{Net, Published};
use crate::replica::presence::tests::presence_update as presence;
use crate::replica::presence::PRESENCE_TIMEOUT_MS;
use crate::replica::store::DocMeta;
use libp2p::PeerId;

mod network;

pub(super) async fn setup(
    compact_every: usize,
) -> (tempfile::TempDir, RoomContext, Published, DocMeta) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("db")).unwrap();
    let meta = DocMeta::new_for_test("n");
    store.create_doc(meta.clone()).await.unwrap();
    let (outbox, _) = mpsc::channel(16);
    let me = libp2p::identity::PublicKey::from(DocMeta::test_owner().public()).to_peer_id();
    let (net, published) = Net::detached(me);
    let ctx = RoomContext {
        store,
        net,
        holding: crate::replica::holding::HoldingHandle::detached(),
        outbox,
        compact_every,
        me,
        identity: DocMeta::test_owner(),
        max_doc_bytes: crate::replica::room::MAX_DOC_BYTES,
        clock: crate::replica::presence::system_clock(),
        unload_after: Duration::from_secs(300),
        metrics: crate::metrics::Metrics::unregistered(),
    };
    (dir, ctx, published, meta)
}

/// The next gossip `room` published, checked as a peer checks it: its topic, its signature,
/// opened with the document's keys.
pub(super) async fn published(out: &mut Published, room: &RoomHandle) -> Gossip {
    let (topic_name, data) = out.next().await.unwrap();
    assert_eq!(topic_name, room.topic_name);
    let (author, sealed) = gossip::verify(&room.topic, &data).unwrap();
    let me = libp2p::identity::PublicKey::from(DocMeta::test_owner().public()).to_peer_id();
    assert_eq!(author, me, "signed by this node");
    gossip::open(&room.keys(), &room.topic, sealed).unwrap()
}

/// A replica of the room's document, as a peer that synced it from scratch holds it.
async fn copy_of(room: &RoomHandle) -> Document {
    let (diff, _) = room
        .diff(Document::new().state_vector(), None)
        .await
        .unwrap();
    let mut copy = Document::new();
    copy.apply(&diff).unwrap();
    copy
}

/// The text the store holds once `room` is closed: what a restarted node would show.
async fn stored_text(room: RoomHandle, meta: &DocMeta, ctx: RoomContext) -> String {
    room.close().await;
    RoomHandle::open(meta, ctx)
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test]
async fn local_edits_are_stored_announced_and_survive_reload_with_compaction() {
    let (_dir, ctx, mut out, meta) = setup(3).await;
    let room = RoomHandle::open(&meta, ctx.clone()).await.unwrap();
    room.set_listened(true);
    let mut changes = room.subscribe().await.unwrap();
    for i in 0..7 {
        room.append_text(format!("{i}")).await.unwrap();
    }
    room.replace_text("0123456".into()).await.unwrap(); // no-op: nothing stored or sent
    assert!(matches!(
        published(&mut out, &room).await,
        Gossip::Update(_)
    ));
    assert_eq!(changes.recv().await.unwrap().origin, Origin::Api);
    room.close().await;
    assert!(room.text().await.is_err(), "closed room refuses work");

    let stored = ctx.store.load(meta.id).await.unwrap();
    assert!(stored.snapshot.is_some(), "compacted after 3 appends");
    assert!(stored.updates.len() < 7);
    let room = RoomHandle::open(&meta, ctx).await.unwrap();
    assert_eq!(room.text().await.unwrap(), "0123456");
}

#[tokio::test]
async fn garbage_remote_update_is_rejected_and_changes_nothing() {
    let (_dir, ctx, _out, meta) = setup(100).await;
    let room = RoomHandle::open(&meta, ctx.clone()).await.unwrap();
    room.append_text("safe".into()).await.unwrap();
    assert!(room.apply_remote(vec![1, 2, 3, 250, 250]).await.is_err());
    assert_eq!(room.text().await.unwrap(), "safe");
    assert_eq!(ctx.store.load(meta.id).await.unwrap().updates.len(), 1);
}

#[tokio::test]
async fn a_panicking_update_leaves_the_room_working() {
    let (_dir, ctx, _out, meta) = setup(100).await;
    let room = RoomHandle::open(&meta, ctx).await.unwrap();
    room.append_text("before\n".into()).await.unwrap();
    let panicking = crate::core::doc::tests::PANICKING_UPDATE.to_vec();
    assert!(room.apply_remote(panicking.clone()).await.is_err());
    assert!(room
        .apply_local(panicking, Origin::Session(1))
        .await
        .is_err());
    assert_eq!(room.text().await.unwrap(), "before\n");
    room.append_text("after\n".into()).await.unwrap();
    assert_eq!(copy_of(&room).await.text(), "before\nafter\n");
}

#[tokio::test]
async fn a_document_stops_growing_at_its_size_limit_whoever_writes() {
    let (_dir, mut ctx, _out, meta) = setup(1000).await;
    ctx.max_doc_bytes = 2_000;
    let room = RoomHandle::open(&meta, ctx.clone()).await.unwrap();
    let line = "x".repeat(100);
    let mut refused = None;
    for i in 0..100 {
        if let Err(e) = room.append_text(format!("{line}\n")).await {
            refused = Some((i, e));
            break;
        }
    }
    let (i, e) = refused.expect("the limit was reached");
    assert!(matches!(e, RoomError::TooLarge(_)), "{e}");
    assert!(i > 5, "well-sized edits went through first ({i})");
    let text = room.text().await.unwrap();
    // A peer's update is refused too, and changes nothing.
    let mut other = Document::new();
    let update = other.append_text(&"y".repeat(500)).unwrap();
    assert!(matches!(
        room.apply_remote(update).await,
        Err(RoomError::TooLarge(_))
    ));
    assert_eq!(room.text().await.unwrap(), text);
    // The limit holds after a reload (closing compacted the log into a smaller snapshot, which
    // still holds most of the allowance), without loading the document.
    room.close().await;
    let room = RoomHandle::open(&meta, ctx).await.unwrap();
    assert!(matches!(
        room.append_text("z".repeat(1_500)).await,
        Err(RoomError::TooLarge(_))
    ));
}

#[tokio::test]
async fn an_editors_change_reaches_others_before_its_commit_and_its_echo_after() {
    let (_dir, ctx, mut out, meta) = setup(1000).await;
    let room = RoomHandle::open(&meta, ctx.clone()).await.unwrap();
    room.set_listened(true);
    assert_eq!(
        room.text().await.unwrap(),
        "",
        "loaded before the disk stalls"
    );
    let mut changes = room.subscribe().await.unwrap();
    let release = ctx.store.pause().await;
    let mut editor = Document::new();
    let update = editor.append_text("typed").unwrap();
    // Returns while the disk is stalled: the room does not wait for the commit.
    room.apply_local(update, Origin::Session(7)).await.unwrap();
    let applied = changes.recv().await.unwrap();
    assert_eq!(
        (applied.origin, applied.stage),
        (Origin::Session(7), Stage::Applied)
    );
    assert!(matches!(
        published(&mut out, &room).await,
        Gossip::Update(_)
    ));
    assert_eq!(room.text().await.unwrap(), "typed");
    let early = tokio::time::timeout(Duration::from_millis(300), changes.recv()).await;
    assert!(early.is_err(), "no echo before the commit: {early:?}");

    drop(release);
    let echo = changes.recv().await.unwrap();
    assert_eq!(
        (echo.origin, echo.stage),
        (Origin::Session(7), Stage::Committed)
    );
    let YMessage::Update(echoed) = &*echo.message else {
        panic!("the echo is an update")
    };
    let mut fresh = Document::new();
    fresh.apply(echoed).unwrap();
    assert_eq!(fresh.text(), "typed");
    assert_eq!(stored_text(room, &meta, ctx).await, "typed");
}

#[tokio::test]
async fn an_editors_change_that_cannot_be_stored_is_kept_and_its_session_told() {
    let (_dir, ctx, _out, meta) = setup(1000).await;
    let room = RoomHandle::open(&meta, ctx.clone()).await.unwrap();
    room.append_text("before\n".into()).await.unwrap();
    let mut changes = room.subscribe().await.unwrap();
    ctx.store.limit_pages(Some(0)).await;
    let mut editor = copy_of(&room).await;
    let big = "x".repeat(200_000);
    let update = editor.append_text(&big).unwrap();
    room.apply_local(update, Origin::Session(3)).await.unwrap();
    let stages = [
        changes.recv().await.unwrap().stage,
        changes.recv().await.unwrap().stage,
    ];
    assert_eq!(stages, [Stage::Applied, Stage::NotStored]);
    assert!(room.text().await.unwrap().ends_with(&big), "kept in memory");

    ctx.store.limit_pages(None).await;
    room.append_text("after\n".into()).await.unwrap();
    assert_eq!(
        stored_text(room, &meta, ctx).await,
        format!("before\n{big}after\n")
    );
}

#[tokio::test]
async fn a_full_disk_costs_no_acknowledged_write_and_the_store_catches_up() {
    let (_dir, ctx, _out, meta) = setup(1000).await;
    let room = RoomHandle::open(&meta, ctx.clone()).await.unwrap();
    room.append_text("before\n".into()).await.unwrap();
    ctx.store.limit_pages(Some(0)).await;

    // An API write that cannot be stored changes nothing and says why.
    let big = "x".repeat(200_000);
    let err = room.append_text(big.clone()).await.unwrap_err();
    assert!(matches!(&err, RoomError::Store(e) if e.is_full()), "{err}");
    assert_eq!(room.text().await.unwrap(), "before\n");

    // A peer's change is kept in memory (not lost) although it cannot be stored yet.
    let mut peer = copy_of(&room).await;
    let remote = peer.append_text(&format!("{big}\nfrom a peer\n")).unwrap();
    room.apply_remote(remote).await.unwrap();
    assert!(room.text().await.unwrap().ends_with("from a peer\n"));
    // While the store lags, API writes are refused (they could not be rolled back exactly),
    // whether text or a raw update (`Node::apply_update`), and change nothing.
    assert!(room.append_text("refused\n".into()).await.is_err());
    let before = room.text().await.unwrap();
    let raw = peer.append_text("raw\n").unwrap();
    assert!(room.apply_local(raw, Origin::Api).await.is_err());
    assert_eq!(room.text().await.unwrap(), before);

    // Space returns: the next write stores everything (no restart needed).
    ctx.store.limit_pages(None).await;
    room.append_text("after\n".into()).await.unwrap();
    let expected = format!("before\n{big}\nfrom a peer\nafter\n");
    assert_eq!(room.text().await.unwrap(), expected);
    // What the store holds integrates completely: nothing acknowledged was lost.
    assert_eq!(stored_text(room, &meta, ctx).await, expected);
}

#[tokio::test]
async fn an_idle_document_is_unloaded_and_answers_peers_in_its_state_without_loading() {
    let (_dir, mut ctx, _out, meta) = setup(1000).await;
    ctx.unload_after = Duration::from_millis(300);
    let room = RoomHandle::open(&meta, ctx.clone()).await.unwrap();
    assert!(
        !room.is_loaded().await,
        "opening does not load the document"
    );
    room.append_text("hello\n".into()).await.unwrap();
    assert!(room.is_loaded().await);

    // An editor session keeps it loaded, however long it is idle.
    let session = room.subscribe().await.unwrap();
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert!(
        room.is_loaded().await,
        "a session keeps the document loaded"
    );
    drop(session);
    let mut waited = 0;
    while room.is_loaded().await {
        assert!(waited < 50, "an idle document is unloaded");
        tokio::time::sleep(Duration::from_millis(100)).await;
        waited += 1;
    }
    // It left a snapshot with its summary: the next open is a decode, not a replay.
    let stored = ctx.store.load_access(meta.id).await.unwrap();
    assert_eq!(stored.pending_log, 0);
    let summary = stored.summary.expect("summary stored with the snapshot");

    // A peer in the same state is answered without loading; one that is not gets the diff.
    assert_eq!(room.summary().await.unwrap(), summary);
    let (diff, sv) = room
        .diff(summary.sv.clone(), Some(summary.digest))
        .await
        .unwrap();
    assert_eq!((diff.as_slice(), &sv), (&EMPTY_UPDATE[..], &summary.sv));
    assert_eq!(room.apply_remote(diff).await.unwrap(), Applied::default());
    assert!(!room.is_loaded().await, "nothing was loaded");
    let fresh = Document::new();
    let (diff, _) = room
        .diff(fresh.state_vector(), Some(fresh.digest()))
        .await
        .unwrap();
    let mut peer = Document::new();
    peer.apply(&diff).unwrap();
    assert_eq!(peer.text(), "hello\n");
    assert_eq!(peer.digest(), summary.digest);
    assert!(room.is_loaded().await);

    // After a restart it opens unloaded, with its summary, and reads back.
    room.close().await;
    let room = RoomHandle::open(&meta, ctx).await.unwrap();
    assert_eq!(room.summary().await.unwrap(), summary);
    assert!(!room.is_loaded().await);
    assert_eq!(room.text().await.unwrap(), "hello\n");
}

#[tokio::test]
async fn a_sleeping_room_tells_its_summary_without_waking() {
    let (_dir, mut ctx, _out, meta) = setup(1000).await;
    ctx.unload_after = Duration::from_millis(200);
    let room = RoomHandle::open(&meta, ctx).await.unwrap();
    room.append_text("hello\n".into()).await.unwrap();
    // In a version now: unloading records none (which would change the summary).
    room.record_version(None).await.unwrap();
    let summary = room.summary().await.unwrap();
    let mut waited = 0;
    while !room.is_dormant() {
        assert!(waited < 100, "an idle room goes to sleep");
        tokio::time::sleep(Duration::from_millis(50)).await;
        waited += 1;
    }
    // What a status poll asks of every document.
    assert_eq!(room.summary().await.unwrap(), summary);
    assert!(room.is_dormant(), "the summary woke the room");
}
