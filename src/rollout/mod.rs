//! rollout: a new config for the live attachments of one network on this node (found as
//! `check --all` finds them), refused when unsafe, else applied one attachment at a time
//! through reconcile's repair path under its lock. Must not decide about routes or print.
//! Here `rollout_all`; `source` (what `--config` holds), `safety`, `config_dir` (the agent's).

mod config_dir;
mod safety;
mod source;

pub use config_dir::{ConfigDir, DirConfig};
pub use safety::live_key_changes;
pub use source::Source;

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use crate::config::{parse_netconf, AllowedDirs, Config};
use crate::error::{Code, Error, Result};
use crate::execute::LiveExecutor;
use crate::model::Mode;
use crate::netns::{self, NetnsVisitor};
use crate::operator::{locate_all, Located, Resolved, RunClock, Scan};
use crate::reconcile::{self, owned_removals, prepare, PlanFailure, World};
use crate::record::RecordStore;
use crate::render::NetnsLabels;
use crate::report::{AttachmentReport, AttachmentRollout, RolloutReport, RolloutStatus, Status};
use crate::snapshot::LiveSnapshot;

/// How a host netns is labelled in a rollout's plans: the netns the rollout runs in.
const LOCAL_HOST_LABEL: &str = "(local)";

/// How a rollout goes.
#[derive(Clone, Copy, Debug)]
pub struct RolloutOptions<'a> {
    /// Where the attachments are found (`check --all`'s caches and data_dirs).
    pub scan: Scan<'a>,
    /// Where the configs' log file and data_dir may lie.
    pub allowed: &'a AllowedDirs,
    /// The network whose attachments get the config; None: the config's own `name`.
    pub network: Option<&'a str>,
    /// Apply plans that remove owned objects (a CIDR dropped, a priority moved).
    pub prune: bool,
    /// Plan only; touch nothing.
    pub dry_run: bool,
    /// How many attachments are rolled out at once (at least 1).
    pub max_parallel: usize,
    /// Go on past an attachment that failed.
    pub continue_on_error: bool,
}

/// Rolls `source` out to every attachment of its network on this node, as `options` say.
/// An error only when nothing could be tried (the config is invalid, a cache directory
/// unreadable); each attachment's fate is in the report.
pub fn rollout_all(source: &Source, options: &RolloutOptions<'_>) -> Result<RolloutReport> {
    let clock = RunClock::start();
    let named = options.network.map(|network| source.for_network(network));
    let source = named.as_ref().unwrap_or(source);
    let new = parse_netconf(&source.plugin, options.allowed)?.config;
    let network = source.network.clone();
    let mut targets = Vec::new();
    let mut unusable = Vec::new();
    for located in locate_all(&options.scan, options.allowed)? {
        if located.network() != Some(network.as_str()) {
            continue;
        }
        match located {
            Located::Found { target, netns } => targets.push((*target, netns)),
            Located::Reported(report) if report.status == Status::Error => {
                unusable.push(not_located(*report));
            }
            Located::Reported(_) => {}
        }
    }
    targets
        .sort_by(|(a, _), (b, _)| (&a.container_id, &a.ifname).cmp(&(&b.container_id, &b.ifname)));
    let mut attachments = unusable;
    let batch = options.max_parallel.max(1);
    let mut stopped_at: Option<String> = None;
    for chunk in targets.chunks(batch) {
        if let Some(failed) = &stopped_at {
            attachments.extend(chunk.iter().map(|(t, n)| not_reached(t, n, failed)));
            continue;
        }
        let done: Vec<AttachmentRollout> = std::thread::scope(|scope| {
            let handles: Vec<_> = chunk
                .iter()
                .map(|(target, netns)| {
                    let new = &new;
                    scope.spawn(move || roll_one(target, netns, new, source, options))
                })
                .collect();
            handles
                .into_iter()
                .zip(chunk)
                .map(|(handle, (target, netns))| {
                    handle.join().unwrap_or_else(|_| {
                        let mut out = base_report(target, netns, RolloutStatus::Failed);
                        out.reasons
                            .push("the rollout of this attachment panicked".into());
                        out
                    })
                })
                .collect()
        });
        if !options.continue_on_error {
            stopped_at = done
                .iter()
                .find(|a| a.status == RolloutStatus::Failed)
                .map(|a| format!("{}/{}", a.container_id, a.ifname));
        }
        attachments.extend(done);
    }
    Ok(RolloutReport {
        network,
        dry_run: options.dry_run,
        prune: options.prune,
        attachments,
        run: clock.info(),
    })
}

fn base_report(target: &Resolved, netns: &Path, status: RolloutStatus) -> AttachmentRollout {
    let mut out = AttachmentRollout::new(&target.container_id, &target.ifname, status);
    out.network = target
        .entry
        .as_ref()
        .map(|e| e.network.clone())
        .or_else(|| target.config.name.clone());
    out.netns = Some(netns.display().to_string());
    out.labels = NetnsLabels {
        pod: netns.display().to_string(),
        host: LOCAL_HOST_LABEL.to_string(),
    };
    out
}

fn not_reached(target: &Resolved, netns: &Path, failed: &str) -> AttachmentRollout {
    let mut out = base_report(target, netns, RolloutStatus::NotReached);
    out.reasons.push(format!(
        "the rollout stopped at the failure of {failed} (--continue-on-error goes on)"
    ));
    out
}

/// An attachment of the network that `check --all` could not locate or read: it cannot be
/// rolled out, which is a failure.
fn not_located(report: AttachmentReport) -> AttachmentRollout {
    let mut out =
        AttachmentRollout::new(&report.container_id, &report.ifname, RolloutStatus::Failed);
    out.network = report.network;
    out.netns = report.netns;
    out.error_code = report.error_code;
    out.reasons.extend(report.message);
    out
}

fn no_record(target: &Resolved) -> Error {
    Error::UnknownContainer(format!(
        "{}/{} has no record in {}: the pod was deleted (or router never recorded it)",
        target.container_id,
        target.ifname,
        target.data_dir.display()
    ))
}

/// One attachment's rollout, timed, its failure sorted into refused, gone or failed.
fn roll_one(
    target: &Resolved,
    netns: &Path,
    new: &Config,
    source: &Source,
    options: &RolloutOptions<'_>,
) -> AttachmentRollout {
    let clock = Instant::now();
    let mut out = base_report(target, netns, RolloutStatus::Failed);
    match roll(target, netns, new, source, options, &mut out) {
        Ok(status) => out.status = status,
        Err(e) => {
            out.status = match e.code() {
                Code::RolloutRefused => RolloutStatus::Refused,
                Code::UnknownContainer => RolloutStatus::Gone,
                _ => RolloutStatus::Failed,
            };
            out.error_code = Some(e.code().number());
            out.reasons.push(e.to_string());
        }
    }
    out.duration = clock.elapsed();
    out
}

fn roll(
    target: &Resolved,
    netns: &Path,
    new: &Config,
    source: &Source,
    options: &RolloutOptions<'_>,
    out: &mut AttachmentRollout,
) -> reconcile::Result<RolloutStatus> {
    if !netns::is_netns(netns)? {
        return Err(
            Error::UnknownContainer(format!("the pod netns {} is gone", netns.display())).into(),
        );
    }
    let refused = live_key_changes(&target.config, new, &target.ifname);
    if !refused.is_empty() {
        out.error_code = Some(Code::RolloutRefused.number());
        out.reasons.extend(refused.iter().map(ToString::to_string));
        return Ok(RolloutStatus::Refused);
    }
    let prev = target
        .prev_view()?
        .ok_or_else(|| {
            Error::InvalidPrevResult(
                "the attachment has no prevResult to plan from (neither its cache entry nor its record holds one)".into(),
            )
        })?;
    let att = target.attachment(Some(netns.to_path_buf()));
    let records = target.records();
    // Planned and applied under the attachment's lock, which the runtime's ADD, CHECK and
    // DEL hold for their whole run: a DEL half done would look like drift to undo, and a
    // DEL done removed the record, so re-creating what it removed would leak it
    // (reconcile::rollout reads the record again under the lock too). A dry run changes
    // nothing, so it takes no lock (and makes no lock file).
    let lock = match options.dry_run {
        true => None,
        false => records.lock_attachment(&att.container_id, &att.ifname, false)?,
    };
    // Without a record router has nothing of this attachment to roll out to: its DEL ran
    // (the runtime's cache entry goes after it), or router never recorded it.
    let recorded = match &lock {
        Some(lock) => lock.record_exists(),
        None => records.load(&att.container_id, &att.ifname)?.is_some(),
    };
    if !recorded {
        return Err(no_record(target).into());
    }
    // One visitor of the pod netns for the attachment's reads and writes.
    let pod = Some(Arc::new(NetnsVisitor::new(netns.to_path_buf())));
    let snapshots = LiveSnapshot::in_pod(pod.clone());
    let planned = prepare(Mode::Add, new, &att, Some(&prev), &snapshots, &records)?;
    // A dry run's DEL may have removed the record since: a plan without it is a first ADD's.
    if planned.previous_record.is_none() {
        return Err(no_record(target).into());
    }
    out.plan = Some(planned.plan.clone());
    if !planned.plan.blocked.is_empty() {
        return Err(PlanFailure::Blocked(planned.plan.blocked.clone()).into());
    }
    let removals = owned_removals(&planned.plan.ops);
    if !options.prune && !removals.is_empty() {
        return Err(PlanFailure::WouldRemove(removals).into());
    }
    if planned.plan.is_empty() && target.config_json == source.plugin {
        return Ok(RolloutStatus::Unchanged);
    }
    if options.dry_run {
        return Ok(RolloutStatus::Planned);
    }
    let executor = LiveExecutor::in_pod(pod);
    let world = World {
        snapshots: &snapshots,
        executor: &executor,
        records: &records,
        host: &records,
    };
    let inputs = target.inputs(netns);
    out.applied = reconcile::rollout(
        new,
        &att,
        &prev,
        &inputs,
        &source.plugin,
        options.prune,
        &world,
    )?;
    let left = prepare(Mode::Add, new, &att, Some(&prev), &snapshots, &records)?;
    drop(lock);
    if !left.plan.is_empty() {
        return Err(PlanFailure::NotKept(left.plan).into());
    }
    Ok(RolloutStatus::RolledOut)
}
