//! record::files: `FileRecords`, the records as files in data_dir: validated names, data_dir
//! reached through `confined`, atomic 0600 writes that follow no link, the listing GC reads.
//! Must not touch the kernel.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::{is_valid_container_id, RecordStore};
use crate::config::is_valid_ifname;
use crate::confined;
use crate::error::{Error, Result};
use crate::model::Record;

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

    pub(super) fn path(&self, container_id: &str, ifname: &str) -> Result<PathBuf> {
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
    pub(super) fn probe_write(&self) -> std::io::Result<()> {
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
    pub(super) fn ensure_dir(&self) -> Result<()> {
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
    pub(super) fn dir_exists(&self) -> Result<bool> {
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
