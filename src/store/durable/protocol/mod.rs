//! The requests the worker and the objects send one another. The worker forwards a public route
//! to the object where it runs as the caller sent it (see `edge::forward`); everything else is
//! one of the protocols in [`PROTOCOLS`], each in its own file with both halves: the client (a
//! store or index the sender uses like any other) and the server (what the receiving object
//! answers, natively tested like the rest of the store).
//!
//! ```text
//! path     file       served by                          sent by
//! /store   store.rs   a session's object                 a session's object (rotation writes
//!                                                        the new id), a subject's object
//!                                                        (listing, revocation: by key alone)
//! /old     legacy.rs  an object of the earlier strong    a session's object moving its session
//!                     mode (named by the bare id)        in
//! /index   index.rs   a subject's object                 a session's object (its entry, its
//!                                                        lifecycle; making room)
//! ```
//!
//! None of it is reachable from outside: only a stub of the namespace can send these requests,
//! the worker never dispatches these paths, an object serves them only at their own origin
//! ([`ORIGIN`], not the forwarded routes'), and the worker removes every header named like
//! its own ([`INTERNAL_PREFIX`]) from whatever a caller sent.

pub mod index;
pub mod legacy;
pub mod store;

use worker::wasm_bindgen::JsValue;
use worker::{web_sys, ObjectNamespace, Request};

use crate::domain::error::Error;

/// Which protocol a path is, and which object serves it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    Store,
    Legacy,
    Index,
}

/// The kind of object a request is served in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Object {
    /// A session's (the class `SessionObject`, which also runs the objects of the earlier
    /// strong mode).
    Session,
    /// A subject's (`SubjectObject`).
    Subject,
}

pub struct Row {
    pub path: &'static str,
    pub protocol: Protocol,
    pub served_by: Object,
}

/// The protocols, by path: the second table (the first is the public routes').
pub const PROTOCOLS: &[Row] = &[
    Row {
        path: store::PATH,
        protocol: Protocol::Store,
        served_by: Object::Session,
    },
    Row {
        path: legacy::PATH,
        protocol: Protocol::Legacy,
        served_by: Object::Session,
    },
    Row {
        path: index::PATH,
        protocol: Protocol::Index,
        served_by: Object::Subject,
    },
];

/// The protocol at `path`, when served by `object`.
pub fn find(path: &str, object: Object) -> Option<Protocol> {
    PROTOCOLS
        .iter()
        .find(|row| row.path == path && row.served_by == object)
        .map(|row| row.protocol)
}

/// The header that tells a session's object which session a request is about: the id, which
/// the object needs to open the data, and stores nowhere.
pub const ID_HEADER: &str = "session-state-id";
/// The header that names the session a request to its object is about by key alone (a
/// subject's listing or revocation, which has no id).
pub const KEY_HEADER: &str = "session-state-key";
/// The header naming the subject a request to a subject's object is about (its hash).
pub const SUBJECT_HEADER: &str = "session-state-subject";
/// The session a revocation keeps (`?except=<id>` at the worker), by its handle.
pub const EXCEPT_HEADER: &str = "session-state-except";

/// The session a subject's listing marks as current (the caller's `Session-Id`), by its
/// handle; `-` when that header named no session.
pub const CURRENT_HEADER: &str = "session-state-current";

/// What begins the name of every header between the worker and the objects: the worker drops
/// every header so named from what a caller sent before it forwards a request, and sets its
/// own, so no caller can speak for it.
pub const INTERNAL_PREFIX: &str = "session-state-";

/// The origin of the protocols' requests. A forwarded public route comes at
/// [`crate::edge::routes`]' own origin instead; an object serves each only at its own.
pub const ORIGIN: &str = "https://object";

/// A protocol request, as its server half reads it: the body is read whole first (a session's
/// data, an index entry's device info, or nothing).
pub struct Call<'a> {
    pub method: &'a str,
    pub header: &'a dyn Fn(&str) -> Option<String>,
    pub body: Vec<u8>,
}

impl Call<'_> {
    pub fn header(&self, name: &str) -> Option<String> {
        (self.header)(name)
    }
}

/// A server half's answer.
#[derive(Debug, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn new(status: u16, body: Vec<u8>) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body,
        }
    }

    /// `204`: done.
    pub fn done() -> Self {
        Self::new(204, Vec::new())
    }

    pub fn header(mut self, name: &'static str, value: String) -> Self {
        self.headers.push((name, value));
        self
    }
}

/// A failed call to a Durable Object: an overloaded object is busy, anything else unavailable.
pub fn object_failure(err: worker::Error) -> Error {
    failure_of(&err.to_string())
}

/// A failed call to a Durable Object, from the runtime's message.
pub fn failure_of(message: &str) -> Error {
    let cause = format!("durable object: {message}");
    if message.contains("overloaded") {
        Error::StoreBusy(cause)
    } else {
        Error::StoreUnavailable(cause)
    }
}

/// An object answered what its protocol does not: the store is not working as it should.
fn unexpected(object: &str, status: u16) -> Error {
    Error::StoreUnavailable(format!("{object} answered {status}"))
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

/// A protocol request from an object: to the object `name` of `namespace`, at `path`, with
/// `headers` and `body`.
async fn send(
    namespace: &ObjectNamespace,
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
    let url = format!("{ORIGIN}{path}");
    let body = body.map(worker::js_sys::Uint8Array::from);
    let body = body.as_ref().map(AsRef::as_ref);
    call_object(namespace, name, &url, method, &request_headers, body).await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The worker drops what a caller sends under the prefix: every header an object trusts
    /// must carry it.
    #[test]
    fn every_header_between_worker_and_objects_carries_the_internal_prefix() {
        let headers = [
            ID_HEADER,
            KEY_HEADER,
            SUBJECT_HEADER,
            EXCEPT_HEADER,
            CURRENT_HEADER,
            index::MEMBER_HEADER,
            index::LIKE_HEADER,
            legacy::KV_COPY,
            store::META,
            store::EXPECT,
            store::EVENT,
            store::RETIRED,
        ];
        for header in headers {
            assert!(header.starts_with(INTERNAL_PREFIX), "{header}");
            assert_eq!(
                header,
                header.to_ascii_lowercase(),
                "as Headers iterates them"
            );
        }
    }

    #[test]
    fn each_path_is_one_protocol_served_by_one_kind_of_object() {
        for row in PROTOCOLS {
            let others = PROTOCOLS.iter().filter(|other| other.path == row.path);
            assert_eq!(others.count(), 1, "{}", row.path);
            assert_eq!(find(row.path, row.served_by), Some(row.protocol));
            let elsewhere = match row.served_by {
                Object::Session => Object::Subject,
                Object::Subject => Object::Session,
            };
            assert_eq!(find(row.path, elsewhere), None, "{}", row.path);
        }
    }
}
