//! nfdhcpd: DHCP, DHCPv6 and Router Advertisement server for VM hosts
//! (NFQUEUE), and a relay-mode DHCP server for datacenter BMCs.

pub mod binding;
pub mod config;
pub mod daemon;
pub mod event;
pub mod link;
pub mod logging;
pub mod mac;
pub mod nfqueue;
pub mod proto;
pub mod state;
pub mod watch;
pub mod backend;
pub mod relay;
pub mod metrics;
