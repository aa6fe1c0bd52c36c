//! Workers KV: the key-value operations on the `sessionstore` binding, and sessions stored on
//! them.
//!
//! A session's key is its bare id (as the old worker stored it), its value exactly the session
//! data, and its lifecycle the entry's metadata, so one `getWithMetadata` reads everything. KV has
//! no compare-and-swap: a conditional write here trusts the read its operation began with, so two
//! writers that read within the same few milliseconds can both write (last write wins). Strong
//! mode ([`super::durable`]) closes that window.

use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::{JsCast, JsValue};
use worker::js_sys::{self, Object, Promise, Reflect, Uint8Array};
use worker::wasm_bindgen_futures::JsFuture;
use worker::web_sys::ReadableStream;
use worker::Env;

use super::{Expect, KeyValue, Outcome, Record, SessionStore};
use crate::error::Error;
use crate::id::SessionId;
use crate::session::Meta;

#[wasm_bindgen]
extern "C" {
    /// A Workers KV namespace, as the runtime hands it to the worker. Bound here directly, not
    /// through `worker::kv`: reads need no options object (the value type is a string argument),
    /// and metadata comes back as one string, so each operation crosses into JavaScript only a
    /// few times.
    pub type KvNamespace;

    #[wasm_bindgen(method, js_name = getWithMetadata)]
    fn get_with_metadata(this: &KvNamespace, key: &str, kind: &str) -> Promise;

    #[wasm_bindgen(method)]
    fn put(this: &KvNamespace, key: &str, value: &Uint8Array, options: &Object) -> Promise;

    #[wasm_bindgen(method, js_name = delete)]
    fn delete_key(this: &KvNamespace, key: &str) -> Promise;
}

/// Workers KV, through a binding.
pub struct Kv(pub KvNamespace);

impl Kv {
    /// The namespace bound as `name`.
    pub fn binding(env: &Env, name: &str) -> Result<Self, Error> {
        let binding = Reflect::get(env, &JsValue::from_str(name)).unwrap_or(JsValue::UNDEFINED);
        if binding.is_undefined() {
            return Err(Error::Internal(format!("no KV binding {name}")));
        }
        Ok(Self(binding.unchecked_into()))
    }

    /// `getWithMetadata(key, kind)`: the value (`None` for a missing key) and the metadata.
    async fn get_entry(
        &self,
        key: &str,
        kind: &str,
    ) -> Result<Option<(JsValue, Option<Meta>)>, Error> {
        let pair = settle(self.0.get_with_metadata(key, kind)).await?;
        let value = Reflect::get(&pair, &JsValue::from_str("value")).unwrap_or(JsValue::NULL);
        if value.is_null() || value.is_undefined() {
            return Ok(None);
        }
        let meta = Reflect::get(&pair, &JsValue::from_str("metadata")).unwrap_or(JsValue::NULL);
        Ok(Some((value, readable(&meta))))
    }
}

/// The lifecycle kept in an entry's metadata: a string since this version, an object before it.
/// Metadata the worker cannot read counts as absent (a legacy entry) rather than failing: it is
/// replaced on the next write.
fn readable(meta: &JsValue) -> Option<Meta> {
    if let Some(text) = meta.as_string() {
        return Meta::from_json(&text);
    }
    if !meta.is_object() {
        return None;
    }
    let field = |name: &str| Reflect::get(meta, &JsValue::from_str(name)).ok();
    let number = |name: &str| whole(field(name)?.as_f64()?);
    Some(Meta {
        created_at: number("createdAt")?,
        updated_at: number("updatedAt")?,
        expires_at: number("expiresAt")?,
        version: number("version")?,
        ttl: match field("ttl") {
            Some(ttl) if !ttl.is_undefined() && !ttl.is_null() => Some(whole(ttl.as_f64()?)?),
            _ => None,
        },
    })
}

/// A JavaScript number that is a whole, non-negative, exactly represented integer.
fn whole(number: f64) -> Option<u64> {
    let exact = number.fract() == 0.0 && (0.0..9_007_199_254_740_992.0).contains(&number);
    exact.then_some(number as u64)
}

/// Awaits a KV promise; a rejection is a store failure.
async fn settle(promise: Promise) -> Result<JsValue, Error> {
    JsFuture::from(promise).await.map_err(|err| {
        let message = err
            .dyn_ref::<js_sys::Error>()
            .map(|err| String::from(err.message()))
            .or_else(|| err.as_string())
            .unwrap_or_else(|| "KV operation failed".into());
        store_failure(&message)
    })
}

impl KeyValue for Kv {
    /// A stream: `GET` passes the value from KV to the response without bringing it into Wasm.
    type Body = ReadableStream;

    /// One `getWithMetadata`.
    async fn get(&self, key: &str) -> Result<Option<(String, Option<Meta>)>, Error> {
        let entry = self.get_entry(key, "text").await?;
        Ok(entry.and_then(|(value, meta)| Some((value.as_string()?, meta))))
    }

    /// One `getWithMetadata`.
    async fn open(&self, key: &str) -> Result<Option<(ReadableStream, Option<Meta>)>, Error> {
        let entry = self.get_entry(key, "stream").await?;
        Ok(entry.map(|(value, meta)| (value.unchecked_into(), meta)))
    }

    async fn put(
        &self,
        key: &str,
        value: &[u8],
        meta: Option<&Meta>,
        ttl_seconds: u64,
    ) -> Result<(), Error> {
        let options = Object::new();
        let ttl = JsValue::from_f64(ttl_seconds as f64);
        let _ = Reflect::set(&options, &JsValue::from_str("expirationTtl"), &ttl);
        if let Some(meta) = meta {
            let meta = JsValue::from_str(&meta.to_json());
            let _ = Reflect::set(&options, &JsValue::from_str("metadata"), &meta);
        }
        settle(self.0.put(key, &Uint8Array::from(value), &options)).await?;
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<(), Error> {
        settle(self.0.delete_key(key)).await?;
        Ok(())
    }
}

/// KV reports a failed operation as `KV <METHOD> failed: <status> <reason>`. Its write limit
/// (one write per second per key) is status 429: the caller may retry in a second. Anything else
/// is the store being unavailable, also worth a retry.
pub fn store_failure(message: &str) -> Error {
    let status = message
        .split_once("failed: ")
        .map(|(_, rest)| rest.trim_start())
        .filter(|rest| rest.bytes().take_while(u8::is_ascii_digit).count() == 3)
        .map(|rest| &rest[..3]);
    let cause = format!("kv: {message}");
    if status == Some("429") || message.contains("Too Many Requests") {
        Error::StoreBusy(cause)
    } else {
        Error::StoreUnavailable(cause)
    }
}

/// Sessions on key-value storage: the bare id as key, the data as value, the lifecycle as
/// metadata, and KV's own expiry set to the session's.
#[derive(Default)]
pub struct KvSessions<K>(pub K);

impl<K: KeyValue> SessionStore for KvSessions<K> {
    type Body = K::Body;

    async fn load(&self, id: &SessionId) -> Result<Option<Record>, Error> {
        let entry = self.0.get(&id.to_string()).await?;
        Ok(entry.map(|(data, meta)| Record { data, meta }))
    }

    async fn open(&self, id: &SessionId) -> Result<Option<(K::Body, Option<Meta>)>, Error> {
        self.0.open(&id.to_string()).await
    }

    /// One put. `expect` was checked by the read this operation began with: KV cannot check
    /// again at the moment of writing.
    async fn save(
        &self,
        id: &SessionId,
        data: &[u8],
        meta: &Meta,
        _expect: Expect,
    ) -> Result<Outcome, Error> {
        let ttl = meta.kv_ttl(meta.updated_at);
        self.0.put(&id.to_string(), data, Some(meta), ttl).await?;
        Ok(Outcome::Written)
    }

    /// One delete; `expect` as for `save`.
    async fn remove(&self, id: &SessionId, _expect: Expect) -> Result<Outcome, Error> {
        self.0.delete(&id.to_string()).await?;
        Ok(Outcome::Written)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_write_limit_is_busy_and_everything_else_unavailable() {
        for busy in [
            "js error: JsValue(Error: KV PUT failed: 429 Too Many Requests)",
            "KV PUT failed: 429",
            "KV DELETE failed: 429 Too Many Requests\n    at ...",
        ] {
            assert_eq!(store_failure(busy).code(), "store_busy", "{busy}");
        }
        for unavailable in [
            "js error: JsValue(Error: KV GET failed: 503 Service Unavailable)",
            "KV PUT failed: 500 Internal Server Error",
            "Network connection lost.",
            "KV GET failed: 4290",
        ] {
            assert_eq!(
                store_failure(unavailable).code(),
                "store_unavailable",
                "{unavailable}"
            );
        }
        assert!(store_failure("KV PUT failed: 429")
            .log_cause()
            .unwrap()
            .contains("429"));
    }

    #[test]
    fn only_exact_whole_numbers_are_read_from_old_metadata() {
        assert_eq!(whole(1_764_000_000_000.0), Some(1_764_000_000_000));
        assert_eq!(whole(0.0), Some(0));
        for bad in [1.5, -1.0, f64::NAN, f64::INFINITY, 9_007_199_254_740_992.0] {
            assert_eq!(whole(bad), None, "{bad}");
        }
    }
}
