//! cache: the CNI runtime's result cache as libcni writes it: one file per attachment,
//! `DIR/results/<network name>-<container id>-<ifname>`, JSON of kind `cniCacheV1` holding
//! the attachment's ids, its netns, the conflist it ran (Go `[]byte`, so standard base64)
//! and the chain's final result (what the runtime passes as prevResult to CHECK and DEL).
//! Reads one entry or walks them all, in one cache dir or several (the runtime's and
//! Multus's). Never writes: the runtime owns the cache. Decides nothing about what it finds.

use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::Deserialize;
use serde_json::Value;

use crate::config::is_valid_ifname;
use crate::error::{Error, Result};
use crate::record::is_valid_container_id;

/// libcni's default cache directory.
pub const DEFAULT_CACHE_DIR: &str = "/var/lib/cni";
/// Multus's default `cniDir`: it runs each delegate through libcni with this cache dir, so
/// the results of the networks it attaches (router's among them) are kept here.
pub const DEFAULT_MULTUS_CACHE_DIR: &str = "/var/lib/cni/multus";
/// Where the operator commands look by default: every place a result can be kept.
pub const DEFAULT_CACHE_DIRS: [&str; 2] = [DEFAULT_CACHE_DIR, DEFAULT_MULTUS_CACHE_DIR];
/// The `kind` of the entries libcni writes since 0.8; older (legacy) files hold a bare
/// result without the config, so nothing tells which chain made them.
pub const CACHE_KIND: &str = "cniCacheV1";
/// An entry is a conflist plus a result: a few KB. The bound keeps a stray huge file in
/// the directory from being read whole.
const MAX_ENTRY_BYTES: u64 = 4 << 20;

/// One cached attachment.
#[derive(Clone, Debug, PartialEq)]
pub struct CacheEntry {
    pub file: PathBuf,
    pub container_id: String,
    pub ifname: String,
    pub network: String,
    /// The pod netns path the runtime passed as CNI_NETNS, when libcni recorded it.
    pub netns: Option<PathBuf>,
    /// The network config the runtime ran: a conflist, or one plugin object.
    pub config: Value,
    /// The chain's final result.
    pub result: Option<Value>,
}

impl CacheEntry {
    /// Whether the chain this attachment ran contains a `router` plugin.
    pub fn has_router(&self) -> bool {
        has_router(&self.config)
    }
}

/// libcni's `cachedInfo`, the fields this plugin uses.
#[derive(Deserialize)]
struct RawEntry {
    kind: String,
    #[serde(rename = "containerId", default)]
    container_id: String,
    #[serde(default)]
    config: Option<String>,
    #[serde(rename = "ifName", default)]
    if_name: String,
    #[serde(rename = "networkName", default)]
    network_name: String,
    #[serde(default)]
    netns: Option<String>,
    #[serde(default)]
    result: Option<Value>,
}

/// Whether a network config (a conflist or one plugin object) runs `router`.
pub fn has_router(config: &Value) -> bool {
    let is_router = |p: &Value| p.get("type").and_then(Value::as_str) == Some("router");
    match config.get("plugins").and_then(Value::as_array) {
        Some(plugins) => plugins.iter().any(is_router),
        None => is_router(config),
    }
}

/// Where libcni keeps the entry of one attachment. The names are validated first: they
/// come from the command line and must not walk out of the directory.
pub fn entry_path(dir: &Path, network: &str, container_id: &str, ifname: &str) -> Result<PathBuf> {
    if !is_valid_container_id(network) {
        return Err(Error::InvalidEnv(format!(
            "network name {network:?} is not a valid CNI network name"
        )));
    }
    if !is_valid_container_id(container_id) {
        return Err(Error::InvalidEnv(format!(
            "container id {container_id:?} is not a valid container id"
        )));
    }
    if !is_valid_ifname(ifname) {
        return Err(Error::InvalidEnv(format!(
            "interface name {ifname:?} is not a valid interface name"
        )));
    }
    Ok(results_dir(dir).join(format!("{network}-{container_id}-{ifname}")))
}

fn results_dir(dir: &Path) -> PathBuf {
    dir.join("results")
}

fn read_bounded(file: &Path) -> Result<Vec<u8>> {
    let what = || format!("reading cache entry {}", file.display());
    let handle = fs::File::open(file).map_err(|e| Error::io(what(), e))?;
    let mut bytes = Vec::new();
    handle
        .take(MAX_ENTRY_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io(what(), e))?;
    if bytes.len() as u64 > MAX_ENTRY_BYTES {
        return Err(Error::io_other(
            what(),
            "larger than 4 MiB: not a cache entry",
        ));
    }
    Ok(bytes)
}

/// Reads and decodes one entry. Files that are not `cniCacheV1` entries are decode errors.
pub fn read_entry(file: &Path) -> Result<CacheEntry> {
    let decode_error = |reason: String| Error::Decode {
        what: format!("cache entry {}", file.display()),
        reason,
    };
    let raw: RawEntry =
        serde_json::from_slice(&read_bounded(file)?).map_err(|e| decode_error(e.to_string()))?;
    if raw.kind != CACHE_KIND {
        return Err(decode_error(format!(
            "kind {:?} is not {CACHE_KIND:?}",
            raw.kind
        )));
    }
    if raw.container_id.is_empty() || raw.if_name.is_empty() || raw.network_name.is_empty() {
        return Err(decode_error(
            "containerId, ifName and networkName must all be set".into(),
        ));
    }
    let config = decode_config(raw.config.as_deref()).map_err(decode_error)?;
    Ok(CacheEntry {
        file: file.to_path_buf(),
        container_id: raw.container_id,
        ifname: raw.if_name,
        network: raw.network_name,
        netns: raw.netns.filter(|n| !n.is_empty()).map(PathBuf::from),
        config,
        result: raw.result.filter(|r| !r.is_null()),
    })
}

/// The `config` field: base64 of the conflist bytes, as Go's encoding/json writes []byte.
fn decode_config(encoded: Option<&str>) -> std::result::Result<Value, String> {
    let encoded = encoded.ok_or("no config")?;
    let bytes = STANDARD
        .decode(encoded)
        .map_err(|e| format!("config is not base64: {e}"))?;
    serde_json::from_slice(&bytes).map_err(|e| format!("config is not JSON: {e}"))
}

/// Every file of `DIR/results`, sorted by name, each read as an entry (or the reason it
/// is not one). A missing directory is an empty cache: no pod has been attached yet.
pub fn walk(dir: &Path) -> Result<Vec<(PathBuf, Result<CacheEntry>)>> {
    let results = results_dir(dir);
    let listing = match fs::read_dir(&results) {
        Ok(listing) => listing,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(format!("listing {}", results.display()), e)),
    };
    let mut files: Vec<PathBuf> = listing
        .filter_map(|entry| entry.ok())
        .filter(|entry| entry.file_type().is_ok_and(|t| t.is_file()))
        .map(|entry| entry.path())
        .collect();
    files.sort();
    Ok(files
        .into_iter()
        .map(|file| {
            let entry = read_entry(&file);
            (file, entry)
        })
        .collect())
}

/// The entry of one attachment, in any of `dirs`. With the network name known its file is
/// read directly; without it each cache is searched for the container id and interface.
/// Entries whose chain runs router are preferred, and more than one candidate is an error
/// naming them.
pub fn find(
    dirs: &[PathBuf],
    container_id: &str,
    ifname: &str,
    network: Option<&str>,
) -> Result<CacheEntry> {
    let mut candidates = Vec::new();
    for dir in dirs {
        candidates.extend(candidates_in(dir, container_id, ifname, network)?);
    }
    let searched = || {
        let dirs: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
        format!("looking up {container_id}/{ifname} in {}", dirs.join(", "))
    };
    if candidates.iter().any(CacheEntry::has_router) {
        candidates.retain(CacheEntry::has_router);
    }
    match candidates.len() {
        0 => Err(Error::io(
            searched(),
            io::Error::new(
                io::ErrorKind::NotFound,
                "no cached result for this container id and interface",
            ),
        )),
        1 => Ok(candidates.remove(0)),
        _ => Err(Error::io_other(
            searched(),
            format!(
                "cached by several networks ({}); pass --config to say which",
                candidates
                    .iter()
                    .map(|c| c.network.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )),
    }
}

/// The entries of one cache dir for this attachment (and network, when known).
fn candidates_in(
    dir: &Path,
    container_id: &str,
    ifname: &str,
    network: Option<&str>,
) -> Result<Vec<CacheEntry>> {
    if let Some(network) = network {
        let file = entry_path(dir, network, container_id, ifname)?;
        return match fs::symlink_metadata(&file) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            _ => read_entry(&file).map(|entry| vec![entry]),
        };
    }
    // Validates the names the same way before they are compared with file contents.
    entry_path(dir, "probe", container_id, ifname)?;
    Ok(walk(dir)?
        .into_iter()
        .filter_map(|(_, entry)| entry.ok())
        .filter(|e| e.container_id == container_id && e.ifname == ifname)
        .collect())
}

#[cfg(test)]
mod tests;
