//! render tests, `diff`: state listings and their diff per netns.

use super::*;

#[test]
fn state_lines_are_sorted_and_name_every_reconciled_object() {
    let mut ns = NetnsState::default();
    ns.insert_route(route("10.0.0.0/8", "net1"));
    ns.insert_route(route("::/0", "net1"));
    ns.insert_rule(rule(None, Some("10.240.0.0/12"), 100, 1000));
    ns.insert_neighbour(neighbour("10.0.0.1", "0a:0b:0c:0d:0e:0f"));
    ns.sysctls
        .insert(SysctlKey::new("all", SysctlName::RpFilter), 0);
    ns.macs.insert("net1".to_string(), mac("0a:0b:0a:14:14:5f"));
    assert_eq!(
        state_lines(&ns),
        [
            "mac net1 0a:0b:0a:14:14:5f",
            "neigh 10.0.0.1 lladdr 0a:0b:0c:0d:0e:0f dev net1 proto 176",
            "route -6 default dev net1 metric 1024 proto 176",
            "route 10.0.0.0/8 dev net1 proto 176",
            "rule from all to 10.240.0.0/12 lookup 100 pref 1000 proto 176",
            "sysctl net.ipv4.conf.all.rp_filter = 0",
        ]
    );
}

#[test]
fn state_diff_shows_added_and_removed_routes_per_netns() {
    let mut before = ActualState {
        pod: Some(NetnsState::default()),
        ..Default::default()
    };
    before.host.insert_route(route("10.9.0.0/16", "eth0"));
    let mut after = before.clone();
    after.host.routes.clear();
    if let Some(pod) = after.pod.as_mut() {
        pod.insert_route(route("10.0.0.0/8", "net1"));
    }
    let diff = state_diff(&before, &after);
    assert!(diff.contains("--- a/pod\n+++ b/pod\n"), "{diff}");
    assert!(
        diff.contains("\n+route 10.0.0.0/8 dev net1 proto 176\n"),
        "{diff}"
    );
    assert!(diff.contains("--- a/host\n+++ b/host\n"), "{diff}");
    assert!(
        diff.contains("\n-route 10.9.0.0/16 dev eth0 proto 176\n"),
        "{diff}"
    );
    assert!(diff.find("a/pod") < diff.find("a/host"), "{diff}");
}

#[test]
fn state_diff_is_empty_for_equal_states() {
    let mut state = ActualState::default();
    state.host.insert_route(route("10.9.0.0/16", "eth0"));
    assert_eq!(state_diff(&state, &state.clone()), "");
}
