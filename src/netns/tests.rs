//! netns tests: what is and is not a netns, and entering one never blocks. Visits that
//! enter a netns need root: tests/snapshot_kernel.rs.

use super::*;

#[test]
fn missing_netns_path_is_an_io_error_naming_it() {
    let path = Path::new("/nonexistent/router-test/netns");
    let err = run_in_netns(path, || Ok(())).unwrap_err();
    let Error::Io { what, .. } = &err else {
        panic!("{err:?}")
    };
    assert!(what.contains("/nonexistent/router-test/netns"), "{what}");
    assert!(!is_netns(path).unwrap());
}

#[test]
fn a_plain_file_is_not_a_netns() {
    assert!(!is_netns(Path::new("/proc/self/status")).unwrap());
    assert!(is_netns(Path::new("/proc/self/ns/net")).unwrap());
}

#[test]
fn a_fifo_a_directory_and_a_path_under_a_file_are_no_netns_and_never_block() {
    let dir = std::env::temp_dir().join(format!("router-netns-fifo-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let fifo = dir.join("fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
    assert!(!is_netns(&fifo).unwrap());
    assert!(run_in_netns(&fifo, || Ok(())).is_err());
    assert!(!is_netns(&dir).unwrap());
    assert!(!is_netns(Path::new("/proc/self/status/x")).unwrap());
    let _ = std::fs::remove_dir_all(&dir);
}

/// A path that is gone fails before the thread moves: no setns is tried, so this runs
/// without root too (tests/snapshot_kernel.rs visits real netns).
#[test]
fn a_visit_to_a_missing_path_fails_naming_it_and_the_thread_never_leaves() {
    let visitor = NetnsVisitor::new(PathBuf::from("/nonexistent/router-test/netns"));
    let mut ran = false;
    let err = visitor
        .visit(|| {
            ran = true;
            Ok(())
        })
        .unwrap_err();
    let Error::Io { what, .. } = &err else {
        panic!("{err:?}")
    };
    assert!(what.contains("/nonexistent/router-test/netns"), "{what}");
    assert!(!ran, "the work ran");
    assert!(!visiting());
}

/// The thread is built by hand: entering a netns needs CAP_SYS_ADMIN, and what is
/// tested here is `join`, which the pure tests (run without root) cover too.
#[test]
fn a_panic_in_the_netns_thread_is_an_error() {
    let thread: NetnsThread<()> = NetnsThread {
        path: PathBuf::from("/proc/self/ns/net"),
        handle: std::thread::spawn(|| -> Result<()> { panic!("boom") }),
    };
    let err = thread.join().unwrap_err();
    assert!(
        matches!(&err, Error::Io { what, reason, .. } if reason.contains("boom") && what.contains("/proc/self/ns/net")),
        "{err:?}"
    );
}
