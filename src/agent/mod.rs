//! agent: `router agent`, the long-running reconciler (a DaemonSet) that keeps every
//! attachment `router check --all` finds at its desired state between CNI calls. Kernel
//! events in the node netns and in each pod netns it keeps schedule an attachment's
//! reconcile through the `check --repair` path; a jittered full resync, and a resync of a
//! netns whose subscription overflowed, are the backstop. It shares a per-attachment lock
//! with the plugin (`record::AttachmentLock`) and re-reads the record under it, so it never
//! acts during an ADD or DEL and never re-creates what DEL removed; it holds nothing in a
//! netns that is gone.
//!
//! One file per part: `keeper` (the event loop: the set of attachments, scheduling,
//! coalescing and rate limiting, resyncs, which netns to listen in and when to let go),
//! `triggers` (which events concern which attachments, pure), `listen` (the subscribe-only
//! sockets), `watch` (data_dir watched with inotify), `repair` (the repair thread: lock,
//! record, check, logs and counts), `metrics` (the Prometheus metrics), `http` (the
//! endpoint), `config_dir` (`--config-dir`: changed network configs rolled out). Nothing here decides about routes: reconcile does, through `operator`.

mod config_dir;
mod http;
mod keeper;
mod listen;
mod metrics;
mod repair;
mod triggers;
mod watch;

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::inotify::WatchDescriptor;

use crate::config::{AllowedDirs, LogLevel};
use crate::error::{Error, Result};
use crate::netlink::subscribe::Event;
pub use metrics::{sample_names, AttachmentState};

/// The agent's settings, from the command line.
#[derive(Clone, Debug)]
pub struct Options {
    /// Result caches, as `check --all` reads them.
    pub cache_dirs: Vec<PathBuf>,
    /// data_dirs to read records from, besides those the cached configs name.
    pub data_dirs: Vec<PathBuf>,
    /// The mean time between full resyncs (each one jittered by up to a tenth).
    pub resync_interval: Duration,
    /// Where the HTTP endpoint listens.
    pub listen: SocketAddr,
    /// Find and report drift; change nothing.
    pub report_only: bool,
    pub log_level: LogLevel,
    pub allowed: AllowedDirs,
    /// A directory of network configs rolled out when they change (`config_dir`).
    pub config_dir: Option<PathBuf>,
}

/// Why an attachment is reconciled: logged with every repair.
#[derive(Clone, Debug)]
pub enum Why {
    /// Its record appeared (an ADD), or the agent started and found it.
    Recorded,
    /// Its pod netns is now listened to: a read after subscribing, so no event falls
    /// between the first read and the subscription.
    Subscribed,
    /// A full resync (on start, on the timer, after the node's subscription lost events).
    Resync(Resync),
    /// Its pod netns's subscription lost events (ENOBUFS) or failed.
    PodLost,
    /// A kernel event in the node or the pod netns.
    Event { node: bool, event: Event },
}

/// What started a full resync.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resync {
    Start,
    Timer,
    NodeLost,
}

impl fmt::Display for Why {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Why::Recorded => f.write_str("record written"),
            Why::Subscribed => f.write_str("read after subscribing to the pod netns"),
            Why::Resync(Resync::Start) => f.write_str("resync on start"),
            Why::Resync(Resync::Timer) => f.write_str("periodic resync"),
            Why::Resync(Resync::NodeLost) => {
                f.write_str("resync: the node netns subscription lost events")
            }
            Why::PodLost => f.write_str("resync: the pod netns subscription lost events"),
            Why::Event { node, event } => {
                let netns = if *node { "node" } else { "pod" };
                write!(f, "kernel event in the {netns} netns: {event}")
            }
        }
    }
}

/// What the event loop hears from its tasks and the repair thread.
#[derive(Debug)]
pub enum Msg {
    Heard {
        scope: listen::Scope,
        events: Vec<Event>,
        at: Instant,
    },
    Lost {
        scope: listen::Scope,
        overflow: bool,
        error: String,
    },
    /// A record file changed in a watched data_dir (`file`), or the dir went (`None`).
    Records {
        wd: WatchDescriptor,
        file: Option<std::ffi::OsString>,
    },
    Done(repair::Done),
}

/// Runs the agent until it is killed (or cannot start: an error).
pub fn run(options: Options) -> Result<()> {
    crate::logging::init_stderr(options.log_level);
    let metrics = Arc::new(metrics::Metrics::new());
    let bound = http::serve(options.listen, Arc::clone(&metrics))?;
    tracing::info!(
        listen = %bound,
        resync_interval_s = options.resync_interval.as_secs_f64(),
        report_only = options.report_only,
        cache_dirs = ?options.cache_dirs,
        data_dirs = ?options.data_dirs,
        "router agent started"
    );
    if let Some(dir) = &options.config_dir {
        config_dir::spawn(
            config_dir::Watch {
                dir: dir.clone(),
                cache_dirs: options.cache_dirs.clone(),
                data_dirs: options.data_dirs.clone(),
                allowed: options.allowed.clone(),
                report_only: options.report_only,
            },
            Arc::clone(&metrics),
        )?;
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::io("the agent's runtime", e))?;
    runtime.block_on(keeper::Keeper::run(options, metrics))
}

/// A value that owns the file descriptor `as_raw_fd` returns, the same one for its whole
/// life, and closes it only when dropped: what tokio's `AsyncFd` needs of what it watches.
/// Implemented only by the agent's subscription sockets and its inotify descriptor.
pub(crate) trait OwnsItsFd: std::os::fd::AsRawFd {}

impl OwnsItsFd for crate::netlink::subscribe::Subscription {}

/// Registers `inner` with the event loop. tokio's constructors that take any `AsRawFd`
/// are unsafe (or deprecated as unsound) because a type could hand out a descriptor it
/// does not own; `OwnsItsFd` says ours do.
pub(crate) fn async_fd<T: OwnsItsFd>(inner: T) -> std::io::Result<tokio::io::unix::AsyncFd<T>> {
    // SAFETY: `T: OwnsItsFd`: the descriptor is owned by `inner`, the same for its whole
    // life and closed only when it drops; the AsyncFd owns `inner`, so the descriptor stays
    // open while registered and is deregistered before it closes.
    unsafe { tokio::io::unix::AsyncFd::register(inner) }.map_err(std::io::Error::from)
}

/// Parses a duration as the flags take it: `60s`, `500ms`, `2m`, or plain seconds.
pub fn parse_duration(text: &str) -> std::result::Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(at) => text.split_at(at),
        None => (text, "s"),
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration (e.g. 60s, 500ms, 2m)"))?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        _ => return Err(format!("{text:?}: the unit must be ms, s or m")),
    };
    if !(seconds.is_finite() && seconds > 0.0 && seconds <= 86_400.0) {
        return Err(format!("{text:?} must be more than 0 and at most a day"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

#[cfg(test)]
mod tests;
