//! Prometheus metrics (`GET /metrics`): what an operator's monitoring needs to see that events
//! arrive, deliveries succeed, and nothing piles up. Encoded by the `prometheus-client` crate.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

type Labels = Vec<(String, String)>;

/// Every metric tidings keeps; cheap to clone (the metrics share their values).
#[derive(Clone)]
pub struct Metrics {
    pub events_ingested: Counter,
    /// Attempts by what they left the delivery as: succeeded, retrying, failed, blocked.
    pub attempts: Family<Labels, Counter>,
    pub attempt_seconds: Histogram,
    /// Failed attempts per rule (and its workspace, so a clinic group can sum per practice),
    /// to spot the failing receiver.
    pub rule_failures: Family<Labels, Counter>,
    /// Set at scrape time.
    pub open_deliveries: Gauge,
    pub queued_deliveries: Gauge,
    pub oldest_due_seconds: Gauge<f64, AtomicU64>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            events_ingested: Counter::default(),
            attempts: Family::default(),
            // 1 ms … ~16 s.
            attempt_seconds: Histogram::new(exponential_buckets(0.001, 2.0, 15)),
            rule_failures: Family::default(),
            open_deliveries: Gauge::default(),
            queued_deliveries: Gauge::default(),
            oldest_due_seconds: Gauge::default(),
        }
    }
}

impl Metrics {
    pub fn attempt(&self, outcome: &str, workspace: &str, rule_id: &str, seconds: f64) {
        self.attempts
            .get_or_create(&vec![("outcome".to_owned(), outcome.to_owned())])
            .inc();
        self.attempt_seconds.observe(seconds);
        if outcome != "succeeded" {
            self.rule_failures
                .get_or_create(&vec![
                    ("rule_id".to_owned(), rule_id.to_owned()),
                    ("workspace".to_owned(), workspace.to_owned()),
                ])
                .inc();
        }
    }

    /// The Prometheus/OpenMetrics text of every metric.
    pub fn render(&self) -> String {
        let mut registry = Registry::with_prefix("tidings");
        registry.register(
            "events_ingested",
            "Events accepted (202)",
            self.events_ingested.clone(),
        );
        registry.register(
            "attempts",
            "Delivery attempts, by the status they left the delivery in",
            self.attempts.clone(),
        );
        registry.register(
            "attempt_duration_seconds",
            "Time from sending a request to its answer or error",
            self.attempt_seconds.clone(),
        );
        registry.register(
            "rule_failed_attempts",
            "Attempts that did not succeed, per rule and workspace",
            self.rule_failures.clone(),
        );
        registry.register(
            "open_deliveries",
            "Deliveries waiting for an attempt (pending or retrying), from the store",
            self.open_deliveries.clone(),
        );
        registry.register(
            "queued_deliveries",
            "Deliveries in the dispatcher's memory queue",
            self.queued_deliveries.clone(),
        );
        registry.register(
            "oldest_due_delivery_age_seconds",
            "How long the most overdue queued delivery has been due (0 if none)",
            self.oldest_due_seconds.clone(),
        );
        let mut out = String::new();
        encode(&mut out, &registry).expect("writing to a String cannot fail");
        out
    }
}
