//! What an attempt's outcome means, decided in this one place for the dispatcher and for test
//! sends alike: the attempt as the delivery log keeps it, and the verdict — succeeded, retry
//! at a time, failed, blocked, or gone (410, which also deactivates the rule). Pure: the
//! time, the retry policy and the jitter's random number are passed in.

use std::time::Duration;

use crate::delivery::retry::RetryPolicy;
use crate::delivery::transport::{Received, Sent};
use crate::domain::delivery::{
    Attempt, AttemptOutcome, DeliveryStatus, ErrorKind, LoggedRequest, LoggedResponse,
};

/// What the log entry records besides the outcome.
#[derive(Debug)]
pub struct Record {
    pub number: u32,
    /// When the attempt started (Unix ms, from the injected clock).
    pub started_at: i64,
    pub request: LoggedRequest,
    /// `logs.store_bodies`: whether the response body is logged too.
    pub store_bodies: bool,
}

/// Where the attempt stands in its delivery, for the retry decision.
#[derive(Debug, Clone, Copy)]
pub struct Round<'a> {
    pub retry: &'a RetryPolicy,
    /// Attempts the delivery had left before this one.
    pub attempts_left: u32,
    /// A random number in [0, 1) for the retry delay's jitter.
    pub jitter: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Succeeded,
    /// Failed, and tried again at `at` (Unix ms) with `attempts_left` still allowed.
    Retry {
        at: i64,
        attempts_left: u32,
    },
    /// Failed for good: no attempts left, or an error that would only repeat.
    Failed,
    /// The destination is not allowed.
    Blocked,
    /// The receiver answered 410 Gone: it is gone for good, so retrying would only repeat
    /// that. The delivery fails, and the dispatcher deactivates the rule.
    Gone,
}

impl Verdict {
    /// The delivery's state after the attempt.
    pub fn next_state(self) -> AttemptOutcome {
        let done = |status| AttemptOutcome {
            status,
            next_attempt_at: None,
            attempts_left: 0,
        };
        match self {
            Self::Succeeded => done(DeliveryStatus::Succeeded),
            Self::Retry { at, attempts_left } => AttemptOutcome {
                status: DeliveryStatus::Retrying,
                next_attempt_at: Some(at),
                attempts_left,
            },
            Self::Failed | Self::Gone => done(DeliveryStatus::Failed),
            Self::Blocked => done(DeliveryStatus::Blocked),
        }
    }
}

/// An attempt judged: its log entry and what happens next.
#[derive(Debug)]
pub struct Judged {
    pub attempt: Attempt,
    pub verdict: Verdict,
}

/// Turns what one send (or a refusal before sending) produced into the logged attempt and
/// the verdict.
pub fn judge(sent: Sent, record: Record, round: &Round<'_>) -> Judged {
    let duration_ms = u64::try_from(sent.elapsed.as_millis()).unwrap_or(u64::MAX);
    let answered_at = record
        .started_at
        .saturating_add(i64::try_from(duration_ms).unwrap_or(i64::MAX));
    let (status_code, error, response, retry_after) = match sent.result {
        Ok(received) => {
            let (error, response, retry_after) = answer(received, record.store_bodies, answered_at);
            (Some(response.status), error, Some(response), retry_after)
        }
        Err(failure) => (None, Some((failure.kind, failure.message)), None, None),
    };
    let verdict = verdict(
        status_code,
        error.as_ref().map(|e| e.0),
        record.started_at,
        retry_after,
        round,
    );
    Judged {
        attempt: Attempt {
            number: record.number,
            started_at: record.started_at,
            duration_ms,
            status_code,
            error_kind: error.as_ref().map(|e| e.0),
            error: error.map(|e| e.1),
            request: record.request,
            response,
        },
        verdict,
    }
}

/// What an answer says: the error if it is not a 2xx, the logged response, and the
/// receiver's Retry-After on a 429 or 503.
fn answer(
    received: Received,
    store_bodies: bool,
    answered_at: i64,
) -> (
    Option<(ErrorKind, String)>,
    LoggedResponse,
    Option<Duration>,
) {
    let status = received.status;
    let retry_after = matches!(status, 429 | 503)
        .then(|| retry_after(&received.headers, answered_at))
        .flatten();
    let error = (!(200..300).contains(&status)).then(|| {
        let message = if (300..400).contains(&status) {
            format!(
                "the receiver answered {status}, a redirect; tidings does not follow redirects, so point the rule at the final URL"
            )
        } else {
            format!("the receiver answered {status}")
        };
        (ErrorKind::HttpStatus, message)
    });
    let response = LoggedResponse {
        status,
        headers: received.headers,
        body: store_bodies.then(|| String::from_utf8_lossy(&received.body).into_owned()),
        truncated: received.truncated,
    };
    (error, response, retry_after)
}

fn verdict(
    status: Option<u16>,
    error: Option<ErrorKind>,
    started_at: i64,
    retry_after: Option<Duration>,
    round: &Round<'_>,
) -> Verdict {
    match error {
        None if status.is_some_and(|s| (200..300).contains(&s)) => return Verdict::Succeeded,
        Some(ErrorKind::WebhookUrlBlocked | ErrorKind::SsrfBlocked) => return Verdict::Blocked,
        Some(kind) if !kind.is_retryable() => return Verdict::Failed,
        _ => {}
    }
    if status == Some(410) {
        return Verdict::Gone;
    }
    let left = round.attempts_left.saturating_sub(1);
    if left == 0 {
        return Verdict::Failed;
    }
    // Position in the automatic schedule: 1 after the first attempt, and so on.
    let nth = round.retry.max_attempts.saturating_sub(left);
    let delay = round.retry.delay_after(nth, round.jitter, retry_after);
    Verdict::Retry {
        at: started_at + i64::try_from(delay.as_millis()).unwrap_or(i64::MAX / 2),
        attempts_left: left,
    }
}

/// Retry-After as seconds or an HTTP date (counted from `now_ms`, when the answer came).
fn retry_after(headers: &[(String, String)], now_ms: i64) -> Option<Duration> {
    let value = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("retry-after"))?
        .1
        .trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    let at_ms = at
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    Some(Duration::from_millis(
        u64::try_from(at_ms.saturating_sub(now_ms)).unwrap_or(0),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delivery::transport::Failure;
    use crate::domain::time::parse_rfc3339;

    const START: i64 = 1_800_000_000_000;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 5,
            base_delay: Duration::from_secs(10),
            max_delay: Duration::from_secs(3600),
            jitter: false,
        }
    }

    fn record() -> Record {
        Record {
            number: 1,
            started_at: START,
            request: LoggedRequest {
                url: "https://example.org/hook".into(),
                method: "POST".into(),
                headers: Vec::new(),
                body: None,
            },
            store_bodies: true,
        }
    }

    fn answered(status: u16, headers: &[(&str, &str)]) -> Sent {
        Sent {
            result: Ok(Received {
                status,
                headers: headers
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
                body: b"ok".to_vec(),
                truncated: false,
            }),
            elapsed: Duration::from_millis(250),
        }
    }

    fn failed(kind: ErrorKind) -> Sent {
        Sent {
            result: Err(Failure {
                kind,
                message: "it went wrong".into(),
            }),
            elapsed: Duration::from_millis(30),
        }
    }

    /// Judged under a 5-attempt policy with `left` attempts left before this one.
    fn judged(sent: Sent, left: u32) -> Judged {
        let p = policy();
        judge(
            sent,
            record(),
            &Round {
                retry: &p,
                attempts_left: left,
                jitter: 0.5,
            },
        )
    }

    fn retry_at(j: &Judged) -> i64 {
        match j.verdict {
            Verdict::Retry { at, .. } => at,
            other => panic!("expected a retry, got {other:?}"),
        }
    }

    #[test]
    fn a_2xx_succeeds_and_logs_the_response() {
        let j = judged(answered(204, &[("X-Req", "1")]), 5);
        assert_eq!(j.verdict, Verdict::Succeeded);
        assert!(j.attempt.succeeded());
        assert_eq!(j.attempt.status_code, Some(204));
        assert_eq!(j.attempt.error_kind, None);
        assert_eq!(j.attempt.duration_ms, 250);
        assert_eq!(j.attempt.started_at, START);
        let response = j.attempt.response.unwrap();
        assert_eq!(response.body.as_deref(), Some("ok"));
        assert_eq!(response.headers, [("X-Req".to_owned(), "1".to_owned())]);
        assert_eq!(j.verdict.next_state().status, DeliveryStatus::Succeeded);
    }

    #[test]
    fn bodies_stay_out_of_the_log_when_asked() {
        let p = policy();
        let j = judge(
            answered(200, &[]),
            Record {
                store_bodies: false,
                ..record()
            },
            &Round {
                retry: &p,
                attempts_left: 5,
                jitter: 0.5,
            },
        );
        assert_eq!(j.attempt.response.unwrap().body, None);
    }

    #[test]
    fn other_statuses_retry_on_the_schedule() {
        let j = judged(answered(500, &[]), 5);
        assert_eq!(j.attempt.error_kind, Some(ErrorKind::HttpStatus));
        assert_eq!(
            j.attempt.error.as_deref(),
            Some("the receiver answered 500")
        );
        assert_eq!(
            j.verdict,
            Verdict::Retry {
                at: START + 10_000,
                attempts_left: 4
            }
        );
        let next = j.verdict.next_state();
        assert_eq!(next.status, DeliveryStatus::Retrying);
        assert_eq!(next.next_attempt_at, Some(START + 10_000));
        assert_eq!(next.attempts_left, 4);
        // Third attempt (three left before it): 40 s, from the attempt's start.
        assert_eq!(retry_at(&judged(answered(502, &[]), 3)), START + 40_000);
    }

    #[test]
    fn a_redirect_is_not_followed_and_says_so() {
        let j = judged(answered(301, &[("Location", "https://elsewhere")]), 5);
        assert_eq!(j.attempt.error_kind, Some(ErrorKind::HttpStatus));
        assert!(
            j.attempt
                .error
                .unwrap()
                .contains("a redirect; tidings does not follow redirects"),
        );
        assert!(matches!(j.verdict, Verdict::Retry { .. }));
    }

    #[test]
    fn gone_fails_at_once_even_with_attempts_left() {
        for left in [5, 1] {
            let j = judged(answered(410, &[]), left);
            assert_eq!(j.verdict, Verdict::Gone);
            assert_eq!(j.attempt.status_code, Some(410));
            let next = j.verdict.next_state();
            assert_eq!(next.status, DeliveryStatus::Failed);
            assert_eq!((next.next_attempt_at, next.attempts_left), (None, 0));
        }
    }

    #[test]
    fn retry_after_seconds_is_a_minimum_within_max_delay() {
        let at = |status, value| retry_at(&judged(answered(status, &[("Retry-After", value)]), 5));
        assert_eq!(at(429, "120"), START + 120_000);
        assert_eq!(
            at(503, "3"),
            START + 10_000,
            "the schedule's 10 s is longer"
        );
        assert_eq!(at(503, "86400"), START + 3_600_000, "capped by max_delay");
        // Only a 429 or 503 asks for a pause.
        assert_eq!(at(500, "120"), START + 10_000);
    }

    #[test]
    fn retry_after_as_a_date_counts_from_the_answer() {
        // START is 2027-01-15T08:00:00Z; the answer came 250 ms later.
        assert_eq!(parse_rfc3339("2027-01-15T08:00:00Z"), Some(START));
        let j = judged(
            answered(429, &[("retry-after", "Fri, 15 Jan 2027 08:10:00 GMT")]),
            5,
        );
        assert_eq!(retry_at(&j), START + 600_000 - 250);
        let past = judged(
            answered(503, &[("Retry-After", "Wed, 21 Oct 2015 07:28:00 GMT")]),
            5,
        );
        assert_eq!(retry_at(&past), START + 10_000);
        let junk = judged(answered(503, &[("Retry-After", "soon")]), 5);
        assert_eq!(retry_at(&junk), START + 10_000);
    }

    #[test]
    fn retry_after_forms() {
        let h = |v: &str| vec![("Retry-After".to_owned(), v.to_owned())];
        assert_eq!(
            retry_after(&h("120"), START),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            retry_after(&h("Wed, 21 Oct 2015 07:28:00 GMT"), START),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after(&h("soon"), START), None);
        assert_eq!(retry_after(&[], START), None);
    }

    #[test]
    fn network_failures_retry_and_blocks_and_templates_do_not() {
        for kind in [
            ErrorKind::Timeout,
            ErrorKind::Connect,
            ErrorKind::Dns,
            ErrorKind::Tls,
        ] {
            let j = judged(failed(kind), 5);
            assert_eq!(j.attempt.error_kind, Some(kind));
            assert_eq!(j.attempt.error.as_deref(), Some("it went wrong"));
            assert_eq!(j.attempt.status_code, None);
            assert!(j.attempt.response.is_none());
            assert_eq!(j.attempt.duration_ms, 30);
            assert_eq!(retry_at(&j), START + 10_000, "{kind:?}");
        }
        for kind in [ErrorKind::WebhookUrlBlocked, ErrorKind::SsrfBlocked] {
            let j = judged(failed(kind), 5);
            assert_eq!(j.verdict, Verdict::Blocked);
            assert_eq!(j.verdict.next_state().status, DeliveryStatus::Blocked);
        }
        assert_eq!(
            judged(failed(ErrorKind::TemplateError), 5).verdict,
            Verdict::Failed
        );
    }

    #[test]
    fn the_last_attempt_fails_for_good() {
        assert_eq!(judged(answered(500, &[]), 1).verdict, Verdict::Failed);
        assert_eq!(
            judged(failed(ErrorKind::Timeout), 1).verdict,
            Verdict::Failed
        );
        // A test send's round of one, too; a success is still a success.
        assert_eq!(judged(answered(200, &[]), 1).verdict, Verdict::Succeeded);
        assert_eq!(
            judged(failed(ErrorKind::Connect), 0).verdict,
            Verdict::Failed
        );
    }
}
