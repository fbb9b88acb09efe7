//! The daemon shell: the process (user, capabilities, detaching), the
//! sandbox, logging, systemd notifications, the messages between threads,
//! the state thread and the metrics it writes.

pub mod counters;
pub mod event;
pub mod logging;
pub mod metrics;
pub mod process;
pub mod report;
pub mod run;
pub mod sandbox;
pub mod sdnotify;
pub mod state;
pub mod warnings;
