//! What the answers are mapped to, and the pure rules over them: which
//! interface a MAC stands for (the LAG rule) and which pool address a
//! client gets.

use std::net::Ipv4Addr;
use std::time::SystemTime;

use ipnet::Ipv4Net;
use serde_json::Value;

use crate::core::mac::MacAddr;

/// The config context filter of a prefix's site or scope: (`site_id`, 7).
pub(crate) type Scope = (&'static str, u64);

/// The origin prefix, with what is cached along with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PrefixInfo {
    pub id: u64,
    pub network: Ipv4Net,
    pub scope: Option<Scope>,
    pub gateway: Option<Ipv4Addr>,
}

/// A device or VM interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Iface {
    pub id: u64,
    pub vm: bool,
    /// Device or virtual machine id.
    pub owner: u64,
    pub name: String,
    pub is_lag: bool,
    /// The LAG it is a member of.
    pub lag: Option<u64>,
    /// Primary (or only) MAC first.
    pub macs: Vec<MacAddr>,
    /// `count_ipaddresses`, when the answer has it.
    pub ip_count: Option<u64>,
}

/// Which interface a MAC stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Pick {
    /// On no interface of the list.
    None,
    Use(Iface),
    /// Only on members of this LAG of this device: the device's interfaces
    /// decide (see [`pick_lag_owner`]).
    Members {
        lag: u64,
        device: u64,
    },
    /// A LAG member that does not answer for its LAG.
    Ignore,
}

/// A DHCP-status address of the pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DhcpRecord {
    pub id: u64,
    pub addr: Ipv4Addr,
    /// Status DHCP (an answer may show another status after an edit).
    pub dhcp: bool,
    pub mac: Option<MacAddr>,
    /// `pydhcp_mac` holds something (a MAC or not): the address is allocated.
    pub allocated: bool,
    pub expire: Option<SystemTime>,
    pub last_updated: Option<String>,
}

impl DhcpRecord {
    pub(crate) fn expired(&self, now: SystemTime) -> bool {
        self.expire.is_some_and(|e| e <= now)
    }

    /// Unallocated and not held (a DECLINE's hold keeps an expiry ahead).
    pub(crate) fn free(&self, now: SystemTime) -> bool {
        !self.allocated && self.expire.is_none_or(|e| e <= now)
    }

    /// Someone else's lease that has run out.
    pub(crate) fn reusable(&self, mac: MacAddr, now: SystemTime) -> bool {
        self.allocated && self.mac != Some(mac) && self.expired(now)
    }

    pub(crate) fn claimable(&self, mac: MacAddr, now: SystemTime) -> bool {
        self.dhcp && (self.mac == Some(mac) || self.free(now) || self.reusable(mac, now))
    }
}

/// Where a dynamic address comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Dyn {
    /// Already carries the client's MAC.
    Own(DhcpRecord),
    /// No `pydhcp_mac`.
    Free(DhcpRecord),
    /// Another client's, expired longest ago.
    Expired(DhcpRecord),
    Exhausted,
}

/// A device or VM, as far as leases go.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Owner {
    pub name: String,
    pub config_context: Value,
    pub custom_fields: Value,
}

// ---- allocation rules ----

/// The address for a DISCOVER: the client's own (the newest expiry; one
/// without expiry counts as newest, as in PyDHCP), else the lowest free one,
/// else the one that expired longest ago. `skip` holds addresses lost to
/// others.
pub(crate) fn choose(
    records: &[DhcpRecord],
    mac: MacAddr,
    now: SystemTime,
    skip: &[Ipv4Addr],
) -> Dyn {
    let usable = |r: &&DhcpRecord| r.dhcp && !skip.contains(&r.addr);
    if let Some(r) = records
        .iter()
        .filter(usable)
        .filter(|r| r.mac == Some(mac))
        .max_by_key(|r| (r.expire.is_none(), r.expire, std::cmp::Reverse(r.addr)))
    {
        return Dyn::Own(r.clone());
    }
    if let Some(r) = records
        .iter()
        .filter(usable)
        .filter(|r| r.free(now))
        .min_by_key(|r| r.addr)
    {
        return Dyn::Free(r.clone());
    }
    records
        .iter()
        .filter(usable)
        .filter(|r| r.reusable(mac, now))
        .min_by_key(|r| (r.expire, r.addr))
        .map_or(Dyn::Exhausted, |r| Dyn::Expired(r.clone()))
}

/// Whether the pool address `addr` may be confirmed to `mac` (REQUEST).
pub(crate) fn confirm(
    records: &[DhcpRecord],
    mac: MacAddr,
    addr: Ipv4Addr,
    now: SystemTime,
) -> Option<Dyn> {
    let r = records.iter().find(|r| r.addr == addr && r.dhcp)?;
    // A client whose lease elsewhere still runs gets no second address.
    let holds_elsewhere = records
        .iter()
        .any(|o| o.addr != addr && o.mac == Some(mac) && !o.expired(now));
    if r.mac == Some(mac) {
        Some(Dyn::Own(r.clone()))
    } else if holds_elsewhere {
        None
    } else if r.free(now) {
        Some(Dyn::Free(r.clone()))
    } else if r.reusable(mac, now) {
        Some(Dyn::Expired(r.clone()))
    } else {
        None
    }
}

/// The interface a MAC stands for, from the answer of a `mac_address=`
/// lookup: a LAG with the MAC, else a plain interface with it, else (only
/// LAG members have it) the members' LAG, which the device's interfaces
/// decide. The lowest id wins a tie.
pub(crate) fn pick_interface(list: &[Iface], mac: MacAddr) -> Pick {
    // The server filtered, but an answer that ignored the filter must not
    // hand out someone else's address.
    let mut cand: Vec<&Iface> = list.iter().filter(|i| i.macs.contains(&mac)).collect();
    cand.sort_by_key(|i| i.id);
    if let Some(i) = cand.iter().find(|i| i.is_lag) {
        return Pick::Use((*i).clone());
    }
    if let Some(i) = cand.iter().find(|i| i.lag.is_none()) {
        return Pick::Use((*i).clone());
    }
    match cand.first() {
        Some(i) => Pick::Members {
            lag: i.lag.unwrap_or(0),
            device: i.owner,
        },
        None => Pick::None,
    }
}

/// The LAG rule when a MAC is only on members of `lag`: the LAG answers for
/// its own MAC, or when it has none, for the first MAC of its lowest-numbered
/// member that has one.
pub(crate) fn pick_lag_owner(device_ifaces: &[Iface], lag: u64, mac: MacAddr) -> Pick {
    let Some(l) = device_ifaces.iter().find(|i| i.id == lag) else {
        return Pick::Ignore;
    };
    let chosen = if l.macs.is_empty() {
        device_ifaces
            .iter()
            .filter(|i| i.lag == Some(lag) && !i.macs.is_empty())
            .min_by_key(|i| i.id)
            .map(|i| i.macs[0])
    } else {
        l.macs.contains(&mac).then_some(mac)
    };
    if chosen == Some(mac) {
        Pick::Use(l.clone())
    } else {
        Pick::Ignore
    }
}

/// The longest prefix containing `origin`; the lowest id among equals.
pub(crate) fn most_specific(list: &[PrefixInfo], origin: Ipv4Addr) -> Option<PrefixInfo> {
    list.iter()
        .filter(|p| p.network.contains(&origin))
        .max_by_key(|p| (p.network.prefix_len(), std::cmp::Reverse(p.id)))
        .cloned()
}
