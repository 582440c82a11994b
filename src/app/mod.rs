//! The service layer: the use cases that the JSON API, the admin UI, the CLI and the routine
//! scheduler all call. It speaks domain types and answers in `AppError`; `api/` turns that
//! into JSON and `web/` into pages, and neither knows the other (docs/ARCHITECTURE.md).

pub mod alerts;
pub mod audit;
pub mod catalog;
pub mod deliveries;
pub mod health;
pub mod intake;
pub mod keys;
pub mod overview;
pub mod paging;
pub mod rule_versions;
pub mod rules;
pub mod samples;
mod state;
pub mod subjects;
pub mod users;
pub mod workspaces;

pub use state::AppState;

use crate::error::AppError;

/// Runs blocking work (store reads, Argon2) on the blocking pool, never on the threads that
/// answer HTTP.
pub async fn blocking<T, E>(
    f: impl FnOnce() -> Result<T, E> + Send + 'static,
) -> Result<T, AppError>
where
    T: Send + 'static,
    E: Into<AppError> + Send + 'static,
{
    tokio::task::spawn_blocking(f).await?.map_err(Into::into)
}
