use super::api::is_duplicate;
use super::leases::{decline_patch, dns_name, lease_patch, MAX_LOST_RACES, REREAD_EVERY};
use super::*;
use crate::backend::context::checks::sample_device;
use crate::backend::rest::time::utc_z;
use crate::backend::test_util::{at, garbage, ip, mac};
use crate::backend::{
    BootClient, Known, Lease, LeaseKind, NoLease, DECLINE_HOLD_SECS, OFFER_HOLD_SECS,
};
use serde::de::DeserializeOwned;
use std::collections::HashMap;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use std::thread;
use std::time::Instant;

const TOKEN: &str = "0123456789abcdef0123456789abcdef01234567";

pub(super) const CUSTOM_FIELDS_JSON: &str =
    include_str!("../../../tests/data/nautobot/custom_fields.json");
pub(super) const PREFIXES: &str = include_str!("../../../tests/data/nautobot/prefixes_nested.json");
const PREFIXES_EMPTY: &str = include_str!("../../../tests/data/nautobot/prefixes_empty.json");
const PREFIXES_BAD_ROLE: &str =
    include_str!("../../../tests/data/nautobot/prefixes_bad_role_400.json");
const DEVICE: &str = include_str!("../../../tests/data/nautobot/device_config_context.json");
const DEVICE_NONE: &str = include_str!("../../../tests/data/nautobot/device_none.json");
const IPS: &str = include_str!("../../../tests/data/nautobot/ip_addresses_depth1.json");
const IPS_PAGE1: &str = include_str!("../../../tests/data/nautobot/ip_addresses_page1.json");
const IP_CREATED: &str = include_str!("../../../tests/data/nautobot/ip_address_create_201.json");
const IP_PATCHED: &str = include_str!("../../../tests/data/nautobot/ip_address_patch_200.json");
const IP_STATIC: &str = include_str!("../../../tests/data/nautobot/ip_address_static_depth1.json");
pub(super) const GQL: &str = include_str!("../../../tests/data/nautobot/graphql_read.json");
const GQL_EMPTY: &str = include_str!("../../../tests/data/nautobot/graphql_read_empty.json");
const GQL_ERROR: &str = include_str!("../../../tests/data/nautobot/graphql_error.json");
const DUP_400: &str = include_str!("../../../tests/data/nautobot/duplicate_400.json");
const DUP_500_INTEGRITY: &str =
    include_str!("../../../tests/data/nautobot/duplicate_500_integrity.json");
const DUP_500_VALIDATION: &str =
    include_str!("../../../tests/data/nautobot/duplicate_500_validation.json");
const BAD_TOKEN: &str = include_str!("../../../tests/data/nautobot/invalid_token_403.json");
const NO_TOKEN: &str = include_str!("../../../tests/data/nautobot/no_token_403.json");

pub(super) fn v(s: &str) -> Value {
    serde_json::from_str(s).unwrap()
}
pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
fn page<T: DeserializeOwned>(s: &str) -> Page<T> {
    serde_json::from_str(s).unwrap()
}
fn parse_prefixes(s: &str) -> Vec<PrefixInfo> {
    api::prefixes(page(s).results)
}
fn parse_device(s: &str) -> Option<Device> {
    page::<api::ApiDevice>(s)
        .results
        .into_iter()
        .next()
        .map(api::ApiDevice::into_device)
}
fn parse_records(s: &str) -> Vec<Record> {
    api::records(page(s).results)
}
fn record_from(s: &str) -> Option<Record> {
    serde_json::from_str::<api::IpAddress>(s).ok()?.record()
}
fn missing(s: &str) -> Vec<&'static str> {
    api::missing_custom_fields(&page::<api::CustomField>(s).results)
}
fn by_addr(mut r: Vec<Record>) -> Vec<Record> {
    r.sort_by_key(|r| r.addr);
    r
}

// ---- mapping of recorded answers ----

#[test]
fn prefixes_most_specific_wins() {
    let list = parse_prefixes(PREFIXES);
    assert_eq!(list.len(), 2);
    let p = most_specific(&list, ip(10)).unwrap();
    assert_eq!(p.network, "192.0.2.0/26".parse::<Ipv4Net>().unwrap());
    assert_eq!(p.id, "1105e06d-0787-45c5-bf3e-10bd9739911c");
    assert_eq!(
        p.namespace.as_deref(),
        Some("dfef6c78-ee4d-4f9f-bf46-b65ee7653fa7")
    );
    let p = most_specific(&list, ip(100)).unwrap();
    assert_eq!(p.network, "192.0.2.0/24".parse::<Ipv4Net>().unwrap());
    assert_eq!(most_specific(&list, Ipv4Addr::new(10, 0, 0, 1)), None);
    assert!(parse_prefixes(PREFIXES_EMPTY).is_empty());
}

#[test]
fn device_with_config_context() {
    let d = parse_device(DEVICE).unwrap();
    assert_eq!(d.name, "bmc-test-01");
    assert_eq!(
        dns_servers(Some(&d)),
        vec![ip(53), Ipv4Addr::new(198, 51, 100, 53)]
    );
    sample_device("nautobot", &d.name, &d.custom_fields, &d.config_context);
    assert!(boot_options(&d, BootClient::Bios).is_some());
    // BIOS/UEFI PXE needs the TFTP server.
    let mut no_tftp = d.clone();
    no_tftp.config_context["pydhcp_configuration"]
        .as_object_mut()
        .unwrap()
        .remove("tftp_server");
    assert_eq!(boot_options(&no_tftp, BootClient::Uefi), None);
    assert!(boot_options(&no_tftp, BootClient::Ipxe).is_some());
    assert_eq!(parse_device(DEVICE_NONE), None);
    assert!(dns_servers(None).is_empty());
}

fn expected_records() -> Vec<Record> {
    vec![
        Record {
            id: "26a8aa4f-64f1-4d36-9c45-aae63ac2861c".into(),
            addr: ip(5),
            dynamic: true,
            mac: Some(mac("02:00:00:00:00:05")),
            expire: Some(at(1_893_456_000)),
            interface_macs: vec![],
        },
        Record {
            id: "39e86320-f894-4110-8e34-a657b08853bb".into(),
            addr: ip(6),
            dynamic: true,
            mac: Some(mac("02:00:00:00:00:06")),
            expire: Some(at(1_577_836_800)),
            interface_macs: vec![],
        },
        Record {
            id: "207df7f4-4453-4377-8c74-de2ec8133d46".into(),
            addr: ip(7),
            dynamic: false,
            mac: Some(mac("02:00:00:00:00:07")),
            expire: None,
            interface_macs: vec![],
        },
        Record {
            id: "26096aa6-31b1-4755-89cf-92d5660251cf".into(),
            addr: ip(10),
            dynamic: false,
            mac: None,
            expire: None,
            interface_macs: vec![mac("14:18:77:aa:bb:01")],
        },
    ]
}

#[test]
fn ip_list_with_interfaces_inline() {
    assert_eq!(by_addr(parse_records(IPS)), expected_records());
    let p: Page<api::IpAddress> = page(IPS_PAGE1);
    assert!(p.next.unwrap().contains("offset=2"));
    assert_eq!(api::records(p.results).len(), 2);
}

#[test]
fn graphql_answer_maps_like_rest() {
    let snap = parse_graphql(200, GQL.as_bytes(), true, true).unwrap();
    assert_eq!(by_addr(snap.records), expected_records());
    let rest_dev = parse_device(DEVICE).unwrap();
    let dev = snap.device.unwrap();
    assert_eq!(dev.name, rest_dev.name);
    assert_eq!(dev.config_context, rest_dev.config_context);
    assert_eq!(dev.custom_fields, rest_dev.custom_fields);
    let empty = parse_graphql(200, GQL_EMPTY.as_bytes(), true, true).unwrap();
    assert!(empty.device.is_none() && empty.records.is_empty());
    assert!(matches!(
        parse_graphql(400, GQL_ERROR.as_bytes(), true, true),
        Err(GqlError::Schema(_))
    ));
    assert!(matches!(
        parse_graphql(404, b"<html>", true, true),
        Err(GqlError::Schema(_))
    ));
    let other =
        br#"{"errors":[{"message":"invalid IPNetwork bogus"}],"data":{"ip_addresses":null}}"#;
    assert!(matches!(
        parse_graphql(200, other, false, true),
        Err(GqlError::Backend(BackendError::BadAnswer(_)))
    ));
    // JSON fields sent as strings (JSONString) are decoded too.
    let s = br#"{"data":{"devices":[{"name":"d","config_context":"{\"pydhcp_configuration\":{\"dns_servers\":[\"192.0.2.53\"]}}","_custom_field_data":"{}"}],"ip_addresses":[{"id":"x","host":"192.0.2.9","type":"dhcp","_custom_field_data":"{\"pydhcp_mac\":\"141877AABB09\"}","interfaces":[]}]}}"#;
    let snap = parse_graphql(200, s, true, true).unwrap();
    assert_eq!(dns_servers(snap.device.as_ref()), vec![ip(53)]);
    assert_eq!(snap.records[0].mac, Some(mac("14:18:77:aa:bb:09")));
}

#[test]
fn single_records() {
    let r = record_from(IP_PATCHED).unwrap();
    assert_eq!((r.addr, r.dynamic), (ip(5), true));
    assert_eq!(r.expire, Some(at(1_924_992_000)));
    let r = record_from(IP_STATIC).unwrap();
    assert_eq!(r, expected_records()[3]);
    let r = record_from(IP_CREATED).unwrap();
    assert_eq!(r.id, "26a8aa4f-64f1-4d36-9c45-aae63ac2861c");
    assert_eq!(r.mac, Some(mac("02:00:00:00:00:05")));
}

#[test]
fn custom_field_list() {
    assert!(missing(CUSTOM_FIELDS_JSON).is_empty());
    let mut cf = v(CUSTOM_FIELDS_JSON);
    cf["results"]
        .as_array_mut()
        .unwrap()
        .retain(|f| f["key"] != "pydhcp_hostname");
    assert_eq!(missing(&cf.to_string()), vec!["pydhcp_hostname"]);
    assert_eq!(
        missing(r#"{"count": 0, "results": []}"#),
        CUSTOM_FIELDS.to_vec()
    );
}

#[test]
fn duplicate_answers() {
    assert!(is_duplicate(400, DUP_400.as_bytes()));
    assert!(is_duplicate(500, DUP_500_INTEGRITY.as_bytes()));
    assert!(is_duplicate(500, DUP_500_VALIDATION.as_bytes()));
    assert!(!is_duplicate(403, BAD_TOKEN.as_bytes()));
    assert!(!is_duplicate(400, PREFIXES_BAD_ROLE.as_bytes()));
    assert!(!is_duplicate(
        400,
        br#"{"namespace":["No suitable parent Prefix for 10.255.255.1 exists in Namespace Global"]}"#
    ));
    assert!(!is_duplicate(500, b"<html>Internal Server Error</html>"));
    assert!(!is_duplicate(
        500,
        br#"{"error":"connection lost","exception":"OperationalError"}"#
    ));
    assert!(!is_duplicate(201, DUP_400.as_bytes()));
}

#[test]
fn garbage_never_panics() {
    // After the shapes of no use to anyone, this backend's own.
    let mut shapes = garbage();
    shapes.extend([
        json!({"results": [{"id": 1, "host": "192.0.2.1"}, {"id": "a", "host": "::1"}, {"id": "b", "address": 7}]}),
        json!({"results": [{"id": "a", "host": "192.0.2.1", "type": 3, "custom_fields": [1], "interfaces": {"x": 1}}]}),
        json!({"data": {"devices": {}, "ip_addresses": "x"}}),
        json!({"errors": "x"}),
    ]);
    for s in &shapes {
        let text = s.to_string();
        if let Ok(p) = serde_json::from_str::<Page<api::Prefix>>(&text) {
            let _ = api::prefixes(p.results);
        }
        if let Ok(p) = serde_json::from_str::<Page<api::ApiDevice>>(&text) {
            let _ = p
                .results
                .into_iter()
                .map(api::ApiDevice::into_device)
                .count();
        }
        if let Ok(p) = serde_json::from_str::<Page<api::IpAddress>>(&text) {
            let _ = api::records(p.results);
        }
        if let Ok(p) = serde_json::from_str::<Page<api::CustomField>>(&text) {
            let _ = api::missing_custom_fields(&p.results);
        }
        let _ = record_from(&text);
        let _ = parse_graphql(200, text.as_bytes(), true, true);
        let d = Device {
            name: "n".into(),
            config_context: s.clone(),
            custom_fields: s.clone(),
        };
        let _ = dns_servers(Some(&d));
        let _ = boot_options(&d, BootClient::Bios);
    }
    // An address whose type, custom fields and interfaces make no sense
    // still holds its address.
    let recs = parse_records(&shapes[6].to_string());
    assert_eq!(recs.len(), 1);
    assert!(!recs[0].dynamic && recs[0].mac.is_none());
    assert!(parse_prefixes(&shapes[4].to_string()).is_empty());
    assert!(serde_json::from_str::<Page<api::Prefix>>("[]").is_err());
    for garbage in [&b"<html>"[..], b"", b"{", b"\xff\xfe"] {
        assert!(matches!(
            parse_graphql(200, garbage, true, true),
            Err(GqlError::Backend(BackendError::BadAnswer(_)))
        ));
    }
    assert!(matches!(
        parse_graphql(200, b"{\"data\":{}}", true, true),
        Err(GqlError::Backend(BackendError::BadAnswer(_)))
    ));
    assert!(matches!(
        parse_graphql(502, b"bad gateway", true, true),
        Err(GqlError::Backend(BackendError::Http { status: 502, .. }))
    ));
}

#[test]
fn many_read_finds_each_clients_device_by_its_interfaces() {
    let p = PrefixInfo {
        id: "p".into(),
        network: "192.0.2.0/24".parse().unwrap(),
        namespace: None,
    };
    let macs = [
        mac("02:00:00:00:00:01"),
        mac("02:00:00:00:00:02"),
        mac("02:00:00:00:00:03"),
    ];
    let q = super::graphql::graphql_many_query(&macs, &p);
    assert!(
        q.contains(r#"interfaces(mac_address: ["02:00:00:00:00:01", "02:00:00:00:00:02", "02:00:00:00:00:03"])"#),
        "{q}"
    );
    assert_eq!(
        q.matches("mac_address:").count(),
        1,
        "one filter for all: {q}"
    );
    // Nautobot writes MACs in upper case; a MAC on two devices gets the
    // first; an interface of another MAC, or without a device, is skipped.
    let answer = json!({"data": {
        "interfaces": [
            {"mac_address": "02:00:00:00:00:09", "device": {"name": "other"}},
            {"mac_address": "02:00:00:00:00:03", "device": null},
            {"mac_address": "02:00:00:00:00:02", "device": {"name": "bmc-2", "config_context": {"a": 1}, "_custom_field_data": "{\"redeploy\": true}"}},
            {"mac_address": "02:00:00:00:00:02", "device": {"name": "second"}},
            {"mac_address": "garbage", "device": {"name": "x"}},
        ],
        "ip_addresses": v(GQL)["data"]["ip_addresses"].clone(),
    }});
    let snap =
        super::graphql::parse_graphql_many(200, answer.to_string().as_bytes(), &macs).unwrap();
    assert_eq!(snap.devices.len(), 3);
    assert!(snap.devices[0].is_none());
    let d = snap.devices[1].as_ref().unwrap();
    assert_eq!(d.name, "bmc-2");
    assert_eq!(d.config_context, json!({"a": 1}));
    assert_eq!(d.custom_fields, json!({"redeploy": true}));
    assert!(snap.devices[2].is_none());
    assert_eq!(
        snap.records.len(),
        parse_graphql(200, GQL.as_bytes(), true, true)
            .unwrap()
            .records
            .len()
    );
    // A server whose schema has no such field says so.
    let refused =
        json!({"errors": [{"message": "Cannot query field \"interfaces\" on type \"Query\"."}]});
    assert!(matches!(
        super::graphql::parse_graphql_many(400, refused.to_string().as_bytes(), &macs),
        Err(GqlError::Schema(_))
    ));
}

#[test]
fn query_and_bodies() {
    let p = PrefixInfo {
        id: "p".into(),
        network: "192.0.2.0/24".parse().unwrap(),
        namespace: Some("ns\"1".into()),
    };
    let q = graphql_query(Some(mac("14:18:77:aa:bb:01")), Some(&p));
    assert!(
        q.contains(r#"devices(mac_address: "14:18:77:aa:bb:01")"#),
        "{q}"
    );
    assert!(
        q.contains(r#"ip_addresses(prefix: "192.0.2.0/24", namespace: "ns\"1", limit: 65537)"#),
        "{q}"
    );
    assert!(!graphql_query(None, Some(&p)).contains("devices"));
    assert!(!graphql_query(Some(mac("14:18:77:aa:bb:01")), None).contains("ip_addresses"));

    let m = mac("02:00:00:00:00:01");
    assert_eq!(
        lease_patch(m, at(1_893_456_000), None, false),
        json!({"custom_fields": {"pydhcp_mac": "02:00:00:00:00:01", "pydhcp_expire": "2030-01-01T00:00:00Z"}})
    );
    assert_eq!(
        lease_patch(m, at(1_893_456_000), None, true),
        json!({"custom_fields": {"pydhcp_mac": "02:00:00:00:00:01", "pydhcp_expire": "2030-01-01T00:00:00Z", "pydhcp_hostname": null}, "dns_name": ""})
    );
    assert_eq!(
        lease_patch(m, at(1_893_456_000), Some("web 1"), false)["dns_name"],
        json!("")
    );
    assert_eq!(
        decline_patch(at(1_893_452_400)),
        json!({"custom_fields": {"pydhcp_mac": null, "pydhcp_expire": "2030-01-01T00:00:00Z"}})
    );
    assert_eq!(dns_name(Some("bmc-01.example")), Some("bmc-01.example"));
    for bad in ["", "a b", "a..b", ".a", "ä", &"x".repeat(64)] {
        assert_eq!(dns_name(Some(bad)), None, "{bad}");
    }
}

// ---- construction ----

fn conf(url: &str) -> BackendConf {
    BackendConf {
        url: Some(url.into()),
        timeout_secs: 5,
        ..BackendConf::default()
    }
}

#[test]
fn constructor_checks_and_never_shows_the_token() {
    let c = conf("http://127.0.0.1:1");
    let nb = Nautobot::new(&c, TOKEN.into(), 3600).unwrap();
    let dbg = format!("{nb:?}");
    assert!(!dbg.contains(TOKEN) && dbg.contains("127.0.0.1"), "{dbg}");
    assert!(Nautobot::new(&conf("ftp://x"), TOKEN.into(), 1).is_err());
    assert!(Nautobot::new(&conf("http://x"), "a b".into(), 1).is_err());
    let mut ca = conf("https://x");
    ca.ca_file = Some("/nonexistent/ca.pem".into());
    assert!(Nautobot::new(&ca, TOKEN.into(), 1).is_err());
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/nautobot");
    ca.ca_file = Some(data.join("test_ca.pem"));
    assert!(Nautobot::new(&ca, TOKEN.into(), 1).is_ok());
    ca.ca_file = Some(data.join("custom_fields.json"));
    let e = Nautobot::new(&ca, TOKEN.into(), 1).unwrap_err();
    assert!(e.contains("no certificate"), "{e}");
}

// ---- whole jobs against a scripted server ----

#[derive(Debug, Clone)]
pub(super) struct Seen {
    pub(super) method: String,
    pub(super) path: String,
    pub(super) body: String,
    auth: String,
}

type Handler = dyn Fn(&Seen) -> (u16, String) + Send + Sync;

pub(super) struct Fake {
    pub(super) url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Fake {
    pub(super) fn new(h: impl Fn(&Seen) -> (u16, String) + Send + Sync + 'static) -> Fake {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", l.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let h: Arc<Handler> = Arc::new(h);
        let s = Arc::clone(&seen);
        thread::spawn(move || {
            for c in l.incoming().flatten() {
                let (h, s) = (Arc::clone(&h), Arc::clone(&s));
                thread::spawn(move || serve(c, &*h, &s));
            }
        });
        Fake { url, seen }
    }
    pub(super) fn seen(&self) -> Vec<Seen> {
        std::mem::take(&mut *lock(&self.seen))
    }
}

fn serve(c: TcpStream, h: &Handler, seen: &Mutex<Vec<Seen>>) {
    let mut r = BufReader::new(c.try_clone().unwrap());
    let mut w = c;
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut it = line.split_whitespace();
        let (method, path) = (
            it.next().unwrap_or("").to_owned(),
            it.next().unwrap_or("").to_owned(),
        );
        let (mut len, mut auth) = (0usize, String::new());
        loop {
            let mut hl = String::new();
            if r.read_line(&mut hl).unwrap_or(0) == 0 {
                return;
            }
            let hl = hl.trim_end();
            if hl.is_empty() {
                break;
            }
            if let Some((k, v)) = hl.split_once(':') {
                match k.to_ascii_lowercase().as_str() {
                    "content-length" => len = v.trim().parse().unwrap_or(0),
                    "authorization" => auth = v.trim().to_owned(),
                    _ => {}
                }
            }
        }
        let mut body = vec![0; len];
        if r.read_exact(&mut body).is_err() {
            return;
        }
        let req = Seen {
            method,
            path,
            body: String::from_utf8_lossy(&body).into_owned(),
            auth,
        };
        lock(seen).push(req.clone());
        let (status, text) = h(&req);
        let head = format!(
            "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            text.len()
        );
        if w.write_all(head.as_bytes()).is_err() || w.write_all(text.as_bytes()).is_err() {
            return;
        }
    }
}

/// Answers like the seeded Nautobot with the recorded data; creates and
/// patches echo what was asked; `post` decides the create status.
fn nautobot_like(
    post: impl Fn(usize) -> (u16, &'static str) + Send + Sync + 'static,
) -> impl Fn(&Seen) -> (u16, String) + Send + Sync + 'static {
    won_by(post, "02:00:00:00:00:aa")
}

/// Like `nautobot_like`; an address lost to a duplicate then reads back
/// as a live lease of `winner`.
fn won_by(
    post: impl Fn(usize) -> (u16, &'static str) + Send + Sync + 'static,
    winner: &'static str,
) -> impl Fn(&Seen) -> (u16, String) + Send + Sync + 'static {
    let posts = Mutex::new(0usize);
    let hosts: Mutex<HashMap<String, String>> = Mutex::new(HashMap::new());
    let taken: Mutex<Vec<Value>> = Mutex::new(Vec::new());
    move |r: &Seen| {
        let p = r.path.as_str();
        let body: Value = serde_json::from_str(&r.body).unwrap_or(Value::Null);
        if p.starts_with("/api/extras/custom-fields/") {
            (200, CUSTOM_FIELDS_JSON.into())
        } else if p.starts_with("/api/ipam/prefixes/") {
            (200, PREFIXES.into())
        } else if p.starts_with("/api/graphql/") {
            let mut answer = v(GQL);
            let list = answer["data"]["ip_addresses"].as_array_mut().unwrap();
            list.extend(lock(&taken).iter().cloned());
            (200, answer.to_string())
        } else if p.starts_with("/api/dcim/devices/") {
            (200, DEVICE.into())
        } else if r.method == "GET" && p.starts_with("/api/ipam/ip-addresses/?") {
            (200, IPS.into())
        } else if r.method == "POST" && p == "/api/ipam/ip-addresses/" {
            let n = {
                let mut n = lock(&posts);
                *n += 1;
                *n
            };
            let (status, text) = post(n);
            let address = body["address"].as_str().unwrap_or("").to_owned();
            let host = address.split('/').next().unwrap().to_owned();
            if status != 201 {
                if is_duplicate(status, text.as_bytes()) {
                    lock(&taken).push(json!({
                        "id": format!("other-{host}"), "host": host, "type": "DHCP",
                        "_custom_field_data": {"pydhcp_mac": winner, "pydhcp_expire": "2099-01-01T00:00:00Z"},
                        "interfaces": [],
                    }));
                }
                return (status, text.into());
            }
            let id = format!("new-{host}");
            lock(&hosts).insert(id.clone(), host.clone());
            let mut rec = body.clone();
            rec["id"] = json!(id);
            rec["host"] = json!(host);
            (201, rec.to_string())
        } else if r.method == "PATCH" {
            let id = p
                .trim_start_matches("/api/ipam/ip-addresses/")
                .trim_end_matches('/');
            let known = lock(&hosts).get(id).cloned();
            let host = known.or_else(|| {
                expected_records()
                    .into_iter()
                    .find(|x| x.id == id)
                    .map(|x| x.addr.to_string())
            });
            match host {
                Some(h) => (
                    200,
                    json!({"id": id, "host": h, "type": "dhcp", "custom_fields": body["custom_fields"]})
                        .to_string(),
                ),
                None => (404, r#"{"detail":"No IPAddress matches the given query."}"#.into()),
            }
        } else if r.method == "GET" && p.starts_with("/api/ipam/ip-addresses/") {
            (200, IP_STATIC.into())
        } else {
            (404, "{}".into())
        }
    }
}

pub(super) fn backend(url: &str, allow_unknown: bool) -> Nautobot {
    let mut c = conf(url);
    c.allow_unknown_devices = allow_unknown;
    Nautobot::new(&c, TOKEN.into(), 3600).unwrap()
}

pub(super) const NOW: u64 = 1_800_000_000;

pub(super) fn job(kind: JobKind, m: &str, boot: BootClient, known: Option<Known>) -> Job {
    Job {
        id: 1,
        kind,
        client: super::super::Client {
            mac: mac(m),
            hostname: Some("bmc-x".into()),
            origin: ip(10),
            boot,
        },
        known,
        now: at(NOW),
    }
}

pub(super) fn offer(m: &str) -> Job {
    job(JobKind::Offer, m, BootClient::None, None)
}

fn lease_of(r: (Result<Outcome, BackendError>, u32)) -> (Lease, u32) {
    match r {
        (Ok(Outcome::Lease(l)), n) => (l, n),
        other => panic!("no lease: {other:?}"),
    }
}

pub(super) fn known(l: &Lease) -> Option<Known> {
    Some(Known {
        addr: l.addr,
        kind: l.kind,
        record: l.record.clone(),
        lease: l.clone(),
    })
}

#[test]
fn dora_renew_release_call_counts() {
    let fake = Fake::new(nautobot_like(|_| (201, "")));
    let nb = backend(&fake.url, true);
    assert_eq!(nb.prepare().unwrap(), 1);
    let seen = fake.seen();
    assert_eq!(seen[0].auth, format!("Token {TOKEN}"));
    let mut s = nb.session();
    let m = "02:00:00:00:00:99";

    // A new client: prefix, read, create.
    let (l, calls) = lease_of(s.run(&job(JobKind::Offer, m, BootClient::Bios, None)));
    assert_eq!(calls, 3);
    assert_eq!(l.addr, ip(8), "lowest free of 192.0.2.0/26 after .5 .6 .7");
    assert_eq!(l.network, "192.0.2.0/26".parse::<Ipv4Net>().unwrap());
    assert_eq!(l.gateway, Some(ip(1)));
    assert_eq!(l.dns, vec![ip(53), Ipv4Addr::new(198, 51, 100, 53)]);
    assert_eq!(l.boot.as_ref().unwrap().file, "pxelinux.0");
    assert_eq!(
        (l.kind, l.record.as_deref()),
        (LeaseKind::Dynamic, Some("new-192.0.2.8"))
    );
    assert_eq!(l.lease_secs, 3600);
    let seen = fake.seen();
    let paths: Vec<_> = seen
        .iter()
        .map(|r| (r.method.as_str(), r.path.as_str()))
        .collect();
    assert_eq!(
        paths,
        vec![
            (
                "GET",
                "/api/ipam/prefixes/?contains=192.0.2.10&role=Server%20BMC&limit=1000"
            ),
            ("POST", "/api/graphql/"),
            ("POST", "/api/ipam/ip-addresses/"),
        ]
    );
    let created: Value = serde_json::from_str(&seen[2].body).unwrap();
    assert_eq!(
        created,
        json!({
            "address": "192.0.2.8/26",
            "namespace": "dfef6c78-ee4d-4f9f-bf46-b65ee7653fa7",
            "status": "Active",
            "type": "dhcp",
            "dns_name": "bmc-x",
            "custom_fields": {
                "pydhcp_mac": m,
                "pydhcp_expire": utc_z(at(NOW + 3600 + OFFER_HOLD_SECS)),
                "pydhcp_hostname": "bmc-x",
            },
        })
    );
    assert_eq!(l.recorded_until, Some(at(NOW + 3600 + OFFER_HOLD_SECS)));

    // Its REQUEST within the hold, for the lease offered: the OFFER's
    // write covers it, no call.
    let same = JobKind::Confirm {
        addr: ip(8),
        lease_secs: 3600,
    };
    let mut req = job(same, m, BootClient::Bios, known(&l));
    req.now = at(NOW + OFFER_HOLD_SECS);
    let (l1, calls) = lease_of(s.run(&req));
    assert_eq!((l1.addr, l1.lease_secs, calls), (ip(8), 3600, 0));
    assert!(fake.seen().is_empty());

    // A REQUEST for a longer lease than the write covers: one PATCH.
    let confirm = JobKind::Confirm {
        addr: ip(8),
        lease_secs: 7200,
    };
    let (l2, calls) = lease_of(s.run(&job(confirm, m, BootClient::Bios, known(&l))));
    assert_eq!(calls, 1);
    assert_eq!(
        (l2.addr, l2.lease_secs, l2.kind),
        (ip(8), 7200, LeaseKind::Dynamic)
    );
    let seen = fake.seen();
    assert_eq!(seen[0].method, "PATCH");
    assert_eq!(seen[0].path, "/api/ipam/ip-addresses/new-192.0.2.8/");
    let patch: Value = serde_json::from_str(&seen[0].body).unwrap();
    assert_eq!(patch["custom_fields"]["pydhcp_mac"], json!(m));
    assert_eq!(
        patch["custom_fields"]["pydhcp_expire"],
        json!(utc_z(at(NOW + 7200)))
    );

    // RELEASE with what the daemon knows: one PATCH, expiry now.
    let rel = JobKind::Release { addr: ip(8) };
    assert_eq!(
        s.run(&job(rel, m, BootClient::None, known(&l))),
        (Ok(Outcome::Done), 1)
    );
    let patch: Value = serde_json::from_str(&fake.seen()[0].body).unwrap();
    assert_eq!(
        patch,
        json!({"custom_fields": {"pydhcp_expire": utc_z(at(NOW))}})
    );

    // Warm prefix cache: read + create.
    let (_, calls) = lease_of(s.run(&offer("02:00:00:00:00:98")));
    assert_eq!(calls, 2);
    fake.seen();

    // Static lease: read only, never written.
    let (l, calls) = lease_of(s.run(&offer("14:18:77:aa:bb:01")));
    assert_eq!((l.addr, l.kind, calls), (ip(10), LeaseKind::Static, 1));
    assert_eq!(l.boot, None);
    // Its renewal: one GET of the record.
    let confirm = JobKind::Confirm {
        addr: ip(10),
        lease_secs: 3600,
    };
    let (l2, calls) = lease_of(s.run(&job(
        confirm.clone(),
        "14:18:77:aa:bb:01",
        BootClient::None,
        known(&l),
    )));
    assert_eq!((l2.addr, l2.kind, calls), (ip(10), LeaseKind::Static, 1));
    // Without what the daemon knows: read, no write.
    let (l3, calls) = lease_of(s.run(&job(confirm, "14:18:77:aa:bb:01", BootClient::None, None)));
    assert_eq!((l3.addr, l3.kind, calls), (ip(10), LeaseKind::Static, 1));
    assert!(fake
        .seen()
        .iter()
        .all(|r| r.method != "PATCH" && !(r.method == "POST" && r.path.contains("ip-addresses"))));

    // Permanent lease: read only.
    let (l, calls) = lease_of(s.run(&offer("02:00:00:00:00:07")));
    assert_eq!((l.addr, l.kind, calls), (ip(7), LeaseKind::Permanent, 1));
    // Own lease valid beyond the hold: read only.
    let (l, calls) = lease_of(s.run(&offer("02:00:00:00:00:05")));
    assert_eq!((l.addr, l.kind, calls), (ip(5), LeaseKind::Dynamic, 1));
    // Own lease expired: offered from the read alone; nothing is written
    // to the client's own record before its REQUEST.
    let (l, calls) = lease_of(s.run(&offer("02:00:00:00:00:06")));
    assert_eq!((l.addr, calls), (ip(6), 1));
    let seen = fake.seen();
    assert_ne!(seen.last().unwrap().method, "PATCH");

    // Someone else's live lease is not confirmed.
    let confirm = JobKind::Confirm {
        addr: ip(5),
        lease_secs: 3600,
    };
    let r = s.run(&job(confirm, m, BootClient::None, None));
    assert_eq!(r, (Ok(Outcome::NoLease(NoLease::NotYours)), 1));

    // INFORM: the device read only.
    let inform = JobKind::Inform { addr: ip(40) };
    let (l, calls) = lease_of(s.run(&job(inform, "14:18:77:aa:bb:01", BootClient::Bios, None)));
    assert_eq!((l.addr, calls, l.boot.is_none()), (ip(40), 1, true));
    assert_eq!(l.dns.len(), 2);
    fake.seen();

    // DECLINE without what the daemon knows: read + PATCH clearing the MAC.
    let dec = JobKind::Decline { addr: ip(6) };
    assert_eq!(
        s.run(&job(dec, "02:00:00:00:00:06", BootClient::None, None)),
        (Ok(Outcome::Done), 2)
    );
    let patch: Value = serde_json::from_str(&fake.seen()[1].body).unwrap();
    assert_eq!(patch["custom_fields"]["pydhcp_mac"], Value::Null);

    // A remembered record that is gone: decided from a fresh read.
    let m5 = "02:00:00:00:00:05";
    let (l5, _) = lease_of(s.run(&job(JobKind::Offer, m5, BootClient::None, None)));
    let mut stale = known(&l5).unwrap();
    stale.record = Some("gone".into());
    let confirm = JobKind::Confirm {
        addr: ip(5),
        lease_secs: 60,
    };
    let (l, calls) = lease_of(s.run(&job(confirm, m5, BootClient::None, Some(stale))));
    assert_eq!((l.addr, l.record, calls), (ip(5), l5.record, 3));
    assert_eq!(
        patch["custom_fields"]["pydhcp_expire"],
        json!(utc_z(at(NOW + DECLINE_HOLD_SECS)))
    );
}

#[test]
fn lost_races_move_on() {
    let fake = Fake::new(nautobot_like(|n| match n {
        1 => (500, DUP_500_INTEGRITY),
        2 => (400, DUP_400),
        3 => (500, DUP_500_VALIDATION),
        _ => (201, ""),
    }));
    let nb = backend(&fake.url, true);
    nb.prepare().unwrap();
    fake.seen();
    let mut s = nb.session();
    let (l, calls) = lease_of(s.run(&offer("02:00:00:00:00:99")));
    // prefix, read, 3 lost creates, a read after the third, the create.
    assert_eq!(calls, 7);
    let tried: Vec<String> = fake
        .seen()
        .iter()
        .filter(|r| r.path == "/api/ipam/ip-addresses/")
        .map(|r| {
            serde_json::from_str::<Value>(&r.body).unwrap()["address"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(
        tried,
        [
            "192.0.2.8/26",
            "192.0.2.9/26",
            "192.0.2.11/26",
            "192.0.2.12/26"
        ]
    );
    assert_eq!(l.addr, ip(12));

    // Losing every time ends in an error, not in a NAK.
    let fake = Fake::new(nautobot_like(|_| (400, DUP_400)));
    let nb = backend(&fake.url, true);
    nb.prepare().unwrap();
    let mut s = nb.session();
    let (r, calls) = s.run(&offer("02:00:00:00:00:99"));
    assert!(matches!(r, Err(BackendError::BadAnswer(_))), "{r:?}");
    assert_eq!(
        calls,
        1 + 1 + MAX_LOST_RACES + (MAX_LOST_RACES - 1).div_ceil(REREAD_EVERY)
    );
}

#[test]
fn race_lost_to_another_server_for_the_same_client() {
    let m = "02:00:00:00:00:99";
    let fake = Fake::new(won_by(|_| (500, DUP_500_INTEGRITY), m));
    let nb = backend(&fake.url, true);
    nb.prepare().unwrap();
    fake.seen();
    let (l, calls) = lease_of(nb.session().run(&offer(m)));
    // prefix, read, lost create, read: the winner's record is the client's.
    assert_eq!(calls, 4);
    assert_eq!(
        (l.addr, l.record.as_deref()),
        (ip(8), Some("other-192.0.2.8"))
    );
    let creates = fake
        .seen()
        .iter()
        .filter(|r| r.method == "POST" && r.path == "/api/ipam/ip-addresses/")
        .count();
    assert_eq!(creates, 1);
}

#[test]
fn graphql_refused_falls_back_to_rest() {
    let inner = nautobot_like(|_| (201, ""));
    let fake = Fake::new(move |r: &Seen| {
        if r.path.starts_with("/api/graphql/") {
            (400, GQL_ERROR.into())
        } else {
            inner(r)
        }
    });
    let nb = backend(&fake.url, false);
    nb.prepare().unwrap();
    fake.seen();
    let mut s = nb.session();
    let (l, calls) = lease_of(s.run(&job(
        JobKind::Offer,
        "02:00:00:00:00:99",
        BootClient::Uefi,
        None,
    )));
    assert_eq!((l.addr, calls), (ip(8), 5));
    assert_eq!(l.boot.unwrap().file, "grubx64.efi");
    let paths: Vec<String> = fake.seen().into_iter().map(|r| r.path).collect();
    assert_eq!(
        paths[2],
        "/api/dcim/devices/?mac_address=02%3A00%3A00%3A00%3A00%3A99&include=config_context&limit=2"
    );
    assert_eq!(paths[3], "/api/ipam/ip-addresses/?prefix=192.0.2.0%2F26&namespace=dfef6c78-ee4d-4f9f-bf46-b65ee7653fa7&limit=1000&offset=0&exclude_m2m=false&depth=1");
    // From now on REST only, and the prefix from the cache.
    let (_, calls) = lease_of(s.run(&offer("02:00:00:00:00:98")));
    assert_eq!(calls, 3);
}

#[test]
fn rest_reads_follow_pages() {
    let all = v(IPS)["results"].clone();
    let inner = nautobot_like(|_| (201, ""));
    let fake = Fake::new(move |r: &Seen| {
        if r.method == "GET" && r.path.starts_with("/api/ipam/ip-addresses/?") {
            let offset: usize = r
                .path
                .split("offset=")
                .nth(1)
                .unwrap()
                .split('&')
                .next()
                .unwrap()
                .parse()
                .unwrap();
            let page: Vec<Value> = all
                .as_array()
                .unwrap()
                .iter()
                .skip(offset)
                .take(2)
                .cloned()
                .collect();
            // The link names the server as it sees itself: only its path
            // and query are followed, on the configured URL.
            let next = (offset + 2 < 4).then(|| {
                format!(
                    "https://nautobot.internal/api/ipam/ip-addresses/?depth=1&exclude_m2m=false&limit=2&offset={}&prefix=192.0.2.0%2F26",
                    offset + 2
                )
            });
            (
                200,
                json!({"count": 4, "next": next, "previous": null, "results": page}).to_string(),
            )
        } else {
            inner(r)
        }
    });
    let nb = backend(&fake.url, false).with_rest_reads();
    nb.prepare().unwrap();
    let mut s = nb.session();
    let (l, calls) = lease_of(s.run(&offer("14:18:77:aa:bb:01")));
    // prefix, device, two pages.
    assert_eq!((l.addr, l.kind, calls), (ip(10), LeaseKind::Static, 4));
    let paths: Vec<String> = fake.seen().into_iter().map(|r| r.path).collect();
    assert_eq!(
        paths.last().unwrap(),
        "/api/ipam/ip-addresses/?depth=1&exclude_m2m=false&limit=2&offset=2&prefix=192.0.2.0%2F26"
    );
}

#[test]
fn unknown_devices() {
    let inner = nautobot_like(|_| (201, ""));
    let h = move |r: &Seen| {
        if r.path.starts_with("/api/graphql/") {
            (
                200,
                r#"{"data":{"devices":[],"ip_addresses":[]}}"#.to_owned(),
            )
        } else {
            inner(r)
        }
    };
    let fake = Fake::new(h);
    let nb = backend(&fake.url, false);
    nb.prepare().unwrap();
    let mut s = nb.session();
    let m = "02:00:00:00:00:99";
    let r = s.run(&offer(m));
    assert_eq!(r, (Ok(Outcome::NoLease(NoLease::UnknownDevice)), 2));
    let confirm = JobKind::Confirm {
        addr: ip(9),
        lease_secs: 60,
    };
    let r = s.run(&job(confirm, m, BootClient::None, None));
    assert_eq!(r, (Ok(Outcome::NoLease(NoLease::UnknownDevice)), 1));
    let nb = backend(&fake.url, true);
    nb.prepare().unwrap();
    let (l, calls) = lease_of(nb.session().run(&offer(m)));
    assert_eq!((l.addr, l.dns.clone(), calls), (ip(5), vec![], 3));
}

#[test]
fn prepare_creates_missing_fields_with_key() {
    let h = |r: &Seen| {
        if r.method == "GET" {
            let mut cf = v(CUSTOM_FIELDS_JSON);
            cf["results"]
                .as_array_mut()
                .unwrap()
                .retain(|f| f["key"] == "pydhcp_mac");
            (200, cf.to_string())
        } else {
            (201, r#"{"id":"x"}"#.to_owned())
        }
    };
    let fake = Fake::new(h);
    assert_eq!(backend(&fake.url, false).prepare(), Ok(3));
    let posts: Vec<Value> = fake
        .seen()
        .iter()
        .filter(|r| r.method == "POST")
        .map(|r| serde_json::from_str(&r.body).unwrap())
        .collect();
    assert_eq!(posts.len(), 2);
    assert_eq!(posts[0]["key"], "pydhcp_expire");
    assert_eq!(posts[0]["label"], "pydhcp_expire");
    assert_eq!(posts[0]["type"], "text");
    assert_eq!(posts[0]["content_types"], json!(["ipam.ipaddress"]));
    assert_eq!(posts[1]["key"], "pydhcp_hostname");

    // A key that exists for other content types only.
    let h = |r: &Seen| {
        if r.method == "GET" {
            (200, r#"{"count":0,"results":[]}"#.to_owned())
        } else {
            (
                400,
                r#"{"key":["custom field with this key already exists."]}"#.to_owned(),
            )
        }
    };
    let fake = Fake::new(h);
    let e = backend(&fake.url, false).prepare().unwrap_err();
    assert!(
        matches!(e, BackendError::BadAnswer(ref m) if m.contains("pydhcp_mac")),
        "{e:?}"
    );

    // Not prepared at start: the first job does it.
    let fake = Fake::new(nautobot_like(|_| (201, "")));
    let nb = backend(&fake.url, true);
    let (_, calls) = lease_of(nb.session().run(&offer("02:00:00:00:00:99")));
    assert_eq!(calls, 4);
    let (_, calls) = lease_of(nb.session().run(&offer("02:00:00:00:00:98")));
    assert_eq!(calls, 2);
}

#[test]
fn errors_are_backend_errors() {
    let fake = Fake::new(|_: &Seen| (403, BAD_TOKEN.to_owned()));
    let nb = backend(&fake.url, true);
    assert_eq!(nb.prepare(), Err(BackendError::Auth(403)));
    let r = nb.session().run(&offer("02:00:00:00:00:99"));
    assert_eq!(r, (Err(BackendError::Auth(403)), 1));
    let fake = Fake::new(|_: &Seen| (403, NO_TOKEN.to_owned()));
    let e = backend(&fake.url, true).prepare().unwrap_err();
    assert!(!e.to_string().contains(TOKEN));

    let fake = Fake::new(|r: &Seen| {
        if r.path.starts_with("/api/extras/") {
            (200, CUSTOM_FIELDS_JSON.to_owned())
        } else {
            (502, "<html>Bad Gateway</html>".to_owned())
        }
    });
    let nb = backend(&fake.url, true);
    let r = nb.session().run(&offer("02:00:00:00:00:99"));
    assert!(
        matches!(r, (Err(BackendError::Http { status: 502, ref body }), 2) if body.contains("Bad Gateway")),
        "{r:?}"
    );

    let fake = Fake::new(|r: &Seen| {
        if r.path.starts_with("/api/extras/") {
            (200, CUSTOM_FIELDS_JSON.to_owned())
        } else {
            (200, "<html>login</html>".to_owned())
        }
    });
    let r = backend(&fake.url, true)
        .session()
        .run(&offer("02:00:00:00:00:99"));
    assert!(matches!(r, (Err(BackendError::BadAnswer(_)), 2)), "{r:?}");

    // Unknown role names are asked for one by one.
    let fake = Fake::new(|r: &Seen| {
        if r.path.contains("role=Nope") {
            (400, PREFIXES_BAD_ROLE.to_owned())
        } else if r.path.starts_with("/api/ipam/prefixes/") {
            (200, PREFIXES.to_owned())
        } else {
            (200, CUSTOM_FIELDS_JSON.to_owned())
        }
    });
    let mut c = conf(&fake.url);
    c.prefix_roles = vec!["Server BMC".into(), "Nope".into()];
    let nb = Nautobot::new(&c, TOKEN.into(), 60).unwrap();
    let mut s = nb.new_session();
    let p = s.prefix(ip(10)).unwrap().unwrap();
    assert_eq!((p.network.prefix_len(), s.client.calls()), (26, 3));
    assert_eq!(s.prefix(ip(10)).unwrap().unwrap(), p);
    assert_eq!(s.client.calls(), 3);

    // Nothing listens.
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    drop(l);
    let r = backend(&url, true).prepare();
    assert!(matches!(r, Err(BackendError::Connect(_))), "{r:?}");
}

#[test]
fn slow_server_times_out() {
    let fake = Fake::new(|_: &Seen| {
        thread::sleep(Duration::from_secs(3));
        (200, "{}".to_owned())
    });
    let mut c = conf(&fake.url);
    c.timeout_secs = 1;
    let nb = Nautobot::new(&c, TOKEN.into(), 60).unwrap();
    let started = Instant::now();
    assert_eq!(nb.prepare(), Err(BackendError::Timeout));
    assert!(started.elapsed() < Duration::from_secs(3));
}
