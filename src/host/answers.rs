//! What the VM-host answers depend on, taken from the configuration once.

use crate::config::{Config, Ipv6Mode};
use crate::core::{dhcp4, dhcp6, ndp};

/// What the VM-host answers depend on, from the configuration.
pub struct Answers {
    pub dhcp4: dhcp4::Params,
    /// Router and Neighbor Advertisements; None without IPv6.
    pub ndp: Option<ndp::Params>,
    /// None unless DHCPv6 is served.
    pub dhcp6: Option<dhcp6::Params>,
}

impl Answers {
    /// The answer settings of a configuration, as the daemon uses them.
    pub fn from_config(cfg: &Config) -> Answers {
        let v6 = &cfg.ipv6;
        let (ndp, dhcp6) = ipv6_params(cfg);
        let serves_dhcp6 = v6.serves_dhcp6();
        Answers {
            dhcp4: dhcp4::Params {
                lease_lifetime: cfg.dhcp.lease_lifetime,
                lease_renewal: cfg.dhcp.lease_renewal,
                server_ip: cfg.dhcp.server_ip,
                server_on_link: cfg.dhcp.server_on_link,
                nameservers: cfg.dhcp.nameservers.clone(),
                domain: cfg.dhcp.domain.clone(),
                domains: cfg.dhcp.domains.clone(),
                boot: cfg.dhcp.boot.clone(),
            },
            ndp: v6.enable_ipv6.then_some(ndp),
            dhcp6: (v6.enable_ipv6 && serves_dhcp6).then_some(dhcp6),
        }
    }
}

/// The `[ipv6]` answer settings, whether or not IPv6 is enabled.
pub fn ipv6_params(cfg: &Config) -> (ndp::Params, dhcp6::Params) {
    let v6 = &cfg.ipv6;
    // Validated at load time; slaac is the fallback that needs least.
    let mode = v6.effective_mode().unwrap_or(Ipv6Mode::Slaac);
    let dhcpv6 = v6.serves_dhcp6();
    let stateful = mode == Ipv6Mode::Dhcpv6;
    let ndp = ndp::Params {
        router_lifetime: v6.router_lifetime,
        prefix_valid_lifetime: v6.prefix_valid_lifetime,
        prefix_preferred_lifetime: v6.prefix_preferred_lifetime,
        dns_lifetime: v6.dns_lifetime,
        nameservers: v6.nameservers.clone(),
        domains: v6.domains.clone(),
        other_config: dhcpv6,
        managed: stateful,
    };
    let dhcp6 = dhcp6::Params {
        stateful,
        nameservers: v6.nameservers.clone(),
        domains: v6.domains.clone(),
        // RFC 8415 21.4 recommends T1 = 0.5 and T2 = 0.8 of the preferred lifetime.
        t1: v6.prefix_preferred_lifetime / 2,
        t2: v6.prefix_preferred_lifetime / 5 * 4,
        preferred_lifetime: v6.prefix_preferred_lifetime,
        valid_lifetime: v6.prefix_valid_lifetime,
    };
    (ndp, dhcp6)
}
