//! The binding table of the VM-host mode, as the state thread keeps it:
//! what each binding-file event does to it (a file that cannot be read
//! leaves the previous binding in force; only a file that is gone takes
//! it away), its publication to the queue threads, and the Router
//! Advertisements sent without a solicitation (periodic, on a change, and
//! withdrawing ones).

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use log::{debug, info, warn};

use crate::core::binding::{self, Binding};
use crate::core::ndp;
use crate::daemon::counters::{bump, fmt_map, Totals};
use crate::daemon::event::FileRead;
use crate::daemon::warnings::{self, WarnLimiter};
use crate::host::answers::Answers;
use crate::host::link::{FrameSink, Interfaces};
use crate::host::published::{BindingMap, Published};

pub struct Bindings {
    datapath: PathBuf,
    map: BindingMap,
    /// Where the queue threads read the bindings from.
    published: Arc<Published>,
    /// Bindings changed since the last publication.
    dirty: bool,
    /// Binding files not in force as they are, with the reason (for SIGUSR1
    /// and to log each cause once).
    bad_files: BTreeMap<String, String>,
    /// Names refused unparsed, by reason (metrics label).
    refused_files: BTreeMap<&'static str, u64>,
    answers: Arc<Answers>,
    link: Box<dyn Interfaces + Send>,
    sender: Arc<dyn FrameSink>,
    warn: Arc<Mutex<WarnLimiter>>,
    /// RAs sent, withdrawing ones apart.
    ras: u64,
    ra_withdrawals: u64,
    send_errors: u64,
    binding_errors: u64,
}

impl Bindings {
    pub fn new(
        datapath: PathBuf,
        answers: Arc<Answers>,
        published: Arc<Published>,
        link: Box<dyn Interfaces + Send>,
        sender: Arc<dyn FrameSink>,
        warn: Arc<Mutex<WarnLimiter>>,
    ) -> Bindings {
        Bindings {
            datapath,
            map: BindingMap::new(),
            published,
            dirty: false,
            bad_files: BTreeMap::new(),
            refused_files: BTreeMap::new(),
            answers,
            link,
            sender,
            warn,
            ras: 0,
            ra_withdrawals: 0,
            send_errors: 0,
            binding_errors: 0,
        }
    }

    pub fn map(&self) -> &BindingMap {
        &self.map
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Binding files not in force as they are, and why.
    pub fn ignored(&self) -> &BTreeMap<String, String> {
        &self.bad_files
    }

    /// Names left unread, by reason.
    pub fn refused_files(&self) -> &BTreeMap<&'static str, u64> {
        &self.refused_files
    }

    /// Whether IPv6 Router Advertisements are sent at all.
    pub fn advertises(&self) -> bool {
        self.answers.ndp.is_some()
    }

    /// Makes the bindings as they are now the ones the queue threads answer from.
    pub fn publish(&mut self) {
        if self.dirty {
            self.published.publish(self.map.clone());
            self.dirty = false;
        }
    }

    /// Only a file that is gone takes its binding away: one that cannot be
    /// read or parsed now leaves the previous binding in force.
    pub fn apply(&mut self, name: String, read: FileRead, verbose: bool) {
        match read {
            FileRead::Gone => {
                self.bad_files.remove(&name);
                self.forget_warnings(&name);
                if let Some(old) = self.map.remove(name.as_str()) {
                    self.dirty = true;
                    info!("binding {name} removed");
                    // Withdraw the host as the guest's router.
                    self.ra_for(old, true);
                }
            }
            FileRead::Parsed(Ok(b)) => {
                let was_bad = self.bad_files.remove(&name).is_some();
                let line = describe(&b);
                let lacking = binding::shortcomings(&b);
                let b = Arc::new(b);
                let old = self.map.insert(Arc::from(name.as_str()), b.clone());
                let changed = old.as_ref() != Some(&b);
                if changed {
                    self.forget_warnings(&name);
                }
                self.dirty = true;
                if verbose || was_bad {
                    let what = if old.is_some() { "updated" } else { "added" };
                    info!("binding {name} {what}: {line}");
                } else {
                    debug!("binding {name}: {line}");
                }
                // Once per content: a rescan that finds it unchanged says nothing.
                if let Some(why) = lacking.filter(|_| changed) {
                    warn!("binding {name}: {why}");
                }
                // A guest already up learns the new prefix without waiting a period.
                self.send_ra(&name, false);
            }
            FileRead::Parsed(Err(e)) => {
                self.binding_errors += 1;
                warn!(
                    "binding file {}: {e}; ignored{}",
                    self.datapath.join(&name).display(),
                    self.keep(&name)
                );
                self.bad_files.insert(name, e.to_string());
            }
            FileRead::Refused(e) => {
                let why = e.to_string();
                // Once per file and cause, not on every event while it lasts.
                if self.bad_files.get(&name) != Some(&why) {
                    bump(&mut self.refused_files, e.name());
                    warn!(
                        "binding file {}: {why}; ignored{}",
                        self.datapath.join(&name).display(),
                        self.keep(&name)
                    );
                }
                self.bad_files.insert(name, why);
            }
        }
    }

    fn keep(&self, name: &str) -> &'static str {
        if self.map.contains_key(name) {
            "; the previous binding stays in force"
        } else {
            ""
        }
    }

    fn forget_warnings(&self, name: &str) {
        self.warn
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .forget_binding(name);
    }

    /// The whole directory read again: what is no longer there goes, the
    /// rest is applied quietly.
    pub fn rescan(&mut self, all: Vec<(String, FileRead)>) {
        let present: HashSet<&str> = all.iter().map(|(n, _)| n.as_str()).collect();
        let gone: Vec<String> = self
            .map
            .keys()
            .filter(|n| !present.contains(&***n))
            .map(|n| n.to_string())
            .collect();
        self.bad_files.retain(|n, _| present.contains(n.as_str()));
        for name in gone {
            self.apply(name, FileRead::Gone, true);
        }
        for (name, read) in all {
            self.apply(name, read, false);
        }
        info!(
            "{} bindings in force, {} binding files ignored",
            self.map.len(),
            self.bad_files.len()
        );
    }

    /// Unsolicited RA to every binding with SUBNET6 whose interface exists
    /// now (a re-created tap is picked up by name).
    pub fn periodic_ras(&mut self) {
        let mut names: Vec<String> = self
            .map
            .values()
            .filter(|b| b.subnet6.is_some())
            .map(|b| b.name.clone())
            .collect();
        names.sort();
        let mut sent = 0;
        for n in names {
            if self.send_ra(&n, false) {
                sent += 1;
            }
        }
        debug!("periodic RAs sent: {sent}");
    }

    /// Sends an unsolicited RA (or a withdrawing one) for binding `name`.
    fn send_ra(&mut self, name: &str, withdraw: bool) -> bool {
        let Some(b) = self.map.get(name) else {
            return false;
        };
        self.ra_for(b.clone(), withdraw)
    }

    fn ra_for(&mut self, b: Arc<Binding>, withdraw: bool) -> bool {
        let Some(params) = &self.answers.ndp else {
            return false;
        };
        if b.subnet6.is_none() {
            return false;
        }
        let (Some(ifindex), Some(mac)) = (self.link.index_of(&b.name), self.link.mac_of(&b.indev))
        else {
            return false;
        };
        let Some(frame) = ndp::periodic_ra(&b, mac, params, withdraw) else {
            return false;
        };
        let kind = if withdraw { "RA(withdraw)" } else { "RA" };
        // Nobody waits for an unsolicited RA, and a tap that is down (not
        // started yet, or going away) is no news.
        match self.sender.send(ifindex, &frame) {
            Ok(()) => {
                if withdraw {
                    self.ra_withdrawals += 1;
                } else {
                    self.ras += 1;
                }
                true
            }
            Err(e) if e.raw_os_error() == Some(libc::ENETDOWN) => {
                debug!("{kind} not sent on ifindex {ifindex}: interface down");
                false
            }
            Err(e) => {
                self.send_errors += 1;
                warnings::send_failed(&self.warn, kind, ifindex, &e);
                false
            }
        }
    }

    /// The final RA with router lifetime 0 for every binding.
    pub fn withdraw_all(&mut self) {
        let all: Vec<Arc<Binding>> = self.map.values().cloned().collect();
        let mut n = 0;
        for b in all {
            if self.ra_for(b, true) {
                n += 1;
            }
        }
        if n > 0 {
            info!("withdrew router advertisements on {n} interfaces");
        }
    }

    /// Adds this thread's own counters to `t`.
    pub fn add_to(&self, t: &mut Totals) {
        for (name, n) in [("RA", self.ras), ("RA(withdraw)", self.ra_withdrawals)] {
            if n > 0 {
                *t.answers.entry(name).or_insert(0) += n;
            }
        }
        t.send_errors += self.send_errors;
        t.binding_errors += self.binding_errors;
    }

    /// Answers this thread sent.
    pub fn answers(&self) -> u64 {
        self.ras + self.ra_withdrawals
    }

    /// The table and the ignored files, for SIGUSR1.
    pub fn dump(&self) {
        info!("--- {} bindings ---", self.map.len());
        let mut all: Vec<(&Arc<str>, &Arc<Binding>)> = self.map.iter().collect();
        all.sort_by(|a, b| a.0.cmp(b.0));
        for (n, b) in all {
            info!("binding {n}: {}", describe(b));
        }
        for (n, e) in &self.bad_files {
            info!("ignored binding file {n}: {e}");
        }
    }

    /// The refused-file counts, for SIGUSR1.
    pub fn dump_refused(&self) {
        info!("binding files refused: {}", fmt_map(&self.refused_files));
    }
}

fn describe(b: &Binding) -> String {
    let mut s = format!("mac {} host {}", b.mac, b.hostname);
    if let Some(ip) = b.ip {
        s += &format!(" ip {ip}");
    }
    if let Some(n) = b.subnet {
        s += &format!(" subnet {n}");
    }
    if let Some(g) = b.gateway {
        s += &format!(" gw {g}");
    }
    if let Some(n) = b.subnet6 {
        s += &format!(" subnet6 {n}");
    }
    if b.indev != b.name {
        s += &format!(" indev {}", b.indev);
    }
    if b.private {
        s += " private";
    }
    if b.macspoof {
        s += " macspoof";
    }
    if let Some(m) = b.mtu {
        s += &format!(" mtu {m}");
    }
    if let Some(boot) = &b.boot {
        for (key, v) in [
            ("next-server", &boot.next_server),
            ("boot-file", &boot.boot_file),
            ("uefi-boot-file", &boot.uefi_boot_file),
            ("ipxe", &boot.ipxe),
            ("http-boot", &boot.http_boot),
        ] {
            if let Some(v) = v {
                s += &format!(" {key} {v}");
            }
        }
    }
    s
}

#[cfg(test)]
mod tests;
