//! Telling a person when something is wrong (SPEC §11): the monitor that turns the
//! dispatcher's observations and readiness into system events (`tidings:…`) and mail, and
//! the mail itself (its text, and SMTP).

pub mod mail;
pub mod monitor;
pub mod smtp;

pub use monitor::{Alerts, Parts, Settings};
