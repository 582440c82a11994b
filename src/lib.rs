//! tidings: a single-binary appliance that sends signed outbound webhooks.
//!
//! `run` starts the whole appliance on a listener; `main.rs` is only the command line.

pub mod alerts;
pub mod api;
pub mod app;
pub mod config;
pub mod delivery;
pub mod domain;
pub mod error;
pub mod retention;
pub mod routines;
pub mod security;
pub mod server;
pub mod store;
pub mod telemetry;
pub mod web;

pub use config::Config;
pub use server::{AppHandle, run, run_with_clock, run_with_key};
