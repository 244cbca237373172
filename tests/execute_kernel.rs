//! The live executor on a real kernel (run as root). Each test builds its own pod and
//! "host" namespaces (removed on drop) and calls the executor from a thread inside that
//! host netns: host ops land there, never in the machine's own netns. What every op does is
//! read back with LiveSnapshot and compared with the model kernel (ModelKernel), which is
//! the reference semantics of every op. These tests fail (never skip) when namespaces
//! cannot be made.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;
use router::error::Error;
use router::execute::{Answers, AppliedAll, Executor, Failed, LiveExecutor};
use router::model::{
    ActualState, Change, Family, MacAddr, Neighbour, Op, Route, RouteScope, Rule, Side, SysctlKey,
    SysctlName, MAIN_TABLE, PROTOCOL_BOOT, ROUTER_PROTOCOL,
};
use router::netns::{read_sysctl, run_in_netns};
use router::snapshot::{LiveSnapshot, SnapshotRequest, SnapshotSource};
use router::testkit::ModelKernel;

const POD_TABLE: u32 = 100;
const HOST_TABLE: u32 = 500;
const NEW_MAC: &str = "0a:0b:c0:a8:32:02";

// ---- running the executor ---------------------------------------------------------------

/// What every test reads: pod main and T, host table 500 and H's rp_filter.
fn request(t: &Topology) -> SnapshotRequest {
    SnapshotRequest {
        pod_netns: Some(t.pod.path()),
        pod_tables: BTreeSet::from([MAIN_TABLE, POD_TABLE]),
        host_tables: BTreeSet::from([HOST_TABLE]),
        host_sysctl_ifaces: BTreeSet::from(["vethpod".to_string()]),
        preferred_src_for: Vec::new(),
        links_only: false,
        every_table: false,
        ..SnapshotRequest::default()
    }
}

fn snapshot(t: &Topology) -> ActualState {
    snapshot_from(&t.host, request(t))
}

/// Runs `f` with an executor for `pod` on a thread inside the test's host netns.
fn with_executor<T: Send + 'static>(
    host: &Netns,
    pod: Option<PathBuf>,
    f: impl FnOnce(&LiveExecutor) -> T + Send + 'static,
) -> T {
    let executor = LiveExecutor::new(pod);
    run_in_netns(&host.path(), move || Ok(f(&executor))).unwrap()
}

/// Applies `ops` live, planned from no read: the executor reads the links its ops name.
/// How the kernel answered is `apply_answered`'s.
fn apply(t: &Topology, ops: &[Op]) -> Result<(), Failed> {
    apply_answered(t, ops, &ActualState::default()).map(|_answers| ())
}

fn apply_answered(t: &Topology, ops: &[Op], planned_from: &ActualState) -> Result<Answers, Failed> {
    let (ops, planned_from) = (ops.to_vec(), planned_from.clone());
    with_executor(&t.host, Some(t.pod.path()), move |e| {
        e.apply(&ops, &planned_from)
    })
}

fn apply_all(t: &Topology, ops: &[Op]) -> AppliedAll {
    let ops = ops.to_vec();
    with_executor(&t.host, Some(t.pod.path()), move |e| {
        e.apply_all(&ops, &ActualState::default())
    })
}

/// The reconciled objects of both netns must be equal (links are facts, not compared).
fn assert_same_objects(actual: &ActualState, expected: &ActualState) {
    for side in [Side::Pod, Side::Host] {
        let a = actual.side(side).expect("netns was read");
        let e = expected.side(side).expect("netns was read");
        assert_eq!(a.routes, e.routes, "{side} routes");
        assert_eq!(a.rules, e.rules, "{side} rules");
        assert_eq!(a.neighbours, e.neighbours, "{side} neighbours");
        assert_eq!(a.sysctls, e.sysctls, "{side} sysctls");
        assert_eq!(a.macs, e.macs, "{side} macs");
    }
}

/// Applies `ops` live (their devices named by the snapshot taken before), and to the model
/// kernel from that snapshot: both must end with the same objects. Returns the live state
/// after.
fn apply_like_the_model(t: &Topology, ops: &[Op]) -> ActualState {
    let before = snapshot(t);
    let _answers = apply_answered(t, ops, &before).unwrap_or_else(|f| panic!("{f:?}"));
    let after = snapshot(t);
    let model = ModelKernel::new(before.clone());
    assert_eq!(model.apply(ops, &before), Ok(Answers::AsPlanned));
    assert_same_objects(&after, &model.state());
    after
}

// ---- objects and ops --------------------------------------------------------------------

fn owned(table: u32, dst: &str, dev: &str, gateway: Option<&str>) -> Route {
    let mut r = route(table, dst, 0, dev, gateway, ROUTER_PROTOCOL);
    if gateway.is_none() && Family::of_net(&net(dst)) == Family::Ipv4 {
        r.scope = RouteScope::Link;
    }
    r.normalised()
}

/// The defaults the topology puts in the pod's main table (`ip route add/append`).
fn main_default(family: Family, dev: &str) -> Route {
    let (dst, gateway) = match (family, dev) {
        (Family::Ipv4, "eth0") => ("0.0.0.0/0", "10.244.1.1"),
        (Family::Ipv4, _) => ("0.0.0.0/0", "192.168.50.254"),
        (Family::Ipv6, "eth0") => ("::/0", "fd00:10:244:1::1"),
        (Family::Ipv6, _) => ("::/0", "fd00:50::254"),
    };
    route(MAIN_TABLE, dst, 0, dev, Some(gateway), PROTOCOL_BOOT).normalised()
}

fn owned_default(family: Family, dev: &str) -> Route {
    let mut r = main_default(family, dev);
    r.protocol = ROUTER_PROTOCOL;
    r
}

/// The route, rule and neighbour the topology puts in the pod with protocol 176 / none.
fn topology_route() -> Route {
    owned(POD_TABLE, "10.240.0.0/12", "eth0", Some("10.244.1.1"))
}

fn topology_rules() -> [Rule; 2] {
    [
        Rule::owned_lookup(
            Family::Ipv4,
            1000,
            None,
            Some(net("10.240.0.0/12")),
            POD_TABLE,
        ),
        rule(
            Family::Ipv6,
            1001,
            Some("fd00:10:244:1::2/128"),
            None,
            POD_TABLE,
            0,
        ),
    ]
}

/// An owned permanent neighbour.
fn owned_neighbour(dev: &str, addr: &str, lladdr: &str) -> Neighbour {
    neighbour(dev, addr, lladdr, ROUTER_PROTOCOL)
}

fn topology_neighbour() -> Neighbour {
    owned_neighbour("eth0", "10.244.1.1", GW_MAC)
}

fn add_route(netns: Side, route: Route) -> Op {
    Op::new(netns, Change::AddRoute { route })
}

fn del_route(netns: Side, route: Route) -> Op {
    Op::new(netns, Change::DelRoute { route })
}

fn replace_route(old: Vec<Route>, new: Route) -> Op {
    Op::new(Side::Pod, Change::ReplaceRoute { old, new })
}

fn add_rule(netns: Side, rule: Rule) -> Op {
    Op::new(netns, Change::AddRule { rule })
}

fn del_rule(netns: Side, rule: Rule) -> Op {
    Op::new(netns, Change::DelRule { rule })
}

fn add_neighbour(netns: Side, neighbour: Neighbour) -> Op {
    Op::new(netns, Change::AddNeighbour { neighbour })
}

fn del_neighbour(netns: Side, neighbour: Neighbour) -> Op {
    Op::new(netns, Change::DelNeighbour { neighbour })
}

fn set_sysctl(netns: Side, key: &SysctlKey, old: Option<i64>, new: i64) -> Op {
    Op::new(
        netns,
        Change::SetSysctl {
            key: key.clone(),
            old,
            new,
        },
    )
}

fn set_mac(netns: Side, dev: &str, new: &str) -> Op {
    Op::new(
        netns,
        Change::SetMac {
            dev: dev.to_string(),
            old: None,
            new: new.parse().unwrap(),
        },
    )
}

fn rp_filter(iface: &str) -> SysctlKey {
    SysctlKey::new(iface, SysctlName::RpFilter)
}

fn main_defaults(state: &ActualState, family: Family) -> Vec<Route> {
    state
        .pod
        .as_ref()
        .unwrap()
        .main_defaults(family)
        .cloned()
        .collect()
}

fn pod(state: &ActualState) -> &router::model::NetnsState {
    state.pod.as_ref().expect("pod netns was read")
}

// ---- each op kind -----------------------------------------------------------------------

#[test]
fn route_ops_read_back_as_exactly_their_routes() {
    let t = topology();
    let v4_link = owned(POD_TABLE, "10.244.1.1/32", "eth0", None);
    let v4_default = owned(POD_TABLE, "0.0.0.0/0", "eth0", Some("10.244.1.1"));
    let v6_link = owned(POD_TABLE, "fd00:10:244:1::1/128", "eth0", None);
    let v6_default = owned(POD_TABLE, "::/0", "eth0", Some("fd00:10:244:1::1"));
    let mut host_route = owned(HOST_TABLE, "192.168.50.2/32", "vethpod", None);
    host_route.prefsrc = Some(ip("10.244.1.1"));
    let mut onlink = owned(POD_TABLE, "10.99.0.0/16", "net1", Some("10.99.255.1"));
    onlink.onlink = true;
    let adds = [
        add_route(Side::Pod, v4_link.clone()),
        add_route(Side::Pod, v4_default.clone()),
        add_route(Side::Pod, v6_link.clone()),
        add_route(Side::Pod, v6_default.clone()),
        add_route(Side::Pod, onlink.clone()),
        add_route(Side::Host, host_route.clone()),
    ];
    let after = apply_like_the_model(&t, &adds);
    for route in [&v4_link, &v4_default, &v6_link, &v6_default, &onlink] {
        assert_eq!(pod(&after).routes.get(&route.key), Some(route));
    }
    assert_eq!(
        after.host.routes.values().collect::<Vec<_>>(),
        vec![&host_route]
    );

    let dels = [
        del_route(Side::Pod, topology_route()),
        del_route(Side::Pod, v6_default.clone()),
        del_route(Side::Host, host_route.clone()),
    ];
    let after = apply_like_the_model(&t, &dels);
    assert!(!pod(&after).routes.contains_key(&topology_route().key));
    assert!(!pod(&after).routes.contains_key(&v6_default.key));
    assert!(after.host.routes.is_empty());
}

#[test]
fn rule_ops_read_back_as_exactly_their_rules() {
    let t = topology();
    let from_net1 = Rule::owned_lookup(
        Family::Ipv4,
        1000,
        Some(net("192.168.50.2/32")),
        None,
        POD_TABLE,
    );
    let v6_to = Rule::owned_lookup(
        Family::Ipv6,
        1000,
        None,
        Some(net("fd00:96::/112")),
        POD_TABLE,
    );
    let mut selective = Rule::owned_lookup(Family::Ipv4, 1002, None, None, 4000);
    selective.key.iif = Some("eth0".into());
    selective.key.fwmark = Some(0x10);
    selective.key.fwmask = Some(0xff);
    selective.key.invert = true;
    let host_v4 = Rule::owned_lookup(Family::Ipv4, 1000, None, None, HOST_TABLE);
    let host_v6 = Rule::owned_lookup(Family::Ipv6, 1000, None, None, HOST_TABLE);
    let adds = [
        add_rule(Side::Pod, from_net1.clone()),
        add_rule(Side::Pod, v6_to.clone()),
        add_rule(Side::Pod, selective.clone()),
        add_rule(Side::Host, host_v4.clone()),
        add_rule(Side::Host, host_v6.clone()),
    ];
    let after = apply_like_the_model(&t, &adds);
    for rule in [&from_net1, &v6_to, &selective] {
        assert_eq!(pod(&after).rules.get(&rule.key), Some(rule));
    }
    for rule in [&host_v4, &host_v6] {
        assert_eq!(after.host.rules.get(&rule.key), Some(rule));
    }

    let [v4_rule, v6_rule] = topology_rules();
    let dels = [
        del_rule(Side::Pod, v4_rule.clone()),
        del_rule(Side::Pod, v6_rule.clone()),
        del_rule(Side::Pod, selective.clone()),
        del_rule(Side::Host, host_v6.clone()),
    ];
    let after = apply_like_the_model(&t, &dels);
    for rule in [&v4_rule, &v6_rule, &selective] {
        assert!(!pod(&after).rules.contains_key(&rule.key), "{rule:?}");
    }
    assert!(!after.host.rules.contains_key(&host_v6.key));
    assert!(after.host.rules.contains_key(&host_v4.key));
}

#[test]
fn neighbour_ops_read_back_as_exactly_their_entries() {
    let t = topology();
    let v6 = owned_neighbour("eth0", "fd00:10:244:1::1", GW_MAC);
    let host = owned_neighbour("vethpod", "192.168.50.2", POD_ETH0_MAC);
    let stale = topology_neighbour();
    let fresh = owned_neighbour("eth0", "10.244.1.1", "02:00:00:00:01:99");
    let ops = [
        add_neighbour(Side::Pod, v6.clone()),
        Op::new(
            Side::Pod,
            Change::ReplaceNeighbour {
                old: stale,
                new: fresh.clone(),
            },
        ),
        add_neighbour(Side::Host, host.clone()),
    ];
    let after = apply_like_the_model(&t, &ops);
    assert_eq!(
        pod(&after).neighbours.values().collect::<Vec<_>>(),
        vec![&fresh, &v6]
    );
    assert_eq!(
        after.host.neighbours.values().collect::<Vec<_>>(),
        vec![&host]
    );

    let after = apply_like_the_model(
        &t,
        &[
            del_neighbour(Side::Pod, v6),
            del_neighbour(Side::Host, host),
        ],
    );
    assert_eq!(
        pod(&after).neighbours.values().collect::<Vec<_>>(),
        vec![&fresh]
    );
    assert!(after.host.neighbours.is_empty());
}

#[test]
fn a_permanent_neighbour_overrides_a_dynamic_entry() {
    let t = topology();
    t.pod
        .ip("neigh add 10.244.1.5 lladdr 02:00:00:00:05:05 dev eth0 nud reachable");
    let wanted = owned_neighbour("eth0", "10.244.1.5", "02:00:00:00:05:06");
    let after = apply_like_the_model(&t, &[add_neighbour(Side::Pod, wanted.clone())]);
    assert_eq!(pod(&after).neighbours.get(&wanted.key), Some(&wanted));
}

#[test]
fn a_pod_sysctl_changes_the_pod_only() {
    let t = topology();
    let all = rp_filter("all");
    let machine_all = read_sysctl(&all).unwrap().unwrap();
    let host_all = t.host.sysctl(&all);
    let pod_all = t.pod.sysctl(&all);
    let new = (pod_all + 1) % 3;
    let ops = [
        set_sysctl(Side::Pod, &all, Some(pod_all), new),
        set_sysctl(Side::Pod, &rp_filter("eth0"), Some(2), 0),
    ];
    let after = apply_like_the_model(&t, &ops);
    assert_eq!(t.pod.sysctl(&all), new);
    assert_eq!(t.pod.sysctl(&rp_filter("eth0")), 0);
    assert_eq!(pod(&after).sysctls[&all], new);
    assert_eq!(t.host.sysctl(&all), host_all);
    assert_eq!(t.host.sysctl(&rp_filter("vethpod")), 1);
    assert_eq!(read_sysctl(&all).unwrap(), Some(machine_all));

    // A host op writes the test's host netns, not the machine's.
    let after = apply_like_the_model(
        &t,
        &[set_sysctl(Side::Host, &rp_filter("vethpod"), Some(1), 2)],
    );
    assert_eq!(t.host.sysctl(&rp_filter("vethpod")), 2);
    assert_eq!(after.host.sysctls[&rp_filter("vethpod")], 2);
    assert_eq!(read_sysctl(&all).unwrap(), Some(machine_all));
}

#[test]
fn a_links_ipv4_sysctls_set_over_netlink_read_back_as_their_files_show_zero_included() {
    let t = topology();
    let arp_notify = SysctlKey::new("net1", SysctlName::ArpNotify);
    let ndisc_notify = SysctlKey::new("net1", SysctlName::NdiscNotify);
    let rp = rp_filter("net1");
    let (rp_was, arp_was) = (t.pod.sysctl(&rp), t.pod.sysctl(&arp_notify));
    // Link IPv4 sysctls go as link requests; IPv6's only a file sets.
    let after = apply_like_the_model(
        &t,
        &[
            set_sysctl(Side::Pod, &rp, Some(rp_was), 2),
            set_sysctl(Side::Pod, &arp_notify, Some(arp_was), 1),
            set_sysctl(
                Side::Pod,
                &ndisc_notify,
                Some(t.pod.sysctl(&ndisc_notify)),
                1,
            ),
        ],
    );
    assert_eq!((t.pod.sysctl(&rp), t.pod.sysctl(&arp_notify)), (2, 1));
    assert_eq!(t.pod.sysctl(&ndisc_notify), 1);
    assert_eq!(pod(&after).sysctls[&arp_notify], 1);
    // Back to 0: the value a request type that leaves out zeros could not send.
    apply_like_the_model(
        &t,
        &[
            set_sysctl(Side::Pod, &rp, Some(2), 0),
            set_sysctl(Side::Pod, &arp_notify, Some(1), 0),
        ],
    );
    assert_eq!((t.pod.sysctl(&rp), t.pod.sysctl(&arp_notify)), (0, 0));
    // Only that one entry of the link's devconf moved.
    assert_eq!(t.pod.sysctl(&rp_filter("eth0")), 2);
}

#[test]
fn set_mac_changes_the_macvlan_and_the_veth() {
    let t = topology();
    let after = apply_like_the_model(
        &t,
        &[
            set_mac(Side::Pod, "net1", NEW_MAC),
            set_mac(Side::Host, "vp1", "02:00:00:00:aa:01"),
        ],
    );
    let mac = |s: &str| s.parse::<MacAddr>().unwrap();
    assert_eq!(pod(&after).macs["net1"], mac(NEW_MAC));
    assert_eq!(after.host.macs["vp1"], mac("02:00:00:00:aa:01"));
}

/// A kernel fact the model kernel does not know: changing a device's MAC flushes every
/// neighbour entry on that device, permanent ones included (neigh_changeaddr).
#[test]
fn a_mac_change_flushes_the_permanent_neighbours_of_its_device() {
    let t = topology();
    t.pod
        .ip("neigh add 192.168.50.9 lladdr 02:00:00:00:09:09 dev net1 nud permanent proto 176");
    apply(&t, &[set_mac(Side::Pod, "eth0", "0a:58:0a:f4:01:99")]).unwrap();
    let after = snapshot(&t);
    assert_eq!(
        pod(&after).macs["eth0"],
        "0a:58:0a:f4:01:99".parse::<MacAddr>().unwrap()
    );
    // eth0's permanent neighbour is gone; net1's stays.
    assert_eq!(
        pod(&after)
            .neighbours
            .keys()
            .map(|k| k.dev.as_str())
            .collect::<Vec<_>>(),
        vec!["net1"]
    );
}

// ---- replace and multipath semantics ----------------------------------------------------

#[test]
fn ipv4_replace_leaves_exactly_the_new_default_in_main() {
    let t = topology();
    let before = snapshot(&t);
    assert_eq!(
        main_defaults(&before, Family::Ipv4),
        vec![
            main_default(Family::Ipv4, "eth0"),
            main_default(Family::Ipv4, "net1")
        ]
    );
    let new = owned_default(Family::Ipv4, "eth0");
    let old = main_defaults(&before, Family::Ipv4);
    let after = apply_like_the_model(&t, &[replace_route(old.clone(), new.clone())]);
    assert_eq!(main_defaults(&after, Family::Ipv4), vec![new]);

    // net1's in place of both: the replace takes eth0's (the first alias), and net1's
    // `proto boot` route, with the same key as the new one, goes by its protocol.
    let t = topology();
    let new = owned_default(Family::Ipv4, "net1");
    let after = apply_like_the_model(&t, &[replace_route(old, new.clone())]);
    assert_eq!(main_defaults(&after, Family::Ipv4), vec![new]);
}

#[test]
fn ipv4_replace_puts_p_default_in_place_of_c_default() {
    // DEL's restore: main holds only C's default; P's takes its place in one step.
    let t = topology();
    apply(
        &t,
        &[del_route(Side::Pod, main_default(Family::Ipv4, "eth0"))],
    )
    .unwrap();
    let new = owned_default(Family::Ipv4, "eth0");
    let op = replace_route(vec![main_default(Family::Ipv4, "net1")], new.clone());
    let after = apply_like_the_model(&t, &[op]);
    assert_eq!(main_defaults(&after, Family::Ipv4), vec![new]);
}

/// DEL's restore needs no re-read: a replace the kernel ACKed, whose slot held only the
/// routes it displaces (as the read before it says), is answered as planned. It is a
/// surprise when the slot also held a route the plan keeps (the IPv4 replace may have
/// taken that one).
#[test]
fn an_acked_replace_of_what_the_slot_held_is_as_planned_and_any_other_is_a_surprise() {
    let t = topology();
    apply(
        &t,
        &[del_route(Side::Pod, main_default(Family::Ipv4, "eth0"))],
    )
    .unwrap();
    let before = snapshot(&t);
    let restore = replace_route(
        vec![main_default(Family::Ipv4, "net1")],
        owned_default(Family::Ipv4, "eth0"),
    );
    assert_eq!(
        apply_answered(&t, &[restore], &before),
        Ok(Answers::AsPlanned)
    );

    // The slot also held eth0's default, which the replace does not list as displaced.
    let t = topology();
    let before = snapshot(&t);
    let beside_a_kept_one = replace_route(
        vec![main_default(Family::Ipv4, "net1")],
        owned_default(Family::Ipv4, "net1"),
    );
    assert_eq!(
        apply_answered(&t, &[beside_a_kept_one], &before),
        Ok(Answers::Surprising)
    );
}

#[test]
fn ipv6_replace_of_the_multipath_default_leaves_exactly_the_new_hop() {
    let t = topology();
    let before = snapshot(&t);
    let old = main_defaults(&before, Family::Ipv6);
    assert_eq!(
        old,
        vec![
            main_default(Family::Ipv6, "eth0"),
            main_default(Family::Ipv6, "net1")
        ]
    );
    let new = owned_default(Family::Ipv6, "eth0");
    let after = apply_like_the_model(&t, &[replace_route(old, new.clone())]);
    assert_eq!(main_defaults(&after, Family::Ipv6), vec![new]);
}

#[test]
fn deleting_one_ipv6_hop_keeps_the_other() {
    let t = topology();
    let after = apply_like_the_model(
        &t,
        &[del_route(Side::Pod, main_default(Family::Ipv6, "net1"))],
    );
    assert_eq!(
        main_defaults(&after, Family::Ipv6),
        vec![main_default(Family::Ipv6, "eth0")]
    );
    // And appending it again makes it a hop again.
    let after = apply_like_the_model(
        &t,
        &[add_route(Side::Pod, main_default(Family::Ipv6, "net1"))],
    );
    assert_eq!(main_defaults(&after, Family::Ipv6).len(), 2);
}

#[test]
fn a_delete_names_the_protocol_so_another_owners_route_stays() {
    let t = topology();
    let mut theirs = main_default(Family::Ipv4, "eth0");
    theirs.protocol = ROUTER_PROTOCOL; // same key, but the kernel's route is `proto boot`
    apply(&t, &[del_route(Side::Pod, theirs)]).unwrap();
    let after = snapshot(&t);
    assert_eq!(main_defaults(&after, Family::Ipv4).len(), 2);
}

/// A kernel fact the model cannot show: a hop added to a multipath route joins the group,
/// and the group is dumped with the protocol of its first hop.
#[test]
fn an_ipv6_hop_joining_a_group_reads_back_with_the_groups_protocol() {
    let t = topology();
    let hop = owned(MAIN_TABLE, "::/0", "eth0", Some("fd00:10:244:1::9"));
    apply(&t, &[add_route(Side::Pod, hop.clone())]).unwrap();
    let after = snapshot(&t);
    let read = &pod(&after).routes[&hop.key];
    assert_eq!(read.protocol, PROTOCOL_BOOT);
    // The kernel keeps the hop's own protocol: a delete naming 176 removes it.
    apply(&t, &[del_route(Side::Pod, hop.clone())]).unwrap();
    assert!(!pod(&snapshot(&t)).routes.contains_key(&hop.key));
}

/// A kernel fact the snapshot cannot show: a rule or an IPv4 route that differs from an
/// existing one only by protocol is not EEXIST but a second object with the same key.
#[test]
fn the_kernel_holds_twins_that_differ_only_by_protocol() {
    let t = topology();
    let [_, v6_rule] = topology_rules();
    let mut twin_rule = v6_rule.clone();
    twin_rule.protocol = ROUTER_PROTOCOL;
    let mut twin_route = main_default(Family::Ipv4, "eth0");
    twin_route.protocol = ROUTER_PROTOCOL;
    apply(
        &t,
        &[
            add_rule(Side::Pod, twin_rule),
            add_route(Side::Pod, twin_route),
        ],
    )
    .unwrap();
    let lines = |out: String| {
        out.lines()
            .filter(|l| !l.starts_with(char::is_whitespace))
            .count()
    };
    assert_eq!(
        lines(t.pod.exec(&["ip", "-6", "rule", "show", "pref", "1001"])),
        2
    );
    assert_eq!(
        lines(
            t.pod
                .exec(&["ip", "route", "show", "default", "dev", "eth0"])
        ),
        2
    );
    // The snapshot, keyed by identity, holds one of each: 3 defaults in the kernel, 2 read.
    let after = snapshot(&t);
    assert_eq!(main_defaults(&after, Family::Ipv4).len(), 2);
}

// ---- idempotence and failures -----------------------------------------------------------

#[test]
fn applying_twice_and_deleting_what_is_gone_succeed_and_the_repeat_is_answered_as_a_surprise() {
    let t = topology();
    let adds = [
        add_route(Side::Pod, owned(POD_TABLE, "10.244.1.1/32", "eth0", None)),
        add_route(
            Side::Pod,
            owned(POD_TABLE, "fd00:10:244:1::1/128", "eth0", None),
        ),
        add_route(
            Side::Host,
            owned(HOST_TABLE, "192.168.50.2/32", "vethpod", None),
        ),
        add_rule(
            Side::Pod,
            Rule::owned_lookup(Family::Ipv4, 1000, Some(net("192.168.50.2/32")), None, 100),
        ),
        add_rule(
            Side::Host,
            Rule::owned_lookup(Family::Ipv6, 1000, None, None, HOST_TABLE),
        ),
        add_neighbour(
            Side::Pod,
            owned_neighbour("eth0", "fd00:10:244:1::1", GW_MAC),
        ),
    ];
    let nothing = ActualState::default();
    assert_eq!(apply_answered(&t, &adds, &nothing), Ok(Answers::AsPlanned));
    let once = snapshot(&t);
    // Every add found its object there already (EEXIST): "already so" is a surprise.
    assert_eq!(apply_answered(&t, &adds, &nothing), Ok(Answers::Surprising));
    assert_eq!(snapshot(&t), once);

    let [v4_rule, v6_rule] = topology_rules();
    let dels = [
        del_route(Side::Pod, topology_route()),
        del_rule(Side::Pod, v4_rule),
        del_rule(Side::Pod, v6_rule),
        del_neighbour(Side::Pod, topology_neighbour()),
        del_route(
            Side::Host,
            owned(HOST_TABLE, "10.9.9.9/32", "vethpod", None),
        ),
        // Through a device that does not exist: gone with it.
        del_route(Side::Pod, owned(POD_TABLE, "10.9.9.9/32", "gone0", None)),
        del_neighbour(Side::Pod, owned_neighbour("gone0", "10.9.9.9", GW_MAC)),
    ];
    apply(&t, &dels).unwrap();
    let once = snapshot(&t);
    assert_eq!(apply_answered(&t, &dels, &nothing), Ok(Answers::Surprising));
    assert_eq!(snapshot(&t), once);
}

#[test]
fn a_route_through_a_missing_device_fails_with_its_index_and_command() {
    let t = topology();
    let rule = Rule::owned_lookup(Family::Ipv4, 1000, Some(net("192.168.50.2/32")), None, 100);
    let bad = add_route(Side::Pod, owned(POD_TABLE, "10.9.0.0/16", "nope0", None));
    let after_bad = add_rule(
        Side::Pod,
        Rule::owned_lookup(Family::Ipv6, 1000, None, None, 100),
    );
    let ops = [
        set_sysctl(Side::Host, &rp_filter("vethpod"), Some(1), 2),
        add_rule(Side::Pod, rule.clone()),
        bad.clone(),
        after_bad,
    ];
    let failed = apply(&t, &ops).unwrap_err();
    assert_eq!(failed.index, 2);
    let Error::Kernel { object, reason } = &failed.error else {
        panic!("{failed:?}")
    };
    assert_eq!(object, &bad.to_string());
    assert!(reason.contains("nope0"), "{reason}");
    // The ops before it applied, none after it.
    let after = snapshot(&t);
    assert!(pod(&after).rules.contains_key(&rule.key));
    assert!(!pod(&after)
        .rules
        .keys()
        .any(|k| k.family == Family::Ipv6 && k.priority == 1000));
    assert_eq!(t.host.sysctl(&rp_filter("vethpod")), 2);
}

#[test]
fn a_kernel_refusal_in_a_batch_stops_there_and_undoes_the_later_ones() {
    let t = topology();
    let first = owned(POD_TABLE, "10.1.0.0/16", "eth0", Some("10.244.1.1"));
    // A gateway the pod cannot reach: the kernel refuses it.
    let refused = owned(POD_TABLE, "10.2.0.0/16", "eth0", Some("10.99.0.1"));
    let later = owned(POD_TABLE, "10.3.0.0/16", "eth0", Some("10.244.1.1"));
    let existing = topology_route();
    let ops = [
        add_route(Side::Pod, first.clone()),
        add_route(Side::Pod, refused.clone()),
        // Already there (EEXIST): not undone, it was not this batch's doing.
        add_route(Side::Pod, existing.clone()),
        add_route(Side::Pod, later.clone()),
    ];
    let failed = apply(&t, &ops).unwrap_err();
    assert_eq!(failed.index, 1);
    let Error::Kernel { object, reason } = &failed.error else {
        panic!("{failed:?}")
    };
    assert_eq!(object, &ops[1].to_string());
    assert!(reason.contains("os error"), "{reason}");
    let after = snapshot(&t);
    let routes = &pod(&after).routes;
    assert!(routes.contains_key(&first.key));
    assert!(routes.contains_key(&existing.key));
    assert!(!routes.contains_key(&refused.key));
    assert!(
        !routes.contains_key(&later.key),
        "applied after the failure"
    );

    // apply_all goes on past it.
    let failures = apply_all(&t, &ops).failures;
    assert_eq!(
        failures.iter().map(|f| f.index).collect::<Vec<_>>(),
        vec![1]
    );
    assert!(pod(&snapshot(&t)).routes.contains_key(&later.key));
}

#[test]
fn a_pod_netns_that_is_gone_or_not_given_is_an_io_error_at_the_first_pod_op() {
    let host = Netns::new("host");
    let gone = Path::new("/run/netns").join(unique("gone"));
    let host_rule = Rule::owned_lookup(Family::Ipv4, 1000, None, None, HOST_TABLE);
    let ops = vec![
        add_rule(Side::Host, host_rule.clone()),
        add_rule(Side::Pod, host_rule.clone()),
        add_rule(Side::Host, host_rule.clone()),
    ];
    let for_gone = ops.clone();
    let failed = with_executor(&host, Some(gone.clone()), move |e| {
        e.apply(&for_gone, &ActualState::default())
    })
    .unwrap_err();
    assert_eq!(failed.index, 1);
    let shown = gone.display().to_string();
    assert!(
        matches!(&failed.error, Error::Io { what, .. } if what.contains(&shown)),
        "{failed:?}"
    );

    let failed =
        with_executor(&host, None, move |e| e.apply(&ops, &ActualState::default())).unwrap_err();
    assert_eq!(failed.index, 1);
    assert!(matches!(failed.error, Error::Io { .. }), "{failed:?}");
}

// ---- the property ------------------------------------------------------------------------

/// Every kind of op, on both sides, interleaved: the kernel ends where the model kernel
/// says it does.
#[test]
fn applying_ops_of_every_kind_ends_where_the_model_kernel_does() {
    let t = topology();
    t.pod
        .ip("neigh add 10.244.1.9 lladdr 02:00:00:00:09:09 dev eth0 nud permanent proto 176");
    let before = snapshot(&t);
    let [v4_rule, v6_rule] = topology_rules();
    let ops = vec![
        set_sysctl(Side::Pod, &rp_filter("eth0"), Some(2), 0),
        set_sysctl(Side::Pod, &rp_filter("net1"), Some(1), 2),
        set_mac(Side::Pod, "net1", NEW_MAC),
        add_route(Side::Pod, owned(POD_TABLE, "10.244.1.1/32", "eth0", None)),
        add_route(
            Side::Pod,
            owned(POD_TABLE, "fd00:10:244:1::1/128", "eth0", None),
        ),
        add_route(
            Side::Pod,
            owned(POD_TABLE, "0.0.0.0/0", "eth0", Some("10.244.1.1")),
        ),
        add_route(
            Side::Pod,
            owned(POD_TABLE, "::/0", "eth0", Some("fd00:10:244:1::1")),
        ),
        replace_route(
            main_defaults(&before, Family::Ipv4),
            owned_default(Family::Ipv4, "net1"),
        ),
        del_route(Side::Pod, main_default(Family::Ipv6, "eth0")),
        set_sysctl(Side::Host, &rp_filter("vethpod"), Some(1), 2),
        set_mac(Side::Host, "vp1", "02:00:00:00:aa:01"),
        add_route(
            Side::Host,
            owned(HOST_TABLE, "192.168.50.2/32", "vethpod", None),
        ),
        add_route(
            Side::Host,
            owned(HOST_TABLE, "fd00:50::2/128", "vethpod", None),
        ),
        add_neighbour(
            Side::Host,
            owned_neighbour("vethpod", "192.168.50.2", POD_ETH0_MAC),
        ),
        add_rule(
            Side::Host,
            Rule::owned_lookup(Family::Ipv4, 1000, None, None, HOST_TABLE),
        ),
        add_neighbour(
            Side::Pod,
            owned_neighbour("eth0", "fd00:10:244:1::1", GW_MAC),
        ),
        Op::new(
            Side::Pod,
            Change::ReplaceNeighbour {
                old: topology_neighbour(),
                new: owned_neighbour("eth0", "10.244.1.1", "02:00:00:00:01:99"),
            },
        ),
        del_neighbour(
            Side::Pod,
            owned_neighbour("eth0", "10.244.1.9", "02:00:00:00:09:09"),
        ),
        add_rule(
            Side::Pod,
            Rule::owned_lookup(Family::Ipv4, 1000, Some(net("192.168.50.2/32")), None, 100),
        ),
        add_rule(
            Side::Pod,
            Rule::owned_lookup(Family::Ipv6, 1000, None, Some(net("fd00:96::/112")), 100),
        ),
        del_rule(Side::Pod, v4_rule),
        del_rule(Side::Pod, v6_rule),
        del_route(Side::Pod, topology_route()),
        add_rule(
            Side::Host,
            Rule::owned_lookup(Family::Ipv6, 1000, None, None, HOST_TABLE),
        ),
    ];
    let after = apply_like_the_model(&t, &ops);
    // Not vacuous: every op changed something.
    assert_ne!(pod(&after).routes, pod(&before).routes);
    assert_ne!(after.host.rules, before.host.rules);
}

// ---- many ops ----------------------------------------------------------------------------

#[test]
fn a_thousand_routes_are_added_and_removed_quickly() {
    let t = topology();
    let routes: Vec<Route> = (0..1000)
        .map(|i| {
            let dst = format!("10.100.{}.{}/32", i / 250, i % 250 + 1);
            owned(POD_TABLE, &dst, "eth0", None)
        })
        .collect();
    let adds: Vec<Op> = routes
        .iter()
        .map(|r| add_route(Side::Pod, r.clone()))
        .collect();
    let start = Instant::now();
    apply(&t, &adds).unwrap();
    let took_add = start.elapsed();
    let after = snapshot(&t);
    assert!(routes
        .iter()
        .all(|r| pod(&after).routes.get(&r.key) == Some(r)));

    let dels: Vec<Op> = routes
        .iter()
        .map(|r| del_route(Side::Pod, r.clone()))
        .collect();
    let start = Instant::now();
    apply(&t, &dels).unwrap();
    let took_del = start.elapsed();
    let table: Vec<_> = pod(&snapshot(&t))
        .routes
        .keys()
        .filter(|k| k.table == POD_TABLE)
        .cloned()
        .collect();
    assert_eq!(table, vec![topology_route().key]);
    eprintln!("1000 route adds: {took_add:?}, 1000 deletes: {took_del:?}");
    // Generous: a debug build on a loaded CI machine. Sequential waits take no longer
    // here, but a request-per-thread design would.
    assert!(took_add < Duration::from_secs(5), "{took_add:?}");
    assert!(took_del < Duration::from_secs(5), "{took_del:?}");
}

/// Writes name devices with the links of the read the ops were planned from (no link dump
/// of their own); a device that appeared since that read is looked up afresh, so the write
/// lands on it instead of failing for a device "not in this netns".
#[test]
fn writes_name_devices_from_the_planned_from_read_and_read_links_again_for_a_new_one() {
    let t = topology();
    let host = t.host.name.clone();
    let route = owned(HOST_TABLE, "192.168.80.2/32", "vlate", None);
    let ops = vec![add_route(Side::Host, route.clone())];
    let applied = with_executor(&t.host, None, move |executor| {
        let req = SnapshotRequest {
            host_tables: BTreeSet::from([HOST_TABLE]),
            ..SnapshotRequest::default()
        };
        let before = LiveSnapshot::default().snapshot(&req);
        run(
            "ip",
            &[
                "-n", &host, "link", "add", "vlate", "type", "veth", "peer", "name", "vlate-p",
            ],
        );
        run("ip", &["-n", &host, "link", "set", "vlate", "up"]);
        let planned_from = before.clone().unwrap_or_default();
        (
            before.map(|s| s.host.links.contains_key("vlate")),
            executor.apply(&ops, &planned_from),
        )
    });
    assert_eq!(applied.0.ok(), Some(false), "the read came before the link");
    assert!(applied.1.is_ok(), "{:?}", applied.1.err());
    let after = snapshot(&t);
    assert_eq!(after.host.routes.get(&route.key), Some(&route));
}
