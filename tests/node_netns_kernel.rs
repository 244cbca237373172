//! The node netns is part of an attachment's identity: `router plan` and `router check
//! --repair` run from another netns (an agent or a check container without hostNetwork)
//! refuse, naming both netns, and change nothing anywhere; and `check --all` reports a
//! cache entry from before the node's last boot, with no record and no netns, as stale
//! rather than as an error.

mod common;

use std::fs;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::cni::*;
use common::operator::*;
use common::Netns;
use serde_json::Value;

/// Everything router could change in a netns: rules, routes of every table, permanent
/// neighbours and the rp_filter values. The kernel's own IPv6 link-local and local-table
/// routes are left out: they appear when duplicate address detection ends, whatever
/// router does.
fn state(ns: &Netns) -> String {
    let routes = |family: &str| {
        ns.ipx(&[family, "route", "show", "table", "all"])
            .lines()
            .filter(|l| !(l.contains("table local") || l.starts_with("fe80::")))
            .map(|l| format!("{l}\n"))
            .collect::<String>()
    };
    [
        ns.ipx(&["rule"]),
        ns.ipx(&["-6", "rule"]),
        routes("-4"),
        routes("-6"),
        ns.ipx(&["neigh", "show", "nud", "permanent"]),
        ns.sysctl_text("net.ipv4.conf.all.rp_filter"),
        ns.sysctl_text("net.ipv4.conf.default.rp_filter"),
    ]
    .join("\n")
}

/// A netns that looks like a node to a careless command: an address of its own (which a
/// plan made there would route the pod toward) and rp_filter set.
fn other_netns(tag: &str) -> Netns {
    let ns = netns_up(tag);
    ns.ipx(&["link", "add", "o0", "type", "veth", "peer", "name", "o1"]);
    ns.ipx(&["addr", "add", "192.0.2.99/24", "dev", "o0"]);
    ns.ipx(&["link", "set", "o0", "up"]);
    ns.ipx(&["link", "set", "o1", "up"]);
    ns
}

/// The message of the one attachment a `check --output json` run refused (exit 1).
fn refused_message(run: &Run) -> String {
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    let report: Value = run.json();
    report["attachments"][0]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn plan_and_check_repair_from_another_netns_are_refused_naming_both_and_change_nothing() {
    let node = Node::new("wrongns");
    let (pod, _overlay, net1) = attached_pod(&node, "wrongns", 51);
    let cache = Cache::new("wrongnsc");
    cache.write(&net1, &pod.id, Some(&pod.netns.path()));
    let other = other_netns("wrongnso");
    let before = (state(&pod.netns), state(&node.host), state(&other));
    let data_dir = node.dir.join("router");
    let data_dir = data_dir.to_str().unwrap();

    let repair = [
        "check",
        "--all",
        "--repair",
        "--output",
        "json",
        "--cache-dir",
        cache.path(),
        "--data-dir",
        data_dir,
    ];
    let message = refused_message(&router_in(&other, &repair));
    assert!(
        message.contains("was added from node netns net:[")
            && message.contains("but this runs in net:["),
        "{message}"
    );
    let plan = [
        "plan",
        "--cache-dir",
        cache.path(),
        "--container-id",
        &pod.id,
        "--ifname",
        "net1",
    ];
    let refused = router_in(&other, &plan);
    assert_eq!(refused.code, 1, "{}{}", refused.stdout, refused.stderr);
    assert!(
        refused.stderr.contains("was added from node netns"),
        "{}",
        refused.stderr
    );
    assert_eq!(
        (state(&pod.netns), state(&node.host), state(&other)),
        before,
        "something changed"
    );

    // Without the record (an attachment router did not record, or whose record is lost),
    // the pod's overlay peer not being in this netns is the refusal.
    fs::remove_file(
        node.dir
            .join("router")
            .join(format!("{}-net1.json", pod.id)),
    )
    .unwrap();
    let message = refused_message(&router_in(&other, &repair));
    assert!(
        message.contains("veth whose peer is not in this"),
        "{message}"
    );
    assert_eq!(
        (state(&pod.netns), state(&node.host), state(&other)),
        before,
        "something changed without the record"
    );

    // From the node's netns the same commands work: the check is clean.
    let clean = router(&node, &repair);
    assert_eq!(clean.code, 0, "{}{}", clean.stdout, clean.stderr);
}

/// When the node booted, from /proc/stat.
fn boot_time() -> SystemTime {
    let stat = fs::read_to_string("/proc/stat").unwrap();
    let btime: u64 = stat
        .lines()
        .find_map(|l| l.strip_prefix("btime "))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    UNIX_EPOCH + Duration::from_secs(btime)
}

#[test]
fn a_cache_entry_from_before_the_boot_without_record_or_netns_is_stale_not_an_error() {
    let node = Node::new("stale");
    let (pod, _overlay, net1) = attached_pod(&node, "stale", 52);
    let cache = Cache::new("stalec");
    // A second, dead pod: its entry without a netns (libcni before 1.2), written before
    // the boot, its record gone with /run.
    let dead = cache.write(&net1, "ctr-dead-before-boot", None);
    let file = fs::File::options().write(true).open(&dead).unwrap();
    file.set_modified(boot_time() - Duration::from_secs(3600))
        .unwrap();
    cache.write(&net1, &pod.id, Some(&pod.netns.path()));
    let data_dir = node.dir.join("router");
    let run = router(
        &node,
        &[
            "check",
            "--all",
            "--output",
            "json",
            "--cache-dir",
            cache.path(),
            "--data-dir",
            data_dir.to_str().unwrap(),
        ],
    );
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let report: Value = run.json();
    let attachments = report["attachments"].as_array().unwrap();
    let status = |id: &str| {
        attachments
            .iter()
            .find(|a| a["container_id"] == id)
            .map(|a| (a["status"].clone(), a["message"].clone()))
            .unwrap()
    };
    let (dead_status, dead_message) = status("ctr-dead-before-boot");
    assert_eq!(dead_status, "stale", "{report}");
    assert!(
        dead_message
            .as_str()
            .is_some_and(|m| m.contains("from before the node's last boot")),
        "{dead_message}"
    );
    assert_eq!(status(&pod.id).0, "clean", "{report}");

    // The same entry written after the boot is what it was: an error (not located).
    let file = fs::File::options().write(true).open(&dead).unwrap();
    file.set_modified(SystemTime::now()).unwrap();
    let run = router(
        &node,
        &[
            "check",
            "--all",
            "--cache-dir",
            cache.path(),
            "--data-dir",
            data_dir.to_str().unwrap(),
        ],
    );
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
}
