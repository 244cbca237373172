//! agent::triggers: which kernel events call for a reconcile, and of which attachments.
//! Pure: an event and what the agent knows of its attachments in, a target out. Must not
//! do I/O or decide how a reconcile is done (the `check --repair` path does).
//!
//! In a pod netns every change but router's own additions counts: the pod holds the
//! attachment's objects and the facts its plan is made from (O's routes, C), and nothing
//! else changes there often. Dynamic neighbours never reach here (the subscription drops
//! them). In the node netns only what a plan reads or writes counts: the rules (the shared
//! `lookup 500` rule), routes in an attachment's host table and permanent neighbours toward
//! its addresses, the node's addresses (each pod's host-address routes), and a link's MAC
//! changing (H's MAC is the pod's permanent neighbour).

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;

use crate::compile::{is_link_local, is_node_link};
use crate::model::MacAddr;
use crate::netlink::subscribe::{Change, Event};

/// Which attachments a node event concerns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeTarget {
    None,
    /// Those whose host side has an object toward this address (C's).
    Toward(IpAddr),
    /// A node-wide fact changed: every attachment.
    All,
}

/// Whether a pod event calls for a reconcile of the pod's attachments.
pub fn pod_event_matters(event: &Event) -> bool {
    !event.is_own_addition()
}

/// The node's links as last seen: their MACs, to tell a MAC change from any other link
/// event, and their names, to tell a node address from one on a pod's plumbing (a ptp
/// veth's gateway address is added with every pod, and is no node address).
#[derive(Debug, Default)]
pub struct NodeLinks {
    macs: HashMap<u32, MacAddr>,
    names: HashMap<u32, String>,
}

impl NodeLinks {
    pub fn new(known: impl IntoIterator<Item = (u32, String, Option<MacAddr>)>) -> NodeLinks {
        let mut links = NodeLinks::default();
        for (index, name, mac) in known {
            links.names.insert(index, name);
            if let Some(mac) = mac {
                links.macs.insert(index, mac);
            }
        }
        links
    }

    /// Records a link event; true when it changed the MAC of a link already known.
    fn changed(
        &mut self,
        change: Change,
        index: u32,
        name: Option<&String>,
        mac: Option<MacAddr>,
    ) -> bool {
        if change == Change::Deleted {
            self.macs.remove(&index);
            self.names.remove(&index);
            return false;
        }
        if let Some(name) = name {
            self.names.insert(index, name.clone());
        }
        mac.is_some_and(|mac| self.macs.insert(index, mac).is_some_and(|old| old != mac))
    }

    /// Whether an address on this link may be a node address (an unknown link may).
    fn may_hold_node_addresses(&self, index: u32) -> bool {
        self.names.get(&index).is_none_or(|name| is_node_link(name))
    }
}

/// Which attachments a node event concerns. `host_tables`: the host tables of the
/// attachments kept (`host_rule_table`).
pub fn node_target(
    event: &Event,
    host_tables: &BTreeSet<u32>,
    links: &mut NodeLinks,
) -> NodeTarget {
    if event.is_own_addition() {
        return NodeTarget::None;
    }
    match event {
        Event::Route { table, dst, .. } => match dst {
            Some(dst) if host_tables.contains(table) => NodeTarget::Toward(*dst),
            _ => NodeTarget::None,
        },
        Event::Rule { .. } => NodeTarget::All,
        Event::Neighbour { dst, .. } => dst.map_or(NodeTarget::None, NodeTarget::Toward),
        Event::Link {
            change,
            index,
            name,
            mac,
        } => {
            if links.changed(*change, *index, name.as_ref(), *mac) {
                NodeTarget::All
            } else {
                NodeTarget::None
            }
        }
        Event::Address { address, index, .. }
            if is_link_local(address) || !links.may_hold_node_addresses(*index) =>
        {
            NodeTarget::None
        }
        Event::Address { .. } => NodeTarget::All,
    }
}

#[cfg(test)]
mod tests;
