//! Unit tests of rollout::config_dir.

use std::os::unix::fs::symlink;

use super::*;

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("router-config-dir-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

fn conflist(name: &str, cidr: &str) -> String {
    format!(
        r#"{{"cniVersion": "1.0.0", "name": "{name}", "plugins": [{{"type": "macvlan"}},
          {{"type": "router", "overlay_hijack_subnet": ["{cidr}"],
            "service_hijack_subnet": ["10.96.0.0/12"]}}]}}"#
    )
}

/// Lays out one generation as the kubelet does: `..<ts>/<key>` files, `<key>` symlinks
/// to `..data/<key>`, and `..data` swapped by a rename over it.
fn publish(dir: &Path, generation: &str, files: &[(&str, String)]) {
    let gen_dir = dir.join(generation);
    fs::create_dir_all(&gen_dir).unwrap();
    for (key, content) in files {
        fs::write(gen_dir.join(key), content).unwrap();
        let link = dir.join(key);
        if fs::symlink_metadata(&link).is_err() {
            symlink(Path::new(DATA_LINK).join(key), &link).unwrap();
        }
    }
    let tmp = dir.join("..data_tmp");
    let _ = fs::remove_file(&tmp);
    symlink(generation, &tmp).unwrap();
    fs::rename(&tmp, dir.join(DATA_LINK)).unwrap();
}

#[test]
fn a_symlink_swap_shows_the_changed_file_as_changed_once_and_the_other_not() {
    let dir = scratch("swap");
    publish(
        &dir,
        "..2026_01_01_00_00_00.1",
        &[
            ("net1.json", conflist("net1", "10.244.0.0/16")),
            ("net2.json", conflist("net2", "10.244.0.0/16")),
        ],
    );
    let mut watched = ConfigDir::new(&dir);
    let first = watched.read().unwrap();
    assert_eq!(
        first.len(),
        2,
        "dotfiles and ..data are not configs: {first:?}"
    );
    assert!(first.iter().all(|c| c.changed));
    assert_eq!(first[0].source.as_ref().unwrap().network, "net1");

    publish(
        &dir,
        "..2026_01_01_00_01_00.2",
        &[
            ("net1.json", conflist("net1", "10.245.0.0/16")),
            ("net2.json", conflist("net2", "10.244.0.0/16")),
        ],
    );
    let second = watched.read().unwrap();
    let changed: Vec<&str> = second
        .iter()
        .filter(|c| c.changed)
        .map(|c| c.file.as_str())
        .collect();
    assert_eq!(changed, ["net1.json"]);
    let plugin = &second[0].source.as_ref().unwrap().plugin;
    assert_eq!(plugin["overlay_hijack_subnet"][0], "10.245.0.0/16");

    let third = watched.read().unwrap();
    assert!(
        third.iter().all(|c| !c.changed),
        "read again without a swap: {third:?}"
    );
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn a_plain_directory_is_read_as_it_is_and_a_bad_file_is_reported_not_fatal() {
    let dir = scratch("plain");
    fs::write(dir.join("a.yaml"), "kind: [").unwrap();
    fs::write(dir.join("b.json"), conflist("net-b", "10.244.0.0/16")).unwrap();
    fs::write(dir.join(".hidden"), conflist("hidden", "10.244.0.0/16")).unwrap();
    let mut watched = ConfigDir::new(&dir);
    let read = watched.read().unwrap();
    let files: Vec<&str> = read.iter().map(|c| c.file.as_str()).collect();
    assert_eq!(files, ["a.yaml", "b.json"]);
    assert!(read[0].source.is_err());
    assert_eq!(read[1].source.as_ref().unwrap().network, "net-b");
    fs::remove_file(dir.join("b.json")).unwrap();
    fs::write(dir.join("b.json"), conflist("net-b", "10.244.0.0/16")).unwrap();
    assert!(
        watched.read().unwrap().iter().all(|c| !c.changed),
        "same content is no change"
    );
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn the_content_hash_is_fnv1a() {
    assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
    assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
}
