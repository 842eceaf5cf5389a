//! The attachment routes: add one (the request body is the file), list a document's, watch a
//! download, read one (with range requests, streamed), and collect garbage. Each handler is
//! one [`crate::Node`] call, but the body's streaming.

use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures::StreamExt;
use serde::Deserialize;
use tokio::io::AsyncWriteExt;

use super::{all, ApiResult, App};
use crate::api::dto;
use crate::api::error::ApiError;
use crate::core::blob::{refs_in, BlobRef};
use crate::node::{content_type, is_image};

/// Bytes read from the attachment store per chunk of a response body.
const READ_CHUNK: usize = 256 * 1024;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AttachQuery {
    /// The file name (shown in the document, and its type).
    name: Option<String>,
    /// Also append a link (an image for images) to the document.
    #[serde(default)]
    insert: bool,
}

/// Adds the request body as an attachment: `?name=…&insert=true` → `201` and its reference.
pub(super) async fn attach(
    State(app): State<App>,
    Path(doc): Path<String>,
    Query(query): Query<AttachQuery>,
    request: Request,
) -> ApiResult<impl IntoResponse> {
    let max = app.node.config().attachments.max_attachment_bytes;
    let path = app.node.blob_scratch();
    let written = receive(request.into_body(), &path, max).await;
    let result = match written {
        Ok(()) => app
            .node
            .attach(doc.as_str(), &path, query.name, query.insert)
            .await
            .map_err(ApiError::from),
        Err(e) => Err(e),
    };
    let _ = tokio::fs::remove_file(&path).await;
    Ok((StatusCode::CREATED, Json(dto::Attached::from(result?))))
}

/// Writes a request body to `path`, refusing it past `max` bytes.
async fn receive(body: Body, path: &std::path::Path, max: u64) -> Result<(), ApiError> {
    let io = |e: std::io::Error| {
        let full = e.raw_os_error() == Some(28);
        ApiError::from(if full {
            crate::Error::AttachmentDiskFull(e.to_string())
        } else {
            crate::Error::AttachmentIo(format!("cannot keep the upload: {e}"))
        })
    };
    let mut file = tokio::fs::File::create(path).await.map_err(io)?;
    let mut stream = body.into_data_stream();
    let mut size = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("the upload broke off: {e}"),
            )
        })?;
        size += chunk.len() as u64;
        if size > max {
            return Err(ApiError::from(crate::Error::AttachmentTooLarge {
                size,
                max,
            }));
        }
        file.write_all(&chunk).await.map_err(io)?;
    }
    file.flush().await.map_err(io)
}

pub(super) async fn list(
    State(app): State<App>,
    Path(doc): Path<String>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(all::<dto::BlobInfo, _>(
        app.node.blobs(doc.as_str()).await?,
    )))
}

/// A reference from a path segment (the reference, or a link that holds one).
fn reference(text: &str) -> Result<BlobRef, ApiError> {
    match refs_in(text).first() {
        Some(r) => Ok(*r),
        None => Err(ApiError::from(crate::Error::BadBlobRef(
            text.parse::<BlobRef>()
                .err()
                .unwrap_or(crate::core::blob::BadRef("empty")),
        ))),
    }
}

/// Starts fetching an attachment (or joins the download running) and says how it goes.
pub(super) async fn transfer(
    State(app): State<App>,
    Path((doc, blob)): Path<(String, String)>,
) -> ApiResult<impl IntoResponse> {
    let blob = reference(&blob)?;
    let rx = app.node.fetch_blob(doc.as_str(), blob).await?;
    let now = rx.borrow().clone();
    Ok(Json(dto::Transfer::from(now)))
}

pub(super) async fn content(
    State(app): State<App>,
    Path((doc, blob)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    serve(app, doc, blob, None, headers).await
}

pub(super) async fn named_content(
    State(app): State<App>,
    Path((doc, blob, name)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    serve(app, doc, blob, Some(name), headers).await
}

/// An attachment's bytes: fetched first if it is not here, then streamed (a range of it for a
/// range request).
async fn serve(
    app: App,
    doc: String,
    blob: String,
    name: Option<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let blob = reference(&blob)?;
    app.node.fetch_blob_and_wait(doc.as_str(), blob).await?;
    let size = blob.size;
    let (start, end, partial) = match headers.get(header::RANGE).and_then(|v| v.to_str().ok()) {
        Some(range) => match parse_range(range, size) {
            Some((start, end)) => (start, end, true),
            None => {
                return Ok((
                    StatusCode::RANGE_NOT_SATISFIABLE,
                    [(header::CONTENT_RANGE, format!("bytes */{size}"))],
                    Json(serde_json::json!({
                        "error": format!("the range {range:?} is not within the attachment's {size} bytes"),
                        "code": "bad_range"
                    })),
                )
                    .into_response())
            }
        },
        None => (0, size, false),
    };
    let node = app.node.clone();
    let body = futures::stream::unfold(start, move |at| {
        let (node, doc) = (node.clone(), doc.clone());
        async move {
            if at >= end {
                return None;
            }
            let len = (end - at).min(READ_CHUNK as u64) as usize;
            match node.read_blob(doc.as_str(), blob, at, len).await {
                Ok(bytes) => Some((Ok::<_, std::io::Error>(bytes), at + len as u64)),
                Err(e) => Some((Err(std::io::Error::other(e.to_string())), end)),
            }
        }
    });
    let name = name.unwrap_or_else(|| blob.hash.to_hex()[..16].to_string());
    let kind = content_type(&name);
    let disposition = if is_image(&name) || kind.starts_with("text/") || kind == "application/pdf" {
        "inline"
    } else {
        "attachment"
    };
    let mut response = Response::new(Body::from_stream(body));
    *response.status_mut() = if partial {
        StatusCode::PARTIAL_CONTENT
    } else {
        StatusCode::OK
    };
    let h = response.headers_mut();
    let set = |h: &mut HeaderMap, k, v: String| {
        if let Ok(v) = HeaderValue::from_str(&v) {
            h.insert(k, v);
        }
    };
    set(h, header::CONTENT_TYPE, kind.to_string());
    set(h, header::CONTENT_LENGTH, (end - start).to_string());
    set(h, header::ACCEPT_RANGES, "bytes".into());
    set(
        h,
        header::CONTENT_DISPOSITION,
        format!("{disposition}; filename=\"{}\"", name.replace('"', "")),
    );
    // Content-addressed: it never changes. Whatever it holds, a browser runs none of it.
    set(
        h,
        header::CACHE_CONTROL,
        "private, max-age=31536000, immutable".into(),
    );
    set(h, header::X_CONTENT_TYPE_OPTIONS, "nosniff".into());
    set(
        h,
        header::CONTENT_SECURITY_POLICY,
        "sandbox; default-src 'none'".into(),
    );
    if partial {
        set(
            h,
            header::CONTENT_RANGE,
            format!("bytes {start}-{}/{size}", end - 1),
        );
    }
    Ok(response)
}

/// A single `bytes=` range as `[start, end)`; `None` when it is not satisfiable or not one
/// range.
fn parse_range(header: &str, size: u64) -> Option<(u64, u64)> {
    let spec = header.trim().strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None;
    }
    let (a, b) = spec.split_once('-')?;
    let (start, end) = match (a.trim(), b.trim()) {
        ("", suffix) => {
            let n: u64 = suffix.parse().ok()?;
            (size.saturating_sub(n), size)
        }
        (a, "") => (a.parse().ok()?, size),
        (a, b) => (
            a.parse().ok()?,
            b.parse::<u64>().ok()?.saturating_add(1).min(size),
        ),
    };
    (start < end && end <= size).then_some((start, end))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct GcQuery {
    /// Seconds an unreferenced attachment is kept after it was added (default: a day).
    grace: Option<i64>,
}

pub(super) async fn gc(
    State(app): State<App>,
    Query(query): Query<GcQuery>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(dto::GcReport::from(
        app.node.gc_blobs(query.grace).await?,
    )))
}

#[cfg(test)]
mod tests {
    use super::parse_range;

    #[test]
    fn ranges_are_read_as_browsers_send_them() {
        assert_eq!(parse_range("bytes=0-99", 1000), Some((0, 100)));
        assert_eq!(parse_range("bytes=900-", 1000), Some((900, 1000)));
        assert_eq!(parse_range("bytes=-10", 1000), Some((990, 1000)));
        assert_eq!(parse_range("bytes=990-5000", 1000), Some((990, 1000)));
        assert_eq!(parse_range("bytes=1000-", 1000), None);
        assert_eq!(parse_range("bytes=5-1", 1000), None);
        assert_eq!(parse_range("bytes=0-1,5-6", 1000), None);
        assert_eq!(parse_range("items=0-1", 1000), None);
    }
}
