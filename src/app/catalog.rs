//! The event catalog: every type a workspace knows (built in, declared, seen) with the sample
//! tests, previews and template checks use; and declaring a type.

use serde_json::{Map, Value, json};

use super::{AppState, blocking};
use crate::domain::audit::{Actor, AuditEntry};
use crate::domain::catalog::{Declared, Entry, MAX_DESCRIPTION_CHARS};
use crate::domain::event::{EventType, check_data};
use crate::domain::ids::WorkspaceId;
use crate::domain::samples::BUILTIN_TYPES;
use crate::domain::subject::SubjectPath;
use crate::error::AppError;
use crate::store::{Store, StoreError};

/// Largest declared sample, in bytes of JSON.
const MAX_SAMPLE_BYTES: usize = 64 * 1024;

/// The catalog entry for one type of a workspace: its sample is what tests, previews and
/// template checks use.
pub fn entry(store: &Store, workspace: &WorkspaceId, name: EventType) -> Result<Entry, StoreError> {
    let stored = store.event_type(workspace, &name)?;
    Ok(Entry::new(name, stored.as_ref()))
}

/// Every type the workspace knows (stored ones and the built-ins), sorted by name.
pub async fn list(state: &AppState, workspace: WorkspaceId) -> Result<Vec<Entry>, AppError> {
    let store = state.store.clone();
    blocking(move || {
        let stored = store.event_types(&workspace)?;
        let mut entries: Vec<Entry> = stored
            .iter()
            .map(|(name, row)| Entry::new(name.clone(), Some(row)))
            .collect();
        for (name, _) in BUILTIN_TYPES {
            if !entries.iter().any(|e| e.name.as_str() == name) {
                entries.extend(EventType::parse(name).ok().map(|t| Entry::new(t, None)));
            }
        }
        entries.sort_by(|a, b| a.name.as_str().cmp(b.name.as_str()));
        Ok::<_, StoreError>(entries)
    })
    .await
}

/// Checks a declaration: a valid type name, a short description, a sample that is a JSON
/// object of event data (no reserved keys, at most 64 KiB), and a well-formed subject path
/// (empty means none).
pub fn declaration(
    state: &AppState,
    name: &str,
    description: Option<String>,
    sample: Option<Value>,
    subject_path: Option<&str>,
) -> Result<(EventType, Declared), AppError> {
    let subject_path = subject_path
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(SubjectPath::parse)
        .transpose()
        .map_err(AppError::validation)?;
    let name =
        EventType::parse(name).map_err(|m| AppError::invalid_event_type(format!("name: {m}")))?;
    // System events are described by tidings; an admin's declaration would only hide that.
    super::intake::check_posted_type(&name)?;
    // The limit counts what was sent, as the document's maxLength does, then spaces go.
    let description = description.unwrap_or_default();
    let too_long = description.chars().count() > MAX_DESCRIPTION_CHARS;
    let description = description.trim().to_owned();
    if too_long {
        return Err(AppError::validation(format!(
            "description must be at most {MAX_DESCRIPTION_CHARS} characters"
        )));
    }
    let sample: Map<String, Value> = match sample {
        None => Map::new(),
        Some(Value::Object(map)) => map,
        Some(_) => {
            return Err(AppError::validation(
                "sample must be a JSON object: the data of an example event",
            ));
        }
    };
    check_data(&sample).map_err(|m| AppError::validation(format!("sample: {m}")))?;
    if serde_json::to_vec(&sample).map_or(0, |b| b.len()) > MAX_SAMPLE_BYTES {
        return Err(AppError::validation(format!(
            "sample must be at most {} KiB of JSON",
            MAX_SAMPLE_BYTES / 1024
        )));
    }
    let declared = Declared {
        description,
        sample,
        declared_at: state.clock.now_ms(),
        subject_path,
    };
    Ok((name, declared))
}

/// Stores a checked declaration, audited; returns the type's catalog entry.
pub async fn declare(
    state: &AppState,
    workspace: &WorkspaceId,
    actor: Actor,
    name: EventType,
    declared: Declared,
) -> Result<Entry, AppError> {
    let audit = AuditEntry::new(
        workspace,
        actor,
        "event_type.declare",
        "event_type",
        name.as_str(),
    )
    .after(
        json!({"description": declared.description, "sample": declared.sample,
        "subject_path": declared.subject_path}),
    );
    let row = state
        .store
        .declare_event_type(workspace.clone(), name.clone(), declared, audit)
        .await?;
    Ok(Entry::new(name, Some(&row)))
}
