//! A Nautobot answer (HTTP status and body) through every JSON reader of the
//! backend (`nfdhcpd::fuzzing::nautobot_answer`): GraphQL snapshot, REST
//! lists of custom fields, prefixes, devices and addresses, the duplicate
//! check of a failed create, and the pool's choice over the records read.
//!
//! Input: one setup byte, then the body.
//!   bits 0-2  status: 200, 201, 400, 404, 500, 403, 405, 502
//!   bit 3     the query asked for the device
//!   bit 4     the query asked for the prefix's addresses
//!   bits 5-7  origin of the request (picks the prefix)
#![no_main]

use std::net::Ipv4Addr;
use std::time::{Duration, SystemTime};

use libfuzzer_sys::fuzz_target;
use nfdhcpd::core::mac::MacAddr;

/// The MAC of the test device's BMC in `tests/data/nautobot/`.
const MAC: MacAddr = MacAddr([0x14, 0x18, 0x77, 0xaa, 0xbb, 0x01]);
const STATUS: [u16; 8] = [200, 201, 400, 404, 500, 403, 405, 502];

fuzz_target!(|data: &[u8]| {
    let Some((&s, body)) = data.split_first() else {
        return;
    };
    let origin = Ipv4Addr::new(192, 0, 2, 10 + 30 * (s >> 5));
    // Around the expiry dates of the test data (2026/2027).
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_790_000_000);
    nfdhcpd::fuzzing::nautobot_answer(
        STATUS[usize::from(s & 7)],
        body,
        s & 1 << 3 != 0,
        s & 1 << 4 != 0,
        MAC,
        origin,
        now,
    );
});
