//! A subject's index in strong mode: the subject's own Durable Object, a row per session.

use crate::domain::error::Error;
use crate::domain::id::SessionId;
use crate::domain::subject::Subject;
use crate::domain::time::Millis;
use crate::store::durable::{has_table, int, ObjectStorage, Value};
use crate::store::{Member, SubjectIndex};

/// The sessions of one subject, in its own Durable Object's SQLite storage: a row per session,
/// until the session's latest end. An alarm drops rows past it; an object with no rows left holds
/// nothing. Every operation is one synchronous statement or two, so the object needs no
/// `blockConcurrencyWhile`: session objects call it from inside theirs, and must never wait on
/// an object that waits on them.
pub struct SqlIndex<S>(pub S);

const INDEX_SCHEMA: &str = "CREATE TABLE IF NOT EXISTS member (
    id TEXT PRIMARY KEY,
    created_at INTEGER NOT NULL,
    until INTEGER NOT NULL
)";

impl<S: ObjectStorage> SqlIndex<S> {
    fn has_table(&self) -> Result<bool, Error> {
        has_table(&self.0, "member")
    }

    /// Sets the alarm for the first row to go, or clears the object when none is left.
    async fn schedule(&self) -> Result<(), Error> {
        let rows = self.0.exec("SELECT min(until) FROM member", vec![])?;
        match rows.first().and_then(|row| row.first()) {
            Some(Value::Integer(until)) => {
                self.0.set_alarm(u64::try_from(*until).unwrap_or(0)).await
            }
            _ => self.0.delete_all().await,
        }
    }

    /// The alarm: drops the rows whose session cannot be alive any more.
    pub async fn on_alarm(&self, now: Millis) -> Result<(), Error> {
        if !self.has_table()? {
            return self.0.delete_all().await;
        }
        self.0
            .exec("DELETE FROM member WHERE until <= ?", vec![int(now)])?;
        self.schedule().await
    }
}

impl<S: ObjectStorage> SubjectIndex for SqlIndex<S> {
    async fn add(
        &self,
        _: &Subject,
        member: Member,
        until: Millis,
        _: Millis,
    ) -> Result<(), Error> {
        self.0.exec(INDEX_SCHEMA, vec![])?;
        self.0.exec(
            "INSERT OR REPLACE INTO member (id, created_at, until) VALUES (?, ?, ?)",
            vec![
                Value::Text(member.id.to_string()),
                int(member.created_at),
                int(until),
            ],
        )?;
        self.schedule().await
    }

    async fn remove(&self, _: &Subject, id: &SessionId) -> Result<(), Error> {
        if !self.has_table()? {
            return Ok(());
        }
        self.0.exec(
            "DELETE FROM member WHERE id = ?",
            vec![Value::Text(id.to_string())],
        )?;
        self.schedule().await
    }

    async fn members(&self, _: &Subject) -> Result<Vec<Member>, Error> {
        if !self.has_table()? {
            return Ok(Vec::new());
        }
        let rows = self.0.exec(
            "SELECT id, created_at FROM member ORDER BY created_at",
            vec![],
        )?;
        Ok(rows
            .iter()
            .filter_map(|row| match (row.first(), row.get(1)) {
                (Some(Value::Text(id)), Some(Value::Integer(created_at))) => Some(Member {
                    id: SessionId::parse(id)?,
                    created_at: u64::try_from(*created_at).ok()?,
                }),
                _ => None,
            })
            .collect())
    }
}
