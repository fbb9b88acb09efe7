//! Warnings an attacker (or a broken guest) could turn into a log flood are
//! rate-limited: one line per kind every WARN_INTERVAL, with the count of
//! those left out, and per binding at most every BINDING_WARN_INTERVAL.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use log::warn;

/// Warnings of one kind are logged at most this often; the rest are counted.
pub const WARN_INTERVAL: Duration = Duration::from_secs(10);

/// A warning about one binding is repeated at most this often while its
/// cause lasts (and again at once after the binding file changes).
pub const BINDING_WARN_INTERVAL: Duration = Duration::from_secs(600);

/// Per-binding warnings remembered at most; beyond, the oldest memory goes.
const MAX_BINDING_WARNINGS: usize = 100_000;

/// Rate limit for warnings an attacker could otherwise turn into a log flood.
#[derive(Default)]
pub struct WarnLimiter {
    last: HashMap<&'static str, (Instant, u64)>,
    /// (kind, binding name) -> when last logged.
    per_binding: HashMap<(&'static str, String), Instant>,
}

impl WarnLimiter {
    /// Whether a warning of `kind` about binding `name` may be logged now:
    /// once, then at most every BINDING_WARN_INTERVAL.
    pub fn allow_binding(&mut self, kind: &'static str, name: &str, now: Instant) -> bool {
        let key = (kind, name.to_string());
        if let Some(t) = self.per_binding.get(&key) {
            if now.saturating_duration_since(*t) < BINDING_WARN_INTERVAL {
                return false;
            }
        }
        if self.per_binding.len() >= MAX_BINDING_WARNINGS {
            self.per_binding.clear();
        }
        self.per_binding.insert(key, now);
        true
    }

    /// Binding `name` changed or went: its warnings may come again.
    pub fn forget_binding(&mut self, name: &str) {
        self.per_binding.retain(|(_, n), _| n != name);
    }

    /// Some(n suppressed since the last one) when a warning of `kind` may be logged now.
    pub fn allow(&mut self, kind: &'static str, now: Instant) -> Option<u64> {
        match self.last.get_mut(kind) {
            Some((t, n)) if now.duration_since(*t) < WARN_INTERVAL => {
                *n += 1;
                None
            }
            Some((t, n)) => {
                let s = *n;
                *t = now;
                *n = 0;
                Some(s)
            }
            None => {
                self.last.insert(kind, (now, 0));
                Some(0)
            }
        }
    }
}

pub fn suppressed(n: u64) -> String {
    if n == 0 {
        String::new()
    } else {
        format!(" ({n} similar suppressed)")
    }
}

/// A frame that could not leave: a rate-limited warning.
pub fn send_failed(warn: &Mutex<WarnLimiter>, kind: &str, ifindex: u32, e: &std::io::Error) {
    let allowed = warn
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .allow("send", Instant::now());
    if let Some(n) = allowed {
        warn!(
            "cannot send {kind} on ifindex {ifindex}: {e}{}",
            suppressed(n)
        );
    }
}

/// Some(n suppressed since the last one) when a warning of `kind` may be logged now.
pub fn allowed(warn: &Mutex<WarnLimiter>, kind: &'static str) -> Option<u64> {
    warn.lock()
        .unwrap_or_else(|e| e.into_inner())
        .allow(kind, Instant::now())
}
