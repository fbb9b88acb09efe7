//! Relay mode: the UDP 67 thread that receives relayed requests and sends
//! the answers, and the pending exchanges the state thread keeps while a
//! backend worker looks a lease up.

pub mod offered;
pub mod pending;
pub mod settings;
pub mod socket;
