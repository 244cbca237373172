//! record: where attachment records (BEHAVIOUR 6) live: `data_dir/<container id>-<ifname>.json`,
//! written atomically (temp file, rename) with mode 0600. Ids and names are
//! validated before they become file names. data_dir is reached through `confined`: made
//! 0700 where missing inside its allowed directory, never through a symlink below it.
//! No kernel access; no decisions.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

use crate::config::is_valid_ifname;
use crate::confined;
use crate::error::{Error, Result};
use crate::model::Record;

/// The longest file name most filesystems take (NAME_MAX).
const MAX_FILE_NAME: usize = 255;
/// What a record's file name adds to the container id: `-`, an interface name of at most 15
/// bytes, and `.json.tmp` while it is written.
const RECORD_NAME_OVERHEAD: usize = 1 + 15 + ".json.tmp".len();
/// Longer ids could not name a record file: refused up front (code 4) rather than failing
/// with ENAMETOOLONG halfway through an ADD.
pub const MAX_CONTAINER_ID_LEN: usize = MAX_FILE_NAME - RECORD_NAME_OVERHEAD;

/// CNI container ids: alphanumerics plus `-`, `_`, `.`, starting with an alphanumeric; never
/// a path component trick.
pub fn is_valid_container_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_CONTAINER_ID_LEN
        && id.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
}

/// The attachment records: read, written, listed.
pub trait RecordStore {
    fn load(&self, container_id: &str, ifname: &str) -> Result<Option<Record>>;
    /// The records of the pod's other attachments.
    fn peers(&self, container_id: &str, ifname: &str) -> Result<Vec<Record>>;
    fn save(&self, record: &Record) -> Result<()>;
    fn remove(&self, container_id: &str, ifname: &str) -> Result<()>;
    /// Every record in the store (GC). A file that is not a readable record is left out
    /// (logged): nothing says whose it is.
    fn all(&self) -> Result<Vec<Record>>;
}

/// What the records' place guards for the whole node: the host lock, and whether ADD could
/// use the place now. Apart from `RecordStore` so that a wrapper changing one (the signals
/// allowed while waiting for the lock, GC's view of peers) wraps only that one.
pub trait HostGuard {
    /// Serialises the decisions about the shared host rule of concurrent ADDs and DELs (the
    /// runtime runs pods in parallel; ARCHITECTURE "Ordering"): held until the guard drops.
    fn lock_host(&self) -> Result<HostLock>;
    /// Whether ADD could write records and take the host lock now (STATUS): an error
    /// (code 50) names what is unusable.
    fn check_usable(&self) -> Result<()>;
}

/// Holds the host lock while alive (an flock on `data_dir/host.lock`, released on close).
pub struct HostLock {
    _file: Option<Flock<fs::File>>,
}

/// How long an ADD or DEL waits for the host lock before answering "try again" (code 11).
const LOCK_TIMEOUT: Duration = Duration::from_secs(30);
const LOCK_POLL: Duration = Duration::from_millis(5);

impl<T: RecordStore + ?Sized> RecordStore for std::sync::Arc<T> {
    fn load(&self, container_id: &str, ifname: &str) -> Result<Option<Record>> {
        (**self).load(container_id, ifname)
    }
    fn peers(&self, container_id: &str, ifname: &str) -> Result<Vec<Record>> {
        (**self).peers(container_id, ifname)
    }
    fn save(&self, record: &Record) -> Result<()> {
        (**self).save(record)
    }
    fn remove(&self, container_id: &str, ifname: &str) -> Result<()> {
        (**self).remove(container_id, ifname)
    }
    fn all(&self) -> Result<Vec<Record>> {
        (**self).all()
    }
}

impl<T: HostGuard + ?Sized> HostGuard for std::sync::Arc<T> {
    fn lock_host(&self) -> Result<HostLock> {
        (**self).lock_host()
    }
    fn check_usable(&self) -> Result<()> {
        (**self).check_usable()
    }
}

pub struct FileRecords {
    pub dir: PathBuf,
    /// The allowed directory data_dir lies in: below it no component may be a symlink.
    root: PathBuf,
}

/// data_dir and the directories router makes for it.
const DATA_DIR_MODE: u32 = 0o700;

impl FileRecords {
    /// Records in `dir` itself, trusted as given (tests, offline tools).
    pub fn new(dir: &Path) -> FileRecords {
        FileRecords::confined(dir, dir)
    }

    /// Records in `dir`, inside the allowed directory `root`.
    pub fn confined(root: &Path, dir: &Path) -> FileRecords {
        FileRecords {
            dir: dir.to_path_buf(),
            root: root.to_path_buf(),
        }
    }

    fn path(&self, container_id: &str, ifname: &str) -> Result<PathBuf> {
        if !is_valid_container_id(container_id) {
            return Err(Error::InvalidEnv(format!(
                "CNI_CONTAINERID {container_id:?} is not a valid container id"
            )));
        }
        if !is_valid_ifname(ifname) {
            return Err(Error::InvalidEnv(format!(
                "CNI_IFNAME {ifname:?} is not a valid interface name"
            )));
        }
        Ok(self.dir.join(format!("{container_id}-{ifname}.json")))
    }

    fn read(path: &Path) -> Result<Record> {
        let text = fs::read_to_string(path)
            .map_err(|e| Error::io(format!("reading record {}", path.display()), e))?;
        serde_json::from_str(&text).map_err(|e| Error::Decode {
            what: format!("record {}", path.display()),
            reason: e.to_string(),
        })
    }

    /// A record file as this version writes it: its name is the one its content gives.
    fn read_listed(&self, path: &Path) -> Option<Record> {
        let record = match Self::read(path) {
            Ok(record) => record,
            Err(e) => {
                tracing::warn!(error = %e, "not a readable record: left alone");
                return None;
            }
        };
        let named = self.path(&record.container_id, &record.ifname).ok();
        if named.as_deref() != Some(path) {
            tracing::warn!(
                file = %path.display(),
                "a record whose name does not match its content: left alone"
            );
            return None;
        }
        Some(record)
    }

    /// Creates a file in data_dir, writes, syncs and removes it: what ADD needs to work.
    fn probe_write(&self) -> std::io::Result<()> {
        let probe = self.dir.join(format!(".status-{}.tmp", std::process::id()));
        let written = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&probe)
            .and_then(|mut file| file.write_all(b"ok").and_then(|_| file.sync_all()));
        let removed = fs::remove_file(&probe);
        written.and(removed)
    }

    /// Makes data_dir (and its parents inside the allowed directory) 0700 where missing;
    /// existing ones are used as they are.
    fn ensure_dir(&self) -> Result<()> {
        confined::open_dir(&self.root, &self.dir, Some(DATA_DIR_MODE))
            .map(drop)
            .map_err(|e| Error::io(format!("creating data_dir {}", self.dir.display()), e))
    }

    /// Whether data_dir can be reached without a symlink (missing is fine: made when needed).
    pub fn check_reachable(&self) -> Result<()> {
        self.dir_exists().map(drop)
    }

    /// Whether data_dir exists, reached without a symlink (one is an error: records are
    /// never read or removed through it).
    fn dir_exists(&self) -> Result<bool> {
        confined::open_dir(&self.root, &self.dir, None)
            .map(|dir| dir.is_some())
            .map_err(|e| Error::io(format!("opening data_dir {}", self.dir.display()), e))
    }
}

impl RecordStore for FileRecords {
    fn load(&self, container_id: &str, ifname: &str) -> Result<Option<Record>> {
        let path = self.path(container_id, ifname)?;
        if !self.dir_exists()? || !path.exists() {
            return Ok(None);
        }
        Self::read(&path).map(Some)
    }

    fn peers(&self, container_id: &str, ifname: &str) -> Result<Vec<Record>> {
        let own = self.path(container_id, ifname)?;
        if !self.dir_exists()? {
            return Ok(Vec::new());
        }
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return Ok(Vec::new());
        };
        let prefix = format!("{container_id}-");
        let candidates = entries
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| {
                *p != own
                    && p.extension().is_some_and(|x| x == "json")
                    && p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with(&prefix))
            });
        // Another container's id may start with ours: the record says whose it is.
        Ok(candidates
            .filter_map(|p| Self::read(&p).ok())
            .filter(|r| r.container_id == container_id && r.ifname != ifname)
            .collect())
    }

    fn save(&self, record: &Record) -> Result<()> {
        let path = self.path(&record.container_id, &record.ifname)?;
        self.ensure_dir()?;
        let tmp = path.with_extension("json.tmp");
        let what = || format!("writing record {}", path.display());
        let text = serde_json::to_vec_pretty(record).map_err(|e| Error::io(what(), e))?;
        // Not through a link someone planted in data_dir: the rename below replaces the
        // name itself, and this open must not write elsewhere either.
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&tmp)
            .map_err(|e| Error::io(what(), e))?;
        // No fsync: the record only has to outlive this process, not the node (data_dir is
        // on /run, and a reboot takes every pod netns with it); the rename keeps readers
        // from ever seeing half a file. On a disk, an fsync here costs about 0.4 ms an ADD.
        file.write_all(&text)
            .and_then(|_| fs::rename(&tmp, &path))
            .map_err(|e| Error::io(what(), e))
    }

    fn remove(&self, container_id: &str, ifname: &str) -> Result<()> {
        let path = self.path(container_id, ifname)?;
        if !self.dir_exists()? {
            return Ok(());
        }
        match fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(Error::io(format!("removing record {}", path.display()), e))
            }
            _ => Ok(()),
        }
    }

    fn all(&self) -> Result<Vec<Record>> {
        if !self.dir_exists()? {
            return Ok(Vec::new());
        }
        let entries = match fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => {
                return Err(Error::io(
                    format!("listing data_dir {}", self.dir.display()),
                    e,
                ))
            }
        };
        let mut paths: Vec<PathBuf> = entries
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        paths.sort();
        Ok(paths.iter().filter_map(|p| self.read_listed(p)).collect())
    }
}

impl HostGuard for FileRecords {
    fn lock_host(&self) -> Result<HostLock> {
        self.ensure_dir()?;
        let path = self.dir.join("host.lock");
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(|e| Error::io(format!("opening lock {}", path.display()), e))?;
        let started = Instant::now();
        let deadline = started + LOCK_TIMEOUT;
        loop {
            match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
                Ok(lock) => {
                    // How long concurrent ADDs and DELs queue on the node (the scale test
                    // reads it).
                    tracing::debug!(
                        waited_us = started.elapsed().as_micros() as u64,
                        "host lock acquired"
                    );
                    return Ok(HostLock { _file: Some(lock) });
                }
                Err((unlocked, Errno::EWOULDBLOCK)) => file = unlocked,
                Err((_, errno)) => {
                    let err = std::io::Error::from(errno);
                    return Err(Error::io(format!("locking {}", path.display()), err));
                }
            }
            if Instant::now() >= deadline {
                return Err(Error::TryAgain(format!(
                    "the host lock {} is held by another ADD or DEL for over {}s",
                    path.display(),
                    LOCK_TIMEOUT.as_secs()
                )));
            }
            std::thread::sleep(LOCK_POLL);
        }
    }

    fn check_usable(&self) -> Result<()> {
        let unusable = |e: &dyn std::fmt::Display| {
            Error::NotAvailable(format!(
                "data_dir {} is not usable: {e}",
                self.dir.display()
            ))
        };
        self.ensure_dir().map_err(|e| unusable(&e))?;
        self.probe_write().map_err(|e| unusable(&e))
    }
}

/// Records in memory, for tests and offline runs.
#[derive(Default)]
pub struct MemRecords {
    records: Mutex<Vec<Record>>,
}

impl MemRecords {
    pub fn with(records: Vec<Record>) -> MemRecords {
        MemRecords {
            records: Mutex::new(records),
        }
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Vec<Record>>> {
        self.records
            .lock()
            .map_err(|_| Error::TryAgain("record store lock poisoned".into()))
    }
}

impl RecordStore for MemRecords {
    fn load(&self, container_id: &str, ifname: &str) -> Result<Option<Record>> {
        Ok(self
            .lock()?
            .iter()
            .find(|r| r.container_id == container_id && r.ifname == ifname)
            .cloned())
    }

    fn peers(&self, container_id: &str, ifname: &str) -> Result<Vec<Record>> {
        Ok(self
            .lock()?
            .iter()
            .filter(|r| r.container_id == container_id && r.ifname != ifname)
            .cloned()
            .collect())
    }

    fn save(&self, record: &Record) -> Result<()> {
        let mut records = self.lock()?;
        records.retain(|r| !(r.container_id == record.container_id && r.ifname == record.ifname));
        records.push(record.clone());
        Ok(())
    }

    fn remove(&self, container_id: &str, ifname: &str) -> Result<()> {
        self.lock()?
            .retain(|r| !(r.container_id == container_id && r.ifname == ifname));
        Ok(())
    }

    fn all(&self) -> Result<Vec<Record>> {
        Ok(self.lock()?.clone())
    }
}

impl HostGuard for MemRecords {
    fn lock_host(&self) -> Result<HostLock> {
        Ok(HostLock { _file: None })
    }

    fn check_usable(&self) -> Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn record(cid: &str, ifname: &str) -> Record {
        Record::new(cid, ifname, 100, 500, "eth0")
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("router-records-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn container_ids_that_could_escape_the_directory_are_rejected() {
        for bad in [
            "",
            "../x",
            "a/b",
            ".hidden",
            "a\0b",
            "-lead",
            &"x".repeat(300),
        ] {
            assert!(!is_valid_container_id(bad), "{bad:?}");
        }
        assert!(is_valid_container_id("0123abc_def.g-h"));
    }

    #[test]
    fn saved_record_loads_back_with_mode_0600_and_remove_is_idempotent() {
        let dir = temp_dir("roundtrip");
        let store = FileRecords::new(&dir);
        let r = record("c1", "net1");
        store.save(&r).unwrap();
        assert_eq!(store.load("c1", "net1").unwrap(), Some(r));
        let mode = fs::metadata(dir.join("c1-net1.json"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        store.remove("c1", "net1").unwrap();
        store.remove("c1", "net1").unwrap();
        assert_eq!(store.load("c1", "net1").unwrap(), None);
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn peers_are_the_same_containers_other_interfaces_only() {
        let dir = temp_dir("peers");
        let store = FileRecords::new(&dir);
        for (cid, ifname) in [
            ("c1", "net1"),
            ("c1", "net2"),
            ("c1-x", "net1"),
            ("c2", "net1"),
        ] {
            store.save(&record(cid, ifname)).unwrap();
        }
        let peers = store.peers("c1", "net1").unwrap();
        assert_eq!(peers.len(), 1);
        assert_eq!(peers[0].ifname, "net2");
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn host_lock_excludes_a_second_holder_until_released() {
        let dir = temp_dir("lock");
        let store = FileRecords::new(&dir);
        let first = store.lock_host().unwrap();
        let path = dir.join("host.lock");
        let other = fs::File::open(&path).unwrap();
        let Err((other, Errno::EWOULDBLOCK)) = Flock::lock(other, FlockArg::LockExclusiveNonblock)
        else {
            panic!("a second holder got the host lock");
        };
        drop(first);
        assert!(Flock::lock(other, FlockArg::LockExclusiveNonblock).is_ok());
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn all_lists_readable_records_whose_names_match_and_skips_the_rest() {
        let dir = temp_dir("all");
        let store = FileRecords::new(&dir);
        assert!(
            store.all().unwrap().is_empty(),
            "a missing data_dir holds none"
        );
        store.save(&record("c1", "net1")).unwrap();
        store.save(&record("c2", "net2")).unwrap();
        fs::write(dir.join("garbage.json"), b"{not json").unwrap();
        let mut renamed = record("c3", "net1");
        renamed.container_id = "c4".into();
        fs::write(
            dir.join("c3-net1.json"),
            serde_json::to_vec(&renamed).unwrap(),
        )
        .unwrap();
        let ids: Vec<(String, String)> = store
            .all()
            .unwrap()
            .into_iter()
            .map(|r| (r.container_id, r.ifname))
            .collect();
        assert_eq!(
            ids,
            vec![("c1".into(), "net1".into()), ("c2".into(), "net2".into())]
        );
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_usable_data_dir_is_created_and_left_empty_and_a_file_is_not_usable() {
        let dir = temp_dir("usable");
        let store = FileRecords::new(&dir.join("data"));
        store.check_usable().unwrap();
        assert_eq!(fs::read_dir(dir.join("data")).unwrap().count(), 0);
        fs::write(dir.join("file"), b"x").unwrap();
        let err = FileRecords::new(&dir.join("file"))
            .check_usable()
            .unwrap_err();
        assert_eq!(err.code(), crate::error::Code::NotAvailable, "{err}");
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_record_is_never_written_through_a_planted_link() {
        let dir = temp_dir("link");
        let store = FileRecords::new(&dir);
        fs::create_dir_all(&dir).unwrap();
        let target = dir.join("elsewhere");
        fs::write(&target, b"untouched").unwrap();
        std::os::unix::fs::symlink(&target, dir.join("c1-net1.json.tmp")).unwrap();
        assert!(store.save(&record("c1", "net1")).is_err());
        assert_eq!(fs::read(&target).unwrap(), b"untouched");
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn data_dir_is_never_reached_through_a_symlink_below_its_allowed_directory() {
        let root = temp_dir("symlinked");
        let elsewhere = temp_dir("symlinked-elsewhere");
        fs::create_dir_all(&root).unwrap();
        fs::create_dir_all(&elsewhere).unwrap();
        std::os::unix::fs::symlink(&elsewhere, root.join("link")).unwrap();
        let planted = record("c1", "net1");
        FileRecords::new(&elsewhere).save(&planted).unwrap();
        let store = FileRecords::confined(&root, &root.join("link/data"));
        assert!(store.save(&record("c2", "net1")).is_err());
        assert!(store.lock_host().is_err());
        let through = FileRecords::confined(&root, &root.join("link"));
        assert!(through.load("c1", "net1").is_err());
        assert!(through.all().is_err());
        assert!(through.remove("c1", "net1").is_err());
        assert_eq!(
            FileRecords::new(&elsewhere).load("c1", "net1").unwrap(),
            Some(planted)
        );
        assert!(!elsewhere.join("data").exists());
        let _ = fs::remove_dir_all(&root);
        let _ = fs::remove_dir_all(&elsewhere);
    }

    #[test]
    fn data_dir_and_its_missing_parents_are_made_0700_and_existing_ones_kept() {
        let root = temp_dir("modes");
        fs::create_dir_all(root.join("shared")).unwrap();
        fs::set_permissions(root.join("shared"), fs::Permissions::from_mode(0o755)).unwrap();
        let store = FileRecords::confined(&root, &root.join("shared/cni/router"));
        store.save(&record("c1", "net1")).unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&root.join("shared")), 0o755);
        assert_eq!(mode(&root.join("shared/cni")), 0o700);
        assert_eq!(mode(&root.join("shared/cni/router")), 0o700);
        let _ = fs::remove_dir_all(&root);
    }

    #[test]
    fn the_longest_valid_id_still_names_a_record_file() {
        let dir = temp_dir("long");
        let store = FileRecords::new(&dir);
        let id = "a".repeat(MAX_CONTAINER_ID_LEN);
        assert!(is_valid_container_id(&id));
        assert!(!is_valid_container_id(&format!("{id}a")));
        store.save(&record(&id, "net123456789012")).unwrap();
        assert!(store.load(&id, "net123456789012").unwrap().is_some());
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn invalid_names_never_become_paths() {
        let store = FileRecords::new(Path::new("/nonexistent"));
        assert!(store.load("../../etc", "net1").is_err());
        assert!(store.load("c1", "../x").is_err());
        assert!(store.save(&record("c1", "a/b")).is_err());
    }
}
