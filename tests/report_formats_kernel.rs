//! `router check --output junit|prometheus` on a real node (pods attached by the real chain,
//! a libcni result cache, the binary run in the test's "host" netns), read by the tools
//! operators use: JUnit XML by Python's junitparser, the Prometheus text format by
//! Debian's `promtool check metrics`. What they read is checked against the JSON report of
//! the same node state, on a clean, a drifted and a repaired node.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use common::cni::*;
use common::operator::*;
use common::unique;
use serde_json::{json, Value};

/// Reads a JUnit file with junitparser and prints what it understood as JSON.
const JUNIT_READER: &str = r#"
import json, sys
from datetime import datetime
from junitparser import JUnitXml
xml = JUnitXml.fromfile(sys.argv[1])
suites = []
for suite in xml:
    cases = []
    for case in suite:
        cases.append({
            "name": case.name, "classname": case.classname, "time": case.time,
            "results": [{"kind": r._tag, "type": r.type, "message": r.message, "text": r.text}
                        for r in case.result],
            "system_out": case.system_out,
        })
    age = (datetime.utcnow() - datetime.fromisoformat(suite.timestamp)).total_seconds()
    suites.append({
        "name": suite.name, "tests": suite.tests, "failures": suite.failures,
        "errors": suite.errors, "skipped": suite.skipped, "time": suite.time,
        "hostname": suite.hostname, "timestamp_age": age, "cases": cases,
    })
print(json.dumps({"tests": xml.tests, "failures": xml.failures, "errors": xml.errors,
                  "skipped": xml.skipped, "suites": suites}))
"#;

fn junitparser(file: &Path) -> Value {
    let out = Command::new("python3")
        .args(["-c", JUNIT_READER])
        .arg(file)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "junitparser cannot read {}: {}\n{}",
        file.display(),
        String::from_utf8_lossy(&out.stderr),
        fs::read_to_string(file).unwrap_or_default()
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// `promtool check metrics` on a file: it must pass with nothing to say.
fn promtool_accepts(file: &Path) {
    let text = fs::read(file).unwrap();
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool runs (Debian's prometheus package)");
    child.stdin.take().unwrap().write_all(&text).unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "promtool: {said}\n{}",
        String::from_utf8_lossy(&text)
    );
}

/// A node with pod A (net1 clean, eth0 without router) and pod B (net1), both cached.
struct Site {
    node: Node,
    a: Pod,
    b: Pod,
    b_net1: Network,
    a_net1: Network,
    cache: Cache,
    out: TempDir,
    _a_eth0: Network,
}

fn site(tag: &str) -> Site {
    let node = Node::new(tag);
    let (a, a_eth0, a_net1) = attached_pod(&node, &format!("{tag}a"), 1);
    let (b, _b_eth0, b_net1) = attached_pod(&node, &format!("{tag}b"), 2);
    let cache = Cache::new(&format!("{tag}c"));
    cache.write(&a_net1, &a.id, Some(&a.netns.path()));
    cache.write(&a_eth0, &a.id, Some(&a.netns.path()));
    cache.write(&b_net1, &b.id, Some(&b.netns.path()));
    Site {
        node,
        a,
        b,
        b_net1,
        a_net1,
        cache,
        out: TempDir::new(&format!("{tag}o")),
        _a_eth0: a_eth0,
    }
}

impl Site {
    fn check_all(&self, extra: &[&str]) -> Run {
        let mut args = vec!["check", "--all", "--cache-dir", self.cache.path()];
        args.extend_from_slice(extra);
        router(&self.node, &args)
    }

    /// `check --all --output FORMAT --write FILE`: nothing printed, the file written.
    fn written(&self, format: &str, file: &str, extra: &[&str]) -> (i32, std::path::PathBuf) {
        let path = self.out.join(file);
        let mut args = vec!["--output", format, "--write", path.to_str().unwrap()];
        args.extend_from_slice(extra);
        let run = self.check_all(&args);
        assert_eq!(run.stdout, "", "--write prints nothing: {}", run.stderr);
        assert!([0, 1, 2].contains(&run.code), "{}", run.stderr);
        let mode = fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o644, "collectors read it as another user");
        (run.code, path)
    }

    /// A cache entry of net1 whose netns is gone, and one whose router config is invalid.
    fn add_gone_and_broken_entries(&self) -> (String, String) {
        let gone_id = format!("ctr-{}", unique("gone"));
        let gone_netns = Path::new("/run/netns").join(unique("gone"));
        self.cache.write(&self.a_net1, &gone_id, Some(&gone_netns));
        let mut conflist = self.a_net1.conflist.clone();
        for plugin in conflist["plugins"].as_array_mut().unwrap() {
            if plugin["type"] == "router" {
                plugin["rp_filter"]["value"] = json!("strict");
            }
        }
        let broken = Network {
            conflist,
            ifname: "net1".into(),
            cached: self.a_net1.cached.clone(),
        };
        let broken_id = format!("ctr-{}", unique("bad"));
        self.cache
            .write(&broken, &broken_id, Some(&self.a.netns.path()));
        (gone_id, broken_id)
    }
}

/// A drift as the text output prints it.
fn drift_line(d: &Value) -> String {
    format!(
        "{} netns: {}: expected {}, actual {}",
        d["netns"].as_str().unwrap(),
        d["object"].as_str().unwrap(),
        d["expected"].as_str().unwrap(),
        d["actual"].as_str().unwrap()
    )
}

fn drift_lines(a: &Value) -> Vec<String> {
    a["drifts"]
        .as_array()
        .unwrap()
        .iter()
        .map(drift_line)
        .collect()
}

fn attachments(doc: &Value) -> &Vec<Value> {
    doc["attachments"].as_array().unwrap()
}

/// The testcase name of a JSON attachment: `<container id>/<ifname>`, else its file.
fn case_name(a: &Value) -> String {
    match a["container_id"].as_str().unwrap() {
        "" => a["cache_entry"].as_str().unwrap().to_string(),
        id => format!("{id}/{}", a["ifname"].as_str().unwrap()),
    }
}

fn case<'a>(suite: &'a Value, name: &str) -> &'a Value {
    suite["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no testcase {name}: {suite}"))
}

fn hostname() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_string()
}

/// Every testcase says what the JSON says of its attachment.
fn assert_junit_matches_json(junit: &Value, doc: &Value) {
    let summary = &doc["summary"];
    let gone_or_skipped = summary["gone"].as_u64().unwrap() + summary["skipped"].as_u64().unwrap();
    let suites = junit["suites"].as_array().unwrap();
    assert_eq!(suites.len(), 1, "one testsuite per run");
    let suite = &suites[0];
    for (counts, what) in [(junit, "testsuites"), (suite, "testsuite")] {
        assert_eq!(counts["tests"], summary["attachments"], "{what}");
        assert_eq!(counts["failures"], summary["drift"], "{what}");
        assert_eq!(counts["errors"], summary["error"], "{what}");
        assert_eq!(counts["skipped"], json!(gone_or_skipped), "{what}");
    }
    assert_eq!(suite["hostname"], json!(hostname()));
    let age = suite["timestamp_age"].as_f64().unwrap();
    assert!((-5.0..600.0).contains(&age), "timestamp {age} s ago");
    let cases_time: f64 = suite["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["time"].as_f64().unwrap())
        .sum();
    assert!(
        suite["time"].as_f64().unwrap() + 0.01 >= cases_time,
        "{suite}"
    );

    for a in attachments(doc) {
        let c = case(suite, &case_name(a));
        assert_eq!(c["classname"], a["network"], "{c}");
        let results = c["results"].as_array().unwrap();
        match a["status"].as_str().unwrap() {
            "clean" | "repaired" => assert_eq!(results.len(), 0, "{c}"),
            "drift" => {
                assert_eq!(results.len(), 1, "{c}");
                let failure = &results[0];
                assert_eq!(failure["kind"], "failure");
                assert_eq!(failure["type"], "drift");
                let drifts = drift_lines(a);
                let message = failure["message"].as_str().unwrap();
                assert!(
                    message.ends_with(&format!("{} drifts", drifts.len())),
                    "{message}"
                );
                assert_eq!(failure["text"], json!(drifts.join("\n")));
                assert!(c["time"].as_f64().unwrap() > 0.0, "a check takes time: {c}");
            }
            "error" => {
                assert_eq!(results[0]["kind"], "error", "{c}");
                assert_eq!(results[0]["message"], a["message"]);
                assert_eq!(
                    results[0]["type"],
                    json!(format!("CNI error code {}", a["error_code"]))
                );
            }
            "gone" | "skipped" => {
                assert_eq!(results[0]["kind"], "skipped", "{c}");
                assert_eq!(results[0]["message"], a["message"]);
            }
            other => panic!("status {other}"),
        }
    }
}

#[test]
fn junit_read_by_junitparser_says_what_the_json_says_then_a_repair_passes() {
    let s = site("rjun");
    let (gone_id, broken_id) = s.add_gone_and_broken_entries();
    tamper(&s.node, &s.b, 2);

    let json_run = s.check_all(&["--output", "json"]);
    assert_eq!(json_run.code, 1, "{}", json_run.stderr);
    let doc = json_run.json();
    assert_eq!(
        doc["summary"],
        json!({"attachments": 5, "clean": 1, "drift": 1, "repaired": 0, "gone": 1, "stale": 0,
               "skipped": 1, "error": 1})
    );
    let printed = s.check_all(&["--output", "junit"]);
    assert_eq!(printed.code, 1, "the exit code stays: {}", printed.stderr);
    let (code, file) = s.written("junit", "check.xml", &[]);
    assert_eq!(code, 1);
    // The same document, printed or written (times aside).
    let written = fs::read_to_string(&file).unwrap();
    assert_eq!(written.lines().count(), printed.stdout.lines().count());
    let junit = junitparser(&file);
    assert_junit_matches_json(&junit, &doc);
    let suite = &junit["suites"][0];
    assert!(
        case(suite, &format!("{gone_id}/net1"))["results"][0]["message"]
            .as_str()
            .unwrap()
            .contains("gone")
    );
    assert_eq!(
        case(suite, &format!("{broken_id}/net1"))["results"][0]["type"],
        "CNI error code 7"
    );

    // One attachment named on the command line: a suite of one testcase.
    let one = s.out.join("one.xml");
    let named = router(
        &s.node,
        &[
            "check",
            "--cache-dir",
            s.cache.path(),
            "--container-id",
            &s.b.id,
            "--ifname",
            "net1",
            "--output",
            "junit",
            "--write",
            one.to_str().unwrap(),
        ],
    );
    assert_eq!(named.code, 2, "{}", named.stderr);
    let junit = junitparser(&one);
    assert_eq!(
        (&junit["tests"], &junit["failures"], &junit["errors"]),
        (&json!(1), &json!(1), &json!(0))
    );
    assert_eq!(
        junit["suites"][0]["cases"][0]["name"],
        json!(format!("{}/net1", s.b.id))
    );

    // --repair: B passes, its system-out lists the drift found and the ops applied.
    let (code, repaired) = s.written("junit", "repair.xml", &["--repair"]);
    assert_eq!(code, 1, "the broken entry is still an error");
    let junit = junitparser(&repaired);
    let suite = &junit["suites"][0];
    assert_eq!(suite["failures"], 0);
    let b = case(suite, &format!("{}/net1", s.b.id));
    assert_eq!(b["results"], json!([]), "{b}");
    let before = attachments(&doc)
        .iter()
        .find(|a| a["container_id"] == json!(s.b.id))
        .unwrap();
    let out = b["system_out"].as_str().unwrap();
    let lines: Vec<&str> = out.lines().collect();
    let found = drift_lines(before);
    assert_eq!(lines[..found.len()], found[..], "{out}");
    assert_eq!(
        lines[found.len()..]
            .iter()
            .filter(|l| l.starts_with("applied: "))
            .count(),
        3,
        "{out}"
    );
    let chain = s.b_net1.check(&s.node, &s.b);
    assert!(chain.ok, "the chain's CHECK after repair: {}", chain.stdout);
}

/// The samples of a Prometheus text file: `name{labels}` -> value.
fn samples(file: &Path) -> BTreeMap<String, f64> {
    fs::read_to_string(file)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').unwrap();
            (series.to_string(), value.parse().unwrap())
        })
        .collect()
}

fn drift_series(a: &Value, netns: &str) -> String {
    format!(
        "router_attachment_drifts{{container_id=\"{}\",ifname=\"{}\",network=\"{}\",netns=\"{netns}\"}}",
        a["container_id"].as_str().unwrap(),
        a["ifname"].as_str().unwrap(),
        a["network"].as_str().unwrap()
    )
}

/// The metrics agree with the JSON of the same node state: a count per status, the drift
/// per checked attachment and side, the exit code; the run is timed and stamped now.
fn assert_metrics_match_json(metrics: &BTreeMap<String, f64>, doc: &Value) {
    for status in ["clean", "drift", "repaired", "gone", "skipped", "error"] {
        assert_eq!(
            metrics[&format!("router_attachments{{status=\"{status}\"}}")],
            doc["summary"][status].as_f64().unwrap(),
            "{status}"
        );
    }
    for a in attachments(doc) {
        let status = a["status"].as_str().unwrap();
        for netns in ["pod", "host"] {
            let series = drift_series(a, netns);
            // Drift left: what was found, none once repaired; none known when unchecked.
            let left = match status {
                "clean" | "repaired" => 0,
                "drift" => a["drifts"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|d| d["netns"] == netns)
                    .count(),
                _ => {
                    assert!(!metrics.contains_key(&series), "{series}");
                    continue;
                }
            };
            assert_eq!(metrics[&series], left as f64, "{series}");
        }
    }
    assert_eq!(
        metrics["router_check_exit_code"],
        doc["exit_code"].as_f64().unwrap()
    );
    assert!(metrics["router_check_duration_seconds"] > 0.0);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let stamp = metrics["router_check_timestamp_seconds"];
    assert!(stamp <= now && now - stamp < 600.0, "{stamp} vs {now}");
}

#[test]
fn prometheus_passes_promtool_on_a_clean_a_drifted_and_a_repaired_node() {
    let s = site("rprom");
    let prom = |extra: &[&str]| {
        let (code, file) = s.written("prometheus", "router.prom", extra);
        promtool_accepts(&file);
        let names: Vec<String> = fs::read_dir(&s.out.0)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["router.prom"], "no temporary file is left");
        (code, samples(&file))
    };
    let json_now = || s.check_all(&["--output", "json"]).json();

    let (code, clean) = prom(&[]);
    assert_eq!(code, 0);
    let doc = json_now();
    assert_metrics_match_json(&clean, &doc);
    assert_eq!(clean["router_attachments{status=\"clean\"}"], 2.0);
    assert_eq!(clean["router_repair_ops_applied"], 0.0);

    tamper(&s.node, &s.b, 2);
    let (code, drifted) = prom(&[]);
    assert_eq!(code, 2);
    let doc = json_now();
    assert_metrics_match_json(&drifted, &doc);
    let b = attachments(&doc)
        .iter()
        .find(|a| a["container_id"] == json!(s.b.id))
        .unwrap();
    // The pod lost a rule and an rp_filter, the node a route.
    assert_eq!(drifted[&drift_series(b, "pod")], 2.0);
    assert_eq!(drifted[&drift_series(b, "host")], 1.0);

    let (code, repaired) = prom(&["--repair"]);
    assert_eq!(code, 0);
    assert_eq!(repaired["router_attachments{status=\"repaired\"}"], 1.0);
    assert_eq!(repaired["router_attachments{status=\"drift\"}"], 0.0);
    assert_eq!(repaired[&drift_series(b, "pod")], 0.0);
    assert_eq!(repaired[&drift_series(b, "host")], 0.0);
    assert_eq!(repaired["router_repair_ops_applied"], 3.0);
    assert_eq!(repaired["router_check_exit_code"], 0.0);
    let after = json_now();
    assert_eq!(after["summary"]["clean"], 2);
    assert_metrics_match_json(&prom(&[]).1, &after);
}
