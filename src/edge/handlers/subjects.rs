//! The routes of a subject's sessions: the listing ("your devices") and revocations ("log out
//! everywhere", "sign out that device").

use serde::Serialize;

use super::internal;
use crate::domain::derive::{DeviceKey, Handle};
use crate::domain::error::Error;
use crate::domain::id::SessionId;
use crate::domain::percent::percent_decode_lenient;
use crate::domain::session::Policy;
use crate::domain::subject::Subject;
use crate::domain::time::{parse_rfc3339_from_epoch, rfc3339, Millis};
use crate::edge::http::{self, Incoming, Reply, JSON};
use crate::edge::log;
use crate::service::subjects::SubjectStores;

/// What a subject route gets beside the request, wherever the subject's index lives.
pub struct SubjectScope<'a> {
    pub subject: Subject,
    /// The key the subject's device info is sealed under (see [`DeviceKey`]).
    pub device_key: DeviceKey,
    pub stores: &'a SubjectStores,
    pub policy: Policy,
    /// The session a revocation keeps (`?except=<id>`), by its handle: the entry point reads
    /// the id, and it goes no further (see [`kept`]).
    pub except: Option<Handle>,
    /// The session a listing marks as the caller's own (`Session-Id`), by its handle, read
    /// likewise (see [`current`]): `Some(None)` for a header that named no session.
    pub current: Option<Option<Handle>>,
    pub now: Millis,
}

/// The caller's own session, as `Session-Id` names it to a listing, by its handle.
pub fn current(req: &Incoming) -> Option<Option<Handle>> {
    req.header("session-id")
        .map(|id| SessionId::parse(id.trim()).map(|id| Handle::of(&id)))
}

/// The collection of a subject's sessions, whose `DELETE` may keep one (`?except=<id>`).
pub const SUBJECT_SESSIONS: &str = "/subjects/:subject/sessions";

/// `?except=<id>` of `DELETE /subjects/:subject/sessions`: the session to keep, by its handle;
/// `400` when it is no session id.
pub fn kept(req: &Incoming) -> Result<Option<Handle>, Error> {
    match http::query_param(&req.head.url, "except") {
        Some(id) => Ok(Some(Handle::of(
            &SessionId::parse(id).ok_or(Error::InvalidSessionId)?,
        ))),
        None => Ok(None),
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SubjectSession {
    handle: String,
    created_at: String,
    updated_at: String,
    expires_at: String,
    last_seen_at: String,
    authenticated_at: String,
    auth_level: u8,
    /// The device key's algorithm, for a session bound to one; `null` otherwise.
    bound: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    label: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    agent: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ip: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    current: Option<bool>,
}

#[derive(Serialize)]
struct SubjectSessions {
    sessions: Vec<SubjectSession>,
}

#[derive(Serialize)]
struct Revoked {
    revoked: usize,
}

/// `?before=<RFC 3339>` on a revocation; a time before 1970 ends nothing.
fn revoke_before(req: &Incoming) -> Result<Option<Millis>, Error> {
    let Some(raw) = http::query_param(&req.head.url, "before") else {
        return Ok(None);
    };
    let text = String::from_utf8(percent_decode_lenient(raw)).map_err(|_| Error::InvalidBefore)?;
    parse_rfc3339_from_epoch(&text)
        .map(Some)
        .ok_or(Error::InvalidBefore)
}

/// `GET /subjects/:subject/sessions`: the subject's live sessions, newest first, with their
/// device info; with `Session-Id` (the caller's own session), that one is `current`.
/// `DELETE` (with `?except=<id>` to keep one, `?before=<time>` for those created before it):
/// ends them, and says how many.
pub async fn subject_sessions(req: Incoming, scope: &SubjectScope<'_>) -> Result<Reply, Error> {
    let body = if req.head.method == "DELETE" {
        let before = revoke_before(&req)?;
        let revoked = scope
            .stores
            .revoke(
                &scope.subject,
                scope.policy,
                scope.except,
                before,
                scope.now,
            )
            .await?;
        serde_json::to_vec(&Revoked { revoked })
    } else {
        // Any header at all asks for the marker; one that is no session of this subject's
        // marks nothing.
        let current = scope.current;
        let listing = scope
            .stores
            .listing(&scope.subject, scope.policy, &scope.device_key, scope.now)
            .await?;
        if let Some(err) = &listing.resealing {
            // What is not rewritten stays readable, and the next listing tries again.
            log::internal(SUBJECT_SESSIONS, err);
        }
        let sessions = listing
            .sessions
            .into_iter()
            .map(|(listed, device)| {
                let activity = listed.activity;
                let updated_at = rfc3339(activity.updated_at);
                SubjectSession {
                    handle: listed.key.handle.to_string(),
                    created_at: rfc3339(listed.key.created_at),
                    last_seen_at: updated_at.clone(),
                    updated_at,
                    expires_at: rfc3339(activity.expires_at),
                    authenticated_at: rfc3339(activity.auth.at),
                    auth_level: activity.auth.level.get(),
                    bound: activity.bound.map(|alg| alg.name()),
                    label: device.label,
                    agent: device.agent,
                    ip: device.ip.map(|ip| ip.to_string()),
                    current: current.map(|own| own == Some(listed.key.handle)),
                }
            })
            .collect();
        serde_json::to_vec(&SubjectSessions { sessions })
    };
    Ok(Reply::body(200, JSON, body.map_err(internal)?))
}

/// `DELETE /subjects/:subject/sessions/:handle`: ends the one session listed under the subject
/// as `handle` ("sign out that device"). A handle not live under this subject is
/// `session_not_found`, whoever's session it names.
pub async fn subject_session(req: Incoming, scope: &SubjectScope<'_>) -> Result<Reply, Error> {
    let path = req.head.url.split(['?', '#']).next().unwrap_or_default();
    let segment = path.rsplit('/').next().unwrap_or_default();
    let handle = Handle::parse(segment).ok_or(Error::SessionNotFound)?;
    scope
        .stores
        .revoke_one(&scope.subject, scope.policy, &handle, scope.now)
        .await?;
    let body = serde_json::to_vec(&Revoked { revoked: 1 }).map_err(internal)?;
    Ok(Reply::body(200, JSON, body))
}
