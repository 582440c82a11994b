//! The one error of the service layer and the one list of stable error codes. `AppError`
//! knows nothing about HTTP rendering: `api/` turns it into `{"error": {"code", "message"}}`,
//! `web/` into a page. Each `Code` carries the HTTP status both of them answer with.

use crate::store::StoreError;

/// Every stable, machine-readable error code the API and the UI can answer with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// A field's value is not acceptable (400).
    ValidationFailed,
    /// The body is not the JSON the operation takes (400).
    InvalidJson,
    /// The body could not be read (400).
    InvalidBody,
    /// A query parameter is not acceptable (400).
    InvalidQuery,
    /// An event type name is not acceptable (400).
    InvalidEventType,
    /// No or an unknown API key (401).
    Unauthorized,
    /// The key's role may not do this (403).
    Forbidden,
    /// No such resource in this workspace, or no such route (404).
    NotFound,
    /// The path exists, the method does not (405).
    MethodNotAllowed,
    /// The resource's state does not allow this now (409).
    Conflict,
    /// The body is larger than allowed (413).
    PayloadTooLarge,
    /// The body is not JSON (415).
    UnsupportedMediaType,
    /// The store's write queue is full; try again shortly (503, with `Retry-After`).
    Overloaded,
    /// The mail server did not take a mail (502).
    MailFailed,
    /// Something broke inside; the log has details (500).
    Internal,
}

impl Code {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ValidationFailed => "validation_failed",
            Self::InvalidJson => "invalid_json",
            Self::InvalidBody => "invalid_body",
            Self::InvalidQuery => "invalid_query",
            Self::InvalidEventType => "invalid_event_type",
            Self::Unauthorized => "unauthorized",
            Self::Forbidden => "forbidden",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::Conflict => "conflict",
            Self::PayloadTooLarge => "payload_too_large",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::Overloaded => "overloaded",
            Self::MailFailed => "mail_failed",
            Self::Internal => "internal",
        }
    }

    /// The HTTP status the API and the UI answer with.
    pub fn status(self) -> u16 {
        match self {
            Self::ValidationFailed
            | Self::InvalidJson
            | Self::InvalidBody
            | Self::InvalidQuery
            | Self::InvalidEventType => 400,
            Self::Unauthorized => 401,
            Self::Forbidden => 403,
            Self::NotFound => 404,
            Self::MethodNotAllowed => 405,
            Self::Conflict => 409,
            Self::PayloadTooLarge => 413,
            Self::UnsupportedMediaType => 415,
            Self::Internal => 500,
            Self::MailFailed => 502,
            Self::Overloaded => 503,
        }
    }
}

/// Seconds a caller should wait before trying again after `Code::Overloaded`.
pub const OVERLOADED_RETRY_AFTER_S: u32 = 1;

/// What a use case answers when it refuses or fails.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The caller's request was refused: a stable code and a message saying what was wrong.
    #[error("{message}")]
    Refused { code: Code, message: String },
    /// Something inside failed; shown as an opaque 500 and logged in full.
    #[error("internal error: {0:#}")]
    Internal(anyhow::Error),
}

impl AppError {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Self::Refused {
            code,
            message: message.into(),
        }
    }

    pub fn validation(message: impl Into<String>) -> Self {
        Self::new(Code::ValidationFailed, message)
    }

    pub fn invalid_query(message: impl Into<String>) -> Self {
        Self::new(Code::InvalidQuery, message)
    }

    pub fn invalid_event_type(message: impl Into<String>) -> Self {
        Self::new(Code::InvalidEventType, message)
    }

    pub fn not_found(what: &str, id: &str) -> Self {
        Self::new(
            Code::NotFound,
            format!("no {what} with id {id:?} in this workspace"),
        )
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(Code::Conflict, message)
    }

    pub fn internal(err: impl Into<anyhow::Error>) -> Self {
        Self::Internal(err.into())
    }

    /// A JSON body (or merged patch) that does not fit, naming the field at fault
    /// (`webhook.timeout_ms: invalid type…`).
    pub fn invalid_json_at(e: &serde_path_to_error::Error<serde_json::Error>) -> Self {
        let path = e.path().to_string();
        let message = if path == "." || path.is_empty() {
            format!("the request body is not valid: {}", e.inner())
        } else {
            format!("{path}: {}", e.inner())
        };
        Self::new(Code::InvalidJson, message)
    }

    /// The code: `Internal` for internal errors.
    pub fn code(&self) -> Code {
        match self {
            Self::Refused { code, .. } => *code,
            Self::Internal(_) => Code::Internal,
        }
    }
}

impl From<StoreError> for AppError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::NotFound { what, id } => Self::not_found(what, &id),
            // What this backend leaves to the database's own tools (a PostgreSQL backup).
            StoreError::Conflict(message) | StoreError::Unsupported(message) => {
                Self::conflict(message)
            }
            StoreError::Overloaded => Self::new(
                Code::Overloaded,
                "tidings is writing as fast as its disk allows and its queue is full; try again in a moment",
            ),
            other => Self::internal(other),
        }
    }
}

impl From<tokio::task::JoinError> for AppError {
    fn from(err: tokio::task::JoinError) -> Self {
        Self::internal(anyhow::anyhow!("blocking task failed: {err}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_stable_and_carry_their_status() {
        assert_eq!(Code::InvalidQuery.as_str(), "invalid_query");
        assert_eq!(Code::InvalidQuery.status(), 400);
        assert_eq!(Code::Overloaded.status(), 503);
        let e = AppError::not_found("rule", "rul_x");
        assert_eq!(e.code(), Code::NotFound);
        assert_eq!(e.to_string(), "no rule with id \"rul_x\" in this workspace");
        assert_eq!(
            AppError::internal(anyhow::anyhow!("x")).code(),
            Code::Internal
        );
    }
}
