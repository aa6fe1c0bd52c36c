//! Where Rust and JavaScript meet on every request, each in one crossing. A call between Wasm and
//! JavaScript costs (strings are re-encoded, objects wrapped and tracked), so the hot path does
//! not read a request header by header or build a response header by header: it reads what it
//! needs of the request in one call and builds the response in one call.
//!
//! The functions are small JavaScript, bundled into the worker's module by wasm-bindgen.

use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::JsValue;
use worker::js_sys::{self, Uint8Array};
use worker::web_sys::{Request, Response};

use crate::domain::time::Millis;
use crate::store::data::Outside;

#[wasm_bindgen(inline_js = r#"
export function requestHead(request, names) {
  const headers = request.headers;
  let head = request.method + '\n' + request.url;
  for (const name of names) {
    const value = headers.get(name);
    head += value === null ? '\n-' : '\n+' + value;
  }
  return head;
}

function setAll(headers, lines) {
  const parts = lines.split('\n');
  for (let i = 0; i + 1 < parts.length; i += 2) headers.set(parts[i], parts[i + 1]);
  return headers;
}

// Whether an answer goes without a body: statuses that have none, or nothing to send.
const bodiless = (status, length) => status === 204 || status === 304 || length === 0;

export function respond(status, lines, bytes) {
  const body = bodiless(status, bytes.length) ? null : bytes.slice();
  return new Response(body, { status, headers: setAll(new Headers(), lines) });
}

export function respondText(status, text) {
  const at = text.indexOf('\0');
  const body = text.slice(at + 1);
  const headers = setAll(new Headers(), text.slice(0, at));
  return new Response(bodiless(status, body.length) ? null : body, { status, headers });
}

export function respondWith(status, lines, body) {
  return new Response(body, { status, headers: setAll(new Headers(), lines) });
}

export function forwardTo(namespace, name, url, request, prefix, drop, lines, body, whole, failed, route, started, logged) {
  // The runtime copies the caller's headers in one call; only names are read here, to drop
  // those never passed on. A copy made here entry by entry took 1.5 times as long for a caller
  // sending six headers (traced; docs/performance.md).
  const headers = new Headers(request.headers);
  for (const key of [...headers.keys()]) {
    if (key.startsWith(prefix) || drop.includes(key)) headers.delete(key);
  }
  setAll(headers, lines);
  const method = request.method;
  const stub = namespace.get(namespace.idFromName(name));
  const call = (body) => stub.fetch(url, { method, headers, body });
  return (whole ? request.arrayBuffer().then(call) : call(body))
    .catch((err) => failed(String(err?.message ?? err), method, route, started, logged));
}
"#)]
extern "C" {
    /// `METHOD\nURL` then, for each header of `names` in order, `\n+value` or `\n-` when
    /// absent.
    #[wasm_bindgen(js_name = requestHead)]
    fn request_head(request: &Request, names: &js_sys::Array) -> String;

    /// A response with the headers given as `name\nvalue\n...` pairs, and a body of `bytes`
    /// (copied).
    fn respond(status: u16, lines: &str, bytes: &[u8]) -> Response;

    /// A response from `text`: the headers as in `respond`, a NUL (no header holds one), then
    /// the body.
    #[wasm_bindgen(js_name = respondText)]
    fn respond_text(status: u16, text: &str) -> Response;

    /// A response with the headers given as in `respond`, and `body` as it is (not copied).
    #[wasm_bindgen(js_name = respondWith)]
    fn respond_with(status: u16, lines: &str, body: &Uint8Array) -> Response;

    /// The object `name` of `namespace` asked `url` with `request`'s method and headers (but those
    /// whose name begins with `prefix` or is in `left`, with those of `lines` set) and `body`, or
    /// with `request`'s own body read whole when `whole`: the promise of its response, or of
    /// `failed`'s when the call (or the reading) fails.
    #[wasm_bindgen(js_name = forwardTo)]
    fn forward_to(
        namespace: &JsValue,
        name: &str,
        url: &str,
        request: &Request,
        prefix: &str,
        left: &js_sys::Array,
        lines: &str,
        body: Option<&JsValue>,
        whole: bool,
        failed: &js_sys::Function,
        route: &str,
        started: f64,
        logged: bool,
    ) -> js_sys::Promise;
}

/// Where a request the worker hands to an object goes, and what it carries.
pub struct Forward<'a> {
    /// The namespace's binding (`env.<binding>`), and the object's name in it.
    pub namespace: &'a JsValue,
    pub name: &'a str,
    pub url: &'a str,
    /// Caller's headers never passed on: every one whose name begins with `prefix` (the
    /// worker's own marks, which only it sets) and those named in `drop`.
    pub prefix: &'a str,
    pub drop: &'a [&'a str],
    /// The worker's marks, set on what is passed on.
    pub marks: &'a [(&'a str, &'a str)],
    pub body: Option<&'a JsValue>,
    /// Pass on the request's own body, read whole first (`body` is then `None`).
    pub whole: bool,
}

/// What a failed call to an object is answered with: `failed` is called with the failure's
/// message, the request's method, and `route`, `started` and `logged` as given here.
pub struct OnFailure<'a> {
    pub failed: &'a js_sys::Function,
    pub route: &'a str,
    pub started: Millis,
    pub logged: bool,
}

/// Hands `request` to an object as `forward` says, in one crossing, and gives the promise of
/// the object's response, which goes to the caller as it is (no copy, no second wrap); a call
/// that fails (the object unreachable, overloaded, reset) resolves to `on_failure`'s answer.
pub fn forward(
    request: &Request,
    forward: &Forward<'_>,
    on_failure: &OnFailure<'_>,
) -> js_sys::Promise {
    let drop: js_sys::Array = forward
        .drop
        .iter()
        .map(|name| JsValue::from_str(name))
        .collect();
    let lines = forward
        .marks
        .iter()
        .map(|(name, value)| format!("{name}\n{value}"))
        .collect::<Vec<_>>()
        .join("\n");
    forward_to(
        forward.namespace,
        forward.name,
        forward.url,
        request,
        forward.prefix,
        &drop,
        &lines,
        forward.body,
        forward.whole,
        on_failure.failed,
        on_failure.route,
        on_failure.started as f64,
        on_failure.logged,
    )
}

/// The headers the worker reads: the one list both sides use, in the order JavaScript reports
/// them (it is given the list from here) and Rust reads them back ([`Head::header_mut`]).
const HEADERS: [&str; 8] = [
    "content-type",
    "content-length",
    "if-match",
    "accept",
    "authorization",
    "session-subject",
    "session-max-auth-age",
    "session-min-auth-level",
];

thread_local! {
    /// [`HEADERS`] as JavaScript holds it, made once per isolate.
    static NAMES: js_sys::Array = HEADERS.iter().map(|name| JsValue::from_str(name)).collect();
}

/// What the worker reads of every request, read in one crossing.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Head {
    pub method: String,
    pub url: String,
    pub content_type: Option<String>,
    pub content_length: Option<String>,
    pub if_match: Option<String>,
    pub accept: Option<String>,
    pub authorization: Option<String>,
    pub subject: Option<String>,
    pub max_auth_age: Option<String>,
    pub min_auth_level: Option<String>,
}

impl Head {
    pub fn of(request: &Request) -> Self {
        Self::parse(&NAMES.with(|names| request_head(request, names)))
    }

    /// Parses what `requestHead` wrote. Header values never hold a newline (fetch refuses them).
    fn parse(text: &str) -> Self {
        let mut lines = text.split('\n');
        let mut next = || lines.next().unwrap_or_default();
        let mut head = Self {
            method: next().to_owned(),
            url: next().to_owned(),
            ..Self::default()
        };
        for name in HEADERS {
            let value = next().strip_prefix('+').map(str::to_owned);
            if let Some(field) = head.header_mut(name) {
                *field = value;
            }
        }
        head
    }

    /// The field a header of [`HEADERS`] is read into.
    fn header_mut(&mut self, name: &str) -> Option<&mut Option<String>> {
        Some(match name {
            "content-type" => &mut self.content_type,
            "content-length" => &mut self.content_length,
            "if-match" => &mut self.if_match,
            "accept" => &mut self.accept,
            "authorization" => &mut self.authorization,
            "session-subject" => &mut self.subject,
            "session-max-auth-age" => &mut self.max_auth_age,
            "session-min-auth-level" => &mut self.min_auth_level,
            _ => return None,
        })
    }

    /// The path, still percent-encoded: what follows the host, up to the query.
    pub fn path(&self) -> &str {
        let after_scheme = self.url.find("://").map_or(0, |at| at + 3);
        let rest = &self.url[after_scheme..];
        let path = rest.find('/').map_or("/", |at| &rest[at..]);
        path.split(['?', '#']).next().unwrap_or("/")
    }
}

/// Bodies of text up to this size cross in the one string that carries the headers, and the
/// runtime's `Response` is made from a string, not from a copy of Wasm memory in a new
/// `ArrayBuffer`: 1.7 % fewer instructions per KV GET of 200 B for the whole workerd process
/// (fewer in every round, `node bench/instructions.mjs`, docs/performance.md). Larger bodies
/// (a large session) are copied as bytes, as before: a string would be decoded from UTF-8 and
/// encoded again, which was not measured against the copy.
const AS_TEXT: usize = 1024;

/// Builds a response in one crossing, with the headers' `lines` (see [`respond`]) and `bytes`:
/// as text when they are short UTF-8 (which round-trips exactly: a `str` has no lone
/// surrogate; every reply with a body names its content type, so a string's default type
/// never applies), else copied.
pub fn response(status: u16, mut lines: String, bytes: &[u8]) -> Response {
    let text = (bytes.len() <= AS_TEXT)
        .then(|| std::str::from_utf8(bytes).ok())
        .flatten();
    match text {
        Some(text) => {
            lines.push('\0');
            lines.push_str(text);
            respond_text(status, &lines)
        }
        None => respond(status, &lines, bytes),
    }
}

/// The same, with a body held in JavaScript, given to the response as it is.
pub fn response_of(status: u16, lines: &str, body: &Outside) -> Response {
    respond_with(status, lines, &body.0)
}

/// The time, in milliseconds since the epoch. `Date.now()`, not `new Date()` (what
/// `worker::Date::now` makes): no object to allocate, cross and drop, which the profile showed
/// at about 25 µs a request for three clock reads.
pub fn now() -> Millis {
    // Whole milliseconds, positive: the cast neither truncates nor wraps.
    js_sys::Date::now() as Millis
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_head_reads_present_and_absent_headers() {
        let head = Head::parse(
            "PATCH\nhttps://x/add/1?ttl=5\n+application/json\n-\n+\"3\"\n-\n+Bearer t\n-",
        );
        assert_eq!(head.method, "PATCH");
        assert_eq!(head.content_type.as_deref(), Some("application/json"));
        assert_eq!(head.content_length, None);
        assert_eq!(head.if_match.as_deref(), Some("\"3\""));
        assert_eq!(head.authorization.as_deref(), Some("Bearer t"));
        assert_eq!(head.subject, None);
        let empty = Head::parse("GET\nhttps://x/\n+\n-\n-\n-\n-\n-");
        assert_eq!(empty.content_type.as_deref(), Some(""), "present but empty");
    }

    #[test]
    fn every_header_requested_is_read_into_its_own_field() {
        // What `requestHead` writes when each header's value is its own name.
        let mut text = String::from("GET\nhttps://x/");
        for name in HEADERS {
            text.push_str(&format!("\n+{name}"));
        }
        let mut head = Head::parse(&text);
        for name in HEADERS {
            let field = head.header_mut(name).map(|field| field.take());
            assert_eq!(field, Some(Some(name.to_owned())), "{name}");
        }
        assert_eq!(
            head,
            Head {
                method: "GET".into(),
                url: "https://x/".into(),
                ..Head::default()
            },
            "no field left unread"
        );
    }

    #[test]
    fn the_path_is_what_follows_the_host() {
        let path = |url: &str| {
            Head {
                url: url.into(),
                ..Head::default()
            }
            .path()
            .to_owned()
        };
        assert_eq!(path("https://session-state/get/abc?x=1"), "/get/abc");
        assert_eq!(path("http://127.0.0.1:8787/cache/a%2Fb#f"), "/cache/a%2Fb");
        assert_eq!(path("https://host"), "/");
        assert_eq!(path("https://host/"), "/");
        assert_eq!(path("https://host?x"), "/");
    }
}
