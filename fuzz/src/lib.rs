//! What the fuzz targets share: the fixed bindings and settings an input's
//! setup byte picks from, the input layouts (the seed generator writes the
//! same ones), and checks of the answers.
//!
//! A target takes a few setup bytes before the untrusted bytes, so that one
//! corpus explores every branch that depends on the binding or the
//! configuration (MAC checks, MACSPOOF, private bindings, missing subnets,
//! oversized settings) rather than one fixed setup.

use std::net::{Ipv4Addr, Ipv6Addr};

use dhcproto::{Decodable, Decoder};
use nfdhcpd::core::binding::Binding;
use nfdhcpd::core::mac::MacAddr;
use nfdhcpd::core::{dhcp4, dhcp6, frame, frame6, ndp};

/// The guest of the captures in `tests/data/captures/`.
pub const GUEST_MAC: MacAddr = MacAddr([0x52, 0x54, 0x00, 0x1b, 0x31, 0x20]);
/// Some other guest (a spoofer).
pub const OTHER_MAC: MacAddr = MacAddr([0x52, 0x54, 0x00, 0x66, 0x66, 0x66]);
/// INDEV's MAC, the source of every answer.
pub const SERVER_MAC: MacAddr = MacAddr([0xfe, 0xff, 0xff, 0xff, 0xff, 0xff]);

pub const GUEST_IP: Ipv4Addr = Ipv4Addr::new(172, 20, 0, 101);
pub const GATEWAY: Ipv4Addr = Ipv4Addr::new(172, 20, 0, 1);
/// The server identifier the captured clients selected.
pub const SERVER_IP: Ipv4Addr = Ipv4Addr::new(172, 20, 0, 4);
pub const GATEWAY6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 0, 0, 0, 1);
pub const GUEST_IP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 0, 0, 0, 0x65);

/// Bit of the dhcp4/dhcp6/ndp setup byte (bits 0-1 pick the source MAC).
pub mod setup {
    /// Source MAC: 0 the binding's, 1 none, 2 another guest's, 3 the binding's.
    pub const SRC_MAC: u8 = 0b11;
}

/// Splits off `n` setup bytes; None when the input is shorter.
pub fn split<const N: usize>(data: &[u8]) -> Option<(&[u8; N], &[u8])> {
    data.split_first_chunk::<N>()
}

/// The Ethernet source NFQUEUE reports, picked by bits 0-1 of `setup`.
pub fn src_mac(setup: u8, binding_mac: MacAddr) -> Option<MacAddr> {
    match setup & setup::SRC_MAC {
        1 => None,
        2 => Some(OTHER_MAC),
        _ => Some(binding_mac),
    }
}

/// The binding of the captured guest (DHCPv4 and IPv6).
pub fn binding() -> Binding {
    Binding {
        name: "tap10".into(),
        indev: "tap10".into(),
        mac: GUEST_MAC,
        hostname: "workstation01.example.org".into(),
        ip: Some(GUEST_IP),
        tags: Vec::new(),
        gateway: Some(GATEWAY),
        subnet: Some("172.20.0.0/24".parse().unwrap()),
        gateway6: Some(GATEWAY6),
        subnet6: Some("2001:db8:0:1::/64".parse().unwrap()),
        eui64: Some("2001:db8:0:1:5054:ff:fe1b:3120".parse().unwrap()),
        ip6: Some(GUEST_IP6),
        private: false,
        mtu: None,
        macspoof: false,
        boot: Default::default(),
    }
}

/// `n` distinct IPv4 addresses.
pub fn many_v4(n: u32) -> Vec<Ipv4Addr> {
    (0..n).map(|i| Ipv4Addr::from(0xc000_0200 + i)).collect()
}

/// `n` distinct IPv6 addresses.
pub fn many_v6(n: u32) -> Vec<Ipv6Addr> {
    (0..n)
        .map(|i| Ipv6Addr::from(0x2001_0db8_0000_0053_0000_0000_0000_0000 + u128::from(i)))
        .collect()
}

/// A domain list that cannot fit any single option: long labels, many
/// names, and some that are not valid names at all.
pub fn many_domains() -> Vec<String> {
    let mut d: Vec<String> = (0..200)
        .map(|i| format!("{}.example{i}.org", "a".repeat(63)))
        .collect();
    d.push(String::new());
    d.push(".".into());
    d.push("a..b".into());
    d.push("x".repeat(300));
    d
}

pub fn dhcp4_params() -> dhcp4::Params {
    dhcp4::Params {
        lease_lifetime: 604_800,
        lease_renewal: 600,
        server_ip: Some(SERVER_IP),
        server_on_link: false,
        nameservers: vec![
            Ipv4Addr::new(192, 0, 2, 53),
            Ipv4Addr::new(198, 51, 100, 53),
        ],
        domain: None,
        domains: Vec::new(),
        boot: Default::default(),
    }
}

pub fn dhcp6_params() -> dhcp6::Params {
    dhcp6::Params {
        stateful: true,
        nameservers: vec!["2001:db8::53".parse().unwrap()],
        domains: vec!["example.org".into()],
        t1: 302_400,
        t2: 483_840,
        preferred_lifetime: 604_800,
        valid_lifetime: 2_592_000,
    }
}

pub fn ndp_params() -> ndp::Params {
    ndp::Params {
        router_lifetime: 900,
        prefix_valid_lifetime: 2_592_000,
        prefix_preferred_lifetime: 604_800,
        dns_lifetime: 900,
        nameservers: vec!["2001:db8::53".parse().unwrap()],
        domains: vec!["example.org".into()],
        other_config: true,
        managed: false,
    }
}

/// An answer frame must be a well-formed Ethernet + IPv4 + UDP frame from
/// port 67 to port 68 carrying a DHCP message that decodes; returns it.
pub fn check_udp4_frame(f: &[u8]) -> dhcproto::v4::Message {
    let eth = frame::parse_ethernet(f).expect("answer is an Ethernet frame");
    assert_eq!(eth.ethertype, frame::ETHERTYPE_IPV4);
    assert_eq!(eth.src, SERVER_MAC);
    let udp = frame::parse_udp4(eth.payload).expect("answer is IPv4 + UDP");
    assert_eq!(udp.src.port(), dhcp4::SERVER_PORT);
    assert_eq!(udp.dst.port(), dhcp4::CLIENT_PORT);
    check_dhcp4(udp.payload)
}

/// A DHCPv4 answer decodes as a BOOTREPLY.
pub fn check_dhcp4(payload: &[u8]) -> dhcproto::v4::Message {
    let m = dhcproto::v4::Message::decode(&mut Decoder::new(payload))
        .expect("answer decodes as DHCPv4");
    assert_eq!(m.opcode(), dhcproto::v4::Opcode::BootReply);
    m
}

/// An answer frame must be a well-formed Ethernet + IPv6 + UDP frame from
/// port 547 carrying a DHCPv6 message that decodes.
pub fn check_udp6_frame(f: &[u8]) {
    let eth = frame::parse_ethernet(f).expect("answer is an Ethernet frame");
    assert_eq!(eth.ethertype, frame6::ETHERTYPE_IPV6);
    let udp = frame6::parse_udp6(eth.payload).expect("answer is IPv6 + UDP");
    assert_eq!(udp.src_port, dhcp6::SERVER_PORT);
    dhcproto::v6::Message::decode(&mut Decoder::new(udp.payload))
        .expect("answer decodes as DHCPv6");
}

/// An answer frame must be a well-formed Ethernet + IPv6 + ICMPv6 frame
/// with a valid checksum and the hop limit Neighbor Discovery requires.
pub fn check_icmpv6_frame(f: &[u8], msg_type: u8) {
    let eth = frame::parse_ethernet(f).expect("answer is an Ethernet frame");
    assert_eq!(eth.ethertype, frame6::ETHERTYPE_IPV6);
    let p = frame6::parse_icmpv6(eth.payload).expect("answer is IPv6 + ICMPv6, checksum valid");
    assert_eq!(p.msg_type, msg_type);
    assert_eq!(p.hop_limit, frame6::ND_HOP_LIMIT);
}

/// Rewrites the ICMPv6 checksum of a bare IPv6 packet (no extension
/// headers) when it is long enough to have one.
///
/// The NDP path verifies the checksum first, so without this nearly every
/// mutation would stop there; a setup bit chooses whether the harness fixes
/// it, so that the refusal of bad checksums stays covered too.
pub fn fix_icmpv6_checksum(packet: &mut [u8]) {
    const IPV6: usize = 40;
    if packet.len() < IPV6 + 4 || packet[0] >> 4 != 6 || packet[6] != 58 {
        return;
    }
    let declared = usize::from(u16::from_be_bytes([packet[4], packet[5]]));
    let end = (IPV6 + declared).min(packet.len());
    packet[IPV6 + 2] = 0;
    packet[IPV6 + 3] = 0;
    let body = &packet[IPV6..end];
    let mut sum: u32 = 0;
    let mut add = |b: &[u8]| {
        for c in b.chunks(2) {
            let hi = u32::from(c[0]) << 8;
            let lo = c.get(1).copied().map_or(0, u32::from);
            sum = sum.wrapping_add(hi | lo);
        }
    };
    add(&packet[8..40]);
    let len = u32::try_from(body.len()).unwrap_or(0);
    add(&len.to_be_bytes());
    add(&[0, 0, 0, 58]);
    add(body);
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    let c = !(sum as u16);
    packet[IPV6 + 2..IPV6 + 4].copy_from_slice(&c.to_be_bytes());
}

// ---- request builders (the binding and config targets, the seed generator) ----

use std::net::SocketAddrV4;

use dhcproto::v4::{self, DhcpOption, MessageType};
use dhcproto::{v6, Encodable};
use nfdhcpd::core::frame::Udp4Addressing;
use nfdhcpd::core::frame6::Ipv6Addressing;

/// A client's DHCPv4 message of type `t` from `mac`, as a bare IPv4 packet
/// from 0.0.0.0:68 to 255.255.255.255:67; `edit` adds options.
pub fn dhcp4_request(t: MessageType, mac: MacAddr, edit: impl FnOnce(&mut v4::Message)) -> Vec<u8> {
    let zero = Ipv4Addr::UNSPECIFIED;
    let mut m = v4::Message::new_with_id(0x1234_5678, zero, zero, zero, zero, &mac.0);
    m.opts_mut().insert(DhcpOption::MessageType(t));
    edit(&mut m);
    ipv4_udp(
        mac,
        SocketAddrV4::new(zero, 68),
        SocketAddrV4::new(Ipv4Addr::BROADCAST, 67),
        &m.to_vec().unwrap(),
    )
}

/// A bare IPv4 + UDP packet around `payload`.
pub fn ipv4_udp(mac: MacAddr, src: SocketAddrV4, dst: SocketAddrV4, payload: &[u8]) -> Vec<u8> {
    let a = Udp4Addressing {
        src_mac: mac,
        dst_mac: MacAddr::BROADCAST,
        src,
        dst,
    };
    frame::udp4_frame(&a, payload).unwrap().split_off(14)
}

/// A bare IPv6 + UDP packet around `payload`, from port 546 to port 547.
pub fn ipv6_udp(src: Ipv6Addr, dst: Ipv6Addr, payload: &[u8]) -> Vec<u8> {
    let a = Ipv6Addressing {
        src_mac: GUEST_MAC,
        dst_mac: MacAddr::BROADCAST,
        src,
        dst,
        hop_limit: 1,
    };
    frame6::udp6_frame(&a, dhcp6::CLIENT_PORT, dhcp6::SERVER_PORT, payload)
        .unwrap()
        .split_off(14)
}

/// A client's DHCPv6 message of type `t` with the given options, from
/// `mac`'s link-local address to All_DHCP_Relay_Agents_and_Servers.
pub fn dhcp6_request(t: v6::MessageType, mac: MacAddr, opts: Vec<v6::DhcpOption>) -> Vec<u8> {
    let mut m = v6::Message::new_with_id(t, [0x12, 0x34, 0x56]);
    for o in opts {
        m.opts_mut().insert(o);
    }
    let dst = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 1, 2);
    ipv6_udp(frame6::link_local(mac), dst, &m.to_vec().unwrap())
}

/// A DUID-LL of `mac`, the client identifier most guests send.
pub fn duid_ll(mac: MacAddr) -> Vec<u8> {
    let mut d = vec![0, 3, 0, 1];
    d.extend_from_slice(&mac.0);
    d
}

/// A bare IPv6 + ICMPv6 packet with hop limit 255 and a valid checksum;
/// `body` is the ICMPv6 message after type, code and checksum.
pub fn icmpv6(src: Ipv6Addr, dst: Ipv6Addr, msg_type: u8, body: &[u8]) -> Vec<u8> {
    let len = u16::try_from(4 + body.len()).unwrap();
    let mut p = vec![0x60, 0, 0, 0];
    p.extend_from_slice(&len.to_be_bytes());
    p.extend_from_slice(&[58, 255]);
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    p.extend_from_slice(&[msg_type, 0, 0, 0]);
    p.extend_from_slice(body);
    fix_icmpv6_checksum(&mut p);
    p
}

/// A Router Solicitation from `mac`'s link-local address, with a Source
/// Link-Layer Address option when `sll`.
pub fn router_solicitation(mac: MacAddr, sll: bool) -> Vec<u8> {
    let mut body = vec![0; 4];
    if sll {
        body.extend_from_slice(&[1, 1]);
        body.extend_from_slice(&mac.0);
    }
    icmpv6(
        frame6::link_local(mac),
        Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 2),
        ndp::TYPE_ROUTER_SOLICITATION,
        &body,
    )
}

/// A Neighbor Solicitation for `target` from `src` (multicast to the
/// solicited-node group), with a Source Link-Layer Address option when `sll`.
pub fn neighbor_solicitation(src: Ipv6Addr, mac: MacAddr, target: Ipv6Addr, sll: bool) -> Vec<u8> {
    let mut body = vec![0; 4];
    body.extend_from_slice(&target.octets());
    if sll {
        body.extend_from_slice(&[1, 1]);
        body.extend_from_slice(&mac.0);
    }
    let t = target.octets();
    let group = Ipv6Addr::new(
        0xff02,
        0,
        0,
        0,
        0,
        1,
        0xff00 | u16::from(t[13]),
        u16::from_be_bytes([t[14], t[15]]),
    );
    icmpv6(src, group, ndp::TYPE_NEIGHBOR_SOLICITATION, &body)
}

/// Every kind of request a VM-host binding answers, built for `b`, each
/// run through its answer with `server_mac`: what a binding file (or a
/// configuration) changes in the answers, checked like the packet targets.
pub fn answer_all(b: &Binding, p4: &dhcp4::Params, p6: &dhcp6::Params, pn: &ndp::Params) {
    let ip = b.ip.unwrap_or(GUEST_IP);
    let discover = dhcp4_request(MessageType::Discover, b.mac, |_| {});
    let request = dhcp4_request(MessageType::Request, b.mac, |m| {
        m.opts_mut().insert(DhcpOption::RequestedIpAddress(ip));
    });
    let inform = dhcp4_request(MessageType::Inform, b.mac, |m| {
        m.set_ciaddr(ip);
    });
    for packet in [&discover, &request, &inform] {
        if let dhcp4::Outcome::Reply(r) = dhcp4::answer(packet, Some(b.mac), b, SERVER_MAC, p4) {
            check_udp4_frame(&r.frame);
        }
    }

    let ia = v6::DhcpOption::IANA(v6::IANA {
        id: 1,
        t1: 0,
        t2: 0,
        opts: v6::DhcpOptions::new(),
    });
    let client_id = v6::DhcpOption::ClientId(duid_ll(b.mac));
    let solicit = dhcp6_request(v6::MessageType::Solicit, b.mac, vec![client_id.clone(), ia]);
    let info = dhcp6_request(v6::MessageType::InformationRequest, b.mac, vec![client_id]);
    for packet in [&solicit, &info] {
        if let Some(r) = dhcp6::answer(packet, Some(b.mac), b, SERVER_MAC, p6).reply() {
            check_udp6_frame(&r.frame);
        }
    }

    if let ndp::Outcome::Reply(r) = ndp::answer_rs(
        &router_solicitation(b.mac, true),
        Some(b.mac),
        b,
        SERVER_MAC,
        pn,
    ) {
        check_icmpv6_frame(&r.frame, ndp::TYPE_ROUTER_ADVERTISEMENT);
    }
    let src = b.ip6.or(b.eui64).unwrap_or(frame6::link_local(b.mac));
    let targets = [
        b.gateway6,
        Some(frame6::link_local(SERVER_MAC)),
        b.subnet6.map(|n| n.network()),
    ];
    for target in targets.into_iter().flatten() {
        let ns = neighbor_solicitation(src, b.mac, target, true);
        if let ndp::Outcome::Reply(r) = ndp::answer_ns(&ns, Some(b.mac), b, SERVER_MAC) {
            check_icmpv6_frame(&r.frame, ndp::TYPE_NEIGHBOR_ADVERTISEMENT);
        }
    }
    for withdraw in [false, true] {
        if let Some(f) = ndp::periodic_ra(b, SERVER_MAC, pn, withdraw) {
            check_icmpv6_frame(&f, ndp::TYPE_ROUTER_ADVERTISEMENT);
        }
    }
}
