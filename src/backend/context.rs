//! The `pydhcp_configuration` config context both backends read: DNS
//! servers, and PXE boot options behind the original's redeploy guard.
//! Config contexts and custom fields are the operator's free-form data:
//! what does not have the expected shape counts as absent.

use std::net::Ipv4Addr;

use serde::Deserialize;
use serde_json::Value;

use super::rest::lenient;
use super::{Boot, BootClient};
use crate::core::boot::{self, BootFiles};

/// The part of a rendered config context the daemon reads.
#[derive(Debug, Deserialize)]
struct ConfigContext {
    #[serde(default, deserialize_with = "lenient")]
    pydhcp_configuration: Option<PydhcpConfiguration>,
}

#[derive(Debug, Deserialize)]
struct PydhcpConfiguration {
    #[serde(default, deserialize_with = "lenient")]
    dns_servers: Option<DnsServers>,
    #[serde(default, deserialize_with = "lenient")]
    tftp_server: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pxe_boot_file: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    uefi_boot_file: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    ipxe_script: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    http_boot_url: Option<String>,
}

/// A list of addresses or, leniently, a comma- or space-separated string.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum DnsServers {
    List(Vec<Value>),
    Text(String),
}

/// The custom fields of the redeploy guard.
#[derive(Debug, Deserialize)]
struct Redeploy {
    #[serde(default)]
    redeploy: Value,
    #[serde(default, deserialize_with = "lenient")]
    confirm_redeploy: Option<String>,
}

fn pydhcp_configuration(ctx: &Value) -> Option<PydhcpConfiguration> {
    ConfigContext::deserialize(ctx).ok()?.pydhcp_configuration
}

/// `pydhcp_configuration.dns_servers` of a rendered config context.
pub(crate) fn dns_servers(ctx: &Value) -> Vec<Ipv4Addr> {
    let parse = |s: &str| s.trim().parse().ok();
    match pydhcp_configuration(ctx).and_then(|c| c.dns_servers) {
        Some(DnsServers::List(a)) => a
            .iter()
            .filter_map(|s| parse(s.as_str()?))
            .take(8)
            .collect(),
        Some(DnsServers::Text(s)) => s.split([',', ' ']).filter_map(parse).take(8).collect(),
        None => Vec::new(),
    }
}

fn truthy(v: &Value) -> bool {
    match v {
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => {
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
    let guard = Redeploy::deserialize(custom_fields).ok()?;
    if !truthy(&guard.redeploy) {
        return None;
    }
    if name.is_empty() || guard.confirm_redeploy.as_deref() != Some(name) {
        log::warn!("{backend}: redeploy set on {name}, but confirm_redeploy does not match");
        return None;
    }
    let conf = pydhcp_configuration(ctx)?;
    fn text(v: &Option<String>) -> Option<&str> {
        v.as_deref().map(str::trim).filter(|s| !s.is_empty())
    }
    let files = BootFiles {
        server: text(&conf.tftp_server),
        bios: text(&conf.pxe_boot_file),
        uefi: text(&conf.uefi_boot_file),
        ipxe: text(&conf.ipxe_script),
        http: text(&conf.http_boot_url),
    };
    boot::choose(client, &files)
}

/// Checks shared by the backends' tests.
#[cfg(test)]
pub(crate) mod checks {
    use std::net::Ipv4Addr;

    use serde_json::{json, Value};

    use crate::backend::{Boot, BootClient};

    /// The PXE answers both test data sets give their device bmc-test-01
    /// (`name`, its custom fields and rendered config context, as the
    /// backend mapped them), and the redeploy guard in front of them.
    pub(crate) fn sample_device(backend: &str, name: &str, custom_fields: &Value, ctx: &Value) {
        let boot = |cf: &Value, c| super::boot_options(backend, name, cf, ctx, c);
        assert_eq!(boot(custom_fields, BootClient::None), None);
        assert_eq!(
            boot(custom_fields, BootClient::Bios),
            Some(Boot {
                server: Some(Ipv4Addr::new(192, 0, 2, 69)),
                server_name: Some("192.0.2.69".into()),
                file: "pxelinux.0".into()
            })
        );
        let file = |c| boot(custom_fields, c).unwrap().file;
        assert_eq!(file(BootClient::Uefi), "grubx64.efi");
        assert_eq!(file(BootClient::Ipxe), "http://192.0.2.69/boot.ipxe");
        let http = boot(custom_fields, BootClient::UefiHttp).unwrap();
        assert_eq!(http.file, "http://192.0.2.69/uefi/shimx64.efi");
        assert_eq!((http.server, http.server_name), (None, None));
        // The redeploy guard.
        let mut off = custom_fields.clone();
        off["redeploy"] = json!(false);
        assert_eq!(boot(&off, BootClient::Bios), None);
        let mut wrong = custom_fields.clone();
        wrong["confirm_redeploy"] = json!("another-device");
        assert_eq!(boot(&wrong, BootClient::Bios), None);
        assert_eq!(boot(&json!({}), BootClient::Bios), None);
    }
}
