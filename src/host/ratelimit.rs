//! Token buckets per interface and per client MAC, so that one guest
//! flooding a queue costs the others nothing but the drop of its packets.
//! Pure: the time is passed in.

use std::collections::HashMap;
use std::time::Instant;

use crate::core::mac::MacAddr;

/// Clients tracked at most per table. A flood of made-up MACs is bounded
/// by the interface limit; the table only has to remember the busy ones.
const MAX_TRACKED: usize = 4096;

/// Requests per second; 0 turns a limit off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub interface_rate: u32,
    pub mac_rate: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            interface_rate: 100,
            mac_rate: 20,
        }
    }
}

/// Which limit a request ran into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limited {
    Interface,
    Mac,
}

impl Limited {
    pub fn name(self) -> &'static str {
        match self {
            Limited::Interface => "rate_limit_interface",
            Limited::Mac => "rate_limit_mac",
        }
    }
}

/// Holds up to one second's worth of requests.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    last: Instant,
    /// When a request last passed the full check (its interface had a binding).
    checked: Instant,
}

impl Bucket {
    fn full(rate: u32, now: Instant) -> Bucket {
        Bucket {
            tokens: f64::from(rate),
            last: now,
            checked: now,
        }
    }

    /// Empty, for a bucket of an interface that had a binding a moment ago.
    fn empty_now(&mut self, rate: u32, now: Instant) -> bool {
        if now.saturating_duration_since(self.checked).as_secs_f64() >= 1.0 {
            return false;
        }
        self.refill(rate, now);
        self.tokens < 1.0
    }

    fn refill(&mut self, rate: u32, now: Instant) {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + dt * f64::from(rate)).min(f64::from(rate));
        self.last = now;
    }
}

fn bucket<K: std::hash::Hash + Eq + Copy>(
    table: &mut HashMap<K, Bucket>,
    key: K,
    rate: u32,
    now: Instant,
) -> Option<&mut Bucket> {
    if !table.contains_key(&key) && table.len() >= MAX_TRACKED {
        // Buckets idle for a second are full again: forgetting them changes nothing.
        table.retain(|_, b| now.saturating_duration_since(b.last).as_secs_f64() < 1.0);
        if table.len() >= MAX_TRACKED {
            return None;
        }
    }
    let b = table.entry(key).or_insert_with(|| Bucket::full(rate, now));
    b.refill(rate, now);
    b.checked = now;
    Some(b)
}

#[derive(Debug, Default)]
pub struct Limiter {
    limits: Limits,
    interfaces: HashMap<u32, Bucket>,
    macs: HashMap<(u32, MacAddr), Bucket>,
}

impl Limiter {
    pub fn new(limits: Limits) -> Limiter {
        Limiter {
            limits,
            ..Limiter::default()
        }
    }

    /// A request the limits refuse anyway, told before the interface's name
    /// and binding are looked up, so that a flood costs least. Only for
    /// interfaces that had a binding in the last second; the rest go the
    /// whole way.
    pub fn over(&mut self, ifindex: u32, mac: Option<MacAddr>, now: Instant) -> Option<Limited> {
        let Limits {
            interface_rate,
            mac_rate,
        } = self.limits;
        if interface_rate > 0
            && self
                .interfaces
                .get_mut(&ifindex)
                .is_some_and(|b| b.empty_now(interface_rate, now))
        {
            return Some(Limited::Interface);
        }
        if let (true, Some(m)) = (mac_rate > 0, mac) {
            if self
                .macs
                .get_mut(&(ifindex, m))
                .is_some_and(|b| b.empty_now(mac_rate, now))
            {
                return Some(Limited::Mac);
            }
        }
        None
    }

    /// Takes a token from the interface's and the client's bucket, or
    /// neither when one of them is empty.
    pub fn allow(
        &mut self,
        ifindex: u32,
        mac: Option<MacAddr>,
        now: Instant,
    ) -> Result<(), Limited> {
        let Limits {
            interface_rate,
            mac_rate,
        } = self.limits;
        let iface = match interface_rate {
            0 => None,
            r => bucket(&mut self.interfaces, ifindex, r, now),
        };
        if iface.as_ref().is_some_and(|b| b.tokens < 1.0) {
            return Err(Limited::Interface);
        }
        let client = match (mac_rate, mac) {
            (0, _) | (_, None) => None,
            (r, Some(m)) => bucket(&mut self.macs, (ifindex, m), r, now),
        };
        if let Some(c) = client {
            if c.tokens < 1.0 {
                return Err(Limited::Mac);
            }
            c.tokens -= 1.0;
        }
        if let Some(b) = iface {
            b.tokens -= 1.0;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn mac(n: u8) -> Option<MacAddr> {
        MacAddr::from_slice(&[2, 0, 0, 0, 0, n])
    }

    #[test]
    fn mac_limit_then_refill() {
        let mut l = Limiter::new(Limits {
            interface_rate: 100,
            mac_rate: 5,
        });
        let t = Instant::now();
        for _ in 0..5 {
            assert_eq!(l.allow(1, mac(1), t), Ok(()));
        }
        assert_eq!(l.allow(1, mac(1), t), Err(Limited::Mac));
        // Another client on the same interface is not affected.
        assert_eq!(l.allow(1, mac(2), t), Ok(()));
        // The same MAC on another interface is another client.
        assert_eq!(l.allow(2, mac(1), t), Ok(()));
        let later = t + Duration::from_millis(400);
        assert_eq!(l.allow(1, mac(1), later), Ok(()));
        assert_eq!(l.allow(1, mac(1), later), Ok(()));
        assert_eq!(l.allow(1, mac(1), later), Err(Limited::Mac));
    }

    #[test]
    fn interface_limit_covers_made_up_macs() {
        let mut l = Limiter::new(Limits {
            interface_rate: 10,
            mac_rate: 5,
        });
        let t = Instant::now();
        let ok = (0..=255u8)
            .filter(|n| l.allow(7, mac(*n), t).is_ok())
            .count();
        assert_eq!(ok, 10);
        assert_eq!(l.allow(7, mac(1), t), Err(Limited::Interface));
        assert_eq!(l.allow(8, mac(1), t), Ok(()));
        // Refused requests took no token: after 100 ms exactly one more.
        let later = t + Duration::from_millis(100);
        assert_eq!(l.allow(7, mac(200), later), Ok(()));
        assert_eq!(l.allow(7, mac(201), later), Err(Limited::Interface));
    }

    #[test]
    fn early_check_only_for_recently_bound_interfaces() {
        let mut l = Limiter::new(Limits {
            interface_rate: 100,
            mac_rate: 2,
        });
        let t = Instant::now();
        // Never checked in full: the early check knows nothing.
        assert_eq!(l.over(1, mac(1), t), None);
        assert_eq!(l.allow(1, mac(1), t), Ok(()));
        assert_eq!(l.over(1, mac(1), t), None);
        assert_eq!(l.allow(1, mac(1), t), Ok(()));
        assert_eq!(l.over(1, mac(1), t), Some(Limited::Mac));
        assert_eq!(l.over(1, mac(2), t), None);
        // A second without a full check: the interface may have lost its
        // binding, so the packet goes the whole way again.
        let later = t + Duration::from_millis(1500);
        assert_eq!(l.over(1, mac(1), later), None);
    }

    #[test]
    fn zero_turns_limits_off() {
        let mut l = Limiter::new(Limits {
            interface_rate: 0,
            mac_rate: 0,
        });
        let t = Instant::now();
        assert!((0..10_000).all(|_| l.allow(1, mac(1), t).is_ok()));
        assert!(l.interfaces.is_empty() && l.macs.is_empty());
    }

    #[test]
    fn tables_stay_bounded() {
        let mut l = Limiter::new(Limits {
            interface_rate: 0,
            mac_rate: 1,
        });
        let t = Instant::now();
        for i in 0..(3 * MAX_TRACKED as u32) {
            let m = MacAddr::from_slice(&i.to_be_bytes().repeat(2)[..6]);
            let _ = l.allow(1, m, t);
        }
        assert!(l.macs.len() <= MAX_TRACKED);
        // A second later the stale entries make room again.
        let later = t + Duration::from_secs(2);
        assert_eq!(l.allow(1, mac(9), later), Ok(()));
        assert!(l.macs.len() < MAX_TRACKED);
    }
}
