//! Relay mode's part of the state thread: requests waiting for the backend
//! (one job per client at a time, retransmissions absorbed), the leases this
//! daemon handed out (so a renewal costs one call), and the answers.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{Sender, TrySendError};
use log::{debug, info, warn};

use super::{bump, fmt_map, suppressed, WarnLimiter};
use crate::backend::{Job, JobKind, JobResult, Known, Outcome, OFFER_HOLD_SECS};
use crate::mac::MacAddr;
use crate::proto::relay4::{self, RecvCtx, Request, Step};
use crate::relay::{RelayPacket, RelaySender};

/// Known leases kept at most; beyond it the table starts afresh (it is only a
/// hint that saves API calls).
const MAX_KNOWN: usize = 262_144;

struct Pending {
    req: Request,
    ctx: RecvCtx,
    kind: JobKind,
    /// When the job was made: expiries count from here, as the backend's do.
    since: SystemTime,
}

#[derive(Default, Debug)]
pub struct RelayCounters {
    pub requests: u64,
    /// Retransmissions that arrived while the client's job was running.
    pub absorbed: u64,
    pub jobs: u64,
    /// Requests dropped because the job queue was full.
    pub jobs_refused: u64,
    pub backend_calls: u64,
    pub backend_errors: BTreeMap<&'static str, u64>,
    pub no_lease: BTreeMap<&'static str, u64>,
    pub ignored: BTreeMap<&'static str, u64>,
    pub answers: BTreeMap<&'static str, u64>,
    pub send_errors: u64,
}

pub struct RelaySide {
    settings: relay4::Settings,
    sender: RelaySender,
    /// REQUEST/RELEASE/DECLINE/INFORM jobs, served before `offers`.
    urgent: Sender<Job>,
    offers: Sender<Job>,
    pending: HashMap<u64, Pending>,
    by_mac: HashMap<MacAddr, u64>,
    /// With the time the record's hold or lease runs out: after it the
    /// record may belong to someone else, so the hint is dropped.
    known: HashMap<MacAddr, (Known, SystemTime)>,
    next_id: u64,
    pub stats: RelayCounters,
    warn: WarnLimiter,
    backend: &'static str,
}

impl RelaySide {
    pub fn new(
        settings: relay4::Settings,
        sender: RelaySender,
        (urgent, offers): (Sender<Job>, Sender<Job>),
        backend: &'static str,
    ) -> RelaySide {
        RelaySide {
            settings,
            sender,
            urgent,
            offers,
            pending: HashMap::new(),
            by_mac: HashMap::new(),
            known: HashMap::new(),
            next_id: 1,
            stats: RelayCounters::default(),
            warn: WarnLimiter::default(),
            backend,
        }
    }

    pub fn on_packet(&mut self, p: RelayPacket, now: SystemTime) {
        self.stats.requests += 1;
        let req = match relay4::parse(&p.data) {
            Ok(r) => r,
            Err(r) => {
                bump(&mut self.stats.ignored, r.name());
                debug!("relay: datagram from {} refused: {}", p.src, r.name());
                return;
            }
        };
        let ctx = RecvCtx {
            src: p.src,
            local: p.local,
            ifindex: p.ifindex,
        };
        match relay4::decide(&req, &ctx, &self.settings) {
            Step::Ignore(r) => {
                bump(&mut self.stats.ignored, r.name());
                debug!(
                    "relay: {} {} from {} ignored: {}",
                    req.chaddr,
                    req.msg.name(),
                    p.src,
                    r.name()
                );
            }
            Step::Reply(out) => self.send(&req, out),
            Step::Ask(kind, client) => {
                let mac = req.chaddr;
                if let Some(id) = self.by_mac.get(&mac) {
                    // One job per client: the answer goes to the newest copy.
                    self.stats.absorbed += 1;
                    if let Some(p) = self.pending.get_mut(id) {
                        if p.req.msg == req.msg {
                            p.req = req;
                            p.ctx = ctx;
                        }
                    }
                    return;
                }
                if self.known.get(&mac).is_some_and(|(_, until)| *until <= now) {
                    self.known.remove(&mac);
                }
                let known = self
                    .known
                    .get(&mac)
                    .map(|(k, _)| k)
                    .filter(|k| match &kind {
                        JobKind::Confirm { addr, .. } | JobKind::Release { addr } => {
                            k.addr == *addr
                        }
                        _ => false,
                    });
                let id = self.next_id;
                self.next_id += 1;
                let job = Job {
                    id,
                    kind: kind.clone(),
                    client,
                    known: known.cloned(),
                    now,
                };
                let queue = match kind {
                    JobKind::Offer => &self.offers,
                    _ => &self.urgent,
                };
                match queue.try_send(job) {
                    Ok(()) => {
                        self.stats.jobs += 1;
                        self.by_mac.insert(mac, id);
                        self.pending.insert(
                            id,
                            Pending {
                                req,
                                ctx,
                                kind,
                                since: now,
                            },
                        );
                    }
                    Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                        self.stats.jobs_refused += 1;
                        if let Some(n) = self.warn.allow("jobs_full", Instant::now()) {
                            warn!(
                                "relay: {} busy, request from {mac} dropped{}",
                                self.backend,
                                suppressed(n)
                            );
                        }
                    }
                }
            }
        }
    }

    pub fn on_result(&mut self, r: JobResult) {
        self.stats.backend_calls += u64::from(r.calls);
        let Some(p) = self.pending.remove(&r.id) else {
            return;
        };
        let mac = p.req.chaddr;
        self.by_mac.remove(&mac);
        match &r.outcome {
            Err(e) => {
                bump(&mut self.stats.backend_errors, e.name());
                // One line per kind and interval, however many clients wait.
                if let Some(n) = self.warn.allow(e.name(), Instant::now()) {
                    warn!(
                        "relay: {} failed for {mac} {}: {e}; no answer sent{}",
                        self.backend,
                        p.req.msg.name(),
                        suppressed(n)
                    );
                }
            }
            Ok(Outcome::Lease(l)) => {
                if self.known.len() >= MAX_KNOWN {
                    self.known.clear();
                }
                // An OFFER only holds the address for a moment.
                let secs = match p.kind {
                    JobKind::Offer => OFFER_HOLD_SECS,
                    _ => u64::from(l.lease_secs),
                };
                let until = p.since + Duration::from_secs(secs);
                self.known.insert(
                    mac,
                    (
                        Known {
                            addr: l.addr,
                            kind: l.kind,
                            record: l.record.clone(),
                            lease: l.clone(),
                        },
                        until,
                    ),
                );
            }
            Ok(Outcome::NoLease(why)) => {
                bump(&mut self.stats.no_lease, why.name());
                self.known.remove(&mac);
                info!(
                    "relay: {mac} {}: no lease ({})",
                    p.req.msg.name(),
                    why.name()
                );
            }
            Ok(Outcome::Done) => {
                if matches!(p.kind, JobKind::Release { .. } | JobKind::Decline { .. }) {
                    self.known.remove(&mac);
                }
                match &p.kind {
                    JobKind::Release { addr } => info!("relay: {mac} DHCPRELEASE {addr}"),
                    JobKind::Decline { addr } => warn!(
                        "relay: {mac} DHCPDECLINE {addr}: the client reports the address in use"
                    ),
                    _ => {}
                }
            }
        }
        if let Some(out) = relay4::answer(&p.req, &p.ctx, &self.settings, &p.kind, &r.outcome) {
            self.send(&p.req, out);
        }
    }

    fn send(&mut self, req: &Request, out: relay4::Out) {
        match self
            .sender
            .send(&out.payload, out.dest, out.source, out.broadcast_ifindex)
        {
            Ok(()) => {
                bump(&mut self.stats.answers, out.kind.name());
                info!(
                    "relay: {} {} -> {} {} to {}",
                    req.chaddr,
                    req.msg.name(),
                    out.kind.name(),
                    out.addr
                        .map(|a| a.to_string())
                        .unwrap_or_else(|| "-".into()),
                    out.dest
                );
            }
            Err(e) => {
                self.stats.send_errors += 1;
                if let Some(n) = self.warn.allow("relay_send", Instant::now()) {
                    warn!(
                        "relay: cannot send {} to {}: {e}{}",
                        out.kind.name(),
                        out.dest,
                        suppressed(n)
                    );
                }
            }
        }
    }

    pub fn metrics(&self, t: &mut crate::metrics::Text) {
        use crate::metrics::labelled;
        let s = &self.stats;
        t.counter("relay_requests_total", "Relay-mode requests.", s.requests);
        t.counter(
            "relay_absorbed_total",
            "Retransmissions absorbed while the client's job ran.",
            s.absorbed,
        );
        t.counter("relay_jobs_total", "Backend jobs started.", s.jobs);
        t.counter(
            "relay_jobs_refused_total",
            "Requests dropped because the job queue was full.",
            s.jobs_refused,
        );
        t.gauge(
            "relay_pending_jobs",
            "Backend jobs running or queued.",
            self.pending.len() as u64,
        );
        t.gauge(
            "relay_known_leases",
            "Leases this daemon remembers.",
            self.known.len() as u64,
        );
        t.counter("backend_calls_total", "Backend API calls.", s.backend_calls);
        t.family(
            "backend_errors_total",
            "counter",
            "Backend failures, by kind.",
            &labelled("kind", &s.backend_errors),
        );
        t.family(
            "relay_answers_total",
            "counter",
            "Relay-mode answers, by message type.",
            &labelled("type", &s.answers),
        );
        t.family(
            "relay_no_lease_total",
            "counter",
            "Requests the backend had no lease for, by reason.",
            &labelled("reason", &s.no_lease),
        );
        t.family(
            "relay_ignored_total",
            "counter",
            "Relay-mode requests ignored, by reason.",
            &labelled("reason", &s.ignored),
        );
    }

    pub fn dump(&self) {
        let s = &self.stats;
        info!(
            "relay: requests {} absorbed {} jobs {} jobs_refused {} pending {} known_leases {} backend_calls {} send_errors {}",
            s.requests,
            s.absorbed,
            s.jobs,
            s.jobs_refused,
            self.pending.len(),
            self.known.len(),
            s.backend_calls,
            s.send_errors
        );
        info!("relay answers: {}", fmt_map(&s.answers));
        info!("relay no lease: {}", fmt_map(&s.no_lease));
        info!("relay ignored: {}", fmt_map(&s.ignored));
        info!("relay backend errors: {}", fmt_map(&s.backend_errors));
        let mut leases: Vec<(&MacAddr, &(Known, SystemTime))> = self.known.iter().collect();
        leases.sort_by_key(|(_, (k, _))| k.addr);
        for (mac, (k, until)) in leases {
            info!(
                "relay lease: {} {mac} {:?} until {}",
                k.addr,
                k.kind,
                crate::logging::utc_timestamp(*until)
            );
        }
    }
}
