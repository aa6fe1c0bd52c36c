//! The device-binding routes (W3C DBSC): a registration challenge and the registration of a
//! session's id, then a refresh challenge and the refresh of a bound session by its binding
//! identifier. The app's own endpoints (the browser's registration and refresh URLs) call
//! these; `client/src/hono/dbsc.ts` is one.

use serde::Serialize;

use crate::domain::binding::Binding;
use crate::domain::config::Config;
use crate::domain::derive::Handle;
use crate::domain::error::Error;
use crate::domain::id::{IdFormat, SessionId};
use crate::domain::session::Meta;
use crate::domain::time::{rfc3339, Millis};
use crate::edge::http::{with_session_headers, Incoming, Reply, JSON};
use crate::service::sessions::BoundSession;
use crate::store::proof::WebCryptoVerify;

use super::{generate_id, internal, SessionScope};

#[derive(Serialize)]
struct Challenge {
    challenge: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Bound {
    session_id: String,
    binding: String,
    alg: &'static str,
    /// When the new id stops working: a bound id lives `BOUND_SESSION_ID_SECONDS`.
    id_expires_at: String,
    expires_at: String,
}

/// When a bound session's id stops working: `BOUND_SESSION_ID_SECONDS` after it was issued, or
/// the session's end if sooner.
fn id_end(meta: &Meta, config: &Config) -> Option<Millis> {
    match meta.binding {
        Some(Binding::Bound { since, .. }) => Some(
            since
                .saturating_add(config.renewal.bound_id_ms)
                .min(meta.expires_at),
        ),
        _ => None,
    }
}

/// `reply` with `Session-Id-Expires` when `meta` is a bound session's: every answer that issues
/// an id says when a bound one stops working, so the app's cookie can end with it.
pub(super) fn with_id_end(reply: Reply, meta: &Meta, config: &Config) -> Reply {
    match id_end(meta, config) {
        Some(end) => reply.header("session-id-expires", rfc3339(end)),
        None => reply,
    }
}

fn challenge(challenge: String) -> Result<Reply, Error> {
    let body = serde_json::to_vec(&Challenge { challenge }).map_err(internal)?;
    Ok(Reply::body(200, JSON, body).header("cache-control", "no-store".into()))
}

/// The proof a request carries in `Secure-Session-Response`: read here, not with the headers every
/// request reads ([`crate::edge::runtime::Head`]), as only these two routes need it.
fn proof(req: &Incoming) -> Result<String, Error> {
    req.header("secure-session-response")
        .ok_or(Error::ProofRefused(
            "send the proof in Secure-Session-Response",
        ))
}

fn bound(bound: &BoundSession, scope: &SessionScope<'_>) -> Result<Reply, Error> {
    let (Some(Binding::Bound { alg, .. }), Some(id_end)) =
        (bound.meta.binding, id_end(&bound.meta, scope.config))
    else {
        return Err(Error::Internal("a binding answered without one".into()));
    };
    let id = bound.id.to_string();
    let body = Bound {
        session_id: id.clone(),
        binding: bound.binding.to_string(),
        alg: alg.name(),
        id_expires_at: rfc3339(id_end),
        expires_at: rfc3339(bound.meta.expires_at),
    };
    let body = serde_json::to_vec(&body).map_err(internal)?;
    let reply = Reply::body(201, JSON, body)
        .header("location", format!("/get/{id}"))
        .header("session-handle", Handle::of(&bound.id).to_string())
        .header("session-id", id);
    Ok(with_session_headers(
        with_id_end(reply, &bound.meta, scope.config),
        &bound.meta,
    ))
}

/// `POST /bind/:id/challenge`: a challenge for binding the session to a device key, for the
/// app's `Secure-Session-Registration` header.
pub async fn bind_challenge(_req: Incoming, scope: &SessionScope<'_>) -> Result<Reply, Error> {
    let sessions = scope.sessions();
    challenge(
        sessions
            .registration_challenge(&scope.id, scope.now)
            .await?,
    )
}

/// `POST /bind/:id`: binds the session to the key of the registration proof; `201` with the
/// new id and the binding identifier.
pub async fn bind(req: Incoming, scope: &SessionScope<'_>) -> Result<Reply, Error> {
    let binding = SessionId::generate_as(IdFormat::Token)
        .map_err(|err| Error::Internal(format!("no randomness: {err}")))?;
    let ids = (generate_id(scope.config)?, binding);
    let sessions = scope.sessions();
    let proof = proof(&req)?;
    let done = sessions.bind(&scope.id, &proof, ids, &WebCryptoVerify, scope.now);
    bound(&done.await?, scope)
}

/// `POST /binding/:binding/challenge`: a challenge for refreshing the bound session.
pub async fn binding_challenge(_req: Incoming, scope: &SessionScope<'_>) -> Result<Reply, Error> {
    let sessions = scope.sessions();
    challenge(sessions.refresh_challenge(&scope.id, scope.now).await?)
}

/// `POST /binding/:binding/refresh`: moves the bound session to a new id, given the device's
/// proof; `201` as for `/bind`.
pub async fn binding_refresh(req: Incoming, scope: &SessionScope<'_>) -> Result<Reply, Error> {
    let new_id = generate_id(scope.config)?;
    let sessions = scope.sessions();
    let proof = proof(&req)?;
    let done = sessions.refresh(&scope.id, &proof, new_id, &WebCryptoVerify, scope.now);
    bound(&done.await?, scope)
}
