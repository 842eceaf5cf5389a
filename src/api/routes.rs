//! The routes of the local HTTP server and their handlers: JSON under `/api/…` for the CLI and
//! apps, the y-websocket endpoint `/ws/<doc>` for editors, and the embedded web editor at `/`.
//! Thin: every handler translates one request into one [`Node`] call.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::body::Bytes;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{header, StatusCode};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use axum::{Extension, Json, Router};
use serde::Deserialize;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::access::access;
use super::conn::ConnectionSlot;
use super::error::{json_errors, ApiError};
use super::{dto, ws, MAX_BODY_BYTES};
use crate::node::Node;
use crate::{DocKind, Format};
use holders::{held, replicas, replicate, unreplicate};
use versions::{
    diff_versions, list_versions, name_version, preview_version, record_version, restore_version,
};

mod blobs;
mod holders;
// The web editor, built from web/ by `npm run build` and committed (see scripts/test.sh).
mod versions;

const INDEX_HTML: &str = include_str!("../../web/index.html");
const APP_JS: &str = include_str!("../../web/dist/app.js");
const APP_CSS: &str = include_str!("../../web/dist/app.css");
const FAVICON_SVG: &str = include_str!("../../web/favicon.svg");
const FAVICON_ICO: &[u8] = include_bytes!("../../web/favicon.ico");

/// What every handler can reach.
#[derive(Clone)]
pub(crate) struct App {
    pub(crate) node: Node,
    /// The access token every request must carry.
    pub(crate) token: String,
    /// The bound address, for `status`.
    pub(crate) addr: SocketAddr,
    /// Fires when the server stops: long-lived editor sessions end on it.
    pub(crate) stopping: CancellationToken,
    /// One `PUT …/text` at a time reads its body and imports it; others wait their turn.
    pub(crate) imports: Arc<Semaphore>,
}

type ApiResult<T> = Result<T, ApiError>;

pub(crate) fn router(app: App) -> Router {
    Router::new()
        .route("/api/status", get(status))
        .route("/api/peers", get(peers))
        .route("/api/name", get(get_name).put(put_name))
        .route("/api/docs", get(list_docs).post(create_doc))
        .route(
            "/api/docs/{doc}",
            get(doc_info).patch(rename_doc).delete(delete_doc),
        )
        .route("/api/docs/{doc}/text", get(get_text).put(put_text))
        .route("/api/docs/{doc}/ticket", post(ticket))
        .route("/api/docs/{doc}/members", get(members))
        .route(
            "/api/docs/{doc}/versions",
            get(list_versions).post(record_version),
        )
        .route("/api/docs/{doc}/versions/{version}", patch(name_version))
        .route(
            "/api/docs/{doc}/versions/{version}/restore",
            post(restore_version),
        )
        .route(
            "/api/docs/{doc}/versions/{version}/preview",
            get(preview_version),
        )
        .route("/api/docs/{doc}/diff", get(diff_versions))
        .route(
            "/api/docs/{doc}/members/{peer}",
            axum::routing::delete(revoke),
        )
        .route("/api/docs/{doc}/replicas", get(replicas).post(replicate))
        .route(
            "/api/docs/{doc}/replicas/{peer}",
            axum::routing::delete(unreplicate),
        )
        .route(
            "/api/docs/{doc}/blobs",
            get(blobs::list)
                .post(blobs::attach)
                // An upload is as large as the attachment limit allows (checked as it comes).
                .layer(DefaultBodyLimit::disable()),
        )
        .route("/api/docs/{doc}/blobs/{blob}", get(blobs::content))
        .route(
            "/api/docs/{doc}/blobs/{blob}/{name}",
            get(blobs::named_content),
        )
        .route("/api/docs/{doc}/transfers/{blob}", get(blobs::transfer))
        .route("/api/gc", post(blobs::gc))
        .route("/api/held", get(held))
        .route("/api/join", post(join))
        .route("/metrics", get(metrics))
        .route("/ws/{doc}", get(websocket))
        .route("/", get(|| async { editor_page() }))
        .route(
            "/assets/app.js",
            get(|| async { web_asset("text/javascript", APP_JS.as_bytes()) }),
        )
        .route(
            "/assets/app.css",
            get(|| async { web_asset("text/css", APP_CSS.as_bytes()) }),
        )
        .route(
            "/favicon.svg",
            get(|| async { web_asset("image/svg+xml", FAVICON_SVG.as_bytes()) }),
        )
        .route(
            "/favicon.ico",
            get(|| async { web_asset("image/x-icon", FAVICON_ICO) }),
        )
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn_with_state(app.clone(), access))
        // Outermost: every error, whoever made it, is JSON (but the page a browser gets without
        // the token).
        .layer(middleware::from_fn(json_errors))
        .with_state(app)
}

/// The editor's page: images only from this node (an attachment), so that a link a writer
/// puts in a document cannot tell another site who reads it and when.
fn editor_page() -> Response {
    let mut page = web_asset("text/html; charset=utf-8", INDEX_HTML.as_bytes());
    page.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        header::HeaderValue::from_static("frame-ancestors 'none'; img-src 'self' data:"),
    );
    page
}

fn web_asset(content_type: &'static str, body: &'static [u8]) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
            // No other site may frame the editor (clickjacking).
            (header::X_FRAME_OPTIONS, "DENY"),
            (header::CONTENT_SECURITY_POLICY, "frame-ancestors 'none'"),
        ],
        body,
    )
        .into_response()
}

async fn status(State(app): State<App>) -> ApiResult<impl IntoResponse> {
    let status = app.node.status().await?;
    Ok(Json(dto::Status::new(status, Some(app.addr.to_string()))))
}

/// Prometheus metrics, in the OpenMetrics text format.
async fn metrics(State(app): State<App>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        app.node.metrics_text(),
    )
        .into_response()
}

async fn peers(State(app): State<App>) -> ApiResult<impl IntoResponse> {
    Ok(Json(all::<dto::PeerStatus, _>(app.node.peers().await?)))
}

/// This node's display name: `{"name": "…"}` (`null`: none yet), and whether the config file
/// sets it (then `PUT` is refused).
async fn get_name(State(app): State<App>) -> Json<dto::NodeName> {
    Json(dto::NodeName {
        name: app.node.name(),
        from_config: app.node.config().name.is_some(),
    })
}

/// Sets this node's display name (`{"name": "…"}`).
async fn put_name(
    State(app): State<App>,
    Json(body): Json<NameBody>,
) -> ApiResult<Json<dto::NodeName>> {
    let name = app.node.set_name(&body.name).await?;
    Ok(Json(dto::NodeName {
        name: Some(name),
        from_config: false,
    }))
}

async fn list_docs(State(app): State<App>) -> ApiResult<impl IntoResponse> {
    Ok(Json(all::<dto::DocInfo, _>(app.node.list_docs().await?)))
}

#[derive(Deserialize)]
struct NameBody {
    name: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    name: String,
    /// `rich` (the default) or `plain`.
    #[serde(default)]
    kind: Option<String>,
}

async fn create_doc(
    State(app): State<App>,
    Json(body): Json<CreateBody>,
) -> ApiResult<impl IntoResponse> {
    let kind = match body.kind.as_deref() {
        None | Some("rich") => DocKind::Rich,
        Some("plain") => DocKind::Plain,
        Some(_) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "kind must be rich or plain",
            ))
        }
    };
    Ok((
        StatusCode::CREATED,
        Json(dto::DocInfo::from(
            app.node.create_doc_of(&body.name, kind).await?,
        )),
    ))
}

async fn doc_info(State(app): State<App>, Path(doc): Path<String>) -> ApiResult<impl IntoResponse> {
    Ok(Json(dto::DocInfo::from(app.node.doc_info(&doc).await?)))
}

async fn rename_doc(
    State(app): State<App>,
    Path(doc): Path<String>,
    Json(body): Json<NameBody>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(dto::DocInfo::from(
        app.node.rename(&doc, &body.name).await?,
    )))
}

async fn delete_doc(
    State(app): State<App>,
    Path(doc): Path<String>,
) -> ApiResult<impl IntoResponse> {
    app.node.delete(&doc).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The content (Markdown for a rich document, text for a plain one), or with `?format=` the
/// document as `markdown`, `html` or `text`; with `&download=1`, as a file to save.
async fn get_text(
    State(app): State<App>,
    Path(doc): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult<Response> {
    let info = app.node.doc_info(&doc).await?;
    let rich = info.kind == DocKind::Rich;
    let (format, content_type, extension) = match query.get("format").map(String::as_str) {
        None if rich => (Format::Markdown, "text/markdown; charset=utf-8", "md"),
        None => (Format::Markdown, "text/plain; charset=utf-8", "txt"),
        Some("markdown") => (Format::Markdown, "text/markdown; charset=utf-8", "md"),
        Some("html") => (Format::Html, "text/html; charset=utf-8", "html"),
        Some("text") => (Format::Text, "text/plain; charset=utf-8", "txt"),
        Some(_) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "format must be markdown, html or text",
            ))
        }
    };
    let text = match query.get("at") {
        Some(version) => app.node.export_at(info.id, version, format).await?,
        None => app.node.export(info.id, format).await?,
    };
    let mut response = ([(header::CONTENT_TYPE, content_type)], text).into_response();
    let headers = response.headers_mut();
    // Exported HTML is the members' content: it runs nothing, on this origin or any.
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        header::HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'; sandbox"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        header::HeaderValue::from_static("nosniff"),
    );
    if query
        .get("download")
        .is_some_and(|v| v == "1" || v == "true")
    {
        let file: String = info
            .name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || " -_.".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let disposition = format!("attachment; filename=\"{}.{extension}\"", file.trim());
        if let Ok(value) = header::HeaderValue::from_str(&disposition) {
            headers.insert(header::CONTENT_DISPOSITION, value);
        }
    }
    Ok(response)
}

/// y-websocket endpoint: `new WebsocketProvider('ws://host:port/ws', docId, ydoc)`. The
/// session keeps its connection's slot (`conn`'s cap) until it ends.
async fn websocket(
    State(app): State<App>,
    Path(doc): Path<String>,
    slot: Option<Extension<ConnectionSlot>>,
    upgrade: WebSocketUpgrade,
) -> ApiResult<Response> {
    let doc = app.node.doc(&doc).await?;
    let stopping = app.stopping.clone();
    Ok(upgrade
        .max_message_size(ws::MAX_WS_MESSAGE)
        .max_frame_size(ws::MAX_WS_MESSAGE)
        .read_buffer_size(ws::READ_BUFFER)
        .on_upgrade(move |socket| async move {
            ws::run(socket, doc, stopping).await;
            drop(slot);
        }))
}

/// Replaces the text (minimal diff), or appends with `?append=true`. 200 once committed.
async fn put_text(
    State(app): State<App>,
    Path(doc): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    body: Body,
) -> ApiResult<impl IntoResponse> {
    let append = matches!(query.get("append").map(String::as_str), Some("1" | "true"));
    // The body is read only once it is this request's turn, so waiting imports hold no text.
    let _turn = app
        .imports
        .acquire()
        .await
        .map_err(|_| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "the node is stopping"))?;
    let bytes = axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "the text is larger than {} MiB (or the upload broke off); send it in parts \
                 with ?append=true",
                    MAX_BODY_BYTES >> 20
                ),
            )
        })?;
    let text = String::from_utf8(bytes.into())
        .map_err(|_| ApiError::new(StatusCode::BAD_REQUEST, "the text is not valid UTF-8"))?;
    // An empty body is far more often a mistake (an empty pipe, an interrupted upload) than a
    // wish to erase the document on every member's node: that takes saying so.
    let allow_empty = matches!(
        query.get("allow_empty").map(String::as_str),
        Some("1" | "true")
    );
    if text.is_empty() && !append && !allow_empty {
        return Err(ApiError::with_code(
            StatusCode::BAD_REQUEST,
            "empty_text",
            "refusing to replace the document with an empty text: that would erase it on every \
             member's node; to empty it on purpose, add allow_empty=true",
        ));
    }
    app.node.write(&doc, text, append).await?;
    Ok(Json(serde_json::json!({ "ok": true })))
}

/// `{"read_only": true}` in the body, or `?read_only=true`, for a read-only ticket.
#[derive(Deserialize, Default)]
struct TicketOptions {
    #[serde(default)]
    read_only: bool,
}

/// Mints a ticket (and its invitation certificate): a POST, so that no page can make a
/// browser mint one with a plain link or image (see `access` for the cross-site checks).
async fn ticket(
    State(app): State<App>,
    Path(doc): Path<String>,
    Query(query): Query<TicketOptions>,
    body: Bytes,
) -> ApiResult<impl IntoResponse> {
    let body: TicketOptions = if body.iter().all(u8::is_ascii_whitespace) {
        TicketOptions::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("the body must be JSON like {{\"read_only\": true}}, or empty: {e}"),
            )
        })?
    };
    let ticket = app
        .node
        .share(&doc, query.read_only || body.read_only)
        .await?;
    Ok(Json(serde_json::json!({ "ticket": ticket })))
}

async fn members(State(app): State<App>, Path(doc): Path<String>) -> ApiResult<impl IntoResponse> {
    Ok(Json(all::<dto::MemberInfo, _>(
        app.node.members(&doc).await?,
    )))
}

/// `?keep=PEER,PEER` keeps members admitted through the removed one.
#[derive(Deserialize)]
struct RevokeQuery {
    #[serde(default)]
    keep: String,
}

async fn revoke(
    State(app): State<App>,
    Path((doc, peer)): Path<(String, String)>,
    Query(query): Query<RevokeQuery>,
) -> ApiResult<impl IntoResponse> {
    let keep: Vec<String> = query
        .keep
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(String::from)
        .collect();
    Ok(Json(dto::Removed::from(
        app.node.revoke(&doc, &peer, &keep).await?,
    )))
}

#[derive(Deserialize)]
struct JoinBody {
    ticket: String,
    name: Option<String>,
    /// Keep the document and finish the join later if no member answers now.
    #[serde(default)]
    wait: bool,
}

async fn join(State(app): State<App>, Json(body): Json<JoinBody>) -> ApiResult<impl IntoResponse> {
    let name = body.name.as_deref();
    let doc = if body.wait {
        app.node.join_or_wait(&body.ticket, name).await?
    } else {
        app.node.join(&body.ticket, name).await?
    };
    Ok(Json(dto::DocInfo::from(doc)))
}

/// The JSON shapes of a list of the node's values.
fn all<T: From<V>, V>(values: Vec<V>) -> Vec<T> {
    values.into_iter().map(T::from).collect()
}
