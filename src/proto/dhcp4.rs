//! DHCPv4 for VM host mode: request + binding -> reply frame (pure).
//!
//! STUB: the signature is fixed; the body is being written.

use std::net::Ipv4Addr;

use crate::binding::Binding;
use crate::mac::MacAddr;
use crate::proto::Refusal;

/// The `[dhcp]` settings the answer depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Params {
    pub lease_lifetime: u32,
    pub lease_renewal: u32,
    pub server_ip: Option<Ipv4Addr>,
    pub server_on_link: bool,
    pub nameservers: Vec<Ipv4Addr>,
    pub domain: Option<String>,
}

/// DHCP message types that appear in log lines and counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Discover,
    Request,
    Inform,
    Release,
    Decline,
    Offer,
    Ack,
    Nak,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Discover => "DHCPDISCOVER",
            Kind::Request => "DHCPREQUEST",
            Kind::Inform => "DHCPINFORM",
            Kind::Release => "DHCPRELEASE",
            Kind::Decline => "DHCPDECLINE",
            Kind::Offer => "DHCPOFFER",
            Kind::Ack => "DHCPACK",
            Kind::Nak => "DHCPNAK",
        }
    }
}

/// A complete Ethernet frame to send on the binding's interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The request's type (DISCOVER, REQUEST, INFORM).
    pub request: Kind,
    /// OFFER, ACK or NAK.
    pub kind: Kind,
    pub client_mac: MacAddr,
    /// yiaddr (OFFER/ACK), ciaddr (INFORM ACK), None for NAK.
    pub addr: Option<Ipv4Addr>,
    pub frame: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Reply(Reply),
    /// The client gave its address back (logged).
    Released { client_mac: MacAddr, addr: Ipv4Addr },
    /// The client found the address in use (logged as a warning).
    Declined { client_mac: MacAddr, addr: Ipv4Addr },
    Refused(Refusal),
}

/// Answers one DHCPv4 request.
///
/// `ip_packet` is the IPv4 packet as NFQUEUE hands it over (no Ethernet header);
/// `src_mac` is the Ethernet source from the queue's hardware-address attribute;
/// `server_mac` is the MAC of the binding's INDEV, the reply's Ethernet source.
pub fn answer(
    ip_packet: &[u8],
    src_mac: Option<MacAddr>,
    binding: &Binding,
    server_mac: MacAddr,
    params: &Params,
) -> Outcome {
    let _ = (ip_packet, src_mac, binding, server_mac, params);
    Outcome::Refused(Refusal::Malformed)
}
