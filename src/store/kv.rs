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

use super::{Expect, KeyValue, Member, Outcome, Record, SessionStore, SubjectIndex};
use crate::domain::error::Error;
use crate::domain::id::SessionId;
use crate::domain::session::{Meta, KV_MIN_TTL};
use crate::domain::subject::Subject;
use crate::domain::time::Millis;

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

    #[wasm_bindgen(method)]
    fn list(this: &KvNamespace, options: &Object) -> Promise;
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
    ) -> Result<Option<(JsValue, Option<String>)>, Error> {
        let pair = settle(self.0.get_with_metadata(key, kind)).await?;
        let value = field(&pair, "value");
        if value.is_null() || value.is_undefined() {
            return Ok(None);
        }
        Ok(Some((value, metadata_text(&field(&pair, "metadata")))))
    }
}

fn field(object: &JsValue, name: &str) -> JsValue {
    Reflect::get(object, &JsValue::from_str(name)).unwrap_or(JsValue::UNDEFINED)
}

/// Metadata as text: a string as it is (this version writes strings), anything else as JSON
/// (earlier versions wrote objects).
fn metadata_text(metadata: &JsValue) -> Option<String> {
    if metadata.is_null() || metadata.is_undefined() {
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
    async fn get(&self, key: &str) -> Result<Option<(String, Option<String>)>, Error> {
        let entry = self.get_entry(key, "text").await?;
        Ok(entry.and_then(|(value, meta)| Some((value.as_string()?, meta))))
    }

    /// One `getWithMetadata`.
    async fn open(&self, key: &str) -> Result<Option<(ReadableStream, Option<String>)>, Error> {
        let entry = self.get_entry(key, "stream").await?;
        Ok(entry.map(|(value, meta)| (value.unchecked_into(), meta)))
    }

    async fn put(
        &self,
        key: &str,
        value: &[u8],
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
        settle(self.0.put(key, &Uint8Array::from(value), &options)).await?;
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

/// The lifecycle in an entry's metadata. Metadata the worker cannot read counts as absent (an
/// entry of the old worker) rather than failing: it is replaced on the next write.
fn readable(metadata: Option<String>) -> Option<Meta> {
    Meta::from_json(&metadata?)
}

/// Sessions on key-value storage: the bare id as key, the data as value, the lifecycle as
/// metadata, and KV's own expiry set to the session's.
#[derive(Default)]
pub struct KvSessions<K>(pub K);

impl<K: KeyValue> SessionStore for KvSessions<K> {
    type Body = K::Body;

    async fn load(&self, id: &SessionId) -> Result<Option<Record>, Error> {
        let entry = self.0.get(&id.to_string()).await?;
        Ok(entry.map(|(data, meta)| Record {
            data,
            meta: readable(meta),
        }))
    }

    async fn open(&self, id: &SessionId) -> Result<Option<(K::Body, Option<Meta>)>, Error> {
        let entry = self.0.open(&id.to_string()).await?;
        Ok(entry.map(|(body, meta)| (body, readable(meta))))
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
        let metadata = meta.to_json();
        self.0
            .put(&id.to_string(), data, Some(&metadata), ttl)
            .await?;
        Ok(Outcome::Written)
    }

    /// One delete; `expect` as for `save`.
    async fn remove(&self, id: &SessionId, _expect: Expect) -> Result<Outcome, Error> {
        self.0.delete(&id.to_string()).await?;
        Ok(Outcome::Written)
    }
}

/// The subject index on KV: one entry `sub:<subject hash>:<session id>` per session, empty, with
/// the session's creation time as metadata, living until the session's latest end (its absolute
/// lifetime, which no renewal passes). The prefix is neither a session id nor a `cache:` key.
///
/// KV lists lag writes by up to about a minute: a list (and so a revoke) may miss a session
/// created moments before.
pub struct KvIndex<K>(pub K);

fn index_prefix(subject: &Subject) -> String {
    format!("sub:{}:", subject.hex())
}

impl<K: KeyValue> SubjectIndex for KvIndex<K> {
    /// One put.
    async fn add(
        &self,
        subject: &Subject,
        member: Member,
        until: Millis,
        now: Millis,
    ) -> Result<(), Error> {
        let key = format!("{}{}", index_prefix(subject), member.id);
        let ttl = until.saturating_sub(now).div_ceil(1000).max(KV_MIN_TTL);
        let created_at = member.created_at.to_string();
        self.0.put(&key, b"", Some(&created_at), ttl).await
    }

    /// One delete.
    async fn remove(&self, subject: &Subject, id: &SessionId) -> Result<(), Error> {
        self.0
            .delete(&format!("{}{id}", index_prefix(subject)))
            .await
    }

    /// One list.
    async fn members(&self, subject: &Subject) -> Result<Vec<Member>, Error> {
        let prefix = index_prefix(subject);
        let keys = self.0.list(&prefix).await?;
        Ok(keys
            .into_iter()
            .filter_map(|(key, metadata)| {
                Some(Member {
                    id: SessionId::parse(key.strip_prefix(&prefix)?)?,
                    created_at: metadata.and_then(|m| m.parse().ok()).unwrap_or(0),
                })
            })
            .collect())
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
