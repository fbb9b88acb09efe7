use super::*;
use crate::core::captures::{bin_packet, pcap_frames};
use dhcproto::v4::{borrowed, DhcpOptions, Flags, HType, Opcode};
use dhcproto::{Decodable, Decoder};
use etherparse::{EtherType, Ethernet2Header, IpNumber, Ipv4Header, UdpHeader};
use frame::Udp4Addressing;

const CLIENT: MacAddr = MacAddr([0x52, 0x54, 0x00, 0x1b, 0x31, 0x20]);
const OTHER: MacAddr = MacAddr([0x52, 0x54, 0x00, 0x66, 0x66, 0x66]);
const HOST: MacAddr = MacAddr([0xfe, 0xff, 0xff, 0xff, 0xff, 0xff]);
const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(172, 20, 0, 101);
const GATEWAY: Ipv4Addr = Ipv4Addr::new(172, 20, 0, 1);
/// The server identifier the captured CentOS client selected.
const SERVER_IP: Ipv4Addr = Ipv4Addr::new(172, 20, 0, 4);
/// The server identifier the captured PXE client selected.
const PXE_SERVER_IP: Ipv4Addr = Ipv4Addr::new(172, 20, 0, 5);
const NS1: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 53);
const NS2: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 53);
const ZERO: Ipv4Addr = Ipv4Addr::UNSPECIFIED;
const BCAST: Ipv4Addr = Ipv4Addr::BROADCAST;
/// Option 61 of the captured PXE client: type 1 (Ethernet) + its MAC.
const PXE_CLIENT_ID: [u8; 7] = [1, 0x52, 0x54, 0x00, 0x1b, 0x31, 0x20];

// ---- inputs ------------------------------------------------------------

/// The one frame of a capture, split into Ethernet source and IP packet.
fn pcap_packet(name: &str) -> (MacAddr, MacAddr, Vec<u8>) {
    let frames = pcap_frames(name);
    assert_eq!(frames.len(), 1, "{name}");
    let eth = frame::parse_ethernet(&frames[0]).unwrap();
    assert_eq!(eth.ethertype, frame::ETHERTYPE_IPV4);
    (eth.src, eth.dst, eth.payload.to_vec())
}

fn binding() -> Binding {
    Binding {
        name: "tap10".into(),
        indev: "tap10".into(),
        mac: CLIENT,
        hostname: "workstation01.example.org".into(),
        ip: Some(CLIENT_IP),
        tags: Vec::new(),
        gateway: Some(GATEWAY),
        subnet: Some("172.20.0.0/24".parse().unwrap()),
        gateway6: None,
        subnet6: None,
        eui64: None,
        ip6: None,
        private: false,
        mtu: None,
        macspoof: false,
        boot: Default::default(),
    }
}

fn params() -> Params {
    Params {
        lease_lifetime: 604_800,
        lease_renewal: 600,
        server_ip: Some(SERVER_IP),
        server_on_link: false,
        nameservers: vec![NS1, NS2],
        domain: None,
        domains: Vec::new(),
        boot: Default::default(),
    }
}

fn ip_packet(src: SocketAddrV4, dst: SocketAddrV4, payload: &[u8]) -> Vec<u8> {
    let a = Udp4Addressing {
        src_mac: CLIENT,
        dst_mac: MacAddr::BROADCAST,
        src,
        dst,
    };
    frame::udp4_frame(&a, payload).unwrap().split_off(14)
}

/// A client message from 0.0.0.0:68 to 255.255.255.255:67.
fn dhcp_packet(m: &v4::Message) -> Vec<u8> {
    ip_packet(
        SocketAddrV4::new(ZERO, 68),
        SocketAddrV4::new(BCAST, 67),
        &m.to_vec().unwrap(),
    )
}

/// A hand-built request of type `t` from CLIENT, edited by `edit`.
fn request(t: MessageType, edit: impl FnOnce(&mut v4::Message)) -> Vec<u8> {
    let mut m = v4::Message::new_with_id(0x1234_5678, ZERO, ZERO, ZERO, ZERO, &CLIENT.0);
    m.opts_mut().insert(DhcpOption::MessageType(t));
    edit(&mut m);
    dhcp_packet(&m)
}

fn ask(packet: &[u8], src_mac: Option<MacAddr>, b: &Binding, p: &Params) -> Outcome {
    answer(packet, src_mac, b, HOST, p)
}

fn reply(o: Outcome) -> Reply {
    match o {
        Outcome::Reply(r) => r,
        other => panic!("expected a reply, got {other:?}"),
    }
}

// ---- checking a reply --------------------------------------------------

/// A reply frame taken apart with etherparse and dhcproto, after checking
/// everything that does not depend on the test case.
struct Decoded {
    eth: Ethernet2Header,
    ip: Ipv4Header,
    msg: v4::Message,
    /// Option codes in wire order.
    codes: Vec<u8>,
}

/// [`decode_any`] of a reply without boot server or boot file.
fn decode_reply(f: &[u8]) -> Decoded {
    let d = decode_any(f);
    assert_eq!(d.msg.siaddr(), ZERO);
    assert_eq!(d.msg.fname(), None);
    assert_small(&d);
    d
}

/// Every client takes 576-byte datagrams (RFC 2131 §2).
fn assert_small(d: &Decoded) {
    assert!(d.ip.total_len <= 576, "{} bytes", d.ip.total_len);
}

/// The `file` field up to its NUL.
fn file_field(m: &v4::Message) -> &[u8] {
    let f = m.fname().unwrap_or_default();
    &f[..f.iter().position(|&b| b == 0).unwrap_or(f.len())]
}

fn decode_any(f: &[u8]) -> Decoded {
    let (eth, rest) = Ethernet2Header::from_slice(f).unwrap();
    assert_eq!(eth.ether_type, EtherType::IPV4);
    let (ip, rest) = Ipv4Header::from_slice(rest).unwrap();
    assert_eq!(ip.header_checksum, ip.calc_header_checksum(), "IP checksum");
    assert_eq!(ip.header_len(), 20);
    assert_eq!(usize::from(ip.total_len), 20 + rest.len());
    assert_eq!(ip.time_to_live, 64);
    assert_eq!(ip.protocol, IpNumber::UDP);
    assert_eq!(ip.identification, 0);
    assert!(!ip.dont_fragment && !ip.more_fragments);
    assert_eq!(ip.fragment_offset.value(), 0);
    assert_eq!((ip.dscp.value(), ip.ecn.value()), (0, 0));

    let (udp, payload) = UdpHeader::from_slice(rest).unwrap();
    assert_eq!((udp.source_port, udp.destination_port), (67, 68));
    assert_eq!(usize::from(udp.length), 8 + payload.len());
    assert_ne!(udp.checksum, 0, "UDP checksum present");
    assert_eq!(
        udp.checksum,
        udp.calc_checksum_ipv4(&ip, payload).unwrap(),
        "UDP checksum"
    );

    let msg = v4::Message::decode(&mut Decoder::new(payload)).unwrap();
    assert_eq!(msg.opcode(), Opcode::BootReply);
    assert_eq!(msg.htype(), HType::Eth);
    assert_eq!(msg.hlen(), 6);
    assert_eq!(msg.hops(), 0);
    assert_eq!(msg.secs(), 0);
    assert_eq!(msg.sname(), None);
    assert_eq!(&payload[28 + 6..44], &[0; 10], "chaddr padding");

    // Raw walk: codes in order, no option split, End, then only padding
    // up to the BOOTP minimum of 300 bytes.
    let mut codes = Vec::new();
    let mut end = 240;
    for o in borrowed::Message::new(payload).unwrap().opts() {
        codes.push(u8::from(o.code()));
        end += 2 + o.len();
    }
    assert_eq!(payload[end], 255, "End after the options");
    assert!(payload[end + 1..].iter().all(|&b| b == 0), "only padding");
    assert!(payload.len() >= 300);
    assert!(end + 1 == payload.len() || payload.len() == 300);
    let mut unique = codes.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), codes.len(), "no repeated option: {codes:?}");
    Decoded {
        eth,
        ip,
        msg,
        codes,
    }
}

/// What a reply must say, field by field.
struct Expect {
    eth_dst: MacAddr,
    ip_src: Ipv4Addr,
    ip_dst: Ipv4Addr,
    xid: u32,
    flags: u16,
    ciaddr: Ipv4Addr,
    yiaddr: Ipv4Addr,
    giaddr: Ipv4Addr,
    chaddr: MacAddr,
    /// The boot server and the `file` field.
    siaddr: Ipv4Addr,
    file: Vec<u8>,
    /// Every option, in wire order.
    options: Vec<DhcpOption>,
}

fn check(frame: &[u8], x: &Expect) -> Decoded {
    let d = decode_any(frame);
    assert_small(&d);
    assert_eq!(d.msg.siaddr(), x.siaddr, "siaddr");
    assert_eq!(file_field(&d.msg), &x.file[..], "file");
    assert_eq!(d.eth.source, HOST.0, "Ethernet source");
    assert_eq!(d.eth.destination, x.eth_dst.0, "Ethernet destination");
    assert_eq!(Ipv4Addr::from(d.ip.source), x.ip_src, "IP source");
    assert_eq!(Ipv4Addr::from(d.ip.destination), x.ip_dst, "IP destination");
    let m = &d.msg;
    assert_eq!(m.xid(), x.xid, "xid");
    assert_eq!(u16::from(m.flags()), x.flags, "flags");
    assert_eq!(m.ciaddr(), x.ciaddr, "ciaddr");
    assert_eq!(m.yiaddr(), x.yiaddr, "yiaddr");
    assert_eq!(m.giaddr(), x.giaddr, "giaddr");
    assert_eq!(m.chaddr(), &x.chaddr.0, "chaddr");
    let want_codes: Vec<u8> = x
        .options
        .iter()
        .map(|o| u8::from(OptionCode::from(o)))
        .collect();
    assert_eq!(d.codes, want_codes, "option codes in order");
    let mut want = DhcpOptions::new();
    for o in &x.options {
        want.insert(o.clone());
    }
    assert_eq!(m.opts(), &want, "option values");
    d
}

/// The options of an OFFER/ACK for `binding()` with `params()`.
fn lease_options(t: MessageType, server: Ipv4Addr) -> Vec<DhcpOption> {
    vec![
        DhcpOption::MessageType(t),
        DhcpOption::ServerIdentifier(server),
        DhcpOption::AddressLeaseTime(604_800),
        DhcpOption::Renewal(600),
        DhcpOption::Rebinding(529_200),
        DhcpOption::SubnetMask(Ipv4Addr::new(255, 255, 255, 0)),
        DhcpOption::BroadcastAddr(Ipv4Addr::new(172, 20, 0, 255)),
        DhcpOption::Router(vec![GATEWAY]),
        DhcpOption::DomainNameServer(vec![NS1, NS2]),
        DhcpOption::Hostname("workstation01.example.org".into()),
        DhcpOption::DomainName("example.org".into()),
    ]
}

/// An OFFER/ACK of CLIENT_IP to CLIENT, unicast, with the given fields.
fn lease_reply(t: MessageType, server: Ipv4Addr, xid: u32, ciaddr: Ipv4Addr) -> Expect {
    Expect {
        eth_dst: CLIENT,
        ip_src: server,
        ip_dst: CLIENT_IP,
        xid,
        flags: 0,
        ciaddr,
        yiaddr: CLIENT_IP,
        giaddr: ZERO,
        chaddr: CLIENT,
        siaddr: ZERO,
        file: Vec::new(),
        options: lease_options(t, server),
    }
}

/// `x` for a client that asks for the domain search list (option 119),
/// as every captured client does: the domain of option 15 follows it.
fn searching(mut x: Expect) -> Expect {
    let at = x
        .options
        .iter()
        .position(|o| matches!(o, DhcpOption::DomainName(_)))
        .expect("a domain name");
    let name = dhcproto::Name::from_ascii("example.org.").unwrap();
    x.options
        .insert(at + 1, DhcpOption::DomainSearch(vec![name]));
    x
}

// ---- captured clients --------------------------------------------------

#[test]
fn captured_requests_decode_as_expected() {
    // The captures themselves, read with dhcproto, so that a surprise in
    // them shows up here rather than as a puzzling reply.
    let pkt = bin_packet("pydhcp-request.selecting");
    let udp = frame::parse_udp4(&pkt).unwrap();
    assert_eq!((udp.src.port(), udp.dst.port()), (68, 67));
    let m = v4::Message::decode(&mut Decoder::new(udp.payload)).unwrap();
    assert_eq!(m.opts().msg_type(), Some(MessageType::Request));
    assert_eq!(m.chaddr(), &CLIENT.0);
    assert_eq!(
        m.opts().get(OptionCode::ServerIdentifier),
        Some(&DhcpOption::ServerIdentifier(SERVER_IP))
    );
    assert_eq!(
        m.opts().get(OptionCode::RequestedIpAddress),
        Some(&DhcpOption::RequestedIpAddress(CLIENT_IP))
    );

    let (src, _, pkt) = pcap_packet("pydhcp-discover.selecting.pxe.pcap");
    assert_eq!(src, CLIENT);
    let udp = frame::parse_udp4(&pkt).unwrap();
    let m = v4::Message::decode(&mut Decoder::new(udp.payload)).unwrap();
    assert_eq!(
        m.opts().get(OptionCode::ClientIdentifier),
        Some(&DhcpOption::ClientIdentifier(PXE_CLIENT_ID.to_vec()))
    );
    assert_eq!(
        m.opts().get(OptionCode::MaxMessageSize),
        Some(&DhcpOption::MaxMessageSize(1472))
    );
    let Some(DhcpOption::ParameterRequestList(prl)) =
        m.opts().get(OptionCode::ParameterRequestList)
    else {
        panic!("no parameter request list");
    };
    let prl: Vec<u8> = prl.iter().map(|&c| u8::from(c)).collect();
    assert_eq!(
        prl,
        [
            1, 3, 6, 7, 12, 15, 17, 26, 43, 60, 66, 67, 119, 128, 129, 130, 131, 132, 133, 134,
            135, 175, 203
        ]
    );
}

#[test]
fn captured_discover_gets_an_offer() {
    let r = reply(ask(
        &bin_packet("pydhcp-discover"),
        None,
        &binding(),
        &params(),
    ));
    assert_eq!((r.request, r.kind), (Kind::Discover, Kind::Offer));
    assert_eq!((r.client_mac, r.addr), (CLIENT, Some(CLIENT_IP)));
    check(
        &r.frame,
        &searching(lease_reply(
            MessageType::Offer,
            SERVER_IP,
            0x68a9_227e,
            ZERO,
        )),
    );
}

#[test]
fn captured_requests_get_acks() {
    // (capture, xid, ciaddr): SELECTING and INIT-REBOOT name the address
    // in option 50, RENEWING and REBINDING in ciaddr.
    for (stem, xid, ciaddr) in [
        ("pydhcp-request.selecting", 0x68a9_227e, ZERO),
        ("pydhcp-request.initreboot", 0xf676_9406, ZERO),
        ("pydhcp-request.renewing", 0x6a70_f720, CLIENT_IP),
        ("pydhcp-request.rebinding", 0x6a70_f720, CLIENT_IP),
    ] {
        let r = reply(ask(&bin_packet(stem), None, &binding(), &params()));
        assert_eq!((r.request, r.kind), (Kind::Request, Kind::Ack), "{stem}");
        assert_eq!((r.client_mac, r.addr), (CLIENT, Some(CLIENT_IP)), "{stem}");
        check(
            &r.frame,
            &searching(lease_reply(MessageType::Ack, SERVER_IP, xid, ciaddr)),
        );
    }
}

#[test]
fn captured_centos_frames() {
    for (file, request, kind, xid, ciaddr) in [
        (
            "pydhcp-discover.selecting.centos.pcap",
            Kind::Discover,
            MessageType::Offer,
            0xf443_4a0e,
            ZERO,
        ),
        (
            "pydhcp-request.initreboot.centos.pcap",
            Kind::Request,
            MessageType::Ack,
            0xe0ab_a80a,
            ZERO,
        ),
        (
            "pydhcp-request.renewing.centos.pcap",
            Kind::Request,
            MessageType::Ack,
            0xe0ab_a80a,
            CLIENT_IP,
        ),
        (
            "pydhcp-request.rebinding.centos.pcap",
            Kind::Request,
            MessageType::Ack,
            0xe0ab_a80a,
            CLIENT_IP,
        ),
    ] {
        let (src, _, pkt) = pcap_packet(file);
        assert_eq!(src, CLIENT, "{file}");
        let r = reply(ask(&pkt, Some(src), &binding(), &params()));
        assert_eq!(r.request, request, "{file}");
        assert_eq!(r.addr, Some(CLIENT_IP), "{file}");
        check(
            &r.frame,
            &searching(lease_reply(kind, SERVER_IP, xid, ciaddr)),
        );

        // The same frame from another MAC is refused.
        assert_eq!(
            ask(&pkt, Some(OTHER), &binding(), &params()),
            Outcome::Refused(Refusal::SpoofedMac),
            "{file}"
        );
    }
}

#[test]
fn captured_pxe_client() {
    let p = Params {
        server_ip: Some(PXE_SERVER_IP),
        ..params()
    };
    for (file, request, kind) in [
        (
            "pydhcp-discover.selecting.pxe.pcap",
            Kind::Discover,
            MessageType::Offer,
        ),
        (
            "pydhcp-request.selecting.pxe.pcap",
            Kind::Request,
            MessageType::Ack,
        ),
    ] {
        let (src, dst, pkt) = pcap_packet(file);
        assert_eq!((src, dst), (CLIENT, MacAddr::BROADCAST));
        let r = reply(ask(&pkt, Some(src), &binding(), &p));
        assert_eq!(r.request, request, "{file}");
        let mut x = searching(lease_reply(kind, PXE_SERVER_IP, 0x9e04_3864, ZERO));
        x.options
            .push(DhcpOption::ClientIdentifier(PXE_CLIENT_ID.to_vec()));
        check(&r.frame, &x);
    }

    // The PXE client selected .5; a server that is .4 stays quiet.
    let (src, _, pkt) = pcap_packet("pydhcp-request.selecting.pxe.pcap");
    assert_eq!(
        ask(&pkt, Some(src), &binding(), &params()),
        Outcome::Refused(Refusal::OtherServer)
    );
}

const BOOT_SERVER: Ipv4Addr = Ipv4Addr::new(172, 20, 0, 5);
const IPXE_SCRIPT: &str = "http://172.20.0.5/boot.ipxe";
const HTTP_BOOT: &str = "http://172.20.0.5/efi/bootx64.efi";

/// Every network boot key.
fn netboot() -> BootConfig {
    BootConfig {
        next_server: Some(BOOT_SERVER.to_string()),
        boot_file: Some("undionly.kpxe".into()),
        uefi_boot_file: Some("ipxe.efi".into()),
        ipxe: Some(IPXE_SCRIPT.into()),
        http_boot: Some(HTTP_BOOT.into()),
    }
}

fn netboot_binding() -> Binding {
    Binding {
        boot: Some(Box::new(netboot())),
        ..binding()
    }
}

/// `x` with the boot answer for a file fetched from BOOT_SERVER:
/// siaddr, the `file` field, options 66 and 67 before the client id.
fn booting(mut x: Expect, file: &str) -> Expect {
    x.siaddr = BOOT_SERVER;
    x.file = file.as_bytes().to_vec();
    let at = x.options.len()
        - usize::from(matches!(
            x.options.last(),
            Some(DhcpOption::ClientIdentifier(_))
        ));
    x.options.splice(
        at..at,
        [
            DhcpOption::TFTPServerName(BOOT_SERVER.to_string().into_bytes()),
            DhcpOption::BootfileName(file.as_bytes().to_vec()),
        ],
    );
    x
}

#[test]
fn captured_ipxe_client_gets_the_script_or_its_firmware_file() {
    let p = Params {
        server_ip: Some(PXE_SERVER_IP),
        ..params()
    };
    let no_script = Binding {
        boot: Some(Box::new(BootConfig {
            ipxe: None,
            ..netboot()
        })),
        ..binding()
    };
    for (b, client, file) in [
        (netboot_binding(), BootClient::Ipxe, IPXE_SCRIPT),
        // Without a script iPXE is answered as the BIOS PXE ROM it is.
        (no_script, BootClient::Bios, "undionly.kpxe"),
    ] {
        for (capture, kind) in [
            ("pydhcp-discover.selecting.pxe.pcap", MessageType::Offer),
            ("pydhcp-request.selecting.pxe.pcap", MessageType::Ack),
        ] {
            let (src, _, pkt) = pcap_packet(capture);
            let r = reply(ask(&pkt, Some(src), &b, &p));
            assert_eq!(r.boot, Some((client, file.to_string())), "{capture}");
            let mut x = searching(lease_reply(kind, PXE_SERVER_IP, 0x9e04_3864, ZERO));
            x.options
                .push(DhcpOption::ClientIdentifier(PXE_CLIENT_ID.to_vec()));
            check(&r.frame, &booting(x, file));
        }
    }
}

#[test]
fn the_binding_wins_over_the_defaults() {
    let (src, _, pkt) = pcap_packet("pydhcp-discover.selecting.pxe.pcap");
    let p = Params {
        boot: netboot(),
        ..params()
    };
    // Defaults alone.
    let r = reply(ask(&pkt, Some(src), &binding(), &p));
    assert_eq!(r.boot, Some((BootClient::Ipxe, IPXE_SCRIPT.into())));
    // The binding's own script, the default server.
    let own = Binding {
        boot: Some(Box::new(BootConfig {
            ipxe: Some("own.ipxe".into()),
            ..BootConfig::default()
        })),
        ..binding()
    };
    let r = reply(ask(&pkt, Some(src), &own, &p));
    assert_eq!(r.boot, Some((BootClient::Ipxe, "own.ipxe".into())));
    let d = decode_any(&r.frame);
    assert_eq!(d.msg.siaddr(), BOOT_SERVER);
    assert_eq!(file_field(&d.msg), b"own.ipxe");
}

#[test]
fn no_boot_keys_no_boot_options() {
    // The iPXE capture asks for 66 and 67; without keys the answer is
    // the plain lease (checked field by field in captured_pxe_client).
    let (src, _, pkt) = pcap_packet("pydhcp-discover.selecting.pxe.pcap");
    let p = Params {
        server_ip: Some(PXE_SERVER_IP),
        ..params()
    };
    let r = reply(ask(&pkt, Some(src), &binding(), &p));
    assert_eq!(r.boot, None);
    let d = decode_reply(&r.frame);
    assert!(!d.codes.contains(&66) && !d.codes.contains(&67));
    // Clients that do not boot from the network get nothing even with
    // every key set: the captured CentOS client, a bare DISCOVER.
    for pkt in [
        bin_packet("pydhcp-discover"),
        request(MessageType::Discover, |_| {}),
    ] {
        let r = reply(ask(&pkt, None, &netboot_binding(), &params()));
        assert_eq!(r.boot, None);
        decode_reply(&r.frame);
    }
}

/// A DISCOVER from UEFI firmware: architecture `arch`, vendor class
/// `vendor`, asking for 66 and 67.
fn uefi_discover(arch: u16, vendor: &[u8]) -> Vec<u8> {
    request(MessageType::Discover, |m| {
        let o = m.opts_mut();
        o.insert(DhcpOption::ParameterRequestList(vec![
            OptionCode::SubnetMask,
            OptionCode::Router,
            OptionCode::TFTPServerName,
            OptionCode::BootfileName,
        ]));
        o.insert(DhcpOption::ClientSystemArchitecture(arch.into()));
        o.insert(DhcpOption::ClassIdentifier(vendor.to_vec()));
    })
}

#[test]
fn uefi_pxe_and_http_boot() {
    let b = netboot_binding();
    let r = reply(ask(
        &uefi_discover(7, b"PXEClient:Arch:00007:UNDI:003016"),
        None,
        &b,
        &params(),
    ));
    assert_eq!(r.boot, Some((BootClient::Uefi, "ipxe.efi".into())));
    let x = lease_reply(MessageType::Offer, SERVER_IP, 0x1234_5678, ZERO);
    check(&r.frame, &booting(x, "ipxe.efi"));

    // UEFI HTTP boot: the URL, no TFTP server, HTTPClient in option 60.
    let r = reply(ask(
        &uefi_discover(16, b"HTTPClient:Arch:00016:UNDI:003001"),
        None,
        &b,
        &params(),
    ));
    assert_eq!(r.boot, Some((BootClient::UefiHttp, HTTP_BOOT.into())));
    let mut x = lease_reply(MessageType::Offer, SERVER_IP, 0x1234_5678, ZERO);
    x.file = HTTP_BOOT.as_bytes().to_vec();
    x.options.extend([
        DhcpOption::ClassIdentifier(b"HTTPClient".to_vec()),
        DhcpOption::BootfileName(HTTP_BOOT.as_bytes().to_vec()),
    ]);
    check(&r.frame, &x);

    // PXE without a TFTP server cannot fetch its file: nothing offered.
    let no_server = Binding {
        boot: Some(Box::new(BootConfig {
            next_server: None,
            ..netboot()
        })),
        ..binding()
    };
    let r = reply(ask(
        &uefi_discover(7, b"PXEClient:Arch:00007:UNDI:003016"),
        None,
        &no_server,
        &params(),
    ));
    assert_eq!(r.boot, None);
    decode_reply(&r.frame);
}

#[test]
fn a_nak_has_no_boot_file() {
    let (src, _, pkt) = pcap_packet("pydhcp-request.selecting.pxe.pcap");
    let b = Binding {
        ip: Some(Ipv4Addr::new(172, 20, 0, 77)),
        ..netboot_binding()
    };
    let p = Params {
        server_ip: Some(PXE_SERVER_IP),
        ..params()
    };
    let r = reply(ask(&pkt, Some(src), &b, &p));
    assert_eq!((r.kind, r.boot), (Kind::Nak, None));
    decode_reply(&r.frame);
}

#[test]
fn domain_search_list() {
    let asking = |m: &mut v4::Message| {
        m.opts_mut().insert(DhcpOption::ParameterRequestList(vec![
            OptionCode::DomainSearch,
        ]));
    };
    let names = |d: &Decoded| match d.msg.opts().get(OptionCode::DomainSearch) {
        Some(DhcpOption::DomainSearch(n)) => n.iter().map(|n| n.to_ascii()).collect(),
        None => Vec::new(),
        other => panic!("{other:?}"),
    };
    let p = Params {
        domains: vec!["example.com".into(), "vm.example.com".into()],
        ..params()
    };
    let d = decode_reply(
        &reply(ask(
            &request(MessageType::Discover, asking),
            None,
            &binding(),
            &p,
        ))
        .frame,
    );
    assert_eq!(names(&d), ["example.com.", "vm.example.com."]);
    // Right after option 15, compressed (RFC 3397 §2).
    let at = d.codes.iter().position(|&c| c == 15).unwrap();
    assert_eq!(d.codes[at + 1], 119);
    // Not asked for: not sent (option 15 alone, as before).
    let d = decode_reply(
        &reply(ask(
            &request(MessageType::Discover, |_| {}),
            None,
            &binding(),
            &p,
        ))
        .frame,
    );
    assert!(names(&d).is_empty() && d.codes.contains(&15));
    // No list: the domain of option 15 ([dhcp] domain, else the host name's).
    let d = decode_reply(
        &reply(ask(
            &request(MessageType::Discover, asking),
            None,
            &binding(),
            &params(),
        ))
        .frame,
    );
    assert_eq!(names(&d), ["example.org."]);
    let p = Params {
        domain: Some("example.net".into()),
        ..params()
    };
    let d = decode_reply(
        &reply(ask(
            &request(MessageType::Inform, |m| {
                asking(m);
                m.set_ciaddr(CLIENT_IP);
            }),
            None,
            &binding(),
            &p,
        ))
        .frame,
    );
    assert_eq!(names(&d), ["example.net."]);
    // Nothing to search: no option 119.
    let bare = Binding {
        hostname: "workstation01".into(),
        ..binding()
    };
    let d = decode_reply(
        &reply(ask(
            &request(MessageType::Discover, asking),
            None,
            &bare,
            &params(),
        ))
        .frame,
    );
    assert!(!d.codes.contains(&119) && !d.codes.contains(&15));
}

#[test]
fn a_reply_too_large_for_the_client_leaves_out_the_optional_options() {
    // A long search list, a long TFTP server name and a boot URL of 255
    // bytes do not fit a 576-byte datagram together.
    let label = "h".repeat(63);
    let long_url = format!("http://172.20.0.5/{}", "x".repeat(255 - 18));
    let b = |ipxe: &str| Binding {
        boot: Some(Box::new(BootConfig {
            next_server: Some(format!("{label}.example.org")),
            ipxe: Some(ipxe.into()),
            ..netboot()
        })),
        ..binding()
    };
    let p = Params {
        domains: (0..3).map(|i| format!("{label}.example{i}.org")).collect(),
        ..params()
    };
    // The captured iPXE client takes 1472 bytes (option 57): all of it.
    let (src, _, pkt) = pcap_packet("pydhcp-discover.selecting.pxe.pcap");
    let r = reply(ask(&pkt, Some(src), &b(&long_url), &p));
    assert_eq!(r.boot, Some((BootClient::Ipxe, long_url.clone())));
    let d = decode_any(&r.frame);
    assert!(d.ip.total_len > 576, "{}", d.ip.total_len);
    for c in [119, 66, 67] {
        assert!(d.codes.contains(&c), "{c}: {:?}", d.codes);
    }
    // Without option 57: 119 goes first, and a script name that fits
    // the file field is still there twice.
    let small = request(MessageType::Discover, |m| {
        let o = m.opts_mut();
        o.insert(DhcpOption::ParameterRequestList(vec![
            OptionCode::DomainSearch,
            OptionCode::TFTPServerName,
            OptionCode::BootfileName,
        ]));
        o.insert(DhcpOption::UserClass(b"iPXE".to_vec()));
        o.insert(DhcpOption::ClientSystemArchitecture(0.into()));
    });
    let d = decode_any(&reply(ask(&small, None, &b(IPXE_SCRIPT), &p)).frame);
    assert_small(&d);
    assert!(!d.codes.contains(&119), "{:?}", d.codes);
    assert!(
        d.codes.contains(&66) && d.codes.contains(&67),
        "{:?}",
        d.codes
    );
    assert_eq!(file_field(&d.msg), IPXE_SCRIPT.as_bytes());
    // Then 66, then 67: the long URL does not fit, and is not sent.
    let d = decode_any(&reply(ask(&small, None, &b(&long_url), &p)).frame);
    assert_small(&d);
    for c in [119, 66, 67] {
        assert!(!d.codes.contains(&c), "{c}: {:?}", d.codes);
    }
    assert_eq!(d.msg.fname(), None);
}

#[test]
fn captured_request_for_another_address_gets_a_nak() {
    let b = Binding {
        ip: Some(Ipv4Addr::new(172, 20, 0, 77)),
        ..binding()
    };
    for stem in [
        "pydhcp-request.selecting",
        "pydhcp-request.initreboot",
        "pydhcp-request.renewing",
    ] {
        let r = reply(ask(&bin_packet(stem), None, &b, &params()));
        assert_eq!((r.kind, r.addr), (Kind::Nak, None), "{stem}");
    }
}

#[test]
fn every_capture_is_answered() {
    // Catches captures added later that this code cannot read.
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/captures");
    let mut seen = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        let packets: Vec<(Option<MacAddr>, Vec<u8>)> = if name.ends_with(".pcap") {
            pcap_frames(&name)
                .iter()
                .map(|f| {
                    let eth = frame::parse_ethernet(f).unwrap();
                    (Some(eth.src), eth.payload.to_vec())
                })
                .collect()
        } else if let Some(stem) = name.strip_suffix(".dhcp.bin") {
            vec![(None, bin_packet(stem))]
        } else {
            continue;
        };
        for (src, pkt) in packets {
            // Be whichever server the capture selected, if any.
            let udp = frame::parse_udp4(&pkt).unwrap();
            let m = v4::Message::decode(&mut Decoder::new(udp.payload)).unwrap();
            let server = match m.opts().get(OptionCode::ServerIdentifier) {
                Some(DhcpOption::ServerIdentifier(s)) => *s,
                _ => SERVER_IP,
            };
            let p = Params {
                server_ip: Some(server),
                ..params()
            };
            let r = reply(ask(&pkt, src, &binding(), &p));
            assert_ne!(r.kind, Kind::Nak, "{name}");
            decode_reply(&r.frame);
            seen += 1;
        }
    }
    assert!(seen >= 11, "only {seen} captured packets found");
}

// ---- hand-built requests -----------------------------------------------

fn with_requested(a: Ipv4Addr) -> impl FnOnce(&mut v4::Message) {
    move |m| {
        m.opts_mut().insert(DhcpOption::RequestedIpAddress(a));
    }
}

fn nak_options(server: Ipv4Addr) -> Vec<DhcpOption> {
    vec![
        DhcpOption::MessageType(MessageType::Nak),
        DhcpOption::ServerIdentifier(server),
        DhcpOption::Message(NAK_WRONG_ADDRESS.into()),
    ]
}

#[test]
fn foreign_requested_address_gets_a_nak() {
    let foreign = Ipv4Addr::new(10, 9, 8, 7);
    let pkt = request(MessageType::Request, |m| {
        m.set_ciaddr(CLIENT_IP) // option 50 takes precedence
            .set_flags(Flags::default().set_broadcast())
            .opts_mut()
            .insert(DhcpOption::RequestedIpAddress(foreign));
        m.opts_mut()
            .insert(DhcpOption::ClientIdentifier(vec![0, b'i', b'd']));
    });
    let r = reply(ask(&pkt, Some(CLIENT), &binding(), &params()));
    assert_eq!(
        (r.request, r.kind, r.addr),
        (Kind::Request, Kind::Nak, None)
    );
    let mut options = nak_options(SERVER_IP);
    options.push(DhcpOption::ClientIdentifier(vec![0, b'i', b'd']));
    check(
        &r.frame,
        &Expect {
            eth_dst: CLIENT,
            ip_src: SERVER_IP,
            ip_dst: BCAST,
            xid: 0x1234_5678,
            flags: 0x8000,
            ciaddr: ZERO,
            yiaddr: ZERO,
            giaddr: ZERO,
            chaddr: CLIENT,
            siaddr: ZERO,
            file: Vec::new(),
            options,
        },
    );

    // Renewing an address that is not the binding's.
    let pkt = request(MessageType::Request, |m| {
        m.set_ciaddr(foreign);
    });
    let r = reply(ask(&pkt, Some(CLIENT), &binding(), &params()));
    assert_eq!(r.kind, Kind::Nak);

    // Neither option 50 nor ciaddr: nothing to acknowledge.
    let pkt = request(MessageType::Request, |_| {});
    let r = reply(ask(&pkt, Some(CLIENT), &binding(), &params()));
    assert_eq!(r.kind, Kind::Nak);
    let d = decode_reply(&r.frame);
    assert_eq!(d.msg.opts().msg_type(), Some(MessageType::Nak));
    assert_eq!(
        d.msg.opts().get(OptionCode::Message),
        Some(&DhcpOption::Message(NAK_NO_ADDRESS.into()))
    );
}

#[test]
fn server_identifier_is_checked() {
    let pkt = request(MessageType::Request, |m| {
        m.opts_mut()
            .insert(DhcpOption::ServerIdentifier(Ipv4Addr::new(172, 20, 0, 9)));
        m.opts_mut()
            .insert(DhcpOption::RequestedIpAddress(CLIENT_IP));
    });
    assert_eq!(
        ask(&pkt, Some(CLIENT), &binding(), &params()),
        Outcome::Refused(Refusal::OtherServer)
    );
    // Also before finding out that the binding has no address.
    let b = Binding {
        ip: None,
        ..binding()
    };
    assert_eq!(
        ask(&pkt, Some(CLIENT), &b, &params()),
        Outcome::Refused(Refusal::OtherServer)
    );

    let pkt = request(MessageType::Request, |m| {
        m.opts_mut().insert(DhcpOption::ServerIdentifier(SERVER_IP));
        m.opts_mut()
            .insert(DhcpOption::RequestedIpAddress(CLIENT_IP));
    });
    let r = reply(ask(&pkt, Some(CLIENT), &binding(), &params()));
    assert_eq!(r.kind, Kind::Ack);
}

#[test]
fn spoofed_macs_are_refused_unless_macspoof() {
    let spoofed_chaddr = {
        let mut m = v4::Message::new_with_id(7, ZERO, ZERO, ZERO, ZERO, &OTHER.0);
        m.opts_mut()
            .insert(DhcpOption::MessageType(MessageType::Discover));
        dhcp_packet(&m)
    };
    let honest = request(MessageType::Discover, |_| {});
    let refused = Outcome::Refused(Refusal::SpoofedMac);

    // Ethernet source differs (chaddr honest), chaddr differs (Ethernet
    // source honest or unknown), both differ.
    assert_eq!(ask(&honest, Some(OTHER), &binding(), &params()), refused);
    assert_eq!(
        ask(&spoofed_chaddr, Some(CLIENT), &binding(), &params()),
        refused
    );
    assert_eq!(ask(&spoofed_chaddr, None, &binding(), &params()), refused);
    assert_eq!(
        ask(&spoofed_chaddr, Some(OTHER), &binding(), &params()),
        refused
    );
    // Also for messages that only get logged.
    let release = {
        let mut m = v4::Message::new_with_id(7, CLIENT_IP, ZERO, ZERO, ZERO, &OTHER.0);
        m.opts_mut()
            .insert(DhcpOption::MessageType(MessageType::Release));
        dhcp_packet(&m)
    };
    assert_eq!(ask(&release, Some(OTHER), &binding(), &params()), refused);

    let b = Binding {
        macspoof: true,
        ..binding()
    };
    let third = MacAddr([0x02, 0, 0, 0, 0, 3]);
    let r = reply(ask(&spoofed_chaddr, Some(third), &b, &params()));
    assert_eq!((r.kind, r.client_mac), (Kind::Offer, OTHER));
    let mut x = lease_reply(MessageType::Offer, SERVER_IP, 7, ZERO);
    x.eth_dst = OTHER;
    x.chaddr = OTHER;
    check(&r.frame, &x);
    assert_eq!(
        ask(&release, Some(OTHER), &b, &params()),
        Outcome::Released {
            client_mac: OTHER,
            addr: CLIENT_IP
        }
    );
}

#[test]
fn private_binding_gets_no_router() {
    for gateway in [GATEWAY, Ipv4Addr::new(10, 0, 0, 1)] {
        let b = Binding {
            private: true,
            gateway: Some(gateway),
            ..binding()
        };
        let r = reply(ask(
            &request(MessageType::Discover, |_| {}),
            Some(CLIENT),
            &b,
            &params(),
        ));
        let mut x = lease_reply(MessageType::Offer, SERVER_IP, 0x1234_5678, ZERO);
        x.options.retain(|o| !matches!(o, DhcpOption::Router(_)));
        let d = check(&r.frame, &x);
        assert!(!d.codes.contains(&121) && !d.codes.contains(&3));
    }
}

#[test]
fn mtu_option() {
    let b = Binding {
        mtu: Some(1450),
        ..binding()
    };
    let pkt = request(MessageType::Request, with_requested(CLIENT_IP));
    let r = reply(ask(&pkt, Some(CLIENT), &b, &params()));
    let mut x = lease_reply(MessageType::Ack, SERVER_IP, 0x1234_5678, ZERO);
    x.options.push(DhcpOption::InterfaceMtu(1450));
    check(&r.frame, &x);
}

#[test]
fn routed_setup_gets_classless_routes() {
    let gw = Ipv4Addr::new(10, 0, 0, 1);
    let b = Binding {
        gateway: Some(gw),
        ip: Some(Ipv4Addr::new(192, 0, 2, 10)),
        subnet: Some("192.0.2.0/24".parse().unwrap()),
        ..binding()
    };
    let pkt = request(MessageType::Discover, |_| {});
    let r = reply(ask(&pkt, Some(CLIENT), &b, &params()));
    assert_eq!(r.addr, Some(Ipv4Addr::new(192, 0, 2, 10)));
    let mut options = lease_options(MessageType::Offer, SERVER_IP);
    options[5] = DhcpOption::SubnetMask(Ipv4Addr::new(255, 255, 255, 0));
    options[6] = DhcpOption::BroadcastAddr(Ipv4Addr::new(192, 0, 2, 255));
    options[7] = DhcpOption::Router(vec![gw]);
    options.push(DhcpOption::ClasslessStaticRoute(vec![
        ("10.0.0.1/32".parse().unwrap(), ZERO),
        ("0.0.0.0/0".parse().unwrap(), gw),
    ]));
    check(
        &r.frame,
        &Expect {
            eth_dst: CLIENT,
            ip_src: SERVER_IP,
            ip_dst: Ipv4Addr::new(192, 0, 2, 10),
            xid: 0x1234_5678,
            flags: 0,
            ciaddr: ZERO,
            yiaddr: Ipv4Addr::new(192, 0, 2, 10),
            giaddr: ZERO,
            chaddr: CLIENT,
            siaddr: ZERO,
            file: Vec::new(),
            options,
        },
    );
    // The exact bytes of option 121 (RFC 3442 compact encoding).
    let want = [121, 14, 32, 10, 0, 0, 1, 0, 0, 0, 0, 0, 10, 0, 0, 1];
    assert!(r.frame.windows(want.len()).any(|w| w == want));

    // Without a subnet the gateway is not known to be on-link either.
    let b = Binding {
        subnet: None,
        ..binding()
    };
    let r = reply(ask(&pkt, Some(CLIENT), &b, &params()));
    let d = decode_reply(&r.frame);
    assert!(!d.codes.contains(&1) && !d.codes.contains(&28));
    assert_eq!(
        d.msg.opts().get(OptionCode::ClasslessStaticRoute),
        Some(&DhcpOption::ClasslessStaticRoute(vec![
            ("172.20.0.1/32".parse().unwrap(), ZERO),
            ("0.0.0.0/0".parse().unwrap(), GATEWAY),
        ]))
    );

    // No gateway at all: neither 3 nor 121.
    let b = Binding {
        gateway: None,
        ..binding()
    };
    let d = decode_reply(&reply(ask(&pkt, Some(CLIENT), &b, &params())).frame);
    assert!(!d.codes.contains(&3) && !d.codes.contains(&121));
}

#[test]
fn server_address_choice() {
    let first_host = Ipv4Addr::new(172, 20, 0, 1);
    let b = Binding {
        gateway: Some(Ipv4Addr::new(172, 20, 0, 254)),
        ..binding()
    };
    let no_gw = Binding {
        gateway: None,
        ..binding()
    };
    let bare = Binding {
        gateway: None,
        subnet: None,
        ..binding()
    };
    let on_link = Params {
        server_on_link: true,
        ..params()
    };
    let no_ip = Params {
        server_ip: None,
        ..params()
    };
    let cases = [
        (&b, &params(), Some(SERVER_IP)),
        (&b, &on_link, Some(Ipv4Addr::new(172, 20, 0, 254))),
        (&no_gw, &on_link, Some(first_host)),
        (&bare, &on_link, Some(SERVER_IP)),
        (&b, &no_ip, Some(Ipv4Addr::new(172, 20, 0, 254))),
        (&no_gw, &no_ip, Some(first_host)),
        (&bare, &no_ip, None),
    ];
    for (i, (b, p, want)) in cases.into_iter().enumerate() {
        assert_eq!(server_address(b, p), want, "case {i}");
        let pkt = request(MessageType::Discover, |_| {});
        match want {
            Some(server) => {
                let d = decode_reply(&reply(ask(&pkt, Some(CLIENT), b, p)).frame);
                assert_eq!(Ipv4Addr::from(d.ip.source), server);
                assert_eq!(
                    d.msg.opts().get(OptionCode::ServerIdentifier),
                    Some(&DhcpOption::ServerIdentifier(server))
                );
            }
            None => assert_eq!(
                ask(&pkt, Some(CLIENT), b, p),
                Outcome::Refused(Refusal::Unconfigured)
            ),
        }
    }
    let slash32 = Binding {
        gateway: None,
        subnet: Some("172.20.0.101/32".parse().unwrap()),
        ..binding()
    };
    assert_eq!(server_address(&slash32, &on_link), Some(CLIENT_IP));
}

#[test]
fn server_on_link_answers_from_the_gateway() {
    let p = Params {
        server_on_link: true,
        ..params()
    };
    let pkt = request(MessageType::Request, |m| {
        m.opts_mut().insert(DhcpOption::ServerIdentifier(GATEWAY));
        m.opts_mut()
            .insert(DhcpOption::RequestedIpAddress(CLIENT_IP));
    });
    let r = reply(ask(&pkt, Some(CLIENT), &binding(), &p));
    check(
        &r.frame,
        &lease_reply(MessageType::Ack, GATEWAY, 0x1234_5678, ZERO),
    );
    // The captured SELECTING request named server_ip, not the gateway.
    assert_eq!(
        ask(
            &bin_packet("pydhcp-request.selecting"),
            None,
            &binding(),
            &p
        ),
        Outcome::Refused(Refusal::OtherServer)
    );
}

#[test]
fn inform_gets_configuration_without_lease() {
    let here = Ipv4Addr::new(172, 20, 0, 150);
    let inform = |ciaddr: Ipv4Addr, src: Ipv4Addr| {
        let mut m = v4::Message::new_with_id(99, ciaddr, ZERO, ZERO, ZERO, &CLIENT.0);
        m.set_flags(Flags::default().set_broadcast());
        m.opts_mut()
            .insert(DhcpOption::MessageType(MessageType::Inform));
        ip_packet(
            SocketAddrV4::new(src, 68),
            SocketAddrV4::new(SERVER_IP, 67),
            &m.to_vec().unwrap(),
        )
    };
    // Answerable even when the binding hands out no address.
    let b = Binding {
        ip: None,
        ..binding()
    };
    let r = reply(ask(&inform(here, here), Some(CLIENT), &b, &params()));
    assert_eq!(
        (r.request, r.kind, r.addr),
        (Kind::Inform, Kind::Ack, Some(here))
    );
    let mut options = lease_options(MessageType::Ack, SERVER_IP);
    options.retain(|o| {
        !matches!(
            o,
            DhcpOption::AddressLeaseTime(_) | DhcpOption::Renewal(_) | DhcpOption::Rebinding(_)
        )
    });
    check(
        &r.frame,
        &Expect {
            eth_dst: CLIENT,
            ip_src: SERVER_IP,
            ip_dst: here,
            xid: 99,
            flags: 0x8000,
            ciaddr: here,
            yiaddr: ZERO,
            giaddr: ZERO,
            chaddr: CLIENT,
            siaddr: ZERO,
            file: Vec::new(),
            options,
        },
    );

    // ciaddr left empty: answered at the IP source; neither: refused.
    let r = reply(ask(&inform(ZERO, here), Some(CLIENT), &b, &params()));
    assert_eq!(r.addr, Some(here));
    let d = decode_reply(&r.frame);
    assert_eq!(Ipv4Addr::from(d.ip.destination), here);
    assert_eq!(d.msg.ciaddr(), ZERO);
    assert_eq!(
        ask(&inform(ZERO, ZERO), Some(CLIENT), &b, &params()),
        Outcome::Refused(Refusal::Malformed)
    );
}

#[test]
fn release_and_decline_are_reported() {
    let release = request(MessageType::Release, |m| {
        m.set_ciaddr(CLIENT_IP);
    });
    assert_eq!(
        ask(&release, Some(CLIENT), &binding(), &params()),
        Outcome::Released {
            client_mac: CLIENT,
            addr: CLIENT_IP
        }
    );
    let decline = request(MessageType::Decline, with_requested(CLIENT_IP));
    assert_eq!(
        ask(&decline, Some(CLIENT), &binding(), &params()),
        Outcome::Declined {
            client_mac: CLIENT,
            addr: CLIENT_IP
        }
    );
    // Neither needs a server address or a bound IP.
    let bare = Binding {
        ip: None,
        gateway: None,
        subnet: None,
        ..binding()
    };
    let no_server = Params {
        server_ip: None,
        ..params()
    };
    assert!(matches!(
        ask(&decline, Some(CLIENT), &bare, &no_server),
        Outcome::Declined { .. }
    ));
    // Without the address they are about, they say nothing.
    for pkt in [
        request(MessageType::Release, |_| {}),
        request(MessageType::Decline, |_| {}),
    ] {
        assert_eq!(
            ask(&pkt, Some(CLIENT), &binding(), &params()),
            Outcome::Refused(Refusal::Malformed)
        );
    }
}

#[test]
fn requested_address_zero_is_no_address() {
    // RFC 2131 §4.3.2: a renewing client names its address in ciaddr;
    // an option 50 of 0.0.0.0 beside it asks for nothing.
    let renewing = request(MessageType::Request, |m| {
        m.set_ciaddr(CLIENT_IP);
        with_requested(ZERO)(m);
    });
    let r = reply(ask(&renewing, Some(CLIENT), &binding(), &params()));
    assert_eq!((r.kind, r.addr), (Kind::Ack, Some(CLIENT_IP)));
    // Alone it is a request for no address.
    let r = reply(ask(
        &request(MessageType::Request, with_requested(ZERO)),
        Some(CLIENT),
        &binding(),
        &params(),
    ));
    assert_eq!(r.kind, Kind::Nak);
    assert_eq!(
        decode_reply(&r.frame).msg.opts().get(OptionCode::Message),
        Some(&DhcpOption::Message(NAK_NO_ADDRESS.into()))
    );
    // A DECLINE of 0.0.0.0 names no address in use.
    let decline = request(MessageType::Decline, with_requested(ZERO));
    assert_eq!(
        ask(&decline, Some(CLIENT), &binding(), &params()),
        Outcome::Refused(Refusal::Malformed)
    );
}

#[test]
fn binding_without_ip() {
    let b = Binding {
        ip: None,
        ..binding()
    };
    for pkt in [
        request(MessageType::Discover, |_| {}),
        request(MessageType::Request, with_requested(CLIENT_IP)),
    ] {
        assert_eq!(
            ask(&pkt, Some(CLIENT), &b, &params()),
            Outcome::Refused(Refusal::Unconfigured)
        );
    }
}

#[test]
fn broadcast_flag_and_relay_fields_are_honoured() {
    let relay = Ipv4Addr::new(172, 20, 0, 250);
    let pkt = request(MessageType::Discover, |m| {
        m.set_flags(Flags::default().set_broadcast())
            .set_giaddr(relay)
            .set_secs(12)
            .set_hops(1);
    });
    let r = reply(ask(&pkt, Some(CLIENT), &binding(), &params()));
    let mut x = lease_reply(MessageType::Offer, SERVER_IP, 0x1234_5678, ZERO);
    x.ip_dst = BCAST;
    x.flags = 0x8000;
    x.giaddr = relay;
    check(&r.frame, &x);

    // A renewing client is configured: unicast despite the flag.
    let pkt = request(MessageType::Request, |m| {
        m.set_flags(Flags::default().set_broadcast())
            .set_ciaddr(CLIENT_IP);
    });
    let r = reply(ask(&pkt, Some(CLIENT), &binding(), &params()));
    let mut x = lease_reply(MessageType::Ack, SERVER_IP, 0x1234_5678, CLIENT_IP);
    x.flags = 0x8000;
    check(&r.frame, &x);
}

#[test]
fn domain_and_host_name() {
    let pkt = request(MessageType::Discover, |_| {});
    let opts = |b: &Binding, p: &Params| {
        decode_reply(&reply(ask(&pkt, Some(CLIENT), b, p)).frame)
            .msg
            .opts()
            .clone()
    };
    let p = Params {
        domain: Some("site.example".into()),
        ..params()
    };
    let o = opts(&binding(), &p);
    assert_eq!(
        o.get(OptionCode::DomainName),
        Some(&DhcpOption::DomainName("site.example".into()))
    );
    let short = Binding {
        hostname: "vm1".into(),
        ..binding()
    };
    let o = opts(&short, &params());
    assert_eq!(
        o.get(OptionCode::Hostname),
        Some(&DhcpOption::Hostname("vm1".into()))
    );
    assert_eq!(o.get(OptionCode::DomainName), None);
    let dotted = Binding {
        hostname: "vm1.".into(),
        ..binding()
    };
    assert_eq!(opts(&dotted, &params()).get(OptionCode::DomainName), None);
    // No name servers configured: no option 6.
    let p = Params {
        nameservers: Vec::new(),
        ..params()
    };
    assert_eq!(opts(&binding(), &p).get(OptionCode::DomainNameServer), None);
}

#[test]
fn lease_times() {
    let pkt = request(MessageType::Discover, |_| {});
    let times = |p: &Params| {
        let d = decode_reply(&reply(ask(&pkt, Some(CLIENT), &binding(), p)).frame);
        let get = |c| match d.msg.opts().get(c) {
            Some(
                DhcpOption::AddressLeaseTime(t) | DhcpOption::Renewal(t) | DhcpOption::Rebinding(t),
            ) => *t,
            other => panic!("{other:?}"),
        };
        (
            get(OptionCode::AddressLeaseTime),
            get(OptionCode::Renewal),
            get(OptionCode::Rebinding),
        )
    };
    assert_eq!(times(&params()), (604_800, 600, 529_200));
    let p = Params {
        lease_lifetime: 3600,
        lease_renewal: 3600,
        ..params()
    };
    assert_eq!(times(&p), (3600, 3150, 3150));
    let p = Params {
        lease_lifetime: u32::MAX,
        ..params()
    };
    assert_eq!(times(&p), (u32::MAX, 600, 3_758_096_383));
}

#[test]
fn not_requests() {
    let refused = Outcome::Refused(Refusal::NotARequest);
    for t in [
        MessageType::Offer,
        MessageType::Ack,
        MessageType::Nak,
        MessageType::Unknown(42),
    ] {
        let pkt = request(t, |_| {});
        assert_eq!(
            ask(&pkt, Some(CLIENT), &binding(), &params()),
            refused,
            "{t:?}"
        );
    }
    let no_type = request(MessageType::Discover, |m| {
        m.opts_mut().remove(OptionCode::MessageType);
        m.opts_mut().insert(DhcpOption::Hostname("x".into()));
    });
    assert_eq!(ask(&no_type, Some(CLIENT), &binding(), &params()), refused);
    let reply_op = request(MessageType::Discover, |m| {
        m.set_opcode(Opcode::BootReply);
    });
    assert_eq!(ask(&reply_op, Some(CLIENT), &binding(), &params()), refused);
}

#[test]
fn malformed_requests() {
    let malformed = Outcome::Refused(Refusal::Malformed);
    let good = request(MessageType::Discover, |_| {});
    let payload = frame::parse_udp4(&good).unwrap().payload.to_vec();
    let go = |pkt: &[u8]| ask(pkt, Some(CLIENT), &binding(), &params());

    assert_eq!(go(&[]), malformed);
    assert_eq!(go(&[0x45; 64]), malformed);

    // Not UDP; UDP to another port.
    let mut tcp = good.clone();
    tcp[9] = 6;
    assert_eq!(go(&tcp), malformed);
    let to_68 = ip_packet(
        SocketAddrV4::new(ZERO, 68),
        SocketAddrV4::new(BCAST, 68),
        &payload,
    );
    assert_eq!(go(&to_68), malformed);
    let from_67 = ip_packet(
        SocketAddrV4::new(ZERO, 67),
        SocketAddrV4::new(BCAST, 67),
        &payload,
    );
    assert!(
        matches!(go(&from_67), Outcome::Reply(_)),
        "relay-style port"
    );

    let rewrap = |edit: &dyn Fn(&mut Vec<u8>)| {
        let mut p = payload.clone();
        edit(&mut p);
        ip_packet(
            SocketAddrV4::new(ZERO, 68),
            SocketAddrV4::new(BCAST, 67),
            &p,
        )
    };
    // Short of the fixed header; wrong cookie; a hardware address
    // longer than chaddr.
    assert_eq!(go(&rewrap(&|p| p.truncate(239))), malformed);
    assert_eq!(go(&rewrap(&|p| p[236] = 0)), malformed);
    assert_eq!(go(&rewrap(&|p| p[2] = 17)), malformed);
    assert_eq!(go(&rewrap(&|p| p[2] = 255)), malformed);
    // Valid BOOTP from a client whose chaddr is not a MAC.
    let not_ethernet = Outcome::Refused(Refusal::NotEthernet);
    assert_eq!(go(&rewrap(&|p| p[1] = 6)), not_ethernet);
    assert_eq!(go(&rewrap(&|p| p[1] = 32)), not_ethernet);
    assert_eq!(go(&rewrap(&|p| p[2] = 16)), not_ethernet);
    assert_eq!(go(&rewrap(&|p| p[2] = 0)), not_ethernet);
    // Options of the wrong size.
    let with_opts = |opts: &[u8]| {
        rewrap(&|p| {
            p.truncate(240);
            p.extend_from_slice(opts);
        })
    };
    assert_eq!(go(&with_opts(&[53, 0, 255])), malformed);
    assert_eq!(go(&with_opts(&[53, 1, 1, 54, 3, 1, 2, 3, 255])), malformed);
    assert_eq!(
        go(&with_opts(&[53, 1, 3, 50, 5, 1, 2, 3, 4, 5, 255])),
        malformed
    );
    // Subnet selection is 4 bytes (RFC 3011 §3), here as in relay mode.
    assert_eq!(
        go(&with_opts(&[53, 1, 1, 118, 3, 10, 0, 0, 255])),
        malformed
    );
    // Still fine: no End, padding, the first of two type options, a
    // split option (RFC 3396).
    assert!(matches!(go(&with_opts(&[53, 1, 1])), Outcome::Reply(_)));
    assert!(matches!(
        go(&with_opts(&[0, 0, 53, 1, 1, 0, 255])),
        Outcome::Reply(_)
    ));
    let r = reply(go(&with_opts(&[53, 1, 1, 53, 1, 3, 255])));
    assert_eq!(r.request, Kind::Discover, "adjacent 53s join to [1, 3]");
    let r = reply(go(&with_opts(&[
        53, 1, 3, 12, 1, b'x', 53, 1, 1, 50, 4, 172, 20, 0, 101, 255,
    ])));
    assert_eq!((r.request, r.kind), (Kind::Request, Kind::Ack));
    let r = reply(go(&with_opts(&[53, 1, 1, 61, 2, 1, 2, 61, 2, 3, 4, 255])));
    let d = decode_reply(&r.frame);
    assert_eq!(
        d.msg.opts().get(OptionCode::ClientIdentifier),
        Some(&DhcpOption::ClientIdentifier(vec![1, 2, 3, 4]))
    );
}

#[test]
fn every_prefix_is_refused_without_panic() {
    let mut packets = vec![
        bin_packet("pydhcp-discover"),
        request(MessageType::Request, with_requested(CLIENT_IP)),
    ];
    packets.push(pcap_packet("pydhcp-request.selecting.pxe.pcap").2);
    for pkt in &packets {
        for n in 0..pkt.len() {
            assert_eq!(
                ask(&pkt[..n], Some(CLIENT), &binding(), &params()),
                Outcome::Refused(Refusal::Malformed),
                "prefix {n}"
            );
        }
        // The same for the DHCP message alone, behind intact headers:
        // refused while the fixed part is cut, answered or refused
        // (never a panic) once only options are missing.
        let payload = frame::parse_udp4(pkt).unwrap().payload;
        for n in 0..payload.len() {
            let p = ip_packet(
                SocketAddrV4::new(ZERO, 68),
                SocketAddrV4::new(BCAST, 67),
                &payload[..n],
            );
            let o = ask(&p, Some(CLIENT), &binding(), &params());
            if n < 240 {
                assert_eq!(o, Outcome::Refused(Refusal::Malformed), "prefix {n}");
            }
            sane(&o);
        }
    }
}

/// xorshift64*: a fixed, dependency-free stream of test bytes.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Whatever comes back must be well formed.
fn sane(o: &Outcome) {
    if let Outcome::Reply(r) = o {
        decode_reply(&r.frame);
    }
}

#[test]
fn mutations_never_panic() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let macspoof = Binding {
        macspoof: true,
        ..binding()
    };
    let bases = [
        bin_packet("pydhcp-discover"),
        bin_packet("pydhcp-request.renewing"),
        pcap_packet("pydhcp-request.selecting.pxe.pcap").2,
    ];
    for base in &bases {
        // Whole-packet byte mutations: mostly refused by the IP layer.
        for _ in 0..3000 {
            let mut p = base.clone();
            for _ in 0..=rng.below(4) {
                let i = rng.below(p.len());
                p[i] = rng.next() as u8;
            }
            sane(&ask(&p, Some(CLIENT), &macspoof, &params()));
        }
        // DHCP-only mutations behind valid IP/UDP headers, so that the
        // message and option parsers see them.
        let payload = frame::parse_udp4(base).unwrap().payload.to_vec();
        for _ in 0..20_000 {
            let mut d = payload.clone();
            match rng.below(4) {
                0 => {
                    for _ in 0..=rng.below(8) {
                        let i = rng.below(d.len());
                        d[i] = rng.next() as u8;
                    }
                }
                1 => {
                    // Random options after the cookie.
                    let n = rng.below(80);
                    d.truncate(240);
                    d.extend((0..n).map(|_| rng.next() as u8));
                }
                2 => {
                    // Plausible but broken options: real codes, odd lengths.
                    d.truncate(240);
                    for _ in 0..rng.below(10) {
                        let code = [53u8, 54, 50, 61, 12, 55, 0, 255][rng.below(8)];
                        let len = rng.below(9);
                        d.push(code);
                        d.push(len as u8);
                        d.extend((0..rng.below(9)).map(|_| rng.next() as u8));
                    }
                }
                _ => d.truncate(rng.below(d.len() + 1)),
            }
            let p = ip_packet(
                SocketAddrV4::new(ZERO, 68),
                SocketAddrV4::new(BCAST, 67),
                &d,
            );
            sane(&ask(&p, Some(CLIENT), &macspoof, &params()));
            sane(&ask(&p, None, &binding(), &params()));
        }
    }
}

#[test]
fn huge_configuration_is_not_a_panic() {
    let p = Params {
        nameservers: vec![NS1; 20_000],
        ..params()
    };
    assert_eq!(
        ask(
            &request(MessageType::Discover, |_| {}),
            Some(CLIENT),
            &binding(),
            &p
        ),
        Outcome::Refused(Refusal::Unconfigured)
    );
    // Large but possible: more than 255 bytes of name servers are split
    // over several options (RFC 3396) and the frame grows past 590.
    let p = Params {
        nameservers: vec![NS1; 100],
        ..params()
    };
    let r = reply(ask(
        &request(MessageType::Discover, |_| {}),
        Some(CLIENT),
        &binding(),
        &p,
    ));
    let udp = frame::parse_udp4(&r.frame[14..]).unwrap();
    let m = v4::Message::decode(&mut Decoder::new(udp.payload)).unwrap();
    assert_eq!(
        m.opts().get(OptionCode::DomainNameServer),
        Some(&DhcpOption::DomainNameServer(vec![NS1; 100]))
    );
}

#[test]
fn answers_are_deterministic() {
    let pkt = bin_packet("pydhcp-request.selecting");
    let a = ask(&pkt, None, &binding(), &params());
    let b = ask(&pkt, None, &binding(), &params());
    assert_eq!(a, b);
    let r = reply(a);
    assert!(r.frame.len() <= FRAME_CAPACITY);
    assert_eq!(r.frame.capacity(), FRAME_CAPACITY, "one allocation");
}
