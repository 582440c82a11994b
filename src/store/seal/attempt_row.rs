//! An attempt as stored, encoded straight from the attempt with its bodies sealed. Every
//! attempt writes one, so it skips the `serde_json::Value` tree the other rows go through
//! (`to_value`, sealing, encoding was an eighth of a delivery worker's time). The bytes are
//! what that route writes (`the_typed_row_is_the_row_the_value_route_writes`), and
//! `open_attempt` reads them as before.
//!
//! The attempt is taken apart field by field without `..`, so a field added to `Attempt`
//! does not compile here until it is stored too.

use serde::Serialize;

use crate::domain::delivery::{Attempt, ErrorKind, LoggedRequest, LoggedResponse};
use crate::security::crypto::MasterKey;

#[derive(Serialize)]
struct AttemptRow<'a> {
    number: u32,
    started_at: i64,
    duration_ms: u64,
    status_code: Option<u16>,
    error_kind: Option<ErrorKind>,
    error: &'a Option<String>,
    request: RequestRow<'a>,
    response: Option<ResponseRow<'a>>,
}

#[derive(Serialize)]
struct RequestRow<'a> {
    url: &'a str,
    method: &'a str,
    headers: &'a [(String, String)],
    body: Option<SealedBody>,
}

#[derive(Serialize)]
struct ResponseRow<'a> {
    status: u16,
    headers: &'a [(String, String)],
    body: Option<SealedBody>,
    truncated: bool,
}

/// A body as `{"sealed": "xc1:…"}` (see `SEALED_FIELD`).
#[derive(Serialize)]
struct SealedBody {
    sealed: String,
}

fn sealed(body: Option<&String>, key: &MasterKey) -> Option<SealedBody> {
    body.map(|plain| SealedBody {
        sealed: key.seal(plain).into_string(),
    })
}

/// The stored bytes of `attempt`, bodies sealed with `key`.
pub(super) fn encode(attempt: &Attempt, key: &MasterKey) -> Vec<u8> {
    let Attempt {
        number,
        started_at,
        duration_ms,
        status_code,
        error_kind,
        error,
        request,
        response,
    } = attempt;
    let LoggedRequest {
        url,
        method,
        headers,
        body,
    } = request;
    let request = RequestRow {
        url,
        method,
        headers,
        body: sealed(body.as_ref(), key),
    };
    let response = response.as_ref().map(|response| {
        let LoggedResponse {
            status,
            headers,
            body,
            truncated,
        } = response;
        ResponseRow {
            status: *status,
            headers,
            body: sealed(body.as_ref(), key),
            truncated: *truncated,
        }
    });
    super::codec::encode(&AttemptRow {
        number: *number,
        started_at: *started_at,
        duration_ms: *duration_ms,
        status_code: *status_code,
        error_kind: *error_kind,
        error,
        request,
        response,
    })
}
