//! The Kubernetes manifests in `deploy/`: they parse, every DaemonSet is well formed (its
//! selector matches its pods, every mount has a volume, it runs on every node), and the
//! router command lines in them are ones the real CLI accepts, with the mounts they need.
//! The alert rules use only metrics router writes, and pass `promtool check rules` and
//! their unit tests (`promtool test rules tests/alerts.test.yaml`).

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use clap::Parser;
use router::cache::DEFAULT_CACHE_DIRS;
use router::cli::Cli;
use router::operator::DEFAULT_DATA_DIR;
use router::report::CheckReport;
use serde::Deserialize;
use serde_json::Value;

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy")
}

/// Every YAML document of a manifest file.
fn documents(name: &str) -> Vec<Value> {
    let path = deploy_dir().join(name);
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_norway::Deserializer::from_str(&text)
        .map(|doc| Value::deserialize(doc).unwrap_or_else(|e| panic!("{name}: {e}")))
        .collect()
}

fn daemonset(name: &str) -> Value {
    let docs = documents(name);
    assert_eq!(docs.len(), 1, "{name}: one document");
    let ds = docs.into_iter().next().unwrap();
    assert_eq!(ds["apiVersion"], "apps/v1", "{name}");
    assert_eq!(ds["kind"], "DaemonSet", "{name}");
    assert_well_formed(name, &ds);
    ds
}

fn array<'a>(v: &'a Value, what: &str) -> &'a Vec<Value> {
    v.as_array()
        .unwrap_or_else(|| panic!("{what} is not a list: {v}"))
}

fn assert_well_formed(name: &str, ds: &Value) {
    let selector = ds["spec"]["selector"]["matchLabels"].as_object().unwrap();
    let labels = &ds["spec"]["template"]["metadata"]["labels"];
    for (k, v) in selector {
        assert_eq!(
            &labels[k], v,
            "{name}: selector {k} does not match the pod labels"
        );
    }
    let spec = &ds["spec"]["template"]["spec"];
    let tolerations = array(&spec["tolerations"], "tolerations");
    assert!(
        tolerations
            .iter()
            .any(|t| t["operator"] == "Exists" && t.get("key").is_none()),
        "{name}: must tolerate every taint to run on every node"
    );
    let volumes: Vec<&str> = array(&spec["volumes"], "volumes")
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    for container in containers(spec) {
        assert!(container["image"].is_string(), "{name}: {container}");
        if let Some(mounts) = container["volumeMounts"].as_array() {
            for mount in mounts {
                let volume = mount["name"].as_str().unwrap();
                assert!(volumes.contains(&volume), "{name}: no volume {volume}");
            }
        }
    }
}

fn containers(spec: &Value) -> Vec<&Value> {
    ["initContainers", "containers"]
        .iter()
        .filter_map(|k| spec[k].as_array())
        .flatten()
        .collect()
}

/// The host path mounted at `mount_path` in `container`, and the mount itself.
fn host_mount<'a>(spec: &'a Value, container: &'a Value, mount_path: &str) -> (&'a str, &'a Value) {
    let mount = array(&container["volumeMounts"], "volumeMounts")
        .iter()
        .find(|m| m["mountPath"] == mount_path)
        .unwrap_or_else(|| panic!("nothing mounted at {mount_path}"));
    let volume = array(&spec["volumes"], "volumes")
        .iter()
        .find(|v| v["name"] == mount["name"])
        .unwrap();
    (volume["hostPath"]["path"].as_str().unwrap(), mount)
}

/// The router command line accepted by the real CLI parser.
fn assert_cli_accepts(args: &[&str]) {
    let mut argv = vec!["router"];
    argv.extend_from_slice(args);
    if let Err(e) = Cli::try_parse_from(&argv) {
        panic!("router rejects {args:?}: {e}");
    }
}

#[test]
fn the_install_daemonset_copies_the_binary_into_the_hosts_cni_bin_dir() {
    let ds = daemonset("install.yaml");
    let spec = &ds["spec"]["template"]["spec"];
    let init = &array(&spec["initContainers"], "initContainers")[0];
    let args: Vec<&str> = array(&init["args"], "args")
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(args, ["install", "--cni-bin-dir", "/host/opt/cni/bin"]);
    assert_cli_accepts(&args);
    let (host_path, _) = host_mount(spec, init, "/host/opt/cni/bin");
    assert_eq!(host_path, "/opt/cni/bin");
    assert_ne!(
        init["securityContext"]["privileged"], true,
        "install needs no privileges"
    );
}

/// The router command lines of a container's shell script, as argument lists.
fn router_lines(container: &Value) -> Vec<Vec<String>> {
    let script = array(&container["args"], "args")[0].as_str().unwrap();
    script
        .lines()
        .map(str::trim)
        .filter_map(|l| l.strip_prefix("/usr/local/bin/router "))
        .map(|l| l.split_whitespace().map(String::from).collect())
        .collect()
}

/// The value of `--flag` in an argument list.
fn flag<'a>(args: &'a [String], name: &str) -> &'a str {
    let at = args
        .iter()
        .position(|a| a == name)
        .unwrap_or_else(|| panic!("no {name} in {args:?}"));
    &args[at + 1]
}

#[test]
fn the_check_daemonset_writes_prometheus_for_the_textfile_collector_with_what_it_needs() {
    let ds = daemonset("check.yaml");
    let spec = &ds["spec"]["template"]["spec"];
    assert_eq!(
        spec["hostNetwork"], true,
        "the host side is the node's netns"
    );
    let check = &array(&spec["containers"], "containers")[0];
    let lines = router_lines(check);
    assert_eq!(lines.len(), 2, "{lines:?}");
    for args in &lines {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        assert_cli_accepts(&args);
    }
    let metrics = &lines[0];
    assert_eq!(&metrics[..4], ["check", "--all", "--output", "prometheus"]);
    // node-exporter's textfile collector reads `*.prom` in its directory, shared with the
    // node through the hostPath.
    let file = Path::new(flag(metrics, "--write"));
    assert_eq!(file.extension().unwrap(), "prom");
    let dir = file.parent().unwrap().to_str().unwrap();
    let (host_path, mount) = host_mount(spec, check, dir);
    assert_eq!(host_path, "/var/lib/node_exporter/textfile_collector");
    assert_ne!(mount["readOnly"], true, "{dir} is written");
    // The JSON report for the log, of the same attachments.
    let details = &lines[1];
    assert_eq!(&details[..4], ["check", "--all", "--output", "json"]);
    assert_eq!(&metrics[6..], &details[4..], "the same cache and netns dir");

    assert_eq!(check["securityContext"]["privileged"], true);
    for (path, read_only) in [
        ("/var/lib/cni", true),
        ("/run/netns", true),
        ("/run/cni/router", false),
    ] {
        let (host_path, mount) = host_mount(spec, check, path);
        assert_eq!(host_path, path);
        assert_eq!(mount["readOnly"] == true, read_only, "{path}");
    }
    // What `check --all` reads by default is there, at the host's own paths: the
    // runtime's and Multus's result caches, and router's default data_dir.
    let mut defaults: Vec<&str> = DEFAULT_CACHE_DIRS.to_vec();
    defaults.push(DEFAULT_DATA_DIR);
    for path in defaults {
        let mount = array(&check["volumeMounts"], "volumeMounts")
            .iter()
            .filter_map(|m| m["mountPath"].as_str())
            .find(|m| Path::new(path).starts_with(m))
            .unwrap_or_else(|| panic!("{path} is not mounted"));
        assert_eq!(host_mount(spec, check, mount).0, mount, "{path}");
    }
    let (_, netns) = host_mount(spec, check, "/run/netns");
    assert_eq!(
        netns["mountPropagation"], "HostToContainer",
        "pods created after the checker started must be visible"
    );
}

/// The metric names router's Prometheus output has (every family is written, even empty),
/// and the sample names `router agent` serves.
fn router_metric_names() -> BTreeSet<String> {
    let mut names: BTreeSet<String> = CheckReport::default()
        .prometheus()
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .map(|l| l.split_whitespace().next().unwrap().to_string())
        .collect();
    names.extend(router::agent::sample_names());
    names
}

/// `router_...` identifiers in a PromQL expression.
fn metrics_in(expr: &str) -> Vec<String> {
    expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|word| word.starts_with("router_"))
        .map(String::from)
        .collect()
}

#[test]
fn the_alert_rules_use_router_metrics_drift_after_ten_minutes_and_errors_at_once() {
    let docs = documents("alerts.yaml");
    assert_eq!(docs.len(), 1);
    let groups = array(&docs[0]["groups"], "groups");
    let rules: Vec<&Value> = groups
        .iter()
        .flat_map(|g| array(&g["rules"], "rules"))
        .collect();
    let known = router_metric_names();
    for rule in &rules {
        let expr = rule["expr"].as_str().unwrap();
        let used = metrics_in(expr);
        assert!(!used.is_empty(), "{expr}");
        for metric in used {
            assert!(
                known.contains(&metric),
                "{metric} is not router's: {known:?}"
            );
        }
    }
    let rule = |name: &str| {
        *rules
            .iter()
            .find(|r| r["alert"] == name)
            .unwrap_or_else(|| panic!("no alert {name}"))
    };
    assert_eq!(rule("RouterAttachmentDrift")["for"], "10m");
    assert!(
        rule("RouterCheckError").get("for").is_none(),
        "errors fire at once"
    );
}

#[test]
fn the_agent_daemonset_runs_router_agent_on_the_nodes_address_with_the_mounts_and_probes_it_needs()
{
    let ds = daemonset("agent.yaml");
    let spec = &ds["spec"]["template"]["spec"];
    assert_eq!(
        spec["hostNetwork"], true,
        "the host side is the node's netns"
    );
    assert_eq!(
        spec["automountServiceAccountToken"], false,
        "it talks to no API server"
    );
    let agent = &array(&spec["containers"], "containers")[0];
    assert_eq!(agent["command"][0], "/usr/local/bin/router");
    // The kubelet expands $(NODE_IP) from the pod's env before the CLI sees it.
    let env = array(&agent["env"], "env");
    let node_ip = env.iter().find(|e| e["name"] == "NODE_IP").unwrap();
    assert_eq!(
        node_ip["valueFrom"]["fieldRef"]["fieldPath"],
        "status.hostIP"
    );
    let args: Vec<String> = array(&agent["args"], "args")
        .iter()
        .map(|a| a.as_str().unwrap().replace("$(NODE_IP)", "192.0.2.10"))
        .collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    assert_eq!(args[0], "agent");
    assert_cli_accepts(&args);
    let listen = args
        .iter()
        .find_map(|a| a.strip_prefix("--listen="))
        .expect("--listen set: the default answers on loopback only");
    let port: u64 = listen.rsplit_once(':').unwrap().1.parse().unwrap();
    for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
        assert_eq!(agent[probe]["httpGet"]["path"], path, "{probe}");
        assert_eq!(
            agent[probe]["httpGet"]["port"].as_u64(),
            Some(port),
            "{probe}"
        );
    }
    assert_eq!(agent["securityContext"]["privileged"], true);
    for (path, read_only) in [
        ("/var/lib/cni", true),
        ("/run/netns", true),
        ("/run/cni/router", false),
    ] {
        let (host_path, mount) = host_mount(spec, agent, path);
        assert_eq!(host_path, path, "at the host's own path");
        assert_eq!(mount["readOnly"] == true, read_only, "{path}");
    }
    let (_, netns) = host_mount(spec, agent, "/run/netns");
    assert_eq!(netns["mountPropagation"], "HostToContainer");
    // The network configs `--config-dir` rolls out: the optional ConfigMap, read-only.
    let config_dir = args
        .iter()
        .find_map(|a| a.strip_prefix("--config-dir="))
        .expect("--config-dir set");
    let mounts = array(&agent["volumeMounts"], "volumeMounts");
    let networks = mounts
        .iter()
        .find(|m| m["mountPath"] == config_dir)
        .expect("the --config-dir directory is mounted");
    assert_eq!(networks["readOnly"], true);
    let volume = array(&spec["volumes"], "volumes")
        .iter()
        .find(|v| v["name"] == networks["name"])
        .expect("its volume");
    assert_eq!(
        volume["configMap"]["optional"], true,
        "no ConfigMap: an empty directory"
    );
    assert_eq!(mounts.len(), 4, "nothing mounted beyond what it needs");
}

/// Runs promtool (Debian's prometheus package) from the repository root.
fn promtool(args: &[&str]) {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("promtool runs (Debian's prometheus package)");
    assert!(
        out.status.success(),
        "promtool {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn promtool_accepts_the_alert_rules_and_their_unit_tests_pass() {
    promtool(&["check", "rules", "deploy/alerts.yaml"]);
    promtool(&["test", "rules", "tests/alerts.test.yaml"]);
}

#[test]
fn the_dockerfile_puts_the_binary_where_the_manifests_run_it() {
    let text = fs::read_to_string(deploy_dir().join("Dockerfile")).unwrap();
    assert!(text.contains("/usr/local/bin/router"));
}
