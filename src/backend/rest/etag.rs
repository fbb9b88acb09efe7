//! ETags for conditional writes (`If-Match`). A single-object answer carries
//! its ETag in a header; a list answer does not, but a server that derives
//! ETags from `last_updated` (Netbox 4.6: `W/"<isoformat>"` of the stored
//! UTC time) lets the ETag of each listed object be computed without a call.

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::time::isoformat_utc;

/// Longest ETag header kept; a longer one is not one of ours.
const MAX_LEN: usize = 128;

/// The ETag header of an answer, if it has a usable one.
pub(crate) fn of_headers(headers: &ureq::http::HeaderMap) -> Option<String> {
    headers
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .filter(|e| e.len() < MAX_LEN)
        .map(str::to_owned)
}

/// The weak ETag derived from an object's `last_updated`. Answers show
/// `last_updated` in the server's time zone (`Z` for UTC, else an offset
/// such as `+01:00`) while the ETag is made from the UTC time: the instant
/// is taken back to UTC first.
pub(crate) fn from_last_updated(last_updated: &str) -> Option<String> {
    let t = OffsetDateTime::parse(last_updated.trim(), &Rfc3339).ok()?;
    Some(format!("W/\"{}\"", isoformat_utc(t)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_from_the_utc_instant() {
        let utc = Some("W/\"2025-01-06T12:00:00.123456+00:00\"".to_owned());
        for shown in [
            "2025-01-06T12:00:00.123456Z",
            "2025-01-06T12:00:00.123456+00:00",
            // TIME_ZONE = "Europe/Berlin" in winter, and "America/New_York".
            "2025-01-06T13:00:00.123456+01:00",
            "2025-01-06T07:00:00.123456-05:00",
        ] {
            assert_eq!(from_last_updated(shown), utc, "{shown}");
        }
        // No microseconds: none in the ETag either, as isoformat() does.
        assert_eq!(
            from_last_updated("2025-01-06T14:00:00+02:00").as_deref(),
            Some("W/\"2025-01-06T12:00:00+00:00\"")
        );
        for bad in ["", "Z", "2025-01-06", "2025-01-06T12:00:00", "soon"] {
            assert_eq!(from_last_updated(bad), None, "{bad}");
        }
    }
}
