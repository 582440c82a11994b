//! OAuth 2 `private_key_jwt` client authentication (RFC 7523, as SMART Backend Services use
//! it): checking an admin's signing key before it is saved (RSA of at least 2048 bits, or EC
//! P-384, in PEM) and signing the short-lived JWT a token request carries.

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use ring::signature::{ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair, RsaKeyPair};
use rustls::pki_types::PrivateKeyDer;
use rustls::pki_types::pem::PemObject;
use serde::Serialize;

/// The `client_assertion_type` of a JWT client assertion (RFC 7523 §2.2).
pub const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// How long an assertion is valid: SMART asks for no more than five minutes.
const LIFETIME_SECS: i64 = 300;

/// RSA keys below this size are refused (SMART Backend Services, NIST SP 800-131A).
const MIN_RSA_BITS: usize = 2048;

/// The JWS algorithm a key signs with, decided by the key itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyAlg {
    Rs384,
    Es384,
}

/// Reads a PEM private key and says which algorithm it signs with, or why it cannot be used.
pub fn key_alg(pem: &str) -> Result<KeyAlg, String> {
    if pem.contains("ENCRYPTED PRIVATE KEY") {
        return Err("is encrypted with a passphrase; give it unencrypted (it is sealed at rest here), e.g. `openssl pkey -in key.pem -out plain.pem`".into());
    }
    let der = PrivateKeyDer::from_pem_slice(pem.as_bytes()).map_err(|_| {
        "is not a PEM private key: paste the text from -----BEGIN PRIVATE KEY----- on".to_owned()
    })?;
    let rsa = match &der {
        PrivateKeyDer::Pkcs1(k) => Some(RsaKeyPair::from_der(k.secret_pkcs1_der())),
        PrivateKeyDer::Pkcs8(k) => Some(RsaKeyPair::from_pkcs8(k.secret_pkcs8_der())),
        _ => None,
    };
    // ring itself refuses RSA keys under 2048 bits, and says so ("TooSmall").
    if let Some(Err(rejected)) = &rsa
        && rejected.to_string() == "TooSmall"
    {
        return Err(format!(
            "is an RSA key shorter than {MIN_RSA_BITS} bits; at least {MIN_RSA_BITS} are required"
        ));
    }
    if let Some(Ok(rsa)) = rsa {
        let bits = rsa.public().modulus_len() * 8;
        if bits < MIN_RSA_BITS {
            return Err(format!(
                "is an RSA key of {bits} bits; at least {MIN_RSA_BITS} are required"
            ));
        }
        return Ok(KeyAlg::Rs384);
    }
    match &der {
        PrivateKeyDer::Pkcs8(k) => {
            let rng = ring::rand::SystemRandom::new();
            EcdsaKeyPair::from_pkcs8(&ECDSA_P384_SHA384_FIXED_SIGNING, k.secret_pkcs8_der(), &rng)
                .map(|_| KeyAlg::Es384)
                .map_err(|_| {
                    "must be an RSA key (at least 2048 bits, for RS384) or an EC P-384 key (for ES384)"
                        .to_owned()
                })
        }
        PrivateKeyDer::Sec1(_) => Err(
            "is an EC key in SEC1 form; give it as PKCS#8 (-----BEGIN PRIVATE KEY-----), e.g. `openssl pkcs8 -topk8 -nocrypt -in ec.pem`".into(),
        ),
        _ => Err(
            "must be an RSA key (at least 2048 bits, for RS384) or an EC P-384 key (for ES384)"
                .into(),
        ),
    }
}

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    jti: String,
    iat: i64,
    exp: i64,
}

/// A signed assertion for one token request: iss = sub = the client id, aud = the token URL,
/// a fresh random jti (servers refuse a replayed one), valid for five minutes from `now_secs`.
pub fn sign(pem: &str, client_id: &str, token_url: &str, now_secs: i64) -> Result<String, String> {
    let alg = key_alg(pem)?;
    let (algorithm, key) = match alg {
        KeyAlg::Rs384 => (Algorithm::RS384, EncodingKey::from_rsa_pem(pem.as_bytes())),
        KeyAlg::Es384 => (Algorithm::ES384, EncodingKey::from_ec_pem(pem.as_bytes())),
    };
    let key = key.map_err(|e| format!("the signing key cannot be read: {e}"))?;
    let claims = Claims {
        iss: client_id,
        sub: client_id,
        aud: token_url,
        jti: hex::encode(rand::random::<[u8; 16]>()),
        iat: now_secs,
        exp: now_secs + LIFETIME_SECS,
    };
    let mut header = Header::new(algorithm);
    header.typ = Some("JWT".into());
    jsonwebtoken::encode(&header, &claims, &key)
        .map_err(|e| format!("the client assertion cannot be signed: {e}"))
}

#[cfg(test)]
mod tests {
    use base64::Engine;

    use super::*;

    fn p384() -> String {
        rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384)
            .unwrap()
            .serialize_pem()
    }

    #[test]
    fn a_p384_key_signs_es384_and_a_p256_key_is_refused() {
        assert_eq!(key_alg(&p384()), Ok(KeyAlg::Es384));
        let p256 = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
            .unwrap()
            .serialize_pem();
        assert!(key_alg(&p256).unwrap_err().contains("P-384"));
        assert!(key_alg("not a key").unwrap_err().contains("PEM"));
    }

    #[test]
    fn an_assertion_carries_the_rfc_7523_claims_and_verifies() {
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
        let jwt = sign(
            &pair.serialize_pem(),
            "cid",
            "https://t.example/token",
            1000,
        )
        .unwrap();
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3);
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let header: serde_json::Value =
            serde_json::from_slice(&b64.decode(parts[0]).unwrap()).unwrap();
        assert_eq!(header["alg"], "ES384");
        let claims: serde_json::Value =
            serde_json::from_slice(&b64.decode(parts[1]).unwrap()).unwrap();
        assert_eq!(claims["iss"], "cid");
        assert_eq!(claims["sub"], "cid");
        assert_eq!(claims["aud"], "https://t.example/token");
        assert_eq!(claims["exp"], 1300);
        let signature = b64.decode(parts[2]).unwrap();
        ring::signature::UnparsedPublicKey::new(
            &ring::signature::ECDSA_P384_SHA384_FIXED,
            pair.public_key_raw(),
        )
        .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &signature)
        .unwrap();
        let again = sign(
            &pair.serialize_pem(),
            "cid",
            "https://t.example/token",
            1000,
        )
        .unwrap();
        assert_ne!(jwt, again, "each assertion has its own jti");
    }
}
