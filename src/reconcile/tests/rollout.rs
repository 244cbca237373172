//! `rollout` over the in-memory model kernel, from the `add-drifted` fixture: the new
//! config is applied through repair's path and kept in the record; a plan that removes
//! owned objects needs pruning; an attachment without a record is never touched.

use serde_json::{json, Value};

use super::super::*;
use super::repair::{drifted, Case};
use crate::config::{parse_netconf, AllowedDirs};
use crate::error::Code;

/// The fixture's router config with `changes`, as the record keeps it and as parsed.
fn config_with(case: &Case, changes: Value) -> (Value, Config) {
    let mut plugin = case.inputs.config.clone();
    for (k, v) in changes.as_object().into_iter().flatten() {
        plugin[k] = v.clone();
    }
    let config = parse_netconf(&plugin, &AllowedDirs::default())
        .unwrap()
        .config;
    (plugin, config)
}

fn world(case: &Case) -> World<'_> {
    World {
        snapshots: &case.kernel,
        executor: &case.kernel,
        records: &case.records,
        host: &case.records,
    }
}

fn pending_with(case: &Case, config: &Config) -> Plan {
    prepare(
        Mode::Add,
        config,
        &case.att,
        Some(&case.prev),
        &case.kernel,
        &case.records,
    )
    .unwrap()
    .plan
}

/// The fixture's attachment repaired with its own config: what a clean pod is.
fn clean() -> Case {
    let case = drifted(true);
    repair(
        &case.config,
        &case.att,
        &case.prev,
        &case.inputs,
        &world(&case),
    )
    .unwrap();
    assert!(case.pending().is_empty());
    case
}

#[test]
fn a_rollout_applies_the_new_rules_and_the_record_keeps_the_config_through_a_later_add() {
    let case = clean();
    let (plugin, config) = config_with(
        &case,
        json!({"additional_hijack_subnet": ["10.250.0.0/16"]}),
    );
    let applied = rollout(
        &config,
        &case.att,
        &case.prev,
        &case.inputs,
        &plugin,
        false,
        &world(&case),
    )
    .unwrap();
    let words: Vec<String> = applied.iter().map(ToString::to_string).collect();
    assert_eq!(
        words,
        ["ip rule add from all to 10.250.0.0/16 lookup 100 pref 1000 proto 176"]
    );
    assert!(pending_with(&case, &config).is_empty());
    let record = case.records.load("c1", "net1").unwrap().unwrap();
    assert_eq!(record.rolled_out, Some(plugin.clone()));
    assert_eq!(
        record.inputs.as_ref().map(|i| &i.config),
        Some(&case.inputs.config),
        "the ADD's inputs stay"
    );

    // A repair (and an ADD) of the attachment keeps the rolled-out config in the record.
    repair(&config, &case.att, &case.prev, &case.inputs, &world(&case)).unwrap();
    let record = case.records.load("c1", "net1").unwrap().unwrap();
    assert_eq!(record.rolled_out, Some(plugin.clone()));

    // The same config again: nothing applied, the record as it was.
    let again = rollout(
        &config,
        &case.att,
        &case.prev,
        &case.inputs,
        &plugin,
        false,
        &world(&case),
    )
    .unwrap();
    assert!(again.is_empty(), "{again:?}");
}

#[test]
fn dropping_a_cidr_is_refused_naming_its_rule_unless_pruning() {
    let case = clean();
    let (plugin, config) = config_with(
        &case,
        json!({"service_hijack_subnet": ["2001:4860:fd00::/108"]}),
    );
    let refused = rollout(
        &config,
        &case.att,
        &case.prev,
        &case.inputs,
        &plugin,
        false,
        &world(&case),
    )
    .unwrap_err();
    assert_eq!(refused.code(), Code::RolloutRefused, "{refused}");
    let words = refused.to_string();
    assert!(
        words.contains("ip rule del from all to 172.96.0.0/18 lookup 100"),
        "{words}"
    );
    assert!(words.contains("--prune"), "{words}");
    assert_eq!(
        case.records.load("c1", "net1").unwrap().unwrap().rolled_out,
        None,
        "nothing recorded"
    );
    assert_eq!(pending_with(&case, &config).ops.len(), 1, "nothing applied");

    let pruned = rollout(
        &config,
        &case.att,
        &case.prev,
        &case.inputs,
        &plugin,
        true,
        &world(&case),
    )
    .unwrap();
    assert_eq!(pruned.len(), 1, "{pruned:?}");
    assert!(pending_with(&case, &config).is_empty());
}

#[test]
fn an_attachment_without_a_record_is_refused_and_left_untouched() {
    let case = drifted(false);
    let before = case.pending();
    let (plugin, config) = config_with(&case, json!({}));
    let e = rollout(
        &config,
        &case.att,
        &case.prev,
        &case.inputs,
        &plugin,
        true,
        &world(&case),
    )
    .unwrap_err();
    assert_eq!(e.code(), Code::UnknownContainer, "{e}");
    assert_eq!(case.pending(), before);
    assert!(case.records.load("c1", "net1").unwrap().is_none());
}

#[test]
fn a_moved_rule_priority_is_a_removal_refused_unless_pruning() {
    let case = clean();
    let (plugin, config) = config_with(&case, json!({"rule_priority": 900}));
    let refused = rollout(
        &config,
        &case.att,
        &case.prev,
        &case.inputs,
        &plugin,
        false,
        &world(&case),
    )
    .unwrap_err();
    assert_eq!(refused.code(), Code::RolloutRefused, "{refused}");
    assert!(refused.to_string().contains("pref 1000"), "{refused}");
    let pruned = rollout(
        &config,
        &case.att,
        &case.prev,
        &case.inputs,
        &plugin,
        true,
        &world(&case),
    )
    .unwrap();
    assert!(
        pruned.iter().any(|op| op.to_string().contains("pref 900")),
        "{pruned:?}"
    );
    assert!(pending_with(&case, &config).is_empty());
}
