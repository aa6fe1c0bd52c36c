//! Settings, read from the Worker's vars and secrets once per isolate and checked before use.
//!
//! A bad value never falls back to a default: it fails every request with a `500` whose detail
//! names the variable, and a log line, until it is fixed.

use crate::domain::binding::{DEFAULT_BOUND_ID_SECONDS, MAX_BOUND_ID_SECONDS};
use crate::domain::derive::is_reserved_subject_key;
use crate::domain::error::ConfigError;
use crate::domain::id::IdFormat;
use crate::domain::renewal::{Renewal, DEFAULT_GRACE_SECONDS, MAX_GRACE_SECONDS};
use crate::domain::session::MS_PER_SECOND;
use crate::domain::session::{Policy, CLOCK_SKEW_MS};
use crate::domain::time::{parse_rfc3339, rfc3339, Millis};

pub const SESSION_TTL_SECONDS: &str = "SESSION_TTL_SECONDS";
pub const SESSION_MAX_LIFETIME_SECONDS: &str = "SESSION_MAX_LIFETIME_SECONDS";
pub const MAX_SESSION_BYTES: &str = "MAX_SESSION_BYTES";
pub const SESSION_TOUCH_INTERVAL_SECONDS: &str = "SESSION_TOUCH_INTERVAL_SECONDS";
pub const API_TOKEN: &str = "API_TOKEN";
pub const LOG_REQUESTS: &str = "LOG_REQUESTS";
pub const SESSION_BACKEND: &str = "SESSION_BACKEND";
pub const SESSION_SUBJECT_FIELD: &str = "SESSION_SUBJECT_FIELD";
pub const MAX_SESSIONS_PER_SUBJECT: &str = "MAX_SESSIONS_PER_SUBJECT";
pub const SUBJECT_KEY: &str = "SUBJECT_KEY";
pub const SESSION_LEGACY_LOOKUP: &str = "SESSION_LEGACY_LOOKUP";
pub const SESSION_RENEWAL_GRACE_SECONDS: &str = "SESSION_RENEWAL_GRACE_SECONDS";
pub const BOUND_SESSION_ID_SECONDS: &str = "BOUND_SESSION_ID_SECONDS";
pub const SESSION_REUSE_DETECTION: &str = "SESSION_REUSE_DETECTION";
pub const SESSION_ID_FORMAT: &str = "SESSION_ID_FORMAT";
pub const SESSIONS_NOT_BEFORE: &str = "SESSIONS_NOT_BEFORE";

const DEFAULT_TTL: u64 = 1800;
const DEFAULT_MAX_LIFETIME: u64 = 86_400;
const DEFAULT_MAX_BYTES: u64 = 65_536;
const DEFAULT_TOUCH_INTERVAL: u64 = 60;
const DEFAULT_MAX_SESSIONS_PER_SUBJECT: u64 = 100;
/// A thousand sessions list in one KV `list` and ten bulk reads (strong mode: one request).
const MAX_MAX_SESSIONS_PER_SUBJECT: u64 = 1000;
/// A year: longer-lived sessions are a mistake, and the bound keeps every expiry instant well
/// inside what JavaScript and KV represent exactly.
const MAX_LIFETIME: u64 = 365 * 86_400;
/// The largest session on KV: 10 MiB, not KV's 25 MiB value limit. Measured (`bench/memory.mjs`),
/// the heaviest merge holds about 5.6 times the session in Wasm memory, and JavaScript holds
/// copies of it too (the body, the stored value, WebCrypto's input and output); at 16 MiB
/// Wasm memory alone reached 93 MiB of an isolate's 128 MB, at 8 MiB 47 MiB. (A session of
/// exactly 25 MiB could not be stored anyway: its sealed record is 184 bytes longer.)
const KV_MAX_SESSION_BYTES: u64 = 10 * 1024 * 1024;
/// A Durable Object's SQLite row holds at most 2 MB (decimal), the sealed record's envelope
/// (header, wrapped keys, nonce and tag: under 500 bytes) and the other columns (key, handle,
/// lifecycle, subject: under 300) included: they get the last 2,000 bytes. No id is stored.
const OBJECT_MAX_SESSION_BYTES: u64 = 1_998_000;

/// Where sessions live.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionBackend {
    /// Workers KV: fast reads at every location, last write wins, deletes seen everywhere within
    /// about 60 s.
    Kv,
    /// One Durable Object per session: every operation atomic, a delete final everywhere at once.
    DurableObject,
}

/// Whether sessions stored by the old TypeScript worker and by earlier versions of this one are
/// served (`SESSION_LEGACY_LOOKUP`): entries under a bare id (looked for on a miss), objects of
/// the earlier strong mode, and records whose lifecycle is not sealed with them. Each is served
/// as it is and moved into this version's form on first use (KV: first write).
///
/// **Off unless configured.** Anything that can still write a bare id (the old worker, while
/// bound to the namespace: its `/update` creates a session under any id) makes an id of the
/// writer's choosing a session while the lookup is on, so a deployment that never had the old
/// worker must not have it. The shipped `wrangler.toml` turns it on until a date, because this
/// deployment replaces the old worker, and what it serves is only as safe as the version that
/// wrote it (an `s1` record's lifecycle is unsealed): an upgrade sets its own date, its time
/// plus one lifetime. A time ends it by itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LegacyLookup {
    On,
    Off,
    /// On until this instant, then off.
    Until(Millis),
}

impl LegacyLookup {
    /// Whether earlier forms are served at `now`.
    pub fn at(self, now: Millis) -> bool {
        match self {
            LegacyLookup::On => true,
            LegacyLookup::Off => false,
            LegacyLookup::Until(until) => now < until,
        }
    }
}

/// Which requests get a log line (`LOG_REQUESTS`). Workers Logs bill per line and each line
/// costs CPU, so by default only what an operator acts on is logged: server errors, store
/// refusals (`429`) and slow requests. Internal errors get their own line in every mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestLog {
    /// Every request.
    All,
    /// Status 500 and above, 429, and requests that took [`SLOW_MS`] or more.
    Errors,
    Off,
}

/// A request at least this slow is logged under [`RequestLog::Errors`].
pub const SLOW_MS: u64 = 1000;

impl RequestLog {
    pub fn wants(self, status: u16, duration_ms: u64) -> bool {
        match self {
            RequestLog::All => true,
            RequestLog::Errors => status >= 500 || status == 429 || duration_ms >= SLOW_MS,
            RequestLog::Off => false,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    pub backend: SessionBackend,
    /// The session rules, the size limit of bodies and sessions among them.
    pub policy: Policy,
    /// The top-level field of the session data that names its subject, if any.
    pub subject_field: Option<String>,
    /// How many live sessions one subject may have; creating one more ends the least recently
    /// written.
    pub max_sessions_per_subject: usize,
    /// The key subjects are hashed under (HMAC-SHA-256); plain SHA-256 without one.
    pub subject_key: Option<Vec<u8>>,
    /// Which requests get a log line: errors and slow ones by default.
    pub log_requests: RequestLog,
    /// Whether sessions stored by the old worker and earlier versions are served.
    pub legacy_lookup: LegacyLookup,
    /// How long a renewed id keeps working, and whether presenting it later ends the session.
    pub renewal: Renewal,
    /// The form of the ids this deployment issues; every route accepts both.
    pub id_format: IdFormat,
}

impl Config {
    /// What can only be judged against the clock, checked on every request (`now`): a
    /// `SESSIONS_NOT_BEFORE` later than now, give or take [`CLOCK_SKEW_MS`], would end every
    /// session created from now until then, each answered `201` and `404` the moment after.
    pub fn check_at(&self, now: Millis) -> Result<(), ConfigError> {
        match self.policy.not_before {
            Some(not_before) if not_before > now.saturating_add(CLOCK_SKEW_MS) => {
                Err(ConfigError {
                    variable: SESSIONS_NOT_BEFORE,
                    reason: format!(
                        "is later than now ({}): set it to the time the incident was found",
                        rfc3339(not_before)
                    ),
                })
            }
            _ => Ok(()),
        }
    }

    /// Builds the settings from raw values, as `lookup(name)` returns them (`None` when unset).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let idle_ttl = whole_number(&lookup, SESSION_TTL_SECONDS, DEFAULT_TTL, MAX_LIFETIME)?;
        let max_lifetime = whole_number(
            &lookup,
            SESSION_MAX_LIFETIME_SECONDS,
            DEFAULT_MAX_LIFETIME,
            MAX_LIFETIME,
        )?;
        let touch_interval = whole_number(
            &lookup,
            SESSION_TOUCH_INTERVAL_SECONDS,
            DEFAULT_TOUCH_INTERVAL,
            MAX_LIFETIME,
        )?;
        if idle_ttl > max_lifetime {
            return Err(ConfigError {
                variable: SESSION_TTL_SECONDS,
                reason: format!(
                    "is {idle_ttl}, above {SESSION_MAX_LIFETIME_SECONDS} ({max_lifetime})"
                ),
            });
        }
        let backend = match lookup(SESSION_BACKEND).as_deref().map(str::trim) {
            None | Some("kv") => SessionBackend::Kv,
            Some("durable_object") => SessionBackend::DurableObject,
            Some(other) => {
                return Err(ConfigError {
                    variable: SESSION_BACKEND,
                    reason: format!("must be kv or durable_object, got {other:?}"),
                })
            }
        };
        let max_body_bytes = whole_number(
            &lookup,
            MAX_SESSION_BYTES,
            DEFAULT_MAX_BYTES,
            match backend {
                SessionBackend::Kv => KV_MAX_SESSION_BYTES,
                SessionBackend::DurableObject => OBJECT_MAX_SESSION_BYTES,
            },
        )?;
        // `true` and `false` are what earlier releases took.
        let log_requests = match lookup(LOG_REQUESTS).as_deref().map(str::trim) {
            None | Some("errors") => RequestLog::Errors,
            Some("all" | "true") => RequestLog::All,
            Some("off" | "false") => RequestLog::Off,
            Some(other) => {
                return Err(ConfigError {
                    variable: LOG_REQUESTS,
                    reason: format!("must be errors, all or off, got {other:?}"),
                })
            }
        };
        let legacy_lookup = match lookup(SESSION_LEGACY_LOOKUP).as_deref().map(str::trim) {
            None | Some("off") => LegacyLookup::Off,
            Some("on") => LegacyLookup::On,
            Some(other) => match parse_rfc3339(other) {
                Some(until) => LegacyLookup::Until(until),
                None => {
                    return Err(ConfigError {
                        variable: SESSION_LEGACY_LOOKUP,
                        reason: format!("must be on, off or an RFC 3339 time, got {other:?}"),
                    })
                }
            },
        };
        // 0 is allowed here (no window), unlike the other numbers.
        let grace = match lookup(SESSION_RENEWAL_GRACE_SECONDS)
            .as_deref()
            .map(str::trim)
        {
            None => DEFAULT_GRACE_SECONDS,
            Some(raw) => match raw.parse::<u64>() {
                Ok(n) if n <= MAX_GRACE_SECONDS => n,
                _ => {
                    return Err(ConfigError {
                        variable: SESSION_RENEWAL_GRACE_SECONDS,
                        reason: format!(
                            "must be a whole number from 0 to {MAX_GRACE_SECONDS}, got {raw:?}"
                        ),
                    })
                }
            },
        };
        let reuse_detection = match lookup(SESSION_REUSE_DETECTION).as_deref().map(str::trim) {
            None | Some("on") => true,
            Some("off") => false,
            Some(other) => {
                return Err(ConfigError {
                    variable: SESSION_REUSE_DETECTION,
                    reason: format!("must be on or off, got {other:?}"),
                })
            }
        };
        let bound_id = whole_number(
            &lookup,
            BOUND_SESSION_ID_SECONDS,
            DEFAULT_BOUND_ID_SECONDS,
            MAX_BOUND_ID_SECONDS,
        )?;
        let id_format = match lookup(SESSION_ID_FORMAT).as_deref().map(str::trim) {
            None | Some("uuid") => IdFormat::Uuid,
            Some("token") => IdFormat::Token,
            Some(other) => {
                return Err(ConfigError {
                    variable: SESSION_ID_FORMAT,
                    reason: format!("must be uuid or token, got {other:?}"),
                })
            }
        };
        let not_before = match lookup(SESSIONS_NOT_BEFORE).as_deref().map(str::trim) {
            None | Some("") => None,
            Some(raw) => Some(parse_rfc3339(raw).ok_or_else(|| ConfigError {
                variable: SESSIONS_NOT_BEFORE,
                reason: format!("must be an RFC 3339 time, got {raw:?}"),
            })?),
        };
        let subject_field = lookup(SESSION_SUBJECT_FIELD)
            .map(|field| field.trim().to_owned())
            .filter(|field| !field.is_empty());
        let max_sessions_per_subject = whole_number(
            &lookup,
            MAX_SESSIONS_PER_SUBJECT,
            DEFAULT_MAX_SESSIONS_PER_SUBJECT,
            MAX_MAX_SESSIONS_PER_SUBJECT,
        )?;
        let subject_key = lookup(SUBJECT_KEY)
            .map(|key| key.trim().as_bytes().to_vec())
            .filter(|key| !key.is_empty());
        if subject_key.as_deref().is_some_and(is_reserved_subject_key) {
            return Err(ConfigError {
                variable: SUBJECT_KEY,
                reason: "is the label of a derivation of its own (see derive.rs)".into(),
            });
        }
        Ok(Self {
            backend,
            subject_field,
            max_sessions_per_subject: usize::try_from(max_sessions_per_subject).unwrap_or(1000),
            subject_key,
            log_requests,
            legacy_lookup,
            id_format,
            renewal: Renewal {
                grace_ms: grace * MS_PER_SECOND,
                reuse_detection,
                bound_id_ms: bound_id * MS_PER_SECOND,
            },
            policy: Policy {
                idle_ttl,
                max_lifetime,
                touch_interval,
                // The bound above keeps this well inside usize on wasm32.
                max_bytes: usize::try_from(max_body_bytes).unwrap_or(usize::MAX),
                not_before,
            },
        })
    }
}

/// The bearer token every route but `/health` needs (`API_TOKEN`), when set. Read apart from
/// [`Config`], so that a request is authenticated before any other setting is judged: a caller
/// without the token learns nothing, not even that a variable is wrong. Trimmed: `wrangler
/// secret put` keeps the newline of a piped `echo`.
pub fn api_token(lookup: impl Fn(&str) -> Option<String>) -> Result<Option<String>, ConfigError> {
    match lookup(API_TOKEN).map(|token| token.trim().to_owned()) {
        Some(token) if token.is_empty() => Err(ConfigError {
            variable: API_TOKEN,
            reason: "is empty".into(),
        }),
        token => Ok(token),
    }
}

/// A positive whole number up to `max`, or `default` when unset.
fn whole_number(
    lookup: &impl Fn(&str) -> Option<String>,
    variable: &'static str,
    default: u64,
    max: u64,
) -> Result<u64, ConfigError> {
    let Some(raw) = lookup(variable) else {
        return Ok(default);
    };
    match raw.trim().parse::<u64>() {
        Ok(n) if (1..=max).contains(&n) => Ok(n),
        Ok(n) if n > 0 => Err(ConfigError {
            variable,
            reason: format!("is {n}, above {max}"),
        }),
        _ => Err(ConfigError {
            variable,
            reason: format!("must be a positive whole number, got {raw:?}"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn by_default_errors_refusals_and_slow_requests_are_logged() {
        let log = RequestLog::Errors;
        for (status, ms, logged) in [
            (200, 3, false),
            (404, 3, false),
            (412, 3, false),
            (429, 3, true),
            (500, 3, true),
            (503, 3, true),
            (200, SLOW_MS - 1, false),
            (200, SLOW_MS, true),
        ] {
            assert_eq!(log.wants(status, ms), logged, "{status} in {ms} ms");
        }
        assert!(RequestLog::All.wants(200, 0));
        assert!(!RequestLog::Off.wants(500, 5000));
    }

    fn lookup<'a>(vars: &'a [(&str, &str)]) -> impl Fn(&str) -> Option<String> + 'a {
        |name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    }

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::from_lookup(lookup(vars))
    }

    fn token(vars: &[(&str, &str)]) -> Result<Option<String>, ConfigError> {
        api_token(lookup(vars))
    }

    #[test]
    fn defaults_when_nothing_is_set() {
        let config = config(&[]).unwrap();
        assert_eq!(
            config.policy,
            Policy {
                idle_ttl: 1800,
                max_lifetime: 86_400,
                touch_interval: 60,
                max_bytes: 65_536,
                not_before: None,
            }
        );
        assert_eq!(token(&[]), Ok(None));
        assert_eq!(config.log_requests, RequestLog::Errors);
        assert_eq!(config.backend, SessionBackend::Kv);
        assert_eq!(config.subject_field, None);
        assert_eq!(config.max_sessions_per_subject, 100);
        assert_eq!(config.subject_key, None);
    }

    #[test]
    fn subject_settings() {
        let config = config(&[
            (SESSION_SUBJECT_FIELD, " username "),
            (MAX_SESSIONS_PER_SUBJECT, "5"),
            (SUBJECT_KEY, "k3y\n"),
        ])
        .unwrap();
        assert_eq!(config.subject_field.as_deref(), Some("username"));
        assert_eq!(config.max_sessions_per_subject, 5);
        assert_eq!(config.subject_key.as_deref(), Some(&b"k3y"[..]));
        for bad in ["0", "1001", "x"] {
            let err = super::tests::config(&[(MAX_SESSIONS_PER_SUBJECT, bad)]).unwrap_err();
            assert_eq!(err.variable, MAX_SESSIONS_PER_SUBJECT, "{bad}");
        }
    }

    #[test]
    fn the_backend_is_kv_or_durable_object() {
        let backend = |value| config(&[(SESSION_BACKEND, value)]).map(|config| config.backend);
        assert_eq!(backend("kv"), Ok(SessionBackend::Kv));
        assert_eq!(backend("durable_object"), Ok(SessionBackend::DurableObject));
        for bad in ["", "KV", "do", "durable-object"] {
            assert_eq!(
                backend(bad).unwrap_err().variable,
                SESSION_BACKEND,
                "{bad:?}"
            );
        }
    }

    /// Off unless configured: a deployment that never had the old worker serves no bare id.
    #[test]
    fn the_legacy_lookup_is_off_unless_turned_on_and_can_end_by_itself() {
        let lookup = |value| config(&[(SESSION_LEGACY_LOOKUP, value)]).map(|c| c.legacy_lookup);
        let unset = config(&[]).unwrap().legacy_lookup;
        assert_eq!(unset, LegacyLookup::Off);
        assert!(!unset.at(0));
        assert_eq!(lookup("on"), Ok(LegacyLookup::On));
        assert_eq!(lookup(" off "), Ok(LegacyLookup::Off));
        let until = lookup("2027-01-01T00:00:00Z").unwrap();
        let end = 1_798_761_600_000;
        assert_eq!(until, LegacyLookup::Until(end));
        assert!(until.at(end - 1) && !until.at(end));
        assert!(LegacyLookup::On.at(u64::MAX));
        for bad in ["", "true", "OFF", "no", "2027-01-01"] {
            assert_eq!(
                lookup(bad).unwrap_err().variable,
                SESSION_LEGACY_LOOKUP,
                "{bad:?}"
            );
        }
    }

    #[test]
    fn a_renewal_window_is_0_to_300_seconds_and_reuse_detection_on_or_off() {
        let defaults = config(&[]).unwrap().renewal;
        assert_eq!(defaults, Renewal::default());
        assert_eq!(defaults.grace_ms, 30_000);
        assert!(defaults.reuse_detection);
        for (raw, ms) in [("0", 0), ("300", 300_000), (" 45 ", 45_000)] {
            let renewal = config(&[(SESSION_RENEWAL_GRACE_SECONDS, raw)])
                .unwrap()
                .renewal;
            assert_eq!(renewal.grace_ms, ms, "{raw:?}");
        }
        for raw in ["301", "-1", "30s", ""] {
            let err = config(&[(SESSION_RENEWAL_GRACE_SECONDS, raw)]).unwrap_err();
            assert_eq!(err.variable, SESSION_RENEWAL_GRACE_SECONDS, "{raw:?}");
        }
        let off = config(&[(SESSION_REUSE_DETECTION, "off")]).unwrap().renewal;
        assert!(!off.reuse_detection);
        let err = config(&[(SESSION_REUSE_DETECTION, "yes")]).unwrap_err();
        assert_eq!(err.variable, SESSION_REUSE_DETECTION);
    }

    #[test]
    fn a_bound_id_lives_1_to_86400_seconds() {
        assert_eq!(config(&[]).unwrap().renewal.bound_id_ms, 600_000);
        for (raw, ms) in [("1", 1_000), ("86400", 86_400_000), (" 300 ", 300_000)] {
            let renewal = config(&[(BOUND_SESSION_ID_SECONDS, raw)]).unwrap().renewal;
            assert_eq!(renewal.bound_id_ms, ms, "{raw:?}");
        }
        for raw in ["0", "86401", "-1", "10m", ""] {
            let err = config(&[(BOUND_SESSION_ID_SECONDS, raw)]).unwrap_err();
            assert_eq!(err.variable, BOUND_SESSION_ID_SECONDS, "{raw:?}");
        }
    }

    #[test]
    fn sessions_not_before_is_a_time_or_unset() {
        assert_eq!(config(&[]).unwrap().policy.not_before, None);
        let set = config(&[(SESSIONS_NOT_BEFORE, "2026-12-05T08:00:00Z")]).unwrap();
        assert_eq!(set.policy.not_before, Some(1_796_457_600_000));
        let err = config(&[(SESSIONS_NOT_BEFORE, "yesterday")]).unwrap_err();
        assert_eq!(err.variable, SESSIONS_NOT_BEFORE);
    }

    /// A cut-off in the future would answer every `/create` with a session already ended.
    #[test]
    fn sessions_not_before_later_than_now_is_refused_on_every_request() {
        let set = config(&[(SESSIONS_NOT_BEFORE, "2026-12-05T08:00:00Z")]).unwrap();
        let at = 1_796_457_600_000;
        assert_eq!(set.check_at(at), Ok(()));
        assert_eq!(set.check_at(at + 1), Ok(()));
        assert_eq!(set.check_at(at - CLOCK_SKEW_MS), Ok(()), "within the skew");
        let err = set.check_at(at - CLOCK_SKEW_MS - 1).unwrap_err();
        assert_eq!(err.variable, SESSIONS_NOT_BEFORE);
        assert!(err.reason.contains("2026-12-05T08:00:00"), "{}", err.reason);
        assert_eq!(config(&[]).unwrap().check_at(0), Ok(()));
    }

    #[test]
    fn ids_are_uuids_unless_tokens_are_asked_for() {
        assert_eq!(config(&[]).unwrap().id_format, IdFormat::Uuid);
        let token = config(&[(SESSION_ID_FORMAT, "token")]).unwrap();
        assert_eq!(token.id_format, IdFormat::Token);
        let err = config(&[(SESSION_ID_FORMAT, "uuid7")]).unwrap_err();
        assert_eq!(err.variable, SESSION_ID_FORMAT);
    }

    #[test]
    fn request_logs_can_be_widened_or_turned_off_but_not_misspelled() {
        let log = |value| config(&[(LOG_REQUESTS, value)]).unwrap().log_requests;
        assert_eq!(log("errors"), RequestLog::Errors);
        assert_eq!(log("all"), RequestLog::All);
        assert_eq!(log("true"), RequestLog::All);
        assert_eq!(log("off"), RequestLog::Off);
        assert_eq!(log("false"), RequestLog::Off);
        assert_eq!(
            config(&[(LOG_REQUESTS, "no")]).unwrap_err().variable,
            LOG_REQUESTS
        );
    }

    #[test]
    fn reads_every_setting() {
        let config = config(&[
            (SESSION_TTL_SECONDS, "2"),
            (SESSION_MAX_LIFETIME_SECONDS, "6"),
            (MAX_SESSION_BYTES, "1024"),
            (SESSION_TOUCH_INTERVAL_SECONDS, "30"),
        ])
        .unwrap();
        assert_eq!(
            config.policy,
            Policy {
                idle_ttl: 2,
                max_lifetime: 6,
                touch_interval: 30,
                max_bytes: 1024,
                not_before: None,
            }
        );
        assert_eq!(token(&[(API_TOKEN, "s3cret")]), Ok(Some("s3cret".into())));
    }

    #[test]
    fn refuses_values_that_are_not_positive_whole_numbers() {
        for bad in ["0", "-5", "1.5", "ten", "", "99999999999999999999999"] {
            let err = config(&[(SESSION_TTL_SECONDS, bad)]).unwrap_err();
            assert_eq!(err.variable, SESSION_TTL_SECONDS, "{bad:?}");
            assert!(err.to_string().contains("SESSION_TTL_SECONDS"));
        }
        let err = config(&[(SESSION_MAX_LIFETIME_SECONDS, "0")]).unwrap_err();
        assert_eq!(err.variable, SESSION_MAX_LIFETIME_SECONDS);
    }

    #[test]
    fn refuses_an_idle_timeout_above_the_lifetime() {
        let err = config(&[
            (SESSION_TTL_SECONDS, "100"),
            (SESSION_MAX_LIFETIME_SECONDS, "50"),
        ])
        .unwrap_err();
        assert_eq!(err.variable, SESSION_TTL_SECONDS);
        assert!(
            err.reason.contains("above SESSION_MAX_LIFETIME_SECONDS"),
            "{}",
            err.reason
        );
    }

    #[test]
    fn refuses_a_body_limit_beyond_what_an_isolate_holds() {
        for beyond in ["10485761", "26214400"] {
            let err = config(&[(MAX_SESSION_BYTES, beyond)]).unwrap_err();
            assert_eq!(err.variable, MAX_SESSION_BYTES);
        }
        assert!(config(&[(MAX_SESSION_BYTES, "10485760")]).is_ok());
    }

    #[test]
    fn in_strong_mode_a_session_fits_one_sqlite_row() {
        let strong = |bytes| {
            config(&[
                (SESSION_BACKEND, "durable_object"),
                (MAX_SESSION_BYTES, bytes),
            ])
        };
        let err = strong("1998001").unwrap_err();
        assert_eq!(
            (err.variable, err.reason.as_str()),
            (MAX_SESSION_BYTES, "is 1998001, above 1998000")
        );
        assert_eq!(strong("1998000").unwrap().policy.max_bytes, 1_998_000);
        assert!(
            config(&[(MAX_SESSION_BYTES, "1998001")]).is_ok(),
            "KV takes more"
        );
    }

    #[test]
    fn refuses_a_lifetime_above_a_year() {
        let year = "31536000";
        let valid = config(&[(SESSION_MAX_LIFETIME_SECONDS, year)]).unwrap();
        assert_eq!(valid.policy.max_lifetime, 31_536_000);
        for above in ["31536001", "18446744073709551615"] {
            let err = config(&[(SESSION_MAX_LIFETIME_SECONDS, above)]).unwrap_err();
            assert_eq!(err.variable, SESSION_MAX_LIFETIME_SECONDS, "{above}");
        }
        let err = config(&[(SESSION_TOUCH_INTERVAL_SECONDS, "0")]).unwrap_err();
        assert_eq!(err.variable, SESSION_TOUCH_INTERVAL_SECONDS);
    }

    #[test]
    fn refuses_a_subject_key_that_is_a_derivation_label() {
        let err = config(&[(SUBJECT_KEY, "session-state/v2/device-key")]).unwrap_err();
        assert_eq!(err.variable, SUBJECT_KEY);
        assert!(config(&[(SUBJECT_KEY, "session-state/v2/device-keys")]).is_ok());
    }

    #[test]
    fn refuses_an_empty_token_and_trims_a_pasted_one() {
        assert_eq!(token(&[(API_TOKEN, "")]).unwrap_err().variable, API_TOKEN);
        assert_eq!(
            token(&[(API_TOKEN, " \n")]).unwrap_err().variable,
            API_TOKEN
        );
        let pasted = token(&[(API_TOKEN, "s3cret\n")]);
        assert_eq!(pasted, Ok(Some("s3cret".into())));
        let others = [(API_TOKEN, "s3cret"), (SESSION_TTL_SECONDS, "ten")];
        assert_eq!(token(&others), Ok(Some("s3cret".into())), "read apart");
    }
}
