//! Writes the seed corpora (`fuzz/seeds/<target>/`) and the libFuzzer
//! dictionaries (`fuzz/dicts/<target>.dict`) from the captured client
//! packets, the sample files and hand-built requests like the unit tests'.
//!
//!   cargo run --manifest-path fuzz/Cargo.toml --example seedgen [CAPTURES_DIR]
//!
//! CAPTURES_DIR defaults to the repository's `tests/data/captures`.
//! Every seed starts with the target's setup bytes (see each target's
//! documentation); the seeds are small and committed, the generator only
//! needs to run again when a target's input layout changes.

use std::fs;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4};
use std::path::{Path, PathBuf};

use nfdhcpd::core::mac::MacAddr;
use nfdhcpd::core::frame;
use nfdhcpd::core::frame6::link_local;
use nfdhcpd_fuzz::*;

const MAGIC: [u8; 4] = [99, 130, 83, 99];
const ZERO: Ipv4Addr = Ipv4Addr::UNSPECIFIED;

struct Out {
    root: PathBuf,
    count: usize,
}

impl Out {
    fn seed(&mut self, target: &str, name: &str, setup: &[u8], body: &[u8]) {
        let dir = self.root.join("seeds").join(target);
        fs::create_dir_all(&dir).unwrap();
        let mut data = setup.to_vec();
        data.extend_from_slice(body);
        fs::write(dir.join(name), data).unwrap();
        self.count += 1;
    }

    fn dict(&mut self, target: &str, words: &[String]) {
        let dir = self.root.join("dicts");
        fs::create_dir_all(&dir).unwrap();
        let mut text = String::new();
        for w in words {
            text.push('"');
            for b in w.bytes() {
                match b {
                    b'"' | b'\\' => text.push_str(&format!("\\{}", b as char)),
                    0x20..=0x7e => text.push(b as char),
                    _ => text.push_str(&format!("\\x{b:02X}")),
                }
            }
            text.push_str("\"\n");
        }
        fs::write(dir.join(format!("{target}.dict")), text).unwrap();
    }
}

// ---- captures ----

/// The frames of a classic pcap file (Ethernet link type).
fn pcap_frames(data: &[u8]) -> Vec<Vec<u8>> {
    let little = match u32::from_le_bytes(data[0..4].try_into().unwrap()) {
        0xa1b2_c3d4 | 0xa1b2_3c4d => true,
        0xd4c3_b2a1 | 0x4d3c_b2a1 => false,
        _ => panic!("not a pcap file"),
    };
    let u32_at = |off: usize| {
        let b: [u8; 4] = data[off..off + 4].try_into().unwrap();
        if little {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        }
    };
    let mut frames = Vec::new();
    let mut off = 24;
    while off + 16 <= data.len() {
        let caplen = u32_at(off + 8) as usize;
        frames.push(data[off + 16..off + 16 + caplen].to_vec());
        off += 16 + caplen;
    }
    frames
}

/// (name, IPv4 packet) of every capture: the `.ip.bin + .udp.bin +
/// .dhcp.bin` concatenations and the pcap frames without Ethernet header.
fn captured_packets(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let mut out = Vec::new();
    for name in &names {
        if let Some(stem) = name.strip_suffix(".ip.bin") {
            let mut p = fs::read(dir.join(name)).unwrap();
            p.extend(fs::read(dir.join(format!("{stem}.udp.bin"))).unwrap());
            p.extend(fs::read(dir.join(format!("{stem}.dhcp.bin"))).unwrap());
            out.push((format!("capture-{stem}"), p));
        } else if let Some(stem) = name.strip_suffix(".pcap") {
            for (i, f) in pcap_frames(&fs::read(dir.join(name)).unwrap())
                .into_iter()
                .enumerate()
            {
                let eth = frame::parse_ethernet(&f).unwrap();
                out.push((format!("pcap-{stem}-{i}"), eth.payload.to_vec()));
            }
        }
    }
    out
}

// ---- hand-built DHCPv4 ----

/// A BOOTREQUEST with the cookie and raw options `(code, data)`; End added.
fn bootp(
    xid: u32,
    flags: u16,
    ciaddr: Ipv4Addr,
    giaddr: Ipv4Addr,
    chaddr: MacAddr,
    opts: &[(u8, &[u8])],
) -> Vec<u8> {
    let mut m = vec![1, 1, 6, 0];
    m.extend_from_slice(&xid.to_be_bytes());
    m.extend_from_slice(&[0, 0]);
    m.extend_from_slice(&flags.to_be_bytes());
    m.extend_from_slice(&ciaddr.octets());
    m.extend_from_slice(&[0; 8]); // yiaddr, siaddr
    m.extend_from_slice(&giaddr.octets());
    let mut ch = [0u8; 16];
    ch[..6].copy_from_slice(&chaddr.0);
    m.extend_from_slice(&ch);
    m.extend_from_slice(&[0; 192]); // sname, file
    m.extend_from_slice(&MAGIC);
    for (code, data) in opts {
        m.push(*code);
        m.push(u8::try_from(data.len()).unwrap());
        m.extend_from_slice(data);
    }
    m.push(255);
    m
}

/// (name, DHCP message) of the hand-built requests, modelled on the unit
/// tests: every message type, client states, PXE and iPXE clients, relay
/// agent information, and some malformed ones.
fn built_dhcp4(mac: MacAddr, ip: Ipv4Addr, server: Ipv4Addr) -> Vec<(&'static str, Vec<u8>)> {
    let relay = Ipv4Addr::new(10, 0, 0, 2);
    let client_id = [&[1u8][..], &mac.0].concat();
    let prl: &[u8] = &[1, 3, 6, 12, 15, 26, 28, 42, 51, 54, 58, 59, 119, 121];
    let pxe_prl: &[u8] = &[1, 3, 6, 12, 43, 54, 60, 66, 67, 93, 97, 128];
    let mut agent = vec![1, 4, b'e', b't', b'h', b'0', 2, 6];
    agent.extend_from_slice(&[0x00, 0x1b, 0x21, 0x3c, 0x4d, 0x5e]);
    agent.extend_from_slice(&[5, 4, 172, 20, 0, 0]); // link selection
    agent.extend_from_slice(&[19, 2, 0x10, 0x43]); // relay source port
    let ipb = ip.octets();
    let sb = server.octets();
    vec![
        ("discover", bootp(1, 0, ZERO, ZERO, mac, &[(53, &[1])])),
        (
            "discover-full",
            bootp(
                2,
                0x8000,
                ZERO,
                ZERO,
                mac,
                &[
                    (53, &[1]),
                    (61, &client_id),
                    (55, prl),
                    (57, &[2, 64]),
                    (12, b"workstation01"),
                    (60, b"dhcpcd-9.4.1:Linux-6.1.0:x86_64"),
                ],
            ),
        ),
        (
            "request-selecting",
            bootp(3, 0, ZERO, ZERO, mac, &[(53, &[3]), (50, &ipb), (54, &sb)]),
        ),
        (
            "request-initreboot",
            bootp(
                4,
                0,
                ZERO,
                ZERO,
                mac,
                &[(53, &[3]), (50, &ipb), (61, &client_id)],
            ),
        ),
        (
            "request-renewing",
            bootp(5, 0, ip, ZERO, mac, &[(53, &[3])]),
        ),
        (
            "request-nothing",
            bootp(6, 0, ZERO, ZERO, mac, &[(53, &[3])]),
        ),
        (
            "request-foreign",
            bootp(7, 0, ZERO, ZERO, mac, &[(53, &[3]), (50, &[192, 0, 2, 9])]),
        ),
        (
            "inform",
            bootp(8, 0, ip, ZERO, mac, &[(53, &[8]), (55, prl)]),
        ),
        (
            "release",
            bootp(9, 0, ip, ZERO, mac, &[(53, &[7]), (54, &sb)]),
        ),
        (
            "decline",
            bootp(10, 0, ZERO, ZERO, mac, &[(53, &[4]), (50, &ipb)]),
        ),
        (
            "relayed-discover",
            bootp(
                11,
                0,
                ZERO,
                relay,
                mac,
                &[(53, &[1]), (61, &client_id), (82, &agent)],
            ),
        ),
        (
            "relayed-request",
            bootp(
                12,
                0,
                ZERO,
                relay,
                mac,
                &[
                    (53, &[3]),
                    (50, &ipb),
                    (54, &sb),
                    (118, &[172, 20, 0, 0]),
                    (82, &agent),
                ],
            ),
        ),
        (
            "pxe-bios",
            bootp(
                13,
                0x8000,
                ZERO,
                relay,
                mac,
                &[
                    (53, &[1]),
                    (55, pxe_prl),
                    (93, &[0, 0]),
                    (94, &[1, 2, 1]),
                    (97, &[0; 17]),
                    (60, b"PXEClient:Arch:00000:UNDI:002001"),
                ],
            ),
        ),
        (
            "pxe-uefi",
            bootp(
                14,
                0,
                ZERO,
                relay,
                mac,
                &[
                    (53, &[1]),
                    (55, pxe_prl),
                    (93, &[0, 7]),
                    (60, b"PXEClient:Arch:00007:UNDI:003016"),
                ],
            ),
        ),
        (
            "http-boot",
            bootp(
                15,
                0,
                ZERO,
                relay,
                mac,
                &[
                    (53, &[1]),
                    (55, pxe_prl),
                    (93, &[0, 16]),
                    (60, b"HTTPClient:Arch:00016"),
                ],
            ),
        ),
        (
            "ipxe",
            bootp(
                16,
                0,
                ZERO,
                relay,
                mac,
                &[
                    (53, &[3]),
                    (50, &ipb),
                    (55, pxe_prl),
                    (93, &[0, 7]),
                    (77, b"iPXE"),
                    (175, &[1, 1, 1, 8, 1, 1]),
                ],
            ),
        ),
        (
            "user-class-list",
            bootp(
                17,
                0,
                ZERO,
                ZERO,
                mac,
                &[(53, &[1]), (55, &[66, 67]), (77, b"\x04iPXE\x03foo")],
            ),
        ),
        (
            "split-options",
            bootp(
                18,
                0,
                ZERO,
                ZERO,
                mac,
                &[(53, &[1]), (61, &client_id[..3]), (61, &client_id[3..])],
            ),
        ),
        ("offer-not-request", {
            let mut m = bootp(19, 0, ZERO, ZERO, mac, &[(53, &[2])]);
            m[0] = 2;
            m
        }),
        ("bootp-no-cookie", {
            let mut m = bootp(20, 0, ZERO, ZERO, mac, &[]);
            m.truncate(236);
            m
        }),
        (
            "bad-option-length",
            bootp(21, 0, ZERO, ZERO, mac, &[(53, &[1, 1]), (54, &[1, 2])]),
        ),
    ]
}

// ---- hand-built DHCPv6 ----

fn opt6(code: u16, data: &[u8]) -> Vec<u8> {
    let mut o = code.to_be_bytes().to_vec();
    o.extend_from_slice(&u16::try_from(data.len()).unwrap().to_be_bytes());
    o.extend_from_slice(data);
    o
}

fn ia_na(id: u32, inner: &[u8]) -> Vec<u8> {
    let mut d = id.to_be_bytes().to_vec();
    d.extend_from_slice(&[0; 8]);
    d.extend_from_slice(inner);
    opt6(3, &d)
}

fn iaaddr(a: Ipv6Addr, inner: &[u8]) -> Vec<u8> {
    let mut d = a.octets().to_vec();
    d.extend_from_slice(&3600u32.to_be_bytes());
    d.extend_from_slice(&7200u32.to_be_bytes());
    d.extend_from_slice(inner);
    opt6(5, &d)
}

fn msg6(t: u8, opts: &[Vec<u8>]) -> Vec<u8> {
    let mut m = vec![t, 0x12, 0x34, 0x56];
    for o in opts {
        m.extend_from_slice(o);
    }
    m
}

fn built_dhcp6(mac: MacAddr) -> Vec<(&'static str, Vec<u8>)> {
    let cid = opt6(1, &duid_ll(mac));
    let sid = opt6(2, &duid_ll(SERVER_MAC));
    let other_sid = opt6(2, &duid_ll(OTHER_MAC));
    let oro = opt6(6, &[0, 23, 0, 24]);
    let elapsed = opt6(8, &[0, 0]);
    let addr = iaaddr(GUEST_IP6, &[]);
    let ia = ia_na(1, &[]);
    let ia_addr = ia_na(1, &addr);
    let status = opt6(13, b"\x00\x00ok");
    let ia_nested = ia_na(2, &iaaddr(GUEST_IP6, &status));
    let ia_ta = {
        let mut d = 7u32.to_be_bytes().to_vec();
        d.extend_from_slice(&addr);
        opt6(4, &d)
    };
    let ia_pd = opt6(25, &[0; 12]);
    let rapid = opt6(14, &[]);
    vec![
        (
            "solicit",
            msg6(1, &[cid.clone(), elapsed.clone(), oro.clone(), ia.clone()]),
        ),
        ("solicit-rapid", msg6(1, &[cid.clone(), rapid, ia.clone()])),
        ("solicit-no-ia", msg6(1, &[cid.clone(), oro.clone()])),
        (
            "solicit-ta-pd",
            msg6(1, &[cid.clone(), ia_ta.clone(), ia_pd]),
        ),
        (
            "request",
            msg6(3, &[cid.clone(), sid.clone(), ia_addr.clone()]),
        ),
        (
            "request-other",
            msg6(3, &[cid.clone(), other_sid.clone(), ia.clone()]),
        ),
        ("confirm", msg6(4, &[cid.clone(), ia_addr.clone()])),
        ("confirm-ta", msg6(4, &[cid.clone(), ia_ta])),
        ("renew", msg6(5, &[cid.clone(), sid.clone(), ia_nested])),
        ("rebind", msg6(6, &[cid.clone(), ia_addr.clone()])),
        (
            "release",
            msg6(8, &[cid.clone(), sid.clone(), ia_addr.clone()]),
        ),
        ("decline", msg6(9, &[cid.clone(), sid.clone(), ia_addr])),
        (
            "info-request",
            msg6(11, &[cid.clone(), elapsed, oro.clone()]),
        ),
        ("info-request-anon", msg6(11, &[oro])),
        ("advertise-not-request", msg6(2, &[cid, sid])),
    ]
}

// ---- files ----

/// The bodies of the ```ini blocks of a Markdown file.
fn ini_blocks(md: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur: Option<String> = None;
    for line in md.lines() {
        match (&mut cur, line.trim_start()) {
            (None, l) if l.starts_with("```ini") => cur = Some(String::new()),
            (Some(_), l) if l.starts_with("```") => out.push(cur.take().unwrap()),
            (Some(b), _) => {
                b.push_str(line);
                b.push('\n');
            }
            _ => {}
        }
    }
    out
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn main() {
    let fuzz = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let repo = fuzz.parent().unwrap().to_path_buf();
    let captures = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| repo.join("tests/data/captures"));
    let seeds = fuzz.join("seeds");
    if seeds.exists() {
        fs::remove_dir_all(&seeds).unwrap();
    }
    let mut out = Out {
        root: fuzz.clone(),
        count: 0,
    };

    // dhcp4_nfqueue: setup byte + IPv4 packet.
    let captured = captured_packets(&captures);
    for (name, p) in &captured {
        out.seed("dhcp4_nfqueue", name, &[0], p);
    }
    let from = SocketAddrV4::new(ZERO, 68);
    let to = SocketAddrV4::new(Ipv4Addr::BROADCAST, 67);
    for (name, m) in built_dhcp4(GUEST_MAC, GUEST_IP, SERVER_IP) {
        let from = if name == "inform" || name.starts_with("request-renewing") {
            SocketAddrV4::new(GUEST_IP, 68)
        } else {
            from
        };
        out.seed(
            "dhcp4_nfqueue",
            name,
            &[0],
            &ipv4_udp(GUEST_MAC, from, to, &m),
        );
    }
    // One request under each setup bit, so that every fixture is in the corpus.
    let discover = ipv4_udp(
        GUEST_MAC,
        from,
        to,
        &built_dhcp4(GUEST_MAC, GUEST_IP, SERVER_IP)[1].1,
    );
    for bit in 0..8 {
        out.seed(
            "dhcp4_nfqueue",
            &format!("discover-setup{bit}"),
            &[1 << bit],
            &discover,
        );
    }

    // relay4: 14-byte header + UDP payload. Default header: authoritative,
    // a lease for the job's address in a /24 with a gateway, from a relay.
    let header = |settings: u8, outcome: u8, lease: u8| -> [u8; 14] {
        [settings, outcome, lease, 24, 0, 0, 0, 0, 10, 0, 0, 2, 0, 67]
    };
    for (name, p) in &captured {
        let udp = frame::parse_udp4(p).unwrap();
        out.seed("relay4", name, &header(1, 0, 3), udp.payload);
    }
    let relay_mac = MacAddr([0x14, 0x18, 0x77, 0xaa, 0xbb, 0x01]);
    for (name, m) in built_dhcp4(
        relay_mac,
        Ipv4Addr::new(172, 20, 0, 10),
        Ipv4Addr::new(10, 0, 0, 1),
    ) {
        out.seed("relay4", name, &header(1, 0, 3), &m);
    }
    let relayed = &built_dhcp4(
        relay_mac,
        Ipv4Addr::new(172, 20, 0, 10),
        Ipv4Addr::new(10, 0, 0, 1),
    );
    let pxe = &relayed.iter().find(|(n, _)| *n == "pxe-uefi").unwrap().1;
    let req = &relayed
        .iter()
        .find(|(n, _)| *n == "relayed-request")
        .unwrap()
        .1;
    out.seed("relay4", "pxe-boot-long", &header(0x1f, 0, 0xff), pxe);
    out.seed("relay4", "pxe-boot", &header(0x05, 0, 0x1b), pxe);
    out.seed("relay4", "nak-not-yours", &header(1, 4, 3), req);
    out.seed("relay4", "silent-done", &header(0, 5, 3), req);
    out.seed("relay4", "backend-error", &header(1, 6, 3), req);
    out.seed(
        "relay4",
        "lease-elsewhere",
        &[1, 0, 2, 16, 192, 168, 7, 9, 0, 0, 0, 0, 0, 68],
        req,
    );

    // dhcp6: setup byte + IPv6 packet.
    let all_servers = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 1, 2);
    for (name, m) in built_dhcp6(GUEST_MAC) {
        let p = ipv6_udp(link_local(GUEST_MAC), all_servers, &m);
        out.seed("dhcp6", name, &[0], &p);
    }
    let solicit = ipv6_udp(
        link_local(GUEST_MAC),
        all_servers,
        &built_dhcp6(GUEST_MAC)[0].1,
    );
    for bit in 0..8 {
        out.seed(
            "dhcp6",
            &format!("solicit-setup{bit}"),
            &[1 << bit],
            &solicit,
        );
    }

    // ndp_rs_ns: setup byte (bit 0: NS, bit 4: fix the checksum) + IPv6 packet.
    let b = binding();
    let guest_ll = link_local(GUEST_MAC);
    out.seed(
        "ndp_rs_ns",
        "rs",
        &[0x10],
        &router_solicitation(GUEST_MAC, false),
    );
    out.seed(
        "ndp_rs_ns",
        "rs-sll",
        &[0x10],
        &router_solicitation(GUEST_MAC, true),
    );
    out.seed(
        "ndp_rs_ns",
        "rs-own-checksum",
        &[0],
        &router_solicitation(GUEST_MAC, true),
    );
    out.seed("ndp_rs_ns", "rs-unspecified", &[0x10], &{
        let mut p = router_solicitation(GUEST_MAC, false);
        p[8..24].fill(0);
        fix_icmpv6_checksum(&mut p);
        p
    });
    for bit in 1..8 {
        out.seed(
            "ndp_rs_ns",
            &format!("rs-setup{bit}"),
            &[0x10 | 1 << bit],
            &router_solicitation(GUEST_MAC, true),
        );
    }
    let ns = |src, target, sll| neighbor_solicitation(src, GUEST_MAC, target, sll);
    let in_subnet: Ipv6Addr = "2001:db8:0:1::99".parse().unwrap();
    out.seed(
        "ndp_rs_ns",
        "ns-gateway",
        &[0x11],
        &ns(GUEST_IP6, GATEWAY6, true),
    );
    out.seed(
        "ndp_rs_ns",
        "ns-gateway-ll",
        &[0x11],
        &ns(guest_ll, GATEWAY6, false),
    );
    out.seed(
        "ndp_rs_ns",
        "ns-host-ll",
        &[0x11],
        &ns(guest_ll, link_local(SERVER_MAC), true),
    );
    out.seed(
        "ndp_rs_ns",
        "ns-subnet",
        &[0x11],
        &ns(GUEST_IP6, in_subnet, true),
    );
    out.seed(
        "ndp_rs_ns",
        "ns-own",
        &[0x11],
        &ns(guest_ll, b.eui64.unwrap(), false),
    );
    out.seed(
        "ndp_rs_ns",
        "ns-dad",
        &[0x11],
        &ns(Ipv6Addr::UNSPECIFIED, GATEWAY6, false),
    );
    out.seed(
        "ndp_rs_ns",
        "ns-own-checksum",
        &[0x01],
        &ns(GUEST_IP6, GATEWAY6, true),
    );
    for bit in 1..8 {
        out.seed(
            "ndp_rs_ns",
            &format!("ns-setup{bit}"),
            &[0x11 | 1 << bit],
            &ns(GUEST_IP6, GATEWAY6, true),
        );
    }

    // binding_file: name length + name + file.
    // The sample binding file and configuration of the original
    // (Python) nfdhcpd's README.
    let original_binding = read(&fuzz.join("samples/original-binding"));
    let original_conf = read(&fuzz.join("samples/original-nfdhcpd.conf"));
    let binding_seed = |name: &str, text: &str| {
        let mut s = vec![u8::try_from(name.len()).unwrap()];
        s.extend_from_slice(name.as_bytes());
        s.extend_from_slice(text.as_bytes());
        s
    };
    let readme_blocks = ini_blocks(&read(&repo.join("README.md")));
    let bindings: Vec<(&str, String)> = vec![
        ("original-sample", original_binding),
        ("minimal", "MAC=52:54:00:1b:31:20\nHOSTNAME=vm\nIP=172.20.0.101\n".into()),
        (
            "full-v6",
            "MAC=52:54:00:1b:31:20\nHOSTNAME=vm.example.org\nIP=172.20.0.101\nSUBNET=172.20.0.0/24\n\
             GATEWAY=172.20.0.1\nSUBNET6=2001:db8:0:1::/64\nGATEWAY6=2001:db8:0:1::1\n\
             EUI64=2001:db8:0:1:5054:ff:fe1b:3120\nIP6=2001:db8:0:1::65\nMTU=1450\nTAGS=a b c\n"
                .into(),
        ),
        (
            "routed-private",
            "INDEV='br0'\nMAC=\"52:54:00:1b:31:20\"\nHOSTNAME=vm\nIP=203.0.113.7\nSUBNET=203.0.113.7/32\n\
             GATEWAY=10.255.255.1\nPRIVATE=yes\nMACSPOOF=1\n# comment\n\n"
                .into(),
        ),
        (
            "edge-prefixes",
            "MAC=52:54:00:1b:31:20\nHOSTNAME=vm\nIP=0.0.0.0\nSUBNET=0.0.0.0/0\nSUBNET6=::/0\n\
             GATEWAY6=::1\nMTU=68\n"
                .into(),
        ),
    ];
    for (name, text) in &bindings {
        out.seed("binding_file", name, &[], &binding_seed("tap10", text));
    }
    for (i, text) in readme_blocks
        .iter()
        .filter(|b| b.contains("MAC="))
        .enumerate()
    {
        out.seed(
            "binding_file",
            &format!("readme-{i}"),
            &[],
            &binding_seed("tap10", text),
        );
    }

    // config: the file.
    out.seed("config", "original-readme-0", &[], original_conf.as_bytes());
    for (i, text) in readme_blocks.iter().filter(|b| b.contains('[')).enumerate() {
        out.seed("config", &format!("readme-{i}"), &[], text.as_bytes());
    }
    out.seed(
        "config",
        "shipped",
        &[],
        read(&repo.join("etc/nfdhcpd.conf")).as_bytes(),
    );
    out.seed("config", "empty", &[], b"");
    out.seed(
        "config",
        "dhcpv6-relay",
        &[],
        b"\xef\xbb\xbf[dhcp]\nserver_on_link = true\nlease_lifetime = 86400\nlease_renewal = 43200\n\
          domain = example.org\n[ipv6]\nenable_ipv6 = 1\nmode = dhcpv6\nra_period = 10\n\
          router_lifetime = 0\ndns_lifetime = 5\nprefix_valid_lifetime = 100\n\
          prefix_preferred_lifetime = 100\nnameservers = 2001:db8::53\ndomains = a.example, b.example\n\
          [relay]\nenable_relay = on\ninterfaces = eth1, eth2\nport = 1067\nauthoritative = yes\n\
          server_ident = 10.0.0.1\nbackend = netbox\nlease_time = 4294967295\n\
          nameservers = 192.0.2.53 ; dns\ndomain = bmc.example\n\
          [netbox]\nurl = http://netbox.example/\ntoken_file = /etc/nfdhcpd/netbox.token\n\
          prefix_roles = BMC, Server BMC\nreserved = 10\nworkers = 2\ntimeout = 3\n\
          allow_unknown_devices = yes\n",
    );

    // nautobot_json: setup byte (status, wanted parts) + body.
    let data = repo.join("tests/data/nautobot");
    let mut files: Vec<PathBuf> = fs::read_dir(&data)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    for f in &files {
        let name = f.file_stem().unwrap().to_string_lossy().into_owned();
        // Status index into [200, 201, 400, 404, 500, 403, 405, 502], and
        // both parts wanted.
        let status: u8 = if name.contains("_400") || name == "graphql_error" {
            2
        } else if name.contains("_500") {
            4
        } else if name.contains("403") {
            5
        } else if name.ends_with("_201") {
            1
        } else {
            0
        };
        out.seed(
            "nautobot_json",
            &name,
            &[status | 0x18],
            &fs::read(f).unwrap(),
        );
    }

    // netbox_json: setup byte (MAC, origin, time) + body, both API generations.
    for generation in ["v3", "v4"] {
        let mut files: Vec<PathBuf> = fs::read_dir(repo.join("tests/data/netbox").join(generation))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        files.sort();
        for f in &files {
            let name = f.file_stem().unwrap().to_string_lossy();
            // The device's MAC, origin 192.0.2.10, 2025.
            out.seed(
                "netbox_json",
                &format!("{generation}-{name}"),
                &[0x20],
                &fs::read(f).unwrap(),
            );
        }
    }
    out.seed(
        "netbox_json",
        "api-version",
        &[0x20],
        b"4.2.3-Docker-3.0.2\n",
    );

    // Dictionaries: the words a mutation can hardly find by itself.
    let mut config_words: Vec<String> = Vec::new();
    for (section, keys) in nfdhcpd::config::KNOWN_KEYS {
        config_words.push(format!("[{section}]\n"));
        for k in *keys {
            config_words.push(format!("{k} = "));
        }
    }
    config_words.extend(
        [
            "dhcp_queue",
            "enable_dhcpv6",
            "yes",
            "no",
            "true",
            "false",
            "on",
            "off",
            "auto",
            "slaac",
            "slaac+dhcpv6",
            "dhcpv6",
            "nautobot",
            "netbox",
            "*",
            "192.0.2.1",
            "2001:db8::1",
            "https://",
            "/etc/nfdhcpd/",
            "4294967295",
            "65535",
            "\n",
            "#",
            ";",
            ",",
        ]
        .map(String::from),
    );
    out.dict("config", &config_words);
    let binding_words: Vec<String> = [
        "INDEV=",
        "MAC=",
        "HOSTNAME=",
        "IP=",
        "TAGS=",
        "GATEWAY=",
        "SUBNET=",
        "GATEWAY6=",
        "SUBNET6=",
        "EUI64=",
        "IP6=",
        "PRIVATE=",
        "MTU=",
        "MACSPOOF=",
        "\n",
        "52:54:00:1b:31:20",
        "172.20.0.101",
        "/24",
        "/32",
        "/0",
        "2001:db8::",
        "/64",
        "/128",
        "fe80::",
        "::",
        "1500",
        "\"",
        "'",
    ]
    .map(String::from)
    .to_vec();
    out.dict("binding_file", &binding_words);
    let json_words: Vec<String> = [
        "\"results\"",
        "\"count\"",
        "\"data\"",
        "\"errors\"",
        "\"message\"",
        "\"devices\"",
        "\"ip_addresses\"",
        "\"id\"",
        "\"name\"",
        "\"key\"",
        "\"prefix\"",
        "\"namespace\"",
        "\"host\"",
        "\"address\"",
        "\"type\"",
        "\"value\"",
        "\"dhcp\"",
        "\"interfaces\"",
        "\"mac_address\"",
        "\"custom_fields\"",
        "\"_custom_field_data\"",
        "\"config_context\"",
        "\"pydhcp_configuration\"",
        "\"dns_servers\"",
        "\"tftp_server\"",
        "\"pxe_boot_file\"",
        "\"uefi_boot_file\"",
        "\"ipxe_script\"",
        "\"http_boot_url\"",
        "\"redeploy\"",
        "\"confirm_redeploy\"",
        "\"pydhcp_mac\"",
        "\"pydhcp_expire\"",
        "\"pydhcp_hostname\"",
        "\"exception\"",
        "\"error\"",
        "\"IntegrityError\"",
        "\"ValidationError\"",
        "already exists",
        "duplicate",
        "unique",
        "Cannot query field",
        "Unknown argument",
        "\"2026-01-01T00:00:00Z\"",
        "\"2026-01-01 00:00:00.123+02:00\"",
        "\"14:18:77:AA:BB:01\"",
        "\"1418.77aa.bb01\"",
        "\"192.0.2.0/26\"",
        "\"192.0.2.10/26\"",
        "true",
        "null",
        "{}",
        "[]",
    ]
    .map(String::from)
    .to_vec();
    out.dict("nautobot_json", &json_words);
    let netbox_words: Vec<String> = [
        "\"results\"",
        "\"count\"",
        "\"id\"",
        "\"name\"",
        "\"prefix\"",
        "\"site\"",
        "\"scope_type\"",
        "\"scope_id\"",
        "\"scope\"",
        "\"dcim.site\"",
        "\"dcim.location\"",
        "\"dcim.sitegroup\"",
        "\"dcim.region\"",
        "\"device\"",
        "\"virtual_machine\"",
        "\"type\"",
        "\"lag\"",
        "\"mac_address\"",
        "\"primary_mac_address\"",
        "\"mac_addresses\"",
        "\"count_ipaddresses\"",
        "\"status\"",
        "\"value\"",
        "\"dhcp\"",
        "\"active\"",
        "\"address\"",
        "\"custom_fields\"",
        "\"pydhcp_mac\"",
        "\"pydhcp_expire\"",
        "\"pydhcp_hostname\"",
        "\"last_updated\"",
        "\"object_types\"",
        "\"content_types\"",
        "\"ipam.ipaddress\"",
        "\"config_context\"",
        "\"is_active\"",
        "\"weight\"",
        "\"data\"",
        "\"pydhcp_configuration\"",
        "\"dns_servers\"",
        "\"tftp_server\"",
        "\"pxe_boot_file\"",
        "\"uefi_boot_file\"",
        "\"ipxe_script\"",
        "\"http_boot_url\"",
        "\"redeploy\"",
        "\"confirm_redeploy\"",
        "\"2025-01-06T12:00:00.123456Z\"",
        "\"2099-01-01T00:00:00+00:00\"",
        "\"3C:FD:FE:00:00:01\"",
        "\"14:18:77:AA:BB:01\"",
        "\"192.0.2.10/24\"",
        "\"192.0.2.0/24\"",
        "true",
        "false",
        "null",
        "{}",
        "[]",
    ]
    .map(String::from)
    .to_vec();
    out.dict("netbox_json", &netbox_words);

    println!("{} seeds written under {}", out.count, seeds.display());
}
