//! Relay mode end to end: DHCP clients in namespaces behind a router that
//! runs ISC dhcrelay, nfdhcpd in its own namespace, and the real test
//! Nautobot of `tests/nautobot` (reached through `netns-bridge.sh`).
//!
//! Needs root and a seeded Nautobot (`tests/nautobot`: setup.sh, start.sh,
//! seed.sh --with-custom-fields). Without Nautobot the tests are skipped
//! with a notice, except under CI, where they fail. They hold one lock, so
//! they never touch Nautobot at the same time, and they remove the daemon's
//! leases (the `dhcp` addresses of 192.0.2.0/24) before and after each test.
//!
//! The measured figures (API calls per exchange, burst times) are printed
//! as `RESULT` lines; run with `--nocapture` to see them.

mod common;

use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use common::relay::*;
use common::*;
use dhcproto::v4::{DhcpOption, Message, MessageType, OptionCode};
use serde_json::{json, Value};

/// Server identifier of daemon 0 (its dx0 address).
const SERVER0: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
const MAC2: &str = "14:18:77:aa:bb:02";
const MAC3: &str = "14:18:77:aa:bb:03";

fn ip(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(192, 0, 2, last)
}

/// Nautobot (locked, cleaned) and a relay lab with `daemons` daemon
/// namespaces. Dropped in reverse: the lab first, then Nautobot's clean-up.
fn setup(test: &str, daemons: usize) -> Option<(Nautobot, RelayLab)> {
    let nb = nautobot(test)?;
    let rl = RelayLab::new(test, daemons)?;
    Some((nb, rl))
}

fn no_nak(l: &Lease) {
    assert!(!l.log.contains("DHCPNAK"), "the client saw a NAK\n{l}");
}

/// A fresh DORA with dhclient (no lease file).
fn dora(g: &Guest, conf: &str) -> Lease {
    let l = g.dhclient(&dhclient_opts(g, 20, conf, None, &[]));
    l.expect_bound();
    no_nak(&l);
    assert!(
        l.reasons.iter().any(|r| r == "BOUND"),
        "not a DORA (reasons {:?})\n{l}",
        l.reasons
    );
    l
}

/// INIT-REBOOT of `addr` with dhclient: the REQUEST a rebooted BMC
/// broadcasts to confirm its lease, and which the relay forwards.
fn reboot(g: &Guest, addr: Ipv4Addr, lease: u32) -> Lease {
    let l = g.dhclient(&dhclient_opts(
        g,
        20,
        "",
        Some(lease_text(addr, SERVER0, lease)),
        &[],
    ));
    l.expect_bound();
    no_nak(&l);
    assert_eq!(l.reasons.last().map(String::as_str), Some("REBOOT"), "{l}");
    assert_eq!(l.ip(), Some(addr), "{l}");
    l
}

/// `dhclient -r`: unicast DHCPRELEASE from the leased address to the
/// server (the guest gets the address and a route first).
fn release(g: &Guest, addr: Ipv4Addr, lease: u32) {
    configure_guest(g, addr);
    let l = g.dhclient(&dhclient_opts(
        g,
        10,
        "",
        Some(lease_text(addr, SERVER0, lease)),
        &["-r"],
    ));
    assert!(
        l.status.is_some_and(|s| s.success()),
        "dhclient -r failed\n{l}"
    );
    assert!(l.log.contains("DHCPRELEASE"), "no DHCPRELEASE sent\n{l}");
}

fn cf<'a>(rec: &'a Value, key: &str) -> Option<&'a str> {
    rec["custom_fields"][key].as_str()
}

fn expire_of(rec: &Value) -> i64 {
    cf(rec, "pydhcp_expire")
        .and_then(parse_utc)
        .unwrap_or_else(|| panic!("no pydhcp_expire: {rec}"))
}

/// The record of a dynamic lease as the daemon must write it.
fn check_lease_record(api: &Api, addr: Ipv4Addr, mac: &str, hostname: Option<&str>) -> Value {
    let rec = api
        .address(addr)
        .unwrap_or_else(|| panic!("no IP address object for {addr}"));
    assert_eq!(rec["address"], format!("{addr}/24"), "{rec}");
    assert_eq!(rec["type"], "dhcp", "{rec}");
    assert_eq!(rec["status"]["name"], "Active", "{rec}");
    assert_eq!(
        cf(&rec, "pydhcp_mac")
            .map(str::to_ascii_lowercase)
            .as_deref(),
        Some(mac),
        "{rec}"
    );
    assert_eq!(
        cf(&rec, "pydhcp_hostname").filter(|h| !h.is_empty()),
        hostname,
        "{rec}"
    );
    rec
}

/// The first BMCs of an empty pool get network+5 and network+6, with the
/// prefix's mask, the gateway network+1, the `[relay]` DNS servers and
/// lease time, and their records read back as the daemon must write them.
#[test]
fn first_bmcs_get_pool_start_and_are_recorded() {
    let test = "first_bmcs_get_pool_start_and_are_recorded";
    let Some((nb, mut rl)) = setup(test, 1) else {
        return;
    };
    let lease = 5400;
    rl.d(0).start(
        &RelayConfig {
            lease_time: lease,
            ..Default::default()
        },
        &[],
    );
    let g1 = rl.guest("tap1", MAC2);
    let g2 = rl.guest("tap2", MAC3);

    let c0 = rl.d(0).counters();
    let t1 = unix_now();
    let l1 = dora(&g1, "send host-name \"bmc-two\";\n");
    let c1 = rl.d(0).counters();
    let l2 = dora(&g2, "");
    let c2 = rl.d(0).counters();

    for (l, want) in [(&l1, ip(5)), (&l2, ip(6))] {
        assert_eq!(l.ip(), Some(want), "address\n{l}");
        assert_eq!(l.prefix_len(), Some(24), "mask\n{l}");
        assert_eq!(l.routers(), vec![ip(1)], "router\n{l}");
        assert_eq!(l.dns(), vec![ip(53)], "DNS servers\n{l}");
        assert_eq!(l.lease_time(), Some(lease), "lease time\n{l}");
        assert_eq!(l.renewal_time(), Some(lease / 2), "T1\n{l}");
        assert_eq!(l.server_id(), Some(SERVER0), "server identifier\n{l}");
    }

    let r1 = check_lease_record(&nb.api, ip(5), MAC2, Some("bmc-two"));
    let e1 = expire_of(&r1);
    assert!(
        (e1 - (t1 + i64::from(lease))).abs() <= 30,
        "pydhcp_expire {e1} is not about now + {lease} ({t1}): {r1}"
    );
    let r2 = check_lease_record(&nb.api, ip(6), MAC3, None);
    assert!(
        (expire_of(&r2) - (t1 + i64::from(lease))).abs() <= 60,
        "{r2}"
    );
    assert_eq!(nb.api.dhcp_records().len(), 2, "exactly the two leases");

    let (cold, warm) = (c1.calls() - c0.calls(), c2.calls() - c1.calls());
    eprintln!("RESULT one new client DORA: {cold} API calls (cold prefix cache), {warm} (warm)");
    // The OFFER reads and writes the whole lease; its REQUEST costs nothing.
    assert!(cold <= 3 && warm <= 2, "API calls per DORA: {cold}, {warm}");
    assert_eq!(c2.answer("DHCPNAK"), 0, "{c2}");
}

/// The device interface with a static address gets that address, and its
/// record reads back byte for byte the same after DORA, INIT-REBOOT and
/// RELEASE; no dhcp record is made for it.
#[test]
fn static_lease_is_served_and_never_modified() {
    let test = "static_lease_is_served_and_never_modified";
    let Some((nb, mut rl)) = setup(test, 1) else {
        return;
    };
    let (path, before) = nb.api.static_snapshot();
    rl.d(0).start(&RelayConfig::default(), &[]);
    let g = rl.guest("tap1", STATIC_MAC);

    let l = dora(&g, "");
    assert_eq!(l.ip(), Some(STATIC_IP), "{l}");
    assert_eq!(l.prefix_len(), Some(24), "{l}");
    assert_eq!(l.routers(), vec![ip(1)], "{l}");
    reboot(&g, STATIC_IP, 3600);
    let c = rl.d(0).counters();
    release(&g, STATIC_IP, 3600);
    let c2 = rl.d(0).settle(&c, 1, Duration::from_secs(15));

    let after = nb.api.get_text(&path).unwrap().1;
    assert_eq!(after, before, "the static address record changed");
    assert!(nb.api.dhcp_records().is_empty(), "a dhcp record was made");
    assert_eq!(c2.answer("DHCPNAK"), 0, "{c2}");
    assert_eq!(c2.errors(), 0, "{c2}");
}

/// A renewal of a lease the daemon handed out costs one call; RELEASE
/// costs one and sets pydhcp_expire to now.
#[test]
fn release_expires_the_lease_now() {
    let test = "release_expires_the_lease_now";
    let Some((nb, mut rl)) = setup(test, 1) else {
        return;
    };
    let lease = 3600;
    rl.d(0).start(&RelayConfig::default(), &[]);
    let g = rl.guest("tap1", MAC2);
    let l = dora(&g, "");
    assert_eq!(l.ip(), Some(ip(5)), "{l}");

    // Past the 10 s its OFFER wrote ahead: the renewal is a write.
    std::thread::sleep(Duration::from_secs(11));
    let c0 = rl.d(0).counters();
    let t0 = unix_now();
    reboot(&g, ip(5), lease);
    let c1 = rl.d(0).counters();
    let rec = check_lease_record(&nb.api, ip(5), MAC2, None);
    assert!(
        (expire_of(&rec) - (t0 + i64::from(lease))).abs() <= 30,
        "renewal did not extend the lease: {rec}"
    );

    let before = unix_now();
    release(&g, ip(5), lease);
    let c2 = rl.d(0).settle(&c1, 1, Duration::from_secs(15));
    let after = unix_now();
    let rec = check_lease_record(&nb.api, ip(5), MAC2, None);
    let e = expire_of(&rec);
    assert!(
        e >= before - 3 && e <= after + 3,
        "pydhcp_expire {e} is not the time of the RELEASE ({before}..{after}): {rec}"
    );

    let renew = c1.calls() - c0.calls();
    let rel = c2.calls() - c1.calls();
    eprintln!("RESULT one client: renewal (INIT-REBOOT of a known lease) {renew} API calls, RELEASE {rel}");
    assert_eq!(renew, 1, "API calls for a known renewal\n{c1}");
    assert_eq!(rel, 1, "API calls for a known release\n{c2}");
}

/// After a restart the daemon knows nothing, yet the same MAC gets the
/// same address (from its Nautobot record, not merely the lowest free one)
/// by DORA and by INIT-REBOOT. The restart uses the command-line flags.
#[test]
fn same_address_after_daemon_restart() {
    let test = "same_address_after_daemon_restart";
    let Some((nb, mut rl)) = setup(test, 1) else {
        return;
    };
    rl.d(0).start(&RelayConfig::default(), &[]);
    let g = rl.guest("tap1", MAC2);
    let _other = {
        // Another client first, so that the address is not merely the
        // lowest free one after the restart.
        let g0 = rl.guest("tap0", MAC3);
        assert_eq!(dora(&g0, "").ip(), Some(ip(5)));
        g0
    };
    let l = dora(&g, "");
    assert_eq!(l.ip(), Some(ip(6)), "{l}");
    let id = nb.api.address(ip(6)).unwrap()["id"].clone();
    g.flush();

    rl.d(0).stop();
    let url = daemon_nautobot_url();
    rl.d(0).start(
        &RelayConfig::default(),
        &["-i", "dx0", "-l", "7200", "--nautobot-url", &url],
    );
    let l = dora(&g, "");
    assert_eq!(l.ip(), Some(ip(6)), "{l}");
    assert_eq!(l.lease_time(), Some(7200), "-l 7200\n{l}");
    assert_eq!(nb.api.address(ip(6)).unwrap()["id"], id, "a new record");

    rl.d(0).stop();
    rl.d(0).start(&RelayConfig::default(), &[]);
    let c0 = rl.d(0).counters();
    reboot(&g, ip(6), 3600);
    let c1 = rl.d(0).counters();
    eprintln!(
        "RESULT INIT-REBOOT after a restart (lease unknown to the daemon): {} API calls",
        c1.calls() - c0.calls()
    );
    assert_eq!(
        nb.api.dhcp_records().len(),
        2,
        "{:?}",
        nb.api.dhcp_records()
    );
}

/// Leases and API calls per client of a burst, from the counters before
/// and after. `clean` is the number of datagrams a client sends when
/// nothing is lost (2 for a DORA).
fn report(what: &str, took: Duration, b: &Burst, clean: u32, c0: &Counters, c1: &Counters) {
    let n = b.clients.len();
    let d = |k: &str| c1.get(k) - c0.get(k);
    let (p50, p90, max) = b.took_stats();
    eprintln!(
        "RESULT {what}: {} of {n} clients bound in {:.1} s ({:.1} leases/s; per client median \
         {:.1} s, p90 {:.1} s, max {:.1} s), {} API calls ({:.2} per client); {} \
         retransmissions; daemon: received {}, absorbed {}, jobs {}, channel_drops {}, \
         jobs_refused {}",
        b.bound(),
        took.as_secs_f64(),
        b.bound() as f64 / took.as_secs_f64(),
        p50.as_secs_f64(),
        p90.as_secs_f64(),
        max.as_secs_f64(),
        d("backend_calls"),
        d("backend_calls") as f64 / n as f64,
        b.retransmissions(clean),
        d("received"),
        d("absorbed"),
        d("jobs"),
        d("channel_drops"),
        d("jobs_refused"),
    );
}

fn assert_no_drops(c: &Counters) {
    assert_eq!(c.get("channel_drops"), 0, "receive path dropped\n{c}");
    assert_eq!(c.get("jobs_refused"), 0, "job queue refused\n{c}");
    assert_eq!(c.get("send_errors"), 0, "{c}");
    assert_eq!(c.answer("DHCPNAK"), 0, "{c}");
}

/// 200 BMCs power on at the same moment and retransmit as RFC 2131 says:
/// all are bound without a NAK or a fall back to INIT, with distinct
/// addresses, and the daemon's receive path drops nothing.
#[test]
fn burst_of_200_bmcs() {
    let test = "burst_of_200_bmcs";
    let Some((nb, mut rl)) = setup(test, 1) else {
        return;
    };
    rl.d(0).start(&RelayConfig::default(), &[]);
    let g = rl.guest("tapb", "02:bb:ff:00:00:01");
    let mut b = Burst::new(&g, 200, 1);
    let c0 = rl.d(0).counters();
    let started = unix_now();
    let took = b.dora(Retransmit::Rfc2131, Duration::from_secs(240));
    let acked_at = unix_now();
    let c1 = rl.d(0).counters();
    report(
        "200 BMCs DORA (RFC 2131 retransmission)",
        took,
        &b,
        2,
        &c0,
        &c1,
    );
    b.assert_all_bound_cleanly(test);
    b.assert_unique_addresses();
    assert_no_drops(&c1);
    let acked = b.acked();
    wait_offers_withdrawn(&nb.api, Duration::from_secs(15));
    let holds = check_records(&nb.api, &acked, 3600, (started, acked_at));
    assert_eq!(holds, 0, "spare offer holds left by a single daemon");
    let per = (c1.calls() - c0.calls()) as f64 / 200.0;
    assert!(per <= 6.0, "{per:.2} API calls per DORA\n{c1}");
}

/// 50 impatient clients (a retransmission every second): DORA, then a
/// renewal of all at once (REBINDING through the relay), then RELEASE of
/// all, with the API calls of each phase.
#[test]
fn burst_of_50_retransmitting_clients_renew_and_release() {
    let test = "burst_of_50_retransmitting_clients_renew_and_release";
    let Some((nb, mut rl)) = setup(test, 1) else {
        return;
    };
    let n = 50;
    let rt = Retransmit::Every(Duration::from_secs(1));
    rl.d(0).start(&RelayConfig::default(), &[]);
    let g = rl.guest("tapb", "02:bb:ff:00:00:02");
    let mut b = Burst::new(&g, n, 2);

    let c0 = rl.d(0).counters();
    let took = b.dora(rt, Duration::from_secs(120));
    let c1 = rl.d(0).counters();
    let dora_calls = c1.calls() - c0.calls();
    report(
        "50 clients DORA (1 s retransmission)",
        took,
        &b,
        2,
        &c0,
        &c1,
    );
    b.assert_all_bound_cleanly("DORA");
    b.assert_unique_addresses();
    assert_no_drops(&c1);
    // Retransmissions are absorbed: they must not cost calls of their own.
    assert!(
        dora_calls <= 5 * n as u64,
        "{dora_calls} API calls for {n} DORAs\n{c1}"
    );
    let before: Vec<Option<Ipv4Addr>> = b.clients.iter().map(|c| c.addr).collect();

    b.reset_sent();
    let t_renew = unix_now();
    let took = b.rebind(rt, Duration::from_secs(120));
    let c2 = rl.d(0).counters();
    let renew_calls = c2.calls() - c1.calls();
    report(
        "50 clients renewal (REBINDING, 1 s retransmission)",
        took,
        &b,
        1,
        &c1,
        &c2,
    );
    b.assert_all_bound_cleanly("renewal");
    let after: Vec<Option<Ipv4Addr>> = b.clients.iter().map(|c| c.addr).collect();
    assert_eq!(before, after, "addresses changed on renewal");
    assert_no_drops(&c2);
    let acked = b.acked();
    check_records(&nb.api, &acked, 3600, (t_renew, unix_now()));

    let t_rel = unix_now();
    b.release(&g);
    let c3 = rl.d(0).settle(&c2, n as u64, Duration::from_secs(120));
    let rel_calls = c3.calls() - c2.calls();
    eprintln!(
        "RESULT 50 clients RELEASE: {rel_calls} API calls ({:.2} per client), settled in {} s",
        rel_calls as f64 / n as f64,
        unix_now() - t_rel
    );
    for (_, addr) in &acked {
        let rec = nb.api.address(*addr).unwrap();
        let e = expire_of(&rec);
        assert!(
            e >= t_rel - 3 && e <= unix_now() + 3,
            "{addr} not expired by RELEASE: {rec}"
        );
    }
    assert_no_drops(&c3);
    assert!(
        renew_calls <= n as u64 + 5,
        "renewals of known leases cost {renew_calls} calls for {n}"
    );
    // Known releases that reach a worker together share a bulk PATCH.
    assert!(
        rel_calls <= n as u64,
        "releases of known leases cost {rel_calls} calls for {n}\n{c3}"
    );
}

/// Two daemons in two namespaces, both reached by the relay, serve one
/// prefix to 50 clients at once: no address is acknowledged to two MACs,
/// and Nautobot holds one live lease per MAC.
#[test]
fn two_daemons_never_share_an_address() {
    let test = "two_daemons_never_share_an_address";
    let Some((nb, mut rl)) = setup(test, 2) else {
        return;
    };
    rl.d(0).start(&RelayConfig::default(), &[]);
    rl.d(1).start(&RelayConfig::default(), &[]);
    let g = rl.guest("tapb", "02:bb:ff:00:00:03");
    let n = 50;
    let mut b = Burst::new(&g, n, 3);
    let a0 = rl.d(0).counters();
    let b0 = rl.d(1).counters();
    let started = unix_now();
    let took = b.dora(Retransmit::Rfc2131, Duration::from_secs(180));
    let acked_at = unix_now();
    let a1 = rl.d(0).counters();
    let b1 = rl.d(1).counters();
    report(
        "2 daemons, 50 clients DORA (both daemons)",
        took,
        &b,
        2,
        &Counters::sum(&[&a0, &b0]),
        &Counters::sum(&[&a1, &b1]),
    );
    b.assert_all_bound_cleanly(test);
    b.assert_unique_addresses();
    assert_no_drops(&a1);
    assert_no_drops(&b1);
    let by0 = b
        .clients
        .iter()
        .filter(|c| c.server == Some(SERVER0))
        .count();
    // Both must have competed for the prefix. The slower one may finish
    // its offers only after every client took the faster one's: it sends
    // them all the same, so count them once both have no job left.
    let a2 = rl.d(0).settle(&a1, 0, Duration::from_secs(60));
    let b2 = rl.d(1).settle(&b1, 0, Duration::from_secs(60));
    assert!(
        a2.answer("DHCPOFFER") > 0 && b2.answer("DHCPOFFER") > 0,
        "both daemons must have made offers\n{a2}\n{b2}"
    );
    let calls = a2.calls() - a0.calls() + b2.calls() - b0.calls();
    eprintln!(
        "RESULT two daemons: {calls} API calls in all ({:.2} per client)",
        calls as f64 / n as f64
    );
    // A daemon whose bulk create lost the race reads the prefix again
    // and chooses again for the whole batch; run one by one, the same
    // jobs cost two or three calls each.
    assert!(
        calls <= n as u64,
        "{calls} API calls for {n} clients on two daemons\n{a2}\n{b2}"
    );
    // An OFFER still being made when its client took the other daemon's
    // goes back once it is made: let those withdrawals land.
    wait_offers_withdrawn(&nb.api, Duration::from_secs(15));
    let acked = b.acked();
    let holds = check_records(&nb.api, &acked, 3600, (started, acked_at));
    eprintln!(
        "RESULT two daemons: {by0} leases from d0, {} from d1; spare offer holds in Nautobot: {holds}",
        n - by0
    );
}

/// With Nautobot unreachable (connection refused) an authoritative daemon
/// sends no NAK, logs the failure a bounded number of times however many
/// retransmissions come, and serves again as soon as Nautobot is back,
/// without a restart; also when the preparation at start failed.
#[test]
fn nautobot_unreachable_means_silence_not_nak() {
    let test = "nautobot_unreachable_means_silence_not_nak";
    let Some((_nb, mut rl)) = setup(test, 1) else {
        return;
    };
    rl.d(0).start(&RelayConfig::default(), &["-a"]);
    let g = rl.guest("tap1", MAC2);
    assert_eq!(dora(&g, "").ip(), Some(ip(5)));
    // Authoritative indeed: another device's static address is refused
    // with a NAK, and the client starts over and gets its own.
    let l = g.dhclient(&dhclient_opts(
        &g,
        20,
        "",
        Some(lease_text(STATIC_IP, SERVER0, 3600)),
        &[],
    ));
    assert!(l.log.contains("DHCPNAK"), "no NAK for 192.0.2.10\n{l}");
    assert_eq!(l.ip(), Some(ip(5)), "{l}");

    rl.d(0).nautobot_off();
    let c0 = rl.d(0).counters();
    let outage = Duration::from_secs(20);
    let t = Instant::now();
    let l = thread::scope(|s| {
        let client = s.spawn(|| {
            // INIT-REBOOT for three seconds, then DISCOVER every 1-2 s.
            g.dhclient(&dhclient_opts(
                &g,
                60,
                "",
                Some(lease_text(ip(5), SERVER0, 3600)),
                &[],
            ))
        });
        thread::sleep(outage);
        rl.d(0).nautobot_on();
        client.join().unwrap()
    });
    let c1 = rl.d(0).counters();
    l.expect_bound();
    no_nak(&l);
    assert_eq!(l.ip(), Some(ip(5)), "{l}");
    assert!(t.elapsed() >= outage, "bound during the outage\n{l}");
    let failures = c1.errors() - c0.errors();
    let warnings = rl.d(0).log_lines("nautobot failed for");
    eprintln!(
        "RESULT outage of {outage:?}: {failures} failed jobs, {} warning lines, first: {:?}; \
         counters:\n{c1}",
        warnings.len(),
        warnings.first()
    );
    assert!(failures >= 5, "too few requests during the outage\n{c1}");
    assert!(
        !warnings.is_empty() && warnings.len() <= 3,
        "the failure must be logged, once per 10 s: {warnings:#?}"
    );
    assert!(
        warnings[0].contains("cannot connect") && warnings[0].contains("no answer sent"),
        "unclear warning: {}",
        warnings[0]
    );
    assert_eq!(
        c1.answer("DHCPNAK"),
        c0.answer("DHCPNAK"),
        "NAK during the outage\n{c1}"
    );

    // Nautobot unreachable from the start: the preparation fails, and the
    // first job does it once Nautobot answers.
    rl.d(0).stop();
    rl.d(0).nautobot_off();
    let prepared = rl.d(0).start(&RelayConfig::default(), &["-a"]);
    assert!(!prepared, "preparation cannot succeed without Nautobot");
    let g2 = rl.guest("tap2", MAC3);
    let l = g2.dhclient(&dhclient_opts(&g2, 6, "", None, &[]));
    assert!(!l.bound, "{l}");
    no_nak(&l);
    rl.d(0).nautobot_on();
    let l = dora(&g2, "");
    assert_eq!(l.ip(), Some(ip(6)), "{l}");
}

/// The iPXE client of the captures, relayed: a device marked for
/// redeployment gets the iPXE script as boot file and the TFTP server; the
/// same client as a legacy PXE ROM gets the BIOS file; without the
/// redeploy guard it gets no boot options at all.
#[test]
fn pxe_client_gets_boot_options_from_config_context() {
    let test = "pxe_client_gets_boot_options_from_config_context";
    let Some((nb, mut rl)) = setup(test, 1) else {
        return;
    };
    let api = &nb.api;
    let name = "nfdt-pxe-01";
    let mac = "14:18:77:aa:bb:08";
    let ctx = json!({"pydhcp_configuration": {
        "tftp_server": "192.0.2.69",
        "pxe_boot_file": "pxelinux.0",
        "uefi_boot_file": "grubx64.efi",
        "ipxe_script": "http://192.0.2.69/boot.ipxe",
        "dns_servers": ["192.0.2.54", "192.0.2.55"],
    }});
    let device = create_pxe_device(api, name, mac, &ctx);
    rl.d(0).start(&RelayConfig::default(), &[]);
    let g = rl.guest("tap8", mac);
    let rx = PacketRx::open(&g.ns.name, &g.ifname);
    let sock = client_socket(&g.ns.name, &g.ifname);
    let captures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/captures");
    let discover = pcap_udp_payload(&captures.join("pydhcp-discover.selecting.pxe.pcap"));
    let request = pcap_udp_payload(&captures.join("pydhcp-request.selecting.pxe.pcap"));
    let mac_b = mac_octets(mac);

    let exchange = |d: &[u8], xid: u32, want: MessageType| -> Message {
        let mut p = d.to_vec();
        retarget(&mut p, &mac_b, xid);
        sock.send_to(&p, SocketAddrV4::new(Ipv4Addr::BROADCAST, 67))
            .unwrap();
        rx.recv_dhcp(Duration::from_secs(10), |m| {
            m.xid() == xid && m.opts().msg_type() == Some(want)
        })
        .unwrap_or_else(|| panic!("no {want:?} for xid {xid:#x}"))
    };

    // iPXE (user class "iPXE"): the script, and the TFTP server.
    let offer = exchange(&discover, 0x4e0f_0001, MessageType::Offer);
    assert_eq!(offer.yiaddr(), ip(5));
    assert_eq!(
        text_opt(&offer, OptionCode::BootfileName).as_deref(),
        Some("http://192.0.2.69/boot.ipxe")
    );
    assert_eq!(
        text_opt(&offer, OptionCode::TFTPServerName).as_deref(),
        Some("192.0.2.69")
    );
    assert_eq!(
        offer.opts().get(OptionCode::DomainNameServer),
        Some(&DhcpOption::DomainNameServer(vec![ip(54), ip(55)])),
        "DNS servers from the config context"
    );
    let server = match offer.opts().get(OptionCode::ServerIdentifier) {
        Some(DhcpOption::ServerIdentifier(a)) => *a,
        other => panic!("server identifier {other:?}"),
    };
    assert_eq!(server, SERVER0);
    let mut req = request.clone();
    let opts = dhcp_option_offsets(&req);
    for (code, a) in [(54u8, server), (50, offer.yiaddr())] {
        let (i, len) = opts[&code];
        assert_eq!(len, 4);
        req[i + 2..i + 6].copy_from_slice(&a.octets());
    }
    let ack = exchange(&req, 0x4e0f_0001, MessageType::Ack);
    assert_eq!(ack.yiaddr(), ip(5));
    assert_eq!(
        text_opt(&ack, OptionCode::BootfileName).as_deref(),
        Some("http://192.0.2.69/boot.ipxe")
    );

    // The same ROM before it chain-loads iPXE (no user class): BIOS file.
    let mut bios = discover.clone();
    let (i, len) = dhcp_option_offsets(&bios)[&77];
    bios[i..i + 2 + len].fill(0);
    let offer = exchange(&bios, 0x4e0f_0002, MessageType::Offer);
    assert_eq!(
        text_opt(&offer, OptionCode::BootfileName).as_deref(),
        Some("pxelinux.0")
    );
    assert_eq!(
        text_opt(&offer, OptionCode::TFTPServerName).as_deref(),
        Some("192.0.2.69")
    );
    assert_eq!(offer.siaddr(), ip(69), "siaddr names the boot server");

    // The guard: confirm_redeploy must repeat the device's name, and
    // redeploy must be set.
    for cfs in [
        json!({"redeploy": true, "confirm_redeploy": "another-device"}),
        json!({"redeploy": false, "confirm_redeploy": name}),
    ] {
        let (s, body) = api.send(
            "PATCH",
            &format!("/api/dcim/devices/{device}/"),
            &json!({"custom_fields": cfs}),
        );
        assert_eq!(s, 200, "{body}");
        let offer = exchange(&discover, 0x4e0f_0003, MessageType::Offer);
        assert_eq!(offer.yiaddr(), ip(5), "{cfs}");
        assert_eq!(text_opt(&offer, OptionCode::BootfileName), None, "{cfs}");
        assert_eq!(text_opt(&offer, OptionCode::TFTPServerName), None, "{cfs}");
    }
    assert!(
        !rl.d(0)
            .log_lines("confirm_redeploy does not match")
            .is_empty(),
        "the mismatch must be logged"
    );
}

fn text_opt(m: &Message, code: OptionCode) -> Option<String> {
    match m.opts().get(code) {
        Some(DhcpOption::BootfileName(b)) | Some(DhcpOption::TFTPServerName(b)) => {
            Some(String::from_utf8_lossy(b).into_owned())
        }
        _ => None,
    }
}

/// Makes a captured request this test's client's: xid, chaddr, and the
/// MAC inside the client identifier.
fn retarget(p: &mut [u8], mac: &[u8; 6], xid: u32) {
    p[4..8].copy_from_slice(&xid.to_be_bytes());
    p[28..34].copy_from_slice(mac);
    if let Some(&(i, len)) = dhcp_option_offsets(p).get(&61) {
        assert_eq!(len, 7, "client identifier of type 1");
        p[i + 3..i + 9].copy_from_slice(mac);
    }
}

/// A device like the seeded one, with interface MAC `mac`, the config
/// context `ctx` and the redeploy custom fields set; returns its id. The
/// custom fields are created (marked as the tests') when missing.
fn create_pxe_device(api: &Api, name: &str, mac: &str, ctx: &Value) -> String {
    let existing: Vec<String> = api
        .list("/api/extras/custom-fields/?content_types=dcim.device")
        .iter()
        .filter_map(|f| f["key"].as_str().map(str::to_owned))
        .collect();
    for (key, kind) in [("redeploy", "boolean"), ("confirm_redeploy", "text")] {
        if !existing.iter().any(|k| k == key) {
            let (s, body) = api.send(
                "POST",
                "/api/extras/custom-fields/",
                &json!({"label": key, "key": key, "type": kind,
                        "content_types": ["dcim.device"], "description": TEST_MARKER}),
            );
            assert_eq!(s, 201, "custom field {key}: {body}");
        }
    }
    let seeded = api.list("/api/dcim/devices/?name=bmc-test-01");
    let seeded = seeded.first().expect("seeded device bmc-test-01");
    let (s, dev) = api.send(
        "POST",
        "/api/dcim/devices/",
        &json!({
            "name": name,
            "device_type": seeded["device_type"]["id"],
            "role": seeded["role"]["id"],
            "location": seeded["location"]["id"],
            "status": "Active",
            "local_config_context_data": ctx,
            "custom_fields": {"redeploy": true, "confirm_redeploy": name},
        }),
    );
    assert_eq!(s, 201, "device: {dev}");
    let id = dev["id"].as_str().unwrap().to_owned();
    let (s, body) = api.send(
        "POST",
        "/api/dcim/interfaces/",
        &json!({"device": id, "name": "bmc0", "type": "1000base-t",
                "status": "Active", "mac_address": mac}),
    );
    assert_eq!(s, 201, "interface: {body}");
    id
}
