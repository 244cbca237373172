//! What compile wants of each netns: present objects and the `Ownership` of the rest,
//! and the ADD/DEL mode.

use std::collections::BTreeSet;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::{NetnsState, Ownership, Scoped, Side};

impl DesiredNetns {
    /// Objects of `actual` this attachment may remove (`Ownership::may_remove`). They are
    /// removed (CHECK: reported).
    pub fn extras<'a, T: Scoped>(&self, actual: &'a NetnsState) -> Vec<&'a T> {
        T::all(actual)
            .values()
            .filter(|o| self.ownership.may_remove(*o, &self.present))
            .collect()
    }
}

/// What one netns should look like for one attachment.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct DesiredNetns {
    /// Objects that must exist with exactly these values.
    #[serde(default)]
    pub present: NetnsState,
    /// What else this attachment may touch: its scope, its peers' objects, the documented
    /// moves, the shared rule (flattened: its keys sit beside `present`).
    #[serde(flatten)]
    pub ownership: Ownership,
    /// How the node's addresses changed since the record was written: why a host-address
    /// route or neighbour is drift (BEHAVIOUR 2.3).
    #[serde(default, skip_serializing_if = "NodeAddressChange::is_empty")]
    pub node_addresses: NodeAddressChange,
}

/// The node addresses (BEHAVIOUR 2.3) gained and lost since the attachment's record was
/// written, and the overlay interface their routes and neighbours go through.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeAddressChange {
    pub via: String,
    pub added: BTreeSet<IpAddr>,
    pub removed: BTreeSet<IpAddr>,
}

impl NodeAddressChange {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty()
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct DesiredState {
    pub pod: DesiredNetns,
    pub host: DesiredNetns,
}

impl DesiredState {
    pub fn side(&self, side: Side) -> &DesiredNetns {
        match side {
            Side::Pod => &self.pod,
            Side::Host => &self.host,
        }
    }
}

/// ADD makes an attachment; DEL removes it. CHECK compiles as ADD.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Add,
    Del,
}

#[cfg(test)]
mod tests;
