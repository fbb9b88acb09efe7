//! The speed of light: the least an NFQUEUE responder can do per packet.
//! One thread per queue receives a packet, sends one fixed reply frame on
//! the packet's input interface through AF_PACKET, and drops the packet. No
//! parsing, no state, no hand-over between threads, no logging; the DHCPv4
//! reply only gets the request's xid copied in, so that the flood can match
//! it. The queues are set up like the daemon's (copy range, queue length,
//! fail-closed), and the reply frames are the daemon's own answers to the
//! flood's requests, made once at start.

use std::path::Path;
use std::sync::Arc;

use nfdhcpd::config::Config;
use nfdhcpd::core::binding;
use nfdhcpd::host::link::{FrameSender, Link};

use crate::frames::{self, Proto, DHCP_QUEUE, RS_QUEUE, XID_OFFSET, XID_OFFSET_IN_PACKET};
use crate::Res;

/// The daemon's queue settings (src/host/queue.rs), so the kernel side is the same.
const COPY_RANGE: u16 = 2048;
const QUEUE_MAXLEN: u32 = 4096;

fn bind(num: u16) -> Res<nfq::Queue> {
    let e = |what: &str, err: std::io::Error| format!("queue {num}: {what}: {err}");
    let mut q = nfq::Queue::open().map_err(|err| e("open", err))?;
    q.bind(num).map_err(|err| e("bind", err))?;
    q.set_copy_range(num, COPY_RANGE)
        .map_err(|err| e("copy range", err))?;
    q.set_queue_max_len(num, QUEUE_MAXLEN)
        .map_err(|err| e("queue length", err))?;
    q.set_fail_open(num, false)
        .map_err(|err| e("fail open", err))?;
    Ok(q)
}

fn serve(mut q: nfq::Queue, proto: Proto, mut reply: Vec<u8>, out: &FrameSender) -> Res<()> {
    loop {
        let mut msg = match q.recv() {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(format!("queue {}: receive: {e}", proto.queue())),
        };
        let ifindex = msg.get_indev();
        if proto == Proto::Dhcp {
            if let Some(xid) = msg
                .get_payload()
                .get(XID_OFFSET_IN_PACKET..XID_OFFSET_IN_PACKET + 4)
            {
                reply[XID_OFFSET..XID_OFFSET + 4].copy_from_slice(xid);
            }
        }
        // The answer first, as the daemon sends it before its verdict lands.
        let _ = out.send(ifindex, &reply);
        msg.set_verdict(nfq::Verdict::Drop);
        q.verdict(msg)
            .map_err(|e| format!("queue {}: verdict: {e}", proto.queue()))?;
    }
}

/// Runs until killed. `config` and `binding` are the daemon's, so that the
/// reply frames are exactly what the daemon would send.
pub fn run(config: &Path, binding_path: &Path, netlink_rcvbuf: Option<i32>) -> Res<()> {
    let (cfg, _) = Config::load(config).map_err(|e| e.to_string())?;
    let (p4, p6) = frames::params(&cfg);
    let name = binding_path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or("binding path without a file name")?;
    let text = std::fs::read(binding_path).map_err(|e| format!("{name}: {e}"))?;
    let b = binding::parse(name, &text).map_err(|e| format!("{name}: {e}"))?;
    let link = Link::new().map_err(|e| e.to_string())?;
    let mac = link
        .mac_of(&b.indev)
        .ok_or_else(|| format!("{} has no MAC address", b.indev))?;
    let offer = frames::offer_template(&b, mac, &p4)?;
    let ra = frames::ra_template(&b, mac, &p6)?;
    let out = Arc::new(FrameSender::open().map_err(|e| format!("AF_PACKET: {e}"))?);

    let queues = [
        (Proto::Dhcp, offer, bind(DHCP_QUEUE)?),
        (Proto::Rs, ra, bind(RS_QUEUE)?),
    ];
    if let Some(b) = netlink_rcvbuf {
        for (_, _, q) in &queues {
            // SO_RCVBUFFORCE on the queue's netlink socket, as the daemon does.
            nfdhcpd::host::link::set_socket_int(
                std::os::fd::AsRawFd::as_raw_fd(q),
                libc::SO_RCVBUFFORCE,
                b,
            )
            .map_err(|e| format!("SO_RCVBUFFORCE: {e}"))?;
        }
    }
    let mut threads = Vec::new();
    for (proto, reply, q) in queues {
        let out = out.clone();
        threads.push(
            std::thread::Builder::new()
                .name(format!("echo-{}", proto.queue()))
                .spawn(move || serve(q, proto, reply, &out))
                .map_err(|e| e.to_string())?,
        );
    }
    println!("ready");
    for t in threads {
        t.join().map_err(|_| "echo thread panicked".to_string())??;
    }
    Ok(())
}
