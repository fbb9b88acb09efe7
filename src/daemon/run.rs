//! Start-up: the order in which the daemon takes what needs privileges,
//! detaches, drops to its two capabilities and starts every thread, and the
//! channels that join them. The whole set of threads is started here:
//!
//! - one per NFQUEUE (host::queue), answering from the published bindings;
//! - inotify (host::watch), reading binding files;
//! - state (daemon::state), the only writer of the state;
//! - relay mode: UDP 67 (relay::socket), the backend workers
//!   (backend::workers) and a one-off `prepare`;
//! - the log writer (daemon::logging) and the metrics writer (daemon::metrics).
//!
//! The main thread then waits for signals.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crossbeam_channel::bounded;
use log::{info, warn};
use nix::sys::signal::{SigSet, Signal};

use crate::backend::{nautobot, netbox, workers, Backend};
use crate::config::{BackendKind, Config};
use crate::daemon::counters::{QueueCounters, QueueView};
use crate::daemon::event::{Control, QueueKind};
use crate::daemon::logging;
use crate::daemon::metrics;
use crate::daemon::process::{self, DaemonError, Identity, PidFile};
use crate::daemon::sandbox::{self, Enforced};
use crate::daemon::sdnotify::{self, Heartbeat};
use crate::daemon::state::{Settings, State};
use crate::daemon::warnings::WarnLimiter;
use crate::host::answers::Answers;
use crate::host::link::{FrameSender, Link};
use crate::host::published::Published;
use crate::host::queue::{self, BoundQueue};
use crate::host::responder::{Responder, Shared};
use crate::host::watch;
use crate::relay::pending::{RelayLimits, RelaySide};
use crate::relay::settings as relay_settings;
use crate::relay::socket::{self as relay, RelayPacket, RelaySender, RelayStats};

/// Control events (binding changes, signals); senders wait rather than drop.
const CONTROL_CHANNEL: usize = 1024;
/// Relayed datagrams waiting for the state thread.
const RELAY_CHANNEL: usize = 4096;
/// How long readiness waits for the relay backend's first check under systemd.
const BACKEND_CHECK_WAIT: Duration = Duration::from_secs(30);

/// Why the daemon could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot block signals: {0}")]
    Signals(nix::Error),
    #[error(transparent)]
    Process(#[from] DaemonError),
    #[error("cannot open AF_PACKET socket: {0}")]
    PacketSocket(std::io::Error),
    #[error("NFQUEUE {num} ({kind}) is already in use by another program")]
    QueueInUse { num: u16, kind: &'static str },
    #[error("cannot bind NFQUEUE {num} ({kind}): {source}")]
    QueueBind {
        num: u16,
        kind: &'static str,
        source: std::io::Error,
    },
    #[error("cannot listen on UDP port {port}: {source}{}", port_hint(.source))]
    RelayListen { port: u16, source: std::io::Error },
    #[error("{0}")]
    Backend(String),
    #[error("cannot start inotify: {0}")]
    Inotify(std::io::Error),
    #[error("cannot start log writer: {0}")]
    LogWriter(std::io::Error),
    #[error("cannot start: {0}")]
    Link(std::io::Error),
    #[error("relay socket: {0}")]
    RelaySocket(std::io::Error),
    #[error("cannot start {0} thread: {1}")]
    Thread(&'static str, std::io::Error),
}

fn port_hint(e: &std::io::Error) -> &'static str {
    if e.kind() == std::io::ErrorKind::PermissionDenied {
        " (ports below 1024 need root or CAP_NET_BIND_SERVICE)"
    } else {
        ""
    }
}

/// The relay backend, with its token read before privileges are dropped.
fn make_backend(cfg: &Config) -> Result<Arc<dyn Backend>, StartError> {
    match cfg.relay.backend {
        BackendKind::Nautobot => {
            let token = nautobot::load_token(&cfg.nautobot, "NAUTOBOT_TOKEN")
                .map_err(StartError::Backend)?;
            let b = nautobot::Nautobot::new(&cfg.nautobot, token, cfg.relay.lease_time)
                .map_err(StartError::Backend)?;
            Ok(Arc::new(b))
        }
        BackendKind::Netbox => {
            let token =
                netbox::load_token(&cfg.netbox, "NETBOX_TOKEN").map_err(StartError::Backend)?;
            let b = netbox::Netbox::new(&cfg.netbox, token, cfg.relay.lease_time)
                .map_err(StartError::Backend)?;
            Ok(Arc::new(b))
        }
    }
}

/// What the VM-host answers need from the configuration.
fn vm_host_settings(cfg: &Config) -> Settings {
    Settings {
        datapath: cfg.general.datapath.clone(),
        answers: Arc::new(Answers::from_config(cfg)),
        ra_period: Duration::from_secs(u64::from(cfg.ipv6.ra_period.max(1))),
    }
}

/// Whom to switch to: only root can switch; staying root is worth a warning.
fn switch_target(identity: Option<Identity>) -> Option<Identity> {
    let me = Identity::current();
    match (identity, me.uid == 0) {
        (Some(id), true) => Some(id),
        (Some(id), false) => {
            if id.uid != me.uid {
                warn!(
                    "not started as root: staying {} (uid {}) instead of switching to {}",
                    me.name, me.uid, id.name
                );
            }
            None
        }
        (None, true) => {
            warn!(
                "no [general] user set: staying root (uid 0), with CAP_NET_ADMIN and \
                 CAP_NET_RAW only; set user = nobody, or a user of its own, to run without root"
            );
            None
        }
        (None, false) => None,
    }
}

/// Starts every thread and serves until SIGTERM or SIGINT. Returns at once
/// with the reason when the daemon cannot start; the caller logs it and,
/// for a detached start, the waiting parent prints it.
pub fn run(
    cfg: &Config,
    identity: Option<Identity>,
    foreground: bool,
    logger: &'static logging::Logger,
) -> Result<(), StartError> {
    // Signals are taken synchronously by this thread; every other thread inherits the mask.
    let mut sigs = SigSet::empty();
    for s in [
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGHUP,
        Signal::SIGUSR1,
    ] {
        sigs.add(s);
    }
    sigs.thread_block().map_err(StartError::Signals)?;

    // Before privileges are dropped and the file system confined.
    if let Err(e) = sdnotify::init() {
        warn!("NOTIFY_SOCKET: {e}; systemd will not hear from the daemon");
    }

    PidFile::check(&cfg.general.pidfile)?;
    process::check_capabilities()?;
    let target = switch_target(identity);
    if let (Some(dir), Some(id)) = (&cfg.general.logdir, &target) {
        if dir.is_dir() && !process::writable_by(dir, id) {
            warn!(
                "logdir {}: not writable by {} (uid {}): after a rotation the log file \
                 can only be reopened if the rotation creates it",
                dir.display(),
                id.name,
                id.uid
            );
        }
    }

    // Everything that needs privileges is opened first.
    let sender = Arc::new(FrameSender::open().map_err(StartError::PacketSocket)?);
    let wanted: Vec<(u16, QueueKind)> = cfg
        .queues()
        .into_iter()
        .filter_map(|(key, num)| {
            let kind = match key {
                "dhcp_queue" => QueueKind::Dhcp4,
                "rs_queue" => QueueKind::RouterSolicit,
                "ns_queue" => QueueKind::NeighborSolicit,
                "dhcpv6_queue" => QueueKind::Dhcp6,
                _ => return None,
            };
            Some((num, kind))
        })
        .collect();
    let mut bound = Vec::new();
    for (num, kind) in wanted {
        let q = BoundQueue::bind(num, kind).map_err(|e| match e.raw_os_error() {
            // With CAP_NET_ADMIN checked above, the kernel says EPERM only
            // for a queue another socket holds.
            Some(libc::EPERM) => StartError::QueueInUse {
                num,
                kind: kind.name(),
            },
            _ => StartError::QueueBind {
                num,
                kind: kind.name(),
                source: e,
            },
        })?;
        bound.push(q);
    }
    let relay_sock = if cfg.relay.enable_relay {
        Some(
            relay::open(cfg.relay.port).map_err(|source| StartError::RelayListen {
                port: cfg.relay.port,
                source,
            })?,
        )
    } else {
        None
    };
    let backend = if cfg.relay.enable_relay {
        Some(make_backend(cfg)?)
    } else {
        None
    };
    let datapath = cfg.general.datapath.clone();
    let mut watcher =
        watch::Watcher::new(&datapath, target.as_ref()).map_err(StartError::Inotify)?;

    if !foreground {
        process::detach()?;
    }
    let _pidfile = PidFile::create(
        &cfg.general.pidfile,
        target.as_ref().map(|t| (t.uid, t.gid)),
    )?;
    if let Some(id) = &target {
        logger.chown_file(id.uid, id.gid);
    }
    process::drop_privileges(target.as_ref())?;
    let me = Identity::current();
    info!(
        "running as {} (uid {}, gid {}) with CAP_NET_ADMIN and CAP_NET_RAW only",
        me.name, me.uid, me.gid
    );
    // Before any other thread starts: they all inherit it.
    match sandbox::restrict(cfg) {
        Ok(Enforced::Fully) => info!("file access confined to the daemon's directories (Landlock)"),
        Ok(Enforced::Partially) => {
            info!("file access confined to the daemon's directories (Landlock, partly)")
        }
        Ok(Enforced::Not) => warn!("Landlock not available: file access not confined"),
        Err(e) => warn!("Landlock: {e}; file access not confined"),
    }
    // After the drop: capabilities are per thread, and this one needs none.
    logger.start_writer().map_err(StartError::LogWriter)?;

    let (ctrl_tx, ctrl_rx) = bounded::<Control>(CONTROL_CHANNEL);
    let (relay_tx, relay_rx) = bounded::<RelayPacket>(RELAY_CHANNEL);

    let initial = watcher.initial_scan();

    let settings = vm_host_settings(cfg);
    let published = Arc::new(Published::default());
    let warn = Arc::new(Mutex::new(WarnLimiter::default()));
    let mut views = Vec::new();
    let mut queues = Vec::new();
    for q in bound {
        let view = QueueView {
            num: q.num,
            kind: q.kind,
            counters: Arc::new(QueueCounters::default()),
        };
        let shared = Shared {
            answers: settings.answers.clone(),
            bindings: published.clone(),
            sender: sender.clone(),
            warn: warn.clone(),
            limits: cfg.limits,
        };
        let responder =
            Responder::new(q.kind, shared, view.counters.clone()).map_err(StartError::Link)?;
        queues.push((q, responder, view.counters.clone()));
        views.push(view);
    }
    let link = Box::new(Link::new().map_err(StartError::Link)?);
    let mut state = State::new(settings, published, link, sender, warn, views);
    let relay_stats = Arc::new(RelayStats::default());
    let mut backend_checked = None;
    if let (Some(sock), Some(backend)) = (&relay_sock, &backend) {
        let max_jobs = cfg.relay.max_pending_jobs;
        let (urgent_tx, urgent_rx) = bounded(max_jobs);
        let (offer_tx, offer_rx) = bounded(max_jobs);
        let sender = RelaySender::new(sock).map_err(StartError::RelaySocket)?;
        let settings = relay_settings::from_config(cfg);
        state = state.with_relay(
            RelaySide::new(
                settings,
                sender,
                (urgent_tx, offer_tx),
                RelayLimits {
                    max_pending_jobs: max_jobs,
                    max_offers: cfg.relay.max_offers,
                },
                backend.name(),
            ),
            relay_stats.clone(),
        );
        workers::spawn(
            backend.clone(),
            cfg.backend().workers,
            if backend.combines() {
                workers::Batching {
                    window: Duration::from_millis(cfg.backend().batch_window_ms),
                    renewal_window: Duration::from_millis(cfg.backend().renewal_window_ms),
                    size: cfg.backend().batch_size,
                }
            } else {
                workers::Batching::ONE_AT_A_TIME
            },
            urgent_rx,
            offer_rx,
            ctrl_tx.clone(),
        )
        .map_err(|e| StartError::Thread("backend workers", e))?;
        let b = backend.clone();
        let (done_tx, done_rx) = bounded::<()>(1);
        std::thread::Builder::new()
            .name("prepare".into())
            .spawn(move || {
                match b.prepare() {
                    Ok(calls) => info!("{}: ready ({calls} API calls to prepare)", b.name()),
                    Err(e) => warn!("{}: preparation failed: {e}; jobs will retry", b.name()),
                }
                let _ = done_tx.send(());
            })
            .map_err(|e| StartError::Thread("prepare", e))?;
        backend_checked = Some(done_rx);
    }
    if let Some(path) = &cfg.general.metrics_file {
        let tx = metrics::spawn_writer(path.clone())
            .map_err(|e| StartError::Thread("metrics writer", e))?;
        state = state.with_metrics(tx);
    }
    // Loaded before the first packet is read, so "ready" means answering.
    state.on_control(Control::Rescan(initial));
    state.publish();
    let nbindings = state.bindings().len();
    let nqueues = queues.len();
    let mut beats = Vec::new();
    let mut queue_beats = Vec::new();
    for (q, _, _) in &queues {
        let b = Heartbeat::new(format!("nfq-{}", q.num));
        beats.push(b.clone());
        queue_beats.push(b);
    }
    let relay_beat = relay_sock.as_ref().map(|_| Heartbeat::new("relay"));
    beats.extend(relay_beat.clone());
    let inotify_beat = Heartbeat::new("inotify");
    beats.push(inotify_beat.clone());
    let state = state.with_heartbeats(beats);
    let state_thread = std::thread::Builder::new()
        .name("state".into())
        .spawn(move || state.run(ctrl_rx, relay_rx))
        .map_err(|e| StartError::Thread("state", e))?;

    let mut qnames = Vec::new();
    for ((q, responder, st), beat) in queues.into_iter().zip(queue_beats) {
        qnames.push(format!("{} ({})", q.num, q.kind.name()));
        queue::spawn(q, responder, st, beat).map_err(|e| StartError::Thread("queue", e))?;
    }
    if let (Some(sock), Some(beat)) = (relay_sock, relay_beat) {
        let ifaces = cfg.relay.interfaces.clone();
        relay::spawn(sock, ifaces, relay_tx, relay_stats.clone(), beat)
            .map_err(|e| StartError::Thread("relay", e))?;
        qnames.push(format!("udp {} (relay)", cfg.relay.port));
    } else {
        drop(relay_tx);
    }
    let rescan = watcher
        .rescan_handle()
        .map_err(|e| StartError::Thread("inotify", e))?;
    watcher
        .spawn(ctrl_tx.clone(), inotify_beat)
        .map_err(|e| StartError::Thread("inotify", e))?;

    info!(
        "ready: queues [{}], {} bindings from {}",
        qnames.join(", "),
        nbindings,
        datapath.display()
    );
    // The parent of a detached start exits now: the log must say so first.
    log::logger().flush();
    process::notify_ready();
    if sdnotify::enabled() {
        // systemd hears of readiness once the backend has answered (or
        // failed to) too, within a bound.
        if let Some(rx) = backend_checked {
            if rx.recv_timeout(BACKEND_CHECK_WAIT).is_err() {
                warn!(
                    "backend not checked within {} s: reporting ready anyway",
                    BACKEND_CHECK_WAIT.as_secs()
                );
            }
        }
        sdnotify::ready(&sdnotify::status_line(&sdnotify::Summary {
            bindings: nbindings,
            queues: nqueues,
            answers_per_min: 0,
            relay: backend.as_ref().map(|b| (0, b.name(), None)),
        }));
    }

    loop {
        let sig = match sigs.wait() {
            Ok(s) => s,
            Err(_) => continue,
        };
        match sig {
            Signal::SIGTERM | Signal::SIGINT => {
                sdnotify::stopping();
                info!("{} received", sig.as_str());
                let (ack_tx, ack_rx) = bounded(1);
                if ctrl_tx.send(Control::Shutdown(ack_tx)).is_ok() {
                    let _ = ack_rx.recv_timeout(Duration::from_millis(1500));
                }
                drop(state_thread);
                return Ok(());
            }
            Signal::SIGHUP => {
                let reopened = if logger.reopen() {
                    "log file reopened, "
                } else {
                    ""
                };
                info!("SIGHUP: {reopened}rescanning {}", datapath.display());
                // READY=1 follows from the state thread once the rescan is applied.
                sdnotify::reloading();
                rescan.request();
            }
            Signal::SIGUSR1 => {
                let _ = ctrl_tx.send(Control::Dump);
            }
            _ => {}
        }
    }
}
