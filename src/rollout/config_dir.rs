//! rollout::config_dir: a mounted ConfigMap of rollout sources (the kubelet's `..data` swap),
//! read from one generation, telling which files changed since the last read. Must not roll
//! anything out or decide when to read (the agent does).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

use super::Source;

/// The symlink the kubelet swaps to publish a new generation of a ConfigMap's files.
const DATA_LINK: &str = "..data";

/// One file of the directory as last read.
#[derive(Clone, Debug)]
pub struct DirConfig {
    /// The file's name (the ConfigMap key).
    pub file: String,
    /// Its content as a rollout source, or why it is not one.
    pub source: Result<Source>,
    /// Whether its content differs from the previous read (always true on the first read
    /// and for a file that appeared since).
    pub changed: bool,
}

/// A directory of rollout sources, remembering each file's content hash between reads.
#[derive(Clone, Debug)]
pub struct ConfigDir {
    dir: PathBuf,
    seen: BTreeMap<String, u64>,
}

impl ConfigDir {
    pub fn new(dir: impl Into<PathBuf>) -> ConfigDir {
        ConfigDir {
            dir: dir.into(),
            seen: BTreeMap::new(),
        }
    }

    /// Every file of the directory (dotfiles left out: the kubelet's `..data` and its
    /// timestamped directories), each read from the same generation: through `..data`
    /// resolved once, so a swap during the read is seen whole or not at all. Files are in
    /// name order. A file gone since the last read is forgotten.
    pub fn read(&mut self) -> Result<Vec<DirConfig>> {
        let generation = self.generation()?;
        let mut names: Vec<String> = Vec::new();
        let listing = fs::read_dir(&generation)
            .map_err(|e| Error::io(format!("listing {}", generation.display()), e))?;
        for entry in listing {
            let entry =
                entry.map_err(|e| Error::io(format!("listing {}", generation.display()), e))?;
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            if name.starts_with('.') {
                continue;
            }
            let path = generation.join(&name);
            if path.is_file() {
                names.push(name);
            }
        }
        names.sort();
        let mut configs = Vec::new();
        let mut seen = BTreeMap::new();
        for name in names {
            let path = generation.join(&name);
            let text = fs::read_to_string(&path)
                .map_err(|e| Error::io(format!("reading {}", path.display()), e));
            let (hash, source) = match text {
                Ok(text) => (fnv1a(text.as_bytes()), Source::parse(&text)),
                Err(e) => (0, Err(e)),
            };
            let changed = self.seen.get(&name) != Some(&hash);
            seen.insert(name.clone(), hash);
            configs.push(DirConfig {
                file: name,
                source,
                changed,
            });
        }
        self.seen = seen;
        Ok(configs)
    }

    /// The directory holding this generation's files: where `..data` points, else the
    /// directory itself (a plain directory, not a ConfigMap mount).
    fn generation(&self) -> Result<PathBuf> {
        let link = self.dir.join(DATA_LINK);
        match fs::read_link(&link) {
            Ok(target) => Ok(resolve(&self.dir, &target)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(self.dir.clone()),
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => Ok(self.dir.clone()),
            Err(e) => Err(Error::io(format!("reading {}", link.display()), e)),
        }
    }
}

/// The kubelet writes `..data` relative to the directory.
fn resolve(dir: &Path, target: &Path) -> PathBuf {
    match target.is_absolute() {
        true => target.to_path_buf(),
        false => dir.join(target),
    }
}

/// FNV-1a, 64 bits: a content hash that stays the same across runs and builds (std's
/// hasher is seeded per process), for telling a changed file from the same one.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests;
