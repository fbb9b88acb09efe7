//! The Nautobot answers the backend reads, as typed structs (REST and
//! GraphQL forms alike), and what they map to. Fields not named here are
//! ignored; a field of another shape counts as absent.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_json::Value;

use super::{Device, PrefixInfo};
use crate::backend::pool::Record;
use crate::backend::rest::{json_text, lenient, lenient_items, parse_mac, time, Choice};
use crate::backend::CUSTOM_FIELDS;

/// `/api/extras/custom-fields/`: `key` from Nautobot 2.0, `name` before.
#[derive(Debug, Deserialize)]
pub(crate) struct CustomField {
    #[serde(default, deserialize_with = "lenient")]
    key: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    name: Option<String>,
}

/// `/api/ipam/prefixes/`.
#[derive(Debug, Deserialize)]
pub(crate) struct Prefix {
    id: String,
    prefix: String,
    /// Nested (`{"id": …}`) or its id.
    #[serde(default, deserialize_with = "lenient")]
    namespace: Option<NamespaceRef>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum NamespaceRef {
    Id(String),
    Nested { id: String },
}

/// A device: REST (`custom_fields`, and `config_context` when asked for) or
/// GraphQL (`_custom_field_data`; JSON values may come as strings).
#[derive(Debug, Deserialize)]
pub(crate) struct ApiDevice {
    #[serde(default, deserialize_with = "lenient")]
    name: Option<String>,
    #[serde(default, deserialize_with = "json_text")]
    config_context: Value,
    #[serde(default, deserialize_with = "json_text")]
    custom_fields: Value,
    #[serde(default, rename = "_custom_field_data", deserialize_with = "json_text")]
    custom_field_data: Value,
}

/// An IP address: REST (`address`; `depth=1` inlines the interfaces) or
/// GraphQL (`host`). Only the id and the address are required.
#[derive(Debug, Deserialize)]
pub(crate) struct IpAddress {
    id: String,
    #[serde(default, deserialize_with = "lenient")]
    host: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    address: Option<String>,
    /// `dhcp` for the daemon's own (GraphQL: `DHCP`; REST: a choice).
    #[serde(default, rename = "type", deserialize_with = "lenient")]
    kind: Option<Choice>,
    #[serde(default, deserialize_with = "json_text")]
    custom_fields: Value,
    #[serde(default, rename = "_custom_field_data", deserialize_with = "json_text")]
    custom_field_data: Value,
    #[serde(default, deserialize_with = "lenient_items")]
    interfaces: Vec<Interface>,
}

#[derive(Debug, Deserialize)]
struct Interface {
    #[serde(default, deserialize_with = "lenient")]
    mac_address: Option<String>,
}

/// The answer to a create.
#[derive(Debug, Deserialize)]
pub(crate) struct Created {
    #[serde(default, deserialize_with = "lenient")]
    pub id: Option<String>,
}

/// A 500 answer of Nautobot's exception handler.
#[derive(Debug, Deserialize)]
struct ServerError {
    #[serde(default, deserialize_with = "lenient")]
    exception: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    error: Option<String>,
}

/// A 400 answer that names the `role` filter (a role that does not exist).
#[derive(Debug, Deserialize)]
struct RoleRefused {
    #[allow(dead_code)]
    role: IgnoredAny,
}

/// The custom fields of [`CUSTOM_FIELDS`] missing from a custom-field list.
pub(crate) fn missing_custom_fields(list: &[CustomField]) -> Vec<&'static str> {
    CUSTOM_FIELDS
        .into_iter()
        .filter(|k| {
            !list
                .iter()
                .any(|cf| cf.key.as_deref().or(cf.name.as_deref()) == Some(k))
        })
        .collect()
}

/// The IPv4 prefixes of a list.
pub(crate) fn prefixes(list: Vec<Prefix>) -> Vec<PrefixInfo> {
    list.into_iter()
        .filter_map(|p| {
            let network: Ipv4Net = p.prefix.parse().ok()?;
            Some(PrefixInfo {
                id: p.id,
                network: network.trunc(),
                namespace: p.namespace.map(|n| match n {
                    NamespaceRef::Id(id) | NamespaceRef::Nested { id } => id,
                }),
            })
        })
        .collect()
}

impl ApiDevice {
    pub(crate) fn into_device(self) -> Device {
        Device {
            name: self.name.unwrap_or_default(),
            config_context: self.config_context,
            custom_fields: if self.custom_fields.is_null() {
                self.custom_field_data
            } else {
                self.custom_fields
            },
        }
    }
}

impl IpAddress {
    /// As a pool record; None for what is not an IPv4 address.
    pub(crate) fn record(self) -> Option<Record> {
        let host = match self.host {
            Some(h) => h,
            None => self.address?.split('/').next()?.to_owned(),
        };
        let addr: Ipv4Addr = host.parse().ok()?;
        let cf = if self.custom_fields.is_null() {
            &self.custom_field_data
        } else {
            &self.custom_fields
        };
        let text = |k: &str| cf.get(k).and_then(Value::as_str);
        Some(Record {
            id: self.id,
            addr,
            dynamic: self
                .kind
                .as_ref()
                .is_some_and(|k| k.value().eq_ignore_ascii_case("dhcp")),
            mac: text("pydhcp_mac").and_then(parse_mac),
            expire: text("pydhcp_expire").and_then(time::parse_expire),
            interface_macs: self
                .interfaces
                .iter()
                .filter_map(|i| i.mac_address.as_deref().and_then(parse_mac))
                .collect(),
        })
    }
}

/// The pool records of a list of addresses.
pub(crate) fn records(list: Vec<IpAddress>) -> Vec<Record> {
    list.into_iter().filter_map(IpAddress::record).collect()
}

/// Whether a failed create means "another server has this address": 400
/// "already exists", or a 500 of a unique constraint.
pub(crate) fn is_duplicate(status: u16, body: &[u8]) -> bool {
    match status {
        400 => String::from_utf8_lossy(body).contains("already exists"),
        500 => {
            let Ok(e) = serde_json::from_slice::<ServerError>(body) else {
                return false;
            };
            let err = e.error.unwrap_or_default().to_ascii_lowercase();
            match e.exception.as_deref().unwrap_or("") {
                "IntegrityError" => {
                    err.contains("duplicate")
                        || err.contains("unique")
                        || err.contains("already exists")
                }
                "ValidationError" => err.contains("already exists"),
                _ => false,
            }
        }
        _ => false,
    }
}

/// Whether a 400 answer of the prefix query refuses the `role` filter.
pub(crate) fn role_refused(body: &[u8]) -> bool {
    serde_json::from_slice::<RoleRefused>(body).is_ok()
}
