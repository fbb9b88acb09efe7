//! The binding directory as operators fill it: FIFOs, symbolic links,
//! files the daemon's user cannot read, a directory it cannot read, byte
//! order marks, slow writers and bindings whose data contradict each other.
//! The daemon never blocks, never follows a link, never drops a binding it
//! merely cannot read, and says why, once.

mod common;

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

const MAC0: &str = "aa:6b:39:22:33:44";
const MAC1: &str = "aa:6b:39:22:33:55";
const MAC2: &str = "aa:6b:39:22:33:66";
const MAC3: &str = "aa:6b:39:22:33:77";

fn nobody() -> DaemonConfig {
    DaemonConfig {
        general: "user = nobody".into(),
        ..Default::default()
    }
}

fn signal(lab: &Lab, sig: Signal) {
    kill(Pid::from_raw(lab.daemon_pid() as i32), sig).unwrap();
}

/// Waits up to `secs` for a log line containing `pat`.
fn wait_log(lab: &Lab, pat: &str, secs: u64) {
    let found = poll(Duration::from_secs(secs), || {
        (lab.daemon_log_count(pat) > 0).then_some(())
    });
    assert!(
        found.is_some(),
        "no {pat:?} in the log after {secs} s:\n{}",
        lab.daemon_log()
    );
}

/// Waits until the log has `n` lines containing `pat`.
fn wait_count(lab: &Lab, pat: &str, n: usize) {
    let found = poll(Duration::from_secs(8), || {
        (lab.daemon_log_count(pat) >= n).then_some(())
    });
    assert!(
        found.is_some(),
        "fewer than {n} {pat:?} in the log:\n{}",
        lab.daemon_log()
    );
}

fn leased_ip(g: &Guest) -> Option<std::net::Ipv4Addr> {
    g.flush();
    g.udhcpc(&ClientOpts::short(4)).ip()
}

fn mkfifo(path: &Path) {
    nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o666)).unwrap();
}

/// A FIFO in the directory at start-up, and another, held open by a writer
/// that never writes, at run time and at SIGHUP: the daemon gets ready,
/// applies later changes, answers, dumps the FIFOs as ignored and stops
/// within 2 s.
#[test]
fn fifos_never_block_the_daemon() {
    let Some(mut lab) = Lab::new("fifos_never_block") else {
        return;
    };
    lab.nfqueue_routed();
    let g0 = lab.guest("tap0", MAC0);
    let g1 = lab.guest("tap1", MAC1);
    lab.write_binding(&Binding::new("tap0", "192.0.2.100", MAC0));
    mkfifo(&lab.bindings.join("fifo0"));
    lab.start_daemon();
    wait_log(
        &lab,
        "fifo0: a FIFO; only regular files are read; ignored",
        2,
    );
    assert_eq!(
        g0.dhclient(&ClientOpts::default()).expect_bound().ip(),
        Some("192.0.2.100".parse().unwrap())
    );

    // Held open for writing (O_RDWR never waits for the other end).
    let fifo1 = lab.bindings.join("fifo1");
    mkfifo(&fifo1);
    let held = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&fifo1)
        .unwrap();
    wait_log(
        &lab,
        "fifo1: a FIFO; only regular files are read; ignored",
        5,
    );
    (&held).write_all(b"x").unwrap();
    // Another writer closing it is an event (CLOSE_WRITE), not a second line.
    drop(fs::OpenOptions::new().write(true).open(&fifo1).unwrap());

    // Changes after it still apply.
    lab.write_binding(&Binding::new("tap1", "192.0.2.101", MAC1));
    wait_log(&lab, "binding tap1 added", 5);
    assert_eq!(leased_ip(&g1), Some("192.0.2.101".parse().unwrap()));

    signal(&lab, Signal::SIGHUP);
    wait_log(&lab, "SIGHUP: rescanning", 5);
    wait_log(&lab, "2 bindings in force, 2 binding files ignored", 5);
    signal(&lab, Signal::SIGUSR1);
    wait_log(&lab, "binding files refused: fifo 2", 5);
    let log = lab.daemon_log();
    assert!(log.contains("ignored binding file fifo0: a FIFO"), "{log}");
    assert!(log.contains("ignored binding file fifo1: a FIFO"), "{log}");
    for f in ["fifo0", "fifo1"] {
        let line = format!("{f}: a FIFO; only regular files are read; ignored");
        assert_eq!(lab.daemon_log_count(&line), 1, "{line}");
    }
    assert_eq!(leased_ip(&g0), Some("192.0.2.100".parse().unwrap()));

    // stop_daemon asserts exit status 0 within 2 s.
    let t = Instant::now();
    lab.stop_daemon();
    eprintln!("stopped in {:?}", t.elapsed());
    drop(held);
}

/// A symbolic link to a file only root may read, next to the binding
/// directory: not followed, at start-up or later, logged, and nothing from
/// the file reaches the log.
#[test]
fn symlinks_are_not_followed() {
    let Some(mut lab) = Lab::new("symlinks_not_followed") else {
        return;
    };
    lab.nfqueue_routed();
    let g0 = lab.guest("tap0", MAC0);
    let secret = lab.tmp.join("root-only");
    let mut b = Binding::new("tap0", "192.0.2.100", MAC0);
    b.hostname = "s3cret-host".into();
    fs::write(&secret, b.text()).unwrap();
    fs::set_permissions(&secret, fs::Permissions::from_mode(0o600)).unwrap();
    let secret2 = lab.tmp.join("root-only-2");
    fs::write(&secret2, "MAC=s3cret-value\nHOSTNAME=x\n").unwrap();
    fs::set_permissions(&secret2, fs::Permissions::from_mode(0o600)).unwrap();
    std::os::unix::fs::symlink(&secret, lab.bindings.join("tap0")).unwrap();

    // As root: only the refusal to follow links keeps the file out.
    lab.start_daemon();
    wait_log(
        &lab,
        "tap0: a symbolic link; links are not followed; ignored",
        2,
    );
    std::os::unix::fs::symlink(&secret2, lab.bindings.join("tap1")).unwrap();
    wait_log(
        &lab,
        "tap1: a symbolic link; links are not followed; ignored",
        5,
    );
    assert!(
        leased_ip(&g0).is_none(),
        "answered from a followed link:\n{}",
        lab.daemon_log()
    );
    signal(&lab, Signal::SIGUSR1);
    wait_log(&lab, "binding files refused: symlink 2", 5);
    let log = lab.daemon_log();
    assert!(
        !log.contains("s3cret"),
        "a value from the link target:\n{log}"
    );
    assert_eq!(
        lab.daemon_log_count("a symbolic link; links are not followed; ignored"),
        2
    );
}

/// The VM manager rewrites a binding with umask 077 while the daemon runs
/// as nobody: the binding stays in force and the guest keeps being served;
/// the log says why, once; a chmod brings the file back.
#[test]
fn an_unreadable_rewrite_keeps_the_binding() {
    let Some(mut lab) = Lab::new("unreadable_rewrite") else {
        return;
    };
    lab.nfqueue_routed();
    let g0 = lab.guest("tap0", MAC0);
    let b = Binding::new("tap0", "192.0.2.100", MAC0);
    lab.write_binding(&b);
    lab.start_daemon_with(&nobody());
    wait_log(&lab, "running as nobody", 2);
    assert_eq!(
        g0.dhclient(&ClientOpts::default()).expect_bound().ip(),
        Some("192.0.2.100".parse().unwrap())
    );

    let rewrite = |hostname: &str| {
        let mut b = b.clone();
        b.hostname = hostname.into();
        let tmp = lab.bindings.join(".tap0.tmp");
        fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .unwrap()
            .write_all(b.text().as_bytes())
            .unwrap();
        fs::rename(&tmp, lab.bindings.join("tap0")).unwrap();
    };
    rewrite("vm-umask-1");
    let why = "tap0: cannot be read as nobody (uid 65534): Permission denied (os error 13); \
               ignored; the previous binding stays in force";
    wait_log(&lab, why, 5);
    rewrite("vm-umask-2");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(leased_ip(&g0), Some("192.0.2.100".parse().unwrap()));
    signal(&lab, Signal::SIGUSR1);
    wait_log(&lab, "binding files refused: unreadable 1", 5);
    let log = lab.daemon_log();
    assert!(!log.contains("binding tap0 removed"), "{log}");
    assert!(
        log.contains("binding tap0: mac aa:6b:39:22:33:44 host vm-tap0"),
        "the old binding is not in the dump:\n{log}"
    );
    assert_eq!(
        lab.daemon_log_count(why),
        1,
        "logged again for the same cause"
    );

    // The operator fixes the mode: read at once.
    fs::set_permissions(lab.bindings.join("tap0"), fs::Permissions::from_mode(0o644)).unwrap();
    wait_log(
        &lab,
        "binding tap0 updated: mac aa:6b:39:22:33:44 host vm-umask-2",
        5,
    );
    let l = g0.udhcpc(&ClientOpts::default());
    assert_eq!(l.expect_bound().hostname(), Some("vm-umask-2"));
    lab.stop_daemon();
}

/// A binding directory the daemon's user cannot read at start-up: a
/// warning naming it and the user; once it is made readable, its bindings
/// are read without a restart.
#[test]
fn an_unreadable_directory_is_retried() {
    let Some(mut lab) = Lab::new("unreadable_directory") else {
        return;
    };
    lab.nfqueue_routed();
    let g0 = lab.guest("tap0", MAC0);
    lab.write_binding(&Binding::new("tap0", "192.0.2.100", MAC0));
    fs::set_permissions(&lab.bindings, fs::Permissions::from_mode(0o700)).unwrap();
    lab.start_daemon_with(&nobody());
    wait_log(
        &lab,
        &format!(
            "{}: cannot read the binding directory as nobody (uid 65534): Permission denied",
            lab.bindings.display()
        ),
        2,
    );
    assert!(leased_ip(&g0).is_none(), "answered without its bindings");

    fs::set_permissions(&lab.bindings, fs::Permissions::from_mode(0o755)).unwrap();
    wait_log(&lab, "binding directory readable again", 6);
    wait_log(&lab, "1 bindings in force", 2);
    assert_eq!(leased_ip(&g0), Some("192.0.2.100".parse().unwrap()));
    // Once per cause, not every retry.
    assert_eq!(
        lab.daemon_log_count("cannot read the binding directory"),
        1,
        "{}",
        lab.daemon_log()
    );
    lab.stop_daemon();
}

/// Binding files that start with a UTF-8 byte order mark, at start-up and
/// written later.
#[test]
fn a_byte_order_mark_is_accepted() {
    let Some(mut lab) = Lab::new("byte_order_mark") else {
        return;
    };
    lab.nfqueue_routed();
    let g0 = lab.guest("tap0", MAC0);
    let g1 = lab.guest("tap1", MAC1);
    let dir = lab.bindings.clone();
    let with_bom = |b: &Binding| {
        let tmp = dir.join(format!(".{}.tmp", b.tap));
        // MAC first, right after the mark, where it used to be misread.
        let rest: String = b
            .text()
            .lines()
            .filter(|l| !l.starts_with("MAC="))
            .map(|l| format!("{l}\n"))
            .collect();
        fs::write(&tmp, format!("\u{feff}MAC={}\n{rest}", b.mac)).unwrap();
        fs::rename(&tmp, dir.join(&b.tap)).unwrap();
    };
    with_bom(&Binding::new("tap0", "192.0.2.100", MAC0));
    lab.start_daemon();
    with_bom(&Binding::new("tap1", "192.0.2.101", MAC1));
    wait_log(&lab, "binding tap1 added", 5);
    assert_eq!(
        g0.dhclient(&ClientOpts::default()).expect_bound().ip(),
        Some("192.0.2.100".parse().unwrap())
    );
    assert_eq!(leased_ip(&g1), Some("192.0.2.101".parse().unwrap()));
    assert_eq!(lab.daemon_log_count("; ignored"), 0, "{}", lab.daemon_log());
}

/// A new binding file written in place, in many small writes with pauses,
/// while the daemon is too busy to look at first: it is read once, when
/// closed, never half-written. A hard link arrives complete and is read.
#[test]
fn a_slow_writer_is_never_read_half_way() {
    let Some(mut lab) = Lab::new("slow_writer") else {
        return;
    };
    lab.nfqueue_routed();
    let g0 = lab.guest("tap0", MAC0);
    let g1 = lab.guest("tap1", MAC1);
    lab.start_daemon();

    let text = Binding::new("tap0", "192.0.2.100", MAC0).text();
    let bytes = text.as_bytes();
    // Stopped, the daemon finds the CREATE only once data is there.
    signal(&lab, Signal::SIGSTOP);
    let mut f = fs::File::create(lab.bindings.join("tap0")).unwrap();
    let mut chunks = bytes.chunks(7);
    for c in chunks.by_ref().take(6) {
        f.write_all(c).unwrap();
    }
    signal(&lab, Signal::SIGCONT);
    for c in chunks {
        std::thread::sleep(Duration::from_millis(20));
        f.write_all(c).unwrap();
    }
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(lab.daemon_log_count("binding tap0"), 0, "read before close");
    drop(f);
    wait_log(&lab, "binding tap0 added", 5);

    // A hard link: a CREATE and nothing else.
    let staged = lab.tmp.join("staged-tap1");
    fs::write(&staged, Binding::new("tap1", "192.0.2.101", MAC1).text()).unwrap();
    fs::hard_link(&staged, lab.bindings.join("tap1")).unwrap();
    wait_log(&lab, "binding tap1 added", 5);

    assert_eq!(leased_ip(&g0), Some("192.0.2.100".parse().unwrap()));
    assert_eq!(leased_ip(&g1), Some("192.0.2.101".parse().unwrap()));
    let log = lab.daemon_log();
    assert!(
        !log.contains("; ignored"),
        "a half-written file was parsed:\n{log}"
    );
    assert_eq!(lab.daemon_log_count("binding tap0 added"), 1);
}

/// A binding file, a change to its data and the line that refuses it.
type Case = (&'static str, fn(&mut Binding), &'static str);

/// Data an operator would refuse: the file is refused with the key and
/// why, and a valid binding before it stays. A missing SUBNET and an
/// INDEV that names no interface are served as documented, with one
/// warning per binding.
#[test]
fn contradicting_data_is_refused_with_the_key() {
    let Some(mut lab) = Lab::new("contradicting_data") else {
        return;
    };
    lab.nfqueue_routed();
    let g0 = lab.guest("tap0", MAC0);
    let g2 = lab.guest("tap2", MAC2);
    let g3 = lab.guest("tap3", MAC3);
    lab.write_binding(&Binding::new("tap0", "192.0.2.100", MAC0));
    let mut no_subnet = Binding::new("tap2", "192.0.2.102", MAC2);
    no_subnet.subnet = None;
    lab.write_binding(&no_subnet);
    let mut no_indev = Binding::new("tap3", "192.0.2.103", MAC3);
    no_indev.indev = Some("nosuch0".into());
    lab.write_binding(&no_indev);
    lab.start_daemon();
    assert_eq!(
        g0.dhclient(&ClientOpts::default()).expect_bound().ip(),
        Some("192.0.2.100".parse().unwrap())
    );

    let cases: [Case; 5] = [
        (
            "tap0",
            |b| b.ip = "198.51.100.7".parse().unwrap(),
            "tap0: IP=198.51.100.7: outside SUBNET 192.0.2.0/24; ignored; \
             the previous binding stays in force",
        ),
        (
            "tap1",
            |b| b.ip = "192.0.2.0".parse().unwrap(),
            "tap1: IP=192.0.2.0: the network address of SUBNET 192.0.2.0/24; ignored",
        ),
        (
            "tap1",
            |b| b.ip = "192.0.2.255".parse().unwrap(),
            "tap1: IP=192.0.2.255: the broadcast address of SUBNET 192.0.2.0/24; ignored",
        ),
        (
            "tap1",
            |b| b.ip = "192.0.2.1".parse().unwrap(),
            "tap1: IP=192.0.2.1: the same address as GATEWAY; ignored",
        ),
        (
            "tap1",
            |b| {
                *b = b.clone().with_ipv6("2001:db8:1::/64");
                b.gateway6 = Some("2001:db8:2::1".parse().unwrap());
            },
            "tap1: GATEWAY6=2001:db8:2::1: outside SUBNET6 2001:db8:1::/64; ignored",
        ),
    ];
    for (tap, change, line) in cases {
        let mut b = Binding::new(tap, "192.0.2.101", MAC1);
        change(&mut b);
        lab.write_binding(&b);
        wait_log(&lab, line, 5);
    }
    assert_eq!(leased_ip(&g0), Some("192.0.2.100".parse().unwrap()));

    // Without SUBNET: leased, without a subnet mask, the gateway by a host route.
    wait_count(&lab, "binding tap2: IP without SUBNET", 1);
    let l = g2.dhclient(&ClientOpts::default());
    eprintln!("without SUBNET, dhclient got:\n{l}");
    assert_eq!(l.expect_bound().ip(), Some("192.0.2.102".parse().unwrap()));
    assert_eq!(l.var("new_subnet_mask"), None);
    assert_eq!(
        l.routers(),
        vec!["192.0.2.1".parse::<std::net::Ipv4Addr>().unwrap()]
    );
    assert!(
        l.var("new_rfc3442_classless_static_routes").is_some(),
        "no classless routes:\n{l}"
    );

    // INDEV naming no interface: nothing is answered; one warning.
    for _ in 0..2 {
        assert!(g3.udhcpc(&ClientOpts::short(2)).ip().is_none());
    }
    let line = "binding tap3: INDEV nosuch0 names no interface";
    wait_count(&lab, line, 1);
    // A SIGHUP rescan finds the same bindings: no new warnings.
    signal(&lab, Signal::SIGHUP);
    wait_log(&lab, "SIGHUP: rescanning", 5);
    wait_count(&lab, "bindings in force", 2);
    assert_eq!(lab.daemon_log_count(line), 1, "{}", lab.daemon_log());
    assert_eq!(lab.daemon_log_count("IP without SUBNET"), 1);
    lab.stop_daemon();
}
