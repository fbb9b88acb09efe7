//! DHCPv4 end to end: real clients (ISC dhclient, busybox udhcpc, dhcpcd)
//! in guest namespaces, nfdhcpd in a host namespace behind an NFQUEUE rule.
//! Needs root; see tests/common/mod.rs for the harness.

mod common;

use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::mpsc;
use std::thread;

use common::*;

const MAC0: &str = "aa:6b:39:22:33:44";

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn nameservers() -> Vec<Ipv4Addr> {
    vec![ip("192.0.2.2"), ip("192.0.2.3")]
}

/// A routed lab: NFQUEUE rule, one guest on tap0 with `mac`, the daemon
/// started with `bindings` already in place.
fn routed_lab(test: &str, mac: &str, bindings: &[&Binding]) -> Option<(Lab, Guest)> {
    let mut lab = Lab::new(test)?;
    lab.nfqueue_routed();
    let g = lab.guest("tap0", mac);
    for b in bindings {
        lab.write_binding(b);
    }
    lab.start_daemon();
    Some((lab, g))
}

/// Everything a client must get from a plain binding and the default config.
fn assert_full_lease(l: &Lease, b: &Binding) {
    l.expect_bound();
    assert_eq!(l.ip(), Some(b.ip), "address\n{l}");
    assert_eq!(l.prefix_len(), Some(b.prefix_len()), "prefix length\n{l}");
    assert_eq!(l.routers(), vec![b.gateway.unwrap()], "router\n{l}");
    assert_eq!(l.dns(), nameservers(), "DNS servers\n{l}");
    assert_eq!(l.domain(), Some("example.com"), "domain\n{l}");
    assert_eq!(l.lease_time(), Some(604800), "lease time\n{l}");
    assert_eq!(l.renewal_time(), Some(600), "renewal time\n{l}");
    assert_eq!(l.hostname(), Some(b.hostname.as_str()), "host name\n{l}");
    assert_eq!(l.server_id(), Some(ip("192.0.2.1")), "server id\n{l}");
    assert_eq!(l.mtu(), None, "no MTU option without MTU=\n{l}");
    assert!(l.static_routes().is_empty(), "no option 121\n{l}");
}

fn client_gets_binding(test: &str, c: Client) {
    let b = Binding::new("tap0", "192.0.2.100", MAC0);
    let Some((lab, g)) = routed_lab(test, MAC0, &[&b]) else {
        return;
    };
    let l = g.run_client(c, &ClientOpts::default());
    assert_full_lease(&l, &b);
    if c == Client::Dhcpcd {
        // dhcpcd configures the guest itself.
        assert!(
            g.ipv4_addrs().contains("192.0.2.100/24"),
            "{}",
            g.ipv4_addrs()
        );
        assert!(
            g.ns.routes().contains("default via 192.0.2.1"),
            "{}",
            g.ns.routes()
        );
    }
    lab.assert_daemon_alive();
}

// ---- the harness itself, against dnsmasq ----

/// All three client wrappers read every value correctly (dnsmasq serves
/// what the daemon is expected to serve), report failure when nobody
/// answers, and dhclient's prepared lease leads to INIT-REBOOT and a NAK.
#[test]
fn harness_clients_against_dnsmasq() {
    let Some(lab) = Lab::new("harness_clients_against_dnsmasq") else {
        return;
    };
    let g = lab.guest("tap0", MAC0);
    let silent = lab.guest("tap1", "aa:00:00:00:00:01");
    lab.dnsmasq(
        "tap0",
        "192.0.2.1/24",
        &[
            "--dhcp-range=192.0.2.50,192.0.2.60,255.255.255.0,604800",
            "--dhcp-host=aa:6b:39:22:33:44,192.0.2.100,vm-tap0",
            "--dhcp-option=option:router,192.0.2.1",
            "--dhcp-option=option:dns-server,192.0.2.2,192.0.2.3",
            "--dhcp-option=option:domain-name,example.com",
            "--dhcp-option=option:T1,600",
            "--dhcp-option=option:mtu,1400",
            "--dhcp-option=option:classless-static-route,198.51.100.1/32,0.0.0.0,0.0.0.0/0,198.51.100.1",
        ],
    );
    for c in ALL_CLIENTS {
        let l = g.run_client(c, &ClientOpts::default());
        l.expect_bound();
        assert_eq!(l.ip(), Some(ip("192.0.2.100")), "{l}");
        assert_eq!(l.prefix_len(), Some(24), "{l}");
        assert_eq!(l.routers(), vec![ip("192.0.2.1")], "{l}");
        assert_eq!(l.dns(), nameservers(), "{l}");
        assert_eq!(l.domain(), Some("example.com"), "{l}");
        assert_eq!(l.lease_time(), Some(604800), "{l}");
        assert_eq!(l.renewal_time(), Some(600), "{l}");
        assert_eq!(l.mtu(), Some(1400), "{l}");
        assert_eq!(l.hostname(), Some("vm-tap0"), "{l}");
        assert_eq!(l.server_id(), Some(ip("192.0.2.1")), "{l}");
        assert_eq!(
            l.static_routes(),
            vec![
                ("198.51.100.1/32".to_string(), ip("0.0.0.0")),
                ("0.0.0.0/0".to_string(), ip("198.51.100.1")),
            ],
            "{l}"
        );
        g.flush();
    }

    let l = g.dhclient(&ClientOpts {
        dhclient_lease: Some(foreign_lease("192.0.2.77")),
        ..Default::default()
    });
    assert!(l.log.contains("DHCPNAK"), "{l}");
    assert_eq!(l.ip(), Some(ip("192.0.2.100")), "{l}");

    for c in ALL_CLIENTS {
        let l = silent.run_client(c, &ClientOpts::short(1));
        assert!(!l.bound, "{l}");
        assert!(l.elapsed.as_secs() < 5, "gave up late\n{l}");
    }
}

/// A panicking test leaves no namespace and no process behind.
#[test]
fn harness_cleans_up_after_panic() {
    if !can_run("harness_cleans_up_after_panic") {
        return;
    }
    let (tx, rx) = mpsc::channel();
    let res = thread::spawn(move || {
        let lab = Lab::new("harness_cleans_up_after_panic (deliberate panic)").unwrap();
        let g = lab.guest("tap0", MAC0);
        let pid = g.ns.spawn(&["sleep", "600"], &lab.tmp.join("sleep.log"));
        let orphan = lab
            .host
            .command(&["sh", "-c", "sleep 600 >/dev/null 2>&1 & echo $!"])
            .output()
            .unwrap();
        let orphan: i32 = String::from_utf8_lossy(&orphan.stdout)
            .trim()
            .parse()
            .unwrap();
        tx.send((
            lab.host.name.clone(),
            g.ns.name.clone(),
            pid as i32,
            orphan,
            lab.tmp.path().to_path_buf(),
        ))
        .unwrap();
        panic!("deliberate panic to test cleanup");
    })
    .join();
    assert!(res.is_err());
    let (h, gname, pid, orphan, tmp) = rx.recv().unwrap();
    assert!(!netns_exists(&h), "{h} left behind");
    assert!(!netns_exists(&gname), "{gname} left behind");
    for p in [pid, orphan] {
        let alive = poll(std::time::Duration::from_secs(2), || {
            (!Path::new(&format!("/proc/{p}")).exists()).then_some(())
        });
        assert!(alive.is_some(), "process {p} left running");
    }
    // Kept because of the panic; nothing in it is of interest here.
    std::fs::remove_dir_all(tmp).unwrap();
}

// ---- nfdhcpd ----

#[test]
fn dhclient_gets_binding() {
    client_gets_binding("dhclient_gets_binding", Client::Dhclient);
}

#[test]
fn udhcpc_gets_binding() {
    client_gets_binding("udhcpc_gets_binding", Client::Udhcpc);
}

#[test]
fn dhcpcd_gets_binding() {
    client_gets_binding("dhcpcd_gets_binding", Client::Dhcpcd);
}

/// SIGTERM after serving: exit status 0 within 2 s.
#[test]
fn daemon_stops_on_sigterm() {
    let b = Binding::new("tap0", "192.0.2.100", MAC0);
    let Some((mut lab, g)) = routed_lab("daemon_stops_on_sigterm", MAC0, &[&b]) else {
        return;
    };
    g.udhcpc(&ClientOpts::default()).expect_bound();
    lab.stop_daemon();
}

/// MTU=1400 -> option 26 = 1400, for every client.
#[test]
fn mtu_option() {
    let mut b = Binding::new("tap0", "192.0.2.100", MAC0);
    b.mtu = Some(1400);
    let Some((_lab, g)) = routed_lab("mtu_option", MAC0, &[&b]) else {
        return;
    };
    for c in ALL_CLIENTS {
        let l = g.run_client(c, &ClientOpts::default());
        l.expect_bound();
        assert_eq!(l.ip(), Some(b.ip), "{l}");
        assert_eq!(l.mtu(), Some(1400), "{l}");
        g.flush();
    }
}

/// PRIVATE=1 -> an address but no router.
#[test]
fn private_binding_has_no_router() {
    let mut b = Binding::new("tap0", "192.0.2.100", MAC0);
    b.private = true;
    let Some((_lab, g)) = routed_lab("private_binding_has_no_router", MAC0, &[&b]) else {
        return;
    };
    for c in ALL_CLIENTS {
        let l = g.run_client(c, &ClientOpts::default());
        l.expect_bound();
        assert_eq!(l.ip(), Some(b.ip), "{l}");
        assert_eq!(l.prefix_len(), Some(24), "{l}");
        assert!(l.routers().is_empty(), "router handed out\n{l}");
        assert!(l.static_routes().is_empty(), "routes handed out\n{l}");
        assert_eq!(l.dns(), nameservers(), "{l}");
        if c == Client::Dhcpcd {
            assert!(!g.ns.routes().contains("default"), "{}", g.ns.routes());
        }
        g.flush();
    }
}

/// GATEWAY outside SUBNET (routed setup): option 121 with a host route to
/// the gateway and the default route through it.
#[test]
fn routed_gateway_outside_subnet_gets_classless_routes() {
    let mut b = Binding::new("tap0", "192.0.2.50", MAC0);
    b.gateway = Some(ip("198.51.100.1"));
    let Some((_lab, g)) = routed_lab(
        "routed_gateway_outside_subnet_gets_classless_routes",
        MAC0,
        &[&b],
    ) else {
        return;
    };
    let want = vec![
        ("198.51.100.1/32".to_string(), ip("0.0.0.0")),
        ("0.0.0.0/0".to_string(), ip("198.51.100.1")),
    ];
    for c in ALL_CLIENTS {
        let l = g.run_client(c, &ClientOpts::default());
        l.expect_bound();
        assert_eq!(l.ip(), Some(b.ip), "{l}");
        assert_eq!(l.static_routes(), want, "{l}");
        if c == Client::Dhcpcd {
            // The guest can really use it: dhcpcd installed both routes.
            let r = g.ns.routes();
            assert!(r.contains("default via 198.51.100.1"), "{r}");
            assert!(r.contains("198.51.100.1 dev"), "{r}");
        }
        g.flush();
    }
}

/// A dhclient lease file for `addr` from 192.0.2.1, valid for years: the
/// client starts in INIT-REBOOT and requests it.
fn foreign_lease(addr: &str) -> String {
    format!(
        "lease {{\n  interface \"{{IF}}\";\n  fixed-address {addr};\n  \
         option subnet-mask 255.255.255.0;\n  option dhcp-server-identifier 192.0.2.1;\n  \
         option dhcp-lease-time 604800;\n  renew 4 2037/01/01 00:00:00;\n  \
         rebind 4 2037/01/01 00:00:00;\n  expire 4 2037/01/01 00:00:00;\n}}\n"
    )
}

/// REQUEST for an address that is not the binding's -> NAK; the client
/// then starts over and ends with the binding's address.
#[test]
fn nak_for_foreign_requested_address() {
    let b = Binding::new("tap0", "192.0.2.100", MAC0);
    let Some((_lab, g)) = routed_lab("nak_for_foreign_requested_address", MAC0, &[&b]) else {
        return;
    };
    let l = g.dhclient(&ClientOpts {
        dhclient_lease: Some(foreign_lease("192.0.2.77")),
        ..Default::default()
    });
    assert!(
        l.log.contains("DHCPREQUEST for 192.0.2.77"),
        "dhclient did not try INIT-REBOOT\n{l}"
    );
    assert!(l.log.contains("DHCPNAK from 192.0.2.1"), "no NAK\n{l}");
    assert_full_lease(&l, &b);

    // A foreign address asked for in DISCOVER (option 50) is not given out.
    let l = g.udhcpc(&ClientOpts {
        extra: vec!["-r".into(), "192.0.2.77".into()],
        ..Default::default()
    });
    assert_eq!(l.expect_bound().ip(), Some(b.ip), "{l}");
}

/// Source MAC != MAC= gets nothing, and the packet does not reach the host
/// (dnsmasq on the same tap stays silent); with MACSPOOF=1 it gets the lease.
#[test]
fn spoofed_mac_needs_macspoof() {
    let mut b = Binding::new("tap0", "192.0.2.100", MAC0);
    let Some((lab, g)) = routed_lab("spoofed_mac_needs_macspoof", "aa:00:00:00:99:01", &[&b])
    else {
        return;
    };
    lab.dnsmasq(
        "tap0",
        "198.51.100.1/24",
        &["--dhcp-range=198.51.100.50,198.51.100.60,255.255.255.0,3600"],
    );
    let l = g.udhcpc(&ClientOpts::short(2));
    assert!(!l.bound, "spoofed MAC got an answer\n{l}");
    lab.assert_daemon_alive();

    b.macspoof = true;
    lab.write_binding(&b);
    let l = g.udhcpc(&ClientOpts::default());
    l.expect_bound();
    assert_eq!(l.ip(), Some(b.ip), "{l}");
    assert_eq!(l.server_id(), Some(ip("192.0.2.1")), "{l}");
}

/// A tap without a binding: nfdhcpd lets the packet through to the host,
/// where dnsmasq answers from its own range. The bound tap next to it is
/// still served by nfdhcpd.
#[test]
fn unbound_interface_is_passed_to_kernel() {
    let b = Binding::new("tap0", "192.0.2.100", MAC0);
    let Some((lab, g0)) = routed_lab("unbound_interface_is_passed_to_kernel", MAC0, &[&b]) else {
        return;
    };
    let g1 = lab.guest("tap1", "aa:00:00:00:00:02");
    lab.dnsmasq(
        "tap1",
        "198.51.100.1/24",
        &["--dhcp-range=198.51.100.50,198.51.100.60,255.255.255.0,3600"],
    );
    let l = g1.udhcpc(&ClientOpts::default());
    l.expect_bound();
    let got = l.ip().unwrap();
    assert!(
        (ip("198.51.100.50")..=ip("198.51.100.60")).contains(&got),
        "not from dnsmasq\n{l}"
    );
    assert_eq!(l.server_id(), Some(ip("198.51.100.1")), "{l}");
    assert!(
        lab.daemon_log().contains("ready:"),
        "daemon log lost\n{}",
        lab.daemon_log()
    );

    let l = g0.udhcpc(&ClientOpts::default());
    assert_full_lease(&l, &b);
}

/// Bindings come and go while the daemon runs: added by a plain write,
/// rewritten in place, replaced atomically, deleted, renamed in.
#[test]
fn binding_changes_apply_without_restart() {
    let Some((lab, g)) = routed_lab("binding_changes_apply_without_restart", MAC0, &[]) else {
        return;
    };
    let short = ClientOpts::short(2);
    let mut b = Binding::new("tap0", "192.0.2.100", MAC0);

    let l = g.udhcpc(&short);
    assert!(!l.bound, "answered without a binding\n{l}");

    lab.write_binding_plain(&b);
    assert_eq!(
        g.udhcpc(&ClientOpts::default()).expect_bound().ip(),
        Some(b.ip)
    );

    b.ip = ip("192.0.2.101");
    lab.write_binding_plain(&b);
    let l = g.udhcpc(&ClientOpts::default());
    assert_eq!(l.expect_bound().ip(), Some(b.ip), "plain rewrite\n{l}");

    b.ip = ip("192.0.2.102");
    b.hostname = "renamed".into();
    lab.write_binding(&b);
    let l = g.udhcpc(&ClientOpts::default());
    assert_eq!(l.expect_bound().ip(), Some(b.ip), "atomic replace\n{l}");
    assert_eq!(l.hostname(), Some("renamed"), "{l}");

    lab.remove_binding("tap0");
    let l = g.udhcpc(&short);
    assert!(!l.bound, "answered after the binding was deleted\n{l}");

    b.ip = ip("192.0.2.103");
    lab.rename_binding_in(&b);
    let l = g.udhcpc(&ClientOpts::default());
    assert_eq!(l.expect_bound().ip(), Some(b.ip), "renamed in\n{l}");
    lab.assert_daemon_alive();
}

/// The hypervisor writes the binding first and creates the tap later: both
/// for a file loaded at start-up and for one added while running.
#[test]
fn binding_before_tap_exists() {
    let Some(mut lab) = Lab::new("binding_before_tap_exists") else {
        return;
    };
    lab.nfqueue_routed();
    let b5 = Binding::new("tap5", "192.0.2.105", "aa:00:00:00:00:05");
    let b6 = Binding::new("tap6", "192.0.2.106", "aa:00:00:00:00:06");
    lab.write_binding(&b5);
    lab.start_daemon();
    lab.write_binding(&b6);

    let g5 = lab.guest("tap5", &b5.mac);
    let g6 = lab.guest("tap6", &b6.mac);
    assert_full_lease(&g5.udhcpc(&ClientOpts::default()), &b5);
    assert_full_lease(&g6.dhclient(&ClientOpts::default()), &b6);
}

/// Bridged setup: taps in br0, physdev rule. tap0's binding has the default
/// INDEV, tap1's names the bridge.
#[test]
fn bridged_setup() {
    let Some(mut lab) = Lab::new("bridged_setup") else {
        return;
    };
    lab.nfqueue_bridged();
    let b0 = Binding::new("tap0", "192.0.2.100", MAC0);
    let mut b1 = Binding::new("tap1", "192.0.2.101", "aa:00:00:00:00:11");
    b1.indev = Some("br0".into());
    let g0 = lab.guest("tap0", &b0.mac);
    let g1 = lab.guest("tap1", &b1.mac);
    lab.write_binding(&b0);
    lab.write_binding(&b1);
    lab.start_daemon();
    assert_full_lease(&g0.dhclient(&ClientOpts::default()), &b0);
    assert_full_lease(&g1.udhcpc(&ClientOpts::default()), &b1);
    assert_full_lease(&g0.dhcpcd(&ClientOpts::default()), &b0);
}

/// Twenty guests, each with its own binding, all asking at once (the three
/// clients in turn).
#[test]
fn twenty_guests_at_once() {
    let Some(mut lab) = Lab::new("twenty_guests_at_once") else {
        return;
    };
    lab.nfqueue_routed();
    let bindings: Vec<Binding> = (0..20u8)
        .map(|i| {
            Binding::new(
                &format!("tap{i}"),
                &format!("192.0.2.{}", 101 + i),
                &format!("aa:00:00:00:01:{i:02x}"),
            )
        })
        .collect();
    let guests: Vec<Guest> = bindings.iter().map(|b| lab.guest(&b.tap, &b.mac)).collect();
    for b in &bindings {
        lab.write_binding(b);
    }
    lab.start_daemon();
    let leases: Vec<Lease> = thread::scope(|s| {
        let handles: Vec<_> = guests
            .iter()
            .enumerate()
            .map(|(i, g)| s.spawn(move || g.run_client(ALL_CLIENTS[i % 3], &ClientOpts::default())))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (l, b) in leases.iter().zip(&bindings) {
        assert_full_lease(l, b);
    }
    lab.assert_daemon_alive();
}
