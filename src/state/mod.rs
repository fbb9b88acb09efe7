//! The state thread: owns the bindings and counters and decides every answer.
//! Protocol decisions are delegated to the pure `proto` modules; this is the
//! shell that looks things up, sends frames and keeps score.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{select_biased, Receiver};

pub mod relay;
use log::{debug, info, warn};

use crate::binding::Binding;
use crate::event::{BindingRead, Control, Packet, QueueKind};
use crate::link::{FrameSender, Link};
use crate::mac::MacAddr;
use crate::nfqueue::QueueStats;
use crate::proto::{dhcp4, dhcp6, ndp, Refusal};
use crate::relay::RelayPacket;

/// How often the metrics file is rewritten.
const METRICS_INTERVAL: Duration = Duration::from_secs(5);

/// Warnings of one kind are logged at most this often; the rest are counted.
const WARN_INTERVAL: Duration = Duration::from_secs(10);

#[derive(Default, Debug)]
pub struct Stats {
    /// Packets handed over, by queue kind.
    pub requests: BTreeMap<&'static str, u64>,
    /// Answers sent, by message type.
    pub answers: BTreeMap<&'static str, u64>,
    /// Packets from known interfaces left unanswered, by reason.
    pub refusals: BTreeMap<&'static str, u64>,
    /// Packets from interfaces without a binding, passed on to the kernel.
    pub accepted_unknown: u64,
    pub releases: u64,
    pub declines: u64,
    pub send_errors: u64,
    pub binding_errors: u64,
}

pub(crate) fn bump(map: &mut BTreeMap<&'static str, u64>, key: &'static str) {
    *map.entry(key).or_insert(0) += 1;
}

/// Rate limit for warnings an attacker could otherwise turn into a log flood.
#[derive(Default)]
pub(crate) struct WarnLimiter {
    last: HashMap<&'static str, (Instant, u64)>,
}

impl WarnLimiter {
    /// Some(n suppressed since the last one) when a warning of `kind` may be logged now.
    pub(crate) fn allow(&mut self, kind: &'static str, now: Instant) -> Option<u64> {
        match self.last.get_mut(kind) {
            Some((t, n)) if now.duration_since(*t) < WARN_INTERVAL => {
                *n += 1;
                None
            }
            Some((t, n)) => {
                let s = *n;
                *t = now;
                *n = 0;
                Some(s)
            }
            None => {
                self.last.insert(kind, (now, 0));
                Some(0)
            }
        }
    }
}

pub(crate) fn suppressed(n: u64) -> String {
    if n == 0 {
        String::new()
    } else {
        format!(" ({n} similar suppressed)")
    }
}

/// What the VM-host answers depend on, from the configuration.
pub struct Settings {
    pub datapath: PathBuf,
    pub dhcp4: dhcp4::Params,
    /// Router Advertisements and Neighbor Advertisements; None without IPv6.
    pub ndp: Option<ndp::Params>,
    /// None unless DHCPv6 is served.
    pub dhcp6: Option<dhcp6::Params>,
    pub ra_period: Duration,
}

pub struct State {
    datapath: PathBuf,
    bindings: HashMap<String, Binding>,
    /// Binding files that failed to parse, with the reason (for SIGUSR1).
    bad_files: BTreeMap<String, String>,
    dhcp4: dhcp4::Params,
    ndp: Option<ndp::Params>,
    dhcp6: Option<dhcp6::Params>,
    ra_period: Duration,
    link: Link,
    sender: FrameSender,
    stats: Stats,
    queues: Vec<(u16, QueueKind, Arc<QueueStats>)>,
    warn: WarnLimiter,
    relay: Option<relay::RelaySide>,
    relay_stats: Option<Arc<crate::relay::RelayStats>>,
    metrics: Option<crossbeam_channel::Sender<String>>,
}

impl State {
    pub fn new(
        settings: Settings,
        sender: FrameSender,
        queues: Vec<(u16, QueueKind, Arc<QueueStats>)>,
    ) -> std::io::Result<State> {
        Ok(State {
            datapath: settings.datapath,
            bindings: HashMap::new(),
            bad_files: BTreeMap::new(),
            dhcp4: settings.dhcp4,
            ndp: settings.ndp,
            dhcp6: settings.dhcp6,
            ra_period: settings.ra_period,
            link: Link::new()?,
            sender,
            stats: Stats::default(),
            queues,
            warn: WarnLimiter::default(),
            relay: None,
            relay_stats: None,
            metrics: None,
        })
    }

    /// Serves relay mode too.
    pub fn with_relay(
        mut self,
        relay: relay::RelaySide,
        stats: Arc<crate::relay::RelayStats>,
    ) -> State {
        self.relay = Some(relay);
        self.relay_stats = Some(stats);
        self
    }

    /// Renders the counters every few seconds for the metrics writer.
    pub fn with_metrics(mut self, tx: crossbeam_channel::Sender<String>) -> State {
        self.metrics = Some(tx);
        self
    }

    pub fn bindings(&self) -> &HashMap<String, Binding> {
        &self.bindings
    }

    /// Runs until `Shutdown`. Control events always go first: a binding change
    /// must never wait behind a flood of packets.
    pub fn run(
        mut self,
        ctrl: Receiver<Control>,
        mut packets: Receiver<Packet>,
        mut relayed: Receiver<RelayPacket>,
    ) {
        // Without IPv6 the ticker never fires.
        let ra_tick = if self.ndp.is_some() {
            crossbeam_channel::tick(self.ra_period)
        } else {
            crossbeam_channel::never()
        };
        let metrics_tick = if self.metrics.is_some() {
            crossbeam_channel::tick(METRICS_INTERVAL)
        } else {
            crossbeam_channel::never()
        };
        loop {
            select_biased! {
                recv(ctrl) -> c => match c {
                    Ok(Control::Shutdown(ack)) => {
                        info!("stopping");
                        self.withdraw_all();
                        let _ = ack.send(());
                        return;
                    }
                    Ok(c) => self.on_control(c),
                    Err(_) => return,
                },
                // A source without senders (mode not enabled) is never read again.
                recv(packets) -> p => match p {
                    Ok(p) => self.on_packet(p),
                    Err(_) => packets = crossbeam_channel::never(),
                },
                recv(relayed) -> p => match (p, self.relay.as_mut()) {
                    (Ok(p), Some(r)) => r.on_packet(p, SystemTime::now()),
                    (Ok(_), None) => {}
                    (Err(_), _) => relayed = crossbeam_channel::never(),
                },
                recv(ra_tick) -> _ => self.periodic_ras(),
                recv(metrics_tick) -> _ => {
                    if let Some(tx) = &self.metrics {
                        let _ = tx.try_send(self.render_metrics());
                    }
                },
            }
        }
    }

    /// Unsolicited RA to every binding with SUBNET6 whose interface exists
    /// now (a re-created tap is picked up by name).
    fn periodic_ras(&mut self) {
        let mut names: Vec<String> = self
            .bindings
            .values()
            .filter(|b| b.subnet6.is_some())
            .map(|b| b.name.clone())
            .collect();
        names.sort();
        let mut sent = 0;
        for n in names {
            if self.send_ra(&n, false) {
                sent += 1;
            }
        }
        debug!("periodic RAs sent: {sent}");
    }

    /// Sends an unsolicited RA (or a withdrawing one) for binding `name`.
    fn send_ra(&mut self, name: &str, withdraw: bool) -> bool {
        let Some(b) = self.bindings.get(name) else {
            return false;
        };
        self.ra_for(b.clone(), withdraw)
    }

    fn ra_for(&mut self, b: Binding, withdraw: bool) -> bool {
        let Some(params) = &self.ndp else {
            return false;
        };
        if b.subnet6.is_none() {
            return false;
        }
        let (Some(ifindex), Some(mac)) = (self.link.index_of(&b.name), self.link.mac_of(&b.indev))
        else {
            return false;
        };
        let Some(frame) = ndp::periodic_ra(&b, mac, params, withdraw) else {
            return false;
        };
        let kind = if withdraw { "RA(withdraw)" } else { "RA" };
        self.send_frame(ifindex, kind, &frame, true)
    }

    /// The final RA with router lifetime 0 for every binding.
    fn withdraw_all(&mut self) {
        let all: Vec<Binding> = self.bindings.values().cloned().collect();
        let mut n = 0;
        for b in all {
            if self.ra_for(b, true) {
                n += 1;
            }
        }
        if n > 0 {
            info!("withdrew router advertisements on {n} interfaces");
        }
    }

    /// `unsolicited`: nobody is waiting for it, and a tap that is down (not
    /// started yet, or going away) is no news.
    fn send_frame(
        &mut self,
        ifindex: u32,
        kind: &'static str,
        frame: &[u8],
        unsolicited: bool,
    ) -> bool {
        match self.sender.send(ifindex, frame) {
            Ok(()) => {
                bump(&mut self.stats.answers, kind);
                true
            }
            Err(e) if unsolicited && e.raw_os_error() == Some(libc::ENETDOWN) => {
                debug!("{kind} not sent on ifindex {ifindex}: interface down");
                false
            }
            Err(e) => {
                self.stats.send_errors += 1;
                if let Some(n) = self.warn.allow("send", Instant::now()) {
                    warn!(
                        "cannot send {kind} on ifindex {ifindex}: {e}{}",
                        suppressed(n)
                    );
                }
                false
            }
        }
    }

    pub fn on_control(&mut self, c: Control) {
        match c {
            Control::Binding { name, read } => self.apply(name, read, true),
            Control::Rescan(all) => self.rescan(all),
            Control::Dump => self.dump(),
            Control::Backend(r) => {
                if let Some(relay) = self.relay.as_mut() {
                    relay.on_result(*r);
                }
            }
            Control::Shutdown(ack) => {
                let _ = ack.send(());
            }
        }
    }

    fn apply(&mut self, name: String, read: Option<BindingRead>, verbose: bool) {
        match read {
            None => {
                self.bad_files.remove(&name);
                if let Some(old) = self.bindings.remove(&name) {
                    info!("binding {name} removed");
                    // Withdraw the host as the guest's router.
                    self.ra_for(old, true);
                }
            }
            Some(Ok(b)) => {
                self.bad_files.remove(&name);
                let line = describe(&b);
                let old = self.bindings.insert(name.clone(), b);
                if verbose {
                    let what = if old.is_some() { "updated" } else { "added" };
                    info!("binding {name} {what}: {line}");
                } else {
                    debug!("binding {name}: {line}");
                }
                // A guest already up learns the new prefix without waiting a period.
                self.send_ra(&name, false);
            }
            Some(Err(e)) => {
                self.stats.binding_errors += 1;
                let keep = if self.bindings.contains_key(&name) {
                    "; the previous binding stays in force"
                } else {
                    ""
                };
                warn!(
                    "binding file {}: {e}; ignored{keep}",
                    self.datapath.join(&name).display()
                );
                self.bad_files.insert(name, e.to_string());
            }
        }
    }

    fn rescan(&mut self, all: Vec<(String, BindingRead)>) {
        let present: std::collections::HashSet<&str> =
            all.iter().map(|(n, _)| n.as_str()).collect();
        let gone: Vec<String> = self
            .bindings
            .keys()
            .filter(|n| !present.contains(n.as_str()))
            .cloned()
            .collect();
        self.bad_files.retain(|n, _| present.contains(n.as_str()));
        for name in gone {
            self.apply(name, None, true);
        }
        for (name, read) in all {
            self.apply(name, Some(read), false);
        }
        info!(
            "{} bindings in force, {} binding files ignored",
            self.bindings.len(),
            self.bad_files.len()
        );
    }

    pub fn on_packet(&mut self, mut p: Packet) {
        bump(&mut self.stats.requests, p.kind.name());
        let Some(b) = p.ifname.and_then(|n| self.bindings.get(n.as_str())) else {
            // Not ours: the kernel carries on with it.
            self.stats.accepted_unknown += 1;
            p.msg.set_verdict(nfq::Verdict::Accept);
            let _ = p.verdict_tx.try_send(p.msg);
            return;
        };
        let frame = match p.kind {
            QueueKind::Dhcp4 => {
                let outcome = match self.link.mac_of(&b.indev) {
                    Some(server_mac) => {
                        dhcp4::answer(p.msg.get_payload(), p.src_mac, b, server_mac, &self.dhcp4)
                    }
                    None => {
                        debug!("{}: INDEV {} has no MAC address", b.name, b.indev);
                        dhcp4::Outcome::Refused(Refusal::Unconfigured)
                    }
                };
                dhcp4_outcome(&mut self.stats, &mut self.warn, b, p.src_mac, outcome)
            }
            QueueKind::RouterSolicit | QueueKind::NeighborSolicit => {
                match (&self.ndp, self.link.mac_of(&b.indev)) {
                    (Some(params), Some(server_mac)) => {
                        let payload = p.msg.get_payload();
                        let outcome = if p.kind == QueueKind::RouterSolicit {
                            ndp::answer_rs(payload, p.src_mac, b, server_mac, params)
                        } else {
                            ndp::answer_ns(payload, p.src_mac, b, server_mac)
                        };
                        ndp_outcome(&mut self.stats, &mut self.warn, b, p.src_mac, outcome)
                    }
                    _ => None,
                }
            }
            QueueKind::Dhcp6 => match (&self.dhcp6, self.link.mac_of(&b.indev)) {
                (Some(params), Some(server_mac)) => {
                    let outcome =
                        dhcp6::answer(p.msg.get_payload(), p.src_mac, b, server_mac, params);
                    dhcp6_outcome(&mut self.stats, &mut self.warn, b, p.src_mac, outcome)
                }
                _ => None,
            },
        };
        // Known interface: the request ends here, answered or not.
        p.msg.set_verdict(nfq::Verdict::Drop);
        let _ = p.verdict_tx.try_send(p.msg);
        if let Some((kind, frame)) = frame {
            self.send_frame(p.ifindex, kind, &frame, false);
        }
    }

    /// Every counter in the Prometheus text format.
    pub fn render_metrics(&self) -> String {
        use crate::metrics::{labelled, Text};
        let mut t = Text::default();
        let s = &self.stats;
        t.gauge(
            "bindings",
            "Binding files in force.",
            self.bindings.len() as u64,
        );
        t.gauge(
            "binding_files_ignored",
            "Binding files that failed to parse.",
            self.bad_files.len() as u64,
        );
        t.family(
            "requests_total",
            "counter",
            "Packets handed over by the NFQUEUE threads, by queue.",
            &labelled("queue", &s.requests),
        );
        t.family(
            "answers_total",
            "counter",
            "Frames sent to guests, by message type.",
            &labelled("type", &s.answers),
        );
        t.family(
            "refusals_total",
            "counter",
            "Requests from known interfaces left unanswered, by reason.",
            &labelled("reason", &s.refusals),
        );
        t.counter(
            "accepted_unknown_total",
            "Packets from interfaces without a binding, passed to the kernel.",
            s.accepted_unknown,
        );
        t.counter("releases_total", "Releases received.", s.releases);
        t.counter("declines_total", "Declines received.", s.declines);
        t.counter(
            "send_errors_total",
            "Frames that could not be sent.",
            s.send_errors,
        );
        t.counter(
            "binding_errors_total",
            "Binding files refused.",
            s.binding_errors,
        );
        let q = |f: fn(&QueueStats) -> u64| -> Vec<(String, u64)> {
            self.queues
                .iter()
                .map(|(n, _, st)| (format!("queue=\"{n}\""), f(st)))
                .collect()
        };
        t.family(
            "queue_received_total",
            "counter",
            "Packets read from each NFQUEUE.",
            &q(|s| s.received.load(Ordering::Relaxed)),
        );
        t.family(
            "queue_channel_drops_total",
            "counter",
            "Packets dropped because the state thread was busy.",
            &q(|s| s.channel_drops.load(Ordering::Relaxed)),
        );
        if let Some(r) = &self.relay {
            r.metrics(&mut t);
        }
        if let Some(rs) = &self.relay_stats {
            t.counter(
                "relay_received_total",
                "Datagrams read from the relay socket.",
                rs.received.load(Ordering::Relaxed),
            );
            t.counter(
                "relay_channel_drops_total",
                "Relay datagrams dropped because the state thread was busy.",
                rs.channel_drops.load(Ordering::Relaxed),
            );
        }
        t.into_string()
    }

    fn dump(&self) {
        info!("--- {} bindings ---", self.bindings.len());
        let mut names: Vec<&String> = self.bindings.keys().collect();
        names.sort();
        for n in names {
            if let Some(b) = self.bindings.get(n) {
                info!("binding {n}: {}", describe(b));
            }
        }
        for (n, e) in &self.bad_files {
            info!("ignored binding file {n}: {e}");
        }
        info!("--- counters ---");
        for (q, kind, s) in &self.queues {
            info!(
                "queue {q} ({}): received {} channel_drops {} verdict_timeouts {}",
                kind.name(),
                s.received.load(Ordering::Relaxed),
                s.channel_drops.load(Ordering::Relaxed),
                s.verdict_timeouts.load(Ordering::Relaxed)
            );
        }
        info!("requests: {}", fmt_map(&self.stats.requests));
        info!("answers: {}", fmt_map(&self.stats.answers));
        info!("refusals: {}", fmt_map(&self.stats.refusals));
        if let Some(r) = &self.relay {
            r.dump();
        }
        if let Some(rs) = &self.relay_stats {
            info!(
                "relay socket: received {} channel_drops {} wrong_interface {}",
                rs.received.load(Ordering::Relaxed),
                rs.channel_drops.load(Ordering::Relaxed),
                rs.wrong_interface.load(Ordering::Relaxed)
            );
        }
        info!(
            "accepted_unknown {} releases {} declines {} send_errors {} binding_errors {}",
            self.stats.accepted_unknown,
            self.stats.releases,
            self.stats.declines,
            self.stats.send_errors,
            self.stats.binding_errors
        );
    }
}

pub(crate) fn fmt_map(m: &BTreeMap<&'static str, u64>) -> String {
    if m.is_empty() {
        return "none".into();
    }
    m.iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn describe(b: &Binding) -> String {
    let mut s = format!("mac {} host {}", b.mac, b.hostname);
    if let Some(ip) = b.ip {
        s += &format!(" ip {ip}");
    }
    if let Some(n) = b.subnet {
        s += &format!(" subnet {n}");
    }
    if let Some(g) = b.gateway {
        s += &format!(" gw {g}");
    }
    if let Some(n) = b.subnet6 {
        s += &format!(" subnet6 {n}");
    }
    if b.indev != b.name {
        s += &format!(" indev {}", b.indev);
    }
    if b.private {
        s += " private";
    }
    if b.macspoof {
        s += " macspoof";
    }
    if let Some(m) = b.mtu {
        s += &format!(" mtu {m}");
    }
    s
}

/// Counts a refusal; spoofing is worth a (rate-limited) warning.
fn refused(
    stats: &mut Stats,
    warn: &mut WarnLimiter,
    b: &Binding,
    what: &str,
    src_mac: Option<MacAddr>,
    r: Refusal,
) {
    bump(&mut stats.refusals, r.name());
    if r == Refusal::SpoofedMac {
        if let Some(n) = warn.allow("spoof", Instant::now()) {
            warn!(
                "{}: {what} from {} refused: source MAC is not the binding's {} (spoofing?){}",
                b.name,
                src_mac.map(|m| m.to_string()).unwrap_or_else(|| "?".into()),
                b.mac,
                suppressed(n)
            );
        }
    } else {
        debug!("{}: {what} refused: {}", b.name, r.name());
    }
}

fn ndp_outcome(
    stats: &mut Stats,
    warn: &mut WarnLimiter,
    b: &Binding,
    src_mac: Option<MacAddr>,
    outcome: ndp::Outcome,
) -> Option<(&'static str, Vec<u8>)> {
    match outcome {
        ndp::Outcome::Reply(r) => {
            let target = r.addr.map(|a| format!(" {a}")).unwrap_or_default();
            info!(
                "{} {} {} -> {}{target}",
                b.name,
                r.client_mac,
                r.request.name(),
                r.kind.name()
            );
            Some((r.kind.name(), r.frame))
        }
        ndp::Outcome::Refused(r) => {
            refused(stats, warn, b, "neighbour discovery", src_mac, r);
            None
        }
    }
}

fn dhcp6_outcome(
    stats: &mut Stats,
    warn: &mut WarnLimiter,
    b: &Binding,
    src_mac: Option<MacAddr>,
    outcome: dhcp6::Outcome,
) -> Option<(&'static str, Vec<u8>)> {
    let r = match outcome {
        dhcp6::Outcome::Refused(r) => {
            refused(stats, warn, b, "DHCPv6 request", src_mac, r);
            return None;
        }
        dhcp6::Outcome::Reply(r) => r,
        dhcp6::Outcome::Released(r) => {
            stats.releases += 1;
            r
        }
        dhcp6::Outcome::Declined(r) => {
            stats.declines += 1;
            if let Some(n) = warn.allow("decline6", Instant::now()) {
                warn!(
                    "{} {} DHCPv6 DECLINE {}: the guest reports the address in use{}",
                    b.name,
                    r.client_mac,
                    r.addr.map(|a| a.to_string()).unwrap_or_else(|| "-".into()),
                    suppressed(n)
                );
            }
            r
        }
    };
    let addr = r.addr.map(|a| format!(" {a}")).unwrap_or_default();
    info!(
        "{} {} DHCPv6 {} -> {}{addr}",
        b.name,
        r.client_mac,
        r.request.name(),
        r.kind.name()
    );
    Some((r.kind.name(), r.frame))
}

/// Logs and counts a DHCPv4 outcome; returns the frame to send, if any.
fn dhcp4_outcome(
    stats: &mut Stats,
    warn: &mut WarnLimiter,
    b: &Binding,
    src_mac: Option<MacAddr>,
    outcome: dhcp4::Outcome,
) -> Option<(&'static str, Vec<u8>)> {
    match outcome {
        dhcp4::Outcome::Reply(r) => {
            info!(
                "{} {} {} -> {} {}",
                b.name,
                r.client_mac,
                r.request.name(),
                r.kind.name(),
                r.addr.map(|a| a.to_string()).unwrap_or_else(|| "-".into())
            );
            Some((r.kind.name(), r.frame))
        }
        dhcp4::Outcome::Released { client_mac, addr } => {
            stats.releases += 1;
            info!("{} {client_mac} DHCPRELEASE {addr}", b.name);
            None
        }
        dhcp4::Outcome::Declined { client_mac, addr } => {
            stats.declines += 1;
            if let Some(n) = warn.allow("decline", Instant::now()) {
                warn!(
                    "{} {client_mac} DHCPDECLINE {addr}: the guest reports the address in use{}",
                    b.name,
                    suppressed(n)
                );
            }
            None
        }
        dhcp4::Outcome::Refused(r) => {
            refused(stats, warn, b, "DHCP request", src_mac, r);
            None
        }
    }
}
