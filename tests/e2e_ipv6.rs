//! IPv6 end to end: Router Advertisements, Neighbor Advertisements and
//! DHCPv6 from nfdhcpd in a host namespace behind ip6tables NFQUEUE rules,
//! checked with rdisc6, ndisc6, ISC dhclient -6, tcpdump and the guest
//! kernel's own SLAAC and neighbour discovery in guest namespaces.
//! Needs root; see tests/common/mod.rs for the harness.

mod common;

use std::net::Ipv6Addr;
use std::time::Duration;

use common::*;

const MAC0: &str = "aa:6b:39:22:33:44";
const MAC1: &str = "aa:6b:39:22:33:55";
const MAC2: &str = "aa:6b:39:22:33:66";
const SUBNET6: &str = "2001:db8:aaaa:bbbb::/64";
const SUBNET6_B: &str = "2001:db8:aaaa:cccc::/64";
/// Long enough for the guest kernel's first RS (after DAD of its
/// link-local) or a periodic RA of a 2 s period, plus DAD of the address.
const SLAAC_TIMEOUT: Duration = Duration::from_secs(10);

fn ip6(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

fn nameservers6() -> Vec<Ipv6Addr> {
    vec![ip6("2001:db8:100::1"), ip6("2001:db8:200::2")]
}

fn domains() -> Vec<String> {
    vec!["example.com".into(), "vm.example.org".into()]
}

/// A routed lab with the three IPv6 queue rules.
fn routed6(test: &str) -> Option<Lab> {
    let mut lab = Lab::new(test)?;
    lab.nfqueue6_routed();
    Some(lab)
}

/// The MAC of a host interface and the link-local address the daemon
/// answers from (the EUI-64 of that MAC).
fn host_ll(lab: &Lab, dev: &str) -> (String, Ipv6Addr) {
    let mac = lab.host.mac_of(dev);
    let ll = link_local(&mac);
    (mac, ll)
}

/// First lines of the packets in a tcpdump capture that contain `what`.
fn packets<'a>(capture: &'a str, what: &str) -> Vec<&'a str> {
    capture
        .lines()
        .filter(|l| !l.starts_with(char::is_whitespace) && l.contains(what))
        .collect()
}

/// Seconds left on a route (`expires 899sec`).
fn expires(route: &str) -> u32 {
    let mut w = route.split_whitespace();
    w.find(|t| *t == "expires")
        .and_then(|_| w.next())
        .and_then(|v| v.strip_suffix("sec"))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no expiry: {route}"))
}

/// The RA of `b` as configured in `ra_carries_every_option`.
fn assert_ra(ra: &Ra, b: &Binding, indev_mac: &str, mode: &str, router_lifetime: u32) {
    let ctx = format!("{mode}, {}: {ra:#?}", b.tap);
    assert_eq!(
        ra.from,
        Some(link_local(indev_mac)),
        "source address, {ctx}"
    );
    assert_eq!(
        ra.source_lladdr.as_deref(),
        Some(indev_mac),
        "source link-layer address option, {ctx}"
    );
    assert_eq!(ra.cur_hop_limit, 64, "Cur Hop Limit, {ctx}");
    assert_eq!(
        ra.router_lifetime, router_lifetime,
        "router lifetime, {ctx}"
    );
    assert_eq!(
        ra.prefixes,
        vec![PrefixInfo {
            prefix: b.subnet6.clone().unwrap(),
            on_link: true,
            autonomous: true,
            valid: 86400,
            preferred: 14400,
        }],
        "prefix information, {ctx}"
    );
    assert_eq!(ra.rdnss, nameservers6(), "RDNSS, {ctx}");
    // Default dns_lifetime: 3 x ra_period (300 s).
    assert_eq!(ra.rdnss_lifetime, Some(900), "RDNSS lifetime, {ctx}");
    assert_eq!(ra.dnssl, domains(), "DNSSL, {ctx}");
    assert_eq!(ra.dnssl_lifetime, Some(900), "DNSSL lifetime, {ctx}");
    assert_eq!(ra.mtu, b.mtu.map(u32::from), "MTU option, {ctx}");
    let (managed, other) = match mode {
        "slaac" => (false, false),
        "slaac+dhcpv6" => (false, true),
        "dhcpv6" => (true, true),
        _ => unreachable!(),
    };
    assert_eq!(ra.managed, managed, "M flag, {ctx}");
    assert_eq!(ra.other, other, "O flag, {ctx}");
}

/// rdisc6 gets the RA with every option, in each of the three modes: the
/// configured lifetimes, RDNSS and DNSSL with the default 3 x ra_period
/// lifetime, the MTU option only with MTU=, the O/M flags by mode, router
/// lifetime 0 for a PRIVATE binding. tcpdump in the guest checks what
/// rdisc6 does not show: IP hop limit 255 (rdisc6 drops anything else, as
/// RFC 4861 requires), the Ethernet source and the all-nodes destination.
#[test]
fn ra_carries_every_option() {
    let Some(mut lab) = routed6("ra_carries_every_option") else {
        return;
    };
    let mut b0 = Binding::new("tap0", "192.0.2.100", MAC0).with_ipv6(SUBNET6);
    b0.mtu = Some(1400);
    let b1 = Binding::new("tap1", "192.0.2.101", MAC1).with_ipv6(SUBNET6_B);
    let mut b2 = Binding::new("tap2", "192.0.2.102", MAC2).with_ipv6(SUBNET6);
    b2.private = true;
    let guests: Vec<Guest> = [&b0, &b1, &b2]
        .iter()
        .map(|b| {
            lab.write_binding(b);
            lab.guest(&b.tap, &b.mac)
        })
        .collect();
    for g in &guests {
        g.wait_link_local(Duration::from_secs(5));
    }
    let capture = guests[0].ns.tcpdump(
        &guests[0].ifname,
        "icmp6 and ip6[40] == 134",
        &lab.tmp.join("ra.pcap.txt"),
    );

    for mode in ["slaac", "slaac+dhcpv6", "dhcpv6"] {
        let mut cfg = DaemonConfig::ipv6(mode, 300);
        cfg.router_lifetime = Some(1800);
        cfg.prefix_valid_lifetime = Some(86400);
        cfg.prefix_preferred_lifetime = Some(14400);
        lab.start_daemon_with(&cfg);
        for (g, b) in guests.iter().zip([&b0, &b1, &b2]) {
            let r = g.rdisc6(&["-1", "-w", "2000"]);
            let (tap_mac, _) = host_ll(&lab, &b.tap);
            let lifetime = if b.private { 0 } else { 1800 };
            assert_ra(r.ra(), b, &tap_mac, mode, lifetime);
        }
        assert!(
            lab.daemon_log_count(&format!("tap0 {MAC0} RS -> RA")) >= 1,
            "no solicited RA logged ({mode})\n{}",
            lab.daemon_log()
        );
        lab.stop_daemon();
    }

    let (tap_mac, tap_ll) = host_ll(&lab, "tap0");
    let text = capture.text();
    let ras = packets(&text, "router advertisement");
    assert!(ras.len() >= 3, "RAs not captured:\n{text}");
    for l in ras {
        assert!(l.contains("hlim 255,"), "hop limit not 255: {l}");
        assert!(
            l.contains(&format!(" {tap_mac} > 33:33:00:00:00:01,")),
            "Ethernet addresses: {l}"
        );
        assert!(
            l.contains(&format!(" {tap_ll} > ff02::1:")),
            "IPv6 addresses: {l}"
        );
    }
}

/// With no Router Solicitation at all (router_solicitations = 0 before the
/// interface comes up), the periodic RAs alone make the guest kernel form
/// the binding's EUI64 address and a default route via the tap's
/// link-local address, within a couple of periods.
#[test]
fn guest_kernel_slaac_from_periodic_ras() {
    let Some(mut lab) = routed6("guest_kernel_slaac_from_periodic_ras") else {
        return;
    };
    let b = Binding::new("tap0", "192.0.2.100", MAC0).with_ipv6(SUBNET6);
    let g = lab.guest_down("tap0", MAC0);
    g.sysctl6("router_solicitations", "0");
    lab.write_binding(&b);
    lab.start_daemon_with(&DaemonConfig::ipv6("slaac", 2));
    let (_, tap_ll) = host_ll(&lab, "tap0");
    let eui64 = b.eui64.unwrap();

    g.up();
    let took = g.wait_slaac(eui64, tap_ll, SLAAC_TIMEOUT);
    let took = took.unwrap_or_else(|| {
        panic!(
            "no SLAAC after {SLAAC_TIMEOUT:?}: {:?}\n{}\n{}",
            g.addrs6(),
            g.routes6(),
            lab.daemon_log()
        )
    });
    eprintln!("SLAAC from periodic RAs after {took:.1?}");
    // At worst: DAD of the link-local address, one period, DAD of the
    // new address (each DAD up to 2 s).
    assert!(took < Duration::from_secs(7), "slow: {took:?}");

    let a = g.addr6(eui64).unwrap();
    assert_eq!(a.prefix_len, 64, "{a:?}");
    assert!(!a.dadfailed(), "{a:?}");
    // The daemon's defaults: 30 and 7 days, counting down from the last RA.
    let valid = a.valid_lft().unwrap();
    let preferred = a.preferred_lft().unwrap();
    assert!((2_591_990..=2_592_000).contains(&valid), "{a:?}");
    assert!((604_790..=604_800).contains(&preferred), "{a:?}");
    let route = g.default_route6().unwrap();
    assert!(route.contains("proto ra"), "{route}");
    assert_eq!(
        g.addrs6().len(),
        2,
        "link-local and EUI64 only: {:?}",
        g.addrs6()
    );

    let log = lab.daemon_log();
    assert!(!log.contains("RS -> RA"), "an RS was answered:\n{log}");
    assert!(log.contains("periodic RAs sent: 1"), "{log}");
}

/// The guest kernel resolves GATEWAY6 to the tap's MAC through the
/// daemon's NA (router flag set), ndisc6 gets the tap's MAC for the host
/// link-local and GATEWAY6, and neither an NS for the guest's own address
/// nor a duplicate address detection probe is answered, although an NS for
/// any other address of SUBNET6 is.
#[test]
fn neighbour_discovery() {
    let Some(mut lab) = routed6("neighbour_discovery") else {
        return;
    };
    let b = Binding::new("tap0", "192.0.2.100", MAC0).with_ipv6(SUBNET6);
    lab.write_binding(&b);
    lab.start_daemon_with(&DaemonConfig::ipv6("slaac", 300));
    let g = lab.guest("tap0", MAC0);
    let (tap_mac, tap_ll) = host_ll(&lab, "tap0");
    let (gw6, eui64) = (b.gateway6.unwrap(), b.eui64.unwrap());
    g.wait_slaac(eui64, tap_ll, SLAAC_TIMEOUT)
        .unwrap_or_else(|| panic!("no SLAAC: {:?}\n{}", g.addrs6(), g.routes6()));
    let capture = g.ns.tcpdump(
        &g.ifname,
        "icmp6 and ip6[40] == 136",
        &lab.tmp.join("na.pcap.txt"),
    );

    // The ping may go unanswered (nothing owns GATEWAY6 on the host); the
    // neighbour entry it leaves is the point.
    g.ping6(gw6);
    let n = poll(Duration::from_secs(5), || {
        g.neigh6(gw6).filter(|n| {
            n.lladdr.is_some() && ["REACHABLE", "STALE", "DELAY", "PROBE"].contains(&&*n.state)
        })
    })
    .unwrap_or_else(|| panic!("GATEWAY6 not resolved: {:?}", g.neigh6(gw6)));
    assert_eq!(n.lladdr.as_deref(), Some(tap_mac.as_str()), "{n:?}");
    assert!(n.router, "NA without the router flag: {n:?}");

    for target in [tap_ll, gw6, ip6("2001:db8:aaaa:bbbb::77")] {
        let (mac, out) = g.ndisc6(target, 3, 1000);
        assert_eq!(mac.as_deref(), Some(tap_mac.as_str()), "{target}:\n{out}");
        assert!(
            lab.daemon_log_count(&format!("tap0 {MAC0} NS -> NA {target}")) >= 1,
            "not answered by the daemon: {target}\n{}",
            lab.daemon_log()
        );
    }

    // The guest's own address: no answer, though the NS reached the daemon.
    let refused = "tap0: neighbour discovery refused: not_our_address";
    let before = lab.daemon_log_count(refused);
    let (mac, out) = g.ndisc6(eui64, 2, 500);
    assert_eq!(mac, None, "own address claimed:\n{out}");
    assert!(out.contains("No response"), "{out}");
    let after_own = lab.daemon_log_count(refused);
    assert!(after_own > before, "the NS never reached the daemon");

    // A duplicate address detection probe (source ::) for an address of
    // SUBNET6 that the daemon would otherwise claim.
    let probe = ip6("2001:db8:aaaa:bbbb::1234");
    g.ns.run(&[
        "ip",
        "-6",
        "addr",
        "add",
        &format!("{probe}/64"),
        "dev",
        &g.ifname,
    ]);
    let a = poll(Duration::from_secs(5), || {
        g.addr6(probe).filter(|a| !a.tentative())
    })
    .unwrap_or_else(|| panic!("DAD did not finish: {:?}", g.addrs6()));
    assert!(!a.dadfailed(), "DAD probe answered: {a:?}");
    assert!(
        lab.daemon_log_count(refused) > after_own,
        "the DAD probe never reached the daemon\n{}",
        lab.daemon_log()
    );

    // The capture also holds the guest's own NAs: the guest kernel
    // answers ndisc6's looped-back NS for its own address on the wire.
    let text = capture.text();
    let from_host = format!(" {tap_mac} > {MAC0},");
    let nas: Vec<&str> = packets(&text, "neighbor advertisement")
        .into_iter()
        .filter(|l| l.contains(&from_host))
        .collect();
    for target in [eui64, probe] {
        assert!(
            !nas.iter().any(|l| l.contains(&format!("tgt is {target},"))),
            "NA for {target}:\n{text}"
        );
    }
    assert!(nas.len() >= 3, "NAs not captured:\n{text}");
    for l in nas {
        assert!(l.contains("hlim 255,"), "hop limit not 255: {l}");
        assert!(l.contains("Flags [router, solicited, override]"), "{l}");
    }
}

/// dhclient -6 -S (Information-Request) gets the DNS servers and the
/// search list, from the DUID-LL of the tap's MAC.
#[test]
fn dhcpv6_information_request() {
    let Some(mut lab) = routed6("dhcpv6_information_request") else {
        return;
    };
    let b = Binding::new("tap0", "192.0.2.100", MAC0).with_ipv6(SUBNET6);
    lab.write_binding(&b);
    lab.start_daemon_with(&DaemonConfig::ipv6("slaac+dhcpv6", 300));
    let g = lab.guest("tap0", MAC0);
    g.wait_link_local(Duration::from_secs(5));
    let (tap_mac, _) = host_ll(&lab, "tap0");

    let l = g.dhclient6(&Dhcp6Opts {
        stateless: true,
        ..Default::default()
    });
    l.expect_bound();
    assert!(l.status.is_some_and(|s| s.success()), "{l}");
    assert_eq!(l.name_servers(), nameservers6(), "{l}");
    assert_eq!(l.domain_search(), domains(), "{l}");
    assert_eq!(l.server_id(), Some(duid_ll(&tap_mac).as_str()), "{l}");
    assert!(
        l.var("new_dhcp6_client_id").is_some(),
        "client id not echoed\n{l}"
    );
    assert_eq!(l.ip6_address(), None, "{l}");
    assert!(
        lab.daemon_log_count(&format!("tap0 {MAC0} DHCPv6 INFORMATION-REQUEST -> REPLY")) == 1,
        "{}",
        lab.daemon_log()
    );
}

/// mode = dhcpv6: dhclient -6 gets the binding's EUI64 address in its
/// IA_NA, or IP6= when the binding sets it, with the configured lifetimes
/// (T1/T2 half and four fifths of the preferred lifetime).
#[test]
fn dhcpv6_stateful_address() {
    let Some(mut lab) = routed6("dhcpv6_stateful_address") else {
        return;
    };
    let b0 = Binding::new("tap0", "192.0.2.100", MAC0).with_ipv6(SUBNET6);
    let mut b1 = Binding::new("tap1", "192.0.2.101", MAC1).with_ipv6(SUBNET6);
    b1.ip6 = Some(ip6("2001:db8:aaaa:bbbb::100"));
    lab.write_binding(&b0);
    lab.write_binding(&b1);
    let mut cfg = DaemonConfig::ipv6("dhcpv6", 300);
    cfg.prefix_valid_lifetime = Some(7200);
    cfg.prefix_preferred_lifetime = Some(3600);
    lab.start_daemon_with(&cfg);
    let g0 = lab.guest("tap0", MAC0);
    let g1 = lab.guest("tap1", MAC1);

    for (g, b, want) in [(&g0, &b0, b0.eui64), (&g1, &b1, b1.ip6)] {
        g.wait_link_local(Duration::from_secs(5));
        let (tap_mac, _) = host_ll(&lab, &b.tap);
        let l = g.dhclient6(&Dhcp6Opts::default());
        l.expect_bound();
        assert!(l.reasons.iter().any(|r| r == "BOUND6"), "{l}");
        assert_eq!(l.ip6_address(), want, "{l}");
        assert_eq!(l.max_life(), Some(7200), "{l}");
        assert_eq!(l.preferred_life(), Some(3600), "{l}");
        assert_eq!(l.renew(), Some(1800), "{l}");
        assert_eq!(l.rebind(), Some(2880), "{l}");
        assert_eq!(l.name_servers(), nameservers6(), "{l}");
        assert_eq!(l.domain_search(), domains(), "{l}");
        assert_eq!(l.server_id(), Some(duid_ll(&tap_mac).as_str()), "{l}");
        let want = want.unwrap();
        assert!(
            lab.daemon_log_count(&format!(
                "{} {} DHCPv6 REQUEST -> REPLY {want}",
                b.tap, b.mac
            )) == 1,
            "{}",
            lab.daemon_log()
        );
    }
}

/// Removing a binding withdraws the host as the guest's router (final RA
/// with router lifetime 0): the guest drops its default route at once,
/// long before the 900 s router lifetime, and keeps its address; the other
/// guest keeps its route until the daemon stops with SIGTERM.
#[test]
fn withdrawal_on_binding_removal_and_exit() {
    let Some(mut lab) = routed6("withdrawal_on_binding_removal_and_exit") else {
        return;
    };
    let b0 = Binding::new("tap0", "192.0.2.100", MAC0).with_ipv6(SUBNET6);
    let b1 = Binding::new("tap1", "192.0.2.101", MAC1).with_ipv6(SUBNET6_B);
    lab.write_binding(&b0);
    lab.write_binding(&b1);
    lab.start_daemon_with(&DaemonConfig::ipv6("slaac", 300));
    let g0 = lab.guest("tap0", MAC0);
    let g1 = lab.guest("tap1", MAC1);
    for (g, b) in [(&g0, &b0), (&g1, &b1)] {
        let (_, ll) = host_ll(&lab, &b.tap);
        g.wait_slaac(b.eui64.unwrap(), ll, SLAAC_TIMEOUT)
            .unwrap_or_else(|| panic!("no SLAAC: {:?}\n{}", g.addrs6(), g.routes6()));
        let route = g.default_route6().unwrap();
        let left = expires(&route);
        assert!(
            (890..=900).contains(&left),
            "router lifetime not 900 s: {route}"
        );
    }

    lab.remove_binding("tap0");
    let gone = poll(Duration::from_secs(5), || {
        g0.default_route6().is_none().then_some(())
    });
    assert!(gone.is_some(), "default route kept: {}", g0.routes6());
    assert!(g0.addr6(b0.eui64.unwrap()).is_some(), "{:?}", g0.addrs6());
    assert!(g1.default_route6().is_some(), "{}", g1.routes6());

    lab.stop_daemon();
    let gone = poll(Duration::from_secs(5), || {
        g1.default_route6().is_none().then_some(())
    });
    assert!(gone.is_some(), "default route kept: {}", g1.routes6());
    let log = lab.daemon_log();
    assert!(log.contains("binding tap0 removed"), "{log}");
    assert!(
        log.contains("withdrew router advertisements on 1 interfaces"),
        "{log}"
    );
}

/// Periodic RAs carry on when the tap is deleted and created again (a VM
/// restart): a guest that never solicits gets its address and a default
/// route via the new tap's link-local address.
#[test]
fn periodic_ras_survive_tap_recreation() {
    let Some(mut lab) = routed6("periodic_ras_survive_tap_recreation") else {
        return;
    };
    let b = Binding::new("tap0", "192.0.2.100", MAC0).with_ipv6(SUBNET6);
    let eui64 = b.eui64.unwrap();
    let g = lab.guest_down("tap0", MAC0);
    lab.write_binding(&b);
    lab.start_daemon_with(&DaemonConfig::ipv6("slaac", 2));
    g.sysctl6("router_solicitations", "0");
    g.up();
    let (_, old_ll) = host_ll(&lab, "tap0");
    g.wait_slaac(eui64, old_ll, SLAAC_TIMEOUT)
        .unwrap_or_else(|| panic!("no SLAAC: {:?}\n{}", g.addrs6(), g.routes6()));

    let idle = "periodic RAs sent: 0";
    let before = lab.daemon_log_count(idle);
    lab.delete_tap(&g);
    // At least one period passes without the tap.
    let ticked = poll(Duration::from_secs(5), || {
        (lab.daemon_log_count(idle) > before).then_some(())
    });
    assert!(ticked.is_some(), "no periodic RA run\n{}", lab.daemon_log());
    lab.assert_daemon_alive();

    lab.recreate_tap(&g);
    let new_mac = "02:00:00:00:07:02";
    lab.host
        .run(&["ip", "link", "set", "dev", "tap0", "address", new_mac]);
    g.sysctl6("router_solicitations", "0");
    g.up();
    let took = g
        .wait_slaac(eui64, link_local(new_mac), SLAAC_TIMEOUT)
        .unwrap_or_else(|| {
            panic!(
                "no SLAAC on the new tap: {:?}\n{}\n{}",
                g.addrs6(),
                g.routes6(),
                lab.daemon_log()
            )
        });
    eprintln!("SLAAC on the re-created tap after {took:.1?}");
    assert!(
        !lab.daemon_log().contains("RS -> RA"),
        "{}",
        lab.daemon_log()
    );
    lab.assert_daemon_alive();
}

/// A guest whose source MAC is not MAC= gets no RA, no NA and no DHCPv6
/// reply, and its packets do not reach the host's stack either; with
/// MACSPOOF=1 it gets all three.
#[test]
fn spoofed_mac_needs_macspoof() {
    let Some(mut lab) = routed6("spoofed_mac_needs_macspoof") else {
        return;
    };
    let mut b = Binding::new("tap0", "192.0.2.100", MAC0).with_ipv6(SUBNET6);
    lab.write_binding(&b);
    lab.count_input6("tap0");
    lab.start_daemon_with(&DaemonConfig::ipv6("slaac+dhcpv6", 300));
    let g = lab.guest("tap0", "aa:00:00:00:99:01");
    g.wait_link_local(Duration::from_secs(5));
    let (tap_mac, tap_ll) = host_ll(&lab, "tap0");
    let gw6 = b.gateway6.unwrap();

    let r = g.rdisc6(&["-1", "-w", "1000", "-r", "2"]);
    assert!(r.ras.is_empty(), "RA for a spoofed MAC:\n{}", r.out);
    let l = g.dhclient6(&Dhcp6Opts {
        stateless: true,
        timeout: 3,
    });
    assert!(!l.bound, "DHCPv6 reply for a spoofed MAC\n{l}");
    let (mac, out) = g.ndisc6(gw6, 2, 500);
    assert_eq!(mac, None, "NA for a spoofed MAC:\n{out}");
    assert!(
        lab.daemon_log()
            .contains("source MAC is not the binding's aa:6b:39:22:33:44 (spoofing?)"),
        "{}",
        lab.daemon_log()
    );
    assert_eq!(lab.input6_counts("tap0"), Input6Counts::default());

    b.macspoof = true;
    lab.write_binding(&b);
    let r = g.rdisc6(&["-1", "-w", "2000"]);
    assert_eq!(r.ra().from, Some(tap_ll), "{}", r.out);
    let l = g.dhclient6(&Dhcp6Opts {
        stateless: true,
        ..Default::default()
    });
    assert_eq!(l.expect_bound().name_servers(), nameservers6(), "{l}");
    let (mac, out) = g.ndisc6(gw6, 3, 1000);
    assert_eq!(mac.as_deref(), Some(tap_mac.as_str()), "{out}");
    let log = lab.daemon_log();
    assert!(log.contains("tap0 aa:00:00:00:99:01 RS -> RA"), "{log}");
    assert!(
        log.contains("tap0 aa:00:00:00:99:01 DHCPv6 INFORMATION-REQUEST -> REPLY"),
        "{log}"
    );
    assert!(
        log.contains(&format!("tap0 aa:00:00:00:99:01 NS -> NA {gw6}")),
        "{log}"
    );
    assert_eq!(lab.input6_counts("tap0"), Input6Counts::default());
}

/// A tap without a binding: the daemon passes RS, NS and DHCPv6 on to the
/// host's stack. The host kernel itself answers the NS for its link-local
/// address (no router flag: the daemon's NAs have it), a unicast RS and the
/// DHCPv6 Information-Request arrive in the INPUT chain, and the DHCPv6
/// packet reaches a socket listening on the tap. The bound tap next to it
/// is answered by the daemon and passes nothing on.
#[test]
fn unbound_tap_goes_to_kernel() {
    let Some(mut lab) = routed6("unbound_tap_goes_to_kernel") else {
        return;
    };
    let b = Binding::new("tap0", "192.0.2.100", MAC0).with_ipv6(SUBNET6);
    lab.write_binding(&b);
    lab.count_input6("tap0");
    lab.count_input6("tap1");
    lab.start_daemon_with(&DaemonConfig::ipv6("slaac+dhcpv6", 300));
    let g0 = lab.guest("tap0", MAC0);
    let g1 = lab.guest("tap1", MAC1);
    let received = lab.dhcp6_listener("tap1");
    g1.wait_link_local(Duration::from_secs(5));
    // The host kernel answers for its link-local address only after DAD.
    lab.host.wait_link_local("tap1", Duration::from_secs(5));
    let (tap1_mac, tap1_ll) = host_ll(&lab, "tap1");

    assert!(g1.ping6(tap1_ll), "the host did not answer on tap1");
    let n = g1.neigh6(tap1_ll).expect("no neighbour entry");
    assert_eq!(n.lladdr.as_deref(), Some(tap1_mac.as_str()), "{n:?}");
    assert!(!n.router, "answered by the daemon, not the kernel: {n:?}");

    let r = g1.rdisc6(&["-1", "-w", "500", "-r", "1", &tap1_ll.to_string()]);
    assert!(
        r.ras.is_empty(),
        "an RA on a tap without binding:\n{}",
        r.out
    );

    let l = g1.dhclient6(&Dhcp6Opts {
        stateless: true,
        timeout: 2,
    });
    assert!(!l.bound, "a DHCPv6 reply on a tap without binding\n{l}");
    let data = std::fs::read(&received).unwrap_or_default();
    assert_eq!(
        data.first(),
        Some(&11),
        "no Information-Request reached the host: {data:?}"
    );

    let c = lab.input6_counts("tap1");
    assert!(c.rs >= 1 && c.ns >= 1 && c.dhcp6 >= 1, "{c:?}");
    let log = lab.daemon_log();
    assert!(!log.contains("tap1"), "{log}");

    // The bound tap beside it is the daemon's.
    g0.wait_link_local(Duration::from_secs(5));
    lab.host.wait_link_local("tap0", Duration::from_secs(5));
    let (_, tap0_ll) = host_ll(&lab, "tap0");
    let r = g0.rdisc6(&["-1", "-w", "2000"]);
    assert_eq!(r.ra().from, Some(tap0_ll), "{}", r.out);
    assert!(g0.ping6(tap0_ll), "the host did not answer on tap0");
    assert!(g0.neigh6(tap0_ll).is_some_and(|n| n.router));
    assert_eq!(lab.input6_counts("tap0"), Input6Counts::default());
}

/// Bridged setup (taps in br0, physdev rules, bridge-nf-call-ip6tables):
/// rdisc6 gets the RA and the guest kernel configures SLAAC, for a binding
/// answering from its tap and one answering from the bridge (INDEV=br0).
#[test]
fn bridged_setup() {
    let Some(mut lab) = Lab::new("bridged_setup (IPv6)") else {
        return;
    };
    lab.nfqueue6_bridged();
    // Fixed, so that ports joining cannot change it.
    let br_mac = "02:00:00:00:0b:00";
    lab.host
        .run(&["ip", "link", "set", "dev", "br0", "address", br_mac]);
    let b0 = Binding::new("tap0", "192.0.2.100", MAC0).with_ipv6(SUBNET6);
    let mut b1 = Binding::new("tap1", "192.0.2.101", MAC1).with_ipv6(SUBNET6);
    b1.indev = Some("br0".into());
    lab.write_binding(&b0);
    lab.write_binding(&b1);
    lab.start_daemon_with(&DaemonConfig::ipv6("slaac+dhcpv6", 300));
    let g0 = lab.guest("tap0", MAC0);
    let g1 = lab.guest("tap1", MAC1);

    let (tap0_mac, _) = host_ll(&lab, "tap0");
    for (g, b, indev_mac) in [(&g0, &b0, tap0_mac.as_str()), (&g1, &b1, br_mac)] {
        let router = link_local(indev_mac);
        g.wait_slaac(b.eui64.unwrap(), router, SLAAC_TIMEOUT)
            .unwrap_or_else(|| {
                panic!(
                    "{}: no SLAAC: {:?}\n{}\n{}",
                    b.tap,
                    g.addrs6(),
                    g.routes6(),
                    lab.daemon_log()
                )
            });
        let r = g.rdisc6(&["-1", "-w", "2000"]);
        let ra = r.ra();
        assert_eq!(ra.from, Some(router), "{}", r.out);
        assert_eq!(ra.source_lladdr.as_deref(), Some(indev_mac), "{}", r.out);
        assert_eq!(ra.prefixes.len(), 1, "{}", r.out);
        assert_eq!(ra.prefixes[0].prefix, SUBNET6, "{}", r.out);
        let (mac, out) = g.ndisc6(b.gateway6.unwrap(), 3, 1000);
        assert_eq!(mac.as_deref(), Some(indev_mac), "{out}");
        let log = lab.daemon_log();
        assert!(
            log.contains(&format!("{} {} RS -> RA", b.tap, b.mac)),
            "{log}"
        );
    }
}
