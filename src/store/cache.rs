//! What every backend keeps in memory: the active rules every ingest and attempt reads, the
//! declared subject paths every ingest posted without a subject reads, and the throttle on
//! catalog "seen" writes. A backend owns when they are refreshed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use crate::domain::catalog::StoredType;
use crate::domain::event::EventType;
use crate::domain::ids::{RuleId, WorkspaceId};
use crate::domain::rule::{Rule, Trigger};
use crate::domain::subject::SubjectPath;

/// Every rule by id, swapped whole on refresh.
#[derive(Debug, Default)]
pub(in crate::store) struct RuleCache {
    by_id: HashMap<RuleId, Arc<Rule>>,
}

impl RuleCache {
    pub(in crate::store) fn new(rules: Vec<Rule>) -> Self {
        Self {
            by_id: rules
                .into_iter()
                .map(|r| (r.id.clone(), Arc::new(r)))
                .collect(),
        }
    }

    pub(in crate::store) fn get(&self, id: &RuleId) -> Option<Arc<Rule>> {
        self.by_id.get(id).cloned()
    }

    /// Active rules of a workspace whose trigger matches the type, by id.
    pub(in crate::store) fn matching(
        &self,
        workspace: &WorkspaceId,
        event_type: &EventType,
    ) -> Vec<Arc<Rule>> {
        let mut rules: Vec<Arc<Rule>> = self
            .by_id
            .values()
            .filter(|r| r.active && &r.workspace_id == workspace && r.trigger.matches(event_type))
            .cloned()
            .collect();
        rules.sort_by(|a, b| a.id.cmp(&b.id));
        rules
    }

    /// Every rule that keeps its deliveries for a number of days of its own.
    pub(in crate::store) fn with_retention(&self) -> Vec<(RuleId, u32)> {
        self.by_id
            .values()
            .filter_map(|r| Some((r.id.clone(), r.log.retention_days?)))
            .collect()
    }

    /// Active rules with a schedule trigger.
    pub(in crate::store) fn routines(&self) -> Vec<Arc<Rule>> {
        self.by_id
            .values()
            .filter(|r| r.active && matches!(r.trigger, Trigger::Schedule { .. }))
            .cloned()
            .collect()
    }
}

/// Every declared `subject_path`, by workspace and event type: an ingest reads it without
/// touching the disk or leaving its thread. Only declarations change it, and they are rare.
#[derive(Default)]
pub(in crate::store) struct SubjectPaths {
    paths: RwLock<HashMap<(WorkspaceId, EventType), SubjectPath>>,
    /// Held through a reload's read and install, so a reload that began before a
    /// declaration committed cannot install its older rows after one that began later.
    reloading: Mutex<()>,
}

/// A catalog row as a reload reads it.
pub(in crate::store) type CatalogRow = (WorkspaceId, EventType, StoredType);

impl SubjectPaths {
    /// Replaces every path with those of the catalog rows `read` returns.
    pub(in crate::store) fn reload<E>(
        &self,
        read: impl FnOnce() -> Result<Vec<CatalogRow>, E>,
    ) -> Result<(), E> {
        let _one_at_a_time = self
            .reloading
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let paths = read()?
            .into_iter()
            .filter_map(|(ws, name, row)| Some(((ws, name), row.declared?.subject_path?)))
            .collect();
        *self.paths.write().unwrap_or_else(PoisonError::into_inner) = paths;
        Ok(())
    }

    /// Takes in a catalog row just written.
    pub(in crate::store) fn update(
        &self,
        workspace: &WorkspaceId,
        name: &EventType,
        row: &StoredType,
    ) {
        let mut paths = self.paths.write().unwrap_or_else(PoisonError::into_inner);
        let key = (workspace.clone(), name.clone());
        match row.declared.as_ref().and_then(|d| d.subject_path.clone()) {
            Some(path) => paths.insert(key, path),
            None => paths.remove(&key),
        };
    }

    pub(in crate::store) fn get(
        &self,
        workspace: &WorkspaceId,
        name: &EventType,
    ) -> Option<SubjectPath> {
        self.paths
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&(workspace.clone(), name.clone()))
            .cloned()
    }
}

/// A type's seen sample is rewritten at most this often: "the latest sample" stays fresh
/// without adding a row write to every ingest.
const SEEN_REFRESH_MS: i64 = 60_000;
/// Types remembered as seen in one process; past this a flood of made-up types from a broken
/// producer stops growing the catalog (and this map).
const MAX_SEEN_TYPES: usize = 10_000;

/// When each event type's seen sample was last written by this process.
#[derive(Default)]
pub(in crate::store) struct SeenThrottle(Mutex<HashMap<(WorkspaceId, EventType), i64>>);

impl SeenThrottle {
    /// Whether a sample seen at `now` should be written (and, if so, notes that it was).
    pub(in crate::store) fn admit(
        &self,
        workspace: &WorkspaceId,
        name: &EventType,
        now: i64,
    ) -> bool {
        let mut seen = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let key = (workspace.clone(), name.clone());
        match seen.get(&key) {
            Some(at) if now - at < SEEN_REFRESH_MS => return false,
            None if seen.len() >= MAX_SEEN_TYPES => return false,
            _ => {}
        }
        seen.insert(key, now);
        true
    }
}

/// Keys (username and address) whose failed sign-ins are remembered at most; past this the
/// oldest window is forgotten, so a flood of made-up names cannot grow memory.
const MAX_SIGN_IN_KEYS: usize = 10_000;

/// Failed sign-ins per key in fixed windows, in memory: for a backend one process owns (the
/// embedded file), where memory is where every request of the store is seen.
#[derive(Default)]
pub(in crate::store) struct SignInFailures(Mutex<HashMap<String, (u32, i64)>>);

impl SignInFailures {
    pub(in crate::store) fn get(&self, key: &str, now: i64, window_ms: i64) -> Option<(u32, i64)> {
        let map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        map.get(key)
            .copied()
            .filter(|(_, start)| now - start < window_ms)
    }

    pub(in crate::store) fn note(&self, key: &str, now: i64, window_ms: i64) {
        let mut map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if map.len() >= MAX_SIGN_IN_KEYS && !map.contains_key(key) {
            map.retain(|_, (_, start)| now - *start < window_ms);
            if map.len() >= MAX_SIGN_IN_KEYS
                && let Some(oldest) = map
                    .iter()
                    .min_by_key(|(_, (_, start))| *start)
                    .map(|(k, _)| k.clone())
            {
                map.remove(&oldest);
            }
        }
        let entry = map.entry(key.to_owned()).or_insert((0, now));
        if now - entry.1 >= window_ms {
            *entry = (0, now);
        }
        entry.0 += 1;
    }

    pub(in crate::store) fn clear(&self, key: &str) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(key);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.0.lock().map_or(0, |m| m.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WINDOW: i64 = 900_000;

    #[test]
    fn sign_in_failures_count_in_windows_and_forget_the_oldest_when_full() {
        let failures = SignInFailures::default();
        for _ in 0..3 {
            failures.note("anna|10.0.0.1", 1_000, WINDOW);
        }
        assert_eq!(
            failures.get("anna|10.0.0.1", 2_000, WINDOW),
            Some((3, 1_000))
        );
        assert_eq!(failures.get("anna|10.0.0.2", 2_000, WINDOW), None);
        assert_eq!(failures.get("anna|10.0.0.1", 1_000 + WINDOW, WINDOW), None);
        failures.note("anna|10.0.0.1", 1_000 + WINDOW, WINDOW);
        assert_eq!(
            failures.get("anna|10.0.0.1", 1_000 + WINDOW, WINDOW),
            Some((1, 1_000 + WINDOW)),
            "a new window"
        );
        failures.clear("anna|10.0.0.1");
        assert_eq!(failures.get("anna|10.0.0.1", 1_000 + WINDOW, WINDOW), None);
        for i in 0..(MAX_SIGN_IN_KEYS + 50) {
            let at = i64::try_from(i).unwrap();
            failures.note(&format!("u{i}|x"), at, WINDOW);
        }
        assert_eq!(failures.len(), MAX_SIGN_IN_KEYS);
        assert_eq!(
            failures.get("u0|x", 10, WINDOW),
            None,
            "the oldest went first"
        );
    }
}
