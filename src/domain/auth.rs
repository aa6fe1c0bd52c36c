//! When and how strongly a session's user last proved who they are (ASVS 5.0 7.5.1, 7.5.3),
//! and a request's demand that this be recent or strong enough.
//!
//! The caller authenticates the user; this service only records what the caller says at
//! `POST /create` and `POST /reauth/:id` (`Session-Auth-Level`), sealed with the rest of the
//! lifecycle, so no store writer can make a session look fresher or stronger than it is. A
//! request may then ask `Session-Max-Auth-Age` and `Session-Min-Auth-Level`: when the session
//! falls short the answer is `403 reauthentication_required`, and nothing is changed or renewed.
//!
//! Pure: the time is a parameter.

use crate::domain::error::Error;
use crate::domain::time::{Millis, MS_PER_SECOND};

/// How the user proved who they are: 1 one factor, 2 two factors, 3 a hardware-bound
/// authenticator (NIST SP 800-63B's AAL1–3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Level(u8);

impl Level {
    pub const ONE: Level = Level(1);

    /// `1`, `2` or `3`, and nothing else (no sign, no spaces, no leading zero).
    pub fn parse(text: &str) -> Option<Level> {
        match text {
            "1" | "2" | "3" => Self::of(text.as_bytes()[0] - b'0'),
            _ => None,
        }
    }

    pub fn of(n: u8) -> Option<Level> {
        (1..=3).contains(&n).then_some(Level(n))
    }

    pub fn get(self) -> u8 {
        self.0
    }
}

/// A session's last authentication.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Auth {
    /// 0 for a session of the old worker: authenticated at a time nobody knows, which no
    /// `Session-Max-Auth-Age` accepts.
    pub at: Millis,
    pub level: Level,
}

impl Auth {
    /// What a session stored before this version reads as: level 1, authenticated at its
    /// creation.
    pub fn at_creation(created_at: Millis) -> Self {
        Self {
            at: created_at,
            level: Level::ONE,
        }
    }

    /// A session of the old worker's, stored without any lifecycle.
    pub const UNKNOWN: Auth = Auth {
        at: 0,
        level: Level::ONE,
    };

    /// Whole seconds since the authentication, at `now`.
    pub fn age(&self, now: Millis) -> u64 {
        now.saturating_sub(self.at) / MS_PER_SECOND
    }
}

/// What a request demands of its session's authentication.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Demand {
    /// `Session-Max-Auth-Age`, in seconds.
    pub max_age: Option<u64>,
    /// `Session-Min-Auth-Level`.
    pub min_level: Option<Level>,
}

/// The longest age a request may ask for: a year, in seconds (more is no demand at all).
const MAX_AGE_LIMIT: u64 = 366 * 86_400;

impl Demand {
    /// The two headers' values as sent; `400 invalid_auth_demand` naming the header when one is
    /// not what it must be, never ignored (a demand silently dropped would pass everyone).
    pub fn parse(max_age: Option<&str>, min_level: Option<&str>) -> Result<Self, Error> {
        let max_age = match max_age.map(str::trim) {
            None => None,
            Some(text) => Some(
                text.parse::<u64>()
                    .ok()
                    .filter(|age| text.bytes().all(|b| b.is_ascii_digit()) && *age <= MAX_AGE_LIMIT)
                    .ok_or(Error::InvalidAuthDemand(
                        "Session-Max-Auth-Age must be a whole number of seconds from 0 to 31622400.",
                    ))?,
            ),
        };
        let min_level = match min_level.map(str::trim) {
            None => None,
            Some(text) => Some(Level::parse(text).ok_or(Error::InvalidAuthDemand(
                "Session-Min-Auth-Level must be 1, 2 or 3.",
            ))?),
        };
        Ok(Self { max_age, min_level })
    }

    /// `Ok` when `auth` meets the demand at `now`; else `403 reauthentication_required`, with
    /// what was found.
    pub fn check(&self, auth: &Auth, now: Millis) -> Result<(), Error> {
        let too_old = self
            .max_age
            .is_some_and(|max| now.saturating_sub(auth.at) > max.saturating_mul(MS_PER_SECOND));
        let too_weak = self.min_level.is_some_and(|min| auth.level < min);
        match too_old || too_weak {
            true => Err(Error::ReauthenticationRequired {
                authenticated_at: auth.at,
                age: auth.age(now),
                level: auth.level.get(),
            }),
            false => Ok(()),
        }
    }
}

/// The level a `/create` or `/reauth` asks to record (`Session-Auth-Level`): 1 when absent,
/// `400 invalid_auth_demand` when not 1, 2 or 3.
pub fn requested_level(header: Option<&str>) -> Result<Level, Error> {
    match header.map(str::trim) {
        None => Ok(Level::ONE),
        Some(text) => Level::parse(text).ok_or(Error::InvalidAuthDemand(
            "Session-Auth-Level must be 1, 2 or 3.",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An arbitrary "now", and a second.
    const T0: Millis = 1_764_000_000_000;
    const S: Millis = 1000;

    #[test]
    fn levels_are_one_two_or_three_as_written() {
        assert_eq!(Level::parse("2").map(Level::get), Some(2));
        for bad in ["0", "4", "02", "+2", "", "2.0", "two"] {
            assert_eq!(Level::parse(bad), None, "{bad:?}");
        }
        assert_eq!(requested_level(None).unwrap(), Level::ONE);
        assert_eq!(requested_level(Some(" 3 ")).unwrap().get(), 3);
        assert_eq!(
            requested_level(Some("4")).unwrap_err().code(),
            "invalid_auth_demand"
        );
    }

    #[test]
    fn a_demand_is_met_up_to_its_age_and_from_its_level() {
        let auth = Auth {
            at: T0,
            level: Level(2),
        };
        let fresh = Demand::parse(Some("300"), Some("2")).unwrap();
        assert!(fresh.check(&auth, T0 + 300 * S).is_ok(), "exactly the age");
        match fresh.check(&auth, T0 + 300 * S + 1) {
            Err(Error::ReauthenticationRequired {
                authenticated_at,
                age,
                level,
            }) => assert_eq!((authenticated_at, age, level), (T0, 300, 2)),
            other => panic!("{other:?}"),
        }
        let stronger = Demand::parse(None, Some("3")).unwrap();
        assert!(stronger.check(&auth, T0).is_err());
        assert!(
            Demand::default().check(&auth, u64::MAX).is_ok(),
            "no demand"
        );
    }

    #[test]
    fn an_unknown_authentication_time_is_never_fresh() {
        let any_age = Demand::parse(Some("31622400"), None).unwrap();
        assert!(any_age.check(&Auth::UNKNOWN, T0).is_err());
        assert!(any_age.check(&Auth::at_creation(T0), T0 + S).is_ok());
    }

    #[test]
    fn a_demand_that_cannot_be_read_is_refused_not_ignored() {
        for (age, level) in [
            (Some("-1"), None),
            (Some("5m"), None),
            (Some("31622401"), None),
            (Some(""), None),
            (None, Some("4")),
            (None, Some("")),
        ] {
            let refused = Demand::parse(age, level).unwrap_err();
            assert_eq!(
                (refused.status(), refused.code()),
                (400, "invalid_auth_demand")
            );
        }
        assert_eq!(
            Demand::parse(Some(" 60 "), Some("1")).unwrap(),
            Demand {
                max_age: Some(60),
                min_level: Some(Level::ONE)
            }
        );
    }
}
