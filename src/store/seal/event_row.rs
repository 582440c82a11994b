//! An event as stored, encoded straight from the event with its `data` sealed. Every ingest
//! writes one, so it skips the `serde_json::Value` tree the other rows go through
//! (`to_value` copied the whole payload into a tree before sealing it: 7.5 % of the HTTP
//! threads' time in h). The bytes are what that route writes
//! (`the_typed_event_row_is_the_row_the_value_route_writes`), and `open_event` reads them
//! as before.
//!
//! The event is taken apart field by field without `..`, so a field added to `Event` does
//! not compile here until it is stored too.

use serde::Serialize;

use crate::domain::event::{Event, EventType};
use crate::domain::ids::{EventId, WorkspaceId};
use crate::domain::subject::SubjectHash;
use crate::security::crypto::MasterKey;

/// Field for field as `Event` serialises, `data` a sealed string.
#[derive(Serialize)]
struct EventRow<'a> {
    id: &'a EventId,
    workspace_id: &'a WorkspaceId,
    #[serde(rename = "type")]
    event_type: &'a EventType,
    occurred_at: i64,
    received_at: i64,
    data: String,
    test: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    subject: &'a Option<SubjectHash>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    erased: bool,
}

/// The stored bytes of `event`, its data sealed with `key`.
pub(super) fn encode(event: &Event, key: &MasterKey) -> Vec<u8> {
    let Event {
        id,
        workspace_id,
        event_type,
        occurred_at,
        received_at,
        data,
        test,
        subject,
        erased,
    } = event;
    let plain = serde_json::to_string(data).expect("JSON values serialise");
    super::codec::encode(&EventRow {
        id,
        workspace_id,
        event_type,
        occurred_at: *occurred_at,
        received_at: *received_at,
        data: key.seal(&plain).into_string(),
        test: *test,
        subject,
        erased: *erased,
    })
}
