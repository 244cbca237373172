//! config: the plugin's network config (BEHAVIOUR section 1) and the typed view of
//! prevResult, parsed and validated up front. Every rejection is code 7 naming the key and
//! the bad value. Pure: no env, no files, no kernel. This file holds `Config`, the parsing
//! entry and conflist extraction; the keys, log options, allowed directories, prevResult
//! and DEL/GC's salvage each have their own file.

mod allowed;
mod keys;
mod log;
mod prev;
mod salvage;
mod value;
mod version;

use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;
use serde_json::{Map, Value};

use crate::error::{Error, Result};

pub use allowed::{default_data_dir, AllowedDirs, ALLOWED_DIRS_VAR};
pub use keys::{is_valid_ifname, parse_duration, IpConflict, MigrateRoute, RpFilter};
pub use log::{LogLevel, LogOptions};
pub use prev::{PrevInterface, PrevIp, PrevView};
pub use salvage::{path_error, salvage};
pub use version::{CniVersion, SUPPORTED_VERSIONS};

use allowed::parse_data_dir;
use keys::{
    parse_hijack_subnets, parse_ip_conflict, parse_mac_prefix, parse_migrate_route,
    parse_overlay_interface, parse_overlay_wait, parse_rp_filter, priority, table,
    DEFAULT_HOST_RULE_TABLE, RESERVED_TABLES,
};
use log::parse_log_options;
use value::{boolean, json_type, optional_string};
use version::parse_cni_version;

/// The validated plugin config.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    pub cni_version: CniVersion,
    pub name: Option<String>,
    pub overlay_hijack_subnet: Vec<IpNet>,
    pub service_hijack_subnet: Vec<IpNet>,
    pub additional_hijack_subnet: Vec<IpNet>,
    pub migrate_route: MigrateRoute,
    pub overlay_interface: String,
    pub host_rule_table: u32,
    pub route_table: Option<u32>,
    pub rule_priority: u32,
    pub host_rule_priority: u32,
    pub skip_call: bool,
    pub sriov: bool,
    pub rp_filter: RpFilter,
    pub mac_prefix: Option<[u8; 2]>,
    pub only_op_mac: bool,
    pub ip_conflict: IpConflict,
    /// How long ADD waits for the overlay interface to be ready before code 104.
    pub overlay_wait: Duration,
    pub log_options: LogOptions,
    pub data_dir: PathBuf,
    /// The allowed directory `data_dir` lies in: below it no component may be a symlink.
    pub data_root: PathBuf,
    /// Accepted but worth an operator's attention (logged).
    pub warnings: Vec<String>,
}

/// A parsed stdin: the config, prevResult kept verbatim for output, and its typed view.
#[derive(Clone, Debug)]
pub struct NetConf {
    pub config: Config,
    pub prev_result: Option<Value>,
}

/// Parses a plugin config object (what a runtime sends on stdin); the paths it names must
/// lie in `allowed`.
pub fn parse_netconf(value: &Value, allowed: &AllowedDirs) -> Result<NetConf> {
    let obj = config_object(value)?;
    let config = parse_config(obj, allowed)?;
    let prev_result = obj.get("prevResult").filter(|v| !v.is_null()).cloned();
    Ok(NetConf {
        config,
        prev_result,
    })
}

/// The config a run acts with when the attachment's record holds a rolled-out one
/// (`router rollout`; docs/decisions/rollout-config-wins.md): the rolled-out config, except
/// what the run was given for itself: the cniVersion its result must echo, the log it has
/// already opened, and the data_dir its record was found in.
pub fn rolled_out_wins(
    given: Config,
    rolled_out: Option<&Value>,
    allowed: &AllowedDirs,
) -> Result<Config> {
    let Some(value) = rolled_out else {
        return Ok(given);
    };
    let rolled = parse_netconf(value, allowed)
        .map_err(|e| Error::Decode {
            what: "the config rolled out to this attachment (in its record)".into(),
            reason: e.to_string(),
        })?
        .config;
    Ok(Config {
        cni_version: given.cni_version,
        log_options: given.log_options,
        data_dir: given.data_dir,
        data_root: given.data_root,
        ..rolled
    })
}

/// `router plan --config` takes a plugin object or a whole conflist: from a conflist the
/// `router` entry is used, with the list's `name` and `cniVersion`.
pub fn plugin_from_conflist_or_plugin(value: Value) -> Result<Value> {
    let Some(plugins) = value.get("plugins") else {
        return Ok(value);
    };
    let list = plugins
        .as_array()
        .ok_or_else(|| Error::config("plugins", plugins, "must be a list of plugin objects"))?;
    let mut plugin = list
        .iter()
        .find(|p| p.get("type").and_then(Value::as_str) == Some("router"))
        .cloned()
        .ok_or_else(|| Error::config("plugins", "[...]", "the conflist has no \"router\" entry"))?;
    if let Some(obj) = plugin.as_object_mut() {
        for key in ["name", "cniVersion"] {
            if let Some(v) = value.get(key) {
                obj.insert(key.to_string(), v.clone());
            }
        }
    }
    Ok(plugin)
}

fn config_object(value: &Value) -> Result<&Map<String, Value>> {
    value.as_object().ok_or_else(|| Error::Decode {
        what: "network config".into(),
        reason: format!("expected a JSON object, got {}", json_type(value)),
    })
}

/// The config's `cniVersion` alone, so that version errors (code 1) are answered before
/// the errors of other keys.
pub fn parse_version(value: &Value) -> Result<CniVersion> {
    parse_cni_version(config_object(value)?)
}

fn parse_config(obj: &Map<String, Value>, allowed: &AllowedDirs) -> Result<Config> {
    let cni_version = parse_cni_version(obj)?;
    let name = optional_string(obj, "name")?;
    let mut warnings = Vec::new();
    let (overlay, service, additional) = parse_hijack_subnets(obj)?;
    let host_rule_table = table(obj, "host_rule_table")?.unwrap_or(DEFAULT_HOST_RULE_TABLE);
    let route_table = table(obj, "route_table")?;
    if route_table == Some(host_rule_table) {
        return Err(Error::config(
            "route_table",
            host_rule_table,
            "must differ from host_rule_table",
        ));
    }
    let mac_prefix = parse_mac_prefix(obj, &mut warnings)?;
    let only_op_mac = boolean(obj, "only_op_mac", false)?;
    let (data_dir, data_root) = parse_data_dir(obj, allowed)?;
    if only_op_mac && mac_prefix.is_none() {
        return Err(Error::config(
            "only_op_mac",
            true,
            "needs mac_prefix to be set",
        ));
    }
    Ok(Config {
        cni_version,
        name,
        overlay_hijack_subnet: overlay,
        service_hijack_subnet: service,
        additional_hijack_subnet: additional,
        migrate_route: parse_migrate_route(obj)?,
        overlay_interface: parse_overlay_interface(obj)?,
        host_rule_table,
        route_table,
        rule_priority: priority(obj, "rule_priority")?,
        host_rule_priority: priority(obj, "host_rule_priority")?,
        skip_call: boolean(obj, "skip_call", false)?,
        sriov: boolean(obj, "sriov", false)?,
        rp_filter: parse_rp_filter(obj)?,
        mac_prefix,
        only_op_mac,
        ip_conflict: parse_ip_conflict(obj)?,
        overlay_wait: parse_overlay_wait(obj)?,
        log_options: parse_log_options(obj, allowed)?,
        data_dir,
        data_root,
        warnings,
    })
}

impl Config {
    /// The pod table for the chained interface: `route_table`, else 100 + N - 1 for a name
    /// ending in the number N.
    pub fn table_for(&self, ifname: &str) -> Result<u32> {
        if let Some(t) = self.route_table {
            return Ok(t);
        }
        let digits = ifname.len() - ifname.trim_end_matches(|c: char| c.is_ascii_digit()).len();
        let derived = ifname[ifname.len() - digits..]
            .parse::<u64>()
            .ok()
            .filter(|_| digits > 0)
            .map(|n| n + 99)
            .and_then(|t| u32::try_from(t).ok())
            .filter(|t| !RESERVED_TABLES.contains(&i64::from(*t)) && *t != self.host_rule_table);
        derived.ok_or_else(|| {
            Error::config(
                "route_table",
                "<unset>",
                format!(
                    "cannot derive a table from interface name {ifname:?} (it must end in a number N giving table 100+N-1, not reserved and not host_rule_table); set route_table"
                ),
            )
        })
    }

    /// Every hijack CIDR, in config order.
    pub fn hijack_subnets(&self) -> impl Iterator<Item = &IpNet> {
        self.overlay_hijack_subnet
            .iter()
            .chain(&self.service_hijack_subnet)
            .chain(&self.additional_hijack_subnet)
    }
}

#[cfg(test)]
mod tests;
