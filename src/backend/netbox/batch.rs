//! Jobs that arrived together: the renewals of leases the daemon handed
//! out share one bulk PATCH of their expiries (Netbox's list update takes
//! no `If-Match`, but a renewal's PATCH is unconditional anyway); every
//! other job runs on its own, side by side with the others.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::Value;

use super::leases::{expire_body, record_id, renewed};
use super::rules::DhcpRecord;
use super::{api, NetboxSession};
use crate::backend::rest::Request;
use crate::backend::side_by_side::run_side_by_side;
use crate::backend::{BackendError, Job, JobKind, Known, LeaseKind, Outcome};

type JobOutcome = Result<Outcome, BackendError>;

/// A renewal the bulk PATCH can carry: its record id, what the daemon
/// knows, the lease time.
fn known_renewal(job: &Job) -> Option<(u64, &Known, u32)> {
    let JobKind::Confirm { addr, lease_secs } = job.kind else {
        return None;
    };
    let k = job
        .known_about(addr)
        .filter(|k| k.kind == LeaseKind::Dynamic)?;
    Some((record_id(k)?, k, lease_secs))
}

impl NetboxSession {
    pub(super) fn run_together(
        &mut self,
        jobs: &[Job],
        done: &mut dyn FnMut(usize, JobOutcome, u32),
    ) {
        let renewals: Vec<usize> = (0..jobs.len())
            .filter(|&i| known_renewal(&jobs[i]).is_some())
            .collect();
        // Renewals whose record the bulk answer shows changed: they go on
        // with a full confirmation, as a lone renewal would.
        let mut changed = vec![false; jobs.len()];
        let mut sent = vec![false; jobs.len()];
        // The bulk call goes with the first outcome handed over.
        let mut calls = 0;
        if renewals.len() > 1 {
            let settled = self.renew_known_together(jobs, &renewals);
            calls = self.client.calls();
            for (i, o) in settled {
                match o {
                    Some(o) => {
                        sent[i] = true;
                        done(i, o, std::mem::take(&mut calls));
                    }
                    None => changed[i] = true,
                }
            }
        }
        let rest: Vec<usize> = (0..jobs.len()).filter(|&i| !sent[i]).collect();
        let run = |s: &mut NetboxSession, i: usize, job: &Job| {
            let before = s.client.calls();
            let o = match job.kind {
                JobKind::Confirm { addr, lease_secs } if changed[i] => {
                    s.confirm(job, addr, lease_secs, job.known_about(addr))
                }
                _ => s.run_job(job),
            };
            (o, s.client.calls() - before)
        };
        let mut each = |i, o, c| done(i, o, c + std::mem::take(&mut calls));
        // A lone job keeps this session's connection.
        if let [i] = rest[..] {
            let (o, c) = run(self, i, &jobs[i]);
            each(i, o, c);
            return;
        }
        let shared = &self.shared;
        run_side_by_side(jobs, &rest, || NetboxSession::open(shared), run, &mut each);
    }

    /// One PATCH of the renewals' expiries. Per job: Some(outcome) when
    /// settled, None when its record shows changed. A job left out (its
    /// record gone, or the list refused) runs alone.
    fn renew_known_together(
        &mut self,
        jobs: &[Job],
        which: &[usize],
    ) -> Vec<(usize, Option<JobOutcome>)> {
        let body: Vec<Value> = which
            .iter()
            .filter_map(|&i| {
                let (id, _, secs) = known_renewal(&jobs[i])?;
                let mut b = expire_body(jobs[i].now + Duration::from_secs(u64::from(secs)));
                b["id"] = Value::from(id);
                Some(b)
            })
            .collect();
        let r = match self
            .client
            .send(Request::patch("/api/ipam/ip-addresses/", &body).bulk())
        {
            Ok(r) => r,
            // Netbox unreachable: every renewal of the batch fails alike.
            Err(e) => return which.iter().map(|&i| (i, Some(Err(e.clone())))).collect(),
        };
        if r.status != 200 {
            log::debug!(
                "netbox: bulk renewal of {} answered {}; each runs alone",
                which.len(),
                r.status
            );
            return Vec::new();
        }
        let records: HashMap<u64, DhcpRecord> = r
            .json::<Vec<api::IpAddress>>()
            .unwrap_or_default()
            .into_iter()
            .filter_map(|ip| ip.record())
            .map(|rec| (rec.id, rec))
            .collect();
        which
            .iter()
            .filter_map(|&i| {
                let (id, known, secs) = known_renewal(&jobs[i])?;
                let rec = records.get(&id)?;
                Some((i, renewed(&jobs[i], known, rec, secs).map(Ok)))
            })
            .collect()
    }
}
