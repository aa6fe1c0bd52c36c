//! `/store`: a session's object as a [`SessionStore`] for other objects. Rotation writes the new
//! id into its own object from the old one's; a subject's object judges and ends the sessions
//! it lists, by key alone (it holds no id). The client is [`Peers`]; the server is [`serve`].
//!
//! By id (`session-state-id`): `GET` the record, `HEAD` its metadata, `PUT` a write (data as the
//! body, metadata and expectation in headers), `POST` a retirement (its bytes, metadata and
//! expectation in headers: a bound session's refresh), `DELETE` with an expectation. By key
//! (`session-state-key`): `HEAD` and `DELETE` only. A write answers `204`, or `409` when the
//! session was not as expected; a missing session is `404`.

use worker::ObjectNamespace;

use super::{object_failure, send, unexpected, Answer, Call, ID_HEADER, KEY_HEADER};
use crate::domain::base64;
use crate::domain::derive::StorageKey;
use crate::domain::error::Error;
use crate::domain::event::Event;
use crate::domain::id::SessionId;
use crate::domain::renewal::Retirement;
use crate::domain::session::Meta;
use crate::store::data::Plain;
use crate::store::durable::sessions::{LegacyObjects, SqlSessions};
use crate::store::durable::ObjectStorage;
use crate::store::seal::Aead;
use crate::store::{Expect, KeyValue, Outcome, Record, SessionRef, SessionStore, Stored};

pub const PATH: &str = "/store";
pub const META: &str = "session-state-meta";
pub const EXPECT: &str = "session-state-expect";
/// The lifecycle event a write commits with it (the `event` of `SessionStore::save`). Only
/// label-free events cross (a `created` event is always its own object's): ASCII.
pub const EVENT: &str = "session-state-event";
/// The retirement of a renewed id, asked for by its id (`GET`): its bytes in base64, the body
/// empty.
pub const RETIRED: &str = "session-state-retired";

fn expect_header(expect: Expect) -> String {
    match expect {
        Expect::Absent => "absent".into(),
        Expect::Any => "any".into(),
        Expect::Version(version) => version.to_string(),
    }
}

fn parse_expect(header: &str) -> Option<Expect> {
    match header {
        "absent" => Some(Expect::Absent),
        "any" => Some(Expect::Any),
        version => version.parse().ok().map(Expect::Version),
    }
}

/// The objects of other sessions, each named by its storage key (and, for [`LegacyObjects`], those
/// of the earlier strong mode, named by the bare id).
pub struct Peers(pub ObjectNamespace);

impl Peers {
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
        send(&self.0, &name, PATH, method, &headers, body).await
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
        send(&self.0, &name, PATH, method, &headers, None).await
    }

    fn outcome(response: &worker::Response) -> Result<Outcome, Error> {
        match response.status_code() {
            204 => Ok(Outcome::Written),
            409 => Ok(Outcome::Conflict),
            status => Err(unexpected("a peer object", status)),
        }
    }

    /// The namespace, for the protocols that reach the same objects another way.
    pub(super) fn namespace(&self) -> &ObjectNamespace {
        &self.0
    }
}

pub(super) fn meta_of(response: &worker::Response) -> Option<Meta> {
    let meta = response.headers().get(META).ok().flatten();
    meta.and_then(|meta| Meta::from_json(&meta))
}

impl SessionStore for Peers {
    async fn load(&self, id: &SessionId) -> Result<Option<Stored>, Error> {
        let mut response = self.send_to(id, "GET", &[], None).await?;
        match response.status_code() {
            200 => {}
            404 => return Ok(None),
            status => return Err(unexpected("a peer object", status)),
        }
        let meta = meta_of(&response);
        let retired = response.headers().get(RETIRED).ok().flatten();
        if let Some(retired) = retired {
            let retirement =
                base64::decode(&retired).and_then(|bytes| Retirement::from_bytes(&bytes));
            let (Some(retirement), Some(meta)) = (retirement, meta) else {
                return Err(Error::Internal(
                    "a peer sent a retirement it could not".into(),
                ));
            };
            return Ok(Some(Stored::Retired(retirement, meta)));
        }
        let data = response.text().await.map_err(object_failure)?;
        Ok(Some(Stored::Session(Record { data, meta })))
    }

    /// A refresh of a bound session runs in its binding's object and retires the old id in the
    /// id's own object, at the version it read: that object compares and writes in one step.
    async fn retire(
        &self,
        id: &SessionId,
        retirement: &Retirement,
        meta: &Meta,
        expect: Expect,
        event: Option<&Event>,
    ) -> Result<Outcome, Error> {
        let (meta, expect) = (meta.to_json(), expect_header(expect));
        let retired = base64::encode(&retirement.to_bytes());
        let headers = [
            (META, meta.as_str()),
            (EXPECT, expect.as_str()),
            (RETIRED, retired.as_str()),
        ];
        let headers = with_event(&headers, event);
        let response = self.send_to(id, "POST", &headers, None).await?;
        Self::outcome(&response)
    }

    async fn save(
        &self,
        id: &SessionId,
        data: Plain<'_>,
        meta: &Meta,
        expect: Expect,
        event: Option<&Event>,
    ) -> Result<Outcome, Error> {
        let (meta, expect) = (meta.to_json(), expect_header(expect));
        let headers = [(META, meta.as_str()), (EXPECT, expect.as_str())];
        let headers = with_event(&headers, event);
        // Data made outside Wasm memory is copied in to be sent: a session lives in its own
        // object, so a write reaches a peer only for a session moved mid-request.
        let data = data.here();
        let response = self.send_to(id, "PUT", &headers, Some(&data)).await?;
        Self::outcome(&response)
    }

    async fn remove(
        &self,
        id: &SessionId,
        expect: Expect,
        event: Option<&Event>,
    ) -> Result<Outcome, Error> {
        let expect = expect_header(expect);
        let headers = with_event(&[(EXPECT, &expect)], event);
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
        let any = expect_header(Expect::Any);
        let response = match at {
            SessionRef::Key(key) => {
                let headers = with_event(&[], event);
                self.send_to_key(key, "DELETE", &headers).await?
            }
            SessionRef::Id(id) => {
                let headers = with_event(&[(EXPECT, &any)], event);
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
    let event = event.map(|event| (EVENT, event.as_str()));
    headers.iter().copied().chain(event).collect()
}

/// The server half: the object's own session, as `store` holds it (named by `own` when the
/// request named the id, else by `key` alone).
pub async fn serve<S, K, P, A>(
    call: &Call<'_>,
    store: &SqlSessions<S, K, P, A>,
) -> Result<Answer, Error>
where
    S: ObjectStorage,
    K: KeyValue,
    P: SessionStore + LegacyObjects,
    A: Aead,
{
    let expect = call.header(EXPECT).and_then(|h| parse_expect(&h));
    let expected = || expect.ok_or_else(|| Error::Internal("a peer sent no expectation".into()));
    let event = call.header(EVENT).and_then(Event::from_wire);
    let at = match store.own {
        Some(id) => SessionRef::Id(id),
        None => SessionRef::Key(store.key),
    };
    let outcome = match (call.method, store.own) {
        ("HEAD", _) => {
            let Some((meta, _)) = store.meta_at(&at).await? else {
                return Err(Error::SessionNotFound);
            };
            return Ok(Answer::done().header(META, meta.to_json()));
        }
        ("DELETE", None) => match store.remove_at(&at, event.as_ref()).await? {
            true => Outcome::Written,
            false => return Err(Error::SessionNotFound),
        },
        ("GET", Some(id)) => {
            let record = match store.load(&id).await? {
                None => return Err(Error::SessionNotFound),
                Some(Stored::Session(record)) => record,
                Some(Stored::Retired(retirement, meta)) => {
                    return Ok(Answer::new(200, Vec::new())
                        .header(META, meta.to_json())
                        .header(RETIRED, base64::encode(&retirement.to_bytes())))
                }
            };
            let answer = Answer::new(200, record.data.into_bytes());
            return Ok(match record.meta {
                Some(meta) => answer.header(META, meta.to_json()),
                None => answer,
            });
        }
        ("PUT", Some(id)) => {
            let meta = call
                .header(META)
                .and_then(|meta| Meta::from_json(&meta))
                .ok_or_else(|| Error::Internal("a peer sent no metadata".into()))?;
            let expect = expected()?;
            store
                .save(
                    &id,
                    call.body.as_slice().into(),
                    &meta,
                    expect,
                    event.as_ref(),
                )
                .await?
        }
        ("DELETE", Some(id)) => store.remove(&id, expected()?, event.as_ref()).await?,
        ("POST", Some(id)) => {
            let meta = call.header(META).and_then(|meta| Meta::from_json(&meta));
            let retirement = call
                .header(RETIRED)
                .and_then(|text| base64::decode(&text))
                .and_then(|bytes| Retirement::from_bytes(&bytes));
            let (Some(meta), Some(retirement)) = (meta, retirement) else {
                return Err(Error::Internal(
                    "a peer sent a retirement it could not".into(),
                ));
            };
            let retire = store.retire(&id, &retirement, &meta, expected()?, event.as_ref());
            retire.await?
        }
        _ => return Err(Error::NotFound),
    };
    Ok(match outcome {
        Outcome::Written => Answer::done(),
        Outcome::Conflict => Answer::new(409, b"{}".to_vec()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_peer_protocol_round_trips_every_expectation() {
        for expect in [
            Expect::Absent,
            Expect::Any,
            Expect::Version(0),
            Expect::Version(42),
        ] {
            assert_eq!(parse_expect(&expect_header(expect)), Some(expect));
        }
        assert_eq!(parse_expect("-1"), None);
        assert_eq!(parse_expect(""), None);
    }
}
