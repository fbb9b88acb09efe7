//! The sections and keys the daemon knows, for the warnings about others.

const GENERAL_KEYS: &[&str] = &["pidfile", "datapath", "logdir", "user", "metrics_file"];
const DHCP_KEYS: &[&str] = &[
    "enable_dhcp",
    "lease_lifetime",
    "lease_renewal",
    "server_ip",
    "server_on_link",
    "dhcp_queue",
    "nameservers",
    "domain",
    "domains",
    "next_server",
    "boot_file",
    "uefi_boot_file",
    "ipxe",
    "http_boot",
];
const IPV6_KEYS: &[&str] = &[
    "enable_ipv6",
    "mode",
    "ra_period",
    "rs_queue",
    "ns_queue",
    "dhcpv6_queue",
    "nameservers",
    "domains",
    "router_lifetime",
    "prefix_valid_lifetime",
    "prefix_preferred_lifetime",
    "dns_lifetime",
];
/// Accepted in `[ipv6]` with a warning.
const IPV6_DEPRECATED_KEYS: &[&str] = &["dhcp_queue", "enable_dhcpv6"];
const RELAY_KEYS: &[&str] = &[
    "enable_relay",
    "interfaces",
    "port",
    "authoritative",
    "server_ident",
    "backend",
    "lease_time",
    "nameservers",
    "domain",
    "max_pending_jobs",
    "max_offers",
];
const LIMITS_KEYS: &[&str] = &["interface_rate", "mac_rate"];
/// The keys of both backends (`prefix_roles` and `reserved` serve
/// Nautobot only).
const BACKEND_KEYS: &[&str] = &[
    "url",
    "token_file",
    "prefix_roles",
    "reserved",
    "workers",
    "batch_window",
    "renewal_window",
    "batch_size",
    "timeout",
    "ca_file",
    "allow_unknown_devices",
];

/// Every section and its current (not deprecated) keys, in file order.
pub const KNOWN_KEYS: &[(&str, &[&str])] = &[
    ("general", GENERAL_KEYS),
    ("dhcp", DHCP_KEYS),
    ("ipv6", IPV6_KEYS),
    ("relay", RELAY_KEYS),
    ("nautobot", BACKEND_KEYS),
    ("netbox", BACKEND_KEYS),
    ("limits", LIMITS_KEYS),
];

/// `None` for an unknown section, else whether `key` is one of its keys.
pub(super) fn is_known_key(section: &str, key: &str) -> Option<bool> {
    let (_, keys) = KNOWN_KEYS.iter().find(|(s, _)| *s == section)?;
    Some(keys.contains(&key) || (section == "ipv6" && IPV6_DEPRECATED_KEYS.contains(&key)))
}
