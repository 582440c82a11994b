//! Pure types of the product, with no I/O: ids, times, events, patterns, rules, payloads,
//! deliveries. Values are parsed once at the edge and trusted from then on.

pub mod access;
pub mod audit;
pub mod delivery;
pub mod event;
pub mod ids;
pub mod pattern;
pub mod payload;
pub mod rule;
pub mod samples;
pub mod time;
pub mod user;
