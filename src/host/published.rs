//! The bindings the queue threads answer from. The state thread is the only
//! writer: it publishes a new table after each burst of changes, and a
//! queue thread sees it with one atomic load per packet and takes it with
//! one lock per change.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use crate::core::binding::Binding;

/// Bindings by interface name. Both keys and values are shared, so that a
/// new table costs reference counts, not copies.
pub type BindingMap = HashMap<Arc<str>, Arc<Binding>>;

/// The bindings as last published by the state thread.
#[derive(Default)]
pub struct Published {
    version: AtomicU64,
    map: RwLock<Arc<BindingMap>>,
}

impl Published {
    pub fn publish(&self, map: BindingMap) {
        let map = Arc::new(map);
        *self.map.write().unwrap_or_else(|e| e.into_inner()) = map;
        // After the store: a reader that sees the new version gets the new map.
        self.version.fetch_add(1, Ordering::Release);
    }

    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    pub fn load(&self) -> (u64, Arc<BindingMap>) {
        let v = self.version();
        let map = self.map.read().unwrap_or_else(|e| e.into_inner()).clone();
        (v, map)
    }
}
