//! One y-websocket session: speaks the standard y-protocols messages (sync step 1/2, update,
//! awareness, query awareness) with one editor over a WebSocket, and turns them into calls on
//! the document's room. Several sessions of one document share the room's copy. An editor's
//! update goes to the other sessions at once and back to its own session once it is stored
//! (as the reference y-websocket server echoes it; y-websocket v4 clients show "saved" then).
//!
//! A malformed frame, a text frame or an unknown message type closes the connection with a
//! policy-violation code (1008), a message over [`MAX_WS_MESSAGE`] with 1009, each with a
//! reason; the document is untouched and the node keeps running. An edit this node may not
//! make (it reads only, or was removed) closes it with [`CLOSE_FORBIDDEN`] (4403): y-websocket
//! clients take 4400–4499 as final and stop reconnecting. A client's close frame is answered, so
//! a client that closes sees 1000.
//!
//! y-websocket clients drop a connection that brings no message for 30 s (3.x) or 45 s (4.x):
//! a session that has sent nothing for [`KEEPALIVE`] sends an empty awareness update, so an
//! editor alone in a quiet document stays connected.

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures::SinkExt;
use tokio_util::sync::CancellationToken;

use crate::core::sync::YMessage;
use crate::node::{Doc, ErrorKind, Event, Session};

/// Largest WebSocket message, and frame, accepted (a whole document sent by a reconnecting
/// editor; browsers send a message as one frame).
pub(super) const MAX_WS_MESSAGE: usize = 32 << 20;

/// Bytes read from an editor's socket at a time. tungstenite zeroes this much of its buffer
/// before every read (128 KiB by default): with a hundred editors exchanging small frames, that
/// zeroing was a third of the node's CPU (BENCHMARKS.md, row 12). A larger frame is still read
/// whole, in reads of this size.
pub(super) const READ_BUFFER: usize = 16 << 10;

const CLOSE_NORMAL: u16 = 1000;
const CLOSE_GOING_AWAY: u16 = 1001;
const CLOSE_PROTOCOL: u16 = 1002;
const CLOSE_POLICY: u16 = 1008;
const CLOSE_TOO_BIG: u16 = 1009;
const CLOSE_TRY_AGAIN: u16 = 1013;
/// Private-use code in the range y-websocket clients do not reconnect after (as HTTP 403).
pub(super) const CLOSE_FORBIDDEN: u16 = 4403;

/// Longest a session stays silent (the shortest client watchdog is 30 s).
const KEEPALIVE: std::time::Duration = std::time::Duration::from_secs(10);
/// An awareness update naming no client (a count of 0): changes nothing, but is a message.
fn nothing() -> YMessage {
    YMessage::Awareness(vec![0])
}

/// Why a session ended, as a WebSocket close code and reason.
#[derive(PartialEq, Eq)]
struct End(u16, &'static str);

/// The client sent a close frame (tungstenite has queued the answer, which echoes its code).
const CLIENT_CLOSED: End = End(CLOSE_NORMAL, "the client closed the session");

/// Runs one editor session until the socket closes, the editor misbehaves, or `cancel` fires.
pub(super) async fn run(mut socket: WebSocket, doc: Doc, cancel: CancellationToken) {
    // Subscribe first, so no change between the initial state and the subscription is missed.
    let Ok(mut session) = doc.session().await else {
        let _ = socket
            .send(close_frame(End(CLOSE_GOING_AWAY, "document closed")))
            .await;
        return;
    };
    let end = serve(&mut socket, &mut session, &cancel).await;
    if end.0 != CLOSE_NORMAL {
        tracing::debug!(doc = %doc.id(), "closing editor session: {}", end.1);
    }
    if end == CLIENT_CLOSED {
        // Sends the queued answer to the client's close frame.
        let _ = socket.close().await;
    } else {
        let _ = socket.send(close_frame(end)).await;
    }
    session.close().await;
}

fn close_frame(end: End) -> Message {
    Message::Close(Some(CloseFrame {
        code: end.0,
        reason: end.1.into(),
    }))
}

async fn send(socket: &mut WebSocket, msg: &YMessage) -> Result<(), End> {
    send_bytes(socket, msg.encode().into()).await
}

async fn send_bytes(socket: &mut WebSocket, frame: bytes::Bytes) -> Result<(), End> {
    socket
        .send(Message::Binary(frame))
        .await
        .map_err(|_| End(CLOSE_GOING_AWAY, "send failed"))
}

async fn serve(socket: &mut WebSocket, session: &mut Session, cancel: &CancellationToken) -> End {
    let gone = |_| End(CLOSE_GOING_AWAY, "document closed");
    let doc = session.doc().clone();
    let start = async {
        send(
            socket,
            &YMessage::SyncStep1(doc.state_vector().await.map_err(gone)?),
        )
        .await?;
        if let Some(state) = doc.presence().await.map_err(gone)? {
            send(socket, &YMessage::Awareness(state)).await?;
        }
        Ok::<(), End>(())
    };
    if let Err(end) = start.await {
        return end;
    }
    let mut keepalive =
        tokio::time::interval_at(tokio::time::Instant::now() + KEEPALIVE, KEEPALIVE);
    keepalive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return End(CLOSE_GOING_AWAY, "node shutting down"),
            _ = keepalive.tick() => {
                if let Err(end) = send(socket, &nothing()).await {
                    return end;
                }
            }
            incoming = socket.recv() => {
                let frame = match incoming {
                    Some(Ok(Message::Close(_))) => return CLIENT_CLOSED,
                    None => return End(CLOSE_NORMAL, ""),
                    Some(Err(e)) => return read_error(&e),
                    Some(Ok(Message::Binary(frame))) => {
                        tracing::trace!(target: "peerdoc::stage", "editor session: frame in");
                        frame
                    }
                    Some(Ok(Message::Text(_))) => {
                        return End(CLOSE_POLICY, "text frames are not part of the y-websocket protocol")
                    }
                    Some(Ok(_)) => continue, // ping/pong
                };
                if let Err(end) = on_frame(socket, session, &frame).await {
                    return end;
                }
            }
            event = session.next() => {
                // The stages of an edit's way from editor to editor (`peerdoc::stage`, see
                // bench/editors --notes) end here, at another's edit sent.
                let (message, theirs) = match event {
                    Event::Changed(message) => (message, true),
                    // The echo of the editor's own update: it is stored.
                    Event::Saved(message) => (message, false),
                    Event::NotSaved => {
                        return End(
                            CLOSE_TRY_AGAIN,
                            "this node could not store the change yet; reconnect to resync",
                        )
                    }
                    // The editor missed changes: it reconnects and resyncs from scratch.
                    Event::Lagged => return End(CLOSE_TRY_AGAIN, "fell behind; reconnect"),
                    Event::Closed => return End(CLOSE_GOING_AWAY, "document closed"),
                };
                if theirs {
                    tracing::trace!(target: "peerdoc::stage", "editor session: update out");
                }
                // Encoded once for all the document's sessions.
                if let Err(end) = send_bytes(socket, message.encoded()).await {
                    return end;
                }
                if theirs {
                    tracing::trace!(target: "peerdoc::stage", "editor session: sent");
                }
                keepalive.reset();
            },
        }
    }
}

/// The close code and reason for a message tungstenite refused to read.
fn read_error(e: &axum::Error) -> End {
    use std::error::Error as _;
    match e
        .source()
        .and_then(|s| s.downcast_ref::<tungstenite::Error>())
    {
        Some(tungstenite::Error::Capacity(_)) => End(
            CLOSE_TOO_BIG,
            "message larger than 32 MiB; peerdoc accepts messages of at most 32 MiB",
        ),
        Some(tungstenite::Error::Protocol(_) | tungstenite::Error::Utf8(_)) => {
            End(CLOSE_PROTOCOL, "WebSocket protocol error")
        }
        _ => End(CLOSE_GOING_AWAY, "connection lost"),
    }
}

async fn on_frame(socket: &mut WebSocket, session: &mut Session, frame: &[u8]) -> Result<(), End> {
    // Decode the whole frame before acting on any of it: a bad frame changes nothing.
    let messages = YMessage::decode_all(frame)
        .map_err(|_| End(CLOSE_POLICY, "malformed y-protocols message"))?;
    for msg in messages {
        match msg {
            YMessage::SyncStep1(sv) => {
                let diff = session
                    .doc()
                    .diff(sv)
                    .await
                    .map_err(|_| End(CLOSE_POLICY, "bad state vector"))?;
                send(socket, &YMessage::SyncStep2(diff)).await?;
            }
            YMessage::SyncStep2(update) | YMessage::Update(update) => {
                session.apply(update).await.map_err(|e| match e.kind() {
                    ErrorKind::ReadOnly => End(
                        CLOSE_FORBIDDEN,
                        "read-only: this node may read this document, not edit it",
                    ),
                    ErrorKind::Removed => End(
                        CLOSE_FORBIDDEN,
                        "removed: the owner removed this node from the document",
                    ),
                    ErrorKind::TooLarge => {
                        End(CLOSE_POLICY, "the document has reached its size limit")
                    }
                    // The document could not be loaded (a failed commit arrives later, as
                    // `Event::NotSaved`).
                    ErrorKind::DiskFull | ErrorKind::StorageUnavailable => End(
                        CLOSE_TRY_AGAIN,
                        "this node cannot read the document right now; reconnect to retry",
                    ),
                    _ => End(CLOSE_POLICY, "update rejected"),
                })?;
            }
            YMessage::Awareness(update) => {
                session
                    .set_presence(update)
                    .await
                    .map_err(|_| End(CLOSE_POLICY, "awareness update rejected"))?;
            }
            YMessage::QueryAwareness => {
                if let Some(state) = session
                    .doc()
                    .presence()
                    .await
                    .map_err(|_| End(CLOSE_GOING_AWAY, "document closed"))?
                {
                    send(socket, &YMessage::Awareness(state)).await?;
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_keepalive_is_a_valid_awareness_update_naming_no_one() {
        let frame = nothing().encode();
        let Ok(YMessage::Awareness(update)) = YMessage::decode(&frame) else {
            panic!("not an awareness message: {frame:?}");
        };
        let update = crate::core::sync::decode_awareness(&update).unwrap();
        assert!(update.clients.is_empty());
    }
}
