//! Bearer tokens: random, long, shown once, stored only as SHA-256 hashes and compared in
//! constant time. Tokens carry 256 bits of entropy, so a fast hash is enough (no KDF needed).

use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Prefix that makes leaked tokens easy to recognise for secret scanners.
pub const TOKEN_PREFIX: &str = "idlcm_";

/// A new token: `idlcm_` + 43 base64url characters (32 random bytes).
pub fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!("{TOKEN_PREFIX}{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// Lowercase hex SHA-256 of a token.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Whether `token` hashes to one of `hashes`; every comparison runs in constant time.
pub fn verify(token: &str, hashes: &[String]) -> bool {
    let h = hash_token(token);
    let mut ok = subtle::Choice::from(0u8);
    for stored in hashes {
        if stored.len() == h.len() {
            ok |= stored.as_bytes().ct_eq(h.as_bytes());
        }
    }
    ok.into()
}

/// The token from an `Authorization: Bearer <token>` header value (scheme case-insensitive).
pub fn bearer(header: &str) -> Option<&str> {
    let (scheme, rest) = header.trim().split_once(' ')?;
    let token = rest.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_random_and_verify_only_against_their_hash() {
        let a = new_token();
        let b = new_token();
        assert_ne!(a, b);
        assert!(a.starts_with(TOKEN_PREFIX) && a.len() == TOKEN_PREFIX.len() + 43);
        let hashes = vec![hash_token(&b), hash_token(&a)];
        assert!(verify(&a, &hashes));
        assert!(!verify("idlcm_wrong", &hashes));
        assert!(!verify(&a, &[]));
    }

    #[test]
    fn bearer_header_parsing() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer  abc "), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearer "), None);
        assert_eq!(bearer("Bearer"), None);
    }
}
