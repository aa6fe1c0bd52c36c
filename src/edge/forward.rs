//! The worker's side of a route that runs in an object (strong mode): the request goes on to the
//! session's or the subject's object as the caller sent it, at a URL without the id (see
//! [`routes::forwarded_url`]), marked with which session or subject it is about, and the
//! object's response goes back to the caller as it is: the object logs the request, the worker
//! does not wait for it in Rust, copy it or wrap it again. Only a call that fails is answered
//! (and logged) here.

use std::cell::OnceCell;

use wasm_bindgen::closure::Closure;
use wasm_bindgen::JsCast;
use worker::{js_sys, web_sys, Env};

use crate::domain::config::{Config, RequestLog};
use crate::domain::derive::{Handle, StorageKey};
use crate::domain::error::Error;
use crate::domain::id::SessionId;
use crate::domain::subject::Subject;
use crate::edge::http::{Incoming, Passed, Reply};
use crate::edge::log;
use crate::edge::routes::{self, Route};
use crate::edge::runtime::{self, Forward, OnFailure};
use crate::store::bindings;
use crate::store::durable::protocol::{
    failure_of, CURRENT_HEADER, EXCEPT_HEADER, ID_HEADER, INTERNAL_PREFIX, SUBJECT_HEADER,
};

/// The bindings of the namespaces in `wrangler.toml`: one object per session, one per subject.
pub const SESSIONS: &str = "sessions";
pub const SUBJECTS: &str = "subjects";

/// What the caller sent that no object is given: the token the worker checked.
const NEVER_FORWARDED: &[&str] = &["authorization"];
/// What a subject's object is not given either: a session's id (the listing's marker of the
/// current session goes as a handle, [`CURRENT_HEADER`]).
const NOT_TO_A_SUBJECT: &[&str] = &["authorization", "session-id"];

/// To the session's object, with the id in a header (never in the URL), and the body as
/// [`crate::edge::http::passed_body`] found it.
pub fn to_session(
    req: &Incoming,
    env: &Env,
    config: &Config,
    route: &Route,
    id: &SessionId,
    body: Passed,
) -> Result<js_sys::Promise, Error> {
    let namespace = bindings::namespace(env, SESSIONS)?;
    let name = StorageKey::of(id).name();
    let id = id.to_string();
    let url = routes::forwarded_url(route, &req.head.url);
    let (body, whole) = match body {
        Passed::None => (None, false),
        Passed::Whole => (None, true),
        Passed::Read(blob) => (Some(blob.into()), false),
    };
    let to = Forward {
        namespace: namespace.as_ref(),
        name: &name,
        url: &url,
        prefix: INTERNAL_PREFIX,
        drop: NEVER_FORWARDED,
        marks: &[(ID_HEADER, id.as_str())],
        body: body.as_ref(),
        whole,
    };
    Ok(forward(req, &to, route, config))
}

/// To the subject's object, with handles for ids: the session a revocation keeps, and the one
/// a listing marks as current (`-`: a header that named no session).
pub fn to_subject(
    req: &Incoming,
    env: &Env,
    config: &Config,
    route: &Route,
    subject: &Subject,
    (except, current): (Option<Handle>, Option<Option<Handle>>),
) -> Result<js_sys::Promise, Error> {
    let namespace = bindings::namespace(env, SUBJECTS)?;
    let name = subject.hex();
    let url = routes::forwarded_url(route, &req.head.url);
    let except = except.map(|handle| handle.to_string());
    let current = current.map(|handle| handle.map_or("-".into(), |h| h.to_string()));
    let mut marks = vec![(SUBJECT_HEADER, name.as_str())];
    marks.extend(except.as_deref().map(|handle| (EXCEPT_HEADER, handle)));
    marks.extend(current.as_deref().map(|handle| (CURRENT_HEADER, handle)));
    let to = Forward {
        namespace: namespace.as_ref(),
        name: &name,
        url: &url,
        prefix: INTERNAL_PREFIX,
        drop: NOT_TO_A_SUBJECT,
        marks: &marks,
        body: None,
        whole: false,
    };
    Ok(forward(req, &to, route, config))
}

fn forward(req: &Incoming, to: &Forward<'_>, route: &Route, config: &Config) -> js_sys::Promise {
    FAILED.with(|failed| {
        let on_failure = OnFailure {
            failed: failed.get_or_init(failure_answer).as_ref().unchecked_ref(),
            route: routes::log_name(Some(route)),
            started: runtime::now(),
            logged: config.log_requests != RequestLog::Off,
        };
        runtime::forward(&req.raw, to, &on_failure)
    })
}

type Failed = Closure<dyn Fn(String, String, String, f64, bool) -> web_sys::Response>;

thread_local! {
    /// What a failed call to an object answers, made once per isolate.
    static FAILED: OnceCell<Failed> = const { OnceCell::new() };
}

/// The answer to a call to an object that failed: its problem (`503`, busy or unavailable),
/// logged as the worker logs its own.
fn failure_answer() -> Failed {
    Closure::new(
        |message: String, method: String, route: String, started: f64, logged: bool| {
            let err = failure_of(&message);
            log::internal(&route, &err);
            let reply = Reply::problem(&err);
            if logged {
                reply.log(RequestLog::All, &method, &route, started as u64);
            }
            reply.into_response()
        },
    )
}
