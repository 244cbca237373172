//! The `router` binary: a CNI plugin when a runtime sets CNI_COMMAND, else the operator CLI.

use std::io::Write;
use std::process::ExitCode;

fn main() -> ExitCode {
    let entered = router::logging::monotonic_ns();
    if !router::cni::invoked_as_plugin() {
        return router::cli::main();
    }
    // Before any thread exists, so that every thread inherits it (see `signals`). If it
    // cannot be done the command still runs: a pod must not fail for it.
    let _ = router::signals::block_termination();
    let output = router::cni::run(
        &router::cni::process_env,
        &mut std::io::stdin().lock(),
        &router::live::backends,
    );
    router::logging::phase("output", || {
        let mut stdout = std::io::stdout().lock();
        // Nothing else can be told if stdout is gone: the exit code still says it.
        let _ = stdout.write_all(output.stdout.as_bytes());
        let _ = stdout.flush();
    });
    router::logging::log_process(entered);
    ExitCode::from(u8::try_from(output.exit_code).unwrap_or(1))
}
