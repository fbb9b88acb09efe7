//! DHCPv4 for relay mode: request -> backend job -> reply datagram (pure).
//!
//! The UDP 67 thread hands over a datagram and where it arrived
//! ([`RecvCtx`]). [`parse`] reads the client's message ([`request4`],
//! borrowed from the datagram) and what the relay agent says in option 82
//! into a [`Request`], which the caller keeps ([`Request::into_owned`])
//! while the backend works. [`decide`] says whether the backend must be
//! asked (which [`JobKind`] for which [`Client`]), whether a NAK goes out at
//! once, or whether the request is ignored. When the backend's result is
//! back, [`answer`] builds the reply and says where it goes ([`Out`]).
//!
//! Options are written with dhcproto's encoder straight into the reply
//! buffer. Relay agent information (option 82) is the exception: it goes
//! back byte for byte as received, as the last option before End (RFC
//! 3046), since relays match their own bytes.
//!
//! Reply size: a reply must fit the client's maximum message size (option
//! 57, never below the 576-byte datagram every client takes; counted, as
//! ISC dhcpd does, with the IP and UDP headers). If it does not, optional
//! options are left out in this order until it does: broadcast address (28,
//! implied by the mask), domain name (15), DNS servers (6), TFTP server name
//! (66, siaddr still names the boot server), boot file name (67, the `file`
//! field still holds it when it fits). The rest (53, 54, 51, 58, 59, 1, 3,
//! 118, 61, 82) is always sent.

use std::net::{Ipv4Addr, SocketAddrV4};

use std::ops::{Deref, DerefMut};

use dhcproto::v4::relay::{RelayAgentInformation, RelayCode, RelayInfo};
use dhcproto::v4::{self, encode_long_opt_bytes, DhcpOption, MessageType, OptionCode};
use dhcproto::{Decodable, Decoder, Encodable, Encoder};

use crate::backend::{BackendError, BootClient, Client, JobKind, Lease, NoLease, Outcome};
use crate::core::boot;
pub use crate::core::bootp::CodeSet;
use crate::core::bootp::{self, put_addrs, ReplyHeader};
pub use crate::core::request4::MsgType;
use crate::core::request4::{self, nonzero, MIN_DATAGRAM};
use crate::core::Refusal;

pub const SERVER_PORT: u16 = 67;
pub const CLIENT_PORT: u16 = 68;

/// Longest relay agent information accepted (four full options, RFC 3396).
pub const MAX_RELAY_INFO: usize = 4 * 255;
const IP_UDP_HEADERS: usize = 28;
/// RFC 8357 relay source port sub-option of option 82.
const RELAY_PORT_SUBOPTION: u8 = 19;
/// Infinite lease (RFC 2131 §3.3).
const INFINITE: u32 = u32::MAX;

const NAK_NOT_YOURS: &str = "requested address is not assigned to this client";
const NAK_UNKNOWN: &str = "unknown client";
const NAK_NO_PREFIX: &str = "address not on a network served here";
const NAK_EXHAUSTED: &str = "no free address";
const NAK_NO_ADDRESS: &str = "no address requested";

/// Where a datagram arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecvCtx {
    /// UDP source of the datagram (the relay, or a client that unicasts).
    pub src: SocketAddrV4,
    /// Address of the receiving interface.
    pub local: Ipv4Addr,
    pub ifindex: u32,
}

/// The `[relay]` settings the answers depend on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub server_ident: Option<Ipv4Addr>,
    /// NAK what cannot be honoured instead of staying silent.
    pub authoritative: bool,
    /// Lease time asked of the backend when confirming a lease, seconds.
    pub lease_time: u32,
    /// DNS servers when the lease names none.
    pub nameservers: Vec<Ipv4Addr>,
    pub domain: Option<String>,
}

/// What a reply is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReplyKind {
    Offer,
    Ack,
    Nak,
}

impl ReplyKind {
    pub fn name(self) -> &'static str {
        match self {
            ReplyKind::Offer => "DHCPOFFER",
            ReplyKind::Ack => "DHCPACK",
            ReplyKind::Nak => "DHCPNAK",
        }
    }
}

/// A request as the relay core sees it: the client's message and what the
/// relay agent says about it in option 82. It reads as the message itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request<'a> {
    pub dhcp: request4::Request<'a>,
    /// Option 82 sub-option 5 (RFC 3527).
    pub link_selection: Option<Ipv4Addr>,
    /// Option 82 carried sub-option 19: answer to the relay's source port (RFC 8357).
    pub relay_port: bool,
}

impl<'a> Deref for Request<'a> {
    type Target = request4::Request<'a>;

    fn deref(&self) -> &Self::Target {
        &self.dhcp
    }
}

impl DerefMut for Request<'_> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.dhcp
    }
}

impl Request<'_> {
    /// A copy that does not borrow from the datagram, to keep while the
    /// backend works.
    pub fn into_owned(self) -> Request<'static> {
        Request {
            dhcp: self.dhcp.into_owned(),
            link_selection: self.link_selection,
            relay_port: self.relay_port,
        }
    }
}

/// Reads a BOOTREQUEST (the UDP payload): [`request4::Request::parse`],
/// then option 82, refused as `Malformed` when its sub-options do not parse
/// or it is longer than [`MAX_RELAY_INFO`].
pub fn parse(payload: &[u8]) -> Result<Request<'_>, Refusal> {
    let dhcp = request4::Request::parse(payload)?;
    let mut req = Request {
        dhcp,
        link_selection: None,
        relay_port: false,
    };
    if let Some(raw) = req.dhcp.relay_info.as_deref() {
        if raw.len() > MAX_RELAY_INFO {
            return Err(Refusal::Malformed);
        }
        let mut d = Decoder::new(raw);
        let info = RelayAgentInformation::decode(&mut d).map_err(|_| Refusal::Malformed)?;
        // The decoder stops at the first sub-option it cannot read.
        if !d.buffer().is_empty() {
            return Err(Refusal::Malformed);
        }
        if let Some(RelayInfo::LinkSelection(a)) = info.get(RelayCode::LinkSelection) {
            req.link_selection = Some(*a);
        }
        req.relay_port = info.get(RelayCode::Unknown(RELAY_PORT_SUBOPTION)).is_some();
    }
    Ok(req)
}

/// A DHCPREQUEST's client state (RFC 2131 §4.3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientState {
    /// Answering an OFFER: server identifier and requested address, no ciaddr.
    Selecting,
    /// After a reboot: requested address, no server identifier, no ciaddr.
    InitReboot,
    /// Extending its lease by unicast to its server: ciaddr only.
    Renewing,
    /// Extending its lease by broadcast to any server: ciaddr only.
    Rebinding,
}

impl ClientState {
    pub fn name(self) -> &'static str {
        match self {
            ClientState::Selecting => "SELECTING",
            ClientState::InitReboot => "INIT-REBOOT",
            ClientState::Renewing => "RENEWING",
            ClientState::Rebinding => "REBINDING",
        }
    }
}

/// The state of a DHCPREQUEST; None for other messages and for a request
/// that fits no state.
///
/// RENEWING and REBINDING differ only in the IP destination: `to_broadcast`
/// says whether the datagram was sent to a broadcast address. Unknown
/// (None), a relayed request counts as REBINDING (relays forward only
/// broadcasts) and a direct one as RENEWING. The answer is the same.
pub fn client_state(req: &Request, to_broadcast: Option<bool>) -> Option<ClientState> {
    if req.msg != MsgType::Request {
        return None;
    }
    match (req.server_id, req.requested, nonzero(req.ciaddr)) {
        (Some(_), Some(_), None) => Some(ClientState::Selecting),
        (None, Some(_), None) => Some(ClientState::InitReboot),
        (None, None, Some(_)) => {
            if to_broadcast.unwrap_or(!req.giaddr.is_unspecified()) {
                Some(ClientState::Rebinding)
            } else {
                Some(ClientState::Renewing)
            }
        }
        _ => None,
    }
}

/// The server identifier (option 54) and the replies' source address:
/// `server_ident`, else the receiving interface's address. Stable, so that
/// a client that unicasts its renewal reaches a live address.
pub fn server_id(_req: &Request, ctx: &RecvCtx, settings: &Settings) -> Ipv4Addr {
    settings.server_ident.unwrap_or(ctx.local)
}

/// The address that picks the client's subnet: link selection (option 82
/// sub-option 5), else subnet selection (option 118), else giaddr, else the
/// requested address, else ciaddr, else the receiving interface's address.
pub fn origin(req: &Request, ctx: &RecvCtx) -> Ipv4Addr {
    req.link_selection
        .and_then(nonzero)
        .or(req.subnet_selection.and_then(nonzero))
        .or(nonzero(req.giaddr))
        .or(req.requested)
        .or(nonzero(req.ciaddr))
        .unwrap_or(ctx.local)
}

/// What the client is for PXE (options 55, 60, 77, 93): see
/// [`boot::classify`].
pub fn boot_client(req: &Request) -> BootClient {
    boot::classify(&req.boot_ask())
}

/// The client as a backend job sees it.
pub fn client(req: &Request, ctx: &RecvCtx) -> Client {
    Client {
        mac: req.chaddr,
        hostname: req.hostname.as_deref().map(str::to_owned),
        origin: origin(req, ctx),
        boot: boot_client(req),
    }
}

/// What to do with a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Run this job on the backend, then [`answer`].
    Ask(JobKind, Client),
    /// Send this at once (a NAK that needs no backend).
    Reply(Out),
    /// No job and no answer.
    Ignore(Refusal),
}

/// Decides what a request needs.
///
/// DISCOVER -> Offer. REQUEST naming another server -> ignored; else Confirm
/// of the requested address (SELECTING, INIT-REBOOT) or of ciaddr
/// (RENEWING, REBINDING); a REQUEST with neither -> NAK when authoritative.
/// RELEASE (ciaddr) and DECLINE (requested address) are recorded unless
/// they name another server; INFORM -> Inform for ciaddr, or for the
/// source address of a client that left ciaddr empty and was not relayed.
///
/// A lease the daemon remembers is attached to the job by the caller; the
/// decision does not depend on it.
pub fn decide(req: &Request, ctx: &RecvCtx, settings: &Settings) -> Step {
    let ours = server_id(req, ctx, settings);
    let other_server = req.server_id.is_some_and(|s| s != ours);
    let ask = |kind| Step::Ask(kind, client(req, ctx));
    match req.msg {
        MsgType::Discover => ask(JobKind::Offer),
        MsgType::Request => {
            if other_server {
                return Step::Ignore(Refusal::OtherServer);
            }
            // Option 50 wins over ciaddr, as ISC dhcpd does, for the
            // clients that send both.
            match req.requested.or(nonzero(req.ciaddr)) {
                Some(addr) => ask(JobKind::Confirm {
                    addr,
                    lease_secs: settings.lease_time,
                }),
                None if settings.authoritative => {
                    match build(req, ctx, settings, Body::Nak(NAK_NO_ADDRESS)) {
                        Some(out) => Step::Reply(out),
                        None => Step::Ignore(Refusal::Malformed),
                    }
                }
                None => Step::Ignore(Refusal::NoClientState),
            }
        }
        MsgType::Release | MsgType::Decline if other_server => Step::Ignore(Refusal::OtherServer),
        MsgType::Release => match nonzero(req.ciaddr) {
            Some(addr) => ask(JobKind::Release { addr }),
            None => Step::Ignore(Refusal::Malformed),
        },
        MsgType::Decline => match req.requested {
            Some(addr) => ask(JobKind::Decline { addr }),
            None => Step::Ignore(Refusal::Malformed),
        },
        MsgType::Inform => {
            let direct = || {
                Some(*ctx.src.ip()).filter(|a| !a.is_unspecified() && req.giaddr.is_unspecified())
            };
            match nonzero(req.ciaddr).or_else(direct) {
                Some(addr) => ask(JobKind::Inform { addr }),
                None => Step::Ignore(Refusal::Malformed),
            }
        }
    }
}

/// A reply datagram and where it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Out {
    pub kind: ReplyKind,
    /// The DHCP message (UDP payload).
    pub payload: Vec<u8>,
    pub dest: SocketAddrV4,
    /// Set for a broadcast to a client without an address: send it out of
    /// this interface (the one the request came in on).
    pub broadcast_ifindex: Option<u32>,
    /// Source address (the server identifier).
    pub source: Ipv4Addr,
    /// yiaddr (OFFER/ACK), the client's address (ACK to an INFORM), None (NAK).
    pub addr: Option<Ipv4Addr>,
}

/// The reply to a request once the backend's result is there; None means
/// silence.
///
/// A lease gives an OFFER (Offer), an ACK (Confirm) or an ACK without
/// yiaddr and lease times (Inform). No lease for a Confirm gives a NAK when
/// authoritative; anything else without a lease, RELEASE, DECLINE and every
/// backend error give silence: a backend that cannot be reached must not
/// take clients' addresses away. A lease that is not the one asked for, or
/// whose address is outside its network, is silence too: it cannot be
/// handed out as it is.
pub fn answer(
    req: &Request,
    ctx: &RecvCtx,
    settings: &Settings,
    job: &JobKind,
    outcome: &Result<Outcome, BackendError>,
) -> Option<Out> {
    let Ok(outcome) = outcome else {
        return None;
    };
    let usable = |l: &Lease| !l.addr.is_unspecified() && l.network.contains(&l.addr);
    let body = match (job, outcome) {
        (JobKind::Offer, Outcome::Lease(l)) if usable(l) => Body::Offer(l),
        (JobKind::Confirm { addr, .. }, Outcome::Lease(l)) if l.addr == *addr && usable(l) => {
            Body::Ack(l)
        }
        (JobKind::Inform { addr }, Outcome::Lease(l)) => Body::InformAck(l, *addr),
        (JobKind::Confirm { .. }, Outcome::NoLease(why)) if settings.authoritative => {
            Body::Nak(match why {
                NoLease::NotYours => NAK_NOT_YOURS,
                NoLease::UnknownDevice => NAK_UNKNOWN,
                NoLease::NoPrefix => NAK_NO_PREFIX,
                NoLease::PoolExhausted => NAK_EXHAUSTED,
            })
        }
        _ => return None,
    };
    build(req, ctx, settings, body)
}

/// Where a reply goes (RFC 2131 §4.1): to the relay (giaddr) on port 67, or
/// on the relay's source port when it asked for that (RFC 8357); else to
/// ciaddr (not for a NAK); else broadcast on the receiving interface.
/// (RFC 2131 would unicast to yiaddr at chaddr when the broadcast bit is
/// clear; a UDP socket cannot address a host that has no ARP entry yet.)
pub fn destination(req: &Request, ctx: &RecvCtx, kind: ReplyKind) -> (SocketAddrV4, Option<u32>) {
    if let Some(relay) = nonzero(req.giaddr) {
        let port = match ctx.src.port() {
            p if req.relay_port && p != 0 => p,
            _ => SERVER_PORT,
        };
        return (SocketAddrV4::new(relay, port), None);
    }
    match nonzero(req.ciaddr) {
        Some(ci) if kind != ReplyKind::Nak => (SocketAddrV4::new(ci, CLIENT_PORT), None),
        _ => (
            SocketAddrV4::new(Ipv4Addr::BROADCAST, CLIENT_PORT),
            Some(ctx.ifindex),
        ),
    }
}

/// What a reply says.
#[derive(Debug, Clone, Copy)]
enum Body<'a> {
    Offer(&'a Lease),
    Ack(&'a Lease),
    /// ACK to an INFORM from this address.
    InformAck(&'a Lease, Ipv4Addr),
    Nak(&'static str),
}

impl Body<'_> {
    fn kind(&self) -> ReplyKind {
        match self {
            Body::Offer(_) => ReplyKind::Offer,
            Body::Ack(_) | Body::InformAck(..) => ReplyKind::Ack,
            Body::Nak(_) => ReplyKind::Nak,
        }
    }

    fn lease(&self) -> Option<&Lease> {
        match *self {
            Body::Offer(l) | Body::Ack(l) | Body::InformAck(l, _) => Some(l),
            Body::Nak(_) => None,
        }
    }
}

// Optional options, in the order they are left out of a reply that is too
// large (see the module documentation).
const OPT_BROADCAST: u8 = 1;
const OPT_DOMAIN: u8 = 2;
const OPT_DNS: u8 = 4;
const OPT_TFTP: u8 = 8;
const OPT_BOOTFILE: u8 = 16;
const DROP_ORDER: [u8; 5] = [OPT_BROADCAST, OPT_DOMAIN, OPT_DNS, OPT_TFTP, OPT_BOOTFILE];

/// Largest DHCP message the client takes.
fn budget(req: &Request) -> usize {
    req.max_datagram() - IP_UDP_HEADERS
}

fn build(req: &Request, ctx: &RecvCtx, settings: &Settings, body: Body<'_>) -> Option<Out> {
    let kind = body.kind();
    let server = server_id(req, ctx, settings);
    let (dest, broadcast_ifindex) = destination(req, ctx, kind);
    let boot = body.lease().and_then(|l| l.boot.as_ref());
    let zero = Ipv4Addr::UNSPECIFIED;
    let (ciaddr, yiaddr, addr) = match body {
        Body::Offer(l) => (zero, l.addr, Some(l.addr)),
        Body::Ack(l) => (req.ciaddr, l.addr, Some(l.addr)),
        Body::InformAck(_, a) => (req.ciaddr, zero, Some(a)),
        Body::Nak(_) => (zero, zero, None),
    };
    // RFC 2131 §4.3.2: a relay broadcasts a NAK to the client only when the
    // broadcast bit says so.
    let flags = match kind {
        ReplyKind::Nak if !req.giaddr.is_unspecified() => req.flags.set_broadcast(),
        _ => req.flags,
    };
    let header = ReplyHeader {
        xid: req.xid,
        flags: flags.into(),
        ciaddr,
        yiaddr,
        siaddr: boot.and_then(|b| b.server).unwrap_or(zero),
        giaddr: req.giaddr,
        chaddr: req.chaddr,
        file: boot.map_or(&[], |b| b.file.as_bytes()),
    };

    let budget = budget(req);
    let mut payload = Vec::with_capacity(MIN_DATAGRAM - IP_UDP_HEADERS);
    for level in 0..=DROP_ORDER.len() {
        let omit = DROP_ORDER.iter().take(level).fold(0, |a, b| a | b);
        payload.clear();
        let mut e = Encoder::new(&mut payload);
        bootp::write_reply_header(&mut e, &header).ok()?;
        write_options(&mut e, req, settings, server, &body, omit).ok()?;
        bootp::pad_to_minimum(&mut e, 0).ok()?;
        if payload.len() <= budget {
            break;
        }
    }
    Some(Out {
        kind,
        payload,
        dest,
        broadcast_ifindex,
        source: server,
        addr,
    })
}

/// T1 at half the lease, T2 at 7/8 (RFC 2131 §4.4.5); an infinite lease is
/// never renewed.
fn renewal_times(lease: u32) -> (u32, u32) {
    if lease == INFINITE {
        return (INFINITE, INFINITE);
    }
    let t2 = u32::try_from(u64::from(lease) * 7 / 8).unwrap_or(INFINITE);
    (lease / 2, t2)
}

fn write_options(
    e: &mut Encoder<'_>,
    req: &Request,
    settings: &Settings,
    server: Ipv4Addr,
    body: &Body<'_>,
    omit: u8,
) -> v4::EncodeResult<()> {
    let keep = |opt: u8| omit & opt == 0;
    let msg_type = match body.kind() {
        ReplyKind::Offer => MessageType::Offer,
        ReplyKind::Ack => MessageType::Ack,
        ReplyKind::Nak => MessageType::Nak,
    };
    DhcpOption::MessageType(msg_type).encode(e)?;
    DhcpOption::ServerIdentifier(server).encode(e)?;
    if let Body::Nak(why) = body {
        encode_long_opt_bytes(OptionCode::Message, why.as_bytes(), e)?;
    }
    if let Some(lease) = body.lease() {
        // RFC 2131 §4.3.5: no lease times in the answer to an INFORM.
        if !matches!(body, Body::InformAck(..)) {
            let (t1, t2) = renewal_times(lease.lease_secs);
            DhcpOption::AddressLeaseTime(lease.lease_secs).encode(e)?;
            DhcpOption::Renewal(t1).encode(e)?;
            DhcpOption::Rebinding(t2).encode(e)?;
        }
        let net = lease.network;
        DhcpOption::SubnetMask(net.netmask()).encode(e)?;
        // A /31 (RFC 3021) or /32 has no broadcast address.
        if keep(OPT_BROADCAST) && net.prefix_len() < 31 {
            DhcpOption::BroadcastAddr(net.broadcast()).encode(e)?;
        }
        if let Some(gw) = lease.gateway {
            put_addrs(OptionCode::Router, &[gw], e)?;
        }
        if keep(OPT_DNS) {
            let dns = if lease.dns.is_empty() {
                &settings.nameservers
            } else {
                &lease.dns
            };
            put_addrs(OptionCode::DomainNameServer, dns, e)?;
        }
        if keep(OPT_DOMAIN) {
            if let Some(d) = settings.domain.as_deref() {
                encode_long_opt_bytes(OptionCode::DomainName, d.as_bytes(), e)?;
            }
        }
        if let Some(boot) = &lease.boot {
            if keep(OPT_TFTP) {
                // The name if there is one, else the server's address as text.
                let text;
                let name = match (&boot.server_name, boot.server) {
                    (Some(n), _) => n.as_bytes(),
                    (None, Some(a)) => {
                        text = a.to_string();
                        text.as_bytes()
                    }
                    (None, None) => &[],
                };
                encode_long_opt_bytes(OptionCode::TFTPServerName, name, e)?;
            }
            if keep(OPT_BOOTFILE) {
                encode_long_opt_bytes(OptionCode::BootfileName, boot.file.as_bytes(), e)?;
            }
        }
    }
    // RFC 3011 §3: the subnet selection option comes back as sent.
    if let Some(a) = req.subnet_selection {
        DhcpOption::SubnetSelection(a).encode(e)?;
    }
    // RFC 6842: the client identifier comes back in every reply.
    if let Some(id) = &req.client_id {
        encode_long_opt_bytes(OptionCode::ClientIdentifier, id, e)?;
    }
    // RFC 3046: the relay agent information last, as received. Chunks of
    // 255 are how a relay splits a longer one (RFC 3396).
    if let Some(info) = &req.relay_info {
        let code = u8::from(OptionCode::RelayAgentInformation);
        if info.is_empty() {
            e.write_slice(&[code, 0])?;
        }
        for chunk in info.chunks(255) {
            e.write_u8(code)?;
            e.write_u8(chunk.len() as u8)?;
            e.write_slice(chunk)?;
        }
    }
    DhcpOption::End.encode(e)
}

#[cfg(test)]
mod tests;
