//! Faults on a real kernel, around pods attached by the real chain (Debian's ptp +
//! host-local for eth0, macvlan + static for net1, then router): the pod netns deleted
//! between snapshot and apply, the host veth deleted in the middle of an ADD, unowned
//! routes, rules and neighbours on the keys router wants (reported, never touched), every
//! owned rule deleted behind router's back (reported by CHECK, restored by
//! `router check --repair`), and termination signals sent to a DEL of a thousand ops and to
//! an ADD probing for IP conflicts. Every namespace and directory is the test's own.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use common::cni::*;
use router::config::{parse_netconf, Config, PrevView};
use router::conflict::NoConflicts;
use router::error::{Code, Result};
use router::execute::{Answers, Executor, Failed, LiveExecutor};
use router::model::{ActualState, AddInputs, Op, Side};
use router::netns::NetnsVisitor;
use router::reconcile::{self, Attachment, World};
use router::record::{FileRecords, RecordStore};
use router::snapshot::{LiveSnapshot, SnapshotRequest, SnapshotSource};
use serde_json::{json, Value};

/// A pod with eth0 and the bare macvlan net1 (router not run yet), with router's config
/// for it (`extra` merged) and macvlan's result, the prevResult router gets.
struct Prepared {
    node: Node,
    pod: Pod,
    config: Config,
    prev: PrevView,
    att: Attachment,
    /// What a runtime's ADD would give router: the config with macvlan's result.
    inputs: AddInputs,
}

fn prepared(tag: &str, index: u8, extra: Value) -> Prepared {
    let (node, pod, _overlay) = pod_with_overlay(tag, index, &[4, 6]);
    let mut bare = bare_macvlan_network(&node, "net1", index, &[4, 6]);
    let macvlan = bare.add(&node, &pod);
    assert!(macvlan.ok, "{}", macvlan.stdout);
    let prev = PrevView::parse(&macvlan.json()).unwrap();
    let mut conf =
        macvlan_network(&node, "net1", index, &[4, 6], extra).conflist["plugins"][1].clone();
    conf["cniVersion"] = json!("1.0.0");
    conf["name"] = json!("macvlan-overlay-net1");
    let config = parse_netconf(&conf, &test_allowed_dirs()).unwrap().config;
    let att = Attachment {
        container_id: pod.id.clone(),
        ifname: "net1".into(),
        netns: Some(pod.netns.path()),
    };
    conf["prevResult"] = macvlan.json();
    let inputs = AddInputs::new(att.netns.clone(), &conf);
    Prepared {
        node,
        pod,
        config,
        prev,
        inputs,
        att,
    }
}

impl Prepared {
    /// reconcile::add in process, from a thread in the test's host netns.
    fn add_with(
        &self,
        snapshots: impl SnapshotSource + Send + 'static,
        executor: impl Executor + Send + 'static,
    ) -> reconcile::Result<Vec<Op>> {
        let (cfg, att, prev) = (self.config.clone(), self.att.clone(), self.prev.clone());
        let inputs = self.inputs.clone();
        router::netns::run_in_netns(&self.node.host.path(), move || {
            let records = FileRecords::new(&cfg.data_dir);
            let world = World {
                snapshots: &snapshots,
                executor: &executor,
                records: &records,
                host: &records,
            };
            let added = reconcile::add(&cfg, &att, &prev, &inputs, &world, &NoConflicts);
            Ok(added.map(|o| o.applied))
        })
        .unwrap()
    }

    fn record_count(&self) -> usize {
        FileRecords::new(&self.config.data_dir).all().unwrap().len()
    }
}

/// What router owns, by protocol, in a netns: nothing at all is the clean state. (This
/// iproute2 ignores `proto` as a filter for rules and neighbours: the lines are picked here.)
fn owned(ns: &common::Netns) -> String {
    [
        ns.ipx(&["rule"]),
        ns.ipx(&["-6", "rule"]),
        ns.ipx(&["route", "show", "table", "all"]),
        ns.ipx(&["-6", "route", "show", "table", "all"]),
        ns.ipx(&["neigh", "show"]),
    ]
    .concat()
    .lines()
    .filter(|l| l.contains(" proto 176"))
    .map(|l| format!("{l}\n"))
    .collect()
}

/// Router's rules in a netns.
fn owned_rules(ns: &common::Netns) -> usize {
    owned(ns).lines().filter(|l| l.contains("lookup")).count()
}

/// The live snapshot; the first call deletes the pod netns right after reading it.
struct DeletePodAfterFirstSnapshot {
    live: LiveSnapshot,
    netns: String,
    done: AtomicBool,
}

impl SnapshotSource for DeletePodAfterFirstSnapshot {
    fn snapshot(&self, req: &SnapshotRequest) -> Result<ActualState> {
        let actual = self.live.snapshot(req)?;
        if !self.done.swap(true, Ordering::SeqCst) {
            common::run("ip", &["netns", "del", &self.netns]);
        }
        Ok(actual)
    }
}

#[test]
fn the_pod_netns_deleted_between_snapshot_and_apply_is_code_3_and_nothing_is_left() {
    pod_deleted_between_snapshot_and_apply("nsgone", 31, false);
}

/// As in a plugin run (`live`): the snapshot and the executor share the visitor whose
/// visits opened the pod's netlink socket and sysctl files, which keep that netns alive;
/// the apply still finds it gone.
#[test]
fn the_pod_netns_deleted_under_the_runs_shared_visitor_is_code_3_too() {
    pod_deleted_between_snapshot_and_apply("nsgone2", 37, true);
}

fn pod_deleted_between_snapshot_and_apply(tag: &str, index: u8, shared: bool) {
    let p = prepared(tag, index, json!({}));
    let host_before = host_state(&p.node);
    let visitor = p
        .att
        .netns
        .clone()
        .map(|path| Arc::new(NetnsVisitor::new(path)));
    let (live, executor) = match shared {
        true => (
            LiveSnapshot::in_pod(visitor.clone()),
            LiveExecutor::in_pod(visitor),
        ),
        false => (
            LiveSnapshot::default(),
            LiveExecutor::new(p.att.netns.clone()),
        ),
    };
    let snapshots = DeletePodAfterFirstSnapshot {
        live,
        netns: p.pod.netns.name.clone(),
        done: AtomicBool::new(false),
    };
    let err = p.add_with(snapshots, executor).unwrap_err();
    assert_eq!(err.code(), Code::UnknownContainer, "{err}");
    assert!(err.to_string().contains("went away"), "{err}");
    assert_eq!(host_state(&p.node), host_before, "the host kept something");
    assert_eq!(owned(&p.node.host), "");
    assert_eq!(p.record_count(), 0, "the record outlived the failed ADD");
}

/// The live executor; the host veth H is deleted just before the first host op.
struct DeleteHostVethBeforeHostOps {
    inner: LiveExecutor,
    host: String,
    veth: String,
}

impl Executor for DeleteHostVethBeforeHostOps {
    fn apply(
        &self,
        ops: &[Op],
        planned_from: &ActualState,
    ) -> std::result::Result<Answers, Failed> {
        let split = ops
            .iter()
            .position(|op| op.netns == Side::Host)
            .unwrap_or(ops.len());
        let pod = self.inner.apply(&ops[..split], planned_from)?;
        if split < ops.len() {
            let _ = Command::new("ip")
                .args(["-n", &self.host, "link", "del", &self.veth])
                .status();
        }
        let host = self
            .inner
            .apply(&ops[split..], planned_from)
            .map_err(|f| Failed {
                index: split + f.index,
                error: f.error,
            })?;
        Ok(pod.and(host))
    }
}

/// The host side of the pod's eth0 (ptp's veth), named in the host netns.
fn host_veth(node: &Node, pod: &Pod) -> String {
    let peer = pod.netns.exec(&["cat", "/sys/class/net/eth0/iflink"]);
    let links = node.host.ipx(&["-o", "link", "show"]);
    links
        .lines()
        .find(|l| l.starts_with(&format!("{}: ", peer.trim())))
        .and_then(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap_or(n).to_string())
        .unwrap_or_else(|| panic!("no host veth with index {peer} in\n{links}"))
}

#[test]
fn the_host_veth_deleted_mid_add_fails_naming_it_rolls_back_and_del_cleans_up() {
    let p = prepared("vethgone", 32, json!({"mac_prefix": "0a:0b"}));
    let veth = host_veth(&p.node, &p.pod);
    let mac_before = p.pod.netns.link_mac("net1");
    let executor = DeleteHostVethBeforeHostOps {
        inner: LiveExecutor::new(p.att.netns.clone()),
        host: p.node.host.name.clone(),
        veth: veth.clone(),
    };
    let err = p.add_with(LiveSnapshot::default(), executor).unwrap_err();
    assert!(
        err.to_string().contains(&veth),
        "the error does not name {veth}: {err}"
    );
    // Deleting H took eth0 (its peer) and every route through it; the rollback removed the
    // rest: nothing router owns is left, the MAC is back, the record is gone.
    assert_eq!(owned(&p.pod.netns), "", "the pod kept owned objects");
    assert_eq!(owned(&p.node.host), "", "the host kept owned objects");
    assert_eq!(p.pod.netns.link_mac("net1"), mac_before);
    assert_eq!(p.record_count(), 0);
    let mut conf =
        macvlan_network(&p.node, "net1", 32, &[4, 6], json!({})).conflist["plugins"][1].clone();
    conf["cniVersion"] = json!("1.0.0");
    conf["name"] = json!("macvlan-overlay-net1");
    let del = p.node.invoke(&router_bin(), "DEL", &p.pod, "net1", &conf);
    assert!(del.ok, "DEL after the failed ADD: {}", del.stdout);
}

/// The pod's net1 network through macvlan, with router's ADD run on its own.
fn macvlan_then(node: &Node, pod: &Pod, net1: &mut Network) -> Value {
    net1.add_until(node, pod, "router")
}

#[test]
fn unowned_objects_on_routers_keys_are_reported_and_never_touched() {
    let (node, pod, _overlay) = pod_with_overlay("squat", 33, &[4]);
    let mut net1 = macvlan_network(&node, "net1", 33, &[4], json!({}));
    let prev = macvlan_then(&node, &pod, &mut net1);
    let c = underlay_v4(33);

    // An unowned route to C in the host table router needs: ADD is refused, code 103.
    node.host.ipx(&[
        "route", "add", &c, "dev", "up0", "table", "500", "proto", "static",
    ]);
    let before = (pod_state(&pod), host_state(&node));
    let out = net1.invoke_with(&node, &pod, "ADD", "router", &prev);
    assert_eq!(out.code(), Some(103), "{}", out.stdout);
    let text = out.stdout.clone();
    assert!(text.contains(&c) && text.contains("not touched"), "{text}");
    assert!(text.contains("held by unowned"), "{text}");
    assert_eq!(
        (pod_state(&pod), host_state(&node)),
        before,
        "ADD changed something"
    );
    node.host
        .ipx(&["route", "del", &c, "dev", "up0", "table", "500"]);

    // An unowned rule that is exactly one router wants: it does the job, ADD adds no
    // duplicate, and DEL leaves it.
    let squatter = ["to", "10.96.0.0/12", "lookup", "100", "pref", "1000"];
    let mut add = vec!["rule", "add"];
    add.extend(squatter);
    add.extend(["proto", "static"]);
    pod.netns.ipx(&add);
    let out = net1.invoke_with(&node, &pod, "ADD", "router", &prev);
    assert!(out.ok, "{}", out.stdout);
    net1.cached = Some(out.json());
    let rules = pod.netns.ipx(&["rule"]);
    assert_eq!(
        rules.matches("to 10.96.0.0/12 lookup 100").count(),
        1,
        "{rules}"
    );
    assert!(
        rules.contains("to 10.96.0.0/12 lookup 100 proto static"),
        "{rules}"
    );
    assert!(net1.invoke_one(&node, &pod, "CHECK", "router").ok);

    // An unowned permanent neighbour with another MAC where router's was, and an unowned
    // host route to C where router's was: CHECK reports both as held, code 100.
    pod.netns
        .ipx(&["neigh", "del", "192.168.50.1", "dev", "eth0"]);
    pod.netns.ipx(&[
        "neigh",
        "add",
        "192.168.50.1",
        "lladdr",
        "02:00:00:00:00:99",
        "dev",
        "eth0",
        "nud",
        "permanent",
    ]);
    let veth = node.host.table("-4", "500");
    let dev = veth.split_whitespace().nth(2).unwrap().to_string();
    node.host
        .ipx(&["route", "del", &c, "dev", &dev, "table", "500"]);
    node.host.ipx(&[
        "route", "add", &c, "dev", "up0", "table", "500", "proto", "static",
    ]);
    let out = net1.invoke_one(&node, &pod, "CHECK", "router");
    assert_eq!(out.code(), Some(100), "{}", out.stdout);
    let details = out.json()["details"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    for held in [
        "held by unowned neighbour 192.168.50.1 lladdr 02:00:00:00:00:99 dev eth0",
        &format!("held by unowned route {c} dev up0 table 500"),
    ] {
        assert!(details.contains(held), "{held:?} not in\n{details}");
    }

    // DEL removes what router owns and leaves all three unowned objects as they are.
    assert!(net1.del(&node, &pod).ok);
    assert!(pod
        .netns
        .ipx(&["rule"])
        .contains("to 10.96.0.0/12 lookup 100 proto static"));
    assert!(pod
        .netns
        .ipx(&["neigh", "show", "nud", "permanent"])
        .contains("02:00:00:00:00:99"));
    assert!(node.host.table("-4", "500").contains("dev up0"));
    assert_eq!(owned(&pod.netns), "");
    assert_eq!(owned(&node.host), "");
}

/// A libcni result cache holding one entry, as `router check` reads it.
fn write_cache(dir: &Path, network: &Network, pod: &Pod) {
    let name = network.conflist["name"].as_str().unwrap();
    let entry = json!({
        "kind": "cniCacheV1",
        "containerId": pod.id,
        "config": STANDARD.encode(serde_json::to_vec(&network.conflist).unwrap()),
        "ifName": network.ifname,
        "networkName": name,
        "netns": pod.netns.path(),
        "result": network.cached.clone().expect("the network was added"),
    });
    let results = dir.join("results");
    fs::create_dir_all(&results).unwrap();
    fs::write(
        results.join(format!("{name}-{}-{}", pod.id, network.ifname)),
        entry.to_string(),
    )
    .unwrap();
}

/// Deletes every rule of protocol 176 in a netns, one `ip rule del` at a time, as a daemon
/// that flushes foreign rules (systemd-networkd's ManageForeignRoutingPolicyRules) does.
fn flush_owned_rules(ns: &common::Netns) -> usize {
    let mut deleted = 0;
    for family in ["-4", "-6"] {
        while Command::new("ip")
            .args(["-n", &ns.name, family, "rule", "del", "protocol", "176"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
        {
            deleted += 1;
        }
    }
    deleted
}

#[test]
fn every_owned_rule_deleted_behind_routers_back_is_reported_and_repaired() {
    let (node, pod, _overlay) = pod_with_overlay("flush", 34, &[4, 6]);
    let mut net1 = macvlan_network(&node, "net1", 34, &[4, 6], json!({}));
    assert!(net1.add(&node, &pod).ok);
    let attached = (pod_state(&pod), host_state(&node));
    let deleted = flush_owned_rules(&pod.netns) + flush_owned_rules(&node.host);
    assert!(deleted >= 8, "only {deleted} owned rules");
    assert_eq!(owned_rules(&pod.netns) + owned_rules(&node.host), 0);

    let out = net1.invoke_one(&node, &pod, "CHECK", "router");
    assert_eq!(out.code(), Some(100), "{}", out.stdout);
    let body = out.json();
    assert!(
        body["msg"]
            .as_str()
            .unwrap_or_default()
            .starts_with(&format!("{deleted} drifts")),
        "{body}"
    );
    let details = body["details"].as_str().unwrap_or_default();
    assert_eq!(details.lines().count(), deleted, "{details}");
    assert!(details
        .lines()
        .all(|l| l.contains("rule ") && l.ends_with("actual missing")));
    assert!(
        details.contains("host netns: rule from all lookup 500 pref 1000"),
        "{details}"
    );

    let cache = TempDir::new("flushc");
    write_cache(&cache.0, &net1, &pod);
    let out = Command::new("ip")
        .args(["netns", "exec", &node.host.name])
        .arg(router_bin())
        .envs([allowed_dirs_env()])
        .args([
            "check",
            "--container-id",
            &pod.id,
            "--ifname",
            "net1",
            "--cache-dir",
        ])
        .arg(&cache.0)
        .args(["--repair", "--output", "json"])
        .env_remove("CNI_COMMAND")
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    assert_eq!(out.status.code(), Some(0), "{report}");
    let attachment = &report["attachments"][0];
    assert_eq!(attachment["status"], "repaired", "{report}");
    assert_eq!(
        attachment["repair"]["applied"].as_array().map(Vec::len),
        Some(deleted),
        "{report}"
    );
    assert!(net1.invoke_one(&node, &pod, "CHECK", "router").ok);
    assert_eq!((pod_state(&pod), host_state(&node)), attached);
    println!("flushed owned rules: {deleted} reported by CHECK, {deleted} restored by --repair");
}

/// A router run in the host netns whose process the test can signal.
fn spawn_router(node: &Node, pod: &Pod, command: &str, stdin: &Value) -> std::process::Child {
    let netns = pod.netns.path();
    node.spawn(
        &router_bin(),
        &pod_env(command, &pod.id, &netns, "net1"),
        stdin,
    )
}

/// How a signalled run ended.
#[derive(Debug, PartialEq, Eq)]
enum Ending {
    Exited(i32),
    Killed(i32),
}

/// Sends `signal` every millisecond from `delay` on until the process ends; the number
/// sent while it had not been reaped, and how it ended.
fn signal_until_exit(
    child: &mut std::process::Child,
    signal: i32,
    delay: Duration,
) -> (usize, Ending, Duration) {
    let started = Instant::now();
    let pid = child.id() as i32;
    let mut sent = 0;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            use std::os::unix::process::ExitStatusExt;
            let ending = match (status.code(), status.signal()) {
                (Some(code), _) => Ending::Exited(code),
                (_, Some(sig)) => Ending::Killed(sig),
                _ => unreachable!("a process ends by exit or by signal"),
            };
            return (sent, ending, started.elapsed());
        }
        if started.elapsed() >= delay {
            // SAFETY: pid is our child, not yet reaped (try_wait said it runs).
            if unsafe { libc::kill(pid, signal) } == 0 {
                sent += 1;
            }
        }
        assert!(started.elapsed() < Duration::from_secs(60), "the run hung");
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn thousand_cidrs() -> Vec<String> {
    (0..1000)
        .map(|i| format!("10.{}.{}.0/24", 100 + i / 256, i % 256))
        .collect()
}

/// SIGTERM and SIGINT sent over and over to a DEL of over a thousand ops: the DEL blocks
/// them while it applies, so it always completes (exit 0, everything owned gone). Only a
/// signal that lands before the binary blocks them may end it, and then before it did
/// anything (the rules all still there); never half way.
#[test]
fn termination_signals_during_a_del_of_a_thousand_ops_never_leave_it_half_done() {
    let (node, pod, _overlay) = pod_with_overlay("sigdel", 35, &[4]);
    let extra = json!({ "additional_hijack_subnet": thousand_cidrs() });
    let before = (pod_state(&pod), host_state(&node));
    // `ip netns exec` takes a few ms to start the binary: signals from then on meet it.
    // (Without the blocking, a signal from 40 ms on leaves such a DEL half done.)
    let rounds = [
        (libc::SIGTERM, 0u64),
        (libc::SIGTERM, 20),
        (libc::SIGINT, 40),
        (libc::SIGTERM, 50),
        (libc::SIGHUP, 60),
    ];
    for (signal, delay_ms) in rounds {
        let mut net1 = macvlan_network(&node, "net1", 35, &[4], extra.clone());
        let out = net1.add(&node, &pod);
        assert!(out.ok, "{}", out.stdout);
        let rules = owned_rules(&pod.netns);
        assert!(rules > 1000, "{rules} rules");
        let mut conf = net1.conflist["plugins"][1].clone();
        conf["cniVersion"] = json!("1.0.0");
        conf["name"] = net1.conflist["name"].clone();
        conf["prevResult"] = net1.cached.clone().unwrap();
        let mut del = spawn_router(&node, &pod, "DEL", &conf);
        let (sent, ending, took) =
            signal_until_exit(&mut del, signal, Duration::from_millis(delay_ms));
        let left = owned_rules(&pod.netns);
        println!(
            "DEL of {rules} rules, signal {signal} from {delay_ms} ms: {sent} sent, {ending:?} after {took:?}, {left} rules left"
        );
        match ending {
            Ending::Exited(0) => {
                assert_eq!(left, 0, "DEL exited 0 with rules left");
                assert_eq!(owned(&pod.netns), "");
                assert_eq!(owned(&node.host), "");
            }
            Ending::Killed(_) => assert_eq!(left, rules, "killed half way: {left} of {rules} left"),
            Ending::Exited(code) => panic!("DEL failed ({code})"),
        }
        // The runtime's DEL, then macvlan's, as after any DEL.
        assert!(net1.del(&node, &pod).ok);
    }
    assert_eq!((pod_state(&pod), host_state(&node)), before);
}

/// The IP conflict probe changes nothing: termination is allowed during it, so a SIGTERM
/// then ends the ADD at once, with the pod, the host and data_dir as they were.
#[test]
fn sigterm_during_the_conflict_probe_ends_the_add_before_any_change() {
    let (node, pod, _overlay) = pod_with_overlay("sigprobe", 36, &[4]);
    let extra = json!({"ip_conflict": {"enabled": true, "interval": "400ms", "retries": 3}});
    let mut net1 = macvlan_network(&node, "net1", 36, &[4], extra);
    let prev = macvlan_then(&node, &pod, &mut net1);
    let before = (pod_state(&pod), host_state(&node));
    let mut conf = net1.conflist["plugins"][1].clone();
    conf["cniVersion"] = json!("1.0.0");
    conf["name"] = net1.conflist["name"].clone();
    conf["prevResult"] = prev;
    let mut add = spawn_router(&node, &pod, "ADD", &conf);
    let (_, ending, took) = signal_until_exit(&mut add, libc::SIGTERM, Duration::from_millis(300));
    println!("ADD probing for 1.6 s, SIGTERM from 300 ms: {ending:?} after {took:?}");
    assert_eq!(ending, Ending::Killed(libc::SIGTERM));
    assert!(
        took < Duration::from_millis(1200),
        "the probe was not cut short: {took:?}"
    );
    assert_eq!((pod_state(&pod), host_state(&node)), before);
    let records: Vec<PathBuf> = fs::read_dir(node.dir.join("router"))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(
        records
            .iter()
            .all(|p| p.extension().is_none_or(|x| x != "json")),
        "{records:?}"
    );
}
