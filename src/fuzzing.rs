//! Entry points for the fuzz targets in `fuzz/` that reach crate-private
//! code. Not part of the daemon's interface.
//!
//! The backends' JSON mapping is crate-private (its types are internal), so
//! this module runs all of it on one answer body here rather than widening
//! the backend modules' visibility.

use std::net::Ipv4Addr;
use std::time::SystemTime;

use ipnet::Ipv4Net;
use serde::de::DeserializeOwned;

use crate::backend::nautobot::{self, api as nautobot_api};
use crate::backend::netbox::{self, api as netbox_api};
use crate::backend::pool::{self, Pool};
use crate::backend::rest::{etag, Page};
use crate::backend::BootClient;
use crate::core::mac::MacAddr;

const BOOT_CLIENTS: [BootClient; 5] = [
    BootClient::None,
    BootClient::Bios,
    BootClient::Uefi,
    BootClient::UefiHttp,
    BootClient::Ipxe,
];

/// The list elements of `body` that fit `T`, if it is a list answer.
fn list<T: DeserializeOwned>(body: &[u8]) -> Option<Vec<T>> {
    serde_json::from_slice::<Page<T>>(body)
        .ok()
        .map(|p| p.results)
}

/// Feeds one Nautobot answer (`status`, `body`) through every reader of the
/// backend: the GraphQL snapshot, the duplicate check of a failed create,
/// and, when the body is a list, the custom-field list, the prefix list (and
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
    let _ = nautobot_api::is_duplicate(status, body);
    if let Some(fields) = list::<nautobot_api::CustomField>(body) {
        let _ = nautobot_api::missing_custom_fields(&fields);
    }
    let prefix = list(body)
        .map(nautobot_api::prefixes)
        .and_then(|list| nautobot::most_specific(&list, origin));
    let _ = nautobot::graphql_query(Some(mac), prefix.as_ref());
    if let Some(devices) = list(body) {
        let dev = devices
            .into_iter()
            .next()
            .map(nautobot_api::ApiDevice::into_device);
        let _ = nautobot::dns_servers(dev.as_ref());
        if let Some(dev) = &dev {
            for client in BOOT_CLIENTS {
                let _ = nautobot::boot_options(dev, client);
            }
        }
    }
    if let Some(addresses) = list(body) {
        let records = nautobot_api::records(addresses);
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
/// contexts merged as Netbox renders them, the error answer of a write, and
/// the API version text.
pub fn netbox_answer(body: &[u8], mac: MacAddr, origin: Ipv4Addr, now: SystemTime) {
    if let Some(first) = body.split(|&b| b == b'\n').next() {
        let _ = netbox::ApiVersion::parse(&String::from_utf8_lossy(first));
    }
    let _ = netbox_api::unknown_custom_fields(body);
    let network = list(body)
        .map(netbox_api::prefixes)
        .and_then(|list| netbox::most_specific(&list, origin))
        .map_or_else(|| Ipv4Net::new(origin, 24).unwrap().trunc(), |p| p.network);
    if let Some(ifaces) = list::<netbox_api::Interface>(body) {
        for vm in [false, true] {
            let list = netbox_api::interfaces(&ifaces, vm, 1000);
            if let netbox::Pick::Members { lag, .. } = netbox::pick_interface(&list, mac) {
                let _ = netbox::pick_lag_owner(&list, lag, mac);
            }
        }
    }
    if let Some(addresses) = list::<netbox_api::IpAddress>(body) {
        let _ = netbox_api::static_address(&addresses, network);
        let _ = netbox_api::first_address(&addresses, network);
        if let Ok(records) = netbox_api::pool(&addresses, network) {
            let _ = netbox::choose(&records, mac, now, &[]);
            for r in records.iter().take(4) {
                let _ = netbox::confirm(&records, mac, r.addr, now);
                if let Some(t) = &r.last_updated {
                    let _ = etag::from_last_updated(t);
                }
            }
        }
    }
    if let Some(fields) = list::<netbox_api::CustomField>(body) {
        let _ = netbox_api::missing_custom_fields(&fields);
    }
    if let Ok(owner) = serde_json::from_slice::<netbox_api::ApiOwner>(body) {
        let owner = owner.into_owner();
        let _ = netbox::dns_servers(&owner.config_context);
        for client in BOOT_CLIENTS {
            let _ = netbox::boot_options(&owner, client);
        }
    }
    if let Some(contexts) = list::<netbox_api::ConfigContext>(body) {
        let _ = netbox::dns_servers(&netbox_api::merge_contexts(&contexts));
    }
}
