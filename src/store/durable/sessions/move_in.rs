//! Sessions stored elsewhere move into their object on first use, all or nothing: a session in
//! KV (KV mode, or the old worker), or one in an object of the earlier strong mode, named by its
//! id ([`crate::store::durable::legacy`]). The copy here is written first, then the old one
//! deleted; if that fails, the copy here is removed again and the request fails, to be retried.

use super::{LegacyObjects, SqlSessions};
use crate::domain::derive::WrapKey;
use crate::domain::error::Error;
use crate::domain::id::SessionId;
use crate::domain::session::Meta;
use crate::store::durable::legacy::Held;
use crate::store::durable::record::{row_params, WRITES};
use crate::store::durable::{int, ObjectStorage, Value};
use crate::store::seal::Aead;
use crate::store::{Expect, KeyValue, Record, SessionStore, Stored};

impl<S: ObjectStorage, K: KeyValue, P: SessionStore + LegacyObjects, A: Aead>
    SqlSessions<S, K, P, A>
{
    /// A session found elsewhere, moved here: from an object of the earlier strong mode, else
    /// from KV.
    pub(super) async fn move_in(&self, id: &SessionId) -> Result<Option<Record>, Error> {
        // Only UUIDs were ever objects of the earlier strong mode.
        if self.serve_legacy && id.is_uuid() {
            match self.peers.held(id).await? {
                Held::Live { record, kv_copy } => {
                    return self
                        .take(id, record, Source::LegacyObject { kv_copy })
                        .await;
                }
                // Its KV copy may still be served somewhere: it must not come back from there.
                Held::Ended => return Ok(None),
                Held::Nothing => {}
            }
        }
        // A renewed id's retirement in KV (written in KV mode) does not move: its successor
        // moves in on its own first use, and the old id is then unknown here, as after a
        // rotation.
        let Some(record) = self.kv.load(id).await?.and_then(Stored::session) else {
            return Ok(None);
        };
        self.take(id, record, Source::Kv).await
    }

    /// Writes `record` here, then removes it where it was; undone if that fails.
    async fn take(
        &self,
        id: &SessionId,
        record: Record,
        from: Source,
    ) -> Result<Option<Record>, Error> {
        // Entries of the old worker have no lifecycle: moving counts as their first write of
        // metadata, so they expire like any other session from now on.
        let meta = record
            .meta
            .unwrap_or_else(|| Meta::legacy(self.now, self.policy));
        if !meta.is_alive(self.now) {
            return Ok(None);
        }
        let sealed = self
            .sealer
            .seal(
                &WrapKey::of(id),
                &self.key,
                &meta,
                record.data.as_bytes().into(),
            )
            .await?;
        self.create_table()?;
        let mut params = row_params(id, &self.key, sealed, &meta);
        let kv_copy = matches!(from, Source::Kv | Source::LegacyObject { kv_copy: true });
        params.push(if kv_copy { int(self.now) } else { Value::Null });
        self.storage.exec(&WRITES.moved_in, params)?;
        let removed = async {
            if let Source::LegacyObject { .. } = from {
                self.peers.empty(id).await?;
            }
            if kv_copy {
                let _ = self.kv.remove(id, Expect::Any, None).await?;
            }
            self.storage.set_alarm(meta.expires_at).await
        };
        if let Err(err) = removed.await {
            self.delete_all().await?;
            return Err(err.with_cause("moving a session in".into()));
        }
        Ok(Some(Record {
            data: record.data,
            meta: Some(meta),
        }))
    }
}

/// Where a session moving in was.
#[derive(Clone, Copy)]
enum Source {
    Kv,
    /// An object of the earlier strong mode; `kv_copy` when it had come from KV and its copy
    /// there may remain.
    LegacyObject {
        kv_copy: bool,
    },
}
