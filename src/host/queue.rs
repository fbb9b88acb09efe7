//! One thread per NFQUEUE: receive a packet, answer it through the
//! thread's own `Responder`, set the verdict, next. The same loop as the
//! least an NFQUEUE responder can do, plus the decision.

use std::io;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::Duration;

use log::warn;

use crate::daemon::counters::QueueCounters;
use crate::daemon::event::QueueKind;
use crate::daemon::sdnotify::{self, Heartbeat};
use crate::host::link::set_socket_int;
use crate::host::responder::Responder;

/// Kernel-side queue length: packets beyond it are dropped by the kernel.
const QUEUE_MAXLEN: u32 = 4096;

/// Receive buffer of the netlink socket. The kernel's default (about 208
/// KiB) holds only a few hundred queued packets and drops the rest of a
/// burst before the thread can read it; this holds the whole kernel queue.
const NETLINK_RCVBUF: libc::c_int = 8 << 20;

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
        // SO_RCVBUFFORCE: beyond net.core.rmem_max, which CAP_NET_ADMIN allows.
        set_socket_int(queue.as_raw_fd(), libc::SO_RCVBUFFORCE, NETLINK_RCVBUF)?;
        Ok(BoundQueue { num, kind, queue })
    }
}

pub fn spawn(
    bq: BoundQueue,
    responder: Responder,
    counters: Arc<QueueCounters>,
    heartbeat: Arc<Heartbeat>,
) -> io::Result<std::thread::JoinHandle<()>> {
    // Under systemd's watchdog an idle queue wakes up now and then to show
    // that its thread is alive.
    if sdnotify::watchdog().is_some() {
        set_receive_timeout(bq.queue.as_raw_fd(), sdnotify::IDLE_WAKE)?;
    }
    std::thread::Builder::new()
        .name(format!("nfq-{}", bq.num))
        .spawn(move || run(bq, responder, &counters, &heartbeat))
}

fn set_receive_timeout(fd: std::os::fd::RawFd, t: Duration) -> io::Result<()> {
    let tv = libc::timeval {
        tv_sec: t.as_secs() as libc::time_t,
        tv_usec: libc::suseconds_t::from(t.subsec_micros()),
    };
    // SAFETY: fd is an open socket; tv outlives the call.
    let r = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            std::ptr::addr_of!(tv).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The queue whose thread stops answering after its first packet, when the
/// environment names it: how the watchdog's restart is tested.
const STALL_VARIABLE: &str = "NFDHCPD_TEST_STALL_QUEUE";

fn stalls(num: u16) -> bool {
    std::env::var(STALL_VARIABLE).is_ok_and(|v| v.trim().parse::<u16>() == Ok(num))
}

/// Drop verdicts held back at most before they go out in one message.
const BATCH: u32 = 64;

fn run(bq: BoundQueue, mut responder: Responder, stats: &QueueCounters, heartbeat: &Heartbeat) {
    let BoundQueue { num, mut queue, .. } = bq;
    let stall = stalls(num);
    let mut failures = 0u32;
    // Drops are sent in one batch verdict: the id of the newest packet
    // dropped, and how many wait. Any other verdict sends them first.
    let mut held: Option<u32> = None;
    let mut held_n = 0u32;
    let flush = |queue: &mut nfq::Queue, held: &mut Option<u32>, held_n: &mut u32| {
        if let Some(id) = held.take() {
            *held_n = 0;
            if let Err(e) = queue.verdict_batch(num, id, nfq::Verdict::Drop) {
                if stats.verdict_errors.bump_from() == 0 {
                    warn!("queue {num}: verdict refused: {e}");
                }
            }
        }
    };
    loop {
        heartbeat.beat();
        // Wait only when nothing is held: held drops go out as soon as the
        // socket is empty.
        queue.set_nonblocking(held.is_some());
        // One message at a time, dropped before the next receive: the
        // crate then reuses its receive buffer instead of allocating.
        let mut msg = match queue.recv() {
            Ok(m) => {
                failures = 0;
                m
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                flush(&mut queue, &mut held, &mut held_n);
                continue;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            // The kernel's answer to a verdict for packets it had already
            // dropped: their interface went away while they waited.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                stats.stale_verdicts.bump();
                continue;
            }
            Err(e) => {
                flush(&mut queue, &mut held, &mut held_n);
                failures += 1;
                if failures == 1 || failures % 1000 == 0 {
                    warn!("queue {num}: receive failed ({failures} times in a row): {e}");
                }
                // Only a lasting failure slows the loop down.
                if failures >= 100 {
                    std::thread::sleep(Duration::from_millis(10));
                }
                continue;
            }
        };
        stats.received.bump();
        if stall {
            warn!("queue {num}: stalled on purpose ({STALL_VARIABLE})");
            loop {
                std::thread::sleep(Duration::from_secs(3600));
            }
        }
        match responder.handle(&msg) {
            nfq::Verdict::Drop => {
                held = Some(msg.get_packet_id());
                held_n += 1;
                if held_n >= BATCH {
                    flush(&mut queue, &mut held, &mut held_n);
                }
            }
            verdict => {
                flush(&mut queue, &mut held, &mut held_n);
                msg.set_verdict(verdict);
                if let Err(e) = queue.verdict(msg) {
                    if stats.verdict_errors.bump_from() == 0 {
                        warn!("queue {num}: verdict refused: {e}");
                    }
                }
            }
        }
    }
}
