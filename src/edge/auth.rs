//! Caller authentication: a bearer token shared with the callers, when the `API_TOKEN` secret is
//! set. Without it the worker is open, which is right only behind service bindings.

use subtle::ConstantTimeEq;

use crate::domain::digest::sha256;

/// The token callers must send, kept as its SHA-256: what is compared is two digests of one
/// length, so neither where a guess differs nor how long the token is can be learned from
/// timing.
pub struct Token([u8; 32]);

impl Token {
    pub fn new(token: &str) -> Self {
        Self(sha256(token.as_bytes()))
    }

    /// Whether `authorization` carries `Bearer <token>`, compared in constant time
    /// (RustCrypto's `subtle`).
    pub fn admits(&self, authorization: Option<&str>) -> bool {
        let Some(value) = authorization else {
            return false;
        };
        let Some((scheme, given)) = value.split_once(' ') else {
            return false;
        };
        let digest = sha256(given.trim().as_bytes());
        let equal: bool = digest.ct_eq(&self.0).into();
        scheme.eq_ignore_ascii_case("bearer") && equal
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_only_the_right_bearer_token() {
        let token = Token::new("s3cret");
        assert!(token.admits(Some("Bearer s3cret")));
        assert!(token.admits(Some("bearer s3cret")));
        assert!(!token.admits(None));
        assert!(!token.admits(Some("Bearer s3cre")));
        assert!(!token.admits(Some("Bearer s3cret2")));
        assert!(!token.admits(Some("Bearer S3cret")));
        assert!(!token.admits(Some("Basic s3cret")));
        assert!(!token.admits(Some("s3cret")));
        assert!(!token.admits(Some("Bearer ")));
    }

    /// The token is held only as its digest, so the comparison never sees its length.
    #[test]
    fn only_the_digest_is_kept() {
        let token = Token::new("s3cret");
        assert_eq!(token.0, sha256(b"s3cret"));
        let long = "x".repeat(10_000);
        assert!(Token::new(&long).admits(Some(&format!("Bearer {long}"))));
    }
}
