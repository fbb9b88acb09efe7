//! Lease stores for relay mode. The state thread hands a [`Job`] to the worker
//! pool; a worker runs it against a [`Backend`] (blocking HTTP) and sends the
//! [`JobResult`] back. Ownership decisions are made by the pure
//! [`pool`] functions from what the backend read, never from a cache.

use std::net::Ipv4Addr;
use std::time::SystemTime;

use ipnet::Ipv4Net;
use serde_json::{Map, Value};

use crate::core::mac::MacAddr;

mod claims;
mod context;
pub mod nautobot;
pub mod netbox;
pub mod pool;
pub(crate) mod rest;
pub(crate) mod side_by_side;
pub mod workers;

/// How long an OFFER holds an address before it may go to someone else.
pub const OFFER_HOLD_SECS: u64 = 10;
/// How long a DECLINEd address is kept out of the pool.
pub const DECLINE_HOLD_SECS: u64 = 3600;

/// The custom fields of an IP address the leases are kept in.
pub const CUSTOM_FIELDS: [&str; 3] = ["pydhcp_mac", "pydhcp_expire", "pydhcp_hostname"];

/// The custom fields that claim or refresh a lease, with the MAC and the
/// expiry as the backend writes them. The host name goes when the client
/// sent one or the record changes hands (`takeover`: the last holder's
/// must not stay).
pub(crate) fn lease_custom_fields(
    mac: String,
    expire: String,
    hostname: Option<&str>,
    takeover: bool,
) -> Map<String, Value> {
    let mut cf = Map::new();
    cf.insert("pydhcp_mac".into(), Value::from(mac));
    cf.insert("pydhcp_expire".into(), Value::from(expire));
    if hostname.is_some() || takeover {
        cf.insert(
            "pydhcp_hostname".into(),
            hostname.map_or(Value::Null, Value::from),
        );
    }
    cf
}

pub use crate::core::boot::{Boot, BootClient};

/// What a job needs to know about the client and where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    pub mac: MacAddr,
    /// Option 12, if sent (sanitised).
    pub hostname: Option<String>,
    /// The address that picks the subnet: link selection, giaddr, requested
    /// address / ciaddr, or the receiving interface's address.
    pub origin: Ipv4Addr,
    pub boot: BootClient,
}

/// What the daemon remembers of a lease it handed out, so that a renewal costs
/// one call. It is a hint: the backend still checks ownership with its write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Known {
    pub addr: Ipv4Addr,
    pub kind: LeaseKind,
    /// Backend id of the record (dynamic leases).
    pub record: Option<String>,
    pub lease: Lease,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobKind {
    /// DISCOVER: find or allocate an address and hold it for OFFER_HOLD_SECS.
    Offer,
    /// REQUEST for `addr` (SELECTING, INIT-REBOOT, RENEWING, REBINDING): confirm
    /// it belongs to the client and extend it to `lease_secs`.
    Confirm { addr: Ipv4Addr, lease_secs: u32 },
    /// RELEASE of `addr`: expire it now.
    Release { addr: Ipv4Addr },
    /// DECLINE of `addr`: keep it out of the pool for a while.
    Decline { addr: Ipv4Addr },
    /// An OFFER of `addr` the client did not take (it asked another server,
    /// or let the hold run out): expire the record the OFFER wrote, unless
    /// it changed since (another server confirmed it for the client).
    Withdraw { addr: Ipv4Addr },
    /// INFORM from `addr`: network parameters only.
    Inform { addr: Ipv4Addr },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    /// Matches the result to the pending request.
    pub id: u64,
    pub kind: JobKind,
    pub client: Client,
    pub known: Option<Known>,
    /// Wall-clock time expiries are computed from: when the job was made,
    /// and again when a worker begins it (a job can wait in the queue).
    pub now: SystemTime,
}

impl Job {
    /// A REQUEST for a lease the daemon knows whose record what the daemon
    /// last wrote already covers (the REQUEST that follows its OFFER):
    /// nothing to write.
    pub fn covered(&self) -> bool {
        let JobKind::Confirm { addr, lease_secs } = self.kind else {
            return false;
        };
        let until = self.now + std::time::Duration::from_secs(u64::from(lease_secs));
        self.known_about(addr)
            .and_then(|k| k.lease.recorded_until)
            .is_some_and(|u| u >= until)
    }

    /// A REQUEST renewing a lease the daemon handed out: its client has
    /// time, so it may wait longer for others to share a call with.
    pub fn is_renewal(&self) -> bool {
        matches!(self.kind, JobKind::Confirm { addr, .. } if self.known_about(addr).is_some())
            && !self.covered()
    }

    /// What the daemon knows of the client's lease, if it is about `addr`.
    pub(crate) fn known_about(&self, addr: Ipv4Addr) -> Option<&Known> {
        self.known.as_ref().filter(|k| k.addr == addr)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseKind {
    /// Assigned to the client's device interface in the IPAM: never modified.
    Static,
    /// Another type of address whose pydhcp_mac is the client's: never modified.
    Permanent,
    /// A `dhcp` address the daemon owns: created, renewed, reused.
    Dynamic,
}

/// Everything an OFFER/ACK needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub addr: Ipv4Addr,
    pub network: Ipv4Net,
    pub gateway: Option<Ipv4Addr>,
    /// From the device's config context; empty = use `[relay] nameservers`.
    pub dns: Vec<Ipv4Addr>,
    pub boot: Option<Boot>,
    pub kind: LeaseKind,
    pub record: Option<String>,
    /// Lease time to hand out, seconds.
    pub lease_secs: u32,
    /// The `pydhcp_expire` this answer wrote into the record; None when it
    /// wrote none. A REQUEST that follows an OFFER whose write already
    /// covers the lease costs no call.
    pub recorded_until: Option<SystemTime>,
}

/// Why there is no lease. `NotYours` is the one that may become a NAK.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoLease {
    /// No served prefix (role in prefix_roles) contains the origin.
    NoPrefix,
    /// The MAC is on no device and unknown devices are not allowed.
    UnknownDevice,
    /// Every address of the pool is taken and none has expired.
    PoolExhausted,
    /// The requested address is not (or no longer) the client's.
    NotYours,
}

impl NoLease {
    pub fn name(&self) -> &'static str {
        match self {
            NoLease::NoPrefix => "no_prefix",
            NoLease::UnknownDevice => "unknown_device",
            NoLease::PoolExhausted => "pool_exhausted",
            NoLease::NotYours => "not_yours",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Lease(Lease),
    NoLease(NoLease),
    /// RELEASE/DECLINE recorded.
    Done,
}

/// A failure to reach or understand the backend. Never turned into a NAK.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackendError {
    #[error("timed out")]
    Timeout,
    #[error("cannot connect: {0}")]
    Connect(String),
    #[error("HTTP {status}: {body}")]
    Http { status: u16, body: String },
    #[error("authentication refused (HTTP {0}); check the token")]
    Auth(u16),
    #[error("unexpected answer: {0}")]
    BadAnswer(String),
}

impl BackendError {
    /// Stable name for counters and rate-limited logs.
    pub fn name(&self) -> &'static str {
        match self {
            BackendError::Timeout => "timeout",
            BackendError::Connect(_) => "connect",
            BackendError::Http { .. } => "http",
            BackendError::Auth(_) => "auth",
            BackendError::BadAnswer(_) => "bad_answer",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobResult {
    pub id: u64,
    pub outcome: Result<Outcome, BackendError>,
    /// API calls this job made.
    pub calls: u32,
    /// When a worker began the job: the holds and leases it wrote run from
    /// here. None: the job's own `now`.
    pub started: Option<SystemTime>,
}

/// A lease store. Shared by the worker threads; each worker opens its own
/// [`Session`] (its own HTTP agent and connections).
pub trait Backend: Send + Sync {
    /// Start-up work, e.g. creating missing custom fields; returns the API
    /// calls made. A failure is logged; the first job tries again.
    fn prepare(&self) -> Result<u32, BackendError>;

    /// A session for one worker thread.
    fn session(&self) -> Box<dyn Session>;

    /// Short name for logs ("nautobot", "netbox").
    fn name(&self) -> &'static str;

    /// Whether [`Session::run_batch`] combines the jobs of a batch. When it
    /// does not, each worker takes one job at a time, so that the jobs of a
    /// burst run side by side.
    fn combines(&self) -> bool {
        false
    }
}

/// One worker's connection to the backend. Blocks.
pub trait Session: Send {
    /// Runs one job; returns the outcome and the number of API calls made.
    fn run(&mut self, job: &Job) -> (Result<Outcome, BackendError>, u32);

    /// Runs jobs that arrived together, handing each outcome to `done` as
    /// soon as it is known: its index in `jobs`, the outcome, and the API
    /// calls made since the previous one. A backend that can combine reads
    /// and writes of several clients overrides it; by default each job runs
    /// alone.
    fn run_batch(
        &mut self,
        jobs: &[Job],
        done: &mut dyn FnMut(usize, Result<Outcome, BackendError>, u32),
    ) {
        for (i, j) in jobs.iter().enumerate() {
            let (o, c) = self.run(j);
            done(i, o, c);
        }
    }

    /// [`Session::run_batch`] with every outcome collected, in the order of
    /// `jobs`, and the API calls of the whole batch. A job the session left
    /// unanswered gets a [`BackendError::BadAnswer`].
    fn run_all(&mut self, jobs: &[Job]) -> (Vec<Result<Outcome, BackendError>>, u32) {
        let mut out: Vec<Option<Result<Outcome, BackendError>>> = vec![None; jobs.len()];
        let mut calls = 0;
        self.run_batch(jobs, &mut |i, o, c| {
            if let Some(slot) = out.get_mut(i) {
                *slot = Some(o);
            }
            calls += c;
        });
        let out = out
            .into_iter()
            .map(|o| o.unwrap_or_else(|| Err(BackendError::BadAnswer("job not answered".into()))))
            .collect();
        (out, calls)
    }
}

/// Helpers of the backends' tests.
#[cfg(test)]
pub(crate) mod test_util {
    use std::net::Ipv4Addr;
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    use serde_json::{json, Value};

    use crate::core::mac::MacAddr;

    /// 192.0.2.`n`, the test prefix of both data sets.
    pub(crate) fn ip(n: u8) -> Ipv4Addr {
        Ipv4Addr::new(192, 0, 2, n)
    }

    pub(crate) fn mac(s: &str) -> MacAddr {
        s.parse().unwrap()
    }

    pub(crate) fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    /// Answers of no use to any reader; none may make one panic.
    pub(crate) fn garbage() -> Vec<Value> {
        vec![
            json!(null),
            json!([]),
            json!("results"),
            json!({"results": null}),
            json!({"results": [1, "x", null, [], {"prefix": 5}, {"id": "a", "prefix": "2001:db8::/32"}]}),
        ]
    }
}
