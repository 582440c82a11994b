//! What alerts remember about a rule, and the pure rule of a failing episode: it begins with
//! the first failed attempt after a success, alerts once its `failing_after`-th failure in a
//! row is reached, and ends with the next success (which is a recovery only if it alerted).
//! The state is stored (`RuleStore::set_rule_alert_state`), so a restart neither repeats an
//! alert nor forgets one that is open.
//!
//! A client certificate close to expiry is an episode of its own: it alerts once per
//! certificate (its expiry is what tells one from the next), and ends when the rule presents
//! a certificate that is not close to expiry, or none.

use serde::{Deserialize, Serialize};

use super::delivery::ErrorKind;

/// Per rule, across restarts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleAlertState {
    /// The failing episode under way, if any.
    pub episode: Option<Episode>,
    /// When the last alert mail about this rule went out (`alerts.email.min_interval`).
    pub last_mailed_at: Option<i64>,
    /// The client certificate already announced as expiring, if any. `default` so states
    /// stored before certificates existed still read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_expiring: Option<CertExpiring>,
}

/// How long before a client certificate's expiry it is an alert (SPEC §12: 14 days).
pub const CERT_EXPIRY_WARNING_MS: i64 = 14 * 24 * 3_600_000;

/// A client certificate announced as expiring (`tidings:rule.cert_expiring`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertExpiring {
    /// The announced certificate's expiry (Unix ms): another expiry is another certificate.
    pub expires_at: i64,
    /// When it was announced.
    pub alerted_at: i64,
}

/// What looking at a rule's client certificate changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertStep {
    /// Nothing to store or tell.
    Quiet,
    /// The announced certificate was replaced or removed: the episode ended (store it).
    Ended,
    /// A certificate newly within the warning window: tell people, once.
    Expiring { expires_at: i64 },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Episode {
    /// The first failed attempt after the rule's last success (Unix ms).
    pub since: i64,
    /// Failed attempts in a row so far (stored until the alert; later ones only in memory).
    pub failed_attempts: u32,
    pub last_error_kind: Option<ErrorKind>,
    pub last_status_code: Option<u16>,
    /// When `tidings:rule.failing` was made for this episode; None until then.
    pub alerted_at: Option<i64>,
}

/// One finished attempt of a non-test delivery, as alerts see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    pub at: i64,
    pub succeeded: bool,
    pub error_kind: Option<ErrorKind>,
    pub status_code: Option<u16>,
}

/// What an attempt changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Nothing worth storing (a further failure of an episode that already alerted, or a
    /// success with no episode).
    Quiet,
    /// The state changed and must be stored, but no one is told.
    Changed,
    /// The episode reached `failing_after`: tell people (`tidings:rule.failing`).
    Failing(Episode),
    /// The first success after an episode that alerted: tell people
    /// (`tidings:rule.recovered`).
    Recovered {
        failed_since: i64,
        recovered_at: i64,
    },
}

impl RuleAlertState {
    /// Takes one attempt into account.
    pub fn observe(&mut self, outcome: Outcome, failing_after: u32) -> Step {
        if outcome.succeeded {
            return match self.episode.take() {
                Some(Episode {
                    since,
                    alerted_at: Some(_),
                    ..
                }) => Step::Recovered {
                    failed_since: since,
                    recovered_at: outcome.at,
                },
                Some(_) => Step::Changed,
                None => Step::Quiet,
            };
        }
        let episode = self.episode.get_or_insert(Episode {
            since: outcome.at,
            failed_attempts: 0,
            last_error_kind: None,
            last_status_code: None,
            alerted_at: None,
        });
        episode.failed_attempts = episode.failed_attempts.saturating_add(1);
        episode.last_error_kind = outcome.error_kind;
        episode.last_status_code = outcome.status_code;
        if episode.alerted_at.is_some() {
            return Step::Quiet;
        }
        if episode.failed_attempts >= failing_after.max(1) {
            episode.alerted_at = Some(outcome.at);
            return Step::Failing(episode.clone());
        }
        Step::Changed
    }

    /// Looks at the rule's client certificate expiry (`None`: the rule presents none) at
    /// `now`; an expired one is still expiring (the alert says when it ran out).
    pub fn observe_cert(&mut self, expires_at: Option<i64>, now: i64) -> CertStep {
        let close = expires_at.filter(|at| at - now <= CERT_EXPIRY_WARNING_MS);
        match (&self.cert_expiring, close) {
            (Some(known), Some(at)) if known.expires_at == at => CertStep::Quiet,
            (_, Some(at)) => {
                self.cert_expiring = Some(CertExpiring {
                    expires_at: at,
                    alerted_at: now,
                });
                CertStep::Expiring { expires_at: at }
            }
            (Some(_), None) => {
                self.cert_expiring = None;
                CertStep::Ended
            }
            (None, None) => CertStep::Quiet,
        }
    }

    /// The rule was turned off: the failing episode ends without a recovery (the
    /// deactivation is what people are told instead).
    pub fn deactivated(&mut self) {
        self.episode = None;
    }

    /// Whether a mail may go out now, at most one per `min_interval_ms` per rule.
    pub fn may_mail(&self, now: i64, min_interval_ms: i64) -> bool {
        self.last_mailed_at
            .is_none_or(|last| now - last >= min_interval_ms)
    }

    /// Whether anything is left worth storing.
    pub fn is_empty(&self) -> bool {
        self == &Self::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed(at: i64) -> Outcome {
        Outcome {
            at,
            succeeded: false,
            error_kind: Some(ErrorKind::HttpStatus),
            status_code: Some(503),
        }
    }

    fn ok(at: i64) -> Outcome {
        Outcome {
            at,
            succeeded: true,
            error_kind: None,
            status_code: Some(200),
        }
    }

    #[test]
    fn an_episode_alerts_once_at_the_threshold_and_recovers_once() {
        let mut s = RuleAlertState::default();
        assert_eq!(s.observe(ok(1), 3), Step::Quiet);
        assert_eq!(s.observe(failed(10), 3), Step::Changed);
        assert_eq!(s.observe(failed(20), 3), Step::Changed);
        let Step::Failing(e) = s.observe(failed(30), 3) else {
            panic!("the third failure alerts");
        };
        assert_eq!(
            (e.since, e.failed_attempts, e.alerted_at),
            (10, 3, Some(30))
        );
        assert_eq!(e.last_status_code, Some(503));
        assert_eq!(s.observe(failed(40), 3), Step::Quiet, "once per episode");
        assert_eq!(
            s.observe(ok(50), 3),
            Step::Recovered {
                failed_since: 10,
                recovered_at: 50
            }
        );
        assert_eq!(s.observe(ok(60), 3), Step::Quiet, "recovered once");
        assert!(s.is_empty());
    }

    #[test]
    fn a_success_before_the_threshold_ends_the_episode_silently() {
        let mut s = RuleAlertState::default();
        s.observe(failed(10), 3);
        s.observe(failed(20), 3);
        assert_eq!(s.observe(ok(30), 3), Step::Changed);
        assert_eq!(s.episode, None);
        assert_eq!(s.observe(failed(40), 3), Step::Changed, "a new episode");
        assert_eq!(s.episode.as_ref().map(|e| e.since), Some(40));
    }

    #[test]
    fn a_stored_state_goes_on_where_it_was() {
        let mut s = RuleAlertState::default();
        s.observe(failed(10), 5);
        s.observe(failed(20), 5);
        let text = serde_json::to_string(&s).unwrap();
        let mut restored: RuleAlertState = serde_json::from_str(&text).unwrap();
        for at in [30, 40] {
            assert_eq!(restored.observe(failed(at), 5), Step::Changed);
        }
        assert!(matches!(restored.observe(failed(50), 5), Step::Failing(_)));
        let text = serde_json::to_string(&restored).unwrap();
        let mut again: RuleAlertState = serde_json::from_str(&text).unwrap();
        assert_eq!(again.observe(failed(60), 5), Step::Quiet, "no second alert");
        assert!(matches!(again.observe(ok(70), 5), Step::Recovered { .. }));
    }

    #[test]
    fn deactivation_ends_the_episode_and_mail_is_rate_limited() {
        let mut s = RuleAlertState::default();
        s.observe(failed(10), 1);
        s.deactivated();
        assert_eq!(s.observe(ok(20), 1), Step::Quiet);
        assert!(s.may_mail(0, 1000));
        s.last_mailed_at = Some(5_000);
        assert!(!s.may_mail(5_999, 1000));
        assert!(s.may_mail(6_000, 1000));
    }

    #[test]
    fn a_certificate_alerts_once_within_14_days_and_a_new_one_ends_it() {
        const DAY: i64 = 24 * 3_600_000;
        let mut s = RuleAlertState::default();
        let now = 100 * DAY;
        assert_eq!(s.observe_cert(None, now), CertStep::Quiet);
        assert_eq!(s.observe_cert(Some(now + 15 * DAY), now), CertStep::Quiet);
        assert!(s.is_empty(), "nothing to remember far from expiry");
        let at = now + 14 * DAY;
        assert_eq!(
            s.observe_cert(Some(at), now),
            CertStep::Expiring { expires_at: at }
        );
        assert_eq!(s.observe_cert(Some(at), now + DAY), CertStep::Quiet);
        assert_eq!(
            s.observe_cert(Some(at), at + DAY),
            CertStep::Quiet,
            "expired: still the same episode"
        );

        let text = serde_json::to_string(&s).unwrap();
        let mut restored: RuleAlertState = serde_json::from_str(&text).unwrap();
        assert_eq!(
            restored.observe_cert(Some(at), now + 2 * DAY),
            CertStep::Quiet
        );

        // A renewed certificate ends the episode; one close to expiry starts the next.
        assert_eq!(
            restored.observe_cert(Some(now + 400 * DAY), now + 2 * DAY),
            CertStep::Ended
        );
        assert!(restored.is_empty());
        let next = now + 5 * DAY;
        assert_eq!(
            restored.observe_cert(Some(next), now + 2 * DAY),
            CertStep::Expiring { expires_at: next }
        );
        assert_eq!(restored.observe_cert(None, now + 3 * DAY), CertStep::Ended);
    }

    #[test]
    fn a_state_stored_before_certificates_still_reads() {
        let s: RuleAlertState =
            serde_json::from_str(r#"{"episode":null,"last_mailed_at":7}"#).unwrap();
        assert_eq!(s.last_mailed_at, Some(7));
        assert_eq!(s.cert_expiring, None);
    }
}
