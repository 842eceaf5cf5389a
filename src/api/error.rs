//! [`ApiError`]: every HTTP error is `{"error": "...", "code": "..."}` with a status code that
//! fits the node error behind it. `code` is a stable machine-readable name (README, HTTP API);
//! `error` is for people. [`json_errors`] gives the same shape to the errors axum makes itself
//! (unknown routes, wrong methods, unreadable bodies).

use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::core::doc::history::VersionError;
use crate::core::doc::DocError;
use crate::node::{Error, ErrorKind};
use crate::replica::room::RoomError;

/// Most of an error body axum or a rejection wrote that is read back (they are one line).
const MAX_PLAIN_ERROR: usize = 16 << 10;

/// A JSON error body with its status code.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code: generic_code(status),
            message: message.into(),
        }
    }

    /// An error with a code of its own (clients match on codes, not messages).
    pub(crate) fn with_code(
        status: StatusCode,
        code: &'static str,
        message: impl Into<String>,
    ) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }
}

/// The code of an error that only has a status.
fn generic_code(status: StatusCode) -> &'static str {
    match status {
        StatusCode::BAD_REQUEST => "bad_request",
        StatusCode::UNAUTHORIZED => "unauthorized",
        StatusCode::FORBIDDEN => "forbidden",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::UNPROCESSABLE_ENTITY => "unprocessable",
        StatusCode::SERVICE_UNAVAILABLE => "unavailable",
        s if s.is_client_error() => "bad_request",
        _ => "internal",
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        use StatusCode as S;
        let (status, code) = match &e {
            Error::UnknownDoc(_) => (S::NOT_FOUND, "unknown_doc"),
            Error::NotShared => (S::NOT_FOUND, "not_shared"),
            Error::NotAMember(_) => (S::NOT_FOUND, "not_a_member"),
            Error::AmbiguousDoc(..) => (S::CONFLICT, "ambiguous_doc"),
            Error::AlreadyJoined(_) => (S::CONFLICT, "already_joined"),
            Error::Joining(_) => (S::CONFLICT, "joining"),
            Error::BadName(..) => (S::BAD_REQUEST, "bad_name"),
            Error::DisplayName(_) => (S::BAD_REQUEST, "bad_display_name"),
            Error::NameInConfig(_) => (S::CONFLICT, "name_in_config"),
            Error::ShortPrefix(_) => (S::BAD_REQUEST, "short_prefix"),
            Error::Ticket(_) => (S::BAD_REQUEST, "bad_ticket"),
            Error::OwnTicket => (S::BAD_REQUEST, "own_ticket"),
            Error::Unreachable { .. } => (S::BAD_GATEWAY, "unreachable"),
            Error::JoinSync(_) => (S::BAD_GATEWAY, "join_failed"),
            Error::NoWriter => (S::BAD_GATEWAY, "no_writer"),
            Error::TicketRevoked => (S::FORBIDDEN, "ticket_revoked"),
            Error::ReaderCannotShare => (S::FORBIDDEN, "reader_cannot_share"),
            Error::NotOwner => (S::FORBIDDEN, "not_owner"),
            Error::RemoveOwner => (S::FORBIDDEN, "remove_owner"),
            Error::NotWriterForHolders => (S::FORBIDDEN, "not_writer"),
            Error::BadHolder(_) => (S::BAD_REQUEST, "bad_holder"),
            Error::HolderIsSelf => (S::BAD_REQUEST, "holder_is_self"),
            Error::TooManyHolders => (S::CONFLICT, "too_many_holders"),
            Error::NotAHolder(_) => (S::NOT_FOUND, "not_a_holder"),
            Error::HolderRefused(..) => (S::BAD_GATEWAY, "holder_refused"),
            Error::HolderUnreachable(..) => (S::BAD_GATEWAY, "holder_unreachable"),
            Error::HeldSealed(_) => (S::FORBIDDEN, "sealed"),
            Error::NotWriterForAttachments => (S::FORBIDDEN, "not_writer"),
            Error::BadBlobRef(_) => (S::BAD_REQUEST, "bad_reference"),
            Error::AttachmentUnavailable(_) => (S::BAD_GATEWAY, "attachment_unavailable"),
            Error::AttachmentNotHere(_) => (S::NOT_FOUND, "not_here"),
            Error::Room(RoomError::Version(VersionError::Unknown(_))) => {
                (S::NOT_FOUND, "unknown_version")
            }
            Error::Room(RoomError::Version(VersionError::Ambiguous(..))) => {
                (S::CONFLICT, "ambiguous_version")
            }
            Error::Room(RoomError::Doc(DocError::VersionAhead)) => (S::CONFLICT, "version_ahead"),
            _ => match e.kind() {
                ErrorKind::NameTaken => (S::CONFLICT, "name_taken"),
                ErrorKind::ReadOnly => (S::FORBIDDEN, "read_only"),
                ErrorKind::Removed => (S::FORBIDDEN, "removed"),
                ErrorKind::RemovalFailed => (S::CONFLICT, "removal_failed"),
                ErrorKind::TooLarge => (S::PAYLOAD_TOO_LARGE, "too_large"),
                ErrorKind::DiskFull => (S::INSUFFICIENT_STORAGE, "disk_full"),
                ErrorKind::StorageUnavailable => (S::SERVICE_UNAVAILABLE, "storage_unavailable"),
                _ => (S::INTERNAL_SERVER_ERROR, "internal"),
            },
        };
        ApiError {
            status,
            code,
            message: e.to_string(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json(serde_json::json!({ "error": self.message, "code": self.code }));
        (self.status, body).into_response()
    }
}

/// Middleware: an error response that is not JSON yet (axum's 404 and 405, its extractors'
/// plain-text rejections, the body limit's 413) becomes an [`ApiError`] with the same status
/// and headers.
pub(crate) async fn json_errors(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let response = next.run(request).await;
    let status = response.status();
    // JSON, or a page made for a browser (`access`'s "open it with the token").
    let is_ours = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|t| {
            t.as_bytes().starts_with(b"application/json") || t.as_bytes().starts_with(b"text/html")
        });
    if !(status.is_client_error() || status.is_server_error()) || is_ours {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, MAX_PLAIN_ERROR)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
        .unwrap_or_default();
    let message = match status {
        StatusCode::NOT_FOUND if text.is_empty() => format!("no such endpoint: {method} {path}"),
        // axum adds the `Allow` header after this layer.
        StatusCode::METHOD_NOT_ALLOWED => {
            format!(
                "{method} is not allowed on {path}; the Allow header lists the methods that are"
            )
        }
        _ if text.is_empty() => status
            .canonical_reason()
            .unwrap_or("request failed")
            .to_owned(),
        _ => text,
    };
    let mut json = ApiError::new(status, message).into_response();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    *json.headers_mut() = parts.headers;
    json
}
