//! Unit tests of rollout::safety.

use serde_json::{json, Value};

use super::*;
use crate::config::{parse_netconf, AllowedDirs};
use crate::error::Code;

fn config(extra: Value) -> Config {
    let mut v = json!({"cniVersion": "1.0.0", "name": "n", "type": "router",
                       "overlay_hijack_subnet": ["10.244.0.0/16"],
                       "service_hijack_subnet": ["10.96.0.0/12"]});
    for (k, x) in extra.as_object().unwrap() {
        v[k] = x.clone();
    }
    parse_netconf(&v, &AllowedDirs::default()).unwrap().config
}

#[test]
fn hijack_cidrs_priorities_and_rp_filter_may_change_on_a_live_pod() {
    let old = config(json!({}));
    let new = config(
        json!({"overlay_hijack_subnet": ["10.244.0.0/16", "10.245.0.0/16"],
                            "rule_priority": 900, "rp_filter": {"value": 0}}),
    );
    assert!(live_key_changes(&old, &new, "net1").is_empty());
}

#[test]
fn each_key_that_fixes_where_objects_live_is_refused_by_name_with_code_106() {
    let old = config(json!({}));
    let cases = [
        ("route_table", json!({"route_table": 200})),
        ("host_rule_table", json!({"host_rule_table": 600})),
        ("overlay_interface", json!({"overlay_interface": "eth1"})),
        ("migrate_route", json!({"migrate_route": 0})),
        ("sriov", json!({"sriov": true})),
        ("mac_prefix", json!({"mac_prefix": "0a:0b"})),
        ("data_dir", json!({"data_dir": "/run/cni/other"})),
        ("skip_call", json!({"skip_call": true})),
    ];
    for (key, change) in cases {
        let refused = live_key_changes(&old, &config(change), "net1");
        assert_eq!(refused.len(), 1, "{key}: {refused:?}");
        let words = refused[0].to_string();
        assert!(words.starts_with(key), "{words}");
        assert!(words.contains("must be recreated"), "{words}");
        assert_eq!(refused[0].code(), Code::RolloutRefused);
    }
}

#[test]
fn a_route_table_equal_to_the_derived_one_is_no_change() {
    let old = config(json!({}));
    let new = config(json!({"route_table": 100}));
    assert!(live_key_changes(&old, &new, "net1").is_empty());
    assert_eq!(live_key_changes(&old, &new, "net2").len(), 1);
}
