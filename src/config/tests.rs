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

const SHIPPED_SAMPLE: &str = include_str!("../../etc/nfdhcpd.conf");

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
            "[nautobot]\nbatch_size = 0\n",
            "t.conf: [nautobot] batch_size: \"0\" is not a number from 1 to 256",
        ),
        (
            "[nautobot]\nbatch_window = 1001\n",
            "t.conf: [nautobot] batch_window: \"1001\" is not a number from 0 to 1000",
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
    let w = warnings("top = 1\n[general]\nfoo = 1\n[extra]\nbar = 2\n[empty]\n[dhcp]\nBaz = 3\n");
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

/// The DHCPv6 queue is listened on exactly when DHCPv6 is answered; a mode
/// whose queues are missing does neither.
#[test]
fn serves_dhcp6_follows_the_effective_mode() {
    let v6 = |mode, rs, d6| Ipv6 {
        enable_ipv6: true,
        mode,
        rs_queue: rs,
        dhcpv6_queue: d6,
        ..Ipv6::default()
    };
    use Ipv6Mode::*;
    for (ipv6, serves) in [
        (v6(Auto, Some(1), Some(2)), true),
        (v6(Auto, Some(1), None), false),
        (v6(Slaac, Some(1), Some(2)), false),
        (v6(SlaacDhcpv6, Some(1), Some(2)), true),
        (v6(Dhcpv6, Some(1), Some(2)), true),
        // Refused by the loader; answered as slaac.
        (v6(Dhcpv6, None, Some(2)), false),
        (v6(Auto, None, Some(2)), false),
    ] {
        assert_eq!(ipv6.serves_dhcp6(), serves, "{ipv6:?}");
        let c = Config {
            ipv6: ipv6.clone(),
            ..Config::default()
        };
        let listens = c.queues().iter().any(|(k, _)| *k == "dhcpv6_queue");
        assert_eq!(listens, serves, "{ipv6:?}");
    }
    // Apart from enable_ipv6: the RA flags are built from it either way.
    let off = Ipv6 {
        enable_ipv6: false,
        ..v6(Dhcpv6, Some(1), Some(2))
    };
    assert!(off.serves_dhcp6());
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
         batch_window = 0\nrenewal_window = 2000\nbatch_size = 100\ntimeout = 30\nca_file = /etc/ssl/certs/ca.pem\nallow_unknown_devices = yes\n",
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
            batch_window_ms: 0,
            renewal_window_ms: 2000,
            batch_size: 100,
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
