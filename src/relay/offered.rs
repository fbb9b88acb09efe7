//! Offers whose record the backend wrote for the whole lease (so that the
//! REQUEST that follows costs no call), until the client asks this server
//! for something. An offer the client does not take (it asks another
//! server, or its hold runs out) is handed back for withdrawal: a RELEASE
//! of the record, so that the address is free again at once.

use std::collections::{HashMap, VecDeque};
use std::net::Ipv4Addr;
use std::time::SystemTime;

use crate::backend::Known;
use crate::core::mac::MacAddr;

/// Offers tracked at most; beyond it the oldest are handed back early.
const MAX_OFFERED: usize = 65_536;

/// An offer to withdraw: the record it wrote and the address that picked
/// its subnet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unclaimed {
    pub mac: MacAddr,
    pub known: Known,
    pub origin: Ipv4Addr,
}

#[derive(Default)]
pub struct Offered {
    map: HashMap<MacAddr, (Known, Ipv4Addr, SystemTime)>,
    /// In the order the holds run out (they all last as long).
    order: VecDeque<(SystemTime, MacAddr)>,
}

impl Offered {
    /// The OFFER to `mac` wrote `known`'s record; its hold runs out at `until`.
    /// Returns the offer it replaces or pushes out, to withdraw.
    pub fn add(
        &mut self,
        mac: MacAddr,
        known: Known,
        origin: Ipv4Addr,
        until: SystemTime,
    ) -> Option<Unclaimed> {
        let mut out = None;
        if let Some((old, o, _)) = self.map.remove(&mac) {
            // A new record for the same client: the old one is not used.
            if old.record != known.record {
                out = Some(Unclaimed {
                    mac,
                    known: old,
                    origin: o,
                });
            }
        } else if self.map.len() >= MAX_OFFERED {
            while let Some((_, m)) = self.order.pop_front() {
                if let Some((k, o, _)) = self.map.remove(&m) {
                    out = Some(Unclaimed {
                        mac: m,
                        known: k,
                        origin: o,
                    });
                    break;
                }
            }
        }
        self.map.insert(mac, (known, origin, until));
        self.order.push_back((until, mac));
        out
    }

    /// The client asked a server for something: its offer here is no
    /// longer tracked, and is to withdraw unless it is what it asked for.
    pub fn declined(&mut self, mac: MacAddr) -> Option<Unclaimed> {
        let (known, origin, _) = self.map.remove(&mac)?;
        Some(Unclaimed { mac, known, origin })
    }

    /// The offers whose hold ran out by `now`, unasked for.
    pub fn expired(&mut self, now: SystemTime) -> Vec<Unclaimed> {
        let mut out = Vec::new();
        while let Some(&(until, mac)) = self.order.front() {
            if until > now {
                break;
            }
            self.order.pop_front();
            // Only if this is still the client's current offer.
            if self.map.get(&mac).is_some_and(|(_, _, u)| *u == until) {
                if let Some((known, origin, _)) = self.map.remove(&mac) {
                    out.push(Unclaimed { mac, known, origin });
                }
            }
        }
        // Entries removed early leave their place in `order` behind.
        if self.order.len() > 2 * self.map.len() + 1024 {
            let map = &self.map;
            self.order
                .retain(|(u, m)| map.get(m).is_some_and(|(_, _, v)| v == u));
        }
        out
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{Lease, LeaseKind};
    use std::time::{Duration, UNIX_EPOCH};

    fn known(n: u8) -> Known {
        let addr = Ipv4Addr::new(192, 0, 2, n);
        Known {
            addr,
            kind: LeaseKind::Dynamic,
            record: Some(format!("rec-{n}")),
            lease: Lease {
                addr,
                network: "192.0.2.0/24".parse().unwrap(),
                gateway: None,
                dns: vec![],
                boot: None,
                kind: LeaseKind::Dynamic,
                record: Some(format!("rec-{n}")),
                lease_secs: 3600,
                recorded_until: None,
            },
        }
    }
    fn mac(n: u8) -> MacAddr {
        MacAddr([2, 0, 0, 0, 0, n])
    }
    fn at(s: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(s)
    }
    const GI: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);

    #[test]
    fn declined_and_run_out() {
        let mut o = Offered::default();
        assert_eq!(o.add(mac(1), known(10), GI, at(10)), None);
        assert_eq!(o.add(mac(2), known(11), GI, at(11)), None);
        assert_eq!(o.add(mac(3), known(12), GI, at(12)), None);
        assert!(o.declined(mac(1)).is_some());
        let d = o.declined(mac(2)).unwrap();
        assert_eq!((d.mac, d.known.addr), (mac(2), known(11).addr));
        assert_eq!(o.declined(mac(2)), None, "only once");
        assert!(o.expired(at(11)).is_empty(), "declined ones are gone");
        let e = o.expired(at(12));
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].known.record.as_deref(), Some("rec-12"));
        assert!(o.is_empty());
    }

    #[test]
    fn a_second_offer_of_another_record_hands_back_the_first() {
        let mut o = Offered::default();
        o.add(mac(1), known(10), GI, at(10));
        // The same record again (a retransmitted DISCOVER): nothing to withdraw.
        assert_eq!(o.add(mac(1), known(10), GI, at(15)), None);
        assert!(o.expired(at(10)).is_empty(), "the later hold counts");
        let old = o.add(mac(1), known(20), GI, at(20)).unwrap();
        assert_eq!(old.known.addr, known(10).addr);
        assert_eq!(o.len(), 1);
        assert_eq!(o.expired(at(20)).len(), 1);
    }
}
