//! Getting webhooks out: the retry policy, signatures, one attempt over HTTP, and the
//! dispatcher that feeds worker threads from the durable queue.

pub mod attempt;
pub mod client;
pub mod dispatcher;
pub mod retry;
pub mod signing;
pub mod verify;
