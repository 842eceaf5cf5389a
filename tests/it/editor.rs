//! The editor-facing server: the y-websocket endpoint under hostile input, and local-only access.

use futures::{SinkExt, StreamExt};
use peerdoc::api::Server;
use peerdoc::core::doc::Document;
use peerdoc::core::sync::YMessage;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::StatusCode;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;

use super::common::*;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(node: &Served, doc: impl std::fmt::Display) -> Socket {
    let url = node.ws_url(&format!("/ws/{doc}"));
    let (socket, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("websocket handshake");
    socket
}

/// Next binary frame, decoded; skips nothing silently.
async fn next_message(socket: &mut Socket) -> Option<Message> {
    tokio::time::timeout(WAIT, socket.next())
        .await
        .expect("no frame in time")
        .and_then(Result::ok)
}

/// Sends `frame` and expects the server to close with a policy violation.
async fn expect_closed(node: &Served, doc: impl std::fmt::Display, frame: Message) {
    let mut socket = connect(node, doc).await;
    // The server greets with its state vector (sync step 1).
    match next_message(&mut socket).await {
        Some(Message::Binary(b)) => {
            assert!(matches!(YMessage::decode(&b), Ok(YMessage::SyncStep1(_))))
        }
        other => panic!("expected sync step 1, got {other:?}"),
    }
    socket.send(frame.clone()).await.unwrap();
    loop {
        match next_message(&mut socket).await {
            Some(Message::Close(Some(close))) => {
                assert_eq!(close.code, CloseCode::Policy, "{frame:?}: {close:?}");
                return;
            }
            None | Some(Message::Close(None)) => panic!("{frame:?}: closed without a reason"),
            Some(_) => continue,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_frames_close_the_connection_and_change_nothing() {
    let d = dirs(1);
    let node = start_served(&d.paths[0]).await;
    let doc = node.create_doc("target").await.unwrap().id;
    node.write(&doc, "untouched\n".into(), false).await.unwrap();

    let bad: Vec<Message> = vec![
        Message::Binary(vec![0x80].into()),             // truncated varint
        Message::Binary(vec![0x00, 0x80, 0x80].into()), // truncated sync type
        Message::Binary(vec![0x09, 0x00].into()),       // unknown message type
        Message::Binary(vec![0x00, 0x07, 0x00].into()), // unknown sync type
        Message::Binary(vec![0x00, 0x02, 0xff, 0xff, 0xff, 0xff, 0x0f, 1].into()), // huge length
        Message::Binary(vec![0x01, 0xff, 0xff, 0xff, 0x7f].into()), // huge awareness
        Message::Binary(YMessage::Update(vec![7; 50]).encode().into()), // not a Yjs update
        Message::Binary(Vec::new().into()),             // empty frame
        Message::Text("hello".into()),                  // text frame
        // Presence floods: 30,000 entries in one frame (390 KB), and one 100 KB state.
        Message::Binary(presence_frame(30_000, r#"{"user":{"name":"x"}}"#).into()),
        Message::Binary(
            presence_frame(1, &format!(r#"{{"blob":"{}"}}"#, "x".repeat(100_000))).into(),
        ),
    ];
    for frame in bad {
        expect_closed(&node, &doc, frame).await;
    }
    // A frame with a valid message followed by garbage is refused as a whole.
    let mut writer = Document::new();
    let good = YMessage::Update(writer.append_text("SHOULD NOT LAND").unwrap()).encode();
    let mut mixed = good.clone();
    mixed.push(0x80);
    expect_closed(&node, &doc, Message::Binary(mixed.into())).await;

    assert_eq!(
        node.text(&doc).await.unwrap(),
        "untouched\n",
        "the document is unaffected"
    );
    assert!(node.status().await.is_ok(), "the node is unaffected");

    // The endpoint still works for a well-behaved client.
    let mut socket = connect(&node, &doc).await;
    next_message(&mut socket).await;
    let mut client = Document::new();
    client
        .apply(&node_state(&node, &doc).await)
        .expect("node state applies");
    let update = client.append_text("from a client\n").unwrap();
    socket
        .send(Message::Binary(YMessage::Update(update).encode().into()))
        .await
        .unwrap();
    wait_until("the client's update lands", async || {
        node.text(&doc).await.unwrap() == "untouched\nfrom a client\n"
    })
    .await;
    node.shutdown().await;
}

/// A y-websocket awareness frame naming `clients` clients, each with `state`.
fn presence_frame(clients: u64, state: &str) -> Vec<u8> {
    presence_frame_from(1, clients, state)
}

/// The node's full state, via a websocket sync step 1 with an empty state vector.
async fn node_state(node: &Served, doc: impl std::fmt::Display) -> Vec<u8> {
    let mut socket = connect(node, doc).await;
    next_message(&mut socket).await;
    request_state(&mut socket).await
}

/// Sends a sync step 1 with an empty state vector on an open session and returns the node's
/// answer (its full state); the session must stay open meanwhile.
async fn request_state(socket: &mut Socket) -> Vec<u8> {
    let empty = Document::new().state_vector();
    socket
        .send(Message::Binary(YMessage::SyncStep1(empty).encode().into()))
        .await
        .unwrap();
    loop {
        match next_message(socket).await {
            Some(Message::Binary(b)) => {
                if let Ok(YMessage::SyncStep2(state)) = YMessage::decode(&b) {
                    return state;
                }
            }
            Some(Message::Close(close)) => panic!("the session ended: {close:?}"),
            None => panic!("the session ended without a close frame"),
            Some(_) => {}
        }
    }
}

async fn handshake_status(node: &Served, path: &str, headers: &[(&str, &str)]) -> StatusCode {
    let mut request = node.ws_url(path).into_client_request().unwrap();
    for (k, v) in headers {
        let name =
            tokio_tungstenite::tungstenite::http::HeaderName::from_bytes(k.as_bytes()).unwrap();
        request.headers_mut().insert(name, v.parse().unwrap());
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok((_, response)) => response.status(),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => response.status(),
        Err(e) => panic!("unexpected handshake error: {e}"),
    }
}

async fn http_status(node: &Served, path: &str, headers: &[(&str, &str)]) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = node.http_addr();
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut request = format!("GET {path} HTTP/1.1\r\nConnection: close\r\n");
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    response[9..12].parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_origins_and_rebound_hosts_are_refused() {
    let d = dirs(1);
    let node = start_served(&d.paths[0]).await;
    let doc = node.create_doc("private").await.unwrap().id;
    let own = format!("{}", node.http_addr());
    let own_origin = format!("http://{own}");
    let ws_path = format!("/ws/{doc}");

    assert_eq!(
        handshake_status(&node, &ws_path, &[]).await,
        StatusCode::SWITCHING_PROTOCOLS
    );
    assert_eq!(
        handshake_status(&node, &ws_path, &[("origin", &own_origin)]).await,
        StatusCode::SWITCHING_PROTOCOLS
    );
    assert_eq!(
        handshake_status(&node, &ws_path, &[("origin", "http://evil.example")]).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        handshake_status(&node, &ws_path, &[("host", "evil.example")]).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        handshake_status(&node, "/ws/nope", &[]).await,
        StatusCode::NOT_FOUND
    );

    let text = format!("/api/docs/{doc}/text");
    let bearer = node.bearer();
    let auth = ("Authorization", bearer.as_str());
    assert_eq!(
        http_status(&node, &text, &[("Host", &own), auth]).await,
        200
    );
    assert_eq!(
        http_status(&node, &text, &[("Host", "attacker.example:7777"), auth]).await,
        403
    );
    assert_eq!(
        http_status(&node, &text, &[("Host", "10.0.0.1:7777"), auth]).await,
        403
    );
    assert_eq!(
        http_status(
            &node,
            &text,
            &[("Host", &own), ("Origin", "http://evil.example"), auth]
        )
        .await,
        403
    );
    assert_eq!(
        http_status(&node, "/", &[("Host", &own), auth]).await,
        200,
        "the editor page is served"
    );
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configured_access_token_is_enforced_and_a_missing_one_generated() {
    let d = dirs(2);
    let node = serve_with(test_config(&d.paths[0], 0), Some("s3cret-token")).await;
    let own = format!("{}", node.http_addr());
    assert_eq!(
        http_status(&node, "/api/docs", &[("Host", &own)]).await,
        403
    );
    assert_eq!(
        http_status(
            &node,
            "/api/docs",
            &[("Host", &own), ("Authorization", "Bearer s3cret-token")]
        )
        .await,
        200
    );
    assert_eq!(
        http_status(&node, "/api/docs?token=s3cret-token", &[("Host", &own)]).await,
        200
    );
    assert_eq!(
        http_status(&node, "/api/docs?token=wrong", &[("Host", &own)]).await,
        403
    );
    assert_eq!(node.token(), "s3cret-token");
    node.shutdown().await;

    // Without one, each server generates its own: 32 random bytes, never the same twice.
    let a = Server::bind("127.0.0.1:0".parse().unwrap(), None)
        .await
        .unwrap();
    let b = Server::bind("127.0.0.1:0".parse().unwrap(), Some(String::new()))
        .await
        .unwrap();
    assert_eq!(a.token().len(), 64, "{}", a.token());
    assert!(a.token().bytes().all(|c| c.is_ascii_hexdigit()));
    assert_ne!(a.token(), b.token());
    assert_eq!(
        a.editor_url(),
        format!("http://{}/?token={}", a.addr(), a.token())
    );
}

/// Present clients in the awareness state a new editor session receives.
async fn present_clients(node: &Served, doc: impl std::fmt::Display) -> usize {
    let mut socket = connect(node, doc).await;
    socket
        .send(Message::Binary(YMessage::QueryAwareness.encode().into()))
        .await
        .unwrap();
    loop {
        match next_message(&mut socket).await {
            Some(Message::Binary(b)) => {
                if let Ok(YMessage::Awareness(update)) = YMessage::decode(&b) {
                    let update = peerdoc::core::sync::decode_awareness(&update).unwrap();
                    return update
                        .clients
                        .values()
                        .filter(|e| &*e.json != "null")
                        .count();
                }
            }
            other => panic!("expected an awareness answer, got {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_flooding_presence_gets_a_bounded_share_and_the_node_keeps_answering() {
    use peerdoc::core::envelope::Purpose;
    use peerdoc::core::ticket::Ticket;

    let d = dirs(1);
    let node = start_served(&d.paths[0]).await;
    let doc = node.create_doc("crowded").await.unwrap().id;
    let other = node.create_doc("quiet").await.unwrap().id;
    node.write(&other, "still here\n".into(), false)
        .await
        .unwrap();
    let ticket = Ticket::decode(&node.ticket(&doc).await.unwrap()).unwrap();

    // A member gone bad: it holds the key, so its gossip opens.
    let cancel = tokio_util::sync::CancellationToken::new();
    let (evil, evil_key) = bare_net_keyed_drained(&cancel).await;
    evil.dial(ticket.peer, ticket.addrs.clone()).await.unwrap();
    admit_as_member(&evil, &ticket).await;
    evil.subscribe(ticket.doc.topic_name()).await;
    let evil_id = evil.peer_id().to_string();
    wait_until("the node sees the member subscribe", async || {
        node.status()
            .await
            .unwrap()
            .docs
            .iter()
            .any(|d| d.peers.iter().any(|p| p.peer.to_string() == evil_id))
    })
    .await;

    // 200 messages of 64 new clients each (12,800 clients), then huge and non-JSON states.
    let topic = ticket.doc.topic();
    let seal = |frame: Vec<u8>| {
        let sealed = ticket.keyring().seal(&topic, Purpose::Gossip, &frame);
        peerdoc::core::sync::gossip::sign(&evil_key, &topic, &sealed)
    };
    for batch in 0..200u64 {
        let frame = presence_frame_from(batch * 64, 64, r#"{"user":{"name":"bot"}}"#);
        let _ = evil.publish(ticket.doc.topic_name(), seal(frame)).await;
    }
    let huge = format!(r#"{{"blob":"{}"}}"#, "x".repeat(30_000));
    for frame in [
        presence_frame_from(50_000, 1, &huge),
        presence_frame_from(50_001, 1, "not json {"),
    ] {
        let _ = evil.publish(ticket.doc.topic_name(), seal(frame)).await;
    }

    // The member fills its share of 64 clients; the rest is rejected, which gets it banned.
    wait_until("the member's share is full", async || {
        present_clients(&node, &doc).await == 64
    })
    .await;
    wait_until("the node disconnects the flooding member", async || {
        !node
            .peers()
            .await
            .unwrap()
            .iter()
            .any(|p| p.peer.to_string() == evil_id)
    })
    .await;
    let present = present_clients(&node, &doc).await;
    assert_eq!(present, 64, "one peer holds at most 64 present clients");
    // The node answers, for this document and others.
    assert_eq!(node.text(&other).await.unwrap(), "still here\n");
    assert!(node.status().await.is_ok());
    // An honest local editor still gets its presence through.
    let mut socket = connect(&node, &doc).await;
    next_message(&mut socket).await;
    socket
        .send(Message::Binary(
            presence_frame_from(900_000, 1, r#"{"user":{"name":"ada"}}"#).into(),
        ))
        .await
        .unwrap();
    wait_until("ada is present", async || {
        present_clients(&node, &doc).await == present + 1
    })
    .await;
    cancel.cancel();
    node.shutdown().await;
}

/// An awareness frame naming clients `first..first + n`, each with `state`.
fn presence_frame_from(first: u64, n: u64, state: &str) -> Vec<u8> {
    use yrs::sync::awareness::{AwarenessUpdate, AwarenessUpdateEntry};
    use yrs::updates::encoder::Encode;
    let clients = (first..first + n)
        .map(|c| {
            let entry = AwarenessUpdateEntry {
                clock: 1,
                json: state.into(),
            };
            (yrs::ClientID::new(c), entry)
        })
        .collect();
    YMessage::Awareness(AwarenessUpdate { clients }.encode_v1()).encode()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_nodes_editor_session_may_resync_but_not_edit() {
    let d = dirs(2);
    let owner = start(&d.paths[0]).await;
    let doc = owner.create_doc("announcements").await.unwrap().id;
    owner
        .write(&doc, "office closed friday\n".into(), false)
        .await
        .unwrap();
    let reader = serve_with(test_config(&d.paths[1], 0), None).await;
    reader
        .join(&owner.share(&doc, true).await.unwrap(), None)
        .await
        .unwrap();

    // A client that already has the document resends it on connect: accepted, changes nothing.
    let state = node_state(&reader, &doc).await;
    let mut socket = connect(&reader, &doc).await;
    next_message(&mut socket).await;
    socket
        .send(Message::Binary(
            YMessage::SyncStep2(state.clone()).encode().into(),
        ))
        .await
        .unwrap();
    // The session lives on: it still answers a sync step 1.
    request_state(&mut socket).await;
    // An edit is refused: the session is closed with a reason the user can act on.
    let mut client = Document::new();
    client.apply(&state).unwrap();
    let edit = client.append_text("office open friday\n").unwrap();
    socket
        .send(Message::Binary(YMessage::Update(edit).encode().into()))
        .await
        .unwrap();
    loop {
        match next_message(&mut socket).await {
            Some(Message::Close(Some(close))) => {
                // 4403: final for y-websocket clients, which do not reconnect.
                assert_eq!(u16::from(close.code), 4403, "{close:?}");
                assert!(close.reason.contains("read-only"), "{close:?}");
                break;
            }
            Some(Message::Binary(_)) => continue,
            other => panic!("expected a close with a reason, got {other:?}"),
        }
    }
    assert_eq!(reader.text(&doc).await.unwrap(), "office closed friday\n");
    assert_eq!(owner.text(&doc).await.unwrap(), "office closed friday\n");
    reader.shutdown().await;
    owner.shutdown().await;
}

/// The next update a session receives, applied to an empty document: its text.
async fn next_update_text(socket: &mut Socket) -> String {
    loop {
        match next_message(socket).await {
            Some(Message::Binary(b)) => {
                if let Ok(YMessage::Update(update)) = YMessage::decode(&b) {
                    let mut doc = Document::new();
                    doc.apply(&update).unwrap();
                    return doc.text();
                }
            }
            other => panic!("expected an update, got {other:?}"),
        }
    }
}

async fn metrics(node: &Served) -> String {
    let url = format!("http://{}/metrics", node.http_addr());
    let bearer = node.bearer();
    let response = tokio::task::spawn_blocking(move || {
        ureq::get(&url)
            .set("Authorization", &bearer)
            .call()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(response
        .header("content-type")
        .unwrap()
        .starts_with("application/openmetrics-text"));
    let text = response.into_string().unwrap();
    assert!(text.ends_with("# EOF\n"));
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_editors_update_reaches_others_comes_back_once_stored_and_is_counted() {
    let d = dirs(2);
    let node = start_served(&d.paths[0]).await;
    let peer = start_served(&d.paths[1]).await;
    let doc = node.create_doc("echo").await.unwrap().id;
    let ticket = node.share(&doc, false).await.unwrap();
    peer.join(&ticket, None).await.unwrap();
    // Gossip goes only to peers known to have subscribed (others pull): wait for it, so the
    // edit below is gossiped and counted.
    wait_doc_peer(&node, &doc, &peer).await;
    let mut typing = connect(&node, &doc).await;
    let mut watching = connect(&node, &doc).await;
    next_message(&mut typing).await; // sync step 1
    next_message(&mut watching).await;

    let mut editor = Document::new();
    let update = editor.append_text("typed").unwrap();
    typing
        .send(Message::Binary(YMessage::Update(update).encode().into()))
        .await
        .unwrap();
    // The other session gets the edit; the typing one its own update back (the reference
    // server's echo, which y-websocket v4 clients take as "saved"), sent after the commit.
    assert_eq!(next_update_text(&mut watching).await, "typed");
    assert_eq!(next_update_text(&mut typing).await, "typed");
    assert_eq!(node.text(&doc).await.unwrap(), "typed");

    let expected = [
        "peerdoc_edits_applied_total{origin=\"local\"} 1\n",
        "peerdoc_store_commit_seconds_count ",
        "peerdoc_peers_connected 1\n",
        "libp2p_bandwidth_bytes_total{protocols=\"/ip4/tcp",
        "gossipsub_topic_msg_sent_counts_total{hash=\"pd1/",
    ];
    // The echo may come before the driver has published: the counters follow soon.
    wait_until("every counter shows", async || {
        let text = metrics(&node).await;
        expected.iter().all(|e| text.contains(e))
    })
    .await;
    let text = metrics(&node).await;
    for expected in expected {
        assert!(text.contains(expected), "no {expected:?} in:\n{text}");
    }
    // The peer applied the edit from gossip or a pull, and its anti-entropy syncs are timed.
    wait_until("the peer counts a remote edit and a sync", async || {
        let text = metrics(&peer).await;
        text.contains("peerdoc_edits_applied_total{origin=\"remote\"} 1\n")
            && !text.contains("peerdoc_sync_seconds_count 0\n")
    })
    .await;
}
