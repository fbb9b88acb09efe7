//! Interfaces: ifindex <-> name, interface MACs, and the AF_PACKET socket that
//! carries every reply frame. Thin wrappers over ioctl/sendto.

use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use crate::core::mac::MacAddr;

/// An interface name held inline (IFNAMSIZ bytes), so resolving one per
/// packet costs no allocation.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct IfName {
    buf: [u8; libc::IFNAMSIZ],
    len: u8,
}

impl IfName {
    pub fn new(name: &str) -> Option<IfName> {
        let b = name.as_bytes();
        if b.is_empty() || b.len() >= libc::IFNAMSIZ || b.contains(&0) {
            return None;
        }
        let mut buf = [0u8; libc::IFNAMSIZ];
        buf[..b.len()].copy_from_slice(b);
        Some(IfName {
            buf,
            len: b.len() as u8,
        })
    }

    pub fn as_str(&self) -> &str {
        // Only ever built from a &str or checked bytes.
        std::str::from_utf8(&self.buf[..self.len as usize]).unwrap_or("?")
    }
}

impl fmt::Display for IfName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for IfName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

fn ifreq_with_name(name: &str) -> Option<libc::ifreq> {
    let n = IfName::new(name)?;
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(&n.buf[..n.len as usize]) {
        *dst = *src as libc::c_char;
    }
    Some(req)
}

/// Interface look-ups through one datagram socket kept open for ioctls.
pub struct Link {
    fd: OwnedFd,
}

impl Link {
    pub fn new() -> io::Result<Link> {
        // SAFETY: plain socket(2) call; the result is checked.
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is a fresh descriptor we own.
        Ok(Link {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    /// The name of interface `ifindex`, now.
    pub fn name_of(&self, ifindex: u32) -> Option<IfName> {
        if ifindex == 0 || ifindex > i32::MAX as u32 {
            return None;
        }
        // SAFETY: ifreq is plain old data.
        let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
        req.ifr_ifru.ifru_ifindex = ifindex as i32;
        // SAFETY: SIOCGIFNAME reads ifindex and writes ifr_name within the struct.
        let r = unsafe { libc::ioctl(self.fd.as_raw_fd(), libc::SIOCGIFNAME, &mut req) };
        if r < 0 {
            return None;
        }
        let bytes: Vec<u8> = req
            .ifr_name
            .iter()
            .take_while(|c| **c != 0)
            .map(|c| *c as u8)
            .collect();
        IfName::new(std::str::from_utf8(&bytes).ok()?)
    }

    /// The hardware address of interface `name`, now.
    pub fn mac_of(&self, name: &str) -> Option<MacAddr> {
        let mut req = ifreq_with_name(name)?;
        // SAFETY: SIOCGIFHWADDR reads ifr_name and writes ifru_hwaddr.
        let r = unsafe { libc::ioctl(self.fd.as_raw_fd(), libc::SIOCGIFHWADDR, &mut req) };
        if r < 0 {
            return None;
        }
        // SAFETY: the kernel filled the hwaddr member of the union.
        let sa = unsafe { req.ifr_ifru.ifru_hwaddr };
        if sa.sa_family != libc::ARPHRD_ETHER {
            return None;
        }
        let b: Vec<u8> = sa.sa_data[..6].iter().map(|c| *c as u8).collect();
        MacAddr::from_slice(&b)
    }

    /// The index of interface `name`, now.
    pub fn index_of(&self, name: &str) -> Option<u32> {
        let mut req = ifreq_with_name(name)?;
        // SAFETY: SIOCGIFINDEX reads ifr_name and writes ifru_ifindex.
        let r = unsafe { libc::ioctl(self.fd.as_raw_fd(), libc::SIOCGIFINDEX, &mut req) };
        if r < 0 {
            return None;
        }
        // SAFETY: the kernel filled the ifindex member of the union.
        let i = unsafe { req.ifr_ifru.ifru_ifindex };
        u32::try_from(i).ok().filter(|i| *i != 0)
    }
}

/// Sets the SOL_SOCKET option `opt` of socket `fd` to `value`.
/// The interface look-ups the answering threads make: the kernel's
/// ([`Link`]), or a test's.
pub trait Interfaces {
    fn name_of(&self, ifindex: u32) -> Option<IfName>;
    fn mac_of(&self, name: &str) -> Option<MacAddr>;
    fn index_of(&self, name: &str) -> Option<u32>;
}

impl Interfaces for Link {
    fn name_of(&self, ifindex: u32) -> Option<IfName> {
        Link::name_of(self, ifindex)
    }
    fn mac_of(&self, name: &str) -> Option<MacAddr> {
        Link::mac_of(self, name)
    }
    fn index_of(&self, name: &str) -> Option<u32> {
        Link::index_of(self, name)
    }
}

/// Where frames for guests go: an AF_PACKET socket ([`FrameSender`]), or a
/// test's list.
pub trait FrameSink: Send + Sync {
    fn send(&self, ifindex: u32, frame: &[u8]) -> io::Result<()>;
}

impl FrameSink for FrameSender {
    fn send(&self, ifindex: u32, frame: &[u8]) -> io::Result<()> {
        FrameSender::send(self, ifindex, frame)
    }
}

pub fn set_socket_int(fd: RawFd, opt: libc::c_int, value: libc::c_int) -> io::Result<()> {
    // SAFETY: an int option of the right size; a bad descriptor only fails.
    let r = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            opt,
            &value as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The one AF_PACKET socket every reply frame leaves through. Protocol 0:
/// it sends only and never receives, so it costs nothing under load.
pub struct FrameSender {
    fd: OwnedFd,
}

impl FrameSender {
    /// Needs CAP_NET_RAW; opened before privileges are dropped.
    pub fn open() -> io::Result<FrameSender> {
        // SAFETY: plain socket(2) call; the result is checked.
        let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is a fresh descriptor we own.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // Failure only means a smaller buffer.
        let _ = set_socket_int(fd.as_raw_fd(), libc::SO_SNDBUF, 4 << 20);
        Ok(FrameSender { fd })
    }

    /// Sends a complete Ethernet frame (destination MAC in its first six bytes) on `ifindex`.
    pub fn send(&self, ifindex: u32, frame: &[u8]) -> io::Result<()> {
        let dst = frame
            .get(..6)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "short frame"))?;
        // SAFETY: sockaddr_ll is plain old data.
        let mut sa: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sa.sll_family = libc::AF_PACKET as u16;
        sa.sll_ifindex = i32::try_from(ifindex)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "bad ifindex"))?;
        sa.sll_halen = 6;
        sa.sll_addr[..6].copy_from_slice(dst);
        // SAFETY: frame and sa are valid for the lengths given.
        let r = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                frame.as_ptr() as *const libc::c_void,
                frame.len(),
                libc::MSG_DONTWAIT,
                &sa as *const libc::sockaddr_ll as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ifname_bounds() {
        assert_eq!(IfName::new("tap0").unwrap().as_str(), "tap0");
        assert!(IfName::new("").is_none());
        assert!(IfName::new("0123456789abcdef").is_none());
        assert!(IfName::new("0123456789abcde").is_some());
    }

    #[test]
    fn loopback_lookups() {
        let l = Link::new().unwrap();
        let idx = l.index_of("lo").unwrap();
        assert_eq!(l.name_of(idx).unwrap().as_str(), "lo");
        assert!(l.name_of(0).is_none());
        assert!(l.index_of("nosuchif0").is_none());
    }
}
