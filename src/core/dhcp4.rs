//! DHCPv4 for VM host mode: request + binding -> reply frame (pure).
//!
//! The guest's request arrives as a bare IPv4 packet from NFQUEUE; the answer
//! is a complete Ethernet frame for the guest's interface. The request is read
//! by [`request4`](super::request4), borrowed from the packet (no
//! allocation), and the reply's options are encoded one by one with dhcproto
//! straight into the frame buffer, behind room for the Ethernet/IP/UDP
//! headers (no copy of the finished message), in the conventional order
//! (message type and server identifier first). `cargo bench --bench core`
//! prints the allocations a DISCOVER -> OFFER costs.

use std::net::{Ipv4Addr, SocketAddrV4};

use dhcproto::v4::{self, encode_long_opt_bytes, DhcpOption, MessageType, OptionCode};
use dhcproto::{Encodable, Encoder};
use ipnet::Ipv4Net;

use crate::core::binding::Binding;
use crate::core::boot::{self, Boot, BootClient, BootConfig};
use crate::core::bootp::{self, put_addrs, ReplyHeader};
use crate::core::frame::{self, Udp4Addressing, UDP4_HEADERS_LEN};
use crate::core::mac::MacAddr;
use crate::core::request4::{nonzero, MsgType, Request};
use crate::core::Refusal;

pub const SERVER_PORT: u16 = 67;
pub const CLIENT_PORT: u16 = 68;

/// Every client accepts a 576-byte IP datagram (RFC 2131 §2); a reply built
/// here stays below that unless the configuration is unusually large, so a
/// buffer this size is the only allocation.
const FRAME_CAPACITY: usize = frame::ETHERNET_HEADER_LEN + 576;
/// Sent in a NAK (option 56) so that the client's log says why.
const NAK_WRONG_ADDRESS: &str = "requested address is not assigned to this client";
const NAK_NO_ADDRESS: &str = "no address requested";

/// The `[dhcp]` settings the answer depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Params {
    pub lease_lifetime: u32,
    pub lease_renewal: u32,
    pub server_ip: Option<Ipv4Addr>,
    pub server_on_link: bool,
    pub nameservers: Vec<Ipv4Addr>,
    pub domain: Option<String>,
    /// The domain search list (option 119); empty: the domain of option 15.
    pub domains: Vec<String>,
    /// Network boot defaults for the keys a binding leaves unset.
    pub boot: BootConfig,
}

/// DHCP message types that appear in log lines and counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Discover,
    Request,
    Inform,
    Release,
    Decline,
    Offer,
    Ack,
    Nak,
}

impl From<MsgType> for Kind {
    fn from(t: MsgType) -> Kind {
        match t {
            MsgType::Discover => Kind::Discover,
            MsgType::Request => Kind::Request,
            MsgType::Inform => Kind::Inform,
            MsgType::Release => Kind::Release,
            MsgType::Decline => Kind::Decline,
        }
    }
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Discover => "DHCPDISCOVER",
            Kind::Request => "DHCPREQUEST",
            Kind::Inform => "DHCPINFORM",
            Kind::Release => "DHCPRELEASE",
            Kind::Decline => "DHCPDECLINE",
            Kind::Offer => "DHCPOFFER",
            Kind::Ack => "DHCPACK",
            Kind::Nak => "DHCPNAK",
        }
    }
}

/// A complete Ethernet frame to send on the binding's interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The request's type (DISCOVER, REQUEST, INFORM).
    pub request: Kind,
    /// OFFER, ACK or NAK.
    pub kind: Kind,
    pub client_mac: MacAddr,
    /// yiaddr (OFFER/ACK), ciaddr (INFORM ACK), None for NAK.
    pub addr: Option<Ipv4Addr>,
    /// The boot file offered, and to which kind of boot client.
    pub boot: Option<(BootClient, String)>,
    pub frame: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Reply(Reply),
    /// The client gave its address back (logged).
    Released {
        client_mac: MacAddr,
        addr: Ipv4Addr,
    },
    /// The client found the address in use (logged as a warning).
    Declined {
        client_mac: MacAddr,
        addr: Ipv4Addr,
    },
    Refused(Refusal),
}

/// Answers one DHCPv4 request.
///
/// `ip_packet` is the IPv4 packet as NFQUEUE hands it over (no Ethernet header);
/// `src_mac` is the Ethernet source from the queue's hardware-address attribute;
/// `server_mac` is the MAC of the binding's INDEV, the reply's Ethernet source.
pub fn answer(
    ip_packet: &[u8],
    src_mac: Option<MacAddr>,
    binding: &Binding,
    server_mac: MacAddr,
    params: &Params,
) -> Outcome {
    match respond(ip_packet, src_mac, binding, server_mac, params) {
        Ok(outcome) => outcome,
        Err(refusal) => Outcome::Refused(refusal),
    }
}

/// The address the server answers from and names in option 54.
///
/// With `server_on_link` it is an address on the guest's link (the gateway,
/// else the first host of the subnet), so that a client that unicasts its
/// renewal reaches the host; otherwise the configured `server_ip`. Each falls
/// back on the other choices, in that order.
pub fn server_address(binding: &Binding, params: &Params) -> Option<Ipv4Addr> {
    let first_host = || binding.subnet.and_then(|net| net.hosts().next());
    if params.server_on_link {
        binding.gateway.or_else(first_host).or(params.server_ip)
    } else {
        params.server_ip.or(binding.gateway).or_else(first_host)
    }
}

/// What the reply says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    Offer(Ipv4Addr),
    Ack(Ipv4Addr),
    /// ACK to an INFORM: configuration only, for the client at this address.
    InformAck(Ipv4Addr),
    Nak(&'static str),
}

fn respond(
    ip_packet: &[u8],
    src_mac: Option<MacAddr>,
    binding: &Binding,
    server_mac: MacAddr,
    params: &Params,
) -> Result<Outcome, Refusal> {
    let udp = frame::parse_udp4(ip_packet).map_err(|_| Refusal::Malformed)?;
    if udp.dst.port() != SERVER_PORT {
        return Err(Refusal::Malformed);
    }
    let req = Request::parse(udp.payload)?;
    let request = Kind::from(req.msg);
    if !binding.macspoof && (req.chaddr != binding.mac || src_mac.is_some_and(|m| m != binding.mac))
    {
        return Err(Refusal::SpoofedMac);
    }
    let client_mac = req.chaddr;

    // RFC 2131 requires ciaddr in a RELEASE and option 50 in a DECLINE.
    match request {
        Kind::Release => {
            let addr = nonzero(req.ciaddr).ok_or(Refusal::Malformed)?;
            return Ok(Outcome::Released { client_mac, addr });
        }
        Kind::Decline => {
            let addr = req.requested.ok_or(Refusal::Malformed)?;
            return Ok(Outcome::Declined { client_mac, addr });
        }
        _ => {}
    }

    let server = server_address(binding, params).ok_or(Refusal::Unconfigured)?;
    let ans = match request {
        Kind::Discover => Answer::Offer(binding.ip.ok_or(Refusal::Unconfigured)?),
        Kind::Request => {
            if req.server_id.is_some_and(|s| s != server) {
                return Err(Refusal::OtherServer);
            }
            let ip = binding.ip.ok_or(Refusal::Unconfigured)?;
            // SELECTING and INIT-REBOOT name the address in option 50,
            // RENEWING and REBINDING in ciaddr.
            match req.requested.or(nonzero(req.ciaddr)) {
                Some(wanted) if wanted == ip => Answer::Ack(ip),
                Some(_) => Answer::Nak(NAK_WRONG_ADDRESS),
                None => Answer::Nak(NAK_NO_ADDRESS),
            }
        }
        // A client that leaves ciaddr empty is answered at its source address.
        _ => Answer::InformAck(
            nonzero(req.ciaddr)
                .or(nonzero(*udp.src.ip()))
                .ok_or(Refusal::Malformed)?,
        ),
    };

    let (kind, addr) = match ans {
        Answer::Offer(ip) => (Kind::Offer, Some(ip)),
        Answer::Ack(ip) | Answer::InformAck(ip) => (Kind::Ack, Some(ip)),
        Answer::Nak(_) => (Kind::Nak, None),
    };
    // A NAK carries no configuration, boot file included.
    let boot = match ans {
        Answer::Nak(_) => None,
        _ => {
            let files = BootConfig::files(binding.boot.as_deref(), &params.boot);
            boot::answer(&req.boot_ask(), &files)
        }
    };
    let ctx = ReplyCtx {
        req: &req,
        ans,
        server,
        binding,
        params,
        boot: boot.as_ref().map(|(c, b)| (*c, b)),
    };
    // Only an oversized configuration (tens of kilobytes of options) can
    // make the reply unbuildable: the binding cannot be served as it is.
    let frame = encode_reply(&ctx, server_mac).ok_or(Refusal::Unconfigured)?;
    Ok(Outcome::Reply(Reply {
        request,
        kind,
        client_mac,
        addr,
        boot: boot.map(|(c, b)| (c, b.file)),
        frame,
    }))
}

/// Host route to the gateway, then the default route through it: what a
/// client needs when the gateway is not inside its subnet (routed setups),
/// where option 3 alone cannot work. RFC 3442 clients then ignore option 3.
fn classless_routes(binding: &Binding) -> Option<[(Ipv4Net, Ipv4Addr); 2]> {
    if binding.private {
        return None;
    }
    let gw = binding.gateway?;
    // Without a subnet the gateway is not known to be on-link either.
    if binding.subnet.is_some_and(|net| net.contains(&gw)) {
        return None;
    }
    Some([
        (Ipv4Net::from(gw), Ipv4Addr::UNSPECIFIED),
        (Ipv4Net::default(), gw),
    ])
}

/// `[dhcp] domain`, else what follows the first dot of the host name.
fn domain<'a>(binding: &'a Binding, params: &'a Params) -> Option<&'a str> {
    params
        .domain
        .as_deref()
        .or_else(|| binding.hostname.split_once('.').map(|(_, d)| d))
        .filter(|d| !d.is_empty())
}

/// What a reply is built from.
struct ReplyCtx<'a> {
    req: &'a Request<'a>,
    ans: Answer,
    server: Ipv4Addr,
    binding: &'a Binding,
    params: &'a Params,
    boot: Option<(BootClient, &'a Boot)>,
}

// Options left out of a reply that is too large for the client, in this
// order: the search list (119), the TFTP server name (66; siaddr still
// names the boot server), the boot file name (67; the `file` field still
// holds a name that fits). Without boot keys and search list there is
// nothing to leave out, and the reply goes out as built.
const OMIT_SEARCH: u8 = 1;
const OMIT_TFTP: u8 = 2;
const OMIT_BOOTFILE: u8 = 4;
const OMIT_ORDER: [u8; 3] = [OMIT_SEARCH, OMIT_TFTP, OMIT_BOOTFILE];

fn encode_reply(c: &ReplyCtx<'_>, server_mac: MacAddr) -> Option<Vec<u8>> {
    let req = c.req;
    let unspecified = Ipv4Addr::UNSPECIFIED;
    let (yiaddr, ciaddr) = match c.ans {
        Answer::Offer(ip) => (ip, unspecified),
        Answer::Ack(ip) => (ip, req.ciaddr),
        Answer::InformAck(_) => (unspecified, req.ciaddr),
        Answer::Nak(_) => (unspecified, unspecified),
    };
    // RFC 2131 §4.1: a client that is not configured yet and set the
    // broadcast bit cannot take a unicast IP datagram; the Ethernet
    // destination stays its own MAC, which the tap delivers regardless.
    let dst = match c.ans {
        Answer::Offer(ip) | Answer::Ack(ip) => {
            if req.flags.broadcast() && req.ciaddr.is_unspecified() {
                Ipv4Addr::BROADCAST
            } else {
                ip
            }
        }
        Answer::InformAck(ip) => ip,
        Answer::Nak(_) => Ipv4Addr::BROADCAST,
    };
    // Every client takes 576 bytes (RFC 2131 §2), option 57 may allow more.
    let budget = req.max_datagram();

    let mut buf = Vec::with_capacity(FRAME_CAPACITY);
    for level in 0..=OMIT_ORDER.len() {
        let omit = OMIT_ORDER.iter().take(level).fold(0, |a, b| a | b);
        buf.clear();
        let mut e = Encoder::new(&mut buf);
        // Room for the Ethernet, IPv4 and UDP headers, written last.
        e.write_slice(&[0; UDP4_HEADERS_LEN]).ok()?;
        write_header(&mut e, c, yiaddr, ciaddr).ok()?;
        let optional = write_options(&mut e, c, omit).ok()?;
        bootp::pad_to_minimum(&mut e, UDP4_HEADERS_LEN).ok()?;
        let datagram = buf.len() - frame::ETHERNET_HEADER_LEN;
        if datagram <= budget || optional & !omit == 0 {
            break;
        }
    }

    let addressing = Udp4Addressing {
        src_mac: server_mac,
        dst_mac: req.chaddr,
        src: SocketAddrV4::new(c.server, SERVER_PORT),
        dst: SocketAddrV4::new(dst, CLIENT_PORT),
    };
    frame::finish_udp4_frame(&mut buf, &addressing).ok()?;
    Some(buf)
}

/// Writes the fixed BOOTP part of the reply (RFC 2131 figure 1).
fn write_header(
    e: &mut Encoder<'_>,
    c: &ReplyCtx<'_>,
    yiaddr: Ipv4Addr,
    ciaddr: Ipv4Addr,
) -> v4::EncodeResult<()> {
    let boot = c.boot.map(|(_, b)| b);
    let header = ReplyHeader {
        xid: c.req.xid,
        flags: c.req.flags.into(),
        ciaddr,
        yiaddr,
        // The boot server, if there is one and it is an address.
        siaddr: boot.and_then(|b| b.server).unwrap_or(Ipv4Addr::UNSPECIFIED),
        giaddr: c.req.giaddr,
        chaddr: c.req.chaddr,
        file: boot.map_or(&[], |b| b.file.as_bytes()),
    };
    bootp::write_reply_header(e, &header)
}

/// The domain search list (option 119): `[dhcp] domains`, else the domain
/// of option 15.
fn search_list(binding: &Binding, params: &Params) -> Vec<u8> {
    if params.domains.is_empty() {
        let own: Vec<String> = domain(binding, params)
            .map(str::to_owned)
            .into_iter()
            .collect();
        bootp::domain_search(&own)
    } else {
        bootp::domain_search(&params.domains)
    }
}

/// Writes the options of the reply and the end mark. Returns the optional
/// options (`OMIT_*`) it could have written, omitted or not.
fn write_options(e: &mut Encoder<'_>, c: &ReplyCtx<'_>, omit: u8) -> v4::EncodeResult<u8> {
    let (req, ans, binding, params) = (c.req, c.ans, c.binding, c.params);
    let keep = |opt: u8| omit & opt == 0;
    let mut optional = 0;
    let msg_type = match ans {
        Answer::Offer(_) => MessageType::Offer,
        Answer::Ack(_) | Answer::InformAck(_) => MessageType::Ack,
        Answer::Nak(_) => MessageType::Nak,
    };
    DhcpOption::MessageType(msg_type).encode(e)?;
    DhcpOption::ServerIdentifier(c.server).encode(e)?;
    if let Answer::Nak(why) = ans {
        encode_long_opt_bytes(OptionCode::Message, why.as_bytes(), e)?;
    }
    // RFC 2131 §4.3.5: no lease times in the answer to an INFORM.
    if matches!(ans, Answer::Offer(_) | Answer::Ack(_)) {
        let lease = params.lease_lifetime;
        let rebinding = (u64::from(lease) * 7 / 8) as u32;
        // T1 must stay below T2 (RFC 2131 §4.4.5); a renewal time above 7/8
        // of the lease is a configuration slip, not a wish to rebind.
        let renewal = params.lease_renewal.min(rebinding);
        DhcpOption::AddressLeaseTime(lease).encode(e)?;
        DhcpOption::Renewal(renewal).encode(e)?;
        DhcpOption::Rebinding(rebinding).encode(e)?;
    }
    if !matches!(ans, Answer::Nak(_)) {
        if let Some(net) = binding.subnet {
            DhcpOption::SubnetMask(net.netmask()).encode(e)?;
            DhcpOption::BroadcastAddr(net.broadcast()).encode(e)?;
        }
        if let Some(gw) = binding.gateway.filter(|_| !binding.private) {
            put_addrs(OptionCode::Router, &[gw], e)?;
        }
        // An empty list or string encodes to nothing at all.
        put_addrs(OptionCode::DomainNameServer, &params.nameservers, e)?;
        encode_long_opt_bytes(OptionCode::Hostname, binding.hostname.as_bytes(), e)?;
        if let Some(d) = domain(binding, params) {
            encode_long_opt_bytes(OptionCode::DomainName, d.as_bytes(), e)?;
        }
        // Only for a client that asks: many clients know option 15 only.
        if req.prl.contains(u8::from(OptionCode::DomainSearch)) {
            let list = search_list(binding, params);
            if !list.is_empty() {
                optional |= OMIT_SEARCH;
                if keep(OMIT_SEARCH) {
                    encode_long_opt_bytes(OptionCode::DomainSearch, &list, e)?;
                }
            }
        }
        if let Some(mtu) = binding.mtu {
            DhcpOption::InterfaceMtu(mtu).encode(e)?;
        }
        if let Some(routes) = classless_routes(binding) {
            DhcpOption::ClasslessStaticRoute(routes.to_vec()).encode(e)?;
        }
        if let Some((client, boot)) = c.boot {
            // UEFI HTTP boot takes only an answer that names it (UEFI
            // specification, HTTP Boot: option 60 "HTTPClient").
            if client == BootClient::UefiHttp {
                encode_long_opt_bytes(OptionCode::ClassIdentifier, b"HTTPClient", e)?;
            }
            if let Some(name) = &boot.server_name {
                optional |= OMIT_TFTP;
                if keep(OMIT_TFTP) {
                    encode_long_opt_bytes(OptionCode::TFTPServerName, name.as_bytes(), e)?;
                }
            }
            optional |= OMIT_BOOTFILE;
            if keep(OMIT_BOOTFILE) {
                encode_long_opt_bytes(OptionCode::BootfileName, boot.file.as_bytes(), e)?;
            }
        }
    }
    // RFC 6842: the client identifier comes back in every reply.
    if let Some(id) = &req.client_id {
        encode_long_opt_bytes(OptionCode::ClientIdentifier, id, e)?;
    }
    DhcpOption::End.encode(e)?;
    Ok(optional)
}

#[cfg(test)]
mod tests;
