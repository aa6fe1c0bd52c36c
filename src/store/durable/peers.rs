//! Calls between the worker and the objects, and between objects: a session's object as a
//! [`SessionStore`] for another (rotation writes the new id into its own object), a subject's
//! object as the [`SubjectIndex`] of strong mode, and the internal headers and texts they speak.
//! None of it is reachable from outside: only a stub of the namespace can send these requests.

use worker::js_sys::Uint8Array;
use worker::wasm_bindgen::JsValue;
use worker::{web_sys, ObjectNamespace, Request};

use crate::domain::error::Error;
use crate::domain::id::SessionId;
use crate::domain::session::Meta;
use crate::domain::subject::Subject;
use crate::domain::time::Millis;
use crate::store::{Expect, Member, Outcome, Record, SessionStore, SubjectIndex};

/// How objects ask one another to store or remove a session (rotation writes the new id into its
/// own object). Never reachable from outside: only a stub of the namespace can send it.
pub mod peer {
    use super::Expect;

    pub const PATH: &str = "/store";
    pub const META: &str = "session-state-meta";
    pub const EXPECT: &str = "session-state-expect";

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

/// The name under which a session's object lives, and the header that tells an object which
/// session a request is about.
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

/// The objects of other sessions.
pub struct Peers(pub ObjectNamespace);

impl Peers {
    async fn send(
        &self,
        id: &SessionId,
        method: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Result<worker::Response, Error> {
        let id_text = id.to_string();
        let js = |err: JsValue| Error::StoreUnavailable(format!("durable object: {err:?}"));
        let request_headers = web_sys::Headers::new().map_err(js)?;
        request_headers.set(ID_HEADER, &id_text).map_err(js)?;
        for (name, value) in headers {
            request_headers.set(name, value).map_err(js)?;
        }
        let url = format!("https://session{}", peer::PATH);
        let body = body.map(Uint8Array::from);
        let body = body.as_ref().map(AsRef::as_ref);
        call_object(&self.0, &id_text, &url, method, &request_headers, body).await
    }

    fn outcome(response: &worker::Response) -> Result<Outcome, Error> {
        match response.status_code() {
            204 => Ok(Outcome::Written),
            409 => Ok(Outcome::Conflict),
            status => Err(Error::StoreUnavailable(format!(
                "a peer object answered {status}"
            ))),
        }
    }
}

impl SessionStore for Peers {
    type Body = String;

    async fn load(&self, id: &SessionId) -> Result<Option<Record>, Error> {
        let mut response = self.send(id, "GET", &[], None).await?;
        if response.status_code() == 404 {
            return Ok(None);
        }
        let meta = response.headers().get(peer::META).ok().flatten();
        let meta = meta.and_then(|meta| Meta::from_json(&meta));
        let data = response.text().await.map_err(object_failure)?;
        Ok(Some(Record { data, meta }))
    }

    async fn open(&self, id: &SessionId) -> Result<Option<(String, Option<Meta>)>, Error> {
        let record = self.load(id).await?;
        Ok(record.map(|record| (record.data, record.meta)))
    }

    async fn save(
        &self,
        id: &SessionId,
        data: &[u8],
        meta: &Meta,
        expect: Expect,
    ) -> Result<Outcome, Error> {
        let headers = [
            (peer::META, meta.to_json()),
            (peer::EXPECT, peer::expect_header(expect)),
        ];
        let headers = headers
            .each_ref()
            .map(|(name, value)| (*name, value.as_str()));
        let response = self.send(id, "PUT", &headers, Some(data)).await?;
        Self::outcome(&response)
    }

    async fn remove(&self, id: &SessionId, expect: Expect) -> Result<Outcome, Error> {
        let expect = peer::expect_header(expect);
        let response = self
            .send(id, "DELETE", &[(peer::EXPECT, &expect)], None)
            .await?;
        Self::outcome(&response)
    }
}

/// The header naming the subject a request to a subject's object is about (its hash).
pub const SUBJECT_HEADER: &str = "session-state-subject";
/// The member a session's object adds to or removes from its subject's index:
/// `<id> <created_at> <until>`, or `<id>` alone to remove.
pub const MEMBER_HEADER: &str = "session-state-member";
/// Where a subject's object keeps its index for session objects.
pub const INDEX_PATH: &str = "/index";

/// The subjects' objects, as a session's object reaches its own subject's: the index of strong
/// mode. Members travel as text lines, `<id> <created_at>`.
pub struct SubjectPeers(pub ObjectNamespace);

impl SubjectPeers {
    async fn send(
        &self,
        subject: &Subject,
        method: &str,
        member: Option<String>,
    ) -> Result<worker::Response, Error> {
        let hex = subject.hex();
        let js = |err: JsValue| Error::StoreUnavailable(format!("subject object: {err:?}"));
        let headers = web_sys::Headers::new().map_err(js)?;
        headers.set(SUBJECT_HEADER, &hex).map_err(js)?;
        if let Some(member) = member {
            headers.set(MEMBER_HEADER, &member).map_err(js)?;
        }
        let url = format!("https://subject{INDEX_PATH}");
        let response = call_object(&self.0, &hex, &url, method, &headers, None).await?;
        match response.status_code() {
            200 | 204 => Ok(response),
            status => Err(Error::StoreUnavailable(format!(
                "the subject object answered {status}"
            ))),
        }
    }
}

impl SubjectIndex for SubjectPeers {
    async fn add(
        &self,
        subject: &Subject,
        member: Member,
        until: Millis,
        _: Millis,
    ) -> Result<(), Error> {
        let line = format!("{} {} {until}", member.id, member.created_at);
        self.send(subject, "PUT", Some(line)).await.map(drop)
    }

    async fn remove(&self, subject: &Subject, id: &SessionId) -> Result<(), Error> {
        self.send(subject, "DELETE", Some(id.to_string()))
            .await
            .map(drop)
    }

    async fn members(&self, subject: &Subject) -> Result<Vec<Member>, Error> {
        let mut response = self.send(subject, "GET", None).await?;
        let text = response.text().await.map_err(object_failure)?;
        Ok(parse_members(&text))
    }
}

/// Members as text lines, `<id> <created_at>`: what a subject's object answers.
pub fn members_text(members: &[Member]) -> String {
    members
        .iter()
        .map(|member| format!("{} {}\n", member.id, member.created_at))
        .collect()
}

pub fn parse_members(text: &str) -> Vec<Member> {
    text.lines()
        .filter_map(|line| {
            let (id, created_at) = line.split_once(' ')?;
            Some(Member {
                id: SessionId::parse(id)?,
                created_at: created_at.parse().ok()?,
            })
        })
        .collect()
}

/// A member line a session's object sent: `<id> <created_at> <until>`.
pub fn parse_member_line(line: &str) -> Option<(Member, Millis)> {
    let mut parts = line.split(' ');
    let id = SessionId::parse(parts.next()?)?;
    let created_at = parts.next()?.parse().ok()?;
    let until = parts.next()?.parse().ok()?;
    Some((Member { id, created_at }, until))
}
