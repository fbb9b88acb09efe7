//! Process life cycle: pid file, detaching from the terminal, and dropping
//! root for a plain user with only the capabilities the sockets still need.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use caps::{CapSet, Capability, CapsHashSet};
use nix::unistd::{Gid, Pid, Uid, User};

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("another nfdhcpd (pid {pid}) holds {path}")]
    Running { pid: i32, path: String },
    #[error("pid file {path}: {err}")]
    PidFile { path: String, err: std::io::Error },
    #[error("user {0:?} does not exist")]
    NoUser(String),
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

/// Forks into the background, detached from the terminal. Must be called
/// before any thread is started.
pub fn detach() -> Result<(), DaemonError> {
    daemonize::Daemonize::new()
        .working_directory("/")
        .umask(0o022)
        .start()
        .map_err(|e| DaemonError::Detach(e.to_string()))
}

/// Resolves a user given by name or numeric uid.
pub fn lookup_user(spec: &str) -> Result<User, DaemonError> {
    let found = match spec.parse::<u32>() {
        Ok(uid) => User::from_uid(Uid::from_raw(uid)),
        Err(_) => User::from_name(spec),
    };
    found
        .ok()
        .flatten()
        .ok_or_else(|| DaemonError::NoUser(spec.to_string()))
}

/// Switches to `spec` and its primary group, drops supplementary groups, keeps
/// only [`KEPT_CAPS`] (permitted and effective), clears the inheritable,
/// ambient and bounding sets and sets no_new_privs.
pub fn drop_privileges(spec: &str) -> Result<(u32, u32), DaemonError> {
    let user = lookup_user(spec)?;
    let fail = |err: String| DaemonError::Switch {
        user: spec.to_string(),
        err,
    };
    let gid: Gid = user.gid;
    // The bounding set can only shrink while CAP_SETPCAP is still held.
    for cap in caps::all() {
        caps::drop(None, CapSet::Bounding, cap).map_err(|e| fail(format!("bounding: {e}")))?;
    }
    // Capabilities survive setuid only with keepcaps set.
    nix::sys::prctl::set_keepcaps(true).map_err(|e| fail(format!("keepcaps: {e}")))?;
    nix::unistd::setgroups(&[]).map_err(|e| fail(format!("setgroups: {e}")))?;
    nix::unistd::setresgid(gid, gid, gid).map_err(|e| fail(format!("setgid: {e}")))?;
    nix::unistd::setresuid(user.uid, user.uid, user.uid)
        .map_err(|e| fail(format!("setuid: {e}")))?;
    let keep: CapsHashSet = KEPT_CAPS.into_iter().collect();
    caps::set(None, CapSet::Permitted, &keep).map_err(|e| fail(format!("permitted: {e}")))?;
    caps::set(None, CapSet::Effective, &keep).map_err(|e| fail(format!("effective: {e}")))?;
    caps::clear(None, CapSet::Inheritable).map_err(|e| fail(format!("inheritable: {e}")))?;
    caps::clear(None, CapSet::Ambient).map_err(|e| fail(format!("ambient: {e}")))?;
    nix::sys::prctl::set_keepcaps(false).map_err(|e| fail(format!("keepcaps: {e}")))?;
    set_no_new_privs().map_err(|e| fail(format!("no_new_privs: {e}")))?;
    Ok((user.uid.as_raw(), gid.as_raw()))
}

fn set_no_new_privs() -> Result<(), nix::Error> {
    nix::sys::prctl::set_no_new_privs()
}
