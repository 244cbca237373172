//! rollout::config_dir: a mounted ConfigMap of rollout sources (the kubelet's `..data` swap),
//! read from one generation, telling which files changed since the last read. Must not roll
//! anything out or decide when to read (the agent does).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

use super::Source;

/// The symlink the kubelet swaps to publish a new generation of a ConfigMap's files.
const DATA_LINK: &str = "..data";

/// One file of the directory as last read.
#[derive(Clone, Debug)]
pub struct DirConfig {
    /// The file's name (the ConfigMap key).
    pub file: String,
    /// Its content as a rollout source, or why it is not one.
    pub source: Result<Source>,
    /// Whether its content differs from the previous read (always true on the first read
    /// and for a file that appeared since).
    pub changed: bool,
}

/// A directory of rollout sources, remembering each file's content hash between reads.
#[derive(Clone, Debug)]
pub struct ConfigDir {
    dir: PathBuf,
    seen: BTreeMap<String, u64>,
}

impl ConfigDir {
    pub fn new(dir: impl Into<PathBuf>) -> ConfigDir {
        ConfigDir {
            dir: dir.into(),
            seen: BTreeMap::new(),
        }
    }

    /// Every file of the directory (dotfiles left out: the kubelet's `..data` and its
    /// timestamped directories), each read from the same generation: through `..data`
    /// resolved once, so a swap during the read is seen whole or not at all. Files are in
    /// name order. A file gone since the last read is forgotten.
    pub fn read(&mut self) -> Result<Vec<DirConfig>> {
        let generation = self.generation()?;
        let mut names: Vec<String> = Vec::new();
        let listing = fs::read_dir(&generation)
            .map_err(|e| Error::io(format!("listing {}", generation.display()), e))?;
        for entry in listing {
            let entry =
                entry.map_err(|e| Error::io(format!("listing {}", generation.display()), e))?;
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            if name.starts_with('.') {
                continue;
            }
            let path = generation.join(&name);
            if path.is_file() {
                names.push(name);
            }
        }
        names.sort();
        let mut configs = Vec::new();
        let mut seen = BTreeMap::new();
        for name in names {
            let path = generation.join(&name);
            let text = fs::read_to_string(&path)
                .map_err(|e| Error::io(format!("reading {}", path.display()), e));
            let (hash, source) = match text {
                Ok(text) => (fnv1a(text.as_bytes()), Source::parse(&text)),
                Err(e) => (0, Err(e)),
            };
            let changed = self.seen.get(&name) != Some(&hash);
            seen.insert(name.clone(), hash);
            configs.push(DirConfig {
                file: name,
                source,
                changed,
            });
        }
        self.seen = seen;
        Ok(configs)
    }

    /// The directory holding this generation's files: where `..data` points, else the
    /// directory itself (a plain directory, not a ConfigMap mount).
    fn generation(&self) -> Result<PathBuf> {
        let link = self.dir.join(DATA_LINK);
        match fs::read_link(&link) {
            Ok(target) => Ok(resolve(&self.dir, &target)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(self.dir.clone()),
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => Ok(self.dir.clone()),
            Err(e) => Err(Error::io(format!("reading {}", link.display()), e)),
        }
    }
}

/// The kubelet writes `..data` relative to the directory.
fn resolve(dir: &Path, target: &Path) -> PathBuf {
    match target.is_absolute() {
        true => target.to_path_buf(),
        false => dir.join(target),
    }
}

/// FNV-1a, 64 bits: a content hash that stays the same across runs and builds (std's
/// hasher is seeded per process), for telling a changed file from the same one.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("router-config-dir-{name}-{}", std::process::id()));
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
}
