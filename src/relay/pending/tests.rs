//! The relay state machine with a backend played in memory by the test:
//! jobs are taken off the queues and answered with outcomes computed by
//! the pure allocation rules.

use super::*;
use crate::backend::pool::{self, Choice, Pool};
use crate::backend::{BackendError, Lease, LeaseKind, NoLease};
use crossbeam_channel::{bounded, Receiver};
use dhcproto::v4::{DhcpOption, Message, MessageType, OptionCode};
use dhcproto::{Decodable, Decoder};
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};

const LOCAL: Ipv4Addr = Ipv4Addr::LOCALHOST;

struct Rig {
    side: RelaySide,
    urgent: Receiver<Job>,
    offers: Receiver<Job>,
    relay: UdpSocket,
    records: Vec<pool::Record>,
}

fn rig(authoritative: bool) -> Rig {
    rig_with(
        authoritative,
        RelayLimits {
            max_pending_jobs: 16,
            max_offers: 0,
        },
    )
}

fn rig_with(authoritative: bool, limits: RelayLimits) -> Rig {
    let relay = UdpSocket::bind((LOCAL, 0)).unwrap();
    relay
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let out = UdpSocket::bind((LOCAL, 0)).unwrap();
    let (utx, urx) = bounded(16);
    let (otx, orx) = bounded(16);
    let settings = relay4::Settings {
        server_ident: None,
        authoritative,
        lease_time: 3600,
        nameservers: vec![Ipv4Addr::new(192, 0, 2, 53)],
        domain: None,
    };
    Rig {
        side: RelaySide::new(
            settings,
            RelaySender::new(&out).unwrap(),
            (utx, otx),
            limits,
            "memory",
        ),
        urgent: urx,
        offers: orx,
        relay,
        records: Vec::new(),
    }
}

fn mac(n: u8) -> MacAddr {
    MacAddr([0x14, 0x18, 0x77, 0, 0, n])
}

/// A relayed request from giaddr 127.0.0.1 asking (RFC 8357) for the
/// answer on the relay's own source port.
fn request(msg: u8, m: MacAddr, opts: &[(u8, Vec<u8>)]) -> Vec<u8> {
    let mut p = vec![1, 1, 6, 1, 0x12, 0x34, 0x56, m.0[5], 0, 0, 0, 0];
    p.extend([0; 12]); // ciaddr, yiaddr, siaddr
    p.extend(LOCAL.octets()); // giaddr
    p.extend(m.0);
    p.extend([0; 10 + 64 + 128]);
    p.extend([99, 130, 83, 99, 53, 1, msg]);
    for (code, data) in opts {
        p.push(*code);
        p.push(data.len() as u8);
        p.extend(data);
    }
    p.extend([82, 2, 19, 0, 255]);
    p
}

fn packet(r: &Rig, data: Vec<u8>) -> RelayPacket {
    let port = r.relay.local_addr().unwrap().port();
    RelayPacket {
        data,
        src: SocketAddrV4::new(LOCAL, port),
        ifindex: 1,
        local: LOCAL,
    }
}

/// Plays the backend for one job, as the Nautobot rules would.
fn serve(r: &mut Rig, job: &Job) -> Outcome {
    let p = Pool {
        network: "192.0.2.0/24".parse().unwrap(),
        reserved: 5,
    };
    let choice = match &job.kind {
        JobKind::Offer => pool::choose(&r.records, &p, job.client.mac, job.now, &[]),
        JobKind::Confirm { addr, .. } => {
            match pool::confirm(&r.records, &p, job.client.mac, *addr, job.now) {
                Some(c) => c,
                None => return Outcome::NoLease(NoLease::NotYours),
            }
        }
        _ => return Outcome::Done,
    };
    let Choice::Free(addr) = choice else {
        if let Choice::Own(rec) = choice {
            return lease(rec.addr, Some(rec.id));
        }
        return Outcome::NoLease(NoLease::PoolExhausted);
    };
    let id = format!("rec-{addr}");
    r.records.push(pool::Record {
        id: id.clone(),
        addr,
        dynamic: true,
        mac: Some(job.client.mac),
        expire: Some(job.now + Duration::from_secs(3600)),
        interface_macs: vec![],
    });
    lease(addr, Some(id))
}

fn lease(addr: Ipv4Addr, record: Option<String>) -> Outcome {
    Outcome::Lease(Lease {
        addr,
        network: "192.0.2.0/24".parse().unwrap(),
        gateway: Some(Ipv4Addr::new(192, 0, 2, 1)),
        dns: vec![],
        boot: None,
        kind: LeaseKind::Dynamic,
        record,
        lease_secs: 3600,
        recorded_until: None,
    })
}

fn answer(r: &Rig) -> Option<Message> {
    let mut buf = [0u8; 1500];
    let n = r.relay.recv(&mut buf).ok()?;
    Some(Message::decode(&mut Decoder::new(&buf[..n])).unwrap())
}

fn msg_type(m: &Message) -> Option<MessageType> {
    match m.opts().get(OptionCode::MessageType) {
        Some(DhcpOption::MessageType(t)) => Some(*t),
        _ => None,
    }
}

#[test]
fn dora_with_absorbed_retransmissions_and_a_one_call_renewal() {
    let mut r = rig(false);
    let now = SystemTime::now();
    let discover = request(1, mac(2), &[]);
    r.side.on_packet(packet(&r, discover.clone()), now);
    // A retransmission while the job runs: no second job.
    r.side.on_packet(packet(&r, discover), now);
    assert_eq!(r.side.stats.absorbed, 1);
    let job = r.offers.try_recv().unwrap();
    assert!(r.offers.try_recv().is_err() && r.urgent.try_recv().is_err());
    assert_eq!(job.kind, JobKind::Offer);
    assert_eq!(job.known, None);
    let outcome = serve(&mut r, &job);
    r.side.on_result(JobResult {
        id: job.id,
        outcome: Ok(outcome),
        calls: 3,
        started: None,
    });
    let offer = answer(&r).expect("an OFFER");
    assert_eq!(msg_type(&offer), Some(MessageType::Offer));
    assert_eq!(offer.yiaddr(), Ipv4Addr::new(192, 0, 2, 5));

    // SELECTING: the REQUEST goes to the urgent queue and carries the
    // record the OFFER made, so the backend can confirm in one call.
    let req = request(
        3,
        mac(2),
        &[(50, vec![192, 0, 2, 5]), (54, LOCAL.octets().to_vec())],
    );
    r.side.on_packet(packet(&r, req.clone()), now);
    let job = r.urgent.try_recv().unwrap();
    assert!(r.offers.try_recv().is_err());
    assert_eq!(
        job.known.as_ref().and_then(|k| k.record.as_deref()),
        Some("rec-192.0.2.5")
    );
    let outcome = serve(&mut r, &job);
    r.side.on_result(JobResult {
        id: job.id,
        outcome: Ok(outcome),
        calls: 1,
        started: None,
    });
    let ack = answer(&r).expect("an ACK");
    assert_eq!(msg_type(&ack), Some(MessageType::Ack));
    assert_eq!(ack.yiaddr(), Ipv4Addr::new(192, 0, 2, 5));
    assert_eq!(r.side.stats.backend_calls, 4);

    // Past the 10 s hold of the OFFER but within the lease: still known.
    let later = now + Duration::from_secs(600);
    r.side.on_packet(packet(&r, req), later);
    let job = r.urgent.try_recv().unwrap();
    assert!(job.known.is_some());
}

#[test]
fn an_offer_hint_expires_with_its_hold() {
    let mut r = rig(false);
    let now = SystemTime::now();
    r.side.on_packet(packet(&r, request(1, mac(3), &[])), now);
    let job = r.offers.try_recv().unwrap();
    finish(&mut r, &job);
    answer(&r).expect("an OFFER");
    // After the hold the record may be someone else's: no hint.
    let late = now + Duration::from_secs(OFFER_HOLD_SECS + 1);
    let req = request(
        3,
        mac(3),
        &[(50, vec![192, 0, 2, 5]), (54, LOCAL.octets().to_vec())],
    );
    r.side.on_packet(packet(&r, req), late);
    assert_eq!(r.urgent.try_recv().unwrap().known, None);
}

#[test]
fn backend_errors_are_silent_even_when_authoritative() {
    let mut r = rig(true);
    let now = SystemTime::now();
    let req = request(3, mac(4), &[(50, vec![192, 0, 2, 9])]);
    for err in [
        BackendError::Timeout,
        BackendError::Http {
            status: 500,
            body: "boom".into(),
        },
        BackendError::Connect("refused".into()),
        BackendError::BadAnswer("not JSON".into()),
    ] {
        r.side.on_packet(packet(&r, req.clone()), now);
        let job = r.urgent.try_recv().unwrap();
        r.side.on_result(JobResult {
            id: job.id,
            outcome: Err(err),
            calls: 1,
            started: None,
        });
        assert!(answer(&r).is_none(), "an answer after a backend error");
    }
    assert_eq!(r.side.stats.backend_errors.values().sum::<u64>(), 4);
    assert!(r.side.stats.answers.is_empty());
}

#[test]
fn authoritative_naks_what_is_not_yours_others_stay_silent() {
    for authoritative in [true, false] {
        let mut r = rig(authoritative);
        let now = SystemTime::now();
        // Someone else's live lease on .7.
        r.records.push(pool::Record {
            id: "other".into(),
            addr: Ipv4Addr::new(192, 0, 2, 7),
            dynamic: true,
            mac: Some(mac(9)),
            expire: Some(now + Duration::from_secs(100)),
            interface_macs: vec![],
        });
        r.side.on_packet(
            packet(&r, request(3, mac(5), &[(50, vec![192, 0, 2, 7])])),
            now,
        );
        let job = r.urgent.try_recv().unwrap();
        let outcome = serve(&mut r, &job);
        assert_eq!(outcome, Outcome::NoLease(NoLease::NotYours));
        r.side.on_result(JobResult {
            id: job.id,
            outcome: Ok(outcome),
            calls: 2,
            started: None,
        });
        let got = answer(&r);
        if authoritative {
            assert_eq!(got.as_ref().and_then(msg_type), Some(MessageType::Nak));
        } else {
            assert!(got.is_none());
        }
    }
}

#[test]
fn a_full_job_queue_drops_the_request_and_counts_it() {
    let mut r = rig(false);
    let now = SystemTime::now();
    for n in 0..20u8 {
        r.side
            .on_packet(packet(&r, request(1, mac(100 + n), &[])), now);
    }
    assert_eq!(r.side.stats.jobs, 16);
    assert_eq!(r.side.stats.jobs_refused, 4);
}

fn finish(r: &mut Rig, job: &Job) {
    finish_at(r, job, None);
}

/// Serves `job` and hands the result back, begun at `started`.
fn finish_at(r: &mut Rig, job: &Job, started: Option<SystemTime>) {
    let outcome = serve(r, job);
    r.side.on_result(JobResult {
        id: job.id,
        outcome: Ok(outcome),
        calls: 1,
        started,
    });
}

/// mac(1) gets 192.0.2.5 (DISCOVER, REQUEST); returns the options of its
/// REQUEST.
fn lease_before_the_flood(r: &mut Rig, now: SystemTime) -> [(u8, Vec<u8>); 2] {
    r.side.on_packet(packet(r, request(1, mac(1), &[])), now);
    let job = r.offers.try_recv().unwrap();
    finish(r, &job);
    let ours = [(50, vec![192, 0, 2, 5]), (54, LOCAL.octets().to_vec())];
    r.side.on_packet(packet(r, request(3, mac(1), &ours)), now);
    let job = r.urgent.try_recv().unwrap();
    finish(r, &job);
    while answer(r).is_some() {}
    ours
}

#[test]
fn offers_outstanding_per_subnet_are_capped_known_clients_pass() {
    let mut r = rig_with(
        false,
        RelayLimits {
            max_pending_jobs: 16,
            max_offers: 4,
        },
    );
    let now = SystemTime::now();
    lease_before_the_flood(&mut r, now);

    // Made-up MACs: four offers run, the other six wait.
    for n in 0..10u8 {
        r.side
            .on_packet(packet(&r, request(1, mac(100 + n), &[])), now);
    }
    assert_eq!(r.side.stats.offers_capped, 6);
    let macs = |jobs: &[Job]| -> Vec<MacAddr> { jobs.iter().map(|j| j.client.mac).collect() };
    let jobs: Vec<Job> = r.offers.try_iter().collect();
    assert_eq!(macs(&jobs), [mac(100), mac(101), mac(102), mac(103)]);
    for j in &jobs {
        finish(&mut r, j);
    }
    // Held for clients that have not asked yet: still counted.
    assert!(r.offers.try_recv().is_err());
    // A waiting client's retransmission is absorbed, not counted again.
    let absorbed = r.side.stats.absorbed;
    r.side.on_packet(packet(&r, request(1, mac(105), &[])), now);
    assert_eq!(r.side.stats.absorbed, absorbed + 1);
    assert_eq!(r.side.stats.offers_capped, 6);

    // The known client is not held back, neither renewing nor rediscovering:
    // its DISCOVER goes before the new clients' ones.
    r.side.on_packet(packet(&r, request(1, mac(1), &[])), now);
    let j = r.urgent.try_recv().unwrap();
    assert_eq!((j.client.mac, j.kind), (mac(1), JobKind::Offer));
    assert_eq!(r.side.stats.offers_capped, 6);

    // A client asking for its offer frees its place: the oldest waiting
    // DISCOVER takes it.
    let req = request(
        3,
        mac(100),
        &[(50, vec![192, 0, 2, 6]), (54, LOCAL.octets().to_vec())],
    );
    r.side.on_packet(packet(&r, req), now);
    assert!(r.urgent.try_recv().is_ok());
    let jobs: Vec<Job> = r.offers.try_iter().collect();
    assert_eq!(macs(&jobs), [mac(104)]);
    // A newcomer waits behind those that came before it.
    r.side.on_packet(packet(&r, request(1, mac(121), &[])), now);
    assert_eq!(r.side.stats.offers_capped, 7);
    assert!(r.offers.try_recv().is_err());

    // A waiting client that took another server's offer waits no more.
    let elsewhere = request(
        3,
        mac(106),
        &[(50, vec![192, 0, 2, 99]), (54, vec![192, 0, 2, 250])],
    );
    r.side.on_packet(packet(&r, elsewhere), now);

    // Holds run out: their places go to the waiting DISCOVERs, in order,
    // as of then.
    let later = now + Duration::from_secs(OFFER_HOLD_SECS + 1);
    r.side.tick(later);
    let jobs: Vec<Job> = r.offers.try_iter().collect();
    assert_eq!(macs(&jobs), [mac(105), mac(107), mac(108)]);
    assert!(jobs.iter().all(|j| j.now == later));
    // Offers that end without a lease free their places too.
    for j in &jobs {
        r.side.on_result(JobResult {
            id: j.id,
            outcome: Ok(Outcome::NoLease(NoLease::PoolExhausted)),
            calls: 1,
            started: None,
        });
    }
    let jobs: Vec<Job> = r.offers.try_iter().collect();
    assert_eq!(macs(&jobs), [mac(109), mac(121)]);
    assert_eq!(r.side.stats.offers_capped, 7);
    assert_eq!(r.side.stats.jobs_refused, 0);
}

/// Six new clients, four places for jobs: with `max_offers` 2, two run,
/// two wait (and count), two are refused.
#[test]
fn pending_jobs_are_capped_waiting_discovers_included() {
    for (max_offers, jobs, waiting) in [(0, 4, 0), (2, 2, 2)] {
        let mut r = rig_with(
            false,
            RelayLimits {
                max_pending_jobs: 4,
                max_offers,
            },
        );
        let now = SystemTime::now();
        for n in 0..6u8 {
            r.side
                .on_packet(packet(&r, request(1, mac(100 + n), &[])), now);
        }
        let s = &r.side.stats;
        assert_eq!(
            (s.jobs, s.offers_capped, s.jobs_refused),
            (jobs, waiting, 2),
            "max_offers {max_offers}"
        );
        assert_eq!(r.offers.try_iter().count() as u64, jobs);
        assert_eq!(r.side.status().0, 4);
    }
}

/// Places for jobs all taken, partly by waiting DISCOVERs: a known
/// client's renewal and a DISCOVER of a subnet with room each take the
/// place of the newest waiting one.
#[test]
fn waiting_discovers_give_way_to_jobs_that_would_run() {
    let mut r = rig_with(
        false,
        RelayLimits {
            max_pending_jobs: 4,
            max_offers: 1,
        },
    );
    let now = SystemTime::now();
    let ours = lease_before_the_flood(&mut r, now);

    // New clients: one offer runs, three wait, the fifth is refused.
    for n in 0..5u8 {
        r.side
            .on_packet(packet(&r, request(1, mac(100 + n), &[])), now);
    }
    assert_eq!(r.side.stats.jobs_refused, 1);
    assert_eq!(r.side.status().0, 4);
    let first = r.offers.try_recv().unwrap();

    // The known client renews: it runs, the newest waiting DISCOVER goes.
    r.side.on_packet(packet(&r, request(3, mac(1), &ours)), now);
    let renewal = r.urgent.try_recv().expect("the renewal runs");
    assert_eq!(renewal.client.mac, mac(1));
    assert_eq!(r.side.stats.jobs_refused, 2);
    assert_eq!(r.side.status().0, 4);

    // A DISCOVER from another subnet, which has room, runs too.
    let mut other = request(1, mac(200), &[]);
    other[24..28].copy_from_slice(&[127, 0, 0, 2]);
    r.side.on_packet(packet(&r, other), now);
    let j = r
        .offers
        .try_recv()
        .expect("a DISCOVER of a subnet with room runs");
    assert_eq!(j.client.mac, mac(200));
    assert_eq!(r.side.stats.jobs_refused, 3);

    // Another new client of the full subnet is refused: it would wait.
    r.side.on_packet(packet(&r, request(1, mac(150), &[])), now);
    assert_eq!(r.side.stats.jobs_refused, 4);
    assert!(r.offers.try_recv().is_err());

    // The oldest waiting one is still next.
    r.side.on_result(JobResult {
        id: first.id,
        outcome: Ok(Outcome::NoLease(NoLease::PoolExhausted)),
        calls: 1,
        started: None,
    });
    let next = r.offers.try_recv().unwrap();
    assert_eq!(next.client.mac, mac(101));
}

#[test]
fn a_hold_runs_from_when_the_worker_began_the_job() {
    let mut r = rig(false);
    let now = SystemTime::now();
    r.side.on_packet(packet(&r, request(1, mac(7), &[])), now);
    let job = r.offers.try_recv().unwrap();
    // The job waited 8 s in the queue behind others.
    finish_at(&mut r, &job, Some(now + Duration::from_secs(8)));
    answer(&r).expect("an OFFER");
    // 12 s after the DISCOVER, 4 s after the hold was written: still held.
    let req = request(
        3,
        mac(7),
        &[(50, vec![192, 0, 2, 5]), (54, LOCAL.octets().to_vec())],
    );
    r.side
        .on_packet(packet(&r, req), now + Duration::from_secs(12));
    assert!(r.urgent.try_recv().unwrap().known.is_some());
}

/// An OFFER whose write covers the whole lease, for mac(n).
fn offered(r: &mut Rig, n: u8, now: SystemTime) -> Job {
    r.side.on_packet(packet(r, request(1, mac(n), &[])), now);
    let job = r.offers.try_recv().unwrap();
    finish_lease_long(r, &job, now);
    answer(r).expect("an OFFER");
    job
}

/// Serves the OFFER `job` as a backend that writes the whole lease.
fn finish_lease_long(r: &mut Rig, job: &Job, now: SystemTime) {
    let mut outcome = serve(r, job);
    if let Outcome::Lease(l) = &mut outcome {
        l.recorded_until = Some(now + Duration::from_secs(3600 + OFFER_HOLD_SECS));
    }
    r.side.on_result(JobResult {
        id: job.id,
        outcome: Ok(outcome),
        calls: 2,
        started: Some(now),
    });
}

fn withdrawal(r: &Rig) -> Option<Job> {
    let j = r.urgent.try_recv().ok()?;
    assert!(matches!(j.kind, JobKind::Withdraw { .. }), "{j:?}");
    Some(j)
}

#[test]
fn offers_not_taken_are_withdrawn_taken_ones_are_not() {
    let mut r = rig(false);
    let now = SystemTime::now();
    offered(&mut r, 1, now);
    offered(&mut r, 2, now);
    offered(&mut r, 3, now);

    // mac(1) takes another server's offer: ours goes back at once, by
    // the record the OFFER wrote.
    let other = [(50, vec![192, 0, 2, 77]), (54, vec![192, 0, 2, 250])];
    r.side
        .on_packet(packet(&r, request(3, mac(1), &other)), now);
    let w = withdrawal(&r).expect("a withdrawal of the offer");
    assert_eq!(
        w.kind,
        JobKind::Withdraw {
            addr: Ipv4Addr::new(192, 0, 2, 5)
        }
    );
    // With what the OFFER wrote, so that a record changed since is kept.
    let k = w.known.as_ref().unwrap();
    assert_eq!(k.record.as_deref(), Some("rec-192.0.2.5"));
    assert_eq!(
        k.lease.recorded_until,
        Some(now + Duration::from_secs(3600 + OFFER_HOLD_SECS))
    );
    assert_eq!(w.client.mac, mac(1));
    // Until it is done, the client's requests wait (they are absorbed):
    // a withdrawal must never land after a new lease.
    r.side.on_packet(packet(&r, request(1, mac(1), &[])), now);
    assert!(r.offers.try_recv().is_err() && r.urgent.try_recv().is_err());
    // Nobody waits for its answer; it changes nothing for the client.
    r.side.on_result(JobResult {
        id: w.id,
        outcome: Ok(Outcome::Done),
        calls: 1,
        started: None,
    });
    assert!(answer(&r).is_none());
    r.side.on_packet(packet(&r, request(1, mac(1), &[])), now);
    assert!(r.offers.try_recv().is_ok(), "served again once withdrawn");

    // mac(4) takes another server's offer of the very address ours wrote
    // (that server read our record as the client's own): nothing to
    // withdraw, now or when the hold runs out.
    offered(&mut r, 4, now);
    let same = [(50, vec![192, 0, 2, 8]), (54, vec![192, 0, 2, 250])];
    r.side.on_packet(packet(&r, request(3, mac(4), &same)), now);
    assert!(withdrawal(&r).is_none());

    // mac(2) takes ours: its REQUEST is a job, nothing is withdrawn.
    let ours = [(50, vec![192, 0, 2, 6]), (54, LOCAL.octets().to_vec())];
    r.side.on_packet(packet(&r, request(3, mac(2), &ours)), now);
    let req = r.urgent.try_recv().unwrap();
    assert!(matches!(req.kind, JobKind::Confirm { .. }));
    finish(&mut r, &req);
    answer(&r).expect("an ACK");

    // mac(3) never comes back: withdrawn when its hold runs out.
    r.side.tick(now + Duration::from_secs(OFFER_HOLD_SECS - 1));
    assert!(withdrawal(&r).is_none());
    r.side.tick(now + Duration::from_secs(OFFER_HOLD_SECS));
    let w = withdrawal(&r).expect("the unclaimed offer");
    assert_eq!(w.client.mac, mac(3));
    assert!(withdrawal(&r).is_none(), "mac(2)'s was taken");
    assert_eq!(r.side.stats.offers_withdrawn, 2);
}

#[test]
fn an_offer_without_a_lease_long_write_is_not_tracked() {
    let mut r = rig(false);
    let now = SystemTime::now();
    r.side.on_packet(packet(&r, request(1, mac(4), &[])), now);
    let job = r.offers.try_recv().unwrap();
    finish_at(&mut r, &job, Some(now));
    answer(&r).expect("an OFFER");
    r.side.tick(now + Duration::from_secs(OFFER_HOLD_SECS + 1));
    assert!(r.urgent.try_recv().is_err());
    assert_eq!(r.side.stats.offers_withdrawn, 0);
}

#[test]
fn an_offer_made_after_the_client_took_another_goes_back_at_once() {
    let mut r = rig(false);
    let now = SystemTime::now();
    // While the OFFER job runs, the client asks another server for
    // another address.
    r.side.on_packet(packet(&r, request(1, mac(1), &[])), now);
    let job = r.offers.try_recv().unwrap();
    let other = [(50, vec![192, 0, 2, 77]), (54, vec![192, 0, 2, 250])];
    r.side
        .on_packet(packet(&r, request(3, mac(1), &other)), now);
    finish_lease_long(&mut r, &job, now);
    answer(&r).expect("the OFFER, late");
    let w = withdrawal(&r).expect("what the OFFER wrote goes back at once");
    assert_eq!(
        w.kind,
        JobKind::Withdraw {
            addr: Ipv4Addr::new(192, 0, 2, 5)
        }
    );

    // Asked the other server for the very address ours would be (it found
    // the same record): kept.
    r.side.on_packet(packet(&r, request(1, mac(2), &[])), now);
    let job = r.offers.try_recv().unwrap();
    let same = [(50, vec![192, 0, 2, 6]), (54, vec![192, 0, 2, 250])];
    r.side.on_packet(packet(&r, request(3, mac(2), &same)), now);
    finish_lease_long(&mut r, &job, now);
    answer(&r).expect("the OFFER, late");
    assert!(withdrawal(&r).is_none());
    assert_eq!(r.side.status().0, 0, "nothing left pending");
}

/// A DISCOVER retransmitted after our OFFER got a newer offer of another
/// record; the client then asks for the first: the newer one goes back.
#[test]
fn an_offer_the_client_asks_past_goes_back() {
    let mut r = rig(false);
    let now = SystemTime::now();
    offered(&mut r, 1, now);
    let first = Ipv4Addr::new(192, 0, 2, 5);
    // The newer offer, of another record.
    r.side.on_packet(packet(&r, request(1, mac(1), &[])), now);
    let job = r.urgent.try_recv().unwrap();
    r.records.clear();
    r.records.push(pool::Record {
        id: "rec-192.0.2.5".into(),
        addr: first,
        dynamic: true,
        mac: Some(mac(9)),
        expire: Some(now + Duration::from_secs(3600)),
        interface_macs: vec![],
    });
    finish_lease_long(&mut r, &job, now);
    answer(&r).expect("the newer OFFER");
    let replaced = withdrawal(&r).expect("the first offer, replaced");
    r.side.on_result(JobResult {
        id: replaced.id,
        outcome: Ok(Outcome::Done),
        calls: 2,
        started: None,
    });
    // The client asks this server for the first address.
    let req = request(
        3,
        mac(1),
        &[(50, first.octets().to_vec()), (54, LOCAL.octets().to_vec())],
    );
    r.side.on_packet(packet(&r, req), now);
    let w = withdrawal(&r).expect("the newer offer goes back");
    assert_ne!(w.kind, JobKind::Withdraw { addr: first });
    let confirm = r.urgent.try_recv().expect("the REQUEST's job");
    assert_eq!(
        confirm.kind,
        JobKind::Confirm {
            addr: first,
            lease_secs: 3600
        }
    );
}
