//! nfdhcpd: DHCP, DHCPv6 and Router Advertisement server for VM hosts
//! (NFQUEUE), and a relay-mode DHCP server for datacenter BMCs.
//!
//! `core` holds the pure protocol decisions; `host` the VM-host mode's
//! threads, `relay` the relay mode's, `backend` the lease stores of relay
//! mode; `daemon` starts and wires every thread; `config` reads the
//! configuration. ARCHITECTURE.md draws the whole.

pub mod backend;
pub mod config;
pub mod core;
pub mod daemon;
#[doc(hidden)]
pub mod fuzzing;
pub mod host;
pub mod relay;
