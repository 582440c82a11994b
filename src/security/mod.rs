//! Security pieces with one job each: network safety, encryption at rest, signing secrets.

pub mod crypto;
pub mod passwords;
pub mod ssrf;
