//! netns tests: what is and is not a netns, and entering one never blocks.

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

/// A worker whose thread stays in this process's netns: entering one needs
/// CAP_SYS_ADMIN, and the pure tests run without root. What is tested is the worker's
/// plumbing; tests/snapshot_kernel.rs enters real netns.
fn worker_here() -> NetnsWorker {
    let path = PathBuf::from("/proc/self/ns/net");
    let netns = netns_id(&open(&path).unwrap(), &path).unwrap();
    let worker = NetnsWorker::new(path.clone());
    let started = Entered::start(&path, netns, || Ok(())).unwrap();
    *worker.entered.lock().unwrap() = Some(started);
    worker
}

fn thread_id() -> Result<i32> {
    Ok(nix::unistd::gettid().as_raw())
}

#[test]
fn a_worker_runs_every_job_on_its_one_thread_and_returns_the_results() {
    let worker = worker_here();
    let first = worker.run(thread_id).unwrap();
    let pending = worker.submit(|| Ok(6 * 7)).unwrap();
    assert_eq!(pending.wait().unwrap(), 42);
    assert_eq!(worker.run(thread_id).unwrap(), first);
    assert_ne!(first, thread_id().unwrap());
    let err = worker.run(|| -> Result<()> { Err(Error::TryAgain("x".into())) });
    assert_eq!(err, Err(Error::TryAgain("x".into())));
}

fn allowed_cpus() -> Result<usize> {
    let allowed =
        sched_getaffinity(Pid::from_raw(0)).map_err(|e| Error::io("affinity", e.into()))?;
    Ok((0..CpuSet::count())
        .filter(|&cpu| allowed.is_set(cpu).unwrap_or(false))
        .count())
}

/// The worker's thread is started off its creator's CPU (so that it does not queue behind
/// its creator), then takes back every CPU the process may use (so that it is not held
/// waiting on a busy one while another is idle). The creator keeps every CPU it had.
#[test]
fn a_workers_thread_starts_off_its_creators_cpu_and_may_then_run_on_any() {
    let here = allowed_cpus().unwrap();
    let thread = worker_here().run(allowed_cpus).unwrap();
    assert_eq!(thread, here, "the worker's CPU set once it runs");
    assert_eq!(allowed_cpus().unwrap(), here, "the creator's own CPU set");
}

/// A thread spawned away from its creator's CPU starts on the other CPUs only (with one
/// CPU, on it), and holds every CPU once it takes back its creator's set.
#[test]
fn a_thread_spawned_away_starts_on_the_other_cpus_and_takes_back_all() {
    let here = allowed_cpus().unwrap();
    let (at_start, after) = away_from_this_cpu(|all| {
        std::thread::spawn(move || {
            let at_start = allowed_cpus();
            take_back(all);
            (at_start, allowed_cpus())
        })
    })
    .join()
    .unwrap();
    assert_eq!(at_start.unwrap(), here.saturating_sub(1).max(1));
    assert_eq!(after.unwrap(), here);
}

#[test]
fn a_worker_for_a_missing_path_fails_with_an_io_error_naming_it() {
    let worker = NetnsWorker::new(PathBuf::from("/nonexistent/router-test/netns"));
    let err = worker.run(|| Ok(())).unwrap_err();
    let Error::Io { what, .. } = &err else {
        panic!("{err:?}")
    };
    assert!(what.contains("/nonexistent/router-test/netns"), "{what}");
}

#[test]
fn a_panic_in_a_workers_job_is_an_error_and_the_worker_goes_on() {
    let worker = worker_here();
    let err = worker.run(|| -> Result<()> { panic!("boom") }).unwrap_err();
    assert!(
        matches!(&err, Error::Io { what, reason, .. } if reason.contains("boom") && what.contains("/proc/self/ns/net")),
        "{err:?}"
    );
    assert_eq!(worker.run(|| Ok(1)).unwrap(), 1);
}

/// The job opens the thread's netlink handle too: it is closed as the thread ends.
#[test]
fn a_dropped_workers_thread_is_gone() {
    let worker = worker_here();
    let tid = worker
        .run(|| {
            crate::netlink::Netlink::on_this_thread(|nl| nl.links())?;
            thread_id()
        })
        .unwrap();
    let task = PathBuf::from(format!("/proc/self/task/{tid}"));
    assert!(task.exists());
    drop(worker);
    // Joined: the kernel releases the task right after the thread's exit wakes join.
    let gone = (0..100).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(10));
        !task.exists()
    });
    assert!(gone, "{} is still there", task.display());
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
