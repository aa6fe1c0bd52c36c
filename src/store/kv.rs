//! Workers KV: the key-value operations on the `sessionstore` binding, and sessions stored on
//! them.
//!
//! A session's key is its bare id (as the old worker stored it), its value exactly the session
//! data, and its lifecycle the entry's metadata, so one `getWithMetadata` reads everything. KV has
//! no compare-and-swap: a conditional write here trusts the read its operation began with, so two
//! writers that read within the same few milliseconds can both write (last write wins). Strong
//! mode ([`super::durable`]) closes that window.

use worker::kv::{KvError, KvStore};
use worker::web_sys::ReadableStream;

use super::{Expect, KeyValue, Outcome, Record, SessionStore};
use crate::error::Error;
use crate::id::SessionId;
use crate::session::Meta;

/// Workers KV, through a binding.
pub struct Kv(pub KvStore);

/// Metadata the worker cannot read counts as absent (a legacy entry) rather than failing: it is
/// replaced on the next write.
fn readable(meta: Option<serde_json::Value>) -> Option<Meta> {
    meta.and_then(|meta| serde_json::from_value(meta).ok())
}

impl KeyValue for Kv {
    /// A stream: `GET` passes the value from KV to the response without bringing it into Wasm.
    type Body = ReadableStream;

    /// One `getWithMetadata`.
    async fn get(&self, key: &str) -> Result<Option<(String, Option<Meta>)>, Error> {
        let (value, meta) = self.0.get(key).text_with_metadata().await.map_err(kv)?;
        Ok(value.map(|value| (value, readable(meta))))
    }

    /// One `getWithMetadata`.
    async fn open(&self, key: &str) -> Result<Option<(ReadableStream, Option<Meta>)>, Error> {
        let (value, meta) = self.0.get(key).stream_with_metadata().await.map_err(kv)?;
        Ok(value.map(|stream| (stream, readable(meta))))
    }

    async fn put(
        &self,
        key: &str,
        value: &[u8],
        meta: Option<&Meta>,
        ttl_seconds: u64,
    ) -> Result<(), Error> {
        let mut put = self
            .0
            .put_bytes(key, value)
            .map_err(kv)?
            .expiration_ttl(ttl_seconds);
        if let Some(meta) = meta {
            put = put.metadata(meta).map_err(kv)?;
        }
        put.execute().await.map_err(kv)
    }

    async fn delete(&self, key: &str) -> Result<(), Error> {
        self.0.delete(key).await.map_err(kv)
    }
}

/// A KV failure as the caller should see it: retryable, with the cause kept for the log.
fn kv(err: KvError) -> Error {
    match err {
        KvError::JavaScript(_) => store_failure(&err.to_string()),
        KvError::Serialization(_) | KvError::InvalidKvStore(_) => {
            Error::Internal(format!("kv: {err}"))
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
}
