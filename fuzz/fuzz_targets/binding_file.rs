//! A binding file (written by the VM manager into `datapath`, read by the
//! inotify thread) through `binding::parse`; a binding that parses is then
//! served: DHCPv4, DHCPv6, RS, NS and the periodic RA for it must all be
//! answered without a panic and in well-formed frames.
//!
//! Input: one byte n, then the file name (n mod 32 bytes, lossy UTF-8), then
//! the file's bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nfdhcpd::core::binding;
use nfdhcpd_fuzz::*;

fuzz_target!(|data: &[u8]| {
    let Some((&[n], rest)) = split::<1>(data) else {
        return;
    };
    let n = usize::from(n % 32).min(rest.len());
    let (name, bytes) = rest.split_at(n);
    let name = String::from_utf8_lossy(name);
    let _ = binding::is_ignored_name(&name);
    let Ok(b) = binding::parse(&name, bytes) else {
        return;
    };
    assert_eq!(b.name, name);
    answer_all(&b, &dhcp4_params(), &dhcp6_params(), &ndp_params());
});
