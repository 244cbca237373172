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

use nix::sys::signal::{pthread_sigmask, SigSet, SigmaskHow, Signal};

use crate::error::{Error, Result};

/// The signals a runtime, systemd or an operator's Ctrl-C send to stop a process.
const TERMINATION: [Signal; 3] = [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP];

fn termination_set() -> SigSet {
    TERMINATION.into_iter().collect()
}

fn mask(how: SigmaskHow) -> io::Result<()> {
    pthread_sigmask(how, Some(&termination_set()), None).map_err(io::Error::from)
}

/// Blocks the termination signals on the calling thread and so on every thread it starts
/// later. Call it first thing in `main`, before any thread exists: a thread started earlier
/// would still take the signal and its default action ends the whole process.
pub fn block_termination() -> Result<()> {
    mask(SigmaskHow::SIG_BLOCK).map_err(|e| Error::io("blocking termination signals", e))
}

/// Whether the calling thread blocks the termination signals now.
pub fn termination_blocked() -> bool {
    let Ok(current) = SigSet::thread_get_mask() else {
        return false;
    };
    TERMINATION.iter().all(|s| current.contains(*s))
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
        if let Err(e) = mask(SigmaskHow::SIG_UNBLOCK) {
            tracing::warn!(error = %e, "could not unblock termination signals for a wait");
            return TerminationAllowed { reblock: false };
        }
    }
    TerminationAllowed { reblock }
}

impl Drop for TerminationAllowed {
    fn drop(&mut self) {
        if self.reblock {
            if let Err(e) = mask(SigmaskHow::SIG_BLOCK) {
                tracing::warn!(error = %e, "could not block termination signals again");
            }
        }
    }
}

#[cfg(test)]
mod tests;
