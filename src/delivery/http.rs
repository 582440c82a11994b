//! The HTTP transport, over ureq: redirects off, no environment proxy (it would bypass the
//! address check), every name resolved and vetted by `VettingResolver`, per-request timeouts,
//! a rule's TLS client certificate when it has one, and a plain classification of what went
//! wrong.

use std::io::Read;
use std::sync::Arc;
use std::time::Instant;

use ureq::Agent;
use ureq::tls::{ClientCert, RootCerts, TlsConfig};
use ureq::unversioned::transport::{Connector, RustlsConnector, TcpConnector};

use crate::delivery::attempt::{PreparedRequest, user_agent};
use crate::delivery::client_agents::ClientAgents;
use crate::delivery::oauth_token::{Fetcher, OAuth2, TokenCache};
use crate::delivery::one_write::OneWriteConnector;
use crate::delivery::transport::{
    Failure, RESPONSE_LOG_LIMIT, Received, SendOptions, Sent, Transport,
};
use crate::domain::delivery::ErrorKind;
use crate::domain::rule::ReceiverAuth;
use crate::security::crypto::MasterKey;
use crate::security::ssrf::{AddressPolicy, VettingResolver, blocked_by_policy};

/// Per-connection I/O buffer size (each way).
const BUFFER_SIZE: usize = 32 * 1024;

/// Two agents, because certificate checking is an agent-wide setting in ureq and a rule may
/// turn it off, plus agents per client certificate (`ClientAgents`). Each keeps its own
/// keep-alive pool; `for_worker` makes a new set.
pub struct HttpTransport {
    policy: Arc<AddressPolicy>,
    /// Opens the rules' sealed client keys.
    master_key: MasterKey,
    verified: Agent,
    unverified: Agent,
    client_agents: ClientAgents,
    /// OAuth 2 tokens, one cache for all worker copies (a token is good for all of them).
    tokens: Arc<TokenCache>,
}

impl HttpTransport {
    pub fn new(policy: &Arc<AddressPolicy>, master_key: MasterKey) -> Self {
        Self::with_tokens(policy, master_key, Arc::default())
    }

    fn with_tokens(
        policy: &Arc<AddressPolicy>,
        master_key: MasterKey,
        tokens: Arc<TokenCache>,
    ) -> Self {
        Self {
            policy: Arc::clone(policy),
            master_key,
            verified: agent(policy, true, None),
            unverified: agent(policy, false, None),
            client_agents: ClientAgents::default(),
            tokens,
        }
    }

    /// Sends with the rule's OAuth 2 token; a 401 fetches a new token once and sends again,
    /// and only that second answer is reported.
    fn send_with_token(
        &self,
        agent: &Agent,
        settings: &OAuth2<'_>,
        request: &PreparedRequest,
        options: &SendOptions<'_>,
    ) -> Result<Received, Failure> {
        let fetcher = Fetcher {
            agent,
            policy: &self.policy,
            master_key: &self.master_key,
            timeout: options.timeout,
        };
        let no_token = |message| Failure {
            kind: ErrorKind::Auth,
            message,
        };
        let token = self
            .tokens
            .token(options.rule_id, settings, None, &fetcher)
            .map_err(no_token)?;
        let first = send_with(agent, request, options, Some(&token))?;
        if first.status != 401 {
            return Ok(first);
        }
        let renewed = self
            .tokens
            .token(options.rule_id, settings, Some(&token), &fetcher)
            .map_err(no_token)?;
        send_with(agent, request, options, Some(&renewed))
    }

    /// The agent for a rule: its own when it presents a client certificate.
    fn agent_for(&self, options: &SendOptions<'_>) -> Result<Agent, Failure> {
        match options.auth {
            ReceiverAuth::Mtls {
                client_cert,
                client_key,
                ..
            } => self
                .client_agents
                .get(
                    options.rule_id,
                    client_cert,
                    client_key,
                    options.tls_verify,
                    &self.master_key,
                    |identity, verify| agent(&self.policy, verify, Some(identity)),
                )
                .map_err(|message| Failure {
                    kind: ErrorKind::Tls,
                    message,
                }),
            ReceiverAuth::None | ReceiverAuth::OAuth2 { .. } if options.tls_verify => {
                Ok(self.verified.clone())
            }
            ReceiverAuth::None | ReceiverAuth::OAuth2 { .. } => Ok(self.unverified.clone()),
        }
    }
}

impl Transport for HttpTransport {
    fn send(&self, request: &PreparedRequest, options: &SendOptions<'_>) -> Sent {
        let started = Instant::now();
        let result = self
            .agent_for(options)
            .and_then(|agent| match OAuth2::of(options.auth) {
                Some(settings) => self.send_with_token(&agent, &settings, request, options),
                None => send_with(&agent, request, options, None),
            });
        Sent {
            result,
            elapsed: started.elapsed(),
        }
    }

    fn for_worker(&self) -> Box<dyn Transport> {
        Box::new(Self::with_tokens(
            &self.policy,
            self.master_key.clone(),
            Arc::clone(&self.tokens),
        ))
    }
}

fn agent(policy: &Arc<AddressPolicy>, verify: bool, client: Option<ClientCert>) -> Agent {
    let tls = TlsConfig::builder()
        .root_certs(RootCerts::PlatformVerifier)
        .disable_verification(!verify)
        .client_cert(client)
        .build();
    let config = Agent::config_builder()
        .max_redirects(0)
        .http_status_as_error(false)
        .proxy(None)
        .user_agent(user_agent())
        .tls_config(tls)
        .max_idle_connections(256)
        .max_idle_connections_per_host(64)
        // ureq's 128 KiB defaults cost 256 KiB per pooled connection; webhook answers are
        // small, and a response header block larger than this is refused as malformed.
        .input_buffer_size(BUFFER_SIZE)
        .output_buffer_size(BUFFER_SIZE)
        .max_response_header_size(BUFFER_SIZE)
        .build();
    // ureq's default chain minus the proxy steps (proxies are off), with `OneWriteConnector`
    // on top so a request leaves in one write.
    let connector =
        ().chain(TcpConnector::default())
            .chain(RustlsConnector::default())
            .chain(OneWriteConnector);
    Agent::with_parts(config, connector, VettingResolver::new(Arc::clone(policy)))
}

/// `bearer` is the OAuth 2 token, which takes the place of the masked `Authorization`
/// header `prepare` put in the request.
fn send_with(
    agent: &Agent,
    req: &PreparedRequest,
    options: &SendOptions<'_>,
    bearer: Option<&str>,
) -> Result<Received, Failure> {
    let mut builder = match req.method {
        "PUT" => agent.put(req.url.as_str()),
        "PATCH" => agent.patch(req.url.as_str()),
        _ => agent.post(req.url.as_str()),
    };
    for (name, value) in &req.headers {
        if bearer.is_some() && name.eq_ignore_ascii_case("authorization") {
            continue;
        }
        builder = builder.header(name.as_str(), value.as_str());
    }
    if let Some(token) = bearer {
        builder = builder.header("Authorization", format!("Bearer {token}"));
    }
    let mut response = builder
        .config()
        .timeout_global(Some(options.timeout))
        .build()
        .send(&req.body[..])
        .map_err(|e| classify(&e))?;
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    // Read one byte past the limit to know whether the body was cut.
    let mut body = Vec::new();
    let limit = u64::try_from(RESPONSE_LOG_LIMIT).unwrap_or(u64::MAX) + 1;
    let read = response
        .body_mut()
        .as_reader()
        .take(limit)
        .read_to_end(&mut body);
    if let Err(e) = read {
        // The status already arrived; a body cut off mid-way is logged, not a failure.
        tracing::debug!(error = %e, "response body could not be read in full");
    }
    let truncated = body.len() > RESPONSE_LOG_LIMIT;
    body.truncate(RESPONSE_LOG_LIMIT);
    Ok(Received {
        status,
        headers,
        body,
        truncated,
    })
}

/// Maps ureq's errors onto the attempt error kinds admins see.
fn classify(err: &ureq::Error) -> Failure {
    if let Some(blocked) = blocked_by_policy(err) {
        return Failure {
            kind: ErrorKind::SsrfBlocked,
            message: blocked.to_string(),
        };
    }
    let kind = match err {
        ureq::Error::Timeout(_) => ErrorKind::Timeout,
        ureq::Error::HostNotFound => ErrorKind::Dns,
        ureq::Error::Tls(_) | ureq::Error::Rustls(_) | ureq::Error::Pem(_) => ErrorKind::Tls,
        ureq::Error::Io(io) if looks_like_tls(io) => ErrorKind::Tls,
        ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::TimedOut => ErrorKind::Timeout,
        _ => ErrorKind::Connect,
    };
    Failure {
        kind,
        message: err.to_string(),
    }
}

/// rustls reports handshake failures (bad certificate, unknown CA) as `InvalidData` I/O errors.
fn looks_like_tls(io: &std::io::Error) -> bool {
    io.kind() == std::io::ErrorKind::InvalidData
        || io.to_string().to_ascii_lowercase().contains("certificate")
}
