//! Gossip that heals: a peer that keeps a connection we already dropped (it was paused, or its
//! side never saw the close) does not announce its subscriptions on our next connection, and is
//! made to, by closing its connections once more.

use std::net::SocketAddr;

use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};
use peerdoc::testing::{Net, NetEvent};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::common::*;

/// A TCP proxy for one connection to `to`. Firing `cut` closes the side towards the dialer and
/// keeps the side towards `to` open but silent; firing `release` closes that one too.
async fn half_closing_proxy(
    to: SocketAddr,
) -> (SocketAddr, oneshot::Sender<()>, oneshot::Sender<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (cut, cut_rx) = oneshot::channel::<()>();
    let (release, release_rx) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let (mut dialer, _) = listener.accept().await.unwrap();
        let mut target = TcpStream::connect(to).await.unwrap();
        tokio::select! {
            _ = tokio::io::copy_bidirectional(&mut dialer, &mut target) => {}
            _ = cut_rx => {}
        }
        drop(dialer);
        let _ = release_rx.await;
        drop(target);
    });
    (addr, cut, release)
}

/// The first loopback TCP address `events` report.
async fn tcp_addr(events: &mut mpsc::Receiver<NetEvent>) -> SocketAddr {
    loop {
        if let Some(NetEvent::Addresses(addrs)) = events.recv().await {
            for addr in addrs {
                let mut parts = addr.iter();
                if let (Some(Protocol::Ip4(ip)), Some(Protocol::Tcp(port))) =
                    (parts.next(), parts.next())
                {
                    return SocketAddr::from((ip, port));
                }
            }
        }
    }
}

fn multiaddr(addr: SocketAddr) -> Multiaddr {
    format!("/ip4/{}/tcp/{}", addr.ip(), addr.port())
        .parse()
        .unwrap()
}

/// A's next event that `wanted` accepts; whenever B disconnects, A dials it again at `b_addr`
/// (what the sync driver does for peers that share documents).
async fn next_redialing(
    a: &Net,
    events: &mut mpsc::Receiver<NetEvent>,
    b: PeerId,
    b_addr: &Multiaddr,
    what: &str,
    wanted: impl Fn(&NetEvent) -> bool,
) {
    let found = tokio::time::timeout(WAIT, async {
        loop {
            let event = events.recv().await.unwrap();
            if wanted(&event) {
                return;
            }
            if matches!(event, NetEvent::Disconnected { peer } if peer == b) {
                a.dial(b, vec![b_addr.clone()]).await.unwrap();
            }
        }
    })
    .await;
    assert!(found.is_ok(), "timed out waiting for {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_kept_a_stale_connection_announces_its_subscriptions_again() {
    let cancel = CancellationToken::new();
    let (a, mut a_events) = bare_net(&cancel).await;
    let (b, mut b_events) = bare_net(&cancel).await;
    let b_id = b.peer_id();
    let b_socket = tcp_addr(&mut b_events).await;
    let b_direct = multiaddr(b_socket);
    let topic = "pd1/heal".to_string();
    a.subscribe(topic.clone()).await;
    b.subscribe(topic.clone()).await;
    let subscribed_b =
        |e: &NetEvent| matches!(e, NetEvent::Subscribed { peer, .. } if *peer == b_id);

    // A reaches B through the proxy and learns B's subscription.
    let (proxy, cut, release) = half_closing_proxy(b_socket).await;
    a.dial(b_id, vec![multiaddr(proxy)]).await.unwrap();
    next_redialing(
        &a,
        &mut a_events,
        b_id,
        &b_direct,
        "B's subscription",
        subscribed_b,
    )
    .await;

    // A's side of that connection closes; B's stays open. A dials B directly: for B that is a
    // second connection, so B's gossipsub does not announce its subscriptions on it.
    cut.send(()).unwrap();
    next_redialing(
        &a,
        &mut a_events,
        b_id,
        &b_direct,
        "A reconnected to B",
        |e| matches!(e, NetEvent::Connected { peer } if *peer == b_id),
    )
    .await;
    // B has the new connection when a request of A's arrives over it; only then does B's stale
    // connection end (as a paused node's does once it runs again).
    let asked = a.clone();
    tokio::spawn(async move { asked.request(b_id, b"are you there".to_vec()).await });
    let arrived = tokio::time::timeout(WAIT, async {
        loop {
            if let Some(NetEvent::Request { .. }) = b_events.recv().await {
                return;
            }
        }
    })
    .await;
    assert!(arrived.is_ok(), "A's request never reached B");
    release.send(()).unwrap();

    // B never announces on this connection; A notices, closes it (counted), redials, and B
    // announces on the fresh one.
    next_redialing(
        &a,
        &mut a_events,
        b_id,
        &b_direct,
        "B's subscription again",
        subscribed_b,
    )
    .await;
    let rejoined = metric_value(&a.metrics_text(), "peerdoc_gossip_rejoined_total");
    assert_eq!(rejoined, 1.0, "A closed B's silent connection once");

    // Gossip from A reaches B again.
    a.publish(topic.clone(), b"after the heal".to_vec())
        .await
        .unwrap();
    let delivered = tokio::time::timeout(WAIT, async {
        loop {
            match b_events.recv().await {
                Some(NetEvent::Gossip { data, .. }) if data == b"after the heal" => return,
                Some(_) => {}
                None => panic!("B's events ended"),
            }
        }
    })
    .await;
    assert!(
        delivered.is_ok(),
        "A's gossip never reached B after the heal"
    );
    cancel.cancel();
}
