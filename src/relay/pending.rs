//! Relay mode's part of the state thread: requests waiting for the backend
//! (one job per client at a time, retransmissions absorbed), the leases this
//! daemon handed out (so a renewal costs one call), and the answers.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::Ipv4Addr;
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{Sender, TrySendError};
use log::{debug, info, warn};

use crate::backend::{
    BackendError, Client, Job, JobKind, JobResult, Known, LeaseKind, Outcome, OFFER_HOLD_SECS,
};
use crate::core::boot::BootClient;
use crate::core::mac::MacAddr;
use crate::core::relay4::{self, MsgType, RecvCtx, Request, Step};
use crate::core::Refusal;
use crate::daemon::counters::{bump, fmt_map};
use crate::daemon::warnings::{suppressed, WarnLimiter};
use crate::relay::offered::{Offered, Unclaimed};
use crate::relay::socket::{RelayPacket, RelaySender};

/// Known leases kept at most; beyond it the table starts afresh (it is only a
/// hint that saves API calls).
const MAX_KNOWN: usize = 262_144;

struct Pending {
    req: Request<'static>,
    ctx: RecvCtx,
    kind: JobKind,
    /// When the job was made: expiries count from here unless the result
    /// says when a worker began it.
    since: SystemTime,
    /// An OFFER job counted against this subnet's outstanding offers.
    offer_origin: Option<Ipv4Addr>,
    /// The address that picks the client's subnet.
    origin: Ipv4Addr,
    /// A DISCOVER waiting for one of its subnet's `max_offers` places: no
    /// job yet.
    waits: bool,
    /// The client asked another server (for this address) while its OFFER
    /// was being made: what the OFFER wrote goes back as soon as it is made.
    declined: Option<Option<Ipv4Addr>>,
}

/// How much of the backend one flood can take.
#[derive(Debug, Clone, Copy)]
pub struct RelayLimits {
    /// Jobs queued or running at most.
    pub max_pending_jobs: usize,
    /// Outstanding offers at most per subnet (keyed by the address that
    /// picks it: giaddr or link selection); 0 = no limit. DISCOVERs beyond
    /// it wait, within `max_pending_jobs`, for a place.
    pub max_offers: usize,
}

/// Offers counted per subnet: OFFER jobs running plus addresses held for
/// clients that have not asked for them yet.
#[derive(Default)]
struct Outstanding {
    per_origin: HashMap<Ipv4Addr, usize>,
    /// Offered and not yet asked for, until the hold runs out.
    held: HashMap<MacAddr, (Ipv4Addr, SystemTime)>,
    /// Holds in the order they run out (they all last OFFER_HOLD_SECS).
    order: VecDeque<(SystemTime, MacAddr)>,
}

impl Outstanding {
    fn count(&self, origin: Ipv4Addr) -> usize {
        self.per_origin.get(&origin).copied().unwrap_or(0)
    }

    fn add(&mut self, origin: Ipv4Addr) {
        *self.per_origin.entry(origin).or_insert(0) += 1;
    }

    fn sub(&mut self, origin: Ipv4Addr) {
        if let Some(n) = self.per_origin.get_mut(&origin) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.per_origin.remove(&origin);
            }
        }
    }

    /// The OFFER job ended with an address held for `mac` until `until`.
    fn hold(&mut self, mac: MacAddr, origin: Ipv4Addr, until: SystemTime) {
        if let Some((old, _)) = self.held.insert(mac, (origin, until)) {
            self.sub(old);
        }
        self.order.push_back((until, mac));
    }

    /// The client asked again: its held offer no longer counts.
    fn release(&mut self, mac: MacAddr) {
        if let Some((origin, _)) = self.held.remove(&mac) {
            self.sub(origin);
        }
    }

    fn expire(&mut self, now: SystemTime) {
        while let Some(&(until, mac)) = self.order.front() {
            if until > now {
                break;
            }
            self.order.pop_front();
            // Only if this is still the client's current hold.
            if self.held.get(&mac).is_some_and(|(_, u)| *u == until) {
                self.release(mac);
            }
        }
    }
}

#[derive(Default, Debug)]
pub struct RelayCounters {
    pub requests: u64,
    /// Retransmissions that arrived while the client's job was running.
    pub absorbed: u64,
    pub jobs: u64,
    /// Requests dropped because the job queue was full.
    pub jobs_refused: u64,
    /// DISCOVERs that had to wait: their subnet had max_offers outstanding.
    pub offers_capped: u64,
    pub backend_calls: u64,
    /// Offers not taken whose record was given back (the client asked
    /// another server, or the hold ran out), unless it changed since.
    pub offers_withdrawn: u64,
    /// Withdrawals dropped because the job queue was full (the record
    /// then keeps its address until its lease runs out).
    pub withdrawals_refused: u64,
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
    /// Offers written for the whole lease, until the client takes them.
    offered: Offered,
    /// Withdrawals running, by client: its requests wait for them (one job
    /// per client), so that a withdrawal never lands after a new lease.
    withdrawing: HashMap<MacAddr, u64>,
    next_id: u64,
    limits: RelayLimits,
    outstanding: Outstanding,
    /// New clients' jobs held back by `max_offers`, by subnet, oldest
    /// first: they go on as offers end, so a burst loses no DISCOVER.
    waiting: HashMap<Ipv4Addr, VecDeque<Job>>,
    pub stats: RelayCounters,
    warn: WarnLimiter,
    backend: &'static str,
    /// Whether the backend's last job succeeded; None before the first.
    backend_ok: Option<bool>,
}

impl RelaySide {
    pub fn new(
        settings: relay4::Settings,
        sender: RelaySender,
        (urgent, offers): (Sender<Job>, Sender<Job>),
        limits: RelayLimits,
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
            offered: Offered::default(),
            withdrawing: HashMap::new(),
            next_id: 1,
            limits,
            outstanding: Outstanding::default(),
            waiting: HashMap::new(),
            stats: RelayCounters::default(),
            warn: WarnLimiter::default(),
            backend,
            backend_ok: None,
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
                // The client took another server's offer: ours goes back,
                // unless it is the same address (the other server found
                // our record as the client's own, and confirms it now).
                if r == Refusal::OtherServer && req.msg == MsgType::Request {
                    self.unwait(req.chaddr);
                    if let Some(u) = self.offered.declined(req.chaddr) {
                        if req.requested != Some(u.known.addr) {
                            self.withdraw(u, now);
                        }
                    } else if let Some(p) = self
                        .by_mac
                        .get(&req.chaddr)
                        .and_then(|id| self.pending.get_mut(id))
                        .filter(|p| p.kind == JobKind::Offer)
                    {
                        p.declined = Some(req.requested);
                    }
                }
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
                if self.withdrawing.contains_key(&mac) {
                    // The client retransmits; by then the withdrawal is done.
                    self.stats.absorbed += 1;
                    return;
                }
                if let Some(id) = self.by_mac.get(&mac) {
                    // One job per client: the answer goes to the newest copy.
                    self.stats.absorbed += 1;
                    if let Some(p) = self.pending.get_mut(id) {
                        if p.req.msg == req.msg {
                            p.req = req.into_owned();
                            p.ctx = ctx;
                        }
                    }
                    return;
                }
                if self.known.get(&mac).is_some_and(|(_, until)| *until <= now) {
                    self.known.remove(&mac);
                }
                self.outstanding.expire(now);
                self.outstanding.release(mac);
                self.withdraw_expired(now);
                self.admit_waiting(now);
                // The client asks this server for something: an offer of
                // another address (a newer one, made for a retransmitted
                // DISCOVER) will not be taken and goes back.
                let asks_for = match kind {
                    JobKind::Offer => None,
                    JobKind::Confirm { addr, .. }
                    | JobKind::Release { addr }
                    | JobKind::Decline { addr }
                    | JobKind::Inform { addr }
                    | JobKind::Withdraw { addr } => Some(addr),
                };
                if let Some(addr) = asks_for {
                    if let Some(u) = self.offered.declined(mac) {
                        if u.known.addr != addr {
                            self.withdraw(u, now);
                        }
                    }
                }
                let offer_origin = match kind {
                    // Clients this daemon leased to are never held back.
                    JobKind::Offer if !self.known.contains_key(&mac) => Some(client.origin),
                    _ => None,
                };
                // When full, a job that would run now (a known client's, a
                // REQUEST, a DISCOVER of a subnet with room) takes the
                // place of the newest waiting DISCOVER: a flood of new
                // clients never starves the others.
                if self.pending.len() >= self.limits.max_pending_jobs
                    && (offer_origin.is_some_and(|o| self.must_wait(o))
                        || !self.drop_newest_waiting())
                {
                    self.refuse_job(mac);
                    return;
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
                let origin = client.origin;
                let job = Job {
                    id,
                    kind: kind.clone(),
                    client,
                    known: known.cloned(),
                    now,
                };
                let p = Pending {
                    req: req.into_owned(),
                    ctx,
                    kind,
                    since: now,
                    offer_origin,
                    origin,
                    waits: false,
                    declined: None,
                };
                match offer_origin {
                    Some(o) if self.must_wait(o) => self.wait(job, p, o),
                    _ => self.submit(job, p),
                }
            }
        }
    }

    /// Whether a new client's DISCOVER for subnet `origin` waits: the
    /// subnet has `max_offers` outstanding, or others wait before it.
    fn must_wait(&self, origin: Ipv4Addr) -> bool {
        let max = self.limits.max_offers;
        max > 0 && (self.waiting.contains_key(&origin) || self.outstanding.count(origin) >= max)
    }

    fn wait(&mut self, job: Job, mut p: Pending, origin: Ipv4Addr) {
        self.stats.offers_capped += 1;
        if let Some(n) = self.warn.allow("offers_capped", Instant::now()) {
            warn!(
                "relay: {} offers outstanding for the subnet of {origin}; DISCOVER from {} \
                 waits for one of them{}",
                self.limits.max_offers,
                p.req.chaddr,
                suppressed(n)
            );
        }
        p.waits = true;
        self.by_mac.insert(p.req.chaddr, job.id);
        self.pending.insert(job.id, p);
        self.waiting.entry(origin).or_default().push_back(job);
    }

    /// Queues the job for a worker: new clients' DISCOVERs behind the
    /// others, everything else first.
    fn submit(&mut self, job: Job, mut p: Pending) {
        let (id, mac) = (job.id, p.req.chaddr);
        let queue = match p.offer_origin {
            Some(_) => &self.offers,
            // A client this daemon leased to goes first even when it
            // rediscovers: a flood of new ones never starves it.
            None => &self.urgent,
        };
        match queue.try_send(job) {
            Ok(()) => {
                self.stats.jobs += 1;
                self.by_mac.insert(mac, id);
                if let Some(origin) = p.offer_origin {
                    self.outstanding.add(origin);
                }
                p.waits = false;
                self.pending.insert(id, p);
            }
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.by_mac.remove(&mac);
                self.refuse_job(mac)
            }
        }
    }

    /// Waiting DISCOVERs go on, oldest first, while their subnet has room.
    fn admit_waiting(&mut self, now: SystemTime) {
        if self.waiting.is_empty() {
            return;
        }
        self.outstanding.expire(now);
        let max = self.limits.max_offers;
        let origins: Vec<Ipv4Addr> = self.waiting.keys().copied().collect();
        for origin in origins {
            while max == 0 || self.outstanding.count(origin) < max {
                let Some(mut job) = self.waiting.get_mut(&origin).and_then(VecDeque::pop_front)
                else {
                    break;
                };
                // Gone meanwhile (the client took another server's offer).
                let Some(mut p) = self.pending.remove(&job.id) else {
                    continue;
                };
                // Its expiries count from now, not from when it came.
                job.now = now;
                p.since = now;
                self.submit(job, p);
            }
            if self.waiting.get(&origin).is_some_and(VecDeque::is_empty) {
                self.waiting.remove(&origin);
            }
        }
    }

    /// Drops the newest DISCOVER of the longest waiting line, counted as
    /// refused (its client retransmits). False: none waits.
    fn drop_newest_waiting(&mut self) -> bool {
        let Some(origin) = self
            .waiting
            .iter()
            .max_by_key(|(_, q)| q.len())
            .map(|(o, _)| *o)
        else {
            return false;
        };
        let mut dropped = None;
        if let Some(q) = self.waiting.get_mut(&origin) {
            while let Some(job) = q.pop_back() {
                if let Some(p) = self.pending.remove(&job.id) {
                    dropped = Some(p.req.chaddr);
                    break;
                }
            }
            if q.is_empty() {
                self.waiting.remove(&origin);
            }
        }
        match dropped {
            Some(mac) => {
                self.by_mac.remove(&mac);
                self.refuse_job(mac);
                true
            }
            None => self.drop_newest_waiting(),
        }
    }

    /// A waiting DISCOVER whose client went elsewhere is dropped.
    fn unwait(&mut self, mac: MacAddr) {
        if let Some(&id) = self.by_mac.get(&mac) {
            if self.pending.get(&id).is_some_and(|p| p.waits) {
                self.pending.remove(&id);
                self.by_mac.remove(&mac);
                for q in self.waiting.values_mut() {
                    q.retain(|j| j.id != id);
                }
                self.waiting.retain(|_, q| !q.is_empty());
            }
        }
    }

    /// Once a second: offers whose hold ran out unasked for are withdrawn,
    /// and the places they took go to waiting DISCOVERs.
    pub fn tick(&mut self, now: SystemTime) {
        self.withdraw_expired(now);
        self.admit_waiting(now);
    }

    fn withdraw_expired(&mut self, now: SystemTime) {
        for u in self.offered.expired(now) {
            self.withdraw(u, now);
        }
    }

    /// A RELEASE of an offer's record, so that its address is free again
    /// at once. Nobody waits for its answer.
    fn withdraw(&mut self, u: Unclaimed, now: SystemTime) {
        if self
            .known
            .get(&u.mac)
            .is_some_and(|(k, _)| k.record == u.known.record)
        {
            self.known.remove(&u.mac);
        }
        let id = self.next_id;
        self.next_id += 1;
        let job = Job {
            id,
            kind: JobKind::Withdraw { addr: u.known.addr },
            client: Client {
                mac: u.mac,
                hostname: None,
                origin: u.origin,
                boot: BootClient::None,
            },
            known: Some(u.known),
            now,
        };
        match self.urgent.try_send(job) {
            Ok(()) => {
                self.withdrawing.insert(u.mac, id);
                self.stats.offers_withdrawn += 1;
                debug!("relay: offer to {} withdrawn", u.mac);
            }
            Err(_) => self.stats.withdrawals_refused += 1,
        }
    }

    fn refuse_job(&mut self, mac: MacAddr) {
        self.stats.jobs_refused += 1;
        if let Some(n) = self.warn.allow("jobs_full", Instant::now()) {
            warn!(
                "relay: {} busy ({} jobs pending), request from {mac} dropped{}",
                self.backend,
                self.pending.len(),
                suppressed(n)
            );
        }
    }

    pub fn on_result(&mut self, r: JobResult) {
        self.stats.backend_calls += u64::from(r.calls);
        let Some(p) = self.pending.remove(&r.id) else {
            self.withdrawing.retain(|_, id| *id != r.id);
            return;
        };
        let mac = p.req.chaddr;
        self.by_mac.remove(&mac);
        if let Some(requested) = p.declined {
            self.offer_declined(mac, &p, requested, &r.outcome);
            // Sent all the same, as a slow server's: the client ignores it.
            if let Some(out) = relay4::answer(&p.req, &p.ctx, &self.settings, &p.kind, &r.outcome) {
                self.send(&p.req, out);
            }
            self.admit_waiting(SystemTime::now());
            return;
        }
        // The backend's expiries run from when the worker began the job.
        let since = r.started.unwrap_or(p.since);
        if let Some(origin) = p.offer_origin {
            match &r.outcome {
                Ok(Outcome::Lease(_)) => {
                    let until = since + Duration::from_secs(OFFER_HOLD_SECS);
                    // The job's count passes to the hold: counted until the
                    // client asks for the address or the hold runs out.
                    self.outstanding.hold(mac, origin, until);
                }
                _ => self.outstanding.sub(origin),
            }
        }
        self.backend_ok = Some(r.outcome.is_ok());
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
                if p.kind == JobKind::Offer && l.recorded_until.is_some() {
                    if let (LeaseKind::Dynamic, Some(_)) = (l.kind, &l.record) {
                        let k = Known {
                            addr: l.addr,
                            kind: l.kind,
                            record: l.record.clone(),
                            lease: l.clone(),
                        };
                        let until = since + Duration::from_secs(OFFER_HOLD_SECS);
                        if let Some(u) = self.offered.add(mac, k, p.origin, until) {
                            self.withdraw(u, SystemTime::now());
                        }
                    }
                }
                // An OFFER only holds the address for a moment.
                let secs = match p.kind {
                    JobKind::Offer => OFFER_HOLD_SECS,
                    _ => u64::from(l.lease_secs),
                };
                let until = since + Duration::from_secs(secs);
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
        // A place the job took may be free now.
        self.admit_waiting(SystemTime::now());
    }

    /// The OFFER job of a client that meanwhile took another server's
    /// offer ended: nothing is held for it, and a record it wrote for the
    /// whole lease goes back unless the client asked the other server for
    /// that very address.
    fn offer_declined(
        &mut self,
        mac: MacAddr,
        p: &Pending,
        requested: Option<Ipv4Addr>,
        outcome: &Result<Outcome, BackendError>,
    ) {
        if let Some(origin) = p.offer_origin {
            self.outstanding.sub(origin);
        }
        self.backend_ok = Some(outcome.is_ok());
        match outcome {
            Err(e) => bump(&mut self.stats.backend_errors, e.name()),
            Ok(Outcome::Lease(l))
                if l.kind == LeaseKind::Dynamic
                    && l.record.is_some()
                    && l.recorded_until.is_some()
                    && requested != Some(l.addr) =>
            {
                let known = Known {
                    addr: l.addr,
                    kind: l.kind,
                    record: l.record.clone(),
                    lease: l.clone(),
                };
                let u = Unclaimed {
                    mac,
                    known,
                    origin: p.origin,
                };
                self.withdraw(u, SystemTime::now());
            }
            Ok(_) => {}
        }
        debug!("relay: {mac} took another server's offer before ours was made");
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

    /// Leases in flight, the backend's name and whether its last job succeeded.
    pub fn status(&self) -> (usize, &'static str, Option<bool>) {
        (self.pending.len(), self.backend, self.backend_ok)
    }

    pub fn metrics(&self, t: &mut crate::daemon::metrics::Text) {
        use crate::daemon::metrics::labelled;
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
        t.counter(
            "relay_offers_capped_total",
            "DISCOVERs that waited because their subnet had max_offers outstanding.",
            s.offers_capped,
        );
        t.counter(
            "relay_offers_withdrawn_total",
            "Offers not taken whose record was given back (unless changed since).",
            s.offers_withdrawn,
        );
        t.counter(
            "relay_withdrawals_refused_total",
            "Offer withdrawals dropped because the job queue was full.",
            s.withdrawals_refused,
        );
        t.gauge(
            "relay_outstanding_offers",
            "Offers outstanding (jobs running and addresses held), all subnets.",
            self.outstanding.per_origin.values().sum::<usize>() as u64,
        );
        t.gauge(
            "relay_waiting_offers",
            "DISCOVERs waiting for a place (max_offers), all subnets.",
            self.waiting.values().map(VecDeque::len).sum::<usize>() as u64,
        );
        t.gauge(
            "relay_pending_jobs",
            "Backend jobs running or queued, and DISCOVERs waiting.",
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
            "relay: requests {} absorbed {} jobs {} jobs_refused {} offers_capped {} offers_withdrawn {} pending {} waiting {} known_leases {} backend_calls {} send_errors {}",
            s.requests,
            s.absorbed,
            s.jobs,
            s.jobs_refused,
            s.offers_capped,
            s.offers_withdrawn,
            self.pending.len(),
            self.waiting.values().map(VecDeque::len).sum::<usize>(),
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
                crate::daemon::logging::utc_timestamp(*until)
            );
        }
    }
}

#[cfg(test)]
mod tests;
