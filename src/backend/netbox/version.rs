//! The Netbox REST API version, which decides what requests may ask for.

use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};

/// A Netbox REST API version, from `API-Version` or `netbox-version`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ApiVersion {
    pub major: u16,
    pub minor: u16,
}

impl ApiVersion {
    /// `"4.2"`, `"v3.7.8"`, `"4.2.3-Docker-3.0.2"`.
    pub fn parse(s: &str) -> Option<ApiVersion> {
        let s = s.trim().trim_start_matches(['v', 'V']);
        let mut it = s.split(['.', '-']);
        let major = it.next()?.parse().ok()?;
        let minor = it.next()?.parse().ok()?;
        Some(ApiVersion { major, minor })
    }

    fn packed(self) -> u32 {
        (u32::from(self.major) << 16) | u32::from(self.minor)
    }

    fn unpack(v: u32) -> Option<ApiVersion> {
        (v != 0).then_some(ApiVersion {
            major: (v >> 16) as u16,
            minor: (v & 0xffff) as u16,
        })
    }

    /// `?fields=` (4.0).
    pub(crate) fn field_selection(self) -> bool {
        self >= ApiVersion { major: 4, minor: 0 }
    }

    /// ETags and `If-Match` on PATCH (4.6).
    pub(crate) fn conditional_writes(self) -> bool {
        self >= ApiVersion { major: 4, minor: 6 }
    }
}

impl fmt::Display for ApiVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// The version the server has shown, shared by the workers.
#[derive(Debug, Default)]
pub(crate) struct SeenVersion(AtomicU32);

impl SeenVersion {
    pub(crate) fn get(&self) -> Option<ApiVersion> {
        ApiVersion::unpack(self.0.load(Ordering::Relaxed))
    }

    /// Records `v`; true when it is news.
    pub(crate) fn note(&self, v: ApiVersion) -> bool {
        self.0.swap(v.packed(), Ordering::Relaxed) != v.packed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        let v = |s: &str| ApiVersion::parse(s);
        assert_eq!(v("4.2"), Some(ApiVersion { major: 4, minor: 2 }));
        assert_eq!(v("v3.7.8"), Some(ApiVersion { major: 3, minor: 7 }));
        assert_eq!(
            v("4.2.3-Docker-3.0.2"),
            Some(ApiVersion { major: 4, minor: 2 })
        );
        for bad in ["", "4", "x.y", "four.two"] {
            assert_eq!(v(bad), None, "{bad}");
        }
        let v41 = v("4.1").unwrap();
        assert!(v41.field_selection() && !v41.conditional_writes());
        assert!(!v("3.7").unwrap().field_selection());
        assert!(v("4.6").unwrap().conditional_writes());
        let seen = SeenVersion::default();
        assert_eq!(seen.get(), None);
        assert!(seen.note(v41));
        assert!(!seen.note(v41));
        assert_eq!(seen.get(), Some(v41));
        assert_eq!(ApiVersion::unpack(0), None);
    }
}
