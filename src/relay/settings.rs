//! What the relay-mode answers depend on, taken from the configuration once.

use crate::config::Config;
use crate::core::relay4;

/// The `[relay]` answer settings, as the daemon uses them.
pub fn from_config(cfg: &Config) -> relay4::Settings {
    relay4::Settings {
        server_ident: cfg.relay.server_ident,
        authoritative: cfg.relay.authoritative,
        lease_time: cfg.relay.lease_time,
        nameservers: cfg.relay.nameservers.clone(),
        domain: cfg.relay.domain.clone(),
    }
}
