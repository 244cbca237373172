//! cli tests: the documented command lines and where `check --all` looks.

use super::*;

fn parses(args: &[&str]) -> bool {
    Cli::try_parse_from(args).is_ok()
}

#[test]
fn the_documented_command_lines_parse_and_conflicts_are_refused() {
    assert!(parses(&[
        "router",
        "plan",
        "--container-id",
        "c1",
        "--ifname",
        "net1"
    ]));
    assert!(parses(&[
        "router",
        "plan",
        "--config",
        "c.json",
        "--ifname",
        "net1",
        "--prev-result",
        "p.json",
        "--netns",
        "/run/netns/p",
    ]));
    assert!(!parses(&[
        "router",
        "plan",
        "--ifname",
        "net1",
        "--netns",
        "/run/netns/p",
        "--snapshot",
        "s.json",
    ]));
    assert!(parses(&[
        "router", "check", "--all", "--output", "json", "--repair"
    ]));
    for format in ["junit", "prometheus"] {
        assert!(parses(&[
            "router",
            "check",
            "--all",
            "--output",
            format,
            "--write",
            "/d/r.prom"
        ]));
    }
    assert!(!parses(&["router", "check", "--all", "--write"]));
    assert!(!parses(&["router", "check", "--all", "--ifname", "net1"]));
    assert!(parses(&[
        "router",
        "check",
        "--all",
        "--cache-dir",
        "/a",
        "--cache-dir",
        "/b",
        "--data-dir",
        "/c",
        "--data-dir",
        "/d",
    ]));
    assert!(!parses(&[
        "router",
        "check",
        "--all",
        "--netns-dir",
        "/run/netns"
    ]));
    assert!(parses(&[
        "router",
        "install",
        "--cni-bin-dir",
        "/host/opt/cni/bin"
    ]));
    assert!(!parses(&["router", "install"]));
}

fn check_args(args: &[&str]) -> CheckArgs {
    match Cli::try_parse_from(args).unwrap().command {
        Command::Check(args) => args,
        other => panic!("not check: {other:?}"),
    }
}

#[test]
fn check_all_looks_in_the_runtimes_and_multuss_caches_and_the_default_data_dir() {
    let args = check_args(&["router", "check", "--all"]);
    assert_eq!(
        args.attachment.cache_dirs,
        [
            PathBuf::from("/var/lib/cni"),
            PathBuf::from("/var/lib/cni/multus")
        ]
    );
    assert_eq!(args.data_dirs(), [PathBuf::from("/run/cni/router")]);
    let given = check_args(&[
        "router",
        "check",
        "--all",
        "--cache-dir",
        "/tmp/c",
        "--data-dir",
        "/tmp/d",
    ]);
    assert_eq!(given.attachment.cache_dirs, [PathBuf::from("/tmp/c")]);
    assert_eq!(given.data_dirs(), [PathBuf::from("/tmp/d")]);
    let one = check_args(&[
        "router",
        "check",
        "--container-id",
        "c1",
        "--ifname",
        "net1",
        "--data-dir",
        "/tmp/d",
    ]);
    let refused = check_command(&one).unwrap_err().to_string();
    assert!(refused.contains("--data-dir is for --all"), "{refused}");
}

#[test]
fn the_rollout_command_lines_of_the_docs_parse_and_a_zero_parallelism_is_refused() {
    assert!(parses(&["router", "rollout", "--dry-run", "--config", "-"]));
    assert!(parses(&[
        "router",
        "rollout",
        "--config",
        "nad.yaml",
        "--network",
        "other",
        "--prune",
        "--max-parallel",
        "4",
        "--continue-on-error",
        "--cache-dir",
        "/a",
        "--data-dir",
        "/c",
        "--output",
        "junit",
    ]));
    assert!(!parses(&["router", "rollout"]), "--config is required");
    assert!(!parses(&[
        "router",
        "rollout",
        "--config",
        "-",
        "--max-parallel",
        "0"
    ]));
    assert!(!parses(&[
        "router",
        "rollout",
        "--config",
        "-",
        "--output",
        "prometheus"
    ]));
}
