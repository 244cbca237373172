//! model::desired tests: the JSON of a desired netns.

use super::*;
use crate::model::{Family, Route, Rule, ROUTER_PROTOCOL};

/// Ownership is flattened: DesiredNetns's JSON keeps its keys, in their order.
#[test]
fn ownership_keys_sit_beside_present_in_their_order() {
    let route = Route::link(100, "10.0.0.0/8".parse().unwrap(), "eth0", ROUTER_PROTOCOL);
    let rule = Rule::owned_lookup(Family::Ipv4, 1000, None, None, 500);
    let mut d = DesiredNetns::default();
    d.present.insert_rule(rule.clone());
    d.ownership.absent_routes.push(route.key.clone());
    d.ownership.takeover.insert(route.key.clone());
    d.ownership.scope.rule_tables.insert(100);
    d.ownership.keep.insert_rule(rule.clone());
    d.ownership.release_when_unused.push(rule.key.clone());
    d.node_addresses.added.insert("10.0.0.1".parse().unwrap());
    let text = serde_json::to_string(&d).unwrap();
    let keys = [
        "present",
        "absent_routes",
        "takeover",
        "scope",
        "keep",
        "release_when_unused",
        "node_addresses",
    ];
    let at: Vec<usize> = keys
        .iter()
        .map(|k| text.find(&format!("\"{k}\":")).unwrap())
        .collect();
    assert!(at.windows(2).all(|w| w[0] < w[1]), "{text}");
    assert_eq!(serde_json::from_str::<DesiredNetns>(&text).unwrap(), d);
    let empty = serde_json::to_value(DesiredNetns::default()).unwrap();
    assert_eq!(empty, serde_json::json!({"present": {}, "scope": {}}));
}
