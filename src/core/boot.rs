//! Network boot, for both modes: what kind of boot client a DHCPv4 request
//! comes from ([`classify`]) and which boot file it gets ([`choose`]).
//!
//! Relay mode classifies the request, and its backend picks the file from a
//! device's config context with [`choose`]. VM host mode does both with
//! [`answer`] from the binding's keys and the `[dhcp]` defaults
//! ([`BootConfig`]).

use std::net::Ipv4Addr;

/// Longest boot server, boot file or URL accepted: one option 66 or 67.
/// A file name of up to [`crate::core::bootp::MAX_FILE_FIELD`] bytes also
/// goes into the `file` field.
pub const MAX_BOOT_VALUE: usize = 255;

/// What the client is, as far as PXE is concerned (options 93, 77, 60).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BootClient {
    /// No boot options asked for (no 66/67 in the parameter request list).
    #[default]
    None,
    /// Legacy BIOS PXE (arch 0).
    Bios,
    /// UEFI PXE over TFTP (arch 6, 7, 9).
    Uefi,
    /// UEFI HTTP boot (arch 16, vendor class "HTTPClient").
    UefiHttp,
    /// Already running iPXE (user class "iPXE"): give it the script, not the loader again.
    Ipxe,
}

impl BootClient {
    /// Stable name, used in logs.
    pub fn name(self) -> &'static str {
        match self {
            BootClient::None => "none",
            BootClient::Bios => "bios",
            BootClient::Uefi => "uefi",
            BootClient::UefiHttp => "uefi-http",
            BootClient::Ipxe => "ipxe",
        }
    }
}

/// PXE answer: next-server (siaddr, option 66) and boot file (option 67).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Boot {
    pub server: Option<Ipv4Addr>,
    /// Option 66 as text (a host name or address).
    pub server_name: Option<String>,
    pub file: String,
}

/// What a request says about the firmware that sent it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BootAsk<'a> {
    /// Option 55 lists 66 or 67.
    pub wants_boot_options: bool,
    /// Option 60.
    pub vendor_class: &'a [u8],
    /// Option 77.
    pub user_class: Option<&'a [u8]>,
    /// Option 93, the first architecture listed.
    pub arch: Option<u16>,
}

impl BootAsk<'_> {
    /// Vendor class `HTTPClient...`: a UEFI HTTP boot client, which wants
    /// `HTTPClient` back in option 60 (UEFI specification, HTTP Boot).
    pub fn http(&self) -> bool {
        self.vendor_class.starts_with(b"HTTPClient")
    }

    fn pxe(&self) -> bool {
        self.vendor_class.starts_with(b"PXEClient")
    }
}

/// iPXE sends its user class as the bare string; RFC 3004 clients send a
/// list of length-prefixed names.
pub fn is_ipxe(user_class: &[u8]) -> bool {
    const IPXE: &[u8] = b"iPXE";
    if user_class == IPXE {
        return true;
    }
    let mut rest = user_class;
    while let Some((&len, tail)) = rest.split_first() {
        let Some((name, next)) = tail.split_at_checked(usize::from(len)) else {
            return false;
        };
        if name == IPXE {
            return true;
        }
        rest = next;
    }
    false
}

/// What the client is for PXE (options 55, 60, 77, 93).
///
/// None unless it asks for option 66 or 67 or calls itself a PXE or HTTP
/// boot client (vendor class). Then: user class iPXE -> Ipxe (it is already
/// running iPXE: give it the script, not the loader again); arch 16 or
/// vendor class HTTPClient -> UefiHttp; arch 6, 7, 9 -> Uefi; arch 0 ->
/// Bios; no arch and vendor class PXEClient -> Bios (PXE ROMs older than
/// RFC 4578 are BIOS ones); any other architecture -> None, since a loader
/// for the wrong one cannot start.
pub fn classify(ask: &BootAsk<'_>) -> BootClient {
    if !(ask.wants_boot_options || ask.http() || ask.pxe()) {
        return BootClient::None;
    }
    if ask.user_class.is_some_and(is_ipxe) {
        return BootClient::Ipxe;
    }
    firmware(ask)
}

/// The firmware a loader must be built for, whatever runs on it: what
/// [`classify`] says without looking at the user class.
fn firmware(ask: &BootAsk<'_>) -> BootClient {
    match ask.arch {
        _ if ask.http() => BootClient::UefiHttp,
        Some(16) => BootClient::UefiHttp,
        Some(6 | 7 | 9) => BootClient::Uefi,
        Some(0) => BootClient::Bios,
        None if ask.pxe() => BootClient::Bios,
        _ => BootClient::None,
    }
}

/// The boot files on offer, one per kind of client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BootFiles<'a> {
    /// TFTP server: an IPv4 address (also siaddr) or a host name.
    pub server: Option<&'a str>,
    /// Legacy BIOS PXE.
    pub bios: Option<&'a str>,
    /// UEFI PXE.
    pub uefi: Option<&'a str>,
    /// The script for a client already running iPXE.
    pub ipxe: Option<&'a str>,
    /// The URL for UEFI HTTP boot.
    pub http: Option<&'a str>,
}

/// The answer for `client`, if there is a file for it.
///
/// A PXE client (BIOS or UEFI) fetches its file by TFTP and so gets nothing
/// without a server. iPXE and UEFI HTTP clients take URLs: the HTTP client
/// gets no option 66 (the URL names the server), iPXE gets the server as
/// well, for a script named without a scheme.
pub fn choose(client: BootClient, files: &BootFiles<'_>) -> Option<Boot> {
    let (file, needs_server) = match client {
        BootClient::Bios => (files.bios?, true),
        BootClient::Uefi => (files.uefi?, true),
        BootClient::Ipxe => (files.ipxe?, false),
        BootClient::UefiHttp => (files.http?, false),
        BootClient::None => return None,
    };
    if needs_server && files.server.is_none() {
        return None;
    }
    let server_name = if client == BootClient::UefiHttp {
        None
    } else {
        files.server
    };
    Some(Boot {
        server: server_name.and_then(|s| s.parse().ok()),
        server_name: server_name.map(str::to_owned),
        file: file.to_owned(),
    })
}

/// VM host mode's answer: [`choose`] for the [`classify`]d client; an iPXE
/// client for which there is no script is answered as the firmware it runs
/// on (it chainloads what a PXE ROM would get). Returns the kind of client
/// answered for and the answer.
pub fn answer(ask: &BootAsk<'_>, files: &BootFiles<'_>) -> Option<(BootClient, Boot)> {
    let client = classify(ask);
    if let Some(boot) = choose(client, files) {
        return Some((client, boot));
    }
    if client != BootClient::Ipxe {
        return None;
    }
    let fw = firmware(ask);
    choose(fw, files).map(|boot| (fw, boot))
}

/// The boot keys of a binding (`NEXT_SERVER`, `BOOT_FILE`, ...) or the
/// `[dhcp]` defaults (`next_server`, `boot_file`, ...), validated.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BootConfig {
    pub next_server: Option<String>,
    pub boot_file: Option<String>,
    pub uefi_boot_file: Option<String>,
    pub ipxe: Option<String>,
    pub http_boot: Option<String>,
}

impl BootConfig {
    /// The files on offer: each of `own`'s values, else the default's.
    pub fn files<'a>(own: Option<&'a BootConfig>, defaults: &'a BootConfig) -> BootFiles<'a> {
        let pick = |key: fn(&BootConfig) -> &Option<String>| {
            own.and_then(|o| key(o).as_deref())
                .or(key(defaults).as_deref())
        };
        BootFiles {
            server: pick(|c| &c.next_server),
            bios: pick(|c| &c.boot_file),
            uefi: pick(|c| &c.uefi_boot_file),
            ipxe: pick(|c| &c.ipxe),
            http: pick(|c| &c.http_boot),
        }
    }

    pub fn is_empty(&self) -> bool {
        *self == BootConfig::default()
    }
}

/// Why a boot server name is refused, if it is.
pub fn check_server(v: &str) -> Result<(), &'static str> {
    const PROBLEM: &str = "not an IPv4 address or host name";
    if let Ok(a) = v.parse::<Ipv4Addr>() {
        if a.is_unspecified() || a.is_broadcast() || a.is_multicast() {
            return Err("not a unicast IPv4 address");
        }
        return Ok(());
    }
    let label_ok = |l: &str| {
        (1..=63).contains(&l.len())
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    let name = v.strip_suffix('.').unwrap_or(v);
    if name.is_empty() || name.len() > 253 || !name.split('.').all(label_ok) {
        return Err(PROBLEM);
    }
    Ok(())
}

/// Why a boot file name (or an iPXE script name or URL) is refused, if it
/// is: it must be printable ASCII without spaces, and fit one option 67.
pub fn check_file(v: &str) -> Result<(), &'static str> {
    if v.len() > MAX_BOOT_VALUE {
        return Err("longer than 255 bytes");
    }
    if !v.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("not printable ASCII without spaces");
    }
    Ok(())
}

/// Why a UEFI HTTP boot URL is refused, if it is: a boot file name that
/// starts with `http://` or `https://` and a host.
pub fn check_http_url(v: &str) -> Result<(), &'static str> {
    check_file(v)?;
    let lower = v.to_ascii_lowercase();
    let rest = lower
        .strip_prefix("http://")
        .or_else(|| lower.strip_prefix("https://"));
    match rest {
        None => Err("not a URL starting with http:// or https://"),
        Some(r) if r.is_empty() || r.starts_with('/') => {
            Err("lacking a host name after the scheme")
        }
        Some(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PXE_VENDOR: &[u8] = b"PXEClient:Arch:00000:UNDI:002001";

    fn files() -> BootFiles<'static> {
        BootFiles {
            server: Some("192.0.2.10"),
            bios: Some("undionly.kpxe"),
            uefi: Some("ipxe.efi"),
            ipxe: Some("http://192.0.2.10/boot.ipxe"),
            http: Some("http://192.0.2.10/boot.efi"),
        }
    }

    fn ask(
        vendor: &'static [u8],
        user: Option<&'static [u8]>,
        arch: Option<u16>,
    ) -> BootAsk<'static> {
        BootAsk {
            wants_boot_options: true,
            vendor_class: vendor,
            user_class: user,
            arch,
        }
    }

    #[test]
    fn choice_by_client() {
        let f = files();
        let boot = |c| choose(c, &f).map(|b| b.file);
        assert_eq!(boot(BootClient::None), None);
        assert_eq!(boot(BootClient::Bios).as_deref(), Some("undionly.kpxe"));
        assert_eq!(boot(BootClient::Uefi).as_deref(), Some("ipxe.efi"));
        assert_eq!(
            boot(BootClient::Ipxe).as_deref(),
            Some("http://192.0.2.10/boot.ipxe")
        );
        let http = choose(BootClient::UefiHttp, &f).unwrap();
        assert_eq!((http.server, http.server_name), (None, None));
        let bios = choose(BootClient::Bios, &f).unwrap();
        assert_eq!(bios.server, Some(Ipv4Addr::new(192, 0, 2, 10)));
        assert_eq!(bios.server_name.as_deref(), Some("192.0.2.10"));
        // A name is option 66 only.
        let named = BootFiles {
            server: Some("tftp.example.org"),
            ..f
        };
        let b = choose(BootClient::Uefi, &named).unwrap();
        assert_eq!(b.server, None);
        assert_eq!(b.server_name.as_deref(), Some("tftp.example.org"));
        // PXE needs a TFTP server; iPXE and HTTP boot do not.
        let no_server = BootFiles { server: None, ..f };
        assert_eq!(choose(BootClient::Bios, &no_server), None);
        assert_eq!(choose(BootClient::Uefi, &no_server), None);
        assert!(choose(BootClient::Ipxe, &no_server).is_some());
        assert!(choose(BootClient::UefiHttp, &no_server).is_some());
    }

    #[test]
    fn an_ipxe_client_without_a_script_gets_its_firmware_file() {
        let f = BootFiles {
            ipxe: None,
            ..files()
        };
        let ipxe_bios = ask(PXE_VENDOR, Some(b"iPXE"), Some(0));
        assert_eq!(classify(&ipxe_bios), BootClient::Ipxe);
        let (client, boot) = answer(&ipxe_bios, &f).unwrap();
        assert_eq!(
            (client, boot.file.as_str()),
            (BootClient::Bios, "undionly.kpxe")
        );
        let ipxe_uefi = ask(b"PXEClient:Arch:00007", Some(b"iPXE"), Some(7));
        assert_eq!(answer(&ipxe_uefi, &f).unwrap().1.file, "ipxe.efi");
        // With a script, the script, which breaks the chainload loop.
        let (client, boot) = answer(&ipxe_bios, &files()).unwrap();
        assert_eq!(client, BootClient::Ipxe);
        assert_eq!(boot.file, "http://192.0.2.10/boot.ipxe");
        // Nothing at all for a client that is no boot client.
        let os = BootAsk::default();
        assert_eq!(answer(&os, &files()), None);
        // An unknown architecture gets no loader.
        assert_eq!(answer(&ask(b"", Some(b"iPXE"), Some(11)), &f), None);
    }

    #[test]
    fn binding_values_win_over_defaults() {
        let own = BootConfig {
            boot_file: Some("own.kpxe".into()),
            ..BootConfig::default()
        };
        let defaults = BootConfig {
            next_server: Some("192.0.2.1".into()),
            boot_file: Some("default.kpxe".into()),
            ipxe: Some("default.ipxe".into()),
            ..BootConfig::default()
        };
        let f = BootConfig::files(Some(&own), &defaults);
        assert_eq!(f.server, Some("192.0.2.1"));
        assert_eq!(f.bios, Some("own.kpxe"));
        assert_eq!(f.ipxe, Some("default.ipxe"));
        assert_eq!(f.uefi, None);
        assert_eq!(
            BootConfig::files(None, &defaults).bios,
            Some("default.kpxe")
        );
        assert!(BootConfig::default().is_empty() && !own.is_empty());
    }

    #[test]
    fn value_checks() {
        assert_eq!(check_server("192.0.2.1"), Ok(()));
        assert_eq!(check_server("tftp.example.org."), Ok(()));
        assert!(check_server("0.0.0.0").is_err());
        assert!(check_server("224.0.0.1").is_err());
        assert!(check_server("bad name").is_err());
        assert!(check_server("-x.example").is_err());
        assert!(check_server(&"a".repeat(64)).is_err());
        assert_eq!(check_file("pxelinux.0"), Ok(()));
        assert_eq!(check_file(&"f".repeat(255)), Ok(()));
        assert!(check_file(&"f".repeat(256)).is_err());
        assert!(check_file("boot file").is_err());
        assert!(check_file("boot\u{e9}").is_err());
        assert_eq!(check_http_url("http://192.0.2.1/boot.efi"), Ok(()));
        assert_eq!(check_http_url("HTTPS://boot.example.org/x.efi"), Ok(()));
        assert!(check_http_url("tftp://192.0.2.1/x").is_err());
        assert!(check_http_url("http:///x").is_err());
        assert!(check_http_url(&format!("http://h/{}", "x".repeat(250))).is_err());
    }
}
