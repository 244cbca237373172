//! Unit tests of model::record.

use super::*;

#[test]
fn a_record_written_before_inputs_were_kept_still_reads() {
    let old = r#"{"version":1,"container_id":"c1","ifname":"net1","table":100,
        "host_rule_table":500,"overlay_interface":"eth0","pod":{},"host":{}}"#;
    let record: Record = serde_json::from_str(old).unwrap();
    assert_eq!(record, Record::new("c1", "net1", 100, 500, "eth0"));
    let written = serde_json::to_value(&record).unwrap();
    assert!(written.get("inputs").is_none(), "{written}");
    assert!(written.get("rolled_out").is_none(), "{written}");
}

#[test]
fn a_rolled_out_config_survives_a_write_and_read() {
    let config = serde_json::json!({"cniVersion": "1.0.0", "name": "n", "type": "router",
                                    "overlay_hijack_subnet": ["10.244.0.0/16"]});
    let record = Record {
        rolled_out: Some(config.clone()),
        ..Record::new("c1", "net1", 100, 500, "eth0")
    };
    let back: Record = serde_json::from_str(&serde_json::to_string(&record).unwrap()).unwrap();
    assert_eq!(back.rolled_out, Some(config));
}

#[test]
fn add_inputs_keep_the_config_without_prev_result_and_the_prev_result_once() {
    let prev = serde_json::json!({"cniVersion": "1.0.0", "ips": [{"address": "192.0.2.2/24"}]});
    let stdin = serde_json::json!({"cniVersion": "1.0.0", "name": "n", "type": "router",
                                   "prevResult": prev});
    let inputs = AddInputs::new(Some(PathBuf::from("/run/netns/p")), &stdin);
    assert_eq!(
        inputs.config,
        serde_json::json!({"cniVersion": "1.0.0", "name": "n", "type": "router"})
    );
    assert_eq!(inputs.prev_result, prev);
    let record = Record {
        inputs: Some(inputs.clone()),
        ..Record::new("c1", "net1", 100, 500, "eth0")
    };
    let back: Record = serde_json::from_str(&serde_json::to_string(&record).unwrap()).unwrap();
    assert_eq!(back.inputs, Some(inputs));
}
