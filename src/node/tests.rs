//! Node tests that need the inside of a node: a stalled room must not hold up other documents.

use std::time::Duration;

use libp2p::Multiaddr;

use super::*;

#[test]
fn bootstrap_addresses_need_a_peer_id() {
    let peer = PeerId::random();
    let with: Multiaddr = format!("/ip4/127.0.0.1/tcp/1/p2p/{peer}").parse().unwrap();
    assert_eq!(split_peer_addr(&with).unwrap().0, peer);
    assert!(split_peer_addr(&"/ip4/127.0.0.1/tcp/1".parse().unwrap()).is_none());
}

fn config(dir: &std::path::Path) -> Config {
    let mut config = Config::new(dir);
    config.listen = vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()];
    config.mdns = false;
    config.upnp = false;
    // Gossip only: anti-entropy would deliver the edit regardless of the driver's health.
    config.sync_interval = Duration::from_secs(3600);
    config.redial_interval = Duration::from_secs(3600);
    config.request_timeout = Duration::from_secs(5);
    config
}

/// Polls `condition` until it holds; fails with `what` after 30 s.
async fn wait_until(what: &str, mut condition: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !condition().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_room_does_not_delay_gossip_of_another_document() {
    let root = tempfile::tempdir().unwrap();
    let a = Node::spawn(config(&root.path().join("a"))).await.unwrap();
    let b = Node::spawn(config(&root.path().join("b"))).await.unwrap();
    let stuck = a.create_doc("stuck").await.unwrap();
    let lively = a.create_doc("lively").await.unwrap();
    for doc in [&stuck, &lively] {
        b.join(&a.ticket(&doc.id).await.unwrap(), None)
            .await
            .unwrap();
    }
    // Gossip reaches B once both subscriptions are known on both sides.
    for node in [&a, &b] {
        wait_until("subscriptions exchanged", async || {
            let status = node.status().await.unwrap();
            status.docs.iter().all(|d| !d.peers.is_empty())
        })
        .await;
    }

    // B's room for `stuck` stops answering (a busy document, a slow disk).
    let stuck_room = b.inner.rooms.get(&stuck.id).unwrap();
    let release = stuck_room.stall().await;
    // Edits for the stuck document, more than its room's queue holds (gossip that does not fit
    // is pulled once the room answers again), then one edit elsewhere.
    let writes = crate::replica::room::COMMAND_QUEUE + 20;
    for i in 0..writes {
        a.write(&stuck.id, format!("stuck {i}\n"), true)
            .await
            .unwrap();
    }
    a.write(&lively.id, "lively edit\n".into(), true)
        .await
        .unwrap();

    // The lively document gets its edit while the stuck room is still stalled.
    let lively_room = b.inner.rooms.get(&lively.id).unwrap();
    wait_until("the lively document's gossip arrived", async || {
        lively_room.text().await.unwrap() == "lively edit\n"
    })
    .await;
    assert!(
        !release.is_closed(),
        "the stuck room was still stalled when the other document's edit arrived"
    );

    // Released, the stuck document catches up (anti-entropy is off: by gossip and gap pulls).
    drop(release);
    a.write(&stuck.id, "last\n".into(), true).await.unwrap();
    wait_until("the stuck document caught up", async || {
        let text = b.text(&stuck.id).await.unwrap();
        text.lines().count() == writes + 1
    })
    .await;
    a.shutdown().await;
    b.shutdown().await;
}
