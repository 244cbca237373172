//! config tests: every key's default, value and rejection.

use std::time::Duration;

use serde_json::json;

use super::allowed::DEFAULT_DATA_DIR;
use super::log::DEFAULT_LOG_FILE;
use super::*;
use crate::error::Code;

/// The SEED.md example, as a base every row patches.
fn base() -> Value {
    json!({
        "cniVersion": "0.3.1",
        "name": "macvlan-overlay",
        "type": "router",
        "overlay_interface": "eth0",
        "migrate_route": -1,
        "skip_call": false,
        "service_hijack_subnet": ["172.96.0.0/18", "2001:4860:fd00::/108"],
        "overlay_hijack_subnet": ["10.240.0.0/12", "fd00:10:244::/96"],
        "additional_hijack_subnet": [],
        "rp_filter": { "set_host": true, "value": 0 },
        "log_options": { "log_level": "debug", "log_file": "/var/log/meta-plugins/router.log" },
        "ip_conflict": { "enabled": true, "interval": "1s", "retries": 5 },
        "mac_prefix": "0a:0b"
    })
}

/// Applies `patch` (top-level keys; null removes a key) to the base config.
fn with(patch: Value) -> Value {
    let mut config = base();
    if let (Some(obj), Some(patch)) = (config.as_object_mut(), patch.as_object()) {
        for (k, v) in patch {
            if v.is_null() {
                obj.remove(k);
            } else {
                obj.insert(k.clone(), v.clone());
            }
        }
    }
    config
}

fn parse(value: Value) -> Result<Config> {
    parse_netconf(&value, &AllowedDirs::default()).map(|n| n.config)
}

#[test]
fn seed_example_parses_with_documented_values() {
    let c = parse(base()).unwrap();
    assert_eq!(c.cni_version, CniVersion(0, 3, 1));
    assert_eq!(c.migrate_route, MigrateRoute::Auto);
    assert_eq!(c.overlay_interface, "eth0");
    assert_eq!(c.host_rule_table, 500);
    assert_eq!(c.rule_priority, 1000);
    assert_eq!(c.host_rule_priority, 1000);
    assert_eq!(
        c.rp_filter,
        RpFilter {
            set_host: true,
            value: 0
        }
    );
    assert_eq!(c.mac_prefix, Some([0x0a, 0x0b]));
    assert_eq!(c.ip_conflict.interval, Duration::from_secs(1));
    assert_eq!(c.ip_conflict.retries, 5);
    assert_eq!(c.log_options.level, LogLevel::Debug);
    assert_eq!(c.data_dir, PathBuf::from("/run/cni/router"));
    assert_eq!(c.overlay_hijack_subnet.len(), 2);
    assert!(c.warnings.is_empty());
}

#[test]
fn defaults_apply_when_optional_keys_are_absent() {
    let c = parse(json!({
        "cniVersion": "1.0.0",
        "overlay_hijack_subnet": ["10.244.0.0/16"],
        "service_hijack_subnet": []
    }))
    .unwrap();
    assert_eq!(c.migrate_route, MigrateRoute::Auto);
    assert_eq!(c.overlay_interface, "eth0");
    assert_eq!(
        c.rp_filter,
        RpFilter {
            set_host: true,
            value: 2
        }
    );
    assert_eq!(c.mac_prefix, None);
    assert!(!c.ip_conflict.enabled);
    assert!(!c.skip_call && !c.sriov && !c.only_op_mac);
    assert_eq!(
        c.log_options.file,
        PathBuf::from("/var/log/meta-plugins/router.log")
    );
    assert_eq!(c.log_options.max_size_mb, 100);
    assert_eq!(c.additional_hijack_subnet, Vec::<IpNet>::new());
}

#[test]
fn unknown_keys_are_ignored() {
    assert!(parse(with(
        json!({"runtimeConfig": {"x": 1}, "some_future_key": [1, 2]})
    ))
    .is_ok());
}

#[test]
fn ip_conflict_settings_are_not_validated_when_disabled() {
    let c = parse(with(
        json!({"ip_conflict": {"enabled": false, "interval": "soon", "retries": 0}}),
    ))
    .unwrap();
    assert!(!c.ip_conflict.enabled);
}

#[test]
fn accepted_values_parse() {
    let rows = [
        json!({"migrate_route": 0}),
        json!({"migrate_route": 1}),
        json!({"overlay_hijack_subnet": []}),
        json!({"service_hijack_subnet": []}),
        json!({"host_rule_table": 4294967295u64}),
        json!({"route_table": 1}),
        json!({"rule_priority": 32765, "host_rule_priority": 1}),
        json!({"mac_prefix": ""}),
        json!({"mac_prefix": "AA:bb"}),
        json!({"ip_conflict": {"enabled": true, "interval": "100ms", "retries": 100}}),
        json!({"ip_conflict": {"enabled": true, "interval": "1.5s"}}),
        json!({"log_options": {"log_level": "WARN"}}),
        json!({"rp_filter": {"value": 1}}),
        json!({"overlay_interface": "cali12345abcdef"}),
        json!({"data_dir": "/var/run/router"}),
        json!({"cniVersion": "1.1.0"}),
        json!({"cniVersion": "0.3.0"}),
    ];
    for row in rows {
        assert!(parse(with(row.clone())).is_ok(), "{row}");
    }
}

/// One row per rejection rule of BEHAVIOUR section 1 and per config row of section 9:
/// (patch, key named in the message, value named in the message).
#[test]
fn every_rejected_value_is_code_7_naming_key_and_value() {
    let rows: Vec<(Value, &str, &str)> = vec![
        (
            json!({"overlay_hijack_subnet": null}),
            "overlay_hijack_subnet",
            "<missing>",
        ),
        (
            json!({"service_hijack_subnet": null}),
            "service_hijack_subnet",
            "<missing>",
        ),
        (
            json!({"overlay_hijack_subnet": [], "service_hijack_subnet": []}),
            "overlay_hijack_subnet",
            "[]",
        ),
        (
            json!({"overlay_hijack_subnet": ["10.244.1.0/16"]}),
            "overlay_hijack_subnet",
            "\"10.244.1.0/16\"",
        ),
        (
            json!({"service_hijack_subnet": ["10.96.0.1/12"]}),
            "service_hijack_subnet",
            "\"10.96.0.1/12\"",
        ),
        (
            json!({"overlay_hijack_subnet": ["10.244.0.0"]}),
            "overlay_hijack_subnet",
            "\"10.244.0.0\"",
        ),
        (
            json!({"overlay_hijack_subnet": ["fd00::/200"]}),
            "overlay_hijack_subnet",
            "\"fd00::/200\"",
        ),
        (
            json!({"overlay_hijack_subnet": [42]}),
            "overlay_hijack_subnet",
            "42",
        ),
        (
            json!({"overlay_hijack_subnet": "10.244.0.0/16"}),
            "overlay_hijack_subnet",
            "\"10.244.0.0/16\"",
        ),
        (
            json!({"overlay_hijack_subnet": ["10.240.0.0/12", "10.240.0.0/12"]}),
            "overlay_hijack_subnet",
            "\"10.240.0.0/12\"",
        ),
        (
            json!({"additional_hijack_subnet": ["10.240.0.0/12"]}),
            "additional_hijack_subnet",
            "\"10.240.0.0/12\"",
        ),
        (
            json!({"additional_hijack_subnet": ["192.168.1.1/24"]}),
            "additional_hijack_subnet",
            "\"192.168.1.1/24\"",
        ),
        (
            json!({"additional_hijack_subnet": ["not-a-cidr"]}),
            "additional_hijack_subnet",
            "\"not-a-cidr\"",
        ),
        (json!({"migrate_route": 2}), "migrate_route", "2"),
        (json!({"migrate_route": -2}), "migrate_route", "-2"),
        (json!({"migrate_route": "1"}), "migrate_route", "\"1\""),
        (json!({"migrate_route": 1.5}), "migrate_route", "1.5"),
        (
            json!({"overlay_interface": ""}),
            "overlay_interface",
            "\"\"",
        ),
        (
            json!({"overlay_interface": "a-very-long-interface"}),
            "overlay_interface",
            "\"a-very-long-interface\"",
        ),
        (
            json!({"overlay_interface": "eth/0"}),
            "overlay_interface",
            "\"eth/0\"",
        ),
        (
            json!({"overlay_interface": "eth 0"}),
            "overlay_interface",
            "\"eth 0\"",
        ),
        (
            json!({"overlay_interface": ".."}),
            "overlay_interface",
            "\"..\"",
        ),
        (json!({"overlay_interface": 0}), "overlay_interface", "0"),
        (json!({"host_rule_table": 0}), "host_rule_table", "0"),
        (json!({"host_rule_table": 253}), "host_rule_table", "253"),
        (json!({"host_rule_table": 254}), "host_rule_table", "254"),
        (json!({"host_rule_table": 255}), "host_rule_table", "255"),
        (
            json!({"host_rule_table": 4294967296u64}),
            "host_rule_table",
            "4294967296",
        ),
        (json!({"host_rule_table": -1}), "host_rule_table", "-1"),
        (json!({"route_table": 254}), "route_table", "254"),
        (json!({"route_table": 500}), "route_table", "500"),
        (json!({"route_table": 0}), "route_table", "0"),
        (json!({"rule_priority": 0}), "rule_priority", "0"),
        (json!({"rule_priority": 32766}), "rule_priority", "32766"),
        (
            json!({"host_rule_priority": 40000}),
            "host_rule_priority",
            "40000",
        ),
        (json!({"skip_call": "false"}), "skip_call", "\"false\""),
        (json!({"sriov": 1}), "sriov", "1"),
        (
            json!({"rp_filter": {"set_host": true, "value": 3}}),
            "rp_filter.value",
            "3",
        ),
        (
            json!({"rp_filter": {"set_host": false, "value": 7}}),
            "rp_filter.value",
            "7",
        ),
        (
            json!({"rp_filter": {"set_host": "yes"}}),
            "rp_filter.set_host",
            "\"yes\"",
        ),
        (json!({"rp_filter": 0}), "rp_filter", "0"),
        (
            json!({"mac_prefix": "0a:0b:0c"}),
            "mac_prefix",
            "\"0a:0b:0c\"",
        ),
        (json!({"mac_prefix": "0a0b"}), "mac_prefix", "\"0a0b\""),
        (json!({"mac_prefix": "-a:0b"}), "mac_prefix", "\"-a:0b\""),
        (json!({"mac_prefix": "zz:0b"}), "mac_prefix", "\"zz:0b\""),
        (json!({"mac_prefix": "01:0b"}), "mac_prefix", "\"01:0b\""),
        (
            json!({"mac_prefix": "", "only_op_mac": true}),
            "only_op_mac",
            "true",
        ),
        (
            json!({"mac_prefix": null, "only_op_mac": true}),
            "only_op_mac",
            "true",
        ),
        (
            json!({"ip_conflict": {"enabled": true, "interval": "soon"}}),
            "ip_conflict.interval",
            "\"soon\"",
        ),
        (
            json!({"ip_conflict": {"enabled": true, "interval": "0s"}}),
            "ip_conflict.interval",
            "\"0s\"",
        ),
        (
            json!({"ip_conflict": {"enabled": true, "interval": "1"}}),
            "ip_conflict.interval",
            "\"1\"",
        ),
        (
            json!({"ip_conflict": {"enabled": true, "interval": "1h"}}),
            "ip_conflict.interval",
            "\"1h\"",
        ),
        (
            json!({"ip_conflict": {"enabled": true, "retries": 0}}),
            "ip_conflict.retries",
            "0",
        ),
        (
            json!({"ip_conflict": {"enabled": true, "retries": 101}}),
            "ip_conflict.retries",
            "101",
        ),
        (
            json!({"ip_conflict": {"enabled": "true"}}),
            "ip_conflict.enabled",
            "\"true\"",
        ),
        (
            json!({"log_options": {"log_level": "verbose"}}),
            "log_options.log_level",
            "\"verbose\"",
        ),
        (
            json!({"log_options": {"log_file": ""}}),
            "log_options.log_file",
            "\"\"",
        ),
        (
            json!({"log_options": {"log_max_size": 0}}),
            "log_options.log_max_size",
            "0",
        ),
        (
            json!({"data_dir": "relative/dir"}),
            "data_dir",
            "\"relative/dir\"",
        ),
        (json!({"cniVersion": null}), "cniVersion", "<missing>"),
        (json!({"name": 5}), "name", "5"),
    ];
    for (patch, key, value) in rows {
        let err = parse(with(patch.clone())).expect_err(&patch.to_string());
        assert_eq!(err.code(), Code::InvalidConfig, "{patch}: {err}");
        let msg = err.to_string();
        assert!(msg.contains(&format!("{key} = {value}")), "{patch}: {msg}");
    }
}

#[test]
fn unsupported_cni_version_is_code_1() {
    let err = parse(with(json!({"cniVersion": "0.2.0"}))).unwrap_err();
    assert_eq!(err.code(), Code::IncompatibleVersion);
    assert!(err.to_string().contains("0.2.0"));
}

#[test]
fn a_non_object_config_is_undecodable() {
    let err = parse(json!([1, 2])).unwrap_err();
    assert_eq!(err.code(), Code::Decode);
}

#[test]
fn non_locally_administered_prefix_is_accepted_with_a_warning() {
    let c = parse(with(json!({"mac_prefix": "00:0b"}))).unwrap();
    assert_eq!(c.mac_prefix, Some([0, 0x0b]));
    assert_eq!(c.warnings.len(), 1);
}

#[test]
fn table_is_derived_from_the_interface_number() {
    let c = parse(with(json!({}))).unwrap();
    assert_eq!(c.table_for("net1").unwrap(), 100);
    assert_eq!(c.table_for("net2").unwrap(), 101);
    assert_eq!(c.table_for("net10").unwrap(), 109);
    let explicit = parse(with(json!({"route_table": 7000}))).unwrap();
    assert_eq!(explicit.table_for("macvlan").unwrap(), 7000);
}

#[test]
fn table_cannot_be_derived_from_a_name_without_number_or_onto_reserved_tables() {
    let c = parse(with(json!({}))).unwrap();
    for name in ["macvlan", "net154", "net401", "net99999999999999999999"] {
        let err = c.table_for(name).unwrap_err();
        assert_eq!(err.code(), Code::InvalidConfig, "{name}");
        assert!(err.to_string().contains("set route_table"), "{name}: {err}");
    }
}

#[test]
fn go_durations_parse() {
    assert_eq!(parse_duration("1s"), Some(Duration::from_secs(1)));
    assert_eq!(parse_duration("100ms"), Some(Duration::from_millis(100)));
    assert_eq!(parse_duration("1m30s"), Some(Duration::from_secs(90)));
    assert_eq!(parse_duration("1.5s"), Some(Duration::from_millis(1500)));
    for bad in ["", "1", "s", "1x", "-1s", "1..2s"] {
        assert_eq!(parse_duration(bad), None, "{bad}");
    }
}

#[test]
fn conflist_yields_the_router_entry_with_list_name_and_version() {
    let list = json!({
        "cniVersion": "1.0.0",
        "name": "macvlan-overlay",
        "plugins": [{"type": "macvlan"}, {"type": "router", "overlay_hijack_subnet": []}]
    });
    let plugin = plugin_from_conflist_or_plugin(list).unwrap();
    assert_eq!(plugin["type"], "router");
    assert_eq!(plugin["name"], "macvlan-overlay");
    assert_eq!(plugin["cniVersion"], "1.0.0");
    let none = json!({"plugins": [{"type": "macvlan"}]});
    assert_eq!(
        plugin_from_conflist_or_plugin(none).unwrap_err().code(),
        Code::InvalidConfig
    );
}

fn prev(value: Value) -> Result<PrevView> {
    PrevView::parse(&value)
}

#[test]
fn chained_addresses_come_from_its_sandbox_interface_and_unindexed_ips() {
    let view = prev(json!({
        "interfaces": [{"name": "net1", "sandbox": "/var/run/netns/p"}, {"name": "net1"}, {"name": "eth0", "sandbox": "/x"}],
        "ips": [
            {"address": "192.168.50.10/24", "interface": 0},
            {"address": "192.168.60.10/24", "interface": 1},
            {"address": "10.0.0.1/8", "interface": 2},
            {"address": "fd50::10/64"}
        ]
    }))
    .unwrap();
    let addrs: Vec<String> = view
        .addresses_of("net1")
        .iter()
        .map(|a| a.to_string())
        .collect();
    assert_eq!(addrs, ["192.168.50.10/24", "fd50::10/64"]);
}

#[test]
fn invalid_prev_results_are_code_7() {
    let rows = [
        json!({"interfaces": [{"name": "net1"}], "ips": [{"address": "10.0.0.1/24", "interface": 1}]}),
        json!({"interfaces": [], "ips": [{"address": "10.0.0.1/24", "interface": -1}]}),
        json!({"ips": [{"address": "10.0.0.1"}]}),
        json!({"ips": [{"address": 5}]}),
        json!({"ips": [{"address": "10.0.0.1/24", "gateway": "x"}]}),
        json!({"interfaces": [{"mac": "aa"}]}),
        json!({"interfaces": {}}),
        json!("result"),
    ];
    for row in rows {
        let err = prev(row.clone()).unwrap_err();
        assert_eq!(err.code(), Code::InvalidConfig, "{row}");
        assert!(
            err.to_string().starts_with("invalid prevResult"),
            "{row}: {err}"
        );
    }
}

fn with_paths(data_dir: &str, log_file: &str) -> Value {
    with(json!({"data_dir": data_dir, "log_options": {"log_file": log_file}}))
}

#[test]
fn paths_are_judged_inside_the_allowed_directories_component_by_component() {
    let defaults = AllowedDirs::default();
    let c = parse(with_paths(
        "/var/run/./cni//router",
        "/var/log/router/x.log",
    ))
    .unwrap();
    assert_eq!(c.data_dir, PathBuf::from("/var/run/cni/router"));
    assert_eq!(c.data_root, PathBuf::from("/var/run"));
    assert_eq!(c.log_options.root, PathBuf::from("/var/log"));
    for (data_dir, log_file, key) in [
        ("/etc/router", "/var/log/router.log", "data_dir"),
        ("/runx/router", "/var/log/router.log", "data_dir"),
        ("/run", "/var/log/router.log", "data_dir"),
        ("/run/../etc", "/var/log/router.log", "data_dir"),
        ("/run/router", "/etc/shadow", "log_options.log_file"),
        (
            "/run/router",
            "/var/logs/router.log",
            "log_options.log_file",
        ),
        ("/run/router", "/var/log", "log_options.log_file"),
        ("/run/router", "/var/log/", "log_options.log_file"),
        (
            "/run/router",
            "/var/log/../../etc/shadow",
            "log_options.log_file",
        ),
        ("/run/router", "router.log", "log_options.log_file"),
    ] {
        let err = parse_netconf(&with_paths(data_dir, log_file), &defaults)
            .map(|_| ())
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidConfig, "{data_dir} {log_file}");
        assert!(err.to_string().contains(key), "{err}");
    }
    let outside = parse(with_paths("/srv/router", "/var/log/r.log")).unwrap_err();
    assert!(
        outside.to_string().contains("/run, /var/run")
            && outside.to_string().contains(ALLOWED_DIRS_VAR),
        "{outside}"
    );
}

#[test]
fn router_allowed_dirs_adds_absolute_directories_and_ignores_the_rest() {
    let allowed = AllowedDirs::from_var(Some("/srv/r:relative:/srv/r/deep:/x/../y::"));
    assert_eq!(allowed.ignored, vec!["relative", "/x/../y"]);
    let c = parse_netconf(
        &with_paths("/srv/r/deep/data", "/srv/r/logs/r.log"),
        &allowed,
    )
    .unwrap()
    .config;
    assert_eq!(
        c.data_root,
        PathBuf::from("/srv/r/deep"),
        "the deepest root holds it"
    );
    assert_eq!(c.log_options.root, PathBuf::from("/srv/r"));
    assert!(parse_netconf(&with_paths("/srv/rx", "/var/log/r.log"), &allowed).is_err());
    assert_eq!(AllowedDirs::from_var(None), AllowedDirs::default());
}

#[test]
fn salvage_keeps_the_keys_that_are_valid_on_their_own_and_defaults_the_rest() {
    let allowed = AllowedDirs::default();
    let mut conf = with(json!({
        "service_hijack_subnet": ["172.96.0.1/18"],
        "host_rule_priority": 2000,
        "data_dir": "/run/other",
        "log_options": {"log_file": "/etc/shadow"}
    }));
    assert!(parse_netconf(&conf, &allowed).is_err());
    let c = salvage(&conf, &allowed);
    assert_eq!(c.name.as_deref(), Some("macvlan-overlay"));
    assert_eq!(c.host_rule_priority, 2000);
    assert_eq!(c.data_dir, PathBuf::from("/run/other"));
    assert_eq!(c.log_options.file, PathBuf::from(DEFAULT_LOG_FILE));
    assert!(c.hijack_subnets().next().is_none() && !c.skip_call);
    assert!(path_error(&conf, &allowed).is_some_and(|e| e.to_string().contains("log_file")));
    conf["data_dir"] = json!("/etc");
    assert_eq!(
        salvage(&conf, &allowed).data_dir,
        PathBuf::from(DEFAULT_DATA_DIR)
    );
    assert_eq!(
        salvage(&json!("not an object"), &allowed).data_dir,
        PathBuf::from(DEFAULT_DATA_DIR)
    );
}
