//! Jobs of one batch that share no call, run at the same time.

use super::{BackendError, Job, Outcome};

/// At most this many jobs of a batch run at once, each on a connection of
/// its own.
const AT_ONCE: usize = 4;

/// Runs the jobs `which` of `jobs`, [`AT_ONCE`] at a time, each on a
/// session `open` makes, so that one slow job does not hold up the others.
/// `run` returns a job's outcome and the calls it made; `each` gets them,
/// as each group of jobs ends.
pub(crate) fn run_side_by_side<S: Send>(
    jobs: &[Job],
    which: &[usize],
    open: impl Fn() -> S,
    run: impl Fn(&mut S, usize, &Job) -> (Result<Outcome, BackendError>, u32) + Sync,
    each: &mut dyn FnMut(usize, Result<Outcome, BackendError>, u32),
) {
    for group in which.chunks(AT_ONCE) {
        let results: Vec<_> = std::thread::scope(|s| {
            let handles: Vec<_> = group
                .iter()
                .map(|&i| {
                    let mut session = open();
                    let run = &run;
                    let job = &jobs[i];
                    s.spawn(move || {
                        let (o, calls) = run(&mut session, i, job);
                        (i, o, calls)
                    })
                })
                .collect();
            handles.into_iter().filter_map(|h| h.join().ok()).collect()
        });
        for (i, o, calls) in results {
            each(i, o, calls);
        }
    }
}
