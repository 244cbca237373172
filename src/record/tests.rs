//! record tests: FileRecords in temp directories: names, modes, peers, the listing, the
//! host lock, links and symlinks never followed.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

use super::*;

fn record(cid: &str, ifname: &str) -> Record {
    Record::new(cid, ifname, 100, 500, "eth0")
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("router-records-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    dir
}

#[test]
fn container_ids_that_could_escape_the_directory_are_rejected() {
    for bad in [
        "",
        "../x",
        "a/b",
        ".hidden",
        "a\0b",
        "-lead",
        &"x".repeat(300),
    ] {
        assert!(!is_valid_container_id(bad), "{bad:?}");
    }
    assert!(is_valid_container_id("0123abc_def.g-h"));
}

#[test]
fn saved_record_loads_back_with_mode_0600_and_remove_is_idempotent() {
    let dir = temp_dir("roundtrip");
    let store = FileRecords::new(&dir);
    let r = record("c1", "net1");
    store.save(&r).unwrap();
    assert_eq!(store.load("c1", "net1").unwrap(), Some(r));
    let mode = fs::metadata(dir.join("c1-net1.json"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    store.remove("c1", "net1").unwrap();
    store.remove("c1", "net1").unwrap();
    assert_eq!(store.load("c1", "net1").unwrap(), None);
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn peers_are_the_same_containers_other_interfaces_only() {
    let dir = temp_dir("peers");
    let store = FileRecords::new(&dir);
    for (cid, ifname) in [
        ("c1", "net1"),
        ("c1", "net2"),
        ("c1-x", "net1"),
        ("c2", "net1"),
    ] {
        store.save(&record(cid, ifname)).unwrap();
    }
    let peers = store.peers("c1", "net1").unwrap();
    assert_eq!(peers.len(), 1);
    assert_eq!(peers[0].ifname, "net2");
    let _ = fs::remove_dir_all(&dir);
}

/// The host lock at `path` taken at once through an open of its own, as another run takes
/// it; None when a holder keeps it from being taken.
fn lock_at_once(path: &Path, arg: FlockArg) -> Option<Flock<fs::File>> {
    let file = fs::File::open(path).unwrap();
    match Flock::lock(file, arg) {
        Ok(lock) => Some(lock),
        Err((_, Errno::EWOULDBLOCK)) => None,
        Err((_, errno)) => panic!("locking {}: {errno}", path.display()),
    }
}

#[test]
fn host_lock_excludes_a_second_holder_until_released() {
    let dir = temp_dir("lock");
    let store = FileRecords::new(&dir);
    let first = store.lock_host().unwrap();
    let path = dir.join("host.lock");
    assert!(
        lock_at_once(&path, FlockArg::LockExclusiveNonblock).is_none(),
        "a second holder got the host lock"
    );
    drop(first);
    assert!(lock_at_once(&path, FlockArg::LockExclusiveNonblock).is_some());
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn shared_host_lock_holders_hold_it_together_and_exclude_the_exclusive_holder() {
    let dir = temp_dir("shared-lock");
    let store = FileRecords::new(&dir);
    let first = store.lock_host_shared().unwrap();
    let path = dir.join("host.lock");
    let (shared, alone) = (
        FlockArg::LockSharedNonblock,
        FlockArg::LockExclusiveNonblock,
    );
    // Another ADD looking at the rule gets it beside the first at once.
    let second = lock_at_once(&path, shared).expect("a second shared holder was refused");
    // A DEL deciding the rule waits for both.
    assert!(
        lock_at_once(&path, alone).is_none(),
        "the exclusive holder got the lock beside shared holders"
    );
    drop(first);
    assert!(
        lock_at_once(&path, alone).is_none(),
        "the exclusive holder got the lock beside a shared holder"
    );
    drop(second);
    let held = lock_at_once(&path, alone)
        .expect("the exclusive holder was refused once the shared ones left");
    // And while it holds the lock, no ADD looks at the rule.
    assert!(lock_at_once(&path, shared).is_none());
    drop(held);
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn all_lists_readable_records_whose_names_match_and_skips_the_rest() {
    let dir = temp_dir("all");
    let store = FileRecords::new(&dir);
    assert!(
        store.all().unwrap().is_empty(),
        "a missing data_dir holds none"
    );
    store.save(&record("c1", "net1")).unwrap();
    store.save(&record("c2", "net2")).unwrap();
    fs::write(dir.join("garbage.json"), b"{not json").unwrap();
    let mut renamed = record("c3", "net1");
    renamed.container_id = "c4".into();
    fs::write(
        dir.join("c3-net1.json"),
        serde_json::to_vec(&renamed).unwrap(),
    )
    .unwrap();
    let ids: Vec<(String, String)> = store
        .all()
        .unwrap()
        .into_iter()
        .map(|r| (r.container_id, r.ifname))
        .collect();
    assert_eq!(
        ids,
        vec![("c1".into(), "net1".into()), ("c2".into(), "net2".into())]
    );
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn a_usable_data_dir_is_created_and_left_empty_and_a_file_is_not_usable() {
    let dir = temp_dir("usable");
    let store = FileRecords::new(&dir.join("data"));
    store.check_usable().unwrap();
    assert_eq!(fs::read_dir(dir.join("data")).unwrap().count(), 0);
    fs::write(dir.join("file"), b"x").unwrap();
    let err = FileRecords::new(&dir.join("file"))
        .check_usable()
        .unwrap_err();
    assert_eq!(err.code(), crate::error::Code::NotAvailable, "{err}");
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn a_record_is_never_written_through_a_planted_link() {
    let dir = temp_dir("link");
    let store = FileRecords::new(&dir);
    fs::create_dir_all(&dir).unwrap();
    let target = dir.join("elsewhere");
    fs::write(&target, b"untouched").unwrap();
    std::os::unix::fs::symlink(&target, dir.join("c1-net1.json.tmp")).unwrap();
    assert!(store.save(&record("c1", "net1")).is_err());
    assert_eq!(fs::read(&target).unwrap(), b"untouched");
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn data_dir_is_never_reached_through_a_symlink_below_its_allowed_directory() {
    let root = temp_dir("symlinked");
    let elsewhere = temp_dir("symlinked-elsewhere");
    fs::create_dir_all(&root).unwrap();
    fs::create_dir_all(&elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, root.join("link")).unwrap();
    let planted = record("c1", "net1");
    FileRecords::new(&elsewhere).save(&planted).unwrap();
    let store = FileRecords::confined(&root, &root.join("link/data"));
    assert!(store.save(&record("c2", "net1")).is_err());
    assert!(store.lock_host().is_err());
    let through = FileRecords::confined(&root, &root.join("link"));
    assert!(through.load("c1", "net1").is_err());
    assert!(through.all().is_err());
    assert!(through.remove("c1", "net1").is_err());
    assert_eq!(
        FileRecords::new(&elsewhere).load("c1", "net1").unwrap(),
        Some(planted)
    );
    assert!(!elsewhere.join("data").exists());
    let _ = fs::remove_dir_all(&root);
    let _ = fs::remove_dir_all(&elsewhere);
}

#[test]
fn data_dir_and_its_missing_parents_are_made_0700_and_existing_ones_kept() {
    let root = temp_dir("modes");
    fs::create_dir_all(root.join("shared")).unwrap();
    fs::set_permissions(root.join("shared"), fs::Permissions::from_mode(0o755)).unwrap();
    let store = FileRecords::confined(&root, &root.join("shared/cni/router"));
    store.save(&record("c1", "net1")).unwrap();
    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&root.join("shared")), 0o755);
    assert_eq!(mode(&root.join("shared/cni")), 0o700);
    assert_eq!(mode(&root.join("shared/cni/router")), 0o700);
    let _ = fs::remove_dir_all(&root);
}

#[test]
fn the_longest_valid_id_still_names_a_record_file() {
    let dir = temp_dir("long");
    let store = FileRecords::new(&dir);
    let id = "a".repeat(MAX_CONTAINER_ID_LEN);
    assert!(is_valid_container_id(&id));
    assert!(!is_valid_container_id(&format!("{id}a")));
    store.save(&record(&id, "net123456789012")).unwrap();
    assert!(store.load(&id, "net123456789012").unwrap().is_some());
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn invalid_names_never_become_paths() {
    let store = FileRecords::new(Path::new("/nonexistent"));
    assert!(store.load("../../etc", "net1").is_err());
    assert!(store.load("c1", "../x").is_err());
    assert!(store.save(&record("c1", "a/b")).is_err());
}

#[test]
fn an_attachment_lock_held_by_the_plugin_makes_the_agent_come_back_later() {
    let dir = temp_dir("alock-busy");
    let store = FileRecords::new(&dir);
    store.save(&record("c1", "net1")).unwrap();
    let held = store.lock_attachment("c1", "net1", true).unwrap().unwrap();
    assert!(matches!(
        store.try_lock_attachment("c1", "net1").unwrap(),
        TryLock::Busy
    ));
    // Another attachment of the same pod is not held by it.
    assert!(store
        .try_lock_attachment("c1", "net2")
        .unwrap()
        .held()
        .is_some());
    drop(held);
    let agent = store.try_lock_attachment("c1", "net1").unwrap().held();
    assert!(agent.is_some_and(|lock| lock.record_exists()));
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn an_attachment_lock_file_lives_exactly_as_long_as_the_record() {
    let dir = temp_dir("alock-life");
    let store = FileRecords::new(&dir);
    let lock = store.lock_attachment("c1", "net1", true).unwrap().unwrap();
    let path = lock.path().to_path_buf();
    assert!(path.exists());
    store.save(&record("c1", "net1")).unwrap();
    drop(lock);
    assert!(path.exists(), "a recorded attachment keeps its lock file");
    let lock = store.lock_attachment("c1", "net1", false).unwrap().unwrap();
    store.remove("c1", "net1").unwrap();
    drop(lock);
    assert!(
        !path.exists(),
        "the release after DEL removed the record unlinks the file"
    );
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn without_data_dir_no_attachment_lock_is_taken_but_by_add_and_nothing_is_made() {
    let dir = temp_dir("alock-nodir");
    let store = FileRecords::new(&dir);
    assert!(store
        .lock_attachment("c1", "net1", false)
        .unwrap()
        .is_none());
    assert!(matches!(
        store.try_lock_attachment("c1", "net1").unwrap(),
        TryLock::Gone
    ));
    assert!(!dir.exists());
}

/// A DEL that unlinks the lock file while another run waits for it: the waiter ends up
/// holding the file the path names now, so a third party is still excluded.
#[test]
fn a_waiter_whose_lock_file_was_unlinked_locks_the_file_the_path_names_now() {
    use std::os::unix::fs::MetadataExt;
    use std::sync::mpsc;

    let dir = temp_dir("alock-unlink");
    let store = FileRecords::new(&dir);
    store.save(&record("c1", "net1")).unwrap();
    let del = store.lock_attachment("c1", "net1", false).unwrap().unwrap();
    let path = del.path().to_path_buf();
    let inode_before = fs::metadata(&path).unwrap().ino();
    let (tx, rx) = mpsc::channel();
    let waiter_dir = dir.clone();
    let waiter = std::thread::spawn(move || {
        let store = FileRecords::new(&waiter_dir);
        let lock = store.lock_attachment("c1", "net1", true).unwrap().unwrap();
        tx.send(()).unwrap();
        // Held until the main thread has looked.
        std::thread::park();
        drop(lock);
    });
    // The waiter is blocked on the old file until the DEL lets go.
    assert!(rx
        .recv_timeout(std::time::Duration::from_millis(200))
        .is_err());
    store.remove("c1", "net1").unwrap();
    drop(del);
    rx.recv_timeout(std::time::Duration::from_secs(10))
        .expect("the waiter got the lock");
    let inode_now = fs::metadata(&path)
        .expect("the waiter made the file again")
        .ino();
    assert_ne!(inode_now, inode_before);
    assert!(
        matches!(
            store.try_lock_attachment("c1", "net1").unwrap(),
            TryLock::Busy
        ),
        "the waiter's lock excludes others through the path"
    );
    waiter.thread().unpark();
    waiter.join().unwrap();
    let _ = fs::remove_dir_all(&dir);
}
