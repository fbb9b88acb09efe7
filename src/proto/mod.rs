//! The pure protocol core: bytes + binding + time in, bytes out. No sockets,
//! files or clocks in here.

pub mod dhcp4;
pub mod frame;

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
}

impl Refusal {
    pub const ALL: [Refusal; 5] = [
        Refusal::Malformed,
        Refusal::NotARequest,
        Refusal::SpoofedMac,
        Refusal::Unconfigured,
        Refusal::OtherServer,
    ];

    /// Stable name, used in logs and metrics.
    pub fn name(self) -> &'static str {
        match self {
            Refusal::Malformed => "malformed",
            Refusal::NotARequest => "not_a_request",
            Refusal::SpoofedMac => "spoofed_mac",
            Refusal::Unconfigured => "unconfigured",
            Refusal::OtherServer => "other_server",
        }
    }
}
