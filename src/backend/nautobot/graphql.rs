//! The GraphQL read: one query for the client's device and every address
//! of the prefix, and its answer.

use serde::de::DeserializeOwned;
use serde::Deserialize;

use serde_json::{Map, Value};

use super::api::{ApiDevice, IpAddress};
use super::{Device, PrefixInfo, Snapshot, MAX_RECORDS};
use crate::backend::pool::Record;
use crate::backend::rest::{decode_json, items, lenient, parse_mac, snippet};
use crate::backend::BackendError;
use crate::core::mac::MacAddr;

/// A string literal for a GraphQL query.
fn gql_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// One query for the device with `mac` and every address of `prefix`.
/// Values are literals, not variables: a single literal also fits a list
/// argument, whichever way a server version declares the filter.
pub(crate) fn graphql_query(mac: Option<MacAddr>, prefix: Option<&PrefixInfo>) -> String {
    let mut q = String::from("{");
    if let Some(m) = mac {
        q.push_str(&format!(
            " devices(mac_address: {}) {{ name config_context _custom_field_data }}",
            gql_str(&m.to_string())
        ));
    }
    if let Some(p) = prefix {
        q.push_str(&records_part(p));
    }
    q.push_str(" }");
    q
}

/// The part of a query that reads every address of `p`.
fn records_part(p: &PrefixInfo) -> String {
    let ns = p
        .namespace
        .as_deref()
        .map(|n| format!(", namespace: {}", gql_str(n)))
        .unwrap_or_default();
    format!(
        " ip_addresses(prefix: {}{ns}, limit: {}) {{ id host type _custom_field_data interfaces {{ mac_address }} }}",
        gql_str(&p.network.to_string()),
        MAX_RECORDS + 1
    )
}

/// One query for the address records with these ids.
pub(crate) fn graphql_ids_query(ids: &[&str]) -> String {
    let list: Vec<String> = ids.iter().map(|id| gql_str(id)).collect();
    format!(
        "{{ ip_addresses(id: [{}]) {{ id host type _custom_field_data interfaces {{ mac_address }} }} }}",
        list.join(", ")
    )
}

/// A list whose elements of another shape are left out.
#[derive(Debug, Deserialize)]
#[serde(bound = "T: DeserializeOwned")]
struct List<T>(#[serde(deserialize_with = "items")] Vec<T>);

#[derive(Debug, Deserialize)]
#[serde(bound = "D: DeserializeOwned")]
struct Answer<D> {
    #[serde(default)]
    data: Option<D>,
    #[serde(default, deserialize_with = "lenient")]
    errors: Option<Vec<Message>>,
}

#[derive(Debug, Deserialize)]
struct Data {
    #[serde(default)]
    devices: Option<List<ApiDevice>>,
    #[serde(default)]
    ip_addresses: Option<List<IpAddress>>,
}

#[derive(Debug, Deserialize)]
struct Message {
    #[serde(default, deserialize_with = "lenient")]
    message: Option<String>,
}

#[derive(Debug)]
pub(crate) enum GqlError {
    /// The server's schema does not have what the query asks for.
    Schema(String),
    Backend(BackendError),
}

/// The `data` of a GraphQL answer, or why there is none.
fn decode_data<D: DeserializeOwned>(status: u16, body: &[u8]) -> Result<D, GqlError> {
    if status == 404 || status == 405 {
        return Err(GqlError::Schema(format!("HTTP {status}")));
    }
    let http = || GqlError::Backend(crate::backend::rest::http_error(status, body));
    if status != 200 && status != 400 {
        return Err(http());
    }
    let answer: Answer<D> = decode_json(status, body).map_err(GqlError::Backend)?;
    if let Some(errors) = answer.errors {
        let msgs: Vec<&str> = errors
            .iter()
            .map(|e| e.message.as_deref().unwrap_or("?"))
            .collect();
        let text = msgs.join("; ");
        let schema = msgs.iter().any(|m| {
            m.contains("Cannot query field")
                || m.contains("Unknown argument")
                || m.contains("Unknown type")
        });
        return Err(if schema {
            GqlError::Schema(text)
        } else {
            GqlError::Backend(BackendError::BadAnswer(format!(
                "GraphQL: {}",
                snippet(text.as_bytes())
            )))
        });
    }
    if status != 200 {
        return Err(http());
    }
    answer.data.ok_or_else(|| missing("data"))
}

fn missing(what: &str) -> GqlError {
    GqlError::Backend(BackendError::BadAnswer(format!(
        "GraphQL answer without {what}"
    )))
}

/// The address records of a prefix, at most [`MAX_RECORDS`].
fn records(list: Vec<IpAddress>) -> Vec<Record> {
    if list.len() > MAX_RECORDS {
        log::warn!("nautobot: prefix has more than {MAX_RECORDS} addresses; reading only those");
    }
    list.into_iter()
        .take(MAX_RECORDS)
        .filter_map(IpAddress::record)
        .collect()
}

pub(crate) fn parse_graphql(
    status: u16,
    body: &[u8],
    want_device: bool,
    want_records: bool,
) -> Result<Snapshot, GqlError> {
    let data: Data = decode_data(status, body)?;
    let mut snap = Snapshot::default();
    if want_device {
        let List(list) = data.devices.ok_or_else(|| missing("devices"))?;
        snap.device = list.into_iter().next().map(ApiDevice::into_device);
    }
    if want_records {
        let List(list) = data.ip_addresses.ok_or_else(|| missing("ip_addresses"))?;
        snap.records = records(list);
    }
    Ok(snap)
}

/// The records [`graphql_ids_query`] asked for (those that still exist).
pub(crate) fn parse_graphql_records(status: u16, body: &[u8]) -> Result<Vec<Record>, GqlError> {
    let data: Data = decode_data(status, body)?;
    let List(list) = data.ip_addresses.ok_or_else(|| missing("ip_addresses"))?;
    Ok(records(list))
}

/// One query for the devices of several clients and every address of
/// `prefix`. The devices come through their interfaces, with one list
/// filter: Nautobot answers a list as fast as one MAC, while each
/// `devices(mac_address:)` alias costs it a search of its own (about 0.1 s
/// each, 3 s for 32 clients).
pub(crate) fn graphql_many_query(macs: &[MacAddr], prefix: &PrefixInfo) -> String {
    let list: Vec<String> = macs.iter().map(|m| gql_str(&m.to_string())).collect();
    let mut q = format!(
        "{{ interfaces(mac_address: [{}]) {{ mac_address device {{ name config_context _custom_field_data }} }}",
        list.join(", ")
    );
    q.push_str(&records_part(prefix));
    q.push_str(" }");
    q
}

/// An interface of [`graphql_many_query`]'s answer.
#[derive(Debug, Deserialize)]
struct DeviceInterface {
    #[serde(default, deserialize_with = "lenient")]
    mac_address: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    device: Option<ApiDevice>,
}

/// What [`graphql_many_query`] returns: each client's device (in the order
/// of the query) and the prefix's records.
#[derive(Debug, Default)]
pub(crate) struct ManySnapshot {
    pub devices: Vec<Option<Device>>,
    pub records: Vec<Record>,
}

/// The answer to [`graphql_many_query`] for `macs`. A MAC found on
/// interfaces of several devices gets the first, as a single read does.
pub(crate) fn parse_graphql_many(
    status: u16,
    body: &[u8],
    macs: &[MacAddr],
) -> Result<ManySnapshot, GqlError> {
    let mut data: Map<String, Value> = decode_data(status, body)?;
    let v = data
        .remove("interfaces")
        .ok_or_else(|| missing("interfaces"))?;
    let List(interfaces) =
        List::<DeviceInterface>::deserialize(v).map_err(|_| missing("interfaces"))?;
    let mut snap = ManySnapshot {
        devices: vec![None; macs.len()],
        records: Vec::new(),
    };
    for itf in interfaces {
        let (Some(m), Some(d)) = (itf.mac_address.as_deref().and_then(parse_mac), itf.device)
        else {
            continue;
        };
        if let Some(n) = macs.iter().position(|&x| x == m) {
            if snap.devices[n].is_none() {
                snap.devices[n] = Some(d.into_device());
            }
        }
    }
    let v = data
        .remove("ip_addresses")
        .ok_or_else(|| missing("ip_addresses"))?;
    let List(list) = List::<IpAddress>::deserialize(v).map_err(|_| missing("ip_addresses"))?;
    snap.records = records(list);
    Ok(snap)
}
