//! The UDP 67 thread of relay mode: receives relayed (and directly sent) DHCP,
//! notes on which interface and address it arrived, and hands it over. The
//! state thread sends the answers through a [`RelaySender`] on the same socket.

use std::io::{self, IoSlice, IoSliceMut};
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{Sender, TrySendError};
use log::{error, warn};
use nix::sys::socket::{
    recvmsg, sendmsg, setsockopt, sockopt, ControlMessage, ControlMessageOwned, MsgFlags,
    SockaddrIn,
};
use socket2::{Domain, Protocol, Socket, Type};

use crate::daemon::sdnotify::{self, Heartbeat};
use crate::host::link::Link;

/// Longest datagram read; DHCP messages over this are not sane.
const MAX_DATAGRAM: usize = 4096;

/// A datagram as it arrived.
pub struct RelayPacket {
    pub data: Vec<u8>,
    pub src: SocketAddrV4,
    /// Receiving interface.
    pub ifindex: u32,
    /// The receiving interface's address the datagram counts as sent to.
    pub local: Ipv4Addr,
}

#[derive(Default)]
pub struct RelayStats {
    pub received: AtomicU64,
    /// Dropped because the state thread's relay channel was full.
    pub channel_drops: AtomicU64,
    /// Arrived on an interface not in `[relay] interfaces`.
    pub wrong_interface: AtomicU64,
}

/// Opens the UDP socket (port 67 needs CAP_NET_BIND_SERVICE: done as root).
pub fn open(port: u16) -> io::Result<UdpSocket> {
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    s.set_reuse_address(true)?;
    s.set_broadcast(true)?;
    // Bursts of hundreds of BMCs powering on at once must not overflow it.
    let _ = s.set_recv_buffer_size(8 << 20);
    let _ = s.set_send_buffer_size(4 << 20);
    s.bind(&SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port).into())?;
    let u: UdpSocket = s.into();
    setsockopt(&u, sockopt::Ipv4PacketInfo, &true).map_err(io::Error::from)?;
    Ok(u)
}

/// Answers leave through this clone of the relay socket.
pub struct RelaySender {
    sock: UdpSocket,
}

impl RelaySender {
    pub fn new(sock: &UdpSocket) -> io::Result<RelaySender> {
        Ok(RelaySender {
            sock: sock.try_clone()?,
        })
    }

    /// Sends `payload` to `dest` from `source`; with `ifindex`, out of that
    /// interface (for broadcasts to clients that have no address yet).
    pub fn send(
        &self,
        payload: &[u8],
        dest: SocketAddrV4,
        source: Ipv4Addr,
        ifindex: Option<u32>,
    ) -> io::Result<()> {
        // SAFETY: in_pktinfo is plain old data.
        let mut info: libc::in_pktinfo = unsafe { std::mem::zeroed() };
        info.ipi_ifindex = ifindex.and_then(|i| i32::try_from(i).ok()).unwrap_or(0);
        info.ipi_spec_dst.s_addr = u32::from(source).to_be();
        let iov = [IoSlice::new(payload)];
        let addr = SockaddrIn::from(dest);
        let cmsg = [ControlMessage::Ipv4PacketInfo(&info)];
        let r = sendmsg(
            self.sock.as_raw_fd(),
            &iov,
            &cmsg,
            MsgFlags::MSG_DONTWAIT,
            Some(&addr),
        );
        match r {
            Ok(_) => Ok(()),
            // The source may not be local (server_ident on another host): let
            // the kernel pick it.
            Err(nix::errno::Errno::EINVAL) if ifindex.is_none() => {
                self.sock.send_to(payload, dest).map(|_| ())
            }
            Err(e) => Err(io::Error::from(e)),
        }
    }
}

pub fn spawn(
    sock: UdpSocket,
    interfaces: Vec<String>,
    tx: Sender<RelayPacket>,
    stats: Arc<RelayStats>,
    heartbeat: Arc<Heartbeat>,
) -> io::Result<std::thread::JoinHandle<()>> {
    // Under systemd's watchdog an idle socket wakes the thread now and then.
    if sdnotify::watchdog().is_some() {
        sock.set_read_timeout(Some(sdnotify::IDLE_WAKE))?;
    }
    std::thread::Builder::new()
        .name("relay".into())
        .spawn(move || {
            if let Err(e) = run(sock, &interfaces, tx, &stats, &heartbeat) {
                error!("relay thread stopped: {e}");
            }
        })
}

fn run(
    sock: UdpSocket,
    interfaces: &[String],
    tx: Sender<RelayPacket>,
    stats: &RelayStats,
    heartbeat: &Heartbeat,
) -> io::Result<()> {
    let link = Link::new()?;
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let mut cmsg_buf = nix::cmsg_space!(libc::in_pktinfo);
    loop {
        heartbeat.beat();
        let (len, src, pktinfo) = {
            let mut iov = [IoSliceMut::new(&mut buf)];
            let msg = match recvmsg::<SockaddrIn>(
                sock.as_raw_fd(),
                &mut iov,
                Some(&mut cmsg_buf),
                MsgFlags::empty(),
            ) {
                Ok(m) => m,
                Err(nix::errno::Errno::EINTR | nix::errno::Errno::EAGAIN) => continue,
                Err(e) => {
                    warn!("relay socket: receive failed: {e}");
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                }
            };
            let mut info = None;
            if let Ok(cmsgs) = msg.cmsgs() {
                for c in cmsgs {
                    if let ControlMessageOwned::Ipv4PacketInfo(i) = c {
                        info = Some(i);
                    }
                }
            }
            let truncated = msg.flags.contains(MsgFlags::MSG_TRUNC);
            let src = msg.address.map(|a| SocketAddrV4::new(a.ip(), a.port()));
            (if truncated { 0 } else { msg.bytes }, src, info)
        };
        stats.received.fetch_add(1, Ordering::Relaxed);
        let (Some(src), Some(info)) = (src, pktinfo) else {
            continue;
        };
        if len == 0 {
            continue;
        }
        let ifindex = u32::try_from(info.ipi_ifindex).unwrap_or(0);
        if !interfaces.is_empty() {
            let name = link.name_of(ifindex);
            if !name.is_some_and(|n| interfaces.iter().any(|i| i == n.as_str())) {
                stats.wrong_interface.fetch_add(1, Ordering::Relaxed);
                continue;
            }
        }
        let p = RelayPacket {
            data: buf[..len].to_vec(),
            src,
            ifindex,
            local: Ipv4Addr::from(u32::from_be(info.ipi_spec_dst.s_addr)),
        };
        match tx.try_send(p) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                stats.channel_drops.fetch_add(1, Ordering::Relaxed);
            }
            Err(TrySendError::Disconnected(_)) => return Ok(()),
        }
    }
}
