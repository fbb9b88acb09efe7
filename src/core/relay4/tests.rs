use super::*;
use crate::backend::{Boot, LeaseKind};
use crate::core::captures::{capture, pcap_frames};
use crate::core::frame;
use crate::core::mac::MacAddr;
use crate::core::request4::MAX_CLASS;
use dhcproto::v4::{DhcpOptions, Flags, HType, Opcode};
use std::borrow::Cow;

const CLIENT: MacAddr = MacAddr([0x52, 0x54, 0x00, 0x1b, 0x31, 0x20]);
const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(172, 20, 0, 101);
/// The server identifier the captured CentOS client selected.
const SERVER_IP: Ipv4Addr = Ipv4Addr::new(172, 20, 0, 4);
/// The server identifier the captured PXE client selected.
const PXE_SERVER_IP: Ipv4Addr = Ipv4Addr::new(172, 20, 0, 5);
const NS1: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 53);
const NS2: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 53);
/// A relay (the management VLAN's router) and a BMC subnet behind it.
const RELAY: Ipv4Addr = Ipv4Addr::new(10, 40, 7, 1);
const BMC_IP: Ipv4Addr = Ipv4Addr::new(10, 40, 7, 23);
const LINK: Ipv4Addr = Ipv4Addr::new(10, 50, 0, 0);
const SUBNET_SEL: Ipv4Addr = Ipv4Addr::new(10, 60, 0, 0);
/// This server's address on the interface facing the relays.
const LOCAL: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
const IFINDEX: u32 = 7;
const ZERO: Ipv4Addr = Ipv4Addr::UNSPECIFIED;
const BCAST: Ipv4Addr = Ipv4Addr::BROADCAST;
const BROADCAST_FLAG: u16 = 0x8000;
/// Option 61 of the captured PXE client: type 1 (Ethernet) + its MAC.
const PXE_CLIENT_ID: [u8; 7] = [1, 0x52, 0x54, 0x00, 0x1b, 0x31, 0x20];
const CENTOS_PRL: [u8; 19] = [
    1, 28, 2, 121, 15, 6, 12, 40, 41, 42, 26, 119, 3, 121, 249, 33, 252, 42, 17,
];

// ---- inputs ------------------------------------------------------------

/// A captured datagram: UDP source, IP destination and DHCP payload.
#[derive(Debug, Clone)]
struct Captured {
    name: String,
    src: SocketAddrV4,
    dst: Ipv4Addr,
    payload: Vec<u8>,
}

fn from_ip(name: &str, ip: &[u8]) -> Captured {
    let udp = frame::parse_udp4(ip).unwrap();
    assert_eq!(udp.dst.port(), SERVER_PORT, "{name}");
    Captured {
        name: name.to_string(),
        src: udp.src,
        dst: *udp.dst.ip(),
        payload: udp.payload.to_vec(),
    }
}

/// `<stem>.ip.bin + .udp.bin + .dhcp.bin`: one IPv4 packet.
fn bin_capture(stem: &str) -> Captured {
    let mut p = capture(&format!("{stem}.ip.bin"));
    p.extend(capture(&format!("{stem}.udp.bin")));
    p.extend(capture(&format!("{stem}.dhcp.bin")));
    from_ip(stem, &p)
}

/// The frames of a classic pcap file (24-byte global header, then
/// records of a 16-byte header and the captured bytes).
fn pcap_captures(name: &str) -> Vec<Captured> {
    pcap_frames(name)
        .iter()
        .map(|f| {
            let eth = frame::parse_ethernet(f).unwrap();
            assert_eq!(eth.ethertype, frame::ETHERTYPE_IPV4);
            assert_eq!(eth.src, CLIENT, "{name}");
            from_ip(name, eth.payload)
        })
        .collect()
}

fn pcap_capture(name: &str) -> Captured {
    let mut all = pcap_captures(name);
    assert_eq!(all.len(), 1, "{name}");
    all.remove(0)
}

/// Every capture in the directory.
fn all_captures() -> Vec<Captured> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/captures");
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    let mut out = Vec::new();
    for name in names {
        if name.ends_with(".pcap") {
            out.extend(pcap_captures(&name));
        } else if let Some(stem) = name.strip_suffix(".dhcp.bin") {
            out.push(bin_capture(stem));
        }
    }
    assert!(out.len() >= 11, "only {} captured packets", out.len());
    out
}

fn settings() -> Settings {
    Settings {
        server_ident: None,
        authoritative: false,
        lease_time: 3600,
        nameservers: vec![NS1, NS2],
        domain: Some("mgmt.example.net".into()),
    }
}

fn authoritative() -> Settings {
    Settings {
        authoritative: true,
        ..settings()
    }
}

/// A request received directly (not relayed) on the interface whose
/// address is `local`.
fn direct(c: &Captured, local: Ipv4Addr) -> RecvCtx {
    RecvCtx {
        src: c.src,
        local,
        ifindex: IFINDEX,
    }
}

fn relay_ctx(port: u16) -> RecvCtx {
    RecvCtx {
        src: SocketAddrV4::new(RELAY, port),
        local: LOCAL,
        ifindex: IFINDEX,
    }
}

fn lease_in(addr: Ipv4Addr, net: &str) -> Lease {
    let network: ipnet::Ipv4Net = net.parse().unwrap();
    Lease {
        addr,
        network,
        gateway: network.hosts().next(),
        dns: Vec::new(),
        boot: None,
        kind: LeaseKind::Dynamic,
        record: Some("rec-1".into()),
        lease_secs: 3600,
        recorded_until: None,
    }
}

fn lease() -> Lease {
    lease_in(CLIENT_IP, "172.20.0.0/24")
}

fn bmc_lease() -> Lease {
    lease_in(BMC_IP, "10.40.7.0/24")
}

/// The BOOTP fields of a hand-built request.
#[derive(Clone, Copy)]
struct Fields {
    op: Opcode,
    xid: u32,
    flags: u16,
    ciaddr: Ipv4Addr,
    giaddr: Ipv4Addr,
    chaddr: MacAddr,
}

fn fields() -> Fields {
    Fields {
        op: Opcode::BootRequest,
        xid: 0x1234_5678,
        flags: 0,
        ciaddr: ZERO,
        giaddr: ZERO,
        chaddr: CLIENT,
    }
}

fn relayed() -> Fields {
    Fields {
        giaddr: RELAY,
        ..fields()
    }
}

/// One option, raw.
fn o(code: u8, data: &[u8]) -> Vec<u8> {
    let mut v = vec![code, data.len() as u8];
    v.extend_from_slice(data);
    v
}

fn mt(t: u8) -> Vec<u8> {
    o(53, &[t])
}

const DISCOVER: u8 = 1;
const REQUEST: u8 = 3;
const DECLINE: u8 = 4;
const RELEASE: u8 = 7;
const INFORM: u8 = 8;

/// A BOOTREQUEST with these fields and these raw options, then End.
fn packet(f: Fields, opts: &[Vec<u8>]) -> Vec<u8> {
    let mut m = v4::Message::new_with_id(f.xid, f.ciaddr, ZERO, ZERO, f.giaddr, &f.chaddr.0);
    m.set_opcode(f.op).set_flags(Flags::from(f.flags));
    let mut p = m.to_vec().unwrap();
    p.truncate(240);
    for opt in opts {
        p.extend_from_slice(opt);
    }
    p.push(255);
    p
}

/// Option 82 data as a relay builds it: circuit id, remote id, link
/// selection, then whatever `extra` holds.
fn agent_info(link: Option<Ipv4Addr>, extra: &[u8]) -> Vec<u8> {
    let mut d = o(1, b"Gi1/0/7:vlan740");
    d.extend(o(2, &[0x00, 0x06, 0x58, 0x8d, 0x09, 0x1e, 0x33, 0x80]));
    if let Some(l) = link {
        d.extend(o(5, &l.octets()));
    }
    d.extend_from_slice(extra);
    d
}

/// Sub-option 19 as RFC 8357 defines it: no data.
const RELAY_PORT: [u8; 2] = [19, 0];

/// A request that outlives its datagram, as the state thread keeps it.
fn parsed(p: &[u8]) -> Request<'static> {
    parse(p)
        .unwrap_or_else(|r| panic!("refused: {r:?}"))
        .into_owned()
}

// ---- checking a reply --------------------------------------------------

/// The options of a reply walked raw: (code, data) in wire order, each
/// part of a split option on its own.
fn raw_options(p: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut out = Vec::new();
    let mut i = 240;
    loop {
        match p[i] {
            0 => i += 1,
            255 => break,
            code => {
                let len = p[i + 1] as usize;
                out.push((code, p[i + 2..i + 2 + len].to_vec()));
                i += 2 + len;
            }
        }
    }
    assert!(p[i + 1..].iter().all(|&b| b == 0), "only padding after End");
    assert!(i + 1 == p.len() || p.len() == bootp::MIN_MESSAGE_LEN);
    out
}

/// A reply decoded with dhcproto after the checks that hold for every
/// reply; `req` is the request it answers.
fn decode(out: &Out, req: &Request) -> v4::Message {
    let p = &out.payload;
    assert!(p.len() >= bootp::MIN_MESSAGE_LEN, "{} bytes", p.len());
    let msg = v4::Message::decode(&mut Decoder::new(p)).unwrap();
    assert_eq!(msg.opcode(), Opcode::BootReply);
    assert_eq!(msg.htype(), HType::Eth);
    assert_eq!(msg.hlen(), 6);
    assert_eq!(msg.hops(), 0);
    assert_eq!(msg.secs(), 0);
    assert_eq!(msg.xid(), req.xid);
    assert_eq!(msg.giaddr(), req.giaddr);
    assert_eq!(msg.chaddr(), &req.chaddr.0);
    assert_eq!(&p[34..44], &[0; 10], "chaddr padding");
    assert_eq!(msg.sname(), None);
    assert_eq!(msg.opts().msg_type().unwrap(), reply_type(out.kind));
    assert_eq!(
        msg.opts().get(OptionCode::ServerIdentifier),
        Some(&DhcpOption::ServerIdentifier(out.source))
    );

    let opts = raw_options(p);
    let codes: Vec<u8> = opts.iter().map(|(c, _)| *c).collect();
    assert_eq!(codes[..2], [53, 54], "type and server id first");
    // Option 82 exactly as received, and last.
    let relay: Vec<u8> = opts
        .iter()
        .filter(|(c, _)| *c == 82)
        .flat_map(|(_, d)| d.clone())
        .collect();
    match &req.relay_info {
        Some(info) => {
            assert_eq!(&relay[..], &info[..], "option 82 verbatim");
            assert_eq!(codes.last(), Some(&82), "option 82 last: {codes:?}");
        }
        None => assert!(relay.is_empty()),
    }
    let client_id: Vec<u8> = opts
        .iter()
        .filter(|(c, _)| *c == 61)
        .flat_map(|(_, d)| d.clone())
        .collect();
    assert_eq!(
        client_id,
        req.client_id.as_deref().unwrap_or_default(),
        "client id echoed"
    );
    // No option appears twice, apart from the parts of a split one.
    let mut runs = codes.clone();
    runs.dedup();
    let mut unique = runs.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), runs.len(), "no repeated option: {codes:?}");
    // Over the client's maximum message size only when nothing optional
    // is left to leave out.
    if p.len() > budget(req) {
        for c in [28, 15, 6, 66, 67] {
            assert!(!codes.contains(&c), "{c} in a reply over the budget");
        }
    }
    msg
}

fn reply_type(k: ReplyKind) -> MessageType {
    match k {
        ReplyKind::Offer => MessageType::Offer,
        ReplyKind::Ack => MessageType::Ack,
        ReplyKind::Nak => MessageType::Nak,
    }
}

/// Everything a reply must say.
#[derive(Debug, Clone)]
struct Expect {
    kind: ReplyKind,
    dest: SocketAddrV4,
    broadcast_ifindex: Option<u32>,
    source: Ipv4Addr,
    addr: Option<Ipv4Addr>,
    flags: u16,
    ciaddr: Ipv4Addr,
    yiaddr: Ipv4Addr,
    siaddr: Ipv4Addr,
    file: Vec<u8>,
    /// Every option but 82, in wire order.
    options: Vec<DhcpOption>,
}

fn check(out: &Out, req: &Request, x: &Expect) -> v4::Message {
    let m = decode(out, req);
    assert_eq!(out.kind, x.kind, "kind");
    assert_eq!(out.dest, x.dest, "destination");
    assert_eq!(
        out.broadcast_ifindex, x.broadcast_ifindex,
        "broadcast ifindex"
    );
    assert_eq!(out.source, x.source, "source");
    assert_eq!(out.addr, x.addr, "addr");
    assert_eq!(u16::from(m.flags()), x.flags, "flags");
    assert_eq!(m.ciaddr(), x.ciaddr, "ciaddr");
    assert_eq!(m.yiaddr(), x.yiaddr, "yiaddr");
    assert_eq!(m.siaddr(), x.siaddr, "siaddr");
    let file = &out.payload[108..236];
    assert_eq!(&file[..x.file.len()], &x.file[..], "file");
    assert!(file[x.file.len()..].iter().all(|&b| b == 0), "file padding");

    let mut want_codes: Vec<u8> = x
        .options
        .iter()
        .map(|o| u8::from(OptionCode::from(o)))
        .collect();
    if req.relay_info.is_some() {
        want_codes.push(82);
    }
    let mut codes: Vec<u8> = raw_options(&out.payload).iter().map(|o| o.0).collect();
    codes.dedup();
    assert_eq!(codes, want_codes, "option codes in order");
    let mut want = DhcpOptions::new();
    for o in &x.options {
        want.insert(o.clone());
    }
    let mut got = m.opts().clone();
    got.remove(OptionCode::RelayAgentInformation);
    assert_eq!(got, want, "option values");
    m
}

/// The options of an OFFER/ACK of `l` with `settings()`, before the echoes.
fn lease_options(t: MessageType, server: Ipv4Addr, l: &Lease) -> Vec<DhcpOption> {
    vec![
        DhcpOption::MessageType(t),
        DhcpOption::ServerIdentifier(server),
        DhcpOption::AddressLeaseTime(3600),
        DhcpOption::Renewal(1800),
        DhcpOption::Rebinding(3150),
        DhcpOption::SubnetMask(Ipv4Addr::new(255, 255, 255, 0)),
        DhcpOption::BroadcastAddr(l.network.broadcast()),
        DhcpOption::Router(vec![l.gateway.unwrap()]),
        DhcpOption::DomainNameServer(vec![NS1, NS2]),
        DhcpOption::DomainName("mgmt.example.net".into()),
    ]
}

fn lease_expect(
    kind: ReplyKind,
    server: Ipv4Addr,
    l: &Lease,
    dest: SocketAddrV4,
    ciaddr: Ipv4Addr,
) -> Expect {
    Expect {
        kind,
        dest,
        broadcast_ifindex: (*dest.ip() == BCAST).then_some(IFINDEX),
        source: server,
        addr: Some(l.addr),
        flags: 0,
        ciaddr,
        yiaddr: l.addr,
        siaddr: ZERO,
        file: Vec::new(),
        options: lease_options(reply_type(kind), server, l),
    }
}

fn to_client_bcast() -> SocketAddrV4 {
    SocketAddrV4::new(BCAST, CLIENT_PORT)
}

fn to_relay(port: u16) -> SocketAddrV4 {
    SocketAddrV4::new(RELAY, port)
}

fn ok_lease(l: &Lease) -> Result<Outcome, BackendError> {
    Ok(Outcome::Lease(l.clone()))
}

fn no_lease(why: NoLease) -> Result<Outcome, BackendError> {
    Ok(Outcome::NoLease(why))
}

fn confirm(addr: Ipv4Addr) -> JobKind {
    JobKind::Confirm {
        addr,
        lease_secs: 3600,
    }
}

fn asked(step: Step) -> (JobKind, Client) {
    match step {
        Step::Ask(job, client) => (job, client),
        other => panic!("expected a job, got {other:?}"),
    }
}

// ---- captured clients --------------------------------------------------

#[test]
fn captures_parse() {
    for c in all_captures() {
        let r = parsed(&c.payload);
        let name = &c.name;
        assert_eq!(r.chaddr, CLIENT, "{name}");
        assert_eq!((r.flags, r.giaddr, r.hops), (0.into(), ZERO, 0), "{name}");
        assert_eq!(r.relay_info, None, "{name}");
        assert_eq!((r.link_selection, r.subnet_selection), (None, None));
        assert!(!r.relay_port);
        let want = if name.contains("discover") {
            MsgType::Discover
        } else {
            MsgType::Request
        };
        assert_eq!(r.msg, want, "{name}");
        if name.contains("pxe") {
            assert_eq!(r.xid, 0x9e04_3864);
            assert_eq!(r.client_id.as_deref(), Some(&PXE_CLIENT_ID[..]));
            assert_eq!(r.arch, Some(0));
            assert_eq!(r.user_class.as_deref(), Some(&b"iPXE"[..]));
            assert_eq!(
                r.vendor_class.as_deref(),
                Some(&b"PXEClient:Arch:00000:UNDI:002001"[..])
            );
            assert_eq!(r.max_size, Some(1472));
            assert_eq!(r.hostname, None);
            let prl: Vec<u8> = r.prl.iter().collect();
            assert_eq!(
                prl,
                [
                    1, 3, 6, 7, 12, 15, 17, 26, 43, 60, 66, 67, 119, 128, 129, 130, 131, 132, 133,
                    134, 135, 175, 203
                ]
            );
        } else {
            assert_eq!(r.hostname.as_deref(), Some("workstation01"), "{name}");
            assert_eq!((r.arch, r.max_size), (None, None));
            assert_eq!((&r.user_class, &r.vendor_class), (&None, &None));
            assert_eq!(r.client_id, None);
            for code in CENTOS_PRL {
                assert!(r.prl.contains(code), "{name}: {code}");
            }
            assert!(!r.prl.contains(66) && !r.prl.contains(67));
        }
        // What the file names promise.
        let extends = name.contains("renewing") || name.contains("rebinding");
        assert_eq!(r.ciaddr, if extends { CLIENT_IP } else { ZERO }, "{name}");
        let asks = !extends && name != "pydhcp-discover.selecting.pxe.pcap";
        assert_eq!(r.requested, asks.then_some(CLIENT_IP), "{name}");
        let selecting = name.contains("request.selecting");
        assert_eq!(r.server_id.is_some(), selecting, "{name}");
    }
    // The exact values of the .bin captures.
    let r = parsed(&bin_capture("pydhcp-request.selecting").payload);
    assert_eq!(r.xid, 0x68a9_227e);
    assert_eq!(
        (r.server_id, r.requested),
        (Some(SERVER_IP), Some(CLIENT_IP))
    );
    let r = parsed(&pcap_capture("pydhcp-request.selecting.pxe.pcap").payload);
    assert_eq!(
        (r.server_id, r.requested),
        (Some(PXE_SERVER_IP), Some(CLIENT_IP))
    );
}

#[test]
fn captured_client_states() {
    for c in all_captures() {
        let r = parsed(&c.payload);
        let to_broadcast = Some(c.dst == BCAST);
        let want = if c.name.contains("discover") {
            None
        } else if c.name.contains("selecting") {
            Some(ClientState::Selecting)
        } else if c.name.contains("initreboot") {
            Some(ClientState::InitReboot)
        } else if c.name.contains("renewing") {
            Some(ClientState::Renewing)
        } else if c.name.contains("rebinding") {
            Some(ClientState::Rebinding)
        } else {
            panic!("{}: no state in the name", c.name)
        };
        assert_eq!(client_state(&r, to_broadcast), want, "{}", c.name);
    }
    // Without the destination: a direct request counts as RENEWING, a
    // relayed one as REBINDING.
    let c = bin_capture("pydhcp-request.rebinding");
    let mut r = parsed(&c.payload);
    assert_eq!(client_state(&r, None), Some(ClientState::Renewing));
    r.giaddr = RELAY;
    assert_eq!(client_state(&r, None), Some(ClientState::Rebinding));
    assert_eq!(ClientState::InitReboot.name(), "INIT-REBOOT");

    // Requests that fit no state.
    let none = |opts: &[Vec<u8>], ciaddr| {
        let f = Fields { ciaddr, ..fields() };
        client_state(&parsed(&packet(f, opts)), Some(true))
    };
    assert_eq!(none(&[mt(REQUEST)], ZERO), None);
    let sid = o(54, &SERVER_IP.octets());
    let req = o(50, &CLIENT_IP.octets());
    assert_eq!(none(&[mt(REQUEST), sid.clone()], ZERO), None);
    assert_eq!(none(&[mt(REQUEST), sid.clone()], CLIENT_IP), None);
    assert_eq!(none(&[mt(REQUEST), req.clone()], CLIENT_IP), None);
    assert_eq!(
        none(&[mt(REQUEST), sid, req], ZERO),
        Some(ClientState::Selecting)
    );
}

#[test]
fn captured_decisions() {
    let s = settings();
    // (capture, receiving address, expected job)
    let cases: [(Captured, Ipv4Addr, JobKind); 6] = [
        (bin_capture("pydhcp-discover"), SERVER_IP, JobKind::Offer),
        (
            bin_capture("pydhcp-request.selecting"),
            SERVER_IP,
            confirm(CLIENT_IP),
        ),
        (
            bin_capture("pydhcp-request.initreboot"),
            LOCAL,
            confirm(CLIENT_IP),
        ),
        (
            bin_capture("pydhcp-request.renewing"),
            PXE_SERVER_IP,
            confirm(CLIENT_IP),
        ),
        (
            bin_capture("pydhcp-request.rebinding"),
            LOCAL,
            confirm(CLIENT_IP),
        ),
        (
            pcap_capture("pydhcp-request.selecting.pxe.pcap"),
            PXE_SERVER_IP,
            confirm(CLIENT_IP),
        ),
    ];
    for (c, local, job) in cases {
        let r = parsed(&c.payload);
        let (got, client) = asked(decide(&r, &direct(&c, local), &s));
        assert_eq!(got, job, "{}", c.name);
        assert_eq!(client.mac, CLIENT);
        // Not relayed: the requested address, else ciaddr, names the subnet.
        assert_eq!(client.origin, CLIENT_IP, "{}", c.name);
        let pxe = c.name.contains("pxe");
        let host = (!pxe).then(|| "workstation01".to_string());
        assert_eq!(client.hostname, host);
        let boot = if pxe {
            BootClient::Ipxe
        } else {
            BootClient::None
        };
        assert_eq!(client.boot, boot, "{}", c.name);
    }

    // The PXE DISCOVER names no address: the receiving interface does.
    let c = pcap_capture("pydhcp-discover.selecting.pxe.pcap");
    let (job, client) = asked(decide(&parsed(&c.payload), &direct(&c, LOCAL), &s));
    assert_eq!(job, JobKind::Offer);
    assert_eq!(client.origin, LOCAL);
    assert_eq!(client.boot, BootClient::Ipxe);

    // The SELECTING clients chose .4 and .5: another server stays quiet.
    for (c, chosen) in [
        (bin_capture("pydhcp-request.selecting"), SERVER_IP),
        (
            pcap_capture("pydhcp-request.selecting.pxe.pcap"),
            PXE_SERVER_IP,
        ),
    ] {
        let r = parsed(&c.payload);
        assert_eq!(
            decide(&r, &direct(&c, LOCAL), &authoritative()),
            Step::Ignore(Refusal::OtherServer)
        );
        // server_ident wins over the receiving address, either way.
        let ident = Settings {
            server_ident: Some(chosen),
            ..settings()
        };
        assert!(matches!(
            decide(&r, &direct(&c, LOCAL), &ident),
            Step::Ask(..)
        ));
        let ident = Settings {
            server_ident: Some(LOCAL),
            ..settings()
        };
        assert_eq!(
            decide(&r, &direct(&c, chosen), &ident),
            Step::Ignore(Refusal::OtherServer)
        );
    }

    // Lease time asked for is the configured one.
    let c = bin_capture("pydhcp-request.renewing");
    let s = Settings {
        lease_time: 86_400,
        ..settings()
    };
    let (job, _) = asked(decide(&parsed(&c.payload), &direct(&c, LOCAL), &s));
    assert_eq!(
        job,
        JobKind::Confirm {
            addr: CLIENT_IP,
            lease_secs: 86_400
        }
    );
}

#[test]
fn captured_offer_and_acks() {
    let s = settings();
    let l = lease();
    let ci_dest = SocketAddrV4::new(CLIENT_IP, CLIENT_PORT);
    // (capture, server, reply kind, destination, ciaddr)
    for (c, server, kind, dest, ciaddr) in [
        (
            bin_capture("pydhcp-discover"),
            SERVER_IP,
            ReplyKind::Offer,
            to_client_bcast(),
            ZERO,
        ),
        (
            pcap_capture("pydhcp-discover.selecting.centos.pcap"),
            SERVER_IP,
            ReplyKind::Offer,
            to_client_bcast(),
            ZERO,
        ),
        (
            bin_capture("pydhcp-request.selecting"),
            SERVER_IP,
            ReplyKind::Ack,
            to_client_bcast(),
            ZERO,
        ),
        (
            bin_capture("pydhcp-request.initreboot"),
            SERVER_IP,
            ReplyKind::Ack,
            to_client_bcast(),
            ZERO,
        ),
        (
            pcap_capture("pydhcp-request.initreboot.centos.pcap"),
            SERVER_IP,
            ReplyKind::Ack,
            to_client_bcast(),
            ZERO,
        ),
        (
            bin_capture("pydhcp-request.renewing"),
            PXE_SERVER_IP,
            ReplyKind::Ack,
            ci_dest,
            CLIENT_IP,
        ),
        (
            pcap_capture("pydhcp-request.renewing.centos.pcap"),
            PXE_SERVER_IP,
            ReplyKind::Ack,
            ci_dest,
            CLIENT_IP,
        ),
        (
            bin_capture("pydhcp-request.rebinding"),
            SERVER_IP,
            ReplyKind::Ack,
            ci_dest,
            CLIENT_IP,
        ),
        (
            pcap_capture("pydhcp-request.rebinding.centos.pcap"),
            SERVER_IP,
            ReplyKind::Ack,
            ci_dest,
            CLIENT_IP,
        ),
    ] {
        let r = parsed(&c.payload);
        let ctx = direct(&c, server);
        let (job, _) = asked(decide(&r, &ctx, &s));
        let out = answer(&r, &ctx, &s, &job, &ok_lease(&l)).expect(&c.name);
        check(&out, &r, &lease_expect(kind, server, &l, dest, ciaddr));
    }
}

#[test]
fn captured_pxe_client_gets_its_boot_file() {
    let s = settings();
    let mut l = lease();
    l.boot = Some(Boot {
        server: Some(PXE_SERVER_IP),
        server_name: None,
        file: "http://172.20.0.5/boot.ipxe".into(),
    });
    for (name, kind) in [
        ("pydhcp-discover.selecting.pxe.pcap", ReplyKind::Offer),
        ("pydhcp-request.selecting.pxe.pcap", ReplyKind::Ack),
    ] {
        let c = pcap_capture(name);
        let r = parsed(&c.payload);
        let ctx = direct(&c, PXE_SERVER_IP);
        let (job, client) = asked(decide(&r, &ctx, &s));
        assert_eq!(client.boot, BootClient::Ipxe);
        let out = answer(&r, &ctx, &s, &job, &ok_lease(&l)).unwrap();
        let mut x = lease_expect(kind, PXE_SERVER_IP, &l, to_client_bcast(), ZERO);
        x.siaddr = PXE_SERVER_IP;
        x.file = b"http://172.20.0.5/boot.ipxe".to_vec();
        x.options.extend([
            DhcpOption::TFTPServerName(b"172.20.0.5".to_vec()),
            DhcpOption::BootfileName(b"http://172.20.0.5/boot.ipxe".to_vec()),
            DhcpOption::ClientIdentifier(PXE_CLIENT_ID.to_vec()),
        ]);
        check(&out, &r, &x);
    }
}

#[test]
fn every_capture_is_answered() {
    // Also catches captures added later that this code cannot read.
    for c in all_captures() {
        let r = parsed(&c.payload);
        let server = r.server_id.unwrap_or(SERVER_IP);
        let ctx = direct(&c, server);
        let (job, _) = asked(decide(&r, &ctx, &authoritative()));
        let out = answer(&r, &ctx, &authoritative(), &job, &ok_lease(&lease())).unwrap();
        assert_ne!(out.kind, ReplyKind::Nak, "{}", c.name);
        decode(&out, &r);
    }
}

// ---- relayed requests --------------------------------------------------

#[test]
fn relayed_request_with_option_82() {
    let s = settings();
    let info = agent_info(Some(LINK), &RELAY_PORT);
    let p = packet(
        relayed(),
        &[
            mt(DISCOVER),
            o(61, &PXE_CLIENT_ID),
            o(12, b"idrac-7XK2Q3"),
            o(82, &info),
        ],
    );
    let r = parsed(&p);
    assert_eq!(r.relay_info.as_deref(), Some(&info[..]));
    assert_eq!(r.link_selection, Some(LINK));
    assert!(r.relay_port);
    let ctx = relay_ctx(3067);
    let (job, client) = asked(decide(&r, &ctx, &s));
    assert_eq!(job, JobKind::Offer);
    assert_eq!(
        client,
        Client {
            mac: CLIENT,
            hostname: Some("idrac-7XK2Q3".into()),
            origin: LINK,
            boot: BootClient::None,
        }
    );

    let mut l = lease_in(Ipv4Addr::new(10, 50, 0, 9), "10.50.0.0/22");
    l.gateway = Some(Ipv4Addr::new(10, 50, 0, 1));
    let out = answer(&r, &ctx, &s, &job, &ok_lease(&l)).unwrap();
    let mut x = lease_expect(ReplyKind::Offer, LOCAL, &l, to_relay(3067), ZERO);
    x.options[5] = DhcpOption::SubnetMask(Ipv4Addr::new(255, 255, 252, 0));
    x.options[6] = DhcpOption::BroadcastAddr(Ipv4Addr::new(10, 50, 3, 255));
    x.options
        .push(DhcpOption::ClientIdentifier(PXE_CLIENT_ID.to_vec()));
    check(&out, &r, &x);
    // The very bytes, as the relay wrote them, right before End.
    let tail = [&o(82, &info)[..], &[255]].concat();
    let end = out.payload.iter().rposition(|&b| b == 255).unwrap();
    assert_eq!(&out.payload[end + 1 - tail.len()..=end], &tail[..]);

    // Without sub-option 19 the answer goes to port 67, whatever the
    // relay's source port.
    let info = agent_info(Some(LINK), &[]);
    let p = packet(relayed(), &[mt(DISCOVER), o(82, &info)]);
    let r = parsed(&p);
    assert!(!r.relay_port);
    let out = answer(&r, &ctx, &s, &JobKind::Offer, &ok_lease(&l)).unwrap();
    assert_eq!((out.dest, out.broadcast_ifindex), (to_relay(67), None));
    decode(&out, &r);

    // Sub-option 19 from a relay that uses port 67 anyway.
    let info = agent_info(None, &RELAY_PORT);
    let r = parsed(&packet(relayed(), &[mt(DISCOVER), o(82, &info)]));
    assert!(r.relay_port);
    let out = answer(
        &r,
        &relay_ctx(67),
        &s,
        &JobKind::Offer,
        &ok_lease(&bmc_lease()),
    );
    assert_eq!(out.unwrap().dest, to_relay(67));
    // Port 0 is no port to answer to.
    let out = answer(
        &r,
        &relay_ctx(0),
        &s,
        &JobKind::Offer,
        &ok_lease(&bmc_lease()),
    );
    assert_eq!(out.unwrap().dest, to_relay(67));
}

#[test]
fn option_82_is_echoed_verbatim() {
    // Sub-options out of order, duplicated, unknown to dhcproto, and a
    // relay port sub-option with data: a decode/encode round trip would
    // reorder or drop them.
    let info: Vec<u8> = [
        o(2, b"remote"),
        o(151, &[0, 1, 2]),
        o(1, b"circuit-b"),
        o(1, b"circuit-a"),
        o(0xab, &[]),
        o(19, &[0x0b, 0xb8]),
        o(5, &LINK.octets()),
    ]
    .concat();
    let r = parsed(&packet(relayed(), &[mt(DISCOVER), o(82, &info)]));
    assert_eq!(r.link_selection, Some(LINK));
    assert!(r.relay_port);
    let out = answer(
        &r,
        &relay_ctx(3000),
        &settings(),
        &JobKind::Offer,
        &ok_lease(&bmc_lease()),
    )
    .unwrap();
    decode(&out, &r);
    assert_eq!(out.dest, to_relay(3000));

    // Longer than one option: split by the relay, joined here, split the
    // same way on the way back.
    let long: Vec<u8> = (0..40).flat_map(|i| o(1 + i % 3, &[i; 8])).collect();
    assert_eq!(long.len(), 400);
    let p = packet(
        relayed(),
        &[mt(DISCOVER), o(82, &long[..255]), o(82, &long[255..])],
    );
    let r = parsed(&p);
    assert_eq!(r.relay_info.as_deref(), Some(&long[..]));
    let out = answer(
        &r,
        &relay_ctx(67),
        &settings(),
        &JobKind::Offer,
        &ok_lease(&bmc_lease()),
    )
    .unwrap();
    decode(&out, &r);
    let opts = raw_options(&out.payload);
    let n = opts.len();
    assert_eq!(opts[n - 2], (82, long[..255].to_vec()));
    assert_eq!(opts[n - 1], (82, long[255..].to_vec()));

    // Of two option 82s apart, the relay's is the last one.
    let p = packet(
        relayed(),
        &[
            mt(DISCOVER),
            o(82, &o(5, &SUBNET_SEL.octets())),
            o(12, b"x"),
            o(82, &agent_info(Some(LINK), &[])),
        ],
    );
    let r = parsed(&p);
    assert_eq!(r.link_selection, Some(LINK));
    assert_eq!(
        r.relay_info.as_deref(),
        Some(&agent_info(Some(LINK), &[])[..])
    );
}

#[test]
fn subnet_selection_precedence() {
    let ctx = relay_ctx(67);
    let origin_of = |f: Fields, opts: &[Vec<u8>]| {
        let r = parsed(&packet(f, &[&[mt(REQUEST)][..], opts].concat()));
        let o = origin(&r, &ctx);
        // The job carries the same origin.
        if let Step::Ask(_, c) = decide(&r, &ctx, &settings()) {
            assert_eq!(c.origin, o);
        }
        o
    };
    let ls = o(82, &agent_info(Some(LINK), &[]));
    let no_ls = o(82, &agent_info(None, &[]));
    let ss = o(118, &SUBNET_SEL.octets());
    let rq = o(50, &BMC_IP.octets());
    let ci = Fields {
        ciaddr: Ipv4Addr::new(10, 70, 0, 5),
        ..relayed()
    };
    assert_eq!(origin_of(ci, &[rq.clone(), ss.clone(), ls.clone()]), LINK);
    assert_eq!(
        origin_of(ci, &[rq.clone(), ss.clone(), no_ls.clone()]),
        SUBNET_SEL
    );
    assert_eq!(origin_of(ci, &[rq.clone(), no_ls.clone()]), RELAY);
    let direct_ci = Fields { giaddr: ZERO, ..ci };
    assert_eq!(origin_of(direct_ci, std::slice::from_ref(&rq)), BMC_IP);
    assert_eq!(origin_of(direct_ci, &[]), Ipv4Addr::new(10, 70, 0, 5));
    assert_eq!(origin_of(fields(), &[]), LOCAL);
    // 0.0.0.0 selects nothing.
    let zero_ls = o(82, &agent_info(Some(ZERO), &[]));
    let zero_ss = o(118, &[0; 4]);
    assert_eq!(origin_of(relayed(), &[zero_ls, zero_ss]), RELAY);
}

#[test]
fn subnet_selection_option_is_echoed() {
    let ss = o(118, &SUBNET_SEL.octets());
    let r = parsed(&packet(
        relayed(),
        &[mt(REQUEST), o(50, &BMC_IP.octets()), ss],
    ));
    assert_eq!(r.subnet_selection, Some(SUBNET_SEL));
    let ctx = relay_ctx(67);
    let s = authoritative();
    let l = lease_in(BMC_IP, "10.40.7.0/24");
    let out = answer(&r, &ctx, &s, &confirm(BMC_IP), &ok_lease(&l)).unwrap();
    let mut x = lease_expect(ReplyKind::Ack, LOCAL, &l, to_relay(67), ZERO);
    x.options.push(DhcpOption::SubnetSelection(SUBNET_SEL));
    check(&out, &r, &x);
    let nak = answer(&r, &ctx, &s, &confirm(BMC_IP), &no_lease(NoLease::NotYours)).unwrap();
    let m = decode(&nak, &r);
    assert_eq!(
        m.opts().get(OptionCode::SubnetSelection),
        Some(&DhcpOption::SubnetSelection(SUBNET_SEL))
    );
}

// ---- NAK or silence ----------------------------------------------------

fn nak_expect(dest: SocketAddrV4, flags: u16, why: &str, source: Ipv4Addr) -> Expect {
    Expect {
        kind: ReplyKind::Nak,
        dest,
        broadcast_ifindex: (*dest.ip() == BCAST).then_some(IFINDEX),
        source,
        addr: None,
        flags,
        ciaddr: ZERO,
        yiaddr: ZERO,
        siaddr: ZERO,
        file: Vec::new(),
        options: vec![
            DhcpOption::MessageType(MessageType::Nak),
            DhcpOption::ServerIdentifier(source),
            DhcpOption::Message(why.into()),
        ],
    }
}

#[test]
fn nak_contents() {
    let s = authoritative();
    // Relayed: to the relay, broadcast bit set so that the relay
    // broadcasts it, client id and option 82 echoed.
    let info = agent_info(Some(LINK), &[]);
    let p = packet(
        relayed(),
        &[
            mt(REQUEST),
            o(50, &BMC_IP.octets()),
            o(61, &PXE_CLIENT_ID),
            o(82, &info),
        ],
    );
    let r = parsed(&p);
    let ctx = relay_ctx(67);
    let (job, _) = asked(decide(&r, &ctx, &s));
    assert_eq!(job, confirm(BMC_IP));
    let mut boot_lease = bmc_lease();
    boot_lease.boot = Some(Boot {
        server: Some(PXE_SERVER_IP),
        server_name: None,
        file: "pxelinux.0".into(),
    });
    for (why, text) in [
        (NoLease::NotYours, NAK_NOT_YOURS),
        (NoLease::UnknownDevice, NAK_UNKNOWN),
        (NoLease::NoPrefix, NAK_NO_PREFIX),
        (NoLease::PoolExhausted, NAK_EXHAUSTED),
    ] {
        let out = answer(&r, &ctx, &s, &job, &no_lease(why)).unwrap();
        let mut x = nak_expect(to_relay(67), BROADCAST_FLAG, text, LOCAL);
        x.options
            .push(DhcpOption::ClientIdentifier(PXE_CLIENT_ID.to_vec()));
        check(&out, &r, &x);
    }

    // Direct and RENEWING: broadcast on the receiving interface, not to
    // ciaddr; the flags stay as they were.
    let c = bin_capture("pydhcp-request.renewing");
    let r = parsed(&c.payload);
    let ctx = direct(&c, PXE_SERVER_IP);
    let out = answer(
        &r,
        &ctx,
        &s,
        &confirm(CLIENT_IP),
        &no_lease(NoLease::NotYours),
    )
    .unwrap();
    check(
        &out,
        &r,
        &nak_expect(to_client_bcast(), 0, NAK_NOT_YOURS, PXE_SERVER_IP),
    );
    // A client's own broadcast bit is kept.
    let p = packet(
        Fields {
            flags: BROADCAST_FLAG,
            ..fields()
        },
        &[mt(REQUEST), o(50, &CLIENT_IP.octets())],
    );
    let r = parsed(&p);
    let out = answer(
        &r,
        &ctx,
        &s,
        &confirm(CLIENT_IP),
        &no_lease(NoLease::NotYours),
    )
    .unwrap();
    assert_eq!(u16::from(decode(&out, &r).flags()), BROADCAST_FLAG);
}

#[test]
fn nak_only_when_authoritative() {
    let r = parsed(&packet(relayed(), &[mt(REQUEST), o(50, &BMC_IP.octets())]));
    let ctx = relay_ctx(67);
    for why in [
        NoLease::NotYours,
        NoLease::UnknownDevice,
        NoLease::NoPrefix,
        NoLease::PoolExhausted,
    ] {
        let o = no_lease(why.clone());
        let nak = answer(&r, &ctx, &authoritative(), &confirm(BMC_IP), &o);
        assert_eq!(nak.map(|n| n.kind), Some(ReplyKind::Nak), "{why:?}");
        assert_eq!(answer(&r, &ctx, &settings(), &confirm(BMC_IP), &o), None);
        // No lease for a DISCOVER or an INFORM is silence, always.
        for job in [JobKind::Offer, JobKind::Inform { addr: BMC_IP }] {
            assert_eq!(answer(&r, &ctx, &authoritative(), &job, &o), None);
        }
    }
    // RELEASE and DECLINE are never answered.
    for job in [
        JobKind::Release { addr: BMC_IP },
        JobKind::Decline { addr: BMC_IP },
    ] {
        for o in [
            Ok(Outcome::Done),
            ok_lease(&bmc_lease()),
            no_lease(NoLease::NotYours),
        ] {
            assert_eq!(answer(&r, &ctx, &authoritative(), &job, &o), None);
        }
    }
    // Done is no lease to offer.
    for job in [JobKind::Offer, confirm(BMC_IP)] {
        assert_eq!(
            answer(&r, &ctx, &authoritative(), &job, &Ok(Outcome::Done)),
            None
        );
    }
}

#[test]
fn backend_errors_are_never_a_nak() {
    let r = parsed(&packet(relayed(), &[mt(REQUEST), o(50, &BMC_IP.octets())]));
    let errors = [
        BackendError::Timeout,
        BackendError::Connect("refused".into()),
        BackendError::Http {
            status: 503,
            body: "busy".into(),
        },
        BackendError::Auth(403),
        BackendError::BadAnswer("?".into()),
    ];
    let jobs = [
        JobKind::Offer,
        confirm(BMC_IP),
        JobKind::Release { addr: BMC_IP },
        JobKind::Decline { addr: BMC_IP },
        JobKind::Inform { addr: BMC_IP },
    ];
    for e in errors {
        for job in &jobs {
            let out = answer(&r, &relay_ctx(67), &authoritative(), job, &Err(e.clone()));
            assert_eq!(out, None, "{e:?} {job:?}");
        }
    }
}

#[test]
fn request_that_fits_no_state() {
    let p = packet(relayed(), &[mt(REQUEST), o(61, &PXE_CLIENT_ID)]);
    let r = parsed(&p);
    let ctx = relay_ctx(67);
    assert_eq!(
        decide(&r, &ctx, &settings()),
        Step::Ignore(Refusal::NoClientState)
    );
    let Step::Reply(out) = decide(&r, &ctx, &authoritative()) else {
        panic!("expected a NAK");
    };
    let mut x = nak_expect(to_relay(67), BROADCAST_FLAG, NAK_NO_ADDRESS, LOCAL);
    x.options
        .push(DhcpOption::ClientIdentifier(PXE_CLIENT_ID.to_vec()));
    check(&out, &r, &x);
    // A server identifier of another server still means silence.
    let p = packet(relayed(), &[mt(REQUEST), o(54, &SERVER_IP.octets())]);
    assert_eq!(
        decide(&parsed(&p), &ctx, &authoritative()),
        Step::Ignore(Refusal::OtherServer)
    );
    // Ours: a NAK.
    let p = packet(relayed(), &[mt(REQUEST), o(54, &LOCAL.octets())]);
    assert!(matches!(
        decide(&parsed(&p), &ctx, &authoritative()),
        Step::Reply(Out {
            kind: ReplyKind::Nak,
            ..
        })
    ));
}

#[test]
fn request_decisions() {
    let ctx = relay_ctx(67);
    let s = settings();
    let job = |f: Fields, opts: &[Vec<u8>]| decide(&parsed(&packet(f, opts)), &ctx, &s);
    let rq = o(50, &BMC_IP.octets());
    let ci = Fields {
        ciaddr: BMC_IP,
        ..relayed()
    };
    // SELECTING with our server id, INIT-REBOOT, RENEWING/REBINDING.
    let ours = o(54, &LOCAL.octets());
    for step in [
        job(relayed(), &[mt(REQUEST), ours.clone(), rq.clone()]),
        job(relayed(), &[mt(REQUEST), rq.clone()]),
        job(ci, &[mt(REQUEST)]),
        // Non-conforming but seen: both, or our server id in a renewal.
        job(ci, &[mt(REQUEST), rq.clone()]),
        job(ci, &[mt(REQUEST), ours.clone()]),
    ] {
        assert_eq!(asked(step).0, confirm(BMC_IP));
    }
    // Option 50 wins over ciaddr.
    let other = Fields {
        ciaddr: Ipv4Addr::new(10, 40, 7, 99),
        ..relayed()
    };
    assert_eq!(
        asked(job(other, &[mt(REQUEST), rq.clone()])).0,
        confirm(BMC_IP)
    );
    // A requested address of 0.0.0.0 is none.
    assert_eq!(
        asked(job(ci, &[mt(REQUEST), o(50, &[0; 4])])).0,
        confirm(BMC_IP)
    );
    // Another server's id: silence, even in a renewal.
    let theirs = o(54, &SERVER_IP.octets());
    assert_eq!(
        job(ci, &[mt(REQUEST), theirs.clone()]),
        Step::Ignore(Refusal::OtherServer)
    );
    assert_eq!(
        job(relayed(), &[mt(REQUEST), theirs, rq]),
        Step::Ignore(Refusal::OtherServer)
    );
    // A DISCOVER is always a job.
    assert_eq!(asked(job(relayed(), &[mt(DISCOVER)])).0, JobKind::Offer);
}

#[test]
fn release_decline_inform_decisions() {
    let ctx = relay_ctx(67);
    let s = authoritative();
    let job = |f: Fields, opts: &[Vec<u8>]| decide(&parsed(&packet(f, opts)), &ctx, &s);
    let ci = Fields {
        ciaddr: BMC_IP,
        ..fields()
    };
    let ours = o(54, &LOCAL.octets());
    let theirs = o(54, &SERVER_IP.octets());
    assert_eq!(
        asked(job(ci, &[mt(RELEASE), ours.clone()])).0,
        JobKind::Release { addr: BMC_IP }
    );
    assert_eq!(
        job(fields(), &[mt(RELEASE)]),
        Step::Ignore(Refusal::Malformed)
    );
    assert_eq!(
        job(ci, &[mt(RELEASE), theirs.clone()]),
        Step::Ignore(Refusal::OtherServer)
    );
    let rq = o(50, &BMC_IP.octets());
    assert_eq!(
        asked(job(relayed(), &[mt(DECLINE), ours, rq.clone()])).0,
        JobKind::Decline { addr: BMC_IP }
    );
    assert_eq!(
        job(relayed(), &[mt(DECLINE)]),
        Step::Ignore(Refusal::Malformed)
    );
    assert_eq!(
        job(relayed(), &[mt(DECLINE), theirs, rq]),
        Step::Ignore(Refusal::OtherServer)
    );
    assert_eq!(
        asked(job(ci, &[mt(INFORM)])).0,
        JobKind::Inform { addr: BMC_IP }
    );
    // No ciaddr: the source address of a direct client, nothing for a
    // relayed one.
    let from_client = RecvCtx {
        src: SocketAddrV4::new(BMC_IP, 68),
        ..ctx
    };
    let p = packet(fields(), &[mt(INFORM)]);
    assert_eq!(
        asked(decide(&parsed(&p), &from_client, &s)).0,
        JobKind::Inform { addr: BMC_IP }
    );
    let p = packet(relayed(), &[mt(INFORM)]);
    assert_eq!(
        decide(&parsed(&p), &ctx, &s),
        Step::Ignore(Refusal::Malformed)
    );
}

#[test]
fn inform_gets_configuration_without_lease() {
    let s = settings();
    let l = bmc_lease();
    for (f, ctx, dest) in [
        (
            Fields {
                ciaddr: BMC_IP,
                ..fields()
            },
            relay_ctx(68),
            SocketAddrV4::new(BMC_IP, CLIENT_PORT),
        ),
        (
            Fields {
                ciaddr: BMC_IP,
                ..relayed()
            },
            relay_ctx(67),
            to_relay(67),
        ),
    ] {
        let r = parsed(&packet(f, &[mt(INFORM), o(61, &[0, 1, 2])]));
        let (job, _) = asked(decide(&r, &ctx, &s));
        let out = answer(&r, &ctx, &s, &job, &ok_lease(&l)).unwrap();
        let mut options = lease_options(MessageType::Ack, LOCAL, &l);
        options.drain(2..5);
        options.push(DhcpOption::ClientIdentifier(vec![0, 1, 2]));
        let x = Expect {
            kind: ReplyKind::Ack,
            dest,
            broadcast_ifindex: None,
            source: LOCAL,
            addr: Some(BMC_IP),
            flags: 0,
            ciaddr: BMC_IP,
            yiaddr: ZERO,
            siaddr: ZERO,
            file: Vec::new(),
            options,
        };
        check(&out, &r, &x);
    }
}

// ---- reply contents ----------------------------------------------------

fn offer_for(l: &Lease, s: &Settings) -> (Request<'static>, Out) {
    let r = parsed(&packet(relayed(), &[mt(DISCOVER)]));
    let out = answer(&r, &relay_ctx(67), s, &JobKind::Offer, &ok_lease(l)).unwrap();
    decode(&out, &r);
    (r, out)
}

fn opt_of(out: &Out, code: OptionCode) -> Option<DhcpOption> {
    v4::Message::decode(&mut Decoder::new(&out.payload))
        .unwrap()
        .opts()
        .get(code)
        .cloned()
}

#[test]
fn subnet_mask_comes_from_the_prefix() {
    for (addr, net, mask, bcast) in [
        (
            [10, 40, 7, 23],
            "10.40.7.0/24",
            [255, 255, 255, 0],
            Some([10, 40, 7, 255]),
        ),
        (
            [10, 40, 5, 9],
            "10.40.4.0/22",
            [255, 255, 252, 0],
            Some([10, 40, 7, 255]),
        ),
        (
            [10, 40, 7, 130],
            "10.40.7.128/25",
            [255, 255, 255, 128],
            Some([10, 40, 7, 255]),
        ),
        (
            [10, 40, 7, 5],
            "10.40.7.4/30",
            [255, 255, 255, 252],
            Some([10, 40, 7, 7]),
        ),
        ([10, 40, 7, 5], "10.40.7.4/31", [255, 255, 255, 254], None),
        ([10, 40, 7, 5], "10.40.7.5/32", [255, 255, 255, 255], None),
        (
            [10, 9, 8, 7],
            "10.0.0.0/8",
            [255, 0, 0, 0],
            Some([10, 255, 255, 255]),
        ),
    ] {
        let l = lease_in(addr.into(), net);
        let (_, out) = offer_for(&l, &settings());
        assert_eq!(
            opt_of(&out, OptionCode::SubnetMask),
            Some(DhcpOption::SubnetMask(mask.into())),
            "{net}"
        );
        assert_eq!(
            opt_of(&out, OptionCode::BroadcastAddr),
            bcast.map(|b| DhcpOption::BroadcastAddr(b.into())),
            "{net}"
        );
    }
}

#[test]
fn dns_domain_and_router() {
    // The lease's DNS servers win over the configured ones.
    let mut l = bmc_lease();
    l.dns = vec![Ipv4Addr::new(10, 0, 0, 53)];
    let (_, out) = offer_for(&l, &settings());
    assert_eq!(
        opt_of(&out, OptionCode::DomainNameServer),
        Some(DhcpOption::DomainNameServer(vec![Ipv4Addr::new(
            10, 0, 0, 53
        )]))
    );
    // None anywhere, no domain, no gateway: the options are left out.
    let s = Settings {
        nameservers: Vec::new(),
        domain: None,
        ..settings()
    };
    let mut x = lease_expect(ReplyKind::Offer, LOCAL, &bmc_lease(), to_relay(67), ZERO);
    let mut l = bmc_lease();
    l.gateway = None;
    let (r, out) = offer_for(&l, &s);
    x.options.retain(|o| {
        !matches!(
            o,
            DhcpOption::Router(_) | DhcpOption::DomainNameServer(_) | DhcpOption::DomainName(_)
        )
    });
    check(&out, &r, &x);
    let s = Settings {
        domain: Some(String::new()),
        ..settings()
    };
    let (_, out) = offer_for(&bmc_lease(), &s);
    assert_eq!(opt_of(&out, OptionCode::DomainName), None);
}

#[test]
fn lease_times() {
    assert_eq!(renewal_times(3600), (1800, 3150));
    assert_eq!(renewal_times(0), (0, 0));
    assert_eq!(renewal_times(1), (0, 0));
    assert_eq!(renewal_times(u32::MAX - 1), (2_147_483_647, 3_758_096_382));
    assert_eq!(renewal_times(u32::MAX), (u32::MAX, u32::MAX));
    let mut l = bmc_lease();
    l.lease_secs = 86_400;
    let (_, out) = offer_for(&l, &settings());
    assert_eq!(
        opt_of(&out, OptionCode::AddressLeaseTime),
        Some(DhcpOption::AddressLeaseTime(86_400))
    );
    assert_eq!(
        opt_of(&out, OptionCode::Renewal),
        Some(DhcpOption::Renewal(43_200))
    );
    assert_eq!(
        opt_of(&out, OptionCode::Rebinding),
        Some(DhcpOption::Rebinding(75_600))
    );
}

#[test]
fn boot_answers() {
    // A name for option 66 when there is one; the file in the BOOTP
    // field and in option 67.
    let mut l = bmc_lease();
    l.boot = Some(Boot {
        server: Some(PXE_SERVER_IP),
        server_name: Some("tftp.mgmt.example.net".into()),
        file: "uefi/shimx64.efi".into(),
    });
    let (r, out) = offer_for(&l, &settings());
    let mut x = lease_expect(ReplyKind::Offer, LOCAL, &l, to_relay(67), ZERO);
    x.siaddr = PXE_SERVER_IP;
    x.file = b"uefi/shimx64.efi".to_vec();
    x.options.extend([
        DhcpOption::TFTPServerName(b"tftp.mgmt.example.net".to_vec()),
        DhcpOption::BootfileName(b"uefi/shimx64.efi".to_vec()),
    ]);
    check(&out, &r, &x);

    // No server: siaddr 0 and no option 66. A URL too long for the
    // file field goes in option 67 only.
    let url = format!("http://boot.example.net/{}/boot.ipxe", "x".repeat(150));
    l.boot = Some(Boot {
        server: None,
        server_name: None,
        file: url.clone(),
    });
    let (r, out) = offer_for(&l, &settings());
    let mut x = lease_expect(ReplyKind::Offer, LOCAL, &l, to_relay(67), ZERO);
    x.options
        .push(DhcpOption::BootfileName(url.clone().into_bytes()));
    check(&out, &r, &x);

    // A file of exactly 127 bytes still fits with its NUL; 128 does not.
    for (len, in_field) in [(127, true), (128, false)] {
        l.boot = Some(Boot {
            server: None,
            server_name: None,
            file: "f".repeat(len),
        });
        let (_, out) = offer_for(&l, &settings());
        assert_eq!(out.payload[108] == b'f', in_field, "{len}");
    }
}

#[test]
fn client_identifier_is_echoed() {
    let s = settings();
    // Split over two options (RFC 3396): joined, echoed whole.
    let id: Vec<u8> = (0..=254).collect();
    let p = packet(
        relayed(),
        &[mt(DISCOVER), o(61, &id[..100]), o(61, &id[100..])],
    );
    let r = parsed(&p);
    assert_eq!(r.client_id.as_deref(), Some(&id[..]));
    let out = answer(
        &r,
        &relay_ctx(67),
        &s,
        &JobKind::Offer,
        &ok_lease(&bmc_lease()),
    )
    .unwrap();
    assert_eq!(
        opt_of(&out, OptionCode::ClientIdentifier),
        Some(DhcpOption::ClientIdentifier(id.clone()))
    );
    decode(&out, &r);
    // Longer than one option holds: echoed whole all the same, split
    // again (RFC 6842 §3, RFC 3396).
    let long = [&id[..200], &id[..100]].concat();
    let p = packet(
        relayed(),
        &[mt(DISCOVER), o(61, &id[..200]), o(61, &id[..100])],
    );
    let r = parsed(&p);
    assert_eq!(r.client_id.as_deref(), Some(&long[..]));
    let out = answer(
        &r,
        &relay_ctx(67),
        &s,
        &JobKind::Offer,
        &ok_lease(&bmc_lease()),
    )
    .unwrap();
    assert_eq!(
        opt_of(&out, OptionCode::ClientIdentifier),
        Some(DhcpOption::ClientIdentifier(long))
    );
    decode(&out, &r);
    // Two apart: the first.
    let p = packet(
        relayed(),
        &[mt(DISCOVER), o(61, &[1, 2]), o(12, b"h"), o(61, &[3, 4])],
    );
    assert_eq!(parsed(&p).client_id.as_deref(), Some(&[1, 2][..]));
}

#[test]
fn server_identifier_and_source() {
    let r = parsed(&packet(relayed(), &[mt(DISCOVER)]));
    let ctx = relay_ctx(67);
    assert_eq!(server_id(&r, &ctx, &settings()), LOCAL);
    let ident = Settings {
        server_ident: Some(Ipv4Addr::new(203, 0, 113, 67)),
        ..settings()
    };
    assert_eq!(server_id(&r, &ctx, &ident), Ipv4Addr::new(203, 0, 113, 67));
    let out = answer(&r, &ctx, &ident, &JobKind::Offer, &ok_lease(&bmc_lease())).unwrap();
    assert_eq!(out.source, Ipv4Addr::new(203, 0, 113, 67));
    decode(&out, &r);
}

#[test]
fn destinations() {
    let ctx = relay_ctx(4000);
    let req =
        |f: Fields, extra: &[Vec<u8>]| parsed(&packet(f, &[&[mt(DISCOVER)][..], extra].concat()));
    let port19 = o(82, &agent_info(None, &RELAY_PORT));
    let ci = Fields {
        ciaddr: BMC_IP,
        ..fields()
    };
    let ci_relayed = Fields {
        ciaddr: BMC_IP,
        ..relayed()
    };
    let bc = (to_client_bcast(), Some(IFINDEX));
    for (r, kind, want) in [
        (req(relayed(), &[]), ReplyKind::Offer, (to_relay(67), None)),
        (req(relayed(), &[]), ReplyKind::Nak, (to_relay(67), None)),
        (
            req(relayed(), std::slice::from_ref(&port19)),
            ReplyKind::Ack,
            (to_relay(4000), None),
        ),
        (req(ci_relayed, &[]), ReplyKind::Ack, (to_relay(67), None)),
        (
            req(ci, &[]),
            ReplyKind::Ack,
            (SocketAddrV4::new(BMC_IP, 68), None),
        ),
        (req(ci, &[]), ReplyKind::Nak, bc),
        // Sub-option 19 means nothing without giaddr.
        (req(fields(), &[port19]), ReplyKind::Offer, bc),
        (req(fields(), &[]), ReplyKind::Offer, bc),
        (
            req(
                Fields {
                    flags: BROADCAST_FLAG,
                    ..fields()
                },
                &[],
            ),
            ReplyKind::Ack,
            bc,
        ),
    ] {
        assert_eq!(destination(&r, &ctx, kind), want, "{kind:?} {r:?}");
    }
}

#[test]
fn large_replies_fit_the_client() {
    let mut l = bmc_lease();
    l.dns = (1..=70).map(|i| Ipv4Addr::new(10, 0, 0, i)).collect();
    l.boot = Some(Boot {
        server: Some(PXE_SERVER_IP),
        server_name: Some("t".repeat(40)),
        file: "b".repeat(60),
    });
    let s = Settings {
        domain: Some("d".repeat(100)),
        ..settings()
    };
    let info = agent_info(Some(LINK), &[]);
    let codes = |out: &Out| -> Vec<u8> {
        let mut c: Vec<u8> = raw_options(&out.payload).iter().map(|o| o.0).collect();
        c.dedup();
        c
    };
    // (max message size option, codes expected)
    for (mms, want) in [
        // 576 - 28 = 548 bytes: DNS (280 bytes) and the domain go.
        (None, vec![53, 54, 51, 58, 59, 1, 3, 66, 67, 82]),
        // Below the minimum counts as the minimum.
        (Some(300u16), vec![53, 54, 51, 58, 59, 1, 3, 66, 67, 82]),
        // 732 bytes: the broadcast address and the domain go.
        (Some(760), vec![53, 54, 51, 58, 59, 1, 3, 6, 66, 67, 82]),
        (
            Some(1000),
            vec![53, 54, 51, 58, 59, 1, 28, 3, 6, 15, 66, 67, 82],
        ),
        (
            Some(1472),
            vec![53, 54, 51, 58, 59, 1, 28, 3, 6, 15, 66, 67, 82],
        ),
    ] {
        let mut opts = vec![mt(DISCOVER), o(82, &info)];
        if let Some(n) = mms {
            opts.insert(1, o(57, &n.to_be_bytes()));
        }
        let r = parsed(&packet(relayed(), &opts));
        let out = answer(&r, &relay_ctx(67), &s, &JobKind::Offer, &ok_lease(&l)).unwrap();
        decode(&out, &r);
        assert_eq!(codes(&out), want, "{mms:?}");
        assert!(out.payload.len() <= budget(&r), "{mms:?}");
    }
    // More than even the essentials fit: sent anyway, nothing but the
    // optional options left out.
    let mut big_info = Vec::new();
    for i in 0..100u8 {
        big_info.extend(o(1, &[i; 7]));
    }
    assert_eq!(big_info.len(), 900);
    let chunks: Vec<Vec<u8>> = big_info.chunks(255).map(|c| o(82, c)).collect();
    let r = parsed(&packet(relayed(), &[&[mt(DISCOVER)][..], &chunks].concat()));
    let out = answer(&r, &relay_ctx(67), &s, &JobKind::Offer, &ok_lease(&l)).unwrap();
    decode(&out, &r);
    assert_eq!(codes(&out), vec![53, 54, 51, 58, 59, 1, 3, 82]);
}

#[test]
fn lease_that_cannot_be_handed_out_is_silence() {
    let r = parsed(&packet(relayed(), &[mt(REQUEST), o(50, &BMC_IP.octets())]));
    let ctx = relay_ctx(67);
    let s = authoritative();
    // Another address than the one asked for.
    let other = lease_in(Ipv4Addr::new(10, 40, 7, 24), "10.40.7.0/24");
    assert_eq!(
        answer(&r, &ctx, &s, &confirm(BMC_IP), &ok_lease(&other)),
        None
    );
    // An address outside its network.
    let outside = lease_in(BMC_IP, "10.41.0.0/24");
    assert_eq!(
        answer(&r, &ctx, &s, &confirm(BMC_IP), &ok_lease(&outside)),
        None
    );
    assert_eq!(
        answer(&r, &ctx, &s, &JobKind::Offer, &ok_lease(&outside)),
        None
    );
    let zero = lease_in(ZERO, "0.0.0.0/0");
    assert_eq!(
        answer(&r, &ctx, &s, &JobKind::Offer, &ok_lease(&zero)),
        None
    );
}

// ---- boot clients ------------------------------------------------------

#[test]
fn boot_client_classification() {
    let pxe = b"PXEClient:Arch:00000:UNDI:002001".as_slice();
    let pxe_efi = b"PXEClient:Arch:00007:UNDI:003016".as_slice();
    let http = b"HTTPClient:Arch:00016:UNDI:003001".as_slice();
    let prl_boot = o(55, &[1, 3, 6, 66, 67]);
    let prl_67 = o(55, &[1, 3, 67]);
    let prl_plain = o(55, &[1, 3, 6, 15]);
    let arch = |a: u16| o(93, &a.to_be_bytes());
    // (options, expected)
    let cases: Vec<(Vec<Vec<u8>>, BootClient)> = vec![
        (vec![prl_plain.clone()], BootClient::None),
        (vec![prl_plain.clone(), arch(0)], BootClient::None),
        (vec![], BootClient::None),
        (vec![prl_boot.clone(), arch(0)], BootClient::Bios),
        (vec![prl_67.clone(), arch(0)], BootClient::Bios),
        (vec![prl_boot.clone(), arch(6)], BootClient::Uefi),
        (vec![prl_boot.clone(), arch(7)], BootClient::Uefi),
        (vec![prl_boot.clone(), arch(9)], BootClient::Uefi),
        (vec![prl_boot.clone(), arch(16)], BootClient::UefiHttp),
        (
            vec![prl_plain.clone(), o(60, http), arch(16)],
            BootClient::UefiHttp,
        ),
        (vec![o(60, http), arch(19)], BootClient::UefiHttp),
        (vec![o(60, pxe), arch(0)], BootClient::Bios),
        (vec![o(60, pxe_efi), arch(7)], BootClient::Uefi),
        (vec![o(60, pxe)], BootClient::Bios),
        (vec![prl_boot.clone()], BootClient::None),
        (vec![prl_boot.clone(), arch(11)], BootClient::None),
        (
            vec![prl_boot.clone(), arch(0), o(77, b"iPXE")],
            BootClient::Ipxe,
        ),
        (
            vec![prl_boot.clone(), arch(7), o(77, b"iPXE")],
            BootClient::Ipxe,
        ),
        (
            vec![prl_boot.clone(), arch(7), o(77, b"\x04iPXE")],
            BootClient::Ipxe,
        ),
        (
            vec![prl_boot.clone(), arch(7), o(77, b"\x03foo\x04iPXE")],
            BootClient::Ipxe,
        ),
        (
            vec![prl_boot.clone(), arch(0), o(77, b"gPXE")],
            BootClient::Bios,
        ),
        (
            vec![prl_boot.clone(), arch(0), o(77, b"\x09iPXE")],
            BootClient::Bios,
        ),
        (vec![prl_plain.clone(), o(77, b"iPXE")], BootClient::None),
        // A list of architectures: the first one counts.
        (
            vec![prl_boot.clone(), o(93, &[0, 7, 0, 0])],
            BootClient::Uefi,
        ),
        // A broken option 93 is no architecture.
        (vec![prl_boot.clone(), o(93, &[7])], BootClient::None),
        (vec![o(60, pxe), o(93, &[7])], BootClient::Bios),
    ];
    for (opts, want) in cases {
        let p = packet(relayed(), &[&[mt(DISCOVER)][..], &opts].concat());
        assert_eq!(boot_client(&parsed(&p)), want, "{opts:?}");
    }

    // The captured iPXE client, and what it would be without user class 77.
    let c = pcap_capture("pydhcp-discover.selecting.pxe.pcap");
    let mut r = parsed(&c.payload);
    assert_eq!(boot_client(&r), BootClient::Ipxe);
    r.user_class = None;
    assert_eq!(boot_client(&r), BootClient::Bios);
    r.arch = Some(7);
    assert_eq!(boot_client(&r), BootClient::Uefi);
    r.vendor_class = Some(Cow::from(http));
    assert_eq!(boot_client(&r), BootClient::UefiHttp);
}

// ---- parsing -----------------------------------------------------------

#[test]
fn refused_requests() {
    let ok = packet(relayed(), &[mt(DISCOVER)]);
    assert!(parse(&ok).is_ok());
    let edit = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut p = ok.clone();
        f(&mut p);
        parse(&p).map(Request::into_owned)
    };
    let malformed = Err(Refusal::Malformed);
    assert_eq!(parse(&[]), malformed);
    assert_eq!(edit(&|p| p.truncate(239)), malformed);
    assert_eq!(edit(&|p| p[236] = 0), malformed);
    assert_eq!(edit(&|p| p[1] = 6), Err(Refusal::NotEthernet));
    assert_eq!(edit(&|p| p[1] = 32), Err(Refusal::NotEthernet));
    assert_eq!(edit(&|p| p[2] = 16), Err(Refusal::NotEthernet));
    assert_eq!(edit(&|p| p[2] = 0), Err(Refusal::NotEthernet));
    // Longer than the chaddr field: no BOOTP message (RFC 2131 §2).
    assert_eq!(edit(&|p| p[2] = 17), malformed);

    let not = Err(Refusal::NotARequest);
    let reply = Fields {
        op: Opcode::BootReply,
        ..relayed()
    };
    assert_eq!(parse(&packet(reply, &[mt(DISCOVER)])), not);
    for t in [2, 5, 6, 10, 13, 42] {
        assert_eq!(parse(&packet(relayed(), &[mt(t)])), not, "type {t}");
    }
    // Plain BOOTP: no message type.
    assert_eq!(parse(&packet(relayed(), &[o(12, b"x")])), not);
    assert_eq!(parse(&packet(relayed(), &[])), not);

    let with = |opts: &[Vec<u8>]| parse(&packet(relayed(), opts)).map(Request::into_owned);
    assert_eq!(with(&[o(53, &[])]), malformed);
    assert_eq!(with(&[mt(REQUEST), o(54, &[1, 2, 3])]), malformed);
    assert_eq!(with(&[mt(REQUEST), o(50, &[1, 2, 3, 4, 5])]), malformed);
    assert_eq!(with(&[mt(REQUEST), o(118, &[10, 0, 0])]), malformed);
    // Option 82 whose sub-options do not parse.
    assert_eq!(with(&[mt(DISCOVER), o(82, &[5, 3, 10, 0, 0])]), malformed);
    assert_eq!(with(&[mt(DISCOVER), o(82, &[1, 9, 1, 2])]), malformed);
    let long: Vec<Vec<u8>> = (0..5)
        .map(|_| o(82, &[[1, 253].as_slice(), &[7; 253]].concat()))
        .collect();
    assert_eq!(with(&[&[mt(DISCOVER)][..], &long].concat()), malformed);
    assert!(with(&[&[mt(DISCOVER)][..], &long[..4]].concat()).is_ok());

    // Lenient about what does not choose the address.
    let r = with(&[mt(DISCOVER), o(57, &[2]), o(93, &[0]), o(12, &[0xff, 0])]).unwrap();
    assert_eq!((r.max_size, r.arch, &r.hostname), (None, None, &None));
    // No End, padding, the first of two type options, adjacent ones joined.
    let mut p = packet(relayed(), &[mt(DISCOVER)]);
    p.pop();
    assert_eq!(parsed(&p).msg, MsgType::Discover);
    let p = packet(relayed(), &[vec![0, 0], mt(DISCOVER), vec![0]]);
    assert_eq!(parsed(&p).msg, MsgType::Discover);
    let p = packet(relayed(), &[mt(DISCOVER), o(12, b"x"), mt(REQUEST)]);
    assert_eq!(parsed(&p).msg, MsgType::Discover);
    let p = packet(relayed(), &[mt(DISCOVER), mt(REQUEST)]);
    assert_eq!(parsed(&p).msg, MsgType::Discover, "53s joined to [1, 3]");
    // Options after End are not read.
    let mut p = packet(relayed(), &[mt(DISCOVER)]);
    p.extend(o(50, &BMC_IP.octets()));
    assert_eq!(parsed(&p).requested, None);
}

#[test]
fn request_fields() {
    let f = Fields {
        xid: 0xdead_beef,
        flags: BROADCAST_FLAG,
        ciaddr: Ipv4Addr::new(10, 40, 7, 99),
        ..relayed()
    };
    let mut p = packet(
        f,
        &[
            mt(INFORM),
            o(50, &BMC_IP.octets()),
            o(54, &LOCAL.octets()),
            o(57, &1500u16.to_be_bytes()),
            o(60, &[b'v'; 300][..255]),
            o(60, &[b'w'; 45]),
            o(77, b"iPXE"),
            o(93, &[0, 16]),
            o(118, &SUBNET_SEL.octets()),
            o(55, &[1, 3]),
            o(12, b"bmc"),
            o(55, &[66]),
        ],
    );
    p[3] = 2; // hops
    p[8..10].copy_from_slice(&7u16.to_be_bytes()); // secs
    let r = parsed(&p);
    assert_eq!(r.msg, MsgType::Inform);
    assert_eq!(r.msg.name(), "DHCPINFORM");
    assert_eq!(
        (r.xid, r.flags, r.secs, r.hops),
        (0xdead_beef, BROADCAST_FLAG.into(), 7, 2)
    );
    assert_eq!((r.ciaddr, r.giaddr, r.chaddr), (f.ciaddr, RELAY, CLIENT));
    assert_eq!((r.requested, r.server_id), (Some(BMC_IP), Some(LOCAL)));
    assert_eq!((r.max_size, r.arch), (Some(1500), Some(16)));
    assert_eq!(r.vendor_class.as_deref().map(<[u8]>::len), Some(MAX_CLASS));
    assert_eq!(r.user_class.as_deref(), Some(&b"iPXE"[..]));
    assert_eq!(r.subnet_selection, Some(SUBNET_SEL));
    // A second PRL adds to the first; the first host name counts.
    assert_eq!(r.prl.iter().collect::<Vec<_>>(), [1, 3, 66]);
    assert_eq!(format!("{:?}", r.prl), "{1, 3, 66}");
    assert!(!r.prl.is_empty() && CodeSet::default().is_empty());
    assert_eq!(r.hostname.as_deref(), Some("bmc"));
}

#[test]
fn names() {
    let names: Vec<&str> = Refusal::ALL.iter().map(|r| r.name()).collect();
    let mut unique = names.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), names.len());
    assert!(names.contains(&"not_ethernet") && names.contains(&"no_client_state"));
    assert_eq!(ReplyKind::Nak.name(), "DHCPNAK");
    assert_eq!(ReplyKind::Offer.name(), "DHCPOFFER");
    assert_eq!(MsgType::Decline.name(), "DHCPDECLINE");
}

// ---- robustness --------------------------------------------------------

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

/// Runs everything that follows a parsed request and checks whatever
/// comes out.
fn exercise(p: &[u8]) -> Option<Request<'_>> {
    let r = parse(p).ok()?;
    let ctx = relay_ctx(3000);
    let mut boot = bmc_lease();
    boot.boot = Some(Boot {
        server: Some(PXE_SERVER_IP),
        server_name: None,
        file: "pxelinux.0".into(),
    });
    for s in [settings(), authoritative()] {
        let _ = client_state(&r, None);
        let _ = boot_client(&r);
        match decide(&r, &ctx, &s) {
            Step::Reply(out) => {
                decode(&out, &r);
            }
            Step::Ask(job, client) => {
                assert_eq!(client.mac, r.chaddr);
                for o in [
                    ok_lease(&boot),
                    no_lease(NoLease::NotYours),
                    Err(BackendError::Timeout),
                ] {
                    if let Some(out) = answer(&r, &ctx, &s, &job, &o) {
                        decode(&out, &r);
                    }
                }
            }
            Step::Ignore(_) => {}
        }
    }
    Some(r)
}

fn bases() -> Vec<Vec<u8>> {
    let mut b: Vec<Vec<u8>> = all_captures().into_iter().map(|c| c.payload).collect();
    b.push(packet(
        relayed(),
        &[
            mt(REQUEST),
            o(50, &BMC_IP.octets()),
            o(61, &PXE_CLIENT_ID),
            o(118, &SUBNET_SEL.octets()),
            o(82, &agent_info(Some(LINK), &RELAY_PORT)),
        ],
    ));
    b
}

#[test]
fn every_prefix_is_handled_without_panic() {
    for base in bases() {
        assert!(exercise(&base).is_some());
        for n in 0..base.len() {
            let r = exercise(&base[..n]);
            if n < 240 {
                assert_eq!(parse(&base[..n]), Err(Refusal::Malformed), "prefix {n}");
                assert!(r.is_none());
            }
        }
    }
}

#[test]
fn mutations_never_panic() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut answered = 0;
    for base in bases() {
        for _ in 0..2500 {
            let mut d = base.clone();
            match rng.below(4) {
                0 => {
                    for _ in 0..=rng.below(8) {
                        let i = rng.below(d.len());
                        d[i] = rng.next() as u8;
                    }
                }
                1 => {
                    // Random bytes after the cookie.
                    let n = rng.below(120);
                    d.truncate(240);
                    d.extend((0..n).map(|_| rng.next() as u8));
                }
                2 => {
                    // Plausible but broken options: real codes, odd lengths.
                    d.truncate(240);
                    d.extend(mt([1, 3, 4, 7, 8][rng.below(5)]));
                    for _ in 0..rng.below(12) {
                        let codes = [53u8, 54, 50, 61, 12, 55, 57, 60, 77, 82, 93, 118, 0, 255];
                        d.push(codes[rng.below(codes.len())]);
                        d.push(rng.below(12) as u8);
                        d.extend((0..rng.below(12)).map(|_| rng.next() as u8));
                    }
                }
                _ => {
                    // Broken option 82 sub-options behind a valid request.
                    d.truncate(240);
                    d.extend(mt([1, 3][rng.below(2)]));
                    d.extend(o(50, &BMC_IP.octets()));
                    let mut info = Vec::new();
                    for _ in 0..rng.below(6) {
                        info.push([1u8, 2, 5, 19, 4, 10, 11, 151][rng.below(8)]);
                        info.push(rng.below(7) as u8);
                        info.extend((0..rng.below(7)).map(|_| rng.next() as u8));
                    }
                    d.extend(o(82, &info));
                    d.push(255);
                }
            }
            if exercise(&d).is_some() {
                answered += 1;
            }
        }
    }
    assert!(answered > 1000, "only {answered} mutated requests parsed");
}

#[test]
fn replies_are_deterministic_and_allocated_once() {
    let c = pcap_capture("pydhcp-request.selecting.pxe.pcap");
    let r = parsed(&c.payload);
    let ctx = direct(&c, PXE_SERVER_IP);
    let s = settings();
    let a = answer(&r, &ctx, &s, &confirm(CLIENT_IP), &ok_lease(&lease())).unwrap();
    let b = answer(&r, &ctx, &s, &confirm(CLIENT_IP), &ok_lease(&lease())).unwrap();
    assert_eq!(a, b);
    assert_eq!(a.payload.capacity(), MIN_DATAGRAM - IP_UDP_HEADERS);
    assert_eq!(parse(&c.payload), parse(&c.payload));
}
