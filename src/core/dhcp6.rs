//! DHCPv6 for VM host mode (pure): request + binding -> reply frame.
//!
//! Information-Request is always served (DNS servers and domain list).
//! With `Params::stateful` the binding's IP6 (else its EUI64) address is
//! handed out in IA_NA; without it, Solicit gets an Advertise that says
//! NoAddrsAvail, as RFC 8415 18.3.1 requires of a server that will not
//! assign addresses, and Request/Renew/Rebind get their IAs back with
//! NoAddrsAvail/NoBinding (18.3.2, 18.3.4, 18.3.5).
//!
//! Messages are decoded and encoded with `dhcproto`. The source MAC is
//! checked against the binding; the link-layer address inside a DUID-LL/LLT
//! client id is not, because clients build their DUID from any one of
//! their interfaces, so it need not be this one's.

use std::net::Ipv6Addr;

use dhcproto::v6::{
    DhcpOption, DhcpOptions, IAAddr, Message, MessageType, OptionCode, Status, StatusCode,
    UnknownOption, IANA,
};
use dhcproto::{Decodable, Decoder, Encodable, Encoder};

use crate::core::binding::Binding;
use crate::core::frame6::{
    finish_udp6_frame, link_local, parse_udp6, Ipv6Addressing, DEFAULT_HOP_LIMIT, UDP6_HEADERS_LEN,
};
use crate::core::mac::MacAddr;
use crate::core::ndp::encode_domain_names;
use crate::core::Refusal;

pub const SERVER_PORT: u16 = 547;
pub const CLIENT_PORT: u16 = 546;

/// IA_NAs answered per message; more are ignored. One address to give
/// makes a handful plenty, and it bounds the reply.
const MAX_IAS: usize = 8;
/// Addresses per IA that a Renew/Rebind reply withdraws (lifetime 0).
const MAX_STALE_ADDRS: usize = 8;
/// DUIDs are 2 octets of type and 1 to 128 octets of identifier (RFC 8415 11.1).
const DUID_LEN: std::ops::RangeInclusive<usize> = 3..=130;
/// Room for the domain list (option 24).
const MAX_DOMAIN_LIST_LEN: usize = 2048;
/// Nesting of encapsulated options a client message may use (IA_NA >
/// IAADDR > STATUS_CODE is 3).
const MAX_DEPTH: u8 = 4;

/// The `[ipv6]` settings DHCPv6 answers depend on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Params {
    /// Hand out addresses (IA_NA), not only other configuration.
    pub stateful: bool,
    /// DNS servers (option 23).
    pub nameservers: Vec<Ipv6Addr>,
    /// Domain search list (option 24); invalid names are left out.
    pub domains: Vec<String>,
    /// IA_NA renewal time; capped at `t2`.
    pub t1: u32,
    /// IA_NA rebinding time.
    pub t2: u32,
    /// Capped at `valid_lifetime`.
    pub preferred_lifetime: u32,
    pub valid_lifetime: u32,
}

/// DHCPv6 message types that appear in log lines and counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Solicit,
    Advertise,
    Request,
    Confirm,
    Renew,
    Rebind,
    Reply,
    Release,
    Decline,
    InformationRequest,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Solicit => "SOLICIT",
            Kind::Advertise => "ADVERTISE",
            Kind::Request => "REQUEST",
            Kind::Confirm => "CONFIRM",
            Kind::Renew => "RENEW",
            Kind::Rebind => "REBIND",
            Kind::Reply => "REPLY",
            Kind::Release => "RELEASE",
            Kind::Decline => "DECLINE",
            Kind::InformationRequest => "INFORMATION-REQUEST",
        }
    }

    fn from_wire(t: u8) -> Option<Kind> {
        Some(match MessageType::from(t) {
            MessageType::Solicit => Kind::Solicit,
            MessageType::Request => Kind::Request,
            MessageType::Confirm => Kind::Confirm,
            MessageType::Renew => Kind::Renew,
            MessageType::Rebind => Kind::Rebind,
            MessageType::Release => Kind::Release,
            MessageType::Decline => Kind::Decline,
            MessageType::InformationRequest => Kind::InformationRequest,
            _ => return None,
        })
    }
}

/// A complete Ethernet frame to send on the binding's interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The request's type.
    pub request: Kind,
    /// ADVERTISE or REPLY.
    pub kind: Kind,
    pub client_mac: MacAddr,
    /// The address handed out; for Release/Decline the address the client
    /// gave back; None otherwise.
    pub addr: Option<Ipv6Addr>,
    pub frame: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Reply(Reply),
    /// The client gave its address back (logged); the frame acknowledges it.
    Released(Reply),
    /// The client found the address in use (logged as a warning); the frame
    /// acknowledges it.
    Declined(Reply),
    Refused(Refusal),
}

impl Outcome {
    /// The frame to send, whatever the outcome.
    pub fn reply(&self) -> Option<&Reply> {
        match self {
            Outcome::Reply(r) | Outcome::Released(r) | Outcome::Declined(r) => Some(r),
            Outcome::Refused(_) => None,
        }
    }
}

/// The server's DUID: DUID-LL (type 3) of hardware type 1 (Ethernet) over
/// INDEV's MAC, stable across restarts and needing no state.
pub fn server_duid(server_mac: MacAddr) -> [u8; 10] {
    let m = server_mac.0;
    [0, 3, 0, 1, m[0], m[1], m[2], m[3], m[4], m[5]]
}

/// Answers one DHCPv6 request.
///
/// `packet` is the IPv6 packet as NFQUEUE hands it over (no Ethernet
/// header); `src_mac` is the Ethernet source from the queue's
/// hardware-address attribute; `server_mac` is the MAC of the binding's
/// INDEV, the reply's Ethernet source. The reply goes from INDEV's
/// link-local address, port 547, to the request's source address and port.
pub fn answer(
    packet: &[u8],
    src_mac: Option<MacAddr>,
    binding: &Binding,
    server_mac: MacAddr,
    params: &Params,
) -> Outcome {
    match answer_inner(packet, src_mac, binding, server_mac, params) {
        Ok(o) => o,
        Err(r) => Outcome::Refused(r),
    }
}

/// What the answer needs from the request's options.
#[derive(Default)]
struct Request {
    client_id: Option<Vec<u8>>,
    server_id: Option<Vec<u8>>,
    ias: Vec<IANA>,
    /// Addresses in IA_TAs (Confirm only looks at them).
    ta_addrs: Vec<Ipv6Addr>,
    /// IA_TA or IA_PD present.
    other_ias: bool,
    rapid_commit: bool,
}

impl Request {
    fn from_options(opts: DhcpOptions) -> Request {
        let mut r = Request::default();
        for opt in opts {
            match opt {
                DhcpOption::ClientId(id) if r.client_id.is_none() => r.client_id = Some(id),
                DhcpOption::ServerId(id) if r.server_id.is_none() => r.server_id = Some(id),
                DhcpOption::IANA(ia) if r.ias.len() < MAX_IAS => r.ias.push(ia),
                DhcpOption::IATA(ta) => {
                    r.other_ias = true;
                    r.ta_addrs.extend(addrs_in(&ta.opts).take(MAX_IAS));
                }
                DhcpOption::IAPD(_) => r.other_ias = true,
                DhcpOption::RapidCommit => r.rapid_commit = true,
                _ => {}
            }
        }
        r
    }

    fn addrs(&self) -> impl Iterator<Item = Ipv6Addr> + '_ {
        self.ias
            .iter()
            .flat_map(|ia| addrs_in(&ia.opts))
            .chain(self.ta_addrs.iter().copied())
    }
}

fn addrs_in(opts: &DhcpOptions) -> impl Iterator<Item = Ipv6Addr> + '_ {
    opts.iter().filter_map(|o| match o {
        DhcpOption::IAAddr(a) => Some(a.addr),
        _ => None,
    })
}

fn answer_inner(
    packet: &[u8],
    src_mac: Option<MacAddr>,
    binding: &Binding,
    server_mac: MacAddr,
    params: &Params,
) -> Result<Outcome, Refusal> {
    let d = parse_udp6(packet).map_err(|_| Refusal::Malformed)?;
    if d.dst_port != SERVER_PORT || d.src_port != CLIENT_PORT {
        return Err(Refusal::NotARequest);
    }
    if d.src.is_unspecified() || d.src.is_multicast() {
        return Err(Refusal::Malformed);
    }
    let (&msg_type, rest) = d.payload.split_first().ok_or(Refusal::Malformed)?;
    // Replies, relay messages and unknown types are not for this server.
    let kind = Kind::from_wire(msg_type).ok_or(Refusal::NotARequest)?;
    // Before decoding: the cheapest refusal first.
    if !binding.macspoof && src_mac.is_some_and(|m| m != binding.mac) {
        return Err(Refusal::SpoofedMac);
    }
    let options = rest.get(3..).ok_or(Refusal::Malformed)?;
    let count = check_options(options, 0)?;
    let mut msg = Message::decode(&mut Decoder::new(d.payload)).map_err(|_| Refusal::Malformed)?;
    if msg.opts().iter().count() != count {
        return Err(Refusal::Malformed);
    }
    let mut req = Request::from_options(std::mem::take(msg.opts_mut()));

    // RFC 8415 16: which messages carry which identifiers.
    let duid = server_duid(server_mac);
    match kind {
        Kind::Request | Kind::Renew | Kind::Release | Kind::Decline => match &req.server_id {
            None => return Err(Refusal::Malformed),
            Some(id) if id[..] != duid[..] => return Err(Refusal::OtherServer),
            Some(_) => {}
        },
        Kind::Solicit | Kind::Confirm | Kind::Rebind => {
            if req.server_id.is_some() {
                return Err(Refusal::Malformed);
            }
        }
        Kind::InformationRequest => {
            if req.server_id.as_ref().is_some_and(|id| id[..] != duid[..]) {
                return Err(Refusal::OtherServer);
            }
            if !req.ias.is_empty() || req.other_ias {
                return Err(Refusal::Malformed);
            }
        }
        Kind::Advertise | Kind::Reply => return Err(Refusal::NotARequest),
    }
    if req.client_id.is_none() && kind != Kind::InformationRequest {
        return Err(Refusal::Malformed);
    }

    let addr = binding.ip6.or(binding.eui64).filter(|_| params.stateful);
    let released = req.addrs().next();
    let mut ans = Answer::new(req.client_id.take(), duid);
    let mut reply_kind = Kind::Reply;
    let mut assigned = None;
    match kind {
        Kind::InformationRequest => ans.config(params),
        Kind::Solicit => {
            match (addr, req.ias.is_empty()) {
                (Some(a), false) => {
                    ans.assign(&req, a, params, false);
                    assigned = Some(a);
                    if req.rapid_commit {
                        ans.push(DhcpOption::RapidCommit);
                    } else {
                        // The only server on the link: tell the client not
                        // to wait for other Advertises (RFC 8415 18.2.1).
                        ans.push(DhcpOption::Preference(255));
                        reply_kind = Kind::Advertise;
                    }
                }
                _ => {
                    ans.status(Status::NoAddrsAvail, "no addresses available");
                    reply_kind = Kind::Advertise;
                }
            }
            ans.config(params);
        }
        Kind::Request | Kind::Renew | Kind::Rebind => {
            match addr {
                Some(a) => {
                    ans.assign(&req, a, params, kind != Kind::Request);
                    assigned = Some(a).filter(|_| !req.ias.is_empty());
                }
                None if kind == Kind::Request => {
                    ans.ia_status(&req, Status::NoAddrsAvail, "no addresses available")
                }
                None => ans.ia_status(&req, Status::NoBinding, "no binding"),
            }
            ans.config(params);
        }
        Kind::Confirm => {
            // RFC 8415 18.3.3: no reply when the server cannot tell, or
            // when there is nothing to confirm.
            let subnet = binding.subnet6.ok_or(Refusal::Unconfigured)?;
            if released.is_none() {
                return Err(Refusal::Malformed);
            }
            if req.addrs().all(|a| subnet.contains(&a)) {
                ans.status(Status::Success, "all addresses on link");
            } else {
                ans.status(Status::NotOnLink, "not on link");
            }
        }
        Kind::Release | Kind::Decline => {
            ans.status(Status::Success, "ok");
            if !params.stateful {
                ans.ia_status(&req, Status::NoBinding, "no binding");
            }
        }
        Kind::Advertise | Kind::Reply => return Err(Refusal::NotARequest),
    }

    msg.set_msg_type(if reply_kind == Kind::Advertise {
        MessageType::Advertise
    } else {
        MessageType::Reply
    })
    .set_opts(ans.opts.into_iter().collect());

    let client_mac = src_mac.unwrap_or(binding.mac);
    let frame = encode_frame(
        &msg,
        &Ipv6Addressing {
            src_mac: server_mac,
            dst_mac: client_mac,
            src: link_local(server_mac),
            dst: d.src,
            hop_limit: DEFAULT_HOP_LIMIT,
        },
        d.src_port,
    )?;
    let mut reply = Reply {
        request: kind,
        kind: reply_kind,
        client_mac,
        addr: assigned,
        frame,
    };
    Ok(match kind {
        Kind::Release => {
            reply.addr = released;
            Outcome::Released(reply)
        }
        Kind::Decline => {
            reply.addr = released;
            Outcome::Declined(reply)
        }
        _ => Outcome::Reply(reply),
    })
}

/// The options of the answer being built.
struct Answer {
    opts: Vec<DhcpOption>,
}

impl Answer {
    fn new(client_id: Option<Vec<u8>>, duid: [u8; 10]) -> Answer {
        let mut opts = Vec::with_capacity(8);
        if let Some(id) = client_id {
            opts.push(DhcpOption::ClientId(id));
        }
        opts.push(DhcpOption::ServerId(duid.to_vec()));
        Answer { opts }
    }

    fn push(&mut self, o: DhcpOption) {
        self.opts.push(o);
    }

    fn status(&mut self, status: Status, msg: &str) {
        self.push(status_option(status, msg));
    }

    /// DNS servers and domain list, when configured.
    fn config(&mut self, params: &Params) {
        if !params.nameservers.is_empty() {
            self.push(DhcpOption::DomainNameServers(params.nameservers.clone()));
        }
        if !params.domains.is_empty() {
            // dhcproto would compress the names, which RFC 8415 10 forbids.
            let mut wire = Vec::new();
            if encode_domain_names(&params.domains, &mut wire, MAX_DOMAIN_LIST_LEN) > 0 {
                self.push(DhcpOption::Unknown(UnknownOption::new(
                    OptionCode::DomainSearchList,
                    wire,
                )));
            }
        }
    }

    /// The address goes into the client's first IA_NA; any further IA_NA
    /// gets NoAddrsAvail, as one address cannot be in two IAs. With
    /// `renewing`, other addresses the client lists are returned with
    /// lifetimes 0 so it drops them (RFC 8415 18.3.4).
    fn assign(&mut self, req: &Request, addr: Ipv6Addr, p: &Params, renewing: bool) {
        for (i, ia) in req.ias.iter().enumerate() {
            if i > 0 {
                self.push(ia_with_status(
                    ia.id,
                    Status::NoAddrsAvail,
                    "one address only",
                ));
                continue;
            }
            let mut opts = vec![DhcpOption::IAAddr(IAAddr {
                addr,
                preferred_life: p.preferred_lifetime.min(p.valid_lifetime),
                valid_life: p.valid_lifetime,
                opts: DhcpOptions::new(),
            })];
            if renewing {
                let stale = addrs_in(&ia.opts).filter(|a| *a != addr);
                opts.extend(stale.take(MAX_STALE_ADDRS).map(|a| {
                    DhcpOption::IAAddr(IAAddr {
                        addr: a,
                        preferred_life: 0,
                        valid_life: 0,
                        opts: DhcpOptions::new(),
                    })
                }));
            }
            self.push(DhcpOption::IANA(IANA {
                id: ia.id,
                t1: p.t1.min(p.t2),
                t2: p.t2,
                opts: opts.into_iter().collect(),
            }));
        }
    }

    /// Every IA_NA of the request back, empty but for `status`.
    fn ia_status(&mut self, req: &Request, status: Status, msg: &str) {
        for ia in &req.ias {
            self.push(ia_with_status(ia.id, status, msg));
        }
    }
}

fn status_option(status: Status, msg: &str) -> DhcpOption {
    DhcpOption::StatusCode(StatusCode {
        status,
        msg: msg.to_string(),
    })
}

fn ia_with_status(id: u32, status: Status, msg: &str) -> DhcpOption {
    DhcpOption::IANA(IANA {
        id,
        t1: 0,
        t2: 0,
        opts: std::iter::once(status_option(status, msg)).collect(),
    })
}

/// Encodes `msg` and frames it, in one buffer: the encoder writes from the
/// start of the buffer, so the headers' room is made by rotating afterwards.
fn encode_frame(msg: &Message, a: &Ipv6Addressing, dst_port: u16) -> Result<Vec<u8>, Refusal> {
    let mut buf = Vec::with_capacity(UDP6_HEADERS_LEN + 256);
    msg.encode(&mut Encoder::new(&mut buf))
        .map_err(|_| Refusal::Malformed)?;
    let len = buf.len();
    buf.resize(len + UDP6_HEADERS_LEN, 0);
    buf.rotate_right(UDP6_HEADERS_LEN);
    finish_udp6_frame(&mut buf, a, SERVER_PORT, dst_port).map_err(|_| Refusal::Malformed)?;
    Ok(buf)
}

/// Walks an option list as `dhcproto` will decode it and refuses what it
/// would misread: its 0.15 decoders subtract unchecked in a few places
/// (a panic in debug builds), read fixed sizes whatever the length says,
/// and stop silently at the first option they cannot decode. Returns the
/// number of top-level options.
fn check_options(mut b: &[u8], depth: u8) -> Result<usize, Refusal> {
    if depth > MAX_DEPTH {
        return Err(Refusal::Malformed);
    }
    let nested = |data: &[u8], skip: usize| {
        data.get(skip..)
            .is_some_and(|inner| check_options(inner, depth + 1).is_ok())
    };
    let mut count = 0;
    while !b.is_empty() {
        let (head, rest) = b.split_first_chunk::<4>().ok_or(Refusal::Malformed)?;
        let code = u16::from_be_bytes([head[0], head[1]]);
        let len = usize::from(u16::from_be_bytes([head[2], head[3]]));
        if rest.len() < len {
            return Err(Refusal::Malformed);
        }
        let (data, next) = rest.split_at(len);
        let ok = match code {
            1 | 2 => DUID_LEN.contains(&len), // client, server id
            3 | 25 => nested(data, 12),       // IA_NA, IA_PD
            4 | 17 => nested(data, 4),        // IA_TA, vendor opts
            5 => nested(data, 24),            // IAADDR
            26 => nested(data, 25),           // IAPREFIX
            6 => len % 2 == 0,                // ORO
            7 | 19 => len == 1,               // preference, reconf msg
            8 => len == 2,                    // elapsed time
            9 => false,                       // relay msg: relays only
            11 => len >= 11,                  // authentication
            12 => len == 16,                  // server unicast
            13 => data
                .get(2..)
                .is_some_and(|t| std::str::from_utf8(t).is_ok()), // status
            14 | 20 => len == 0,              // rapid commit, reconf accept
            16 => len >= 4,                   // vendor class
            23 => len % 16 == 0,              // DNS servers
            _ => true,
        };
        if !ok {
            return Err(Refusal::Malformed);
        }
        count += 1;
        b = next;
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::binding;
    use crate::core::frame6::tests::check_frame;
    use crate::core::frame6::{udp6_frame, ETHERNET_HEADER_LEN};
    use dhcproto::Name;

    const GUEST: MacAddr = MacAddr([0xaa, 0x6b, 0x39, 0x22, 0x33, 0x44]);
    const SERVER: MacAddr = MacAddr([0x02, 0x00, 0x5e, 0x10, 0x20, 0x30]);
    const OTHER: MacAddr = MacAddr([0xaa, 0x6b, 0x39, 0x99, 0x99, 0x99]);
    const XID: [u8; 3] = [0x5a, 0x0b, 0x17];
    const IAID: u32 = 0x2233_4455;
    /// DUID-LLT as dhclient builds it: type 1, hw type 1, time, MAC.
    const CLIENT_DUID: [u8; 14] = [
        0, 1, 0, 1, 0x2c, 0x3d, 0x4e, 0x5f, 0xaa, 0x6b, 0x39, 0x22, 0x33, 0x44,
    ];
    const SERVER_DUID: [u8; 10] = [0, 3, 0, 1, 0x02, 0x00, 0x5e, 0x10, 0x20, 0x30];

    fn ip(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    fn guest_ll() -> Ipv6Addr {
        ip("fe80::a86b:39ff:fe22:3344")
    }

    fn sample_binding() -> Binding {
        binding::parse(
            "tap10",
            b"MAC=aa:6b:39:22:33:44\nHOSTNAME=testing-vm\n\
              GATEWAY6=2001:db8:aaaa:bbbb::1\nSUBNET6=2001:db8:aaaa:bbbb::/64\n\
              EUI64=2001:db8:aaaa:bbbb:a86b:39ff:fe22:3344\n\
              IP6=2001:db8:aaaa:bbbb::100\n",
        )
        .unwrap()
    }

    fn params(stateful: bool) -> Params {
        Params {
            stateful,
            nameservers: vec![ip("2001:db8:100::1"), ip("2001:db8:200::2")],
            domains: vec!["example.com".into(), "sub.example.com".into()],
            t1: 1800,
            t2: 2880,
            preferred_lifetime: 3600,
            valid_lifetime: 7200,
        }
    }

    fn opt(code: u16, data: &[u8]) -> Vec<u8> {
        let mut v = code.to_be_bytes().to_vec();
        v.extend_from_slice(&(data.len() as u16).to_be_bytes());
        v.extend_from_slice(data);
        v
    }

    fn ia_na(iaid: u32, addrs: &[Ipv6Addr]) -> Vec<u8> {
        let mut data = iaid.to_be_bytes().to_vec();
        data.extend_from_slice(&[0; 8]); // T1, T2: no preference
        for a in addrs {
            let mut ad = a.octets().to_vec();
            ad.extend_from_slice(&[0; 8]);
            data.extend(opt(5, &ad));
        }
        opt(3, &data)
    }

    /// A client message (type, xid, options) in a UDP/IPv6 packet from the
    /// guest's link-local address to ff02::1:2, as NFQUEUE delivers it.
    fn packet(msg_type: u8, options: &[Vec<u8>]) -> Vec<u8> {
        let mut m = vec![msg_type];
        m.extend_from_slice(&XID);
        for o in options {
            m.extend_from_slice(o);
        }
        udp_packet(546, 547, &m)
    }

    fn udp_packet(src_port: u16, dst_port: u16, payload: &[u8]) -> Vec<u8> {
        let a = Ipv6Addressing {
            src_mac: GUEST,
            dst_mac: MacAddr([0x33, 0x33, 0, 1, 0, 2]),
            src: guest_ll(),
            dst: ip("ff02::1:2"),
            hop_limit: 1,
        };
        let mut f = udp6_frame(&a, src_port, dst_port, payload).unwrap();
        f.split_off(ETHERNET_HEADER_LEN)
    }

    fn client_id() -> Vec<u8> {
        opt(1, &CLIENT_DUID)
    }

    fn server_id() -> Vec<u8> {
        opt(2, &SERVER_DUID)
    }

    fn elapsed() -> Vec<u8> {
        opt(8, &[0, 0])
    }

    /// ORO for DNS servers, domain list, FQDN and SNTP, as dhclient asks.
    fn oro() -> Vec<u8> {
        opt(6, &[0, 23, 0, 24, 0, 39, 0, 31])
    }

    /// What `dhclient -6 -S` sends.
    fn information_request() -> Vec<u8> {
        packet(11, &[client_id(), elapsed(), oro()])
    }

    fn solicit(rapid: bool) -> Vec<u8> {
        let mut o = vec![client_id(), elapsed(), oro(), ia_na(IAID, &[])];
        if rapid {
            o.push(opt(14, &[]));
        }
        packet(1, &o)
    }

    fn request(kind: u8) -> Vec<u8> {
        packet(
            kind,
            &[
                client_id(),
                server_id(),
                elapsed(),
                oro(),
                ia_na(IAID, &[ip("2001:db8:aaaa:bbbb::100")]),
            ],
        )
    }

    fn rebind() -> Vec<u8> {
        packet(
            6,
            &[
                client_id(),
                elapsed(),
                oro(),
                ia_na(IAID, &[ip("2001:db8:aaaa:bbbb::100")]),
            ],
        )
    }

    fn confirm(addrs: &[Ipv6Addr]) -> Vec<u8> {
        packet(4, &[client_id(), elapsed(), ia_na(IAID, addrs)])
    }

    fn answer_default(pkt: &[u8], stateful: bool) -> Outcome {
        answer(
            pkt,
            Some(GUEST),
            &sample_binding(),
            SERVER,
            &params(stateful),
        )
    }

    fn reply_of(o: Outcome) -> Reply {
        match o {
            Outcome::Reply(r) => r,
            o => panic!("not a plain reply: {o:?}"),
        }
    }

    fn refusal(o: Outcome) -> Option<Refusal> {
        match o {
            Outcome::Refused(r) => Some(r),
            _ => None,
        }
    }

    /// Checks the frame's headers and checksum by hand and decodes the
    /// DHCPv6 message with dhcproto.
    fn decode_reply(r: &Reply, dst_mac: MacAddr) -> (Message, Vec<u8>) {
        let a = Ipv6Addressing {
            src_mac: SERVER,
            dst_mac,
            src: ip("fe80::5eff:fe10:2030"),
            dst: guest_ll(),
            hop_limit: 64,
        };
        let udp = check_frame(&r.frame, &a, 17);
        assert_eq!(&udp[0..2], &547u16.to_be_bytes());
        assert_eq!(&udp[2..4], &546u16.to_be_bytes());
        assert_eq!(u16::from_be_bytes([udp[4], udp[5]]) as usize, udp.len());
        let payload = udp[8..].to_vec();
        let msg = Message::decode(&mut Decoder::new(&payload)).unwrap();
        assert_eq!(msg.xid(), XID, "transaction id echoed");
        // Encoding what was decoded gives the same bytes but for option
        // order and option 24, which dhcproto would compress.
        (msg, payload)
    }

    fn get(m: &Message, code: OptionCode) -> Option<&DhcpOption> {
        m.opts().get(code)
    }

    fn status_of(opts: &DhcpOptions) -> Option<(Status, String)> {
        match opts.get(OptionCode::StatusCode) {
            Some(DhcpOption::StatusCode(s)) => Some((s.status, s.msg.clone())),
            _ => None,
        }
    }

    fn ianas(m: &Message) -> Vec<IANA> {
        m.opts()
            .iter()
            .filter_map(|o| match o {
                DhcpOption::IANA(ia) => Some(ia.clone()),
                _ => None,
            })
            .collect()
    }

    /// The raw bytes of the first option `code` in an encoded message.
    fn raw_option(payload: &[u8], code: u16) -> Option<Vec<u8>> {
        let mut b = &payload[4..];
        while b.len() >= 4 {
            let c = u16::from_be_bytes([b[0], b[1]]);
            let len = u16::from_be_bytes([b[2], b[3]]) as usize;
            if c == code {
                return Some(b[4..4 + len].to_vec());
            }
            b = &b[4 + len..];
        }
        None
    }

    fn expected_domain_list() -> Vec<u8> {
        b"\x07example\x03com\x00\x03sub\x07example\x03com\x00".to_vec()
    }

    /// Client id, server id, DNS servers and the uncompressed domain list.
    fn check_common(m: &Message, payload: &[u8], with_config: bool) {
        assert_eq!(
            get(m, OptionCode::ClientId),
            Some(&DhcpOption::ClientId(CLIENT_DUID.to_vec()))
        );
        assert_eq!(
            get(m, OptionCode::ServerId),
            Some(&DhcpOption::ServerId(SERVER_DUID.to_vec()))
        );
        if with_config {
            assert_eq!(
                get(m, OptionCode::DomainNameServers),
                Some(&DhcpOption::DomainNameServers(vec![
                    ip("2001:db8:100::1"),
                    ip("2001:db8:200::2")
                ]))
            );
            assert_eq!(
                get(m, OptionCode::DomainSearchList),
                Some(&DhcpOption::DomainSearchList(vec![
                    Name::from_ascii("example.com.").unwrap(),
                    Name::from_ascii("sub.example.com.").unwrap(),
                ]))
            );
            assert_eq!(raw_option(payload, 24), Some(expected_domain_list()));
        } else {
            assert_eq!(get(m, OptionCode::DomainNameServers), None);
            assert_eq!(raw_option(payload, 24), None);
        }
    }

    fn check_assigned(ia: &IANA, addr: Ipv6Addr) {
        assert_eq!((ia.id, ia.t1, ia.t2), (IAID, 1800, 2880));
        assert_eq!(
            ia.opts.get(OptionCode::IAAddr),
            Some(&DhcpOption::IAAddr(IAAddr {
                addr,
                preferred_life: 3600,
                valid_life: 7200,
                opts: DhcpOptions::new(),
            }))
        );
        assert_eq!(status_of(&ia.opts), None);
    }

    #[test]
    fn kind_names() {
        let all = [
            (Kind::InformationRequest, "INFORMATION-REQUEST"),
            (Kind::Solicit, "SOLICIT"),
            (Kind::Advertise, "ADVERTISE"),
            (Kind::Request, "REQUEST"),
            (Kind::Renew, "RENEW"),
            (Kind::Rebind, "REBIND"),
            (Kind::Confirm, "CONFIRM"),
            (Kind::Release, "RELEASE"),
            (Kind::Decline, "DECLINE"),
            (Kind::Reply, "REPLY"),
        ];
        for (k, n) in all {
            assert_eq!(k.name(), n);
        }
    }

    #[test]
    fn server_duid_is_duid_ll() {
        assert_eq!(server_duid(SERVER), SERVER_DUID);
    }

    #[test]
    fn information_request_as_dhclient_sends_it() {
        for stateful in [false, true] {
            let r = reply_of(answer_default(&information_request(), stateful));
            assert_eq!(r.request, Kind::InformationRequest);
            assert_eq!(r.kind, Kind::Reply);
            assert_eq!(r.client_mac, GUEST);
            assert_eq!(r.addr, None);
            let (m, payload) = decode_reply(&r, GUEST);
            assert_eq!(m.msg_type(), MessageType::Reply);
            check_common(&m, &payload, true);
            assert_eq!(m.opts().iter().count(), 4);
            assert_eq!(
                payload.len(),
                4 + 18 + 14 + 36 + 4 + expected_domain_list().len()
            );
        }
    }

    #[test]
    fn information_request_variants() {
        let b = sample_binding();
        // Without a client id (allowed), with our server id, with the
        // configuration left empty.
        let pkt = packet(11, &[elapsed(), server_id()]);
        let p = Params {
            nameservers: vec![],
            domains: vec![],
            ..params(false)
        };
        let r = reply_of(answer(&pkt, Some(GUEST), &b, SERVER, &p));
        let (m, _) = decode_reply(&r, GUEST);
        assert_eq!(get(&m, OptionCode::ClientId), None);
        assert_eq!(
            m.opts().iter().collect::<Vec<_>>(),
            [&DhcpOption::ServerId(SERVER_DUID.to_vec())]
        );
        // No binding data is needed.
        let mut bare = sample_binding();
        bare.subnet6 = None;
        bare.eui64 = None;
        bare.ip6 = None;
        assert!(matches!(
            answer(
                &information_request(),
                Some(GUEST),
                &bare,
                SERVER,
                &params(false)
            ),
            Outcome::Reply(_)
        ));
        // Another server's id; IA options (RFC 8415 16.12).
        let foreign = packet(11, &[client_id(), opt(2, &[0, 3, 0, 1, 1, 2, 3, 4, 5, 6])]);
        assert_eq!(
            refusal(answer_default(&foreign, false)),
            Some(Refusal::OtherServer)
        );
        let with_ia = packet(11, &[client_id(), ia_na(1, &[])]);
        assert_eq!(
            refusal(answer_default(&with_ia, false)),
            Some(Refusal::Malformed)
        );
        let with_pd = packet(11, &[client_id(), opt(25, &[0; 12])]);
        assert_eq!(
            refusal(answer_default(&with_pd, false)),
            Some(Refusal::Malformed)
        );
    }

    #[test]
    fn solicit_gets_an_advertise() {
        let r = reply_of(answer_default(&solicit(false), true));
        assert_eq!((r.request, r.kind), (Kind::Solicit, Kind::Advertise));
        assert_eq!(r.addr, Some(ip("2001:db8:aaaa:bbbb::100")));
        let (m, payload) = decode_reply(&r, GUEST);
        assert_eq!(m.msg_type(), MessageType::Advertise);
        check_common(&m, &payload, true);
        let ias = ianas(&m);
        assert_eq!(ias.len(), 1);
        check_assigned(&ias[0], ip("2001:db8:aaaa:bbbb::100"));
        assert_eq!(
            get(&m, OptionCode::Preference),
            Some(&DhcpOption::Preference(255))
        );
        assert_eq!(get(&m, OptionCode::RapidCommit), None);
        assert_eq!(get(&m, OptionCode::StatusCode), None);
    }

    #[test]
    fn solicit_with_rapid_commit_gets_a_reply() {
        let r = reply_of(answer_default(&solicit(true), true));
        assert_eq!((r.request, r.kind), (Kind::Solicit, Kind::Reply));
        let (m, payload) = decode_reply(&r, GUEST);
        assert_eq!(m.msg_type(), MessageType::Reply);
        check_common(&m, &payload, true);
        check_assigned(&ianas(&m)[0], ip("2001:db8:aaaa:bbbb::100"));
        assert_eq!(
            get(&m, OptionCode::RapidCommit),
            Some(&DhcpOption::RapidCommit)
        );
        assert_eq!(get(&m, OptionCode::Preference), None);
    }

    #[test]
    fn eui64_when_no_ip6_and_nothing_without_either() {
        let mut b = sample_binding();
        b.ip6 = None;
        let r = reply_of(answer(&request(3), Some(GUEST), &b, SERVER, &params(true)));
        let (m, _) = decode_reply(&r, GUEST);
        let eui64 = ip("2001:db8:aaaa:bbbb:a86b:39ff:fe22:3344");
        check_assigned(&ianas(&m)[0], eui64);
        assert_eq!(r.addr, Some(eui64));

        b.eui64 = None;
        let r = reply_of(answer(
            &solicit(false),
            Some(GUEST),
            &b,
            SERVER,
            &params(true),
        ));
        let (m, _) = decode_reply(&r, GUEST);
        assert_eq!(r.kind, Kind::Advertise);
        assert_eq!(r.addr, None);
        assert!(ianas(&m).is_empty());
        assert_eq!(status_of(m.opts()).unwrap().0, Status::NoAddrsAvail);
    }

    #[test]
    fn stateless_mode_offers_no_addresses() {
        for rapid in [false, true] {
            let r = reply_of(answer_default(&solicit(rapid), false));
            assert_eq!(r.kind, Kind::Advertise);
            assert_eq!(r.addr, None);
            let (m, payload) = decode_reply(&r, GUEST);
            assert_eq!(m.msg_type(), MessageType::Advertise);
            check_common(&m, &payload, true);
            assert!(ianas(&m).is_empty());
            assert_eq!(status_of(m.opts()).unwrap().0, Status::NoAddrsAvail);
            assert_eq!(get(&m, OptionCode::RapidCommit), None);
        }
        for (kind, status) in [
            (3, Status::NoAddrsAvail),
            (5, Status::NoBinding),
            (6, Status::NoBinding),
        ] {
            let pkt = if kind == 6 { rebind() } else { request(kind) };
            let r = reply_of(answer_default(&pkt, false));
            assert_eq!(r.kind, Kind::Reply);
            assert_eq!(r.addr, None);
            let (m, payload) = decode_reply(&r, GUEST);
            check_common(&m, &payload, true);
            let ias = ianas(&m);
            assert_eq!(ias.len(), 1);
            assert_eq!((ias[0].id, ias[0].t1, ias[0].t2), (IAID, 0, 0));
            assert_eq!(ias[0].opts.get(OptionCode::IAAddr), None);
            assert_eq!(status_of(&ias[0].opts).unwrap().0, status, "type {kind}");
            assert_eq!(status_of(m.opts()), None);
        }
        // A Solicit without IA_NA in stateful mode: nothing to offer either.
        let no_ia = packet(1, &[client_id(), elapsed()]);
        let r = reply_of(answer_default(&no_ia, true));
        let (m, _) = decode_reply(&r, GUEST);
        assert_eq!(status_of(m.opts()).unwrap().0, Status::NoAddrsAvail);
    }

    #[test]
    fn request_renew_rebind() {
        for (pkt, kind) in [
            (request(3), Kind::Request),
            (request(5), Kind::Renew),
            (rebind(), Kind::Rebind),
        ] {
            let r = reply_of(answer_default(&pkt, true));
            assert_eq!((r.request, r.kind), (kind, Kind::Reply));
            assert_eq!(r.addr, Some(ip("2001:db8:aaaa:bbbb::100")));
            let (m, payload) = decode_reply(&r, GUEST);
            assert_eq!(m.msg_type(), MessageType::Reply);
            check_common(&m, &payload, true);
            let ias = ianas(&m);
            assert_eq!(ias.len(), 1);
            check_assigned(&ias[0], ip("2001:db8:aaaa:bbbb::100"));
            assert_eq!(ias[0].opts.iter().count(), 1);
            assert_eq!(status_of(m.opts()), None);
        }
    }

    #[test]
    fn renew_withdraws_other_addresses() {
        let old = ip("2001:db8:aaaa:bbbb::99");
        let pkt = packet(
            5,
            &[
                client_id(),
                server_id(),
                ia_na(IAID, &[old, ip("2001:db8:aaaa:bbbb::100")]),
            ],
        );
        let r = reply_of(answer_default(&pkt, true));
        let (m, _) = decode_reply(&r, GUEST);
        let ia = &ianas(&m)[0];
        let addrs: Vec<_> = ia
            .opts
            .iter()
            .map(|o| match o {
                DhcpOption::IAAddr(a) => (a.addr, a.preferred_life, a.valid_life),
                o => panic!("{o:?}"),
            })
            .collect();
        assert_eq!(
            addrs,
            [(ip("2001:db8:aaaa:bbbb::100"), 3600, 7200), (old, 0, 0)]
        );
    }

    #[test]
    fn one_address_for_the_first_ia_only() {
        let pkt = packet(
            1,
            &[client_id(), ia_na(7, &[]), ia_na(8, &[]), ia_na(9, &[])],
        );
        let r = reply_of(answer_default(&pkt, true));
        let (m, _) = decode_reply(&r, GUEST);
        let ias = ianas(&m);
        assert_eq!(ias.iter().map(|i| i.id).collect::<Vec<_>>(), [7, 8, 9]);
        assert!(ias[0].opts.get(OptionCode::IAAddr).is_some());
        for ia in &ias[1..] {
            assert_eq!(ia.opts.get(OptionCode::IAAddr), None);
            assert_eq!(status_of(&ia.opts).unwrap().0, Status::NoAddrsAvail);
        }
        // Many IAs: only the first few are answered.
        let many: Vec<_> = std::iter::once(client_id())
            .chain((0..100).map(|i| ia_na(i, &[])))
            .collect();
        let r = reply_of(answer_default(&packet(1, &many), true));
        let (m, _) = decode_reply(&r, GUEST);
        assert_eq!(ianas(&m).len(), MAX_IAS);
    }

    #[test]
    fn server_identifier_rules() {
        let foreign = opt(2, &[0, 3, 0, 1, 1, 2, 3, 4, 5, 6]);
        for kind in [3u8, 5, 8, 9] {
            let pkt = packet(kind, &[client_id(), foreign.clone(), ia_na(IAID, &[])]);
            assert_eq!(
                refusal(answer_default(&pkt, true)),
                Some(Refusal::OtherServer),
                "type {kind}"
            );
            let pkt = packet(kind, &[client_id(), ia_na(IAID, &[])]);
            assert_eq!(
                refusal(answer_default(&pkt, true)),
                Some(Refusal::Malformed),
                "type {kind} without server id"
            );
        }
        for kind in [1u8, 4, 6] {
            let pkt = packet(kind, &[client_id(), server_id(), ia_na(IAID, &[])]);
            assert_eq!(
                refusal(answer_default(&pkt, true)),
                Some(Refusal::Malformed),
                "type {kind} with a server id"
            );
        }
        for kind in [1u8, 3, 4, 5, 6, 8, 9] {
            let pkt = packet(kind, &[server_id(), ia_na(IAID, &[])]);
            assert_eq!(
                refusal(answer_default(&pkt, true)),
                Some(Refusal::Malformed),
                "type {kind} without client id"
            );
        }
    }

    #[test]
    fn confirm_checks_on_link() {
        let on = ip("2001:db8:aaaa:bbbb::100");
        let r = reply_of(answer_default(&confirm(&[on]), false));
        assert_eq!(
            (r.request, r.kind, r.addr),
            (Kind::Confirm, Kind::Reply, None)
        );
        let (m, payload) = decode_reply(&r, GUEST);
        check_common(&m, &payload, false);
        assert_eq!(status_of(m.opts()).unwrap().0, Status::Success);
        assert!(ianas(&m).is_empty());

        let r = reply_of(answer_default(&confirm(&[on, ip("2001:db8:1::1")]), true));
        let (m, _) = decode_reply(&r, GUEST);
        assert_eq!(status_of(m.opts()).unwrap().0, Status::NotOnLink);

        // An IA_TA address counts as well.
        let mut ta = 5u32.to_be_bytes().to_vec();
        ta.extend(opt(
            5,
            &[ip("2001:db8:1::1").octets().to_vec(), vec![0; 8]].concat(),
        ));
        let pkt = packet(4, &[client_id(), ia_na(IAID, &[on]), opt(4, &ta)]);
        let r = reply_of(answer_default(&pkt, true));
        let (m, _) = decode_reply(&r, GUEST);
        assert_eq!(status_of(m.opts()).unwrap().0, Status::NotOnLink);

        assert_eq!(
            refusal(answer_default(&confirm(&[]), true)),
            Some(Refusal::Malformed)
        );
        let mut b = sample_binding();
        b.subnet6 = None;
        assert_eq!(
            refusal(answer(
                &confirm(&[on]),
                Some(GUEST),
                &b,
                SERVER,
                &params(true)
            )),
            Some(Refusal::Unconfigured)
        );
    }

    #[test]
    fn release_and_decline() {
        for stateful in [true, false] {
            for (kind, name) in [(8u8, Kind::Release), (9, Kind::Decline)] {
                let out = answer_default(&request(kind), stateful);
                let r = match (&out, kind) {
                    (Outcome::Released(r), 8) | (Outcome::Declined(r), 9) => r.clone(),
                    _ => panic!("{out:?}"),
                };
                assert_eq!(out.reply(), Some(&r));
                assert_eq!((r.request, r.kind), (name, Kind::Reply));
                assert_eq!(r.addr, Some(ip("2001:db8:aaaa:bbbb::100")));
                let (m, payload) = decode_reply(&r, GUEST);
                check_common(&m, &payload, false);
                assert_eq!(status_of(m.opts()).unwrap().0, Status::Success);
                let ias = ianas(&m);
                if stateful {
                    assert!(ias.is_empty());
                } else {
                    assert_eq!(ias.len(), 1);
                    assert_eq!(status_of(&ias[0].opts).unwrap().0, Status::NoBinding);
                }
            }
        }
    }

    #[test]
    fn mac_checks() {
        let b = sample_binding();
        let p = params(true);
        for pkt in [information_request(), solicit(false), request(3)] {
            assert_eq!(
                refusal(answer(&pkt, Some(OTHER), &b, SERVER, &p)),
                Some(Refusal::SpoofedMac)
            );
        }
        let mut spoof_ok = sample_binding();
        spoof_ok.macspoof = true;
        let r = reply_of(answer(&request(3), Some(OTHER), &spoof_ok, SERVER, &p));
        assert_eq!(r.client_mac, OTHER);
        decode_reply(&r, OTHER);
        // Without a hardware address the reply goes to the binding's MAC.
        let r = reply_of(answer(&request(3), None, &b, SERVER, &p));
        assert_eq!(r.client_mac, GUEST);
        decode_reply(&r, GUEST);
        // A DUID from another interface's MAC is fine.
        let mut duid = CLIENT_DUID;
        duid[13] = 0x99;
        let pkt = packet(11, &[opt(1, &duid)]);
        assert!(matches!(
            answer(&pkt, Some(GUEST), &b, SERVER, &p),
            Outcome::Reply(_)
        ));
    }

    #[test]
    fn not_requests() {
        let b = sample_binding();
        let p = params(true);
        let refused = |pkt: &[u8]| refusal(answer(pkt, Some(GUEST), &b, SERVER, &p));
        let mut m = vec![11];
        m.extend_from_slice(&XID);
        m.extend(client_id());
        assert_eq!(refused(&udp_packet(546, 547, &m)), None);
        assert_eq!(
            refused(&udp_packet(547, 547, &m)),
            Some(Refusal::NotARequest)
        );
        assert_eq!(
            refused(&udp_packet(546, 546, &m)),
            Some(Refusal::NotARequest)
        );
        // Advertise, Reply, Reconfigure, Relay-forward, unknown.
        for t in [2u8, 7, 10, 12, 13, 200] {
            assert_eq!(
                refused(&packet(t, &[client_id()])),
                Some(Refusal::NotARequest),
                "{t}"
            );
        }
        assert_eq!(
            refused(&udp_packet(546, 547, &[])),
            Some(Refusal::Malformed)
        );
        assert_eq!(
            refused(&udp_packet(546, 547, &[11, 1, 2])),
            Some(Refusal::Malformed)
        );
        assert_eq!(refused(&[]), Some(Refusal::Malformed));
        // An ICMPv6 packet on this queue.
        let mut icmp = udp_packet(546, 547, &m);
        icmp[6] = 58;
        assert_eq!(refused(&icmp), Some(Refusal::Malformed));
    }

    #[test]
    fn options_dhcproto_would_misread() {
        let ok = |extra: Vec<u8>| {
            let pkt = packet(11, &[client_id(), extra]);
            refusal(answer_default(&pkt, false))
        };
        let bad = Some(Refusal::Malformed);
        // Short options whose decoders subtract or read fixed sizes.
        assert_eq!(ok(opt(13, &[])), bad);
        assert_eq!(ok(opt(13, &[0])), bad);
        assert_eq!(
            ok(opt(13, &[0, 0, 0xff, 0xfe])),
            bad,
            "status text not UTF-8"
        );
        assert_eq!(ok(opt(13, b"\0\0fine")), None);
        assert_eq!(ok(opt(11, &[0; 10])), bad);
        assert_eq!(ok(opt(16, &[0; 3])), bad);
        assert_eq!(ok(opt(17, &[0; 3])), bad);
        assert_eq!(
            ok(opt(17, &[0, 0, 0, 9, 0, 13, 0, 0])),
            bad,
            "nested status"
        );
        assert_eq!(ok(opt(17, &[0, 0, 0, 9, 0, 99, 0, 1, 7])), None);
        assert_eq!(ok(opt(7, &[])), bad);
        assert_eq!(ok(opt(8, &[0])), bad);
        assert_eq!(ok(opt(8, &[0, 0, 0])), bad);
        assert_eq!(ok(opt(12, &[0; 15])), bad);
        assert_eq!(ok(opt(14, &[0])), bad);
        assert_eq!(ok(opt(19, &[])), bad);
        assert_eq!(ok(opt(23, &[0; 17])), bad);
        assert_eq!(ok(opt(6, &[0, 23, 0])), bad);
        assert_eq!(ok(opt(9, &[12, 0])), bad, "relay message from a client");
        assert_eq!(ok(opt(2, &[0, 3])), bad, "DUID too short");
        assert_eq!(ok(opt(1, &[0; 131])), bad, "DUID too long");
        // Inside IAs.
        assert_eq!(ok(opt(3, &[0; 11])), bad);
        assert_eq!(ok(opt(4, &[0; 3])), bad);
        let mut ia = vec![0; 12];
        ia.extend(opt(5, &[0; 23]));
        assert_eq!(
            refusal(answer_default(
                &packet(1, &[client_id(), opt(3, &ia)]),
                true
            )),
            bad
        );
        let mut ia = vec![0; 12];
        ia.extend(opt(5, &[[0u8; 24].to_vec(), opt(13, &[0])].concat()));
        assert_eq!(
            refusal(answer_default(
                &packet(1, &[client_id(), opt(3, &ia)]),
                true
            )),
            bad
        );
        let mut pd = vec![0; 12];
        pd.extend(opt(26, &[0; 24]));
        assert_eq!(ok(opt(25, &pd)), bad);
        // Options that run past the end, and runaway nesting.
        let mut trunc = opt(16, &[0; 8]);
        trunc.truncate(10);
        assert_eq!(ok(trunc), bad);
        let mut deep = opt(13, &[0, 0]);
        for _ in 0..10 {
            deep = opt(3, &[[0u8; 12].to_vec(), deep].concat());
        }
        assert_eq!(
            refusal(answer_default(&packet(1, &[client_id(), deep]), true)),
            bad
        );
        // An NTP option dhcproto cannot decode: caught by the count check.
        assert_eq!(ok(opt(56, &[0, 9, 0, 0])), bad);
        // Unknown options pass.
        assert_eq!(ok(opt(999, &[1, 2, 3])), None);
    }

    fn xorshift(state: &mut u64) -> u64 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    }

    #[test]
    fn garbage_never_panics() {
        let b = sample_binding();
        let mut spoof_ok = sample_binding();
        spoof_ok.macspoof = true;
        let samples = vec![
            information_request(),
            solicit(false),
            solicit(true),
            request(3),
            request(5),
            rebind(),
            confirm(&[ip("2001:db8:aaaa:bbbb::100")]),
            request(8),
            request(9),
        ];
        let run = |pkt: &[u8]| {
            for binding in [&b, &spoof_ok] {
                for stateful in [false, true] {
                    let _ = answer(pkt, Some(GUEST), binding, SERVER, &params(stateful));
                }
            }
        };
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for s in &samples {
            for n in 0..=s.len() {
                run(&s[..n]);
            }
            // Mutate the DHCPv6 message only and re-frame it, so every
            // mutation reaches the option parsing.
            let msg = &s[48..];
            for i in 0..msg.len() {
                for x in [0x00, 0xff, 0x01, 0x80, 0x0d] {
                    let mut m = msg.to_vec();
                    m[i] = x;
                    run(&udp_packet(546, 547, &m));
                }
            }
            for _ in 0..1000 {
                let mut m = msg.to_vec();
                for _ in 0..1 + xorshift(&mut state) % 4 {
                    let i = (xorshift(&mut state) as usize) % m.len();
                    m[i] = xorshift(&mut state) as u8;
                }
                let cut = (xorshift(&mut state) as usize) % (m.len() + 1);
                run(&udp_packet(546, 547, &m));
                run(&udp_packet(546, 547, &m[..cut]));
            }
        }
        let mut random = vec![0u8; 120];
        for _ in 0..2000 {
            for byte in random.iter_mut() {
                *byte = xorshift(&mut state) as u8;
            }
            random[0] = 1 + (random[0] % 11);
            run(&udp_packet(546, 547, &random));
        }
    }
}
