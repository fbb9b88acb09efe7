//! Answers decoded into typed structs, and the pieces the structs of both
//! backends are made of. The structs ignore the fields they do not name;
//! where a server version sends a field in another shape, or garbage, the
//! helpers here take it as absent rather than failing the whole answer.

use serde::de::{DeserializeOwned, Deserializer, Error as _};
use serde::Deserialize;
use serde_json::Value;

use super::error::snippet;
use crate::backend::BackendError;
use crate::core::mac::MacAddr;

fn not_json(status: u16, body: &[u8]) -> BackendError {
    BackendError::BadAnswer(format!("not JSON (HTTP {status}): {}", snippet(body)))
}

/// Decodes an answer body of status `status`.
pub(crate) fn json<T: DeserializeOwned>(status: u16, body: &[u8]) -> Result<T, BackendError> {
    serde_json::from_slice(body).map_err(|e| {
        if e.is_data() {
            BackendError::BadAnswer(format!("unexpected answer (HTTP {status}): {e}"))
        } else {
            not_json(status, body)
        }
    })
}

/// Like [`json`], but JSON of another shape is `None`: the caller says
/// what was expected.
pub(crate) fn json_if<T: DeserializeOwned>(
    status: u16,
    body: &[u8],
) -> Result<Option<T>, BackendError> {
    match serde_json::from_slice(body) {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.is_data() => Ok(None),
        Err(_) => Err(not_json(status, body)),
    }
}

/// A field that may be absent, null or of another shape: `None` then.
/// Use with `#[serde(default, deserialize_with = "lenient")]`.
pub(crate) fn lenient<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned,
{
    Ok(T::deserialize(Value::deserialize(d)?).ok())
}

/// A list whose elements of another shape are left out; anything but a list
/// is an error.
pub(crate) fn items<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned,
{
    let list = Vec::<Value>::deserialize(d)?;
    Ok(list
        .into_iter()
        .filter_map(|v| T::deserialize(v).ok())
        .collect())
}

/// Like [`items`], but anything but a list is an empty one.
pub(crate) fn lenient_items<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned,
{
    match Value::deserialize(d)? {
        Value::Array(list) => Ok(list
            .into_iter()
            .filter_map(|v| T::deserialize(v).ok())
            .collect()),
        _ => Ok(Vec::new()),
    }
}

/// A JSON value that may arrive encoded as a string (GraphQL's JSONString);
/// a string that is not JSON is null.
pub(crate) fn json_text<'de, D: Deserializer<'de>>(d: D) -> Result<Value, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::String(s) => serde_json::from_str(&s).unwrap_or(Value::Null),
        v => v,
    })
}

/// A numeric object id: a number, or leniently a numeric string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Id(pub u64);

impl<'de> Deserialize<'de> for Id {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Id, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Number(n) => Ok(Id(n)),
            Raw::Text(s) => s.trim().parse().map(Id).map_err(D::Error::custom),
        }
    }
}

/// A choice field: `{"value": "dhcp", "label": "DHCP"}`, or a plain string.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub(crate) enum Choice {
    Plain(String),
    Labelled { value: String },
}

impl Choice {
    pub(crate) fn value(&self) -> &str {
        match self {
            Choice::Plain(v) | Choice::Labelled { value: v } => v,
        }
    }
}

/// A MAC in any common notation: `14:18:77:AA:BB:01`, `14-18-…`,
/// `141877aabb01`, `1418.77aa.bb01`.
pub(crate) fn parse_mac(s: &str) -> Option<MacAddr> {
    let s = s.trim();
    if let Ok(m) = s.parse() {
        return Some(m);
    }
    let hex: String = s
        .chars()
        .filter(|c| *c != '.' && *c != ':' && *c != '-')
        .collect();
    if hex.len() != 12 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut out = [0u8; 6];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(MacAddr(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct Thing {
        id: Id,
        #[serde(default, deserialize_with = "lenient")]
        status: Option<Choice>,
        #[serde(default, deserialize_with = "lenient_items")]
        tags: Vec<String>,
        #[serde(default, deserialize_with = "json_text")]
        data: Value,
    }

    #[derive(Debug, Deserialize)]
    struct List {
        #[serde(deserialize_with = "items")]
        results: Vec<Thing>,
    }

    #[test]
    fn shapes_that_vary_are_taken_as_absent() {
        let l: List = json(
            200,
            br#"{"results": [
                {"id": 1, "status": {"value": "dhcp", "label": "DHCP"}, "tags": ["a", 5], "data": "{\"x\": 1}", "other": 0},
                {"id": "2", "status": "active", "tags": null, "data": {"y": 2}},
                {"id": 3, "status": 7, "tags": "x", "data": "not json"},
                {"id": "x"}, null, 5
            ]}"#,
        )
        .unwrap();
        let ids: Vec<u64> = l.results.iter().map(|t| t.id.0).collect();
        assert_eq!(ids, [1, 2, 3]);
        assert_eq!(l.results[0].status.as_ref().unwrap().value(), "dhcp");
        assert_eq!(l.results[0].tags, ["a"]);
        assert_eq!(l.results[0].data["x"], 1);
        assert_eq!(l.results[1].status.as_ref().unwrap().value(), "active");
        assert_eq!(l.results[1].data["y"], 2);
        assert!(l.results[2].status.is_none() && l.results[2].tags.is_empty());
        assert!(l.results[2].data.is_null());
    }

    #[test]
    fn answers_that_do_not_fit() {
        let e = json::<List>(200, b"<html>login</html>").unwrap_err();
        assert!(
            matches!(&e, BackendError::BadAnswer(m) if m.starts_with("not JSON (HTTP 200): <html>")),
            "{e}"
        );
        let e = json::<List>(200, br#"{"detail": "x"}"#).unwrap_err();
        assert!(
            matches!(&e, BackendError::BadAnswer(m) if m.contains("results")),
            "{e}"
        );
        assert!(json::<List>(200, br#"{"results": {}}"#).is_err());
    }

    #[test]
    fn macs_in_any_notation() {
        let m: MacAddr = "14:18:77:aa:bb:01".parse().unwrap();
        for s in [
            "14:18:77:AA:BB:01",
            "14-18-77-aa-bb-01",
            "141877aabb01",
            "1418.77aa.bb01",
            " 14:18:77:aa:bb:01 ",
        ] {
            assert_eq!(parse_mac(s), Some(m), "{s}");
        }
        for s in ["", "14:18:77:aa:bb", "14:18:77:aa:bb:zz", "141877aabb0102"] {
            assert_eq!(parse_mac(s), None, "{s}");
        }
    }
}
