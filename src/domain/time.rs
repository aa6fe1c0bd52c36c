//! RFC 3339 timestamps for the `Session-Expires` header and JSON bodies, without a date crate:
//! one conversion, days to a civil date, is all the worker needs.

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
