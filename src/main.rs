//! The `router` binary: the operator CLI (the CNI entry joins with the live backends).

fn main() -> std::process::ExitCode {
    router::cli::main()
}
