//! containerd for the containerd kernel test (issue 21): Debian's containerd 1.6 started
//! in a throwaway node netns (`nsenter --net`, not `ip netns exec`, which remounts /sys
//! and makes runc fail) with its own config, every directory it writes (root, state, grpc
//! socket, runc root, CNI bin and conf dirs, pod netns mounts, router's data_dir and log)
//! in one scratch directory, driven through the CRI API (`k8s-cri` over the unix socket).
//! The sandbox image is built here from busybox-static. Outside the scratch directory are
//! only what containerd 1.6 does not let a config move: libcni's result cache
//! (/var/lib/cni/results, where `router check --all` reads it as on a node; this test's
//! entries there are removed on drop) and the shims' sockets (/run/containerd/s). `Containerd`'s drop stops every pod, containerd,
//! leftover shims and runc containers, unmounts what it mounted and removes its cgroups,
//! scratch directory and namespaces, whether the test passed or panicked.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hyper_util::rt::TokioIo;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use k8s_cri::v1::{
    LinuxPodSandboxConfig, ListPodSandboxRequest, PodSandboxConfig, PodSandboxMetadata,
    PodSandboxStatusRequest, RemovePodSandboxRequest, RunPodSandboxRequest, StatusRequest,
    StopPodSandboxRequest,
};
use tonic::transport::{Channel, Endpoint, Uri};

use crate::common::cni::{allowed_dirs_env, Node, TempDir};
use crate::common::{run, unique};

/// The sandbox (pause) image the test builds and imports.
pub const SANDBOX_IMAGE: &str = "localhost/router-ctd-pause:1";
/// containerd's CRI namespace.
const K8S_NS: &str = "k8s.io";
/// libcni's cache dir (containerd 1.6 has no setting for it): entries are
/// `<dir>/results/<network>-<sandbox id>-<ifname>`, one per network (cni-loopback too).
pub const CNI_CACHE_DIR: &str = "/var/lib/cni";
/// What containerd and libcni create outside the scratch dir when it is missing, children
/// first: libcni's cache, the runc v2 shims' socket dir (`/run/containerd/s/<hash>`, fixed
/// in containerd 1.6 whatever `state` says).
const OUTSIDE: [&str; 4] = [
    "/var/lib/cni/results",
    "/var/lib/cni",
    "/run/containerd/s",
    "/run/containerd",
];
/// How long one CRI call (a pod start runs every CNI plugin) may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(120);

/// How containerd attaches networks to a pod.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Networks {
    /// containerd's own multi-network mode: `max_conf_num = 2`, 10-overlay.conflist (ptp,
    /// eth0) and 20-underlay.conflist (macvlan + host-local + router, eth1), attached by
    /// go-cni in parallel.
    TwoConflists,
    /// One chained conflist, the only one containerd loads (`max_conf_num = 1`): ptp +
    /// router, both on eth0.
    OneChainedConflist,
}

/// containerd in a node netns with everything under one scratch directory.
pub struct Containerd {
    pub node: Node,
    pub scratch: TempDir,
    /// This instance's cgroup parent (under every cgroup hierarchy's root).
    cgroup_parent: String,
    /// overlayfs, or native where overlay mounts fail.
    pub snapshotter: &'static str,
    child: Option<Child>,
    rt: tokio::runtime::Runtime,
    client: Option<RuntimeServiceClient<Channel>>,
    /// Directories containerd and libcni make outside the scratch dir when missing (the
    /// CNI cache, the shims' socket dir), each with whether it existed before: removed on
    /// drop, when empty, if this test made them.
    made_outside: Vec<(PathBuf, bool)>,
}

impl Containerd {
    pub fn start(networks: Networks) -> Containerd {
        require_tools();
        let made_outside = OUTSIDE
            .iter()
            .map(|dir| (PathBuf::from(dir), Path::new(dir).exists()))
            .collect();
        let node = Node::new("ctd");
        let scratch = TempDir::new("ctd");
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let mut ctd = Containerd {
            node,
            cgroup_parent: format!("/{}", unique("ctd")),
            snapshotter: snapshotter(&scratch.0),
            scratch,
            child: None,
            rt,
            client: None,
            made_outside,
        };
        ctd.write_config(networks);
        ctd.cni_bin_dir();
        ctd.restart_process();
        ctd.import_sandbox_image();
        ctd
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.scratch.join(name)
    }

    fn socket(&self) -> PathBuf {
        self.path("containerd.sock")
    }

    pub fn data_dir(&self) -> PathBuf {
        self.path("router")
    }

    pub fn log_file(&self) -> PathBuf {
        self.path("router.log")
    }

    /// The config file and the conflists.
    fn write_config(&self, networks: Networks) {
        let s = self.scratch.0.display().to_string();
        let max_conf_num = match networks {
            Networks::TwoConflists => 2,
            Networks::OneChainedConflist => 1,
        };
        let config = config_toml(&s, max_conf_num, self.snapshotter);
        std::fs::write(self.path("config.toml"), config).unwrap();
        let net_d = self.path("net.d");
        std::fs::create_dir_all(&net_d).unwrap();
        let ptp = ptp_plugin(&s);
        let router = router_plugin(&self.data_dir(), &self.log_file());
        let conflists = match networks {
            Networks::TwoConflists => vec![
                ("10-overlay.conflist", conflist("overlay", &[ptp])),
                (
                    "20-underlay.conflist",
                    conflist("underlay", &[macvlan_plugin(&s), router]),
                ),
            ],
            Networks::OneChainedConflist => {
                vec![("10-chained.conflist", conflist("chained", &[ptp, router]))]
            }
        };
        for (name, text) in conflists {
            std::fs::write(net_d.join(name), text).unwrap();
        }
    }

    /// Debian's plugins linked, router copied (what `router install` does).
    fn cni_bin_dir(&self) {
        let bin = self.path("cni-bin");
        std::fs::create_dir_all(&bin).unwrap();
        for plugin in std::fs::read_dir("/usr/lib/cni").unwrap().flatten() {
            std::os::unix::fs::symlink(plugin.path(), bin.join(plugin.file_name())).unwrap();
        }
        std::fs::copy(env!("CARGO_BIN_EXE_router"), bin.join("router")).unwrap();
    }

    /// Starts containerd (stopping a running one first) and waits until its CRI service
    /// answers with the network ready (the conflists loaded).
    pub fn restart_process(&mut self) {
        self.stop_process();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.path("containerd.log"))
            .unwrap();
        let child = Command::new("nsenter")
            .arg(format!("--net={}", self.node.host.path().display()))
            .arg("containerd")
            .arg("--config")
            .arg(self.path("config.toml"))
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .envs([allowed_dirs_env()])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("cannot start containerd");
        self.child = Some(child);
        self.client = Some(self.wait_ready());
    }

    fn wait_ready(&mut self) -> RuntimeServiceClient<Channel> {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut last = String::new();
        while Instant::now() < deadline {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                panic!("containerd exited ({status}):\n{}", self.log_tail());
            }
            match self.rt.block_on(connect_ready(self.socket())) {
                Ok(client) => return client,
                Err(e) => last = e,
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("containerd not ready in 60 s: {last}\n{}", self.log_tail());
    }

    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.path("containerd.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// SIGTERM, then SIGKILL after 10 s; the pods' shims and containers keep running (as
    /// on a node when containerd restarts).
    pub fn stop_process(&mut self) {
        self.client = None;
        let Some(mut child) = self.child.take() else {
            return;
        };
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    /// The sandbox image: a layer with /bin/busybox, a config running `busybox sleep`, as a
    /// docker-archive tar, imported into the CRI namespace.
    fn import_sandbox_image(&self) {
        let image = self.path("image");
        let layer = image.join("layer");
        std::fs::create_dir_all(layer.join("bin")).unwrap();
        std::fs::copy("/bin/busybox", layer.join("bin/busybox")).unwrap();
        let layer_tar = image.join("layer.tar");
        let text = |p: &Path| p.display().to_string();
        run("tar", &["-C", &text(&layer), "-cf", &text(&layer_tar), "."]);
        let sum = run("sha256sum", &[&text(&layer_tar)]);
        let digest = sum.split_whitespace().next().unwrap_or_default();
        let config = serde_json::json!({
            "architecture": "amd64",
            "os": "linux",
            "config": { "Entrypoint": ["/bin/busybox", "sleep", "1000000"] },
            "rootfs": { "type": "layers", "diff_ids": [format!("sha256:{digest}")] }
        });
        let manifest = serde_json::json!([{
            "Config": "config.json",
            "RepoTags": [SANDBOX_IMAGE],
            "Layers": ["layer.tar"]
        }]);
        std::fs::write(image.join("config.json"), config.to_string()).unwrap();
        std::fs::write(image.join("manifest.json"), manifest.to_string()).unwrap();
        let archive = self.path("image.tar");
        run(
            "tar",
            &[
                "-C",
                &text(&image),
                "-cf",
                &text(&archive),
                "manifest.json",
                "config.json",
                "layer.tar",
            ],
        );
        run(
            "ctr",
            &[
                "--address",
                &text(&self.socket()),
                "-n",
                K8S_NS,
                "images",
                "import",
                "--snapshotter",
                self.snapshotter,
                &text(&archive),
            ],
        );
    }

    fn client(&self) -> RuntimeServiceClient<Channel> {
        self.client.clone().expect("containerd is not running")
    }

    /// RunPodSandbox of pod `name`: its sandbox id, or containerd's error.
    pub fn run_pod(&self, name: &str) -> Result<String, String> {
        self.rt
            .block_on(run_pod(self.client(), self.pod_config(name)))
    }

    /// RunPodSandbox of every pod of `names` at once, each a result in `names`' order.
    pub fn run_pods_in_parallel(&self, names: &[String]) -> Vec<Result<String, String>> {
        let calls: Vec<_> = names
            .iter()
            .map(|name| run_pod(self.client(), self.pod_config(name)))
            .collect();
        self.rt.block_on(async {
            let handles: Vec<_> = calls.into_iter().map(tokio::spawn).collect();
            let mut out = Vec::new();
            for handle in handles {
                out.push(handle.await.unwrap_or_else(|e| Err(e.to_string())));
            }
            out
        })
    }

    fn pod_config(&self, name: &str) -> PodSandboxConfig {
        let logs = self.path("pod-logs").join(name);
        PodSandboxConfig {
            metadata: Some(PodSandboxMetadata {
                name: name.to_string(),
                uid: format!("uid-{name}"),
                namespace: "default".into(),
                attempt: 0,
            }),
            hostname: name.to_string(),
            log_directory: logs.display().to_string(),
            linux: Some(LinuxPodSandboxConfig {
                cgroup_parent: self.cgroup_parent.clone(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// StopPodSandbox (containerd runs CNI DEL) then RemovePodSandbox (which stops the pod
    /// again: router sees a second DEL).
    pub fn stop_and_remove(&self, id: &str) -> Result<(), String> {
        let mut client = self.client();
        let id = id.to_string();
        self.rt.block_on(async move {
            let stop = StopPodSandboxRequest {
                pod_sandbox_id: id.clone(),
            };
            timed(client.stop_pod_sandbox(stop)).await?;
            let remove = RemovePodSandboxRequest { pod_sandbox_id: id };
            timed(client.remove_pod_sandbox(remove)).await?;
            Ok(())
        })
    }

    /// The sandbox ids containerd knows.
    pub fn sandboxes(&self) -> Result<Vec<String>, String> {
        let mut client = self.client();
        self.rt.block_on(async move {
            let list =
                timed(client.list_pod_sandbox(ListPodSandboxRequest { filter: None })).await?;
            Ok(list.items.into_iter().map(|s| s.id).collect())
        })
    }

    /// PodSandboxStatus, verbose: the pod's state (0 ready), its eth0 address and the netns
    /// path from the sandbox's runtime spec.
    pub fn status(&self, id: &str) -> SandboxStatus {
        let mut client = self.client();
        let request = PodSandboxStatusRequest {
            pod_sandbox_id: id.to_string(),
            verbose: true,
        };
        let response = self
            .rt
            .block_on(async move { timed(client.pod_sandbox_status(request)).await })
            .unwrap_or_else(|e| panic!("PodSandboxStatus {id}: {e}"));
        let status = response.status.unwrap_or_default();
        let info: serde_json::Value = response
            .info
            .get("info")
            .and_then(|s| serde_json::from_str(s).ok())
            .unwrap_or_default();
        let netns = info["runtimeSpec"]["linux"]["namespaces"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|ns| ns["type"] == "network")
            .and_then(|ns| ns["path"].as_str())
            .unwrap_or_default()
            .to_string();
        SandboxStatus {
            ready: status.state == 0,
            eth0: status.network.map(|n| n.ip).unwrap_or_default(),
            netns: PathBuf::from(netns),
        }
    }

    /// `router check --all` in the node netns over containerd's CNI cache and this
    /// instance's data_dir, as an operator runs it: exit code, stdout and stderr.
    pub fn check_all(&self) -> (i32, String) {
        let out = Command::new("nsenter")
            .arg(format!("--net={}", self.node.host.path().display()))
            .arg(env!("CARGO_BIN_EXE_router"))
            .args(["check", "--all", "--cache-dir", CNI_CACHE_DIR, "--data-dir"])
            .arg(self.data_dir())
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .envs([allowed_dirs_env()])
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code().unwrap_or(-1), text)
    }

    /// router's records in the data_dir.
    pub fn records(&self) -> Vec<String> {
        list_names(&self.data_dir(), |n| n.ends_with(".json"))
    }

    /// libcni cache entries of this instance (their result names a pod netns under its
    /// scratch dir; the cached config is base64).
    pub fn cache_entries(&self) -> Vec<PathBuf> {
        self.cache_entries_where(true)
    }

    /// libcni cache entries of other runtimes on the machine (another test's podman).
    pub fn foreign_cache_entries(&self) -> Vec<PathBuf> {
        self.cache_entries_where(false)
    }

    fn cache_entries_where(&self, ours: bool) -> Vec<PathBuf> {
        let results = Path::new(CNI_CACHE_DIR).join("results");
        let mark = self.scratch.0.display().to_string();
        let is_ours =
            |p: &Path| std::fs::read(p).is_ok_and(|b| String::from_utf8_lossy(&b).contains(&mark));
        let mut entries: Vec<PathBuf> = std::fs::read_dir(results)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| is_ours(p) == ours)
            .collect();
        entries.sort();
        entries
    }

    /// Pod netns mounts containerd holds (`netns_mounts_under_state_dir`).
    pub fn netns_mounts(&self) -> Vec<String> {
        list_names(&self.path("state/io.containerd.grpc.v1.cri/netns"), |_| {
            true
        })
    }

    /// Pod processes still running in this instance's cgroups.
    pub fn pod_processes(&self) -> Vec<i32> {
        let pids: BTreeSet<i32> = cgroup_dirs(&self.cgroup_parent)
            .iter()
            .flat_map(|dir| pids_under(dir))
            .collect();
        pids.into_iter().collect()
    }

    /// The sockets of this instance's shims in /run/containerd/s (each task's bundle names
    /// its shim's address): a shim killed rather than shut down leaves its socket.
    fn shim_sockets(&self) -> Vec<PathBuf> {
        let tasks = self.path("state/io.containerd.runtime.v2.task");
        let bundles = std::fs::read_dir(tasks)
            .into_iter()
            .flatten()
            .flatten()
            .flat_map(|ns| std::fs::read_dir(ns.path()).into_iter().flatten().flatten());
        bundles
            .filter_map(|bundle| std::fs::read_to_string(bundle.path().join("address")).ok())
            .filter_map(|a| a.trim().strip_prefix("unix://").map(PathBuf::from))
            .filter(|p| p.starts_with("/run/containerd/s/"))
            .collect()
    }

    /// Everything that is not containerd's own state: stops every pod through CRI (so
    /// router's DEL runs), then containerd; kills shims and runc containers left, unmounts,
    /// removes cgroups and this instance's cache entries.
    fn teardown(&mut self) {
        if self.client.is_some() {
            if let Ok(ids) = self.sandboxes() {
                for id in ids {
                    let _ = self.stop_and_remove(&id);
                }
            }
        }
        self.stop_process();
        let shim_sockets = self.shim_sockets();
        for pid in self.shims() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        let runc_root = self.path("runc").join(K8S_NS);
        for id in list_names(&runc_root, |_| true) {
            let root = runc_root.display().to_string();
            let _ = Command::new("runc")
                .args(["--root", &root, "delete", "--force", &id])
                .stderr(Stdio::null())
                .status();
        }
        for pid in self.pod_processes() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        for socket in shim_sockets {
            let _ = std::fs::remove_file(socket);
        }
        self.unmount_all();
        remove_cgroups(&self.cgroup_parent);
        for entry in self.cache_entries() {
            let _ = std::fs::remove_file(entry);
        }
        for (dir, existed) in &self.made_outside {
            if !existed {
                let _ = std::fs::remove_dir(dir);
            }
        }
    }

    /// containerd-shim processes serving this instance (their `-address` is its socket).
    pub fn shims(&self) -> Vec<i32> {
        let socket = self.socket().display().to_string();
        let mut pids = Vec::new();
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
                continue;
            };
            let args: Vec<String> = cmdline
                .split(|b| *b == 0)
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            let shim = args.first().is_some_and(|a| a.contains("containerd-shim"));
            if shim && args.contains(&socket) {
                pids.push(pid);
            }
        }
        pids
    }

    /// Mounts under the scratch directory (rootfs, shm, netns), deepest first, detached.
    fn unmount_all(&self) {
        let prefix = format!("{}/", self.scratch.0.display());
        loop {
            let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
            let mut points: Vec<&str> = mountinfo
                .lines()
                .filter_map(|l| l.split(' ').nth(4))
                .filter(|p| p.starts_with(&prefix))
                .collect();
            if points.is_empty() {
                return;
            }
            points.sort_by_key(|p| std::cmp::Reverse(p.len()));
            let mut any = false;
            for point in points {
                any |= Command::new("umount")
                    .args(["-l", point])
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success());
            }
            if !any {
                return;
            }
        }
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        self.teardown();
        // Then the fields: the scratch dir (TempDir), the node's netns (Node).
    }
}

/// What PodSandboxStatus says of a pod.
#[derive(Debug, Clone)]
pub struct SandboxStatus {
    pub ready: bool,
    pub eth0: String,
    pub netns: PathBuf,
}

async fn timed<T>(
    call: impl std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
) -> Result<T, String> {
    match tokio::time::timeout(CALL_TIMEOUT, call).await {
        Ok(Ok(response)) => Ok(response.into_inner()),
        Ok(Err(status)) => Err(status.message().to_string()),
        Err(_) => Err(format!("no answer in {} s", CALL_TIMEOUT.as_secs())),
    }
}

async fn run_pod(
    mut client: RuntimeServiceClient<Channel>,
    config: PodSandboxConfig,
) -> Result<String, String> {
    if !config.log_directory.is_empty() {
        let _ = std::fs::create_dir_all(&config.log_directory);
    }
    let request = RunPodSandboxRequest {
        config: Some(config),
        runtime_handler: String::new(),
    };
    timed(client.run_pod_sandbox(request))
        .await
        .map(|r| r.pod_sandbox_id)
}

/// A client on the socket once CRI's Status says the runtime and the network are ready.
async fn connect_ready(socket: PathBuf) -> Result<RuntimeServiceClient<Channel>, String> {
    let channel = Endpoint::try_from("http://[::]:50051")
        .map_err(|e| e.to_string())?
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let socket = socket.clone();
            async move {
                let stream = tokio::net::UnixStream::connect(socket).await?;
                Ok::<_, std::io::Error>(TokioIo::new(stream))
            }
        }))
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let mut client = RuntimeServiceClient::new(channel);
    let status = timed(client.status(StatusRequest { verbose: false })).await?;
    let conditions = status.status.map(|s| s.conditions).unwrap_or_default();
    let not_ready: Vec<String> = conditions
        .iter()
        .filter(|c| !c.status)
        .map(|c| format!("{}: {} {}", c.r#type, c.reason, c.message))
        .collect();
    if conditions.is_empty() || !not_ready.is_empty() {
        return Err(format!("not ready: {}", not_ready.join("; ")));
    }
    Ok(client)
}

/// containerd's config: version 2, everything under `s`. The CRI plugin: the sandbox image
/// built here; `restrict_oom_score_adj` (a machine may refuse lowering oom_score_adj);
/// AppArmor off (no profile to load in a netns-only sandbox); pod netns mounts under the
/// state dir (not /run/netns); layers in `snapshotter`; runc through the runc v2 shim with
/// its root in `s` and cgroupfs (`SystemdCgroup = false`: no systemd on the node). Plugins
/// that would write outside `s` (the /opt plugin) or need what a CI machine lacks are
/// disabled.
fn config_toml(s: &str, max_conf_num: u32, snapshotter: &str) -> String {
    format!(
        r#"version = 2
root = "{s}/root"
state = "{s}/state"
disabled_plugins = [
  "io.containerd.internal.v1.opt",
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.zfs",
  "io.containerd.tracing.processor.v1.otlp",
  "io.containerd.internal.v1.tracing",
]

[grpc]
  address = "{s}/containerd.sock"

[plugins]
  [plugins."io.containerd.grpc.v1.cri"]
    sandbox_image = "{SANDBOX_IMAGE}"
    restrict_oom_score_adj = true
    disable_apparmor = true
    enable_selinux = false
    netns_mounts_under_state_dir = true
    stream_server_address = "127.0.0.1"
    [plugins."io.containerd.grpc.v1.cri".cni]
      bin_dir = "{s}/cni-bin"
      conf_dir = "{s}/net.d"
      max_conf_num = {max_conf_num}
    [plugins."io.containerd.grpc.v1.cri".containerd]
      snapshotter = "{snapshotter}"
      default_runtime_name = "runc"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
        runtime_type = "io.containerd.runc.v2"
        [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
          BinaryName = "/usr/sbin/runc"
          Root = "{s}/runc"
          SystemdCgroup = false
"#
    )
}

/// containerd's snapshotter: overlayfs when the scratch dir's file system takes an overlay
/// mount (not so on every CI machine: an overlay root refuses overlay upper dirs), else
/// native (copies, works anywhere).
fn snapshotter(scratch: &Path) -> &'static str {
    let probe = scratch.join("overlay-probe");
    let [lower, upper, work, merged] = ["lower", "upper", "work", "merged"].map(|d| probe.join(d));
    for dir in [&lower, &upper, &work, &merged] {
        std::fs::create_dir_all(dir).unwrap();
    }
    let options = format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.display(),
        upper.display(),
        work.display()
    );
    let mounted = Command::new("mount")
        .args(["-t", "overlay", "overlay", "-o", &options])
        .arg(&merged)
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if mounted {
        let _ = Command::new("umount").arg(&merged).status();
    }
    let _ = std::fs::remove_dir_all(&probe);
    if mounted {
        "overlayfs"
    } else {
        "native"
    }
}

fn conflist(name: &str, plugins: &[serde_json::Value]) -> String {
    serde_json::json!({ "cniVersion": "1.0.0", "name": name, "plugins": plugins }).to_string()
}

/// eth0: Debian's ptp + host-local, as Calico's veth would be.
fn ptp_plugin(s: &str) -> serde_json::Value {
    serde_json::json!({
        "type": "ptp",
        "ipMasq": false,
        "ipam": {
            "type": "host-local",
            "dataDir": format!("{s}/host-local"),
            "ranges": [[{ "subnet": "10.244.0.0/24" }]],
            "routes": [{ "dst": "0.0.0.0/0" }]
        }
    })
}

/// The underlay: macvlan on the node's uplink up0 + host-local in its segment.
fn macvlan_plugin(s: &str) -> serde_json::Value {
    serde_json::json!({
        "type": "macvlan",
        "master": "up0",
        "mode": "bridge",
        "ipam": {
            "type": "host-local",
            "dataDir": format!("{s}/host-local"),
            "ranges": [[{
                "subnet": "192.168.50.0/24",
                "rangeStart": "192.168.50.100",
                "rangeEnd": "192.168.50.199",
                "gateway": "192.168.50.254"
            }]],
            "routes": [{ "dst": "0.0.0.0/0" }]
        }
    })
}

fn router_plugin(data_dir: &Path, log_file: &Path) -> serde_json::Value {
    serde_json::json!({
        "type": "router",
        "overlay_hijack_subnet": ["10.244.0.0/16"],
        "service_hijack_subnet": ["10.96.0.0/12"],
        "rp_filter": { "set_host": true, "value": 0 },
        "data_dir": data_dir,
        "log_options": { "log_level": "debug", "log_file": log_file }
    })
}

fn list_names(dir: &Path, keep: impl Fn(&str) -> bool) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| keep(n))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// `parent` in every mounted cgroup hierarchy (v1 controllers and the unified one).
fn cgroup_dirs(parent: &str) -> Vec<PathBuf> {
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    mounts
        .lines()
        .filter(|l| {
            let fstype = l.split(' ').nth(2).unwrap_or_default();
            fstype == "cgroup" || fstype == "cgroup2"
        })
        .filter_map(|l| l.split(' ').nth(1))
        .map(|root| Path::new(root).join(parent.trim_start_matches('/')))
        .filter(|dir| dir.is_dir())
        .collect()
}

/// The pids in `dir` and every cgroup below it.
fn pids_under(dir: &Path) -> Vec<i32> {
    let mut pids: Vec<i32> = std::fs::read_to_string(dir.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    for sub in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if sub.path().is_dir() {
            pids.extend(pids_under(&sub.path()));
        }
    }
    pids
}

/// Removes `parent`'s cgroups, children first.
fn remove_cgroups(parent: &str) {
    fn remove(dir: &Path) {
        for sub in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            if sub.path().is_dir() {
                remove(&sub.path());
            }
        }
        let _ = std::fs::remove_dir(dir);
    }
    for dir in cgroup_dirs(parent) {
        remove(&dir);
    }
}

fn require_tools() {
    for (tool, arg) in [
        ("containerd", "--version"),
        ("ctr", "--version"),
        ("runc", "--version"),
        ("/bin/busybox", "true"),
        ("nsenter", "--version"),
        ("ping", "-V"),
    ] {
        let found = Command::new(tool)
            .arg(arg)
            .output()
            .is_ok_and(|o| o.status.success());
        assert!(
            found,
            "{tool} is missing: install Debian's containerd, runc, busybox-static, \
             util-linux and iputils-ping (.ci/run does)"
        );
    }
}
