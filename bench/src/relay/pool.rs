//! The pool the clients draw from: the seeded test prefix 192.0.2.0/24
//! (249 addresses), or a larger prefix the bench creates in Nautobot
//! before the run and removes after it (`--pool-prefix-len`).
//!
//! The larger prefix is the one of that length that contains the relay's
//! address (192.0.0.0/22 for 22), in the test prefix's namespace, with a
//! role of its own ([`ROLE`]); the daemon serves only that role. The two
//! prefixes nest, and Nautobot makes the closer one an address's parent:
//! an address the daemon creates in 192.0.2.x gets the /24 as parent, the
//! others the larger prefix. That does not hide any of them: the daemon
//! reads a prefix's addresses with the `prefix` filter (every host inside
//! the network, whatever its parent), and so do the audit and the clean-up
//! here. Were "Server BMC" served too, the /24 would win for giaddr
//! 192.0.2.1 as the longer match; with only [`ROLE`] served, the daemon
//! allocates from the larger prefix.
//!
//! In the lab the router holds 192.0.2.1/24 on the clients' bridge: the
//! larger prefix records 192.0.2.0, 192.0.2.1 and 192.0.2.255 (type host)
//! so that no client gets them.

use std::net::Ipv4Addr;

use serde_json::{json, Value};

use super::common::relay::{Api, GIADDR, PREFIX};
use crate::Res;

/// The role of the prefix the bench creates.
pub const ROLE: &str = "nfdhcpd-bench pool";
/// In the description of everything the bench creates, so that leftovers
/// of a killed run are found.
const MARKER: &str = "created by nfdhcpd-bench relay";
/// `[nautobot] reserved`, the daemon's default: the pool starts there.
const RESERVED: u32 = 5;
/// The test prefix's role.
const TEST_ROLE: &str = "Server BMC";

#[derive(Clone, Debug)]
pub struct Pool {
    pub network: Ipv4Addr,
    pub len: u8,
    /// What the daemon serves (`prefix_roles`).
    pub role: String,
    /// Created here (and removed by [`remove`]).
    pub seeded: bool,
}

impl Pool {
    /// The seeded test prefix, as the tests use it.
    pub fn test_prefix() -> Pool {
        Pool {
            network: Ipv4Addr::new(192, 0, 2, 0),
            len: 24,
            role: TEST_ROLE.into(),
            seeded: false,
        }
    }

    pub fn cidr(&self) -> String {
        format!("{}/{}", self.network, self.len)
    }

    fn broadcast(&self) -> u32 {
        u32::from(self.network) | (u32::MAX >> self.len)
    }

    /// The daemon's pool: network + reserved to broadcast - 1.
    pub fn contains(&self, a: Ipv4Addr) -> bool {
        let a = u32::from(a);
        a >= u32::from(self.network) + RESERVED && a < self.broadcast()
    }

    pub fn size(&self) -> usize {
        (self.broadcast() - u32::from(self.network) - RESERVED) as usize
    }

    /// Pool addresses that have no record.
    pub fn free(&self, api: &Api) -> Res<usize> {
        let taken = api
            .try_list(&format!("/api/ipam/ip-addresses/?prefix={}", self.cidr()))?
            .iter()
            .filter_map(|r| r["address"].as_str()?.split('/').next()?.parse().ok())
            .filter(|a: &Ipv4Addr| self.contains(*a))
            .count();
        Ok(self.size().saturating_sub(taken))
    }
}

/// The prefix of length `len` that contains the relay's address.
fn network_of(len: u8) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(GIADDR) & (u32::MAX << (32 - len)))
}

fn id(v: &Value) -> Res<String> {
    v["id"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("an answer without an id: {v}"))
}

fn post(api: &Api, path: &str, body: &Value) -> Res<Value> {
    match api.try_send("POST", path, body)? {
        (201, v) => Ok(v),
        (s, v) => Err(format!("POST {path} {body}: HTTP {s}: {v}")),
    }
}

fn delete(api: &Api, path: &str) -> Res<()> {
    match api.try_send("DELETE", path, &Value::Null)? {
        (204 | 404, _) => Ok(()),
        (s, v) => Err(format!("DELETE {path}: HTTP {s}: {v}")),
    }
}

/// Creates the prefix of length `len` around the relay's address, its
/// role and the lab's reservations, after removing what a killed run may
/// have left. [`remove`] undoes it.
pub fn seed(api: &Api, len: u8) -> Res<Pool> {
    if !(16..24).contains(&len) {
        return Err(format!(
            "--pool-prefix-len {len}: 16 to 23, or 24 for {PREFIX}"
        ));
    }
    remove(api)?;
    let test = api.try_list(&format!(
        "/api/ipam/prefixes/?prefix={PREFIX}&role={}",
        TEST_ROLE.replace(' ', "%20")
    ))?;
    let namespace = test
        .first()
        .map(|p| id(&p["namespace"]))
        .ok_or_else(|| format!("{PREFIX} with role {TEST_ROLE} is missing"))??;
    let role = post(
        api,
        "/api/extras/roles/",
        &json!({"name": ROLE, "content_types": ["ipam.prefix"], "description": MARKER}),
    )?;
    let pool = Pool {
        network: network_of(len),
        len,
        role: ROLE.into(),
        seeded: true,
    };
    post(
        api,
        "/api/ipam/prefixes/",
        &json!({
            "prefix": pool.cidr(),
            "namespace": namespace,
            "status": "Active",
            "type": "network",
            "role": id(&role)?,
            "description": MARKER,
        }),
    )?;
    let lab = Ipv4Addr::new(192, 0, 2, 0);
    for host in [lab, GIADDR, Ipv4Addr::new(192, 0, 2, 255)] {
        post(
            api,
            "/api/ipam/ip-addresses/",
            &json!({
                "address": format!("{host}/24"),
                "namespace": namespace,
                "status": "Active",
                "type": "host",
                "description": format!("{MARKER}: the lab router's network"),
            }),
        )?;
    }
    Ok(pool)
}

/// Removes what [`seed`] made: the `dhcp` addresses inside the bench's
/// prefix (the daemon's leases), the reservations, the prefix and the
/// role. Nothing when there is none.
pub fn remove(api: &Api) -> Res<()> {
    let roles = api.try_list(&format!(
        "/api/extras/roles/?name={}",
        ROLE.replace(' ', "%20")
    ))?;
    let marked = api.try_list(&format!(
        "/api/ipam/ip-addresses/?description__isw={}",
        MARKER.replace(' ', "%20")
    ))?;
    api.bulk_delete("/api/ipam/ip-addresses/", &marked)?;
    for role in &roles {
        let prefixes = api.try_list(&format!("/api/ipam/prefixes/?role={}", id(role)?))?;
        for p in &prefixes {
            if let Some(cidr) = p["prefix"].as_str() {
                api.remove_dhcp(cidr)?;
            }
        }
        for p in &prefixes {
            delete(api, &format!("/api/ipam/prefixes/{}/", id(p)?))?;
        }
        delete(api, &format!("/api/extras/roles/{}/", id(role)?))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_22_around_the_relay() {
        let p = Pool {
            network: network_of(22),
            len: 22,
            role: ROLE.into(),
            seeded: true,
        };
        assert_eq!(p.cidr(), "192.0.0.0/22");
        assert_eq!(p.size(), 1018);
        assert!(p.contains(Ipv4Addr::new(192, 0, 0, 5)));
        assert!(!p.contains(Ipv4Addr::new(192, 0, 0, 4)));
        assert!(p.contains(Ipv4Addr::new(192, 0, 3, 254)));
        assert!(!p.contains(Ipv4Addr::new(192, 0, 3, 255)));
        assert_eq!(Pool::test_prefix().size(), 250);
    }
}
