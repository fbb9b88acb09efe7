//! The counters and the binding table as the operator reads them: the
//! metrics file (Prometheus text format) and the SIGUSR1 dump.

use std::sync::atomic::Ordering;

use log::info;

use crate::daemon::counters::{fmt_map, QueueCounters, QueueView, Totals};
use crate::host::bindings::Bindings;
use crate::relay::pending::RelaySide;
use crate::relay::socket::RelayStats;

/// What the state thread owns, lent for one rendering.
pub struct Report<'a> {
    pub bindings: &'a Bindings,
    pub queues: &'a [QueueView],
    pub relay: Option<&'a RelaySide>,
    pub relay_stats: Option<&'a RelayStats>,
}

impl Report<'_> {
    /// Every counter in the Prometheus text format.
    pub fn metrics(&self) -> String {
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
            self.bindings.ignored().len() as u64,
        );
        t.family(
            "binding_files_refused_total",
            "counter",
            "Names in the binding directory left unread (not a regular file, or unreadable), \
             by reason; each file and cause counted once.",
            &labelled("reason", self.bindings.refused_files()),
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
        let q = |f: fn(&QueueCounters) -> u64| -> Vec<(String, u64)> {
            self.queues
                .iter()
                .map(|v| (format!("queue=\"{}\"", v.num), f(&v.counters)))
                .collect()
        };
        t.family(
            "queue_received_total",
            "counter",
            "Packets read from each NFQUEUE.",
            &q(|c| c.received.get()),
        );
        t.family(
            "queue_verdict_errors_total",
            "counter",
            "Verdicts the kernel refused.",
            &q(|c| c.verdict_errors.get()),
        );
        t.family(
            "queue_stale_verdicts_total",
            "counter",
            "Verdicts for packets the kernel had dropped (interface gone).",
            &q(|c| c.stale_verdicts.get()),
        );
        if let Some(r) = self.relay {
            r.metrics(&mut t);
        }
        if let Some(rs) = self.relay_stats {
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

    /// The state thread's counters and every queue thread's, added up.
    pub fn totals(&self) -> Totals {
        let mut all = Totals::default();
        self.bindings.add_to(&mut all);
        for v in self.queues {
            v.counters.add_to(&mut all);
        }
        all
    }

    /// Every binding and counter to the log (SIGUSR1).
    pub fn dump(&self) {
        self.bindings.dump();
        info!("--- counters ---");
        for v in self.queues {
            info!(
                "queue {} ({}): received {} verdict_errors {} stale_verdicts {}",
                v.num,
                v.kind.name(),
                v.counters.received.get(),
                v.counters.verdict_errors.get(),
                v.counters.stale_verdicts.get()
            );
        }
        let all = self.totals();
        info!("requests: {}", fmt_map(&all.requests));
        info!("answers: {}", fmt_map(&all.answers));
        info!("refusals: {}", fmt_map(&all.refusals));
        self.bindings.dump_refused();
        if let Some(r) = self.relay {
            r.dump();
        }
        if let Some(rs) = self.relay_stats {
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
