//! The Nautobot backend against a real Nautobot, without DHCP: jobs are run
//! directly and what they wrote is read back with plain HTTP.
//!
//! Needs the test Nautobot of `tests/nautobot` (seeded: prefix 192.0.2.0/24
//! with role "Server BMC", device bmc-test-01 with interface bmc0, MAC
//! 14:18:77:aa:bb:01, and the static address 192.0.2.10/24 assigned to it).
//! `NAUTOBOT_URL` and `NAUTOBOT_TOKEN` override the defaults. When Nautobot
//! cannot be reached the tests are skipped with a notice, except under CI,
//! where they fail.
//!
//! While they run, these tests own the `dhcp`-type addresses of 192.0.2.0/24:
//! they delete them before and after each test. They take one lock, so they
//! never run at the same time, and each checks that the static address
//! 192.0.2.10 reads back byte for byte as before.

use std::collections::{BTreeMap, HashSet};
use std::net::{Ipv4Addr, TcpListener};
use std::sync::{Arc, Barrier, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nfdhcpd::backend::nautobot::Nautobot;
use nfdhcpd::backend::{
    Backend, BackendError, BootClient, Client, Job, JobKind, Known, Lease, LeaseKind, NoLease,
    Outcome, DECLINE_HOLD_SECS, OFFER_HOLD_SECS,
};
use nfdhcpd::config::BackendConf;
use nfdhcpd::core::mac::MacAddr;
use serde_json::{json, Value};
use time::macros::format_description;
use time::OffsetDateTime;

const DEFAULT_URL: &str = "http://127.0.0.1:8080";
const DEFAULT_TOKEN: &str = "0123456789abcdef0123456789abcdef01234567";
const PREFIX: &str = "192.0.2.0/24";
const STATIC_MAC: &str = "14:18:77:aa:bb:01";
const LEASE: u32 = 3600;

static LOCK: Mutex<()> = Mutex::new(());

fn url() -> String {
    std::env::var("NAUTOBOT_URL").unwrap_or_else(|_| DEFAULT_URL.to_owned())
}

fn token() -> String {
    std::env::var("NAUTOBOT_TOKEN").unwrap_or_else(|_| DEFAULT_TOKEN.to_owned())
}

fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !matches!(v.as_str(), "" | "0" | "false"))
}

fn ip(n: u8) -> Ipv4Addr {
    Ipv4Addr::new(192, 0, 2, n)
}

fn mac(s: &str) -> MacAddr {
    s.parse().unwrap()
}

/// Wall-clock now, whole seconds (what the daemon's clock would pass in).
fn now() -> SystemTime {
    let s = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    UNIX_EPOCH + Duration::from_secs(s)
}

/// A time as the backend writes it for Nautobot.
fn utc_timestamp(t: SystemTime) -> String {
    let f = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    OffsetDateTime::from(t).format(f).unwrap()
}

/// Plain HTTP to Nautobot, for checking and cleaning up.
struct Api {
    base: String,
    auth: String,
    agent: ureq::Agent,
}

impl Api {
    fn new() -> Api {
        let agent = ureq::Agent::new_with_config(
            ureq::Agent::config_builder()
                .http_status_as_error(false)
                .timeout_global(Some(Duration::from_secs(30)))
                .build(),
        );
        Api {
            base: url(),
            auth: format!("Token {}", token()),
            agent,
        }
    }

    fn get_text(&self, path: &str) -> Result<(u16, String), ureq::Error> {
        let mut r = self
            .agent
            .get(format!("{}{path}", self.base))
            .header("Authorization", &self.auth)
            .header("Accept", "application/json")
            .call()?;
        let status = r.status().as_u16();
        Ok((status, r.body_mut().read_to_string()?))
    }

    fn get(&self, path: &str) -> Value {
        let (status, text) = self.get_text(path).unwrap();
        assert_eq!(status, 200, "GET {path}: {text}");
        serde_json::from_str(&text).unwrap()
    }

    fn send(&self, method: &str, path: &str, body: &Value) -> (u16, Value) {
        let url = format!("{}{path}", self.base);
        let req = match method {
            "POST" => self.agent.post(url),
            "PATCH" => self.agent.patch(url),
            "DELETE" => self.agent.delete(url).force_send_body(),
            _ => unreachable!(),
        };
        let mut r = req
            .header("Authorization", &self.auth)
            .header("Accept", "application/json")
            .header("Content-Type", "application/json")
            .send(body.to_string())
            .unwrap();
        let status = r.status().as_u16();
        let text = r.body_mut().read_to_string().unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// The one IP address object for `addr` in the test prefix.
    fn address(&self, addr: Ipv4Addr) -> Option<Value> {
        let v = self.get(&format!(
            "/api/ipam/ip-addresses/?address={addr}&prefix={PREFIX}&depth=1"
        ));
        let list = v["results"].as_array().unwrap();
        assert!(list.len() <= 1, "{addr} is there {} times", list.len());
        list.first().cloned()
    }

    fn dhcp_records(&self) -> Vec<Value> {
        let v = self.get(&format!(
            "/api/ipam/ip-addresses/?prefix={PREFIX}&type=dhcp&limit=1000"
        ));
        v["results"].as_array().unwrap().clone()
    }

    /// Deletes every dhcp-type address of the test prefix.
    fn clean(&self) {
        let ids: Vec<Value> = self
            .dhcp_records()
            .iter()
            .map(|r| json!({"id": r["id"]}))
            .collect();
        if !ids.is_empty() {
            let (status, body) = self.send("DELETE", "/api/ipam/ip-addresses/", &json!(ids));
            assert_eq!(status, 204, "bulk delete: {body}");
        }
        assert!(self.dhcp_records().is_empty());
    }
}

/// The static lease as Nautobot returns it, to compare before and after.
struct StaticLease {
    path: String,
    before: String,
}

impl StaticLease {
    fn snapshot(api: &Api) -> StaticLease {
        let v = api.get(&format!(
            "/api/ipam/ip-addresses/?address=192.0.2.10&prefix={PREFIX}"
        ));
        let id = v["results"][0]["id"]
            .as_str()
            .expect("seeded static address 192.0.2.10");
        let path = format!("/api/ipam/ip-addresses/{id}/?exclude_m2m=false&depth=1");
        let before = api.get_text(&path).unwrap().1;
        StaticLease { path, before }
    }

    fn unchanged(&self, api: &Api) {
        let after = api.get_text(&self.path).unwrap().1;
        assert_eq!(after, self.before, "the static lease 192.0.2.10 changed");
    }
}

/// The tests' hold on Nautobot: this process's lock, and the file lock
/// every test process that uses Nautobot takes (tests/common/relay.rs).
struct Held {
    _guard: MutexGuard<'static, ()>,
    _file: std::fs::File,
}

fn lock_across_processes() -> std::fs::File {
    use std::os::fd::AsRawFd;
    let path = std::env::temp_dir().join("nfdhcpd-tests-nautobot.lock");
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    // SAFETY: flock on a descriptor we own; released when it is closed.
    let r = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) };
    assert_eq!(r, 0, "flock {}", path.display());
    f
}

/// Serializes the tests (with those of other test programs too) and checks
/// that Nautobot is there: None = skip.
fn setup(test: &str) -> Option<(Held, Api)> {
    let guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let held = Held {
        _guard: guard,
        _file: lock_across_processes(),
    };
    let api = Api::new();
    match api.get_text("/api/") {
        Ok((200, _)) => Some((held, api)),
        other => {
            let why = match other {
                Ok((status, _)) => format!("HTTP {status}"),
                Err(e) => e.to_string(),
            };
            if under_ci() {
                panic!(
                    "{test}: Nautobot at {} is not usable ({why}), and CI is set",
                    url()
                );
            }
            eprintln!(
                "SKIPPED {test}: Nautobot at {} is not usable ({why})",
                url()
            );
            None
        }
    }
}

fn conf(allow_unknown: bool) -> BackendConf {
    BackendConf {
        url: Some(url()),
        timeout_secs: 20,
        allow_unknown_devices: allow_unknown,
        ..BackendConf::default()
    }
}

fn backend(allow_unknown: bool) -> Nautobot {
    Nautobot::new(&conf(allow_unknown), token(), LEASE).unwrap()
}

fn job(kind: JobKind, m: &str, known: Option<Known>, at: SystemTime) -> Job {
    Job {
        id: 1,
        kind,
        client: Client {
            mac: mac(m),
            hostname: Some(format!("client-{}", m.replace(':', ""))),
            origin: ip(1),
            boot: BootClient::None,
        },
        known,
        now: at,
    }
}

/// One OFFER job per MAC, numbered in order, all made at `t`.
fn offers_of<M: AsRef<str>>(macs: &[M], t: SystemTime) -> Vec<Job> {
    macs.iter()
        .enumerate()
        .map(|(i, m)| {
            let mut j = job(JobKind::Offer, m.as_ref(), None, t);
            j.id = i as u64;
            j
        })
        .collect()
}

fn known(l: &Lease) -> Option<Known> {
    Some(Known {
        addr: l.addr,
        kind: l.kind,
        record: l.record.clone(),
        lease: l.clone(),
    })
}

/// Runs a job; returns the outcome, the calls and the time it took.
fn run(nb: &Nautobot, j: &Job) -> (Result<Outcome, BackendError>, u32, Duration) {
    let started = Instant::now();
    let (r, calls) = nb.session().run(j);
    (r, calls, started.elapsed())
}

fn lease(r: (Result<Outcome, BackendError>, u32, Duration)) -> (Lease, u32, Duration) {
    match r {
        (Ok(Outcome::Lease(l)), calls, t) => (l, calls, t),
        other => panic!("no lease: {other:?}"),
    }
}

fn ms(d: Duration) -> u128 {
    d.as_millis()
}

#[test]
fn dora_static_release_and_restart() {
    let Some((_guard, api)) = setup("dora_static_release_and_restart") else {
        return;
    };
    let stat = StaticLease::snapshot(&api);
    api.clean();
    let nb = backend(true);
    assert_eq!(
        nb.prepare().unwrap(),
        1,
        "custom fields exist: one list call"
    );
    let (a, b) = ("02:00:5e:01:00:01", "02:00:5e:01:00:02");

    // First client: 192.0.2.5, held for the offer.
    let t = now();
    let (la, offer_calls, offer_t) = lease(run(&nb, &job(JobKind::Offer, a, None, t)));
    assert_eq!((la.addr, la.kind), (ip(5), LeaseKind::Dynamic));
    assert_eq!(la.network.to_string(), PREFIX);
    assert_eq!(la.gateway, Some(ip(1)));
    assert_eq!(offer_calls, 3, "prefix, read, create");
    let rec = api.address(ip(5)).expect("192.0.2.5 created");
    assert_eq!(rec["address"], "192.0.2.5/24");
    assert_eq!(rec["mask_length"], 24);
    assert_eq!(rec["type"], "dhcp");
    assert_eq!(rec["status"]["name"], "Active");
    assert_eq!(rec["dns_name"], "client-02005e010001");
    assert_eq!(rec["id"].as_str(), la.record.as_deref());
    let cf = &rec["custom_fields"];
    assert_eq!(cf["pydhcp_mac"], a);
    assert_eq!(cf["pydhcp_hostname"], "client-02005e010001");
    // The OFFER writes the whole lease, from as late as its REQUEST may come.
    let offered_until = t + Duration::from_secs(u64::from(LEASE) + OFFER_HOLD_SECS);
    assert_eq!(cf["pydhcp_expire"], utc_timestamp(offered_until));

    // Its REQUEST, with what the daemon knows from the offer: nothing left
    // to write.
    let confirm = JobKind::Confirm {
        addr: ip(5),
        lease_secs: LEASE,
    };
    let (la2, ack_calls, ack_t) = lease(run(&nb, &job(confirm.clone(), a, known(&la), t)));
    assert_eq!((la2.addr, la2.lease_secs), (ip(5), LEASE));
    assert_eq!(ack_calls, 0);
    assert!(offer_calls + ack_calls <= 3, "a new client's DORA");
    let rec = api.address(ip(5)).unwrap();
    assert_eq!(
        rec["custom_fields"]["pydhcp_expire"],
        utc_timestamp(offered_until)
    );
    assert_eq!(rec["custom_fields"]["pydhcp_mac"], a);

    // A renewal later: one PATCH again.
    let t2 = t + Duration::from_secs(1800);
    let (_, renew_calls, renew_t) = lease(run(&nb, &job(confirm.clone(), a, known(&la2), t2)));
    assert_eq!(renew_calls, 1);
    assert_eq!(
        api.address(ip(5)).unwrap()["custom_fields"]["pydhcp_expire"],
        utc_timestamp(t2 + Duration::from_secs(u64::from(LEASE)))
    );

    // Second client: the next address, with the prefix from the cache.
    let (lb, offer2_calls, offer2_t) = lease(run(&nb, &job(JobKind::Offer, b, None, t)));
    assert_eq!(lb.addr, ip(6));
    assert_eq!(offer2_calls, 2, "read, create");
    // Its REQUEST without what the daemon knows (INIT-REBOOT after a restart).
    let confirm_b = JobKind::Confirm {
        addr: ip(6),
        lease_secs: LEASE,
    };
    let (_, cold_ack_calls, cold_ack_t) = lease(run(&nb, &job(confirm_b, b, None, t)));
    assert_eq!(cold_ack_calls, 2, "read, PATCH");

    // The static lease: 192.0.2.10 as it is.
    let (ls, static_calls, static_t) = lease(run(&nb, &job(JobKind::Offer, STATIC_MAC, None, t)));
    assert_eq!((ls.addr, ls.kind), (ip(10), LeaseKind::Static));
    assert_eq!(static_calls, 1, "read only");
    let confirm_s = JobKind::Confirm {
        addr: ip(10),
        lease_secs: LEASE,
    };
    let (_, static_renew_calls, static_renew_t) =
        lease(run(&nb, &job(confirm_s.clone(), STATIC_MAC, known(&ls), t)));
    assert_eq!(static_renew_calls, 1, "one GET of the record");
    let (l, calls, _) = lease(run(&nb, &job(confirm_s, STATIC_MAC, None, t)));
    assert_eq!((l.addr, l.kind, calls), (ip(10), LeaseKind::Static, 1));
    // Another address for the static client is refused.
    let other = JobKind::Confirm {
        addr: ip(7),
        lease_secs: LEASE,
    };
    let (r, _, _) = run(&nb, &job(other, STATIC_MAC, None, t));
    assert_eq!(r.unwrap(), Outcome::NoLease(NoLease::NotYours));
    let rel_s = JobKind::Release { addr: ip(10) };
    let (r, calls, _) = run(&nb, &job(rel_s, STATIC_MAC, known(&ls), t));
    assert_eq!((r.unwrap(), calls), (Outcome::Done, 0));

    // Someone else's live lease is not confirmed to b.
    let steal = JobKind::Confirm {
        addr: ip(5),
        lease_secs: LEASE,
    };
    let (r, _, _) = run(&nb, &job(steal, b, None, t));
    assert_eq!(r.unwrap(), Outcome::NoLease(NoLease::NotYours));

    // RELEASE: expiry now, one PATCH.
    let t3 = now();
    let rel = JobKind::Release { addr: ip(5) };
    let (r, release_calls, release_t) = run(&nb, &job(rel.clone(), a, known(&la2), t3));
    assert_eq!((r.unwrap(), release_calls), (Outcome::Done, 1));
    let rec = api.address(ip(5)).unwrap();
    assert_eq!(rec["custom_fields"]["pydhcp_expire"], utc_timestamp(t3));
    assert_eq!(rec["type"], "dhcp");
    // Without what the daemon knows: read, PATCH.
    let (r, calls, _) = run(&nb, &job(rel, a, None, t3));
    assert_eq!((r.unwrap(), calls), (Outcome::Done, 2));

    // A restarted daemon (new backend, nothing cached) gives a the same address.
    let nb2 = backend(true);
    assert_eq!(nb2.prepare().unwrap(), 1);
    let t4 = now();
    let (l, restart_calls, _) = lease(run(&nb2, &job(JobKind::Offer, a, None, t4)));
    assert_eq!(l.addr, ip(5));
    assert_eq!(l.record, la.record, "the same record, not a new one");
    // The client's own record is offered as it is: no hold is written.
    assert_eq!(restart_calls, 2, "prefix, read");
    assert_eq!(
        api.address(ip(5)).unwrap()["custom_fields"]["pydhcp_expire"],
        utc_timestamp(t3)
    );
    assert_eq!(api.dhcp_records().len(), 2);

    eprintln!(
        "calls: DORA {} (offer {offer_calls} in {} ms, request {ack_calls} in {} ms); \
         warm offer {offer2_calls} in {} ms; renewal {renew_calls} in {} ms; \
         request without known {cold_ack_calls} in {} ms; static offer {static_calls} in {} ms, \
         static renewal {static_renew_calls} in {} ms; release {release_calls} in {} ms",
        offer_calls + ack_calls,
        ms(offer_t),
        ms(ack_t),
        ms(offer2_t),
        ms(renew_t),
        ms(cold_ack_t),
        ms(static_t),
        ms(static_renew_t),
        ms(release_t),
    );
    stat.unchanged(&api);
    api.clean();
}

#[test]
fn two_backends_race_for_one_pool() {
    let Some((_guard, api)) = setup("two_backends_race_for_one_pool") else {
        return;
    };
    let stat = StaticLease::snapshot(&api);
    api.clean();
    const N: usize = 50;
    let backends = [Arc::new(backend(true)), Arc::new(backend(true))];
    for nb in &backends {
        nb.prepare().unwrap();
    }
    let barrier = Arc::new(Barrier::new(N));
    let started = Instant::now();
    let handles: Vec<_> = (0..N)
        .map(|i| {
            let nb = Arc::clone(&backends[i % 2]);
            let barrier = Arc::clone(&barrier);
            thread::spawn(move || {
                let m = format!("02:00:5e:02:00:{i:02x}");
                let mut s = nb.session();
                barrier.wait();
                let t = now();
                let (r, offer_calls) = s.run(&job(JobKind::Offer, &m, None, t));
                let Ok(Outcome::Lease(l)) = r else {
                    panic!("{m}: offer {r:?}");
                };
                let confirm = JobKind::Confirm {
                    addr: l.addr,
                    lease_secs: LEASE,
                };
                let (r, ack_calls) = s.run(&job(confirm, &m, known(&l), t));
                let Ok(Outcome::Lease(l2)) = r else {
                    panic!("{m}: request {r:?}");
                };
                assert_eq!(l2.addr, l.addr);
                (m, l.addr, offer_calls + ack_calls)
            })
        })
        .collect();
    let results: Vec<(String, Ipv4Addr, u32)> =
        handles.into_iter().map(|h| h.join().unwrap()).collect();
    let wall = started.elapsed();

    let addrs: HashSet<Ipv4Addr> = results.iter().map(|r| r.1).collect();
    assert_eq!(addrs.len(), N, "an address went to two clients");
    // What Nautobot holds: one record per address, carrying its client's MAC.
    let mut held = BTreeMap::new();
    for r in api.dhcp_records() {
        let host: Ipv4Addr = r["host"].as_str().unwrap().parse().unwrap();
        assert!(
            held.insert(host, r["custom_fields"]["pydhcp_mac"].clone())
                .is_none(),
            "{host} twice"
        );
    }
    assert_eq!(held.len(), N);
    for (m, a, _) in &results {
        assert_eq!(held[a], json!(m), "{a}");
    }
    // Lowest free first: .5 up, around the static .10.
    let expected: Vec<Ipv4Addr> = (5..=255u8).filter(|n| *n != 10).take(N).map(ip).collect();
    assert_eq!(held.keys().copied().collect::<Vec<_>>(), expected);
    let calls: u32 = results.iter().map(|r| r.2).sum();
    let max = results.iter().map(|r| r.2).max().unwrap();
    eprintln!(
        "race: {N} clients over 2 backends in {} ms; {calls} calls ({:.2} per DORA, max {max})",
        ms(wall),
        f64::from(calls) / N as f64
    );
    stat.unchanged(&api);
    api.clean();
}

/// Two servers behind one relay both answer every client (DHCP failover
/// without a protocol): no address may go to two clients, and a server that
/// loses a create to the other one for the same client offers that address.
#[test]
fn two_backends_answer_the_same_clients() {
    let Some((_guard, api)) = setup("two_backends_answer_the_same_clients") else {
        return;
    };
    let stat = StaticLease::snapshot(&api);
    api.clean();
    const N: usize = 10;
    let backends = [Arc::new(backend(true)), Arc::new(backend(true))];
    for nb in &backends {
        nb.prepare().unwrap();
    }
    let barrier = Arc::new(Barrier::new(2 * N));
    let handles: Vec<_> = (0..2 * N)
        .map(|i| {
            let nb = Arc::clone(&backends[i % 2]);
            let barrier = Arc::clone(&barrier);
            thread::spawn(move || {
                let m = format!("02:00:5e:0a:00:{:02x}", i / 2);
                let mut s = nb.session();
                barrier.wait();
                let (r, calls) = s.run(&job(JobKind::Offer, &m, None, now()));
                let Ok(Outcome::Lease(l)) = r else {
                    panic!("{m}: offer {r:?}");
                };
                (m, l.addr, calls)
            })
        })
        .collect();
    let results: Vec<(String, Ipv4Addr, u32)> =
        handles.into_iter().map(|h| h.join().unwrap()).collect();
    let mut holder = BTreeMap::new();
    let mut per_mac: BTreeMap<String, usize> = BTreeMap::new();
    for r in api.dhcp_records() {
        let host: Ipv4Addr = r["host"].as_str().unwrap().parse().unwrap();
        let m = r["custom_fields"]["pydhcp_mac"]
            .as_str()
            .unwrap()
            .to_owned();
        *per_mac.entry(m.clone()).or_default() += 1;
        assert!(holder.insert(host, m).is_none(), "{host} twice");
    }
    for (m, a, _) in &results {
        assert_eq!(&holder[a], m, "{a} offered to {m}");
    }
    assert_eq!(per_mac.len(), N);
    let same = (0..N)
        .filter(|i| results[2 * i].1 == results[2 * i + 1].1)
        .count();
    let calls: u32 = results.iter().map(|r| r.2).sum();
    eprintln!(
        "failover: {N} clients offered by both backends: {same} got one address from both, {} records, {calls} calls for {} offers",
        holder.len(),
        2 * N
    );
    stat.unchanged(&api);
    api.clean();
}

#[test]
fn unknown_devices_need_allow_unknown_devices() {
    let Some((_guard, api)) = setup("unknown_devices_need_allow_unknown_devices") else {
        return;
    };
    let stat = StaticLease::snapshot(&api);
    api.clean();
    let m = "02:00:5e:03:00:01";
    let strict = backend(false);
    strict.prepare().unwrap();
    let t = now();
    let (r, _, _) = run(&strict, &job(JobKind::Offer, m, None, t));
    assert_eq!(r.unwrap(), Outcome::NoLease(NoLease::UnknownDevice));
    let confirm = JobKind::Confirm {
        addr: ip(5),
        lease_secs: LEASE,
    };
    let (r, _, _) = run(&strict, &job(confirm, m, None, t));
    assert_eq!(r.unwrap(), Outcome::NoLease(NoLease::UnknownDevice));
    assert!(api.dhcp_records().is_empty(), "nothing written");
    // The known device is served.
    let (l, _, _) = lease(run(&strict, &job(JobKind::Offer, STATIC_MAC, None, t)));
    assert_eq!(l.addr, ip(10));
    // So it is when its DISCOVER comes with others': one read finds each
    // client's device (or none).
    let m2 = "02:00:5e:03:00:02";
    let offers = offers_of(&[m, STATIC_MAC, m2], t);
    let (out, _) = strict.session().run_all(&offers);
    assert_eq!(out[0], Ok(Outcome::NoLease(NoLease::UnknownDevice)));
    match &out[1] {
        Ok(Outcome::Lease(l)) => assert_eq!(l.addr, ip(10)),
        other => panic!("{other:?}"),
    }
    assert_eq!(out[2], Ok(Outcome::NoLease(NoLease::UnknownDevice)));
    // Unknown devices are allowed when configured so.
    let open = backend(true);
    let (l, _, _) = lease(run(&open, &job(JobKind::Offer, m, None, t)));
    assert_eq!(l.addr, ip(5));
    // No served prefix for an origin elsewhere.
    let mut j = job(JobKind::Offer, m, None, t);
    j.client.origin = Ipv4Addr::new(198, 51, 100, 1);
    let (r, calls, _) = run(&open, &j);
    assert_eq!(
        (r.unwrap(), calls),
        (Outcome::NoLease(NoLease::NoPrefix), 1)
    );
    stat.unchanged(&api);
    api.clean();
}

#[test]
fn decline_keeps_the_address_out_of_the_pool() {
    let Some((_guard, api)) = setup("decline_keeps_the_address_out_of_the_pool") else {
        return;
    };
    let stat = StaticLease::snapshot(&api);
    api.clean();
    let nb = backend(true);
    nb.prepare().unwrap();
    let (c, d) = ("02:00:5e:04:00:01", "02:00:5e:04:00:02");
    let t = now();
    let (l, _, _) = lease(run(&nb, &job(JobKind::Offer, c, None, t)));
    assert_eq!(l.addr, ip(5));
    let dec = JobKind::Decline { addr: ip(5) };
    let (r, calls, _) = run(&nb, &job(dec, c, known(&l), t));
    assert_eq!((r.unwrap(), calls), (Outcome::Done, 1));
    let rec = api.address(ip(5)).unwrap();
    assert_eq!(rec["type"], "dhcp");
    assert_eq!(rec["custom_fields"]["pydhcp_mac"], Value::Null);
    assert_eq!(
        rec["custom_fields"]["pydhcp_expire"],
        utc_timestamp(t + Duration::from_secs(DECLINE_HOLD_SECS))
    );
    // Neither the decliner nor anyone else gets it during the hold.
    let (l, _, _) = lease(run(&nb, &job(JobKind::Offer, c, None, t)));
    assert_eq!(l.addr, ip(6));
    let (l, _, _) = lease(run(&nb, &job(JobKind::Offer, d, None, t)));
    assert_eq!(l.addr, ip(7));
    // An address nobody holds, declined: recorded so that it is not offered.
    let dec = JobKind::Decline { addr: ip(8) };
    let (r, calls, _) = run(&nb, &job(dec, d, None, t));
    assert_eq!((r.unwrap(), calls), (Outcome::Done, 2));
    let rec = api.address(ip(8)).unwrap();
    assert_eq!(rec["custom_fields"]["pydhcp_mac"], Value::Null);
    let (l, _, _) = lease(run(&nb, &job(JobKind::Offer, "02:00:5e:04:00:03", None, t)));
    assert_eq!(l.addr, ip(9));
    stat.unchanged(&api);
    api.clean();
}

#[test]
fn permanent_lease_is_never_modified() {
    let Some((_guard, api)) = setup("permanent_lease_is_never_modified") else {
        return;
    };
    let stat = StaticLease::snapshot(&api);
    api.clean();
    let p = "02:00:5e:05:00:01";
    let (status, rec) = api.send(
        "POST",
        "/api/ipam/ip-addresses/",
        &json!({"address": "192.0.2.200/24", "namespace": "Global", "status": "Active",
                "type": "host", "custom_fields": {"pydhcp_mac": p}}),
    );
    assert_eq!(status, 201, "{rec}");
    let id = rec["id"].as_str().unwrap().to_owned();
    let path = format!("/api/ipam/ip-addresses/{id}/?exclude_m2m=false&depth=1");
    let before = api.get_text(&path).unwrap().1;

    let nb = backend(true);
    nb.prepare().unwrap();
    let t = now();
    let (l, calls, _) = lease(run(&nb, &job(JobKind::Offer, p, None, t)));
    assert_eq!((l.addr, l.kind, calls), (ip(200), LeaseKind::Permanent, 2));
    let confirm = JobKind::Confirm {
        addr: ip(200),
        lease_secs: LEASE,
    };
    let (l2, calls, _) = lease(run(&nb, &job(confirm.clone(), p, known(&l), t)));
    assert_eq!((l2.addr, calls), (ip(200), 1));
    let (_, calls, _) = lease(run(&nb, &job(confirm, p, None, t)));
    assert_eq!(calls, 1);
    let rel = JobKind::Release { addr: ip(200) };
    let (r, _, _) = run(&nb, &job(rel.clone(), p, None, t));
    assert_eq!(r.unwrap(), Outcome::Done);
    let (r, calls, _) = run(&nb, &job(rel, p, known(&l), t));
    assert_eq!((r.unwrap(), calls), (Outcome::Done, 0));
    let dec = JobKind::Decline { addr: ip(200) };
    let (r, _, _) = run(&nb, &job(dec, p, None, t));
    assert_eq!(r.unwrap(), Outcome::Done);
    assert_eq!(
        api.get_text(&path).unwrap().1,
        before,
        "permanent lease changed"
    );
    assert!(api.dhcp_records().is_empty());

    let (status, _) = api.send("DELETE", "/api/ipam/ip-addresses/", &json!([{"id": id}]));
    assert_eq!(status, 204);
    stat.unchanged(&api);
}

#[test]
fn rest_reads_give_the_same_answers() {
    let Some((_guard, api)) = setup("rest_reads_give_the_same_answers") else {
        return;
    };
    let stat = StaticLease::snapshot(&api);
    api.clean();
    let nb = backend(true).with_rest_reads();
    nb.prepare().unwrap();
    let m = "02:00:5e:06:00:01";
    let t = now();
    let (l, calls, _) = lease(run(&nb, &job(JobKind::Offer, m, None, t)));
    assert_eq!(
        (l.addr, calls),
        (ip(5), 4),
        "prefix, device, addresses, create"
    );
    let confirm = JobKind::Confirm {
        addr: ip(5),
        lease_secs: LEASE,
    };
    // The OFFER wrote the whole lease: its REQUEST writes nothing.
    let (_, calls, _) = lease(run(&nb, &job(confirm, m, known(&l), t)));
    assert_eq!(calls, 0);
    let (l, calls, _) = lease(run(&nb, &job(JobKind::Offer, STATIC_MAC, None, t)));
    assert_eq!((l.addr, l.kind, calls), (ip(10), LeaseKind::Static, 2));
    let (l, _, _) = lease(run(&nb, &job(JobKind::Offer, m, None, t)));
    assert_eq!(l.addr, ip(5));
    stat.unchanged(&api);
    api.clean();
}

#[test]
fn wrong_token_is_an_auth_error() {
    let Some((_guard, api)) = setup("wrong_token_is_an_auth_error") else {
        return;
    };
    let stat = StaticLease::snapshot(&api);
    let bad = "0000000000000000000000000000000000000000".to_owned();
    let nb = Nautobot::new(&conf(true), bad.clone(), LEASE).unwrap();
    let e = nb.prepare().unwrap_err();
    assert_eq!(e, BackendError::Auth(403));
    assert!(!e.to_string().contains(&bad));
    let (r, calls, _) = run(&nb, &job(JobKind::Offer, "02:00:5e:07:00:01", None, now()));
    assert_eq!((r, calls), (Err(BackendError::Auth(403)), 1));
    stat.unchanged(&api);
}

#[test]
fn unreachable_nautobot_is_a_connect_error() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    let c = BackendConf {
        url: Some(format!("http://127.0.0.1:{port}")),
        timeout_secs: 5,
        ..BackendConf::default()
    };
    let nb = Nautobot::new(&c, DEFAULT_TOKEN.into(), LEASE).unwrap();
    assert!(matches!(nb.prepare(), Err(BackendError::Connect(_))));
    let (r, calls) = nb
        .session()
        .run(&job(JobKind::Offer, "02:00:5e:08:00:01", None, now()));
    assert!(matches!(r, Err(BackendError::Connect(_))), "{r:?}");
    assert_eq!(calls, 1);
}

/// Latency of each call the backend makes, with 200 leases in the prefix.
/// `cargo test --test nautobot_backend -- --ignored --nocapture`
#[test]
#[ignore = "benchmark; prints figures"]
fn call_latencies_with_200_leases() {
    let Some((_guard, api)) = setup("call_latencies_with_200_leases") else {
        return;
    };
    let stat = StaticLease::snapshot(&api);
    api.clean();
    let far = utc_timestamp(now() + Duration::from_secs(86400));
    let bulk: Vec<Value> = (0..200u32)
        .map(|i| {
            let n = 20 + i;
            json!({"address": format!("192.0.2.{n}/24"), "namespace": "Global", "status": "Active",
                   "type": "dhcp", "custom_fields": {"pydhcp_mac": format!("02:00:5e:09:01:{i:02x}"),
                   "pydhcp_expire": far, "pydhcp_hostname": format!("bulk{n}")}})
        })
        .collect();
    let (status, body) = api.send("POST", "/api/ipam/ip-addresses/", &json!(bulk));
    assert_eq!(status, 201, "{body}");

    const ROUNDS: usize = 12;
    let median = |mut v: Vec<Duration>| {
        v.sort();
        format!(
            "{} (n={})",
            v.get(v.len() / 2).map_or(0, |d| ms(*d)),
            v.len()
        )
    };
    let gql = backend(true);
    let rest = backend(true).with_rest_reads();
    for nb in [&gql, &rest] {
        nb.prepare().unwrap();
        // Warm the prefix cache and the server's workers.
        for _ in 0..3 {
            lease(run(nb, &job(JobKind::Offer, STATIC_MAC, None, now())));
        }
    }
    let (mut prefix, mut gql_read, mut rest_read, mut post, mut patch, mut get) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    // A sample counts only when the job made the calls it is meant to
    // measure (the prefix cache may expire during the run).
    let keep = |v: &mut Vec<Duration>, calls: u32, want: u32, d: Duration| {
        if calls == want {
            v.push(d);
        }
    };
    for i in 0..ROUNDS {
        let t = now();
        // Cold prefix: a fresh backend, static client (no write).
        let fresh = backend(true);
        fresh.prepare().unwrap();
        let (_, c1, cold) = lease(run(&fresh, &job(JobKind::Offer, STATIC_MAC, None, t)));
        let (ls, c2, warm) = lease(run(&fresh, &job(JobKind::Offer, STATIC_MAC, None, t)));
        assert_eq!((c1, c2), (2, 1));
        prefix.push(cold.saturating_sub(warm));
        gql_read.push(warm);
        let (_, c, r) = lease(run(&rest, &job(JobKind::Offer, STATIC_MAC, None, t)));
        keep(&mut rest_read, c, 2, r);
        let m = format!("02:00:5e:09:02:{i:02x}");
        let (l, c, offer) = lease(run(&fresh, &job(JobKind::Offer, &m, None, t)));
        keep(&mut post, c, 2, offer.saturating_sub(warm));
        let confirm = JobKind::Confirm {
            addr: l.addr,
            lease_secs: LEASE,
        };
        let (_, c, p) = lease(run(&gql, &job(confirm, &m, known(&l), t)));
        keep(&mut patch, c, 1, p);
        let confirm = JobKind::Confirm {
            addr: ip(10),
            lease_secs: LEASE,
        };
        let (_, c, g) = lease(run(&gql, &job(confirm, STATIC_MAC, known(&ls), t)));
        keep(&mut get, c, 1, g);
    }
    eprintln!(
        "median ms over {ROUNDS}, 200+ leases in the prefix: prefix lookup {}, \
         GraphQL read (device + all addresses) {}, REST read (device + addresses depth=1) {}, \
         POST create {}, PATCH renew {}, GET record {}",
        median(prefix),
        median(gql_read),
        median(rest_read),
        median(post),
        median(patch),
        median(get),
    );
    stat.unchanged(&api);
    api.clean();
}

/// Thirty new clients in one batch: one read and one bulk create; their
/// REQUESTs nothing; their renewals one bulk PATCH; their releases another.
/// Every record reads back as its client's.
#[test]
fn a_batch_shares_its_calls() {
    let Some((_guard, api)) = setup("a_batch_shares_its_calls") else {
        return;
    };
    let stat = StaticLease::snapshot(&api);
    api.clean();
    let nb = backend(true);
    nb.prepare().unwrap();
    let mut s = nb.session();
    const N: usize = 30;
    let t = now();
    let macs: Vec<String> = (0..N).map(|i| format!("02:00:5e:03:00:{i:02x}")).collect();
    let offers = offers_of(&macs, t);
    let started = Instant::now();
    let (out, offer_calls) = s.run_all(&offers);
    let offer_t = started.elapsed();
    let leases: Vec<Lease> = out
        .into_iter()
        .map(|o| match o {
            Ok(Outcome::Lease(l)) => l,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(offer_calls, 3, "prefix, one read, one bulk create");
    let addrs: HashSet<Ipv4Addr> = leases.iter().map(|l| l.addr).collect();
    assert_eq!(addrs.len(), N, "an address went to two clients");
    for (m, l) in macs.iter().zip(&leases) {
        let rec = api.address(l.addr).expect("created");
        assert_eq!(rec["custom_fields"]["pydhcp_mac"], json!(m), "{}", l.addr);
        assert_eq!(rec["id"].as_str(), l.record.as_deref());
    }

    let requests = |after: u64, leases: &[Lease]| -> Vec<Job> {
        macs.iter()
            .zip(leases)
            .map(|(m, l)| {
                let confirm = JobKind::Confirm {
                    addr: l.addr,
                    lease_secs: LEASE,
                };
                job(confirm, m, known(l), t + Duration::from_secs(after))
            })
            .collect()
    };
    let (out, calls) = s.run_all(&requests(1, &leases));
    assert_eq!(calls, 0, "the OFFERs wrote the whole lease");
    assert!(out.iter().all(|o| matches!(o, Ok(Outcome::Lease(_)))));

    let started = Instant::now();
    let (out, renew_calls) = s.run_all(&requests(1800, &leases));
    let renew_t = started.elapsed();
    assert_eq!(renew_calls, 1, "one bulk PATCH");
    let renewed: Vec<Lease> = out
        .into_iter()
        .map(|o| match o {
            Ok(Outcome::Lease(l)) => l,
            other => panic!("{other:?}"),
        })
        .collect();
    let until = utc_timestamp(t + Duration::from_secs(1800 + u64::from(LEASE)));
    for l in &renewed {
        assert_eq!(
            api.address(l.addr).unwrap()["custom_fields"]["pydhcp_expire"],
            until
        );
    }

    let releases: Vec<Job> = macs
        .iter()
        .zip(&renewed)
        .map(|(m, l)| {
            job(
                JobKind::Release { addr: l.addr },
                m,
                known(l),
                t + Duration::from_secs(1900),
            )
        })
        .collect();
    let (out, release_calls) = s.run_all(&releases);
    assert_eq!(release_calls, 1, "one bulk PATCH");
    assert!(out.iter().all(|o| *o == Ok(Outcome::Done)), "{out:?}");
    let gone = utc_timestamp(t + Duration::from_secs(1900));
    for l in &renewed {
        assert_eq!(
            api.address(l.addr).unwrap()["custom_fields"]["pydhcp_expire"],
            gone
        );
    }
    eprintln!(
        "RESULT batch of {N}: offers {offer_calls} calls in {} ms, renewals {renew_calls} in {} ms, releases {release_calls}",
        ms(offer_t),
        ms(renew_t)
    );
    stat.unchanged(&api);
    api.clean();
}

/// Offers not taken are given back, but a record another server has
/// confirmed since for the same client (it took that server's offer of the
/// very record, and this daemon missed its REQUEST) is left as it is:
/// expiring it would free an address in use. In a batch: one read, one
/// bulk PATCH; alone: a read and a PATCH.
#[test]
fn a_withdrawal_spares_a_record_another_server_confirmed() {
    let Some((_guard, api)) = setup("a_withdrawal_spares_a_record_another_server_confirmed") else {
        return;
    };
    let stat = StaticLease::snapshot(&api);
    api.clean();
    let nb = backend(true);
    nb.prepare().unwrap();
    let other = backend(true);
    other.prepare().unwrap();
    let mut s = nb.session();
    let t = now();
    let macs: Vec<String> = (1..=4).map(|i| format!("02:00:5e:06:00:{i:02x}")).collect();
    let offers = offers_of(&macs, t);
    let (out, _) = s.run_all(&offers);
    let leases: Vec<Lease> = out
        .into_iter()
        .map(|o| match o {
            Ok(Outcome::Lease(l)) => {
                assert!(l.recorded_until.is_some(), "the OFFER wrote the lease");
                l
            }
            other => panic!("{other:?}"),
        })
        .collect();
    // The other server confirms the records of the second and the fourth
    // client: it writes their expiry from its own clock.
    let confirmed_at = t + Duration::from_secs(5);
    for n in [1, 3] {
        let confirm = JobKind::Confirm {
            addr: leases[n].addr,
            lease_secs: LEASE,
        };
        let (l, _, _) = lease(run(&other, &job(confirm, &macs[n], None, confirmed_at)));
        assert_eq!(l.addr, leases[n].addr);
    }
    let kept = utc_timestamp(confirmed_at + Duration::from_secs(u64::from(LEASE)));
    let withdraw = |n: usize, at: SystemTime| {
        let mut j = job(
            JobKind::Withdraw {
                addr: leases[n].addr,
            },
            &macs[n],
            known(&leases[n]),
            at,
        );
        j.id = n as u64;
        j
    };
    let gone_at = t + Duration::from_secs(11);
    let (out, calls) = s.run_all(&[withdraw(0, gone_at), withdraw(1, gone_at)]);
    assert!(out.iter().all(|o| *o == Ok(Outcome::Done)), "{out:?}");
    assert_eq!(calls, 2, "one read, one bulk PATCH");
    let expire =
        |n: usize| api.address(leases[n].addr).unwrap()["custom_fields"]["pydhcp_expire"].clone();
    assert_eq!(expire(0), json!(utc_timestamp(gone_at)), "withdrawn");
    assert_eq!(
        expire(1),
        json!(kept),
        "confirmed by the other server: kept"
    );
    // Alone, the same.
    let (out, calls) = s.run_all(&[withdraw(2, gone_at)]);
    assert_eq!((out[0].clone(), calls), (Ok(Outcome::Done), 2));
    assert_eq!(expire(2), json!(utc_timestamp(gone_at)));
    let (out, calls) = s.run_all(&[withdraw(3, gone_at)]);
    assert_eq!(
        (out[0].clone(), calls),
        (Ok(Outcome::Done), 1),
        "a read only"
    );
    assert_eq!(expire(3), json!(kept));
    stat.unchanged(&api);
    api.clean();
}
