//! `nfdhcpd.conf` (INI) -> typed [`Config`], with validation errors that name
//! file, section, key and problem.
//!
//! The format is the original nfdhcpd's: `[section]` headers, `key = value`
//! lines, `#` and `;` comments (also after a value), yes/no booleans and
//! comma-separated lists. Section and key names are case-insensitive. Unknown
//! sections and keys are warnings rather than errors, so that a file written
//! for a newer daemon still loads.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Read;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use configparser::ini::Ini;

use crate::core::boot::{self, BootConfig};
use crate::host::ratelimit::Limits;

pub const DEFAULT_PATH: &str = "/etc/nfdhcpd/nfdhcpd.conf";

/// Config files larger than this are refused unread.
pub const MAX_FILE_SIZE: u64 = 1024 * 1024;
/// Longest `[dhcp] domains` list: glibc's resolver has used at most six.
pub const MAX_SEARCH_DOMAINS: usize = 6;

/// RFC 4861 6.2.1: AdvDefaultLifetime is at most 9000 seconds.
pub const MAX_ROUTER_LIFETIME: u32 = 9000;

/// RFC 4861 6.2.1: MaxRtrAdvInterval is at most 1800 seconds.
pub const MAX_RA_PERIOD: u32 = 1800;

/// Linux interface names are at most 15 bytes (IFNAMSIZ - 1).
const MAX_IFNAME: usize = 15;

/// Name configparser gives to keys above the first section header. A newline
/// cannot occur in a header line, so no `[...]` in the file can collide with it.
const NO_SECTION: &str = "\n";

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
    /// Backend jobs queued or running at most; requests beyond are dropped.
    pub max_pending_jobs: usize,
    /// Offers (addresses held for a client that has not asked for them yet)
    /// outstanding at most per subnet; 0 = no limit.
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
            max_pending_jobs: 512,
            max_offers: 64,
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
            timeout_secs: 10,
            ca_file: None,
            allow_unknown_devices: false,
        }
    }
}

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
const BACKEND_KEYS: &[&str] = &[
    "url",
    "token_file",
    "prefix_roles",
    "reserved",
    "workers",
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

fn is_known_key(section: &str, key: &str) -> Option<bool> {
    let (_, keys) = KNOWN_KEYS.iter().find(|(s, _)| *s == section)?;
    Some(keys.contains(&key) || (section == "ipv6" && IPV6_DEPRECATED_KEYS.contains(&key)))
}

impl Config {
    /// Reads and validates `path`. Warnings (deprecated keys) are returned beside the config.
    pub fn load(path: &Path) -> Result<(Config, Vec<String>), ConfigError> {
        let file = path.display().to_string();
        let text = read_bounded(path).map_err(|p| ConfigError::whole_file(&file, p))?;
        Config::parse(&text, &file)
    }

    /// Parses config text; `file` is only used in error messages.
    pub fn parse(text: &str, file: &str) -> Result<(Config, Vec<String>), ConfigError> {
        if text.len() as u64 > MAX_FILE_SIZE {
            return Err(ConfigError::whole_file(file, "is larger than 1 MiB"));
        }
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let duplicates = duplicate_warnings(text, file);
        let mut ini = Ini::new();
        ini.set_comment_symbols(&['#', ';']);
        ini.set_inline_comment_symbols(Some(&['#', ';']));
        ini.set_default_section(NO_SECTION);
        ini.set_multiline(false);
        let map = ini
            .read(text.to_owned())
            .map_err(|e| ConfigError::whole_file(file, e))?;
        // Sorted, so that warnings come out in a stable order.
        let sections = map
            .into_iter()
            .map(|(s, keys)| (s, keys.into_iter().collect()))
            .collect();
        let mut r = Reader {
            file,
            sections,
            warnings: duplicates,
        };
        r.warn_unknown();
        let config = Config {
            general: r.general()?,
            dhcp: r.dhcp()?,
            ipv6: r.ipv6()?,
            relay: r.relay()?,
            nautobot: r.backend("nautobot")?,
            netbox: r.backend("netbox")?,
            limits: r.limits()?,
        };
        r.cross_check(&config)?;
        Ok((config, r.warnings))
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
            let dhcpv6 = !matches!(self.ipv6.effective_mode(), Ok(Ipv6Mode::Slaac));
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

/// What a path that is not a regular file is, for the error message.
pub fn file_kind(t: std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_block_device() || t.is_char_device() {
        "a device"
    } else if t.is_symlink() {
        "a symbolic link"
    } else {
        "not a regular file"
    }
}

/// Reads at most [`MAX_FILE_SIZE`] bytes of UTF-8 text; the error is the problem text.
fn read_bounded(path: &Path) -> Result<String, String> {
    use std::os::unix::fs::OpenOptionsExt;
    // Non-blocking, so that a FIFO or a device is refused rather than waited on.
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| format!("cannot read: {}", io_reason(&e)))?;
    let meta = f
        .metadata()
        .map_err(|e| format!("cannot read: {}", io_reason(&e)))?;
    if !meta.is_file() {
        return Err(format!(
            "is {}, not a regular file",
            file_kind(meta.file_type())
        ));
    }
    let mut buf = Vec::new();
    f.take(MAX_FILE_SIZE + 1)
        .read_to_end(&mut buf)
        .map_err(|e| format!("cannot read: {}", io_reason(&e)))?;
    if buf.len() as u64 > MAX_FILE_SIZE {
        return Err("is larger than 1 MiB".to_owned());
    }
    String::from_utf8(buf).map_err(|e| {
        format!(
            "is not UTF-8 text (bad byte at offset {})",
            e.utf8_error().valid_up_to()
        )
    })
}

/// Keys set twice in a section and sections that appear twice, each with
/// both line numbers. The parser keeps the last value of a key and merges
/// the keys of a repeated section.
fn duplicate_warnings(text: &str, file: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut sections: BTreeMap<String, usize> = BTreeMap::new();
    let mut keys: BTreeMap<(String, String), usize> = BTreeMap::new();
    let mut section = "-".to_owned();
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        let line = line.trim();
        if line.is_empty() || line.starts_with(['#', ';']) {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.split_once(']')) {
            section = name.0.trim().to_lowercase();
            if let Some(first) = sections.insert(section.clone(), n) {
                sections.insert(section.clone(), first);
                out.push(ConfigError {
                    file: file.to_owned(),
                    section: section.clone(),
                    key: "-".to_owned(),
                    problem: format!(
                        "section appears twice (lines {first} and {n}); their keys are merged"
                    ),
                });
            }
            continue;
        }
        let key = line
            .split(['=', ':'])
            .next()
            .unwrap_or(line)
            .trim()
            .to_lowercase();
        if let Some(first) = keys.insert((section.clone(), key.clone()), n) {
            out.push(ConfigError {
                file: file.to_owned(),
                section: section.clone(),
                key,
                problem: format!("set twice (lines {first} and {n}); line {n} is used"),
            });
        }
    }
    out.into_iter().map(|e| e.to_string()).collect()
}

/// `No such file or directory`, without the ` (os error 2)` std appends.
fn io_reason(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error ") {
        Some(i) => s[..i].to_owned(),
        None => s,
    }
}

/// A value quoted for an error message: escaped, so the message stays one
/// line, and shortened.
fn show(v: &str) -> String {
    const MAX: usize = 64;
    if v.chars().count() > MAX {
        let head: String = v.chars().take(MAX).collect();
        format!("{head:?}...")
    } else {
        format!("{v:?}")
    }
}

/// Strips one pair of surrounding quotes, as ConfigObj (the original's parser) did.
fn unquote(v: &str) -> &str {
    let v = v.trim();
    for q in ['"', '\''] {
        if let Some(inner) = v.strip_prefix(q).and_then(|r| r.strip_suffix(q)) {
            // `"a", "b"` is a list of two quoted items, not one quoted value.
            if !inner.contains(q) {
                return inner.trim();
            }
        }
    }
    v
}

fn parse_bool(v: &str) -> Option<bool> {
    const TRUE: &[&str] = &["yes", "true", "on", "1"];
    const FALSE: &[&str] = &["no", "false", "off", "0"];
    if TRUE.iter().any(|t| t.eq_ignore_ascii_case(v)) {
        Some(true)
    } else if FALSE.iter().any(|f| f.eq_ignore_ascii_case(v)) {
        Some(false)
    } else {
        None
    }
}

/// A DNS name: dot-separated labels of letters, digits, `-` and `_`. The
/// trailing dot of a fully qualified name is dropped.
fn domain_name(v: &str) -> Option<String> {
    let name = v.strip_suffix('.').unwrap_or(v);
    let label_ok = |l: &str| {
        (1..=63).contains(&l.len())
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    (!name.is_empty() && name.len() <= 253 && name.split('.').all(label_ok))
        .then(|| name.to_owned())
}

/// The kernel's rules for an interface name (`dev_valid_name`).
fn is_ifname(v: &str) -> bool {
    (1..=MAX_IFNAME).contains(&v.len())
        && v != "."
        && v != ".."
        && !v
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control())
}

fn is_unicast_v4(a: Ipv4Addr) -> bool {
    !a.is_unspecified() && !a.is_broadcast() && !a.is_multicast()
}

/// Returns the URL without trailing slashes; the error is the problem text.
fn check_url(v: &str) -> Result<String, String> {
    let lower = v.to_ascii_lowercase();
    let rest = lower
        .strip_prefix("https://")
        .or_else(|| lower.strip_prefix("http://"));
    match rest {
        None => Err(format!(
            "{} is not a URL starting with http:// or https://",
            show(v)
        )),
        Some(r) if r.is_empty() || r.starts_with('/') => {
            Err(format!("{} has no host name after the scheme", show(v)))
        }
        Some(_) if v.chars().any(|c| c.is_whitespace() || c.is_control()) => {
            Err(format!("{} contains spaces", show(v)))
        }
        Some(_) => Ok(v.trim_end_matches('/').to_owned()),
    }
}

/// A key as found in the file.
enum Val<'a> {
    Absent,
    /// `key =` with nothing (or only `""`) after it.
    Empty,
    Set(&'a str),
}

type Sections = BTreeMap<String, BTreeMap<String, Option<String>>>;

struct Reader<'a> {
    file: &'a str,
    sections: Sections,
    warnings: Vec<String>,
}

impl Reader<'_> {
    fn err(&self, section: &str, key: &str, problem: impl Into<String>) -> ConfigError {
        ConfigError {
            file: self.file.to_owned(),
            section: section.to_owned(),
            key: key.to_owned(),
            problem: problem.into(),
        }
    }

    /// Warnings have the same one-line shape as errors.
    fn warn(&mut self, section: &str, key: &str, problem: &str) {
        let line = self.err(section, key, problem).to_string();
        self.warnings.push(line);
    }

    fn warn_unknown(&mut self) {
        let mut found = Vec::new();
        for (section, keys) in &self.sections {
            if section == NO_SECTION {
                for key in keys.keys() {
                    found.push(("-".to_owned(), key.clone(), "outside any section, ignored"));
                }
                continue;
            }
            if keys.is_empty() && is_known_key(section, "").is_none() {
                found.push((section.clone(), "-".to_owned(), "unknown section, ignored"));
            }
            for key in keys.keys() {
                match is_known_key(section, key) {
                    None => found.push((section.clone(), key.clone(), "unknown section, ignored")),
                    Some(false) => {
                        found.push((section.clone(), key.clone(), "unknown key, ignored"))
                    }
                    Some(true) => {}
                }
            }
        }
        for (section, key, problem) in found {
            self.warn(&section, &key, problem);
        }
    }

    fn val(&self, section: &str, key: &str) -> Result<Val<'_>, ConfigError> {
        match self.sections.get(section).and_then(|s| s.get(key)) {
            None => Ok(Val::Absent),
            Some(None) => Err(self.err(section, key, "has no \"=\"; expected \"key = value\"")),
            Some(Some(v)) => match unquote(v) {
                "" => Ok(Val::Empty),
                v => Ok(Val::Set(v)),
            },
        }
    }

    fn present(&self, section: &str, key: &str) -> bool {
        !matches!(self.val(section, key), Ok(Val::Absent))
    }

    fn parse_num<T: TryFrom<u64>>(
        &self,
        section: &str,
        key: &str,
        v: &str,
        min: u64,
        max: u64,
    ) -> Result<T, ConfigError> {
        let bad = || {
            self.err(
                section,
                key,
                format!("{} is not a number from {min} to {max}", show(v)),
            )
        };
        let n: u64 = v.parse().map_err(|_| bad())?;
        if !(min..=max).contains(&n) {
            return Err(bad());
        }
        T::try_from(n).map_err(|_| bad())
    }

    /// A number in `min..=max`; `default` when the key is absent.
    fn num<T: TryFrom<u64>>(
        &self,
        section: &str,
        key: &str,
        default: T,
        min: u64,
        max: u64,
    ) -> Result<T, ConfigError> {
        match self.val(section, key)? {
            Val::Absent => Ok(default),
            Val::Empty => Err(self.err(
                section,
                key,
                format!("is empty; expected a number from {min} to {max}"),
            )),
            Val::Set(v) => self.parse_num(section, key, v, min, max),
        }
    }

    /// An NFQUEUE number: absent means `default`, empty means not configured.
    fn queue(
        &self,
        section: &str,
        key: &str,
        default: Option<u16>,
    ) -> Result<Option<u16>, ConfigError> {
        match self.val(section, key)? {
            Val::Absent => Ok(default),
            Val::Empty => Ok(None),
            Val::Set(v) => self
                .parse_num(section, key, v, 0, u16::MAX.into())
                .map(Some),
        }
    }

    fn boolean(&self, section: &str, key: &str, default: bool) -> Result<bool, ConfigError> {
        const EXPECTED: &str = "expected yes/no, true/false, on/off or 1/0";
        match self.val(section, key)? {
            Val::Absent => Ok(default),
            Val::Empty => Err(self.err(section, key, format!("is empty; {EXPECTED}"))),
            Val::Set(v) => parse_bool(v).ok_or_else(|| {
                self.err(
                    section,
                    key,
                    format!("{} is not a boolean; {EXPECTED}", show(v)),
                )
            }),
        }
    }

    /// Absent or empty: `None`.
    fn text(&self, section: &str, key: &str) -> Result<Option<&str>, ConfigError> {
        match self.val(section, key)? {
            Val::Absent | Val::Empty => Ok(None),
            Val::Set(v) => Ok(Some(v)),
        }
    }

    /// Paths must be absolute: the daemon changes directory to `/`.
    fn opt_path(&self, section: &str, key: &str) -> Result<Option<PathBuf>, ConfigError> {
        let Some(v) = self.text(section, key)? else {
            return Ok(None);
        };
        if !v.starts_with('/') {
            return Err(self.err(section, key, format!("{} is not an absolute path", show(v))));
        }
        Ok(Some(PathBuf::from(v)))
    }

    fn path(&self, section: &str, key: &str, default: PathBuf) -> Result<PathBuf, ConfigError> {
        if let Val::Empty = self.val(section, key)? {
            return Err(self.err(section, key, "is empty; expected an absolute path"));
        }
        Ok(self.opt_path(section, key)?.unwrap_or(default))
    }

    fn opt_ipv4(&self, section: &str, key: &str) -> Result<Option<Ipv4Addr>, ConfigError> {
        let Some(v) = self.text(section, key)? else {
            return Ok(None);
        };
        match v.parse::<Ipv4Addr>() {
            Ok(a) if is_unicast_v4(a) => Ok(Some(a)),
            Ok(_) => Err(self.err(
                section,
                key,
                format!("{} is not a unicast IPv4 address", show(v)),
            )),
            Err(_) => Err(self.err(section, key, format!("{} is not an IPv4 address", show(v)))),
        }
    }

    fn opt_domain(&self, section: &str, key: &str) -> Result<Option<String>, ConfigError> {
        let Some(v) = self.text(section, key)? else {
            return Ok(None);
        };
        domain_name(v)
            .map(Some)
            .ok_or_else(|| self.err(section, key, format!("{} is not a domain name", show(v))))
    }

    /// Comma-separated items, each trimmed and unquoted; empty items are
    /// skipped, so a trailing comma is harmless. `None` when absent.
    fn list(&self, section: &str, key: &str) -> Result<Option<Vec<&str>>, ConfigError> {
        Ok(match self.val(section, key)? {
            Val::Absent => None,
            Val::Empty => Some(Vec::new()),
            Val::Set(v) => Some(
                v.split(',')
                    .map(unquote)
                    .filter(|item| !item.is_empty())
                    .collect(),
            ),
        })
    }

    /// A list whose every item must pass `parse`; `what` names the item kind.
    fn typed_list<T>(
        &self,
        section: &str,
        key: &str,
        what: &str,
        parse: impl Fn(&str) -> Option<T>,
    ) -> Result<Vec<T>, ConfigError> {
        let items = self.list(section, key)?.unwrap_or_default();
        items
            .into_iter()
            .map(|item| {
                parse(item)
                    .ok_or_else(|| self.err(section, key, format!("{} is not {what}", show(item))))
            })
            .collect()
    }

    fn general(&mut self) -> Result<General, ConfigError> {
        const S: &str = "general";
        let d = General::default();
        let user = match self.text(S, "user")? {
            None => None,
            Some(u)
                if u.chars().any(|c| c.is_whitespace() || c.is_control())
                    || u.split(':').count() > 2
                    || u.split(':').any(str::is_empty) =>
            {
                return Err(self.err(
                    S,
                    "user",
                    format!(
                        "{} is not a user name or numeric uid, optionally followed by \
                         :group or :gid",
                        show(u)
                    ),
                ));
            }
            Some(u) => Some(u.to_owned()),
        };
        Ok(General {
            pidfile: self.path(S, "pidfile", d.pidfile)?,
            datapath: self.path(S, "datapath", d.datapath)?,
            logdir: self.opt_path(S, "logdir")?,
            user,
            metrics_file: self.opt_path(S, "metrics_file")?,
        })
    }

    fn dhcp(&mut self) -> Result<Dhcp, ConfigError> {
        const S: &str = "dhcp";
        let d = Dhcp::default();
        let max = u32::MAX.into();
        let lease_lifetime: u32 = self.num(S, "lease_lifetime", d.lease_lifetime, 2, max)?;
        // An unset renewal follows a short lease down instead of refusing it.
        let renewal_default = d.lease_renewal.min(lease_lifetime / 2);
        let lease_renewal: u32 = self.num(S, "lease_renewal", renewal_default, 1, max)?;
        if lease_renewal >= lease_lifetime {
            return Err(self.err(
                S,
                "lease_renewal",
                format!("{lease_renewal} is not less than lease_lifetime ({lease_lifetime})"),
            ));
        }
        Ok(Dhcp {
            enable_dhcp: self.boolean(S, "enable_dhcp", d.enable_dhcp)?,
            lease_lifetime,
            lease_renewal,
            server_ip: self.opt_ipv4(S, "server_ip")?,
            server_on_link: self.boolean(S, "server_on_link", d.server_on_link)?,
            dhcp_queue: self.num(S, "dhcp_queue", d.dhcp_queue, 0, u16::MAX.into())?,
            nameservers: self
                .typed_list(S, "nameservers", "an IPv4 address", |s| s.parse().ok())?,
            domain: self.opt_domain(S, "domain")?,
            domains: self.search_list(S)?,
            boot: BootConfig {
                next_server: self.boot_value(S, "next_server", boot::check_server)?,
                boot_file: self.boot_value(S, "boot_file", boot::check_file)?,
                uefi_boot_file: self.boot_value(S, "uefi_boot_file", boot::check_file)?,
                ipxe: self.boot_value(S, "ipxe", boot::check_file)?,
                http_boot: self.boot_value(S, "http_boot", boot::check_http_url)?,
            },
        })
    }

    /// `domains` of `[dhcp]`: at most [`MAX_SEARCH_DOMAINS`] names.
    fn search_list(&self, section: &str) -> Result<Vec<String>, ConfigError> {
        let domains = self.typed_list(section, "domains", "a domain name", domain_name)?;
        if domains.len() > MAX_SEARCH_DOMAINS {
            return Err(self.err(
                section,
                "domains",
                format!(
                    "lists {} names; at most {MAX_SEARCH_DOMAINS}",
                    domains.len()
                ),
            ));
        }
        Ok(domains)
    }

    /// A network boot value that passes `check` (see [`boot`]).
    fn boot_value(
        &self,
        section: &str,
        key: &str,
        check: fn(&str) -> Result<(), &'static str>,
    ) -> Result<Option<String>, ConfigError> {
        let Some(v) = self.text(section, key)? else {
            return Ok(None);
        };
        check(v).map_err(|p| self.err(section, key, format!("{} is {p}", show(v))))?;
        Ok(Some(v.to_owned()))
    }

    fn ipv6(&mut self) -> Result<Ipv6, ConfigError> {
        const S: &str = "ipv6";
        let d = Ipv6::default();
        let max = u32::MAX.into();

        let mode = match self.text(S, "mode")? {
            None => d.mode,
            Some(v) => v.parse().map_err(|()| {
                self.err(
                    S,
                    "mode",
                    format!(
                        "{} is not one of auto, slaac, slaac+dhcpv6, dhcpv6",
                        show(v)
                    ),
                )
            })?,
        };
        let ra_period: u32 = self.num(S, "ra_period", d.ra_period, 1, MAX_RA_PERIOD.into())?;

        let mut dhcpv6_queue = self.queue(S, "dhcpv6_queue", d.dhcpv6_queue)?;
        if self.present(S, "dhcp_queue") {
            if self.present(S, "dhcpv6_queue") {
                self.warn(
                    S,
                    "dhcp_queue",
                    "deprecated and ignored: dhcpv6_queue is set",
                );
            } else {
                dhcpv6_queue = self.queue(S, "dhcp_queue", d.dhcpv6_queue)?;
                self.warn(S, "dhcp_queue", "deprecated; use dhcpv6_queue");
            }
        }
        if self.present(S, "enable_dhcpv6") {
            if !self.boolean(S, "enable_dhcpv6", true)? {
                dhcpv6_queue = None;
            }
            self.warn(
                S,
                "enable_dhcpv6",
                "deprecated; use dhcpv6_queue (empty to disable DHCPv6)",
            );
        }

        let router_lifetime = match self.val(S, "router_lifetime")? {
            Val::Absent => default_router_lifetime(ra_period),
            _ => {
                let lt: u32 = self.num(S, "router_lifetime", 0, 0, MAX_ROUTER_LIFETIME.into())?;
                if lt != 0 && lt < ra_period {
                    return Err(self.err(
                        S,
                        "router_lifetime",
                        format!(
                            "{lt} is not 0 or a number from ra_period ({ra_period}) \
                             to {MAX_ROUTER_LIFETIME}"
                        ),
                    ));
                }
                lt
            }
        };

        let prefix_valid_lifetime: u32 =
            self.num(S, "prefix_valid_lifetime", d.prefix_valid_lifetime, 1, max)?;
        // An unset preferred lifetime follows a short valid lifetime down.
        let preferred_default = d.prefix_preferred_lifetime.min(prefix_valid_lifetime);
        let prefix_preferred_lifetime: u32 =
            self.num(S, "prefix_preferred_lifetime", preferred_default, 0, max)?;
        if prefix_preferred_lifetime > prefix_valid_lifetime {
            return Err(self.err(
                S,
                "prefix_preferred_lifetime",
                format!(
                    "{prefix_preferred_lifetime} is more than prefix_valid_lifetime \
                     ({prefix_valid_lifetime})"
                ),
            ));
        }

        // Below ra_period the DNS information would lapse between two RAs;
        // below 3 x ra_period a single lost RA does it (RFC 8106 5.1).
        let dns_lifetime: u32 =
            self.num(S, "dns_lifetime", 3 * ra_period, ra_period.into(), max)?;
        if dns_lifetime < 3 * ra_period {
            let problem = format!(
                "{dns_lifetime} is less than 3 x ra_period ({}); one lost RA lets the DNS \
                 information expire",
                3 * ra_period
            );
            self.warn(S, "dns_lifetime", &problem);
        }

        Ok(Ipv6 {
            enable_ipv6: self.boolean(S, "enable_ipv6", d.enable_ipv6)?,
            mode,
            ra_period,
            rs_queue: self.queue(S, "rs_queue", d.rs_queue)?,
            ns_queue: self.queue(S, "ns_queue", d.ns_queue)?,
            dhcpv6_queue,
            nameservers: self
                .typed_list(S, "nameservers", "an IPv6 address", |s| s.parse().ok())?,
            domains: self.typed_list(S, "domains", "a domain name", domain_name)?,
            router_lifetime,
            prefix_valid_lifetime,
            prefix_preferred_lifetime,
            dns_lifetime,
        })
    }

    fn relay(&mut self) -> Result<Relay, ConfigError> {
        const S: &str = "relay";
        let d = Relay::default();
        let items = self.list(S, "interfaces")?.unwrap_or_default();
        let interfaces = if items == ["*"] {
            Vec::new()
        } else {
            for item in &items {
                let problem = if *item == "*" {
                    "\"*\" (all interfaces) cannot be combined with interface names".to_owned()
                } else if !is_ifname(item) {
                    format!("{} is not an interface name", show(item))
                } else {
                    continue;
                };
                return Err(self.err(S, "interfaces", problem));
            }
            items.into_iter().map(str::to_owned).collect()
        };
        let backend = match self.text(S, "backend")? {
            None => d.backend,
            Some(v) => v.parse().map_err(|()| {
                self.err(
                    S,
                    "backend",
                    format!("{} is not one of nautobot, netbox", show(v)),
                )
            })?,
        };
        Ok(Relay {
            enable_relay: self.boolean(S, "enable_relay", d.enable_relay)?,
            interfaces,
            port: self.num(S, "port", d.port, 1, u16::MAX.into())?,
            authoritative: self.boolean(S, "authoritative", d.authoritative)?,
            server_ident: self.opt_ipv4(S, "server_ident")?,
            backend,
            lease_time: self.num(S, "lease_time", d.lease_time, 1, u32::MAX.into())?,
            nameservers: self
                .typed_list(S, "nameservers", "an IPv4 address", |s| s.parse().ok())?,
            domain: self.opt_domain(S, "domain")?,
            max_pending_jobs: self.num(S, "max_pending_jobs", d.max_pending_jobs, 1, 65_536)?,
            max_offers: self.num(S, "max_offers", d.max_offers, 0, 65_536)?,
        })
    }

    fn limits(&mut self) -> Result<Limits, ConfigError> {
        const S: &str = "limits";
        let d = Limits::default();
        Ok(Limits {
            interface_rate: self.num(S, "interface_rate", d.interface_rate, 0, 1_000_000)?,
            mac_rate: self.num(S, "mac_rate", d.mac_rate, 0, 1_000_000)?,
        })
    }

    fn backend(&mut self, section: &str) -> Result<BackendConf, ConfigError> {
        let d = BackendConf::default();
        let url = match self.text(section, "url")? {
            None => None,
            Some(v) => Some(check_url(v).map_err(|p| self.err(section, "url", p))?),
        };
        let prefix_roles = match self.list(section, "prefix_roles")? {
            None => d.prefix_roles,
            Some(roles) => roles.into_iter().map(str::to_owned).collect(),
        };
        Ok(BackendConf {
            url,
            token_file: self.opt_path(section, "token_file")?,
            prefix_roles,
            reserved: self.num(section, "reserved", d.reserved, 0, u32::MAX.into())?,
            workers: self.num(section, "workers", d.workers, 1, 64)?,
            timeout_secs: self.num(section, "timeout", d.timeout_secs, 1, 300)?,
            ca_file: self.opt_path(section, "ca_file")?,
            allow_unknown_devices: self.boolean(
                section,
                "allow_unknown_devices",
                d.allow_unknown_devices,
            )?,
        })
    }

    /// Rules that involve more than one key.
    fn cross_check(&mut self, c: &Config) -> Result<(), ConfigError> {
        if c.ipv6.enable_ipv6 {
            c.ipv6
                .effective_mode()
                .map_err(|p| self.err("ipv6", "mode", p))?;
        }

        let queues = c.queues();
        for (i, &(key, q)) in queues.iter().enumerate() {
            if let Some((other, _)) = queues.iter().take(i).find(|(_, o)| *o == q) {
                let section = if key == "dhcp_queue" { "dhcp" } else { "ipv6" };
                let other_section = if *other == "dhcp_queue" {
                    "dhcp"
                } else {
                    "ipv6"
                };
                return Err(self.err(
                    section,
                    key,
                    format!("queue {q} is already used by [{other_section}] {other}"),
                ));
            }
        }

        if c.relay.enable_relay {
            let name = c.relay.backend.as_str();
            let b = c.backend();
            if b.url.is_none() {
                return Err(self.err(
                    name,
                    "url",
                    format!("is not set; the relay needs it with backend = {name}"),
                ));
            }
            if b.prefix_roles.is_empty() {
                return Err(self.err(name, "prefix_roles", "is empty; no prefix would be served"));
            }
        }

        if !c.dhcp.enable_dhcp && !c.ipv6.enable_ipv6 && !c.relay.enable_relay {
            self.warn(
                "-",
                "-",
                "enable_dhcp, enable_ipv6 and enable_relay are all off; nothing to serve",
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The sample from the original nfdhcpd README, byte for byte (note the
    /// tab before `# 1 hour`).
    const ORIGINAL_SAMPLE: &str = "## nfdhcpd sample configuration file
## General options
[general]
pidfile = /var/run/nfdhcpd/nfdhcpd.pid
datapath = /var/lib/nfdhcpd # Where the client configuration will be read from
logdir = /var/log/nfdhcpd   # Where to write our logs
user = nobody # An unprivileged user to run as

## DHCP options
[dhcp]
enable_dhcp = yes
lease_lifetime = 604800 # 1 week
lease_renewal = 3600 \t# 1 hour
server_ip = 192.0.2.1
server_on_link = no
dhcp_queue = 42 # NFQUEUE number to listen on for DHCP requests
# IPv4 nameservers to include in DHCP responses
nameservers = 192.0.2.2, 192.0.2.3
# Optional domain to serve with the replies
domain = example.com

## IPv6-related functionality
[ipv6]
enable_ipv6 = yes
mode = auto
ra_period = 300 # seconds
rs_queue = 43 # NFQUEUE number to listen on for router solicitations
ns_queue = 44 # NFQUEUE number to listen on for neighbor solicitations
dhcpv6_queue = 45 # NFQUEUE number to listen on for DHCPv6 Information-Requests
# IPv6 nameservers to send using the ICMPv6 RA RDNSS option (RFC 5006)
# since it is not supported by several OS we serve them to DHCPv6 replies
nameservers = 2001:db8:100::1, 2001:db8:200::2
domains = example.com
";

    const SHIPPED_SAMPLE: &str = include_str!("../etc/nfdhcpd.conf");

    fn parse(text: &str) -> Result<(Config, Vec<String>), ConfigError> {
        Config::parse(text, "t.conf")
    }

    fn ok(text: &str) -> Config {
        match parse(text) {
            Ok((c, w)) => {
                assert!(w.is_empty(), "unexpected warnings: {w:?}");
                c
            }
            Err(e) => panic!("{e}"),
        }
    }

    fn err(text: &str) -> String {
        match parse(text) {
            Ok(c) => panic!("accepted: {c:?}"),
            Err(e) => e.to_string(),
        }
    }

    fn warnings(text: &str) -> Vec<String> {
        match parse(text) {
            Ok((_, w)) => w,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn original_sample_loads_unchanged() {
        assert!(ORIGINAL_SAMPLE.contains("3600 \t# 1 hour"));
        let c = ok(ORIGINAL_SAMPLE);
        assert_eq!(
            c.general,
            General {
                pidfile: "/var/run/nfdhcpd/nfdhcpd.pid".into(),
                datapath: "/var/lib/nfdhcpd".into(),
                logdir: Some("/var/log/nfdhcpd".into()),
                user: Some("nobody".into()),
                metrics_file: None,
            }
        );
        assert_eq!(
            c.dhcp,
            Dhcp {
                enable_dhcp: true,
                lease_lifetime: 604_800,
                lease_renewal: 3600,
                server_ip: Some(Ipv4Addr::new(192, 0, 2, 1)),
                server_on_link: false,
                dhcp_queue: 42,
                nameservers: vec![Ipv4Addr::new(192, 0, 2, 2), Ipv4Addr::new(192, 0, 2, 3)],
                domain: Some("example.com".into()),
                domains: Vec::new(),
                boot: BootConfig::default(),
            }
        );
        assert_eq!(
            c.ipv6,
            Ipv6 {
                enable_ipv6: true,
                mode: Ipv6Mode::Auto,
                ra_period: 300,
                rs_queue: Some(43),
                ns_queue: Some(44),
                dhcpv6_queue: Some(45),
                nameservers: vec![
                    "2001:db8:100::1".parse().unwrap(),
                    "2001:db8:200::2".parse().unwrap()
                ],
                domains: vec!["example.com".into()],
                router_lifetime: 900,
                prefix_valid_lifetime: 2_592_000,
                prefix_preferred_lifetime: 604_800,
                dns_lifetime: 900,
            }
        );
        assert_eq!(c.ipv6.effective_mode(), Ok(Ipv6Mode::SlaacDhcpv6));
        assert_eq!(c.relay, Relay::default());
        assert_eq!(c.nautobot, BackendConf::default());
        assert_eq!(c.netbox, BackendConf::default());
        assert_eq!(
            c.queues(),
            [
                ("dhcp_queue", 42),
                ("rs_queue", 43),
                ("ns_queue", 44),
                ("dhcpv6_queue", 45)
            ]
        );
    }

    #[test]
    fn shipped_sample_loads() {
        let c = ok(SHIPPED_SAMPLE);
        assert_eq!(c.general.pidfile, PathBuf::from("/run/nfdhcpd/nfdhcpd.pid"));
        assert_eq!(c.general.datapath, PathBuf::from("/var/lib/nfdhcpd"));
        assert_eq!(c.general.logdir, Some(PathBuf::from("/var/log/nfdhcpd")));
        assert_eq!(c.general.user.as_deref(), Some("nobody"));
        assert!(c.dhcp.enable_dhcp);
        assert!(c.ipv6.enable_ipv6);
        assert!(!c.relay.enable_relay);
        assert!(c.ipv6.effective_mode().is_ok());
        for a in &c.dhcp.nameservers {
            assert_eq!(&a.octets()[..3], &[192, 0, 2]);
        }
        for a in &c.ipv6.nameservers {
            assert_eq!(&a.segments()[..2], &[0x2001, 0xdb8]);
        }
    }

    /// Every key of every section is documented in the shipped sample.
    #[test]
    fn shipped_sample_documents_every_key() {
        let mut section = String::new();
        let mut seen = Vec::new();
        for line in SHIPPED_SAMPLE.lines() {
            let line = line.trim_start_matches(['#', ';', ' ']);
            if let Some(s) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                section = s.to_owned();
            } else if let Some((key, _)) = line.split_once(" =") {
                seen.push((section.clone(), key.to_owned()));
            }
        }
        for (s, keys) in KNOWN_KEYS {
            for k in *keys {
                assert!(
                    seen.iter().any(|(ss, kk)| ss == s && kk == k),
                    "[{s}] {k} is not in etc/nfdhcpd.conf"
                );
            }
        }
    }

    #[test]
    fn shipped_sample_loads_from_disk() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("etc/nfdhcpd.conf");
        let (c, w) = Config::load(&path).unwrap();
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(c, ok(SHIPPED_SAMPLE));
    }

    #[test]
    fn empty_file_gives_defaults() {
        let c = ok("");
        assert_eq!(c, Config::default());
        assert_eq!(c.general.pidfile, PathBuf::from("/run/nfdhcpd/nfdhcpd.pid"));
        assert_eq!(c.general.datapath, PathBuf::from("/var/lib/nfdhcpd"));
        assert_eq!(c.general.logdir, None);
        assert_eq!(c.general.user, None);
        assert!(c.dhcp.enable_dhcp);
        assert_eq!(
            (
                c.dhcp.lease_lifetime,
                c.dhcp.lease_renewal,
                c.dhcp.dhcp_queue
            ),
            (604_800, 600, 42)
        );
        assert!(!c.dhcp.server_on_link);
        assert!(!c.ipv6.enable_ipv6);
        assert_eq!(c.ipv6.mode, Ipv6Mode::Auto);
        assert_eq!(
            (c.ipv6.rs_queue, c.ipv6.ns_queue, c.ipv6.dhcpv6_queue),
            (Some(43), Some(44), Some(45))
        );
        assert_eq!(c.ipv6.ra_period, 300);
        assert_eq!(c.ipv6.router_lifetime, 900);
        assert_eq!(c.ipv6.dns_lifetime, 900);
        assert_eq!(c.ipv6.prefix_valid_lifetime, 2_592_000);
        assert_eq!(c.ipv6.prefix_preferred_lifetime, 604_800);
        assert!(!c.relay.enable_relay);
        assert!(c.relay.interfaces.is_empty());
        assert_eq!(c.relay.port, 67);
        assert_eq!(c.relay.lease_time, 3600);
        assert_eq!(c.relay.backend, BackendKind::Nautobot);
        assert_eq!(c.nautobot.prefix_roles, ["Server BMC"]);
        assert_eq!(
            (
                c.nautobot.reserved,
                c.nautobot.workers,
                c.nautobot.timeout_secs
            ),
            (5, 4, 10)
        );
        assert_eq!(c.queues(), [("dhcp_queue", 42)]);
    }

    #[test]
    fn error_lines() {
        let cases = [
            (
                "[dhcp]\nlease_lifetime = abc\n",
                "t.conf: [dhcp] lease_lifetime: \"abc\" is not a number from 2 to 4294967295",
            ),
            (
                "[relay]\nport = 0\n",
                "t.conf: [relay] port: \"0\" is not a number from 1 to 65535",
            ),
            (
                "[relay]\nport = abc\n",
                "t.conf: [relay] port: \"abc\" is not a number from 1 to 65535",
            ),
            (
                "[dhcp]\ndhcp_queue = 70000\n",
                "t.conf: [dhcp] dhcp_queue: \"70000\" is not a number from 0 to 65535",
            ),
            (
                "[dhcp]\nlease_lifetime = 3600\nlease_renewal = 3600\n",
                "t.conf: [dhcp] lease_renewal: 3600 is not less than lease_lifetime (3600)",
            ),
            (
                "[ipv6]\nra_period = 0\n",
                "t.conf: [ipv6] ra_period: \"0\" is not a number from 1 to 1800",
            ),
            (
                "[dhcp]\nnameservers = 192.0.2.1, 192.0.2.300\n",
                "t.conf: [dhcp] nameservers: \"192.0.2.300\" is not an IPv4 address",
            ),
            (
                "[ipv6]\nnameservers = 2001:db8::1, 192.0.2.1\n",
                "t.conf: [ipv6] nameservers: \"192.0.2.1\" is not an IPv6 address",
            ),
            (
                "[ipv6]\nmode = stateful\n",
                "t.conf: [ipv6] mode: \"stateful\" is not one of auto, slaac, slaac+dhcpv6, dhcpv6",
            ),
            (
                "[relay]\nbackend = phpipam\n",
                "t.conf: [relay] backend: \"phpipam\" is not one of nautobot, netbox",
            ),
            (
                "[dhcp]\nenable_dhcp = maybe\n",
                "t.conf: [dhcp] enable_dhcp: \"maybe\" is not a boolean; \
                 expected yes/no, true/false, on/off or 1/0",
            ),
            (
                "[dhcp]\nenable_dhcp =\n",
                "t.conf: [dhcp] enable_dhcp: is empty; expected yes/no, true/false, on/off or 1/0",
            ),
            (
                "[dhcp]\nserver_ip = 255.255.255.255\n",
                "t.conf: [dhcp] server_ip: \"255.255.255.255\" is not a unicast IPv4 address",
            ),
            (
                "[dhcp]\ndomain = exa mple.com\n",
                "t.conf: [dhcp] domain: \"exa mple.com\" is not a domain name",
            ),
            (
                "[general]\ndatapath = var/lib/nfdhcpd\n",
                "t.conf: [general] datapath: \"var/lib/nfdhcpd\" is not an absolute path",
            ),
            (
                "[general]\npidfile =\n",
                "t.conf: [general] pidfile: is empty; expected an absolute path",
            ),
            (
                "[dhcp]\nlease_lifetime\n",
                "t.conf: [dhcp] lease_lifetime: has no \"=\"; expected \"key = value\"",
            ),
            (
                "[nautobot]\nurl = nautobot.example.com\n",
                "t.conf: [nautobot] url: \"nautobot.example.com\" is not a URL \
                 starting with http:// or https://",
            ),
            (
                "[netbox]\nworkers = 65\n",
                "t.conf: [netbox] workers: \"65\" is not a number from 1 to 64",
            ),
            (
                "[nautobot]\ntimeout = 0\n",
                "t.conf: [nautobot] timeout: \"0\" is not a number from 1 to 300",
            ),
            (
                "[relay]\nenable_relay = yes\n",
                "t.conf: [nautobot] url: is not set; the relay needs it with backend = nautobot",
            ),
            (
                "[relay]\nenable_relay = yes\nbackend = netbox\n\
                 [nautobot]\nurl = https://nautobot.example.com\n",
                "t.conf: [netbox] url: is not set; the relay needs it with backend = netbox",
            ),
            (
                "[relay]\ninterfaces = eth0, *\n",
                "t.conf: [relay] interfaces: \"*\" (all interfaces) cannot be combined \
                 with interface names",
            ),
            (
                "[relay]\ninterfaces = eth0, averyveryverylongname\n",
                "t.conf: [relay] interfaces: \"averyveryverylongname\" is not an interface name",
            ),
            (
                "[ipv6]\nrouter_lifetime = 9001\n",
                "t.conf: [ipv6] router_lifetime: \"9001\" is not a number from 0 to 9000",
            ),
            (
                "[ipv6]\nrouter_lifetime = 100\n",
                "t.conf: [ipv6] router_lifetime: 100 is not 0 or a number from \
                 ra_period (300) to 9000",
            ),
            (
                "[ipv6]\ndns_lifetime = 299\n",
                "t.conf: [ipv6] dns_lifetime: \"299\" is not a number from 300 to 4294967295",
            ),
            (
                "[ipv6]\nprefix_valid_lifetime = 3600\nprefix_preferred_lifetime = 7200\n",
                "t.conf: [ipv6] prefix_preferred_lifetime: 7200 is more than \
                 prefix_valid_lifetime (3600)",
            ),
            (
                "[general]\nuser = no body\n",
                "t.conf: [general] user: \"no body\" is not a user name or numeric uid, \
                 optionally followed by :group or :gid",
            ),
            (
                "[dhcp\nenable_dhcp = yes\n",
                "t.conf: [-] -: line 1: Found opening bracket for section name \
                 but no closing bracket",
            ),
        ];
        for (text, want) in cases {
            assert_eq!(err(text), want, "for {text:?}");
        }
    }

    #[test]
    fn network_boot_defaults_and_search_list() {
        let c = ok(
            "[dhcp]\nnext_server = 192.0.2.1\nboot_file = undionly.kpxe\n\
                    uefi_boot_file = ipxe.efi\nipxe = http://192.0.2.1/boot.ipxe\n\
                    http_boot = http://192.0.2.1/bootx64.efi\n\
                    domains = example.com, vm.example.com.\n",
        );
        assert_eq!(
            c.dhcp.boot,
            BootConfig {
                next_server: Some("192.0.2.1".into()),
                boot_file: Some("undionly.kpxe".into()),
                uefi_boot_file: Some("ipxe.efi".into()),
                ipxe: Some("http://192.0.2.1/boot.ipxe".into()),
                http_boot: Some("http://192.0.2.1/bootx64.efi".into()),
            }
        );
        assert_eq!(c.dhcp.domains, ["example.com", "vm.example.com"]);
        assert!(ok("").dhcp.boot.is_empty());
        for (text, want) in [
            (
                "[dhcp]\nnext_server = boot server\n",
                "t.conf: [dhcp] next_server: \"boot server\" is not an IPv4 address or host name",
            ),
            (
                "[dhcp]\nboot_file = a\u{1}b\n",
                "t.conf: [dhcp] boot_file: \"a\\u{1}b\" is not printable ASCII without spaces",
            ),
            (
                "[dhcp]\nhttp_boot = tftp://x/y\n",
                "t.conf: [dhcp] http_boot: \"tftp://x/y\" is not a URL starting with \
                 http:// or https://",
            ),
            (
                "[dhcp]\ndomains = a.example, -b.example\n",
                "t.conf: [dhcp] domains: \"-b.example\" is not a domain name",
            ),
            (
                "[dhcp]\ndomains = a, b, c, d, e, f, g\n",
                "t.conf: [dhcp] domains: lists 7 names; at most 6",
            ),
        ] {
            assert_eq!(err(text), want, "for {text:?}");
        }
        let long = format!("[dhcp]\nipxe = http://h/{}\n", "x".repeat(250));
        assert!(
            err(&long).ends_with("is longer than 255 bytes"),
            "{}",
            err(&long)
        );
    }

    #[test]
    fn error_fields() {
        let e = parse("[DHCP]\nLease_Renewal = x\n").unwrap_err();
        assert_eq!(
            (e.file.as_str(), e.section.as_str(), e.key.as_str()),
            ("t.conf", "dhcp", "lease_renewal")
        );
        assert!(!e.to_string().contains('\n'));
        // A value with control characters is escaped, so the line stays one line.
        let e = err("[dhcp]\ndomain = a\u{1b}b\n");
        assert!(e.ends_with("\"a\\u{1b}b\" is not a domain name"), "{e}");
    }

    #[test]
    fn unreadable_files() {
        let e = Config::load(Path::new("/nonexistent/nfdhcpd.conf")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "/nonexistent/nfdhcpd.conf: [-] -: cannot read: No such file or directory"
        );

        let dir = std::env::temp_dir().join(format!("nfdhcpd-config-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let big = dir.join("big.conf");
        std::fs::write(&big, "#".repeat(MAX_FILE_SIZE as usize + 1)).unwrap();
        let e = Config::load(&big).unwrap_err();
        assert_eq!(e.problem, "is larger than 1 MiB");
        let bin = dir.join("bin.conf");
        std::fs::write(&bin, b"[general]\nuser = \xff\n").unwrap();
        let e = Config::load(&bin).unwrap_err();
        assert_eq!((e.section.as_str(), e.key.as_str()), ("-", "-"));
        assert!(e.problem.starts_with("is not UTF-8 text"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();

        let e = parse(&"#".repeat(MAX_FILE_SIZE as usize + 1)).unwrap_err();
        assert_eq!(e.to_string(), "t.conf: [-] -: is larger than 1 MiB");
    }

    #[test]
    fn deprecated_names() {
        let (c, w) = parse("[ipv6]\ndhcp_queue = 50\n").unwrap();
        assert_eq!(c.ipv6.dhcpv6_queue, Some(50));
        assert_eq!(
            w,
            ["t.conf: [ipv6] dhcp_queue: deprecated; use dhcpv6_queue"]
        );

        let (c, w) = parse("[ipv6]\ndhcp_queue = 50\ndhcpv6_queue = 51\n").unwrap();
        assert_eq!(c.ipv6.dhcpv6_queue, Some(51));
        assert_eq!(
            w,
            ["t.conf: [ipv6] dhcp_queue: deprecated and ignored: dhcpv6_queue is set"]
        );

        let (c, w) = parse("[ipv6]\nenable_dhcpv6 = no\n").unwrap();
        assert_eq!(c.ipv6.dhcpv6_queue, None);
        assert_eq!(
            w,
            ["t.conf: [ipv6] enable_dhcpv6: deprecated; use dhcpv6_queue (empty to disable DHCPv6)"]
        );

        let (c, w) = parse("[ipv6]\nenable_dhcpv6 = yes\n").unwrap();
        assert_eq!(c.ipv6.dhcpv6_queue, Some(45));
        assert_eq!(w.len(), 1);

        assert_eq!(
            err("[ipv6]\nenable_dhcpv6 = perhaps\n"),
            "t.conf: [ipv6] enable_dhcpv6: \"perhaps\" is not a boolean; \
             expected yes/no, true/false, on/off or 1/0"
        );
        assert_eq!(
            err("[ipv6]\ndhcp_queue = x\n"),
            "t.conf: [ipv6] dhcp_queue: \"x\" is not a number from 0 to 65535"
        );
    }

    #[test]
    fn unknown_sections_and_keys_warn() {
        let w =
            warnings("top = 1\n[general]\nfoo = 1\n[extra]\nbar = 2\n[empty]\n[dhcp]\nBaz = 3\n");
        assert_eq!(
            w,
            [
                "t.conf: [-] top: outside any section, ignored",
                "t.conf: [dhcp] baz: unknown key, ignored",
                "t.conf: [empty] -: unknown section, ignored",
                "t.conf: [extra] bar: unknown section, ignored",
                "t.conf: [general] foo: unknown key, ignored",
            ]
        );
        // Deprecated names are not also reported as unknown.
        assert_eq!(warnings("[ipv6]\ndhcp_queue = 45\n").len(), 1);
    }

    #[test]
    fn inline_comments() {
        let c = ok("[dhcp]\n\
             lease_lifetime = 7200\t# two hours\n\
             lease_renewal = 3600 \t# 1 hour\n\
             dhcp_queue = 12 ; old-style comment\n\
             ; a whole-line comment\n\
             \t# an indented comment\n\
             domain = example.org# no space before the comment\n");
        assert_eq!(c.dhcp.lease_lifetime, 7200);
        assert_eq!(c.dhcp.lease_renewal, 3600);
        assert_eq!(c.dhcp.dhcp_queue, 12);
        assert_eq!(c.dhcp.domain.as_deref(), Some("example.org"));
    }

    #[test]
    fn user_forms() {
        for u in ["root", "0", "nobody", "1234", "1234:1234", "nobody:nogroup"] {
            let c = ok(&format!("[general]\nuser = {u}\n"));
            assert_eq!(c.general.user.as_deref(), Some(u));
        }
        for u in ["a:b:c", ":1", "1:", "a b"] {
            let e = err(&format!("[general]\nuser = {u}\n"));
            assert!(e.starts_with("t.conf: [general] user: "), "{e}");
        }
    }

    #[test]
    fn duplicates_warn_with_both_lines() {
        let (c, w) = parse(
            "[dhcp]\nlease_lifetime = 600\n[general]\nuser = nobody\n\
             [DHCP]\nLease_Lifetime = 900\nenable_dhcp = yes\n",
        )
        .unwrap();
        assert_eq!(c.dhcp.lease_lifetime, 900, "the last value is used");
        assert_eq!(c.general.user.as_deref(), Some("nobody"));
        assert_eq!(
            w,
            vec![
                "t.conf: [dhcp] -: section appears twice (lines 1 and 5); their keys are merged",
                "t.conf: [dhcp] lease_lifetime: set twice (lines 2 and 6); line 6 is used",
            ]
        );
        assert!(warnings("[dhcp]\nlease_lifetime = 600\n").is_empty());
    }

    #[test]
    fn control_bytes_are_escaped() {
        let (_, w) = parse("[general]\n\x1b[31mkey = 1\n").unwrap();
        assert_eq!(w.len(), 1);
        assert!(!w[0].contains('\x1b'), "{:?}", w[0]);
        assert!(w[0].contains("\\u{1b}[31mkey"), "{:?}", w[0]);
        let e = err("[relay]\nport = \x07\x1b]0;x\n");
        assert!(!e.chars().any(char::is_control), "{e:?}");
    }

    #[test]
    fn only_regular_files_are_read() {
        let dir = std::env::temp_dir().join(format!("nfdhcpd-fifo-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let fifo = dir.join("fifo.conf");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        // Nobody writes to it: a blocking open would never return.
        let e = Config::load(&fifo).unwrap_err();
        assert_eq!(e.problem, "is a FIFO, not a regular file");
        let e = Config::load(&dir).unwrap_err();
        assert_eq!(e.problem, "is a directory, not a regular file");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn names_are_case_insensitive() {
        let c = ok(
            "[DHCP]\nEnable_DHCP = NO\nDHCP_Queue = 7\n[IPv6]\nENABLE_IPV6 = On\nMode = SLAAC\n\
             [Relay]\nBackend = NetBox\n",
        );
        assert!(!c.dhcp.enable_dhcp);
        assert_eq!(c.dhcp.dhcp_queue, 7);
        assert!(c.ipv6.enable_ipv6);
        assert_eq!(c.ipv6.mode, Ipv6Mode::Slaac);
        assert_eq!(c.relay.backend, BackendKind::Netbox);
    }

    #[test]
    fn booleans() {
        for (v, want) in [
            ("yes", true),
            ("YES", true),
            ("true", true),
            ("True", true),
            ("on", true),
            ("1", true),
            ("no", false),
            ("No", false),
            ("false", false),
            ("off", false),
            ("OFF", false),
            ("0", false),
        ] {
            let c = ok(&format!("[dhcp]\nserver_on_link = {v}\n"));
            assert_eq!(c.dhcp.server_on_link, want, "{v}");
        }
        assert!(err("[dhcp]\nserver_on_link = 2\n").contains("is not a boolean"));
    }

    #[test]
    fn lists_and_empty_values() {
        let c = ok(
            "[dhcp]\nnameservers = 192.0.2.1 ,192.0.2.2,\t192.0.2.3 ,\ndomain =\n\
             server_ip =\n[ipv6]\nnameservers =\ndomains = example.com, example.org.\n\
             [general]\nlogdir =\nuser = \"\"\n",
        );
        assert_eq!(c.dhcp.nameservers.len(), 3);
        assert_eq!(c.dhcp.domain, None);
        assert_eq!(c.dhcp.server_ip, None);
        assert!(c.ipv6.nameservers.is_empty());
        assert_eq!(c.ipv6.domains, ["example.com", "example.org"]);
        assert_eq!(c.general.logdir, None);
        assert_eq!(c.general.user, None);

        let c = ok("[nautobot]\nprefix_roles = \"Server BMC\", 'Out of band'\n\
             [netbox]\nprefix_roles = BMC\n[relay]\ninterfaces = vlan100, eth1\n");
        assert_eq!(c.nautobot.prefix_roles, ["Server BMC", "Out of band"]);
        assert_eq!(c.netbox.prefix_roles, ["BMC"]);
        assert_eq!(c.relay.interfaces, ["vlan100", "eth1"]);

        for v in ["*", "", " * "] {
            let c = ok(&format!("[relay]\ninterfaces = {v}\n"));
            assert!(c.relay.interfaces.is_empty(), "{v:?}");
        }
    }

    #[test]
    fn quoted_values() {
        let c = ok("[general]\nuser = \"daemon\"\n[dhcp]\nlease_lifetime = '7200'\n");
        assert_eq!(c.general.user.as_deref(), Some("daemon"));
        assert_eq!(c.dhcp.lease_lifetime, 7200);
    }

    #[test]
    fn ipv6_queues_absent_empty_and_set() {
        let c = ok("[ipv6]\nrs_queue =\nns_queue = 0\n");
        assert_eq!(c.ipv6.rs_queue, None);
        assert_eq!(c.ipv6.ns_queue, Some(0));
        assert_eq!(c.ipv6.dhcpv6_queue, Some(45));
    }

    #[test]
    fn ipv6_mode_resolution() {
        let v6 = |mode, rs, d6| Ipv6 {
            mode,
            rs_queue: rs,
            dhcpv6_queue: d6,
            ..Ipv6::default()
        };
        use Ipv6Mode::*;
        assert_eq!(v6(Auto, Some(1), Some(2)).effective_mode(), Ok(SlaacDhcpv6));
        assert_eq!(v6(Auto, Some(1), None).effective_mode(), Ok(Slaac));
        assert_eq!(
            v6(Auto, None, Some(2)).effective_mode(),
            Err("auto needs at least rs_queue, but rs_queue is not set".into())
        );
        assert_eq!(v6(Slaac, Some(1), Some(2)).effective_mode(), Ok(Slaac));
        assert_eq!(
            v6(Slaac, None, Some(2)).effective_mode(),
            Err("slaac needs rs_queue, but rs_queue is not set".into())
        );
        assert_eq!(
            v6(SlaacDhcpv6, Some(1), Some(2)).effective_mode(),
            Ok(SlaacDhcpv6)
        );
        assert_eq!(v6(Dhcpv6, Some(1), Some(2)).effective_mode(), Ok(Dhcpv6));
        assert_eq!(
            v6(SlaacDhcpv6, Some(1), None).effective_mode(),
            Err("slaac+dhcpv6 needs rs_queue and dhcpv6_queue, but dhcpv6_queue is not set".into())
        );
        assert_eq!(
            v6(Dhcpv6, None, None).effective_mode(),
            Err(
                "dhcpv6 needs rs_queue and dhcpv6_queue, but rs_queue and dhcpv6_queue are not set"
                    .into()
            )
        );
    }

    #[test]
    fn ipv6_mode_errors_only_when_enabled() {
        assert_eq!(
            err("[ipv6]\nenable_ipv6 = yes\nmode = dhcpv6\ndhcpv6_queue =\n"),
            "t.conf: [ipv6] mode: dhcpv6 needs rs_queue and dhcpv6_queue, \
             but dhcpv6_queue is not set"
        );
        assert_eq!(
            err("[ipv6]\nenable_ipv6 = yes\nrs_queue =\n"),
            "t.conf: [ipv6] mode: auto needs at least rs_queue, but rs_queue is not set"
        );
        ok("[ipv6]\nenable_ipv6 = no\nmode = dhcpv6\ndhcpv6_queue =\n");

        let c = ok("[ipv6]\nenable_ipv6 = yes\nmode = slaac\n");
        assert_eq!(c.ipv6.effective_mode(), Ok(Ipv6Mode::Slaac));
        // In slaac mode nothing listens on the DHCPv6 queue.
        assert_eq!(
            c.queues(),
            [("dhcp_queue", 42), ("rs_queue", 43), ("ns_queue", 44)]
        );
    }

    #[test]
    fn duplicate_queues() {
        assert_eq!(
            err("[dhcp]\ndhcp_queue = 43\n[ipv6]\nenable_ipv6 = yes\n"),
            "t.conf: [ipv6] rs_queue: queue 43 is already used by [dhcp] dhcp_queue"
        );
        assert_eq!(
            err("[ipv6]\nenable_ipv6 = yes\nns_queue = 45\n"),
            "t.conf: [ipv6] dhcpv6_queue: queue 45 is already used by [ipv6] ns_queue"
        );
        // Queues of disabled services, and unset queues, do not collide.
        ok("[dhcp]\nenable_dhcp = no\ndhcp_queue = 43\n[ipv6]\nenable_ipv6 = yes\n");
        ok("[dhcp]\ndhcp_queue = 43\n[ipv6]\nenable_ipv6 = no\n");
        ok("[ipv6]\nenable_ipv6 = yes\nns_queue =\ndhcpv6_queue =\n");
        ok("[ipv6]\nenable_ipv6 = yes\nmode = slaac\ndhcpv6_queue = 44\n");
    }

    #[test]
    fn lifetimes() {
        let c = ok("[ipv6]\nra_period = 1800\n");
        assert_eq!((c.ipv6.router_lifetime, c.ipv6.dns_lifetime), (5400, 5400));
        let c = ok("[ipv6]\nra_period = 10\nrouter_lifetime = 0\n");
        assert_eq!((c.ipv6.router_lifetime, c.ipv6.dns_lifetime), (0, 30));
        let c = ok("[ipv6]\nprefix_valid_lifetime = 3600\n");
        assert_eq!(c.ipv6.prefix_preferred_lifetime, 3600);
        let c = ok("[dhcp]\nlease_lifetime = 300\n");
        assert_eq!(c.dhcp.lease_renewal, 150);

        let (c, w) = parse("[ipv6]\ndns_lifetime = 600\n").unwrap();
        assert_eq!(c.ipv6.dns_lifetime, 600);
        assert_eq!(
            w,
            [
                "t.conf: [ipv6] dns_lifetime: 600 is less than 3 x ra_period (900); \
              one lost RA lets the DNS information expire"
            ]
        );
    }

    #[test]
    fn relay_and_backends() {
        let c = ok(
            "[relay]\nenable_relay = yes\ninterfaces = eth0\nport = 1067\n\
             authoritative = yes\nserver_ident = 192.0.2.10\nlease_time = 600\n\
             nameservers = 192.0.2.53\ndomain = bmc.example.com\n\
             [nautobot]\nurl = https://nautobot.example.com/\n\
             token_file = /etc/nfdhcpd/nautobot.token\nreserved = 10\nworkers = 8\n\
             timeout = 30\nca_file = /etc/ssl/certs/ca.pem\nallow_unknown_devices = yes\n",
        );
        assert!(c.relay.enable_relay && c.relay.authoritative);
        assert_eq!(c.relay.port, 1067);
        assert_eq!(c.relay.server_ident, Some(Ipv4Addr::new(192, 0, 2, 10)));
        assert_eq!(c.backend(), &c.nautobot);
        assert_eq!(
            c.nautobot,
            BackendConf {
                url: Some("https://nautobot.example.com".into()),
                token_file: Some("/etc/nfdhcpd/nautobot.token".into()),
                prefix_roles: vec!["Server BMC".into()],
                reserved: 10,
                workers: 8,
                timeout_secs: 30,
                ca_file: Some("/etc/ssl/certs/ca.pem".into()),
                allow_unknown_devices: true,
            }
        );
        assert!(err("[netbox]\nurl = https://\n").contains("has no host name"));
        assert!(err("[netbox]\nurl = ftp://x\n").contains("http:// or https://"));
        assert_eq!(
            err("[relay]\nenable_relay = yes\n[nautobot]\nurl = http://n\nprefix_roles =\n"),
            "t.conf: [nautobot] prefix_roles: is empty; no prefix would be served"
        );
    }

    #[test]
    fn nothing_enabled_warns() {
        let w = warnings("[dhcp]\nenable_dhcp = no\n");
        assert_eq!(
            w,
            [
                "t.conf: [-] -: enable_dhcp, enable_ipv6 and enable_relay are all off; \
              nothing to serve"
            ]
        );
    }

    #[test]
    fn byte_order_mark_is_ignored() {
        let c = ok("\u{feff}[dhcp]\ndhcp_queue = 5\n");
        assert_eq!(c.dhcp.dhcp_queue, 5);
    }

    /// Every prefix of the samples, and a few hostile lines, parse or fail
    /// without panicking.
    #[test]
    fn never_panics() {
        for sample in [ORIGINAL_SAMPLE, SHIPPED_SAMPLE] {
            for (i, _) in sample.char_indices() {
                let _ = parse(&sample[..i]);
            }
        }
        for text in [
            "[",
            "]",
            "[]",
            "[]]\n=",
            "=",
            " = x",
            "[dhcp]\n=1",
            "[dhcp]\n:",
            "[dhcp]\nlease_lifetime = 99999999999999999999999",
            "[dhcp]\nlease_lifetime = -1",
            "[dhcp]\nnameservers = ,,,",
            "[ipv6]\nra_period = 1800\nrouter_lifetime = 9000\ndns_lifetime = 4294967295",
            "[relay]\ninterfaces = \u{10ffff}",
            "[dhcp]\ndomain = \u{e9}.com",
            "[nautobot]\nurl = HTTPS://\u{e9}",
            "\0\0\0",
        ] {
            let _ = parse(text);
        }
    }
}
