//! The syntax of single values: booleans, names, addresses, URLs.

use std::net::Ipv4Addr;

/// Linux interface names are at most 15 bytes (IFNAMSIZ - 1).
const MAX_IFNAME: usize = 15;

/// A value quoted for an error message: escaped, so the message stays one
/// line, and shortened.
pub(super) fn show(v: &str) -> String {
    const MAX: usize = 64;
    if v.chars().count() > MAX {
        let head: String = v.chars().take(MAX).collect();
        format!("{head:?}...")
    } else {
        format!("{v:?}")
    }
}

/// Strips one pair of surrounding quotes, as ConfigObj (the original's parser) did.
pub(super) fn unquote(v: &str) -> &str {
    let v = v.trim();
    for q in ['"', '\''] {
        if let Some(inner) = v.strip_prefix(q).and_then(|r| r.strip_suffix(q)) {
            // `"a", "b"` is a list of two quoted items, not one quoted value.
            if !inner.contains(q) {
                return inner.trim();
            }
        }
    }
    v
}

pub(super) fn parse_bool(v: &str) -> Option<bool> {
    const TRUE: &[&str] = &["yes", "true", "on", "1"];
    const FALSE: &[&str] = &["no", "false", "off", "0"];
    if TRUE.iter().any(|t| t.eq_ignore_ascii_case(v)) {
        Some(true)
    } else if FALSE.iter().any(|f| f.eq_ignore_ascii_case(v)) {
        Some(false)
    } else {
        None
    }
}

/// A DNS name: dot-separated labels of letters, digits, `-` and `_`. The
/// trailing dot of a fully qualified name is dropped.
pub(super) fn domain_name(v: &str) -> Option<String> {
    let name = v.strip_suffix('.').unwrap_or(v);
    let label_ok = |l: &str| {
        (1..=63).contains(&l.len())
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    (!name.is_empty() && name.len() <= 253 && name.split('.').all(label_ok))
        .then(|| name.to_owned())
}

/// The kernel's rules for an interface name (`dev_valid_name`).
pub(super) fn is_ifname(v: &str) -> bool {
    (1..=MAX_IFNAME).contains(&v.len())
        && v != "."
        && v != ".."
        && !v
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control())
}

pub(super) fn is_unicast_v4(a: Ipv4Addr) -> bool {
    !a.is_unspecified() && !a.is_broadcast() && !a.is_multicast()
}

/// Returns the URL without trailing slashes; the error is the problem text.
pub(super) fn check_url(v: &str) -> Result<String, String> {
    let lower = v.to_ascii_lowercase();
    let rest = lower
        .strip_prefix("https://")
        .or_else(|| lower.strip_prefix("http://"));
    match rest {
        None => Err(format!(
            "{} is not a URL starting with http:// or https://",
            show(v)
        )),
        Some(r) if r.is_empty() || r.starts_with('/') => {
            Err(format!("{} has no host name after the scheme", show(v)))
        }
        Some(_) if v.chars().any(|c| c.is_whitespace() || c.is_control()) => {
            Err(format!("{} contains spaces", show(v)))
        }
        Some(_) => Ok(v.trim_end_matches('/').to_owned()),
    }
}
