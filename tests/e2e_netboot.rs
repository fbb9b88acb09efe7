//! Network boot end to end, with real firmware: a diskless QEMU VM (TCG)
//! boots the iPXE ROM of its e1000 NIC on a tap in the lab's host
//! namespace. nfdhcpd answers from the binding file; the first run fetches
//! an iPXE script over HTTP from a server in the namespace and runs it (it
//! prints a marker on the serial console and powers the VM off); the
//! second, with IPXE unset, is offered the legacy PXE boot file instead.
//! Needs root, `qemu-system-x86` and `ipxe-qemu` (tests/run-all.sh
//! installs them); see tests/common/mod.rs for the harness.

mod common;

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use common::*;

const QEMU: &str = "/usr/bin/qemu-system-x86_64";
/// iPXE for QEMU's e1000, as Debian's ipxe-qemu ships it (a legacy BIOS
/// image and an EFI one). The e1000 ROM matches QEMU's e1000 PCI id; the
/// virtio one is built for the modern virtio-net id only.
const ROM: &str = "/usr/lib/ipxe/qemu/efi-e1000.rom";
const TAP: &str = "tapq0";
const MAC: &str = "52:54:00:4e:42:01";
const HOST_IP: &str = "192.0.2.1";
const GUEST_IP: &str = "192.0.2.100";
const HTTP_PORT: u16 = 8080;
const BOOT_FILE: &str = "undionly.kpxe";
/// What the script prints: built by iPXE from a variable, so that it cannot
/// appear on the console unless the script ran.
const MARKER: &str = "netboot-script-ran";
/// Each boot: iPXE under TCG gets its lease 10-20 s after power-on.
const BOOT_TIMEOUT: Duration = Duration::from_secs(150);

/// Whether QEMU and the iPXE ROM are installed; under CI a missing one is
/// a failure, elsewhere the test is skipped with a notice.
fn have_qemu(test: &str) -> bool {
    let missing: Vec<&str> = [QEMU, ROM]
        .into_iter()
        .filter(|p| !Path::new(p).exists())
        .collect();
    if missing.is_empty() {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!("{test}: {missing:?} missing (apt-get install qemu-system-x86 ipxe-qemu)");
    }
    eprintln!("SKIPPED {test}: {missing:?} missing");
    false
}

/// The console output so far, without the terminal's escape sequences and
/// carriage returns.
fn console(path: &Path) -> String {
    let raw = fs::read(path).unwrap_or_default();
    let text = String::from_utf8_lossy(&raw);
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => {
                // CSI: ESC [ parameters final-byte.
                if chars.peek() == Some(&'[') {
                    chars.next();
                    for c in chars.by_ref() {
                        if c.is_ascii_alphabetic() {
                            break;
                        }
                    }
                }
            }
            '\r' => {}
            c => out.push(c),
        }
    }
    out
}

/// Starts a diskless VM that boots from its NIC on TAP; its console goes
/// to `log`. Returns the PID.
fn start_vm(lab: &Lab, log: &Path) -> u32 {
    let netdev = format!("tap,id=n0,ifname={TAP},script=no,downscript=no");
    let nic = format!("e1000,netdev=n0,mac={MAC},romfile={ROM},bootindex=1");
    lab.host.spawn(
        &[
            QEMU,
            "-accel",
            "tcg",
            "-m",
            "128",
            // The console on stdio; SeaBIOS and iPXE print to it.
            "-nographic",
            "-no-reboot",
            "-boot",
            "strict=on",
            "-netdev",
            &netdev,
            "-device",
            &nic,
        ],
        log,
    )
}

/// Polls the console in `log` until `want` shows up; panics with the
/// console and the daemon log when it does not.
fn wait_console(lab: &Lab, log: &Path, want: &str) -> Duration {
    let t = Instant::now();
    let seen = poll(BOOT_TIMEOUT, || console(log).contains(want).then_some(()));
    assert!(
        seen.is_some(),
        "{want:?} not on the console after {BOOT_TIMEOUT:?}; console:\n{}\ndaemon log:\n{}",
        console(log),
        lab.daemon_log()
    );
    t.elapsed()
}

/// An HTTP server for `dir` on HOST_IP inside the host namespace; returns
/// once it listens.
fn http_server(lab: &Lab, dir: &Path) -> u32 {
    let log = lab.tmp.join("http.log");
    let port = HTTP_PORT.to_string();
    let pid = lab.host.spawn(
        &[
            "python3",
            "-m",
            "http.server",
            &port,
            "--bind",
            HOST_IP,
            "--directory",
            dir.to_str().unwrap(),
        ],
        &log,
    );
    assert!(
        lab.host.wait_listening(pid, "-Htlnp", HTTP_PORT),
        "HTTP server did not start; log:\n{}",
        fs::read_to_string(&log).unwrap_or_default()
    );
    pid
}

#[test]
fn firmware_boots_the_ipxe_script_then_the_pxe_file() {
    const TEST: &str = "firmware_boots_the_ipxe_script_then_the_pxe_file";
    let Some(mut lab) = Lab::new(TEST) else {
        return;
    };
    if !have_qemu(TEST) {
        return;
    }
    let started = Instant::now();
    lab.nfqueue_routed();
    // A real tap, as a VM manager makes it; QEMU opens it by name.
    lab.host
        .run(&["ip", "tuntap", "add", "dev", TAP, "mode", "tap"]);
    lab.host.run(&["ip", "link", "set", "dev", TAP, "up"]);
    lab.host.addr_add(&format!("{HOST_IP}/24"), TAP);

    let www = lab.tmp.join("www");
    fs::create_dir_all(&www).unwrap();
    fs::write(
        www.join("boot.ipxe"),
        "#!ipxe\nset word ran\necho netboot-script-${word}\n\
         echo search=${119:hex}=end\npoweroff || reboot || echo cannot-power-off\n",
    )
    .unwrap();
    http_server(&lab, &www);
    let script = format!("http://{HOST_IP}:{HTTP_PORT}/boot.ipxe");

    let mut b = Binding::new(TAP, GUEST_IP, MAC);
    b.extra = format!("NEXT_SERVER={HOST_IP}\nBOOT_FILE={BOOT_FILE}\nIPXE={script}\n");
    lab.write_binding(&b);
    lab.start_daemon();

    // 1. iPXE says so in option 77: it gets the script, fetches and runs it.
    let log1 = lab.tmp.join("vm1.log");
    let vm = start_vm(&lab, &log1);
    let took = wait_console(&lab, &log1, MARKER);
    eprintln!("run 1: the script ran {took:.1?} after power-on");
    // Its last line, whole: the serial console is slow under emulation.
    wait_console(&lab, &log1, "=end");
    let out = console(&log1);
    assert!(out.contains(GUEST_IP), "the lease on the console:\n{out}");
    // Option 119, from `[dhcp] domain` (example.com) in DNS wire format.
    assert!(
        out.contains("search=07:65:78:61:6d:70:6c:65:03:63:6f:6d:00=end"),
        "the search list on the console:\n{out}"
    );
    // Debian's iPXE has no poweroff command; its reboot ends QEMU, which
    // runs with -no-reboot.
    let powered_off = poll(Duration::from_secs(30), || lab.host.exited(vm));
    let out = console(&log1);
    eprintln!(
        "run 1: console after the script:\n{}",
        out.split(MARKER).nth(1).unwrap_or_default().trim()
    );
    assert!(
        powered_off.is_some(),
        "the VM did not power off:\n{}",
        console(&log1)
    );
    lab.host.stop(vm, Duration::from_secs(2));
    let http = fs::read_to_string(lab.tmp.join("http.log")).unwrap_or_default();
    assert!(http.contains("GET /boot.ipxe"), "HTTP log:\n{http}");
    let offered = format!("boot=ipxe file={script}");
    assert!(
        lab.daemon_log().contains(&offered),
        "{offered:?} not in the daemon log:\n{}",
        lab.daemon_log()
    );

    // 2. No IPXE: iPXE is answered as the BIOS PXE ROM it runs on, with
    // the legacy boot file from NEXT_SERVER, which it then asks TFTP for.
    b.extra = format!("NEXT_SERVER={HOST_IP}\nBOOT_FILE={BOOT_FILE}\n");
    lab.write_binding(&b);
    // The daemon logs each binding change; wait for it before booting.
    let updated = poll(Duration::from_secs(5), || {
        lab.daemon_log()
            .lines()
            .any(|l| l.contains("binding tapq0 updated") && !l.contains("ipxe http"))
            .then_some(())
    });
    assert!(updated.is_some(), "no update logged:\n{}", lab.daemon_log());
    let log2 = lab.tmp.join("vm2.log");
    let vm = start_vm(&lab, &log2);
    let took = wait_console(&lab, &log2, &format!("tftp://{HOST_IP}/{BOOT_FILE}"));
    eprintln!("run 2: TFTP of {BOOT_FILE} tried {took:.1?} after power-on");
    lab.host.stop(vm, Duration::from_secs(2));
    let out = console(&log2);
    assert!(!out.contains(MARKER), "the script ran again:\n{out}");
    let offered = format!("boot=bios file={BOOT_FILE}");
    assert!(
        lab.daemon_log().contains(&offered),
        "{offered:?} not in the daemon log:\n{}",
        lab.daemon_log()
    );
    lab.assert_daemon_alive();
    eprintln!("{TEST}: both boots took {:.1?}", started.elapsed());
}
