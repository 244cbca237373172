//! agent::repair: the agent's one repair thread. For each job it takes the attachment's
//! lock without waiting (a plugin run in progress: come back later), re-reads the record
//! under it (none: DEL removed it, the attachment is forgotten and nothing is re-created),
//! locates the attachment as `check --all` does and runs the `check --repair` path on it
//! (`operator::check`; report-only: `check` without repair). It logs one line per repaired
//! object and counts drifts, repairs and failures. Between jobs it holds nothing in any pod
//! netns. Must not decide what to repair (reconcile does) or when (the event loop does).

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::mpsc::UnboundedSender;

use super::metrics::{AttachmentState, Metrics};
use super::Why;
use crate::config::AllowedDirs;
use crate::netlink;
use crate::operator::{self, RecordKey, Scan};
use crate::record::{FileRecords, RecordStore, TryLock};
use crate::report::{AttachmentReport, Status};

/// One reconcile asked of the repair thread.
#[derive(Debug)]
pub struct Job {
    pub key: RecordKey,
    pub why: Why,
    /// When the first kernel event of the burst that asked for it arrived.
    pub first_event: Option<Instant>,
}

/// What the agent learns about an attachment from one job.
#[derive(Debug)]
pub enum Outcome {
    /// A plugin run (or another agent) holds the attachment: try again shortly.
    Busy,
    /// No record under the lock: DEL removed it. Forget it.
    Forgotten,
    /// Checked (and repaired where it drifted).
    Checked {
        facts: Facts,
        state: AttachmentState,
    },
}

/// The facts of an attachment the event loop maps events with.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Facts {
    /// The pod netns path, when the attachment could be located.
    pub netns: Option<PathBuf>,
    pub host_table: u32,
    /// The addresses its host side routes and holds neighbours toward (C's).
    pub host_dsts: BTreeSet<IpAddr>,
}

#[derive(Debug)]
pub struct Done {
    pub key: RecordKey,
    pub outcome: Outcome,
    /// The job's cause and first event, for a retry of a busy attachment.
    pub why: Why,
    pub first_event: Option<Instant>,
}

/// Where the repair thread finds attachments, and whether it may change anything.
pub struct Settings {
    pub cache_dirs: Vec<PathBuf>,
    pub data_dirs: Vec<PathBuf>,
    pub allowed: AllowedDirs,
    pub report_only: bool,
}

/// Runs jobs until the sender is dropped; each result goes back to the event loop.
pub fn serve(
    jobs: Receiver<Job>,
    done: UnboundedSender<super::Msg>,
    settings: Settings,
    metrics: Arc<Metrics>,
) {
    while let Ok(job) = jobs.recv() {
        let outcome = run(&job, &settings, &metrics);
        // The thread's netlink handles of the pod are closed after every job: an open
        // socket would keep a deleted pod's netns (and its macvlan) alive.
        netlink::close_other_netns_handles();
        let finished = Done {
            key: job.key,
            outcome,
            why: job.why,
            first_event: job.first_event,
        };
        if done.send(super::Msg::Done(finished)).is_err() {
            return;
        }
    }
}

fn run(job: &Job, settings: &Settings, metrics: &Metrics) -> Outcome {
    let key = &job.key;
    let records = FileRecords::new(&key.data_dir);
    let lock = match records.try_lock_attachment(&key.container_id, &key.ifname) {
        Ok(TryLock::Held(lock)) => lock,
        Ok(TryLock::Busy) => return Outcome::Busy,
        Ok(TryLock::Gone) => return Outcome::Forgotten,
        Err(e) => {
            tracing::warn!(container = %key.container_id, ifname = %key.ifname, error = %e, "cannot take the attachment lock");
            return Outcome::Checked {
                facts: Facts::default(),
                state: AttachmentState::Error,
            };
        }
    };
    let record = match records.load(&key.container_id, &key.ifname) {
        Ok(Some(record)) => record,
        Ok(None) => return Outcome::Forgotten,
        Err(e) => {
            tracing::warn!(container = %key.container_id, ifname = %key.ifname, error = %e, "cannot read the record");
            return Outcome::Checked {
                facts: Facts::default(),
                state: AttachmentState::Error,
            };
        }
    };
    let mut facts = Facts {
        netns: None,
        host_table: record.host_rule_table,
        host_dsts: record
            .host
            .routes
            .keys()
            .map(|k| k.dst.addr())
            .chain(record.host.neighbours.keys().map(|k| k.addr))
            .collect(),
    };
    let scan = Scan {
        cache_dirs: &settings.cache_dirs,
        data_dirs: &settings.data_dirs,
    };
    let report = match operator::locate(&scan, &settings.allowed, key, record) {
        Ok((target, netns)) => {
            facts.netns = Some(netns.clone());
            // Only what the attachment can own on the node: the agent checks every
            // attachment at each resync, and many after one node-wide event; reading the
            // whole node for each would make that cost grow with the square of the pods.
            operator::check_reading(
                &target,
                &netns,
                !settings.report_only,
                operator::NodeRead::Owned,
            )
        }
        Err(report) => *report,
    };
    drop(lock);
    let state = account(&report, job, metrics);
    Outcome::Checked { facts, state }
}

/// Counts what the report found and did, and logs each repaired object and each object
/// found in the way; the attachment's state.
fn account(report: &AttachmentReport, job: &Job, metrics: &Metrics) -> AttachmentState {
    let (container, ifname) = (&report.container_id, &report.ifname);
    for drift in &report.drifts {
        metrics.drift_found(drift.kind, drift.state);
        if drift.state == crate::render::DriftState::Blocked {
            tracing::warn!(
                container = %container,
                ifname = %ifname,
                netns = ?drift.netns,
                object = %drift.object,
                found = %drift.actual,
                cause = %job.why,
                "an unowned object is in the way: reported, left alone"
            );
        }
    }
    match report.status {
        Status::Clean | Status::Skipped => AttachmentState::Clean,
        Status::Gone | Status::Stale => AttachmentState::Gone,
        Status::Drift if report.repair.is_some() => {
            // Repaired, and still drifted when checked again: the kernel did not keep
            // what was applied, or something undid it at once.
            metrics.repair_failures.inc();
            let left = report.repair.as_ref().map_or(0, |r| r.remaining.len());
            tracing::warn!(container = %container, ifname = %ifname, left, cause = %job.why, "the repair left drift behind");
            AttachmentState::Drift
        }
        Status::Drift => {
            for drift in &report.drifts {
                tracing::warn!(container = %container, ifname = %ifname, netns = ?drift.netns, object = %drift.object, expected = %drift.expected, actual = %drift.actual, cause = %job.why, "drift found (report only)");
            }
            AttachmentState::Drift
        }
        Status::Repaired => {
            for drift in &report.drifts {
                metrics.repaired(drift.kind);
                let node_cause = drift.cause.as_ref().map(ToString::to_string);
                tracing::info!(
                    container = %container,
                    ifname = %ifname,
                    netns = ?drift.netns,
                    object = %drift.object,
                    was = %drift.actual,
                    cause = %job.why,
                    node_cause,
                    "repaired"
                );
            }
            if let Some(first) = job.first_event {
                metrics
                    .event_to_repair
                    .observe(first.elapsed().as_secs_f64());
            }
            AttachmentState::Repaired
        }
        Status::Error => {
            if !report.drifts.is_empty() {
                metrics.repair_failures.inc();
            }
            tracing::warn!(
                container = %container,
                ifname = %ifname,
                error = report.message.as_deref().unwrap_or(""),
                code = report.error_code,
                cause = %job.why,
                "attachment in error"
            );
            AttachmentState::Error
        }
    }
}
