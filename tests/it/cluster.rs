//! Several real nodes co-editing: concurrent writes, restarts, offline edits.

use super::common::*;
use peerdoc::{DocId, Node};

async fn start3(d: &Dirs) -> (Node, Node, Node) {
    (
        start(&d.paths[0]).await,
        start(&d.paths[1]).await,
        start(&d.paths[2]).await,
    )
}

/// A creates `notes`; the others join from A's ticket.
async fn share(a: &Node, others: &[&Node], initial: &str) -> DocId {
    let doc = a.create_doc("notes").await.unwrap();
    a.write(&doc.id, initial.into(), false).await.unwrap();
    let ticket = a.ticket(&doc.id).await.unwrap();
    for node in others {
        let joined = node.join(&ticket, None).await.unwrap();
        assert_eq!(joined.id, doc.id);
        assert_eq!(
            node.text(&doc.id).await.unwrap(),
            initial,
            "join fetches the text"
        );
    }
    doc.id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_write_concurrently_and_converge() {
    let d = dirs(3);
    let (a, b, c) = start3(&d).await;
    let doc = share(&a, &[&b, &c], "title\n").await;

    // Every node appends concurrently, many times.
    let edits = |node: Node, tag: &'static str| {
        tokio::spawn(async move {
            for i in 0..10 {
                node.write(&doc, format!("{tag}{i}\n"), true).await.unwrap();
            }
        })
    };
    let tasks = [
        edits(a.clone(), "a"),
        edits(b.clone(), "b"),
        edits(c.clone(), "c"),
    ];
    for t in tasks {
        t.await.unwrap();
    }
    let text = wait_converged(&[&a, &b, &c], &doc, |t| {
        ["a", "b", "c"]
            .iter()
            .all(|tag| (0..10).all(|i| t.contains(&format!("{tag}{i}\n"))))
    })
    .await;
    assert!(text.starts_with("title\n"), "{text:?}");
    assert_eq!(text.lines().count(), 31);

    let status = a.status().await.unwrap();
    assert_eq!(status.docs.len(), 1);
    assert_eq!(
        status.docs[0].peers.len(),
        2,
        "A sees both peers sharing the doc"
    );
    for n in [&a, &b, &c] {
        n.shutdown().await;
    }
}

/// Received gossip dropped, duplicated and delayed (so reordered), and sync requests delayed,
/// on two of three nodes: every edit still arrives exactly once everywhere.
#[cfg(feature = "test-faults")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "tier 2: needs the test-faults feature (scripts/test.sh runs it)"]
async fn dropped_duplicated_and_reordered_messages_still_converge_exactly_once() {
    let d = dirs(3);
    let a = start(&d.paths[0]).await;
    let faulty = |path, seed| {
        let mut config = test_config(path, 0);
        config.message_faults = Some(
            format!("seed={seed},drop=20,dup=30,delay=30,max-delay-ms=300")
                .parse()
                .unwrap(),
        );
        config
    };
    let b = start_with(faulty(&d.paths[1], 1)).await;
    let c = start_with(faulty(&d.paths[2], 2)).await;
    let doc = share(&a, &[&b, &c], "title\n").await;
    wait_for_doc_peers(&b).await;
    for i in 0..40 {
        let node = [&a, &b, &c][i % 3];
        node.write(&doc, format!("line{i}\n"), true).await.unwrap();
    }
    let text = wait_converged(&[&a, &b, &c], &doc, |t| t.lines().count() == 41).await;
    let lines: std::collections::HashSet<&str> = text.lines().collect();
    assert_eq!(lines.len(), 41, "every line once: {text}");
    assert!((0..40).all(|i| lines.contains(format!("line{i}").as_str())));
    // The faults really happened (and only where asked for).
    for node in [&b, &c] {
        let metrics = node.metrics_text();
        for fault in ["drop", "duplicate", "delay"] {
            let count = metric_value(
                &metrics,
                &format!("peerdoc_injected_faults_total{{fault=\"{fault}\"}}"),
            );
            assert!(count > 0.0, "no {fault} injected:\n{metrics}");
        }
    }
    assert!(!a.metrics_text().contains("peerdoc_injected_faults"));
    for n in [&a, &b, &c] {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_node_catches_up_and_its_offline_edits_spread() {
    let d = dirs(3);
    let (a, b, c) = start3(&d).await;
    let ports = [tcp_port(&a).await, tcp_port(&b).await, tcp_port(&c).await];
    let doc = share(&a, &[&b, &c], "start\n").await;

    // C goes down; A and B keep editing.
    c.shutdown().await;
    a.write(&doc, "from a while c was down\n".into(), true)
        .await
        .unwrap();
    b.write(&doc, "from b while c was down\n".into(), true)
        .await
        .unwrap();
    wait_converged(&[&a, &b], &doc, |t| {
        t.contains("from a while") && t.contains("from b while")
    })
    .await;

    // A and B go down; C comes back alone and edits offline.
    a.shutdown().await;
    b.shutdown().await;
    let c = start_on(&d.paths[2], ports[2]).await;
    // A rewrite (minimal diff) of the line C knows, concurrent with A's and B's appends.
    let seen = c.text(&doc).await.unwrap();
    assert_eq!(seen, "start\n");
    c.write(&doc, "START\noffline edit on c\n".into(), false)
        .await
        .unwrap();
    assert!(
        !c.text(&doc).await.unwrap().contains("from a while"),
        "C has not met anyone yet"
    );

    // Everyone is back (same addresses): C catches up and its offline edit reaches A and B.
    let a = start_on(&d.paths[0], ports[0]).await;
    let b = start_on(&d.paths[1], ports[1]).await;
    let text = wait_converged(&[&a, &b, &c], &doc, |t| {
        t.contains("from a while") && t.contains("from b while") && t.contains("offline edit on c")
    })
    .await;
    assert!(text.starts_with("START\n"), "{text:?}");
    assert_eq!(text.lines().count(), 4, "{text:?}");
    for n in [&a, &b, &c] {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_documents_sync_in_chunks_and_large_edits_propagate() {
    let d = dirs(2);
    let (a, b) = (start(&d.paths[0]).await, start(&d.paths[1]).await);
    // 750 KB: far beyond one gossip message, three sync chunks.
    let big: String = (0..24_000)
        .map(|i| format!("line {i:05} of a long document\n"))
        .collect();
    assert!(big.len() > 2 * peerdoc::core::sync::CHUNK_SIZE);
    let doc = share(&a, &[], "").await;
    a.write(&doc, big.clone(), false).await.unwrap();
    let ticket = a.ticket(&doc).await.unwrap();
    b.join(&ticket, None).await.unwrap();
    assert_eq!(
        b.text(&doc).await.unwrap(),
        big,
        "join pulled the whole large state"
    );

    // A large live edit (announced over gossip, pulled over sync).
    let more: String = (0..3_000).map(|i| format!("appended {i}\n")).collect();
    a.write(&doc, more.clone(), true).await.unwrap();
    wait_converged(&[&a, &b], &doc, |t| t.ends_with(&more)).await;
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_preserves_documents_and_text() {
    let d = dirs(1);
    let a = start(&d.paths[0]).await;
    let doc = a.create_doc("keep me").await.unwrap();
    a.write(&doc.id, "persisted ✓ 🎉\n".into(), false)
        .await
        .unwrap();
    let peer_id = a.peer_id();
    a.shutdown().await;
    let a = start(&d.paths[0]).await;
    assert_eq!(a.peer_id(), peer_id, "identity is persistent");
    let listed = a.list_docs().await.unwrap();
    assert_eq!(listed.len(), 1);
    let kept = &listed[0];
    assert_eq!(
        (kept.id, &kept.name, kept.role, kept.created),
        (doc.id, &doc.name, doc.role, doc.created)
    );
    // Its size and last change are the write's.
    assert!(
        kept.size > doc.size && kept.changed >= doc.created,
        "{kept:?}"
    );
    assert_eq!(a.text("keep me").await.unwrap(), "persisted ✓ 🎉\n");
    assert_eq!(
        a.text(&doc.id.to_string()[..6]).await.unwrap(),
        "persisted ✓ 🎉\n",
        "unique prefix"
    );
    a.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_edits_arrive_by_gossip_without_waiting_for_anti_entropy() {
    let d = dirs(2);
    let slow = |dir| {
        let mut config = test_config(dir, 0);
        config.sync_interval = std::time::Duration::from_secs(3600);
        config
    };
    let a = start_with(slow(&d.paths[0])).await;
    let b = start_with(slow(&d.paths[1])).await;
    let doc = share(&a, &[&b], "").await;
    // Gossip reaches a peer once its subscription is known on both sides.
    for node in [&a, &b] {
        wait_for_doc_peers(node).await;
    }
    for i in 0..20 {
        a.write(&doc, format!("a{i}\n"), true).await.unwrap();
        b.write(&doc, format!("b{i}\n"), true).await.unwrap();
    }
    wait_converged(&[&a, &b], &doc, |t| t.lines().count() == 40).await;
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_listen_ports_are_reused_across_restarts() {
    let d = dirs(1);
    // Default listen addresses (all interfaces); nothing dials out, mDNS stays off.
    let defaults = || {
        let mut config = test_config(&d.paths[0], 0);
        config.listen.clear();
        config
    };
    let a = start_with(defaults()).await;
    let port = tcp_port(&a).await;
    a.shutdown().await;
    let a = start_with(defaults()).await;
    assert_eq!(
        tcp_port(&a).await,
        port,
        "peers that remember us can redial"
    );
    a.shutdown().await;
}
