//! The ureq agents that present a rule's TLS client certificate (mTLS). ureq sets TLS per
//! agent, so each client identity gets agents of its own, made on first use and kept per
//! rule for connection reuse; a changed certificate or key (another sealed value) replaces
//! them. One `ClientAgents` belongs to one transport copy (one worker).

use std::collections::HashMap;
use std::sync::Mutex;

use ureq::Agent;
use ureq::tls::{Certificate, ClientCert, PrivateKey};

use crate::domain::ids::RuleId;
use crate::security::client_cert;
use crate::security::crypto::{MasterKey, Sealed};

/// Rules with client certificates a worker keeps agents for; past this the map starts over
/// (agents are cheap to make again, and a worker rarely serves this many mTLS rules).
const MAX_IDENTITIES: usize = 256;

/// One rule's client identity, as stored: what its agents were made from.
#[derive(PartialEq, Eq)]
struct Made {
    cert: String,
    key: Sealed,
    verify: bool,
}

#[derive(Default)]
pub struct ClientAgents {
    by_rule: Mutex<HashMap<RuleId, (Made, Agent)>>,
}

impl ClientAgents {
    /// The agent presenting this certificate, made with `make` (given the TLS client
    /// identity) if there is none yet for exactly this certificate, key and verify setting.
    pub fn get(
        &self,
        rule: &RuleId,
        cert: &str,
        sealed_key: &Sealed,
        verify: bool,
        master_key: &MasterKey,
        make: impl FnOnce(ClientCert, bool) -> Agent,
    ) -> Result<Agent, String> {
        let wanted = Made {
            cert: cert.to_owned(),
            key: sealed_key.clone(),
            verify,
        };
        let mut map = self
            .by_rule
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((made, agent)) = map.get(rule)
            && *made == wanted
        {
            return Ok(agent.clone());
        }
        let identity = identity(cert, sealed_key, master_key)?;
        let agent = make(identity, verify);
        if map.len() >= MAX_IDENTITIES {
            map.clear();
        }
        map.insert(rule.clone(), (wanted, agent.clone()));
        Ok(agent)
    }
}

/// The certificate chain and opened key in ureq's form. Both were checked when the rule was
/// saved, so a failure here means damaged data or a wrong master key.
fn identity(cert: &str, sealed_key: &Sealed, master_key: &MasterKey) -> Result<ClientCert, String> {
    let chain: Vec<Certificate<'static>> = client_cert::read_chain(cert)
        .map_err(|e| format!("the rule's client certificate cannot be read: {e}"))?
        .iter()
        .map(|der| Certificate::from_der(der.as_ref()).to_owned())
        .collect();
    let plain = master_key
        .open(sealed_key)
        .map_err(|e| format!("the rule's client key cannot be opened: {e}"))?;
    let key = PrivateKey::from_pem(plain.expose().as_bytes())
        .map_err(|e| format!("the rule's client key cannot be read: {e}"))?;
    Ok(ClientCert::new_with_certs(&chain, key))
}
