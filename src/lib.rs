//! nfdhcpd: DHCP, DHCPv6 and Router Advertisement server for VM hosts
//! (NFQUEUE), and a relay-mode DHCP server for datacenter BMCs.

pub mod backend;
pub mod binding;
pub mod config;
pub mod daemon;
pub mod event;
#[doc(hidden)]
pub mod fuzzing;
pub mod link;
pub mod logging;
pub mod mac;
pub mod metrics;
pub mod nfqueue;
pub mod proto;
pub mod ratelimit;
pub mod relay;
pub mod responder;
pub mod sandbox;
pub mod sdnotify;
pub mod state;
pub mod watch;
