//! The HTTP edge: the request as the worker reads it, its body (size, media type, JSON object),
//! and the reply. Header parsing and replies are plain Rust, tested natively; a reply becomes a
//! runtime `Response` in one crossing at the very end ([`crate::edge::runtime`]).

use std::borrow::Cow;
use std::cell::Cell;

use worker::js_sys::{self, Array, Reflect, Uint8Array};
use worker::wasm_bindgen::JsCast;
use worker::web_sys::{self, Blob, ReadableStreamDefaultReader};

use crate::domain::config::RequestLog;
use crate::domain::error::Error;
use crate::domain::json::JsonObject;
use crate::domain::merge::Merge;
use crate::domain::precondition::etag;
use crate::domain::session::Meta;
use crate::domain::time::{rfc3339, Millis};
use crate::edge::log::{self, RequestLine};
use crate::edge::runtime::{self, Head};
use crate::store::data::Data;
use crate::store::promise::{settled_of, Settled};

/// A request: the runtime's, and what the worker reads of it.
pub struct Incoming {
    pub raw: web_sys::Request,
    pub head: Head,
    /// Its body, being read since it arrived (see [`Incoming::arriving`]), until a handler
    /// takes it.
    arriving: Cell<Option<Settled>>,
}

impl Incoming {
    pub fn new(raw: web_sys::Request) -> Self {
        let head = Head::of(&raw);
        let arriving = Cell::new(None);
        Self {
            raw,
            head,
            arriving,
        }
    }

    /// A request to an object, whose body is read from the moment it arrives, not when its
    /// handler asks for it. A session's object serves one request at a time: a body read only
    /// in its turn kept the object waiting on the transfer with the turn held, and eight PATCHes
    /// on one session cost 11 % more CPU each than the same requests let in at once
    /// (docs/performance.md). Every body that reaches an object was bounded before it was sent
    /// (the worker reads none longer than the limit, and another object sends only what it
    /// holds), and the limit is checked again once it is read; one that no handler reads is
    /// read all the same, and dropped. A body declared empty is left alone: the runtime gives
    /// every forwarded `POST` one (a touch, a renewal), and reading it read a touch at 0.94 of
    /// the build before (0.99 once left alone; 5 rounds of `npm run bench`'s harness).
    pub fn arriving(raw: web_sys::Request) -> Self {
        let incoming = Self::new(raw);
        if declared(&incoming) != Some(0) && incoming.raw.body().is_some() {
            let read = incoming.raw.array_buffer().ok();
            incoming.arriving.set(read.as_ref().map(settled_of));
        }
        incoming
    }

    /// A header the head does not carry (the internal ones between worker and objects).
    pub fn header(&self, name: &str) -> Option<String> {
        self.raw.headers().get(name).ok().flatten()
    }
}

pub const JSON: &str = "application/json";
pub const PROBLEM_JSON: &str = "application/problem+json";
pub const TEXT: &str = "text/plain; charset=utf-8";

/// The media type of a `Content-Type` value, lowercased, without parameters.
fn essence(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

/// Which JSON a body is, from its `Content-Type`. No header at all counts as JSON, as the old
/// worker accepted; so does `text/plain`, which JavaScript's `fetch` sends for a string body
/// given without headers (and the old worker accepted). `application/json` and any
/// `application/*+json` are JSON; anything else (forms, multipart, ...) is refused.
/// `application/merge-patch+json` asks for RFC 7396 on `PATCH /add`.
pub fn body_kind(content_type: Option<&str>) -> Result<Merge, Error> {
    let Some(content_type) = content_type else {
        return Ok(Merge::Shallow);
    };
    let essence = essence(content_type);
    match essence.as_str() {
        "application/merge-patch+json" => Ok(Merge::MergePatch),
        JSON | "text/plain" => Ok(Merge::Shallow),
        other => match other.strip_prefix("application/") {
            Some(subtype) if subtype.ends_with("+json") && subtype.len() > 5 => Ok(Merge::Shallow),
            _ => Err(Error::UnsupportedMediaType),
        },
    }
}

/// Whether `Accept` asks for JSON: an `application/json` range with a non-zero quality.
/// Wildcards keep the plain-text default that `user-mgmt` reads with `response.text()`.
pub fn wants_json(accept: Option<&str>) -> bool {
    accept.is_some_and(|accept| {
        accept.split(',').any(|range| {
            let mut parts = range.split(';');
            let media = parts.next().unwrap_or_default().trim();
            let refused = parts.any(|param| {
                let param = param.trim().to_ascii_lowercase();
                param.strip_prefix("q=").is_some_and(zero_quality)
            });
            media.eq_ignore_ascii_case(JSON) && !refused
        })
    })
}

/// Whether a quality value is zero (or, invalid as it is, negative): `0`, `0.0`, `-1`. Read on
/// the text, without floating point.
fn zero_quality(q: &str) -> bool {
    let q = q.trim();
    let (whole, fraction) = q.split_once('.').unwrap_or((q, ""));
    let whole = whole.strip_prefix('-').map_or(whole, |digits| {
        if digits.bytes().any(|b| b != b'0') {
            "0"
        } else {
            digits
        }
    });
    let digits = |text: &str| text.bytes().all(|b| b.is_ascii_digit());
    !whole.is_empty()
        && digits(whole)
        && digits(fraction)
        && whole.bytes().chain(fraction.bytes()).all(|b| b == b'0')
}

/// The raw value of the first query parameter `name` in `url`, not percent-decoded: `ttl` is
/// digits and `except` a session id, so anything encoded in them is refused as invalid; the
/// caller of `before` decodes it (an RFC 3339 offset's `+` arrives as `%2B`). Parsing by hand
/// keeps the `url` crate and its Unicode tables out of the Wasm.
pub fn query_param<'u>(url: &'u str, name: &str) -> Option<&'u str> {
    let query = url.split_once('?')?.1;
    let query = query.split_once('#').map_or(query, |(query, _)| query);
    query
        .split('&')
        .find_map(|pair| match pair.split_once('=') {
            Some((key, value)) if key == name => Some(value),
            None if pair == name => Some(""),
            _ => None,
        })
}

/// Reads a body that must be one JSON object of at most `limit` bytes. The checks run cheapest
/// first (media type, declared length, actual length, JSON), and all before anything is stored.
pub async fn read_object(req: &Incoming, limit: usize) -> Result<(JsonObject, Merge), Error> {
    let kind = body_kind(req.head.content_type.as_deref())?;
    let bytes = read_limited(req, limit).await?;
    Ok((JsonObject::from_bytes(bytes)?, kind))
}

/// The body, within `limit`. With `Content-Length` (checked first) the runtime frames the body to
/// exactly that length, so it is read in one piece; so is a body read as it arrived (an object's,
/// bounded by its sender), whose length is checked before it enters Wasm. Without either
/// (chunked, at the worker), it is read chunk by chunk, and a chunk that would take it past
/// `limit` is not copied into Wasm: the stream is cancelled and the request refused, so memory
/// never holds more than the limit.
async fn read_limited(req: &Incoming, limit: usize) -> Result<Vec<u8>, Error> {
    let declared = declared_length(req, limit)?;
    let arriving = req.arriving.take();
    if declared.is_some() || arriving.is_some() {
        let read = match arriving {
            Some(read) => read,
            None => settled_of(&req.raw.array_buffer().map_err(js)?),
        };
        let bytes = Uint8Array::new(&read.await.map_err(js)?);
        // Only a body read as it arrived can be longer than it declared: it may have declared
        // nothing.
        if bytes.length() as usize > limit {
            return Err(Error::PayloadTooLarge { limit });
        }
        return Ok(bytes.to_vec());
    }
    let mut bytes = Vec::new();
    read_chunks(req, limit, |chunk| {
        let start = bytes.len();
        bytes.resize(start + chunk.length() as usize, 0);
        chunk.copy_to(&mut bytes[start..]);
    })
    .await?;
    Ok(bytes)
}

/// The `Content-Length` a request declares, when it is a number.
fn declared(req: &Incoming) -> Option<u64> {
    let declared = req.head.content_length.as_deref();
    declared.and_then(|len| len.trim().parse::<u64>().ok())
}

/// The declared `Content-Length`, refused when over `limit`.
fn declared_length(req: &Incoming, limit: usize) -> Result<Option<u64>, Error> {
    let declared = declared(req);
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(Error::PayloadTooLarge { limit });
    }
    Ok(declared)
}

/// The whole body, as sent by another object (internal: its sender bounds it).
pub async fn read_all(req: &Incoming) -> Result<Vec<u8>, Error> {
    read_limited(req, usize::MAX).await
}

/// A body the worker passes on to a session's object (strong mode), never copied into Wasm.
pub enum Passed {
    None,
    /// Declared within the limit: the runtime frames it to that length, and reads it whole as
    /// it passes it on.
    Whole,
    /// Sent in chunks: read here, chunk by chunk within the limit, into a `Blob`.
    Read(Blob),
}

/// The body to pass on, within `limit`. A body streamed on to the object as it arrives would
/// still be pumped after the object answered early without reading it, which the runtime
/// refuses: so it is read whole first. Checks the media type first, so that both modes refuse a
/// request for the same reason.
pub async fn passed_body(req: &Incoming, limit: usize) -> Result<Passed, Error> {
    if req.raw.body().is_none() {
        return Ok(Passed::None);
    }
    body_kind(req.head.content_type.as_deref())?;
    if declared_length(req, limit)?.is_some() {
        return Ok(Passed::Whole);
    }
    let chunks = Array::new();
    read_chunks(req, limit, |chunk| {
        chunks.push(&chunk);
    })
    .await?;
    Blob::new_with_u8_array_sequence(&chunks)
        .map(Passed::Read)
        .map_err(js)
}

/// Hands each chunk of the body to `take` until the end, or refuses the request (and cancels the
/// stream) at the chunk that would pass `limit`.
async fn read_chunks(
    req: &Incoming,
    limit: usize,
    mut take: impl FnMut(Uint8Array),
) -> Result<(), Error> {
    declared_length(req, limit)?;
    let Some(body) = req.raw.body() else {
        return Ok(());
    };
    let reader: ReadableStreamDefaultReader = body.get_reader().unchecked_into();
    let mut length = 0;
    loop {
        let result = settled_of(&reader.read()).await.map_err(js)?;
        if Reflect::get(&result, &"done".into())
            .map_err(js)?
            .is_truthy()
        {
            return Ok(());
        }
        let chunk: Uint8Array = Reflect::get(&result, &"value".into())
            .map_err(js)?
            .unchecked_into();
        length += chunk.length() as usize;
        if length > limit {
            // Tells the sender to stop; what it already sent is discarded by the runtime.
            let _ = reader.cancel();
            return Err(Error::PayloadTooLarge { limit });
        }
        take(chunk);
    }
}

fn js(err: worker::wasm_bindgen::JsValue) -> Error {
    Error::Internal(format!("reading the body: {err:?}"))
}

/// What the worker answers a request with: a reply made here, or (in strong mode) the promise
/// of the response the request's object makes, which goes to the caller as it is.
pub enum Served {
    Here(Reply),
    Object(js_sys::Promise),
}

/// What a handler answers, built in Rust and made a runtime `Response` once, at the end.
pub struct Reply {
    pub status: u16,
    headers: Vec<(&'static str, String)>,
    body: Data<'static>,
    /// The error code of a problem, for the request log.
    pub code: Option<Cow<'static, str>>,
}

impl Reply {
    /// A reply with a body and a content type.
    pub fn body(status: u16, content_type: &'static str, body: Vec<u8>) -> Self {
        Self::data(status, content_type, Data::Here(Cow::Owned(body)))
    }

    /// A reply with a body wherever it is held (a large merge's, outside Wasm memory).
    pub fn data(status: u16, content_type: &'static str, body: Data<'static>) -> Self {
        Self {
            status,
            headers: vec![("content-type", content_type.into())],
            body,
            code: None,
        }
    }

    pub fn no_content() -> Self {
        Self {
            status: 204,
            headers: Vec::new(),
            body: Data::Here(Cow::Borrowed(&[])),
            code: None,
        }
    }

    pub fn header(mut self, name: &'static str, value: String) -> Self {
        self.headers.push((name, value));
        self
    }

    /// The problem document for `err`, with the headers its status calls for.
    pub fn problem(err: &Error) -> Self {
        let problem = err.problem();
        let json = serde_json::to_vec(&problem).unwrap_or_default();
        let mut reply = Self::body(problem.status, PROBLEM_JSON, json);
        match err {
            Error::MethodNotAllowed { allow } => reply = reply.header("allow", (*allow).into()),
            Error::Unauthorized => reply = reply.header("www-authenticate", "Bearer".into()),
            _ => {}
        }
        if let Some(seconds) = err.retry_after() {
            reply = reply.header("retry-after", seconds.to_string());
        }
        reply.code = Some(Cow::Borrowed(err.code()));
        reply
    }

    /// The headers as `name\nvalue` lines, `Cache-Control: no-store` last (every response has
    /// it).
    fn lines(&self) -> String {
        let mut lines = String::with_capacity(96);
        for (name, value) in &self.headers {
            lines.push_str(name);
            lines.push('\n');
            lines.push_str(value);
            lines.push('\n');
        }
        lines.push_str("cache-control\nno-store");
        lines
    }

    /// Logs the request line of this reply (to `method` on `route`, begun at `started`), if
    /// `policy` wants it.
    pub fn log(&self, policy: RequestLog, method: &str, route: &str, started: Millis) {
        let line = RequestLine {
            method,
            route,
            status: self.status,
            duration_ms: runtime::now().saturating_sub(started),
            code: self.code.as_deref(),
        };
        log::request(policy, &line);
    }

    pub fn into_response(self) -> web_sys::Response {
        match &self.body {
            Data::Here(bytes) => runtime::response(self.status, self.lines(), bytes),
            Data::Outside(outside) => runtime::response_of(self.status, &self.lines(), outside),
        }
    }
}

/// Adds what a caller needs to know of a session's lifecycle: its expiry, its version, and its
/// last authentication (when, and at which level).
pub fn with_session_headers(reply: Reply, meta: &Meta) -> Reply {
    reply
        .header("session-expires", rfc3339(meta.expires_at))
        .header("etag", etag(meta.version))
        .header("session-authenticated-at", rfc3339(meta.auth.at))
        .header("session-auth-level", meta.auth.level.get().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_media_types_are_accepted() {
        assert_eq!(body_kind(None).unwrap(), Merge::Shallow);
        assert_eq!(body_kind(Some("application/json")).unwrap(), Merge::Shallow);
        assert_eq!(
            body_kind(Some("Application/JSON; charset=UTF-8")).unwrap(),
            Merge::Shallow
        );
        assert_eq!(
            body_kind(Some("application/vnd.api+json")).unwrap(),
            Merge::Shallow
        );
        assert_eq!(
            body_kind(Some("application/merge-patch+json")).unwrap(),
            Merge::MergePatch
        );
        assert_eq!(
            body_kind(Some("text/plain;charset=UTF-8")).unwrap(),
            Merge::Shallow,
            "what fetch sends for a string body"
        );
    }

    #[test]
    fn other_media_types_are_refused() {
        for other in [
            "text/html",
            "multipart/form-data; boundary=x",
            "application/x-www-form-urlencoded",
            "application/+json",
            "",
            "json",
            "text/json",
        ] {
            assert!(
                matches!(body_kind(Some(other)), Err(Error::UnsupportedMediaType)),
                "{other:?}"
            );
        }
    }

    #[test]
    fn a_reply_lists_its_headers_and_always_no_store() {
        let reply = Reply::body(200, JSON, b"{}".to_vec()).header("etag", "\"1\"".into());
        assert_eq!(
            reply.lines(),
            "content-type\napplication/json\netag\n\"1\"\ncache-control\nno-store"
        );
        let problem = Reply::problem(&Error::StoreBusy("kv".into()));
        assert_eq!(problem.status, 429);
        assert_eq!(problem.code.as_deref(), Some("store_busy"));
        assert!(problem.lines().contains("retry-after\n1\n"));
        let refused = Reply::problem(&Error::MethodNotAllowed { allow: "GET, HEAD" });
        assert!(refused.lines().contains("allow\nGET, HEAD\n"));
    }

    #[test]
    fn query_parameters() {
        let url = "https://x/create?a=1&ttl=600&ttl=5#frag";
        assert_eq!(query_param(url, "ttl"), Some("600"));
        assert_eq!(query_param("https://x/create?ttl", "ttl"), Some(""));
        assert_eq!(query_param("https://x/create?ttl=9#x", "ttl"), Some("9"));
        assert_eq!(query_param("https://x/create?xttl=1", "ttl"), None);
        assert_eq!(query_param("https://x/create", "ttl"), None);
    }

    #[test]
    fn accept_negotiation() {
        assert!(!wants_json(None));
        assert!(!wants_json(Some("*/*")));
        assert!(!wants_json(Some("text/plain")));
        assert!(wants_json(Some("application/json")));
        assert!(wants_json(Some("text/plain;q=0.5, Application/Json")));
        assert!(!wants_json(Some("application/json;q=0")));
        assert!(!wants_json(Some("application/json;q=0.000")));
        assert!(!wants_json(Some("application/json;q=-1")));
        assert!(wants_json(Some("application/json; q=0.1")));
        assert!(wants_json(Some("application/json; q=1")));
        assert!(wants_json(Some("application/json; q=bogus")));
    }
}
