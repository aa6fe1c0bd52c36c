//! Lifecycle events: what happened to a session, for audit (OWASP's and ASVS's session events)
//! and for callers that react (close a socket when its session ends, notify a user of a new
//! login). One event is one JSON message on the `SESSION_EVENTS` Queue:
//!
//! ```json
//! {"eventId":"9c1f...","type":"revoked","reason":"others","at":"2026-12-02T10:00:00.000Z",
//!  "handle":"55eb...","subject":"8d96..."}
//! ```
//!
//! An event names a session by its handle and its subject by the subject's hash, never by an
//! id or in the clear, and carries no data, agent or address: a Queue is one more place a
//! credential must not travel. The one piece of device info is the `label` of a `created`
//! event, when the caller gave one, so a consumer can name the device in the events after.
//!
//! The `eventId` is a digest of type, handle and time, not a random number: delivery is at
//! least once, and the same fact observed twice (KV mode may meet one expired session in two
//! reads) gets the same id, so a consumer drops duplicates by it.

use std::fmt::Write;

use crate::domain::derive::Handle;
use crate::domain::digest::{hex, sha256};
use crate::domain::session::{Meta, Policy};
use crate::domain::subject::Subject;
use crate::domain::time::{rfc3339, Millis};

pub(crate) const EVENT_LABEL: &[u8] = b"session-state/v1/event\0";

/// Why a session was ended by a subject route, or by the bound on a subject's sessions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Revocation {
    /// `DELETE /subjects/:subject/sessions/:handle`.
    One,
    /// `DELETE /subjects/:subject/sessions`.
    All,
    /// The same with `?except=`: every session but the caller's.
    Others,
    /// The same with `?before=`.
    Before,
    /// `MAX_SESSIONS_PER_SUBJECT`: a new session ended the least recently written.
    Limit,
    /// An id renewed away was presented after its grace window: two parties held it, and the
    /// session it was renewed into ended (`SESSION_REUSE_DETECTION`).
    Reuse,
    /// Created before `SESSIONS_NOT_BEFORE`: everyone's sessions ended at once.
    Global,
}

impl Revocation {
    /// What a revocation of every session but `except` and those created from `before` on is.
    pub fn of(except: bool, before: bool) -> Self {
        match (except, before) {
            (_, true) => Revocation::Before,
            (true, false) => Revocation::Others,
            (false, false) => Revocation::All,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Revocation::One => "one",
            Revocation::All => "all",
            Revocation::Others => "others",
            Revocation::Before => "before",
            Revocation::Limit => "limit",
            Revocation::Reuse => "reuse",
            Revocation::Global => "global",
        }
    }
}

/// Which of a session's two clocks ran out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expiry {
    /// The idle timeout: nothing wrote or touched it in time.
    Idle,
    /// The absolute lifetime, which no renewal extends.
    Lifetime,
}

impl Expiry {
    /// The clock that ended `meta`: the lifetime when its expiry is its latest end (both at
    /// once count as the lifetime, which no activity could have helped).
    pub fn of(meta: &Meta, policy: Policy) -> Self {
        match meta.expires_at >= meta.latest_end(policy) {
            true => Expiry::Lifetime,
            false => Expiry::Idle,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Expiry::Idle => "idle",
            Expiry::Lifetime => "lifetime",
        }
    }
}

/// What happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Created,
    /// Moved to a new id (`POST /rotate`); the event's handle is the new one.
    Rotated {
        from: Handle,
    },
    /// Given a new id for the same privilege (`POST /renew`); the event's handle is the new one.
    Renewed {
        from: Handle,
    },
    /// Bound to a device key (`POST /bind/:id`), which moves it to a new id; the event's handle
    /// is the new one.
    Bound {
        from: Handle,
    },
    /// Moved to a new id by a refresh with the device's proof (`POST /binding/refresh`).
    Refreshed {
        from: Handle,
    },
    /// `DELETE /delete/:id`.
    Deleted,
    Revoked(Revocation),
    Expired(Expiry),
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Created => "created",
            Kind::Rotated { .. } => "rotated",
            Kind::Renewed { .. } => "renewed",
            Kind::Bound { .. } => "bound",
            Kind::Refreshed { .. } => "refreshed",
            Kind::Deleted => "deleted",
            Kind::Revoked(_) => "revoked",
            Kind::Expired(_) => "expired",
        }
    }

    fn reason(self) -> Option<&'static str> {
        match self {
            Kind::Revoked(why) => Some(why.name()),
            Kind::Expired(why) => Some(why.name()),
            _ => None,
        }
    }
}

/// One event, as it travels: its JSON text, made once. Stores keep and send the text as it
/// is, so a retried delivery sends the very bytes that were committed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event(String);

impl Event {
    /// `kind` happened to the session `handle` of `subject` at `at`. `label` is kept only on
    /// `created` (see the module's doc).
    pub fn new(
        kind: Kind,
        at: Millis,
        handle: Handle,
        subject: Option<&Subject>,
        label: Option<&str>,
    ) -> Self {
        let (name, handle) = (kind.name(), handle.to_string());
        let mut id_input = Vec::with_capacity(96);
        for part in [name.as_bytes(), handle.as_bytes(), &at.to_be_bytes()] {
            id_input.extend_from_slice(part);
            id_input.push(0);
        }
        let id = hex(&sha256(&[EVENT_LABEL, &id_input].concat())[..16]);
        let mut out = String::with_capacity(256);
        let _ = write!(out, r#"{{"eventId":"{id}","type":"{name}""#);
        if let Some(reason) = kind.reason() {
            let _ = write!(out, r#","reason":"{reason}""#);
        }
        let _ = write!(out, r#","at":"{}","handle":"{handle}""#, rfc3339(at));
        match subject {
            Some(subject) => {
                let _ = write!(out, r#","subject":"{}""#, subject.hex());
            }
            None => out.push_str(r#","subject":null"#),
        }
        if let Kind::Rotated { from }
        | Kind::Renewed { from }
        | Kind::Bound { from }
        | Kind::Refreshed { from } = kind
        {
            let _ = write!(out, r#","from":"{from}""#);
        }
        if let (Kind::Created, Some(label)) = (kind, label) {
            // A label is UTF-8 without control characters (`Device`), so a JSON string of it
            // needs only quotes and backslashes escaped.
            out.push_str(r#","label":""#);
            for c in label.chars() {
                if matches!(c, '"' | '\\') {
                    out.push('\\');
                }
                out.push(c);
            }
            out.push('"');
        }
        out.push('}');
        Self(out)
    }

    /// The `expired` event of the session `handle` whose lifecycle was `meta`: at the moment it
    /// expired, whenever that is seen, so each sighting has the same `eventId`.
    pub fn expired(meta: &Meta, policy: Policy, handle: Handle) -> Self {
        let kind = Kind::Expired(Expiry::of(meta, policy));
        Self::new(kind, meta.expires_at, handle, meta.subject.as_ref(), None)
    }

    /// An event as another object of this worker passed it on (only a stub of the namespace
    /// can send it, and only this worker holds one): taken as it is, if it has an event's shape.
    pub fn from_wire(text: String) -> Option<Self> {
        (text.starts_with(r#"{"eventId":""#) && text.ends_with('}')).then_some(Self(text))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// How long a failed delivery waits before the next try, after `attempts` failed ones: 1 s,
/// doubling, at most 5 minutes. A Queue that is down for an hour costs an object a dozen tries.
pub fn retry_delay(attempts: u32) -> Millis {
    const FIRST_MS: Millis = 1000;
    const MAX_MS: Millis = 300_000;
    FIRST_MS
        .saturating_mul(1 << attempts.saturating_sub(1).min(20))
        .min(MAX_MS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::id::SessionId;
    use crate::domain::session::fixtures::{POLICY, S, T0};

    fn handle(n: u8) -> Handle {
        Handle::of(&SessionId::from_random_bytes([n; 16]))
    }

    fn subject() -> Subject {
        Subject::new(b"ada@example.com", None).unwrap()
    }

    fn parsed(event: &Event) -> serde_json::Value {
        serde_json::from_str(event.as_str()).unwrap()
    }

    #[test]
    fn an_event_is_one_json_object_with_the_contract_fields() {
        let event = Event::new(
            Kind::Revoked(Revocation::Others),
            T0,
            handle(1),
            Some(&subject()),
            None,
        );
        let value = parsed(&event);
        assert_eq!(value["type"], "revoked");
        assert_eq!(value["reason"], "others");
        assert_eq!(value["at"], rfc3339(T0));
        assert_eq!(value["handle"], handle(1).to_string());
        assert_eq!(value["subject"], subject().hex());
        assert_eq!(value["eventId"].as_str().unwrap().len(), 32);
        assert_eq!(value.as_object().unwrap().len(), 6, "{value}");
    }

    #[test]
    fn rotation_names_the_old_handle_and_no_subject_is_null() {
        let event = Event::new(Kind::Rotated { from: handle(1) }, T0, handle(2), None, None);
        let value = parsed(&event);
        assert_eq!(value["type"], "rotated");
        assert_eq!(value["from"], handle(1).to_string());
        assert_eq!(value["handle"], handle(2).to_string());
        assert!(value["subject"].is_null());
        assert!(value.get("reason").is_none());
    }

    #[test]
    fn renewal_names_the_old_handle_and_reuse_is_a_revocation() {
        let event = Event::new(Kind::Renewed { from: handle(1) }, T0, handle(2), None, None);
        let value = parsed(&event);
        assert_eq!(value["type"], "renewed");
        assert_eq!(value["from"], handle(1).to_string());
        assert_eq!(value["handle"], handle(2).to_string());
        let reuse = Kind::Revoked(Revocation::Reuse);
        let value = parsed(&Event::new(reuse, T0, handle(2), None, None));
        assert_eq!(
            (&value["type"], &value["reason"]),
            (&"revoked".into(), &"reuse".into())
        );
        assert!(value.get("from").is_none());
    }

    #[test]
    fn only_created_carries_the_label_escaped() {
        let label = r#"Ada's "work" \ laptop é"#;
        let created = Event::new(Kind::Created, T0, handle(1), None, Some(label));
        assert_eq!(parsed(&created)["label"], label);
        let deleted = Event::new(Kind::Deleted, T0, handle(1), None, Some(label));
        assert!(parsed(&deleted).get("label").is_none());
    }

    #[test]
    fn the_same_fact_has_the_same_id_and_another_fact_another() {
        let id =
            |kind, at, n| parsed(&Event::new(kind, at, handle(n), None, None))["eventId"].clone();
        let expired = Kind::Expired(Expiry::Idle);
        assert_eq!(id(expired, T0, 1), id(expired, T0, 1));
        assert_ne!(id(expired, T0, 1), id(expired, T0 + 1, 1));
        assert_ne!(id(expired, T0, 1), id(expired, T0, 2));
        assert_ne!(id(expired, T0, 1), id(Kind::Deleted, T0, 1));
    }

    #[test]
    fn expiry_tells_the_idle_timeout_from_the_lifetime() {
        let fresh = Meta::new(T0, None, POLICY);
        assert_eq!(Expiry::of(&fresh, POLICY), Expiry::Idle);
        let late = fresh.written(T0 + POLICY.max_lifetime * S - 1, POLICY);
        assert_eq!(late.expires_at, late.latest_end(POLICY));
        assert_eq!(Expiry::of(&late, POLICY), Expiry::Lifetime);
    }

    #[test]
    fn revocations_are_named_by_what_was_asked() {
        assert_eq!(Revocation::of(false, false), Revocation::All);
        assert_eq!(Revocation::of(true, false), Revocation::Others);
        assert_eq!(Revocation::of(false, true), Revocation::Before);
        assert_eq!(Revocation::of(true, true), Revocation::Before);
    }

    #[test]
    fn retries_back_off_from_a_second_to_five_minutes() {
        let delays: Vec<Millis> = (1..=11).map(retry_delay).collect();
        assert_eq!(
            delays,
            [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300].map(|s| s * 1000)
        );
        assert_eq!(retry_delay(0), 1000);
        assert_eq!(retry_delay(u32::MAX), 300_000);
    }

    #[test]
    fn only_an_event_shape_comes_off_the_wire() {
        let event = Event::new(Kind::Deleted, T0, handle(1), None, None);
        assert_eq!(Event::from_wire(event.as_str().into()), Some(event));
        assert_eq!(Event::from_wire("{}".into()), None);
        assert_eq!(Event::from_wire(r#"{"eventId":"x""#.into()), None);
    }
}
