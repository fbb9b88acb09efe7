//! `scale`: the daemon with many binding files (their interfaces need not
//! exist; one of them is the flooding guest's): time from exec to ready,
//! memory, a burst of binding changes written as atomic renames, and memory
//! across a long DHCPv4 flood.

use std::collections::HashSet;
use std::fs;
use std::time::{Duration, Instant};

use clap::Args;

use crate::flood::{self, Rig};
use crate::frames::{self, Proto, TAP};
use crate::lab::{Lab, TempDir};
use crate::server::{LogTail, Server};
use crate::{Common, Res};

#[derive(Args)]
pub struct Opts {
    #[command(flatten)]
    common: Common,
    /// Binding files in the data directory.
    #[arg(long, default_value_t = 10_000)]
    bindings: u32,
    /// Binding files rewritten in one burst.
    #[arg(long, default_value_t = 1_000)]
    changes: u32,
    /// DISCOVERs sent for the memory check.
    #[arg(long, default_value_t = 1_000_000)]
    requests: u64,
    /// Their rate, per second.
    #[arg(long, default_value_t = 20_000.0)]
    flood_rate: f64,
    /// Requests between two memory readings.
    #[arg(long, default_value_t = 100_000)]
    chunk: u64,
}

/// The binding name out of a `binding tapN updated: ...` log line.
fn updated_name(line: &str) -> Option<&str> {
    let rest = &line[line.find("binding ")? + 8..];
    let (name, tail) = rest.split_once(' ')?;
    tail.starts_with("updated").then_some(name)
}

pub fn run(o: &Opts) -> Res<()> {
    if o.changes >= o.bindings {
        return Err("--changes must be below --bindings".into());
    }
    let tmp = TempDir::new("scale", o.common.keep)?;
    let bin = crate::daemon_binary(&o.common, &tmp.path)?;
    let dir = tmp.join("daemon");
    let bindings = dir.join("bindings");
    fs::create_dir_all(&bindings).map_err(|e| e.to_string())?;
    fs::write(
        bindings.join(TAP),
        frames::guest_binding_text("bench-guest"),
    )
    .map_err(|e| e.to_string())?;
    for n in 1..o.bindings {
        fs::write(
            bindings.join(format!("tap{n}")),
            frames::other_binding_text(n, &format!("vm{n}.example.com")),
        )
        .map_err(|e| e.to_string())?;
    }
    let config = dir.join("nfdhcpd.conf");
    fs::write(&config, frames::daemon_config(&dir, &bindings)).map_err(|e| e.to_string())?;

    println!("nfdhcpd-bench scale: {}", crate::machine());
    println!("daemon: {}", bin.display());
    let lab = Lab::new("s")?;
    let load = flood::loadavg();
    let daemon = Server::daemon(&lab.host, &bin, &config, &dir)?;
    let ready = daemon.ready_after;
    let u_ready = daemon.usage();
    std::thread::sleep(Duration::from_secs(1));
    let u_settled = daemon.usage();
    println!(
        "start-up with {} bindings: ready {:.0} ms after exec (target <= 500), VmRSS {} kB at ready, {} kB 1 s later (target <= 16384), loadavg {load}",
        o.bindings,
        ready.as_secs_f64() * 1e3,
        u_ready.rss_kb,
        u_settled.rss_kb
    );

    // The burst: every file written under a dot-name, then renamed over
    // the old one, as careful VM managers do.
    let mut tail = LogTail::new(&daemon.log);
    tail.skip_to_end();
    let load = flood::loadavg();
    let start = Instant::now();
    for n in 1..=o.changes {
        let tmpname = bindings.join(format!(".tap{n}.tmp"));
        fs::write(
            &tmpname,
            frames::other_binding_text(n, &format!("vm{n}-renamed.example.com")),
        )
        .map_err(|e| e.to_string())?;
        fs::rename(&tmpname, bindings.join(format!("tap{n}"))).map_err(|e| e.to_string())?;
    }
    let written = start.elapsed();
    let mut seen: HashSet<String> = HashSet::new();
    let mut overflowed = false;
    let mut rescanned = false;
    let deadline = Duration::from_secs(60);
    while seen.len() < o.changes as usize && !rescanned && start.elapsed() < deadline {
        for l in tail.new_lines() {
            if let Some(n) = updated_name(&l) {
                seen.insert(n.to_string());
            }
            if l.contains("inotify queue overflowed") {
                overflowed = true;
            }
            // After an overflow the changes arrive as one rescan.
            if overflowed && l.contains("bindings in force") {
                rescanned = true;
            }
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let applied = start.elapsed();
    let u_changed = daemon.usage();
    println!(
        "{} binding changes: written in {:.0} ms, {} applied after {:.0} ms (target <= 1000){}, VmRSS {} kB, loadavg {load}",
        o.changes,
        written.as_secs_f64() * 1e3,
        if rescanned {
            "all (inotify overflow, one rescan)".to_string()
        } else {
            seen.len().to_string()
        },
        applied.as_secs_f64() * 1e3,
        if seen.len() < o.changes as usize && !rescanned {
            " INCOMPLETE"
        } else {
            ""
        },
        u_changed.rss_kb
    );

    if o.requests > 0 {
        println!(
            "memory across {} DISCOVERs at {:.0}/s (binding {TAP}; one answer logged per request):",
            o.requests, o.flood_rate
        );
        println!("  requests   loss%   p99µs   VmRSS kB   VmHWM kB  loadavg");
        let mut rig = Rig::new(&lab, &daemon, o.common.nice)?;
        let mut done = 0u64;
        while done < o.requests {
            let n = o.chunk.min(o.requests - done);
            let t = rig.trial(
                Proto::Dhcp,
                o.flood_rate,
                n as f64 / o.flood_rate,
                Duration::from_millis(300),
            )?;
            done += t.sent;
            let u = daemon.usage();
            println!(
                "  {:>8} {:>7.2} {:>7} {:>10} {:>10}  {}",
                done,
                t.loss() * 100.0,
                flood::fmt_latency(t.latency).1,
                u.rss_kb,
                u.hwm_kb,
                t.loadavg
            );
            if t.sent == 0 {
                return Err("the flood sends nothing".into());
            }
        }
    }
    Ok(())
}
