//! How the JSON API answers an `AppError`: `{"error": {"code", "message"}}` with the code's
//! status; an internal error becomes an opaque 500 and is logged with its whole chain.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::{AppError, Code, OVERLOADED_RETRY_AFTER_S};

impl ResponseError for AppError {
    fn status_code(&self) -> StatusCode {
        status_of(self.code())
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            Self::Refused { code, message } => {
                let mut res = error_body(*code, message);
                if *code == Code::Overloaded {
                    res.headers_mut().insert(
                        actix_web::http::header::RETRY_AFTER,
                        OVERLOADED_RETRY_AFTER_S.into(),
                    );
                }
                res
            }
            Self::Internal(err) => {
                tracing::error!(error = format!("{err:#}"), "internal error");
                error_body(Code::Internal, "internal error; the server log has details")
            }
        }
    }
}

/// The status a code answers with.
pub fn status_of(code: Code) -> StatusCode {
    StatusCode::from_u16(code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// The body of every error response: `{"error": {"code", "message"}}`.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody<'a> {
    pub error: ErrorDetail<'a>,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorDetail<'a> {
    /// Stable and machine-readable, e.g. `not_found`, `validation_failed`, `unauthorized`.
    pub code: &'a str,
    /// What was wrong, for a person.
    pub message: &'a str,
}

/// The `{"error": {"code", "message"}}` response for a code.
pub fn error_body(code: Code, message: &str) -> HttpResponse {
    HttpResponse::build(status_of(code)).json(ErrorBody {
        error: ErrorDetail {
            code: code.as_str(),
            message,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreError;

    #[test]
    fn a_full_write_queue_is_a_503_with_retry_after_and_the_error_shape() {
        let res = AppError::from(StoreError::Overloaded).error_response();
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            res.headers()
                .get(actix_web::http::header::RETRY_AFTER)
                .unwrap(),
            "1"
        );
        let body = actix_web::body::to_bytes(res.into_body());
        let body = futures_util::FutureExt::now_or_never(body)
            .unwrap()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["error"]["code"], "overloaded");
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .contains("try again")
        );
    }

    #[test]
    fn an_internal_error_says_nothing_of_its_cause() {
        let res = AppError::internal(anyhow::anyhow!("disk /dev/sda1 on fire")).error_response();
        assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = actix_web::body::to_bytes(res.into_body());
        let body = futures_util::FutureExt::now_or_never(body)
            .unwrap()
            .unwrap();
        assert!(!String::from_utf8_lossy(&body).contains("sda1"));
    }
}
