//! `router install --cni-bin-dir DIR` through the real binary: a fresh install, an
//! idempotent no-op, an atomic replacement of another binary, mode 0755 whatever the umask.
//! Only directories the test made are written.

use std::fs;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

static NEXT: AtomicUsize = AtomicUsize::new(0);

struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!(
            "router-install-{}-{}-{tag}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn router_bin() -> &'static str {
    env!("CARGO_BIN_EXE_router")
}

/// Runs `router install` under a restrictive umask, so the mode is the binary's doing.
fn install(dir: &Path) -> String {
    let script = format!(
        "umask 077; exec {} install --cni-bin-dir {}",
        router_bin(),
        dir.display()
    );
    let out = Command::new("sh")
        .args(["-c", &script])
        .env_remove("CNI_COMMAND")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "install failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn assert_installed(dir: &Path) {
    let target = dir.join("router");
    assert_eq!(
        fs::read(&target).unwrap(),
        fs::read(router_bin()).unwrap(),
        "the installed file is not the router binary"
    );
    let mode = fs::metadata(&target).unwrap().permissions().mode();
    assert_eq!(mode & 0o7777, 0o755);
    let names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["router"], "temporary files left behind");
}

#[test]
fn a_fresh_install_creates_the_directory_and_an_executable_copy() {
    let tmp = TempDir::new("fresh");
    let dir = tmp.0.join("opt/cni/bin");
    let out = install(&dir);
    assert!(out.ends_with(": installed\n"), "{out}");
    assert_installed(&dir);
    let version = Command::new(dir.join("router"))
        .arg("--version")
        .env_remove("CNI_COMMAND")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&version.stdout).starts_with("router "));
}

#[test]
fn installing_the_same_binary_again_writes_nothing() {
    let tmp = TempDir::new("same");
    install(&tmp.0);
    let before = fs::metadata(tmp.0.join("router")).unwrap();
    let out = install(&tmp.0);
    assert!(out.contains("unchanged"), "{out}");
    let after = fs::metadata(tmp.0.join("router")).unwrap();
    assert_eq!(after.ino(), before.ino(), "the file was rewritten");
    assert_eq!(after.mtime_nsec(), before.mtime_nsec());
    assert_installed(&tmp.0);
}

#[test]
fn an_older_binary_is_replaced_by_rename_and_its_users_keep_the_old_file() {
    let tmp = TempDir::new("replace");
    let target = tmp.0.join("router");
    fs::write(&target, b"#!/bin/sh\necho old router\n").unwrap();
    fs::set_permissions(&target, fs::Permissions::from_mode(0o644)).unwrap();
    let old_inode = fs::metadata(&target).unwrap().ino();
    // A runtime that started the old plugin holds it open, like this.
    let mut running = fs::File::open(&target).unwrap();

    let out = install(&tmp.0);
    assert!(out.ends_with(": replaced\n"), "{out}");
    assert_installed(&tmp.0);
    assert_ne!(
        fs::metadata(&target).unwrap().ino(),
        old_inode,
        "replaced in place, not by rename"
    );
    let mut old = String::new();
    running.read_to_string(&mut old).unwrap();
    assert_eq!(old, "#!/bin/sh\necho old router\n");
}

#[test]
fn a_same_binary_with_a_wrong_mode_gets_its_mode_fixed() {
    let tmp = TempDir::new("mode");
    install(&tmp.0);
    let target = tmp.0.join("router");
    fs::set_permissions(&target, fs::Permissions::from_mode(0o600)).unwrap();
    let out = install(&tmp.0);
    assert!(out.contains("unchanged"), "{out}");
    assert_installed(&tmp.0);
}
