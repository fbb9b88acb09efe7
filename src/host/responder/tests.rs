use std::net::Ipv6Addr;
use std::time::Duration;

use dhcproto::v4::{self, MessageType};
use dhcproto::{Decodable, Decoder};

use super::*;
use crate::config::Config;
use crate::core::binding;
use crate::core::captures::{bin_packet, pcap_frames};
use crate::core::frame::{self, UDP4_HEADERS_LEN};
use crate::core::frame6::{
    finish_icmpv6_frame, link_local, Ipv6Addressing, ETHERNET_HEADER_LEN, ICMPV6_OFFSET,
};
use crate::daemon::counters::{fmt_map, Totals};
use crate::host::published::BindingMap;
use crate::host::testing::{FakeInterfaces, RecordingSink};

/// The client of the captured DHCP packets.
const CLIENT: MacAddr = MacAddr([0x52, 0x54, 0x00, 0x1b, 0x31, 0x20]);
const OTHER: MacAddr = MacAddr([0x52, 0x54, 0x00, 0x66, 0x66, 0x66]);
/// The MAC of the interface replies leave from.
const HOST: MacAddr = MacAddr([0xfe, 0xff, 0xff, 0xff, 0xff, 0xff]);
/// tap10, which has a binding; tap11 has none.
const BOUND: u32 = 10;
const UNBOUND: u32 = 11;

const TYPE_RS: u8 = 133;
const TYPE_RA: u8 = 134;

struct Setup {
    r: Responder<FakeInterfaces>,
    published: Arc<Published>,
    counters: Arc<QueueCounters>,
    sink: Arc<RecordingSink>,
}

fn answers(ipv6: bool) -> Arc<Answers> {
    let mut cfg = Config::default();
    cfg.ipv6.enable_ipv6 = ipv6;
    Arc::new(Answers::from_config(&cfg))
}

fn map(bindings: &[&str]) -> BindingMap {
    bindings
        .iter()
        .map(|text| {
            let b = binding::parse("tap10", text.as_bytes()).unwrap();
            (Arc::from(b.name.as_str()), Arc::new(b))
        })
        .collect()
}

/// tap10: the client of the captures, IPv4 and IPv6.
const TAP10: &str = "MAC=52:54:00:1b:31:20\nHOSTNAME=workstation01\nIP=172.20.0.101\n\
                     SUBNET=172.20.0.0/24\nGATEWAY=172.20.0.1\nSUBNET6=2001:db8:1::/64\n";

/// A responder for queue `kind` with `limits`, answering from the
/// bindings in `published` (tap10 as TAP10 unless told otherwise).
fn setup_with(kind: QueueKind, ipv6: bool, limits: Limits, bindings: BindingMap) -> Setup {
    let published = Arc::new(Published::default());
    if !bindings.is_empty() {
        published.publish(bindings);
    }
    let sink = RecordingSink::new();
    let shared = Shared {
        answers: answers(ipv6),
        bindings: published.clone(),
        sender: sink.clone(),
        warn: Arc::new(Mutex::new(WarnLimiter::default())),
        limits,
    };
    let ifs = FakeInterfaces::new();
    ifs.add(BOUND, "tap10", Some(HOST));
    ifs.add(UNBOUND, "tap11", Some(HOST));
    let counters = Arc::new(QueueCounters::default());
    Setup {
        r: Responder::with_interfaces(kind, shared, counters.clone(), ifs),
        published,
        counters,
        sink,
    }
}

fn setup(kind: QueueKind) -> Setup {
    setup_with(kind, true, Limits::default(), map(&[TAP10]))
}

fn totals(c: &QueueCounters) -> Totals {
    let mut t = Totals::default();
    c.add_to(&mut t);
    t
}

/// The captured DISCOVER of a CentOS client as NFQUEUE hands it (the
/// Ethernet header stripped), and the MAC it came from.
fn captured_discover() -> (MacAddr, Vec<u8>) {
    let frames = pcap_frames("pydhcp-discover.selecting.centos.pcap");
    assert_eq!(frames.len(), 1);
    let eth = frame::parse_ethernet(&frames[0]).unwrap();
    (eth.src, eth.payload.to_vec())
}

fn dhcp_message(f: &[u8]) -> v4::Message {
    v4::Message::decode(&mut Decoder::new(&f[UDP4_HEADERS_LEN..])).unwrap()
}

/// A Router Solicitation from the guest's link-local address, as NFQUEUE
/// hands it (IPv6 header first).
fn rs_packet(guest: MacAddr) -> Vec<u8> {
    let mut f = vec![0u8; ICMPV6_OFFSET];
    f.extend_from_slice(&[TYPE_RS, 0, 0, 0, 0, 0, 0, 0, 1, 1]);
    f.extend_from_slice(&guest.0);
    let a = Ipv6Addressing {
        src_mac: guest,
        dst_mac: MacAddr([0x33, 0x33, 0, 0, 0, 2]),
        src: link_local(guest),
        dst: "ff02::2".parse::<Ipv6Addr>().unwrap(),
        hop_limit: 255,
    };
    finish_icmpv6_frame(&mut f, &a).unwrap();
    f.split_off(ETHERNET_HEADER_LEN)
}

#[test]
fn a_discover_from_a_bound_interface_gets_an_offer() {
    let mut s = setup(QueueKind::Dhcp4);
    let (src, pkt) = captured_discover();
    assert_eq!(src, CLIENT);
    let Decision::Answer {
        ifindex,
        sent,
        frame,
    } = s.r.decide(BOUND, Some(src), &pkt, Instant::now())
    else {
        panic!("no answer");
    };
    assert_eq!(ifindex, BOUND, "out of the interface it came in on");
    assert_eq!(sent, Sent::Dhcp4(dhcp4::Kind::Offer));
    assert_eq!(&frame[6..12], &HOST.0, "from the INDEV's MAC");
    let m = dhcp_message(&frame);
    assert_eq!(m.opts().msg_type(), Some(MessageType::Offer));
    assert_eq!(
        m.yiaddr(),
        "172.20.0.101".parse::<std::net::Ipv4Addr>().unwrap()
    );

    s.r.send(ifindex, sent, &frame);
    assert_eq!(s.sink.take(), [(BOUND, frame)]);
    let t = totals(&s.counters);
    assert_eq!(fmt_map(&t.requests), "dhcp 1");
    assert_eq!(fmt_map(&t.answers), "DHCPOFFER 1");
    assert_eq!(s.counters.answers(), 1);
    assert_eq!(fmt_map(&t.refusals), "none");
}

#[test]
fn an_answer_that_cannot_be_sent_is_a_send_error() {
    let mut s = setup(QueueKind::Dhcp4);
    let Decision::Answer {
        ifindex,
        sent,
        frame,
    } = s.r.decide(
        BOUND,
        Some(CLIENT),
        &bin_packet("pydhcp-discover"),
        Instant::now(),
    )
    else {
        panic!("no answer");
    };
    s.sink.fail_with(Some(libc::ENOBUFS));
    s.r.send(ifindex, sent, &frame);
    assert_eq!(s.counters.send_errors.get(), 1);
    assert_eq!(s.counters.answers(), 0);
}

#[test]
fn a_packet_from_an_interface_without_a_binding_is_accepted() {
    let mut s = setup(QueueKind::Dhcp4);
    let pkt = bin_packet("pydhcp-discover");
    assert_eq!(
        s.r.decide(UNBOUND, Some(CLIENT), &pkt, Instant::now()),
        Decision::Accept
    );
    // An ifindex that names no interface at all is no one's either.
    assert_eq!(
        s.r.decide(99, Some(CLIENT), &pkt, Instant::now()),
        Decision::Accept
    );
    assert_eq!(s.counters.accepted_unknown.get(), 2);
    assert_eq!(fmt_map(&totals(&s.counters).requests), "dhcp 2");
}

#[test]
fn a_spoofed_source_mac_is_dropped_as_spoofed_mac() {
    let mut s = setup(QueueKind::Dhcp4);
    let pkt = bin_packet("pydhcp-discover");
    assert_eq!(
        s.r.decide(BOUND, Some(OTHER), &pkt, Instant::now()),
        Decision::Drop
    );
    assert_eq!(s.counters.refusals.get(Refusal::SpoofedMac), 1);
    assert_eq!(fmt_map(&totals(&s.counters).refusals), "spoofed_mac 1");
}

#[test]
fn an_indev_that_names_no_interface_is_dropped_as_unconfigured() {
    let text = format!("{TAP10}INDEV=br-missing\n");
    let mut s = setup_with(QueueKind::Dhcp4, true, Limits::default(), map(&[&text]));
    let pkt = bin_packet("pydhcp-discover");
    assert_eq!(
        s.r.decide(BOUND, Some(CLIENT), &pkt, Instant::now()),
        Decision::Drop
    );
    assert_eq!(fmt_map(&totals(&s.counters).refusals), "unconfigured 1");
    assert_eq!(s.counters.accepted_unknown.get(), 0);
}

#[test]
fn the_per_mac_rate_limit_drops_after_the_limit() {
    let limits = Limits {
        interface_rate: 0,
        mac_rate: 3,
    };
    let mut s = setup_with(QueueKind::Dhcp4, true, limits, map(&[TAP10]));
    let pkt = bin_packet("pydhcp-discover");
    let t = Instant::now();
    for i in 0..3 {
        assert!(
            matches!(
                s.r.decide(BOUND, Some(CLIENT), &pkt, t),
                Decision::Answer { .. }
            ),
            "request {i} is within the limit"
        );
    }
    for _ in 0..2 {
        assert_eq!(s.r.decide(BOUND, Some(CLIENT), &pkt, t), Decision::Drop);
    }
    assert_eq!(s.counters.limited.get(Limited::Mac), 2);
    assert_eq!(fmt_map(&totals(&s.counters).refusals), "rate_limit_mac 2");
    // A second later the bucket is full again.
    let later = t + Duration::from_secs(1);
    assert!(matches!(
        s.r.decide(BOUND, Some(CLIENT), &pkt, later),
        Decision::Answer { .. }
    ));
}

#[test]
fn a_new_publication_is_picked_up_by_the_next_packet() {
    let mut s = setup_with(QueueKind::Dhcp4, true, Limits::default(), BindingMap::new());
    let pkt = bin_packet("pydhcp-discover");
    assert_eq!(
        s.r.decide(BOUND, Some(CLIENT), &pkt, Instant::now()),
        Decision::Accept
    );
    s.published.publish(map(&[TAP10]));
    assert!(matches!(
        s.r.decide(BOUND, Some(CLIENT), &pkt, Instant::now()),
        Decision::Answer { .. }
    ));
    // Taken away again: the kernel's once more.
    s.published.publish(BindingMap::new());
    assert_eq!(
        s.r.decide(BOUND, Some(CLIENT), &pkt, Instant::now()),
        Decision::Accept
    );
}

#[test]
fn an_rs_on_the_rs_queue_gets_an_ra_when_ipv6_is_enabled() {
    let mut s = setup(QueueKind::RouterSolicit);
    let Decision::Answer {
        ifindex,
        sent,
        frame,
    } =
        s.r.decide(BOUND, Some(CLIENT), &rs_packet(CLIENT), Instant::now())
    else {
        panic!("no answer");
    };
    assert_eq!(ifindex, BOUND);
    assert_eq!(sent, Sent::Ndp(ndp::Kind::RouterAdvertisement));
    assert_eq!(frame[ICMPV6_OFFSET], TYPE_RA);
    assert_eq!(&frame[6..12], &HOST.0);
    s.r.send(ifindex, sent, &frame);
    let t = totals(&s.counters);
    assert_eq!(fmt_map(&t.requests), "rs 1");
    assert_eq!(fmt_map(&t.answers), "RA 1");
}

#[test]
fn an_rs_gets_nothing_when_ipv6_is_disabled() {
    let mut s = setup_with(
        QueueKind::RouterSolicit,
        false,
        Limits::default(),
        map(&[TAP10]),
    );
    assert_eq!(
        s.r.decide(BOUND, Some(CLIENT), &rs_packet(CLIENT), Instant::now()),
        Decision::Drop
    );
    let t = totals(&s.counters);
    assert_eq!(fmt_map(&t.requests), "rs 1");
    assert_eq!(fmt_map(&t.refusals), "none");
    assert_eq!(s.counters.accepted_unknown.get(), 0);
}
