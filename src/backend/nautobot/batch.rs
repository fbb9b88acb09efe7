//! Jobs that arrived together, run together: the renewals, releases and
//! declines of leases the daemon knows in one bulk PATCH; the OFFERs of one prefix with one
//! GraphQL read (every client's device and the prefix's records) and one
//! bulk create of the addresses they get. What a bulk call cannot settle
//! (a record gone, a create race lost, a takeover) runs alone, as it would
//! without batching; every other job of the batch waits at most one more
//! round trip for it.

use std::net::Ipv4Addr;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use serde::Deserialize;
use serde_json::Value;

use super::graphql::{
    graphql_ids_query, graphql_many_query, parse_graphql_many, parse_graphql_records, GqlError,
    ManySnapshot,
};
use super::leases::{
    decline_patch, dns_name, lease_fields, lease_patch, make_lease, offer_hold, release_patch,
    untouched, withdrawal,
};
use super::{api, create_body, NautobotSession, PrefixInfo};
use crate::backend::pool::{self, Choice, Pool};
use crate::backend::rest::Request;
use crate::backend::side_by_side::run_side_by_side;
use crate::backend::{BackendError, Job, JobKind, Known, LeaseKind, NoLease, Outcome};
use crate::core::mac::MacAddr;

type JobOutcome = Result<Outcome, BackendError>;
type Done<'a> = dyn FnMut(usize, JobOutcome, u32) + 'a;

/// The outcomes of a batch so far.
struct Batch {
    out: Vec<Option<JobOutcome>>,
    /// Handed over already.
    sent: Vec<bool>,
    /// The session's calls when the last outcome was handed over.
    calls_sent: u32,
}

impl Batch {
    /// Not decided yet (nor handed over).
    fn open(&self, i: usize) -> bool {
        self.out[i].is_none() && !self.sent[i]
    }

    /// The backend did not answer in time or cannot be reached: the jobs
    /// still to run would wait for the same, one after another. They fail
    /// now with that error (a failure is never a NAK: the clients retry).
    fn fail_fast(&mut self) {
        let down = self.out.iter().flatten().find_map(|o| match o {
            Err(e @ (BackendError::Timeout | BackendError::Connect(_))) => Some(e.clone()),
            _ => None,
        });
        if let Some(e) = down {
            for (o, sent) in self.out.iter_mut().zip(&self.sent) {
                if o.is_none() && !sent {
                    *o = Some(Err(e.clone()));
                }
            }
        }
    }
}

/// Bulk create rounds of one batch: the first, and one without the
/// addresses another server took meanwhile.
const CREATE_ROUNDS: usize = 2;
/// Addresses one OFFER of a batch may find claimed before it runs alone.
const CHOICE_ROUNDS: usize = 8;
/// Fresh reads after bulk creates refused as a whole, before each job
/// runs alone. Each refusal means another server's records went in first,
/// and a read shows them: records it made for these very clients answer
/// them at once.
const REREADS: usize = 3;

impl NautobotSession {
    /// Runs the jobs of a batch, handing each outcome to `done` as soon as
    /// it is known (with the calls made since the previous hand-over):
    /// what costs nothing first, then the bulk writes of known leases, then
    /// the other urgent jobs side by side, then the OFFERs. When the
    /// backend cannot be reached or does not answer in time, the jobs not
    /// yet run fail at once with the same error rather than wait for it
    /// one after another.
    pub(super) fn run_together(&mut self, jobs: &[Job], done: &mut Done<'_>) {
        self.began = std::time::Instant::now();
        let mut b = Batch {
            out: vec![None; jobs.len()],
            sent: vec![false; jobs.len()],
            calls_sent: 0,
        };
        if jobs.len() < 2 {
            for (i, j) in jobs.iter().enumerate() {
                b.out[i] = Some(self.run_job(j));
            }
            return self.hand_over(&mut b, done);
        }
        if !self.shared.fields_ready.load(Ordering::Relaxed) {
            // One check for the batch; then each job as usual.
            if let Err(e) = self.ensure_fields() {
                for (o, j) in b.out.iter_mut().zip(jobs) {
                    if !matches!(j.kind, JobKind::Inform { .. }) {
                        *o = Some(Err(e.clone()));
                    }
                }
            }
        }
        // REQUESTs for what an OFFER just wrote: nothing to write.
        for (o, j) in b.out.iter_mut().zip(jobs) {
            if o.is_none() {
                if let Some((known, id, lease_secs)) = renewal(j) {
                    if j.covered() {
                        *o = Some(Ok(Outcome::Lease(renewed(known, id, lease_secs, None))));
                    }
                }
            }
        }
        self.hand_over(&mut b, done);
        let writes: Vec<usize> = (0..jobs.len())
            .filter(|&i| b.open(i) && known_write(&jobs[i]).is_some())
            .collect();
        if writes.len() > 1 {
            self.write_known_together(jobs, &writes, &mut b.out);
            b.fail_fast();
            self.hand_over(&mut b, done);
        }
        let withdrawals: Vec<usize> = (0..jobs.len())
            .filter(|&i| b.open(i) && matches!(jobs[i].kind, JobKind::Withdraw { .. }))
            .collect();
        if withdrawals.len() > 1 && self.shared.graphql.load(Ordering::Relaxed) {
            self.withdraw_together(jobs, &withdrawals, &mut b.out);
            b.fail_fast();
            self.hand_over(&mut b, done);
        }
        let urgent: Vec<usize> = (0..jobs.len())
            .filter(|&i| b.open(i) && jobs[i].kind != JobKind::Offer)
            .collect();
        self.side_by_side(jobs, &urgent, &mut b.out);
        b.fail_fast();
        self.hand_over(&mut b, done);
        let offers: Vec<usize> = (0..jobs.len())
            .filter(|&i| b.open(i) && jobs[i].kind == JobKind::Offer)
            .collect();
        if offers.len() > 1 && self.shared.graphql.load(Ordering::Relaxed) {
            self.offer_together(jobs, &offers, &mut b.out);
            b.fail_fast();
            self.hand_over(&mut b, done);
        }
        let rest: Vec<usize> = (0..jobs.len()).filter(|&i| b.open(i)).collect();
        self.side_by_side(jobs, &rest, &mut b.out);
        self.hand_over(&mut b, done);
    }

    /// The whole seconds the batch has run: an OFFER written late in a
    /// batch holds its address from then, not from the batch's start.
    fn elapsed(&self) -> Duration {
        Duration::from_secs(self.began.elapsed().as_secs())
    }

    /// Hands the outcomes decided so far to `done`, in order; the calls
    /// made since the last hand-over go with the first of them.
    fn hand_over(&self, b: &mut Batch, done: &mut Done<'_>) {
        for i in 0..b.out.len() {
            if b.sent[i] {
                continue;
            }
            if let Some(o) = b.out[i].take() {
                b.sent[i] = true;
                let now = self.client.calls();
                done(i, o, now - b.calls_sent);
                b.calls_sent = now;
            }
        }
    }

    /// Jobs that share no call, each on its own connection, a few at a
    /// time: one slow job does not hold up the others of the batch.
    fn side_by_side(&mut self, jobs: &[Job], which: &[usize], out: &mut [Option<JobOutcome>]) {
        if which.len() == 1 {
            let i = which[0];
            out[i] = Some(self.run_job(&jobs[i]));
            return;
        }
        let mut results = Vec::new();
        run_side_by_side(
            jobs,
            which,
            || self.sibling(),
            |sub, _, job| {
                let o = sub.run_job(job);
                (o, sub.client.calls())
            },
            &mut |i, o, calls| results.push((i, o, calls)),
        );
        for (i, o, calls) in results {
            out[i] = Some(o);
            self.client.add_calls(calls);
        }
    }

    /// Offers not taken, given back together: one read of their records,
    /// one PATCH of those still as their OFFERs left them. A job whose
    /// calls are refused is left to run alone.
    fn withdraw_together(&mut self, jobs: &[Job], which: &[usize], out: &mut [Option<JobOutcome>]) {
        let items: Vec<(usize, &str, SystemTime)> = which
            .iter()
            .filter_map(|&i| {
                let JobKind::Withdraw { addr } = jobs[i].kind else {
                    return None;
                };
                match withdrawal(&jobs[i], addr) {
                    Some((id, wrote)) => Some((i, id, wrote)),
                    None => {
                        out[i] = Some(Ok(Outcome::Done));
                        None
                    }
                }
            })
            .collect();
        if items.is_empty() {
            return;
        }
        let ids: Vec<&str> = items.iter().map(|&(_, id, _)| id).collect();
        let query = graphql_ids_query(&ids);
        let read = self
            .client
            .send(Request::post("/api/graphql/", &serde_json::json!({ "query": query })).bulk());
        let records = match read.map(|r| parse_graphql_records(r.status, &r.body)) {
            Ok(Ok(records)) => records,
            Ok(Err(_)) => return,
            Err(e) => {
                for &(i, _, _) in &items {
                    out[i] = Some(Err(e.clone()));
                }
                return;
            }
        };
        let body: Vec<Value> = items
            .iter()
            .filter(|&&(i, id, wrote)| {
                let untouched = records
                    .iter()
                    .any(|r| r.id == id && untouched(r, jobs[i].client.mac, wrote));
                if !untouched {
                    log::debug!(
                        "nautobot: offer to {} not withdrawn: its record changed",
                        jobs[i].client.mac
                    );
                }
                untouched
            })
            .map(|&(i, id, _)| {
                let mut b = release_patch(jobs[i].now);
                b["id"] = Value::from(id);
                b
            })
            .collect();
        if !body.is_empty() {
            match self
                .client
                .send(Request::patch("/api/ipam/ip-addresses/", &body).bulk())
            {
                Ok(r) if r.status == 200 => {}
                Ok(_) => return,
                Err(e) => {
                    for &(i, _, _) in &items {
                        out[i] = Some(Err(e.clone()));
                    }
                    return;
                }
            }
        }
        for &(i, _, _) in &items {
            out[i] = Some(Ok(Outcome::Done));
        }
    }

    // ---- writes by record id ----

    /// One PATCH of every known dynamic lease of the batch that is renewed,
    /// released or declined. A record the answer lacks (gone: Nautobot
    /// leaves unknown ids out) or shows changed is left to the job's own
    /// path, which reads afresh.
    fn write_known_together(
        &mut self,
        jobs: &[Job],
        which: &[usize],
        out: &mut [Option<JobOutcome>],
    ) {
        let body: Vec<Value> = which
            .iter()
            .filter_map(|&i| {
                let j = &jobs[i];
                let (w, id) = known_write(j)?;
                let mut b = match w {
                    KnownWrite::Renew { lease_secs, .. } => lease_patch(
                        j.client.mac,
                        j.now + Duration::from_secs(u64::from(lease_secs)),
                        j.client.hostname.as_deref(),
                        false,
                    ),
                    KnownWrite::Release(_) => release_patch(j.now),
                    KnownWrite::Decline(_) => decline_patch(j.now),
                };
                b["id"] = Value::from(id);
                Some(b)
            })
            .collect();
        let r = match self
            .client
            .send(Request::patch("/api/ipam/ip-addresses/", &body).bulk())
        {
            Ok(r) => r,
            Err(e) => {
                for &i in which {
                    out[i] = Some(Err(e.clone()));
                }
                return;
            }
        };
        if r.status != 200 {
            log::debug!(
                "nautobot: bulk update refused (HTTP {}); one by one",
                r.status
            );
            return;
        }
        let Ok(list) = r.json::<Vec<Value>>() else {
            return;
        };
        let records: Vec<pool::Record> = list
            .into_iter()
            .filter_map(|v| api::IpAddress::deserialize(v).ok()?.record())
            .collect();
        for &i in which {
            let Some((w, id)) = known_write(&jobs[i]) else {
                continue;
            };
            let Some(r) = records.iter().find(|r| r.id == id) else {
                continue;
            };
            out[i] = match w {
                KnownWrite::Renew { known, lease_secs } if r.addr == known.addr && r.dynamic => {
                    let expire = jobs[i].now + Duration::from_secs(u64::from(lease_secs));
                    Some(Ok(Outcome::Lease(renewed(
                        known,
                        id,
                        lease_secs,
                        Some(expire),
                    ))))
                }
                KnownWrite::Release(k) | KnownWrite::Decline(k) if r.addr == k.addr => {
                    Some(Ok(Outcome::Done))
                }
                _ => None,
            };
        }
    }

    // ---- offers ----

    fn offer_together(&mut self, jobs: &[Job], which: &[usize], out: &mut [Option<JobOutcome>]) {
        let mut groups: Vec<(PrefixInfo, Vec<usize>)> = Vec::new();
        for &i in which {
            match self.prefix(jobs[i].client.origin) {
                Err(e) => out[i] = Some(Err(e)),
                Ok(None) => out[i] = Some(Ok(Outcome::NoLease(NoLease::NoPrefix))),
                Ok(Some(p)) => match groups.iter_mut().find(|(q, _)| q.id == p.id) {
                    Some((_, v)) => v.push(i),
                    None => groups.push((p, vec![i])),
                },
            }
        }
        for (prefix, idx) in groups {
            if idx.len() > 1 {
                self.offer_group(jobs, &prefix, &idx, out, REREADS);
            }
        }
    }

    /// The OFFERs of one prefix: one read, then each client's choice in
    /// turn (the claims keep them apart), then one create for all new
    /// records. `rereads`: how many more times a create refused as a whole
    /// may read the prefix again.
    fn offer_group(
        &mut self,
        jobs: &[Job],
        prefix: &PrefixInfo,
        idx: &[usize],
        out: &mut [Option<JobOutcome>],
        rereads: usize,
    ) {
        let macs: Vec<MacAddr> = idx.iter().map(|&i| jobs[i].client.mac).collect();
        let snap = match self.read_many(&macs, prefix) {
            Ok(Some(s)) => s,
            // GraphQL cannot answer: the jobs read through REST alone.
            Ok(None) => return,
            Err(e) => {
                for &i in idx {
                    out[i] = Some(Err(e.clone()));
                }
                return;
            }
        };
        let pool = Pool {
            network: prefix.network,
            reserved: self.shared.reserved,
        };
        let lease_secs = self.shared.lease_secs;
        let mut creates: Vec<(usize, Ipv4Addr)> = Vec::new();
        let mut takeovers: Vec<(usize, pool::Record)> = Vec::new();
        for (n, &i) in idx.iter().enumerate() {
            let job = &jobs[i];
            let mac = job.client.mac;
            // The same client twice in one batch: the second runs alone.
            if macs[..n].contains(&mac) {
                continue;
            }
            let device = snap.devices.get(n).cloned().flatten();
            if device.is_none() && !self.shared.allow_unknown {
                out[i] = Some(Ok(Outcome::NoLease(NoLease::UnknownDevice)));
                continue;
            }
            let mut skip = self.shared.claims.others(mac);
            let lease = |addr, kind, record: String| {
                Some(Ok(Outcome::Lease(make_lease(
                    job,
                    prefix,
                    addr,
                    kind,
                    record,
                    lease_secs,
                    device.as_ref(),
                ))))
            };
            for _ in 0..CHOICE_ROUNDS {
                match pool::choose(&snap.records, &pool, mac, job.now, &skip) {
                    Choice::Static(r) => out[i] = lease(r.addr, LeaseKind::Static, r.id),
                    Choice::Permanent(r) => out[i] = lease(r.addr, LeaseKind::Permanent, r.id),
                    Choice::Own(r) => out[i] = lease(r.addr, LeaseKind::Dynamic, r.id),
                    Choice::Free(a) => {
                        if !self.shared.claims.take(a, mac) {
                            skip.push(a);
                            continue;
                        }
                        creates.push((i, a));
                    }
                    Choice::Reuse(r) => {
                        if !self.shared.claims.take(r.addr, mac) {
                            skip.push(r.addr);
                            continue;
                        }
                        takeovers.push((i, r));
                    }
                    Choice::Exhausted => {
                        out[i] = Some(Ok(Outcome::NoLease(NoLease::PoolExhausted)))
                    }
                }
                break;
            }
        }
        self.take_over_together(jobs, prefix, &snap, idx, takeovers, out);
        self.create_together(jobs, prefix, &snap, idx, creates, out, rereads);
    }

    /// One PATCH of the expired records of other clients that the batch
    /// takes over (a full pool), each holding its address as an OFFER does.
    /// A record the answer lacks or shows changed leaves its job to run
    /// alone.
    fn take_over_together(
        &mut self,
        jobs: &[Job],
        prefix: &PrefixInfo,
        snap: &ManySnapshot,
        idx: &[usize],
        takeovers: Vec<(usize, pool::Record)>,
        out: &mut [Option<JobOutcome>],
    ) {
        if takeovers.is_empty() {
            return;
        }
        let lease_secs = self.shared.lease_secs;
        let shift = self.elapsed();
        let at = |j: &Job| j.now + shift;
        let body: Vec<Value> = takeovers
            .iter()
            .map(|(i, r)| {
                let j = &jobs[*i];
                let hold = offer_hold(at(j), lease_secs);
                let mut b = lease_patch(j.client.mac, hold, j.client.hostname.as_deref(), true);
                b["id"] = Value::from(r.id.as_str());
                b
            })
            .collect();
        let answer = self
            .client
            .send(Request::patch("/api/ipam/ip-addresses/", &body).bulk());
        let records: Vec<pool::Record> = match &answer {
            Ok(r) if r.status == 200 => r
                .json::<Vec<Value>>()
                .unwrap_or_default()
                .into_iter()
                .filter_map(|v| api::IpAddress::deserialize(v).ok()?.record())
                .collect(),
            _ => Vec::new(),
        };
        for (i, taken) in takeovers {
            let j = &jobs[i];
            let done = records
                .iter()
                .any(|r| r.id == taken.id && r.addr == taken.addr && r.dynamic);
            if !done {
                self.shared.claims.give_back(taken.addr, j.client.mac);
                if let Err(e) = &answer {
                    out[i] = Some(Err(e.clone()));
                }
                continue;
            }
            let device = idx
                .iter()
                .position(|&k| k == i)
                .and_then(|n| snap.devices.get(n).cloned().flatten());
            let mut l = make_lease(
                j,
                prefix,
                taken.addr,
                LeaseKind::Dynamic,
                taken.id,
                lease_secs,
                device.as_ref(),
            );
            l.recorded_until = Some(offer_hold(at(j), lease_secs));
            out[i] = Some(Ok(Outcome::Lease(l)));
        }
    }

    /// The GraphQL read of several clients' devices and a prefix's
    /// records. None: this server's schema cannot answer it (reads go
    /// through REST from now on).
    fn read_many(
        &mut self,
        macs: &[MacAddr],
        prefix: &PrefixInfo,
    ) -> Result<Option<ManySnapshot>, BackendError> {
        let query = graphql_many_query(macs, prefix);
        let r = self
            .client
            .send(Request::post("/api/graphql/", &serde_json::json!({ "query": query })).bulk())?;
        match parse_graphql_many(r.status, &r.body, macs) {
            Ok(s) => Ok(Some(s)),
            Err(GqlError::Schema(msg)) => {
                log::warn!(
                    "nautobot: GraphQL cannot answer ({msg}); reading through REST from now on"
                );
                self.shared.graphql.store(false, Ordering::Relaxed);
                Ok(None)
            }
            Err(GqlError::Backend(e)) => Err(e),
        }
    }

    /// The new records of `creates` (job index, address), each holding its
    /// address for OFFER_HOLD_SECS. The jobs whose addresses another
    /// server took first read the prefix again and choose once more,
    /// together, up to `rereads` times; then each runs alone.
    #[allow(clippy::too_many_arguments)]
    fn create_together(
        &mut self,
        jobs: &[Job],
        prefix: &PrefixInfo,
        snap: &ManySnapshot,
        idx: &[usize],
        creates: Vec<(usize, Ipv4Addr)>,
        out: &mut [Option<JobOutcome>],
        rereads: usize,
    ) {
        let lost = self.create_rounds(jobs, prefix, snap, idx, creates, out);
        if !lost.is_empty() && rereads > 0 {
            log::debug!(
                "nautobot: another server took {} of the addresses chosen; reading the prefix again",
                lost.len()
            );
            self.offer_group(jobs, prefix, &lost, out, rereads - 1);
        }
    }

    /// One POST of the new records. A refusal that names the records
    /// another server made first sends the others once more without them.
    /// Returns the jobs whose addresses were taken: those named, those
    /// of a list refused as a whole (a unique key, as a 500, names none),
    /// and those still refused after the last round.
    fn create_rounds(
        &mut self,
        jobs: &[Job],
        prefix: &PrefixInfo,
        snap: &ManySnapshot,
        idx: &[usize],
        mut creates: Vec<(usize, Ipv4Addr)>,
        out: &mut [Option<JobOutcome>],
    ) -> Vec<usize> {
        let mut taken = Vec::new();
        let device_of = |i: usize| {
            idx.iter()
                .position(|&j| j == i)
                .and_then(|n| snap.devices.get(n).cloned().flatten())
        };
        let shift = self.elapsed();
        let at = |j: &Job| j.now + shift;
        let give_back = |s: &Self, list: &[(usize, Ipv4Addr)]| {
            for &(i, a) in list {
                s.shared.claims.give_back(a, jobs[i].client.mac);
            }
        };
        for _ in 0..CREATE_ROUNDS {
            if creates.is_empty() {
                return taken;
            }
            let body: Vec<Value> = creates
                .iter()
                .map(|&(i, a)| {
                    let j = &jobs[i];
                    let hold = offer_hold(at(j), self.shared.lease_secs);
                    let host = j.client.hostname.as_deref();
                    let fields = lease_fields(Some(j.client.mac), hold, host);
                    create_body(prefix, a, fields, dns_name(host))
                })
                .collect();
            let r = match self.client.send(
                Request::post("/api/ipam/ip-addresses/", &body)
                    .once()
                    .bulk(),
            ) {
                Ok(r) => r,
                Err(e) => {
                    give_back(self, &creates);
                    for &(i, _) in &creates {
                        out[i] = Some(Err(e.clone()));
                    }
                    return taken;
                }
            };
            if r.status == 200 || r.status == 201 {
                let ids: Vec<Option<String>> = r
                    .json::<Vec<api::Created>>()
                    .map(|v| v.into_iter().map(|c| c.id).collect())
                    .unwrap_or_default();
                if ids.len() != creates.len() {
                    let e = BackendError::BadAnswer(format!(
                        "{} records created, {} asked for",
                        ids.len(),
                        creates.len()
                    ));
                    for &(i, _) in &creates {
                        out[i] = Some(Err(e.clone()));
                    }
                    return taken;
                }
                for (&(i, a), id) in creates.iter().zip(ids) {
                    out[i] = Some(match id {
                        Some(id) => {
                            let mut l = make_lease(
                                &jobs[i],
                                prefix,
                                a,
                                LeaseKind::Dynamic,
                                id,
                                self.shared.lease_secs,
                                device_of(i).as_ref(),
                            );
                            l.recorded_until =
                                Some(offer_hold(at(&jobs[i]), self.shared.lease_secs));
                            Ok(Outcome::Lease(l))
                        }
                        None => Err(BackendError::BadAnswer("created address has no id".into())),
                    });
                }
                return taken;
            }
            match refused_items(r.status, &r.body, creates.len()) {
                Some(refused) => {
                    // Those choose again; the rest go once more.
                    let (lost, rest): (Vec<_>, Vec<_>) = creates
                        .iter()
                        .enumerate()
                        .partition(|(n, _)| refused.contains(n));
                    let lost: Vec<(usize, Ipv4Addr)> = lost.into_iter().map(|(_, c)| *c).collect();
                    give_back(self, &lost);
                    taken.extend(lost.iter().map(|&(i, _)| i));
                    creates = rest.into_iter().map(|(_, c)| *c).collect();
                }
                None if api::is_duplicate(r.status, &r.body) => {
                    // A race the answer does not pin down: all choose again.
                    give_back(self, &creates);
                    taken.extend(creates.iter().map(|&(i, _)| i));
                    return taken;
                }
                None => {
                    give_back(self, &creates);
                    let e = self.client.error(&r);
                    for &(i, _) in &creates {
                        out[i] = Some(Err(e.clone()));
                    }
                    return taken;
                }
            }
        }
        give_back(self, &creates);
        taken.extend(creates.iter().map(|&(i, _)| i));
        taken
    }
}

/// The lease a renewal confirms.
fn renewed(
    known: &Known,
    id: &str,
    lease_secs: u32,
    written: Option<std::time::SystemTime>,
) -> crate::backend::Lease {
    let mut lease = known.lease.clone();
    lease.addr = known.addr;
    lease.kind = LeaseKind::Dynamic;
    lease.record = Some(id.to_owned());
    lease.lease_secs = lease_secs;
    if written.is_some() {
        lease.recorded_until = written;
    }
    lease
}

/// What a job writes by record id into a dynamic lease the daemon knows.
enum KnownWrite<'a> {
    Renew { known: &'a Known, lease_secs: u32 },
    Release(&'a Known),
    Decline(&'a Known),
}

fn known_write(job: &Job) -> Option<(KnownWrite<'_>, &str)> {
    let (w, addr) = match job.kind {
        JobKind::Confirm { addr, lease_secs } => {
            let known = job.known_about(addr)?;
            (KnownWrite::Renew { known, lease_secs }, addr)
        }
        JobKind::Release { addr } => (KnownWrite::Release(job.known_about(addr)?), addr),
        JobKind::Decline { addr } => (KnownWrite::Decline(job.known_about(addr)?), addr),
        _ => return None,
    };
    let k = job.known_about(addr)?;
    match (k.kind, k.record.as_deref()) {
        (LeaseKind::Dynamic, Some(id)) => Some((w, id)),
        _ => None,
    }
}

/// A Confirm of the lease the daemon knows, by record id: what it renews.
fn renewal(job: &Job) -> Option<(&Known, &str, u32)> {
    let JobKind::Confirm { addr, lease_secs } = job.kind else {
        return None;
    };
    let k = job.known_about(addr)?;
    match (k.kind, k.record.as_deref()) {
        (LeaseKind::Dynamic, Some(id)) => Some((k, id, lease_secs)),
        _ => None,
    }
}

/// The items of a bulk create that Nautobot refused, from its 400 answer:
/// one error object per item, `{}` for those that were fine. None: the
/// answer is not of that form.
pub(super) fn refused_items(status: u16, body: &[u8], items: usize) -> Option<Vec<usize>> {
    if status != 400 {
        return None;
    }
    let list: Vec<Value> = serde_json::from_slice(body).ok()?;
    if list.len() != items {
        return None;
    }
    let refused: Vec<usize> = list
        .iter()
        .enumerate()
        .filter(|(_, e)| !e.as_object().is_some_and(|o| o.is_empty()))
        .map(|(n, _)| n)
        .collect();
    (!refused.is_empty()).then_some(refused)
}

#[cfg(test)]
mod tests;
