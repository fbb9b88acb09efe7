//! Entry points for the fuzz targets in `fuzz/` that reach crate-private
//! code. Not part of the daemon's interface.
//!
//! The backends' JSON mapping is crate-private (its types are internal), so
//! this module runs all of it on one answer body here rather than widening
//! the backend modules' visibility.

use std::net::Ipv4Addr;
use std::time::SystemTime;

use ipnet::Ipv4Net;
use serde_json::Value;

use crate::backend::pool::{self, Pool};
use crate::backend::BootClient;
use crate::backend::{nautobot, netbox};
use crate::core::mac::MacAddr;

const BOOT_CLIENTS: [BootClient; 5] = [
    BootClient::None,
    BootClient::Bios,
    BootClient::Uefi,
    BootClient::UefiHttp,
    BootClient::Ipxe,
];

/// Feeds one Nautobot answer (`status`, `body`) through every reader of the
/// backend: the GraphQL snapshot, the duplicate check of a failed create,
/// and, when the body is JSON, the custom-field list, the prefix list (and
/// the longest match for `origin`), the device list (DNS servers, boot
/// options for every kind of boot client) and an address page, whose
/// records then go through the pool's choice for `mac` at `now`.
pub fn nautobot_answer(
    status: u16,
    body: &[u8],
    want_device: bool,
    want_records: bool,
    mac: MacAddr,
    origin: Ipv4Addr,
    now: SystemTime,
) {
    let _ = nautobot::parse_graphql(status, body, want_device, want_records);
    let _ = nautobot::is_duplicate(status, body);
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return;
    };
    let _ = nautobot::missing_custom_fields(&v);
    let prefix = nautobot::parse_prefixes(&v)
        .ok()
        .and_then(|list| nautobot::most_specific(&list, origin));
    let _ = nautobot::graphql_query(Some(mac), prefix.as_ref());
    if let Ok(dev) = nautobot::parse_devices(&v) {
        let _ = nautobot::dns_servers(dev.as_ref());
        if let Some(dev) = &dev {
            for client in BOOT_CLIENTS {
                let _ = nautobot::boot_options(dev, client);
            }
        }
    }
    if let Ok((records, _count)) = nautobot::parse_ip_page(&v) {
        let network = prefix.map_or_else(|| Ipv4Net::from(origin), |p| p.network);
        let pool = Pool {
            network,
            reserved: 5,
        };
        let _ = pool::choose(&records, &pool, mac, now, &[]);
        for r in records.iter().take(4) {
            let _ = pool::confirm(&records, &pool, mac, r.addr, now);
        }
    }
}

/// Feeds one Netbox answer body through every reader of the backend: the
/// prefix list (and the longest match for `origin`, whose network bounds
/// the rest), device and VM interface lists (and the interface `mac` stands
/// for, LAG rule included), the static and gateway address lookups, a pool
/// page (its records through the pool's choice and confirmations for `mac`
/// at `now`, and their ETags), the custom-field list, a device or VM (DNS
/// servers, boot options for every kind of boot client), a list of config
/// contexts merged as Netbox renders them, and the API version text.
pub fn netbox_answer(body: &[u8], mac: MacAddr, origin: Ipv4Addr, now: SystemTime) {
    if let Some(first) = body.split(|&b| b == b'\n').next() {
        let _ = netbox::ApiVersion::parse(&String::from_utf8_lossy(first));
    }
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return;
    };
    let network = netbox::parse_prefixes(&v)
        .ok()
        .and_then(|list| netbox::most_specific(&list, origin))
        .map_or_else(|| Ipv4Net::new(origin, 24).unwrap().trunc(), |p| p.network);
    for vm in [false, true] {
        if let Ok(list) = netbox::parse_interfaces(&v, vm) {
            if let netbox::Pick::Members { lag, .. } = netbox::pick_interface(&list, mac) {
                let _ = netbox::pick_lag_owner(&list, lag, mac);
            }
        }
    }
    let _ = netbox::static_address(&v, network);
    let _ = netbox::first_address(&v, network);
    if let Ok((records, _count)) = netbox::parse_pool(&v, network) {
        let _ = netbox::choose(&records, mac, now, &[]);
        for r in records.iter().take(4) {
            let _ = netbox::confirm(&records, mac, r.addr, now);
            if let Some(t) = &r.last_updated {
                let _ = netbox::etag_from(t);
            }
        }
    }
    let _ = netbox::missing_custom_fields(&v);
    if let Some(owner) = netbox::owner_from(&v) {
        let _ = netbox::dns_servers(&owner.config_context);
        for client in BOOT_CLIENTS {
            let _ = netbox::boot_options(&owner, client);
        }
    }
    if let Ok(ctx) = netbox::merge_contexts(&v) {
        let _ = netbox::dns_servers(&ctx);
    }
}
