//! The audit after a step, from Nautobot's own records (every page): each
//! ACKed client's address is the `dhcp` record whose `pydhcp_mac` is that
//! client's MAC, live, with the expiry the ACK gave; no address is
//! recorded twice or for two MACs; no MAC has two live records.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use serde_json::Value;

use super::common::relay::{fmt_mac, parse_utc, unix_now, Api};
use super::pool::Pool;
use crate::Res;

/// Problems listed at most in the audit line.
const SHOWN: usize = 5;

pub struct Audit {
    step: String,
    records: usize,
    acked: usize,
    /// Records that are no live lease: offer holds that ran out, released
    /// leases.
    idle: usize,
    problems: Vec<String>,
}

struct Rec<'a> {
    addr: String,
    mac: String,
    expire: Option<i64>,
    raw: &'a Value,
}

/// Checks the records of `pool` against `acked` (MAC, address). With
/// `window` = (first REQUEST, last ACK) of the step in Unix seconds, each
/// ACKed record must expire `lease` seconds after a moment in it.
pub fn audit(
    api: &Api,
    pool: &Pool,
    step: &str,
    acked: &[([u8; 6], Ipv4Addr)],
    lease: u32,
    window: Option<(i64, i64)>,
) -> Res<Audit> {
    let records = api.try_list(&format!(
        "/api/ipam/ip-addresses/?prefix={}&type=dhcp",
        pool.cidr()
    ))?;
    let (problems, idle) = problems(&records, acked, lease, window, unix_now());
    Ok(Audit {
        step: step.to_owned(),
        records: records.len(),
        acked: acked.len(),
        idle,
        problems,
    })
}

/// What is wrong with `records` (the `dhcp` records, as the REST API
/// lists them) at `now`, and how many of them are no live lease.
fn problems(
    records: &[Value],
    acked: &[([u8; 6], Ipv4Addr)],
    lease: u32,
    window: Option<(i64, i64)>,
    now: i64,
) -> (Vec<String>, usize) {
    let recs: Vec<Rec> = records
        .iter()
        .map(|r| Rec {
            addr: r["address"]
                .as_str()
                .and_then(|a| a.split('/').next())
                .unwrap_or_default()
                .to_owned(),
            mac: r["custom_fields"]["pydhcp_mac"]
                .as_str()
                .unwrap_or_default()
                .to_ascii_lowercase(),
            expire: r["custom_fields"]["pydhcp_expire"]
                .as_str()
                .and_then(parse_utc),
            raw: r,
        })
        .collect();
    let mut problems = Vec::new();
    let mut by_addr: HashMap<&str, Vec<&Rec>> = HashMap::new();
    let mut live_by_mac: HashMap<&str, Vec<&str>> = HashMap::new();
    let mut idle = 0;
    for r in &recs {
        by_addr.entry(&r.addr).or_default().push(r);
        // An offer hold lasts 10 s, a lease far longer.
        if r.expire.is_some_and(|e| e > now + 60) && !r.mac.is_empty() {
            live_by_mac.entry(&r.mac).or_default().push(&r.addr);
        } else {
            idle += 1;
        }
    }
    for (addr, rs) in &by_addr {
        if rs.len() > 1 {
            let macs: Vec<&str> = rs.iter().map(|r| r.mac.as_str()).collect();
            problems.push(format!("{addr} recorded {} times, MACs {macs:?}", rs.len()));
        }
    }
    for (mac, addrs) in &live_by_mac {
        if addrs.len() > 1 {
            problems.push(format!("{mac} has {} live records {addrs:?}", addrs.len()));
        }
    }
    let lease = i64::from(lease);
    for (mac, addr) in acked {
        let m = fmt_mac(mac);
        let a = addr.to_string();
        let Some(r) = by_addr.get(a.as_str()).and_then(|rs| rs.first()) else {
            problems.push(format!("{m}: ACKed {a}, which has no dhcp record"));
            continue;
        };
        if r.mac != m {
            problems.push(format!(
                "{m}: ACKed {a}, whose record has pydhcp_mac {:?}",
                r.mac
            ));
            continue;
        }
        match (r.expire, window) {
            (None, _) => problems.push(format!("{m}: {a} has no pydhcp_expire: {}", r.raw)),
            (Some(e), _) if e <= now + 60 => problems.push(format!(
                "{m}: {a} is no live lease (expires {e}, now {now})"
            )),
            // An OFFER writes the lease from as late as its REQUEST may
            // come: up to 10 s past the ACK.
            (Some(e), Some((from, to))) if e < from + lease - 5 || e > to + lease + 15 => problems
                .push(format!(
                    "{m}: {a} expires at {e}, not {lease} s after its ACK ({from}..{to})"
                )),
            _ => {}
        }
    }
    problems.sort();
    (problems, idle)
}

impl Audit {
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }

    /// One line for the report; the first problems follow on their own.
    pub fn print(&self) {
        let what = format!(
            "audit after the {} (Nautobot, {} dhcp records, {} not live): {} ACKed clients",
            self.step, self.records, self.idle, self.acked
        );
        if self.ok() {
            println!(
                "           {what}: OK (each the live record with its MAC; no address with two \
                 MACs; no MAC with two live records)"
            );
            return;
        }
        println!(
            "           {what}: MISMATCH, {} problems",
            self.problems.len()
        );
        for p in self.problems.iter().take(SHOWN) {
            println!("             {p}");
        }
    }

    /// The error the run ends with.
    pub fn error(&self) -> String {
        format!(
            "the audit after the {} found {} problems (first: {})",
            self.step,
            self.problems.len(),
            self.problems.first().map_or("", String::as_str)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: i64 = 1_800_000_000;
    const A: [u8; 6] = [2, 0xbb, 0xb2, 0, 0, 1];
    const B: [u8; 6] = [2, 0xbb, 0xb2, 0, 0, 2];

    fn rec(addr: &str, mac: &str, expire: i64) -> Value {
        let t = |s: i64| {
            // Days and seconds of the day, as the daemon writes them.
            let (d, r) = (s.div_euclid(86_400), s.rem_euclid(86_400));
            let (y, m, dd) = civil(d);
            format!(
                "{y:04}-{m:02}-{dd:02}T{:02}:{:02}:{:02}Z",
                r / 3600,
                r / 60 % 60,
                r % 60
            )
        };
        json!({
            "address": format!("{addr}/22"),
            "type": "dhcp",
            "custom_fields": {"pydhcp_mac": mac, "pydhcp_expire": t(expire)},
        })
    }

    /// Civil date of a day number (H. Hinnant).
    fn civil(z: i64) -> (i64, i64, i64) {
        let z = z + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let d = doy - (153 * mp + 2) / 5 + 1;
        let m = if mp < 10 { mp + 3 } else { mp - 9 };
        (yoe + era * 400 + i64::from(m <= 2), m, d)
    }

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn records_that_match_the_acks_pass() {
        let records = [
            rec("192.0.0.5", "02:BB:B2:00:00:01", NOW + 3600),
            rec("192.0.0.6", "02:bb:b2:00:00:02", NOW + 3600),
            // A spare offer hold that ran out.
            rec("192.0.0.7", "02:bb:b2:00:00:02", NOW - 5),
        ];
        let acked = [(A, ip("192.0.0.5")), (B, ip("192.0.0.6"))];
        let (p, idle) = problems(&records, &acked, 3600, Some((NOW - 2, NOW)), NOW);
        assert_eq!(p, Vec::<String>::new());
        assert_eq!(idle, 1);
    }

    #[test]
    fn each_kind_of_mismatch_is_found() {
        let records = [
            // B's address, recorded for A.
            rec("192.0.0.6", "02:bb:b2:00:00:01", NOW + 3600),
            // A second live record of A.
            rec("192.0.0.8", "02:bb:b2:00:00:01", NOW + 3600),
            // One address twice.
            rec("192.0.0.9", "02:bb:b2:00:00:03", NOW + 3600),
            rec("192.0.0.9", "02:bb:b2:00:00:04", NOW + 3600),
        ];
        // A's address has no record at all.
        let acked = [(A, ip("192.0.0.5")), (B, ip("192.0.0.6"))];
        let (p, _) = problems(&records, &acked, 3600, None, NOW);
        assert_eq!(p.len(), 4, "{p:#?}");
        assert!(p
            .iter()
            .any(|l| l.contains("192.0.0.5, which has no dhcp record")));
        assert!(p.iter().any(|l| l.contains("whose record has pydhcp_mac")));
        assert!(p.iter().any(|l| l.contains("has 2 live records")));
        assert!(p.iter().any(|l| l.contains("192.0.0.9 recorded 2 times")));
    }

    #[test]
    fn an_acked_lease_must_be_live_with_the_acked_expiry() {
        let records = [
            rec("192.0.0.5", "02:bb:b2:00:00:01", NOW - 1),
            rec("192.0.0.6", "02:bb:b2:00:00:02", NOW + 600),
        ];
        let acked = [(A, ip("192.0.0.5")), (B, ip("192.0.0.6"))];
        let (p, _) = problems(&records, &acked, 3600, Some((NOW - 2, NOW)), NOW);
        assert_eq!(p.len(), 2, "{p:#?}");
        assert!(p[0].contains("is no live lease"), "{p:#?}");
        assert!(p[1].contains("not 3600 s after its ACK"), "{p:#?}");
    }
}
