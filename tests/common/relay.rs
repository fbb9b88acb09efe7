//! Relay-mode harness: a router namespace running ISC dhcrelay, daemon
//! namespaces that reach the test Nautobot through `netns-bridge.sh`, plain
//! HTTP to that Nautobot for checks, and a small DHCP client of our own for
//! bursts of hundreds of clients.
//!
//! ```text
//! guests --tapN--+
//!                br0 192.0.2.1/24  [router: dhcrelay, ip_forward]  rupI 198.51.(100+I).2/24
//!                                                                     |
//!                             [daemon I: dx0 198.51.(100+I).1/24, nfdhcpd, 127.0.0.1:PORT -> Nautobot]
//! ```
//!
//! Nautobot is shared by every test: [`nautobot`] takes one lock for the
//! whole test and removes the `dhcp` addresses of the test prefix (the
//! daemon's leases) and the objects the tests create, before and after.
//! That is much cheaper than `reset.sh restore` and leaves the seeded
//! fixtures alone, which the static-lease checks rely on.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io;
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use dhcproto::v4::{DhcpOption, Flags, Message, MessageType, OptionCode};
use dhcproto::{Decodable, Encodable};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::{json, Value};
use socket2::{Domain, Protocol, Socket, Type};

use super::{poll, run_ok, ClientOpts, Guest, Lab, Netns, DHCLIENT_CONF};

pub const DEFAULT_URL: &str = "http://127.0.0.1:8080";
pub const DEFAULT_TOKEN: &str = "0123456789abcdef0123456789abcdef01234567";
/// The seeded prefix with role "Server BMC".
pub const PREFIX: &str = "192.0.2.0/24";
/// The seeded device interface bmc0 of bmc-test-01 and its static address.
pub const STATIC_MAC: &str = "14:18:77:aa:bb:01";
pub const STATIC_IP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
/// The relay's address on the clients' network: giaddr and the router.
pub const GIADDR: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
/// Put in the description of the objects the tests create, so that leftovers
/// of a killed run are found and removed.
pub const TEST_MARKER: &str = "created by the nfdhcpd relay e2e tests";
/// Devices the tests create are named with this prefix.
pub const TEST_DEVICE_PREFIX: &str = "nfdt-";

pub fn nautobot_url() -> String {
    std::env::var("NAUTOBOT_URL").unwrap_or_else(|_| DEFAULT_URL.to_owned())
}

pub fn nautobot_token() -> String {
    std::env::var("NAUTOBOT_TOKEN").unwrap_or_else(|_| DEFAULT_TOKEN.to_owned())
}

/// The port of the Nautobot URL: the bridge makes Nautobot reachable on
/// 127.0.0.1 at the same port inside the daemon's namespace.
pub fn nautobot_port() -> u16 {
    let url = nautobot_url();
    let hostport = url
        .split("://")
        .nth(1)
        .unwrap_or_default()
        .split('/')
        .next()
        .unwrap_or_default()
        .to_owned();
    match hostport.rsplit_once(':') {
        Some((_, p)) => p.parse().expect("port of NAUTOBOT_URL"),
        None => 80,
    }
}

/// The Nautobot URL as the daemon sees it, inside its namespace.
pub fn daemon_nautobot_url() -> String {
    format!("http://127.0.0.1:{}", nautobot_port())
}

/// The scripts of the test Nautobot (setup.sh, start.sh, seed.sh,
/// netns-bridge.sh, ...): `tests/nautobot` of this repository, or
/// NFDT_NAUTOBOT_SCRIPTS.
pub fn nautobot_scripts() -> PathBuf {
    match std::env::var_os("NFDT_NAUTOBOT_SCRIPTS") {
        Some(p) => PathBuf::from(p),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/nautobot"),
    }
}

fn bridge_script() -> PathBuf {
    nautobot_scripts().join("netns-bridge.sh")
}

fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !matches!(v.as_str(), "" | "0" | "false"))
}

// ---- time ----

pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// `YYYY-MM-DDTHH:MM:SS` (anything after the seconds is ignored: the daemon
/// writes UTC with a `Z`) as Unix seconds.
pub fn parse_utc(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 19 {
        return None;
    }
    let n = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, m, d) = (n(0..4)?, n(5..7)?, n(8..10)?);
    let (hh, mm, ss) = (n(11..13)?, n(14..16)?, n(17..19)?);
    // Days from civil (H. Hinnant).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + hh * 3600 + mm * 60 + ss)
}

// ---- Nautobot over HTTP ----

/// Plain HTTP to Nautobot, for checks, fixtures and clean-up.
pub struct Api {
    base: String,
    auth: String,
    agent: ureq::Agent,
}

impl Default for Api {
    fn default() -> Self {
        Api::new()
    }
}

impl Api {
    pub fn new() -> Api {
        let agent = ureq::Agent::new_with_config(
            ureq::Agent::config_builder()
                .http_status_as_error(false)
                .timeout_global(Some(Duration::from_secs(60)))
                .build(),
        );
        Api {
            base: nautobot_url(),
            auth: format!("Token {}", nautobot_token()),
            agent,
        }
    }

    pub fn get_text(&self, path: &str) -> Result<(u16, String), String> {
        let mut r = self
            .agent
            .get(format!("{}{path}", self.base))
            .header("Authorization", &self.auth)
            .header("Accept", "application/json")
            .call()
            .map_err(|e| e.to_string())?;
        let status = r.status().as_u16();
        let text = r.body_mut().read_to_string().map_err(|e| e.to_string())?;
        Ok((status, text))
    }

    pub fn get(&self, path: &str) -> Value {
        let (status, text) = self
            .get_text(path)
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        assert_eq!(status, 200, "GET {path}: {text}");
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("GET {path}: {e}: {text}"))
    }

    pub fn try_send(&self, method: &str, path: &str, body: &Value) -> Result<(u16, Value), String> {
        let url = format!("{}{path}", self.base);
        let req = match method {
            "POST" => self.agent.post(url),
            "PATCH" => self.agent.patch(url),
            "DELETE" => self.agent.delete(url).force_send_body(),
            _ => return Err(format!("method {method}")),
        };
        let mut r = req
            .header("Authorization", &self.auth)
            .header("Accept", "application/json")
            .header("Content-Type", "application/json")
            .send(body.to_string())
            .map_err(|e| e.to_string())?;
        let status = r.status().as_u16();
        let text = r.body_mut().read_to_string().map_err(|e| e.to_string())?;
        Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
    }

    pub fn send(&self, method: &str, path: &str, body: &Value) -> (u16, Value) {
        self.try_send(method, path, body)
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    /// `results` of a list call (one page, up to 1000 objects).
    pub fn list(&self, path: &str) -> Vec<Value> {
        let sep = if path.contains('?') { '&' } else { '?' };
        let v = self.get(&format!("{path}{sep}limit=1000"));
        v["results"].as_array().cloned().unwrap_or_default()
    }

    /// `results` of a list call, every page: Nautobot answers at most
    /// 1000 objects a page, and a /22 holds more.
    pub fn list_all(&self, path: &str) -> Vec<Value> {
        self.try_list(path).unwrap_or_else(|e| panic!("{e}"))
    }

    /// The IP address objects for `addr` (any mask) in the test prefix,
    /// with status and parent inlined.
    pub fn addresses(&self, addr: Ipv4Addr) -> Vec<Value> {
        self.list(&format!(
            "/api/ipam/ip-addresses/?address={addr}&prefix={PREFIX}&depth=1"
        ))
    }

    /// The one object for `addr`; panics if there are several.
    pub fn address(&self, addr: Ipv4Addr) -> Option<Value> {
        let list = self.addresses(addr);
        assert!(list.len() <= 1, "{addr} is recorded {} times", list.len());
        list.into_iter().next()
    }

    /// The daemon's leases: every `dhcp` address of the test prefix.
    pub fn dhcp_records(&self) -> Vec<Value> {
        self.dhcp_records_in(PREFIX)
    }

    /// Every `dhcp` address inside `prefix` (whichever prefix Nautobot
    /// made its parent), all pages.
    pub fn dhcp_records_in(&self, prefix: &str) -> Vec<Value> {
        self.list_all(&format!(
            "/api/ipam/ip-addresses/?prefix={prefix}&type=dhcp"
        ))
    }

    /// Every page of a list call, following `next`.
    pub fn try_list(&self, path: &str) -> Result<Vec<Value>, String> {
        let sep = if path.contains('?') { '&' } else { '?' };
        let mut next = format!("{path}{sep}limit=1000");
        let mut out = Vec::new();
        // A bound, in case a server kept answering with a `next`.
        for _ in 0..1000 {
            let (status, text) = self.get_text(&next)?;
            if status != 200 {
                return Err(format!("GET {next}: HTTP {status}: {text}"));
            }
            let v: Value = serde_json::from_str(&text).map_err(|e| format!("GET {next}: {e}"))?;
            out.extend(v["results"].as_array().cloned().unwrap_or_default());
            // `next` is absolute, with the host the server saw: keep its path.
            match v["next"].as_str().and_then(url_path) {
                Some(p) => next = p.to_owned(),
                None => return Ok(out),
            }
        }
        Err(format!("GET {path}: more than 1000 pages"))
    }

    /// Deletes `objs` (each with an `id`) by bulk DELETEs to `path`.
    pub fn bulk_delete(&self, path: &str, objs: &[Value]) -> Result<(), String> {
        for chunk in objs.chunks(500) {
            let ids: Vec<Value> = chunk.iter().map(|o| json!({"id": o["id"]})).collect();
            match self.try_send("DELETE", path, &json!(ids))? {
                (204, _) => {}
                (s, body) => return Err(format!("DELETE {path}: HTTP {s}: {body}")),
            }
        }
        Ok(())
    }

    /// Removes every `dhcp` address inside `prefix`; returns how many.
    pub fn remove_dhcp(&self, prefix: &str) -> Result<usize, String> {
        let leases = self.try_list(&format!(
            "/api/ipam/ip-addresses/?prefix={prefix}&type=dhcp"
        ))?;
        self.bulk_delete("/api/ipam/ip-addresses/", &leases)?;
        Ok(leases.len())
    }

    /// Removes the daemon's leases and whatever the tests created (also
    /// leftovers of a run that was killed). Never touches the seeded objects.
    pub fn clean(&self) -> Result<(), String> {
        self.remove_dhcp(PREFIX)?;
        let devices = self.try_list(&format!(
            "/api/dcim/devices/?name__isw={TEST_DEVICE_PREFIX}"
        ))?;
        self.bulk_delete("/api/dcim/devices/", &devices)?;
        let fields: Vec<Value> = self
            .try_list("/api/extras/custom-fields/?content_types=dcim.device")?
            .into_iter()
            .filter(|f| f["description"] == TEST_MARKER)
            .collect();
        for f in fields {
            let id = f["id"].as_str().unwrap_or_default();
            match self.try_send(
                "DELETE",
                &format!("/api/extras/custom-fields/{id}/"),
                &Value::Null,
            )? {
                (204, _) => {}
                (s, body) => return Err(format!("DELETE custom field {id}: HTTP {s}: {body}")),
            }
        }
        Ok(())
    }

    /// The full JSON text of the seeded static address, to compare byte for
    /// byte before and after: (path, text).
    pub fn static_snapshot(&self) -> (String, String) {
        let rec = self
            .address(STATIC_IP)
            .expect("the seeded static address 192.0.2.10/24 is missing");
        let id = rec["id"].as_str().unwrap();
        let path = format!("/api/ipam/ip-addresses/{id}/?exclude_m2m=false&depth=1");
        let text = self.get_text(&path).unwrap().1;
        (path, text)
    }
}

/// The path and query of an absolute URL.
fn url_path(url: &str) -> Option<&str> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.find('/').map(|i| &rest[i..])
}

static NB_LOCK: Mutex<()> = Mutex::new(());

/// The test Nautobot, held for one test: the lock serializes the tests of
/// this binary on its state.
pub struct Nautobot {
    pub api: Api,
    _guard: MutexGuard<'static, ()>,
    /// The same for every test process on this machine (flock): cleaning
    /// the test prefix for one test must not take another's leases.
    _file_lock: fs::File,
}

fn lock_across_processes() -> fs::File {
    let path = std::env::temp_dir().join("nfdhcpd-tests-nautobot.lock");
    let f = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    // SAFETY: flock on a descriptor we own; released when it is closed.
    let r = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) };
    assert_eq!(
        r,
        0,
        "flock {}: {}",
        path.display(),
        io::Error::last_os_error()
    );
    f
}

/// Takes the Nautobot lock, checks that Nautobot answers with the token and
/// that the seeded fixtures are there, and removes old leases. None (skip)
/// when it cannot be reached, except under CI, where that is a failure.
pub fn nautobot(test: &str) -> Option<Nautobot> {
    let guard = NB_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let file_lock = lock_across_processes();
    let api = Api::new();
    match api.get_text("/api/") {
        Ok((200, _)) => {}
        other => {
            let why = match other {
                Ok((status, text)) => format!("HTTP {status}: {text}"),
                Err(e) => e,
            };
            if under_ci() {
                panic!(
                    "{test}: Nautobot at {} is not usable ({why}), and CI is set: \
                     start it with {}",
                    nautobot_url(),
                    nautobot_scripts().join("start.sh").display()
                );
            }
            eprintln!(
                "SKIPPED {test}: Nautobot at {} is not usable ({why})",
                nautobot_url()
            );
            return None;
        }
    }
    let prefixes = api.list(&format!(
        "/api/ipam/prefixes/?prefix={PREFIX}&role=Server%20BMC"
    ));
    assert_eq!(
        prefixes.len(),
        1,
        "{test}: Nautobot is not seeded (run {} --with-custom-fields)",
        nautobot_scripts().join("seed.sh").display()
    );
    api.clean()
        .unwrap_or_else(|e| panic!("{test}: clean-up: {e}"));
    Some(Nautobot {
        api,
        _guard: guard,
        _file_lock: file_lock,
    })
}

impl Drop for Nautobot {
    fn drop(&mut self) {
        if std::env::var_os("NFDT_KEEP").is_some() {
            eprintln!("NFDT_KEEP: Nautobot records left in place");
            return;
        }
        if let Err(e) = self.api.clean() {
            eprintln!("Nautobot clean-up failed: {e}");
        }
    }
}

// ---- network namespaces from inside the test process ----

/// Runs `f` on a thread that has joined network namespace `ns`: sockets
/// made there stay in that namespace wherever they are used afterwards.
pub fn in_netns<T: Send>(ns: &str, f: impl FnOnce() -> T + Send) -> T {
    let path = format!("/run/netns/{ns}");
    thread::scope(|s| {
        s.spawn(|| {
            let file = fs::File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
            // SAFETY: plain system call on a valid descriptor; it changes
            // only this thread's network namespace.
            let r = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(r, 0, "setns {path}: {}", io::Error::last_os_error());
            f()
        })
        .join()
        .unwrap()
    })
}

/// A UDP socket on port 68 of `ifname` in `ns` that sends and receives
/// broadcasts, as a client without an address does.
pub fn client_socket(ns: &str, ifname: &str) -> UdpSocket {
    in_netns(ns, || {
        let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).unwrap();
        s.set_reuse_address(true).unwrap();
        s.set_broadcast(true).unwrap();
        s.bind_device(Some(ifname.as_bytes())).unwrap();
        // A burst of replies must not overflow it.
        s.set_recv_buffer_size(4 << 20).unwrap();
        s.bind(&SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 68).into())
            .unwrap();
        s.into()
    })
}

/// Sends `payload` from `sock` to `to` with source address `from` (one of
/// the interface's addresses), whatever address `sock` is bound to
/// (IP_PKTINFO): one socket on port 68 speaks for many clients.
pub fn send_from(
    sock: &UdpSocket,
    from: Ipv4Addr,
    to: SocketAddrV4,
    payload: &[u8],
) -> io::Result<usize> {
    use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags, SockaddrIn};
    let info = libc::in_pktinfo {
        ipi_ifindex: 0,
        ipi_spec_dst: libc::in_addr {
            s_addr: u32::from(from).to_be(),
        },
        ipi_addr: libc::in_addr { s_addr: 0 },
    };
    let iov = [io::IoSlice::new(payload)];
    let cmsg = [ControlMessage::Ipv4PacketInfo(&info)];
    let dest = SockaddrIn::from(to);
    sendmsg(
        sock.as_raw_fd(),
        &iov,
        &cmsg,
        MsgFlags::empty(),
        Some(&dest),
    )
    .map_err(io::Error::from)
}

/// Receives the IPv4 packets that reach `ifname` in `ns` (AF_PACKET), so
/// that replies unicast to an address the interface does not have yet are
/// seen too: that is how dhcrelay delivers to a client that did not ask for
/// a broadcast.
pub struct PacketRx {
    fd: OwnedFd,
}

impl PacketRx {
    pub fn open(ns: &str, ifname: &str) -> PacketRx {
        let name = std::ffi::CString::new(ifname).unwrap();
        in_netns(ns, || {
            let proto = (libc::ETH_P_IP as u16).to_be();
            // SAFETY: plain system calls; the descriptor is owned at once.
            unsafe {
                let fd = libc::socket(libc::AF_PACKET, libc::SOCK_DGRAM, i32::from(proto));
                assert!(fd >= 0, "AF_PACKET: {}", io::Error::last_os_error());
                let fd = OwnedFd::from_raw_fd(fd);
                let ifindex = libc::if_nametoindex(name.as_ptr());
                assert!(ifindex != 0, "no interface {ifname}");
                let mut sll: libc::sockaddr_ll = std::mem::zeroed();
                sll.sll_family = libc::AF_PACKET as u16;
                sll.sll_protocol = proto;
                sll.sll_ifindex = ifindex as i32;
                let r = libc::bind(
                    fd.as_raw_fd(),
                    &sll as *const libc::sockaddr_ll as *const libc::sockaddr,
                    std::mem::size_of::<libc::sockaddr_ll>() as u32,
                );
                assert_eq!(r, 0, "bind AF_PACKET: {}", io::Error::last_os_error());
                PacketRx { fd }
            }
        })
    }

    /// The next DHCP message sent to UDP port 68 for which `want` is true,
    /// within `timeout`.
    pub fn recv_dhcp(&self, timeout: Duration, want: impl Fn(&Message) -> bool) -> Option<Message> {
        let end = Instant::now() + timeout;
        let mut buf = vec![0u8; 2048];
        loop {
            let left = end.checked_duration_since(Instant::now())?;
            let tv = libc::timeval {
                tv_sec: left.as_secs() as libc::time_t,
                tv_usec: left.subsec_micros().max(1000) as libc::suseconds_t,
            };
            // SAFETY: plain system calls with valid buffers.
            let n = unsafe {
                libc::setsockopt(
                    self.fd.as_raw_fd(),
                    libc::SOL_SOCKET,
                    libc::SO_RCVTIMEO,
                    &tv as *const libc::timeval as *const libc::c_void,
                    std::mem::size_of::<libc::timeval>() as u32,
                );
                libc::recv(
                    self.fd.as_raw_fd(),
                    buf.as_mut_ptr() as *mut libc::c_void,
                    buf.len(),
                    0,
                )
            };
            if n <= 0 {
                continue;
            }
            let p = &buf[..n as usize];
            let ihl = usize::from(p[0] & 0x0f) * 4;
            if p.len() < ihl + 8 || p[9] != 17 {
                continue;
            }
            let udp = &p[ihl..];
            if u16::from_be_bytes([udp[2], udp[3]]) != 68 {
                continue;
            }
            if let Ok(m) = Message::from_bytes(&udp[8..]) {
                if want(&m) {
                    return Some(m);
                }
            }
        }
    }
}

/// The UDP payload of the first packet of a pcap file (Ethernet, IPv4).
pub fn pcap_udp_payload(path: &Path) -> Vec<u8> {
    let b = fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let le = match b.get(..4) {
        Some([0xd4, 0xc3, 0xb2, 0xa1]) => true,
        Some([0xa1, 0xb2, 0xc3, 0xd4]) => false,
        _ => panic!("{}: not a pcap file", path.display()),
    };
    let u32_at = |i: usize| {
        let w = [b[i], b[i + 1], b[i + 2], b[i + 3]];
        if le {
            u32::from_le_bytes(w)
        } else {
            u32::from_be_bytes(w)
        }
    };
    let caplen = u32_at(24 + 8) as usize;
    let frame = &b[40..40 + caplen];
    assert_eq!(&frame[12..14], &[0x08, 0x00], "not IPv4 over Ethernet");
    let ip = &frame[14..];
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    assert_eq!(ip[9], 17, "not UDP");
    ip[ihl + 8..].to_vec()
}

/// Where each option of a DHCP payload starts: code -> (offset of the
/// code byte, length). The first occurrence of a code wins.
pub fn dhcp_option_offsets(payload: &[u8]) -> HashMap<u8, (usize, usize)> {
    let mut out = HashMap::new();
    let mut i = 240;
    while i < payload.len() {
        match payload[i] {
            0 => i += 1,
            255 => break,
            code => {
                let len = usize::from(payload[i + 1]);
                out.entry(code).or_insert((i, len));
                i += 2 + len;
            }
        }
    }
    out
}

pub fn mac_octets(s: &str) -> [u8; 6] {
    let v: Vec<u8> = s
        .split(':')
        .map(|h| u8::from_str_radix(h, 16).unwrap())
        .collect();
    v.try_into().unwrap()
}

pub fn fmt_mac(m: &[u8]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

// ---- the daemon ----

/// The settings of a relay-mode daemon config.
#[derive(Clone, Debug)]
pub struct RelayConfig {
    pub lease_time: u32,
    pub nameservers: Vec<String>,
    pub allow_unknown_devices: bool,
    pub authoritative: bool,
    pub workers: usize,
    /// `[nautobot] prefix_roles`: the seeded prefix's role by default.
    pub prefix_roles: Vec<String>,
    /// `[relay] max_offers`; None: the daemon's default.
    pub max_offers: Option<usize>,
    /// `[relay] max_pending_jobs`; None: the daemon's default.
    pub max_pending_jobs: Option<usize>,
}

impl Default for RelayConfig {
    fn default() -> Self {
        RelayConfig {
            lease_time: 3600,
            nameservers: vec!["192.0.2.53".into()],
            allow_unknown_devices: true,
            authoritative: false,
            workers: 4,
            prefix_roles: vec!["Server BMC".into()],
            max_offers: None,
            max_pending_jobs: None,
        }
    }
}

/// The counters of a SIGUSR1 dump.
#[derive(Clone, Debug, Default)]
pub struct Counters {
    /// `relay:` line: requests, absorbed, jobs, jobs_refused, pending,
    /// known_leases, backend_calls, send_errors.
    pub relay: BTreeMap<String, u64>,
    /// `relay socket:` line: received, channel_drops, wrong_interface.
    pub socket: BTreeMap<String, u64>,
    pub answers: BTreeMap<String, u64>,
    pub backend_errors: BTreeMap<String, u64>,
    pub no_lease: BTreeMap<String, u64>,
    pub ignored: BTreeMap<String, u64>,
    pub lines: Vec<String>,
}

fn word_pairs(s: &str) -> BTreeMap<String, u64> {
    let w: Vec<&str> = s.split([' ', ',']).filter(|w| !w.is_empty()).collect();
    w.chunks(2)
        .filter_map(|p| Some((p[0].to_string(), p.get(1)?.parse().ok()?)))
        .collect()
}

impl Counters {
    pub fn get(&self, k: &str) -> u64 {
        self.relay
            .get(k)
            .or_else(|| self.socket.get(k))
            .copied()
            .unwrap_or_else(|| panic!("no counter {k} in {:?}", self.lines))
    }

    pub fn calls(&self) -> u64 {
        self.get("backend_calls")
    }

    pub fn answer(&self, k: &str) -> u64 {
        self.answers.get(k).copied().unwrap_or(0)
    }

    pub fn errors(&self) -> u64 {
        self.backend_errors.values().sum()
    }

    /// The counters of several daemons added up.
    pub fn sum(all: &[&Counters]) -> Counters {
        let add = |m: &mut BTreeMap<String, u64>, o: &BTreeMap<String, u64>| {
            for (k, v) in o {
                *m.entry(k.clone()).or_default() += v;
            }
        };
        let mut c = Counters::default();
        for o in all {
            add(&mut c.relay, &o.relay);
            add(&mut c.socket, &o.socket);
            add(&mut c.answers, &o.answers);
            add(&mut c.backend_errors, &o.backend_errors);
            add(&mut c.no_lease, &o.no_lease);
            add(&mut c.ignored, &o.ignored);
            c.lines.extend(o.lines.iter().cloned());
        }
        c
    }
}

impl std::fmt::Display for Counters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for l in &self.lines {
            writeln!(f, "  {l}")?;
        }
        Ok(())
    }
}

/// A daemon namespace joined to the router by `rupI`/`dx0`, with Nautobot
/// reachable inside as 127.0.0.1 on its usual port, and the daemon when
/// started. Dropping it stops the daemon, then the bridge, then deletes the namespace.
pub struct RelayDaemon {
    pub index: usize,
    /// dx0's address: the server identifier.
    pub addr: Ipv4Addr,
    dir: PathBuf,
    pid: Option<u32>,
    runs: usize,
    log: PathBuf,
    pub ns: Netns,
}

impl RelayDaemon {
    fn new(index: usize, router: &Netns, dir: &Path) -> RelayDaemon {
        let ns = Netns::new(&format!("d{index}"));
        let up = format!("rup{index}");
        let net = 100 + index as u8;
        let addr = Ipv4Addr::new(198, 51, net, 1);
        let peer = Ipv4Addr::new(198, 51, net, 2);
        router.run(&[
            "ip", "link", "add", &up, "type", "veth", "peer", "name", "dx0", "netns", &ns.name,
        ]);
        router.addr_add(&format!("{peer}/24"), &up);
        router.run(&["ip", "link", "set", &up, "up"]);
        ns.addr_add(&format!("{addr}/24"), "dx0");
        ns.run(&["ip", "link", "set", "dx0", "up"]);
        ns.run(&[
            "ip",
            "route",
            "add",
            "192.0.2.0/24",
            "via",
            &peer.to_string(),
        ]);
        let mut d = RelayDaemon {
            index,
            addr,
            dir: dir.to_path_buf(),
            pid: None,
            runs: 0,
            log: dir.join(format!("nfdhcpd-d{index}-0.log")),
            ns,
        };
        d.nautobot_on();
        d
    }

    /// Makes Nautobot reachable from the namespace (netns-bridge.sh start).
    pub fn nautobot_on(&mut self) {
        run_ok(Command::new(bridge_script()).args([
            "start",
            &self.ns.name,
            &nautobot_port().to_string(),
        ]));
    }

    /// Makes Nautobot unreachable from the namespace: connections to
    /// Nautobot's port are refused (netns-bridge.sh stop).
    pub fn nautobot_off(&mut self) {
        run_ok(Command::new(bridge_script()).args(["stop", &self.ns.name]));
    }

    fn write_config(&self, c: &RelayConfig) -> PathBuf {
        let i = self.index;
        let data = self.dir.join(format!("bindings-d{i}"));
        fs::create_dir_all(&data).unwrap();
        // Timestamped lines (nfdhcpd.log), kept with the lab on failure.
        let logdir = self.dir.join(format!("logs-d{i}"));
        fs::create_dir_all(&logdir).unwrap();
        let path = self.dir.join(format!("nfdhcpd-d{i}.conf"));
        let yn = |b: bool| if b { "yes" } else { "no" };
        let text = format!(
            "[general]\npidfile = {pid}\ndatapath = {data}\nlogdir = {logdir}\n\n\
             [dhcp]\nenable_dhcp = no\n\n[ipv6]\nenable_ipv6 = no\n\n\
             [relay]\nenable_relay = yes\nauthoritative = {auth}\nlease_time = {lt}\n\
             nameservers = {ns}\n{max_offers}{max_pending}\n\
             [nautobot]\nurl = {url}\nallow_unknown_devices = {unk}\nworkers = {w}\n\
             prefix_roles = {roles}\n",
            pid = self.dir.join(format!("nfdhcpd-d{i}.pid")).display(),
            data = data.display(),
            logdir = logdir.display(),
            auth = yn(c.authoritative),
            lt = c.lease_time,
            ns = c.nameservers.join(", "),
            url = daemon_nautobot_url(),
            unk = yn(c.allow_unknown_devices),
            w = c.workers,
            roles = c.prefix_roles.join(", "),
            max_offers = c
                .max_offers
                .map(|n| format!("max_offers = {n}\n"))
                .unwrap_or_default(),
            max_pending = c
                .max_pending_jobs
                .map(|n| format!("max_pending_jobs = {n}\n"))
                .unwrap_or_default(),
        );
        fs::write(&path, text).unwrap();
        path
    }

    /// Starts `nfdhcpd -f -d -c CONFIG ARGS` with the token in the
    /// environment, waits for `ready:` and for the backend's preparation
    /// to end. Returns whether the preparation succeeded.
    pub fn start(&mut self, c: &RelayConfig, args: &[&str]) -> bool {
        assert!(self.pid.is_none(), "daemon d{} already running", self.index);
        let conf = self.write_config(c);
        self.log = self
            .dir
            .join(format!("nfdhcpd-d{}-{}.log", self.index, self.runs));
        self.runs += 1;
        let bin = env!("CARGO_BIN_EXE_nfdhcpd");
        let mut argv = vec![bin, "-f", "-d", "-c", conf.to_str().unwrap()];
        argv.extend_from_slice(args);
        let mut cmd = self.ns.command(&argv);
        cmd.env("NAUTOBOT_TOKEN", nautobot_token())
            .env("RUST_BACKTRACE", "1");
        let pid = self.ns.spawn_cmd(cmd, &self.log);
        self.pid = Some(pid);
        let ready = poll(super::READY_TIMEOUT, || {
            let log = self.log();
            if log.contains("ready:") {
                return Some(true);
            }
            self.ns.exited(pid).map(|_| false)
        });
        assert_eq!(
            ready,
            Some(true),
            "nfdhcpd d{} did not get ready ({:?}); log:\n{}",
            self.index,
            self.ns.exited(pid),
            self.log()
        );
        let prepared = poll(Duration::from_secs(30), || {
            let log = self.log();
            if log.contains("nautobot: ready (") {
                Some(true)
            } else if log.contains("preparation failed") {
                Some(false)
            } else {
                None
            }
        });
        prepared.unwrap_or_else(|| panic!("no end of preparation; log:\n{}", self.log()))
    }

    /// SIGTERM: the daemon must exit with status 0 within 2 s.
    pub fn stop(&mut self) {
        let pid = self.pid.take().expect("daemon not started");
        match self.ns.stop(pid, Duration::from_secs(2)) {
            Some(st) if st.success() => {}
            other => panic!(
                "nfdhcpd d{} did not exit cleanly on SIGTERM ({other:?}); log:\n{}",
                self.index,
                self.log()
            ),
        }
    }

    pub fn pid(&self) -> u32 {
        self.pid.expect("daemon not started")
    }

    /// The log of the current (or last) run.
    pub fn log(&self) -> String {
        super::settled_read(&self.log)
    }

    pub fn log_lines(&self, needle: &str) -> Vec<String> {
        self.log()
            .lines()
            .filter(|l| l.contains(needle))
            .map(str::to_owned)
            .collect()
    }

    pub fn assert_alive(&self) {
        if let Some(st) = self.ns.exited(self.pid()) {
            panic!(
                "nfdhcpd d{} exited ({st}); log:\n{}",
                self.index,
                self.log()
            );
        }
    }

    /// Asks for a SIGUSR1 dump and reads its counters.
    pub fn counters(&self) -> Counters {
        self.assert_alive();
        const MARK: &str = "relay socket: received";
        let before = self.log().matches(MARK).count();
        kill(Pid::from_raw(self.pid() as i32), Signal::SIGUSR1).unwrap();
        let log = poll(Duration::from_secs(10), || {
            let log = self.log();
            (log.matches(MARK).count() > before).then_some(log)
        })
        .unwrap_or_else(|| panic!("no SIGUSR1 dump; log:\n{}", self.log()));
        // The last dump: from its `relay:` line to its `relay socket:` line.
        let lines: Vec<&str> = log.lines().collect();
        let end = lines.iter().rposition(|l| l.contains(MARK)).unwrap();
        let start = lines[..end]
            .iter()
            .rposition(|l| l.contains("relay: requests "))
            .expect("no relay counters in the dump");
        let mut c = Counters::default();
        for l in &lines[start..=end] {
            let l = l.trim_start_matches("nfdhcpd: info: ");
            let after = |p: &str| l.strip_prefix(p).map(word_pairs);
            if let Some(m) = after("relay: ") {
                c.relay = m;
            } else if let Some(m) = after("relay socket: ") {
                c.socket = m;
            } else if let Some(m) = after("relay answers: ") {
                c.answers = m;
            } else if let Some(m) = after("relay backend errors: ") {
                c.backend_errors = m;
            } else if let Some(m) = after("relay no lease: ") {
                c.no_lease = m;
            } else if let Some(m) = after("relay ignored: ") {
                c.ignored = m;
            } else {
                continue;
            }
            c.lines.push(l.to_string());
        }
        c
    }

    /// Waits until the daemon has taken `n` more requests than `before`
    /// shows and has no job left; returns the counters then.
    pub fn settle(&self, before: &Counters, n: u64, timeout: Duration) -> Counters {
        let want = before.get("requests") + n;
        let mut last = None;
        let done = poll(timeout, || {
            let c = self.counters();
            let ok = c.get("requests") >= want && c.get("pending") == 0;
            last = Some(c.clone());
            ok.then_some(c)
        });
        done.unwrap_or_else(|| {
            panic!(
                "daemon d{} did not settle after {n} requests; last counters:\n{}",
                self.index,
                last.map(|c| c.to_string()).unwrap_or_default()
            )
        })
    }
}

impl Drop for RelayDaemon {
    fn drop(&mut self) {
        if thread::panicking() && !self.log.as_os_str().is_empty() {
            eprintln!(
                "---- nfdhcpd d{} log ({}) ----\n{}",
                self.index,
                self.log.display(),
                self.log()
            );
        }
        if let Some(pid) = self.pid.take() {
            self.ns.stop(pid, Duration::from_secs(2));
        }
        // Always: the outer socat lives in the root namespace.
        let _ = Command::new(bridge_script())
            .args(["stop", &self.ns.name])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        // The script leaves its log behind; it only helps after a failure.
        if !thread::panicking() {
            let run = std::env::var("NB_BRIDGE_RUNDIR").unwrap_or_else(|_| "/run".into());
            let _ =
                fs::remove_file(Path::new(&run).join(format!("nb-bridge.{}.log", self.ns.name)));
        }
    }
}

/// The router namespace with dhcrelay, the daemon namespaces, and the
/// clients' bridge. Guests come from [`RelayLab::guest`].
pub struct RelayLab {
    // Dropped first: daemons (and their bridges), then the router.
    pub daemons: Vec<RelayDaemon>,
    relay_log: PathBuf,
    pub lab: Lab,
}

impl RelayLab {
    /// Router, `daemons` daemon namespaces (daemons not started yet), and
    /// dhcrelay forwarding to every daemon. None when e2e tests cannot run.
    pub fn new(test: &str, daemons: usize) -> Option<RelayLab> {
        let mut lab = Lab::new(test)?;
        assert!(
            bridge_script().exists(),
            "{} is missing (set NFDT_NAUTOBOT_SCRIPTS to the directory of the test Nautobot's scripts)",
            bridge_script().display()
        );
        let r = &lab.host;
        r.run_words("ip link add br0 type bridge");
        r.addr_add(&format!("{GIADDR}/24"), "br0");
        r.run_words("ip link set br0 up");
        r.run_words("sysctl -qw net.ipv4.ip_forward=1");
        // Guests' taps join br0 (see Lab::guest).
        lab.bridged = true;
        let dir = lab.tmp.path().to_path_buf();
        let ds: Vec<RelayDaemon> = (0..daemons)
            .map(|i| RelayDaemon::new(i, &lab.host, &dir))
            .collect();
        if let Some(d) = ds.first() {
            // Lab prints this one when a test fails.
            lab.daemon_log = d.log.clone();
        }
        let relay_log = lab.tmp.join("dhcrelay.log");
        let pidf = lab.tmp.join("dhcrelay.pid");
        let mut argv: Vec<String> = ["dhcrelay", "-4", "-d", "-pf"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        argv.push(pidf.to_str().unwrap().into());
        for d in &ds {
            argv.extend(["-iu".into(), format!("rup{}", d.index)]);
        }
        argv.extend(["-id".into(), "br0".into()]);
        argv.extend(ds.iter().map(|d| d.addr.to_string()));
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        let pid = lab.host.spawn(&argv, &relay_log);
        assert!(
            lab.host.wait_listening(pid, "-Hulnp", 67),
            "dhcrelay did not start; log:\n{}",
            fs::read_to_string(&relay_log).unwrap_or_default()
        );
        Some(RelayLab {
            daemons: ds,
            relay_log,
            lab,
        })
    }

    pub fn d(&mut self, i: usize) -> &mut RelayDaemon {
        &mut self.daemons[i]
    }

    /// A client namespace on br0 with interface MAC `mac`.
    pub fn guest(&self, tap: &str, mac: &str) -> Guest {
        self.lab.guest(tap, mac)
    }

    pub fn relay_log(&self) -> String {
        fs::read_to_string(&self.relay_log).unwrap_or_default()
    }
}

impl Drop for RelayLab {
    fn drop(&mut self) {
        if thread::panicking() {
            eprintln!("---- dhcrelay log ----\n{}", self.relay_log());
            // Lab prints daemon 0's current log; the others print their own.
            if let Some(d) = self.daemons.first_mut() {
                self.lab.daemon_log = std::mem::take(&mut d.log);
            }
        }
    }
}

// ---- dhclient through the relay ----

/// dhclient options for relay tests: our own config file (the harness one
/// plus `extra_conf`, e.g. `send host-name`), a lease to start from, and
/// extra arguments (`-r`). The later `-cf` wins over the harness's own.
pub fn dhclient_opts(
    g: &Guest,
    timeout: u32,
    extra_conf: &str,
    lease: Option<String>,
    args: &[&str],
) -> ClientOpts {
    let conf = g
        .dir
        .join(format!("relay-dhclient-{}.conf", super::next_id()));
    let text = DHCLIENT_CONF.replace("@TIMEOUT@", &timeout.to_string()) + extra_conf;
    fs::write(&conf, text).unwrap();
    let mut extra = vec!["-cf".to_string(), conf.to_str().unwrap().to_string()];
    extra.extend(args.iter().map(|s| s.to_string()));
    ClientOpts {
        timeout,
        dhclient_lease: lease,
        extra,
    }
}

/// A dhclient lease file for `addr` from `server` (`{IF}` is the interface).
pub fn lease_text(addr: Ipv4Addr, server: Ipv4Addr, lease_secs: u32) -> String {
    format!(
        "lease {{\n  interface \"{{IF}}\";\n  fixed-address {addr};\n  \
         option subnet-mask 255.255.255.0;\n  option routers {GIADDR};\n  \
         option dhcp-server-identifier {server};\n  option dhcp-lease-time {lease_secs};\n  \
         renew 4 2037/01/01 00:00:00;\n  rebind 4 2037/01/01 00:00:00;\n  \
         expire 4 2037/01/01 00:00:00;\n}}\n"
    )
}

/// Gives the guest its leased address and a route to the daemons, as a
/// client's script would, so that it can unicast (RELEASE) to its server.
pub fn configure_guest(g: &Guest, addr: Ipv4Addr) {
    g.ns.run(&["ip", "addr", "add", &format!("{addr}/24"), "dev", &g.ifname]);
    g.ns.run(&[
        "ip",
        "route",
        "add",
        "198.51.100.0/22",
        "via",
        &GIADDR.to_string(),
    ]);
}

// ---- a DHCP client for bursts ----

/// xorshift64*: jitter only.
struct Rng(u64);

impl Rng {
    fn new() -> Rng {
        let t = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
        Rng((t ^ (u64::from(std::process::id()) << 32)) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// When a client sends again after no answer.
#[derive(Clone, Copy, Debug)]
pub enum Retransmit {
    /// RFC 2131 §4.1: 4 s, doubled up to 64 s, each ±1 s at random.
    Rfc2131,
    /// A fixed interval: impatient firmware.
    Every(Duration),
}

impl Retransmit {
    fn delay(self, attempt: u32, rng: &mut Rng) -> Duration {
        match self {
            Retransmit::Rfc2131 => {
                let base = 4000u64 << attempt.min(4);
                Duration::from_millis(base - 1000 + rng.next() % 2001)
            }
            Retransmit::Every(d) => d,
        }
    }
}

/// RFC 2131 §4.4.1: a client that gets neither ACK nor NAK for its
/// REQUEST goes back to INIT. How long it tries is not fixed; ISC dhclient
/// gives up after its 60 s `timeout`.
const REQUEST_GIVE_UP: Duration = Duration::from_secs(60);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// DISCOVER sent, waiting for an OFFER.
    Selecting,
    /// REQUEST for an offer sent, waiting for the ACK.
    Requesting,
    /// REQUEST with ciaddr broadcast (through the relay), waiting for the ACK.
    Rebinding,
    /// REQUEST with ciaddr unicast from that address to the server,
    /// waiting for the ACK.
    Renewing,
    Bound,
}

/// One simulated client.
#[derive(Clone, Debug)]
pub struct BurstClient {
    pub mac: [u8; 6],
    pub hostname: String,
    pub phase: Phase,
    xid: u32,
    offered: Option<(Ipv4Addr, Ipv4Addr)>,
    pub addr: Option<Ipv4Addr>,
    pub server: Option<Ipv4Addr>,
    pub lease_secs: Option<u32>,
    attempt: u32,
    next_send: Instant,
    exchange_start: Instant,
    request_start: Instant,
    /// Datagrams sent in all.
    pub sent: u32,
    pub offers: u32,
    pub naks: u32,
    /// Falls back to INIT (after a NAK or an unanswered REQUEST).
    pub restarts: u32,
    /// REQUESTs given up for want of an answer.
    pub gave_up: u32,
    /// Every ACK: (address, server).
    pub acks: Vec<(Ipv4Addr, Ipv4Addr)>,
    /// From the first datagram of the last exchange to its ACK.
    pub took: Option<Duration>,
    /// Went back to INIT after having been offered an address (a NAK, or
    /// a REQUEST unanswered for too long) in the last exchange.
    pub reinit: bool,
}

/// Many clients on one interface, told apart by chaddr and xid. They set
/// the broadcast flag, so dhcrelay broadcasts every answer and one socket
/// hears them all; everything goes through the real relay.
pub struct Burst {
    sock: UdpSocket,
    ns: String,
    ifname: String,
    rng: Rng,
    by_xid: HashMap<u32, usize>,
    pub clients: Vec<BurstClient>,
    /// Answers that matched no client or no state (duplicates).
    pub stray: u32,
    /// Prefix length of the leased addresses, as they are put on the
    /// interface for unicasts (24: the test prefix).
    pub prefix_len: u8,
    /// The leased addresses are on the interface (see [`Burst::configure`]).
    configured: bool,
}

impl Burst {
    /// `n` clients with MACs 02:bb:TAG:00:HI:LO on `g`'s interface.
    pub fn new(g: &Guest, n: usize, tag: u8) -> Burst {
        let now = Instant::now();
        let clients = (0..n)
            .map(|i| BurstClient {
                mac: [0x02, 0xbb, tag, 0, (i >> 8) as u8, i as u8],
                hostname: format!("burst-{tag}-{i}"),
                phase: Phase::Selecting,
                xid: 0,
                offered: None,
                addr: None,
                server: None,
                lease_secs: None,
                attempt: 0,
                next_send: now,
                exchange_start: now,
                request_start: now,
                sent: 0,
                offers: 0,
                naks: 0,
                restarts: 0,
                gave_up: 0,
                acks: Vec::new(),
                took: None,
                reinit: false,
            })
            .collect();
        Burst {
            sock: client_socket(&g.ns.name, &g.ifname),
            ns: g.ns.name.clone(),
            ifname: g.ifname.clone(),
            rng: Rng::new(),
            by_xid: HashMap::new(),
            clients,
            stray: 0,
            prefix_len: 24,
            configured: false,
        }
    }

    fn new_xid(&mut self, i: usize) {
        let old = self.clients[i].xid;
        self.by_xid.remove(&old);
        let mut x = self.rng.next() as u32;
        while x == 0 || self.by_xid.contains_key(&x) {
            x = self.rng.next() as u32;
        }
        self.clients[i].xid = x;
        self.by_xid.insert(x, i);
    }

    fn begin(&mut self, i: usize, phase: Phase, now: Instant) {
        self.new_xid(i);
        let c = &mut self.clients[i];
        c.phase = phase;
        c.attempt = 0;
        c.next_send = now;
        c.exchange_start = now;
        c.request_start = now;
        c.took = None;
        c.reinit = false;
    }

    fn message(&self, c: &BurstClient, now: Instant) -> Vec<u8> {
        let kind = match c.phase {
            Phase::Selecting => MessageType::Discover,
            _ => MessageType::Request,
        };
        let mut m = Message::default();
        m.set_xid(c.xid)
            .set_chaddr(&c.mac)
            .set_flags(Flags::default().set_broadcast())
            .set_secs(now.duration_since(c.exchange_start).as_secs().min(65535) as u16);
        let o = m.opts_mut();
        o.insert(DhcpOption::MessageType(kind));
        let mut cid = vec![1];
        cid.extend_from_slice(&c.mac);
        o.insert(DhcpOption::ClientIdentifier(cid));
        o.insert(DhcpOption::Hostname(c.hostname.clone()));
        o.insert(DhcpOption::ParameterRequestList(vec![
            OptionCode::SubnetMask,
            OptionCode::Router,
            OptionCode::DomainNameServer,
            OptionCode::AddressLeaseTime,
        ]));
        match c.phase {
            Phase::Requesting => {
                let (yiaddr, server) = c.offered.unwrap();
                o.insert(DhcpOption::RequestedIpAddress(yiaddr));
                o.insert(DhcpOption::ServerIdentifier(server));
            }
            Phase::Rebinding | Phase::Renewing => {
                m.set_ciaddr(c.addr.unwrap());
            }
            _ => {}
        }
        m.to_vec().unwrap()
    }

    fn send_due(&mut self, rt: Retransmit, now: Instant) {
        for i in 0..self.clients.len() {
            let c = &self.clients[i];
            let give_up = c.phase == Phase::Requesting
                && now.duration_since(c.request_start) > REQUEST_GIVE_UP;
            if c.phase == Phase::Bound || (c.next_send > now && !give_up) {
                continue;
            }
            if c.phase == Phase::Requesting && now.duration_since(c.request_start) > REQUEST_GIVE_UP
            {
                self.clients[i].restarts += 1;
                self.begin(i, Phase::Selecting, now);
                self.clients[i].gave_up += 1;
                self.clients[i].reinit = true;
            }
            let payload = self.message(&self.clients[i], now);
            let c = &self.clients[i];
            if c.phase == Phase::Renewing {
                let (from, to) = (c.addr.unwrap(), c.server.unwrap());
                send_from(&self.sock, from, SocketAddrV4::new(to, 67), &payload)
                    .unwrap_or_else(|e| panic!("send from {from} to {to}: {e}"));
            } else {
                let dest = SocketAddrV4::new(Ipv4Addr::BROADCAST, 67);
                self.sock
                    .send_to(&payload, dest)
                    .unwrap_or_else(|e| panic!("send: {e}"));
            }
            let delay = rt.delay(self.clients[i].attempt, &mut self.rng);
            let c = &mut self.clients[i];
            c.sent += 1;
            c.attempt += 1;
            c.next_send = now + delay;
        }
    }

    fn receive(&mut self, m: &Message, now: Instant) {
        let Some(&i) = self.by_xid.get(&m.xid()) else {
            self.stray += 1;
            return;
        };
        if m.chaddr().get(..6) != Some(&self.clients[i].mac[..]) {
            self.stray += 1;
            return;
        }
        let server = match m.opts().get(OptionCode::ServerIdentifier) {
            Some(DhcpOption::ServerIdentifier(a)) => *a,
            _ => Ipv4Addr::UNSPECIFIED,
        };
        let lease = match m.opts().get(OptionCode::AddressLeaseTime) {
            Some(DhcpOption::AddressLeaseTime(t)) => Some(*t),
            _ => None,
        };
        let phase = self.clients[i].phase;
        match (m.opts().msg_type(), phase) {
            (Some(MessageType::Offer), Phase::Selecting) => {
                let c = &mut self.clients[i];
                c.offers += 1;
                c.offered = Some((m.yiaddr(), server));
                c.phase = Phase::Requesting;
                c.attempt = 0;
                c.next_send = now;
                c.request_start = now;
            }
            (Some(MessageType::Offer), _) => {
                self.clients[i].offers += 1;
                self.stray += 1;
            }
            (Some(MessageType::Ack), Phase::Requesting | Phase::Rebinding | Phase::Renewing) => {
                let c = &mut self.clients[i];
                let want = match phase {
                    Phase::Requesting => c.offered.map(|o| o.0),
                    _ => c.addr,
                };
                if Some(m.yiaddr()) != want {
                    self.stray += 1;
                    return;
                }
                c.acks.push((m.yiaddr(), server));
                c.addr = Some(m.yiaddr());
                if phase == Phase::Requesting {
                    c.server = Some(server);
                }
                c.lease_secs = lease;
                c.phase = Phase::Bound;
                c.took = Some(now.duration_since(c.exchange_start));
            }
            (Some(MessageType::Nak), Phase::Requesting | Phase::Rebinding | Phase::Renewing) => {
                self.clients[i].naks += 1;
                self.clients[i].restarts += 1;
                self.begin(i, Phase::Selecting, now);
                self.clients[i].reinit = true;
            }
            (Some(MessageType::Nak), _) => {
                self.clients[i].naks += 1;
                self.stray += 1;
            }
            _ => self.stray += 1,
        }
    }

    /// Runs until every client is bound or `deadline` has passed; returns
    /// the time taken.
    fn run(&mut self, rt: Retransmit, deadline: Duration) -> Duration {
        let start = Instant::now();
        let mut buf = vec![0u8; 2048];
        loop {
            let now = Instant::now();
            self.send_due(rt, now);
            if self.clients.iter().all(|c| c.phase == Phase::Bound) {
                return now.duration_since(start);
            }
            if now.duration_since(start) > deadline {
                return now.duration_since(start);
            }
            let next = self
                .clients
                .iter()
                .filter(|c| c.phase != Phase::Bound)
                .map(|c| c.next_send)
                .min()
                .unwrap_or(now);
            let wait = next
                .saturating_duration_since(now)
                .clamp(Duration::from_millis(1), Duration::from_millis(20));
            self.sock.set_read_timeout(Some(wait)).unwrap();
            match self.sock.recv_from(&mut buf) {
                Ok((n, _)) => {
                    if let Ok(m) = Message::from_bytes(&buf[..n]) {
                        if m.opcode() == dhcproto::v4::Opcode::BootReply {
                            self.receive(&m, Instant::now());
                        }
                    }
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => panic!("receive: {e}"),
            }
        }
    }

    /// Every client powers on at the same moment: DISCOVER, OFFER, REQUEST,
    /// ACK. Returns the time until the last one was bound (or the deadline).
    pub fn dora(&mut self, rt: Retransmit, deadline: Duration) -> Duration {
        let now = Instant::now();
        for i in 0..self.clients.len() {
            self.begin(i, Phase::Selecting, now);
        }
        self.run(rt, deadline)
    }

    /// Every bound client extends its lease at once by a broadcast REQUEST
    /// with ciaddr (REBINDING), which the relay forwards.
    pub fn rebind(&mut self, rt: Retransmit, deadline: Duration) -> Duration {
        let now = Instant::now();
        for i in 0..self.clients.len() {
            assert_eq!(
                self.clients[i].phase,
                Phase::Bound,
                "client {i} is not bound"
            );
            self.begin(i, Phase::Rebinding, now);
        }
        self.run(rt, deadline)
    }

    /// Every bound client extends its lease by a REQUEST with ciaddr
    /// unicast from its address to its server (RENEWING), client `i` of
    /// `n` at `i * spread / n` from now, so that the renewals come evenly
    /// over `spread`. `took` of each is from its own first datagram. The
    /// addresses are put on the interface first ([`Burst::configure`]).
    /// Returns the time until the last one was bound (or the deadline).
    ///
    /// dhcrelay hears the unicast too (the router it runs on forwards it)
    /// and relays a copy, which reaches the daemon just after the direct
    /// one; the daemon answers the newest copy, through the relay. The
    /// clients set the broadcast bit, as in the other exchanges, so that
    /// dhcrelay broadcasts that answer: unicast, it would go to chaddr,
    /// which here is not the interface's MAC.
    pub fn renew(
        &mut self,
        g: &Guest,
        rt: Retransmit,
        spread: Duration,
        deadline: Duration,
    ) -> Duration {
        self.configure(g);
        let now = Instant::now();
        let n = self.clients.len().max(1) as u32;
        for i in 0..self.clients.len() {
            assert_eq!(
                self.clients[i].phase,
                Phase::Bound,
                "client {i} is not bound"
            );
            self.begin(i, Phase::Renewing, now);
            let at = now + spread * i as u32 / n;
            let c = &mut self.clients[i];
            c.next_send = at;
            c.exchange_start = at;
            c.request_start = at;
        }
        self.run(rt, spread + deadline)
    }

    /// Puts every bound client's address on the interface (once), with a
    /// route to the daemons, so that clients can unicast from their own
    /// address (RENEWING, RELEASE) and receive unicast answers.
    pub fn configure(&mut self, g: &Guest) {
        if self.configured {
            return;
        }
        let batch: String = self
            .clients
            .iter()
            .map(|c| {
                format!(
                    "addr add {}/{} dev {}\n",
                    c.addr.unwrap(),
                    self.prefix_len,
                    self.ifname
                )
            })
            .collect::<String>()
            + &format!("route add 198.51.100.0/22 via {GIADDR}\n");
        let path = g
            .dir
            .join(format!("burst-addresses-{}.batch", super::next_id()));
        fs::write(&path, batch).unwrap();
        g.ns.run(&["ip", "-batch", path.to_str().unwrap()]);
        self.configured = true;
    }

    /// Every bound client releases its lease by unicast to its server, from
    /// its own address (configured on the interface for that).
    pub fn release(&mut self, g: &Guest) {
        self.configure(g);
        for i in 0..self.clients.len() {
            self.new_xid(i);
        }
        let msgs: Vec<(Ipv4Addr, Ipv4Addr, Vec<u8>)> = self
            .clients
            .iter()
            .map(|c| {
                let (addr, server) = (c.addr.unwrap(), c.server.unwrap());
                let mut m = Message::default();
                m.set_xid(c.xid).set_chaddr(&c.mac).set_ciaddr(addr);
                let o = m.opts_mut();
                o.insert(DhcpOption::MessageType(MessageType::Release));
                o.insert(DhcpOption::ServerIdentifier(server));
                let mut cid = vec![1];
                cid.extend_from_slice(&c.mac);
                o.insert(DhcpOption::ClientIdentifier(cid));
                (addr, server, m.to_vec().unwrap())
            })
            .collect();
        in_netns(&self.ns, || {
            for (addr, server, payload) in &msgs {
                let s = UdpSocket::bind(SocketAddrV4::new(*addr, 0))
                    .unwrap_or_else(|e| panic!("bind {addr}: {e}"));
                s.send_to(payload, SocketAddrV4::new(*server, 67))
                    .unwrap_or_else(|e| panic!("RELEASE from {addr}: {e}"));
            }
        });
    }

    /// (MAC, address) of every bound client.
    pub fn acked(&self) -> Vec<([u8; 6], Ipv4Addr)> {
        self.clients
            .iter()
            .filter_map(|c| Some((c.mac, c.addr?)))
            .collect()
    }

    pub fn bound(&self) -> usize {
        self.clients
            .iter()
            .filter(|c| c.phase == Phase::Bound)
            .count()
    }

    /// Panics unless every client is bound without a NAK and without
    /// falling back to INIT.
    pub fn assert_all_bound_cleanly(&self, what: &str) {
        let bad: Vec<&BurstClient> = self
            .clients
            .iter()
            .filter(|c| c.phase != Phase::Bound || c.naks > 0 || c.restarts > 0)
            .collect();
        if bad.is_empty() {
            return;
        }
        let count = |f: &dyn Fn(&BurstClient) -> bool| bad.iter().filter(|c| f(c)).count();
        let lines: Vec<String> = bad
            .iter()
            .take(20)
            .map(|c| {
                format!(
                    "{} {:?} naks {} restarts {} sent {} offers {}",
                    fmt_mac(&c.mac),
                    c.phase,
                    c.naks,
                    c.restarts,
                    c.sent,
                    c.offers
                )
            })
            .collect();
        panic!(
            "{what}: {} of {} clients not cleanly bound: {} not bound at all, {} got a NAK, \
             {} fell back to INIT after a REQUEST unanswered for {REQUEST_GIVE_UP:?}; first \
             ones:\n{}",
            bad.len(),
            self.clients.len(),
            count(&|c| c.phase != Phase::Bound),
            count(&|c| c.naks > 0),
            count(&|c| c.gave_up > 0),
            lines.join("\n")
        );
    }

    /// Panics if one address was acknowledged to two clients.
    pub fn assert_unique_addresses(&self) {
        let mut owner: HashMap<Ipv4Addr, [u8; 6]> = HashMap::new();
        for c in &self.clients {
            for (a, _) in &c.acks {
                if let Some(o) = owner.insert(*a, c.mac) {
                    assert_eq!(
                        o,
                        c.mac,
                        "{a} was acknowledged to {} and to {}",
                        fmt_mac(&o),
                        fmt_mac(&c.mac)
                    );
                }
            }
        }
    }

    /// Datagrams sent beyond one per message of a clean exchange.
    pub fn retransmissions(&self, per_client: u32) -> u32 {
        self.clients
            .iter()
            .map(|c| c.sent.saturating_sub(per_client))
            .sum()
    }

    /// Exchange times of the bound clients: (median, 90th percentile, max).
    pub fn took_stats(&self) -> (Duration, Duration, Duration) {
        let mut t: Vec<Duration> = self.clients.iter().filter_map(|c| c.took).collect();
        if t.is_empty() {
            return Default::default();
        }
        t.sort();
        let at = |q: usize| t[(t.len() - 1) * q / 100];
        (at(50), at(90), at(100))
    }

    pub fn reset_sent(&mut self) {
        for c in &mut self.clients {
            c.sent = 0;
        }
    }
}

/// Checks the daemon's leases in Nautobot against what the clients were
/// acknowledged: each `(mac, address)` has its record, with that MAC and
/// an expiry `lease` seconds after a moment between `started` and `acked_at`; no address is recorded
/// twice; every MAC has exactly one live lease. Returns the number of
/// records that are short offer holds only (a MAC's spare, see the
/// Nautobot backend's notes on two servers).
/// Waits (at most `limit`) until no MAC has two live `dhcp` records: a
/// daemon whose offer the client did not take withdraws it (a RELEASE of
/// its record) when the client asks another server, a moment after the
/// ACK the burst waited for.
pub fn wait_offers_withdrawn(api: &Api, limit: Duration) {
    let deadline = Instant::now() + limit;
    loop {
        let mut live: HashMap<String, usize> = HashMap::new();
        for r in api.dhcp_records() {
            let cf = &r["custom_fields"];
            let expire = cf["pydhcp_expire"]
                .as_str()
                .and_then(parse_utc)
                .unwrap_or(0);
            if expire > unix_now() + 60 {
                let mac = cf["pydhcp_mac"]
                    .as_str()
                    .unwrap_or_default()
                    .to_ascii_lowercase();
                *live.entry(mac).or_default() += 1;
            }
        }
        if live.values().all(|&n| n <= 1) || Instant::now() >= deadline {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

pub fn check_records(
    api: &Api,
    acked: &[([u8; 6], Ipv4Addr)],
    lease: u32,
    (started, acked_at): (i64, i64),
) -> usize {
    let records = api.dhcp_records();
    let mut by_addr: HashMap<String, &Value> = HashMap::new();
    let mut live_by_mac: HashMap<String, Vec<String>> = HashMap::new();
    let mut holds = 0;
    for r in &records {
        let addr = r["address"].as_str().unwrap().to_string();
        assert!(
            by_addr.insert(addr.clone(), r).is_none(),
            "{addr} is recorded twice"
        );
        let mac = r["custom_fields"]["pydhcp_mac"]
            .as_str()
            .unwrap_or_default()
            .to_ascii_lowercase();
        let expire = r["custom_fields"]["pydhcp_expire"]
            .as_str()
            .and_then(parse_utc)
            .unwrap_or_else(|| panic!("{addr}: no pydhcp_expire: {r}"));
        // An offer hold is 10 s; a lease is `lease` (much longer).
        if expire > unix_now() + 60 {
            live_by_mac.entry(mac).or_default().push(addr);
        } else {
            holds += 1;
        }
    }
    for (mac, addr) in acked {
        let m = fmt_mac(mac);
        let key = format!("{addr}/24");
        let r = by_addr
            .get(&key)
            .unwrap_or_else(|| panic!("{m}: no record {key}"));
        let cf = &r["custom_fields"];
        assert_eq!(
            cf["pydhcp_mac"].as_str().map(str::to_ascii_lowercase),
            Some(m.clone()),
            "{key}: {r}"
        );
        assert_eq!(r["type"], "dhcp", "{key}: {r}");
        let expire = parse_utc(cf["pydhcp_expire"].as_str().unwrap()).unwrap();
        // A lease runs from its REQUEST, which came during the burst; the
        // OFFER wrote it from its own time, plus the 10 s the REQUEST may
        // take to come.
        let lease = i64::from(lease);
        assert!(
            expire >= started + lease - 5 && expire <= acked_at + lease + 15,
            "{key}: pydhcp_expire {} is not about {lease} s after the ACK",
            cf["pydhcp_expire"]
        );
        assert_eq!(
            live_by_mac.get(&m).map(Vec::len),
            Some(1),
            "{m} has live leases {:?}",
            live_by_mac.get(&m)
        );
    }
    holds
}
