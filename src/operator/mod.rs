//! operator: what `router plan`, `router check` and `router snapshot` do on a node. Resolves
//! an attachment (config, prevResult, container id, netns) from files, the runtime's
//! result cache or the record ADD wrote, then plans, checks or repairs it through reconcile
//! with the live backends: LiveSnapshot, LiveExecutor and the records (and host lock) in
//! data_dir, so what it reports is what ADD and CHECK would compute. Prints nothing (cli
//! does); every decision about routes is reconcile's.
//!
//! One file per part: `resolve` (an attachment's inputs), `plan` (live or offline plans),
//! `check` (one attachment's CHECK and repair, the run's clock), `scan` (`check --all`).

mod check;
mod plan;
mod resolve;
mod scan;

pub use check::{check, check_named, check_reading, NodeRead, RunClock};
pub use plan::{plan, snapshot_request_for, StateSource};
pub use resolve::{read_json, read_record, resolve, Resolved, Sources};
pub use scan::{check_all, locate, locate_all, recorded, recorded_in, Located, RecordKey, Scan};

/// The data_dir of a config that sets none: where `check --all` reads records by default.
pub const DEFAULT_DATA_DIR: &str = "/run/cni/router";

/// The container id of a plan that names none (offline, from files only).
pub const OFFLINE_CONTAINER_ID: &str = "offline";

#[cfg(test)]
mod tests;
