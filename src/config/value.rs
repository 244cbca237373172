//! config::value: reading one JSON value of a config key (null is absent) and wording its
//! rejection (code 7 naming key and value). Must not know what any key means.

use serde_json::{Map, Value};

use crate::error::{Error, Result};

pub(super) fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// The value of `key`, treating JSON null as absent (runtimes emit nulls for unset keys).
pub(super) fn get<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    obj.get(key).filter(|v| !v.is_null())
}

pub(super) fn optional_string(obj: &Map<String, Value>, key: &str) -> Result<Option<String>> {
    match get(obj, key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(v) => Err(Error::config(key, v, "must be a string")),
    }
}

pub(super) fn boolean(obj: &Map<String, Value>, key: &str, default: bool) -> Result<bool> {
    match get(obj, key) {
        None => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(v) => Err(Error::config(key, v, "must be true or false")),
    }
}

pub(super) fn integer(obj: &Map<String, Value>, key: &str) -> Result<Option<i64>> {
    match get(obj, key) {
        None => Ok(None),
        Some(v) => v
            .as_i64()
            .map(Some)
            .ok_or_else(|| Error::config(key, v, "must be an integer")),
    }
}

pub(super) fn integer_in(
    obj: &Map<String, Value>,
    key: &str,
    lo: i64,
    hi: i64,
) -> Result<Option<i64>> {
    let value = integer(obj, key)?;
    match value {
        Some(n) if n < lo || n > hi => Err(Error::config(
            key,
            n,
            format!("must be between {lo} and {hi}"),
        )),
        _ => Ok(value),
    }
}

pub(super) fn object<'a>(
    obj: &'a Map<String, Value>,
    key: &str,
) -> Result<Option<&'a Map<String, Value>>> {
    match get(obj, key) {
        None => Ok(None),
        Some(Value::Object(o)) => Ok(Some(o)),
        Some(v) => Err(Error::config(key, v, "must be an object")),
    }
}

/// Names a nested key as `outer.inner` in errors.
fn nested(outer: &str, inner: &str) -> String {
    format!("{outer}.{inner}")
}

/// Prefixes the key of a config error raised on a nested object.
pub(super) fn renest(err: Error, outer: &str) -> Error {
    match err {
        Error::InvalidConfig { key, value, reason } => Error::InvalidConfig {
            key: nested(outer, &key),
            value,
            reason,
        },
        other => other,
    }
}
