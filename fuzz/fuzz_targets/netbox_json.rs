//! A Netbox answer body (3.x or 4.x) through every JSON reader of the
//! backend (`nfdhcpd::fuzzing::netbox_answer`): prefixes, interfaces and the
//! LAG rule, static and gateway lookups, the pool and its allocation rules,
//! custom fields, devices and VMs, merged config contexts.
//!
//! Input: one setup byte, then the body.
//!   bits 0-1  the client's MAC (one of the test data's)
//!   bits 2-4  origin of the request (picks the prefix)
//!   bits 5-6  the time (before, between and after the test data's expiries)
#![no_main]

use std::net::Ipv4Addr;
use std::time::{Duration, SystemTime};

use libfuzzer_sys::fuzz_target;
use nfdhcpd::core::mac::MacAddr;

/// MACs of `tests/data/netbox/`: a device, a LAG, a LAG member, a VM.
const MACS: [MacAddr; 4] = [
    MacAddr([0x14, 0x18, 0x77, 0xaa, 0xbb, 0x01]),
    MacAddr([0x3c, 0xfd, 0xfe, 0x00, 0x00, 0x01]),
    MacAddr([0x3c, 0xfd, 0xfe, 0x00, 0x00, 0x11]),
    MacAddr([0x52, 0x54, 0x00, 0x00, 0x00, 0x01]),
];
/// 2019, 2025, 2100.
const NOW: [u64; 4] = [1_550_000_000, 1_750_000_000, 4_102_444_800, 0];

fuzz_target!(|data: &[u8]| {
    let Some((&s, body)) = data.split_first() else {
        return;
    };
    let mac = MACS[usize::from(s & 3)];
    let origin = Ipv4Addr::new(192, 0, 2, 10 + 30 * ((s >> 2) & 7));
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(NOW[usize::from((s >> 5) & 3)]);
    nfdhcpd::fuzzing::netbox_answer(body, mac, origin, now);
});
