//! operator: what `router plan`, `router check` and `router snapshot` do on a node. Resolves
//! an attachment (config, prevResult, container id, netns) from files, the runtime's
//! result cache or the record ADD wrote, then plans, checks or repairs it through reconcile
//! with the live backends: LiveSnapshot, LiveExecutor and the records (and host lock) in
//! data_dir, so what it reports is what ADD and CHECK would compute. Prints nothing (cli
//! does); every decision about routes is reconcile's.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::cache::{self, CacheEntry};
use crate::config::{parse_netconf, plugin_from_conflist_or_plugin, AllowedDirs, Config, PrevView};
use crate::error::{Code, Error, Result};
use crate::execute::LiveExecutor;
use crate::model::{AddInputs, Mode, Record};
use crate::netns::{self, NetnsWorker};
use crate::reconcile::{self, prepare, snapshot_request, Attachment, Prepared, World};
use crate::record::{FileRecords, MemRecords, RecordStore};
use crate::render::drifts;
use crate::report::{AttachmentReport, CheckReport, Repair, RunInfo, Status};
use crate::snapshot::{FileSnapshot, LiveSnapshot, SnapshotRequest};

/// The data_dir of a config that sets none: where `check --all` reads records by default.
pub const DEFAULT_DATA_DIR: &str = "/run/cni/router";

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
    /// The result caches to look in (each holding `results/`).
    pub cache_dirs: &'a [PathBuf],
    pub container_id: Option<&'a str>,
    pub ifname: &'a str,
    /// Where the config's log file and data_dir may lie.
    pub allowed: &'a AllowedDirs,
}

/// One attachment with its inputs resolved.
#[derive(Clone, Debug)]
pub struct Resolved {
    pub config: Config,
    /// The plugin config as JSON without prevResult: what a repair records as the inputs
    /// of a record that has none.
    pub config_json: Value,
    pub prev: Option<Value>,
    pub container_id: String,
    pub ifname: String,
    /// The cache entry the inputs came from, if any.
    pub entry: Option<CacheEntry>,
    /// Where the records are: the config's data_dir, or where `check --all` found this
    /// attachment's record (a data_dir may be mounted elsewhere in a checker container).
    pub data_dir: PathBuf,
}

impl Resolved {
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

    /// The pod netns: the one given, else the one libcni recorded in the cache entry (since
    /// libcni 1.2), else the one ADD recorded.
    pub fn netns_known(&self, given: Option<&Path>) -> Option<PathBuf> {
        given
            .map(Path::to_path_buf)
            .or_else(|| self.entry.as_ref().and_then(|e| e.netns.clone()))
            .or_else(|| recorded_netns(self.record().as_ref()))
    }

    /// The records ADD and CHECK would read: those in data_dir.
    fn records(&self) -> FileRecords {
        // The config's data_dir is judged against its allowed root; one the operator
        // named (`--data-dir`, where `check --all` found the record) is trusted as given.
        if self.data_dir == self.config.data_dir {
            FileRecords::confined(&self.config.data_root, &self.data_dir)
        } else {
            FileRecords::new(&self.data_dir)
        }
    }

    /// This attachment's record, if there is a readable one.
    fn record(&self) -> Option<Record> {
        self.records()
            .load(&self.container_id, &self.ifname)
            .ok()
            .flatten()
    }

    /// What a repair records when the record holds no inputs of an ADD.
    fn inputs(&self, netns: &Path) -> AddInputs {
        AddInputs {
            netns: Some(netns.to_path_buf()),
            config: self.config_json.clone(),
            prev_result: self.prev.clone().unwrap_or(Value::Null),
        }
    }
}

fn recorded_netns(record: Option<&Record>) -> Option<PathBuf> {
    record.and_then(|r| r.inputs.as_ref()?.netns.clone())
}

/// A plugin config without its prevResult, as ADD records it.
fn without_prev_result(plugin: &Value) -> Value {
    AddInputs::new(None, plugin).config
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
pub fn resolve(src: &Sources<'_>) -> Result<Resolved> {
    let given = src.config.map(|p| read_json(p, "config")).transpose()?;
    let needs_cache = given.is_none() || (src.prev_result.is_none() && src.container_id.is_some());
    let entry = if needs_cache {
        let container_id = src.container_id.ok_or_else(|| {
            missing_input("--config, or --container-id to find the conflist in the result cache")
        })?;
        let network = given.as_ref().and_then(network_name);
        Some(cache::find(
            src.cache_dirs,
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
    let plugin = plugin_from_conflist_or_plugin(config_json)?;
    let netconf = parse_netconf(&plugin, src.allowed)?;
    let prev = match src.prev_result {
        Some(path) => Some(read_json(path, "prevResult")?),
        None => entry
            .as_ref()
            .and_then(|e| e.result.clone())
            .or(netconf.prev_result),
    };
    Ok(Resolved {
        data_dir: netconf.config.data_dir.clone(),
        config: netconf.config,
        config_json: without_prev_result(&plugin),
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

fn report_for(target: &Resolved, netns: Option<&Path>, status: Status) -> AttachmentReport {
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

/// CHECK for one attachment, timed: the report carries how long it took.
pub fn check(target: &Resolved, netns: &Path, repair: bool) -> AttachmentReport {
    let clock = Instant::now();
    let mut report = check_attachment(target, netns, repair);
    report.duration = clock.elapsed();
    report
}

/// `router check` of the one attachment the operator named.
pub fn check_named(target: &Resolved, netns: &Path, repair: bool) -> CheckReport {
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
fn check_attachment(target: &Resolved, netns: &Path, repair: bool) -> AttachmentReport {
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
    match check_live(target, netns, &prev, repair, report.clone()) {
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
) -> Result<Prepared> {
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
    mut report: AttachmentReport,
) -> Result<AttachmentReport> {
    let att = target.attachment(Some(netns.to_path_buf()));
    // One worker in the pod netns for the attachment's reads and repair.
    let pod = Some(Arc::new(NetnsWorker::new(netns.to_path_buf())));
    let snapshots = LiveSnapshot::in_pod(pod.clone());
    let found = drift_now(target, &att, prev, &snapshots)?;
    if found.plan.is_empty() {
        return Ok(report);
    }
    report.status = Status::Drift;
    report.drifts = drifts(&found.plan);
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
    let left = drift_now(target, &att, prev, &snapshots)?;
    report.repair = Some(Repair {
        applied: applied.iter().map(ToString::to_string).collect(),
        remaining: drifts(&left.plan),
    });
    if left.plan.is_empty() {
        report.status = Status::Repaired;
    }
    Ok(report)
}

/// Where `check --all` looks.
#[derive(Clone, Copy, Debug)]
pub struct Scan<'a> {
    /// Result caches (each holding `results/`): the runtime's, Multus's.
    pub cache_dirs: &'a [PathBuf],
    /// data_dirs to read records from, besides those the cached configs name.
    pub data_dirs: &'a [PathBuf],
}

/// A record found by `check --all`, and the data_dir it was found in.
struct Found {
    dir: PathBuf,
    record: Record,
}

impl Found {
    fn file(&self) -> PathBuf {
        self.dir.join(format!(
            "{}-{}.json",
            self.record.container_id, self.record.ifname
        ))
    }
}

/// `check --all`: every attachment router has made on this node. The cache entries whose
/// chain runs router, each joined with its record (found in the data_dirs given and in
/// those the cached configs name); then the records no entry names, checked from the
/// config and prevResult ADD recorded. The cached config and result win over the record's;
/// the netns is the entry's (libcni 1.2), else the record's.
pub fn check_all(scan: &Scan<'_>, repair: bool, allowed: &AllowedDirs) -> Result<CheckReport> {
    let clock = RunClock::start();
    let mut attachments = Vec::new();
    let mut cached = Vec::new();
    for dir in scan.cache_dirs {
        for (file, entry) in cache::walk(dir)? {
            match entry {
                Ok(entry) if entry.has_router() => match target_of(entry.clone(), allowed) {
                    Ok(target) => cached.push(target),
                    Err(e) => attachments.push(with_error(entry_report(&entry), &e)),
                },
                Ok(entry) => attachments.push(no_router(entry)),
                Err(e) => attachments.push(not_an_entry(&file, &e)),
            }
        }
    }
    let mut data_dirs: BTreeSet<PathBuf> = scan.data_dirs.iter().cloned().collect();
    data_dirs.extend(cached.iter().map(|t| t.data_dir.clone()));
    let mut found = Vec::new();
    for dir in data_dirs {
        match FileRecords::new(&dir).all() {
            Ok(records) => found.extend(records.into_iter().map(|record| Found {
                dir: dir.clone(),
                record,
            })),
            Err(e) => attachments.push(unreadable_data_dir(&e)),
        }
    }
    for target in cached {
        let record = take_record(&mut found, &target);
        attachments.push(check_cached(target, record, repair));
    }
    for record in found {
        attachments.push(check_recorded(record, scan, repair, allowed));
    }
    Ok(clock.report(attachments, false))
}

/// The record of a cached attachment: in the config's data_dir, else one of the same
/// network found elsewhere (the data_dir mounted at another path).
fn take_record(found: &mut Vec<Found>, target: &Resolved) -> Option<Found> {
    let same = |f: &Found| {
        f.record.container_id == target.container_id && f.record.ifname == target.ifname
    };
    let network = target.entry.as_ref().map(|e| e.network.as_str());
    let index = found
        .iter()
        .position(|f| same(f) && f.dir == target.data_dir)
        .or_else(|| {
            found
                .iter()
                .position(|f| same(f) && f.record.network.as_deref() == network)
        })?;
    Some(found.remove(index))
}

fn check_cached(mut target: Resolved, record: Option<Found>, repair: bool) -> AttachmentReport {
    let cached = target.entry.as_ref().and_then(|e| e.netns.clone());
    let recorded = recorded_netns(record.as_ref().map(|f| &f.record));
    if let Some(found) = &record {
        target.data_dir = found.dir.clone();
    }
    match cached.or(recorded) {
        Some(netns) => check(&target, &netns, repair),
        None => {
            let why = match &record {
                None => format!(
                    "and there is no record {}-{}.json in data_dir {}",
                    target.container_id,
                    target.ifname,
                    target.data_dir.display()
                ),
                Some(found) => format!(
                    "and the record {} predates router recording it",
                    found.file().display()
                ),
            };
            let e = Error::UnknownContainer(format!(
                "not located: the cache entry records no netns (libcni before 1.2 writes none) {why}"
            ));
            with_error(report_for(&target, None, Status::Error), &e)
        }
    }
}

/// An attachment no cache entry names, from its record alone: the config, prevResult and
/// netns ADD recorded.
fn check_recorded(
    found: Found,
    scan: &Scan<'_>,
    repair: bool,
    allowed: &AllowedDirs,
) -> AttachmentReport {
    let searched: Vec<String> = scan
        .cache_dirs
        .iter()
        .map(|d| d.display().to_string())
        .collect();
    let unnamed = format!(
        "no result cache entry names it (searched {})",
        searched.join(", ")
    );
    let mut report = AttachmentReport::new(
        &found.record.container_id,
        &found.record.ifname,
        Status::Error,
    );
    report.network = found.record.network.clone();
    let netns = recorded_netns(Some(&found.record));
    match (target_of_record(found, &unnamed, allowed), netns) {
        (Err(e), _) => with_error(report, &e),
        (Ok(target), Some(netns)) => check(&target, &netns, repair),
        (Ok(target), None) => {
            let e = Error::UnknownContainer(format!(
                "not located: {unnamed} and its record holds no netns"
            ));
            with_error(report_for(&target, None, Status::Error), &e)
        }
    }
}

/// A target from a record's inputs; a record without them is an error naming the file.
fn target_of_record(found: Found, unnamed: &str, allowed: &AllowedDirs) -> Result<Resolved> {
    let file = found.file();
    let Found { dir, record } = found;
    let inputs = record.inputs.ok_or_else(|| {
        Error::UnknownContainer(format!(
            "not located: {unnamed}, and its record {} holds no netns, config or prevResult (written by an older router)",
            file.display()
        ))
    })?;
    let config = parse_netconf(&inputs.config, allowed)
        .map_err(|e| Error::Decode {
            what: format!("the config recorded in {}", file.display()),
            reason: e.to_string(),
        })?
        .config;
    Ok(Resolved {
        config,
        config_json: inputs.config,
        prev: Some(inputs.prev_result).filter(|p| !p.is_null()),
        container_id: record.container_id,
        ifname: record.ifname,
        entry: None,
        data_dir: dir,
    })
}

fn unreadable_data_dir(error: &Error) -> AttachmentReport {
    with_error(AttachmentReport::new("", "", Status::Error), error)
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

fn entry_report(entry: &CacheEntry) -> AttachmentReport {
    let mut report = AttachmentReport::new(&entry.container_id, &entry.ifname, Status::Skipped);
    report.network = Some(entry.network.clone());
    report.netns = entry.netns.as_ref().map(|n| n.display().to_string());
    report.cache_entry = Some(entry.file.display().to_string());
    report
}

fn no_router(entry: CacheEntry) -> AttachmentReport {
    let mut report = entry_report(&entry);
    report.message = Some("no router in the chain".into());
    report
}

/// An attachment from its cache entry alone: the cached conflist and result.
fn target_of(entry: CacheEntry, allowed: &AllowedDirs) -> Result<Resolved> {
    let plugin = plugin_from_conflist_or_plugin(entry.config.clone())?;
    let netconf = parse_netconf(&plugin, allowed)?;
    Ok(Resolved {
        data_dir: netconf.config.data_dir.clone(),
        config: netconf.config,
        config_json: without_prev_result(&plugin),
        prev: entry.result.clone(),
        container_id: entry.container_id.clone(),
        ifname: entry.ifname.clone(),
        entry: Some(entry),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_default_data_dir_is_the_one_a_config_without_data_dir_gets() {
        let config = parse_netconf(
            &json!({"cniVersion": "1.0.0", "type": "router",
            "overlay_hijack_subnet": ["10.244.0.0/16"], "service_hijack_subnet": ["10.96.0.0/12"]}),
            &AllowedDirs::default(),
        )
        .unwrap()
        .config;
        assert_eq!(config.data_dir, PathBuf::from(DEFAULT_DATA_DIR));
    }
}
