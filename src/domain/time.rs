//! RFC 3339 timestamps, without a date crate: formatted for the `Session-Expires` header and
//! JSON bodies, and read for a revocation's `before`. Two conversions between days and civil
//! dates are all the worker needs.

use std::fmt::Write;

/// Milliseconds since the Unix epoch.
pub type Millis = u64;

/// Formats as `YYYY-MM-DDTHH:MM:SS.mmmZ` (UTC, millisecond precision).
pub fn rfc3339(ms: Millis) -> String {
    let secs = ms / 1000;
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    let mut out = String::with_capacity(24);
    let _ = write!(
        out,
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ms % 1000
    );
    out
}

/// An RFC 3339 date-time (`2026-12-01T09:30:00Z`, `...09:30:00.250+01:00`; `t`, `z` and a
/// space for `T` as the RFC allows) as milliseconds since the epoch; `None` for anything else,
/// or a time before 1970. Fractions beyond milliseconds are truncated; a leap second counts as
/// the second after it.
pub fn parse_rfc3339(text: &str) -> Option<Millis> {
    let bytes = text.as_bytes();
    let digits = |from: usize, len: usize| -> Option<u64> {
        let part = bytes.get(from..from + len)?;
        part.iter().all(u8::is_ascii_digit).then(|| {
            part.iter()
                .fold(0, |n, digit| n * 10 + u64::from(digit - b'0'))
        })
    };
    let separators = [(4, b'-'), (7, b'-'), (13, b':'), (16, b':')];
    if separators.iter().any(|&(at, c)| bytes.get(at) != Some(&c))
        || !matches!(bytes.get(10), Some(b'T' | b't' | b' '))
    {
        return None;
    }
    let (year, month, day) = (digits(0, 4)?, digits(5, 2)?, digits(8, 2)?);
    let (hour, minute, second) = (digits(11, 2)?, digits(14, 2)?, digits(17, 2)?);
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let month_days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if year < 1970
        || !(1..=12).contains(&month)
        || day == 0
        || day > month_days[month as usize - 1]
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut at = 19;
    let mut millis = 0;
    if bytes.get(at) == Some(&b'.') {
        let fraction = bytes.get(at + 1..)?;
        let len = fraction.iter().take_while(|b| b.is_ascii_digit()).count();
        if len == 0 {
            return None;
        }
        millis = (0..3).fold(0, |n, i| {
            n * 10
                + fraction
                    .get(i)
                    .filter(|_| i < len)
                    .map_or(0, |d| u64::from(d - b'0'))
        });
        at += 1 + len;
    }
    let offset_minutes: i64 = match bytes.get(at..)? {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            let (h, m) = (digits(at + 1, 2)?, digits(at + 4, 2)?);
            if h > 23 || m > 59 {
                return None;
            }
            let minutes = (h * 60 + m) as i64;
            if *sign == b'+' {
                minutes
            } else {
                -minutes
            }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let local = ((days * 24 + hour) * 60 + minute) * 60 + second;
    let utc = i64::try_from(local).ok()? - offset_minutes * 60;
    u64::try_from(utc)
        .ok()?
        .checked_mul(1000)?
        .checked_add(millis)
}

/// (year, month, day) from 1970 on to days since 1970-01-01: the inverse of `civil_from_days`,
/// after the same Howard Hinnant algorithms.
fn days_from_civil(year: u64, month: u64, day: u64) -> u64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year / 400;
    let yoe = year - era * 400;
    let mp = if month > 2 { month - 3 } else { month + 9 };
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar, after
/// Howard Hinnant's `civil_from_days`, restricted to dates from 1970 on.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(rfc3339(1_764_100_824_123), "2025-11-25T20:00:24.123Z");
        assert_eq!(rfc3339(4_107_542_399_999), "2100-02-28T23:59:59.999Z");
        assert_eq!(rfc3339(4_107_542_400_000), "2100-03-01T00:00:00.000Z");
    }

    #[test]
    fn parses_what_rfc3339_allows_and_nothing_else() {
        for ms in [0, 951_782_400_000, 1_764_100_824_123, 4_107_542_400_000] {
            assert_eq!(parse_rfc3339(&rfc3339(ms)), Some(ms));
        }
        let t = 1_764_100_824_000;
        for same in [
            "2025-11-25T20:00:24Z",
            "2025-11-25t20:00:24z",
            "2025-11-25 20:00:24Z",
            "2025-11-25T21:00:24+01:00",
            "2025-11-25T15:30:24-04:30",
            "2025-11-25T20:00:24.000000Z",
        ] {
            assert_eq!(parse_rfc3339(same), Some(t), "{same}");
        }
        assert_eq!(parse_rfc3339("2025-11-25T20:00:24.1239Z"), Some(t + 123));
        assert_eq!(parse_rfc3339("2025-11-25T20:00:24.5Z"), Some(t + 500));
        for bad in [
            "",
            "2025-11-25",
            "2025-11-25T20:00:24",
            "2025-11-25T20:00Z",
            "2025-13-01T00:00:00Z",
            "2025-02-29T00:00:00Z",
            "2025-11-31T00:00:00Z",
            "2025-11-25T24:00:00Z",
            "2025-11-25T20:00:24.Z",
            "2025-11-25T20:00:24+0100",
            "2025-11-25T20:00:24+24:00",
            "1969-12-31T23:59:59Z",
            "1970-01-01T00:30:00+01:00",
            "2025-11-25T20:00:24Z ",
            "+2025-11-25T20:00:24Z",
            "1764100824",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
        assert_eq!(
            parse_rfc3339("2024-02-29T00:00:00Z"),
            Some(1_709_164_800_000)
        );
    }

    #[test]
    fn every_day_boundary_for_a_few_centuries_is_a_valid_date() {
        let mut previous = String::new();
        for day in 0..(400 * 366) {
            let text = rfc3339(day * 86_400_000);
            assert!(text > previous, "{text} after {previous}");
            let (month, dom): (u32, u32) =
                (text[5..7].parse().unwrap(), text[8..10].parse().unwrap());
            assert!(
                (1..=12).contains(&month) && (1..=31).contains(&dom),
                "{text}"
            );
            previous = text;
        }
    }
}
