//! A starvation attack on a Nautobot pool: thousands of relayed DISCOVERs
//! from made-up MACs. At most `[relay] max_offers` addresses are held for
//! them at a time (the other DISCOVERs wait, within `max_pending_jobs`),
//! nothing is NAKed, and a client the daemon leased to before still gets
//! its lease, rebooting or rediscovering, though the waiting DISCOVERs
//! fill every place for jobs.

mod common;

use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::relay::*;
use common::*;

const SERVER0: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
const KNOWN: &str = "14:18:77:aa:bb:42";
/// Below the pool's 249 addresses, so that the cap, not the pool, bounds
/// what the flood holds.
const MAX_OFFERS: usize = 32;
const FLOOD: usize = 3000;
/// Far below FLOOD: the waiting DISCOVERs fill it.
const MAX_PENDING: usize = 256;
/// The flood's end however long the known client takes.
const FLOOD_MAX: usize = 200_000;

/// Ends the flood when the known client is done, or failed.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

fn discover(mac: [u8; 6], xid: u32) -> Vec<u8> {
    let mut p = vec![0u8; 240];
    p[0] = 1;
    p[1] = 1;
    p[2] = 6;
    p[4..8].copy_from_slice(&xid.to_be_bytes());
    p[10] = 0x80; // broadcast
    p[28..34].copy_from_slice(&mac);
    p[236..240].copy_from_slice(&[99, 130, 83, 99]);
    p.extend_from_slice(&[53, 1, 1, 255]);
    p.resize(300, 0);
    p
}

fn made_up(n: u32) -> [u8; 6] {
    let x = n.wrapping_mul(2_654_435_761);
    let b = x.to_be_bytes();
    [0x02, 0xfe, b[0], b[1], b[2], b[3]]
}

fn dhclient_ok(g: &Guest, lease: Option<String>) -> Lease {
    let l = g.dhclient(&dhclient_opts(g, 30, "", lease, &[]));
    assert!(!l.log.contains("DHCPNAK"), "the client saw a NAK\n{l}");
    l
}

#[test]
fn discover_flood_from_made_up_macs() {
    let test = "discover_flood_from_made_up_macs";
    let Some(nb) = nautobot(test) else {
        return;
    };
    let Some(mut rl) = RelayLab::new(test, 1) else {
        return;
    };
    let conf = RelayConfig {
        max_offers: Some(MAX_OFFERS),
        max_pending_jobs: Some(MAX_PENDING),
        ..RelayConfig::default()
    };
    rl.d(0).start(&conf, &["-a"]);
    let known = rl.guest("tapk", KNOWN);
    let first = dhclient_ok(&known, None);
    let addr = first.expect_bound().ip().expect("an address");

    let flooder = rl.guest("tapf", "02:bb:ee:00:00:02");
    let sock = client_socket(&flooder.ns.name, &flooder.ifname);
    let c0 = rl.d(0).counters();
    let stop = AtomicBool::new(false);
    let (sent, took, reboot, again) = std::thread::scope(|s| {
        let flood = s.spawn(|| {
            let t = Instant::now();
            let dst = SocketAddrV4::new(Ipv4Addr::BROADCAST, 67);
            let mut n = 0u32;
            // Paced a little, so that the relay in between forwards them;
            // on until the known client is done, so that every place the
            // flood's jobs leave is taken again at once.
            while ((n as usize) < FLOOD || !stop.load(Ordering::Relaxed))
                && (n as usize) < FLOOD_MAX
            {
                let _ = sock.send_to(&discover(made_up(n), n), dst);
                n += 1;
                if n % 50 == 0 {
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
            (n, t.elapsed())
        });
        let done = StopOnDrop(&stop);
        std::thread::sleep(Duration::from_millis(300));
        // The known client reboots (INIT-REBOOT REQUEST), then forgets its
        // lease and rediscovers, both in the middle of the flood.
        let reboot = dhclient_ok(&known, Some(lease_text(addr, SERVER0, 3600)));
        let again = dhclient_ok(&known, None);
        drop(done);
        let (sent, took) = flood.join().unwrap();
        (sent, took, reboot, again)
    });
    assert_eq!(reboot.expect_bound().ip(), Some(addr), "{reboot}");
    assert_eq!(again.expect_bound().ip(), Some(addr), "{again}");

    // Let the jobs in flight finish.
    std::thread::sleep(Duration::from_secs(3));
    let c1 = rl.d(0).counters();
    let capped = c1.get("offers_capped") - c0.get("offers_capped");
    let jobs = c1.get("jobs") - c0.get("jobs");
    // Held: a made-up MAC's record whose lease has not run out (an offer
    // withdrawn after its hold ends now, or a minute ago at most).
    let now = unix_now();
    let held: Vec<_> = nb
        .api
        .dhcp_records()
        .into_iter()
        .filter(|r| {
            let f = &r["custom_fields"];
            f["pydhcp_mac"]
                .as_str()
                .is_some_and(|m| m.to_lowercase().starts_with("02:fe:"))
                && f["pydhcp_expire"]
                    .as_str()
                    .and_then(parse_utc)
                    .is_some_and(|t| t > now + 60)
        })
        .collect();
    eprintln!(
        "{sent} DISCOVERs from made-up MACs in {took:?}: {} received by the daemon, \
         {jobs} jobs, {capped} capped, {} records held for them, jobs_refused {}",
        c1.get("requests") - c0.get("requests"),
        held.len(),
        c1.get("jobs_refused"),
    );
    assert!(capped > 0, "no offer was capped\n{c1}");
    // The flood filled every place for jobs: the known client got through
    // all the same.
    assert!(
        c1.get("jobs_refused") > c0.get("jobs_refused"),
        "the waiting DISCOVERs never filled max_pending_jobs\n{c1}"
    );
    assert!(
        held.len() <= MAX_OFFERS,
        "{} addresses held for made-up MACs (max_offers {MAX_OFFERS})",
        held.len()
    );
    assert_eq!(c1.answer("DHCPNAK"), 0, "{c1}");
    rl.d(0).assert_alive();
}
