//! `relay`: relay mode end to end, against the real test Nautobot of
//! `tests/nautobot` and through ISC dhcrelay, with the integration tests'
//! own harness (tests/common, included below): N new clients one at a time,
//! then N other new clients all at once, each set then renewed and released.
//! The API calls are the daemon's own counters (its SIGUSR1 dump).
//!
//! The harness makes everything: a router namespace with dhcrelay, a daemon
//! namespace that reaches Nautobot through `netns-bridge.sh`, and one client
//! namespace per run, all named `nfdt-<pid>-...`. Its guards remove them on
//! return and unwind; on a signal the signal thread removes them by that
//! prefix. Nautobot is left as it was found: the harness removes the `dhcp`
//! addresses of the test prefix (the daemon's leases) before and after, and
//! so does the signal thread.

#[path = "../../tests/common/mod.rs"]
mod common;

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
use common::relay::{
    check_records, fmt_mac, in_netns, nautobot, nautobot_scripts, nautobot_url, unix_now, Api,
    Burst, BurstClient, Counters, Phase, RelayConfig, RelayDaemon, RelayLab, Retransmit, GIADDR,
    PREFIX,
};
use common::Guest;

#[derive(Args)]
pub struct Opts {
    #[command(flatten)]
    common: Common,
    /// Clients per run: the serial run and the burst each have this many
    /// new clients (MACs 02:bb:b1:... and 02:bb:b2:...).
    #[arg(long, default_value_t = 200)]
    clients: usize,
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
/// The pool of the test prefix: network + 5 (`reserved`) to broadcast - 1.
const POOL: std::ops::RangeInclusive<u8> = 6..=254;
/// Printed next to the figures (README, "Relay mode (Nautobot)").
const TARGET_DORA: f64 = 4.0;
const TARGET_RENEWAL: f64 = 1.0;

pub fn run(o: &Opts) -> Res<()> {
    if o.clients == 0 {
        return Err("--clients must be at least 1".into());
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
    // The harness's lock, shared with the tests that use Nautobot (flock):
    // it waits for them, and they wait for the whole run.
    eprintln!("taking the Nautobot test lock");
    let Some(nb) = nautobot("nfdhcpd-bench relay") else {
        return Err(format!("Nautobot at {} is not usable", nautobot_url()));
    };
    lab::register_cleanup(
        "nautobot",
        Box::new(|| {
            let _ = Api::new().clean();
        }),
    );
    let free = free_addresses(&nb.api);
    if o.clients > free {
        return Err(format!(
            "{} clients do not fit: the pool of {PREFIX} has {free} free addresses",
            o.clients
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
        "Nautobot {version} at {}, prefix {PREFIX} ({free} free addresses); ISC dhcrelay in a \
         router namespace; {} clients per run; client retransmission: {}",
        nautobot_url(),
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
        ..RelayConfig::default()
    };
    let mut rl = RelayLab::new("nfdhcpd-bench relay", 1)
        .ok_or("the relay lab cannot run here (needs root)")?;
    let deadline = Duration::from_secs(o.deadline);

    start_daemon(&mut rl, &cfg, o.common.nice)?;
    println!();
    println!(
        "serial: one client at a time, each DISCOVER -> OFFER -> REQUEST -> ACK before the next"
    );
    let serial = serial_run(&mut rl, &nb.api, o.clients, rt)?;

    // The burst starts from the same state: a fresh daemon, no leases.
    rl.d(0).stop();
    nb.api
        .clean()
        .map_err(|e| format!("Nautobot clean-up: {e}"))?;
    start_daemon(&mut rl, &cfg, o.common.nice)?;
    println!();
    println!("burst: all clients at once, retransmitting until their ACK");
    let burst = burst_run(&mut rl, &nb.api, o.clients, rt, deadline)?;

    summary(&serial, &burst);
    rl.d(0).stop();

    // The harness keeps its scratch directory with NFDT_KEEP, and then also
    // the leases in Nautobot: only the former is wanted.
    if o.common.keep {
        std::env::set_var("NFDT_KEEP", "1");
    }
    drop(rl);
    std::env::remove_var("NFDT_KEEP");
    drop(nb);
    lab::unregister_cleanup("nautobot");
    Ok(())
}

/// Addresses of the pool without a record (the harness has just removed
/// the daemon's leases).
fn free_addresses(api: &Api) -> usize {
    let taken = api
        .list(&format!("/api/ipam/ip-addresses/?prefix={PREFIX}"))
        .iter()
        .filter_map(|r| r["address"].as_str()?.split('/').next()?.parse().ok())
        .filter(|a: &Ipv4Addr| POOL.contains(&a.octets()[3]))
        .count();
    POOL.count() - taken
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
                "; per client median {:.3} s, p99 {:.3} s, max {:.3} s",
                p50.as_secs_f64(),
                p99.as_secs_f64(),
                max.as_secs_f64()
            );
        }
        println!("{line}; loadavg {}", loadavg());
        let calls = self.d("backend_calls");
        let per = self.calls_per_client();
        let noun = match self.what {
            "DORA" => "new-client DORA",
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
        } else {
            let received = self.d("received");
            println!(
                "           clients sent {} datagrams, {} beyond a loss-free exchange; daemon: \
                 received {received} ({} lost on the way), absorbed {} (a copy while the \
                 client's job ran), offers_capped {} (a DISCOVER dropped: max_offers \
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
    let mut t = t.to_vec();
    t.sort();
    let rank = |q: f64| t[((q * t.len() as f64).ceil() as usize).clamp(1, t.len()) - 1];
    (rank(0.50), rank(0.99), t[t.len() - 1])
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

fn serial_run(rl: &mut RelayLab, api: &Api, n: usize, rt: Retransmit) -> Res<RunFigures> {
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
    let acked: Vec<([u8; 6], Ipv4Addr)> = clients
        .iter()
        .filter_map(|c| Some((c.mac, c.addr?)))
        .collect();
    intact(api, &clients, "serial DORA")?;
    let holds = check_records(api, &acked, LEASE_SECS, (started, acked_at));
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
    if holds > 0 {
        println!("           {holds} spare offer holds left in Nautobot");
    }

    // Renewal: REQUEST with ciaddr, broadcast through the relay (REBINDING),
    // as the harness does.
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
    intact(api, &clients, "serial renewal")?;

    // Release, one at a time: each waits until the daemon has taken it.
    configure_addresses(&g, &clients, rl.lab.tmp.path())?;
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

/// Checks that Nautobot still records every bound client's lease as its
/// own. Whatever else uses the test prefix (tests/e2e_relay.rs,
/// tests/nautobot_backend.rs, another run of this) removes the daemon's
/// records when it starts and ends, and then the figures mean nothing.
fn intact(api: &Api, clients: &[BurstClient], step: &str) -> Res<()> {
    let owner: HashMap<String, String> = api
        .dhcp_records()
        .iter()
        .filter_map(|r| {
            let addr = r["address"].as_str()?.split('/').next()?.to_owned();
            let mac = r["custom_fields"]["pydhcp_mac"]
                .as_str()?
                .to_ascii_lowercase();
            Some((addr, mac))
        })
        .collect();
    let missing = clients
        .iter()
        .filter(|c| {
            c.addr
                .is_some_and(|a| owner.get(&a.to_string()) != Some(&fmt_mac(&c.mac)))
        })
        .count();
    if missing == 0 {
        return Ok(());
    }
    Err(format!(
        "after the {step}, {missing} of the clients' leases are no longer in Nautobot: \
         something else removed records of {PREFIX} during the run (a Nautobot test?); \
         run the benchmark alone"
    ))
}

/// Puts every client's address on the guest's interface, and a route to
/// the daemons, so that each can unicast its RELEASE from its own address.
fn configure_addresses(g: &Guest, clients: &[BurstClient], dir: &Path) -> Res<()> {
    let mut batch = String::new();
    for c in clients {
        let a = c.addr.ok_or("a client without an address")?;
        batch += &format!("addr add {a}/24 dev {}\n", g.ifname);
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

fn burst_run(
    rl: &mut RelayLab,
    api: &Api,
    n: usize,
    rt: Retransmit,
    deadline: Duration,
) -> Res<RunFigures> {
    let g = rl.guest("tapb", "02:bb:fe:00:00:02");
    let mut b = Burst::new(&g, n, TAG_BURST);
    let d = &rl.daemons[0];

    let c0 = d.counters();
    let started = unix_now();
    let took = b.dora(rt, deadline);
    let acked_at = unix_now();
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
    if done < n {
        return Err(format!(
            "burst DORA: only {done} of {n} clients bound within {deadline:?}"
        ));
    }
    b.assert_unique_addresses();
    intact(api, &b.clients, "burst DORA")?;
    let holds = check_records(api, &b.acked(), LEASE_SECS, (started, acked_at));
    if holds > 0 {
        println!("           {holds} spare offer holds left in Nautobot");
    }

    b.reset_sent();
    let stray = b.stray;
    let took = b.rebind(rt, deadline);
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
    intact(api, &b.clients, "burst renewal")?;
    if b.stray > stray {
        println!(
            "           {} answers the clients did not expect (duplicates)",
            b.stray - stray
        );
    }
    if done < n {
        return Err(format!(
            "burst renewal: only {done} of {n} clients bound within {deadline:?}"
        ));
    }

    let start = Instant::now();
    b.release(&g);
    let c3 = d.settle(&c2, n as u64, deadline);
    let took = start.elapsed();
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
    Ok(RunFigures {
        dora,
        renewal,
        release,
    })
}

fn summary(s: &RunFigures, b: &RunFigures) {
    println!();
    println!("summary (API calls from the daemon's own counters)");
    println!("                                  serial    burst   target");
    let row = |what: &str, f: &dyn Fn(&RunFigures) -> String, target: &str| {
        println!("  {what:<30} {:>8} {:>8}   {target}", f(s), f(b));
    };
    let growth = b.dora.calls_per_client() - s.dora.calls_per_client();
    row(
        "API calls per new-client DORA",
        &|r| format!("{:.2}", r.dora.calls_per_client()),
        &format!(
            "<= {TARGET_DORA}, no growth under the burst ({:+.2}: {})",
            growth,
            if growth <= 0.005 { "none" } else { "GROWS" }
        ),
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
        "DISCOVERs dropped (max_offers)",
        &|r| r.dora.d_opt("offers_capped").to_string(),
        "(daemon: [relay] max_offers, 64 per subnet by default)",
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
}
