//! Members find each other without a central point: through each other (member exchange) and
//! through the DHT, on loopback with mDNS off.

use peerdoc::core::ticket::Ticket;
use peerdoc::DhtMode;

use super::common::*;

/// Nodes that use the DHT but do not serve it, as at home behind a NAT: only member exchange
/// can introduce them.
fn dht_client(dir: &std::path::Path, port: u16) -> peerdoc::Config {
    let mut config = test_config(dir, port);
    config.dht = DhtMode::Client;
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_meet_and_keep_editing_without_the_sharer() {
    let d = dirs(3);
    let a = start_with(dht_client(&d.paths[0], 0)).await;
    let b = start_with(dht_client(&d.paths[1], 0)).await;
    let c = start_with(dht_client(&d.paths[2], 0)).await;
    let c_port = tcp_port(&c).await;
    let doc = a.create_doc("shared").await.unwrap().id;
    a.write(&doc, "from a\n".into(), false).await.unwrap();
    let ticket = a.ticket(&doc).await.unwrap();
    b.join(&ticket, None).await.unwrap();
    c.join(&ticket, None).await.unwrap();

    // B and C only had A's address; A introduces them.
    wait_doc_peer(&b, &doc, &c).await;
    wait_doc_peer(&c, &doc, &b).await;

    // The sharer goes away for good; B and C keep editing together.
    a.shutdown().await;
    b.write(&doc, "from b\n".into(), true).await.unwrap();
    c.write(&doc, "from c\n".into(), true).await.unwrap();
    wait_converged(&[&b, &c], &doc, |t| {
        t.contains("from b") && t.contains("from c")
    })
    .await;

    // C restarts: it finds B again from what it remembered, not through A.
    c.shutdown().await;
    b.write(&doc, "while c was away\n".into(), true)
        .await
        .unwrap();
    let c = start_with(dht_client(&d.paths[2], c_port)).await;
    let text = wait_converged(&[&b, &c], &doc, |t| t.contains("while c was away")).await;
    assert_eq!(text.lines().count(), 4, "{text:?}");
    b.shutdown().await;
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_joiner_without_reachable_addresses_finds_the_document_through_the_dht() {
    let d = dirs(3);
    let a = start(&d.paths[0]).await;
    let a_port = tcp_port(&a).await;
    let b = start(&d.paths[1]).await;
    let doc = a.create_doc("findable").await.unwrap().id;
    a.write(&doc, "in the dht\n".into(), false).await.unwrap();
    let ticket = a.ticket(&doc).await.unwrap();
    b.join(&ticket, None).await.unwrap();
    // The sharer is gone: only the DHT can say that B holds the document.
    a.shutdown().await;

    // D knows B only as a bootstrap peer, and its ticket carries no address at all.
    let mut config = test_config(&d.paths[2], 0);
    config.bootstrap = vec![dial_addr(&b).await];
    let joiner = start_with(config).await;
    let mut bare = Ticket::decode(&ticket).unwrap();
    bare.addrs.clear();
    let joined = joiner.join(&bare.encode(), None).await.unwrap();
    assert_eq!(joined.id, doc);
    assert_eq!(joiner.text(&doc).await.unwrap(), "in the dht\n");

    // It stays in sync, with B now and with A when A comes back.
    joiner
        .write(&doc, "from the joiner\n".into(), true)
        .await
        .unwrap();
    let a = start_on(&d.paths[0], a_port).await;
    a.write(&doc, "a is back\n".into(), true).await.unwrap();
    wait_converged(&[&a, &b, &joiner], &doc, |t| {
        t.contains("from the joiner") && t.contains("a is back")
    })
    .await;
    for node in [&a, &b, &joiner] {
        node.shutdown().await;
    }
}

/// Two nodes on one host answer each other's AutoNAT probes, and each dial-back succeeds: that
/// says nothing about the internet, so neither calls itself public. The confirmations are seen
/// arriving and refused (a counter), not assumed absent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confirmations_from_the_same_host_do_not_make_a_node_public() {
    let d = dirs(2);
    let auto = |dir, bootstrap: Vec<libp2p::Multiaddr>| {
        let mut config = test_config(dir, 0);
        config.dht = DhtMode::Auto;
        config.bootstrap = bootstrap;
        config
    };
    let a = start_with(auto(&d.paths[0], Vec::new())).await;
    let b = start_with(auto(&d.paths[1], vec![dial_addr(&a).await])).await;
    let local = |node: &peerdoc::Node| {
        metric_value(
            &node.metrics_text(),
            "peerdoc_autonat_local_confirmations_total",
        )
    };
    wait_until("a same-host AutoNAT confirmation arrives", async || {
        local(&a) + local(&b) > 0.0
    })
    .await;
    for node in [&a, &b] {
        let status = node.status().await.unwrap();
        assert_ne!(status.nat, peerdoc::NatStatus::Public);
        assert!(status.public_addrs.is_empty(), "{:?}", status.public_addrs);
    }
    a.shutdown().await;
    b.shutdown().await;
}
