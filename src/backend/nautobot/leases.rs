//! Nautobot's lease rules: what each job reads and writes. Ownership is
//! decided by the pure [`pool`] rules from what the read returned.

use std::net::Ipv4Addr;
use std::time::{Duration, SystemTime};

use serde_json::{json, Map, Value};

use super::{Created, Device, NautobotSession, PrefixInfo};
use crate::backend::pool::{self, Choice, Pool};
use crate::backend::rest::time;
use crate::backend::{
    lease_custom_fields, BackendError, Boot, BootClient, Job, Known, Lease, LeaseKind, NoLease,
    Outcome, DECLINE_HOLD_SECS, OFFER_HOLD_SECS,
};
use crate::core::mac::MacAddr;

/// Create races lost before a job gives up (it fails, it is not a NAK).
pub(super) const MAX_LOST_RACES: u32 = 24;
/// The records are read again after the first lost race and then after
/// every this many.
pub(super) const REREAD_EVERY: u32 = 3;
/// Bound on the choose/write rounds of one OFFER.
const MAX_OFFER_ROUNDS: u32 = 4 * MAX_LOST_RACES;

impl NautobotSession {
    pub(super) fn served(&mut self, job: &Job) -> Result<Option<(PrefixInfo, Pool)>, BackendError> {
        Ok(self.prefix(job.client.origin)?.map(|p| {
            let pool = Pool {
                network: p.network,
                reserved: self.shared.reserved,
            };
            (p, pool)
        }))
    }

    pub(super) fn offer(&mut self, job: &Job) -> Result<Outcome, BackendError> {
        let Some((prefix, pool)) = self.served(job)? else {
            return Ok(Outcome::NoLease(NoLease::NoPrefix));
        };
        let mac = job.client.mac;
        let mut snap = self.read(Some(mac), Some(&prefix))?;
        if snap.device.is_none() && !self.shared.allow_unknown {
            return Ok(Outcome::NoLease(NoLease::UnknownDevice));
        }
        let now = job.now;
        let hold = offer_hold(now, self.shared.lease_secs);
        let hostname = job.client.hostname.as_deref();
        let mut lost: Vec<Ipv4Addr> = Vec::new();
        let mut losses = 0u32;
        for _ in 0..MAX_OFFER_ROUNDS {
            let mut skip = lost.clone();
            skip.extend(self.shared.claims.others(mac));
            let choice = pool::choose(&snap.records, &pool, mac, now, &skip);
            let (addr, kind, record, written) = match choice {
                Choice::Static(r) => (r.addr, LeaseKind::Static, r.id, None),
                Choice::Permanent(r) => (r.addr, LeaseKind::Permanent, r.id, None),
                // The client's own record is not written at OFFER: a hold
                // written from this read could land after another server's
                // ACK for the same client and cut its lease to seconds. Only
                // a full pool reuses expired records, and the REQUEST's
                // confirm sees it if that happened meanwhile.
                Choice::Own(r) => (r.addr, LeaseKind::Dynamic, r.id, None),
                Choice::Reuse(r) => {
                    if !self.shared.claims.take(r.addr, mac) {
                        lost.push(r.addr);
                        continue;
                    }
                    let body = lease_patch(mac, hold, hostname, true);
                    let done = self.patch(&r.id, &body);
                    if !matches!(done, Ok(Some(_))) {
                        self.shared.claims.give_back(r.addr, mac);
                    }
                    if done?.is_none() {
                        snap = self.read(Some(mac), Some(&prefix))?;
                        continue;
                    }
                    (r.addr, LeaseKind::Dynamic, r.id, Some(hold))
                }
                Choice::Free(a) => {
                    if !self.shared.claims.take(a, mac) {
                        lost.push(a);
                        continue;
                    }
                    let fields = lease_fields(Some(mac), hold, hostname);
                    let created = self.create(&prefix, a, fields, dns_name(hostname));
                    match created {
                        Ok(Created::Ok(id)) => (a, LeaseKind::Dynamic, id, Some(hold)),
                        Ok(Created::Taken) => {
                            self.shared.claims.give_back(a, mac);
                            lost.push(a);
                            losses += 1;
                            if losses >= MAX_LOST_RACES {
                                return Err(BackendError::BadAnswer(format!(
                                    "lost {losses} address races in {}",
                                    prefix.network
                                )));
                            }
                            // The first loss may be to another server answering
                            // this same client: the fresh read shows its record
                            // as the client's own. Later, a read now and then.
                            if losses % REREAD_EVERY == 1 {
                                snap = self.read(Some(mac), Some(&prefix))?;
                                lost.clear();
                            }
                            continue;
                        }
                        Err(e) => {
                            self.shared.claims.give_back(a, mac);
                            return Err(e);
                        }
                    }
                }
                Choice::Exhausted => return Ok(Outcome::NoLease(NoLease::PoolExhausted)),
            };
            let lease_secs = self.shared.lease_secs;
            let mut lease = make_lease(
                job,
                &prefix,
                addr,
                kind,
                record,
                lease_secs,
                snap.device.as_ref(),
            );
            lease.recorded_until = written;
            return Ok(Outcome::Lease(lease));
        }
        Err(BackendError::BadAnswer(format!(
            "no address settled in {} after {MAX_OFFER_ROUNDS} rounds",
            prefix.network
        )))
    }

    pub(super) fn confirm(
        &mut self,
        job: &Job,
        addr: Ipv4Addr,
        lease_secs: u32,
    ) -> Result<Outcome, BackendError> {
        let Some((prefix, pool)) = self.served(job)? else {
            return Ok(Outcome::NoLease(NoLease::NoPrefix));
        };
        let mac = job.client.mac;
        let now = job.now;
        let expire = now + Duration::from_secs(u64::from(lease_secs));
        let hostname = job.client.hostname.as_deref();
        // A create lost to another server is looked at once more: it may have
        // been made for this very client.
        for _ in 0..2 {
            let snap = self.read(Some(mac), Some(&prefix))?;
            if snap.device.is_none() && !self.shared.allow_unknown {
                return Ok(Outcome::NoLease(NoLease::UnknownDevice));
            }
            let dev = snap.device.as_ref();
            let mut written = Some(expire);
            let (kind, record) = match pool::confirm(&snap.records, &pool, mac, addr, now) {
                None => return Ok(Outcome::NoLease(NoLease::NotYours)),
                Some(Choice::Static(r)) => {
                    written = None;
                    (LeaseKind::Static, r.id)
                }
                Some(Choice::Permanent(r)) => {
                    written = None;
                    (LeaseKind::Permanent, r.id)
                }
                Some(Choice::Own(r)) => {
                    if self
                        .patch(&r.id, &lease_patch(mac, expire, hostname, false))?
                        .is_none()
                    {
                        continue;
                    }
                    (LeaseKind::Dynamic, r.id)
                }
                Some(Choice::Reuse(r)) => {
                    if !self.shared.claims.take(addr, mac) {
                        return Ok(Outcome::NoLease(NoLease::NotYours));
                    }
                    let done = self.patch(&r.id, &lease_patch(mac, expire, hostname, true));
                    if !matches!(done, Ok(Some(_))) {
                        self.shared.claims.give_back(addr, mac);
                    }
                    if done?.is_none() {
                        continue;
                    }
                    (LeaseKind::Dynamic, r.id)
                }
                Some(Choice::Free(a)) => {
                    if !self.shared.claims.take(a, mac) {
                        return Ok(Outcome::NoLease(NoLease::NotYours));
                    }
                    let fields = lease_fields(Some(mac), expire, hostname);
                    match self.create(&prefix, a, fields, dns_name(hostname)) {
                        Ok(Created::Ok(id)) => (LeaseKind::Dynamic, id),
                        Ok(Created::Taken) => {
                            self.shared.claims.give_back(a, mac);
                            continue;
                        }
                        Err(e) => {
                            self.shared.claims.give_back(a, mac);
                            return Err(e);
                        }
                    }
                }
                Some(Choice::Exhausted) => return Ok(Outcome::NoLease(NoLease::NotYours)),
            };
            let mut lease = make_lease(job, &prefix, addr, kind, record, lease_secs, dev);
            lease.recorded_until = written;
            return Ok(Outcome::Lease(lease));
        }
        Ok(Outcome::NoLease(NoLease::NotYours))
    }

    /// Renewal of a lease the daemon handed out: one call. None = the record
    /// is not what the daemon remembers; decide from a fresh read instead.
    pub(super) fn confirm_known(
        &mut self,
        job: &Job,
        known: &Known,
        lease_secs: u32,
    ) -> Result<Option<Outcome>, BackendError> {
        let Some(id) = known.record.as_deref() else {
            return Ok(None);
        };
        let mac = job.client.mac;
        let mut written = None;
        let ok = match known.kind {
            // The OFFER's write already runs past this lease: nothing to write.
            LeaseKind::Dynamic if job.covered() => {
                written = known.lease.recorded_until;
                true
            }
            LeaseKind::Dynamic => {
                let expire = job.now + Duration::from_secs(u64::from(lease_secs));
                written = Some(expire);
                let body = lease_patch(mac, expire, job.client.hostname.as_deref(), false);
                match self.patch(id, &body)? {
                    Some(r) if r.addr == known.addr && r.dynamic => true,
                    Some(r) => {
                        log::warn!(
                            "nautobot: record {id} is now {} (dhcp: {}), not {}",
                            r.addr,
                            r.dynamic,
                            known.addr
                        );
                        false
                    }
                    None => false,
                }
            }
            LeaseKind::Static => matches!(self.get_record(id)?,
                Some(r) if r.addr == known.addr && r.interface_macs.contains(&mac)),
            LeaseKind::Permanent => matches!(self.get_record(id)?,
                Some(r) if r.addr == known.addr && !r.dynamic && r.mac == Some(mac)),
        };
        if !ok {
            return Ok(None);
        }
        let mut lease = known.lease.clone();
        lease.addr = known.addr;
        lease.kind = known.kind;
        lease.record = Some(id.to_owned());
        lease.lease_secs = lease_secs;
        lease.recorded_until = written;
        Ok(Some(Outcome::Lease(lease)))
    }

    /// RELEASE or DECLINE (`body`) of a lease the daemon handed out: a
    /// static or permanent one is never written, a dynamic one is written by
    /// record id. None: the record is not what the daemon remembers.
    pub(super) fn end_known(
        &mut self,
        known: &Known,
        addr: Ipv4Addr,
        body: &Value,
    ) -> Result<Option<Outcome>, BackendError> {
        match (known.kind, known.record.as_deref()) {
            (LeaseKind::Static | LeaseKind::Permanent, _) => Ok(Some(Outcome::Done)),
            (LeaseKind::Dynamic, Some(id)) => Ok(match self.patch(id, body)? {
                Some(r) if r.addr == addr => Some(Outcome::Done),
                _ => None,
            }),
            (LeaseKind::Dynamic, None) => Ok(None),
        }
    }

    pub(super) fn release(&mut self, job: &Job, addr: Ipv4Addr) -> Result<Outcome, BackendError> {
        let Some((prefix, _)) = self.served(job)? else {
            return Ok(Outcome::NoLease(NoLease::NoPrefix));
        };
        let snap = self.read(None, Some(&prefix))?;
        let mac = job.client.mac;
        match snap.records.iter().find(|r| r.addr == addr) {
            Some(r) if r.dynamic && r.mac == Some(mac) => {
                self.patch(&r.id, &release_patch(job.now))?;
                Ok(Outcome::Done)
            }
            Some(r) if r.interface_macs.contains(&mac) || (!r.dynamic && r.mac == Some(mac)) => {
                Ok(Outcome::Done)
            }
            _ => Ok(Outcome::NoLease(NoLease::NotYours)),
        }
    }

    /// An OFFER the client did not take gives its address back, unless its
    /// record changed since the OFFER wrote it: then another server has
    /// confirmed it for the client, who took that server's offer of it.
    pub(super) fn withdraw(&mut self, job: &Job, addr: Ipv4Addr) -> Result<Outcome, BackendError> {
        let Some((id, wrote)) = withdrawal(job, addr) else {
            return Ok(Outcome::Done);
        };
        match self.get_record(id)? {
            Some(r) if untouched(&r, job.client.mac, wrote) => {
                self.patch(id, &release_patch(job.now))?;
            }
            _ => log::debug!(
                "nautobot: offer of {addr} to {} not withdrawn: its record changed",
                job.client.mac
            ),
        }
        Ok(Outcome::Done)
    }

    pub(super) fn decline(&mut self, job: &Job, addr: Ipv4Addr) -> Result<Outcome, BackendError> {
        let Some((prefix, pool)) = self.served(job)? else {
            return Ok(Outcome::NoLease(NoLease::NoPrefix));
        };
        let snap = self.read(None, Some(&prefix))?;
        let mac = job.client.mac;
        match snap.records.iter().find(|r| r.addr == addr) {
            Some(r) if r.dynamic && (r.mac == Some(mac) || r.mac.is_none()) => {
                self.patch(&r.id, &decline_patch(job.now))?;
                Ok(Outcome::Done)
            }
            Some(r) if r.interface_macs.contains(&mac) || (!r.dynamic && r.mac == Some(mac)) => {
                Ok(Outcome::Done)
            }
            None if pool.contains(addr) => {
                let until = job.now + Duration::from_secs(DECLINE_HOLD_SECS);
                // Taken meanwhile: then it is not free either, which is the point.
                self.create(&prefix, addr, lease_fields(None, until, None), None)?;
                Ok(Outcome::Done)
            }
            _ => Ok(Outcome::NoLease(NoLease::NotYours)),
        }
    }

    pub(super) fn inform(&mut self, job: &Job, addr: Ipv4Addr) -> Result<Outcome, BackendError> {
        let Some((prefix, _)) = self.served(job)? else {
            return Ok(Outcome::NoLease(NoLease::NoPrefix));
        };
        let snap = self.read(Some(job.client.mac), None)?;
        if snap.device.is_none() && !self.shared.allow_unknown {
            return Ok(Outcome::NoLease(NoLease::UnknownDevice));
        }
        let mut lease = make_lease(
            job,
            &prefix,
            addr,
            LeaseKind::Dynamic,
            String::new(),
            0,
            None,
        );
        lease.record = None;
        lease.dns = dns_servers(snap.device.as_ref());
        Ok(Outcome::Lease(lease))
    }
}

/// The expiry an OFFER writes into a new or taken-over record: the whole
/// lease, from as late as the REQUEST may come. The REQUEST that follows
/// then has nothing to write, and the record never runs out before the
/// client's lease. An offer the client does not take is withdrawn by the
/// relay side (a RELEASE of the record) once the client asks another
/// server or the hold runs out.
pub(super) fn offer_hold(now: SystemTime, lease_secs: u32) -> SystemTime {
    now + Duration::from_secs(u64::from(lease_secs) + OFFER_HOLD_SECS)
}

pub(super) fn make_lease(
    job: &Job,
    prefix: &PrefixInfo,
    addr: Ipv4Addr,
    kind: LeaseKind,
    record: String,
    lease_secs: u32,
    device: Option<&Device>,
) -> Lease {
    let pool = Pool {
        network: prefix.network,
        reserved: 0,
    };
    Lease {
        addr,
        network: prefix.network,
        gateway: pool.gateway(),
        dns: dns_servers(device),
        boot: device.and_then(|d| boot_options(d, job.client.boot)),
        kind,
        record: Some(record),
        lease_secs,
        recorded_until: None,
    }
}

pub(super) fn lease_fields(
    mac: Option<MacAddr>,
    expire: SystemTime,
    hostname: Option<&str>,
) -> Value {
    json!({
        "pydhcp_mac": mac.map(|m| m.to_string()),
        "pydhcp_expire": time::utc_z(expire),
        "pydhcp_hostname": hostname,
    })
}

/// The write that (re)asserts a lease. `takeover`: the record was another
/// client's, so its host name goes too.
pub(super) fn lease_patch(
    mac: MacAddr,
    expire: SystemTime,
    hostname: Option<&str>,
    takeover: bool,
) -> Value {
    let cf = lease_custom_fields(mac.to_string(), time::utc_z(expire), hostname, takeover);
    let mut body = Map::new();
    body.insert("custom_fields".into(), Value::Object(cf));
    if takeover || hostname.is_some() {
        body.insert(
            "dns_name".into(),
            Value::from(dns_name(hostname).unwrap_or("")),
        );
    }
    Value::Object(body)
}

/// RELEASE: the lease ends now.
pub(super) fn release_patch(now: SystemTime) -> Value {
    json!({ "custom_fields": { "pydhcp_expire": time::utc_z(now) } })
}

pub(super) fn decline_patch(now: SystemTime) -> Value {
    let until = now + Duration::from_secs(DECLINE_HOLD_SECS);
    json!({ "custom_fields": { "pydhcp_mac": null, "pydhcp_expire": time::utc_z(until) } })
}

/// A host name Nautobot accepts as `dns_name` (letters, digits, '-', '_', dots).
pub(super) fn dns_name(hostname: Option<&str>) -> Option<&str> {
    let h = hostname?;
    let ok = !h.is_empty()
        && h.len() <= 253
        && h.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    ok.then_some(h)
}

/// `pydhcp_configuration.dns_servers` of the device's config context.
pub(crate) fn dns_servers(dev: Option<&Device>) -> Vec<Ipv4Addr> {
    dev.map(|d| crate::backend::context::dns_servers(&d.config_context))
        .unwrap_or_default()
}

/// PXE answer from the device's config context (behind the redeploy guard).
pub(crate) fn boot_options(dev: &Device, client: BootClient) -> Option<Boot> {
    crate::backend::context::boot_options(
        "nautobot",
        &dev.name,
        &dev.custom_fields,
        &dev.config_context,
        client,
    )
}

/// A withdrawal's record id and the expiry its OFFER wrote.
pub(super) fn withdrawal(job: &Job, addr: Ipv4Addr) -> Option<(&str, SystemTime)> {
    let k = job.known_about(addr)?;
    match (k.kind, k.record.as_deref(), k.lease.recorded_until) {
        (LeaseKind::Dynamic, Some(id), Some(wrote)) => Some((id, wrote)),
        _ => None,
    }
}

/// Whether `r` is still as the OFFER to `mac` left it: its expiry is the
/// one written (to the second, as stored).
pub(super) fn untouched(r: &pool::Record, mac: MacAddr, wrote: SystemTime) -> bool {
    let secs = |t: SystemTime| {
        t.duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .ok()
    };
    r.dynamic && r.mac == Some(mac) && r.expire.and_then(secs) == secs(wrote)
}
