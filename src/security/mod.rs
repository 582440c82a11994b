//! Security pieces with one job each: network safety, encryption at rest, signing secrets
//! opened once, the bounded memo that and the URL check keep their answers in, ed25519
//! signing key pairs, TLS client certificates, owner-only files.

pub mod client_assertion;
pub mod client_cert;
pub mod crypto;
pub mod files;
pub mod keypair;
pub mod memo;
pub mod opened_secrets;
pub mod passwords;
pub mod ssrf;
