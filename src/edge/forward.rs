//! The worker's side of a route that runs in an object (strong mode): the request goes on to the
//! session's or the subject's object as the caller sent it, at a URL without the id (see
//! [`routes::forwarded_url`]), marked with which session or subject it is about, and the
//! object's answer comes back with headers the worker may still change.

use worker::{wasm_bindgen, web_sys, Env};

use crate::domain::derive::{Handle, StorageKey};
use crate::domain::error::Error;
use crate::domain::id::SessionId;
use crate::domain::subject::Subject;
use crate::edge::http::{Incoming, Reply};
use crate::edge::routes::{self, Route};
use crate::store::durable::protocol::{
    call_object, EXCEPT_HEADER, FROM_THE_WORKER, ID_HEADER, SUBJECT_HEADER,
};

/// The bindings of the namespaces in `wrangler.toml`: one object per session, one per subject.
pub const SESSIONS: &str = "sessions";
pub const SUBJECTS: &str = "subjects";

/// The error code of a problem an object answered, for the worker's request log.
pub const CODE_HEADER: &str = "session-state-code";

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
    forward(req, env, SESSIONS, &name, &url, &[(ID_HEADER, &id)], body).await
}

/// To the subject's object, with the session a revocation keeps as a handle, in a header.
pub async fn to_subject(
    req: Incoming,
    env: &Env,
    route: &Route,
    subject: &Subject,
    except: Option<Handle>,
) -> Result<Reply, Error> {
    let name = subject.hex();
    let url = routes::forwarded_url(route, &req.head.url);
    let except = except.map(|handle| handle.to_string());
    let mut headers = vec![(SUBJECT_HEADER, name.as_str())];
    headers.extend(except.as_deref().map(|handle| (EXCEPT_HEADER, handle)));
    forward(req, env, SUBJECTS, &name, &url, &headers, None).await
}

/// Hands a request to the object named `name` in the namespace `binding`, at `url`, marked
/// with `marks`.
async fn forward(
    req: Incoming,
    env: &Env,
    binding: &str,
    name: &str,
    url: &str,
    marks: &[(&str, &str)],
    body: Option<web_sys::Blob>,
) -> Result<Reply, Error> {
    let namespace = env.durable_object(binding)?;
    let headers = web_sys::Headers::new_with_headers(&req.raw.headers()).map_err(js)?;
    // What only the worker may tell an object, whatever the caller sent under those names.
    for header in FROM_THE_WORKER {
        headers.delete(header).map_err(js)?;
    }
    for (header, value) in marks {
        headers.set(header, value).map_err(js)?;
    }
    let body = body.as_ref().map(AsRef::as_ref);
    let method = &req.head.method;
    let response = call_object(&namespace, name, url, method, &headers, body).await?;
    Ok(Reply::forwarded(response.into(), CODE_HEADER))
}

fn js(err: wasm_bindgen::JsValue) -> Error {
    Error::Internal(format!("{err:?}"))
}
