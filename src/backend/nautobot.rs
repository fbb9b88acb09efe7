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
//! | Confirm, known dynamic | 1: PATCH of the record (expiry, and the MAC re-asserted) |
//! | Confirm, known static/permanent | 1: GET of the record, which must still be the client's |
//! | Confirm, otherwise | P + read + write (none for static/permanent) |
//! | Release, known dynamic | 1: PATCH expiry = now. Known static/permanent: 0 |
//! | Release/Decline, otherwise | P + read (records only) + PATCH if the address is the client's (Decline of an unrecorded pool address: a POST that records the hold) |
//! | Decline, known dynamic | 1: PATCH |
//! | Inform | P + read (device only) |
//!
//! A new client's DORA is thus 4 calls with a cold prefix cache and 3 warm; a
//! renewal the daemon knows is 1. Every HTTP request counts in the returned
//! number, retries included. A custom-field check (`prepare`) precedes the
//! first job if `prepare` failed at start.
//!
//! # Decisions
//!
//! - The hold of an OFFER is `pydhcp_expire = now + OFFER_HOLD_SECS`, on new
//!   and taken-over records; the client's own record is never written at OFFER.
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

use std::collections::HashMap;
use std::fmt;
use std::io::Read as _;
use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ipnet::Ipv4Net;
use serde_json::{json, Map, Value};

use super::claims::Claims;
use super::pool::{self, Choice, Pool, Record};
use super::{
    Backend, BackendError, Boot, BootClient, Job, JobKind, Known, Lease, LeaseKind, NoLease,
    Outcome, Session, DECLINE_HOLD_SECS, OFFER_HOLD_SECS,
};
use crate::config::BackendConf;
use crate::core::mac::MacAddr;
use crate::daemon::logging::utc_timestamp;

/// The custom fields the daemon keeps its leases in.
pub const CUSTOM_FIELDS: [&str; 3] = ["pydhcp_mac", "pydhcp_expire", "pydhcp_hostname"];

/// Largest answer read; 65536 records in one GraphQL answer are about 16 MB.
const MAX_BODY: u64 = 32 << 20;
/// Most records read for one prefix (a /16).
const MAX_RECORDS: usize = 65536;
/// REST page size (Nautobot's MAX_PAGE_SIZE).
const PAGE: usize = 1000;
const PREFIX_TTL: Duration = Duration::from_secs(60);
const PREFIX_MISS_TTL: Duration = Duration::from_secs(15);
const PREFIX_CACHE_MAX: usize = 4096;
/// Create races lost before a job gives up (it fails, it is not a NAK).
const MAX_LOST_RACES: u32 = 24;
/// The records are read again after the first lost race and then after
/// every this many.
const REREAD_EVERY: u32 = 3;
/// Bound on the choose/write rounds of one OFFER.
const MAX_OFFER_ROUNDS: u32 = 4 * MAX_LOST_RACES;
const MAX_TOKEN_LEN: usize = 256;
/// Characters of an error answer kept in a BackendError.
const ERR_SNIPPET: usize = 300;

/// Reads the API token: `token_file` if set (trimmed), else the environment
/// variable `env_var`. Errors never contain the token.
pub fn load_token(conf: &BackendConf, env_var: &str) -> Result<String, String> {
    let token = match &conf.token_file {
        Some(path) => read_token_file(path)?,
        None => match std::env::var(env_var) {
            Ok(v) => v.trim().to_owned(),
            Err(std::env::VarError::NotPresent) => {
                return Err(format!("no API token: set token_file or {env_var}"))
            }
            Err(std::env::VarError::NotUnicode(_)) => {
                return Err(format!("{env_var} is not valid UTF-8"))
            }
        },
    };
    let source = match &conf.token_file {
        Some(p) => p.display().to_string(),
        None => env_var.to_owned(),
    };
    if token.is_empty() {
        return Err(format!("API token in {source} is empty"));
    }
    if token.len() > MAX_TOKEN_LEN || !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(format!(
            "API token in {source} is not a token (printable ASCII, at most {MAX_TOKEN_LEN} characters, no spaces)"
        ));
    }
    Ok(token)
}

fn read_token_file(path: &Path) -> Result<String, String> {
    let file = std::fs::File::open(path)
        .map_err(|e| format!("cannot read token file {}: {e}", path.display()))?;
    let mut buf = Vec::new();
    file.take(4097)
        .read_to_end(&mut buf)
        .map_err(|e| format!("cannot read token file {}: {e}", path.display()))?;
    if buf.len() > 4096 {
        return Err(format!("token file {} is too large", path.display()));
    }
    String::from_utf8(buf)
        .map(|s| s.trim().to_owned())
        .map_err(|_| format!("token file {} is not UTF-8", path.display()))
}

/// The Nautobot backend. Cheap to share: sessions hold an `Arc` of it.
pub struct Nautobot {
    shared: Arc<Shared>,
}

struct Shared {
    base: String,
    token: String,
    roles: Vec<String>,
    reserved: u32,
    timeout: Duration,
    tls: Option<ureq::tls::TlsConfig>,
    allow_unknown: bool,
    lease_secs: u32,
    /// Reads go through GraphQL until the server shows it cannot answer them.
    graphql: AtomicBool,
    fields_ready: AtomicBool,
    prefixes: Mutex<HashMap<Ipv4Addr, (Instant, Option<PrefixInfo>)>>,
    claims: Claims,
}

impl fmt::Debug for Nautobot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Nautobot")
            .field("url", &self.shared.base)
            .field("prefix_roles", &self.shared.roles)
            .field("reserved", &self.shared.reserved)
            .field("allow_unknown_devices", &self.shared.allow_unknown)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Nautobot {
    /// `lease_secs` is the lease time offered (`[relay] lease_time`); a
    /// Confirm job carries its own.
    pub fn new(conf: &BackendConf, token: String, lease_secs: u32) -> Result<Nautobot, String> {
        let end = super::http::endpoint("nautobot", conf, &token)?;
        Ok(Nautobot {
            shared: Arc::new(Shared {
                base: end.base,
                token,
                roles: conf.prefix_roles.clone(),
                reserved: conf.reserved,
                timeout: end.timeout,
                tls: end.tls,
                allow_unknown: conf.allow_unknown_devices,
                lease_secs,
                graphql: AtomicBool::new(true),
                fields_ready: AtomicBool::new(false),
                prefixes: Mutex::new(HashMap::new()),
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
        NautobotSession {
            shared: Arc::clone(&self.shared),
            agent: super::http::agent(self.shared.timeout, self.shared.tls.as_ref()),
            auth: format!("Token {}", self.shared.token),
            calls: 0,
        }
    }
}

impl Backend for Nautobot {
    fn prepare(&self) -> Result<u32, BackendError> {
        let mut s = self.new_session();
        let r = s.ensure_fields();
        (r.map(|_| s.calls)).map_err(|e| {
            log::warn!("nautobot: custom fields not ready ({} calls): {e}", s.calls);
            e
        })
    }

    fn session(&self) -> Box<dyn Session> {
        Box::new(self.new_session())
    }

    fn name(&self) -> &'static str {
        "nautobot"
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

#[derive(Clone, Copy)]
enum Method {
    Get,
    Post,
    Patch,
}

impl Method {
    fn name(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Patch => "PATCH",
        }
    }
}

struct Reply {
    status: u16,
    body: Vec<u8>,
}

/// How a create ended.
enum Created {
    Ok(String),
    Taken,
}

struct NautobotSession {
    shared: Arc<Shared>,
    agent: ureq::Agent,
    auth: String,
    calls: u32,
}

impl Session for NautobotSession {
    fn run(&mut self, job: &Job) -> (Result<Outcome, BackendError>, u32) {
        self.calls = 0;
        let r = self.run_job(job);
        (r, self.calls)
    }
}

impl NautobotSession {
    fn run_job(&mut self, job: &Job) -> Result<Outcome, BackendError> {
        if !matches!(job.kind, JobKind::Inform { .. })
            && !self.shared.fields_ready.load(Ordering::Relaxed)
        {
            self.ensure_fields()?;
        }
        match &job.kind {
            JobKind::Offer => self.offer(job),
            JobKind::Confirm { addr, lease_secs } => {
                if let Some(k) = known_for(job, *addr) {
                    if let Some(out) = self.confirm_known(job, k, *lease_secs)? {
                        return Ok(out);
                    }
                }
                self.confirm(job, *addr, *lease_secs)
            }
            JobKind::Release { addr } => {
                if let Some(k) = known_for(job, *addr) {
                    if let Some(out) = self.release_known(job, k, *addr)? {
                        return Ok(out);
                    }
                }
                self.release(job, *addr)
            }
            JobKind::Decline { addr } => {
                if let Some(k) = known_for(job, *addr) {
                    if let Some(out) = self.decline_known(job, k, *addr)? {
                        return Ok(out);
                    }
                }
                self.decline(job, *addr)
            }
            JobKind::Inform { addr } => self.inform(job, *addr),
        }
    }

    // ---- HTTP ----

    fn send(
        &mut self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        idempotent: bool,
    ) -> Result<Reply, BackendError> {
        let url = format!("{}{}", self.shared.base, path);
        let bytes = body.map(|b| serde_json::to_vec(b).unwrap_or_default());
        let mut retried = false;
        loop {
            self.calls += 1;
            let started = Instant::now();
            match self.send_once(method, &url, bytes.as_deref()) {
                Ok(reply) => {
                    log::debug!(
                        "nautobot {} {} -> {} ({} bytes) in {} ms",
                        method.name(),
                        path,
                        reply.status,
                        reply.body.len(),
                        started.elapsed().as_millis()
                    );
                    if reply.status == 401 || reply.status == 403 {
                        return Err(BackendError::Auth(reply.status));
                    }
                    return Ok(reply);
                }
                // A kept-alive connection the server closed meanwhile: once more
                // on a new one, when repeating cannot do harm.
                Err(e) if idempotent && !retried && stale_connection(&e) => retried = true,
                Err(e) => return Err(map_ureq_error(e)),
            }
        }
    }

    fn send_once(
        &self,
        method: Method,
        url: &str,
        body: Option<&[u8]>,
    ) -> Result<Reply, ureq::Error> {
        let resp = match method {
            Method::Get => self
                .agent
                .get(url)
                .header("Authorization", &self.auth)
                .header("Accept", "application/json")
                .call()?,
            Method::Post | Method::Patch => {
                let req = if matches!(method, Method::Post) {
                    self.agent.post(url)
                } else {
                    self.agent.patch(url)
                };
                req.header("Authorization", &self.auth)
                    .header("Accept", "application/json")
                    .header("Content-Type", "application/json")
                    .send(body.unwrap_or(b"{}"))?
            }
        };
        let status = resp.status().as_u16();
        let body = resp
            .into_body()
            .with_config()
            .limit(MAX_BODY)
            .read_to_vec()?;
        Ok(Reply { status, body })
    }

    fn get_json(&mut self, path: &str) -> Result<Value, BackendError> {
        let r = self.send(Method::Get, path, None, true)?;
        if r.status != 200 {
            return Err(http_error(&r));
        }
        parse_json(&r)
    }

    // ---- start-up ----

    fn missing_fields(&mut self) -> Result<Vec<&'static str>, BackendError> {
        let v =
            self.get_json("/api/extras/custom-fields/?content_types=ipam.ipaddress&limit=1000")?;
        missing_custom_fields(&v)
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
            let r = self.send(
                Method::Post,
                "/api/extras/custom-fields/",
                Some(&body),
                false,
            )?;
            match r.status {
                200 | 201 => log::info!("nautobot: created custom field {key}"),
                // Another server created it meanwhile, or it exists for other types.
                400 if contains(&r.body, "already exists") => raced = true,
                _ => return Err(http_error(&r)),
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
        if self.shared.roles.is_empty() {
            return Ok(None);
        }
        let roles: Vec<String> = self.shared.roles.clone();
        let all: String = roles.iter().map(|r| format!("&role={}", enc(r))).collect();
        let path = format!("/api/ipam/prefixes/?contains={origin}{all}&limit={PAGE}");
        let r = self.send(Method::Get, &path, None, true)?;
        let mut list = Vec::new();
        if r.status == 200 {
            list = parse_prefixes(&parse_json(&r)?)?;
        } else if r.status == 400 && role_refused(&r) {
            // One unknown role name fails the whole query: ask role by role.
            for role in &roles {
                if roles.len() == 1 {
                    log::warn!("nautobot: prefix role {role:?} does not exist");
                    break;
                }
                let path = format!(
                    "/api/ipam/prefixes/?contains={origin}&role={}&limit={PAGE}",
                    enc(role)
                );
                let r = self.send(Method::Get, &path, None, true)?;
                match r.status {
                    200 => list.extend(parse_prefixes(&parse_json(&r)?)?),
                    400 if role_refused(&r) => {
                        log::warn!("nautobot: prefix role {role:?} does not exist")
                    }
                    _ => return Err(http_error(&r)),
                }
            }
        } else {
            return Err(http_error(&r));
        }
        let best = most_specific(&list, origin);
        let mut cache = lock(&self.shared.prefixes);
        if cache.len() >= PREFIX_CACHE_MAX {
            cache.retain(|_, (at, _)| at.elapsed() < PREFIX_TTL);
            if cache.len() >= PREFIX_CACHE_MAX {
                cache.clear();
            }
        }
        cache.insert(origin, (Instant::now(), best.clone()));
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
            let r = self.send(
                Method::Post,
                "/api/graphql/",
                Some(&json!({ "query": query })),
                true,
            )?;
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
            let v = self.get_json(&format!(
                "/api/dcim/devices/?mac_address={}&include=config_context&limit=2",
                enc(&mac.to_string())
            ))?;
            snap.device = parse_devices(&v)?;
        }
        if let Some(p) = prefix {
            let ns = p
                .namespace
                .as_deref()
                .map(|n| format!("&namespace={}", enc(n)))
                .unwrap_or_default();
            let mut offset = 0usize;
            loop {
                let v = self.get_json(&format!(
                    "/api/ipam/ip-addresses/?prefix={}{ns}&limit={PAGE}&offset={offset}&exclude_m2m=false&depth=1",
                    enc(&p.network.to_string())
                ))?;
                let (page, count) = parse_ip_page(&v)?;
                let n = page.len();
                snap.records.extend(page);
                offset += n;
                if n == 0 || offset >= count {
                    break;
                }
                if snap.records.len() >= MAX_RECORDS {
                    log::warn!(
                        "nautobot: {} has more than {MAX_RECORDS} addresses; reading only those",
                        p.network
                    );
                    break;
                }
            }
        }
        Ok(snap)
    }

    fn get_record(&mut self, id: &str) -> Result<Option<Record>, BackendError> {
        let r = self.send(
            Method::Get,
            &format!(
                "/api/ipam/ip-addresses/{}/?exclude_m2m=false&depth=1",
                enc(id)
            ),
            None,
            true,
        )?;
        match r.status {
            // A 200 that is not an address record says nothing about the
            // record: an error, never "gone" (that would refuse the client).
            200 => record_from(&parse_json(&r)?).map(Some).ok_or_else(|| {
                BackendError::BadAnswer("200 answer without an IP address record".into())
            }),
            404 => Ok(None),
            _ => Err(http_error(&r)),
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
        let r = self.send(Method::Post, "/api/ipam/ip-addresses/", Some(&body), false)?;
        if r.status == 200 || r.status == 201 {
            let v = parse_json(&r)?;
            return match v.get("id").and_then(Value::as_str) {
                Some(id) => Ok(Created::Ok(id.to_owned())),
                None => Err(BackendError::BadAnswer("created address has no id".into())),
            };
        }
        if is_duplicate(r.status, &r.body) {
            return Ok(Created::Taken);
        }
        Err(http_error(&r))
    }

    /// PATCH of a record; None when it no longer exists.
    fn patch(&mut self, id: &str, body: &Value) -> Result<Option<Record>, BackendError> {
        let r = self.send(
            Method::Patch,
            &format!("/api/ipam/ip-addresses/{}/", enc(id)),
            Some(body),
            true,
        )?;
        match r.status {
            // A 200 that is not an address record says nothing about the
            // record: an error, never "gone" (that would refuse the client).
            200 => record_from(&parse_json(&r)?).map(Some).ok_or_else(|| {
                BackendError::BadAnswer("200 answer without an IP address record".into())
            }),
            404 => Ok(None),
            _ => Err(http_error(&r)),
        }
    }

    // ---- jobs ----

    fn served(&mut self, job: &Job) -> Result<Option<(PrefixInfo, Pool)>, BackendError> {
        Ok(self.prefix(job.client.origin)?.map(|p| {
            let pool = Pool {
                network: p.network,
                reserved: self.shared.reserved,
            };
            (p, pool)
        }))
    }

    fn offer(&mut self, job: &Job) -> Result<Outcome, BackendError> {
        let Some((prefix, pool)) = self.served(job)? else {
            return Ok(Outcome::NoLease(NoLease::NoPrefix));
        };
        let mac = job.client.mac;
        let mut snap = self.read(Some(mac), Some(&prefix))?;
        if snap.device.is_none() && !self.shared.allow_unknown {
            return Ok(Outcome::NoLease(NoLease::UnknownDevice));
        }
        let now = job.now;
        let hold = now + Duration::from_secs(OFFER_HOLD_SECS);
        let hostname = job.client.hostname.as_deref();
        let mut lost: Vec<Ipv4Addr> = Vec::new();
        let mut losses = 0u32;
        for _ in 0..MAX_OFFER_ROUNDS {
            let mut skip = lost.clone();
            skip.extend(self.shared.claims.others(mac));
            let choice = pool::choose(&snap.records, &pool, mac, now, &skip);
            let (addr, kind, record) = match choice {
                Choice::Static(r) => (r.addr, LeaseKind::Static, r.id),
                Choice::Permanent(r) => (r.addr, LeaseKind::Permanent, r.id),
                // The client's own record is not written at OFFER: a hold
                // written from this read could land after another server's
                // ACK for the same client and cut its lease to seconds. Only
                // a full pool reuses expired records, and the REQUEST's
                // confirm sees it if that happened meanwhile.
                Choice::Own(r) => (r.addr, LeaseKind::Dynamic, r.id),
                Choice::Reuse(r) => {
                    if !self.shared.claims.take(r.addr, mac) {
                        lost.push(r.addr);
                        continue;
                    }
                    let body = lease_patch(mac, hold, hostname, true);
                    let done = self.patch(&r.id, &body);
                    if !matches!(done, Ok(Some(_))) {
                        self.shared.claims.give_back(r.addr, mac);
                    }
                    if done?.is_none() {
                        snap = self.read(Some(mac), Some(&prefix))?;
                        continue;
                    }
                    (r.addr, LeaseKind::Dynamic, r.id)
                }
                Choice::Free(a) => {
                    if !self.shared.claims.take(a, mac) {
                        lost.push(a);
                        continue;
                    }
                    let fields = lease_fields(Some(mac), hold, hostname);
                    let created = self.create(&prefix, a, fields, dns_name(hostname));
                    match created {
                        Ok(Created::Ok(id)) => (a, LeaseKind::Dynamic, id),
                        Ok(Created::Taken) => {
                            self.shared.claims.give_back(a, mac);
                            lost.push(a);
                            losses += 1;
                            if losses >= MAX_LOST_RACES {
                                return Err(BackendError::BadAnswer(format!(
                                    "lost {losses} address races in {}",
                                    prefix.network
                                )));
                            }
                            // The first loss may be to another server answering
                            // this same client: the fresh read shows its record
                            // as the client's own. Later, a read now and then.
                            if losses % REREAD_EVERY == 1 {
                                snap = self.read(Some(mac), Some(&prefix))?;
                                lost.clear();
                            }
                            continue;
                        }
                        Err(e) => {
                            self.shared.claims.give_back(a, mac);
                            return Err(e);
                        }
                    }
                }
                Choice::Exhausted => return Ok(Outcome::NoLease(NoLease::PoolExhausted)),
            };
            let lease_secs = self.shared.lease_secs;
            return Ok(Outcome::Lease(make_lease(
                job,
                &prefix,
                addr,
                kind,
                record,
                lease_secs,
                snap.device.as_ref(),
            )));
        }
        Err(BackendError::BadAnswer(format!(
            "no address settled in {} after {MAX_OFFER_ROUNDS} rounds",
            prefix.network
        )))
    }

    fn confirm(
        &mut self,
        job: &Job,
        addr: Ipv4Addr,
        lease_secs: u32,
    ) -> Result<Outcome, BackendError> {
        let Some((prefix, pool)) = self.served(job)? else {
            return Ok(Outcome::NoLease(NoLease::NoPrefix));
        };
        let mac = job.client.mac;
        let now = job.now;
        let expire = now + Duration::from_secs(u64::from(lease_secs));
        let hostname = job.client.hostname.as_deref();
        // A create lost to another server is looked at once more: it may have
        // been made for this very client.
        for _ in 0..2 {
            let snap = self.read(Some(mac), Some(&prefix))?;
            if snap.device.is_none() && !self.shared.allow_unknown {
                return Ok(Outcome::NoLease(NoLease::UnknownDevice));
            }
            let dev = snap.device.as_ref();
            let (kind, record) = match pool::confirm(&snap.records, &pool, mac, addr, now) {
                None => return Ok(Outcome::NoLease(NoLease::NotYours)),
                Some(Choice::Static(r)) => (LeaseKind::Static, r.id),
                Some(Choice::Permanent(r)) => (LeaseKind::Permanent, r.id),
                Some(Choice::Own(r)) => {
                    if self
                        .patch(&r.id, &lease_patch(mac, expire, hostname, false))?
                        .is_none()
                    {
                        continue;
                    }
                    (LeaseKind::Dynamic, r.id)
                }
                Some(Choice::Reuse(r)) => {
                    if !self.shared.claims.take(addr, mac) {
                        return Ok(Outcome::NoLease(NoLease::NotYours));
                    }
                    let done = self.patch(&r.id, &lease_patch(mac, expire, hostname, true));
                    if !matches!(done, Ok(Some(_))) {
                        self.shared.claims.give_back(addr, mac);
                    }
                    if done?.is_none() {
                        continue;
                    }
                    (LeaseKind::Dynamic, r.id)
                }
                Some(Choice::Free(a)) => {
                    if !self.shared.claims.take(a, mac) {
                        return Ok(Outcome::NoLease(NoLease::NotYours));
                    }
                    let fields = lease_fields(Some(mac), expire, hostname);
                    match self.create(&prefix, a, fields, dns_name(hostname)) {
                        Ok(Created::Ok(id)) => (LeaseKind::Dynamic, id),
                        Ok(Created::Taken) => {
                            self.shared.claims.give_back(a, mac);
                            continue;
                        }
                        Err(e) => {
                            self.shared.claims.give_back(a, mac);
                            return Err(e);
                        }
                    }
                }
                Some(Choice::Exhausted) => return Ok(Outcome::NoLease(NoLease::NotYours)),
            };
            return Ok(Outcome::Lease(make_lease(
                job, &prefix, addr, kind, record, lease_secs, dev,
            )));
        }
        Ok(Outcome::NoLease(NoLease::NotYours))
    }

    /// Renewal of a lease the daemon handed out: one call. None = the record
    /// is not what the daemon remembers; decide from a fresh read instead.
    fn confirm_known(
        &mut self,
        job: &Job,
        known: &Known,
        lease_secs: u32,
    ) -> Result<Option<Outcome>, BackendError> {
        let Some(id) = known.record.as_deref() else {
            return Ok(None);
        };
        let mac = job.client.mac;
        let ok = match known.kind {
            LeaseKind::Dynamic => {
                let expire = job.now + Duration::from_secs(u64::from(lease_secs));
                let body = lease_patch(mac, expire, job.client.hostname.as_deref(), false);
                match self.patch(id, &body)? {
                    Some(r) if r.addr == known.addr && r.dynamic => true,
                    Some(r) => {
                        log::warn!(
                            "nautobot: record {id} is now {} (dhcp: {}), not {}",
                            r.addr,
                            r.dynamic,
                            known.addr
                        );
                        false
                    }
                    None => false,
                }
            }
            LeaseKind::Static => matches!(self.get_record(id)?,
                Some(r) if r.addr == known.addr && r.interface_macs.contains(&mac)),
            LeaseKind::Permanent => matches!(self.get_record(id)?,
                Some(r) if r.addr == known.addr && !r.dynamic && r.mac == Some(mac)),
        };
        if !ok {
            return Ok(None);
        }
        let mut lease = known.lease.clone();
        lease.addr = known.addr;
        lease.kind = known.kind;
        lease.record = Some(id.to_owned());
        lease.lease_secs = lease_secs;
        Ok(Some(Outcome::Lease(lease)))
    }

    fn release_known(
        &mut self,
        job: &Job,
        known: &Known,
        addr: Ipv4Addr,
    ) -> Result<Option<Outcome>, BackendError> {
        match (known.kind, known.record.as_deref()) {
            (LeaseKind::Static | LeaseKind::Permanent, _) => Ok(Some(Outcome::Done)),
            (LeaseKind::Dynamic, Some(id)) => {
                let body = json!({ "custom_fields": { "pydhcp_expire": utc_timestamp(job.now) } });
                Ok(match self.patch(id, &body)? {
                    Some(r) if r.addr == addr => Some(Outcome::Done),
                    _ => None,
                })
            }
            (LeaseKind::Dynamic, None) => Ok(None),
        }
    }

    fn release(&mut self, job: &Job, addr: Ipv4Addr) -> Result<Outcome, BackendError> {
        let Some((prefix, _)) = self.served(job)? else {
            return Ok(Outcome::NoLease(NoLease::NoPrefix));
        };
        let snap = self.read(None, Some(&prefix))?;
        let mac = job.client.mac;
        match snap.records.iter().find(|r| r.addr == addr) {
            Some(r) if r.dynamic && r.mac == Some(mac) => {
                let body = json!({ "custom_fields": { "pydhcp_expire": utc_timestamp(job.now) } });
                self.patch(&r.id, &body)?;
                Ok(Outcome::Done)
            }
            Some(r) if r.interface_macs.contains(&mac) || (!r.dynamic && r.mac == Some(mac)) => {
                Ok(Outcome::Done)
            }
            _ => Ok(Outcome::NoLease(NoLease::NotYours)),
        }
    }

    fn decline_known(
        &mut self,
        job: &Job,
        known: &Known,
        addr: Ipv4Addr,
    ) -> Result<Option<Outcome>, BackendError> {
        match (known.kind, known.record.as_deref()) {
            (LeaseKind::Static | LeaseKind::Permanent, _) => Ok(Some(Outcome::Done)),
            (LeaseKind::Dynamic, Some(id)) => {
                Ok(match self.patch(id, &decline_patch(job.now))? {
                    Some(r) if r.addr == addr => Some(Outcome::Done),
                    _ => None,
                })
            }
            (LeaseKind::Dynamic, None) => Ok(None),
        }
    }

    fn decline(&mut self, job: &Job, addr: Ipv4Addr) -> Result<Outcome, BackendError> {
        let Some((prefix, pool)) = self.served(job)? else {
            return Ok(Outcome::NoLease(NoLease::NoPrefix));
        };
        let snap = self.read(None, Some(&prefix))?;
        let mac = job.client.mac;
        match snap.records.iter().find(|r| r.addr == addr) {
            Some(r) if r.dynamic && (r.mac == Some(mac) || r.mac.is_none()) => {
                self.patch(&r.id, &decline_patch(job.now))?;
                Ok(Outcome::Done)
            }
            Some(r) if r.interface_macs.contains(&mac) || (!r.dynamic && r.mac == Some(mac)) => {
                Ok(Outcome::Done)
            }
            None if pool.contains(addr) => {
                let until = job.now + Duration::from_secs(DECLINE_HOLD_SECS);
                // Taken meanwhile: then it is not free either, which is the point.
                self.create(&prefix, addr, lease_fields(None, until, None), None)?;
                Ok(Outcome::Done)
            }
            _ => Ok(Outcome::NoLease(NoLease::NotYours)),
        }
    }

    fn inform(&mut self, job: &Job, addr: Ipv4Addr) -> Result<Outcome, BackendError> {
        let Some((prefix, _)) = self.served(job)? else {
            return Ok(Outcome::NoLease(NoLease::NoPrefix));
        };
        let snap = self.read(Some(job.client.mac), None)?;
        if snap.device.is_none() && !self.shared.allow_unknown {
            return Ok(Outcome::NoLease(NoLease::UnknownDevice));
        }
        let mut lease = make_lease(
            job,
            &prefix,
            addr,
            LeaseKind::Dynamic,
            String::new(),
            0,
            None,
        );
        lease.record = None;
        lease.dns = dns_servers(snap.device.as_ref());
        Ok(Outcome::Lease(lease))
    }
}

/// The job's `known` lease, if it is about `addr`.
fn known_for(job: &Job, addr: Ipv4Addr) -> Option<&Known> {
    job.known.as_ref().filter(|k| k.addr == addr)
}

fn make_lease(
    job: &Job,
    prefix: &PrefixInfo,
    addr: Ipv4Addr,
    kind: LeaseKind,
    record: String,
    lease_secs: u32,
    device: Option<&Device>,
) -> Lease {
    let pool = Pool {
        network: prefix.network,
        reserved: 0,
    };
    Lease {
        addr,
        network: prefix.network,
        gateway: pool.gateway(),
        dns: dns_servers(device),
        boot: device.and_then(|d| boot_options(d, job.client.boot)),
        kind,
        record: Some(record),
        lease_secs,
    }
}

fn lease_fields(mac: Option<MacAddr>, expire: SystemTime, hostname: Option<&str>) -> Value {
    json!({
        "pydhcp_mac": mac.map(|m| m.to_string()),
        "pydhcp_expire": utc_timestamp(expire),
        "pydhcp_hostname": hostname,
    })
}

/// The write that (re)asserts a lease. `takeover`: the record was another
/// client's, so its host name goes too.
fn lease_patch(mac: MacAddr, expire: SystemTime, hostname: Option<&str>, takeover: bool) -> Value {
    let mut cf = Map::new();
    cf.insert("pydhcp_mac".into(), Value::from(mac.to_string()));
    cf.insert("pydhcp_expire".into(), Value::from(utc_timestamp(expire)));
    if hostname.is_some() || takeover {
        cf.insert(
            "pydhcp_hostname".into(),
            hostname.map_or(Value::Null, Value::from),
        );
    }
    let mut body = Map::new();
    body.insert("custom_fields".into(), Value::Object(cf));
    if takeover || hostname.is_some() {
        body.insert(
            "dns_name".into(),
            Value::from(dns_name(hostname).unwrap_or("")),
        );
    }
    Value::Object(body)
}

fn decline_patch(now: SystemTime) -> Value {
    let until = now + Duration::from_secs(DECLINE_HOLD_SECS);
    json!({ "custom_fields": { "pydhcp_mac": null, "pydhcp_expire": utc_timestamp(until) } })
}

/// A host name Nautobot accepts as `dns_name` (letters, digits, '-', '_', dots).
fn dns_name(hostname: Option<&str>) -> Option<&str> {
    let h = hostname?;
    let ok = !h.is_empty()
        && h.len() <= 253
        && h.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    ok.then_some(h)
}

// ---- errors ----

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
        ureq::Error::Json(e) => BackendError::BadAnswer(e.to_string()),
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

fn contains(body: &[u8], needle: &str) -> bool {
    String::from_utf8_lossy(body).contains(needle)
}

fn role_refused(r: &Reply) -> bool {
    serde_json::from_slice::<Value>(&r.body)
        .ok()
        .is_some_and(|v| v.get("role").is_some())
}

/// Whether a failed create means "another server has this address".
pub(crate) fn is_duplicate(status: u16, body: &[u8]) -> bool {
    match status {
        400 => contains(body, "already exists"),
        500 => {
            let Ok(v) = serde_json::from_slice::<Value>(body) else {
                return false;
            };
            let exc = v.get("exception").and_then(Value::as_str).unwrap_or("");
            let err = v
                .get("error")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_ascii_lowercase();
            match exc {
                "IntegrityError" => {
                    err.contains("duplicate")
                        || err.contains("unique")
                        || err.contains("already exists")
                }
                "ValidationError" => err.contains("already exists"),
                _ => false,
            }
        }
        _ => false,
    }
}

// ---- JSON mapping ----

fn results(v: &Value) -> Result<&Vec<Value>, BackendError> {
    v.get("results")
        .and_then(Value::as_array)
        .ok_or_else(|| BackendError::BadAnswer("list answer without results".into()))
}

/// Custom fields of [`CUSTOM_FIELDS`] missing from a custom-field list.
pub(crate) fn missing_custom_fields(v: &Value) -> Result<Vec<&'static str>, BackendError> {
    let have: Vec<&str> = results(v)?
        .iter()
        .filter_map(|cf| {
            cf.get("key")
                .or_else(|| cf.get("name"))
                .and_then(Value::as_str)
        })
        .collect();
    Ok(CUSTOM_FIELDS
        .into_iter()
        .filter(|k| !have.contains(k))
        .collect())
}

pub(crate) fn parse_prefixes(v: &Value) -> Result<Vec<PrefixInfo>, BackendError> {
    Ok(results(v)?
        .iter()
        .filter_map(|p| {
            let id = p.get("id")?.as_str()?.to_owned();
            let network: Ipv4Net = p.get("prefix")?.as_str()?.parse().ok()?;
            let namespace = p
                .get("namespace")
                .and_then(|n| n.get("id").or(Some(n)))
                .and_then(Value::as_str)
                .map(str::to_owned);
            Some(PrefixInfo {
                id,
                network: network.trunc(),
                namespace,
            })
        })
        .collect())
}

/// The longest prefix containing `origin`.
pub(crate) fn most_specific(list: &[PrefixInfo], origin: Ipv4Addr) -> Option<PrefixInfo> {
    list.iter()
        .filter(|p| p.network.contains(&origin))
        .max_by_key(|p| p.network.prefix_len())
        .cloned()
}

/// A JSON value that may arrive encoded as a string (GraphQL JSONString).
fn json_value(v: Option<&Value>) -> Value {
    match v {
        Some(Value::String(s)) => serde_json::from_str(s).unwrap_or(Value::Null),
        Some(v) => v.clone(),
        None => Value::Null,
    }
}

fn device_from(v: &Value) -> Option<Device> {
    let name = v
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    if !v.is_object() {
        return None;
    }
    Some(Device {
        name,
        config_context: json_value(v.get("config_context")),
        custom_fields: json_value(
            v.get("custom_fields")
                .or_else(|| v.get("_custom_field_data")),
        ),
    })
}

pub(crate) fn parse_devices(v: &Value) -> Result<Option<Device>, BackendError> {
    Ok(results(v)?.first().and_then(device_from))
}

/// A MAC in any common notation: `14:18:77:AA:BB:01`, `14-18-…`, `141877aabb01`,
/// `1418.77aa.bb01`.
pub(crate) fn parse_mac(s: &str) -> Option<MacAddr> {
    let s = s.trim();
    if let Ok(m) = s.parse() {
        return Some(m);
    }
    let hex: String = s
        .chars()
        .filter(|c| *c != '.' && *c != ':' && *c != '-')
        .collect();
    if hex.len() != 12 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut out = [0u8; 6];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(MacAddr(out))
}

/// One IP address object (REST or GraphQL) as a pool record; None for what
/// is not an IPv4 address with an id.
pub(crate) fn record_from(v: &Value) -> Option<Record> {
    let id = v.get("id")?.as_str()?.to_owned();
    let host = match v.get("host").and_then(Value::as_str) {
        Some(h) => h.to_owned(),
        None => v.get("address")?.as_str()?.split('/').next()?.to_owned(),
    };
    let addr: Ipv4Addr = host.parse().ok()?;
    let ty = match v.get("type") {
        Some(Value::String(s)) => s.as_str(),
        Some(o) => o.get("value").and_then(Value::as_str).unwrap_or(""),
        None => "",
    };
    let cf = json_value(
        v.get("custom_fields")
            .or_else(|| v.get("_custom_field_data")),
    );
    let text = |k: &str| cf.get(k).and_then(Value::as_str);
    let interface_macs = v
        .get("interfaces")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|i| i.get("mac_address")?.as_str().and_then(parse_mac))
                .collect()
        })
        .unwrap_or_default();
    Some(Record {
        id,
        addr,
        dynamic: ty.eq_ignore_ascii_case("dhcp"),
        mac: text("pydhcp_mac").and_then(parse_mac),
        expire: text("pydhcp_expire").and_then(parse_expire),
        interface_macs,
    })
}

/// Records of one REST page and the total count.
pub(crate) fn parse_ip_page(v: &Value) -> Result<(Vec<Record>, usize), BackendError> {
    let list = results(v)?;
    let count = v
        .get("count")
        .and_then(Value::as_u64)
        .map_or(list.len(), |c| c as usize);
    Ok((list.iter().filter_map(record_from).collect(), count))
}

/// A string literal for a GraphQL query.
fn gql_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// One query for the device with `mac` and every address of `prefix`.
/// Values are literals, not variables: a single literal also fits a list
/// argument, whichever way a server version declares the filter.
pub(crate) fn graphql_query(mac: Option<MacAddr>, prefix: Option<&PrefixInfo>) -> String {
    let mut q = String::from("{");
    if let Some(m) = mac {
        q.push_str(&format!(
            " devices(mac_address: {}) {{ name config_context _custom_field_data }}",
            gql_str(&m.to_string())
        ));
    }
    if let Some(p) = prefix {
        let ns = p
            .namespace
            .as_deref()
            .map(|n| format!(", namespace: {}", gql_str(n)))
            .unwrap_or_default();
        q.push_str(&format!(
            " ip_addresses(prefix: {}{ns}, limit: {}) {{ id host type _custom_field_data interfaces {{ mac_address }} }}",
            gql_str(&p.network.to_string()),
            MAX_RECORDS + 1
        ));
    }
    q.push_str(" }");
    q
}

#[derive(Debug)]
pub(crate) enum GqlError {
    /// The server's schema does not have what the query asks for.
    Schema(String),
    Backend(BackendError),
}

pub(crate) fn parse_graphql(
    status: u16,
    body: &[u8],
    want_device: bool,
    want_records: bool,
) -> Result<Snapshot, GqlError> {
    if status == 404 || status == 405 {
        return Err(GqlError::Schema(format!("HTTP {status}")));
    }
    let reply = Reply {
        status,
        body: body.to_vec(),
    };
    if status != 200 && status != 400 {
        return Err(GqlError::Backend(http_error(&reply)));
    }
    let v = parse_json(&reply).map_err(GqlError::Backend)?;
    if let Some(errors) = v.get("errors").and_then(Value::as_array) {
        let msgs: Vec<&str> = errors
            .iter()
            .map(|e| e.get("message").and_then(Value::as_str).unwrap_or("?"))
            .collect();
        let text = msgs.join("; ");
        let schema = msgs.iter().any(|m| {
            m.contains("Cannot query field")
                || m.contains("Unknown argument")
                || m.contains("Unknown type")
        });
        return Err(if schema {
            GqlError::Schema(text)
        } else {
            GqlError::Backend(BackendError::BadAnswer(format!(
                "GraphQL: {}",
                snippet(text.as_bytes())
            )))
        });
    }
    if status != 200 {
        return Err(GqlError::Backend(http_error(&reply)));
    }
    let bad = |what: &str| {
        GqlError::Backend(BackendError::BadAnswer(format!(
            "GraphQL answer without {what}"
        )))
    };
    let data = v.get("data").ok_or_else(|| bad("data"))?;
    let mut snap = Snapshot::default();
    if want_device {
        let list = data
            .get("devices")
            .and_then(Value::as_array)
            .ok_or_else(|| bad("devices"))?;
        snap.device = list.first().and_then(device_from);
    }
    if want_records {
        let list = data
            .get("ip_addresses")
            .and_then(Value::as_array)
            .ok_or_else(|| bad("ip_addresses"))?;
        if list.len() > MAX_RECORDS {
            log::warn!(
                "nautobot: prefix has more than {MAX_RECORDS} addresses; reading only those"
            );
        }
        snap.records = list
            .iter()
            .take(MAX_RECORDS)
            .filter_map(record_from)
            .collect();
    }
    Ok(snap)
}

/// `pydhcp_configuration.dns_servers` of the device's config context.
pub(crate) fn dns_servers(dev: Option<&Device>) -> Vec<Ipv4Addr> {
    dev.map(|d| super::context::dns_servers(&d.config_context))
        .unwrap_or_default()
}

/// PXE answer from the device's config context (behind the redeploy guard).
pub(crate) fn boot_options(dev: &Device, client: BootClient) -> Option<Boot> {
    super::context::boot_options(
        "nautobot",
        &dev.name,
        &dev.custom_fields,
        &dev.config_context,
        client,
    )
}

// ---- time ----

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    // Inverse of the civil-from-days in logging::utc_timestamp (H. Hinnant).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `pydhcp_expire` as written by this daemon (`YYYY-MM-DDTHH:MM:SSZ`) or by
/// others: fractional seconds, `+HH:MM`/`-HHMM` offsets, a space for `T`, no
/// zone (UTC).
pub(crate) fn parse_expire(s: &str) -> Option<SystemTime> {
    let s = s.trim();
    let b = s.as_bytes();
    if b.len() < 19 || !s.is_ascii() {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = &s[r];
        t.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| t.parse().ok())?
    };
    if b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut rest = &s[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        let n = frac.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 {
            return None;
        }
        rest = &frac[n..];
    }
    let offset = match rest {
        "" | "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes()[0] {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let z = rest[1..].replace(':', "");
            if !(z.len() == 2 || z.len() == 4) || !z.bytes().all(|c| c.is_ascii_digit()) {
                return None;
            }
            let oh: i64 = z[..2].parse().ok()?;
            let om: i64 = if z.len() == 4 {
                z[2..].parse().ok()?
            } else {
                0
            };
            if oh > 23 || om > 59 {
                return None;
            }
            sign * (oh * 3600 + om * 60)
        }
    };
    let secs = days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + sec - offset;
    Some(UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).unwrap_or(0)))
}

/// Percent-encodes a query value or path segment.
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead as _, BufReader, Write as _};
    use std::net::{TcpListener, TcpStream};
    use std::thread;

    const TOKEN: &str = "0123456789abcdef0123456789abcdef01234567";

    const CUSTOM_FIELDS_JSON: &str = include_str!("../../tests/data/nautobot/custom_fields.json");
    const PREFIXES: &str = include_str!("../../tests/data/nautobot/prefixes_nested.json");
    const PREFIXES_EMPTY: &str = include_str!("../../tests/data/nautobot/prefixes_empty.json");
    const PREFIXES_BAD_ROLE: &str =
        include_str!("../../tests/data/nautobot/prefixes_bad_role_400.json");
    const DEVICE: &str = include_str!("../../tests/data/nautobot/device_config_context.json");
    const DEVICE_NONE: &str = include_str!("../../tests/data/nautobot/device_none.json");
    const IPS: &str = include_str!("../../tests/data/nautobot/ip_addresses_depth1.json");
    const IPS_PAGE1: &str = include_str!("../../tests/data/nautobot/ip_addresses_page1.json");
    const IP_CREATED: &str = include_str!("../../tests/data/nautobot/ip_address_create_201.json");
    const IP_PATCHED: &str = include_str!("../../tests/data/nautobot/ip_address_patch_200.json");
    const IP_STATIC: &str = include_str!("../../tests/data/nautobot/ip_address_static_depth1.json");
    const GQL: &str = include_str!("../../tests/data/nautobot/graphql_read.json");
    const GQL_EMPTY: &str = include_str!("../../tests/data/nautobot/graphql_read_empty.json");
    const GQL_ERROR: &str = include_str!("../../tests/data/nautobot/graphql_error.json");
    const DUP_400: &str = include_str!("../../tests/data/nautobot/duplicate_400.json");
    const DUP_500_INTEGRITY: &str =
        include_str!("../../tests/data/nautobot/duplicate_500_integrity.json");
    const DUP_500_VALIDATION: &str =
        include_str!("../../tests/data/nautobot/duplicate_500_validation.json");
    const BAD_TOKEN: &str = include_str!("../../tests/data/nautobot/invalid_token_403.json");
    const NO_TOKEN: &str = include_str!("../../tests/data/nautobot/no_token_403.json");

    fn v(s: &str) -> Value {
        serde_json::from_str(s).unwrap()
    }
    fn ip(n: u8) -> Ipv4Addr {
        Ipv4Addr::new(192, 0, 2, n)
    }
    fn mac(s: &str) -> MacAddr {
        s.parse().unwrap()
    }
    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }
    fn by_addr(mut r: Vec<Record>) -> Vec<Record> {
        r.sort_by_key(|r| r.addr);
        r
    }

    // ---- mapping of recorded answers ----

    #[test]
    fn prefixes_most_specific_wins() {
        let list = parse_prefixes(&v(PREFIXES)).unwrap();
        assert_eq!(list.len(), 2);
        let p = most_specific(&list, ip(10)).unwrap();
        assert_eq!(p.network, "192.0.2.0/26".parse::<Ipv4Net>().unwrap());
        assert_eq!(p.id, "1105e06d-0787-45c5-bf3e-10bd9739911c");
        assert_eq!(
            p.namespace.as_deref(),
            Some("dfef6c78-ee4d-4f9f-bf46-b65ee7653fa7")
        );
        let p = most_specific(&list, ip(100)).unwrap();
        assert_eq!(p.network, "192.0.2.0/24".parse::<Ipv4Net>().unwrap());
        assert_eq!(most_specific(&list, Ipv4Addr::new(10, 0, 0, 1)), None);
        assert!(parse_prefixes(&v(PREFIXES_EMPTY)).unwrap().is_empty());
    }

    #[test]
    fn device_with_config_context() {
        let d = parse_devices(&v(DEVICE)).unwrap().unwrap();
        assert_eq!(d.name, "bmc-test-01");
        assert_eq!(
            dns_servers(Some(&d)),
            vec![ip(53), Ipv4Addr::new(198, 51, 100, 53)]
        );
        let tftp = Some(ip(69));
        let boot = |c| boot_options(&d, c);
        assert_eq!(boot(BootClient::None), None);
        assert_eq!(
            boot(BootClient::Bios),
            Some(Boot {
                server: tftp,
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
        assert_eq!(http.file, "http://192.0.2.69/uefi/shimx64.efi");
        assert_eq!(http.server, None);
        // The redeploy guard.
        let mut off = d.clone();
        off.custom_fields["redeploy"] = json!(false);
        assert_eq!(boot_options(&off, BootClient::Bios), None);
        let mut wrong = d.clone();
        wrong.custom_fields["confirm_redeploy"] = json!("another-device");
        assert_eq!(boot_options(&wrong, BootClient::Bios), None);
        let mut none = d.clone();
        none.custom_fields = json!({});
        assert_eq!(boot_options(&none, BootClient::Bios), None);
        // BIOS/UEFI PXE needs the TFTP server.
        let mut no_tftp = d.clone();
        no_tftp.config_context["pydhcp_configuration"]
            .as_object_mut()
            .unwrap()
            .remove("tftp_server");
        assert_eq!(boot_options(&no_tftp, BootClient::Uefi), None);
        assert!(boot_options(&no_tftp, BootClient::Ipxe).is_some());
        assert_eq!(parse_devices(&v(DEVICE_NONE)).unwrap(), None);
        assert!(dns_servers(None).is_empty());
    }

    fn expected_records() -> Vec<Record> {
        vec![
            Record {
                id: "26a8aa4f-64f1-4d36-9c45-aae63ac2861c".into(),
                addr: ip(5),
                dynamic: true,
                mac: Some(mac("02:00:00:00:00:05")),
                expire: Some(at(1_893_456_000)),
                interface_macs: vec![],
            },
            Record {
                id: "39e86320-f894-4110-8e34-a657b08853bb".into(),
                addr: ip(6),
                dynamic: true,
                mac: Some(mac("02:00:00:00:00:06")),
                expire: Some(at(1_577_836_800)),
                interface_macs: vec![],
            },
            Record {
                id: "207df7f4-4453-4377-8c74-de2ec8133d46".into(),
                addr: ip(7),
                dynamic: false,
                mac: Some(mac("02:00:00:00:00:07")),
                expire: None,
                interface_macs: vec![],
            },
            Record {
                id: "26096aa6-31b1-4755-89cf-92d5660251cf".into(),
                addr: ip(10),
                dynamic: false,
                mac: None,
                expire: None,
                interface_macs: vec![mac("14:18:77:aa:bb:01")],
            },
        ]
    }

    #[test]
    fn ip_list_with_interfaces_inline() {
        let (recs, count) = parse_ip_page(&v(IPS)).unwrap();
        assert_eq!(count, 4);
        assert_eq!(by_addr(recs), expected_records());
        let (recs, count) = parse_ip_page(&v(IPS_PAGE1)).unwrap();
        assert_eq!((recs.len(), count), (2, 9));
    }

    #[test]
    fn graphql_answer_maps_like_rest() {
        let snap = parse_graphql(200, GQL.as_bytes(), true, true).unwrap();
        assert_eq!(by_addr(snap.records), expected_records());
        let rest_dev = parse_devices(&v(DEVICE)).unwrap().unwrap();
        let dev = snap.device.unwrap();
        assert_eq!(dev.name, rest_dev.name);
        assert_eq!(dev.config_context, rest_dev.config_context);
        assert_eq!(dev.custom_fields, rest_dev.custom_fields);
        let empty = parse_graphql(200, GQL_EMPTY.as_bytes(), true, true).unwrap();
        assert!(empty.device.is_none() && empty.records.is_empty());
        assert!(matches!(
            parse_graphql(400, GQL_ERROR.as_bytes(), true, true),
            Err(GqlError::Schema(_))
        ));
        assert!(matches!(
            parse_graphql(404, b"<html>", true, true),
            Err(GqlError::Schema(_))
        ));
        let other =
            br#"{"errors":[{"message":"invalid IPNetwork bogus"}],"data":{"ip_addresses":null}}"#;
        assert!(matches!(
            parse_graphql(200, other, false, true),
            Err(GqlError::Backend(BackendError::BadAnswer(_)))
        ));
        // JSON fields sent as strings (JSONString) are decoded too.
        let s = br#"{"data":{"devices":[{"name":"d","config_context":"{\"pydhcp_configuration\":{\"dns_servers\":[\"192.0.2.53\"]}}","_custom_field_data":"{}"}],"ip_addresses":[{"id":"x","host":"192.0.2.9","type":"dhcp","_custom_field_data":"{\"pydhcp_mac\":\"141877AABB09\"}","interfaces":[]}]}}"#;
        let snap = parse_graphql(200, s, true, true).unwrap();
        assert_eq!(dns_servers(snap.device.as_ref()), vec![ip(53)]);
        assert_eq!(snap.records[0].mac, Some(mac("14:18:77:aa:bb:09")));
    }

    #[test]
    fn single_records() {
        let r = record_from(&v(IP_PATCHED)).unwrap();
        assert_eq!((r.addr, r.dynamic), (ip(5), true));
        assert_eq!(r.expire, Some(at(1_924_992_000)));
        let r = record_from(&v(IP_STATIC)).unwrap();
        assert_eq!(r, expected_records()[3]);
        let r = record_from(&v(IP_CREATED)).unwrap();
        assert_eq!(r.id, "26a8aa4f-64f1-4d36-9c45-aae63ac2861c");
        assert_eq!(r.mac, Some(mac("02:00:00:00:00:05")));
    }

    #[test]
    fn custom_field_list() {
        assert!(missing_custom_fields(&v(CUSTOM_FIELDS_JSON))
            .unwrap()
            .is_empty());
        let mut cf = v(CUSTOM_FIELDS_JSON);
        cf["results"]
            .as_array_mut()
            .unwrap()
            .retain(|f| f["key"] != "pydhcp_hostname");
        assert_eq!(missing_custom_fields(&cf).unwrap(), vec!["pydhcp_hostname"]);
        assert_eq!(
            missing_custom_fields(&json!({"count": 0, "results": []})).unwrap(),
            CUSTOM_FIELDS.to_vec()
        );
    }

    #[test]
    fn duplicate_answers() {
        assert!(is_duplicate(400, DUP_400.as_bytes()));
        assert!(is_duplicate(500, DUP_500_INTEGRITY.as_bytes()));
        assert!(is_duplicate(500, DUP_500_VALIDATION.as_bytes()));
        assert!(!is_duplicate(403, BAD_TOKEN.as_bytes()));
        assert!(!is_duplicate(400, PREFIXES_BAD_ROLE.as_bytes()));
        assert!(!is_duplicate(
            400,
            br#"{"namespace":["No suitable parent Prefix for 10.255.255.1 exists in Namespace Global"]}"#
        ));
        assert!(!is_duplicate(500, b"<html>Internal Server Error</html>"));
        assert!(!is_duplicate(
            500,
            br#"{"error":"connection lost","exception":"OperationalError"}"#
        ));
        assert!(!is_duplicate(201, DUP_400.as_bytes()));
    }

    #[test]
    fn garbage_never_panics() {
        let shapes = [
            json!(null),
            json!([]),
            json!("results"),
            json!({"results": null}),
            json!({"results": [1, "x", null, [], {"prefix": 5}, {"id": "a", "prefix": "2001:db8::/32"}]}),
            json!({"results": [{"id": 1, "host": "192.0.2.1"}, {"id": "a", "host": "::1"}, {"id": "b", "address": 7}]}),
            json!({"results": [{"id": "a", "host": "192.0.2.1", "type": 3, "custom_fields": [1], "interfaces": {"x": 1}}]}),
            json!({"data": {"devices": {}, "ip_addresses": "x"}}),
            json!({"errors": "x"}),
        ];
        for s in &shapes {
            let _ = parse_prefixes(s);
            let _ = parse_devices(s);
            let _ = parse_ip_page(s);
            let _ = missing_custom_fields(s);
            let _ = record_from(s);
            let _ = parse_graphql(200, s.to_string().as_bytes(), true, true);
            let d = Device {
                name: "n".into(),
                config_context: s.clone(),
                custom_fields: s.clone(),
            };
            let _ = dns_servers(Some(&d));
            let _ = boot_options(&d, BootClient::Bios);
        }
        let (recs, _) = parse_ip_page(&shapes[6]).unwrap();
        assert_eq!(recs.len(), 1);
        assert!(!recs[0].dynamic && recs[0].mac.is_none());
        assert!(parse_prefixes(&shapes[4]).unwrap().is_empty());
        assert!(parse_prefixes(&json!([])).is_err());
        for garbage in [&b"<html>"[..], b"", b"{", b"\xff\xfe"] {
            assert!(matches!(
                parse_graphql(200, garbage, true, true),
                Err(GqlError::Backend(BackendError::BadAnswer(_)))
            ));
        }
        assert!(matches!(
            parse_graphql(200, b"{\"data\":{}}", true, true),
            Err(GqlError::Backend(BackendError::BadAnswer(_)))
        ));
        assert!(matches!(
            parse_graphql(502, b"bad gateway", true, true),
            Err(GqlError::Backend(BackendError::Http { status: 502, .. }))
        ));
    }

    #[test]
    fn expiry_times() {
        let t = at(1_893_456_000);
        for s in [
            "2030-01-01T00:00:00Z",
            "2030-01-01T00:00:00.000000Z",
            "2030-01-01T00:00:00+00:00",
            "2030-01-01 00:00:00",
            "2030-01-01T02:00:00+02:00",
            "2029-12-31T19:00:00-0500",
            " 2030-01-01t00:00:00.5z ",
        ] {
            assert_eq!(parse_expire(s), Some(t), "{s}");
        }
        for s in [
            "",
            "2030-01-01",
            "2030-13-01T00:00:00Z",
            "2030-01-01T25:00:00Z",
            "2030-01-01T00:00:00X",
            "2030-01-01T00:00:00.Z",
            "2030/01/01T00:00:00Z",
            "20300101T000000Z",
            "2030-01-01T00:00:00+2",
            "ünicode-01-01T00:00:00Z",
        ] {
            assert_eq!(parse_expire(s), None, "{s}");
        }
        for secs in [0, 951_782_400, 1_700_000_000, 4_102_444_799] {
            assert_eq!(parse_expire(&utc_timestamp(at(secs))), Some(at(secs)));
        }
        assert_eq!(utc_timestamp(t), "2030-01-01T00:00:00Z");
    }

    #[test]
    fn macs_in_any_notation() {
        let m = mac("14:18:77:aa:bb:01");
        for s in [
            "14:18:77:AA:BB:01",
            "14-18-77-aa-bb-01",
            "141877aabb01",
            "1418.77aa.bb01",
            " 14:18:77:aa:bb:01 ",
        ] {
            assert_eq!(parse_mac(s), Some(m), "{s}");
        }
        for s in ["", "14:18:77:aa:bb", "14:18:77:aa:bb:zz", "141877aabb0102"] {
            assert_eq!(parse_mac(s), None, "{s}");
        }
    }

    #[test]
    fn query_and_bodies() {
        let p = PrefixInfo {
            id: "p".into(),
            network: "192.0.2.0/24".parse().unwrap(),
            namespace: Some("ns\"1".into()),
        };
        let q = graphql_query(Some(mac("14:18:77:aa:bb:01")), Some(&p));
        assert!(
            q.contains(r#"devices(mac_address: "14:18:77:aa:bb:01")"#),
            "{q}"
        );
        assert!(
            q.contains(r#"ip_addresses(prefix: "192.0.2.0/24", namespace: "ns\"1", limit: 65537)"#),
            "{q}"
        );
        assert!(!graphql_query(None, Some(&p)).contains("devices"));
        assert!(!graphql_query(Some(mac("14:18:77:aa:bb:01")), None).contains("ip_addresses"));

        let m = mac("02:00:00:00:00:01");
        assert_eq!(
            lease_patch(m, at(1_893_456_000), None, false),
            json!({"custom_fields": {"pydhcp_mac": "02:00:00:00:00:01", "pydhcp_expire": "2030-01-01T00:00:00Z"}})
        );
        assert_eq!(
            lease_patch(m, at(1_893_456_000), None, true),
            json!({"custom_fields": {"pydhcp_mac": "02:00:00:00:00:01", "pydhcp_expire": "2030-01-01T00:00:00Z", "pydhcp_hostname": null}, "dns_name": ""})
        );
        assert_eq!(
            lease_patch(m, at(1_893_456_000), Some("web 1"), false)["dns_name"],
            json!("")
        );
        assert_eq!(
            decline_patch(at(1_893_452_400)),
            json!({"custom_fields": {"pydhcp_mac": null, "pydhcp_expire": "2030-01-01T00:00:00Z"}})
        );
        assert_eq!(dns_name(Some("bmc-01.example")), Some("bmc-01.example"));
        for bad in ["", "a b", "a..b", ".a", "ä", &"x".repeat(64)] {
            assert_eq!(dns_name(Some(bad)), None, "{bad}");
        }
        assert_eq!(enc("Server BMC/ü"), "Server%20BMC%2F%C3%BC");
    }

    // ---- token handling ----

    fn conf(url: &str) -> BackendConf {
        BackendConf {
            url: Some(url.into()),
            timeout_secs: 5,
            ..BackendConf::default()
        }
    }

    #[test]
    fn token_from_file_or_env_and_never_shown() {
        let dir = std::env::temp_dir().join(format!("nfdhcpd-token-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("token");
        std::fs::write(&file, format!("  {TOKEN}\n")).unwrap();
        let mut c = conf("http://127.0.0.1:1");
        c.token_file = Some(file.clone());
        assert_eq!(load_token(&c, "NFDHCPD_TEST_UNSET_VAR").unwrap(), TOKEN);
        let secret = "s3cr3t value";
        std::fs::write(&file, secret).unwrap();
        let e = load_token(&c, "X").unwrap_err();
        assert!(!e.contains("s3cr3t"), "{e}");
        std::fs::write(&file, "x".repeat(5000)).unwrap();
        assert!(load_token(&c, "X").unwrap_err().contains("too large"));
        std::fs::write(&file, "\n").unwrap();
        assert!(load_token(&c, "X").unwrap_err().contains("empty"));
        c.token_file = Some(dir.join("missing"));
        assert!(load_token(&c, "X").is_err());
        std::fs::remove_dir_all(&dir).unwrap();

        c.token_file = None;
        let var = format!("NFDHCPD_TEST_TOKEN_{}", std::process::id());
        assert!(load_token(&c, &var).unwrap_err().contains(&var));
        std::env::set_var(&var, format!("{TOKEN} "));
        assert_eq!(load_token(&c, &var).unwrap(), TOKEN);
        std::env::remove_var(&var);

        let nb = Nautobot::new(&c, TOKEN.into(), 3600).unwrap();
        let dbg = format!("{nb:?}");
        assert!(!dbg.contains(TOKEN) && dbg.contains("127.0.0.1"), "{dbg}");
        assert!(Nautobot::new(&conf("ftp://x"), TOKEN.into(), 1).is_err());
        assert!(Nautobot::new(&conf("http://x"), "a b".into(), 1).is_err());
        let mut ca = conf("https://x");
        ca.ca_file = Some("/nonexistent/ca.pem".into());
        assert!(Nautobot::new(&ca, TOKEN.into(), 1).is_err());
        let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/nautobot");
        ca.ca_file = Some(data.join("test_ca.pem"));
        assert!(Nautobot::new(&ca, TOKEN.into(), 1).is_ok());
        ca.ca_file = Some(data.join("custom_fields.json"));
        let e = Nautobot::new(&ca, TOKEN.into(), 1).unwrap_err();
        assert!(e.contains("no certificate"), "{e}");
    }

    // ---- whole jobs against a scripted server ----

    #[derive(Debug, Clone)]
    struct Seen {
        method: String,
        path: String,
        body: String,
        auth: String,
    }

    type Handler = dyn Fn(&Seen) -> (u16, String) + Send + Sync;

    struct Fake {
        url: String,
        seen: Arc<Mutex<Vec<Seen>>>,
    }

    impl Fake {
        fn new(h: impl Fn(&Seen) -> (u16, String) + Send + Sync + 'static) -> Fake {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            let url = format!("http://{}", l.local_addr().unwrap());
            let seen = Arc::new(Mutex::new(Vec::new()));
            let h: Arc<Handler> = Arc::new(h);
            let s = Arc::clone(&seen);
            thread::spawn(move || {
                for c in l.incoming().flatten() {
                    let (h, s) = (Arc::clone(&h), Arc::clone(&s));
                    thread::spawn(move || serve(c, &*h, &s));
                }
            });
            Fake { url, seen }
        }
        fn seen(&self) -> Vec<Seen> {
            std::mem::take(&mut *lock(&self.seen))
        }
    }

    fn serve(c: TcpStream, h: &Handler, seen: &Mutex<Vec<Seen>>) {
        let mut r = BufReader::new(c.try_clone().unwrap());
        let mut w = c;
        loop {
            let mut line = String::new();
            if r.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let mut it = line.split_whitespace();
            let (method, path) = (
                it.next().unwrap_or("").to_owned(),
                it.next().unwrap_or("").to_owned(),
            );
            let (mut len, mut auth) = (0usize, String::new());
            loop {
                let mut hl = String::new();
                if r.read_line(&mut hl).unwrap_or(0) == 0 {
                    return;
                }
                let hl = hl.trim_end();
                if hl.is_empty() {
                    break;
                }
                if let Some((k, v)) = hl.split_once(':') {
                    match k.to_ascii_lowercase().as_str() {
                        "content-length" => len = v.trim().parse().unwrap_or(0),
                        "authorization" => auth = v.trim().to_owned(),
                        _ => {}
                    }
                }
            }
            let mut body = vec![0; len];
            if r.read_exact(&mut body).is_err() {
                return;
            }
            let req = Seen {
                method,
                path,
                body: String::from_utf8_lossy(&body).into_owned(),
                auth,
            };
            lock(seen).push(req.clone());
            let (status, text) = h(&req);
            let head = format!(
                "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                text.len()
            );
            if w.write_all(head.as_bytes()).is_err() || w.write_all(text.as_bytes()).is_err() {
                return;
            }
        }
    }

    /// Answers like the seeded Nautobot with the recorded data; creates and
    /// patches echo what was asked; `post` decides the create status.
    fn nautobot_like(
        post: impl Fn(usize) -> (u16, &'static str) + Send + Sync + 'static,
    ) -> impl Fn(&Seen) -> (u16, String) + Send + Sync + 'static {
        won_by(post, "02:00:00:00:00:aa")
    }

    /// Like `nautobot_like`; an address lost to a duplicate then reads back
    /// as a live lease of `winner`.
    fn won_by(
        post: impl Fn(usize) -> (u16, &'static str) + Send + Sync + 'static,
        winner: &'static str,
    ) -> impl Fn(&Seen) -> (u16, String) + Send + Sync + 'static {
        let posts = Mutex::new(0usize);
        let hosts: Mutex<HashMap<String, String>> = Mutex::new(HashMap::new());
        let taken: Mutex<Vec<Value>> = Mutex::new(Vec::new());
        move |r: &Seen| {
            let p = r.path.as_str();
            let body: Value = serde_json::from_str(&r.body).unwrap_or(Value::Null);
            if p.starts_with("/api/extras/custom-fields/") {
                (200, CUSTOM_FIELDS_JSON.into())
            } else if p.starts_with("/api/ipam/prefixes/") {
                (200, PREFIXES.into())
            } else if p.starts_with("/api/graphql/") {
                let mut answer = v(GQL);
                let list = answer["data"]["ip_addresses"].as_array_mut().unwrap();
                list.extend(lock(&taken).iter().cloned());
                (200, answer.to_string())
            } else if p.starts_with("/api/dcim/devices/") {
                (200, DEVICE.into())
            } else if r.method == "GET" && p.starts_with("/api/ipam/ip-addresses/?") {
                (200, IPS.into())
            } else if r.method == "POST" && p == "/api/ipam/ip-addresses/" {
                let n = {
                    let mut n = lock(&posts);
                    *n += 1;
                    *n
                };
                let (status, text) = post(n);
                let address = body["address"].as_str().unwrap_or("").to_owned();
                let host = address.split('/').next().unwrap().to_owned();
                if status != 201 {
                    if is_duplicate(status, text.as_bytes()) {
                        lock(&taken).push(json!({
                            "id": format!("other-{host}"), "host": host, "type": "DHCP",
                            "_custom_field_data": {"pydhcp_mac": winner, "pydhcp_expire": "2099-01-01T00:00:00Z"},
                            "interfaces": [],
                        }));
                    }
                    return (status, text.into());
                }
                let id = format!("new-{host}");
                lock(&hosts).insert(id.clone(), host.clone());
                let mut rec = body.clone();
                rec["id"] = json!(id);
                rec["host"] = json!(host);
                (201, rec.to_string())
            } else if r.method == "PATCH" {
                let id = p
                    .trim_start_matches("/api/ipam/ip-addresses/")
                    .trim_end_matches('/');
                let known = lock(&hosts).get(id).cloned();
                let host = known.or_else(|| {
                    expected_records()
                        .into_iter()
                        .find(|x| x.id == id)
                        .map(|x| x.addr.to_string())
                });
                match host {
                    Some(h) => (
                        200,
                        json!({"id": id, "host": h, "type": "dhcp", "custom_fields": body["custom_fields"]})
                            .to_string(),
                    ),
                    None => (404, r#"{"detail":"No IPAddress matches the given query."}"#.into()),
                }
            } else if r.method == "GET" && p.starts_with("/api/ipam/ip-addresses/") {
                (200, IP_STATIC.into())
            } else {
                (404, "{}".into())
            }
        }
    }

    fn backend(url: &str, allow_unknown: bool) -> Nautobot {
        let mut c = conf(url);
        c.allow_unknown_devices = allow_unknown;
        Nautobot::new(&c, TOKEN.into(), 3600).unwrap()
    }

    const NOW: u64 = 1_800_000_000;

    fn job(kind: JobKind, m: &str, boot: BootClient, known: Option<Known>) -> Job {
        Job {
            id: 1,
            kind,
            client: super::super::Client {
                mac: mac(m),
                hostname: Some("bmc-x".into()),
                origin: ip(10),
                boot,
            },
            known,
            now: at(NOW),
        }
    }

    fn lease_of(r: (Result<Outcome, BackendError>, u32)) -> (Lease, u32) {
        match r {
            (Ok(Outcome::Lease(l)), n) => (l, n),
            other => panic!("no lease: {other:?}"),
        }
    }

    fn known(l: &Lease) -> Option<Known> {
        Some(Known {
            addr: l.addr,
            kind: l.kind,
            record: l.record.clone(),
            lease: l.clone(),
        })
    }

    #[test]
    fn dora_renew_release_call_counts() {
        let fake = Fake::new(nautobot_like(|_| (201, "")));
        let nb = backend(&fake.url, true);
        assert_eq!(nb.prepare().unwrap(), 1);
        let seen = fake.seen();
        assert_eq!(seen[0].auth, format!("Token {TOKEN}"));
        let mut s = nb.session();
        let m = "02:00:00:00:00:99";

        // A new client: prefix, read, create.
        let (l, calls) = lease_of(s.run(&job(JobKind::Offer, m, BootClient::Bios, None)));
        assert_eq!(calls, 3);
        assert_eq!(l.addr, ip(8), "lowest free of 192.0.2.0/26 after .5 .6 .7");
        assert_eq!(l.network, "192.0.2.0/26".parse::<Ipv4Net>().unwrap());
        assert_eq!(l.gateway, Some(ip(1)));
        assert_eq!(l.dns, vec![ip(53), Ipv4Addr::new(198, 51, 100, 53)]);
        assert_eq!(l.boot.as_ref().unwrap().file, "pxelinux.0");
        assert_eq!(
            (l.kind, l.record.as_deref()),
            (LeaseKind::Dynamic, Some("new-192.0.2.8"))
        );
        assert_eq!(l.lease_secs, 3600);
        let seen = fake.seen();
        let paths: Vec<_> = seen
            .iter()
            .map(|r| (r.method.as_str(), r.path.as_str()))
            .collect();
        assert_eq!(
            paths,
            vec![
                (
                    "GET",
                    "/api/ipam/prefixes/?contains=192.0.2.10&role=Server%20BMC&limit=1000"
                ),
                ("POST", "/api/graphql/"),
                ("POST", "/api/ipam/ip-addresses/"),
            ]
        );
        let created: Value = serde_json::from_str(&seen[2].body).unwrap();
        assert_eq!(
            created,
            json!({
                "address": "192.0.2.8/26",
                "namespace": "dfef6c78-ee4d-4f9f-bf46-b65ee7653fa7",
                "status": "Active",
                "type": "dhcp",
                "dns_name": "bmc-x",
                "custom_fields": {
                    "pydhcp_mac": m,
                    "pydhcp_expire": utc_timestamp(at(NOW + OFFER_HOLD_SECS)),
                    "pydhcp_hostname": "bmc-x",
                },
            })
        );

        // REQUEST with what the daemon knows: one PATCH.
        let confirm = JobKind::Confirm {
            addr: ip(8),
            lease_secs: 7200,
        };
        let (l2, calls) = lease_of(s.run(&job(confirm, m, BootClient::Bios, known(&l))));
        assert_eq!(calls, 1);
        assert_eq!(
            (l2.addr, l2.lease_secs, l2.kind),
            (ip(8), 7200, LeaseKind::Dynamic)
        );
        let seen = fake.seen();
        assert_eq!(seen[0].method, "PATCH");
        assert_eq!(seen[0].path, "/api/ipam/ip-addresses/new-192.0.2.8/");
        let patch: Value = serde_json::from_str(&seen[0].body).unwrap();
        assert_eq!(patch["custom_fields"]["pydhcp_mac"], json!(m));
        assert_eq!(
            patch["custom_fields"]["pydhcp_expire"],
            json!(utc_timestamp(at(NOW + 7200)))
        );

        // RELEASE with what the daemon knows: one PATCH, expiry now.
        let rel = JobKind::Release { addr: ip(8) };
        assert_eq!(
            s.run(&job(rel, m, BootClient::None, known(&l))),
            (Ok(Outcome::Done), 1)
        );
        let patch: Value = serde_json::from_str(&fake.seen()[0].body).unwrap();
        assert_eq!(
            patch,
            json!({"custom_fields": {"pydhcp_expire": utc_timestamp(at(NOW))}})
        );

        // Warm prefix cache: read + create.
        let (_, calls) = lease_of(s.run(&job(
            JobKind::Offer,
            "02:00:00:00:00:98",
            BootClient::None,
            None,
        )));
        assert_eq!(calls, 2);
        fake.seen();

        // Static lease: read only, never written.
        let (l, calls) = lease_of(s.run(&job(
            JobKind::Offer,
            "14:18:77:aa:bb:01",
            BootClient::None,
            None,
        )));
        assert_eq!((l.addr, l.kind, calls), (ip(10), LeaseKind::Static, 1));
        assert_eq!(l.boot, None);
        // Its renewal: one GET of the record.
        let confirm = JobKind::Confirm {
            addr: ip(10),
            lease_secs: 3600,
        };
        let (l2, calls) = lease_of(s.run(&job(
            confirm.clone(),
            "14:18:77:aa:bb:01",
            BootClient::None,
            known(&l),
        )));
        assert_eq!((l2.addr, l2.kind, calls), (ip(10), LeaseKind::Static, 1));
        // Without what the daemon knows: read, no write.
        let (l3, calls) =
            lease_of(s.run(&job(confirm, "14:18:77:aa:bb:01", BootClient::None, None)));
        assert_eq!((l3.addr, l3.kind, calls), (ip(10), LeaseKind::Static, 1));
        assert!(fake.seen().iter().all(
            |r| r.method != "PATCH" && !(r.method == "POST" && r.path.contains("ip-addresses"))
        ));

        // Permanent lease: read only.
        let (l, calls) = lease_of(s.run(&job(
            JobKind::Offer,
            "02:00:00:00:00:07",
            BootClient::None,
            None,
        )));
        assert_eq!((l.addr, l.kind, calls), (ip(7), LeaseKind::Permanent, 1));
        // Own lease valid beyond the hold: read only.
        let (l, calls) = lease_of(s.run(&job(
            JobKind::Offer,
            "02:00:00:00:00:05",
            BootClient::None,
            None,
        )));
        assert_eq!((l.addr, l.kind, calls), (ip(5), LeaseKind::Dynamic, 1));
        // Own lease expired: offered from the read alone; nothing is written
        // to the client's own record before its REQUEST.
        let (l, calls) = lease_of(s.run(&job(
            JobKind::Offer,
            "02:00:00:00:00:06",
            BootClient::None,
            None,
        )));
        assert_eq!((l.addr, calls), (ip(6), 1));
        let seen = fake.seen();
        assert_ne!(seen.last().unwrap().method, "PATCH");

        // Someone else's live lease is not confirmed.
        let confirm = JobKind::Confirm {
            addr: ip(5),
            lease_secs: 3600,
        };
        let r = s.run(&job(confirm, m, BootClient::None, None));
        assert_eq!(r, (Ok(Outcome::NoLease(NoLease::NotYours)), 1));

        // INFORM: the device read only.
        let inform = JobKind::Inform { addr: ip(40) };
        let (l, calls) = lease_of(s.run(&job(inform, "14:18:77:aa:bb:01", BootClient::Bios, None)));
        assert_eq!((l.addr, calls, l.boot.is_none()), (ip(40), 1, true));
        assert_eq!(l.dns.len(), 2);
        fake.seen();

        // DECLINE without what the daemon knows: read + PATCH clearing the MAC.
        let dec = JobKind::Decline { addr: ip(6) };
        assert_eq!(
            s.run(&job(dec, "02:00:00:00:00:06", BootClient::None, None)),
            (Ok(Outcome::Done), 2)
        );
        let patch: Value = serde_json::from_str(&fake.seen()[1].body).unwrap();
        assert_eq!(patch["custom_fields"]["pydhcp_mac"], Value::Null);

        // A remembered record that is gone: decided from a fresh read.
        let m5 = "02:00:00:00:00:05";
        let (l5, _) = lease_of(s.run(&job(JobKind::Offer, m5, BootClient::None, None)));
        let mut stale = known(&l5).unwrap();
        stale.record = Some("gone".into());
        let confirm = JobKind::Confirm {
            addr: ip(5),
            lease_secs: 60,
        };
        let (l, calls) = lease_of(s.run(&job(confirm, m5, BootClient::None, Some(stale))));
        assert_eq!((l.addr, l.record, calls), (ip(5), l5.record, 3));
        assert_eq!(
            patch["custom_fields"]["pydhcp_expire"],
            json!(utc_timestamp(at(NOW + DECLINE_HOLD_SECS)))
        );
    }

    #[test]
    fn lost_races_move_on() {
        let fake = Fake::new(nautobot_like(|n| match n {
            1 => (500, DUP_500_INTEGRITY),
            2 => (400, DUP_400),
            3 => (500, DUP_500_VALIDATION),
            _ => (201, ""),
        }));
        let nb = backend(&fake.url, true);
        nb.prepare().unwrap();
        fake.seen();
        let mut s = nb.session();
        let (l, calls) = lease_of(s.run(&job(
            JobKind::Offer,
            "02:00:00:00:00:99",
            BootClient::None,
            None,
        )));
        // prefix, read, 3 lost creates, a read after the third, the create.
        assert_eq!(calls, 7);
        let tried: Vec<String> = fake
            .seen()
            .iter()
            .filter(|r| r.path == "/api/ipam/ip-addresses/")
            .map(|r| {
                serde_json::from_str::<Value>(&r.body).unwrap()["address"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        assert_eq!(
            tried,
            [
                "192.0.2.8/26",
                "192.0.2.9/26",
                "192.0.2.11/26",
                "192.0.2.12/26"
            ]
        );
        assert_eq!(l.addr, ip(12));

        // Losing every time ends in an error, not in a NAK.
        let fake = Fake::new(nautobot_like(|_| (400, DUP_400)));
        let nb = backend(&fake.url, true);
        nb.prepare().unwrap();
        let mut s = nb.session();
        let (r, calls) = s.run(&job(
            JobKind::Offer,
            "02:00:00:00:00:99",
            BootClient::None,
            None,
        ));
        assert!(matches!(r, Err(BackendError::BadAnswer(_))), "{r:?}");
        assert_eq!(
            calls,
            1 + 1 + MAX_LOST_RACES + (MAX_LOST_RACES - 1).div_ceil(REREAD_EVERY)
        );
    }

    #[test]
    fn race_lost_to_another_server_for_the_same_client() {
        let m = "02:00:00:00:00:99";
        let fake = Fake::new(won_by(|_| (500, DUP_500_INTEGRITY), m));
        let nb = backend(&fake.url, true);
        nb.prepare().unwrap();
        fake.seen();
        let (l, calls) =
            lease_of(
                nb.session()
                    .run(&job(JobKind::Offer, m, BootClient::None, None)),
            );
        // prefix, read, lost create, read: the winner's record is the client's.
        assert_eq!(calls, 4);
        assert_eq!(
            (l.addr, l.record.as_deref()),
            (ip(8), Some("other-192.0.2.8"))
        );
        let creates = fake
            .seen()
            .iter()
            .filter(|r| r.method == "POST" && r.path == "/api/ipam/ip-addresses/")
            .count();
        assert_eq!(creates, 1);
    }

    #[test]
    fn graphql_refused_falls_back_to_rest() {
        let inner = nautobot_like(|_| (201, ""));
        let fake = Fake::new(move |r: &Seen| {
            if r.path.starts_with("/api/graphql/") {
                (400, GQL_ERROR.into())
            } else {
                inner(r)
            }
        });
        let nb = backend(&fake.url, false);
        nb.prepare().unwrap();
        fake.seen();
        let mut s = nb.session();
        let (l, calls) = lease_of(s.run(&job(
            JobKind::Offer,
            "02:00:00:00:00:99",
            BootClient::Uefi,
            None,
        )));
        assert_eq!((l.addr, calls), (ip(8), 5));
        assert_eq!(l.boot.unwrap().file, "grubx64.efi");
        let paths: Vec<String> = fake.seen().into_iter().map(|r| r.path).collect();
        assert_eq!(paths[2], "/api/dcim/devices/?mac_address=02%3A00%3A00%3A00%3A00%3A99&include=config_context&limit=2");
        assert_eq!(paths[3], "/api/ipam/ip-addresses/?prefix=192.0.2.0%2F26&namespace=dfef6c78-ee4d-4f9f-bf46-b65ee7653fa7&limit=1000&offset=0&exclude_m2m=false&depth=1");
        // From now on REST only, and the prefix from the cache.
        let (_, calls) = lease_of(s.run(&job(
            JobKind::Offer,
            "02:00:00:00:00:98",
            BootClient::None,
            None,
        )));
        assert_eq!(calls, 3);
    }

    #[test]
    fn rest_reads_follow_pages() {
        let all = v(IPS)["results"].clone();
        let inner = nautobot_like(|_| (201, ""));
        let fake = Fake::new(move |r: &Seen| {
            if r.method == "GET" && r.path.starts_with("/api/ipam/ip-addresses/?") {
                let offset: usize = r
                    .path
                    .split("offset=")
                    .nth(1)
                    .unwrap()
                    .split('&')
                    .next()
                    .unwrap()
                    .parse()
                    .unwrap();
                let page: Vec<Value> = all
                    .as_array()
                    .unwrap()
                    .iter()
                    .skip(offset)
                    .take(2)
                    .cloned()
                    .collect();
                (
                    200,
                    json!({"count": 4, "next": null, "previous": null, "results": page})
                        .to_string(),
                )
            } else {
                inner(r)
            }
        });
        let nb = backend(&fake.url, false).with_rest_reads();
        nb.prepare().unwrap();
        let mut s = nb.session();
        let (l, calls) = lease_of(s.run(&job(
            JobKind::Offer,
            "14:18:77:aa:bb:01",
            BootClient::None,
            None,
        )));
        // prefix, device, two pages.
        assert_eq!((l.addr, l.kind, calls), (ip(10), LeaseKind::Static, 4));
    }

    #[test]
    fn unknown_devices() {
        let inner = nautobot_like(|_| (201, ""));
        let h = move |r: &Seen| {
            if r.path.starts_with("/api/graphql/") {
                (
                    200,
                    r#"{"data":{"devices":[],"ip_addresses":[]}}"#.to_owned(),
                )
            } else {
                inner(r)
            }
        };
        let fake = Fake::new(h);
        let nb = backend(&fake.url, false);
        nb.prepare().unwrap();
        let mut s = nb.session();
        let m = "02:00:00:00:00:99";
        let r = s.run(&job(JobKind::Offer, m, BootClient::None, None));
        assert_eq!(r, (Ok(Outcome::NoLease(NoLease::UnknownDevice)), 2));
        let confirm = JobKind::Confirm {
            addr: ip(9),
            lease_secs: 60,
        };
        let r = s.run(&job(confirm, m, BootClient::None, None));
        assert_eq!(r, (Ok(Outcome::NoLease(NoLease::UnknownDevice)), 1));
        let nb = backend(&fake.url, true);
        nb.prepare().unwrap();
        let (l, calls) =
            lease_of(
                nb.session()
                    .run(&job(JobKind::Offer, m, BootClient::None, None)),
            );
        assert_eq!((l.addr, l.dns.clone(), calls), (ip(5), vec![], 3));
    }

    #[test]
    fn prepare_creates_missing_fields_with_key() {
        let h = |r: &Seen| {
            if r.method == "GET" {
                let mut cf = v(CUSTOM_FIELDS_JSON);
                cf["results"]
                    .as_array_mut()
                    .unwrap()
                    .retain(|f| f["key"] == "pydhcp_mac");
                (200, cf.to_string())
            } else {
                (201, r#"{"id":"x"}"#.to_owned())
            }
        };
        let fake = Fake::new(h);
        assert_eq!(backend(&fake.url, false).prepare(), Ok(3));
        let posts: Vec<Value> = fake
            .seen()
            .iter()
            .filter(|r| r.method == "POST")
            .map(|r| serde_json::from_str(&r.body).unwrap())
            .collect();
        assert_eq!(posts.len(), 2);
        assert_eq!(posts[0]["key"], "pydhcp_expire");
        assert_eq!(posts[0]["label"], "pydhcp_expire");
        assert_eq!(posts[0]["type"], "text");
        assert_eq!(posts[0]["content_types"], json!(["ipam.ipaddress"]));
        assert_eq!(posts[1]["key"], "pydhcp_hostname");

        // A key that exists for other content types only.
        let h = |r: &Seen| {
            if r.method == "GET" {
                (200, r#"{"count":0,"results":[]}"#.to_owned())
            } else {
                (
                    400,
                    r#"{"key":["custom field with this key already exists."]}"#.to_owned(),
                )
            }
        };
        let fake = Fake::new(h);
        let e = backend(&fake.url, false).prepare().unwrap_err();
        assert!(
            matches!(e, BackendError::BadAnswer(ref m) if m.contains("pydhcp_mac")),
            "{e:?}"
        );

        // Not prepared at start: the first job does it.
        let fake = Fake::new(nautobot_like(|_| (201, "")));
        let nb = backend(&fake.url, true);
        let (_, calls) = lease_of(nb.session().run(&job(
            JobKind::Offer,
            "02:00:00:00:00:99",
            BootClient::None,
            None,
        )));
        assert_eq!(calls, 4);
        let (_, calls) = lease_of(nb.session().run(&job(
            JobKind::Offer,
            "02:00:00:00:00:98",
            BootClient::None,
            None,
        )));
        assert_eq!(calls, 2);
    }

    #[test]
    fn errors_are_backend_errors() {
        let fake = Fake::new(|_: &Seen| (403, BAD_TOKEN.to_owned()));
        let nb = backend(&fake.url, true);
        assert_eq!(nb.prepare(), Err(BackendError::Auth(403)));
        let r = nb.session().run(&job(
            JobKind::Offer,
            "02:00:00:00:00:99",
            BootClient::None,
            None,
        ));
        assert_eq!(r, (Err(BackendError::Auth(403)), 1));
        let fake = Fake::new(|_: &Seen| (403, NO_TOKEN.to_owned()));
        let e = backend(&fake.url, true).prepare().unwrap_err();
        assert!(!e.to_string().contains(TOKEN));

        let fake = Fake::new(|r: &Seen| {
            if r.path.starts_with("/api/extras/") {
                (200, CUSTOM_FIELDS_JSON.to_owned())
            } else {
                (502, "<html>Bad Gateway</html>".to_owned())
            }
        });
        let nb = backend(&fake.url, true);
        let r = nb.session().run(&job(
            JobKind::Offer,
            "02:00:00:00:00:99",
            BootClient::None,
            None,
        ));
        assert!(
            matches!(r, (Err(BackendError::Http { status: 502, ref body }), 2) if body.contains("Bad Gateway")),
            "{r:?}"
        );

        let fake = Fake::new(|r: &Seen| {
            if r.path.starts_with("/api/extras/") {
                (200, CUSTOM_FIELDS_JSON.to_owned())
            } else {
                (200, "<html>login</html>".to_owned())
            }
        });
        let r = backend(&fake.url, true).session().run(&job(
            JobKind::Offer,
            "02:00:00:00:00:99",
            BootClient::None,
            None,
        ));
        assert!(matches!(r, (Err(BackendError::BadAnswer(_)), 2)), "{r:?}");

        // Unknown role names are asked for one by one.
        let fake = Fake::new(|r: &Seen| {
            if r.path.contains("role=Nope") {
                (400, PREFIXES_BAD_ROLE.to_owned())
            } else if r.path.starts_with("/api/ipam/prefixes/") {
                (200, PREFIXES.to_owned())
            } else {
                (200, CUSTOM_FIELDS_JSON.to_owned())
            }
        });
        let mut c = conf(&fake.url);
        c.prefix_roles = vec!["Server BMC".into(), "Nope".into()];
        let nb = Nautobot::new(&c, TOKEN.into(), 60).unwrap();
        let mut s = NautobotSession {
            calls: 0,
            ..nb.new_session()
        };
        let p = s.prefix(ip(10)).unwrap().unwrap();
        assert_eq!((p.network.prefix_len(), s.calls), (26, 3));
        assert_eq!(s.prefix(ip(10)).unwrap().unwrap(), p);
        assert_eq!(s.calls, 3);

        // Nothing listens.
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", l.local_addr().unwrap());
        drop(l);
        let r = backend(&url, true).prepare();
        assert!(matches!(r, Err(BackendError::Connect(_))), "{r:?}");
    }

    #[test]
    fn slow_server_times_out() {
        let fake = Fake::new(|_: &Seen| {
            thread::sleep(Duration::from_secs(3));
            (200, "{}".to_owned())
        });
        let mut c = conf(&fake.url);
        c.timeout_secs = 1;
        let nb = Nautobot::new(&c, TOKEN.into(), 60).unwrap();
        let started = Instant::now();
        assert_eq!(nb.prepare(), Err(BackendError::Timeout));
        assert!(started.elapsed() < Duration::from_secs(3));
    }
}
