//! Abuse limits: a peer flooding the topic and the sync protocol is banned while honest peers
//! keep converging, and fresh peer ids cannot take more connections than a node allows.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use peerdoc::DocId;

use super::common::*;
use peerdoc::core::ticket::Ticket;
use peerdoc::Node;
use tokio_util::sync::CancellationToken;

/// B appends a line `n` times; each time, how long until A's text has it.
async fn latencies(a: &Node, b: &Node, doc: &DocId, label: &str, n: usize) -> Vec<Duration> {
    let mut out = Vec::new();
    for i in 0..n {
        let line = format!("{label} {i}\n");
        let start = Instant::now();
        b.write(doc, line.clone(), true).await.unwrap();
        loop {
            if a.text(doc).await.unwrap().contains(&line) {
                break;
            }
            assert!(start.elapsed() < WAIT, "A never got {line:?}");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        out.push(start.elapsed());
    }
    out.sort();
    out
}

fn summary(sorted: &[Duration]) -> String {
    format!(
        "p50 {:.1} ms, max {:.1} ms",
        sorted[sorted.len() / 2].as_secs_f64() * 1e3,
        sorted[sorted.len() - 1].as_secs_f64() * 1e3
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_peer_is_banned_and_honest_peers_keep_converging() {
    let d = dirs(2);
    let (a, b) = (start(&d.paths[0]).await, start(&d.paths[1]).await);
    let doc = a.create_doc("flooded").await.unwrap();
    a.write(&doc.id, "start\n".into(), false).await.unwrap();
    let ticket = Ticket::decode(&a.ticket(&doc.id).await.unwrap()).unwrap();
    b.join(&ticket.encode(), None).await.unwrap();
    wait_doc_peer(&a, &doc.id, &b).await;
    // The reference: honest latency in this run before the attack.
    let quiet = latencies(&a, &b, &doc.id, "quiet", 20).await;

    let cancel = CancellationToken::new();
    let evil = bare_net_drained(&cancel).await;
    evil.dial(ticket.peer, ticket.addrs.clone()).await.unwrap();
    let topic = ticket.doc.topic_name();
    evil.subscribe(topic.clone()).await;
    let attacker_id = evil.peer_id().to_string();
    wait_until("A sees the attacker subscribe", async || {
        a.status().await.unwrap().docs[0]
            .peers
            .iter()
            .any(|p| p.peer.to_string() == attacker_id)
    })
    .await;

    // 1,000 invalid gossip messages and 1,000 invalid sync requests a second, for 8 seconds.
    let answered = Arc::new(AtomicUsize::new(0));
    let flood = {
        let (evil, topic, answered) = (evil.clone(), topic.clone(), answered.clone());
        let target = ticket.peer;
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(1));
            for i in 0u32..8000 {
                tick.tick().await;
                let garbage: Vec<u8> = i.to_le_bytes().iter().cycle().take(200).copied().collect();
                let _ = evil.publish(topic.clone(), garbage.clone()).await;
                let (evil, answered) = (evil.clone(), answered.clone());
                tokio::spawn(async move {
                    if evil.request(target, garbage).await.is_ok() {
                        answered.fetch_add(1, Ordering::Relaxed);
                    }
                });
            }
        })
    };
    let loud = latencies(&a, &b, &doc.id, "under flood", 20).await;

    // A has banned the attacker: disconnected, and a new connection is refused.
    let is_connected = async || {
        a.peers()
            .await
            .unwrap()
            .iter()
            .any(|p| p.peer.to_string() == attacker_id)
    };
    wait_until("A disconnects the attacker", async || !is_connected().await).await;
    flood.await.unwrap();
    let answered = answered.load(Ordering::Relaxed);
    assert!(
        answered < 1000,
        "most of the 8,000 flood requests go unanswered, {answered} were answered"
    );
    // Its dial arrives and is refused (counted), and no connection stays.
    let refused = || metric_value(&a.metrics_text(), "peerdoc_connections_refused_total");
    let before = refused();
    let _ = evil.dial(ticket.peer, ticket.addrs.clone()).await;
    wait_until(
        "A refuses the banned attacker's new connection",
        async || refused() > before,
    )
    .await;
    for _ in 0..20 {
        assert!(!is_connected().await, "A let the banned attacker back in");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Honest peers converge.
    b.write(&doc.id, "after the flood\n".into(), true)
        .await
        .unwrap();
    a.write(&doc.id, "and from a\n".into(), true).await.unwrap();
    let text = wait_converged(&[&a, &b], &doc.id, |t| {
        t.contains("after the flood") && t.contains("and from a")
    })
    .await;
    assert!(text.starts_with("start\n"), "{text}");
    assert_eq!(text.matches("under flood").count(), 20);
    eprintln!(
        "honest B→A latency, in-process nodes on loopback: quiet {}; under flood {}; \
         flood requests answered: {answered}",
        summary(&quiet),
        summary(&loud)
    );
    cancel.cancel();
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fresh_peer_ids_cannot_take_more_connections_than_allowed() {
    let d = dirs(2);
    let mut config = test_config(&d.paths[0], 0);
    config.max_connections = 12;
    let a = start_with(config).await;
    let b = start(&d.paths[1]).await;
    let doc = a.create_doc("popular").await.unwrap();
    b.join(&a.ticket(&doc.id).await.unwrap(), None)
        .await
        .unwrap();
    let a_addr = dial_addr(&a).await;

    let cancel = CancellationToken::new();
    let mut attackers = Vec::new();
    for _ in 0..50 {
        attackers.push(bare_net_drained(&cancel).await);
    }
    let dials = attackers.iter().map(|evil| {
        let addr = a_addr.clone();
        let peer = a.peer_id();
        async move {
            let _ =
                tokio::time::timeout(Duration::from_secs(10), evil.dial(peer, vec![addr])).await;
        }
    });
    futures::future::join_all(dials).await;
    // The witness: A counts the connections it refused (they close right after the handshake),
    // at least one for each attacker over the limit.
    let refused = || metric_value(&a.metrics_text(), "peerdoc_connections_refused_total");
    wait_until("A refuses the attackers over its limit", async || {
        refused() >= (50 + 1 - 12) as f64
    })
    .await;
    let connected = a.peers().await.unwrap().len();
    assert!(
        connected <= 12,
        "A allows 12 inbound connections, has {connected} peers"
    );
    assert!(connected >= 2, "some attackers got in: {connected}");

    // B (connected before the crowd) still syncs both ways.
    b.write(&doc.id, "from b\n".into(), true).await.unwrap();
    a.write(&doc.id, "from a\n".into(), true).await.unwrap();
    wait_converged(&[&a, &b], &doc.id, |t| {
        t.contains("from a") && t.contains("from b")
    })
    .await;
    cancel.cancel();
    a.shutdown().await;
    b.shutdown().await;
}
