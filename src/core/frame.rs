//! Ethernet, IPv4 and UDP framing and checksums (pure); IPv6 is in `frame6`.
//!
//! Requests arrive from NFQUEUE as bare IP packets; answers leave through an
//! AF_PACKET socket as complete Ethernet frames, so this module parses the
//! former and builds the latter.

use std::net::SocketAddrV4;

use etherparse::{
    err::ipv4::SliceError, EtherType, Ethernet2Header, IpDscp, IpNumber, Ipv4Header, Ipv4Slice,
    UdpHeader, UdpSlice,
};

use crate::core::mac::MacAddr;

pub const ETHERNET_HEADER_LEN: usize = Ethernet2Header::LEN;
/// An IPv4 header without options, as built here.
pub const IPV4_HEADER_LEN: usize = Ipv4Header::MIN_LEN;
pub const UDP_HEADER_LEN: usize = UdpHeader::LEN;
/// Bytes in front of the UDP payload in a frame built by [`finish_udp4_frame`].
pub const UDP4_HEADERS_LEN: usize = ETHERNET_HEADER_LEN + IPV4_HEADER_LEN + UDP_HEADER_LEN;
/// Largest UDP payload an IPv4 packet can carry.
pub const MAX_UDP4_PAYLOAD: usize = u16::MAX as usize - IPV4_HEADER_LEN - UDP_HEADER_LEN;
/// TTL of built packets (the Linux default).
pub const TTL: u8 = 64;
pub const ETHERTYPE_IPV4: u16 = 0x0800;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("shorter than its headers say")]
    Truncated,
    #[error("bad IPv4 header")]
    BadIpHeader,
    #[error("IP fragment")]
    Fragment,
    #[error("not UDP")]
    NotUdp,
    #[error("bad UDP length")]
    BadUdpLength,
    #[error("payload too large for one datagram")]
    TooLong,
}

/// An Ethernet II frame, borrowed. VLAN tags are not looked into: the
/// frames this daemon sees and sends are untagged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EthernetFrame<'a> {
    pub dst: MacAddr,
    pub src: MacAddr,
    pub ethertype: u16,
    pub payload: &'a [u8],
}

/// Splits an Ethernet II frame into its header fields and payload.
pub fn parse_ethernet(frame: &[u8]) -> Result<EthernetFrame<'_>, FrameError> {
    let (h, payload) = Ethernet2Header::from_slice(frame).map_err(|_| FrameError::Truncated)?;
    Ok(EthernetFrame {
        dst: MacAddr(h.destination),
        src: MacAddr(h.source),
        ethertype: h.ether_type.0,
        payload,
    })
}

/// A UDP datagram carried in an IPv4 packet, borrowed from the packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Udp4Datagram<'a> {
    pub src: SocketAddrV4,
    pub dst: SocketAddrV4,
    pub payload: &'a [u8],
}

/// Parses an IPv4 packet (starting at the IP header, as NFQUEUE delivers it)
/// that carries one whole UDP datagram.
///
/// Checksums are not verified: the kernel has checked the IP header before
/// netfilter sees it, and a guest with checksum offload hands over UDP
/// datagrams whose checksum is not filled in yet.
pub fn parse_udp4(packet: &[u8]) -> Result<Udp4Datagram<'_>, FrameError> {
    let ip = Ipv4Slice::from_slice(packet).map_err(|e| match e {
        SliceError::Len(_) => FrameError::Truncated,
        SliceError::Header(_) => FrameError::BadIpHeader,
        // An authentication header: not the plain UDP a DHCP client sends.
        SliceError::Exts(_) => FrameError::NotUdp,
    })?;
    let header = ip.header();
    if header.protocol() != IpNumber::UDP {
        return Err(FrameError::NotUdp);
    }
    if header.is_fragmenting_payload() {
        return Err(FrameError::Fragment);
    }
    let udp = UdpSlice::from_slice(ip.payload().payload).map_err(|e| {
        if e.len_source == etherparse::LenSource::UdpHeaderLen {
            FrameError::BadUdpLength
        } else {
            FrameError::Truncated
        }
    })?;
    // etherparse takes a zero length field to mean "the rest of the packet";
    // over IPv4 it is simply invalid.
    if udp.length() < UDP_HEADER_LEN as u16 {
        return Err(FrameError::BadUdpLength);
    }
    Ok(Udp4Datagram {
        src: SocketAddrV4::new(header.source_addr(), udp.source_port()),
        dst: SocketAddrV4::new(header.destination_addr(), udp.destination_port()),
        payload: udp.payload(),
    })
}

/// Who a built Ethernet + IPv4 + UDP frame goes from and to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Udp4Addressing {
    pub src_mac: MacAddr,
    pub dst_mac: MacAddr,
    pub src: SocketAddrV4,
    pub dst: SocketAddrV4,
}

/// Builds a complete Ethernet II + IPv4 + UDP frame around `payload`, in one
/// allocation of the exact size.
pub fn udp4_frame(addr: &Udp4Addressing, payload: &[u8]) -> Result<Vec<u8>, FrameError> {
    if payload.len() > MAX_UDP4_PAYLOAD {
        return Err(FrameError::TooLong);
    }
    let mut frame = Vec::with_capacity(UDP4_HEADERS_LEN + payload.len());
    frame.resize(UDP4_HEADERS_LEN, 0);
    frame.extend_from_slice(payload);
    finish_udp4_frame(&mut frame, addr)?;
    Ok(frame)
}

/// Writes the Ethernet, IPv4 and UDP headers into the first
/// [`UDP4_HEADERS_LEN`] bytes of `frame`; the rest of `frame` is the UDP
/// payload. This lets an encoder write the payload straight into the final
/// buffer behind a placeholder instead of copying it.
///
/// IPv4: no options, DSCP 0, identification 0 and DF clear (as ISC dhcpd
/// sends its replies), TTL [`TTL`].
pub fn finish_udp4_frame(frame: &mut [u8], addr: &Udp4Addressing) -> Result<(), FrameError> {
    if frame.len() < UDP4_HEADERS_LEN {
        return Err(FrameError::Truncated);
    }
    let (headers, payload) = frame.split_at_mut(UDP4_HEADERS_LEN);
    if payload.len() > MAX_UDP4_PAYLOAD {
        return Err(FrameError::TooLong);
    }
    let udp_len = UDP_HEADER_LEN + payload.len();

    let eth = Ethernet2Header {
        source: addr.src_mac.0,
        destination: addr.dst_mac.0,
        ether_type: EtherType::IPV4,
    };
    let mut ip = Ipv4Header::new(
        udp_len as u16,
        TTL,
        IpNumber::UDP,
        addr.src.ip().octets(),
        addr.dst.ip().octets(),
    )
    .map_err(|_| FrameError::TooLong)?;
    ip.dscp = IpDscp::ZERO;
    ip.dont_fragment = false;
    ip.header_checksum = ip.calc_header_checksum();
    let udp = UdpHeader::with_ipv4_checksum(addr.src.port(), addr.dst.port(), &ip, payload)
        .map_err(|_| FrameError::TooLong)?;

    let (eth_bytes, rest) = headers.split_at_mut(ETHERNET_HEADER_LEN);
    let (ip_bytes, udp_bytes) = rest.split_at_mut(IPV4_HEADER_LEN);
    eth_bytes.copy_from_slice(&eth.to_bytes());
    ip_bytes.copy_from_slice(&ip.to_bytes());
    udp_bytes.copy_from_slice(&udp.to_bytes());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn addressing() -> Udp4Addressing {
        Udp4Addressing {
            src_mac: MacAddr([0x02, 0, 0, 0, 0, 1]),
            dst_mac: MacAddr([0xaa, 0x6b, 0x39, 0x22, 0x33, 0x44]),
            src: SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 1), 67),
            dst: SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 100), 68),
        }
    }

    /// The ones' complement sum over `data` (with the pseudo-header already
    /// folded in by the caller) must come out as all ones.
    fn ones_sum(data: &[u8], mut acc: u32) -> u16 {
        for c in data.chunks(2) {
            let w = if c.len() == 2 {
                u16::from_be_bytes([c[0], c[1]])
            } else {
                u16::from_be_bytes([c[0], 0])
            };
            acc += u32::from(w);
        }
        while acc > 0xffff {
            acc = (acc & 0xffff) + (acc >> 16);
        }
        acc as u16
    }

    #[test]
    fn builds_a_frame_with_valid_checksums() {
        let a = addressing();
        let payload = b"hello, odd-length payload";
        let f = udp4_frame(&a, payload).unwrap();
        assert_eq!(f.len(), UDP4_HEADERS_LEN + payload.len());
        assert_eq!(f.capacity(), f.len());

        // Ethernet.
        assert_eq!(&f[0..6], &a.dst_mac.0);
        assert_eq!(&f[6..12], &a.src_mac.0);
        assert_eq!(&f[12..14], &[0x08, 0x00]);

        // IPv4, checked by hand rather than by the library that built it.
        let ip = &f[14..34];
        assert_eq!(ip[0], 0x45);
        assert_eq!(ip[1], 0);
        assert_eq!(
            u16::from_be_bytes([ip[2], ip[3]]) as usize,
            20 + 8 + payload.len()
        );
        assert_eq!(&ip[4..8], &[0, 0, 0, 0], "id 0, no flags, offset 0");
        assert_eq!(ip[8], 64);
        assert_eq!(ip[9], 17);
        assert_eq!(&ip[12..16], &[192, 0, 2, 1]);
        assert_eq!(&ip[16..20], &[192, 0, 2, 100]);
        assert_eq!(ones_sum(ip, 0), 0xffff, "IPv4 header checksum");

        // UDP with its pseudo-header.
        let udp = &f[34..];
        assert_eq!(&udp[0..2], &67u16.to_be_bytes());
        assert_eq!(&udp[2..4], &68u16.to_be_bytes());
        assert_eq!(u16::from_be_bytes([udp[4], udp[5]]) as usize, udp.len());
        assert_ne!(&udp[6..8], &[0, 0]);
        let mut pseudo = 0u32;
        for w in [
            [192u8, 0],
            [2, 1],
            [192, 0],
            [2, 100],
            [0, 17],
            (udp.len() as u16).to_be_bytes(),
        ] {
            pseudo += u32::from(u16::from_be_bytes(w));
        }
        assert_eq!(ones_sum(udp, pseudo), 0xffff, "UDP checksum");
        assert_eq!(&udp[8..], payload);

        // And the parsers read back what was built.
        let eth = parse_ethernet(&f).unwrap();
        assert_eq!(eth.src, a.src_mac);
        assert_eq!(eth.dst, a.dst_mac);
        assert_eq!(eth.ethertype, ETHERTYPE_IPV4);
        let d = parse_udp4(eth.payload).unwrap();
        assert_eq!(d.src, a.src);
        assert_eq!(d.dst, a.dst);
        assert_eq!(d.payload, payload);
    }

    #[test]
    fn empty_and_maximal_payloads() {
        let a = addressing();
        let f = udp4_frame(&a, &[]).unwrap();
        assert_eq!(f.len(), UDP4_HEADERS_LEN);
        assert_eq!(parse_udp4(&f[14..]).unwrap().payload, &[] as &[u8]);

        let big = vec![0xa5; MAX_UDP4_PAYLOAD];
        let f = udp4_frame(&a, &big).unwrap();
        assert_eq!(&f[16..18], &[0xff, 0xff]);
        assert_eq!(
            parse_udp4(&f[14..]).unwrap().payload.len(),
            MAX_UDP4_PAYLOAD
        );

        let too_big = vec![0; MAX_UDP4_PAYLOAD + 1];
        assert_eq!(udp4_frame(&a, &too_big), Err(FrameError::TooLong));
        assert_eq!(
            finish_udp4_frame(&mut [0; UDP4_HEADERS_LEN - 1], &a),
            Err(FrameError::Truncated)
        );
    }

    #[test]
    fn finish_in_place_matches_copying_builder() {
        let a = addressing();
        let payload = [7u8; 300];
        let mut buf = vec![0xee; UDP4_HEADERS_LEN];
        buf.extend_from_slice(&payload);
        finish_udp4_frame(&mut buf, &a).unwrap();
        assert_eq!(buf, udp4_frame(&a, &payload).unwrap());
    }

    fn sample_packet() -> Vec<u8> {
        udp4_frame(&addressing(), b"0123456789").unwrap()[14..].to_vec()
    }

    #[test]
    fn refuses_bad_packets() {
        let p = sample_packet();
        assert!(parse_udp4(&p).is_ok());

        // Every truncation is refused, without panicking.
        for n in 0..p.len() {
            assert!(parse_udp4(&p[..n]).is_err(), "prefix {n}");
        }
        // Trailing bytes beyond the IP total length (link padding) are ignored.
        let mut padded = p.clone();
        padded.extend_from_slice(&[0; 6]);
        assert_eq!(parse_udp4(&padded).unwrap().payload, b"0123456789");

        let mut v6 = p.clone();
        v6[0] = 0x65;
        assert_eq!(parse_udp4(&v6), Err(FrameError::BadIpHeader));
        let mut short_ihl = p.clone();
        short_ihl[0] = 0x44;
        assert_eq!(parse_udp4(&short_ihl), Err(FrameError::BadIpHeader));

        let mut tcp = p.clone();
        tcp[9] = 6;
        assert_eq!(parse_udp4(&tcp), Err(FrameError::NotUdp));

        let mut mf = p.clone();
        mf[6] = 0x20;
        assert_eq!(parse_udp4(&mf), Err(FrameError::Fragment));
        let mut offset = p.clone();
        offset[7] = 1;
        assert_eq!(parse_udp4(&offset), Err(FrameError::Fragment));
        let mut df = p.clone();
        df[6] = 0x40;
        assert!(parse_udp4(&df).is_ok(), "DF alone is not a fragment");

        // IP total length larger than the packet, and smaller than the header.
        let mut long = p.clone();
        long[2..4].copy_from_slice(&(p.len() as u16 + 1).to_be_bytes());
        assert_eq!(parse_udp4(&long), Err(FrameError::Truncated));
        let mut tiny = p.clone();
        tiny[2..4].copy_from_slice(&19u16.to_be_bytes());
        assert_eq!(parse_udp4(&tiny), Err(FrameError::Truncated));

        // UDP length: zero, below the header, beyond the IP payload.
        for (len, err) in [
            (0u16, FrameError::BadUdpLength),
            (7, FrameError::BadUdpLength),
            (19, FrameError::Truncated),
        ] {
            let mut q = p.clone();
            q[24..26].copy_from_slice(&len.to_be_bytes());
            assert_eq!(parse_udp4(&q), Err(err), "udp length {len}");
        }
        // A UDP length shorter than the IP payload limits the payload.
        let mut q = p.clone();
        q[24..26].copy_from_slice(&12u16.to_be_bytes());
        assert_eq!(parse_udp4(&q).unwrap().payload, b"0123");

        assert_eq!(parse_ethernet(&[0; 13]), Err(FrameError::Truncated));
    }

    #[test]
    fn ip_options_are_skipped() {
        let p = sample_packet();
        let mut q = Vec::new();
        q.extend_from_slice(&p[..20]);
        q.extend_from_slice(&[1, 1, 1, 0]); // NOP NOP NOP EOL
        q.extend_from_slice(&p[20..]);
        q[0] = 0x46;
        let total = q.len() as u16;
        q[2..4].copy_from_slice(&total.to_be_bytes());
        let d = parse_udp4(&q).unwrap();
        assert_eq!(d.dst.port(), 68);
        assert_eq!(d.payload, b"0123456789");
    }
}
