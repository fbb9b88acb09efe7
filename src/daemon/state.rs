//! The state thread: the one place where the daemon's state changes. It
//! applies binding-file events to the VM-host binding table and publishes
//! it to the queue threads, sends the unsolicited Router Advertisements,
//! runs the relay side (pending exchanges, backend results), feeds systemd's
//! watchdog and keeps score. Control events always go first.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{select_biased, Receiver};
use log::{info, warn};

use crate::daemon::counters::QueueView;
use crate::daemon::event::Control;
use crate::daemon::report::Report;
use crate::daemon::sdnotify::{self, Heartbeat};
use crate::daemon::warnings::WarnLimiter;
use crate::host::answers::Answers;
use crate::host::bindings::Bindings;
use crate::host::link::{FrameSink, Interfaces};
use crate::host::published::Published;
use crate::relay::pending::RelaySide;
use crate::relay::socket::{RelayPacket, RelayStats};

/// How often the metrics file is rewritten.
const METRICS_INTERVAL: Duration = Duration::from_secs(5);
/// How often systemd's STATUS= line is renewed.
const STATUS_INTERVAL: Duration = Duration::from_secs(10);

/// What the state thread needs from the configuration.
pub struct Settings {
    pub datapath: PathBuf,
    pub answers: Arc<Answers>,
    pub ra_period: Duration,
}

pub struct State {
    bindings: Bindings,
    ra_period: Duration,
    queues: Vec<QueueView>,
    relay: Option<RelaySide>,
    relay_stats: Option<Arc<RelayStats>>,
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
        link: Box<dyn Interfaces + Send>,
        sender: Arc<dyn FrameSink>,
        warn: Arc<Mutex<WarnLimiter>>,
        queues: Vec<QueueView>,
    ) -> State {
        State {
            bindings: Bindings::new(
                settings.datapath,
                settings.answers,
                published,
                link,
                sender,
                warn,
            ),
            ra_period: settings.ra_period,
            queues,
            relay: None,
            relay_stats: None,
            metrics: None,
            heartbeats: Vec::new(),
            stalled: Vec::new(),
            answers_seen: (0, Instant::now()),
        }
    }

    /// Serves relay mode too.
    pub fn with_relay(mut self, relay: RelaySide, stats: Arc<RelayStats>) -> State {
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

    pub fn bindings(&self) -> &Bindings {
        &self.bindings
    }

    /// Makes the bindings as they are now the ones the queue threads answer from.
    pub fn publish(&mut self) {
        self.bindings.publish();
    }

    /// Runs until `Shutdown`. Control events always go first: a binding change
    /// must never wait behind a flood of packets.
    pub fn run(mut self, ctrl: Receiver<Control>, mut relayed: Receiver<RelayPacket>) {
        // Without IPv6 the ticker never fires.
        let ra_tick = if self.bindings.advertises() {
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
        // Relay mode: offers not taken are withdrawn when their hold runs out.
        let relay_tick = if self.relay.is_some() {
            crossbeam_channel::tick(Duration::from_secs(1))
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
                        self.bindings.withdraw_all();
                        let _ = ack.send(());
                        return;
                    }
                    Ok(c) => {
                        self.on_control(c);
                        // A burst of changes is published once, when drained.
                        if ctrl.is_empty() {
                            self.bindings.publish();
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
                recv(ra_tick) -> _ => self.bindings.periodic_ras(),
                recv(relay_tick) -> _ => {
                    if let Some(r) = self.relay.as_mut() {
                        r.tick(SystemTime::now());
                    }
                },
                recv(metrics_tick) -> _ => {
                    if let Some(tx) = &self.metrics {
                        let _ = tx.try_send(self.report().metrics());
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
        let mut total = self.bindings.answers();
        total += self
            .queues
            .iter()
            .map(|q| q.counters.answers())
            .sum::<u64>();
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

    pub fn on_control(&mut self, c: Control) {
        match c {
            Control::Binding { name, read } => self.bindings.apply(name, *read, true),
            Control::Rescan(all) => self.bindings.rescan(all),
            Control::Dump => self.report().dump(),
            Control::Reloaded => {
                self.bindings.publish();
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

    /// Every counter, for the metrics file and SIGUSR1.
    pub fn report(&self) -> Report<'_> {
        Report {
            bindings: &self.bindings,
            queues: &self.queues,
            relay: self.relay.as_ref(),
            relay_stats: self.relay_stats.as_deref(),
        }
    }
}
