//! The session operations behind the routes: load, check, renew, store. Generic over [`Store`],
//! so every rule here runs natively against an in-memory store.
//!
//! KV operations per call, the least each can do: create 1, get 1, update 2, add 2, touch 2,
//! delete 1 (2 with `If-Match`), rotate 3.

use crate::error::Error;
use crate::id::SessionId;
use crate::object::{BodyError, Object};
use crate::session::{Meta, Millis, Policy};
use crate::store::Store;

/// A live session as read: its data exactly as stored, and its metadata.
#[derive(Debug)]
pub struct Session {
    pub data: String,
    pub meta: Meta,
}

/// How `PATCH /add` combines the body with the stored data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Merge {
    /// Top-level keys replace top-level keys (`application/json`), as the old worker did.
    Shallow,
    /// RFC 7396 JSON Merge Patch (`application/merge-patch+json`).
    MergePatch,
}

/// The `If-Match` precondition of a write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IfMatch {
    Any,
    /// Strong entity tags naming versions; tags in any other form never match.
    Versions(Vec<u64>),
}

impl IfMatch {
    pub fn parse(header: &str) -> Self {
        if header.trim() == "*" {
            return IfMatch::Any;
        }
        let versions = header
            .split(',')
            .filter_map(|tag| {
                tag.trim()
                    .strip_prefix('"')?
                    .strip_suffix('"')?
                    .parse()
                    .ok()
            })
            .collect();
        IfMatch::Versions(versions)
    }

    fn allows(&self, version: u64) -> bool {
        match self {
            IfMatch::Any => true,
            IfMatch::Versions(versions) => versions.contains(&version),
        }
    }
}

/// The `ETag` of a session version.
pub fn etag(version: u64) -> String {
    format!("\"{version}\"")
}

pub struct Sessions<'s, S> {
    store: &'s S,
    policy: Policy,
}

impl<'s, S: Store> Sessions<'s, S> {
    pub fn new(store: &'s S, policy: Policy) -> Self {
        Self { store, policy }
    }

    /// Stores `data` (an already validated JSON object) under a new id chosen by the caller of
    /// this function, never by the client.
    pub async fn create(
        &self,
        id: SessionId,
        data: &[u8],
        ttl: Option<u64>,
        now: Millis,
    ) -> Result<Meta, Error> {
        let meta = Meta::new(now, ttl, self.policy);
        self.save(&id, data, &meta, now).await?;
        Ok(meta)
    }

    /// The live session, or `SessionNotFound`. Never writes.
    pub async fn get(&self, id: &SessionId, now: Millis) -> Result<Session, Error> {
        let entry = self.store.load(&id.to_string()).await?;
        let entry = entry.ok_or(Error::SessionNotFound)?;
        let meta = self.live(entry.meta, now)?;
        Ok(Session {
            data: entry.value,
            meta,
        })
    }

    /// Like `get`, with the data left in the store's own form (a stream, in KV) for a response.
    pub async fn read(&self, id: &SessionId, now: Millis) -> Result<(S::Body, Meta), Error> {
        let (body, meta) = self
            .store
            .open(&id.to_string())
            .await?
            .ok_or(Error::SessionNotFound)?;
        Ok((body, self.live(meta, now)?))
    }

    /// The metadata of a stored session that is still alive at `now`.
    fn live(&self, meta: Option<Meta>, now: Millis) -> Result<Meta, Error> {
        match meta {
            Some(meta) if meta.is_alive(now) => Ok(meta),
            Some(_) => Err(Error::SessionNotFound),
            None => Ok(Meta::legacy(now, self.policy)),
        }
    }

    /// Replaces the data of an existing session.
    pub async fn replace(
        &self,
        id: &SessionId,
        data: &[u8],
        if_match: Option<&IfMatch>,
        now: Millis,
    ) -> Result<Meta, Error> {
        let current = self.get_matching(id, if_match, now).await?;
        let meta = current.meta.written(now, self.policy);
        self.save(id, data, &meta, now).await?;
        Ok(meta)
    }

    /// Merges `patch` (an already validated JSON object) into an existing session and returns
    /// the merged data.
    pub async fn merge(
        &self,
        id: &SessionId,
        patch: &str,
        how: Merge,
        if_match: Option<&IfMatch>,
        now: Millis,
    ) -> Result<(Vec<u8>, Meta), Error> {
        let patch = Object::parse(patch).map_err(body_error)?;
        let current = self.get_matching(id, if_match, now).await?;
        let target = Object::parse_or_empty(&current.data)
            .map_err(|_| Error::Internal(format!("session {} holds invalid JSON", id.short())))?;
        let merged = match how {
            Merge::Shallow => {
                let mut target = target;
                target.merge_shallow(&patch);
                target.to_json()
            }
            Merge::MergePatch => target.merge_patch(&patch),
        };
        let meta = current.meta.written(now, self.policy);
        self.save(id, &merged, &meta, now).await?;
        Ok((merged, meta))
    }

    /// Renews the expiry; data and version stay as they are.
    pub async fn touch(&self, id: &SessionId, now: Millis) -> Result<Meta, Error> {
        let current = self.get(id, now).await?;
        let meta = current.meta.touched(now, self.policy);
        self.save(id, current.data.as_bytes(), &meta, now).await?;
        Ok(meta)
    }

    /// Moves the session to `new_id` and deletes the old entry. `createdAt` is kept, so rotating
    /// never extends the absolute lifetime.
    pub async fn rotate(
        &self,
        id: &SessionId,
        new_id: SessionId,
        now: Millis,
    ) -> Result<Meta, Error> {
        let current = self.get(id, now).await?;
        let meta = current.meta.written(now, self.policy);
        self.save(&new_id, current.data.as_bytes(), &meta, now)
            .await?;
        self.store.delete(&id.to_string()).await?;
        Ok(meta)
    }

    /// Deletes the session; a missing one is already deleted. With `If-Match`, the session must
    /// exist at a matching version: a missing one is `404`, as for the other conditional writes.
    pub async fn delete(
        &self,
        id: &SessionId,
        if_match: Option<&IfMatch>,
        now: Millis,
    ) -> Result<(), Error> {
        if let Some(condition) = if_match {
            match self.get(id, now).await {
                Ok(current) if condition.allows(current.meta.version) => {}
                Ok(_) => return Err(Error::PreconditionFailed),
                Err(err) => return Err(err),
            }
        }
        self.store.delete(&id.to_string()).await
    }

    async fn get_matching(
        &self,
        id: &SessionId,
        if_match: Option<&IfMatch>,
        now: Millis,
    ) -> Result<Session, Error> {
        let current = self.get(id, now).await?;
        match if_match {
            Some(condition) if !condition.allows(current.meta.version) => {
                Err(Error::PreconditionFailed)
            }
            _ => Ok(current),
        }
    }

    async fn save(
        &self,
        id: &SessionId,
        data: &[u8],
        meta: &Meta,
        now: Millis,
    ) -> Result<(), Error> {
        self.store
            .save(&id.to_string(), data, Some(meta), meta.kv_ttl(now))
            .await
    }
}

/// Maps a body that is not a JSON object to its contract error.
pub fn body_error(err: BodyError) -> Error {
    match err {
        BodyError::NotJson => Error::InvalidJson,
        BodyError::NotObject => Error::InvalidBody("a JSON object"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::fixtures::{POLICY, S, T0};
    use crate::store::memory::{run, MemoryStore};

    fn id(n: u8) -> SessionId {
        SessionId::from_random_bytes([n; 16])
    }

    fn setup() -> MemoryStore {
        MemoryStore::default()
    }

    #[test]
    fn create_then_get_costs_one_operation_each() {
        let store = setup();
        let sessions = Sessions::new(&store, POLICY);
        let meta = run(sessions.create(id(1), br#"{"user":"ada"}"#, None, T0)).unwrap();
        assert_eq!(store.take_operations(), 1);
        assert_eq!(meta.version, 1);
        assert_eq!(store.kv_ttl(&id(1).to_string()), Some(1800));
        let session = run(sessions.get(&id(1), T0 + S)).unwrap();
        assert_eq!(store.take_operations(), 1);
        assert_eq!(session.data, r#"{"user":"ada"}"#);
        assert_eq!(session.meta, meta, "a read does not renew");
    }

    #[test]
    fn read_sees_what_get_sees() {
        let store = setup();
        let sessions = Sessions::new(&store, POLICY);
        let meta = run(sessions.create(id(1), br#"{"a":1}"#, Some(2), T0)).unwrap();
        store.take_operations();
        let (body, read_meta) = run(sessions.read(&id(1), T0 + S)).unwrap();
        assert_eq!(store.take_operations(), 1);
        assert_eq!((body.as_str(), read_meta), (r#"{"a":1}"#, meta));
        assert!(matches!(
            run(sessions.read(&id(1), T0 + 2 * S)),
            Err(Error::SessionNotFound)
        ));
        assert!(matches!(
            run(sessions.read(&id(2), T0)),
            Err(Error::SessionNotFound)
        ));
        store.insert_legacy(&id(3).to_string(), "{}");
        assert_eq!(run(sessions.read(&id(3), T0)).unwrap().1.version, 0);
    }

    #[test]
    fn an_expired_session_is_gone_before_the_store_drops_it() {
        let store = setup();
        let sessions = Sessions::new(&store, POLICY);
        run(sessions.create(id(1), b"{}", Some(2), T0)).unwrap();
        assert!(run(sessions.get(&id(1), T0 + 2 * S - 1)).is_ok());
        assert!(matches!(
            run(sessions.get(&id(1), T0 + 2 * S)),
            Err(Error::SessionNotFound)
        ));
        assert_eq!(
            store.kv_ttl(&id(1).to_string()),
            Some(60),
            "KV keeps it at least 60 s"
        );
        assert!(matches!(
            run(sessions.replace(&id(1), b"{}", None, T0 + 3 * S)),
            Err(Error::SessionNotFound)
        ));
    }

    #[test]
    fn writes_renew_and_count_versions_with_two_operations() {
        let store = setup();
        let sessions = Sessions::new(&store, POLICY);
        run(sessions.create(id(1), br#"{"a":1}"#, None, T0)).unwrap();
        store.take_operations();
        let meta = run(sessions.replace(&id(1), br#"{"b":2}"#, None, T0 + 100 * S)).unwrap();
        assert_eq!(store.take_operations(), 2);
        assert_eq!((meta.version, meta.expires_at), (2, T0 + 1900 * S));
        let (merged, meta) =
            run(sessions.merge(&id(1), r#"{"c":3}"#, Merge::Shallow, None, T0 + 200 * S)).unwrap();
        assert_eq!(store.take_operations(), 2);
        assert_eq!(merged, br#"{"b":2,"c":3}"#);
        assert_eq!(meta.version, 3);
        assert_eq!(store.value(&id(1).to_string()).unwrap(), r#"{"b":2,"c":3}"#);
    }

    #[test]
    fn merge_patch_goes_deep() {
        let store = setup();
        let sessions = Sessions::new(&store, POLICY);
        run(sessions.create(id(1), br#"{"p":{"a":1,"b":2}}"#, None, T0)).unwrap();
        let (merged, _) = run(sessions.merge(
            &id(1),
            r#"{"p":{"a":null,"c":3}}"#,
            Merge::MergePatch,
            None,
            T0,
        ))
        .unwrap();
        assert_eq!(merged, br#"{"p":{"b":2,"c":3}}"#);
    }

    #[test]
    fn touch_renews_without_changing_data_or_version() {
        let store = setup();
        let sessions = Sessions::new(&store, POLICY);
        run(sessions.create(id(1), br#"{"a":1}"#, None, T0)).unwrap();
        store.take_operations();
        let meta = run(sessions.touch(&id(1), T0 + 1000 * S)).unwrap();
        assert_eq!(store.take_operations(), 2);
        assert_eq!((meta.version, meta.expires_at), (1, T0 + 2800 * S));
        assert_eq!(store.value(&id(1).to_string()).unwrap(), r#"{"a":1}"#);
    }

    #[test]
    fn rotation_moves_the_data_and_keeps_the_creation_time() {
        let store = setup();
        let sessions = Sessions::new(&store, POLICY);
        run(sessions.create(id(1), br#"{"a":1}"#, Some(600), T0)).unwrap();
        store.take_operations();
        let meta = run(sessions.rotate(&id(1), id(2), T0 + 10 * S)).unwrap();
        assert_eq!(store.take_operations(), 3);
        assert_eq!(meta.created_at, T0);
        assert_eq!(meta.ttl, Some(600));
        assert_eq!(store.value(&id(1).to_string()), None);
        assert_eq!(
            run(sessions.get(&id(2), T0 + 10 * S)).unwrap().data,
            r#"{"a":1}"#
        );
        assert!(matches!(
            run(sessions.rotate(&id(1), id(3), T0 + 10 * S)),
            Err(Error::SessionNotFound)
        ));
    }

    #[test]
    fn unknown_ids_are_never_created_by_writes() {
        let store = setup();
        let sessions = Sessions::new(&store, POLICY);
        for result in [
            run(sessions.replace(&id(9), b"{}", None, T0)).map(|_| ()),
            run(sessions.merge(&id(9), "{}", Merge::Shallow, None, T0)).map(|_| ()),
            run(sessions.touch(&id(9), T0)).map(|_| ()),
        ] {
            assert!(matches!(result, Err(Error::SessionNotFound)));
        }
        assert!(store.entries.borrow().is_empty());
    }

    #[test]
    fn delete_is_idempotent_and_costs_one_operation() {
        let store = setup();
        let sessions = Sessions::new(&store, POLICY);
        run(sessions.create(id(1), b"{}", None, T0)).unwrap();
        store.take_operations();
        run(sessions.delete(&id(1), None, T0)).unwrap();
        run(sessions.delete(&id(1), None, T0)).unwrap();
        assert_eq!(store.take_operations(), 2);
        assert!(store.entries.borrow().is_empty());
    }

    #[test]
    fn if_match_guards_every_write() {
        let store = setup();
        let sessions = Sessions::new(&store, POLICY);
        run(sessions.create(id(1), br#"{"a":1}"#, None, T0)).unwrap();
        let stale = IfMatch::parse("\"7\"");
        let current = IfMatch::parse("W/\"0\", \"1\"");
        assert!(matches!(
            run(sessions.replace(&id(1), b"{}", Some(&stale), T0)),
            Err(Error::PreconditionFailed)
        ));
        assert!(matches!(
            run(sessions.merge(&id(1), r#"{"b":1}"#, Merge::Shallow, Some(&stale), T0)),
            Err(Error::PreconditionFailed)
        ));
        assert!(matches!(
            run(sessions.delete(&id(1), Some(&stale), T0)),
            Err(Error::PreconditionFailed)
        ));
        assert_eq!(
            store.value(&id(1).to_string()).unwrap(),
            r#"{"a":1}"#,
            "nothing written"
        );
        let meta = run(sessions.replace(&id(1), br#"{"v":2}"#, Some(&current), T0)).unwrap();
        assert_eq!(meta.version, 2);
        run(sessions.delete(&id(1), Some(&IfMatch::Any), T0)).unwrap();
        assert!(matches!(
            run(sessions.delete(&id(1), Some(&IfMatch::Any), T0)),
            Err(Error::SessionNotFound)
        ));
    }

    #[test]
    fn if_match_parsing() {
        assert_eq!(IfMatch::parse(" * "), IfMatch::Any);
        assert_eq!(IfMatch::parse("\"3\""), IfMatch::Versions(vec![3]));
        assert_eq!(
            IfMatch::parse("\"3\", \"4\""),
            IfMatch::Versions(vec![3, 4])
        );
        assert_eq!(
            IfMatch::parse("W/\"3\""),
            IfMatch::Versions(vec![]),
            "weak never matches"
        );
        assert_eq!(IfMatch::parse("3"), IfMatch::Versions(vec![]));
        assert_eq!(etag(12), "\"12\"");
    }

    #[test]
    fn legacy_entries_are_read_merged_replaced_and_deleted() {
        let store = setup();
        let sessions = Sessions::new(&store, POLICY);
        let key = id(5).to_string();
        store.insert_legacy(&key, r#"{"userId":42}"#);
        let session = run(sessions.get(&id(5), T0)).unwrap();
        assert_eq!(session.data, r#"{"userId":42}"#);
        assert_eq!(session.meta.version, 0);
        let (merged, meta) =
            run(sessions.merge(&id(5), r#"{"role":"admin"}"#, Merge::Shallow, None, T0)).unwrap();
        assert_eq!(merged, br#"{"userId":42,"role":"admin"}"#);
        assert_eq!(
            (meta.version, meta.created_at),
            (1, T0),
            "metadata from the first write"
        );
        run(sessions.delete(&id(5), None, T0)).unwrap();
        assert!(store.entries.borrow().is_empty());
    }

    #[test]
    fn legacy_non_object_data_merges_as_an_empty_object() {
        let store = setup();
        let sessions = Sessions::new(&store, POLICY);
        store.insert_legacy(&id(6).to_string(), "[1,2]");
        let (merged, _) =
            run(sessions.merge(&id(6), r#"{"a":1}"#, Merge::Shallow, None, T0)).unwrap();
        assert_eq!(merged, br#"{"a":1}"#);
    }

    #[test]
    fn corrupt_stored_data_is_an_internal_error_naming_only_the_short_id() {
        let store = setup();
        let sessions = Sessions::new(&store, POLICY);
        store.insert_legacy(&id(7).to_string(), "{not json");
        let err = run(sessions.merge(&id(7), r#"{"a":1}"#, Merge::Shallow, None, T0)).unwrap_err();
        let cause = err.log_cause().unwrap();
        assert_eq!(err.code(), "internal");
        assert!(
            cause.contains(&id(7).short()) && !cause.contains(&id(7).to_string()),
            "{cause}"
        );
        assert_eq!(
            store.value(&id(7).to_string()).unwrap(),
            "{not json",
            "nothing written"
        );
    }

    #[test]
    fn a_bad_patch_writes_nothing() {
        let store = setup();
        let sessions = Sessions::new(&store, POLICY);
        run(sessions.create(id(1), br#"{"a":1}"#, None, T0)).unwrap();
        store.take_operations();
        assert!(matches!(
            run(sessions.merge(&id(1), "[1]", Merge::Shallow, None, T0)),
            Err(Error::InvalidBody(_))
        ));
        assert_eq!(store.take_operations(), 0, "refused before KV is asked");
    }
}
