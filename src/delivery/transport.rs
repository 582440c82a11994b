//! The seam between the dispatcher and the wire: a `Transport` takes a prepared (built and
//! signed) request plus the rule's send options and reports what came back, without judging
//! it. What an answer means (2xx, 410, Retry-After) is decided once, in `outcome`. HTTP over
//! ureq (`http::HttpTransport`) is the one transport today.
//!
//! Where the planned additions go, so none of them reshapes the dispatcher:
//! - Receiver authentication per rule is a field of `SendOptions`, borrowed from the rule
//!   by `SendOptions::of` (callers build it only there), with the rule id as cache key.
//!   mTLS: the transport keeps an agent per client identity beside its two TLS agents (ureq
//!   sets TLS per agent; `client_agents.rs`). OAuth 2 client credentials: a token cache
//!   shared by the transport's per-worker copies (`oauth_token.rs`), filled from the token
//!   URL, and on a 401 the token is dropped, fetched once more and the request re-sent;
//!   `send` reports only the final answer.
//! - ed25519 signatures are part of building the request (`attempt::prepare`, `signing`),
//!   not of sending it.
//! - Several nodes sharing one store change where due deliveries come from, not this seam.

use std::time::Duration;

use crate::delivery::attempt::PreparedRequest;
use crate::domain::delivery::ErrorKind;
use crate::domain::ids::RuleId;
use crate::domain::rule::{ReceiverAuth, Rule};

/// Sends prepared requests. `for_worker` hands each dispatcher worker a copy of its own, so
/// workers keep their own connections instead of contending for one pool.
pub trait Transport: Send + Sync {
    /// Sends one request and reports the answer, or why there was none, and how long it took.
    fn send(&self, request: &PreparedRequest, options: &SendOptions<'_>) -> Sent;

    /// The same transport with connections of its own, for one worker thread.
    fn for_worker(&self) -> Box<dyn Transport>;
}

/// How one rule wants its requests sent.
#[derive(Debug, Clone, Copy)]
pub struct SendOptions<'a> {
    /// The whole exchange, connect to last body byte.
    pub timeout: Duration,
    /// False only when the rule turned certificate checks off.
    pub tls_verify: bool,
    /// Whose credentials these are: what the transport caches them by.
    pub rule_id: &'a RuleId,
    /// The receiver's authentication, write-only values still sealed.
    pub auth: &'a ReceiverAuth,
}

impl<'a> SendOptions<'a> {
    pub fn of(rule: &'a Rule) -> Self {
        Self {
            timeout: Duration::from_millis(u64::from(rule.webhook.timeout_ms)),
            tls_verify: rule.webhook.tls_verify,
            rule_id: &rule.id,
            auth: &rule.webhook.auth,
        }
    }
}

/// The raw outcome of one send.
#[derive(Debug)]
pub struct Sent {
    pub result: Result<Received, Failure>,
    pub elapsed: Duration,
}

/// The receiver's answer, whatever it says.
#[derive(Debug)]
pub struct Received {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    /// At most `RESPONSE_LOG_LIMIT` bytes of it.
    pub body: Vec<u8>,
    /// True when the body was longer than that.
    pub truncated: bool,
}

/// Why no answer came: the attempt error kind admins see, and the detail.
#[derive(Debug)]
pub struct Failure {
    pub kind: ErrorKind,
    pub message: String,
}

/// Response bodies are read and logged up to this many bytes.
pub const RESPONSE_LOG_LIMIT: usize = 16 * 1024;
