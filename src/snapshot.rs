//! snapshot: where ActualState comes from. A trait with two sources: the live kernel
//! (netlink, in the pod and host netns) and a JSON file (the offline format fixtures use).
//! Never decides anything: it reports what is there.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::model::ActualState;

/// What to read: the pod netns (absent or gone: no pod side), the tables concerned, and the
/// host facts compile needs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SnapshotRequest {
    pub pod_netns: Option<PathBuf>,
    pub pod_tables: BTreeSet<u32>,
    pub host_tables: BTreeSet<u32>,
    pub host_sysctl_ifaces: BTreeSet<String>,
    pub preferred_src_for: Vec<IpAddr>,
}

pub trait SnapshotSource {
    fn snapshot(&self, req: &SnapshotRequest) -> Result<ActualState>;
}

/// An ActualState JSON file, as `router snapshot` prints it.
pub struct FileSnapshot {
    pub path: PathBuf,
}

impl SnapshotSource for FileSnapshot {
    fn snapshot(&self, _req: &SnapshotRequest) -> Result<ActualState> {
        let text = std::fs::read_to_string(&self.path)
            .map_err(|e| Error::io(format!("reading snapshot {}", self.path.display()), e))?;
        serde_json::from_str(&text).map_err(|e| Error::Decode {
            what: format!("snapshot {}", self.path.display()),
            reason: e.to_string(),
        })
    }
}

impl<T: SnapshotSource + ?Sized> SnapshotSource for std::sync::Arc<T> {
    fn snapshot(&self, req: &SnapshotRequest) -> Result<ActualState> {
        (**self).snapshot(req)
    }
}
