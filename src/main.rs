//! nfdhcpd: command line, start-up order, and the wiring of threads and channels.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use crossbeam_channel::bounded;
use log::{error, info, warn};
use nix::sys::signal::{SigSet, Signal};

use nfdhcpd::config::Ipv6Mode;
use nfdhcpd::config::{self, Config};
use nfdhcpd::daemon::{self, PidFile};
use nfdhcpd::event::{Control, QueueKind};
use nfdhcpd::link::FrameSender;
use nfdhcpd::nfqueue::{self, BoundQueue, QueueStats};
use nfdhcpd::proto::{dhcp4, dhcp6, ndp};
use nfdhcpd::state::{Settings, State};
use nfdhcpd::{logging, watch};

/// Packets waiting for the state thread; beyond this they are dropped and counted.
const PACKET_CHANNEL: usize = 4096;
/// Control events (binding changes, signals); senders wait rather than drop.
const CONTROL_CHANNEL: usize = 1024;

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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let (cfg, warnings) = match Config::load(&cli.config) {
        Ok(c) => c,
        Err(e) => {
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

    let logger = logging::init(logging::Options {
        debug: cli.debug,
        stderr: cli.foreground,
        syslog: true,
        file: cfg.general.logdir.as_ref().map(|d| d.join("nfdhcpd.log")),
    });
    for w in &warnings {
        warn!("{w}");
    }
    match run(&cli, &cfg, logger) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("{e}");
            ExitCode::from(1)
        }
    }
}

/// What the VM-host answers need from the configuration.
fn vm_host_settings(cfg: &Config) -> Settings {
    let v6 = &cfg.ipv6;
    // Validated at load time; slaac is the fallback that needs least.
    let mode = v6.effective_mode().unwrap_or(Ipv6Mode::Slaac);
    let dhcpv6 = matches!(mode, Ipv6Mode::SlaacDhcpv6 | Ipv6Mode::Dhcpv6);
    let stateful = mode == Ipv6Mode::Dhcpv6;
    let ndp = v6.enable_ipv6.then(|| ndp::Params {
        router_lifetime: v6.router_lifetime,
        prefix_valid_lifetime: v6.prefix_valid_lifetime,
        prefix_preferred_lifetime: v6.prefix_preferred_lifetime,
        dns_lifetime: v6.dns_lifetime,
        nameservers: v6.nameservers.clone(),
        domains: v6.domains.clone(),
        other_config: dhcpv6,
        managed: stateful,
    });
    let dhcp6 = (v6.enable_ipv6 && dhcpv6).then(|| dhcp6::Params {
        stateful,
        nameservers: v6.nameservers.clone(),
        domains: v6.domains.clone(),
        // RFC 8415 21.4 recommends T1 = 0.5 and T2 = 0.8 of the preferred lifetime.
        t1: v6.prefix_preferred_lifetime / 2,
        t2: v6.prefix_preferred_lifetime / 5 * 4,
        preferred_lifetime: v6.prefix_preferred_lifetime,
        valid_lifetime: v6.prefix_valid_lifetime,
    });
    Settings {
        datapath: cfg.general.datapath.clone(),
        dhcp4: dhcp4::Params {
            lease_lifetime: cfg.dhcp.lease_lifetime,
            lease_renewal: cfg.dhcp.lease_renewal,
            server_ip: cfg.dhcp.server_ip,
            server_on_link: cfg.dhcp.server_on_link,
            nameservers: cfg.dhcp.nameservers.clone(),
            domain: cfg.dhcp.domain.clone(),
        },
        ndp,
        dhcp6,
        ra_period: Duration::from_secs(u64::from(v6.ra_period.max(1))),
    }
}

fn run(cli: &Cli, cfg: &Config, logger: &'static logging::Logger) -> Result<(), String> {
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

    PidFile::check(&cfg.general.pidfile).map_err(|e| e.to_string())?;
    let root = nix::unistd::Uid::effective().is_root();
    let target = match (&cfg.general.user, root) {
        (Some(u), true) => {
            let user = daemon::lookup_user(u).map_err(|e| e.to_string())?;
            Some((u.clone(), user.uid.as_raw(), user.gid.as_raw()))
        }
        (Some(u), false) => {
            warn!(
                "not started as root: staying uid {} instead of switching to {u:?}",
                nix::unistd::Uid::effective()
            );
            None
        }
        (None, _) => None,
    };

    // Everything that needs privileges is opened first.
    let sender = FrameSender::open().map_err(|e| format!("cannot open AF_PACKET socket: {e}"))?;
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
        let q = BoundQueue::bind(num, kind)
            .map_err(|e| format!("cannot bind NFQUEUE {num} ({}): {e}", kind.name()))?;
        bound.push(q);
    }
    let datapath = cfg.general.datapath.clone();
    let watcher =
        watch::Watcher::new(&datapath).map_err(|e| format!("cannot start inotify: {e}"))?;

    if !cli.foreground {
        daemon::detach().map_err(|e| e.to_string())?;
    }
    let _pidfile = PidFile::create(&cfg.general.pidfile, target.as_ref().map(|t| (t.1, t.2)))
        .map_err(|e| e.to_string())?;
    if let Some((name, _, _)) = &target {
        let (uid, gid) = daemon::drop_privileges(name).map_err(|e| e.to_string())?;
        info!("running as {name} (uid {uid}, gid {gid}) with CAP_NET_ADMIN and CAP_NET_RAW only");
    }

    let (ctrl_tx, ctrl_rx) = bounded::<Control>(CONTROL_CHANNEL);
    let (pkt_tx, pkt_rx) = bounded(PACKET_CHANNEL);

    let initial = watch::scan(&datapath).unwrap_or_default();

    let settings = vm_host_settings(cfg);
    let mut queue_stats = Vec::new();
    let mut queues = Vec::new();
    for q in bound {
        let st = Arc::new(QueueStats::default());
        queue_stats.push((q.num, q.kind, st.clone()));
        queues.push((q, st));
    }
    let mut state =
        State::new(settings, sender, queue_stats).map_err(|e| format!("cannot start: {e}"))?;
    // Loaded before the first packet is read, so "ready" means answering.
    state.on_control(Control::Rescan(initial));
    let nbindings = state.bindings().len();
    let state_thread = std::thread::Builder::new()
        .name("state".into())
        .spawn(move || state.run(ctrl_rx, pkt_rx))
        .map_err(|e| format!("cannot start state thread: {e}"))?;

    let mut qnames = Vec::new();
    for (q, st) in queues {
        qnames.push(format!("{} ({})", q.num, q.kind.name()));
        nfqueue::spawn(q, pkt_tx.clone(), st)
            .map_err(|e| format!("cannot start queue thread: {e}"))?;
    }
    drop(pkt_tx);
    watcher
        .spawn(ctrl_tx.clone())
        .map_err(|e| format!("cannot start inotify thread: {e}"))?;

    info!(
        "ready: queues [{}], {} bindings from {}",
        qnames.join(", "),
        nbindings,
        datapath.display()
    );

    loop {
        let sig = match sigs.wait() {
            Ok(s) => s,
            Err(_) => continue,
        };
        match sig {
            Signal::SIGTERM | Signal::SIGINT => {
                info!("{} received", sig.as_str());
                let (ack_tx, ack_rx) = bounded(1);
                if ctrl_tx.send(Control::Shutdown(ack_tx)).is_ok() {
                    let _ = ack_rx.recv_timeout(Duration::from_millis(1500));
                }
                drop(state_thread);
                return Ok(());
            }
            Signal::SIGHUP => {
                info!(
                    "SIGHUP: reopening logs and rescanning {}",
                    datapath.display()
                );
                logger.reopen();
                let all = watch::scan(&datapath).unwrap_or_default();
                let _ = ctrl_tx.send(Control::Rescan(all));
            }
            Signal::SIGUSR1 => {
                let _ = ctrl_tx.send(Control::Dump);
            }
            _ => {}
        }
    }
}
