//! Binding files: one per guest interface, `KEY=VALUE` lines, written by the
//! VM manager into `datapath`. The file name is the host-side interface name.

use std::net::{Ipv4Addr, Ipv6Addr};

use ipnet::{Ipv4Net, Ipv6Net};

use crate::core::boot::{self, BootConfig};
use crate::core::mac::MacAddr;

/// Files larger than this are refused unread: a binding is a few hundred bytes.
pub const MAX_FILE_SIZE: u64 = 64 * 1024;

/// Linux interface names are at most 15 bytes (IFNAMSIZ - 1).
const MAX_IFNAME: usize = 15;

/// What the guest on one interface owns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// The file name: the interface the guest's packets arrive on (tapN).
    pub name: String,
    /// Interface whose MAC is the source of replies (INDEV, default `name`).
    pub indev: String,
    pub mac: MacAddr,
    pub hostname: String,
    pub ip: Option<Ipv4Addr>,
    pub tags: Vec<String>,
    pub gateway: Option<Ipv4Addr>,
    pub subnet: Option<Ipv4Net>,
    pub gateway6: Option<Ipv6Addr>,
    pub subnet6: Option<Ipv6Net>,
    pub eui64: Option<Ipv6Addr>,
    /// Stateful DHCPv6 address (IP6=); the EUI64 address when unset.
    pub ip6: Option<Ipv6Addr>,
    /// No default router is handed out.
    pub private: bool,
    pub mtu: Option<u16>,
    /// Do not check the source MAC of requests.
    pub macspoof: bool,
    /// Network boot (NEXT_SERVER, BOOT_FILE, UEFI_BOOT_FILE, IPXE,
    /// HTTP_BOOT); unset keys take the `[dhcp]` defaults. None without
    /// any: most bindings have none, and bindings travel in events.
    pub boot: Option<Box<BootConfig>>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BindingError {
    #[error("file name {0:?} is not an interface name")]
    BadName(String),
    #[error("not UTF-8 text")]
    NotText,
    #[error("larger than {MAX_FILE_SIZE} bytes")]
    TooLarge,
    #[error("no {0} key")]
    Missing(&'static str),
    #[error("{key}={value:?}: {problem}")]
    BadValue {
        key: &'static str,
        value: String,
        problem: &'static str,
    },
    /// A value that reads well but contradicts another key.
    #[error("{key}={value}: {problem}")]
    Inconsistent {
        key: &'static str,
        value: String,
        problem: String,
    },
}

/// Names the watcher skips: dot-files, editor backups and temporary files.
pub fn is_ignored_name(name: &str) -> bool {
    name.starts_with('.')
        || name.ends_with('~')
        || name.ends_with(".tmp")
        || name.ends_with(".swp")
        || name.ends_with(".swx")
        || name.ends_with(".dpkg-new")
        || name.ends_with(".dpkg-old")
        || name.ends_with(".dpkg-dist")
        || (name.starts_with('#') && name.ends_with('#'))
}

fn unquote(v: &str) -> &str {
    let v = v.trim();
    for q in ['"', '\''] {
        if let Some(inner) = v.strip_prefix(q).and_then(|r| r.strip_suffix(q)) {
            return inner.trim();
        }
    }
    v
}

fn bad(key: &'static str, value: &str, problem: &'static str) -> BindingError {
    BindingError::BadValue {
        key,
        value: value.chars().take(64).collect(),
        problem,
    }
}

fn parse_val<T: std::str::FromStr>(
    key: &'static str,
    v: &str,
    problem: &'static str,
) -> Result<T, BindingError> {
    v.parse().map_err(|_| bad(key, v, problem))
}

/// A boot value that passes `check`.
fn boot_value(
    key: &'static str,
    v: &str,
    check: fn(&str) -> Result<(), &'static str>,
) -> Result<String, BindingError> {
    check(v).map_err(|p| bad(key, v, p))?;
    Ok(v.to_string())
}

/// Parses the bytes of binding file `name`.
pub fn parse(name: &str, bytes: &[u8]) -> Result<Binding, BindingError> {
    if name.is_empty()
        || name.len() > MAX_IFNAME
        || name.contains(['/', ' ', '\t', '\n', ':'])
        || name == "."
        || name == ".."
    {
        return Err(BindingError::BadName(name.chars().take(64).collect()));
    }
    if bytes.len() as u64 > MAX_FILE_SIZE {
        return Err(BindingError::TooLarge);
    }
    let text = std::str::from_utf8(bytes).map_err(|_| BindingError::NotText)?;
    // Editors on some systems start UTF-8 files with a byte order mark.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);

    let mut b = Binding {
        name: name.to_string(),
        indev: name.to_string(),
        mac: MacAddr::default(),
        hostname: String::new(),
        ip: None,
        tags: Vec::new(),
        gateway: None,
        subnet: None,
        gateway6: None,
        subnet6: None,
        eui64: None,
        ip6: None,
        private: false,
        mtu: None,
        macspoof: false,
        boot: None,
    };
    let mut boot = BootConfig::default();
    let mut mac = None;
    let mut hostname = None;

    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let key = key.trim();
        let v = unquote(value);
        if v.is_empty() {
            // An empty value means unset.
            continue;
        }
        match key {
            "INDEV" => {
                if v.len() > MAX_IFNAME || v.contains(['/', ' ']) {
                    return Err(bad("INDEV", v, "not an interface name"));
                }
                b.indev = v.to_string();
            }
            "MAC" => mac = Some(parse_val::<MacAddr>("MAC", v, "not a MAC address")?),
            "HOSTNAME" => {
                if v.len() > 253 || v.chars().any(|c| c.is_control()) {
                    return Err(bad("HOSTNAME", v, "not a host name"));
                }
                hostname = Some(v.to_string());
            }
            "IP" => b.ip = Some(parse_val("IP", v, "not an IPv4 address")?),
            "TAGS" => b.tags = v.split_whitespace().map(str::to_string).collect(),
            "GATEWAY" => b.gateway = Some(parse_val("GATEWAY", v, "not an IPv4 address")?),
            "SUBNET" => {
                let n: Ipv4Net = parse_val("SUBNET", v, "not an IPv4 network (a.b.c.d/len)")?;
                b.subnet = Some(n.trunc());
            }
            "GATEWAY6" => b.gateway6 = Some(parse_val("GATEWAY6", v, "not an IPv6 address")?),
            "SUBNET6" => {
                let n: Ipv6Net = parse_val("SUBNET6", v, "not an IPv6 network (addr/len)")?;
                b.subnet6 = Some(n.trunc());
            }
            "EUI64" => b.eui64 = Some(parse_val("EUI64", v, "not an IPv6 address")?),
            "IP6" => b.ip6 = Some(parse_val("IP6", v, "not an IPv6 address")?),
            "PRIVATE" => b.private = true,
            "MACSPOOF" => b.macspoof = true,
            "MTU" => {
                let m: u16 = parse_val("MTU", v, "not a number from 68 to 65535")?;
                if m < 68 {
                    return Err(bad("MTU", v, "not a number from 68 to 65535"));
                }
                b.mtu = Some(m);
            }
            "NEXT_SERVER" => {
                boot::check_server(v).map_err(|p| bad("NEXT_SERVER", v, p))?;
                boot.next_server = Some(v.to_string());
            }
            "BOOT_FILE" => boot.boot_file = Some(boot_value("BOOT_FILE", v, boot::check_file)?),
            "UEFI_BOOT_FILE" => {
                boot.uefi_boot_file = Some(boot_value("UEFI_BOOT_FILE", v, boot::check_file)?)
            }
            "IPXE" => boot.ipxe = Some(boot_value("IPXE", v, boot::check_file)?),
            "HTTP_BOOT" => boot.http_boot = Some(boot_value("HTTP_BOOT", v, boot::check_http_url)?),
            _ => {}
        }
    }
    b.boot = (!boot.is_empty()).then(|| Box::new(boot));
    b.mac = mac.ok_or(BindingError::Missing("MAC"))?;
    b.hostname = hostname.ok_or(BindingError::Missing("HOSTNAME"))?;
    check(&b)?;
    Ok(b)
}

/// Addresses that cannot work together: the guest would be handed an
/// address it cannot use, or one the host already claims.
fn check(b: &Binding) -> Result<(), BindingError> {
    let wrong = |key, value: &dyn std::fmt::Display, problem: String| {
        Err(BindingError::Inconsistent {
            key,
            value: value.to_string(),
            problem,
        })
    };
    if let Some(ip) = b.ip {
        if b.gateway == Some(ip) {
            return wrong("IP", &ip, "the same address as GATEWAY".into());
        }
        if let Some(net) = b.subnet {
            if !net.contains(&ip) {
                return wrong("IP", &ip, format!("outside SUBNET {net}"));
            }
            // /31 (RFC 3021) and /32 have no network or broadcast address.
            if net.prefix_len() < 31 {
                if ip == net.network() {
                    return wrong("IP", &ip, format!("the network address of SUBNET {net}"));
                }
                if ip == net.broadcast() {
                    return wrong("IP", &ip, format!("the broadcast address of SUBNET {net}"));
                }
            }
        }
    }
    if let Some(net) = b.subnet6 {
        // A link-local router is on every link, whatever the prefix.
        let link_local = |a: &Ipv6Addr| a.segments()[0] & 0xffc0 == 0xfe80;
        for (key, addr) in [("GATEWAY6", b.gateway6), ("EUI64", b.eui64), ("IP6", b.ip6)] {
            if let Some(a) = addr.filter(|a| !net.contains(a)) {
                if key == "GATEWAY6" && link_local(&a) {
                    continue;
                }
                return wrong(key, &a, format!("outside SUBNET6 {net}"));
            }
        }
    }
    Ok(())
}

/// What an accepted binding lacks that a guest will notice, for a warning.
pub fn shortcomings(b: &Binding) -> Option<&'static str> {
    if b.ip.is_some() && b.subnet.is_none() {
        return Some(
            "IP without SUBNET: the guest gets no subnet mask or broadcast address \
             and reaches GATEWAY through a host route (nfdhcpd-binding(5))",
        );
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "INDEV=tap10
IP=192.0.2.100
MAC=aa:6b:39:22:33:44
HOSTNAME=testing-vm
TAGS=\"\"
GATEWAY=192.0.2.1
SUBNET=192.0.2.0/24
GATEWAY6=2001:db8:aaaa:bbbb::1
SUBNET6=2001:db8:aaaa:bbbb::/64
EUI64=2001:db8:aaaa:bbbb:a86b:39ff:fe22:3344
PRIVATE=
MTU=
MACSPOOF=
";

    #[test]
    fn parses_the_original_sample() {
        let b = parse("tap10", SAMPLE.as_bytes()).unwrap();
        assert_eq!(b.name, "tap10");
        assert_eq!(b.indev, "tap10");
        assert_eq!(b.ip, Some(Ipv4Addr::new(192, 0, 2, 100)));
        assert_eq!(b.mac.to_string(), "aa:6b:39:22:33:44");
        assert_eq!(b.hostname, "testing-vm");
        assert!(b.tags.is_empty());
        assert_eq!(b.gateway, Some(Ipv4Addr::new(192, 0, 2, 1)));
        assert_eq!(b.subnet, Some("192.0.2.0/24".parse().unwrap()));
        assert_eq!(b.gateway6, Some("2001:db8:aaaa:bbbb::1".parse().unwrap()));
        assert_eq!(b.subnet6, Some("2001:db8:aaaa:bbbb::/64".parse().unwrap()));
        assert_eq!(
            b.eui64,
            Some("2001:db8:aaaa:bbbb:a86b:39ff:fe22:3344".parse().unwrap())
        );
        assert!(!b.private && !b.macspoof);
        assert_eq!(b.mtu, None);
    }

    #[test]
    fn quoted_values_and_flags() {
        let t = "MAC='aa:bb:cc:dd:ee:ff'\nHOSTNAME=\"vm1.example.org\"\nPRIVATE=yes\nMACSPOOF=1\nMTU=\"1400\"\nTAGS=\"a b\"\nINDEV=br0\nUNKNOWN=whatever\njunk line\n";
        let b = parse("tap3", t.as_bytes()).unwrap();
        assert_eq!(b.hostname, "vm1.example.org");
        assert!(b.private && b.macspoof);
        assert_eq!(b.mtu, Some(1400));
        assert_eq!(b.tags, vec!["a", "b"]);
        assert_eq!(b.indev, "br0");
    }

    #[test]
    fn refuses_incomplete_or_bad_files() {
        assert_eq!(
            parse("tap1", b"HOSTNAME=x\n"),
            Err(BindingError::Missing("MAC"))
        );
        assert_eq!(
            parse("tap1", b"MAC=aa:bb:cc:dd:ee:ff\n"),
            Err(BindingError::Missing("HOSTNAME"))
        );
        assert!(matches!(
            parse("tap1", b"MAC=aa:bb:cc:dd:ee:ff\nHOSTNAME=x\nIP=300.1.1.1\n"),
            Err(BindingError::BadValue { key: "IP", .. })
        ));
        assert!(matches!(
            parse("tap1", b"MAC=aa:bb:cc:dd:ee:ff\nHOSTNAME=x\nMTU=12\n"),
            Err(BindingError::BadValue { key: "MTU", .. })
        ));
        assert_eq!(parse("tap1", &[0xff, 0xfe]), Err(BindingError::NotText));
        assert!(matches!(
            parse("averyveryverylongname", b""),
            Err(BindingError::BadName(_))
        ));
        let big = vec![b'#'; MAX_FILE_SIZE as usize + 1];
        assert_eq!(parse("tap1", &big), Err(BindingError::TooLarge));
    }

    #[test]
    fn a_byte_order_mark_is_accepted() {
        let mut t = vec![0xef, 0xbb, 0xbf];
        t.extend_from_slice(SAMPLE.as_bytes());
        let b = parse("tap10", &t).unwrap();
        assert_eq!(b.mac.to_string(), "aa:6b:39:22:33:44");
        // Only at the start: anywhere else it is part of a value.
        let t = format!("{SAMPLE}HOSTNAME=\u{feff}x\n");
        assert_eq!(parse("tap10", t.as_bytes()).unwrap().hostname, "\u{feff}x");
    }

    /// SAMPLE without the lines of `keys`.
    fn sample_without(keys: &[&str]) -> String {
        SAMPLE
            .lines()
            .filter(|l| !keys.iter().any(|k| l.starts_with(&format!("{k}="))))
            .map(|l| format!("{l}\n"))
            .collect()
    }

    fn key_of(r: Result<Binding, BindingError>) -> &'static str {
        match r {
            Err(BindingError::Inconsistent { key, .. }) => key,
            other => panic!("not refused for its data: {other:?}"),
        }
    }

    #[test]
    fn refuses_addresses_that_contradict_each_other() {
        let with = |extra: &str| parse("tap10", format!("{SAMPLE}{extra}\n").as_bytes());
        let e = with("IP=198.51.100.7").unwrap_err();
        assert_eq!(
            e.to_string(),
            "IP=198.51.100.7: outside SUBNET 192.0.2.0/24"
        );
        assert!(with("IP=192.0.2.0")
            .unwrap_err()
            .to_string()
            .contains("the network address of SUBNET 192.0.2.0/24"));
        assert!(with("IP=192.0.2.255")
            .unwrap_err()
            .to_string()
            .contains("the broadcast address of SUBNET"));
        assert!(with("IP=192.0.2.1")
            .unwrap_err()
            .to_string()
            .contains("the same address as GATEWAY"));
        assert_eq!(key_of(with("GATEWAY6=2001:db8:1::1")), "GATEWAY6");
        assert_eq!(key_of(with("EUI64=2001:db8:1::5")), "EUI64");
        assert_eq!(key_of(with("IP6=2001:db8:1::6")), "IP6");
        assert_eq!(key_of(with("GATEWAY=192.0.2.100\nIP=192.0.2.100")), "IP");

        // What is fine: /31 and /32 use every address, a link-local router,
        // a gateway outside the subnet (routed), no SUBNET or SUBNET6 at all.
        for ok in [
            "SUBNET=192.0.2.100/31\nIP=192.0.2.100\nGATEWAY=192.0.2.101",
            "SUBNET=192.0.2.100/32\nIP=192.0.2.100\nGATEWAY=10.0.0.1",
            "GATEWAY6=fe80::1",
            "GATEWAY=198.51.100.1",
            "IP6=2001:db8:aaaa:bbbb::77",
        ] {
            assert!(with(ok).is_ok(), "{ok}: {:?}", with(ok));
        }
        let no_subnets = sample_without(&["SUBNET", "SUBNET6"]);
        let t = format!("{no_subnets}IP=10.1.2.3\nIP6=2001:db8:9::9\nGATEWAY6=2001:db8:8::1\n");
        assert!(parse("tap10", t.as_bytes()).is_ok());
    }

    #[test]
    fn a_missing_subnet_is_a_shortcoming() {
        let b = parse("tap10", SAMPLE.as_bytes()).unwrap();
        assert_eq!(shortcomings(&b), None);
        let b = parse("tap10", sample_without(&["SUBNET"]).as_bytes()).unwrap();
        assert!(shortcomings(&b).unwrap().starts_with("IP without SUBNET"));
        // Without IP there is no IPv4 lease to lack a mask.
        let b = parse("tap10", sample_without(&["SUBNET", "IP"]).as_bytes()).unwrap();
        assert_eq!(shortcomings(&b), None);
    }

    #[test]
    fn network_boot_keys() {
        let b = parse("tap10", SAMPLE.as_bytes()).unwrap();
        assert_eq!(b.boot, None);
        let t = format!(
            "{SAMPLE}NEXT_SERVER=192.0.2.1\nBOOT_FILE=undionly.kpxe\n\
             UEFI_BOOT_FILE=\"ipxe.efi\"\nIPXE=http://192.0.2.1/boot.ipxe\n\
             HTTP_BOOT=https://boot.example.org/x64/boot.efi\n"
        );
        let b = parse("tap10", t.as_bytes()).unwrap();
        assert_eq!(
            b.boot.as_deref().unwrap(),
            &BootConfig {
                next_server: Some("192.0.2.1".into()),
                boot_file: Some("undionly.kpxe".into()),
                uefi_boot_file: Some("ipxe.efi".into()),
                ipxe: Some("http://192.0.2.1/boot.ipxe".into()),
                http_boot: Some("https://boot.example.org/x64/boot.efi".into()),
            }
        );
        // A host name is a boot server too; an empty value is unset.
        let t = format!("{SAMPLE}NEXT_SERVER=tftp.example.org\nIPXE=\n");
        let b = parse("tap10", t.as_bytes()).unwrap();
        let boot = b.boot.unwrap();
        assert_eq!(boot.next_server.as_deref(), Some("tftp.example.org"));
        assert_eq!(boot.ipxe, None);

        let refused = |extra: String| match parse("tap10", format!("{SAMPLE}{extra}\n").as_bytes())
        {
            Err(BindingError::BadValue { key, .. }) => key,
            other => panic!("{extra}: {other:?}"),
        };
        assert_eq!(refused("NEXT_SERVER=not a host".into()), "NEXT_SERVER");
        assert_eq!(refused("NEXT_SERVER=255.255.255.255".into()), "NEXT_SERVER");
        assert_eq!(
            refused(format!("BOOT_FILE={}", "x".repeat(256))),
            "BOOT_FILE"
        );
        assert_eq!(refused("UEFI_BOOT_FILE=a b.efi".into()), "UEFI_BOOT_FILE");
        assert_eq!(refused("IPXE=http://h/\u{1}".into()), "IPXE");
        assert_eq!(
            refused("HTTP_BOOT=tftp://192.0.2.1/boot.efi".into()),
            "HTTP_BOOT"
        );
        let e = parse("tap10", format!("{SAMPLE}HTTP_BOOT=boot.efi\n").as_bytes()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "HTTP_BOOT=\"boot.efi\": not a URL starting with http:// or https://"
        );
    }

    #[test]
    fn ignored_names() {
        for n in [".tap1", "tap1~", "tap1.tmp", ".tap1.swp", "#tap1#"] {
            assert!(is_ignored_name(n), "{n}");
        }
        assert!(!is_ignored_name("tap1"));
    }
}
