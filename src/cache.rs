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
mod tests {
    use super::*;
    use serde_json::json;

    struct TempDir(PathBuf);

    impl TempDir {
        fn new(tag: &str) -> TempDir {
            let dir =
                std::env::temp_dir().join(format!("router-cache-{tag}-{}", std::process::id()));
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(dir.join("results")).unwrap();
            TempDir(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn conflist(name: &str, with_router: bool) -> Value {
        let mut plugins = vec![json!({"type": "macvlan", "master": "eth9"})];
        if with_router {
            plugins.push(json!({"type": "router", "overlay_hijack_subnet": ["10.244.0.0/16"]}));
        }
        json!({"cniVersion": "1.0.0", "name": name, "plugins": plugins})
    }

    /// An entry exactly as libcni's cacheAdd marshals cachedInfo (field order included).
    fn libcni_entry(network: &str, cid: &str, ifname: &str, config: &Value) -> String {
        let bytes = serde_json::to_vec(config).unwrap();
        format!(
            r#"{{"kind":"cniCacheV1","containerId":"{cid}","config":"{}","ifName":"{ifname}","networkName":"{network}","netns":"/var/run/netns/cni-1","cniArgs":[["K8S_POD_NAME","p"]],"result":{{"cniVersion":"1.0.0","interfaces":[{{"name":"{ifname}","sandbox":"/var/run/netns/cni-1"}}],"ips":[{{"address":"192.168.50.10/24","interface":0}}]}}}}"#,
            STANDARD.encode(bytes)
        )
    }

    fn write(dir: &TempDir, name: &str, text: &str) {
        fs::write(dir.0.join("results").join(name), text).unwrap();
    }

    #[test]
    fn a_libcni_entry_decodes_with_its_conflist_netns_and_result() {
        let dir = TempDir::new("decode");
        let config = conflist("macvlan-net1", true);
        write(
            &dir,
            "macvlan-net1-c1-net1",
            &libcni_entry("macvlan-net1", "c1", "net1", &config),
        );
        let entry = find(
            std::slice::from_ref(&dir.0),
            "c1",
            "net1",
            Some("macvlan-net1"),
        )
        .unwrap();
        assert_eq!(entry.config, config);
        assert_eq!(entry.netns, Some(PathBuf::from("/var/run/netns/cni-1")));
        assert_eq!(
            entry.result.as_ref().unwrap()["ips"][0]["address"],
            "192.168.50.10/24"
        );
        assert!(entry.has_router());
        assert_eq!(
            (entry.container_id.as_str(), entry.ifname.as_str()),
            ("c1", "net1")
        );
    }

    #[test]
    fn find_without_a_network_name_prefers_the_router_chain_and_refuses_ambiguity() {
        let dir = TempDir::new("find");
        write(
            &dir,
            "a-c1-net1",
            &libcni_entry("a", "c1", "net1", &conflist("a", false)),
        );
        write(
            &dir,
            "b-c1-net1",
            &libcni_entry("b", "c1", "net1", &conflist("b", true)),
        );
        assert_eq!(
            find(std::slice::from_ref(&dir.0), "c1", "net1", None)
                .unwrap()
                .network,
            "b"
        );
        write(
            &dir,
            "c-c1-net1",
            &libcni_entry("c", "c1", "net1", &conflist("c", true)),
        );
        let err = find(std::slice::from_ref(&dir.0), "c1", "net1", None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("b, c"), "{err}");
        assert!(find(std::slice::from_ref(&dir.0), "c2", "net1", None).is_err());
    }

    #[test]
    fn walk_lists_every_file_sorted_and_says_why_a_file_is_not_an_entry() {
        let dir = TempDir::new("walk");
        write(
            &dir,
            "z-c1-net1",
            &libcni_entry("z", "c1", "net1", &conflist("z", true)),
        );
        write(&dir, "legacy-c2-eth0", r#"{"cniVersion":"0.3.1","ips":[]}"#);
        write(
            &dir,
            "bad-c3-eth0",
            r#"{"kind":"cniCacheV1","containerId":"c3","ifName":"eth0","networkName":"bad","config":"!!"}"#,
        );
        let walked = walk(&dir.0).unwrap();
        let names: Vec<String> = walked
            .iter()
            .map(|(p, _)| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["bad-c3-eth0", "legacy-c2-eth0", "z-c1-net1"]);
        assert!(walked[0]
            .1
            .as_ref()
            .unwrap_err()
            .to_string()
            .contains("base64"));
        assert!(walked[1].1.is_err());
        assert!(walked[2].1.is_ok());
        assert!(walk(&dir.0.join("nowhere")).unwrap().is_empty());
    }

    #[test]
    fn find_looks_in_every_cache_dir_as_multus_keeps_its_delegates_apart() {
        let runtime = TempDir::new("runtime");
        let multus = TempDir::new("multus");
        write(
            &runtime,
            "multus-cni-network-c1-eth0",
            &libcni_entry("multus-cni-network", "c1", "eth0", &conflist("m", false)),
        );
        write(
            &multus,
            "macvlan-net1-c1-net1",
            &libcni_entry(
                "macvlan-net1",
                "c1",
                "net1",
                &conflist("macvlan-net1", true),
            ),
        );
        let dirs = [runtime.0.clone(), multus.0.clone()];
        for network in [None, Some("macvlan-net1")] {
            let found = find(&dirs, "c1", "net1", network).unwrap();
            assert_eq!(found.file, multus.0.join("results/macvlan-net1-c1-net1"));
        }
        let err = find(&dirs, "c1", "net2", None).unwrap_err().to_string();
        assert!(
            err.contains(&format!("{}, {}", dirs[0].display(), dirs[1].display())),
            "{err}"
        );
    }

    #[test]
    fn names_that_could_leave_the_directory_are_refused() {
        let dir = Path::new("/nonexistent");
        assert!(entry_path(dir, "../x", "c1", "net1").is_err());
        assert!(entry_path(dir, "n", "../../etc/passwd", "net1").is_err());
        assert!(entry_path(dir, "n", "c1", "a/b").is_err());
        assert!(find(&[dir.to_path_buf()], "c1/..", "net1", None).is_err());
    }

    #[test]
    fn a_single_plugin_config_counts_as_a_chain_of_one() {
        assert!(has_router(&json!({"type": "router"})));
        assert!(!has_router(&json!({"type": "ptp"})));
        assert!(!has_router(&json!({"plugins": "oops"})));
    }
}
