//! Ethernet/IPv4/IPv6/UDP/ICMPv6 framing and checksums (pure).
//!
//! STUB: being written.
