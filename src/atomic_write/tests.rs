//! atomic_write tests: a file replaced whole, nothing left behind.

use super::*;

fn scratch(tag: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("router-atomic-{tag}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn replaces_the_file_with_the_mode_and_leaves_no_temporary_file() {
    let dir = scratch("replace");
    let target = dir.join("router.prom");
    fs::write(&target, "old").unwrap();
    write(&target, b"new\n", 0o644).unwrap();
    assert_eq!(fs::read_to_string(&target).unwrap(), "new\n");
    let mode = fs::metadata(&target).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o644);
    let names: Vec<_> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["router.prom"]);
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_missing_directory_is_an_error_and_nothing_is_left() {
    let dir = scratch("missing");
    let target = dir.join("absent").join("router.prom");
    assert!(write(&target, b"x", 0o644).is_err());
    assert!(!dir.join("absent").exists());
    fs::remove_dir_all(&dir).unwrap();
}
