//! A DHCPv4 request as NFQUEUE hands it over (a bare IPv4 packet) through
//! the whole pure decision: IPv4/UDP parsing, the DHCP message, the MAC
//! checks, the answer and its encoding into an Ethernet frame.
//!
//! Input: one setup byte, then the IPv4 packet.
//!   bits 0-1  source MAC (see `nfdhcpd_fuzz::src_mac`)
//!   bit 2     MACSPOOF
//!   bit 3     PRIVATE
//!   bit 4     server_on_link
//!   bit 5     routed binding: the gateway outside the subnet, no server_ip
//!   bit 6     binding without IP and SUBNET
//!   bit 7     oversized configuration (hundreds of name servers, long names, MTU)
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use nfdhcpd::core::binding::Binding;
use nfdhcpd::core::dhcp4::{self, Outcome, Params};
use nfdhcpd_fuzz::*;

/// Every setup, built once: the oversized ones would otherwise cost more
/// than the code under test.
static SETUPS: LazyLock<Vec<(Binding, Params)>> = LazyLock::new(|| (0..=255).map(setup).collect());

fn setup(s: u8) -> (Binding, Params) {
    let mut b = binding();
    let mut p = dhcp4_params();
    b.macspoof = s & 1 << 2 != 0;
    b.private = s & 1 << 3 != 0;
    p.server_on_link = s & 1 << 4 != 0;
    if s & 1 << 5 != 0 {
        b.gateway = Some("10.255.255.1".parse().unwrap());
        b.subnet = Some("172.20.0.101/32".parse().unwrap());
        p.server_ip = None;
    }
    if s & 1 << 6 != 0 {
        b.ip = None;
        b.subnet = None;
    }
    if s & 1 << 7 != 0 {
        p.nameservers = many_v4(300);
        p.domain = Some("d".repeat(400));
        b.hostname = format!("{}.example.org", "h".repeat(300));
        b.mtu = Some(9000);
    }
    (b, p)
}

fuzz_target!(|data: &[u8]| {
    let Some((&[s], packet)) = split::<1>(data) else {
        return;
    };
    let (b, p) = &SETUPS[usize::from(s)];
    let src = src_mac(s, b.mac);
    match dhcp4::answer(packet, src, b, SERVER_MAC, p) {
        Outcome::Reply(r) => {
            let m = check_udp4_frame(&r.frame);
            assert_eq!(r.client_mac.0, m.chaddr()[..6]);
            if !b.macspoof {
                assert_eq!(r.client_mac, b.mac);
            }
            // The one allocation per answer: the frame never grows past
            // what a DHCP message can be.
            assert!(r.frame.len() <= 14 + 65_535);
        }
        Outcome::Released { client_mac, .. } | Outcome::Declined { client_mac, .. } => {
            if !b.macspoof {
                assert_eq!(client_mac, b.mac);
            }
        }
        Outcome::Refused(_) => {}
    }
});
