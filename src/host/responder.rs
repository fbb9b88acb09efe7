//! Answers NFQUEUE packets in the queue thread that received them, from the
//! bindings the state thread last published: no hand-over between threads
//! and no waiting on anyone per packet. The state thread stays the only
//! writer of the bindings; a queue thread picks up a new table with one
//! atomic load per packet and one lock per change.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use log::{debug, info, warn};

use crate::core::binding::Binding;
use crate::core::mac::MacAddr;
use crate::core::{dhcp4, dhcp6, ndp, Refusal};
use crate::daemon::counters::QueueCounters;
use crate::daemon::event::QueueKind;
use crate::daemon::warnings::{self, suppressed, WarnLimiter, WARN_INTERVAL};
use crate::host::answers::Answers;
use crate::host::link::{FrameSink, Interfaces, Link};
use crate::host::published::{BindingMap, Published};
use crate::host::ratelimit::{Limited, Limiter, Limits};

/// What every responder shares with the state thread.
pub struct Shared {
    pub answers: Arc<Answers>,
    pub bindings: Arc<Published>,
    /// The AF_PACKET socket, or a test's list.
    pub sender: Arc<dyn FrameSink>,
    pub warn: Arc<Mutex<WarnLimiter>>,
    pub limits: Limits,
}

/// An answer's message type, counted once the frame is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sent {
    Dhcp4(dhcp4::Kind),
    Ndp(ndp::Kind),
    Dhcp6(dhcp6::Kind),
}

impl Sent {
    pub fn name(self) -> &'static str {
        match self {
            Sent::Dhcp4(k) => k.name(),
            Sent::Ndp(k) => k.name(),
            Sent::Dhcp6(k) => k.name(),
        }
    }

    fn count(self, c: &QueueCounters) {
        match self {
            Sent::Dhcp4(k) => c.dhcp4.bump(k),
            Sent::Ndp(k) => c.ndp.bump(k),
            Sent::Dhcp6(k) => c.dhcp6.bump(k),
        }
    }
}

/// What to do with one queued packet.
#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    /// Not from an interface with a binding: the kernel handles it as if
    /// we were not there.
    Accept,
    /// Ours, left unanswered (refused, limited, or nothing to say).
    Drop,
    /// Ours: send `frame` out of `ifindex`, then drop the request.
    Answer {
        ifindex: u32,
        sent: Sent,
        frame: Vec<u8>,
    },
}

/// One queue thread's decision maker.
pub struct Responder<I: Interfaces = Link> {
    kind: QueueKind,
    shared: Shared,
    seen: u64,
    bindings: Arc<BindingMap>,
    link: I,
    /// This queue's own: limits count per protocol.
    limiter: Limiter,
    /// When this thread last warned about a flood.
    limit_warned: Option<Instant>,
    /// Read by the state thread for metrics and SIGUSR1.
    counters: Arc<QueueCounters>,
}

impl Responder<Link> {
    pub fn new(
        kind: QueueKind,
        shared: Shared,
        counters: Arc<QueueCounters>,
    ) -> std::io::Result<Responder> {
        Ok(Responder::with_interfaces(
            kind,
            shared,
            counters,
            Link::new()?,
        ))
    }

    /// Answers `msg` if it comes from an interface with a binding and
    /// returns the verdict: drop for ours (answered or not), accept for the
    /// rest.
    pub fn handle(&mut self, msg: &nfq::Message) -> nfq::Verdict {
        let physin = msg.get_physindev();
        let ifindex = if physin != 0 { physin } else { msg.get_indev() };
        let src_mac = msg.get_hw_addr().and_then(MacAddr::from_slice);
        match self.decide(ifindex, src_mac, msg.get_payload(), Instant::now()) {
            Decision::Accept => nfq::Verdict::Accept,
            Decision::Drop => nfq::Verdict::Drop,
            Decision::Answer {
                ifindex,
                sent,
                frame,
            } => {
                self.send(ifindex, sent, &frame);
                // Known interface: the request ends here, answered or not.
                nfq::Verdict::Drop
            }
        }
    }
}

impl<I: Interfaces> Responder<I> {
    pub fn with_interfaces(
        kind: QueueKind,
        shared: Shared,
        counters: Arc<QueueCounters>,
        link: I,
    ) -> Responder<I> {
        let (seen, bindings) = shared.bindings.load();
        Responder {
            kind,
            limiter: Limiter::new(shared.limits),
            limit_warned: None,
            shared,
            seen,
            bindings,
            link,
            counters,
        }
    }

    /// The decision for a packet of this queue's protocol that came in on
    /// `ifindex` (the bridge port, for bridged taps) from `src_mac`.
    pub fn decide(
        &mut self,
        ifindex: u32,
        src_mac: Option<MacAddr>,
        payload: &[u8],
        now: Instant,
    ) -> Decision {
        if self.shared.bindings.version() != self.seen {
            (self.seen, self.bindings) = self.shared.bindings.load();
        }
        let c = &*self.counters;
        c.requests.bump(self.kind);
        if let Some(limit) = self.limiter.over(ifindex, src_mac, now) {
            c.limited.bump(limit);
            self.limited(ifindex, None, limit, now);
            return Decision::Drop;
        }
        let ifname = self.link.name_of(ifindex);
        let Some(b) = ifname.and_then(|n| self.bindings.get(n.as_str())) else {
            c.accepted_unknown.bump();
            return Decision::Accept;
        };
        if let Err(limit) = self.limiter.allow(ifindex, src_mac, now) {
            c.limited.bump(limit);
            let name = b.name.clone();
            self.limited(ifindex, Some(&name), limit, now);
            return Decision::Drop;
        }
        let Some(server_mac) = self.link.mac_of(&b.indev) else {
            c.refusals.bump(Refusal::Unconfigured);
            no_indev(&self.shared.warn, &self.link, b);
            return Decision::Drop;
        };
        let answers = &self.shared.answers;
        let warn = &self.shared.warn;
        let answer = match self.kind {
            QueueKind::Dhcp4 => {
                let outcome = dhcp4::answer(payload, src_mac, b, server_mac, &answers.dhcp4);
                dhcp4_outcome(c, warn, b, src_mac, outcome)
            }
            QueueKind::RouterSolicit | QueueKind::NeighborSolicit => match &answers.ndp {
                Some(params) => {
                    let outcome = if self.kind == QueueKind::RouterSolicit {
                        ndp::answer_rs(payload, src_mac, b, server_mac, params)
                    } else {
                        ndp::answer_ns(payload, src_mac, b, server_mac)
                    };
                    ndp_outcome(c, warn, b, src_mac, outcome)
                }
                None => None,
            },
            QueueKind::Dhcp6 => match &answers.dhcp6 {
                Some(params) => {
                    let outcome = dhcp6::answer(payload, src_mac, b, server_mac, params);
                    dhcp6_outcome(c, warn, b, src_mac, outcome)
                }
                None => None,
            },
        };
        match answer {
            Some((sent, frame)) => Decision::Answer {
                ifindex,
                sent,
                frame,
            },
            None => Decision::Drop,
        }
    }

    /// Sends an answer `decide` made and counts it (or the failure).
    pub fn send(&self, ifindex: u32, sent: Sent, frame: &[u8]) {
        match self.shared.sender.send(ifindex, frame) {
            Ok(()) => sent.count(&self.counters),
            Err(e) => {
                self.counters.send_errors.bump();
                warnings::send_failed(&self.shared.warn, sent.name(), ifindex, &e);
            }
        }
    }

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
        if let Some(n) = warnings::allowed(&self.shared.warn, limit.name()) {
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
fn no_indev(warn: &Mutex<WarnLimiter>, link: &impl Interfaces, b: &Binding) {
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

/// Counts a refusal; spoofing is worth a (rate-limited) warning.
fn refused(
    c: &QueueCounters,
    warn: &Mutex<WarnLimiter>,
    b: &Binding,
    what: &str,
    src_mac: Option<MacAddr>,
    r: Refusal,
) {
    c.refusals.bump(r);
    if r == Refusal::SpoofedMac {
        if let Some(n) = warnings::allowed(warn, "spoof") {
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
    c: &QueueCounters,
    warn: &Mutex<WarnLimiter>,
    b: &Binding,
    src_mac: Option<MacAddr>,
    outcome: ndp::Outcome,
) -> Option<(Sent, Vec<u8>)> {
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
            Some((Sent::Ndp(r.kind), r.frame))
        }
        ndp::Outcome::Refused(r) => {
            refused(c, warn, b, "neighbour discovery", src_mac, r);
            None
        }
    }
}

fn dhcp6_outcome(
    c: &QueueCounters,
    warn: &Mutex<WarnLimiter>,
    b: &Binding,
    src_mac: Option<MacAddr>,
    outcome: dhcp6::Outcome,
) -> Option<(Sent, Vec<u8>)> {
    let r = match outcome {
        dhcp6::Outcome::Refused(r) => {
            refused(c, warn, b, "DHCPv6 request", src_mac, r);
            return None;
        }
        dhcp6::Outcome::Reply(r) => r,
        dhcp6::Outcome::Released(r) => {
            c.releases.bump();
            r
        }
        dhcp6::Outcome::Declined(r) => {
            c.declines.bump();
            if let Some(n) = warnings::allowed(warn, "decline6") {
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
    Some((Sent::Dhcp6(r.kind), r.frame))
}

/// Logs and counts a DHCPv4 outcome; returns the frame to send, if any.
fn dhcp4_outcome(
    c: &QueueCounters,
    warn: &Mutex<WarnLimiter>,
    b: &Binding,
    src_mac: Option<MacAddr>,
    outcome: dhcp4::Outcome,
) -> Option<(Sent, Vec<u8>)> {
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
            Some((Sent::Dhcp4(r.kind), r.frame))
        }
        dhcp4::Outcome::Released { client_mac, addr } => {
            c.releases.bump();
            info!("{} {client_mac} DHCPRELEASE {addr}", b.name);
            None
        }
        dhcp4::Outcome::Declined { client_mac, addr } => {
            c.declines.bump();
            if let Some(n) = warnings::allowed(warn, "decline") {
                warn!(
                    "{} {client_mac} DHCPDECLINE {addr}: the guest reports the address in use{}",
                    b.name,
                    suppressed(n)
                );
            }
            None
        }
        dhcp4::Outcome::Refused(r) => {
            refused(c, warn, b, "DHCP request", src_mac, r);
            None
        }
    }
}

#[cfg(test)]
mod tests;
