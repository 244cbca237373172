//! config::allowed: the directories a config may name files in (`AllowedDirs`) and the
//! judgement of `log_options.log_file` and `data_dir` against them. Must not touch the
//! file system: `confined` opens what this admits.

use std::path::{Component, Path, PathBuf};

use serde_json::{Map, Value};

use super::value::{optional_string, renest};
use crate::error::{Error, Result};

pub(super) const DEFAULT_DATA_DIR: &str = "/run/cni/router";
/// Where `log_options.log_file` may lie without ROUTER_ALLOWED_DIRS.
pub(super) const LOG_ROOTS: [&str; 1] = ["/var/log"];
/// Where `data_dir` may lie without ROUTER_ALLOWED_DIRS.
const DATA_ROOTS: [&str; 2] = ["/run", "/var/run"];
/// The environment variable naming more allowed directories (read by `cni` and `cli`).
pub const ALLOWED_DIRS_VAR: &str = "ROUTER_ALLOWED_DIRS";

/// The directories a config may name files in: `/var/log` for the log file, `/run` and
/// `/var/run` for data_dir, plus every directory of ROUTER_ALLOWED_DIRS (colon-separated
/// absolute paths) for both. The runtime's environment sets it, which a
/// NetworkAttachmentDefinition cannot; config validation takes it as a value.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AllowedDirs {
    extra: Vec<PathBuf>,
    /// Entries of the variable that are no absolute path without `..` (logged, not used).
    pub ignored: Vec<String>,
}

/// A path a config named, inside the allowed directory `root` (normalised: no `.`, no
/// empty component; `..` is refused).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Confined {
    pub(super) root: PathBuf,
    pub(super) path: PathBuf,
}

impl AllowedDirs {
    /// The defaults plus `dirs` (absolute paths; others are ignored).
    pub fn with<P: AsRef<Path>>(dirs: impl IntoIterator<Item = P>) -> AllowedDirs {
        let mut allowed = AllowedDirs::default();
        for dir in dirs {
            let dir = dir.as_ref();
            match normalised(dir) {
                Some(dir) if dir.is_absolute() => allowed.extra.push(dir),
                _ => allowed.ignored.push(dir.display().to_string()),
            }
        }
        allowed
    }

    /// From ROUTER_ALLOWED_DIRS's value (unset: the defaults only).
    pub fn from_var(value: Option<&str>) -> AllowedDirs {
        let entries = value
            .unwrap_or_default()
            .split(':')
            .filter(|e| !e.is_empty());
        AllowedDirs::with(entries)
    }

    fn roots(&self, defaults: &[&str]) -> Vec<PathBuf> {
        defaults
            .iter()
            .map(PathBuf::from)
            .chain(self.extra.iter().cloned())
            .collect()
    }

    /// `value` of `key` when it lies strictly inside one of the roots (the deepest that
    /// holds it), judged component by component after normalisation.
    fn confine(&self, key: &str, value: &str, defaults: &[&str]) -> Result<Confined> {
        let roots = self.roots(defaults);
        let refuse = |reason: String| Error::config(key, Value::String(value.to_string()), reason);
        if !value.starts_with('/') || value.contains('\0') {
            return Err(refuse("must be an absolute path".into()));
        }
        // Resolving `..` by text would not be what the kernel resolves through a symlink.
        let path = normalised(Path::new(value))
            .ok_or_else(|| refuse("must not contain a .. component".into()))?;
        roots
            .iter()
            .filter(|root| path.starts_with(root) && path != **root)
            .max_by_key(|root| root.components().count())
            .map(|root| Confined {
                root: root.clone(),
                path: path.clone(),
            })
            .ok_or_else(|| {
                let names: Vec<String> = roots.iter().map(|r| r.display().to_string()).collect();
                refuse(format!(
                    "must lie inside one of the allowed directories {} (more can be allowed with {ALLOWED_DIRS_VAR})",
                    names.join(", ")
                ))
            })
    }
}

/// `path` without `.` and empty components; None when it has a `..` one.
fn normalised(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            Component::ParentDir => return None,
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    Some(out)
}

/// The default data_dir and the allowed directory it lies in.
pub fn default_data_dir() -> (PathBuf, PathBuf) {
    (
        PathBuf::from(DEFAULT_DATA_DIR),
        PathBuf::from(DATA_ROOTS[0]),
    )
}

/// `log_file`: a file inside an allowed directory (by default /var/log).
pub(super) fn parse_log_file(
    inner: &Map<String, Value>,
    allowed: &AllowedDirs,
) -> Result<Option<Confined>> {
    let key = "log_options.log_file";
    let Some(file) = optional_string(inner, "log_file").map_err(|e| renest(e, "log_options"))?
    else {
        return Ok(None);
    };
    if file.is_empty() || file.contains('\0') || file.ends_with('/') {
        return Err(Error::config(
            key,
            Value::String(file),
            "must be a file path",
        ));
    }
    allowed.confine(key, &file, &LOG_ROOTS).map(Some)
}

/// data_dir and the allowed directory it lies in (by default /run or /var/run). Records
/// are written under it as root: it names a directory inside that one, never a walk out.
pub(super) fn parse_data_dir(
    obj: &Map<String, Value>,
    allowed: &AllowedDirs,
) -> Result<(PathBuf, PathBuf)> {
    let dir = optional_string(obj, "data_dir")?.unwrap_or_else(|| DEFAULT_DATA_DIR.into());
    let confined = allowed.confine("data_dir", &dir, &DATA_ROOTS)?;
    Ok((confined.path, confined.root))
}
