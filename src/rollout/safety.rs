//! rollout::safety: the config keys a live attachment cannot take (where its objects live,
//! whether router manages it at all). Pure: two configs in, the refusals out; must not judge
//! removals (reconcile does, on the plan it applies).

use std::path::Path;

use crate::config::Config;
use crate::error::Error;

/// Each key whose value differs between the attachment's config and the new one and that a
/// live pod cannot take: the pod must be recreated. Empty when the new config may be
/// planned against the pod.
pub fn live_key_changes(current: &Config, new: &Config, ifname: &str) -> Vec<Error> {
    let table = |c: &Config| {
        c.table_for(ifname)
            .map_or_else(|_| "<none>".to_string(), |t| t.to_string())
    };
    let mac = |c: &Config| {
        c.mac_prefix
            .map_or_else(|| "unset".to_string(), |[a, b]| format!("{a:02x}:{b:02x}"))
    };
    let dir = |p: &Path| p.display().to_string();
    let flag = |b: bool| b.to_string();
    let keys: [(&'static str, String, String); 9] = [
        ("route_table", table(current), table(new)),
        (
            "host_rule_table",
            current.host_rule_table.to_string(),
            new.host_rule_table.to_string(),
        ),
        (
            "overlay_interface",
            current.overlay_interface.clone(),
            new.overlay_interface.clone(),
        ),
        (
            "migrate_route",
            format!("{:?}", current.migrate_route),
            format!("{:?}", new.migrate_route),
        ),
        ("sriov", current.sriov.to_string(), new.sriov.to_string()),
        ("mac_prefix", mac(current), mac(new)),
        ("data_dir", dir(&current.data_dir), dir(&new.data_dir)),
        // These two say whether router manages the attachment at all, or only its MAC: a
        // live pod made one way has nothing the other way could take over or hand back.
        ("skip_call", flag(current.skip_call), flag(new.skip_call)),
        (
            "only_op_mac",
            flag(current.only_op_mac),
            flag(new.only_op_mac),
        ),
    ];
    keys.into_iter()
        .filter(|(_, from, to)| from != to)
        .map(|(key, from, to)| Error::CannotChangeLive { key, from, to })
        .collect()
}

#[cfg(test)]
mod tests {
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
}
