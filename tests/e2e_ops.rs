//! Operations end to end: the privilege drop seen from /proc, signals, the
//! pid file, detaching, the metrics file and configuration errors. Each test
//! runs the daemon in its own lab namespace with a config written here.

mod common;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;

const MAC0: &str = "aa:6b:39:22:33:44";
const MAC1: &str = "aa:6b:39:22:33:55";

/// A routed lab whose config is written by the test (user, logdir, metrics).
struct OpsLab {
    lab: Lab,
    conf: PathBuf,
    log_dir: PathBuf,
    pid: Option<u32>,
}

impl OpsLab {
    fn new(test: &str, extra_general: &str) -> Option<OpsLab> {
        let mut lab = Lab::new(test)?;
        lab.nfqueue_routed();
        // The daemon reads bindings and writes logs after switching to nobody.
        for d in [lab.tmp.path(), lab.bindings.as_path()] {
            fs::set_permissions(d, fs::Permissions::from_mode(0o755)).unwrap();
        }
        let log_dir = lab.tmp.join("log");
        fs::create_dir_all(&log_dir).unwrap();
        fs::set_permissions(&log_dir, fs::Permissions::from_mode(0o777)).unwrap();
        let conf = lab.tmp.join("ops.conf");
        let text = format!(
            "[general]\npidfile = {pid}\ndatapath = {data}\nlogdir = {logs}\n{extra_general}\n\
             [dhcp]\nserver_ip = 192.0.2.1\nnameservers = 192.0.2.2\ndomain = example.com\n",
            pid = lab.tmp.join("run/nfdhcpd.pid").display(),
            data = lab.bindings.display(),
            logs = log_dir.display(),
        );
        fs::write(&conf, text).unwrap();
        Some(OpsLab {
            lab,
            conf,
            log_dir,
            pid: None,
        })
    }

    fn pidfile(&self) -> PathBuf {
        self.lab.tmp.join("run/nfdhcpd.pid")
    }

    fn log(&self) -> String {
        common::settled_read(&self.log_dir.join("nfdhcpd.log"))
    }

    fn stderr_path(&self) -> PathBuf {
        self.lab.tmp.join("ops-stderr.log")
    }

    fn stderr(&self) -> String {
        common::settled_read(&self.stderr_path())
    }

    /// Starts `nfdhcpd -f -d` and waits for "ready:" in its log file.
    fn start(&mut self) -> u32 {
        self.start_env(&[])
    }

    /// The same, with these environment variables set.
    fn start_env(&mut self, env: &[(&str, String)]) -> u32 {
        let bin = env!("CARGO_BIN_EXE_nfdhcpd");
        let mut cmd = self
            .lab
            .host
            .command(&[bin, "-f", "-d", "-c", self.conf.to_str().unwrap()]);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let pid = self.lab.host.spawn_cmd(cmd, &self.stderr_path());
        self.pid = Some(pid);
        let ready = poll(READY_TIMEOUT, || {
            if self.log().contains("ready:") {
                return Some(true);
            }
            self.lab.host.exited(pid).map(|_| false)
        });
        assert_eq!(
            ready,
            Some(true),
            "not ready; stderr:\n{}\nlog:\n{}",
            self.stderr(),
            self.log()
        );
        pid
    }

    fn wait_log(&self, needle: &str) {
        let found = poll(Duration::from_secs(5), || {
            self.log().contains(needle).then_some(())
        });
        assert!(found.is_some(), "no {needle:?} in log:\n{}", self.log());
    }
}

fn signal(pid: u32, sig: &str) {
    let st = Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .status()
        .unwrap();
    assert!(st.success(), "kill -{sig} {pid}");
}

/// After start-up the daemon is nobody with CAP_NET_ADMIN and CAP_NET_RAW
/// only, and still answers, also for a binding that appears afterwards.
#[test]
fn runs_as_nobody_with_two_capabilities() {
    let Some(mut ops) = OpsLab::new("runs_as_nobody", "user = nobody") else {
        return;
    };
    let g0 = ops.lab.guest("tap0", MAC0);
    ops.lab
        .write_binding(&Binding::new("tap0", "192.0.2.100", MAC0));
    let pid = ops.start();
    ops.wait_log("running as nobody");

    let nobody = nix::unistd::User::from_name("nobody")
        .unwrap()
        .expect("user nobody");
    // Capabilities are per thread: every one of them, the log writer and
    // the queue threads included, has the same two and nothing else.
    assert_every_thread(pid, nobody.uid.as_raw(), nobody.gid.as_raw(), Some(NO_CAPS));
    let l = g0.dhclient(&ClientOpts::default());
    assert_eq!(l.expect_bound().ip(), Some("192.0.2.100".parse().unwrap()));

    // A binding and an interface that come after the switch.
    let g1 = ops.lab.guest("tap1", MAC1);
    ops.lab
        .write_binding(&Binding::new("tap1", "192.0.2.101", MAC1));
    ops.wait_log("binding tap1 added");
    let l = g1.udhcpc(&ClientOpts::default());
    assert_eq!(l.expect_bound().ip(), Some("192.0.2.101".parse().unwrap()));
}

/// SIGHUP reopens the log file (after a rotation) and rescans; SIGUSR1 logs
/// the binding table and counters; SIGTERM exits 0 within 2 s and removes
/// the pid file.
#[test]
fn signals() {
    let Some(mut ops) = OpsLab::new("signals", "user = nobody") else {
        return;
    };
    let g0 = ops.lab.guest("tap0", MAC0);
    ops.lab
        .write_binding(&Binding::new("tap0", "192.0.2.100", MAC0));
    let pid = ops.start();
    assert_eq!(
        fs::read_to_string(ops.pidfile()).unwrap().trim(),
        pid.to_string()
    );
    g0.dhclient(&ClientOpts::default()).expect_bound();

    signal(pid, "USR1");
    ops.wait_log("accepted_unknown ");
    let log = ops.log();
    assert!(log.contains("binding tap0: mac aa:6b:39:22:33:44"), "{log}");
    assert!(log.contains("answers: DHCPACK 1, DHCPOFFER 1"), "{log}");
    assert!(log.contains("requests: dhcp 2"), "{log}");
    assert!(
        log.contains("queue 42 (dhcp): received 2 verdict_errors 0 stale_verdicts 0"),
        "{log}"
    );

    // logrotate: move the file away, HUP, the daemon writes a new one.
    let rotated = ops.log_dir.join("nfdhcpd.log.1");
    fs::rename(ops.log_dir.join("nfdhcpd.log"), &rotated).unwrap();
    signal(pid, "HUP");
    ops.wait_log("SIGHUP: log file reopened, rescanning");
    ops.wait_log("1 bindings in force");
    assert!(!fs::read_to_string(&rotated).unwrap().contains("SIGHUP"));

    let t = Instant::now();
    let st = ops.lab.host.stop(pid, Duration::from_secs(2));
    let took = t.elapsed();
    match st {
        Some(st) => assert!(st.success(), "exit status {st}"),
        None => panic!("still running after SIGTERM; log:\n{}", ops.log()),
    }
    assert!(took < Duration::from_secs(2), "took {took:?}");
    assert!(!ops.pidfile().exists(), "pid file left behind");
    assert!(ops.log().contains("SIGTERM received"));
}

/// A second daemon refuses to start while the first holds the pid file; a
/// stale pid file (dead pid) is replaced.
#[test]
fn pid_file_guards_one_instance() {
    let Some(mut ops) = OpsLab::new("pid_file_guard", "") else {
        return;
    };
    let pid = ops.start();
    let bin = env!("CARGO_BIN_EXE_nfdhcpd");
    let out = ops
        .lab
        .host
        .command(&[bin, "-f", "-c", ops.conf.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("another nfdhcpd (pid {pid}) holds")),
        "{err}"
    );
    ops.lab.host.stop(pid, Duration::from_secs(2)).unwrap();

    // A pid that cannot be alive; a fresh log so "ready:" is the new one's.
    fs::create_dir_all(ops.pidfile().parent().unwrap()).unwrap();
    fs::write(ops.pidfile(), "4194304\n").unwrap();
    fs::remove_file(ops.log_dir.join("nfdhcpd.log")).unwrap();
    let pid = ops.start();
    assert_eq!(
        fs::read_to_string(ops.pidfile()).unwrap().trim(),
        pid.to_string()
    );
}

/// Without -f the daemon detaches: the command returns 0 at once, the pid
/// file names the background process, and that process answers.
#[test]
fn detaches_without_foreground() {
    let Some(ops) = OpsLab::new("detaches", "") else {
        return;
    };
    let g0 = ops.lab.guest("tap0", MAC0);
    ops.lab
        .write_binding(&Binding::new("tap0", "192.0.2.100", MAC0));
    let bin = env!("CARGO_BIN_EXE_nfdhcpd");
    let st = ops
        .lab
        .host
        .command(&[bin, "-c", ops.conf.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(st.success(), "{st}");
    let pid: u32 = poll(Duration::from_secs(5), || {
        fs::read_to_string(ops.pidfile())
            .ok()
            .and_then(|s| s.trim().parse().ok())
    })
    .expect("no pid file");
    ops.wait_log("ready:");
    assert_eq!(
        proc_field(
            &fs::read_to_string(format!("/proc/{pid}/status")).unwrap(),
            "Name"
        ),
        "nfdhcpd"
    );
    // Detached: another session than ours, no controlling terminal.
    let stat = |p: &str| -> Vec<String> {
        let s = fs::read_to_string(format!("/proc/{p}/stat")).unwrap();
        s.rsplit(')')
            .next()
            .unwrap()
            .split_whitespace()
            .map(str::to_string)
            .collect()
    };
    let (daemon, me) = (stat(&pid.to_string()), stat("self"));
    assert_ne!(daemon[3], me[3], "session\n{daemon:?}");
    assert_eq!(daemon[4], "0", "controlling terminal\n{daemon:?}");
    let l = g0.dhclient(&ClientOpts::default());
    assert_eq!(l.expect_bound().ip(), Some("192.0.2.100".parse().unwrap()));
    signal(pid, "TERM");
    let gone = poll(Duration::from_secs(2), || {
        (!Path::new(&format!("/proc/{pid}")).exists()).then_some(())
    });
    assert!(gone.is_some(), "daemon still running after SIGTERM");
}

/// The metrics file carries the counters in the Prometheus text format.
#[test]
fn metrics_file() {
    let Some(mut probe) = OpsLab::new("metrics_file", "") else {
        return;
    };
    let metrics = probe.lab.tmp.join("nfdhcpd.prom");
    let conf = fs::read_to_string(&probe.conf).unwrap().replace(
        "[dhcp]",
        &format!("metrics_file = {}\n\n[dhcp]", metrics.display()),
    );
    fs::write(&probe.conf, conf).unwrap();
    let g0 = probe.lab.guest("tap0", MAC0);
    probe
        .lab
        .write_binding(&Binding::new("tap0", "192.0.2.100", MAC0));
    probe.start();
    g0.dhclient(&ClientOpts::default()).expect_bound();
    let text = poll(Duration::from_secs(12), || {
        let t = fs::read_to_string(&metrics).ok()?;
        t.contains("nfdhcpd_answers_total{type=\"DHCPACK\"} 1")
            .then_some(t)
    })
    .unwrap_or_else(|| {
        panic!(
            "metrics never showed the ACK: {:?}",
            fs::read_to_string(&metrics)
        )
    });
    assert!(
        text.contains("# TYPE nfdhcpd_bindings gauge\nnfdhcpd_bindings 1\n"),
        "{text}"
    );
    assert!(
        text.contains("nfdhcpd_queue_received_total{queue=\"42\"} 2"),
        "{text}"
    );
    assert!(
        text.contains("nfdhcpd_queue_verdict_errors_total{queue=\"42\"} 0"),
        "{text}"
    );
}

/// A bad value is one line naming file, section, key and problem; exit 2.
#[test]
fn config_errors_exit_2() {
    let tmp = TempDir::new("config_errors");
    let conf = tmp.join("bad.conf");
    fs::write(&conf, "[dhcp]\nlease_lifetime = soon # one week\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_nfdhcpd"))
        .args(["--check-config", "-c", conf.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    let line = err.trim_end();
    assert!(
        line.starts_with(&format!(
            "nfdhcpd: {}: [dhcp] lease_lifetime: ",
            conf.display()
        )),
        "{line}"
    );
    assert!(line.contains("soon"), "{line}");

    let good = tmp.join("good.conf");
    fs::write(&good, include_str!("../etc/nfdhcpd.conf")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_nfdhcpd"))
        .args(["--check-config", "-c", good.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");

    let out = Command::new(env!("CARGO_BIN_EXE_nfdhcpd"))
        .args(["-c", tmp.join("missing.conf").to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}

/// Landlock confines the running daemon to its own directories: with
/// `logdir` and `datapath` made symlinks and pointed elsewhere after the
/// start, SIGHUP cannot create the log file in the new (world-writable)
/// place nor read bindings there, though nobody may do both; the daemon
/// keeps its old log file and its bindings, and keeps answering.
#[test]
fn landlock_confines_files_to_its_directories() {
    let Some(mut ops) = OpsLab::new("landlock_confines", "user = nobody") else {
        return;
    };
    let tmp = ops.lab.tmp.path().to_path_buf();
    // logdir -> log-a, datapath -> bindings-a, through symlinks.
    let log_a = tmp.join("log-a");
    fs::rename(&ops.log_dir, &log_a).unwrap();
    std::os::unix::fs::symlink(&log_a, &ops.log_dir).unwrap();
    let data_a = tmp.join("bindings-a");
    fs::rename(&ops.lab.bindings, &data_a).unwrap();
    std::os::unix::fs::symlink(&data_a, &ops.lab.bindings).unwrap();
    let g0 = ops.lab.guest("tap0", MAC0);
    fs::write(
        data_a.join("tap0"),
        Binding::new("tap0", "192.0.2.100", MAC0).text(),
    )
    .unwrap();
    let pid = ops.start();
    ops.wait_log("file access confined to the daemon's directories (Landlock)");
    ops.wait_log("1 bindings in force");

    // Elsewhere: a world-writable log directory and a readable binding
    // (outside the binding directory's parent, which stays readable).
    let outside = TempDir::new("landlock-outside");
    fs::set_permissions(outside.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let log_b = outside.join("log-b");
    let data_b = outside.join("bindings-b");
    for d in [&log_b, &data_b] {
        fs::create_dir_all(d).unwrap();
        fs::set_permissions(d, fs::Permissions::from_mode(0o1777)).unwrap();
    }
    let other = data_b.join("tap1");
    fs::write(&other, Binding::new("tap1", "192.0.2.101", MAC1).text()).unwrap();
    fs::set_permissions(&other, fs::Permissions::from_mode(0o644)).unwrap();
    for (link, target) in [(&ops.log_dir, &log_b), (&ops.lab.bindings, &data_b)] {
        let tmp_link = tmp.join("new-link");
        std::os::unix::fs::symlink(target, &tmp_link).unwrap();
        fs::rename(&tmp_link, link).unwrap();
    }
    // What the daemon's user could do without the sandbox.
    let probe = Command::new("setpriv")
        .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", "cat"])
        .arg(&other)
        .output()
        .unwrap();
    assert!(probe.status.success(), "nobody cannot read {other:?}");

    signal(pid, "HUP");
    let old_log = || common::settled_read(&log_a.join("nfdhcpd.log"));
    let found = poll(Duration::from_secs(5), || {
        let l = old_log();
        (l.contains("still writing the old file") && l.contains("cannot rescan")).then_some(())
    });
    assert!(found.is_some(), "log:\n{}", old_log());
    assert!(
        !log_b.join("nfdhcpd.log").exists(),
        "a log file was created outside logdir"
    );
    let l = old_log();
    assert!(l.contains("the bindings in force stay"), "{l}");
    assert!(
        !l.contains("binding tap1"),
        "read a binding outside datapath:\n{l}"
    );
    // Still answering from the bindings it had.
    let lease = g0.udhcpc(&ClientOpts::default());
    assert_eq!(
        lease.expect_bound().ip(),
        Some("192.0.2.100".parse().unwrap())
    );
}

/// What a daemon told the notification socket, with when.
struct Notes {
    got: Arc<Mutex<Vec<(Instant, String)>>>,
}

impl Notes {
    /// Reads `sock` in a thread of its own until the test ends.
    fn listen(sock: UnixDatagram) -> Notes {
        let got = Arc::new(Mutex::new(Vec::new()));
        let g = got.clone();
        sock.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            loop {
                match sock.recv(&mut buf) {
                    Ok(n) => {
                        let m = String::from_utf8_lossy(&buf[..n]).into_owned();
                        g.lock().unwrap().push((Instant::now(), m));
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        if Arc::strong_count(&g) == 1 {
                            return;
                        }
                    }
                    Err(_) => return,
                }
            }
        });
        Notes { got }
    }

    fn all(&self) -> Vec<(Instant, String)> {
        self.got.lock().unwrap().clone()
    }

    /// Waits for a message after `since` that contains `needle`; its text.
    fn wait(&self, needle: &str, since: Instant, limit: Duration) -> String {
        let found = poll(limit, || {
            self.all()
                .into_iter()
                .find(|(t, m)| *t >= since && m.contains(needle))
                .map(|(_, m)| m)
        });
        found.unwrap_or_else(|| panic!("no {needle:?} within {limit:?}: {:?}", self.all()))
    }

    fn pings_between(&self, from: Instant, to: Instant) -> usize {
        self.all()
            .iter()
            .filter(|(t, m)| *t >= from && *t <= to && m == "WATCHDOG=1")
            .count()
    }
}

/// A lab running as nobody with guest tap0 bound, and the socket the
/// daemon's notifications are read from.
fn notified_lab(test: &str) -> Option<(OpsLab, Guest, PathBuf, Notes)> {
    let ops = OpsLab::new(test, "user = nobody")?;
    let g0 = ops.lab.guest("tap0", MAC0);
    ops.lab
        .write_binding(&Binding::new("tap0", "192.0.2.100", MAC0));
    let path = ops.lab.tmp.join("notify.sock");
    let notes = Notes::listen(UnixDatagram::bind(&path).unwrap());
    Some((ops, g0, path, notes))
}

/// Started the way systemd starts it (NOTIFY_SOCKET, WATCHDOG_USEC,
/// JOURNAL_STREAM naming its stderr): READY=1 with a STATUS= line once
/// the queue and the binding are in force, the watchdog fed while idle,
/// RELOADING=1 with MONOTONIC_USEC and READY=1 around a SIGHUP rescan,
/// STOPPING=1 at SIGTERM; stderr lines carry their syslog priority.
#[test]
fn systemd_notification_protocol() {
    let Some((mut ops, g0, path, notes)) = notified_lab("sd_notify") else {
        return;
    };
    // The daemon's stderr, as systemd names it in JOURNAL_STREAM.
    fs::write(ops.stderr_path(), "").unwrap();
    let md = fs::metadata(ops.stderr_path()).unwrap();
    let t0 = Instant::now();
    let pid = ops.start_env(&[
        ("NOTIFY_SOCKET", path.display().to_string()),
        ("WATCHDOG_USEC", "4000000".into()),
        ("JOURNAL_STREAM", format!("{}:{}", md.dev(), md.ino())),
    ]);
    let ready = notes.wait("READY=1", t0, Duration::from_secs(5));
    assert!(
        ready.contains("STATUS=1 bindings, 1 queues, 0 answers/min"),
        "{ready}"
    );
    // Idle for two intervals: every thread wakes up to show it is alive.
    let idle = Instant::now();
    std::thread::sleep(Duration::from_secs(8));
    let pings = notes.pings_between(idle, Instant::now());
    assert!(pings >= 4, "{pings} WATCHDOG=1 in 8 s: {:?}", notes.all());
    assert!(!ops.log().contains("shows no progress"), "{}", ops.log());
    g0.dhclient(&ClientOpts::default()).expect_bound();

    let hup = Instant::now();
    signal(pid, "HUP");
    let reloading = notes.wait("RELOADING=1", hup, Duration::from_secs(5));
    assert!(reloading.contains("\nMONOTONIC_USEC="), "{reloading}");
    let after = notes.wait("READY=1", hup, Duration::from_secs(5));
    assert!(after.contains("STATUS=1 bindings"), "{after}");

    // A warning, at warning priority on stderr.
    fs::write(ops.lab.bindings.join("tap9"), "MAC=not-a-mac\n").unwrap();
    ops.wait_log("bindings/tap9: MAC");
    let term = Instant::now();
    signal(pid, "TERM");
    notes.wait("STOPPING=1", term, Duration::from_secs(2));
    assert!(ops.lab.host.stop(pid, Duration::from_secs(2)).is_some());
    let stderr = ops.stderr();
    assert!(stderr.contains("<6>info: ready: queues"), "{stderr}");
    assert!(stderr.contains("<4>warning: binding file "), "{stderr}");
    assert!(
        stderr.contains(&format!("<6>info: tap0 {MAC0} DHCPREQUEST")),
        "{stderr}"
    );
    assert!(!stderr.contains("nfdhcpd: info:"), "{stderr}");
}

/// A queue thread that stops making progress (stalled on purpose after its
/// first packet) starves the watchdog: the stall is named in the log and no
/// WATCHDOG=1 follows, so systemd restarts the daemon.
#[test]
fn watchdog_starves_when_a_queue_thread_stalls() {
    let Some((mut ops, g0, path, notes)) = notified_lab("sd_watchdog") else {
        return;
    };
    let t0 = Instant::now();
    let pid = ops.start_env(&[
        ("NOTIFY_SOCKET", path.display().to_string()),
        ("WATCHDOG_USEC", "4000000".into()),
        ("NFDHCPD_TEST_STALL_QUEUE", "42".into()),
    ]);
    notes.wait("READY=1", t0, Duration::from_secs(5));
    notes.wait("WATCHDOG=1", t0, Duration::from_secs(5));
    // The request wedges the queue thread: no answer.
    let lease = g0.udhcpc(&ClientOpts {
        timeout: 2,
        ..ClientOpts::default()
    });
    assert!(!lease.bound, "answered by a stalled queue");
    ops.wait_log("queue 42: stalled on purpose");
    let found = poll(Duration::from_secs(10), || {
        ops.log()
            .contains("thread nfq-42 shows no progress")
            .then_some(Instant::now())
    });
    let starved = found.unwrap_or_else(|| panic!("stall not noticed:\n{}", ops.log()));
    std::thread::sleep(Duration::from_secs(6));
    let pings = notes.pings_between(starved, Instant::now());
    assert_eq!(pings, 0, "watchdog still fed: {:?}", notes.all());
    assert!(
        ops.lab.host.exited(pid).is_none(),
        "daemon exited by itself"
    );
}
