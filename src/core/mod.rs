//! The pure protocol core: bytes + binding + time in, bytes out. No sockets,
//! files or clocks in here.

pub mod binding;
pub mod boot;
pub mod bootp;
#[cfg(test)]
pub(crate) mod captures;
pub mod dhcp4;
pub mod dhcp6;
pub mod frame;
pub mod frame6;
pub mod mac;
pub mod ndp;
pub mod relay4;
pub mod request4;

/// Why a packet got no answer. Each reason has its own counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Refusal {
    /// Not parseable as the protocol the queue carries.
    Malformed,
    /// Parseable, but not a request this server answers (a reply, an unknown type).
    NotARequest,
    /// Source MAC (or chaddr) differs from the binding's MAC and MACSPOOF is off.
    SpoofedMac,
    /// The binding lacks what the answer needs (IP, SUBNET, SUBNET6...).
    Unconfigured,
    /// The client addressed another server (SELECTING with a foreign server id).
    OtherServer,
    /// An NS this host must not answer: a duplicate address detection probe,
    /// the guest's own address, or an address not routed via the host.
    NotOurAddress,
    /// A hardware type other than Ethernet (htype 1, hlen 6), e.g. InfiniBand:
    /// chaddr is then not a MAC the backend can look up.
    NotEthernet,
    /// A DHCPREQUEST that fits no client state of RFC 2131 §4.3.2 (neither a
    /// requested address nor ciaddr), left alone by a server that is not
    /// authoritative.
    NoClientState,
}

impl Refusal {
    pub const ALL: [Refusal; 8] = [
        Refusal::Malformed,
        Refusal::NotARequest,
        Refusal::SpoofedMac,
        Refusal::Unconfigured,
        Refusal::OtherServer,
        Refusal::NotOurAddress,
        Refusal::NotEthernet,
        Refusal::NoClientState,
    ];

    /// Stable name, used in logs and metrics.
    pub fn name(self) -> &'static str {
        match self {
            Refusal::Malformed => "malformed",
            Refusal::NotARequest => "not_a_request",
            Refusal::SpoofedMac => "spoofed_mac",
            Refusal::Unconfigured => "unconfigured",
            Refusal::OtherServer => "other_server",
            Refusal::NotOurAddress => "not_our_address",
            Refusal::NotEthernet => "not_ethernet",
            Refusal::NoClientState => "no_client_state",
        }
    }
}
