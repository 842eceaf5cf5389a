//! The HTTP and WebSocket surface as a client meets it: every error is JSON with a documented
//! status and code, WebSocket limits and close codes agree with PROTOCOL.md; and as others meet
//! it: another local user without the token, a hostile web page, and a flood of half-sent
//! requests are each refused (and counted), while the owner's requests go on being served.

use futures::{SinkExt, StreamExt};
use peerdoc::core::doc::Document;
use peerdoc::core::sync::YMessage;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;

use super::common::*;

/// A raw HTTP/1.1 exchange with the node's access token: (status, headers in lower case, body).
async fn http(
    node: &Served,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String, String) {
    let bearer = node.bearer();
    let mut all = vec![("Authorization", bearer.as_str())];
    all.extend_from_slice(headers);
    http_as_stranger(node, method, path, &all, body).await
}

/// [`http`] without the token (unless `headers` has it): as another local user would.
async fn http_as_stranger(
    node: &Served,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String, String) {
    let mut stream = tokio::net::TcpStream::connect(node.http_addr())
        .await
        .unwrap();
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        request.push_str("Host: 127.0.0.1\r\n");
    }
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    (
        head[9..12].parse().unwrap(),
        head.to_lowercase(),
        body.to_string(),
    )
}

/// Asserts a JSON error with this status and code; returns its message.
async fn expect_error(
    node: &Served,
    (method, path, headers, body): (&str, &str, &[(&str, &str)], &str),
    status: u16,
    code: &str,
) -> String {
    let (got, head, text) = http(node, method, path, headers, body).await;
    let what = format!("{method} {path} {body:?}: {got} {text}");
    assert_eq!(got, status, "{what}");
    assert!(
        head.contains("content-type: application/json"),
        "{what}: {head}"
    );
    let json: serde_json::Value = serde_json::from_str(&text).expect(&what);
    assert_eq!(json["code"], code, "{what}");
    let message = json["error"].as_str().expect(&what).to_string();
    assert!(!message.is_empty(), "{what}");
    // The API speaks HTTP: no CLI commands or flags in its messages.
    assert!(
        !message.contains("`peerdoc") && !message.contains("--"),
        "{what}"
    );
    message
}

const JSON: &[(&str, &str)] = &[("Content-Type", "application/json")];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_api_error_is_json_with_a_status_and_a_code() {
    let d = dirs(1);
    let node = start_served(&d.paths[0]).await;
    node.create_doc("notes").await.unwrap();

    // (method, path, headers, body), status, code, and a piece of the message.
    type Case<'a> = (
        (&'a str, &'a str, &'a [(&'a str, &'a str)], &'a str),
        u16,
        &'a str,
        &'a str,
    );
    let cases: &[Case] = &[
        (
            ("GET", "/api/nope", &[], ""),
            404,
            "not_found",
            "GET /api/nope",
        ),
        (
            ("PUT", "/api/status", &[], ""),
            405,
            "method_not_allowed",
            "PUT is not allowed on /api/status",
        ),
        // Bodies: unreadable JSON, the wrong shape, no content type.
        (("POST", "/api/docs", JSON, "{"), 400, "bad_request", ""),
        (
            ("POST", "/api/docs", JSON, r#"{"name": 5}"#),
            422,
            "unprocessable",
            "name",
        ),
        (
            ("POST", "/api/docs", &[], r#"{"name": "x"}"#),
            415,
            "unsupported_media_type",
            "",
        ),
        // The node's own errors.
        (
            ("GET", "/api/docs/nothing-here", &[], ""),
            404,
            "unknown_doc",
            "nothing-here",
        ),
        (("GET", "/api/docs/ab", &[], ""), 400, "short_prefix", ""),
        (
            ("POST", "/api/docs", JSON, r#"{"name": "notes"}"#),
            409,
            "name_taken",
            "",
        ),
        (
            ("POST", "/api/join", JSON, r#"{"ticket": "garbage"}"#),
            400,
            "bad_ticket",
            "",
        ),
        (
            ("GET", "/api/docs/notes/text?format=pdf", &[], ""),
            400,
            "bad_request",
            "format",
        ),
    ];
    for &(request, status, code, says) in cases {
        let m = expect_error(&node, request, status, code).await;
        assert!(m.contains(says), "{request:?}: {m}");
    }
    let (_, head, _) = http(&node, "PUT", "/api/status", &[], "").await;
    assert!(head.contains("\r\nallow: get"), "{head}");

    // Successes are untouched.
    let (status, head, _) = http(&node, "GET", "/api/docs", &[], "").await;
    assert_eq!(status, 200);
    assert!(head.contains("application/json"), "{head}");
    let (status, head, _) = http(&node, "GET", "/", &[], "").await;
    assert_eq!(status, 200);
    assert!(head.contains("text/html"), "{head}");
    node.shutdown().await;
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn open(node: &Served, doc: impl std::fmt::Display) -> Socket {
    let url = node.ws_url(&format!("/ws/{doc}"));
    let (mut socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    // The server greets with its state vector.
    match tokio::time::timeout(WAIT, socket.next()).await.unwrap() {
        Some(Ok(Message::Binary(b))) => {
            assert!(matches!(YMessage::decode(&b), Ok(YMessage::SyncStep1(_))))
        }
        other => panic!("expected sync step 1, got {other:?}"),
    }
    socket
}

/// Reads until the server's close frame; `None` if the connection ended without one.
async fn close_frame(socket: &mut Socket) -> Option<CloseFrame> {
    loop {
        match tokio::time::timeout(WAIT, socket.next()).await.unwrap() {
            Some(Ok(Message::Close(frame))) => return frame,
            Some(Ok(_)) => continue,
            Some(Err(_)) | None => return None,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_close_frames_are_answered_and_size_limits_say_why() {
    let d = dirs(1);
    let node = start_served(&d.paths[0]).await;
    let doc = node.create_doc("big").await.unwrap().id;

    // A client that closes gets the closing handshake's answer, not a dropped connection.
    let mut socket = open(&node, &doc).await;
    socket
        .send(Message::Close(Some(CloseFrame {
            code: CloseCode::Normal,
            reason: "bye".into(),
        })))
        .await
        .unwrap();
    let answer = close_frame(&mut socket).await.expect("the server answers");
    assert_eq!(answer.code, CloseCode::Normal);

    // A 17 MB message in one frame (as browsers send it) is within the 32 MiB limit.
    let mut editor = Document::new();
    let text = "x".repeat(17_000_000);
    let update = editor.insert(0, &text).unwrap();
    let frame = YMessage::Update(update).encode();
    assert!(frame.len() > 16 << 20, "{}", frame.len());
    let mut socket = open(&node, &doc).await;
    socket.send(Message::Binary(frame.into())).await.unwrap();
    wait_until("the 17 MB update is applied", async || {
        node.text(&doc).await.unwrap().len() == text.len()
    })
    .await;
    socket.close(None).await.unwrap();

    // Over the limit: closed with 1009 and a reason, the document unchanged.
    let socket = open(&node, &doc).await;
    let (mut sink, mut stream) = socket.split();
    let oversized = vec![0u8; (32 << 20) + 1];
    // The server stops reading; the send may fail once it has closed.
    let send = tokio::spawn(async move {
        let _ = sink.send(Message::Binary(oversized.into())).await;
    });
    let frame = loop {
        match tokio::time::timeout(WAIT, stream.next()).await.unwrap() {
            Some(Ok(Message::Close(frame))) => break frame,
            Some(Ok(_)) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    };
    let frame = frame.expect("a close code");
    assert_eq!(frame.code, CloseCode::Size, "{frame:?}");
    assert!(frame.reason.contains("32 MiB"), "{frame:?}");
    send.abort();
    assert_eq!(node.text(&doc).await.unwrap().len(), text.len());
    node.shutdown().await;
}

/// The node's count of requests refused for `reason`.
fn refused(node: &Served, reason: &str) -> f64 {
    let series = format!("peerdoc_api_refused_total{{reason=\"{reason}\"}}");
    metric_value(&node.metrics_text(), &series)
}

/// Asserts a 403 whose message contains `says`, and that it was counted under `reason`.
async fn expect_refused(
    node: &Served,
    (method, path, headers): (&str, &str, &[(&str, &str)]),
    reason: &str,
    says: &str,
) {
    let before = refused(node, reason);
    let (status, _, body) = http_as_stranger(node, method, path, headers, "").await;
    let what = format!("{method} {path} {headers:?}: {status} {body}");
    assert_eq!(status, 403, "{what}");
    let json: serde_json::Value = serde_json::from_str(&body).expect(&what);
    assert_eq!(json["code"], "forbidden", "{what}");
    let message = json["error"].as_str().unwrap_or_default();
    assert!(message.contains(says), "{what}");
    assert_eq!(refused(node, reason), before + 1.0, "{what}: counted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_local_user_without_the_token_can_do_nothing() {
    let d = dirs(1);
    let node = start_served(&d.paths[0]).await;
    let doc = node.create_doc("diary").await.unwrap().id;
    node.write(&doc, "private\n".into(), false).await.unwrap();

    // The generated token is in the data dir, readable by its owner only.
    let token_file = d.paths[0].join("api.token");
    assert_eq!(std::fs::read_to_string(&token_file).unwrap(), node.token());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&token_file), 0o600);
        assert_eq!(mode(&d.paths[0]), 0o700);
    }

    // Without it (or with a wrong one), nothing: not the text, a ticket, the editor page, an
    // editor session or the metrics. Each refusal says where the token is, and is counted.
    let text = format!("/api/docs/{doc}/text");
    let ticket = format!("/api/docs/{doc}/ticket");
    let session = format!("/ws/{doc}");
    let wrong = "Bearer 0000000000000000000000000000000000000000000000000000000000000000";
    for (method, path, headers) in [
        ("GET", text.as_str(), &[][..]),
        ("GET", "/api/docs", &[("Authorization", wrong)][..]),
        ("POST", ticket.as_str(), &[][..]),
        ("GET", "/?token=guess", &[][..]),
        ("GET", session.as_str(), &[][..]),
        ("GET", "/metrics", &[][..]),
    ] {
        expect_refused(&node, (method, path, headers), "token", "api.token").await;
    }
    assert_eq!(refused(&node, "token"), 6.0);
    assert_eq!(tickets_issued(&node), 0.0, "no ticket was minted");

    // With the token: served.
    let (status, _, body) = http(&node, "GET", &text, &[], "").await;
    assert_eq!((status, body.as_str()), (200, "private\n"));
    let (status, head, _) =
        http_as_stranger(&node, "GET", &format!("/?token={}", node.token()), &[], "").await;
    assert_eq!(status, 200);
    assert!(head.contains("set-cookie: peerdoc_session="), "{head}");
    assert_eq!(refused(&node, "token"), 6.0);
    node.shutdown().await;
}

fn tickets_issued(node: &Served) -> f64 {
    metric_value(&node.metrics_text(), "peerdoc_tickets_issued_total")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_a_same_origin_post_with_the_token_mints_a_ticket() {
    use peerdoc::core::ticket::{Capability, Ticket};
    let d = dirs(1);
    let node = start_served(&d.paths[0]).await;
    let doc = node.create_doc("plans").await.unwrap().id;
    let path = format!("/api/docs/{doc}/ticket");
    let bearer = node.bearer();
    let auth = ("Authorization", bearer.as_str());

    // A GET (what an <img> or a no-cors fetch can make a browser send) mints nothing.
    for get in [path.clone(), format!("{path}?read_only=true")] {
        let (status, head, _) = http(&node, "GET", &get, &[], "").await;
        assert_eq!(status, 405, "GET {get}");
        assert!(head.contains("\r\nallow: post"), "{head}");
    }
    assert_eq!(tickets_issued(&node), 0.0, "a GET minted a ticket");

    // Another site's page is refused, token or not, whatever it claims.
    for site in ["cross-site", "same-site"] {
        let headers = [auth, ("Sec-Fetch-Site", site)];
        expect_refused(
            &node,
            ("POST", &path, &headers),
            "cross_site",
            "another site",
        )
        .await;
    }
    let headers = [auth, ("Origin", "http://evil.example")];
    expect_refused(&node, ("POST", &path, &headers), "origin", "cross-origin").await;
    let headers = [auth, ("Host", "evil.example:7777")];
    expect_refused(&node, ("POST", &path, &headers), "host", "loopback").await;
    // An editor session from another site is refused too.
    let session = format!("/ws/{doc}");
    let headers = [auth, ("Sec-Fetch-Site", "cross-site")];
    expect_refused(
        &node,
        ("GET", &session, &headers),
        "cross_site",
        "another site",
    )
    .await;
    assert_eq!(refused(&node, "cross_site"), 3.0);
    assert_eq!(
        tickets_issued(&node),
        0.0,
        "a refused request minted a ticket"
    );

    // The editor page's own POST (same origin, with the token) gets one; so does the CLI's.
    let own = format!("http://{}", node.http_addr());
    let host = node.http_addr().to_string();
    let page = [
        auth,
        ("Host", host.as_str()),
        ("Origin", own.as_str()),
        ("Sec-Fetch-Site", "same-origin"),
        ("Content-Type", "application/json"),
    ];
    let (status, _, body) = http(&node, "POST", &path, &page, r#"{"read_only": true}"#).await;
    assert_eq!(status, 200, "{body}");
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    let ticket = Ticket::decode(json["ticket"].as_str().unwrap()).unwrap();
    assert_eq!(ticket.capability, Capability::ReadOnly);
    let (status, _, body) = http(&node, "POST", &path, &[], "").await;
    assert_eq!(status, 200, "{body}");
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    let ticket = Ticket::decode(json["ticket"].as_str().unwrap()).unwrap();
    assert_eq!(ticket.capability, Capability::ReadWrite);
    assert_eq!(tickets_issued(&node), 2.0);
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_sent_requests_are_capped_and_timed_out_while_the_owner_is_served() {
    use peerdoc::api::{Server, MAX_CONNECTIONS};
    use std::time::{Duration, Instant};
    const HELD: usize = 1_100;
    const HEADER_TIMEOUT: Duration = Duration::from_secs(3);
    let d = dirs(1);
    let server = Server::bind("127.0.0.1:0".parse().unwrap(), None)
        .await
        .unwrap()
        .with_header_read_timeout(HEADER_TIMEOUT);
    let node = serve_on(test_config(&d.paths[0], 0), server).await;
    let connections_refused = |node: &Served| {
        metric_value(
            &node.metrics_text(),
            "peerdoc_api_connections_refused_total",
        )
    };

    // A connection that says nothing, and one kept alive after a request, then idle.
    let mut silent = vec![tokio::net::TcpStream::connect(node.http_addr())
        .await
        .unwrap()];
    let mut idle = tokio::net::TcpStream::connect(node.http_addr())
        .await
        .unwrap();
    let request = format!(
        "GET /api/status HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {}\r\n\r\n",
        node.bearer()
    );
    idle.write_all(request.as_bytes()).await.unwrap();
    let mut answer = [0u8; 12];
    idle.read_exact(&mut answer).await.unwrap();
    assert_eq!(&answer, b"HTTP/1.1 200");
    silent.push(idle);

    // 1,100 connections, each with a request line and some headers, never finished.
    let opened = Instant::now();
    let mut held = Vec::with_capacity(HELD);
    for _ in 0..HELD {
        let mut stream = tokio::net::TcpStream::connect(node.http_addr())
            .await
            .unwrap();
        // A connection the server has closed already may refuse the write: it is held anyway.
        let _ = stream
            .write_all(b"GET /api/status HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: aaaa")
            .await;
        held.push(stream);
        assert!(
            opened.elapsed() < WAIT,
            "opening {HELD} connections took too long"
        );
    }
    let took = opened.elapsed();
    assert!(
        took < HEADER_TIMEOUT,
        "opening the connections took {took:?}, longer than the header timeout: slots were \
         freed meanwhile, and the count below would not be exact"
    );
    // Past the cap, each was closed at once and counted.
    let over = (HELD + silent.len() - MAX_CONNECTIONS) as f64;
    wait_until(
        format_args!("{over} connections over the cap are refused"),
        async || connections_refused(&node) >= over,
    )
    .await;
    assert_eq!(connections_refused(&node), over);

    // While they are held, the owner is served: as soon as the timeout frees the slots.
    let started = Instant::now();
    let mut attempts = 0;
    loop {
        attempts += 1;
        assert!(
            started.elapsed() < HEADER_TIMEOUT + WAIT,
            "no request was served in {attempts} attempts while half-sent requests were held"
        );
        if let Some((200, _, _)) = try_http(&node, "/api/status").await {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("the owner was served after {:?}", started.elapsed());

    // Every held connection has been closed by the server (end of stream, or a reset),
    // though the client never closed it; so have the silent and the idle one.
    let mut buf = Vec::new();
    for (i, stream) in silent.iter_mut().chain(held.iter_mut()).enumerate() {
        buf.clear();
        let read = tokio::time::timeout(WAIT, stream.read_to_end(&mut buf)).await;
        assert!(
            read.is_ok(),
            "held connection {i} is still open after {WAIT:?}"
        );
    }
    node.shutdown().await;
}

/// A GET with the token, or `None` if the connection was closed before an answer came.
async fn try_http(node: &Served, path: &str) -> Option<(u16, String, String)> {
    let mut stream = tokio::net::TcpStream::connect(node.http_addr())
        .await
        .ok()?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nAuthorization: {}\r\n\r\n",
        node.bearer()
    );
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await.ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    Some((
        head.get(9..12)?.parse().ok()?,
        head.to_lowercase(),
        body.to_string(),
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_replacement_is_refused_unless_asked_for() {
    let d = dirs(1);
    let node = start_served(&d.paths[0]).await;
    let doc = node.create_doc("notes").await.unwrap();
    node.write(&doc.id, "keep me\n".into(), false)
        .await
        .unwrap();
    let path = format!("/api/docs/{}/text", doc.id);
    // An empty pipe or a broken upload must not erase the document everywhere.
    let message = expect_error(&node, ("PUT", &path, &[], ""), 400, "empty_text").await;
    assert!(message.contains("allow_empty=true"), "{message}");
    assert_eq!(node.text(&doc.id).await.unwrap(), "keep me\n");
    // Appending nothing is no change, and emptying on purpose works.
    let (status, _, _) = http(&node, "PUT", &format!("{path}?append=true"), &[], "").await;
    assert_eq!(status, 200);
    assert_eq!(node.text(&doc.id).await.unwrap(), "keep me\n");
    let (status, _, _) = http(&node, "PUT", &format!("{path}?allow_empty=true"), &[], "").await;
    assert_eq!(status, 200);
    assert_eq!(node.text(&doc.id).await.unwrap(), "");
    node.shutdown().await;
}
