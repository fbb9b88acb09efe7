//! The worker pool: each thread owns one backend session and runs jobs in
//! batches: the first job that comes, and whatever else arrives within the
//! batch window, up to the batch size. A backend that can combine them
//! (one read for many clients, one bulk write) saves API calls; a lone
//! job waits at most the window. Results go back to the state thread as
//! control events.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{select_biased, Receiver, Sender};
use log::warn;

use super::{Backend, Job, JobResult};
use crate::daemon::event::Control;

/// How a worker gathers jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Batching {
    /// How long to wait for more jobs after the first one.
    pub window: Duration,
    /// Most jobs run together.
    pub size: usize,
}

impl Batching {
    /// No batches: each job as it comes.
    pub const ONE_AT_A_TIME: Batching = Batching {
        window: Duration::ZERO,
        size: 1,
    };
}

/// `urgent` jobs (REQUEST, RELEASE, DECLINE: a client that already holds an
/// offer or a lease, usually one call) always go before `offers` (DISCOVER,
/// several calls): under a burst, clients that got an OFFER must get their
/// ACK before their REQUEST times out.
pub fn spawn(
    backend: Arc<dyn Backend>,
    workers: usize,
    batching: Batching,
    urgent: Receiver<Job>,
    offers: Receiver<Job>,
    results: Sender<Control>,
) -> std::io::Result<()> {
    for i in 0..workers.max(1) {
        let backend = backend.clone();
        let (urgent, offers) = (urgent.clone(), offers.clone());
        let results = results.clone();
        std::thread::Builder::new()
            .name(format!("{}-{i}", backend.name()))
            .spawn(move || {
                let mut session = backend.session();
                while let Some(mut jobs) = gather(&urgent, &offers, batching) {
                    // A hold written now must last its full time from now,
                    // however long the jobs waited behind others.
                    let now = SystemTime::now();
                    for j in &mut jobs {
                        j.now = now;
                    }
                    let (outcomes, calls) = session.run_batch(&jobs);
                    // The batch's calls are counted once, with its first job.
                    let mut calls = Some(calls);
                    for (job, outcome) in jobs.iter().zip(outcomes) {
                        let r = JobResult {
                            id: job.id,
                            outcome,
                            calls: calls.take().unwrap_or(0),
                            started: Some(now),
                        };
                        // Results are never dropped: the state thread waits for them.
                        if results.send(Control::Backend(Box::new(r))).is_err() {
                            warn!("worker {i}: state thread gone");
                            return;
                        }
                    }
                }
            })?;
    }
    Ok(())
}

/// The next batch: one job (waiting as long as it takes), then more until
/// the window closes or the batch is full, urgent ones first. None when
/// the state thread is gone.
fn gather(urgent: &Receiver<Job>, offers: &Receiver<Job>, b: Batching) -> Option<Vec<Job>> {
    let first = select_biased! {
        recv(urgent) -> j => j,
        recv(offers) -> j => j,
    };
    let mut jobs = vec![first.ok()?];
    let deadline = Instant::now() + b.window;
    while jobs.len() < b.size {
        let next = if let Ok(j) = urgent.try_recv() {
            j
        } else if let Ok(j) = offers.try_recv() {
            j
        } else {
            let wait = deadline.saturating_duration_since(Instant::now());
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
            size: 2,
        };
        let got = gather(&ur, &or, b).unwrap();
        assert_eq!(got.len(), 2, "the second job arrived within the window");
        drop(late.join().unwrap());
        drop(ut);
        // Both senders gone, nothing queued: the worker ends.
        assert!(gather(&ur, &or, b).is_none());
    }
}
