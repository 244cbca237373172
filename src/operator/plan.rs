//! operator::plan: the plan an ADD or DEL would apply now, live or from a snapshot file,
//! and what `router snapshot` reads for it. Must not apply anything.

use std::path::PathBuf;

use super::Resolved;
use crate::error::{Error, Result};
use crate::model::{Mode, Record};
use crate::reconcile::{prepare, snapshot_request, Prepared};
use crate::record::{MemRecords, RecordStore};
use crate::snapshot::{FileSnapshot, LiveSnapshot, SnapshotRequest};

/// Where `plan` reads the actual state from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StateSource {
    /// The kernel: this netns as the host, the pod netns at this path.
    Live(PathBuf),
    /// An ActualState file (`router snapshot`'s output).
    File(PathBuf),
}

/// The plan an ADD (or DEL) would apply now. Live, the records are those in data_dir
/// (what ADD would read); offline, only the record file given. `record` overrides both.
pub fn plan(
    target: &Resolved,
    source: &StateSource,
    record: Option<Record>,
    mode: Mode,
) -> Result<Prepared> {
    let prev = target.prev_view()?;
    if mode == Mode::Add && prev.is_none() {
        return Err(Error::InvalidPrevResult(
            "an ADD plan needs a prevResult: --prev-result, the result cache (--container-id), or a prevResult in the config".into(),
        ));
    }
    let given = record.map(|mut r| {
        r.container_id = target.container_id.clone();
        MemRecords::with(vec![r])
    });
    let (netns, file_records) = match source {
        StateSource::Live(path) => (Some(path.clone()), Some(target.records())),
        StateSource::File(_) => (None, None),
    };
    let empty = MemRecords::default();
    let records: &dyn RecordStore = match (&given, &file_records) {
        (Some(given), _) => given,
        (None, Some(files)) => files,
        (None, None) => &empty,
    };
    let att = target.attachment(netns);
    match source {
        StateSource::Live(_) => prepare(
            mode,
            &target.config,
            &att,
            prev.as_ref(),
            &LiveSnapshot::default(),
            records,
        ),
        StateSource::File(path) => {
            let file = FileSnapshot { path: path.clone() };
            prepare(mode, &target.config, &att, prev.as_ref(), &file, records)
        }
    }
}

/// What `router snapshot` reads for an attachment: exactly what `plan` (and ADD) would,
/// the record in data_dir included, so an offline plan of it equals the live plan.
pub fn snapshot_request_for(target: &Resolved, netns: Option<PathBuf>) -> Result<SnapshotRequest> {
    let prev = target.prev_view()?;
    let chained = prev
        .map(|p| p.addresses_of(&target.ifname))
        .unwrap_or_default();
    let record = target
        .records()
        .load(&target.container_id, &target.ifname)?;
    Ok(snapshot_request(
        &target.config,
        &target.attachment(netns),
        &chained,
        record.as_ref(),
    ))
}
