//! nfdhcpd: command line, start-up order, and the wiring of threads and channels.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Parser;
use crossbeam_channel::bounded;
use log::{error, info, warn};
use nix::sys::signal::{SigSet, Signal};

use nfdhcpd::backend::{nautobot, netbox, workers, Backend};
use nfdhcpd::config::BackendKind;
use nfdhcpd::config::{self, Config};
use nfdhcpd::daemon::{self, PidFile};
use nfdhcpd::event::{Control, QueueKind};
use nfdhcpd::link::FrameSender;
use nfdhcpd::nfqueue::{self, BoundQueue, QueueStats};
use nfdhcpd::proto::relay4;
use nfdhcpd::relay::{self, RelayPacket, RelaySender, RelayStats};
use nfdhcpd::responder::{Answers, Published, Responder, Shared};
use nfdhcpd::sandbox::Enforced;
use nfdhcpd::sdnotify::{self, Heartbeat};
use nfdhcpd::state::relay::{RelayLimits, RelaySide};
use nfdhcpd::state::{QueueView, Settings, State, Stats, WarnLimiter};
use nfdhcpd::{logging, watch};

/// Control events (binding changes, signals); senders wait rather than drop.
const CONTROL_CHANNEL: usize = 1024;
/// Relayed datagrams waiting for the state thread.
const RELAY_CHANNEL: usize = 4096;
/// How long readiness waits for the relay backend's first check under systemd.
const BACKEND_CHECK_WAIT: Duration = Duration::from_secs(30);

#[derive(Parser, Debug)]
#[command(
    name = "nfdhcpd",
    version,
    about = "DHCP, DHCPv6 and Router Advertisement server for VM hosts (NFQUEUE)"
)]
struct Cli {
    /// Configuration file.
    #[arg(short = 'c', long = "config", default_value = config::DEFAULT_PATH)]
    config: PathBuf,
    /// Stay in the foreground and log to stderr too.
    #[arg(short = 'f', long = "foreground")]
    foreground: bool,
    /// Log debug messages.
    #[arg(short = 'd', long = "debug")]
    debug: bool,
    /// Check the configuration file and exit (0 = valid, 2 = invalid).
    #[arg(long = "check-config")]
    check_config: bool,
    /// Relay mode: serve UDP 67 on this interface (repeatable; `*` = all).
    /// Enables relay mode; overrides [relay] interfaces.
    #[arg(short = 'i', long = "interface", value_name = "IFACE")]
    interface: Vec<String>,
    /// Relay mode: NAK requests that cannot be honoured (overrides [relay] authoritative).
    #[arg(short = 'a', long = "authoritative", alias = "authoritive")]
    authoritative: bool,
    /// Relay mode: lease store, nautobot or netbox (overrides [relay] backend).
    #[arg(short = 'b', long = "backend", value_name = "NAME")]
    backend: Option<String>,
    /// Relay mode: UDP port to listen on (overrides [relay] port).
    #[arg(short = 'p', long = "port")]
    port: Option<u16>,
    /// Relay mode: lease time in seconds (overrides [relay] lease_time).
    #[arg(short = 'l', long = "lease-time", value_name = "SECONDS")]
    lease_time: Option<u32>,
    /// Relay mode: server identifier (overrides [relay] server_ident).
    #[arg(long = "server-ident", value_name = "ADDR")]
    server_ident: Option<std::net::Ipv4Addr>,
    /// Relay mode: Nautobot URL (overrides [nautobot] url).
    #[arg(long = "nautobot-url", value_name = "URL")]
    nautobot_url: Option<String>,
    /// Relay mode: Netbox URL (overrides [netbox] url).
    #[arg(long = "netbox-url", value_name = "URL")]
    netbox_url: Option<String>,
}

impl Cli {
    /// Applies the relay flags on top of the file's settings.
    fn override_relay(&self, cfg: &mut Config, file: &str) -> Result<(), config::ConfigError> {
        let err = |key: &str, problem: String| config::ConfigError {
            file: format!("{file} (command line)"),
            section: "relay".into(),
            key: key.into(),
            problem,
        };
        let r = &mut cfg.relay;
        if !self.interface.is_empty() {
            r.enable_relay = true;
            r.interfaces = if self.interface.iter().any(|i| i == "*") {
                Vec::new()
            } else {
                self.interface.clone()
            };
        }
        if self.authoritative {
            r.authoritative = true;
        }
        if let Some(b) = &self.backend {
            r.backend = b
                .parse()
                .map_err(|_| err("backend", format!("{b:?} is not nautobot or netbox")))?;
        }
        if let Some(p) = self.port {
            if p == 0 {
                return Err(err("port", "0 is not a port".into()));
            }
            r.port = p;
        }
        if let Some(l) = self.lease_time {
            if l == 0 {
                return Err(err("lease_time", "0 is not a lease time".into()));
            }
            r.lease_time = l;
        }
        if let Some(s) = self.server_ident {
            r.server_ident = Some(s);
        }
        for (url, conf, key) in [
            (&self.nautobot_url, &mut cfg.nautobot, "nautobot-url"),
            (&self.netbox_url, &mut cfg.netbox, "netbox-url"),
        ] {
            if let Some(u) = url {
                if !(u.starts_with("http://") || u.starts_with("https://")) {
                    return Err(err(key, format!("{u:?} is not an http:// or https:// URL")));
                }
                conf.url = Some(u.trim_end_matches('/').to_string());
            }
        }
        if cfg.relay.enable_relay && cfg.backend().url.is_none() {
            return Err(err(
                "backend",
                format!("relay mode needs the {} url", cfg.relay.backend),
            ));
        }
        Ok(())
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let (mut cfg, warnings) = match Config::load(&cli.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("nfdhcpd: {e}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = cli.override_relay(&mut cfg, &cli.config.display().to_string()) {
        eprintln!("nfdhcpd: {e}");
        return ExitCode::from(2);
    }
    // A user that does not exist is a configuration error, found by
    // --check-config too rather than at the next start.
    let identity = match cfg.general.user.as_deref().map(daemon::resolve_user) {
        None => None,
        Some(Ok(id)) => Some(id),
        Some(Err(e)) => {
            let e = config::ConfigError {
                file: cli.config.display().to_string(),
                section: "general".into(),
                key: "user".into(),
                problem: e.to_string(),
            };
            eprintln!("nfdhcpd: {e}");
            return ExitCode::from(2);
        }
    };
    if cli.check_config {
        for w in &warnings {
            eprintln!("nfdhcpd: warning: {w}");
        }
        println!("{}: configuration is valid", cli.config.display());
        return ExitCode::SUCCESS;
    }

    // Under systemd stderr already goes to the journal: log once, there,
    // with each line's syslog priority (sd-daemon(3)) instead of to syslog.
    let journal = stderr_is_journal() && cli.foreground;
    let logger = logging::init(logging::Options {
        debug: cli.debug,
        stderr: cli.foreground,
        journal,
        syslog: !journal,
        file: cfg.general.logdir.as_ref().map(|d| d.join("nfdhcpd.log")),
    });
    for w in &warnings {
        warn!("{w}");
    }
    if let Some(e) = logger.file_error() {
        warn!("{e}; logging to syslog only");
    }
    let code = match run(&cli, &cfg, identity, logger) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("{e}");
            // A detached start's parent is still waiting: it prints this.
            // Before the fork, the operator's terminal is still ours.
            if !daemon::notify_failed(&e) && !cli.foreground {
                eprintln!("nfdhcpd: {e}");
            }
            ExitCode::from(1)
        }
    };
    log::logger().flush();
    code
}

/// True when stderr is the journal stream systemd set up (JOURNAL_STREAM=dev:ino).
fn stderr_is_journal() -> bool {
    let Some(v) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = v.to_str().and_then(|s| s.split_once(':')) else {
        return false;
    };
    match nix::sys::stat::fstat(std::io::stderr()) {
        Ok(st) => dev.parse() == Ok(st.st_dev) && ino.parse() == Ok(st.st_ino),
        Err(_) => false,
    }
}

/// The relay backend, with its token read before privileges are dropped.
fn make_backend(cfg: &Config) -> Result<Arc<dyn Backend>, String> {
    match cfg.relay.backend {
        BackendKind::Nautobot => {
            let token = nautobot::load_token(&cfg.nautobot, "NAUTOBOT_TOKEN")?;
            let b = nautobot::Nautobot::new(&cfg.nautobot, token, cfg.relay.lease_time)?;
            Ok(Arc::new(b))
        }
        BackendKind::Netbox => {
            let token = netbox::load_token(&cfg.netbox, "NETBOX_TOKEN")?;
            let b = netbox::Netbox::new(&cfg.netbox, token, cfg.relay.lease_time)?;
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
fn switch_target(identity: Option<daemon::Identity>) -> Option<daemon::Identity> {
    let me = daemon::Identity::current();
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

fn run(
    cli: &Cli,
    cfg: &Config,
    identity: Option<daemon::Identity>,
    logger: &'static logging::Logger,
) -> Result<(), String> {
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
    sigs.thread_block()
        .map_err(|e| format!("cannot block signals: {e}"))?;

    // Before privileges are dropped and the file system confined.
    if let Err(e) = sdnotify::init() {
        warn!("NOTIFY_SOCKET: {e}; systemd will not hear from the daemon");
    }

    PidFile::check(&cfg.general.pidfile).map_err(|e| e.to_string())?;
    daemon::check_capabilities().map_err(|e| e.to_string())?;
    let target = switch_target(identity);
    if let (Some(dir), Some(id)) = (&cfg.general.logdir, &target) {
        if dir.is_dir() && !daemon::writable_by(dir, id) {
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
    let sender =
        Arc::new(FrameSender::open().map_err(|e| format!("cannot open AF_PACKET socket: {e}"))?);
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
            Some(libc::EPERM) => format!(
                "NFQUEUE {num} ({}) is already in use by another program",
                kind.name()
            ),
            _ => format!("cannot bind NFQUEUE {num} ({}): {e}", kind.name()),
        })?;
        bound.push(q);
    }
    let relay_sock = if cfg.relay.enable_relay {
        Some(relay::open(cfg.relay.port).map_err(|e| {
            let hint = if e.kind() == std::io::ErrorKind::PermissionDenied {
                " (ports below 1024 need root or CAP_NET_BIND_SERVICE)"
            } else {
                ""
            };
            format!("cannot listen on UDP port {}: {e}{hint}", cfg.relay.port)
        })?)
    } else {
        None
    };
    let backend = if cfg.relay.enable_relay {
        Some(make_backend(cfg)?)
    } else {
        None
    };
    let datapath = cfg.general.datapath.clone();
    let mut watcher = watch::Watcher::new(&datapath, target.as_ref())
        .map_err(|e| format!("cannot start inotify: {e}"))?;

    if !cli.foreground {
        daemon::detach().map_err(|e| e.to_string())?;
    }
    let _pidfile = PidFile::create(
        &cfg.general.pidfile,
        target.as_ref().map(|t| (t.uid, t.gid)),
    )
    .map_err(|e| e.to_string())?;
    if let Some(id) = &target {
        logger.chown_file(id.uid, id.gid);
    }
    daemon::drop_privileges(target.as_ref()).map_err(|e| e.to_string())?;
    let me = daemon::Identity::current();
    info!(
        "running as {} (uid {}, gid {}) with CAP_NET_ADMIN and CAP_NET_RAW only",
        me.name, me.uid, me.gid
    );
    // Before any other thread starts: they all inherit it.
    match nfdhcpd::sandbox::restrict(cfg) {
        Ok(Enforced::Fully) => info!("file access confined to the daemon's directories (Landlock)"),
        Ok(Enforced::Partially) => {
            info!("file access confined to the daemon's directories (Landlock, partly)")
        }
        Ok(Enforced::Not) => warn!("Landlock not available: file access not confined"),
        Err(e) => warn!("Landlock: {e}; file access not confined"),
    }
    // After the drop: capabilities are per thread, and this one needs none.
    logger
        .start_writer()
        .map_err(|e| format!("cannot start log writer: {e}"))?;

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
            queue: Arc::new(QueueStats::default()),
            answers: Arc::new(Mutex::new(Stats::default())),
        };
        let shared = Shared {
            answers: settings.answers.clone(),
            bindings: published.clone(),
            sender: sender.clone(),
            warn: warn.clone(),
            limits: cfg.limits,
        };
        let responder = Responder::new(q.kind, shared, view.answers.clone())
            .map_err(|e| format!("cannot start: {e}"))?;
        queues.push((q, responder, view.queue.clone()));
        views.push(view);
    }
    let mut state = State::new(settings, published, sender, warn, views)
        .map_err(|e| format!("cannot start: {e}"))?;
    let relay_stats = Arc::new(RelayStats::default());
    let mut backend_checked = None;
    if let (Some(sock), Some(backend)) = (&relay_sock, &backend) {
        let max_jobs = cfg.relay.max_pending_jobs;
        let (urgent_tx, urgent_rx) = bounded(max_jobs);
        let (offer_tx, offer_rx) = bounded(max_jobs);
        let sender = RelaySender::new(sock).map_err(|e| format!("relay socket: {e}"))?;
        let settings = relay4::Settings {
            server_ident: cfg.relay.server_ident,
            authoritative: cfg.relay.authoritative,
            lease_time: cfg.relay.lease_time,
            nameservers: cfg.relay.nameservers.clone(),
            domain: cfg.relay.domain.clone(),
        };
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
            urgent_rx,
            offer_rx,
            ctrl_tx.clone(),
        )
        .map_err(|e| format!("cannot start backend workers: {e}"))?;
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
            .map_err(|e| format!("cannot start thread: {e}"))?;
        backend_checked = Some(done_rx);
    }
    if let Some(path) = &cfg.general.metrics_file {
        let tx = nfdhcpd::metrics::spawn_writer(path.clone())
            .map_err(|e| format!("cannot start metrics writer: {e}"))?;
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
        .map_err(|e| format!("cannot start state thread: {e}"))?;

    let mut qnames = Vec::new();
    for ((q, responder, st), beat) in queues.into_iter().zip(queue_beats) {
        qnames.push(format!("{} ({})", q.num, q.kind.name()));
        nfqueue::spawn(q, responder, st, beat)
            .map_err(|e| format!("cannot start queue thread: {e}"))?;
    }
    if let (Some(sock), Some(beat)) = (relay_sock, relay_beat) {
        let ifaces = cfg.relay.interfaces.clone();
        relay::spawn(sock, ifaces, relay_tx, relay_stats.clone(), beat)
            .map_err(|e| format!("cannot start relay thread: {e}"))?;
        qnames.push(format!("udp {} (relay)", cfg.relay.port));
    } else {
        drop(relay_tx);
    }
    let rescan = watcher
        .rescan_handle()
        .map_err(|e| format!("cannot start inotify thread: {e}"))?;
    watcher
        .spawn(ctrl_tx.clone(), inotify_beat)
        .map_err(|e| format!("cannot start inotify thread: {e}"))?;

    info!(
        "ready: queues [{}], {} bindings from {}",
        qnames.join(", "),
        nbindings,
        datapath.display()
    );
    // The parent of a detached start exits now: the log must say so first.
    log::logger().flush();
    daemon::notify_ready();
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
