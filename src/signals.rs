//! signals: termination signals (SIGTERM, SIGINT, SIGHUP) in a plugin run. A command killed
//! halfway is worse than one that finishes: a DEL stopped between its ops leaves half the
//! attachment behind, an ADD stopped before its rollback leaves half of one. So the binary
//! blocks these signals before it starts any thread (threads inherit the mask) and lets them
//! act only while nothing is being changed: the wait for the host lock and the IP conflict
//! probe, which can be long. A signal arriving otherwise stays pending until the process
//! exits after writing its result, and so never acts. SIGKILL cannot be blocked: against it
//! ADD writes its record first and DEL is idempotent, so the runtime's next DEL finishes.
//! Only the binary's CNI path blocks them; `allow_termination` changes nothing where they
//! were not blocked (tests, the operator CLI).

use std::io;

use crate::error::{Error, Result};

/// The signals a runtime, systemd or an operator's Ctrl-C send to stop a process.
const TERMINATION: [libc::c_int; 3] = [libc::SIGTERM, libc::SIGINT, libc::SIGHUP];

fn termination_set() -> io::Result<libc::sigset_t> {
    // SAFETY: sigemptyset initialises the set; sigaddset takes valid signal numbers.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        if libc::sigemptyset(&mut set) != 0 {
            return Err(io::Error::last_os_error());
        }
        for signal in TERMINATION {
            if libc::sigaddset(&mut set, signal) != 0 {
                return Err(io::Error::last_os_error());
            }
        }
        Ok(set)
    }
}

fn mask(how: libc::c_int) -> io::Result<()> {
    let set = termination_set()?;
    // SAFETY: `set` is initialised; the old mask is not asked for.
    let rc = unsafe { libc::pthread_sigmask(how, &set, std::ptr::null_mut()) };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    Ok(())
}

/// Blocks the termination signals on the calling thread and so on every thread it starts
/// later. Call it first thing in `main`, before any thread exists: a thread started earlier
/// would still take the signal and its default action ends the whole process.
pub fn block_termination() -> Result<()> {
    mask(libc::SIG_BLOCK).map_err(|e| Error::io("blocking termination signals", e))
}

/// Whether the calling thread blocks the termination signals now.
pub fn termination_blocked() -> bool {
    // SAFETY: a null set only reads the current mask into `current`.
    unsafe {
        let mut current: libc::sigset_t = std::mem::zeroed();
        if libc::pthread_sigmask(libc::SIG_BLOCK, std::ptr::null(), &mut current) != 0 {
            return false;
        }
        TERMINATION
            .iter()
            .all(|s| libc::sigismember(&current, *s) == 1)
    }
}

/// While alive, the calling thread (and threads it starts meanwhile) take termination
/// signals again, so a pending or arriving one ends the process now. For waits during which
/// nothing is changed. Dropping it blocks them again. A no-op when they were not blocked
/// (in-process callers such as tests and the operator CLI).
pub struct TerminationAllowed {
    reblock: bool,
}

pub fn allow_termination() -> TerminationAllowed {
    let reblock = termination_blocked();
    if reblock {
        if let Err(e) = mask(libc::SIG_UNBLOCK) {
            tracing::warn!(error = %e, "could not unblock termination signals for a wait");
            return TerminationAllowed { reblock: false };
        }
    }
    TerminationAllowed { reblock }
}

impl Drop for TerminationAllowed {
    fn drop(&mut self) {
        if self.reblock {
            if let Err(e) = mask(libc::SIG_BLOCK) {
                tracing::warn!(error = %e, "could not block termination signals again");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// On a thread of its own: the mask is per thread, and test threads are shared.
    #[test]
    fn blocking_then_allowing_then_blocking_again() {
        std::thread::spawn(|| {
            assert!(!termination_blocked());
            block_termination().unwrap();
            assert!(termination_blocked());
            let inherited = std::thread::spawn(termination_blocked).join().unwrap();
            assert!(inherited, "a thread started later inherits the mask");
            {
                let _allowed = allow_termination();
                assert!(!termination_blocked());
            }
            assert!(termination_blocked());
        })
        .join()
        .unwrap();
    }

    #[test]
    fn allowing_when_nothing_is_blocked_changes_nothing() {
        std::thread::spawn(|| {
            {
                let _allowed = allow_termination();
                assert!(!termination_blocked());
            }
            assert!(!termination_blocked());
        })
        .join()
        .unwrap();
    }
}
