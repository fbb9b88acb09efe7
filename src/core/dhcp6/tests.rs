use super::*;
use crate::core::binding;
use crate::core::frame6::tests::check_frame;
use crate::core::frame6::{udp6_frame, ETHERNET_HEADER_LEN};
use dhcproto::Name;

const GUEST: MacAddr = MacAddr([0xaa, 0x6b, 0x39, 0x22, 0x33, 0x44]);
const SERVER: MacAddr = MacAddr([0x02, 0x00, 0x5e, 0x10, 0x20, 0x30]);
const OTHER: MacAddr = MacAddr([0xaa, 0x6b, 0x39, 0x99, 0x99, 0x99]);
const XID: [u8; 3] = [0x5a, 0x0b, 0x17];
const IAID: u32 = 0x2233_4455;
/// DUID-LLT as dhclient builds it: type 1, hw type 1, time, MAC.
const CLIENT_DUID: [u8; 14] = [
    0, 1, 0, 1, 0x2c, 0x3d, 0x4e, 0x5f, 0xaa, 0x6b, 0x39, 0x22, 0x33, 0x44,
];
const SERVER_DUID: [u8; 10] = [0, 3, 0, 1, 0x02, 0x00, 0x5e, 0x10, 0x20, 0x30];

fn ip(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

fn guest_ll() -> Ipv6Addr {
    ip("fe80::a86b:39ff:fe22:3344")
}

fn sample_binding() -> Binding {
    binding::parse(
        "tap10",
        b"MAC=aa:6b:39:22:33:44\nHOSTNAME=testing-vm\n\
              GATEWAY6=2001:db8:aaaa:bbbb::1\nSUBNET6=2001:db8:aaaa:bbbb::/64\n\
              EUI64=2001:db8:aaaa:bbbb:a86b:39ff:fe22:3344\n\
              IP6=2001:db8:aaaa:bbbb::100\n",
    )
    .unwrap()
}

fn params(stateful: bool) -> Params {
    Params {
        stateful,
        nameservers: vec![ip("2001:db8:100::1"), ip("2001:db8:200::2")],
        domains: vec!["example.com".into(), "sub.example.com".into()],
        t1: 1800,
        t2: 2880,
        preferred_lifetime: 3600,
        valid_lifetime: 7200,
    }
}

fn opt(code: u16, data: &[u8]) -> Vec<u8> {
    let mut v = code.to_be_bytes().to_vec();
    v.extend_from_slice(&(data.len() as u16).to_be_bytes());
    v.extend_from_slice(data);
    v
}

fn ia_na(iaid: u32, addrs: &[Ipv6Addr]) -> Vec<u8> {
    let mut data = iaid.to_be_bytes().to_vec();
    data.extend_from_slice(&[0; 8]); // T1, T2: no preference
    for a in addrs {
        let mut ad = a.octets().to_vec();
        ad.extend_from_slice(&[0; 8]);
        data.extend(opt(5, &ad));
    }
    opt(3, &data)
}

/// A client message (type, xid, options) in a UDP/IPv6 packet from the
/// guest's link-local address to ff02::1:2, as NFQUEUE delivers it.
fn packet(msg_type: u8, options: &[Vec<u8>]) -> Vec<u8> {
    let mut m = vec![msg_type];
    m.extend_from_slice(&XID);
    for o in options {
        m.extend_from_slice(o);
    }
    udp_packet(546, 547, &m)
}

fn udp_packet(src_port: u16, dst_port: u16, payload: &[u8]) -> Vec<u8> {
    let a = Ipv6Addressing {
        src_mac: GUEST,
        dst_mac: MacAddr([0x33, 0x33, 0, 1, 0, 2]),
        src: guest_ll(),
        dst: ip("ff02::1:2"),
        hop_limit: 1,
    };
    let mut f = udp6_frame(&a, src_port, dst_port, payload).unwrap();
    f.split_off(ETHERNET_HEADER_LEN)
}

fn client_id() -> Vec<u8> {
    opt(1, &CLIENT_DUID)
}

fn server_id() -> Vec<u8> {
    opt(2, &SERVER_DUID)
}

fn elapsed() -> Vec<u8> {
    opt(8, &[0, 0])
}

/// ORO for DNS servers, domain list, FQDN and SNTP, as dhclient asks.
fn oro() -> Vec<u8> {
    opt(6, &[0, 23, 0, 24, 0, 39, 0, 31])
}

/// What `dhclient -6 -S` sends.
fn information_request() -> Vec<u8> {
    packet(11, &[client_id(), elapsed(), oro()])
}

fn solicit(rapid: bool) -> Vec<u8> {
    let mut o = vec![client_id(), elapsed(), oro(), ia_na(IAID, &[])];
    if rapid {
        o.push(opt(14, &[]));
    }
    packet(1, &o)
}

fn request(kind: u8) -> Vec<u8> {
    packet(
        kind,
        &[
            client_id(),
            server_id(),
            elapsed(),
            oro(),
            ia_na(IAID, &[ip("2001:db8:aaaa:bbbb::100")]),
        ],
    )
}

fn rebind() -> Vec<u8> {
    packet(
        6,
        &[
            client_id(),
            elapsed(),
            oro(),
            ia_na(IAID, &[ip("2001:db8:aaaa:bbbb::100")]),
        ],
    )
}

fn confirm(addrs: &[Ipv6Addr]) -> Vec<u8> {
    packet(4, &[client_id(), elapsed(), ia_na(IAID, addrs)])
}

fn answer_default(pkt: &[u8], stateful: bool) -> Outcome {
    answer(
        pkt,
        Some(GUEST),
        &sample_binding(),
        SERVER,
        &params(stateful),
    )
}

fn reply_of(o: Outcome) -> Reply {
    match o {
        Outcome::Reply(r) => r,
        o => panic!("not a plain reply: {o:?}"),
    }
}

fn refusal(o: Outcome) -> Option<Refusal> {
    match o {
        Outcome::Refused(r) => Some(r),
        _ => None,
    }
}

/// Checks the frame's headers and checksum by hand and decodes the
/// DHCPv6 message with dhcproto.
fn decode_reply(r: &Reply, dst_mac: MacAddr) -> (Message, Vec<u8>) {
    let a = Ipv6Addressing {
        src_mac: SERVER,
        dst_mac,
        src: ip("fe80::5eff:fe10:2030"),
        dst: guest_ll(),
        hop_limit: 64,
    };
    let udp = check_frame(&r.frame, &a, 17);
    assert_eq!(&udp[0..2], &547u16.to_be_bytes());
    assert_eq!(&udp[2..4], &546u16.to_be_bytes());
    assert_eq!(u16::from_be_bytes([udp[4], udp[5]]) as usize, udp.len());
    let payload = udp[8..].to_vec();
    let msg = Message::decode(&mut Decoder::new(&payload)).unwrap();
    assert_eq!(msg.xid(), XID, "transaction id echoed");
    // Encoding what was decoded gives the same bytes but for option
    // order and option 24, which dhcproto would compress.
    (msg, payload)
}

fn get(m: &Message, code: OptionCode) -> Option<&DhcpOption> {
    m.opts().get(code)
}

fn status_of(opts: &DhcpOptions) -> Option<(Status, String)> {
    match opts.get(OptionCode::StatusCode) {
        Some(DhcpOption::StatusCode(s)) => Some((s.status, s.msg.clone())),
        _ => None,
    }
}

fn ianas(m: &Message) -> Vec<IANA> {
    m.opts()
        .iter()
        .filter_map(|o| match o {
            DhcpOption::IANA(ia) => Some(ia.clone()),
            _ => None,
        })
        .collect()
}

/// The raw bytes of the first option `code` in an encoded message.
fn raw_option(payload: &[u8], code: u16) -> Option<Vec<u8>> {
    let mut b = &payload[4..];
    while b.len() >= 4 {
        let c = u16::from_be_bytes([b[0], b[1]]);
        let len = u16::from_be_bytes([b[2], b[3]]) as usize;
        if c == code {
            return Some(b[4..4 + len].to_vec());
        }
        b = &b[4 + len..];
    }
    None
}

fn expected_domain_list() -> Vec<u8> {
    b"\x07example\x03com\x00\x03sub\x07example\x03com\x00".to_vec()
}

/// Client id, server id, DNS servers and the uncompressed domain list.
fn check_common(m: &Message, payload: &[u8], with_config: bool) {
    assert_eq!(
        get(m, OptionCode::ClientId),
        Some(&DhcpOption::ClientId(CLIENT_DUID.to_vec()))
    );
    assert_eq!(
        get(m, OptionCode::ServerId),
        Some(&DhcpOption::ServerId(SERVER_DUID.to_vec()))
    );
    if with_config {
        assert_eq!(
            get(m, OptionCode::DomainNameServers),
            Some(&DhcpOption::DomainNameServers(vec![
                ip("2001:db8:100::1"),
                ip("2001:db8:200::2")
            ]))
        );
        assert_eq!(
            get(m, OptionCode::DomainSearchList),
            Some(&DhcpOption::DomainSearchList(vec![
                Name::from_ascii("example.com.").unwrap(),
                Name::from_ascii("sub.example.com.").unwrap(),
            ]))
        );
        assert_eq!(raw_option(payload, 24), Some(expected_domain_list()));
    } else {
        assert_eq!(get(m, OptionCode::DomainNameServers), None);
        assert_eq!(raw_option(payload, 24), None);
    }
}

fn check_assigned(ia: &IANA, addr: Ipv6Addr) {
    assert_eq!((ia.id, ia.t1, ia.t2), (IAID, 1800, 2880));
    assert_eq!(
        ia.opts.get(OptionCode::IAAddr),
        Some(&DhcpOption::IAAddr(IAAddr {
            addr,
            preferred_life: 3600,
            valid_life: 7200,
            opts: DhcpOptions::new(),
        }))
    );
    assert_eq!(status_of(&ia.opts), None);
}

#[test]
fn kind_names() {
    let all = [
        (Kind::InformationRequest, "INFORMATION-REQUEST"),
        (Kind::Solicit, "SOLICIT"),
        (Kind::Advertise, "ADVERTISE"),
        (Kind::Request, "REQUEST"),
        (Kind::Renew, "RENEW"),
        (Kind::Rebind, "REBIND"),
        (Kind::Confirm, "CONFIRM"),
        (Kind::Release, "RELEASE"),
        (Kind::Decline, "DECLINE"),
        (Kind::Reply, "REPLY"),
    ];
    for (k, n) in all {
        assert_eq!(k.name(), n);
    }
}

#[test]
fn server_duid_is_duid_ll() {
    assert_eq!(server_duid(SERVER), SERVER_DUID);
}

#[test]
fn information_request_as_dhclient_sends_it() {
    for stateful in [false, true] {
        let r = reply_of(answer_default(&information_request(), stateful));
        assert_eq!(r.request, Kind::InformationRequest);
        assert_eq!(r.kind, Kind::Reply);
        assert_eq!(r.client_mac, GUEST);
        assert_eq!(r.addr, None);
        let (m, payload) = decode_reply(&r, GUEST);
        assert_eq!(m.msg_type(), MessageType::Reply);
        check_common(&m, &payload, true);
        assert_eq!(m.opts().iter().count(), 4);
        assert_eq!(
            payload.len(),
            4 + 18 + 14 + 36 + 4 + expected_domain_list().len()
        );
    }
}

#[test]
fn information_request_variants() {
    let b = sample_binding();
    // Without a client id (allowed), with our server id, with the
    // configuration left empty.
    let pkt = packet(11, &[elapsed(), server_id()]);
    let p = Params {
        nameservers: vec![],
        domains: vec![],
        ..params(false)
    };
    let r = reply_of(answer(&pkt, Some(GUEST), &b, SERVER, &p));
    let (m, _) = decode_reply(&r, GUEST);
    assert_eq!(get(&m, OptionCode::ClientId), None);
    assert_eq!(
        m.opts().iter().collect::<Vec<_>>(),
        [&DhcpOption::ServerId(SERVER_DUID.to_vec())]
    );
    // No binding data is needed.
    let mut bare = sample_binding();
    bare.subnet6 = None;
    bare.eui64 = None;
    bare.ip6 = None;
    assert!(matches!(
        answer(
            &information_request(),
            Some(GUEST),
            &bare,
            SERVER,
            &params(false)
        ),
        Outcome::Reply(_)
    ));
    // Another server's id; IA options (RFC 8415 16.12).
    let foreign = packet(11, &[client_id(), opt(2, &[0, 3, 0, 1, 1, 2, 3, 4, 5, 6])]);
    assert_eq!(
        refusal(answer_default(&foreign, false)),
        Some(Refusal::OtherServer)
    );
    let with_ia = packet(11, &[client_id(), ia_na(1, &[])]);
    assert_eq!(
        refusal(answer_default(&with_ia, false)),
        Some(Refusal::Malformed)
    );
    let with_pd = packet(11, &[client_id(), opt(25, &[0; 12])]);
    assert_eq!(
        refusal(answer_default(&with_pd, false)),
        Some(Refusal::Malformed)
    );
}

#[test]
fn solicit_gets_an_advertise() {
    let r = reply_of(answer_default(&solicit(false), true));
    assert_eq!((r.request, r.kind), (Kind::Solicit, Kind::Advertise));
    assert_eq!(r.addr, Some(ip("2001:db8:aaaa:bbbb::100")));
    let (m, payload) = decode_reply(&r, GUEST);
    assert_eq!(m.msg_type(), MessageType::Advertise);
    check_common(&m, &payload, true);
    let ias = ianas(&m);
    assert_eq!(ias.len(), 1);
    check_assigned(&ias[0], ip("2001:db8:aaaa:bbbb::100"));
    assert_eq!(
        get(&m, OptionCode::Preference),
        Some(&DhcpOption::Preference(255))
    );
    assert_eq!(get(&m, OptionCode::RapidCommit), None);
    assert_eq!(get(&m, OptionCode::StatusCode), None);
}

#[test]
fn solicit_with_rapid_commit_gets_a_reply() {
    let r = reply_of(answer_default(&solicit(true), true));
    assert_eq!((r.request, r.kind), (Kind::Solicit, Kind::Reply));
    let (m, payload) = decode_reply(&r, GUEST);
    assert_eq!(m.msg_type(), MessageType::Reply);
    check_common(&m, &payload, true);
    check_assigned(&ianas(&m)[0], ip("2001:db8:aaaa:bbbb::100"));
    assert_eq!(
        get(&m, OptionCode::RapidCommit),
        Some(&DhcpOption::RapidCommit)
    );
    assert_eq!(get(&m, OptionCode::Preference), None);
}

#[test]
fn eui64_when_no_ip6_and_nothing_without_either() {
    let mut b = sample_binding();
    b.ip6 = None;
    let r = reply_of(answer(&request(3), Some(GUEST), &b, SERVER, &params(true)));
    let (m, _) = decode_reply(&r, GUEST);
    let eui64 = ip("2001:db8:aaaa:bbbb:a86b:39ff:fe22:3344");
    check_assigned(&ianas(&m)[0], eui64);
    assert_eq!(r.addr, Some(eui64));

    b.eui64 = None;
    let r = reply_of(answer(
        &solicit(false),
        Some(GUEST),
        &b,
        SERVER,
        &params(true),
    ));
    let (m, _) = decode_reply(&r, GUEST);
    assert_eq!(r.kind, Kind::Advertise);
    assert_eq!(r.addr, None);
    assert!(ianas(&m).is_empty());
    assert_eq!(status_of(m.opts()).unwrap().0, Status::NoAddrsAvail);
}

#[test]
fn stateless_mode_offers_no_addresses() {
    for rapid in [false, true] {
        let r = reply_of(answer_default(&solicit(rapid), false));
        assert_eq!(r.kind, Kind::Advertise);
        assert_eq!(r.addr, None);
        let (m, payload) = decode_reply(&r, GUEST);
        assert_eq!(m.msg_type(), MessageType::Advertise);
        check_common(&m, &payload, true);
        assert!(ianas(&m).is_empty());
        assert_eq!(status_of(m.opts()).unwrap().0, Status::NoAddrsAvail);
        assert_eq!(get(&m, OptionCode::RapidCommit), None);
    }
    for (kind, status) in [
        (3, Status::NoAddrsAvail),
        (5, Status::NoBinding),
        (6, Status::NoBinding),
    ] {
        let pkt = if kind == 6 { rebind() } else { request(kind) };
        let r = reply_of(answer_default(&pkt, false));
        assert_eq!(r.kind, Kind::Reply);
        assert_eq!(r.addr, None);
        let (m, payload) = decode_reply(&r, GUEST);
        check_common(&m, &payload, true);
        let ias = ianas(&m);
        assert_eq!(ias.len(), 1);
        assert_eq!((ias[0].id, ias[0].t1, ias[0].t2), (IAID, 0, 0));
        assert_eq!(ias[0].opts.get(OptionCode::IAAddr), None);
        assert_eq!(status_of(&ias[0].opts).unwrap().0, status, "type {kind}");
        assert_eq!(status_of(m.opts()), None);
    }
    // A Solicit without IA_NA in stateful mode: nothing to offer either.
    let no_ia = packet(1, &[client_id(), elapsed()]);
    let r = reply_of(answer_default(&no_ia, true));
    let (m, _) = decode_reply(&r, GUEST);
    assert_eq!(status_of(m.opts()).unwrap().0, Status::NoAddrsAvail);
}

#[test]
fn request_renew_rebind() {
    for (pkt, kind) in [
        (request(3), Kind::Request),
        (request(5), Kind::Renew),
        (rebind(), Kind::Rebind),
    ] {
        let r = reply_of(answer_default(&pkt, true));
        assert_eq!((r.request, r.kind), (kind, Kind::Reply));
        assert_eq!(r.addr, Some(ip("2001:db8:aaaa:bbbb::100")));
        let (m, payload) = decode_reply(&r, GUEST);
        assert_eq!(m.msg_type(), MessageType::Reply);
        check_common(&m, &payload, true);
        let ias = ianas(&m);
        assert_eq!(ias.len(), 1);
        check_assigned(&ias[0], ip("2001:db8:aaaa:bbbb::100"));
        assert_eq!(ias[0].opts.iter().count(), 1);
        assert_eq!(status_of(m.opts()), None);
    }
}

#[test]
fn renew_withdraws_other_addresses() {
    let old = ip("2001:db8:aaaa:bbbb::99");
    let pkt = packet(
        5,
        &[
            client_id(),
            server_id(),
            ia_na(IAID, &[old, ip("2001:db8:aaaa:bbbb::100")]),
        ],
    );
    let r = reply_of(answer_default(&pkt, true));
    let (m, _) = decode_reply(&r, GUEST);
    let ia = &ianas(&m)[0];
    let addrs: Vec<_> = ia
        .opts
        .iter()
        .map(|o| match o {
            DhcpOption::IAAddr(a) => (a.addr, a.preferred_life, a.valid_life),
            o => panic!("{o:?}"),
        })
        .collect();
    assert_eq!(
        addrs,
        [(ip("2001:db8:aaaa:bbbb::100"), 3600, 7200), (old, 0, 0)]
    );
}

#[test]
fn one_address_for_the_first_ia_only() {
    let pkt = packet(
        1,
        &[client_id(), ia_na(7, &[]), ia_na(8, &[]), ia_na(9, &[])],
    );
    let r = reply_of(answer_default(&pkt, true));
    let (m, _) = decode_reply(&r, GUEST);
    let ias = ianas(&m);
    assert_eq!(ias.iter().map(|i| i.id).collect::<Vec<_>>(), [7, 8, 9]);
    assert!(ias[0].opts.get(OptionCode::IAAddr).is_some());
    for ia in &ias[1..] {
        assert_eq!(ia.opts.get(OptionCode::IAAddr), None);
        assert_eq!(status_of(&ia.opts).unwrap().0, Status::NoAddrsAvail);
    }
    // Many IAs: only the first few are answered.
    let many: Vec<_> = std::iter::once(client_id())
        .chain((0..100).map(|i| ia_na(i, &[])))
        .collect();
    let r = reply_of(answer_default(&packet(1, &many), true));
    let (m, _) = decode_reply(&r, GUEST);
    assert_eq!(ianas(&m).len(), MAX_IAS);
}

#[test]
fn server_identifier_rules() {
    let foreign = opt(2, &[0, 3, 0, 1, 1, 2, 3, 4, 5, 6]);
    for kind in [3u8, 5, 8, 9] {
        let pkt = packet(kind, &[client_id(), foreign.clone(), ia_na(IAID, &[])]);
        assert_eq!(
            refusal(answer_default(&pkt, true)),
            Some(Refusal::OtherServer),
            "type {kind}"
        );
        let pkt = packet(kind, &[client_id(), ia_na(IAID, &[])]);
        assert_eq!(
            refusal(answer_default(&pkt, true)),
            Some(Refusal::Malformed),
            "type {kind} without server id"
        );
    }
    for kind in [1u8, 4, 6] {
        let pkt = packet(kind, &[client_id(), server_id(), ia_na(IAID, &[])]);
        assert_eq!(
            refusal(answer_default(&pkt, true)),
            Some(Refusal::Malformed),
            "type {kind} with a server id"
        );
    }
    for kind in [1u8, 3, 4, 5, 6, 8, 9] {
        let pkt = packet(kind, &[server_id(), ia_na(IAID, &[])]);
        assert_eq!(
            refusal(answer_default(&pkt, true)),
            Some(Refusal::Malformed),
            "type {kind} without client id"
        );
    }
}

#[test]
fn confirm_checks_on_link() {
    let on = ip("2001:db8:aaaa:bbbb::100");
    let r = reply_of(answer_default(&confirm(&[on]), false));
    assert_eq!(
        (r.request, r.kind, r.addr),
        (Kind::Confirm, Kind::Reply, None)
    );
    let (m, payload) = decode_reply(&r, GUEST);
    check_common(&m, &payload, false);
    assert_eq!(status_of(m.opts()).unwrap().0, Status::Success);
    assert!(ianas(&m).is_empty());

    let r = reply_of(answer_default(&confirm(&[on, ip("2001:db8:1::1")]), true));
    let (m, _) = decode_reply(&r, GUEST);
    assert_eq!(status_of(m.opts()).unwrap().0, Status::NotOnLink);

    // An IA_TA address counts as well.
    let mut ta = 5u32.to_be_bytes().to_vec();
    ta.extend(opt(
        5,
        &[ip("2001:db8:1::1").octets().to_vec(), vec![0; 8]].concat(),
    ));
    let pkt = packet(4, &[client_id(), ia_na(IAID, &[on]), opt(4, &ta)]);
    let r = reply_of(answer_default(&pkt, true));
    let (m, _) = decode_reply(&r, GUEST);
    assert_eq!(status_of(m.opts()).unwrap().0, Status::NotOnLink);

    assert_eq!(
        refusal(answer_default(&confirm(&[]), true)),
        Some(Refusal::Malformed)
    );
    let mut b = sample_binding();
    b.subnet6 = None;
    assert_eq!(
        refusal(answer(
            &confirm(&[on]),
            Some(GUEST),
            &b,
            SERVER,
            &params(true)
        )),
        Some(Refusal::Unconfigured)
    );
}

#[test]
fn release_and_decline() {
    for stateful in [true, false] {
        for (kind, name) in [(8u8, Kind::Release), (9, Kind::Decline)] {
            let out = answer_default(&request(kind), stateful);
            let r = match (&out, kind) {
                (Outcome::Released(r), 8) | (Outcome::Declined(r), 9) => r.clone(),
                _ => panic!("{out:?}"),
            };
            assert_eq!(out.reply(), Some(&r));
            assert_eq!((r.request, r.kind), (name, Kind::Reply));
            assert_eq!(r.addr, Some(ip("2001:db8:aaaa:bbbb::100")));
            let (m, payload) = decode_reply(&r, GUEST);
            check_common(&m, &payload, false);
            assert_eq!(status_of(m.opts()).unwrap().0, Status::Success);
            let ias = ianas(&m);
            if stateful {
                assert!(ias.is_empty());
            } else {
                assert_eq!(ias.len(), 1);
                assert_eq!(status_of(&ias[0].opts).unwrap().0, Status::NoBinding);
            }
        }
    }
}

#[test]
fn mac_checks() {
    let b = sample_binding();
    let p = params(true);
    for pkt in [information_request(), solicit(false), request(3)] {
        assert_eq!(
            refusal(answer(&pkt, Some(OTHER), &b, SERVER, &p)),
            Some(Refusal::SpoofedMac)
        );
    }
    let mut spoof_ok = sample_binding();
    spoof_ok.macspoof = true;
    let r = reply_of(answer(&request(3), Some(OTHER), &spoof_ok, SERVER, &p));
    assert_eq!(r.client_mac, OTHER);
    decode_reply(&r, OTHER);
    // Without a hardware address the reply goes to the binding's MAC.
    let r = reply_of(answer(&request(3), None, &b, SERVER, &p));
    assert_eq!(r.client_mac, GUEST);
    decode_reply(&r, GUEST);
    // A DUID from another interface's MAC is fine.
    let mut duid = CLIENT_DUID;
    duid[13] = 0x99;
    let pkt = packet(11, &[opt(1, &duid)]);
    assert!(matches!(
        answer(&pkt, Some(GUEST), &b, SERVER, &p),
        Outcome::Reply(_)
    ));
}

#[test]
fn not_requests() {
    let b = sample_binding();
    let p = params(true);
    let refused = |pkt: &[u8]| refusal(answer(pkt, Some(GUEST), &b, SERVER, &p));
    let mut m = vec![11];
    m.extend_from_slice(&XID);
    m.extend(client_id());
    assert_eq!(refused(&udp_packet(546, 547, &m)), None);
    assert_eq!(
        refused(&udp_packet(547, 547, &m)),
        Some(Refusal::NotARequest)
    );
    assert_eq!(
        refused(&udp_packet(546, 546, &m)),
        Some(Refusal::NotARequest)
    );
    // Advertise, Reply, Reconfigure, Relay-forward, unknown.
    for t in [2u8, 7, 10, 12, 13, 200] {
        assert_eq!(
            refused(&packet(t, &[client_id()])),
            Some(Refusal::NotARequest),
            "{t}"
        );
    }
    assert_eq!(
        refused(&udp_packet(546, 547, &[])),
        Some(Refusal::Malformed)
    );
    assert_eq!(
        refused(&udp_packet(546, 547, &[11, 1, 2])),
        Some(Refusal::Malformed)
    );
    assert_eq!(refused(&[]), Some(Refusal::Malformed));
    // An ICMPv6 packet on this queue.
    let mut icmp = udp_packet(546, 547, &m);
    icmp[6] = 58;
    assert_eq!(refused(&icmp), Some(Refusal::Malformed));
}

#[test]
fn options_dhcproto_would_misread() {
    let ok = |extra: Vec<u8>| {
        let pkt = packet(11, &[client_id(), extra]);
        refusal(answer_default(&pkt, false))
    };
    let bad = Some(Refusal::Malformed);
    // Short options whose decoders subtract or read fixed sizes.
    assert_eq!(ok(opt(13, &[])), bad);
    assert_eq!(ok(opt(13, &[0])), bad);
    assert_eq!(
        ok(opt(13, &[0, 0, 0xff, 0xfe])),
        bad,
        "status text not UTF-8"
    );
    assert_eq!(ok(opt(13, b"\0\0fine")), None);
    assert_eq!(ok(opt(11, &[0; 10])), bad);
    assert_eq!(ok(opt(16, &[0; 3])), bad);
    assert_eq!(ok(opt(17, &[0; 3])), bad);
    assert_eq!(
        ok(opt(17, &[0, 0, 0, 9, 0, 13, 0, 0])),
        bad,
        "nested status"
    );
    assert_eq!(ok(opt(17, &[0, 0, 0, 9, 0, 99, 0, 1, 7])), None);
    assert_eq!(ok(opt(7, &[])), bad);
    assert_eq!(ok(opt(8, &[0])), bad);
    assert_eq!(ok(opt(8, &[0, 0, 0])), bad);
    assert_eq!(ok(opt(12, &[0; 15])), bad);
    assert_eq!(ok(opt(14, &[0])), bad);
    assert_eq!(ok(opt(19, &[])), bad);
    assert_eq!(ok(opt(23, &[0; 17])), bad);
    assert_eq!(ok(opt(6, &[0, 23, 0])), bad);
    assert_eq!(ok(opt(9, &[12, 0])), bad, "relay message from a client");
    assert_eq!(ok(opt(2, &[0, 3])), bad, "DUID too short");
    assert_eq!(ok(opt(1, &[0; 131])), bad, "DUID too long");
    // Inside IAs.
    assert_eq!(ok(opt(3, &[0; 11])), bad);
    assert_eq!(ok(opt(4, &[0; 3])), bad);
    let mut ia = vec![0; 12];
    ia.extend(opt(5, &[0; 23]));
    assert_eq!(
        refusal(answer_default(
            &packet(1, &[client_id(), opt(3, &ia)]),
            true
        )),
        bad
    );
    let mut ia = vec![0; 12];
    ia.extend(opt(5, &[[0u8; 24].to_vec(), opt(13, &[0])].concat()));
    assert_eq!(
        refusal(answer_default(
            &packet(1, &[client_id(), opt(3, &ia)]),
            true
        )),
        bad
    );
    let mut pd = vec![0; 12];
    pd.extend(opt(26, &[0; 24]));
    assert_eq!(ok(opt(25, &pd)), bad);
    // Options that run past the end, and runaway nesting.
    let mut trunc = opt(16, &[0; 8]);
    trunc.truncate(10);
    assert_eq!(ok(trunc), bad);
    let mut deep = opt(13, &[0, 0]);
    for _ in 0..10 {
        deep = opt(3, &[[0u8; 12].to_vec(), deep].concat());
    }
    assert_eq!(
        refusal(answer_default(&packet(1, &[client_id(), deep]), true)),
        bad
    );
    // An NTP option dhcproto cannot decode: caught by the count check.
    assert_eq!(ok(opt(56, &[0, 9, 0, 0])), bad);
    // Unknown options pass.
    assert_eq!(ok(opt(999, &[1, 2, 3])), None);
}

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
    let samples = vec![
        information_request(),
        solicit(false),
        solicit(true),
        request(3),
        request(5),
        rebind(),
        confirm(&[ip("2001:db8:aaaa:bbbb::100")]),
        request(8),
        request(9),
    ];
    let run = |pkt: &[u8]| {
        for binding in [&b, &spoof_ok] {
            for stateful in [false, true] {
                let _ = answer(pkt, Some(GUEST), binding, SERVER, &params(stateful));
            }
        }
    };
    let mut state = 0x2545_f491_4f6c_dd1du64;
    for s in &samples {
        for n in 0..=s.len() {
            run(&s[..n]);
        }
        // Mutate the DHCPv6 message only and re-frame it, so every
        // mutation reaches the option parsing.
        let msg = &s[48..];
        for i in 0..msg.len() {
            for x in [0x00, 0xff, 0x01, 0x80, 0x0d] {
                let mut m = msg.to_vec();
                m[i] = x;
                run(&udp_packet(546, 547, &m));
            }
        }
        for _ in 0..1000 {
            let mut m = msg.to_vec();
            for _ in 0..1 + xorshift(&mut state) % 4 {
                let i = (xorshift(&mut state) as usize) % m.len();
                m[i] = xorshift(&mut state) as u8;
            }
            let cut = (xorshift(&mut state) as usize) % (m.len() + 1);
            run(&udp_packet(546, 547, &m));
            run(&udp_packet(546, 547, &m[..cut]));
        }
    }
    let mut random = vec![0u8; 120];
    for _ in 0..2000 {
        for byte in random.iter_mut() {
            *byte = xorshift(&mut state) as u8;
        }
        random[0] = 1 + (random[0] % 11);
        run(&udp_packet(546, 547, &random));
    }
}
