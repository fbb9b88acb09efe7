//! Log sinks: syslog (facility daemon, ident nfdhcpd) always, `logdir/nfdhcpd.log`
//! when configured (reopened on SIGHUP), stderr in the foreground.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use log::{Level, LevelFilter, Log, Metadata, Record};
use syslog::{Facility, Formatter3164, LoggerBackend};

type Syslog = syslog::Logger<LoggerBackend, Formatter3164>;

/// How often a lost syslog connection is retried.
const SYSLOG_RETRY: Duration = Duration::from_secs(30);

struct SyslogSink {
    conn: Option<Syslog>,
    last_try: Option<Instant>,
}

pub struct Logger {
    level: LevelFilter,
    stderr: bool,
    use_syslog: bool,
    syslog: Mutex<SyslogSink>,
    file_path: Option<PathBuf>,
    file: Mutex<Option<File>>,
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
    fn open_file(path: &PathBuf) -> Option<File> {
        OpenOptions::new().create(true).append(true).open(path).ok()
    }

    /// Gives the log file to the user the daemon switches to, so that it can
    /// be reopened after privileges are dropped.
    pub fn chown_file(&self, uid: u32, gid: u32) {
        if let Some(p) = &self.file_path {
            let _ = std::os::unix::fs::chown(p, Some(uid), Some(gid));
        }
    }

    /// Reopens the log file (after logrotate) and retries syslog. When the
    /// new file cannot be opened the old one is kept.
    pub fn reopen(&self) {
        if let Some(p) = &self.file_path {
            match Self::open_file(p) {
                Some(f) => {
                    if let Ok(mut g) = self.file.lock() {
                        *g = Some(f);
                    }
                }
                None => log::warn!("cannot reopen {}; still writing the old file", p.display()),
            }
        }
        if let Ok(mut s) = self.syslog.lock() {
            s.conn = None;
            s.last_try = None;
        }
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
        self.to_syslog(level, &msg);
        let tag = match level {
            Level::Error => "error",
            Level::Warn => "warning",
            Level::Info => "info",
            Level::Debug | Level::Trace => "debug",
        };
        if self.file_path.is_some() {
            if let Ok(mut g) = self.file.lock() {
                if let Some(f) = g.as_mut() {
                    let line = format!(
                        "{} nfdhcpd[{}]: {tag}: {msg}\n",
                        utc_timestamp(SystemTime::now()),
                        std::process::id()
                    );
                    // A full disk must not stop the daemon; the line is lost.
                    let _ = f.write_all(line.as_bytes());
                }
            }
        }
        if self.stderr {
            let _ = writeln!(std::io::stderr().lock(), "nfdhcpd: {tag}: {msg}");
        }
    }

    fn flush(&self) {}
}

pub struct Options {
    pub debug: bool,
    pub stderr: bool,
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
    let file = opts.file.as_ref().and_then(Logger::open_file);
    let logger: &'static Logger = Box::leak(Box::new(Logger {
        level,
        stderr: opts.stderr,
        use_syslog: opts.syslog,
        syslog: Mutex::new(SyslogSink {
            conn: None,
            last_try: None,
        }),
        file_path: opts.file,
        file: Mutex::new(file),
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
