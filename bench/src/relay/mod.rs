//! `relay`: relay mode end to end, against the real test Nautobot of
//! `tests/nautobot` and through ISC dhcrelay, with the integration tests'
//! own harness (tests/common, included below): new clients one at a time,
//! then new clients all at once, each set then renewed and released; the
//! burst's clients also renew one by one, spread over a minute. The API
//! calls are the daemon's own counters (its SIGUSR1 dump); after each step
//! an audit compares Nautobot's records with what the clients were ACKed.
//! For more clients than the test /24 holds, the bench creates a larger
//! prefix for the run ([`pool`]).
//!
//! The harness makes everything: a router namespace with dhcrelay, a daemon
//! namespace that reaches Nautobot through `netns-bridge.sh`, and one client
//! namespace per run, all named `nfdt-<pid>-...`. Its guards remove them on
//! return and unwind; on a signal the signal thread removes them by that
//! prefix. Nautobot is left as it was found: the harness removes the `dhcp`
//! addresses of the test prefix (the daemon's leases) before and after, the
//! bench removes the prefix it created with its leases, and so does the
//! signal thread.

#[path = "../../../tests/common/mod.rs"]
mod common;

mod audit;
mod pool;

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use clap::Args;
use dhcproto::v4::{DhcpOption, Message, MessageType};
use dhcproto::Encodable;

use crate::flood::{loadavg, renice_thread};
use crate::lab::{self, TempDir};
use crate::{Common, Res};
use audit::audit;
use common::relay::{
    fmt_mac, in_netns, nautobot, nautobot_scripts, nautobot_url, unix_now, Api, Burst, BurstClient,
    Counters, Phase, RelayConfig, RelayDaemon, RelayLab, Retransmit, GIADDR,
};
use common::Guest;
use pool::Pool;

#[derive(Args)]
pub struct Opts {
    #[command(flatten)]
    common: Common,
    /// New clients of the burst (MACs 02:bb:b2:00:HI:LO), and of the
    /// serial run unless --serial says otherwise.
    #[arg(long, default_value_t = 200)]
    clients: usize,
    /// New clients of the serial run (MACs 02:bb:b1:00:HI:LO); 0 skips it.
    /// Default: --clients.
    #[arg(long, value_name = "N")]
    serial: Option<usize>,
    /// Prefix length of the pool: 24 is the seeded test prefix
    /// 192.0.2.0/24 (249 addresses); 16 to 23 make the bench create the
    /// prefix of that length around the relay's address (22: 192.0.0.0/22,
    /// 1,014 free addresses) with a role of its own, serve only that role,
    /// and remove it and its leases afterwards.
    #[arg(long, default_value_t = 24, value_name = "LEN")]
    pool_prefix_len: u8,
    /// The burst's clients renew (RENEWING: unicast from their address)
    /// one after the other, evenly over SECS.
    #[arg(long, default_value_t = 60, value_name = "SECS")]
    renew_spread: u64,
    /// Backend workers of the daemon (`[nautobot] workers`).
    #[arg(long, default_value_t = 4)]
    workers: usize,
    /// Clients retransmit every SECS instead of as RFC 2131 says (4 s, then
    /// 8 s, 16 s, ... up to 64 s, each +-1 s at random).
    #[arg(long, value_name = "SECS")]
    retransmit_every: Option<f64>,
    /// Seconds a burst step (DORA, renewal, release) may take.
    #[arg(long, default_value_t = 600)]
    deadline: u64,
}

/// The third octet of the clients' MACs (the harness's tests use 1 to 3).
const TAG_SERIAL: u8 = 0xb1;
const TAG_BURST: u8 = 0xb2;
/// How long one client of the serial run may take for one exchange.
const SERIAL_DEADLINE: Duration = Duration::from_secs(120);
/// Lease time the daemon hands out (the harness's default).
const LEASE_SECS: u32 = 3600;
/// Printed next to the figures (README, "Relay mode (Nautobot)").
const TARGET_DORA: f64 = 4.0;
const TARGET_RENEWAL: f64 = 1.0;

pub fn run(o: &Opts) -> Res<()> {
    if o.clients == 0 {
        return Err("--clients must be at least 1".into());
    }
    if !(16..=24).contains(&o.pool_prefix_len) {
        return Err("--pool-prefix-len must be 16 to 24".into());
    }
    if o.retransmit_every
        .is_some_and(|s| !(s > 0.0 && s.is_finite()))
    {
        return Err("--retransmit-every must be a positive number of seconds".into());
    }
    let tmp = TempDir::new("relay", o.common.keep)?;
    let bin = crate::daemon_binary(&o.common, &tmp.path)?;
    // The harness looks for the scripts in tests/nautobot of its own
    // crate, which here is bench/: point it at the repository's.
    if std::env::var_os("NFDT_NAUTOBOT_SCRIPTS").is_none() {
        let scripts = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/nautobot");
        std::env::set_var("NFDT_NAUTOBOT_SCRIPTS", scripts);
    }
    let bridge = nautobot_scripts().join("netns-bridge.sh");
    if !bridge.exists() {
        return Err(format!(
            "{} is missing (set NFDT_NAUTOBOT_SCRIPTS to the test Nautobot's scripts)",
            bridge.display()
        ));
    }
    check_nautobot()?;
    // The harness starts the daemon as ./nfdhcpd (build.rs): the copy here.
    std::env::set_current_dir(&tmp.path).map_err(|e| format!("{}: {e}", tmp.path.display()))?;
    lab::register_foreign(format!("nfdt-{}-", std::process::id()), stop_bridge);
    let r = lab::with_default_signal_mask(|| bench(o, &bin)).and_then(|r| r);
    let _ = std::env::set_current_dir("/");
    r
}

/// Nautobot answers with the token: otherwise the harness would skip.
fn check_nautobot() -> Res<()> {
    match Api::new().get_text("/api/") {
        Ok((200, _)) => Ok(()),
        Ok((status, text)) => Err(format!(
            "Nautobot at {} answers HTTP {status}: {}",
            nautobot_url(),
            text.chars().take(200).collect::<String>()
        )),
        Err(e) => Err(format!(
            "Nautobot at {} does not answer ({e}): start it with {}",
            nautobot_url(),
            nautobot_scripts().join("start.sh").display()
        )),
    }
}

/// What the signal thread runs for each of the harness's namespaces: the
/// bridge's outer socat lives in the root namespace.
fn stop_bridge(ns: &str) {
    let _ = lab::command(nautobot_scripts().join("netns-bridge.sh"))
        .args(["stop", ns])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    let run = std::env::var("NB_BRIDGE_RUNDIR").unwrap_or_else(|_| "/run".into());
    let _ = fs::remove_file(Path::new(&run).join(format!("nb-bridge.{ns}.log")));
}

fn bench(o: &Opts, bin: &Path) -> Res<()> {
    renice_thread(o.common.nice);
    let rt = match o.retransmit_every {
        Some(s) => Retransmit::Every(Duration::from_secs_f64(s)),
        None => Retransmit::Rfc2131,
    };
    let serial = o.serial.unwrap_or(o.clients);
    // The harness's lock, shared with the tests that use Nautobot (flock):
    // it waits for them, and they wait for the whole run.
    eprintln!("taking the Nautobot test lock");
    let Some(nb) = nautobot("nfdhcpd-bench relay") else {
        return Err(format!("Nautobot at {} is not usable", nautobot_url()));
    };
    lab::register_cleanup(
        "nautobot",
        Box::new(|| {
            let api = Api::new();
            let _ = pool::remove(&api);
            let _ = api.clean();
        }),
    );
    // Dropped after the lab (the daemon stops first), before the lock.
    let pool_guard = PoolGuard;
    let pool = if o.pool_prefix_len < 24 {
        eprintln!("creating the pool's prefix in Nautobot");
        pool::seed(&nb.api, o.pool_prefix_len)?
    } else {
        Pool::test_prefix()
    };
    let free = pool.free(&nb.api)?;
    if o.clients.max(serial) > free {
        return Err(format!(
            "{} clients do not fit: the pool of {} has {free} free addresses{}",
            o.clients.max(serial),
            pool.cidr(),
            if pool.seeded {
                ""
            } else {
                " (--pool-prefix-len 22 makes a larger one)"
            }
        ));
    }
    let version = nb
        .api
        .get_text("/api/status/")
        .ok()
        .and_then(|(_, t)| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| v["nautobot-version"].as_str().map(str::to_owned))
        .unwrap_or_else(|| "?".into());

    println!("nfdhcpd-bench relay: {}", crate::machine());
    println!("daemon: {} ({} backend workers)", bin.display(), o.workers);
    println!(
        "Nautobot {version} at {}, prefix {} ({free} free addresses{}); ISC dhcrelay in a \
         router namespace; {serial} clients in the serial run, {} in the burst; client \
         retransmission: {}",
        nautobot_url(),
        pool.cidr(),
        if pool.seeded {
            format!(
                ", created for the run with role {:?}, the only one served",
                pool.role
            )
        } else {
            String::new()
        },
        o.clients,
        match rt {
            Retransmit::Rfc2131 => "RFC 2131 (4 s, 8 s, 16 s, ... +-1 s)".to_string(),
            Retransmit::Every(d) => format!("every {:.1} s", d.as_secs_f64()),
        }
    );
    if let Some(n) = o.common.nice {
        println!("daemon, dhcrelay and clients at nice {n}");
    }

    let cfg = RelayConfig {
        lease_time: LEASE_SECS,
        workers: o.workers,
        prefix_roles: vec![pool.role.clone()],
        ..RelayConfig::default()
    };
    let mut rl = RelayLab::new("nfdhcpd-bench relay", 1)
        .ok_or("the relay lab cannot run here (needs root)")?;
    if pool.seeded {
        route_pool(&mut rl, &pool);
    }
    let deadline = Duration::from_secs(o.deadline);
    let mut failures = Vec::new();

    let serial_figures = if serial > 0 {
        start_daemon(&mut rl, &cfg, o.common.nice)?;
        println!();
        println!(
            "serial: one client at a time, each DISCOVER -> OFFER -> REQUEST -> ACK before the \
             next"
        );
        let f = serial_run(&mut rl, &nb.api, &pool, serial, rt, &mut failures)?;
        // The burst starts from the same state: a fresh daemon, no leases.
        rl.d(0).stop();
        clean_leases(&nb.api, &pool)?;
        Some(f)
    } else {
        None
    };
    start_daemon(&mut rl, &cfg, o.common.nice)?;
    println!();
    println!("burst: all clients at once, retransmitting until their ACK");
    let spread = Duration::from_secs(o.renew_spread);
    let burst = burst_run(
        &mut rl,
        &nb.api,
        &pool,
        o.clients,
        rt,
        deadline,
        spread,
        &mut failures,
    )?;

    summary(serial_figures.as_ref(), &burst);
    rl.d(0).stop();

    // The harness keeps its scratch directory with NFDT_KEEP, and then also
    // the leases in Nautobot: only the former is wanted.
    if o.common.keep {
        std::env::set_var("NFDT_KEEP", "1");
    }
    drop(rl);
    std::env::remove_var("NFDT_KEEP");
    drop(pool_guard);
    drop(nb);
    lab::unregister_cleanup("nautobot");
    if !failures.is_empty() {
        return Err(failures.join("; "));
    }
    Ok(())
}

/// Removes the bench's prefix (if any) when the run ends, also by an
/// error or a panic.
struct PoolGuard;

impl Drop for PoolGuard {
    fn drop(&mut self) {
        if let Err(e) = pool::remove(&Api::new()) {
            eprintln!("removing the bench's prefix from Nautobot: {e}");
        }
    }
}

/// The daemon's leases of the pool, gone (the harness's clean-up knows
/// only the test prefix).
fn clean_leases(api: &Api, pool: &Pool) -> Res<()> {
    api.clean().map_err(|e| format!("Nautobot clean-up: {e}"))?;
    api.remove_dhcp(&pool.cidr())
        .map_err(|e| format!("Nautobot clean-up: {e}"))?;
    Ok(())
}

/// The harness routes only the test /24 between the clients and the
/// daemon: a larger pool needs its own routes for the unicasts (a
/// RENEWING client's ACK goes to its address).
fn route_pool(rl: &mut RelayLab, pool: &Pool) {
    let cidr = pool.cidr();
    rl.lab
        .host
        .run(&["ip", "route", "add", &cidr, "dev", "br0"]);
    rl.d(0)
        .ns
        .run(&["ip", "route", "add", &cidr, "via", "198.51.100.2"]);
}

fn start_daemon(rl: &mut RelayLab, cfg: &RelayConfig, nice: Option<i32>) -> Res<()> {
    if !rl.d(0).start(cfg, &[]) {
        return Err(format!(
            "the daemon's Nautobot preparation failed; log:\n{}",
            rl.d(0).log()
        ));
    }
    if let Some(n) = nice {
        renice(rl.d(0).pid() as i32, n);
        for p in rl.lab.host.pids() {
            renice(p, n);
        }
    }
    Ok(())
}

/// Gives every thread of `pid` the nice value `n`.
fn renice(pid: i32, n: i32) {
    if let Ok(rd) = fs::read_dir(format!("/proc/{pid}/task")) {
        for e in rd.flatten() {
            if let Some(tid) = e.file_name().to_str().and_then(|t| t.parse::<u32>().ok()) {
                // SAFETY: setpriority on a thread of a process we started.
                unsafe { libc::setpriority(libc::PRIO_PROCESS, tid, n) };
            }
        }
    }
}

/// What one step (DORA, renewal or release of every client) cost.
struct Step {
    what: &'static str,
    clients: usize,
    /// Clients bound (DORA, renewal) or releases the daemon took.
    done: usize,
    took: Duration,
    /// Per client, from its first datagram to its ACK.
    times: Vec<Duration>,
    /// Datagrams the clients sent, and how many a loss-free step needs.
    sent: u64,
    clean: u64,
    naks: u64,
    restarts: u64,
    c0: Counters,
    c1: Counters,
}

impl Step {
    fn d(&self, k: &str) -> u64 {
        self.c1.get(k).saturating_sub(self.c0.get(k))
    }

    /// A counter older daemons do not have (0 then).
    fn d_opt(&self, k: &str) -> u64 {
        let v = |c: &Counters| c.relay.get(k).or_else(|| c.socket.get(k)).copied();
        v(&self.c1)
            .unwrap_or(0)
            .saturating_sub(v(&self.c0).unwrap_or(0))
    }

    fn answers(&self, k: &str) -> u64 {
        self.c1.answer(k).saturating_sub(self.c0.answer(k))
    }

    fn calls_per_client(&self) -> f64 {
        self.d("backend_calls") as f64 / self.clients as f64
    }

    /// Client messages that need a job of their own: two per DORA, one per
    /// renewal or release; a client that went back to INIT needs two more.
    fn messages(&self) -> u64 {
        let per = if self.what == "DORA" { 2 } else { 1 };
        per * self.clients as u64 + 2 * self.restarts
    }

    fn print(&self, target: Option<f64>) {
        let secs = self.took.as_secs_f64();
        let mut line = format!(
            "  {:<8} {}/{} in {secs:.1} s = {:.1}/s",
            self.what,
            self.done,
            self.clients,
            self.done as f64 / secs.max(1e-9)
        );
        if !self.times.is_empty() {
            let (p50, p99, max) = percentiles(&self.times);
            line += &format!(
                "; per client median {:.3} s, p90 {:.3} s, p99 {:.3} s, max {:.3} s",
                p50.as_secs_f64(),
                pct(&self.times, 0.90).as_secs_f64(),
                p99.as_secs_f64(),
                max.as_secs_f64()
            );
        }
        println!("{line}; loadavg {}", loadavg());
        let calls = self.d("backend_calls");
        let per = self.calls_per_client();
        let noun = match self.what {
            "DORA" => "new-client DORA",
            "renewing" => "renewal",
            w => w,
        };
        let mut line = format!("           API calls {calls} = {per:.2} per {noun}");
        if let Some(t) = target {
            line += &format!(
                " (target <= {t}: {})",
                if per <= t + 1e-9 { "met" } else { "MISSED" }
            );
        }
        println!("{line}");
        let jobs = self.d("jobs");
        if self.what == "release" {
            println!(
                "           daemon: received {} (each RELEASE twice in this lab: routed to the \
                 daemon, and relayed by dhcrelay, which hears it on the clients' bridge), \
                 absorbed {}, jobs {jobs} for {} releases",
                self.d("received"),
                self.d("absorbed"),
                self.clients
            );
        } else if self.what == "renewing" {
            println!(
                "           clients sent {} datagrams, {} beyond a loss-free exchange; daemon: \
                 received {} (each REQUEST twice in this lab: routed to the daemon, and relayed \
                 by dhcrelay, which hears it on the clients' bridge), absorbed {}, jobs {jobs} \
                 for {} client messages ({} extra)",
                self.sent,
                self.sent.saturating_sub(self.clean),
                self.d("received"),
                self.d("absorbed"),
                self.messages(),
                jobs.saturating_sub(self.messages())
            );
        } else {
            let received = self.d("received");
            println!(
                "           clients sent {} datagrams, {} beyond a loss-free exchange; daemon: \
                 received {received} ({} lost on the way), absorbed {} (a copy while the \
                 client's job ran), offers_capped {} (a DISCOVER that waited: max_offers \
                 outstanding), jobs {jobs} for {} client messages ({} extra)",
                self.sent,
                self.sent.saturating_sub(self.clean),
                self.sent.saturating_sub(received),
                self.d("absorbed"),
                self.d_opt("offers_capped"),
                self.messages(),
                jobs.saturating_sub(self.messages())
            );
        }
        let ignored = map_diff(&self.c0.ignored, &self.c1.ignored);
        if !ignored.is_empty() || self.d("wrong_interface") > 0 {
            println!(
                "           daemon: requests {}, ignored {ignored}, wrong_interface {}",
                self.d("requests"),
                self.d("wrong_interface")
            );
        }
        let errors = self.c1.errors().saturating_sub(self.c0.errors());
        let no_lease = (self.c1.no_lease.values().sum::<u64>())
            .saturating_sub(self.c0.no_lease.values().sum());
        let answers = if self.what == "release" {
            String::new()
        } else {
            format!(
                "answers OFFER {} ACK {} NAK {}; clients NAKed {}, back to INIT {}; ",
                self.answers("DHCPOFFER"),
                self.answers("DHCPACK"),
                self.answers("DHCPNAK"),
                self.naks,
                self.restarts,
            )
        };
        println!(
            "           {answers}channel_drops {}, jobs_refused {}, send_errors {}, backend \
             errors {errors}, no lease {no_lease}",
            self.d("channel_drops"),
            self.d("jobs_refused"),
            self.d("send_errors"),
        );
    }
}

/// The counters of `after` that grew since `before`, as `name n, ...`.
fn map_diff(before: &BTreeMap<String, u64>, after: &BTreeMap<String, u64>) -> String {
    after
        .iter()
        .filter_map(|(k, v)| {
            let d = v.saturating_sub(before.get(k).copied().unwrap_or(0));
            (d > 0).then(|| format!("{k} {d}"))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Nearest-rank median, 99th percentile and maximum.
fn percentiles(t: &[Duration]) -> (Duration, Duration, Duration) {
    (pct(t, 0.50), pct(t, 0.99), pct(t, 1.0))
}

/// The nearest-rank `q` quantile; zero for no times.
fn pct(t: &[Duration], q: f64) -> Duration {
    let mut t = t.to_vec();
    t.sort();
    match t.len() {
        0 => Duration::ZERO,
        n => t[((q * n as f64).ceil() as usize).clamp(1, n) - 1],
    }
}

struct RunFigures {
    dora: Step,
    renewal: Step,
    release: Step,
}

/// Counters once the daemon has no job left (late retransmissions included).
fn quiet(d: &RelayDaemon, before: &Counters) -> Counters {
    d.settle(before, 0, Duration::from_secs(120))
}

fn client_stats(clients: &[BurstClient]) -> (usize, Vec<Duration>, u64, u64, u64) {
    let bound = clients.iter().filter(|c| c.phase == Phase::Bound).count();
    let times = clients.iter().filter_map(|c| c.took).collect();
    let sent = clients.iter().map(|c| u64::from(c.sent)).sum();
    let naks = clients.iter().map(|c| u64::from(c.naks)).sum();
    let restarts = clients.iter().map(|c| u64::from(c.restarts)).sum();
    (bound, times, sent, naks, restarts)
}

fn progress(what: &str, i: usize, n: usize, start: Instant) {
    if (i + 1) % 50 == 0 && i + 1 < n {
        eprintln!(
            "  ... {what} {}/{n} after {:.0} s",
            i + 1,
            start.elapsed().as_secs_f64()
        );
    }
}

fn serial_run(
    rl: &mut RelayLab,
    api: &Api,
    pool: &Pool,
    n: usize,
    rt: Retransmit,
    failures: &mut Vec<String>,
) -> Res<RunFigures> {
    let g = rl.guest("tapa", "02:bb:fe:00:00:01");
    // The clients, and a burst of one that runs each in turn.
    let mut clients = Burst::new(&g, n, TAG_SERIAL).clients;
    let mut one = Burst::new(&g, 1, TAG_SERIAL);
    let d = &rl.daemons[0];

    let c0 = d.counters();
    let started = unix_now();
    let start = Instant::now();
    for (i, client) in clients.iter_mut().enumerate() {
        let mut c = client.clone();
        c.sent = 0;
        one.clients = vec![c];
        one.dora(rt, SERIAL_DEADLINE);
        *client = one.clients.pop().expect("one client");
        if client.phase != Phase::Bound {
            return Err(format!(
                "serial DORA: client {} not bound within {SERIAL_DEADLINE:?}; counters:\n{}",
                fmt_mac(&client.mac),
                d.counters()
            ));
        }
        progress("DORA", i, n, start);
    }
    let took = start.elapsed();
    let acked_at = unix_now();
    let c1 = quiet(d, &c0);
    let (done, times, sent, naks, restarts) = client_stats(&clients);
    let dora = Step {
        what: "DORA",
        clients: n,
        done,
        took,
        times,
        sent,
        clean: 2 * n as u64,
        naks,
        restarts,
        c0,
        c1: c1.clone(),
    };
    dora.print(Some(TARGET_DORA));
    check(
        api,
        pool,
        "serial DORA",
        &clients,
        (started, acked_at),
        failures,
    )?;

    // Renewal: REQUEST with ciaddr, broadcast through the relay (REBINDING),
    // as the harness does.
    let started = unix_now();
    let start = Instant::now();
    for (i, client) in clients.iter_mut().enumerate() {
        let mut c = client.clone();
        c.sent = 0;
        one.clients = vec![c];
        one.rebind(rt, SERIAL_DEADLINE);
        *client = one.clients.pop().expect("one client");
        if client.phase != Phase::Bound {
            return Err(format!(
                "serial renewal: client {} not bound within {SERIAL_DEADLINE:?}",
                fmt_mac(&client.mac)
            ));
        }
        progress("renewals", i, n, start);
    }
    let took = start.elapsed();
    let acked_at = unix_now();
    let c2 = quiet(d, &c1);
    let (done, times, sent, naks, restarts) = client_stats(&clients);
    let renewal = Step {
        what: "renewal",
        clients: n,
        done,
        took,
        times,
        sent,
        clean: n as u64,
        naks,
        restarts,
        c0: c1,
        c1: c2.clone(),
    };
    renewal.print(Some(TARGET_RENEWAL));
    check(
        api,
        pool,
        "serial renewal",
        &clients,
        (started, acked_at),
        failures,
    )?;

    // Release, one at a time: each waits until the daemon has taken it.
    configure_addresses(&g, &clients, pool.len, rl.lab.tmp.path())?;
    let start = Instant::now();
    let mut before = c2.clone();
    let mut times = Vec::with_capacity(n);
    for (i, c) in clients.iter().enumerate() {
        let t = Instant::now();
        send_release(&g, c, 0x5e1e_0000 + i as u32);
        before = d.settle(&before, 1, SERIAL_DEADLINE);
        times.push(t.elapsed());
        progress("releases", i, n, start);
    }
    let took = start.elapsed();
    let c3 = quiet(d, &c2);
    let release = Step {
        what: "release",
        clients: n,
        done: n,
        took,
        times: Vec::new(),
        sent: n as u64,
        clean: n as u64,
        naks: 0,
        restarts: 0,
        c0: c2,
        c1: c3,
    };
    release.print(None);
    let (p50, p99, _) = percentiles(&times);
    println!(
        "           (each release waited for: median {:.3} s, p99 {:.3} s, including the \
         counter polls)",
        p50.as_secs_f64(),
        p99.as_secs_f64()
    );
    Ok(RunFigures {
        dora,
        renewal,
        release,
    })
}

/// The audit of a step (see [`audit`]), printed; a mismatch is kept in
/// `failures` and ends the run with an error once the figures are out.
/// Whatever else uses the test prefix (tests/e2e_relay.rs,
/// tests/nautobot_backend.rs, another run of this) removes the daemon's
/// records when it starts and ends, and then the audit says so.
fn check(
    api: &Api,
    pool: &Pool,
    step: &str,
    clients: &[BurstClient],
    window: (i64, i64),
    failures: &mut Vec<String>,
) -> Res<()> {
    let acked: Vec<([u8; 6], Ipv4Addr)> = clients
        .iter()
        .filter_map(|c| Some((c.mac, c.addr?)))
        .collect();
    let a = audit(api, pool, step, &acked, LEASE_SECS, Some(window))
        .map_err(|e| format!("the audit after the {step} cannot read Nautobot: {e}"))?;
    a.print();
    if !a.ok() {
        failures.push(a.error());
    }
    Ok(())
}

/// Puts every client's address on the guest's interface, and a route to
/// the daemons, so that each can unicast its RELEASE from its own address.
fn configure_addresses(g: &Guest, clients: &[BurstClient], len: u8, dir: &Path) -> Res<()> {
    let mut batch = String::new();
    for c in clients {
        let a = c.addr.ok_or("a client without an address")?;
        batch += &format!("addr add {a}/{len} dev {}\n", g.ifname);
    }
    batch += &format!("route add 198.51.100.0/22 via {GIADDR}\n");
    let path: PathBuf = dir.join("serial-release.batch");
    fs::write(&path, batch).map_err(|e| format!("{}: {e}", path.display()))?;
    g.ns.run(&["ip", "-batch", path.to_str().unwrap_or_default()]);
    Ok(())
}

/// RELEASE by unicast to the client's server, from the client's address.
fn send_release(g: &Guest, c: &BurstClient, xid: u32) {
    let (addr, server) = (c.addr.expect("bound"), c.server.expect("bound"));
    let mut m = Message::default();
    m.set_xid(xid).set_chaddr(&c.mac).set_ciaddr(addr);
    let o = m.opts_mut();
    o.insert(DhcpOption::MessageType(MessageType::Release));
    o.insert(DhcpOption::ServerIdentifier(server));
    let mut cid = vec![1];
    cid.extend_from_slice(&c.mac);
    o.insert(DhcpOption::ClientIdentifier(cid));
    let payload = m.to_vec().expect("RELEASE encodes");
    in_netns(&g.ns.name, || {
        let s = UdpSocket::bind(SocketAddrV4::new(addr, 0))
            .unwrap_or_else(|e| panic!("bind {addr}: {e}"));
        s.send_to(&payload, SocketAddrV4::new(server, 67))
            .unwrap_or_else(|e| panic!("RELEASE from {addr}: {e}"));
    });
}

/// What the burst adds to a run's figures.
struct BurstFigures {
    run: RunFigures,
    /// Clients that went back to INIT in the DORA after an OFFER: (all,
    /// by a NAK, by a REQUEST left unanswered).
    reinit: (usize, usize, usize),
    /// Addresses ACKed to two MACs.
    duplicates: usize,
    load_before: String,
    load_after: String,
    /// The renewals spread over `spread`.
    renewing: Step,
    spread: Duration,
}

#[allow(clippy::too_many_arguments)]
fn burst_run(
    rl: &mut RelayLab,
    api: &Api,
    pool: &Pool,
    n: usize,
    rt: Retransmit,
    deadline: Duration,
    spread: Duration,
    failures: &mut Vec<String>,
) -> Res<BurstFigures> {
    let g = rl.guest("tapb", "02:bb:fe:00:00:02");
    let mut b = Burst::new(&g, n, TAG_BURST);
    b.prefix_len = pool.len;
    let d = &rl.daemons[0];

    let load_before = loadavg();
    let c0 = d.counters();
    let started = unix_now();
    let took = b.dora(rt, deadline);
    let acked_at = unix_now();
    let load_after = loadavg();
    let c1 = quiet(d, &c0);
    let (done, times, sent, naks, restarts) = client_stats(&b.clients);
    let dora = Step {
        what: "DORA",
        clients: n,
        done,
        took,
        times,
        sent,
        clean: 2 * n as u64,
        naks,
        restarts,
        c0,
        c1: c1.clone(),
    };
    dora.print(Some(TARGET_DORA));
    if b.stray > 0 {
        println!(
            "           {} answers the clients did not expect (duplicates)",
            b.stray
        );
    }
    let reinit = (
        b.clients.iter().filter(|c| c.reinit).count(),
        b.clients.iter().filter(|c| c.reinit && c.naks > 0).count(),
        b.clients
            .iter()
            .filter(|c| c.reinit && c.gave_up > 0)
            .count(),
    );
    let duplicates = duplicate_addresses(&b.clients);
    let (p50, p90, p99) = (
        pct(&dora.times, 0.50),
        pct(&dora.times, 0.90),
        pct(&dora.times, 0.99),
    );
    println!(
        "           {}: {done} of {n} bound after {:.1} s; API calls per client {:.2}; time to \
         ACK p50 {:.3} s, p90 {:.3} s, p99 {:.3} s",
        if done == n {
            "all bound"
        } else {
            "NOT ALL BOUND"
        },
        took.as_secs_f64(),
        dora.calls_per_client(),
        p50.as_secs_f64(),
        p90.as_secs_f64(),
        p99.as_secs_f64()
    );
    println!(
        "           back to INIT after an OFFER: {} clients ({} NAKed, {} REQUEST unanswered \
         for 60 s); duplicates: {duplicates} addresses ACKed to two MACs; loadavg before \
         {load_before}, after {load_after}",
        reinit.0, reinit.1, reinit.2
    );
    if duplicates > 0 {
        failures.push(format!(
            "burst DORA: {duplicates} addresses were ACKed to two MACs"
        ));
    }
    check(
        api,
        pool,
        "burst DORA",
        &b.clients,
        (started, acked_at),
        failures,
    )?;
    if done < n {
        return Err(format!(
            "burst DORA: only {done} of {n} clients bound within {deadline:?}"
        ));
    }

    b.reset_sent();
    let stray = b.stray;
    let started = unix_now();
    let took = b.rebind(rt, deadline);
    let acked_at = unix_now();
    let c2 = quiet(d, &c1);
    let (done, times, sent, naks, restarts) = client_stats(&b.clients);
    let renewal = Step {
        what: "renewal",
        clients: n,
        done,
        took,
        times,
        sent,
        clean: n as u64,
        naks,
        restarts,
        c0: c1,
        c1: c2.clone(),
    };
    renewal.print(Some(TARGET_RENEWAL));
    if b.stray > stray {
        println!(
            "           {} answers the clients did not expect (duplicates)",
            b.stray - stray
        );
    }
    check(
        api,
        pool,
        "burst renewal",
        &b.clients,
        (started, acked_at),
        failures,
    )?;
    if done < n {
        return Err(format!(
            "burst renewal: only {done} of {n} clients bound within {deadline:?}"
        ));
    }

    // RENEWING: each client unicasts its REQUEST from its own address to
    // its server, one after the other over `spread`.
    println!(
        "  renewing, one client after the other over {} s (REQUEST with ciaddr, unicast from \
         the client's address to the daemon)",
        spread.as_secs()
    );
    b.reset_sent();
    let stray = b.stray;
    let started = unix_now();
    let took = b.renew(&g, rt, spread, deadline);
    let acked_at = unix_now();
    let c3 = quiet(d, &c2);
    let (done, times, sent, naks, restarts) = client_stats(&b.clients);
    let renewing = Step {
        what: "renewing",
        clients: n,
        done,
        took,
        times,
        sent,
        clean: n as u64,
        naks,
        restarts,
        c0: c2,
        c1: c3.clone(),
    };
    renewing.print(Some(TARGET_RENEWAL));
    if b.stray > stray {
        println!(
            "           {} answers the clients did not expect (duplicates)",
            b.stray - stray
        );
    }
    println!(
        "           API calls per renewal {:.2}; renewal latency p50 {:.3} s, p99 {:.3} s",
        renewing.calls_per_client(),
        pct(&renewing.times, 0.50).as_secs_f64(),
        pct(&renewing.times, 0.99).as_secs_f64()
    );
    check(
        api,
        pool,
        "spread renewal",
        &b.clients,
        (started, acked_at),
        failures,
    )?;
    if done < n {
        return Err(format!(
            "spread renewal: only {done} of {n} clients bound within {:?}",
            spread + deadline
        ));
    }

    let start = Instant::now();
    b.release(&g);
    let c4 = d.settle(&c3, n as u64, deadline);
    let took = start.elapsed();
    // A RELEASE is sent once: one the daemon refused (a full job queue) is
    // not taken at all.
    let taken = c4.get("jobs").saturating_sub(c3.get("jobs")) as usize;
    let release = Step {
        what: "release",
        clients: n,
        done: taken.min(n),
        took,
        times: Vec::new(),
        sent: n as u64,
        clean: n as u64,
        naks: 0,
        restarts: 0,
        c0: c3,
        c1: c4,
    };
    release.print(None);
    Ok(BurstFigures {
        run: RunFigures {
            dora,
            renewal,
            release,
        },
        reinit,
        duplicates,
        load_before,
        load_after,
        renewing,
        spread,
    })
}

/// Addresses the clients were ACKed that two MACs were ACKed.
fn duplicate_addresses(clients: &[BurstClient]) -> usize {
    let mut owners: HashMap<Ipv4Addr, Vec<[u8; 6]>> = HashMap::new();
    for c in clients {
        for (a, _) in &c.acks {
            let o = owners.entry(*a).or_default();
            if !o.contains(&c.mac) {
                o.push(c.mac);
            }
        }
    }
    owners.values().filter(|o| o.len() > 1).count()
}

fn summary(s: Option<&RunFigures>, burst: &BurstFigures) {
    let b = &burst.run;
    println!();
    println!("summary (API calls from the daemon's own counters)");
    println!("                                  serial    burst   target");
    let row = |what: &str, f: &dyn Fn(&RunFigures) -> String, target: &str| {
        let serial = s.map_or_else(|| "-".to_string(), f);
        println!("  {what:<30} {serial:>8} {:>8}   {target}", f(b));
    };
    let dora_target = match s {
        Some(s) => {
            let growth = b.dora.calls_per_client() - s.dora.calls_per_client();
            format!(
                "<= {TARGET_DORA}, no growth under the burst ({:+.2}: {})",
                growth,
                if growth <= 0.005 { "none" } else { "GROWS" }
            )
        }
        None => format!("<= {TARGET_DORA}"),
    };
    row(
        "API calls per new-client DORA",
        &|r| format!("{:.2}", r.dora.calls_per_client()),
        &dora_target,
    );
    row(
        "API calls per renewal",
        &|r| format!("{:.2}", r.renewal.calls_per_client()),
        &format!("<= {TARGET_RENEWAL} (a lease the daemon handed out)"),
    );
    row(
        "API calls per release",
        &|r| format!("{:.2}", r.release.calls_per_client()),
        "",
    );
    row(
        "DORA elapsed, s",
        &|r| format!("{:.1}", r.dora.took.as_secs_f64()),
        "",
    );
    row(
        "leases/s",
        &|r| format!("{:.2}", r.dora.done as f64 / r.dora.took.as_secs_f64()),
        "",
    );
    row(
        "client DORA median, s",
        &|r| format!("{:.3}", percentiles(&r.dora.times).0.as_secs_f64()),
        "",
    );
    row(
        "client DORA p90, s",
        &|r| format!("{:.3}", pct(&r.dora.times, 0.90).as_secs_f64()),
        "",
    );
    row(
        "client DORA p99, s",
        &|r| format!("{:.3}", percentiles(&r.dora.times).1.as_secs_f64()),
        "",
    );
    let all = |r: &RunFigures, k: &str| r.dora.d(k) + r.renewal.d(k) + r.release.d(k);
    let exchanges = |r: &RunFigures, k: &str| r.dora.d(k) + r.renewal.d(k);
    let extra_jobs = |st: &Step| st.d("jobs").saturating_sub(st.messages());
    row(
        "client retransmissions",
        &|r| {
            let extra = |st: &Step| st.sent.saturating_sub(st.clean);
            (extra(&r.dora) + extra(&r.renewal)).to_string()
        },
        "(DORA and renewal)",
    );
    row(
        "retransmissions absorbed",
        &|r| exchanges(r, "absorbed").to_string(),
        "(daemon: copies that came while the client's job ran)",
    );
    row(
        "DISCOVERs that waited (max_offers)",
        &|r| r.dora.d_opt("offers_capped").to_string(),
        "(daemon: [relay] max_offers, 256 per subnet by default)",
    );
    row(
        "jobs beyond one per message",
        &|r| (extra_jobs(&r.dora) + extra_jobs(&r.renewal)).to_string(),
        "0 (a copy that came after its answer had gone)",
    );
    row(
        "jobs beyond one per release",
        &|r| extra_jobs(&r.release).to_string(),
        "0 (the lab's second copy, when it came after the first was done)",
    );
    row(
        "channel drops",
        &|r| all(r, "channel_drops").to_string(),
        "0",
    );
    row("jobs refused", &|r| all(r, "jobs_refused").to_string(), "0");
    println!(
        "  two jobs in flight for one client: cannot happen, and the daemon has no counter \
         for it: it keeps at most one job per MAC (src/relay/pending.rs); a copy that comes \
         while the job runs is `absorbed`, one that comes after the answer starts a job of \
         its own (`jobs beyond one per message`)"
    );
    let n = burst.run.dora.clients;
    println!(
        "  burst of {n}: all bound after {:.1} s; API calls per client {:.2}; time to ACK p50 \
         {:.3} s, p90 {:.3} s, p99 {:.3} s; back to INIT {}; duplicates {}; loadavg before \
         {}, after {}",
        b.dora.took.as_secs_f64(),
        b.dora.calls_per_client(),
        pct(&b.dora.times, 0.50).as_secs_f64(),
        pct(&b.dora.times, 0.90).as_secs_f64(),
        pct(&b.dora.times, 0.99).as_secs_f64(),
        burst.reinit.0,
        burst.duplicates,
        burst.load_before,
        burst.load_after
    );
    let r = &burst.renewing;
    println!(
        "  {n} renewals over {} s (RENEWING): API calls per renewal {:.2} (target <= \
         {TARGET_RENEWAL}); latency p50 {:.3} s, p99 {:.3} s",
        burst.spread.as_secs(),
        r.calls_per_client(),
        pct(&r.times, 0.50).as_secs_f64(),
        pct(&r.times, 0.99).as_secs_f64()
    );
}
