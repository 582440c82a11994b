//! TLS client identities (mTLS, SPEC §12): reading an admin's PEM certificate chain and key,
//! and the checks made before one is saved — every certificate parses, the key is one rustls
//! can sign with, and it belongs to the first (leaf) certificate. The leaf's expiry is
//! reported for the rule to show; whether it has passed is judged by the caller's clock.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// What a saved client certificate tells about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// The leaf's notAfter, Unix milliseconds.
    pub expires_at_ms: i64,
    /// The leaf's subject, for people (`CN=tidings-client`).
    pub subject: String,
}

/// Why a certificate or key cannot be used, and which of the two is at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertProblem {
    #[error("{0}")]
    Certificate(String),
    #[error("{0}")]
    Key(String),
}

/// The certificates of a PEM chain, leaf first.
pub fn read_chain(pem: &str) -> Result<Vec<CertificateDer<'static>>, CertProblem> {
    let chain = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| CertProblem::Certificate(format!("is not valid PEM ({e})")))?;
    if chain.is_empty() {
        return Err(CertProblem::Certificate(
            "holds no certificate: paste the PEM text from -----BEGIN CERTIFICATE----- on, leaf first"
                .into(),
        ));
    }
    Ok(chain)
}

/// The private key of a PEM block (PKCS#8, PKCS#1 RSA or SEC1 EC), unencrypted.
pub fn read_key(pem: &str) -> Result<PrivateKeyDer<'static>, CertProblem> {
    if pem.contains("ENCRYPTED PRIVATE KEY") {
        return Err(CertProblem::Key(
            "is encrypted with a passphrase; give it unencrypted (it is sealed at rest here), e.g. `openssl pkey -in key.pem -out plain.pem`".into(),
        ));
    }
    PrivateKeyDer::from_pem_slice(pem.as_bytes()).map_err(|_| {
        CertProblem::Key(
            "is not a PEM private key: paste the text from -----BEGIN PRIVATE KEY----- (or RSA/EC PRIVATE KEY) on".into(),
        )
    })
}

/// Checks a chain and its key, as a save does; answers what the leaf says about itself.
pub fn inspect(cert_pem: &str, key_pem: &str) -> Result<CertInfo, CertProblem> {
    let chain = read_chain(cert_pem)?;
    let info = describe(&chain)?;
    let key = read_key(key_pem)?;
    let provider = rustls::crypto::ring::default_provider();
    rustls::sign::CertifiedKey::from_der(chain, key, &provider).map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => CertProblem::Key(
            "does not belong to the certificate (its public key is not the certificate's)".into(),
        ),
        other => CertProblem::Key(format!("cannot be used for TLS ({other})")),
    })?;
    Ok(info)
}

/// Every certificate must parse as X.509; the leaf's validity is what the rule shows.
pub fn describe(chain: &[CertificateDer<'_>]) -> Result<CertInfo, CertProblem> {
    let mut leaf = None;
    for (i, der) in chain.iter().enumerate() {
        let (_, cert) = x509_parser::parse_x509_certificate(der).map_err(|e| {
            CertProblem::Certificate(format!(
                "certificate {} of the chain is not a valid X.509 certificate ({e})",
                i + 1
            ))
        })?;
        if i == 0 {
            leaf = Some(CertInfo {
                expires_at_ms: cert.validity().not_after.timestamp().saturating_mul(1000),
                subject: cert.subject().to_string(),
            });
        }
    }
    leaf.ok_or_else(|| CertProblem::Certificate("holds no certificate".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(days: i64) -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["client.test".into()]).unwrap();
        params.not_after = time::OffsetDateTime::now_utc() + time::Duration::days(days);
        params.not_before = time::OffsetDateTime::now_utc() - time::Duration::days(400);
        let cert = params.self_signed(&key).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    #[test]
    fn a_matching_pair_is_accepted_with_its_expiry() {
        let (cert, key) = pair(30);
        let info = inspect(&cert, &key).unwrap();
        let in_30_days =
            (time::OffsetDateTime::now_utc() + time::Duration::days(30)).unix_timestamp() * 1000;
        assert!(
            (info.expires_at_ms - in_30_days).abs() < 120_000,
            "{info:?}"
        );
    }

    #[test]
    fn each_problem_names_its_side() {
        let (cert, key) = pair(30);
        let (_, other_key) = pair(30);
        assert!(
            matches!(inspect(&cert, &other_key), Err(CertProblem::Key(m)) if m.contains("does not belong"))
        );
        assert!(
            matches!(inspect("hello", &key), Err(CertProblem::Certificate(m)) if m.contains("no certificate"))
        );
        let garbled = cert.replace(&cert[40..60], "AAAAAAAAAAAAAAAAAAAA");
        assert!(matches!(
            inspect(&garbled, &key),
            Err(CertProblem::Certificate(_))
        ));
        assert!(
            matches!(inspect(&cert, "nope"), Err(CertProblem::Key(m)) if m.contains("not a PEM private key"))
        );
        assert!(matches!(inspect(&cert, &cert), Err(CertProblem::Key(_))));
    }
}
