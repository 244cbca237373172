//! logging: tracing events as JSON lines in `log_options.log_file`, rotated by size
//! (keeping `log_max_count` files, none older than `log_max_age` days), and stderr when the
//! file cannot be opened. Never stdout: stdout carries the CNI result. The file is reached
//! through `confined` (no symlink below its allowed directory, not even at the file), must
//! be a regular file and router's own (empty, or starting with one of its lines); rotation
//! renames and deletes only router's own files, in the log's directory.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::fd::OwnedFd;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use tracing::level_filters::LevelFilter;
use tracing_subscriber::fmt::MakeWriter;

use crate::config::{LogLevel, LogOptions};
use nix::errno::Errno;
use nix::fcntl::renameat;
use nix::unistd::{unlinkat, UnlinkatFlags};

use crate::confined;

const BYTES_PER_MB: u64 = 1 << 20;
const SECONDS_PER_DAY: u64 = 24 * 60 * 60;
/// Log directories router creates (as the original plugin's /var/log/meta-plugins).
const LOG_DIR_MODE: u32 = 0o755;
const LOG_FILE_MODE: u32 = 0o640;
/// How much of a file's first line is read to tell whether it is router's.
const MAX_FIRST_LINE: u64 = 1 << 20;

/// A log file that rotates itself: `router.log` -> `router.log.1` -> ... when it would
/// grow past `max_bytes`.
pub struct RotatingFile {
    /// The log's directory: every open, rename and delete is relative to it.
    dir: OwnedFd,
    name: OsString,
    max_bytes: u64,
    max_count: u32,
    max_age: Duration,
    file: Mutex<File>,
}

impl RotatingFile {
    pub fn open(options: &LogOptions) -> io::Result<RotatingFile> {
        let (Some(parent), Some(name)) = (options.file.parent(), options.file.file_name()) else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the log file names no file in a directory",
            ));
        };
        let dir = confined::open_dir(&options.root, parent, Some(LOG_DIR_MODE))?
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
        let file = open_own(&dir, name)?;
        Ok(RotatingFile {
            dir,
            name: name.to_owned(),
            max_bytes: options.max_size_mb.saturating_mul(BYTES_PER_MB),
            max_count: options.max_count,
            max_age: Duration::from_secs(u64::from(options.max_age_days) * SECONDS_PER_DAY),
            file: Mutex::new(file),
        })
    }

    /// `name.N`, or the log itself for 0.
    fn rotated(&self, n: u32) -> OsString {
        let mut name = self.name.clone();
        if n > 0 {
            name.push(format!(".{n}"));
        }
        name
    }

    /// Whether `name` in the log's directory is a regular file router wrote (or nothing).
    fn is_own(&self, name: &OsStr) -> bool {
        confined::open_file(&self.dir, name, None).is_ok_and(|f| is_routers_log(&f))
    }

    /// Whether `name` may be replaced: missing, or router's own.
    fn is_free(&self, name: &OsStr) -> bool {
        match confined::open_file(&self.dir, name, None) {
            Ok(file) => is_routers_log(&file),
            Err(e) => e.kind() == io::ErrorKind::NotFound,
        }
    }

    /// Renames the rotation `from` to `to` in the log's directory (renameat follows no
    /// link). A file another process moved first is not an error.
    fn rename(&self, from: u32, to: u32) -> Result<(), Errno> {
        let (from, to) = (self.rotated(from), self.rotated(to));
        if !self.is_own(&from) || !self.is_free(&to) {
            return Ok(());
        }
        match renameat(&self.dir, from.as_os_str(), &self.dir, to.as_os_str()) {
            Err(Errno::ENOENT) => Ok(()),
            done => done,
        }
    }

    /// Removes `name` from the log's directory. A file another process removed first is
    /// not an error.
    fn remove(&self, name: &OsStr) -> Result<(), Errno> {
        match unlinkat(&self.dir, name, UnlinkatFlags::NoRemoveDir) {
            Err(Errno::ENOENT) => Ok(()),
            done => done,
        }
    }

    /// Shifts the rotated files up by one, dropping the oldest and those past max_age; only
    /// files that are router's own are renamed or removed (a rotation's name may be held by
    /// someone else's file). Several plugin processes may race here: a rename that finds
    /// nothing is fine.
    ///
    /// A step the kernel refuses otherwise (a read-only or full file system) is passed
    /// over: the file stays where it is, the next rotation tries again, and the event being
    /// written still goes to the reopened log. It is not reported: this runs inside the log
    /// writer, holding its lock, so an event about it would wait for itself.
    fn rotate(&self) -> io::Result<File> {
        let oldest = self.rotated(self.max_count);
        if self.is_own(&oldest) {
            let _passed_over = self.remove(&oldest);
        }
        for n in (0..self.max_count).rev() {
            let _passed_over = self.rename(n, n + 1);
        }
        for n in 1..=self.max_count {
            let name = self.rotated(n);
            let expired = confined::open_file(&self.dir, &name, None)
                .is_ok_and(|f| is_older_than(&f, self.max_age) && is_routers_log(&f));
            if expired {
                let _passed_over = self.remove(&name);
            }
        }
        open_own(&self.dir, &self.name)
    }

    fn write_line(&self, buf: &[u8]) -> io::Result<usize> {
        let mut file = self
            .file
            .lock()
            .map_err(|_| io::Error::other("log file lock poisoned"))?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        if size > 0 && size + buf.len() as u64 > self.max_bytes {
            *file = self.rotate()?;
        }
        // One write per event: O_APPEND keeps lines of concurrent processes whole.
        file.write_all(buf)?;
        Ok(buf.len())
    }
}

/// The log file for appending, when it is router's own: a config may name any file in an
/// allowed directory, and another program's log must not get router's lines (or be
/// rotated).
fn open_own(dir: &OwnedFd, name: &OsStr) -> io::Result<File> {
    let file = confined::open_file(dir, name, Some(LOG_FILE_MODE))?;
    if !is_routers_log(&file) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "the file is not router's log (its first line is not one of router's): left alone",
        ));
    }
    Ok(file)
}

/// Empty, or its first line is a JSON event of router's (tracing's JSON format, router's
/// target). An empty file holds nothing to lose.
fn is_routers_log(file: &File) -> bool {
    let mut first = Vec::new();
    let mut reader = BufReader::new(file.take(MAX_FIRST_LINE));
    if reader.read_until(b'\n', &mut first).is_err() {
        return false;
    }
    is_routers_line(&first)
}

fn is_routers_line(line: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(line) else {
        return false;
    };
    let text = text.trim_end();
    text.is_empty()
        || (text.starts_with("{\"timestamp\":\"")
            && text.ends_with('}')
            && text.contains("\"target\":\"router"))
}

fn is_older_than(file: &File, age: Duration) -> bool {
    file.metadata()
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| SystemTime::now().duration_since(t).ok())
        .is_some_and(|elapsed| elapsed > age)
}

/// The writer tracing gets per event.
pub struct LineWriter<'a>(&'a RotatingFile);

impl Write for LineWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write_line(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for RotatingFile {
    type Writer = LineWriter<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        LineWriter(self)
    }
}

fn level_filter(level: LogLevel) -> LevelFilter {
    match level {
        LogLevel::Trace => LevelFilter::TRACE,
        LogLevel::Debug => LevelFilter::DEBUG,
        LogLevel::Info => LevelFilter::INFO,
        LogLevel::Warn => LevelFilter::WARN,
        LogLevel::Error => LevelFilter::ERROR,
    }
}

/// Installs the process-wide logger once: the log file, or stderr when it cannot be
/// opened (the plugin still works). A second call changes nothing.
pub fn init(options: &LogOptions) {
    let builder = tracing_subscriber::fmt()
        .json()
        .with_max_level(level_filter(options.level))
        .with_current_span(false)
        .with_span_list(false);
    let installed = match RotatingFile::open(options) {
        Ok(file) => builder.with_writer(file).try_init(),
        Err(e) => {
            let result = builder.with_writer(io::stderr).try_init();
            tracing::warn!(file = %options.file.display(), error = %e, "cannot open the log file: logging to stderr");
            result
        }
    };
    // Already installed (a second init in one process): the first one stays.
    drop(installed);
}

/// The monotonic clock (CLOCK_MONOTONIC) now, in nanoseconds. Unlike `Instant` it can be
/// compared across processes: a benchmark that notes it when it starts router and when it
/// reaps it can tell the process's start-up and tear-down from its work (`log_process`).
pub fn monotonic_ns() -> u64 {
    match nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC) {
        Ok(now) => {
            let secs = u64::try_from(now.tv_sec()).unwrap_or(0);
            let nanos = u64::try_from(now.tv_nsec()).unwrap_or(0);
            secs.saturating_mul(1_000_000_000).saturating_add(nanos)
        }
        // The clock every Linux has; without it there is only nothing to report.
        Err(_) => 0,
    }
}

/// Logs at debug level when `main` was entered and when it is about to return, on the
/// monotonic clock: the frame the phases sit in.
pub fn log_process(entered_ns: u64) {
    tracing::debug!(entered_ns, leaving_ns = monotonic_ns(), "process");
}

/// Installs the logger of `router agent`: JSON lines on stderr (where a DaemonSet's logs
/// are collected), at `level`.
pub fn init_stderr(level: LogLevel) {
    let installed = tracing_subscriber::fmt()
        .json()
        .with_max_level(level_filter(level))
        .with_current_span(false)
        .with_span_list(false)
        .with_writer(io::stderr)
        .try_init();
    drop(installed);
}

/// Runs one phase of a run and logs its duration at debug level (`phase`, `us`): the
/// breakdown `scripts/bench.py` reads.
pub fn phase<T>(name: &'static str, work: impl FnOnce() -> T) -> T {
    let started = std::time::Instant::now();
    let out = work();
    log_phase(name, started);
    out
}

/// Logs a phase that began at `started` and ended at `ended`.
pub fn log_phase_between(
    name: &'static str,
    started: std::time::Instant,
    ended: std::time::Instant,
) {
    tracing::debug!(
        phase = name,
        us = ended.duration_since(started).as_micros() as u64,
        "phase"
    );
}

/// Logs a phase that began at `started` and ends now.
pub fn log_phase(name: &'static str, started: std::time::Instant) {
    tracing::debug!(
        phase = name,
        us = started.elapsed().as_micros() as u64,
        "phase"
    );
}

#[cfg(test)]
mod tests;
