//! The state thread: owns the bindings, publishes them to the queue threads'
//! responders, sends the periodic and withdrawing Router Advertisements,
//! runs the relay side, and keeps score.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{select_biased, Receiver};

use log::{debug, info, warn};

use crate::core::binding::{self, Binding};
use crate::core::ndp;
use crate::daemon::event::{Control, FileRead, QueueKind};
use crate::daemon::sdnotify::{self, Heartbeat};
use crate::host::link::{FrameSender, Link};
use crate::host::queue::QueueStats;
use crate::host::responder::{Answers, BindingMap, Published};
use crate::relay::pending as relay;
use crate::relay::socket::RelayPacket;

/// How often the metrics file is rewritten.
const METRICS_INTERVAL: Duration = Duration::from_secs(5);
/// How often systemd's STATUS= line is renewed.
const STATUS_INTERVAL: Duration = Duration::from_secs(10);

/// Warnings of one kind are logged at most this often; the rest are counted.
pub const WARN_INTERVAL: Duration = Duration::from_secs(10);

/// A warning about one binding is repeated at most this often while its
/// cause lasts (and again at once after the binding file changes).
pub const BINDING_WARN_INTERVAL: Duration = Duration::from_secs(600);

/// Per-binding warnings remembered at most; beyond, the oldest memory goes.
const MAX_BINDING_WARNINGS: usize = 100_000;

#[derive(Default, Debug, Clone)]
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

impl Stats {
    fn add(&mut self, o: &Stats) {
        for (mine, theirs) in [
            (&mut self.requests, &o.requests),
            (&mut self.answers, &o.answers),
            (&mut self.refusals, &o.refusals),
        ] {
            for (k, v) in theirs {
                *mine.entry(k).or_insert(0) += v;
            }
        }
        self.accepted_unknown += o.accepted_unknown;
        self.releases += o.releases;
        self.declines += o.declines;
        self.send_errors += o.send_errors;
        self.binding_errors += o.binding_errors;
    }
}

pub fn bump(map: &mut BTreeMap<&'static str, u64>, key: &'static str) {
    *map.entry(key).or_insert(0) += 1;
}

/// Rate limit for warnings an attacker could otherwise turn into a log flood.
#[derive(Default)]
pub struct WarnLimiter {
    last: HashMap<&'static str, (Instant, u64)>,
    /// (kind, binding name) -> when last logged.
    per_binding: HashMap<(&'static str, String), Instant>,
}

impl WarnLimiter {
    /// Whether a warning of `kind` about binding `name` may be logged now:
    /// once, then at most every BINDING_WARN_INTERVAL.
    pub fn allow_binding(&mut self, kind: &'static str, name: &str, now: Instant) -> bool {
        let key = (kind, name.to_string());
        if let Some(t) = self.per_binding.get(&key) {
            if now.saturating_duration_since(*t) < BINDING_WARN_INTERVAL {
                return false;
            }
        }
        if self.per_binding.len() >= MAX_BINDING_WARNINGS {
            self.per_binding.clear();
        }
        self.per_binding.insert(key, now);
        true
    }

    /// Binding `name` changed or went: its warnings may come again.
    pub fn forget_binding(&mut self, name: &str) {
        self.per_binding.retain(|(_, n), _| n != name);
    }

    /// Some(n suppressed since the last one) when a warning of `kind` may be logged now.
    pub fn allow(&mut self, kind: &'static str, now: Instant) -> Option<u64> {
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

pub fn suppressed(n: u64) -> String {
    if n == 0 {
        String::new()
    } else {
        format!(" ({n} similar suppressed)")
    }
}

/// What the state thread needs from the configuration.
pub struct Settings {
    pub datapath: PathBuf,
    pub answers: Arc<Answers>,
    pub ra_period: Duration,
}

/// A queue thread as the state thread sees it: its counters.
pub struct QueueView {
    pub num: u16,
    pub kind: QueueKind,
    pub queue: Arc<QueueStats>,
    pub answers: Arc<Mutex<Stats>>,
}

pub struct State {
    datapath: PathBuf,
    bindings: BindingMap,
    /// Where the queue threads read the bindings from.
    published: Arc<Published>,
    /// Bindings changed since the last publication.
    dirty: bool,
    /// Binding files not in force as they are, with the reason (for SIGUSR1
    /// and to log each cause once).
    bad_files: BTreeMap<String, String>,
    /// Names refused unparsed, by reason (metrics label).
    refused_files: BTreeMap<&'static str, u64>,
    answers: Arc<Answers>,
    ra_period: Duration,
    link: Link,
    sender: Arc<FrameSender>,
    /// This thread's own answers (RAs) and binding errors.
    stats: Stats,
    queues: Vec<QueueView>,
    warn: Arc<Mutex<WarnLimiter>>,
    relay: Option<relay::RelaySide>,
    relay_stats: Option<Arc<crate::relay::socket::RelayStats>>,
    metrics: Option<crossbeam_channel::Sender<String>>,
    /// The worker threads' signs of life, checked before each watchdog ping.
    heartbeats: Vec<Arc<Heartbeat>>,
    /// Threads found stalled at the last watchdog check (logged once).
    stalled: Vec<String>,
    /// Answers counted at the last status update, and when.
    answers_seen: (u64, Instant),
}

impl State {
    pub fn new(
        settings: Settings,
        published: Arc<Published>,
        sender: Arc<FrameSender>,
        warn: Arc<Mutex<WarnLimiter>>,
        queues: Vec<QueueView>,
    ) -> std::io::Result<State> {
        Ok(State {
            datapath: settings.datapath,
            bindings: BindingMap::new(),
            published,
            dirty: false,
            bad_files: BTreeMap::new(),
            refused_files: BTreeMap::new(),
            answers: settings.answers,
            ra_period: settings.ra_period,
            link: Link::new()?,
            sender,
            stats: Stats::default(),
            queues,
            warn,
            relay: None,
            relay_stats: None,
            metrics: None,
            heartbeats: Vec::new(),
            stalled: Vec::new(),
            answers_seen: (0, Instant::now()),
        })
    }

    /// Serves relay mode too.
    pub fn with_relay(
        mut self,
        relay: relay::RelaySide,
        stats: Arc<crate::relay::socket::RelayStats>,
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

    /// Feeds systemd's watchdog only while every one of these threads shows
    /// progress.
    pub fn with_heartbeats(mut self, beats: Vec<Arc<Heartbeat>>) -> State {
        self.heartbeats = beats;
        self
    }

    pub fn bindings(&self) -> &BindingMap {
        &self.bindings
    }

    /// Makes the bindings as they are now the ones the queue threads answer from.
    pub fn publish(&mut self) {
        if self.dirty {
            self.published.publish(self.bindings.clone());
            self.dirty = false;
        }
    }

    /// Runs until `Shutdown`. Control events always go first: a binding change
    /// must never wait behind a flood of packets.
    pub fn run(mut self, ctrl: Receiver<Control>, mut relayed: Receiver<RelayPacket>) {
        // Without IPv6 the ticker never fires.
        let ra_tick = if self.answers.ndp.is_some() {
            crossbeam_channel::tick(self.ra_period)
        } else {
            crossbeam_channel::never()
        };
        let metrics_tick = if self.metrics.is_some() {
            crossbeam_channel::tick(METRICS_INTERVAL)
        } else {
            crossbeam_channel::never()
        };
        // Under systemd only: STATUS= kept current, and the watchdog fed.
        let status_tick = if sdnotify::enabled() {
            crossbeam_channel::tick(STATUS_INTERVAL)
        } else {
            crossbeam_channel::never()
        };
        let watchdog = sdnotify::watchdog();
        let watchdog_tick = match watchdog {
            Some(w) => crossbeam_channel::tick(w / 3),
            None => crossbeam_channel::never(),
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
                    Ok(c) => {
                        self.on_control(c);
                        // A burst of changes is published once, when drained.
                        if ctrl.is_empty() {
                            self.publish();
                        }
                    }
                    Err(_) => return,
                },
                recv(watchdog_tick) -> _ => self.feed_watchdog(watchdog.unwrap_or_default() / 2),
                // A source without senders (mode not enabled) is never read again.
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
                recv(status_tick) -> _ => sdnotify::status(&self.status_line()),
            }
        }
    }

    /// WATCHDOG=1, unless a worker thread has not shown progress (or
    /// idleness) within `limit`: then systemd restarts the daemon when the
    /// watchdog interval runs out.
    fn feed_watchdog(&mut self, limit: Duration) {
        let now = sdnotify::monotonic_usec() / 1000;
        let stalled: Vec<String> = sdnotify::stalled(&self.heartbeats, now, limit)
            .into_iter()
            .map(String::from)
            .collect();
        if stalled.is_empty() {
            if !self.stalled.is_empty() {
                info!("all threads make progress again: watchdog fed");
            }
            sdnotify::watchdog_ping();
        } else if stalled != self.stalled {
            warn!(
                "thread {} shows no progress for {} ms or more: watchdog not fed, \
                 systemd will restart the daemon",
                stalled.join(", "),
                limit.as_millis()
            );
        }
        self.stalled = stalled;
    }

    /// One line for `systemctl status`: what is in force, and the traffic
    /// since the last line.
    pub fn status_line(&mut self) -> String {
        let mut total: u64 = self.stats.answers.values().sum();
        for q in &self.queues {
            if let Ok(a) = q.answers.lock() {
                total += a.answers.values().sum::<u64>();
            }
        }
        if let Some(r) = &self.relay {
            total += r.stats.answers.values().sum::<u64>();
        }
        let (before, since) = self.answers_seen;
        let now = Instant::now();
        self.answers_seen = (total, now);
        sdnotify::status_line(&sdnotify::Summary {
            bindings: self.bindings.len(),
            queues: self.queues.len(),
            answers_per_min: sdnotify::per_minute(before, total, now - since),
            relay: self.relay.as_ref().map(|r| r.status()),
        })
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

    fn ra_for(&mut self, b: Arc<Binding>, withdraw: bool) -> bool {
        let Some(params) = &self.answers.ndp else {
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
        let all: Vec<Arc<Binding>> = self.bindings.values().cloned().collect();
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
                crate::host::responder::send_failed(&self.warn, kind, ifindex, &e);
                false
            }
        }
    }

    pub fn on_control(&mut self, c: Control) {
        match c {
            Control::Binding { name, read } => self.apply(name, *read, true),
            Control::Rescan(all) => self.rescan(all),
            Control::Dump => self.dump(),
            Control::Reloaded => {
                self.publish();
                sdnotify::ready(&self.status_line());
            }
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

    /// Only a file that is gone takes its binding away: one that cannot be
    /// read or parsed now leaves the previous binding in force.
    fn apply(&mut self, name: String, read: FileRead, verbose: bool) {
        match read {
            FileRead::Gone => {
                self.bad_files.remove(&name);
                self.forget_warnings(&name);
                if let Some(old) = self.bindings.remove(name.as_str()) {
                    self.dirty = true;
                    info!("binding {name} removed");
                    // Withdraw the host as the guest's router.
                    self.ra_for(old, true);
                }
            }
            FileRead::Parsed(Ok(b)) => {
                let was_bad = self.bad_files.remove(&name).is_some();
                let line = describe(&b);
                let lacking = binding::shortcomings(&b);
                let b = Arc::new(b);
                let old = self.bindings.insert(Arc::from(name.as_str()), b.clone());
                let changed = old.as_ref() != Some(&b);
                if changed {
                    self.forget_warnings(&name);
                }
                self.dirty = true;
                if verbose || was_bad {
                    let what = if old.is_some() { "updated" } else { "added" };
                    info!("binding {name} {what}: {line}");
                } else {
                    debug!("binding {name}: {line}");
                }
                // Once per content: a rescan that finds it unchanged says nothing.
                if let Some(why) = lacking.filter(|_| changed) {
                    warn!("binding {name}: {why}");
                }
                // A guest already up learns the new prefix without waiting a period.
                self.send_ra(&name, false);
            }
            FileRead::Parsed(Err(e)) => {
                self.stats.binding_errors += 1;
                warn!(
                    "binding file {}: {e}; ignored{}",
                    self.datapath.join(&name).display(),
                    self.keep(&name)
                );
                self.bad_files.insert(name, e.to_string());
            }
            FileRead::Refused(e) => {
                let why = e.to_string();
                // Once per file and cause, not on every event while it lasts.
                if self.bad_files.get(&name) != Some(&why) {
                    bump(&mut self.refused_files, e.name());
                    warn!(
                        "binding file {}: {why}; ignored{}",
                        self.datapath.join(&name).display(),
                        self.keep(&name)
                    );
                }
                self.bad_files.insert(name, why);
            }
        }
    }

    fn keep(&self, name: &str) -> &'static str {
        if self.bindings.contains_key(name) {
            "; the previous binding stays in force"
        } else {
            ""
        }
    }

    fn forget_warnings(&self, name: &str) {
        self.warn
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .forget_binding(name);
    }

    fn rescan(&mut self, all: Vec<(String, FileRead)>) {
        let present: std::collections::HashSet<&str> =
            all.iter().map(|(n, _)| n.as_str()).collect();
        let gone: Vec<String> = self
            .bindings
            .keys()
            .filter(|n| !present.contains(&***n))
            .map(|n| n.to_string())
            .collect();
        self.bad_files.retain(|n, _| present.contains(n.as_str()));
        for name in gone {
            self.apply(name, FileRead::Gone, true);
        }
        for (name, read) in all {
            self.apply(name, read, false);
        }
        info!(
            "{} bindings in force, {} binding files ignored",
            self.bindings.len(),
            self.bad_files.len()
        );
    }

    /// Every counter in the Prometheus text format.
    pub fn render_metrics(&self) -> String {
        use crate::daemon::metrics::{labelled, Text};
        let mut t = Text::default();
        let s = &self.totals();
        t.gauge(
            "bindings",
            "Binding files in force.",
            self.bindings.len() as u64,
        );
        t.gauge(
            "binding_files_ignored",
            "Binding files not in force as they are (refused, unreadable or invalid).",
            self.bad_files.len() as u64,
        );
        t.family(
            "binding_files_refused_total",
            "counter",
            "Names in the binding directory left unread (not a regular file, or unreadable), \
             by reason; each file and cause counted once.",
            &labelled("reason", &self.refused_files),
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
        t.counter(
            "log_lines_dropped_total",
            "Log lines lost because syslog or the log file could not keep up.",
            crate::daemon::logging::dropped_lines(),
        );
        let q = |f: fn(&QueueStats) -> u64| -> Vec<(String, u64)> {
            self.queues
                .iter()
                .map(|v| (format!("queue=\"{}\"", v.num), f(&v.queue)))
                .collect()
        };
        t.family(
            "queue_received_total",
            "counter",
            "Packets read from each NFQUEUE.",
            &q(|s| s.received.load(Ordering::Relaxed)),
        );
        t.family(
            "queue_verdict_errors_total",
            "counter",
            "Verdicts the kernel refused.",
            &q(|s| s.verdict_errors.load(Ordering::Relaxed)),
        );
        t.family(
            "queue_stale_verdicts_total",
            "counter",
            "Verdicts for packets the kernel had dropped (interface gone).",
            &q(|s| s.stale_verdicts.load(Ordering::Relaxed)),
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

    /// This thread's counters and every queue thread's, added up.
    fn totals(&self) -> Stats {
        let mut all = self.stats.clone();
        for v in &self.queues {
            all.add(&v.answers.lock().unwrap_or_else(|e| e.into_inner()));
        }
        all
    }

    fn dump(&self) {
        info!("--- {} bindings ---", self.bindings.len());
        let mut all: Vec<(&Arc<str>, &Arc<Binding>)> = self.bindings.iter().collect();
        all.sort_by(|a, b| a.0.cmp(b.0));
        for (n, b) in all {
            info!("binding {n}: {}", describe(b));
        }
        for (n, e) in &self.bad_files {
            info!("ignored binding file {n}: {e}");
        }
        info!("--- counters ---");
        for v in &self.queues {
            info!(
                "queue {} ({}): received {} verdict_errors {} stale_verdicts {}",
                v.num,
                v.kind.name(),
                v.queue.received.load(Ordering::Relaxed),
                v.queue.verdict_errors.load(Ordering::Relaxed),
                v.queue.stale_verdicts.load(Ordering::Relaxed)
            );
        }
        let all = self.totals();
        info!("requests: {}", fmt_map(&all.requests));
        info!("answers: {}", fmt_map(&all.answers));
        info!("refusals: {}", fmt_map(&all.refusals));
        info!("binding files refused: {}", fmt_map(&self.refused_files));
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
            "accepted_unknown {} releases {} declines {} send_errors {} binding_errors {} \
             log_lines_dropped {}",
            all.accepted_unknown,
            all.releases,
            all.declines,
            all.send_errors,
            all.binding_errors,
            crate::daemon::logging::dropped_lines()
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
    if let Some(boot) = &b.boot {
        for (key, v) in [
            ("next-server", &boot.next_server),
            ("boot-file", &boot.boot_file),
            ("uefi-boot-file", &boot.uefi_boot_file),
            ("ipxe", &boot.ipxe),
            ("http-boot", &boot.http_boot),
        ] {
            if let Some(v) = v {
                s += &format!(" {key} {v}");
            }
        }
    }
    s
}
