//! `contrib/nfdhcpd-iptables.sh` in a network namespace of its own: `add`
//! twice puts each rule in once, `del` takes out exactly what `add` put in
//! (the tables read as before), and `del` with nothing there does nothing.
//! Only the test's namespaces' tables are touched.

mod common;

use std::path::Path;
use std::process::Output;

use common::*;

/// The rules of someone else, there before the script runs and after.
const FOREIGN4: &str = "-i eth9 -p udp --dport 67 -j ACCEPT";
const FOREIGN6: &str = "-i eth9 -p udp --dport 547 -j ACCEPT";

fn script() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("contrib/nfdhcpd-iptables.sh")
        .display()
        .to_string()
}

/// `iptables-save` and `ip6tables-save` of the namespace without what
/// changes by itself: the comment lines (dates) and the counters.
fn tables(ns: &Netns) -> String {
    let mut out = String::new();
    for tool in ["iptables-save", "ip6tables-save"] {
        out.push_str(&format!("## {tool}\n"));
        for line in ns.run(&[tool]).lines() {
            if line.starts_with('#') {
                continue;
            }
            let line = match (line.starts_with(':'), line.rfind(" [")) {
                (true, Some(i)) => &line[..i],
                _ => line,
            };
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

fn run_script(ns: &Netns, args: &[&str]) -> Output {
    let s = script();
    let mut argv = vec![s.as_str()];
    argv.extend_from_slice(args);
    ns.try_run(&argv)
}

fn script_ok(ns: &Netns, args: &[&str]) {
    let out = run_script(ns, args);
    assert!(
        out.status.success(),
        "nfdhcpd-iptables.sh {args:?} in {}: {}\n{}{}",
        ns.name,
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn nfqueue_rules(s: &str) -> Vec<&str> {
    s.lines()
        .filter(|l| l.starts_with("-A PREROUTING") && l.contains("NFQUEUE"))
        .collect()
}

/// The NFQUEUE rules of the PREROUTING chains, IPv4 then IPv6.
fn queue_rules(t: &str) -> (Vec<&str>, Vec<&str>) {
    let (v4, v6) = t.split_once("## ip6tables-save\n").unwrap();
    (nfqueue_rules(v4), nfqueue_rules(v6))
}

fn no_duplicates(rules: &[&str]) {
    for (i, r) in rules.iter().enumerate() {
        assert!(!rules[..i].contains(r), "rule twice: {r}\nin {rules:#?}");
    }
}

#[test]
fn add_is_idempotent_and_del_undoes_it() {
    let test = "add_is_idempotent_and_del_undoes_it";
    if !can_run(test) {
        return;
    }
    let ns = Netns::new("ipt");
    ns.run_words(&format!("iptables -t mangle -A PREROUTING {FOREIGN4}"));
    ns.run_words(&format!("ip6tables -t mangle -A PREROUTING {FOREIGN6}"));
    let before = tables(&ns);

    script_ok(&ns, &["add"]);
    let once = tables(&ns);
    let (r4, r6) = queue_rules(&once);
    // DHCP on IPv4; RS, NS and DHCPv6 on IPv6; routed (-i) and bridged
    // (physdev) each.
    assert_eq!(r4.len(), 2, "IPv4 rules after add:\n{once}");
    assert_eq!(r6.len(), 6, "IPv6 rules after add:\n{once}");
    no_duplicates(&r4);
    no_duplicates(&r6);
    assert!(
        once.contains("--queue-num 42") && once.contains("--queue-num 45"),
        "{once}"
    );

    script_ok(&ns, &["add"]);
    let twice = tables(&ns);
    assert_eq!(twice, once, "a second add changed the tables");

    // Rules for another pattern are not the tap+ rules: del leaves them.
    script_ok(&ns, &["add", "vm+"]);
    let other = tables(&ns);
    let (o4, o6) = queue_rules(&other);
    assert_eq!((o4.len(), o6.len()), (4, 12), "{other}");
    script_ok(&ns, &["del", "vm+"]);
    assert_eq!(tables(&ns), once, "del vm+ did not undo add vm+");

    script_ok(&ns, &["del"]);
    let after = tables(&ns);
    assert_eq!(after, before, "del did not restore the tables");
    script_ok(&ns, &["del"]);
    assert_eq!(tables(&ns), before, "a second del changed the tables");

    // A namespace where the script never ran: del finds nothing to do.
    let fresh = Netns::new("ipt");
    let untouched = tables(&fresh);
    script_ok(&fresh, &["del"]);
    assert_eq!(tables(&fresh), untouched, "del in an empty namespace");

    // A bad operation is refused before anything is done.
    let out = run_script(&fresh, &["flush"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert_eq!(tables(&fresh), untouched);
}
