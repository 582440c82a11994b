//! OAuth 2 client credentials (SPEC §12): fetching a rule's access token from its token URL
//! and keeping it, shared by every worker's transport copy, until 30 s before it expires.
//!
//! Each cached token is keyed by rule id and a fingerprint of the rule's auth settings (its
//! sealed values included), so an edited rule never sends a token meant for its old client.
//! A rule's entry is locked while its token is fetched: workers that need it meanwhile wait
//! for that one request instead of sending their own. Tokens are never logged.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde::Deserialize;
use sha2::{Digest, Sha256};
use ureq::Agent;

use crate::domain::ids::RuleId;
use crate::domain::rule::{ClientAuth, ReceiverAuth};
use crate::security::client_assertion;
use crate::security::crypto::{MasterKey, Sealed};
use crate::security::ssrf::{AddressPolicy, blocked_by_policy};

/// A token is fetched again this long before the server says it expires, so a request never
/// leaves with a token that runs out on the way.
const REFRESH_MARGIN: Duration = Duration::from_secs(30);

/// How long a token whose answer has no `expires_in` is kept (RFC 6749 makes the field
/// optional). A receiver that stops taking it sooner answers 401, which fetches a new one.
const LIFETIME_UNSTATED: Duration = Duration::from_secs(3600);

/// Token answers are a few hundred bytes; more is not a token endpoint.
const MAX_ANSWER_BYTES: u64 = 64 * 1024;

/// Rules with cached tokens; past this the map starts over (tokens are fetched again).
const MAX_RULES: usize = 4096;

/// One rule's OAuth 2 settings, borrowed from its stored `webhook.auth`.
#[derive(Clone, Copy)]
pub struct OAuth2<'a> {
    pub token_url: &'a str,
    pub client_id: &'a str,
    pub client_secret: Option<&'a Sealed>,
    pub scope: Option<&'a str>,
    pub audience: Option<&'a str>,
    pub client_auth: ClientAuth,
    pub private_key: Option<&'a Sealed>,
}

impl<'a> OAuth2<'a> {
    /// The settings of an `oauth2_client_credentials` auth; `None` for any other type.
    pub fn of(auth: &'a ReceiverAuth) -> Option<Self> {
        match auth {
            ReceiverAuth::OAuth2 {
                token_url,
                client_id,
                client_secret,
                scope,
                audience,
                client_auth,
                private_key,
            } => Some(Self {
                token_url,
                client_id,
                client_secret: client_secret.as_ref(),
                scope: scope.as_deref(),
                audience: audience.as_deref(),
                client_auth: *client_auth,
                private_key: private_key.as_ref(),
            }),
            _ => None,
        }
    }

    /// A digest of every setting: a changed one (a new secret is a new sealed value) makes a
    /// new cache key.
    fn fingerprint(&self) -> [u8; 32] {
        let mut hash = Sha256::new();
        for part in [
            Some(self.token_url),
            Some(self.client_id),
            self.client_secret.map(Sealed::as_str),
            self.scope,
            self.audience,
            Some(self.client_auth.as_str()),
            self.private_key.map(Sealed::as_str),
        ] {
            // Length-prefixed, so no two different settings run together into the same bytes.
            let part = part.unwrap_or("\u{0}");
            hash.update(part.len().to_le_bytes());
            hash.update(part.as_bytes());
        }
        hash.finalize().into()
    }
}

struct Cached {
    fingerprint: [u8; 32],
    token: String,
    refresh_at: Instant,
}

type Slot = Arc<Mutex<Option<Cached>>>;

/// The tokens of every OAuth 2 rule; one per transport, shared by its worker copies.
#[derive(Default)]
pub struct TokenCache {
    by_rule: Mutex<HashMap<RuleId, Slot>>,
}

/// What a token request needs besides the rule's settings.
pub struct Fetcher<'a> {
    pub agent: &'a Agent,
    pub policy: &'a AddressPolicy,
    pub master_key: &'a MasterKey,
    pub timeout: Duration,
}

impl TokenCache {
    /// The rule's current token, fetched if there is none, it is due for refresh, or it is
    /// `rejected` (the one the receiver just answered 401 to; a token another worker fetched
    /// since is used as it is).
    pub fn token(
        &self,
        rule: &RuleId,
        settings: &OAuth2<'_>,
        rejected: Option<&str>,
        fetcher: &Fetcher<'_>,
    ) -> Result<String, String> {
        let slot = self.slot(rule);
        let mut cached = slot.lock().unwrap_or_else(PoisonError::into_inner);
        let fingerprint = settings.fingerprint();
        if let Some(c) = cached.as_ref()
            && c.fingerprint == fingerprint
            && Instant::now() < c.refresh_at
            && rejected != Some(c.token.as_str())
        {
            return Ok(c.token.clone());
        }
        *cached = None;
        let (token, lifetime) = fetch(settings, fetcher)?;
        *cached = Some(Cached {
            fingerprint,
            token: token.clone(),
            refresh_at: Instant::now() + lifetime.saturating_sub(REFRESH_MARGIN),
        });
        Ok(token)
    }

    fn slot(&self, rule: &RuleId) -> Slot {
        let mut map = self.by_rule.lock().unwrap_or_else(PoisonError::into_inner);
        if !map.contains_key(rule) && map.len() >= MAX_RULES {
            map.clear();
        }
        Arc::clone(map.entry(rule.clone()).or_default())
    }
}

/// The fields of a token answer tidings reads (RFC 6749 §5.1).
#[derive(Deserialize)]
struct Answer {
    access_token: Option<String>,
    token_type: Option<String>,
    expires_in: Option<serde_json::Value>,
}

/// An error answer (RFC 6749 §5.2), quoted in the attempt's message.
#[derive(Deserialize)]
struct Refusal {
    error: Option<String>,
    error_description: Option<String>,
}

/// One token request; the token and how long it lives, or what went wrong in words for the
/// attempt log (never the token, secret or assertion).
fn fetch(settings: &OAuth2<'_>, fetcher: &Fetcher<'_>) -> Result<(String, Duration), String> {
    let url = url::Url::parse(settings.token_url)
        .map_err(|e| format!("the token URL is not valid ({e})"))?;
    fetcher
        .policy
        .check_url(&url)
        .map_err(|p| format!("the token URL is not allowed: {p}"))?;
    let mut form = url::form_urlencoded::Serializer::new(String::new());
    form.append_pair("grant_type", "client_credentials");
    if let Some(scope) = settings.scope {
        form.append_pair("scope", scope);
    }
    if let Some(audience) = settings.audience {
        form.append_pair("audience", audience);
    }
    let mut basic = None;
    match settings.client_auth {
        ClientAuth::ClientSecretBasic => {
            let secret = open(fetcher, settings.client_secret, "client secret")?;
            basic = Some(basic_credentials(settings.client_id, &secret));
        }
        ClientAuth::ClientSecretPost => {
            let secret = open(fetcher, settings.client_secret, "client secret")?;
            form.append_pair("client_id", settings.client_id);
            form.append_pair("client_secret", &secret);
        }
        ClientAuth::PrivateKeyJwt => {
            let key = open(fetcher, settings.private_key, "signing key")?;
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
            let assertion =
                client_assertion::sign(&key, settings.client_id, settings.token_url, now)?;
            form.append_pair("client_assertion_type", client_assertion::ASSERTION_TYPE);
            form.append_pair("client_assertion", &assertion);
        }
    }
    let mut request = fetcher
        .agent
        .post(settings.token_url)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .header("Accept", "application/json");
    if let Some(basic) = basic {
        request = request.header("Authorization", basic);
    }
    let mut response = request
        .config()
        .timeout_global(Some(fetcher.timeout))
        .build()
        .send(form.finish())
        .map_err(|e| match blocked_by_policy(&e) {
            Some(blocked) => format!("the token URL is not allowed: {blocked}"),
            None => format!("the token URL could not be reached: {e}"),
        })?;
    let status = response.status().as_u16();
    let body = response
        .body_mut()
        .with_config()
        .limit(MAX_ANSWER_BYTES)
        .read_to_vec()
        .map_err(|e| format!("the token URL's answer could not be read: {e}"))?;
    if !(200..300).contains(&status) {
        let said = serde_json::from_slice::<Refusal>(&body)
            .ok()
            .and_then(|r| match (r.error, r.error_description) {
                (Some(e), Some(d)) => Some(format!(": {e} ({d})")),
                (Some(e), None) => Some(format!(": {e}")),
                _ => None,
            })
            .unwrap_or_default();
        return Err(format!("the token URL answered {status}{said}"));
    }
    read_answer(&body)
}

/// RFC 6749 §2.3.1: both parts form-encoded before they are joined and base64-encoded.
fn basic_credentials(client_id: &str, secret: &str) -> String {
    use base64::Engine;
    let encode = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let pair = format!("{}:{}", encode(client_id), encode(secret));
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair)
    )
}

fn open(fetcher: &Fetcher<'_>, sealed: Option<&Sealed>, what: &str) -> Result<String, String> {
    let sealed = sealed.ok_or_else(|| format!("the rule has no {what}"))?;
    fetcher
        .master_key
        .open(sealed)
        .map(|s| s.expose().to_owned())
        .map_err(|e| format!("the rule's {what} cannot be opened: {e}"))
}

fn read_answer(body: &[u8]) -> Result<(String, Duration), String> {
    let answer: Answer = serde_json::from_slice(body)
        .map_err(|_| "the token URL's answer is not a JSON object".to_owned())?;
    let token = answer
        .access_token
        .filter(|t| !t.is_empty())
        .ok_or_else(|| "the token URL's answer has no access_token".to_owned())?;
    if let Some(kind) = answer.token_type
        && !kind.eq_ignore_ascii_case("bearer")
    {
        return Err(format!(
            "the token URL gave a {kind:?} token; only Bearer tokens can be sent"
        ));
    }
    // Some servers send the number as a string.
    let seconds = match answer.expires_in {
        Some(serde_json::Value::Number(n)) => n.as_u64(),
        Some(serde_json::Value::String(s)) => s.trim().parse().ok(),
        _ => None,
    };
    let lifetime = match seconds {
        Some(s) => Duration::from_secs(s),
        None => LIFETIME_UNSTATED,
    };
    Ok((token, lifetime))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_form_encode_each_part() {
        use base64::Engine;
        let header = basic_credentials("a b", "p:w");
        let raw = base64::engine::general_purpose::STANDARD
            .decode(header.strip_prefix("Basic ").unwrap())
            .unwrap();
        assert_eq!(String::from_utf8(raw).unwrap(), "a+b:p%3Aw");
    }

    #[test]
    fn an_answer_needs_a_bearer_access_token() {
        let (token, life) = read_answer(br#"{"access_token":"t","expires_in":"60"}"#).unwrap();
        assert_eq!((token.as_str(), life), ("t", Duration::from_secs(60)));
        let (_, life) = read_answer(br#"{"access_token":"t","token_type":"bearer"}"#).unwrap();
        assert_eq!(life, LIFETIME_UNSTATED);
        assert!(read_answer(b"<html>").unwrap_err().contains("JSON"));
        assert!(
            read_answer(br#"{"token_type":"Bearer"}"#)
                .unwrap_err()
                .contains("access_token")
        );
        assert!(
            read_answer(br#"{"access_token":"t","token_type":"mac"}"#)
                .unwrap_err()
                .contains("Bearer")
        );
    }
}
