//! render tests, `json`: the `router.plan/v1` fields, an op's detail read back, the drift
//! array read back.

use super::*;

#[test]
fn plan_json_carries_the_schema_fields() {
    let ops = vec![
        add_route(Side::Pod, route("10.0.0.0/8", "net1")),
        rp_filter("all", Some(2), 0),
    ];
    let p = plan(ops, vec![blocked_default(Side::Host)]);
    let v = plan_json(&p, &labels());
    assert_eq!(v["schema"], "router.plan/v1");
    assert_eq!(
        (v["pending"].as_u64(), v["blocked_count"].as_u64()),
        (Some(2), Some(1))
    );
    assert_eq!(
        v["netns"],
        json!({"pod": "/var/run/netns/x", "host": "host"})
    );
    assert_eq!(v["ops"][0]["netns"], "pod");
    assert_eq!(v["ops"][0]["action"], "add");
    assert_eq!(v["ops"][0]["object"], "route");
    assert_eq!(
        v["ops"][0]["command"],
        "ip route add 10.0.0.0/8 dev net1 proto 176"
    );
    assert_eq!(
        (
            v["ops"][1]["action"].as_str(),
            v["ops"][1]["object"].as_str()
        ),
        (Some("change"), Some("sysctl"))
    );
    let b = &v["blocked"][0];
    assert_eq!(b["netns"], "host");
    assert_eq!(b["description"], blocked_description(&p.blocked[0]));
    let found: Object = serde_json::from_value(b["found"].clone()).unwrap();
    assert_eq!(found, p.blocked[0].found);
}

#[test]
fn plan_json_detail_round_trips_into_the_op() {
    let ops = vec![
        add_rule(Side::Pod, rule(Some("10.0.0.5/32"), None, 100, 1000)),
        set_mac(Some("02:00:00:00:00:01")),
        Op::new(
            Side::Host,
            Change::ReplaceNeighbour {
                old: neighbour("10.0.0.1", "0a:0b:0c:0d:0e:01"),
                new: neighbour("10.0.0.1", "0a:0b:0c:0d:0e:0f"),
            },
        ),
    ];
    let v = plan_json(&plan(ops.clone(), vec![]), &labels());
    let back: Vec<Op> = v["ops"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| serde_json::from_value(o["detail"].clone()).unwrap())
        .collect();
    assert_eq!(back, ops);
}

#[test]
fn drifts_json_is_an_array_that_reads_back() {
    let all = drifts(&plan(
        vec![rp_filter("all", None, 0)],
        vec![blocked_default(Side::Pod)],
    ));
    let v = drifts_json(&all);
    assert_eq!(v.as_array().map(Vec::len), Some(2));
    assert_eq!(v[0]["netns"], "host");
    let back: Vec<Drift> = serde_json::from_value(v).unwrap();
    assert_eq!(back, all);
}
