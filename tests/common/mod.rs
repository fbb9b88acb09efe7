//! End-to-end test harness: network namespaces joined by veth pairs whose
//! host ends are named like taps, the daemon, dnsmasq, real DHCP clients
//! and the IPv6 tools (rdisc6, ndisc6, dhclient -6, tcpdump).
//!
//! Safety rules: everything is created inside namespaces made here (names
//! `nfdt-<pid>-<n>-<role>`), iptables, ip6tables and sysctl are only run
//! inside them, and processes are only ever stopped by PID. Guards clean up
//! in `Drop`, so a panicking test leaves nothing behind.

// Each test crate uses a different part of the harness.
#![allow(dead_code)]

/// Relay mode: router with dhcrelay, daemon namespaces, Nautobot.
pub mod relay;

use std::collections::HashMap;
use std::fs;
use std::io::Write as _;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// Queue number the NFQUEUE rules and the test config use.
pub const QUEUE: u16 = 42;
/// IPv6 queues: Router Solicitations, Neighbor Solicitations, DHCPv6.
pub const RS_QUEUE: u16 = 43;
pub const NS_QUEUE: u16 = 44;
pub const DHCP6_QUEUE: u16 = 45;
/// How long the daemon gets to print `ready:`.
pub const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// PATH for everything started here: the test runner's PATH may point into
/// user directories.
const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

static COUNTER: AtomicUsize = AtomicUsize::new(0);

fn next_id() -> usize {
    COUNTER.fetch_add(1, Ordering::SeqCst)
}

/// True when end-to-end tests can run here. Without root they are skipped
/// with a notice, except under CI, where a skipped e2e test is a failure.
pub fn can_run(test: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!("{test}: end-to-end tests need root, and CI is set: refusing to skip");
    }
    eprintln!("SKIPPED {test}: end-to-end tests need root");
    false
}

/// Polls `f` every 50 ms until it returns `Some`, or gives up after `timeout`.
pub fn poll<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if start.elapsed() >= timeout {
            return None;
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// Runs a command to completion and panics with its output when it fails.
pub fn run_ok(cmd: &mut Command) -> String {
    let out = output_of(cmd);
    if !out.status.success() {
        panic!(
            "{cmd:?} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn output_of(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

/// Sends SIGTERM, waits up to `grace`, then SIGKILL. Returns the exit status
/// if the process ended within the grace period.
fn terminate(child: &mut Child, grace: Duration) -> Option<ExitStatus> {
    if let Ok(Some(st)) = child.try_wait() {
        return Some(st);
    }
    let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
    if let Some(st) = poll(grace, || child.try_wait().ok().flatten()) {
        return Some(st);
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

/// A scratch directory, removed on drop. Kept when the test panics (its
/// logs are what one wants to read then) or when NFDT_KEEP is set.
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let path =
            std::env::temp_dir().join(format!("nfdt-{}-{}-{tag}", std::process::id(), next_id()));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).unwrap();
        // dhcpcd's privilege-separated helpers must be able to reach scripts here.
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
        TempDir { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn join(&self, p: &str) -> PathBuf {
        self.path.join(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if thread::panicking() || std::env::var_os("NFDT_KEEP").is_some() {
            eprintln!("kept {}", self.path.display());
        } else {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

/// A network namespace owned by the test. Drop stops the processes started
/// in it (the registered ones gently, then anything still inside by PID)
/// and deletes it, which also removes its interfaces and firewall rules.
pub struct Netns {
    pub name: String,
    children: Mutex<Vec<Child>>,
}

impl Netns {
    /// `role` ends up in the name: `h` for host, `g3` for guest 3 and so on.
    pub fn new(role: &str) -> Netns {
        let name = format!("nfdt-{}-{}-{role}", std::process::id(), next_id());
        run_ok(Command::new("ip").args(["netns", "add", &name]));
        let ns = Netns {
            name,
            children: Mutex::new(Vec::new()),
        };
        ns.run(&["ip", "link", "set", "lo", "up"]);
        ns
    }

    /// `argv` run inside the namespace (`ip netns exec` execs it, so the
    /// child's PID is the program's PID).
    pub fn command(&self, argv: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name]).args(argv);
        c.env("PATH", PATH);
        c
    }

    /// Runs `argv` inside; panics on failure; returns stdout.
    pub fn run(&self, argv: &[&str]) -> String {
        run_ok(&mut self.command(argv))
    }

    /// Runs a command line split at whitespace (no quoting) inside; panics
    /// on failure; returns stdout.
    pub fn run_words(&self, line: &str) -> String {
        self.run(&line.split_whitespace().collect::<Vec<_>>())
    }

    /// Runs `argv` inside and returns whatever happened.
    pub fn try_run(&self, argv: &[&str]) -> Output {
        output_of(&mut self.command(argv))
    }

    /// Starts `argv` inside with stdout and stderr going to `log`; the
    /// process is stopped when the namespace is dropped at the latest.
    pub fn spawn(&self, argv: &[&str], log: &Path) -> u32 {
        self.spawn_cmd(self.command(argv), log)
    }

    pub fn spawn_cmd(&self, mut cmd: Command, log: &Path) -> u32 {
        let f = fs::File::create(log).unwrap();
        let child = cmd
            .stdin(Stdio::null())
            .stdout(f.try_clone().unwrap())
            .stderr(f)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
        let pid = child.id();
        self.children.lock().unwrap().push(child);
        pid
    }

    /// Stops a process started with `spawn`: SIGTERM, then SIGKILL after
    /// `grace`. Returns its exit status if it ended within the grace period.
    pub fn stop(&self, pid: u32, grace: Duration) -> Option<ExitStatus> {
        let mut children = self.children.lock().unwrap();
        let i = children.iter().position(|c| c.id() == pid)?;
        let mut child = children.remove(i);
        drop(children);
        terminate(&mut child, grace)
    }

    /// Exit status of a process started with `spawn`, if it has ended.
    pub fn exited(&self, pid: u32) -> Option<ExitStatus> {
        let mut children = self.children.lock().unwrap();
        let c = children.iter_mut().find(|c| c.id() == pid)?;
        c.try_wait().ok().flatten()
    }

    /// Waits up to 10 s until `pid` (started with `spawn`) listens on
    /// `port`; `ss_flags` picks the protocol (`-Htlnp` TCP, `-Hulnp` UDP).
    /// False when it exited first or never listened.
    pub fn wait_listening(&self, pid: u32, ss_flags: &str, port: u16) -> bool {
        let listening = poll(Duration::from_secs(10), || {
            if self.exited(pid).is_some() {
                return Some(false);
            }
            let ss = self.try_run(&["ss", ss_flags, &format!("sport = :{port}")]);
            String::from_utf8_lossy(&ss.stdout)
                .contains(&format!("pid={pid},"))
                .then_some(true)
        });
        listening == Some(true)
    }

    /// PIDs of all processes living in this namespace.
    pub fn pids(&self) -> Vec<i32> {
        ns_pids(&self.name)
    }

    /// Adds an IPv4 address to an interface inside.
    pub fn addr_add(&self, cidr: &str, dev: &str) {
        self.run(&["ip", "addr", "add", cidr, "dev", dev]);
    }

    /// `ip -4 -o addr show dev DEV`, one line per address.
    pub fn ipv4_addrs(&self, dev: &str) -> String {
        self.run(&["ip", "-4", "-o", "addr", "show", "dev", dev])
    }

    pub fn routes(&self) -> String {
        self.run(&["ip", "-4", "route", "show"])
    }

    /// The MAC address of `dev` inside, lower case.
    pub fn mac_of(&self, dev: &str) -> String {
        let out = self.run(&["ip", "-o", "link", "show", "dev", dev]);
        let mut w = out.split_whitespace();
        w.find(|t| *t == "link/ether")
            .and_then(|_| w.next())
            .unwrap_or_else(|| panic!("no MAC address for {dev}: {out}"))
            .to_lowercase()
    }

    /// The IPv6 addresses on `dev` inside.
    pub fn addrs6(&self, dev: &str) -> Vec<Addr6> {
        let out = self.run(&["ip", "-6", "-o", "addr", "show", "dev", dev]);
        out.lines()
            .filter_map(|l| {
                let mut w = l.split_whitespace();
                w.find(|t| *t == "inet6")?;
                let (a, len) = w.next()?.split_once('/')?;
                Some(Addr6 {
                    addr: a.parse().ok()?,
                    prefix_len: len.parse().ok()?,
                    line: l.to_string(),
                })
            })
            .collect()
    }

    /// Waits until `dev` has the link-local address of its MAC and it
    /// passed duplicate address detection: until then the kernel neither
    /// answers for it nor lets clients send from it.
    pub fn wait_link_local(&self, dev: &str, timeout: Duration) -> Ipv6Addr {
        let ll = link_local(&self.mac_of(dev));
        poll(timeout, || {
            self.addrs6(dev)
                .into_iter()
                .find(|a| a.addr == ll && !a.tentative() && !a.dadfailed())
                .map(|a| a.addr)
        })
        .unwrap_or_else(|| panic!("no usable {ll} on {dev}: {:?}", self.addrs6(dev)))
    }

    /// tcpdump on `dev` inside, printing link-layer headers and decoded
    /// packets (`-e -n -v`) to `log`; returns once it captures.
    pub fn tcpdump(&self, dev: &str, filter: &str, log: &Path) -> Capture {
        let pid = self.spawn(&["tcpdump", "-l", "-e", "-n", "-v", "-i", dev, filter], log);
        let ok = poll(Duration::from_secs(10), || {
            if self.exited(pid).is_some() {
                return Some(false);
            }
            fs::read_to_string(log)
                .unwrap_or_default()
                .contains("listening on")
                .then_some(true)
        });
        if ok != Some(true) {
            panic!(
                "tcpdump did not start; log:\n{}",
                fs::read_to_string(log).unwrap_or_default()
            );
        }
        Capture {
            pid,
            log: log.to_path_buf(),
        }
    }
}

fn ns_pids(name: &str) -> Vec<i32> {
    let out = Command::new("ip")
        .args(["netns", "pids", name])
        .stdin(Stdio::null())
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

/// Whether namespace `name` exists.
pub fn netns_exists(name: &str) -> bool {
    Path::new("/run/netns").join(name).exists()
}

impl Drop for Netns {
    fn drop(&mut self) {
        let children = std::mem::take(
            &mut *self
                .children
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        );
        for mut c in children {
            terminate(&mut c, Duration::from_millis(1500));
        }
        // Whatever forked off and is still inside (dhcpcd helpers, a client
        // whose wrapper panicked).
        for _ in 0..20 {
            let pids = ns_pids(&self.name);
            if pids.is_empty() {
                break;
            }
            for p in pids {
                let _ = kill(Pid::from_raw(p), Signal::SIGKILL);
            }
            thread::sleep(Duration::from_millis(50));
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .stdin(Stdio::null())
            .status();
    }
}

/// The contents of one binding file.
#[derive(Clone, Debug)]
pub struct Binding {
    pub tap: String,
    pub indev: Option<String>,
    pub ip: Ipv4Addr,
    pub mac: String,
    pub hostname: String,
    pub gateway: Option<Ipv4Addr>,
    pub subnet: Option<String>,
    pub gateway6: Option<Ipv6Addr>,
    pub subnet6: Option<String>,
    pub eui64: Option<Ipv6Addr>,
    pub ip6: Option<Ipv6Addr>,
    pub private: bool,
    pub mtu: Option<u16>,
    pub macspoof: bool,
    /// Lines appended to the file (e.g. the network boot keys).
    pub extra: String,
}

impl Binding {
    /// A binding on 192.0.2.0/24 with gateway 192.0.2.1, named after the tap.
    pub fn new(tap: &str, ip: &str, mac: &str) -> Binding {
        Binding {
            tap: tap.to_string(),
            indev: None,
            ip: ip.parse().unwrap(),
            mac: mac.to_string(),
            hostname: format!("vm-{tap}"),
            gateway: Some(Ipv4Addr::new(192, 0, 2, 1)),
            subnet: Some("192.0.2.0/24".to_string()),
            gateway6: None,
            subnet6: None,
            eui64: None,
            ip6: None,
            private: false,
            mtu: None,
            macspoof: false,
            extra: String::new(),
        }
    }

    /// Adds IPv6 the way the VM manager writes it: SUBNET6 (a /64), its
    /// first address as GATEWAY6 and the guest's EUI-64 address in it.
    pub fn with_ipv6(mut self, subnet6: &str) -> Binding {
        let (net, len) = subnet6.split_once('/').expect("SUBNET6 needs a length");
        assert_eq!(len, "64", "SLAAC needs a /64");
        let net: Ipv6Addr = net.parse().unwrap();
        self.subnet6 = Some(subnet6.to_string());
        self.gateway6 = Some(Ipv6Addr::from(u128::from(net) | 1));
        self.eui64 = Some(eui64(net, &self.mac));
        self
    }

    /// Prefix length of SUBNET.
    pub fn prefix_len(&self) -> u8 {
        self.subnet
            .as_deref()
            .and_then(|s| s.split_once('/'))
            .map(|(_, l)| l.parse().unwrap())
            .unwrap_or(32)
    }

    /// The file text, in the format the VM manager writes (all keys present,
    /// empty meaning unset).
    pub fn text(&self) -> String {
        let opt = |v: Option<String>| v.unwrap_or_default();
        let opt6 = |v: Option<Ipv6Addr>| v.map(|a| a.to_string()).unwrap_or_default();
        let flag = |b: bool| if b { "1" } else { "" };
        format!(
            "INDEV={}\nIP={}\nMAC={}\nHOSTNAME={}\nTAGS=\"\"\nGATEWAY={}\nSUBNET={}\n\
             GATEWAY6={}\nSUBNET6={}\nEUI64={}\nIP6={}\nPRIVATE={}\nMTU={}\nMACSPOOF={}\n{}",
            self.indev.as_deref().unwrap_or(&self.tap),
            self.ip,
            self.mac,
            self.hostname,
            opt(self.gateway.map(|g| g.to_string())),
            opt(self.subnet.clone()),
            opt6(self.gateway6),
            opt(self.subnet6.clone()),
            opt6(self.eui64),
            opt6(self.ip6),
            flag(self.private),
            opt(self.mtu.map(|m| m.to_string())),
            flag(self.macspoof),
            self.extra,
        )
    }
}

/// The `[dhcp]` and `[ipv6]` settings of the test config.
#[derive(Clone, Debug)]
pub struct DaemonConfig {
    pub server_ip: String,
    pub lease_lifetime: u32,
    pub lease_renewal: u32,
    pub nameservers: Vec<String>,
    pub domain: String,
    /// Off by default: the `[ipv6]` keys below are only written when on.
    pub enable_ipv6: bool,
    /// `[ipv6] mode`: auto, slaac, slaac+dhcpv6 or dhcpv6.
    pub mode: String,
    pub ra_period: u32,
    /// `[ipv6] nameservers`.
    pub nameservers6: Vec<String>,
    /// `[ipv6] domains`.
    pub domains: Vec<String>,
    /// The lifetimes are left to the daemon's defaults when None.
    pub router_lifetime: Option<u32>,
    pub prefix_valid_lifetime: Option<u32>,
    pub prefix_preferred_lifetime: Option<u32>,
    pub dns_lifetime: Option<u32>,
    /// Lines added to `[general]` (logdir, user, ...).
    pub general: String,
    /// Lines added to `[dhcp]` (domains, network boot defaults, ...).
    pub dhcp: String,
    /// Sections appended at the end (e.g. `[limits]`).
    pub extra: String,
}

impl Default for DaemonConfig {
    fn default() -> Self {
        DaemonConfig {
            server_ip: "192.0.2.1".into(),
            lease_lifetime: 604800,
            lease_renewal: 600,
            nameservers: vec!["192.0.2.2".into(), "192.0.2.3".into()],
            domain: "example.com".into(),
            enable_ipv6: false,
            mode: "auto".into(),
            ra_period: 300,
            nameservers6: vec!["2001:db8:100::1".into(), "2001:db8:200::2".into()],
            domains: vec!["example.com".into(), "vm.example.org".into()],
            router_lifetime: None,
            prefix_valid_lifetime: None,
            prefix_preferred_lifetime: None,
            dns_lifetime: None,
            general: String::new(),
            dhcp: String::new(),
            extra: String::new(),
        }
    }
}

impl DaemonConfig {
    /// The default config with IPv6 served in `mode`, periodic RAs every
    /// `ra_period` seconds.
    pub fn ipv6(mode: &str, ra_period: u32) -> DaemonConfig {
        DaemonConfig {
            enable_ipv6: true,
            mode: mode.into(),
            ra_period,
            ..Default::default()
        }
    }

    /// The `[ipv6]` section.
    fn ipv6_section(&self) -> String {
        if !self.enable_ipv6 {
            return "[ipv6]\nenable_ipv6 = no\n".into();
        }
        let mut s = format!(
            "[ipv6]\nenable_ipv6 = yes\nmode = {}\nra_period = {}\nrs_queue = {RS_QUEUE}\n\
             ns_queue = {NS_QUEUE}\ndhcpv6_queue = {DHCP6_QUEUE}\nnameservers = {}\n\
             domains = {}\n",
            self.mode,
            self.ra_period,
            self.nameservers6.join(", "),
            self.domains.join(", "),
        );
        for (k, v) in [
            ("router_lifetime", self.router_lifetime),
            ("prefix_valid_lifetime", self.prefix_valid_lifetime),
            ("prefix_preferred_lifetime", self.prefix_preferred_lifetime),
            ("dns_lifetime", self.dns_lifetime),
        ] {
            if let Some(v) = v {
                s += &format!("{k} = {v}\n");
            }
        }
        s
    }
}

/// A host namespace with bindings directory and (optionally) the daemon.
/// Guests are separate values made by [`Lab::guest`].
pub struct Lab {
    pub name: String,
    // Dropped in this order: the namespace (and the daemon) before its files.
    pub host: Netns,
    pub tmp: TempDir,
    pub bindings: PathBuf,
    bridged: bool,
    daemon: Option<u32>,
    daemon_log: PathBuf,
    started: Instant,
    /// The nfdhcpd binary started; the test build's unless changed.
    pub daemon_bin: PathBuf,
    /// A command the daemon is started through (e.g. `setpriv ...`).
    pub daemon_wrapper: Vec<String>,
}

impl Lab {
    /// A fresh host namespace. `None` when e2e tests cannot run here.
    pub fn new(test: &str) -> Option<Lab> {
        if !can_run(test) {
            return None;
        }
        let tmp = TempDir::new("lab");
        let bindings = tmp.join("bindings");
        fs::create_dir_all(&bindings).unwrap();
        let daemon_log = tmp.join("nfdhcpd.log");
        Some(Lab {
            name: test.to_string(),
            host: Netns::new("h"),
            tmp,
            bindings,
            bridged: false,
            daemon: None,
            daemon_log,
            started: Instant::now(),
            daemon_bin: PathBuf::from(env!("CARGO_BIN_EXE_nfdhcpd")),
            daemon_wrapper: Vec::new(),
        })
    }

    /// Routed setup: DHCP from any tap goes to the queue.
    pub fn nfqueue_routed(&mut self) {
        self.host.run_words(&format!(
            "iptables -t mangle -A PREROUTING -i tap+ -p udp --dport 67 \
             -j NFQUEUE --queue-num {QUEUE}"
        ));
    }

    /// Bridged setup: taps become ports of br0 and bridged DHCP goes to the
    /// queue through br_netfilter and the physdev match.
    pub fn nfqueue_bridged(&mut self) {
        self.bridge();
        self.host
            .run_words("sysctl -qw net.bridge.bridge-nf-call-iptables=1");
        self.host.run_words(&format!(
            "iptables -t mangle -A PREROUTING -p udp -m physdev --physdev-in tap+ \
             --dport 67 -j NFQUEUE --queue-num {QUEUE}"
        ));
    }

    /// br0, once; guests made from now on join it.
    fn bridge(&mut self) {
        if !self.bridged {
            self.host.run_words("ip link add br0 type bridge");
            self.host.run_words("ip link set br0 up");
            self.bridged = true;
        }
    }

    /// Routed IPv6: Router and Neighbor Solicitations and DHCPv6 from any
    /// tap go to their queues (the rules of the README).
    pub fn nfqueue6_routed(&mut self) {
        for m in IPV6_MATCHES {
            self.host
                .run_words(&format!("ip6tables -t mangle -A PREROUTING -i tap+ {m}"));
        }
    }

    /// Bridged IPv6: the same three rules with the physdev match, and
    /// br_netfilter handing bridged IPv6 to ip6tables.
    pub fn nfqueue6_bridged(&mut self) {
        self.bridge();
        self.host
            .run_words("sysctl -qw net.bridge.bridge-nf-call-ip6tables=1");
        for m in IPV6_MATCHES {
            self.host.run_words(&format!(
                "ip6tables -t mangle -A PREROUTING -m physdev --physdev-in tap+ {m}"
            ));
        }
    }

    /// A guest namespace joined to the host by veth `tap` (host side) and a
    /// uniquely named guest interface with MAC `mac`. Both ends are up; in a
    /// bridged lab the tap joins br0.
    pub fn guest(&self, tap: &str, mac: &str) -> Guest {
        let g = self.guest_down(tap, mac);
        g.up();
        g
    }

    /// Like [`Lab::guest`], but the guest's interface stays down, so that
    /// its sysctls can be set before the kernel starts IPv6 on it.
    pub fn guest_down(&self, tap: &str, mac: &str) -> Guest {
        let id = next_id();
        let ns = Netns::new(&format!("g{id}"));
        // Unique across namespaces: dhcpcd keeps per-interface files in /run.
        let ifname = format!("g{}-{id}", std::process::id());
        assert!(ifname.len() <= 15, "{ifname} is too long for an interface");
        let dir = self.tmp.join(&ifname);
        fs::create_dir_all(&dir).unwrap();
        let g = Guest {
            ns,
            ifname,
            mac: mac.to_string(),
            tap: tap.to_string(),
            dir,
        };
        self.add_veth(&g);
        g
    }

    /// Creates `g`'s veth pair; the host end up (in br0 if bridged), the
    /// guest end down.
    fn add_veth(&self, g: &Guest) {
        self.host.run(&[
            "ip", "link", "add", &g.tap, "type", "veth", "peer", "name", &g.ifname, "netns",
            &g.ns.name,
        ]);
        g.ns.run(&["ip", "link", "set", "dev", &g.ifname, "address", &g.mac]);
        if self.bridged {
            self.host
                .run(&["ip", "link", "set", "dev", &g.tap, "master", "br0"]);
        }
        self.host.run(&["ip", "link", "set", "dev", &g.tap, "up"]);
    }

    /// Deletes `g`'s tap, which takes the guest's end with it, as when a VM
    /// stops.
    pub fn delete_tap(&self, g: &Guest) {
        self.host.run(&["ip", "link", "del", "dev", &g.tap]);
        let gone = poll(Duration::from_secs(5), || {
            let out = g.ns.try_run(&["ip", "link", "show", "dev", &g.ifname]);
            (!out.status.success()).then_some(())
        });
        assert!(
            gone.is_some(),
            "{} still there after deleting {}",
            g.ifname,
            g.tap
        );
    }

    /// Creates `g`'s tap again under the same names (a restarted VM); the
    /// guest end is down, as after [`Lab::guest_down`].
    pub fn recreate_tap(&self, g: &Guest) {
        self.add_veth(g);
    }

    /// Counts, in the host's filter INPUT chain, the RS, NS and DHCPv6
    /// packets from `tap` that reach the host's own stack, i.e. that the
    /// queue let through.
    pub fn count_input6(&self, tap: &str) {
        for m in INPUT6_MATCHES {
            self.host
                .run_words(&format!("ip6tables -A INPUT -i {tap} {m}"));
        }
    }

    /// The counters set up by [`Lab::count_input6`].
    pub fn input6_counts(&self, tap: &str) -> Input6Counts {
        let rules = self.host.run(&["ip6tables", "-S", "INPUT", "-v"]);
        let count = |what: &str| -> u64 {
            let prefix = format!("-A INPUT -i {tap} ");
            let line = rules
                .lines()
                .find(|l| l.starts_with(&prefix) && l.contains(what))
                .unwrap_or_else(|| panic!("no INPUT rule for {tap} {what}:\n{rules}"));
            let (_, c) = line.rsplit_once(" -c ").unwrap();
            c.split_whitespace().next().unwrap().parse().unwrap()
        };
        Input6Counts {
            rs: count("--icmpv6-type 133"),
            ns: count("--icmpv6-type 135"),
            dhcp6: count("--dport 547"),
        }
    }

    /// A socket in the host namespace listening for DHCPv6 on `tap` (port
    /// 547, All_DHCP_Relay_Agents_and_Servers joined there): what it
    /// receives went through the queue to the host's stack. Returns the
    /// file the datagrams are appended to, once it listens.
    pub fn dhcp6_listener(&self, tap: &str) -> PathBuf {
        let out = self.tmp.join(&format!("dhcp6-{tap}.bin"));
        let log = self.tmp.join(&format!("dhcp6-{tap}.log"));
        let recv = format!("UDP6-RECV:547,so-bindtodevice={tap},ipv6-join-group=[ff02::1:2]:{tap}");
        let file = format!("OPEN:{},creat,append", out.display());
        let pid = self.host.spawn(&["socat", "-u", &recv, &file], &log);
        let listening = poll(Duration::from_secs(10), || {
            if self.host.exited(pid).is_some() {
                return Some(false);
            }
            let ss = self.host.try_run(&["ss", "-Hulnp", "sport = :547"]);
            String::from_utf8_lossy(&ss.stdout)
                .contains(&format!("pid={pid},"))
                .then_some(true)
        });
        if listening != Some(true) {
            panic!(
                "socat did not start; log:\n{}",
                fs::read_to_string(&log).unwrap_or_default()
            );
        }
        out
    }

    fn binding_path(&self, tap: &str) -> PathBuf {
        self.bindings.join(tap)
    }

    /// Writes a binding file the way careful VM managers do: a dot-file
    /// first, then a rename into place.
    pub fn write_binding(&self, b: &Binding) {
        let tmp = self.bindings.join(format!(".{}.tmp", b.tap));
        fs::write(&tmp, b.text()).unwrap();
        fs::rename(&tmp, self.binding_path(&b.tap)).unwrap();
    }

    /// Writes a binding file in place (open, truncate, write, close).
    pub fn write_binding_plain(&self, b: &Binding) {
        let mut f = fs::File::create(self.binding_path(&b.tap)).unwrap();
        f.write_all(b.text().as_bytes()).unwrap();
    }

    /// Creates the binding under a name outside the directory and renames
    /// it in (a rename from another directory on the same file system).
    pub fn rename_binding_in(&self, b: &Binding) {
        let outside = self.tmp.join(&format!("staged-{}", b.tap));
        fs::write(&outside, b.text()).unwrap();
        fs::rename(&outside, self.binding_path(&b.tap)).unwrap();
    }

    pub fn remove_binding(&self, tap: &str) {
        fs::remove_file(self.binding_path(tap)).unwrap();
    }

    /// Writes the daemon config for this lab and returns its path.
    pub fn write_config(&self, c: &DaemonConfig) -> PathBuf {
        let path = self.tmp.join("nfdhcpd.conf");
        let text = format!(
            "[general]\npidfile = {pid}\ndatapath = {data}\n{general}\n\
             [dhcp]\nenable_dhcp = yes\nlease_lifetime = {ll}\nlease_renewal = {lr}\n\
             server_ip = {sip}\ndhcp_queue = {q}\nnameservers = {ns}\ndomain = {dom}\n{dhcp}\n{v6}\n{extra}",
            pid = self.tmp.join("nfdhcpd.pid").display(),
            data = self.bindings.display(),
            general = c.general,
            ll = c.lease_lifetime,
            lr = c.lease_renewal,
            sip = c.server_ip,
            q = QUEUE,
            ns = c.nameservers.join(", "),
            dom = c.domain,
            dhcp = c.dhcp,
            v6 = c.ipv6_section(),
            extra = c.extra,
        );
        fs::write(&path, text).unwrap();
        path
    }

    /// Starts the daemon with the default test config.
    pub fn start_daemon(&mut self) {
        self.start_daemon_with(&DaemonConfig::default());
    }

    /// Starts `nfdhcpd -f -d -c CONFIG` in the host namespace and waits for
    /// its `ready:` line.
    pub fn start_daemon_with(&mut self, c: &DaemonConfig) {
        assert!(self.daemon.is_none(), "daemon already running");
        let conf = self.write_config(c);
        let bin = self.daemon_bin.to_str().unwrap();
        let conf = conf.to_str().unwrap();
        let mut argv: Vec<&str> = self.daemon_wrapper.iter().map(String::as_str).collect();
        argv.extend([bin, "-f", "-d", "-c", conf]);
        let mut cmd = self.host.command(&argv);
        cmd.env("RUST_BACKTRACE", "1");
        let pid = self.host.spawn_cmd(cmd, &self.daemon_log);
        self.daemon = Some(pid);
        let ready = poll(READY_TIMEOUT, || {
            if self.daemon_log().contains("ready:") {
                return Some(true);
            }
            self.host.exited(pid).map(|_| false)
        });
        match ready {
            Some(true) => {}
            Some(false) => panic!(
                "nfdhcpd exited before it was ready ({:?}); log:\n{}",
                self.host.exited(pid),
                self.daemon_log()
            ),
            None => panic!(
                "nfdhcpd not ready after {READY_TIMEOUT:?}; log:\n{}",
                self.daemon_log()
            ),
        }
    }

    pub fn daemon_log(&self) -> String {
        settled_read(&self.daemon_log)
    }

    /// Lines of the daemon log containing `pat`.
    pub fn daemon_log_count(&self, pat: &str) -> usize {
        self.daemon_log()
            .lines()
            .filter(|l| l.contains(pat))
            .count()
    }

    /// The daemon's pid; panics when it was not started.
    pub fn daemon_pid(&self) -> u32 {
        self.daemon.expect("daemon not started")
    }

    /// Whether the daemon is running.
    pub fn daemon_running(&self) -> bool {
        self.daemon
            .is_some_and(|pid| self.host.exited(pid).is_none())
    }

    /// Panics if the daemon has exited.
    pub fn assert_daemon_alive(&self) {
        let pid = self.daemon.expect("daemon not started");
        if let Some(st) = self.host.exited(pid) {
            panic!("nfdhcpd exited ({st}); log:\n{}", self.daemon_log());
        }
    }

    /// SIGTERM; the daemon must exit with status 0 within 2 s.
    pub fn stop_daemon(&mut self) {
        let pid = self.daemon.take().expect("daemon not started");
        let t = Instant::now();
        match self.host.stop(pid, Duration::from_secs(2)) {
            Some(st) if st.success() => {}
            Some(st) => panic!(
                "nfdhcpd exited with {st} on SIGTERM; log:\n{}",
                self.daemon_log()
            ),
            None => panic!(
                "nfdhcpd still running {:?} after SIGTERM; log:\n{}",
                t.elapsed(),
                self.daemon_log()
            ),
        }
    }

    /// dnsmasq in the host namespace serving DHCP on `tap` only, with the
    /// tap given `host_cidr`. `args` add ranges and options. Returns once
    /// it listens on port 67.
    pub fn dnsmasq(&self, tap: &str, host_cidr: &str, args: &[&str]) -> u32 {
        self.host.addr_add(host_cidr, tap);
        let leases = self.tmp.join(&format!("dnsmasq-{tap}.leases"));
        let pidf = self.tmp.join(&format!("dnsmasq-{tap}.pid"));
        let log = self.tmp.join(&format!("dnsmasq-{tap}.log"));
        let leases = format!("--dhcp-leasefile={}", leases.display());
        let pidf = format!("--pid-file={}", pidf.display());
        let iface = format!("--interface={tap}");
        let mut argv = vec![
            "dnsmasq",
            "--no-daemon",
            "--conf-file=/dev/null",
            "--port=0",
            // Its default 3 s ping check before offering would slow every test.
            "--no-ping",
            "--bind-interfaces",
            "--except-interface=lo",
            "--user=root",
            "--group=root",
            "--log-facility=-",
            "--log-dhcp",
            &iface,
            &leases,
            &pidf,
        ];
        argv.extend_from_slice(args);
        let pid = self.host.spawn(&argv, &log);
        let listening = poll(Duration::from_secs(10), || {
            if self.host.exited(pid).is_some() {
                return Some(false);
            }
            let ss = self.host.try_run(&["ss", "-Hulnp", "sport = :67"]);
            String::from_utf8_lossy(&ss.stdout)
                .contains(&format!("pid={pid},"))
                .then_some(true)
        });
        if listening != Some(true) {
            panic!(
                "dnsmasq did not start; log:\n{}",
                fs::read_to_string(&log).unwrap_or_default()
            );
        }
        pid
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if thread::panicking() {
            eprintln!(
                "---- {}: nfdhcpd log ({}) ----\n{}",
                self.name,
                self.daemon_log.display(),
                self.daemon_log()
            );
        }
        eprintln!("{} took {:.1?}", self.name, self.started.elapsed());
        // The host namespace and temp dir guards do the rest.
    }
}

/// The DHCP clients the tests drive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Client {
    Dhclient,
    Udhcpc,
    Dhcpcd,
}

pub const ALL_CLIENTS: [Client; 3] = [Client::Dhclient, Client::Udhcpc, Client::Dhcpcd];

/// How to run a client once.
#[derive(Clone, Debug)]
pub struct ClientOpts {
    /// The client's own give-up time, in seconds (udhcpc: discover count, 1 s
    /// apart). The wrapper kills it 5 s later at the latest.
    pub timeout: u32,
    /// dhclient only: lease file contents to start from (`{IF}` is replaced
    /// by the interface name), which makes it begin in INIT-REBOOT.
    pub dhclient_lease: Option<String>,
    /// Extra command-line arguments for the client.
    pub extra: Vec<String>,
}

impl Default for ClientOpts {
    fn default() -> Self {
        ClientOpts {
            timeout: 10,
            dhclient_lease: None,
            extra: Vec::new(),
        }
    }
}

impl ClientOpts {
    /// For runs expected to get nothing: give up after `secs`.
    pub fn short(secs: u32) -> ClientOpts {
        ClientOpts {
            timeout: secs,
            ..Default::default()
        }
    }
}

/// What one client run got: the variables its script saw at the last
/// bound event, every script reason in order, and its own log.
#[derive(Clone, Debug)]
pub struct Lease {
    pub client: Client,
    pub ifname: String,
    pub bound: bool,
    pub vars: HashMap<String, String>,
    pub reasons: Vec<String>,
    pub log: String,
    pub status: Option<ExitStatus>,
    pub elapsed: Duration,
}

fn parse_ip_list(s: Option<&str>) -> Vec<Ipv4Addr> {
    s.map(|s| {
        s.split_whitespace()
            .map(|a| a.parse().unwrap_or_else(|_| panic!("bad address {a:?}")))
            .collect()
    })
    .unwrap_or_default()
}

impl Lease {
    pub fn var(&self, k: &str) -> Option<&str> {
        self.vars
            .get(k)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    fn pick(&self, isc: &str, busybox: &str) -> Option<&str> {
        match self.client {
            Client::Udhcpc => self.var(busybox),
            _ => self.var(isc),
        }
    }

    /// Panics, showing everything the client said, unless it got a lease.
    pub fn expect_bound(&self) -> &Lease {
        assert!(self.bound, "{:?} got no lease:\n{self}", self.client);
        self
    }

    pub fn ip(&self) -> Option<Ipv4Addr> {
        self.pick("new_ip_address", "ip")
            .map(|a| a.parse().unwrap())
    }

    pub fn prefix_len(&self) -> Option<u8> {
        match self.client {
            Client::Dhclient => self.var("new_subnet_mask").map(|m| {
                let m: Ipv4Addr = m.parse().unwrap();
                u32::from(m).count_ones() as u8
            }),
            Client::Udhcpc => self.var("mask").map(|m| m.parse().unwrap()),
            Client::Dhcpcd => self.var("new_subnet_cidr").map(|m| m.parse().unwrap()),
        }
    }

    pub fn routers(&self) -> Vec<Ipv4Addr> {
        parse_ip_list(self.pick("new_routers", "router"))
    }

    pub fn dns(&self) -> Vec<Ipv4Addr> {
        parse_ip_list(self.pick("new_domain_name_servers", "dns"))
    }

    pub fn domain(&self) -> Option<&str> {
        self.pick("new_domain_name", "domain")
    }

    pub fn hostname(&self) -> Option<&str> {
        self.pick("new_host_name", "hostname")
    }

    pub fn server_id(&self) -> Option<Ipv4Addr> {
        self.pick("new_dhcp_server_identifier", "serverid")
            .map(|a| a.parse().unwrap())
    }

    pub fn lease_time(&self) -> Option<u32> {
        self.pick("new_dhcp_lease_time", "lease")
            .map(|v| v.parse().unwrap())
    }

    /// T1 (option 58). udhcpc only shows it raw, as hex (`opt58`).
    pub fn renewal_time(&self) -> Option<u32> {
        match self.client {
            Client::Udhcpc => self
                .var("opt58")
                .map(|h| u32::from_str_radix(h, 16).unwrap()),
            _ => self
                .var("new_dhcp_renewal_time")
                .map(|v| v.parse().unwrap()),
        }
    }

    pub fn mtu(&self) -> Option<u16> {
        self.pick("new_interface_mtu", "mtu")
            .map(|v| v.parse().unwrap())
    }

    /// Classless static routes (option 121) as (destination/len, gateway).
    pub fn static_routes(&self) -> Vec<(String, Ipv4Addr)> {
        match self.client {
            Client::Dhclient => {
                // Raw bytes: width, significant destination octets, gateway.
                let Some(raw) = self.var("new_rfc3442_classless_static_routes") else {
                    return Vec::new();
                };
                let b: Vec<u8> = raw.split_whitespace().map(|x| x.parse().unwrap()).collect();
                let mut out = Vec::new();
                let mut i = 0;
                while i < b.len() {
                    let width = b[i];
                    let n = (width as usize).div_ceil(8);
                    let mut dst = [0u8; 4];
                    dst[..n].copy_from_slice(&b[i + 1..i + 1 + n]);
                    let gw = &b[i + 1 + n..i + 5 + n];
                    out.push((
                        format!("{}/{width}", Ipv4Addr::from(dst)),
                        Ipv4Addr::new(gw[0], gw[1], gw[2], gw[3]),
                    ));
                    i += 5 + n;
                }
                out
            }
            Client::Udhcpc | Client::Dhcpcd => {
                let k = if self.client == Client::Udhcpc {
                    "staticroutes"
                } else {
                    "new_classless_static_routes"
                };
                let Some(raw) = self.var(k) else {
                    return Vec::new();
                };
                let w: Vec<&str> = raw.split_whitespace().collect();
                w.chunks(2)
                    .map(|p| (p[0].to_string(), p[1].parse().unwrap()))
                    .collect()
            }
        }
    }
}

impl std::fmt::Display for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "{:?} on {}: bound={} status={:?} after {:.1?}, script reasons {:?}",
            self.client, self.ifname, self.bound, self.status, self.elapsed, self.reasons
        )?;
        let mut keys: Vec<_> = self.vars.keys().collect();
        keys.sort();
        for k in keys {
            writeln!(f, "  {k}={}", self.vars[k])?;
        }
        writeln!(f, "  --- client log ---")?;
        for l in self.log.lines() {
            writeln!(f, "  {l}")?;
        }
        Ok(())
    }
}

/// A guest: its namespace and the interface facing the host's tap.
pub struct Guest {
    pub ns: Netns,
    pub ifname: String,
    pub mac: String,
    pub tap: String,
    dir: PathBuf,
}

/// The script every client runs: it only records its environment, so no
/// client can touch anything outside its namespace (resolv.conf, hostname).
const DUMP_SCRIPT: &str = "#!/bin/sh\n\
    r=\"${reason:-$1}\"\n\
    { echo \"@@ $r\"; env; } >> \"$(dirname \"$0\")/events\"\n\
    exit 0\n";

const DHCLIENT_CONF: &str = "\
option rfc3442-classless-static-routes code 121 = array of unsigned integer 8;
timeout @TIMEOUT@;
initial-interval 1;
backoff-cutoff 2;
reboot 3;
request subnet-mask, broadcast-address, routers, domain-name, domain-name-servers,
        host-name, interface-mtu, rfc3442-classless-static-routes,
        dhcp-lease-time, dhcp-renewal-time, dhcp-rebinding-time;
";

const DHCPCD_CONF: &str = "\
script @SCRIPT@
noipv4ll
noarp
nodelay
noipv6
noipv6rs
clientid
nohook resolv.conf, hostname, ntp.conf, timesyncd.conf, yp.conf
option domain_name_servers, domain_name, host_name, interface_mtu
option classless_static_routes, dhcp_renewal_time, dhcp_rebinding_time
";

/// Host state no client may change; checked after every client run.
fn global_state() -> (Vec<u8>, Vec<u8>) {
    (
        fs::read("/etc/resolv.conf").unwrap_or_default(),
        fs::read("/proc/sys/kernel/hostname").unwrap_or_default(),
    )
}

static GLOBAL_STATE: OnceLock<(Vec<u8>, Vec<u8>)> = OnceLock::new();

fn is_bound_reason(c: Client, r: &str) -> bool {
    match c {
        Client::Udhcpc => matches!(r, "bound" | "renew"),
        _ => matches!(r, "BOUND" | "REBOOT" | "RENEW" | "REBIND"),
    }
}

/// Splits the script's event log into (reason, variables) records.
fn parse_events(text: &str) -> Vec<(String, HashMap<String, String>)> {
    let mut out: Vec<(String, HashMap<String, String>)> = Vec::new();
    for line in text.lines() {
        if let Some(r) = line.strip_prefix("@@ ") {
            out.push((r.to_string(), HashMap::new()));
        } else if let (Some((k, v)), Some(last)) = (line.split_once('='), out.last_mut()) {
            last.1.insert(k.to_string(), v.to_string());
        }
    }
    out
}

impl Guest {
    /// Runs `c` once on this guest's interface.
    pub fn run_client(&self, c: Client, o: &ClientOpts) -> Lease {
        GLOBAL_STATE.get_or_init(global_state);
        let dir = self.dir.join(format!("{c:?}-{}", next_id()).to_lowercase());
        fs::create_dir_all(&dir).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        let script = dir.join("script");
        fs::write(&script, DUMP_SCRIPT).unwrap();
        fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
        let script_s = script.to_str().unwrap().to_string();
        let events = dir.join("events");
        let p = |name: &str| dir.join(name).to_str().unwrap().to_string();
        let timeout = o.timeout.to_string();

        let mut argv: Vec<String> = match c {
            Client::Dhclient => {
                let conf = DHCLIENT_CONF.replace("@TIMEOUT@", &timeout);
                fs::write(p("dhclient.conf"), conf).unwrap();
                if let Some(l) = &o.dhclient_lease {
                    fs::write(p("lease"), l.replace("{IF}", &self.ifname)).unwrap();
                }
                // -d: stay in the foreground, so the wrapper owns it; -1: one
                // attempt, then exit.
                ["dhclient", "-d", "-1", "-v", "-cf"]
                    .iter()
                    .map(|s| s.to_string())
                    .chain([p("dhclient.conf"), "-sf".into(), script_s.clone()])
                    .chain(["-lf".into(), p("lease"), "-pf".into(), p("pid")])
                    .collect()
            }
            Client::Udhcpc => [
                "udhcpc",
                "-f",
                "-q",
                "-n",
                "-t",
                &timeout,
                "-T",
                "1",
                "-O",
                "mtu",
                "-O",
                "staticroutes",
                "-O",
                "58",
                "-O",
                "59",
                "-s",
            ]
            .iter()
            .map(|s| s.to_string())
            .chain([script_s.clone(), "-i".into(), self.ifname.clone()])
            .collect(),
            Client::Dhcpcd => {
                let conf = DHCPCD_CONF.replace("@SCRIPT@", &script_s);
                fs::write(p("dhcpcd.conf"), conf).unwrap();
                // -1: exit once configured, or after -t without a lease
                // (with -B it would keep trying forever); -4: no IPv6.
                ["dhcpcd", "-f"]
                    .iter()
                    .map(|s| s.to_string())
                    .chain([p("dhcpcd.conf"), "-c".into(), script_s.clone()])
                    .chain(["-4", "-1", "-t"].iter().map(|s| s.to_string()))
                    .chain([timeout.clone()])
                    .collect()
            }
        };
        argv.extend(o.extra.iter().cloned());
        if c != Client::Udhcpc {
            argv.push(self.ifname.clone());
        }

        let argv_ref: Vec<&str> = argv.iter().map(String::as_str).collect();
        let mut cmd = self.ns.command(&argv_ref);
        cmd.env_clear().env("PATH", PATH).env("LANG", "C");
        let log_path = dir.join("log");
        let log = fs::File::create(&log_path).unwrap();
        let start = Instant::now();
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {c:?}: {e}"));

        // Done when the client exits, or (dhclient keeps running to renew)
        // once its script has seen a bound event.
        let deadline = Duration::from_secs(o.timeout as u64 + 5);
        let bound_seen = || {
            parse_events(&fs::read_to_string(&events).unwrap_or_default())
                .iter()
                .any(|(r, _)| is_bound_reason(c, r))
        };
        let mut status = poll(deadline, || {
            if let Ok(Some(st)) = child.try_wait() {
                return Some(Some(st));
            }
            (c == Client::Dhclient && bound_seen()).then_some(None)
        })
        .flatten();
        if status.is_none() {
            status = terminate(&mut child, Duration::from_secs(2));
        }
        let elapsed = start.elapsed();

        if c == Client::Dhcpcd {
            // dhcpcd keeps a lease per interface name in its database.
            if let Ok(rd) = fs::read_dir("/var/lib/dhcpcd") {
                for e in rd.flatten() {
                    let n = e.file_name().to_string_lossy().into_owned();
                    if n.starts_with(&format!("{}.", self.ifname)) {
                        let _ = fs::remove_file(e.path());
                    }
                }
            }
        }

        let evs = parse_events(&fs::read_to_string(&events).unwrap_or_default());
        let reasons = evs.iter().map(|(r, _)| r.clone()).collect();
        let last_bound = evs.iter().rev().find(|(r, _)| is_bound_reason(c, r));
        let lease = Lease {
            client: c,
            ifname: self.ifname.clone(),
            bound: last_bound.is_some(),
            vars: last_bound.map(|(_, v)| v.clone()).unwrap_or_default(),
            reasons,
            log: fs::read_to_string(&log_path).unwrap_or_default(),
            status,
            elapsed,
        };
        assert!(
            global_state() == *GLOBAL_STATE.get().unwrap(),
            "/etc/resolv.conf or the host name changed during a {c:?} run:\n{lease}"
        );
        lease
    }

    pub fn dhclient(&self, o: &ClientOpts) -> Lease {
        self.run_client(Client::Dhclient, o)
    }

    pub fn udhcpc(&self, o: &ClientOpts) -> Lease {
        self.run_client(Client::Udhcpc, o)
    }

    pub fn dhcpcd(&self, o: &ClientOpts) -> Lease {
        self.run_client(Client::Dhcpcd, o)
    }

    /// Removes the IPv4 addresses and routes a client (dhcpcd) configured,
    /// so the next client starts from scratch.
    pub fn flush(&self) {
        self.ns
            .run(&["ip", "-4", "addr", "flush", "dev", &self.ifname]);
        self.ns
            .run(&["ip", "-4", "route", "flush", "dev", &self.ifname]);
    }

    pub fn ipv4_addrs(&self) -> String {
        self.ns.ipv4_addrs(&self.ifname)
    }
}

// ---- IPv6 ----

/// The ip6tables matches of the three IPv6 queues.
const IPV6_MATCHES: [&str; 3] = [
    "-p ipv6-icmp --icmpv6-type router-solicitation -j NFQUEUE --queue-num 43",
    "-p ipv6-icmp --icmpv6-type neighbour-solicitation -j NFQUEUE --queue-num 44",
    "-p udp --dport 547 -j NFQUEUE --queue-num 45",
];

/// Counting rules (no target) for what reaches the host's INPUT chain.
const INPUT6_MATCHES: [&str; 3] = [
    "-p ipv6-icmp --icmpv6-type router-solicitation",
    "-p ipv6-icmp --icmpv6-type neighbour-solicitation",
    "-p udp --dport 547",
];

/// Packets of each kind from one tap that reached the host's own stack.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Input6Counts {
    pub rs: u64,
    pub ns: u64,
    pub dhcp6: u64,
}

/// A running tcpdump (see [`Netns::tcpdump`]).
pub struct Capture {
    pub pid: u32,
    pub log: PathBuf,
}

impl Capture {
    /// What it printed so far.
    pub fn text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

pub fn parse_mac(mac: &str) -> [u8; 6] {
    let b: Vec<u8> = mac
        .split(':')
        .map(|x| u8::from_str_radix(x, 16).unwrap_or_else(|_| panic!("bad MAC {mac}")))
        .collect();
    b.try_into().unwrap_or_else(|_| panic!("bad MAC {mac}"))
}

/// The modified EUI-64 interface identifier of `mac` (RFC 4291 2.5.1).
fn interface_id(mac: &str) -> u64 {
    let m = parse_mac(mac);
    u64::from_be_bytes([m[0] ^ 2, m[1], m[2], 0xff, 0xfe, m[3], m[4], m[5]])
}

/// The address SLAAC forms from `mac` in the /64 `prefix`.
pub fn eui64(prefix: Ipv6Addr, mac: &str) -> Ipv6Addr {
    let net = u128::from(prefix) & !u128::from(u64::MAX);
    Ipv6Addr::from(net | u128::from(interface_id(mac)))
}

/// The link-local address of an interface with `mac`.
pub fn link_local(mac: &str) -> Ipv6Addr {
    eui64("fe80::".parse().unwrap(), mac)
}

/// DUID-LL (type 3, hardware type 1) of `mac`, as dhclient prints DUIDs:
/// colon-separated hex bytes without leading zeros.
pub fn duid_ll(mac: &str) -> String {
    let mut b = vec![0u8, 3, 0, 1];
    b.extend_from_slice(&parse_mac(mac));
    b.iter()
        .map(|x| format!("{x:x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// One Prefix Information option as rdisc6 shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrefixInfo {
    pub prefix: String,
    pub on_link: bool,
    pub autonomous: bool,
    pub valid: u32,
    pub preferred: u32,
}

/// One Router Advertisement as rdisc6 shows it. rdisc6 only shows RAs
/// that arrive with IP hop limit 255; `cur_hop_limit` is the RA's own
/// Cur Hop Limit field.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ra {
    pub cur_hop_limit: u32,
    pub managed: bool,
    pub other: bool,
    pub router_lifetime: u32,
    /// Source link-layer address option, lower case.
    pub source_lladdr: Option<String>,
    pub mtu: Option<u32>,
    pub prefixes: Vec<PrefixInfo>,
    pub rdnss: Vec<Ipv6Addr>,
    pub rdnss_lifetime: Option<u32>,
    pub dnssl: Vec<String>,
    pub dnssl_lifetime: Option<u32>,
    /// The RA's IPv6 source address.
    pub from: Option<Ipv6Addr>,
}

/// What one rdisc6 run printed.
#[derive(Clone, Debug)]
pub struct Rdisc6 {
    pub success: bool,
    pub out: String,
    pub ras: Vec<Ra>,
}

impl Rdisc6 {
    /// The first RA; panics, showing the output, when there is none.
    pub fn ra(&self) -> &Ra {
        self.ras
            .first()
            .unwrap_or_else(|| panic!("rdisc6 got no RA:\n{}", self.out))
    }
}

/// The number at the start of an rdisc6 value ("900 (0x00000384) seconds").
fn leading_number(v: &str) -> u32 {
    v.split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("not a number: {v:?}"))
}

/// Parses rdisc6's verbose output into RAs.
pub fn parse_rdisc6(out: &str) -> Vec<Ra> {
    let mut ras: Vec<Ra> = Vec::new();
    for line in out.lines() {
        let t = line.trim();
        if let Some(from) = t.strip_prefix("from ") {
            if let Some(ra) = ras.last_mut() {
                ra.from = from.split_whitespace().next().and_then(|a| a.parse().ok());
            }
            continue;
        }
        let Some((k, v)) = t.split_once(':') else {
            continue;
        };
        let (k, v) = (k.trim(), v.trim());
        if k == "Hop limit" {
            ras.push(Ra {
                cur_hop_limit: leading_number(v),
                ..Default::default()
            });
            continue;
        }
        let Some(ra) = ras.last_mut() else {
            continue;
        };
        let yes = v == "Yes";
        match k {
            "Stateful address conf." => ra.managed = yes,
            "Stateful other conf." => ra.other = yes,
            "Router lifetime" => ra.router_lifetime = leading_number(v),
            "Source link-layer address" => ra.source_lladdr = Some(v.to_lowercase()),
            "MTU" => ra.mtu = Some(leading_number(v)),
            "Prefix" => ra.prefixes.push(PrefixInfo {
                prefix: v.to_string(),
                on_link: false,
                autonomous: false,
                valid: 0,
                preferred: 0,
            }),
            "On-link" => ra.prefixes.last_mut().unwrap().on_link = yes,
            "Autonomous address conf." => ra.prefixes.last_mut().unwrap().autonomous = yes,
            "Valid time" => ra.prefixes.last_mut().unwrap().valid = leading_number(v),
            "Pref. time" => ra.prefixes.last_mut().unwrap().preferred = leading_number(v),
            "Recursive DNS server" => ra.rdnss.push(v.parse().unwrap()),
            "DNS servers lifetime" => ra.rdnss_lifetime = Some(leading_number(v)),
            "DNS search list" => ra.dnssl = v.split_whitespace().map(String::from).collect(),
            "DNS search list lifetime" => ra.dnssl_lifetime = Some(leading_number(v)),
            _ => {}
        }
    }
    ras
}

/// One line of `ip -6 -o addr`.
#[derive(Clone, Debug)]
pub struct Addr6 {
    pub addr: Ipv6Addr,
    pub prefix_len: u8,
    pub line: String,
}

impl Addr6 {
    fn has(&self, flag: &str) -> bool {
        self.line.split_whitespace().any(|w| w == flag)
    }

    /// Duplicate address detection still running.
    pub fn tentative(&self) -> bool {
        self.has("tentative")
    }

    pub fn dadfailed(&self) -> bool {
        self.has("dadfailed")
    }

    fn lifetime(&self, key: &str) -> Option<u32> {
        let mut w = self.line.split_whitespace();
        w.find(|t| *t == key)
            .and_then(|_| w.next())
            .and_then(|v| v.strip_suffix("sec"))
            .and_then(|v| v.parse().ok())
    }

    /// Seconds left; None for "forever".
    pub fn valid_lft(&self) -> Option<u32> {
        self.lifetime("valid_lft")
    }

    pub fn preferred_lft(&self) -> Option<u32> {
        self.lifetime("preferred_lft")
    }
}

/// A neighbour cache entry (`ip -6 neigh`).
#[derive(Clone, Debug)]
pub struct Neighbour {
    pub lladdr: Option<String>,
    /// The entry is flagged as a router (the NA had the R flag).
    pub router: bool,
    /// REACHABLE, STALE, DELAY, PROBE, FAILED, INCOMPLETE...
    pub state: String,
    pub line: String,
}

/// What one dhclient -6 run got: the variables its script saw at the last
/// event with a configuration, every script reason in order, and its log.
#[derive(Clone, Debug)]
pub struct Lease6 {
    pub ifname: String,
    pub bound: bool,
    pub vars: HashMap<String, String>,
    pub reasons: Vec<String>,
    pub log: String,
    pub status: Option<ExitStatus>,
    pub elapsed: Duration,
}

impl Lease6 {
    pub fn var(&self, k: &str) -> Option<&str> {
        self.vars
            .get(k)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    fn num(&self, k: &str) -> Option<u32> {
        self.var(k).map(|v| v.parse().unwrap())
    }

    /// Panics, showing everything the client said, unless it got an answer.
    pub fn expect_bound(&self) -> &Lease6 {
        assert!(self.bound, "dhclient -6 got nothing:\n{self}");
        self
    }

    pub fn name_servers(&self) -> Vec<Ipv6Addr> {
        self.var("new_dhcp6_name_servers")
            .map(|s| s.split_whitespace().map(|a| a.parse().unwrap()).collect())
            .unwrap_or_default()
    }

    /// The search list, without the trailing dots dhclient adds.
    pub fn domain_search(&self) -> Vec<String> {
        self.var("new_dhcp6_domain_search")
            .map(|s| {
                s.split_whitespace()
                    .map(|d| d.trim_end_matches('.').to_string())
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn server_id(&self) -> Option<&str> {
        self.var("new_dhcp6_server_id")
    }

    pub fn ip6_address(&self) -> Option<Ipv6Addr> {
        self.var("new_ip6_address").map(|a| a.parse().unwrap())
    }

    pub fn max_life(&self) -> Option<u32> {
        self.num("new_max_life")
    }

    pub fn preferred_life(&self) -> Option<u32> {
        self.num("new_preferred_life")
    }

    /// T1 of the IA_NA.
    pub fn renew(&self) -> Option<u32> {
        self.num("new_renew")
    }

    /// T2 of the IA_NA.
    pub fn rebind(&self) -> Option<u32> {
        self.num("new_rebind")
    }
}

impl std::fmt::Display for Lease6 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "dhclient -6 on {}: bound={} status={:?} after {:.1?}, script reasons {:?}",
            self.ifname, self.bound, self.status, self.elapsed, self.reasons
        )?;
        let mut keys: Vec<_> = self.vars.keys().collect();
        keys.sort();
        for k in keys {
            writeln!(f, "  {k}={}", self.vars[k])?;
        }
        writeln!(f, "  --- client log ---")?;
        for l in self.log.lines() {
            writeln!(f, "  {l}")?;
        }
        Ok(())
    }
}

/// How to run dhclient -6 once.
#[derive(Clone, Debug)]
pub struct Dhcp6Opts {
    /// `-S`: Information-Request only (DNS servers, search list).
    pub stateless: bool,
    /// Seconds until the wrapper stops it if it got nothing (DHCPv6
    /// clients retransmit for ever).
    pub timeout: u32,
}

impl Default for Dhcp6Opts {
    fn default() -> Self {
        Dhcp6Opts {
            stateless: false,
            timeout: 10,
        }
    }
}

const DHCLIENT6_CONF: &str = "request dhcp6.name-servers, dhcp6.domain-search;\n";

/// Reasons dhclient -6 runs its script with once it has a configuration
/// (after Information-Request it reports RENEW6).
fn is_bound6_reason(r: &str) -> bool {
    matches!(r, "BOUND6" | "RENEW6" | "REBIND6" | "REBOOT6" | "INFORM6")
}

impl Guest {
    /// Brings the guest's interface up.
    pub fn up(&self) {
        self.ns
            .run(&["ip", "link", "set", "dev", &self.ifname, "up"]);
    }

    /// Sets `net.ipv6.conf.<ifname>.<key>` inside the guest.
    pub fn sysctl6(&self, key: &str, value: &str) {
        // The slash form: in the dotted one a dot in the interface name
        // would split the key.
        let k = format!("net/ipv6/conf/{}/{key}={value}", self.ifname);
        self.ns.run(&["sysctl", "-qw", &k]);
    }

    /// The IPv6 addresses on the guest's interface.
    pub fn addrs6(&self) -> Vec<Addr6> {
        self.ns.addrs6(&self.ifname)
    }

    pub fn addr6(&self, a: Ipv6Addr) -> Option<Addr6> {
        self.addrs6().into_iter().find(|x| x.addr == a)
    }

    /// `ip -6 route show dev IF`, for messages.
    pub fn routes6(&self) -> String {
        self.ns
            .run(&["ip", "-6", "route", "show", "dev", &self.ifname])
    }

    /// The default route's line, if there is one.
    pub fn default_route6(&self) -> Option<String> {
        self.routes6()
            .lines()
            .find(|l| l.starts_with("default "))
            .map(str::to_string)
    }

    /// The router of the default route.
    pub fn default_router6(&self) -> Option<Ipv6Addr> {
        let line = self.default_route6()?;
        let mut w = line.split_whitespace();
        w.find(|t| *t == "via")?;
        w.next()?.parse().ok()
    }

    /// Waits until the interface has a link-local address that passed
    /// duplicate address detection (needed before any client may send).
    pub fn wait_link_local(&self, timeout: Duration) -> Ipv6Addr {
        self.ns.wait_link_local(&self.ifname, timeout)
    }

    /// Waits until the kernel has configured `addr` (past DAD) and a
    /// default route via `router`; returns how long that took.
    pub fn wait_slaac(
        &self,
        addr: Ipv6Addr,
        router: Ipv6Addr,
        timeout: Duration,
    ) -> Option<Duration> {
        let start = Instant::now();
        poll(timeout, || {
            let a = self.addr6(addr)?;
            (!a.tentative() && self.default_router6() == Some(router)).then(|| start.elapsed())
        })
    }

    /// The neighbour cache entry for `addr`.
    pub fn neigh6(&self, addr: Ipv6Addr) -> Option<Neighbour> {
        let a = addr.to_string();
        let out = self
            .ns
            .run(&["ip", "-6", "neigh", "show", "to", &a, "dev", &self.ifname]);
        let line = out.lines().next()?.trim().to_string();
        let w: Vec<&str> = line.split_whitespace().collect();
        let lladdr = w
            .iter()
            .position(|t| *t == "lladdr")
            .and_then(|i| w.get(i + 1))
            .map(|m| m.to_lowercase());
        Some(Neighbour {
            lladdr,
            router: w.contains(&"router"),
            state: w.last().unwrap_or(&"").to_string(),
            line,
        })
    }

    /// One ping (busybox) to `addr`; whether a reply came.
    pub fn ping6(&self, addr: Ipv6Addr) -> bool {
        // A link-local destination needs its interface as scope.
        let a = if addr.segments()[0] & 0xffc0 == 0xfe80 {
            format!("{addr}%{}", self.ifname)
        } else {
            addr.to_string()
        };
        self.ns
            .try_run(&["busybox", "ping", "-6", "-c", "1", "-W", "1", &a])
            .status
            .success()
    }

    /// rdisc6 with `args` before the interface (`-1`, `-w MS`, `-r N`,
    /// `-d`, a unicast router address...).
    pub fn rdisc6(&self, args: &[&str]) -> Rdisc6 {
        let mut argv = vec!["rdisc6", "-n"];
        argv.extend_from_slice(args);
        argv.push(&self.ifname);
        let o = self.ns.try_run(&argv);
        let out = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        Rdisc6 {
            success: o.status.success(),
            ras: parse_rdisc6(&out),
            out,
        }
    }

    /// ndisc6 for `target` (`-r` tries, `-w` ms each): the target
    /// link-layer address of the first answer, lower case, and the output.
    pub fn ndisc6(&self, target: Ipv6Addr, tries: u32, wait_ms: u32) -> (Option<String>, String) {
        let (t, r, w) = (target.to_string(), tries.to_string(), wait_ms.to_string());
        let o = self
            .ns
            .try_run(&["ndisc6", "-n", "-1", "-r", &r, "-w", &w, &t, &self.ifname]);
        let out = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        let mac = out
            .lines()
            .find_map(|l| l.trim().strip_prefix("Target link-layer address:"))
            .map(|m| m.trim().to_lowercase());
        (mac.filter(|_| o.status.success()), out)
    }

    /// Runs ISC dhclient -6 once on this guest's interface. The interface
    /// needs a usable link-local address first ([`Guest::wait_link_local`]).
    pub fn dhclient6(&self, o: &Dhcp6Opts) -> Lease6 {
        GLOBAL_STATE.get_or_init(global_state);
        let dir = self.dir.join(format!("dhclient6-{}", next_id()));
        fs::create_dir_all(&dir).unwrap();
        let script = dir.join("script");
        fs::write(&script, DUMP_SCRIPT).unwrap();
        fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
        let events = dir.join("events");
        let p = |name: &str| dir.join(name).to_str().unwrap().to_string();
        fs::write(p("dhclient6.conf"), DHCLIENT6_CONF).unwrap();
        // -d: stay in the foreground, so the wrapper owns it; -1: one
        // attempt (with -S it exits once answered).
        let mut argv: Vec<String> = ["dhclient", "-6", "-d", "-1", "-v"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        if o.stateless {
            argv.push("-S".into());
        }
        argv.extend(["-cf".into(), p("dhclient6.conf"), "-sf".into(), p("script")]);
        argv.extend(["-lf".into(), p("lease"), "-pf".into(), p("pid")]);
        argv.push(self.ifname.clone());
        let argv_ref: Vec<&str> = argv.iter().map(String::as_str).collect();
        let mut cmd = self.ns.command(&argv_ref);
        cmd.env_clear().env("PATH", PATH).env("LANG", "C");
        let log_path = dir.join("log");
        let log = fs::File::create(&log_path).unwrap();
        let start = Instant::now();
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start dhclient -6: {e}"));

        // Done when it exits, or (stateful dhclient stays to renew) once
        // its script has seen a configuration.
        let bound_seen = || {
            parse_events(&fs::read_to_string(&events).unwrap_or_default())
                .iter()
                .any(|(r, _)| is_bound6_reason(r))
        };
        let mut status = poll(Duration::from_secs(o.timeout.into()), || {
            if let Ok(Some(st)) = child.try_wait() {
                return Some(Some(st));
            }
            bound_seen().then_some(None)
        })
        .flatten();
        if status.is_none() {
            status = terminate(&mut child, Duration::from_secs(2));
        }
        let elapsed = start.elapsed();
        let evs = parse_events(&fs::read_to_string(&events).unwrap_or_default());
        let last_bound = evs.iter().rev().find(|(r, _)| is_bound6_reason(r));
        let lease = Lease6 {
            ifname: self.ifname.clone(),
            bound: last_bound.is_some(),
            vars: last_bound.map(|(_, v)| v.clone()).unwrap_or_default(),
            reasons: evs.iter().map(|(r, _)| r.clone()).collect(),
            log: fs::read_to_string(&log_path).unwrap_or_default(),
            status,
            elapsed,
        };
        assert!(
            global_state() == *GLOBAL_STATE.get().unwrap(),
            "/etc/resolv.conf or the host name changed during a dhclient -6 run:\n{lease}"
        );
        lease
    }
}

/// A log file once the daemon's log writer has caught up: it writes in
/// batches a few milliseconds apart, so the file is read until it stops
/// growing (at most a second and a half).
pub fn settled_read(path: &Path) -> String {
    let mut text = fs::read_to_string(path).unwrap_or_default();
    let start = Instant::now();
    while start.elapsed() < Duration::from_millis(1500) {
        std::thread::sleep(Duration::from_millis(40));
        let again = fs::read_to_string(path).unwrap_or_default();
        if again.len() == text.len() {
            return again;
        }
        text = again;
    }
    text
}

/// The release build of the daemon, built once per test binary: for tests
/// that measure what a flood does to the daemon as it is shipped.
pub fn release_binary() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let st = Command::new(cargo)
            .args(["build", "--release", "--bin", "nfdhcpd"])
            .current_dir(&root)
            .status()
            .expect("cargo build --release");
        assert!(st.success(), "cargo build --release: {st}");
        std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join("target"))
            .join("release/nfdhcpd")
    })
    .clone()
}

/// CAP_NET_ADMIN (12) and CAP_NET_RAW (13), as /proc shows capability sets.
pub const TWO_CAPS: &str = "0000000000003000";
pub const NO_CAPS: &str = "0000000000000000";

/// One `Name:` field of a /proc status file.
pub fn proc_field(status: &str, name: &str) -> String {
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")))
        .unwrap_or_else(|| panic!("no {name} in status"))
        .trim()
        .to_string()
}

/// What every thread of `pid` must be: ids, the two capabilities,
/// `bounding` (empty unless the start could not shrink it), no_new_privs.
pub fn assert_every_thread(pid: u32, uid: u32, gid: u32, bounding: Option<&str>) {
    let tasks: Vec<String> = fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(tasks.len() >= 4, "threads {tasks:?}");
    for t in &tasks {
        let st = fs::read_to_string(format!("/proc/{pid}/task/{t}/status")).unwrap();
        let who = format!("thread {t} ({})", proc_field(&st, "Name"));
        let ids = |k: &str| -> Vec<u32> {
            proc_field(&st, k)
                .split_whitespace()
                .map(|v| v.parse().unwrap())
                .collect()
        };
        assert_eq!(
            ids("Uid"),
            vec![uid; 4],
            "{who}: real, effective, saved, fs uid"
        );
        assert_eq!(
            ids("Gid"),
            vec![gid; 4],
            "{who}: real, effective, saved, fs gid"
        );
        assert_eq!(proc_field(&st, "Groups"), "", "{who}: supplementary groups");
        assert_eq!(proc_field(&st, "CapEff"), TWO_CAPS, "{who}");
        assert_eq!(proc_field(&st, "CapPrm"), TWO_CAPS, "{who}");
        assert_eq!(proc_field(&st, "CapInh"), NO_CAPS, "{who}");
        assert_eq!(proc_field(&st, "CapAmb"), NO_CAPS, "{who}");
        if let Some(b) = bounding {
            assert_eq!(proc_field(&st, "CapBnd"), b, "{who}");
        }
        assert_eq!(proc_field(&st, "NoNewPrivs"), "1", "{who}");
    }
}
