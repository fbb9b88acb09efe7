//! Date-times as the APIs carry them: RFC 3339 in answers (`last_updated`,
//! with the server's zone), and the lease times of the custom fields, which
//! anyone may have written in a looser ISO 8601 form.

use std::time::SystemTime;

use time::format_description::BorrowedFormatItem;
use time::macros::format_description;
use time::parsing::Parsed;
use time::{OffsetDateTime, PrimitiveDateTime, UtcOffset};

/// What this daemon writes for Nautobot.
const UTC_Z: &[BorrowedFormatItem<'_>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
/// What this daemon writes for Netbox, and Python's `isoformat()` of a UTC
/// time without microseconds.
const UTC_OFFSET: &[BorrowedFormatItem<'_>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]+00:00");
/// Python's `isoformat()` of a UTC time with microseconds.
const UTC_OFFSET_MICROS: &[BorrowedFormatItem<'_>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]+00:00");
/// ISO 8601 date and time: `T`, `t` or a space between them, any fraction,
/// then `Z`, `±HH:MM`, `±HHMM` or nothing (UTC).
const LOOSE: &[BorrowedFormatItem<'_>] = format_description!(
    version = 2,
    "[year]-[month]-[day][first [T][t][ ]][hour]:[minute]:[second][optional [.[subsecond]]][optional [[first [Z][z][[offset_hour sign:mandatory][optional [:]][offset_minute]]]]]"
);

/// A date-time in any of the forms of [`LOOSE`]; surrounding white space is
/// ignored.
pub(crate) fn parse(s: &str) -> Option<OffsetDateTime> {
    let mut parsed = Parsed::new();
    let rest = parsed.parse_items(s.trim().as_bytes(), LOOSE).ok()?;
    if !rest.is_empty() {
        return None;
    }
    let local = PrimitiveDateTime::try_from(parsed).ok()?;
    let offset = match parsed.offset_hour() {
        Some(_) => UtcOffset::try_from(parsed).ok()?,
        None => UtcOffset::UTC,
    };
    Some(local.assume_offset(offset))
}

/// A lease time (`pydhcp_expire`) as the instant it names, in whole
/// seconds like the lease times the daemon hands out.
pub(crate) fn parse_expire(s: &str) -> Option<SystemTime> {
    parse(s)?.replace_nanosecond(0).ok().map(SystemTime::from)
}

fn format(t: OffsetDateTime, items: &[BorrowedFormatItem<'_>]) -> String {
    // Every component is there; formatting into a String cannot fail.
    t.to_offset(UtcOffset::UTC)
        .format(items)
        .unwrap_or_default()
}

/// `2030-01-01T00:00:00Z`: whole seconds, UTC.
pub(crate) fn utc_z(t: SystemTime) -> String {
    format(t.into(), UTC_Z)
}

/// `2030-01-01T00:00:00+00:00`: whole seconds, UTC; what both a Text and a
/// Date & time custom field of Netbox accept on every Python version.
pub(crate) fn utc_offset(t: SystemTime) -> String {
    format(t.into(), UTC_OFFSET)
}

/// Python's `datetime.isoformat()` of the instant in UTC: microseconds only
/// when there are any, `+00:00` for the zone.
pub(crate) fn isoformat_utc(t: OffsetDateTime) -> String {
    if t.microsecond() == 0 {
        format(t, UTC_OFFSET)
    } else {
        format(t, UTC_OFFSET_MICROS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn lease_times_in_any_form() {
        let t = at(1_893_456_000);
        for s in [
            "2030-01-01T00:00:00Z",
            "2030-01-01T00:00:00.000000Z",
            "2030-01-01T00:00:00+00:00",
            "2030-01-01 00:00:00",
            "2030-01-01T02:00:00+02:00",
            "2030-01-01T05:30:00+05:30",
            "2029-12-31T19:00:00-0500",
            "2029-12-31T23:30:00-00:30",
            " 2030-01-01t00:00:00.5z ",
        ] {
            let got = parse_expire(s).map(|g| g.duration_since(UNIX_EPOCH).unwrap().as_secs());
            assert_eq!(got, Some(1_893_456_000), "{s}");
        }
        assert_eq!(parse_expire("2030-01-01T00:00:00.75Z"), Some(t));
        assert_eq!(
            parse_expire("2029-12-31T23:59:59.999999Z"),
            Some(t - Duration::from_secs(1))
        );
        for s in [
            "",
            "2030-01-01",
            "2030-13-01T00:00:00Z",
            "2030-01-01T25:00:00Z",
            "2030-01-01T00:00:00X",
            "2030-01-01T00:00:00.Z",
            "2030/01/01T00:00:00Z",
            "20300101T000000Z",
            "2030-01-01T00:00:00+2",
            "2030-01-01T00:00:00Zjunk",
            "ünicode-01-01T00:00:00Z",
        ] {
            assert_eq!(parse_expire(s), None, "{s}");
        }
    }

    #[test]
    fn written_times() {
        let t = at(1_893_456_000);
        assert_eq!(utc_z(t), "2030-01-01T00:00:00Z");
        assert_eq!(utc_offset(t), "2030-01-01T00:00:00+00:00");
        // Whole seconds: the fraction of the job's clock is not written.
        assert_eq!(
            utc_z(t + Duration::from_millis(999)),
            "2030-01-01T00:00:00Z"
        );
        for secs in [0, 951_782_400, 1_700_000_000, 4_102_444_799] {
            assert_eq!(parse_expire(&utc_z(at(secs))), Some(at(secs)));
            assert_eq!(parse_expire(&utc_offset(at(secs))), Some(at(secs)));
        }
    }

    #[test]
    fn python_isoformat() {
        let t = parse("2025-01-06T13:00:00.123456+01:00").unwrap();
        assert_eq!(isoformat_utc(t), "2025-01-06T12:00:00.123456+00:00");
        let t = parse("2025-01-06T12:00:00.000001Z").unwrap();
        assert_eq!(isoformat_utc(t), "2025-01-06T12:00:00.000001+00:00");
        let t = parse("2025-01-05T19:00:00-05:00").unwrap();
        assert_eq!(isoformat_utc(t), "2025-01-06T00:00:00+00:00");
    }
}
