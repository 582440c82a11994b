//! How tidings proves itself to a receiver beyond the signature (SPEC §12): `webhook.auth`.
//! The stored form (`ReceiverAuth`, write-only values sealed), the admin's input and its
//! validation, and the shape the API shows (write-only values masked).

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::MASK;
use super::input::{FieldError, SecretValue};
use crate::domain::time::to_rfc3339;
use crate::security::client_cert::{self, CertProblem};
use crate::security::crypto::Sealed;
use crate::security::ssrf::AddressPolicy;

/// Certificates and keys are a few KiB; a bound keeps a pasted file from bloating every row.
const MAX_PEM_BYTES: usize = 64 * 1024;

/// How a rule authenticates to its receiver; `S` is a write-only value as stored (`Sealed`)
/// or as validated (`SecretValue`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ReceiverAuth<S = Sealed> {
    /// The signature (and any secret headers) is all the receiver checks.
    None,
    /// A TLS client certificate, presented when the receiver asks for one.
    Mtls {
        /// PEM, leaf first.
        client_cert: String,
        client_key: S,
        /// The leaf's notAfter, Unix ms, read when it was saved.
        client_cert_expires_at: i64,
    },
    /// An OAuth 2 access token from the receiver's token URL (RFC 6749 §4.4), sent as
    /// `Authorization: Bearer`.
    #[serde(rename = "oauth2_client_credentials")]
    OAuth2 {
        token_url: String,
        client_id: String,
        /// For the two secret methods; `None` with `private_key_jwt`.
        client_secret: Option<S>,
        scope: Option<String>,
        audience: Option<String>,
        client_auth: ClientAuth,
        /// The PEM signing key of `private_key_jwt`.
        private_key: Option<S>,
    },
}

/// How the client proves itself to the token URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuth {
    /// HTTP Basic with the client id and secret (RFC 6749 §2.3.1).
    ClientSecretBasic,
    /// The client id and secret as form fields.
    ClientSecretPost,
    /// A JWT signed with the client's private key (RFC 7523).
    PrivateKeyJwt,
}

impl ClientAuth {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ClientSecretBasic => "client_secret_basic",
            Self::ClientSecretPost => "client_secret_post",
            Self::PrivateKeyJwt => "private_key_jwt",
        }
    }

    pub(super) fn parse(s: &str) -> Option<Self> {
        [
            Self::ClientSecretBasic,
            Self::ClientSecretPost,
            Self::PrivateKeyJwt,
        ]
        .into_iter()
        .find(|m| m.as_str() == s)
    }
}

// Written out so no `S: Default` bound is needed (`Sealed` has no default).
#[allow(clippy::derivable_impls)]
impl<S> Default for ReceiverAuth<S> {
    fn default() -> Self {
        Self::None
    }
}

impl<S> ReceiverAuth<S> {
    /// The same auth with each write-only value turned into another form; `f` gets the
    /// field's path (`webhook.auth.client_key`).
    pub fn map_secrets<T>(self, mut f: impl FnMut(&str, S) -> T) -> ReceiverAuth<T> {
        match self {
            Self::None => ReceiverAuth::None,
            Self::Mtls {
                client_cert,
                client_key,
                client_cert_expires_at,
            } => ReceiverAuth::Mtls {
                client_cert,
                client_key: f("webhook.auth.client_key", client_key),
                client_cert_expires_at,
            },
            Self::OAuth2 {
                token_url,
                client_id,
                client_secret,
                scope,
                audience,
                client_auth,
                private_key,
            } => ReceiverAuth::OAuth2 {
                token_url,
                client_id,
                client_secret: client_secret.map(|v| f("webhook.auth.client_secret", v)),
                scope,
                audience,
                client_auth,
                private_key: private_key.map(|v| f("webhook.auth.private_key", v)),
            },
        }
    }

    /// When the client certificate stops being valid, if the rule has one.
    pub fn client_cert_expires_at(&self) -> Option<i64> {
        match self {
            Self::Mtls {
                client_cert_expires_at,
                ..
            } => Some(*client_cert_expires_at),
            Self::None | Self::OAuth2 { .. } => None,
        }
    }

    /// The API's form: write-only values masked, the expiry as RFC 3339.
    pub fn shown(&self) -> Value {
        match self {
            Self::None => json!({"type": "none"}),
            Self::Mtls {
                client_cert,
                client_cert_expires_at,
                ..
            } => json!({
                "type": "mtls",
                "client_cert": client_cert,
                "client_key": MASK,
                "client_cert_expires_at": to_rfc3339(*client_cert_expires_at),
            }),
            Self::OAuth2 {
                token_url,
                client_id,
                client_secret,
                scope,
                audience,
                client_auth,
                private_key,
            } => {
                let mut shown = json!({
                    "type": "oauth2_client_credentials",
                    "token_url": token_url,
                    "client_id": client_id,
                    "client_auth": client_auth.as_str(),
                });
                let optional = [
                    ("client_secret", client_secret.as_ref().map(|_| MASK)),
                    ("scope", scope.as_deref()),
                    ("audience", audience.as_deref()),
                    ("private_key", private_key.as_ref().map(|_| MASK)),
                ];
                for (name, value) in optional {
                    if let Some(value) = value {
                        shown[name] = json!(value);
                    }
                }
                shown
            }
        }
    }
}

/// `webhook.auth` as an admin writes it: read as one struct, so each error names its field.
/// Read-only `client_cert_expires_at` is accepted and ignored (a fetched rule can be sent
/// back).
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AuthInput {
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub client_cert: Option<String>,
    pub client_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_cert_expires_at: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_auth: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_key: Option<String>,
}

impl AuthInput {
    /// Whether any OAuth 2 field was given.
    fn has_oauth_fields(&self) -> bool {
        [
            &self.token_url,
            &self.client_id,
            &self.client_secret,
            &self.scope,
            &self.audience,
            &self.client_auth,
            &self.private_key,
        ]
        .iter()
        .any(|f| f.is_some())
    }
}

/// `webhook.auth` as the API documents it.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
#[schema(as = AuthInput)]
// Only a schema for the document: never built.
#[allow(dead_code)]
pub enum AuthInputDoc {
    /// No authentication beyond the signature (the default).
    None,
    /// Present a TLS client certificate (the receiver checks a certificate).
    Mtls {
        /// The certificate chain in PEM, leaf first; checked on save (parses, not expired).
        #[schema(min_length = 1, max_length = 65536)]
        client_cert: String,
        /// The leaf's private key in PEM (PKCS#8, RSA or EC), unencrypted; write-only:
        /// `********` keeps the stored key while the certificate is unchanged.
        #[schema(min_length = 1, max_length = 65536)]
        client_key: String,
        /// Read-only: ignored when sent back.
        #[schema(value_type = Option<String>, format = DateTime)]
        client_cert_expires_at: Option<Value>,
    },
    /// Fetch an OAuth 2 access token (client credentials grant) and send it as
    /// `Authorization: Bearer` (the receiver wants a login token).
    #[serde(rename = "oauth2_client_credentials")]
    OAuth2 {
        /// The token endpoint; `https://` outside development mode, and the network policy
        /// applies to it as to webhook URLs.
        #[schema(min_length = 1, max_length = 2048)]
        token_url: String,
        #[schema(min_length = 1, max_length = 512)]
        client_id: String,
        /// Required with `client_secret_basic` and `client_secret_post`; write-only:
        /// `********` keeps the stored secret.
        #[schema(max_length = 4096)]
        client_secret: Option<String>,
        /// Space-separated scopes to ask for.
        #[schema(max_length = 2048)]
        scope: Option<String>,
        /// An `audience` form field, for token servers that want one.
        #[schema(max_length = 2048)]
        audience: Option<String>,
        /// How tidings proves itself to the token URL.
        #[schema(value_type = ClientAuthDoc)]
        client_auth: String,
        /// `private_key_jwt`'s signing key in PEM: RSA of at least 2048 bits (RS384) or EC
        /// P-384 (ES384), unencrypted; write-only: `********` keeps the stored key.
        #[schema(max_length = 65536)]
        private_key: Option<String>,
    },
}

/// How tidings authenticates to the token URL.
#[derive(utoipa::ToSchema)]
#[schema(as = ClientAuth)]
#[allow(dead_code)]
pub enum ClientAuthDoc {
    #[schema(rename = "client_secret_basic")]
    ClientSecretBasic,
    #[schema(rename = "client_secret_post")]
    ClientSecretPost,
    #[schema(rename = "private_key_jwt")]
    PrivateKeyJwt,
}

const KINDS: &str = "\"none\", \"mtls\" or \"oauth2_client_credentials\"";

pub(super) fn at(field: &str, message: impl Into<String>) -> FieldError {
    FieldError::new(format!("webhook.auth.{field}"), message)
}

/// Checks `webhook.auth`; `existing` is the stored rule's, whose write-only values a masked
/// input keeps. Expiry is not judged here (no clock): see `ReceiverAuth::client_cert_expires_at`.
pub fn validate_auth(
    input: Option<AuthInput>,
    existing: Option<&ReceiverAuth>,
    policy: &AddressPolicy,
) -> Result<ReceiverAuth<SecretValue>, FieldError> {
    let Some(input) = input else {
        return Ok(ReceiverAuth::None);
    };
    match input.kind.as_deref() {
        None => Err(at("type", format!("is required: {KINDS}"))),
        Some("none") => {
            if input.client_cert.is_some() || input.client_key.is_some() || input.has_oauth_fields()
            {
                return Err(at(
                    "type",
                    "is \"none\", which takes no certificate, key or token settings",
                ));
            }
            Ok(ReceiverAuth::None)
        }
        Some("mtls") => {
            if input.has_oauth_fields() {
                return Err(at("type", "is \"mtls\", which takes no token settings"));
            }
            validate_mtls(input, existing)
        }
        Some("oauth2_client_credentials") => {
            if input.client_cert.is_some() || input.client_key.is_some() {
                return Err(at(
                    "type",
                    "is \"oauth2_client_credentials\", which takes no client certificate",
                ));
            }
            super::oauth::validate_oauth2(input, existing, policy)
        }
        Some(other) => Err(at("type", format!("must be one of {KINDS}, not {other:?}"))),
    }
}

fn validate_mtls(
    input: AuthInput,
    existing: Option<&ReceiverAuth>,
) -> Result<ReceiverAuth<SecretValue>, FieldError> {
    let cert = input.client_cert.unwrap_or_default().trim().to_owned();
    if cert.is_empty() {
        return Err(at(
            "client_cert",
            "is required with mtls: the PEM certificate chain, leaf first",
        ));
    }
    if cert.len() > MAX_PEM_BYTES {
        return Err(at("client_cert", "must be at most 64 KiB of PEM"));
    }
    let key = input.client_key.unwrap_or_default();
    let stored = match existing {
        Some(ReceiverAuth::Mtls {
            client_cert,
            client_key,
            ..
        }) => Some((client_cert.as_str(), client_key)),
        _ => None,
    };
    let on_field = |p: CertProblem| match p {
        CertProblem::Certificate(m) => at("client_cert", m),
        CertProblem::Key(m) => at("client_key", m),
    };
    if key == MASK {
        let Some((stored_cert, stored_key)) = stored else {
            return Err(at(
                "client_key",
                format!(
                    "has the masked value {MASK:?} but no stored key to keep; send the PEM key"
                ),
            ));
        };
        if stored_cert != cert {
            return Err(at(
                "client_key",
                "must be sent again with a new certificate: the stored key belongs to the previous one",
            ));
        }
        let chain = client_cert::read_chain(&cert).map_err(on_field)?;
        let info = client_cert::describe(&chain).map_err(on_field)?;
        return Ok(ReceiverAuth::Mtls {
            client_cert: cert,
            client_key: SecretValue::Keep(stored_key.clone()),
            client_cert_expires_at: info.expires_at_ms,
        });
    }
    if key.trim().is_empty() {
        return Err(at(
            "client_key",
            "is required with mtls: the certificate's private key in PEM",
        ));
    }
    if key.len() > MAX_PEM_BYTES {
        return Err(at("client_key", "must be at most 64 KiB of PEM"));
    }
    let info = client_cert::inspect(&cert, &key).map_err(on_field)?;
    Ok(ReceiverAuth::Mtls {
        client_cert: cert,
        client_key: SecretValue::New(key),
        client_cert_expires_at: info.expires_at_ms,
    })
}
