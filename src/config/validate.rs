//! Raw values -> typed [`Config`]: one function per kind of value and one
//! per section, then the rules that involve more than one key.

use std::net::Ipv4Addr;
use std::path::PathBuf;

use crate::core::boot::{self, BootConfig};
use crate::host::ratelimit::Limits;

use super::reader::Sections;
use super::values::{check_url, domain_name, is_ifname, is_unicast_v4, parse_bool, show, unquote};
use super::{
    default_router_lifetime, BackendConf, Config, ConfigError, Dhcp, General, Ipv6, Relay,
    MAX_RA_PERIOD, MAX_ROUTER_LIFETIME, MAX_SEARCH_DOMAINS,
};

/// Validates every section; `warnings` (from reading) come first in the
/// warnings returned beside the config.
pub(super) fn config(
    file: &str,
    sections: Sections,
    warnings: Vec<String>,
) -> Result<(Config, Vec<String>), ConfigError> {
    let mut v = Validator {
        file,
        sections,
        warnings,
    };
    let config = Config {
        general: v.general()?,
        dhcp: v.dhcp()?,
        ipv6: v.ipv6()?,
        relay: v.relay()?,
        nautobot: v.backend("nautobot")?,
        netbox: v.backend("netbox")?,
        limits: v.limits()?,
    };
    v.cross_check(&config)?;
    Ok((config, v.warnings))
}

/// A key as found in the file.
enum Val<'a> {
    Absent,
    /// `key =` with nothing (or only `""`) after it.
    Empty,
    Set(&'a str),
}

struct Validator<'a> {
    file: &'a str,
    sections: Sections,
    warnings: Vec<String>,
}

impl Validator<'_> {
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
            batch_window_ms: self.num(section, "batch_window", d.batch_window_ms, 0, 1000)?,
            renewal_window_ms: self.num(
                section,
                "renewal_window",
                d.renewal_window_ms,
                0,
                10_000,
            )?,
            batch_size: self.num(section, "batch_size", d.batch_size, 1, 256)?,
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
