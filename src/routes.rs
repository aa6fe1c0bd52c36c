//! The route table: every path the worker answers and the methods each accepts. `lib.rs` answers
//! `405` with `Allow` from it before routing (any method, TRACE and CONNECT included), and the
//! request log names a request by its route template, never by the concrete id.

pub struct Route {
    pub pattern: &'static str,
    /// The methods accepted, as the `Allow` header lists them.
    pub allow: &'static str,
}

pub const ROUTES: &[Route] = &[
    Route {
        pattern: "/create",
        allow: "POST",
    },
    Route {
        pattern: "/get/:id",
        allow: "GET, HEAD",
    },
    Route {
        pattern: "/update/:id",
        allow: "PUT",
    },
    Route {
        pattern: "/add/:id",
        allow: "PATCH",
    },
    Route {
        pattern: "/delete/:id",
        allow: "DELETE",
    },
    Route {
        pattern: "/touch/:id",
        allow: "POST",
    },
    Route {
        pattern: "/rotate/:id",
        allow: "POST",
    },
    Route {
        pattern: "/cache/*key",
        allow: "GET, HEAD, PUT, DELETE",
    },
    Route {
        pattern: "/health",
        allow: "GET, HEAD",
    },
    Route {
        pattern: "/openapi.json",
        allow: "GET, HEAD",
    },
];

impl Route {
    pub fn accepts(&self, method: &str) -> bool {
        self.allow.split(", ").any(|allowed| allowed == method)
    }
}

/// The route `path` falls under. Matches as the router does: `:name` is one non-empty segment,
/// `*name` the non-empty rest.
pub fn find(path: &str) -> Option<&'static Route> {
    ROUTES.iter().find(|route| matches(route.pattern, path))
}

fn matches(pattern: &str, path: &str) -> bool {
    let mut path_segments = path.split('/');
    for segment in pattern.split('/') {
        if segment.starts_with('*') {
            let rest: Vec<&str> = path_segments.by_ref().collect();
            return !rest.concat().is_empty();
        }
        match path_segments.next() {
            Some(given) if segment.starts_with(':') && !given.is_empty() => {}
            Some(given) if given == segment => {}
            _ => return false,
        }
    }
    path_segments.next().is_none()
}

/// How logs name a request: its route's template (never the concrete id), or `"unmatched"`.
pub fn log_name(route: Option<&Route>) -> &'static str {
    route.map_or("unmatched", |route| route.pattern)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template(path: &str) -> &'static str {
        log_name(find(path))
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
        assert_eq!(template("/health"), "/health");
    }

    #[test]
    fn unknown_paths_are_unmatched() {
        for path in [
            "/",
            "/get",
            "/get/",
            "/get/a/b",
            "/cache/",
            "/createx",
            "/health/x",
        ] {
            assert_eq!(template(path), "unmatched", "{path}");
        }
    }

    #[test]
    fn methods_are_checked_against_the_allow_list() {
        let get = find("/get/x").unwrap();
        assert!(get.accepts("GET") && get.accepts("HEAD"));
        for method in [
            "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT", "GE",
        ] {
            assert!(!get.accepts(method), "{method}");
        }
        assert!(find("/cache/k").unwrap().accepts("DELETE"));
    }
}
