//! Ethernet hardware addresses.

use std::fmt;
use std::str::FromStr;

/// A 48-bit Ethernet MAC address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    pub const BROADCAST: MacAddr = MacAddr([0xff; 6]);

    /// Takes the first six bytes of `b`, if there are six.
    pub fn from_slice(b: &[u8]) -> Option<MacAddr> {
        let a: [u8; 6] = b.get(..6)?.try_into().ok()?;
        Some(MacAddr(a))
    }

    pub fn octets(&self) -> [u8; 6] {
        self.0
    }

    /// The modified EUI-64 interface identifier (RFC 4291 appendix A).
    pub fn eui64_interface_id(&self) -> [u8; 8] {
        let m = self.0;
        [m[0] ^ 0x02, m[1], m[2], 0xff, 0xfe, m[3], m[4], m[5]]
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a MAC address (want six hex octets separated by ':' or '-')")]
pub struct ParseMacError;

impl FromStr for MacAddr {
    type Err = ParseMacError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out = [0u8; 6];
        let mut parts = s.split([':', '-']);
        for byte in out.iter_mut() {
            let p = parts.next().ok_or(ParseMacError)?;
            if p.is_empty() || p.len() > 2 {
                return Err(ParseMacError);
            }
            *byte = u8::from_str_radix(p, 16).map_err(|_| ParseMacError)?;
        }
        if parts.next().is_some() {
            return Err(ParseMacError);
        }
        Ok(MacAddr(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        let m: MacAddr = "aa:6b:39:22:33:44".parse().unwrap();
        assert_eq!(m.to_string(), "aa:6b:39:22:33:44");
        assert_eq!("AA-6B-39-22-33-44".parse::<MacAddr>().unwrap(), m);
        assert!("aa:6b:39:22:33".parse::<MacAddr>().is_err());
        assert!("aa:6b:39:22:33:44:55".parse::<MacAddr>().is_err());
        assert!("aa:6b:39:22:33:4g".parse::<MacAddr>().is_err());
        assert!("aa:6b:39:22:33:".parse::<MacAddr>().is_err());
    }

    #[test]
    fn eui64() {
        let m: MacAddr = "aa:6b:39:22:33:44".parse().unwrap();
        assert_eq!(
            m.eui64_interface_id(),
            [0xa8, 0x6b, 0x39, 0xff, 0xfe, 0x22, 0x33, 0x44]
        );
    }
}
