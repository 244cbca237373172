//! A small CNI runtime for the chain tests: it invokes plugins as libcni does (chain order
//! for ADD with each result injected as `prevResult`, the cached final result for CHECK and
//! DEL, reverse order for DEL), in a node made of throwaway netns: the "host" is itself a
//! netns the test made; the machine's own netns is never touched.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use serde_json::{json, Value};

use router::config::{AllowedDirs, ALLOWED_DIRS_VAR};

use super::{run, unique, Netns};

/// Where the tests' configs may name files: the defaults plus the temp dir that holds every
/// test's data_dir and log (ROUTER_ALLOWED_DIRS for the binary, a value in process).
pub fn test_allowed_dirs() -> AllowedDirs {
    AllowedDirs::with([std::env::temp_dir()])
}

/// ROUTER_ALLOWED_DIRS as the tests' runtime sets it for the binaries it spawns.
pub fn allowed_dirs_env() -> (&'static str, String) {
    (ALLOWED_DIRS_VAR, std::env::temp_dir().display().to_string())
}

/// Shell helpers on the test's namespaces.
pub trait Shell {
    /// `ip -n NAME ...`, returning what it printed.
    fn ipx(&self, args: &[&str]) -> String;
    fn try_exec(&self, args: &[&str]) -> bool;
    fn sysctl_text(&self, key: &str) -> String;
    /// Whether `addr` answers one ping from this netns within a second.
    fn pings(&self, addr: &str) -> bool;
    /// The routes of one table (empty when the table does not exist).
    fn table(&self, family: &str, table: &str) -> String;
    /// The MAC of `dev`, as `ip` prints it.
    fn link_mac(&self, dev: &str) -> String;
}

impl Shell for Netns {
    fn ipx(&self, args: &[&str]) -> String {
        let mut full = vec!["-n", self.name.as_str()];
        full.extend_from_slice(args);
        run("ip", &full)
    }

    fn try_exec(&self, args: &[&str]) -> bool {
        Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    fn sysctl_text(&self, key: &str) -> String {
        self.exec(&["sysctl", "-n", key]).trim().to_string()
    }

    fn pings(&self, addr: &str) -> bool {
        self.try_exec(&["ping", "-c", "1", "-W", "1", addr])
    }

    fn table(&self, family: &str, table: &str) -> String {
        let all = self.ipx(&[family, "route", "show", "table", "all"]);
        let tag = format!("table {table} ");
        all.lines()
            .filter(|l| l.contains(&tag))
            .map(|l| format!("{l}\n"))
            .collect()
    }

    fn link_mac(&self, dev: &str) -> String {
        let brief = self.ipx(&["-br", "link", "show", "dev", dev]);
        brief
            .split_whitespace()
            .nth(2)
            .unwrap_or_else(|| panic!("no MAC for {dev} in {brief:?}"))
            .to_string()
    }
}

/// A netns with its loopback up.
pub fn netns_up(tag: &str) -> Netns {
    let ns = Netns::new(tag);
    ns.ipx(&["link", "set", "lo", "up"]);
    ns
}

/// A temporary directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(unique(tag));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub const UPSTREAM_V4: &str = "192.168.50.254";
pub const UPSTREAM_V6: &str = "fd50::fe";
pub const NODE_V4: &str = "192.168.50.1";
pub const NODE_V6: &str = "fd50::1";

/// The node ("host" netns) with an uplink `up0` to an "ext" netns playing the upstream
/// router; macvlan interfaces of pods hang off `up0`.
pub struct Node {
    pub host: Netns,
    pub ext: Netns,
    pub dir: TempDir,
}

impl Node {
    pub fn new(tag: &str) -> Node {
        let host = netns_up(&format!("{tag}h"));
        let ext = netns_up(&format!("{tag}e"));
        run(
            "ip",
            &[
                "link", "add", "up0", "netns", &host.name, "type", "veth", "peer", "name", "ext0",
                "netns", &ext.name,
            ],
        );
        host.ipx(&["link", "set", "up0", "up"]);
        ext.ipx(&["link", "set", "ext0", "up"]);
        host.ipx(&["addr", "add", &format!("{NODE_V4}/24"), "dev", "up0"]);
        host.ipx(&[
            "addr",
            "add",
            &format!("{NODE_V6}/64"),
            "dev",
            "up0",
            "nodad",
        ]);
        ext.ipx(&["addr", "add", &format!("{UPSTREAM_V4}/24"), "dev", "ext0"]);
        ext.ipx(&[
            "addr",
            "add",
            &format!("{UPSTREAM_V6}/64"),
            "dev",
            "ext0",
            "nodad",
        ]);
        Node {
            host,
            ext,
            dir: TempDir::new(tag),
        }
    }

    /// Invokes one plugin binary in the host netns, as a runtime does.
    pub fn invoke(
        &self,
        plugin: &Path,
        command: &str,
        pod: &Pod,
        ifname: &str,
        stdin: &Value,
    ) -> CniOutput {
        let netns = pod.netns.path();
        let env = pod_env(command, &pod.id, &netns, ifname);
        let child = self.spawn(plugin, &env, stdin);
        CniOutput::from(child.wait_with_output().unwrap())
    }

    /// Starts a plugin in the host netns with only `env` (and a PATH), `stdin` written and
    /// closed; the caller waits for it (or signals it first).
    pub fn spawn(&self, plugin: &Path, env: &[(&str, String)], stdin: &Value) -> Child {
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.host.name])
            .arg(plugin)
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .envs([allowed_dirs_env()])
            .envs(env.iter().map(|(k, v)| (*k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{}: {e}", plugin.display()));
        if let Some(mut input) = child.stdin.take() {
            input.write_all(stdin.to_string().as_bytes()).unwrap();
        }
        child
    }
}

/// The CNI_* variables of a runtime invoking a plugin for one pod interface.
pub fn pod_env(command: &str, id: &str, netns: &Path, ifname: &str) -> Vec<(&'static str, String)> {
    vec![
        ("CNI_COMMAND", command.to_string()),
        ("CNI_CONTAINERID", id.to_string()),
        ("CNI_NETNS", netns.display().to_string()),
        ("CNI_IFNAME", ifname.to_string()),
        ("CNI_PATH", cni_path()),
    ]
}

/// What a plugin printed and how it exited.
#[derive(Debug, Clone)]
pub struct CniOutput {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

impl CniOutput {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or(Value::Null)
    }

    pub fn code(&self) -> Option<u64> {
        self.json()["code"].as_u64()
    }
}

impl From<Output> for CniOutput {
    fn from(out: Output) -> CniOutput {
        CniOutput {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

pub fn router_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_router"))
}

fn cni_path() -> String {
    let dir = router_bin()
        .parent()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    format!("/usr/lib/cni:{dir}")
}

fn plugin_path(kind: &str) -> PathBuf {
    if kind == "router" {
        router_bin()
    } else {
        PathBuf::from("/usr/lib/cni").join(kind)
    }
}

/// A pod: its netns and container id.
pub struct Pod {
    pub netns: Netns,
    pub id: String,
}

impl Pod {
    pub fn new(tag: &str) -> Pod {
        let netns = netns_up(&format!("{tag}p"));
        let id = format!("ctr-{}", netns.name);
        Pod { netns, id }
    }
}

/// A conflist and the result libcni cached for it.
pub struct Network {
    pub conflist: Value,
    pub ifname: String,
    pub cached: Option<Value>,
}

impl Network {
    pub fn new(conflist: Value, ifname: &str) -> Network {
        Network {
            conflist,
            ifname: ifname.to_string(),
            cached: None,
        }
    }

    fn plugin_conf(&self, plugin: &Value, prev: Option<&Value>) -> Value {
        let mut conf = plugin.clone();
        conf["name"] = self.conflist["name"].clone();
        conf["cniVersion"] = self.conflist["cniVersion"].clone();
        if let Some(prev) = prev {
            conf["prevResult"] = prev.clone();
        }
        conf
    }

    fn plugins(&self) -> Vec<Value> {
        self.conflist["plugins"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// ADD through the chain; the final result is cached. Stops at the first failure.
    pub fn add(&mut self, node: &Node, pod: &Pod) -> CniOutput {
        let mut prev: Option<Value> = None;
        let mut last = None;
        for plugin in self.plugins() {
            let kind = plugin["type"].as_str().unwrap_or_default().to_string();
            let out = node.invoke(
                &plugin_path(&kind),
                "ADD",
                pod,
                &self.ifname,
                &self.plugin_conf(&plugin, prev.as_ref()),
            );
            if !out.ok {
                return out;
            }
            prev = Some(out.json());
            last = Some(out);
        }
        self.cached = prev;
        last.unwrap_or(CniOutput {
            ok: true,
            stdout: String::new(),
            stderr: String::new(),
        })
    }

    /// CHECK through the chain with the cached result; the first failure is returned.
    pub fn check(&self, node: &Node, pod: &Pod) -> CniOutput {
        self.each(node, pod, "CHECK", self.plugins())
    }

    /// DEL through the chain in reverse with the cached result.
    pub fn del(&self, node: &Node, pod: &Pod) -> CniOutput {
        let mut plugins = self.plugins();
        plugins.reverse();
        self.each(node, pod, "DEL", plugins)
    }

    /// ADD through the chain up to, not including, the first plugin of type `kind`: the
    /// prevResult libcni would inject into it. A failure on the way fails the test.
    pub fn add_until(&self, node: &Node, pod: &Pod, kind: &str) -> Value {
        let mut prev: Option<Value> = None;
        for plugin in self.plugins().into_iter().take_while(|p| p["type"] != kind) {
            let kind = plugin["type"].as_str().unwrap_or_default().to_string();
            let conf = self.plugin_conf(&plugin, prev.as_ref());
            let out = node.invoke(&plugin_path(&kind), "ADD", pod, &self.ifname, &conf);
            assert!(out.ok, "{kind} ADD: {} {}", out.stdout, out.stderr);
            prev = Some(out.json());
        }
        prev.unwrap_or(Value::Null)
    }

    /// The first plugin of type `kind` alone, with `prev` injected as libcni would.
    pub fn invoke_with(
        &self,
        node: &Node,
        pod: &Pod,
        command: &str,
        kind: &str,
        prev: &Value,
    ) -> CniOutput {
        let plugin = self
            .plugins()
            .into_iter()
            .find(|p| p["type"] == kind)
            .unwrap_or_else(|| panic!("no {kind} in the chain"));
        let conf = self.plugin_conf(&plugin, Some(prev));
        node.invoke(&plugin_path(kind), command, pod, &self.ifname, &conf)
    }

    /// One plugin of the chain alone (e.g. router's CHECK), with the cached result.
    pub fn invoke_one(&self, node: &Node, pod: &Pod, command: &str, kind: &str) -> CniOutput {
        let plugins: Vec<Value> = self
            .plugins()
            .into_iter()
            .filter(|p| p["type"] == kind)
            .collect();
        self.each(node, pod, command, plugins)
    }

    fn each(&self, node: &Node, pod: &Pod, command: &str, plugins: Vec<Value>) -> CniOutput {
        let mut last = CniOutput {
            ok: true,
            stdout: String::new(),
            stderr: String::new(),
        };
        for plugin in plugins {
            let kind = plugin["type"].as_str().unwrap_or_default().to_string();
            let conf = self.plugin_conf(&plugin, self.cached.as_ref());
            last = node.invoke(&plugin_path(&kind), command, pod, &self.ifname, &conf);
            if !last.ok {
                return last;
            }
        }
        last
    }
}

/// eth0 from Debian's ptp + host-local, as Calico's veth would be, in the families given
/// (4, 6).
pub fn overlay_network(node: &Node, pod_index: u8, families: &[u8]) -> Network {
    let mut ranges = Vec::new();
    let mut routes = Vec::new();
    if families.contains(&4) {
        ranges.push(json!([{ "subnet": format!("10.244.{pod_index}.0/24") }]));
        routes.push(json!({ "dst": "0.0.0.0/0" }));
    }
    if families.contains(&6) {
        ranges.push(json!([{ "subnet": format!("fd00:10:244:{pod_index:x}::/64") }]));
        routes.push(json!({ "dst": "::/0" }));
    }
    Network::new(
        json!({
            "cniVersion": "1.0.0",
            "name": "k8s-pod-network",
            "plugins": [{
                "type": "ptp",
                "ipMasq": false,
                "ipam": {
                    "type": "host-local",
                    "dataDir": node.dir.join("host-local"),
                    "ranges": ranges,
                    "routes": routes
                }
            }]
        }),
        "eth0",
    )
}

/// The pod's underlay addresses for `pod_index` on `up0`'s segment.
pub fn underlay_v4(pod_index: u8) -> String {
    format!("192.168.50.{}", 10 + pod_index)
}

pub fn underlay_v6(pod_index: u8) -> String {
    format!("fd50::{:x}", 0x10 + u32::from(pod_index))
}

/// net1 from Debian's macvlan on `up0` + static, then router with `router` merged in.
pub fn macvlan_network(
    node: &Node,
    ifname: &str,
    pod_index: u8,
    families: &[u8],
    router: Value,
) -> Network {
    let mut addresses = Vec::new();
    let mut routes = Vec::new();
    if families.contains(&4) {
        addresses.push(
            json!({ "address": format!("{}/24", underlay_v4(pod_index)), "gateway": UPSTREAM_V4 }),
        );
        routes.push(json!({ "dst": "0.0.0.0/0" }));
    }
    if families.contains(&6) {
        addresses.push(
            json!({ "address": format!("{}/64", underlay_v6(pod_index)), "gateway": UPSTREAM_V6 }),
        );
        routes.push(json!({ "dst": "::/0" }));
    }
    let mut router_conf = json!({
        "type": "router",
        "overlay_hijack_subnet": ["10.244.0.0/16", "fd00:10:244::/48"],
        "service_hijack_subnet": ["10.96.0.0/12", "fd00:10:96::/108"],
        "rp_filter": { "set_host": true, "value": 0 },
        "data_dir": node.dir.join("router"),
        "log_options": { "log_level": "debug", "log_file": node.dir.join("router.log") }
    });
    if let (Some(obj), Some(extra)) = (router_conf.as_object_mut(), router.as_object()) {
        for (k, v) in extra {
            obj.insert(k.clone(), v.clone());
        }
    }
    Network::new(
        json!({
            "cniVersion": "1.0.0",
            "name": format!("macvlan-overlay-{ifname}"),
            "plugins": [
                {
                    "type": "macvlan",
                    "master": "up0",
                    "mode": "bridge",
                    "ipam": { "type": "static", "addresses": addresses, "routes": routes }
                },
                router_conf
            ]
        }),
        ifname,
    )
}

/// The macvlan network without router: the problem the plugin exists to solve.
pub fn bare_macvlan_network(node: &Node, ifname: &str, pod_index: u8, families: &[u8]) -> Network {
    let mut network = macvlan_network(node, ifname, pod_index, families, json!({}));
    if let Some(plugins) = network.conflist["plugins"].as_array_mut() {
        plugins.retain(|p| p["type"] != "router");
    }
    network
}

/// A node with one pod whose eth0 is attached.
pub fn pod_with_overlay(tag: &str, pod_index: u8, families: &[u8]) -> (Node, Pod, Network) {
    let node = Node::new(tag);
    let pod = Pod::new(tag);
    let mut overlay = overlay_network(&node, pod_index, families);
    let out = overlay.add(&node, &pod);
    assert!(out.ok, "ptp ADD: {} {}", out.stdout, out.stderr);
    (node, pod, overlay)
}

/// What router owns or sets in the pod, as `ip` shows it, for comparing states. The local
/// table is left out: IPv6 DAD adds its routes whenever it finishes.
pub fn pod_state(pod: &Pod) -> String {
    let ns = &pod.netns;
    [
        ns.ipx(&["rule"]),
        ns.ipx(&["-6", "rule"]),
        ns.ipx(&["route", "show", "table", "main"]),
        ns.ipx(&["-6", "route", "show", "table", "main"]),
        ns.table("-4", "100"),
        ns.table("-6", "100"),
        ns.ipx(&["neigh", "show", "nud", "permanent"]),
        ns.exec(&[
            "sysctl",
            "net.ipv4.conf.all.rp_filter",
            "net.ipv4.conf.eth0.rp_filter",
        ]),
    ]
    .join("\n")
}

/// The host's rules, table 500 and permanent neighbours: what router touches there.
pub fn host_state(node: &Node) -> String {
    let ns = &node.host;
    [
        ns.ipx(&["rule"]),
        ns.ipx(&["-6", "rule"]),
        ns.table("-4", "500"),
        ns.table("-6", "500"),
        ns.ipx(&["neigh", "show", "nud", "permanent"]),
    ]
    .join("\n")
}
