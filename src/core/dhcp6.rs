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
mod tests;
