//! operator::check: CHECK of one attachment as a report (clean, drift, gone, error), with
//! `--repair` through reconcile over the live backends; the run's clock and node name.
//! Must not decide about routes (reconcile does) or print.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::Resolved;
use crate::config::PrevView;
use crate::error::{Code, Error, Result};
use crate::execute::LiveExecutor;
use crate::model::Mode;
use crate::netns::{self, NetnsVisitor};
use crate::reconcile::{self, prepare, prepare_owned, Attachment, Failure, Prepared, World};
use crate::report::{AttachmentReport, CheckReport, Repair, RunInfo, Status};
use crate::snapshot::LiveSnapshot;

pub(super) fn report_for(
    target: &Resolved,
    netns: Option<&Path>,
    status: Status,
) -> AttachmentReport {
    let mut report = AttachmentReport::new(&target.container_id, &target.ifname, status);
    report.netns = netns.map(|p| p.display().to_string());
    if let Some(entry) = &target.entry {
        report.network = Some(entry.network.clone());
        report.cache_entry = Some(entry.file.display().to_string());
    } else {
        report.network = target.config.name.clone();
    }
    report
}

/// `error` is reconcile's `Failure` or an `Error` met before reconcile ran.
pub(super) fn with_error<E>(mut report: AttachmentReport, error: &E) -> AttachmentReport
where
    E: Clone + Into<Failure>,
{
    let error: Failure = error.clone().into();
    report.status = Status::Error;
    report.message = Some(error.to_string());
    report.error_code = Some(error.code().number());
    report
}

/// A netns path that cannot be entered is `gone` only when the file is missing from a
/// directory that is there (the runtime removed it with the pod). A missing directory, or
/// a file that is no netns, is what a checker container shows when the runtime's netns
/// directory is not mounted or its mounts do not propagate: an error, not a pod gone.
fn gone_or_not_visible(report: AttachmentReport, netns: &Path) -> AttachmentReport {
    let dir_here = netns.parent().is_some_and(Path::is_dir);
    if dir_here && !netns.exists() {
        return gone(report, netns);
    }
    let why = if dir_here {
        "it exists but is not a network namespace: a mount that did not propagate here (mount the runtime's netns directory with HostToContainer propagation) or a file the runtime left behind"
    } else {
        "its directory does not exist here (is the runtime's netns directory mounted?)"
    };
    let e = Error::UnknownContainer(format!("{}: {why}", netns.display()));
    with_error(report, &e)
}

fn gone(mut report: AttachmentReport, netns: &Path) -> AttachmentReport {
    report.status = Status::Gone;
    report.netns = Some(netns.display().to_string());
    report.message = Some("the pod netns is gone".into());
    report
}

/// What a check reads of the node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeRead {
    /// Every object of the node, as CHECK reads it.
    Whole,
    /// Only what the attachment can own there, as ADD reads it: what `router agent` repeats
    /// for every attachment, whose cost must not grow with the node's other pods. Another
    /// attachment's route in the slot of one of this one's is not seen: it shows as that
    /// route missing, and a repair then meets it (the kernel refuses the exclusive add,
    /// the repair reads the whole node and reports the object in the way).
    Owned,
}

/// CHECK for one attachment, timed: the report carries how long it took. With `repair`
/// the attachment's lock is held for the check and the repair, waited for as a plugin run
/// waits for it (`router agent`, which holds the lock itself, calls `check_reading`).
pub fn check(target: &Resolved, netns: &Path, repair: bool) -> AttachmentReport {
    if !repair {
        return check_reading(target, netns, false, NodeRead::Whole);
    }
    let clock = Instant::now();
    let mut report = check_locked(target, netns);
    report.duration = clock.elapsed();
    report
}

/// CHECK and repair under the attachment's lock, which the runtime's ADD, CHECK and DEL
/// hold for their whole run (as `router rollout` and `router agent` take it): a run half
/// done would look like drift to undo, and a DEL done removed the record, so a repair
/// after it would re-create what the DEL removed and leak it. Without a record under the
/// lock the attachment is checked and left as it is.
fn check_locked(target: &Resolved, netns: &Path) -> AttachmentReport {
    let records = target.records();
    let lock = match records.lock_attachment(&target.container_id, &target.ifname, false) {
        Ok(lock) => lock,
        Err(e) => return with_error(report_for(target, Some(netns), Status::Error), &e),
    };
    let recorded = lock.as_ref().is_some_and(|lock| lock.record_exists());
    let mut report = check_reading(target, netns, recorded, NodeRead::Whole);
    if !recorded && report.status == Status::Drift {
        report.message = Some(
            "not repaired: router holds no record of this attachment (its DEL ran, or it was never recorded), and a repair would re-create what a DEL removed".into(),
        );
    }
    drop(lock);
    report
}

/// `check`, reading of the node what `read` says.
pub fn check_reading(
    target: &Resolved,
    netns: &Path,
    repair: bool,
    look: NodeRead,
) -> AttachmentReport {
    let clock = Instant::now();
    let mut report = check_attachment(target, netns, repair, look);
    report.duration = clock.elapsed();
    report
}

/// `router check` of the one attachment the operator named.
pub fn check_named(target: &Resolved, netns: &Path, repair: bool) -> CheckReport {
    let clock = RunClock::start();
    clock.report(vec![check(target, netns, repair)], true)
}

/// When a whole `router check` (or rollout) started, to stamp its report when it ends.
pub struct RunClock {
    started: Duration,
    clock: Instant,
}

impl RunClock {
    pub fn start() -> RunClock {
        RunClock {
            started: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default(),
            clock: Instant::now(),
        }
    }

    /// The report of the run: its attachments, when it started, how long it took, where.
    pub(super) fn report(self, attachments: Vec<AttachmentReport>, named: bool) -> CheckReport {
        CheckReport {
            attachments,
            named,
            run: self.info(),
        }
    }

    /// When the run started, how long it took until now, where.
    pub fn info(self) -> RunInfo {
        RunInfo {
            started: self.started,
            took: self.clock.elapsed(),
            host: hostname(),
        }
    }
}

/// The node's name as the kernel has it (a hostNetwork pod shares the node's).
fn hostname() -> Option<String> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    let name = name.trim();
    (!name.is_empty()).then(|| name.to_string())
}

/// CHECK for one attachment (BEHAVIOUR 3), as a report rather than a CNI error; with
/// `repair`, a drifted attachment is repaired (reconcile::repair) and checked again.
fn check_attachment(
    target: &Resolved,
    netns: &Path,
    repair: bool,
    look: NodeRead,
) -> AttachmentReport {
    let report = report_for(target, Some(netns), Status::Clean);
    if target.config.skip_call {
        let mut report = report;
        report.status = Status::Skipped;
        report.message = Some("skip_call is set: router touches nothing here".into());
        return report;
    }
    match netns::is_netns(netns) {
        Ok(true) => {}
        Ok(false) => return gone_or_not_visible(report, netns),
        Err(e) => return with_error(report, &e),
    }
    let prev = match target.prev_view() {
        Ok(Some(prev)) => prev,
        Ok(None) => {
            let e = Error::InvalidPrevResult("CHECK needs a prevResult (the cached result)".into());
            return with_error(report, &e);
        }
        Err(e) => return with_error(report, &e),
    };
    match check_live(target, netns, &prev, repair, look, report.clone()) {
        Ok(report) => report,
        // The netns went away while it was being read.
        Err(e) if e.code() == Code::UnknownContainer => gone(report, netns),
        Err(e) => with_error(report, &e),
    }
}

fn drift_now(
    target: &Resolved,
    att: &Attachment,
    prev: &PrevView,
    snapshots: &LiveSnapshot,
    read: NodeRead,
) -> Result<Prepared> {
    let prepare = match read {
        NodeRead::Whole => prepare,
        NodeRead::Owned => prepare_owned,
    };
    prepare(
        Mode::Add,
        &target.config,
        att,
        Some(prev),
        snapshots,
        &target.records(),
    )
}

fn check_live(
    target: &Resolved,
    netns: &Path,
    prev: &PrevView,
    repair: bool,
    look: NodeRead,
    mut report: AttachmentReport,
) -> Result<AttachmentReport> {
    let att = target.attachment(Some(netns.to_path_buf()));
    // One visitor of the pod netns for the attachment's reads and repair.
    let pod = Some(Arc::new(NetnsVisitor::new(netns.to_path_buf())));
    let snapshots = LiveSnapshot::in_pod(pod.clone());
    let found = drift_now(target, &att, prev, &snapshots, look)?;
    if found.plan.is_empty() {
        return Ok(report);
    }
    report.drifted(&found.plan);
    if !repair {
        return Ok(report);
    }
    let records = target.records();
    let executor = LiveExecutor::in_pod(pod);
    let world = World {
        snapshots: &snapshots,
        executor: &executor,
        records: &records,
        host: &records,
    };
    let inputs = target.inputs(netns);
    let applied = match reconcile::repair(&target.config, &att, prev, &inputs, &world) {
        Ok(applied) => applied,
        Err(e) => return Ok(with_error(report, &e)),
    };
    let left = drift_now(target, &att, prev, &snapshots, look)?;
    report.repair = Some(Repair::of(&applied, &left.plan));
    if left.plan.is_empty() {
        report.status = Status::Repaired;
    }
    Ok(report)
}
