//! The one error type, and its mapping to RFC 9457 problem documents.
//!
//! Every failure a handler can meet is a variant here; each maps to one status, one stable `code`
//! and a detail written for the caller. Internal errors carry their cause for the log only: the
//! response says nothing about it.

use std::fmt;

use serde::Serialize;

use crate::domain::json::BodyError;
use crate::domain::time::rfc3339;

#[derive(Debug)]
pub enum Error {
    InvalidJson,
    InvalidBody(&'static str),
    InvalidSessionId,
    InvalidTtl(String),
    InvalidCacheKey,
    InvalidSubject,
    /// Device info (`Session-Label`, `Session-Agent`, `Session-IP`) that is malformed, or given
    /// without a subject to list the session under.
    InvalidDevice(&'static str),
    /// A `before` time that is not RFC 3339.
    InvalidBefore,
    /// An `If-Match` header outside the RFC 9110 grammar: never ignored, never a lost race.
    InvalidIfMatch,
    /// `Session-Auth-Level`, `Session-Max-Auth-Age` or `Session-Min-Auth-Level` unreadable.
    InvalidAuthDemand(&'static str),
    Unauthorized,
    /// The session's last authentication is older or weaker than the request demands: what
    /// was found goes back, so the caller knows what to ask of the user.
    ReauthenticationRequired {
        /// Milliseconds since the epoch; 0 when unknown (a session of the old worker).
        authenticated_at: u64,
        /// Whole seconds since then.
        age: u64,
        level: u8,
    },
    SessionNotFound,
    /// A device-binding proof that does not hold: malformed, the wrong key or algorithm, a
    /// signature that does not verify. The reason goes back (it holds no secret).
    ProofRefused(&'static str),
    /// A proof whose challenge is not a live one of the session's current id: expired, spent by
    /// the move it allowed, or minted for another session.
    ChallengeRefused,
    /// A registration for a session already bound to a device key.
    SessionBound,
    /// `POST /renew` of a session bound to a device key: its ids move only with a proof.
    ProofRequired,
    /// A stored session that does not open (altered, or copied from another session's key):
    /// to the caller exactly a session not found, to the log an integrity failure.
    Unreadable(String),
    /// An id renewed away, presented after its grace window (or two renewals old): to the
    /// caller a session not found, to the log one line naming the session ended by handle.
    Reused(String),
    CacheEntryNotFound,
    NotFound,
    MethodNotAllowed {
        allow: &'static str,
    },
    /// The stored data is not a JSON object (the old worker stored anything): a merge would
    /// lose it, so it is refused and the data kept.
    SessionNotMergeable,
    PreconditionFailed,
    PayloadTooLarge {
        limit: usize,
    },
    /// A merge whose result would be larger than the session limit.
    SessionTooLarge {
        limit: usize,
    },
    UnsupportedMediaType,
    /// The store refused for now (KV's one write per second per key, or writers racing on one
    /// session); the text is logged, never sent.
    StoreBusy(String),
    /// The store failed; nothing was changed. The text is logged, never sent.
    StoreUnavailable(String),
    Config(ConfigError),
    /// Anything unexpected (runtime); the text is logged, never sent.
    Internal(String),
}

/// An RFC 9457 problem document with the `code` extension member.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Problem {
    #[serde(rename = "type")]
    pub type_: String,
    pub title: &'static str,
    pub status: u16,
    pub detail: String,
    pub code: &'static str,
    /// What a `reauthentication_required` found, beside the standard members.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub found: Option<Found>,
}

/// The session's last authentication, in a `reauthentication_required` problem.
#[derive(Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Found {
    pub authenticated_at: String,
    pub auth_age: u64,
    pub auth_level: u8,
}

impl Error {
    /// The stable machine-readable code; also what the request log records.
    pub fn code(&self) -> &'static str {
        match self {
            Error::InvalidJson => "invalid_json",
            Error::InvalidBody(_) => "invalid_body",
            Error::InvalidSessionId => "invalid_session_id",
            Error::InvalidTtl(_) => "invalid_ttl",
            Error::InvalidCacheKey => "invalid_cache_key",
            Error::InvalidSubject => "invalid_subject",
            Error::InvalidDevice(_) => "invalid_device",
            Error::InvalidBefore => "invalid_before",
            Error::InvalidIfMatch => "invalid_if_match",
            Error::InvalidAuthDemand(_) => "invalid_auth_demand",
            Error::Unauthorized => "unauthorized",
            Error::ReauthenticationRequired { .. } => "reauthentication_required",
            Error::SessionNotFound | Error::Unreadable(_) | Error::Reused(_) => "session_not_found",
            Error::ProofRefused(_) => "proof_refused",
            Error::ChallengeRefused => "challenge_refused",
            Error::SessionBound => "session_bound",
            Error::ProofRequired => "proof_required",
            Error::CacheEntryNotFound => "cache_entry_not_found",
            Error::NotFound => "not_found",
            Error::MethodNotAllowed { .. } => "method_not_allowed",
            Error::SessionNotMergeable => "session_not_mergeable",
            Error::PreconditionFailed => "precondition_failed",
            Error::PayloadTooLarge { .. } | Error::SessionTooLarge { .. } => "payload_too_large",
            Error::UnsupportedMediaType => "unsupported_media_type",
            Error::StoreBusy(_) => "store_busy",
            Error::StoreUnavailable(_) => "store_unavailable",
            Error::Config(_) => "invalid_configuration",
            Error::Internal(_) => "internal",
        }
    }

    pub fn status(&self) -> u16 {
        match self {
            Error::InvalidJson
            | Error::InvalidBody(_)
            | Error::InvalidSessionId
            | Error::InvalidTtl(_)
            | Error::InvalidCacheKey
            | Error::InvalidSubject
            | Error::InvalidDevice(_)
            | Error::InvalidBefore
            | Error::InvalidIfMatch
            | Error::InvalidAuthDemand(_) => 400,
            Error::Unauthorized => 401,
            Error::ReauthenticationRequired { .. }
            | Error::ProofRefused(_)
            | Error::ChallengeRefused
            | Error::ProofRequired => 403,
            Error::SessionNotFound
            | Error::Unreadable(_)
            | Error::Reused(_)
            | Error::CacheEntryNotFound
            | Error::NotFound => 404,
            Error::MethodNotAllowed { .. } => 405,
            Error::SessionNotMergeable | Error::SessionBound => 409,
            Error::PreconditionFailed => 412,
            Error::PayloadTooLarge { .. } | Error::SessionTooLarge { .. } => 413,
            Error::UnsupportedMediaType => 415,
            Error::StoreBusy(_) => 429,
            Error::Config(_) | Error::Internal(_) => 500,
            Error::StoreUnavailable(_) => 503,
        }
    }

    /// Seconds a caller should wait before trying again, for the failures worth a retry.
    pub fn retry_after(&self) -> Option<u32> {
        match self {
            Error::StoreBusy(_) => Some(1),
            Error::StoreUnavailable(_) => Some(2),
            _ => None,
        }
    }

    /// The same failure with a longer cause for the log.
    pub fn with_cause(self, more: String) -> Self {
        match self {
            Error::StoreBusy(cause) => Error::StoreBusy(format!("{cause}; {more}")),
            Error::StoreUnavailable(cause) => Error::StoreUnavailable(format!("{cause}; {more}")),
            Error::Internal(cause) => Error::Internal(format!("{cause}; {more}")),
            other => other,
        }
    }

    fn title(&self) -> &'static str {
        match self.status() {
            400 => "Bad Request",
            401 => "Unauthorized",
            403 => "Forbidden",
            404 => "Not Found",
            405 => "Method Not Allowed",
            409 => "Conflict",
            412 => "Precondition Failed",
            413 => "Content Too Large",
            415 => "Unsupported Media Type",
            429 => "Too Many Requests",
            503 => "Service Unavailable",
            _ => "Internal Server Error",
        }
    }

    fn detail(&self) -> String {
        match self {
            Error::InvalidJson => "The request body is not valid JSON.".into(),
            Error::InvalidBody(what) => format!("The request body must be {what}."),
            Error::InvalidSessionId => {
                "The session id must be a lowercase hyphenated UUID v4, or a token of 43 base64url \
                 characters."
                    .into()
            }
            Error::InvalidTtl(why) => why.clone(),
            Error::InvalidCacheKey => "A cache key is 1 to 256 bytes of printable ASCII.".into(),
            Error::InvalidSubject => {
                "A subject is 1 to 256 bytes, percent-encoded in a path or header, not beginning \
                 with session-state/."
                    .into()
            }
            Error::InvalidDevice(why) => (*why).into(),
            Error::InvalidBefore => {
                "before must be an RFC 3339 time, such as 2026-12-01T09:30:00Z.".into()
            }
            Error::InvalidIfMatch => "If-Match must be * or a comma-separated list of entity tags \
                (RFC 9110), such as \"3\" or W/\"x\"."
                .into(),
            Error::InvalidAuthDemand(why) => (*why).into(),
            Error::ReauthenticationRequired { age, level, .. } => format!(
                "The session's last authentication (level {level}, {age} s ago) is older or weaker \
                 than this request demands; authenticate the user again and record it with \
                 POST /reauth."
            ),
            Error::Unauthorized => {
                "This service needs an Authorization: Bearer <token> header with a valid token."
                    .into()
            }
            Error::SessionNotFound | Error::Unreadable(_) | Error::Reused(_) => {
                "No live session has this id.".into()
            }
            Error::ProofRefused(why) => format!("The device-binding proof is refused: {why}."),
            Error::ChallengeRefused => "The proof does not answer a live challenge of this \
                session; ask for a new one."
                .into(),
            Error::SessionBound => "The session is already bound to a device key.".into(),
            Error::ProofRequired => "The session is bound to a device key: its id moves only \
                with a proof (POST /binding/refresh)."
                .into(),
            Error::CacheEntryNotFound => "Nothing is cached under this key.".into(),
            Error::NotFound => "No route matches this path.".into(),
            Error::MethodNotAllowed { allow } => {
                format!("This path does not accept that method; it accepts {allow}.")
            }
            Error::SessionNotMergeable => "The stored session data is not a JSON object, so \
                nothing can be merged into it; replace it with PUT /update."
                .into(),
            Error::PreconditionFailed => {
                "The session's current version does not match If-Match.".into()
            }
            Error::PayloadTooLarge { limit } => {
                format!("The request body is larger than the limit of {limit} bytes.")
            }
            Error::SessionTooLarge { limit } => {
                format!("The merged session would be larger than the limit of {limit} bytes.")
            }
            Error::UnsupportedMediaType => "Send the body as application/json (or another \
                application/*+json type, or text/plain holding JSON)."
                .into(),
            Error::StoreBusy(_) => {
                "The session store is busy with this session; retry after Retry-After seconds."
                    .into()
            }
            Error::StoreUnavailable(_) => "The session store is unavailable; nothing was \
                changed. Retry after Retry-After seconds."
                .into(),
            Error::Config(err) => format!(
                "The service is misconfigured: {} {}.",
                err.variable, err.reason
            ),
            Error::Internal(_) => "The service met an unexpected error.".into(),
        }
    }

    pub fn problem(&self) -> Problem {
        Problem {
            type_: format!("urn:session-state:problem:{}", self.code()),
            title: self.title(),
            status: self.status(),
            detail: self.detail(),
            code: self.code(),
            found: match self {
                Error::ReauthenticationRequired {
                    authenticated_at,
                    age,
                    level,
                } => Some(Found {
                    authenticated_at: rfc3339(*authenticated_at),
                    auth_age: *age,
                    auth_level: *level,
                }),
                _ => None,
            },
        }
    }

    /// What goes to the log beside the code: the internal cause where there is one.
    pub fn log_cause(&self) -> Option<String> {
        match self {
            Error::Internal(cause)
            | Error::StoreBusy(cause)
            | Error::StoreUnavailable(cause)
            | Error::Unreadable(cause)
            | Error::Reused(cause) => Some(cause.clone()),
            Error::Config(err) => Some(err.to_string()),
            _ => None,
        }
    }
}

/// A body (or a stored value) that is not session data.
impl From<BodyError> for Error {
    fn from(err: BodyError) -> Self {
        match err {
            BodyError::NotJson => Error::InvalidJson,
            BodyError::NotObject => Error::InvalidBody("a JSON object"),
        }
    }
}

/// A variable with a value the worker refuses to run with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub variable: &'static str,
    pub reason: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid configuration: {} {}",
            self.variable, self.reason
        )
    }
}

impl From<ConfigError> for Error {
    fn from(err: ConfigError) -> Self {
        Error::Config(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_contract_error_maps_to_its_status_and_code() {
        let cases: [(Error, u16, &str); 24] = [
            (Error::InvalidJson, 400, "invalid_json"),
            (Error::InvalidBody("a JSON object"), 400, "invalid_body"),
            (Error::InvalidSessionId, 400, "invalid_session_id"),
            (Error::InvalidTtl("x".into()), 400, "invalid_ttl"),
            (Error::InvalidCacheKey, 400, "invalid_cache_key"),
            (Error::InvalidSubject, 400, "invalid_subject"),
            (Error::InvalidDevice("x"), 400, "invalid_device"),
            (Error::InvalidBefore, 400, "invalid_before"),
            (Error::InvalidIfMatch, 400, "invalid_if_match"),
            (Error::Unauthorized, 401, "unauthorized"),
            (Error::InvalidAuthDemand("x"), 400, "invalid_auth_demand"),
            (
                Error::ReauthenticationRequired {
                    authenticated_at: 0,
                    age: 1,
                    level: 1,
                },
                403,
                "reauthentication_required",
            ),
            (Error::SessionNotFound, 404, "session_not_found"),
            (Error::CacheEntryNotFound, 404, "cache_entry_not_found"),
            (Error::NotFound, 404, "not_found"),
            (
                Error::MethodNotAllowed { allow: "GET" },
                405,
                "method_not_allowed",
            ),
            (Error::SessionNotMergeable, 409, "session_not_mergeable"),
            (Error::PreconditionFailed, 412, "precondition_failed"),
            (
                Error::SessionTooLarge { limit: 10 },
                413,
                "payload_too_large",
            ),
            (Error::StoreBusy("kv".into()), 429, "store_busy"),
            (
                Error::StoreUnavailable("kv".into()),
                503,
                "store_unavailable",
            ),
            (
                Error::PayloadTooLarge { limit: 10 },
                413,
                "payload_too_large",
            ),
            (Error::UnsupportedMediaType, 415, "unsupported_media_type"),
            (Error::Internal("kv: boom".into()), 500, "internal"),
        ];
        for (err, status, code) in cases {
            let problem = err.problem();
            assert_eq!((problem.status, problem.code), (status, code));
            assert_eq!(problem.type_, format!("urn:session-state:problem:{code}"));
            assert!(!problem.title.is_empty() && !problem.detail.is_empty());
        }
    }

    #[test]
    fn internal_causes_are_logged_but_never_sent() {
        for err in [
            Error::Internal("kv: connection reset at 10.0.0.1".into()),
            Error::StoreBusy("kv: connection reset at 10.0.0.1".into()),
            Error::StoreUnavailable("kv: connection reset at 10.0.0.1".into()),
        ] {
            let body = serde_json::to_string(&err.problem()).unwrap();
            assert!(!body.contains("connection reset"), "{body}");
            assert_eq!(
                err.log_cause().as_deref(),
                Some("kv: connection reset at 10.0.0.1")
            );
        }
    }

    #[test]
    fn only_store_failures_ask_for_a_retry() {
        assert_eq!(Error::StoreBusy(String::new()).retry_after(), Some(1));
        assert_eq!(
            Error::StoreUnavailable(String::new()).retry_after(),
            Some(2)
        );
        assert_eq!(Error::Internal(String::new()).retry_after(), None);
        assert_eq!(Error::SessionNotFound.retry_after(), None);
    }

    #[test]
    fn a_config_error_names_the_variable() {
        let err = Error::from(ConfigError {
            variable: "SESSION_TTL_SECONDS",
            reason: "must be a positive whole number, got \"abc\"".into(),
        });
        let problem = err.problem();
        assert_eq!(problem.status, 500);
        assert_eq!(problem.code, "invalid_configuration");
        assert!(
            problem.detail.contains("SESSION_TTL_SECONDS"),
            "{}",
            problem.detail
        );
    }

    #[test]
    fn the_problem_document_has_the_rfc_9457_members() {
        let json = serde_json::to_value(Error::SessionNotFound.problem()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "type": "urn:session-state:problem:session_not_found",
                "title": "Not Found",
                "status": 404,
                "detail": "No live session has this id.",
                "code": "session_not_found",
            })
        );
        let stale = Error::ReauthenticationRequired {
            authenticated_at: 1_764_100_824_123,
            age: 600,
            level: 2,
        };
        let json = serde_json::to_value(stale.problem()).unwrap();
        assert_eq!(json["authenticatedAt"], "2025-11-25T20:00:24.123Z");
        assert_eq!(
            (json["authAge"].as_u64(), json["authLevel"].as_u64()),
            (Some(600), Some(2))
        );
        assert_eq!(json["status"], 403);
    }
}
