//! A client's DHCPv4 message, read once for both ways of answering it: the
//! VM-host core ([`dhcp4`](super::dhcp4)) and the relay core
//! ([`relay4`](super::relay4)). Each keeps its decisions and its own context
//! (the host the frame's addresses, the relay what option 82 says).
//!
//! The request borrows from the datagram: reading it allocates nothing,
//! except for an option split in parts (RFC 3396), which the decoder joins.
//! [`Request::into_owned`] makes a copy that outlives the datagram, for a
//! request that waits on the backend.

use std::borrow::Cow;
use std::net::Ipv4Addr;

use dhcproto::v4::{self, borrowed, DhcpOption, Flags, HType, MessageType, Opcode, OptionCode};

use crate::core::boot::BootAsk;
use crate::core::bootp::CodeSet;
use crate::core::mac::MacAddr;
use crate::core::Refusal;

/// Vendor and user classes are kept up to this length (they only classify).
pub const MAX_CLASS: usize = 255;
/// Host names are kept up to the length of a DNS name.
pub const MAX_HOSTNAME: usize = 253;
/// Every client takes an IP datagram of 576 bytes (RFC 2131 §2); option 57
/// may not ask for less (RFC 2132 §9.10).
pub const MIN_DATAGRAM: usize = 576;
/// Size of the chaddr field (RFC 2131 §2, figure 1).
const CHADDR_FIELD: u8 = 16;

/// The client messages this server answers or records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MsgType {
    Discover,
    Request,
    Decline,
    Release,
    Inform,
}

impl MsgType {
    pub fn name(self) -> &'static str {
        match self {
            MsgType::Discover => "DHCPDISCOVER",
            MsgType::Request => "DHCPREQUEST",
            MsgType::Decline => "DHCPDECLINE",
            MsgType::Release => "DHCPRELEASE",
            MsgType::Inform => "DHCPINFORM",
        }
    }
}

/// What the answer depends on, read from a client message (a BOOTREQUEST).
/// Of an option sent more than once (apart, not split) the first counts,
/// except that parameter request lists add up and the last option 82 counts
/// (see [`Request::parse`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request<'a> {
    pub msg: MsgType,
    pub xid: u32,
    pub flags: Flags,
    pub secs: u16,
    pub hops: u8,
    pub ciaddr: Ipv4Addr,
    pub giaddr: Ipv4Addr,
    pub chaddr: MacAddr,
    /// Option 61 as received, whatever its length.
    pub client_id: Option<Cow<'a, [u8]>>,
    /// Option 50 (0.0.0.0 counts as absent).
    pub requested: Option<Ipv4Addr>,
    /// Option 54.
    pub server_id: Option<Ipv4Addr>,
    /// Option 12: printable ASCII only, at most [`MAX_HOSTNAME`] bytes.
    pub hostname: Option<Cow<'a, str>>,
    /// Option 55.
    pub prl: CodeSet,
    /// Option 57.
    pub max_size: Option<u16>,
    /// Option 93, the first architecture listed.
    pub arch: Option<u16>,
    /// Option 60, cut to [`MAX_CLASS`].
    pub vendor_class: Option<Cow<'a, [u8]>>,
    /// Option 77, cut to [`MAX_CLASS`].
    pub user_class: Option<Cow<'a, [u8]>>,
    /// Option 118 (RFC 3011).
    pub subnet_selection: Option<Ipv4Addr>,
    /// Option 82 as received (its data, without code and length).
    pub relay_info: Option<Cow<'a, [u8]>>,
}

/// `a`, unless it is 0.0.0.0.
pub fn nonzero(a: Ipv4Addr) -> Option<Ipv4Addr> {
    Some(a).filter(|a| !a.is_unspecified())
}

impl<'a> Request<'a> {
    /// Reads a BOOTREQUEST (the UDP payload).
    ///
    /// Refused as `Malformed`: shorter than the fixed part, no magic cookie
    /// (plain BOOTP, which this server does not speak), an hlen longer than
    /// the chaddr field, a message type, server identifier, requested
    /// address or subnet selection of the wrong size. `NotARequest`: a
    /// BOOTREPLY, no message type or a type other than DISCOVER, REQUEST,
    /// DECLINE, RELEASE, INFORM. `NotEthernet`: a valid hardware address
    /// that is not a MAC (htype/hlen other than 1/6). Other options that do
    /// not parse are ignored: they do not change which address is handed
    /// out.
    ///
    /// Of several option 82s the last is taken: a relay appends its own at
    /// the end, behind anything a client may have put there. Option overload
    /// (52) is not followed: RFC 2132 §9.3 has servers, not clients, carry
    /// options in `sname` and `file`.
    pub fn parse(payload: &'a [u8]) -> Result<Request<'a>, Refusal> {
        let msg = borrowed::Message::new(payload).map_err(|_| Refusal::Malformed)?;
        if payload.get(236..240) != Some(&v4::MAGIC[..]) {
            return Err(Refusal::Malformed);
        }
        // RFC 2131 §2: chaddr holds 16 bytes; a longer hardware address is
        // no BOOTP message at all, a shorter one than 6 bytes or another
        // type (InfiniBand) is valid, only not a MAC to serve.
        if msg.hlen() > CHADDR_FIELD {
            return Err(Refusal::Malformed);
        }
        if msg.opcode() != Opcode::BootRequest {
            return Err(Refusal::NotARequest);
        }
        if msg.htype() != HType::Eth || msg.hlen() != 6 {
            return Err(Refusal::NotEthernet);
        }
        // Read here rather than with `msg.chaddr()`, which slices by hlen.
        let chaddr = payload
            .get(28..34)
            .and_then(MacAddr::from_slice)
            .ok_or(Refusal::Malformed)?;

        let mut msg_type = None;
        let mut req = Request {
            msg: MsgType::Discover,
            xid: msg.xid(),
            flags: msg.flags(),
            secs: msg.secs(),
            hops: msg.hops(),
            ciaddr: msg.ciaddr(),
            giaddr: msg.giaddr(),
            chaddr,
            client_id: None,
            requested: None,
            server_id: None,
            hostname: None,
            prl: CodeSet::default(),
            max_size: None,
            arch: None,
            vendor_class: None,
            user_class: None,
            subnet_selection: None,
            relay_info: None,
        };
        // Split options (RFC 3396) are joined by the iterator. `into_option`
        // is only called for codes whose decoder checks the length.
        for opt in msg.opts() {
            match opt.code() {
                OptionCode::MessageType
                | OptionCode::ServerIdentifier
                | OptionCode::RequestedIpAddress
                | OptionCode::SubnetSelection => match opt.into_option() {
                    Ok(DhcpOption::MessageType(t)) => msg_type = msg_type.or(Some(t)),
                    Ok(DhcpOption::ServerIdentifier(a)) => {
                        req.server_id = req.server_id.or(Some(a))
                    }
                    // RFC 2131 §4.3.2 and RFC 2132 §9.1: option 50 names the
                    // address the client wants; 0.0.0.0 is none, so it
                    // counts as absent and ciaddr, if set, is what counts.
                    Ok(DhcpOption::RequestedIpAddress(a)) => {
                        req.requested = req.requested.or(nonzero(a))
                    }
                    Ok(DhcpOption::SubnetSelection(a)) => {
                        req.subnet_selection = req.subnet_selection.or(Some(a))
                    }
                    _ => return Err(Refusal::Malformed),
                },
                // RFC 6842 §3 wants it back unaltered: kept whole, however
                // long (RFC 3396 joins and splits long options).
                OptionCode::ClientIdentifier if req.client_id.is_none() => {
                    req.client_id = Some(borrow(payload, opt.data()));
                }
                OptionCode::Hostname if req.hostname.is_none() => {
                    req.hostname = host_name(borrow(payload, opt.data()));
                }
                // Each byte is an option code (RFC 2132 §9.8).
                OptionCode::ParameterRequestList => {
                    for &c in opt.data() {
                        req.prl.insert(c);
                    }
                }
                OptionCode::MaxMessageSize if req.max_size.is_none() => {
                    req.max_size = be_u16(opt.data());
                }
                // A list of 16-bit architecture types (RFC 4578 §2.1): an
                // odd length is no list.
                OptionCode::ClientSystemArchitecture if req.arch.is_none() => {
                    req.arch = be_u16(opt.data()).filter(|_| opt.len() % 2 == 0);
                }
                OptionCode::UserClass if req.user_class.is_none() => {
                    req.user_class = Some(class(borrow(payload, opt.data())));
                }
                OptionCode::ClassIdentifier if req.vendor_class.is_none() => {
                    req.vendor_class = Some(class(borrow(payload, opt.data())));
                }
                OptionCode::RelayAgentInformation => {
                    req.relay_info = Some(borrow(payload, opt.data()))
                }
                _ => {}
            }
        }
        req.msg = match msg_type {
            Some(MessageType::Discover) => MsgType::Discover,
            Some(MessageType::Request) => MsgType::Request,
            Some(MessageType::Decline) => MsgType::Decline,
            Some(MessageType::Release) => MsgType::Release,
            Some(MessageType::Inform) => MsgType::Inform,
            _ => return Err(Refusal::NotARequest),
        };
        Ok(req)
    }

    /// A copy that does not borrow from the datagram.
    pub fn into_owned(self) -> Request<'static> {
        fn own<T: ToOwned + ?Sized>(c: Option<Cow<'_, T>>) -> Option<Cow<'static, T>> {
            c.map(|c| Cow::Owned(c.into_owned()))
        }
        Request {
            client_id: own(self.client_id),
            hostname: own(self.hostname),
            vendor_class: own(self.vendor_class),
            user_class: own(self.user_class),
            relay_info: own(self.relay_info),
            msg: self.msg,
            xid: self.xid,
            flags: self.flags,
            secs: self.secs,
            hops: self.hops,
            ciaddr: self.ciaddr,
            giaddr: self.giaddr,
            chaddr: self.chaddr,
            requested: self.requested,
            server_id: self.server_id,
            prl: self.prl,
            max_size: self.max_size,
            arch: self.arch,
            subnet_selection: self.subnet_selection,
        }
    }

    /// What the request says about network boot (options 55, 60, 77, 93).
    pub fn boot_ask(&self) -> BootAsk<'_> {
        BootAsk {
            wants_boot_options: self.prl.contains(66) || self.prl.contains(67),
            vendor_class: self.vendor_class.as_deref().unwrap_or_default(),
            user_class: self.user_class.as_deref(),
            arch: self.arch,
        }
    }

    /// The largest IP datagram the client takes: option 57, never below
    /// [`MIN_DATAGRAM`].
    pub fn max_datagram(&self) -> usize {
        self.max_size
            .map_or(MIN_DATAGRAM, usize::from)
            .max(MIN_DATAGRAM)
    }
}

/// `data` as the slice of `payload` it is, for an option in one part; a
/// copy for one the decoder joined from parts into a buffer of its own.
fn borrow<'a>(payload: &'a [u8], data: &[u8]) -> Cow<'a, [u8]> {
    let start = (data.as_ptr() as usize).wrapping_sub(payload.as_ptr() as usize);
    match payload.get(start..).and_then(|rest| rest.get(..data.len())) {
        Some(s) if std::ptr::eq(s.as_ptr(), data.as_ptr()) => Cow::Borrowed(s),
        _ => Cow::Owned(data.to_vec()),
    }
}

/// The first [`MAX_CLASS`] bytes.
fn class(data: Cow<'_, [u8]>) -> Cow<'_, [u8]> {
    match data {
        Cow::Borrowed(d) => Cow::Borrowed(d.get(..MAX_CLASS).unwrap_or(d)),
        Cow::Owned(mut d) => {
            d.truncate(MAX_CLASS);
            Cow::Owned(d)
        }
    }
}

/// Printable ASCII without spaces, up to a NUL (some clients count one in
/// the length), so that the name is safe in logs and in the IPAM.
fn host_name(raw: Cow<'_, [u8]>) -> Option<Cow<'_, str>> {
    let name = match raw {
        Cow::Borrowed(b) => {
            let b = b.split(|&c| c == 0).next().unwrap_or_default();
            if b.iter().all(u8::is_ascii_graphic) {
                // Printable ASCII is UTF-8.
                Cow::Borrowed(std::str::from_utf8(b.get(..MAX_HOSTNAME).unwrap_or(b)).ok()?)
            } else {
                Cow::Owned(printable(b))
            }
        }
        Cow::Owned(b) => Cow::Owned(printable(&b)),
    };
    (!name.is_empty()).then_some(name)
}

fn printable(raw: &[u8]) -> String {
    raw.iter()
        .take_while(|&&b| b != 0)
        .filter(|b| b.is_ascii_graphic())
        .take(MAX_HOSTNAME)
        .map(|&b| char::from(b))
        .collect()
}

/// The first two bytes of `data` in network order.
fn be_u16(data: &[u8]) -> Option<u16> {
    Some(u16::from_be_bytes(data.get(..2)?.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::captures::pcap_frames;
    use crate::core::frame;

    const CLIENT: MacAddr = MacAddr([0x52, 0x54, 0x00, 0x1b, 0x31, 0x20]);
    const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(172, 20, 0, 101);
    const ZERO: Ipv4Addr = Ipv4Addr::UNSPECIFIED;

    /// One option, raw.
    fn o(code: u8, data: &[u8]) -> Vec<u8> {
        let mut v = vec![code, data.len() as u8];
        v.extend_from_slice(data);
        v
    }

    /// A BOOTREQUEST from CLIENT with these raw options, then End.
    fn packet(opts: &[Vec<u8>]) -> Vec<u8> {
        let m = v4::Message::new_with_id(0x1234_5678, ZERO, ZERO, ZERO, ZERO, &CLIENT.0);
        let mut p = dhcproto::Encodable::to_vec(&m).unwrap();
        p.truncate(240);
        for opt in opts {
            p.extend_from_slice(opt);
        }
        p.push(255);
        p
    }

    fn discover(opts: &[Vec<u8>]) -> Vec<u8> {
        packet(&[&[o(53, &[1])][..], opts].concat())
    }

    fn parsed(p: &[u8]) -> Request<'_> {
        Request::parse(p).unwrap_or_else(|r| panic!("refused: {r:?}"))
    }

    #[test]
    fn requested_address_zero_is_absent() {
        // RFC 2131 §4.3.2: 0.0.0.0 is no address to ask for.
        let p = packet(&[o(53, &[3]), o(50, &[0; 4])]);
        assert_eq!(parsed(&p).requested, None);
        let p = packet(&[o(53, &[3]), o(50, &CLIENT_IP.octets())]);
        assert_eq!(parsed(&p).requested, Some(CLIENT_IP));
        // Still an address option: the wrong size is refused.
        let p = packet(&[o(53, &[3]), o(50, &[0; 3])]);
        assert_eq!(Request::parse(&p), Err(Refusal::Malformed));
    }

    #[test]
    fn hardware_types() {
        let ok = discover(&[]);
        let edit = |f: &dyn Fn(&mut Vec<u8>)| {
            let mut p = ok.clone();
            f(&mut p);
            Request::parse(&p).map(|r| r.chaddr)
        };
        assert_eq!(edit(&|_| {}), Ok(CLIENT));
        // Valid BOOTP, only not a MAC: InfiniBand, IEEE 802, another length.
        for (htype, hlen) in [(32, 0), (32, 16), (6, 6), (1, 0), (1, 8), (1, 16)] {
            assert_eq!(
                edit(&|p| (p[1], p[2]) = (htype, hlen)),
                Err(Refusal::NotEthernet),
                "{htype}/{hlen}"
            );
        }
        // Longer than chaddr holds: not BOOTP at all (RFC 2131 §2).
        for hlen in [17, 20, 255] {
            assert_eq!(edit(&|p| p[2] = hlen), Err(Refusal::Malformed), "{hlen}");
        }
        // A reply is not a request, whatever its hardware.
        assert_eq!(edit(&|p| (p[0], p[1]) = (2, 32)), Err(Refusal::NotARequest));
        // A non-Ethernet client is not served, whatever its options say.
        let p = packet(&[o(12, b"x")]);
        let mut ib = p.clone();
        ib[1] = 32;
        assert_eq!(Request::parse(&p), Err(Refusal::NotARequest));
        assert_eq!(Request::parse(&ib), Err(Refusal::NotEthernet));
    }

    #[test]
    fn client_identifier_is_kept_whole() {
        // RFC 6842 §3: echoed unaltered, so kept whatever its length; one
        // split in parts (RFC 3396) is joined.
        let id: Vec<u8> = (0..300).map(|i| i as u8).collect();
        let p = discover(&[o(61, &id[..255]), o(61, &id[255..])]);
        assert_eq!(parsed(&p).client_id.as_deref(), Some(&id[..]));
        let p = discover(&[o(61, &[1]), o(12, b"h"), o(61, &[3, 4])]);
        assert_eq!(parsed(&p).client_id.as_deref(), Some(&[1][..]));
    }

    #[test]
    fn host_names_are_sanitised() {
        for (raw, want) in [
            (&b"idrac-7XK2Q3"[..], Some("idrac-7XK2Q3")),
            (b"idrac-7XK2Q3\0", Some("idrac-7XK2Q3")),
            (b"idrac\0evil", Some("idrac")),
            (b"my host\r\n\x1b[31m", Some("myhost[31m")),
            (b"caf\xc3\xa9", Some("caf")),
            (b"\0", None),
            (b" \t\x7f", None),
            (b"", None),
        ] {
            let p = discover(&[o(12, raw)]);
            assert_eq!(parsed(&p).hostname.as_deref(), want, "{raw:?}");
        }
        let long = "h".repeat(255);
        let p = discover(&[o(12, long.as_bytes())]);
        assert_eq!(parsed(&p).hostname.map(|h| h.len()), Some(MAX_HOSTNAME));
        // Cut after cleaning, not before.
        let mut messy = vec![b' '; 10];
        messy.extend_from_slice(long.as_bytes());
        let p = discover(&[o(12, &messy[..255])]);
        assert_eq!(parsed(&p).hostname.map(|h| h.len()), Some(245));
        // Split in parts: joined, then cleaned.
        let p = discover(&[o(12, b"work"), o(12, b"station\x01")]);
        assert_eq!(parsed(&p).hostname.as_deref(), Some("workstation"));
    }

    #[test]
    fn sizes_and_lists() {
        // RFC 2132 §9.10: two bytes; RFC 4578 §2.1: pairs of bytes.
        let r = discover(&[o(57, &[5, 0xdc]), o(93, &[0, 7, 0, 9])]);
        let r = parsed(&r);
        assert_eq!((r.max_size, r.arch), (Some(1500), Some(7)));
        assert_eq!(r.max_datagram(), 1500);
        let r = discover(&[o(57, &[1]), o(93, &[0, 7, 0])]);
        let r = parsed(&r);
        assert_eq!((r.max_size, r.arch), (None, None));
        assert_eq!(r.max_datagram(), MIN_DATAGRAM);
        // Below the minimum every client takes: the minimum.
        let r = discover(&[o(57, &[1, 0])]);
        assert_eq!(parsed(&r).max_datagram(), MIN_DATAGRAM);
        // Classes cut, lists added up.
        let long = [b'v'; 300];
        let p = discover(&[
            o(60, &long[..255]),
            o(60, &long[255..]),
            o(77, &long[..10]),
            o(55, &[1, 3]),
            o(12, b"h"),
            o(55, &[66]),
        ]);
        let r = parsed(&p);
        assert_eq!(r.vendor_class.as_deref(), Some(&long[..MAX_CLASS]));
        assert_eq!(r.user_class.as_deref(), Some(&long[..10]));
        assert_eq!(r.prl.iter().collect::<Vec<_>>(), [1, 3, 66]);
        assert!(r.boot_ask().wants_boot_options);
    }

    #[test]
    fn relay_agent_information_is_the_last() {
        let p = discover(&[o(82, &[1, 1, b'a']), o(12, b"h"), o(82, &[1, 1, b'b'])]);
        assert_eq!(parsed(&p).relay_info.as_deref(), Some(&[1, 1, b'b'][..]));
        // Its sub-options are the relay core's to read.
        let p = discover(&[o(82, &[5, 3, 1])]);
        assert_eq!(parsed(&p).relay_info.as_deref(), Some(&[5, 3, 1][..]));
    }

    #[test]
    fn borrowed_from_the_datagram_and_owned_alike() {
        let f = pcap_frames("pydhcp-discover.selecting.pxe.pcap").remove(0);
        let eth = frame::parse_ethernet(&f).unwrap();
        let udp = frame::parse_udp4(eth.payload).unwrap();
        let r = parsed(udp.payload);
        for field in [&r.client_id, &r.vendor_class, &r.user_class] {
            assert!(matches!(field, Some(Cow::Borrowed(_))), "{field:?}");
        }
        let p = discover(&[o(12, b"vm1"), o(82, &[1, 1, b'a'])]);
        let r = parsed(&p);
        assert!(matches!(r.hostname, Some(Cow::Borrowed("vm1"))));
        assert!(matches!(r.relay_info, Some(Cow::Borrowed(_))));
        let owned = r.clone().into_owned();
        assert_eq!(owned, r);
        assert!(matches!(owned.hostname, Some(Cow::Owned(_))));
    }
}
