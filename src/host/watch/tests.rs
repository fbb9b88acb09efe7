use super::*;
use std::os::unix::fs::PermissionsExt;

const GOOD: &str = "MAC=aa:6b:39:22:33:44\nHOSTNAME=vm\nIP=192.0.2.100\nSUBNET=192.0.2.0/24\n";

struct Dir(PathBuf);

impl Dir {
    fn new(tag: &str) -> Dir {
        let p = std::env::temp_dir().join(format!("nfdhcpd-watch-{}-{tag}", std::process::id()));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir_all(&p).unwrap();
        Dir(p)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn parsed_ok(r: &FileRead) -> bool {
    matches!(r, FileRead::Parsed(Ok(_)))
}

/// Runs `f` on another thread and fails if it does not return within 2 s:
/// what these tests guard against is hanging.
fn within_2s<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = crossbeam_channel::bounded(1);
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(2))
        .expect("blocked on a file in the binding directory")
}

#[test]
fn reads_a_regular_file_and_refuses_everything_else() {
    let d = Dir::new("types");
    let dir = d.0.clone();
    fs::write(dir.join("tap0"), GOOD).unwrap();
    nix::unistd::mkfifo(
        &dir.join("fifo0"),
        nix::sys::stat::Mode::from_bits_truncate(0o644),
    )
    .unwrap();
    std::os::unix::fs::symlink(dir.join("tap0"), dir.join("link0")).unwrap();
    fs::create_dir(dir.join("dir0")).unwrap();
    let _sock = std::os::unix::net::UnixListener::bind(dir.join("sock0")).unwrap();

    let r = within_2s(move || {
        let read = |n: &str| read_file(&dir, n, "root (uid 0)");
        (
            read("tap0"),
            read("fifo0"),
            read("link0"),
            read("dir0"),
            read("sock0"),
            read("nothing"),
        )
    });
    assert!(parsed_ok(&r.0), "{:?}", r.0);
    assert_eq!(r.1, FileRead::Refused(FileError::Fifo));
    assert_eq!(r.2, FileRead::Refused(FileError::Symlink));
    assert_eq!(r.3, FileRead::Refused(FileError::Directory));
    assert_eq!(r.4, FileRead::Refused(FileError::Socket));
    assert_eq!(r.5, FileRead::Gone);
    assert_eq!(
        read_file(Path::new("/dev"), "null", "x"),
        FileRead::Refused(FileError::Device)
    );
}

#[test]
fn a_fifo_with_a_writer_holding_it_does_not_block() {
    let d = Dir::new("fifo-held");
    let fifo = d.0.join("tap0");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o666)).unwrap();
    // A reader side first, so that the writer's open completes; the
    // writer then holds it open, never writing.
    let _r = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&fifo)
        .unwrap();
    let _w = fs::OpenOptions::new().write(true).open(&fifo).unwrap();
    let dir = d.0.clone();
    let (one, all) = within_2s(move || (read_file(&dir, "tap0", "x"), scan(&dir, "x").unwrap()));
    assert_eq!(one, FileRead::Refused(FileError::Fifo));
    assert_eq!(
        all,
        vec![("tap0".to_string(), FileRead::Refused(FileError::Fifo))]
    );
}

#[test]
fn scan_lists_refused_names_and_skips_ignored_ones() {
    let d = Dir::new("scan");
    fs::write(d.0.join("tap0"), GOOD).unwrap();
    fs::write(d.0.join(".tap1.tmp"), GOOD).unwrap();
    std::os::unix::fs::symlink("/etc/shadow", d.0.join("tap2")).unwrap();
    let mut all = scan(&d.0, "x").unwrap();
    all.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(all.len(), 2, "{all:?}");
    assert!(parsed_ok(&all[0].1));
    assert_eq!(
        all[1],
        ("tap2".into(), FileRead::Refused(FileError::Symlink))
    );
}

#[test]
fn a_byte_order_mark_and_an_oversized_file() {
    let d = Dir::new("bom");
    let mut t = vec![0xef, 0xbb, 0xbf];
    t.extend_from_slice(GOOD.as_bytes());
    fs::write(d.0.join("tap0"), t).unwrap();
    assert!(parsed_ok(&read_file(&d.0, "tap0", "x")));
    fs::write(d.0.join("tap1"), vec![b'#'; MAX_FILE_SIZE as usize + 1]).unwrap();
    assert_eq!(
        read_file(&d.0, "tap1", "x"),
        FileRead::Parsed(Err(BindingError::TooLarge))
    );
}

#[test]
fn unreadable_when_the_reader_lacks_permission() {
    let d = Dir::new("perm");
    fs::write(d.0.join("tap0"), GOOD).unwrap();
    // umask 077 as written by root; a test run by another user locks itself out.
    let mode = if nix::unistd::geteuid().is_root() {
        0o600
    } else {
        0o000
    };
    fs::set_permissions(d.0.join("tap0"), fs::Permissions::from_mode(mode)).unwrap();
    let dir = d.0.clone();
    // The file system uid is per thread; for root, leaving uid 0 also
    // drops the capability to override permissions (setfsuid(2)).
    let r = within_2s(move || {
        nix::unistd::setfsuid(nix::unistd::Uid::from_raw(65534));
        read_file(&dir, "tap0", "nobody (uid 65534)")
    });
    match r {
        FileRead::Refused(FileError::Unreadable { user, err }) => {
            assert_eq!(user, "nobody (uid 65534)");
            assert!(err.contains("Permission denied"), "{err}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_bare_create_is_read_only_for_a_hard_link() {
    let d = Dir::new("create");
    // Being written: one name, not read yet.
    fs::write(d.0.join("tap0"), "MAC=aa:6b:39:2").unwrap();
    assert_eq!(created(&d.0, "tap0", "x"), None);
    // A hard link arrives complete.
    fs::write(d.0.join(".staged"), GOOD).unwrap();
    fs::hard_link(d.0.join(".staged"), d.0.join("tap1")).unwrap();
    assert!(parsed_ok(&created(&d.0, "tap1", "x").unwrap()));
    // Whatever is not a regular file is refused at once.
    std::os::unix::fs::symlink(d.0.join(".staged"), d.0.join("tap2")).unwrap();
    assert_eq!(
        created(&d.0, "tap2", "x"),
        Some(FileRead::Refused(FileError::Symlink))
    );
    assert_eq!(created(&d.0, "gone", "x"), None);
}

fn ev(mask: EventMask, name: &'static str) -> (EventMask, Option<&'static str>) {
    (mask, Some(name))
}

#[test]
fn a_batch_folds_into_one_change_per_name() {
    let p = plan([
        ev(EventMask::CREATE, "tap0"),
        ev(EventMask::CREATE, "tap1"),
        ev(EventMask::CLOSE_WRITE, "tap1"),
        ev(EventMask::CLOSE_WRITE, "tap2"),
        ev(EventMask::DELETE, "tap2"),
        ev(EventMask::CREATE, "tap2"),
        ev(EventMask::MOVED_TO, "tap3"),
        ev(EventMask::ATTRIB, "tap3"),
        ev(EventMask::ATTRIB, "tap4"),
        ev(EventMask::CLOSE_WRITE, ".tap5.tmp"),
        ev(EventMask::CREATE | EventMask::ISDIR, "dir0"),
    ]);
    let created = |after_removal| Change::Created { after_removal };
    assert_eq!(
        p.changes,
        vec![
            ("tap0".into(), created(false)),
            ("tap1".into(), Change::Written),
            ("tap2".into(), created(true)),
            ("tap3".into(), Change::Written),
            ("tap4".into(), Change::Attrib),
            ("dir0".into(), created(false)),
        ]
    );
    assert!(!p.rescan && !p.dir_gone && !p.dir_attrib);

    let p = plan([
        (EventMask::ATTRIB | EventMask::ISDIR, None),
        (EventMask::Q_OVERFLOW, None),
    ]);
    assert!(p.rescan && p.dir_attrib);
    assert!(plan([(EventMask::DELETE_SELF, None)]).dir_gone);
}
