//! `nfdhcpd.conf` through `Config::parse`; a configuration that loads is
//! then put to use the way the daemon does: its settings go into every
//! answer (DHCPv4, DHCPv6, RS, NS, periodic RA, a relay-mode OFFER), which
//! must come out without a panic and well formed.
//!
//! Input: the file's bytes (invalid UTF-8 is replaced, since the loader
//! refuses such a file before parsing).
#![no_main]

use std::net::{Ipv4Addr, SocketAddrV4};

use dhcproto::v4::MessageType;
use libfuzzer_sys::fuzz_target;
use nfdhcpd::backend::{JobKind, Lease, LeaseKind, Outcome};
use nfdhcpd::config::Config;
use nfdhcpd::core::relay4::{self, RecvCtx, Step};
use nfdhcpd::host::answers::{ipv6_params, Answers};
use nfdhcpd_fuzz::*;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let Ok((cfg, _warnings)) = Config::parse(&text, "nfdhcpd.conf") else {
        return;
    };
    let _ = cfg.queues();
    let _ = cfg.backend();

    // As the daemon's start-up turns the configuration into answer
    // settings; the IPv6 ones also when IPv6 is off, to answer with them.
    let p4 = Answers::from_config(&cfg).dhcp4;
    let (pn, p6) = ipv6_params(&cfg);
    answer_all(&binding(), &p4, &p6, &pn);

    let settings = nfdhcpd::relay::settings::from_config(&cfg);
    let discover = dhcp4_request(MessageType::Discover, GUEST_MAC, |_| {});
    // The UDP payload: past the 20-byte IPv4 and 8-byte UDP headers.
    let req = relay4::parse(&discover[28..]).expect("the built DISCOVER parses");
    let ctx = RecvCtx {
        src: SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 67),
        local: Ipv4Addr::new(10, 0, 0, 1),
        ifindex: 7,
    };
    if let Step::Ask(job @ JobKind::Offer, _) = relay4::decide(&req, &ctx, &settings) {
        let lease = Lease {
            addr: GUEST_IP,
            network: "172.20.0.0/24".parse().unwrap(),
            gateway: Some(GATEWAY),
            dns: Vec::new(),
            boot: None,
            kind: LeaseKind::Dynamic,
            record: None,
            lease_secs: cfg.relay.lease_time,
            recorded_until: None,
        };
        let out = relay4::answer(&req, &ctx, &settings, &job, &Ok(Outcome::Lease(lease)))
            .expect("an OFFER for a usable lease");
        check_dhcp4(&out.payload);
    }
});
