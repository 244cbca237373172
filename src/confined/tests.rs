//! confined tests: directories and files reached without following a symlink.

use super::*;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("router-confined-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn missing_directories_are_made_0700_and_existing_ones_keep_their_mode() {
    let root = temp_dir("mode");
    fs::create_dir(root.join("open")).unwrap();
    fs::set_permissions(root.join("open"), fs::Permissions::from_mode(0o755)).unwrap();
    let dir = root.join("open/a/b");
    assert!(open_dir(&root, &dir, Some(0o700)).unwrap().is_some());
    assert_eq!(mode(&root.join("open")), 0o755);
    assert_eq!(mode(&root.join("open/a")), 0o700);
    assert_eq!(mode(&dir), 0o700);
    let _ = fs::remove_dir_all(&root);
}

#[test]
fn a_symlink_below_the_root_is_refused_and_nothing_is_made_through_it() {
    let root = temp_dir("link");
    let outside = temp_dir("link-outside");
    std::os::unix::fs::symlink(&outside, root.join("link")).unwrap();
    let err = open_dir(&root, &root.join("link/data"), Some(0o700)).unwrap_err();
    assert!(err.to_string().contains("symlink"), "{err}");
    assert!(open_dir(&root, &root.join("link/data"), None).is_err());
    assert_eq!(fs::read_dir(&outside).unwrap().count(), 0);
    let _ = fs::remove_dir_all(&root);
    let _ = fs::remove_dir_all(&outside);
}

#[test]
fn a_missing_directory_is_none_without_create() {
    let root = temp_dir("none");
    assert!(open_dir(&root, &root.join("x/y"), None).unwrap().is_none());
    assert!(!root.join("x").exists());
    let _ = fs::remove_dir_all(&root);
}

#[test]
fn a_file_is_never_opened_through_a_symlink_and_must_be_regular() {
    let root = temp_dir("append");
    let dir = open_dir(&root, &root, None).unwrap().unwrap();
    fs::write(root.join("victim"), b"secret").unwrap();
    std::os::unix::fs::symlink(root.join("victim"), root.join("link.log")).unwrap();
    assert!(open_file(&dir, "link.log".as_ref(), Some(0o600)).is_err());
    assert!(open_file(&dir, "link.log".as_ref(), None).is_err());
    fs::create_dir(root.join("dir.log")).unwrap();
    assert!(open_file(&dir, "dir.log".as_ref(), Some(0o600)).is_err());
    nix::unistd::mkfifo(&root.join("fifo.log"), Mode::from_bits_truncate(0o600)).unwrap();
    assert!(open_file(&dir, "fifo.log".as_ref(), Some(0o600)).is_err());
    assert_eq!(fs::read(root.join("victim")).unwrap(), b"secret");
    assert!(open_file(&dir, "new.log".as_ref(), Some(0o600)).is_ok());
    let _ = fs::remove_dir_all(&root);
}
