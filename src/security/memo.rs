//! A bounded map from a text to what was worked out from it, shared between threads: for
//! answers that cannot go stale because the text they come from is the whole input (a sealed
//! value under the one master key, a URL under the one address policy). When it fills it
//! starts again empty, so texts no longer in use do not accumulate.

use std::collections::HashMap;
use std::sync::{PoisonError, RwLock};

pub struct Memo<V> {
    entries: RwLock<HashMap<String, V>>,
    max_entries: usize,
}

impl<V> std::fmt::Debug for Memo<V> {
    // What is remembered may be secret: only how much is said.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let len = self.entries.read().map_or(0, |e| e.len());
        write!(f, "Memo({len} of {})", self.max_entries)
    }
}

impl<V: Clone> Memo<V> {
    pub fn new(max_entries: usize) -> Self {
        Self {
            entries: RwLock::default(),
            max_entries,
        }
    }

    /// The answer for `text`: remembered, or made by `make` and remembered if it succeeds.
    pub fn get_or_try<E>(&self, text: &str, make: impl FnOnce() -> Result<V, E>) -> Result<V, E> {
        // A panic elsewhere while holding the lock leaves a map that is still whole.
        let known = self
            .entries
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(text)
            .cloned();
        if let Some(value) = known {
            return Ok(value);
        }
        let value = make()?;
        let mut entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        if entries.len() >= self.max_entries {
            entries.clear();
        }
        entries.insert(text.to_owned(), value.clone());
        Ok(value)
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_what_was_made_and_not_what_failed() {
        let memo = Memo::new(8);
        let mut made = 0;
        for _ in 0..3 {
            let got: Result<usize, ()> = memo.get_or_try("a", || {
                made += 1;
                Ok(1)
            });
            assert_eq!(got, Ok(1));
        }
        assert_eq!(made, 1);
        assert_eq!(memo.get_or_try::<&str>("b", || Err("no")), Err("no"));
        assert_eq!(memo.len(), 1);
    }

    #[test]
    fn a_full_memo_starts_again_empty() {
        let memo = Memo::new(3);
        for text in ["a", "b", "c"] {
            memo.get_or_try::<()>(text, || Ok(0)).unwrap();
        }
        assert_eq!(memo.len(), 3);
        memo.get_or_try::<()>("d", || Ok(0)).unwrap();
        assert_eq!(memo.len(), 1);
    }
}
