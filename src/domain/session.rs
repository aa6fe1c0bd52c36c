//! The session lifecycle: metadata kept beside the data, and the expiry rules.
//!
//! Pure: the current time is always a parameter (milliseconds since the Unix epoch), so every rule
//! is tested natively without sleeping.
//!
//! A session expires at `min(last_write + idle_ttl, created + max_lifetime)`. Only writes and
//! touches count as activity: reads never write (see docs/lifecycle.md).

use std::fmt::Write;

use crate::domain::auth::{Auth, Level};
use crate::domain::binding::Binding;
use crate::domain::json;
use crate::domain::subject::Subject;
use crate::domain::time::Millis;

pub use crate::domain::time::{CLOCK_SKEW_MS, MS_PER_SECOND};

/// The rules in force for every session, from configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    /// Idle timeout in seconds, unless the session carries its own.
    pub idle_ttl: u64,
    /// Absolute lifetime in seconds, counted from creation; no renewal goes past it.
    pub max_lifetime: u64,
    /// A touch renews only once the last write or touch is this many seconds old (or a tenth
    /// of the idle timeout, if that is less): frequent touches then cost no write.
    pub touch_interval: u64,
    /// The largest session data in bytes, for bodies and for the result of a merge alike.
    pub max_bytes: usize,
    /// Every session created before this instant is gone (`SESSIONS_NOT_BEFORE`): the
    /// incident-response switch that ends everyone's sessions at once.
    pub not_before: Option<Millis>,
}

impl Policy {
    /// When a session created at `created_at` ends at the latest, however it is renewed.
    pub fn latest_end(&self, created_at: Millis) -> Millis {
        created_at.saturating_add(self.max_lifetime.saturating_mul(MS_PER_SECOND))
    }

    /// Whether a session created at `created_at` (`None`: stored by the old worker, at a time
    /// unknown, so before any cut-off) is ended by `SESSIONS_NOT_BEFORE`.
    pub fn cut_off(&self, created_at: Option<Millis>) -> bool {
        self.not_before
            .is_some_and(|not_before| created_at.is_none_or(|created| created < not_before))
    }

    /// Checks a per-session idle timeout asked for with `POST /create?ttl=N`.
    pub fn check_session_ttl(&self, ttl: u64) -> Option<u64> {
        (1..=self.max_lifetime).contains(&ttl).then_some(ttl)
    }
}

/// What the worker keeps beside the session data: in KV, the entry's metadata, so that the value
/// stays exactly the session data and one `getWithMetadata` reads both.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Meta {
    pub created_at: Millis,
    pub updated_at: Millis,
    pub expires_at: Millis,
    /// 1 at creation, +1 on every write; 0 for an entry the old worker wrote and nobody has
    /// written since. Sent as the `ETag`.
    pub version: u64,
    /// The session's own idle timeout in seconds, when it was created with one.
    pub ttl: Option<u64>,
    /// Who the session belongs to (hashed), fixed at creation: no write moves a session to
    /// another subject, and rotation keeps it.
    pub subject: Option<Subject>,
    /// The last authentication: at creation, then at each `POST /reauth`. Writes, touches,
    /// rotations and renewals keep it.
    pub auth: Auth,
    /// A device binding (`domain::binding`): kept by every write; set by `POST /bind`, its
    /// id's issue time moved by each refresh.
    pub binding: Option<Binding>,
}

impl Meta {
    /// A new session created at `now`.
    pub fn new(now: Millis, ttl: Option<u64>, policy: Policy) -> Self {
        Self::at_version(now, now, 1, ttl, policy)
    }

    /// A new session created at `now`, by a user authenticated at `level`.
    pub fn authenticated(now: Millis, ttl: Option<u64>, level: Level, policy: Policy) -> Self {
        Self {
            auth: Auth { at: now, level },
            ..Self::new(now, ttl, policy)
        }
    }

    /// An entry written by the old worker has no metadata: it counts as created now, so it is
    /// never rejected for lacking metadata and gets a full lifetime from its first write. When
    /// its user authenticated nobody knows: never recently enough for a demand of freshness.
    pub fn legacy(now: Millis, policy: Policy) -> Self {
        Self {
            auth: Auth::UNKNOWN,
            ..Self::at_version(now, now, 0, None, policy)
        }
    }

    /// The metadata after a write at `now`: version +1 and a renewed expiry.
    pub fn written(&self, now: Millis, policy: Policy) -> Self {
        Self {
            subject: self.subject,
            auth: self.auth,
            binding: self.binding,
            ..Self::at_version(self.created_at, now, self.version + 1, self.ttl, policy)
        }
    }

    /// The metadata after a touch at `now`: same version, renewed expiry.
    pub fn touched(&self, now: Millis, policy: Policy) -> Self {
        Self {
            subject: self.subject,
            auth: self.auth,
            binding: self.binding,
            ..Self::at_version(self.created_at, now, self.version, self.ttl, policy)
        }
    }

    /// When the session ends at the latest, however it is renewed: what its subject's index
    /// entry lives until.
    pub fn latest_end(&self, policy: Policy) -> Millis {
        policy.latest_end(self.created_at)
    }

    fn at_version(
        created_at: Millis,
        now: Millis,
        version: u64,
        ttl: Option<u64>,
        policy: Policy,
    ) -> Self {
        let idle_ms = ttl.unwrap_or(policy.idle_ttl).saturating_mul(MS_PER_SECOND);
        let lifetime_ms = policy.max_lifetime.saturating_mul(MS_PER_SECOND);
        let expires_at = now
            .saturating_add(idle_ms)
            .min(created_at.saturating_add(lifetime_ms));
        Self {
            created_at,
            updated_at: now,
            expires_at,
            version,
            ttl,
            subject: None,
            auth: Auth::at_creation(created_at),
            binding: None,
        }
    }

    /// Whether a touch at `now` renews: the last write or touch is at least
    /// `min(touch_interval, idle timeout / 10)` old. With a 30 min timeout that is once a
    /// minute; with a 2 s one, every 200 ms.
    pub fn renewal_due(&self, now: Millis, policy: Policy) -> bool {
        now.saturating_sub(self.updated_at) >= self.renewal_interval(policy)
    }

    /// `min(touch_interval, idle timeout / 10)`, in milliseconds.
    fn renewal_interval(&self, policy: Policy) -> Millis {
        let idle_ms = self
            .ttl
            .unwrap_or(policy.idle_ttl)
            .saturating_mul(MS_PER_SECOND);
        policy
            .touch_interval
            .saturating_mul(MS_PER_SECOND)
            .min(idle_ms / 10)
    }

    /// Whether this write (after `previous`) is the first in its renewal interval, counted
    /// from the epoch: what strong mode reports to the subject's index. So the index hears of a
    /// session at most once an interval however often it is written, and what it knows is never
    /// more than an interval old.
    pub fn opens_interval(&self, previous: &Meta, policy: Policy) -> bool {
        let interval = self.renewal_interval(policy).max(1);
        self.updated_at / interval != previous.updated_at / interval
    }

    /// A session is alive strictly before its `expires_at`.
    pub fn is_alive(&self, now: Millis) -> bool {
        now < self.expires_at
    }

    /// Whether this lifecycle is one the rules could have made by `now`: created, last written
    /// and last authenticated no later than now (give or take [`CLOCK_SKEW_MS`] between
    /// isolates), written no earlier than created, authenticated no later than written, and
    /// ending no later than its creation plus the absolute lifetime in force. A record sealed by
    /// someone who knows an id (sealing needs no secret: see docs/security.md), or
    /// a lifecycle kept beside an `s1` record, is held to it too, so none lives past
    /// `createdAt` + the lifetime, nor claims an activity or an authentication yet to come.
    pub fn within_rules(&self, now: Millis, policy: Policy) -> bool {
        let latest = now.saturating_add(CLOCK_SKEW_MS);
        self.created_at <= self.updated_at
            && self.auth.at <= self.updated_at
            && self.updated_at <= latest
            && self.expires_at <= self.latest_end(policy)
    }

    /// The `expirationTtl` (seconds) for KV, which removes the entry by itself. KV refuses less
    /// than 60 s, so short sessions linger in KV a little longer; `is_alive` hides them.
    pub fn kv_ttl(&self, now: Millis) -> u64 {
        self.expires_at
            .saturating_sub(now)
            .div_ceil(MS_PER_SECOND)
            .max(KV_MIN_TTL)
    }
}

impl Meta {
    /// As stored: `{"createdAt":..,"updatedAt":..,"expiresAt":..,"version":..}`, and `"ttl"`
    /// when the session has its own, `"sub"` (the subject's hash) when it has one, `"authAt"`
    /// and `"authLevel"` when its authentication is other than level 1 at creation, `"binding"`
    /// when it is bound to a device key (so every earlier session's metadata reads as it was
    /// written).
    pub fn to_json(self) -> String {
        let mut out = String::with_capacity(96);
        let _ = write!(
            out,
            r#"{{"createdAt":{},"updatedAt":{},"expiresAt":{},"version":{}"#,
            self.created_at, self.updated_at, self.expires_at, self.version
        );
        if let Some(ttl) = self.ttl {
            let _ = write!(out, r#","ttl":{ttl}"#);
        }
        if let Some(subject) = self.subject {
            let _ = write!(out, r#","sub":"{}""#, subject.hex());
        }
        if self.auth != Auth::at_creation(self.created_at) {
            let _ = write!(
                out,
                r#","authAt":{},"authLevel":{}"#,
                self.auth.at,
                self.auth.level.get()
            );
        }
        if let Some(binding) = self.binding {
            let _ = write!(out, r#","binding":"{}""#, binding.to_text());
        }
        out.push('}');
        out
    }

    /// Reads what [`Meta::to_json`] wrote; `None` for anything else, which then counts as no
    /// metadata at all (an entry of the old worker), never as an error.
    pub fn from_json(text: &str) -> Option<Self> {
        let (members, _) = json::members(text).ok()?;
        let number = |name| json::get(&members, name)?.parse::<u64>().ok();
        let created_at = number("createdAt")?;
        let auth = match json::get(&members, "authAt") {
            None => Auth::at_creation(created_at),
            Some(_) => Auth {
                at: number("authAt")?,
                level: Level::of(u8::try_from(number("authLevel")?).ok()?)?,
            },
        };
        Some(Self {
            created_at,
            updated_at: number("updatedAt")?,
            expires_at: number("expiresAt")?,
            version: number("version")?,
            ttl: match json::get(&members, "ttl") {
                None => None,
                Some(_) => Some(number("ttl")?),
            },
            subject: match json::get(&members, "sub") {
                None => None,
                Some(raw) => Some(Subject::from_hex(
                    raw.strip_prefix('"')?.strip_suffix('"')?,
                )?),
            },
            auth,
            binding: match json::get(&members, "binding") {
                None => None,
                Some(raw) => Some(Binding::from_text(
                    raw.strip_prefix('"')?.strip_suffix('"')?,
                )?),
            },
        })
    }
}

/// The shortest expiration KV accepts, in seconds.
pub const KV_MIN_TTL: u64 = 60;

/// The clock and policy the lifecycle tests share.
#[cfg(test)]
pub(crate) mod fixtures {
    use super::{Millis, Policy};

    pub const POLICY: Policy = Policy {
        idle_ttl: 1800,
        max_lifetime: 86_400,
        touch_interval: 60,
        max_bytes: 65_536,
        not_before: None,
    };
    /// An arbitrary "now".
    pub const T0: Millis = 1_764_000_000_000;
    /// One second.
    pub const S: Millis = 1000;
}

#[cfg(test)]
mod tests {
    use super::fixtures::{POLICY, S, T0};
    use super::*;

    #[test]
    fn a_lifecycle_the_rules_could_not_have_made_is_refused() {
        let meta = Meta::new(T0, Some(600), POLICY);
        assert!(meta.within_rules(T0, POLICY));
        let renewed = meta.written(T0 + 86_000 * S, POLICY);
        assert!(renewed.within_rules(T0 + 86_000 * S, POLICY));
        assert_eq!(
            renewed.expires_at,
            T0 + 86_400 * S,
            "capped by the lifetime"
        );
        let future = Meta::new(T0 + 61 * S, None, POLICY);
        assert!(future.within_rules(T0 + S, POLICY), "within the skew");
        assert!(!future.within_rules(T0, POLICY), "created later than now");
        let long = Meta {
            expires_at: T0 + 86_400 * S + 1,
            ..meta
        };
        assert!(!long.within_rules(T0, POLICY), "past created + lifetime");
        let shorter = Policy {
            max_lifetime: 3600,
            ..POLICY
        };
        assert!(
            !renewed.within_rules(T0 + 86_000 * S, shorter),
            "the lifetime in force"
        );
        let backwards = Meta {
            updated_at: T0 - 1,
            ..meta
        };
        assert!(!backwards.within_rules(T0, POLICY));
        // Written, or authenticated, later than now: what only a store writer could claim.
        let ahead = Meta {
            updated_at: T0 + 3600 * S,
            ..meta
        };
        assert!(!ahead.within_rules(T0, POLICY), "written in the future");
        assert!(ahead.within_rules(T0 + 3600 * S, POLICY));
        let stepped_up = Meta {
            auth: Auth {
                at: T0 + 3600 * S,
                level: Level::of(3).unwrap(),
            },
            ..ahead
        };
        assert!(
            !stepped_up.within_rules(T0, POLICY),
            "authenticated in the future"
        );
        assert!(!Meta {
            auth: stepped_up.auth,
            ..meta
        }
        .within_rules(T0 + 3600 * S, POLICY));
    }

    #[test]
    fn new_session_expires_after_the_idle_timeout() {
        let meta = Meta::new(T0, None, POLICY);
        assert_eq!(meta.version, 1);
        assert_eq!(meta.created_at, T0);
        assert_eq!(meta.expires_at, T0 + 1800 * S);
        assert!(meta.is_alive(T0 + 1800 * S - 1));
        assert!(
            !meta.is_alive(T0 + 1800 * S),
            "expired exactly at expiresAt"
        );
    }

    #[test]
    fn a_write_renews_and_counts_the_version() {
        let meta = Meta::new(T0, None, POLICY).written(T0 + 1000 * S, POLICY);
        assert_eq!(meta.version, 2);
        assert_eq!(meta.created_at, T0);
        assert_eq!(meta.updated_at, T0 + 1000 * S);
        assert_eq!(meta.expires_at, T0 + 2800 * S);
    }

    #[test]
    fn a_touch_renews_without_a_new_version() {
        let meta = Meta::new(T0, None, POLICY).touched(T0 + 10 * S, POLICY);
        assert_eq!(meta.version, 1);
        assert_eq!(meta.expires_at, T0 + 1810 * S);
    }

    #[test]
    fn the_index_hears_of_the_first_write_in_each_interval() {
        let created = Meta::new(60_000 * 1000, None, POLICY);
        let soon = created.written(created.updated_at + 59_999, POLICY);
        assert!(!soon.opens_interval(&created, POLICY), "same minute");
        let next = soon.written(created.updated_at + 60_000, POLICY);
        assert!(next.opens_interval(&soon, POLICY), "the next minute");
        let later = next.written(next.updated_at + 3_600_000, POLICY);
        assert!(later.opens_interval(&next, POLICY), "an hour on");
    }

    #[test]
    fn a_touch_renews_only_once_the_interval_has_passed() {
        let meta = Meta::new(T0, None, POLICY);
        assert!(
            !meta.renewal_due(T0 + 59_999, POLICY),
            "60 s with a 30 min timeout"
        );
        assert!(meta.renewal_due(T0 + 60 * S, POLICY));
        let short = Meta::new(T0, Some(2), POLICY);
        assert!(
            !short.renewal_due(T0 + 199, POLICY),
            "a tenth of a 2 s timeout"
        );
        assert!(short.renewal_due(T0 + 200, POLICY));
        let touched = meta.touched(T0 + 100 * S, POLICY);
        assert!(
            !touched.renewal_due(T0 + 130 * S, POLICY),
            "counted from the last touch"
        );
    }

    #[test]
    fn renewals_never_pass_the_absolute_lifetime() {
        let mut meta = Meta::new(T0, None, POLICY);
        let mut now = T0;
        while now < T0 + 86_400 * S {
            now += 1700 * S;
            meta = meta.written(now, POLICY);
        }
        assert_eq!(meta.expires_at, T0 + 86_400 * S);
        assert!(!meta.is_alive(T0 + 86_400 * S));
    }

    #[test]
    fn the_cap_applies_near_the_end_of_the_lifetime() {
        let meta = Meta::new(T0, None, POLICY).written(T0 + 86_000 * S, POLICY);
        assert_eq!(meta.expires_at, T0 + 86_400 * S, "400 s left, not 1800");
    }

    #[test]
    fn a_session_ttl_replaces_the_idle_timeout_on_every_renewal() {
        let meta = Meta::new(T0, Some(2), POLICY);
        assert_eq!(meta.expires_at, T0 + 2 * S);
        let renewed = meta.written(T0 + S, POLICY).touched(T0 + 2 * S, POLICY);
        assert_eq!(renewed.ttl, Some(2));
        assert_eq!(renewed.expires_at, T0 + 4 * S);
    }

    #[test]
    fn session_ttl_bounds() {
        assert_eq!(POLICY.check_session_ttl(0), None);
        assert_eq!(POLICY.check_session_ttl(1), Some(1));
        assert_eq!(POLICY.check_session_ttl(86_400), Some(86_400));
        assert_eq!(POLICY.check_session_ttl(86_401), None);
    }

    #[test]
    fn the_authentication_is_kept_by_every_write_and_stored_only_when_not_the_default() {
        let level2 = Level::of(2).unwrap();
        let meta = Meta::authenticated(T0, None, level2, POLICY);
        let later = meta.written(T0 + S, POLICY).touched(T0 + 90 * S, POLICY);
        assert_eq!(
            later.auth,
            Auth {
                at: T0,
                level: level2
            }
        );
        assert!(meta
            .to_json()
            .contains(&format!(r#""authAt":{T0},"authLevel":2"#)));
        assert_eq!(Meta::from_json(&later.to_json()), Some(later));
        let plain = Meta::new(T0, None, POLICY);
        assert!(
            !plain.to_json().contains("auth"),
            "as every earlier version wrote it"
        );
        assert_eq!(
            Meta::from_json(&plain.to_json()).unwrap().auth,
            Auth::at_creation(T0)
        );
        let legacy = Meta::legacy(T0, POLICY).written(T0 + S, POLICY);
        assert_eq!(
            Meta::from_json(&legacy.to_json()).unwrap().auth,
            Auth::UNKNOWN
        );
        let bad_level = meta
            .to_json()
            .replace(r#""authLevel":2"#, r#""authLevel":4"#);
        assert_eq!(Meta::from_json(&bad_level), None);
        let ahead = Meta {
            auth: Auth {
                at: T0 + 2 * S,
                level: level2,
            },
            ..meta.written(T0 + S, POLICY)
        };
        assert!(
            !ahead.within_rules(T0 + 2 * S, POLICY),
            "authenticated after its last write"
        );
    }

    #[test]
    fn legacy_entries_count_as_created_now_at_version_zero() {
        let meta = Meta::legacy(T0, POLICY);
        assert_eq!(meta.version, 0);
        assert!(meta.is_alive(T0));
        let first_write = meta.written(T0 + S, POLICY);
        assert_eq!(first_write.version, 1);
        assert_eq!(first_write.created_at, T0);
    }

    #[test]
    fn a_write_keeps_the_creation_time_and_the_session_ttl() {
        let meta = Meta::new(T0, Some(60), POLICY).written(T0 + 30 * S, POLICY);
        assert_eq!(meta.created_at, T0);
        assert_eq!(meta.ttl, Some(60));
        assert_eq!(meta.expires_at, T0 + 90 * S);
    }

    #[test]
    fn kv_ttl_is_rounded_up_and_at_least_the_kv_minimum() {
        let short = Meta::new(T0, Some(2), POLICY);
        assert_eq!(short.kv_ttl(T0), 60);
        let long = Meta::new(T0, None, POLICY);
        assert_eq!(long.kv_ttl(T0 + 1), 1800, "1799.999 s rounds up");
        assert_eq!(long.kv_ttl(T0 + 1800 * S + 5), 60, "already expired");
    }

    #[test]
    fn metadata_round_trips_in_camel_case_without_an_absent_ttl() {
        let meta = Meta::new(T0, None, POLICY);
        let json = meta.to_json();
        assert_eq!(
            json,
            format!(
                r#"{{"createdAt":{T0},"updatedAt":{T0},"expiresAt":{},"version":1}}"#,
                T0 + 1800 * S
            )
        );
        assert_eq!(Meta::from_json(&json), Some(meta));
        let with_ttl = Meta::new(T0, Some(60), POLICY);
        assert_eq!(Meta::from_json(&with_ttl.to_json()), Some(with_ttl));
        let subject = Subject::new(b"ada", None).ok();
        let with_subject = Meta {
            subject,
            ..with_ttl
        };
        assert!(with_subject
            .to_json()
            .ends_with(&format!(r#""sub":"{}"}}"#, subject.unwrap().hex())));
        assert_eq!(Meta::from_json(&with_subject.to_json()), Some(with_subject));
        let written = with_subject
            .written(T0 + S, POLICY)
            .touched(T0 + 2 * S, POLICY);
        assert_eq!(
            written.subject, subject,
            "writes and touches keep the subject"
        );
    }

    #[test]
    fn unreadable_metadata_is_none() {
        for bad in [
            "",
            "{}",
            "[1]",
            r#"{"createdAt":1,"updatedAt":1,"expiresAt":1}"#,
            r#"{"createdAt":1,"updatedAt":1,"expiresAt":1,"version":-1}"#,
            r#"{"createdAt":1.5,"updatedAt":1,"expiresAt":1,"version":1}"#,
            r#"{"createdAt":1,"updatedAt":1,"expiresAt":1,"version":1,"ttl":"x"}"#,
            r#"{"createdAt":1,"updatedAt":1,"expiresAt":1,"version":1,"sub":"abc"}"#,
        ] {
            assert_eq!(Meta::from_json(bad), None, "{bad}");
        }
    }
}
