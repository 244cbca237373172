//! Kernel integration tests (run as root). Each test builds its own network namespaces with
//! `ip` and removes them on drop; the machine's own netns is only ever read. The "host" of
//! a snapshot is a test netns entered by a run_in_netns thread, never the real host.
//! These tests fail (never skip) when namespaces cannot be made.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use ipnet::IpNet;
use router::error::Error;
use router::model::{
    ActualState, Family, LinkPeer, MacAddr, Neighbour, NeighbourKey, Route, RouteKey, RouteKind,
    RouteScope, Rule, RuleAction, RuleKey, SysctlKey, SysctlName, MAIN_TABLE, PROTOCOL_BOOT,
    PROTOCOL_KERNEL, ROUTER_PROTOCOL,
};
use router::netns::{read_sysctl, run_in_netns, write_sysctl};
use router::snapshot::{FileSnapshot, LiveSnapshot, SnapshotRequest, SnapshotSource};

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// A name no other test (or test run) uses.
fn unique(tag: &str) -> String {
    format!(
        "rtr-{}-{}-{tag}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    )
}

/// Runs a command; a failure fails the test with its output.
fn run(program: &str, args: &[&str]) -> String {
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
struct Netns {
    name: String,
}

impl Netns {
    fn new(tag: &str) -> Netns {
        let name = unique(tag);
        run("ip", &["netns", "add", &name]);
        Netns { name }
    }

    fn path(&self) -> PathBuf {
        Path::new("/run/netns").join(&self.name)
    }

    /// `ip -n <netns> <command>`, one command per line.
    fn ip(&self, commands: &str) {
        for command in commands.lines().map(str::trim).filter(|l| !l.is_empty()) {
            let mut args = vec!["-n", self.name.as_str()];
            args.extend(command.split_whitespace());
            run("ip", &args);
        }
    }

    fn exec(&self, command: &[&str]) -> String {
        let mut args = vec!["netns", "exec", self.name.as_str()];
        args.extend_from_slice(command);
        run("ip", &args)
    }

    fn set_sysctl(&self, key: &str, value: i64) {
        self.exec(&["sysctl", "-qw", &format!("{key}={value}")]);
    }

    fn sysctl(&self, key: &SysctlKey) -> i64 {
        let out = self.exec(&["sysctl", "-n", &key.to_string()]);
        out.trim()
            .parse()
            .unwrap_or_else(|e| panic!("{key} = {out:?}: {e}"))
    }

    fn ifindex(&self, dev: &str) -> u32 {
        let out = self.exec(&["cat", &format!("/sys/class/net/{dev}/ifindex")]);
        out.trim().parse().unwrap()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// A file in the temp dir, removed on drop.
struct TempFile(PathBuf);

impl TempFile {
    fn new(contents: &str) -> TempFile {
        let path = std::env::temp_dir().join(format!("{}.json", unique("snap")));
        std::fs::write(&path, contents).unwrap();
        TempFile(path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A pod with an overlay `eth0` (veth to the host) and a macvlan `net1` (on a veth whose
/// both ends stay in the host). Links get `addrgenmode none`: link-local addresses and
/// their routes appear asynchronously (after link-watch), which would make reads racy.
struct Topology {
    pod: Netns,
    host: Netns,
}

const POD_ETH0_MAC: &str = "0a:58:0a:f4:01:02";
const POD_NET1_MAC: &str = "02:50:00:00:00:02";
const GW_MAC: &str = "02:00:00:00:01:01";

fn topology() -> Topology {
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

fn request(pod: Option<PathBuf>) -> SnapshotRequest {
    SnapshotRequest {
        pod_netns: pod,
        // 4242 does not exist: it must read as empty.
        pod_tables: BTreeSet::from([100, 4242]),
        host_tables: BTreeSet::from([MAIN_TABLE]),
        host_sysctl_ifaces: BTreeSet::from(["vethpod".to_string(), "gone0".to_string()]),
        preferred_src_for: vec![ip("10.244.1.2"), ip("fd00:10:244:1::2"), ip("203.0.113.9")],
    }
}

/// Takes a live snapshot from a thread inside the test's host netns.
fn snapshot_from(host: &Netns, req: SnapshotRequest) -> ActualState {
    run_in_netns(&host.path(), move || LiveSnapshot.snapshot(&req)).unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn route(
    table: u32,
    dst: &str,
    metric: u32,
    dev: &str,
    gateway: Option<&str>,
    protocol: u8,
) -> Route {
    Route {
        key: RouteKey {
            table,
            dst: net(dst),
            tos: 0,
            metric,
            dev: Some(dev.to_string()),
            gateway: gateway.map(ip),
        },
        scope: RouteScope::Universe,
        kind: RouteKind::Unicast,
        protocol,
        prefsrc: None,
        onlink: false,
    }
}

fn connected(dst: &str, dev: &str, prefsrc: Option<&str>) -> Route {
    let family = Family::of_net(&net(dst));
    let mut r = route(MAIN_TABLE, dst, 0, dev, None, PROTOCOL_KERNEL);
    if family == Family::Ipv4 {
        r.scope = RouteScope::Link;
        r.prefsrc = prefsrc.map(ip);
    } else {
        r.key.metric = 256;
    }
    r
}

fn rule(
    family: Family,
    priority: u32,
    from: Option<&str>,
    to: Option<&str>,
    table: u32,
    protocol: u8,
) -> Rule {
    Rule {
        key: RuleKey {
            family,
            priority,
            from: from.map(net),
            to: to.map(net),
            iif: None,
            oif: None,
            fwmark: None,
            fwmask: None,
            tos: 0,
            invert: false,
            action: RuleAction::Lookup,
            table,
        },
        protocol,
    }
}

fn by_key<K: Ord + Clone, V: Clone>(items: &[V], key: impl Fn(&V) -> K) -> BTreeMap<K, V> {
    items.iter().map(|v| (key(v), v.clone())).collect()
}

#[test]
fn sysctls_are_read_and_written_in_the_netns_of_the_thread_only() {
    let ns = Netns::new("sys");
    let all = SysctlKey::new("all", SysctlName::RpFilter);
    let default = SysctlKey::new("default", SysctlName::RpFilter);
    let own_netns = || std::fs::read_link("/proc/thread-self/ns/net").unwrap();
    let before = own_netns();
    // Reading the machine's own values is the only thing done to it.
    let machine_all = read_sysctl(&all).unwrap().unwrap();
    let machine_default = read_sysctl(&default).unwrap().unwrap();

    let value = (machine_all + 1) % 3;
    ns.set_sysctl("net.ipv4.conf.all.rp_filter", value);
    let key = all.clone();
    let seen = run_in_netns(&ns.path(), move || read_sysctl(&key)).unwrap();
    assert_eq!(seen, Some(value));

    let written = (machine_default + 2) % 3;
    let key = default.clone();
    run_in_netns(&ns.path(), move || write_sysctl(&key, written)).unwrap();
    assert_eq!(ns.sysctl(&default), written);

    let missing = run_in_netns(&ns.path(), || {
        read_sysctl(&SysctlKey::new("nope0", SysctlName::RpFilter))
    })
    .unwrap();
    assert_eq!(missing, None);
    let err = run_in_netns(&ns.path(), || {
        write_sysctl(&SysctlKey::new("nope0", SysctlName::RpFilter), 1)
    })
    .unwrap_err();
    assert!(
        matches!(&err, Error::Io { what, .. } if what.contains("nope0")),
        "{err:?}"
    );

    assert_eq!(read_sysctl(&all).unwrap(), Some(machine_all));
    assert_eq!(read_sysctl(&default).unwrap(), Some(machine_default));
    assert_eq!(own_netns(), before, "the calling thread changed netns");
}

#[test]
fn live_snapshot_reads_pod_and_host_as_exact_model_objects() {
    let t = topology();
    let state = snapshot_from(&t.host, request(Some(t.pod.path())));
    let pod = state.pod.as_ref().expect("pod netns was read");
    let host = &state.host;

    // Links: kinds, peers across netns, addresses with host bits, MACs.
    let eth0 = &pod.links["eth0"];
    let net1 = &pod.links["net1"];
    assert_eq!(eth0.kind.as_deref(), Some("veth"));
    assert_eq!(net1.kind.as_deref(), Some("macvlan"));
    assert_eq!(pod.links["lo"].kind, None);
    assert_eq!(pod.links["lo"].peer, None);
    let LinkPeer { ifindex, netnsid } = eth0.peer.clone().expect("eth0 has a peer");
    assert_eq!(ifindex, t.host.ifindex("vethpod"));
    assert_eq!(ifindex, host.links["vethpod"].index);
    assert!(netnsid.is_some(), "the peer is in another netns");
    assert_eq!(
        net1.peer.as_ref().map(|p| p.ifindex),
        Some(host.links["vp0"].index)
    );
    assert_eq!(
        eth0.addresses,
        vec![net("10.244.1.2/24"), net("fd00:10:244:1::2/64")]
    );
    assert_eq!(
        net1.addresses,
        vec![net("192.168.50.2/24"), net("fd00:50::2/64")]
    );
    assert_eq!(pod.macs["eth0"], POD_ETH0_MAC.parse::<MacAddr>().unwrap());
    assert_eq!(pod.macs["net1"], POD_NET1_MAC.parse::<MacAddr>().unwrap());
    assert_eq!(
        host.links.keys().collect::<Vec<_>>(),
        ["lo", "vethpod", "vp0", "vp1"]
    );
    assert_eq!(
        host.links["vethpod"].addresses,
        vec![net("10.244.1.1/24"), net("fd00:10:244:1::1/64")]
    );

    // Routes: main (always) and 100 (asked); 4242 does not exist and reads as empty.
    let expected_routes = [
        route(
            MAIN_TABLE,
            "0.0.0.0/0",
            0,
            "eth0",
            Some("10.244.1.1"),
            PROTOCOL_BOOT,
        ),
        route(
            MAIN_TABLE,
            "0.0.0.0/0",
            0,
            "net1",
            Some("192.168.50.254"),
            PROTOCOL_BOOT,
        ),
        route(
            MAIN_TABLE,
            "::/0",
            1024,
            "eth0",
            Some("fd00:10:244:1::1"),
            PROTOCOL_BOOT,
        ),
        route(
            MAIN_TABLE,
            "::/0",
            1024,
            "net1",
            Some("fd00:50::254"),
            PROTOCOL_BOOT,
        ),
        route(
            100,
            "10.240.0.0/12",
            0,
            "eth0",
            Some("10.244.1.1"),
            ROUTER_PROTOCOL,
        ),
        connected("10.244.1.0/24", "eth0", Some("10.244.1.2")),
        connected("192.168.50.0/24", "net1", Some("192.168.50.2")),
        connected("fd00:10:244:1::/64", "eth0", None),
        connected("fd00:50::/64", "net1", None),
    ];
    assert_eq!(pod.routes, by_key(&expected_routes, |r| r.key.clone()));
    assert!(pod.routes.keys().all(|k| k.table != 4242));
    assert_eq!(
        host.routes,
        by_key(
            &[
                connected("10.244.1.0/24", "vethpod", Some("10.244.1.1")),
                connected("fd00:10:244:1::/64", "vethpod", None),
            ],
            |r| r.key.clone()
        )
    );

    // Rules of both families, with their protocol.
    let expected_rules = [
        rule(Family::Ipv4, 0, None, None, 255, PROTOCOL_KERNEL),
        Rule::owned_lookup(Family::Ipv4, 1000, None, Some(net("10.240.0.0/12")), 100),
        rule(Family::Ipv4, 32766, None, None, MAIN_TABLE, PROTOCOL_KERNEL),
        rule(Family::Ipv4, 32767, None, None, 253, PROTOCOL_KERNEL),
        rule(Family::Ipv6, 0, None, None, 255, PROTOCOL_KERNEL),
        rule(
            Family::Ipv6,
            1001,
            Some("fd00:10:244:1::2/128"),
            None,
            100,
            0,
        ),
        rule(Family::Ipv6, 32766, None, None, MAIN_TABLE, PROTOCOL_KERNEL),
    ];
    assert_eq!(pod.rules, by_key(&expected_rules, |r| r.key.clone()));

    // Permanent neighbours only, with their protocol.
    let neighbour = Neighbour {
        key: NeighbourKey {
            dev: "eth0".into(),
            addr: ip("10.244.1.1"),
        },
        lladdr: Some(GW_MAC.parse().unwrap()),
        protocol: ROUTER_PROTOCOL,
    };
    assert_eq!(pod.neighbours, by_key(&[neighbour], |n| n.key.clone()));
    assert!(host.neighbours.is_empty());

    // Sysctls: every existing one asked for, with the values `sysctl` shows.
    let pod_keys: Vec<SysctlKey> = ["all", "default", "eth0", "net1"]
        .iter()
        .flat_map(|i| {
            [
                SysctlKey::new(i, SysctlName::RpFilter),
                SysctlKey::new(i, SysctlName::DisableIpv6),
            ]
        })
        .collect();
    let expected: BTreeMap<_, _> = pod_keys
        .iter()
        .map(|k| (k.clone(), t.pod.sysctl(k)))
        .collect();
    assert_eq!(pod.sysctls, expected);
    assert_eq!(
        pod.sysctls[&SysctlKey::new("eth0", SysctlName::RpFilter)],
        2
    );
    assert_eq!(
        pod.sysctls[&SysctlKey::new("net1", SysctlName::RpFilter)],
        1
    );
    let host_keys = ["all", "default", "vethpod"].map(|i| SysctlKey::new(i, SysctlName::RpFilter));
    let expected: BTreeMap<_, _> = host_keys
        .iter()
        .map(|k| (k.clone(), t.host.sysctl(k)))
        .collect();
    assert_eq!(host.sysctls, expected);
    assert_eq!(
        host.sysctls[&SysctlKey::new("vethpod", SysctlName::RpFilter)],
        1
    );

    // Preferred sources of the host toward the pod; none toward the unreachable address.
    assert_eq!(
        state.host_preferred_src,
        BTreeMap::from([
            (ip("10.244.1.2"), ip("10.244.1.1")),
            (ip("fd00:10:244:1::2"), ip("fd00:10:244:1::1")),
        ])
    );

    // A second read gives the same state.
    let again = snapshot_from(&t.host, request(Some(t.pod.path())));
    assert_eq!(again, state);
}

#[test]
fn a_missing_or_stale_pod_netns_reads_as_no_pod() {
    let host = Netns::new("host");
    let gone = Path::new("/run/netns").join(unique("gone"));
    let state = snapshot_from(&host, request(Some(gone)));
    assert_eq!(state.pod, None);
    assert!(state.host.links.contains_key("lo"));

    // What a runtime leaves behind after unmounting a netns: a plain file.
    let stale = TempFile::new("");
    let state = snapshot_from(&host, request(Some(stale.0.clone())));
    assert_eq!(state.pod, None);

    let state = snapshot_from(&host, request(None));
    assert_eq!(state.pod, None);
}

#[test]
fn a_live_snapshot_round_trips_through_file_snapshot() {
    let t = topology();
    let state = snapshot_from(&t.host, request(Some(t.pod.path())));
    let file = TempFile::new(&serde_json::to_string_pretty(&state).unwrap());
    let read = FileSnapshot {
        path: file.0.clone(),
    }
    .snapshot(&SnapshotRequest::default())
    .unwrap();
    assert_eq!(read, state);

    let bad = TempFile::new("{\"host\": [");
    let err = FileSnapshot {
        path: bad.0.clone(),
    }
    .snapshot(&SnapshotRequest::default())
    .unwrap_err();
    let shown = bad.0.display().to_string();
    assert!(
        matches!(&err, Error::Decode { what, .. } if what.contains(&shown)),
        "{err:?}"
    );

    let missing = FileSnapshot {
        path: std::env::temp_dir().join(unique("missing")),
    };
    let err = missing.snapshot(&SnapshotRequest::default()).unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err:?}");
}
