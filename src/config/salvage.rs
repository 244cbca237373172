//! config::salvage: what DEL and GC use of a config that is not valid, and the path keys
//! GC refuses even then. Must not reject: every other key falls back to its default.

use serde_json::{Map, Value};

use super::allowed::{default_data_dir, parse_data_dir, parse_log_file};
use super::keys::{
    priority, DEFAULT_HOST_RULE_TABLE, DEFAULT_OVERLAY_INTERFACE, DEFAULT_OVERLAY_WAIT,
    DEFAULT_PRIORITY,
};
use super::log::{default_log_options, parse_log_options};
use super::value::{object, optional_string};
use super::version::parse_cni_version;
use super::{AllowedDirs, CniVersion, Config, IpConflict, MigrateRoute, RpFilter};
use crate::error::Error;

/// What DEL and GC can still use of a config that is not valid (BEHAVIOUR: DEL never fails
/// on input it cannot use): `name`, `cniVersion`, `host_rule_priority`, `log_options` and
/// `data_dir` when each is valid on its own, defaults for the rest. It wants nothing
/// (no hijack subnets): DEL and GC then act only on what the records prove.
pub fn salvage(value: &Value, allowed: &AllowedDirs) -> Config {
    let empty = Map::new();
    let obj = value.as_object().unwrap_or(&empty);
    let (data_dir, data_root) = parse_data_dir(obj, allowed).unwrap_or_else(|_| default_data_dir());
    Config {
        cni_version: parse_cni_version(obj).unwrap_or(CniVersion(1, 1, 0)),
        name: optional_string(obj, "name").ok().flatten(),
        overlay_hijack_subnet: Vec::new(),
        service_hijack_subnet: Vec::new(),
        additional_hijack_subnet: Vec::new(),
        migrate_route: MigrateRoute::Auto,
        overlay_interface: DEFAULT_OVERLAY_INTERFACE.into(),
        host_rule_table: DEFAULT_HOST_RULE_TABLE,
        route_table: None,
        rule_priority: DEFAULT_PRIORITY,
        host_rule_priority: priority(obj, "host_rule_priority").unwrap_or(DEFAULT_PRIORITY),
        skip_call: false,
        sriov: false,
        rp_filter: RpFilter::default(),
        mac_prefix: None,
        only_op_mac: false,
        ip_conflict: IpConflict::default(),
        overlay_wait: DEFAULT_OVERLAY_WAIT,
        log_options: parse_log_options(obj, allowed).unwrap_or_else(|_| default_log_options()),
        data_dir,
        data_root,
        warnings: Vec::new(),
    }
}

/// The first path key of the config (`data_dir`, `log_options.log_file`) that names a file
/// outside the allowed directories, or is no valid path: GC refuses these (code 7) even
/// when it goes on past other invalid keys.
pub fn path_error(value: &Value, allowed: &AllowedDirs) -> Option<Error> {
    let obj = value.as_object()?;
    if let Err(e) = parse_data_dir(obj, allowed) {
        return Some(e);
    }
    let inner = object(obj, "log_options").ok().flatten()?;
    parse_log_file(inner, allowed).err()
}
