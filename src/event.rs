//! What the source threads hand to the state thread.

use crossbeam_channel::Sender;

use crate::binding::{Binding, BindingError};

/// Which protocol a queue carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QueueKind {
    Dhcp4,
    RouterSolicit,
    NeighborSolicit,
    Dhcp6,
}

impl QueueKind {
    pub fn name(self) -> &'static str {
        match self {
            QueueKind::Dhcp4 => "dhcp",
            QueueKind::RouterSolicit => "rs",
            QueueKind::NeighborSolicit => "ns",
            QueueKind::Dhcp6 => "dhcpv6",
        }
    }
}

/// A binding file as the watcher found it.
pub type BindingRead = Result<Binding, BindingError>;

/// Low-volume events that must never be dropped.
pub enum Control {
    /// File `name` appeared or changed (Some) or went away (None).
    Binding {
        name: String,
        read: Option<BindingRead>,
    },
    /// The whole directory as it is now (start-up, overflow, directory re-created).
    Rescan(Vec<(String, BindingRead)>),
    /// Log the tables and counters (SIGUSR1).
    Dump,
    /// A backend job finished.
    Backend(Box<crate::backend::JobResult>),
    /// Withdraw, then stop (SIGTERM/SIGINT). The state thread acks on the sender.
    Shutdown(Sender<()>),
}
