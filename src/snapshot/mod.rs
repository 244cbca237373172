//! snapshot: reads the actual state (pod netns + host) into `ActualState`, live from the
//! kernel or from an offline JSON file. It reads only: no kernel change, no decisions;
//! the host is the netns this process (the calling thread) runs in, never entered.
//! Here: the request, the sources, the two sides read from the calling thread and the
//! shared pieces; `host` and `pod` read each side.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::model::{ActualState, NetnsState, SysctlKey, Tables, TablesHeld, MAIN_TABLE};
use crate::netlink::{Netlink, Read, ReadRequest, RouteFilter};
use crate::netns::{self, NetnsVisitor};

mod host;
mod pod;

use host::{
    complete_host, pod_addresses, preferred_src, read_host, read_host_peer_sysctls, HostRead,
};

/// Whole-netns reads that met a transient inconsistency (`Error::TryAgain`, e.g. a link
/// created between the link and route dumps) are repeated this many times in all.
const READ_ATTEMPTS: usize = 3;

/// What to read. Tables not listed are not read; the pod's main table always is.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SnapshotRequest {
    /// Every route table of both netns, and the host's preferred source toward every
    /// address in the pod: what any attachment of the pod is planned from
    /// (`router snapshot` without an attachment).
    pub every_table: bool,
    /// None, or a path that no longer is a netns, gives `pod: None`.
    pub pod_netns: Option<PathBuf>,
    pub pod_tables: BTreeSet<u32>,
    pub host_tables: BTreeSet<u32>,
    /// Host interfaces whose rp_filter is read (besides all and default).
    pub host_sysctl_ifaces: BTreeSet<String>,
    /// Addresses to ask the host for its preferred source toward (`ip route get`).
    pub preferred_src_for: Vec<IpAddr>,
    /// Only the pod's links and MACs (`only_op_mac` needs nothing else): no host read.
    pub links_only: bool,
    /// Which of the host's routes, rules and neighbours are read.
    pub host_objects: HostObjects,
    /// Only the pod's links and `pod_tables`, without sysctls, and nothing of the host:
    /// what ADD reads again to see that the overlay interface held still while it ran.
    pub pod_only: bool,
}

/// Which of the host netns's objects a read covers. Its links and addresses are read
/// with the routes and neighbours of `All` (every link) and `ThroughPodPeers` (the links
/// an attachment needs): they name devices, and the node's addresses are facts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum HostObjects {
    /// The routes of the host tables, every rule and every permanent neighbour: what CHECK
    /// and the operator commands plan from (a foreign route in one of ours' slot is drift).
    #[default]
    All,
    /// Routes and permanent neighbours only through the host links whose veth peer is in
    /// the pod (the host veth peer among them), filtered by the kernel: all that one
    /// attachment's ADD or DEL can own on the host, so its cost does not grow with the
    /// node's other pods. Of the links, only those peers (read by their index,
    /// known from the pod's links) and the links holding addresses beyond link-local ones
    /// (the node's addresses; named by the address's label). Another pod's route in the
    /// slot of one of ours is not seen: host route adds are exclusive, so the kernel
    /// answers EEXIST, and the re-read after that surprise reads `All`. Without a pod netns
    /// (gone), this reads `All`.
    ThroughPodPeers,
    /// `ThroughPodPeers` less the facts only ADD builds from: no links holding the node's
    /// addresses, no addresses, no preferred sources. What DEL removes and restores on the
    /// host is owned routes, neighbours and sysctls through the host veth peers, whatever
    /// the node's addresses are. Without a pod netns (gone), this reads `All`.
    PodPeersOnly,
    /// Only the rules: whether the shared rule is there (ADD, under the host lock).
    Rules,
    /// The rules and the owned routes (protocol 176) of the host tables: whether the shared
    /// rule is still used (DEL, under the host lock). No links: the routes' devices are
    /// named with the links the run's earlier read found, others by index (`if<N>`).
    RulesAndOwnedRoutes,
}

impl SnapshotRequest {
    /// The pod's route tables this request reads.
    pub fn pod_tables_read(&self) -> Tables {
        match (self.every_table, self.links_only) {
            (_, true) => Tables::Only(BTreeSet::new()),
            (true, false) => Tables::ALL,
            (false, false) => Tables::Only(
                self.pod_tables
                    .iter()
                    .copied()
                    .chain([MAIN_TABLE])
                    .collect(),
            ),
        }
    }

    /// The host's route tables this request reads.
    pub fn host_tables_read(&self) -> Tables {
        match (self.every_table, self.links_only) {
            (_, true) => Tables::Only(BTreeSet::new()),
            (true, false) => Tables::ALL,
            (false, false) => Tables::Only(self.host_tables.clone()),
        }
    }
}

pub trait SnapshotSource {
    fn snapshot(&self, req: &SnapshotRequest) -> Result<ActualState>;
}

/// Reads the kernel, both sides from the calling thread, each through its netlink handle
/// of that netns, its dumps in turn. The pod's handle and /proc/sys files are opened in
/// visits to the pod by the run's visitor (`in_pod`, shared with its executor) when the
/// request names its path, else by one for that call. Must not be called from async code.
#[derive(Clone, Debug, Default)]
pub struct LiveSnapshot {
    pod: Option<Arc<NetnsVisitor>>,
}

impl LiveSnapshot {
    /// Reads the pod netns through `pod`, the run's visitor, shared with its executor.
    pub fn in_pod(pod: Option<Arc<NetnsVisitor>>) -> LiveSnapshot {
        LiveSnapshot { pod }
    }

    /// The run's visitor when it is for `path`, else one for this call.
    fn visitor_for(&self, path: &PathBuf) -> Arc<NetnsVisitor> {
        self.pod
            .as_ref()
            .filter(|visitor| visitor.path() == path)
            .map_or_else(|| Arc::new(NetnsVisitor::new(path.clone())), Arc::clone)
    }
}

/// Reads an `ActualState` JSON file (the offline format), holding it to the tables the
/// request reads: a table the file states it did not read is refused (planning from it
/// would take it as empty), and routes of tables the request does not read are left out,
/// as a live read would not see them. A file that states no tables (written before
/// snapshots did) is taken to hold every table the request reads.
#[derive(Clone, Debug)]
pub struct FileSnapshot {
    pub path: PathBuf,
}

impl SnapshotSource for LiveSnapshot {
    fn snapshot(&self, req: &SnapshotRequest) -> Result<ActualState> {
        let visitor = match &req.pod_netns {
            Some(path) if netns::is_netns(path)? => Some(self.visitor_for(path)),
            _ => None,
        };
        if req.pod_only {
            let pod = match &visitor {
                Some(visitor) => pod::read_routes_and_links(visitor, &req.pod_tables_read())
                    .map(Some)
                    .or_else(|e| gone_is_none(visitor, e))?,
                None => None,
            };
            return Ok(ActualState {
                pod,
                tables: Some(TablesHeld {
                    pod: req.pod_tables_read(),
                    host: Tables::Only(BTreeSet::new()),
                }),
                ..ActualState::default()
            });
        }
        let pod_file = match &visitor {
            Some(visitor) => begin_pod_read(visitor, req)?,
            None => None,
        };
        let host = match req.links_only {
            true => Ok(HostRead::default()),
            false => with_retries(|| read_host(req, pod_file.as_ref())),
        };
        let pod = match (&pod_file, &visitor) {
            (Some(_), Some(visitor)) => finish_pod_read(visitor, req)?,
            _ => None,
        };
        let (mut host, mut host_preferred_src, sent) = complete_host(req, host?, pod.as_ref())?;
        if let (Some(pod), false) = (&pod, req.links_only) {
            read_host_peer_sysctls(pod, &mut host, &sent)?;
            if req.every_table {
                let addrs = pod_addresses(pod);
                let found = Netlink::on_this_thread(|nl| preferred_src(nl, &addrs))?;
                host_preferred_src.extend(found);
            }
        }
        Ok(ActualState {
            pod,
            host,
            host_preferred_src,
            tables: Some(TablesHeld {
                pod: req.pod_tables_read(),
                host: req.host_tables_read(),
            }),
            host_netns: Some(netns::current_identity()?),
        })
    }
}

/// Opens the pod's sysctl files before the host is read (`pod::begin`); returns the pod's
/// netns file (the host's id of it says which host veth is the overlay
/// interface's peer, the host veth peer), or None when the netns went away since it was
/// checked.
fn begin_pod_read(visitor: &NetnsVisitor, req: &SnapshotRequest) -> Result<Option<File>> {
    let file = match netns::open(visitor.path()) {
        Ok(file) => file,
        Err(e) => return gone_is_none(visitor, e),
    };
    match pod::begin(visitor, req) {
        Ok(()) => Ok(Some(file)),
        Err(e) => gone_is_none(visitor, e),
    }
}

/// Reads the pod side begun; None when the netns went away meanwhile.
fn finish_pod_read(visitor: &NetnsVisitor, req: &SnapshotRequest) -> Result<Option<NetnsState>> {
    let read = match req.links_only {
        true => pod::read_links(visitor),
        false => {
            netns::current().and_then(|host| pod::read_all(visitor, &req.pod_tables_read(), &host))
        }
    };
    match read {
        Ok(state) => Ok(Some(state)),
        Err(e) => gone_is_none(visitor, e),
    }
}

/// A pod netns deleted while it is read is gone, like a missing path; any other failure
/// stands.
fn gone_is_none<T>(visitor: &NetnsVisitor, e: Error) -> Result<Option<T>> {
    match netns::is_netns(visitor.path())? {
        true => Err(e),
        false => Ok(None),
    }
}

impl SnapshotSource for FileSnapshot {
    fn snapshot(&self, req: &SnapshotRequest) -> Result<ActualState> {
        let what = || format!("snapshot file {}", self.path.display());
        let text = std::fs::read_to_string(&self.path).map_err(|e| Error::io(what(), e))?;
        let mut state: ActualState = serde_json::from_str(&text).map_err(|e| Error::Decode {
            what: what(),
            reason: e.to_string(),
        })?;
        let (pod_wanted, host_wanted) = (req.pod_tables_read(), req.host_tables_read());
        if let Some(held) = &state.tables {
            let pod_missing = state
                .pod
                .as_ref()
                .and(missing_table(&held.pod, &pod_wanted));
            let host_missing = missing_table(&held.host, &host_wanted);
            if let Some((netns, missing)) = pod_missing
                .map(|m| ("pod", m))
                .or(host_missing.map(|m| ("host", m)))
            {
                return Err(Error::io_other(what(), unread_table(netns, &missing)));
            }
        }
        if let Some(pod) = state.pod.as_mut() {
            keep_tables(pod, &pod_wanted);
        }
        keep_tables(&mut state.host, &host_wanted);
        Ok(state)
    }
}

/// A table `wanted` reads that `held` lacks: a table id, or None for "every table".
fn missing_table(held: &Tables, wanted: &Tables) -> Option<Option<u32>> {
    match (held, wanted) {
        (Tables::All(_), _) => None,
        (Tables::Only(_), Tables::All(_)) => Some(None),
        (Tables::Only(held), Tables::Only(wanted)) => {
            wanted.iter().find(|t| !held.contains(t)).map(|&t| Some(t))
        }
    }
}

fn unread_table(netns: &str, missing: &Option<u32>) -> String {
    let what = match missing {
        Some(table) => format!("the {netns} netns's route table {table}"),
        None => format!("every route table of the {netns} netns"),
    };
    format!(
        "does not hold {what} (the snapshot says which tables it read); a plan from it would \
         take what it never read as empty. Take a snapshot that reads it: \
         `router snapshot --netns PATH` reads every table, \
         `router snapshot --config FILE --ifname IFNAME --netns PATH` the tables that \
         attachment needs"
    )
}

/// Leaves out the routes of tables a live read of `tables` would not have seen.
fn keep_tables(state: &mut NetnsState, tables: &Tables) {
    state.routes.retain(|key, _| tables.holds(key.table));
}

pub(super) fn with_retries<T>(mut read: impl FnMut() -> Result<T>) -> Result<T> {
    let mut attempt = 1;
    loop {
        match read() {
            Err(Error::TryAgain(reason)) if attempt < READ_ATTEMPTS => {
                tracing::debug!(%reason, attempt, "netns changed while it was read, reading again");
                attempt += 1;
            }
            other => return other,
        }
    }
}

/// Links, routes of `tables`, rules and permanent neighbours of the calling thread's netns,
/// and the managed sysctls its links came with.
pub(super) fn read_netns(nl: &Netlink, tables: &Tables) -> Result<(NetnsState, Sent)> {
    let reads = ReadRequest {
        links: true,
        tables: tables.clone(),
        routes: vec![RouteFilter::default()],
        rules: true,
        neighbours: vec![None],
    };
    let mut read = nl.read(&reads)?;
    let sent = std::mem::take(&mut read.links.sysctls);
    Ok((state_of(read), sent))
}

/// The managed sysctls of links as the kernel sent them with the links (IFLA_AF_SPEC).
pub(super) type Sent = BTreeMap<SysctlKey, i64>;

/// A netns state holding what a read found.
pub(super) fn state_of(read: Read) -> NetnsState {
    let mut state = NetnsState {
        links: read.links.links.clone(),
        macs: read.links.macs.clone(),
        ..NetnsState::default()
    };
    add_found(&mut state, read);
    state
}

/// Adds the routes, rules and neighbours a read found to `state` (not its links).
pub(super) fn add_found(state: &mut NetnsState, read: Read) {
    for route in read.routes {
        state.insert_route(route);
    }
    for rule in read.rules {
        state.insert_rule(rule);
    }
    for neighbour in read.neighbours {
        state.insert_neighbour(neighbour);
    }
}

/// Puts each sysctl that exists into the state: as the links it belongs to were sent with
/// it (`sent`), else read from /proc/sys by `read_files`, in the netns the keys belong to
/// (all, default, or a link the read did not hold). A file read is slow in a netns whose
/// /proc/sys entries nobody has looked up yet, as a new pod's: the links' messages are
/// preferred.
pub(super) fn read_sysctls(
    state: &mut NetnsState,
    keys: impl IntoIterator<Item = SysctlKey>,
    sent: &Sent,
    read_files: impl FnOnce(Vec<SysctlKey>) -> Result<Sent>,
) -> Result<()> {
    let mut unsent = Vec::new();
    for key in keys {
        match sent.get(&key) {
            Some(value) => {
                state.sysctls.insert(key, *value);
            }
            None => unsent.push(key),
        }
    }
    if !unsent.is_empty() {
        state.sysctls.extend(read_files(unsent)?);
    }
    Ok(())
}

#[cfg(test)]
mod tests;
