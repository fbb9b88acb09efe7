//! Log sinks: syslog (facility daemon, ident nfdhcpd) always, `logdir/nfdhcpd.log`
//! when configured (reopened on SIGHUP), stderr in the foreground.
//!
//! Once the daemon runs, lines go through a bounded channel to a writer
//! thread: a stalled syslog daemon or a slow disk then costs log lines
//! (counted, and reported when the sinks catch up), never answers.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{bounded, Receiver, Sender, TrySendError};

use log::{Level, LevelFilter, Log, Metadata, Record};
use syslog::{Facility, Formatter3164, LoggerBackend};

type Syslog = syslog::Logger<LoggerBackend, Formatter3164>;

/// How often a lost syslog connection is retried.
const SYSLOG_RETRY: Duration = Duration::from_secs(30);

struct SyslogSink {
    conn: Option<Syslog>,
    last_try: Option<Instant>,
}

/// Lines waiting for the writer thread; beyond this they are dropped.
const LOG_QUEUE: usize = 16_384;
/// How long the writer lets lines gather after writing a batch.
const WRITER_PAUSE: Duration = Duration::from_millis(10);

enum Entry {
    Line(Level, String, SystemTime),
    /// Acknowledged once every line before it is written.
    Flush(Sender<()>),
}

pub struct Logger {
    level: LevelFilter,
    stderr: bool,
    journal: bool,
    use_syslog: bool,
    syslog: Mutex<SyslogSink>,
    file_path: Option<PathBuf>,
    file: Mutex<Option<File>>,
    /// Why the file could not be opened at start-up.
    file_error: Option<String>,
    /// Set once the writer thread runs.
    queue: OnceLock<Sender<Entry>>,
}

/// Lines dropped because the writer thread fell behind (for the metrics).
static DROPPED: AtomicU64 = AtomicU64::new(0);

pub fn dropped_lines() -> u64 {
    DROPPED.load(Ordering::Relaxed)
}

fn connect_syslog() -> Option<Syslog> {
    syslog::unix(Formatter3164 {
        facility: Facility::LOG_DAEMON,
        hostname: None,
        process: "nfdhcpd".into(),
        pid: std::process::id(),
    })
    .ok()
}

/// UTC time as `YYYY-MM-DDTHH:MM:SSZ`, without a date crate.
pub fn utc_timestamp(t: SystemTime) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rem) = ((secs / 86400) as i64, secs % 86400);
    // Civil-from-days (proleptic Gregorian), after H. Hinnant.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

impl Logger {
    fn open_file(path: &PathBuf) -> std::io::Result<File> {
        OpenOptions::new().create(true).append(true).open(path)
    }

    /// Why the log file could not be opened at start-up, if it could not.
    pub fn file_error(&self) -> Option<&str> {
        self.file_error.as_deref()
    }

    /// Gives the log file to the user the daemon switches to, so that it can
    /// be reopened after privileges are dropped.
    pub fn chown_file(&self, uid: u32, gid: u32) {
        if let Some(p) = &self.file_path {
            let _ = std::os::unix::fs::chown(p, Some(uid), Some(gid));
        }
    }

    /// Reopens the log file (after logrotate) and retries syslog. When the
    /// new file cannot be opened the old one is kept. True when a new file
    /// was opened.
    pub fn reopen(&self) -> bool {
        let mut reopened = false;
        if let Some(p) = &self.file_path {
            let mut file = self.file.lock().unwrap_or_else(|e| e.into_inner());
            match Self::open_file(p) {
                Ok(f) => {
                    *file = Some(f);
                    reopened = true;
                }
                Err(e) if file.is_some() => {
                    drop(file);
                    log::warn!(
                        "cannot reopen {}: {e}; still writing the old file",
                        p.display()
                    )
                }
                Err(e) => {
                    drop(file);
                    log::warn!(
                        "cannot open {}: {e}; still logging to syslog only",
                        p.display()
                    )
                }
            }
        }
        if let Ok(mut s) = self.syslog.lock() {
            s.conn = None;
            s.last_try = None;
        }
        reopened
    }

    /// From now on, lines are written by a thread of their own. Called
    /// after the daemon has detached: a thread does not survive fork.
    pub fn start_writer(&'static self) -> std::io::Result<()> {
        let (tx, rx) = bounded(LOG_QUEUE);
        std::thread::Builder::new()
            .name("log".into())
            .spawn(move || self.writer(rx))?;
        let _ = self.queue.set(tx);
        Ok(())
    }

    fn writer(&self, rx: Receiver<Entry>) {
        // Behind the threads that answer: a busy disk or syslog waits for them.
        // SAFETY: setpriority on this thread only; raising niceness needs no privilege.
        unsafe {
            libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, 10);
        }
        let mut reported = 0;
        let mut file_buf = String::new();
        while let Ok(first) = rx.recv() {
            let mut next = Some(first);
            // While lines keep coming, collect them every WRITER_PAUSE instead
            // of being woken for each: a producer only wakes a waiting reader.
            while let Some(first) = next.take() {
                let mut acks = Vec::new();
                for e in std::iter::once(first).chain(rx.try_iter().take(LOG_QUEUE)) {
                    match e {
                        Entry::Line(level, msg, t) => {
                            self.write_line(level, &msg, t, &mut file_buf)
                        }
                        Entry::Flush(ack) => acks.push(ack),
                    }
                }
                let dropped = dropped_lines();
                if dropped > reported {
                    let msg = format!(
                        "{} log lines dropped: the log sinks could not keep up",
                        dropped - reported
                    );
                    reported = dropped;
                    self.write_line(Level::Warn, &msg, SystemTime::now(), &mut file_buf);
                }
                self.write_file(&mut file_buf);
                for a in acks {
                    let _ = a.send(());
                }
                std::thread::sleep(WRITER_PAUSE);
                next = rx.try_recv().ok();
            }
        }
    }

    fn write_line(&self, level: Level, msg: &str, t: SystemTime, file_buf: &mut String) {
        self.to_syslog(level, msg);
        let tag = tag(level);
        if self.file_path.is_some() {
            use std::fmt::Write as _;
            let _ = writeln!(
                file_buf,
                "{} nfdhcpd[{}]: {tag}: {msg}",
                utc_timestamp(t),
                std::process::id()
            );
        }
        if self.journal {
            // sd-daemon(3): the journal takes the priority from the prefix.
            let _ = writeln!(
                std::io::stderr().lock(),
                "<{}>{tag}: {msg}",
                priority(level)
            );
        } else if self.stderr {
            let _ = writeln!(std::io::stderr().lock(), "nfdhcpd: {tag}: {msg}");
        }
    }

    fn write_file(&self, buf: &mut String) {
        if buf.is_empty() {
            return;
        }
        if let Ok(mut g) = self.file.lock() {
            if let Some(f) = g.as_mut() {
                // A full disk must not stop the daemon; the lines are lost.
                let _ = f.write_all(buf.as_bytes());
            }
        }
        buf.clear();
    }

    fn to_syslog(&self, level: Level, msg: &str) {
        if !self.use_syslog {
            return;
        }
        let Ok(mut s) = self.syslog.lock() else {
            return;
        };
        if s.conn.is_none() {
            let due = s.last_try.is_none_or(|t| t.elapsed() >= SYSLOG_RETRY);
            if !due {
                return;
            }
            s.last_try = Some(Instant::now());
            s.conn = connect_syslog();
        }
        let Some(conn) = s.conn.as_mut() else {
            return;
        };
        let r = match level {
            Level::Error => conn.err(msg),
            Level::Warn => conn.warning(msg),
            Level::Info => conn.info(msg),
            Level::Debug | Level::Trace => conn.debug(msg),
        };
        if r.is_err() {
            s.conn = None;
        }
    }
}

impl Log for Logger {
    fn enabled(&self, metadata: &Metadata) -> bool {
        // Libraries' debug chatter (HTTP internals) stays out of the log.
        metadata.level() <= self.level
            && (metadata.level() <= Level::Info || metadata.target().starts_with("nfdhcpd"))
    }

    fn log(&self, record: &Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let msg = record.args().to_string();
        let level = record.level();
        let now = SystemTime::now();
        match self.queue.get() {
            Some(q) => match q.try_send(Entry::Line(level, msg, now)) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                    DROPPED.fetch_add(1, Ordering::Relaxed);
                }
            },
            None => {
                let mut buf = String::new();
                self.write_line(level, &msg, now, &mut buf);
                self.write_file(&mut buf);
            }
        }
    }

    /// Waits (a little) until every line logged so far is written.
    fn flush(&self) {
        if let Some(q) = self.queue.get() {
            let (tx, rx) = bounded(1);
            if q.send_timeout(Entry::Flush(tx), Duration::from_secs(1))
                .is_ok()
            {
                let _ = rx.recv_timeout(Duration::from_secs(2));
            }
        }
    }
}

/// The syslog priority of a level (LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG).
pub fn priority(level: Level) -> u8 {
    match level {
        Level::Error => 3,
        Level::Warn => 4,
        Level::Info => 6,
        Level::Debug | Level::Trace => 7,
    }
}

fn tag(level: Level) -> &'static str {
    match level {
        Level::Error => "error",
        Level::Warn => "warning",
        Level::Info => "info",
        Level::Debug | Level::Trace => "debug",
    }
}

pub struct Options {
    pub debug: bool,
    pub stderr: bool,
    /// stderr is the journal: lines carry their priority as a `<N>` prefix.
    pub journal: bool,
    pub syslog: bool,
    pub file: Option<PathBuf>,
}

/// Installs the logger; returns it so SIGHUP can reopen its file.
pub fn init(opts: Options) -> &'static Logger {
    let level = if opts.debug {
        LevelFilter::Debug
    } else {
        LevelFilter::Info
    };
    let (file, file_error) = match opts.file.as_ref().map(|p| (p, Logger::open_file(p))) {
        None => (None, None),
        Some((_, Ok(f))) => (Some(f), None),
        Some((p, Err(e))) => (
            None,
            Some(format!("cannot open log file {}: {e}", p.display())),
        ),
    };
    let logger: &'static Logger = Box::leak(Box::new(Logger {
        level,
        stderr: opts.stderr,
        journal: opts.stderr && opts.journal,
        use_syslog: opts.syslog,
        syslog: Mutex::new(SyslogSink {
            conn: None,
            last_try: None,
        }),
        file_path: opts.file,
        file: Mutex::new(file),
        file_error,
        queue: OnceLock::new(),
    }));
    // Only fails when a logger is already set, e.g. in tests.
    let _ = log::set_logger(logger);
    log::set_max_level(level);
    logger
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps() {
        assert_eq!(utc_timestamp(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let t = UNIX_EPOCH + Duration::from_secs(1_795_000_000);
        assert_eq!(utc_timestamp(t), "2026-11-18T11:06:40Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(utc_timestamp(leap), "2000-02-29T00:00:00Z");
    }
}
