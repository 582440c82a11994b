//! Checking a captured webhook request against a signing secret (or, for ed25519 `v1a`, a
//! public key), for `tidings verify`: it says
//! not only whether the signature holds but, when it does not, the likeliest reason — the
//! questions receivers ask most (re-serialised JSON, the wrong secret form, stale timestamps).

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;

use super::signing::{HMAC_HEADER, hmac_sha256_header, standard_webhooks_signature};
use crate::security::keypair;

/// A verified request: which scheme, and how old its timestamp was.
#[derive(Debug, PartialEq, Eq)]
pub struct Verified {
    pub scheme: &'static str,
    pub age_secs: i64,
}

/// Why a request does not verify, with a plain hint.
#[derive(Debug, PartialEq, Eq)]
pub struct Failure {
    pub reason: String,
    pub hint: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}\nhint: {}", self.reason, self.hint)
    }
}

fn fail(reason: impl Into<String>, hint: impl Into<String>) -> Failure {
    Failure {
        reason: reason.into(),
        hint: hint.into(),
    }
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim())
}

/// Verifies `body` (raw bytes as received) with `secret`; `now` is Unix seconds.
pub fn verify(
    secret: &str,
    headers: &[(String, String)],
    body: &[u8],
    now: i64,
    tolerance_secs: i64,
) -> Result<Verified, Failure> {
    let secret = secret.trim();
    if let Some(sig) = header(headers, HMAC_HEADER) {
        let (timestamp, given) = parse_hmac_header(sig)?;
        let matches = |secret: &str, body: &[u8]| {
            let expected = hmac_sha256_header(&[secret], timestamp, body);
            let expected = expected.rsplit("v1=").next().unwrap_or_default().to_owned();
            given
                .iter()
                .any(|g| constant_eq(g.as_bytes(), expected.as_bytes()))
        };
        return finish(
            "hmac-sha256",
            timestamp,
            now,
            tolerance_secs,
            secret,
            body,
            matches,
        );
    }
    if let Some(sig) = header(headers, "webhook-signature") {
        let id = header(headers, "webhook-id").ok_or_else(|| {
            fail(
                "webhook-signature is present but webhook-id is missing",
                "capture every webhook-* header: the id is part of what is signed",
            )
        })?;
        let timestamp = header(headers, "webhook-timestamp")
            .ok_or_else(|| {
                fail(
                    "webhook-timestamp is missing",
                    "capture every webhook-* header: the timestamp is part of what is signed",
                )
            })?
            .parse::<i64>()
            .map_err(|_| {
                fail(
                    "webhook-timestamp is not a whole number of seconds",
                    "pass the header exactly as received",
                )
            })?;
        let given: Vec<&str> = sig
            .split(' ')
            .filter_map(|s| s.strip_prefix("v1,"))
            .collect();
        let given_v1a: Vec<&str> = sig
            .split(' ')
            .filter_map(|s| s.strip_prefix("v1a,"))
            .collect();
        if secret.starts_with("whpk_") || secret.starts_with("whsk_") || given.is_empty() {
            return verify_v1a(
                secret,
                sig,
                &given,
                &given_v1a,
                id,
                timestamp,
                body,
                now,
                tolerance_secs,
            );
        }
        let matches = |secret: &str, body: &[u8]| {
            let expected = standard_webhooks_signature(&[secret], id, timestamp, body);
            let expected = expected.strip_prefix("v1,").unwrap_or_default().to_owned();
            given
                .iter()
                .any(|g| constant_eq(g.as_bytes(), expected.as_bytes()))
        };
        return finish(
            "standard-webhooks",
            timestamp,
            now,
            tolerance_secs,
            secret,
            body,
            matches,
        );
    }
    Err(fail(
        format!(
            "no {HMAC_HEADER} or webhook-signature header among the {} given",
            headers.len()
        ),
        "the rule may have signing \"none\", or the headers were not captured; pass them with --header or --headers",
    ))
}

/// The asymmetric branch of Standard Webhooks (`v1a`, ed25519), checked with a public key.
#[allow(clippy::too_many_arguments)]
fn verify_v1a(
    key: &str,
    header: &str,
    given_v1: &[&str],
    given: &[&str],
    id: &str,
    timestamp: i64,
    body: &[u8],
    now: i64,
    tolerance_secs: i64,
) -> Result<Verified, Failure> {
    if key.starts_with("whsk_") {
        return Err(fail(
            "that is a private key (whsk_…); receivers verify with the public key",
            "use the rule's public key (whpk_…) from its page or GET /api/v1/rules/{id}/secret; tidings never shows private keys",
        ));
    }
    if given.is_empty() {
        return Err(if given_v1.is_empty() {
            fail(
                format!("webhook-signature {header:?} has no v1,<base64> or v1a,<base64> entry"),
                "pass the header exactly as received",
            )
        } else {
            fail(
                "the request carries v1 (HMAC) signatures, which a public key cannot check",
                "this rule signs with standard-webhooks: verify with its secret (whsec_…)",
            )
        });
    }
    if !key.starts_with("whpk_") {
        return Err(fail(
            "the request carries v1a (ed25519) signatures, which are checked with a public key, not a secret",
            "use the rule's public key (whpk_…) from its page or GET /api/v1/rules/{id}/secret",
        ));
    }
    let public = keypair::parse_public(key).map_err(|e| {
        fail(
            format!("the public key does not parse: {e}"),
            "copy it again from the rule's page; it is whpk_ and 44 base64 characters",
        )
    })?;
    let prefix = format!("{id}.{timestamp}.");
    let matches = |_: &str, body: &[u8]| {
        let message = [prefix.as_bytes(), body].concat();
        given
            .iter()
            .any(|g| keypair::verifies(&public, &message, g))
    };
    finish(
        "ed25519",
        timestamp,
        now,
        tolerance_secs,
        key,
        body,
        matches,
    )
}

fn parse_hmac_header(sig: &str) -> Result<(i64, Vec<String>), Failure> {
    let mut timestamp = None;
    let mut given = Vec::new();
    for part in sig.split(',') {
        match part.trim().split_once('=') {
            Some(("t", t)) => timestamp = t.parse::<i64>().ok(),
            Some(("v1", v)) => given.push(v.to_owned()),
            _ => {}
        }
    }
    let bad = |what: &str| {
        fail(
            format!("{HMAC_HEADER} {sig:?} {what}"),
            "expected t=<unix seconds>,v1=<hex>; pass the header exactly as received",
        )
    };
    let timestamp = timestamp.ok_or_else(|| bad("has no valid t=<unix seconds>"))?;
    if given.is_empty() {
        return Err(bad("has no v1=<signature>"));
    }
    Ok((timestamp, given))
}

/// The shared ending: signature first (so a bad secret is not reported as "stale"), then age.
fn finish(
    scheme: &'static str,
    timestamp: i64,
    now: i64,
    tolerance_secs: i64,
    secret: &str,
    body: &[u8],
    matches: impl Fn(&str, &[u8]) -> bool,
) -> Result<Verified, Failure> {
    if !matches(secret, body) {
        return Err(explain_mismatch(scheme, secret, body, &matches));
    }
    let age_secs = now - timestamp;
    if age_secs > tolerance_secs {
        return Err(fail(
            format!(
                "the signature is valid but its timestamp is {age_secs} s old (tolerance {tolerance_secs} s)"
            ),
            "receivers reject old timestamps to stop replays; re-send the delivery from tidings (every attempt is signed afresh) or verify sooner after capture",
        ));
    }
    if age_secs < -tolerance_secs {
        return Err(fail(
            format!(
                "the signature is valid but its timestamp is {} s in the future",
                -age_secs
            ),
            "the receiver's or tidings' clock is wrong; check NTP on both",
        ));
    }
    Ok(Verified { scheme, age_secs })
}

/// Tries the usual ways a body or secret gets changed, to name the one that happened.
fn explain_mismatch(
    scheme: &str,
    secret: &str,
    body: &[u8],
    matches: &impl Fn(&str, &[u8]) -> bool,
) -> Failure {
    let body_variants = body_variants(body);
    if let Some((how, _)) = body_variants.iter().find(|(_, b)| matches(secret, b)) {
        return fail(
            format!("the body was changed after signing: it verifies once {how}"),
            "verify the raw request bytes exactly as received, before any JSON parsing or re-serialising",
        );
    }
    if scheme == "ed25519" {
        return fail(
            "the v1a signature does not match this public key and body",
            "either the key is not this rule's (after a rotation the request carries one v1a per live key, so the newest public key verifies; an older one stops after the overlap) or the body is not the raw bytes as received",
        );
    }
    if !secret.starts_with("whsec_") {
        if matches(&format!("whsec_{secret}"), body) {
            return fail(
                "the secret is missing its whsec_ prefix",
                "use the secret exactly as tidings shows it, whsec_ included",
            );
        }
        return fail(
            "the signature does not match, and the secret does not look like a tidings secret (whsec_…)",
            "copy the rule's secret from the admin UI or GET /api/v1/rules/{id}/secret",
        );
    }
    if scheme == "hmac-sha256"
        && let Some(decoded) = decoded_secret(secret)
        && matches(&decoded, body)
    {
        return fail(
            "the signature was made with the decoded secret bytes, not the secret string",
            "for hmac-sha256 the HMAC key is the whole secret string's UTF-8 bytes (whsec_ included), as with Stripe",
        );
    }
    fail(
        format!("the {scheme} signature does not match this secret and body"),
        "either the secret is wrong (a rotated or another rule's secret?) or the body is not the raw bytes as received",
    )
}

fn body_variants(body: &[u8]) -> Vec<(&'static str, Vec<u8>)> {
    let mut out = Vec::new();
    if body.ends_with(b"\n") {
        out.push((
            "its trailing newline is removed",
            body.strip_suffix(b"\n").unwrap_or(body).to_vec(),
        ));
    } else {
        out.push(("a trailing newline is added", [body, b"\n"].concat()));
    }
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(body)
        && let Ok(compact) = serde_json::to_vec(&value)
    {
        out.push(("the JSON is written compactly again", compact));
    }
    out
}

/// Only for the diagnosis above: the bytes behind `whsec_`, if they are valid UTF-8.
fn decoded_secret(secret: &str) -> Option<String> {
    let bytes = B64.decode(secret.strip_prefix("whsec_")?).ok()?;
    String::from_utf8(bytes).ok()
}

fn constant_eq(a: &[u8], b: &[u8]) -> bool {
    subtle::ConstantTimeEq::ct_eq(a, b).into()
}

/// Parses `Name: value` lines (a captured header block); blank and request lines are skipped.
pub fn parse_header_lines(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|line| {
            let (name, value) = line.split_once(':')?;
            let name = name.trim();
            (!name.is_empty() && !name.contains(' '))
                .then(|| (name.to_owned(), value.trim().to_owned()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delivery::signing::signature_headers;
    use crate::domain::rule::Signing;

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const NOW: i64 = 1_800_000_000;

    fn signed(scheme: Signing, body: &[u8], at: i64) -> Vec<(String, String)> {
        signature_headers(scheme, &[SECRET], "dlv_1", at, body)
    }

    #[test]
    fn both_schemes_verify() {
        for scheme in [Signing::HmacSha256, Signing::StandardWebhooks] {
            let body = br#"{"a":1}"#;
            let v = verify(SECRET, &signed(scheme, body, NOW - 3), body, NOW, 300).unwrap();
            assert_eq!(v.age_secs, 3);
        }
    }

    #[test]
    fn failures_name_their_cause() {
        // tidings sends compact JSON; a receiver that re-serialises it adds spaces.
        let body = br#"{"a":1}"#;
        let headers = signed(Signing::HmacSha256, body, NOW);
        let err = verify(SECRET, &headers, br#"{"a": 1}"#, NOW, 300).unwrap_err();
        assert!(err.reason.contains("body was changed"), "{err}");
        let err = verify("whsec_AAAA", &headers, body, NOW, 300).unwrap_err();
        assert!(err.reason.contains("does not match"), "{err}");
        let err = verify(
            SECRET.trim_start_matches("whsec_"),
            &headers,
            body,
            NOW,
            300,
        )
        .unwrap_err();
        assert!(err.reason.contains("whsec_ prefix"), "{err}");
        let old = signed(Signing::HmacSha256, body, NOW - 3600);
        let err = verify(SECRET, &old, body, NOW, 300).unwrap_err();
        assert!(err.reason.contains("3600 s old"), "{err}");
        let err = verify(SECRET, &[], body, NOW, 300).unwrap_err();
        assert!(err.reason.contains("no X-Webhook-Signature"), "{err}");
        let sw = signed(Signing::StandardWebhooks, body, NOW);
        let no_id: Vec<_> = sw.into_iter().filter(|(k, _)| k != "webhook-id").collect();
        assert!(
            verify(SECRET, &no_id, body, NOW, 300)
                .unwrap_err()
                .reason
                .contains("webhook-id")
        );
    }

    #[test]
    fn ed25519_verifies_with_the_public_key_and_explains_the_rest() {
        let (private, public) = crate::security::keypair::generate();
        let body = br#"{"a":1}"#;
        let headers = signature_headers(Signing::Ed25519, &[private.expose()], "dlv_1", NOW, body);
        let v = verify(&public, &headers, body, NOW + 2, 300).unwrap();
        assert_eq!((v.scheme, v.age_secs), ("ed25519", 2));
        let err = verify(&public, &headers, br#"{"a": 1}"#, NOW, 300).unwrap_err();
        assert!(err.reason.contains("body was changed"), "{err}");
        let (_, other) = crate::security::keypair::generate();
        let err = verify(&other, &headers, body, NOW, 300).unwrap_err();
        assert!(
            err.reason.contains("does not match this public key"),
            "{err}"
        );
        let err = verify(SECRET, &headers, body, NOW, 300).unwrap_err();
        assert!(err.reason.contains("checked with a public key"), "{err}");
        let err = verify(private.expose(), &headers, body, NOW, 300).unwrap_err();
        assert!(err.reason.contains("private key"), "{err}");
        let err = verify("whpk_short", &headers, body, NOW, 300).unwrap_err();
        assert!(err.reason.contains("does not parse"), "{err}");
        let err = verify(&public, &headers, body, NOW + 3600, 300).unwrap_err();
        assert!(err.reason.contains("3600 s old"), "{err}");
        let hmac_signed = signed(Signing::StandardWebhooks, body, NOW);
        let err = verify(&public, &hmac_signed, body, NOW, 300).unwrap_err();
        assert!(err.reason.contains("v1 (HMAC)"), "{err}");
    }

    #[test]
    fn header_lines_parse() {
        let h = parse_header_lines(
            "POST /hook HTTP/1.1\nX-Webhook-Signature: t=1,v1=ab\r\n\nContent-Type: application/json\n",
        );
        assert_eq!(h.len(), 2);
        assert_eq!(h[0], ("X-Webhook-Signature".into(), "t=1,v1=ab".into()));
    }
}
