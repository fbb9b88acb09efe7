//! Backend faults in relay mode, end to end: the real daemon (authoritative,
//! `-a`), ISC dhcrelay, real dhclients and the harness's burst clients, the
//! real test Nautobot, and between the daemon and Nautobot a fault-injecting
//! HTTP proxy of this file ([`FaultProxy`]).
//!
//! The proxy listens on 127.0.0.1 (an ephemeral port) inside the daemon's
//! network namespace; the daemon is pointed at it with `--nautobot-url`. It
//! forwards from the test process, in the root namespace, to Nautobot on its
//! loopback address, so nothing but loopback sockets and the harness's own
//! namespaces is involved. Its fault is switched at run time, so that one
//! daemon sees Nautobot healthy, then failing, then healthy again:
//!
//! | fault | what the daemon gets |
//! |---|---|
//! | `Delay(d)` | the real answer, `d` later (5 s: slow; 12 s: past the daemon's 10 s `timeout`) |
//! | `Status500` | HTTP 500 with Nautobot's JSON error body (database down); nothing forwarded |
//! | `NotJson` | HTTP 200 with an HTML page; nothing forwarded |
//! | `TruncatedJson` | the real answer cut in half (so writes do reach Nautobot) |
//! | `Forbidden` | HTTP 403 `{"detail":"Invalid token"}`; nothing forwarded |
//! | `WriteNotARecord` | reads forwarded; writes of IP addresses answered 200 with JSON that is no IP address, and not done |
//!
//! Each test checks, for its fault:
//!
//! 1. no DHCPNAK while the backend fails: no reply of any kind is seen on
//!    the clients' links during the fault, not even for a REQUEST that the
//!    same daemon NAKs when Nautobot is healthy (another device's static
//!    address), and the daemon's NAK counter does not move;
//! 2. the failure is logged at most once per 10 s with a count of the
//!    suppressed ones (`(N similar suppressed)`), whatever the number of
//!    failed jobs;
//! 3. recovery without a restart: clients that retried through the fault
//!    and a new client get their leases once the fault is gone;
//! 4. nothing lost or damaged: every IP address record of the test prefix
//!    before the fault is still there after it, only `dhcp` records changed
//!    or were added, the static and the permanent record read back byte for
//!    byte the same, and every ACK any client received has its record in
//!    Nautobot with that MAC, written (seen passing the proxy with the full
//!    lease) before the ACK was seen on the wire.
//!
//! The slow case (`Delay(5 s)`, below the timeout) is not a failure: there
//! the checks are that renewals of leases the daemon knows cost one call
//! each, new clients are served, nothing fails and nobody is NAKed.
//!
//! `nautobot_write_answered_200_with_other_json` fails with the daemon as
//! it is: a 200 answer to a write whose body is no IP address is taken for
//! "the record is gone", and the daemon NAKs clients asking for their own
//! address (see that test).
//!
//! The RESULT lines (`--nocapture`) give the figures of each run. Needs root
//! and a seeded Nautobot; takes the harness's Nautobot lock (which holds
//! only within one test binary: do not run this while another binary or
//! `nfdhcpd-bench relay` uses the same Nautobot).

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{self, Read as _, Write as _};
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::relay::*;
use common::*;
use dhcproto::v4::{DhcpOption, Flags, Message, MessageType};
use dhcproto::Encodable;
use serde_json::{json, Value};

/// A dynamic lease: MAC on no device (unknown devices are allowed).
const MAC_A: &str = "14:18:77:aa:bb:02";
/// The new client after the fault.
const MAC_N: &str = "14:18:77:aa:bb:03";
/// The permanent lease: a `host` address whose pydhcp_mac is this MAC.
const MAC_P: &str = "14:18:77:aa:bb:0c";
const PERM_IP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 30);
/// The probe: asks for another device's static address, which an
/// authoritative daemon NAKs when it can ask Nautobot.
const PROBE_MAC: [u8; 6] = [0x02, 0xbb, 0xfa, 0, 0, 1];
const LEASE: u32 = 3600;
const WARN_NEEDLE: &str = "nautobot failed for";

fn ip(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(192, 0, 2, last)
}

fn lower(s: &str) -> String {
    s.to_ascii_lowercase()
}

// ---- the fault-injecting proxy ----

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    Pass,
    Delay(Duration),
    Status500,
    NotJson,
    TruncatedJson,
    Forbidden,
    /// POST/PATCH of IP addresses: 200 with JSON that is no IP address,
    /// not forwarded. Everything else is forwarded.
    WriteNotARecord,
}

/// What Nautobot 3.2 answers when its database is gone.
const BODY_500: &str =
    "{\"error\": \"connection to server at \\\"127.0.0.1\\\", port 5432 failed: \
     Connection refused\\n\\tIs the server running on that host and accepting TCP/IP \
     connections?\\n\", \"exception\": \"OperationalError\", \"nautobot_version\": \"3.2.7\", \
     \"python_version\": \"3.11.7\"}";
/// A maintenance page from something in front of Nautobot, with status 200.
const BODY_HTML: &str = "<!DOCTYPE html>\n<html><head><title>Nautobot</title></head>\
     <body><h1>Down for maintenance</h1><p>Back soon.</p></body></html>\n";
/// Nautobot's answer to a token it does not know.
const BODY_403: &str = include_str!("data/nautobot/invalid_token_403.json");
/// Valid JSON, status 200, but no IP address object.
const BODY_NOT_A_RECORD: &str = "{\"detail\": \"Request accepted\"}";

/// One request the proxy handled.
#[derive(Clone, Debug)]
struct Call {
    fault: Fault,
    method: String,
    path: String,
    body: Vec<u8>,
    /// Status of Nautobot's own answer, when the request was forwarded.
    upstream: Option<u16>,
    /// When Nautobot's answer was in (the write, if any, was done by then).
    answered: Option<Instant>,
    /// Status the daemon got.
    status: u16,
}

impl Call {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// The objects of a body: each of a bulk call's list, or the one.
    fn items(&self) -> Vec<Value> {
        match self.json() {
            Value::Array(list) => list,
            one => vec![one],
        }
    }

    /// The records a PATCH wrote, by id, with what it wrote into each: the
    /// one of its path, or each `id` of a bulk list.
    fn patched(&self) -> Vec<(String, Value)> {
        let single = self
            .path
            .trim_end_matches('/')
            .rsplit('/')
            .next()
            .filter(|id| *id != "ip-addresses")
            .map(str::to_owned);
        match single {
            Some(id) => vec![(id, self.json())],
            None => self
                .items()
                .into_iter()
                .filter_map(|b| Some((b["id"].as_str()?.to_owned(), b)))
                .collect(),
        }
    }
}

struct ProxyShared {
    fault: Mutex<Fault>,
    calls: Mutex<Vec<Call>>,
    in_flight: AtomicUsize,
    stop: AtomicBool,
    upstream: String,
    agent: ureq::Agent,
}

/// An HTTP/1.1 proxy (keep-alive, Content-Length bodies, as the daemon's
/// ureq sends them) in front of Nautobot.
struct FaultProxy {
    /// The URL the daemon uses, inside its namespace.
    url: String,
    shared: Arc<ProxyShared>,
    accept: Option<thread::JoinHandle<()>>,
}

impl FaultProxy {
    /// Listens on 127.0.0.1 in namespace `ns`; forwards to Nautobot.
    fn start(ns: &str) -> FaultProxy {
        let listener = in_netns(ns, || {
            TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("proxy bind in {ns}: {e}"))
        });
        let port = listener.local_addr().unwrap().port();
        listener.set_nonblocking(true).unwrap();
        let agent = ureq::Agent::new_with_config(
            ureq::Agent::config_builder()
                .http_status_as_error(false)
                .max_redirects(0)
                .timeout_global(Some(Duration::from_secs(60)))
                .build(),
        );
        let shared = Arc::new(ProxyShared {
            fault: Mutex::new(Fault::Pass),
            calls: Mutex::new(Vec::new()),
            in_flight: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
            upstream: nautobot_url().trim_end_matches('/').to_owned(),
            agent,
        });
        let sh = shared.clone();
        let accept = thread::spawn(move || {
            while !sh.stop.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((s, _)) => {
                        let sh = sh.clone();
                        thread::spawn(move || serve_connection(s, &sh));
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        thread::sleep(Duration::from_millis(10))
                    }
                    Err(e) => {
                        eprintln!("fault proxy: accept: {e}");
                        thread::sleep(Duration::from_millis(100));
                    }
                }
            }
        });
        FaultProxy {
            url: format!("http://127.0.0.1:{port}"),
            shared,
            accept: Some(accept),
        }
    }

    fn set(&self, f: Fault) {
        *self.shared.fault.lock().unwrap() = f;
    }

    fn calls(&self) -> Vec<Call> {
        self.shared.calls.lock().unwrap().clone()
    }

    /// Waits until no request is being handled (delayed ones are forwarded
    /// late, also when the daemon gave up on them).
    fn wait_idle(&self, timeout: Duration) {
        let idle = poll(timeout, || {
            (self.shared.in_flight.load(Ordering::SeqCst) == 0).then_some(())
        });
        assert!(idle.is_some(), "the fault proxy is still busy");
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
    }
}

struct HttpRequest {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl HttpRequest {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// More bytes from `s`; None at EOF, on an error or when the proxy stops.
fn fill(s: &mut TcpStream, buf: &mut Vec<u8>, stop: &AtomicBool) -> Option<()> {
    let mut chunk = [0u8; 16384];
    loop {
        match s.read(&mut chunk) {
            Ok(0) => return None,
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                return Some(());
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                if stop.load(Ordering::Relaxed) {
                    return None;
                }
            }
            Err(_) => return None,
        }
    }
}

fn read_request(s: &mut TcpStream, buf: &mut Vec<u8>, stop: &AtomicBool) -> Option<HttpRequest> {
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        fill(s, buf, stop)?;
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let method = first.next()?.to_owned();
    let path = first.next()?.to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (lower(k.trim()), v.trim().to_owned()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && lower(v).contains("chunked"));
    assert!(
        !chunked,
        "fault proxy: chunked request bodies are not supported"
    );
    let len: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + len {
        fill(s, buf, stop)?;
    }
    let body = buf[head_end..head_end + len].to_vec();
    buf.drain(..head_end + len);
    Some(HttpRequest {
        method,
        path,
        headers,
        body,
    })
}

/// The request sent on to Nautobot: (status, content type, body).
fn forward(sh: &ProxyShared, req: &HttpRequest) -> Result<(u16, String, Vec<u8>), String> {
    let url = format!("{}{}", sh.upstream, req.path);
    let auth = req.header("authorization").unwrap_or_default();
    let accept = req.header("accept").unwrap_or("application/json");
    let ctype = req.header("content-type").unwrap_or("application/json");
    let a = &sh.agent;
    let res = match req.method.as_str() {
        "GET" => a
            .get(&url)
            .header("Authorization", auth)
            .header("Accept", accept)
            .call(),
        "DELETE" => a
            .delete(&url)
            .header("Authorization", auth)
            .header("Accept", accept)
            .call(),
        "POST" => a
            .post(&url)
            .header("Authorization", auth)
            .header("Accept", accept)
            .header("Content-Type", ctype)
            .send(&req.body[..]),
        "PATCH" => a
            .patch(&url)
            .header("Authorization", auth)
            .header("Accept", accept)
            .header("Content-Type", ctype)
            .send(&req.body[..]),
        m => return Err(format!("method {m} is not forwarded")),
    };
    let mut r = res.map_err(|e| e.to_string())?;
    let status = r.status().as_u16();
    let ct = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
        .to_owned();
    let body = r
        .body_mut()
        .with_config()
        .limit(64 << 20)
        .read_to_vec()
        .map_err(|e| e.to_string())?;
    Ok((status, ct, body))
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        _ => "Status",
    }
}

fn serve_connection(mut s: TcpStream, sh: &ProxyShared) {
    let _ = s.set_nonblocking(false);
    let _ = s.set_read_timeout(Some(Duration::from_millis(300)));
    let _ = s.set_nodelay(true);
    let mut buf = Vec::new();
    while let Some(req) = read_request(&mut s, &mut buf, &sh.stop) {
        sh.in_flight.fetch_add(1, Ordering::SeqCst);
        let fault = *sh.fault.lock().unwrap();
        let mut call = Call {
            fault,
            method: req.method.clone(),
            path: req.path.clone(),
            body: req.body.clone(),
            upstream: None,
            answered: None,
            status: 0,
        };
        let pass = |call: &mut Call| match forward(sh, &req) {
            Ok((st, ct, body)) => {
                call.upstream = Some(st);
                call.answered = Some(Instant::now());
                (st, ct, body)
            }
            Err(e) => (502, "text/plain".to_owned(), e.into_bytes()),
        };
        let json = "application/json".to_owned();
        let (status, ctype, body) = match fault {
            Fault::Pass => pass(&mut call),
            Fault::Delay(d) => {
                // The server is slow, not gone: it does the work even when
                // the client has given up meanwhile.
                let end = Instant::now() + d;
                while Instant::now() < end && !sh.stop.load(Ordering::Relaxed) {
                    thread::sleep(Duration::from_millis(20));
                }
                pass(&mut call)
            }
            Fault::Status500 => (500, json, BODY_500.as_bytes().to_vec()),
            Fault::NotJson => (
                200,
                "text/html; charset=utf-8".to_owned(),
                BODY_HTML.as_bytes().to_vec(),
            ),
            Fault::TruncatedJson => {
                let (st, ct, mut body) = pass(&mut call);
                let keep = (body.len() / 2).max(1);
                body.truncate(keep);
                if body.is_empty() {
                    body.push(b'{');
                }
                (st, ct, body)
            }
            Fault::Forbidden => (403, json, BODY_403.trim().as_bytes().to_vec()),
            Fault::WriteNotARecord
                if matches!(req.method.as_str(), "POST" | "PATCH")
                    && req.path.starts_with("/api/ipam/ip-addresses/") =>
            {
                (200, json, BODY_NOT_A_RECORD.as_bytes().to_vec())
            }
            Fault::WriteNotARecord => pass(&mut call),
        };
        call.status = status;
        let head = format!(
            "HTTP/1.1 {status} {}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\n\
             API-Version: 3.2\r\n\r\n",
            reason(status),
            body.len()
        );
        let sent = s
            .write_all(head.as_bytes())
            .and_then(|_| s.write_all(&body))
            .and_then(|_| s.flush())
            .is_ok();
        sh.calls.lock().unwrap().push(call);
        sh.in_flight.fetch_sub(1, Ordering::SeqCst);
        if !sent {
            return;
        }
    }
}

// ---- what the clients' links carry ----

/// One DHCP reply seen on a client link.
#[derive(Clone, Debug)]
struct Seen {
    at: Instant,
    xid: u32,
    mac: String,
    kind: Option<MessageType>,
    yiaddr: Ipv4Addr,
}

/// Records every DHCP message to UDP port 68 that reaches the guests'
/// interfaces (AF_PACKET, so unicast replies to an address the guest does
/// not have yet are seen too).
struct Sniffers {
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Vec<Seen>>>,
    threads: Vec<thread::JoinHandle<()>>,
}

impl Sniffers {
    fn start(guests: &[&Guest]) -> Sniffers {
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let threads = guests
            .iter()
            .map(|g| {
                let rx = PacketRx::open(&g.ns.name, &g.ifname);
                let (stop, seen) = (stop.clone(), seen.clone());
                thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        if let Some(m) = rx.recv_dhcp(Duration::from_millis(200), |_| true) {
                            if m.opcode() != dhcproto::v4::Opcode::BootReply {
                                continue;
                            }
                            seen.lock().unwrap().push(Seen {
                                at: Instant::now(),
                                xid: m.xid(),
                                mac: fmt_mac(&m.chaddr()[..6]),
                                kind: m.opts().msg_type(),
                                yiaddr: m.yiaddr(),
                            });
                        }
                    }
                })
            })
            .collect();
        Sniffers {
            stop,
            seen,
            threads,
        }
    }

    /// Every reply once (broadcast replies reach every guest of the
    /// bridge), earliest sighting first.
    fn replies(&self) -> Vec<Seen> {
        let mut all = self.seen.lock().unwrap().clone();
        all.sort_by_key(|s| s.at);
        let mut keys = HashSet::new();
        all.into_iter()
            .filter(|s| keys.insert((s.xid, s.mac.clone(), s.kind, s.yiaddr)))
            .collect()
    }
}

impl Drop for Sniffers {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// A client that asks, by INIT-REBOOT REQUEST, for the seeded device's
/// static address, which is not its own.
struct Probe {
    sock: UdpSocket,
    next_xid: u32,
    xids: Vec<(u32, Instant)>,
}

impl Probe {
    fn new(g: &Guest) -> Probe {
        Probe {
            sock: client_socket(&g.ns.name, &g.ifname),
            next_xid: 0x7a00_0000,
            xids: Vec::new(),
        }
    }

    fn send(&mut self) -> u32 {
        self.next_xid += 1;
        let xid = self.next_xid;
        let mut m = Message::default();
        m.set_xid(xid)
            .set_chaddr(&PROBE_MAC)
            .set_flags(Flags::default().set_broadcast());
        let o = m.opts_mut();
        o.insert(DhcpOption::MessageType(MessageType::Request));
        o.insert(DhcpOption::RequestedIpAddress(STATIC_IP));
        let mut cid = vec![1];
        cid.extend_from_slice(&PROBE_MAC);
        o.insert(DhcpOption::ClientIdentifier(cid));
        self.sock
            .send_to(
                &m.to_vec().unwrap(),
                SocketAddrV4::new(Ipv4Addr::BROADCAST, 67),
            )
            .unwrap();
        self.xids.push((xid, Instant::now()));
        xid
    }

    /// Asks (every second, as a client retransmits) until a NAK comes.
    fn expect_nak(&mut self, sn: &Sniffers, timeout: Duration) -> Duration {
        let t = Instant::now();
        let first = self.next_xid + 1;
        while t.elapsed() < timeout {
            self.send();
            let last = self.next_xid;
            let got = poll(Duration::from_secs(1), || {
                sn.replies()
                    .iter()
                    .any(|s| s.xid >= first && s.xid <= last && s.kind == Some(MessageType::Nak))
                    .then_some(())
            });
            if got.is_some() {
                return t.elapsed();
            }
        }
        panic!("the authoritative daemon did not NAK a REQUEST for {STATIC_IP} from another MAC");
    }
}

// ---- Nautobot: the permanent lease and snapshots ----

/// A `host` address whose pydhcp_mac is [`MAC_P`]: a permanent lease the
/// daemon must hand out and never modify. Removed again on drop.
struct Permanent {
    api: Api,
    id: String,
}

impl Permanent {
    fn create() -> Permanent {
        let api = Api::new();
        // Leftovers of a killed run.
        for r in api.addresses(PERM_IP) {
            if r["description"] == TEST_MARKER && r["type"] != "dhcp" {
                let id = r["id"].as_str().unwrap();
                api.send(
                    "DELETE",
                    &format!("/api/ipam/ip-addresses/{id}/"),
                    &Value::Null,
                );
            }
        }
        assert!(
            api.addresses(PERM_IP).is_empty(),
            "{PERM_IP} is already recorded: {:?}",
            api.addresses(PERM_IP)
        );
        let (s, body) = api.send(
            "POST",
            "/api/ipam/ip-addresses/",
            &json!({
                "address": format!("{PERM_IP}/24"),
                "namespace": "Global",
                "status": "Active",
                "type": "host",
                "description": TEST_MARKER,
                "custom_fields": {"pydhcp_mac": MAC_P},
            }),
        );
        assert_eq!(s, 201, "permanent address: {body}");
        Permanent {
            id: body["id"].as_str().unwrap().to_owned(),
            api,
        }
    }

    fn text(&self) -> String {
        let path = format!(
            "/api/ipam/ip-addresses/{}/?exclude_m2m=false&depth=1",
            self.id
        );
        let (s, text) = self.api.get_text(&path).unwrap();
        assert_eq!(s, 200, "{path}: {text}");
        text
    }
}

impl Drop for Permanent {
    fn drop(&mut self) {
        let path = format!("/api/ipam/ip-addresses/{}/", self.id);
        match self.api.try_send("DELETE", &path, &Value::Null) {
            Ok((204, _)) => {}
            other => eprintln!("could not remove the permanent address {PERM_IP}: {other:?}"),
        }
    }
}

/// Every IP address record of the test prefix, and the full text of the
/// static and the permanent one.
struct Snapshot {
    records: BTreeMap<String, Value>,
    static_text: String,
    perm_text: String,
}

fn snapshot(api: &Api, perm: &Permanent) -> Snapshot {
    let records = api
        .list(&format!(
            "/api/ipam/ip-addresses/?prefix={PREFIX}&exclude_m2m=false"
        ))
        .into_iter()
        .map(|r| (r["id"].as_str().unwrap().to_owned(), r))
        .collect();
    Snapshot {
        records,
        static_text: api.static_snapshot().1,
        perm_text: perm.text(),
    }
}

fn rec_mac(r: &Value) -> String {
    lower(
        r["custom_fields"]["pydhcp_mac"]
            .as_str()
            .unwrap_or_default(),
    )
}

/// Nothing deleted, only `dhcp` records changed or added, the static and
/// permanent records the same. `ours`: MACs of this test (a missing
/// record of another MAC was someone else's doing, and is only reported).
fn check_nothing_damaged(before: &Snapshot, after: &Snapshot, ours: &HashSet<String>) {
    // The harness's lock holds within one test binary only.
    let foreign: BTreeMap<&str, String> = before
        .records
        .values()
        .chain(after.records.values())
        .filter(|r| r["type"] == "dhcp" && !ours.contains(&rec_mac(r)))
        .map(|r| (r["address"].as_str().unwrap_or("?"), rec_mac(r)))
        .collect();
    assert!(
        foreign.is_empty(),
        "someone else used the test prefix during this test (leases {foreign:?}): the \
         records cannot be compared; run this test alone"
    );
    assert_eq!(
        after.static_text, before.static_text,
        "the static address record changed"
    );
    assert_eq!(
        after.perm_text, before.perm_text,
        "the permanent address record changed"
    );
    for (id, b) in &before.records {
        let addr = b["address"].as_str().unwrap_or("?");
        let Some(a) = after.records.get(id) else {
            if b["type"] == "dhcp" && !ours.contains(&rec_mac(b)) {
                eprintln!(
                    "NOTE: {addr} ({}) of another MAC was removed, not by this test's daemon",
                    rec_mac(b)
                );
                continue;
            }
            panic!("record {addr} ({id}) was deleted: {b}");
        };
        if b["type"] == "dhcp" {
            assert_eq!(a["type"], "dhcp", "{addr} changed type: {a}");
            assert_eq!(a["address"], b["address"], "{id} changed address: {a}");
            if ours.contains(&rec_mac(b)) {
                assert_eq!(rec_mac(a), rec_mac(b), "{addr} changed hands: {b} -> {a}");
            }
        } else {
            assert_eq!(a, b, "the {} record {addr} changed", b["type"]);
        }
    }
    for (id, a) in &after.records {
        if !before.records.contains_key(id) {
            assert_eq!(a["type"], "dhcp", "a non-dhcp record appeared: {a}");
        }
    }
}

fn unix_at(at: Instant) -> i64 {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let ago = Instant::now().saturating_duration_since(at);
    now.saturating_sub(ago).as_secs() as i64
}

/// Every ACK seen on the links has its record in Nautobot with the
/// client's MAC; for dynamic leases, a write of that record with the
/// client's MAC and the full lease passed the proxy, and Nautobot had
/// answered it, before the ACK was on the wire. The API calls never touch
/// the static or permanent records, never delete, and create only `dhcp`
/// records.
fn check_acks(replies: &[Seen], calls: &[Call], after: &Snapshot, perm_id: &str) -> usize {
    let static_id = after
        .records
        .iter()
        .find(|(_, r)| r["address"] == format!("{STATIC_IP}/24"))
        .map(|(id, _)| id.clone())
        .expect("the static record");
    for c in calls {
        assert!(
            matches!(c.method.as_str(), "GET" | "POST" | "PATCH"),
            "the daemon sent {} {}",
            c.method,
            c.path
        );
        if c.method == "POST" && c.path.starts_with("/api/ipam/ip-addresses/") {
            for b in c.items() {
                assert_eq!(b["type"], "dhcp", "created a non-dhcp address: {b}");
                assert!(
                    b["address"] != format!("{STATIC_IP}/24")
                        && b["address"] != format!("{PERM_IP}/24"),
                    "created {b}"
                );
            }
        }
        if c.method == "PATCH" {
            assert!(
                c.path.starts_with("/api/ipam/ip-addresses/"),
                "the daemon patched {}",
                c.path
            );
            for (id, _) in c.patched() {
                assert!(id != static_id && id != perm_id, "the daemon patched {id}");
                if let Some(r) = after.records.get(&id) {
                    assert_eq!(r["type"], "dhcp", "PATCH of a non-dhcp record: {r}");
                }
            }
        }
    }
    let mut n = 0;
    for s in replies.iter().filter(|s| s.kind == Some(MessageType::Ack)) {
        n += 1;
        let a = s.yiaddr;
        let at = after
            .records
            .values()
            .filter(|r| r["address"] == format!("{a}/24"))
            .collect::<Vec<_>>();
        assert_eq!(at.len(), 1, "ACK of {a} to {}: records {at:?}", s.mac);
        let r = at[0];
        if a == STATIC_IP {
            assert_eq!(s.mac, STATIC_MAC, "{a} acknowledged to {}", s.mac);
            continue;
        }
        if r["type"] != "dhcp" {
            assert_eq!(rec_mac(r), s.mac, "permanent {a} acknowledged to {}", s.mac);
            continue;
        }
        let id = r["id"].as_str().unwrap();
        let ack_unix = unix_at(s.at);
        // Single or bulk: the item that wrote this record.
        let written = calls.iter().any(|c| {
            let bodies: Vec<Value> = match c.method.as_str() {
                "POST" if c.path == "/api/ipam/ip-addresses/" => c
                    .items()
                    .into_iter()
                    .filter(|b| b["address"] == format!("{a}/24"))
                    .collect(),
                "PATCH" => c
                    .patched()
                    .into_iter()
                    .filter(|(i, _)| i == id)
                    .map(|(_, b)| b)
                    .collect(),
                _ => Vec::new(),
            };
            matches!(c.upstream, Some(200 | 201))
                && c.answered.is_some_and(|t| t < s.at)
                && bodies.iter().any(|b| {
                    let cf = &b["custom_fields"];
                    lower(cf["pydhcp_mac"].as_str().unwrap_or_default()) == s.mac
                        && cf["pydhcp_expire"]
                            .as_str()
                            .and_then(parse_utc)
                            .is_some_and(|e| e >= ack_unix + i64::from(LEASE) - 120)
                })
        });
        assert!(
            written,
            "ACK of {a} to {} (xid {:#x}) without a prior write of its lease; record {r}",
            s.mac, s.xid
        );
    }
    n
}

/// The final state in Nautobot of the last lease each MAC was acknowledged.
fn check_live_records(api: &Api, replies: &[Seen]) {
    let mut last: HashMap<String, Ipv4Addr> = HashMap::new();
    for s in replies.iter().filter(|s| s.kind == Some(MessageType::Ack)) {
        last.insert(s.mac.clone(), s.yiaddr);
    }
    for (mac, a) in last {
        if a == STATIC_IP || a == PERM_IP {
            continue;
        }
        let r = api
            .address(a)
            .unwrap_or_else(|| panic!("no record for {a}"));
        assert_eq!(rec_mac(&r), mac, "{a}: {r}");
        let e = r["custom_fields"]["pydhcp_expire"]
            .as_str()
            .and_then(parse_utc)
            .unwrap_or_else(|| panic!("{a}: no expiry: {r}"));
        assert!(
            e > unix_now() + i64::from(LEASE) / 2,
            "{a}: the lease of {mac} is not live: {r}"
        );
    }
}

// ---- clients ----

fn no_nak(l: &Lease) {
    assert!(!l.log.contains("DHCPNAK"), "the client saw a NAK\n{l}");
}

/// A fresh DORA with dhclient (no lease file).
fn dora(g: &Guest, timeout: u32) -> Lease {
    let l = g.dhclient(&dhclient_opts(g, timeout, "", None, &[]));
    l.expect_bound();
    no_nak(&l);
    l
}

/// dhclient starting in INIT-REBOOT with the lease `addr`.
fn reboot(g: &Guest, addr: Ipv4Addr, server: Ipv4Addr, extra_conf: &str) -> Lease {
    g.dhclient(&dhclient_opts(
        g,
        60,
        extra_conf,
        Some(lease_text(addr, server, LEASE)),
        &[],
    ))
}

/// The number in `(N similar suppressed)`, 0 without one.
fn suppressed_in(line: &str) -> u64 {
    line.rsplit_once(" similar suppressed)")
        .and_then(|(pre, _)| pre.rsplit_once('('))
        .and_then(|(_, n)| n.parse().ok())
        .unwrap_or(0)
}

fn assert_daemon_sane(d: &RelayDaemon) {
    d.assert_alive();
    let log = d.log();
    assert!(!log.contains("panicked"), "the daemon panicked:\n{log}");
}

// ---- the tests ----

/// What a failing fault must look like in the daemon's counters and log.
struct Expect {
    /// The backend error kind (counter name).
    kind: &'static str,
    /// Part of the warning line.
    text: &'static str,
    /// Failed jobs at least, during the fault.
    min_failures: u64,
    /// Warning lines at least (a fault of 20 s with failures all along
    /// crosses the 10 s interval).
    min_lines: usize,
}

/// Healthy, then `phases` of faults (about 20 s in all), then healthy:
/// see the file's documentation for what is checked.
fn failing_backend(test: &str, tag: u8, phases: &[(Fault, Duration)], expect: Expect) {
    let started = Instant::now();
    let Some(nb) = nautobot(test) else {
        return;
    };
    let Some(mut rl) = RelayLab::new(test, 1) else {
        return;
    };
    let perm = Permanent::create();
    let proxy = FaultProxy::start(&rl.d(0).ns.name);
    let url = proxy.url.clone();
    assert!(
        rl.d(0)
            .start(&RelayConfig::default(), &["-a", "--nautobot-url", &url]),
        "preparation through the proxy failed"
    );
    let d = &rl.daemons[0];
    let server = d.addr;
    let ga = rl.guest("tapa", MAC_A);
    let gs = rl.guest("taps", STATIC_MAC);
    let gp = rl.guest("tapp", MAC_P);
    let gn = rl.guest("tapn", MAC_N);
    let gb = rl.guest("tapb", "02:bb:fa:00:00:00");
    let sn = Sniffers::start(&[&ga, &gs, &gp, &gn, &gb]);

    // Healthy: a dynamic, a static and a permanent lease by dhclient, two
    // burst clients, and a NAK for the probe.
    let (la, ls, lp) = thread::scope(|s| {
        let a = s.spawn(|| dora(&ga, 20));
        let st = s.spawn(|| dora(&gs, 20));
        let p = s.spawn(|| dora(&gp, 20));
        (a.join().unwrap(), st.join().unwrap(), p.join().unwrap())
    });
    assert_eq!(la.ip(), Some(ip(5)), "{la}");
    assert_eq!(ls.ip(), Some(STATIC_IP), "{ls}");
    assert_eq!(lp.ip(), Some(PERM_IP), "{lp}");
    let mut known = Burst::new(&gb, 2, tag);
    known.dora(
        Retransmit::Every(Duration::from_secs(1)),
        Duration::from_secs(30),
    );
    known.assert_all_bound_cleanly("healthy DORA");
    let known_addrs: Vec<Option<Ipv4Addr>> = known.clients.iter().map(|c| c.addr).collect();
    let mut probe = Probe::new(&gb);
    probe.expect_nak(&sn, Duration::from_secs(10));
    // An OFFER writes the lease from as late as its REQUEST may come (10 s
    // on): until then a renewal has nothing to write and needs no backend.
    // Past it, every renewal during the fault is a write that fails.
    thread::sleep(Duration::from_secs(11));

    let before = snapshot(&nb.api, &perm);
    let c0 = d.counters();
    assert_eq!(c0.errors(), 0, "failures while healthy\n{c0}");
    let naks0 = c0.answer("DHCPNAK");

    // The fault. Meanwhile: six new clients (DORA), the two known ones
    // renewing (REBINDING), the three dhclients rebooting with their
    // leases, the probe; everyone retransmits about every second.
    let total: Duration = phases.iter().map(|p| p.1).sum();
    let deadline = total + Duration::from_secs(45);
    let fault_start = Instant::now();
    proxy.set(phases[0].0);
    let mut fresh = Burst::new(&gb, 6, tag + 1);
    let every = Retransmit::Every(Duration::from_secs(1));
    let (ra, rs, rp, c1, t_switch, fresh_took) = thread::scope(|s| {
        let f = s.spawn(|| fresh.dora(every, deadline));
        let k = s.spawn(|| known.rebind(every, deadline));
        let a = s.spawn(|| reboot(&ga, ip(5), server, ""));
        let st = s.spawn(|| reboot(&gs, STATIC_IP, server, ""));
        let p = s.spawn(|| reboot(&gp, PERM_IP, server, ""));
        for (fault, dur) in phases {
            proxy.set(*fault);
            let end = Instant::now() + *dur;
            while Instant::now() < end {
                probe.send();
                thread::sleep(Duration::from_secs(1));
            }
        }
        let c1 = d.counters();
        let t_switch = Instant::now();
        proxy.set(Fault::Pass);
        let took = f.join().unwrap();
        k.join().unwrap();
        (
            a.join().unwrap(),
            st.join().unwrap(),
            p.join().unwrap(),
            c1,
            t_switch,
            took,
        )
    });
    let recovered = t_switch.elapsed();

    // Healthy again: a new client, and the probe is NAKed again.
    let t_new = Instant::now();
    let ln = dora(&gn, 30);
    let new_took = t_new.elapsed();
    let nak_again = probe.expect_nak(&sn, Duration::from_secs(30));
    proxy.wait_idle(Duration::from_secs(30));
    let c2 = d.counters();
    assert_daemon_sane(d);
    let after = snapshot(&nb.api, &perm);

    let failures = |c: &Counters| c.backend_errors.get(expect.kind).copied().unwrap_or(0);
    let warnings = d.log_lines(WARN_NEEDLE);
    let calls = proxy.calls();
    let faulted = calls.iter().filter(|c| c.fault != Fault::Pass).count();
    // Writes Nautobot did while the daemon got a fault for them.
    let lost_writes = calls
        .iter()
        .filter(|c| {
            c.fault != Fault::Pass
                && matches!(c.method.as_str(), "POST" | "PATCH")
                && c.path.starts_with("/api/ipam/ip-addresses/")
                && matches!(c.upstream, Some(200 | 201))
        })
        .count();
    let replies = sn.replies();
    eprintln!(
        "RESULT {test}: {} faulted API calls ({lost_writes} of them writes that Nautobot did); \
         {} failed jobs during the fault ({} in all); \
         {} warning lines: {warnings:#?}\n  clients that retried through the fault bound \
         {:.1} s after it ended (6 new: {:.1} s after their start); a new client's DORA \
         then took {:.1} s; the probe was NAKed again after {:.1} s; test time {:.0} s\n\
         counters:\n{c2}",
        faulted,
        failures(&c1) - failures(&c0),
        failures(&c2),
        warnings.len(),
        recovered.as_secs_f64(),
        fresh_took.as_secs_f64(),
        new_took.as_secs_f64(),
        nak_again.as_secs_f64(),
        started.elapsed().as_secs_f64(),
    );

    // 1. No NAK, indeed no reply at all, while the backend failed.
    let during: Vec<&Seen> = replies
        .iter()
        .filter(|s| s.at > fault_start && s.at < t_switch)
        .collect();
    assert!(
        during.is_empty(),
        "replies while every backend call failed: {during:#?}"
    );
    assert_eq!(c1.answer("DHCPNAK"), naks0, "NAK during the fault\n{c1}");
    let probe_xids: HashSet<u32> = probe.xids.iter().map(|x| x.0).collect();
    for s in replies.iter().filter(|s| s.kind == Some(MessageType::Nak)) {
        assert!(
            probe_xids.contains(&s.xid),
            "a NAK to a client that asked for its own address: {s:?}"
        );
    }
    for l in [&ra, &rs, &rp, &ln] {
        no_nak(l);
    }
    assert_eq!(fresh.clients.iter().map(|c| c.naks).sum::<u32>(), 0);
    assert_eq!(known.clients.iter().map(|c| c.naks).sum::<u32>(), 0);

    // 2. The failure logged, rate limited, with counts.
    let during_fault = failures(&c1) - failures(&c0);
    assert!(
        during_fault >= expect.min_failures,
        "only {during_fault} failed jobs during the fault\n{c1}"
    );
    for (k, v) in &c2.backend_errors {
        assert!(
            *k == expect.kind || *v == 0,
            "backend errors of another kind ({k}: {v})\n{c2}"
        );
    }
    assert!(
        warnings.len() >= expect.min_lines && warnings.len() <= 3,
        "{} failed jobs must make 1 warning per 10 s: {warnings:#?}",
        failures(&c2)
    );
    for w in &warnings {
        assert!(
            w.contains(expect.text) && w.contains("no answer sent"),
            "unclear warning: {w}"
        );
    }
    for w in warnings.iter().skip(1) {
        assert!(
            suppressed_in(w) > 0,
            "a repeated warning must count the suppressed ones: {w}"
        );
    }
    let reported: u64 =
        warnings.len() as u64 + warnings.iter().map(|w| suppressed_in(w)).sum::<u64>();
    assert!(
        reported <= failures(&c2),
        "warnings account for {reported} failures, the counters for {}",
        failures(&c2)
    );

    // 3. Recovered without a restart.
    fresh.assert_all_bound_cleanly("new clients through the fault");
    fresh.assert_unique_addresses();
    known.assert_all_bound_cleanly("renewals through the fault");
    let now_addrs: Vec<Option<Ipv4Addr>> = known.clients.iter().map(|c| c.addr).collect();
    assert_eq!(now_addrs, known_addrs, "known clients changed address");
    for (l, want) in [(&ra, ip(5)), (&rs, STATIC_IP), (&rp, PERM_IP)] {
        l.expect_bound();
        assert_eq!(l.ip(), Some(want), "{l}");
    }
    let taken: HashSet<Ipv4Addr> = fresh
        .clients
        .iter()
        .chain(&known.clients)
        .filter_map(|c| c.addr)
        .chain([ip(5), STATIC_IP, PERM_IP])
        .collect();
    let n_addr = ln.ip().unwrap();
    assert!(!taken.contains(&n_addr), "{n_addr} given twice\n{ln}");

    // 4. Nothing lost or damaged; every ACK backed by its record.
    let mut ours: HashSet<String> = [MAC_A, MAC_N, MAC_P, STATIC_MAC]
        .iter()
        .map(|m| m.to_string())
        .collect();
    ours.insert(fmt_mac(&PROBE_MAC));
    for c in fresh.clients.iter().chain(&known.clients) {
        ours.insert(fmt_mac(&c.mac));
    }
    check_nothing_damaged(&before, &after, &ours);
    let acks = check_acks(&replies, &calls, &after, &perm.id);
    check_live_records(&nb.api, &replies);
    assert!(acks >= 14, "too few ACKs seen ({acks}): {replies:#?}");
}

/// Every call answered HTTP 500 (Nautobot's JSON error for a lost
/// database) for 20 s.
#[test]
fn nautobot_answers_500() {
    failing_backend(
        "nautobot_answers_500",
        0x41,
        &[(Fault::Status500, Duration::from_secs(20))],
        Expect {
            kind: "http",
            text: "HTTP 500",
            min_failures: 40,
            min_lines: 2,
        },
    );
}

/// Every call answered 200 with garbage: 10 s an HTML page, then 10 s
/// Nautobot's real answers cut in half (writes reach Nautobot, the daemon
/// cannot read the answer).
#[test]
fn nautobot_answers_garbage() {
    failing_backend(
        "nautobot_answers_garbage",
        0x43,
        &[
            (Fault::NotJson, Duration::from_secs(10)),
            (Fault::TruncatedJson, Duration::from_secs(10)),
        ],
        Expect {
            kind: "bad_answer",
            text: "unexpected answer: not JSON",
            min_failures: 40,
            min_lines: 2,
        },
    );
}

/// The token refused: every call answered 403 `{"detail":"Invalid token"}`.
#[test]
fn nautobot_refuses_the_token() {
    failing_backend(
        "nautobot_refuses_the_token",
        0x45,
        &[(Fault::Forbidden, Duration::from_secs(20))],
        Expect {
            kind: "auth",
            text: "authentication refused (HTTP 403)",
            min_failures: 40,
            min_lines: 2,
        },
    );
}

/// Every call answered after 32 s, past the daemon's `[nautobot] timeout`
/// (10 s by default) and past the three timeouts a bulk call may take: jobs
/// time out. Nautobot still does the work late.
#[test]
fn nautobot_hangs_past_the_timeout() {
    failing_backend(
        "nautobot_hangs_past_the_timeout",
        0x47,
        &[(
            Fault::Delay(Duration::from_secs(32)),
            Duration::from_secs(20),
        )],
        Expect {
            kind: "timeout",
            text: "timed out",
            // A call of one job times out after 10 s, a bulk call after
            // 30 s: within the 20 s at least the static and permanent
            // renewals and the probe's read fail.
            min_failures: 2,
            min_lines: 1,
        },
    );
}

/// Every call delayed 5 s (less than the 10 s timeout): the backend is slow,
/// not failing. Renewals of leases the daemon knows cost one call, so they
/// are answered after one delay; new clients get their leases after their
/// four or five calls; nobody gets a NAK; nothing fails, so nothing is
/// logged as failed; and once Nautobot is fast again a new client is served
/// at once.
#[test]
fn nautobot_slow_5s_per_call() {
    let test = "nautobot_slow_5s_per_call";
    let started = Instant::now();
    let delay = Duration::from_secs(5);
    let Some(nb) = nautobot(test) else {
        return;
    };
    let Some(mut rl) = RelayLab::new(test, 1) else {
        return;
    };
    let perm = Permanent::create();
    let proxy = FaultProxy::start(&rl.d(0).ns.name);
    let url = proxy.url.clone();
    assert!(rl
        .d(0)
        .start(&RelayConfig::default(), &["-a", "--nautobot-url", &url]));
    let d = &rl.daemons[0];
    let server = d.addr;
    let ga = rl.guest("tapa", MAC_A);
    let gs = rl.guest("taps", STATIC_MAC);
    let gp = rl.guest("tapp", MAC_P);
    let gn = rl.guest("tapn", MAC_N);
    let gb = rl.guest("tapb", "02:bb:fa:00:00:00");
    let sn = Sniffers::start(&[&ga, &gs, &gp, &gn, &gb]);
    let tag = 0x49;

    thread::scope(|s| {
        let a = s.spawn(|| dora(&ga, 20).ip());
        let st = s.spawn(|| dora(&gs, 20).ip());
        let p = s.spawn(|| dora(&gp, 20).ip());
        assert_eq!(a.join().unwrap(), Some(ip(5)));
        assert_eq!(st.join().unwrap(), Some(STATIC_IP));
        assert_eq!(p.join().unwrap(), Some(PERM_IP));
    });
    let every = Retransmit::Every(Duration::from_secs(1));
    let mut known = Burst::new(&gb, 2, tag);
    known.dora(every, Duration::from_secs(30));
    known.assert_all_bound_cleanly("healthy DORA");
    let mut probe = Probe::new(&gb);
    probe.expect_nak(&sn, Duration::from_secs(10));
    // An OFFER writes the lease from as late as its REQUEST may come (10 s
    // on): until then a renewal has nothing to write. Past it, each
    // renewal below is a write.
    thread::sleep(Duration::from_secs(11));
    let before = snapshot(&nb.api, &perm);
    let c0 = d.counters();

    // Slow. First the renewals of known leases, all at once: the three
    // dhclients reboot (waiting up to 20 s for the ACK before they fall
    // back to DISCOVER), the two burst clients rebind.
    proxy.set(Fault::Delay(delay));
    let slow_start = Instant::now();
    let (ra, rs, rp) = thread::scope(|s| {
        let k = s.spawn(|| known.rebind(every, Duration::from_secs(40)));
        let a = s.spawn(|| reboot(&ga, ip(5), server, "reboot 20;\n"));
        let st = s.spawn(|| reboot(&gs, STATIC_IP, server, "reboot 20;\n"));
        let p = s.spawn(|| reboot(&gp, PERM_IP, server, "reboot 20;\n"));
        k.join().unwrap();
        (a.join().unwrap(), st.join().unwrap(), p.join().unwrap())
    });
    let c1 = d.counters();
    known.assert_all_bound_cleanly("renewals with a slow Nautobot");
    let (_, _, known_max) = known.took_stats();
    for (l, want) in [(&ra, ip(5)), (&rs, STATIC_IP), (&rp, PERM_IP)] {
        l.expect_bound();
        no_nak(l);
        assert_eq!(l.ip(), Some(want), "{l}");
        assert_eq!(
            l.reasons.last().map(String::as_str),
            Some("REBOOT"),
            "not answered within dhclient's 20 s of INIT-REBOOT\n{l}"
        );
    }
    let renew_calls = c1.calls() - c0.calls();
    let renew_times: Vec<f64> = [&ra, &rs, &rp]
        .iter()
        .map(|l| l.elapsed.as_secs_f64())
        .chain([known_max.as_secs_f64()])
        .collect();

    // Then new clients: a dhclient and three burst clients, at once.
    let t_new = Instant::now();
    let mut fresh = Burst::new(&gb, 3, tag + 1);
    let (ln, fresh_took) = thread::scope(|s| {
        let f = s.spawn(|| {
            fresh.dora(
                Retransmit::Every(Duration::from_secs(2)),
                Duration::from_secs(55),
            )
        });
        // dhclient gives up REQUESTING after its `reboot` time (3 s in the
        // harness's config, 10 s by default) and starts over with DISCOVER;
        // a REQUEST here costs two calls (10 s).
        let n = s.spawn(|| {
            let l = gn.dhclient(&dhclient_opts(&gn, 60, "reboot 20;\n", None, &[]));
            l.expect_bound();
            no_nak(&l);
            l
        });
        (n.join().unwrap(), f.join().unwrap())
    });
    let new_took = t_new.elapsed();
    let c2 = d.counters();
    let slow_end = Instant::now();
    fresh.assert_all_bound_cleanly("new clients with a slow Nautobot");
    fresh.assert_unique_addresses();

    // Fast again: one more new client, served at once.
    proxy.set(Fault::Pass);
    let mut last = Burst::new(&gb, 1, tag + 2);
    let last_took = last.dora(every, Duration::from_secs(20));
    last.assert_all_bound_cleanly("a new client after the slow period");
    probe.expect_nak(&sn, Duration::from_secs(10));
    proxy.wait_idle(Duration::from_secs(30));
    let c3 = d.counters();
    assert_daemon_sane(d);
    let after = snapshot(&nb.api, &perm);
    let calls = proxy.calls();
    let replies = sn.replies();
    let warnings = d.log_lines(WARN_NEEDLE);
    eprintln!(
        "RESULT {test}: {:?} per call. Renewals of 5 known leases (3 dhclient INIT-REBOOT, 2 \
         REBINDING): {renew_calls} API calls, answered after {renew_times:.1?} s. New \
         clients: dhclient DORA {:.1} s, 3 burst clients {:.1} s (all in {:.1} s), {} calls \
         ({} jobs). After: a new client in {:.2} s. Failed jobs {}, warning lines {}; test \
         time {:.0} s\ncounters:\n{c3}",
        delay,
        ln.elapsed.as_secs_f64(),
        fresh_took.as_secs_f64(),
        new_took.as_secs_f64(),
        c2.calls() - c1.calls(),
        c2.get("jobs") - c1.get("jobs"),
        last_took.as_secs_f64(),
        c3.errors(),
        warnings.len(),
        started.elapsed().as_secs_f64(),
    );

    // A renewal of a lease the daemon knows is one call: answered after
    // one delay (or two, for the fifth of five jobs on four workers),
    // where a new client's DORA needs several.
    assert!(
        renew_calls <= 7,
        "{renew_calls} API calls for 5 known renewals\n{c1}"
    );
    for t in &renew_times {
        assert!(
            *t >= delay.as_secs_f64() - 0.5 && *t < 2.0 * delay.as_secs_f64() + 4.0,
            "a known renewal took {t:.1} s with {delay:?} per call"
        );
    }
    // Slow is not failed: no errors, no failure warnings, no NAK.
    assert_eq!(c3.errors(), 0, "{c3}");
    assert!(warnings.is_empty(), "{warnings:#?}");
    let probe_xids: HashSet<u32> = probe.xids.iter().map(|x| x.0).collect();
    for s in replies.iter().filter(|s| s.kind == Some(MessageType::Nak)) {
        assert!(
            probe_xids.contains(&s.xid) && (s.at < slow_start || s.at > slow_end),
            "a NAK with a slow Nautobot: {s:?}"
        );
    }
    assert_eq!(c2.answer("DHCPNAK"), c0.answer("DHCPNAK"), "{c2}");
    assert!(
        last_took < Duration::from_secs(5),
        "not fast again after the slow period: {last_took:?}"
    );

    let mut ours: HashSet<String> = [MAC_A, MAC_N, MAC_P, STATIC_MAC]
        .iter()
        .map(|m| m.to_string())
        .collect();
    ours.insert(fmt_mac(&PROBE_MAC));
    for c in fresh
        .clients
        .iter()
        .chain(&known.clients)
        .chain(&last.clients)
    {
        ours.insert(fmt_mac(&c.mac));
    }
    check_nothing_damaged(&before, &after, &ours);
    let acks = check_acks(&replies, &calls, &after, &perm.id);
    check_live_records(&nb.api, &replies);
    assert!(acks >= 12, "too few ACKs seen ({acks}): {replies:#?}");
}

/// Reads work, but every write of an IP address is answered 200 with JSON
/// that is no IP address object (and is not done), for 15 s. The daemon
/// cannot confirm a renewal then, and must stay silent: the address is the
/// client's, and nothing said it was not.
///
/// Fails with the daemon as it is: `NautobotSession::patch` takes a 200
/// whose body is no record for "the record no longer exists" (as a 404), so
/// `confirm` re-reads, finds the client's own record again, writes again,
/// and after its second round answers `NotYours`, which the authoritative
/// daemon sends as a NAK to a client asking for its own address.
#[test]
fn nautobot_write_answered_200_with_other_json() {
    let test = "nautobot_write_answered_200_with_other_json";
    let started = Instant::now();
    let Some(nb) = nautobot(test) else {
        return;
    };
    let Some(mut rl) = RelayLab::new(test, 1) else {
        return;
    };
    let perm = Permanent::create();
    let proxy = FaultProxy::start(&rl.d(0).ns.name);
    let url = proxy.url.clone();
    assert!(rl
        .d(0)
        .start(&RelayConfig::default(), &["-a", "--nautobot-url", &url]));
    let d = &rl.daemons[0];
    let server = d.addr;
    let ga = rl.guest("tapa", MAC_A);
    let gb = rl.guest("tapb", "02:bb:fa:00:00:00");
    let sn = Sniffers::start(&[&ga, &gb]);
    let every = Retransmit::Every(Duration::from_secs(1));

    assert_eq!(dora(&ga, 20).ip(), Some(ip(5)));
    let mut known = Burst::new(&gb, 2, 0x4d);
    known.dora(every, Duration::from_secs(30));
    known.assert_all_bound_cleanly("healthy DORA");
    let known_addrs: Vec<Option<Ipv4Addr>> = known.clients.iter().map(|c| c.addr).collect();
    // Past the 10 s the OFFERs' writes run ahead: the renewals below write.
    thread::sleep(Duration::from_secs(11));
    let before = snapshot(&nb.api, &perm);
    let c0 = d.counters();

    let fault = Duration::from_secs(15);
    let fault_start = Instant::now();
    proxy.set(Fault::WriteNotARecord);
    let (la, c1, t_switch) = thread::scope(|s| {
        let k = s.spawn(|| known.rebind(every, fault));
        let a = s.spawn(|| {
            ga.dhclient(&dhclient_opts(
                &ga,
                fault.as_secs() as u32 - 2,
                "",
                Some(lease_text(ip(5), server, LEASE)),
                &[],
            ))
        });
        thread::sleep(fault);
        let c1 = d.counters();
        let t_switch = Instant::now();
        proxy.set(Fault::Pass);
        k.join().unwrap();
        (a.join().unwrap(), c1, t_switch)
    });
    let replies = sn.replies();
    let naks: Vec<&Seen> = replies
        .iter()
        .filter(|s| s.kind == Some(MessageType::Nak))
        .collect();
    let warnings = d.log_lines(WARN_NEEDLE);
    eprintln!(
        "RESULT {test}: during {fault:?} of writes answered 200 {BODY_NOT_A_RECORD}: {} NAKs \
         seen, daemon NAK counter {} -> {}; backend errors {:?}; {} warning lines; \
         {} API calls; dhclient reasons {:?}; test time {:.0} s so far",
        naks.len(),
        c0.answer("DHCPNAK"),
        c1.answer("DHCPNAK"),
        c1.backend_errors,
        warnings.len(),
        c1.calls() - c0.calls(),
        la.reasons,
        started.elapsed().as_secs_f64(),
    );
    for n in &naks {
        eprintln!("  NAK to {} xid {:#x}", n.mac, n.xid);
    }
    for l in d.log_lines("DHCPNAK") {
        eprintln!("  {l}");
    }
    assert!(
        naks.is_empty() && c1.answer("DHCPNAK") == c0.answer("DHCPNAK"),
        "the daemon NAKed clients asking for their own addresses while Nautobot \
         answered their writes with something that is no record: {naks:#?}"
    );
    no_nak(&la);
    let acked_during = replies
        .iter()
        .filter(|s| s.at > fault_start && s.at < t_switch && s.kind == Some(MessageType::Ack))
        .count();
    assert_eq!(acked_during, 0, "an ACK although no write was done");

    // Healthy again.
    assert_eq!(dora(&ga, 20).ip(), Some(ip(5)));
    known.dora(every, Duration::from_secs(30));
    known.assert_all_bound_cleanly("after the fault");
    let now_addrs: Vec<Option<Ipv4Addr>> = known.clients.iter().map(|c| c.addr).collect();
    assert_eq!(now_addrs, known_addrs, "known clients changed address");
    proxy.wait_idle(Duration::from_secs(30));
    assert_daemon_sane(d);
    let after = snapshot(&nb.api, &perm);
    let mut ours: HashSet<String> = [MAC_A].iter().map(|m| m.to_string()).collect();
    for c in &known.clients {
        ours.insert(fmt_mac(&c.mac));
    }
    check_nothing_damaged(&before, &after, &ours);
    check_acks(&sn.replies(), &proxy.calls(), &after, &perm.id);
    check_live_records(&nb.api, &sn.replies());
}
