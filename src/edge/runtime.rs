//! Where Rust and JavaScript meet on every request, each in one crossing. A call between Wasm and
//! JavaScript costs (strings are re-encoded, objects wrapped and tracked), so the hot path does
//! not read a request header by header or build a response header by header: it reads what it
//! needs of the request in one call and builds the response in one call.
//!
//! The functions are small JavaScript, bundled into the worker's module by wasm-bindgen.

use wasm_bindgen::prelude::wasm_bindgen;
use worker::js_sys;
use worker::web_sys::{ReadableStream, Request, Response};

use crate::domain::time::Millis;

#[wasm_bindgen(inline_js = r#"
const HEADERS = ['content-type', 'content-length', 'if-match', 'accept', 'authorization',
  'session-subject'];

export function requestHead(request) {
  const headers = request.headers;
  let head = request.method + '\n' + request.url;
  for (const name of HEADERS) {
    const value = headers.get(name);
    head += value === null ? '\n-' : '\n+' + value;
  }
  return head;
}

function headersOf(lines) {
  const headers = new Headers();
  const parts = lines.split('\n');
  for (let i = 0; i + 1 < parts.length; i += 2) headers.set(parts[i], parts[i + 1]);
  return headers;
}

export function respond(status, lines, bytes, stream) {
  const empty = status === 204 || status === 304 || (stream === undefined && bytes.length === 0);
  const body = empty ? null : stream ?? bytes.slice();
  return new Response(body, { status, headers: headersOf(lines) });
}

export function rewrap(response, lines, without) {
  const headers = new Headers(response.headers);
  headers.delete(without);
  for (const [name, value] of headersOf(lines)) headers.set(name, value);
  return new Response(response.body, { status: response.status, headers });
}
"#)]
extern "C" {
    /// `METHOD\nURL` then, for each header the worker reads, `\n+value` or `\n-` when absent.
    #[wasm_bindgen(js_name = requestHead)]
    fn request_head(request: &Request) -> String;

    /// A response with the headers given as `name\nvalue\n...` pairs, and a body of `bytes`
    /// (copied) or `stream`.
    fn respond(status: u16, lines: &str, bytes: &[u8], stream: Option<ReadableStream>) -> Response;

    /// `response` again, with headers added and one removed (a response from `fetch` has
    /// immutable headers).
    fn rewrap(response: &Response, lines: &str, without: &str) -> Response;
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
}

impl Head {
    pub fn of(request: &Request) -> Self {
        Self::parse(&request_head(request))
    }

    /// Parses what `requestHead` wrote. Header values never hold a newline (fetch refuses them).
    fn parse(text: &str) -> Self {
        let mut lines = text.split('\n');
        let mut next = || lines.next().unwrap_or_default();
        let (method, url) = (next().to_owned(), next().to_owned());
        let mut header = || next().strip_prefix('+').map(str::to_owned);
        Self {
            method,
            url,
            content_type: header(),
            content_length: header(),
            if_match: header(),
            accept: header(),
            authorization: header(),
            subject: header(),
        }
    }

    /// The path, still percent-encoded: what follows the host, up to the query.
    pub fn path(&self) -> &str {
        let after_scheme = self.url.find("://").map_or(0, |at| at + 3);
        let rest = &self.url[after_scheme..];
        let path = rest.find('/').map_or("/", |at| &rest[at..]);
        path.split(['?', '#']).next().unwrap_or("/")
    }
}

/// Builds a response in one crossing; see [`respond`].
pub fn response(
    status: u16,
    lines: &str,
    bytes: &[u8],
    stream: Option<ReadableStream>,
) -> Response {
    respond(status, lines, bytes, stream)
}

/// A response from elsewhere with headers added and `without` removed; see [`rewrap`].
pub fn rewrapped(response: &Response, lines: &str, without: &str) -> Response {
    rewrap(response, lines, without)
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
