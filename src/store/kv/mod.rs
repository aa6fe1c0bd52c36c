//! Workers KV: the key-value operations on the `sessionstore` binding, and sessions stored on
//! them.
//!
//! A session's key is derived from its id ([`StorageKey`]), its value the session data sealed
//! ([`super::seal`]), and its lifecycle the entry's metadata, readable, so one `getWithMetadata`
//! reads everything and a listing can judge liveness without the id. Sessions stored before
//! that (the old worker's and earlier versions': the bare id as key, the data as value) are read
//! where they are on a miss and move on their first write ([`KvSessions`]). KV has
//! no compare-and-swap: a conditional write here trusts the read its operation began with, so two
//! writers that read within the same few milliseconds can both write (last write wins). Strong
//! mode ([`super::durable`]) closes that window.
//!
//! ```text
//! kv/mod.rs       the binding: key-value operations on the runtime's namespace
//! kv/sessions.rs  sessions, sealed under their storage keys (and found under bare ids)
//! kv/index.rs     the subject index: one entry per session, listed by prefix
//! ```
//!
//! [`StorageKey`]: crate::domain::derive::StorageKey

pub mod index;
pub mod sessions;

pub use index::KvIndex;
pub use sessions::KvSessions;

use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::{JsCast, JsValue};
use worker::js_sys::{self, Object, Promise, Reflect, Uint8Array};
use worker::Env;

use super::bindings;
use super::data::Plain;
use super::promise::settled_of;
use super::{KeyValue, BULK_KEYS};
use crate::domain::error::Error;

#[wasm_bindgen]
extern "C" {
    /// A Workers KV namespace, as the runtime hands it to the worker. Bound here directly, not
    /// through `worker::kv`: reads need no options object (the value type is a string argument),
    /// and metadata comes back as one string, so each operation crosses into JavaScript only a
    /// few times.
    pub type KvNamespace;

    #[wasm_bindgen(method, js_name = getWithMetadata)]
    fn get_with_metadata(this: &KvNamespace, key: &str, kind: &str) -> Promise;

    /// The bulk form: up to 100 keys, answered as a `Map` of key to `{value, metadata}` (or
    /// `null`). Bulk reads take only "text" or "json".
    #[wasm_bindgen(method, js_name = getWithMetadata)]
    fn get_many_with_metadata(this: &KvNamespace, keys: &js_sys::Array, kind: &str) -> Promise;

    #[wasm_bindgen(method)]
    fn put(this: &KvNamespace, key: &str, value: &Uint8Array, options: &Object) -> Promise;

    #[wasm_bindgen(method, js_name = delete)]
    fn delete_key(this: &KvNamespace, key: &str) -> Promise;

    #[wasm_bindgen(method)]
    fn list(this: &KvNamespace, options: &Object) -> Promise;
}

/// Workers KV, through a binding.
pub struct Kv(pub KvNamespace);

impl Kv {
    /// The namespace bound as `name`.
    pub fn binding(env: &Env, name: &'static str) -> Result<Self, Error> {
        let binding = bindings::binding(env, name);
        let binding = binding.ok_or_else(|| Error::Internal(format!("no KV binding {name}")))?;
        Ok(Self(binding.unchecked_into()))
    }

    /// `getWithMetadata(key, kind)`: the value (`None` for a missing key) and the metadata.
    async fn get_entry(
        &self,
        key: &str,
        kind: &str,
    ) -> Result<Option<(JsValue, Option<String>)>, Error> {
        let pair = settle(self.0.get_with_metadata(key, kind)).await?;
        let value = field(&pair, "value");
        if absent(&value) {
            return Ok(None);
        }
        Ok(Some((value, metadata_text(&field(&pair, "metadata")))))
    }

    /// Checks what [`KeyValue::metadata_of`] was given: a bulk read takes at most 100 keys.
    fn bulk(keys: &[String]) -> Result<js_sys::Array, Error> {
        if keys.len() > BULK_KEYS {
            return Err(Error::Internal(format!(
                "a bulk read of {} keys",
                keys.len()
            )));
        }
        Ok(keys.iter().map(|key| JsValue::from_str(key)).collect())
    }
}

/// What KV answers for a key it does not hold.
fn absent(value: &JsValue) -> bool {
    value.is_null() || value.is_undefined()
}

fn field(object: &JsValue, name: &str) -> JsValue {
    Reflect::get(object, &JsValue::from_str(name)).unwrap_or(JsValue::UNDEFINED)
}

/// Metadata as text: a string as it is (this version writes strings), anything else as JSON
/// (earlier versions wrote objects).
fn metadata_text(metadata: &JsValue) -> Option<String> {
    if absent(metadata) {
        return None;
    }
    metadata.as_string().or_else(|| {
        js_sys::JSON::stringify(metadata)
            .ok()
            .and_then(|text| text.as_string())
    })
}

/// Awaits a KV promise; a rejection is a store failure.
async fn settle(promise: Promise) -> Result<JsValue, Error> {
    settled_of(&promise).await.map_err(|err| {
        let message = err
            .dyn_ref::<js_sys::Error>()
            .map(|err| String::from(err.message()))
            .or_else(|| err.as_string())
            .unwrap_or_else(|| "KV operation failed".into());
        store_failure(&message)
    })
}

impl KeyValue for Kv {
    /// One `getWithMetadata`.
    async fn get(&self, key: &str) -> Result<Option<(String, Option<String>)>, Error> {
        let entry = self.get_entry(key, "text").await?;
        Ok(entry.and_then(|(value, meta)| Some((value.as_string()?, meta))))
    }

    /// One `getWithMetadata`.
    async fn get_bytes(&self, key: &str) -> Result<Option<(Vec<u8>, Option<String>)>, Error> {
        let entry = self.get_entry(key, "arrayBuffer").await?;
        Ok(entry.map(|(value, meta)| (Uint8Array::new(&value).to_vec(), meta)))
    }

    async fn put(
        &self,
        key: &str,
        value: Plain<'_>,
        metadata: Option<&str>,
        ttl_seconds: u64,
    ) -> Result<(), Error> {
        let options = Object::new();
        let ttl = JsValue::from_f64(ttl_seconds as f64);
        let _ = Reflect::set(&options, &JsValue::from_str("expirationTtl"), &ttl);
        if let Some(metadata) = metadata {
            let metadata = JsValue::from_str(metadata);
            let _ = Reflect::set(&options, &JsValue::from_str("metadata"), &metadata);
        }
        let value = match value {
            Plain::Here(bytes) => &Uint8Array::from(bytes),
            Plain::Outside(outside) => &outside.0,
        };
        settle(self.0.put(key, value, &options)).await?;
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<(), Error> {
        settle(self.0.delete_key(key)).await?;
        Ok(())
    }

    /// One `list` per thousand keys.
    async fn list(&self, prefix: &str) -> Result<Vec<(String, Option<String>)>, Error> {
        let mut keys = Vec::new();
        let mut cursor = JsValue::UNDEFINED;
        loop {
            let options = Object::new();
            let _ = Reflect::set(
                &options,
                &JsValue::from_str("prefix"),
                &JsValue::from_str(prefix),
            );
            if !cursor.is_undefined() {
                let _ = Reflect::set(&options, &JsValue::from_str("cursor"), &cursor);
            }
            let page = settle(self.0.list(&options)).await?;
            let listed: js_sys::Array = field(&page, "keys").unchecked_into();
            for key in listed.iter() {
                if let Some(name) = field(&key, "name").as_string() {
                    keys.push((name, metadata_text(&field(&key, "metadata"))));
                }
            }
            if field(&page, "list_complete").is_truthy() {
                return Ok(keys);
            }
            cursor = field(&page, "cursor");
        }
    }

    /// One bulk `getWithMetadata`. The values come along (KV has no bulk read of metadata
    /// alone), as text: a sealed value decodes to nonsense, which is dropped unread.
    async fn metadata_of(&self, keys: &[String]) -> Result<Vec<Option<Option<String>>>, Error> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let found = settle(self.0.get_many_with_metadata(&Kv::bulk(keys)?, "text")).await?;
        let found: js_sys::Map = found.unchecked_into();
        Ok(keys
            .iter()
            .map(|key| {
                let entry = found.get(&JsValue::from_str(key));
                if absent(&entry) || absent(&field(&entry, "value")) {
                    return None;
                }
                Some(metadata_text(&field(&entry, "metadata")))
            })
            .collect())
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
}
