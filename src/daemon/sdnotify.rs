//! systemd's notification protocol (sd_notify(3)), spoken over the
//! datagram socket named by `NOTIFY_SOCKET`, without libsystemd: READY,
//! RELOADING, STOPPING, STATUS and WATCHDOG; and the heartbeats by which
//! the worker threads show the state thread that they still make progress.
//!
//! Without `NOTIFY_SOCKET` (not started by systemd) every call does nothing.

use std::io;
use std::os::unix::net::UnixDatagram;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// How often an idle worker thread wakes up to show that it is alive while
/// the watchdog is on.
pub const IDLE_WAKE: Duration = Duration::from_secs(1);

struct Notifier {
    sock: UnixDatagram,
    watchdog: Option<Duration>,
}

static NOTIFIER: OnceLock<Option<Notifier>> = OnceLock::new();

/// Opens the notification socket named by `NOTIFY_SOCKET`, if any. Called
/// once, before privileges are dropped and the file system is confined.
/// An error means the variable is set but the socket cannot be used.
pub fn init() -> io::Result<bool> {
    let mut result = Ok(false);
    NOTIFIER.get_or_init(|| match open() {
        Ok(n) => {
            result = Ok(n.is_some());
            n
        }
        Err(e) => {
            result = Err(e);
            None
        }
    });
    result
}

fn open() -> io::Result<Option<Notifier>> {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return Ok(None);
    };
    let sock = UnixDatagram::unbound()?;
    // A notification systemd cannot take now is dropped: the state thread,
    // which sends most of them, must never wait on it.
    sock.set_nonblocking(true)?;
    let bytes = path.as_encoded_bytes();
    if let Some(name) = bytes.strip_prefix(b"@") {
        use std::os::linux::net::SocketAddrExt;
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
        sock.connect_addr(&addr)?;
    } else if bytes.starts_with(b"/") {
        sock.connect(&path)?;
    } else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "NOTIFY_SOCKET is neither a path nor an abstract name",
        ));
    }
    let watchdog = watchdog_from(
        std::env::var("WATCHDOG_USEC").ok().as_deref(),
        std::env::var("WATCHDOG_PID").ok().as_deref(),
        std::process::id(),
    );
    Ok(Some(Notifier { sock, watchdog }))
}

/// The watchdog interval systemd asks for, when it is meant for this
/// process (`WATCHDOG_PID` absent or ours).
pub fn watchdog_from(usec: Option<&str>, pid: Option<&str>, me: u32) -> Option<Duration> {
    if let Some(p) = pid {
        if p.trim().parse::<u32>().ok() != Some(me) {
            return None;
        }
    }
    let us = usec?.trim().parse::<u64>().ok().filter(|&u| u > 0)?;
    Some(Duration::from_micros(us))
}

/// True when started by systemd with a notification socket.
pub fn enabled() -> bool {
    matches!(NOTIFIER.get(), Some(Some(_)))
}

/// The watchdog interval, when systemd watches this process.
pub fn watchdog() -> Option<Duration> {
    NOTIFIER.get().and_then(|n| n.as_ref()?.watchdog)
}

/// Sends one notification (newline-separated `KEY=value` assignments).
/// Failures are ignored: systemd may be gone, and the daemon serves on.
pub fn notify(msg: &str) {
    if let Some(Some(n)) = NOTIFIER.get() {
        let _ = n.sock.send(msg.as_bytes());
    }
}

pub fn ready(status: &str) {
    notify(&format!("READY=1\nSTATUS={}", one_line(status)));
}

/// With `MONOTONIC_USEC`, so that `Type=notify-reload` accepts it too.
pub fn reloading() {
    notify(&format!(
        "RELOADING=1\nMONOTONIC_USEC={}\nSTATUS=reloading the bindings",
        monotonic_usec()
    ));
}

pub fn stopping() {
    notify("STOPPING=1\nSTATUS=stopping");
}

pub fn status(line: &str) {
    notify(&format!("STATUS={}", one_line(line)));
}

pub fn watchdog_ping() {
    notify("WATCHDOG=1");
}

/// A STATUS value is one line.
fn one_line(s: &str) -> String {
    s.replace(['\n', '\r'], " ")
}

/// CLOCK_MONOTONIC in microseconds, the clock systemd compares with.
pub fn monotonic_usec() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid timespec; CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64) * 1_000_000 + (ts.tv_nsec as u64) / 1_000
}

/// One worker thread's sign of life: the monotonic time (in ms) its loop
/// last went round, whether it had work or woke up idle.
pub struct Heartbeat {
    pub name: String,
    last_ms: AtomicU64,
}

impl Heartbeat {
    pub fn new(name: impl Into<String>) -> Arc<Heartbeat> {
        Arc::new(Heartbeat {
            name: name.into(),
            last_ms: AtomicU64::new(monotonic_usec() / 1000),
        })
    }

    pub fn beat(&self) {
        self.last_ms
            .store(monotonic_usec() / 1000, Ordering::Relaxed);
    }

    pub fn last_ms(&self) -> u64 {
        self.last_ms.load(Ordering::Relaxed)
    }
}

/// The names of the threads whose last sign of life is older than `limit`
/// at `now_ms`: while there is any, the watchdog is not fed.
pub fn stalled(beats: &[Arc<Heartbeat>], now_ms: u64, limit: Duration) -> Vec<&str> {
    let limit = u64::try_from(limit.as_millis()).unwrap_or(u64::MAX);
    beats
        .iter()
        .filter(|b| now_ms.saturating_sub(b.last_ms()) > limit)
        .map(|b| b.name.as_str())
        .collect()
}

/// What is in force, for `systemctl status`.
pub struct Summary<'a> {
    pub bindings: usize,
    pub queues: usize,
    pub answers_per_min: u64,
    /// Relay mode: leases in flight and the backend's state.
    pub relay: Option<(usize, &'a str, Option<bool>)>,
}

pub fn status_line(s: &Summary) -> String {
    let mut out = format!(
        "{} bindings, {} queues, {} answers/min",
        s.bindings, s.queues, s.answers_per_min
    );
    if let Some((in_flight, backend, ok)) = s.relay {
        let state = match ok {
            None => "not used yet",
            Some(true) => "ok",
            Some(false) => "failing",
        };
        out.push_str(&format!(
            ", relay: {in_flight} leases in flight, {backend} {state}"
        ));
    }
    out
}

/// Answers per minute from two totals `elapsed` apart.
pub fn per_minute(before: u64, after: u64, elapsed: Duration) -> u64 {
    let ms = elapsed.as_millis().max(1);
    u64::try_from(u128::from(after.saturating_sub(before)) * 60_000 / ms).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watchdog_only_for_this_process() {
        assert_eq!(
            watchdog_from(Some("30000000"), None, 7),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            watchdog_from(Some("30000000"), Some("7"), 7),
            Some(Duration::from_secs(30))
        );
        assert_eq!(watchdog_from(Some("30000000"), Some("8"), 7), None);
        assert_eq!(watchdog_from(Some("0"), None, 7), None);
        assert_eq!(watchdog_from(Some("x"), None, 7), None);
        assert_eq!(watchdog_from(None, Some("7"), 7), None);
    }

    #[test]
    fn a_silent_thread_is_stalled() {
        let a = Heartbeat::new("nfq-0");
        let b = Heartbeat::new("inotify");
        a.last_ms.store(1_000, Ordering::Relaxed);
        b.last_ms.store(9_500, Ordering::Relaxed);
        let beats = [a, b];
        assert_eq!(
            stalled(&beats, 10_000, Duration::from_secs(5)),
            vec!["nfq-0"]
        );
        assert!(stalled(&beats, 5_000, Duration::from_secs(5)).is_empty());
    }

    #[test]
    fn status_is_one_line() {
        let s = Summary {
            bindings: 3,
            queues: 4,
            answers_per_min: 12,
            relay: Some((2, "nautobot", Some(false))),
        };
        assert_eq!(
            status_line(&s),
            "3 bindings, 4 queues, 12 answers/min, relay: 2 leases in flight, nautobot failing"
        );
        assert_eq!(one_line("a\nb"), "a b");
        assert_eq!(per_minute(10, 40, Duration::from_secs(30)), 60);
        assert_eq!(per_minute(40, 10, Duration::from_secs(30)), 0);
    }
}
