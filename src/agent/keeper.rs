//! agent::keeper: the agent's event loop. It keeps the set of recorded attachments (read
//! from the data_dirs on start, on every resync and whenever inotify says a record changed;
//! a record gone is an attachment forgotten at once), listens in the node netns and in each
//! pod netns it keeps an attachment in, maps events to attachments (`triggers`), and hands
//! reconciles to the repair thread one at a time: a burst of events is one reconcile
//! (DEBOUNCE), one attachment is reconciled at most once per MIN_INTERVAL, and a busy one
//! (a plugin run holds its lock) is tried again after BUSY_RETRY. A full resync runs on
//! start, on a jittered timer and when the node's subscription lost events; a pod's lost
//! subscription resyncs that pod's attachments. Every NETNS_CHECK it looks whether each pod
//! netns it listens in still exists under its path (the paths of a directory whose mtime
//! changed, and all of them every PATHS_CHECK): when not (deleted without DEL), the socket
//! is closed and the attachments are reported gone.
//! Must not touch the kernel beyond its subscriptions, nor decide what a repair does.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::{BuildHasher, RandomState};
use std::path::{Path, PathBuf};
use std::sync::mpsc as std_mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc::{self, UnboundedReceiver, UnboundedSender};
use tokio::time::sleep_until;

use super::listen::{self, Listening, Scope};
use super::metrics::{AttachmentState, Metrics, NetnsKind};
use super::repair::{self, Done, Facts, Job, Outcome};
use super::triggers::{node_target, pod_event_matters, NodeLinks, NodeTarget};
use super::watch::Watcher;
use super::{Msg, Options, Resync, Why};
use crate::error::{Error, Result};
use crate::model::MacAddr;
use crate::netns::NetnsId;
use crate::operator::{self, RecordKey, Scan};

/// How often every pod netns path is looked at, whether its directory changed or not.
const PATHS_CHECK: Duration = Duration::from_secs(1);

/// Events closer together than this are one reconcile: a flush of a table is one event
/// per route, all within microseconds.
const DEBOUNCE: Duration = Duration::from_millis(5);
/// One attachment is reconciled at most this often, whatever fights it.
const MIN_INTERVAL: Duration = Duration::from_millis(100);
/// How long after its record appears a new attachment is first read: ADD writes the record
/// before it applies anything and holds the attachment's lock until it is done, so a read
/// at once would only find the lock held (and take CPU from the ADD).
const NEW_RECORD_DELAY: Duration = Duration::from_millis(50);
/// How soon an attachment held by a plugin run is tried again.
const BUSY_RETRY: Duration = Duration::from_millis(50);
/// How often pod netns paths are looked at (a netns deleted without DEL is let go within
/// this), and missing data_dirs and a failed node subscription retried.
const NETNS_CHECK: Duration = Duration::from_millis(200);

/// One attachment the agent keeps.
#[derive(Debug, Default)]
struct Kept {
    facts: Facts,
    /// The pod subscription it is under.
    pod: Option<NetnsId>,
    /// The latest check's finding; None before the first.
    state: Option<AttachmentState>,
    /// When it is to be reconciled, why, and the first event of the burst.
    due: Option<Instant>,
    why: Option<Why>,
    first_event: Option<Instant>,
    running: bool,
    last_start: Option<Instant>,
}

/// A pod netns listened to.
struct Pod {
    path: PathBuf,
    _listening: Listening,
}

/// A full resync in progress.
struct Resyncing {
    started: Instant,
    pending: BTreeSet<RecordKey>,
}

pub struct Keeper {
    options: Options,
    metrics: Arc<Metrics>,
    kept: BTreeMap<RecordKey, Kept>,
    pods: HashMap<NetnsId, Pod>,
    node: Option<Listening>,
    links: NodeLinks,
    watcher: Watcher,
    jobs: std_mpsc::Sender<Job>,
    tx: UnboundedSender<Msg>,
    resync: Option<Resyncing>,
    next_resync: Instant,
    next_netns_check: Instant,
    /// When every pod path is looked at next, whether its directory changed or not.
    next_paths_check: Instant,
    /// The mtime of each directory holding a pod netns, as last seen.
    dir_mtimes: HashMap<PathBuf, Option<std::time::SystemTime>>,
}

impl Keeper {
    /// Starts the repair thread, the node subscription and the watches, resyncs, and then
    /// serves events forever.
    pub async fn run(options: Options, metrics: Arc<Metrics>) -> Result<()> {
        let (tx, rx) = mpsc::unbounded_channel();
        let (jobs, queue) = std_mpsc::channel();
        let settings = repair::Settings {
            cache_dirs: options.cache_dirs.clone(),
            data_dirs: options.data_dirs.clone(),
            allowed: options.allowed.clone(),
            report_only: options.report_only,
        };
        let done = tx.clone();
        let thread_metrics = Arc::clone(&metrics);
        std::thread::Builder::new()
            .name("router-agent-repair".into())
            .spawn(move || repair::serve(queue, done, settings, thread_metrics))
            .map_err(|e| Error::io("the agent's repair thread", e))?;
        // Subscribe first, then read: events from now on are heard, so the resync's reads
        // miss nothing that happens after them.
        let node = listen::node(tx.clone())?;
        metrics.set_subscriptions(NetnsKind::Node, 1);
        let watcher = Watcher::start(&options.data_dirs, tx.clone())?;
        let now = Instant::now();
        let mut keeper = Keeper {
            links: NodeLinks::new(node_links()),
            next_resync: now + jittered(options.resync_interval),
            next_netns_check: now + NETNS_CHECK,
            next_paths_check: now + PATHS_CHECK,
            dir_mtimes: HashMap::new(),
            options,
            metrics,
            kept: BTreeMap::new(),
            pods: HashMap::new(),
            node: Some(node),
            watcher,
            jobs,
            tx,
            resync: None,
        };
        keeper.start_resync(Resync::Start);
        keeper.serve(rx).await;
        Ok(())
    }

    async fn serve(&mut self, mut rx: UnboundedReceiver<Msg>) {
        loop {
            let wake = self.next_wake();
            tokio::select! {
                msg = rx.recv() => match msg {
                    Some(msg) => self.handle(msg),
                    None => return,
                },
                _ = sleep_until(wake.into()) => {}
            }
            let now = Instant::now();
            if now >= self.next_netns_check {
                self.next_netns_check = now + NETNS_CHECK;
                self.check_netns();
            }
            if now >= self.next_resync {
                self.start_resync(Resync::Timer);
            }
            self.dispatch(now);
        }
    }

    /// The earliest moment something is due.
    fn next_wake(&self) -> Instant {
        self.kept
            .values()
            .filter(|k| !k.running)
            .filter_map(|k| k.due)
            .chain([self.next_netns_check, self.next_resync])
            .min()
            .unwrap_or(self.next_netns_check)
    }

    fn handle(&mut self, msg: Msg) {
        match msg {
            Msg::Heard { scope, events, at } => self.heard(scope, events, at),
            Msg::Lost {
                scope,
                overflow,
                error,
            } => self.lost(scope, overflow, &error),
            Msg::Records { wd, file } => {
                let Some(dir) = self.watcher.changed(wd, file.is_none()) else {
                    return;
                };
                match file {
                    Some(file) => self.record_changed(&dir, &file),
                    None => self.read_records_in(&dir),
                }
            }
            Msg::Done(done) => self.done(done),
        }
    }

    fn heard(&mut self, scope: Scope, events: Vec<crate::netlink::subscribe::Event>, at: Instant) {
        match scope {
            Scope::Pod(id) => {
                let Some(event) = events.into_iter().find(pod_event_matters) else {
                    return;
                };
                let keys = self.keys_in_pod(id);
                for key in keys {
                    let why = Why::Event {
                        node: false,
                        event: event.clone(),
                    };
                    self.schedule(&key, why, Some(at), DEBOUNCE);
                }
            }
            Scope::Node => {
                let host_tables: BTreeSet<u32> =
                    self.kept.values().map(|k| k.facts.host_table).collect();
                for event in events {
                    let keys: Vec<RecordKey> =
                        match node_target(&event, &host_tables, &mut self.links) {
                            NodeTarget::None => continue,
                            NodeTarget::All => self.kept.keys().cloned().collect(),
                            NodeTarget::Toward(dst) => self
                                .kept
                                .iter()
                                .filter(|(_, k)| k.facts.host_dsts.contains(&dst))
                                .map(|(key, _)| key.clone())
                                .collect(),
                        };
                    for key in keys {
                        let why = Why::Event {
                            node: true,
                            event: event.clone(),
                        };
                        self.schedule(&key, why, Some(at), DEBOUNCE);
                    }
                }
            }
        }
    }

    fn lost(&mut self, scope: Scope, overflow: bool, error: &str) {
        match scope {
            Scope::Node => {
                self.metrics.overflowed(NetnsKind::Node);
                tracing::warn!(
                    overflow,
                    error,
                    "the node netns subscription lost events: full resync"
                );
                if !overflow {
                    // The task ended; the tick opens a new socket.
                    self.node = None;
                    self.metrics.set_subscriptions(NetnsKind::Node, 0);
                }
                self.start_resync(Resync::NodeLost);
            }
            Scope::Pod(id) => {
                self.metrics.overflowed(NetnsKind::Pod);
                let path = self.pods.get(&id).map(|p| p.path.display().to_string());
                tracing::warn!(
                    overflow,
                    error,
                    netns = path,
                    "a pod netns subscription lost events: its attachments are read again"
                );
                let keys = self.keys_in_pod(id);
                if !overflow {
                    // The socket failed: closed; the checks below open a new one.
                    self.drop_pod(id);
                }
                for key in keys {
                    self.schedule(&key, Why::PodLost, None, Duration::ZERO);
                }
            }
        }
    }

    fn keys_in_pod(&self, id: NetnsId) -> Vec<RecordKey> {
        self.kept
            .iter()
            .filter(|(_, k)| k.pod == Some(id))
            .map(|(key, _)| key.clone())
            .collect()
    }

    /// Asks for a reconcile of `key` after `delay` (and not sooner than MIN_INTERVAL after
    /// its last start); an earlier request stands, with the first event of the burst.
    fn schedule(&mut self, key: &RecordKey, why: Why, event_at: Option<Instant>, delay: Duration) {
        let Some(kept) = self.kept.get_mut(key) else {
            return;
        };
        let now = Instant::now();
        let mut due = now + delay;
        if let Some(last) = kept.last_start {
            due = due.max(last + MIN_INTERVAL);
        }
        kept.due = Some(kept.due.map_or(due, |d| d.min(due)));
        if kept.why.is_none() {
            kept.why = Some(why);
        }
        if let Some(at) = event_at {
            kept.first_event = Some(kept.first_event.map_or(at, |f| f.min(at)));
        }
    }

    /// Hands every due attachment not being reconciled to the repair thread.
    fn dispatch(&mut self, now: Instant) {
        for (key, kept) in self.kept.iter_mut() {
            if kept.running || kept.due.is_none_or(|d| d > now) {
                continue;
            }
            kept.due = None;
            kept.running = true;
            kept.last_start = Some(now);
            let job = Job {
                key: key.clone(),
                why: kept.why.take().unwrap_or(Why::Recorded),
                first_event: kept.first_event.take(),
            };
            if self.jobs.send(job).is_err() {
                tracing::error!("the repair thread has ended");
                kept.running = false;
            }
        }
    }

    fn done(&mut self, done: Done) {
        let Done {
            key,
            outcome,
            why,
            first_event,
        } = done;
        match outcome {
            Outcome::Busy => {
                if let Some(kept) = self.kept.get_mut(&key) {
                    kept.running = false;
                    kept.last_start = None;
                }
                self.schedule(&key, why, first_event, BUSY_RETRY);
                // A held lock is a plugin run: the attachment is as that run leaves it.
                return;
            }
            Outcome::Forgotten => self.forget(&key),
            Outcome::Checked { facts, state } => self.checked(&key, facts, state),
        }
        self.resync_progress(&key);
        self.publish_states();
    }

    fn checked(&mut self, key: &RecordKey, facts: Facts, state: AttachmentState) {
        let Some(kept) = self.kept.get_mut(key) else {
            return;
        };
        kept.running = false;
        kept.state = Some(state);
        kept.facts = facts;
        if state == AttachmentState::Gone {
            return;
        }
        let Some(path) = kept.facts.netns.clone() else {
            return;
        };
        let Ok(id) = listen::netns_id(&path) else {
            return;
        };
        if kept.pod == Some(id) && self.pods.contains_key(&id) {
            return;
        }
        if !self.pods.contains_key(&id) {
            match listen::pod(&path, id, self.tx.clone()) {
                Ok(listening) => {
                    self.pods.insert(
                        id,
                        Pod {
                            path: path.clone(),
                            _listening: listening,
                        },
                    );
                    self.metrics
                        .set_subscriptions(NetnsKind::Pod, self.pods.len());
                }
                Err(e) => {
                    tracing::warn!(netns = %path.display(), error = %e, "cannot listen in the pod netns: it is read at each resync only");
                    return;
                }
            }
        }
        let old = self.kept.get_mut(key).and_then(|k| k.pod.replace(id));
        if let Some(old) = old.filter(|old| *old != id) {
            self.drop_pod_if_unused(old);
        }
        // Read once more now that the pod is heard: what changed between this check's
        // read and the subscription would otherwise wait for the next resync.
        self.schedule(key, Why::Subscribed, None, Duration::ZERO);
    }

    fn forget(&mut self, key: &RecordKey) {
        let Some(kept) = self.kept.remove(key) else {
            return;
        };
        tracing::info!(container = %key.container_id, ifname = %key.ifname, "record removed (DEL): attachment forgotten");
        if let Some(id) = kept.pod {
            self.drop_pod_if_unused(id);
        }
        if let Some(resync) = &mut self.resync {
            resync.pending.remove(key);
        }
        self.publish_states();
    }

    fn drop_pod_if_unused(&mut self, id: NetnsId) {
        if !self.kept.values().any(|k| k.pod == Some(id)) {
            self.drop_pod(id);
        }
    }

    /// Closes the pod's socket (the netns is no longer held) and detaches its attachments.
    fn drop_pod(&mut self, id: NetnsId) {
        if self.pods.remove(&id).is_some() {
            self.metrics
                .set_subscriptions(NetnsKind::Pod, self.pods.len());
        }
        for kept in self.kept.values_mut() {
            if kept.pod == Some(id) {
                kept.pod = None;
            }
        }
    }

    /// Lets go of every pod netns whose path is gone or names another netns now; reopens
    /// the node subscription and the missing watches.
    fn check_netns(&mut self) {
        // Each pod's path is looked at only when its directory changed (a netns file
        // removed or added changes the directory's mtime), and every PATHS_CHECK anyway
        // (a netns mounted over a file that stays): a node with many pods costs a stat per
        // directory per tick, not one per pod.
        let now = Instant::now();
        let full = now >= self.next_paths_check;
        if full {
            self.next_paths_check = now + PATHS_CHECK;
        }
        let mut changed_dirs = BTreeSet::new();
        for pod in self.pods.values() {
            let Some(dir) = pod.path.parent() else {
                continue;
            };
            if changed_dirs.contains(dir) {
                continue;
            }
            let mtime = std::fs::metadata(dir).and_then(|m| m.modified()).ok();
            if self.dir_mtimes.get(dir) != Some(&mtime) {
                self.dir_mtimes.insert(dir.to_path_buf(), mtime);
                changed_dirs.insert(dir.to_path_buf());
            }
        }
        let gone: Vec<(NetnsId, PathBuf)> = self
            .pods
            .iter()
            .filter(|(_, pod)| full || pod.path.parent().is_some_and(|d| changed_dirs.contains(d)))
            .filter(|(id, pod)| listen::netns_id(&pod.path).ok() != Some(**id))
            .map(|(id, pod)| (*id, pod.path.clone()))
            .collect();
        for (id, path) in gone {
            let keys = self.keys_in_pod(id);
            self.drop_pod(id);
            for key in &keys {
                if let Some(kept) = self.kept.get_mut(key) {
                    kept.state = Some(AttachmentState::Gone);
                }
                tracing::warn!(container = %key.container_id, ifname = %key.ifname, netns = %path.display(), "the pod netns is gone: let go; its host side is left to DEL and GC");
            }
            self.publish_states();
        }
        if self.node.is_none() {
            match listen::node(self.tx.clone()) {
                Ok(node) => {
                    self.node = Some(node);
                    self.metrics.set_subscriptions(NetnsKind::Node, 1);
                    self.start_resync(Resync::NodeLost);
                }
                Err(e) => tracing::warn!(error = %e, "cannot listen in the node netns"),
            }
        }
        for dir in self.watcher.retry_missing() {
            self.read_records_in(&dir);
        }
    }

    /// Reads every record (the data_dirs given and those the cached configs name), keeps
    /// the new ones, forgets the ones gone, and reconciles every attachment.
    fn start_resync(&mut self, reason: Resync) {
        let now = Instant::now();
        self.next_resync = now + jittered(self.options.resync_interval);
        let scan = Scan {
            cache_dirs: &self.options.cache_dirs,
            data_dirs: &self.options.data_dirs,
        };
        let found = match operator::recorded(&scan, &self.options.allowed) {
            Ok(found) => found,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list the records: resync skipped");
                return;
            }
        };
        let keys: BTreeSet<RecordKey> = found.into_iter().map(|(key, _)| key).collect();
        let gone: Vec<RecordKey> = self
            .kept
            .keys()
            .filter(|k| !keys.contains(*k))
            .cloned()
            .collect();
        for key in gone {
            self.forget(&key);
        }
        // data_dirs the cached configs name are watched too from now on.
        for key in &keys {
            self.watcher.add(&key.data_dir);
        }
        for key in &keys {
            self.kept.entry(key.clone()).or_default();
            self.schedule(key, Why::Resync(reason), None, Duration::ZERO);
        }
        tracing::debug!(?reason, attachments = keys.len(), "full resync");
        match &mut self.resync {
            Some(resync) => resync.pending.extend(keys),
            None => {
                self.resync = Some(Resyncing {
                    started: now,
                    pending: keys,
                })
            }
        }
        self.resync_progress_check();
    }

    fn resync_progress(&mut self, key: &RecordKey) {
        if let Some(resync) = &mut self.resync {
            resync.pending.remove(key);
        }
        self.resync_progress_check();
    }

    fn resync_progress_check(&mut self) {
        if self.resync.as_ref().is_some_and(|r| r.pending.is_empty()) {
            if let Some(resync) = self.resync.take() {
                let took = resync.started.elapsed();
                self.metrics.resynced(took);
                tracing::info!(
                    took_ms = took.as_secs_f64() * 1000.0,
                    attachments = self.kept.len(),
                    "full resync done"
                );
            }
        }
    }

    /// The records of one data_dir after inotify saw it change: new ones kept and
    /// reconciled, removed ones forgotten.
    fn read_records_in(&mut self, dir: &Path) {
        let found = match operator::recorded_in(dir) {
            Ok(found) => found,
            Err(e) => {
                tracing::warn!(dir = %dir.display(), error = %e, "cannot read records");
                return;
            }
        };
        let keys: BTreeSet<RecordKey> = found.into_iter().map(|(key, _)| key).collect();
        let gone: Vec<RecordKey> = self
            .kept
            .keys()
            .filter(|k| k.data_dir == dir && !keys.contains(*k))
            .cloned()
            .collect();
        for key in gone {
            self.forget(&key);
        }
        for key in keys {
            if !self.kept.contains_key(&key) {
                tracing::info!(container = %key.container_id, ifname = %key.ifname, "record found: attachment kept");
                self.kept.insert(key.clone(), Kept::default());
                self.schedule(&key, Why::Recorded, None, NEW_RECORD_DELAY);
            }
        }
        self.publish_states();
    }

    /// One record file written or removed: only that file is read (an ADD on a node with
    /// many pods must not make the agent read every record while the ADD runs).
    fn record_changed(&mut self, dir: &Path, file: &std::ffi::OsStr) {
        let path = dir.join(file);
        let named = |key: &RecordKey| {
            key.data_dir == dir
                && std::ffi::OsString::from(format!("{}-{}.json", key.container_id, key.ifname))
                    == file
        };
        if !path.exists() {
            let gone: Vec<RecordKey> = self.kept.keys().filter(|k| named(k)).cloned().collect();
            for key in gone {
                self.forget(&key);
            }
            return;
        }
        let record = match operator::read_record(&path) {
            Ok(record) => record,
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e, "not a readable record: left alone");
                return;
            }
        };
        let key = RecordKey {
            data_dir: dir.to_path_buf(),
            container_id: record.container_id,
            ifname: record.ifname,
        };
        if !named(&key) {
            tracing::warn!(file = %path.display(), "a record whose name does not match its content: left alone");
            return;
        }
        if !self.kept.contains_key(&key) {
            tracing::info!(container = %key.container_id, ifname = %key.ifname, "record found: attachment kept");
            self.kept.insert(key.clone(), Kept::default());
            self.schedule(&key, Why::Recorded, None, NEW_RECORD_DELAY);
            self.publish_states();
        }
    }

    fn publish_states(&self) {
        self.metrics.set_states(|state| {
            self.kept
                .values()
                .filter(|k| k.state == Some(state))
                .count()
        });
    }
}

/// `interval` give or take a tenth, so that the agents of many nodes (and a restarted one)
/// do not resync in step.
fn jittered(interval: Duration) -> Duration {
    let random = RandomState::new().hash_one(Instant::now());
    let tenth = interval.as_secs_f64() / 10.0;
    let offset = (random as f64 / u64::MAX as f64) * 2.0 * tenth - tenth;
    Duration::from_secs_f64((interval.as_secs_f64() + offset).max(0.001))
}

/// The node's links now (index, name, MAC), from sysfs (which shows the netns it was
/// mounted in, the node's for a hostNetwork pod): a later link event that changes a MAC is
/// a MAC change, and an address on a pod's plumbing link is no node address.
fn node_links() -> Vec<(u32, String, Option<MacAddr>)> {
    let Ok(entries) = std::fs::read_dir("/sys/class/net") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let dir = e.path();
            let name = e.file_name().to_str()?.to_string();
            let index = std::fs::read_to_string(dir.join("ifindex")).ok()?;
            let mac = std::fs::read_to_string(dir.join("address")).ok();
            let mac = mac.and_then(|m| m.trim().parse().ok());
            Some((index.trim().parse().ok()?, name, mac))
        })
        .collect()
}
