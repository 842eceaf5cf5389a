//! Gossip that heals: a peer that keeps a connection we already dropped (it was paused, or its
//! side never saw the close) does not announce its subscriptions on our next connection, and is
//! made to, by closing its connections once more; a connection that went silent is closed; and
//! what a node gossips after a burst stays within what a stock gossipsub peer accepts.

use std::net::SocketAddr;
use std::time::Duration;

use futures::StreamExt;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::SwarmEvent;
use libp2p::{gossipsub, Multiaddr, PeerId};
use peerdoc::testing::{Net, NetEvent};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::common::*;

/// A TCP proxy for one connection to a target, which it can make misbehave as a network
/// can: [`Proxy::cut`] closes the side towards the dialer and keeps the side towards the target
/// open but silent; [`Proxy::freeze`] keeps both open and carries nothing; [`Proxy::release`]
/// closes whatever is left.
struct Proxy {
    addr: SocketAddr,
    fault: mpsc::Sender<Fault>,
}

enum Fault {
    Cut,
    Freeze,
    Release,
}

impl Proxy {
    async fn to(target: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (fault, mut faults) = mpsc::channel(4);
        tokio::spawn(async move {
            let (dialer, _) = listener.accept().await.unwrap();
            let mut target = TcpStream::connect(target).await.unwrap();
            let mut dialer = Some(dialer);
            if let Some(d) = dialer.as_mut() {
                tokio::select! {
                    _ = tokio::io::copy_bidirectional(d, &mut target) => return,
                    fault = faults.recv() => match fault {
                        Some(Fault::Cut) => dialer = None,
                        Some(Fault::Freeze) => {}
                        Some(Fault::Release) | None => return,
                    },
                }
            }
            // Both sockets stay open (or only the target's, after a cut) and nothing moves.
            while let Some(fault) = faults.recv().await {
                if let Fault::Release = fault {
                    break;
                }
            }
            drop((dialer, target));
        });
        Proxy { addr, fault }
    }

    fn cut(&self) {
        self.fault.try_send(Fault::Cut).unwrap();
    }

    fn freeze(&self) {
        self.fault.try_send(Fault::Freeze).unwrap();
    }

    fn release(&self) {
        self.fault.try_send(Fault::Release).unwrap();
    }
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
    Multiaddr::from(addr.ip()).with(Protocol::Tcp(addr.port()))
}

/// The next event of `events` that `wanted` accepts, within `limit`.
async fn next_event(
    events: &mut mpsc::Receiver<NetEvent>,
    limit: Duration,
    what: &str,
    wanted: impl Fn(&NetEvent) -> bool,
) {
    let found = tokio::time::timeout(limit, async {
        while let Some(event) = events.recv().await {
            if wanted(&event) {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(found, Ok(true), "no {what} within {limit:?}");
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
    next_event(events, WAIT, what, |event| {
        if matches!(event, NetEvent::Disconnected { peer } if *peer == b) {
            let (a, addrs) = (a.clone(), vec![b_addr.clone()]);
            tokio::spawn(async move { a.dial(b, addrs).await });
        }
        wanted(event)
    })
    .await;
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
    let proxy = Proxy::to(b_socket).await;
    a.dial(b_id, vec![multiaddr(proxy.addr)]).await.unwrap();
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
    proxy.cut();
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
    next_event(&mut b_events, WAIT, "request of A's at B", |e| {
        matches!(e, NetEvent::Request { .. })
    })
    .await;
    proxy.release();

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
    next_event(
        &mut b_events,
        WAIT,
        "gossip of A's at B after the heal",
        |e| matches!(e, NetEvent::Gossip { data, .. } if data == b"after the heal"),
    )
    .await;
    cancel.cancel();
}

/// A connection that carries nothing any more (the peer's host vanished, a NAT dropped the
/// mapping; TCP alone would keep it for as long as nothing is sent) is closed by ping on both
/// sides, so it cannot keep taking gossip meant for the peer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "tier 2: waits up to a minute for ping to give up (scripts/test.sh runs it)"]
async fn a_connection_that_went_silent_is_closed_on_both_sides() {
    let cancel = CancellationToken::new();
    let (a, mut a_events) = bare_net(&cancel).await;
    let (b, mut b_events) = bare_net(&cancel).await;
    let b_socket = tcp_addr(&mut b_events).await;
    let proxy = Proxy::to(b_socket).await;
    a.dial(b.peer_id(), vec![multiaddr(proxy.addr)])
        .await
        .unwrap();
    // Frozen only once B has the connection too (A's side is up a message earlier).
    let a_id = a.peer_id();
    next_event(
        &mut b_events,
        WAIT,
        "connection from A at B",
        |e| matches!(e, NetEvent::Connected { peer } if *peer == a_id),
    )
    .await;
    proxy.freeze();
    // Ping runs every 15 s and waits 20 s for an answer (10 s to open its stream); libp2p
    // reports the second failure in a row, so a connection is closed 35 to 60 s after it went
    // silent. The limit only caps the wait.
    let limit = Duration::from_secs(150);
    let b_id = b.peer_id();
    next_event(
        &mut a_events,
        limit,
        "closing at A",
        |e| matches!(e, NetEvent::Disconnected { peer } if *peer == b_id),
    )
    .await;
    next_event(
        &mut b_events,
        limit,
        "closing at B",
        |e| matches!(e, NetEvent::Disconnected { peer } if *peer == a_id),
    )
    .await;
    cancel.cancel();
}

/// A gossipsub node as a stock rust-libp2p configures it (16 KiB of control data per RPC at
/// most) that keeps no peer in its mesh, so a peerdoc node reaches it with its own messages
/// (flood publishing) and with IHAVE lists of everything recent (gossip to non-mesh peers).
/// Returns its peer id, its address, and the data of every message it receives.
async fn stock_gossip_peer(
    topic: &str,
    cancel: &CancellationToken,
) -> (PeerId, Multiaddr, mpsc::Receiver<Vec<u8>>) {
    let config = gossipsub::ConfigBuilder::default()
        .validation_mode(gossipsub::ValidationMode::Anonymous)
        // peerdoc's message id (PROTOCOL.md): the first 20 bytes of BLAKE3(data).
        .message_id_fn(|m| gossipsub::MessageId::new(&blake3::hash(&m.data).as_bytes()[..20]))
        .mesh_outbound_min(0)
        .mesh_n_low(0)
        .mesh_n(0)
        .mesh_n_high(0)
        .max_transmit_size(64 * 1024)
        .build()
        .unwrap();
    let mut swarm = libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(
            libp2p::tcp::Config::default(),
            libp2p::noise::Config::new,
            libp2p::yamux::Config::default,
        )
        .unwrap()
        .with_behaviour(|_| {
            gossipsub::Behaviour::<
                gossipsub::IdentityTransform,
                gossipsub::AllowAllSubscriptionFilter,
            >::new(gossipsub::MessageAuthenticity::Anonymous, config)
            .unwrap()
        })
        .unwrap()
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
        .build();
    swarm
        .behaviour_mut()
        .subscribe(&gossipsub::IdentTopic::new(topic))
        .unwrap();
    swarm
        .listen_on("/ip4/127.0.0.1/tcp/0".parse().unwrap())
        .unwrap();
    let addr = loop {
        if let SwarmEvent::NewListenAddr { address, .. } = swarm.select_next_some().await {
            break address;
        }
    };
    let peer = *swarm.local_peer_id();
    let (tx, rx) = mpsc::channel(8192);
    let cancel = cancel.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                event = swarm.select_next_some() => {
                    if let SwarmEvent::Behaviour(gossipsub::Event::Message { message, .. }) = event {
                        let _ = tx.try_send(message.data);
                    }
                }
            }
        }
    });
    (peer, addr, rx)
}

/// After a burst, a peerdoc node has thousands of recent message ids to gossip about. A stock
/// gossipsub closes a stream whose control data is over 16 KiB, and after five closes gossip on
/// the connection is dead; peerdoc sends at most 500 ids per IHAVE (about 11 KB), so a stock
/// peer outside its mesh keeps receiving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stock_peer_outside_the_mesh_keeps_receiving_after_a_burst() {
    let cancel = CancellationToken::new();
    let topic = "pd1/burst".to_string();
    let (a, mut a_events) = bare_net(&cancel).await;
    let (r, r_addr, mut received) = stock_gossip_peer(&topic, &cancel).await;
    a.subscribe(topic.clone()).await;
    a.dial(r, vec![r_addr]).await.unwrap();
    next_event(
        &mut a_events,
        WAIT,
        "subscription of the stock peer",
        |e| matches!(e, NetEvent::Subscribed { peer, .. } if *peer == r),
    )
    .await;
    tokio::spawn(async move { while a_events.recv().await.is_some() {} });

    // About 650 messages a second for 6 s: gossipsub's IHAVE window (3 heartbeats of 700 ms)
    // holds over 1,300 ids, 30 KB as one list.
    let mut sent = 0;
    for batch in 0..60 {
        for i in 0..65 {
            let data = format!("burst {batch} {i} ").repeat(4).into_bytes();
            sent += usize::from(a.publish(topic.clone(), data).await.is_ok());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // (A publish fails only when the stock peer's queue is full.)
    assert!(sent > 3000, "only {sent} of 3,900 messages went out");
    // Several heartbeats after the burst, a message still reaches the stock peer.
    tokio::time::sleep(Duration::from_secs(3)).await;
    a.publish(topic.clone(), b"after the burst".to_vec())
        .await
        .unwrap();
    let delivered = tokio::time::timeout(WAIT, async {
        while let Some(data) = received.recv().await {
            if data == b"after the burst" {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(
        delivered,
        Ok(true),
        "gossip to the stock peer died after the burst"
    );
    cancel.cancel();
}
