//! cache tests: libcni's result cache entries read, found and walked.

use super::*;
use serde_json::json;

struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("router-cache-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("results")).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn conflist(name: &str, with_router: bool) -> Value {
    let mut plugins = vec![json!({"type": "macvlan", "master": "eth9"})];
    if with_router {
        plugins.push(json!({"type": "router", "overlay_hijack_subnet": ["10.244.0.0/16"]}));
    }
    json!({"cniVersion": "1.0.0", "name": name, "plugins": plugins})
}

/// An entry exactly as libcni's cacheAdd marshals cachedInfo (field order included).
fn libcni_entry(network: &str, cid: &str, ifname: &str, config: &Value) -> String {
    let bytes = serde_json::to_vec(config).unwrap();
    format!(
        r#"{{"kind":"cniCacheV1","containerId":"{cid}","config":"{}","ifName":"{ifname}","networkName":"{network}","netns":"/var/run/netns/cni-1","cniArgs":[["K8S_POD_NAME","p"]],"result":{{"cniVersion":"1.0.0","interfaces":[{{"name":"{ifname}","sandbox":"/var/run/netns/cni-1"}}],"ips":[{{"address":"192.168.50.10/24","interface":0}}]}}}}"#,
        STANDARD.encode(bytes)
    )
}

fn write(dir: &TempDir, name: &str, text: &str) {
    fs::write(dir.0.join("results").join(name), text).unwrap();
}

#[test]
fn a_libcni_entry_decodes_with_its_conflist_netns_and_result() {
    let dir = TempDir::new("decode");
    let config = conflist("macvlan-net1", true);
    write(
        &dir,
        "macvlan-net1-c1-net1",
        &libcni_entry("macvlan-net1", "c1", "net1", &config),
    );
    let entry = find(
        std::slice::from_ref(&dir.0),
        "c1",
        "net1",
        Some("macvlan-net1"),
    )
    .unwrap();
    assert_eq!(entry.config, config);
    assert_eq!(entry.netns, Some(PathBuf::from("/var/run/netns/cni-1")));
    assert_eq!(
        entry.result.as_ref().unwrap()["ips"][0]["address"],
        "192.168.50.10/24"
    );
    assert!(entry.has_router());
    assert_eq!(
        (entry.container_id.as_str(), entry.ifname.as_str()),
        ("c1", "net1")
    );
}

#[test]
fn find_without_a_network_name_prefers_the_router_chain_and_refuses_ambiguity() {
    let dir = TempDir::new("find");
    write(
        &dir,
        "a-c1-net1",
        &libcni_entry("a", "c1", "net1", &conflist("a", false)),
    );
    write(
        &dir,
        "b-c1-net1",
        &libcni_entry("b", "c1", "net1", &conflist("b", true)),
    );
    assert_eq!(
        find(std::slice::from_ref(&dir.0), "c1", "net1", None)
            .unwrap()
            .network,
        "b"
    );
    write(
        &dir,
        "c-c1-net1",
        &libcni_entry("c", "c1", "net1", &conflist("c", true)),
    );
    let err = find(std::slice::from_ref(&dir.0), "c1", "net1", None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("b, c"), "{err}");
    assert!(find(std::slice::from_ref(&dir.0), "c2", "net1", None).is_err());
}

#[test]
fn walk_lists_every_file_sorted_and_says_why_a_file_is_not_an_entry() {
    let dir = TempDir::new("walk");
    write(
        &dir,
        "z-c1-net1",
        &libcni_entry("z", "c1", "net1", &conflist("z", true)),
    );
    write(&dir, "legacy-c2-eth0", r#"{"cniVersion":"0.3.1","ips":[]}"#);
    write(
        &dir,
        "bad-c3-eth0",
        r#"{"kind":"cniCacheV1","containerId":"c3","ifName":"eth0","networkName":"bad","config":"!!"}"#,
    );
    let walked = walk(&dir.0).unwrap();
    let names: Vec<String> = walked
        .iter()
        .map(|(p, _)| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["bad-c3-eth0", "legacy-c2-eth0", "z-c1-net1"]);
    assert!(walked[0]
        .1
        .as_ref()
        .unwrap_err()
        .to_string()
        .contains("base64"));
    assert!(walked[1].1.is_err());
    assert!(walked[2].1.is_ok());
    assert!(walk(&dir.0.join("nowhere")).unwrap().is_empty());
}

#[test]
fn find_looks_in_every_cache_dir_as_multus_keeps_its_delegates_apart() {
    let runtime = TempDir::new("runtime");
    let multus = TempDir::new("multus");
    write(
        &runtime,
        "multus-cni-network-c1-eth0",
        &libcni_entry("multus-cni-network", "c1", "eth0", &conflist("m", false)),
    );
    write(
        &multus,
        "macvlan-net1-c1-net1",
        &libcni_entry(
            "macvlan-net1",
            "c1",
            "net1",
            &conflist("macvlan-net1", true),
        ),
    );
    let dirs = [runtime.0.clone(), multus.0.clone()];
    for network in [None, Some("macvlan-net1")] {
        let found = find(&dirs, "c1", "net1", network).unwrap();
        assert_eq!(found.file, multus.0.join("results/macvlan-net1-c1-net1"));
    }
    let err = find(&dirs, "c1", "net2", None).unwrap_err().to_string();
    assert!(
        err.contains(&format!("{}, {}", dirs[0].display(), dirs[1].display())),
        "{err}"
    );
}

#[test]
fn names_that_could_leave_the_directory_are_refused() {
    let dir = Path::new("/nonexistent");
    assert!(entry_path(dir, "../x", "c1", "net1").is_err());
    assert!(entry_path(dir, "n", "../../etc/passwd", "net1").is_err());
    assert!(entry_path(dir, "n", "c1", "a/b").is_err());
    assert!(find(&[dir.to_path_buf()], "c1/..", "net1", None).is_err());
}

#[test]
fn a_single_plugin_config_counts_as_a_chain_of_one() {
    assert!(has_router(&json!({"type": "router"})));
    assert!(!has_router(&json!({"type": "ptp"})));
    assert!(!has_router(&json!({"plugins": "oops"})));
}
