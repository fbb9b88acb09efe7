//! A Router Solicitation or a Neighbor Solicitation as NFQUEUE hands it
//! over (a bare IPv6 packet) through `ndp::answer_rs` / `ndp::answer_ns`.
//!
//! Input: one setup byte, then the IPv6 packet.
//!   bit 0     0: RS (queue 43), 1: NS (queue 44)
//!   bits 1-2  source MAC (see `nfdhcpd_fuzz::src_mac`)
//!   bit 3     MACSPOOF
//!   bit 4     the harness rewrites the ICMPv6 checksum (else the packet's own)
//!   bit 5     PRIVATE binding without GATEWAY6
//!   bit 6     binding without SUBNET6
//!   bit 7     oversized configuration (hundreds of servers and domains,
//!             extreme lifetimes) and an MTU
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use nfdhcpd::core::binding::Binding;
use nfdhcpd::core::frame6::link_local;
use nfdhcpd::core::ndp::{self, Outcome, Params};
use nfdhcpd_fuzz::*;

/// Every setup, built once: the oversized ones would otherwise cost more
/// than the code under test.
static SETUPS: LazyLock<Vec<(Binding, Params)>> = LazyLock::new(|| (0..=255).map(setup).collect());

fn setup(s: u8) -> (Binding, Params) {
    let mut b = binding();
    let mut p = ndp_params();
    b.macspoof = s & 1 << 3 != 0;
    if s & 1 << 5 != 0 {
        b.private = true;
        b.gateway6 = None;
    }
    if s & 1 << 6 != 0 {
        b.subnet6 = None;
    }
    if s & 1 << 7 != 0 {
        p.nameservers = many_v6(300);
        p.domains = many_domains();
        p.router_lifetime = u32::MAX;
        p.prefix_valid_lifetime = 0;
        p.prefix_preferred_lifetime = u32::MAX;
        p.dns_lifetime = u32::MAX;
        p.managed = true;
        b.mtu = Some(9000);
    }
    (b, p)
}

fuzz_target!(|data: &[u8]| {
    let Some((&[s], packet)) = split::<1>(data) else {
        return;
    };
    let mut packet = packet.to_vec();
    if s & 1 << 4 != 0 {
        fix_icmpv6_checksum(&mut packet);
    }
    let (b, p) = &SETUPS[usize::from(s)];
    let src = src_mac(s >> 1, b.mac);
    if s & 1 == 0 {
        if let Outcome::Reply(r) = ndp::answer_rs(&packet, src, b, SERVER_MAC, p) {
            check_icmpv6_frame(&r.frame, ndp::TYPE_ROUTER_ADVERTISEMENT);
        }
    } else if let Outcome::Reply(r) = ndp::answer_ns(&packet, src, b, SERVER_MAC) {
        check_icmpv6_frame(&r.frame, ndp::TYPE_NEIGHBOR_ADVERTISEMENT);
        let target = r.addr.expect("an NA names its target");
        // Never claim the guest's own addresses (it would lose them).
        assert_ne!(Some(target), b.ip6);
        assert_ne!(Some(target), b.eui64);
        assert_ne!(target, link_local(b.mac));
    }
});
