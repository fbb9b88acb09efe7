//! Network namespaces, the veth pair between a "host" and a "guest", the
//! NFQUEUE rules, and their removal on every way out: guards on return and
//! unwind, and a signal thread for SIGINT, SIGTERM and SIGHUP.
//!
//! Only namespaces made here (`nfb-<pid>-<tag>h` / `...g`) are touched,
//! and those of the test harness that `relay` runs (`nfdt-<pid>-...`,
//! registered by prefix); iptables and sysctl only ever run inside them.

use std::ffi::CString;
use std::fs::{self, File};
use std::os::fd::{AsRawFd, IntoRawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use crate::frames::{DHCP_QUEUE, GUEST_MAC, RS_QUEUE, TAP, TAP_MAC};
use crate::Res;

/// PATH for the tools run here, whatever the caller's PATH holds.
const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// The guest's side of the veth pair (inside the guest namespace).
pub const GUEST_IF: &str = "eth0";

/// Namespaces and directories to remove when a signal ends the run.
static NAMESPACES: Mutex<Vec<String>> = Mutex::new(Vec::new());
static DIRS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
/// Held by the signal thread from the signal to the exit: `main` takes it
/// before returning, so the process cannot end half-way through the
/// clean-up.
static CLEANING: Mutex<()> = Mutex::new(());

/// Held while a server is being started, until its pid is registered: a
/// signal then waits for the pid instead of missing a process that has not
/// entered its namespace yet. The signal thread keeps it, so nothing new
/// starts during the clean-up.
static LAUNCH: Mutex<()> = Mutex::new(());
/// Servers running now, stopped first on a signal (even one that has left
/// its namespace's name behind).
static PIDS: Mutex<Vec<i32>> = Mutex::new(Vec::new());
/// Commands that undo something made outside the namespaces (uprobe
/// events), run on a signal.
static UNDO: Mutex<Vec<Vec<String>>> = Mutex::new(Vec::new());
/// Name prefixes of what code that registers nothing makes (the test
/// harness's `nfdt-<pid>-...` namespaces and scratch directories), each
/// with what to run for such a namespace before it is removed.
type Foreign = (String, fn(&str));
static FOREIGN: Mutex<Vec<Foreign>> = Mutex::new(Vec::new());
/// Named clean-ups run on a signal once every namespace is gone (records
/// the run made in Nautobot).
type Cleanup = Box<dyn Fn() + Send>;
static CLEANUPS: Mutex<Vec<(&'static str, Cleanup)>> = Mutex::new(Vec::new());
/// The thread that takes the stop signals (a `pthread_t`), for
/// [`forward_signal`].
static SIGNAL_THREAD: AtomicU64 = AtomicU64::new(0);
/// Once foreign namespaces are registered: /dev/null and a copy of the
/// original stderr, opened beforehand so that a signal handler can silence
/// stderr with dup2 alone. The harness's threads fail as their processes
/// and namespaces go, and say so at length: not worth reading.
static DEV_NULL: AtomicI32 = AtomicI32::new(-1);
static STDERR_COPY: AtomicI32 = AtomicI32::new(-1);

/// On a signal: every namespace and every directory of the temp directory
/// whose name starts with `prefix` is removed, namespaces after
/// `before_removal(name)`. For namespaces made by code that does not use
/// [`Netns`] (the test harness).
pub fn register_foreign(prefix: String, before_removal: fn(&str)) {
    registry(&FOREIGN).push((prefix, before_removal));
    if DEV_NULL.load(Ordering::SeqCst) < 0 {
        if let Ok(null) = File::options().write(true).open("/dev/null") {
            // SAFETY: fcntl on fd 2; the copy is ours (close-on-exec).
            let copy = unsafe { libc::fcntl(2, libc::F_DUPFD_CLOEXEC, 3) };
            STDERR_COPY.store(copy, Ordering::SeqCst);
            DEV_NULL.store(null.into_raw_fd(), Ordering::SeqCst);
        }
    }
}

/// Runs `f` on a signal, after the namespaces are gone, until
/// [`unregister_cleanup`] with the same name.
pub fn register_cleanup(name: &'static str, f: Cleanup) {
    registry(&CLEANUPS).push((name, f));
}

pub fn unregister_cleanup(name: &'static str) {
    registry(&CLEANUPS).retain(|(n, _)| *n != name);
}

pub fn register_undo(argv: Vec<String>) {
    registry(&UNDO).push(argv);
}

/// Runs an undo command now and forgets it.
pub fn undo(argv: &[String]) {
    registry(&UNDO).retain(|a| a != argv);
    run_undo(argv);
}

fn run_undo(argv: &[String]) {
    if let Some((prog, args)) = argv.split_first() {
        let _ = command(prog)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// Waits for a clean-up the signal thread may be doing (then the signal
/// thread ends the process).
pub fn wait_for_signal_cleanup() {
    drop(CLEANING.lock().unwrap_or_else(|p| p.into_inner()));
}

/// See [`LAUNCH`].
pub fn launch_guard() -> std::sync::MutexGuard<'static, ()> {
    LAUNCH.lock().unwrap_or_else(|p| p.into_inner())
}

pub fn register_pid(pid: i32) {
    registry(&PIDS).push(pid);
}

pub fn unregister_pid(pid: i32) {
    registry(&PIDS).retain(|p| *p != pid);
}

/// True while `pid` exists and is not a zombie; reaps it if it is our child.
pub fn alive(pid: i32) -> bool {
    // SAFETY: non-blocking waitpid on one pid; fails harmlessly if not ours.
    unsafe { libc::waitpid(pid, std::ptr::null_mut(), libc::WNOHANG) };
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => {
            let state = s.rfind(')').and_then(|i| s[i + 2..].chars().next());
            !matches!(state, Some('Z') | Some('X') | None)
        }
        Err(_) => false,
    }
}

/// SIGTERM, up to `grace`, then SIGKILL (and up to 2 s more).
pub fn terminate(pid: i32, grace: Duration) {
    let start = Instant::now();
    // SAFETY: plain kill(2) on a server we started.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    while alive(pid) && start.elapsed() < grace {
        thread::sleep(Duration::from_millis(10));
    }
    if alive(pid) {
        // SAFETY: as above.
        unsafe { libc::kill(pid, libc::SIGKILL) };
        while alive(pid) && start.elapsed() < grace + Duration::from_secs(2) {
            thread::sleep(Duration::from_millis(10));
        }
    }
}

fn registry<T>(m: &Mutex<Vec<T>>) -> std::sync::MutexGuard<'_, Vec<T>> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn signal_set() -> libc::sigset_t {
    // SAFETY: sigset_t is plain data, initialised by sigemptyset.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
            libc::sigaddset(&mut set, s);
        }
        set
    }
}

/// Blocks the stop signals in this thread (call it first in `main`, so
/// every later thread inherits the mask) and starts the thread that takes
/// them: it removes whatever is registered and exits.
pub fn install_signal_cleanup() -> Res<()> {
    // An ignored signal is discarded even while blocked, and a shell starts
    // background jobs with SIGINT ignored: take INT and TERM back. (HUP stays
    // ignored under nohup.)
    for s in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: restores the default disposition; no handler involved.
        unsafe { libc::signal(s, libc::SIG_DFL) };
    }
    let set = signal_set();
    // SAFETY: a valid set; no old mask wanted.
    let r = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    if r != 0 {
        return Err(format!(
            "cannot block signals: {}",
            std::io::Error::from_raw_os_error(r)
        ));
    }
    // Orphaned descendants (the daemon detaches) become our children, so
    // they can be waited for.
    // SAFETY: plain prctl with integer arguments.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            // SAFETY: pthread_self has no preconditions.
            SIGNAL_THREAD.store(unsafe { libc::pthread_self() } as u64, Ordering::SeqCst);
            loop {
                let mut sig: libc::c_int = 0;
                // SAFETY: set and sig are valid for the call.
                if unsafe { libc::sigwait(&set, &mut sig) } == 0 {
                    let _launch = launch_guard();
                    let _held = CLEANING.lock().unwrap_or_else(|p| p.into_inner());
                    silence_stderr();
                    say(&format!("nfdhcpd-bench: signal {sig}: cleaning up\n"));
                    cleanup_all();
                    std::process::exit(128 + sig);
                }
            }
        })
        .map_err(|e| format!("cannot start the signal thread: {e}"))?;
    Ok(())
}

fn cleanup_all() {
    let pids = registry(&PIDS).clone();
    for p in pids {
        terminate(p, Duration::from_secs(3));
    }
    let names = registry(&NAMESPACES).clone();
    for n in names {
        remove_netns(&n);
    }
    let foreign = registry(&FOREIGN).clone();
    for (prefix, before_removal) in &foreign {
        remove_foreign(prefix, *before_removal);
    }
    for (_, f) in registry(&CLEANUPS).iter() {
        f();
    }
    let undo = registry(&UNDO).clone();
    for argv in undo {
        run_undo(&argv);
    }
    let dirs = registry(&DIRS).clone();
    for d in dirs {
        // The main thread may still be writing into it; it stops at its
        // next write once the directory is gone.
        for _ in 0..20 {
            if fs::remove_dir_all(&d).is_ok() || !d.exists() {
                break;
            }
            thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Removes the namespaces and scratch directories named `prefix...`.
fn remove_foreign(prefix: &str, before_removal: fn(&str)) {
    let names = |dir: &Path| -> Vec<String> {
        fs::read_dir(dir)
            .map(|rd| {
                rd.flatten()
                    .filter_map(|e| e.file_name().into_string().ok())
                    .filter(|n| n.starts_with(prefix))
                    .collect()
            })
            .unwrap_or_default()
    };
    for n in names(Path::new("/run/netns")) {
        before_removal(&n);
        remove_netns(&n);
    }
    let tmp = std::env::temp_dir();
    for n in names(&tmp) {
        let _ = fs::remove_dir_all(tmp.join(n));
    }
}

/// Points stderr at /dev/null once foreign namespaces are registered
/// (see [`DEV_NULL`]). Async-signal-safe.
fn silence_stderr() {
    let null = DEV_NULL.load(Ordering::SeqCst);
    if null >= 0 {
        // SAFETY: dup2 onto fd 2 of a descriptor we keep open.
        unsafe { libc::dup2(null, 2) };
    }
}

/// Writes to the original stderr, also once it is silenced.
fn say(msg: &str) {
    let fd = match STDERR_COPY.load(Ordering::SeqCst) {
        fd if fd >= 0 => fd,
        _ => 2,
    };
    // SAFETY: a valid buffer of that length; a bad descriptor only fails.
    unsafe { libc::write(fd, msg.as_ptr() as *const libc::c_void, msg.len()) };
}

/// A stop signal that reached a thread running [`with_default_signal_mask`]
/// (or a thread it started) goes on to the signal thread.
extern "C" fn forward_signal(sig: libc::c_int) {
    // Before the interrupted system call returns and the harness panics.
    silence_stderr();
    let t = SIGNAL_THREAD.load(Ordering::SeqCst);
    if t != 0 {
        // SAFETY: pthread_kill is async-signal-safe, and the signal thread
        // lives until the process exits.
        unsafe { libc::pthread_kill(t as libc::pthread_t, sig) };
    }
}

/// Runs `f` on a thread that does not block the stop signals, so that the
/// processes it starts with a plain `std::process::Command` (the test
/// harness's: the daemon, dhcrelay, socat) can be stopped by them; a stop
/// signal that lands on that thread is handed on to the signal thread, which
/// cleans up as usual. `Err` if `f` panicked (the panic has been printed).
pub fn with_default_signal_mask<T: Send>(f: impl FnOnce() -> T + Send) -> Res<T> {
    for s in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: sigaction with valid, zero-initialised structures; the
        // handler makes only async-signal-safe calls (dup2, pthread_kill).
        unsafe {
            let mut old: libc::sigaction = std::mem::zeroed();
            libc::sigaction(s, std::ptr::null(), &mut old);
            if old.sa_sigaction == libc::SIG_IGN {
                // SIGHUP under nohup stays ignored.
                continue;
            }
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = forward_signal as *const () as libc::sighandler_t;
            sa.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(s, &sa, std::ptr::null_mut());
        }
    }
    thread::scope(|sc| {
        sc.spawn(|| {
            let set = signal_set();
            // SAFETY: a valid set; only this thread's mask changes (and
            // that of the threads and processes it starts).
            unsafe { libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut()) };
            f()
        })
        .join()
        .map_err(|_| "the run failed (see the panic above)".to_string())
    })
}

/// A command whose child gets the default signal mask back (ours blocks
/// the stop signals) and is sent SIGTERM if the thread that started it
/// dies, so a crashed run leaves no echo server behind.
pub fn command(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut c = Command::new(program);
    c.env("PATH", PATH).stdin(Stdio::null());
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        c.pre_exec(|| {
            let set = signal_set();
            libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM, 0, 0, 0);
            Ok(())
        });
    }
    c
}

/// Runs a command to completion; its stdout, or an error with its output.
pub fn run(cmd: &mut Command) -> Res<String> {
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{cmd:?} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn ns_pids(name: &str) -> Vec<i32> {
    let out = command("ip")
        .args(["netns", "pids", name])
        .stderr(Stdio::null())
        .output();
    match out {
        Ok(o) => String::from_utf8_lossy(&o.stdout)
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// Stops everything still running inside (SIGTERM, up to 2 s, then
/// SIGKILL), then deletes the namespace.
fn remove_netns(name: &str) {
    if !Path::new("/run/netns").join(name).exists() {
        return;
    }
    let start = Instant::now();
    let mut first = true;
    loop {
        let pids = ns_pids(name);
        if pids.is_empty() || start.elapsed() > Duration::from_secs(5) {
            break;
        }
        let sig = if first || start.elapsed() < Duration::from_secs(2) {
            libc::SIGTERM
        } else {
            libc::SIGKILL
        };
        if first || sig == libc::SIGKILL {
            for p in pids {
                // SAFETY: plain kill(2) on a pid that lives in our namespace.
                unsafe { libc::kill(p, sig) };
            }
        }
        first = false;
        // Reap those that were ours (the subreaper collects the daemon).
        // SAFETY: non-blocking waitpid on any child.
        while unsafe { libc::waitpid(-1, std::ptr::null_mut(), libc::WNOHANG) } > 0 {}
        thread::sleep(Duration::from_millis(50));
    }
    // Those that died last left zombies the loop above no longer lists.
    // SAFETY: non-blocking waitpid on any child.
    while unsafe { libc::waitpid(-1, std::ptr::null_mut(), libc::WNOHANG) } > 0 {}
    let _ = command("ip")
        .args(["netns", "del", name])
        .stderr(Stdio::null())
        .status();
}

/// A scratch directory, removed on drop unless `keep` is set.
pub struct TempDir {
    pub path: PathBuf,
    pub keep: bool,
}

impl TempDir {
    pub fn new(tag: &str, keep: bool) -> Res<TempDir> {
        let path = std::env::temp_dir().join(format!("nfb-{}-{tag}", std::process::id()));
        if !keep {
            registry(&DIRS).push(path.clone());
        }
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(TempDir { path, keep })
    }

    pub fn join(&self, p: &str) -> PathBuf {
        self.path.join(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if self.keep {
            eprintln!("kept {}", self.path.display());
        } else {
            let _ = fs::remove_dir_all(&self.path);
            registry(&DIRS).retain(|d| *d != self.path);
        }
    }
}

/// A network namespace made here; deleted (with what runs inside) on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(name: String) -> Res<Netns> {
        // Registered before it exists: a signal during creation still
        // finds it.
        registry(&NAMESPACES).push(name.clone());
        let ns = Netns { name };
        run(command("ip").args(["netns", "add", &ns.name]))?;
        run(command("ip").args(["-n", &ns.name, "link", "set", "lo", "up"]))?;
        Ok(ns)
    }

    /// `argv` run inside the namespace (`ip netns exec` execs it, so the
    /// child's pid is the program's pid).
    pub fn command(&self, argv: &[&str]) -> Command {
        let mut c = command("ip");
        c.args(["netns", "exec", &self.name]).args(argv);
        c
    }

    pub fn run(&self, argv: &[&str]) -> Res<String> {
        run(&mut self.command(argv))
    }

    pub fn sysctl(&self, setting: &str) -> Res<()> {
        self.run(&["sysctl", "-qw", setting]).map(|_| ())
    }

    /// Runs `f` on a thread that has joined this namespace: sockets it
    /// opens belong to the namespace and stay usable from any thread.
    pub fn enter<T: Send>(&self, f: impl FnOnce() -> T + Send) -> Res<T> {
        let path = format!("/run/netns/{}", self.name);
        let file = File::open(&path).map_err(|e| format!("{path}: {e}"))?;
        thread::scope(|s| {
            s.spawn(|| {
                // SAFETY: a namespace file descriptor we hold open.
                if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                    return Err(format!(
                        "setns {}: {}",
                        self.name,
                        std::io::Error::last_os_error()
                    ));
                }
                Ok(f())
            })
            .join()
            .map_err(|_| format!("thread in {} panicked", self.name))?
        })
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        remove_netns(&self.name);
        registry(&NAMESPACES).retain(|n| *n != self.name);
    }
}

/// NFQUEUE statistics of one queue (`/proc/net/netfilter/nfnetlink_queue`).
#[derive(Debug, Clone, Copy, Default)]
pub struct QueueCounters {
    /// Dropped because the kernel queue held `queue_maxlen` packets.
    pub queue_dropped: u64,
    /// Dropped because the netlink socket's receive buffer was full.
    pub user_dropped: u64,
}

/// A host namespace and a guest namespace joined by a veth pair: `tap0`
/// on the host side, [`GUEST_IF`] with the guest's MAC on the other, and
/// the README's routed NFQUEUE rules for DHCPv4 and Router Solicitations.
pub struct Lab {
    pub host: Netns,
    pub guest: Netns,
    pub guest_ifindex: u32,
}

impl Lab {
    pub fn new(tag: &str) -> Res<Lab> {
        let pid = std::process::id();
        let host = Netns::new(format!("nfb-{pid}-{tag}h"))?;
        let guest = Netns::new(format!("nfb-{pid}-{tag}g"))?;
        // The guest is silent (no DAD, RS, MLD of its own): every frame it
        // receives is an answer to the flood.
        guest.sysctl("net.ipv6.conf.all.disable_ipv6=1")?;
        guest.sysctl("net.ipv6.conf.default.disable_ipv6=1")?;
        // The host side needs IPv6 to see Router Solicitations, but not its
        // own DAD and solicitations on the tap.
        host.sysctl("net.ipv6.conf.default.accept_dad=0")?;
        host.sysctl("net.ipv6.conf.default.router_solicitations=0")?;
        let tap_mac = TAP_MAC.to_string();
        let guest_mac = GUEST_MAC.to_string();
        run(command("ip").args([
            "-n",
            &host.name,
            "link",
            "add",
            TAP,
            "address",
            &tap_mac,
            "type",
            "veth",
            "peer",
            "name",
            GUEST_IF,
            "address",
            &guest_mac,
            "netns",
            &guest.name,
        ]))?;
        run(command("ip").args(["-n", &host.name, "link", "set", TAP, "up"]))?;
        run(command("ip").args(["-n", &guest.name, "link", "set", GUEST_IF, "up"]))?;
        let dhcp = DHCP_QUEUE.to_string();
        host.run(&[
            "iptables",
            "-t",
            "mangle",
            "-A",
            "PREROUTING",
            "-i",
            "tap+",
            "-p",
            "udp",
            "--dport",
            "67",
            "-j",
            "NFQUEUE",
            "--queue-num",
            &dhcp,
            "--queue-bypass",
        ])?;
        let rs = RS_QUEUE.to_string();
        host.run(&[
            "ip6tables",
            "-t",
            "mangle",
            "-A",
            "PREROUTING",
            "-i",
            "tap+",
            "-p",
            "ipv6-icmp",
            "--icmpv6-type",
            "router-solicitation",
            "-j",
            "NFQUEUE",
            "--queue-num",
            &rs,
            "--queue-bypass",
        ])?;
        let guest_ifindex = guest.enter(|| {
            let n = CString::new(GUEST_IF).expect("interface name");
            // SAFETY: a valid C string.
            unsafe { libc::if_nametoindex(n.as_ptr()) }
        })?;
        if guest_ifindex == 0 {
            return Err(format!("{GUEST_IF} missing in {}", guest.name));
        }
        Ok(Lab {
            host,
            guest,
            guest_ifindex,
        })
    }

    /// The kernel's counters for NFQUEUE `queue`, read inside the host
    /// namespace (the file is per namespace).
    pub fn queue_counters(&self, queue: u16) -> QueueCounters {
        let text = self
            .host
            .enter(|| fs::read_to_string("/proc/thread-self/net/netfilter/nfnetlink_queue"))
            .ok()
            .and_then(|r| r.ok())
            .unwrap_or_default();
        // queue_number peer_portid queue_total copy_mode copy_range
        // queue_dropped user_dropped id_sequence 1
        for line in text.lines() {
            let f: Vec<u64> = line
                .split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect();
            if f.len() >= 7 && f[0] == u64::from(queue) {
                return QueueCounters {
                    queue_dropped: f[5],
                    user_dropped: f[6],
                };
            }
        }
        QueueCounters::default()
    }
}
