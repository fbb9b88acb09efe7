//! The `pydhcp_configuration` config context both backends read: DNS
//! servers, and PXE boot options behind the original's redeploy guard.

use std::net::Ipv4Addr;

use serde_json::{Map, Value};

use super::{Boot, BootClient};

fn pydhcp_configuration(ctx: &Value) -> Option<&Map<String, Value>> {
    ctx.get("pydhcp_configuration").and_then(Value::as_object)
}

/// `pydhcp_configuration.dns_servers` of a rendered config context: a list
/// of addresses (or, leniently, a comma-separated string).
pub(crate) fn dns_servers(ctx: &Value) -> Vec<Ipv4Addr> {
    let Some(conf) = pydhcp_configuration(ctx) else {
        return Vec::new();
    };
    match conf.get("dns_servers") {
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|s| s.as_str()?.trim().parse().ok())
            .take(8)
            .collect(),
        Some(Value::String(s)) => s
            .split([',', ' '])
            .filter_map(|s| s.trim().parse().ok())
            .take(8)
            .collect(),
        _ => Vec::new(),
    }
}

fn truthy(v: Option<&Value>) -> bool {
    match v {
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_f64().is_some_and(|f| f != 0.0),
        Some(Value::String(s)) => {
            let s = s.trim().to_ascii_lowercase();
            !matches!(s.as_str(), "" | "0" | "false" | "no" | "off")
        }
        _ => false,
    }
}

/// PXE answer for `client` from the config context `ctx` of the object
/// `name`, only when it is marked for redeployment (`redeploy` set and
/// `confirm_redeploy` repeating its name), so that a machine never boots
/// into an installer by accident.
pub(crate) fn boot_options(
    backend: &str,
    name: &str,
    custom_fields: &Value,
    ctx: &Value,
    client: BootClient,
) -> Option<Boot> {
    if client == BootClient::None {
        return None;
    }
    if !truthy(custom_fields.get("redeploy")) {
        return None;
    }
    if name.is_empty()
        || custom_fields
            .get("confirm_redeploy")
            .and_then(Value::as_str)
            != Some(name)
    {
        log::warn!("{backend}: redeploy set on {name}, but confirm_redeploy does not match");
        return None;
    }
    let conf = pydhcp_configuration(ctx)?;
    let text = |k: &str| {
        conf.get(k)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
    };
    let tftp = text("tftp_server");
    let (file, needs_server) = match client {
        BootClient::Bios => (text("pxe_boot_file")?, true),
        BootClient::Uefi => (text("uefi_boot_file")?, true),
        BootClient::Ipxe => (text("ipxe_script")?, false),
        BootClient::UefiHttp => (text("http_boot_url")?, false),
        BootClient::None => return None,
    };
    if needs_server && tftp.is_none() {
        return None;
    }
    let server_name = if client == BootClient::UefiHttp {
        None
    } else {
        tftp
    };
    Some(Boot {
        server: server_name.and_then(|s| s.parse().ok()),
        server_name: server_name.map(str::to_owned),
        file: file.to_owned(),
    })
}
