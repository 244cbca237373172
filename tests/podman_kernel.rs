//! podman end to end (issue 11): Debian's podman 4.3 with its CNI backend runs router
//! from a CNI bin dir, inside a throwaway node netns (`nsenter --net`, not `ip netns exec`,
//! which remounts /sys and makes runc fail). eth0 is the "overlay" network (ptp +
//! host-local), eth1 the "mac" network (macvlan + host-local + router). podman's storage,
//! run root, tmp dir, events log and CNI config dir are the test's own (CONTAINERS_CONF and
//! CONTAINERS_STORAGE_CONF point at fixtures/podman/ filled in): the machine's podman
//! state and /etc/containers are not touched. The CNI result cache is podman's default,
//! /var/lib/cni/results, which `router check --all` reads as a node would.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::cni::{host_state, Node, Shell, TempDir};
use common::run;

const IMAGE: &str = "localhost/router-e2e-busybox:latest";
/// podman's default libcni cache: where `router check --all` looks by default.
const CNI_RESULTS: &str = "/var/lib/cni/results";
const ETC_CONTAINERS_CONF: &str = "/etc/containers/containers.conf";
/// A run of `podman run --network overlay --network mac` is repeated this often: podman
/// attaches the two networks in random order.
const RUNS: usize = 10;

/// Puts a file back as it was (or removes it when it did not exist) on drop.
struct Restore {
    path: PathBuf,
    before: Option<Vec<u8>>,
}

impl Restore {
    fn new(path: &str) -> Restore {
        Restore {
            path: PathBuf::from(path),
            before: std::fs::read(path).ok(),
        }
    }

    fn unchanged(&self) -> bool {
        std::fs::read(&self.path).ok() == self.before
    }
}

impl Drop for Restore {
    fn drop(&mut self) {
        if self.unchanged() {
            return;
        }
        let _ = match &self.before {
            Some(bytes) => std::fs::write(&self.path, bytes),
            None => std::fs::remove_file(&self.path),
        };
    }
}

/// A directory podman creates outside its configured roots when it is missing (libcni's
/// cache, containers/image's blob-info cache): removed on drop if the test made it.
struct RemoveIfNew {
    path: &'static str,
    existed: bool,
}

impl RemoveIfNew {
    fn new(path: &'static str) -> RemoveIfNew {
        RemoveIfNew {
            path,
            existed: Path::new(path).exists(),
        }
    }
}

impl Drop for RemoveIfNew {
    fn drop(&mut self) {
        if !self.existed {
            let _ = std::fs::remove_dir_all(self.path);
        }
    }
}

/// podman in a node netns with private state; removes its containers, image, data_dir and
/// log, and any cache entry of its containers, on drop.
struct Podman {
    node: Node,
    work: TempDir,
    conf: PathBuf,
    storage_conf: PathBuf,
    data_dir: PathBuf,
    log_file: PathBuf,
    containers: std::cell::RefCell<Vec<String>>,
    etc_conf: Restore,
    _made_outside: [RemoveIfNew; 2],
}

impl Podman {
    fn new() -> Podman {
        require_tools();
        let etc_conf = Restore::new(ETC_CONTAINERS_CONF);
        let made_outside = ["/var/lib/cni", "/var/lib/containers"].map(RemoveIfNew::new);
        let node = Node::new("pdm");
        let work = TempDir::new("podman");
        let name = node.host.name.clone();
        let data_dir = PathBuf::from(format!("/run/{name}"));
        let log_file = PathBuf::from(format!("/var/log/{name}.log"));
        let podman = Podman {
            conf: work.join("containers.conf"),
            storage_conf: work.join("storage.conf"),
            node,
            work,
            data_dir,
            log_file,
            containers: std::cell::RefCell::new(Vec::new()),
            etc_conf,
            _made_outside: made_outside,
        };
        podman.write_configs();
        podman.cni_bin_dir();
        podman.import_image();
        podman
    }

    /// fixtures/podman/ with this run's directories filled in.
    fn write_configs(&self) {
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/podman");
        let net_d = self.work.join("net.d");
        std::fs::create_dir_all(&net_d).unwrap();
        let targets = [
            ("containers.conf", self.conf.clone()),
            ("storage.conf", self.storage_conf.clone()),
            ("overlay.conflist", net_d.join("overlay.conflist")),
            ("mac.conflist", net_d.join("mac.conflist")),
        ];
        for (name, target) in targets {
            let text = std::fs::read_to_string(fixtures.join(name)).unwrap();
            let text = text
                .replace("@WORK@", &self.work.0.display().to_string())
                .replace("@DATA_DIR@", &self.data_dir.display().to_string())
                .replace("@LOG_FILE@", &self.log_file.display().to_string());
            std::fs::write(target, text).unwrap();
        }
    }

    /// Debian's plugins linked, router installed as `router install` does it.
    fn cni_bin_dir(&self) {
        let bin = self.work.join("cni-bin");
        std::fs::create_dir_all(&bin).unwrap();
        for plugin in std::fs::read_dir("/usr/lib/cni").unwrap().flatten() {
            std::os::unix::fs::symlink(plugin.path(), bin.join(plugin.file_name())).unwrap();
        }
        let router = env!("CARGO_BIN_EXE_router");
        run(
            router,
            &["install", "--cni-bin-dir", &bin.display().to_string()],
        );
    }

    /// An image from Debian's busybox-static: /bin/busybox and a link per applet.
    fn import_image(&self) {
        let rootfs = self.work.join("rootfs");
        let bin = rootfs.join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::copy("/bin/busybox", bin.join("busybox")).unwrap();
        for applet in run("/bin/busybox", &["--list"]).lines() {
            if applet != "busybox" {
                std::os::unix::fs::symlink("busybox", bin.join(applet)).unwrap();
            }
        }
        let tar = self.work.join("rootfs.tar");
        let (rootfs, tar) = (rootfs.display().to_string(), tar.display().to_string());
        run("tar", &["-C", &rootfs, "-cf", &tar, "."]);
        self.podman_ok(&["import", &tar, IMAGE]);
    }

    /// podman in the node netns, bounded in time.
    fn podman(&self, args: &[&str]) -> Output {
        Command::new("timeout")
            .arg("120")
            .arg("nsenter")
            .arg(format!("--net={}", self.node.host.path().display()))
            .arg("podman")
            .args(args)
            .env("CONTAINERS_CONF", &self.conf)
            .env("CONTAINERS_STORAGE_CONF", &self.storage_conf)
            .output()
            .unwrap()
    }

    fn podman_ok(&self, args: &[&str]) -> String {
        let out = self.podman(args);
        assert!(
            out.status.success(),
            "podman {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// `podman run -d` of a container sleeping on `networks`; its id, or podman's error.
    fn start(&self, name: &str, networks: &[&str]) -> Result<String, String> {
        let mut args = vec!["run", "-d", "--name", name];
        for network in networks {
            args.extend(["--network", network]);
        }
        args.extend([IMAGE, "sleep", "3600"]);
        self.containers.borrow_mut().push(name.to_string());
        let out = self.podman(&args);
        match out.status.success() {
            true => Ok(String::from_utf8_lossy(&out.stdout).trim().to_string()),
            false => Err(String::from_utf8_lossy(&out.stderr).into_owned()),
        }
    }

    fn id(&self, name: &str) -> String {
        self.podman_ok(&["inspect", "--format", "{{.Id}}", name])
    }

    /// The container's netns as `ip -n` names it (podman's `/run/netns/netns-<uuid>`).
    fn netns(&self, name: &str) -> String {
        let path = self.podman_ok(&[
            "inspect",
            "--format",
            "{{.NetworkSettings.SandboxKey}}",
            name,
        ]);
        let file = Path::new(&path).file_name().unwrap_or_default();
        file.to_string_lossy().into_owned()
    }

    /// `router check --all` in the node netns with the node's defaults: exit code, stdout.
    fn check_all(&self, extra: &[&str]) -> (i32, String) {
        let out = Command::new("nsenter")
            .arg(format!("--net={}", self.node.host.path().display()))
            .arg(env!("CARGO_BIN_EXE_router"))
            .args(["check", "--all"])
            .args(extra)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        (out.status.code().unwrap_or(-1), stdout)
    }

    /// The records router keeps in the test's data_dir.
    fn records(&self) -> Vec<String> {
        std::fs::read_dir(&self.data_dir)
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.ends_with(".json"))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// What router owns on the node: rules and routes of protocol 176 and permanent
    /// neighbours, plus table 500.
    fn node_owned(&self) -> String {
        let host = &self.node.host;
        [
            host.ipx(&["rule", "show", "proto", "176"]),
            host.ipx(&["-6", "rule", "show", "proto", "176"]),
            host.ipx(&["route", "show", "table", "all", "proto", "176"]),
            host.ipx(&["-6", "route", "show", "table", "all", "proto", "176"]),
            host_state(&self.node),
        ]
        .join("\n")
    }

    /// The pod is what router makes it: the node reaches eth1's address, replies from
    /// eth0's address go through table 100, main holds one default, table 100 eth0's.
    fn assert_fully_attached(&self, name: &str) {
        let ns = self.netns(name);
        let eth0 = address(&ns, "eth0");
        let eth1 = address(&ns, "eth1");
        assert!(self.node.host.pings(&eth1), "{name}: node -> eth1 {eth1}");
        let rules = ip_n(&ns, &["rule"]);
        let from = format!("from {eth0} lookup 100");
        assert!(rules.contains(&from), "{name}: no `{from}`:\n{rules}");
        let defaults = ip_n(&ns, &["route", "show", "default"]);
        assert_eq!(
            defaults.lines().count(),
            1,
            "{name}: main defaults:\n{defaults}"
        );
        let t100 = ip_n(&ns, &["route", "show", "table", "100"]);
        assert!(
            t100.contains("default via 10.244.0.1 dev eth0"),
            "{name}: table 100:\n{t100}"
        );
    }

    /// A failed start's error names eth0 (router's code 104 message, through podman): eth0
    /// not there yet, or given to the macvlan network (podman names interfaces in random
    /// order too).
    fn assert_loud_failure(&self, name: &str, stderr: &str) {
        assert!(
            stderr.contains("overlay_interface eth0 ") && stderr.contains("nothing was changed"),
            "{name}: podman failed without naming eth0: {stderr}"
        );
    }

    fn remove(&self, names: &[&str]) {
        let mut args = vec!["rm", "-f", "-t", "0"];
        args.extend(names);
        self.podman_ok(&args);
    }

    /// Cache entries of this test's containers left in podman's libcni cache.
    fn cache_entries(&self, ids: &[String]) -> Vec<String> {
        std::fs::read_dir(CNI_RESULTS)
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| ids.iter().any(|id| n.contains(id.as_str())))
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let ids: Vec<String> = self
            .containers
            .borrow()
            .iter()
            .map(|name| self.podman(&["inspect", "--format", "{{.Id}}", name]))
            .filter(|out| out.status.success())
            .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_string())
            .collect();
        let _ = self.podman(&["rm", "-f", "-a", "-t", "0"]);
        let _ = self.podman(&["rmi", "-f", "-a"]);
        for entry in self.cache_entries(&ids) {
            let _ = std::fs::remove_file(Path::new(CNI_RESULTS).join(entry));
        }
        let _ = std::fs::remove_dir_all(&self.data_dir);
        let _ = std::fs::remove_file(&self.log_file);
    }
}

fn require_tools() {
    for (tool, args) in [
        ("podman", "--version"),
        ("runc", "--version"),
        ("/bin/busybox", "true"),
    ] {
        let found = Command::new(tool)
            .arg(args)
            .output()
            .is_ok_and(|o| o.status.success());
        assert!(
            found,
            "{tool} is missing: install Debian's podman, runc and busybox-static \
             (apt-get install podman runc busybox-static; .ci/run does)"
        );
    }
}

fn ip_n(ns: &str, args: &[&str]) -> String {
    let mut all = vec!["-n", ns];
    all.extend_from_slice(args);
    run("ip", &all)
}

/// The first IPv4 address of `dev` in netns `ns`, without its prefix length.
fn address(ns: &str, dev: &str) -> String {
    let brief = ip_n(ns, &["-4", "-br", "addr", "show", "dev", dev]);
    let addr = brief.split_whitespace().nth(2);
    let addr = addr.unwrap_or_else(|| panic!("no address on {dev}: {brief:?}"));
    addr.split('/').next().unwrap_or_default().to_string()
}

/// Rules, IPv4 routes but the local table's, permanent neighbours and rp_filter of a pod: what router
/// changes there.
fn pod_view(ns: &str) -> String {
    let rp_filter = ["all", "eth0"].map(|iface| {
        run(
            "ip",
            &[
                "netns",
                "exec",
                ns,
                "cat",
                &format!("/proc/sys/net/ipv4/conf/{iface}/rp_filter"),
            ],
        )
    });
    [
        ip_n(ns, &["rule"]),
        // Every table but local (one read: a table that does not exist yet is no error).
        ip_n(ns, &["-4", "route", "show", "table", "all"])
            .lines()
            .filter(|l| !l.contains("table local"))
            .collect::<Vec<_>>()
            .join("\n"),
        ip_n(ns, &["neigh", "show", "nud", "permanent"]),
        rp_filter.join(""),
    ]
    .join("\n")
}

fn has_line(report: &str, status: &str, id: &str) -> bool {
    report
        .lines()
        .any(|l| l.starts_with(status) && l.contains(&format!("{id}/eth1")))
}

/// Hot plug: connect, check --all clean, a deleted rule is drift (exit 2), --repair fixes
/// it, disconnect leaves pod and node exactly as before, with no record.
fn hot_plug_is_exact_and_checked_by_check_all(p: &Podman) {
    p.start("hot", &["overlay"])
        .expect("podman run --network overlay");
    let ns = p.netns("hot");
    let id = p.id("hot");
    let before = (pod_view(&ns), p.node_owned());
    p.podman_ok(&["network", "connect", "mac", "hot"]);
    p.assert_fully_attached("hot");

    // These three need `check --all` to find podman's netns (its cache records none).
    let (code, report) = p.check_all(&[]);
    assert!(
        code == 0 && has_line(&report, "clean", &id),
        "check --all after connect ({code}):\n{report}"
    );
    ip_n(
        &ns,
        &[
            "rule",
            "del",
            "to",
            "10.96.0.0/12",
            "lookup",
            "100",
            "pref",
            "1000",
        ],
    );
    let (code, report) = p.check_all(&[]);
    assert!(
        code == 2 && has_line(&report, "drift", &id),
        "check --all after a rule was deleted ({code}):\n{report}"
    );
    let (code, report) = p.check_all(&["--repair"]);
    assert!(
        code == 0 && has_line(&report, "repaired", &id),
        "check --all --repair ({code}):\n{report}"
    );
    p.assert_fully_attached("hot");
    assert!(ip_n(&ns, &["rule"]).contains("to 10.96.0.0/12 lookup 100"));

    p.podman_ok(&["network", "disconnect", "mac", "hot"]);
    assert_eq!((pod_view(&ns), p.node_owned()), before, "after disconnect");
    assert_eq!(
        p.records(),
        Vec::<String>::new(),
        "records after disconnect"
    );
    p.remove(&["hot"]);
}

/// podman attaches both networks in random order: each run is fully right or fails
/// naming eth0; after removing them all nothing of router's is on the node.
fn random_order_runs_are_right_or_fail_loudly(p: &Podman, node_before: &str) {
    let names: Vec<String> = (0..RUNS).map(|i| format!("both{i}")).collect();
    let mut ids = Vec::new();
    let (mut right, mut refused) = (0, 0);
    for name in &names {
        match p.start(name, &["overlay", "mac"]) {
            Ok(_) => {
                p.assert_fully_attached(name);
                right += 1;
            }
            Err(stderr) => {
                p.assert_loud_failure(name, &stderr);
                refused += 1;
            }
        }
        ids.push(p.id(name));
    }
    eprintln!(
        "podman run --network overlay --network mac: {right} right, {refused} refused naming eth0"
    );
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    p.remove(&names);
    assert_eq!(p.node_owned(), node_before, "node after podman rm");
    assert_eq!(p.records(), Vec::<String>::new(), "records after podman rm");
    assert_eq!(
        p.cache_entries(&ids),
        Vec::<String>::new(),
        "cache after podman rm"
    );
}

/// A restart re-attaches both networks in random order: right afterwards, or loud.
fn restart_of_a_hot_plugged_container_is_right_or_loud(p: &Podman, node_before: &str) {
    p.start("restarted", &["overlay"])
        .expect("podman run --network overlay");
    p.podman_ok(&["network", "connect", "mac", "restarted"]);
    p.assert_fully_attached("restarted");
    let out = p.podman(&["restart", "-t", "0", "restarted"]);
    match out.status.success() {
        true => p.assert_fully_attached("restarted"),
        false => p.assert_loud_failure("restarted", &String::from_utf8_lossy(&out.stderr)),
    }
    let error = String::from_utf8_lossy(&out.stderr);
    let error = error
        .lines()
        .find(|l| l.starts_with("Error"))
        .unwrap_or_default();
    eprintln!(
        "podman restart of a hot-plugged container: exit {:?} {error}",
        out.status.code()
    );
    p.remove(&["restarted"]);
    assert_eq!(
        p.node_owned(),
        node_before,
        "node after the restarted container went"
    );
    assert_eq!(p.records(), Vec::<String>::new());
}

#[test]
fn podman_with_its_cni_backend_attaches_exactly_or_fails_loudly() {
    let started = std::time::Instant::now();
    let p = Podman::new();
    let node_before = p.node_owned();
    hot_plug_is_exact_and_checked_by_check_all(&p);
    random_order_runs_are_right_or_fail_loudly(&p, &node_before);
    restart_of_a_hot_plugged_container_is_right_or_loud(&p, &node_before);
    assert!(p.etc_conf.unchanged(), "{ETC_CONTAINERS_CONF} changed");
    eprintln!(
        "podman end to end: {:.1} s",
        started.elapsed().as_secs_f64()
    );
}
