//! The Netbox backend against `tests/netbox_server.py`, a test double of the
//! Netbox REST API that answers as Netbox 3.x or 4.x does (see its header
//! for where its answers come from). Jobs are run directly, without DHCP;
//! what they wrote is read back from the double, and every call is counted
//! twice: by the backend and by the double's request log.
//!
//! Each test starts its own double (python3, stdlib only) on a free port of
//! 127.0.0.1, with the data set `tests/data/netbox/seed.json`, and runs for
//! the API generations it concerns: 3.7, 4.1 (field selection, no ETags) and
//! 4.6 (ETags and conditional writes, v2 tokens). Without python3 the tests
//! are skipped with a notice, except under CI, where they fail.

use std::io::{BufRead as _, BufReader};
use std::net::{Ipv4Addr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nfdhcpd::backend::netbox::{ApiVersion, Netbox};
use nfdhcpd::backend::{
    Backend, BackendError, BootClient, Client, Job, JobKind, Known, Lease, LeaseKind, NoLease,
    Outcome, DECLINE_HOLD_SECS, OFFER_HOLD_SECS,
};
use nfdhcpd::config::BackendConf;
use nfdhcpd::core::mac::MacAddr;
use serde_json::{json, Value};
use time::macros::format_description;
use time::OffsetDateTime;

const TOKEN: &str = "0123456789abcdef0123456789abcdef01234567";
const V2_TOKEN: &str = "nbt_4F9DAouzURLb.zjebxBPzICiPbWz0Wtx0aQ7RkVXGNiNH2bqs5fLW";
const STATIC_MAC: &str = "14:18:77:aa:bb:01";
const DYN_MAC: &str = "14:18:77:aa:bb:02";
const VM_MAC: &str = "52:54:00:00:00:01";
const LEASE: u32 = 3600;

fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !matches!(v.as_str(), "" | "0" | "false"))
}

fn ip(n: u8) -> Ipv4Addr {
    Ipv4Addr::new(192, 0, 2, n)
}

fn mac(s: &str) -> MacAddr {
    s.parse().unwrap()
}

/// Wall-clock now, whole seconds.
fn now() -> SystemTime {
    let s = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    UNIX_EPOCH + Duration::from_secs(s)
}

/// How the backend writes a time.
fn stamp(t: SystemTime) -> String {
    let f = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]+00:00");
    OffsetDateTime::from(t).format(f).unwrap()
}

/// How Netbox 4.6 stores it in a Date & time custom field.
fn stamp_z(t: SystemTime) -> String {
    let f = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    OffsetDateTime::from(t).format(f).unwrap()
}

#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    auth: String,
    if_match: Option<String>,
}

/// One running test double.
struct Double {
    child: Child,
    url: String,
    agent: ureq::Agent,
}

impl Double {
    /// None when python3 is not there (outside CI).
    fn start(api: &str) -> Option<Double> {
        Double::start_in(api, "UTC")
    }

    /// A double whose Netbox has `TIME_ZONE = time_zone`.
    fn start_in(api: &str, time_zone: &str) -> Option<Double> {
        let root = env!("CARGO_MANIFEST_DIR");
        let spawned = Command::new("python3")
            .arg(format!("{root}/tests/netbox_server.py"))
            .args(["--data", &format!("{root}/tests/data/netbox/seed.json")])
            .args(["--api", api, "--port", "0", "--time-zone", time_zone])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn();
        let mut child = match spawned {
            Ok(c) => c,
            Err(e) if !under_ci() => {
                eprintln!("SKIPPED: cannot run python3 for the Netbox test double: {e}");
                return None;
            }
            Err(e) => panic!("cannot run python3: {e}"),
        };
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line
            .trim()
            .strip_prefix("LISTENING ")
            .unwrap_or_else(|| panic!("test double did not start: {line:?}"))
            .to_owned();
        let agent = ureq::Agent::new_with_config(
            ureq::Agent::config_builder()
                .http_status_as_error(false)
                .timeout_global(Some(Duration::from_secs(10)))
                .build(),
        );
        Some(Double { child, url, agent })
    }

    fn control(&self, path: &str, body: &Value) {
        let r = self
            .agent
            .post(&format!("{}/_test/{path}", self.url))
            .send_json(body)
            .unwrap();
        assert_eq!(r.status(), 200, "control {path}");
    }

    fn fault(&self, f: Value) {
        self.control("faults", &f);
    }

    /// The requests seen since the last call.
    fn seen(&self) -> Vec<Seen> {
        let v: Value = self
            .agent
            .get(&format!("{}/_test/requests", self.url))
            .call()
            .unwrap()
            .body_mut()
            .read_json()
            .unwrap();
        self.control("requests/clear", &json!({}));
        v.as_array()
            .unwrap()
            .iter()
            .map(|r| Seen {
                method: r["method"].as_str().unwrap().to_owned(),
                path: r["path"].as_str().unwrap().to_owned(),
                auth: r["auth"].as_str().unwrap().to_owned(),
                if_match: r["if_match"].as_str().map(str::to_owned),
            })
            .collect()
    }

    fn state(&self) -> Value {
        self.agent
            .get(&format!("{}/_test/state", self.url))
            .call()
            .unwrap()
            .body_mut()
            .read_json()
            .unwrap()
    }

    /// The data set as stored, changed by `f`, served from now on.
    fn edit(&self, f: impl FnOnce(&mut Value)) {
        let mut state = self.state();
        f(&mut state);
        self.control("load", &state);
    }

    /// A GET as the backend's token sees it, headers and all.
    fn get(&self, path: &str) -> (Option<String>, Value) {
        let mut r = self
            .agent
            .get(&format!("{}{path}", self.url))
            .header("Authorization", format!("Token {TOKEN}"))
            .call()
            .unwrap();
        assert_eq!(r.status(), 200, "GET {path}");
        let etag = r
            .headers()
            .get("etag")
            .map(|v| v.to_str().unwrap().to_owned());
        (etag, r.body_mut().read_json().unwrap())
    }

    /// The custom fields of address `id` as stored.
    fn cf(&self, id: u64) -> Value {
        let state = self.state();
        let a = state["ip_addresses"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["id"] == json!(id))
            .unwrap_or_else(|| panic!("no address {id}"))
            .clone();
        a["custom_fields"].clone()
    }

    fn seed() -> Value {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/netbox/seed.json"
        ))
        .unwrap();
        serde_json::from_str(&text).unwrap()
    }
}

impl Drop for Double {
    fn drop(&mut self) {
        // Our own child, by its handle.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn conf(url: &str, allow_unknown: bool) -> BackendConf {
    BackendConf {
        url: Some(url.into()),
        timeout_secs: 5,
        allow_unknown_devices: allow_unknown,
        ..BackendConf::default()
    }
}

fn backend(d: &Double, allow_unknown: bool) -> Netbox {
    Netbox::new(&conf(&d.url, allow_unknown), TOKEN.into(), LEASE).unwrap()
}

fn job(kind: JobKind, m: &str, origin: Ipv4Addr, boot: BootClient, known: Option<Known>) -> Job {
    Job {
        id: 1,
        kind,
        client: Client {
            mac: mac(m),
            hostname: Some("bmc-x".into()),
            origin,
            boot,
        },
        known,
        now: now(),
    }
}

fn offer(m: &str) -> Job {
    job(JobKind::Offer, m, ip(1), BootClient::None, None)
}

fn confirm(m: &str, addr: Ipv4Addr, known: Option<Known>) -> Job {
    job(
        JobKind::Confirm {
            addr,
            lease_secs: LEASE,
        },
        m,
        ip(1),
        BootClient::None,
        known,
    )
}

fn lease_of(r: (Result<Outcome, BackendError>, u32)) -> (Lease, u32) {
    match r {
        (Ok(Outcome::Lease(l)), n) => (l, n),
        other => panic!("no lease: {other:?}"),
    }
}

fn known(l: &Lease) -> Option<Known> {
    Some(Known {
        addr: l.addr,
        kind: l.kind,
        record: l.record.clone(),
        lease: l.clone(),
    })
}

fn paths(seen: &[Seen]) -> Vec<String> {
    seen.iter()
        .map(|s| format!("{} {}", s.method, s.path))
        .collect()
}

/// Runs `f` against a fresh double for each API version.
fn for_versions(versions: &[&str], f: impl Fn(&Double, &str)) {
    for v in versions {
        let Some(d) = Double::start(v) else { return };
        f(&d, v);
    }
}

#[test]
fn static_lease_is_leased_as_is() {
    for_versions(&["3.7", "4.6"], |d, v| {
        let nb = backend(d, false);
        let mut s = nb.session();
        // Cold prefix cache: prefix + gateway, interfaces, the static address, the device.
        let (l, calls) = lease_of(s.run(&offer(STATIC_MAC)));
        assert_eq!(calls, 5, "{v}");
        assert_eq!(l.addr, ip(10));
        assert_eq!(l.kind, LeaseKind::Static);
        assert_eq!(l.network, "192.0.2.0/24".parse().unwrap());
        assert_eq!(l.gateway, Some(ip(1)));
        assert_eq!(l.dns, vec![Ipv4Addr::new(198, 51, 100, 53)]);
        assert_eq!(l.boot, None);
        assert_eq!(l.record.as_deref(), Some("10"));
        assert_eq!(l.lease_secs, LEASE);
        assert_eq!(
            paths(&d.seen()),
            [
                "GET /api/ipam/prefixes/?contains=192.0.2.1&limit=1000",
                "GET /api/ipam/ip-addresses/?parent=192.0.2.0%2F24&tag=gateway&limit=100",
                "GET /api/dcim/interfaces/?mac_address=14%3A18%3A77%3AAA%3ABB%3A01&limit=50",
                "GET /api/ipam/ip-addresses/?interface_id=1&parent=192.0.2.0%2F24&limit=1000",
                "GET /api/dcim/devices/1/",
            ],
            "{v}"
        );
        // Renewal the daemon knows: the interface and its address, no write.
        let (r, calls) = lease_of(s.run(&confirm(STATIC_MAC, ip(10), known(&l))));
        assert_eq!(
            (r.addr, r.kind, calls),
            (ip(10), LeaseKind::Static, 2),
            "{v}"
        );
        assert_eq!(r.dns, l.dns);
        // Without what the daemon knows (INIT-REBOOT after a restart): with the device.
        let (r, calls) = lease_of(s.run(&confirm(STATIC_MAC, ip(10), None)));
        assert_eq!((r.addr, calls), (ip(10), 3), "{v}");
        // Another address than its static one: no.
        let (r, _) = s.run(&confirm(STATIC_MAC, ip(21), None));
        assert_eq!(r, Ok(Outcome::NoLease(NoLease::NotYours)), "{v}");
        // Release of a static lease: nothing to write.
        let rel = job(
            JobKind::Release { addr: ip(10) },
            STATIC_MAC,
            ip(1),
            BootClient::None,
            known(&l),
        );
        assert_eq!(s.run(&rel), (Ok(Outcome::Done), 0), "{v}");
        assert!(d.seen().iter().all(|r| r.method == "GET"), "{v}");
        // Its address in another prefix is not leased there.
        let other = job(
            JobKind::Offer,
            STATIC_MAC,
            Ipv4Addr::new(198, 51, 100, 1),
            BootClient::None,
            None,
        );
        let (l, _) = lease_of(s.run(&other));
        assert_eq!(l.addr, Ipv4Addr::new(198, 51, 100, 12), "{v}");
        assert_eq!(l.kind, LeaseKind::Static);
        // The PXE answer needs the redeploy marks, which bmc-test-01 has.
        for (boot, file) in [
            (BootClient::Bios, "pxelinux.0"),
            (BootClient::Uefi, "grubx64.efi"),
            (BootClient::Ipxe, "http://192.0.2.69/boot.ipxe"),
            (BootClient::UefiHttp, "http://192.0.2.69/uefi/shimx64.efi"),
        ] {
            let (l, _) = lease_of(s.run(&job(JobKind::Offer, STATIC_MAC, ip(1), boot, None)));
            assert_eq!(l.boot.unwrap().file, file, "{v}");
        }
        let (l, _) = lease_of(s.run(&job(
            JobKind::Offer,
            STATIC_MAC,
            ip(1),
            BootClient::Bios,
            None,
        )));
        let b = l.boot.unwrap();
        assert_eq!(
            (b.server, b.server_name.as_deref()),
            (Some(ip(69)), Some("192.0.2.69"))
        );
    });
}

#[test]
fn vm_static_lease() {
    for_versions(&["3.7", "4.6"], |d, v| {
        let nb = backend(d, false);
        let (l, calls) = lease_of(nb.session().run(&offer(VM_MAC)));
        // Prefix + gateway, device interfaces, VM interfaces, address, VM.
        assert_eq!(
            (l.addr, l.kind, calls),
            (ip(14), LeaseKind::Static, 6),
            "{v}"
        );
        assert_eq!(l.dns, vec![ip(153)]);
        let p = paths(&d.seen());
        assert!(p.contains(
            &"GET /api/ipam/ip-addresses/?vminterface_id=1&parent=192.0.2.0%2F24&limit=1000".into()
        ));
        assert!(p.contains(&"GET /api/virtualization/virtual-machines/1/".into()));
    });
}

#[test]
fn dynamic_dora_renew_release() {
    for_versions(&["3.7", "4.1", "4.6"], |d, v| {
        let nb = backend(d, false);
        assert_eq!(nb.prepare(), Ok(2), "{v}");
        assert_eq!(nb.api(), ApiVersion::parse(v));
        d.seen();
        let conditional = v == "4.6";
        let mut s = nb.session();
        let j = offer(DYN_MAC);
        let (l, calls) = lease_of(s.run(&j));
        // Prefix + gateway, interfaces (which count no address of the
        // interface, so none is looked up), pool, claim, device.
        let claim = if conditional { 1 } else { 2 };
        assert_eq!(calls, 5 + claim, "{v}");
        assert_eq!(l.addr, ip(21), "{v}: the lowest unallocated address");
        assert_eq!(l.kind, LeaseKind::Dynamic);
        assert_eq!(l.record.as_deref(), Some("21"));
        assert_eq!(l.gateway, Some(ip(1)));
        // bmc-dyn-01 has no context of its own: the site's, as Netbox renders it.
        assert_eq!(l.dns, vec![ip(54), ip(55)]);
        let seen = d.seen();
        let p = paths(&seen);
        let fields = if v == "3.7" {
            ""
        } else {
            "&fields=id,address,status,custom_fields,last_updated"
        };
        assert!(
            p.contains(
                &"GET /api/dcim/interfaces/?mac_address=14%3A18%3A77%3AAA%3ABB%3A02&limit=50"
                    .into()
            ),
            "{p:?}"
        );
        assert!(p.contains(&format!("GET /api/ipam/ip-addresses/?parent=192.0.2.0%2F24&status=dhcp&limit=1000&offset=0{fields}")), "{p:?}");
        let patch = seen.iter().find(|r| r.method == "PATCH").unwrap();
        assert_eq!(patch.path, "/api/ipam/ip-addresses/21/");
        assert_eq!(patch.if_match.is_some(), conditional, "{v}");
        assert_eq!(patch.auth, format!("Token {TOKEN}"));
        let hold = j.now + Duration::from_secs(OFFER_HOLD_SECS);
        assert_eq!(
            d.cf(21),
            json!({"pydhcp_mac": "14:18:77:AA:BB:02", "pydhcp_expire": stamp(hold), "pydhcp_hostname": "bmc-x"}),
            "{v}"
        );

        // REQUEST with what the daemon knows: one PATCH of the expiry.
        let j = confirm(DYN_MAC, ip(21), known(&l));
        let (r, calls) = lease_of(s.run(&j));
        assert_eq!(
            (r.addr, r.kind, calls),
            (ip(21), LeaseKind::Dynamic, 1),
            "{v}"
        );
        assert_eq!(r.dns, l.dns);
        let full = j.now + Duration::from_secs(u64::from(LEASE));
        assert_eq!(d.cf(21)["pydhcp_expire"], json!(stamp(full)));
        assert_eq!(d.cf(21)["pydhcp_mac"], json!("14:18:77:AA:BB:02"));
        d.seen();

        // A renewal without what the daemon knows (after a restart).
        let (r, calls) = lease_of(s.run(&confirm(DYN_MAC, ip(21), None)));
        assert_eq!(
            (r.addr, calls),
            (ip(21), 4),
            "{v}: interfaces, pool, PATCH, device"
        );

        // RELEASE with what the daemon knows: read, then expire now; the MAC stays.
        let j = job(
            JobKind::Release { addr: ip(21) },
            DYN_MAC,
            ip(1),
            BootClient::None,
            known(&l),
        );
        assert_eq!(s.run(&j), (Ok(Outcome::Done), 2), "{v}");
        assert_eq!(
            (
                d.cf(21)["pydhcp_expire"].clone(),
                d.cf(21)["pydhcp_mac"].clone()
            ),
            (json!(stamp(j.now)), json!("14:18:77:AA:BB:02"))
        );
        // Back after the release: the same address first.
        let (l, _) = lease_of(s.run(&offer(DYN_MAC)));
        assert_eq!(l.addr, ip(21), "{v}");
        // RELEASE without it: the pool read decides.
        d.seen();
        let j = job(
            JobKind::Release { addr: ip(21) },
            DYN_MAC,
            ip(1),
            BootClient::None,
            None,
        );
        assert_eq!(s.run(&j), (Ok(Outcome::Done), 2), "{v}");
        // Someone else's lease is not released.
        let j = job(
            JobKind::Release { addr: ip(20) },
            DYN_MAC,
            ip(1),
            BootClient::None,
            None,
        );
        assert_eq!(s.run(&j).0, Ok(Outcome::NoLease(NoLease::NotYours)));
        assert_eq!(
            d.cf(20)["pydhcp_expire"],
            json!("2099-01-01T00:00:00+00:00")
        );
    });
}

#[test]
fn allocation_order_own_unallocated_expired() {
    for_versions(&["3.7", "4.6"], |d, v| {
        let nb = backend(d, true);
        let mut s = nb.session();
        let mut got = Vec::new();
        for n in 0..5u8 {
            match s.run(&offer(&format!("02:00:00:00:01:{n:02x}"))).0 {
                Ok(Outcome::Lease(l)) => got.push(l.addr.octets()[3]),
                Ok(Outcome::NoLease(NoLease::PoolExhausted)) => got.push(0),
                other => panic!("{v}: {other:?}"),
            }
        }
        // Unallocated by address (an empty pydhcp_mac counts), then expired
        // longest ago; never the live lease (.20) or the declined one (.25).
        assert_eq!(got, [21, 24, 22, 23, 0], "{v}");
        // The taken-over leases carry their new client, host name and all.
        assert_eq!(
            d.cf(22),
            json!({"pydhcp_mac": "02:00:00:00:01:02", "pydhcp_expire": d.cf(22)["pydhcp_expire"], "pydhcp_hostname": "bmc-x"})
        );
        // The owner of a live lease gets it back, unshortened and unwritten.
        d.seen();
        let (l, calls) = lease_of(s.run(&offer("02:00:00:00:00:20")));
        assert_eq!(l.addr, ip(20));
        assert!(d.seen().iter().all(|r| r.method == "GET"), "{v}");
        assert_eq!(calls, 3, "{v}: interfaces ×2, pool");
        assert_eq!(
            d.cf(20)["pydhcp_expire"],
            json!("2099-01-01T00:00:00+00:00")
        );
        // Someone else's live lease cannot be requested.
        let r = s.run(&confirm("02:00:00:00:00:99", ip(20), None)).0;
        assert_eq!(r, Ok(Outcome::NoLease(NoLease::NotYours)));
    });
}

#[test]
fn unknown_devices() {
    for_versions(&["3.7", "4.6"], |d, v| {
        let m = "02:00:00:00:00:99";
        let nb = backend(d, false);
        let mut s = nb.session();
        // Prefix + gateway, device interfaces, VM interfaces.
        assert_eq!(
            s.run(&offer(m)),
            (Ok(Outcome::NoLease(NoLease::UnknownDevice)), 4),
            "{v}"
        );
        assert_eq!(
            s.run(&confirm(m, ip(21), None)),
            (Ok(Outcome::NoLease(NoLease::UnknownDevice)), 2),
            "{v}"
        );
        assert!(d.seen().iter().all(|r| r.method == "GET"));
        let nb = backend(d, true);
        let mut s = nb.session();
        let (l, _) = lease_of(s.run(&offer(m)));
        // No device: the prefix site's config contexts, merged by weight.
        assert_eq!(
            (l.addr, l.dns.clone(), l.boot),
            (ip(21), vec![ip(54), ip(55)], None),
            "{v}"
        );
        assert!(paths(&d.seen()).contains(
            &"GET /api/extras/config-contexts/?site_id=1&is_active=true&limit=1000".into()
        ));
        // The site's DNS servers are cached with the prefix.
        let (_, calls) = lease_of(s.run(&offer("02:00:00:00:00:98")));
        assert_eq!(calls, 4 + u32::from(v != "4.6"), "{v}");
        // INFORM: DNS only.
        let inform = job(
            JobKind::Inform { addr: ip(77) },
            m,
            ip(1),
            BootClient::Bios,
            None,
        );
        let (l, calls) = lease_of(s.run(&inform));
        assert_eq!((l.addr, l.record, l.boot, calls), (ip(77), None, None, 2));
        assert_eq!(l.dns, vec![ip(54), ip(55)]);
    });
}

#[test]
fn lag_members_are_answered_once() {
    for_versions(&["3.7", "4.6"], |d, v| {
        let nb = backend(d, true);
        let mut s = nb.session();
        // bond0 has the MAC its member eth0 shares: the LAG's address.
        let (l, _) = lease_of(s.run(&offer("3c:fd:fe:00:00:01")));
        assert_eq!((l.addr, l.kind), (ip(11), LeaseKind::Static), "{v}");
        // server-02 is in DC2, which has no contexts: the prefix site's DNS.
        assert_eq!(l.dns, vec![ip(54), ip(55)]);
        // eth1 has its own MAC: no answer at all, not even a dynamic one.
        assert_eq!(
            s.run(&offer("3c:fd:fe:00:00:02")).0,
            Ok(Outcome::NoLease(NoLease::UnknownDevice)),
            "{v}"
        );
        // server-03's bond0 has no MAC: its lowest member's MAC gets it, one
        // more call for the device's interfaces.
        d.seen();
        let (l, calls) = lease_of(s.run(&offer("3c:fd:fe:00:00:11")));
        assert_eq!(
            (l.addr, l.kind, calls),
            (ip(15), LeaseKind::Static, 4),
            "{v}"
        );
        assert!(
            paths(&d.seen()).contains(&"GET /api/dcim/interfaces/?device_id=3&limit=1000".into())
        );
        assert_eq!(
            s.run(&offer("3c:fd:fe:00:00:12")).0,
            Ok(Outcome::NoLease(NoLease::UnknownDevice)),
            "{v}"
        );
    });
}

#[test]
fn gateway_comes_from_the_tag() {
    for_versions(&["3.7", "4.6"], |d, v| {
        let nb = backend(d, true);
        let origin = Ipv4Addr::new(198, 51, 100, 1);
        let (l, _) = lease_of(nb.session().run(&job(
            JobKind::Offer,
            "02:00:00:00:00:99",
            origin,
            BootClient::None,
            None,
        )));
        // No address of 198.51.100.0/24 is tagged: no router option.
        assert_eq!(
            (l.addr, l.gateway),
            (Ipv4Addr::new(198, 51, 100, 50), None),
            "{v}"
        );
        assert_eq!(l.network, "198.51.100.0/24".parse().unwrap());
        // DC2 has no config contexts: the relay's name servers will do.
        assert!(l.dns.is_empty());
        // No tag `gateway` at all: Netbox refuses the filter; no router either.
        let mut seed = Double::seed();
        seed["tags"]
            .as_array_mut()
            .unwrap()
            .retain(|t| t["slug"] != "gateway");
        for a in seed["ip_addresses"].as_array_mut().unwrap() {
            a.as_object_mut().unwrap().remove("tags");
        }
        d.control("load", &seed);
        let nb = backend(d, true);
        let (l, _) = lease_of(nb.session().run(&offer(DYN_MAC)));
        assert_eq!((l.addr, l.gateway), (ip(21), None), "{v}");
    });
}

#[test]
fn decline_holds_the_address() {
    for_versions(&["3.7", "4.6"], |d, v| {
        let nb = backend(d, true);
        let mut s = nb.session();
        let (l, _) = lease_of(s.run(&offer(DYN_MAC)));
        assert_eq!(l.addr, ip(21));
        d.seen();
        let j = job(
            JobKind::Decline { addr: ip(21) },
            DYN_MAC,
            ip(1),
            BootClient::None,
            known(&l),
        );
        assert_eq!(s.run(&j), (Ok(Outcome::Done), 2), "{v}: pool, PATCH");
        let until = j.now + Duration::from_secs(DECLINE_HOLD_SECS);
        assert_eq!(d.cf(21)["pydhcp_mac"], Value::Null);
        assert_eq!(d.cf(21)["pydhcp_expire"], json!(stamp(until)));
        // Neither the decliner's nor free for an hour.
        let (l, _) = lease_of(s.run(&offer(DYN_MAC)));
        assert_eq!(l.addr, ip(24), "{v}");
        // Someone else's address cannot be declined.
        let j = job(
            JobKind::Decline { addr: ip(20) },
            DYN_MAC,
            ip(1),
            BootClient::None,
            None,
        );
        assert_eq!(s.run(&j).0, Ok(Outcome::NoLease(NoLease::NotYours)));
    });
}

#[test]
fn lost_claims_move_on() {
    // Before 4.6 the write is read back: another server's write that lands
    // right after ours wins.
    let Some(d) = Double::start("3.7") else {
        return;
    };
    d.control(
        "interfere",
        &json!({"ip": 21, "when": "after", "custom_fields": {"pydhcp_mac": "02:00:00:00:00:77", "pydhcp_expire": "2099-01-01T00:00:00+00:00"}}),
    );
    let nb = backend(&d, true);
    let (l, calls) = lease_of(nb.session().run(&offer("02:00:00:00:00:99")));
    assert_eq!(l.addr, ip(24));
    // Prefix + gateway, interfaces ×2, pool, PATCH + GET lost, PATCH + GET, site contexts.
    assert_eq!(calls, 10);
    assert_eq!(d.cf(21)["pydhcp_mac"], json!("02:00:00:00:00:77"));
    assert_eq!(d.seen().len(), 10);

    // From 4.6 the write is conditional: a write that landed since our read
    // makes it fail, and the fresh record shows the address is taken.
    let Some(d) = Double::start("4.6") else {
        return;
    };
    d.control(
        "interfere",
        &json!({"ip": 21, "when": "before", "custom_fields": {"pydhcp_mac": "02:00:00:00:00:77", "pydhcp_expire": "2099-01-01T00:00:00+00:00"}}),
    );
    let nb = backend(&d, true);
    let (l, calls) = lease_of(nb.session().run(&offer("02:00:00:00:00:99")));
    assert_eq!(l.addr, ip(24));
    // Prefix + gateway, interfaces ×2, pool, PATCH 412, GET, PATCH, site contexts.
    assert_eq!(calls, 9);
    let seen = d.seen();
    let patches: Vec<&Seen> = seen.iter().filter(|r| r.method == "PATCH").collect();
    assert_eq!(patches.len(), 2);
    assert!(patches
        .iter()
        .all(|p| p.if_match.as_deref().is_some_and(|t| t.starts_with("W/\""))));
    assert_eq!(d.cf(21)["pydhcp_mac"], json!("02:00:00:00:00:77"));
    assert_eq!(d.cf(24)["pydhcp_mac"], json!("02:00:00:00:00:99"));

    // A record changed in a way that leaves it free: claimed after one re-read.
    let Some(d) = Double::start("4.6") else {
        return;
    };
    d.control(
        "interfere",
        &json!({"ip": 21, "when": "before", "custom_fields": {"pydhcp_hostname": "renamed"}}),
    );
    let nb = backend(&d, true);
    let (l, _) = lease_of(nb.session().run(&offer("02:00:00:00:00:99")));
    assert_eq!(l.addr, ip(21));
}

#[test]
fn concurrent_servers_never_share_an_address() {
    // Four servers (separate backends, so no shared in-process claims) offer
    // to four clients at once from a pool of four: with conditional writes
    // every client gets its own address.
    let Some(d) = Double::start("4.6") else {
        return;
    };
    let url = d.url.clone();
    let start = Arc::new(Barrier::new(4));
    let handles: Vec<_> = (0..4u8)
        .map(|n| {
            let (url, start) = (url.clone(), Arc::clone(&start));
            thread::spawn(move || {
                let nb = Netbox::new(&conf(&url, true), TOKEN.into(), LEASE).unwrap();
                let mut s = nb.session();
                start.wait();
                s.run(&offer(&format!("02:00:00:00:02:{n:02x}"))).0
            })
        })
        .collect();
    let mut addrs: Vec<Ipv4Addr> = handles
        .into_iter()
        .map(|h| match h.join().unwrap() {
            Ok(Outcome::Lease(l)) => l.addr,
            other => panic!("{other:?}"),
        })
        .collect();
    addrs.sort();
    assert_eq!(addrs, [ip(21), ip(22), ip(23), ip(24)]);
    for id in [21, 22, 23, 24] {
        assert!(d.cf(id)["pydhcp_mac"]
            .as_str()
            .unwrap()
            .starts_with("02:00:00:00:02:"));
    }
}

#[test]
fn missing_custom_fields_are_reported() {
    for_versions(&["3.7", "4.6"], |d, v| {
        let mut seed = Double::seed();
        seed["custom_fields"]
            .as_array_mut()
            .unwrap()
            .retain(|f| f["name"] != "pydhcp_hostname");
        d.control("load", &seed);
        let nb = backend(d, true);
        let e = nb.prepare().unwrap_err();
        assert!(
            matches!(&e, BackendError::BadAnswer(m) if m.contains("custom field pydhcp_hostname is not defined for IP addresses")),
            "{v}: {e}"
        );
        let mut s = nb.session();
        // Static leases do not need them.
        let (l, _) = lease_of(s.run(&offer(STATIC_MAC)));
        assert_eq!(l.addr, ip(10));
        // Dynamic ones fail, with the same message, and write nothing.
        let (r, _) = s.run(&offer(DYN_MAC));
        assert!(
            matches!(&r, Err(BackendError::BadAnswer(m)) if m.contains("pydhcp_hostname")),
            "{v}: {r:?}"
        );
        assert!(d.seen().iter().all(|r| r.method == "GET"));
    });
}

#[test]
fn versions_and_tokens() {
    // A v2 token goes as Bearer, which 4.5+ accepts.
    let Some(d) = Double::start("4.6") else {
        return;
    };
    let nb = Netbox::new(&conf(&d.url, false), V2_TOKEN.into(), LEASE).unwrap();
    assert_eq!(nb.prepare(), Ok(2));
    assert_eq!(d.seen()[0].auth, format!("Bearer {V2_TOKEN}"));
    let (l, _) = lease_of(nb.session().run(&offer(STATIC_MAC)));
    assert_eq!(l.addr, ip(10));
    // The version comes with every answer, not only from /api/status/.
    let nb = backend(&d, false);
    assert_eq!(nb.api(), None);
    lease_of(nb.session().run(&offer(STATIC_MAC)));
    assert_eq!(nb.api(), Some(ApiVersion { major: 4, minor: 6 }));
    assert!(!format!("{nb:?}").contains(TOKEN));
    // 3.x knows no v2 tokens.
    let Some(d) = Double::start("3.7") else {
        return;
    };
    let nb = Netbox::new(&conf(&d.url, false), V2_TOKEN.into(), LEASE).unwrap();
    assert_eq!(nb.prepare(), Err(BackendError::Auth(403)));
}

#[test]
fn failures_are_backend_errors() {
    for_versions(&["3.7", "4.6"], |d, v| {
        // A refused token.
        let nb = Netbox::new(&conf(&d.url, true), "not-the-token".into(), LEASE).unwrap();
        let (r, calls) = nb.session().run(&offer(DYN_MAC));
        assert_eq!((r, calls), (Err(BackendError::Auth(403)), 1), "{v}");
        let e = nb.prepare().unwrap_err().to_string();
        assert!(!e.contains("not-the-token"), "{e}");

        // A server error, HTML and all.
        d.fault(json!({"path": "/api/ipam/prefixes/", "status": 500,
            "body": "<html><title>Server Error (500)</title></html>"}));
        let nb = backend(d, true);
        let (r, calls) = nb.session().run(&offer(DYN_MAC));
        assert!(
            matches!(&r, Err(BackendError::Http { status: 500, body }) if body.contains("Server Error")),
            "{v}: {r:?}"
        );
        assert_eq!(calls, 1);
        d.control("faults/clear", &json!({}));

        // A JSON 500 in the middle of a job: no lease, no NAK.
        d.fault(json!({"path": "/api/ipam/ip-addresses/?parent=192.0.2.0%2F24&status=dhcp", "status": 500,
            "body": {"error": "connection lost", "exception": "OperationalError", "netbox_version": v}}));
        let (r, _) = nb.session().run(&offer(DYN_MAC));
        assert!(
            matches!(r, Err(BackendError::Http { status: 500, .. })),
            "{v}: {r:?}"
        );
        d.control("faults/clear", &json!({}));

        // Garbage where JSON should be (a proxy's login page).
        d.fault(
            json!({"path": "/api/dcim/interfaces/", "status": 200, "body": "<html>login</html>"}),
        );
        let (r, _) = nb.session().run(&offer(DYN_MAC));
        assert!(matches!(r, Err(BackendError::BadAnswer(_))), "{v}: {r:?}");
        d.control("faults/clear", &json!({}));

        // JSON of the wrong shape.
        d.fault(json!({"path": "/api/dcim/interfaces/", "status": 200, "body": {"detail": "x"}}));
        let (r, _) = nb.session().run(&offer(DYN_MAC));
        assert!(matches!(r, Err(BackendError::BadAnswer(_))), "{v}: {r:?}");
        d.control("faults/clear", &json!({}));

        // A slow server.
        d.fault(json!({"path": "/api/dcim/interfaces/", "delay": 3, "times": 1}));
        let mut c = conf(&d.url, true);
        c.timeout_secs = 1;
        let nb = Netbox::new(&c, TOKEN.into(), LEASE).unwrap();
        let started = Instant::now();
        let (r, _) = nb.session().run(&offer(DYN_MAC));
        assert_eq!(r, Err(BackendError::Timeout), "{v}");
        assert!(started.elapsed() < Duration::from_secs(3));
        d.control("faults/clear", &json!({}));
    });
    // Nothing listens.
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    drop(l);
    let nb = Netbox::new(&conf(&url, true), TOKEN.into(), LEASE).unwrap();
    assert!(matches!(nb.prepare(), Err(BackendError::Connect(_))));
}

#[test]
fn a_token_that_may_not_read_everything() {
    // A token limited to DCIM and IPAM: no VM lookups, no site config
    // contexts, no custom field list; leases still go out.
    for_versions(&["3.7", "4.6"], |d, v| {
        let denied = json!({"detail": "You do not have permission to perform this action."});
        for path in [
            "/api/virtualization/interfaces/",
            "/api/extras/config-contexts/",
            "/api/extras/custom-fields/",
        ] {
            d.fault(json!({"path": path, "status": 403, "body": denied}));
        }
        let nb = backend(d, true);
        assert_eq!(nb.prepare(), Ok(2), "{v}");
        let (l, _) = lease_of(nb.session().run(&offer("02:00:00:00:00:99")));
        assert_eq!((l.addr, l.dns), (ip(21), vec![]), "{v}");
        // What leases need is not optional.
        d.fault(json!({"path": "/api/dcim/interfaces/", "status": 403, "body": denied}));
        let (r, _) = nb.session().run(&offer(DYN_MAC));
        assert_eq!(r, Err(BackendError::Auth(403)), "{v}");
    });
}

#[test]
fn no_prefix_no_pool() {
    for_versions(&["3.7", "4.6"], |d, v| {
        let nb = backend(d, true);
        let mut s = nb.session();
        let far = job(
            JobKind::Offer,
            DYN_MAC,
            Ipv4Addr::new(10, 9, 9, 9),
            BootClient::None,
            None,
        );
        assert_eq!(
            s.run(&far),
            (Ok(Outcome::NoLease(NoLease::NoPrefix)), 1),
            "{v}"
        );
        // The miss is cached too.
        assert_eq!(
            s.run(&far),
            (Ok(Outcome::NoLease(NoLease::NoPrefix)), 0),
            "{v}"
        );
        // A prefix without DHCP addresses.
        let empty = job(
            JobKind::Offer,
            DYN_MAC,
            Ipv4Addr::new(203, 0, 113, 1),
            BootClient::None,
            None,
        );
        assert_eq!(
            s.run(&empty).0,
            Ok(Outcome::NoLease(NoLease::PoolExhausted)),
            "{v}"
        );
    });
}

#[test]
fn undefined_custom_field_on_a_write_gets_the_guidance() {
    // 4.6 names an undefined custom field in an object, earlier versions in
    // a list: both get the advice a missing field gets, not a bare HTTP 400.
    for_versions(&["3.7", "4.6"], |d, v| {
        let nb = backend(d, false);
        let mut s = nb.session();
        let (l, _) = lease_of(s.run(&offer(DYN_MAC)));
        // The operator deletes a custom field while the lease runs.
        d.edit(|state| {
            state["custom_fields"]
                .as_array_mut()
                .unwrap()
                .retain(|f| f["name"] != "pydhcp_expire");
        });
        d.seen();
        let (r, calls) = s.run(&confirm(DYN_MAC, ip(21), known(&l)));
        assert!(
            matches!(&r, Err(BackendError::BadAnswer(m)) if m.starts_with(
                "custom field pydhcp_expire is not defined for IP addresses; create it"
            )),
            "{v}: {r:?}"
        );
        assert_eq!(calls, 1, "{v}");
        assert_eq!(paths(&d.seen()), ["PATCH /api/ipam/ip-addresses/21/"]);
    });
}

/// Calls of a DORA, a renewal, a RELEASE and a DECLINE of one client.
fn lifecycle_calls(d: &Double) -> Vec<u32> {
    let nb = backend(d, false);
    nb.prepare().unwrap();
    let mut s = nb.session();
    let (l, offer_calls) = lease_of(s.run(&offer(DYN_MAC)));
    let (l, renew_calls) = lease_of(s.run(&confirm(DYN_MAC, ip(21), known(&l))));
    let end = |kind| job(kind, DYN_MAC, ip(1), BootClient::None, known(&l));
    let (r, release_calls) = s.run(&end(JobKind::Release { addr: ip(21) }));
    assert_eq!(r, Ok(Outcome::Done));
    let (r, decline_calls) = s.run(&end(JobKind::Decline { addr: ip(21) }));
    assert_eq!(r, Ok(Outcome::Done));
    // The claim, the release and the decline were conditional on the ETag
    // of what was read (the renewal is not), and none failed.
    let tags: Vec<String> = d.seen().into_iter().filter_map(|r| r.if_match).collect();
    assert_eq!(tags.len(), 3, "{tags:?}");
    for tag in tags {
        assert!(
            tag.starts_with("W/\"") && tag.ends_with("+00:00\""),
            "{tag}"
        );
    }
    vec![offer_calls, renew_calls, release_calls, decline_calls]
}

#[test]
fn a_time_zone_other_than_utc_costs_no_calls() {
    // With TIME_ZONE other than UTC, 4.6 shows last_updated with the zone's
    // offset, while the ETag stays made of the UTC time: the ETag derived
    // from the list must be that one, or every claim costs a GET.
    let Some(utc) = Double::start("4.6") else {
        return;
    };
    let expected = lifecycle_calls(&utc);
    assert_eq!(expected, [6, 1, 2, 2]);
    for zone in ["Europe/Berlin", "America/New_York", "Asia/Kolkata"] {
        let Some(d) = Double::start_in("4.6", zone) else {
            return;
        };
        let (etag, ip) = d.get("/api/ipam/ip-addresses/21/");
        let shown = ip["last_updated"].as_str().unwrap().to_owned();
        assert!(!shown.ends_with('Z'), "{zone}: {shown}");
        assert!(etag.unwrap().ends_with("+00:00\""), "{zone}");
        assert_eq!(lifecycle_calls(&d), expected, "{zone}");
    }
}

#[test]
fn answers_as_netbox_4_6_gives_them() {
    let Some(d) = Double::start("4.6") else {
        return;
    };
    // A Date & time pydhcp_expire: Netbox stores what the backend writes
    // (+00:00) as Z.
    d.edit(|state| {
        for f in state["custom_fields"].as_array_mut().unwrap() {
            if f["name"] == "pydhcp_expire" {
                f["type"] = json!("datetime");
            }
        }
    });
    // Every single object comes with its ETag; created and last_updated
    // are not the same instant.
    for path in [
        "/api/ipam/ip-addresses/21/",
        "/api/dcim/devices/1/",
        "/api/dcim/interfaces/1/",
        "/api/virtualization/virtual-machines/1/",
    ] {
        let (etag, obj) = d.get(path);
        assert!(etag.is_some_and(|t| t.starts_with("W/\"")), "{path}");
        assert_ne!(obj["created"], obj["last_updated"], "{path}");
        assert!(obj.get("owner").is_some(), "{path}");
    }
    let nb = backend(&d, true);
    let mut s = nb.session();
    let a = "02:00:00:00:00:0a";
    let j = offer(a);
    let (l, _) = lease_of(s.run(&j));
    assert_eq!(l.addr, ip(21));
    let hold = j.now + Duration::from_secs(OFFER_HOLD_SECS);
    assert_eq!(d.cf(21)["pydhcp_expire"], json!(stamp_z(hold)));
    // The DECLINE's hold, stored as Z, keeps the address from the next
    // client: it is read back as the instant it is.
    let j = job(
        JobKind::Decline { addr: ip(21) },
        a,
        ip(1),
        BootClient::None,
        known(&l),
    );
    assert_eq!(s.run(&j).0, Ok(Outcome::Done));
    let until = j.now + Duration::from_secs(DECLINE_HOLD_SECS);
    assert_eq!(d.cf(21)["pydhcp_expire"], json!(stamp_z(until)));
    let (l, _) = lease_of(s.run(&offer("02:00:00:00:00:0b")));
    assert_eq!(l.addr, ip(24));
    // A refused token is refused as such, whatever the detail says.
    let nb = Netbox::new(&conf(&d.url, true), "not-the-token".into(), LEASE).unwrap();
    assert_eq!(nb.prepare(), Err(BackendError::Auth(403)));
}

/// Renewals of leases the daemon handed out that reach a worker together
/// share one bulk PATCH of their expiries. A record taken over meanwhile is
/// then confirmed afresh on its own, and an OFFER of the same batch runs
/// beside them.
#[test]
fn renewals_that_come_together_share_one_bulk_patch() {
    for_versions(&["3.7", "4.6"], |d, v| {
        let nb = backend(d, true);
        nb.prepare().unwrap();
        let mut s = nb.session();
        let macs = [
            "02:00:5e:04:00:01",
            "02:00:5e:04:00:02",
            "02:00:5e:04:00:03",
        ];
        let leases: Vec<Lease> = macs
            .iter()
            .map(|m| {
                let (l, _) = lease_of(s.run(&offer(m)));
                lease_of(s.run(&confirm(m, l.addr, known(&l)))).0
            })
            .collect();
        let id = |l: &Lease| -> u64 { l.record.as_deref().unwrap().parse().unwrap() };
        // The third address is taken over behind the daemon's back.
        let other = "02:00:00:00:00:99";
        d.control(
            &format!("ip/{}", id(&leases[2])),
            &json!({"custom_fields": {"pydhcp_mac": other}}),
        );
        let mut jobs: Vec<Job> = macs
            .iter()
            .zip(&leases)
            .map(|(m, l)| confirm(m, l.addr, known(l)))
            .collect();
        jobs.push(offer("02:00:5e:04:00:04"));
        for (n, j) in jobs.iter_mut().enumerate() {
            j.id = n as u64;
        }
        d.seen();
        let (out, calls) = s.run_all(&jobs);
        let seen = d.seen();
        let p = paths(&seen);
        assert_eq!(
            p.iter()
                .filter(|p| *p == "PATCH /api/ipam/ip-addresses/")
                .count(),
            1,
            "{v}: {p:?}"
        );
        let full = stamp(jobs[0].now + Duration::from_secs(u64::from(LEASE)));
        for (l, o) in leases.iter().zip(&out).take(2) {
            match o {
                Ok(Outcome::Lease(r)) => assert_eq!(r.addr, l.addr, "{v}"),
                other => panic!("{v}: {other:?}"),
            }
            assert_eq!(d.cf(id(l))["pydhcp_expire"], json!(full), "{v}");
            // Renewed in the bulk call, not one by one.
            assert!(!p.contains(&format!("PATCH /api/ipam/ip-addresses/{}/", id(l))));
        }
        assert_eq!(
            out[2],
            Ok(Outcome::NoLease(NoLease::NotYours)),
            "{v}: the address went to another client"
        );
        assert_eq!(d.cf(id(&leases[2]))["pydhcp_mac"], json!(other));
        match &out[3] {
            Ok(Outcome::Lease(l)) => assert!(leases.iter().all(|k| k.addr != l.addr), "{v}"),
            other => panic!("{v}: {other:?}"),
        }
        assert_eq!(calls as usize, seen.len(), "{v}: every call counted once");
    });
}

/// A list Netbox refuses as a whole: each renewal runs alone, once more.
#[test]
fn a_refused_bulk_renewal_runs_each_alone() {
    for_versions(&["4.6"], |d, v| {
        let nb = backend(d, true);
        nb.prepare().unwrap();
        let mut s = nb.session();
        let macs = ["02:00:5e:05:00:01", "02:00:5e:05:00:02"];
        let jobs: Vec<Job> = macs
            .iter()
            .enumerate()
            .map(|(n, m)| {
                let (l, _) = lease_of(s.run(&offer(m)));
                let (l, _) = lease_of(s.run(&confirm(m, l.addr, known(&l))));
                let mut j = confirm(m, l.addr, known(&l));
                j.id = n as u64;
                j
            })
            .collect();
        d.fault(
            json!({"path": "/api/ipam/ip-addresses/", "method": "PATCH", "status": 400,
                       "body": [{"custom_fields": ["refused"]}], "times": 1}),
        );
        d.seen();
        let (out, calls) = s.run_all(&jobs);
        assert!(
            out.iter().all(|o| matches!(o, Ok(Outcome::Lease(_)))),
            "{v}: {out:?}"
        );
        let p = paths(&d.seen());
        assert_eq!(calls, 3, "{v}: {p:?}");
        assert_eq!(p[0], "PATCH /api/ipam/ip-addresses/");
    });
}
