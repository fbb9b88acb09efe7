use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};

use super::super::tests::{
    backend, job, known, lock, offer, v, Fake, Seen, CUSTOM_FIELDS_JSON, GQL, PREFIXES,
};
use super::refused_items;
use crate::backend::test_util::{ip, mac};
use crate::backend::{Backend, BackendError, BootClient, Job, JobKind, Lease, Outcome, Session};

const BULK_DUP_400: &str =
    include_str!("../../../../tests/data/nautobot/bulk_create_duplicate_400.json");
const DUP_500: &str = include_str!("../../../../tests/data/nautobot/duplicate_500_integrity.json");

/// How the fake refuses its first bulk create: the address of the item
/// numbered so then reads back as another client's.
#[derive(Clone, Copy)]
enum Refuse {
    None,
    /// A 400 naming the item.
    Item(usize),
    /// A 500 of the unique key, naming nothing.
    Whole(usize),
    /// That 500 for every list, and nothing taken.
    EveryList,
}

/// A server that takes lists: GraphQL with a list of the clients' MACs, bulk
/// create (refused as `refuse` says the first time) and bulk PATCH (ids
/// starting with "gone" are left out of the answer, as Nautobot does).
fn bulk_server(refuse: Refuse) -> impl Fn(&Seen) -> (u16, String) + Send + Sync + 'static {
    let taken: Arc<Mutex<Vec<Value>>> = Arc::default();
    let bulk_posts = Mutex::new(0usize);
    move |r: &Seen| {
        let p = r.path.as_str();
        let body: Value = serde_json::from_str(&r.body).unwrap_or(Value::Null);
        if p.starts_with("/api/extras/custom-fields/") {
            return (200, CUSTOM_FIELDS_JSON.into());
        }
        if p.starts_with("/api/ipam/prefixes/") {
            return (200, PREFIXES.into());
        }
        if p.starts_with("/api/graphql/") {
            let gql = v(GQL);
            let q = body["query"].as_str().unwrap_or("");
            let mut data = serde_json::Map::new();
            // Every client's MAC is on an interface of the fixture's device.
            if let Some(list) = q
                .split_once("interfaces(mac_address: [")
                .and_then(|(_, rest)| rest.split_once(']'))
                .map(|(list, _)| list)
            {
                let device = gql["data"]["devices"][0].clone();
                let interfaces: Vec<Value> = list
                    .split(", ")
                    .map(|m| json!({"mac_address": m.trim_matches('"').to_uppercase(), "device": device}))
                    .collect();
                data.insert("interfaces".into(), Value::Array(interfaces));
            } else if q.contains("devices(mac_address") {
                data.insert("devices".into(), gql["data"]["devices"].clone());
            }
            let mut ips = gql["data"]["ip_addresses"].as_array().unwrap().clone();
            ips.extend(lock(&taken).iter().cloned());
            data.insert("ip_addresses".into(), Value::Array(ips));
            return (200, json!({ "data": data }).to_string());
        }
        let created = |item: &Value| {
            let host = item["address"]
                .as_str()
                .unwrap_or("")
                .split('/')
                .next()
                .unwrap()
                .to_owned();
            json!({"id": format!("new-{host}"), "host": host, "type": "dhcp"})
        };
        match (r.method.as_str(), body) {
            ("POST", Value::Array(items)) if p == "/api/ipam/ip-addresses/" => {
                let first = {
                    let mut n = lock(&bulk_posts);
                    *n += 1;
                    *n == 1
                };
                if let Refuse::EveryList = refuse {
                    return (500, DUP_500.into());
                }
                if let (true, Refuse::Item(k) | Refuse::Whole(k)) = (first, refuse) {
                    let host = created(&items[k])["host"].as_str().unwrap().to_owned();
                    lock(&taken).push(json!({
                        "id": format!("other-{host}"), "host": host, "type": "DHCP",
                        "_custom_field_data": {"pydhcp_mac": "02:00:00:00:00:aa",
                                               "pydhcp_expire": "2099-01-01T00:00:00Z"},
                        "interfaces": [],
                    }));
                    if let Refuse::Whole(_) = refuse {
                        return (500, DUP_500.into());
                    }
                    let errors: Vec<Value> = (0..items.len())
                        .map(|n| {
                            if n == k {
                                json!({"__all__": ["already exists"]})
                            } else {
                                json!({})
                            }
                        })
                        .collect();
                    return (400, Value::Array(errors).to_string());
                }
                (
                    201,
                    Value::Array(items.iter().map(created).collect()).to_string(),
                )
            }
            ("POST", item) if p == "/api/ipam/ip-addresses/" => (201, created(&item).to_string()),
            ("PATCH", Value::Array(items)) => {
                let answer: Vec<Value> = items
                    .iter()
                    .filter(|i| !i["id"].as_str().unwrap_or("").starts_with("gone"))
                    .map(|i| {
                        let id = i["id"].as_str().unwrap();
                        let host = id.trim_start_matches("new-");
                        json!({"id": id, "host": host, "type": "dhcp"})
                    })
                    .collect();
                (200, Value::Array(answer).to_string())
            }
            ("PATCH", _) => (404, r#"{"detail":"Not found."}"#.into()),
            _ => (404, "{}".into()),
        }
    }
}

fn leases(out: Vec<Result<Outcome, BackendError>>) -> Vec<Lease> {
    out.into_iter()
        .map(|o| match o {
            Ok(Outcome::Lease(l)) => l,
            other => panic!("no lease: {other:?}"),
        })
        .collect()
}

fn clients(n: u8) -> Vec<Job> {
    (0..n)
        .map(|i| {
            let mut j = offer(&format!("02:00:00:00:01:{i:02x}"));
            j.id = u64::from(i);
            j
        })
        .collect()
}

/// The REQUESTs of `clients`' MACs for their leases `l`, `secs` after the
/// OFFERs, with what the daemon knows of each.
fn confirms(l: &[Lease], secs: u64) -> Vec<Job> {
    l.iter()
        .enumerate()
        .map(|(n, l)| {
            let mut c = job(
                JobKind::Confirm {
                    addr: l.addr,
                    lease_secs: 3600,
                },
                &format!("02:00:00:00:01:{n:02x}"),
                BootClient::None,
                known(l),
            );
            c.id = n as u64;
            c.now += std::time::Duration::from_secs(secs);
            c
        })
        .collect()
}

fn bulk_posts(seen: &[Seen]) -> Vec<usize> {
    seen.iter()
        .filter(|r| r.method == "POST" && r.path == "/api/ipam/ip-addresses/")
        .filter_map(|r| {
            serde_json::from_str::<Value>(&r.body)
                .ok()?
                .as_array()
                .map(Vec::len)
        })
        .collect()
}

#[test]
fn offers_of_a_batch_share_one_read_and_one_create() {
    let fake = Fake::new(bulk_server(Refuse::None));
    let nb = backend(&fake.url, true);
    nb.prepare().unwrap();
    fake.seen();
    let mut s = nb.session();
    let jobs = clients(5);
    let (out, calls) = batch(&mut *s, &jobs);
    let l = leases(out);
    // prefix, one read, one create.
    assert_eq!(calls, 3);
    assert_eq!(bulk_posts(&fake.seen()), [5]);
    let addrs: HashSet<_> = l.iter().map(|l| l.addr).collect();
    assert_eq!(addrs.len(), 5, "one address each: {l:?}");
    for l in &l {
        assert_eq!(
            l.record.as_deref(),
            Some(format!("new-{}", l.addr).as_str())
        );
    }

    // The REQUESTs that follow at once: the OFFER wrote the whole lease.
    let (out, calls) = batch(&mut *s, &confirms(&l, 2));
    assert_eq!(calls, 0);
    assert_eq!(leases(out).len(), 5);
    // Renewals half a lease later: one PATCH for all, by record id.
    let (out, calls) = batch(&mut *s, &confirms(&l, 1800));
    assert_eq!(calls, 1);
    let acked = leases(out);
    assert_eq!(
        acked.iter().map(|l| l.addr).collect::<Vec<_>>(),
        l.iter().map(|l| l.addr).collect::<Vec<_>>()
    );
    let patch = fake.seen().pop().unwrap();
    assert_eq!(
        (patch.method.as_str(), patch.path.as_str()),
        ("PATCH", "/api/ipam/ip-addresses/")
    );
    assert_eq!(
        serde_json::from_str::<Value>(&patch.body)
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        5
    );
}

/// The OFFERs of four new clients, one batch, against a server refusing
/// bulk creates as `refuse` says: their leases, the calls, and the length
/// of each bulk create.
fn four_offers(refuse: Refuse) -> (Vec<Lease>, u32, Vec<usize>) {
    let fake = Fake::new(bulk_server(refuse));
    let nb = backend(&fake.url, true);
    nb.prepare().unwrap();
    fake.seen();
    let (out, calls) = batch(&mut *nb.session(), &clients(4));
    (leases(out), calls, bulk_posts(&fake.seen()))
}

#[test]
fn a_refused_item_chooses_again_and_the_others_go_once_more() {
    let (l, calls, posts) = four_offers(Refuse::Item(1));
    // The refused list, the three others once more; then the fourth
    // client reads the prefix again and gets another address.
    assert_eq!(posts, [4, 3, 1], "{posts:?}");
    assert_eq!(
        calls,
        1 + 1 + 2 + 2,
        "prefix, read, two bulk creates, read + create"
    );
    let addrs: HashSet<_> = l.iter().map(|l| l.addr).collect();
    assert_eq!(addrs.len(), 4, "{l:?}");
    let lost = l[1].addr;
    assert!(l[1].record.as_deref().unwrap().starts_with("new-"));
    assert!(!l.iter().enumerate().any(|(n, x)| n != 1 && x.addr == lost));
}

#[test]
fn a_list_refused_as_a_whole_is_chosen_again_together() {
    let (l, calls, posts) = four_offers(Refuse::Whole(1));
    // Another server took one of the four addresses: the second list
    // leaves it out, and nobody runs alone.
    assert_eq!(posts, [4, 4], "{posts:?}");
    assert_eq!(calls, 1 + 2 + 2, "prefix, read + create, read + create");
    let addrs: HashSet<_> = l.iter().map(|l| l.addr).collect();
    assert_eq!(addrs.len(), 4, "{l:?}");
    assert!(l
        .iter()
        .all(|l| l.record.as_deref().unwrap().starts_with("new-")));
}

#[test]
fn lists_refused_again_and_again_end_in_each_job_alone() {
    let (l, calls, posts) = four_offers(Refuse::EveryList);
    assert_eq!(l.len(), 4);
    assert_eq!(posts, [4; 1 + super::REREADS]);
    assert_eq!(calls as usize, 1 + 2 * (1 + super::REREADS) + 4 * 2);
}

#[test]
fn a_renewal_whose_record_is_gone_takes_the_full_path() {
    let fake = Fake::new(bulk_server(Refuse::None));
    let nb = backend(&fake.url, true);
    nb.prepare().unwrap();
    fake.seen();
    let mut s = nb.session();
    let (out, _) = batch(&mut *s, &clients(3));
    let mut l = leases(out);
    l[2].record = Some("gone-1".into());
    let (out, calls) = batch(&mut *s, &confirms(&l, 1800));
    assert!(matches!(out[0], Ok(Outcome::Lease(_))) && matches!(out[1], Ok(Outcome::Lease(_))));
    // The third: its own PATCH (404), then the full path: a read that
    // shows the address free, and a create for the client.
    assert_eq!(calls, 1 + 1 + 1 + 1);
    match &out[2] {
        Ok(Outcome::Lease(x)) => assert_eq!(
            (x.addr, x.record.as_deref()),
            (l[2].addr, Some(format!("new-{}", l[2].addr).as_str()))
        ),
        other => panic!("{other:?}"),
    }
}

#[test]
fn bulk_refusals_name_their_items() {
    assert_eq!(
        refused_items(400, BULK_DUP_400.as_bytes(), 2),
        Some(vec![1])
    );
    assert_eq!(
        refused_items(400, BULK_DUP_400.as_bytes(), 3),
        None,
        "not one per item"
    );
    assert_eq!(refused_items(500, BULK_DUP_400.as_bytes(), 2), None);
    assert_eq!(refused_items(400, b"[{}, {}]", 2), None, "nothing refused");
    for junk in [&b"{}"[..], b"", b"[1, null]", b"\xff"] {
        let _ = refused_items(400, junk, 2);
    }
    assert_eq!(refused_items(400, b"[1, null]", 2), Some(vec![0, 1]));
    let _ = (ip(1), mac("02:00:00:00:00:01"));
}

/// Runs `jobs` as one batch: every outcome, in order, and the calls.
fn batch(s: &mut dyn Session, jobs: &[Job]) -> (Vec<Result<Outcome, BackendError>>, u32) {
    let mut out: Vec<Option<Result<Outcome, BackendError>>> = vec![None; jobs.len()];
    let mut calls = 0;
    s.run_batch(jobs, &mut |i, o, c| {
        assert!(out[i].is_none(), "job {i} answered twice");
        out[i] = Some(o);
        calls += c;
    });
    let out = out
        .into_iter()
        .enumerate()
        .map(|(i, o)| o.unwrap_or_else(|| panic!("job {i} not answered")))
        .collect();
    (out, calls)
}

#[test]
fn a_backend_that_cannot_be_reached_fails_the_whole_batch_at_once() {
    let fake = Fake::new(bulk_server(Refuse::None));
    let nb = backend(&fake.url, true);
    nb.prepare().unwrap();
    let mut s = nb.session();
    let (out, _) = batch(&mut *s, &clients(2));
    let l = leases(out);
    // The server goes away; a batch of renewals and new clients follows.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed = format!("http://{}", port.local_addr().unwrap());
    drop(port);
    let gone = backend(&closed, true);
    let mut s = gone.session();
    let mut jobs = confirms(&l, 1800);
    jobs.extend(clients(3).into_iter().map(|mut j| {
        j.id += 10;
        j
    }));
    let (out, calls) = batch(&mut *s, &jobs);
    assert!(
        out.iter()
            .all(|o| matches!(o, Err(BackendError::Connect(_)))),
        "{out:?}"
    );
    // One refused bulk PATCH; nobody else tries the same.
    assert!(calls <= 2, "{calls} calls");
}

#[test]
fn a_timeout_fails_what_is_still_to_run_not_what_was_handed_over() {
    let mut b = super::Batch {
        out: vec![
            None,
            Some(Err(BackendError::Timeout)),
            None,
            Some(Ok(Outcome::Done)),
        ],
        sent: vec![true, false, false, false],
        calls_sent: 0,
    };
    b.fail_fast();
    assert_eq!(b.out[0], None, "handed over already");
    assert_eq!(b.out[2], Some(Err(BackendError::Timeout)));
    assert_eq!(b.out[3], Some(Ok(Outcome::Done)));
    // Any other failure is the job's own.
    let mut b = super::Batch {
        out: vec![None, Some(Err(BackendError::BadAnswer("x".into())))],
        sent: vec![false, false],
        calls_sent: 0,
    };
    b.fail_fast();
    assert_eq!(b.out[0], None);
}
