//! The route table: every public path, the methods it accepts, where it runs and the function
//! that answers it, one row per route. The worker looks a request up here once and dispatches it
//! from the row ([`crate::edge::dispatch`]): it answers `405` with `Allow` from the row for any
//! other method (TRACE and CONNECT included), runs the handler where the row says (forwarding
//! it to the session's or the subject's object in strong mode, which dispatch it from the same
//! row), and logs name a request by its row's pattern, never by the concrete id.

use crate::edge::handlers::{self, Answer, Scope, SessionScope, SubjectScope};
use crate::edge::http::Incoming;

/// A handler as the table holds it: an `async fn` behind a boxed future.
pub type SessionHandler = for<'a> fn(Incoming, &'a SessionScope<'a>) -> Answer<'a>;
pub type SubjectHandler = for<'a> fn(Incoming, &'a SubjectScope<'a>) -> Answer<'a>;
pub type WorkerHandler = for<'a> fn(Incoming, &'a Scope<'a>) -> Answer<'a>;

/// Where a route runs, and its handler.
#[derive(Clone, Copy)]
pub enum Runs {
    /// An operation on one session, served where the session lives: this worker on KV, or the
    /// session's Durable Object in strong mode.
    Session {
        handler: SessionHandler,
        target: Target,
        /// Whether it reads the request body (the others ignore any): the worker reads it before
        /// forwarding, so that an object never waits on a caller's upload.
        body: bool,
    },
    /// An operation on one subject's sessions, served where its index lives: this worker on KV,
    /// or the subject's Durable Object in strong mode.
    Subject(SubjectHandler),
    /// Everything else: the worker, in every mode.
    Worker(WorkerHandler),
}

/// Which session a session route is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// The id in the path.
    Path,
    /// A new id, generated for the request.
    New,
}

pub struct Route {
    /// The path, with `:name` for one segment and `*name` for the rest; also the log name.
    pub pattern: &'static str,
    /// The methods accepted, as the `Allow` header lists them.
    pub allow: &'static str,
    /// Where it runs, and what answers it.
    pub runs: Runs,
}

/// Wraps an `async fn` handler into the boxed form the table holds.
macro_rules! boxed {
    ($scope:ident, $handler:path) => {{
        fn handler<'a>(req: Incoming, scope: &'a $scope<'a>) -> Answer<'a> {
            Box::pin($handler(req, scope))
        }
        handler
    }};
}

const fn session(
    pattern: &'static str,
    allow: &'static str,
    handler: SessionHandler,
    body: bool,
) -> Route {
    Route {
        pattern,
        allow,
        runs: Runs::Session {
            handler,
            target: Target::Path,
            body,
        },
    }
}

const fn worker(pattern: &'static str, allow: &'static str, handler: WorkerHandler) -> Route {
    Route {
        pattern,
        allow,
        runs: Runs::Worker(handler),
    }
}

#[rustfmt::skip]
pub const ROUTES: &[Route] = &[
    Route {
        pattern: "/create",
        allow: "POST",
        runs: Runs::Session {
            handler: boxed!(SessionScope, handlers::create),
            target: Target::New,
            body: true,
        },
    },
    session("/get/:id", "GET, HEAD", boxed!(SessionScope, handlers::get), false),
    session("/update/:id", "PUT", boxed!(SessionScope, handlers::update), true),
    session("/add/:id", "PATCH", boxed!(SessionScope, handlers::add), true),
    session("/delete/:id", "DELETE", boxed!(SessionScope, handlers::delete), false),
    session("/touch/:id", "POST", boxed!(SessionScope, handlers::touch), false),
    session("/rotate/:id", "POST", boxed!(SessionScope, handlers::rotate), false),
    session("/renew/:id", "POST", boxed!(SessionScope, handlers::renew), false),
    session("/reauth/:id", "POST", boxed!(SessionScope, handlers::reauth), false),
    session("/bind/:id/challenge", "POST", boxed!(SessionScope, handlers::bind_challenge), false),
    session("/bind/:id", "POST", boxed!(SessionScope, handlers::bind), false),
    session("/binding/:binding/challenge", "POST", boxed!(SessionScope, handlers::binding_challenge), false),
    session("/binding/:binding/refresh", "POST", boxed!(SessionScope, handlers::binding_refresh), false),
    Route {
        pattern: handlers::SUBJECT_SESSIONS,
        allow: "GET, HEAD, DELETE",
        runs: Runs::Subject(boxed!(SubjectScope, handlers::subject_sessions)),
    },
    Route {
        pattern: "/subjects/:subject/sessions/:handle",
        allow: "DELETE",
        runs: Runs::Subject(boxed!(SubjectScope, handlers::subject_session)),
    },
    worker("/cache/*key", "GET, HEAD, PUT, DELETE", boxed!(Scope, handlers::cache)),
    worker("/health", "GET, HEAD", boxed!(Scope, handlers::health)),
    worker("/openapi.json", "GET, HEAD", boxed!(Scope, handlers::openapi)),
];

impl Route {
    pub fn accepts(&self, method: &str) -> bool {
        self.allow.split(", ").any(|allowed| allowed == method)
    }
}

/// The route `path` falls under, and the text its first `:name` or `*name` stands for (empty when
/// the pattern has none; a handler reads any later one from the path itself). `:name` is one non-empty segment, `*name` the non-empty rest.
pub fn find(path: &str) -> Option<(&'static Route, &str)> {
    ROUTES
        .iter()
        .find_map(|route| Some((route, matches(route.pattern, path)?)))
}

fn matches<'p>(pattern: &str, path: &'p str) -> Option<&'p str> {
    let mut param = "";
    let mut rest = path;
    for segment in pattern.split('/').skip(1) {
        rest = rest.strip_prefix('/')?;
        if segment.starts_with('*') {
            return (!rest.is_empty()).then_some(rest);
        }
        let (given, after) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        if segment.starts_with(':') && !given.is_empty() {
            if param.is_empty() {
                param = given;
            }
        } else if given != segment {
            return None;
        }
        rest = after;
    }
    rest.is_empty().then_some(param)
}

/// The origin of the public routes the worker forwards to an object (the protocols between
/// objects have their own): an object serves a route only at this one.
pub const FORWARDED_ORIGIN: &str = "https://session-state";

/// The URL a request on `route` (at `url`) is handed to its Durable Object with, in strong
/// mode: only what the object reads, and never an id, since whatever records URLs (logs,
/// traces) must not see one. A session route goes as its pattern (the object has the id in a
/// header), with its query only for `/create` (`?ttl`); a subject route keeps its path (the
/// subject names the device key) and only `?before`, while `?except=<id>` travels as a handle,
/// in a header.
pub fn forwarded_url(route: &Route, url: &str) -> String {
    const ORIGIN: &str = FORWARDED_ORIGIN;
    let query = url.split_once('?').map(|(_, query)| query);
    match route.runs {
        Runs::Session { target, .. } => match (target, query) {
            (Target::New, Some(query)) => format!("{ORIGIN}{}?{query}", route.pattern),
            _ => format!("{ORIGIN}{}", route.pattern),
        },
        _ => {
            let path = url.split(['?', '#']).next().unwrap_or_default();
            let path = path.find("//").map_or(path, |scheme| {
                let rest = &path[scheme + 2..];
                rest.find('/').map_or("", |at| &rest[at..])
            });
            let before =
                query.and_then(|query| query.split('&').find(|pair| pair.starts_with("before=")));
            match before {
                Some(before) => format!("{ORIGIN}{path}?{before}"),
                None => format!("{ORIGIN}{path}"),
            }
        }
    }
}

/// How logs name a request: its route's pattern (never the concrete id), or `"unmatched"`.
pub fn log_name(route: Option<&Route>) -> &'static str {
    route.map_or("unmatched", |route| route.pattern)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template(path: &str) -> &'static str {
        log_name(find(path).map(|(route, _)| route))
    }

    #[test]
    fn templates_hide_concrete_ids() {
        assert_eq!(template("/create"), "/create");
        assert_eq!(
            template("/get/3b241101-e2bb-4255-8caf-4136c566a962"),
            "/get/:id"
        );
        assert_eq!(template("/get/anything"), "/get/:id");
        assert_eq!(template("/cache/perms:user/42"), "/cache/*key");
        assert_eq!(
            template("/subjects/ada%40example.com/sessions"),
            "/subjects/:subject/sessions"
        );
        assert_eq!(template("/health"), "/health");
    }

    #[test]
    fn parameters_are_the_segment_or_the_rest() {
        let param = |path| find(path).map(|(_, param)| param);
        assert_eq!(param("/get/abc"), Some("abc"));
        assert_eq!(param("/cache/perms:user/42"), Some("perms:user/42"));
        assert_eq!(param("/cache/a%2Fb"), Some("a%2Fb"));
        assert_eq!(param("/create"), Some(""));
        assert_eq!(param("/subjects/a%2Fb/sessions"), Some("a%2Fb"));
        assert_eq!(
            param("/subjects/ada/sessions/0f9c"),
            Some("ada"),
            "the first"
        );
    }

    #[test]
    fn unknown_paths_are_unmatched() {
        for path in [
            "/",
            "",
            "/get",
            "/get/",
            "/get/a/b",
            "/cache/",
            "/cache",
            "/createx",
            "/create/",
            "/health/x",
            "//health",
            "/subjects//sessions",
            "/subjects/ada",
            "/subjects/ada/sessions/x/y",
        ] {
            assert_eq!(template(path), "unmatched", "{path}");
        }
    }

    #[test]
    fn methods_are_checked_against_the_allow_list() {
        let (get, _) = find("/get/x").unwrap();
        assert!(get.accepts("GET") && get.accepts("HEAD"));
        for method in [
            "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT", "GE", "get",
        ] {
            assert!(!get.accepts(method), "{method}");
        }
        assert!(find("/cache/k").unwrap().0.accepts("DELETE"));
    }

    /// Strong mode hands requests to objects without the id in the URL: the session routes'
    /// ids, and a revocation's `except`.
    #[test]
    fn no_forwarded_url_holds_an_id() {
        let id = "3b241101-e2bb-4255-8caf-4136c566a962";
        let forwarded = |url: &str| {
            let path = url.trim_start_matches("http://localhost:51511");
            let path = path.split('?').next().unwrap();
            forwarded_url(find(path).unwrap().0, url)
        };
        let base = "http://localhost:51511";
        for path in [
            "/get/", "/update/", "/add/", "/delete/", "/touch/", "/rotate/", "/renew/", "/reauth/",
        ] {
            let url = forwarded(&format!("{base}{path}{id}?x={id}"));
            assert!(!url.contains(id), "{url}");
            assert_eq!(
                find(url.strip_prefix("https://session-state").unwrap())
                    .unwrap()
                    .0
                    .pattern,
                find(&format!("{path}{id}")).unwrap().0.pattern
            );
        }
        assert_eq!(
            forwarded(&format!("{base}/create?ttl=60")),
            "https://session-state/create?ttl=60"
        );
        let revoke =
            format!("{base}/subjects/ada%40x/sessions?except={id}&before=2026-12-01T00%3A00%3A00Z");
        assert_eq!(
            forwarded(&revoke),
            "https://session-state/subjects/ada%40x/sessions?before=2026-12-01T00%3A00%3A00Z"
        );
        assert_eq!(
            forwarded(&format!("{base}/subjects/ada/sessions/0f9c?except={id}")),
            "https://session-state/subjects/ada/sessions/0f9c"
        );
    }

    #[test]
    fn every_pattern_is_unique_and_matches_itself() {
        for (i, route) in ROUTES.iter().enumerate() {
            let example = route
                .pattern
                .replace(":id", "x")
                .replace(":subject", "s")
                .replace(":handle", "h")
                .replace("*key", "k");
            assert_eq!(find(&example).map(|(r, _)| r.pattern), Some(route.pattern));
            assert!(ROUTES[i + 1..]
                .iter()
                .all(|other| other.pattern != route.pattern));
        }
    }
}
