//! The local HTTP API (axum): JSON under `/api/…` for the CLI and apps. Thin: every handler
//! translates one request into one [`Node`] call. Requests whose `Host` is not a loopback name
//! (DNS rebinding) or whose `Origin` is another site are refused with 403.

use std::collections::HashMap;

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
use crate::peer::PeerError;

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
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(middleware::from_fn(local_only))
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
            Error::Unreachable { .. } | Error::JoinSync(PeerError::Net(_)) => {
                StatusCode::BAD_GATEWAY
            }
            Error::JoinSync(_) => StatusCode::BAD_GATEWAY,
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

async fn local_only(headers: HeaderMap, request: Request, next: Next) -> Response {
    match check_local(&headers) {
        Ok(()) => next.run(request).await,
        Err(why) => ApiError(StatusCode::FORBIDDEN, why.to_string()).into_response(),
    }
}

/// The Host must name this machine's loopback; an Origin, if sent, must be the same host.
fn check_local(headers: &HeaderMap) -> Result<(), &'static str> {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .ok_or("missing Host header")?;
    if !is_loopback_host(host) {
        return Err("Host is not a loopback address (DNS rebinding protection)");
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().map_err(|_| "bad Origin header")?;
        if origin != format!("http://{host}") {
            return Err("cross-origin requests are refused");
        }
    }
    Ok(())
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

async fn get_text(
    State(node): State<Node>,
    Path(doc): Path<String>,
) -> ApiResult<impl IntoResponse> {
    let text = node.text(&doc).await?;
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text))
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

    #[test]
    fn only_loopback_hosts_and_same_origin_pass() {
        let h = |host: &str, origin: Option<&str>| {
            let mut m = HeaderMap::new();
            m.insert(header::HOST, host.parse().unwrap());
            if let Some(o) = origin {
                m.insert(header::ORIGIN, o.parse().unwrap());
            }
            check_local(&m)
        };
        assert!(h("127.0.0.1:7777", None).is_ok());
        assert!(h("localhost:7777", Some("http://localhost:7777")).is_ok());
        assert!(h("[::1]:7777", None).is_ok());
        assert!(h("127.0.0.1:7777", Some("http://evil.example")).is_err());
        assert!(h("evil.example:7777", None).is_err());
        assert!(h("192.168.1.5:7777", None).is_err());
        assert!(check_local(&HeaderMap::new()).is_err());
    }
}
