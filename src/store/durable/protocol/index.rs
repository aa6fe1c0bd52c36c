//! `/index`: a subject's object as the [`SubjectIndex`] of strong mode, for the session objects
//! of its subject: `PUT` an entry, `DELETE` a member, `PATCH` a lifecycle, `GET` the entries
//! (to make room), `POST` handles to take out (to end them, making room). The client is [`SubjectPeers`]; the server is [`serve`].
//!
//! The entry a session's object adds (`PUT`) travels in [`MEMBER_HEADER`] as
//! `<handle> <storage key> <created_at> <until> <lifecycle>`, its sealed device info as the
//! body; the member it removes (`DELETE`) as `<handle> <storage key> <created_at>`; the
//! lifecycle it reports (`PATCH`) as `<handle> <lifecycle>`, where a lifecycle is
//! `<updated_at> <expires_at> <auth_at> <auth level>`. A `PUT` of a session that moved from an
//! entry a revocation took is answered `410`: the move is refused. No id travels to
//! a subject's object, nor rests there.

use worker::ObjectNamespace;

use super::{object_failure, send, unexpected, Answer, Call, SUBJECT_HEADER};
use crate::domain::auth::{Auth, Level};
use crate::domain::base64;
use crate::domain::binding::Alg;
use crate::domain::derive::{Handle, StorageKey};
use crate::domain::error::Error;
use crate::domain::id::SessionId;
use crate::domain::subject::Subject;
use crate::domain::time::Millis;
use crate::store::{
    Activity, Choice, DeviceInfo, Entry, EntryKey, NewEntry, SessionRef, SubjectIndex,
};

pub const PATH: &str = "/index";
/// The entry, member or lifecycle a request is about (see above).
pub const MEMBER_HEADER: &str = "session-state-member";
/// On a `PUT`: the entry the new one's session moved from (`<handle> <storage key>
/// <created_at>`), whose device info it carries over, and whose lineage it continues.
pub const LIKE_HEADER: &str = "session-state-like";
/// What a `PUT` is answered when the entry's session moved from a lineage a revocation ended.
const GONE: u16 = 410;

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
        let headers: Vec<(&str, &str)> = [(SUBJECT_HEADER, hex.as_str())]
            .into_iter()
            .chain(headers.iter().copied())
            .collect();
        let response = send(&self.0, &hex, PATH, method, &headers, body).await?;
        match response.status_code() {
            200 | 204 => Ok(response),
            // A `PUT` whose lineage a revocation ended: the move is refused.
            GONE => Err(Error::SessionNotFound),
            status => Err(unexpected("the subject object", status)),
        }
    }
}

impl SubjectIndex for SubjectPeers {
    async fn add(&self, subject: &Subject, entry: &NewEntry<'_>, _: Millis) -> Result<(), Error> {
        let line = format!(
            "{} {} {}",
            key_line(&entry.key, true),
            entry.until,
            activity_text(&entry.activity)
        );
        let like = match entry.device {
            DeviceInfo::Like(from) => Some(key_line(&from, true)),
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

    async fn remove(&self, subject: &Subject, member: &EntryKey) -> Result<(), Error> {
        let line = key_line(member, true);
        self.send(subject, "DELETE", &[(MEMBER_HEADER, &line)], None)
            .await
            .map(drop)
    }

    async fn members(&self, subject: &Subject) -> Result<Vec<Entry>, Error> {
        let mut response = self.send(subject, "GET", &[], None).await?;
        let text = response.text().await.map_err(object_failure)?;
        Ok(parse_entries(&text))
    }

    /// `POST`: the handles to take (what a session's object ends to make room); the answer
    /// is the entries taken. A revocation of all or others runs in the subject's object itself.
    async fn take(&self, subject: &Subject, choice: &Choice<'_>) -> Result<Vec<Entry>, Error> {
        let Choice::Handles(handles) = choice else {
            return Err(Error::Internal(
                "a revocation of all is taken in the subject's object".into(),
            ));
        };
        let line = handles
            .iter()
            .map(Handle::to_string)
            .collect::<Vec<_>>()
            .join(" ");
        let mut response = self
            .send(subject, "POST", &[(MEMBER_HEADER, &line)], None)
            .await?;
        let text = response.text().await.map_err(object_failure)?;
        Ok(parse_entries(&text))
    }

    async fn report(
        &self,
        subject: &Subject,
        handle: &Handle,
        activity: Activity,
    ) -> Result<(), Error> {
        let line = format!("{handle} {}", activity_text(&activity));
        self.send(subject, "PATCH", &[(MEMBER_HEADER, &line)], None)
            .await
            .map(drop)
    }
}

/// `<handle> <storage key> <created_at>`. A session's own object sends the key derived from its
/// id; a subject's object sends an entry of the earlier version, which holds an id, with that id
/// until the session has moved (then the entry is rewritten).
fn key_line(member: &EntryKey, own: bool) -> String {
    let at = match member.at {
        SessionRef::Key(key) => key.name(),
        SessionRef::Id(id) if own => StorageKey::of(&id).name(),
        SessionRef::Id(id) => id.to_string(),
    };
    format!("{} {at} {}", member.handle, member.created_at)
}

fn parse_key(parts: &mut std::str::Split<'_, char>) -> Option<EntryKey> {
    let handle = Handle::parse(parts.next()?)?;
    let at = parts.next()?;
    let at = match StorageKey::from_name(at) {
        Some(key) => SessionRef::Key(key),
        None => SessionRef::Id(SessionId::parse(at).filter(|id| Handle::of(id) == handle)?),
    };
    let created_at = parts.next()?.parse().ok()?;
    Some(EntryKey {
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
            let activity = entry
                .activity
                .as_ref()
                .map_or("- - - -".into(), activity_text);
            let device = entry
                .device
                .as_ref()
                .map_or("-".into(), |d| base64::encode(d));
            format!("{} {activity} {device}\n", key_line(&entry.key, false))
        })
        .collect()
}

pub fn parse_entries(text: &str) -> Vec<Entry> {
    text.lines()
        .filter_map(|line| {
            let mut parts = line.split(' ');
            let member = parse_key(&mut parts)?;
            let activity = match parts.clone().next()? {
                "-" => {
                    parts.nth(3)?;
                    None
                }
                _ => Some(activity_of(&mut parts)?),
            };
            let device = match parts.next()? {
                "-" => None,
                text => Some(base64::decode(text)?),
            };
            Some(Entry {
                key: member,
                activity,
                device,
            })
        })
        .collect()
}

/// A member a session's object sent to remove: `<handle> <storage key> <created_at>`.
pub fn parse_key_line(line: &str) -> Option<EntryKey> {
    parse_key(&mut line.split(' ')).filter(|m| matches!(m.at, SessionRef::Key(_)))
}

/// An entry a session's object sent to add: the member, `<until>`, then the lifecycle.
pub fn parse_entry_line(line: &str) -> Option<(EntryKey, Millis, Activity)> {
    let mut parts = line.split(' ');
    let member = parse_key(&mut parts).filter(|m| matches!(m.at, SessionRef::Key(_)))?;
    let until = parts.next()?.parse().ok()?;
    Some((member, until, activity_of(&mut parts)?))
}

/// A lifecycle a session's object reported: `<handle>`, then the lifecycle.
pub fn parse_activity_line(line: &str) -> Option<(Handle, Activity)> {
    let mut parts = line.split(' ');
    let handle = Handle::parse(parts.next()?)?;
    Some((handle, activity_of(&mut parts)?))
}

/// `<updated_at> <expires_at> <auth_at> <auth level>`, as every line that carries a lifecycle
/// ends; for a session bound to a device key the level is `<level>/<alg>` (`2/ES256`), so every
/// line keeps its number of fields.
fn activity_text(activity: &Activity) -> String {
    let bound = activity
        .bound
        .map_or(String::new(), |alg| format!("/{}", alg.name()));
    format!(
        "{} {} {} {}{bound}",
        activity.updated_at,
        activity.expires_at,
        activity.auth.at,
        activity.auth.level.get()
    )
}

/// What [`activity_text`] wrote (a level without an algorithm, as the version before sent
/// them all, is of a session not bound).
fn activity_of(parts: &mut std::str::Split<'_, char>) -> Option<Activity> {
    let mut number = || parts.next()?.parse::<u64>().ok();
    let (updated_at, expires_at, at) = (number()?, number()?, number()?);
    let level = parts.next()?;
    let (level, bound) = match level.split_once('/') {
        Some((level, alg)) => (level, Some(Alg::from_name(alg)?)),
        None => (level, None),
    };
    Some(Activity {
        updated_at,
        expires_at,
        auth: Auth {
            at,
            level: Level::of(level.parse().ok()?)?,
        },
        bound,
    })
}

/// The server half: `index`, the subject's own, answering a session object of `subject`.
pub async fn serve(
    call: &Call<'_>,
    index: &impl SubjectIndex,
    subject: &Subject,
    now: Millis,
) -> Result<Answer, Error> {
    let line = call.header(MEMBER_HEADER).unwrap_or_default();
    let malformed = || Error::Internal("a malformed index request".into());
    match call.method {
        "GET" => {
            let entries = index.members(subject).await?;
            Ok(Answer::new(200, entries_text(&entries).into_bytes()))
        }
        "PUT" => {
            let (member, until, activity) = parse_entry_line(&line).ok_or_else(malformed)?;
            let like = call.header(LIKE_HEADER).and_then(|h| parse_key_line(&h));
            let device = match (like, call.body.is_empty()) {
                (Some(from), _) => DeviceInfo::Like(from),
                (None, false) => DeviceInfo::Sealed(&call.body),
                (None, true) => DeviceInfo::None,
            };
            let entry = NewEntry {
                key: member,
                until,
                activity,
                device,
            };
            match index.add(subject, &entry, now).await {
                Err(Error::SessionNotFound) => Ok(Answer::new(GONE, Vec::new())),
                added => added.map(|()| Answer::done()),
            }
        }
        "POST" => {
            let handles: Option<Vec<Handle>> = line.split(' ').map(Handle::parse).collect();
            let handles = handles.ok_or_else(malformed)?;
            let taken = index.take(subject, &Choice::Handles(&handles)).await?;
            Ok(Answer::new(200, entries_text(&taken).into_bytes()))
        }
        "PATCH" => {
            let (handle, activity) = parse_activity_line(&line).ok_or_else(malformed)?;
            index.report(subject, &handle, activity).await?;
            Ok(Answer::done())
        }
        "DELETE" => {
            let member = parse_key_line(&line).ok_or_else(malformed)?;
            index.remove(subject, &member).await?;
            Ok(Answer::done())
        }
        _ => Err(Error::NotFound),
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;
    use crate::domain::session::fixtures::{S, T0};
    use crate::store::durable::index::tests::{id, keyed};
    use crate::store::durable::index::SqlIndex;
    use crate::store::memory::run;
    use crate::store::memory::sqlite::SqliteStorage;

    #[test]
    fn the_index_protocol_round_trips_entries() {
        let activity = Activity {
            updated_at: T0 + 2 * S,
            expires_at: T0 + 9 * S,
            auth: Auth::at_creation(T0),
            bound: None,
        };
        let entries = vec![
            Entry {
                key: keyed(1, T0),
                activity: Some(activity),
                device: Some(vec![0, 1, 2, 255]),
            },
            Entry {
                key: keyed(2, T0 + S),
                activity: None,
                device: None,
            },
        ];
        let text = entries_text(&entries);
        assert_eq!(parse_entries(&text), entries);
        assert!(!text.contains(&id(1).to_string()), "no id travels");
        let old = [Entry {
            key: EntryKey::of(id(1), T0),
            activity: None,
            device: None,
        }];
        assert_eq!(
            parse_entries(&entries_text(&old)),
            old,
            "an old row, by id until it moves"
        );
        let forged = format!("{} {} {T0} - - -", Handle::of(&id(2)), id(1));
        assert_eq!(parse_entries(&forged), vec![], "a handle must be its id's");
        let member = format!(
            "{} {} {T0}",
            Handle::of(&id(3)),
            StorageKey::of(&id(3)).name()
        );
        assert_eq!(parse_key_line(&member), Some(keyed(3, T0)));
        let line = format!("{member} {} {} {} {T0} 2", T0 + 5 * S, T0 + S, T0 + 3 * S);
        let reported = Activity {
            updated_at: T0 + S,
            expires_at: T0 + 3 * S,
            auth: Auth {
                at: T0,
                level: Level::of(2).unwrap(),
            },
            bound: None,
        };
        assert_eq!(
            parse_entry_line(&line),
            Some((keyed(3, T0), T0 + 5 * S, reported))
        );
        assert_eq!(
            parse_key_line(&format!("{} {} {T0}", Handle::of(&id(3)), id(3))),
            None,
            "an id"
        );
        assert_eq!(parse_entry_line(&member), None, "no end, no lifecycle");
        let seen_line = format!("{} {} {} {T0} 2", Handle::of(&id(3)), T0 + S, T0 + 3 * S);
        assert_eq!(
            parse_activity_line(&seen_line.replace(" 2", " 4")),
            None,
            "no such level"
        );
        assert_eq!(
            parse_activity_line(&seen_line),
            Some((Handle::of(&id(3)), reported))
        );
        assert_eq!(parse_key_line("nope 1 2"), None);
    }

    #[test]
    fn the_server_adds_lists_reports_and_removes_what_the_client_sends() {
        let index = SqlIndex(SqliteStorage::default());
        let subject = Subject::from_hex(&"ab".repeat(32)).unwrap();
        let call = |method: &'static str, line: String, body: &[u8]| {
            let header = move |name: &str| (name == MEMBER_HEADER).then(|| line.clone());
            let call = Call {
                method,
                header: &header,
                body: body.to_vec(),
            };
            run(serve(&call, &index, &subject, T0))
        };
        let member = key_line(&keyed(1, T0), true);
        let added = call(
            "PUT",
            format!("{member} {} {} {} {T0} 1", T0 + 9 * S, T0, T0 + 5 * S),
            b"d2..",
        );
        assert_eq!(added.unwrap(), Answer::done());
        let activity = format!("{} {} {} {T0} 1", Handle::of(&id(1)), T0 + S, T0 + 6 * S);
        assert_eq!(call("PATCH", activity, b"").unwrap(), Answer::done());
        let listed = call("GET", String::new(), b"").unwrap();
        let entries = parse_entries(std::str::from_utf8(&listed.body).unwrap());
        let expected = Entry {
            key: keyed(1, T0),
            activity: Some(Activity {
                updated_at: T0 + S,
                expires_at: T0 + 6 * S,
                auth: Auth::at_creation(T0),
                bound: None,
            }),
            device: Some(b"d2..".to_vec()),
        };
        assert_eq!(entries, vec![expected.clone()]);
        // Taken out (to make room): answered with what was taken, and its lineage ended, so
        // that a session moving from it is refused its entry.
        let taken = call("POST", Handle::of(&id(1)).to_string(), b"").unwrap();
        let taken = parse_entries(std::str::from_utf8(&taken.body).unwrap());
        assert_eq!(taken, vec![expected]);
        assert_eq!(call("GET", String::new(), b"").unwrap().body, b"");
        let moved = format!(
            "{} {} {} {} {T0} 1",
            key_line(&keyed(2, T0), true),
            T0 + 9 * S,
            T0 + S,
            T0 + 5 * S
        );
        let like = member.clone();
        let header = move |name: &str| match name {
            MEMBER_HEADER => Some(moved.clone()),
            LIKE_HEADER => Some(like.clone()),
            _ => None,
        };
        let put = Call {
            method: "PUT",
            header: &header,
            body: Vec::new(),
        };
        let refused = run(serve(&put, &index, &subject, T0 + S)).unwrap();
        assert_eq!(refused, Answer::new(GONE, Vec::new()));
        assert_eq!(call("GET", String::new(), b"").unwrap().body, b"");
        assert_eq!(call("DELETE", member, b"").unwrap(), Answer::done());
        assert_eq!(call("GET", String::new(), b"").unwrap().body, b"");
        let malformed = call("PUT", "nope".into(), b"").unwrap_err();
        assert!(matches!(malformed, Error::Internal(_)), "{malformed:?}");
    }

    #[test]
    fn a_bound_sessions_lifecycle_crosses_with_its_algorithm_and_an_earlier_line_reads_unbound() {
        let activity = Activity {
            updated_at: 1,
            expires_at: 2,
            auth: Auth::at_creation(0),
            bound: Some(Alg::Rs256),
        };
        let text = activity_text(&activity);
        assert_eq!(text, "1 2 0 1/RS256");
        assert_eq!(activity_of(&mut text.split(' ')), Some(activity));
        let earlier = activity_of(&mut "1 2 0 1".split(' ')).unwrap();
        assert_eq!(earlier.bound, None);
        assert_eq!(activity_of(&mut "1 2 0 1/HS256".split(' ')), None);
    }
}
