//! rollout::source: a plugin object, a conflist or a NetworkAttachmentDefinition (JSON or
//! YAML) read as the router plugin object to roll out and its network's name. Pure: must
//! not read files or judge the keys (config does).

use serde_json::Value;

use crate::config::plugin_from_conflist_or_plugin;
use crate::error::{excerpt, Error, Result};

/// The config a rollout applies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Source {
    /// The router plugin object, with the list's `name` and `cniVersion`, without
    /// prevResult: what the record keeps as the rolled-out config.
    pub plugin: Value,
    /// The network it is for: the config's `name` (a NAD's own name when the config has
    /// none, as Multus names it).
    pub network: String,
}

/// The kind a NetworkAttachmentDefinition carries.
const NAD_KIND: &str = "NetworkAttachmentDefinition";

impl Source {
    /// Reads the text of a file or stdin. JSON first (what `-o json`, a conflist and a
    /// plugin object are); else YAML (`-o yaml`).
    pub fn parse(text: &str) -> Result<Source> {
        let value: Value = match serde_json::from_str(text) {
            Ok(value) => value,
            Err(json_error) => serde_norway::from_str(text).map_err(|yaml_error| {
                Error::Decode {
                    what: "the rollout's config (a plugin object, a conflist or a NetworkAttachmentDefinition)".into(),
                    reason: format!("neither JSON ({json_error}) nor YAML ({yaml_error})"),
                }
            })?,
        };
        Source::from_value(value)
    }

    fn from_value(value: Value) -> Result<Source> {
        let (config, nad_name) = match nad_config(&value)? {
            Some((config, name)) => (config, name),
            None => (value, None),
        };
        let mut plugin = plugin_from_conflist_or_plugin(config)?;
        let obj = plugin.as_object_mut().ok_or_else(|| Error::Decode {
            what: "the rollout's config".into(),
            reason: "expected a JSON object".into(),
        })?;
        match obj.get("type").and_then(Value::as_str) {
            Some("router") => {}
            other => {
                return Err(Error::config(
                    "type",
                    other.unwrap_or("<missing>"),
                    "a rollout needs router's config: a router plugin object, or a conflist or NetworkAttachmentDefinition with a router entry",
                ))
            }
        }
        obj.remove("prevResult");
        if !obj.contains_key("name") {
            if let Some(name) = nad_name {
                obj.insert("name".into(), Value::String(name));
            }
        }
        let network = obj
            .get("name")
            .and_then(Value::as_str)
            .map(String::from)
            .ok_or_else(|| {
                Error::config(
                    "name",
                    "<missing>",
                    "a rollout selects attachments by their network's name: the config must have one",
                )
            })?;
        Ok(Source { plugin, network })
    }
}

impl Source {
    /// The same config for another network: its `name` is that network's, since the name
    /// is what the record and GC know the attachment's network by.
    pub fn for_network(&self, network: &str) -> Source {
        let mut plugin = self.plugin.clone();
        if let Some(obj) = plugin.as_object_mut() {
            obj.insert("name".into(), Value::String(network.to_string()));
        }
        Source {
            plugin,
            network: network.to_string(),
        }
    }
}

/// A NetworkAttachmentDefinition's config (the JSON in `spec.config`) and its name, or None
/// when `value` is not one.
fn nad_config(value: &Value) -> Result<Option<(Value, Option<String>)>> {
    let is_nad = value.get("kind").and_then(Value::as_str) == Some(NAD_KIND);
    let Some(spec) = value.get("spec").filter(|_| is_nad) else {
        return Ok(None);
    };
    let text = spec.get("config").and_then(Value::as_str).ok_or_else(|| {
        Error::config(
            "spec.config",
            spec.get("config").unwrap_or(&Value::Null),
            "a NetworkAttachmentDefinition holds its conflist as a string in spec.config",
        )
    })?;
    let config = serde_json::from_str(text).map_err(|e| Error::Decode {
        what: format!("spec.config {}", excerpt(text)),
        reason: e.to_string(),
    })?;
    let name = value
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .map(String::from);
    Ok(Some((config, name)))
}

#[cfg(test)]
mod tests;
