//! Neighbor Discovery for VM host mode (pure): Router Solicitation -> Router
//! Advertisement, Neighbor Solicitation -> Neighbor Advertisement, and the
//! periodic (or withdrawing) unsolicited Router Advertisement.
//!
//! Every answer comes from the link-local address formed from INDEV's MAC
//! with hop limit 255 (RFC 4861). RAs always go to ff02::1: that is what
//! Linux routers do for solicited RAs too, and one guest per tap makes the
//! multicast as good as a unicast.

use std::net::Ipv6Addr;

use etherparse::icmpv6::{
    NdpOptionSlice, NdpOptionsIterator, NeighborAdvertisementHeader, PrefixInformation,
    RouterAdvertisementHeader, RouterAdvertisementPayload,
};

use crate::core::binding::Binding;
use crate::core::frame6::{
    finish_icmpv6_frame, link_local, parse_icmpv6, Ipv6Addressing, ALL_NODES, ALL_NODES_MAC,
    ICMPV6_OFFSET, ND_HOP_LIMIT,
};
use crate::core::mac::MacAddr;
use crate::core::Refusal;

pub const TYPE_ROUTER_SOLICITATION: u8 = 133;
pub const TYPE_ROUTER_ADVERTISEMENT: u8 = 134;
pub const TYPE_NEIGHBOR_SOLICITATION: u8 = 135;
pub const TYPE_NEIGHBOR_ADVERTISEMENT: u8 = 136;

const OPT_SOURCE_LL: u8 = 1;
const OPT_TARGET_LL: u8 = 2;
const OPT_MTU: u8 = 5;
const OPT_RDNSS: u8 = 25;
const OPT_DNSSL: u8 = 31;

/// Cur Hop Limit advertised to the guest (the Linux default).
const CUR_HOP_LIMIT: u8 = 64;
/// An option's length is 8 bits of 8-octet units: RDNSS holds at most
/// (255 - 1) / 2 addresses.
const MAX_RDNSS_ADDRS: usize = 127;
/// Room for names in a DNSSL option of the largest length (255 units).
const MAX_DNSSL_NAMES_LEN: usize = 255 * 8 - 8;

/// What an RA says besides the binding's own data (`[ipv6]` settings).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Params {
    /// Seconds; saturates at 65535 (the field is 16 bits).
    pub router_lifetime: u32,
    pub prefix_valid_lifetime: u32,
    /// Capped at `prefix_valid_lifetime`: hosts ignore a prefix whose
    /// preferred lifetime exceeds its valid lifetime.
    pub prefix_preferred_lifetime: u32,
    /// Lifetime of the RDNSS and DNSSL options.
    pub dns_lifetime: u32,
    /// RDNSS (RFC 8106); at most 127 are sent.
    pub nameservers: Vec<Ipv6Addr>,
    /// DNSSL; names that are not valid DNS names are left out.
    pub domains: Vec<String>,
    /// O flag: other configuration (DNS) by DHCPv6.
    pub other_config: bool,
    /// M flag: addresses by DHCPv6.
    pub managed: bool,
}

/// Message types that appear in log lines and counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    RouterSolicitation,
    RouterAdvertisement,
    NeighborSolicitation,
    NeighborAdvertisement,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::RouterSolicitation => "RS",
            Kind::RouterAdvertisement => "RA",
            Kind::NeighborSolicitation => "NS",
            Kind::NeighborAdvertisement => "NA",
        }
    }
}

/// A complete Ethernet frame to send on the binding's interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// RS or NS.
    pub request: Kind,
    /// RA or NA.
    pub kind: Kind,
    pub client_mac: MacAddr,
    /// The NA's target; None for an RA.
    pub addr: Option<Ipv6Addr>,
    pub frame: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Reply(Reply),
    Refused(Refusal),
}

impl From<Result<Reply, Refusal>> for Outcome {
    fn from(r: Result<Reply, Refusal>) -> Self {
        match r {
            Ok(reply) => Outcome::Reply(reply),
            Err(refusal) => Outcome::Refused(refusal),
        }
    }
}

/// Answers a Router Solicitation with a Router Advertisement to ff02::1.
///
/// `packet` is the IPv6 packet as NFQUEUE hands it over (no Ethernet
/// header); `src_mac` is the Ethernet source from the queue's
/// hardware-address attribute; `server_mac` is the MAC of the binding's
/// INDEV. A binding without SUBNET6 gets no RA.
pub fn answer_rs(
    packet: &[u8],
    src_mac: Option<MacAddr>,
    binding: &Binding,
    server_mac: MacAddr,
    params: &Params,
) -> Outcome {
    rs(packet, src_mac, binding, server_mac, params).into()
}

fn rs(
    packet: &[u8],
    src_mac: Option<MacAddr>,
    binding: &Binding,
    server_mac: MacAddr,
    params: &Params,
) -> Result<Reply, Refusal> {
    let p = parse_icmpv6(packet).map_err(|_| Refusal::Malformed)?;
    if p.msg_type != TYPE_ROUTER_SOLICITATION {
        return Err(Refusal::NotARequest);
    }
    // RFC 4861 6.1.1.
    if p.code != 0 || p.hop_limit != ND_HOP_LIMIT {
        return Err(Refusal::Malformed);
    }
    let sll = source_link_layer(p.payload)?;
    if p.src.is_unspecified() && sll.is_some() {
        return Err(Refusal::Malformed);
    }
    check_mac(src_mac, sll, binding)?;
    let frame =
        router_advertisement(binding, server_mac, params, false).ok_or(Refusal::Unconfigured)?;
    Ok(Reply {
        request: Kind::RouterSolicitation,
        kind: Kind::RouterAdvertisement,
        client_mac: src_mac.or(sll).unwrap_or(binding.mac),
        addr: None,
        frame,
    })
}

/// The unsolicited RA sent every `ra_period` to a binding with SUBNET6, or
/// with `withdraw` the final one when the binding goes away or the daemon
/// exits. None without SUBNET6.
///
/// A withdrawing RA only sets the router lifetime to 0: the prefix and DNS
/// options keep their lifetimes, so a daemon restart takes the default
/// route away for a moment but never deprecates the guest's addresses (and
/// RFC 4862 5.5.3 makes hosts ignore a short valid lifetime anyway).
pub fn periodic_ra(
    binding: &Binding,
    server_mac: MacAddr,
    params: &Params,
    withdraw: bool,
) -> Option<Vec<u8>> {
    router_advertisement(binding, server_mac, params, withdraw)
}

fn router_advertisement(
    binding: &Binding,
    server_mac: MacAddr,
    params: &Params,
    withdraw: bool,
) -> Option<Vec<u8>> {
    let subnet = binding.subnet6?;
    let nameservers = &params.nameservers[..params.nameservers.len().min(MAX_RDNSS_ADDRS)];
    let names_len: usize = params.domains.iter().map(|d| d.len() + 2).sum();
    let capacity = ICMPV6_OFFSET
        + 16 // RA header
        + 8 // source link-layer address
        + if binding.mtu.is_some() { 8 } else { 0 }
        + PrefixInformation::LEN
        + if nameservers.is_empty() { 0 } else { 8 + 16 * nameservers.len() }
        + if params.domains.is_empty() { 0 } else { 8 + names_len.min(MAX_DNSSL_NAMES_LEN) + 7 };
    let mut f = Vec::with_capacity(capacity);
    f.resize(ICMPV6_OFFSET, 0);

    // PRIVATE: the guest gets addresses and DNS but no default route.
    let router_lifetime = if withdraw || binding.private {
        0
    } else {
        params.router_lifetime.min(u32::from(u16::MAX)) as u16
    };
    f.extend_from_slice(&[TYPE_ROUTER_ADVERTISEMENT, 0, 0, 0]);
    f.extend_from_slice(
        &RouterAdvertisementHeader {
            cur_hop_limit: CUR_HOP_LIMIT,
            managed_address_config: params.managed,
            other_config: params.other_config,
            router_lifetime,
        }
        .to_bytes(),
    );
    f.extend_from_slice(
        &RouterAdvertisementPayload {
            reachable_time: 0,
            retrans_timer: 0,
        }
        .to_bytes(),
    );

    f.extend_from_slice(&[OPT_SOURCE_LL, 1]);
    f.extend_from_slice(&server_mac.0);
    if let Some(mtu) = binding.mtu {
        f.extend_from_slice(&[OPT_MTU, 1, 0, 0]);
        f.extend_from_slice(&u32::from(mtu).to_be_bytes());
    }
    f.extend_from_slice(
        &PrefixInformation {
            prefix_length: subnet.prefix_len(),
            on_link: true,
            autonomous_address_configuration: true,
            valid_lifetime: params.prefix_valid_lifetime,
            preferred_lifetime: params
                .prefix_preferred_lifetime
                .min(params.prefix_valid_lifetime),
            prefix: subnet.network().octets(),
        }
        .to_bytes(),
    );
    if !nameservers.is_empty() {
        f.extend_from_slice(&[OPT_RDNSS, (1 + 2 * nameservers.len()) as u8, 0, 0]);
        f.extend_from_slice(&params.dns_lifetime.to_be_bytes());
        for ns in nameservers {
            f.extend_from_slice(&ns.octets());
        }
    }
    push_dnssl(&mut f, &params.domains, params.dns_lifetime);

    finish_icmpv6_frame(
        &mut f,
        &Ipv6Addressing {
            src_mac: server_mac,
            dst_mac: ALL_NODES_MAC,
            src: link_local(server_mac),
            dst: ALL_NODES,
            hop_limit: ND_HOP_LIMIT,
        },
    )
    .ok()?;
    Some(f)
}

/// Appends a DNSSL option (RFC 8106 5.2) unless no name is usable.
fn push_dnssl(f: &mut Vec<u8>, domains: &[String], lifetime: u32) {
    if domains.is_empty() {
        return;
    }
    let start = f.len();
    f.extend_from_slice(&[OPT_DNSSL, 0, 0, 0]);
    f.extend_from_slice(&lifetime.to_be_bytes());
    if encode_domain_names(domains, f, MAX_DNSSL_NAMES_LEN) == 0 {
        f.truncate(start);
        return;
    }
    // Zero padding to the next multiple of 8 octets.
    let padded = (f.len() - start).next_multiple_of(8);
    f.resize(start + padded, 0);
    f[start + 1] = (padded / 8) as u8;
}

/// Appends `domains` in uncompressed DNS wire format (RFC 1035 3.1), as
/// DNSSL and the DHCPv6 domain list (option 24) carry them. Names that are
/// not valid DNS names are skipped, as are names that would take the list
/// past `max_len` bytes. Returns the bytes appended.
pub fn encode_domain_names(domains: &[String], out: &mut Vec<u8>, max_len: usize) -> usize {
    let start = out.len();
    for name in domains {
        let mark = out.len();
        if !push_domain_name(name, out) || out.len() - start > max_len {
            out.truncate(mark);
        }
    }
    out.len() - start
}

fn push_domain_name(name: &str, out: &mut Vec<u8>) -> bool {
    let name = name.strip_suffix('.').unwrap_or(name);
    // Wire form is the text plus a leading length byte and the root label.
    if name.is_empty() || name.len() + 2 > 255 {
        return false;
    }
    let mark = out.len();
    for label in name.split('.') {
        if label.is_empty() || label.len() > 63 {
            out.truncate(mark);
            return false;
        }
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
    true
}

/// Answers a Neighbor Solicitation from the guest for the gateway, the host's
/// link-local address or another address of SUBNET6 routed via the host.
pub fn answer_ns(
    packet: &[u8],
    src_mac: Option<MacAddr>,
    binding: &Binding,
    server_mac: MacAddr,
) -> Outcome {
    ns(packet, src_mac, binding, server_mac).into()
}

fn ns(
    packet: &[u8],
    src_mac: Option<MacAddr>,
    binding: &Binding,
    server_mac: MacAddr,
) -> Result<Reply, Refusal> {
    let p = parse_icmpv6(packet).map_err(|_| Refusal::Malformed)?;
    if p.msg_type != TYPE_NEIGHBOR_SOLICITATION {
        return Err(Refusal::NotARequest);
    }
    // RFC 4861 7.1.1.
    if p.code != 0 || p.hop_limit != ND_HOP_LIMIT {
        return Err(Refusal::Malformed);
    }
    let (target, options) = p
        .payload
        .split_first_chunk::<16>()
        .ok_or(Refusal::Malformed)?;
    let target = Ipv6Addr::from(*target);
    if target.is_multicast() {
        return Err(Refusal::Malformed);
    }
    let sll = source_link_layer(options)?;
    if p.src.is_unspecified() && sll.is_some() {
        return Err(Refusal::Malformed);
    }
    check_mac(src_mac, sll, binding)?;
    // A duplicate address detection probe: answering would make the guest
    // give up the address.
    if p.src.is_unspecified() || !answers_for(binding, server_mac, target) {
        return Err(Refusal::NotOurAddress);
    }
    let client_mac = src_mac.or(sll).unwrap_or(binding.mac);
    let frame =
        neighbor_advertisement(server_mac, client_mac, p.src, target).ok_or(Refusal::Malformed)?;
    Ok(Reply {
        request: Kind::NeighborSolicitation,
        kind: Kind::NeighborAdvertisement,
        client_mac,
        addr: Some(target),
        frame,
    })
}

/// Whether the host claims `target` towards this guest.
fn answers_for(b: &Binding, server_mac: MacAddr, target: Ipv6Addr) -> bool {
    let own = b.eui64 == Some(target) || b.ip6 == Some(target) || link_local(b.mac) == target;
    !own && (b.gateway6 == Some(target)
        || link_local(server_mac) == target
        || b.subnet6.is_some_and(|n| n.contains(&target)))
}

fn neighbor_advertisement(
    server_mac: MacAddr,
    dst_mac: MacAddr,
    dst: Ipv6Addr,
    target: Ipv6Addr,
) -> Option<Vec<u8>> {
    let mut f = Vec::with_capacity(ICMPV6_OFFSET + 32);
    f.resize(ICMPV6_OFFSET, 0);
    f.extend_from_slice(&[TYPE_NEIGHBOR_ADVERTISEMENT, 0, 0, 0]);
    f.extend_from_slice(
        &NeighborAdvertisementHeader {
            router: true,
            solicited: true,
            r#override: true,
        }
        .to_bytes(),
    );
    f.extend_from_slice(&target.octets());
    f.extend_from_slice(&[OPT_TARGET_LL, 1]);
    f.extend_from_slice(&server_mac.0);
    finish_icmpv6_frame(
        &mut f,
        &Ipv6Addressing {
            src_mac: server_mac,
            dst_mac,
            // Sent from the target itself, as a router that owns the address
            // does: some tools (ndisc6) accept nothing else.
            src: target,
            dst,
            hop_limit: ND_HOP_LIMIT,
        },
    )
    .ok()?;
    Some(f)
}

/// The Source Link-Layer Address option, if any. Options must be well formed
/// (RFC 4861 6.1.1, 7.1.1); an Ethernet address is six bytes.
fn source_link_layer(options: &[u8]) -> Result<Option<MacAddr>, Refusal> {
    let mut found = None;
    for opt in NdpOptionsIterator::from_slice(options) {
        if let NdpOptionSlice::SourceLinkLayerAddress(o) = opt.map_err(|_| Refusal::Malformed)? {
            let lla = o.link_layer_address();
            let mac = match MacAddr::from_slice(lla) {
                Some(m) if lla.len() == 6 => m,
                _ => return Err(Refusal::Malformed),
            };
            if found.is_some_and(|f| f != mac) {
                return Err(Refusal::Malformed);
            }
            found = Some(mac);
        }
    }
    Ok(found)
}

/// Unless MACSPOOF, the Ethernet source and the advertised link-layer
/// address must both be the binding's MAC.
fn check_mac(
    src_mac: Option<MacAddr>,
    sll: Option<MacAddr>,
    binding: &Binding,
) -> Result<(), Refusal> {
    if binding.macspoof {
        return Ok(());
    }
    let foreign = |m: Option<MacAddr>| m.is_some_and(|m| m != binding.mac);
    if foreign(src_mac) || foreign(sll) {
        return Err(Refusal::SpoofedMac);
    }
    Ok(())
}

#[cfg(test)]
mod tests;
