//! A DHCPv6 request as NFQUEUE hands it over (a bare IPv6 packet) through
//! `dhcp6::answer`: IPv6/UDP parsing, the message and its nested options,
//! the identifier checks, the answer and its frame.
//!
//! Input: one setup byte, then the IPv6 packet.
//!   bits 0-1  source MAC (see `nfdhcpd_fuzz::src_mac`)
//!   bit 2     MACSPOOF
//!   bit 3     stateless (no IA_NA addresses handed out)
//!   bit 4     binding without IP6 (the EUI-64 address is handed out)
//!   bit 5     binding without any IPv6 address or subnet
//!   bit 6     oversized configuration (hundreds of servers and domains)
//!   bit 7     odd lifetimes (T1 > T2, preferred > valid, zero and infinite)
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use nfdhcpd::core::binding::Binding;
use nfdhcpd::core::dhcp6::{self, Params};
use nfdhcpd_fuzz::*;

/// Every setup, built once: the oversized ones would otherwise cost more
/// than the code under test.
static SETUPS: LazyLock<Vec<(Binding, Params)>> = LazyLock::new(|| (0..=255).map(setup).collect());

fn setup(s: u8) -> (Binding, Params) {
    let mut b = binding();
    let mut p = dhcp6_params();
    b.macspoof = s & 1 << 2 != 0;
    p.stateful = s & 1 << 3 == 0;
    if s & 1 << 4 != 0 {
        b.ip6 = None;
    }
    if s & 1 << 5 != 0 {
        b.ip6 = None;
        b.eui64 = None;
        b.subnet6 = None;
        b.gateway6 = None;
    }
    if s & 1 << 6 != 0 {
        p.nameservers = many_v6(300);
        p.domains = many_domains();
    }
    if s & 1 << 7 != 0 {
        p.t1 = u32::MAX;
        p.t2 = 0;
        p.preferred_lifetime = u32::MAX;
        p.valid_lifetime = 1;
    }
    (b, p)
}

fuzz_target!(|data: &[u8]| {
    let Some((&[s], packet)) = split::<1>(data) else {
        return;
    };
    let (b, p) = &SETUPS[usize::from(s)];
    let src = src_mac(s, b.mac);
    let outcome = dhcp6::answer(packet, src, b, SERVER_MAC, p);
    if let Some(r) = outcome.reply() {
        check_udp6_frame(&r.frame);
        if !b.macspoof {
            assert!(src.is_none_or(|m| m == b.mac));
        }
    }
});
