//! Structured logs: one JSON line per request, and one per internal error. They never hold
//! session data, tokens or whole session ids: requests are named by route template, and any id
//! inside an error's text is cut to its first 8 characters.

use serde::Serialize;
use worker::{console_error, console_log};

use crate::domain::config::RequestLog;
use crate::domain::error::Error;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestLine<'a> {
    pub method: &'a str,
    pub route: &'a str,
    pub status: u16,
    pub duration_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<&'a str>,
}

impl RequestLine<'_> {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Logs a request's line, if `policy` wants it.
pub fn request(policy: RequestLog, line: &RequestLine<'_>) {
    if policy.wants(line.status, line.duration_ms) {
        console_log!("{}", line.to_json());
    }
}

/// The log line for an internal error: its code and its cause, with ids shortened.
pub fn error_line(route: &str, code: &str, cause: &str) -> String {
    #[derive(Serialize)]
    struct ErrorLine<'a> {
        level: &'static str,
        route: &'a str,
        code: &'a str,
        cause: String,
    }
    let line = ErrorLine {
        level: "error",
        route,
        code,
        cause: shorten_ids(cause),
    };
    serde_json::to_string(&line).unwrap_or_default()
}

/// Logs an internal error (a store failure, a bad configuration, anything unexpected) with its
/// cause; errors the caller made are not logged here.
pub fn internal(route: &str, err: &Error) {
    if let Some(cause) = err.log_cause() {
        console_error!("{}", error_line(route, err.code(), &cause));
    }
}

/// Replaces every UUID-shaped run (8-4-4-4-12 hex digits) by its first 8 characters and `…`.
pub fn shorten_ids(text: &str) -> String {
    const SHAPE: &[u8; 36] = b"xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx";
    let bytes = text.as_bytes();
    let is_id_at = |start: usize| {
        bytes.get(start..start + 36).is_some_and(|window| {
            window.iter().zip(SHAPE).all(|(b, s)| match s {
                b'-' => *b == b'-',
                _ => b.is_ascii_hexdigit(),
            })
        })
    };
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < bytes.len() {
        if is_id_at(i) {
            out.push_str(&text[i..i + 8]);
            out.push('…');
            i += 36;
        } else {
            let ch = text[i..].chars().next().unwrap_or_default();
            out.push(ch);
            i += ch.len_utf8().max(1);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_lines_are_one_json_object() {
        let line = RequestLine {
            method: "GET",
            route: "/get/:id",
            status: 404,
            duration_ms: 3,
            code: Some("session_not_found"),
        };
        assert_eq!(
            line.to_json(),
            r#"{"method":"GET","route":"/get/:id","status":404,"durationMs":3,"code":"session_not_found"}"#
        );
        let ok = RequestLine {
            code: None,
            status: 200,
            ..line
        };
        assert!(!ok.to_json().contains("code"));
    }

    #[test]
    fn ids_in_error_text_are_shortened() {
        assert_eq!(
            shorten_ids("KV GET 3b241101-e2bb-4255-8caf-4136c566a962 failed: é"),
            "KV GET 3b241101… failed: é"
        );
        assert_eq!(shorten_ids("no id here"), "no id here");
        let line = error_line(
            "/get/:id",
            "internal",
            "key 3b241101-e2bb-4255-8caf-4136c566a962",
        );
        assert!(!line.contains("4136c566a962"), "{line}");
    }
}
