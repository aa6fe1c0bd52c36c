//! Session ids: UUID v4 in lowercase hyphenated form, the only form the worker hands out and the
//! exact text of the KV key (the old TypeScript worker used `crypto.randomUUID()`, same form).
//!
//! A `SessionId` is parsed once at the edge; holding one means the text is a valid key.

use std::fmt;

use uuid::{Uuid, Variant};

/// Ordered as its text is (the bytes of a UUID, in order, are its hex digits in order).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SessionId(Uuid);

impl SessionId {
    /// A fresh id from 16 random bytes. Kept separate from the randomness source so that the
    /// version and variant bits are testable natively.
    pub fn from_random_bytes(bytes: [u8; 16]) -> Self {
        Self(uuid::Builder::from_random_bytes(bytes).into_uuid())
    }

    /// A fresh id from the platform's CSPRNG (`crypto.getRandomValues` inside Workers).
    pub fn generate() -> Result<Self, getrandom::Error> {
        let mut bytes = [0u8; 16];
        getrandom::fill(&mut bytes)?;
        Ok(Self::from_random_bytes(bytes))
    }

    /// Accepts only the canonical form: 36 characters, lowercase, hyphenated, version 4, RFC 4122
    /// variant. Anything else can never name a session, so it is refused before KV is asked.
    pub fn parse(text: &str) -> Option<Self> {
        if text.len() != 36 || text.bytes().any(|b| b.is_ascii_uppercase()) {
            return None;
        }
        let uuid = Uuid::try_parse(text).ok()?;
        let canonical = uuid.get_version_num() == 4 && uuid.get_variant() == Variant::RFC4122;
        canonical.then_some(Self(uuid))
    }

    /// The id's 16 bytes, for a record that must name it (sealed: a renewed id's successor).
    pub fn to_bytes(&self) -> [u8; 16] {
        *self.0.as_bytes()
    }

    /// The id of 16 bytes, if they are a v4 UUID's: the same ids [`SessionId::parse`] takes.
    pub fn from_bytes(bytes: [u8; 16]) -> Option<Self> {
        let uuid = Uuid::from_bytes(bytes);
        let canonical = uuid.get_version_num() == 4 && uuid.get_variant() == Variant::RFC4122;
        canonical.then_some(Self(uuid))
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
        self.0.hyphenated().fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_order_as_their_text_does() {
        // Bytes that differ in each position, high and low nibble, in both directions.
        let mut ids = Vec::new();
        for position in 0..16 {
            for value in [0x00, 0x09, 0x0a, 0x90, 0xa0, 0xff] {
                let mut bytes = [0x55; 16];
                bytes[position] = value;
                ids.push(SessionId::from_random_bytes(bytes));
            }
        }
        for a in &ids {
            for b in &ids {
                assert_eq!(a.cmp(b), a.to_string().cmp(&b.to_string()), "{a} {b}");
            }
        }
    }

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
    fn short_form_is_the_first_eight_characters() {
        let id = SessionId::parse("3b241101-e2bb-4255-8caf-4136c566a962").unwrap();
        assert_eq!(id.short(), "3b241101");
    }
}
