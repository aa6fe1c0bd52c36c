//! Objects of strong mode before keys were hashed: named by the bare id, their one row holding
//! the id and the data in the clear (table `session`). Nothing writes them any more; a session's
//! object of this version takes the session over on first use ([`super::sessions`]) and empties
//! the old object. Until then each keeps serving its own alarm.

use crate::domain::auth::Auth;
use crate::domain::error::Error;
use crate::domain::id::SessionId;
use crate::domain::session::Meta;
use crate::domain::subject::Subject;
use crate::domain::time::Millis;
use crate::store::durable::{has_table, ObjectStorage, Value};
use crate::store::schema::LEGACY_SESSION_COLUMNS;
use crate::store::Record;

/// How long an ended session moved from KV kept its marker after its KV copy was deleted (KV can
/// serve a deleted value at other locations for about 60 s).
pub const KV_STALE_MS: Millis = 10 * 60 * 1000;

/// What an old object holds.
#[derive(Debug, PartialEq, Eq)]
pub enum Held {
    /// Its session, alive; `kv_copy` when it came from KV and the copy there may remain.
    Live { record: Record, kv_copy: bool },
    /// A session that ended recently after moving in from KV: KV may still serve a stale copy,
    /// which must not be brought back.
    Ended,
    /// Nothing (never was, or expired).
    Nothing,
}

fn number(row: &[Value], index: usize) -> Option<u64> {
    match row.get(index) {
        Some(Value::Integer(n)) => u64::try_from(*n).ok(),
        _ => None,
    }
}

/// The old object's row, its id among it.
fn read(storage: &impl ObjectStorage) -> Result<Option<(SessionId, Vec<Value>)>, Error> {
    if !has_table(storage, "session")? {
        return Ok(None);
    }
    let rows = storage.exec(
        &format!("SELECT {LEGACY_SESSION_COLUMNS} FROM session"),
        vec![],
    )?;
    let Some(row) = rows.into_iter().next() else {
        return Ok(None);
    };
    let id = match row.first() {
        Some(Value::Text(id)) => SessionId::parse(id),
        _ => None,
    };
    Ok(id.map(|id| (id, row)))
}

/// What the old object holds at `now`.
pub fn held(storage: &impl ObjectStorage, now: Millis) -> Result<Held, Error> {
    let Some((_, row)) = read(storage)? else {
        return Ok(Held::Nothing);
    };
    let from_kv = number(&row, 7) == Some(1);
    let kv_deleted_at = number(&row, 8);
    let data = match row.get(1) {
        Some(Value::Text(data)) => Some(data.clone()),
        _ => None,
    };
    let meta = || -> Option<Meta> {
        let created_at = number(&row, 2)?;
        Some(Meta {
            created_at,
            updated_at: number(&row, 3)?,
            expires_at: number(&row, 4)?,
            version: number(&row, 5)?,
            ttl: number(&row, 6),
            subject: match row.get(9) {
                Some(Value::Text(hex)) => Subject::from_hex(hex),
                _ => None,
            },
            auth: Auth::at_creation(created_at),
            binding: None,
        })
    };
    Ok(match (data, meta()) {
        (Some(data), Some(meta)) if meta.is_alive(now) => Held::Live {
            record: Record {
                data,
                meta: Some(meta),
            },
            kv_copy: from_kv && kv_deleted_at.is_none(),
        },
        _ if from_kv && kv_deleted_at.is_none_or(|at| now < at + KV_STALE_MS) => Held::Ended,
        _ => Held::Nothing,
    })
}

/// The old object's alarm: it ends itself once nothing it holds matters any more, else wakes
/// again when that will be so. Returns the id when a KV copy is left to delete first.
pub async fn on_alarm(
    storage: &impl ObjectStorage,
    now: Millis,
) -> Result<Option<SessionId>, Error> {
    let Some((id, row)) = read(storage)? else {
        storage.delete_all().await?;
        return Ok(None);
    };
    match held(storage, now)? {
        Held::Live { record, .. } => {
            let at = record.meta.map_or(now, |meta| meta.expires_at);
            storage.set_alarm(at).await?;
            Ok(None)
        }
        Held::Ended => match number(&row, 8) {
            Some(deleted) => {
                storage.set_alarm(deleted + KV_STALE_MS).await?;
                Ok(None)
            }
            None => Ok(Some(id)),
        },
        Held::Nothing => {
            storage.delete_all().await?;
            Ok(None)
        }
    }
}

/// Records that the KV copy of the old object's session is gone, at `now`.
pub fn kv_copy_deleted(storage: &impl ObjectStorage, now: Millis) -> Result<(), Error> {
    storage.exec(
        "UPDATE session SET kv_deleted_at = ?",
        vec![crate::store::durable::int(now)],
    )?;
    Ok(())
}
