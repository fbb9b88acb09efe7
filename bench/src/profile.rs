//! `profile`: where a server's time goes per DHCPv4 request, for the daemon
//! and the echo server under the same flood: system calls per request
//! (`strace -c -f`, at a low rate because tracing slows every call),
//! context switches, CPU and heap allocations per request and thread
//! (`perf stat`, allocations through uprobes on libc's malloc, realloc and
//! calloc when the kernel allows them), and a flat CPU profile (`perf
//! record`). The tools are attached to the running servers by pid.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Duration;

use clap::Args;

use crate::flood::{Rig, Trial};
use crate::frames::{self, Proto, TAP};
use crate::lab::{self, command, run as run_cmd, Lab, TempDir};
use crate::server::Server;
use crate::{Common, Res};

#[derive(Args)]
pub struct Opts {
    #[command(flatten)]
    common: Common,
    /// Rate of the perf phases, per second.
    #[arg(long, default_value_t = 20_000.0)]
    rate: f64,
    /// Rate of the strace phase, per second.
    #[arg(long, default_value_t = 2_000.0)]
    strace_rate: f64,
    /// Seconds of flood per phase.
    #[arg(long, default_value_t = 5.0)]
    secs: f64,
}

/// uprobe events on libc's allocator entry points, made for this run and
/// removed on drop.
struct AllocProbes {
    events: Vec<String>,
}

impl AllocProbes {
    fn add(libc_path: &Path) -> AllocProbes {
        let mut events = Vec::new();
        for f in ["malloc", "calloc", "realloc"] {
            let spec = format!("nfb_{f}={f}");
            let ok = command("perf")
                .args(["probe", "-q", "-x"])
                .arg(libc_path)
                .args(["--add", &spec])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                let e = format!("probe_libc:nfb_{f}");
                lab::register_undo(remove_probe(&e));
                events.push(e);
            }
        }
        AllocProbes { events }
    }
}

fn remove_probe(event: &str) -> Vec<String> {
    ["perf", "probe", "-q", "-d", event]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

impl Drop for AllocProbes {
    fn drop(&mut self) {
        for e in &self.events {
            lab::undo(&remove_probe(e));
        }
    }
}

/// libc as mapped into `pid`.
fn libc_of(pid: i32) -> Option<PathBuf> {
    let maps = fs::read_to_string(format!("/proc/{pid}/maps")).ok()?;
    maps.lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .find(|p| p.contains("/libc.so") || p.contains("/libc-"))
        .map(PathBuf::from)
}

/// A tool attached to a server for the length of one trial.
struct Attached {
    child: Child,
}

impl Attached {
    fn start(argv: &[String]) -> Res<Attached> {
        let child = command(&argv[0])
            .args(&argv[1..])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", argv[0]))?;
        // Attaching to every thread takes a moment.
        std::thread::sleep(Duration::from_millis(700));
        Ok(Attached { child })
    }

    /// SIGINT makes strace and perf detach and write their results.
    fn finish(mut self) {
        // SAFETY: plain kill(2) on our child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
        let _ = self.child.wait();
    }
}

impl Drop for Attached {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The trial behind a figure; figures are per request the server received.
fn trial_line(t: &Trial) -> String {
    format!(
        "{} requests at {:.0}/s, {} received, {:.2} % unanswered, loadavg {}",
        t.sent,
        t.sent_rate(),
        t.handled(),
        t.loss() * 100.0,
        t.loadavg
    )
}

/// `strace -c` table: syscall -> calls.
fn parse_strace(text: &str) -> BTreeMap<String, u64> {
    let mut m = BTreeMap::new();
    for l in text.lines() {
        let f: Vec<&str> = l.split_whitespace().collect();
        // % time, seconds, usecs/call, calls, [errors], syscall
        if f.len() < 5 || f[0].parse::<f64>().is_err() || f.last() == Some(&"total") {
            continue;
        }
        if let (Ok(calls), Some(name)) = (f[3].parse::<u64>(), f.last()) {
            m.insert(name.to_string(), calls);
        }
    }
    m
}

fn syscalls(rig: &mut Rig<'_>, o: &Opts, dir: &Path) -> Res<()> {
    let out = dir.join(format!("strace-{}.txt", rig.server.label));
    let a = Attached::start(&[
        "strace".into(),
        "-c".into(),
        "-f".into(),
        "-qq".into(),
        "-o".into(),
        out.to_string_lossy().into_owned(),
        "-p".into(),
        rig.server.pid.to_string(),
    ])?;
    let t = rig.trial(
        Proto::Dhcp,
        o.strace_rate,
        o.secs,
        Duration::from_millis(500),
    )?;
    a.finish();
    let calls = parse_strace(&fs::read_to_string(&out).unwrap_or_default());
    let n = t.handled().max(1) as f64;
    let total: u64 = calls.values().sum();
    println!(
        "  system calls per request (strace -c -f; {}): {:.2}",
        trial_line(&t),
        total as f64 / n
    );
    let mut v: Vec<_> = calls.into_iter().collect();
    v.sort_by_key(|(_, c)| std::cmp::Reverse(*c));
    for (name, c) in v.into_iter().filter(|(_, c)| *c as f64 / n >= 0.01) {
        println!("    {name:<16} {:>6.2}", c as f64 / n);
    }
    Ok(())
}

fn counters(rig: &mut Rig<'_>, o: &Opts, dir: &Path, probes: &AllocProbes) -> Res<()> {
    let out = dir.join(format!("perf-stat-{}.txt", rig.server.label));
    let mut events = vec![
        "task-clock".to_string(),
        "context-switches".into(),
        "cpu-migrations".into(),
    ];
    events.extend(probes.events.iter().cloned());
    let a = Attached::start(&[
        "perf".into(),
        "stat".into(),
        "-x".into(),
        ";".into(),
        "--per-thread".into(),
        "-e".into(),
        events.join(","),
        "-o".into(),
        out.to_string_lossy().into_owned(),
        "-p".into(),
        rig.server.pid.to_string(),
    ])?;
    let t = rig.trial(Proto::Dhcp, o.rate, o.secs, Duration::from_millis(500))?;
    a.finish();
    let n = t.handled().max(1) as f64;
    // thread -> event -> value; "comm-tid;value;unit;event;..."
    let mut table: BTreeMap<String, BTreeMap<String, f64>> = BTreeMap::new();
    for l in fs::read_to_string(&out).unwrap_or_default().lines() {
        let f: Vec<&str> = l.split(';').collect();
        if f.len() < 4 {
            continue;
        }
        let Ok(v) = f[1].parse::<f64>() else { continue };
        let thread = f[0].rsplit_once('-').map(|(c, _)| c).unwrap_or(f[0]);
        let event = f[3].trim_start_matches("probe_libc:nfb_").to_string();
        *table
            .entry(thread.to_string())
            .or_default()
            .entry(event)
            .or_default() += v;
    }
    println!("  per request and thread (perf stat; {}):", trial_line(&t));
    let allocs = !probes.events.is_empty();
    println!(
        "    {:<10} {:>9} {:>9} {:>9}{}",
        "thread",
        "cpu µs",
        "ctx sw",
        "migr",
        if allocs {
            "    malloc    calloc   realloc"
        } else {
            ""
        }
    );
    for (thread, ev) in &table {
        let g = |k: &str| ev.get(k).copied().unwrap_or(0.0) / n;
        let busy = g("task-clock") * 1e3;
        if busy < 0.05 && g("context-switches") < 0.005 {
            continue;
        }
        let mut line = format!(
            "    {thread:<10} {busy:>9.2} {:>9.2} {:>9.3}",
            g("context-switches"),
            g("cpu-migrations")
        );
        if allocs {
            line += &format!(
                " {:>9.2} {:>9.2} {:>9.2}",
                g("malloc"),
                g("calloc"),
                g("realloc")
            );
        }
        println!("{line}");
    }
    if allocs {
        println!("    (the uprobes slow every allocation: CPU per request is nfqueue's figure)");
    } else {
        println!("    (no uprobes on libc here: allocations not counted)");
    }
    Ok(())
}

fn hot_spots(rig: &mut Rig<'_>, o: &Opts, dir: &Path) -> Res<()> {
    let data = dir.join(format!("perf-{}.data", rig.server.label));
    let a = Attached::start(&[
        "perf".into(),
        "record".into(),
        "-q".into(),
        "-e".into(),
        "cpu-clock".into(),
        "-F".into(),
        "4000".into(),
        "-o".into(),
        data.to_string_lossy().into_owned(),
        "-p".into(),
        rig.server.pid.to_string(),
    ])?;
    let t = rig.trial(Proto::Dhcp, o.rate, o.secs, Duration::from_millis(500))?;
    a.finish();
    println!(
        "  flat profile (perf record -e cpu-clock; {}):",
        trial_line(&t)
    );
    let report = run_cmd(command("perf").args([
        "report",
        "-i",
        &data.to_string_lossy(),
        "--stdio",
        "--no-children",
        "--sort",
        "comm,sym",
        "--percent-limit",
        "0.7",
    ]))?;
    for l in report
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .take(40)
    {
        println!("    {}", l.trim_end());
    }
    Ok(())
}

pub fn run(o: &Opts) -> Res<()> {
    let tmp = TempDir::new("prof", o.common.keep)?;
    let bin = crate::daemon_binary(&o.common, &tmp.path)?;
    let mut setups = Vec::new();
    for name in ["daemon", "echo"] {
        let dir = tmp.join(name);
        let bindings = dir.join("bindings");
        fs::create_dir_all(&bindings).map_err(|e| e.to_string())?;
        fs::write(
            bindings.join(TAP),
            frames::guest_binding_text("bench-guest"),
        )
        .map_err(|e| e.to_string())?;
        let config = dir.join("nfdhcpd.conf");
        fs::write(&config, frames::daemon_config(&dir, &bindings)).map_err(|e| e.to_string())?;
        setups.push((dir, config, bindings.join(TAP)));
    }
    println!("nfdhcpd-bench profile: {}", crate::machine());
    let dlab = Lab::new("d")?;
    let elab = Lab::new("e")?;
    let daemon = Server::daemon(&dlab.host, &bin, &setups[0].1, &setups[0].0)?;
    let echo = Server::echo(&elab.host, &setups[1].1, &setups[1].2, &setups[1].0, None)?;
    let probes = match libc_of(daemon.pid) {
        Some(p) => AllocProbes::add(&p),
        None => AllocProbes { events: Vec::new() },
    };
    let mut rigs = [
        Rig::new(&dlab, &daemon, o.common.nice)?,
        Rig::new(&elab, &echo, o.common.nice)?,
    ];
    for rig in rigs.iter_mut() {
        rig.trial(Proto::Dhcp, 5000.0, 0.5, Duration::from_millis(300))?;
    }
    for rig in rigs.iter_mut() {
        println!("\n== {} (pid {}) ==", rig.server.label, rig.server.pid);
        syscalls(rig, o, &tmp.path)?;
        counters(rig, o, &tmp.path, &probes)?;
        hot_spots(rig, o, &tmp.path)?;
    }
    Ok(())
}
