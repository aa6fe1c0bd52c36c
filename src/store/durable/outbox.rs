//! Strong mode's transactional outbox: a session's object writes each lifecycle event into its
//! own SQLite in the same transaction as the change it reports, and its alarm sends what waits
//! to the Queue, deleting the rows only once the send succeeded. A change is never committed
//! without its event, nor an event without its change; a failed send is tried again, later and
//! later ([`retry_delay`]). Delivery is at least once: a send that succeeded but whose rows
//! could not be deleted is sent again, with the same `eventId`.
//!
//! One row per event, written once and deleted once; the table exists only while events wait.

use crate::domain::error::Error;
use crate::domain::event::{retry_delay, Event};
use crate::domain::time::Millis;
use crate::store::durable::{int, ObjectStorage, Value};
use crate::store::events::{EventQueue, BATCH};
use crate::store::schema::OUTBOX_SCHEMA;

/// Adds `event`, due at once. Run it inside [`ObjectStorage::atomically`] with the change.
pub fn add(storage: &impl ObjectStorage, event: &Event, now: Millis) -> Result<(), Error> {
    storage.exec(OUTBOX_SCHEMA, vec![])?;
    storage.exec(
        "INSERT INTO outbox (event, due) VALUES (?, ?)",
        vec![Value::Text(event.as_str().into()), int(now)],
    )?;
    Ok(())
}

/// When the next delivery is due; `None` when nothing waits. The table must exist.
pub fn earliest(storage: &impl ObjectStorage) -> Result<Option<Millis>, Error> {
    let rows = storage.exec("SELECT MIN(due) FROM outbox", vec![])?;
    Ok(match rows.first().and_then(|row| row.first()) {
        Some(Value::Integer(at)) => Some(u64::try_from(*at).unwrap_or_default()),
        _ => None,
    })
}

/// What a delivery left.
#[derive(Debug, Default)]
pub struct Delivery {
    /// The send that failed, for the log: its events wait for the next try.
    pub failed: Option<Error>,
    /// When what is left is due; `None` when nothing is.
    pub next: Option<Millis>,
}

/// An empty outbox is no table at all: writes then need not ask it when it is due.
fn drained(storage: &impl ObjectStorage) -> Result<Delivery, Error> {
    storage.exec("DROP TABLE outbox", vec![])?;
    Ok(Delivery::default())
}

/// The most batches one alarm sends: what is left is due at once, for the next alarm.
const ROUNDS: usize = 10;

/// Sends the waiting events, oldest first, a batch at a time, and deletes each batch once it
/// was sent. A failed send leaves its batch (and all after it) for a later try. The table must
/// exist; nothing else may write it meanwhile (the object runs its alarm alone).
pub async fn deliver(
    storage: &impl ObjectStorage,
    queue: &impl EventQueue,
    now: Millis,
) -> Result<Delivery, Error> {
    for _ in 0..ROUNDS {
        let rows = storage.exec(
            "SELECT seq, event, attempts FROM outbox ORDER BY seq LIMIT ?",
            vec![int(BATCH as u64)],
        )?;
        let (mut last, mut attempts, mut texts) = (None, 0, Vec::with_capacity(rows.len()));
        for row in &rows {
            let [Value::Integer(seq), Value::Text(text), Value::Integer(tried)] = row.as_slice()
            else {
                return Err(Error::Internal("a malformed outbox row".into()));
            };
            (last, attempts) = (Some(*seq), attempts.max(*tried));
            texts.push(text.as_str());
        }
        let Some(last) = last else {
            return drained(storage);
        };
        if let Err(err) = queue.send(&texts).await {
            let attempts = u32::try_from(attempts)
                .unwrap_or(u32::MAX)
                .saturating_add(1);
            storage.exec(
                "UPDATE outbox SET attempts = ?, due = ?",
                vec![int(attempts.into()), int(now + retry_delay(attempts))],
            )?;
            let failed = err.with_cause(format!("{} events wait, try {attempts}", texts.len()));
            return Ok(Delivery {
                failed: Some(failed),
                next: Some(now + retry_delay(attempts)),
            });
        }
        if texts.len() < BATCH {
            // That was all of it: the table goes with its rows, in one statement.
            return drained(storage);
        }
        storage.exec(
            "DELETE FROM outbox WHERE seq <= ?",
            vec![Value::Integer(last)],
        )?;
    }
    Ok(Delivery {
        failed: None,
        next: Some(now),
    })
}
