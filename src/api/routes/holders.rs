//! The holders routes: a document's holders (listed, asked, let go), and the documents this
//! node holds sealed for others. Each handler is one [`crate::Node`] call.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use serde::Deserialize;

use super::{all, ApiResult, App};
use crate::api::dto;

pub(super) async fn replicas(
    State(app): State<App>,
    Path(doc): Path<String>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(all::<dto::HolderInfo, _>(
        app.node.replicas(&doc).await?,
    )))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ReplicateBody {
    /// A peer id, or an address ending in `/p2p/<peer id>`.
    holder: String,
}

/// Asks a node to hold the document: `{"holder"}` → `201` and the holder once it holds it.
pub(super) async fn replicate(
    State(app): State<App>,
    Path(doc): Path<String>,
    Json(body): Json<ReplicateBody>,
) -> ApiResult<impl IntoResponse> {
    let holder = app.node.replicate(&doc, &body.holder).await?;
    Ok((StatusCode::CREATED, Json(dto::HolderInfo::from(holder))))
}

/// Lets a holder go: `{"confirmed"}` says whether it answered that it dropped the document.
pub(super) async fn unreplicate(
    State(app): State<App>,
    Path((doc, peer)): Path<(String, String)>,
) -> ApiResult<impl IntoResponse> {
    let confirmed = app.node.unreplicate(&doc, &peer).await?;
    Ok(Json(serde_json::json!({ "confirmed": confirmed })))
}

pub(super) async fn held(State(app): State<App>) -> ApiResult<impl IntoResponse> {
    Ok(Json(all::<dto::HeldInfo, _>(app.node.held().await?)))
}
