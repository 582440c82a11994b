//! Validation of `webhook.auth` type `oauth2_client_credentials` (SPEC §12): each failure
//! names its field, and a masked write-only value keeps the stored one.

use super::MASK;
use super::auth::{AuthInput, ClientAuth, ReceiverAuth, at};
use super::input::{FieldError, SecretValue};
use crate::security::client_assertion;
use crate::security::crypto::Sealed;
use crate::security::ssrf::AddressPolicy;

/// Bounds that keep a pasted value from bloating every row.
const MAX_URL: usize = 2048;
const MAX_CLIENT_ID: usize = 512;
const MAX_SECRET: usize = 4096;
const MAX_PEM: usize = 64 * 1024;

pub(super) fn validate_oauth2(
    input: AuthInput,
    existing: Option<&ReceiverAuth>,
    policy: &AddressPolicy,
) -> Result<ReceiverAuth<SecretValue>, FieldError> {
    let (stored_secret, stored_key) = match existing {
        Some(ReceiverAuth::OAuth2 {
            client_secret,
            private_key,
            ..
        }) => (client_secret.as_ref(), private_key.as_ref()),
        _ => (None, None),
    };
    let token_url = token_url(input.token_url, policy)?;
    let sent = input.client_id.unwrap_or_default();
    // Counted as sent, in characters, as the document's maxLength does.
    let too_long = sent.chars().count() > MAX_CLIENT_ID;
    let client_id = sent.trim().to_owned();
    if client_id.is_empty() {
        return Err(at(
            "client_id",
            "is required: the client id the token server gave",
        ));
    }
    if too_long {
        return Err(at("client_id", "must be at most 512 characters"));
    }
    let client_auth = match input.client_auth.as_deref() {
        None => {
            return Err(at(
                "client_auth",
                "is required: client_secret_basic, client_secret_post or private_key_jwt",
            ));
        }
        Some(s) => ClientAuth::parse(s).ok_or_else(|| {
            at(
                "client_auth",
                format!(
                    "must be client_secret_basic, client_secret_post or private_key_jwt, not {s:?}"
                ),
            )
        })?,
    };
    let scope = optional(input.scope, "scope")?;
    let audience = optional(input.audience, "audience")?;
    let (client_secret, private_key) = if client_auth == ClientAuth::PrivateKeyJwt {
        if input
            .client_secret
            .as_deref()
            .is_some_and(|s| !s.is_empty())
        {
            return Err(at(
                "client_secret",
                "is not used with private_key_jwt (the signed key proves the client); leave it out",
            ));
        }
        (None, Some(private_key(input.private_key, stored_key)?))
    } else {
        if input.private_key.as_deref().is_some_and(|s| !s.is_empty()) {
            return Err(at(
                "private_key",
                "is only used with client_auth private_key_jwt",
            ));
        }
        (
            Some(client_secret(input.client_secret, stored_secret)?),
            None,
        )
    };
    Ok(ReceiverAuth::OAuth2 {
        token_url,
        client_id,
        client_secret,
        scope,
        audience,
        client_auth,
        private_key,
    })
}

/// The token URL passes the same checks as a webhook URL: parsed, `https://` outside
/// development mode, no credentials in it, no blocked address literal.
fn token_url(raw: Option<String>, policy: &AddressPolicy) -> Result<String, FieldError> {
    let raw = raw.unwrap_or_default();
    let raw = raw.trim();
    if raw.is_empty() {
        return Err(at(
            "token_url",
            "is required: the token server's URL (…/token)",
        ));
    }
    if raw.len() > MAX_URL {
        return Err(at("token_url", "must be at most 2048 characters"));
    }
    let parsed =
        url::Url::parse(raw).map_err(|e| at("token_url", format!("is not a valid URL ({e})")))?;
    if parsed.fragment().is_some() {
        return Err(at("token_url", "must not contain a #fragment"));
    }
    policy
        .check_url(&parsed)
        .map_err(|p| at("token_url", p.to_string()))?;
    Ok(parsed.to_string())
}

fn optional(value: Option<String>, field: &str) -> Result<Option<String>, FieldError> {
    let value = value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
    if value.as_ref().is_some_and(|v| v.len() > MAX_URL) {
        return Err(at(field, "must be at most 2048 characters"));
    }
    Ok(value)
}

fn client_secret(
    value: Option<String>,
    stored: Option<&Sealed>,
) -> Result<SecretValue, FieldError> {
    let value = value.unwrap_or_default();
    if value == MASK {
        return stored.cloned().map(SecretValue::Keep).ok_or_else(|| {
            at(
                "client_secret",
                format!(
                    "has the masked value {MASK:?} but no stored secret to keep; send the secret"
                ),
            )
        });
    }
    if value.is_empty() {
        return Err(at(
            "client_secret",
            "is required with client_secret_basic and client_secret_post",
        ));
    }
    if value.len() > MAX_SECRET {
        return Err(at("client_secret", "must be at most 4096 characters"));
    }
    Ok(SecretValue::New(value))
}

fn private_key(value: Option<String>, stored: Option<&Sealed>) -> Result<SecretValue, FieldError> {
    let value = value.unwrap_or_default();
    if value == MASK {
        return stored.cloned().map(SecretValue::Keep).ok_or_else(|| {
            at(
                "private_key",
                format!(
                    "has the masked value {MASK:?} but no stored key to keep; send the PEM key"
                ),
            )
        });
    }
    if value.trim().is_empty() {
        return Err(at(
            "private_key",
            "is required with private_key_jwt: the PEM signing key (RSA of at least 2048 bits, or EC P-384)",
        ));
    }
    if value.len() > MAX_PEM {
        return Err(at("private_key", "must be at most 64 KiB of PEM"));
    }
    client_assertion::key_alg(&value).map_err(|m| at("private_key", m))?;
    Ok(SecretValue::New(value))
}
