//! Fuzzing of the input path: stdin and the CNI_* variables through `cni::run` (decode,
//! config and prevResult parsing, the version gates, the reconciler behind them) in process,
//! over the in-memory model kernel and records. cargo-fuzz needs a nightly toolchain, which
//! this project does not build on (stable only), so the generators are proptest's:
//! arbitrary JSON, a valid config with keys set to other values or removed, byte-level
//! mutations of a valid config, and arbitrary variables. Each case must end in a result or a
//! CNI error with a known code and a bounded message; a failed ADD or any CHECK changes
//! neither the kernel nor the records; nothing panics. CI runs 2,000 cases;
//! `ROUTER_FUZZ_CASES=N` runs N (a crash found becomes a file in `fixtures/bad-input/`).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};

use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::{Config as RunnerConfig, TestRunner};
use router::cni::{run, Backends, Invocation, Output, VALID_ATTACHMENTS_KEY};
use router::config::Config;
use router::conflict::NoConflicts;
use router::error::Result;
use router::execute::ModelKernel;
use router::model::{ActualState, Record};
use router::record::{MemRecords, RecordStore};
use serde_json::{json, Value};

const SNAPSHOT: &str = include_str!("../fixtures/add-seed-dual-stack/snapshot.json");
const PREV: &str = include_str!("../fixtures/add-seed-dual-stack/prev-result.json");
/// Every code the plugin answers with (CNI's 1-11 and 50, its own from 100).
const KNOWN_CODES: [u64; 13] = [1, 3, 4, 5, 6, 7, 11, 50, 100, 101, 102, 103, 104];
/// Input errors echo input only as an excerpt.
const MAX_INPUT_ERROR_MSG: usize = 2048;

fn base_state() -> &'static ActualState {
    static STATE: OnceLock<ActualState> = OnceLock::new();
    STATE.get_or_init(|| serde_json::from_str(SNAPSHOT).expect("fixture snapshot"))
}

/// A valid input for every command: ADD's prevResult, GC's list (ignored by the others).
fn valid_config() -> Value {
    let prev: Value = serde_json::from_str(PREV).expect("fixture prevResult");
    json!({
        "cniVersion": "1.1.0",
        "name": "macvlan-overlay",
        "type": "router",
        "overlay_hijack_subnet": ["10.240.0.0/12", "fd00:10:244::/96"],
        "service_hijack_subnet": ["172.96.0.0/18", "2001:4860:fd00::/108"],
        "additional_hijack_subnet": ["10.50.0.0/16"],
        "rp_filter": {"set_host": true, "value": 0},
        "mac_prefix": "0a:0b",
        "ip_conflict": {"enabled": true, "interval": "100ms", "retries": 2},
        "log_options": {"log_level": "debug"},
        "prevResult": prev,
        VALID_ATTACHMENTS_KEY: [{"containerID": "c1", "ifname": "net1"}]
    })
}

fn valid_env(command: &str) -> BTreeMap<String, String> {
    [
        ("CNI_COMMAND", command),
        ("CNI_CONTAINERID", "c1"),
        ("CNI_NETNS", "/var/run/netns/pod-1"),
        ("CNI_IFNAME", "net1"),
        ("CNI_PATH", "/opt/cni/bin"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// What one case did, for the property and the figures.
struct Outcome {
    output: Output,
    changed_kernel: bool,
    changed_records: bool,
}

/// One plugin run over a fresh model kernel; no file, netns or log is touched.
fn invoke(env: &BTreeMap<String, String>, stdin: &[u8]) -> Outcome {
    let kernel = Arc::new(ModelKernel::new(base_state().clone()));
    let records = Arc::new(MemRecords::default());
    let (k, r) = (kernel.clone(), records.clone());
    let factory = move |_: &Config, _: &Invocation| -> Result<Backends> {
        Ok(Backends {
            snapshots: Box::new(k.clone()),
            executor: Box::new(k.clone()),
            records: Box::new(r.clone()),
            host: Box::new(r.clone()),
            probe: Box::new(NoConflicts),
            attachment_lock: None,
        })
    };
    let lookup = |name: &str| env.get(name).cloned();
    let output = run(&lookup, &mut &stdin[..], &factory);
    let saved: Vec<Record> = records.all().expect("records");
    Outcome {
        output,
        changed_kernel: kernel.state() != *base_state(),
        changed_records: !saved.is_empty(),
    }
}

/// The codes seen, per generator, printed at the end.
type Tally = Mutex<BTreeMap<String, usize>>;

/// The property every case must keep.
fn check(env: &BTreeMap<String, String>, stdin: &[u8], tally: &Tally) {
    let outcome = invoke(env, stdin);
    let out = &outcome.output;
    let command = env.get("CNI_COMMAND").map(String::as_str).unwrap_or("");
    let show = || {
        format!(
            "{command} stdin {:?}\n-> {} {}",
            String::from_utf8_lossy(&stdin[..stdin.len().min(600)]),
            out.exit_code,
            out.stdout
        )
    };
    let key = match out.exit_code {
        0 => {
            if !out.stdout.is_empty() {
                let body: Value = serde_json::from_str(&out.stdout)
                    .unwrap_or_else(|e| panic!("success output is not JSON ({e}): {}", show()));
                assert!(body.is_object(), "{}", show());
            }
            format!("{command} ok")
        }
        1 => {
            let body: Value = serde_json::from_str(&out.stdout)
                .unwrap_or_else(|e| panic!("error output is not JSON ({e}): {}", show()));
            let code = body["code"].as_u64().unwrap_or(0);
            assert!(KNOWN_CODES.contains(&code), "unknown code: {}", show());
            assert!(body["cniVersion"].is_string(), "{}", show());
            let msg = body["msg"].as_str().unwrap_or_default();
            assert!(!msg.is_empty(), "no message: {}", show());
            if [1, 4, 6, 7].contains(&code) {
                assert!(
                    msg.len() < MAX_INPUT_ERROR_MSG,
                    "a {}-byte message: {}",
                    msg.len(),
                    show()
                );
            }
            if matches!(command, "ADD" | "CHECK") {
                assert!(
                    !outcome.changed_kernel && !outcome.changed_records,
                    "a failed {command} changed the kernel or the records: {}",
                    show()
                );
            }
            format!("code {code}")
        }
        other => panic!("exit code {other}: {}", show()),
    };
    if command == "CHECK" {
        assert!(
            !outcome.changed_kernel,
            "CHECK changed the kernel: {}",
            show()
        );
    }
    *tally.lock().unwrap().entry(key).or_default() += 1;
}

/// Cases in all; CI's bounded default, more on request.
fn total_cases() -> u32 {
    std::env::var("ROUTER_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000)
}

fn runner(share: u32) -> TestRunner {
    TestRunner::new(RunnerConfig {
        cases: (total_cases() * share / 100).max(1),
        failure_persistence: None,
        ..RunnerConfig::default()
    })
}

const KEYS: [&str; 22] = [
    "cniVersion",
    "name",
    "type",
    "overlay_hijack_subnet",
    "service_hijack_subnet",
    "additional_hijack_subnet",
    "migrate_route",
    "overlay_interface",
    "host_rule_table",
    "route_table",
    "rule_priority",
    "host_rule_priority",
    "skip_call",
    "sriov",
    "rp_filter",
    "mac_prefix",
    "only_op_mac",
    "ip_conflict",
    "log_options",
    "data_dir",
    "prevResult",
    VALID_ATTACHMENTS_KEY,
];

/// Values that sit on the edges of what the parser checks.
fn interesting() -> impl Strategy<Value = Value> {
    select(vec![
        json!("1.1.0"),
        json!("1.0.0"),
        json!("0.3.1"),
        json!("0.4.0"),
        json!("2.0.0"),
        json!(""),
        json!("10.0.0.0/8"),
        json!("10.0.0.1/8"),
        json!("fd00::/64"),
        json!("192.168.50.10/24"),
        json!("192.168.50.10"),
        json!("::/0"),
        json!("0.0.0.0/0"),
        json!(["10.240.0.0/12"]),
        json!(["10.240.0.0/12", "10.240.0.0/12"]),
        json!([]),
        json!("eth0"),
        json!("net1"),
        json!("net10"),
        json!(".."),
        json!("a/b"),
        json!("\u{0}"),
        json!("0a:0b"),
        json!("01:00"),
        json!("ff:ff"),
        json!("1s"),
        json!("0s"),
        json!("10s"),
        json!("11s"),
        json!("1.5ms"),
        json!("1h2m3s"),
        json!("99999999999999999999h"),
        json!(-1),
        json!(0),
        json!(1),
        json!(2),
        json!(3),
        json!(100),
        json!(253),
        json!(254),
        json!(255),
        json!(500),
        json!(32765),
        json!(32766),
        json!(4294967295u64),
        json!(4294967296u64),
        json!(i64::MAX),
        json!(u64::MAX),
        json!(i64::MIN),
        json!(1.5),
        json!(1e300),
        json!(true),
        json!(false),
        json!(null),
        json!({}),
        json!({"enabled": true}),
        json!({"set_host": false, "value": 1}),
        json!({"log_level": "TRACE", "log_max_size": 1}),
        json!("/run/cni/x"),
        json!("/tmp/../etc"),
        json!([{"containerID": "c1"}]),
        json!([{"containerID": "c2", "ifname": "net1"}]),
        json!({"interfaces": [], "ips": []}),
        json!({"interfaces": [{"name": "net1", "sandbox": "/x"}], "ips": [{"address": "192.168.50.10/24", "interface": 0}]}),
        json!({"ips": [{"address": "192.168.50.10/24"}]}),
        json!([{"address": "10.0.0.1/24", "interface": 7}]),
    ])
}

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("JSON has no NaN or infinity", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        "\\PC{0,16}".prop_map(Value::String),
        interesting(),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![select(KEYS.to_vec()).prop_map(String::from), "\\PC{0,8}"],
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn command() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => select(vec!["ADD", "DEL", "CHECK", "VERSION", "GC", "STATUS"]).prop_map(String::from),
        1 => "\\PC{0,8}",
    ]
}

/// Where a mutation of the valid config lands (JSON pointers).
const POINTERS: [&str; 36] = [
    "/cniVersion",
    "/name",
    "/overlay_hijack_subnet",
    "/overlay_hijack_subnet/0",
    "/service_hijack_subnet",
    "/service_hijack_subnet/1",
    "/additional_hijack_subnet",
    "/additional_hijack_subnet/0",
    "/migrate_route",
    "/overlay_interface",
    "/host_rule_table",
    "/route_table",
    "/rule_priority",
    "/host_rule_priority",
    "/skip_call",
    "/sriov",
    "/rp_filter",
    "/rp_filter/value",
    "/rp_filter/set_host",
    "/mac_prefix",
    "/only_op_mac",
    "/ip_conflict",
    "/ip_conflict/interval",
    "/ip_conflict/retries",
    "/log_options/log_level",
    "/data_dir",
    "/prevResult",
    "/prevResult/ips",
    "/prevResult/ips/0",
    "/prevResult/ips/0/address",
    "/prevResult/ips/0/interface",
    "/prevResult/ips/1/gateway",
    "/prevResult/interfaces",
    "/prevResult/interfaces/0/name",
    "/prevResult/interfaces/0/sandbox",
    "/cni.dev~1valid-attachments",
];

/// Sets (or, with None, removes) the value at `pointer`, when its parent exists.
fn mutate(doc: &mut Value, pointer: &str, value: Option<Value>) {
    let (parent, last) = pointer.rsplit_once('/').unwrap_or(("", pointer));
    let last = last.replace("~1", "/").replace("~0", "~");
    let Some(parent) = doc.pointer_mut(parent) else {
        return;
    };
    match (parent, value) {
        (Value::Object(map), Some(v)) => {
            map.insert(last, v);
        }
        (Value::Object(map), None) => {
            map.remove(&last);
        }
        (Value::Array(items), Some(v)) => {
            if let Some(slot) = last.parse::<usize>().ok().and_then(|i| items.get_mut(i)) {
                *slot = v;
            }
        }
        (Value::Array(items), None) => {
            if let Ok(i) = last.parse::<usize>() {
                if i < items.len() {
                    items.remove(i);
                }
            }
        }
        _ => {}
    }
}

#[test]
fn arbitrary_json_on_stdin_never_panics_and_always_answers_in_cni_terms() {
    let tally = Tally::default();
    runner(25)
        .run(&(command(), arb_json()), |(command, stdin)| {
            check(&valid_env(&command), stdin.to_string().as_bytes(), &tally);
            Ok(())
        })
        .unwrap();
    println!("fuzz arbitrary JSON: {:?}", tally.lock().unwrap());
}

#[test]
fn mutated_valid_configs_never_panic_and_failed_adds_change_nothing() {
    let tally = Tally::default();
    let mutation = (
        select(POINTERS.to_vec()),
        proptest::option::weighted(0.85, prop_oneof![interesting(), arb_json()]),
    );
    let strategy = (command(), prop::collection::vec(mutation, 1..4));
    runner(40)
        .run(&strategy, |(command, mutations)| {
            let mut conf = valid_config();
            for (pointer, value) in mutations {
                mutate(&mut conf, pointer, value);
            }
            check(&valid_env(&command), conf.to_string().as_bytes(), &tally);
            Ok(())
        })
        .unwrap();
    println!("fuzz mutated configs: {:?}", tally.lock().unwrap());
}

/// A byte-level change of the serialised config: truncation, a changed, inserted or
/// deleted byte run.
#[derive(Clone, Debug)]
enum ByteEdit {
    Truncate(usize),
    Set(usize, u8),
    Insert(usize, Vec<u8>),
    Delete(usize, usize),
}

fn apply_edit(bytes: &mut Vec<u8>, edit: &ByteEdit) {
    let at = |i: usize, len: usize| if len == 0 { 0 } else { i % (len + 1) };
    match edit {
        ByteEdit::Truncate(i) => bytes.truncate(at(*i, bytes.len())),
        ByteEdit::Set(i, b) => {
            if !bytes.is_empty() {
                let i = i % bytes.len();
                bytes[i] = *b;
            }
        }
        ByteEdit::Insert(i, more) => {
            let i = at(*i, bytes.len());
            bytes.splice(i..i, more.iter().copied());
        }
        ByteEdit::Delete(i, n) => {
            let i = at(*i, bytes.len());
            let end = (i + n).min(bytes.len());
            bytes.drain(i..end);
        }
    }
}

fn byte_edit() -> impl Strategy<Value = ByteEdit> {
    prop_oneof![
        any::<usize>().prop_map(ByteEdit::Truncate),
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| ByteEdit::Set(i, b)),
        (
            any::<usize>(),
            prop_oneof![
                prop::collection::vec(any::<u8>(), 1..8),
                select(vec![
                    b"{".to_vec(),
                    b"}".to_vec(),
                    b"[".to_vec(),
                    b"\"".to_vec(),
                    b"\\".to_vec(),
                    b",".to_vec(),
                    b"\xff".to_vec(),
                    b"\\u0000".to_vec(),
                    b"\\ud800".to_vec(),
                ]),
            ]
        )
            .prop_map(|(i, b)| ByteEdit::Insert(i, b)),
        (any::<usize>(), 1usize..16).prop_map(|(i, n)| ByteEdit::Delete(i, n)),
    ]
}

#[test]
fn byte_mutations_of_a_valid_config_never_panic() {
    let tally = Tally::default();
    let strategy = (command(), prop::collection::vec(byte_edit(), 1..4));
    runner(20)
        .run(&strategy, |(command, edits)| {
            let mut bytes = valid_config().to_string().into_bytes();
            for edit in &edits {
                apply_edit(&mut bytes, edit);
            }
            check(&valid_env(&command), &bytes, &tally);
            Ok(())
        })
        .unwrap();
    println!("fuzz byte mutations: {:?}", tally.lock().unwrap());
}

/// Arbitrary CNI_* values (absent, empty, path tricks, NUL, long) with a valid stdin.
#[test]
fn arbitrary_variables_never_panic() {
    let tally = Tally::default();
    let value = || {
        proptest::option::weighted(
            0.9,
            prop_oneof![
                select(vec![
                    "c1",
                    "net1",
                    "",
                    "..",
                    ".",
                    "a/b",
                    "../x",
                    "a\0b",
                    "/run/netns/x",
                    "relative",
                    "net1234567890123",
                    "ADD",
                    "GC",
                    " net1",
                ])
                .prop_map(String::from),
                "\\PC{0,40}",
                "[a-z0-9./-]{0,300}",
            ],
        )
    };
    let strategy = (command(), value(), value(), value());
    runner(15)
        .run(&strategy, |(command, id, netns, ifname)| {
            let mut env = valid_env(&command);
            for (var, v) in [
                ("CNI_CONTAINERID", id),
                ("CNI_NETNS", netns),
                ("CNI_IFNAME", ifname),
            ] {
                match v {
                    Some(v) => env.insert(var.to_string(), v),
                    None => env.remove(var),
                };
            }
            check(&env, valid_config().to_string().as_bytes(), &tally);
            Ok(())
        })
        .unwrap();
    println!("fuzz variables: {:?}", tally.lock().unwrap());
}
