//! Encryption at rest of the PHI in stored rows, the same for every backend.
//!
//! Event payloads (`data`), logged request and response bodies and catalog samples are sealed
//! with the master key where rows are encoded — on the caller's thread, before a backend's
//! writer (the serial point of its writes) gets the bytes — and opened where rows are decoded.
//! The rest of each row stays plain JSON, so ids, types and statuses remain readable while
//! debugging, and a row moves between backends byte for byte (`tidings migrate`).
//!
//! A sealed field uses a JSON type its plain form never has, so a row says which form it is
//! in and rows from earlier versions (plain) still read: an event's `data`, always an object,
//! is stored as the sealed string; a body, a string or null, as `{"sealed": "xc1:…"}`.

mod attempt_row;
mod event_row;

use std::sync::Arc;

use serde_json::{Map, Value};

use super::opened_events::OpenedEvents;
use super::{StoreError, codec};
use crate::domain::catalog::StoredType;
use crate::domain::delivery::Attempt;
use crate::domain::event::Event;
use crate::domain::ids::EventId;
use crate::security::crypto::{MasterKey, Sealed, Secret};

/// The known text sealed under `master_key_check`, so a wrong key is refused at open
/// instead of failing every delivery.
pub(super) const CHECK_TEXT: &str = "tidings master key check";

/// Meta key: the subject key's seed (`crypto::new_subject_seed`), sealed with the master key.
pub(super) const SUBJECT_SEED: &str = "subject_key_seed";

/// Opens a stored subject key seed with whichever of `keys` sealed it (during a rotation,
/// the old key or the new one).
pub(super) fn open_subject_seed(stored: &str, keys: &[&MasterKey]) -> Result<Secret, StoreError> {
    let sealed = Sealed::parse(stored)
        .ok_or_else(|| StoreError::Corrupt("the subject key seed is not a sealed value".into()))?;
    keys.iter()
        .find_map(|k| k.open(&sealed).ok())
        .ok_or_else(|| {
            StoreError::MasterKey("the master key does not open the subject key seed".into())
        })
}
/// The field a sealed body is kept under.
const SEALED_FIELD: &str = "sealed";
/// Where an attempt row keeps bodies.
const BODY_PATHS: [[&str; 2]; 2] = [["request", "body"], ["response", "body"]];
/// Where an event catalog row keeps samples (the latest seen one is real event data).
const SAMPLE_PATHS: [&[&str]; 2] = [&["seen_sample"], &["declared", "sample"]];

/// Seals and opens the PHI fields of rows. Without a key (a command such as `key create`
/// that never touches payloads), reading or writing them is refused.
/// Clones share `opened`, the events lately opened for delivery.
#[derive(Clone)]
pub(in crate::store) struct RowSeal {
    key: Option<MasterKey>,
    opened: Arc<OpenedEvents>,
}

fn no_key() -> StoreError {
    StoreError::MasterKey(
        "this command opened the database without the master key, so it cannot read or write event payloads or logged bodies".into(),
    )
}

fn corrupt(table: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("a record in {table} does not decode: {e}"))
}

fn to_value<T: serde::Serialize>(row: &T) -> Value {
    serde_json::to_value(row).expect("stored types always serialise")
}

fn open_str(key: &MasterKey, table: &str, sealed: &str) -> Result<String, StoreError> {
    let sealed =
        Sealed::parse(sealed).ok_or_else(|| corrupt(table, "a sealed field is not sealed"))?;
    key.open(&sealed)
        .map(|plain| plain.expose().to_owned())
        .map_err(|e| StoreError::MasterKey(format!("a record in {table}: {e}")))
}

impl RowSeal {
    pub(in crate::store) fn new(key: Option<MasterKey>) -> Self {
        Self {
            key,
            opened: Arc::default(),
        }
    }

    fn key(&self) -> Result<&MasterKey, StoreError> {
        self.key.as_ref().ok_or_else(no_key)
    }

    /// Whether sealed values can be opened: commands that open the store without the key
    /// (backup, migrate, rotation) never ingest, so they skip what only ingest needs.
    pub(in crate::store) fn can_open(&self) -> bool {
        self.key.is_some()
    }

    pub(in crate::store) fn event(&self, event: &Event) -> Result<Vec<u8>, StoreError> {
        Ok(event_row::encode(event, self.key()?))
    }

    /// `event` as an ingest stores it: sealed, and kept opened for its deliveries if it
    /// owes any.
    pub(in crate::store) fn ingested_event(
        &self,
        event: &Arc<Event>,
        owes_deliveries: bool,
    ) -> Result<Vec<u8>, StoreError> {
        let row = self.event(event)?;
        if owes_deliveries {
            self.opened.remember(&row, event);
        }
        Ok(row)
    }

    pub(in crate::store) fn open_event(&self, bytes: &[u8]) -> Result<Event, StoreError> {
        let mut row: Value = codec::decode("events", bytes)?;
        if let Some(data) = row.get_mut("data")
            && let Value::String(sealed) = data
        {
            let plain = open_str(self.key()?, "events", sealed)?;
            *data = serde_json::from_str(&plain).map_err(|e| corrupt("events", e))?;
        }
        serde_json::from_value(row).map_err(|e| corrupt("events", e))
    }

    /// `open_event` for an attempt: the event's fan-out shares one opening (see
    /// `opened_events.rs`).
    pub(in crate::store) fn open_event_to_deliver(
        &self,
        id: &EventId,
        bytes: &[u8],
        now_ms: i64,
    ) -> Result<Arc<Event>, StoreError> {
        self.opened
            .open(id, bytes, now_ms, |row| self.open_event(row))
    }

    /// After an erasure: no opened event is kept (see `OpenedEvents::clear`).
    pub(in crate::store) fn forget_opened_events(&self) {
        self.opened.clear();
    }

    pub(in crate::store) fn attempt(&self, attempt: &Attempt) -> Result<Vec<u8>, StoreError> {
        Ok(attempt_row::encode(attempt, self.key()?))
    }

    pub(in crate::store) fn open_attempt(&self, bytes: &[u8]) -> Result<Attempt, StoreError> {
        let mut row: Value = codec::decode("attempts", bytes)?;
        for path in BODY_PATHS {
            if let Some(body) = field(&mut row, &path)
                && let Some(sealed) = body.get(SEALED_FIELD).and_then(Value::as_str)
            {
                let plain = open_str(self.key()?, "attempts", sealed)?;
                *body = Value::String(plain);
            }
        }
        serde_json::from_value(row).map_err(|e| corrupt("attempts", e))
    }
}

impl RowSeal {
    pub(in crate::store) fn event_type(&self, row: &StoredType) -> Result<Vec<u8>, StoreError> {
        let mut row = to_value(row);
        seal_event_type_row(&mut row, self.key()?);
        Ok(codec::encode(&row))
    }

    pub(in crate::store) fn open_event_type(&self, bytes: &[u8]) -> Result<StoredType, StoreError> {
        let mut row: Value = codec::decode("event-types", bytes)?;
        for path in SAMPLE_PATHS {
            if let Some(sample) = field(&mut row, path)
                && let Value::String(sealed) = sample
            {
                let plain = open_str(self.key()?, "event-types", sealed)?;
                *sample = serde_json::from_str(&plain).map_err(|e| corrupt("event-types", e))?;
            }
        }
        serde_json::from_value(row).map_err(|e| corrupt("event-types", e))
    }
}

/// Seals plain samples (objects) as strings; true if the row changed.
fn seal_event_type_row(row: &mut Value, key: &MasterKey) -> bool {
    let mut changed = false;
    for path in SAMPLE_PATHS {
        if let Some(sample @ Value::Object(_)) = field(row, path) {
            let plain = serde_json::to_string(sample).expect("JSON values serialise");
            *sample = Value::String(key.seal(&plain).into_string());
            changed = true;
        }
    }
    changed
}

fn field<'a>(row: &'a mut Value, path: &[&str]) -> Option<&'a mut Value> {
    path.iter().try_fold(row, |v, k| v.get_mut(*k))
}

/// Seals a plain `data`; true if the row changed.
fn seal_event_row(row: &mut Value, key: &MasterKey) -> bool {
    match row.get_mut("data") {
        Some(data @ Value::Object(_)) => {
            let plain = serde_json::to_string(data).expect("JSON values serialise");
            *data = Value::String(key.seal(&plain).into_string());
            true
        }
        _ => false,
    }
}

/// Seals plain bodies; true if the row changed.
fn seal_attempt_row(row: &mut Value, key: &MasterKey) -> bool {
    let mut changed = false;
    for path in BODY_PATHS {
        if let Some(body) = field(row, &path)
            && let Value::String(plain) = body
        {
            let sealed = key.seal(plain).into_string();
            *body = Value::Object(Map::from_iter([(
                SEALED_FIELD.to_owned(),
                Value::String(sealed),
            )]));
            changed = true;
        }
    }
    changed
}

/// Re-seals with `to` every sealed string in `v` that `from` opens (and `to` does not: it
/// may be re-sealed already). Walks the whole row, so a sealed field added to a row type
/// later is rotated too. Strings that merely look sealed (user text, which neither key opens)
/// are left alone. True if anything changed.
fn reseal_tree(v: &mut Value, from: &MasterKey, to: &MasterKey) -> bool {
    match v {
        Value::String(s) => {
            let Some(sealed) = Sealed::parse(s) else {
                return false;
            };
            if to.open(&sealed).is_ok() {
                return false;
            }
            match from.open(&sealed) {
                Ok(plain) => {
                    *s = to.seal(plain.expose()).into_string();
                    true
                }
                Err(_) => false,
            }
        }
        Value::Array(items) => items
            .iter_mut()
            .fold(false, |changed, item| reseal_tree(item, from, to) | changed),
        Value::Object(map) => map
            .values_mut()
            .fold(false, |changed, item| reseal_tree(item, from, to) | changed),
        _ => false,
    }
}

/// Which plain fields a table's rows may still carry.
#[derive(Clone, Copy)]
pub(in crate::store) enum Rows {
    Events,
    Attempts,
    Rules,
    EventTypes,
}

/// Brings one row to its final form; the new bytes if it changed.
pub(in crate::store) fn reseal_row(
    rows: Rows,
    bytes: &[u8],
    from: Option<&MasterKey>,
    to: &MasterKey,
) -> Option<Vec<u8>> {
    let mut row: Value = serde_json::from_slice(bytes).ok()?;
    let mut changed = from.is_some_and(|from| reseal_tree(&mut row, from, to));
    changed |= match rows {
        Rows::Events => seal_event_row(&mut row, to),
        Rows::Attempts => seal_attempt_row(&mut row, to),
        Rows::Rules => false,
        Rows::EventTypes => seal_event_type_row(&mut row, to),
    };
    changed.then(|| codec::encode(&row))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn key(n: u8) -> MasterKey {
        MasterKey::from_bytes(&[n; 32])
    }

    #[test]
    fn rows_round_trip_sealed_and_need_the_key() {
        let event: Event = serde_json::from_value(json!({
            "id": "evt_1", "workspace_id": "wsp_1", "type": "patient:admitted",
            "occurred_at": 1, "received_at": 2, "data": {"name": "Jane"},
        }))
        .unwrap();
        let seal = RowSeal::new(Some(key(1)));
        let bytes = seal.event(&event).unwrap();
        assert!(!String::from_utf8_lossy(&bytes).contains("Jane"));
        assert_eq!(seal.open_event(&bytes).unwrap().data["name"], "Jane");
        let plain = serde_json::to_vec(&event).unwrap();
        assert_eq!(
            seal.open_event(&plain).unwrap().data["name"],
            "Jane",
            "old rows read"
        );
        let keyless = RowSeal::new(None);
        assert!(matches!(
            keyless.event(&event),
            Err(StoreError::MasterKey(_))
        ));
        assert!(matches!(
            keyless.open_event(&bytes),
            Err(StoreError::MasterKey(_))
        ));
        let wrong = RowSeal::new(Some(key(9)));
        assert!(matches!(
            wrong.open_event(&bytes),
            Err(StoreError::MasterKey(_))
        ));
    }

    #[test]
    fn plain_rows_are_sealed_once_and_rotated_by_the_walk() {
        let (old, new) = (key(1), key(2));
        let event = serde_json::to_vec(&json!({"id": "evt_1", "data": {"name": "Jane"}})).unwrap();
        let sealed = reseal_row(Rows::Events, &event, None, &old).unwrap();
        assert!(!String::from_utf8_lossy(&sealed).contains("Jane"));
        assert!(
            reseal_row(Rows::Events, &sealed, None, &old).is_none(),
            "idempotent"
        );
        let rotated = reseal_row(Rows::Events, &sealed, Some(&old), &new).unwrap();
        assert!(
            reseal_row(Rows::Events, &rotated, Some(&old), &new).is_none(),
            "idempotent"
        );
        let row: Value = serde_json::from_slice(&rotated).unwrap();
        let s = Sealed::parse(row["data"].as_str().unwrap()).unwrap();
        assert!(old.open(&s).is_err());
        assert_eq!(new.open(&s).unwrap().expose(), r#"{"name":"Jane"}"#);

        let attempt = serde_json::to_vec(
            &json!({"request": {"body": "xc1:not really"}, "response": {"body": null}, "error": "xc1:x"}),
        )
        .unwrap();
        let sealed = reseal_row(Rows::Attempts, &attempt, None, &old).unwrap();
        let row: Value = serde_json::from_slice(&sealed).unwrap();
        assert!(row["request"]["body"]["sealed"].is_string());
        assert!(row["response"]["body"].is_null());
        assert_eq!(row["error"], "xc1:x", "look-alike user text is not touched");
        assert!(reseal_row(Rows::Attempts, &sealed, Some(&old), &new).is_some());
    }

    #[test]
    fn the_typed_row_is_the_row_the_value_route_writes() {
        use crate::domain::delivery::{ErrorKind, LoggedRequest, LoggedResponse};
        let seal = RowSeal::new(Some(key(1)));
        let headers = vec![("content-type".to_owned(), "application/json".to_owned())];
        let answered = LoggedResponse {
            status: 500,
            headers: headers.clone(),
            body: Some("oops".into()),
            truncated: true,
        };
        for (body, response) in [
            (Some(r#"{"name":"Jane"}"#.to_owned()), Some(answered)),
            (None, None),
        ] {
            let attempt = Attempt {
                number: 2,
                started_at: 3,
                duration_ms: 4,
                status_code: Some(500),
                error_kind: Some(ErrorKind::Timeout),
                error: Some("slow".into()),
                request: LoggedRequest {
                    url: "https://example.test/hook".into(),
                    method: "POST".into(),
                    headers: headers.clone(),
                    body,
                },
                response,
            };
            let typed = seal.attempt(&attempt).unwrap();
            let mut row = to_value(&attempt);
            seal_attempt_row(&mut row, &key(1));
            let by_value = codec::encode(&row);
            // The same bytes but for the ciphertexts (each seal draws a new nonce).
            let shape = |bytes: &[u8]| {
                let mut row: Value = serde_json::from_slice(bytes).unwrap();
                for path in BODY_PATHS {
                    if let Some(body) = field(&mut row, &path)
                        && body.is_object()
                    {
                        *body = json!({SEALED_FIELD: "…"});
                    }
                }
                serde_json::to_string(&row).unwrap()
            };
            assert_eq!(shape(&typed), shape(&by_value));
            assert!(!String::from_utf8_lossy(&typed).contains("Jane"));
            assert_eq!(
                to_value(&seal.open_attempt(&typed).unwrap()),
                to_value(&attempt)
            );
        }
    }

    #[test]
    fn the_typed_event_row_is_the_row_the_value_route_writes() {
        let seal = RowSeal::new(Some(key(1)));
        let plain = json!({
            "id": "evt_3", "workspace_id": "wsp_1", "type": "patient:admitted",
            "occurred_at": 1, "received_at": 2,
            "data": {"name": "Jane", "n": 1, "nested": {"z": [1, 2], "a": null}},
        });
        let mut with_all = plain.clone();
        with_all["test"] = json!(true);
        with_all["subject"] = json!("sub_0123456789abcdef");
        with_all["erased"] = json!(true);
        for given in [plain, with_all] {
            let event: Event = serde_json::from_value(given).unwrap();
            let typed = seal.event(&event).unwrap();
            let mut row = to_value(&event);
            assert!(seal_event_row(&mut row, &key(1)));
            let by_value = codec::encode(&row);
            // The same bytes but for the ciphertext (each seal draws a new nonce).
            let shape = |bytes: &[u8]| {
                let mut row: Value = serde_json::from_slice(bytes).unwrap();
                assert!(row["data"].as_str().is_some_and(|d| !d.contains("Jane")));
                row["data"] = json!("…");
                serde_json::to_string(&row).unwrap()
            };
            assert_eq!(shape(&typed), shape(&by_value));
            assert_eq!(
                to_value(&seal.open_event(&typed).unwrap()),
                to_value(&event)
            );
        }
    }

    #[test]
    fn an_event_sealed_at_ingest_is_delivered_as_opening_its_row_would_give_it() {
        let seal = RowSeal::new(Some(key(1)));
        let event: Event = serde_json::from_value(json!({
            "id": "evt_2", "workspace_id": "wsp_1", "type": "patient:admitted",
            "occurred_at": 1, "received_at": 2, "test": true,
            "data": {"name": "Zoë", "age": 41, "weight": 70.5, "big": u64::MAX,
                     "tags": ["a", {"b": null}], "z": 1, "a": 2},
        }))
        .unwrap();
        let event = Arc::new(event);
        let row = seal.ingested_event(&event, true).unwrap();
        let kept = seal.open_event_to_deliver(&event.id, &row, 2).unwrap();
        let opened = seal.open_event(&row).unwrap();
        assert_eq!(to_value(&*kept), to_value(&opened));
        assert_eq!(to_value(&*kept), to_value(&*event));
        // The same Arc again: nothing was opened for it.
        let again = seal.open_event_to_deliver(&event.id, &row, 2).unwrap();
        assert!(Arc::ptr_eq(&kept, &again));
    }
}
