//! operator: what `router plan`, `router check` and `router snapshot` do on a node. Resolves
//! an attachment (config, prevResult, container id, netns) from files or the runtime's
//! result cache, then plans, checks or repairs it through reconcile with the live backends:
//! LiveSnapshot, LiveExecutor and the records (and host lock) in the config's data_dir, so
//! what it reports is what ADD and CHECK would compute. Prints nothing (cli does); every
//! decision about routes is reconcile's.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::cache::{self, CacheEntry};
use crate::config::{parse_netconf, plugin_from_conflist_or_plugin, AllowedDirs, Config, PrevView};
use crate::error::{Code, Error, Result};
use crate::execute::LiveExecutor;
use crate::model::{Mode, Record};
use crate::netns;
use crate::reconcile::{self, prepare, snapshot_request, Attachment, Prepared, World};
use crate::record::{FileRecords, MemRecords, RecordStore};
use crate::render::{drifts, op_command};
use crate::report::{AttachmentReport, CheckReport, Repair, RunInfo, Status};
use crate::snapshot::{FileSnapshot, LiveSnapshot, SnapshotRequest};

/// The container id of a plan that names none (offline, from files only).
pub const OFFLINE_CONTAINER_ID: &str = "offline";

/// Where the inputs of one attachment come from, as the command line says.
#[derive(Clone, Copy, Debug)]
pub struct Sources<'a> {
    /// A plugin object or a conflist; without it the conflist cached with the result.
    pub config: Option<&'a Path>,
    /// The prevResult; without it the cached result (with a container id), else the
    /// config's own `prevResult`.
    pub prev_result: Option<&'a Path>,
    pub cache_dir: &'a Path,
    pub container_id: Option<&'a str>,
    pub ifname: &'a str,
    /// Where the config's log file and data_dir may lie.
    pub allowed: &'a AllowedDirs,
}

/// One attachment with its inputs resolved.
#[derive(Clone, Debug)]
pub struct Target {
    pub config: Config,
    pub prev: Option<Value>,
    pub container_id: String,
    pub ifname: String,
    /// The cache entry the inputs came from, if any.
    pub entry: Option<CacheEntry>,
}

impl Target {
    fn attachment(&self, netns: Option<PathBuf>) -> Attachment {
        Attachment {
            container_id: self.container_id.clone(),
            ifname: self.ifname.clone(),
            netns,
        }
    }

    fn prev_view(&self) -> Result<Option<PrevView>> {
        self.prev.as_ref().map(PrevView::parse).transpose()
    }

    /// The pod netns: the one given, else the one libcni recorded.
    pub fn netns_or_cached(&self, given: Option<&Path>) -> Option<PathBuf> {
        given
            .map(Path::to_path_buf)
            .or_else(|| self.entry.as_ref().and_then(|e| e.netns.clone()))
    }

    /// The records ADD and CHECK would read: those in the config's data_dir.
    fn records(&self) -> FileRecords {
        FileRecords::confined(&self.config.data_root, &self.config.data_dir)
    }
}

pub fn read_json(path: &Path, what: &str) -> Result<Value> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::io(format!("reading {what} {}", path.display()), e))?;
    serde_json::from_str(&text).map_err(|e| Error::Decode {
        what: format!("{what} {}", path.display()),
        reason: e.to_string(),
    })
}

/// Reads an attachment record file (what ADD wrote in data_dir).
pub fn read_record(path: &Path) -> Result<Record> {
    serde_json::from_value(read_json(path, "record")?).map_err(|e| Error::Decode {
        what: format!("record {}", path.display()),
        reason: e.to_string(),
    })
}

fn missing_input(what: &str) -> Error {
    Error::InvalidEnv(format!("missing input: {what}"))
}

/// The network name of a config, which names its cache entry.
fn network_name(config: &Value) -> Option<String> {
    config.get("name").and_then(Value::as_str).map(String::from)
}

/// Resolves config, prevResult and container id. The cache is read when the config is not
/// given, or when a container id is given without a prevResult file.
pub fn resolve(src: &Sources<'_>) -> Result<Target> {
    let given = src.config.map(|p| read_json(p, "config")).transpose()?;
    let needs_cache = given.is_none() || (src.prev_result.is_none() && src.container_id.is_some());
    let entry = if needs_cache {
        let container_id = src.container_id.ok_or_else(|| {
            missing_input("--config, or --container-id to find the conflist in the result cache")
        })?;
        let network = given.as_ref().and_then(network_name);
        Some(cache::find(
            src.cache_dir,
            container_id,
            src.ifname,
            network.as_deref(),
        )?)
    } else {
        None
    };
    let config_json = match (given, &entry) {
        (Some(config), _) => config,
        (None, Some(entry)) => entry.config.clone(),
        (None, None) => return Err(missing_input("--config")),
    };
    let netconf = parse_netconf(&plugin_from_conflist_or_plugin(config_json)?, src.allowed)?;
    let prev = match src.prev_result {
        Some(path) => Some(read_json(path, "prevResult")?),
        None => entry
            .as_ref()
            .and_then(|e| e.result.clone())
            .or(netconf.prev_result),
    };
    Ok(Target {
        config: netconf.config,
        prev,
        container_id: src.container_id.unwrap_or(OFFLINE_CONTAINER_ID).to_string(),
        ifname: src.ifname.to_string(),
        entry,
    })
}

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
    target: &Target,
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
            &LiveSnapshot,
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
pub fn snapshot_request_for(target: &Target, netns: Option<PathBuf>) -> Result<SnapshotRequest> {
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

fn report_for(target: &Target, netns: Option<&Path>, status: Status) -> AttachmentReport {
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

fn with_error(mut report: AttachmentReport, error: &Error) -> AttachmentReport {
    report.status = Status::Error;
    report.message = Some(error.to_string());
    report.error_code = Some(error.code().number());
    report
}

fn gone(mut report: AttachmentReport, netns: &Path) -> AttachmentReport {
    report.status = Status::Gone;
    report.netns = Some(netns.display().to_string());
    report.message = Some("the pod netns is gone".into());
    report
}

/// CHECK for one attachment, timed: the report carries how long it took.
pub fn check(target: &Target, netns: &Path, repair: bool) -> AttachmentReport {
    let clock = Instant::now();
    let mut report = check_attachment(target, netns, repair);
    report.duration = clock.elapsed();
    report
}

/// `router check` of the one attachment the operator named.
pub fn check_named(target: &Target, netns: &Path, repair: bool) -> CheckReport {
    let clock = RunClock::start();
    clock.report(vec![check(target, netns, repair)], true)
}

/// When a whole `router check` started, to stamp its report when it ends.
struct RunClock {
    started: Duration,
    clock: Instant,
}

impl RunClock {
    fn start() -> RunClock {
        RunClock {
            started: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default(),
            clock: Instant::now(),
        }
    }

    /// The report of the run: its attachments, when it started, how long it took, where.
    fn report(self, attachments: Vec<AttachmentReport>, named: bool) -> CheckReport {
        CheckReport {
            attachments,
            named,
            run: RunInfo {
                started: self.started,
                took: self.clock.elapsed(),
                host: hostname(),
            },
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
fn check_attachment(target: &Target, netns: &Path, repair: bool) -> AttachmentReport {
    let report = report_for(target, Some(netns), Status::Clean);
    if target.config.skip_call {
        let mut report = report;
        report.status = Status::Skipped;
        report.message = Some("skip_call is set: router touches nothing here".into());
        return report;
    }
    match netns::is_netns(netns) {
        Ok(true) => {}
        Ok(false) => return gone(report, netns),
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
    match check_live(target, netns, &prev, repair, report.clone()) {
        Ok(report) => report,
        // The netns went away while it was being read.
        Err(e) if e.code() == Code::UnknownContainer => gone(report, netns),
        Err(e) => with_error(report, &e),
    }
}

fn drift_now(target: &Target, att: &Attachment, prev: &PrevView) -> Result<Prepared> {
    prepare(
        Mode::Add,
        &target.config,
        att,
        Some(prev),
        &LiveSnapshot,
        &target.records(),
    )
}

fn check_live(
    target: &Target,
    netns: &Path,
    prev: &PrevView,
    repair: bool,
    mut report: AttachmentReport,
) -> Result<AttachmentReport> {
    let att = target.attachment(Some(netns.to_path_buf()));
    let found = drift_now(target, &att, prev)?;
    if found.plan.is_empty() {
        return Ok(report);
    }
    report.status = Status::Drift;
    report.drifts = drifts(&found.plan);
    if !repair {
        return Ok(report);
    }
    let records = target.records();
    let executor = LiveExecutor::new(Some(netns.to_path_buf()));
    let world = World {
        snapshots: &LiveSnapshot,
        executor: &executor,
        records: &records,
    };
    let applied = match reconcile::repair(&target.config, &att, prev, &world) {
        Ok(applied) => applied,
        Err(e) => return Ok(with_error(report, &e)),
    };
    let left = drift_now(target, &att, prev)?;
    report.repair = Some(Repair {
        applied: applied.iter().map(op_command).collect(),
        remaining: drifts(&left.plan),
    });
    if left.plan.is_empty() {
        report.status = Status::Repaired;
    }
    Ok(report)
}

/// `check --all`: every attachment in the result cache whose chain runs router. The netns
/// is the one libcni recorded, else `netns_dir/<container id>`.
pub fn check_all(
    cache_dir: &Path,
    netns_dir: &Path,
    repair: bool,
    allowed: &AllowedDirs,
) -> Result<CheckReport> {
    let clock = RunClock::start();
    let attachments = cache::walk(cache_dir)?
        .into_iter()
        .map(|(file, entry)| match entry {
            Ok(entry) => check_entry(entry, netns_dir, repair, allowed),
            Err(e) => not_an_entry(&file, &e),
        })
        .collect();
    Ok(clock.report(attachments, false))
}

/// libcni skips files it cannot read as entries (legacy results, strays); so does this,
/// saying so.
fn not_an_entry(file: &Path, error: &Error) -> AttachmentReport {
    let mut report = AttachmentReport::new("", "", Status::Skipped);
    report.cache_entry = Some(file.display().to_string());
    report.message = Some(format!(
        "not a readable {} entry: {error}",
        cache::CACHE_KIND
    ));
    report
}

fn check_entry(
    entry: CacheEntry,
    netns_dir: &Path,
    repair: bool,
    allowed: &AllowedDirs,
) -> AttachmentReport {
    let recorded = entry.netns.is_some();
    let netns = entry
        .netns
        .clone()
        .unwrap_or_else(|| netns_dir.join(&entry.container_id));
    let mut report = AttachmentReport::new(&entry.container_id, &entry.ifname, Status::Skipped);
    report.network = Some(entry.network.clone());
    report.netns = Some(netns.display().to_string());
    report.cache_entry = Some(entry.file.display().to_string());
    if !entry.has_router() {
        report.message = Some("no router in the chain".into());
        return report;
    }
    let mut checked = match target_of(entry, allowed) {
        Ok(target) => check(&target, &netns, repair),
        Err(e) => return with_error(report, &e),
    };
    if checked.status == Status::Gone && !recorded {
        checked.message =
            Some("the cache entry records no netns and there is none in --netns-dir".into());
    }
    checked
}

/// An attachment from its cache entry alone: the cached conflist and result.
fn target_of(entry: CacheEntry, allowed: &AllowedDirs) -> Result<Target> {
    let netconf = parse_netconf(
        &plugin_from_conflist_or_plugin(entry.config.clone())?,
        allowed,
    )?;
    Ok(Target {
        config: netconf.config,
        prev: entry.result.clone(),
        container_id: entry.container_id.clone(),
        ifname: entry.ifname.clone(),
        entry: Some(entry),
    })
}
