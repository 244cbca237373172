//! Unit tests of rollout::source.

use serde_json::json;

use super::*;
use crate::error::Code;

const CONFLIST: &str = r#"{"cniVersion": "1.0.0", "name": "macvlan-net1", "plugins": [
    {"type": "macvlan", "master": "eth0"},
    {"type": "router", "overlay_hijack_subnet": ["10.244.0.0/16"],
     "service_hijack_subnet": ["10.96.0.0/12"]}]}"#;

fn expected() -> Source {
    Source {
        plugin: json!({"cniVersion": "1.0.0", "name": "macvlan-net1", "type": "router",
                       "overlay_hijack_subnet": ["10.244.0.0/16"],
                       "service_hijack_subnet": ["10.96.0.0/12"]}),
        network: "macvlan-net1".into(),
    }
}

fn nad_json() -> Value {
    json!({"apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
           "metadata": {"name": "macvlan-net1", "namespace": "default"},
           "spec": {"config": CONFLIST}})
}

#[test]
fn a_conflist_a_nad_in_json_and_a_nad_in_yaml_give_the_same_source() {
    assert_eq!(Source::parse(CONFLIST).unwrap(), expected());
    let json_nad = serde_json::to_string_pretty(&nad_json()).unwrap();
    assert_eq!(Source::parse(&json_nad).unwrap(), expected());
    let yaml_nad = serde_norway::to_string(&nad_json()).unwrap();
    assert!(
        yaml_nad.contains("kind: NetworkAttachmentDefinition"),
        "{yaml_nad}"
    );
    assert_eq!(Source::parse(&yaml_nad).unwrap(), expected());
}

#[test]
fn a_plugin_object_is_taken_as_it_is_without_its_prev_result() {
    let mut plugin = expected().plugin;
    plugin["prevResult"] = json!({"cniVersion": "1.0.0"});
    let source = Source::parse(&plugin.to_string()).unwrap();
    assert_eq!(source, expected());
}

#[test]
fn a_config_without_a_name_takes_the_nads_name() {
    let mut nad = nad_json();
    let conflist = CONFLIST.replace(r#""name": "macvlan-net1", "#, "");
    nad["spec"]["config"] = json!(conflist);
    nad["metadata"]["name"] = json!("from-nad");
    let source = Source::parse(&nad.to_string()).unwrap();
    assert_eq!(source.network, "from-nad");
    assert_eq!(source.plugin["name"], "from-nad");
}

#[test]
fn a_config_rolled_out_to_another_network_carries_that_networks_name() {
    let other = expected().for_network("macvlan-net2");
    assert_eq!(other.network, "macvlan-net2");
    assert_eq!(other.plugin["name"], "macvlan-net2");
    assert_eq!(other.plugin["type"], "router");
}

#[test]
fn no_router_entry_no_name_or_garbage_is_refused_saying_why() {
    let no_router = r#"{"name": "n", "plugins": [{"type": "macvlan"}]}"#;
    let e = Source::parse(no_router).unwrap_err();
    assert_eq!(e.code(), Code::InvalidConfig, "{e}");
    let other = r#"{"name": "n", "type": "bridge"}"#;
    assert!(Source::parse(other)
        .unwrap_err()
        .to_string()
        .contains("router"));
    let unnamed = r#"{"type": "router"}"#;
    assert!(Source::parse(unnamed)
        .unwrap_err()
        .to_string()
        .contains("name"));
    let garbage = "{ not: [json";
    let e = Source::parse(garbage).unwrap_err();
    assert_eq!(e.code(), Code::Decode, "{e}");
    let mut bad_nad = nad_json();
    bad_nad["spec"]["config"] = json!("{");
    assert_eq!(
        Source::parse(&bad_nad.to_string()).unwrap_err().code(),
        Code::Decode
    );
}
