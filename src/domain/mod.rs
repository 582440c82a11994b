//! Pure types of the product, with no I/O: ids, times, events, patterns, rules, conditions,
//! schedules, templates, payloads, deliveries. Values are parsed once at the edge and trusted
//! from then on.

pub mod access;
pub mod alert;
pub mod audit;
pub mod catalog;
pub mod condition;
pub mod data_path;
pub mod delivery;
pub mod event;
pub mod ids;
pub mod intake;
pub mod pattern;
pub mod payload;
pub mod rule;
pub mod samples;
pub mod schedule;
pub mod subject;
pub mod system;
pub mod template;
pub mod time;
pub mod user;
