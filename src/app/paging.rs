//! List paging shared by every list: a page size and an opaque cursor (the id the previous
//! page ended on).

use crate::error::AppError;

/// Default and largest page of a list.
pub const DEFAULT_PAGE: usize = 50;
pub const MAX_PAGE: usize = 250;

/// Page size of a list: `DEFAULT_PAGE` unless `limit` says 1–`MAX_PAGE`.
pub fn page_limit(limit: Option<&str>) -> Result<usize, AppError> {
    match limit {
        None => Ok(DEFAULT_PAGE),
        Some(l) => l
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_PAGE).contains(n))
            .ok_or_else(|| {
                AppError::invalid_query(format!(
                    "limit must be a whole number from 1 to {MAX_PAGE}, not {l:?}"
                ))
            }),
    }
}

/// A list cursor, which is the id the previous page ended on.
pub fn page_cursor<T>(
    cursor: Option<&str>,
    parse: impl Fn(&str) -> Option<T>,
) -> Result<Option<T>, AppError> {
    cursor
        .map(|c| {
            parse(c).ok_or_else(|| {
                AppError::invalid_query(format!("cursor {c:?} is not one this API gave out"))
            })
        })
        .transpose()
}
