//! The program under test, the daemon or the echo server, running in a
//! host namespace: started, watched through /proc, stopped by pid.

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::lab::{self, alive, Netns};
use crate::Res;

/// How long a server gets to say it is ready.
const READY_TIMEOUT: Duration = Duration::from_secs(15);

/// A log file read as it grows.
pub struct LogTail {
    path: PathBuf,
    offset: u64,
    partial: String,
}

impl LogTail {
    pub fn new(path: &Path) -> LogTail {
        LogTail {
            path: path.to_path_buf(),
            offset: 0,
            partial: String::new(),
        }
    }

    /// Skips what is in the file now.
    pub fn skip_to_end(&mut self) {
        self.offset = fs::metadata(&self.path).map(|m| m.len()).unwrap_or(0);
        self.partial.clear();
    }

    /// The complete lines written since the last call.
    pub fn new_lines(&mut self) -> Vec<String> {
        let Ok(mut f) = fs::File::open(&self.path) else {
            return Vec::new();
        };
        if f.seek(SeekFrom::Start(self.offset)).is_err() {
            return Vec::new();
        }
        let mut buf = String::new();
        let n = f.read_to_string(&mut buf).unwrap_or(0);
        self.offset += n as u64;
        self.partial.push_str(&buf);
        let mut lines: Vec<String> = self.partial.split('\n').map(str::to_string).collect();
        // The last piece has no newline yet.
        self.partial = lines.pop().unwrap_or_default();
        lines
    }

    /// Polls every `every` until a line satisfies `f` (returned), or `timeout`.
    pub fn wait_for(
        &mut self,
        timeout: Duration,
        every: Duration,
        mut f: impl FnMut(&str) -> bool,
    ) -> Option<String> {
        let start = Instant::now();
        loop {
            if let Some(l) = self.new_lines().into_iter().find(|l| f(l)) {
                return Some(l);
            }
            if start.elapsed() > timeout {
                return None;
            }
            thread::sleep(every);
        }
    }
}

/// CPU time and context switches of one thread, or summed over a process.
#[derive(Debug, Clone, Copy, Default)]
pub struct ThreadUsage {
    /// utime + stime, in clock ticks.
    pub ticks: u64,
    pub voluntary: u64,
    pub involuntary: u64,
}

impl ThreadUsage {
    pub fn minus(self, o: ThreadUsage) -> ThreadUsage {
        ThreadUsage {
            ticks: self.ticks.saturating_sub(o.ticks),
            voluntary: self.voluntary.saturating_sub(o.voluntary),
            involuntary: self.involuntary.saturating_sub(o.involuntary),
        }
    }

    pub fn add(&mut self, o: ThreadUsage) {
        self.ticks += o.ticks;
        self.voluntary += o.voluntary;
        self.involuntary += o.involuntary;
    }

    pub fn cpu_secs(&self) -> f64 {
        self.ticks as f64 / clock_ticks()
    }
}

fn clock_ticks() -> f64 {
    // SAFETY: plain sysconf.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// A snapshot of a process: per-thread usage by thread name, and memory.
#[derive(Debug, Clone, Default)]
pub struct Usage {
    pub threads: BTreeMap<String, ThreadUsage>,
    pub rss_kb: u64,
    pub hwm_kb: u64,
}

impl Usage {
    pub fn total(&self) -> ThreadUsage {
        let mut t = ThreadUsage::default();
        for u in self.threads.values() {
            t.add(*u);
        }
        t
    }

    /// Per-thread difference `self - earlier` (threads that left count zero).
    pub fn since(&self, earlier: &Usage) -> BTreeMap<String, ThreadUsage> {
        self.threads
            .iter()
            .map(|(k, v)| {
                let before = earlier.threads.get(k).copied().unwrap_or_default();
                (k.clone(), v.minus(before))
            })
            .collect()
    }
}

fn status_kb(status: &str, key: &str) -> u64 {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn thread_usage(dir: &Path) -> Option<(String, ThreadUsage)> {
    let stat = fs::read_to_string(dir.join("stat")).ok()?;
    // The name is in parentheses and may hold spaces; fields follow the last ')'.
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let name = stat[open + 1..close].to_string();
    let f: Vec<&str> = stat[close + 2..].split_whitespace().collect();
    // Fields 14 and 15 of stat(5) (utime, stime); f[0] is field 3.
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    let status = fs::read_to_string(dir.join("status")).ok()?;
    Some((
        name,
        ThreadUsage {
            ticks: utime + stime,
            voluntary: status_kb(&status, "voluntary_ctxt_switches:"),
            involuntary: status_kb(&status, "nonvoluntary_ctxt_switches:"),
        },
    ))
}

/// Usage of process `pid` now (empty if it is gone).
pub fn usage(pid: i32) -> Usage {
    let mut u = Usage::default();
    let base = PathBuf::from(format!("/proc/{pid}"));
    if let Ok(rd) = fs::read_dir(base.join("task")) {
        for e in rd.flatten() {
            if let Some((name, t)) = thread_usage(&e.path()) {
                // Threads of the same name (backend workers) add up.
                u.threads.entry(name).or_default().add(t);
            }
        }
    }
    if let Ok(s) = fs::read_to_string(base.join("status")) {
        u.rss_kb = status_kb(&s, "VmRSS:");
        u.hwm_kb = status_kb(&s, "VmHWM:");
    }
    u
}

/// A running daemon or echo server.
pub struct Server {
    pub label: &'static str,
    pub pid: i32,
    /// The echo server is our child; the daemon detaches (and is reaped
    /// through the subreaper).
    child: Option<Child>,
    /// Where its log lines go.
    pub log: PathBuf,
    /// From exec to the ready line.
    pub ready_after: Duration,
}

impl Server {
    /// Starts `nfdhcpd -c config` (detaching, as in production) in `ns` and
    /// waits for `ready:` in its log file, polled every millisecond.
    pub fn daemon(ns: &Netns, bin: &Path, config: &Path, dir: &Path) -> Res<Server> {
        let log = dir.join("nfdhcpd.log");
        let pidfile = dir.join("nfdhcpd.pid");
        let launch_log = fs::File::create(dir.join("launch.log")).map_err(|e| e.to_string())?;
        let mut tail = LogTail::new(&log);
        tail.skip_to_end();
        let launch = lab::launch_guard();
        let start = Instant::now();
        let status = ns
            .command(&[&bin.to_string_lossy(), "-c", &config.to_string_lossy()])
            .stdout(launch_log.try_clone().map_err(|e| e.to_string())?)
            .stderr(launch_log)
            .status()
            .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
        if !status.success() {
            return Err(format!(
                "nfdhcpd failed to start ({status}): {}{}",
                fs::read_to_string(dir.join("launch.log")).unwrap_or_default(),
                fs::read_to_string(&log).unwrap_or_default()
            ));
        }
        let ready = tail.wait_for(READY_TIMEOUT, Duration::from_millis(1), |l| {
            l.contains("ready:")
        });
        let ready_after = start.elapsed();
        let pid: i32 = fs::read_to_string(&pidfile)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .ok_or_else(|| format!("no pid in {}", pidfile.display()))?;
        lab::register_pid(pid);
        drop(launch);
        let s = Server {
            label: "daemon",
            pid,
            child: None,
            log: log.clone(),
            ready_after,
        };
        if ready.is_none() {
            return Err(format!(
                "nfdhcpd not ready after {READY_TIMEOUT:?}: {}",
                fs::read_to_string(&log).unwrap_or_default()
            ));
        }
        Ok(s)
    }

    /// Starts this program's `echo` subcommand in `ns`; it prints `ready`
    /// once its queues are bound.
    pub fn echo(
        ns: &Netns,
        config: &Path,
        binding: &Path,
        dir: &Path,
        netlink_rcvbuf: Option<i32>,
    ) -> Res<Server> {
        let exe = std::env::current_exe().map_err(|e| format!("own executable: {e}"))?;
        let log = dir.join("echo.log");
        let f = fs::File::create(&log).map_err(|e| e.to_string())?;
        let launch = lab::launch_guard();
        let start = Instant::now();
        let exe = exe.to_string_lossy();
        let config = config.to_string_lossy();
        let binding = binding.to_string_lossy();
        let mut argv = vec![&*exe, "echo", "--config", &*config, "--binding", &*binding];
        let rcvbuf = netlink_rcvbuf.map(|b| b.to_string());
        if let Some(b) = &rcvbuf {
            argv.extend(["--netlink-rcvbuf", b.as_str()]);
        }
        let child = ns
            .command(&argv)
            .stdout(f.try_clone().map_err(|e| e.to_string())?)
            .stderr(f)
            .stdin(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start the echo server: {e}"))?;
        lab::register_pid(child.id() as i32);
        drop(launch);
        let mut s = Server {
            label: "echo",
            pid: child.id() as i32,
            child: Some(child),
            log: log.clone(),
            ready_after: Duration::ZERO,
        };
        let mut tail = LogTail::new(&log);
        let ready = tail.wait_for(READY_TIMEOUT, Duration::from_millis(1), |l| l == "ready");
        s.ready_after = start.elapsed();
        if ready.is_none() {
            return Err(format!(
                "echo server not ready: {}",
                fs::read_to_string(&log).unwrap_or_default()
            ));
        }
        Ok(s)
    }

    pub fn usage(&self) -> Usage {
        usage(self.pid)
    }

    /// Gives every thread the nice value `n` (Linux keeps it per thread;
    /// the servers start all their threads before they say ready).
    pub fn renice(&self, n: i32) {
        if let Ok(rd) = fs::read_dir(format!("/proc/{}/task", self.pid)) {
            for e in rd.flatten() {
                if let Some(tid) = e.file_name().to_str().and_then(|t| t.parse::<u32>().ok()) {
                    // SAFETY: setpriority on a thread of the server we started.
                    unsafe { libc::setpriority(libc::PRIO_PROCESS, tid, n) };
                }
            }
        }
    }

    pub fn alive(&self) -> bool {
        alive(self.pid)
    }

    /// Sends a signal (SIGUSR1: the daemon logs its counters).
    pub fn signal(&self, sig: libc::c_int) {
        // SAFETY: plain kill(2) on the pid we started.
        unsafe { libc::kill(self.pid, sig) };
    }

    /// SIGTERM, up to 3 s, then SIGKILL.
    pub fn stop(&mut self) {
        if self.pid <= 0 {
            return;
        }
        lab::terminate(self.pid, Duration::from_secs(3));
        if let Some(mut c) = self.child.take() {
            let _ = c.wait();
        }
        lab::unregister_pid(self.pid);
        self.pid = 0;
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}
