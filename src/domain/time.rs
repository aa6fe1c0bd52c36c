//! RFC 3339 timestamps, through the `time` crate: formatted for the `Session-Expires` header and
//! JSON bodies, and read for a revocation's `before`.

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Milliseconds since the Unix epoch.
pub type Millis = u64;

pub const MS_PER_SECOND: u64 = 1000;

/// How far ahead of this isolate's clock another's may have been when it wrote a session or
/// minted a challenge.
pub const CLOCK_SKEW_MS: Millis = 60_000;

/// Formats as `YYYY-MM-DDTHH:MM:SS.mmmZ` (UTC, millisecond precision): the `time` crate's
/// calendar, written digit by digit (a response's two timestamps through `write!`, padding and
/// all, cost more in Wasm than the rest of its headers; profiled by `bench/profile.mjs`).
pub fn rfc3339(ms: Millis) -> String {
    let at = OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    // Years 1970 to 9999: the `time` crate's range, and no earlier than the epoch.
    let year = u32::try_from(at.year()).unwrap_or(0);
    let mut out = String::with_capacity(24);
    let parts = [
        (year, 4, '-'),
        (u32::from(u8::from(at.month())), 2, '-'),
        (u32::from(at.day()), 2, 'T'),
        (u32::from(at.hour()), 2, ':'),
        (u32::from(at.minute()), 2, ':'),
        (u32::from(at.second()), 2, '.'),
        (u32::from(at.millisecond()), 3, 'Z'),
    ];
    for (value, width, then) in parts {
        for place in (0..width).rev() {
            out.push(char::from_digit(value / 10u32.pow(place) % 10, 10).unwrap_or('0'));
        }
        out.push(then);
    }
    out
}

/// An RFC 3339 date-time (`2026-12-01T09:30:00Z`, `...09:30:00.250+01:00`) as milliseconds since
/// the epoch; `None` for anything else, or a time before 1970. Fractions beyond milliseconds are
/// truncated.
pub fn parse_rfc3339(text: &str) -> Option<Millis> {
    u64::try_from(parse_signed(text)?).ok()
}

/// [`parse_rfc3339`], with a time before 1970 (RFC 3339 has years from 0000) read as the epoch:
/// for a bound such as a revocation's `before`, where "before 0245" is valid and means nothing
/// is older.
pub fn parse_rfc3339_from_epoch(text: &str) -> Option<Millis> {
    Some(u64::try_from(parse_signed(text)?).unwrap_or(0))
}

fn parse_signed(text: &str) -> Option<i128> {
    let at = OffsetDateTime::parse(text, &Rfc3339).ok()?;
    Some(at.unix_timestamp_nanos() / 1_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_as_padded_formatting_would_from_1970_to_9999() {
        let reference = |ms: Millis| {
            let at = OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
                .unwrap_or(OffsetDateTime::UNIX_EPOCH);
            format!(
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
                at.year(),
                u8::from(at.month()),
                at.day(),
                at.hour(),
                at.minute(),
                at.second(),
                at.millisecond()
            )
        };
        // Every step lands on another day, hour, minute, second and millisecond.
        let last = 253_402_300_799_999; // 9999-12-31T23:59:59.999Z
        let mut ms = 0;
        while ms <= last {
            assert_eq!(rfc3339(ms), reference(ms), "{ms}");
            ms += 86_400_000 * 13 + 3_600_000 * 5 + 60_000 * 7 + 1_000 * 11 + 17;
        }
        assert_eq!(rfc3339(last), "9999-12-31T23:59:59.999Z");
        // Past the calendar's range: the epoch, as before.
        assert_eq!(rfc3339(last + 1), reference(last + 1));
    }

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
        for early in ["1969-12-31T23:59:59Z", "0245-04-10T14:09:25.6-17:10"] {
            assert_eq!(parse_rfc3339_from_epoch(early), Some(0), "{early}");
        }
        assert_eq!(
            parse_rfc3339_from_epoch("2024-02-29T00:00:00Z"),
            Some(1_709_164_800_000)
        );
        assert_eq!(parse_rfc3339_from_epoch("0245-04-10"), None);
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
