//! nfdhcpd: the command line and the configuration; daemon::run starts the rest.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use log::{error, warn};

use nfdhcpd::config::{self, Config};
use nfdhcpd::daemon::logging;
use nfdhcpd::daemon::process;
use nfdhcpd::daemon::run;

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
    let identity = match cfg.general.user.as_deref().map(process::resolve_user) {
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
    let code = match run::run(&cfg, identity, cli.foreground, logger) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let e = e.to_string();
            error!("{e}");
            // A detached start's parent is still waiting: it prints this.
            // Before the fork, the operator's terminal is still ours.
            if !process::notify_failed(&e) && !cli.foreground {
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
