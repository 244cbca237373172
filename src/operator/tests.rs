//! Unit tests of operator.

use std::path::PathBuf;

use serde_json::json;

use super::*;
use crate::config::{parse_netconf, AllowedDirs};

#[test]
fn the_default_data_dir_is_the_one_a_config_without_data_dir_gets() {
    let config = parse_netconf(
        &json!({"cniVersion": "1.0.0", "type": "router",
        "overlay_hijack_subnet": ["10.244.0.0/16"], "service_hijack_subnet": ["10.96.0.0/12"]}),
        &AllowedDirs::default(),
    )
    .unwrap()
    .config;
    assert_eq!(config.data_dir, PathBuf::from(DEFAULT_DATA_DIR));
}
