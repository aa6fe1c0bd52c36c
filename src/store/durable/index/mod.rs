//! A subject's index in strong mode: the subject's own Durable Object, a row per session, by
//! handle and storage key (no id), with what a listing shows of it: the lifecycle its object
//! reports, and its device info, sealed.

use crate::domain::binding::Alg;
use crate::domain::derive::Handle;
use crate::domain::error::Error;
use crate::domain::subject::Subject;
use crate::domain::time::Millis;
use crate::store::durable::{int, ObjectStorage, Value};
use crate::store::schema::{ENDED_SCHEMA, INDEX_NEW_COLUMNS, INDEX_SCHEMA};
use crate::store::{
    Activity, Choice, DeviceInfo, Entry, EntryKey, NewEntry, SessionRef, SubjectIndex,
};

/// The sessions of one subject, in its own Durable Object's SQLite storage: a row per session,
/// until the session's latest end. An alarm drops rows past it; an object with no rows left holds
/// nothing. Every operation is a few synchronous statements, so the object takes no turns (see
/// `edge::gate`): session objects call it from inside theirs, and must never wait on an object
/// that waits on them.
///
/// A listing is answered from the rows alone, without calling the sessions' objects: each session's
/// object reports its lifecycle at creation and at its first write in every renewal interval
/// ([`SubjectIndex::add`], [`SubjectIndex::report`]), so a row's `expires_at` is never later
/// than the session's own, and at most an interval earlier. Only a row whose reported expiry
/// has passed, but whose latest end has not, is checked with its object (it may have been
/// renewed since, or have ended).
///
/// Indexes of the earlier strong mode hold ids (table `member`). Those rows are listed as they
/// are, by id, until their session has moved under its storage key (a listing then rewrites
/// each by handle and key, [`SubjectIndex::upgrade`]); the table goes with its last row.
pub struct SqlIndex<S>(pub S);

mod lineage;
mod rows;

/// Which of the index's tables exist: `entry`, `ended`, and `member` of the earlier version.
#[derive(Clone, Copy)]
struct Tables {
    entry: bool,
    ended: bool,
    key: bool,
}

impl<S: ObjectStorage> SqlIndex<S> {
    /// Both tables' existence, in one statement (an operation asks once); a table `entry` of
    /// the previous version gets its new columns on sight.
    fn tables(&self) -> Result<Tables, Error> {
        let rows = self.0.exec(
            "SELECT name, sql FROM sqlite_master WHERE type = 'table' \
             AND name IN ('entry', 'ended', 'member')",
            vec![],
        )?;
        let schema = |table: &str| {
            rows.iter().find_map(|row| match &row[..] {
                [Value::Text(name), Value::Text(sql)] if name == table => Some(sql.as_str()),
                _ => None,
            })
        };
        if let Some(sql) = schema("entry") {
            for (column, statement) in INDEX_NEW_COLUMNS {
                if !sql.contains(column) {
                    self.0.exec(statement, vec![])?;
                }
            }
        }
        Ok(Tables {
            entry: schema("entry").is_some(),
            ended: schema("ended").is_some(),
            key: schema("member").is_some(),
        })
    }

    /// Lists the entry's member by handle and key until its `until`; an entry that moved from
    /// a lineage a revocation ended is refused (`SessionNotFound`).
    fn insert(&self, entry: &NewEntry<'_>, tables: Tables) -> Result<(), Error> {
        if let (DeviceInfo::Like(from), true) = (entry.device, tables.ended) {
            let ended = self.0.exec(
                "SELECT 1 FROM ended WHERE handle = ?",
                vec![Value::Text(from.handle.to_string())],
            )?;
            if !ended.is_empty() {
                return Err(Error::SessionNotFound);
            }
        }
        self.0.exec(INDEX_SCHEMA, vec![])?;
        let member = &entry.key;
        let mut params = vec![
            Value::Text(member.handle.to_string()),
            Value::Text(member.at.storage_key().name()),
            int(member.created_at),
            int(entry.until),
            int(entry.activity.updated_at),
            int(entry.activity.expires_at),
            int(entry.activity.auth.at),
            int(u64::from(entry.activity.auth.level.get())),
            bound_value(entry.activity.bound),
        ];
        let (device, moved_from) = match entry.device {
            DeviceInfo::None => ("NULL", "NULL"),
            DeviceInfo::Sealed(bytes) => {
                params.push(Value::Blob(bytes.to_vec()));
                ("?", "NULL")
            }
            DeviceInfo::Like(from) => {
                params.push(Value::Text(from.handle.to_string()));
                params.push(Value::Text(from.handle.to_string()));
                ("(SELECT device FROM entry WHERE handle = ?)", "?")
            }
        };
        self.0.exec(
            &format!(
                "INSERT OR REPLACE INTO entry (handle, key, created_at, until, updated_at, \
                 expires_at, auth_at, auth_level, bound, device, moved_from) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, {device}, {moved_from})"
            ),
            params,
        )?;
        Ok(())
    }

    /// Sets the alarm for the first row to go, or clears the object when none is left; the old
    /// table goes with its last row.
    async fn schedule(&self, tables: Tables) -> Result<(), Error> {
        let mut first: Option<i64> = None;
        let all = [
            ("entry", tables.entry),
            ("ended", tables.ended),
            ("member", tables.key),
        ];
        for (table, exists) in all {
            if !exists {
                continue;
            }
            let rows = self
                .0
                .exec(&format!("SELECT min(until) FROM {table}"), vec![])?;
            match rows.first().and_then(|row| row.first()) {
                Some(Value::Integer(until)) => {
                    first = Some(first.map_or(*until, |known| known.min(*until)))
                }
                _ if table == "member" => {
                    self.0.exec("DROP TABLE member", vec![])?;
                }
                _ => {}
            }
        }
        match first {
            Some(until) => self.0.set_alarm(u64::try_from(until).unwrap_or(0)).await,
            None => self.0.delete_all().await,
        }
    }

    /// The alarm: drops the rows whose session cannot be alive any more.
    pub async fn on_alarm(&self, now: Millis) -> Result<(), Error> {
        let tables = self.tables()?;
        let all = [
            ("entry", tables.entry),
            ("ended", tables.ended),
            ("member", tables.key),
        ];
        for (table, exists) in all {
            if exists {
                self.0.exec(
                    &format!("DELETE FROM {table} WHERE until <= ?"),
                    vec![int(now)],
                )?;
            }
        }
        self.schedule(tables).await
    }
}

impl<S: ObjectStorage> SubjectIndex for SqlIndex<S> {
    async fn add(&self, _: &Subject, entry: &NewEntry<'_>, _: Millis) -> Result<(), Error> {
        let tables = self.tables()?;
        self.insert(entry, tables)?;
        self.schedule(Tables {
            entry: true,
            ..tables
        })
        .await
    }

    /// Removes the entry with the member's handle, in either form.
    async fn remove(&self, _: &Subject, member: &EntryKey) -> Result<(), Error> {
        let tables = self.tables()?;
        if !tables.entry && !tables.key {
            return Ok(());
        }
        if tables.entry {
            self.0.exec(
                "DELETE FROM entry WHERE handle = ?",
                vec![Value::Text(member.handle.to_string())],
            )?;
        }
        for (id, _) in self.legacy_rows(tables)? {
            if Handle::of(&id) == member.handle {
                self.delete_legacy_row(&id)?;
            }
        }
        self.schedule(tables).await
    }

    async fn members(&self, _: &Subject) -> Result<Vec<Entry>, Error> {
        let entries = self.entries(self.tables()?)?;
        Ok(entries.into_iter().map(|(entry, _)| entry).collect())
    }

    /// In one step, with no await between the reading and the writing (this object serves
    /// other requests while its own await): the chosen entries and every one that moved from
    /// them leave `entry` for `ended`, where they stay until their session's latest end.
    async fn take(&self, _: &Subject, choice: &Choice<'_>) -> Result<Vec<Entry>, Error> {
        let tables = self.tables()?;
        let entries = self.entries(tables)?;
        let chosen = lineage::chosen(&entries, choice);
        if chosen.is_empty() {
            return Ok(Vec::new());
        }
        self.0.exec(ENDED_SCHEMA, vec![])?;
        for handle in &chosen {
            let handle = Value::Text(handle.to_string());
            if tables.entry {
                self.0.exec(
                    "INSERT OR REPLACE INTO ended (handle, until) \
                     SELECT handle, until FROM entry WHERE handle = ?",
                    vec![handle.clone()],
                )?;
                self.0
                    .exec("DELETE FROM entry WHERE handle = ?", vec![handle])?;
            }
        }
        let legacy = self.legacy_rows(tables)?;
        for (id, _) in legacy
            .iter()
            .filter(|(id, _)| chosen.contains(&Handle::of(id)))
        {
            self.0.exec(
                "INSERT OR REPLACE INTO ended (handle, until) SELECT ?, until FROM member \
                 WHERE id = ?",
                vec![
                    Value::Text(Handle::of(id).to_string()),
                    Value::Text(id.to_string()),
                ],
            )?;
            self.delete_legacy_row(id)?;
        }
        let taken = entries
            .into_iter()
            .filter(|(entry, _)| chosen.contains(&entry.key.handle))
            .map(|(entry, _)| entry)
            .collect();
        self.schedule(Tables {
            ended: true,
            ..tables
        })
        .await?;
        Ok(taken)
    }

    /// Keeps the latest lifecycle reported: reports may arrive out of order.
    async fn report(&self, _: &Subject, handle: &Handle, activity: Activity) -> Result<(), Error> {
        if !self.tables()?.entry {
            return Ok(());
        }
        self.0.exec(
            "UPDATE entry SET updated_at = ?, expires_at = ?, auth_at = ?, auth_level = ?, \
             bound = ? WHERE handle = ? AND (updated_at IS NULL OR updated_at <= ?)",
            vec![
                int(activity.updated_at),
                int(activity.expires_at),
                int(activity.auth.at),
                int(u64::from(activity.auth.level.get())),
                bound_value(activity.bound),
                Value::Text(handle.to_string()),
                int(activity.updated_at),
            ],
        )?;
        Ok(())
    }

    /// An old row whose session has moved: rewritten by handle and key.
    async fn upgrade(
        &self,
        _: &Subject,
        member: &EntryKey,
        until: Millis,
        activity: Activity,
        _: Millis,
    ) -> Result<(), Error> {
        let SessionRef::Id(id) = member.at else {
            return Ok(());
        };
        let tables = self.tables()?;
        self.insert(
            &NewEntry {
                key: *member,
                until,
                activity,
                device: DeviceInfo::None,
            },
            tables,
        )?;
        if tables.key {
            self.delete_legacy_row(&id)?;
        }
        self.schedule(Tables {
            entry: true,
            ..tables
        })
        .await
    }
}

/// The `bound` column: the device key's algorithm, or `NULL`.
fn bound_value(bound: Option<Alg>) -> Value {
    bound.map_or(Value::Null, |alg| Value::Text(alg.name().into()))
}

#[cfg(all(test, not(target_arch = "wasm32")))]
pub(crate) mod tests {
    use super::*;
    use crate::domain::auth::Auth;
    use crate::domain::derive::StorageKey;
    use crate::domain::id::SessionId;
    use crate::domain::session::fixtures::{S, T0};
    use crate::store::durable::has_table;
    use crate::store::memory::run;
    use crate::store::memory::sqlite::SqliteStorage;
    use crate::store::schema::{LEGACY_ENTRY_SCHEMA, LEGACY_MEMBER_SCHEMA};

    pub(crate) fn id(n: u8) -> SessionId {
        SessionId::from_random_bytes([n; 16])
    }

    /// The entry of session `n` (by storage key, as strong mode lists it), created at `created_at`.
    pub(crate) fn keyed(n: u8, created_at: Millis) -> EntryKey {
        EntryKey {
            handle: Handle::of(&id(n)),
            at: SessionRef::Key(StorageKey::of(&id(n))),
            created_at,
        }
    }

    fn members_of(entries: Vec<Entry>) -> Vec<EntryKey> {
        entries.into_iter().map(|entry| entry.key).collect()
    }

    fn new_entry(member: EntryKey, until: Millis, device: DeviceInfo<'_>) -> NewEntry<'_> {
        NewEntry {
            key: member,
            until,
            activity: Activity {
                updated_at: member.created_at,
                expires_at: member.created_at + 30 * S,
                auth: Auth::at_creation(T0),
                bound: None,
            },
            device,
        }
    }

    #[test]
    fn the_sql_index_keeps_members_until_their_end_and_then_nothing() {
        let index = SqlIndex(SqliteStorage::default());
        let subject = Subject::new(b"ada", None).unwrap();
        assert_eq!(run(index.members(&subject)).unwrap(), vec![]);
        assert!(index.0.is_empty(), "reading creates nothing");
        let first = keyed(1, T0);
        let second = keyed(2, T0 + S);
        run(index.add(
            &subject,
            &new_entry(first, T0 + 10 * S, DeviceInfo::None),
            T0,
        ))
        .unwrap();
        run(index.add(
            &subject,
            &new_entry(second, T0 + 20 * S, DeviceInfo::None),
            T0,
        ))
        .unwrap();
        assert_eq!(
            members_of(run(index.members(&subject)).unwrap()),
            vec![first, second]
        );
        assert_eq!(
            index.0.alarm.get(),
            Some(T0 + 10 * S),
            "for the first to go"
        );
        run(index.on_alarm(T0 + 10 * S)).unwrap();
        assert_eq!(
            members_of(run(index.members(&subject)).unwrap()),
            vec![second]
        );
        assert_eq!(index.0.alarm.get(), Some(T0 + 20 * S));
        run(index.remove(&subject, &second)).unwrap();
        assert!(index.0.is_empty(), "the last one leaves nothing behind");
    }

    #[test]
    fn the_sql_index_keeps_the_latest_lifecycle_and_carries_devices_over() {
        let index = SqlIndex(SqliteStorage::default());
        let subject = Subject::new(b"ada", None).unwrap();
        let (first, rotated) = (keyed(1, T0), keyed(2, T0));
        let sealed = [7u8; 40];
        run(index.add(
            &subject,
            &new_entry(first, T0 + 99 * S, DeviceInfo::Sealed(&sealed)),
            T0,
        ))
        .unwrap();
        let later = Activity {
            updated_at: T0 + 5 * S,
            expires_at: T0 + 35 * S,
            auth: Auth::at_creation(T0),
            bound: None,
        };
        let earlier = Activity {
            updated_at: T0 + 4 * S,
            expires_at: T0 + 34 * S,
            auth: Auth::at_creation(T0),
            bound: None,
        };
        run(index.report(&subject, &first.handle, later)).unwrap();
        run(index.report(&subject, &first.handle, earlier)).unwrap();
        let like = DeviceInfo::Like(first);
        run(index.add(&subject, &new_entry(rotated, T0 + 99 * S, like), T0)).unwrap();
        let entries = run(index.members(&subject)).unwrap();
        assert_eq!(
            entries[0].activity,
            Some(later),
            "a late report does not go back"
        );
        assert_eq!(entries[0].device.as_deref(), Some(&sealed[..]));
        assert_eq!(
            entries[1].device.as_deref(),
            Some(&sealed[..]),
            "carried over"
        );
        run(index.report(&subject, &keyed(9, T0).handle, later)).unwrap();
        assert_eq!(
            run(index.members(&subject)).unwrap().len(),
            2,
            "no row for an unknown one"
        );
    }

    #[test]
    fn an_index_of_the_previous_version_gets_its_new_columns_on_sight() {
        let index = SqlIndex(SqliteStorage::default());
        let subject = Subject::new(b"ada", None).unwrap();
        index.0.exec(LEGACY_ENTRY_SCHEMA, vec![]).unwrap();
        let key = StorageKey::of(&id(1)).name();
        index
            .0
            .exec(
                "INSERT INTO entry (handle, key, created_at, until) VALUES (?, ?, ?, ?)",
                vec![
                    Value::Text(Handle::of(&id(1)).to_string()),
                    Value::Text(key),
                    int(T0),
                    int(T0 + 10 * S),
                ],
            )
            .unwrap();
        let entries = run(index.members(&subject)).unwrap();
        assert_eq!(
            entries,
            vec![Entry {
                key: keyed(1, T0),
                activity: None,
                device: None
            }],
            "listed, its lifecycle unknown until checked"
        );
        run(index.add(
            &subject,
            &new_entry(keyed(2, T0), T0 + 10 * S, DeviceInfo::None),
            T0,
        ))
        .unwrap();
        assert_eq!(run(index.members(&subject)).unwrap().len(), 2);
    }

    fn reveals(dump: &str, n: u8) -> bool {
        let text = id(n).to_string();
        dump.contains(&text) || dump.contains(&text.replace('-', ""))
    }

    #[test]
    fn an_index_of_the_earlier_strong_mode_is_rewritten_by_handle_once_each_session_moved() {
        let index = SqlIndex(SqliteStorage::default());
        let subject = Subject::new(b"ada", None).unwrap();
        index.0.exec(LEGACY_MEMBER_SCHEMA, vec![]).unwrap();
        for n in 1..=3 {
            index
                .0
                .exec(
                    "INSERT INTO member (id, created_at, until) VALUES (?, ?, ?)",
                    vec![Value::Text(id(n).to_string()), int(T0), int(T0 + 10 * S)],
                )
                .unwrap();
        }
        let old: Vec<EntryKey> = (1..=3).map(|n| EntryKey::of(id(n), T0)).collect();
        assert_eq!(
            members_of(run(index.members(&subject)).unwrap()),
            old,
            "listed by id"
        );
        let seen = Activity {
            updated_at: T0,
            expires_at: T0 + 5 * S,
            auth: Auth::at_creation(T0),
            bound: None,
        };
        run(index.upgrade(&subject, &old[0], T0 + 10 * S, seen, T0)).unwrap();
        let rows = index.0.dump();
        assert!(!reveals(&rows, 1) && reveals(&rows, 2), "{rows}");
        run(index.remove(&subject, &EntryKey::of(id(2), T0))).unwrap();
        run(index.upgrade(&subject, &old[2], T0 + 10 * S, seen, T0)).unwrap();
        assert_eq!(
            members_of(run(index.members(&subject)).unwrap()),
            vec![keyed(1, T0), keyed(3, T0)]
        );
        assert!(
            !has_table(&index.0, "member").unwrap(),
            "the old table goes with its last row"
        );
        let rows = index.0.dump();
        assert!((1..=3).all(|n| !reveals(&rows, n)), "{rows}");
    }
}
