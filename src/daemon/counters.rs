//! Counters the threads keep without a lock: one relaxed atomic per label
//! of a small enum. Each queue thread owns a [`QueueCounters`]; the state
//! thread adds them up into [`Totals`] for the metrics file, the status
//! line and the SIGUSR1 dump.

use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::core::{dhcp4, dhcp6, ndp, Refusal};
use crate::daemon::event::QueueKind;
use crate::host::ratelimit::Limited;

/// A small enum whose values each get a counter.
pub trait Label: Copy + 'static {
    const ALL: &'static [Self];
    /// Position in ALL.
    fn index(self) -> usize;
    /// Stable name, used in logs and metrics.
    fn name(self) -> &'static str;
}

/// A counter per label.
pub struct Tally<L: Label> {
    slots: Box<[AtomicU64]>,
    label: PhantomData<L>,
}

impl<L: Label> Default for Tally<L> {
    fn default() -> Self {
        Tally {
            slots: L::ALL.iter().map(|_| AtomicU64::new(0)).collect(),
            label: PhantomData,
        }
    }
}

impl<L: Label> Tally<L> {
    pub fn bump(&self, l: L) {
        self.slots[l.index()].fetch_add(1, Ordering::Relaxed);
    }

    pub fn get(&self, l: L) -> u64 {
        self.slots[l.index()].load(Ordering::Relaxed)
    }

    pub fn total(&self) -> u64 {
        self.slots.iter().map(|s| s.load(Ordering::Relaxed)).sum()
    }

    /// Adds the counters that are not zero to `map`, by name: the metrics
    /// and the dump show what happened, not every label there is.
    pub fn add_to(&self, map: &mut BTreeMap<&'static str, u64>) {
        for &l in L::ALL {
            let n = self.get(l);
            if n > 0 {
                *map.entry(l.name()).or_insert(0) += n;
            }
        }
    }
}

/// A plain counter.
#[derive(Default)]
pub struct Count(AtomicU64);

impl Count {
    pub fn bump(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    /// Adds one and returns the count before.
    pub fn bump_from(&self) -> u64 {
        self.0.fetch_add(1, Ordering::Relaxed)
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// What one queue thread counts; written by that thread only.
#[derive(Default)]
pub struct QueueCounters {
    /// Packets read from the queue.
    pub received: Count,
    /// Verdicts the kernel refused (the packet stays queued until it times out).
    pub verdict_errors: Count,
    /// Verdicts for packets the kernel had already dropped (their interface
    /// went away while they were queued).
    pub stale_verdicts: Count,
    /// Packets handed to the responder, by queue kind.
    pub requests: Tally<QueueKind>,
    /// Answers sent, by message type.
    pub dhcp4: Tally<dhcp4::Kind>,
    pub ndp: Tally<ndp::Kind>,
    pub dhcp6: Tally<dhcp6::Kind>,
    /// Packets from known interfaces left unanswered, by reason.
    pub refusals: Tally<Refusal>,
    pub limited: Tally<Limited>,
    /// Packets from interfaces without a binding, passed on to the kernel.
    pub accepted_unknown: Count,
    pub releases: Count,
    pub declines: Count,
    pub send_errors: Count,
}

impl QueueCounters {
    /// Adds this thread's counters to `t`.
    pub fn add_to(&self, t: &mut Totals) {
        self.requests.add_to(&mut t.requests);
        self.dhcp4.add_to(&mut t.answers);
        self.ndp.add_to(&mut t.answers);
        self.dhcp6.add_to(&mut t.answers);
        self.refusals.add_to(&mut t.refusals);
        self.limited.add_to(&mut t.refusals);
        t.accepted_unknown += self.accepted_unknown.get();
        t.releases += self.releases.get();
        t.declines += self.declines.get();
        t.send_errors += self.send_errors.get();
    }

    /// Answers sent, every type.
    pub fn answers(&self) -> u64 {
        self.dhcp4.total() + self.ndp.total() + self.dhcp6.total()
    }
}

/// A queue thread as the state thread sees it: its counters.
pub struct QueueView {
    pub num: u16,
    pub kind: QueueKind,
    pub counters: Arc<QueueCounters>,
}

/// Every thread's counters added up, by name: what the operator sees.
#[derive(Default, Debug, Clone, PartialEq, Eq)]
pub struct Totals {
    pub requests: BTreeMap<&'static str, u64>,
    pub answers: BTreeMap<&'static str, u64>,
    pub refusals: BTreeMap<&'static str, u64>,
    pub accepted_unknown: u64,
    pub releases: u64,
    pub declines: u64,
    pub send_errors: u64,
    pub binding_errors: u64,
}

/// "name n, name n" for logs; "none" when empty.
pub fn fmt_map(m: &BTreeMap<&'static str, u64>) -> String {
    if m.is_empty() {
        return "none".into();
    }
    m.iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Counts by name in a map the owning thread keeps (no other thread reads it).
pub fn bump(map: &mut BTreeMap<&'static str, u64>, key: &'static str) {
    *map.entry(key).or_insert(0) += 1;
}

macro_rules! labels {
    ($t:ty: $($v:path),+ $(,)?) => {
        impl Label for $t {
            const ALL: &'static [Self] = &[$($v),+];
            fn index(self) -> usize {
                self as usize
            }
            fn name(self) -> &'static str {
                <$t>::name(self)
            }
        }
    };
}

labels!(QueueKind: QueueKind::Dhcp4, QueueKind::RouterSolicit, QueueKind::NeighborSolicit, QueueKind::Dhcp6);
labels!(Limited: Limited::Interface, Limited::Mac);
labels!(dhcp4::Kind:
    dhcp4::Kind::Discover, dhcp4::Kind::Request, dhcp4::Kind::Inform, dhcp4::Kind::Release,
    dhcp4::Kind::Decline, dhcp4::Kind::Offer, dhcp4::Kind::Ack, dhcp4::Kind::Nak);
labels!(ndp::Kind:
    ndp::Kind::RouterSolicitation, ndp::Kind::RouterAdvertisement,
    ndp::Kind::NeighborSolicitation, ndp::Kind::NeighborAdvertisement);
labels!(dhcp6::Kind:
    dhcp6::Kind::Solicit, dhcp6::Kind::Advertise, dhcp6::Kind::Request, dhcp6::Kind::Confirm,
    dhcp6::Kind::Renew, dhcp6::Kind::Rebind, dhcp6::Kind::Reply, dhcp6::Kind::Release,
    dhcp6::Kind::Decline, dhcp6::Kind::InformationRequest);

impl Label for Refusal {
    const ALL: &'static [Self] = &Refusal::ALL;
    fn index(self) -> usize {
        self as usize
    }
    fn name(self) -> &'static str {
        Refusal::name(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `index` is the position in ALL for every label: `self as usize`
    /// relies on the enums' declaration order.
    fn indexes_match<L: Label + std::fmt::Debug>() {
        for (i, l) in L::ALL.iter().enumerate() {
            assert_eq!(l.index(), i, "{l:?}");
        }
    }

    #[test]
    fn every_label_has_its_own_slot() {
        indexes_match::<QueueKind>();
        indexes_match::<Limited>();
        indexes_match::<dhcp4::Kind>();
        indexes_match::<ndp::Kind>();
        indexes_match::<dhcp6::Kind>();
        indexes_match::<Refusal>();
    }

    #[test]
    fn totals_name_only_what_happened() {
        let q = QueueCounters::default();
        q.requests.bump(QueueKind::Dhcp4);
        q.requests.bump(QueueKind::Dhcp4);
        q.dhcp4.bump(dhcp4::Kind::Offer);
        q.ndp.bump(ndp::Kind::RouterAdvertisement);
        q.refusals.bump(Refusal::SpoofedMac);
        q.limited.bump(Limited::Mac);
        q.releases.bump();
        let mut t = Totals::default();
        q.add_to(&mut t);
        q.add_to(&mut t);
        assert_eq!(fmt_map(&t.requests), "dhcp 4");
        assert_eq!(fmt_map(&t.answers), "DHCPOFFER 2, RA 2");
        assert_eq!(fmt_map(&t.refusals), "rate_limit_mac 2, spoofed_mac 2");
        assert_eq!(t.releases, 2);
        assert_eq!(q.answers(), 2);
        assert_eq!(fmt_map(&Totals::default().answers), "none");
    }
}
