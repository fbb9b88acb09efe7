//! One thread per NFQUEUE: receive, hand over, apply the verdict that comes back.
//! The thread never decides anything itself.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{bounded, Sender, TrySendError};
use log::{debug, error, warn};

use crate::event::{Packet, QueueKind};
use crate::link::Link;
use crate::mac::MacAddr;

/// Most messages handled per wake-up; also the size of the verdict channel.
const BATCH: usize = 64;
/// Longest wait for the state thread's verdicts before failing open.
const VERDICT_WAIT: Duration = Duration::from_secs(2);

/// Kernel-side queue length: packets beyond it are dropped by the kernel.
const QUEUE_MAXLEN: u32 = 4096;

/// An NFQUEUE bound as root, before privileges are dropped.
pub struct BoundQueue {
    pub num: u16,
    pub kind: QueueKind,
    queue: nfq::Queue,
}

impl BoundQueue {
    pub fn bind(num: u16, kind: QueueKind) -> io::Result<BoundQueue> {
        let mut queue = nfq::Queue::open()?;
        queue.bind(num)?;
        // Only the headers and a DHCP message are needed; 2 KiB covers any sane request.
        queue.set_copy_range(num, 2048)?;
        queue.set_queue_max_len(num, QUEUE_MAXLEN)?;
        // Never fail open on a full kernel queue: guests' packets must not leak onward.
        queue.set_fail_open(num, false)?;
        Ok(BoundQueue { num, kind, queue })
    }
}

/// Counters the queue threads keep themselves.
#[derive(Default)]
pub struct QueueStats {
    pub received: AtomicU64,
    /// Dropped because the state thread's packet channel was full.
    pub channel_drops: AtomicU64,
    /// Accepted because no verdict came back in time.
    pub verdict_timeouts: AtomicU64,
}

pub fn spawn(
    bq: BoundQueue,
    tx: Sender<Packet>,
    stats: Arc<QueueStats>,
) -> io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name(format!("nfq-{}", bq.num))
        .spawn(move || {
            if let Err(e) = run(bq, tx, &stats) {
                error!("queue thread stopped: {e}");
            }
        })
}

fn run(bq: BoundQueue, tx: Sender<Packet>, stats: &QueueStats) -> io::Result<()> {
    let BoundQueue {
        num,
        kind,
        mut queue,
    } = bq;
    let link = Link::new()?;
    let (vtx, vrx) = bounded::<nfq::Message>(BATCH);
    let mut batch: Vec<nfq::Message> = Vec::with_capacity(BATCH);
    loop {
        queue.set_nonblocking(false);
        match queue.recv() {
            Ok(m) => batch.push(m),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                warn!("queue {num}: receive failed: {e}");
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
        }
        queue.set_nonblocking(true);
        while batch.len() < BATCH {
            match queue.recv() {
                Ok(m) => batch.push(m),
                Err(_) => break,
            }
        }
        stats
            .received
            .fetch_add(batch.len() as u64, Ordering::Relaxed);

        let mut pending = 0usize;
        for mut msg in batch.drain(..) {
            let physin = msg.get_physindev();
            let ifindex = if physin != 0 { physin } else { msg.get_indev() };
            let src_mac = msg.get_hw_addr().and_then(MacAddr::from_slice);
            let p = Packet {
                kind,
                ifname: link.name_of(ifindex),
                ifindex,
                src_mac,
                msg,
                verdict_tx: vtx.clone(),
            };
            match tx.try_send(p) {
                Ok(()) => pending += 1,
                Err(TrySendError::Full(p)) | Err(TrySendError::Disconnected(p)) => {
                    stats.channel_drops.fetch_add(1, Ordering::Relaxed);
                    msg = p.msg;
                    msg.set_verdict(nfq::Verdict::Drop);
                    queue.verdict(msg)?;
                }
            }
        }
        for _ in 0..pending {
            match vrx.recv_timeout(VERDICT_WAIT) {
                Ok(msg) => queue.verdict(msg)?,
                Err(_) => {
                    // The state thread is stuck: the messages it holds are lost
                    // to us; the kernel keeps them until the socket closes.
                    stats.verdict_timeouts.fetch_add(1, Ordering::Relaxed);
                    debug!("queue {num}: verdict wait timed out");
                    break;
                }
            }
        }
        // Verdicts that arrive late are applied on the next round.
        while let Ok(msg) = vrx.try_recv() {
            queue.verdict(msg)?;
        }
    }
}
