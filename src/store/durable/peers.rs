//! Calls between the worker and the objects, and between objects: a session's object as a
//! [`SessionStore`] for another (rotation writes the new id into its own object), a subject's
//! object as the [`SubjectIndex`] of strong mode, and the internal headers and texts they speak.
//! None of it is reachable from outside: only a stub of the namespace can send these requests.

use worker::js_sys::Uint8Array;
use worker::wasm_bindgen::JsValue;
use worker::{web_sys, ObjectNamespace, Request};

use crate::domain::base64;
use crate::domain::derive::{Handle, StorageKey};
use crate::domain::error::Error;
use crate::domain::event::Event;
use crate::domain::id::SessionId;
use crate::domain::session::Meta;
use crate::domain::subject::Subject;
use crate::domain::time::Millis;
use crate::store::durable::legacy::Held;
use crate::store::durable::sessions::OldObjects;
use crate::store::{
    DeviceInfo, Entry, Expect, Member, NewEntry, Outcome, Record, Seen, SessionRef, SessionStore,
    SubjectIndex,
};

/// How objects ask one another to store or remove a session (rotation writes the new id into its
/// own object). Never reachable from outside: only a stub of the namespace can send it.
pub mod peer {
    use super::Expect;

    pub const PATH: &str = "/store";
    pub const META: &str = "session-state-meta";
    pub const EXPECT: &str = "session-state-expect";
    /// The lifecycle event a write commits with it (the `event` of `SessionStore::save`). Only
    /// label-free events cross (a `created` event is always its own object's): ASCII.
    pub const EVENT: &str = "session-state-event";
    /// On an old object's answer: its session came from KV, and the copy there may remain.
    pub const KV_COPY: &str = "session-state-kv-copy";

    pub fn expect_header(expect: Expect) -> String {
        match expect {
            Expect::Absent => "absent".into(),
            Expect::Any => "any".into(),
            Expect::Version(version) => version.to_string(),
        }
    }

    pub fn parse_expect(header: &str) -> Option<Expect> {
        match header {
            "absent" => Some(Expect::Absent),
            "any" => Some(Expect::Any),
            version => version.parse().ok().map(Expect::Version),
        }
    }
}

/// The header that tells a session's object which session a request is about: the id, which
/// the object needs to open the data, and stores nowhere.
pub const ID_HEADER: &str = "session-state-id";

/// A failed call to a Durable Object: an overloaded object is busy, anything else unavailable.
pub fn object_failure(err: worker::Error) -> Error {
    let message = err.to_string();
    let cause = format!("durable object: {message}");
    if message.contains("overloaded") {
        Error::StoreBusy(cause)
    } else {
        Error::StoreUnavailable(cause)
    }
}

/// Sends a request to the object named `name` in `namespace`: the one way the worker and the
/// objects reach an object.
pub async fn call_object(
    namespace: &ObjectNamespace,
    name: &str,
    url: &str,
    method: &str,
    headers: &web_sys::Headers,
    body: Option<&JsValue>,
) -> Result<worker::Response, Error> {
    let init = web_sys::RequestInit::new();
    init.set_method(method);
    init.set_headers(headers);
    if let Some(body) = body {
        init.set_body(body);
    }
    let request = web_sys::Request::new_with_str_and_init(url, &init)
        .map_err(|err| Error::Internal(format!("a request to an object: {err:?}")))?;
    let stub = namespace
        .id_from_name(name)
        .and_then(|object| object.get_stub())
        .map_err(object_failure)?;
    stub.fetch_with_request(Request::from(request))
        .await
        .map_err(object_failure)
}

/// The header that names the session a request to its object is about by key alone (a
/// subject's listing or revocation, which has no id).
pub const KEY_HEADER: &str = "session-state-key";
/// Where an object of the earlier strong mode is asked for its session, and emptied.
pub const OLD_PATH: &str = "/old";
/// What an object of the earlier strong mode answers of a session that ended recently (KV may
/// still serve a stale copy of it).
const ENDED: u16 = 410;

/// The objects of other sessions (each named by its storage key), and those of the earlier
/// strong mode (named by the bare id).
pub struct Peers(pub ObjectNamespace);

impl Peers {
    async fn send(
        &self,
        name: &str,
        path: &str,
        method: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Result<worker::Response, Error> {
        let js = |err: JsValue| Error::StoreUnavailable(format!("durable object: {err:?}"));
        let request_headers = web_sys::Headers::new().map_err(js)?;
        for (name, value) in headers {
            request_headers.set(name, value).map_err(js)?;
        }
        let url = format!("https://session{path}");
        let body = body.map(Uint8Array::from);
        let body = body.as_ref().map(AsRef::as_ref);
        call_object(&self.0, name, &url, method, &request_headers, body).await
    }

    /// A request to the object of session `id`, about it.
    async fn send_to(
        &self,
        id: &SessionId,
        method: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Result<worker::Response, Error> {
        let id_text = id.to_string();
        let headers: Vec<(&str, &str)> = [(ID_HEADER, id_text.as_str())]
            .into_iter()
            .chain(headers.iter().copied())
            .collect();
        let name = StorageKey::of(id).name();
        self.send(&name, peer::PATH, method, &headers, body).await
    }

    /// A request to the object of the session stored under `key`, without its id.
    async fn send_to_key(
        &self,
        key: &StorageKey,
        method: &str,
        headers: &[(&str, &str)],
    ) -> Result<worker::Response, Error> {
        let name = key.name();
        let headers: Vec<(&str, &str)> = [(KEY_HEADER, name.as_str())]
            .into_iter()
            .chain(headers.iter().copied())
            .collect();
        self.send(&name, peer::PATH, method, &headers, None).await
    }

    fn outcome(response: &worker::Response) -> Result<Outcome, Error> {
        match response.status_code() {
            204 => Ok(Outcome::Written),
            409 => Ok(Outcome::Conflict),
            status => Err(unexpected("a peer object", status)),
        }
    }
}

/// An object answered what its protocol does not: the store is not working as it should.
fn unexpected(object: &str, status: u16) -> Error {
    Error::StoreUnavailable(format!("{object} answered {status}"))
}

fn meta_of(response: &worker::Response) -> Option<Meta> {
    let meta = response.headers().get(peer::META).ok().flatten();
    meta.and_then(|meta| Meta::from_json(&meta))
}

impl SessionStore for Peers {
    async fn load(&self, id: &SessionId) -> Result<Option<Record>, Error> {
        let mut response = self.send_to(id, "GET", &[], None).await?;
        match response.status_code() {
            200 => {}
            404 => return Ok(None),
            status => return Err(unexpected("a peer object", status)),
        }
        let meta = meta_of(&response);
        let data = response.text().await.map_err(object_failure)?;
        Ok(Some(Record { data, meta }))
    }

    async fn save(
        &self,
        id: &SessionId,
        data: &[u8],
        meta: &Meta,
        expect: Expect,
        event: Option<&Event>,
    ) -> Result<Outcome, Error> {
        let (meta, expect) = (meta.to_json(), peer::expect_header(expect));
        let headers = [(peer::META, meta.as_str()), (peer::EXPECT, expect.as_str())];
        let headers = with_event(&headers, event);
        let response = self.send_to(id, "PUT", &headers, Some(data)).await?;
        Self::outcome(&response)
    }

    async fn remove(
        &self,
        id: &SessionId,
        expect: Expect,
        event: Option<&Event>,
    ) -> Result<Outcome, Error> {
        let expect = peer::expect_header(expect);
        let headers = with_event(&[(peer::EXPECT, &expect)], event);
        let response = self.send_to(id, "DELETE", &headers, None).await?;
        Self::outcome(&response)
    }

    /// A `HEAD` to the session's object: the metadata alone, in a header of a `204`. The object
    /// moves a session stored elsewhere in on first use, so it is under its key after.
    async fn meta_at(&self, at: &SessionRef) -> Result<Option<(Meta, SessionRef)>, Error> {
        let response = match at {
            SessionRef::Key(key) => self.send_to_key(key, "HEAD", &[]).await?,
            SessionRef::Id(id) => self.send_to(id, "HEAD", &[], None).await?,
        };
        match response.status_code() {
            204 => Ok(meta_of(&response).map(|meta| (meta, SessionRef::Key(at.storage_key())))),
            404 => Ok(None),
            status => Err(unexpected("a peer object", status)),
        }
    }

    /// By key, the object answers `404` when it held no live session.
    async fn remove_at(&self, at: &SessionRef, event: Option<&Event>) -> Result<bool, Error> {
        let any = peer::expect_header(Expect::Any);
        let response = match at {
            SessionRef::Key(key) => {
                let headers = with_event(&[], event);
                self.send_to_key(key, "DELETE", &headers).await?
            }
            SessionRef::Id(id) => {
                let headers = with_event(&[(peer::EXPECT, &any)], event);
                self.send_to(id, "DELETE", &headers, None).await?
            }
        };
        match response.status_code() {
            404 => Ok(false),
            _ => Self::outcome(&response).map(|_| true),
        }
    }
}

/// `headers`, and the event a write commits with it, if any.
fn with_event<'h>(
    headers: &[(&'h str, &'h str)],
    event: Option<&'h Event>,
) -> Vec<(&'h str, &'h str)> {
    let event = event.map(|event| (peer::EVENT, event.as_str()));
    headers.iter().copied().chain(event).collect()
}

impl OldObjects for Peers {
    async fn held(&self, id: &SessionId) -> Result<Held, Error> {
        let mut response = self
            .send(&id.to_string(), OLD_PATH, "GET", &[], None)
            .await?;
        match response.status_code() {
            200 => {
                let meta = meta_of(&response);
                let kv_copy = response
                    .headers()
                    .get(peer::KV_COPY)
                    .ok()
                    .flatten()
                    .is_some();
                let data = response.text().await.map_err(object_failure)?;
                let record = Record { data, meta };
                Ok(Held::Live { record, kv_copy })
            }
            ENDED => Ok(Held::Ended),
            404 => Ok(Held::Nothing),
            status => Err(unexpected("an object of the earlier version", status)),
        }
    }

    async fn empty(&self, id: &SessionId) -> Result<(), Error> {
        let response = self
            .send(&id.to_string(), OLD_PATH, "DELETE", &[], None)
            .await?;
        match response.status_code() {
            204 => Ok(()),
            status => Err(unexpected("an object of the earlier version", status)),
        }
    }
}

/// How an object of the earlier strong mode answers `GET` [`OLD_PATH`].
pub fn old_answer(held: Held) -> (u16, Option<Record>, bool) {
    match held {
        Held::Live { record, kv_copy } => (200, Some(record), kv_copy),
        Held::Ended => (ENDED, None, false),
        Held::Nothing => (404, None, false),
    }
}

/// The header naming the subject a request to a subject's object is about (its hash).
pub const SUBJECT_HEADER: &str = "session-state-subject";
/// The session a revocation keeps (`?except=<id>` at the worker), by its handle.
pub const EXCEPT_HEADER: &str = "session-state-except";

/// The headers an object reads on a request the worker forwards: the worker removes them from
/// what the caller sent and sets its own, so no caller can speak for it.
pub const FROM_THE_WORKER: [&str; 4] = [ID_HEADER, KEY_HEADER, SUBJECT_HEADER, EXCEPT_HEADER];
/// The entry a session's object adds to its subject's index (`PUT`):
/// `<handle> <storage key> <created_at> <until> <updated_at> <expires_at>`, its sealed device
/// info as the body; the member it removes (`DELETE`): `<handle> <storage key> <created_at>`;
/// the lifecycle it reports (`PATCH`): `<handle> <updated_at> <expires_at>`. No id travels to a
/// subject's object, nor rests there.
pub const MEMBER_HEADER: &str = "session-state-member";
/// On a `PUT`: the handle of the entry whose device info the new one carries over (rotation).
pub const LIKE_HEADER: &str = "session-state-like";
/// Where a subject's object keeps its index for session objects.
pub const INDEX_PATH: &str = "/index";

/// The subjects' objects, as a session's object reaches its own subject's: the index of strong
/// mode.
pub struct SubjectPeers(pub ObjectNamespace);
impl SubjectPeers {
    async fn send(
        &self,
        subject: &Subject,
        method: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Result<worker::Response, Error> {
        let hex = subject.hex();
        let js = |err: JsValue| Error::StoreUnavailable(format!("subject object: {err:?}"));
        let request_headers = web_sys::Headers::new().map_err(js)?;
        request_headers.set(SUBJECT_HEADER, &hex).map_err(js)?;
        for (name, value) in headers {
            request_headers.set(name, value).map_err(js)?;
        }
        let url = format!("https://subject{INDEX_PATH}");
        let body = body.map(Uint8Array::from);
        let body = body.as_ref().map(AsRef::as_ref);
        let response = call_object(&self.0, &hex, &url, method, &request_headers, body).await?;
        match response.status_code() {
            200 | 204 => Ok(response),
            status => Err(unexpected("the subject object", status)),
        }
    }
}

impl SubjectIndex for SubjectPeers {
    async fn add(&self, subject: &Subject, entry: &NewEntry<'_>, _: Millis) -> Result<(), Error> {
        let line = format!(
            "{} {} {}",
            member_line(&entry.member, true),
            entry.until,
            seen_text(&entry.seen)
        );
        let like = match entry.device {
            DeviceInfo::Like(handle) => Some(handle.to_string()),
            _ => None,
        };
        let body = match entry.device {
            DeviceInfo::Sealed(bytes) => Some(bytes),
            _ => None,
        };
        let mut headers = vec![(MEMBER_HEADER, line.as_str())];
        if let Some(like) = &like {
            headers.push((LIKE_HEADER, like));
        }
        self.send(subject, "PUT", &headers, body).await.map(drop)
    }

    async fn remove(&self, subject: &Subject, member: &Member) -> Result<(), Error> {
        let line = member_line(member, true);
        self.send(subject, "DELETE", &[(MEMBER_HEADER, &line)], None)
            .await
            .map(drop)
    }

    async fn members(&self, subject: &Subject) -> Result<Vec<Entry>, Error> {
        let mut response = self.send(subject, "GET", &[], None).await?;
        let text = response.text().await.map_err(object_failure)?;
        Ok(parse_entries(&text))
    }

    async fn seen(&self, subject: &Subject, handle: &Handle, seen: Seen) -> Result<(), Error> {
        let line = format!("{handle} {}", seen_text(&seen));
        self.send(subject, "PATCH", &[(MEMBER_HEADER, &line)], None)
            .await
            .map(drop)
    }
}

/// `<handle> <storage key> <created_at>`. A session's own object sends the key derived from its
/// id; a subject's object sends an entry of the earlier version, which holds an id, with that id
/// until the session has moved (then the entry is rewritten).
fn member_line(member: &Member, own: bool) -> String {
    let at = match member.at {
        SessionRef::Key(key) => key.name(),
        SessionRef::Id(id) if own => StorageKey::of(&id).name(),
        SessionRef::Id(id) => id.to_string(),
    };
    format!("{} {at} {}", member.handle, member.created_at)
}

fn parse_member(parts: &mut std::str::Split<'_, char>) -> Option<Member> {
    let handle = Handle::parse(parts.next()?)?;
    let at = parts.next()?;
    let at = match StorageKey::from_name(at) {
        Some(key) => SessionRef::Key(key),
        None => SessionRef::Id(SessionId::parse(at).filter(|id| Handle::of(id) == handle)?),
    };
    let created_at = parts.next()?.parse().ok()?;
    Some(Member {
        handle,
        at,
        created_at,
    })
}

/// Entries as text lines, what a subject's object answers: the member, then the lifecycle and
/// the sealed device info (base64), each `-` when unknown.
pub fn entries_text(entries: &[Entry]) -> String {
    entries
        .iter()
        .map(|entry| {
            let seen = entry.seen.as_ref().map_or("- -".into(), seen_text);
            let device = entry
                .device
                .as_ref()
                .map_or("-".into(), |d| base64::encode(d));
            format!("{} {seen} {device}\n", member_line(&entry.member, false))
        })
        .collect()
}

pub fn parse_entries(text: &str) -> Vec<Entry> {
    text.lines()
        .filter_map(|line| {
            let mut parts = line.split(' ');
            let member = parse_member(&mut parts)?;
            let seen = match (parts.next()?, parts.next()?) {
                ("-", "-") => None,
                (updated_at, expires_at) => Some(seen_of(updated_at, expires_at)?),
            };
            let device = match parts.next()? {
                "-" => None,
                text => Some(base64::decode(text)?),
            };
            Some(Entry {
                member,
                seen,
                device,
            })
        })
        .collect()
}

/// A member a session's object sent to remove: `<handle> <storage key> <created_at>`.
pub fn parse_member_line(line: &str) -> Option<Member> {
    parse_member(&mut line.split(' ')).filter(|m| matches!(m.at, SessionRef::Key(_)))
}

/// An entry a session's object sent to add: the member, `<until> <updated_at> <expires_at>`.
pub fn parse_entry_line(line: &str) -> Option<(Member, Millis, Seen)> {
    let mut parts = line.split(' ');
    let member = parse_member(&mut parts).filter(|m| matches!(m.at, SessionRef::Key(_)))?;
    let until = parts.next()?.parse().ok()?;
    Some((member, until, seen_of(parts.next()?, parts.next()?)?))
}

/// A lifecycle a session's object reported: `<handle> <updated_at> <expires_at>`.
pub fn parse_seen_line(line: &str) -> Option<(Handle, Seen)> {
    let mut parts = line.split(' ');
    let handle = Handle::parse(parts.next()?)?;
    Some((handle, seen_of(parts.next()?, parts.next()?)?))
}

/// `<updated_at> <expires_at>`, as every line that carries a lifecycle ends.
fn seen_text(seen: &Seen) -> String {
    format!("{} {}", seen.updated_at, seen.expires_at)
}

/// What [`seen_text`] wrote.
fn seen_of(updated_at: &str, expires_at: &str) -> Option<Seen> {
    Some(Seen {
        updated_at: updated_at.parse().ok()?,
        expires_at: expires_at.parse().ok()?,
    })
}
