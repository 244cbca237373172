//! compile: Config x prevResult x facts (derived from ActualState) x record x Mode ->
//! DesiredState, plus the attachment record an ADD writes. BEHAVIOUR sections 2 and 4.
//! Pure: no I/O, no clock, no env; everything it knows comes in as arguments.
//!
//! One file per part: `facts` (what the snapshot says), `previous` (the previous default
//! interface and its routes), `scope` (what an attachment owns, what its peers keep),
//! `overlay` (whether the overlay interface is ready for ADD), `add`, `del`.

mod add;
mod del;
mod facts;
mod overlay;
mod previous;
mod scope;

use add::*;
use del::*;
use facts::*;
pub use facts::{derive_mac, mac_source, name_order, Facts};
pub(crate) use facts::{is_link_local, is_node_link};
pub use overlay::{overlay_unready, OverlayFacts, Unready};
use previous::*;
use scope::*;

use std::collections::BTreeSet;
use std::net::IpAddr;

use ipnet::IpNet;

use crate::config::{Config, MigrateRoute, PrevView};
use crate::error::{Error, Result};
use crate::model::{
    host_net, host_step_sysctl, mac_step_sysctls, routing_step_sysctls, ActualState, DesiredNetns,
    DesiredState, Family, MacAddr, Mode, Moved, Neighbour, NeighbourKey, NeighbourSelector,
    NetnsState, NodeAddressChange, Ownership, Record, Route, RouteSelector, Rule, Scope, SysctlKey,
    ALL_AND_DEFAULT, MAIN_TABLE, PROTOCOL_BOOT, PROTOCOL_KERNEL, ROUTER_PROTOCOL,
};

pub struct CompileInput<'a> {
    pub config: &'a Config,
    pub container_id: &'a str,
    /// The chained interface (`CNI_IFNAME`).
    pub ifname: &'a str,
    pub prev: Option<&'a PrevView>,
    pub actual: &'a ActualState,
    /// This attachment's record from an earlier ADD.
    pub record: Option<&'a Record>,
    /// Records of the pod's other attachments: what they want is never removed for this
    /// one.
    pub peers: &'a [Record],
    pub mode: Mode,
}

#[derive(Debug, Clone)]
pub struct Compiled {
    pub desired: DesiredState,
    /// What ADD writes before applying (for DEL, the record it compiled from), but for
    /// what an ADD owns: `record()` takes that from `desired` when asked. A copy made here
    /// would double every desired route and neighbour for CHECK, `plan` and the agent,
    /// which write no record.
    record: Record,
    /// Whether `record()` takes what the attachment owns from `desired` (ADD).
    owns_desired: bool,
    /// The chained interface's new MAC, for the result.
    pub new_mac: Option<MacAddr>,
    /// Decisions worth a log line.
    pub notes: Vec<String>,
    /// A degraded setup that still works, worth a warning.
    pub warnings: Vec<String>,
}

fn owned_route(table: u32, dst: IpNet, dev: &str) -> Route {
    Route::link(table, dst, dev, ROUTER_PROTOCOL)
}

fn copy_into(route: &Route, table: u32) -> Route {
    let mut copy = route.clone();
    copy.key.table = table;
    copy.protocol = ROUTER_PROTOCOL;
    copy.normalised()
}

fn owned_neighbour(dev: &str, addr: IpAddr, lladdr: Option<MacAddr>) -> Neighbour {
    Neighbour {
        key: NeighbourKey {
            dev: dev.to_string(),
            addr,
        },
        lladdr,
        protocol: ROUTER_PROTOCOL,
    }
}

fn host_rule(config: &Config, family: Family, table: u32) -> Rule {
    Rule::owned_lookup(family, config.host_rule_priority, None, None, table)
}

pub fn compile(input: &CompileInput<'_>) -> Result<Compiled> {
    if input.config.skip_call {
        return Ok(skipped(input));
    }
    match input.mode {
        Mode::Add => compile_add(input),
        Mode::Del => compile_del(input),
    }
}

/// skip_call: want nothing, own nothing, touch nothing.
fn skipped(input: &CompileInput<'_>) -> Compiled {
    let config = input.config;
    Compiled {
        desired: DesiredState::default(),
        record: Record::new(
            input.container_id,
            input.ifname,
            config.table_for(input.ifname).unwrap_or_default(),
            config.host_rule_table,
            &config.overlay_interface,
        ),
        owns_desired: false,
        new_mac: None,
        notes: vec!["skip_call: nothing to do".into()],
        warnings: Vec::new(),
    }
}

impl Compiled {
    /// The attachment's record: what ADD writes before applying, what it owns being the
    /// desired state's present objects; for DEL, the record it compiled from.
    pub fn record(&self) -> Record {
        let mut record = self.record.clone();
        if self.owns_desired {
            record.pod = self.desired.pod.present.clone();
            record.host = self.desired.host.present.clone();
        }
        record
    }
}

#[cfg(test)]
mod tests;
