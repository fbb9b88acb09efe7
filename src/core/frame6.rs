//! IPv6 framing for the NDP and DHCPv6 answers (pure): parses the bare IPv6
//! packets NFQUEUE hands over and builds complete Ethernet II + IPv6 frames
//! with ICMPv6 or UDP checksums.

use std::net::Ipv6Addr;

use etherparse::{
    checksum::Sum16BitWords, err::ipv6::SliceError, EtherType, Ethernet2Header, Icmpv6Slice,
    IpNumber, Ipv6FlowLabel, Ipv6Header, Ipv6Slice, LenSource, UdpHeader, UdpSlice,
};

use crate::core::mac::MacAddr;

pub const ETHERNET_HEADER_LEN: usize = Ethernet2Header::LEN;
pub const IPV6_HEADER_LEN: usize = Ipv6Header::LEN;
pub const UDP_HEADER_LEN: usize = UdpHeader::LEN;
/// Offset of the ICMPv6 message in a frame built by [`finish_icmpv6_frame`].
pub const ICMPV6_OFFSET: usize = ETHERNET_HEADER_LEN + IPV6_HEADER_LEN;
/// Bytes in front of the UDP payload in a frame built by [`finish_udp6_frame`].
pub const UDP6_HEADERS_LEN: usize = ICMPV6_OFFSET + UDP_HEADER_LEN;
/// The IPv6 payload length field is 16 bits (no jumbograms here).
pub const MAX_IPV6_PAYLOAD: usize = u16::MAX as usize;
/// Neighbor Discovery messages must carry 255: receivers drop anything else,
/// which proves the sender is on the link (RFC 4861 6.1, 7.1).
pub const ND_HOP_LIMIT: u8 = 255;
/// Hop limit of other built packets (the Linux default).
pub const DEFAULT_HOP_LIMIT: u8 = 64;
pub const ETHERTYPE_IPV6: u16 = 0x86dd;
pub const ICMPV6_HEADER_LEN: usize = 8;

/// ff02::1, the all-nodes group.
pub const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
/// The Ethernet group of ff02::1.
pub const ALL_NODES_MAC: MacAddr = MacAddr([0x33, 0x33, 0, 0, 0, 1]);

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Frame6Error {
    #[error("shorter than its headers say")]
    Truncated,
    #[error("bad IPv6 header or extension header")]
    BadIpHeader,
    #[error("IPv6 fragment")]
    Fragment,
    #[error("not ICMPv6")]
    NotIcmpv6,
    #[error("not UDP")]
    NotUdp,
    #[error("bad UDP length")]
    BadUdpLength,
    #[error("bad checksum")]
    BadChecksum,
    #[error("payload too large for one packet")]
    TooLong,
}

/// fe80::/64 plus the modified EUI-64 of `mac`: the link-local address a
/// host forms from its MAC, and the source of every answer built here.
pub fn link_local(mac: MacAddr) -> Ipv6Addr {
    let mut a = [0u8; 16];
    a[0] = 0xfe;
    a[1] = 0x80;
    a[8..].copy_from_slice(&mac.eui64_interface_id());
    Ipv6Addr::from(a)
}

/// The Ethernet group address an IPv6 multicast address maps to (RFC 2464 7).
pub fn multicast_mac(group: Ipv6Addr) -> MacAddr {
    let o = group.octets();
    MacAddr([0x33, 0x33, o[12], o[13], o[14], o[15]])
}

/// An ICMPv6 message carried in an IPv6 packet, borrowed from the packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Icmpv6Packet<'a> {
    pub src: Ipv6Addr,
    pub dst: Ipv6Addr,
    pub hop_limit: u8,
    pub msg_type: u8,
    pub code: u8,
    /// Bytes 4..8 of the message (flags, reserved or type-specific fields).
    pub bytes5to8: [u8; 4],
    /// Everything after the first eight bytes.
    pub payload: &'a [u8],
}

/// A UDP datagram carried in an IPv6 packet, borrowed from the packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Udp6Datagram<'a> {
    pub src: Ipv6Addr,
    pub dst: Ipv6Addr,
    pub src_port: u16,
    pub dst_port: u16,
    pub hop_limit: u8,
    pub payload: &'a [u8],
}

struct Parsed<'a> {
    src: Ipv6Addr,
    dst: Ipv6Addr,
    hop_limit: u8,
    next: IpNumber,
    payload: &'a [u8],
}

fn parse_ipv6(packet: &[u8]) -> Result<Parsed<'_>, Frame6Error> {
    let ip = Ipv6Slice::from_slice(packet).map_err(|e| match e {
        SliceError::Len(_) => Frame6Error::Truncated,
        SliceError::Header(_) | SliceError::Exts(_) => Frame6Error::BadIpHeader,
    })?;
    let h = ip.header();
    // Zero means a jumbogram, which needs a hop-by-hop option no guest sends
    // for these protocols; etherparse would take the rest of the buffer.
    if h.payload_length() == 0 {
        return Err(Frame6Error::Truncated);
    }
    let p = ip.payload();
    if p.fragmented {
        return Err(Frame6Error::Fragment);
    }
    Ok(Parsed {
        src: h.source_addr(),
        dst: h.destination_addr(),
        hop_limit: h.hop_limit(),
        next: p.ip_number,
        payload: p.payload,
    })
}

/// Parses an IPv6 packet (starting at the IPv6 header, as NFQUEUE delivers
/// it) that carries one ICMPv6 message, and verifies the ICMPv6 checksum.
///
/// Unlike UDP, ICMPv6 is never checksum-offloaded by a guest, and RFC 4861
/// requires receivers to drop Neighbor Discovery messages with a bad one.
pub fn parse_icmpv6(packet: &[u8]) -> Result<Icmpv6Packet<'_>, Frame6Error> {
    let ip = parse_ipv6(packet)?;
    if ip.next != IpNumber::IPV6_ICMP {
        return Err(Frame6Error::NotIcmpv6);
    }
    let icmp = Icmpv6Slice::from_slice(ip.payload).map_err(|_| Frame6Error::Truncated)?;
    if !icmp.is_checksum_valid(ip.src.octets(), ip.dst.octets()) {
        return Err(Frame6Error::BadChecksum);
    }
    Ok(Icmpv6Packet {
        src: ip.src,
        dst: ip.dst,
        hop_limit: ip.hop_limit,
        msg_type: icmp.type_u8(),
        code: icmp.code_u8(),
        bytes5to8: icmp.bytes5to8(),
        payload: icmp.payload(),
    })
}

/// Parses an IPv6 packet that carries one whole UDP datagram.
///
/// The UDP checksum is not verified: a guest with checksum offload hands
/// over datagrams whose checksum is not filled in yet.
pub fn parse_udp6(packet: &[u8]) -> Result<Udp6Datagram<'_>, Frame6Error> {
    let ip = parse_ipv6(packet)?;
    if ip.next != IpNumber::UDP {
        return Err(Frame6Error::NotUdp);
    }
    let udp = UdpSlice::from_slice(ip.payload).map_err(|e| {
        if e.len_source == LenSource::UdpHeaderLen {
            Frame6Error::BadUdpLength
        } else {
            Frame6Error::Truncated
        }
    })?;
    // etherparse takes zero to mean "the rest of the packet" (jumbograms).
    if udp.length() < UDP_HEADER_LEN as u16 {
        return Err(Frame6Error::BadUdpLength);
    }
    Ok(Udp6Datagram {
        src: ip.src,
        dst: ip.dst,
        src_port: udp.source_port(),
        dst_port: udp.destination_port(),
        hop_limit: ip.hop_limit,
        payload: udp.payload(),
    })
}

/// Who a built Ethernet + IPv6 frame goes from and to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv6Addressing {
    pub src_mac: MacAddr,
    pub dst_mac: MacAddr,
    pub src: Ipv6Addr,
    pub dst: Ipv6Addr,
    pub hop_limit: u8,
}

fn write_eth_ipv6(
    headers: &mut [u8],
    a: &Ipv6Addressing,
    next: IpNumber,
    payload_len: usize,
) -> Result<Ipv6Header, Frame6Error> {
    let payload_length = u16::try_from(payload_len).map_err(|_| Frame6Error::TooLong)?;
    let eth = Ethernet2Header {
        source: a.src_mac.0,
        destination: a.dst_mac.0,
        ether_type: EtherType::IPV6,
    };
    let ip = Ipv6Header {
        traffic_class: 0,
        flow_label: Ipv6FlowLabel::ZERO,
        payload_length,
        next_header: next,
        hop_limit: a.hop_limit,
        source: a.src.octets(),
        destination: a.dst.octets(),
    };
    let (eth_bytes, rest) = headers.split_at_mut(ETHERNET_HEADER_LEN);
    eth_bytes.copy_from_slice(&eth.to_bytes());
    rest[..IPV6_HEADER_LEN].copy_from_slice(&ip.to_bytes());
    Ok(ip)
}

/// Writes the Ethernet and IPv6 headers into the first [`ICMPV6_OFFSET`]
/// bytes of `frame` and fills in the checksum of the ICMPv6 message that
/// follows them (its checksum field is overwritten).
pub fn finish_icmpv6_frame(frame: &mut [u8], a: &Ipv6Addressing) -> Result<(), Frame6Error> {
    if frame.len() < ICMPV6_OFFSET + ICMPV6_HEADER_LEN {
        return Err(Frame6Error::Truncated);
    }
    let (headers, msg) = frame.split_at_mut(ICMPV6_OFFSET);
    write_eth_ipv6(headers, a, IpNumber::IPV6_ICMP, msg.len())?;
    msg[2] = 0;
    msg[3] = 0;
    let sum = Sum16BitWords::new()
        .add_16bytes(a.src.octets())
        .add_16bytes(a.dst.octets())
        .add_4bytes((msg.len() as u32).to_be_bytes())
        .add_2bytes([0, IpNumber::IPV6_ICMP.0])
        .add_slice(msg)
        .ones_complement()
        // etherparse sums in native byte order.
        .to_be();
    msg[2..4].copy_from_slice(&sum.to_be_bytes());
    Ok(())
}

/// Writes the Ethernet, IPv6 and UDP headers into the first
/// [`UDP6_HEADERS_LEN`] bytes of `frame`; the rest of `frame` is the UDP
/// payload, so an encoder can write it straight into the final buffer.
pub fn finish_udp6_frame(
    frame: &mut [u8],
    a: &Ipv6Addressing,
    src_port: u16,
    dst_port: u16,
) -> Result<(), Frame6Error> {
    if frame.len() < UDP6_HEADERS_LEN {
        return Err(Frame6Error::Truncated);
    }
    let (headers, payload) = frame.split_at_mut(UDP6_HEADERS_LEN);
    if payload.len() > MAX_IPV6_PAYLOAD - UDP_HEADER_LEN {
        return Err(Frame6Error::TooLong);
    }
    let ip = write_eth_ipv6(headers, a, IpNumber::UDP, UDP_HEADER_LEN + payload.len())?;
    let udp = UdpHeader::with_ipv6_checksum(src_port, dst_port, &ip, payload)
        .map_err(|_| Frame6Error::TooLong)?;
    headers[ICMPV6_OFFSET..].copy_from_slice(&udp.to_bytes());
    Ok(())
}

/// Builds a complete Ethernet II + IPv6 + UDP frame around `payload`, in one
/// allocation of the exact size.
pub fn udp6_frame(
    a: &Ipv6Addressing,
    src_port: u16,
    dst_port: u16,
    payload: &[u8],
) -> Result<Vec<u8>, Frame6Error> {
    if payload.len() > MAX_IPV6_PAYLOAD - UDP_HEADER_LEN {
        return Err(Frame6Error::TooLong);
    }
    let mut frame = Vec::with_capacity(UDP6_HEADERS_LEN + payload.len());
    frame.resize(UDP6_HEADERS_LEN, 0);
    frame.extend_from_slice(payload);
    finish_udp6_frame(&mut frame, a, src_port, dst_port)?;
    Ok(frame)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Ones' complement sum of `data` (odd tail padded with zero) on top of `acc`.
    pub(crate) fn ones_sum(data: &[u8], mut acc: u32) -> u16 {
        for c in data.chunks(2) {
            let w = match c {
                [a, b] => u16::from_be_bytes([*a, *b]),
                [a] => u16::from_be_bytes([*a, 0]),
                _ => 0,
            };
            acc += u32::from(w);
            acc = (acc & 0xffff) + (acc >> 16);
        }
        while acc > 0xffff {
            acc = (acc & 0xffff) + (acc >> 16);
        }
        acc as u16
    }

    /// The IPv6 pseudo-header sum (RFC 8200 8.1), computed independently.
    pub(crate) fn pseudo_sum(src: Ipv6Addr, dst: Ipv6Addr, next: u8, len: usize) -> u32 {
        let mut acc = 0u32;
        for a in [src.octets(), dst.octets()] {
            for w in a.chunks(2) {
                acc += u32::from(u16::from_be_bytes([w[0], w[1]]));
            }
        }
        acc += (len as u32) >> 16;
        acc += (len as u32) & 0xffff;
        acc + u32::from(next)
    }

    /// Checks an Ethernet + IPv6 frame by hand and returns the upper-layer
    /// bytes after asserting their checksum.
    pub(crate) fn check_frame(f: &[u8], a: &Ipv6Addressing, next: u8) -> Vec<u8> {
        assert_eq!(&f[0..6], &a.dst_mac.0, "Ethernet destination");
        assert_eq!(&f[6..12], &a.src_mac.0, "Ethernet source");
        assert_eq!(&f[12..14], &[0x86, 0xdd]);
        let ip = &f[14..54];
        assert_eq!(ip[0], 0x60, "version 6, traffic class 0");
        assert_eq!(&ip[1..4], &[0, 0, 0], "flow label 0");
        let plen = u16::from_be_bytes([ip[4], ip[5]]) as usize;
        assert_eq!(plen, f.len() - 54, "IPv6 payload length");
        assert_eq!(ip[6], next, "next header");
        assert_eq!(ip[7], a.hop_limit, "hop limit");
        assert_eq!(&ip[8..24], &a.src.octets());
        assert_eq!(&ip[24..40], &a.dst.octets());
        let upper = &f[54..];
        assert_eq!(
            ones_sum(upper, pseudo_sum(a.src, a.dst, next, upper.len())),
            0xffff,
            "upper-layer checksum"
        );

        // And etherparse reads the same.
        let p = etherparse::SlicedPacket::from_ethernet(f).unwrap();
        let Some(etherparse::NetSlice::Ipv6(ip6)) = &p.net else {
            panic!("not IPv6: {:?}", p.net);
        };
        let h = ip6.header().to_header();
        assert_eq!(usize::from(h.payload_length), upper.len());
        assert_eq!(h.hop_limit, a.hop_limit);
        assert_eq!((h.source, h.destination), (a.src.octets(), a.dst.octets()));
        match &p.transport {
            Some(etherparse::TransportSlice::Udp(u)) => {
                assert_eq!(next, 17);
                let sum = u.to_header().calc_checksum_ipv6(&h, u.payload()).unwrap();
                assert_eq!(sum, u.checksum(), "UDP checksum recomputed");
            }
            Some(etherparse::TransportSlice::Icmpv6(i)) => {
                assert_eq!(next, 58);
                assert!(i.is_checksum_valid(h.source, h.destination));
            }
            t => panic!("unexpected transport {t:?}"),
        }
        upper.to_vec()
    }

    pub(crate) fn addressing() -> Ipv6Addressing {
        let server = MacAddr([0x02, 0, 0, 0, 0, 1]);
        let guest = MacAddr([0xaa, 0x6b, 0x39, 0x22, 0x33, 0x44]);
        Ipv6Addressing {
            src_mac: server,
            dst_mac: guest,
            src: link_local(server),
            dst: link_local(guest),
            hop_limit: 64,
        }
    }

    #[test]
    fn link_local_and_multicast_mac() {
        let m = MacAddr([0xaa, 0x6b, 0x39, 0x22, 0x33, 0x44]);
        assert_eq!(
            link_local(m),
            "fe80::a86b:39ff:fe22:3344".parse::<Ipv6Addr>().unwrap()
        );
        assert_eq!(multicast_mac(ALL_NODES), ALL_NODES_MAC);
        assert_eq!(
            multicast_mac("ff02::1:ff22:3344".parse().unwrap()),
            MacAddr([0x33, 0x33, 0xff, 0x22, 0x33, 0x44])
        );
    }

    #[test]
    fn udp6_frame_round_trip() {
        let a = addressing();
        let payload = b"odd-length dhcpv6 payload";
        let f = udp6_frame(&a, 547, 546, payload).unwrap();
        assert_eq!(f.len(), UDP6_HEADERS_LEN + payload.len());
        assert_eq!(f.capacity(), f.len());
        let udp = check_frame(&f, &a, 17);
        assert_eq!(&udp[0..2], &547u16.to_be_bytes());
        assert_eq!(&udp[2..4], &546u16.to_be_bytes());
        assert_eq!(u16::from_be_bytes([udp[4], udp[5]]) as usize, udp.len());
        assert_ne!(&udp[6..8], &[0, 0], "IPv6 UDP checksum is mandatory");
        assert_eq!(&udp[8..], payload);

        let d = parse_udp6(&f[14..]).unwrap();
        assert_eq!((d.src, d.dst), (a.src, a.dst));
        assert_eq!((d.src_port, d.dst_port, d.hop_limit), (547, 546, 64));
        assert_eq!(d.payload, payload);
        assert_eq!(parse_icmpv6(&f[14..]), Err(Frame6Error::NotIcmpv6));

        // Built in place behind a placeholder: the same bytes.
        let mut buf = vec![0xee; UDP6_HEADERS_LEN];
        buf.extend_from_slice(payload);
        finish_udp6_frame(&mut buf, &a, 547, 546).unwrap();
        assert_eq!(buf, f);
    }

    #[test]
    fn icmpv6_frame_round_trip() {
        let a = Ipv6Addressing {
            hop_limit: ND_HOP_LIMIT,
            ..addressing()
        };
        // An echo request with an odd-length body and a stale checksum.
        let mut f = vec![0u8; ICMPV6_OFFSET];
        f.extend_from_slice(&[128, 0, 0xde, 0xad, 0, 1, 0, 2, b'x', b'y', b'z']);
        finish_icmpv6_frame(&mut f, &a).unwrap();
        let icmp = check_frame(&f, &a, 58);
        assert_eq!(&icmp[..2], &[128, 0]);
        let p = parse_icmpv6(&f[14..]).unwrap();
        assert_eq!((p.msg_type, p.code, p.hop_limit), (128, 0, 255));
        assert_eq!(p.bytes5to8, [0, 1, 0, 2]);
        assert_eq!(p.payload, b"xyz");
        assert_eq!((p.src, p.dst), (a.src, a.dst));
        assert_eq!(parse_udp6(&f[14..]), Err(Frame6Error::NotUdp));

        // A flipped bit anywhere in the message or the addresses fails it.
        for i in [14 + 8, 14 + 39, 54, 56, f.len() - 1] {
            let mut g = f.clone();
            g[i] ^= 0x10;
            assert_eq!(parse_icmpv6(&g[14..]), Err(Frame6Error::BadChecksum), "{i}");
        }
        assert_eq!(
            finish_icmpv6_frame(&mut [0; ICMPV6_OFFSET + 7], &a),
            Err(Frame6Error::Truncated)
        );
    }

    #[test]
    fn sizes_are_bounded() {
        let a = addressing();
        let max = MAX_IPV6_PAYLOAD - UDP_HEADER_LEN;
        let f = udp6_frame(&a, 547, 546, &vec![0x5a; max]).unwrap();
        assert_eq!(&f[18..20], &[0xff, 0xff]);
        assert_eq!(parse_udp6(&f[14..]).unwrap().payload.len(), max);
        assert_eq!(
            udp6_frame(&a, 547, 546, &vec![0; max + 1]),
            Err(Frame6Error::TooLong)
        );
        assert_eq!(
            finish_udp6_frame(&mut [0; UDP6_HEADERS_LEN - 1], &a, 1, 2),
            Err(Frame6Error::Truncated)
        );
        let mut big = vec![0; ICMPV6_OFFSET + MAX_IPV6_PAYLOAD + 1];
        big[ICMPV6_OFFSET] = 128;
        assert_eq!(finish_icmpv6_frame(&mut big, &a), Err(Frame6Error::TooLong));
    }

    fn sample_udp() -> Vec<u8> {
        udp6_frame(&addressing(), 546, 547, b"0123456789").unwrap()[14..].to_vec()
    }

    #[test]
    fn refuses_bad_packets() {
        let p = sample_udp();
        assert!(parse_udp6(&p).is_ok());
        for n in 0..p.len() {
            assert!(parse_udp6(&p[..n]).is_err(), "prefix {n}");
            assert!(parse_icmpv6(&p[..n]).is_err(), "prefix {n}");
        }
        // Link padding beyond the payload length is ignored.
        let mut padded = p.clone();
        padded.extend_from_slice(&[0; 6]);
        assert_eq!(parse_udp6(&padded).unwrap().payload, b"0123456789");

        let mut v4 = p.clone();
        v4[0] = 0x45;
        assert_eq!(parse_udp6(&v4), Err(Frame6Error::BadIpHeader));
        let mut zero_len = p.clone();
        zero_len[4..6].copy_from_slice(&[0, 0]);
        assert_eq!(parse_udp6(&zero_len), Err(Frame6Error::Truncated));
        let mut long = p.clone();
        long[5] += 1;
        assert_eq!(parse_udp6(&long), Err(Frame6Error::Truncated));

        for (len, err) in [
            (0u16, Frame6Error::BadUdpLength),
            (7, Frame6Error::BadUdpLength),
            (19, Frame6Error::Truncated),
        ] {
            let mut q = p.clone();
            q[44..46].copy_from_slice(&len.to_be_bytes());
            assert_eq!(parse_udp6(&q), Err(err), "udp length {len}");
        }
        let mut q = p.clone();
        q[44..46].copy_from_slice(&12u16.to_be_bytes());
        assert_eq!(parse_udp6(&q).unwrap().payload, b"0123");
    }

    /// Inserts an extension header of `kind` (8 bytes, `body` after the
    /// next-header and length bytes) in front of the upper layer.
    fn with_ext(p: &[u8], kind: u8, body: [u8; 6]) -> Vec<u8> {
        let mut q = p[..40].to_vec();
        q.push(q[6]);
        q.push(0);
        q.extend_from_slice(&body);
        q.extend_from_slice(&p[40..]);
        q[6] = kind;
        let plen = (q.len() - 40) as u16;
        q[4..6].copy_from_slice(&plen.to_be_bytes());
        q
    }

    #[test]
    fn extension_headers() {
        let p = sample_udp();
        // Hop-by-hop with PadN: skipped.
        let hbh = with_ext(&p, 0, [1, 4, 0, 0, 0, 0]);
        assert_eq!(parse_udp6(&hbh).unwrap().payload, b"0123456789");
        // A real fragment (more-fragments set): refused.
        let frag = with_ext(&p, 44, [0, 1, 0, 0, 0, 1]);
        assert_eq!(parse_udp6(&frag), Err(Frame6Error::Fragment));
        // A malformed extension chain.
        let mut bad = hbh.clone();
        bad[41] = 200;
        assert!(parse_udp6(&bad).is_err());
    }
}
