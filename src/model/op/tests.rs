//! model::op tests: an op's inverse and its JSON.

use super::*;
use crate::model::*;

#[test]
fn inverse_of_replace_restores_the_replaced_routes() {
    let mut ns = NetnsState::default();
    let old = Route {
        key: RouteKey {
            table: MAIN_TABLE,
            dst: Family::Ipv4.any(),
            tos: 0,
            metric: 0,
            dev: Some("net1".into()),
            gateway: Some("192.168.50.254".parse().unwrap()),
        },
        scope: RouteScope::Universe,
        kind: RouteKind::Unicast,
        protocol: PROTOCOL_BOOT,
        prefsrc: None,
        onlink: false,
    };
    let mut new = old.clone();
    new.key.dev = Some("eth0".into());
    ns.insert_route(old.clone());
    let before = ns.clone();
    let op = Op::new(
        Side::Pod,
        Change::ReplaceRoute {
            old: vec![old],
            new,
        },
    );
    ns.apply(&op);
    assert_ne!(ns, before);
    for undo in op.inverse() {
        ns.apply(&undo);
    }
    assert_eq!(ns, before);
}

/// The netns sits beside the change's keys, as when every variant carried it.
#[test]
fn an_op_is_json_of_its_change_with_its_netns() {
    let rule = Rule::owned_lookup(Family::Ipv4, 1000, None, None, 100);
    let op = Op::new(Side::Host, Change::DelRule { rule: rule.clone() });
    let json = serde_json::to_value(&op).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"op": "del_rule", "netns": "host", "rule": rule})
    );
    assert_eq!(serde_json::from_value::<Op>(json).unwrap(), op);
    let sysctl = serde_json::json!({
        "op": "set_sysctl", "netns": "pod", "key": "net.ipv4.conf.all.rp_filter", "new": 2
    });
    assert_eq!(
        serde_json::from_value::<Op>(sysctl).unwrap(),
        Op::new(
            Side::Pod,
            Change::SetSysctl {
                key: SysctlKey::new("all", SysctlName::RpFilter),
                old: None,
                new: 2
            }
        )
    );
}
