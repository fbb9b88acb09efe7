//! The inotify thread over the binding directory: every change becomes one
//! `Control` event; an overflowed queue or a re-created directory becomes a rescan.

use std::collections::HashMap;
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crossbeam_channel::Sender;
use inotify::{EventMask, Inotify, WatchMask};
use log::{debug, error, info, warn};

use crate::binding::{self, BindingError, MAX_FILE_SIZE};
use crate::event::{BindingRead, Control};

/// Files read in one rescan at most; a directory with more is cut short (and logged).
const MAX_FILES: usize = 100_000;

fn mask() -> WatchMask {
    WatchMask::CREATE
        | WatchMask::CLOSE_WRITE
        | WatchMask::MOVED_TO
        | WatchMask::MOVED_FROM
        | WatchMask::DELETE
        | WatchMask::DELETE_SELF
        | WatchMask::MOVE_SELF
        | WatchMask::ONLYDIR
}

/// Reads one binding file; `None` when it no longer exists or is not a regular file.
pub fn read_file(dir: &Path, name: &str) -> Option<BindingRead> {
    let path = dir.join(name);
    let f = fs::File::open(&path).ok()?;
    let meta = f.metadata().ok()?;
    if !meta.is_file() {
        return None;
    }
    if meta.len() > MAX_FILE_SIZE {
        return Some(Err(BindingError::TooLarge));
    }
    let mut buf = Vec::with_capacity(meta.len() as usize);
    if f.take(MAX_FILE_SIZE + 1).read_to_end(&mut buf).is_err() {
        return None;
    }
    Some(binding::parse(name, &buf))
}

/// Every binding file in `dir` now.
pub fn scan(dir: &Path) -> io::Result<Vec<(String, BindingRead)>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir)? {
        let Ok(entry) = entry else { continue };
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if binding::is_ignored_name(&name) {
            continue;
        }
        if out.len() >= MAX_FILES {
            warn!(
                "{}: more than {MAX_FILES} files, the rest are ignored",
                dir.display()
            );
            break;
        }
        if let Some(read) = read_file(dir, &name) {
            out.push((name, read));
        }
    }
    Ok(out)
}

/// The whole directory as a rescan event. A directory that is gone means no
/// bindings; one that cannot be read (permissions, I/O) says nothing about
/// them: None, with a warning, and the bindings in force stay.
pub fn rescan_event(dir: &Path) -> Option<Control> {
    match scan(dir) {
        Ok(all) => Some(Control::Rescan(all)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            warn!("{}: binding directory missing: no bindings", dir.display());
            Some(Control::Rescan(Vec::new()))
        }
        Err(e) => {
            warn!(
                "{}: cannot rescan: {e}; the bindings in force stay",
                dir.display()
            );
            None
        }
    }
}

/// The watcher, created (and the watch added) before the first scan so that
/// nothing written during start-up is missed.
pub struct Watcher {
    dir: PathBuf,
    inotify: Inotify,
    /// False while the directory does not exist.
    watching: bool,
}

impl Watcher {
    /// Fails only when inotify itself is unavailable; a missing directory is
    /// waited for.
    pub fn new(dir: &Path) -> io::Result<Watcher> {
        let inotify = Inotify::init()?;
        let watching = match inotify.watches().add(dir, mask()) {
            Ok(_) => true,
            Err(e) => {
                warn!("{}: cannot watch binding directory: {e}", dir.display());
                false
            }
        };
        Ok(Watcher {
            dir: dir.to_path_buf(),
            inotify,
            watching,
        })
    }

    pub fn spawn(self, tx: Sender<Control>) -> io::Result<std::thread::JoinHandle<()>> {
        std::thread::Builder::new()
            .name("inotify".into())
            .spawn(move || self.run(tx))
    }

    fn rescan(&self, tx: &Sender<Control>) -> bool {
        match rescan_event(&self.dir) {
            Some(ev) => tx.send(ev).is_ok(),
            None => true,
        }
    }

    fn run(mut self, tx: Sender<Control>) {
        let mut buf = vec![0u8; 64 * 1024];
        if !self.watching && !self.rewatch(&tx) {
            return;
        }
        loop {
            let events = match self.inotify.read_events_blocking(&mut buf) {
                Ok(ev) => ev,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    error!("inotify read failed: {e}");
                    std::thread::sleep(Duration::from_secs(1));
                    continue;
                }
            };
            let mut rescan = false;
            let mut dir_gone = false;
            // Last word per name wins; order of first appearance is kept.
            let mut changes: Vec<(String, bool)> = Vec::new();
            let mut seen: HashMap<String, usize> = HashMap::new();
            for ev in events {
                if ev.mask.contains(EventMask::Q_OVERFLOW) {
                    rescan = true;
                    continue;
                }
                if ev
                    .mask
                    .intersects(EventMask::DELETE_SELF | EventMask::MOVE_SELF | EventMask::IGNORED)
                {
                    if ev.mask.contains(EventMask::MOVE_SELF) {
                        // The watch follows the moved directory; drop it.
                        let _ = self.inotify.watches().remove(ev.wd.clone());
                    }
                    dir_gone = true;
                    continue;
                }
                if ev.mask.contains(EventMask::ISDIR) {
                    continue;
                }
                let Some(name) = ev.name.and_then(|n| n.to_str()) else {
                    continue;
                };
                if binding::is_ignored_name(name) {
                    continue;
                }
                let removed = ev
                    .mask
                    .intersects(EventMask::DELETE | EventMask::MOVED_FROM);
                if !removed && ev.mask == EventMask::CREATE {
                    // A new empty file is being written: CLOSE_WRITE follows. A hard
                    // link arrives complete with nothing but this CREATE.
                    let has_data = fs::metadata(self.dir.join(name))
                        .map(|m| m.len() > 0)
                        .unwrap_or(false);
                    if !has_data {
                        continue;
                    }
                }
                match seen.get(name) {
                    Some(&i) => changes[i].1 = removed,
                    None => {
                        seen.insert(name.to_string(), changes.len());
                        changes.push((name.to_string(), removed));
                    }
                }
            }
            if dir_gone {
                if !self.rewatch(&tx) {
                    return;
                }
                continue;
            }
            if rescan {
                info!(
                    "inotify queue overflowed: rescanning {}",
                    self.dir.display()
                );
                if !self.rescan(&tx) {
                    return;
                }
                continue;
            }
            for (name, removed) in changes {
                let read = if removed {
                    None
                } else {
                    read_file(&self.dir, &name)
                };
                debug!(
                    "binding file {name}: {}",
                    if read.is_some() { "changed" } else { "removed" }
                );
                if tx.send(Control::Binding { name, read }).is_err() {
                    return;
                }
            }
        }
    }

    /// The directory was removed or moved away: drop every binding, wait for
    /// it to come back, watch it again and rescan.
    fn rewatch(&mut self, tx: &Sender<Control>) -> bool {
        warn!(
            "{}: binding directory went away; waiting for it to return",
            self.dir.display()
        );
        if tx.send(Control::Rescan(Vec::new())).is_err() {
            return false;
        }
        loop {
            match self.inotify.watches().add(&self.dir, mask()) {
                Ok(_) => {
                    info!("{}: binding directory is back", self.dir.display());
                    return self.rescan(tx);
                }
                Err(_) => std::thread::sleep(Duration::from_millis(500)),
            }
        }
    }
}
