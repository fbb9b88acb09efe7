//! A datagram on the relay-mode UDP 67 socket through the whole pure path:
//! `relay4::parse`, `decide`, then `answer` with a backend result the input
//! describes, as the state thread does when the job comes back.
//!
//! Input: a 14-byte header, then the UDP payload.
//!   [0] settings: bit 0 authoritative, bit 1 server_ident set, bit 2
//!       domain, bit 3 sixty name servers, bit 4 a 250-byte domain, bit 5
//!       broadcast destination known, bit 6 its value
//!   [1] backend result (mod 8): 0-3 and 7 a lease, 4 no lease (why: [2]
//!       mod 4), 5 done, 6 an error
//!   [2] lease: bit 0 address from the job (else [4..8]), bit 1 gateway,
//!       bit 2 DNS servers, bit 3 boot options, bit 4 boot server address,
//!       bit 5 TFTP server name, bit 6 a long server name and boot file,
//!       bit 7 an infinite lease
//!   [3] prefix length of the lease's network (mod 33)
//!   [4..8] lease address
//!   [8..12] UDP source address, [12..14] UDP source port
#![no_main]

use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use nfdhcpd::backend::{BackendError, Boot, JobKind, Lease, LeaseKind, NoLease, Outcome};
use nfdhcpd::core::relay4::{self, RecvCtx, Settings, Step};
use nfdhcpd_fuzz::*;

const LOCAL: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);

/// Every settings byte, built once.
static SETTINGS: LazyLock<Vec<Settings>> = LazyLock::new(|| (0..=255).map(settings).collect());

/// The oversized parts of a lease, built once.
static MANY_DNS: LazyLock<Vec<Ipv4Addr>> = LazyLock::new(|| many_v4(70));
static LONG_NAME: LazyLock<String> = LazyLock::new(|| "t".repeat(300));
static LONG_FILE: LazyLock<String> =
    LazyLock::new(|| format!("http://192.0.2.69/{}", "f".repeat(400)));

fn settings(s: u8) -> Settings {
    Settings {
        server_ident: (s & 1 << 1 != 0).then_some(Ipv4Addr::new(192, 0, 2, 1)),
        authoritative: s & 1 != 0,
        lease_time: 3600,
        nameservers: if s & 1 << 3 != 0 {
            many_v4(60)
        } else {
            vec![Ipv4Addr::new(192, 0, 2, 53)]
        },
        domain: match (s & 1 << 2 != 0, s & 1 << 4 != 0) {
            (_, true) => Some("d".repeat(250)),
            (true, false) => Some("example.org".into()),
            _ => None,
        },
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((h, payload)) = split::<14>(data) else {
        return;
    };
    let req = match relay4::parse(payload) {
        Ok(r) => r,
        Err(_) => return,
    };
    let s = h[0];
    let settings = &SETTINGS[usize::from(s)];
    let ctx = RecvCtx {
        src: SocketAddrV4::new(
            Ipv4Addr::new(h[8], h[9], h[10], h[11]),
            u16::from_be_bytes([h[12], h[13]]),
        ),
        local: LOCAL,
        ifindex: 7,
    };
    let to_broadcast = (s & 1 << 5 != 0).then_some(s & 1 << 6 != 0);
    let _ = relay4::client_state(&req, to_broadcast);

    let (job, client) = match relay4::decide(&req, &ctx, settings) {
        Step::Ignore(_) => return,
        Step::Reply(out) => {
            check_out(&out, &req);
            return;
        }
        Step::Ask(job, client) => (job, client),
    };
    assert_eq!(client.mac, req.chaddr);

    let l = h[2];
    let addr = if l & 1 != 0 {
        match job {
            JobKind::Confirm { addr, .. }
            | JobKind::Inform { addr }
            | JobKind::Release { addr }
            | JobKind::Decline { addr }
            | JobKind::Withdraw { addr } => addr,
            JobKind::Offer => client.origin,
        }
    } else {
        Ipv4Addr::new(h[4], h[5], h[6], h[7])
    };
    let network = ipnet::Ipv4Net::new(addr, h[3] % 33).unwrap().trunc();
    let lease = Lease {
        addr,
        network,
        gateway: (l & 1 << 1 != 0).then(|| network.hosts().next().unwrap_or(addr)),
        dns: if l & 1 << 2 != 0 {
            MANY_DNS.clone()
        } else {
            Vec::new()
        },
        boot: (l & 1 << 3 != 0).then(|| Boot {
            server: (l & 1 << 4 != 0).then_some(Ipv4Addr::new(192, 0, 2, 69)),
            server_name: match (l & 1 << 5 != 0, l & 1 << 6 != 0) {
                (_, true) => Some(LONG_NAME.clone()),
                (true, false) => Some("192.0.2.69".into()),
                (false, false) => None,
            },
            file: if l & 1 << 6 != 0 {
                LONG_FILE.clone()
            } else {
                "pxelinux.0".into()
            },
        }),
        kind: LeaseKind::Dynamic,
        record: Some("id".into()),
        lease_secs: if l & 1 << 7 != 0 { u32::MAX } else { 3600 },
        recorded_until: None,
    };
    let outcome = match h[1] % 8 {
        4 => Ok(Outcome::NoLease(match l % 4 {
            0 => NoLease::NoPrefix,
            1 => NoLease::UnknownDevice,
            2 => NoLease::PoolExhausted,
            _ => NoLease::NotYours,
        })),
        5 => Ok(Outcome::Done),
        6 => Err(BackendError::Timeout),
        _ => Ok(Outcome::Lease(lease)),
    };
    if let Some(out) = relay4::answer(&req, &ctx, settings, &job, &outcome) {
        check_out(&out, &req);
    }
});

/// A reply is a BOOTREPLY to the requesting client, from the server
/// identifier, that fits a UDP datagram.
fn check_out(out: &relay4::Out, req: &relay4::Request) {
    let m = check_dhcp4(&out.payload);
    assert_eq!(m.xid(), req.xid);
    assert_eq!(m.chaddr()[..6], req.chaddr.0);
    assert!(out.payload.len() <= 65_507);
    // The relay gets back its option 82 as it sent it.
    if let Some(info) = &req.relay_info {
        assert!(
            out.payload.windows(info.len() + 2).any(|w| w[0] == 82
                && usize::from(w[1]) == info.len().min(255)
                && w.ends_with(info))
                || info.len() > 255
        );
    }
}
