//! The storage seam: the three KV operations the service needs, behind a small trait so that an
//! in-memory store stands in for Workers KV in native tests.
//!
//! `KvBackend` is the only code that talks to KV. It knows nothing of sessions: keys are built by
//! [`crate::sessions`] and [`crate::cache`].

use worker::kv::KvStore;
use worker::web_sys::ReadableStream;

use crate::error::Error;
use crate::session::Meta;

/// A stored value with its metadata, when it has any (entries written by the old worker don't).
pub struct Entry {
    pub value: String,
    pub meta: Option<Meta>,
}

/// Key-value storage with per-entry metadata and expiry, as Workers KV offers it.
///
/// Contract: `load` returns `None` for a key that was never written, was deleted, or expired in
/// the store; `save` replaces value and metadata together and asks the store to drop the entry
/// after `ttl_seconds`; `delete` succeeds for a missing key.
#[allow(
    async_fn_in_trait,
    reason = "Workers run single-threaded; futures need not be Send"
)]
pub trait Store {
    /// A value in the store's own form, for handing to a response without copying it.
    type Body;

    async fn load(&self, key: &str) -> Result<Option<Entry>, Error>;
    /// Like `load`, but leaves the value in the store's own form.
    async fn open(&self, key: &str) -> Result<Option<(Self::Body, Option<Meta>)>, Error>;
    async fn save(
        &self,
        key: &str,
        value: &[u8],
        meta: Option<&Meta>,
        ttl_seconds: u64,
    ) -> Result<(), Error>;
    async fn delete(&self, key: &str) -> Result<(), Error>;
}

/// Workers KV, through the `sessionstore` binding.
pub struct KvBackend(pub KvStore);

/// Metadata the worker cannot read counts as absent (a legacy entry) rather than failing: it is
/// replaced on the next write.
fn readable(meta: Option<serde_json::Value>) -> Option<Meta> {
    meta.and_then(|meta| serde_json::from_value(meta).ok())
}

impl Store for KvBackend {
    /// A stream: `GET` passes the value from KV to the response without bringing it into Wasm.
    type Body = ReadableStream;

    /// One `getWithMetadata`.
    async fn load(&self, key: &str) -> Result<Option<Entry>, Error> {
        let (value, meta) = self.0.get(key).text_with_metadata().await?;
        Ok(value.map(|value| Entry {
            value,
            meta: readable(meta),
        }))
    }

    /// One `getWithMetadata`.
    async fn open(&self, key: &str) -> Result<Option<(ReadableStream, Option<Meta>)>, Error> {
        let (value, meta) = self.0.get(key).stream_with_metadata().await?;
        Ok(value.map(|stream| (stream, readable(meta))))
    }

    async fn save(
        &self,
        key: &str,
        value: &[u8],
        meta: Option<&Meta>,
        ttl_seconds: u64,
    ) -> Result<(), Error> {
        let mut put = self.0.put_bytes(key, value)?.expiration_ttl(ttl_seconds);
        if let Some(meta) = meta {
            put = put.metadata(meta)?;
        }
        Ok(put.execute().await?)
    }

    async fn delete(&self, key: &str) -> Result<(), Error> {
        Ok(self.0.delete(key).await?)
    }
}

/// An in-memory store for native tests, counting operations like the KV bill does.
#[cfg(test)]
pub mod memory {
    use std::cell::{Cell, RefCell};
    use std::collections::HashMap;

    use super::*;

    /// Value, metadata and the TTL it was saved with.
    type Stored = (String, Option<Meta>, u64);

    #[derive(Default)]
    pub struct MemoryStore {
        pub entries: RefCell<HashMap<String, Stored>>,
        pub operations: Cell<u32>,
    }

    impl MemoryStore {
        pub fn insert_legacy(&self, key: &str, value: &str) {
            self.entries
                .borrow_mut()
                .insert(key.into(), (value.into(), None, 0));
        }

        pub fn value(&self, key: &str) -> Option<String> {
            self.entries
                .borrow()
                .get(key)
                .map(|(value, _, _)| value.clone())
        }

        pub fn kv_ttl(&self, key: &str) -> Option<u64> {
            self.entries.borrow().get(key).map(|(_, _, ttl)| *ttl)
        }

        /// Operations since the last call.
        pub fn take_operations(&self) -> u32 {
            self.operations.replace(0)
        }
    }

    impl Store for MemoryStore {
        type Body = String;

        async fn open(&self, key: &str) -> Result<Option<(String, Option<Meta>)>, Error> {
            let entry = self.load(key).await?;
            Ok(entry.map(|entry| (entry.value, entry.meta)))
        }

        async fn load(&self, key: &str) -> Result<Option<Entry>, Error> {
            self.operations.set(self.operations.get() + 1);
            Ok(self
                .entries
                .borrow()
                .get(key)
                .map(|(value, meta, _)| Entry {
                    value: value.clone(),
                    meta: *meta,
                }))
        }

        async fn save(
            &self,
            key: &str,
            value: &[u8],
            meta: Option<&Meta>,
            ttl_seconds: u64,
        ) -> Result<(), Error> {
            self.operations.set(self.operations.get() + 1);
            let value = String::from_utf8(value.to_vec())
                .map_err(|_| Error::Internal("not UTF-8".into()))?;
            self.entries
                .borrow_mut()
                .insert(key.into(), (value, meta.copied(), ttl_seconds));
            Ok(())
        }

        async fn delete(&self, key: &str) -> Result<(), Error> {
            self.operations.set(self.operations.get() + 1);
            self.entries.borrow_mut().remove(key);
            Ok(())
        }
    }

    /// Runs a future whose I/O is all in memory, hence ready at once.
    pub fn run<F: std::future::Future>(future: F) -> F::Output {
        let mut future = std::pin::pin!(future);
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        match future.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(output) => output,
            std::task::Poll::Pending => panic!("an in-memory future was pending"),
        }
    }
}
