//! The GraphQL read: one query for the client's device and every address
//! of the prefix, and its answer.

use serde::de::DeserializeOwned;
use serde::Deserialize;

use super::api::{ApiDevice, IpAddress};
use super::{PrefixInfo, Snapshot, MAX_RECORDS};
use crate::backend::rest::{decode_json, items, lenient, snippet};
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
        let ns = p
            .namespace
            .as_deref()
            .map(|n| format!(", namespace: {}", gql_str(n)))
            .unwrap_or_default();
        q.push_str(&format!(
            " ip_addresses(prefix: {}{ns}, limit: {}) {{ id host type _custom_field_data interfaces {{ mac_address }} }}",
            gql_str(&p.network.to_string()),
            MAX_RECORDS + 1
        ));
    }
    q.push_str(" }");
    q
}

/// A list whose elements of another shape are left out.
#[derive(Debug, Deserialize)]
#[serde(bound = "T: DeserializeOwned")]
struct List<T>(#[serde(deserialize_with = "items")] Vec<T>);

#[derive(Debug, Deserialize)]
struct Answer {
    #[serde(default)]
    data: Option<Data>,
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

pub(crate) fn parse_graphql(
    status: u16,
    body: &[u8],
    want_device: bool,
    want_records: bool,
) -> Result<Snapshot, GqlError> {
    if status == 404 || status == 405 {
        return Err(GqlError::Schema(format!("HTTP {status}")));
    }
    let http = || GqlError::Backend(crate::backend::rest::http_error(status, body));
    if status != 200 && status != 400 {
        return Err(http());
    }
    let answer: Answer = decode_json(status, body).map_err(GqlError::Backend)?;
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
    let bad = |what: &str| {
        GqlError::Backend(BackendError::BadAnswer(format!(
            "GraphQL answer without {what}"
        )))
    };
    let data = answer.data.ok_or_else(|| bad("data"))?;
    let mut snap = Snapshot::default();
    if want_device {
        let List(list) = data.devices.ok_or_else(|| bad("devices"))?;
        snap.device = list.into_iter().next().map(ApiDevice::into_device);
    }
    if want_records {
        let List(list) = data.ip_addresses.ok_or_else(|| bad("ip_addresses"))?;
        if list.len() > MAX_RECORDS {
            log::warn!(
                "nautobot: prefix has more than {MAX_RECORDS} addresses; reading only those"
            );
        }
        snap.records = list
            .into_iter()
            .take(MAX_RECORDS)
            .filter_map(IpAddress::record)
            .collect();
    }
    Ok(snap)
}
