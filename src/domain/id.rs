//! Session ids, in two forms, both accepted everywhere whatever `SESSION_ID_FORMAT` issues:
//!
//! - **UUID v4** in lowercase hyphenated form (the default): the form the old TypeScript worker
//!   issued with `crypto.randomUUID()`, and the text of its KV keys. 122 random bits.
//! - **Token**: 32 bytes from the platform's CSPRNG, base64url without padding (43 characters):
//!   256 random bits, for OWASP ASVS 5.0 V7.2.3 at level 3 (at least 128 bits of entropy).
//!
//! The two never overlap (36 characters with hyphens in fixed places, against 43 of the base64url
//! alphabet), so a text is one form or the other, or no id. Everything derived from an id (its
//! storage key, handle, wrap key) is derived from its text, so both forms are stored alike.
//!
//! A `SessionId` is parsed once at the edge; holding one means the text is a valid id.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use uuid::{Uuid, Variant};

/// The random bytes of a token id.
pub const TOKEN_BYTES: usize = 32;
/// The length of a token id's text: 32 bytes in base64url without padding.
pub const TOKEN_CHARS: usize = 43;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SessionId(Form);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Form {
    Uuid(Uuid),
    Token([u8; TOKEN_BYTES]),
}

/// Which form new ids take (`SESSION_ID_FORMAT`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum IdFormat {
    #[default]
    Uuid,
    Token,
}

impl SessionId {
    /// A fresh UUID v4 from 16 random bytes. Kept separate from the randomness source so that
    /// the version and variant bits are testable natively.
    pub fn from_random_bytes(bytes: [u8; 16]) -> Self {
        Self(Form::Uuid(
            uuid::Builder::from_random_bytes(bytes).into_uuid(),
        ))
    }

    /// A token id from 32 random bytes.
    pub fn token_from_random_bytes(bytes: [u8; TOKEN_BYTES]) -> Self {
        Self(Form::Token(bytes))
    }

    /// An id of the same form as `like` (a UUID v4, or a token) from 32 bytes that are as good
    /// as random to anyone who lacks what they were derived from.
    pub fn like_from_seed(like: &SessionId, seed: [u8; TOKEN_BYTES]) -> Self {
        if like.is_uuid() {
            let mut bytes = [0u8; 16];
            bytes.copy_from_slice(&seed[..16]);
            Self::from_random_bytes(bytes)
        } else {
            Self::token_from_random_bytes(seed)
        }
    }

    /// A fresh id of `format` from the platform's CSPRNG (`crypto.getRandomValues` inside
    /// Workers).
    pub fn generate_as(format: IdFormat) -> Result<Self, getrandom::Error> {
        match format {
            IdFormat::Uuid => {
                let mut bytes = [0u8; 16];
                getrandom::fill(&mut bytes)?;
                Ok(Self::from_random_bytes(bytes))
            }
            IdFormat::Token => {
                let mut bytes = [0u8; TOKEN_BYTES];
                getrandom::fill(&mut bytes)?;
                Ok(Self::token_from_random_bytes(bytes))
            }
        }
    }

    /// A fresh UUID v4 id.
    pub fn generate() -> Result<Self, getrandom::Error> {
        Self::generate_as(IdFormat::Uuid)
    }

    /// Accepts only the canonical forms: a UUID v4, 36 characters, lowercase, hyphenated, RFC
    /// 4122 variant; or a token, 43 characters of base64url without padding that decode to 32
    /// bytes (and encode back to the same text). Anything else can never name a session, so it
    /// is refused before the store is asked.
    pub fn parse(text: &str) -> Option<Self> {
        match text.len() {
            36 => Self::parse_uuid(text),
            TOKEN_CHARS => {
                let bytes = URL_SAFE_NO_PAD.decode(text).ok()?;
                let bytes: [u8; TOKEN_BYTES] = bytes.try_into().ok()?;
                // Canonical: the last character carries 2 unused bits, which must be zero.
                (URL_SAFE_NO_PAD.encode(bytes) == text).then_some(Self(Form::Token(bytes)))
            }
            _ => None,
        }
    }

    fn parse_uuid(text: &str) -> Option<Self> {
        if text.bytes().any(|b| b.is_ascii_uppercase()) {
            return None;
        }
        let uuid = Uuid::try_parse(text).ok()?;
        let canonical = uuid.get_version_num() == 4 && uuid.get_variant() == Variant::RFC4122;
        canonical.then_some(Self(Form::Uuid(uuid)))
    }

    /// The id's bytes, for a record that must name it (sealed: a renewed id's successor): 16
    /// for a UUID, 32 for a token.
    pub fn to_bytes(&self) -> Vec<u8> {
        match &self.0 {
            Form::Uuid(uuid) => uuid.as_bytes().to_vec(),
            Form::Token(bytes) => bytes.to_vec(),
        }
    }

    /// The id of these bytes, if they are a v4 UUID's (16) or a token's (32).
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        match bytes.len() {
            16 => {
                let uuid = Uuid::from_slice(bytes).ok()?;
                let canonical =
                    uuid.get_version_num() == 4 && uuid.get_variant() == Variant::RFC4122;
                canonical.then_some(Self(Form::Uuid(uuid)))
            }
            TOKEN_BYTES => Some(Self(Form::Token(bytes.try_into().ok()?))),
            _ => None,
        }
    }

    /// Whether this is a UUID: the only form the old worker and earlier versions issued, so the
    /// only one looked for where they stored sessions.
    pub fn is_uuid(&self) -> bool {
        matches!(self.0, Form::Uuid(_))
    }

    /// The first 8 characters: enough to correlate log lines, too little to use the session.
    pub fn short(&self) -> String {
        let mut text = self.to_string();
        text.truncate(8);
        text
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Form::Uuid(uuid) => uuid.hyphenated().fmt(f),
            Form::Token(bytes) => f.write_str(&URL_SAFE_NO_PAD.encode(bytes)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_bytes_become_a_canonical_v4_id() {
        let id = SessionId::from_random_bytes([0xff; 16]);
        let text = id.to_string();
        assert_eq!(text, "ffffffff-ffff-4fff-bfff-ffffffffffff");
        assert_eq!(SessionId::parse(&text), Some(id));
    }

    #[test]
    fn parses_the_form_the_old_worker_wrote() {
        let text = "3b241101-e2bb-4255-8caf-4136c566a962";
        assert_eq!(
            SessionId::parse(text).map(|id| id.to_string()).as_deref(),
            Some(text)
        );
    }

    #[test]
    fn refuses_everything_else() {
        for text in [
            "",
            "not-a-uuid",
            "3B241101-E2BB-4255-8CAF-4136C566A962", // uppercase
            "3b241101e2bb42558caf4136c566a962",     // simple form
            "{3b241101-e2bb-4255-8caf-4136c566a962}", // braced
            "3b241101-e2bb-1255-8caf-4136c566a962", // version 1
            "3b241101-e2bb-4255-ccaf-4136c566a962", // wrong variant
            "3b241101-e2bb-4255-8caf-4136c566a96",  // short
            "3b241101-e2bb-4255-8caf-4136c566a962a", // long
            "3b241101-e2bb-4255-8caf-4136c566a96g", // not hex
        ] {
            assert_eq!(SessionId::parse(text), None, "{text:?} was accepted");
        }
    }

    #[test]
    fn a_token_is_43_characters_of_base64url_for_32_random_bytes() {
        let id = SessionId::token_from_random_bytes([0xfb; TOKEN_BYTES]);
        let text = id.to_string();
        assert_eq!(text.len(), TOKEN_CHARS);
        assert!(text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        assert!(text.contains('-') || text.contains('_'), "url-safe: {text}");
        assert_eq!(SessionId::parse(&text), Some(id));
        assert_eq!(SessionId::from_bytes(&id.to_bytes()), Some(id));
        let uuid = SessionId::from_random_bytes([7; 16]);
        assert_eq!(SessionId::from_bytes(&uuid.to_bytes()), Some(uuid));
    }

    #[test]
    fn refuses_tokens_that_are_not_canonical() {
        let text = SessionId::token_from_random_bytes([0; TOKEN_BYTES]).to_string();
        assert_eq!(text, "A".repeat(TOKEN_CHARS));
        for bad in [
            format!("{}B", "A".repeat(TOKEN_CHARS - 1)), // unused bits set
            format!("{}=", "A".repeat(TOKEN_CHARS - 1)), // padding
            format!("{}+", "A".repeat(TOKEN_CHARS - 1)), // standard alphabet
            "A".repeat(TOKEN_CHARS - 1),                 // short
            "A".repeat(TOKEN_CHARS + 1),                 // long
        ] {
            assert_eq!(SessionId::parse(&bad), None, "{bad:?} was accepted");
        }
    }

    /// The contract's pattern (openapi.yaml) allows as a token's last character exactly those
    /// that carry no unused bits.
    #[test]
    fn a_tokens_last_character_is_one_the_contract_allows() {
        const ALPHABET: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        const LAST: &str = "AEIMQUYcgkosw048";
        let contract = include_str!("../../openapi.yaml");
        assert!(contract.contains(&format!("[A-Za-z0-9_-]{{42}}[{LAST}]")));
        for last in ALPHABET.chars() {
            let text = format!("{}{last}", "A".repeat(TOKEN_CHARS - 1));
            assert_eq!(
                SessionId::parse(&text).is_some(),
                LAST.contains(last),
                "{last}"
            );
        }
    }

    #[test]
    fn short_form_is_the_first_eight_characters() {
        let id = SessionId::parse("3b241101-e2bb-4255-8caf-4136c566a962").unwrap();
        assert_eq!(id.short(), "3b241101");
    }
}
