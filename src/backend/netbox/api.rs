//! The Netbox answers the backend reads, as typed structs covering the 3.x
//! and 4.x forms, and what they map to. Fields not named here are ignored;
//! nulls are taken where Netbox sends them, and a field of another shape
//! counts as absent.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::rules::{DhcpRecord, Iface, Owner, PrefixInfo, Scope};
use crate::backend::rest::{lenient, lenient_items, parse_mac, time, Choice, Id, Reply};
use crate::backend::{BackendError, CUSTOM_FIELDS};
use crate::core::mac::MacAddr;

/// Most MACs looked at on one interface.
const MAX_MACS: usize = 64;

/// `/api/status/`.
#[derive(Debug, Deserialize)]
pub(crate) struct Status {
    #[serde(default, rename = "netbox-version", deserialize_with = "lenient")]
    pub version: Option<String>,
}

/// `/api/extras/custom-fields/`: `content_types` (3.x) or `object_types`
/// (4.x).
#[derive(Debug, Deserialize)]
pub(crate) struct CustomField {
    #[serde(default, deserialize_with = "lenient")]
    name: Option<String>,
    #[serde(default, deserialize_with = "lenient_items")]
    object_types: Vec<String>,
    #[serde(default, deserialize_with = "lenient_items")]
    content_types: Vec<String>,
}

/// A nested object, of which only the id is used.
#[derive(Debug, Deserialize)]
struct Ref {
    id: Id,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RefOrId {
    Nested(Ref),
    Id(Id),
}

/// `/api/ipam/prefixes/`: `site` (3.x, 4.0, 4.1) or `scope_type`,
/// `scope_id` and `scope` (4.2+).
#[derive(Debug, Deserialize)]
pub(crate) struct Prefix {
    id: Id,
    prefix: String,
    #[serde(default, deserialize_with = "lenient")]
    site: Option<RefOrId>,
    #[serde(default, deserialize_with = "lenient")]
    scope_type: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    scope_id: Option<Id>,
    #[serde(default, deserialize_with = "lenient")]
    scope: Option<Ref>,
}

/// A MAC address object (4.2+), nested.
#[derive(Debug, Deserialize)]
struct MacObject {
    #[serde(default, deserialize_with = "lenient")]
    mac_address: Option<String>,
}

/// A device interface (`/api/dcim/interfaces/`) or VM interface
/// (`/api/virtualization/interfaces/`). 3.x has one `mac_address`; 4.2+ has
/// `mac_address` (the primary), `primary_mac_address` and `mac_addresses`.
#[derive(Debug, Deserialize)]
pub(crate) struct Interface {
    id: Id,
    #[serde(default, deserialize_with = "lenient")]
    device: Option<Ref>,
    #[serde(default, deserialize_with = "lenient")]
    virtual_machine: Option<Ref>,
    #[serde(default, deserialize_with = "lenient")]
    name: Option<String>,
    #[serde(default, rename = "type", deserialize_with = "lenient")]
    kind: Option<Choice>,
    #[serde(default, deserialize_with = "lenient")]
    lag: Option<Ref>,
    #[serde(default, deserialize_with = "lenient")]
    mac_address: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    primary_mac_address: Option<MacObject>,
    #[serde(default, deserialize_with = "lenient_items")]
    mac_addresses: Vec<MacObject>,
    #[serde(default, deserialize_with = "lenient")]
    count_ipaddresses: Option<u64>,
}

/// `/api/ipam/ip-addresses/`, whole or with `fields=`.
#[derive(Debug, Deserialize)]
pub(crate) struct IpAddress {
    id: Id,
    address: String,
    #[serde(default, deserialize_with = "lenient")]
    status: Option<Choice>,
    #[serde(default, deserialize_with = "lenient")]
    custom_fields: Option<Map<String, Value>>,
    /// RFC 3339 in the server's time zone.
    #[serde(default, deserialize_with = "lenient")]
    last_updated: Option<String>,
}

/// A device or virtual machine, with its rendered config context.
#[derive(Debug, Deserialize)]
pub(crate) struct ApiOwner {
    #[serde(default, deserialize_with = "lenient")]
    name: Option<String>,
    #[serde(default)]
    config_context: Value,
    #[serde(default)]
    custom_fields: Value,
}

/// `/api/extras/config-contexts/`.
#[derive(Debug, Deserialize)]
pub(crate) struct ConfigContext {
    #[serde(default, deserialize_with = "lenient")]
    name: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    weight: Option<i64>,
    #[serde(default, deserialize_with = "lenient")]
    is_active: Option<bool>,
    #[serde(default)]
    data: Value,
}

/// A 400 answer about custom field data.
#[derive(Debug, Deserialize)]
struct FieldErrors {
    custom_fields: CustomFieldErrors,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum CustomFieldErrors {
    /// Up to 4.5: `["Unknown field name 'pydhcp_mac' in custom field data."]`.
    List(Vec<String>),
    /// 4.6: `{"pydhcp_mac": "Custom field 'pydhcp_mac' does not exist for
    /// this object type."}`.
    ByField(BTreeMap<String, Messages>),
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Messages {
    One(String),
    Many(Vec<String>),
}

impl Messages {
    fn any(&self, f: impl Fn(&str) -> bool) -> bool {
        match self {
            Messages::One(m) => f(m),
            Messages::Many(list) => list.iter().any(|m| f(m)),
        }
    }
}

fn host_of(address: &str) -> Option<Ipv4Addr> {
    address.split('/').next()?.trim().parse().ok()
}

pub(crate) fn prefixes(list: Vec<Prefix>) -> Vec<PrefixInfo> {
    list.into_iter()
        .filter_map(|p| {
            let network: Ipv4Net = p.prefix.trim().parse().ok()?;
            Some(PrefixInfo {
                id: p.id.0,
                network: network.trunc(),
                scope: p.scope(),
                gateway: None,
            })
        })
        .collect()
}

impl Prefix {
    /// The config context filter for the prefix's site (3.x, 4.0, 4.1) or
    /// scope (4.2+).
    fn scope(&self) -> Option<Scope> {
        if let Some(site) = &self.site {
            let (RefOrId::Nested(Ref { id }) | RefOrId::Id(id)) = site;
            return Some(("site_id", id.0));
        }
        let filter = match self.scope_type.as_deref()? {
            "dcim.site" => "site_id",
            "dcim.location" => "location_id",
            "dcim.sitegroup" => "site_group_id",
            "dcim.region" => "region_id",
            _ => return None,
        };
        let id = self.scope_id.or(self.scope.as_ref().map(|s| s.id))?;
        Some((filter, id.0))
    }
}

impl Interface {
    /// The MACs, the primary (or only) one first.
    fn macs(&self) -> Vec<MacAddr> {
        let primary = self
            .primary_mac_address
            .as_ref()
            .and_then(|p| p.mac_address.as_deref());
        let others = self
            .mac_addresses
            .iter()
            .take(MAX_MACS)
            .filter_map(|m| m.mac_address.as_deref());
        let mut out: Vec<MacAddr> = Vec::new();
        for mac in self
            .mac_address
            .as_deref()
            .into_iter()
            .chain(primary)
            .chain(others)
            .filter_map(parse_mac)
        {
            if !out.contains(&mac) {
                out.push(mac);
            }
        }
        out
    }

    /// A device interface (`vm` false) or VM interface; None without its
    /// device or VM.
    pub(crate) fn iface(&self, vm: bool) -> Option<Iface> {
        let owner = if vm {
            &self.virtual_machine
        } else {
            &self.device
        };
        Some(Iface {
            id: self.id.0,
            vm,
            owner: owner.as_ref()?.id.0,
            name: self.name.clone().unwrap_or_default(),
            is_lag: self.kind.as_ref().is_some_and(|k| k.value() == "lag"),
            lag: self.lag.as_ref().map(|l| l.id.0),
            macs: self.macs(),
            ip_count: self.count_ipaddresses,
        })
    }
}

/// The interfaces of a list (at most `max`).
pub(crate) fn interfaces(list: &[Interface], vm: bool, max: usize) -> Vec<Iface> {
    list.iter().take(max).filter_map(|i| i.iface(vm)).collect()
}

impl IpAddress {
    fn status(&self) -> Option<&str> {
        self.status.as_ref().map(Choice::value)
    }

    /// Custom fields of [`CUSTOM_FIELDS`] the address does not carry: they
    /// are not defined (Netbox lists every defined one, null when unset).
    pub(crate) fn missing_fields(&self) -> Vec<&'static str> {
        CUSTOM_FIELDS
            .into_iter()
            .filter(|k| {
                self.custom_fields
                    .as_ref()
                    .is_none_or(|m| !m.contains_key(*k))
            })
            .collect()
    }

    /// As a pool record; None for what is not an IPv4 address.
    pub(crate) fn record(&self) -> Option<DhcpRecord> {
        let text = |k: &str| {
            self.custom_fields
                .as_ref()?
                .get(k)?
                .as_str()
                .map(str::trim)
                .filter(|s| !s.is_empty())
        };
        let mac_text = text("pydhcp_mac");
        Some(DhcpRecord {
            id: self.id.0,
            addr: host_of(&self.address)?,
            dhcp: self
                .status()
                .is_some_and(|s| s.eq_ignore_ascii_case("dhcp")),
            mac: mac_text.and_then(parse_mac),
            allocated: mac_text.is_some(),
            expire: text("pydhcp_expire").and_then(time::parse_expire),
            last_updated: self.last_updated.clone(),
        })
    }
}

/// The DHCP records of a pool page inside `network`. An address without
/// the custom fields means they are not defined.
pub(crate) fn pool(list: &[IpAddress], network: Ipv4Net) -> Result<Vec<DhcpRecord>, BackendError> {
    if let Some(first) = list.first() {
        let missing = first.missing_fields();
        if !missing.is_empty() {
            return Err(missing_fields_error(&missing));
        }
    }
    Ok(list
        .iter()
        .filter_map(IpAddress::record)
        .filter(|r| r.dhcp && network.contains(&r.addr))
        .collect())
}

/// The lowest non-DHCP address of the list inside `network`: a static lease.
pub(crate) fn static_address(list: &[IpAddress], network: Ipv4Net) -> Option<(u64, Ipv4Addr)> {
    list.iter()
        .filter(|ip| ip.status().is_some_and(|s| !s.eq_ignore_ascii_case("dhcp")))
        .filter_map(|ip| Some((ip.id.0, host_of(&ip.address)?)))
        .filter(|(_, a)| network.contains(a))
        .min_by_key(|(_, a)| *a)
}

/// The lowest address of the list inside `network` (the gateway lookup).
pub(crate) fn first_address(list: &[IpAddress], network: Ipv4Net) -> Option<Ipv4Addr> {
    list.iter()
        .filter_map(|ip| host_of(&ip.address))
        .filter(|a| network.contains(a) && *a != network.network() && *a != network.broadcast())
        .min()
}

/// Custom fields of [`CUSTOM_FIELDS`] missing from a custom field list, or
/// there but not for IP addresses.
pub(crate) fn missing_custom_fields(list: &[CustomField]) -> Vec<&'static str> {
    CUSTOM_FIELDS
        .into_iter()
        .filter(|name| {
            !list.iter().any(|cf| {
                cf.name.as_deref() == Some(name)
                    && cf
                        .object_types
                        .iter()
                        .chain(&cf.content_types)
                        .any(|t| t == "ipam.ipaddress")
            })
        })
        .collect()
}

pub(crate) fn missing_fields_error(missing: &[&str]) -> BackendError {
    let (what, it) = match missing {
        [one] => (format!("custom field {one} is"), "it"),
        _ => (format!("custom fields {} are", missing.join(", ")), "them"),
    };
    BackendError::BadAnswer(format!(
        "{what} not defined for IP addresses; create {it} in Netbox (type Text, object type IPAM > IP Address); static leases work without {it}"
    ))
}

/// The custom fields a 400 answer to a write says are not defined, in
/// either form; None when it says nothing of the kind.
pub(crate) fn unknown_custom_fields(body: &[u8]) -> Option<Vec<&'static str>> {
    let errors: FieldErrors = serde_json::from_slice(body).ok()?;
    let named = |text: &str| -> Vec<&'static str> {
        CUSTOM_FIELDS
            .into_iter()
            .filter(|f| text.contains(&format!("'{f}'")))
            .collect()
    };
    let mut found: Vec<&'static str> = Vec::new();
    let mut any = false;
    match &errors.custom_fields {
        CustomFieldErrors::List(msgs) => {
            for m in msgs.iter().filter(|m| m.contains("Unknown field name")) {
                any = true;
                found.extend(named(m));
            }
        }
        CustomFieldErrors::ByField(by_field) => {
            for (field, msgs) in by_field {
                if msgs.any(|m| m.contains("does not exist") || m.contains("Unknown field name")) {
                    any = true;
                    found.extend(CUSTOM_FIELDS.into_iter().filter(|f| f == field));
                }
            }
        }
    }
    if !any {
        return None;
    }
    found.dedup();
    Some(if found.is_empty() {
        CUSTOM_FIELDS.to_vec()
    } else {
        found
    })
}

/// What an error answer means beyond its status: an undefined custom field
/// gets the guidance of a missing one.
pub(crate) fn explain(r: &Reply) -> Option<BackendError> {
    if r.status != 400 {
        return None;
    }
    unknown_custom_fields(&r.body).map(|missing| missing_fields_error(&missing))
}

impl ApiOwner {
    pub(crate) fn into_owner(self) -> Owner {
        Owner {
            name: self.name.unwrap_or_default(),
            config_context: self.config_context,
            custom_fields: self.custom_fields,
        }
    }
}

fn deep_merge(into: &mut Value, from: &Value) {
    match (into, from) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                match a.get_mut(k) {
                    Some(slot) if slot.is_object() && v.is_object() => deep_merge(slot, v),
                    _ => {
                        a.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (slot, v) => *slot = v.clone(),
    }
}

/// The active config contexts of a list merged as Netbox renders them:
/// ascending weight, then name, later ones overriding.
pub(crate) fn merge_contexts(list: &[ConfigContext]) -> Value {
    let mut active: Vec<&ConfigContext> =
        list.iter().filter(|c| c.is_active != Some(false)).collect();
    active.sort_by(|a, b| {
        let key =
            |c: &ConfigContext| (c.weight.unwrap_or(1000), c.name.clone().unwrap_or_default());
        key(a).cmp(&key(b))
    });
    let mut out = Value::Object(Map::new());
    for c in active {
        if c.data.is_object() {
            deep_merge(&mut out, &c.data);
        }
    }
    out
}
