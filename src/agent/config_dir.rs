//! agent::config_dir: `router agent --config-dir DIR`: a directory of network configs (a
//! ConfigMap mounted into the DaemonSet) read every second; each file whose content changed
//! is rolled out to the attachments of its network with `router rollout`'s safe defaults
//! (no pruning, keys a live pod cannot take refused), each outcome logged and counted. It
//! must not force anything a rollout refuses, nor decide about routes (`rollout` does).
//!
//! Read by polling rather than inotify: the kubelet updates a ConfigMap volume by swapping
//! the `..data` symlink to a new directory, which inotify on the directory reports as a
//! create and rename of links whose targets then still have to be read; one read a second of
//! a few small files, compared by content hash (`rollout::ConfigDir`), sees every swap
//! whole and costs next to nothing.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::metrics::Metrics;
use crate::config::AllowedDirs;
use crate::error::{Error, Result};
use crate::operator::Scan;
use crate::report::{RolloutReport, RolloutStatus};
use crate::rollout::{rollout_all, ConfigDir, DirConfig, RolloutOptions, Source};

/// How often the directory is read.
const POLL: Duration = Duration::from_secs(1);

/// How long a rollout that failed (or stopped before reaching every attachment) waits
/// before it is tried again with the same config: a transient failure (a pod being
/// deleted, netlink busy) mends itself, and a lasting one is not retried in a tight loop.
const RETRY_AFTER: Duration = Duration::from_secs(30);

/// What the watcher needs of the agent's options.
pub struct Watch {
    pub dir: PathBuf,
    pub cache_dirs: Vec<PathBuf>,
    pub data_dirs: Vec<PathBuf>,
    pub allowed: AllowedDirs,
    /// Plan and report only (`--report-only`): nothing is applied.
    pub report_only: bool,
}

/// Starts the watcher on a thread of its own: a rollout takes its time per attachment
/// (under the attachment's lock), and must not hold up the agent's event loop.
pub fn spawn(watch: Watch, metrics: Arc<Metrics>) -> Result<()> {
    std::thread::Builder::new()
        .name("config-dir".into())
        .spawn(move || run(watch, &metrics))
        .map(drop)
        .map_err(|e| Error::io("starting the --config-dir watcher", e))
}

fn run(watch: Watch, metrics: &Metrics) {
    let mut dir = ConfigDir::new(watch.dir.clone());
    // Files whose latest rollout failed, and when they may be tried again.
    let mut retry: BTreeMap<String, Instant> = BTreeMap::new();
    loop {
        match dir.read() {
            Ok(configs) => {
                for config in configs {
                    let due = retry
                        .get(&config.file)
                        .is_some_and(|at| *at <= Instant::now());
                    if config.changed || due {
                        retry.remove(&config.file);
                        if !roll(&watch, &config, metrics) {
                            retry.insert(config.file.clone(), Instant::now() + RETRY_AFTER);
                        }
                    }
                }
            }
            Err(e) => {
                metrics.config_dir_errors.inc();
                tracing::warn!(dir = %watch.dir.display(), error = %e, "cannot read the config directory");
            }
        }
        std::thread::sleep(POLL);
    }
}

/// Rolls one file's config out; false when it should be tried again (a failure, or
/// attachments not reached). A file that is no config, or a refusal, is reported and left:
/// it is tried again when the file changes.
fn roll(watch: &Watch, config: &DirConfig, metrics: &Metrics) -> bool {
    let source: &Source = match &config.source {
        Ok(source) => source,
        Err(e) => {
            metrics.config_dir_errors.inc();
            tracing::warn!(file = %config.file, error = %e, "the config directory holds a file that is no router config: ignored");
            return true;
        }
    };
    let scan = Scan {
        cache_dirs: &watch.cache_dirs,
        data_dirs: &watch.data_dirs,
    };
    let options = RolloutOptions {
        scan,
        allowed: &watch.allowed,
        network: None,
        prune: false,
        dry_run: watch.report_only,
        max_parallel: 1,
        continue_on_error: false,
    };
    tracing::info!(file = %config.file, network = %source.network, report_only = watch.report_only, "rolling out a changed config");
    match rollout_all(source, &options) {
        Ok(report) => {
            log_report(&config.file, &report, metrics);
            report.count(RolloutStatus::Failed) == 0 && report.count(RolloutStatus::NotReached) == 0
        }
        Err(e) => {
            metrics.config_dir_errors.inc();
            tracing::warn!(file = %config.file, network = %source.network, error = %e, "the rollout could not start");
            false
        }
    }
}

/// One log line per attachment (warn when refused or failed, naming why) and the counts.
fn log_report(file: &str, report: &RolloutReport, metrics: &Metrics) {
    for a in &report.attachments {
        metrics.rolled_out(a.status);
        let reasons = a.reasons.join("; ");
        match a.status {
            RolloutStatus::Refused | RolloutStatus::Failed => tracing::warn!(
                file,
                network = %report.network,
                container = %a.container_id,
                ifname = %a.ifname,
                status = a.status.word(),
                reasons = %reasons,
                "rollout"
            ),
            _ => tracing::info!(
                file,
                network = %report.network,
                container = %a.container_id,
                ifname = %a.ifname,
                status = a.status.word(),
                applied = a.applied.len(),
                "rollout"
            ),
        }
    }
}
