use super::*;
use crate::core::binding;
use crate::core::frame6::tests::check_frame;
use crate::core::frame6::ETHERNET_HEADER_LEN;
use etherparse::Icmpv6Slice;

const GUEST: MacAddr = MacAddr([0xaa, 0x6b, 0x39, 0x22, 0x33, 0x44]);
const SERVER: MacAddr = MacAddr([0x02, 0x00, 0x5e, 0x10, 0x20, 0x30]);
const OTHER: MacAddr = MacAddr([0xaa, 0x6b, 0x39, 0x99, 0x99, 0x99]);

fn ip(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

fn sample_binding() -> Binding {
    binding::parse(
        "tap10",
        b"MAC=aa:6b:39:22:33:44\nHOSTNAME=testing-vm\n\
              GATEWAY6=2001:db8:aaaa:bbbb::1\nSUBNET6=2001:db8:aaaa:bbbb::/64\n\
              EUI64=2001:db8:aaaa:bbbb:a86b:39ff:fe22:3344\n\
              IP6=2001:db8:aaaa:bbbb::100\nMTU=1450\n",
    )
    .unwrap()
}

fn params() -> Params {
    Params {
        router_lifetime: 900,
        prefix_valid_lifetime: 2_592_000,
        prefix_preferred_lifetime: 604_800,
        dns_lifetime: 900,
        nameservers: vec![ip("2001:db8:100::1"), ip("2001:db8:200::2")],
        domains: vec!["example.com".into(), "vm.example.org.".into()],
        other_config: true,
        managed: false,
    }
}

fn guest_ll() -> Ipv6Addr {
    ip("fe80::a86b:39ff:fe22:3344")
}

/// An ND message from the guest as NFQUEUE delivers it: IPv6 header
/// first, checksum filled in.
fn icmp_packet(src: Ipv6Addr, dst: Ipv6Addr, hop_limit: u8, msg: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8; ICMPV6_OFFSET];
    f.extend_from_slice(msg);
    let a = Ipv6Addressing {
        src_mac: GUEST,
        dst_mac: ALL_NODES_MAC,
        src,
        dst,
        hop_limit,
    };
    finish_icmpv6_frame(&mut f, &a).unwrap();
    f.split_off(ETHERNET_HEADER_LEN)
}

fn rs_msg(sll: Option<MacAddr>) -> Vec<u8> {
    let mut m = vec![TYPE_ROUTER_SOLICITATION, 0, 0, 0, 0, 0, 0, 0];
    if let Some(mac) = sll {
        m.extend_from_slice(&[1, 1]);
        m.extend_from_slice(&mac.0);
    }
    m
}

fn rs_packet() -> Vec<u8> {
    icmp_packet(guest_ll(), ip("ff02::2"), 255, &rs_msg(Some(GUEST)))
}

fn ns_msg(target: Ipv6Addr, sll: Option<MacAddr>) -> Vec<u8> {
    let mut m = vec![TYPE_NEIGHBOR_SOLICITATION, 0, 0, 0, 0, 0, 0, 0];
    m.extend_from_slice(&target.octets());
    if let Some(mac) = sll {
        m.extend_from_slice(&[1, 1]);
        m.extend_from_slice(&mac.0);
    }
    m
}

fn solicited_node(a: Ipv6Addr) -> Ipv6Addr {
    let o = a.octets();
    Ipv6Addr::from([
        0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, o[13], o[14], o[15],
    ])
}

fn ns_packet(target: Ipv6Addr) -> Vec<u8> {
    icmp_packet(
        guest_ll(),
        solicited_node(target),
        255,
        &ns_msg(target, Some(GUEST)),
    )
}

fn reply(o: Outcome) -> Reply {
    match o {
        Outcome::Reply(r) => r,
        Outcome::Refused(r) => panic!("refused: {}", r.name()),
    }
}

fn ra_addressing() -> Ipv6Addressing {
    Ipv6Addressing {
        src_mac: SERVER,
        dst_mac: ALL_NODES_MAC,
        src: ip("fe80::5eff:fe10:2030"),
        dst: ALL_NODES,
        hop_limit: 255,
    }
}

/// Splits an RA frame into its fixed part and its options, checking the
/// Ethernet and IPv6 headers and the checksum on the way.
fn ra_parts(frame: &[u8]) -> (Vec<u8>, Vec<(u8, Vec<u8>)>) {
    let icmp = check_frame(frame, &ra_addressing(), 58);
    assert!(Icmpv6Slice::from_slice(&icmp)
        .unwrap()
        .is_checksum_valid(ra_addressing().src.octets(), ALL_NODES.octets()));
    assert_eq!(&icmp[..2], &[134, 0]);
    let mut opts = Vec::new();
    let mut rest = &icmp[16..];
    while !rest.is_empty() {
        let len = rest[1] as usize * 8;
        assert!(len > 0 && len <= rest.len(), "option length");
        opts.push((rest[0], rest[..len].to_vec()));
        rest = &rest[len..];
    }
    // etherparse reads the same option list.
    let parsed: Result<Vec<_>, _> = NdpOptionsIterator::from_slice(&icmp[16..]).collect();
    assert_eq!(parsed.unwrap().len(), opts.len());
    (icmp[..16].to_vec(), opts)
}

fn expected_rdnss() -> Vec<u8> {
    let mut v = vec![25, 5, 0, 0, 0, 0, 0x03, 0x84];
    v.extend_from_slice(&[
        0x20, 0x01, 0x0d, 0xb8, 0x01, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,
    ]);
    v.extend_from_slice(&[
        0x20, 0x01, 0x0d, 0xb8, 0x02, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2,
    ]);
    v
}

fn expected_dnssl() -> Vec<u8> {
    let mut v = vec![31, 5, 0, 0, 0, 0, 0x03, 0x84];
    v.extend_from_slice(b"\x07example\x03com\x00");
    v.extend_from_slice(b"\x02vm\x07example\x03org\x00");
    v.extend_from_slice(&[0, 0, 0]);
    assert_eq!(v.len(), 40);
    v
}

#[test]
fn kind_names() {
    let names: Vec<_> = [
        Kind::RouterSolicitation,
        Kind::RouterAdvertisement,
        Kind::NeighborSolicitation,
        Kind::NeighborAdvertisement,
    ]
    .iter()
    .map(|k| k.name())
    .collect();
    assert_eq!(names, ["RS", "RA", "NS", "NA"]);
}

#[test]
fn rs_gets_a_full_ra() {
    let b = sample_binding();
    let r = reply(answer_rs(&rs_packet(), Some(GUEST), &b, SERVER, &params()));
    assert_eq!(r.request, Kind::RouterSolicitation);
    assert_eq!(r.kind, Kind::RouterAdvertisement);
    assert_eq!(r.client_mac, GUEST);
    assert_eq!(r.addr, None);
    assert!(r.frame.capacity() < r.frame.len() + 8, "sized up front");

    let (fixed, opts) = ra_parts(&r.frame);
    assert_eq!(fixed[4], 64, "cur hop limit");
    assert_eq!(fixed[5], 0x40, "O set, M clear");
    assert_eq!(&fixed[6..8], &900u16.to_be_bytes(), "router lifetime");
    assert_eq!(&fixed[8..16], &[0; 8], "reachable time, retrans timer");

    let types: Vec<u8> = opts.iter().map(|o| o.0).collect();
    assert_eq!(types, [1, 5, 3, 25, 31]);
    assert_eq!(opts[0].1, [1, 1, 0x02, 0x00, 0x5e, 0x10, 0x20, 0x30]);
    assert_eq!(opts[1].1, [5, 1, 0, 0, 0, 0, 0x05, 0xaa], "MTU 1450");
    let pio = PrefixInformation::from_slice(&opts[2].1).unwrap();
    assert_eq!(
        pio,
        PrefixInformation {
            prefix_length: 64,
            on_link: true,
            autonomous_address_configuration: true,
            valid_lifetime: 2_592_000,
            preferred_lifetime: 604_800,
            prefix: ip("2001:db8:aaaa:bbbb::").octets(),
        }
    );
    assert_eq!(&opts[2].1[3..4], &[0xc0], "L and A, nothing else");
    assert_eq!(opts[3].1, expected_rdnss());
    assert_eq!(opts[4].1, expected_dnssl());
    assert_eq!(r.frame.len(), 14 + 40 + 16 + 8 + 8 + 32 + 40 + 40);
}

#[test]
fn flags_lifetimes_and_optional_options() {
    let mut b = sample_binding();
    b.mtu = None;
    let p = Params {
        router_lifetime: 100_000,
        prefix_preferred_lifetime: 3_000_000,
        nameservers: vec![],
        domains: vec![],
        other_config: false,
        managed: true,
        ..params()
    };
    let f = periodic_ra(&b, SERVER, &p, false).unwrap();
    let (fixed, opts) = ra_parts(&f);
    assert_eq!(fixed[5], 0x80, "M set, O clear");
    assert_eq!(&fixed[6..8], &[0xff, 0xff], "saturated router lifetime");
    assert_eq!(opts.iter().map(|o| o.0).collect::<Vec<_>>(), [1, 3]);
    let pio = PrefixInformation::from_slice(&opts[1].1).unwrap();
    assert_eq!(pio.preferred_lifetime, 2_592_000, "capped at valid");
    assert_eq!(f.len(), 14 + 40 + 16 + 8 + 32);

    // Only unusable domain names: no DNSSL at all.
    let p = Params {
        domains: vec!["".into(), "a..b".into(), "x".repeat(64)],
        ..p
    };
    let (_, opts) = ra_parts(&periodic_ra(&b, SERVER, &p, false).unwrap());
    assert_eq!(opts.iter().map(|o| o.0).collect::<Vec<_>>(), [1, 3]);
}

#[test]
fn periodic_and_withdrawing_ras() {
    let b = sample_binding();
    let solicited = reply(answer_rs(&rs_packet(), Some(GUEST), &b, SERVER, &params())).frame;
    let periodic = periodic_ra(&b, SERVER, &params(), false).unwrap();
    assert_eq!(periodic, solicited, "same RA either way");

    let w = periodic_ra(&b, SERVER, &params(), true).unwrap();
    let (fixed, opts) = ra_parts(&w);
    assert_eq!(&fixed[6..8], &[0, 0], "router lifetime 0 withdraws");
    let (_, normal_opts) = ra_parts(&periodic);
    assert_eq!(opts, normal_opts, "prefix and DNS lifetimes are kept");

    let mut private = sample_binding();
    private.private = true;
    let (fixed, _) = ra_parts(&periodic_ra(&private, SERVER, &params(), false).unwrap());
    assert_eq!(&fixed[6..8], &[0, 0], "PRIVATE: not a default router");

    let mut bare = sample_binding();
    bare.subnet6 = None;
    assert_eq!(periodic_ra(&bare, SERVER, &params(), false), None);
    assert_eq!(periodic_ra(&bare, SERVER, &params(), true), None);
    assert_eq!(
        answer_rs(&rs_packet(), Some(GUEST), &bare, SERVER, &params()),
        Outcome::Refused(Refusal::Unconfigured)
    );
}

#[test]
fn rdnss_and_dnssl_limits() {
    let b = sample_binding();
    let p = Params {
        nameservers: (0..200u16)
            .map(|i| Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, i))
            .collect(),
        // Each name is 63 + 63 + 63 + 61 + 4 length bytes + root = 255.
        domains: (0..10)
            .map(|i| {
                format!(
                    "{}.{}.{}.{:0>61}",
                    "a".repeat(63),
                    "b".repeat(63),
                    "c".repeat(63),
                    i
                )
            })
            .collect(),
        ..params()
    };
    let (_, opts) = ra_parts(&periodic_ra(&b, SERVER, &p, false).unwrap());
    let rdnss = &opts[3].1;
    assert_eq!(rdnss[1], 255);
    assert_eq!(rdnss.len(), 8 + 16 * 127);
    let dnssl = &opts[4].1;
    // Seven names of 255 bytes fit in the 2032 bytes available.
    assert_eq!(dnssl.len(), (8 + 7 * 255usize).next_multiple_of(8));
    assert_eq!(dnssl[1] as usize * 8, dnssl.len());
}

#[test]
fn domain_name_encoding() {
    let mut out = Vec::new();
    let n = encode_domain_names(
        &[
            "Example.COM.".into(),
            ".".into(),
            "bad..name".into(),
            "a".into(),
            format!("{}.com", "x".repeat(64)),
            format!(
                "{}.{}.{}.{}",
                "x".repeat(63),
                "y".repeat(63),
                "z".repeat(63),
                "w".repeat(61)
            ),
            format!(
                "{}.{}.{}.{}",
                "x".repeat(63),
                "y".repeat(63),
                "z".repeat(63),
                "w".repeat(62)
            ),
        ],
        &mut out,
        1000,
    );
    let mut want = b"\x07Example\x03COM\x00\x01a\x00".to_vec();
    assert_eq!(&out[..want.len()], &want[..]);
    assert_eq!(n, want.len() + 255, "253 characters fit, 254 do not");
    want.clear();
    assert_eq!(
        encode_domain_names(&["a.b".into()], &mut want, 4),
        0,
        "over max_len"
    );
    assert!(want.is_empty());
}

#[test]
fn rs_checks() {
    let b = sample_binding();
    let p = params();
    let refused =
        |pkt: &[u8], mac: Option<MacAddr>, b: &Binding| match answer_rs(pkt, mac, b, SERVER, &p) {
            Outcome::Refused(r) => Some(r),
            Outcome::Reply(_) => None,
        };
    // Spoofed Ethernet source or link-layer option.
    assert_eq!(
        refused(&rs_packet(), Some(OTHER), &b),
        Some(Refusal::SpoofedMac)
    );
    let other_sll = icmp_packet(guest_ll(), ip("ff02::2"), 255, &rs_msg(Some(OTHER)));
    assert_eq!(
        refused(&other_sll, Some(GUEST), &b),
        Some(Refusal::SpoofedMac)
    );
    assert_eq!(refused(&other_sll, None, &b), Some(Refusal::SpoofedMac));
    let mut spoof_ok = sample_binding();
    spoof_ok.macspoof = true;
    let r = reply(answer_rs(&other_sll, Some(OTHER), &spoof_ok, SERVER, &p));
    assert_eq!(r.client_mac, OTHER);
    let r = reply(answer_rs(&other_sll, None, &spoof_ok, SERVER, &p));
    assert_eq!(r.client_mac, OTHER, "from the link-layer option");

    // From :: (no link-local yet): fine without the option, not with it.
    let unspec = icmp_packet(Ipv6Addr::UNSPECIFIED, ip("ff02::2"), 255, &rs_msg(None));
    let r = reply(answer_rs(&unspec, Some(GUEST), &b, SERVER, &p));
    assert_eq!(r.client_mac, GUEST);
    let r = reply(answer_rs(&unspec, None, &b, SERVER, &p));
    assert_eq!(r.client_mac, GUEST, "the binding's MAC without a source");
    let bad = icmp_packet(
        Ipv6Addr::UNSPECIFIED,
        ip("ff02::2"),
        255,
        &rs_msg(Some(GUEST)),
    );
    assert_eq!(refused(&bad, Some(GUEST), &b), Some(Refusal::Malformed));

    // Hop limit, code, checksum, option lengths.
    let hop64 = icmp_packet(guest_ll(), ip("ff02::2"), 64, &rs_msg(Some(GUEST)));
    assert_eq!(refused(&hop64, Some(GUEST), &b), Some(Refusal::Malformed));
    let mut code1 = rs_msg(Some(GUEST));
    code1[1] = 1;
    let code1 = icmp_packet(guest_ll(), ip("ff02::2"), 255, &code1);
    assert_eq!(refused(&code1, Some(GUEST), &b), Some(Refusal::Malformed));
    let mut bad_sum = rs_packet();
    bad_sum[42] ^= 1;
    assert_eq!(refused(&bad_sum, Some(GUEST), &b), Some(Refusal::Malformed));
    let zero_opt = icmp_packet(
        guest_ll(),
        ip("ff02::2"),
        255,
        &[133, 0, 0, 0, 0, 0, 0, 0, 1, 0],
    );
    assert_eq!(
        refused(&zero_opt, Some(GUEST), &b),
        Some(Refusal::Malformed)
    );
    let mut long_sll = rs_msg(None);
    long_sll.extend_from_slice(&[
        1, 2, 0xaa, 0x6b, 0x39, 0x22, 0x33, 0x44, 0, 0, 0, 0, 0, 0, 0, 0,
    ]);
    let long_sll = icmp_packet(guest_ll(), ip("ff02::2"), 255, &long_sll);
    assert_eq!(
        refused(&long_sll, Some(GUEST), &b),
        Some(Refusal::Malformed)
    );
    // Unknown options are skipped.
    let mut extra = rs_msg(Some(GUEST));
    extra.extend_from_slice(&[200, 1, 0, 0, 0, 0, 0, 0]);
    let extra = icmp_packet(guest_ll(), ip("ff02::2"), 255, &extra);
    assert_eq!(refused(&extra, Some(GUEST), &b), None);

    // Other messages on the queue.
    assert_eq!(
        refused(&ns_packet(ip("2001:db8:aaaa:bbbb::1")), Some(GUEST), &b),
        Some(Refusal::NotARequest)
    );
    assert_eq!(refused(&[], Some(GUEST), &b), Some(Refusal::Malformed));
}

fn na_check(r: &Reply, dst_mac: MacAddr, dst: Ipv6Addr, target: Ipv6Addr) {
    assert_eq!(r.request, Kind::NeighborSolicitation);
    assert_eq!(r.kind, Kind::NeighborAdvertisement);
    assert_eq!(r.addr, Some(target));
    assert_eq!(r.frame.capacity(), r.frame.len());
    // The NA comes from the target address itself.
    let a = Ipv6Addressing {
        src_mac: SERVER,
        dst_mac,
        src: target,
        dst,
        hop_limit: 255,
    };
    let icmp = check_frame(&r.frame, &a, 58);
    let mut want = vec![136, 0];
    want.extend_from_slice(&icmp[2..4]);
    want.extend_from_slice(&[0xe0, 0, 0, 0]);
    want.extend_from_slice(&target.octets());
    want.extend_from_slice(&[2, 1, 0x02, 0x00, 0x5e, 0x10, 0x20, 0x30]);
    assert_eq!(icmp, want);
    let s = Icmpv6Slice::from_slice(&icmp).unwrap();
    assert!(s.is_checksum_valid(a.src.octets(), dst.octets()));
    match s.icmp_type() {
        etherparse::Icmpv6Type::NeighborAdvertisement(h) => {
            assert!(h.router && h.solicited && h.r#override)
        }
        t => panic!("{t:?}"),
    }
}

#[test]
fn ns_for_gateway_host_and_routed_addresses() {
    let b = sample_binding();
    for target in [
        ip("2001:db8:aaaa:bbbb::1"),
        link_local(SERVER),
        ip("2001:db8:aaaa:bbbb::5"),
        ip("2001:db8:aaaa:bbbb:ffff:ffff:ffff:ffff"),
    ] {
        let r = reply(answer_ns(&ns_packet(target), Some(GUEST), &b, SERVER));
        assert_eq!(r.client_mac, GUEST);
        na_check(&r, GUEST, guest_ll(), target);
    }
    // Unicast NUD from the guest's global address to the router.
    let nud = icmp_packet(
        ip("2001:db8:aaaa:bbbb:a86b:39ff:fe22:3344"),
        link_local(SERVER),
        255,
        &ns_msg(link_local(SERVER), None),
    );
    let r = reply(answer_ns(&nud, Some(GUEST), &b, SERVER));
    na_check(
        &r,
        GUEST,
        ip("2001:db8:aaaa:bbbb:a86b:39ff:fe22:3344"),
        link_local(SERVER),
    );

    // A link-local gateway outside SUBNET6, and no SUBNET6 at all.
    let mut ll_gw = sample_binding();
    ll_gw.gateway6 = Some(ip("fe80::1"));
    ll_gw.subnet6 = None;
    let r = reply(answer_ns(
        &ns_packet(ip("fe80::1")),
        Some(GUEST),
        &ll_gw,
        SERVER,
    ));
    na_check(&r, GUEST, guest_ll(), ip("fe80::1"));
    assert_eq!(
        answer_ns(
            &ns_packet(ip("2001:db8:aaaa:bbbb::5")),
            Some(GUEST),
            &ll_gw,
            SERVER
        ),
        Outcome::Refused(Refusal::NotOurAddress)
    );
}

#[test]
fn ns_never_claims_the_guests_addresses() {
    let b = sample_binding();
    for target in [
        ip("2001:db8:aaaa:bbbb:a86b:39ff:fe22:3344"),
        ip("2001:db8:aaaa:bbbb::100"),
        guest_ll(),
        ip("2001:db8:ffff::1"),
        ip("fe80::1"),
    ] {
        assert_eq!(
            answer_ns(&ns_packet(target), Some(GUEST), &b, SERVER),
            Outcome::Refused(Refusal::NotOurAddress),
            "{target}"
        );
    }
    // Duplicate address detection, even for an address the host owns.
    for target in [guest_ll(), ip("2001:db8:aaaa:bbbb::1"), link_local(SERVER)] {
        let dad = icmp_packet(
            Ipv6Addr::UNSPECIFIED,
            solicited_node(target),
            255,
            &ns_msg(target, None),
        );
        assert_eq!(
            answer_ns(&dad, Some(GUEST), &b, SERVER),
            Outcome::Refused(Refusal::NotOurAddress),
            "DAD {target}"
        );
    }
}

#[test]
fn ns_checks() {
    let b = sample_binding();
    let gw = ip("2001:db8:aaaa:bbbb::1");
    let refused =
        |pkt: &[u8], mac: Option<MacAddr>, b: &Binding| match answer_ns(pkt, mac, b, SERVER) {
            Outcome::Refused(r) => Some(r),
            Outcome::Reply(_) => None,
        };
    assert_eq!(
        refused(&ns_packet(gw), Some(OTHER), &b),
        Some(Refusal::SpoofedMac)
    );
    let other_sll = icmp_packet(
        guest_ll(),
        solicited_node(gw),
        255,
        &ns_msg(gw, Some(OTHER)),
    );
    assert_eq!(
        refused(&other_sll, Some(GUEST), &b),
        Some(Refusal::SpoofedMac)
    );
    let mut spoof_ok = sample_binding();
    spoof_ok.macspoof = true;
    let r = reply(answer_ns(&other_sll, Some(OTHER), &spoof_ok, SERVER));
    na_check(&r, OTHER, guest_ll(), gw);
    let r = reply(answer_ns(&other_sll, None, &spoof_ok, SERVER));
    assert_eq!(r.client_mac, OTHER, "from the link-layer option");
    let no_sll = icmp_packet(guest_ll(), solicited_node(gw), 255, &ns_msg(gw, None));
    let r = reply(answer_ns(&no_sll, None, &b, SERVER));
    na_check(&r, GUEST, guest_ll(), gw);

    let dad_with_sll = icmp_packet(
        Ipv6Addr::UNSPECIFIED,
        solicited_node(gw),
        255,
        &ns_msg(gw, Some(GUEST)),
    );
    assert_eq!(
        refused(&dad_with_sll, Some(GUEST), &b),
        Some(Refusal::Malformed)
    );
    let hop1 = icmp_packet(guest_ll(), solicited_node(gw), 1, &ns_msg(gw, Some(GUEST)));
    assert_eq!(refused(&hop1, Some(GUEST), &b), Some(Refusal::Malformed));
    let mcast = icmp_packet(
        guest_ll(),
        ip("ff02::1"),
        255,
        &ns_msg(ip("ff02::1"), Some(GUEST)),
    );
    assert_eq!(refused(&mcast, Some(GUEST), &b), Some(Refusal::Malformed));
    let short = icmp_packet(guest_ll(), ip("ff02::1"), 255, &ns_msg(gw, None)[..20]);
    assert_eq!(refused(&short, Some(GUEST), &b), Some(Refusal::Malformed));
    assert_eq!(
        refused(&rs_packet(), Some(GUEST), &b),
        Some(Refusal::NotARequest)
    );
}

/// A small deterministic generator for the mutation tests.
fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

#[test]
fn garbage_never_panics() {
    let b = sample_binding();
    let mut spoof_ok = sample_binding();
    spoof_ok.macspoof = true;
    let p = params();
    let samples = [
        rs_packet(),
        ns_packet(ip("2001:db8:aaaa:bbbb::1")),
        icmp_packet(Ipv6Addr::UNSPECIFIED, ip("ff02::2"), 255, &rs_msg(None)),
    ];
    let run = |pkt: &[u8]| {
        for binding in [&b, &spoof_ok] {
            let _ = answer_rs(pkt, Some(GUEST), binding, SERVER, &p);
            let _ = answer_rs(pkt, None, binding, SERVER, &p);
            let _ = answer_ns(pkt, Some(GUEST), binding, SERVER);
            let _ = answer_ns(pkt, None, binding, SERVER);
        }
    };
    run(&[]);
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    for s in &samples {
        for n in 0..=s.len() {
            run(&s[..n]);
        }
        for i in 0..s.len() {
            for x in [0x00, 0xff, 0x01, 0x80] {
                let mut m = s.clone();
                m[i] = x;
                run(&m);
            }
        }
        for _ in 0..2000 {
            let mut m = s.clone();
            for _ in 0..1 + xorshift(&mut state) % 4 {
                let i = (xorshift(&mut state) as usize) % m.len();
                m[i] = xorshift(&mut state) as u8;
            }
            run(&m);
            // With the checksum fixed, mutations reach the ND parsing.
            if m.len() >= 48 && m[0] >> 4 == 6 {
                let mut f = vec![0u8; ETHERNET_HEADER_LEN];
                f.extend_from_slice(&m);
                let a = Ipv6Addressing {
                    src_mac: GUEST,
                    dst_mac: GUEST,
                    src: Ipv6Addr::from(<[u8; 16]>::try_from(&m[8..24]).unwrap()),
                    dst: Ipv6Addr::from(<[u8; 16]>::try_from(&m[24..40]).unwrap()),
                    hop_limit: m[7],
                };
                f.truncate(
                    ETHERNET_HEADER_LEN
                        + 40
                        + usize::from(u16::from_be_bytes([m[4], m[5]])).min(m.len() - 40),
                );
                if f.len() >= ICMPV6_OFFSET + 8 && finish_icmpv6_frame(&mut f, &a).is_ok() {
                    run(&f[ETHERNET_HEADER_LEN..]);
                }
            }
        }
        let mut random = vec![0u8; 200];
        for _ in 0..500 {
            for byte in random.iter_mut() {
                *byte = xorshift(&mut state) as u8;
            }
            random[0] = 0x60;
            run(&random);
        }
    }
}
