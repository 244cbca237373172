//! agent::watch: data_dir watched with inotify, so that a record ADD writes is picked up at
//! once and one DEL removes is let go at once (no polling of the directory). A data_dir that
//! does not exist yet (no ADD has run) is watched as soon as it appears (`retry_missing`,
//! called on the event loop's tick). It reports which directories changed; it must not read
//! records (the event loop does).

use std::collections::BTreeMap;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, WatchDescriptor};
use tokio::io::unix::AsyncFd;
use tokio::sync::mpsc::UnboundedSender;
use tokio::task::JoinHandle;

use super::Msg;
use crate::error::{Error, Result};

/// The inotify instance, as tokio's AsyncFd wants it (nix's `Inotify` is `AsFd` only).
struct InotifyFd(Inotify);

// InotifyFd holds its Inotify (and so the descriptor) for its whole life.
impl super::OwnsItsFd for InotifyFd {}

impl AsRawFd for InotifyFd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

/// The watches of the data_dirs, and the task reading their events.
pub struct Watcher {
    inotify: Arc<AsyncFd<InotifyFd>>,
    /// Each data_dir, with its watch once it exists.
    dirs: BTreeMap<PathBuf, Option<WatchDescriptor>>,
    task: JoinHandle<()>,
}

/// What a record write (temp file renamed over the name) and removal look like, and the
/// directory itself going away (its watch then ends; `retry_missing` watches it again).
fn flags() -> AddWatchFlags {
    AddWatchFlags::IN_CREATE
        | AddWatchFlags::IN_MOVED_TO
        | AddWatchFlags::IN_MOVED_FROM
        | AddWatchFlags::IN_DELETE
        | AddWatchFlags::IN_CLOSE_WRITE
        | AddWatchFlags::IN_DELETE_SELF
        | AddWatchFlags::IN_ONLYDIR
}

impl Watcher {
    /// Starts watching (on the calling runtime); `Msg::Records(dir)` is sent for every
    /// change of a record file in a watched dir.
    pub fn start(dirs: &[PathBuf], tx: UnboundedSender<Msg>) -> Result<Watcher> {
        let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)
            .map_err(|e| Error::io("starting inotify", std::io::Error::from(e)))?;
        let inotify = Arc::new(
            super::async_fd(InotifyFd(inotify)).map_err(|e| Error::io("starting inotify", e))?,
        );
        let task = tokio::spawn(read_events(Arc::clone(&inotify), tx));
        let mut watcher = Watcher {
            inotify,
            dirs: dirs.iter().map(|d| (d.clone(), None)).collect(),
            task,
        };
        watcher.retry_missing();
        Ok(watcher)
    }

    /// Watches each data_dir that exists now and was not watched; the dirs newly watched
    /// (the caller reads them: records may have been written before the watch).
    pub fn retry_missing(&mut self) -> Vec<PathBuf> {
        let mut added = Vec::new();
        for (dir, watch) in &mut self.dirs {
            if watch.is_some() {
                continue;
            }
            if let Ok(wd) = self.inotify.get_ref().0.add_watch(dir.as_path(), flags()) {
                *watch = Some(wd);
                added.push(dir.clone());
            }
        }
        added
    }

    /// Watches one more data_dir (one a cached config names), from the next
    /// `retry_missing` on.
    pub fn add(&mut self, dir: &Path) {
        self.dirs.entry(dir.to_path_buf()).or_insert(None);
    }

    /// The dir a watch belongs to; its watch is forgotten when the dir went away.
    fn dir_of(&self, wd: WatchDescriptor) -> Option<PathBuf> {
        self.dirs
            .iter()
            .find(|(_, w)| **w == Some(wd))
            .map(|(d, _)| d.clone())
    }

    /// The dir a watch event is about; its watch is forgotten when the dir went away.
    pub fn changed(&mut self, wd: WatchDescriptor, dir_gone: bool) -> Option<PathBuf> {
        let dir = self.dir_of(wd)?;
        if dir_gone {
            self.dirs.insert(dir.clone(), None);
        }
        Some(dir)
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Reads inotify events as they come and tells the event loop which watch saw a record
/// file change (or its directory go).
async fn read_events(inotify: Arc<AsyncFd<InotifyFd>>, tx: UnboundedSender<Msg>) {
    loop {
        let Ok(mut guard) = inotify.readable().await else {
            return;
        };
        let events =
            match guard.try_io(|fd| fd.get_ref().0.read_events().map_err(std::io::Error::from)) {
                Ok(Ok(events)) => events,
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "reading inotify events");
                    continue;
                }
                Err(_would_block) => continue,
            };
        for event in events {
            let gone = event
                .mask
                .intersects(AddWatchFlags::IN_DELETE_SELF | AddWatchFlags::IN_IGNORED);
            let record = event
                .name
                .clone()
                .filter(|n| n.to_str().is_some_and(|n| n.ends_with(".json")));
            let file = if gone { None } else { record };
            if (gone || file.is_some()) && tx.send(Msg::Records { wd: event.wd, file }).is_err() {
                return;
            }
        }
    }
}
