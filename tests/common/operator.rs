//! The operator commands on a test node: the router binary run in the node's "host" netns
//! as an operator would, a libcni result cache written in libcni's format, pods attached
//! by the real chain, and drift made behind router's back.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::{json, Value};

use super::cni::*;
use super::Netns;

/// What one run of the router binary printed and its exit code.
pub struct Run {
    pub stdout: String,
    pub stderr: String,
    pub code: i32,
}

impl Run {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}\n{}", self.stdout, self.stderr))
    }
}

/// `ip netns exec <host> router ARGS`, as an operator on the node would run it.
pub fn router(node: &Node, args: &[&str]) -> Run {
    router_in(&node.host, args)
}

/// `ip netns exec <netns> router ARGS`: the operator CLI run in `netns`.
pub fn router_in(netns: &Netns, args: &[&str]) -> Run {
    router_in_named(&netns.name, args)
}

/// `router_in` by the netns's name, for a thread that does not own the `Netns`.
pub fn router_in_named(netns: &str, args: &[&str]) -> Run {
    let out = Command::new("ip")
        .args(["netns", "exec", netns])
        .arg(router_bin())
        .args(args)
        .env_remove("CNI_COMMAND")
        .envs([allowed_dirs_env()])
        .output()
        .unwrap();
    Run {
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        code: out.status.code().unwrap_or(-1),
    }
}

/// A libcni result cache in a directory of the test's own.
pub struct Cache {
    pub dir: TempDir,
}

impl Cache {
    pub fn new(tag: &str) -> Cache {
        let dir = TempDir::new(tag);
        fs::create_dir_all(dir.join("results")).unwrap();
        Cache { dir }
    }

    pub fn path(&self) -> &str {
        self.dir.0.to_str().unwrap()
    }

    /// Writes the entry libcni's cacheAdd writes after an ADD of `network` (its conflist
    /// as base64 bytes, the chain's final result), with the netns when `netns` is given.
    pub fn write(&self, network: &Network, container_id: &str, netns: Option<&Path>) -> PathBuf {
        let name = network.conflist["name"].as_str().unwrap().to_string();
        let mut entry = json!({
            "kind": "cniCacheV1",
            "containerId": container_id,
            "config": STANDARD.encode(serde_json::to_vec(&network.conflist).unwrap()),
            "ifName": network.ifname,
            "networkName": name,
            "cniArgs": [["K8S_POD_NAMESPACE", "default"], ["K8S_POD_NAME", "p"]],
            "result": network.cached.clone().expect("the network was added"),
        });
        if let Some(netns) = netns {
            entry["netns"] = json!(netns);
        }
        let file = self
            .dir
            .join("results")
            .join(format!("{name}-{container_id}-{}", network.ifname));
        fs::write(&file, entry.to_string()).unwrap();
        file
    }
}

/// A pod on `node` with eth0 from ptp and net1 from macvlan + router, both ADDed.
pub fn attached_pod(node: &Node, tag: &str, index: u8) -> (Pod, Network, Network) {
    let pod = Pod::new(tag);
    let mut overlay = overlay_network(node, index, &[4, 6]);
    let out = overlay.add(node, &pod);
    assert!(out.ok, "ptp ADD: {} {}", out.stdout, out.stderr);
    let mut net1 = macvlan_network(node, "net1", index, &[4, 6], json!({}));
    let out = net1.add(node, &pod);
    assert!(out.ok, "net1 ADD: {} {}", out.stdout, out.stderr);
    (pod, overlay, net1)
}

/// A node with one `attached_pod` whose net1 is in a result cache of its own (with the
/// netns), as the operator commands find it.
pub fn cached_pod(tag: &str, index: u8) -> (Node, Pod, Network, Cache) {
    let node = Node::new(tag);
    let (pod, _overlay, net1) = attached_pod(&node, tag, index);
    let cache = Cache::new(&format!("{tag}c"));
    cache.write(&net1, &pod.id, Some(&pod.netns.path()));
    (node, pod, net1, cache)
}

/// The host veth whose table-500 route leads to the pod with this underlay address.
pub fn host_veth(node: &Node, underlay: &str) -> String {
    let table = node.host.table("-4", "500");
    table
        .lines()
        .find(|l| l.starts_with(&format!("{underlay} ")))
        .and_then(|l| l.split_whitespace().nth(2))
        .unwrap_or_else(|| panic!("no table-500 route to {underlay}:\n{table}"))
        .to_string()
}

/// Deletes router's rule sending the service CIDR to the pod table: drift every test of
/// repairs starts from.
pub fn delete_service_rule(pod: &Pod) {
    pod.netns.ipx(&[
        "rule",
        "del",
        "to",
        "10.96.0.0/12",
        "lookup",
        "100",
        "pref",
        "1000",
    ]);
}

/// Drift behind router's back: a pod rule and sysctl, and the host route to the pod.
pub fn tamper(node: &Node, pod: &Pod, index: u8) -> String {
    let veth = host_veth(node, &underlay_v4(index));
    delete_service_rule(pod);
    pod.netns.set_sysctl("net.ipv4.conf.net1.rp_filter", 1);
    node.host.ipx(&[
        "route",
        "del",
        &underlay_v4(index),
        "dev",
        &veth,
        "table",
        "500",
    ]);
    veth
}
