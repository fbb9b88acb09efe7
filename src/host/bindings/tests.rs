use super::*;
use crate::config::Config;
use crate::core::binding::BindingError;
use crate::core::frame6::ICMPV6_OFFSET;
use crate::core::mac::MacAddr;
use crate::daemon::event::FileError;
use crate::host::testing::{FakeInterfaces, RecordingSink};

const TYPE_RA: u8 = 134;
const HOST_MAC: MacAddr = MacAddr([0x02, 0, 0x5e, 0x10, 0x20, 0x30]);

struct Setup {
    b: Bindings,
    ifs: FakeInterfaces,
    sink: Arc<RecordingSink>,
    published: Arc<Published>,
}

/// A table with IPv6 (and so RAs) on or off; interfaces tap1..tap3 exist
/// as ifindex 11..13.
fn setup(ipv6: bool) -> Setup {
    let mut cfg = Config::default();
    cfg.ipv6.enable_ipv6 = ipv6;
    let answers = Arc::new(Answers::from_config(&cfg));
    assert_eq!(answers.ndp.is_some(), ipv6);
    let ifs = FakeInterfaces::new();
    for i in 1..=3 {
        ifs.add(10 + i, &format!("tap{i}"), Some(HOST_MAC));
    }
    let sink = RecordingSink::new();
    let published = Arc::new(Published::default());
    let b = Bindings::new(
        PathBuf::from("/var/lib/nfdhcpd"),
        answers,
        published.clone(),
        Box::new(ifs.clone()),
        sink.clone(),
        Arc::new(Mutex::new(WarnLimiter::default())),
    );
    Setup {
        b,
        ifs,
        sink,
        published,
    }
}

fn parsed(name: &str, text: &str) -> FileRead {
    FileRead::Parsed(binding::parse(name, text.as_bytes()))
}

/// A binding with SUBNET6: it gets Router Advertisements.
fn with_v6(name: &str) -> FileRead {
    parsed(
        name,
        "MAC=aa:6b:39:22:33:44\nHOSTNAME=vm1\nIP=192.0.2.10\nSUBNET=192.0.2.0/24\n\
         SUBNET6=2001:db8:1::/64\n",
    )
}

/// A binding without SUBNET6: no Router Advertisements.
fn v4_only(name: &str) -> FileRead {
    parsed(
        name,
        "MAC=aa:6b:39:22:33:55\nHOSTNAME=vm2\nIP=192.0.2.11\nSUBNET=192.0.2.0/24\n",
    )
}

fn unparsable() -> FileRead {
    FileRead::Parsed(Err(BindingError::Missing("MAC")))
}

fn unreadable(err: &str) -> FileRead {
    FileRead::Refused(FileError::Unreadable {
        user: "nfdhcpd".into(),
        err: err.into(),
    })
}

fn hostname(s: &Setup, name: &str) -> Option<String> {
    s.b.map().get(name).map(|b| b.hostname.clone())
}

/// The router lifetime of each RA sent, with its ifindex.
fn ras(sink: &RecordingSink) -> Vec<(u32, u16)> {
    sink.take()
        .into_iter()
        .map(|(ifindex, f)| {
            assert_eq!(f[ICMPV6_OFFSET], TYPE_RA, "not an RA");
            assert_eq!(&f[6..12], &HOST_MAC.0, "source MAC: the INDEV's");
            let lifetime = u16::from_be_bytes([f[ICMPV6_OFFSET + 6], f[ICMPV6_OFFSET + 7]]);
            (ifindex, lifetime)
        })
        .collect()
}

fn totals(b: &Bindings) -> Totals {
    let mut t = Totals::default();
    b.add_to(&mut t);
    t
}

#[test]
fn only_a_gone_file_removes_its_binding() {
    let mut s = setup(false);
    s.b.apply("tap1".into(), with_v6("tap1"), false);
    for read in [
        unparsable(),
        unreadable("Permission denied"),
        FileRead::Refused(FileError::Symlink),
    ] {
        s.b.apply("tap1".into(), read, false);
        assert_eq!(hostname(&s, "tap1").as_deref(), Some("vm1"));
    }
    s.b.apply("tap1".into(), FileRead::Gone, false);
    assert!(s.b.is_empty());
    assert!(
        s.b.ignored().is_empty(),
        "a gone file is not ignored, it is gone"
    );
}

#[test]
fn an_unreadable_file_keeps_the_previous_binding_and_is_listed_as_ignored() {
    let mut s = setup(false);
    s.b.apply("tap1".into(), with_v6("tap1"), false);
    s.b.apply("tap1".into(), unreadable("Permission denied"), false);
    assert_eq!(hostname(&s, "tap1").as_deref(), Some("vm1"));
    assert_eq!(
        s.b.ignored().get("tap1").map(String::as_str),
        Some("cannot be read as nfdhcpd: Permission denied")
    );
    // Readable again: in force as it now is, and no longer ignored.
    s.b.apply("tap1".into(), v4_only("tap1"), false);
    assert_eq!(hostname(&s, "tap1").as_deref(), Some("vm2"));
    assert!(s.b.ignored().is_empty());
}

#[test]
fn an_unparsable_file_keeps_the_previous_binding_and_is_listed_as_ignored() {
    let mut s = setup(false);
    s.b.apply("tap1".into(), with_v6("tap1"), false);
    s.b.apply("tap1".into(), unparsable(), false);
    assert_eq!(hostname(&s, "tap1").as_deref(), Some("vm1"));
    assert_eq!(
        s.b.ignored().get("tap1").map(String::as_str),
        Some(BindingError::Missing("MAC").to_string().as_str())
    );
    // A new file that is bad from the start gives no binding.
    s.b.apply("tap2".into(), unparsable(), false);
    assert!(!s.b.map().contains_key("tap2"));
    assert_eq!(s.b.ignored().len(), 2);
    assert_eq!(totals(&s.b).binding_errors, 2);
}

#[test]
fn a_refused_file_is_counted_once_per_file_and_cause() {
    let mut s = setup(false);
    for _ in 0..3 {
        s.b.apply("tap1".into(), FileRead::Refused(FileError::Symlink), false);
    }
    assert_eq!(fmt_map(s.b.refused_files()), "symlink 1");
    // Another cause for the same file counts, and so does the same cause
    // for another file.
    s.b.apply("tap1".into(), unreadable("Permission denied"), false);
    s.b.apply("tap1".into(), unreadable("Permission denied"), false);
    s.b.apply("tap2".into(), FileRead::Refused(FileError::Symlink), false);
    assert_eq!(fmt_map(s.b.refused_files()), "symlink 2, unreadable 1");
    // The cause ends and comes back: counted again.
    s.b.apply("tap2".into(), FileRead::Gone, false);
    s.b.apply("tap2".into(), FileRead::Refused(FileError::Symlink), false);
    assert_eq!(fmt_map(s.b.refused_files()), "symlink 3, unreadable 1");
}

#[test]
fn a_rescan_removes_bindings_whose_files_are_gone_and_applies_the_rest() {
    let mut s = setup(false);
    s.b.apply("tap1".into(), with_v6("tap1"), false);
    s.b.apply("tap2".into(), with_v6("tap2"), false);
    s.b.apply("tap3".into(), with_v6("tap3"), false);
    s.b.apply("tap4".into(), unparsable(), false);
    s.b.rescan(vec![
        // Changed.
        ("tap1".into(), v4_only("tap1")),
        // tap2 missing: gone.
        // Unreadable now: stays as it was.
        ("tap3".into(), unreadable("Too many open files")),
        // New.
        ("tap5".into(), with_v6("tap5")),
    ]);
    let mut names: Vec<&str> = s.b.map().keys().map(|n| &**n).collect();
    names.sort();
    assert_eq!(names, ["tap1", "tap3", "tap5"]);
    assert_eq!(hostname(&s, "tap1").as_deref(), Some("vm2"));
    assert_eq!(hostname(&s, "tap3").as_deref(), Some("vm1"));
    // tap4 is gone too: no longer listed as ignored.
    let ignored: Vec<&str> = s.b.ignored().keys().map(String::as_str).collect();
    assert_eq!(ignored, ["tap3"]);
}

#[test]
fn publish_makes_the_table_visible_only_when_something_changed() {
    let mut s = setup(false);
    let v0 = s.published.version();
    s.b.publish();
    assert_eq!(s.published.version(), v0, "nothing changed");

    s.b.apply("tap1".into(), with_v6("tap1"), false);
    assert!(s.published.load().1.is_empty(), "not before publish()");
    s.b.publish();
    let (v1, map) = s.published.load();
    assert_eq!(v1, v0 + 1);
    assert_eq!(map.get("tap1").map(|b| b.hostname.as_str()), Some("vm1"));
    s.b.publish();
    assert_eq!(s.published.version(), v1, "published once");

    // What leaves the table as it is publishes nothing.
    s.b.apply("tap1".into(), unparsable(), false);
    s.b.apply("tap1".into(), unreadable("Permission denied"), false);
    s.b.apply("tap9".into(), FileRead::Gone, false);
    s.b.publish();
    assert_eq!(s.published.version(), v1);

    s.b.apply("tap1".into(), FileRead::Gone, false);
    s.b.publish();
    let (v2, map) = s.published.load();
    assert_eq!(v2, v1 + 1);
    assert!(map.is_empty());
}

#[test]
fn an_added_binding_with_subnet6_gets_an_ra_at_once() {
    let mut s = setup(true);
    s.b.apply("tap1".into(), with_v6("tap1"), false);
    let sent = ras(&s.sink);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].0, 11, "out of the binding's interface");
    assert_ne!(sent[0].1, 0, "a router lifetime");
    // Without SUBNET6 there is nothing to advertise.
    s.b.apply("tap2".into(), v4_only("tap2"), false);
    assert!(s.sink.take().is_empty());
}

#[test]
fn a_removed_binding_gets_a_withdrawing_ra() {
    let mut s = setup(true);
    s.b.apply("tap1".into(), with_v6("tap1"), false);
    s.sink.take();
    s.b.apply("tap1".into(), FileRead::Gone, false);
    assert_eq!(ras(&s.sink), [(11, 0)]);
    // One removed by a rescan too.
    s.b.apply("tap2".into(), with_v6("tap2"), false);
    s.sink.take();
    s.b.rescan(Vec::new());
    assert_eq!(ras(&s.sink), [(12, 0)]);
}

#[test]
fn periodic_ras_go_to_every_binding_with_subnet6_whose_interface_exists() {
    let mut s = setup(true);
    s.b.apply("tap1".into(), with_v6("tap1"), false);
    s.b.apply("tap2".into(), with_v6("tap2"), false);
    s.b.apply("tap3".into(), v4_only("tap3"), false);
    s.ifs.remove("tap2");
    s.sink.take();
    s.b.periodic_ras();
    let sent = ras(&s.sink);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].0, 11);
    assert_ne!(sent[0].1, 0);
    // A re-created tap is found by name, under its new index.
    s.ifs.add(42, "tap2", Some(HOST_MAC));
    s.b.periodic_ras();
    let mut to: Vec<u32> = ras(&s.sink).into_iter().map(|(i, _)| i).collect();
    to.sort();
    assert_eq!(to, [11, 42]);
}

#[test]
fn no_ras_without_ipv6() {
    let mut s = setup(false);
    s.b.apply("tap1".into(), with_v6("tap1"), false);
    s.b.periodic_ras();
    s.b.withdraw_all();
    s.b.apply("tap1".into(), FileRead::Gone, false);
    assert!(s.sink.take().is_empty());
    assert_eq!(s.b.answers(), 0);
}

#[test]
fn withdraw_all_sends_a_withdrawing_ra_to_every_binding_with_subnet6() {
    let mut s = setup(true);
    s.b.apply("tap1".into(), with_v6("tap1"), false);
    s.b.apply("tap2".into(), with_v6("tap2"), false);
    s.b.apply("tap3".into(), v4_only("tap3"), false);
    s.sink.take();
    s.b.withdraw_all();
    let mut sent = ras(&s.sink);
    sent.sort();
    assert_eq!(sent, [(11, 0), (12, 0)]);
}

#[test]
fn enetdown_from_the_sender_is_not_a_send_error() {
    let mut s = setup(true);
    s.sink.fail_with(Some(libc::ENETDOWN));
    s.b.apply("tap1".into(), with_v6("tap1"), false);
    s.b.periodic_ras();
    let t = totals(&s.b);
    assert_eq!(t.send_errors, 0);
    assert!(t.answers.is_empty(), "nothing was sent");
    // Any other failure is one.
    s.sink.fail_with(Some(libc::EPERM));
    s.b.periodic_ras();
    assert_eq!(totals(&s.b).send_errors, 1);
}

#[test]
fn ras_are_counted_as_ra_and_ra_withdraw_answers() {
    let mut s = setup(true);
    assert_eq!(fmt_map(&totals(&s.b).answers), "none");
    s.b.apply("tap1".into(), with_v6("tap1"), false);
    s.b.periodic_ras();
    s.b.apply("tap1".into(), FileRead::Gone, false);
    let mut t = Totals::default();
    t.answers.insert("RA", 5);
    s.b.add_to(&mut t);
    assert_eq!(fmt_map(&t.answers), "RA 7, RA(withdraw) 1");
    assert_eq!(s.b.answers(), 3);
}
