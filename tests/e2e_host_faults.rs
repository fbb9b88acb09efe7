//! Faults on the VM host side: the binding directory removed and made
//! anew, 20,000 binding files in a burst (inotify overflow), the log
//! directory full. No crash, and service resumes when the cause goes away.

mod common;

use std::fs;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

const MAC0: &str = "aa:6b:39:22:33:44";

fn started(test: &str, general: &str) -> Option<(Lab, Guest)> {
    let mut lab = Lab::new(test)?;
    lab.nfqueue_routed();
    lab.write_binding(&Binding::new("tap0", "192.0.2.100", MAC0));
    lab.start_daemon_with(&DaemonConfig {
        general: general.to_owned(),
        ..Default::default()
    });
    let g = lab.guest("tap0", MAC0);
    Some((lab, g))
}

fn leased(g: &Guest) -> bool {
    g.flush();
    g.udhcpc(&ClientOpts::short(3)).ip() == Some("192.0.2.100".parse().unwrap())
}

/// The directory goes away: the bindings go with it (the guest is passed to
/// the kernel, nobody answers); it comes back: they are read again, through
/// the sandbox that confines the daemon's reads.
#[test]
fn binding_directory_removed_and_made_anew() {
    let Some((lab, g)) = started("binding_directory_removed", "") else {
        return;
    };
    assert!(leased(&g));
    fs::remove_dir_all(&lab.bindings).unwrap();
    poll(Duration::from_secs(5), || {
        (lab.daemon_log_count("binding directory went away") > 0).then_some(())
    })
    .expect("removal not noticed");
    poll(Duration::from_secs(5), || {
        (lab.daemon_log_count("0 bindings in force") > 0).then_some(())
    })
    .expect("bindings kept after their directory went away");
    assert!(!leased(&g), "answered without a binding");

    fs::create_dir_all(&lab.bindings).unwrap();
    lab.write_binding(&Binding::new("tap0", "192.0.2.100", MAC0));
    poll(Duration::from_secs(10), || {
        (lab.daemon_log_count("binding directory is back") > 0).then_some(())
    })
    .expect("re-created directory not noticed");
    let t = Instant::now();
    let ok = poll(Duration::from_secs(10), || leased(&g).then_some(()));
    assert!(
        ok.is_some(),
        "no lease {:?} after the directory came back:\n{}",
        t.elapsed(),
        lab.daemon_log()
    );
    lab.assert_daemon_alive();
}

/// 20,000 binding files written at once overflow the inotify queue (16,384
/// events by default): the daemon rescans and ends up with all of them.
#[test]
fn twenty_thousand_binding_files_in_a_burst() {
    let Some(tmp) = can_run("twenty_thousand_bindings").then(|| TempDir::new("metrics")) else {
        return;
    };
    let metrics = tmp.join("nfdhcpd.prom");
    let Some((lab, g)) = started(
        "twenty_thousand_bindings",
        &format!("metrics_file = {}", metrics.display()),
    ) else {
        return;
    };
    // Stopped while the files are written, the daemon finds the kernel's
    // event queue overflowed when it goes on: the burst at its worst.
    let kill = |sig: &str| {
        let st = Command::new("kill")
            .args([sig, &lab.daemon_pid().to_string()])
            .status()
            .unwrap();
        assert!(st.success());
    };
    kill("-STOP");
    let t = Instant::now();
    for n in 0..20_000u32 {
        let (hi, lo) = ((n >> 8) as u8, n as u8);
        let mut b = Binding::new(
            &format!("vm{n}"),
            &format!("10.{hi}.{lo}.10"),
            &format!("02:bb:00:00:{hi:02x}:{lo:02x}"),
        );
        // An address outside SUBNET would be refused.
        b.subnet = Some("10.0.0.0/8".into());
        b.gateway = Some("10.0.0.1".parse().unwrap());
        fs::write(lab.bindings.join(format!("vm{n}")), b.text()).unwrap();
    }
    let wrote = t.elapsed();
    kill("-CONT");
    // Counted from the metrics file: with 20,000 debug lines at once the
    // log writer may drop the summary line (it drops rather than block).
    let counted = poll(Duration::from_secs(60), || {
        let m = fs::read_to_string(&metrics).unwrap_or_default();
        m.lines()
            .any(|l| l == "nfdhcpd_bindings 20001")
            .then_some(())
    });
    assert!(
        counted.is_some(),
        "after {:?}:\n{}",
        t.elapsed(),
        lab.daemon_log()
            .lines()
            .filter(|l| !l.contains("binding vm"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    eprintln!(
        "20,000 files written in {wrote:?}, all in force after {:?}",
        t.elapsed()
    );
    assert!(
        lab.daemon_log().contains("inotify queue overflowed"),
        "no rescan after the overflow"
    );
    lab.assert_daemon_alive();
    assert!(leased(&g));
}

/// The log directory's file system fills up: the daemon keeps answering
/// (the lines are lost), and logs again once there is room.
#[test]
fn log_directory_full() {
    if !can_run("log_directory_full") {
        return;
    }
    // A tiny file system of the test's own, in a mount namespace of its
    // own: nothing outside this test sees it.
    let tmp = TempDir::new("logfull");
    let logdir = tmp.join("log");
    fs::create_dir_all(&logdir).unwrap();
    let general = format!("logdir = {}\n", logdir.display());
    let Some(mut lab) = Lab::new("log_directory_full") else {
        return;
    };
    lab.nfqueue_routed();
    lab.write_binding(&Binding::new("tap0", "192.0.2.100", MAC0));
    let conf = lab.write_config(&DaemonConfig {
        general,
        ..Default::default()
    });
    // The daemon runs in a private mount namespace where logdir is a
    // 64 KiB tmpfs; a filler process in the same namespace fills it.
    let script = format!(
        "mount -t tmpfs -o size=64k nfdt-logfull {log} && exec {bin} -f -d -c {conf}",
        log = logdir.display(),
        bin = lab.daemon_bin.display(),
        conf = conf.display(),
    );
    let stderr = tmp.join("stderr");
    let pid = lab.host.spawn(
        &[
            "unshare",
            "-m",
            "--propagation",
            "private",
            "sh",
            "-c",
            &script,
        ],
        &stderr,
    );
    let file_log = || {
        Command::new("nsenter")
            .args(["-t", &pid.to_string(), "-m", "cat"])
            .arg(logdir.join("nfdhcpd.log"))
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    };
    poll(Duration::from_secs(10), || {
        file_log().contains("ready:").then_some(())
    })
    .unwrap_or_else(|| {
        panic!(
            "not ready:\n{}",
            fs::read_to_string(&stderr).unwrap_or_default()
        )
    });
    let g = lab.guest("tap0", MAC0);
    let fill = |on: bool| {
        let cmd = if on {
            format!(
                "dd if=/dev/zero of={}/filler bs=4k 2>/dev/null; true",
                logdir.display()
            )
        } else {
            format!("rm -f {}/filler", logdir.display())
        };
        let st = Command::new("nsenter")
            .args(["-t", &pid.to_string(), "-m", "sh", "-c", &cmd])
            .status()
            .unwrap();
        assert!(st.success());
    };
    fill(true);
    let before = file_log();
    for _ in 0..3 {
        assert!(leased(&g), "no lease with the log directory full");
    }
    assert!(
        lab.host.exited(pid).is_none(),
        "daemon died with a full disk"
    );
    let during = file_log();
    // tmpfs counts whole pages: at most the file's last page filled up.
    assert!(
        during.len() <= before.len() + 4096,
        "{} bytes of log written to a full file system",
        during.len().saturating_sub(before.len())
    );
    fill(false);
    assert!(leased(&g));
    poll(Duration::from_secs(5), || {
        (file_log().matches("DHCPACK").count() > during.matches("DHCPACK").count()).then_some(())
    })
    .unwrap_or_else(|| panic!("no log lines after room was made:\n{}", file_log()));
    lab.host.stop(pid, Duration::from_secs(2)).expect("stopped");
}

/// One daemon serving both: the VM host's NFQUEUE path and relay mode with
/// a backend that accepts connections and never answers. While relayed
/// DISCOVERs keep every worker hung and the job queue full, a guest on the
/// VM host is answered as before.
#[test]
fn nfqueue_path_unaffected_by_a_hung_backend() {
    let Some(mut lab) = Lab::new("nfqueue_with_hung_backend") else {
        return;
    };
    lab.nfqueue_routed();
    lab.write_binding(&Binding::new("tap0", "192.0.2.100", MAC0));
    // The "backend": a listener in the host namespace that never answers.
    let hung = common::relay::in_netns(&lab.host.name, || {
        std::net::TcpListener::bind("127.0.0.1:0").unwrap()
    });
    let port = hung.local_addr().unwrap().port();
    let stop = std::sync::atomic::AtomicBool::new(false);
    let token = lab.tmp.join("token");
    fs::write(&token, "0123456789abcdef0123456789abcdef01234567\n").unwrap();
    let extra = format!(
        "[relay]\nenable_relay = yes\ninterfaces = *\n\n\
         [nautobot]\nurl = http://127.0.0.1:{port}\ntoken_file = {}\ntimeout = 3\nworkers = 2\n",
        token.display()
    );
    lab.start_daemon_with(&DaemonConfig {
        extra,
        ..Default::default()
    });
    let g = lab.guest("tap0", MAC0);
    assert!(leased(&g), "no lease before the backend load");

    let mut probes = Vec::new();
    std::thread::scope(|s| {
        // Accept and hold every connection, never answering.
        s.spawn(|| {
            hung.set_nonblocking(true).unwrap();
            let mut held = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                match hung.accept() {
                    Ok((c, _)) => held.push(c),
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        // Relayed DISCOVERs from made-up clients, 200 a second.
        let sender = s.spawn(|| {
            let sock = common::relay::in_netns(&lab.host.name, || {
                std::net::UdpSocket::bind("127.0.0.1:0").unwrap()
            });
            let mut n = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = sock.send_to(&relayed_discover(n), "127.0.0.1:67");
                n += 1;
                std::thread::sleep(Duration::from_millis(5));
            }
            n
        });
        std::thread::sleep(Duration::from_secs(4));
        for _ in 0..4 {
            let t = Instant::now();
            let ok = leased(&g);
            probes.push((t.elapsed(), ok));
            std::thread::sleep(Duration::from_millis(500));
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let sent = sender.join().unwrap();
        eprintln!("{sent} relayed DISCOVERs to a hung backend; VM-host probes {probes:?}");
    });
    lab.assert_daemon_alive();
    let log = lab.daemon_log();
    assert!(
        log.contains("nautobot") && (log.contains("timed out") || log.contains("busy")),
        "the backend was not hung:\n{log}"
    );
    for (took, ok) in &probes {
        assert!(*ok && *took < Duration::from_secs(1), "{probes:?}");
    }
}

/// A DISCOVER as a relay agent at 127.0.0.1 forwards it, asking (RFC 8357)
/// for the answer on its own source port.
fn relayed_discover(n: u32) -> Vec<u8> {
    let mut p = vec![1, 1, 6, 1];
    p.extend(n.to_be_bytes()); // xid
    p.extend([0; 4 + 12]); // secs, flags, ciaddr, yiaddr, siaddr
    p.extend([127, 0, 0, 1]); // giaddr
    p.extend([0x02, 0xfd]);
    p.extend(n.to_be_bytes());
    p.extend([0; 10 + 64 + 128]);
    p.extend([99, 130, 83, 99, 53, 1, 1]);
    p.extend([82, 2, 19, 0, 255]);
    p
}
