//! The worker's side of a route that runs in an object (strong mode): the request goes on to the
//! session's or the subject's object as the caller sent it, at a URL without the id (see
//! [`routes::forwarded_url`]), marked with which session or subject it is about, and the
//! object's answer comes back with headers the worker may still change.

use worker::{web_sys, Env};

use crate::domain::derive::{Handle, StorageKey};
use crate::domain::error::Error;
use crate::domain::id::SessionId;
use crate::domain::subject::Subject;
use crate::edge::http::{Incoming, Reply};
use crate::edge::routes::{self, Route};
use crate::edge::runtime;
use crate::store::durable::protocol::{
    call_object, CURRENT_HEADER, EXCEPT_HEADER, ID_HEADER, INTERNAL_PREFIX, SUBJECT_HEADER,
};

/// The bindings of the namespaces in `wrangler.toml`: one object per session, one per subject.
pub const SESSIONS: &str = "sessions";
pub const SUBJECTS: &str = "subjects";

/// The error code of a problem an object answered, for the worker's request log.
pub const CODE_HEADER: &str = "session-state-code";

/// What the caller sent that no object is given: the token the worker checked.
const NEVER_FORWARDED: &[&str] = &["authorization"];
/// What a subject's object is not given either: a session's id (the listing's marker of the
/// current session goes as a handle, [`CURRENT_HEADER`]).
const NOT_TO_A_SUBJECT: &[&str] = &["authorization", "session-id"];

/// To the session's object, with the id in a header (never in the URL). A body is passed as
/// already read (see [`crate::edge::http::read_blob`]): a body streamed on to the object would
/// still be pumped after the object answered early without reading it, which the runtime
/// refuses.
pub async fn to_session(
    req: Incoming,
    env: &Env,
    route: &Route,
    id: &SessionId,
    body: Option<web_sys::Blob>,
) -> Result<Reply, Error> {
    let name = StorageKey::of(id).name();
    let id = id.to_string();
    let url = routes::forwarded_url(route, &req.head.url);
    let marks = [(ID_HEADER, id.as_str())];
    forward(
        req,
        env,
        SESSIONS,
        &name,
        &url,
        NEVER_FORWARDED,
        &marks,
        body,
    )
    .await
}

/// To the subject's object, with handles for ids: the session a revocation keeps, and the one
/// a listing marks as current (`-`: a header that named no session).
pub async fn to_subject(
    req: Incoming,
    env: &Env,
    route: &Route,
    subject: &Subject,
    except: Option<Handle>,
    current: Option<Option<Handle>>,
) -> Result<Reply, Error> {
    let name = subject.hex();
    let url = routes::forwarded_url(route, &req.head.url);
    let except = except.map(|handle| handle.to_string());
    let current = current.map(|handle| handle.map_or("-".into(), |h| h.to_string()));
    let mut marks = vec![(SUBJECT_HEADER, name.as_str())];
    marks.extend(except.as_deref().map(|handle| (EXCEPT_HEADER, handle)));
    marks.extend(current.as_deref().map(|handle| (CURRENT_HEADER, handle)));
    forward(
        req,
        env,
        SUBJECTS,
        &name,
        &url,
        NOT_TO_A_SUBJECT,
        &marks,
        None,
    )
    .await
}

/// Hands a request to the object named `name` in the namespace `binding`, at `url`, with the
/// caller's headers but `drop` and every `session-state-*` one (what only the worker may tell
/// an object, whatever the caller sent under those names), marked with `marks`.
#[allow(
    clippy::too_many_arguments,
    reason = "where a forwarded request goes, and what it carries"
)]
async fn forward(
    req: Incoming,
    env: &Env,
    binding: &str,
    name: &str,
    url: &str,
    drop: &[&str],
    marks: &[(&str, &str)],
    body: Option<web_sys::Blob>,
) -> Result<Reply, Error> {
    let namespace = env.durable_object(binding)?;
    let headers = runtime::forwarded_headers(&req.raw, INTERNAL_PREFIX, drop, marks);
    let body = body.as_ref().map(AsRef::as_ref);
    let method = &req.head.method;
    let response = call_object(&namespace, name, url, method, &headers, body).await?;
    Ok(Reply::forwarded(response.into(), CODE_HEADER))
}
