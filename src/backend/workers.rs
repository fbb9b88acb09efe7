//! The worker pool: each thread owns one backend session and runs jobs in
//! batches: the first job that comes, and whatever else arrives within the
//! batch window, up to the batch size. A backend that can combine them
//! (one read for many clients, one bulk write) saves API calls; a lone
//! job waits at most the window. Results go back to the state thread as
//! control events.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{select_biased, Receiver, Sender};
use log::warn;

use super::{Backend, Job, JobKind, JobResult};
use crate::daemon::event::Control;

/// How a worker gathers jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Batching {
    /// How long to wait for more jobs after the first one.
    pub window: Duration,
    /// How long to wait when the batch holds only renewals of known leases:
    /// a renewing client has minutes left, and renewals come spread out.
    pub renewal_window: Duration,
    /// Most jobs run together.
    pub size: usize,
}

impl Batching {
    /// No batches: each job as it comes.
    pub const ONE_AT_A_TIME: Batching = Batching {
        window: Duration::ZERO,
        renewal_window: Duration::ZERO,
        size: 1,
    };
}

/// `urgent` jobs (REQUEST, RELEASE, DECLINE: a client that already holds an
/// offer or a lease, usually one call) always go before `offers` (DISCOVER,
/// several calls): under a burst, clients that got an OFFER must get their
/// ACK before their REQUEST times out. One worker gathers at a time, so
/// that a batch is as full as the jobs at hand allow while the others run
/// theirs.
pub fn spawn(
    backend: Arc<dyn Backend>,
    workers: usize,
    batching: Batching,
    urgent: Receiver<Job>,
    offers: Receiver<Job>,
    results: Sender<Control>,
) -> std::io::Result<()> {
    let gathering = Arc::new(Mutex::new(()));
    for i in 0..workers.max(1) {
        let backend = backend.clone();
        let (urgent, offers) = (urgent.clone(), offers.clone());
        let results = results.clone();
        let gathering = Arc::clone(&gathering);
        std::thread::Builder::new()
            .name(format!("{}-{i}", backend.name()))
            .spawn(move || {
                let mut session = backend.session();
                loop {
                    let batch = {
                        let _turn = gathering.lock().unwrap_or_else(|e| e.into_inner());
                        gather(&urgent, &offers, batching)
                    };
                    let Some(mut jobs) = batch else {
                        return;
                    };
                    // A hold written now must last its full time from now,
                    // however long the jobs waited behind others.
                    let now = SystemTime::now();
                    for j in &mut jobs {
                        j.now = now;
                    }
                    let mut gone = false;
                    session.run_batch(&jobs, &mut |n, outcome, calls| {
                        let r = JobResult {
                            id: jobs[n].id,
                            outcome,
                            calls,
                            // An offer's hold runs from when the OFFER can
                            // go out; a lease from when the batch began
                            // (what was written counts from there).
                            started: Some(match jobs[n].kind {
                                JobKind::Offer => SystemTime::now().max(now),
                                _ => now,
                            }),
                        };
                        // Results are never dropped: the state thread waits
                        // for them, each as soon as it is known.
                        gone |= results.send(Control::Backend(Box::new(r))).is_err();
                    });
                    if gone {
                        warn!("worker {i}: state thread gone");
                        return;
                    }
                }
            })?;
    }
    Ok(())
}

/// The next batch: one job (waiting as long as it takes), then more until
/// the window closes or the batch is full, urgent ones first. Only
/// renewals so far: the longer renewal window. None when the state thread
/// is gone.
fn gather(urgent: &Receiver<Job>, offers: &Receiver<Job>, b: Batching) -> Option<Vec<Job>> {
    let first = select_biased! {
        recv(urgent) -> j => j,
        recv(offers) -> j => j,
    };
    let mut jobs = vec![first.ok()?];
    let start = Instant::now();
    // REQUESTs that follow an OFFER cost nothing: they wait for no one.
    let deadline = |jobs: &[Job]| {
        if jobs.iter().all(Job::covered) {
            start
        } else if jobs.iter().all(|j| j.is_renewal() || j.covered()) {
            start + b.renewal_window.max(b.window)
        } else {
            start + b.window
        }
    };
    while jobs.len() < b.size {
        let next = if let Ok(j) = urgent.try_recv() {
            j
        } else if let Ok(j) = offers.try_recv() {
            j
        } else {
            let wait = deadline(&jobs).saturating_duration_since(Instant::now());
            if wait.is_zero() {
                break;
            }
            select_biased! {
                recv(urgent) -> j => match j { Ok(j) => j, Err(_) => break },
                recv(offers) -> j => match j { Ok(j) => j, Err(_) => break },
                default(wait) => break,
            }
        };
        jobs.push(next);
    }
    Some(jobs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{Client, JobKind};
    use crate::core::boot::BootClient;
    use crossbeam_channel::bounded;
    use std::net::Ipv4Addr;

    fn job(id: u64) -> Job {
        Job {
            id,
            kind: JobKind::Offer,
            client: Client {
                mac: "02:00:00:00:00:01".parse().unwrap(),
                hostname: None,
                origin: Ipv4Addr::new(192, 0, 2, 1),
                boot: BootClient::None,
            },
            known: None,
            now: SystemTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn a_batch_takes_what_is_there_urgent_first_up_to_its_size() {
        let (ut, ur) = bounded(16);
        let (ot, or) = bounded(16);
        for i in 0..3 {
            ot.send(job(i)).unwrap();
        }
        for i in 10..12 {
            ut.send(job(i)).unwrap();
        }
        let b = Batching {
            window: Duration::ZERO,
            renewal_window: Duration::ZERO,
            size: 4,
        };
        let ids = |v: Vec<Job>| v.iter().map(|j| j.id).collect::<Vec<_>>();
        assert_eq!(ids(gather(&ur, &or, b).unwrap()), [10, 11, 0, 1]);
        assert_eq!(ids(gather(&ur, &or, b).unwrap()), [2]);
    }

    #[test]
    fn the_window_collects_jobs_that_come_late() {
        let (ut, ur) = bounded::<Job>(16);
        let (ot, or) = bounded(16);
        ot.send(job(1)).unwrap();
        let late = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            ot.send(job(2)).unwrap();
            ot
        });
        let b = Batching {
            window: Duration::from_secs(5),
            renewal_window: Duration::ZERO,
            size: 2,
        };
        let got = gather(&ur, &or, b).unwrap();
        assert_eq!(got.len(), 2, "the second job arrived within the window");
        drop(late.join().unwrap());
        drop(ut);
        // Both senders gone, nothing queued: the worker ends.
        assert!(gather(&ur, &or, b).is_none());
    }

    fn renewal(id: u64, covered: bool) -> Job {
        let mut j = job(id);
        let addr = Ipv4Addr::new(192, 0, 2, 9);
        j.kind = JobKind::Confirm {
            addr,
            lease_secs: 3600,
        };
        j.known = Some(crate::backend::Known {
            addr,
            kind: crate::backend::LeaseKind::Dynamic,
            record: Some("r".into()),
            lease: crate::backend::Lease {
                addr,
                network: "192.0.2.0/24".parse().unwrap(),
                gateway: None,
                dns: vec![],
                boot: None,
                kind: crate::backend::LeaseKind::Dynamic,
                record: Some("r".into()),
                lease_secs: 3600,
                recorded_until: covered.then(|| j.now + Duration::from_secs(3610)),
            },
        });
        j
    }

    #[test]
    fn renewals_wait_longer_a_request_after_an_offer_not_at_all() {
        let (ut, ur) = bounded(16);
        let (_ot, or) = bounded::<Job>(16);
        let b = Batching {
            window: Duration::from_millis(10),
            renewal_window: Duration::from_secs(5),
            size: 2,
        };
        assert!(renewal(1, false).is_renewal() && !renewal(1, false).covered());
        assert!(renewal(2, true).covered() && !renewal(2, true).is_renewal());

        ut.send(renewal(1, true)).unwrap();
        let t = Instant::now();
        assert_eq!(gather(&ur, &or, b).unwrap().len(), 1);
        assert!(
            t.elapsed() < Duration::from_secs(2),
            "a covered REQUEST waits for nobody"
        );

        ut.send(renewal(1, false)).unwrap();
        let late = ut.clone();
        let h = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            late.send(renewal(2, false)).unwrap();
        });
        let got = gather(&ur, &or, b).unwrap();
        h.join().unwrap();
        assert_eq!(
            got.len(),
            2,
            "the second renewal came within the renewal window"
        );
    }
}
