//! Netbox's lease rules: what each job reads and writes, and the writes
//! themselves. Which address a client gets is decided by the pure
//! [`rules`](super::rules) from what was read.

use std::net::Ipv4Addr;
use std::time::{Duration, SystemTime};

use serde_json::{json, Value};

use super::rules::{choose, confirm, DhcpRecord, Dyn, Iface, Owner, PrefixInfo};
use super::{boot_options, NetboxSession, Resolved, Write};
use crate::backend::rest::time;
use crate::backend::{
    lease_custom_fields, BackendError, Job, Known, Lease, LeaseKind, NoLease, Outcome,
    DECLINE_HOLD_SECS, OFFER_HOLD_SECS,
};
use crate::core::mac::MacAddr;

/// Claims lost before a job gives up (it fails, it is not a NAK).
const MAX_LOST_RACES: u32 = 8;

impl NetboxSession {
    /// Who the client is, or why it gets nothing.
    fn client(&mut self, job: &Job) -> Result<Result<Option<Iface>, NoLease>, BackendError> {
        let mac = job.client.mac;
        Ok(match self.resolve(mac)? {
            Resolved::Known(i) => Ok(Some(i)),
            Resolved::Ignored => {
                log::debug!("netbox: {mac} is on LAG members that do not answer for their LAG");
                Err(NoLease::UnknownDevice)
            }
            Resolved::Unknown if self.shared.allow_unknown => Ok(None),
            Resolved::Unknown => Err(NoLease::UnknownDevice),
        })
    }

    /// The lease of `addr` (`kind`, record id), with the network settings of
    /// the prefix and of the client's device or VM, if it has one.
    fn lease(
        &mut self,
        job: &Job,
        prefix: &PrefixInfo,
        iface: Option<&Iface>,
        (addr, kind, record): (Ipv4Addr, LeaseKind, u64),
        lease_secs: u32,
    ) -> Result<Outcome, BackendError> {
        let owner = self.owner_of(iface)?;
        Ok(Outcome::Lease(Lease {
            addr,
            network: prefix.network,
            gateway: prefix.gateway,
            dns: self.dns(owner.as_ref(), prefix)?,
            boot: owner
                .as_ref()
                .and_then(|o| boot_options(o, job.client.boot)),
            kind,
            record: Some(record.to_string()),
            lease_secs,
            recorded_until: None,
        }))
    }

    fn owner_of(&mut self, iface: Option<&Iface>) -> Result<Option<Owner>, BackendError> {
        match iface {
            Some(i) => self.owner(i),
            None => Ok(None),
        }
    }

    pub(super) fn offer(&mut self, job: &Job) -> Result<Outcome, BackendError> {
        let Some(prefix) = self.prefix(job.client.origin)? else {
            return Ok(Outcome::NoLease(NoLease::NoPrefix));
        };
        let iface = match self.client(job)? {
            Ok(i) => i,
            Err(why) => return Ok(Outcome::NoLease(why)),
        };
        let lease_secs = self.shared.lease_secs;
        if let Some(i) = &iface {
            if let Some((id, addr)) = self.static_lease(i, &prefix)? {
                return self.lease(
                    job,
                    &prefix,
                    Some(i),
                    (addr, LeaseKind::Static, id),
                    lease_secs,
                );
            }
        }
        let hold = job.now + Duration::from_secs(OFFER_HOLD_SECS);
        let rec = match self.allocate(job, &prefix, hold)? {
            Ok(r) => r,
            Err(why) => return Ok(Outcome::NoLease(why)),
        };
        self.lease(
            job,
            &prefix,
            iface.as_ref(),
            (rec.addr, LeaseKind::Dynamic, rec.id),
            lease_secs,
        )
    }

    /// Picks and claims a pool address until `hold` (OFFER).
    fn allocate(
        &mut self,
        job: &Job,
        prefix: &PrefixInfo,
        hold: SystemTime,
    ) -> Result<Result<DhcpRecord, NoLease>, BackendError> {
        let mac = job.client.mac;
        let now = job.now;
        let hostname = job.client.hostname.as_deref();
        let mut records = self.read_pool(prefix)?;
        let mut lost: Vec<Ipv4Addr> = Vec::new();
        let mut losses = 0u32;
        while losses < MAX_LOST_RACES {
            let mut skip = lost.clone();
            skip.extend(self.shared.claims.others(mac));
            let (rec, takeover) = match choose(&records, mac, now, &skip) {
                Dyn::Exhausted => return Ok(Err(NoLease::PoolExhausted)),
                // An own lease that runs past the hold is left as it is.
                Dyn::Own(r) if r.expire.is_none_or(|e| e >= hold) => return Ok(Ok(r)),
                Dyn::Own(r) if !r.expired(now) => {
                    // Still the client's: nobody else may take it, no check.
                    match self.patch(r.id, &lease_body(mac, hold, hostname, false), None)? {
                        Some(Ok(a)) if a.mac == Some(mac) => return Ok(Ok(a)),
                        _ => {
                            lost.push(r.addr);
                            losses += 1;
                            continue;
                        }
                    }
                }
                Dyn::Own(r) => (r, false),
                Dyn::Free(r) | Dyn::Expired(r) => (r, true),
            };
            match self.claim(&rec, mac, now, &lease_body(mac, hold, hostname, takeover))? {
                Write::Done(r) if r.mac == Some(mac) && r.dhcp => return Ok(Ok(r)),
                Write::Gone => {
                    // Deleted or renumbered since the read: read again.
                    records = self.read_pool(prefix)?;
                    losses += 1;
                }
                _ => {
                    log::debug!("netbox: lost {} to another claim", rec.addr);
                    lost.push(rec.addr);
                    losses += 1;
                }
            }
        }
        Err(BackendError::BadAnswer(format!(
            "lost {losses} address races in {}",
            prefix.network
        )))
    }

    /// A checked write of a lease onto a pool record, with the process-wide
    /// claim held around it.
    fn claim(
        &mut self,
        rec: &DhcpRecord,
        mac: MacAddr,
        now: SystemTime,
        body: &Value,
    ) -> Result<Write, BackendError> {
        if !self.shared.claims.take(rec.addr, mac) {
            return Ok(Write::Refused);
        }
        let r = self.write_checked(rec, body, |r| r.claimable(mac, now), true);
        if !matches!(&r, Ok(Write::Done(d)) if d.mac == Some(mac)) {
            self.shared.claims.give_back(rec.addr, mac);
        }
        r
    }

    /// Renewal of a dynamic lease the daemon handed out: one PATCH of the
    /// expiry. None: the record is not what the daemon remembers.
    pub(super) fn renew_known(
        &mut self,
        job: &Job,
        known: &Known,
        lease_secs: u32,
    ) -> Result<Option<Outcome>, BackendError> {
        let Some(id) = record_id(known) else {
            return Ok(None);
        };
        let expire = job.now + Duration::from_secs(u64::from(lease_secs));
        Ok(match self.patch(id, &expire_body(expire), None)? {
            Some(Ok(r)) => renewed(job, known, &r, lease_secs),
            _ => None,
        })
    }

    pub(super) fn confirm(
        &mut self,
        job: &Job,
        addr: Ipv4Addr,
        lease_secs: u32,
        known: Option<&Known>,
    ) -> Result<Outcome, BackendError> {
        let Some(prefix) = self.prefix(job.client.origin)? else {
            return Ok(Outcome::NoLease(NoLease::NoPrefix));
        };
        if !prefix.network.contains(&addr) {
            return Ok(Outcome::NoLease(NoLease::NotYours));
        }
        let iface = match self.client(job)? {
            Ok(i) => i,
            Err(why) => return Ok(Outcome::NoLease(why)),
        };
        if let Some(i) = &iface {
            if let Some((id, a)) = self.static_lease(i, &prefix)? {
                // A client with a static address may have only that one.
                if a != addr {
                    return Ok(Outcome::NoLease(NoLease::NotYours));
                }
                if let Some(k) = known.filter(|k| k.kind == LeaseKind::Static) {
                    let mut lease = k.lease.clone();
                    lease.record = Some(id.to_string());
                    lease.lease_secs = lease_secs;
                    return Ok(Outcome::Lease(lease));
                }
                return self.lease(
                    job,
                    &prefix,
                    Some(i),
                    (a, LeaseKind::Static, id),
                    lease_secs,
                );
            }
        }
        let mac = job.client.mac;
        let now = job.now;
        let expire = now + Duration::from_secs(u64::from(lease_secs));
        let hostname = job.client.hostname.as_deref();
        let records = self.read_pool(&prefix)?;
        let (rec, takeover) = match confirm(&records, mac, addr, now) {
            None => return Ok(Outcome::NoLease(NoLease::NotYours)),
            Some(Dyn::Own(r)) if !r.expired(now) => {
                match self.patch(r.id, &lease_body(mac, expire, hostname, false), None)? {
                    Some(Ok(a)) if a.mac == Some(mac) && a.dhcp => {
                        return self.lease(
                            job,
                            &prefix,
                            iface.as_ref(),
                            (addr, LeaseKind::Dynamic, a.id),
                            lease_secs,
                        );
                    }
                    _ => return Ok(Outcome::NoLease(NoLease::NotYours)),
                }
            }
            Some(Dyn::Own(r)) => (r, false),
            Some(Dyn::Free(r)) | Some(Dyn::Expired(r)) => (r, true),
            Some(Dyn::Exhausted) => return Ok(Outcome::NoLease(NoLease::NotYours)),
        };
        match self.claim(&rec, mac, now, &lease_body(mac, expire, hostname, takeover))? {
            Write::Done(r) if r.mac == Some(mac) && r.dhcp => self.lease(
                job,
                &prefix,
                iface.as_ref(),
                (addr, LeaseKind::Dynamic, r.id),
                lease_secs,
            ),
            _ => Ok(Outcome::NoLease(NoLease::NotYours)),
        }
    }

    pub(super) fn release_known(
        &mut self,
        job: &Job,
        known: &Known,
    ) -> Result<Outcome, BackendError> {
        let Some(id) = record_id(known) else {
            return self.release(job, known.addr);
        };
        let mac = job.client.mac;
        let Some((rec, _)) = self.get_record(id)? else {
            return Ok(Outcome::NoLease(NoLease::NotYours));
        };
        self.expire_own(job, &rec, mac, known.addr)
    }

    pub(super) fn release(&mut self, job: &Job, addr: Ipv4Addr) -> Result<Outcome, BackendError> {
        let Some(prefix) = self.prefix(job.client.origin)? else {
            return Ok(Outcome::NoLease(NoLease::NoPrefix));
        };
        if !prefix.network.contains(&addr) {
            return Ok(Outcome::NoLease(NoLease::NotYours));
        }
        let records = self.read_pool(&prefix)?;
        match records.iter().find(|r| r.addr == addr) {
            Some(rec) => {
                let rec = rec.clone();
                self.expire_own(job, &rec, job.client.mac, addr)
            }
            None => Ok(Outcome::NoLease(NoLease::NotYours)),
        }
    }

    /// RELEASE: the client's lease on `rec` ends now; the MAC stays.
    fn expire_own(
        &mut self,
        job: &Job,
        rec: &DhcpRecord,
        mac: MacAddr,
        addr: Ipv4Addr,
    ) -> Result<Outcome, BackendError> {
        let ours = move |r: &DhcpRecord| r.dhcp && r.addr == addr && r.mac == Some(mac);
        if !ours(rec) {
            return Ok(Outcome::NoLease(NoLease::NotYours));
        }
        Ok(
            match self.write_checked(rec, &expire_body(job.now), ours, false)? {
                Write::Done(_) => Outcome::Done,
                Write::Refused | Write::Gone => Outcome::NoLease(NoLease::NotYours),
            },
        )
    }

    pub(super) fn decline(&mut self, job: &Job, addr: Ipv4Addr) -> Result<Outcome, BackendError> {
        let Some(prefix) = self.prefix(job.client.origin)? else {
            return Ok(Outcome::NoLease(NoLease::NoPrefix));
        };
        if !prefix.network.contains(&addr) {
            return Ok(Outcome::NoLease(NoLease::NotYours));
        }
        let mac = job.client.mac;
        let now = job.now;
        // The client's own address, or a free one it was offered by a server
        // that lost the write.
        let may =
            move |r: &DhcpRecord| r.dhcp && r.addr == addr && (r.mac == Some(mac) || r.free(now));
        let records = self.read_pool(&prefix)?;
        let Some(rec) = records.iter().find(|r| may(r)).cloned() else {
            return Ok(Outcome::NoLease(NoLease::NotYours));
        };
        Ok(
            match self.write_checked(&rec, &decline_body(now), may, false)? {
                Write::Done(_) => Outcome::Done,
                Write::Refused | Write::Gone => Outcome::NoLease(NoLease::NotYours),
            },
        )
    }

    pub(super) fn inform(&mut self, job: &Job, addr: Ipv4Addr) -> Result<Outcome, BackendError> {
        let Some(prefix) = self.prefix(job.client.origin)? else {
            return Ok(Outcome::NoLease(NoLease::NoPrefix));
        };
        let iface = match self.client(job)? {
            Ok(i) => i,
            Err(why) => return Ok(Outcome::NoLease(why)),
        };
        let owner = self.owner_of(iface.as_ref())?;
        Ok(Outcome::Lease(Lease {
            addr,
            network: prefix.network,
            gateway: prefix.gateway,
            dns: self.dns(owner.as_ref(), &prefix)?,
            boot: None,
            kind: LeaseKind::Dynamic,
            record: None,
            lease_secs: 0,
            recorded_until: None,
        }))
    }
}

/// A lease time as written: `+00:00` rather than `Z`, which Netbox's Date &
/// time custom fields accept on every Python version.
pub(crate) fn netbox_time(t: SystemTime) -> String {
    time::utc_offset(t)
}

/// A MAC as written: upper case, as PyDHCP wrote them.
pub(crate) fn mac_text(mac: MacAddr) -> String {
    mac.to_string().to_ascii_uppercase()
}

/// The write that claims or refreshes a lease. `takeover`: the record was
/// free or another client's, so its host name goes too.
pub(crate) fn lease_body(
    mac: MacAddr,
    expire: SystemTime,
    hostname: Option<&str>,
    takeover: bool,
) -> Value {
    let cf = lease_custom_fields(mac_text(mac), netbox_time(expire), hostname, takeover);
    json!({ "custom_fields": cf })
}

pub(crate) fn expire_body(at: SystemTime) -> Value {
    json!({ "custom_fields": { "pydhcp_expire": netbox_time(at) } })
}

pub(crate) fn decline_body(now: SystemTime) -> Value {
    let until = now + Duration::from_secs(DECLINE_HOLD_SECS);
    json!({ "custom_fields": { "pydhcp_mac": null, "pydhcp_expire": netbox_time(until) } })
}

/// The record id of a lease the daemon handed out.
pub(super) fn record_id(known: &Known) -> Option<u64> {
    known.record.as_deref().and_then(|r| r.parse::<u64>().ok())
}

/// The lease a renewal's write `r` confirms, None when the record is no
/// longer the client's (only after a lost race or an operator's edit).
pub(super) fn renewed(
    job: &Job,
    known: &Known,
    r: &DhcpRecord,
    lease_secs: u32,
) -> Option<Outcome> {
    let mac = job.client.mac;
    if r.addr == known.addr && r.dhcp && r.mac == Some(mac) {
        let mut lease = known.lease.clone();
        lease.addr = known.addr;
        lease.kind = LeaseKind::Dynamic;
        lease.record = Some(r.id.to_string());
        lease.lease_secs = lease_secs;
        return Some(Outcome::Lease(lease));
    }
    log::warn!(
        "netbox: address {} is now {} (dhcp: {}, mac: {:?}), not {}'s {}",
        r.id,
        r.addr,
        r.dhcp,
        r.mac,
        mac,
        known.addr
    );
    None
}
