//! live: the backends a real plugin run uses, once its config is known: the kernel
//! snapshot, the netlink executor for the pod named by CNI_NETNS, the records and host lock
//! in data_dir, raw-socket conflict probes on C, and the log file. It wires; it decides
//! nothing.

use crate::cni::{Backends, Invocation};
use crate::config::Config;
use crate::conflict::RawSocketProbe;
use crate::error::Result;
use crate::execute::LiveExecutor;
use crate::logging;
use crate::record::FileRecords;
use crate::snapshot::LiveSnapshot;

pub fn backends(config: &Config, invocation: &Invocation) -> Result<Backends> {
    logging::init(&config.log_options);
    Ok(Backends {
        snapshots: Box::new(LiveSnapshot),
        executor: Box::new(LiveExecutor::new(invocation.netns.clone())),
        records: Box::new(FileRecords::new(&config.data_dir)),
        probe: Box::new(RawSocketProbe),
    })
}
