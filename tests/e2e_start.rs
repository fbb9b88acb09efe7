//! Start-up as operators do it: every way of naming the user (and none),
//! starts without root, detached starts that fail after the fork, a queue
//! another program holds, and configuration files that are not what they
//! should be. Each daemon runs in a lab namespace of its own; what it ends
//! up as is read from /proc for every thread, and a guest must still get
//! its lease.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use nix::unistd::{Gid, Group, Uid, User};

const MAC0: &str = "aa:6b:39:22:33:44";
const IP0: &str = "192.0.2.100";

/// A uid (and gid) without a passwd (group) entry, 4242 or the next free one.
fn unnamed_id() -> u32 {
    (4242..5000)
        .find(|&n| {
            User::from_uid(Uid::from_raw(n)).ok().flatten().is_none()
                && Group::from_gid(Gid::from_raw(n)).ok().flatten().is_none()
        })
        .expect("a free uid")
}

/// A routed lab with one guest and its binding, whose files any user can
/// read and whose scratch directory any user can write (the pid file).
fn lab_with_guest(test: &str) -> Option<(Lab, Guest)> {
    let mut lab = Lab::new(test)?;
    lab.nfqueue_routed();
    fs::set_permissions(lab.tmp.path(), fs::Permissions::from_mode(0o1777)).unwrap();
    fs::set_permissions(&lab.bindings, fs::Permissions::from_mode(0o755)).unwrap();
    let g = lab.guest("tap0", MAC0);
    lab.write_binding(&Binding::new("tap0", IP0, MAC0));
    Some((lab, g))
}

/// Starts the daemon with `general` lines, checks every thread and the
/// guest's lease, and stops it (SIGTERM, exit 0 within 2 s).
fn runs_as(test: &str, general: &str, uid: u32, gid: u32) -> Option<Lab> {
    let (mut lab, g) = lab_with_guest(test)?;
    lab.start_daemon_with(&DaemonConfig {
        general: general.into(),
        ..Default::default()
    });
    let pid = lab.daemon_pid();
    assert_every_thread(pid, uid, gid, Some(NO_CAPS));
    let l = g.dhclient(&ClientOpts::default());
    assert_eq!(l.expect_bound().ip(), Some(IP0.parse().unwrap()));
    assert!(
        lab.daemon_log().contains(&format!(
            "(uid {uid}, gid {gid}) with CAP_NET_ADMIN and CAP_NET_RAW only"
        )),
        "{}",
        lab.daemon_log()
    );
    lab.stop_daemon();
    Some(lab)
}

fn nobody() -> (u32, u32) {
    let u = User::from_name("nobody").unwrap().expect("user nobody");
    (u.uid.as_raw(), u.gid.as_raw())
}

#[test]
fn user_root_by_name() {
    runs_as("user_root_by_name", "user = root", 0, 0);
}

#[test]
fn user_root_by_uid() {
    runs_as("user_root_by_uid", "user = 0", 0, 0);
}

#[test]
fn user_by_name() {
    let (uid, gid) = nobody();
    runs_as("user_by_name", "user = nobody", uid, gid);
}

#[test]
fn user_by_uid_with_passwd_entry() {
    let (uid, gid) = nobody();
    runs_as(
        "user_by_uid_with_passwd_entry",
        &format!("user = {uid}"),
        uid,
        gid,
    );
}

/// A uid without a passwd entry: its group is the gid of the same number.
#[test]
fn user_by_uid_without_passwd_entry() {
    let id = unnamed_id();
    runs_as(
        "user_by_uid_without_passwd_entry",
        &format!("user = {id}"),
        id,
        id,
    );
}

#[test]
fn user_and_group_by_number() {
    let id = unnamed_id();
    runs_as(
        "user_and_group_by_number",
        &format!("user = {id}:{}", id + 1),
        id,
        id + 1,
    );
}

#[test]
fn user_and_group_by_name() {
    let (uid, _) = nobody();
    let daemon = Group::from_name("daemon").unwrap().expect("group daemon");
    runs_as(
        "user_and_group_by_name",
        "user = nobody:daemon",
        uid,
        daemon.gid.as_raw(),
    );
}

/// No `user` key: root stays uid 0 but keeps only the two capabilities,
/// and says once that a user is recommended.
#[test]
fn no_user_key_drops_capabilities_and_warns() {
    let Some(lab) = runs_as("no_user_key", "", 0, 0) else {
        return;
    };
    assert_eq!(
        lab.daemon_log_count("warning: no [general] user set"),
        1,
        "{}",
        lab.daemon_log()
    );
}

/// A copy of the daemon any user can run (the build tree may sit under a
/// directory only root can enter).
fn public_binary(lab: &Lab) -> PathBuf {
    let bin = lab.tmp.join("nfdhcpd");
    fs::copy(env!("CARGO_BIN_EXE_nfdhcpd"), &bin).unwrap();
    fs::set_permissions(&bin, fs::Permissions::from_mode(0o755)).unwrap();
    bin
}

fn setpriv_as(id: u32, caps: bool) -> Vec<String> {
    let mut argv: Vec<String> = [
        "setpriv",
        &format!("--reuid={id}"),
        &format!("--regid={id}"),
        "--clear-groups",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if caps {
        argv.push("--inh-caps=+net_admin,+net_raw".into());
        argv.push("--ambient-caps=+net_admin,+net_raw".into());
    }
    argv
}

/// Started by an unprivileged user with the two capabilities as ambient
/// ones: it runs, keeps only those two, and serves.
#[test]
fn without_root_with_ambient_capabilities() {
    let Some((mut lab, g)) = lab_with_guest("without_root_ambient") else {
        return;
    };
    let id = unnamed_id();
    lab.daemon_bin = public_binary(&lab);
    lab.daemon_wrapper = setpriv_as(id, true);
    lab.start_daemon_with(&DaemonConfig::default());
    // Without CAP_SETPCAP the bounding set stays as it was given.
    assert_every_thread(lab.daemon_pid(), id, id, None);
    let l = g.udhcpc(&ClientOpts::default());
    assert_eq!(l.expect_bound().ip(), Some(IP0.parse().unwrap()));
    lab.stop_daemon();
}

/// Started by an unprivileged user from a binary with file capabilities
/// `caps` (in `setcap` syntax).
fn with_file_capabilities(test: &str, caps: &str) {
    let Some((mut lab, g)) = lab_with_guest(test) else {
        return;
    };
    let id = unnamed_id();
    let bin = public_binary(&lab);
    run_ok(Command::new("setcap").args([caps, bin.to_str().unwrap()]));
    lab.daemon_bin = bin;
    lab.daemon_wrapper = setpriv_as(id, false);
    lab.start_daemon_with(&DaemonConfig::default());
    assert_every_thread(lab.daemon_pid(), id, id, None);
    let l = g.dhclient(&ClientOpts::default());
    assert_eq!(l.expect_bound().ip(), Some(IP0.parse().unwrap()));
    lab.stop_daemon();
}

#[test]
fn without_root_with_file_capabilities() {
    with_file_capabilities("without_root_file_caps", "cap_net_admin,cap_net_raw=ep");
}

/// Permitted only: the daemon raises them into its effective set itself.
#[test]
fn without_root_with_permitted_file_capabilities() {
    with_file_capabilities("without_root_file_caps_p", "cap_net_admin,cap_net_raw=p");
}

/// Started by an unprivileged user without them: one line names the
/// missing capability, exit code 1, in the foreground and detached.
#[test]
fn without_capabilities_names_the_missing_one() {
    let Some((lab, _g)) = lab_with_guest("without_capabilities") else {
        return;
    };
    let id = unnamed_id();
    let bin = public_binary(&lab);
    let conf = lab.write_config(&DaemonConfig::default());
    for foreground in [true, false] {
        let mut argv = setpriv_as(id, false);
        argv.push(bin.to_str().unwrap().into());
        if foreground {
            argv.push("-f".into());
        }
        argv.extend(["-c".into(), conf.to_str().unwrap().into()]);
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        let out = lab.host.try_run(&argv);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(1),
            "foreground {foreground}: {stderr}"
        );
        let lines: Vec<&str> = stderr
            .lines()
            .filter(|l| l.contains("missing capability CAP_NET_ADMIN"))
            .collect();
        assert_eq!(lines.len(), 1, "foreground {foreground}: {stderr}");
    }
}

/// `nfdhcpd` without -f, run to completion: (exit status, stderr, time).
fn detached_start(lab: &Lab, conf: &Path) -> (Option<i32>, String, Duration) {
    let t = Instant::now();
    let out = lab
        .host
        .try_run(&[env!("CARGO_BIN_EXE_nfdhcpd"), "-c", conf.to_str().unwrap()]);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        t.elapsed(),
    )
}

/// A config of the lab with `pidfile` and `general` lines of its own.
fn config_with(lab: &Lab, name: &str, pidfile: &Path, general: &str) -> PathBuf {
    let text = fs::read_to_string(lab.write_config(&DaemonConfig {
        general: general.into(),
        ..Default::default()
    }))
    .unwrap();
    let text = text.replacen(
        &format!("pidfile = {}", lab.tmp.join("nfdhcpd.pid").display()),
        &format!("pidfile = {}", pidfile.display()),
        1,
    );
    let path = lab.tmp.join(name);
    fs::write(&path, text).unwrap();
    path
}

fn pid_in(pidfile: &Path) -> Option<u32> {
    fs::read_to_string(pidfile).ok()?.trim().parse().ok()
}

/// A detached start returns only once the daemon serves: then the pid file
/// names it, its log says ready, and a guest gets a lease at once.
#[test]
fn detached_start_returns_when_ready() {
    let Some((lab, g)) = lab_with_guest("detached_ready") else {
        return;
    };
    let logdir = lab.tmp.join("log");
    fs::create_dir_all(&logdir).unwrap();
    let pidfile = lab.tmp.join("run/nfdhcpd.pid");
    let conf = config_with(
        &lab,
        "detached.conf",
        &pidfile,
        &format!("logdir = {}\nuser = nobody", logdir.display()),
    );
    let (code, stderr, took) = detached_start(&lab, &conf);
    assert_eq!(code, Some(0), "{stderr}");
    let pid = pid_in(&pidfile).expect("pid file written before the start returned");
    let log = fs::read_to_string(logdir.join("nfdhcpd.log")).unwrap_or_default();
    assert!(
        log.contains("ready: queues [42 (dhcp)], 1 bindings"),
        "returned after {took:?} before ready:\n{log}"
    );
    // The log directory is root's (0755): nobody could not make a new file.
    assert!(
        log.contains(&format!(
            "warning: logdir {}: not writable by nobody",
            logdir.display()
        )),
        "{log}"
    );
    let l = g.dhclient(&ClientOpts::default());
    assert_eq!(l.expect_bound().ip(), Some(IP0.parse().unwrap()));
    // It is not our child: stop it by its pid and wait for it to go.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let gone = poll(Duration::from_secs(2), || {
        (!Path::new(&format!("/proc/{pid}")).exists()).then_some(())
    });
    assert!(
        gone.is_some(),
        "daemon {pid} still running 2 s after SIGTERM"
    );
}

/// A detached start whose daemon fails after the fork (here: its pid file
/// cannot be created) exits 1 and says why on stderr.
#[test]
fn detached_start_failing_after_fork_exits_non_zero() {
    let Some((lab, _g)) = lab_with_guest("detached_fails") else {
        return;
    };
    // A file where the pid file's directory should be.
    let blocker = lab.tmp.join("not-a-dir");
    fs::write(&blocker, "").unwrap();
    let conf = config_with(&lab, "fails.conf", &blocker.join("nfdhcpd.pid"), "");
    let (code, stderr, _) = detached_start(&lab, &conf);
    assert_eq!(code, Some(1), "stderr: {stderr}");
    assert!(
        stderr.contains("pid file") && stderr.contains("not-a-dir"),
        "stderr: {stderr}"
    );
    assert!(
        lab.host.pids().is_empty(),
        "processes left: {:?}",
        lab.host.pids()
    );
}

/// A second daemon on the queue a first one holds is told so, exit code 1.
#[test]
fn queue_in_use_by_another_program() {
    let Some((mut lab, _g)) = lab_with_guest("queue_in_use") else {
        return;
    };
    lab.start_daemon();
    let conf = config_with(&lab, "second.conf", &lab.tmp.join("second.pid"), "");
    for argv in [vec!["-f", "-c"], vec!["-c"]] {
        let mut cmd = vec![env!("CARGO_BIN_EXE_nfdhcpd")];
        cmd.extend(argv);
        cmd.push(conf.to_str().unwrap());
        let out = lab.host.try_run(&cmd);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(
            stderr.contains("NFQUEUE 42 (dhcp) is already in use by another program"),
            "{stderr}"
        );
    }
    lab.assert_daemon_alive();
    lab.stop_daemon();
}

/// `nfdhcpd --check-config -c PATH` with a time limit: (exit code, stderr).
fn check_config(path: &Path) -> (Option<i32>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_nfdhcpd"))
        .args(["--check-config", "-c", path.to_str().unwrap()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status = poll(Duration::from_secs(5), || child.try_wait().unwrap());
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
        panic!(
            "--check-config -c {} still running after 5 s",
            path.display()
        );
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Configuration files as they are found on real hosts: a FIFO, a user
/// that does not exist, keys set twice, escape sequences.
#[test]
fn configuration_files_that_are_not_what_they_should_be() {
    if !can_run("configuration_files") {
        return;
    }
    let tmp = TempDir::new("conf");

    let fifo = tmp.join("fifo.conf");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let (code, err) = check_config(&fifo);
    assert_eq!(code, Some(2), "{err}");
    assert_eq!(
        err.trim(),
        format!(
            "nfdhcpd: {}: [-] -: is a FIFO, not a regular file",
            fifo.display()
        )
    );

    let conf = tmp.join("nfdhcpd.conf");
    fs::write(&conf, "[general]\nuser = no-such-user-here\n").unwrap();
    let (code, err) = check_config(&conf);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("[general] user: user \"no-such-user-here\" does not exist"),
        "{err}"
    );

    let id = unnamed_id();
    fs::write(&conf, format!("[general]\nuser = {id}\n")).unwrap();
    assert_eq!(
        check_config(&conf).0,
        Some(0),
        "a uid needs no passwd entry"
    );
    fs::write(&conf, "[general]\nuser = nobody:no-such-group-here\n").unwrap();
    let (code, err) = check_config(&conf);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("group \"no-such-group-here\" does not exist"),
        "{err}"
    );

    fs::write(
        &conf,
        "[general]\nuser = nobody\n[dhcp]\nlease_lifetime = 600\n\n[dhcp]\nlease_lifetime = 900\n\
         [general]\n\x07\x1b[31mcolour = red\n",
    )
    .unwrap();
    let (code, err) = check_config(&conf);
    assert_eq!(code, Some(0), "{err}");
    for want in [
        "[dhcp] -: section appears twice (lines 3 and 6); their keys are merged",
        "[dhcp] lease_lifetime: set twice (lines 4 and 7); line 7 is used",
        "[general] -: section appears twice (lines 1 and 8)",
    ] {
        assert!(err.contains(want), "no {want:?} in:\n{err}");
    }
    assert!(
        !err.contains('\x1b') && !err.contains('\x07'),
        "control bytes printed raw: {err:?}"
    );
    assert!(err.contains("\\u{7}\\u{1b}[31mcolour"), "{err}");
}

/// A logdir that does not exist: a warning at start; SIGHUP says there is
/// still no file (not an "old file"); once the directory is there, the
/// next SIGHUP opens the file.
#[test]
fn missing_logdir_is_reported() {
    let Some((mut lab, _g)) = lab_with_guest("missing_logdir") else {
        return;
    };
    let logdir = lab.tmp.join("logs-not-yet");
    lab.start_daemon_with(&DaemonConfig {
        general: format!("logdir = {}\nuser = nobody", logdir.display()),
        ..Default::default()
    });
    let file = logdir.join("nfdhcpd.log");
    let want = format!(
        "warning: cannot open log file {}: No such file or directory (os error 2); \
         logging to syslog only",
        file.display()
    );
    assert_eq!(lab.daemon_log_count(&want), 1, "{}", lab.daemon_log());
    let hup = || {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(lab.daemon_pid() as i32),
            nix::sys::signal::Signal::SIGHUP,
        )
        .unwrap()
    };
    hup();
    let said = poll(Duration::from_secs(5), || {
        (lab.daemon_log_count("still logging to syslog only") == 1).then_some(())
    });
    assert!(said.is_some(), "{}", lab.daemon_log());
    assert!(
        !lab.daemon_log().contains("old file"),
        "{}",
        lab.daemon_log()
    );

    fs::create_dir_all(&logdir).unwrap();
    fs::set_permissions(&logdir, fs::Permissions::from_mode(0o777)).unwrap();
    hup();
    let opened = poll(Duration::from_secs(5), || {
        fs::read_to_string(&file)
            .ok()
            .filter(|t| t.contains("SIGHUP"))
    });
    assert!(opened.is_some(), "{}", lab.daemon_log());
    lab.stop_daemon();
}
