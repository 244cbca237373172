//! config::log: `log_options` (level, file, rotation limits) and their defaults. The file's
//! place is judged by `allowed`; must not open anything.

use std::path::PathBuf;

use serde_json::{Map, Value};

use super::allowed::{parse_log_file, AllowedDirs, LOG_ROOTS};
use super::value::{integer_in, object, optional_string, renest};
use crate::error::{Error, Result};

pub(super) const DEFAULT_LOG_FILE: &str = "/var/log/meta-plugins/router.log";

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogOptions {
    pub level: LogLevel,
    pub file: PathBuf,
    /// The allowed directory `file` lies in: below it no component may be a symlink.
    pub root: PathBuf,
    pub max_size_mb: u64,
    pub max_count: u32,
    pub max_age_days: u32,
}

pub(super) fn default_log_options() -> LogOptions {
    LogOptions {
        level: LogLevel::Info,
        file: PathBuf::from(DEFAULT_LOG_FILE),
        root: PathBuf::from(LOG_ROOTS[0]),
        max_size_mb: 100,
        max_count: 5,
        max_age_days: 5,
    }
}

pub(super) fn parse_log_options(
    obj: &Map<String, Value>,
    allowed: &AllowedDirs,
) -> Result<LogOptions> {
    let mut options = default_log_options();
    let Some(inner) = object(obj, "log_options")? else {
        return Ok(options);
    };
    let nest = |e| renest(e, "log_options");
    if let Some(level) = optional_string(inner, "log_level").map_err(nest)? {
        options.level = parse_log_level(&level)?;
    }
    if let Some(file) = parse_log_file(inner, allowed)? {
        options.file = file.path;
        options.root = file.root;
    }
    if let Some(n) = integer_in(inner, "log_max_size", 1, 1 << 20).map_err(nest)? {
        options.max_size_mb = u64::try_from(n).unwrap_or(100);
    }
    if let Some(n) = integer_in(inner, "log_max_count", 1, 1000).map_err(nest)? {
        options.max_count = u32::try_from(n).unwrap_or(5);
    }
    if let Some(n) = integer_in(inner, "log_max_age", 1, 3650).map_err(nest)? {
        options.max_age_days = u32::try_from(n).unwrap_or(5);
    }
    Ok(options)
}

fn parse_log_level(text: &str) -> Result<LogLevel> {
    match text.to_ascii_lowercase().as_str() {
        "trace" => Ok(LogLevel::Trace),
        "debug" => Ok(LogLevel::Debug),
        "info" => Ok(LogLevel::Info),
        "warn" | "warning" => Ok(LogLevel::Warn),
        "error" => Ok(LogLevel::Error),
        _ => Err(Error::config(
            "log_options.log_level",
            Value::String(text.to_string()),
            "must be one of trace, debug, info, warn, error",
        )),
    }
}
