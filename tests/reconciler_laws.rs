//! The reconciler's laws (DESIGN "Properties that must hold"), checked with proptest on
//! random but realistic pods and the in-memory model kernel (`ActualState::apply`).
//!
//! Worlds start from the shape the real chain produces (fixtures/add-seed-dual-stack):
//! eth0 a veth from ptp with its host peer, net1 a macvlan; IPv4 main with one default per
//! interface (same destination, nexthop tells them apart); the IPv6 default as one hop
//! entry per interface; the host netns with its uplinks and other links. Knobs vary the
//! families, defaults and metrics, unowned extra routes, host links (plumbing ones too),
//! sysctls, C's MAC, O's host peer, other pods on the node, the config, and a second
//! attachment (net2) on top of an attached net1.

use std::net::IpAddr;

use proptest::prelude::*;
use router::compile::Compiled;
use router::config::{parse_netconf, plugin_from_conflist_or_plugin, AllowedDirs, PrevView};
use router::model::{
    ActualState, Change, DesiredNetns, DesiredState, Family, Mode, Op, Record, Route, Rule, Side,
    SysctlKey, SysctlName, MAIN_TABLE,
};
use router::plan::{plan, Cause, Plan};
use router::render::state_diff;
use router::testkit::build::*;
use serde_json::Value;

// World generation: knobs, strategies, building pods and attachments.
#[path = "laws/world.rs"]
mod world;

use world::*;

/// ADD then DEL of the scenario's attachment, each applied to the model kernel.
struct Cycle {
    add: Compiled,
    add_plan: Plan,
    a1: ActualState,
    del: Compiled,
    del_plan: Plan,
    a2: ActualState,
}

fn cycle(s: &Scenario) -> Cycle {
    let add = s.att.compile(&s.before, None, Mode::Add);
    let add_plan = plan(&add.desired, &s.before, Mode::Add);
    let a1 = applied(&s.before, &add_plan.ops);
    let del = s.att.compile(&a1, Some(&add.record()), Mode::Del);
    let del_plan = plan(&del.desired, &a1, Mode::Del);
    let a2 = applied(&a1, &del_plan.ops);
    Cycle {
        add,
        add_plan,
        a1,
        del,
        del_plan,
        a2,
    }
}

/// Every op of `plan` is due to `address` having been added (or removed) on the node.
fn prop_assert_caused_by(plan: &Plan, address: IpAddr, added: bool) -> Result<(), TestCaseError> {
    prop_assert!(plan.blocked.is_empty(), "blocked:\n{}", show(plan));
    for op in &plan.ops {
        let cause = plan.cause_of(op);
        let ok = match &cause {
            Some(Cause::NodeAddressAdded { address: a, .. }) => added && *a == address,
            Some(Cause::NodeAddressRemoved { address: a, .. }) => !added && *a == address,
            None => false,
        };
        prop_assert!(
            ok,
            "{} has cause {:?}:\n{}",
            op.to_string(),
            cause,
            show(plan)
        );
    }
    Ok(())
}

fn prop_assert_empty(plan: &Plan, what: &str) -> Result<(), TestCaseError> {
    prop_assert!(plan.is_empty(), "{what} is not empty:\n{}", show(plan));
    Ok(())
}

/// The state without C's default hops in the pod's main table and without host sysctls
/// (BEHAVIOUR 4: DEL replaces C's default with P's; host sysctls are not restored).
fn comparable(actual: &ActualState, chained: &str) -> ActualState {
    let mut out = actual.clone();
    if let Some(pod) = out.pod.as_mut() {
        pod.routes.retain(|k, _| {
            !(k.table == MAIN_TABLE && k.is_default() && k.dev.as_deref() == Some(chained))
        });
    }
    out.host.sysctls.clear();
    out
}

fn main_default_families(actual: &ActualState) -> Vec<Family> {
    let pod = actual.pod.as_ref().expect("pod netns");
    Family::all()
        .into_iter()
        .filter(|f| pod.main_defaults(*f).next().is_some())
        .collect()
}

/// Applies ops one at a time; after each, main still has a default for every family that
/// had one before.
fn prop_assert_default_at_every_step(
    before: &ActualState,
    ops: &[Op],
    what: &str,
) -> Result<(), TestCaseError> {
    let families = main_default_families(before);
    let mut state = before.clone();
    for (i, op) in ops.iter().enumerate() {
        state.apply(std::slice::from_ref(op));
        let now = main_default_families(&state);
        for family in &families {
            prop_assert!(
                now.contains(family),
                "{what}: no {family} default in main after op {i} `{}`",
                op.to_string()
            );
        }
    }
    Ok(())
}

/// BEHAVIOUR "owned": no op deletes or changes an object the plugin does not own, except
/// the documented moves (P's default out of main on ADD, back in replacing C's on DEL);
/// everything created carries ROUTER_PROTOCOL but the restored originals; sysctls and MACs
/// only on the interfaces BEHAVIOUR names.
fn prop_assert_touches_only_owned(
    ops: &[Op],
    desired: &DesiredState,
    actual: &ActualState,
    att: &Attachment,
    host_peer: Option<&str>,
) -> Result<(), TestCaseError> {
    for op in ops {
        let side = op.netns;
        let d: &DesiredNetns = desired.side(side);
        let ns = actual.side(side).expect("netns of an op exists");
        let cmd = op.to_string();
        match &op.change {
            Change::DelRoute { route } => {
                prop_assert_eq!(ns.routes.get(&route.key), Some(route), "{}", cmd);
                let moved_out = d.ownership.must_be_absent(&route.key);
                prop_assert!(
                    route.is_owned() || moved_out,
                    "deletes an unowned route: {}",
                    cmd
                );
                prop_assert!(
                    d.ownership.scope.holds_route(route) || moved_out,
                    "deletes a route outside the attachment: {}",
                    cmd
                );
            }
            Change::ReplaceRoute { old, new } => {
                let takeover = d.ownership.may_take_over(&new.key);
                for r in old {
                    prop_assert_eq!(ns.routes.get(&r.key), Some(r), "{}", cmd);
                    prop_assert!(
                        r.is_owned() || (takeover && d.ownership.must_be_absent(&r.key)),
                        "replaces an unowned route: {} (old {:?})",
                        cmd,
                        r
                    );
                }
                prop_assert!(new.is_owned() || takeover, "unowned new route: {}", cmd);
            }
            Change::AddRoute { route } => prop_assert!(
                route.is_owned() || d.ownership.may_take_over(&route.key),
                "adds an unowned route: {}",
                cmd
            ),
            Change::AddRule { rule } => prop_assert!(rule.is_owned(), "{}", cmd),
            Change::DelRule { rule } => {
                prop_assert_eq!(ns.rules.get(&rule.key), Some(rule), "{}", cmd);
                prop_assert!(rule.is_owned(), "deletes an unowned rule: {}", cmd);
            }
            Change::AddNeighbour { neighbour } => prop_assert!(neighbour.is_owned(), "{}", cmd),
            Change::ReplaceNeighbour { old, new } => {
                prop_assert_eq!(ns.neighbours.get(&old.key), Some(old), "{}", cmd);
                prop_assert!(old.is_owned() && new.is_owned(), "{}", cmd);
            }
            Change::DelNeighbour { neighbour } => {
                prop_assert_eq!(
                    ns.neighbours.get(&neighbour.key),
                    Some(neighbour),
                    "{}",
                    cmd
                );
                prop_assert!(
                    neighbour.is_owned(),
                    "deletes an unowned neighbour: {}",
                    cmd
                );
            }
            Change::SetMac { dev, .. } => {
                prop_assert!(side == Side::Pod && *dev == att.ifname, "{}", cmd);
            }
            Change::SetSysctl { key, .. } => {
                let allowed: Vec<&str> = match side {
                    Side::Pod => vec!["all", "default", O, att.ifname.as_str()],
                    Side::Host => ["all", "default"].into_iter().chain(host_peer).collect(),
                };
                prop_assert!(allowed.contains(&key.iface.as_str()), "{}", cmd);
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// The laws.

/// CASES cases each; no regression files written next to the test.
fn laws_config() -> ProptestConfig {
    ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::with_cases(CASES)
    }
}

proptest! {
    #![proptest_config(laws_config())]

    /// Applying plan(d, a) gives a state whose plan against d is empty, for ADD and DEL;
    /// a second DEL (with the record, and without it once DEL removed the file) is a no-op.
    #[test]
    fn plan_of_desired_against_its_own_outcome_is_empty(k in knobs(false)) {
        let s = build(&k);
        let c = cycle(&s);
        prop_assert!(c.add_plan.blocked.is_empty(), "blocked ADD:\n{}", show(&c.add_plan));
        prop_assert_empty(&plan(&c.add.desired, &c.a1, Mode::Add), "ADD after ADD applied")?;
        prop_assert!(c.del_plan.blocked.is_empty(), "blocked DEL:\n{}", show(&c.del_plan));
        prop_assert_empty(&plan(&c.del.desired, &c.a2, Mode::Del), "DEL after DEL applied")?;
        let again = s.att.compile(&c.a2, Some(&c.add.record()), Mode::Del);
        prop_assert_empty(&plan(&again.desired, &c.a2, Mode::Del), "second DEL")?;
        let no_record = s.att.compile(&c.a2, None, Mode::Del);
        prop_assert_empty(&plan(&no_record.desired, &c.a2, Mode::Del), "DEL without record")?;
    }

    /// A state that already is what d wants: CHECK (compile as ADD with the record) and a
    /// repeated ADD with the same input find nothing to do.
    #[test]
    fn plan_of_a_state_against_itself_is_empty(k in knobs(false)) {
        let s = build(&k);
        let c = cycle(&s);
        let check = s.att.compile(&c.a1, Some(&c.add.record()), Mode::Add);
        prop_assert_empty(&plan(&check.desired, &c.a1, Mode::Add), "CHECK after ADD")?;
        prop_assert_eq!(&check.record(), &c.add.record(), "CHECK compiles another record");
        let repeat = s.att.compile(&c.a1, Some(&check.record()), Mode::Add);
        prop_assert_empty(&plan(&repeat.desired, &c.a1, Mode::Add), "repeated ADD")?;
    }

    /// DEL after ADD gives back the state before ADD, but for C's default hops in main
    /// (replaced by P's restored default) and host sysctls (shared, not restored: they hold
    /// their old value or the one ADD wrote).
    #[test]
    fn add_then_del_restores_the_pre_add_state(k in knobs(false)) {
        let s = build(&k);
        let c = cycle(&s);
        let ifname = s.att.ifname.as_str();
        let (after, before) = (comparable(&c.a2, ifname), comparable(&s.before, ifname));
        prop_assert!(
            after == before,
            "DEL did not restore:\n{}\nADD:\n{}\nDEL:\n{}",
            state_diff(&before, &after), show(&c.add_plan), show(&c.del_plan)
        );
        let wanted = &c.add.desired.host.present.sysctls;
        for (key, value) in &c.a2.host.sysctls {
            let old = s.before.host.sysctls.get(key);
            prop_assert!(
                old == Some(value) || wanted.get(key) == Some(value),
                "host {} = {}: neither {:?} before nor {:?} from ADD", key, value, old, wanted.get(key)
            );
        }
        for family in main_default_families(&s.before) {
            prop_assert!(main_default_families(&c.a2).contains(&family), "{} default lost", family);
        }
    }

    /// Ops touch owned objects only, except the documented moves.
    #[test]
    fn no_op_touches_an_unowned_object_except_documented_moves(k in knobs(false)) {
        let s = build(&k);
        let c = cycle(&s);
        let record = c.add.record();
        let host_peer = record.host_peer.as_deref();
        prop_assert_touches_only_owned(&c.add_plan.ops, &c.add.desired, &s.before, &s.att, host_peer)?;
        for key in &c.del.desired.pod.ownership.absent_routes {
            prop_assert!(
                key.table == MAIN_TABLE && key.is_default() && key.dev.as_deref() == Some(s.att.ifname.as_str()),
                "DEL moves out what is not C's default: {:?}", key
            );
        }
        prop_assert!(c.del.desired.host.ownership.absent_routes.is_empty());
        prop_assert_touches_only_owned(&c.del_plan.ops, &c.del.desired, &c.a1, &s.att, host_peer)?;
    }

    /// Op by op, ADD then DEL never leave main without a default it had.
    #[test]
    fn no_moment_without_a_default_route(k in knobs(false)) {
        let s = build(&k);
        let c = cycle(&s);
        prop_assert_default_at_every_step(&s.before, &c.add_plan.ops, "ADD")?;
        prop_assert_default_at_every_step(&c.a1, &c.del_plan.ops, "DEL")?;
    }

    /// A node address that comes after ADD, then goes: CHECK's drift is only its routes and
    /// neighbour, each saying the address was added (then removed), and applying that plan
    /// (what --repair and a repeated ADD do) leaves CHECK clean and the pod as it was.
    #[test]
    fn a_node_address_coming_and_going_is_the_only_drift_and_says_so(k in knobs(false)) {
        let s = build(&k);
        let c = cycle(&s);
        let chained = s.att.prev.addresses_of(&s.att.ifname);
        let Some(c_addr) = chained.first() else { return Ok(()) };
        let (new, address) = match Family::of_net(c_addr) {
            Family::Ipv4 => ("198.51.100.2/24", ip("198.51.100.2")),
            Family::Ipv6 => ("2001:db8:5::2/64", ip("2001:db8:5::2")),
        };
        let mut gained = c.a1.clone();
        gained.host.links.insert("up9".into(), link(9999, None, None, &[new.to_string()]));
        let check = s.att.compile(&gained, Some(&c.add.record()), Mode::Add);
        let drift = plan(&check.desired, &gained, Mode::Add);
        prop_assert_caused_by(&drift, address, true)?;
        // Whenever the pod gets host-address routes at all (a usable host peer: the host
        // side is made too), the new address is drift.
        let routed = !c.add.desired.host.present.rules.is_empty();
        prop_assert_eq!(drift.ops.is_empty(), !routed, "drift:\n{}", show(&drift));
        let repaired = applied(&gained, &drift.ops);
        let again = s.att.compile(&repaired, Some(&check.record()), Mode::Add);
        prop_assert_empty(&plan(&again.desired, &repaired, Mode::Add), "CHECK after the repair")?;

        let mut lost = repaired.clone();
        lost.host.links.remove("up9");
        let check = s.att.compile(&lost, Some(&again.record()), Mode::Add);
        let drift = plan(&check.desired, &lost, Mode::Add);
        prop_assert_caused_by(&drift, address, false)?;
        let repaired = applied(&lost, &drift.ops);
        let again = s.att.compile(&repaired, Some(&check.record()), Mode::Add);
        prop_assert_empty(&plan(&again.desired, &repaired, Mode::Add), "CHECK after the second repair")?;
        prop_assert_eq!(&repaired.pod, &c.a1.pod, "the pod is not as it was after ADD");
    }

    /// The record survives its JSON file: same value, and CHECK and DEL compiled from the
    /// read-back record plan the same ops.
    #[test]
    fn record_survives_json(k in knobs(false)) {
        let s = build(&k);
        let c = cycle(&s);
        let text = serde_json::to_string(&c.add.record()).expect("serialise record");
        let back: Record = serde_json::from_str(&text).expect("read record back");
        prop_assert_eq!(&back, &c.add.record());
        let del = s.att.compile(&c.a1, Some(&back), Mode::Del);
        prop_assert_eq!(plan(&del.desired, &c.a1, Mode::Del), c.del_plan);
        let check = s.att.compile(&c.a1, Some(&back), Mode::Add);
        let check_orig = s.att.compile(&c.a1, Some(&c.add.record()), Mode::Add);
        prop_assert_eq!(
            plan(&check.desired, &c.a1, Mode::Add),
            plan(&check_orig.desired, &c.a1, Mode::Add)
        );
    }
}

/// The ops of a CHECK that are only sysctls the other attachment set to another value
/// (two configs disagreeing: the last writer wins; BEHAVIOUR 4 does not restore host ones).
fn prop_assert_only_conflicting_sysctls(
    check: &Plan,
    other: &DesiredState,
    sides: &[Side],
    what: &str,
) -> Result<(), TestCaseError> {
    prop_assert!(check.blocked.is_empty(), "{what}:\n{}", show(check));
    for op in &check.ops {
        let netns = &op.netns;
        let conflict = match &op.change {
            Change::SetSysctl { key, old, new } => {
                let theirs = other.side(*netns).present.sysctls.get(key);
                sides.contains(netns)
                    && theirs.is_some()
                    && theirs == old.as_ref()
                    && theirs != Some(new)
            }
            _ => false,
        };
        prop_assert!(
            conflict,
            "{what}: drift `{}` in\n{}",
            op.to_string(),
            show(check)
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(laws_config())]

    /// net2 coming and going does not make net1 drift (BEHAVIOUR 3: objects added by anything
    /// else are not drift; 2.2: P is fixed by the first ADD; 4: DEL keeps and restores what
    /// other attachments want), but for sysctls the two configs set to different values.
    #[test]
    fn another_attachment_leaves_this_ones_check_clean(k in knobs(true)) {
        let s = build(&k);
        let net1 = net1_attachment(&k);
        let net1_record = s.att.peers.first().expect("net1 is attached");
        let c = cycle(&s);
        let check = net1.compile(&s.before, Some(net1_record), Mode::Add);
        prop_assert_empty(&plan(&check.desired, &s.before, Mode::Add), "net1 CHECK, net2 created")?;
        let with_peer = Attachment { peers: vec![c.add.record()], ..net1.clone() };
        let check = with_peer.compile(&c.a1, Some(net1_record), Mode::Add);
        let drift = plan(&check.desired, &c.a1, Mode::Add);
        prop_assert_only_conflicting_sysctls(&drift, &c.add.desired, &[Side::Pod, Side::Host], "net1 CHECK, net2 attached")?;
        let check = net1.compile(&c.a2, Some(net1_record), Mode::Add);
        let drift = plan(&check.desired, &c.a2, Mode::Add);
        prop_assert_only_conflicting_sysctls(&drift, &c.add.desired, &[Side::Host], "net1 CHECK, net2 detached")?;
    }
}

// ---------------------------------------------------------------------------------------
// Examples on the fixture.

fn fixture(name: &str) -> Value {
    let path = format!(
        "{}/fixtures/add-seed-dual-stack/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).expect("fixture file");
    serde_json::from_str(&text).expect("fixture JSON")
}

fn fixture_scenario() -> Scenario {
    let plugin = plugin_from_conflist_or_plugin(fixture("config.json")).expect("conflist");
    let config = parse_netconf(&plugin, &AllowedDirs::default())
        .expect("fixture config")
        .config;
    let prev = PrevView::parse(&fixture("prev-result.json")).expect("fixture prevResult");
    let before: ActualState = serde_json::from_value(fixture("snapshot.json")).expect("snapshot");
    Scenario {
        before,
        att: Attachment {
            ifname: "net1".into(),
            config,
            prev,
            peers: Vec::new(),
        },
    }
}

fn main_default_devs(actual: &ActualState, family: Family) -> Vec<String> {
    let pod = actual.pod.as_ref().expect("pod netns");
    pod.main_defaults(family)
        .filter_map(|r| r.key.dev.clone())
        .collect()
}

#[test]
fn fixture_add_moves_eth0_defaults_into_table_100_and_leaves_net1_in_main() {
    let s = fixture_scenario();
    let c = cycle(&s);
    assert!(c.add_plan.blocked.is_empty(), "{}", show(&c.add_plan));
    let pod = c.a1.pod.as_ref().expect("pod");
    for (family, gateway) in [
        (Family::Ipv4, "10.244.1.1"),
        (Family::Ipv6, "fd00:10:244:1::1"),
    ] {
        assert_eq!(main_default_devs(&c.a1, family), ["net1"], "{family}");
        let in_t: Vec<&Route> = pod
            .routes
            .values()
            .filter(|r| r.key.table == 100 && r.key.is_default() && r.key.family() == family)
            .collect();
        assert_eq!(in_t.len(), 1, "{family}: {in_t:?}");
        assert_eq!(in_t[0].key.dev.as_deref(), Some(O));
        assert_eq!(in_t[0].key.gateway, Some(ip(gateway)));
        assert!(in_t[0].is_owned());
    }
    assert!(pod
        .rules
        .values()
        .any(|r| r.is_owned() && r.key.from == Some(net("10.244.1.2/32")) && r.key.table == 100));
    assert_eq!(pod.macs["net1"], mac("0a:0b:c0:a8:32:0a"));
    let check = s.att.compile(&c.a1, Some(&c.add.record()), Mode::Add);
    assert!(plan(&check.desired, &c.a1, Mode::Add).is_empty());
}

#[test]
fn fixture_del_restores_eth0_defaults_in_place_of_net1s() {
    let s = fixture_scenario();
    let c = cycle(&s);
    for family in Family::all() {
        assert_eq!(main_default_devs(&c.a2, family), [O], "{family}");
    }
    let pod = c.a2.pod.as_ref().expect("pod");
    let before = s.before.pod.as_ref().expect("pod");
    for (key, route) in pod.routes.iter().filter(|(k, _)| k.is_default()) {
        assert_eq!(before.routes.get(key), Some(route), "restored as it was");
    }
    assert!(!pod.routes.values().any(Route::is_owned));
    assert!(!pod.rules.values().any(Rule::is_owned));
    assert!(!c.a2.host.routes.values().any(Route::is_owned));
    assert!(!c.a2.host.rules.values().any(Rule::is_owned));
    assert_eq!(pod.macs, before.macs);
    assert_eq!(pod.sysctls, before.sysctls);
    assert!(c.del_plan.ops.iter().any(|op| matches!(&op.change,
        Change::ReplaceRoute { old, new } if new.key.dev.as_deref() == Some(O)
            && old.iter().all(|r| r.key.dev.as_deref() == Some("net1")))));
}

#[test]
fn fixture_host_side_routes_net1_addresses_through_the_host_peer() {
    let s = fixture_scenario();
    let c = cycle(&s);
    assert_eq!(c.add.record().host_peer.as_deref(), Some(H));
    for addr in ["192.168.50.10/32", "fd50::10/128"] {
        let found = c.a1.host.routes.values().find(|r| {
            r.key.table == HOST_RULE_TABLE
                && r.key.dst == net(addr)
                && r.key.dev.as_deref() == Some(H)
        });
        assert!(found.is_some_and(Route::is_owned), "{addr}");
    }
    for family in Family::all() {
        assert!(c.a1.host.rules.values().any(|r| r.is_owned()
            && r.key.family == family
            && r.key.table == HOST_RULE_TABLE
            && r.key.from.is_none()));
    }
}

// ---------------------------------------------------------------------------------------
// Regressions found by the laws above, as examples.

fn example_chained(host_byte: u8) -> ChainedKnobs {
    ChainedKnobs {
        fams: Fams::Both,
        host_byte,
        mac: [0xda, 0x5e, 0xd2, 0xd6, 0xb7, host_byte],
        default_v4: Some(0),
        default_v6: Some(1024),
        rp_filter: 1,
        disable_ipv6: 0,
        preferred_src: true,
        ips_without_index: false,
    }
}

fn example_config(migrate_route: i64, rp_filter: Option<(bool, u8)>) -> ConfigKnobs {
    ConfigKnobs {
        migrate_route,
        sriov: false,
        mac_prefix: None,
        only_op_mac: false,
        rp_filter,
        route_table: None,
        rule_priority: None,
        hijack: vec![(net("10.240.0.0/12"), 0), (net("172.96.0.0/18"), 1)],
    }
}

/// The fixture's pod as knobs, with net2 attached after net1.
fn example_knobs() -> Knobs {
    Knobs {
        world: WorldKnobs {
            overlay_octet: 1,
            eth0_default_v4: Some(0),
            eth0_default_v6: Some(1024),
            extra_routes: Vec::new(),
            host_links: Vec::new(),
            uplinks_look_like_plumbing: false,
            pod_rp_filter: [1, 1, 1],
            pod_disable_ipv6: [0, 0, 0],
            host_rp_filter: [1, 1, 1],
            peer: PeerKind::Veth,
            other_pods: 0,
        },
        net1: example_chained(10),
        config: example_config(-1, None),
        second: Some((example_chained(20), example_config(-1, None))),
    }
}

fn pod_sysctl(actual: &ActualState, iface: &str) -> Option<i64> {
    let pod = actual.pod.as_ref().expect("pod netns");
    pod.sysctls
        .get(&SysctlKey::new(iface, SysctlName::RpFilter))
        .copied()
}

/// DEL of net2 skipped the pod sysctls net1's record also names, leaving net2's rp_filter
/// in place of the value net1 wants (and had set): net1's CHECK then reported drift.
#[test]
fn del_of_net2_puts_back_the_rp_filter_net1_wants() {
    let mut k = example_knobs();
    k.second = Some((example_chained(20), example_config(-1, Some((false, 0)))));
    let s = build(&k);
    for iface in ["all", "default", O] {
        assert_eq!(pod_sysctl(&s.before, iface), Some(2), "net1 set {iface}");
    }
    let c = cycle(&s);
    for iface in ["all", "default", O] {
        assert_eq!(pod_sysctl(&c.a1, iface), Some(0), "net2 set {iface}");
        assert_eq!(
            pod_sysctl(&c.a2, iface),
            Some(2),
            "net2's DEL gave back {iface}"
        );
    }
    let net1 = net1_attachment(&k);
    let check = net1.compile(&c.a2, Some(&s.att.peers[0]), Mode::Add);
    let drift = plan(&check.desired, &c.a2, Mode::Add);
    assert!(drift.is_empty(), "{}", show(&drift));
}

/// With eth0's defaults left in main by net1 (migrate_route 0), net2 moves them; its DEL put
/// them back by replacing the whole slot, net1's defaults included, instead of only net2's.
#[test]
fn del_of_net2_restores_eth0s_default_next_to_net1s() {
    let mut k = example_knobs();
    k.config = example_config(0, None);
    k.second = Some((example_chained(20), example_config(1, None)));
    let s = build(&k);
    let c = cycle(&s);
    for family in Family::all() {
        assert_eq!(main_default_devs(&s.before, family), [O, "net1", "net2"]);
        assert_eq!(main_default_devs(&c.a1, family), ["net1", "net2"]);
        assert_eq!(main_default_devs(&c.a2, family), [O, "net1"], "{family}");
    }
    for op in &c.del_plan.ops {
        if let Change::ReplaceRoute { old, .. } = &op.change {
            assert!(
                old.iter().all(|r| r.key.dev.as_deref() == Some("net2")),
                "{}",
                op.to_string()
            );
        }
    }
}

/// net1 found no previous interface at ADD (eth0 has no default); once net2 added its default
/// to main, net1's CHECK took net2 for P and reported its routes and rules as drift.
#[test]
fn a_default_net2_adds_later_does_not_become_net1s_previous_interface() {
    let mut k = example_knobs();
    k.world.eth0_default_v4 = None;
    k.world.eth0_default_v6 = None;
    k.net1.default_v4 = None;
    k.net1.default_v6 = None;
    let s = build(&k);
    assert!(s.att.peers[0].moved.is_empty(), "net1 has no P");
    let net1 = net1_attachment(&k);
    let check = net1.compile(&s.before, Some(&s.att.peers[0]), Mode::Add);
    let drift = plan(&check.desired, &s.before, Mode::Add);
    assert!(drift.is_empty(), "{}", show(&drift));
}
