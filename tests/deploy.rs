//! The Kubernetes manifests in `deploy/`: they parse, every DaemonSet is well formed (its
//! selector matches its pods, every mount has a volume, it runs on every node), and the
//! router command lines in them are ones the real CLI accepts, with the mounts they need.

use std::fs;
use std::path::{Path, PathBuf};

use clap::Parser;
use router::cache::DEFAULT_CACHE_DIRS;
use router::cli::Cli;
use router::operator::DEFAULT_DATA_DIR;
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

#[test]
fn the_check_daemonset_runs_check_all_as_json_with_what_it_needs_from_the_node() {
    let ds = daemonset("check.yaml");
    let spec = &ds["spec"]["template"]["spec"];
    assert_eq!(
        spec["hostNetwork"], true,
        "the host side is the node's netns"
    );
    let check = &array(&spec["containers"], "containers")[0];
    let script = array(&check["args"], "args")[0].as_str().unwrap();
    let line = script
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("/usr/local/bin/router "))
        .expect("the script runs router");
    let args: Vec<&str> = line.split_whitespace().skip(1).collect();
    assert_eq!(&args[..4], ["check", "--all", "--output", "json"]);
    assert_cli_accepts(&args);
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

#[test]
fn the_dockerfile_puts_the_binary_where_the_manifests_run_it() {
    let text = fs::read_to_string(deploy_dir().join("Dockerfile")).unwrap();
    assert!(text.contains("/usr/local/bin/router"));
}
