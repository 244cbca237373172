//! `router rollout` on a real kernel: pods attached by the real chain (Debian's ptp,
//! host-local, macvlan, static, then router) as libcni does, a result cache in libcni's
//! format, and the router binary run in the test's "host" netns. A new config reaches every
//! running pod, is refused when unsafe, is what the runtime's CHECK and DEL act on from then
//! on, never re-creates what a racing DEL removed, and survives being killed mid-way. Every
//! namespace and directory is the test's own and is removed when it ends.

mod common;

use std::fs;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use common::cni::*;
use common::operator::*;
use router::record::FileRecords;
use serde_json::{json, Value};

const NETWORK: &str = "macvlan-overlay-net1";
const NEW_OVERLAY: &str = "10.246.0.0/16";
const NEW_SERVICE: &str = "172.20.0.0/16";

/// A node with `count` pods, each with eth0 (ptp) and net1 (macvlan + router, config v1),
/// and the runtime's cache entry for each net1.
struct Cluster {
    node: Node,
    pods: Vec<(Pod, Network, Network)>,
    cache: Cache,
}

impl Cluster {
    fn new(tag: &str, count: u8) -> Cluster {
        let node = Node::new(tag);
        let cache = Cache::new(&format!("{tag}c"));
        let pods = (1..=count)
            .map(|i| {
                let (pod, overlay, net1) = attached_pod(&node, &format!("{tag}{i}"), i);
                cache.write(&net1, &pod.id, Some(&pod.netns.path()));
                (pod, overlay, net1)
            })
            .collect();
        Cluster { node, pods, cache }
    }

    fn data_dir(&self) -> PathBuf {
        self.node.dir.join("router")
    }

    /// The v1 conflist (its router entry is the same for every pod) with the router entry's
    /// keys replaced by `changes`.
    fn conflist(&self, changes: Value) -> Value {
        let mut conflist = macvlan_network(&self.node, "net1", 1, &[4, 6], json!({})).conflist;
        if let Some(plugins) = conflist["plugins"].as_array_mut() {
            for plugin in plugins.iter_mut().filter(|p| p["type"] == "router") {
                for (k, v) in changes.as_object().into_iter().flatten() {
                    plugin[k] = v.clone();
                }
            }
        }
        conflist
    }

    /// v2: one more overlay CIDR and one more service CIDR.
    fn v2(&self) -> Value {
        self.conflist(json!({
            "overlay_hijack_subnet": ["10.244.0.0/16", "fd00:10:244::/48", NEW_OVERLAY],
            "service_hijack_subnet": ["10.96.0.0/12", "fd00:10:96::/108", NEW_SERVICE],
        }))
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let file = self.node.dir.join(name);
        fs::write(&file, text).unwrap();
        file
    }

    /// `router rollout --config FILE` over the test's cache and data_dir, plus `extra`.
    fn rollout(&self, config: &Value, extra: &[&str]) -> Run {
        let file = self.write("rollout.json", &config.to_string());
        self.rollout_file(&file, extra)
    }

    fn rollout_file(&self, file: &std::path::Path, extra: &[&str]) -> Run {
        let args = self.rollout_args(file.to_str().unwrap(), extra);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        router(&self.node, &args)
    }

    fn rollout_args(&self, config: &str, extra: &[&str]) -> Vec<String> {
        let data_dir = self.data_dir().display().to_string();
        let base = [
            "rollout",
            "--config",
            config,
            "--cache-dir",
            self.cache.path(),
        ];
        base.iter()
            .chain(&["--data-dir", data_dir.as_str()])
            .chain(extra)
            .map(|a| a.to_string())
            .collect()
    }

    /// `router rollout --config -` with `text` on stdin.
    fn rollout_stdin(&self, text: &str, extra: &[&str]) -> Run {
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.node.host.name])
            .arg(router_bin())
            .args(self.rollout_args("-", extra))
            .env_remove("CNI_COMMAND")
            .envs([allowed_dirs_env()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        Run {
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            code: out.status.code().unwrap_or(-1),
        }
    }

    fn check_all(&self) -> Run {
        let data_dir = self.data_dir();
        router(
            &self.node,
            &[
                "check",
                "--all",
                "--cache-dir",
                self.cache.path(),
                "--data-dir",
                data_dir.to_str().unwrap(),
            ],
        )
    }

    /// Every pod's state and the node's, for "nothing changed".
    fn state(&self) -> String {
        let pods: Vec<String> = self.pods.iter().map(|(pod, _, _)| pod_state(pod)).collect();
        format!("{}\n{}", pods.join("\n"), host_state(&self.node))
    }
}

/// A NetworkAttachmentDefinition holding `conflist`, as `kubectl get -o json` prints it.
fn nad(conflist: &Value) -> Value {
    json!({
        "apiVersion": "k8s.cni.cncf.io/v1",
        "kind": "NetworkAttachmentDefinition",
        "metadata": {"name": NETWORK, "namespace": "default", "resourceVersion": "4242",
                     "uid": "0b6e5f5e-5d2a-4a43-9a39-1c1b5b0e3a61"},
        "spec": {"config": serde_json::to_string_pretty(conflist).unwrap()},
    })
}

fn has_rule(pod: &Pod, cidr: &str) -> bool {
    pod.netns
        .ipx(&["rule"])
        .lines()
        .any(|l| l.contains(&format!("to {cidr} lookup 100")))
}

fn runtime_check_is_clean(net1: &Network, node: &Node, pod: &Pod) {
    // The runtime's CHECK sends the ADD-time config (v1) from its cache.
    let out = net1.invoke_one(node, pod, "CHECK", "router");
    assert!(
        out.ok,
        "router CHECK with the ADD-time config: {}",
        out.stdout
    );
}

/// What router owns in the pod and on the node after a DEL: nothing.
fn nothing_owned_left(cluster: &Cluster, pod: &Pod, index: u8) {
    let rules = pod.netns.ipx(&["rule"]) + &pod.netns.ipx(&["-6", "rule"]);
    assert!(!rules.contains("lookup 100"), "{rules}");
    let table = pod.netns.table("-4", "100") + &pod.netns.table("-6", "100");
    assert!(table.is_empty(), "{table}");
    let host = cluster.node.host.table("-4", "500") + &cluster.node.host.table("-6", "500");
    for addr in [underlay_v4(index), underlay_v6(index)] {
        assert!(!host.contains(&format!("{addr} ")), "{addr} in\n{host}");
    }
    let record = cluster.data_dir().join(format!("{}-net1.json", pod.id));
    assert!(!record.exists(), "{} left", record.display());
}

#[test]
fn a_new_cidr_reaches_every_pod_and_the_runtimes_check_and_del_act_on_it() {
    let cluster = Cluster::new("rov2", 3);
    let node_before = host_state(&cluster.node);

    let run = cluster.rollout(&cluster.v2(), &[]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains("3 attachments: 3 rolled out"),
        "{}",
        run.stdout
    );
    for (pod, _, _) in &cluster.pods {
        assert!(has_rule(pod, NEW_OVERLAY), "{}", pod.netns.ipx(&["rule"]));
        assert!(has_rule(pod, NEW_SERVICE), "{}", pod.netns.ipx(&["rule"]));
    }
    // Hijack CIDRs are the pod's business: the node gains no rule, route or neighbour.
    assert_eq!(host_state(&cluster.node), node_before);
    for (pod, _, net1) in &cluster.pods {
        runtime_check_is_clean(net1, &cluster.node, pod);
    }
    let all = cluster.check_all();
    assert_eq!(all.code, 0, "{}", all.stdout);
    // `router plan` from the cache entry (the ADD-time config) plans the rolled-out one.
    let (pod, _, _) = &cluster.pods[0];
    let plan = router(
        &cluster.node,
        &[
            "plan",
            "--cache-dir",
            cluster.cache.path(),
            "--container-id",
            &pod.id,
            "--ifname",
            "net1",
        ],
    );
    assert_eq!(
        (plan.code, plan.stdout.as_str()),
        (0, "nothing to do\n"),
        "{}",
        plan.stderr
    );

    let again = cluster.rollout(&cluster.v2(), &[]);
    assert_eq!(again.code, 0, "{}{}", again.stdout, again.stderr);
    assert!(
        again.stdout.contains("3 attachments: 3 unchanged"),
        "{}",
        again.stdout
    );

    for (i, (pod, overlay, net1)) in cluster.pods.iter().enumerate() {
        let out = net1.del(&cluster.node, pod);
        assert!(out.ok, "DEL: {}", out.stdout);
        nothing_owned_left(&cluster, pod, i as u8 + 1);
        assert!(overlay.del(&cluster.node, pod).ok);
    }
}

#[test]
fn dropping_a_cidr_is_refused_naming_its_rule_until_pruned() {
    let cluster = Cluster::new("roprune", 2);
    let v3 = cluster.conflist(json!({"service_hijack_subnet": ["fd00:10:96::/108"]}));
    let before = cluster.state();

    let refused = cluster.rollout(&v3, &[]);
    assert_eq!(refused.code, 2, "{}{}", refused.stdout, refused.stderr);
    assert!(refused.stdout.contains("2 refused"), "{}", refused.stdout);
    assert!(
        refused
            .stdout
            .contains("ip rule del from all to 10.96.0.0/12 lookup 100 pref 1000"),
        "the refusal names the rule: {}",
        refused.stdout
    );
    assert!(refused.stdout.contains("--prune"), "{}", refused.stdout);
    assert_eq!(cluster.state(), before, "a refused rollout changes nothing");

    let pruned = cluster.rollout(&v3, &["--prune", "--max-parallel", "2"]);
    assert_eq!(pruned.code, 0, "{}{}", pruned.stdout, pruned.stderr);
    assert!(pruned.stdout.contains("2 rolled out"), "{}", pruned.stdout);
    for (pod, _, net1) in &cluster.pods {
        assert!(
            !has_rule(pod, "10.96.0.0/12"),
            "{}",
            pod.netns.ipx(&["rule"])
        );
        runtime_check_is_clean(net1, &cluster.node, pod);
    }
    let all = cluster.check_all();
    assert_eq!(all.code, 0, "{}", all.stdout);
    for (i, (pod, _, net1)) in cluster.pods.iter().enumerate() {
        assert!(net1.del(&cluster.node, pod).ok);
        nothing_owned_left(&cluster, pod, i as u8 + 1);
    }
}

#[test]
fn a_route_table_change_is_refused_naming_the_key_and_a_dry_run_only_prints_plans() {
    let cluster = Cluster::new("rokey", 2);
    let before = cluster.state();

    let moved = cluster.conflist(json!({"route_table": 200}));
    let refused = cluster.rollout(&moved, &[]);
    assert_eq!(refused.code, 2, "{}{}", refused.stdout, refused.stderr);
    assert!(
        refused.stdout.contains(
            "route_table cannot change on a live pod (100 -> 200): the pod must be recreated"
        ),
        "{}",
        refused.stdout
    );
    assert_eq!(cluster.state(), before);

    let dry = cluster.rollout(&cluster.v2(), &["--dry-run"]);
    assert_eq!(dry.code, 0, "{}{}", dry.stdout, dry.stderr);
    assert!(dry.stdout.contains("2 planned (dry run)"), "{}", dry.stdout);
    let added = format!("+ ip rule add from all to {NEW_OVERLAY} lookup 100 pref 1000 proto 176");
    assert_eq!(dry.stdout.matches(&added).count(), 2, "{}", dry.stdout);
    let json = cluster.rollout(&cluster.v2(), &["--dry-run", "--output", "json"]);
    assert_eq!(json.code, 0);
    let doc = json.json();
    assert_eq!(doc["schema"], "router.rollout/v1");
    for attachment in doc["attachments"].as_array().unwrap() {
        assert_eq!(attachment["status"], "planned");
        assert_eq!(attachment["plan"]["schema"], "router.plan/v1");
        assert_eq!(attachment["plan"]["pending"], 2, "{attachment}");
    }
    let junit = cluster.rollout(&moved, &["--output", "junit"]);
    assert_eq!(junit.code, 2);
    assert!(
        junit.stdout.contains("<failure type=\"refused\""),
        "{}",
        junit.stdout
    );
    assert_eq!(
        cluster.state(),
        before,
        "dry runs and refusals change nothing"
    );
}

#[test]
fn a_nad_in_yaml_or_json_and_a_conflist_roll_out_the_same_config() {
    let cluster = Cluster::new("ronad", 1);
    let v2 = cluster.v2();
    let yaml = serde_norway::to_string(&nad(&v2)).unwrap();
    let json_nad = serde_json::to_string_pretty(&nad(&v2)).unwrap();
    let dry = |run: Run| {
        assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
        run.json()["attachments"][0]["plan"]["ops"].clone()
    };
    let from_yaml = dry(cluster.rollout_stdin(&yaml, &["--dry-run", "--output", "json"]));
    let from_json = dry(cluster.rollout_stdin(&json_nad, &["--dry-run", "--output", "json"]));
    let from_conflist = dry(cluster.rollout(&v2, &["--dry-run", "--output", "json"]));
    assert_eq!(from_yaml.as_array().map(Vec::len), Some(2), "{from_yaml}");
    assert_eq!(from_yaml, from_json);
    assert_eq!(from_yaml, from_conflist);

    let applied = cluster.rollout_stdin(&yaml, &[]);
    assert_eq!(applied.code, 0, "{}{}", applied.stdout, applied.stderr);
    assert!(
        applied.stdout.contains("1 rolled out"),
        "{}",
        applied.stdout
    );
    // The same config in its other forms is already there.
    for again in [
        cluster.rollout_stdin(&json_nad, &[]),
        cluster.rollout(&v2, &[]),
    ] {
        assert_eq!(again.code, 0, "{}", again.stdout);
        assert!(again.stdout.contains("1 unchanged"), "{}", again.stdout);
    }
}

#[test]
fn a_rollout_racing_a_del_never_recreates_what_the_del_removed() {
    let cluster = Cluster::new("rorace", 0);
    let v2 = cluster.conflist(json!({
        "overlay_hijack_subnet": ["10.244.0.0/16", "fd00:10:244::/48", NEW_OVERLAY],
    }));
    let file = cluster.write("race.json", &v2.to_string());
    let args = cluster.rollout_args(file.to_str().unwrap(), &[]);
    let mut outcomes = Vec::new();
    for round in 1..=6u8 {
        let (pod, overlay, net1) = attached_pod(&cluster.node, &format!("rorace{round}"), round);
        cluster.cache.write(&net1, &pod.id, Some(&pod.netns.path()));
        let rollout = Command::new("ip")
            .args(["netns", "exec", &cluster.node.host.name])
            .arg(router_bin())
            .args(&args)
            .env_remove("CNI_COMMAND")
            .envs([allowed_dirs_env()])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let del = net1.del(&cluster.node, &pod);
        let rolled = rollout.wait_with_output().unwrap();
        let report = String::from_utf8_lossy(&rolled.stdout);
        assert!(del.ok, "DEL: {}", del.stdout);
        // Whichever ran first, the DEL leaves nothing and the rollout re-creates nothing.
        nothing_owned_left(&cluster, &pod, round);
        assert!(
            report.contains("rolled out") || report.contains("gone"),
            "round {round}: {report}{}",
            String::from_utf8_lossy(&rolled.stderr)
        );
        outcomes.push(match report.contains("rolled out") {
            true => "rolled out, then deleted",
            false => "found deleted",
        });
        let lock = cluster.data_dir().join(format!("{}-net1.lock", pod.id));
        assert!(
            !lock.exists(),
            "the attachment's lock file is left: {}",
            lock.display()
        );
        fs::remove_file(
            cluster
                .cache
                .dir
                .join("results")
                .join(format!("{NETWORK}-{}-net1", pod.id)),
        )
        .unwrap();
        assert!(overlay.del(&cluster.node, &pod).ok);
    }
    // Which order each round took is the scheduler's; both are right.
    eprintln!("rollout against DEL, per round: {outcomes:?}");
}

#[test]
fn a_rollout_killed_mid_way_is_finished_by_the_next_run() {
    let cluster = Cluster::new("rokill", 3);
    let mut ids: Vec<&str> = cluster.pods.iter().map(|(p, _, _)| p.id.as_str()).collect();
    ids.sort();
    // The rollout goes in container id order; holding the second attachment's lock (as a
    // runtime's DEL or CHECK would) stops it there, with the first one done.
    let records = FileRecords::new(&cluster.data_dir());
    let held = records.lock_attachment(ids[1], "net1", false).unwrap();
    let file = cluster.write("kill.json", &cluster.v2().to_string());
    let mut rollout = Command::new("ip")
        .args(["netns", "exec", &cluster.node.host.name])
        .arg(router_bin())
        .args(cluster.rollout_args(file.to_str().unwrap(), &[]))
        .env_remove("CNI_COMMAND")
        .envs([allowed_dirs_env()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let first = cluster.data_dir().join(format!("{}-net1.json", ids[0]));
    let rolled_out = |path: &PathBuf| {
        fs::read_to_string(path)
            .map(|text| text.contains("\"rolled_out\""))
            .unwrap_or(false)
    };
    while !rolled_out(&first) {
        assert!(
            rollout.try_wait().unwrap().is_none(),
            "the rollout ended early"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    // SIGKILL: the process has no say. `ip netns exec` execs router, so this is router.
    rollout.kill().unwrap();
    rollout.wait().unwrap();
    drop(held);
    let pod = |id: &str| &cluster.pods.iter().find(|(p, _, _)| p.id == id).unwrap().0;
    assert!(
        !has_rule(pod(ids[2]), NEW_OVERLAY),
        "the third was not reached"
    );

    let second = cluster.rollout(&cluster.v2(), &[]);
    assert_eq!(second.code, 0, "{}{}", second.stdout, second.stderr);
    for (pod, _, net1) in &cluster.pods {
        assert!(has_rule(pod, NEW_OVERLAY), "{}", pod.netns.ipx(&["rule"]));
        assert!(has_rule(pod, NEW_SERVICE), "{}", pod.netns.ipx(&["rule"]));
        runtime_check_is_clean(net1, &cluster.node, pod);
    }
    assert!(second.stdout.contains("rolled out"), "{}", second.stdout);
    let all = cluster.check_all();
    assert_eq!(all.code, 0, "{}", all.stdout);
    for (i, (pod, _, net1)) in cluster.pods.iter().enumerate() {
        assert!(net1.del(&cluster.node, pod).ok);
        nothing_owned_left(&cluster, pod, i as u8 + 1);
    }
}

/// Publishes `files` as the kubelet publishes a ConfigMap's new generation: the files in a
/// new `..<timestamp>` directory, a `<key>` symlink to `..data/<key>` per key, and `..data`
/// swapped to the new directory by a rename over it.
fn publish(dir: &std::path::Path, generation: &str, files: &[(&str, String)]) {
    use std::os::unix::fs::symlink;
    let new = dir.join(generation);
    fs::create_dir_all(&new).unwrap();
    for (key, content) in files {
        fs::write(new.join(key), content).unwrap();
        let link = dir.join(key);
        if fs::symlink_metadata(&link).is_err() {
            symlink(std::path::Path::new("..data").join(key), &link).unwrap();
        }
    }
    let tmp = dir.join("..data_tmp");
    let _ = fs::remove_file(&tmp);
    symlink(generation, &tmp).unwrap();
    fs::rename(&tmp, dir.join("..data")).unwrap();
}

#[test]
fn a_config_dir_file_replaced_by_a_symlink_swap_is_rolled_out_once() {
    use router::config::AllowedDirs;
    use router::operator::Scan;
    use router::report::RolloutStatus;
    use router::rollout::{rollout_all, ConfigDir, RolloutOptions};

    let cluster = Cluster::new("rodir", 1);
    // Kept apart from data_dir and the caches, as a ConfigMap mount is.
    let dir = cluster.node.dir.join("configmap");
    fs::create_dir_all(&dir).unwrap();
    let v1 = macvlan_network(&cluster.node, "net1", 1, &[4, 6], json!({})).conflist;
    let yaml = |conflist: &Value| serde_norway::to_string(&nad(conflist)).unwrap();
    publish(
        &dir,
        "..2026_12_06_00_00_00.1",
        &[("macvlan.yaml", yaml(&v1))],
    );

    // What the agent does on each wake-up: read the directory, roll out what changed.
    let cache_dirs = vec![cluster.cache.dir.0.clone()];
    let data_dirs = vec![cluster.data_dir()];
    let host = cluster.node.host.path();
    let mut watched = ConfigDir::new(&dir);
    let mut wake_up = move || -> Vec<Vec<RolloutStatus>> {
        let cache_dirs = cache_dirs.clone();
        let data_dirs = data_dirs.clone();
        let changed: Vec<_> = watched
            .read()
            .unwrap()
            .into_iter()
            .filter(|c| c.changed)
            .map(|c| c.source.unwrap())
            .collect();
        // The agent runs in the node's netns: here the test's "host" netns.
        router::netns::run_in_netns(&host, move || {
            let allowed = AllowedDirs::with([std::env::temp_dir()]);
            let options = RolloutOptions {
                scan: Scan {
                    cache_dirs: &cache_dirs,
                    data_dirs: &data_dirs,
                },
                allowed: &allowed,
                network: None,
                prune: false,
                dry_run: false,
                max_parallel: 1,
                continue_on_error: false,
            };
            Ok(changed
                .iter()
                .map(|source| {
                    let report = rollout_all(source, &options).unwrap();
                    report.attachments.iter().map(|a| a.status).collect()
                })
                .collect())
        })
        .unwrap()
    };
    // The first read sees the file (new to it): the config the pod already has.
    assert_eq!(wake_up(), [[RolloutStatus::Unchanged]]);
    assert_eq!(
        wake_up(),
        Vec::<Vec<RolloutStatus>>::new(),
        "nothing changed"
    );

    publish(
        &dir,
        "..2026_12_06_00_01_00.2",
        &[("macvlan.yaml", yaml(&cluster.v2()))],
    );
    assert_eq!(wake_up(), [[RolloutStatus::RolledOut]]);
    assert_eq!(
        wake_up(),
        Vec::<Vec<RolloutStatus>>::new(),
        "rolled out once"
    );
    let (pod, _, net1) = &cluster.pods[0];
    assert!(has_rule(pod, NEW_OVERLAY), "{}", pod.netns.ipx(&["rule"]));
    runtime_check_is_clean(net1, &cluster.node, pod);
}
