//! What the benchmarks send and what answers look like: the guest's request
//! frames, the daemon's configuration and bindings, and the echo server's
//! fixed reply frames (made once, at start, by the daemon's own core).

use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::Path;

use nfdhcpd::config::Config;
use nfdhcpd::core::binding::Binding;
use nfdhcpd::core::frame::{self, Udp4Addressing};
use nfdhcpd::core::frame6::{self, finish_icmpv6_frame, Ipv6Addressing, ICMPV6_OFFSET};
use nfdhcpd::core::mac::MacAddr;
use nfdhcpd::core::{dhcp4, ndp};
use nfdhcpd::host::answers::Answers;

use crate::Res;

pub const DHCP_QUEUE: u16 = 42;
pub const RS_QUEUE: u16 = 43;
/// The host side of the guest's veth pair, the binding's name.
pub const TAP: &str = "tap0";
pub const TAP_MAC: MacAddr = MacAddr([0x02, 0x00, 0x00, 0x00, 0x00, 0xfe]);
pub const GUEST_MAC: MacAddr = MacAddr([0x52, 0x54, 0x00, 0x1b, 0x31, 0x20]);

/// Offset of the BOOTP xid in a DHCPv4 frame (Ethernet + 20-byte IPv4 +
/// UDP headers, then op, htype, hlen, hops).
pub const XID_OFFSET: usize = frame::UDP4_HEADERS_LEN + 4;
/// The same field in the IPv4 packet NFQUEUE hands over (no Ethernet header).
pub const XID_OFFSET_IN_PACKET: usize = XID_OFFSET - frame::ETHERNET_HEADER_LEN;
/// The UDP checksum of a DHCPv4 frame; zero (none) in the flood, so that
/// the xid can change without recomputing it.
const UDP_CHECKSUM_OFFSET: usize = frame::ETHERNET_HEADER_LEN + 20 + 6;

/// Which request the flood sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    /// DHCPDISCOVER -> DHCPOFFER, matched by xid.
    Dhcp,
    /// Router Solicitation -> Router Advertisement, matched in order.
    Rs,
}

impl Proto {
    pub fn title(self) -> &'static str {
        match self {
            Proto::Dhcp => "DHCPv4 DISCOVER -> OFFER (queue 42)",
            Proto::Rs => "Router Solicitation -> Router Advertisement (queue 43)",
        }
    }

    pub fn queue(self) -> u16 {
        match self {
            Proto::Dhcp => DHCP_QUEUE,
            Proto::Rs => RS_QUEUE,
        }
    }
}

/// The guest's binding file (`tap0`), dual-stack.
pub fn guest_binding_text(hostname: &str) -> String {
    format!(
        "INDEV={TAP}\nIP=172.20.0.101\nMAC={GUEST_MAC}\nHOSTNAME={hostname}\nTAGS=\"\"\n\
         GATEWAY=172.20.0.1\nSUBNET=172.20.0.0/24\n\
         GATEWAY6=2001:db8:aaaa:bbbb::1\nSUBNET6=2001:db8:aaaa:bbbb::/64\n\
         EUI64=2001:db8:aaaa:bbbb:5054:ff:fe1b:3120\nPRIVATE=\nMTU=\nMACSPOOF=\n"
    )
}

/// Binding `n` (not the guest's) of the scale test: its own MAC, /24 and
/// /64; its interface does not exist.
pub fn other_binding_text(n: u32, hostname: &str) -> String {
    let (hi, lo) = ((n >> 8) as u8, n as u8);
    format!(
        "INDEV=tap{n}\nIP=10.{hi}.{lo}.10\nMAC=02:bb:00:00:{hi:02x}:{lo:02x}\n\
         HOSTNAME={hostname}\nTAGS=\"\"\nGATEWAY=10.{hi}.{lo}.1\nSUBNET=10.{hi}.{lo}.0/24\n\
         GATEWAY6=2001:db8:{n:x}::1\nSUBNET6=2001:db8:{n:x}::/64\n\
         EUI64=2001:db8:{n:x}::bb:ff:fe00:{n:x}\nPRIVATE=\nMTU=\nMACSPOOF=\n"
    )
}

/// The daemon's configuration: DHCPv4 on queue 42, SLAAC with RS on queue
/// 43, no NS or DHCPv6 queue (nothing floods them), no periodic RA during a
/// run, and no `[limits]`: the flood comes from one client, and what is
/// measured is the answer path, not the limiter. Logging goes to
/// `dir/nfdhcpd.log`, one line per answer, as it would to syslog.
pub fn daemon_config(dir: &Path, datapath: &Path) -> String {
    format!(
        "[general]\npidfile = {pid}\ndatapath = {data}\nlogdir = {dir}\n\n\
         [dhcp]\nenable_dhcp = yes\nlease_lifetime = 604800\nlease_renewal = 600\n\
         server_ip = 172.20.0.4\ndhcp_queue = {DHCP_QUEUE}\n\
         nameservers = 192.0.2.53, 198.51.100.53\ndomain = example.com\n\n\
         [ipv6]\nenable_ipv6 = yes\nmode = slaac\nrs_queue = {RS_QUEUE}\nns_queue =\n\
         dhcpv6_queue =\nra_period = 1800\nnameservers = 2001:db8:100::1, 2001:db8:200::2\n\
         domains = example.com\n\n\
         [limits]\ninterface_rate = 0\nmac_rate = 0\n",
        pid = dir.join("nfdhcpd.pid").display(),
        data = datapath.display(),
        dir = dir.display(),
    )
}

/// The `[dhcp]` and `[ipv6]` answer settings of a configuration, as the
/// daemon derives them.
pub fn params(cfg: &Config) -> (dhcp4::Params, ndp::Params) {
    (
        Answers::from_config(cfg).dhcp4,
        nfdhcpd::host::answers::ipv6_params(cfg).0,
    )
}

/// A DHCPDISCOVER from the guest as a CentOS dhclient sends it (client id,
/// host name, parameter request list), broadcast, xid 0, no UDP checksum.
pub fn discover_frame() -> Vec<u8> {
    let mut p = vec![0u8; 240];
    p[0] = 1; // BOOTREQUEST
    p[1] = 1; // Ethernet
    p[2] = 6;
    p[28..34].copy_from_slice(&GUEST_MAC.0);
    p[236..240].copy_from_slice(&[99, 130, 83, 99]);
    p.extend_from_slice(&[53, 1, 1]);
    p.extend_from_slice(&[61, 7, 1]);
    p.extend_from_slice(&GUEST_MAC.0);
    p.extend_from_slice(&[12, 11]);
    p.extend_from_slice(b"bench-guest");
    p.extend_from_slice(&[55, 13, 1, 28, 2, 3, 15, 6, 119, 12, 44, 47, 26, 121, 42]);
    p.push(255);
    // BOOTP's minimum message size.
    p.resize(300, 0);
    let a = Udp4Addressing {
        src_mac: GUEST_MAC,
        dst_mac: MacAddr::BROADCAST,
        src: SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, dhcp4::CLIENT_PORT),
        dst: SocketAddrV4::new(Ipv4Addr::BROADCAST, dhcp4::SERVER_PORT),
    };
    let mut f = frame::udp4_frame(&a, &p).expect("DISCOVER frame");
    f[UDP_CHECKSUM_OFFSET..UDP_CHECKSUM_OFFSET + 2].copy_from_slice(&[0, 0]);
    f
}

/// A Router Solicitation from the guest's link-local address to ff02::2
/// with its source link-layer address option.
pub fn rs_frame() -> Vec<u8> {
    let mut f = vec![0u8; ICMPV6_OFFSET];
    f.extend_from_slice(&[ndp::TYPE_ROUTER_SOLICITATION, 0, 0, 0, 0, 0, 0, 0, 1, 1]);
    f.extend_from_slice(&GUEST_MAC.0);
    let a = Ipv6Addressing {
        src_mac: GUEST_MAC,
        dst_mac: MacAddr([0x33, 0x33, 0, 0, 0, 2]),
        src: frame6::link_local(GUEST_MAC),
        dst: "ff02::2".parse().expect("ff02::2"),
        hop_limit: frame6::ND_HOP_LIMIT,
    };
    finish_icmpv6_frame(&mut f, &a).expect("RS frame");
    f
}

/// The OFFER the daemon sends for [`discover_frame`]: the echo server's
/// fixed DHCPv4 reply, into which it only copies the request's xid.
pub fn offer_template(b: &Binding, server_mac: MacAddr, p: &dhcp4::Params) -> Res<Vec<u8>> {
    let req = discover_frame();
    match dhcp4::answer(
        &req[frame::ETHERNET_HEADER_LEN..],
        Some(GUEST_MAC),
        b,
        server_mac,
        p,
    ) {
        dhcp4::Outcome::Reply(r) => Ok(r.frame),
        other => Err(format!("the benchmark DISCOVER got no OFFER: {other:?}")),
    }
}

/// The RA the daemon sends for [`rs_frame`]: the echo server's fixed RS reply.
pub fn ra_template(b: &Binding, server_mac: MacAddr, p: &ndp::Params) -> Res<Vec<u8>> {
    let req = rs_frame();
    match ndp::answer_rs(
        &req[frame::ETHERNET_HEADER_LEN..],
        Some(GUEST_MAC),
        b,
        server_mac,
        p,
    ) {
        ndp::Outcome::Reply(r) => Ok(r.frame),
        other => Err(format!("the benchmark RS got no RA: {other:?}")),
    }
}
