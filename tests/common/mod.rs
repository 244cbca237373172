//! Setup shared by the kernel tests: namespaces made for one test and removed on drop,
//! the pod of DESIGN ("eth0" veth to the host, "net1" macvlan on a host veth, IPv4 main
//! with two defaults, IPv6 multipath default), and model-object builders.
#![allow(dead_code)] // each test crate uses a part

pub mod cni;
pub mod operator;

#[allow(unused_imports)] // each test crate uses a part
pub use router::testkit::build::*;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use router::model::{ActualState, SysctlKey};
use router::netns::run_in_netns;
use router::snapshot::{LiveSnapshot, SnapshotRequest, SnapshotSource};

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// A name no other test (or test run) uses.
pub fn unique(tag: &str) -> String {
    format!(
        "rtr-{}-{}-{tag}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    )
}

/// Runs a command; a failure fails the test with its output.
pub fn run(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A network namespace made for one test, deleted (with its links) on drop.
pub struct Netns {
    pub name: String,
}

/// Kernel tests need root (network namespaces, links, netlink writes). Without it they
/// fail at once, saying how to run them, rather than with an `ip` error deep in a setup,
/// and never skip: a skipped kernel test would look like a passed one.
fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "kernel tests need root: run `sudo cargo test` (or `sudo bash .ci/run`, which also \
         installs what they use); without root, `cargo test-pure` runs the tests that need \
         no kernel"
    );
}

impl Netns {
    pub fn new(tag: &str) -> Netns {
        require_root();
        let name = unique(tag);
        run("ip", &["netns", "add", &name]);
        Netns { name }
    }

    pub fn path(&self) -> PathBuf {
        Path::new("/run/netns").join(&self.name)
    }

    /// `ip -n <netns> <command>`, one command per line.
    pub fn ip(&self, commands: &str) {
        for command in commands.lines().map(str::trim).filter(|l| !l.is_empty()) {
            let mut args = vec!["-n", self.name.as_str()];
            args.extend(command.split_whitespace());
            run("ip", &args);
        }
    }

    pub fn exec(&self, command: &[&str]) -> String {
        let mut args = vec!["netns", "exec", self.name.as_str()];
        args.extend_from_slice(command);
        run("ip", &args)
    }

    pub fn set_sysctl(&self, key: &str, value: i64) {
        self.exec(&["sysctl", "-qw", &format!("{key}={value}")]);
    }

    pub fn sysctl(&self, key: &SysctlKey) -> i64 {
        let out = self.exec(&["sysctl", "-n", &key.to_string()]);
        out.trim()
            .parse()
            .unwrap_or_else(|e| panic!("{key} = {out:?}: {e}"))
    }

    pub fn ifindex(&self, dev: &str) -> u32 {
        let out = self.exec(&["cat", &format!("/sys/class/net/{dev}/ifindex")]);
        out.trim().parse().unwrap()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Quietly: a test may have deleted it already (a pod gone under router).
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .stderr(std::process::Stdio::null())
            .status();
    }
}

/// A pod with an overlay `eth0` (veth to the host) and a macvlan `net1` (on a veth whose
/// both ends stay in the host). Links get `addrgenmode none`: link-local addresses and
/// their routes appear asynchronously (after link-watch), which would make reads racy.
pub struct Topology {
    pub pod: Netns,
    pub host: Netns,
}

pub const POD_ETH0_MAC: &str = "0a:58:0a:f4:01:02";
pub const POD_NET1_MAC: &str = "02:50:00:00:00:02";
pub const GW_MAC: &str = "02:00:00:00:01:01";

pub fn topology() -> Topology {
    let pod = Netns::new("pod");
    let host = Netns::new("host");
    pod.ip(&format!(
        "link add eth0 type veth peer name vethpod netns {}",
        host.name
    ));
    host.ip(&format!(
        "link add vp0 type veth peer name vp1
         link add net1 link vp0 type macvlan mode bridge
         link set net1 netns {}",
        pod.name
    ));
    pod.ip(&format!(
        "link set eth0 address {POD_ETH0_MAC} addrgenmode none
         link set net1 address {POD_NET1_MAC} addrgenmode none
         link set lo up
         link set eth0 up
         link set net1 up
         addr add 10.244.1.2/24 dev eth0
         addr add fd00:10:244:1::2/64 dev eth0 nodad
         addr add 192.168.50.2/24 dev net1
         addr add fd00:50::2/64 dev net1 nodad"
    ));
    host.ip("link set vethpod addrgenmode none
         link set vp0 addrgenmode none
         link set vp1 addrgenmode none
         link set lo up
         link set vethpod up
         link set vp0 up
         link set vp1 up
         addr add 10.244.1.1/24 dev vethpod
         addr add fd00:10:244:1::1/64 dev vethpod nodad");
    pod.ip(&format!(
        "route add default via 10.244.1.1 dev eth0
         route append default via 192.168.50.254 dev net1
         -6 route add default nexthop via fd00:10:244:1::1 dev eth0 nexthop via fd00:50::254 dev net1
         route add 10.240.0.0/12 via 10.244.1.1 dev eth0 table 100 proto 176
         rule add to 10.240.0.0/12 lookup 100 pref 1000 protocol 176
         -6 rule add from fd00:10:244:1::2 lookup 100 pref 1001
         neigh add 10.244.1.1 lladdr {GW_MAC} dev eth0 nud permanent protocol 176"
    ));
    pod.set_sysctl("net.ipv4.conf.eth0.rp_filter", 2);
    pod.set_sysctl("net.ipv4.conf.net1.rp_filter", 1);
    host.set_sysctl("net.ipv4.conf.vethpod.rp_filter", 1);
    Topology { pod, host }
}

/// Takes a live snapshot from a thread inside the test's host netns.
pub fn snapshot_from(host: &Netns, req: SnapshotRequest) -> ActualState {
    run_in_netns(&host.path(), move || LiveSnapshot::default().snapshot(&req)).unwrap()
}

pub fn by_key<K: Ord + Clone, V: Clone>(items: &[V], key: impl Fn(&V) -> K) -> BTreeMap<K, V> {
    items.iter().map(|v| (key(v), v.clone())).collect()
}
