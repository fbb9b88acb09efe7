//! The worker pool: each thread owns one backend session and runs jobs one at
//! a time; results go back to the state thread as control events.

use std::sync::Arc;
use std::time::SystemTime;

use crossbeam_channel::{select_biased, Receiver, Sender};
use log::warn;

use super::{Backend, Job, JobResult};
use crate::daemon::event::Control;

/// `urgent` jobs (REQUEST, RELEASE, DECLINE: a client that already holds an
/// offer or a lease, usually one call) always go before `offers` (DISCOVER,
/// several calls): under a burst, clients that got an OFFER must get their
/// ACK before their REQUEST times out.
pub fn spawn(
    backend: Arc<dyn Backend>,
    workers: usize,
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
                loop {
                    let job = select_biased! {
                        recv(urgent) -> j => j,
                        recv(offers) -> j => j,
                    };
                    let Ok(mut job) = job else {
                        return;
                    };
                    // A hold written now must last its full time from now,
                    // however long the job waited behind others.
                    job.now = SystemTime::now();
                    let (outcome, calls) = session.run(&job);
                    let r = JobResult {
                        id: job.id,
                        outcome,
                        calls,
                        started: Some(job.now),
                    };
                    // Results are never dropped: the state thread is waiting for them.
                    if results.send(Control::Backend(Box::new(r))).is_err() {
                        warn!("worker {i}: state thread gone");
                        return;
                    }
                }
            })?;
    }
    Ok(())
}
