//! The attachment record (BEHAVIOUR 6): what one ADD owns and what it replaced.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{Family, MacAddr, NetnsIdentity, NetnsState, Route, SysctlKey};

/// The previous default interface and the routes that moved from main for one family, fixed
/// by the first ADD: after the move, main no longer shows the previous default route, so
/// later runs compile from this.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Moved {
    pub interface: String,
    /// The previous default interface's main-table routes as they were, copied into the pod
    /// table.
    pub routes: Vec<Route>,
    /// The subset ADD removed from main (the previous default route's hops); DEL puts them
    /// back.
    #[serde(default)]
    pub removed_from_main: Vec<Route>,
}

/// The attachment record (BEHAVIOUR 6): what one ADD owns and what it replaced, so that
/// CHECK and DEL compile from facts the kernel no longer shows.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub version: u32,
    pub container_id: String,
    pub ifname: String,
    /// The network (the config's `name`) the attachment belongs to: GC collects only the
    /// records of the network it was called for, since data_dir may be shared by several.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    pub table: u32,
    pub host_rule_table: u32,
    pub overlay_interface: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_peer: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub moved: BTreeMap<Family, Moved>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_mac: Option<MacAddr>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub original_sysctls: BTreeMap<SysctlKey, i64>,
    /// The owned objects ADD wants present, per netns.
    #[serde(default)]
    pub pod: NetnsState,
    #[serde(default)]
    pub host: NetnsState,
    /// What the ADD ran with; absent in records written before router kept it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inputs: Option<AddInputs>,
    /// The netns ADD saw as the node. A command run from another netns would plan the
    /// node's side against the wrong one, so it refuses. Absent in older records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_netns: Option<NetnsIdentity>,
    /// The node addresses ADD saw: a host-address route that is missing later is due to
    /// an address added since only when that address is not among these. Absent in older
    /// records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_addresses: Option<BTreeSet<IpAddr>>,
    /// The plugin config `router rollout` last applied to this live attachment (without
    /// prevResult). While present it wins over the config a runtime sends (its cache still
    /// holds the ADD-time one) and over the cached one, for every run that acts on this
    /// attachment (docs/decisions/rollout-config-wins.md). Absent until a rollout, and in
    /// records written before router could roll out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rolled_out: Option<serde_json::Value>,
}

/// What an ADD ran with, so that `router check --all` can check the attachment when the
/// runtime's result cache has no entry for it, or one without the netns (libcni before
/// 1.2 writes none). The plugin config is kept without its prevResult (stored once, as
/// `prev_result`): a few hundred bytes for a typical pod.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct AddInputs {
    /// CNI_NETNS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netns: Option<PathBuf>,
    /// The plugin config from stdin, `prevResult` left out.
    pub config: serde_json::Value,
    /// The prevResult of that ADD.
    pub prev_result: serde_json::Value,
}

impl AddInputs {
    /// From what a runtime gave ADD: CNI_NETNS and stdin (`prevResult` moved out of it).
    pub fn new(netns: Option<PathBuf>, stdin: &serde_json::Value) -> AddInputs {
        let mut config = stdin.clone();
        let prev_result = config
            .as_object_mut()
            .and_then(|obj| obj.remove("prevResult"))
            .unwrap_or(serde_json::Value::Null);
        AddInputs {
            netns,
            config,
            prev_result,
        }
    }
}

impl Record {
    pub const VERSION: u32 = 1;

    /// A record that owns nothing yet.
    pub fn new(
        container_id: &str,
        ifname: &str,
        table: u32,
        host_rule_table: u32,
        overlay_interface: &str,
    ) -> Record {
        Record {
            version: Record::VERSION,
            container_id: container_id.to_string(),
            ifname: ifname.to_string(),
            network: None,
            table,
            host_rule_table,
            overlay_interface: overlay_interface.to_string(),
            host_peer: None,
            moved: BTreeMap::new(),
            original_mac: None,
            original_sysctls: BTreeMap::new(),
            pod: NetnsState::default(),
            host: NetnsState::default(),
            inputs: None,
            node_netns: None,
            node_addresses: None,
            rolled_out: None,
        }
    }
}

#[cfg(test)]
mod tests;
