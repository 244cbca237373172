//! logging: tracing events as JSON lines in `log_options.log_file`, rotated by size (keeping
//! `log_max_count` files, none older than `log_max_age` days), and stderr when the file
//! cannot be opened. Never stdout: stdout carries the CNI result.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use tracing::level_filters::LevelFilter;
use tracing_subscriber::fmt::MakeWriter;

use crate::config::{LogLevel, LogOptions};

const BYTES_PER_MB: u64 = 1 << 20;
const SECONDS_PER_DAY: u64 = 24 * 60 * 60;

/// A log file that rotates itself: `router.log` -> `router.log.1` -> ... when it would
/// grow past `max_bytes`.
pub struct RotatingFile {
    path: PathBuf,
    max_bytes: u64,
    max_count: u32,
    max_age: Duration,
    file: Mutex<File>,
}

impl RotatingFile {
    pub fn open(options: &LogOptions) -> io::Result<RotatingFile> {
        if let Some(dir) = options.file.parent() {
            fs::create_dir_all(dir)?;
        }
        Ok(RotatingFile {
            path: options.file.clone(),
            max_bytes: options.max_size_mb.saturating_mul(BYTES_PER_MB),
            max_count: options.max_count,
            max_age: Duration::from_secs(u64::from(options.max_age_days) * SECONDS_PER_DAY),
            file: Mutex::new(append_to(&options.file)?),
        })
    }

    fn rotated(&self, n: u32) -> PathBuf {
        let mut name = self.path.as_os_str().to_owned();
        name.push(format!(".{n}"));
        PathBuf::from(name)
    }

    /// Shifts the rotated files up by one, dropping the oldest and those past max_age.
    /// Several plugin processes may race here: a rename that finds nothing is fine.
    fn rotate(&self) -> io::Result<File> {
        let _ = fs::remove_file(self.rotated(self.max_count));
        for n in (1..self.max_count).rev() {
            let _ = fs::rename(self.rotated(n), self.rotated(n + 1));
        }
        let _ = fs::rename(&self.path, self.rotated(1));
        for n in 1..=self.max_count {
            let path = self.rotated(n);
            if is_older_than(&path, self.max_age) {
                let _ = fs::remove_file(path);
            }
        }
        append_to(&self.path)
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

fn append_to(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

fn is_older_than(path: &Path, age: Duration) -> bool {
    fs::metadata(path)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn options(dir: &Path, max_size_mb: u64, max_count: u32) -> LogOptions {
        LogOptions {
            level: LogLevel::Info,
            file: dir.join("router.log"),
            max_size_mb,
            max_count,
            max_age_days: 5,
        }
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("router-log-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn a_full_file_rotates_and_only_max_count_files_are_kept() {
        let dir = temp_dir("rotate");
        let file = RotatingFile::open(&options(&dir, 1, 2)).unwrap();
        let line = vec![b'x'; 400 * 1024];
        for _ in 0..12 {
            file.write_line(&line).unwrap();
        }
        let current = fs::metadata(dir.join("router.log")).unwrap().len();
        assert!(current <= BYTES_PER_MB, "{current}");
        assert!(dir.join("router.log.1").exists());
        assert!(dir.join("router.log.2").exists());
        assert!(!dir.join("router.log.3").exists());
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_log_directory_is_created() {
        let dir = temp_dir("mkdir").join("nested");
        let file = RotatingFile::open(&options(&dir, 1, 2)).unwrap();
        file.write_line(b"{}\n").unwrap();
        assert_eq!(fs::read_to_string(dir.join("router.log")).unwrap(), "{}\n");
        let _ = fs::remove_dir_all(dir.parent().unwrap());
    }

    #[test]
    fn an_unopenable_file_is_an_error_for_the_caller_to_fall_back_on() {
        let blocker = temp_dir("blocked");
        fs::write(&blocker, b"a file, not a directory").unwrap();
        assert!(RotatingFile::open(&options(&blocker, 1, 2)).is_err());
        let _ = fs::remove_file(&blocker);
    }
}
