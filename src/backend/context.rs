//! The `pydhcp_configuration` config context both backends read: DNS
//! servers, and PXE boot options behind the original's redeploy guard.

use std::net::Ipv4Addr;

use serde_json::{Map, Value};

use super::{Boot, BootClient};
use crate::proto::boot::{self, BootFiles};

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
    let files = BootFiles {
        server: text("tftp_server"),
        bios: text("pxe_boot_file"),
        uefi: text("uefi_boot_file"),
        ipxe: text("ipxe_script"),
        http: text("http_boot_url"),
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
