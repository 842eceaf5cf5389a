//! [`ApiError`]: every HTTP error is `{ "error": "..." }` with a status code that fits the
//! node error behind it.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::node::Error;
use crate::replica::room::RoomError;
use crate::replica::store::StoreError;

/// A JSON error body with its status code.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        let status = match &e {
            Error::UnknownDoc(_) | Error::NotShared => StatusCode::NOT_FOUND,
            Error::AmbiguousDoc(..) | Error::AlreadyJoined(_) => StatusCode::CONFLICT,
            Error::Store(StoreError::NameTaken(_)) => StatusCode::CONFLICT,
            Error::BadName(..) | Error::ShortPrefix(_) | Error::Ticket(_) | Error::OwnTicket => {
                StatusCode::BAD_REQUEST
            }
            Error::Unreachable { .. } | Error::JoinSync(_) | Error::NoWriter => {
                StatusCode::BAD_GATEWAY
            }
            Error::ReaderCannotShare
            | Error::NotOwner
            | Error::RemoveOwner
            | Error::Room(RoomError::ReadOnly(_)) => StatusCode::FORBIDDEN,
            Error::NotAMember(_) => StatusCode::NOT_FOUND,
            Error::Room(RoomError::TooLarge(_)) => StatusCode::PAYLOAD_TOO_LARGE,
            Error::Room(RoomError::Store(e)) | Error::Store(e) if e.is_full() => {
                StatusCode::INSUFFICIENT_STORAGE
            }
            Error::Room(RoomError::Store(_)) => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json(serde_json::json!({ "error": self.message }));
        (self.status, body).into_response()
    }
}
