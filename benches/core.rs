//! Micro-benchmarks of the pure protocol core: one request in, one answer out,
//! in nanoseconds per request, plus the heap allocations each answer costs.
//!
//! `cargo bench --bench core` (add `-- --quick` for a short run). Inputs are a
//! captured CentOS DHCPDISCOVER (`tests/data/captures`) and hand-built IPv6
//! requests from a guest whose binding matches, so every case measures the
//! answering path, not a refusal.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use criterion::{Criterion, Throughput};

use nfdhcpd::core::binding::{self, Binding};
use nfdhcpd::core::frame6::{
    finish_icmpv6_frame, udp6_frame, Ipv6Addressing, ETHERNET_HEADER_LEN, ICMPV6_OFFSET,
};
use nfdhcpd::core::mac::MacAddr;
use nfdhcpd::core::{dhcp4, dhcp6, frame, ndp, relay4};

/// Counts every allocation, so that the allocations of one answer can be
/// printed next to its time. The relaxed increment costs about a nanosecond,
/// the same for every case.
struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);
static ALLOC_BYTES: AtomicU64 = AtomicU64::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        ALLOC_BYTES.fetch_add(layout.size() as u64, Ordering::Relaxed);
        System.alloc(layout)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        ALLOC_BYTES.fetch_add(layout.size() as u64, Ordering::Relaxed);
        System.alloc_zeroed(layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        ALLOC_BYTES.fetch_add(new_size as u64, Ordering::Relaxed);
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// The MAC of the captured CentOS client.
const GUEST: MacAddr = MacAddr([0x52, 0x54, 0x00, 0x1b, 0x31, 0x20]);
/// INDEV's MAC, the source of every answer.
const HOST: MacAddr = MacAddr([0x02, 0x00, 0x00, 0x00, 0x00, 0xfe]);

fn ip6(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

/// The guest's binding, in the format the VM manager writes; the address
/// is the one the captured client asks for.
fn guest_binding() -> Binding {
    binding::parse(
        "tap10",
        b"INDEV=tap10\nIP=172.20.0.101\nMAC=52:54:00:1b:31:20\nHOSTNAME=workstation01\n\
          GATEWAY=172.20.0.1\nSUBNET=172.20.0.0/24\n\
          GATEWAY6=2001:db8:aaaa:bbbb::1\nSUBNET6=2001:db8:aaaa:bbbb::/64\n\
          EUI64=2001:db8:aaaa:bbbb:5054:ff:fe1b:3120\nMTU=1500\n",
    )
    .expect("benchmark binding")
}

fn dhcp4_params() -> dhcp4::Params {
    dhcp4::Params {
        lease_lifetime: 604_800,
        lease_renewal: 600,
        server_ip: Some(Ipv4Addr::new(172, 20, 0, 4)),
        server_on_link: false,
        nameservers: vec![
            Ipv4Addr::new(192, 0, 2, 53),
            Ipv4Addr::new(198, 51, 100, 53),
        ],
        domain: Some("example.com".into()),
        domains: Vec::new(),
        boot: Default::default(),
    }
}

fn ndp_params() -> ndp::Params {
    ndp::Params {
        router_lifetime: 1800,
        prefix_valid_lifetime: 2_592_000,
        prefix_preferred_lifetime: 604_800,
        dns_lifetime: 900,
        nameservers: vec![ip6("2001:db8:100::1"), ip6("2001:db8:200::2")],
        domains: vec!["example.com".into()],
        other_config: true,
        managed: false,
    }
}

fn dhcp6_params() -> dhcp6::Params {
    dhcp6::Params {
        stateful: false,
        nameservers: vec![ip6("2001:db8:100::1"), ip6("2001:db8:200::2")],
        domains: vec!["example.com".into()],
        t1: 302_400,
        t2: 483_840,
        preferred_lifetime: 604_800,
        valid_lifetime: 2_592_000,
    }
}

fn capture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/captures")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The IPv4 packet of the one frame in a classic little-endian pcap file,
/// as NFQUEUE would hand it over.
fn pcap_ip_packet(name: &str) -> Vec<u8> {
    let data = capture(name);
    assert_eq!(
        &data[..4],
        &[0xd4, 0xc3, 0xb2, 0xa1],
        "{name}: little-endian pcap"
    );
    let caplen = u32::from_le_bytes(data[32..36].try_into().unwrap()) as usize;
    let f = &data[40..40 + caplen];
    let eth = frame::parse_ethernet(f).expect("Ethernet frame");
    assert_eq!(eth.src, GUEST, "{name}: the client MAC the binding names");
    eth.payload.to_vec()
}

fn guest_ll() -> Ipv6Addr {
    ip6("fe80::5054:ff:fe1b:3120")
}

/// An ICMPv6 message from the guest's link-local address, as an IPv6 packet.
fn icmp6_packet(dst: Ipv6Addr, dst_mac: MacAddr, msg: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8; ICMPV6_OFFSET];
    f.extend_from_slice(msg);
    let a = Ipv6Addressing {
        src_mac: GUEST,
        dst_mac,
        src: guest_ll(),
        dst,
        hop_limit: 255,
    };
    finish_icmpv6_frame(&mut f, &a).unwrap();
    f.split_off(ETHERNET_HEADER_LEN)
}

/// A Router Solicitation to ff02::2 with the source link-layer option.
fn rs_packet() -> Vec<u8> {
    let mut m = vec![ndp::TYPE_ROUTER_SOLICITATION, 0, 0, 0, 0, 0, 0, 0, 1, 1];
    m.extend_from_slice(&GUEST.0);
    icmp6_packet(ip6("ff02::2"), MacAddr([0x33, 0x33, 0, 0, 0, 2]), &m)
}

/// A Neighbor Solicitation for the gateway, to its solicited-node group.
fn ns_packet() -> Vec<u8> {
    let target = ip6("2001:db8:aaaa:bbbb::1");
    let mut m = vec![ndp::TYPE_NEIGHBOR_SOLICITATION, 0, 0, 0, 0, 0, 0, 0];
    m.extend_from_slice(&target.octets());
    m.extend_from_slice(&[1, 1]);
    m.extend_from_slice(&GUEST.0);
    icmp6_packet(
        ip6("ff02::1:ff00:1"),
        MacAddr([0x33, 0x33, 0xff, 0, 0, 1]),
        &m,
    )
}

fn dhcp6_opt(code: u16, data: &[u8]) -> Vec<u8> {
    let mut v = code.to_be_bytes().to_vec();
    v.extend_from_slice(&(data.len() as u16).to_be_bytes());
    v.extend_from_slice(data);
    v
}

/// What `dhclient -6 -S` sends: client id (DUID-LL), elapsed time, ORO.
fn information_request() -> Vec<u8> {
    let mut m = vec![11, 0x12, 0x34, 0x56];
    let mut duid = vec![0, 3, 0, 1];
    duid.extend_from_slice(&GUEST.0);
    m.extend(dhcp6_opt(1, &duid));
    m.extend(dhcp6_opt(8, &[0, 0]));
    m.extend(dhcp6_opt(6, &[0, 23, 0, 24, 0, 39, 0, 31]));
    let a = Ipv6Addressing {
        src_mac: GUEST,
        dst_mac: MacAddr([0x33, 0x33, 0, 1, 0, 2]),
        src: guest_ll(),
        dst: ip6("ff02::1:2"),
        hop_limit: 1,
    };
    udp6_frame(&a, 546, 547, &m)
        .unwrap()
        .split_off(ETHERNET_HEADER_LEN)
}

/// Where a relayed DISCOVER comes from in relay mode.
fn relay_ctx() -> relay4::RecvCtx {
    relay4::RecvCtx {
        src: SocketAddrV4::new(Ipv4Addr::new(10, 1, 2, 1), 67),
        local: Ipv4Addr::new(10, 0, 0, 5),
        ifindex: 2,
    }
}

fn relay_settings() -> relay4::Settings {
    relay4::Settings {
        server_ident: Some(Ipv4Addr::new(10, 0, 0, 5)),
        authoritative: false,
        lease_time: 3600,
        nameservers: vec![Ipv4Addr::new(192, 0, 2, 53)],
        domain: None,
    }
}

/// One benchmark case: a name and a closure answering one request. The
/// closure returns whether it answered, so a broken input cannot pass for a
/// fast one.
type Case<'a> = (&'static str, Box<dyn Fn() -> bool + 'a>);

fn cases<'a>(inputs: &'a Inputs) -> Vec<Case<'a>> {
    let i = inputs;
    vec![
        (
            "dhcp4 DISCOVER -> OFFER",
            Box::new(move || {
                let o = dhcp4::answer(
                    black_box(&i.discover),
                    Some(GUEST),
                    &i.binding,
                    HOST,
                    &i.dhcp4,
                );
                matches!(black_box(o), dhcp4::Outcome::Reply(_))
            }),
        ),
        (
            "ndp RS -> RA",
            Box::new(move || {
                let o = ndp::answer_rs(black_box(&i.rs), Some(GUEST), &i.binding, HOST, &i.ndp);
                matches!(black_box(o), ndp::Outcome::Reply(_))
            }),
        ),
        (
            "ndp NS -> NA",
            Box::new(move || {
                let o = ndp::answer_ns(black_box(&i.ns), Some(GUEST), &i.binding, HOST);
                matches!(black_box(o), ndp::Outcome::Reply(_))
            }),
        ),
        (
            "dhcp6 Information-Request -> Reply",
            Box::new(move || {
                let o = dhcp6::answer(
                    black_box(&i.info_request),
                    Some(GUEST),
                    &i.binding,
                    HOST,
                    &i.dhcp6,
                );
                matches!(black_box(o), dhcp6::Outcome::Reply(_))
            }),
        ),
        (
            "relay4 DISCOVER parse + decide",
            Box::new(move || match relay4::parse(black_box(&i.relayed)) {
                Ok(req) => matches!(
                    black_box(relay4::decide(&req, &i.relay_ctx, &i.relay)),
                    relay4::Step::Ask(..)
                ),
                Err(_) => false,
            }),
        ),
    ]
}

struct Inputs {
    binding: Binding,
    dhcp4: dhcp4::Params,
    ndp: ndp::Params,
    dhcp6: dhcp6::Params,
    relay: relay4::Settings,
    relay_ctx: relay4::RecvCtx,
    discover: Vec<u8>,
    rs: Vec<u8>,
    ns: Vec<u8>,
    info_request: Vec<u8>,
    relayed: Vec<u8>,
}

impl Inputs {
    fn new() -> Inputs {
        Inputs {
            binding: guest_binding(),
            dhcp4: dhcp4_params(),
            ndp: ndp_params(),
            dhcp6: dhcp6_params(),
            relay: relay_settings(),
            relay_ctx: relay_ctx(),
            discover: pcap_ip_packet("pydhcp-discover.selecting.centos.pcap"),
            rs: rs_packet(),
            ns: ns_packet(),
            info_request: information_request(),
            relayed: capture("pydhcp-discover.dhcp.bin"),
        }
    }
}

/// Allocations (count and bytes) per request, averaged over many requests
/// after a warm-up, printed before the timings.
fn print_allocations(cases: &[Case<'_>]) {
    const N: u64 = 10_000;
    println!("allocations per request (counting global allocator, {N} requests each):");
    for (name, f) in cases {
        assert!(f(), "{name}: the benchmark input got no answer");
        let (a0, b0) = (
            ALLOCS.load(Ordering::Relaxed),
            ALLOC_BYTES.load(Ordering::Relaxed),
        );
        for _ in 0..N {
            f();
        }
        let a = ALLOCS.load(Ordering::Relaxed) - a0;
        let b = ALLOC_BYTES.load(Ordering::Relaxed) - b0;
        println!(
            "  {name:<36} {:>6.2} allocations {:>7.0} bytes",
            a as f64 / N as f64,
            b as f64 / N as f64
        );
    }
    println!();
}

fn main() {
    let inputs = Inputs::new();
    let cases = cases(&inputs);
    print_allocations(&cases);
    let mut c = Criterion::default().configure_from_args();
    let mut g = c.benchmark_group("core");
    // One element per iteration: criterion's time per iteration is the
    // time per request, and its throughput the requests per second.
    g.throughput(Throughput::Elements(1));
    for (name, f) in &cases {
        g.bench_function(*name, |b| b.iter(f));
    }
    g.finish();
    c.final_summary();
}
