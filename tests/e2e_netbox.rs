//! Relay mode end to end with the Netbox backend: ISC dhclient in guest
//! namespaces behind a router running ISC dhcrelay (the topology of
//! `tests/common/relay.rs`), nfdhcpd in its own namespace, and the Netbox
//! test double `tests/netbox_server.py` running inside the daemon's
//! namespace on 127.0.0.1:8081, once as Netbox 3.7 and once as 4.6.
//!
//! Needs root (and python3, dhcrelay, dhclient, socat); without root the
//! tests are skipped with a notice, except under CI, where they fail. The
//! API calls per exchange are printed as `RESULT` lines; run with
//! `--nocapture` to see them.

mod common;

use std::fs;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;

use common::relay::*;
use common::*;
use serde_json::Value;

const TOKEN: &str = "0123456789abcdef0123456789abcdef01234567";
/// The double's address inside the daemon's namespace.
const DOUBLE: &str = "127.0.0.1:8081";
/// Server identifier of daemon 0 (its dx0 address).
const SERVER0: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
/// bmc-test-01's bmc0 (static 192.0.2.10) and bmc-dyn-01's bmc0 (no address).
const STATIC: &str = "14:18:77:aa:bb:01";
const DYNAMIC: &str = "14:18:77:aa:bb:02";
const LEASE: u32 = 3600;

fn ip(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(192, 0, 2, last)
}

/// The relay lab with the double and nfdhcpd (backend = netbox) started in
/// daemon 0's namespace; both are stopped with the namespace.
struct NetboxLab {
    rl: RelayLab,
    daemon_log: PathBuf,
}

impl NetboxLab {
    fn new(test: &str, api: &str) -> Option<NetboxLab> {
        let mut rl = RelayLab::new(test, 1)?;
        let dir = rl.lab.tmp.path().to_path_buf();
        let root = env!("CARGO_MANIFEST_DIR");
        let server = format!("{root}/tests/netbox_server.py");
        let seed = format!("{root}/tests/data/netbox/seed.json");
        let (host, port) = DOUBLE.split_once(':').unwrap();
        let double_log = dir.join("netbox-double.log");
        let ns = &rl.d(0).ns;
        let double = ns.spawn(
            &[
                "python3", &server, "--data", &seed, "--api", api, "--host", host, "--port", port,
            ],
            &double_log,
        );
        let up = poll(Duration::from_secs(10), || {
            if fs::read_to_string(&double_log)
                .unwrap_or_default()
                .contains("LISTENING")
            {
                return Some(true);
            }
            ns.exited(double).map(|_| false)
        });
        assert_eq!(
            up,
            Some(true),
            "the Netbox test double did not start:\n{}",
            fs::read_to_string(&double_log).unwrap_or_default()
        );

        let conf = dir.join("nfdhcpd-netbox.conf");
        let data = dir.join("bindings-netbox");
        fs::create_dir_all(&data).unwrap();
        fs::write(
            &conf,
            format!(
                "[general]\npidfile = {pid}\ndatapath = {data}\n\n\
                 [dhcp]\nenable_dhcp = no\n\n[ipv6]\nenable_ipv6 = no\n\n\
                 [relay]\nenable_relay = yes\nbackend = netbox\nlease_time = {LEASE}\n\
                 nameservers = 192.0.2.53\n\n\
                 [netbox]\nurl = http://{DOUBLE}\nworkers = 4\ntimeout = 5\n",
                pid = dir.join("nfdhcpd-netbox.pid").display(),
                data = data.display(),
            ),
        )
        .unwrap();
        let daemon_log = dir.join("nfdhcpd-netbox.log");
        let bin = env!("CARGO_BIN_EXE_nfdhcpd");
        let mut cmd = ns.command(&[bin, "-f", "-d", "-c", conf.to_str().unwrap()]);
        cmd.env("NETBOX_TOKEN", TOKEN).env("RUST_BACKTRACE", "1");
        let pid = ns.spawn_cmd(cmd, &daemon_log);
        let ready = poll(Duration::from_secs(30), || {
            let log = fs::read_to_string(&daemon_log).unwrap_or_default();
            if log.contains("netbox: ready (") {
                return Some(true);
            }
            if log.contains("preparation failed") {
                return Some(false);
            }
            ns.exited(pid).map(|_| false)
        });
        let log = fs::read_to_string(&daemon_log).unwrap_or_default();
        assert_eq!(ready, Some(true), "nfdhcpd did not get ready:\n{log}");
        assert!(log.contains(&format!("REST API version {api}")), "{log}");
        Some(NetboxLab { rl, daemon_log })
    }

    fn ns_name(&self) -> String {
        self.rl.daemons[0].ns.name.clone()
    }

    fn get(&self, path: &str) -> Value {
        let url = format!("http://{DOUBLE}{path}");
        in_netns(&self.ns_name(), move || {
            ureq::get(&url)
                .call()
                .unwrap()
                .body_mut()
                .read_json::<Value>()
                .unwrap()
        })
    }

    /// API requests the daemon made since the last call.
    fn api_requests(&self) -> Vec<String> {
        let v = self.get("/_test/requests");
        let url = format!("http://{DOUBLE}/_test/requests/clear");
        in_netns(&self.ns_name(), move || {
            ureq::post(&url).send_empty().unwrap();
        });
        v.as_array()
            .unwrap()
            .iter()
            .map(|r| {
                format!(
                    "{} {}",
                    r["method"].as_str().unwrap(),
                    r["path"].as_str().unwrap()
                )
            })
            .collect()
    }

    /// Address `id` as the double stores it.
    fn address(&self, id: u64) -> Value {
        let state = self.get("/_test/state");
        state["ip_addresses"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["id"] == id)
            .cloned()
            .unwrap_or(Value::Null)
    }

    fn cf(&self, id: u64) -> Value {
        self.address(id)["custom_fields"].clone()
    }

    fn log(&self) -> String {
        fs::read_to_string(&self.daemon_log).unwrap_or_default()
    }
}

impl Drop for NetboxLab {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("---- nfdhcpd (netbox) log ----\n{}", self.log());
        }
    }
}

fn no_nak(l: &Lease) {
    assert!(!l.log.contains("DHCPNAK"), "the client saw a NAK\n{l}");
}

fn dora(g: &Guest, conf: &str) -> Lease {
    let l = g.dhclient(&dhclient_opts(g, 20, conf, None, &[]));
    l.expect_bound();
    no_nak(&l);
    assert!(l.reasons.iter().any(|r| r == "BOUND"), "not a DORA\n{l}");
    l
}

fn reboot(g: &Guest, addr: Ipv4Addr) -> Lease {
    let l = g.dhclient(&dhclient_opts(
        g,
        20,
        "",
        Some(lease_text(addr, SERVER0, LEASE)),
        &[],
    ));
    l.expect_bound();
    no_nak(&l);
    assert_eq!(l.reasons.last().map(String::as_str), Some("REBOOT"), "{l}");
    assert_eq!(l.ip(), Some(addr), "{l}");
    l
}

fn expire_of(cf: &Value) -> i64 {
    cf["pydhcp_expire"]
        .as_str()
        .and_then(parse_utc)
        .unwrap_or_else(|| panic!("no pydhcp_expire: {cf}"))
}

fn static_and_dynamic_through_dhcrelay(test: &str, api: &str) {
    let Some(nl) = NetboxLab::new(test, api) else {
        return;
    };
    nl.api_requests();
    let static_before = nl.address(10);

    // The static address of bmc-test-01, with its device's DNS server.
    let gs = nl.rl.guest("tap1", STATIC);
    let l = dora(&gs, "");
    assert_eq!(l.ip(), Some(ip(10)), "{l}");
    assert_eq!(l.prefix_len(), Some(24), "{l}");
    assert_eq!(l.routers(), vec![ip(1)], "the address tagged gateway\n{l}");
    assert_eq!(l.dns(), vec![Ipv4Addr::new(198, 51, 100, 53)], "{l}");
    assert_eq!(l.lease_time(), Some(LEASE), "{l}");
    assert_eq!(l.server_id(), Some(SERVER0), "{l}");
    let calls = nl.api_requests();
    eprintln!(
        "RESULT netbox {api}: static DORA {} API calls: {calls:?}",
        calls.len()
    );
    assert!(calls.iter().all(|c| c.starts_with("GET ")), "{calls:?}");
    reboot(&gs, ip(10));
    let calls = nl.api_requests();
    eprintln!(
        "RESULT netbox {api}: static INIT-REBOOT {} API calls",
        calls.len()
    );
    assert!(calls.iter().all(|c| c.starts_with("GET ")), "{calls:?}");

    // A DHCP address for bmc-dyn-01: the lowest unallocated one, recorded.
    let gd = nl.rl.guest("tap2", DYNAMIC);
    let t0 = unix_now();
    let l = dora(&gd, "send host-name \"bmc-dyn\";\n");
    assert_eq!(l.ip(), Some(ip(21)), "{l}");
    assert_eq!(l.prefix_len(), Some(24), "{l}");
    assert_eq!(l.routers(), vec![ip(1)], "{l}");
    assert_eq!(
        l.dns(),
        vec![ip(54), ip(55)],
        "the site's config contexts\n{l}"
    );
    let calls = nl.api_requests();
    eprintln!(
        "RESULT netbox {api}: dynamic DORA {} API calls: {calls:?}",
        calls.len()
    );
    let cf = nl.cf(21);
    assert_eq!(cf["pydhcp_mac"], "14:18:77:AA:BB:02", "{cf}");
    assert_eq!(cf["pydhcp_hostname"], "bmc-dyn", "{cf}");
    assert!(
        (expire_of(&cf) - (t0 + i64::from(LEASE))).abs() <= 30,
        "{cf}"
    );

    // INIT-REBOOT of the known lease: one call.
    reboot(&gd, ip(21));
    let calls = nl.api_requests();
    eprintln!(
        "RESULT netbox {api}: dynamic INIT-REBOOT {} API calls",
        calls.len()
    );
    assert_eq!(calls.len(), 1, "{calls:?}");

    // RELEASE: the expiry becomes now, the MAC stays.
    configure_guest(&gd, ip(21));
    let before = unix_now();
    let l = gd.dhclient(&dhclient_opts(
        &gd,
        10,
        "",
        Some(lease_text(ip(21), SERVER0, LEASE)),
        &["-r"],
    ));
    assert!(l.log.contains("DHCPRELEASE"), "no DHCPRELEASE sent\n{l}");
    let released = poll(Duration::from_secs(15), || {
        let cf = nl.cf(21);
        (expire_of(&cf) <= unix_now() + 3).then_some(cf)
    })
    .unwrap_or_else(|| panic!("the RELEASE did not expire the lease\n{}", nl.log()));
    assert!(expire_of(&released) >= before - 3, "{released}");
    assert_eq!(released["pydhcp_mac"], "14:18:77:AA:BB:02");
    let calls = nl.api_requests();
    eprintln!("RESULT netbox {api}: RELEASE {} API calls", calls.len());

    // The static address was never written: not even its last_updated moved.
    assert_eq!(nl.address(10), static_before);
    assert!(!nl.log().contains("DHCPNAK"));
}

#[test]
fn netbox_3x_static_and_dynamic_through_dhcrelay() {
    static_and_dynamic_through_dhcrelay("netbox_3x_static_and_dynamic_through_dhcrelay", "3.7");
}

#[test]
fn netbox_4x_static_and_dynamic_through_dhcrelay() {
    static_and_dynamic_through_dhcrelay("netbox_4x_static_and_dynamic_through_dhcrelay", "4.6");
}
