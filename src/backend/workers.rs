//! The worker pool: each thread owns one backend session and runs jobs one at
//! a time; results go back to the state thread as control events.

use std::sync::Arc;

use crossbeam_channel::{Receiver, Sender};
use log::warn;

use super::{Backend, Job, JobResult};
use crate::event::Control;

pub fn spawn(
    backend: Arc<dyn Backend>,
    workers: usize,
    jobs: Receiver<Job>,
    results: Sender<Control>,
) -> std::io::Result<()> {
    for i in 0..workers.max(1) {
        let backend = backend.clone();
        let jobs = jobs.clone();
        let results = results.clone();
        std::thread::Builder::new()
            .name(format!("{}-{i}", backend.name()))
            .spawn(move || {
                let mut session = backend.session();
                for job in jobs {
                    let (outcome, calls) = session.run(&job);
                    let r = JobResult {
                        id: job.id,
                        outcome,
                        calls,
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
