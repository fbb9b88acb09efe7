//! Netbox IPAM backend for relay mode, with the semantics of PyDHCP's
//! original Netbox backend.
//!
//! - **Static lease**: a device or virtual machine interface carries the
//!   client's MAC and has an address assigned inside the origin prefix: that
//!   address is leased as it is and never modified.
//! - **Dynamic lease**: the pool is the IP addresses with status DHCP inside
//!   the origin prefix, created by the operator. The lease lives in their
//!   custom fields `pydhcp_mac`, `pydhcp_expire` and `pydhcp_hostname`, which
//!   the operator creates too; nothing else of an address is written, and
//!   nothing is created or deleted. Order: the client's own address, then the
//!   lowest unallocated one (no `pydhcp_mac`), then the one whose lease
//!   expired longest ago.
//! - The origin prefix is the most specific prefix containing the origin
//!   address, whatever its role (`prefix_roles` and `reserved` are Nautobot
//!   settings). The default gateway is the prefix's address tagged `gateway`
//!   (none when there is none). DNS servers and PXE settings come from the
//!   `pydhcp_configuration` of the device's or VM's rendered config context;
//!   DNS servers, when that has none, from the config contexts assigned to
//!   the prefix's site (or, on Netbox 4.2+, its scope), merged by weight as
//!   Netbox renders them.
//!
//! # Calls per job
//!
//! `P` is the prefix lookup (`GET /api/ipam/prefixes/?contains=ORIGIN`) plus
//! the gateway lookup (`GET /api/ipam/ip-addresses/?parent=NET&tag=gateway`),
//! cached per origin for 60 s (15 s when no prefix matched): usually 0, else 2.
//! `I` is the interface lookup, `GET /api/dcim/interfaces/?mac_address=MAC`:
//! one call for a device; a MAC on no device interface adds
//! `GET /api/virtualization/interfaces/?mac_address=MAC`, and a MAC only on
//! LAG members adds `GET /api/dcim/interfaces/?device_id=D` (the LAG rule
//! below). `S` is `GET /api/ipam/ip-addresses/?interface_id=I&parent=NET`,
//! skipped when the interface counts no addresses. `R` is the pool read,
//! `GET /api/ipam/ip-addresses/?parent=NET&status=dhcp` (one call per 1000).
//! `D` is `GET /api/dcim/devices/ID/` (or the VM) for its config context.
//! A claim is a PATCH of the custom fields; before Netbox 4.6 it is followed by
//! a GET that checks the write stuck, from 4.6 on it is conditional
//! (`If-Match`) and needs no second call.
//!
//! | job | calls (warm prefix cache, known device) |
//! |---|---|
//! | Offer, static | I + S + D = 3 |
//! | Offer, dynamic | I + R + D + claim (2, or 1 from 4.6) = 5 (4), plus S when the interface has addresses elsewhere; an own lease valid past the hold: no claim, 3 |
//! | Confirm, known dynamic | 1: PATCH of the expiry, whose answer shows whether the address is still the client's |
//! | Confirm, known static | I + S = 2 |
//! | Confirm, otherwise | like Offer |
//! | Release, known dynamic | GET + PATCH = 2; known static: 0; otherwise P + R + PATCH |
//! | Decline | P + R + PATCH |
//! | Inform | P + I + D |
//!
//! A new device's DORA is thus 6 calls warm (5 on Netbox 4.6+), a static
//! DORA 5, a renewal the daemon knows 1 (dynamic) or 2 (static). Every HTTP
//! request counts, retries included. A lost claim adds its calls and moves to
//! the next address. Unknown devices (with `allow_unknown_devices`) cost the
//! VM lookup instead of S and D, and the site's config contexts once a minute.
//!
//! # Netbox versions
//!
//! The version comes from the `API-Version` header of every answer (and from
//! `/api/status/` at start). The same requests work on 3.x and 4.x; only
//! their use differs: from 4.0 the pool read asks for the fields it uses
//! (`fields=`), and from 4.6 claims and releases are conditional writes. Until
//! a version is known, the backend behaves as for 3.x. Answers of both
//! generations are read: status `{"value": "dhcp"}`, 3.x interface
//! `mac_address` or 4.2+ `primary_mac_address` / `mac_addresses`, 3.x prefix
//! `site` or 4.2+ `scope_type` / `scope_id`, custom fields `content_types` or
//! `object_types`.
//!
//! # Decisions
//!
//! - **Claims.** Netbox refuses nothing when two servers PATCH one record, so
//!   a claim is checked. Before 4.6: PATCH, then GET; the claim stands if
//!   `pydhcp_mac` reads back as the client's. Of two servers that PATCH before
//!   either reads back, the later write wins and the other moves on. The
//!   residual race: a server that read the pool before another's claim and
//!   writes only after that claim was read back (a stall longer than the
//!   other's whole check) takes the address over; its client and the other's
//!   both get it until the other's next renewal finds the record no longer
//!   its own. From 4.6 the PATCH carries `If-Match` with the ETag Netbox
//!   derives from `last_updated` (computed from the list answer, so it costs
//!   no call), and Netbox checks it under a row lock: a write that lands
//!   between our read and our PATCH makes it fail with 412; the record is then
//!   read again and claimed only if it is still free. Within one process the
//!   workers also keep off addresses another worker is claiming. After 8 lost
//!   claims the job fails (no NAK).
//! - A renewal of a known dynamic lease PATCHes only `pydhcp_expire` and reads
//!   the owner from the answer. If the record was taken over meanwhile (only
//!   after a lost race or an operator's edit), that renewal has lengthened the
//!   other holder's lease and the client gets none.
//! - An OFFER holds an address with `pydhcp_expire = now + 10 s`; an own
//!   lease valid beyond that is not shortened. RELEASE sets the expiry to now
//!   and keeps `pydhcp_mac`, so the client gets the same address back first
//!   (PyDHCP cleared the expiry instead, which kept the address from everyone
//!   else for good). DECLINE clears `pydhcp_mac` and sets the expiry an hour
//!   ahead: an unallocated address with a future expiry is held, not free.
//! - An address with a `pydhcp_mac` but no `pydhcp_expire` is its client's
//!   for good, as in PyDHCP.
//! - Without DNS servers in Netbox, the relay's `nameservers` are given
//!   (PyDHCP gave the gateway).
//! - Dynamic addresses are not assigned to interfaces and devices' primary
//!   addresses are not set (PyDHCP tried; Netbox refuses a primary address
//!   that is not on the device).
//! - LAGs: a MAC on a LAG interface gets the LAG's address. A MAC found only
//!   on members of a LAG gets the LAG's address only if it is the LAG's one
//!   MAC: the LAG's own, or when the LAG has none, the first MAC of its
//!   lowest-numbered member that has one. Other members get no answer at all,
//!   so that members booting one at a time (PXE) do not each take the LAG's
//!   address. VM interfaces have no LAGs; of several interfaces with one MAC
//!   the lowest-numbered wins, device interfaces before VM interfaces.
//! - PXE answers need the device's `redeploy` custom field set and
//!   `confirm_redeploy` equal to its name, as PyDHCP's Netbox backend did.
//! - Missing custom fields stop dynamic leases only; static leases work
//!   without them. The error says which fields to create.
//! - A token may be limited to DCIM and IPAM: a 403 on VM interfaces, config
//!   contexts or the custom field list is logged once and taken as none (no
//!   VM lookups, no site DNS servers, no start-up check). A 403 on anything a
//!   lease needs fails the job, as a bad token does.
//! - Lease times are written as `YYYY-MM-DDTHH:MM:SS+00:00`, which both a
//!   Text and a Date & time custom field accept, and MACs in upper case as
//!   PyDHCP wrote them.
//! - The token is sent only in the `Authorization` header (`Bearer` for a v2
//!   token `nbt_…`, else `Token`), to the configured URL (redirects are not
//!   followed), and never appears in errors or logs.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use ipnet::Ipv4Net;
use serde_json::{json, Map, Value};

use super::claims::Claims;
use super::nautobot::{parse_expire, parse_mac};
use super::{
    Backend, BackendError, Boot, BootClient, Job, JobKind, Known, Lease, LeaseKind, NoLease,
    Outcome, Session, DECLINE_HOLD_SECS, OFFER_HOLD_SECS,
};
use crate::config::BackendConf;
use crate::core::mac::MacAddr;
use crate::daemon::logging::utc_timestamp;

pub use super::nautobot::CUSTOM_FIELDS;

/// Largest answer read: a page of 1000 full IP addresses is about 1.5 MB.
const MAX_BODY: u64 = 16 << 20;
/// Most pool records read for one prefix.
const MAX_RECORDS: usize = 65536;
/// List page size (Netbox's default MAX_PAGE_SIZE).
const PAGE: usize = 1000;
/// Interfaces looked at for one MAC.
const MAX_IFACES: usize = 50;
const PREFIX_TTL: Duration = Duration::from_secs(60);
const PREFIX_MISS_TTL: Duration = Duration::from_secs(15);
const CACHE_MAX: usize = 4096;
/// Claims lost before a job gives up (it fails, it is not a NAK).
const MAX_LOST_RACES: u32 = 8;
/// Characters of an error answer kept in a BackendError.
const ERR_SNIPPET: usize = 300;

/// A Netbox REST API version, from `API-Version` or `netbox-version`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ApiVersion {
    pub major: u16,
    pub minor: u16,
}

impl ApiVersion {
    /// `"4.2"`, `"v3.7.8"`, `"4.2.3-Docker-3.0.2"`.
    pub fn parse(s: &str) -> Option<ApiVersion> {
        let s = s.trim().trim_start_matches(['v', 'V']);
        let mut it = s.split(['.', '-']);
        let major = it.next()?.parse().ok()?;
        let minor = it.next()?.parse().ok()?;
        Some(ApiVersion { major, minor })
    }

    fn packed(self) -> u32 {
        (u32::from(self.major) << 16) | u32::from(self.minor)
    }

    fn unpack(v: u32) -> Option<ApiVersion> {
        (v != 0).then_some(ApiVersion {
            major: (v >> 16) as u16,
            minor: (v & 0xffff) as u16,
        })
    }

    /// `?fields=` (4.0).
    fn field_selection(self) -> bool {
        self >= ApiVersion { major: 4, minor: 0 }
    }

    /// ETags and `If-Match` on PATCH (4.6).
    fn conditional_writes(self) -> bool {
        self >= ApiVersion { major: 4, minor: 6 }
    }
}

impl fmt::Display for ApiVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// The Netbox backend. Cheap to share: sessions hold an `Arc` of it.
pub struct Netbox {
    shared: Arc<Shared>,
}

struct Shared {
    base: String,
    /// The whole `Authorization` header value.
    auth: String,
    timeout: Duration,
    tls: Option<ureq::tls::TlsConfig>,
    allow_unknown: bool,
    lease_secs: u32,
    /// The server's API version, packed; 0 = not known yet.
    api: AtomicU32,
    prefixes: Mutex<HashMap<Ipv4Addr, (Instant, Option<PrefixInfo>)>>,
    /// DNS servers of a prefix's site or scope, by (filter, id).
    scope_dns: Mutex<HashMap<Scope, (Instant, Vec<Ipv4Addr>)>>,
    claims: Claims,
    warned: Mutex<HashSet<String>>,
}

impl fmt::Debug for Netbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Netbox")
            .field("url", &self.shared.base)
            .field("api", &self.api())
            .field("allow_unknown_devices", &self.shared.allow_unknown)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The `Authorization` value for a token: v2 tokens (`nbt_<key>.<secret>`,
/// Netbox 4.5+) go as `Bearer`, v1 tokens as `Token`.
pub fn auth_header(token: &str) -> String {
    if token.starts_with("nbt_") {
        format!("Bearer {token}")
    } else {
        format!("Token {token}")
    }
}

impl Netbox {
    /// `lease_secs` is the lease time offered (`[relay] lease_time`); a
    /// Confirm job carries its own.
    pub fn new(conf: &BackendConf, token: String, lease_secs: u32) -> Result<Netbox, String> {
        let end = super::http::endpoint("netbox", conf, &token)?;
        Ok(Netbox {
            shared: Arc::new(Shared {
                base: end.base,
                auth: auth_header(&token),
                timeout: end.timeout,
                tls: end.tls,
                allow_unknown: conf.allow_unknown_devices,
                lease_secs,
                api: AtomicU32::new(0),
                prefixes: Mutex::new(HashMap::new()),
                scope_dns: Mutex::new(HashMap::new()),
                claims: Claims::default(),
                warned: Mutex::new(HashSet::new()),
            }),
        })
    }

    /// The server's API version, once an answer has shown it.
    pub fn api(&self) -> Option<ApiVersion> {
        ApiVersion::unpack(self.shared.api.load(Ordering::Relaxed))
    }

    fn new_session(&self) -> NetboxSession {
        NetboxSession {
            shared: Arc::clone(&self.shared),
            agent: super::http::agent(self.shared.timeout, self.shared.tls.as_ref()),
            calls: 0,
        }
    }
}

impl Backend for Netbox {
    /// Learns the version and checks the custom fields. Jobs do not depend on
    /// it: they read the version from every answer, and a missing custom
    /// field fails the dynamic leases that need it, with the same message.
    fn prepare(&self) -> Result<u32, BackendError> {
        let mut s = self.new_session();
        let r = s.check_server();
        match r {
            Ok(()) => Ok(s.calls),
            Err(e) => {
                // The caller logs the failure itself.
                log::debug!("netbox: not ready after {} calls: {e}", s.calls);
                Err(e)
            }
        }
    }

    fn session(&self) -> Box<dyn Session> {
        Box::new(self.new_session())
    }

    fn name(&self) -> &'static str {
        "netbox"
    }
}

// ---- what the answers are mapped to ----

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
    fn expired(&self, now: SystemTime) -> bool {
        self.expire.is_some_and(|e| e <= now)
    }

    /// Unallocated and not held (a DECLINE's hold keeps an expiry ahead).
    fn free(&self, now: SystemTime) -> bool {
        !self.allocated && self.expire.is_none_or(|e| e <= now)
    }

    /// Someone else's lease that has run out.
    fn reusable(&self, mac: MacAddr, now: SystemTime) -> bool {
        self.allocated && self.mac != Some(mac) && self.expired(now)
    }

    fn claimable(&self, mac: MacAddr, now: SystemTime) -> bool {
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

// ---- JSON mapping (3.x and 4.x answers) ----

fn results(v: &Value) -> Result<&Vec<Value>, BackendError> {
    v.get("results")
        .and_then(Value::as_array)
        .ok_or_else(|| BackendError::BadAnswer("list answer without results".into()))
}

fn count(v: &Value, page: usize) -> usize {
    v.get("count")
        .and_then(Value::as_u64)
        .map_or(page, |c| usize::try_from(c).unwrap_or(usize::MAX))
}

/// A Netbox id: a number (or, leniently, a numeric string).
fn id_of(v: Option<&Value>) -> Option<u64> {
    match v? {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// A choice field's value: `{"value": "dhcp", "label": "DHCP"}` or a plain
/// string.
fn choice(v: Option<&Value>) -> Option<&str> {
    match v? {
        Value::String(s) => Some(s),
        o => o.get("value")?.as_str(),
    }
}

fn host_of(address: &str) -> Option<Ipv4Addr> {
    address.split('/').next()?.trim().parse().ok()
}

pub(crate) fn parse_prefixes(v: &Value) -> Result<Vec<PrefixInfo>, BackendError> {
    Ok(results(v)?
        .iter()
        .filter_map(|p| {
            let id = id_of(p.get("id"))?;
            let network: Ipv4Net = p.get("prefix")?.as_str()?.trim().parse().ok()?;
            Some(PrefixInfo {
                id,
                network: network.trunc(),
                scope: scope_of(p),
                gateway: None,
            })
        })
        .collect())
}

/// The config context filter for a prefix's site (3.x, 4.0, 4.1) or scope
/// (4.2+).
fn scope_of(p: &Value) -> Option<Scope> {
    if let Some(site) = p.get("site").filter(|s| !s.is_null()) {
        return Some((
            "site_id",
            id_of(site.get("id")).or_else(|| id_of(Some(site)))?,
        ));
    }
    let filter = match p.get("scope_type")?.as_str()? {
        "dcim.site" => "site_id",
        "dcim.location" => "location_id",
        "dcim.sitegroup" => "site_group_id",
        "dcim.region" => "region_id",
        _ => return None,
    };
    let id = id_of(p.get("scope_id")).or_else(|| id_of(p.get("scope")?.get("id")))?;
    Some((filter, id))
}

/// The longest prefix containing `origin`; the lowest id among equals.
pub(crate) fn most_specific(list: &[PrefixInfo], origin: Ipv4Addr) -> Option<PrefixInfo> {
    list.iter()
        .filter(|p| p.network.contains(&origin))
        .max_by_key(|p| (p.network.prefix_len(), std::cmp::Reverse(p.id)))
        .cloned()
}

/// The MACs of an interface: 3.x `mac_address`; 4.2+ `mac_address` (the
/// primary), `primary_mac_address` and `mac_addresses`.
fn iface_macs(v: &Value) -> Vec<MacAddr> {
    let mut out: Vec<MacAddr> = Vec::new();
    let mut add = |m: Option<&Value>| {
        if let Some(mac) = m.and_then(Value::as_str).and_then(parse_mac) {
            if !out.contains(&mac) {
                out.push(mac);
            }
        }
    };
    add(v.get("mac_address"));
    add(v
        .get("primary_mac_address")
        .and_then(|p| p.get("mac_address")));
    if let Some(list) = v.get("mac_addresses").and_then(Value::as_array) {
        for m in list.iter().take(64) {
            add(m.get("mac_address"));
        }
    }
    out
}

pub(crate) fn iface_from(v: &Value, vm: bool) -> Option<Iface> {
    let owner_key = if vm { "virtual_machine" } else { "device" };
    Some(Iface {
        id: id_of(v.get("id"))?,
        vm,
        owner: id_of(v.get(owner_key)?.get("id"))?,
        name: v
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned(),
        is_lag: choice(v.get("type")) == Some("lag"),
        lag: v.get("lag").and_then(|l| id_of(l.get("id"))),
        macs: iface_macs(v),
        ip_count: v.get("count_ipaddresses").and_then(Value::as_u64),
    })
}

pub(crate) fn parse_interfaces(v: &Value, vm: bool) -> Result<Vec<Iface>, BackendError> {
    Ok(results(v)?
        .iter()
        .take(PAGE)
        .filter_map(|i| iface_from(i, vm))
        .collect())
}

/// The lowest non-DHCP address of the list inside `network`: a static lease.
pub(crate) fn static_address(
    v: &Value,
    network: Ipv4Net,
) -> Result<Option<(u64, Ipv4Addr)>, BackendError> {
    Ok(results(v)?
        .iter()
        .filter(|ip| choice(ip.get("status")).is_some_and(|s| !s.eq_ignore_ascii_case("dhcp")))
        .filter_map(|ip| {
            let addr = host_of(ip.get("address")?.as_str()?)?;
            Some((id_of(ip.get("id"))?, addr))
        })
        .filter(|(_, a)| network.contains(a))
        .min_by_key(|(_, a)| *a))
}

/// The lowest address of the list inside `network` (the gateway lookup).
pub(crate) fn first_address(v: &Value, network: Ipv4Net) -> Result<Option<Ipv4Addr>, BackendError> {
    Ok(results(v)?
        .iter()
        .filter_map(|ip| host_of(ip.get("address")?.as_str()?))
        .filter(|a| network.contains(a) && *a != network.network() && *a != network.broadcast())
        .min())
}

/// Custom fields of [`CUSTOM_FIELDS`] an address does not carry.
fn missing_on(ip: &Value) -> Vec<&'static str> {
    let cf = ip.get("custom_fields").and_then(Value::as_object);
    CUSTOM_FIELDS
        .into_iter()
        .filter(|k| cf.is_none_or(|m| !m.contains_key(*k)))
        .collect()
}

fn missing_fields_error(missing: &[&str]) -> BackendError {
    let (what, it) = match missing {
        [one] => (format!("custom field {one} is"), "it"),
        _ => (format!("custom fields {} are", missing.join(", ")), "them"),
    };
    BackendError::BadAnswer(format!(
        "{what} not defined for IP addresses; create {it} in Netbox (type Text, object type IPAM > IP Address); static leases work without {it}"
    ))
}

/// One IP address as a pool record; None for what is not an IPv4 address
/// with an id.
pub(crate) fn record_from(v: &Value) -> Option<DhcpRecord> {
    let addr = host_of(v.get("address")?.as_str()?)?;
    let cf = v.get("custom_fields");
    let text = |k: &str| {
        cf.and_then(|c| c.get(k))
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
    };
    let mac_text = text("pydhcp_mac");
    Some(DhcpRecord {
        id: id_of(v.get("id"))?,
        addr,
        dhcp: choice(v.get("status")).is_some_and(|s| s.eq_ignore_ascii_case("dhcp")),
        mac: mac_text.and_then(parse_mac),
        allocated: mac_text.is_some(),
        expire: text("pydhcp_expire").and_then(parse_expire),
        last_updated: v
            .get("last_updated")
            .and_then(Value::as_str)
            .map(str::to_owned),
    })
}

/// One page of the pool read: its DHCP records inside `network`, and the
/// total count. An address without the custom fields means they are not
/// defined.
pub(crate) fn parse_pool(
    v: &Value,
    network: Ipv4Net,
) -> Result<(Vec<DhcpRecord>, usize), BackendError> {
    let list = results(v)?;
    if let Some(first) = list.first() {
        let missing = missing_on(first);
        if !missing.is_empty() {
            return Err(missing_fields_error(&missing));
        }
    }
    let recs = list
        .iter()
        .filter_map(record_from)
        .filter(|r| r.dhcp && network.contains(&r.addr))
        .collect();
    Ok((recs, count(v, list.len())))
}

/// Custom fields of [`CUSTOM_FIELDS`] missing from a custom field list, or
/// there but not for IP addresses (`content_types` 3.x, `object_types` 4.x).
pub(crate) fn missing_custom_fields(v: &Value) -> Result<Vec<&'static str>, BackendError> {
    let list = results(v)?;
    Ok(CUSTOM_FIELDS
        .into_iter()
        .filter(|name| {
            !list.iter().any(|cf| {
                cf.get("name").and_then(Value::as_str) == Some(name)
                    && ["object_types", "content_types"].iter().any(|k| {
                        cf.get(*k)
                            .and_then(Value::as_array)
                            .is_some_and(|a| a.iter().any(|t| t.as_str() == Some("ipam.ipaddress")))
                    })
            })
        })
        .collect())
}

pub(crate) fn owner_from(v: &Value) -> Option<Owner> {
    if !v.is_object() {
        return None;
    }
    Some(Owner {
        name: v
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned(),
        config_context: v.get("config_context").cloned().unwrap_or(Value::Null),
        custom_fields: v.get("custom_fields").cloned().unwrap_or(Value::Null),
    })
}

fn deep_merge(into: &mut Value, from: &Value) {
    match (into, from) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                match a.get_mut(k) {
                    Some(slot) if slot.is_object() && v.is_object() => deep_merge(slot, v),
                    _ => {
                        a.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (slot, v) => *slot = v.clone(),
    }
}

/// The active config contexts of a list merged as Netbox renders them:
/// ascending weight, then name, later ones overriding.
pub(crate) fn merge_contexts(v: &Value) -> Result<Value, BackendError> {
    let mut list: Vec<&Value> = results(v)?
        .iter()
        .filter(|c| c.get("is_active").and_then(Value::as_bool) != Some(false))
        .collect();
    list.sort_by(|a, b| {
        let key = |c: &Value| {
            (
                c.get("weight").and_then(Value::as_i64).unwrap_or(1000),
                c.get("name")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned(),
            )
        };
        key(a).cmp(&key(b))
    });
    let mut out = Value::Object(Map::new());
    for c in list {
        if let Some(data) = c.get("data").filter(|d| d.is_object()) {
            deep_merge(&mut out, data);
        }
    }
    Ok(out)
}

pub(crate) use super::context::dns_servers;

/// PXE answer from the device's or VM's config context (behind the
/// redeploy guard).
pub(crate) fn boot_options(owner: &Owner, client: BootClient) -> Option<Boot> {
    super::context::boot_options(
        "netbox",
        &owner.name,
        &owner.custom_fields,
        &owner.config_context,
        client,
    )
}

/// The ETag Netbox 4.6 gives an object, from the `last_updated` of any
/// answer: `W/"<datetime.isoformat()>"`, where the answer shows UTC as `Z`.
pub(crate) fn etag_from(last_updated: &str) -> Option<String> {
    let s = last_updated.trim();
    let iso = if let Some(t) = s.strip_suffix('Z') {
        format!("{t}+00:00")
    } else if s.ends_with("+00:00") {
        s.to_owned()
    } else {
        // Another zone: the isoformat of the stored UTC time is not known.
        return None;
    };
    (iso.len() >= 25 && iso.is_ascii() && !iso.contains('"')).then(|| format!("W/\"{iso}\""))
}

/// A lease time as written: ISO 8601 with `+00:00`, which Netbox's Date &
/// time custom fields accept on every Python version.
pub(crate) fn netbox_time(t: SystemTime) -> String {
    let s = utc_timestamp(t);
    format!("{}+00:00", s.trim_end_matches('Z'))
}

fn mac_text(mac: MacAddr) -> String {
    mac.to_string().to_ascii_uppercase()
}

/// The write that claims or refreshes a lease. `takeover`: the record was
/// free or another client's, so its host name goes too.
pub(crate) fn lease_body(
    mac: MacAddr,
    expire: SystemTime,
    hostname: Option<&str>,
    takeover: bool,
) -> Value {
    let mut cf = Map::new();
    cf.insert("pydhcp_mac".into(), Value::from(mac_text(mac)));
    cf.insert("pydhcp_expire".into(), Value::from(netbox_time(expire)));
    if hostname.is_some() || takeover {
        cf.insert(
            "pydhcp_hostname".into(),
            hostname.map_or(Value::Null, Value::from),
        );
    }
    json!({ "custom_fields": cf })
}

fn expire_body(at: SystemTime) -> Value {
    json!({ "custom_fields": { "pydhcp_expire": netbox_time(at) } })
}

fn decline_body(now: SystemTime) -> Value {
    let until = now + Duration::from_secs(DECLINE_HOLD_SECS);
    json!({ "custom_fields": { "pydhcp_mac": null, "pydhcp_expire": netbox_time(until) } })
}

// ---- HTTP ----

#[derive(Clone, Copy)]
enum Method {
    Get,
    Patch,
}

impl Method {
    fn name(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Patch => "PATCH",
        }
    }
}

struct Reply {
    status: u16,
    body: Vec<u8>,
    etag: Option<String>,
}

/// How a conditional or checked write ended.
enum Write {
    /// Written; the record as read back (or as answered).
    Done(DhcpRecord),
    /// The record no longer qualifies, or changed under us twice.
    Refused,
    /// The record is gone.
    Gone,
}

/// Who a MAC is.
enum Resolved {
    Unknown,
    /// A LAG member that does not answer for its LAG.
    Ignored,
    Known(Iface),
}

struct NetboxSession {
    shared: Arc<Shared>,
    agent: ureq::Agent,
    calls: u32,
}

impl Session for NetboxSession {
    fn run(&mut self, job: &Job) -> (Result<Outcome, BackendError>, u32) {
        self.calls = 0;
        let r = self.run_job(job);
        (r, self.calls)
    }
}

fn stale_connection(e: &ureq::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(e, ureq::Error::Io(io) if matches!(io.kind(), ConnectionReset | ConnectionAborted | BrokenPipe | UnexpectedEof))
}

fn map_ureq_error(e: ureq::Error) -> BackendError {
    use std::io::ErrorKind;
    match e {
        ureq::Error::Timeout(_) => BackendError::Timeout,
        ureq::Error::Io(io) if matches!(io.kind(), ErrorKind::TimedOut | ErrorKind::WouldBlock) => {
            BackendError::Timeout
        }
        ureq::Error::BodyExceedsLimit(n) => {
            BackendError::BadAnswer(format!("answer larger than {n} bytes"))
        }
        other => BackendError::Connect(other.to_string()),
    }
}

fn snippet(body: &[u8]) -> String {
    let s = String::from_utf8_lossy(body);
    let mut out: String = s
        .chars()
        .take(ERR_SNIPPET)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if s.chars().count() > ERR_SNIPPET {
        out.push('…');
    }
    out
}

fn http_error(r: &Reply) -> BackendError {
    // 400 {"custom_fields": ["Unknown field name 'pydhcp_mac' in custom field data."]}
    let text = String::from_utf8_lossy(&r.body);
    if r.status == 400 && text.contains("Unknown field name") {
        let named: Vec<&str> = CUSTOM_FIELDS
            .into_iter()
            .filter(|f| text.contains(&format!("'{f}'")))
            .collect();
        return missing_fields_error(if named.is_empty() {
            &CUSTOM_FIELDS
        } else {
            &named
        });
    }
    BackendError::Http {
        status: r.status,
        body: snippet(&r.body),
    }
}

fn parse_json(r: &Reply) -> Result<Value, BackendError> {
    serde_json::from_slice(&r.body).map_err(|_| {
        BackendError::BadAnswer(format!(
            "not JSON (HTTP {}): {}",
            r.status,
            snippet(&r.body)
        ))
    })
}

/// Percent-encodes a query value.
fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The job's `known` lease, if it is about `addr`.
fn known_for(job: &Job, addr: Ipv4Addr) -> Option<&Known> {
    job.known.as_ref().filter(|k| k.addr == addr)
}

impl NetboxSession {
    fn api(&self) -> Option<ApiVersion> {
        ApiVersion::unpack(self.shared.api.load(Ordering::Relaxed))
    }

    fn conditional(&self) -> bool {
        self.api().is_some_and(ApiVersion::conditional_writes)
    }

    fn note_version(&self, v: ApiVersion) {
        let old = self.shared.api.swap(v.packed(), Ordering::Relaxed);
        if old != v.packed() {
            log::info!("netbox: REST API version {v}");
        }
    }

    fn warn_once(&self, key: String, msg: impl FnOnce() -> String) {
        let mut w = lock(&self.shared.warned);
        if w.len() < 1024 && w.insert(key) {
            log::warn!("netbox: {}", msg());
        }
    }

    fn send(
        &mut self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        if_match: Option<&str>,
    ) -> Result<Reply, BackendError> {
        let r = self.send_any(method, path, body, if_match)?;
        if r.status == 401 || r.status == 403 {
            return Err(BackendError::Auth(r.status));
        }
        Ok(r)
    }

    /// A GET whose 403 means "this token may not read that" rather than a bad
    /// token: the calls before it in the job were let in. None then, after a
    /// warning.
    fn get_optional(&mut self, path: &str, what: &str) -> Result<Option<Reply>, BackendError> {
        let r = self.send_any(Method::Get, path, None, None)?;
        match r.status {
            401 => Err(BackendError::Auth(401)),
            403 => {
                self.warn_once(format!("403 {what}"), || {
                    format!("the token may not read {what} (HTTP 403); going without")
                });
                Ok(None)
            }
            _ => Ok(Some(r)),
        }
    }

    fn send_any(
        &mut self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        if_match: Option<&str>,
    ) -> Result<Reply, BackendError> {
        let url = format!("{}{}", self.shared.base, path);
        let bytes = body.map(|b| serde_json::to_vec(b).unwrap_or_default());
        let mut retried = false;
        loop {
            self.calls += 1;
            let started = Instant::now();
            match self.send_once(method, &url, bytes.as_deref(), if_match) {
                Ok((reply, version)) => {
                    log::debug!(
                        "netbox {} {} -> {} ({} bytes) in {} ms",
                        method.name(),
                        path,
                        reply.status,
                        reply.body.len(),
                        started.elapsed().as_millis()
                    );
                    if let Some(v) = version {
                        self.note_version(v);
                    }
                    return Ok(reply);
                }
                // A kept-alive connection the server closed meanwhile: once
                // more on a new one. A PATCH only sets values, so repeating
                // it does no harm either.
                Err(e) if !retried && stale_connection(&e) => retried = true,
                Err(e) => return Err(map_ureq_error(e)),
            }
        }
    }

    fn send_once(
        &self,
        method: Method,
        url: &str,
        body: Option<&[u8]>,
        if_match: Option<&str>,
    ) -> Result<(Reply, Option<ApiVersion>), ureq::Error> {
        let resp = match method {
            Method::Get => self
                .agent
                .get(url)
                .header("Authorization", &self.shared.auth)
                .header("Accept", "application/json")
                .call()?,
            Method::Patch => {
                let mut req = self
                    .agent
                    .patch(url)
                    .header("Authorization", &self.shared.auth)
                    .header("Accept", "application/json")
                    .header("Content-Type", "application/json");
                if let Some(tag) = if_match {
                    req = req.header("If-Match", tag);
                }
                req.send(body.unwrap_or(b"{}"))?
            }
        };
        let status = resp.status().as_u16();
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let version = header("api-version").as_deref().and_then(ApiVersion::parse);
        let etag = header("etag").filter(|e| e.len() < 128);
        let body = resp
            .into_body()
            .with_config()
            .limit(MAX_BODY)
            .read_to_vec()?;
        Ok((Reply { status, body, etag }, version))
    }

    fn get_json(&mut self, path: &str) -> Result<Value, BackendError> {
        let r = self.send(Method::Get, path, None, None)?;
        if r.status != 200 {
            return Err(http_error(&r));
        }
        parse_json(&r)
    }

    // ---- start-up ----

    fn check_server(&mut self) -> Result<(), BackendError> {
        let status = self.get_json("/api/status/")?;
        let release = status
            .get("netbox-version")
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_owned();
        if self.api().is_none() {
            if let Some(v) = ApiVersion::parse(&release) {
                self.note_version(v);
            }
        }
        log::info!("netbox: Netbox {release}");
        let names: String = CUSTOM_FIELDS.iter().map(|n| format!("&name={n}")).collect();
        let path = format!("/api/extras/custom-fields/?limit={PAGE}{names}");
        // A token that may not read custom fields can still lease: dynamic
        // leases then say which fields are missing, if any are.
        let Some(r) = self.get_optional(&path, "custom fields")? else {
            return Ok(());
        };
        if r.status != 200 {
            return Err(http_error(&r));
        }
        let missing = missing_custom_fields(&parse_json(&r)?)?;
        if missing.is_empty() {
            Ok(())
        } else {
            Err(missing_fields_error(&missing))
        }
    }

    // ---- reads ----

    fn prefix(&mut self, origin: Ipv4Addr) -> Result<Option<PrefixInfo>, BackendError> {
        if let Some((at, hit)) = lock(&self.shared.prefixes).get(&origin) {
            let ttl = if hit.is_some() {
                PREFIX_TTL
            } else {
                PREFIX_MISS_TTL
            };
            if at.elapsed() < ttl {
                return Ok(hit.clone());
            }
        }
        let v = self.get_json(&format!(
            "/api/ipam/prefixes/?contains={origin}&limit={PAGE}"
        ))?;
        let mut best = most_specific(&parse_prefixes(&v)?, origin);
        if let Some(p) = best.as_mut() {
            p.gateway = self.gateway(p.network)?;
        }
        let mut cache = lock(&self.shared.prefixes);
        if cache.len() >= CACHE_MAX {
            cache.retain(|_, (at, _)| at.elapsed() < PREFIX_TTL);
            if cache.len() >= CACHE_MAX {
                cache.clear();
            }
        }
        cache.insert(origin, (Instant::now(), best.clone()));
        Ok(best)
    }

    fn gateway(&mut self, network: Ipv4Net) -> Result<Option<Ipv4Addr>, BackendError> {
        let path = format!(
            "/api/ipam/ip-addresses/?parent={}&tag=gateway&limit=100",
            enc(&network.to_string())
        );
        let r = self.send(Method::Get, &path, None, None)?;
        match r.status {
            200 => {
                let gw = first_address(&parse_json(&r)?, network)?;
                if gw.is_none() {
                    self.warn_once(format!("gw {network}"), || {
                        format!("no address of {network} is tagged gateway; no router option")
                    });
                }
                Ok(gw)
            }
            // Netbox refuses a filter on a tag that does not exist.
            400 => {
                self.warn_once("gateway tag".into(), || {
                    "there is no tag with slug gateway; no router option".into()
                });
                Ok(None)
            }
            _ => Err(http_error(&r)),
        }
    }

    fn interfaces(&mut self, query: &str) -> Result<Vec<Iface>, BackendError> {
        let v = self.get_json(&format!("/api/dcim/interfaces/?{query}"))?;
        parse_interfaces(&v, false)
    }

    /// The interface a MAC stands for (device interfaces first, then VM
    /// interfaces), by the LAG rule.
    fn resolve(&mut self, mac: MacAddr) -> Result<Resolved, BackendError> {
        let q = format!("mac_address={}&limit={MAX_IFACES}", enc(&mac_text(mac)));
        let devs = self.interfaces(&q)?;
        match pick_interface(&devs, mac) {
            Pick::Use(i) => return Ok(Resolved::Known(i)),
            Pick::Ignore => return Ok(Resolved::Ignored),
            Pick::Members { lag, device } => {
                let all = self.interfaces(&format!("device_id={device}&limit={PAGE}"))?;
                return Ok(match pick_lag_owner(&all, lag, mac) {
                    Pick::Use(i) => Resolved::Known(i),
                    _ => Resolved::Ignored,
                });
            }
            Pick::None => {}
        }
        // BMC-only installations may give the token no access to VMs.
        let path = format!("/api/virtualization/interfaces/?{q}");
        let vms = match self.get_optional(&path, "virtual machine interfaces")? {
            None => Vec::new(),
            Some(r) if r.status == 200 => parse_interfaces(&parse_json(&r)?, true)?,
            Some(r) => return Err(http_error(&r)),
        };
        Ok(match pick_interface(&vms, mac) {
            Pick::Use(i) => Resolved::Known(i),
            _ => Resolved::Unknown,
        })
    }

    /// The address assigned to `iface` inside the prefix, if any.
    fn static_lease(
        &mut self,
        iface: &Iface,
        prefix: &PrefixInfo,
    ) -> Result<Option<(u64, Ipv4Addr)>, BackendError> {
        if iface.ip_count == Some(0) {
            return Ok(None);
        }
        let param = if iface.vm {
            "vminterface_id"
        } else {
            "interface_id"
        };
        let v = self.get_json(&format!(
            "/api/ipam/ip-addresses/?{param}={}&parent={}&limit={PAGE}",
            iface.id,
            enc(&prefix.network.to_string())
        ))?;
        static_address(&v, prefix.network)
    }

    fn owner(&mut self, iface: &Iface) -> Result<Option<Owner>, BackendError> {
        let path = if iface.vm {
            format!("/api/virtualization/virtual-machines/{}/", iface.owner)
        } else {
            format!("/api/dcim/devices/{}/", iface.owner)
        };
        let r = self.send(Method::Get, &path, None, None)?;
        match r.status {
            200 => Ok(owner_from(&parse_json(&r)?)),
            404 => Ok(None),
            _ => Err(http_error(&r)),
        }
    }

    /// DNS servers: the device's or VM's, else those of the prefix's site.
    fn dns(
        &mut self,
        owner: Option<&Owner>,
        prefix: &PrefixInfo,
    ) -> Result<Vec<Ipv4Addr>, BackendError> {
        if let Some(d) = owner.map(|o| dns_servers(&o.config_context)) {
            if !d.is_empty() {
                return Ok(d);
            }
        }
        let Some(scope) = prefix.scope else {
            return Ok(Vec::new());
        };
        if let Some((at, dns)) = lock(&self.shared.scope_dns).get(&scope) {
            if at.elapsed() < PREFIX_TTL {
                return Ok(dns.clone());
            }
        }
        let path = format!(
            "/api/extras/config-contexts/?{}={}&is_active=true&limit={PAGE}",
            scope.0, scope.1
        );
        let Some(r) = self.get_optional(&path, "config contexts")? else {
            return Ok(Vec::new());
        };
        let dns = match r.status {
            200 => dns_servers(&merge_contexts(&parse_json(&r)?)?),
            400 => {
                self.warn_once(format!("scope {}", scope.0), || {
                    format!(
                        "config contexts cannot be filtered by {}: {}",
                        scope.0,
                        snippet(&r.body)
                    )
                });
                Vec::new()
            }
            _ => return Err(http_error(&r)),
        };
        let mut cache = lock(&self.shared.scope_dns);
        if cache.len() >= CACHE_MAX {
            cache.clear();
        }
        cache.insert(scope, (Instant::now(), dns.clone()));
        Ok(dns)
    }

    fn read_pool(&mut self, prefix: &PrefixInfo) -> Result<Vec<DhcpRecord>, BackendError> {
        // 4.0+: only the fields used; a full address is ten times larger.
        let fields = if self.api().is_some_and(ApiVersion::field_selection) {
            "&fields=id,address,status,custom_fields,last_updated"
        } else {
            ""
        };
        let mut out = Vec::new();
        let mut offset = 0usize;
        loop {
            let v = self.get_json(&format!(
                "/api/ipam/ip-addresses/?parent={}&status=dhcp&limit={PAGE}&offset={offset}{fields}",
                enc(&prefix.network.to_string())
            ))?;
            let n = results(&v)?.len();
            let (page, total) = parse_pool(&v, prefix.network)?;
            out.extend(page);
            offset += n;
            if n == 0 || offset >= total {
                break;
            }
            if offset >= MAX_RECORDS {
                log::warn!(
                    "netbox: {} has more than {MAX_RECORDS} DHCP addresses; reading only those",
                    prefix.network
                );
                break;
            }
        }
        Ok(out)
    }

    /// One address and its ETag; None when it is gone.
    fn get_record(
        &mut self,
        id: u64,
    ) -> Result<Option<(DhcpRecord, Option<String>)>, BackendError> {
        let r = self.send(
            Method::Get,
            &format!("/api/ipam/ip-addresses/{id}/"),
            None,
            None,
        )?;
        match r.status {
            200 => {
                let v = parse_json(&r)?;
                let missing = missing_on(&v);
                if !missing.is_empty() {
                    return Err(missing_fields_error(&missing));
                }
                let rec = record_from(&v)
                    .ok_or_else(|| BackendError::BadAnswer(format!("address {id} is not IPv4")))?;
                Ok(Some((rec, r.etag)))
            }
            404 => Ok(None),
            _ => Err(http_error(&r)),
        }
    }

    /// PATCH of an address: the record as answered, `Some(Err(()))` when an
    /// `If-Match` failed (412), None when the address is gone.
    fn patch(
        &mut self,
        id: u64,
        body: &Value,
        if_match: Option<&str>,
    ) -> Result<Option<Result<DhcpRecord, ()>>, BackendError> {
        let r = self.send(
            Method::Patch,
            &format!("/api/ipam/ip-addresses/{id}/"),
            Some(body),
            if_match,
        )?;
        match r.status {
            200 => {
                let v = parse_json(&r)?;
                record_from(&v)
                    .map(|rec| Some(Ok(rec)))
                    .ok_or_else(|| BackendError::BadAnswer(format!("address {id} is not IPv4")))
            }
            404 => Ok(None),
            412 => Ok(Some(Err(()))),
            _ => Err(http_error(&r)),
        }
    }

    /// Writes `body` to `rec` if `ok` holds for it, without losing a write
    /// that lands in between: from 4.6 with `If-Match` (and, when that fails,
    /// once more from a fresh read); before, by reading the record back when
    /// `verify` asks for it.
    fn write_checked(
        &mut self,
        rec: &DhcpRecord,
        body: &Value,
        ok: impl Fn(&DhcpRecord) -> bool,
        verify: bool,
    ) -> Result<Write, BackendError> {
        if !self.conditional() {
            return Ok(match self.patch(rec.id, body, None)? {
                None => Write::Gone,
                Some(Err(())) => Write::Refused,
                Some(Ok(answer)) if !verify => Write::Done(answer),
                Some(Ok(_)) => match self.get_record(rec.id)? {
                    Some((fresh, _)) => Write::Done(fresh),
                    None => Write::Gone,
                },
            });
        }
        let mut tag = rec.last_updated.as_deref().and_then(etag_from);
        for _ in 0..2 {
            if tag.is_none() {
                let Some((fresh, t)) = self.get_record(rec.id)? else {
                    return Ok(Write::Gone);
                };
                if !ok(&fresh) {
                    return Ok(Write::Refused);
                }
                // A server that sends no ETag has no If-Match either.
                tag = Some(t.unwrap_or_else(|| "*".into()));
            }
            match self.patch(rec.id, body, tag.as_deref())? {
                None => return Ok(Write::Gone),
                Some(Ok(answer)) => return Ok(Write::Done(answer)),
                Some(Err(())) => tag = None,
            }
        }
        Ok(Write::Refused)
    }

    // ---- jobs ----

    fn run_job(&mut self, job: &Job) -> Result<Outcome, BackendError> {
        match &job.kind {
            JobKind::Offer => self.offer(job),
            JobKind::Confirm { addr, lease_secs } => {
                let known = known_for(job, *addr);
                if let Some(k) = known.filter(|k| k.kind == LeaseKind::Dynamic) {
                    if let Some(out) = self.renew_known(job, k, *lease_secs)? {
                        return Ok(out);
                    }
                }
                self.confirm(job, *addr, *lease_secs, known)
            }
            JobKind::Release { addr } => match known_for(job, *addr) {
                Some(k) if k.kind != LeaseKind::Dynamic => Ok(Outcome::Done),
                Some(k) => self.release_known(job, k),
                None => self.release(job, *addr),
            },
            JobKind::Decline { addr } => self.decline(job, *addr),
            JobKind::Inform { addr } => self.inform(job, *addr),
        }
    }

    /// Who the client is, or why it gets nothing.
    fn client(&mut self, job: &Job) -> Result<Result<Option<Iface>, NoLease>, BackendError> {
        let mac = job.client.mac;
        Ok(match self.resolve(mac)? {
            Resolved::Known(i) => Ok(Some(i)),
            Resolved::Ignored => {
                log::debug!("netbox: {mac} is on LAG members that do not answer for their LAG");
                Err(NoLease::UnknownDevice)
            }
            Resolved::Unknown if self.shared.allow_unknown => Ok(None),
            Resolved::Unknown => Err(NoLease::UnknownDevice),
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn lease(
        &mut self,
        job: &Job,
        prefix: &PrefixInfo,
        addr: Ipv4Addr,
        kind: LeaseKind,
        record: u64,
        owner: Option<&Owner>,
        lease_secs: u32,
    ) -> Result<Lease, BackendError> {
        Ok(Lease {
            addr,
            network: prefix.network,
            gateway: prefix.gateway,
            dns: self.dns(owner, prefix)?,
            boot: owner.and_then(|o| boot_options(o, job.client.boot)),
            kind,
            record: Some(record.to_string()),
            lease_secs,
        })
    }

    fn owner_of(&mut self, iface: Option<&Iface>) -> Result<Option<Owner>, BackendError> {
        match iface {
            Some(i) => self.owner(i),
            None => Ok(None),
        }
    }

    fn offer(&mut self, job: &Job) -> Result<Outcome, BackendError> {
        let Some(prefix) = self.prefix(job.client.origin)? else {
            return Ok(Outcome::NoLease(NoLease::NoPrefix));
        };
        let iface = match self.client(job)? {
            Ok(i) => i,
            Err(why) => return Ok(Outcome::NoLease(why)),
        };
        let lease_secs = self.shared.lease_secs;
        if let Some(i) = &iface {
            if let Some((id, addr)) = self.static_lease(i, &prefix)? {
                let owner = self.owner(i)?;
                let l = self.lease(
                    job,
                    &prefix,
                    addr,
                    LeaseKind::Static,
                    id,
                    owner.as_ref(),
                    lease_secs,
                )?;
                return Ok(Outcome::Lease(l));
            }
        }
        let hold = job.now + Duration::from_secs(OFFER_HOLD_SECS);
        let rec = match self.allocate(job, &prefix, hold)? {
            Ok(r) => r,
            Err(why) => return Ok(Outcome::NoLease(why)),
        };
        let owner = self.owner_of(iface.as_ref())?;
        let l = self.lease(
            job,
            &prefix,
            rec.addr,
            LeaseKind::Dynamic,
            rec.id,
            owner.as_ref(),
            lease_secs,
        )?;
        Ok(Outcome::Lease(l))
    }

    /// Picks and claims a pool address until `hold` (OFFER).
    fn allocate(
        &mut self,
        job: &Job,
        prefix: &PrefixInfo,
        hold: SystemTime,
    ) -> Result<Result<DhcpRecord, NoLease>, BackendError> {
        let mac = job.client.mac;
        let now = job.now;
        let hostname = job.client.hostname.as_deref();
        let mut records = self.read_pool(prefix)?;
        let mut lost: Vec<Ipv4Addr> = Vec::new();
        let mut losses = 0u32;
        while losses < MAX_LOST_RACES {
            let mut skip = lost.clone();
            skip.extend(self.shared.claims.others(mac));
            let (rec, takeover) = match choose(&records, mac, now, &skip) {
                Dyn::Exhausted => return Ok(Err(NoLease::PoolExhausted)),
                // An own lease that runs past the hold is left as it is.
                Dyn::Own(r) if r.expire.is_none_or(|e| e >= hold) => return Ok(Ok(r)),
                Dyn::Own(r) if !r.expired(now) => {
                    // Still the client's: nobody else may take it, no check.
                    match self.patch(r.id, &lease_body(mac, hold, hostname, false), None)? {
                        Some(Ok(a)) if a.mac == Some(mac) => return Ok(Ok(a)),
                        _ => {
                            lost.push(r.addr);
                            losses += 1;
                            continue;
                        }
                    }
                }
                Dyn::Own(r) => (r, false),
                Dyn::Free(r) | Dyn::Expired(r) => (r, true),
            };
            match self.claim(&rec, mac, now, &lease_body(mac, hold, hostname, takeover))? {
                Write::Done(r) if r.mac == Some(mac) && r.dhcp => return Ok(Ok(r)),
                Write::Gone => {
                    // Deleted or renumbered since the read: read again.
                    records = self.read_pool(prefix)?;
                    losses += 1;
                }
                _ => {
                    log::debug!("netbox: lost {} to another claim", rec.addr);
                    lost.push(rec.addr);
                    losses += 1;
                }
            }
        }
        Err(BackendError::BadAnswer(format!(
            "lost {losses} address races in {}",
            prefix.network
        )))
    }

    /// A checked write of a lease onto a pool record, with the process-wide
    /// claim held around it.
    fn claim(
        &mut self,
        rec: &DhcpRecord,
        mac: MacAddr,
        now: SystemTime,
        body: &Value,
    ) -> Result<Write, BackendError> {
        if !self.shared.claims.take(rec.addr, mac) {
            return Ok(Write::Refused);
        }
        let r = self.write_checked(rec, body, |r| r.claimable(mac, now), true);
        if !matches!(&r, Ok(Write::Done(d)) if d.mac == Some(mac)) {
            self.shared.claims.give_back(rec.addr, mac);
        }
        r
    }

    /// Renewal of a dynamic lease the daemon handed out: one PATCH of the
    /// expiry. None: the record is not what the daemon remembers.
    fn renew_known(
        &mut self,
        job: &Job,
        known: &Known,
        lease_secs: u32,
    ) -> Result<Option<Outcome>, BackendError> {
        let Some(id) = known.record.as_deref().and_then(|r| r.parse::<u64>().ok()) else {
            return Ok(None);
        };
        let mac = job.client.mac;
        let expire = job.now + Duration::from_secs(u64::from(lease_secs));
        match self.patch(id, &expire_body(expire), None)? {
            Some(Ok(r)) if r.addr == known.addr && r.dhcp && r.mac == Some(mac) => {
                let mut lease = known.lease.clone();
                lease.addr = known.addr;
                lease.kind = LeaseKind::Dynamic;
                lease.record = Some(id.to_string());
                lease.lease_secs = lease_secs;
                Ok(Some(Outcome::Lease(lease)))
            }
            Some(Ok(r)) => {
                log::warn!(
                    "netbox: address {id} is now {} (dhcp: {}, mac: {:?}), not {}'s {}",
                    r.addr,
                    r.dhcp,
                    r.mac,
                    mac,
                    known.addr
                );
                Ok(None)
            }
            _ => Ok(None),
        }
    }

    fn confirm(
        &mut self,
        job: &Job,
        addr: Ipv4Addr,
        lease_secs: u32,
        known: Option<&Known>,
    ) -> Result<Outcome, BackendError> {
        let Some(prefix) = self.prefix(job.client.origin)? else {
            return Ok(Outcome::NoLease(NoLease::NoPrefix));
        };
        if !prefix.network.contains(&addr) {
            return Ok(Outcome::NoLease(NoLease::NotYours));
        }
        let iface = match self.client(job)? {
            Ok(i) => i,
            Err(why) => return Ok(Outcome::NoLease(why)),
        };
        if let Some(i) = &iface {
            if let Some((id, a)) = self.static_lease(i, &prefix)? {
                // A client with a static address may have only that one.
                if a != addr {
                    return Ok(Outcome::NoLease(NoLease::NotYours));
                }
                if let Some(k) = known.filter(|k| k.kind == LeaseKind::Static) {
                    let mut lease = k.lease.clone();
                    lease.record = Some(id.to_string());
                    lease.lease_secs = lease_secs;
                    return Ok(Outcome::Lease(lease));
                }
                let owner = self.owner(i)?;
                let l = self.lease(
                    job,
                    &prefix,
                    a,
                    LeaseKind::Static,
                    id,
                    owner.as_ref(),
                    lease_secs,
                )?;
                return Ok(Outcome::Lease(l));
            }
        }
        let mac = job.client.mac;
        let now = job.now;
        let expire = now + Duration::from_secs(u64::from(lease_secs));
        let hostname = job.client.hostname.as_deref();
        let records = self.read_pool(&prefix)?;
        let (rec, takeover) = match confirm(&records, mac, addr, now) {
            None => return Ok(Outcome::NoLease(NoLease::NotYours)),
            Some(Dyn::Own(r)) if !r.expired(now) => {
                match self.patch(r.id, &lease_body(mac, expire, hostname, false), None)? {
                    Some(Ok(a)) if a.mac == Some(mac) && a.dhcp => {
                        let owner = self.owner_of(iface.as_ref())?;
                        let l = self.lease(
                            job,
                            &prefix,
                            addr,
                            LeaseKind::Dynamic,
                            a.id,
                            owner.as_ref(),
                            lease_secs,
                        )?;
                        return Ok(Outcome::Lease(l));
                    }
                    _ => return Ok(Outcome::NoLease(NoLease::NotYours)),
                }
            }
            Some(Dyn::Own(r)) => (r, false),
            Some(Dyn::Free(r)) | Some(Dyn::Expired(r)) => (r, true),
            Some(Dyn::Exhausted) => return Ok(Outcome::NoLease(NoLease::NotYours)),
        };
        match self.claim(&rec, mac, now, &lease_body(mac, expire, hostname, takeover))? {
            Write::Done(r) if r.mac == Some(mac) && r.dhcp => {
                let owner = self.owner_of(iface.as_ref())?;
                let l = self.lease(
                    job,
                    &prefix,
                    addr,
                    LeaseKind::Dynamic,
                    r.id,
                    owner.as_ref(),
                    lease_secs,
                )?;
                Ok(Outcome::Lease(l))
            }
            _ => Ok(Outcome::NoLease(NoLease::NotYours)),
        }
    }

    fn release_known(&mut self, job: &Job, known: &Known) -> Result<Outcome, BackendError> {
        let Some(id) = known.record.as_deref().and_then(|r| r.parse::<u64>().ok()) else {
            return self.release(job, known.addr);
        };
        let mac = job.client.mac;
        let Some((rec, _)) = self.get_record(id)? else {
            return Ok(Outcome::NoLease(NoLease::NotYours));
        };
        self.expire_own(job, &rec, mac, known.addr)
    }

    fn release(&mut self, job: &Job, addr: Ipv4Addr) -> Result<Outcome, BackendError> {
        let Some(prefix) = self.prefix(job.client.origin)? else {
            return Ok(Outcome::NoLease(NoLease::NoPrefix));
        };
        if !prefix.network.contains(&addr) {
            return Ok(Outcome::NoLease(NoLease::NotYours));
        }
        let records = self.read_pool(&prefix)?;
        match records.iter().find(|r| r.addr == addr) {
            Some(rec) => {
                let rec = rec.clone();
                self.expire_own(job, &rec, job.client.mac, addr)
            }
            None => Ok(Outcome::NoLease(NoLease::NotYours)),
        }
    }

    /// RELEASE: the client's lease on `rec` ends now; the MAC stays.
    fn expire_own(
        &mut self,
        job: &Job,
        rec: &DhcpRecord,
        mac: MacAddr,
        addr: Ipv4Addr,
    ) -> Result<Outcome, BackendError> {
        let ours = move |r: &DhcpRecord| r.dhcp && r.addr == addr && r.mac == Some(mac);
        if !ours(rec) {
            return Ok(Outcome::NoLease(NoLease::NotYours));
        }
        Ok(
            match self.write_checked(rec, &expire_body(job.now), ours, false)? {
                Write::Done(_) => Outcome::Done,
                Write::Refused | Write::Gone => Outcome::NoLease(NoLease::NotYours),
            },
        )
    }

    fn decline(&mut self, job: &Job, addr: Ipv4Addr) -> Result<Outcome, BackendError> {
        let Some(prefix) = self.prefix(job.client.origin)? else {
            return Ok(Outcome::NoLease(NoLease::NoPrefix));
        };
        if !prefix.network.contains(&addr) {
            return Ok(Outcome::NoLease(NoLease::NotYours));
        }
        let mac = job.client.mac;
        let now = job.now;
        // The client's own address, or a free one it was offered by a server
        // that lost the write.
        let may =
            move |r: &DhcpRecord| r.dhcp && r.addr == addr && (r.mac == Some(mac) || r.free(now));
        let records = self.read_pool(&prefix)?;
        let Some(rec) = records.iter().find(|r| may(r)).cloned() else {
            return Ok(Outcome::NoLease(NoLease::NotYours));
        };
        Ok(
            match self.write_checked(&rec, &decline_body(now), may, false)? {
                Write::Done(_) => Outcome::Done,
                Write::Refused | Write::Gone => Outcome::NoLease(NoLease::NotYours),
            },
        )
    }

    fn inform(&mut self, job: &Job, addr: Ipv4Addr) -> Result<Outcome, BackendError> {
        let Some(prefix) = self.prefix(job.client.origin)? else {
            return Ok(Outcome::NoLease(NoLease::NoPrefix));
        };
        let iface = match self.client(job)? {
            Ok(i) => i,
            Err(why) => return Ok(Outcome::NoLease(why)),
        };
        let owner = self.owner_of(iface.as_ref())?;
        Ok(Outcome::Lease(Lease {
            addr,
            network: prefix.network,
            gateway: prefix.gateway,
            dns: self.dns(owner.as_ref(), &prefix)?,
            boot: None,
            kind: LeaseKind::Dynamic,
            record: None,
            lease_secs: 0,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    /// Answers of the Netbox test double (tests/netbox_server.py --dump) for
    /// the 3.x (v3) and 4.x (v4) API generations.
    fn fixture(generation: &str, name: &str) -> Value {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/netbox")
            .join(generation)
            .join(name);
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
        serde_json::from_str(&text).unwrap()
    }

    const GENERATIONS: [&str; 2] = ["v3", "v4"];

    fn ip(n: u8) -> Ipv4Addr {
        Ipv4Addr::new(192, 0, 2, n)
    }
    fn mac(s: &str) -> MacAddr {
        s.parse().unwrap()
    }
    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }
    fn net(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }
    /// 2025-01-06, the double's clock.
    const NOW: u64 = 1_736_164_800;

    #[test]
    fn prefixes_and_their_site_or_scope() {
        for g in GENERATIONS {
            let list = parse_prefixes(&fixture(g, "prefixes_contains.json")).unwrap();
            assert_eq!(list.len(), 2, "{g}");
            let p = most_specific(&list, ip(1)).unwrap();
            assert_eq!(
                (p.id, p.network, p.scope),
                (1, net("192.0.2.0/24"), Some(("site_id", 1))),
                "{g}"
            );
            let container = list.iter().find(|p| p.id == 2).unwrap();
            assert_eq!(container.scope, None, "{g}");
            assert_eq!(most_specific(&list, Ipv4Addr::new(10, 0, 0, 1)), None);
        }
        // 4.2+ scopes other than a site.
        let p = json!({"results": [{"id": 9, "prefix": "10.1.0.0/16", "scope_type": "dcim.location", "scope_id": 4, "scope": {"id": 4}}]});
        assert_eq!(
            parse_prefixes(&p).unwrap()[0].scope,
            Some(("location_id", 4))
        );
        let p = json!({"results": [{"id": 9, "prefix": "10.1.0.0/16", "scope_type": "dcim.region", "scope": {"id": 2}}]});
        assert_eq!(parse_prefixes(&p).unwrap()[0].scope, Some(("region_id", 2)));
        // Two equal prefixes (VRFs): the lowest id, deterministically.
        let twins = vec![
            PrefixInfo {
                id: 7,
                network: net("192.0.2.0/24"),
                scope: None,
                gateway: None,
            },
            PrefixInfo {
                id: 3,
                network: net("192.0.2.0/24"),
                scope: None,
                gateway: None,
            },
        ];
        assert_eq!(most_specific(&twins, ip(9)).unwrap().id, 3);
    }

    #[test]
    fn interfaces_of_both_generations() {
        for g in GENERATIONS {
            let list = parse_interfaces(&fixture(g, "interfaces_mac.json"), false).unwrap();
            assert_eq!(
                list,
                vec![Iface {
                    id: 1,
                    vm: false,
                    owner: 1,
                    name: "bmc0".into(),
                    is_lag: false,
                    lag: None,
                    macs: vec![mac("14:18:77:aa:bb:01")],
                    ip_count: Some(2),
                }],
                "{g}"
            );
            let lag = parse_interfaces(&fixture(g, "interfaces_lag_shared.json"), false).unwrap();
            assert_eq!(lag.len(), 2);
            assert!(lag[0].is_lag && lag[0].lag.is_none(), "{g}");
            assert_eq!((lag[1].id, lag[1].lag), (6, Some(5)), "{g}");
            let vms = parse_interfaces(&fixture(g, "vminterfaces_mac.json"), true).unwrap();
            assert_eq!(
                (vms[0].id, vms[0].vm, vms[0].owner, vms[0].macs.clone()),
                (1, true, 1, vec![mac("52:54:00:00:00:01")]),
                "{g}"
            );
        }
        // 4.2+: every MAC of the interface, the primary first.
        let v = json!({"id": 3, "device": {"id": 1}, "name": "x", "type": {"value": "1000base-t"},
            "mac_address": "02:00:00:00:00:02",
            "primary_mac_address": {"id": 8, "mac_address": "02:00:00:00:00:02"},
            "mac_addresses": [{"mac_address": "02:00:00:00:00:01"}, {"mac_address": "02:00:00:00:00:02"}]});
        assert_eq!(
            iface_from(&v, false).unwrap().macs,
            vec![mac("02:00:00:00:00:02"), mac("02:00:00:00:00:01")]
        );
    }

    fn iface(id: u64, lag: Option<u64>, is_lag: bool, macs: &[&str]) -> Iface {
        Iface {
            id,
            vm: false,
            owner: 2,
            name: format!("if{id}"),
            is_lag,
            lag,
            macs: macs.iter().map(|m| mac(m)).collect(),
            ip_count: None,
        }
    }

    #[test]
    fn lag_rule() {
        let m = "3c:fd:fe:00:00:01";
        // The LAG has the MAC: the LAG, not its member.
        let both = [iface(6, Some(5), false, &[m]), iface(5, None, true, &[m])];
        assert_eq!(pick_interface(&both, mac(m)), Pick::Use(both[1].clone()));
        // A plain interface wins over LAG members.
        let mixed = [iface(6, Some(5), false, &[m]), iface(9, None, false, &[m])];
        assert_eq!(pick_interface(&mixed, mac(m)), Pick::Use(mixed[1].clone()));
        // Of plain interfaces, the lowest id.
        let two = [iface(9, None, false, &[m]), iface(4, None, false, &[m])];
        assert_eq!(pick_interface(&two, mac(m)), Pick::Use(two[1].clone()));
        // Only members: the device's interfaces decide.
        let members = [
            iface(7, Some(5), false, &[m]),
            iface(6, Some(5), false, &[m]),
        ];
        assert_eq!(
            pick_interface(&members, mac(m)),
            Pick::Members { lag: 5, device: 2 }
        );
        // An answer that ignored the filter hands out nothing.
        assert_eq!(
            pick_interface(&[iface(1, None, false, &["02:00:00:00:00:09"])], mac(m)),
            Pick::None
        );
        assert_eq!(pick_interface(&[], mac(m)), Pick::None);

        // The LAG without a MAC answers for its lowest member's MAC only.
        for g in GENERATIONS {
            let all = parse_interfaces(&fixture(g, "interfaces_device.json"), false).unwrap();
            let eno1 = mac("3c:fd:fe:00:00:11");
            let eno2 = mac("3c:fd:fe:00:00:12");
            let lookup: Vec<Iface> = all
                .iter()
                .filter(|i| i.macs.contains(&eno1))
                .cloned()
                .collect();
            assert_eq!(
                pick_interface(&lookup, eno1),
                Pick::Members { lag: 8, device: 3 }
            );
            match pick_lag_owner(&all, 8, eno1) {
                Pick::Use(l) => assert_eq!((l.id, l.is_lag, l.ip_count), (8, true, Some(1))),
                other => panic!("{g}: {other:?}"),
            }
            assert_eq!(pick_lag_owner(&all, 8, eno2), Pick::Ignore, "{g}");
            assert_eq!(pick_lag_owner(&all, 99, eno1), Pick::Ignore, "{g}");
        }
        // The LAG with a MAC of its own: a member's other MAC is ignored.
        let dev = [
            iface(5, None, true, &["3c:fd:fe:00:00:01"]),
            iface(7, Some(5), false, &["3c:fd:fe:00:00:02"]),
        ];
        assert_eq!(
            pick_lag_owner(&dev, 5, mac("3c:fd:fe:00:00:02")),
            Pick::Ignore
        );
    }

    fn pool(g: &str) -> Vec<DhcpRecord> {
        let (recs, count) =
            parse_pool(&fixture(g, "ip_addresses_pool.json"), net("192.0.2.0/24")).unwrap();
        assert_eq!((recs.len(), count), (6, 6), "{g}");
        recs
    }

    #[test]
    fn pool_of_both_generations() {
        let v3 = pool("v3");
        assert_eq!(v3, pool("v4"));
        let r = |n: u8| v3.iter().find(|r| r.addr == ip(n)).unwrap().clone();
        assert_eq!(
            r(20),
            DhcpRecord {
                id: 20,
                addr: ip(20),
                dhcp: true,
                mac: Some(mac("02:00:00:00:00:20")),
                allocated: true,
                expire: Some(at(4_070_908_800)),
                last_updated: Some("2025-01-06T12:00:00.123456Z".into()),
            }
        );
        assert!(!r(21).allocated && r(21).expire.is_none());
        // An empty pydhcp_mac is unallocated.
        assert!(!r(24).allocated);
        assert_eq!(r(22).expire, Some(at(1_577_836_800)));
        // Unallocated with an expiry ahead: held (a DECLINE).
        assert!(!r(25).allocated && !r(25).free(at(NOW)));
    }

    #[test]
    fn allocation_order() {
        let recs = pool("v4");
        let now = at(NOW);
        let new = mac("02:00:00:00:00:99");
        let pick = |skip: &[u8]| {
            let skip: Vec<Ipv4Addr> = skip.iter().map(|n| ip(*n)).collect();
            match choose(&recs, new, now, &skip) {
                Dyn::Free(r) => format!("free {}", r.addr),
                Dyn::Expired(r) => format!("expired {}", r.addr),
                Dyn::Own(r) => format!("own {}", r.addr),
                Dyn::Exhausted => "exhausted".into(),
            }
        };
        // Unallocated lowest first, then expired longest ago; never a live
        // lease or a held address.
        assert_eq!(pick(&[]), "free 192.0.2.21");
        assert_eq!(pick(&[21]), "free 192.0.2.24");
        assert_eq!(pick(&[21, 24]), "expired 192.0.2.22");
        assert_eq!(pick(&[21, 24, 22]), "expired 192.0.2.23");
        assert_eq!(pick(&[21, 24, 22, 23]), "exhausted");
        // The client's own address first, live or expired.
        for n in [20, 22, 23] {
            let own = mac(&format!("02:00:00:00:00:{n}"));
            assert!(
                matches!(choose(&recs, own, now, &[]), Dyn::Own(r) if r.addr == ip(n)),
                "{n}"
            );
        }
        // Of several own addresses, the newest expiry; none counts as newest.
        let mut two = recs.clone();
        for r in two
            .iter_mut()
            .filter(|r| r.addr == ip(21) || r.addr == ip(24))
        {
            r.mac = Some(new);
            r.allocated = true;
            r.expire = Some(at(NOW - 10));
        }
        two.iter_mut().find(|r| r.addr == ip(24)).unwrap().expire = Some(at(NOW - 5));
        assert!(matches!(choose(&two, new, now, &[]), Dyn::Own(r) if r.addr == ip(24)));
        two.iter_mut().find(|r| r.addr == ip(21)).unwrap().expire = None;
        assert!(matches!(choose(&two, new, now, &[]), Dyn::Own(r) if r.addr == ip(21)));
        // Not status DHCP (an answer after an edit): never.
        let mut edited = recs.clone();
        for r in edited.iter_mut() {
            r.dhcp = false;
        }
        assert_eq!(choose(&edited, new, now, &[]), Dyn::Exhausted);

        // REQUEST for a given address.
        let c = |m: &str, n: u8| confirm(&recs, mac(m), ip(n), now);
        assert!(matches!(c("02:00:00:00:00:20", 20), Some(Dyn::Own(_))));
        assert_eq!(c("02:00:00:00:00:99", 20), None);
        assert!(matches!(c("02:00:00:00:00:99", 21), Some(Dyn::Free(_))));
        assert!(matches!(c("02:00:00:00:00:99", 22), Some(Dyn::Expired(_))));
        assert_eq!(c("02:00:00:00:00:99", 25), None);
        assert_eq!(c("02:00:00:00:00:99", 30), None);
        // A lease with a MAC and no expiry is its client's for good.
        let mut forever = recs.clone();
        forever
            .iter_mut()
            .find(|r| r.addr == ip(22))
            .unwrap()
            .expire = None;
        assert_eq!(confirm(&forever, new, ip(22), now), None);
    }

    #[test]
    fn static_gateway_and_missing_fields() {
        for g in GENERATIONS {
            let v = fixture(g, "ip_addresses_static.json");
            assert_eq!(
                static_address(&v, net("192.0.2.0/24")).unwrap(),
                Some((10, ip(10)))
            );
            assert_eq!(
                static_address(&v, net("198.51.100.0/24")).unwrap(),
                Some((12, Ipv4Addr::new(198, 51, 100, 12)))
            );
            assert_eq!(static_address(&v, net("203.0.113.0/24")).unwrap(), None);
            let gw = fixture(g, "ip_addresses_gateway.json");
            assert_eq!(
                first_address(&gw, net("192.0.2.0/24")).unwrap(),
                Some(ip(1))
            );
            // A DHCP address assigned to an interface is not a static lease.
            let mut dhcp = v.clone();
            for r in dhcp["results"].as_array_mut().unwrap() {
                r["status"] = json!({"value": "dhcp", "label": "DHCP"});
            }
            assert_eq!(static_address(&dhcp, net("192.0.2.0/24")).unwrap(), None);

            // Addresses without the custom fields: a clear error.
            let mut bare = fixture(g, "ip_addresses_pool.json");
            for r in bare["results"].as_array_mut().unwrap() {
                r["custom_fields"]
                    .as_object_mut()
                    .unwrap()
                    .remove("pydhcp_hostname");
            }
            let e = parse_pool(&bare, net("192.0.2.0/24")).unwrap_err();
            assert!(
                e.to_string()
                    .contains("custom field pydhcp_hostname is not defined"),
                "{e}"
            );
            // The custom field list, 3.x content_types or 4.x object_types.
            let cf = fixture(g, "custom_fields.json");
            assert!(missing_custom_fields(&cf).unwrap().is_empty(), "{g}");
            let mut two = cf.clone();
            two["results"]
                .as_array_mut()
                .unwrap()
                .retain(|f| f["name"] != "pydhcp_expire");
            assert_eq!(missing_custom_fields(&two).unwrap(), vec!["pydhcp_expire"]);
            let mut wrong = cf.clone();
            for f in wrong["results"].as_array_mut().unwrap() {
                for k in ["object_types", "content_types"] {
                    if f.get(k).is_some() {
                        f[k] = json!(["dcim.device"]);
                    }
                }
            }
            assert_eq!(
                missing_custom_fields(&wrong).unwrap(),
                CUSTOM_FIELDS.to_vec()
            );
        }
        let e = missing_fields_error(&["pydhcp_mac", "pydhcp_expire"]).to_string();
        assert!(
            e.contains("custom fields pydhcp_mac, pydhcp_expire are not defined for IP addresses; create them"),
            "{e}"
        );
    }

    #[test]
    fn config_contexts_dns_and_boot() {
        for g in GENERATIONS {
            let dev = owner_from(&fixture(g, "device.json")).unwrap();
            assert_eq!(dev.name, "bmc-test-01");
            assert_eq!(
                dns_servers(&dev.config_context),
                vec![Ipv4Addr::new(198, 51, 100, 53)]
            );
            let boot = |c| boot_options(&dev, c);
            assert_eq!(boot(BootClient::None), None);
            assert_eq!(
                boot(BootClient::Bios),
                Some(Boot {
                    server: Some(ip(69)),
                    server_name: Some("192.0.2.69".into()),
                    file: "pxelinux.0".into()
                })
            );
            assert_eq!(boot(BootClient::Uefi).unwrap().file, "grubx64.efi");
            assert_eq!(
                boot(BootClient::Ipxe).unwrap().file,
                "http://192.0.2.69/boot.ipxe"
            );
            let http = boot(BootClient::UefiHttp).unwrap();
            assert_eq!((http.server, http.server_name), (None, None));
            // The redeploy guard.
            let mut off = dev.clone();
            off.custom_fields["redeploy"] = json!(false);
            assert_eq!(boot_options(&off, BootClient::Bios), None);
            let mut wrong = dev.clone();
            wrong.custom_fields["confirm_redeploy"] = json!("other");
            assert_eq!(boot_options(&wrong, BootClient::Bios), None);

            let vm = owner_from(&fixture(g, "virtual_machine.json")).unwrap();
            assert_eq!(dns_servers(&vm.config_context), vec![ip(153)]);
            assert_eq!(boot_options(&vm, BootClient::Bios), None);

            // The site's contexts, merged by weight: the later DNS list wins,
            // the TFTP server of the lighter one stays.
            let site = merge_contexts(&fixture(g, "config_contexts_site.json")).unwrap();
            assert_eq!(dns_servers(&site), vec![ip(54), ip(55)]);
            assert_eq!(
                site["pydhcp_configuration"]["tftp_server"],
                json!("192.0.2.69")
            );
        }
        // Order by weight, then name, whatever the answer's order; inactive
        // contexts do not count.
        let list = json!({"results": [
            {"name": "b", "weight": 10, "data": {"pydhcp_configuration": {"dns_servers": ["192.0.2.2"]}}},
            {"name": "a", "weight": 10, "data": {"pydhcp_configuration": {"dns_servers": ["192.0.2.1"]}}},
            {"name": "z", "weight": 5, "data": {"pydhcp_configuration": {"dns_servers": ["192.0.2.9"]}}},
            {"name": "off", "weight": 99, "is_active": false, "data": {"pydhcp_configuration": {"dns_servers": ["192.0.2.7"]}}},
        ]});
        assert_eq!(dns_servers(&merge_contexts(&list).unwrap()), vec![ip(2)]);
        let s = json!({"pydhcp_configuration": {"dns_servers": "192.0.2.1, 192.0.2.2"}});
        assert_eq!(dns_servers(&s), vec![ip(1), ip(2)]);
    }

    #[test]
    fn versions_tokens_and_bodies() {
        let v = |s: &str| ApiVersion::parse(s);
        assert_eq!(v("4.2"), Some(ApiVersion { major: 4, minor: 2 }));
        assert_eq!(v("v3.7.8"), Some(ApiVersion { major: 3, minor: 7 }));
        assert_eq!(
            v("4.2.3-Docker-3.0.2"),
            Some(ApiVersion { major: 4, minor: 2 })
        );
        for bad in ["", "4", "x.y", "four.two"] {
            assert_eq!(v(bad), None, "{bad}");
        }
        let status3 = fixture("v3", "status.json");
        let status4 = fixture("v4", "status.json");
        let release = |s: &Value| v(s["netbox-version"].as_str().unwrap()).unwrap();
        assert!(!release(&status3).field_selection());
        assert!(release(&status4).field_selection() && release(&status4).conditional_writes());
        let v41 = v("4.1").unwrap();
        assert!(v41.field_selection() && !v41.conditional_writes());
        for a in [v41, release(&status3)] {
            assert_eq!(ApiVersion::unpack(a.packed()), Some(a));
        }
        assert_eq!(ApiVersion::unpack(0), None);

        assert_eq!(auth_header("0123abcd"), "Token 0123abcd");
        assert_eq!(auth_header("nbt_key.secret"), "Bearer nbt_key.secret");

        assert_eq!(
            etag_from("2025-01-06T12:00:00.123456Z").as_deref(),
            Some("W/\"2025-01-06T12:00:00.123456+00:00\"")
        );
        assert_eq!(
            etag_from("2025-01-06T12:00:00+00:00").as_deref(),
            Some("W/\"2025-01-06T12:00:00+00:00\"")
        );
        assert_eq!(etag_from("2025-01-06T13:00:00+01:00"), None);
        assert_eq!(etag_from("Z"), None);

        assert_eq!(netbox_time(at(1_893_456_000)), "2030-01-01T00:00:00+00:00");
        assert_eq!(
            parse_expire(&netbox_time(at(1_893_456_000))),
            Some(at(1_893_456_000))
        );
        let m = mac("02:00:00:00:00:0a");
        assert_eq!(
            lease_body(m, at(1_893_456_000), None, false),
            json!({"custom_fields": {"pydhcp_mac": "02:00:00:00:00:0A", "pydhcp_expire": "2030-01-01T00:00:00+00:00"}})
        );
        assert_eq!(
            lease_body(m, at(1_893_456_000), None, true)["custom_fields"]["pydhcp_hostname"],
            Value::Null
        );
        assert_eq!(
            lease_body(m, at(1_893_456_000), Some("bmc-1"), false)["custom_fields"]
                ["pydhcp_hostname"],
            json!("bmc-1")
        );
        assert_eq!(
            decline_body(at(1_893_452_400)),
            json!({"custom_fields": {"pydhcp_mac": null, "pydhcp_expire": "2030-01-01T00:00:00+00:00"}})
        );
        assert_eq!(enc("192.0.2.0/24"), "192.0.2.0%2F24");
        assert_eq!(enc("14:18:77:AA:BB:01"), "14%3A18%3A77%3AAA%3ABB%3A01");

        // Error answers of both generations.
        for g in GENERATIONS {
            let r = Reply {
                status: 400,
                body: fixture(g, "unknown_custom_field_400.json")
                    .to_string()
                    .into_bytes(),
                etag: None,
            };
            assert!(
                matches!(http_error(&r), BackendError::BadAnswer(m) if m.contains("pydhcp_mac")),
                "{g}"
            );
            let r = Reply {
                status: 400,
                body: fixture(g, "tag_unknown_400.json").to_string().into_bytes(),
                etag: None,
            };
            assert!(matches!(
                http_error(&r),
                BackendError::Http { status: 400, .. }
            ));
            assert!(fixture(g, "invalid_token_403.json")["detail"].is_string());
            assert!(fixture(g, "not_found_404.json")["detail"].is_string());
            let one = record_from(&fixture(g, "ip_address.json")).unwrap();
            assert_eq!((one.id, one.addr, one.allocated), (21, ip(21), false));
        }
        let named = Reply {
            status: 400,
            body: br#"{"custom_fields": ["Unknown field name 'pydhcp_expire' in custom field data."]}"#
                .to_vec(),
            etag: None,
        };
        assert!(
            matches!(http_error(&named), BackendError::BadAnswer(m) if m.starts_with("custom field pydhcp_expire is not defined"))
        );
        let long = Reply {
            status: 500,
            body: vec![b'x'; 1000],
            etag: None,
        };
        assert!(
            matches!(http_error(&long), BackendError::Http { status: 500, body } if body.chars().count() == ERR_SNIPPET + 1)
        );
    }

    #[test]
    fn garbage_never_panics() {
        let shapes = [
            json!(null),
            json!([]),
            json!("results"),
            json!({"results": null}),
            json!({"results": [1, "x", null, [], {"prefix": 5}, {"id": "a", "prefix": "2001:db8::/32"}]}),
            json!({"results": [{"id": 1, "address": "192.0.2.1"}, {"id": -1, "address": "::1/64"}, {"id": 2, "address": 7}]}),
            json!({"results": [{"id": 3, "address": "192.0.2.3/24", "status": 5, "custom_fields": [1], "tags": "x"}]}),
            json!({"results": [{"id": 4, "device": {"id": "x"}, "type": [], "lag": 3, "mac_address": 5, "mac_addresses": "x", "primary_mac_address": [1]}]}),
            json!({"results": [{"id": 4, "device": {"id": 1}, "mac_addresses": [null, {"mac_address": "zz"}]}]}),
            json!({"results": [{"name": 1, "weight": "x", "data": [1]}, {"data": {"pydhcp_configuration": 5}}]}),
            json!({"count": -1, "results": []}),
            json!({"config_context": {"pydhcp_configuration": {"dns_servers": [1, null, "x"], "tftp_server": 5}}, "custom_fields": {"redeploy": "yes", "confirm_redeploy": 3}}),
        ];
        for s in &shapes {
            let _ = parse_prefixes(s);
            let _ = parse_interfaces(s, false);
            let _ = parse_interfaces(s, true);
            let _ = parse_pool(s, net("192.0.2.0/24"));
            let _ = static_address(s, net("192.0.2.0/24"));
            let _ = first_address(s, net("192.0.2.0/24"));
            let _ = missing_custom_fields(s);
            let _ = merge_contexts(s);
            let _ = record_from(s);
            let _ = scope_of(s);
            let _ = iface_from(s, false);
            if let Some(o) = owner_from(s) {
                let _ = dns_servers(&o.config_context);
                let _ = boot_options(&o, BootClient::Bios);
            }
            let _ = dns_servers(s);
        }
        assert!(parse_prefixes(&json!([])).is_err());
        assert!(parse_interfaces(&shapes[7], false).unwrap().is_empty());
        let odd = parse_interfaces(&shapes[8], false).unwrap();
        assert!(odd[0].macs.is_empty());
        // Garbage in custom fields: an allocated address of nobody known.
        let r = record_from(
            &json!({"id": 5, "address": "192.0.2.5/24", "status": {"value": "dhcp"},
            "custom_fields": {"pydhcp_mac": "not a mac", "pydhcp_expire": "soon"}}),
        )
        .unwrap();
        assert!(r.dhcp && r.allocated && r.mac.is_none() && r.expire.is_none());
        for garbage in [&b"<html>"[..], b"", b"{", b"\xff\xfe"] {
            let r = Reply {
                status: 200,
                body: garbage.to_vec(),
                etag: None,
            };
            assert!(matches!(parse_json(&r), Err(BackendError::BadAnswer(_))));
        }
    }
}
