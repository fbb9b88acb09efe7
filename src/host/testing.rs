//! Stand-ins for the kernel in tests: interfaces by index, name and MAC
//! that a test can add and take away, and a frame sink that records what
//! would have been sent (or fails with a chosen errno).

use std::io;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::core::mac::MacAddr;
use crate::host::link::{FrameSink, IfName, Interfaces};

#[derive(Clone)]
struct FakeIf {
    ifindex: u32,
    name: String,
    mac: Option<MacAddr>,
}

/// Interfaces as a test declares them. Clones share the list, so a test
/// keeps one while the code under test owns another.
#[derive(Clone, Default)]
pub struct FakeInterfaces(Arc<Mutex<Vec<FakeIf>>>);

impl FakeInterfaces {
    pub fn new() -> FakeInterfaces {
        FakeInterfaces::default()
    }

    /// Adds interface `name` as `ifindex`, with `mac` (None: one without a
    /// hardware address). Replaces an interface of the same name.
    pub fn add(&self, ifindex: u32, name: &str, mac: Option<MacAddr>) -> &FakeInterfaces {
        let mut ifs = lock(&self.0);
        ifs.retain(|i| i.name != name);
        ifs.push(FakeIf {
            ifindex,
            name: name.into(),
            mac,
        });
        self
    }

    /// Interface `name` goes away.
    pub fn remove(&self, name: &str) {
        lock(&self.0).retain(|i| i.name != name);
    }

    fn find<T>(&self, f: impl Fn(&FakeIf) -> Option<T>) -> Option<T> {
        lock(&self.0).iter().find_map(f)
    }
}

impl Interfaces for FakeInterfaces {
    fn name_of(&self, ifindex: u32) -> Option<IfName> {
        self.find(|i| {
            (i.ifindex == ifindex)
                .then(|| IfName::new(&i.name))
                .flatten()
        })
    }
    fn mac_of(&self, name: &str) -> Option<MacAddr> {
        self.find(|i| (i.name == name).then_some(i.mac).flatten())
    }
    fn index_of(&self, name: &str) -> Option<u32> {
        self.find(|i| (i.name == name).then_some(i.ifindex))
    }
}

/// Records every frame sent, with its ifindex; fails with an errno when
/// told to.
#[derive(Default)]
pub struct RecordingSink {
    frames: Mutex<Vec<(u32, Vec<u8>)>>,
    errno: Mutex<Option<i32>>,
}

impl RecordingSink {
    pub fn new() -> Arc<RecordingSink> {
        Arc::new(RecordingSink::default())
    }

    /// From now on every send fails with `errno` (None: succeeds again).
    pub fn fail_with(&self, errno: Option<i32>) {
        *lock(&self.errno) = errno;
    }

    /// The frames sent since the last call, oldest first.
    pub fn take(&self) -> Vec<(u32, Vec<u8>)> {
        std::mem::take(&mut *lock(&self.frames))
    }
}

impl FrameSink for RecordingSink {
    fn send(&self, ifindex: u32, frame: &[u8]) -> io::Result<()> {
        if let Some(errno) = *lock(&self.errno) {
            return Err(io::Error::from_raw_os_error(errno));
        }
        lock(&self.frames).push((ifindex, frame.to_vec()));
        Ok(())
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
