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
//! DORA 5, a renewal the daemon knows 1 (dynamic) or 2 (static). Known
//! dynamic renewals that reach a worker together share 1 (`batch.rs`). Every HTTP
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
//!   no call; made of the UTC time, also when the answer shows
//!   `last_updated` in another `TIME_ZONE`), and Netbox checks it under a
//!   row lock: a write that lands
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
//!   without them. The error says which fields to create, also when a write
//!   finds one undefined (a list of messages before 4.6, by field from 4.6).
//! - Answers are decoded into structs that ignore the fields they do not
//!   name and take null where Netbox sends it; Date & time custom fields
//!   come back normalised (`Z`) and are read as the instant they name.
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

use std::collections::HashSet;
use std::fmt;
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ipnet::Ipv4Net;
use serde_json::Value;

use super::claims::Claims;
use super::rest::{self, enc, etag, Client, Page, Reply, Request, Scheme, TtlCache};
use super::{Backend, BackendError, Boot, BootClient, Job, JobKind, LeaseKind, Outcome, Session};
use crate::config::BackendConf;
use crate::core::mac::MacAddr;

pub(crate) mod api;
mod batch;
mod leases;
pub(crate) mod rules;
#[cfg(test)]
mod tests;
mod version;

pub(crate) use super::context::dns_servers;
pub use super::rest::load_token;
pub use super::CUSTOM_FIELDS;
use leases::mac_text;
pub(crate) use rules::{
    choose, confirm, most_specific, pick_interface, pick_lag_owner, DhcpRecord, Iface, Owner, Pick,
    PrefixInfo, Scope,
};
pub use version::ApiVersion;
use version::SeenVersion;

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
/// Warnings remembered so as to be given once.
const MAX_WARNED: usize = 1024;

/// The Netbox backend. Cheap to share: sessions hold an `Arc` of it.
pub struct Netbox {
    shared: Arc<Shared>,
}

struct Shared {
    endpoint: rest::Endpoint,
    /// The whole `Authorization` header value.
    auth: String,
    allow_unknown: bool,
    lease_secs: u32,
    /// The server's API version, once an answer has shown it.
    api: SeenVersion,
    prefixes: TtlCache<Ipv4Addr, PrefixInfo>,
    /// DNS servers of a prefix's site or scope.
    scope_dns: TtlCache<Scope, Vec<Ipv4Addr>>,
    claims: Claims,
    warned: Mutex<HashSet<String>>,
}

impl fmt::Debug for Netbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Netbox")
            .field("url", &self.shared.endpoint.base)
            .field("api", &self.api())
            .field("allow_unknown_devices", &self.shared.allow_unknown)
            .finish_non_exhaustive()
    }
}

/// The `Authorization` value for a token: v2 tokens (`nbt_<key>.<secret>`,
/// Netbox 4.5+) go as `Bearer`, v1 tokens as `Token`.
pub fn auth_header(token: &str) -> String {
    let scheme = if token.starts_with("nbt_") {
        Scheme::Bearer
    } else {
        Scheme::Token
    };
    scheme.header(token)
}

impl Netbox {
    /// `lease_secs` is the lease time offered (`[relay] lease_time`); a
    /// Confirm job carries its own.
    pub fn new(conf: &BackendConf, token: String, lease_secs: u32) -> Result<Netbox, String> {
        let endpoint = rest::endpoint("netbox", conf, &token)?;
        Ok(Netbox {
            shared: Arc::new(Shared {
                endpoint,
                auth: auth_header(&token),
                allow_unknown: conf.allow_unknown_devices,
                lease_secs,
                api: SeenVersion::default(),
                prefixes: TtlCache::new(PREFIX_TTL, PREFIX_MISS_TTL),
                scope_dns: TtlCache::new(PREFIX_TTL, PREFIX_TTL),
                claims: Claims::default(),
                warned: Mutex::new(HashSet::new()),
            }),
        })
    }

    /// The server's API version, once an answer has shown it.
    pub fn api(&self) -> Option<ApiVersion> {
        self.shared.api.get()
    }

    fn new_session(&self) -> NetboxSession {
        NetboxSession::open(&self.shared)
    }
}

impl NetboxSession {
    /// A session of the backend `shared`, with a client of its own.
    fn open(shared: &Arc<Shared>) -> NetboxSession {
        let s = Arc::clone(shared);
        let seen = Arc::clone(shared);
        NetboxSession {
            client: Client::new("netbox", &s.endpoint, s.auth.clone(), MAX_BODY)
                .explain_errors(api::explain)
                // Every answer says the API version.
                .observe(Box::new(move |r: &Reply| {
                    if let Some(v) = r.version.as_deref().and_then(ApiVersion::parse) {
                        note_version(&seen, v);
                    }
                })),
            shared: s,
        }
    }
}

fn note_version(shared: &Shared, v: ApiVersion) {
    if shared.api.note(v) {
        log::info!("netbox: REST API version {v}");
    }
}

impl Backend for Netbox {
    /// Learns the version and checks the custom fields. Jobs do not depend on
    /// it: they read the version from every answer, and a missing custom
    /// field fails the dynamic leases that need it, with the same message.
    fn prepare(&self) -> Result<u32, BackendError> {
        let mut s = self.new_session();
        let r = s.check_server();
        let calls = s.client.calls();
        // The caller logs the failure itself.
        r.map(|()| calls).inspect_err(|e| {
            log::debug!("netbox: not ready after {calls} calls: {e}");
        })
    }

    fn session(&self) -> Box<dyn Session> {
        Box::new(self.new_session())
    }

    fn name(&self) -> &'static str {
        "netbox"
    }

    fn combines(&self) -> bool {
        true
    }
}

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
    client: Client,
}

impl Session for NetboxSession {
    fn run(&mut self, job: &Job) -> (Result<Outcome, BackendError>, u32) {
        self.client.reset_calls();
        let r = self.run_job(job);
        (r, self.client.calls())
    }

    fn run_batch(
        &mut self,
        jobs: &[Job],
        done: &mut dyn FnMut(usize, Result<Outcome, BackendError>, u32),
    ) {
        self.client.reset_calls();
        self.run_together(jobs, done);
    }
}

impl NetboxSession {
    fn conditional(&self) -> bool {
        self.shared
            .api
            .get()
            .is_some_and(ApiVersion::conditional_writes)
    }

    fn warn_once(&self, key: String, msg: impl FnOnce() -> String) {
        let mut w = self.shared.warned.lock().unwrap_or_else(|e| e.into_inner());
        if w.len() < MAX_WARNED && w.insert(key) {
            log::warn!("netbox: {}", msg());
        }
    }

    /// A GET whose 403 means "this token may not read that" rather than a bad
    /// token: the calls before it in the job were let in. None then, after a
    /// warning.
    fn get_optional(&mut self, path: &str, what: &str) -> Result<Option<Reply>, BackendError> {
        let r = self.client.send_any(Request::get(path))?;
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

    // ---- start-up ----

    fn check_server(&mut self) -> Result<(), BackendError> {
        let status: api::Status = self.client.get("/api/status/")?;
        let release = status.version.unwrap_or_else(|| "?".into());
        if self.shared.api.get().is_none() {
            if let Some(v) = ApiVersion::parse(&release) {
                note_version(&self.shared, v);
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
            return Err(self.client.error(&r));
        }
        let list: Page<api::CustomField> = r.page()?;
        let missing = api::missing_custom_fields(&list.results);
        if missing.is_empty() {
            Ok(())
        } else {
            Err(api::missing_fields_error(&missing))
        }
    }

    // ---- reads ----

    fn prefix(&mut self, origin: Ipv4Addr) -> Result<Option<PrefixInfo>, BackendError> {
        if let Some(hit) = self.shared.prefixes.get(&origin) {
            return Ok(hit);
        }
        let list: Page<api::Prefix> = self.client.get_page(&format!(
            "/api/ipam/prefixes/?contains={origin}&limit={PAGE}"
        ))?;
        let mut best = most_specific(&api::prefixes(list.results), origin);
        if let Some(p) = best.as_mut() {
            p.gateway = self.gateway(p.network)?;
        }
        self.shared.prefixes.put(origin, best.clone());
        Ok(best)
    }

    fn gateway(&mut self, network: Ipv4Net) -> Result<Option<Ipv4Addr>, BackendError> {
        let path = format!(
            "/api/ipam/ip-addresses/?parent={}&tag=gateway&limit=100",
            enc(&network.to_string())
        );
        let r = self.client.send(Request::get(&path))?;
        match r.status {
            200 => {
                let list: Page<api::IpAddress> = r.page()?;
                let gw = api::first_address(&list.results, network);
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
            _ => Err(self.client.error(&r)),
        }
    }

    fn interfaces(&mut self, query: &str) -> Result<Vec<Iface>, BackendError> {
        let list: Page<api::Interface> = self
            .client
            .get_page(&format!("/api/dcim/interfaces/?{query}"))?;
        Ok(api::interfaces(&list.results, false, PAGE))
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
            Some(r) if r.status == 200 => {
                api::interfaces(&r.page::<api::Interface>()?.results, true, PAGE)
            }
            Some(r) => return Err(self.client.error(&r)),
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
        let list: Page<api::IpAddress> = self.client.get_page(&format!(
            "/api/ipam/ip-addresses/?{param}={}&parent={}&limit={PAGE}",
            iface.id,
            enc(&prefix.network.to_string())
        ))?;
        Ok(api::static_address(&list.results, prefix.network))
    }

    fn owner(&mut self, iface: &Iface) -> Result<Option<Owner>, BackendError> {
        let path = if iface.vm {
            format!("/api/virtualization/virtual-machines/{}/", iface.owner)
        } else {
            format!("/api/dcim/devices/{}/", iface.owner)
        };
        let r = self.client.send(Request::get(&path))?;
        match r.status {
            200 => Ok(r.json_if::<api::ApiOwner>()?.map(api::ApiOwner::into_owner)),
            404 => Ok(None),
            _ => Err(self.client.error(&r)),
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
        if let Some(dns) = self.shared.scope_dns.get(&scope) {
            return Ok(dns.unwrap_or_default());
        }
        let path = format!(
            "/api/extras/config-contexts/?{}={}&is_active=true&limit={PAGE}",
            scope.0, scope.1
        );
        let Some(r) = self.get_optional(&path, "config contexts")? else {
            return Ok(Vec::new());
        };
        let dns = match r.status {
            200 => dns_servers(&api::merge_contexts(
                &r.page::<api::ConfigContext>()?.results,
            )),
            400 => {
                self.warn_once(format!("scope {}", scope.0), || {
                    format!(
                        "config contexts cannot be filtered by {}: {}",
                        scope.0,
                        rest::snippet(&r.body)
                    )
                });
                Vec::new()
            }
            _ => return Err(self.client.error(&r)),
        };
        self.shared.scope_dns.put(scope, Some(dns.clone()));
        Ok(dns)
    }

    fn read_pool(&mut self, prefix: &PrefixInfo) -> Result<Vec<DhcpRecord>, BackendError> {
        // 4.0+: only the fields used; a full address is ten times larger.
        let fields = if self
            .shared
            .api
            .get()
            .is_some_and(ApiVersion::field_selection)
        {
            "&fields=id,address,status,custom_fields,last_updated"
        } else {
            ""
        };
        let first = format!(
            "/api/ipam/ip-addresses/?parent={}&status=dhcp&limit={PAGE}&offset=0{fields}",
            enc(&prefix.network.to_string())
        );
        let mut out = Vec::new();
        let more = self
            .client
            .get_pages(&first, MAX_RECORDS, |page: Vec<api::IpAddress>| {
                out.extend(api::pool(&page, prefix.network)?);
                Ok(())
            })?;
        if more {
            log::warn!(
                "netbox: {} has more than {MAX_RECORDS} DHCP addresses; reading only those",
                prefix.network
            );
        }
        Ok(out)
    }

    /// One address and its ETag; None when it is gone.
    fn get_record(
        &mut self,
        id: u64,
    ) -> Result<Option<(DhcpRecord, Option<String>)>, BackendError> {
        let r = self
            .client
            .send(Request::get(&format!("/api/ipam/ip-addresses/{id}/")))?;
        match r.status {
            200 => {
                let not_ipv4 = || BackendError::BadAnswer(format!("address {id} is not IPv4"));
                let ip: api::IpAddress = r.json_if()?.ok_or_else(not_ipv4)?;
                let missing = ip.missing_fields();
                if !missing.is_empty() {
                    return Err(api::missing_fields_error(&missing));
                }
                let rec = ip.record().ok_or_else(not_ipv4)?;
                Ok(Some((rec, r.etag)))
            }
            404 => Ok(None),
            _ => Err(self.client.error(&r)),
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
        let path = format!("/api/ipam/ip-addresses/{id}/");
        // A PATCH only sets values: repeating it does no harm.
        let r = self
            .client
            .send(Request::patch(&path, body).if_match(if_match))?;
        match r.status {
            200 => r
                .json_if::<api::IpAddress>()?
                .and_then(|ip| ip.record())
                .map(|rec| Some(Ok(rec)))
                .ok_or_else(|| BackendError::BadAnswer(format!("address {id} is not IPv4"))),
            404 => Ok(None),
            412 => Ok(Some(Err(()))),
            _ => Err(self.client.error(&r)),
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
        // The list answer has no ETag header; it derives from last_updated.
        let mut tag = rec
            .last_updated
            .as_deref()
            .and_then(etag::from_last_updated);
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
                let known = job.known_about(*addr);
                if let Some(k) = known.filter(|k| k.kind == LeaseKind::Dynamic) {
                    if let Some(out) = self.renew_known(job, k, *lease_secs)? {
                        return Ok(out);
                    }
                }
                self.confirm(job, *addr, *lease_secs, known)
            }
            JobKind::Release { addr } => match job.known_about(*addr) {
                Some(k) if k.kind != LeaseKind::Dynamic => Ok(Outcome::Done),
                Some(k) => self.release_known(job, k),
                None => self.release(job, *addr),
            },
            JobKind::Decline { addr } => self.decline(job, *addr),
            // Netbox's OFFER holds an address for its 10 s only: nothing
            // lease-long to give back.
            JobKind::Withdraw { .. } => Ok(Outcome::Done),
            JobKind::Inform { addr } => self.inform(job, *addr),
        }
    }
}
