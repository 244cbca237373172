//! operator::resolve: one attachment's inputs (config, prevResult, container id, netns)
//! from files, the runtime's result cache or the record ADD wrote, and the records it is
//! checked against. Must not plan or check.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::OFFLINE_CONTAINER_ID;
use crate::cache::{self, CacheEntry};
use crate::config::{
    parse_netconf, plugin_from_conflist_or_plugin, rolled_out_wins, AllowedDirs, Config, PrevView,
};
use crate::error::{Error, Result};
use crate::model::{AddInputs, Record};
use crate::reconcile::Attachment;
use crate::record::{FileRecords, RecordStore};

/// Where the inputs of one attachment come from, as the command line says.
#[derive(Clone, Copy, Debug)]
pub struct Sources<'a> {
    /// A plugin object or a conflist; without it the conflist cached with the result.
    pub config: Option<&'a Path>,
    /// The prevResult; without it the cached result (with a container id), else the
    /// config's own `prevResult`.
    pub prev_result: Option<&'a Path>,
    /// The result caches to look in (each holding `results/`).
    pub cache_dirs: &'a [PathBuf],
    pub container_id: Option<&'a str>,
    pub ifname: &'a str,
    /// Where the config's log file and data_dir may lie.
    pub allowed: &'a AllowedDirs,
}

/// One attachment with its inputs resolved.
#[derive(Clone, Debug)]
pub struct Resolved {
    pub config: Config,
    /// The plugin config as JSON without prevResult: what a repair records as the inputs
    /// of a record that has none.
    pub config_json: Value,
    pub prev: Option<Value>,
    pub container_id: String,
    pub ifname: String,
    /// The cache entry the inputs came from, if any.
    pub entry: Option<CacheEntry>,
    /// Where the records are: the config's data_dir, or where `check --all` found this
    /// attachment's record (a data_dir may be mounted elsewhere in a checker container).
    pub data_dir: PathBuf,
}

impl Resolved {
    pub(crate) fn attachment(&self, netns: Option<PathBuf>) -> Attachment {
        Attachment {
            container_id: self.container_id.clone(),
            ifname: self.ifname.clone(),
            netns,
        }
    }

    pub(crate) fn prev_view(&self) -> Result<Option<PrevView>> {
        self.prev.as_ref().map(PrevView::parse).transpose()
    }

    /// The pod netns: the one given, else the one libcni recorded in the cache entry (since
    /// libcni 1.2), else the one ADD recorded.
    pub fn netns_known(&self, given: Option<&Path>) -> Option<PathBuf> {
        given
            .map(Path::to_path_buf)
            .or_else(|| self.entry.as_ref().and_then(|e| e.netns.clone()))
            .or_else(|| recorded_netns(self.record().as_ref()))
    }

    /// The records ADD and CHECK would read: those in data_dir.
    pub(crate) fn records(&self) -> FileRecords {
        // The config's data_dir is judged against its allowed root; one the operator
        // named (`--data-dir`, where `check --all` found the record) is trusted as given.
        if self.data_dir == self.config.data_dir {
            FileRecords::confined(&self.config.data_root, &self.data_dir)
        } else {
            FileRecords::new(&self.data_dir)
        }
    }

    /// This attachment's record, if there is a readable one.
    fn record(&self) -> Option<Record> {
        self.records()
            .load(&self.container_id, &self.ifname)
            .ok()
            .flatten()
    }

    /// The config `router rollout` left in this attachment's record wins over the cached
    /// one (docs/decisions/rollout-config-wins.md): `check` and `plan` then judge the
    /// attachment by what it was rolled out to, as its runtime's CHECK does.
    pub(crate) fn rolled_out_wins(mut self, allowed: &AllowedDirs) -> Result<Resolved> {
        let rolled = self
            .records()
            .load(&self.container_id, &self.ifname)?
            .and_then(|r| r.rolled_out);
        if let Some(value) = rolled {
            self.config = rolled_out_wins(self.config, Some(&value), allowed)?;
            self.config_json = value;
        }
        Ok(self)
    }

    /// What a repair records when the record holds no inputs of an ADD.
    pub(crate) fn inputs(&self, netns: &Path) -> AddInputs {
        AddInputs {
            netns: Some(netns.to_path_buf()),
            config: self.config_json.clone(),
            prev_result: self.prev.clone().unwrap_or(Value::Null),
        }
    }
}

pub(super) fn recorded_netns(record: Option<&Record>) -> Option<PathBuf> {
    record.and_then(|r| r.inputs.as_ref()?.netns.clone())
}

/// A plugin config without its prevResult, as ADD records it.
pub(super) fn without_prev_result(plugin: &Value) -> Value {
    AddInputs::new(None, plugin).config
}

pub fn read_json(path: &Path, what: &str) -> Result<Value> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::io(format!("reading {what} {}", path.display()), e))?;
    serde_json::from_str(&text).map_err(|e| Error::Decode {
        what: format!("{what} {}", path.display()),
        reason: e.to_string(),
    })
}

/// Reads an attachment record file (what ADD wrote in data_dir).
pub fn read_record(path: &Path) -> Result<Record> {
    serde_json::from_value(read_json(path, "record")?).map_err(|e| Error::Decode {
        what: format!("record {}", path.display()),
        reason: e.to_string(),
    })
}

fn missing_input(what: &str) -> Error {
    Error::InvalidEnv(format!("missing input: {what}"))
}

/// The network name of a config, which names its cache entry.
fn network_name(config: &Value) -> Option<String> {
    config.get("name").and_then(Value::as_str).map(String::from)
}

/// Resolves config, prevResult and container id. The cache is read when the config is not
/// given, or when a container id is given without a prevResult file.
pub fn resolve(src: &Sources<'_>) -> Result<Resolved> {
    let given = src.config.map(|p| read_json(p, "config")).transpose()?;
    let needs_cache = given.is_none() || (src.prev_result.is_none() && src.container_id.is_some());
    let entry = if needs_cache {
        let container_id = src.container_id.ok_or_else(|| {
            missing_input("--config, or --container-id to find the conflist in the result cache")
        })?;
        let network = given.as_ref().and_then(network_name);
        Some(cache::find(
            src.cache_dirs,
            container_id,
            src.ifname,
            network.as_deref(),
        )?)
    } else {
        None
    };
    let config_json = match (given, &entry) {
        (Some(config), _) => config,
        (None, Some(entry)) => entry.config.clone(),
        (None, None) => return Err(missing_input("--config")),
    };
    let plugin = plugin_from_conflist_or_plugin(config_json)?;
    let netconf = parse_netconf(&plugin, src.allowed)?;
    let prev = match src.prev_result {
        Some(path) => Some(read_json(path, "prevResult")?),
        None => entry
            .as_ref()
            .and_then(|e| e.result.clone())
            .or(netconf.prev_result),
    };
    let resolved = Resolved {
        data_dir: netconf.config.data_dir.clone(),
        config: netconf.config,
        config_json: without_prev_result(&plugin),
        prev,
        container_id: src.container_id.unwrap_or(OFFLINE_CONTAINER_ID).to_string(),
        ifname: src.ifname.to_string(),
        entry,
    };
    // A config the operator gave is what they asked to see; the cached one is the ADD's,
    // which a rollout since replaced.
    match (src.config, src.container_id) {
        (None, Some(_)) => resolved.rolled_out_wins(src.allowed),
        _ => Ok(resolved),
    }
}
