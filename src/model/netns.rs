//! One netns's state (links as facts, the reconciled objects keyed by their kernel
//! identity) and a snapshot of both netns (`ActualState`, the snapshot/fixture format).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::{
    Family, MacAddr, Neighbour, NeighbourKey, Route, RouteKey, RouteSlot, Rule, RuleKey, SysctlKey,
    MAIN_TABLE,
};

/// Which network namespace an object lives in.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    Pod,
    Host,
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Side::Pod => "pod",
            Side::Host => "host",
        })
    }
}

/// The veth peer of a link as the kernel reports it (IFLA_LINK + IFLA_LINK_NETNSID).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct LinkPeer {
    pub ifindex: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netnsid: Option<i32>,
}

/// Facts about a link; its MAC, the one reconciled property, lives in `NetnsState::macs`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer: Option<LinkPeer>,
    /// Interface addresses with their prefix length (host bits kept).
    #[serde(default)]
    pub addresses: Vec<IpNet>,
}

/// Objects with a kernel identity, stored in maps keyed by it and serialised as lists.
pub trait Keyed {
    type Key: Ord + Clone;
    fn key(&self) -> &Self::Key;
}

impl Keyed for Route {
    type Key = RouteKey;
    fn key(&self) -> &RouteKey {
        &self.key
    }
}

impl Keyed for Rule {
    type Key = RuleKey;
    fn key(&self) -> &RuleKey {
        &self.key
    }
}

impl Keyed for Neighbour {
    type Key = NeighbourKey;
    fn key(&self) -> &NeighbourKey {
        &self.key
    }
}

/// Serde for `BTreeMap<K, V>` whose key is derived from the value: a plain JSON list.
mod keyed_list {
    use super::Keyed;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use std::collections::BTreeMap;

    pub fn serialize<V: Keyed + Serialize, S: Serializer>(
        map: &BTreeMap<V::Key, V>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.collect_seq(map.values())
    }

    pub fn deserialize<'de, V, D>(d: D) -> Result<BTreeMap<V::Key, V>, D::Error>
    where
        V: Keyed + Deserialize<'de>,
        D: Deserializer<'de>,
    {
        let list = Vec::<V>::deserialize(d)?;
        Ok(list.into_iter().map(|v| (v.key().clone(), v)).collect())
    }
}

/// One netns: links (facts) and the reconciled objects.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct NetnsState {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub links: BTreeMap<String, Link>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub macs: BTreeMap<String, MacAddr>,
    #[serde(
        default,
        with = "keyed_list",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub routes: BTreeMap<RouteKey, Route>,
    #[serde(
        default,
        with = "keyed_list",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub rules: BTreeMap<RuleKey, Rule>,
    #[serde(
        default,
        with = "keyed_list",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub neighbours: BTreeMap<NeighbourKey, Neighbour>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sysctls: BTreeMap<SysctlKey, i64>,
    /// The id this netns gives to the snapshot's other netns (the pod's id for the host,
    /// the host's for the pod; RTM_GETNSID), the value a link's `peer.netnsid` has when its
    /// peer is there. Negative: it has none, so no link here has its peer there. None when
    /// unknown (snapshots and fixtures written before router read it, links-only reads):
    /// veth peers are then matched by index alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub other_netns_id: Option<i32>,
}

impl NetnsState {
    pub fn insert_route(&mut self, route: Route) {
        let route = route.normalised();
        self.routes.insert(route.key.clone(), route);
    }

    /// `insert_route` of many at once, as if one after another: a later route of a key
    /// already there (inserted or not) wins. The routes are sorted and the map built in
    /// one pass, then merged in one pass: a pod table's copies of a main table with
    /// thousands of routes would otherwise be a search each.
    pub fn insert_routes(&mut self, routes: impl IntoIterator<Item = Route>) {
        let mut added: BTreeMap<RouteKey, Route> = routes
            .into_iter()
            .map(|route| {
                let route = route.normalised();
                (route.key.clone(), route)
            })
            .collect();
        self.routes.append(&mut added);
    }

    pub fn insert_rule(&mut self, rule: Rule) {
        self.rules.insert(rule.key.clone(), rule);
    }

    pub fn insert_neighbour(&mut self, neighbour: Neighbour) {
        self.neighbours.insert(neighbour.key.clone(), neighbour);
    }

    /// Routes of one slot, in key order. The slot is a prefix of the key order, so this is
    /// a range read, not a scan: the planner asks once per wanted route.
    pub fn routes_in_slot<'a>(&'a self, slot: &'a RouteSlot) -> impl Iterator<Item = &'a Route> {
        let first = RouteKey {
            table: slot.table,
            dst: slot.dst,
            tos: slot.tos,
            metric: slot.metric,
            dev: None,
            gateway: None,
        };
        self.routes
            .range(first..)
            .map(|(_, r)| r)
            .take_while(move |r| r.key.slot() == *slot)
    }

    /// Default routes of a family in the main table, in key order.
    pub fn main_defaults(&self, family: Family) -> impl Iterator<Item = &Route> {
        self.routes.values().filter(move |r| {
            r.key.table == MAIN_TABLE && r.key.is_default() && r.key.family() == family
        })
    }

    /// The link of `other` (the snapshot's other netns) that `name` is a veth pair with:
    /// the link its IFLA_LINK names there, whose IFLA_LINK names `name` back, each peer
    /// netnsid being the id its netns gives to the other (where known). With the overlay
    /// interface and the host netns, that is the host veth peer (BEHAVIOUR glossary):
    /// indexes alone are not enough, as a host veth whose peer is in a third netns can
    /// carry the overlay interface's peer index and point at the overlay interface's index.
    pub fn veth_peer_in<'a>(
        &self,
        name: &str,
        other: &'a NetnsState,
    ) -> Option<(&'a String, &'a Link)> {
        let link = self.links.get(name)?;
        let peer = link.peer.as_ref().filter(|p| self.names_other_netns(p))?;
        let (peer_name, peer_link) = other.link_by_index(peer.ifindex)?;
        let points_back = peer_link
            .peer
            .as_ref()
            .is_some_and(|p| p.ifindex == link.index && other.names_other_netns(p));
        points_back.then_some((peer_name, peer_link))
    }

    /// Whether a peer of a link here is in the snapshot's other netns, as far as known.
    fn names_other_netns(&self, peer: &LinkPeer) -> bool {
        match self.other_netns_id {
            None => true,
            Some(id) => id >= 0 && peer.netnsid == Some(id),
        }
    }

    pub fn link_by_index(&self, index: u32) -> Option<(&String, &Link)> {
        self.links.iter().find(|(_, l)| l.index == index)
    }

    /// The interface names objects refer to, for the snapshotter's filtered reads.
    pub fn is_empty(&self) -> bool {
        self.macs.is_empty()
            && self.routes.is_empty()
            && self.rules.is_empty()
            && self.neighbours.is_empty()
            && self.sysctls.is_empty()
    }
}

/// Which network namespace a process saw as the node: the netns file's device and inode
/// (`/proc/self/ns/net`), which the kernel keeps while the netns lives. A name (`/run/netns/
/// x`) says nothing: a command may run in any netns whatever it was told the node is.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NetnsIdentity {
    pub dev: u64,
    pub inode: u64,
}

impl fmt::Display for NetnsIdentity {
    /// As `ls -l /proc/PID/ns/net` and `lsns` show a netns.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "net:[{}]", self.inode)
    }
}

/// What a snapshot of the world holds: the pod netns (absent when it is gone) and the host.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct ActualState {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<NetnsState>,
    #[serde(default)]
    pub host: NetnsState,
    /// The host's preferred source address toward each address of the chained interface
    /// (`ip route get`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub host_preferred_src: BTreeMap<IpAddr, IpAddr>,
    /// The route tables this state holds, per netns. None in snapshot files written before
    /// snapshots said so: such a file is taken to hold every table a plan asks for (the
    /// fixtures are written that way; see `snapshot::FileSnapshot`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tables: Option<TablesHeld>,
    /// The netns the host side was read in, when the source knows it (a live read does).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_netns: Option<NetnsIdentity>,
}

/// Which route tables a snapshot read in each netns: a table it did not read is unknown,
/// not empty.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct TablesHeld {
    pub pod: Tables,
    pub host: Tables,
}

/// Every table of a netns (`"all"`), or these (a list of table ids).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(untagged)]
pub enum Tables {
    All(AllTables),
    Only(BTreeSet<u32>),
}

/// The word `"all"` in the snapshot JSON.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum AllTables {
    All,
}

impl Tables {
    pub const ALL: Tables = Tables::All(AllTables::All);

    pub fn holds(&self, table: u32) -> bool {
        match self {
            Tables::All(_) => true,
            Tables::Only(tables) => tables.contains(&table),
        }
    }
}

impl ActualState {
    pub fn side(&self, side: Side) -> Option<&NetnsState> {
        match side {
            Side::Pod => self.pod.as_ref(),
            Side::Host => Some(&self.host),
        }
    }

    pub fn side_mut(&mut self, side: Side) -> Option<&mut NetnsState> {
        match side {
            Side::Pod => self.pod.as_mut(),
            Side::Host => Some(&mut self.host),
        }
    }

    /// The host veth peer of the pod interface `overlay` (the overlay interface): its veth
    /// peer in the host netns (`NetnsState::veth_peer_in`). None without a pod, or when the
    /// overlay interface is no such veth.
    pub fn host_peer(&self, overlay: &str) -> Option<&str> {
        let (name, _) = self.pod.as_ref()?.veth_peer_in(overlay, &self.host)?;
        Some(name)
    }
}

#[cfg(test)]
mod tests;
