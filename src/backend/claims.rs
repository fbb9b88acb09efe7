//! Addresses one worker is writing right now, so that the other workers of
//! this process choose around them. It only steers the choice: ownership is
//! still decided by the pool rules on what the backend answers.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::core::mac::MacAddr;

/// How long a claim keeps other workers off an address: long enough to cover
/// a read that started before the write landed, and a bulk create that
/// takes its time (up to three timeouts) while other batches read.
const CLAIM_TTL: Duration = Duration::from_secs(60);
/// Claims kept before the stale ones are swept.
const SWEEP_AT: usize = 1024;

#[derive(Default)]
pub(crate) struct Claims {
    map: Mutex<HashMap<Ipv4Addr, (MacAddr, Instant)>>,
}

impl Claims {
    fn lock(&self) -> MutexGuard<'_, HashMap<Ipv4Addr, (MacAddr, Instant)>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Addresses other clients' jobs are claiming.
    pub(crate) fn others(&self, mac: MacAddr) -> Vec<Ipv4Addr> {
        self.lock()
            .iter()
            .filter(|(_, (m, at))| *m != mac && at.elapsed() < CLAIM_TTL)
            .map(|(a, _)| *a)
            .collect()
    }

    /// Claims `addr` for `mac`; false while another client's claim runs.
    pub(crate) fn take(&self, addr: Ipv4Addr, mac: MacAddr) -> bool {
        let mut claims = self.lock();
        if claims.len() > SWEEP_AT {
            claims.retain(|_, (_, at)| at.elapsed() < CLAIM_TTL);
        }
        match claims.get(&addr) {
            Some((m, at)) if *m != mac && at.elapsed() < CLAIM_TTL => false,
            _ => {
                claims.insert(addr, (mac, Instant::now()));
                true
            }
        }
    }

    /// Ends `mac`'s claim on `addr` (the write failed).
    pub(crate) fn give_back(&self, addr: Ipv4Addr, mac: MacAddr) {
        let mut claims = self.lock();
        if claims.get(&addr).is_some_and(|(m, _)| *m == mac) {
            claims.remove(&addr);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_client_per_address() {
        let c = Claims::default();
        let (a, b) = (MacAddr([2, 0, 0, 0, 0, 1]), MacAddr([2, 0, 0, 0, 0, 2]));
        let ip = Ipv4Addr::new(192, 0, 2, 5);
        assert!(c.take(ip, a));
        assert!(c.take(ip, a), "the claimant may claim again");
        assert!(!c.take(ip, b));
        assert_eq!(c.others(b), vec![ip]);
        assert!(c.others(a).is_empty());
        c.give_back(ip, b);
        assert!(!c.take(ip, b), "only the claimant gives back");
        c.give_back(ip, a);
        assert!(c.take(ip, b));
    }
}
