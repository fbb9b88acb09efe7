//! Process life cycle: pid file, detaching from the terminal, and dropping
//! root for a plain user with only the capabilities the sockets still need.

use std::fs;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use caps::{CapSet, Capability, CapsHashSet};
use nix::fcntl::OFlag;
use nix::unistd::{Gid, Group, Pid, Uid, User};

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("another nfdhcpd (pid {pid}) holds {path}")]
    Running { pid: i32, path: String },
    #[error("pid file {path}: {err}")]
    PidFile { path: String, err: std::io::Error },
    #[error("user {0:?} does not exist")]
    NoUser(String),
    #[error("group {0:?} does not exist")]
    NoGroup(String),
    #[error("missing capability {0}: start nfdhcpd as root, or grant it CAP_NET_ADMIN and CAP_NET_RAW (ambient capabilities, or `setcap cap_net_admin,cap_net_raw=ep` on the binary)")]
    MissingCap(Capability),
    #[error("cannot switch to user {user:?}: {err}")]
    Switch { user: String, err: String },
    #[error("cannot detach: {0}")]
    Detach(String),
}

/// Capabilities kept after the switch: verdicts on NFQUEUE netlink sockets
/// need CAP_NET_ADMIN on every message; CAP_NET_RAW lets AF_PACKET and raw
/// sockets be reopened.
pub const KEPT_CAPS: [Capability; 2] = [Capability::CAP_NET_ADMIN, Capability::CAP_NET_RAW];

/// The pid file; removed when dropped.
pub struct PidFile {
    path: PathBuf,
}

fn live_pid(path: &Path) -> Option<i32> {
    let text = fs::read_to_string(path).ok()?;
    let pid: i32 = text.trim().parse().ok().filter(|p| *p > 0)?;
    if pid == std::process::id() as i32 {
        return None;
    }
    // Signal 0 probes for existence; EPERM still means it is alive.
    match nix::sys::signal::kill(Pid::from_raw(pid), None) {
        Ok(()) | Err(nix::errno::Errno::EPERM) => {}
        Err(_) => return None,
    }
    // A recycled pid belonging to another program does not count.
    let comm = fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    if comm.trim() == "nfdhcpd" {
        Some(pid)
    } else {
        None
    }
}

impl PidFile {
    /// Fails when a live nfdhcpd holds `path`; a stale file is replaced.
    pub fn check(path: &Path) -> Result<(), DaemonError> {
        match live_pid(path) {
            Some(pid) => Err(DaemonError::Running {
                pid,
                path: path.display().to_string(),
            }),
            None => Ok(()),
        }
    }

    /// Writes our pid. When `owner` is given and the file's directory had to be
    /// created, the directory goes to that user so the file can be removed
    /// after privileges are dropped.
    pub fn create(path: &Path, owner: Option<(u32, u32)>) -> Result<PidFile, DaemonError> {
        Self::check(path)?;
        let err = |err| DaemonError::PidFile {
            path: path.display().to_string(),
            err,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            if !dir.exists() {
                fs::create_dir_all(dir).map_err(err)?;
                if let Some((uid, gid)) = owner {
                    // Without it only the removal at exit fails; not worth refusing to start.
                    if let Err(e) = std::os::unix::fs::chown(dir, Some(uid), Some(gid)) {
                        log::warn!("cannot hand {} to uid {uid}: {e}", dir.display());
                    }
                }
            }
        }
        let tmp = path.with_extension("pid.new");
        let mut f = fs::File::create(&tmp).map_err(err)?;
        writeln!(f, "{}", std::process::id()).map_err(err)?;
        fs::rename(&tmp, path).map_err(err)?;
        Ok(PidFile {
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// Whom the daemon runs as once it has started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// For log lines: the user name, or the uid when it has no passwd entry.
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

impl Identity {
    /// The process's own effective user and group.
    pub fn current() -> Identity {
        let uid = Uid::effective();
        let name = User::from_uid(uid)
            .ok()
            .flatten()
            .map(|u| u.name)
            .unwrap_or_else(|| uid.to_string());
        Identity {
            name,
            uid: uid.as_raw(),
            gid: Gid::effective().as_raw(),
        }
    }
}

/// Resolves `[general] user`: a name or a numeric uid, optionally followed
/// by `:group` (a name or a numeric gid). A numeric uid needs no passwd
/// entry; its group is then the one of the same number unless one is given.
pub fn resolve_user(spec: &str) -> Result<Identity, DaemonError> {
    let (user, group) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let no_user = || DaemonError::NoUser(user.to_string());
    let (name, uid, mut gid) = match user.parse::<u32>() {
        Ok(uid) => match User::from_uid(Uid::from_raw(uid)).ok().flatten() {
            Some(u) => (u.name, uid, u.gid.as_raw()),
            None => (uid.to_string(), uid, uid),
        },
        Err(_) => {
            let u = User::from_name(user).ok().flatten().ok_or_else(no_user)?;
            (u.name, u.uid.as_raw(), u.gid.as_raw())
        }
    };
    if let Some(g) = group {
        gid = match g.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => Group::from_name(g)
                .ok()
                .flatten()
                .ok_or_else(|| DaemonError::NoGroup(g.to_string()))?
                .gid
                .as_raw(),
        };
    }
    Ok(Identity { name, uid, gid })
}

/// Fails, naming the first one, unless [`KEPT_CAPS`] are all permitted: as
/// root they are; without root they must be granted (ambient capabilities
/// or file capabilities on the binary). Raises them into the effective set,
/// which file capabilities granted as `=p` alone leave empty.
pub fn check_capabilities() -> Result<(), DaemonError> {
    for cap in KEPT_CAPS {
        if !caps::has_cap(None, CapSet::Permitted, cap).unwrap_or(false) {
            return Err(DaemonError::MissingCap(cap));
        }
        caps::raise(None, CapSet::Effective, cap).map_err(|e| DaemonError::Switch {
            user: Identity::current().name,
            err: format!("effective ({cap}): {e}"),
        })?;
    }
    Ok(())
}

/// Keeps only [`KEPT_CAPS`] (permitted and effective), clears the
/// inheritable and ambient sets and, while CAP_SETPCAP allows it, every
/// capability of the bounding set, and sets no_new_privs. With `to`, first
/// switches to that user and group and drops supplementary groups; uid 0
/// (`user = root`) keeps its uid but loses the other capabilities all the same.
pub fn drop_privileges(to: Option<&Identity>) -> Result<(), DaemonError> {
    let fail = |err: String| DaemonError::Switch {
        user: to.map_or_else(|| Identity::current().name, |i| i.name.clone()),
        err,
    };
    // The bounding set can only shrink while CAP_SETPCAP is held; a start
    // without root keeps the one it was given. Only the capabilities this
    // kernel knows can be dropped (EINVAL for the others).
    if caps::has_cap(None, CapSet::Effective, Capability::CAP_SETPCAP).unwrap_or(false) {
        for cap in caps::runtime::thread_all_supported() {
            caps::drop(None, CapSet::Bounding, cap)
                .map_err(|e| fail(format!("bounding set ({cap}): {e}")))?;
        }
    }
    if let Some(id) = to {
        // Capabilities survive setuid only with keepcaps set.
        nix::sys::prctl::set_keepcaps(true).map_err(|e| fail(format!("keepcaps: {e}")))?;
        nix::unistd::setgroups(&[]).map_err(|e| fail(format!("setgroups: {e}")))?;
        let (uid, gid) = (Uid::from_raw(id.uid), Gid::from_raw(id.gid));
        nix::unistd::setresgid(gid, gid, gid).map_err(|e| fail(format!("setgid: {e}")))?;
        nix::unistd::setresuid(uid, uid, uid).map_err(|e| fail(format!("setuid: {e}")))?;
    }
    let keep: CapsHashSet = KEPT_CAPS.into_iter().collect();
    // Effective first: the kernel refuses a permitted set that no longer
    // holds every effective capability (it does while uid 0 stays).
    caps::set(None, CapSet::Effective, &keep).map_err(|e| fail(format!("effective: {e}")))?;
    caps::set(None, CapSet::Permitted, &keep).map_err(|e| fail(format!("permitted: {e}")))?;
    caps::clear(None, CapSet::Inheritable).map_err(|e| fail(format!("inheritable: {e}")))?;
    caps::clear(None, CapSet::Ambient).map_err(|e| fail(format!("ambient: {e}")))?;
    if to.is_some() {
        nix::sys::prctl::set_keepcaps(false).map_err(|e| fail(format!("keepcaps: {e}")))?;
    }
    nix::sys::prctl::set_no_new_privs().map_err(|e| fail(format!("no_new_privs: {e}")))?;
    Ok(())
}

/// The write end of the pipe the parent of a detached start reads.
static READINESS: Mutex<Option<OwnedFd>> = Mutex::new(None);

/// What the daemon writes to the waiting parent: one line.
const READY_LINE: &str = "ready";

/// Forks into the background, detached from the terminal, and returns in
/// the daemon. The process that was started waits until the daemon calls
/// [`notify_ready`] (exit 0) or [`notify_failed`] (the error on stderr,
/// exit 1), or exits, so an init script sees a failed start. Must be called
/// before any thread is started.
pub fn detach() -> Result<(), DaemonError> {
    use nix::unistd::{fork, ForkResult};
    let fail = |what: &str, e: nix::Error| DaemonError::Detach(format!("{what}: {e}"));
    let (read_end, write_end) =
        nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| fail("pipe", e))?;
    // SAFETY: no other thread exists yet (documented precondition).
    match unsafe { fork() }.map_err(|e| fail("fork", e))? {
        ForkResult::Parent { child } => {
            drop(write_end);
            // The intermediate child exits as soon as the daemon is forked off.
            let _ = nix::sys::wait::waitpid(child, None);
            std::process::exit(wait_for_daemon(read_end));
        }
        ForkResult::Child => {}
    }
    drop(read_end);
    nix::unistd::setsid().map_err(|e| fail("setsid", e))?;
    // SAFETY: still single-threaded. The second fork makes sure the daemon,
    // no session leader, can never acquire a controlling terminal.
    if let ForkResult::Parent { .. } = unsafe { fork() }.map_err(|e| fail("fork", e))? {
        // SAFETY: _exit skips the atexit handlers the parent also owns.
        unsafe { libc::_exit(0) };
    }
    nix::unistd::chdir("/").map_err(|e| fail("chdir /", e))?;
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o022));
    let null = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
        .map_err(|e| DaemonError::Detach(format!("/dev/null: {e}")))?;
    for fd in 0..=2 {
        // SAFETY: dup2 onto the standard descriptors, which we own.
        if unsafe { libc::dup2(null.as_raw_fd(), fd) } < 0 {
            return Err(DaemonError::Detach(format!(
                "dup2: {}",
                std::io::Error::last_os_error()
            )));
        }
    }
    *READINESS.lock().unwrap_or_else(|e| e.into_inner()) = Some(write_end);
    Ok(())
}

/// In the parent of a detached start: the exit code, after the daemon's word.
fn wait_for_daemon(read_end: OwnedFd) -> i32 {
    let mut text = String::new();
    // Bounded: one line is expected.
    let _ = fs::File::from(read_end)
        .take(4096)
        .read_to_string(&mut text);
    let text = text.trim();
    if text == READY_LINE {
        return 0;
    }
    match text.strip_prefix("error: ") {
        Some(e) => eprintln!("nfdhcpd: {e}"),
        None => eprintln!("nfdhcpd: the daemon exited during start-up; its log says why"),
    }
    1
}

fn tell_parent(line: &str) -> bool {
    let fd = READINESS.lock().unwrap_or_else(|e| e.into_inner()).take();
    match fd {
        Some(fd) => {
            let _ = fs::File::from(fd).write_all(format!("{line}\n").as_bytes());
            true
        }
        None => false,
    }
}

/// Every queue is bound and the bindings are read: a detached start's
/// parent exits 0. Nothing happens in the foreground.
pub fn notify_ready() {
    tell_parent(READY_LINE);
}

/// The daemon stops before it served: a detached start's parent prints
/// `err` and exits 1. False when no parent waits (foreground, or not
/// detached yet).
pub fn notify_failed(err: &str) -> bool {
    tell_parent(&format!("error: {}", err.replace('\n', " ")))
}

/// Whether `id` may create files in `dir`, by its mode bits (uid 0 always may).
pub fn writable_by(dir: &Path, id: &Identity) -> bool {
    use std::os::unix::fs::MetadataExt;
    if id.uid == 0 {
        return true;
    }
    let Ok(m) = fs::metadata(dir) else {
        return false;
    };
    let bits = if m.uid() == id.uid {
        0o300
    } else if m.gid() == id.gid {
        0o030
    } else {
        0o003
    };
    m.mode() & bits == bits
}
