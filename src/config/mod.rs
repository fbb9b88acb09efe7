//! `nfdhcpd.conf` (INI) -> typed [`Config`], with validation errors that name
//! file, section, key and problem.
//!
//! The format is the original nfdhcpd's: `[section]` headers, `key = value`
//! lines, `#` and `;` comments (also after a value), yes/no booleans and
//! comma-separated lists. Section and key names are case-insensitive. Unknown
//! sections and keys are warnings rather than errors, so that a file written
//! for a newer daemon still loads.
//!
//! `reader` opens the file and turns it into raw sections, `validate` turns
//! raw values into the typed [`Config`], with the syntax of single values in
//! `values` and the key names in `keys`.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::core::boot::BootConfig;
use crate::host::ratelimit::Limits;

mod keys;
mod reader;
mod validate;
mod values;

#[cfg(test)]
mod tests;

pub use keys::KNOWN_KEYS;
pub use reader::file_kind;

pub const DEFAULT_PATH: &str = "/etc/nfdhcpd/nfdhcpd.conf";

/// Config files larger than this are refused unread.
pub const MAX_FILE_SIZE: u64 = 1024 * 1024;
/// Longest `[dhcp] domains` list: glibc's resolver has used at most six.
pub const MAX_SEARCH_DOMAINS: usize = 6;

/// RFC 4861 6.2.1: AdvDefaultLifetime is at most 9000 seconds.
pub const MAX_ROUTER_LIFETIME: u32 = 9000;

/// RFC 4861 6.2.1: MaxRtrAdvInterval is at most 1800 seconds.
pub const MAX_RA_PERIOD: u32 = 1800;

/// One line that names file, section, key and problem. The daemon prints it and exits 2.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{}: [{}] {}: {}",
    escape_controls(.file),
    escape_controls(.section),
    escape_controls(.key),
    escape_controls(.problem)
)]
pub struct ConfigError {
    pub file: String,
    pub section: String,
    pub key: String,
    pub problem: String,
}

impl ConfigError {
    /// An error about the file as a whole (unreadable, too large, bad syntax):
    /// section and key are `-`.
    fn whole_file(file: &str, problem: impl Into<String>) -> Self {
        ConfigError {
            file: file.to_owned(),
            section: "-".to_owned(),
            key: "-".to_owned(),
            problem: problem.into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Config {
    pub general: General,
    pub dhcp: Dhcp,
    pub ipv6: Ipv6,
    pub relay: Relay,
    pub nautobot: BackendConf,
    pub netbox: BackendConf,
    pub limits: Limits,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct General {
    pub pidfile: PathBuf,
    pub datapath: PathBuf,
    pub logdir: Option<PathBuf>,
    /// User name or numeric uid to switch to after opening sockets.
    pub user: Option<String>,
    pub metrics_file: Option<PathBuf>,
}

impl Default for General {
    fn default() -> Self {
        General {
            pidfile: PathBuf::from("/run/nfdhcpd/nfdhcpd.pid"),
            datapath: PathBuf::from("/var/lib/nfdhcpd"),
            logdir: None,
            user: None,
            metrics_file: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dhcp {
    pub enable_dhcp: bool,
    pub lease_lifetime: u32,
    pub lease_renewal: u32,
    pub server_ip: Option<Ipv4Addr>,
    pub server_on_link: bool,
    pub dhcp_queue: u16,
    pub nameservers: Vec<Ipv4Addr>,
    pub domain: Option<String>,
    /// Domain search list (option 119); empty: `domain`.
    pub domains: Vec<String>,
    /// Network boot defaults for bindings that leave a key unset.
    pub boot: BootConfig,
}

impl Default for Dhcp {
    fn default() -> Self {
        Dhcp {
            enable_dhcp: true,
            lease_lifetime: 604_800,
            lease_renewal: 600,
            server_ip: None,
            server_on_link: false,
            dhcp_queue: 42,
            nameservers: Vec::new(),
            domain: None,
            domains: Vec::new(),
            boot: BootConfig::default(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ipv6Mode {
    /// The richest mode whose queues are configured.
    Auto,
    /// Router Advertisements only: addresses by SLAAC, DNS by RDNSS/DNSSL.
    Slaac,
    /// SLAAC addresses, DNS information also by DHCPv6 (RA O flag).
    SlaacDhcpv6,
    /// Addresses by stateful DHCPv6 (RA M flag).
    Dhcpv6,
}

impl Ipv6Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Ipv6Mode::Auto => "auto",
            Ipv6Mode::Slaac => "slaac",
            Ipv6Mode::SlaacDhcpv6 => "slaac+dhcpv6",
            Ipv6Mode::Dhcpv6 => "dhcpv6",
        }
    }
}

impl fmt::Display for Ipv6Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Ipv6Mode {
    type Err = ();

    /// Case-insensitive.
    fn from_str(s: &str) -> Result<Self, ()> {
        [
            Ipv6Mode::Auto,
            Ipv6Mode::Slaac,
            Ipv6Mode::SlaacDhcpv6,
            Ipv6Mode::Dhcpv6,
        ]
        .into_iter()
        .find(|m| m.as_str().eq_ignore_ascii_case(s))
        .ok_or(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ipv6 {
    pub enable_ipv6: bool,
    pub mode: Ipv6Mode,
    pub ra_period: u32,
    pub rs_queue: Option<u16>,
    pub ns_queue: Option<u16>,
    pub dhcpv6_queue: Option<u16>,
    pub nameservers: Vec<Ipv6Addr>,
    pub domains: Vec<String>,
    /// 0, or from ra_period to 9000 seconds.
    pub router_lifetime: u32,
    pub prefix_valid_lifetime: u32,
    /// Never more than `prefix_valid_lifetime`.
    pub prefix_preferred_lifetime: u32,
    /// RDNSS/DNSSL lifetime; at least ra_period (3 x ra_period by default, as
    /// RFC 8106 recommends; a lower value is accepted with a warning).
    pub dns_lifetime: u32,
}

impl Default for Ipv6 {
    fn default() -> Self {
        let ra_period = 300;
        Ipv6 {
            enable_ipv6: false,
            mode: Ipv6Mode::Auto,
            ra_period,
            rs_queue: Some(43),
            ns_queue: Some(44),
            dhcpv6_queue: Some(45),
            nameservers: Vec::new(),
            domains: Vec::new(),
            router_lifetime: default_router_lifetime(ra_period),
            prefix_valid_lifetime: 2_592_000,
            prefix_preferred_lifetime: 604_800,
            dns_lifetime: 3 * ra_period,
        }
    }
}

fn default_router_lifetime(ra_period: u32) -> u32 {
    ra_period.saturating_mul(3).min(MAX_ROUTER_LIFETIME)
}

impl Ipv6 {
    /// The mode in force: `auto` resolved from the configured queues, and a
    /// check that the queues an explicit mode needs are set. The error is the
    /// problem text for `[ipv6] mode`.
    pub fn effective_mode(&self) -> Result<Ipv6Mode, String> {
        let rs = self.rs_queue.is_some();
        let d6 = self.dhcpv6_queue.is_some();
        match self.mode {
            Ipv6Mode::Auto if rs && d6 => Ok(Ipv6Mode::SlaacDhcpv6),
            Ipv6Mode::Auto if rs => Ok(Ipv6Mode::Slaac),
            Ipv6Mode::Auto => Err("auto needs at least rs_queue, but rs_queue is not set".into()),
            Ipv6Mode::Slaac if rs => Ok(Ipv6Mode::Slaac),
            Ipv6Mode::Slaac => Err("slaac needs rs_queue, but rs_queue is not set".into()),
            m @ (Ipv6Mode::SlaacDhcpv6 | Ipv6Mode::Dhcpv6) => {
                let missing = match (rs, d6) {
                    (true, true) => return Ok(m),
                    (false, true) => "rs_queue is",
                    (true, false) => "dhcpv6_queue is",
                    (false, false) => "rs_queue and dhcpv6_queue are",
                };
                Err(format!(
                    "{m} needs rs_queue and dhcpv6_queue, but {missing} not set"
                ))
            }
        }
    }

    /// Whether DHCPv6 is answered (mode slaac+dhcpv6 or dhcpv6), apart from
    /// `enable_ipv6`. A mode whose queues are missing counts as slaac, the
    /// mode that needs least; the loader refuses it when IPv6 is on.
    pub fn serves_dhcp6(&self) -> bool {
        matches!(
            self.effective_mode(),
            Ok(Ipv6Mode::SlaacDhcpv6 | Ipv6Mode::Dhcpv6)
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    Nautobot,
    Netbox,
}

impl BackendKind {
    /// Also the name of the backend's config section.
    pub fn as_str(self) -> &'static str {
        match self {
            BackendKind::Nautobot => "nautobot",
            BackendKind::Netbox => "netbox",
        }
    }
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for BackendKind {
    type Err = ();

    /// Case-insensitive.
    fn from_str(s: &str) -> Result<Self, ()> {
        [BackendKind::Nautobot, BackendKind::Netbox]
            .into_iter()
            .find(|b| b.as_str().eq_ignore_ascii_case(s))
            .ok_or(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relay {
    pub enable_relay: bool,
    /// Empty = all interfaces (`*`).
    pub interfaces: Vec<String>,
    pub port: u16,
    pub authoritative: bool,
    pub server_ident: Option<Ipv4Addr>,
    pub backend: BackendKind,
    pub lease_time: u32,
    pub nameservers: Vec<Ipv4Addr>,
    pub domain: Option<String>,
    /// Backend jobs queued or running, and DISCOVERs waiting for an offer
    /// place, at most; requests beyond are dropped.
    pub max_pending_jobs: usize,
    /// Offers (jobs running, addresses held for a client that has not asked
    /// for them yet) outstanding at most per subnet; new clients' DISCOVERs
    /// beyond wait. 0 = no limit.
    pub max_offers: usize,
}

impl Default for Relay {
    fn default() -> Self {
        Relay {
            enable_relay: false,
            interfaces: Vec::new(),
            port: 67,
            authoritative: false,
            server_ident: None,
            backend: BackendKind::Nautobot,
            lease_time: 3600,
            nameservers: Vec::new(),
            domain: None,
            max_pending_jobs: 2048,
            max_offers: 256,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendConf {
    /// Base URL without trailing `/`.
    pub url: Option<String>,
    pub token_file: Option<PathBuf>,
    pub prefix_roles: Vec<String>,
    pub reserved: u32,
    pub workers: usize,
    /// How long a worker waits, after a job, for others to run with it
    /// (milliseconds; 0: every job alone).
    pub batch_window_ms: u64,
    /// How long renewals of known leases wait for others (milliseconds).
    pub renewal_window_ms: u64,
    /// Most jobs one worker runs together.
    pub batch_size: usize,
    pub timeout_secs: u64,
    pub ca_file: Option<PathBuf>,
    pub allow_unknown_devices: bool,
}

impl Default for BackendConf {
    fn default() -> Self {
        BackendConf {
            url: None,
            token_file: None,
            prefix_roles: vec!["Server BMC".to_owned()],
            reserved: 5,
            workers: 4,
            batch_window_ms: 10,
            renewal_window_ms: 1000,
            batch_size: 32,
            timeout_secs: 10,
            ca_file: None,
            allow_unknown_devices: false,
        }
    }
}

impl Config {
    /// Reads and validates `path`. Warnings (deprecated keys) are returned beside the config.
    pub fn load(path: &Path) -> Result<(Config, Vec<String>), ConfigError> {
        let file = path.display().to_string();
        let text = reader::read_bounded(path).map_err(|p| ConfigError::whole_file(&file, p))?;
        Config::parse(&text, &file)
    }

    /// Parses config text; `file` is only used in error messages.
    pub fn parse(text: &str, file: &str) -> Result<(Config, Vec<String>), ConfigError> {
        let (sections, warnings) = reader::sections(text, file)?;
        validate::config(file, sections, warnings)
    }

    /// Settings of the backend `[relay] backend` selects.
    pub fn backend(&self) -> &BackendConf {
        match self.relay.backend {
            BackendKind::Nautobot => &self.nautobot,
            BackendKind::Netbox => &self.netbox,
        }
    }

    /// The NFQUEUE queues the daemon listens on, by key name: `dhcp_queue`
    /// when DHCP is enabled; when IPv6 is enabled `rs_queue`, `ns_queue` if
    /// set, and `dhcpv6_queue` if the effective mode serves DHCPv6.
    pub fn queues(&self) -> Vec<(&'static str, u16)> {
        let mut out = Vec::new();
        if self.dhcp.enable_dhcp {
            out.push(("dhcp_queue", self.dhcp.dhcp_queue));
        }
        if self.ipv6.enable_ipv6 {
            let dhcpv6 = self.ipv6.serves_dhcp6();
            let v6 = [
                ("rs_queue", self.ipv6.rs_queue),
                ("ns_queue", self.ipv6.ns_queue),
                ("dhcpv6_queue", self.ipv6.dhcpv6_queue.filter(|_| dhcpv6)),
            ];
            out.extend(v6.into_iter().filter_map(|(k, q)| Some((k, q?))));
        }
        out
    }
}

/// Control bytes (escape sequences, newlines) from a file shown as escapes,
/// so that a message stays one line and cannot drive a terminal.
pub fn escape_controls(s: &str) -> String {
    if !s.chars().any(char::is_control) {
        return s.to_owned();
    }
    s.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}
