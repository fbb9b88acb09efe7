//! The inotify thread over the binding directory: every change becomes one
//! `Control` event; an overflowed queue, a re-created directory or SIGHUP
//! becomes a rescan.
//!
//! Nothing here may block on a file someone else controls: only regular
//! files are opened, never through a symbolic link, and never in a mode in
//! which opening can wait (a FIFO without a writer would).

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;
use inotify::{EventMask, Inotify, WatchDescriptor, WatchMask};
use log::{debug, error, info, warn};
use nix::poll::{PollFd, PollFlags, PollTimeout};

use crate::core::binding::{self, BindingError, MAX_FILE_SIZE};
use crate::daemon::event::{Control, FileError, FileRead};
use crate::daemon::process::Identity;
use crate::daemon::sdnotify::{self, Heartbeat};

/// Files read in one rescan at most; a directory with more is cut short (and logged).
const MAX_FILES: usize = 100_000;

/// How often a directory that is missing or cannot be read is tried again.
pub const RETRY: Duration = Duration::from_secs(2);

fn mask() -> WatchMask {
    WatchMask::CREATE
        | WatchMask::CLOSE_WRITE
        | WatchMask::MOVED_TO
        | WatchMask::MOVED_FROM
        | WatchMask::DELETE
        | WatchMask::ATTRIB
        | WatchMask::DELETE_SELF
        | WatchMask::MOVE_SELF
        | WatchMask::ONLYDIR
}

/// Why a file of this type is not read; None for a regular file.
fn not_regular(t: fs::FileType) -> Option<FileError> {
    if t.is_file() {
        None
    } else if t.is_symlink() {
        Some(FileError::Symlink)
    } else if t.is_dir() {
        Some(FileError::Directory)
    } else if t.is_fifo() {
        Some(FileError::Fifo)
    } else if t.is_socket() {
        Some(FileError::Socket)
    } else {
        Some(FileError::Device)
    }
}

fn unreadable(who: &str, e: &io::Error) -> FileRead {
    FileRead::Refused(FileError::Unreadable {
        user: who.to_string(),
        err: e.to_string(),
    })
}

/// Reads binding file `name` in `dir`; `who` names the reader in errors.
///
/// The type is checked before opening (opening a device can have effects
/// of its own) and again on the open file, in case the name was replaced in
/// between. The open never follows a link and never waits.
pub fn read_file(dir: &Path, name: &str, who: &str) -> FileRead {
    let path = dir.join(name);
    match fs::symlink_metadata(&path) {
        Ok(m) => {
            if let Some(e) = not_regular(m.file_type()) {
                return FileRead::Refused(e);
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => return FileRead::Gone,
        Err(e) => return unreadable(who, &e),
    }
    // std adds O_CLOEXEC itself.
    let f = match fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(&path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return FileRead::Gone,
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return FileRead::Refused(FileError::Symlink)
        }
        Err(e) => return unreadable(who, &e),
    };
    let meta = match f.metadata() {
        Ok(m) => m,
        Err(e) => return unreadable(who, &e),
    };
    if let Some(e) = not_regular(meta.file_type()) {
        return FileRead::Refused(e);
    }
    if meta.len() > MAX_FILE_SIZE {
        return FileRead::Parsed(Err(BindingError::TooLarge));
    }
    let mut buf = Vec::with_capacity(meta.len() as usize);
    if let Err(e) = f.take(MAX_FILE_SIZE + 1).read_to_end(&mut buf) {
        return unreadable(who, &e);
    }
    FileRead::Parsed(binding::parse(name, &buf))
}

/// What a CREATE with nothing after it in the same batch says. A new file is
/// being written and its CLOSE_WRITE is still to come: None, nothing to read
/// yet. A hard link (more than one name, st_nlink > 1) is complete at once
/// and gets no other event; anything but a regular file is refused now.
pub fn created(dir: &Path, name: &str, who: &str) -> Option<FileRead> {
    match fs::symlink_metadata(dir.join(name)) {
        Ok(m) if m.file_type().is_file() => (m.nlink() > 1).then(|| read_file(dir, name, who)),
        Ok(m) => not_regular(m.file_type()).map(FileRead::Refused),
        // Gone again: its DELETE follows.
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => Some(unreadable(who, &e)),
    }
}

/// Every binding file in `dir` now.
pub fn scan(dir: &Path, who: &str) -> io::Result<Vec<(String, FileRead)>> {
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
        match read_file(dir, &name, who) {
            FileRead::Gone => {}
            read => out.push((name, read)),
        }
    }
    Ok(out)
}

/// The user the daemon reads as, for messages. Names are looked up when the
/// watcher is made: after the privilege drop and the sandbox the user
/// database may be out of reach.
struct Reader {
    names: Vec<(u32, String)>,
}

impl Reader {
    fn new(user: Option<&Identity>) -> Reader {
        let me = Identity::current();
        let mut names = vec![(me.uid, me.name)];
        if let Some(u) = user {
            names.push((u.uid, u.name.clone()));
        }
        Reader { names }
    }

    /// `nobody (uid 65534)`.
    fn describe(&self) -> String {
        let uid = nix::unistd::geteuid().as_raw();
        match self.names.iter().find(|(u, _)| *u == uid) {
            Some((_, n)) => format!("{n} (uid {uid})"),
            None => format!("uid {uid}"),
        }
    }
}

/// One name's net change in a batch of events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Change {
    /// Deleted or moved out: the binding goes.
    Removed,
    /// Closed after writing, or moved in: complete, read it.
    Written,
    /// Created and nothing more yet; `after_removal` when an earlier event
    /// of the batch removed what was there.
    Created { after_removal: bool },
    /// Metadata changed: worth a read only if it could not be read before.
    Attrib,
}

/// What a batch of events asks for.
#[derive(Debug, Default, PartialEq, Eq)]
struct Plan {
    rescan: bool,
    dir_gone: bool,
    /// The directory's own metadata changed (a chmod may have made it readable).
    dir_attrib: bool,
    /// In order of first appearance.
    changes: Vec<(String, Change)>,
}

/// Folds a batch of `(mask, name)` events of our watch into one change per
/// name: the last word wins, except that a removal is not forgotten by a
/// CREATE after it, nor a read by a later metadata change.
fn plan<'a>(events: impl IntoIterator<Item = (EventMask, Option<&'a str>)>) -> Plan {
    let mut p = Plan::default();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (mask, name) in events {
        if mask.contains(EventMask::Q_OVERFLOW) {
            p.rescan = true;
            continue;
        }
        if mask.intersects(EventMask::DELETE_SELF | EventMask::MOVE_SELF | EventMask::IGNORED) {
            p.dir_gone = true;
            continue;
        }
        let Some(name) = name.filter(|n| !n.is_empty()) else {
            if mask.contains(EventMask::ATTRIB) {
                p.dir_attrib = true;
            }
            continue;
        };
        if binding::is_ignored_name(name) {
            continue;
        }
        let new = if mask.intersects(EventMask::DELETE | EventMask::MOVED_FROM) {
            Change::Removed
        } else if mask.intersects(EventMask::CLOSE_WRITE | EventMask::MOVED_TO) {
            Change::Written
        } else if mask.contains(EventMask::CREATE) {
            Change::Created {
                after_removal: false,
            }
        } else if mask.contains(EventMask::ATTRIB) {
            Change::Attrib
        } else {
            continue;
        };
        match seen.get(name) {
            Some(&i) => {
                let old = p.changes[i].1;
                p.changes[i].1 = match (old, new) {
                    (_, Change::Attrib) => old,
                    (Change::Attrib, _) => new,
                    (_, Change::Created { .. }) => Change::Created {
                        after_removal: true,
                    },
                    _ => new,
                };
            }
            None => {
                seen.insert(name.to_string(), p.changes.len());
                p.changes.push((name.to_string(), new));
            }
        }
    }
    p
}

/// Asks the inotify thread for a rescan (SIGHUP), from any thread; never blocks.
pub struct RescanHandle(UnixStream);

impl RescanHandle {
    pub fn request(&self) {
        // A full socket means a request is already pending: nothing is lost.
        let _ = (&self.0).write(&[1]);
    }
}

/// The watcher, created (and the watch added) before the first scan so that
/// nothing written during start-up is missed.
pub struct Watcher {
    dir: PathBuf,
    inotify: Inotify,
    /// None while the directory is missing or cannot be watched.
    wd: Option<WatchDescriptor>,
    reader: Reader,
    /// Why the directory could not be read, last time: while set, it is
    /// tried again every RETRY. Logged once per cause.
    dir_trouble: Option<String>,
    /// Files that could not be read: a chmod (ATTRIB) makes them worth a read.
    unreadable: HashSet<String>,
    wake: UnixStream,
    wake_tx: UnixStream,
}

impl Watcher {
    /// Fails only when inotify itself is unavailable; a missing or unreadable
    /// directory is waited for. `user`: the configured `[general] user`,
    /// named in messages once the daemon runs as it.
    pub fn new(dir: &Path, user: Option<&Identity>) -> io::Result<Watcher> {
        let (wake, wake_tx) = UnixStream::pair()?;
        wake.set_nonblocking(true)?;
        wake_tx.set_nonblocking(true)?;
        let mut w = Watcher {
            dir: dir.to_path_buf(),
            inotify: Inotify::init()?,
            wd: None,
            reader: Reader::new(user),
            dir_trouble: None,
            unreadable: HashSet::new(),
            wake,
            wake_tx,
        };
        if let Err(e) = w.watch() {
            if e.kind() == io::ErrorKind::NotFound {
                warn!(
                    "{}: binding directory missing: waiting for it",
                    dir.display()
                );
            }
            // Other causes are reported by the first scan, which fails alike.
        }
        Ok(w)
    }

    fn watch(&mut self) -> io::Result<()> {
        self.wd = Some(self.inotify.watches().add(&self.dir, mask())?);
        Ok(())
    }

    /// The bindings before the daemon is ready. A directory that cannot be
    /// read yields none and is tried again by the inotify thread.
    pub fn initial_scan(&mut self) -> Vec<(String, FileRead)> {
        let who = self.reader.describe();
        match scan(&self.dir, &who) {
            Ok(all) => {
                self.note_all(&all);
                all
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => {
                self.trouble(&e, &who);
                Vec::new()
            }
        }
    }

    /// For SIGHUP: the rescan is done by the inotify thread, in order with
    /// the changes it applies.
    pub fn rescan_handle(&self) -> io::Result<RescanHandle> {
        Ok(RescanHandle(self.wake_tx.try_clone()?))
    }

    pub fn spawn(
        self,
        tx: Sender<Control>,
        heartbeat: Arc<Heartbeat>,
    ) -> io::Result<std::thread::JoinHandle<()>> {
        std::thread::Builder::new()
            .name("inotify".into())
            .spawn(move || self.run(tx, &heartbeat))
    }

    /// Logs, once per cause, that the directory cannot be read, and asks
    /// for the periodic retry.
    fn trouble(&mut self, e: &io::Error, who: &str) {
        let cause = e.to_string();
        if self.dir_trouble.as_deref() != Some(cause.as_str()) {
            warn!(
                "{}: cannot read the binding directory as {who}: {e}; cannot rescan, \
                 the bindings in force stay; retrying every {} s",
                self.dir.display(),
                RETRY.as_secs()
            );
        }
        self.dir_trouble = Some(cause);
    }

    fn note(&mut self, name: &str, read: &FileRead) {
        if matches!(read, FileRead::Refused(FileError::Unreadable { .. })) {
            self.unreadable.insert(name.to_string());
        } else {
            self.unreadable.remove(name);
        }
    }

    fn note_all(&mut self, all: &[(String, FileRead)]) {
        self.unreadable.clear();
        for (name, read) in all {
            self.note(name, read);
        }
    }

    /// The whole directory as a rescan event. A directory that is gone means
    /// no bindings; one that cannot be read (permissions, I/O) says nothing
    /// about them: they stay, and it is tried again later.
    fn rescan(&mut self, tx: &Sender<Control>) -> bool {
        let who = self.reader.describe();
        match scan(&self.dir, &who) {
            Ok(all) => {
                if self.dir_trouble.take().is_some() {
                    info!("{}: binding directory readable again", self.dir.display());
                }
                self.note_all(&all);
                tx.send(Control::Rescan(all)).is_ok()
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                warn!(
                    "{}: binding directory missing: no bindings",
                    self.dir.display()
                );
                self.unreadable.clear();
                tx.send(Control::Rescan(Vec::new())).is_ok()
            }
            Err(e) => {
                self.trouble(&e, &who);
                true
            }
        }
    }

    /// Waits for inotify events, a rescan request or `timeout`; returns
    /// (events ready, rescan requested).
    fn wait(&self, timeout: Option<Duration>) -> (bool, bool) {
        let timeout = match timeout {
            None => PollTimeout::NONE,
            Some(t) => PollTimeout::try_from(t).unwrap_or(PollTimeout::MAX),
        };
        let mut fds = [
            PollFd::new(self.inotify.as_fd(), PollFlags::POLLIN),
            PollFd::new(self.wake.as_fd(), PollFlags::POLLIN),
        ];
        match nix::poll::poll(&mut fds, timeout) {
            Ok(_) => {
                let ready = |f: &PollFd| f.revents().is_some_and(|r| !r.is_empty());
                (ready(&fds[0]), ready(&fds[1]))
            }
            Err(nix::errno::Errno::EINTR) => (false, false),
            Err(e) => {
                error!("inotify poll failed: {e}");
                std::thread::sleep(Duration::from_secs(1));
                (false, false)
            }
        }
    }

    fn run(mut self, tx: Sender<Control>, heartbeat: &Heartbeat) {
        let mut buf = vec![0u8; 64 * 1024];
        let mut next_retry = Instant::now() + RETRY;
        // Under systemd's watchdog the thread wakes up now and then.
        let idle = sdnotify::watchdog().map(|_| sdnotify::IDLE_WAKE);
        loop {
            heartbeat.beat();
            let retrying = self.wd.is_none() || self.dir_trouble.is_some();
            let timeout = retrying.then(|| next_retry.saturating_duration_since(Instant::now()));
            let timeout = match (timeout, idle) {
                (Some(t), Some(i)) => Some(t.min(i)),
                (t, i) => t.or(i),
            };
            let (events, requested) = self.wait(timeout);
            if requested {
                let mut sink = [0u8; 64];
                while matches!((&self.wake).read(&mut sink), Ok(n) if n > 0) {}
                if !self.rescan(&tx) || tx.send(Control::Reloaded).is_err() {
                    return;
                }
            }
            if events && !self.on_events(&mut buf, &tx) {
                return;
            }
            let retrying = self.wd.is_none() || self.dir_trouble.is_some();
            if retrying && Instant::now() >= next_retry {
                next_retry = Instant::now() + RETRY;
                if !self.retry(&tx) {
                    return;
                }
            }
        }
    }

    /// Tries the directory again: watch it if it is not watched, rescan.
    fn retry(&mut self, tx: &Sender<Control>) -> bool {
        if self.wd.is_none() {
            match self.watch() {
                Ok(()) => info!("{}: binding directory is back", self.dir.display()),
                // Still missing: said already.
                Err(e) if e.kind() == io::ErrorKind::NotFound => return true,
                Err(e) => {
                    let who = self.reader.describe();
                    self.trouble(&e, &who);
                    return true;
                }
            }
        }
        self.rescan(tx)
    }

    /// Reads and applies one batch of events.
    fn on_events(&mut self, buf: &mut [u8], tx: &Sender<Control>) -> bool {
        let events = match self.inotify.read_events(buf) {
            Ok(ev) => ev,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) =>
            {
                return true
            }
            Err(e) => {
                error!("inotify read failed: {e}");
                std::thread::sleep(Duration::from_secs(1));
                return true;
            }
        };
        let wd = self.wd.clone();
        // Events of an earlier watch (the directory before it went away) are stale.
        let p = plan(
            events
                .filter(|ev| ev.mask.contains(EventMask::Q_OVERFLOW) || Some(&ev.wd) == wd.as_ref())
                .map(|ev| (ev.mask, ev.name.and_then(|n| n.to_str()))),
        );
        if p.dir_gone {
            return self.gone(tx);
        }
        if p.rescan {
            info!(
                "inotify queue overflowed: rescanning {}",
                self.dir.display()
            );
            return self.rescan(tx);
        }
        if p.dir_attrib && self.dir_trouble.is_some() && !self.rescan(tx) {
            return false;
        }
        let who = self.reader.describe();
        for (name, change) in p.changes {
            let read = match change {
                Change::Removed => Some(FileRead::Gone),
                Change::Written => Some(read_file(&self.dir, &name, &who)),
                Change::Created { after_removal } => {
                    created(&self.dir, &name, &who).or(after_removal.then_some(FileRead::Gone))
                }
                Change::Attrib => self
                    .unreadable
                    .contains(&name)
                    .then(|| read_file(&self.dir, &name, &who)),
            };
            let Some(read) = read else { continue };
            self.note(&name, &read);
            debug!(
                "binding file {name}: {}",
                match &read {
                    FileRead::Parsed(Ok(_)) => "changed".to_string(),
                    FileRead::Parsed(Err(e)) => e.to_string(),
                    FileRead::Gone => "removed".to_string(),
                    FileRead::Refused(e) => e.to_string(),
                }
            );
            if tx
                .send(Control::Binding {
                    name,
                    read: Box::new(read),
                })
                .is_err()
            {
                return false;
            }
        }
        true
    }

    /// The directory was removed or moved away: drop every binding, and
    /// wait for it to come back (the retry watches it again and rescans).
    fn gone(&mut self, tx: &Sender<Control>) -> bool {
        warn!(
            "{}: binding directory went away; waiting for it to return",
            self.dir.display()
        );
        if let Some(wd) = self.wd.take() {
            // After a move the watch follows the directory elsewhere.
            let _ = self.inotify.watches().remove(wd);
        }
        self.unreadable.clear();
        self.dir_trouble = None;
        tx.send(Control::Rescan(Vec::new())).is_ok()
    }
}

#[cfg(test)]
mod tests;
