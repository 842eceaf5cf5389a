//! Room tests: what a room publishes (sealed, signed, only when a peer listens; large edits
//! announced) and what it does with gossip and presence it receives.

use super::*;

#[tokio::test]
async fn nothing_is_sealed_or_published_while_no_peer_listens() {
    let (_dir, ctx, mut out, meta) = setup(100).await;
    let room = RoomHandle::open(&meta, ctx).await.unwrap();
    room.append_text("alone".into()).await.unwrap();
    room.set_listened(true);
    room.apply_awareness(presence(9, 1, "{}"), Origin::Session(1))
        .await
        .unwrap();
    assert!(
        matches!(published(&mut out, &room).await, Gossip::Awareness(_)),
        "the edit made while no peer listened was not published"
    );
}

#[tokio::test]
async fn big_local_edits_are_announced_not_gossiped() {
    let (_dir, ctx, mut out, meta) = setup(100).await;
    let room = RoomHandle::open(&meta, ctx).await.unwrap();
    room.set_listened(true);
    room.append_text("x".repeat(MAX_GOSSIP_UPDATE + 1))
        .await
        .unwrap();
    assert!(matches!(published(&mut out, &room).await, Gossip::Have(_)));
}

#[tokio::test]
async fn presence_is_shared_announced_removed_and_never_stored() {
    let (_dir, ctx, mut out, meta) = setup(100).await;
    let store = ctx.store.clone();
    let room = RoomHandle::open(&meta, ctx).await.unwrap();
    room.set_listened(true);
    let mut changes = room.subscribe().await.unwrap();

    assert_eq!(room.awareness_state().await.unwrap(), None);
    let named = room
        .apply_awareness(
            presence(7, 1, r#"{"user":{"name":"ada"}}"#),
            Origin::Session(1),
        )
        .await
        .unwrap();
    assert_eq!(named, vec![7], "the session learns which clients it owns");
    assert!(matches!(
        *changes.recv().await.unwrap().message,
        YMessage::Awareness(_)
    ));
    assert!(
        matches!(published(&mut out, &room).await, Gossip::Awareness(_)),
        "local presence goes to peers"
    );
    let state = room.awareness_state().await.unwrap().expect("one client");
    assert_eq!(decode_awareness(&state).unwrap().clients.len(), 1);

    // From a peer: shown locally, not echoed back to the network.
    room.apply_awareness(presence(8, 1, r#"{"user":{"name":"bob"}}"#), Origin::Remote)
        .await
        .unwrap();
    changes.recv().await.unwrap();

    // Garbage is refused.
    assert!(room
        .apply_awareness(vec![5, 200, 200], Origin::Session(1))
        .await
        .is_err());

    // A closed session's clients go away, and peers hear of it.
    room.remove_awareness(vec![7], Origin::Session(1))
        .await
        .unwrap();
    changes.recv().await.unwrap();
    // What goes out next is the removal alone: the peer's presence (client 8) was not
    // gossiped back.
    let Gossip::Awareness(removal) = published(&mut out, &room).await else {
        panic!("the removal goes to peers");
    };
    let named: Vec<yrs::ClientID> = decode_awareness(&removal)
        .unwrap()
        .clients
        .into_keys()
        .collect();
    assert_eq!(
        named,
        vec![yrs::ClientID::new(7)],
        "remote presence is not re-gossiped"
    );
    let state = room.awareness_state().await.unwrap().expect("bob remains");
    assert_eq!(decode_awareness(&state).unwrap().clients.len(), 1);
    assert!(
        store.load(meta.id).await.unwrap().updates.is_empty(),
        "presence is not stored"
    );
}

#[tokio::test]
async fn gossip_is_applied_stored_and_asks_for_pulls_only_when_something_is_missing() {
    let (_dir, ctx, mut out, meta) = setup(100).await;
    let store = ctx.store.clone();
    let room = RoomHandle::open(&meta, ctx).await.unwrap();
    room.set_listened(true);
    let mut author = Document::new();
    let first = author.append_text("one ").unwrap();
    let second = author.append_text("two").unwrap();
    let gap = room
        .receive_gossip(Gossip::Update(second), PeerId::random())
        .await
        .unwrap();
    assert!(
        gap.pull,
        "an update without its predecessor asks for a pull"
    );
    let filled = room
        .receive_gossip(Gossip::Update(first), PeerId::random())
        .await
        .unwrap();
    assert!(!filled.pull);
    // The early update was not kept (it would have been parked across a hole): the pull it
    // asked for brings it.
    assert_eq!(room.text().await.unwrap(), "one ");
    let diff = author.diff(&room.state_vector().await.unwrap()).unwrap();
    room.apply_remote(diff).await.unwrap();
    assert_eq!(room.text().await.unwrap(), "one two");
    let have = room
        .receive_gossip(Gossip::Have(author.state_vector()), PeerId::random())
        .await
        .unwrap();
    assert!(!have.pull, "not behind the announcer");
    author.append_text("!");
    let have = room
        .receive_gossip(Gossip::Have(author.state_vector()), PeerId::random())
        .await
        .unwrap();
    assert!(have.pull, "behind the announcer");
    room.text().await.unwrap(); // the store write of the gossip is queued before this
    assert_eq!(
        store.load(meta.id).await.unwrap().updates.len(),
        2,
        "each change stored once"
    );
    // The next thing the room publishes is a local presence change: the remote edits before
    // it were not re-gossiped.
    room.apply_awareness(presence(9, 1, "{}"), Origin::Session(1))
        .await
        .unwrap();
    assert!(
        matches!(published(&mut out, &room).await, Gossip::Awareness(_)),
        "remote edits are not re-gossiped by the room"
    );
}

#[tokio::test]
async fn presence_expires_after_thirty_seconds_without_renewal() {
    let (_dir, mut ctx, _out, meta) = setup(100).await;
    let now = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let clock = now.clone();
    ctx.clock = Arc::new(move || clock.load(std::sync::atomic::Ordering::Relaxed));
    let room = RoomHandle::open(&meta, ctx).await.unwrap();
    let mut changes = room.subscribe().await.unwrap();
    room.apply_awareness(presence(9, 1, r#"{"user":{"name":"eve"}}"#), Origin::Remote)
        .await
        .unwrap();
    changes.recv().await.unwrap();
    // Just before the timeout a check keeps the state.
    now.store(
        PRESENCE_TIMEOUT_MS - 1,
        std::sync::atomic::Ordering::Relaxed,
    );
    room.check_presence().await;
    assert!(room.awareness_state().await.unwrap().is_some());
    assert!(changes.try_recv().is_err(), "nothing expired");
    // The first check after the timeout removes it and tells the sessions.
    now.store(
        PRESENCE_TIMEOUT_MS + 1,
        std::sync::atomic::Ordering::Relaxed,
    );
    room.check_presence().await;
    let removal = changes.try_recv().expect("the check told the sessions");
    assert!(matches!(*removal.message, YMessage::Awareness(_)));
    assert_eq!(room.awareness_state().await.unwrap(), None, "expired");
}
