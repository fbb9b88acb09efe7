use super::api::missing_fields_error;
use super::leases::{decline_body, lease_body, netbox_time};
use super::rules::Dyn;
use super::*;
use crate::backend::context::checks::sample_device;
use crate::backend::rest::time::parse_expire;
use crate::backend::test_util::{at, garbage, ip, mac};
use serde::de::DeserializeOwned;
use serde_json::json;

// The answers decoded and mapped as the session does.
type Parsed<T> = Result<T, serde_json::Error>;

fn page<T: DeserializeOwned>(v: &Value) -> Parsed<Vec<T>> {
    serde_json::from_value::<Page<T>>(v.clone()).map(|p| p.results)
}
fn parse_prefixes(v: &Value) -> Parsed<Vec<PrefixInfo>> {
    page(v).map(api::prefixes)
}
fn parse_interfaces(v: &Value, vm: bool) -> Parsed<Vec<Iface>> {
    page::<api::Interface>(v).map(|l| api::interfaces(&l, vm, PAGE))
}
fn parse_pool(v: &Value, network: Ipv4Net) -> Result<Vec<DhcpRecord>, BackendError> {
    api::pool(&page(v).unwrap(), network)
}
fn static_address(v: &Value, network: Ipv4Net) -> Parsed<Option<(u64, Ipv4Addr)>> {
    page::<api::IpAddress>(v).map(|l| api::static_address(&l, network))
}
fn first_address(v: &Value, network: Ipv4Net) -> Parsed<Option<Ipv4Addr>> {
    page::<api::IpAddress>(v).map(|l| api::first_address(&l, network))
}
fn missing_custom_fields(v: &Value) -> Parsed<Vec<&'static str>> {
    page::<api::CustomField>(v).map(|l| api::missing_custom_fields(&l))
}
fn merge_contexts(v: &Value) -> Parsed<Value> {
    page::<api::ConfigContext>(v).map(|l| api::merge_contexts(&l))
}
fn owner_from(v: &Value) -> Option<Owner> {
    serde_json::from_value::<api::ApiOwner>(v.clone())
        .ok()
        .map(api::ApiOwner::into_owner)
}
fn record_from(v: &Value) -> Option<DhcpRecord> {
    serde_json::from_value::<api::IpAddress>(v.clone())
        .ok()?
        .record()
}
fn iface_from(v: &Value, vm: bool) -> Option<Iface> {
    serde_json::from_value::<api::Interface>(v.clone())
        .ok()?
        .iface(vm)
}
fn reply(status: u16, body: &[u8]) -> Reply {
    Reply {
        status,
        body: body.to_vec(),
        etag: None,
        version: None,
    }
}

/// Answers of the Netbox test double (tests/netbox_server.py --dump) for
/// the 3.x (v3) and 4.x (v4) API generations.
fn fixture(generation: &str, name: &str) -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/netbox")
        .join(generation)
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    serde_json::from_str(&text).unwrap()
}

const GENERATIONS: [&str; 2] = ["v3", "v4"];

fn net(s: &str) -> Ipv4Net {
    s.parse().unwrap()
}
/// 2025-01-06, the double's clock.
const NOW: u64 = 1_736_164_800;

#[test]
fn prefixes_and_their_site_or_scope() {
    for g in GENERATIONS {
        let list = parse_prefixes(&fixture(g, "prefixes_contains.json")).unwrap();
        assert_eq!(list.len(), 2, "{g}");
        let p = most_specific(&list, ip(1)).unwrap();
        assert_eq!(
            (p.id, p.network, p.scope),
            (1, net("192.0.2.0/24"), Some(("site_id", 1))),
            "{g}"
        );
        let container = list.iter().find(|p| p.id == 2).unwrap();
        assert_eq!(container.scope, None, "{g}");
        assert_eq!(most_specific(&list, Ipv4Addr::new(10, 0, 0, 1)), None);
    }
    // 4.2+ scopes other than a site.
    let p = json!({"results": [{"id": 9, "prefix": "10.1.0.0/16", "scope_type": "dcim.location", "scope_id": 4, "scope": {"id": 4}}]});
    assert_eq!(
        parse_prefixes(&p).unwrap()[0].scope,
        Some(("location_id", 4))
    );
    let p = json!({"results": [{"id": 9, "prefix": "10.1.0.0/16", "scope_type": "dcim.region", "scope": {"id": 2}}]});
    assert_eq!(parse_prefixes(&p).unwrap()[0].scope, Some(("region_id", 2)));
    // Two equal prefixes (VRFs): the lowest id, deterministically.
    let twins = vec![
        PrefixInfo {
            id: 7,
            network: net("192.0.2.0/24"),
            scope: None,
            gateway: None,
        },
        PrefixInfo {
            id: 3,
            network: net("192.0.2.0/24"),
            scope: None,
            gateway: None,
        },
    ];
    assert_eq!(most_specific(&twins, ip(9)).unwrap().id, 3);
}

#[test]
fn interfaces_of_both_generations() {
    for g in GENERATIONS {
        let list = parse_interfaces(&fixture(g, "interfaces_mac.json"), false).unwrap();
        assert_eq!(
            list,
            vec![Iface {
                id: 1,
                vm: false,
                owner: 1,
                name: "bmc0".into(),
                is_lag: false,
                lag: None,
                macs: vec![mac("14:18:77:aa:bb:01")],
                ip_count: Some(2),
            }],
            "{g}"
        );
        let lag = parse_interfaces(&fixture(g, "interfaces_lag_shared.json"), false).unwrap();
        assert_eq!(lag.len(), 2);
        assert!(lag[0].is_lag && lag[0].lag.is_none(), "{g}");
        assert_eq!((lag[1].id, lag[1].lag), (6, Some(5)), "{g}");
        let vms = parse_interfaces(&fixture(g, "vminterfaces_mac.json"), true).unwrap();
        assert_eq!(
            (vms[0].id, vms[0].vm, vms[0].owner, vms[0].macs.clone()),
            (1, true, 1, vec![mac("52:54:00:00:00:01")]),
            "{g}"
        );
    }
    // 4.2+: every MAC of the interface, the primary first.
    let v = json!({"id": 3, "device": {"id": 1}, "name": "x", "type": {"value": "1000base-t"},
        "mac_address": "02:00:00:00:00:02",
        "primary_mac_address": {"id": 8, "mac_address": "02:00:00:00:00:02"},
        "mac_addresses": [{"mac_address": "02:00:00:00:00:01"}, {"mac_address": "02:00:00:00:00:02"}]});
    assert_eq!(
        iface_from(&v, false).unwrap().macs,
        vec![mac("02:00:00:00:00:02"), mac("02:00:00:00:00:01")]
    );
}

fn iface(id: u64, lag: Option<u64>, is_lag: bool, macs: &[&str]) -> Iface {
    Iface {
        id,
        vm: false,
        owner: 2,
        name: format!("if{id}"),
        is_lag,
        lag,
        macs: macs.iter().map(|m| mac(m)).collect(),
        ip_count: None,
    }
}

#[test]
fn lag_rule() {
    let m = "3c:fd:fe:00:00:01";
    // The LAG has the MAC: the LAG, not its member.
    let both = [iface(6, Some(5), false, &[m]), iface(5, None, true, &[m])];
    assert_eq!(pick_interface(&both, mac(m)), Pick::Use(both[1].clone()));
    // A plain interface wins over LAG members.
    let mixed = [iface(6, Some(5), false, &[m]), iface(9, None, false, &[m])];
    assert_eq!(pick_interface(&mixed, mac(m)), Pick::Use(mixed[1].clone()));
    // Of plain interfaces, the lowest id.
    let two = [iface(9, None, false, &[m]), iface(4, None, false, &[m])];
    assert_eq!(pick_interface(&two, mac(m)), Pick::Use(two[1].clone()));
    // Only members: the device's interfaces decide.
    let members = [
        iface(7, Some(5), false, &[m]),
        iface(6, Some(5), false, &[m]),
    ];
    assert_eq!(
        pick_interface(&members, mac(m)),
        Pick::Members { lag: 5, device: 2 }
    );
    // An answer that ignored the filter hands out nothing.
    assert_eq!(
        pick_interface(&[iface(1, None, false, &["02:00:00:00:00:09"])], mac(m)),
        Pick::None
    );
    assert_eq!(pick_interface(&[], mac(m)), Pick::None);

    // The LAG without a MAC answers for its lowest member's MAC only.
    for g in GENERATIONS {
        let all = parse_interfaces(&fixture(g, "interfaces_device.json"), false).unwrap();
        let eno1 = mac("3c:fd:fe:00:00:11");
        let eno2 = mac("3c:fd:fe:00:00:12");
        let lookup: Vec<Iface> = all
            .iter()
            .filter(|i| i.macs.contains(&eno1))
            .cloned()
            .collect();
        assert_eq!(
            pick_interface(&lookup, eno1),
            Pick::Members { lag: 8, device: 3 }
        );
        match pick_lag_owner(&all, 8, eno1) {
            Pick::Use(l) => assert_eq!((l.id, l.is_lag, l.ip_count), (8, true, Some(1))),
            other => panic!("{g}: {other:?}"),
        }
        assert_eq!(pick_lag_owner(&all, 8, eno2), Pick::Ignore, "{g}");
        assert_eq!(pick_lag_owner(&all, 99, eno1), Pick::Ignore, "{g}");
    }
    // The LAG with a MAC of its own: a member's other MAC is ignored.
    let dev = [
        iface(5, None, true, &["3c:fd:fe:00:00:01"]),
        iface(7, Some(5), false, &["3c:fd:fe:00:00:02"]),
    ];
    assert_eq!(
        pick_lag_owner(&dev, 5, mac("3c:fd:fe:00:00:02")),
        Pick::Ignore
    );
}

fn pool(g: &str) -> Vec<DhcpRecord> {
    let recs = parse_pool(&fixture(g, "ip_addresses_pool.json"), net("192.0.2.0/24")).unwrap();
    assert_eq!(recs.len(), 6, "{g}");
    recs
}

#[test]
fn pool_of_both_generations() {
    let v3 = pool("v3");
    assert_eq!(v3, pool("v4"));
    let r = |n: u8| v3.iter().find(|r| r.addr == ip(n)).unwrap().clone();
    assert_eq!(
        r(20),
        DhcpRecord {
            id: 20,
            addr: ip(20),
            dhcp: true,
            mac: Some(mac("02:00:00:00:00:20")),
            allocated: true,
            expire: Some(at(4_070_908_800)),
            last_updated: Some("2025-01-06T12:00:00.123493Z".into()),
        }
    );
    assert!(!r(21).allocated && r(21).expire.is_none());
    // An empty pydhcp_mac is unallocated.
    assert!(!r(24).allocated);
    assert_eq!(r(22).expire, Some(at(1_577_836_800)));
    // Unallocated with an expiry ahead: held (a DECLINE).
    assert!(!r(25).allocated && !r(25).free(at(NOW)));
}

#[test]
fn allocation_order() {
    let recs = pool("v4");
    let now = at(NOW);
    let new = mac("02:00:00:00:00:99");
    let pick = |skip: &[u8]| {
        let skip: Vec<Ipv4Addr> = skip.iter().map(|n| ip(*n)).collect();
        match choose(&recs, new, now, &skip) {
            Dyn::Free(r) => format!("free {}", r.addr),
            Dyn::Expired(r) => format!("expired {}", r.addr),
            Dyn::Own(r) => format!("own {}", r.addr),
            Dyn::Exhausted => "exhausted".into(),
        }
    };
    // Unallocated lowest first, then expired longest ago; never a live
    // lease or a held address.
    assert_eq!(pick(&[]), "free 192.0.2.21");
    assert_eq!(pick(&[21]), "free 192.0.2.24");
    assert_eq!(pick(&[21, 24]), "expired 192.0.2.22");
    assert_eq!(pick(&[21, 24, 22]), "expired 192.0.2.23");
    assert_eq!(pick(&[21, 24, 22, 23]), "exhausted");
    // The client's own address first, live or expired.
    for n in [20, 22, 23] {
        let own = mac(&format!("02:00:00:00:00:{n}"));
        assert!(
            matches!(choose(&recs, own, now, &[]), Dyn::Own(r) if r.addr == ip(n)),
            "{n}"
        );
    }
    // Of several own addresses, the newest expiry; none counts as newest.
    let mut two = recs.clone();
    for r in two
        .iter_mut()
        .filter(|r| r.addr == ip(21) || r.addr == ip(24))
    {
        r.mac = Some(new);
        r.allocated = true;
        r.expire = Some(at(NOW - 10));
    }
    two.iter_mut().find(|r| r.addr == ip(24)).unwrap().expire = Some(at(NOW - 5));
    assert!(matches!(choose(&two, new, now, &[]), Dyn::Own(r) if r.addr == ip(24)));
    two.iter_mut().find(|r| r.addr == ip(21)).unwrap().expire = None;
    assert!(matches!(choose(&two, new, now, &[]), Dyn::Own(r) if r.addr == ip(21)));
    // Not status DHCP (an answer after an edit): never.
    let mut edited = recs.clone();
    for r in edited.iter_mut() {
        r.dhcp = false;
    }
    assert_eq!(choose(&edited, new, now, &[]), Dyn::Exhausted);

    // REQUEST for a given address.
    let c = |m: &str, n: u8| confirm(&recs, mac(m), ip(n), now);
    assert!(matches!(c("02:00:00:00:00:20", 20), Some(Dyn::Own(_))));
    assert_eq!(c("02:00:00:00:00:99", 20), None);
    assert!(matches!(c("02:00:00:00:00:99", 21), Some(Dyn::Free(_))));
    assert!(matches!(c("02:00:00:00:00:99", 22), Some(Dyn::Expired(_))));
    assert_eq!(c("02:00:00:00:00:99", 25), None);
    assert_eq!(c("02:00:00:00:00:99", 30), None);
    // A lease with a MAC and no expiry is its client's for good.
    let mut forever = recs.clone();
    forever
        .iter_mut()
        .find(|r| r.addr == ip(22))
        .unwrap()
        .expire = None;
    assert_eq!(confirm(&forever, new, ip(22), now), None);
}

#[test]
fn static_gateway_and_missing_fields() {
    for g in GENERATIONS {
        let v = fixture(g, "ip_addresses_static.json");
        assert_eq!(
            static_address(&v, net("192.0.2.0/24")).unwrap(),
            Some((10, ip(10)))
        );
        assert_eq!(
            static_address(&v, net("198.51.100.0/24")).unwrap(),
            Some((12, Ipv4Addr::new(198, 51, 100, 12)))
        );
        assert_eq!(static_address(&v, net("203.0.113.0/24")).unwrap(), None);
        let gw = fixture(g, "ip_addresses_gateway.json");
        assert_eq!(
            first_address(&gw, net("192.0.2.0/24")).unwrap(),
            Some(ip(1))
        );
        // A DHCP address assigned to an interface is not a static lease.
        let mut dhcp = v.clone();
        for r in dhcp["results"].as_array_mut().unwrap() {
            r["status"] = json!({"value": "dhcp", "label": "DHCP"});
        }
        assert_eq!(static_address(&dhcp, net("192.0.2.0/24")).unwrap(), None);

        // Addresses without the custom fields: a clear error.
        let mut bare = fixture(g, "ip_addresses_pool.json");
        for r in bare["results"].as_array_mut().unwrap() {
            r["custom_fields"]
                .as_object_mut()
                .unwrap()
                .remove("pydhcp_hostname");
        }
        let e = parse_pool(&bare, net("192.0.2.0/24")).unwrap_err();
        assert!(
            e.to_string()
                .contains("custom field pydhcp_hostname is not defined"),
            "{e}"
        );
        // The custom field list, 3.x content_types or 4.x object_types.
        let cf = fixture(g, "custom_fields.json");
        assert!(missing_custom_fields(&cf).unwrap().is_empty(), "{g}");
        let mut two = cf.clone();
        two["results"]
            .as_array_mut()
            .unwrap()
            .retain(|f| f["name"] != "pydhcp_expire");
        assert_eq!(missing_custom_fields(&two).unwrap(), vec!["pydhcp_expire"]);
        let mut wrong = cf.clone();
        for f in wrong["results"].as_array_mut().unwrap() {
            for k in ["object_types", "content_types"] {
                if f.get(k).is_some() {
                    f[k] = json!(["dcim.device"]);
                }
            }
        }
        assert_eq!(
            missing_custom_fields(&wrong).unwrap(),
            CUSTOM_FIELDS.to_vec()
        );
    }
    let e = missing_fields_error(&["pydhcp_mac", "pydhcp_expire"]).to_string();
    assert!(
        e.contains(
            "custom fields pydhcp_mac, pydhcp_expire are not defined for IP addresses; create them"
        ),
        "{e}"
    );
}

#[test]
fn config_contexts_dns_and_boot() {
    for g in GENERATIONS {
        let dev = owner_from(&fixture(g, "device.json")).unwrap();
        assert_eq!(dev.name, "bmc-test-01");
        assert_eq!(
            dns_servers(&dev.config_context),
            vec![Ipv4Addr::new(198, 51, 100, 53)]
        );
        sample_device("netbox", &dev.name, &dev.custom_fields, &dev.config_context);
        assert!(boot_options(&dev, BootClient::Bios).is_some());

        let vm = owner_from(&fixture(g, "virtual_machine.json")).unwrap();
        assert_eq!(dns_servers(&vm.config_context), vec![ip(153)]);
        assert_eq!(boot_options(&vm, BootClient::Bios), None);

        // The site's contexts, merged by weight: the later DNS list wins,
        // the TFTP server of the lighter one stays.
        let site = merge_contexts(&fixture(g, "config_contexts_site.json")).unwrap();
        assert_eq!(dns_servers(&site), vec![ip(54), ip(55)]);
        assert_eq!(
            site["pydhcp_configuration"]["tftp_server"],
            json!("192.0.2.69")
        );
    }
    // Order by weight, then name, whatever the answer's order; inactive
    // contexts do not count.
    let list = json!({"results": [
        {"name": "b", "weight": 10, "data": {"pydhcp_configuration": {"dns_servers": ["192.0.2.2"]}}},
        {"name": "a", "weight": 10, "data": {"pydhcp_configuration": {"dns_servers": ["192.0.2.1"]}}},
        {"name": "z", "weight": 5, "data": {"pydhcp_configuration": {"dns_servers": ["192.0.2.9"]}}},
        {"name": "off", "weight": 99, "is_active": false, "data": {"pydhcp_configuration": {"dns_servers": ["192.0.2.7"]}}},
    ]});
    assert_eq!(dns_servers(&merge_contexts(&list).unwrap()), vec![ip(2)]);
    let s = json!({"pydhcp_configuration": {"dns_servers": "192.0.2.1, 192.0.2.2"}});
    assert_eq!(dns_servers(&s), vec![ip(1), ip(2)]);
}

#[test]
fn versions_tokens_and_bodies() {
    let v = |s: &str| ApiVersion::parse(s);
    let status3 = fixture("v3", "status.json");
    let status4 = fixture("v4", "status.json");
    let release = |s: &Value| {
        let st: api::Status = serde_json::from_value(s.clone()).unwrap();
        v(&st.version.unwrap()).unwrap()
    };
    assert!(!release(&status3).field_selection());
    assert!(release(&status4).field_selection() && release(&status4).conditional_writes());

    assert_eq!(auth_header("0123abcd"), "Token 0123abcd");
    assert_eq!(auth_header("nbt_key.secret"), "Bearer nbt_key.secret");

    assert_eq!(netbox_time(at(1_893_456_000)), "2030-01-01T00:00:00+00:00");
    assert_eq!(
        parse_expire(&netbox_time(at(1_893_456_000))),
        Some(at(1_893_456_000))
    );
    let m = mac("02:00:00:00:00:0a");
    assert_eq!(
        lease_body(m, at(1_893_456_000), None, false),
        json!({"custom_fields": {"pydhcp_mac": "02:00:00:00:00:0A", "pydhcp_expire": "2030-01-01T00:00:00+00:00"}})
    );
    assert_eq!(
        lease_body(m, at(1_893_456_000), None, true)["custom_fields"]["pydhcp_hostname"],
        Value::Null
    );
    assert_eq!(
        lease_body(m, at(1_893_456_000), Some("bmc-1"), false)["custom_fields"]["pydhcp_hostname"],
        json!("bmc-1")
    );
    assert_eq!(
        decline_body(at(1_893_452_400)),
        json!({"custom_fields": {"pydhcp_mac": null, "pydhcp_expire": "2030-01-01T00:00:00+00:00"}})
    );

    // Error answers of both generations.
    for g in GENERATIONS {
        let r = reply(
            400,
            fixture(g, "unknown_custom_field_400.json")
                .to_string()
                .as_bytes(),
        );
        assert!(
            matches!(api::explain(&r), Some(BackendError::BadAnswer(m)) if m.contains("pydhcp_mac")),
            "{g}"
        );
        let r = reply(
            400,
            fixture(g, "tag_unknown_400.json").to_string().as_bytes(),
        );
        assert_eq!(api::explain(&r), None);
        assert!(fixture(g, "invalid_token_403.json")["detail"].is_string());
        assert!(fixture(g, "not_found_404.json")["detail"].is_string());
        let one = record_from(&fixture(g, "ip_address.json")).unwrap();
        assert_eq!((one.id, one.addr, one.allocated), (21, ip(21), false));
    }
}

#[test]
fn undefined_custom_fields_in_either_form() {
    let missing = |body: &str| match api::explain(&reply(400, body.as_bytes())) {
        Some(BackendError::BadAnswer(m)) => m,
        other => panic!("{body}: {other:?}"),
    };
    for (body, says) in [
        // Up to 4.5: a list of messages.
        (
            r#"{"custom_fields": ["Unknown field name 'pydhcp_expire' in custom field data."]}"#,
            "custom field pydhcp_expire is not defined for IP addresses; create it",
        ),
        // 4.6: by field.
        (
            r#"{"custom_fields": {"pydhcp_expire": "Custom field 'pydhcp_expire' does not exist for this object type."}}"#,
            "custom field pydhcp_expire is not defined for IP addresses; create it",
        ),
        (
            r#"{"custom_fields": {"pydhcp_hostname": ["Custom field 'pydhcp_hostname' does not exist for this object type."], "pydhcp_mac": "Custom field 'pydhcp_mac' does not exist for this object type."}}"#,
            "custom fields pydhcp_hostname, pydhcp_mac are not defined",
        ),
    ] {
        let m = missing(body);
        assert!(m.starts_with(says), "{m}");
    }
    // Another field unknown: all of ours are named.
    let m = missing(
        r#"{"custom_fields": {"x": "Custom field 'x' does not exist for this object type."}}"#,
    );
    assert!(
        m.contains("pydhcp_mac, pydhcp_expire, pydhcp_hostname"),
        "{m}"
    );
    // Other complaints about custom fields, or other statuses, are plain.
    for body in [
        r#"{"custom_fields": {"pydhcp_expire": "Invalid value."}}"#,
        r#"{"custom_fields": ["Invalid data. Expected a dictionary."]}"#,
        r#"{"status": ["x"]}"#,
        "<html>",
    ] {
        assert_eq!(api::explain(&reply(400, body.as_bytes())), None, "{body}");
    }
    let body = br#"{"custom_fields": ["Unknown field name 'pydhcp_mac' in custom field data."]}"#;
    assert_eq!(api::explain(&reply(500, body)), None);
}

#[test]
fn garbage_never_panics() {
    // After the shapes of no use to anyone, this backend's own.
    let mut shapes = garbage();
    shapes.extend([
        json!({"results": [{"id": 1, "address": "192.0.2.1"}, {"id": -1, "address": "::1/64"}, {"id": 2, "address": 7}]}),
        json!({"results": [{"id": 3, "address": "192.0.2.3/24", "status": 5, "custom_fields": [1], "tags": "x"}]}),
        json!({"results": [{"id": 4, "device": {"id": "x"}, "type": [], "lag": 3, "mac_address": 5, "mac_addresses": "x", "primary_mac_address": [1]}]}),
        json!({"results": [{"id": 4, "device": {"id": 1}, "mac_addresses": [null, {"mac_address": "zz"}]}]}),
        json!({"results": [{"name": 1, "weight": "x", "data": [1]}, {"data": {"pydhcp_configuration": 5}}]}),
        json!({"count": -1, "results": []}),
        json!({"config_context": {"pydhcp_configuration": {"dns_servers": [1, null, "x"], "tftp_server": 5}}, "custom_fields": {"redeploy": "yes", "confirm_redeploy": 3}}),
    ]);
    for s in &shapes {
        let _ = parse_prefixes(s);
        let _ = parse_interfaces(s, false);
        let _ = parse_interfaces(s, true);
        if let Ok(list) = page::<api::IpAddress>(s) {
            let _ = api::pool(&list, net("192.0.2.0/24"));
        }
        let _ = static_address(s, net("192.0.2.0/24"));
        let _ = first_address(s, net("192.0.2.0/24"));
        let _ = missing_custom_fields(s);
        let _ = merge_contexts(s);
        let _ = record_from(s);
        let _ = iface_from(s, false);
        if let Some(o) = owner_from(s) {
            let _ = dns_servers(&o.config_context);
            let _ = boot_options(&o, BootClient::Bios);
        }
        let _ = dns_servers(s);
    }
    assert!(parse_prefixes(&json!([])).is_err());
    assert!(parse_interfaces(&shapes[7], false).unwrap().is_empty());
    let odd = parse_interfaces(&shapes[8], false).unwrap();
    assert!(odd[0].macs.is_empty());
    // Garbage in custom fields: an allocated address of nobody known.
    let r = record_from(
        &json!({"id": 5, "address": "192.0.2.5/24", "status": {"value": "dhcp"},
        "custom_fields": {"pydhcp_mac": "not a mac", "pydhcp_expire": "soon"}}),
    )
    .unwrap();
    assert!(r.dhcp && r.allocated && r.mac.is_none() && r.expire.is_none());
    for garbage in [&b"<html>"[..], b"", b"{", b"\xff\xfe"] {
        assert!(matches!(
            reply(200, garbage).page::<api::IpAddress>(),
            Err(BackendError::BadAnswer(_))
        ));
    }
}
