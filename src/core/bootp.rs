//! The fixed BOOTP part of a DHCPv4 reply and small option helpers shared by
//! the VM-host core (`dhcp4`) and the relay core (`relay4`).

use std::net::Ipv4Addr;

use dhcproto::v4::{self, encode_long_opt_chunks, HType, Opcode, OptionCode};
use dhcproto::{Encodable, Encoder};

use crate::core::mac::MacAddr;

/// BOOTP messages are at least 300 bytes (RFC 951's 64-byte vendor area);
/// some relays and PXE ROMs drop shorter ones, so replies are padded.
pub const MIN_MESSAGE_LEN: usize = 300;
/// Longest boot file name the `file` field holds with its terminating NUL.
pub const MAX_FILE_FIELD: usize = 127;
const ZEROS: [u8; MIN_MESSAGE_LEN] = [0; MIN_MESSAGE_LEN];

/// The fields of a reply's fixed part that vary (RFC 2131 figure 1). The
/// rest is fixed: BOOTREPLY, Ethernet, hlen 6, hops 0, secs 0, no sname.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplyHeader<'a> {
    pub xid: u32,
    pub flags: u16,
    pub ciaddr: Ipv4Addr,
    pub yiaddr: Ipv4Addr,
    /// Next server (PXE boot server), else 0.
    pub siaddr: Ipv4Addr,
    pub giaddr: Ipv4Addr,
    pub chaddr: MacAddr,
    /// Boot file name; written only when it fits with its NUL, else left empty.
    pub file: &'a [u8],
}

/// A set of option codes (the parameter request list), without allocation.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct CodeSet([u64; 4]);

impl CodeSet {
    pub fn insert(&mut self, code: u8) {
        if let Some(w) = self.0.get_mut(usize::from(code >> 6)) {
            *w |= 1 << (code & 63);
        }
    }

    pub fn contains(&self, code: u8) -> bool {
        self.0
            .get(usize::from(code >> 6))
            .is_some_and(|w| w & (1 << (code & 63)) != 0)
    }

    pub fn is_empty(&self) -> bool {
        self.0.iter().all(|&w| w == 0)
    }

    /// The codes, ascending.
    pub fn iter(&self) -> impl Iterator<Item = u8> + '_ {
        (0..=u8::MAX).filter(|&c| self.contains(c))
    }
}

impl std::fmt::Debug for CodeSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

/// Writes the fixed BOOTP part of the reply and the magic cookie.
///
/// Field by field rather than through `v4::Message`: its encoder writes the
/// empty sname and file fields one zero byte at a time, which took about a
/// third of the time of an answer, and constructing one draws a random xid
/// from the thread RNG.
pub fn write_reply_header(e: &mut Encoder<'_>, h: &ReplyHeader<'_>) -> v4::EncodeResult<()> {
    Opcode::BootReply.encode(e)?;
    HType::Eth.encode(e)?;
    e.write_u8(6)?; // hlen
    e.write_u8(0)?; // hops
    e.write_u32(h.xid)?;
    e.write_u16(0)?; // secs
    e.write_u16(h.flags)?;
    e.write(h.ciaddr.octets())?;
    e.write(h.yiaddr.octets())?;
    e.write(h.siaddr.octets())?;
    e.write(h.giaddr.octets())?;
    e.write(h.chaddr.0)?;
    e.write_slice(&ZEROS[..10 + 64])?; // rest of chaddr, sname
    let file = if h.file.len() <= MAX_FILE_FIELD {
        h.file
    } else {
        &[]
    };
    e.write_slice(file)?;
    e.write_slice(&ZEROS[..128 - file.len()])?;
    e.write(v4::MAGIC)
}

/// An address-list option, split over several options when longer than 255
/// bytes (RFC 3396). An empty list writes nothing.
pub fn put_addrs(
    code: OptionCode,
    addrs: &[Ipv4Addr],
    e: &mut Encoder<'_>,
) -> v4::EncodeResult<()> {
    encode_long_opt_chunks(code, 4, addrs, |a, e| e.write(a.octets()), e)
}

/// Pads the message that started at `start` in the encoder's buffer up to
/// [`MIN_MESSAGE_LEN`].
pub fn pad_to_minimum(e: &mut Encoder<'_>, start: usize) -> v4::EncodeResult<()> {
    let len = e.len_filled().saturating_sub(start);
    match ZEROS.get(..MIN_MESSAGE_LEN.saturating_sub(len)) {
        Some(pad) => e.write_slice(pad),
        None => Ok(()),
    }
}

/// The domain search list option (119, RFC 3397): the names in DNS wire
/// format, each suffix that was written before replaced by a pointer to it
/// (RFC 1035 §4.1.4), offsets counted from the start of the list, which is
/// what RFC 3397 §2 asks of a list that may be split over several options.
/// Names that are not DNS names are skipped; names compare case-blind.
pub fn domain_search(domains: &[String]) -> Vec<u8> {
    // Pointers have 14 bits of offset.
    const MAX_POINTER: usize = 0x3fff;
    let mut out = Vec::new();
    let mut suffixes: Vec<(String, usize)> = Vec::new();
    for name in domains {
        let name = name.strip_suffix('.').unwrap_or(name);
        let labels: Vec<&str> = name.split('.').collect();
        if name.is_empty()
            || name.len() > 253
            || labels.iter().any(|l| l.is_empty() || l.len() > 63)
        {
            continue;
        }
        let mut pointer = None;
        for i in 0..labels.len() {
            let suffix = labels[i..].join(".").to_ascii_lowercase();
            if let Some(&(_, at)) = suffixes.iter().find(|(s, _)| *s == suffix) {
                pointer = Some(at);
                break;
            }
            if out.len() <= MAX_POINTER {
                suffixes.push((suffix, out.len()));
            }
            out.push(labels[i].len() as u8);
            out.extend_from_slice(labels[i].as_bytes());
        }
        match pointer {
            Some(at) => out.extend_from_slice(&(0xc000 | at as u16).to_be_bytes()),
            None => out.push(0),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domain_search_encoding() {
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        // RFC 3397 §2's example: eng.apple.com and marketing.apple.com.
        let got = domain_search(&names(&["eng.apple.com.", "marketing.apple.com"]));
        let mut want = b"\x03eng\x05apple\x03com\x00".to_vec();
        want.extend_from_slice(b"\x09marketing\xc0\x04");
        assert_eq!(got, want);
        // A repeated name is one pointer; case does not matter.
        assert_eq!(
            domain_search(&names(&["example.com", "EXAMPLE.com"])),
            b"\x07example\x03com\x00\xc0\x00".to_vec()
        );
        // Invalid names are skipped.
        let long = "a".repeat(64);
        assert_eq!(
            domain_search(&names(&["", "a..b", &long, "x"])),
            b"\x01x\x00".to_vec()
        );
        assert!(domain_search(&[]).is_empty());
    }
}
