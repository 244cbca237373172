//! snapshot: reads the actual state (pod netns + host) into `ActualState`, live from the
//! kernel or from an offline JSON file. It reads only: no kernel change, no decisions;
//! the host is the netns this process (the calling thread) runs in, never entered.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::model::{ActualState, NetnsState, SysctlKey, SysctlName, MAIN_TABLE};
use crate::netlink::{Links, Netlink};
use crate::netns;

/// Whole-netns reads that met a transient inconsistency (`Error::TryAgain`, e.g. a link
/// created between the link and route dumps) are repeated this many times in all.
const READ_ATTEMPTS: usize = 3;

/// What to read. Tables not listed are not read; the pod's main table always is.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SnapshotRequest {
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
}

pub trait SnapshotSource {
    fn snapshot(&self, req: &SnapshotRequest) -> Result<ActualState>;
}

/// Reads the kernel. The pod netns is read on a thread that enters it, concurrently with
/// the host, which is read on the calling thread. Must not be called from async code.
#[derive(Clone, Copy, Debug, Default)]
pub struct LiveSnapshot;

/// Reads an `ActualState` JSON file (the offline format). The request is not consulted:
/// the file is the whole world.
#[derive(Clone, Debug)]
pub struct FileSnapshot {
    pub path: PathBuf,
}

impl SnapshotSource for LiveSnapshot {
    fn snapshot(&self, req: &SnapshotRequest) -> Result<ActualState> {
        let pod_thread = match &req.pod_netns {
            Some(path) if netns::is_netns(path)? => {
                let mut tables = req.pod_tables.clone();
                tables.insert(MAIN_TABLE);
                let links_only = req.links_only;
                let read = move || match links_only {
                    true => with_retries(read_pod_links),
                    false => with_retries(|| read_pod(&tables)),
                };
                match netns::spawn_in_netns(path, read) {
                    Ok(thread) => Some(thread),
                    // Deleted between the check and the open: gone, like a missing path.
                    Err(_) if !netns::is_netns(path)? => None,
                    Err(e) => return Err(e),
                }
            }
            _ => None,
        };
        let host = match req.links_only {
            true => Ok((NetnsState::default(), BTreeMap::new())),
            false => with_retries(|| read_host(req)),
        };
        // Join before looking at the host result, so the pod thread is never left behind.
        let pod = pod_thread.map(|thread| thread.join()).transpose()?;
        let (mut host, host_preferred_src) = host?;
        if let (Some(pod), false) = (&pod, req.links_only) {
            read_host_peer_sysctls(pod, &mut host)?;
        }
        Ok(ActualState {
            pod,
            host,
            host_preferred_src,
        })
    }
}

impl SnapshotSource for FileSnapshot {
    fn snapshot(&self, _req: &SnapshotRequest) -> Result<ActualState> {
        let what = || format!("snapshot file {}", self.path.display());
        let text = std::fs::read_to_string(&self.path).map_err(|e| Error::io(what(), e))?;
        serde_json::from_str(&text).map_err(|e| Error::Decode {
            what: what(),
            reason: e.to_string(),
        })
    }
}

fn with_retries<T>(mut read: impl FnMut() -> Result<T>) -> Result<T> {
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

/// Links, routes of `tables`, rules and permanent neighbours of the calling thread's netns.
fn read_netns(nl: &Netlink, tables: &BTreeSet<u32>) -> Result<(NetnsState, Links)> {
    let links = nl.links()?;
    let mut state = NetnsState {
        links: links.links.clone(),
        macs: links.macs.clone(),
        ..NetnsState::default()
    };
    for route in nl.routes(tables, &links)? {
        state.insert_route(route);
    }
    for rule in nl.rules()? {
        state.insert_rule(rule);
    }
    for neighbour in nl.neighbours(&links)? {
        state.insert_neighbour(neighbour);
    }
    Ok((state, links))
}

/// Reads each sysctl that exists into the state.
fn read_sysctls(state: &mut NetnsState, keys: impl IntoIterator<Item = SysctlKey>) -> Result<()> {
    for key in keys {
        if let Some(value) = netns::read_sysctl(&key)? {
            state.sysctls.insert(key, value);
        }
    }
    Ok(())
}

/// The pod's links and MACs only; runs on the thread that entered the pod netns.
fn read_pod_links() -> Result<NetnsState> {
    let links = Netlink::new()?.links()?;
    Ok(NetnsState {
        links: links.links,
        macs: links.macs,
        ..NetnsState::default()
    })
}

/// The pod side; runs on the thread that entered the pod netns.
fn read_pod(tables: &BTreeSet<u32>) -> Result<NetnsState> {
    let nl = Netlink::new()?;
    let (mut state, links) = read_netns(&nl, tables)?;
    let ifaces = ["all", "default"].into_iter().chain(
        links
            .links
            .keys()
            .map(String::as_str)
            .filter(|name| *name != "lo"),
    );
    let keys = ifaces.flat_map(|iface| {
        [
            SysctlKey::new(iface, SysctlName::RpFilter),
            SysctlKey::new(iface, SysctlName::DisableIpv6),
        ]
    });
    read_sysctls(&mut state, keys.collect::<Vec<_>>())?;
    Ok(state)
}

/// The host side, in the calling thread's netns.
fn read_host(req: &SnapshotRequest) -> Result<(NetnsState, BTreeMap<IpAddr, IpAddr>)> {
    let nl = Netlink::new()?;
    let (mut state, _) = read_netns(&nl, &req.host_tables)?;
    let ifaces = ["all", "default"]
        .into_iter()
        .chain(req.host_sysctl_ifaces.iter().map(String::as_str));
    read_sysctls(
        &mut state,
        ifaces.map(|iface| SysctlKey::new(iface, SysctlName::RpFilter)),
    )?;
    let mut preferred = BTreeMap::new();
    for &addr in &req.preferred_src_for {
        if let Some(src) = nl.preferred_src(addr)? {
            preferred.insert(addr, src);
        }
    }
    Ok((state, preferred))
}

/// The rp_filter of every host veth whose peer is in the pod (H among them): its name is
/// known only once both sides are read.
fn read_host_peer_sysctls(pod: &NetnsState, host: &mut NetnsState) -> Result<()> {
    let peers: Vec<SysctlKey> = pod
        .links
        .values()
        .filter_map(|link| {
            let peer = link.peer.as_ref()?;
            let (name, h) = host.link_by_index(peer.ifindex)?;
            let points_back = h.peer.as_ref().is_some_and(|p| p.ifindex == link.index);
            points_back.then(|| SysctlKey::new(name, SysctlName::RpFilter))
        })
        .filter(|key| !host.sysctls.contains_key(key))
        .collect();
    read_sysctls(host, peers)
}

impl<T: SnapshotSource + ?Sized> SnapshotSource for std::sync::Arc<T> {
    fn snapshot(&self, req: &SnapshotRequest) -> Result<ActualState> {
        (**self).snapshot(req)
    }
}
