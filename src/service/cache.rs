//! The permission cache `user-mgmt` keeps here when its RBAC is on: any JSON under a short key,
//! for a few minutes.
//!
//! Cache entries live in the same KV namespace as sessions, under a `cache:` prefix. Sessions
//! are stored under `s1:` and a hash (the old worker's, under a bare UUID), subject indexes under
//! `sub:`: neither starts with `cache:`, so a cache key can never read or overwrite a session or
//! an index (see `docs/storage.md`).

use serde::Serialize;

use crate::domain::error::Error;
use crate::domain::json::{self, JsonObject};
use crate::domain::percent::percent_decode;
use crate::domain::session::KV_MIN_TTL;
use crate::store::schema::CACHE_PREFIX;
use crate::store::KeyValue;

const MAX_KEY_BYTES: usize = 256;
pub const DEFAULT_TTL: u64 = 300;
pub const MIN_TTL: u64 = KV_MIN_TTL;
/// A year: a permission cache that outlives this is a mistake, and the bound keeps the
/// number well inside what JavaScript represents exactly.
pub const MAX_TTL: u64 = 365 * 86_400;

/// A cache key: 1 to 256 bytes of printable ASCII, once percent-decoded from the path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CacheKey(String);

impl CacheKey {
    /// Parses the percent-encoded path text after `/cache/`.
    pub fn from_path(encoded: &str) -> Result<Self, Error> {
        let bytes = percent_decode(encoded).ok_or(Error::InvalidCacheKey)?;
        let printable = bytes.iter().all(|b| (0x20..=0x7e).contains(b));
        if bytes.is_empty() || bytes.len() > MAX_KEY_BYTES || !printable {
            return Err(Error::InvalidCacheKey);
        }
        // Printable ASCII is UTF-8.
        String::from_utf8(bytes)
            .map(Self)
            .map_err(|_| Error::InvalidCacheKey)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn storage_key(&self) -> String {
        format!("{CACHE_PREFIX}{}", self.0)
    }
}

/// What `PUT /cache/:key` answers.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Stored<'k> {
    pub key: &'k str,
    pub ttl: u64,
}

/// What `DELETE /cache/:key` answers, whether or not the key was there.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Deleted<'k> {
    pub key: &'k str,
}

/// Reads a `PUT /cache/:key` body: `{"data": <any JSON>, "ttl": <seconds>}`; returns the raw
/// data and the ttl.
pub fn parse_put_body(body: &JsonObject) -> Result<(&str, u64), Error> {
    let (members, _) = json::members(body.as_str()).map_err(Error::from)?;
    let data = json::get(&members, "data")
        .ok_or(Error::InvalidBody("an object with a \"data\" member"))?;
    let ttl = match json::get(&members, "ttl") {
        None => DEFAULT_TTL,
        Some(raw) => whole_seconds(raw)
            .filter(|ttl| (MIN_TTL..=MAX_TTL).contains(ttl))
            .ok_or_else(|| {
                Error::InvalidTtl(format!(
                    "ttl must be a whole number of seconds from {MIN_TTL} to {MAX_TTL}."
                ))
            })?,
    };
    Ok((data, ttl))
}

/// A JSON number (already checked) with a whole, non-negative value: `300`, `300.0` or `3e2`, as
/// JSON Schema's `integer` allows. Worked out on the digits, without floating point.
fn whole_seconds(raw: &str) -> Option<u64> {
    if raw.starts_with('-') {
        return None;
    }
    let (mantissa, exponent) = match raw.split_once(['e', 'E']) {
        Some((mantissa, exponent)) => (mantissa, exponent.parse::<i32>().ok()?),
        None => (raw, 0),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = format!("{whole}{fraction}");
    let digits = digits.trim_start_matches('0');
    // The value is `digits` times ten to the power of `scale`.
    let scale = exponent.checked_sub(i32::try_from(fraction.len()).ok()?)?;
    if digits.is_empty() {
        return Some(0);
    }
    if scale >= 0 {
        let factor = 10u64.checked_pow(u32::try_from(scale).ok()?)?;
        digits.parse::<u64>().ok()?.checked_mul(factor)
    } else {
        let cut = usize::try_from(scale.unsigned_abs()).ok()?;
        let kept = digits.len().checked_sub(cut)?;
        let (value, rest) = digits.split_at(kept);
        if !rest.bytes().all(|b| b == b'0') {
            return None;
        }
        if value.is_empty() {
            return Some(0);
        }
        value.parse().ok()
    }
}

pub struct Cache<'s, S> {
    store: &'s S,
}

impl<'s, S: KeyValue> Cache<'s, S> {
    pub fn new(store: &'s S) -> Self {
        Self { store }
    }

    pub async fn get(&self, key: &CacheKey) -> Result<String, Error> {
        let entry = self.store.get(&key.storage_key()).await?;
        entry
            .map(|(value, _)| value)
            .ok_or(Error::CacheEntryNotFound)
    }

    pub async fn put(&self, key: &CacheKey, data: &str, ttl: u64) -> Result<(), Error> {
        self.store
            .put(&key.storage_key(), data.as_bytes().into(), None, ttl)
            .await
    }

    pub async fn delete(&self, key: &CacheKey) -> Result<(), Error> {
        self.store.delete(&key.storage_key()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::memory::{run, MemoryKv};

    fn body(text: &str) -> Result<(String, u64), Error> {
        let object = JsonObject::from_bytes(text.as_bytes().to_vec()).map_err(Error::from)?;
        parse_put_body(&object).map(|(data, ttl)| (data.to_owned(), ttl))
    }

    #[test]
    fn keys_are_printable_ascii_up_to_256_bytes() {
        assert_eq!(
            CacheKey::from_path("perms:user:42").unwrap().as_str(),
            "perms:user:42"
        );
        assert_eq!(CacheKey::from_path("a%20b%2Fc").unwrap().as_str(), "a b/c");
        assert_eq!(
            CacheKey::from_path(&"k".repeat(256))
                .unwrap()
                .as_str()
                .len(),
            256
        );
        for bad in [
            "",
            "%",
            "%4",
            "%zz",
            "%0A",
            "%7F",
            "caf%C3%A9",
            &"k".repeat(257),
        ] {
            assert!(
                matches!(CacheKey::from_path(bad), Err(Error::InvalidCacheKey)),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn put_bodies() {
        assert_eq!(
            body(r#"{"data":{"roles":["a"]}}"#).unwrap(),
            (r#"{"roles":["a"]}"#.into(), 300)
        );
        assert_eq!(
            body(r#"{"data":null,"ttl":60}"#).unwrap(),
            ("null".into(), 60)
        );
        assert_eq!(
            body(r#"{"data":1,"data":{"k":1,"k":2}}"#).unwrap(),
            (r#"{"k":2}"#.into(), 300),
            "duplicates resolve as everywhere"
        );
        assert!(matches!(body(r#"{"ttl":60}"#), Err(Error::InvalidBody(_))));
        assert!(matches!(body("[]"), Err(Error::InvalidBody(_))));
        assert!(matches!(body("{"), Err(Error::InvalidJson)));
        for bad in [
            "59", "0", "-1", "60.5", "\"300\"", "31536001", "1e300", "-60.0", "null",
        ] {
            let body = format!(r#"{{"data":1,"ttl":{bad}}}"#);
            assert!(
                matches!(self::body(&body), Err(Error::InvalidTtl(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn whole_numbers_in_every_json_spelling() {
        for (raw, value) in [
            ("300", Some(300)),
            ("300.0", Some(300)),
            ("300.000", Some(300)),
            ("3e2", Some(300)),
            ("3.0E+2", Some(300)),
            ("30000e-2", Some(300)),
            ("0", Some(0)),
            ("0.0e5", Some(0)),
            ("60.5", None),
            ("6.05e1", None),
            ("-60", None),
            ("-0.0", None),
            ("1e300", None),
            ("18446744073709551616", None),
        ] {
            assert_eq!(whole_seconds(raw), value, "{raw}");
        }
    }

    #[test]
    fn cache_keys_never_touch_sessions() {
        let store = MemoryKv::default();
        let session_key = "3b241101-e2bb-4255-8caf-4136c566a962";
        store.insert_legacy(session_key, r#"{"secret":1}"#);
        let cache = Cache::new(&store);
        let key = CacheKey::from_path(session_key).unwrap();
        assert!(matches!(
            run(cache.get(&key)),
            Err(Error::CacheEntryNotFound)
        ));
        run(cache.put(&key, "2", 300)).unwrap();
        run(cache.delete(&key)).unwrap();
        assert_eq!(store.bytes(session_key).unwrap(), br#"{"secret":1}"#);
        assert_eq!(store.bytes(&format!("cache:{session_key}")), None);
    }

    #[test]
    fn round_trip_with_ttl() {
        let store = MemoryKv::default();
        let cache = Cache::new(&store);
        let key = CacheKey::from_path("perms").unwrap();
        run(cache.put(&key, r#"{"r":1}"#, 120)).unwrap();
        assert_eq!(run(cache.get(&key)).unwrap(), r#"{"r":1}"#);
        assert_eq!(store.kv_ttl("cache:perms"), Some(120));
    }
}
