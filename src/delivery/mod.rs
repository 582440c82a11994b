//! Getting webhooks out: the retry policy, signatures, building one attempt, the transport
//! that sends it (HTTP today), the one place that judges what came back, and the dispatcher
//! that feeds worker threads from the durable queue, telling its observer (alerts) what each
//! attempt said.

pub mod attempt;
pub mod breaker;
pub mod client_agents;
pub mod dispatcher;
pub mod http;
pub mod oauth_token;
pub mod observer;
pub mod one_write;
pub mod ordering;
pub mod outcome;
pub mod retry;
pub mod signing;
pub mod transport;
pub mod verify;
