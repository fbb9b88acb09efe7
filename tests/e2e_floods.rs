//! Floods from one guest (DHCPDISCOVER, Router and Neighbor Solicitations,
//! written as raw frames as fast as the guest can): the daemon stays up,
//! its memory stays bounded, the flood is cut by the per-interface and
//! per-client limits (counted), and another guest on another tap is still
//! answered within a second. The daemon is the release build, as shipped.

mod common;

use std::fs;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::relay::in_netns;
use common::*;
use nfdhcpd::core::frame::{self, Udp4Addressing};
use nfdhcpd::core::frame6::{self, finish_icmpv6_frame, Ipv6Addressing, ICMPV6_OFFSET};
use nfdhcpd::core::mac::MacAddr;
use nfdhcpd::core::ndp;

const FLOODER: &str = "aa:6b:39:22:33:44";
const VICTIM: &str = "aa:6b:39:22:33:55";
const SUBNET6: &str = "2001:db8:aaaa:bbbb::/64";
const SUBNET6_B: &str = "2001:db8:aaaa:cccc::/64";
/// The whole machine goes to one flood at a time.
static ONE_FLOOD: Mutex<()> = Mutex::new(());

fn mac(s: &str) -> MacAddr {
    MacAddr(parse_mac(s))
}

fn discover(m: MacAddr) -> Vec<u8> {
    let mut p = vec![0u8; 240];
    p[0] = 1;
    p[1] = 1;
    p[2] = 6;
    p[4..8].copy_from_slice(&[0xf1, 0x00, 0xd0, 0x01]);
    p[28..34].copy_from_slice(&m.0);
    p[236..240].copy_from_slice(&[99, 130, 83, 99]);
    p.extend_from_slice(&[53, 1, 1, 255]);
    p.resize(300, 0);
    let a = Udp4Addressing {
        src_mac: m,
        dst_mac: MacAddr::BROADCAST,
        src: SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 68),
        dst: SocketAddrV4::new(Ipv4Addr::BROADCAST, 67),
    };
    frame::udp4_frame(&a, &p).unwrap()
}

fn router_solicitation(m: MacAddr) -> Vec<u8> {
    let mut f = vec![0u8; ICMPV6_OFFSET];
    f.extend_from_slice(&[ndp::TYPE_ROUTER_SOLICITATION, 0, 0, 0, 0, 0, 0, 0, 1, 1]);
    f.extend_from_slice(&m.0);
    let a = Ipv6Addressing {
        src_mac: m,
        dst_mac: MacAddr([0x33, 0x33, 0, 0, 0, 2]),
        src: frame6::link_local(m),
        dst: "ff02::2".parse().unwrap(),
        hop_limit: frame6::ND_HOP_LIMIT,
    };
    finish_icmpv6_frame(&mut f, &a).unwrap();
    f
}

fn neighbor_solicitation(m: MacAddr, target: Ipv6Addr) -> Vec<u8> {
    let t = target.octets();
    let group: Ipv6Addr = format!("ff02::1:ff{:02x}:{:02x}{:02x}", t[13], t[14], t[15])
        .parse()
        .unwrap();
    let mut f = vec![0u8; ICMPV6_OFFSET];
    f.extend_from_slice(&[ndp::TYPE_NEIGHBOR_SOLICITATION, 0, 0, 0, 0, 0, 0, 0]);
    f.extend_from_slice(&t);
    f.extend_from_slice(&[1, 1]);
    f.extend_from_slice(&m.0);
    let a = Ipv6Addressing {
        src_mac: m,
        dst_mac: frame6::multicast_mac(group),
        src: frame6::link_local(m),
        dst: group,
        hop_limit: frame6::ND_HOP_LIMIT,
    };
    finish_icmpv6_frame(&mut f, &a).unwrap();
    f
}

/// Sends `frame` on the guest's interface in a tight loop until `stop`;
/// returns how many frames went out.
fn flood(g: &Guest, frame: &[u8], stop: &AtomicBool) -> u64 {
    send_frames(g, std::slice::from_ref(&frame.to_vec()), stop, u64::MAX)
}

/// Sends `frames` in turn on the guest's interface (raw, AF_PACKET) until
/// `stop` or `max` frames; returns how many went out.
fn send_frames(g: &Guest, frames: &[Vec<u8>], stop: &AtomicBool, max: u64) -> u64 {
    let ifname = g.ifname.clone();
    in_netns(&g.ns.name, || {
        // SAFETY: plain socket(2); the result is checked.
        let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0) };
        assert!(fd >= 0, "AF_PACKET: {}", std::io::Error::last_os_error());
        // SAFETY: a fresh descriptor we own.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let c = std::ffi::CString::new(ifname).unwrap();
        // SAFETY: a NUL-terminated name.
        let ifindex = unsafe { libc::if_nametoindex(c.as_ptr()) } as i32;
        assert!(ifindex > 0);
        let mut sent = 0u64;
        'out: while !stop.load(Ordering::Relaxed) {
            for frame in frames {
                if sent >= max {
                    break 'out;
                }
                // SAFETY: sockaddr_ll is plain old data.
                let mut sa: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
                sa.sll_family = libc::AF_PACKET as u16;
                sa.sll_ifindex = ifindex;
                sa.sll_halen = 6;
                sa.sll_addr[..6].copy_from_slice(&frame[..6]);
                // SAFETY: frame and sa are valid for the lengths given.
                let r = unsafe {
                    libc::sendto(
                        fd.as_raw_fd(),
                        frame.as_ptr() as *const libc::c_void,
                        frame.len(),
                        0,
                        &sa as *const libc::sockaddr_ll as *const libc::sockaddr,
                        std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
                    )
                };
                if r > 0 {
                    sent += 1;
                }
            }
        }
        sent
    })
}

fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// The counters of a SIGUSR1 dump, as logged.
fn dump(lab: &Lab) -> String {
    let before = lab.daemon_log_count("accepted_unknown ");
    let st = std::process::Command::new("kill")
        .args(["-USR1", &lab.daemon_pid().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    poll(Duration::from_secs(5), || {
        (lab.daemon_log_count("accepted_unknown ") > before).then_some(())
    })
    .expect("no counters after SIGUSR1");
    lab.daemon_log()
}

fn last_line<'a>(log: &'a str, prefix: &str) -> &'a str {
    log.lines()
        .rev()
        .find_map(|l| l.split_once(prefix).map(|(_, rest)| rest))
        .unwrap_or("")
}

/// Runs `flood_frame` from the flooder for `secs` while `probe` runs on
/// the other guest every few seconds; each probe must succeed within a
/// second. Returns the frames sent and the daemon's refusal counters.
fn under_flood(
    lab: &Lab,
    flooder: &Guest,
    flood_frame: &[u8],
    secs: u64,
    mut probe: impl FnMut() -> Result<(), String>,
) -> (u64, String) {
    let pid = lab.daemon_pid();
    let rss_before = rss_kb(pid);
    let stop = AtomicBool::new(false);
    let mut probes = Vec::new();
    let sent = std::thread::scope(|s| {
        let h = s.spawn(|| flood(flooder, flood_frame, &stop));
        let start = Instant::now();
        std::thread::sleep(Duration::from_secs(2));
        while start.elapsed() < Duration::from_secs(secs.saturating_sub(1)) {
            let t = Instant::now();
            let r = probe();
            probes.push((t.elapsed(), r));
            std::thread::sleep(Duration::from_millis(1000));
        }
        stop.store(true, Ordering::Relaxed);
        h.join().unwrap()
    });
    lab.assert_daemon_alive();
    let rss_after = rss_kb(pid);
    let log = dump(lab);
    let refusals = last_line(&log, "refusals: ").to_owned();
    eprintln!(
        "flood: {sent} frames in {secs} s ({:.0}/s); daemon RSS {rss_before} -> {rss_after} kB; \
         refusals: {refusals}; probes: {probes:?}",
        sent as f64 / secs as f64
    );
    assert!(probes.len() >= 3, "{probes:?}");
    for (took, r) in &probes {
        assert!(r.is_ok(), "probe failed under the flood: {r:?}");
        assert!(
            *took < Duration::from_secs(1),
            "probe took {took:?} under the flood: {probes:?}"
        );
    }
    assert!(rss_after < 16 * 1024, "RSS {rss_after} kB after the flood");
    (sent, refusals)
}

fn count(refusals: &str, key: &str) -> u64 {
    refusals
        .split(", ")
        .find_map(|kv| kv.strip_prefix(key)?.trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn dhcp_discover_flood() {
    let _one = ONE_FLOOD.lock().unwrap_or_else(|e| e.into_inner());
    let Some(mut lab) = Lab::new("dhcp_discover_flood") else {
        return;
    };
    lab.daemon_bin = release_binary();
    lab.nfqueue_routed();
    lab.write_binding(&Binding::new("tap0", "192.0.2.100", FLOODER));
    lab.write_binding(&Binding::new("tap1", "192.0.2.101", VICTIM));
    lab.start_daemon();
    let a = lab.guest("tap0", FLOODER);
    let b = lab.guest("tap1", VICTIM);
    let (sent, refusals) = under_flood(&lab, &a, &discover(mac(FLOODER)), 10, || {
        b.flush();
        let l = b.udhcpc(&ClientOpts::short(3));
        match l.ip() {
            Some(ip) if ip == Ipv4Addr::new(192, 0, 2, 101) => Ok(()),
            other => Err(format!("{other:?}\n{l}")),
        }
    });
    let limited = count(&refusals, "rate_limit_mac") + count(&refusals, "rate_limit_interface");
    assert!(limited > 0, "nothing rate limited: {refusals}");
    let log = lab.daemon_log();
    let offers = log
        .lines()
        .filter(|l| l.contains("tap0 ") && l.contains("DHCPOFFER"))
        .count() as u64;
    // 20 per second for the flooding client (the per-MAC default), and
    // the other guest's lease unaffected.
    assert!(offers <= 20 * 11, "{offers} OFFERs to the flood of {sent}");
    assert!(
        sent > 10 * offers,
        "the flood was too slow to test anything: {sent}"
    );
    let warned = log
        .lines()
        .filter(|l| l.contains("over the per-client limit dropped"))
        .count();
    assert!(
        (1..=2).contains(&warned),
        "{warned} rate-limit warnings in 10 s"
    );
    // The flooder itself is answered again once it stops.
    std::thread::sleep(Duration::from_secs(1));
    a.udhcpc(&ClientOpts::short(3)).expect_bound();
}

fn ipv6_lab(test: &str) -> Option<(Lab, Guest, Guest, Binding, Binding)> {
    let mut lab = Lab::new(test)?;
    lab.daemon_bin = release_binary();
    lab.nfqueue6_routed();
    let ba = Binding::new("tap0", "192.0.2.100", FLOODER).with_ipv6(SUBNET6);
    let bb = Binding::new("tap1", "192.0.2.101", VICTIM).with_ipv6(SUBNET6_B);
    lab.write_binding(&ba);
    lab.write_binding(&bb);
    lab.start_daemon_with(&DaemonConfig::ipv6("slaac", 300));
    let a = lab.guest("tap0", FLOODER);
    let b = lab.guest("tap1", VICTIM);
    b.wait_link_local(Duration::from_secs(10));
    Some((lab, a, b, ba, bb))
}

#[test]
fn router_solicitation_flood() {
    let _one = ONE_FLOOD.lock().unwrap_or_else(|e| e.into_inner());
    let Some((lab, a, b, _, _)) = ipv6_lab("router_solicitation_flood") else {
        return;
    };
    let (_, refusals) = under_flood(&lab, &a, &router_solicitation(mac(FLOODER)), 7, || {
        let r = b.rdisc6(&["-1", "-r", "1", "-w", "1000"]);
        if r.success && !r.ras.is_empty() {
            Ok(())
        } else {
            Err(r.out)
        }
    });
    assert!(count(&refusals, "rate_limit_mac") > 0, "{refusals}");
}

#[test]
fn neighbor_solicitation_flood() {
    let _one = ONE_FLOOD.lock().unwrap_or_else(|e| e.into_inner());
    let Some((lab, a, b, ba, bb)) = ipv6_lab("neighbor_solicitation_flood") else {
        return;
    };
    let tap1_mac = lab.host.mac_of("tap1");
    let gw_a = ba.gateway6.unwrap();
    let gw_b = bb.gateway6.unwrap();
    let (_, refusals) = under_flood(
        &lab,
        &a,
        &neighbor_solicitation(mac(FLOODER), gw_a),
        7,
        || match b.ndisc6(gw_b, 1, 1000) {
            (Some(m), _) if m == tap1_mac => Ok(()),
            (m, out) => Err(format!("{m:?}\n{out}")),
        },
    );
    assert!(count(&refusals, "rate_limit_mac") > 0, "{refusals}");
}

/// Taps deleted and made anew while the daemon answers a flood from them
/// at full speed (no limits): frames for interfaces that just vanished
/// fail and are counted, nothing crashes, and the guests are served after.
#[test]
fn taps_vanish_while_answering() {
    let _one = ONE_FLOOD.lock().unwrap_or_else(|e| e.into_inner());
    let Some(mut lab) = Lab::new("taps_vanish_while_answering") else {
        return;
    };
    lab.daemon_bin = release_binary();
    lab.nfqueue_routed();
    lab.write_binding(&Binding::new("tap0", "192.0.2.100", FLOODER));
    lab.write_binding(&Binding::new("tap1", "192.0.2.101", VICTIM));
    lab.start_daemon_with(&DaemonConfig {
        extra: "[limits]\ninterface_rate = 0\nmac_rate = 0\n".into(),
        ..Default::default()
    });
    let a = lab.guest("tap0", FLOODER);
    let b = lab.guest("tap1", VICTIM);
    let frame = discover(mac(FLOODER));
    for round in 0..5 {
        let stop = AtomicBool::new(false);
        let sent = std::thread::scope(|s| {
            let h = s.spawn(|| flood(&a, &frame, &stop));
            std::thread::sleep(Duration::from_millis(300));
            // Gone under the daemon's feet, answers in flight.
            lab.delete_tap(&a);
            stop.store(true, Ordering::Relaxed);
            h.join().unwrap()
        });
        lab.recreate_tap(&a);
        a.up();
        lab.assert_daemon_alive();
        eprintln!("round {round}: {sent} DISCOVERs before the tap went away");
    }
    let log = dump(&lab);
    eprintln!(
        "answers: {}; {}; queue 42: {}",
        last_line(&log, "answers: "),
        last_line(&log, "accepted_unknown "),
        last_line(&log, "queue 42 (dhcp): ")
    );
    a.flush();
    let l = a.udhcpc(&ClientOpts::short(3));
    let mut nfq = lab
        .host
        .run(&["cat", "/proc/net/netfilter/nfnetlink_queue"]);
    let pid = lab.daemon_pid();
    for t in fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let t = t.unwrap().path();
        let r = |f: &str| fs::read_to_string(t.join(f)).unwrap_or_default();
        nfq += &format!(
            "TASK {} wchan={} syscall={}\n",
            r("comm").trim(),
            r("wchan"),
            r("syscall").trim()
        );
    }
    let log = dump(&lab) + &nfq;
    let tail: Vec<&str> = log.lines().rev().take(15).collect();
    assert_eq!(
        l.ip(),
        Some("192.0.2.100".parse().unwrap()),
        "{l}\n{}",
        tail.join("\n")
    );
    assert!(leased_ok(&b, "192.0.2.101"));
}

fn leased_ok(g: &Guest, ip: &str) -> bool {
    g.flush();
    g.udhcpc(&ClientOpts::short(3)).ip() == ip.parse().ok()
}

/// Made-up and mangled requests from a tap without a binding, many of them
/// naming a bound guest's MAC: the daemon sends nothing there (and the
/// requests go on to the kernel), while the bound guest is still answered.
#[test]
fn malformed_requests_never_answered_on_unbound_taps() {
    let _one = ONE_FLOOD.lock().unwrap_or_else(|e| e.into_inner());
    let Some(mut lab) = Lab::new("malformed_requests_unbound") else {
        return;
    };
    lab.nfqueue_routed();
    lab.nfqueue6_routed();
    lab.write_binding(&Binding::new("tap0", "192.0.2.100", FLOODER).with_ipv6(SUBNET6));
    lab.start_daemon_with(&DaemonConfig {
        extra: "[limits]\ninterface_rate = 0\nmac_rate = 0\n".into(),
        ..DaemonConfig::ipv6("slaac", 300)
    });
    let bound = lab.guest("tap0", FLOODER);
    let unbound = lab.guest("tap1", VICTIM);
    let tap1_mac = lab.host.mac_of("tap1");
    let capture = unbound.ns.tcpdump(
        &unbound.ifname,
        // DHCP answers, RAs and NAs; the kernel's own DAD probes are no news.
        &format!(
            "ether src {tap1_mac} and (udp port 68 or udp port 546 or \
             (icmp6 and (ip6[40] == 134 or ip6[40] == 136)))"
        ),
        &lab.tmp.join("tap1.txt"),
    );
    // Valid requests in the bound guest's name, then every byte after the
    // Ethernet header flipped in turn, and truncations.
    let gw: Ipv6Addr = "2001:db8:aaaa:bbbb::1".parse().unwrap();
    let seeds = [
        discover(mac(FLOODER)),
        router_solicitation(mac(FLOODER)),
        neighbor_solicitation(mac(FLOODER), gw),
    ];
    let mut frames = Vec::new();
    for seed in &seeds {
        frames.push(seed.clone());
        for i in 14..seed.len() {
            for flip in [0x01u8, 0x80, 0xff] {
                let mut f = seed.clone();
                f[i] ^= flip;
                frames.push(f);
            }
        }
        for len in (15..seed.len()).step_by(7) {
            frames.push(seed[..len].to_vec());
        }
    }
    let stop = AtomicBool::new(false);
    let sent = send_frames(&unbound, &frames, &stop, 3 * frames.len() as u64);
    // The same from the bound guest: answers there are fine.
    send_frames(&bound, &frames, &stop, frames.len() as u64);
    std::thread::sleep(Duration::from_secs(1));
    lab.assert_daemon_alive();
    let log = dump(&lab);
    let on_tap1: Vec<&str> = log.lines().filter(|l| l.contains("tap1 ")).collect();
    assert!(on_tap1.is_empty(), "answers on tap1: {on_tap1:?}");
    let seen = capture.text();
    let frames_out: Vec<&str> = seen
        .lines()
        .filter(|l| l.contains(&tap1_mac) && !l.contains("listening on"))
        .collect();
    assert!(
        frames_out.is_empty(),
        "the host sent on the unbound tap:\n{}",
        frames_out.join("\n")
    );
    eprintln!(
        "{sent} mangled requests on the unbound tap: nothing sent there; accepted_unknown {}",
        last_line(&log, "accepted_unknown ")
    );
    // What reached the queue from tap1 went on to the kernel.
    let accepted: u64 = last_line(&log, "accepted_unknown ")
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(accepted >= 3, "accepted_unknown {accepted}");
    // The bound guest is still served.
    bound.flush();
    assert_eq!(
        bound.udhcpc(&ClientOpts::short(3)).ip(),
        Some(Ipv4Addr::new(192, 0, 2, 100))
    );
}
