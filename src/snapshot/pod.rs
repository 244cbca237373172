//! snapshot::pod: the pod side of a live read, from the calling thread through its handle
//! of the pod netns (opened there by the run's worker): its links, routes, rules,
//! neighbours and the sysctls router manages. /proc/sys is read on the worker, inside the
//! pod netns. Reads only.

use std::collections::BTreeMap;
use std::fs::File;
use std::os::fd::AsFd;

use super::{proc_sysctls, read_netns, read_sysctls, with_retries, Sent};
use crate::error::Result;
use crate::model::{
    mac_step_keys, routing_step_keys, Link, NetnsState, SysctlKey, Tables, ALL_AND_DEFAULT,
};
use crate::netlink::Netlink;
use crate::netns::{NetnsWorker, Pending};

/// A pod read begun: the worker is opening the handle and reading the sysctls no link
/// message carries (`all`, `default`) while the caller reads the host.
pub(super) struct PodRead {
    files: Option<Pending<Sent>>,
}

/// Begins the pod read on `worker`; `links_only` reads no routing sysctls.
pub(super) fn begin(worker: &NetnsWorker, links_only: bool) -> Result<PodRead> {
    Netlink::open_ahead(worker)?;
    let files = match links_only {
        true => None,
        false => {
            let keys: Vec<SysctlKey> = ALL_AND_DEFAULT
                .into_iter()
                .flat_map(routing_step_keys)
                .collect();
            Some(worker.submit(move || proc_sysctls(keys))?)
        }
    };
    Ok(PodRead { files })
}

impl PodRead {
    /// The pod's links and MACs only.
    pub(super) fn links(self, worker: &NetnsWorker) -> Result<NetnsState> {
        let links = with_retries(|| Netlink::in_netns(worker, Netlink::links))?;
        let mut state = NetnsState {
            links: links.links,
            macs: links.macs,
            ..NetnsState::default()
        };
        let keys = mac_keys(&state.links);
        read_sysctls(&mut state, keys, &links.sysctls, in_pod(worker))?;
        Ok(state)
    }

    /// The pod side, `tables` of it; `host` is the host netns (the pod's id for it says
    /// which host veth is O's peer).
    pub(super) fn all(
        self,
        worker: &NetnsWorker,
        tables: &Tables,
        host: &File,
    ) -> Result<NetnsState> {
        // Waiting for the files first waits for the handle too (the worker opened it
        // first): one wake instead of two.
        let files = self.files.map(Pending::wait).transpose()?;
        let (mut state, mut sent) = with_retries(|| {
            Netlink::in_netns(worker, |nl| {
                let (mut state, sent) = read_netns(nl, tables)?;
                state.other_netns_id = Some(nl.netns_id(host.as_fd())?);
                Ok((state, sent))
            })
        })?;
        sent.extend(files.into_iter().flatten());
        let ifaces = ALL_AND_DEFAULT
            .into_iter()
            .chain(links_but_lo(&state.links));
        let routing = ifaces.flat_map(routing_step_keys);
        let keys: Vec<SysctlKey> = routing.chain(mac_keys(&state.links)).collect();
        read_sysctls(&mut state, keys, &sent, in_pod(worker))?;
        Ok(state)
    }
}

/// Reads sysctl files on the worker, inside the pod netns (/proc/sys/net shows the netns
/// of the thread that opens the file).
fn in_pod(worker: &NetnsWorker) -> impl FnOnce(Vec<SysctlKey>) -> Result<Sent> + '_ {
    move |keys| worker.run(move || proc_sysctls(keys))
}

/// The MAC step's sysctls of every link but lo: the MAC step owns them (BEHAVIOUR 2.1), so
/// even a links-only read includes them.
fn mac_keys(links: &BTreeMap<String, Link>) -> Vec<SysctlKey> {
    links_but_lo(links).flat_map(mac_step_keys).collect()
}

fn links_but_lo(links: &BTreeMap<String, Link>) -> impl Iterator<Item = &str> {
    links
        .keys()
        .map(String::as_str)
        .filter(|name| *name != "lo")
}
