//! operator::scan: `check --all`, every attachment router made on this node: the result
//! cache entries whose chain runs router joined with the records in the data_dirs, then the
//! records no entry names. Must not write the cache (the runtime owns it).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::check::{check, report_for, with_error, RunClock};
use super::resolve::{recorded_netns, without_prev_result};
use super::Resolved;
use crate::cache::{self, CacheEntry};
use crate::config::{parse_netconf, plugin_from_conflist_or_plugin, rolled_out_wins, AllowedDirs};
use crate::error::{Error, Result};
use crate::model::Record;
use crate::netns;
use crate::record::{FileRecords, RecordStore};
use crate::report::{AttachmentReport, CheckReport, Status};

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
    let attachments = locate_all(scan, allowed)?
        .into_iter()
        .map(|located| match located {
            Located::Found { target, netns } => check(&target, &netns, repair),
            Located::Reported(report) => *report,
        })
        .collect();
    Ok(clock.report(attachments, false))
}

/// One attachment `check --all` (and `router rollout`) found.
#[derive(Debug)]
pub enum Located {
    /// Ready to act on: its inputs (the rolled-out config winning) and its pod netns.
    Found {
        target: Box<Resolved>,
        netns: PathBuf,
    },
    /// Nothing to act on, as its report says: not router's, stale, not located, an error.
    Reported(Box<AttachmentReport>),
}

impl Located {
    /// The network the attachment belongs to, as its cache entry, record or config names it.
    pub fn network(&self) -> Option<&str> {
        match self {
            Located::Found { target, .. } => target
                .entry
                .as_ref()
                .map(|e| e.network.as_str())
                .or(target.config.name.as_deref()),
            Located::Reported(report) => report.network.as_deref(),
        }
    }
}

/// Every attachment router has made on this node, found as `check --all` finds them: the
/// cache entries whose chain runs router, each joined with its record (found in the
/// data_dirs given and in those the cached configs name); then the records no entry names,
/// from the config and prevResult ADD recorded. The cached config and result win over the
/// record's inputs, a rolled-out config over both; the netns is the entry's (libcni 1.2),
/// else the record's.
pub fn locate_all(scan: &Scan<'_>, allowed: &AllowedDirs) -> Result<Vec<Located>> {
    let mut located = Vec::new();
    let mut cached = Vec::new();
    for dir in scan.cache_dirs {
        for (file, entry) in cache::walk(dir)? {
            let report = match entry {
                Ok(entry) if entry.has_router() => match target_of(entry.clone(), allowed) {
                    Ok(target) => {
                        cached.push(target);
                        continue;
                    }
                    Err(e) => with_error(entry_report(&entry), &e),
                },
                Ok(entry) => no_router(entry),
                Err(e) => not_an_entry(&file, &e),
            };
            located.push(Located::Reported(Box::new(report)));
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
            Err(e) => located.push(Located::Reported(Box::new(unreadable_data_dir(&e)))),
        }
    }
    for target in cached {
        let record = take_record(&mut found, &target);
        located.push(locate_cached(target, record, allowed));
    }
    for record in found {
        located.push(locate_recorded(record, scan, allowed));
    }
    Ok(located)
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

fn locate_cached(mut target: Resolved, record: Option<Found>, allowed: &AllowedDirs) -> Located {
    let cached = target.entry.as_ref().and_then(|e| e.netns.clone());
    let recorded = recorded_netns(record.as_ref().map(|f| &f.record));
    if record.is_none() {
        if let Some(report) = stale(&target, cached.as_deref()) {
            return Located::Reported(Box::new(report));
        }
    }
    if let Some(found) = &record {
        target.data_dir = found.dir.clone();
        if let Some(rolled) = &found.record.rolled_out {
            match rolled_out_wins(target.config.clone(), Some(rolled), allowed) {
                Ok(config) => {
                    target.config = config;
                    target.config_json = rolled.clone();
                }
                Err(e) => {
                    let report = report_for(&target, cached.as_deref(), Status::Error);
                    return Located::Reported(Box::new(with_error(report, &e)));
                }
            }
        }
    }
    match cached.or(recorded) {
        Some(netns) => Located::Found {
            target: Box::new(target),
            netns,
        },
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
            Located::Reported(Box::new(with_error(
                report_for(&target, None, Status::Error),
                &e,
            )))
        }
    }
}

/// A cache entry written before the node last booted, whose pod left no record (records
/// live in /run, which a boot empties) and no netns that still exists: the pod died with
/// the boot and the runtime has not collected its entry yet. Nothing to check, and no
/// error either: its own state.
fn stale(target: &Resolved, netns: Option<&Path>) -> Option<AttachmentReport> {
    let entry = target.entry.as_ref()?;
    if netns.is_some_and(|n| netns::is_netns(n).unwrap_or(true)) {
        return None;
    }
    let written = std::fs::metadata(&entry.file)
        .and_then(|m| m.modified())
        .ok()?;
    let booted = boot_time()?;
    if written >= booted {
        return None;
    }
    let mut report = report_for(target, netns, Status::Stale);
    report.message = Some(format!(
        "from before the node's last boot (entry written {}, boot {}): no record and no \
         netns; the runtime collects it",
        utc(written),
        utc(booted),
    ));
    Some(report)
}

/// When the node booted: `btime` in /proc/stat, seconds since the epoch.
fn boot_time() -> Option<SystemTime> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let seconds: u64 = stat
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    UNIX_EPOCH.checked_add(Duration::from_secs(seconds))
}

fn utc(time: SystemTime) -> String {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    format!("{} UTC", crate::report::utc_timestamp(since))
}

/// An attachment no cache entry names, from its record alone: the config, prevResult and
/// netns ADD recorded.
fn locate_recorded(found: Found, scan: &Scan<'_>, allowed: &AllowedDirs) -> Located {
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
        (Err(e), _) => Located::Reported(Box::new(with_error(report, &e))),
        (Ok(target), Some(netns)) => Located::Found {
            target: Box::new(target),
            netns,
        },
        (Ok(target), None) => {
            let e = Error::UnknownContainer(format!(
                "not located: {unnamed} and its record holds no netns"
            ));
            Located::Reported(Box::new(with_error(
                report_for(&target, None, Status::Error),
                &e,
            )))
        }
    }
}

/// An attachment with a record, as `router agent` keeps it: the data_dir the record is in
/// and the names of its file.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RecordKey {
    pub data_dir: PathBuf,
    pub container_id: String,
    pub ifname: String,
}

/// Every recorded attachment `check --all` would find, with its record: the records in the
/// data_dirs given and in those the cached configs name. An entry without a record is not
/// among them: only ADD writes one, and DEL removes it.
pub fn recorded(scan: &Scan<'_>, allowed: &AllowedDirs) -> Result<Vec<(RecordKey, Record)>> {
    let mut data_dirs: BTreeSet<PathBuf> = scan.data_dirs.iter().cloned().collect();
    for dir in scan.cache_dirs {
        for (_, entry) in cache::walk(dir)? {
            let Ok(entry) = entry else { continue };
            if !entry.has_router() {
                continue;
            }
            if let Ok(target) = target_of(entry, allowed) {
                data_dirs.insert(target.data_dir);
            }
        }
    }
    let mut found = Vec::new();
    for dir in data_dirs {
        found.extend(recorded_in(&dir)?);
    }
    Ok(found)
}

/// The records in one data_dir (none when it does not exist).
pub fn recorded_in(dir: &Path) -> Result<Vec<(RecordKey, Record)>> {
    Ok(FileRecords::new(dir)
        .all()?
        .into_iter()
        .map(|record| {
            let key = RecordKey {
                data_dir: dir.to_path_buf(),
                container_id: record.container_id.clone(),
                ifname: record.ifname.clone(),
            };
            (key, record)
        })
        .collect())
}

/// One recorded attachment located as `check --all` locates it: its cache entry's config,
/// result and netns when one names it (the record's netns otherwise), else the inputs its
/// record holds; or the report of why it cannot be located.
pub fn locate(
    scan: &Scan<'_>,
    allowed: &AllowedDirs,
    key: &RecordKey,
    record: Record,
) -> std::result::Result<(Resolved, PathBuf), Box<AttachmentReport>> {
    let found = Found {
        dir: key.data_dir.clone(),
        record,
    };
    let entry = cache::find(
        scan.cache_dirs,
        &key.container_id,
        &key.ifname,
        found.record.network.as_deref(),
    )
    .ok()
    .filter(CacheEntry::has_router);
    let located = match entry.map(|entry| target_of(entry, allowed)) {
        Some(Ok(target)) => locate_cached(target, Some(found), allowed),
        Some(Err(e)) => Located::Reported(Box::new(with_error(
            AttachmentReport::new(&key.container_id, &key.ifname, Status::Error),
            &e,
        ))),
        None => locate_recorded(found, scan, allowed),
    };
    match located {
        Located::Found { target, netns } => Ok((*target, netns)),
        Located::Reported(report) => Err(report),
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
    // The config a rollout left wins over the ADD's (docs/decisions/rollout-config-wins.md).
    let config_json = record.rolled_out.unwrap_or(inputs.config);
    let config = parse_netconf(&config_json, allowed)
        .map_err(|e| Error::Decode {
            what: format!("the config recorded in {}", file.display()),
            reason: e.to_string(),
        })?
        .config;
    Ok(Resolved {
        config,
        config_json,
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
