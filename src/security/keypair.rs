//! ed25519 key pairs for Standard Webhooks `v1a` signatures: generation, the `whsk_` (private
//! seed) and `whpk_` (public key) text forms, signing and checking. ring does the curve
//! arithmetic; this module only owns the formats, so signing and `tidings verify` agree.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};

use super::crypto::Secret;

const PRIVATE_PREFIX: &str = "whsk_";
const PUBLIC_PREFIX: &str = "whpk_";

/// A new key pair: the private key as `whsk_<base64 of the 32-byte seed>` (to be sealed) and
/// the public key as `whpk_<base64 of its 32 bytes>`.
pub fn generate() -> (Secret, String) {
    let seed = rand::random::<[u8; 32]>();
    let pair = Ed25519KeyPair::from_seed_unchecked(&seed)
        .expect("every 32-byte seed is a valid ed25519 private key");
    (
        Secret::new(format!("{PRIVATE_PREFIX}{}", B64.encode(seed))),
        public_text(&pair),
    )
}

fn public_text(pair: &Ed25519KeyPair) -> String {
    format!("{PUBLIC_PREFIX}{}", B64.encode(pair.public_key().as_ref()))
}

/// Why a key's text form is unusable.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    #[error("a private key is whsk_ followed by 32 bytes in standard base64")]
    Private,
    #[error(
        "a public key is whpk_ followed by 32 bytes in standard base64 (as GET /api/v1/rules/{{id}}/secret shows it)"
    )]
    Public,
}

fn pair_of(private: &str) -> Result<Ed25519KeyPair, KeyError> {
    let seed = private
        .strip_prefix(PRIVATE_PREFIX)
        .and_then(|b| B64.decode(b).ok())
        .filter(|s| s.len() == 32)
        .ok_or(KeyError::Private)?;
    Ed25519KeyPair::from_seed_unchecked(&seed).map_err(|_| KeyError::Private)
}

/// The public key (`whpk_…`) of a private key (`whsk_…`).
pub fn public_of(private: &str) -> Result<String, KeyError> {
    pair_of(private).map(|p| public_text(&p))
}

/// The 64-byte signature of `parts` (concatenated) by `private`, in standard base64.
pub fn sign(private: &str, parts: &[&[u8]]) -> Result<String, KeyError> {
    let pair = pair_of(private)?;
    Ok(B64.encode(pair.sign(&parts.concat()).as_ref()))
}

/// The raw 32 bytes of a `whpk_` public key.
pub fn parse_public(public: &str) -> Result<Vec<u8>, KeyError> {
    public
        .trim()
        .strip_prefix(PUBLIC_PREFIX)
        .and_then(|b| B64.decode(b).ok())
        .filter(|k| k.len() == 32)
        .ok_or(KeyError::Public)
}

/// Whether `signature_b64` is `public`'s signature of `message`.
pub fn verifies(public: &[u8], message: &[u8], signature_b64: &str) -> bool {
    B64.decode(signature_b64).is_ok_and(|sig| {
        UnparsedPublicKey::new(&ED25519, public)
            .verify(message, &sig)
            .is_ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 8032 §7.1, test 1: the empty message.
    #[test]
    fn signs_as_rfc_8032_says() {
        let seed = hex::decode("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
            .unwrap();
        let private = format!("whsk_{}", B64.encode(&seed));
        let public = public_of(&private).unwrap();
        assert_eq!(
            hex::encode(parse_public(&public).unwrap()),
            "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
        );
        let sig = B64.decode(sign(&private, &[b""]).unwrap()).unwrap();
        assert_eq!(
            hex::encode(sig),
            "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
        );
    }

    #[test]
    fn a_generated_pair_signs_and_verifies_only_its_own_message() {
        let (private, public) = generate();
        assert!(private.expose().starts_with("whsk_"));
        assert_eq!(public_of(private.expose()).unwrap(), public);
        let sig = sign(private.expose(), &[b"id.", b"1.", b"{}"]).unwrap();
        let key = parse_public(&public).unwrap();
        assert!(verifies(&key, b"id.1.{}", &sig));
        assert!(!verifies(&key, b"id.1.{ }", &sig));
        let (_, other) = generate();
        assert!(!verifies(&parse_public(&other).unwrap(), b"id.1.{}", &sig));
    }

    #[test]
    fn malformed_keys_are_refused() {
        assert_eq!(sign("whsec_AAAA", &[b"x"]), Err(KeyError::Private));
        assert_eq!(parse_public("whpk_AAAA"), Err(KeyError::Public));
        assert_eq!(parse_public("AAAA"), Err(KeyError::Public));
        assert!(!verifies(&[0; 32], b"x", "not base64!"));
    }
}
