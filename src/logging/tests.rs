//! logging tests: rotation, the log directory, and files that are not router's.

use super::*;
use std::fs;
use std::path::{Path, PathBuf};

fn options(root: &Path, dir: &Path, max_size_mb: u64, max_count: u32) -> LogOptions {
    LogOptions {
        level: LogLevel::Info,
        file: dir.join("router.log"),
        root: root.to_path_buf(),
        max_size_mb,
        max_count,
        max_age_days: 5,
    }
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("router-log-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

/// One event as router writes it, padded to about `len` bytes.
fn event(len: usize) -> Vec<u8> {
    format!(
            "{{\"timestamp\":\"2026-01-01T00:00:00Z\",\"level\":\"INFO\",\"fields\":{{\"pad\":\"{}\"}},\"target\":\"router::cni\"}}\n",
            "x".repeat(len)
        )
        .into_bytes()
}

#[test]
fn a_full_file_rotates_and_only_max_count_files_are_kept() {
    let dir = temp_dir("rotate");
    let file = RotatingFile::open(&options(&dir, &dir, 1, 2)).unwrap();
    for _ in 0..12 {
        file.write_line(&event(400 * 1024)).unwrap();
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
    let root = temp_dir("mkdir");
    let dir = root.join("nested");
    let file = RotatingFile::open(&options(&root, &dir, 1, 2)).unwrap();
    file.write_line(&event(1)).unwrap();
    assert_eq!(fs::read(dir.join("router.log")).unwrap(), event(1));
    let _ = fs::remove_dir_all(&root);
}

#[test]
fn an_unopenable_file_is_an_error_for_the_caller_to_fall_back_on() {
    let root = temp_dir("blocked");
    let blocker = root.join("file");
    fs::write(&blocker, b"a file, not a directory").unwrap();
    assert!(RotatingFile::open(&options(&root, &blocker, 1, 2)).is_err());
    let _ = fs::remove_dir_all(&root);
}

#[test]
fn another_programs_file_is_not_taken_as_the_log() {
    let dir = temp_dir("foreign");
    let victim = b"root:x:0:0::/root:/bin/sh\n".repeat(100_000);
    fs::write(dir.join("router.log"), &victim).unwrap();
    assert!(RotatingFile::open(&options(&dir, &dir, 1, 2)).is_err());
    assert_eq!(fs::read(dir.join("router.log")).unwrap(), victim);
    assert!(!dir.join("router.log.1").exists());
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn a_symlink_at_the_log_path_or_in_its_directory_is_not_followed() {
    let dir = temp_dir("link");
    fs::write(dir.join("victim"), b"secret").unwrap();
    std::os::unix::fs::symlink(dir.join("victim"), dir.join("router.log")).unwrap();
    assert!(RotatingFile::open(&options(&dir, &dir, 1, 2)).is_err());
    fs::create_dir(dir.join("real")).unwrap();
    std::os::unix::fs::symlink(dir.join("real"), dir.join("linked")).unwrap();
    assert!(RotatingFile::open(&options(&dir, &dir.join("linked"), 1, 2)).is_err());
    assert_eq!(fs::read(dir.join("victim")).unwrap(), b"secret");
    assert_eq!(fs::read_dir(dir.join("real")).unwrap().count(), 0);
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn rotation_leaves_a_foreign_file_at_a_rotated_name_alone() {
    let dir = temp_dir("foreign-rotation");
    let victim = b"someone else's data\n".to_vec();
    fs::write(dir.join("router.log.1"), &victim).unwrap();
    fs::write(dir.join("router.log.2"), &victim).unwrap();
    let file = RotatingFile::open(&options(&dir, &dir, 1, 2)).unwrap();
    for _ in 0..6 {
        file.write_line(&event(400 * 1024)).unwrap();
    }
    assert_eq!(fs::read(dir.join("router.log.1")).unwrap(), victim);
    assert_eq!(fs::read(dir.join("router.log.2")).unwrap(), victim);
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn routers_lines_are_told_from_others() {
    assert!(is_routers_line(b""));
    assert!(is_routers_line(&event(3)));
    assert!(!is_routers_line(b"root:x:0:0::/root:/bin/sh\n"));
    assert!(!is_routers_line(
        b"{\"timestamp\":\"t\",\"target\":\"other\"}\n"
    ));
}
