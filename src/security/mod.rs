//! Security pieces with one job each: network safety, encryption at rest, signing secrets,
//! owner-only files.

pub mod crypto;
pub mod files;
pub mod passwords;
pub mod ssrf;
