//! Nautobot IPAM backend for relay mode.
//!
//! Leases live in Nautobot: a served prefix (role in `prefix_roles`) is the
//! pool, `dhcp`-type IP addresses are the daemon's leases, and their custom
//! fields `pydhcp_mac`, `pydhcp_expire` (ISO 8601 UTC) and `pydhcp_hostname`
//! carry the lease. Static leases (an address assigned to the client's device
//! interface) and permanent leases (another type whose `pydhcp_mac` is the
//! client's) are handed out as they are. Only `dhcp` addresses are ever
//! modified, and nothing is ever deleted.
//!
//! # Calls per job
//!
//! `P` is the prefix lookup (`GET /api/ipam/prefixes/?contains=ORIGIN&role=R…`,
//! repeated `role=` OR together). Its result is cached per origin for 60 s
//! (15 s when nothing matched), so `P` is usually 0. A *read* is one
//! `POST /api/graphql/` that returns the device with that MAC (name, config
//! context, custom fields) and every IP address of the prefix with its custom
//! fields and its interfaces' MACs. On a server whose GraphQL schema does not
//! fit, reads switch for good to REST: `GET /api/dcim/devices/?mac_address=…
//! &include=config_context` plus `GET /api/ipam/ip-addresses/?prefix=…
//! &namespace=…&exclude_m2m=false&depth=1` (one call per 1000 records). The
//! GraphQL read asks for only the fields used: with 200 leases in a /24 it
//! takes about a sixth of the time of the REST pair, whose `depth=1` inlines
//! the parent prefix and status into every address.
//!
//! | job | calls |
//! |---|---|
//! | Offer | P + read + one hold write (POST new, PATCH of another client's expired record); no write for static, permanent, or the client's own record (a hold from a stale read could cut short another server's ACK). A lost create race adds a POST; the first loss and every third one add a read. |
//! | Confirm, known dynamic, covered by what the daemon wrote (the REQUEST after its OFFER) | 0 |
//! | Confirm, known dynamic | 1: PATCH of the record (expiry, and the MAC re-asserted) |
//! | Confirm, known static/permanent | 1: GET of the record, which must still be the client's |
//! | Confirm, otherwise | P + read + write (none for static/permanent) |
//! | Release, known dynamic | 1: PATCH expiry = now. Known static/permanent: 0 |
//! | Release/Decline, otherwise | P + read (records only) + PATCH if the address is the client's (Decline of an unrecorded pool address: a POST that records the hold) |
//! | Decline, known dynamic | 1: PATCH |
//! | Inform | P + read (device only) |
//!
//! A new client's DORA is thus 3 calls with a cold prefix cache and 2 warm; a
//! renewal the daemon knows is 1. Every HTTP request counts in the returned
//! number, retries included.
//!
//! Jobs that reach a worker together (`batch_window`, `batch_size`) share
//! their calls (see `batch`): the OFFERs of one prefix make one GraphQL read
//! (a `devices` alias per client) and one bulk create (`POST` of a list);
//! known dynamic renewals, releases and declines make one bulk `PATCH`. A
//! burst of new clients thus costs about 2 calls per batch instead of 2 per
//! client. A custom-field check (`prepare`) precedes the
//! first job if `prepare` failed at start.
//!
//! # Decisions
//!
//! - An OFFER writes `pydhcp_expire = now + lease + OFFER_HOLD_SECS` on new
//!   and taken-over records: the REQUEST that follows within the hold has
//!   nothing to write, and the record never runs out before the client's
//!   lease. The relay side withdraws an offer the client does not take
//!   (a RELEASE of the record) when the client asks another server or the
//!   hold runs out. The client's own record is never written at OFFER.
//! - DECLINE sets `pydhcp_expire = now + DECLINE_HOLD_SECS` and clears
//!   `pydhcp_mac`, so the address is neither the decliner's own address again
//!   nor free before the hold ends; then it is reused like any expired lease.
//! - A duplicate create (400 "already exists", 500 IntegrityError, 500
//!   ValidationError "already exists") means another server won the address:
//!   the next one is tried, a bounded number of times. Within one process,
//!   workers also note the addresses they are creating so that they do not
//!   pick the same one; the database still decides. The first loss is
//!   followed by a fresh read: when the winner is another server answering
//!   this same client, its record is the client's own and is offered as is.
//!   Two servers that answer one client at the same moment from different
//!   views can still each create a record for it; the spare one expires
//!   after the hold and is reused like any expired lease.
//! - A renewal or release of a known dynamic lease writes by record id
//!   without reading first. That is safe because a dhcp record is only taken
//!   over once its lease has expired, and the daemon forgets a lease when it
//!   expires; the answer is still checked (address, type), and a missing or
//!   changed record sends the job down the full path.
//! - No API version is pinned (`Accept: application/json`): a pinned version
//!   that a later server drops answers 406 to every call.
//! - UEFI HTTP boot takes its URL from `pydhcp_configuration.http_boot_url`.
//! - The token is sent only in the `Authorization` header, to the configured
//!   URL (redirects are not followed), and never appears in errors or logs.

use std::fmt;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ipnet::Ipv4Net;
use serde_json::{json, Value};

use super::claims::Claims;
use super::pool::Record;
use super::rest::{self, enc, Client, Page, Request, Scheme, TtlCache};
use super::{Backend, BackendError, Job, JobKind, Outcome, Session};
use crate::config::BackendConf;
use crate::core::mac::MacAddr;

pub(crate) mod api;
mod batch;
mod graphql;
mod leases;
#[cfg(test)]
mod tests;

pub use super::rest::load_token;
pub use super::CUSTOM_FIELDS;
pub(crate) use graphql::{graphql_query, parse_graphql, GqlError};
pub(crate) use leases::{boot_options, dns_servers};

/// Largest answer read; 65536 records in one GraphQL answer are about 16 MB.
const MAX_BODY: u64 = 32 << 20;
/// Most records read for one prefix (a /16).
const MAX_RECORDS: usize = 65536;
/// REST page size (Nautobot's MAX_PAGE_SIZE).
const PAGE: usize = 1000;
const PREFIX_TTL: Duration = Duration::from_secs(60);
const PREFIX_MISS_TTL: Duration = Duration::from_secs(15);

/// The Nautobot backend. Cheap to share: sessions hold an `Arc` of it.
pub struct Nautobot {
    shared: Arc<Shared>,
}

struct Shared {
    endpoint: rest::Endpoint,
    token: String,
    roles: Vec<String>,
    reserved: u32,
    allow_unknown: bool,
    lease_secs: u32,
    /// Reads go through GraphQL until the server shows it cannot answer them.
    graphql: AtomicBool,
    fields_ready: AtomicBool,
    prefixes: TtlCache<Ipv4Addr, PrefixInfo>,
    claims: Claims,
}

impl fmt::Debug for Nautobot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Nautobot")
            .field("url", &self.shared.endpoint.base)
            .field("prefix_roles", &self.shared.roles)
            .field("reserved", &self.shared.reserved)
            .field("allow_unknown_devices", &self.shared.allow_unknown)
            .finish_non_exhaustive()
    }
}

impl Nautobot {
    /// `lease_secs` is the lease time offered (`[relay] lease_time`); a
    /// Confirm job carries its own.
    pub fn new(conf: &BackendConf, token: String, lease_secs: u32) -> Result<Nautobot, String> {
        let endpoint = rest::endpoint("nautobot", conf, &token)?;
        Ok(Nautobot {
            shared: Arc::new(Shared {
                endpoint,
                token,
                roles: conf.prefix_roles.clone(),
                reserved: conf.reserved,
                allow_unknown: conf.allow_unknown_devices,
                lease_secs,
                graphql: AtomicBool::new(true),
                fields_ready: AtomicBool::new(false),
                prefixes: TtlCache::new(PREFIX_TTL, PREFIX_MISS_TTL),
                claims: Claims::default(),
            }),
        })
    }

    /// Reads through the REST list endpoints instead of GraphQL (one more call
    /// per read; for servers whose GraphQL schema differs).
    pub fn with_rest_reads(self) -> Nautobot {
        self.shared.graphql.store(false, Ordering::Relaxed);
        self
    }

    fn new_session(&self) -> NautobotSession {
        NautobotSession::open(&self.shared)
    }
}

impl Backend for Nautobot {
    fn prepare(&self) -> Result<u32, BackendError> {
        let mut s = self.new_session();
        let r = s.ensure_fields();
        let calls = s.client.calls();
        r.map(|_| calls).inspect_err(|e| {
            log::warn!("nautobot: custom fields not ready ({calls} calls): {e}");
        })
    }

    fn session(&self) -> Box<dyn Session> {
        Box::new(self.new_session())
    }

    fn name(&self) -> &'static str {
        "nautobot"
    }

    fn combines(&self) -> bool {
        true
    }
}

/// A served prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PrefixInfo {
    pub id: String,
    pub network: Ipv4Net,
    /// Namespace id; addresses are created and listed in it.
    pub namespace: Option<String>,
}

/// What a read returns about the client's device.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Device {
    pub name: String,
    pub config_context: Value,
    pub custom_fields: Value,
}

#[derive(Debug, Default)]
pub(crate) struct Snapshot {
    device: Option<Device>,
    records: Vec<Record>,
}

/// The longest prefix containing `origin`.
pub(crate) fn most_specific(list: &[PrefixInfo], origin: Ipv4Addr) -> Option<PrefixInfo> {
    list.iter()
        .filter(|p| p.network.contains(&origin))
        .max_by_key(|p| p.network.prefix_len())
        .cloned()
}

/// A new `dhcp` address record of `prefix`.
fn create_body(
    prefix: &PrefixInfo,
    addr: Ipv4Addr,
    fields: Value,
    dns_name: Option<&str>,
) -> Value {
    let mut body = json!({
        "address": format!("{addr}/{}", prefix.network.prefix_len()),
        "namespace": prefix.namespace.as_deref().unwrap_or("Global"),
        "status": "Active",
        "type": "dhcp",
        "custom_fields": fields,
    });
    if let Some(n) = dns_name {
        body["dns_name"] = Value::from(n);
    }
    body
}

/// How a create ended.
enum Created {
    Ok(String),
    Taken,
}

struct NautobotSession {
    shared: Arc<Shared>,
    client: Client,
    /// When the running batch began: writes made later in it count their
    /// expiries from their own time.
    began: std::time::Instant,
}

impl Session for NautobotSession {
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

impl NautobotSession {
    /// A session of the backend `s`, with a client of its own.
    fn open(s: &Arc<Shared>) -> NautobotSession {
        NautobotSession {
            shared: Arc::clone(s),
            client: Client::new(
                "nautobot",
                &s.endpoint,
                Scheme::Token.header(&s.token),
                MAX_BODY,
            ),
            began: std::time::Instant::now(),
        }
    }

    /// Another session of the same backend, on a connection of its own,
    /// within the same batch.
    fn sibling(&self) -> NautobotSession {
        NautobotSession {
            began: self.began,
            ..NautobotSession::open(&self.shared)
        }
    }

    fn run_job(&mut self, job: &Job) -> Result<Outcome, BackendError> {
        if !matches!(job.kind, JobKind::Inform { .. })
            && !self.shared.fields_ready.load(Ordering::Relaxed)
        {
            self.ensure_fields()?;
        }
        match &job.kind {
            JobKind::Offer => self.offer(job),
            JobKind::Confirm { addr, lease_secs } => {
                if let Some(k) = job.known_about(*addr) {
                    if let Some(out) = self.confirm_known(job, k, *lease_secs)? {
                        return Ok(out);
                    }
                }
                self.confirm(job, *addr, *lease_secs)
            }
            JobKind::Release { addr } | JobKind::Decline { addr } => {
                let release = matches!(job.kind, JobKind::Release { .. });
                let body = if release {
                    leases::release_patch(job.now)
                } else {
                    leases::decline_patch(job.now)
                };
                if let Some(k) = job.known_about(*addr) {
                    if let Some(out) = self.end_known(k, *addr, &body)? {
                        return Ok(out);
                    }
                }
                if release {
                    self.release(job, *addr)
                } else {
                    self.decline(job, *addr)
                }
            }
            JobKind::Withdraw { addr } => self.withdraw(job, *addr),
            JobKind::Inform { addr } => self.inform(job, *addr),
        }
    }

    // ---- start-up ----

    fn missing_fields(&mut self) -> Result<Vec<&'static str>, BackendError> {
        let list: Page<api::CustomField> = self
            .client
            .get_page("/api/extras/custom-fields/?content_types=ipam.ipaddress&limit=1000")?;
        Ok(api::missing_custom_fields(&list.results))
    }

    fn ensure_fields(&mut self) -> Result<(), BackendError> {
        let missing = self.missing_fields()?;
        let mut raced = false;
        for key in missing {
            let body = json!({
                "label": key,
                "key": key,
                "type": "text",
                "content_types": ["ipam.ipaddress"],
                "description": "DHCP lease data (nfdhcpd)",
            });
            let r = self
                .client
                .send(Request::post("/api/extras/custom-fields/", &body).once())?;
            match r.status {
                200 | 201 => log::info!("nautobot: created custom field {key}"),
                // Another server created it meanwhile, or it exists for other types.
                400 if String::from_utf8_lossy(&r.body).contains("already exists") => raced = true,
                _ => return Err(self.client.error(&r)),
            }
        }
        if raced {
            let still = self.missing_fields()?;
            if !still.is_empty() {
                return Err(BackendError::BadAnswer(format!(
                    "custom field {} exists but not for IP addresses (ipam.ipaddress)",
                    still.join(", ")
                )));
            }
        }
        self.shared.fields_ready.store(true, Ordering::Relaxed);
        Ok(())
    }

    // ---- prefixes ----

    fn prefix(&mut self, origin: Ipv4Addr) -> Result<Option<PrefixInfo>, BackendError> {
        if let Some(hit) = self.shared.prefixes.get(&origin) {
            return Ok(hit);
        }
        if self.shared.roles.is_empty() {
            return Ok(None);
        }
        let roles = self.shared.roles.clone();
        let all: String = roles.iter().map(|r| format!("&role={}", enc(r))).collect();
        let r = self.client.send(Request::get(&format!(
            "/api/ipam/prefixes/?contains={origin}{all}&limit={PAGE}"
        )))?;
        let mut list = Vec::new();
        if r.status == 200 {
            list = api::prefixes(r.page()?.results);
        } else if r.status == 400 && api::role_refused(&r.body) {
            // One unknown role name fails the whole query: ask role by role.
            for role in &roles {
                if roles.len() == 1 {
                    log::warn!("nautobot: prefix role {role:?} does not exist");
                    break;
                }
                let r = self.client.send(Request::get(&format!(
                    "/api/ipam/prefixes/?contains={origin}&role={}&limit={PAGE}",
                    enc(role)
                )))?;
                match r.status {
                    200 => list.extend(api::prefixes(r.page()?.results)),
                    400 if api::role_refused(&r.body) => {
                        log::warn!("nautobot: prefix role {role:?} does not exist")
                    }
                    _ => return Err(self.client.error(&r)),
                }
            }
        } else {
            return Err(self.client.error(&r));
        }
        let best = most_specific(&list, origin);
        self.shared.prefixes.put(origin, best.clone());
        Ok(best)
    }

    // ---- reads ----

    fn read(
        &mut self,
        mac: Option<MacAddr>,
        prefix: Option<&PrefixInfo>,
    ) -> Result<Snapshot, BackendError> {
        if self.shared.graphql.load(Ordering::Relaxed) {
            let query = graphql_query(mac, prefix);
            let r = self
                .client
                .send(Request::post("/api/graphql/", &json!({ "query": query })))?;
            match parse_graphql(r.status, &r.body, mac.is_some(), prefix.is_some()) {
                Ok(snap) => return Ok(snap),
                Err(GqlError::Schema(msg)) => {
                    log::warn!(
                        "nautobot: GraphQL cannot answer ({msg}); reading through REST from now on"
                    );
                    self.shared.graphql.store(false, Ordering::Relaxed);
                }
                Err(GqlError::Backend(e)) => return Err(e),
            }
        }
        let mut snap = Snapshot::default();
        if let Some(mac) = mac {
            let list: Page<api::ApiDevice> = self.client.get_page(&format!(
                "/api/dcim/devices/?mac_address={}&include=config_context&limit=2",
                enc(&mac.to_string())
            ))?;
            snap.device = list
                .results
                .into_iter()
                .next()
                .map(api::ApiDevice::into_device);
        }
        if let Some(p) = prefix {
            let ns = p
                .namespace
                .as_deref()
                .map(|n| format!("&namespace={}", enc(n)))
                .unwrap_or_default();
            let first = format!(
                "/api/ipam/ip-addresses/?prefix={}{ns}&limit={PAGE}&offset=0&exclude_m2m=false&depth=1",
                enc(&p.network.to_string())
            );
            let records = &mut snap.records;
            let more =
                self.client
                    .get_pages(&first, MAX_RECORDS, |page: Vec<api::IpAddress>| {
                        records.extend(api::records(page));
                        Ok(())
                    })?;
            if more {
                log::warn!(
                    "nautobot: {} has more than {MAX_RECORDS} addresses; reading only those",
                    p.network
                );
            }
        }
        Ok(snap)
    }

    /// One address record; None when it is gone.
    fn get_record(&mut self, id: &str) -> Result<Option<Record>, BackendError> {
        let r = self.client.send(Request::get(&format!(
            "/api/ipam/ip-addresses/{}/?exclude_m2m=false&depth=1",
            enc(id)
        )))?;
        self.record_answer(&r)
    }

    /// The record a GET or PATCH answered. A 200 that is not an address
    /// record says nothing about the record: an error, never "gone" (that
    /// would refuse the client).
    fn record_answer(&self, r: &rest::Reply) -> Result<Option<Record>, BackendError> {
        match r.status {
            200 => r
                .json_if::<api::IpAddress>()?
                .and_then(api::IpAddress::record)
                .map(Some)
                .ok_or_else(|| {
                    BackendError::BadAnswer("200 answer without an IP address record".into())
                }),
            404 => Ok(None),
            _ => Err(self.client.error(r)),
        }
    }

    // ---- writes ----

    fn create(
        &mut self,
        prefix: &PrefixInfo,
        addr: Ipv4Addr,
        fields: Value,
        dns_name: Option<&str>,
    ) -> Result<Created, BackendError> {
        let body = create_body(prefix, addr, fields, dns_name);
        let r = self
            .client
            .send(Request::post("/api/ipam/ip-addresses/", &body).once())?;
        if r.status == 200 || r.status == 201 {
            return match r.json::<api::Created>()?.id {
                Some(id) => Ok(Created::Ok(id)),
                None => Err(BackendError::BadAnswer("created address has no id".into())),
            };
        }
        if api::is_duplicate(r.status, &r.body) {
            return Ok(Created::Taken);
        }
        Err(self.client.error(&r))
    }

    /// PATCH of a record; None when it no longer exists.
    fn patch(&mut self, id: &str, body: &Value) -> Result<Option<Record>, BackendError> {
        let r = self.client.send(Request::patch(
            &format!("/api/ipam/ip-addresses/{}/", enc(id)),
            body,
        ))?;
        self.record_answer(&r)
    }
}
