//! The HTTP and WebSocket surface as a client meets it: every error is JSON with a documented
//! status and code, WebSocket limits and close codes agree with PROTOCOL.md.

use futures::{SinkExt, StreamExt};
use peerdoc::core::doc::Document;
use peerdoc::core::sync::YMessage;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;

use super::common::*;

/// A raw HTTP/1.1 exchange: (status, headers in lower case, body).
async fn http(
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
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
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

async fn open(node: &Served, doc: &str) -> Socket {
    let url = format!("ws://{}/ws/{doc}", node.http_addr());
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
