//! nfdhcpd-bench: benchmark programs that print figures.
//!
//! - `nfqueue`: floods the daemon's DHCPv4 and Router Solicitation queues
//!   from a guest namespace at fixed rates, searches the highest rate with
//!   less than 1 % loss, and does the same against a minimal NFQUEUE echo
//!   server (the speed of light on this machine), then prints the ratios.
//! - `scale`: 10,000 binding files: time to ready, memory, a burst of 1,000
//!   binding changes, and memory across a million requests.
//! - `profile`: system calls, context switches, allocations and hot spots
//!   per request, for the daemon and the echo server (strace, perf).
//! - `relay`: relay mode against the real test Nautobot through ISC
//!   dhcrelay: new clients one at a time and in a burst, renewals and
//!   releases; API calls per exchange, times, absorbed retransmissions.
//!
//! Needs root (network namespaces, NFQUEUE). Everything runs in namespaces
//! made here and removed on exit, also on Ctrl-C.

mod echo;
mod flood;
mod frames;
mod lab;
mod nfqueue;
mod profile;
mod relay;
mod scale;
mod server;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

/// Errors are messages for the operator.
pub type Res<T> = Result<T, String>;

#[derive(Parser)]
#[command(name = "nfdhcpd-bench", about = "Benchmarks for nfdhcpd (run as root)")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// NFQUEUE path: DHCPv4 and RS floods against the daemon and the echo.
    Nfqueue(nfqueue::Opts),
    /// Many bindings: start-up, memory, binding-change burst, a million requests.
    Scale(scale::Opts),
    /// Per-request costs: system calls, context switches, allocations, hot spots.
    Profile(profile::Opts),
    /// Relay mode against the test Nautobot: API calls per DORA, renewal, release.
    Relay(relay::Opts),
    /// The minimal NFQUEUE responder (started by `nfqueue` in its namespace).
    #[command(hide = true)]
    Echo(EchoOpts),
}

#[derive(Args)]
struct EchoOpts {
    #[arg(long)]
    config: PathBuf,
    #[arg(long)]
    binding: PathBuf,
    /// Receive buffer of the NFQUEUE sockets, bytes (default: the kernel's).
    #[arg(long)]
    netlink_rcvbuf: Option<i32>,
}

/// Options every measuring subcommand takes.
#[derive(Args, Clone)]
pub struct Common {
    /// The nfdhcpd binary to measure. Default: `cargo build --release` of
    /// the crate this benchmark belongs to, then its target/release/nfdhcpd.
    #[arg(long, value_name = "PATH")]
    daemon: Option<PathBuf>,
    /// Keep the scratch directory (logs, configuration, bindings).
    #[arg(long)]
    keep: bool,
    /// Run the server under test and the flood's threads at this nice value
    /// (e.g. -15): on a machine shared with other work, this measures them
    /// nearly as on an idle one. Default: unchanged (0).
    #[arg(long, allow_hyphen_values = true, value_name = "N")]
    nice: Option<i32>,
}

/// The binary to measure, copied into `dir` so that a rebuild during the
/// run cannot change it (the copy keeps the name: the pid file check
/// looks for a process called nfdhcpd).
pub fn daemon_binary(c: &Common, dir: &Path) -> Res<PathBuf> {
    let src = match &c.daemon {
        Some(p) => p.clone(),
        None => {
            let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
            eprintln!(
                "building nfdhcpd (cargo build --release) in {}",
                root.display()
            );
            // The caller's PATH (cargo is often in ~/.cargo/bin), and the
            // stop signals unblocked, so that Ctrl-C stops the build too.
            let mut cargo = lab::command("cargo");
            if let Some(path) = std::env::var_os("PATH") {
                cargo.env("PATH", path);
            }
            let st = cargo
                .args(["build", "--release", "--bin", "nfdhcpd"])
                .current_dir(&root)
                .status()
                .map_err(|e| format!("cannot run cargo: {e}"))?;
            if !st.success() {
                return Err(format!("cargo build failed ({st})"));
            }
            let target = std::env::var_os("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| root.join("target"));
            target.join("release/nfdhcpd")
        }
    };
    let dst = dir.join("nfdhcpd");
    std::fs::copy(&src, &dst).map_err(|e| format!("{}: {e}", src.display()))?;
    Ok(dst)
}

/// One line about the machine, printed with every report.
pub fn machine() -> String {
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!(
        "{cpus} CPUs, Linux {}, loadavg {}",
        kernel.trim(),
        flood::loadavg()
    )
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let r = match cli.cmd {
        Cmd::Echo(o) => echo::run(&o.config, &o.binding, o.netlink_rcvbuf),
        cmd => {
            // SAFETY: geteuid has no preconditions.
            if unsafe { libc::geteuid() } != 0 {
                eprintln!("nfdhcpd-bench: needs root (network namespaces, NFQUEUE)");
                return ExitCode::from(2);
            }
            match lab::install_signal_cleanup() {
                Err(e) => Err(e),
                Ok(()) => match cmd {
                    Cmd::Nfqueue(o) => nfqueue::run(&o),
                    Cmd::Scale(o) => scale::run(&o),
                    Cmd::Profile(o) => profile::run(&o),
                    Cmd::Relay(o) => relay::run(&o),
                    Cmd::Echo(_) => unreachable!("handled above"),
                },
            }
        }
    };
    lab::wait_for_signal_cleanup();
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("nfdhcpd-bench: {e}");
            ExitCode::FAILURE
        }
    }
}
