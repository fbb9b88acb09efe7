//! What the source threads hand to the state thread.

use crossbeam_channel::Sender;

use crate::core::binding::{Binding, BindingError};

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

/// A binding file as the parser found it.
pub type BindingRead = Result<Binding, BindingError>;

/// Why a name in the binding directory was not parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FileError {
    #[error("a symbolic link; links are not followed")]
    Symlink,
    #[error("a FIFO; only regular files are read")]
    Fifo,
    #[error("a socket; only regular files are read")]
    Socket,
    #[error("a device; only regular files are read")]
    Device,
    #[error("a directory; only regular files are read")]
    Directory,
    /// There, but unreadable for now: permissions, I/O, no descriptors left.
    #[error("cannot be read as {user}: {err}")]
    Unreadable { user: String, err: String },
}

impl FileError {
    /// The metrics label.
    pub fn name(&self) -> &'static str {
        match self {
            FileError::Symlink => "symlink",
            FileError::Fifo => "fifo",
            FileError::Socket => "socket",
            FileError::Device => "device",
            FileError::Directory => "directory",
            FileError::Unreadable { .. } => "unreadable",
        }
    }
}

/// One name in the binding directory as the watcher found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileRead {
    /// A regular file, read and parsed.
    Parsed(BindingRead),
    /// No such file (any more): the binding goes.
    Gone,
    /// There, but not read: says nothing about the binding, which stays.
    Refused(FileError),
}

/// Low-volume events that must never be dropped.
pub enum Control {
    /// File `name` appeared, changed or went away (boxed: a binding is
    /// large beside the other events).
    Binding { name: String, read: Box<FileRead> },
    /// The whole directory as it is now (start-up, overflow, directory
    /// re-created, SIGHUP).
    Rescan(Vec<(String, FileRead)>),
    /// Log the tables and counters (SIGUSR1).
    Dump,
    /// The rescan a SIGHUP asked for is done (sent after its `Rescan`, or
    /// alone when the directory could not be read): the reload is over.
    Reloaded,
    /// A backend job finished.
    Backend(Box<crate::backend::JobResult>),
    /// Withdraw, then stop (SIGTERM/SIGINT). The state thread acks on the sender.
    Shutdown(Sender<()>),
}
