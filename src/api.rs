//! The local HTTP server (axum): JSON under `/api/…` for the CLI and apps, the y-websocket
//! endpoint `/ws/<doc>` for editors, and the embedded web editor at `/`. Thin: every handler
//! translates one request into one [`Node`] call (sessions are in [`crate::ws`]).
//!
//! Access: requests whose `Origin` is another site are refused with 403. Without a token (the
//! default, bound to loopback) the `Host` must be a loopback name or address (DNS rebinding
//! protection); with a token (required off loopback) every request must carry it.

use std::collections::HashMap;

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::node::{Error, Node};

/// Largest request body (a whole document's text on `PUT …/text`).
const MAX_BODY: usize = 64 << 20;

/// Serves the API on `listener` until `cancel` fires.
pub fn serve(
    node: Node,
    listener: TcpListener,
    cancel: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    let app = router(node);
    tokio::spawn(async move {
        let result = axum::serve(listener, app)
            .with_graceful_shutdown(async move { cancel.cancelled().await })
            .await;
        if let Err(e) = result {
            tracing::error!("HTTP API stopped: {e}");
        }
    })
}

pub fn router(node: Node) -> Router {
    Router::new()
        .route("/api/status", get(status))
        .route("/api/peers", get(peers))
        .route("/api/docs", get(list_docs).post(create_doc))
        .route(
            "/api/docs/{doc}",
            get(doc_info).patch(rename_doc).delete(delete_doc),
        )
        .route("/api/docs/{doc}/text", get(get_text).put(put_text))
        .route("/api/docs/{doc}/ticket", get(ticket))
        .route("/api/join", post(join))
        .route("/ws/{doc}", get(websocket))
        .route(
            "/",
            get(|| async { web_asset("text/html; charset=utf-8", INDEX_HTML) }),
        )
        .route(
            "/assets/app.js",
            get(|| async { web_asset("text/javascript", APP_JS) }),
        )
        .route(
            "/assets/app.css",
            get(|| async { web_asset("text/css", APP_CSS) }),
        )
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(middleware::from_fn_with_state(node.clone(), access))
        .with_state(node)
}

/// JSON error body `{ "error": "..." }` with a fitting status code.
pub struct ApiError(StatusCode, String);

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        let code = match &e {
            Error::UnknownDoc(_) | Error::NotShared => StatusCode::NOT_FOUND,
            Error::AmbiguousDoc(..) | Error::AlreadyJoined(_) => StatusCode::CONFLICT,
            Error::Store(crate::store::StoreError::NameTaken(_)) => StatusCode::CONFLICT,
            Error::BadName(..) | Error::Ticket(_) | Error::OwnTicket => StatusCode::BAD_REQUEST,
            Error::Unreachable { .. } | Error::JoinSync(_) => StatusCode::BAD_GATEWAY,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError(code, e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(serde_json::json!({ "error": self.1 }))).into_response()
    }
}

type ApiResult<T> = Result<T, ApiError>;

// The web editor, built from web/ by `npm run build` and committed (see scripts/test.sh).
const INDEX_HTML: &str = include_str!("../web/index.html");
const APP_JS: &str = include_str!("../web/dist/app.js");
const APP_CSS: &str = include_str!("../web/dist/app.css");

fn web_asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

async fn access(State(node): State<Node>, request: Request, next: Next) -> Response {
    let token = node.config().http_token.as_deref();
    match check_access(request.headers(), request.uri().query(), token) {
        Ok(()) => next.run(request).await,
        Err(why) => ApiError(StatusCode::FORBIDDEN, why.to_string()).into_response(),
    }
}

/// An Origin, if sent, must be this server's own. Without a token the Host must name this
/// machine's loopback; with one, the request must carry the token.
fn check_access(
    headers: &HeaderMap,
    query: Option<&str>,
    token: Option<&str>,
) -> Result<(), &'static str> {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .ok_or("missing Host header")?;
    match token {
        None if !is_loopback_host(host) => {
            return Err("Host is not a loopback address (DNS rebinding protection)")
        }
        None => {}
        Some(token) => {
            let bearer = headers
                .get(header::AUTHORIZATION)
                .and_then(|h| h.to_str().ok())
                .and_then(|h| h.strip_prefix("Bearer "));
            let in_query = query
                .into_iter()
                .flat_map(|q| q.split('&'))
                .find_map(|kv| kv.strip_prefix("token="));
            if !bearer
                .into_iter()
                .chain(in_query)
                .any(|t| constant_time_eq(t, token))
            {
                return Err("missing or wrong access token");
            }
        }
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().map_err(|_| "bad Origin header")?;
        if origin != format!("http://{host}") {
            return Err("cross-origin requests are refused");
        }
    }
    Ok(())
}

fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

fn is_loopback_host(host: &str) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        match rest.split_once(']') {
            Some((ip, _)) => ip,
            None => return false,
        }
    } else {
        host.rsplit_once(':').map(|(h, _)| h).unwrap_or(host)
    };
    if name.eq_ignore_ascii_case("localhost") {
        return true;
    }
    name.parse::<std::net::IpAddr>()
        .map(|ip| ip.is_loopback())
        .unwrap_or(false)
}

async fn status(State(node): State<Node>) -> ApiResult<impl IntoResponse> {
    Ok(Json(node.status().await?))
}

async fn peers(State(node): State<Node>) -> ApiResult<impl IntoResponse> {
    Ok(Json(node.peers().await?))
}

async fn list_docs(State(node): State<Node>) -> ApiResult<impl IntoResponse> {
    Ok(Json(node.list_docs().await?))
}

#[derive(Deserialize)]
struct NameBody {
    name: String,
}

async fn create_doc(
    State(node): State<Node>,
    Json(body): Json<NameBody>,
) -> ApiResult<impl IntoResponse> {
    Ok((
        StatusCode::CREATED,
        Json(node.create_doc(&body.name).await?),
    ))
}

async fn doc_info(
    State(node): State<Node>,
    Path(doc): Path<String>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(node.doc_info(&doc).await?))
}

async fn rename_doc(
    State(node): State<Node>,
    Path(doc): Path<String>,
    Json(body): Json<NameBody>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(node.rename(&doc, &body.name).await?))
}

async fn delete_doc(
    State(node): State<Node>,
    Path(doc): Path<String>,
) -> ApiResult<impl IntoResponse> {
    node.delete(&doc).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The text as `text/plain`, or with `?format=markdown` as `text/markdown` (unchanged).
async fn get_text(
    State(node): State<Node>,
    Path(doc): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult<impl IntoResponse> {
    let content_type = match query.get("format").map(String::as_str) {
        None | Some("text") => "text/plain; charset=utf-8",
        Some("markdown") => "text/markdown; charset=utf-8",
        Some(_) => {
            return Err(ApiError(
                StatusCode::BAD_REQUEST,
                "format must be text or markdown".into(),
            ))
        }
    };
    let text = node.text(&doc).await?;
    Ok(([(header::CONTENT_TYPE, content_type)], text))
}

/// y-websocket endpoint: `new WebsocketProvider('ws://host:port/ws', docId, ydoc)`.
async fn websocket(
    State(node): State<Node>,
    Path(doc): Path<String>,
    upgrade: WebSocketUpgrade,
) -> ApiResult<Response> {
    let room = node.room(&doc).await?;
    let stopping = node.stopping();
    Ok(upgrade
        .max_message_size(crate::ws::MAX_WS_MESSAGE)
        .on_upgrade(move |socket| crate::ws::run(socket, room, stopping)))
}

/// Replaces the text (minimal diff), or appends with `?append=true`. 200 once committed.
async fn put_text(
    State(node): State<Node>,
    Path(doc): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    body: String,
) -> ApiResult<impl IntoResponse> {
    let append = matches!(query.get("append").map(String::as_str), Some("1" | "true"));
    node.write(&doc, body, append).await?;
    Ok(Json(serde_json::json!({ "ok": true })))
}

async fn ticket(State(node): State<Node>, Path(doc): Path<String>) -> ApiResult<impl IntoResponse> {
    Ok(Json(
        serde_json::json!({ "ticket": node.ticket(&doc).await? }),
    ))
}

#[derive(Deserialize)]
struct JoinBody {
    ticket: String,
    name: Option<String>,
}

async fn join(
    State(node): State<Node>,
    Json(body): Json<JoinBody>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(node.join(&body.ticket, body.name.as_deref()).await?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(host: &str, origin: Option<&str>) -> HeaderMap {
        let mut m = HeaderMap::new();
        m.insert(header::HOST, host.parse().unwrap());
        if let Some(o) = origin {
            m.insert(header::ORIGIN, o.parse().unwrap());
        }
        m
    }

    #[test]
    fn only_loopback_hosts_and_same_origin_pass() {
        let h = |host: &str, origin: Option<&str>| check_access(&headers(host, origin), None, None);
        assert!(h("127.0.0.1:7777", None).is_ok());
        assert!(h("localhost:7777", Some("http://localhost:7777")).is_ok());
        assert!(h("[::1]:7777", None).is_ok());
        assert!(h("127.0.0.1:7777", Some("http://evil.example")).is_err());
        assert!(h("evil.example:7777", None).is_err());
        assert!(h("192.168.1.5:7777", None).is_err());
        assert!(check_access(&HeaderMap::new(), None, None).is_err());
    }

    #[test]
    fn a_token_is_required_when_set() {
        let token = Some("s3cret");
        let lan = headers("192.168.1.5:7777", None);
        assert!(check_access(&lan, None, token).is_err());
        assert!(check_access(&lan, Some("token=wrong"), token).is_err());
        assert!(check_access(&lan, Some("a=1&token=s3cret"), token).is_ok());
        let mut bearer = lan.clone();
        bearer.insert(header::AUTHORIZATION, "Bearer s3cret".parse().unwrap());
        assert!(check_access(&bearer, None, token).is_ok());
        let foreign = headers("192.168.1.5:7777", Some("http://evil.example"));
        assert!(check_access(&foreign, Some("token=s3cret"), token).is_err());
    }
}
