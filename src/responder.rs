//! Answers NFQUEUE packets in the queue thread that received them, from the
//! bindings the state thread last published: no hand-over between threads
//! and no waiting on anyone per packet. The state thread stays the only
//! writer of the bindings; a queue thread picks up a new table with one
//! atomic load per packet and one lock per change.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use log::{debug, info, warn};

use crate::binding::Binding;
use crate::config::{Config, Ipv6Mode};
use crate::event::QueueKind;
use crate::link::{FrameSender, Link};
use crate::mac::MacAddr;
use crate::proto::{dhcp4, dhcp6, ndp, Refusal};
use crate::ratelimit::{Limited, Limiter, Limits};
use crate::state::{bump, suppressed, Stats, WarnLimiter, WARN_INTERVAL};

/// Bindings by interface name. Both keys and values are shared, so that a
/// new table costs reference counts, not copies.
pub type BindingMap = HashMap<Arc<str>, Arc<Binding>>;

/// What the VM-host answers depend on, from the configuration.
pub struct Answers {
    pub dhcp4: dhcp4::Params,
    /// Router and Neighbor Advertisements; None without IPv6.
    pub ndp: Option<ndp::Params>,
    /// None unless DHCPv6 is served.
    pub dhcp6: Option<dhcp6::Params>,
}

impl Answers {
    /// The answer settings of a configuration, as the daemon uses them.
    pub fn from_config(cfg: &Config) -> Answers {
        let v6 = &cfg.ipv6;
        let (ndp, dhcp6) = ipv6_params(cfg);
        let serves_dhcp6 = v6.serves_dhcp6();
        Answers {
            dhcp4: dhcp4::Params {
                lease_lifetime: cfg.dhcp.lease_lifetime,
                lease_renewal: cfg.dhcp.lease_renewal,
                server_ip: cfg.dhcp.server_ip,
                server_on_link: cfg.dhcp.server_on_link,
                nameservers: cfg.dhcp.nameservers.clone(),
                domain: cfg.dhcp.domain.clone(),
                domains: cfg.dhcp.domains.clone(),
                boot: cfg.dhcp.boot.clone(),
            },
            ndp: v6.enable_ipv6.then_some(ndp),
            dhcp6: (v6.enable_ipv6 && serves_dhcp6).then_some(dhcp6),
        }
    }
}

/// The `[ipv6]` answer settings, whether or not IPv6 is enabled.
pub fn ipv6_params(cfg: &Config) -> (ndp::Params, dhcp6::Params) {
    let v6 = &cfg.ipv6;
    // Validated at load time; slaac is the fallback that needs least.
    let mode = v6.effective_mode().unwrap_or(Ipv6Mode::Slaac);
    let dhcpv6 = v6.serves_dhcp6();
    let stateful = mode == Ipv6Mode::Dhcpv6;
    let ndp = ndp::Params {
        router_lifetime: v6.router_lifetime,
        prefix_valid_lifetime: v6.prefix_valid_lifetime,
        prefix_preferred_lifetime: v6.prefix_preferred_lifetime,
        dns_lifetime: v6.dns_lifetime,
        nameservers: v6.nameservers.clone(),
        domains: v6.domains.clone(),
        other_config: dhcpv6,
        managed: stateful,
    };
    let dhcp6 = dhcp6::Params {
        stateful,
        nameservers: v6.nameservers.clone(),
        domains: v6.domains.clone(),
        // RFC 8415 21.4 recommends T1 = 0.5 and T2 = 0.8 of the preferred lifetime.
        t1: v6.prefix_preferred_lifetime / 2,
        t2: v6.prefix_preferred_lifetime / 5 * 4,
        preferred_lifetime: v6.prefix_preferred_lifetime,
        valid_lifetime: v6.prefix_valid_lifetime,
    };
    (ndp, dhcp6)
}

/// The bindings as last published by the state thread.
#[derive(Default)]
pub struct Published {
    version: AtomicU64,
    map: RwLock<Arc<BindingMap>>,
}

impl Published {
    pub fn publish(&self, map: BindingMap) {
        let map = Arc::new(map);
        *self.map.write().unwrap_or_else(|e| e.into_inner()) = map;
        // After the store: a reader that sees the new version gets the new map.
        self.version.fetch_add(1, Ordering::Release);
    }

    fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    fn load(&self) -> (u64, Arc<BindingMap>) {
        let v = self.version();
        let map = self.map.read().unwrap_or_else(|e| e.into_inner()).clone();
        (v, map)
    }
}

/// What every responder shares with the state thread.
pub struct Shared {
    pub answers: Arc<Answers>,
    pub bindings: Arc<Published>,
    pub sender: Arc<FrameSender>,
    pub warn: Arc<Mutex<WarnLimiter>>,
    pub limits: Limits,
}

/// One queue thread's decision maker.
pub struct Responder {
    kind: QueueKind,
    shared: Shared,
    seen: u64,
    bindings: Arc<BindingMap>,
    link: Link,
    /// This queue's own: limits count per protocol.
    limiter: Limiter,
    /// When this thread last warned about a flood.
    limit_warned: Option<Instant>,
    /// Read by the state thread for metrics and SIGUSR1.
    stats: Arc<Mutex<Stats>>,
}

impl Responder {
    pub fn new(
        kind: QueueKind,
        shared: Shared,
        stats: Arc<Mutex<Stats>>,
    ) -> std::io::Result<Responder> {
        let (seen, bindings) = shared.bindings.load();
        Ok(Responder {
            kind,
            limiter: Limiter::new(shared.limits),
            limit_warned: None,
            shared,
            seen,
            bindings,
            link: Link::new()?,
            stats,
        })
    }

    /// Answers `msg` if it comes from an interface with a binding and
    /// returns the verdict: drop for ours (answered or not), accept for the
    /// rest, which the kernel then handles as if we were not there.
    pub fn handle(&mut self, msg: &nfq::Message) -> nfq::Verdict {
        if self.shared.bindings.version() != self.seen {
            (self.seen, self.bindings) = self.shared.bindings.load();
        }
        let physin = msg.get_physindev();
        let ifindex = if physin != 0 { physin } else { msg.get_indev() };
        let src_mac = msg.get_hw_addr().and_then(MacAddr::from_slice);
        let now = Instant::now();
        let mut stats = self.stats.lock().unwrap_or_else(|e| e.into_inner());
        bump(&mut stats.requests, self.kind.name());
        if let Some(limit) = self.limiter.over(ifindex, src_mac, now) {
            bump(&mut stats.refusals, limit.name());
            drop(stats);
            self.limited(ifindex, None, limit, now);
            return nfq::Verdict::Drop;
        }
        let ifname = self.link.name_of(ifindex);
        let Some(b) = ifname.and_then(|n| self.bindings.get(n.as_str())) else {
            stats.accepted_unknown += 1;
            return nfq::Verdict::Accept;
        };
        if let Err(limit) = self.limiter.allow(ifindex, src_mac, now) {
            bump(&mut stats.refusals, limit.name());
            let name = b.name.clone();
            drop(stats);
            self.limited(ifindex, Some(&name), limit, now);
            return nfq::Verdict::Drop;
        }
        let Some(server_mac) = self.link.mac_of(&b.indev) else {
            bump(&mut stats.refusals, Refusal::Unconfigured.name());
            drop(stats);
            no_indev(&self.shared.warn, &self.link, b);
            return nfq::Verdict::Drop;
        };
        let answers = &self.shared.answers;
        let payload = msg.get_payload();
        let frame = match self.kind {
            QueueKind::Dhcp4 => {
                let outcome = dhcp4::answer(payload, src_mac, b, server_mac, &answers.dhcp4);
                dhcp4_outcome(&mut stats, &self.shared.warn, b, src_mac, outcome)
            }
            QueueKind::RouterSolicit | QueueKind::NeighborSolicit => match &answers.ndp {
                Some(params) => {
                    let outcome = if self.kind == QueueKind::RouterSolicit {
                        ndp::answer_rs(payload, src_mac, b, server_mac, params)
                    } else {
                        ndp::answer_ns(payload, src_mac, b, server_mac)
                    };
                    ndp_outcome(&mut stats, &self.shared.warn, b, src_mac, outcome)
                }
                None => None,
            },
            QueueKind::Dhcp6 => match &answers.dhcp6 {
                Some(params) => {
                    let outcome = dhcp6::answer(payload, src_mac, b, server_mac, params);
                    dhcp6_outcome(&mut stats, &self.shared.warn, b, src_mac, outcome)
                }
                None => None,
            },
        };
        if let Some((kind, frame)) = frame {
            match self.shared.sender.send(ifindex, &frame) {
                Ok(()) => bump(&mut stats.answers, kind),
                Err(e) => {
                    stats.send_errors += 1;
                    drop(stats);
                    send_failed(&self.shared.warn, kind, ifindex, &e);
                }
            }
        }
        // Known interface: the request ends here, answered or not.
        nfq::Verdict::Drop
    }
}

impl Responder {
    /// A (rate-limited) warning about a flood. The shared limiter is only
    /// asked once per interval, so a flood costs one clock read here.
    fn limited(&mut self, ifindex: u32, name: Option<&str>, limit: Limited, now: Instant) {
        if self
            .limit_warned
            .is_some_and(|t| now.saturating_duration_since(t) < WARN_INTERVAL)
        {
            return;
        }
        self.limit_warned = Some(now);
        if let Some(n) = warn_allowed(&self.shared.warn, limit.name()) {
            let name = match name {
                Some(n) => n.to_owned(),
                None => self
                    .link
                    .name_of(ifindex)
                    .map(|n| n.to_string())
                    .unwrap_or_else(|| format!("ifindex {ifindex}")),
            };
            warn!(
                "{name}: {} requests over the {} limit dropped{}",
                self.kind.name(),
                match limit {
                    Limited::Interface => "per-interface",
                    Limited::Mac => "per-client",
                },
                suppressed(n)
            );
        }
    }
}

/// INDEV names no interface (or one without a MAC address): nothing can be
/// answered. Warned once per binding, then at most every
/// BINDING_WARN_INTERVAL; again at once when the binding file changes.
fn no_indev(warn: &Mutex<WarnLimiter>, link: &Link, b: &Binding) {
    let allowed = warn
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .allow_binding("indev", &b.name, Instant::now());
    if !allowed {
        debug!("{}: INDEV {} has no MAC address", b.name, b.indev);
        return;
    }
    let what = if link.index_of(&b.indev).is_none() {
        "names no interface"
    } else {
        "is an interface without a MAC address"
    };
    warn!(
        "binding {}: INDEV {} {what}: its requests are dropped unanswered",
        b.name, b.indev
    );
}

/// A frame that could not leave: a rate-limited warning.
pub(crate) fn send_failed(warn: &Mutex<WarnLimiter>, kind: &str, ifindex: u32, e: &std::io::Error) {
    let allowed = warn
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .allow("send", Instant::now());
    if let Some(n) = allowed {
        warn!(
            "cannot send {kind} on ifindex {ifindex}: {e}{}",
            suppressed(n)
        );
    }
}

fn warn_allowed(warn: &Mutex<WarnLimiter>, kind: &'static str) -> Option<u64> {
    warn.lock()
        .unwrap_or_else(|e| e.into_inner())
        .allow(kind, Instant::now())
}

/// Counts a refusal; spoofing is worth a (rate-limited) warning.
fn refused(
    stats: &mut Stats,
    warn: &Mutex<WarnLimiter>,
    b: &Binding,
    what: &str,
    src_mac: Option<MacAddr>,
    r: Refusal,
) {
    bump(&mut stats.refusals, r.name());
    if r == Refusal::SpoofedMac {
        if let Some(n) = warn_allowed(warn, "spoof") {
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
    warn: &Mutex<WarnLimiter>,
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
    warn: &Mutex<WarnLimiter>,
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
            if let Some(n) = warn_allowed(warn, "decline6") {
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
    warn: &Mutex<WarnLimiter>,
    b: &Binding,
    src_mac: Option<MacAddr>,
    outcome: dhcp4::Outcome,
) -> Option<(&'static str, Vec<u8>)> {
    match outcome {
        dhcp4::Outcome::Reply(r) => {
            let boot = match &r.boot {
                Some((client, file)) => format!(" boot={} file={file}", client.name()),
                None => String::new(),
            };
            info!(
                "{} {} {} -> {} {}{boot}",
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
            if let Some(n) = warn_allowed(warn, "decline") {
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
