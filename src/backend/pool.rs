//! Pure allocation rules over the address records a backend read: which
//! address a client gets, and whether a requested address is the client's.

use std::net::Ipv4Addr;
use std::time::SystemTime;

use ipnet::Ipv4Net;

use crate::core::mac::MacAddr;

/// One IP address object of the prefix, as the backend read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub id: String,
    pub addr: Ipv4Addr,
    /// Type `dhcp`: the daemon's own.
    pub dynamic: bool,
    /// `pydhcp_mac`.
    pub mac: Option<MacAddr>,
    /// `pydhcp_expire`; None = never set.
    pub expire: Option<SystemTime>,
    /// MACs of the device interfaces the address is assigned to.
    pub interface_macs: Vec<MacAddr>,
}

impl Record {
    fn expired(&self, now: SystemTime) -> bool {
        self.expire.is_none_or(|e| e <= now)
    }
}

/// The addresses a prefix hands out: network + reserved .. broadcast - 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pool {
    pub network: Ipv4Net,
    pub reserved: u32,
}

impl Pool {
    pub fn first(&self) -> Option<Ipv4Addr> {
        let first = u32::from(self.network.network()).checked_add(self.reserved)?;
        (first <= u32::from(self.last()?)).then(|| Ipv4Addr::from(first))
    }

    pub fn last(&self) -> Option<Ipv4Addr> {
        let b = u32::from(self.network.broadcast());
        if self.network.prefix_len() >= 31 {
            return None;
        }
        Some(Ipv4Addr::from(b - 1))
    }

    pub fn contains(&self, a: Ipv4Addr) -> bool {
        match (self.first(), self.last()) {
            (Some(f), Some(l)) => a >= f && a <= l,
            _ => false,
        }
    }

    /// The conventional gateway: network + 1.
    pub fn gateway(&self) -> Option<Ipv4Addr> {
        if self.network.prefix_len() >= 31 {
            return None;
        }
        Some(Ipv4Addr::from(u32::from(self.network.network()) + 1))
    }
}

/// Where a client's address comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Choice {
    /// Assigned to the client's device interface: lease it as it is.
    Static(Record),
    /// Another type whose pydhcp_mac is the client's: lease it, never modify it.
    Permanent(Record),
    /// A dhcp record already carrying the client's MAC (live or expired).
    Own(Record),
    /// No record: create one.
    Free(Ipv4Addr),
    /// Another client's dhcp record, expired longest ago: take it over.
    Reuse(Record),
    Exhausted,
}

fn own(records: &[Record], mac: MacAddr) -> Option<Choice> {
    if let Some(r) = records.iter().find(|r| r.interface_macs.contains(&mac)) {
        return Some(Choice::Static(r.clone()));
    }
    if let Some(r) = records.iter().find(|r| !r.dynamic && r.mac == Some(mac)) {
        return Some(Choice::Permanent(r.clone()));
    }
    // Several dhcp records of one MAC (a crash between create and renew): the
    // newest expiry is the one the client knows.
    records
        .iter()
        .filter(|r| r.dynamic && r.mac == Some(mac))
        .max_by_key(|r| r.expire)
        .map(|r| Choice::Own(r.clone()))
}

/// The address for a DISCOVER: the client's own, else the lowest free one in
/// the pool, else the dhcp record that expired longest ago. `skip` holds
/// addresses that just lost a race to another server.
pub fn choose(
    records: &[Record],
    pool: &Pool,
    mac: MacAddr,
    now: SystemTime,
    skip: &[Ipv4Addr],
) -> Choice {
    if let Some(c) = own(records, mac) {
        match &c {
            Choice::Own(r) if skip.contains(&r.addr) => {}
            _ => return c,
        }
    }
    let (Some(first), Some(last)) = (pool.first(), pool.last()) else {
        return Choice::Exhausted;
    };
    let mut used: Vec<u32> = records.iter().map(|r| u32::from(r.addr)).collect();
    used.extend(skip.iter().map(|a| u32::from(*a)));
    used.sort_unstable();
    let mut cand = u32::from(first);
    for u in used {
        if u < cand {
            continue;
        }
        if u > cand {
            break;
        }
        cand += 1;
    }
    if cand <= u32::from(last) {
        return Choice::Free(Ipv4Addr::from(cand));
    }
    records
        .iter()
        .filter(|r| r.dynamic && r.expired(now) && pool.contains(r.addr) && !skip.contains(&r.addr))
        .min_by_key(|r| r.expire)
        .map(|r| Choice::Reuse(r.clone()))
        .unwrap_or(Choice::Exhausted)
}

/// The client already has an address of its own that another one must not
/// duplicate: a static or permanent one, or a dhcp lease still running.
fn holds_elsewhere(records: &[Record], mac: MacAddr, now: SystemTime) -> bool {
    match own(records, mac) {
        Some(Choice::Static(_)) | Some(Choice::Permanent(_)) => true,
        Some(Choice::Own(r)) => !r.expired(now),
        _ => false,
    }
}

/// Whether `addr` may be confirmed to `mac` (REQUEST). `Free` means no record
/// holds it and it lies in the pool: the client may have it (after the record
/// was lost); `Reuse` means an expired dhcp record of another client holds it.
pub fn confirm(
    records: &[Record],
    pool: &Pool,
    mac: MacAddr,
    addr: Ipv4Addr,
    now: SystemTime,
) -> Option<Choice> {
    let holder = records.iter().find(|r| r.addr == addr);
    match holder {
        Some(r) if r.interface_macs.contains(&mac) => Some(Choice::Static(r.clone())),
        Some(r) if !r.dynamic && r.mac == Some(mac) => Some(Choice::Permanent(r.clone())),
        Some(r) if r.dynamic && r.mac == Some(mac) => Some(Choice::Own(r.clone())),
        Some(r) if r.dynamic && r.expired(now) && pool.contains(addr) => {
            (!holds_elsewhere(records, mac, now)).then(|| Choice::Reuse(r.clone()))
        }
        Some(_) => None,
        None if pool.contains(addr) => {
            (!holds_elsewhere(records, mac, now)).then_some(Choice::Free(addr))
        }
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn t(s: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + s)
    }
    fn mac(n: u8) -> MacAddr {
        MacAddr([0x14, 0x18, 0x77, 0, 0, n])
    }
    fn ip(n: u8) -> Ipv4Addr {
        Ipv4Addr::new(192, 0, 2, n)
    }
    fn pool() -> Pool {
        Pool {
            network: "192.0.2.0/24".parse().unwrap(),
            reserved: 5,
        }
    }
    fn dynrec(n: u8, m: u8, exp: u64) -> Record {
        Record {
            id: format!("id{n}"),
            addr: ip(n),
            dynamic: true,
            mac: Some(mac(m)),
            expire: Some(t(exp)),
            interface_macs: vec![],
        }
    }

    #[test]
    fn pool_bounds() {
        let p = pool();
        assert_eq!(p.first(), Some(ip(5)));
        assert_eq!(p.last(), Some(ip(254)));
        assert_eq!(p.gateway(), Some(ip(1)));
        assert!(p.contains(ip(5)) && p.contains(ip(254)));
        assert!(!p.contains(ip(4)) && !p.contains(ip(255)));
        let tiny = Pool {
            network: "192.0.2.0/29".parse().unwrap(),
            reserved: 6,
        };
        assert_eq!(tiny.first(), Some(ip(6)));
        let none = Pool {
            network: "192.0.2.0/29".parse().unwrap(),
            reserved: 7,
        };
        assert_eq!(none.first(), None);
        let p31 = Pool {
            network: "192.0.2.0/31".parse().unwrap(),
            reserved: 0,
        };
        assert_eq!(p31.last(), None);
    }

    #[test]
    fn first_client_gets_network_plus_reserved_then_next() {
        assert_eq!(choose(&[], &pool(), mac(1), t(0), &[]), Choice::Free(ip(5)));
        let recs = vec![dynrec(5, 1, 100)];
        assert_eq!(
            choose(&recs, &pool(), mac(2), t(0), &[]),
            Choice::Free(ip(6))
        );
        // Gaps are filled lowest first.
        let recs = vec![dynrec(5, 1, 100), dynrec(7, 3, 100)];
        assert_eq!(
            choose(&recs, &pool(), mac(2), t(0), &[]),
            Choice::Free(ip(6))
        );
        // A lost race moves on to the next address.
        assert_eq!(
            choose(&recs, &pool(), mac(2), t(0), &[ip(6)]),
            Choice::Free(ip(8))
        );
    }

    #[test]
    fn own_address_first_static_over_permanent_over_dynamic() {
        let mut stat = dynrec(50, 9, 0);
        stat.dynamic = false;
        stat.mac = None;
        stat.interface_macs = vec![mac(1)];
        let mut perm = dynrec(60, 1, 0);
        perm.dynamic = false;
        let dynl = dynrec(70, 1, 100);
        let all = vec![dynl.clone(), perm.clone(), stat.clone()];
        assert_eq!(
            choose(&all, &pool(), mac(1), t(0), &[]),
            Choice::Static(stat)
        );
        let two = vec![dynl.clone(), perm.clone()];
        assert_eq!(
            choose(&two, &pool(), mac(1), t(0), &[]),
            Choice::Permanent(perm)
        );
        // Expired but never reused: still the client's.
        assert_eq!(
            choose(std::slice::from_ref(&dynl), &pool(), mac(1), t(500), &[]),
            Choice::Own(dynl)
        );
    }

    #[test]
    fn reuse_longest_expired_when_full() {
        let p = Pool {
            network: "192.0.2.0/29".parse().unwrap(),
            reserved: 5,
        };
        // Pool is .5 and .6.
        let recs = vec![dynrec(5, 1, 300), dynrec(6, 2, 200)];
        assert_eq!(choose(&recs, &p, mac(3), t(100), &[]), Choice::Exhausted);
        assert_eq!(
            choose(&recs, &p, mac(3), t(400), &[]),
            Choice::Reuse(dynrec(6, 2, 200))
        );
        let mut perm = dynrec(6, 2, 0);
        perm.dynamic = false;
        perm.expire = None;
        let recs = vec![dynrec(5, 1, 300), perm];
        // Only dhcp records are ever taken over.
        assert_eq!(
            choose(&recs, &p, mac(3), t(400), &[]),
            Choice::Reuse(dynrec(5, 1, 300))
        );
    }

    #[test]
    fn confirm_rules() {
        let recs = vec![dynrec(5, 1, 100), dynrec(6, 2, 50)];
        assert_eq!(
            confirm(&recs, &pool(), mac(1), ip(5), t(0)),
            Some(Choice::Own(dynrec(5, 1, 100)))
        );
        // Someone else's live lease: no.
        assert_eq!(confirm(&recs, &pool(), mac(3), ip(5), t(0)), None);
        // Someone else's expired lease: may be taken over.
        assert_eq!(
            confirm(&recs, &pool(), mac(3), ip(6), t(60)),
            Some(Choice::Reuse(dynrec(6, 2, 50)))
        );
        // Unrecorded address in the pool: yes; outside the pool: no.
        assert_eq!(
            confirm(&recs, &pool(), mac(3), ip(9), t(0)),
            Some(Choice::Free(ip(9)))
        );
        assert_eq!(confirm(&recs, &pool(), mac(3), ip(2), t(0)), None);
        assert_eq!(
            confirm(&recs, &pool(), mac(3), Ipv4Addr::new(198, 51, 100, 7), t(0)),
            None
        );
        // A client whose lease still runs may not take a second address;
        // once it has expired, it may.
        let recs = vec![dynrec(5, 1, 100)];
        assert_eq!(confirm(&recs, &pool(), mac(1), ip(9), t(0)), None);
        assert_eq!(
            confirm(&recs, &pool(), mac(1), ip(9), t(200)),
            Some(Choice::Free(ip(9)))
        );
        let recs = vec![dynrec(5, 1, 100), dynrec(6, 2, 50)];
        assert_eq!(confirm(&recs, &pool(), mac(1), ip(6), t(60)), None);
        // A client with a static address may not take another.
        let mut stat = dynrec(50, 9, 0);
        stat.dynamic = false;
        stat.interface_macs = vec![mac(3)];
        let recs = vec![stat];
        assert_eq!(confirm(&recs, &pool(), mac(3), ip(9), t(0)), None);
    }
}
