//! The flood: a paced AF_PACKET sender on the guest's interface, a receiver
//! on the same interface timestamping the answers in the kernel, and the
//! figures of one trial (rates, loss, latency percentiles, what the server
//! spent per request).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crate::frames::{self, Proto, TAP_MAC, XID_OFFSET};
use crate::lab::{Lab, QueueCounters};
use crate::server::{Server, Usage};
use crate::Res;

const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
/// Bytes of each received frame looked at: enough for the BOOTP xid and
/// the ICMPv6 type.
const SNAP: usize = 128;
/// Frames taken per recvmmsg call.
const RX_BATCH: usize = 64;

fn last_err<T>(what: &str) -> Res<T> {
    Err(format!("{what}: {}", io::Error::last_os_error()))
}

fn setsockopt_int(fd: &OwnedFd, level: i32, opt: i32, val: i32) -> Res<()> {
    // SAFETY: an int option of the right size.
    let r = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            opt,
            &val as *const i32 as *const libc::c_void,
            std::mem::size_of::<i32>() as libc::socklen_t,
        )
    };
    if r != 0 {
        return last_err(&format!("setsockopt {level}/{opt}"));
    }
    Ok(())
}

/// An AF_PACKET socket bound to one interface. Must be opened inside the
/// namespace of that interface.
pub struct PacketSocket {
    fd: OwnedFd,
}

impl PacketSocket {
    fn open(ifindex: u32, protocol: u16) -> Res<PacketSocket> {
        let proto_be = i32::from(protocol.to_be());
        // SAFETY: plain socket(2).
        let fd = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                proto_be,
            )
        };
        if fd < 0 {
            return last_err("AF_PACKET socket");
        }
        // SAFETY: a fresh descriptor we own.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: sockaddr_ll is plain data.
        let mut sa: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sa.sll_family = libc::AF_PACKET as u16;
        sa.sll_protocol = protocol.to_be();
        sa.sll_ifindex = ifindex as i32;
        // SAFETY: sa is valid for its size.
        let r = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                &sa as *const libc::sockaddr_ll as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if r != 0 {
            return last_err("bind AF_PACKET");
        }
        Ok(PacketSocket { fd })
    }

    /// Sends only (protocol 0: it never receives).
    pub fn sender(ifindex: u32) -> Res<PacketSocket> {
        let s = PacketSocket::open(ifindex, 0)?;
        setsockopt_int(&s.fd, libc::SOL_SOCKET, libc::SO_SNDBUF, 4 << 20)?;
        Ok(s)
    }

    /// Receives incoming frames of one ethertype (outgoing frames are not
    /// delivered to a protocol-bound socket), with kernel receive
    /// timestamps, a large buffer and a short timeout so the reader can
    /// notice the end of a trial.
    pub fn receiver(ifindex: u32, ethertype: u16) -> Res<PacketSocket> {
        let s = PacketSocket::open(ifindex, ethertype)?;
        setsockopt_int(&s.fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, 64 << 20)?;
        setsockopt_int(&s.fd, libc::SOL_SOCKET, libc::SO_TIMESTAMPNS, 1)?;
        let tv = libc::timeval {
            tv_sec: 0,
            tv_usec: 20_000,
        };
        // SAFETY: a timeval of the right size.
        let r = unsafe {
            libc::setsockopt(
                s.fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                &tv as *const libc::timeval as *const libc::c_void,
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        if r != 0 {
            return last_err("SO_RCVTIMEO");
        }
        s.drops();
        Ok(s)
    }

    fn send(&self, frame: &[u8]) -> io::Result<()> {
        // SAFETY: frame is valid for its length.
        let r = unsafe {
            libc::send(
                self.fd.as_raw_fd(),
                frame.as_ptr() as *const libc::c_void,
                frame.len(),
                0,
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Frames the socket dropped (receive buffer full) since the last call.
    pub fn drops(&self) -> u32 {
        // SAFETY: tpacket_stats is plain data of the size given.
        let mut st: libc::tpacket_stats = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::tpacket_stats>() as libc::socklen_t;
        let r = unsafe {
            libc::getsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_STATISTICS,
                &mut st as *mut libc::tpacket_stats as *mut libc::c_void,
                &mut len,
            )
        };
        if r != 0 {
            return 0;
        }
        st.tp_drops
    }
}

fn realtime_ns() -> u64 {
    // SAFETY: clock_gettime into a local timespec.
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// What an answer frame is: Some(xid) for a DHCPv4 reply from the server,
/// Some(0) for a Router Advertisement from the tap, None for anything else.
fn classify(proto: Proto, f: &[u8]) -> Option<u32> {
    if f.len() < 14 || f[6..12] != TAP_MAC.0 {
        return None;
    }
    match proto {
        Proto::Dhcp => {
            if f[12..14] != [0x08, 0x00] || f.len() < 34 || f[23] != 17 {
                return None;
            }
            let ihl = usize::from(f[14] & 0x0f) * 4;
            let udp = 14 + ihl;
            let bootp = udp + 8;
            let b = f.get(udp..bootp + 8)?;
            // From port 67 to 68, BOOTREPLY.
            if b[0..4] != [0, 67, 0, 68] || b[8] != 2 {
                return None;
            }
            Some(u32::from_be_bytes(b[12..16].try_into().ok()?))
        }
        Proto::Rs => {
            if f[12..14] != [0x86, 0xdd] || f.len() < 55 || f[20] != 58 || f[54] != 134 {
                return None;
            }
            Some(0)
        }
    }
}

/// Reads answers until `stop`: (xid, kernel receive time in ns) for each.
fn receive(sock: &PacketSocket, proto: Proto, stop: &AtomicBool) -> Vec<(u32, u64)> {
    let mut out = Vec::new();
    let mut bufs = vec![[0u8; SNAP]; RX_BATCH];
    let mut ctrl = vec![[0u64; 8]; RX_BATCH];
    loop {
        // SAFETY: iovec/mmsghdr/msghdr are plain data; every pointer set
        // below points into bufs/ctrl, which outlive the call.
        let mut iov: Vec<libc::iovec> = bufs
            .iter_mut()
            .map(|b| libc::iovec {
                iov_base: b.as_mut_ptr() as *mut libc::c_void,
                iov_len: SNAP,
            })
            .collect();
        let mut hdrs: Vec<libc::mmsghdr> = iov
            .iter_mut()
            .zip(ctrl.iter_mut())
            .map(|(v, c)| {
                let mut h: libc::mmsghdr = unsafe { std::mem::zeroed() };
                h.msg_hdr.msg_iov = v;
                h.msg_hdr.msg_iovlen = 1;
                h.msg_hdr.msg_control = c.as_mut_ptr() as *mut libc::c_void;
                h.msg_hdr.msg_controllen = std::mem::size_of_val(c);
                h
            })
            .collect();
        let n = unsafe {
            libc::recvmmsg(
                sock.fd.as_raw_fd(),
                hdrs.as_mut_ptr(),
                RX_BATCH as u32,
                libc::MSG_WAITFORONE,
                std::ptr::null_mut(),
            )
        };
        if n <= 0 {
            if stop.load(Ordering::Acquire) {
                break;
            }
            continue;
        }
        let fallback = realtime_ns();
        for (h, b) in hdrs.iter().zip(bufs.iter()).take(n as usize) {
            let len = (h.msg_len as usize).min(SNAP);
            let Some(key) = classify(proto, &b[..len]) else {
                continue;
            };
            out.push((key, cmsg_timestamp(&h.msg_hdr).unwrap_or(fallback)));
        }
    }
    out
}

/// The SO_TIMESTAMPNS control message of a received frame.
fn cmsg_timestamp(m: &libc::msghdr) -> Option<u64> {
    // SAFETY: walks the control buffer the kernel filled, with its macros.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(m);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_TIMESTAMPNS {
                let ts = std::ptr::read_unaligned(libc::CMSG_DATA(c) as *const libc::timespec);
                return Some(ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64);
            }
            c = libc::CMSG_NXTHDR(m, c);
        }
    }
    None
}

/// Sends `count` frames at `rate` per second (frame i due at i / rate after
/// the start), each with xid `xid_base + i` for DHCPv4. Returns the send
/// time of each frame (0 where the send failed) and the sending time.
fn send_paced(
    sock: &PacketSocket,
    proto: Proto,
    rate: f64,
    count: u64,
    xid_base: u32,
) -> (Vec<u64>, Duration) {
    // Sleeps as short as asked: the default 50 µs slack would turn the
    // pacing into bursts at the higher rates.
    // SAFETY: plain prctl on this thread.
    unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1, 0, 0, 0) };
    let mut frame = match proto {
        Proto::Dhcp => frames::discover_frame(),
        Proto::Rs => frames::rs_frame(),
    };
    let mut sent_at = vec![0u64; count as usize];
    let start = Instant::now();
    let mut i = 0u64;
    while i < count {
        let due = ((start.elapsed().as_secs_f64() * rate) as u64 + 1).min(count);
        if i >= due {
            let next = Duration::from_secs_f64(i as f64 / rate);
            if let Some(wait) = next.checked_sub(start.elapsed()) {
                thread::sleep(wait);
            }
            continue;
        }
        while i < due {
            if proto == Proto::Dhcp {
                let xid = xid_base.wrapping_add(i as u32);
                frame[XID_OFFSET..XID_OFFSET + 4].copy_from_slice(&xid.to_be_bytes());
            }
            let t = realtime_ns();
            if sock.send(&frame).is_ok() {
                sent_at[i as usize] = t;
            }
            i += 1;
        }
    }
    (sent_at, start.elapsed())
}

/// Latency percentiles, in microseconds.
#[derive(Debug, Clone, Copy)]
pub struct Latency {
    pub p50: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

fn percentiles(mut ns: Vec<u64>) -> Option<Latency> {
    if ns.is_empty() {
        return None;
    }
    ns.sort_unstable();
    // Nearest rank.
    let at = |q: f64| {
        let i = ((q * ns.len() as f64).ceil() as usize).clamp(1, ns.len()) - 1;
        ns[i] as f64 / 1000.0
    };
    Some(Latency {
        p50: at(0.50),
        p99: at(0.99),
        p999: at(0.999),
        max: *ns.last().unwrap_or(&0) as f64 / 1000.0,
    })
}

/// One trial's figures.
#[derive(Debug, Clone)]
pub struct Trial {
    pub target: &'static str,
    pub proto: Proto,
    pub rate: f64,
    pub sent: u64,
    pub send_secs: f64,
    pub replies: u64,
    pub latency: Option<Latency>,
    /// Dropped by the receiving socket: the figures are then not to be trusted.
    pub rx_drops: u32,
    pub kernel: QueueCounters,
    /// Server CPU (user + system) per request it received, µs.
    pub cpu_us: f64,
    /// Server context switches per request it received (voluntary +
    /// involuntary).
    pub switches: f64,
    pub usage: std::collections::BTreeMap<String, crate::server::ThreadUsage>,
    pub loadavg: String,
}

impl Trial {
    pub fn sent_rate(&self) -> f64 {
        self.sent as f64 / self.send_secs.max(1e-9)
    }

    pub fn loss(&self) -> f64 {
        if self.sent == 0 {
            return 1.0;
        }
        1.0 - self.replies as f64 / self.sent as f64
    }

    /// Less than 1 % lost and nothing lost by the measuring side.
    /// Requests that reached the server (sent minus the kernel's drops).
    pub fn handled(&self) -> u64 {
        self.sent
            .saturating_sub(self.kernel.queue_dropped)
            .saturating_sub(self.kernel.user_dropped)
    }

    pub fn sustained(&self) -> bool {
        self.loss() < 0.01 && self.rx_drops == 0
    }
}

/// `/proc/loadavg`'s first three figures.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// How the highest sustained rate is searched.
pub struct Search {
    /// First rate tried, per second.
    pub start: f64,
    /// Highest rate tried.
    pub cap: f64,
    /// Seconds of flood per trial.
    pub secs: f64,
    pub drain: Duration,
    /// Bisections after the first failing rate.
    pub steps: u32,
}

/// What a trial needs from its surroundings.
pub struct Rig<'a> {
    pub lab: &'a Lab,
    pub server: &'a Server,
    pub sender: Arc<PacketSocket>,
    /// The next unused xid: every DISCOVER of a run has its own.
    pub next_xid: u32,
    /// Nice value of the flood's own threads (and, set by `new`, of the server).
    pub nice: Option<i32>,
}

/// Sets the calling thread's nice value (Linux keeps it per thread).
pub fn renice_thread(nice: Option<i32>) {
    if let Some(n) = nice {
        // SAFETY: gettid and setpriority on the calling thread only.
        unsafe {
            let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
            libc::setpriority(libc::PRIO_PROCESS, tid, n);
        }
    }
}

impl Rig<'_> {
    /// With `nice`, the server's threads get that nice value too.
    pub fn new<'a>(lab: &'a Lab, server: &'a Server, nice: Option<i32>) -> Res<Rig<'a>> {
        if let Some(n) = nice {
            server.renice(n);
        }
        let ifindex = lab.guest_ifindex;
        let sender = lab.guest.enter(|| PacketSocket::sender(ifindex))??;
        Ok(Rig {
            lab,
            server,
            sender: Arc::new(sender),
            next_xid: 0x4e46_0000,
            nice,
        })
    }

    /// Floods for `secs` at `rate`, waits `drain` for late answers, and
    /// measures.
    pub fn trial(&mut self, proto: Proto, rate: f64, secs: f64, drain: Duration) -> Res<Trial> {
        let count = ((rate * secs).round() as u64).max(1);
        let xid_base = self.next_xid;
        self.next_xid = self.next_xid.wrapping_add(count as u32 + 1);
        let ethertype = match proto {
            Proto::Dhcp => ETH_P_IP,
            Proto::Rs => ETH_P_IPV6,
        };
        let ifindex = self.lab.guest_ifindex;
        let rx = Arc::new(
            self.lab
                .guest
                .enter(|| PacketSocket::receiver(ifindex, ethertype))??,
        );
        let load = loadavg();
        let k0 = self.lab.queue_counters(proto.queue());
        let u0: Usage = self.server.usage();

        let stop = Arc::new(AtomicBool::new(false));
        let nice = self.nice;
        let reader = {
            let (rx, stop) = (rx.clone(), stop.clone());
            thread::Builder::new()
                .name("receiver".into())
                .spawn(move || {
                    renice_thread(nice);
                    receive(&rx, proto, &stop)
                })
                .map_err(|e| e.to_string())?
        };
        let sender = {
            let s = self.sender.clone();
            thread::Builder::new()
                .name("sender".into())
                .spawn(move || {
                    renice_thread(nice);
                    send_paced(&s, proto, rate, count, xid_base)
                })
                .map_err(|e| e.to_string())?
        };
        let (sent_at, send_time) = sender.join().map_err(|_| "sender panicked")?;
        thread::sleep(drain);
        stop.store(true, Ordering::Release);
        let answers = reader.join().map_err(|_| "receiver panicked")?;
        if !self.server.alive() {
            return Err(format!(
                "{} (pid {}) died during the flood; see {}",
                self.server.label,
                self.server.pid,
                self.server.log.display()
            ));
        }
        let u1 = self.server.usage();
        let k1 = self.lab.queue_counters(proto.queue());
        let rx_drops = rx.drops();

        let sent = sent_at.iter().filter(|t| **t != 0).count() as u64;
        let mut lat = Vec::with_capacity(answers.len());
        let mut replies = 0u64;
        match proto {
            Proto::Dhcp => {
                let mut seen = vec![false; sent_at.len()];
                for (xid, t) in answers {
                    let i = xid.wrapping_sub(xid_base) as usize;
                    if i >= sent_at.len() || seen[i] || sent_at[i] == 0 {
                        continue;
                    }
                    seen[i] = true;
                    replies += 1;
                    lat.push(t.saturating_sub(sent_at[i]));
                }
            }
            Proto::Rs => {
                // RAs carry nothing of the RS: the k-th RA answers the k-th
                // RS that was answered. The queue and the state thread keep
                // order, so without loss this pairing is exact; with loss
                // it pairs answers with earlier requests than their own and
                // overstates latency.
                let sends = sent_at.iter().filter(|t| **t != 0);
                for ((_, t), s) in answers.iter().zip(sends) {
                    replies += 1;
                    lat.push(t.saturating_sub(*s));
                }
            }
        }
        // Costs are per request the server got: the kernel's drops never
        // reach it.
        let handled = sent
            .saturating_sub(k1.queue_dropped.saturating_sub(k0.queue_dropped))
            .saturating_sub(k1.user_dropped.saturating_sub(k0.user_dropped));
        let per = |x: f64| if handled > 0 { x / handled as f64 } else { 0.0 };
        let usage = u1.since(&u0);
        let total = u1.total().minus(u0.total());
        Ok(Trial {
            target: self.server.label,
            proto,
            rate,
            sent,
            send_secs: send_time.as_secs_f64(),
            replies,
            latency: percentiles(lat),
            rx_drops,
            kernel: QueueCounters {
                queue_dropped: k1.queue_dropped.saturating_sub(k0.queue_dropped),
                user_dropped: k1.user_dropped.saturating_sub(k0.user_dropped),
            },
            cpu_us: per(total.cpu_secs() * 1e6),
            switches: per((total.voluntary + total.involuntary) as f64),
            usage,
            loadavg: load,
        })
    }

    /// A rate of the search, tried up to `ATTEMPTS` times until one trial
    /// passes: on a shared machine one scheduling stall longer than the
    /// netlink socket buffer lasts fails a trial that the server's
    /// throughput would pass.
    fn attempt(
        &mut self,
        proto: Proto,
        rate: f64,
        s: &Search,
        log: &mut dyn FnMut(&Trial),
    ) -> Res<Trial> {
        const ATTEMPTS: usize = 3;
        let mut t = self.trial(proto, rate, s.secs, s.drain)?;
        log(&t);
        for _ in 1..ATTEMPTS {
            if t.sustained() {
                break;
            }
            t = self.trial(proto, rate, s.secs, s.drain)?;
            log(&t);
        }
        Ok(t)
    }

    /// The highest sent rate with less than 1 % loss. Rates grow by half
    /// from `s.start` until two rates in a row fail (or the sender cannot
    /// keep up), then `s.steps` bisections between the highest passing rate
    /// and the lowest failing one above it.
    pub fn search(
        &mut self,
        proto: Proto,
        s: &Search,
        log: &mut dyn FnMut(&Trial),
    ) -> Res<Option<Trial>> {
        let mut best: Option<Trial> = None;
        let mut good = 0.0f64;
        let mut bad: Option<f64> = None;
        let mut failed_in_row = 0;
        let mut rate = s.start;
        loop {
            let t = self.attempt(proto, rate, s, log)?;
            if t.sustained() {
                good = good.max(rate);
                if bad.is_some_and(|b| b <= rate) {
                    bad = None;
                }
                failed_in_row = 0;
                let sender_limited = t.sent_rate() < 0.9 * rate;
                if best.as_ref().is_none_or(|b| t.sent_rate() > b.sent_rate()) {
                    best = Some(t);
                }
                if sender_limited || rate >= s.cap {
                    break;
                }
            } else {
                failed_in_row += 1;
                if bad.is_none_or(|b| rate < b) {
                    bad = Some(rate);
                }
                if failed_in_row >= 2 || rate >= s.cap {
                    break;
                }
            }
            rate = (rate * 1.5).min(s.cap);
        }
        if let Some(mut hi) = bad {
            for _ in 0..s.steps {
                let mid = (good + hi) / 2.0;
                if mid < 1000.0 || hi - good < 0.02 * hi {
                    break;
                }
                let t = self.attempt(proto, mid, s, log)?;
                if t.sustained() {
                    good = mid;
                    if best.as_ref().is_none_or(|b| t.sent_rate() > b.sent_rate()) {
                        best = Some(t);
                    }
                } else {
                    hi = mid;
                }
            }
        }
        Ok(best)
    }
}

pub fn fmt_latency(l: Option<Latency>) -> (String, String, String, String) {
    match l {
        Some(l) => (
            format!("{:.0}", l.p50),
            format!("{:.0}", l.p99),
            format!("{:.0}", l.p999),
            format!("{:.0}", l.max),
        ),
        None => ("-".into(), "-".into(), "-".into(), "-".into()),
    }
}

pub const TABLE_HEADER: &str = "target   rate/s   sent/s  replies/s   loss%   p50µs   p99µs  p999µs   maxµs  cpuµs/req  csw/req  kq_drop  nl_drop  rx_drop  loadavg";

/// One line of the trial table.
pub fn row(t: &Trial) -> String {
    let (p50, p99, p999, max) = fmt_latency(t.latency);
    let approx = if t.proto == Proto::Rs && t.replies < t.sent {
        "~"
    } else {
        " "
    };
    format!(
        "{:<7} {:>7.0} {:>8.0} {:>10.0} {:>7.2} {approx}{:>6} {approx}{:>6} {approx}{:>6} {approx}{:>6} {:>10.1} {:>8.2} {:>8} {:>8} {:>8}  {}",
        t.target,
        t.rate,
        t.sent_rate(),
        t.replies as f64 / t.send_secs.max(1e-9),
        t.loss() * 100.0,
        p50,
        p99,
        p999,
        max,
        t.cpu_us,
        t.switches,
        t.kernel.queue_dropped,
        t.kernel.user_dropped,
        t.rx_drops,
        t.loadavg
    )
}
