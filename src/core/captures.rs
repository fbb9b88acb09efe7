//! Test support: the real client packets in `tests/data/captures/`.

use std::path::PathBuf;

/// The bytes of capture file `name`.
pub fn capture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/captures")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `<stem>.ip.bin + .udp.bin + .dhcp.bin`: one IPv4 packet.
pub fn bin_packet(stem: &str) -> Vec<u8> {
    let mut p = capture(&format!("{stem}.ip.bin"));
    p.extend(capture(&format!("{stem}.udp.bin")));
    p.extend(capture(&format!("{stem}.dhcp.bin")));
    p
}

/// The frames of a classic pcap file: a 24-byte global header (magic in
/// the writer's byte order, link type at offset 20), then records of a
/// 16-byte header (seconds, fraction, captured length, original length)
/// and the captured bytes.
pub fn pcap_frames(name: &str) -> Vec<Vec<u8>> {
    let data = capture(name);
    let magic = u32::from_le_bytes(data[0..4].try_into().unwrap());
    let little = match magic {
        0xa1b2_c3d4 | 0xa1b2_3c4d => true,
        0xd4c3_b2a1 | 0x4d3c_b2a1 => false,
        _ => panic!("{name}: not a pcap file"),
    };
    let u32_at = |off: usize| {
        let b: [u8; 4] = data[off..off + 4].try_into().unwrap();
        if little {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        }
    };
    assert_eq!(u32_at(20) & 0x0fff_ffff, 1, "{name}: link type Ethernet");
    let mut frames = Vec::new();
    let mut off = 24;
    while off < data.len() {
        let caplen = u32_at(off + 8) as usize;
        assert_eq!(caplen, u32_at(off + 12) as usize, "{name}: frame cut short");
        frames.push(data[off + 16..off + 16 + caplen].to_vec());
        off += 16 + caplen;
    }
    assert_eq!(off, data.len(), "{name}: trailing bytes");
    frames
}
