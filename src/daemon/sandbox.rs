//! Landlock: after start-up the daemon opens files only in its own
//! directories: it reads beneath the binding directory's parent and writes
//! in the log, metrics and pid file directories (and, in relay mode, reads
//! what name resolution needs). Applied on
//! the main thread before any other thread starts, so every thread inherits
//! it.

use std::path::{Path, PathBuf};

use landlock::{
    path_beneath_rules, Access, AccessFs, Ruleset, RulesetAttr, RulesetCreatedAttr, RulesetError,
    RulesetStatus, ABI,
};

use crate::config::Config;

/// Rights up to this ABI are handled; kernels with less enforce what they know.
const ABI_LEVEL: ABI = ABI::V3;

/// What getaddrinfo reads to resolve the backend's host name.
const RESOLVER_FILES: &[&str] = &[
    "/etc/hosts",
    "/etc/resolv.conf",
    "/etc/nsswitch.conf",
    "/etc/host.conf",
    "/etc/gai.conf",
    "/etc/services",
    "/etc/ld.so.cache",
    // NSS modules are loaded on the first look-up.
    "/lib",
    "/lib64",
    "/usr/lib",
    "/usr/lib64",
];

/// How much the kernel enforced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enforced {
    Fully,
    Partially,
    Not,
}

/// The directories the daemon keeps: `(path, writable)`.
pub fn allowed(cfg: &Config) -> Vec<(PathBuf, bool)> {
    let parent = |p: &Path| {
        p.parent()
            .filter(|d| !d.as_os_str().is_empty())
            .map(Path::to_path_buf)
    };
    // Rules hold on to inodes: a binding directory removed and made anew
    // is only readable through a rule on its parent.
    let data = parent(&cfg.general.datapath).unwrap_or_else(|| cfg.general.datapath.clone());
    let mut v = vec![(data, false)];
    if let Some(d) = &cfg.general.logdir {
        v.push((d.clone(), true));
    }
    // The metrics file is replaced by a rename in its directory.
    if let Some(d) = cfg.general.metrics_file.as_deref().and_then(parent) {
        v.push((d, true));
    }
    // The pid file is removed at exit.
    if let Some(d) = parent(&cfg.general.pidfile) {
        v.push((d, true));
    }
    if cfg.relay.enable_relay {
        v.extend(RESOLVER_FILES.iter().map(|p| (PathBuf::from(p), false)));
    }
    v
}

/// Restricts this thread and every thread it starts from now on.
pub fn restrict(cfg: &Config) -> Result<Enforced, RulesetError> {
    let dirs = allowed(cfg);
    let read: Vec<&PathBuf> = dirs.iter().filter(|(_, w)| !w).map(|(p, _)| p).collect();
    let write: Vec<&PathBuf> = dirs.iter().filter(|(_, w)| *w).map(|(p, _)| p).collect();
    let status = Ruleset::default()
        .handle_access(AccessFs::from_all(ABI_LEVEL))?
        .create()?
        .add_rules(path_beneath_rules(read, AccessFs::from_read(ABI_LEVEL)))?
        .add_rules(path_beneath_rules(write, AccessFs::from_all(ABI_LEVEL)))?
        .restrict_self()?;
    Ok(match status.ruleset {
        RulesetStatus::FullyEnforced => Enforced::Fully,
        RulesetStatus::PartiallyEnforced => Enforced::Partially,
        RulesetStatus::NotEnforced => Enforced::Not,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directories_follow_the_configuration() {
        let (mut cfg, _) = Config::parse(
            "[general]\ndatapath = /var/lib/nfdhcpd\nlogdir = /var/log/nfdhcpd\n\
             pidfile = /run/nfdhcpd/nfdhcpd.pid\n\
             metrics_file = /var/lib/prometheus/node-exporter/nfdhcpd.prom\n",
            "t.conf",
        )
        .unwrap();
        let a = allowed(&cfg);
        let has = |p: &str, w: bool| a.contains(&(PathBuf::from(p), w));
        assert!(has("/var/lib", false));
        assert!(has("/var/log/nfdhcpd", true));
        assert!(has("/run/nfdhcpd", true));
        assert!(has("/var/lib/prometheus/node-exporter", true));
        assert!(!a.iter().any(|(p, _)| p.starts_with("/etc")));
        cfg.relay.enable_relay = true;
        assert!(allowed(&cfg).contains(&(PathBuf::from("/etc/resolv.conf"), false)));
    }
}
