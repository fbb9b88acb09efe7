//! The fixed BOOTP part of a DHCPv4 reply and small option helpers shared by
//! the VM-host core (`dhcp4`) and the relay core (`relay4`).

use std::net::Ipv4Addr;

use dhcproto::v4::{self, encode_long_opt_chunks, HType, Opcode, OptionCode};
use dhcproto::{Encodable, Encoder};

use crate::mac::MacAddr;

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
