//! VM-host mode: the NFQUEUE threads that answer guests from the published
//! bindings, the inotify watcher that reads the binding files, and what
//! they share (links, rate limits).

pub mod answers;
pub mod bindings;
pub mod link;
pub mod published;
pub mod queue;
pub mod ratelimit;
pub mod responder;
#[cfg(test)]
pub(crate) mod testing;
pub mod watch;
