//! `nfqueue`: the daemon and the echo server, each in its own host
//! namespace with its own guest, flooded in turn with the same requests at
//! the same rates, so that both see the same machine load as nearly as
//! possible.

use std::collections::BTreeMap;
use std::fs;
use std::time::Duration;

use clap::Args;

use crate::flood::{self, Rig, Search, Trial};
use crate::frames::{self, Proto, TAP};
use crate::lab::{Lab, TempDir};
use crate::server::{LogTail, Server};
use crate::{Common, Res};

#[derive(Args)]
pub struct Opts {
    #[command(flatten)]
    common: Common,
    /// Fixed rates, requests per second.
    #[arg(long, value_delimiter = ',', default_value = "5000,20000,50000")]
    rates: Vec<f64>,
    /// Seconds of flood per fixed-rate trial.
    #[arg(long, default_value_t = 3.0)]
    duration: f64,
    /// Seconds of flood per trial of the highest-rate search.
    #[arg(long, default_value_t = 2.0)]
    search_duration: f64,
    /// Milliseconds to wait for late answers after each flood.
    #[arg(long, default_value_t = 500)]
    drain_ms: u64,
    /// Highest rate the search tries.
    #[arg(long, default_value_t = 400_000.0)]
    max_rate: f64,
    /// Bisection steps of the search after the first failing rate.
    #[arg(long, default_value_t = 4)]
    search_steps: u32,
    /// Skip the highest-rate search.
    #[arg(long)]
    no_search: bool,
    /// Which floods: dhcp, rs.
    #[arg(long, value_delimiter = ',', default_value = "dhcp,rs")]
    protocols: Vec<String>,
    /// Receive buffer of the echo server's NFQUEUE sockets, bytes. The
    /// default is the daemon's own (src/host/queue.rs), so that both meet a
    /// burst with the same room; 0 leaves the kernel's default.
    #[arg(long, value_name = "BYTES", default_value_t = 8 << 20)]
    echo_netlink_rcvbuf: i32,
}

/// A host namespace with the guest's binding and configuration in `dir`.
fn prepare(dir: &std::path::Path) -> Res<(std::path::PathBuf, std::path::PathBuf)> {
    let bindings = dir.join("bindings");
    fs::create_dir_all(&bindings).map_err(|e| e.to_string())?;
    let binding = bindings.join(TAP);
    fs::write(&binding, frames::guest_binding_text("bench-guest")).map_err(|e| e.to_string())?;
    let config = dir.join("nfdhcpd.conf");
    fs::write(&config, frames::daemon_config(dir, &bindings)).map_err(|e| e.to_string())?;
    Ok((config, binding))
}

fn per_thread(t: &Trial) -> String {
    let n = t.handled();
    if n == 0 {
        return String::new();
    }
    t.usage
        .iter()
        .filter(|(_, u)| u.ticks > 0 || u.voluntary + u.involuntary > 0)
        .map(|(name, u)| {
            format!(
                "{name} {:.1} µs {:.2} csw",
                u.cpu_secs() * 1e6 / n as f64,
                (u.voluntary + u.involuntary) as f64 / n as f64
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// The daemon's own counters (SIGUSR1 makes it log them).
fn daemon_counters(d: &Server) -> Vec<String> {
    let mut tail = LogTail::new(&d.log);
    tail.skip_to_end();
    d.signal(libc::SIGUSR1);
    let mut out = Vec::new();
    let start = std::time::Instant::now();
    while start.elapsed() < Duration::from_secs(3) {
        for l in tail.new_lines() {
            if let Some(i) = l.find("info: ") {
                let msg = &l[i + 6..];
                if msg.starts_with("queue ")
                    || msg.starts_with("requests:")
                    || msg.starts_with("answers:")
                    || msg.starts_with("refusals:")
                    || msg.starts_with("accepted_unknown")
                {
                    out.push(msg.to_string());
                }
                if msg.starts_with("accepted_unknown") {
                    return out;
                }
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    out
}

pub fn run(o: &Opts) -> Res<()> {
    let protos: Vec<Proto> = o
        .protocols
        .iter()
        .map(|p| match p.as_str() {
            "dhcp" => Ok(Proto::Dhcp),
            "rs" => Ok(Proto::Rs),
            other => Err(format!("unknown protocol {other:?} (dhcp, rs)")),
        })
        .collect::<Res<_>>()?;
    let drain = Duration::from_millis(o.drain_ms);
    let tmp = TempDir::new("nfq", o.common.keep)?;
    let bin = crate::daemon_binary(&o.common, &tmp.path)?;
    let ddir = tmp.join("daemon");
    let edir = tmp.join("echo");
    let (dconf, _) = prepare(&ddir)?;
    let (econf, ebinding) = prepare(&edir)?;

    println!("nfdhcpd-bench nfqueue: {}", crate::machine());
    println!("daemon: {}", bin.display());
    if let Some(n) = o.common.nice {
        println!("servers and flood threads at nice {n}");
    }
    let echo_rcvbuf = (o.echo_netlink_rcvbuf > 0).then_some(o.echo_netlink_rcvbuf);
    match echo_rcvbuf {
        Some(b) => println!("echo NFQUEUE receive buffers: {b} bytes"),
        None => println!("echo NFQUEUE receive buffers: the kernel's default"),
    }
    let dlab = Lab::new("d")?;
    let elab = Lab::new("e")?;
    let daemon = Server::daemon(&dlab.host, &bin, &dconf, &ddir)?;
    let echo = Server::echo(&elab.host, &econf, &ebinding, &edir, echo_rcvbuf)?;
    println!(
        "daemon ready after {:.0} ms (pid {}), echo ready after {:.0} ms (pid {})",
        daemon.ready_after.as_secs_f64() * 1e3,
        daemon.pid,
        echo.ready_after.as_secs_f64() * 1e3,
        echo.pid
    );
    let mut drig = Rig::new(&dlab, &daemon, o.common.nice)?;
    let mut erig = Rig::new(&elab, &echo, o.common.nice)?;

    // Warm-up: first-use costs (page faults, lazily grown buffers) stay
    // out of the figures.
    for p in &protos {
        for rig in [&mut drig, &mut erig] {
            let t = rig.trial(*p, 5000.0, 0.5, drain)?;
            if t.replies == 0 {
                return Err(format!(
                    "{}: no answer to the warm-up {:?} flood; see {}",
                    t.target,
                    p,
                    rig.server.log.display()
                ));
            }
        }
    }
    let rss_start = daemon.usage();
    let mut total_requests = 0u64;

    for p in &protos {
        println!("\n== {} ==", p.title());
        if *p == Proto::Rs {
            println!("(RAs carry nothing of the RS: answers are paired with requests in order; '~' marks latencies of trials with loss, which that pairing overstates)");
        }
        println!("{}", flood::TABLE_HEADER);
        let mut fixed: BTreeMap<(u64, &'static str), Trial> = BTreeMap::new();
        for &rate in &o.rates {
            for rig in [&mut drig, &mut erig] {
                let t = rig.trial(*p, rate, o.duration, drain)?;
                println!("{}", flood::row(&t));
                if t.target == "daemon" {
                    total_requests += t.sent;
                }
                fixed.insert((rate as u64, t.target), t);
            }
        }
        // Where the daemon's time goes, per thread, at each fixed rate.
        println!("daemon per request, by thread:");
        for &rate in &o.rates {
            if let Some(t) = fixed.get(&(rate as u64, "daemon")) {
                println!("  {:>6.0}/s: {}", rate, per_thread(t));
            }
        }

        let mut best: BTreeMap<&'static str, Option<Trial>> = BTreeMap::new();
        let search = Search {
            start: 5000.0,
            cap: o.max_rate,
            secs: o.search_duration,
            drain,
            steps: o.search_steps,
        };
        if !o.no_search {
            println!(
                "highest rate with < 1 % loss ({} s trials):",
                o.search_duration
            );
            println!("{}", flood::TABLE_HEADER);
            for rig in [&mut drig, &mut erig] {
                let mut log = |t: &Trial| {
                    println!("{}", flood::row(t));
                    if t.target == "daemon" {
                        total_requests += t.sent;
                    }
                };
                let b = rig.search(*p, &search, &mut log)?;
                best.insert(rig.server.label, b);
            }
        }

        println!("summary ({}):", p.title());
        let rate_of = |k: &str| best.get(k).and_then(|t| t.as_ref()).map(|t| t.sent_rate());
        if let (Some(d), Some(e)) = (rate_of("daemon"), rate_of("echo")) {
            println!(
                "  max sustained: daemon {d:.0}/s, echo {e:.0}/s, daemon/echo {:.2} (target >= 0.80)",
                d / e
            );
        }
        // The latency comparison at 20k/s, or the middle fixed rate.
        let ref_rate = if o.rates.iter().any(|r| *r as u64 == 20_000) {
            20_000
        } else {
            o.rates
                .get(o.rates.len() / 2)
                .map(|r| *r as u64)
                .unwrap_or(0)
        };
        let p99 = |k: &'static str| {
            fixed
                .get(&(ref_rate, k))
                .and_then(|t| t.latency)
                .map(|l| l.p99)
        };
        if let (Some(d), Some(e)) = (p99("daemon"), p99("echo")) {
            println!(
                "  p99 at {ref_rate}/s: daemon {d:.0} µs, echo {e:.0} µs, daemon/echo {:.2} (target <= 2.00)",
                d / e
            );
        }
        for &rate in &o.rates {
            let cpu = |k: &'static str| fixed.get(&(rate as u64, k)).map(|t| t.cpu_us);
            if let (Some(d), Some(e)) = (cpu("daemon"), cpu("echo")) {
                println!(
                    "  CPU per request at {rate:.0}/s: daemon {d:.1} µs, echo {e:.1} µs, daemon/echo {:.2}",
                    d / e.max(1e-9)
                );
            }
        }
    }

    let rss_end = daemon.usage();
    println!("\ndaemon counters:");
    for l in daemon_counters(&daemon) {
        println!("  {l}");
    }
    println!(
        "daemon memory: VmRSS {} kB after warm-up, {} kB after {} more requests (VmHWM {} kB)",
        rss_start.rss_kb, rss_end.rss_kb, total_requests, rss_end.hwm_kb
    );
    println!("loadavg at the end: {}", flood::loadavg());
    Ok(())
}
