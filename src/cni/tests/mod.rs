//! The protocol end to end, in process, over the in-memory model kernel: the harness and
//! helpers every topic file shares; the tests are in the files named below.

mod conflict;
mod gc_status;
mod input;
mod lifecycle;
mod overlay;
mod salvage;

use super::*;
use crate::conflict::{Conflict, Target};
use crate::error::Code;
use crate::execute::ModelKernel;
use crate::model::{ActualState, ROUTER_PROTOCOL};
use crate::record::MemRecords;
use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const SNAPSHOT: &str = include_str!("../../../fixtures/add-seed-dual-stack/snapshot.json");
const PREV: &str = include_str!("../../../fixtures/add-seed-dual-stack/prev-result.json");

struct Harness {
    kernel: Arc<ModelKernel>,
    records: Arc<MemRecords>,
    probe: Arc<ScriptedProbe>,
}

/// One `detect` call as the probe saw it, with what the kernel and data_dir held then.
#[derive(Clone, Debug)]
struct Detect {
    netns: PathBuf,
    ifname: String,
    mac: MacAddr,
    addrs: Vec<IpAddr>,
    interval: Duration,
    retries: u32,
    kernel: ActualState,
    record_saved: bool,
}

/// C's segment, scripted: answers `detect` with `conflict`, records every call.
struct ScriptedProbe {
    kernel: Arc<ModelKernel>,
    records: Arc<MemRecords>,
    conflict: Mutex<Option<Conflict>>,
    detects: Mutex<Vec<Detect>>,
}

impl AddressProbe for ScriptedProbe {
    fn detect(
        &self,
        target: &Target<'_>,
        interval: Duration,
        retries: u32,
    ) -> Result<Option<Conflict>> {
        self.detects.lock().unwrap().push(Detect {
            netns: target.pod_netns.to_path_buf(),
            ifname: target.ifname.to_string(),
            mac: target.mac,
            addrs: target.addrs.to_vec(),
            interval,
            retries,
            kernel: self.kernel.state(),
            record_saved: self.records.load("c1", target.ifname).unwrap().is_some(),
        });
        Ok(*self.conflict.lock().unwrap())
    }
}

impl Harness {
    fn new() -> Harness {
        let state: ActualState = serde_json::from_str(SNAPSHOT).unwrap();
        let kernel = Arc::new(ModelKernel::new(state));
        let records = Arc::new(MemRecords::default());
        let probe = Arc::new(ScriptedProbe {
            kernel: kernel.clone(),
            records: records.clone(),
            conflict: Mutex::new(None),
            detects: Mutex::new(Vec::new()),
        });
        Harness {
            kernel,
            records,
            probe,
        }
    }

    fn detects(&self) -> Vec<Detect> {
        self.probe.detects.lock().unwrap().clone()
    }

    fn invoke(&self, env: &[(&str, &str)], stdin: &[u8]) -> Output {
        let vars: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let lookup = |name: &str| vars.get(name).cloned();
        let kernel = self.kernel.clone();
        let records = self.records.clone();
        let probe = self.probe.clone();
        let factory = move |_: &Config, _: &Invocation| -> Result<Backends> {
            Ok(Backends {
                snapshots: Box::new(kernel.clone()),
                executor: Box::new(kernel.clone()),
                records: Box::new(records.clone()),
                host: Box::new(records.clone()),
                probe: Box::new(probe.clone()),
                attachment_lock: None,
            })
        };
        run(&lookup, &mut &stdin[..], &factory)
    }

    fn command(&self, command: &str, stdin: &Value) -> Output {
        self.invoke(&pod_env(command), stdin.to_string().as_bytes())
    }
}

fn pod_env(command: &str) -> Vec<(&str, &str)> {
    vec![
        ("CNI_COMMAND", command),
        ("CNI_CONTAINERID", "c1"),
        ("CNI_NETNS", "/var/run/netns/pod-1"),
        ("CNI_IFNAME", "net1"),
        ("CNI_PATH", "/opt/cni/bin"),
    ]
}

fn netconf(version: &str, with_prev: bool) -> Value {
    let mut conf = json!({
        "cniVersion": version,
        "name": "macvlan-overlay",
        "type": "router",
        "overlay_hijack_subnet": ["10.240.0.0/12", "fd00:10:244::/96"],
        "service_hijack_subnet": ["172.96.0.0/18", "2001:4860:fd00::/108"],
        "rp_filter": {"set_host": true, "value": 0},
        "mac_prefix": "0a:0b"
    });
    if with_prev {
        let mut prev: Value = serde_json::from_str(PREV).unwrap();
        prev["x-unknown-field"] = json!({"kept": true});
        conf["prevResult"] = prev;
    }
    conf
}

fn body(out: &Output) -> Value {
    serde_json::from_str(&out.stdout).unwrap_or(Value::Null)
}

fn assert_error(out: &Output, code: Code, text: &str) {
    assert_eq!(out.exit_code, 1, "{}", out.stdout);
    let b = body(out);
    assert_eq!(b["code"], code.number(), "{}", out.stdout);
    assert!(
        b["msg"].as_str().unwrap_or("").contains(text),
        "{}",
        out.stdout
    );
}

fn gc_env() -> Vec<(&'static str, &'static str)> {
    vec![("CNI_COMMAND", "GC"), ("CNI_PATH", "/opt/cni/bin")]
}

fn gc_input(valid: Value) -> Value {
    let mut conf = netconf("1.1.0", false);
    conf[VALID_ATTACHMENTS_KEY] = valid;
    conf
}

fn saved_records(h: &Harness) -> Vec<(String, String)> {
    let mut ids: Vec<(String, String)> = h
        .records
        .all()
        .unwrap()
        .into_iter()
        .map(|r| (r.container_id, r.ifname))
        .collect();
    ids.sort();
    ids
}

fn ids(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(c, i)| (c.to_string(), i.to_string()))
        .collect()
}
