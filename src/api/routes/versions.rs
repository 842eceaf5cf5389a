//! The history routes: a document's versions (listed, recorded, named, previewed, restored)
//! and the diff between two of them. Each handler is one [`crate::Node`] call.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;

use super::{all, ApiResult, App, NameBody};
use crate::api::dto;
use crate::api::error::ApiError;

pub(super) async fn list_versions(
    State(app): State<App>,
    Path(doc): Path<String>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(all::<dto::VersionInfo, _>(
        app.node.versions(&doc).await?,
    )))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct VersionBody {
    #[serde(default)]
    name: Option<String>,
}

/// Records a version now (`{"name": …}` optional): `201 {"id"}`.
pub(super) async fn record_version(
    State(app): State<App>,
    Path(doc): Path<String>,
    Json(body): Json<VersionBody>,
) -> ApiResult<impl IntoResponse> {
    let id = app.node.record_version(&doc, body.name.as_deref()).await?;
    Ok((StatusCode::CREATED, Json(serde_json::json!({ "id": id }))))
}

/// Names a version: `{"name"}` → `{"id"}`.
pub(super) async fn name_version(
    State(app): State<App>,
    Path((doc, version)): Path<(String, String)>,
    Json(body): Json<NameBody>,
) -> ApiResult<impl IntoResponse> {
    let id = app.node.name_version(&doc, &version, &body.name).await?;
    Ok(Json(serde_json::json!({ "id": id })))
}

/// A version's text in spans marked with what changed since the version before.
pub(super) async fn preview_version(
    State(app): State<App>,
    Path((doc, version)): Path<(String, String)>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(all::<dto::PreviewSpan, _>(
        app.node.preview(&doc, &version).await?,
    )))
}

/// Restores a version: `{"id"}`, the restore's own version (`null`: nothing to change).
pub(super) async fn restore_version(
    State(app): State<App>,
    Path((doc, version)): Path<(String, String)>,
) -> ApiResult<impl IntoResponse> {
    let id = app.node.restore(&doc, &version).await?;
    Ok(Json(serde_json::json!({ "id": id })))
}

/// `?from=VERSION[&to=VERSION]`: a unified diff of the content (`to`: now, if absent).
pub(super) async fn diff_versions(
    State(app): State<App>,
    Path(doc): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult<Response> {
    let Some(from) = query.get("from") else {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "say which version to compare from: ?from=VERSION (and &to=VERSION, or now)",
        ));
    };
    let diff = app
        .node
        .diff_versions(&doc, from, query.get("to").map(String::as_str))
        .await?;
    Ok(([(header::CONTENT_TYPE, "text/x-diff; charset=utf-8")], diff).into_response())
}
