//! Golden fixtures: every folder of `fixtures/` is a case (config, prevResult, snapshot,
//! optional record, `case.json`) whose `router plan` output must equal the expected text
//! and JSON beside it. A case may derive its snapshot (and record) from another case's ADD
//! applied by the model kernel, then tampered with; the derived files are checked too.
//! `ROUTER_REGEN_FIXTURES=1 cargo test --test fixtures` rewrites the expected files on purpose.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use router::config::{parse_netconf, plugin_from_conflist_or_plugin, AllowedDirs, PrevView};
use router::model::{ActualState, Mode, NetnsState, Op};
use router::reconcile::{prepare, Attachment};
use router::record::MemRecords;
use router::testkit::ModelKernel;
use serde::Deserialize;
use serde_json::Value;

#[derive(Deserialize)]
struct Case {
    ifname: String,
    #[serde(default)]
    del: bool,
    #[serde(default)]
    derive: Option<Derive>,
}

/// snapshot.json = the ADD of case `from` applied to its snapshot, `merge` added, then the
/// `tamper` ops applied; with `record`, record.json = that ADD's record.
#[derive(Deserialize)]
struct Derive {
    from: String,
    #[serde(default)]
    merge: Option<ActualState>,
    #[serde(default)]
    tamper: Vec<Op>,
    #[serde(default)]
    record: bool,
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

fn regen() -> bool {
    std::env::var_os("ROUTER_REGEN_FIXTURES").is_some()
}

fn read_json(path: &Path) -> Value {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Compares `actual` with the golden file, or writes it when regenerating.
fn golden(path: &Path, actual: &str) {
    if regen() {
        fs::write(path, actual).unwrap();
        return;
    }
    let expected = fs::read_to_string(path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (regenerate with ROUTER_REGEN_FIXTURES=1)",
            path.display()
        )
    });
    if expected != actual {
        let diff = similar::TextDiff::from_lines(expected.as_str(), actual)
            .unified_diff()
            .header("expected", "actual")
            .to_string();
        panic!("{} differs:\n{diff}", path.display());
    }
}

fn merge(into: &mut NetnsState, from: NetnsState) {
    into.links.extend(from.links);
    into.macs.extend(from.macs);
    into.routes.extend(from.routes);
    into.rules.extend(from.rules);
    into.neighbours.extend(from.neighbours);
    into.sysctls.extend(from.sysctls);
}

/// Derives a case's snapshot and record from another case's ADD.
fn derive(dir: &Path, how: &Derive) {
    let base = fixtures().join(&how.from);
    let case: Case = serde_json::from_value(read_json(&base.join("case.json"))).unwrap();
    let config = parse_netconf(
        &plugin_from_conflist_or_plugin(read_json(&base.join("config.json"))).unwrap(),
        &AllowedDirs::default(),
    )
    .unwrap()
    .config;
    let prev = PrevView::parse(&read_json(&base.join("prev-result.json"))).unwrap();
    let kernel =
        ModelKernel::new(serde_json::from_value(read_json(&base.join("snapshot.json"))).unwrap());
    let att = Attachment {
        container_id: "offline".into(),
        ifname: case.ifname,
        netns: None,
    };
    let prepared = prepare(
        Mode::Add,
        &config,
        &att,
        Some(&prev),
        &kernel,
        &MemRecords::default(),
    )
    .unwrap();
    let mut state = prepared.actual.clone();
    state.apply(&prepared.plan.ops);
    if let Some(extra) = how.merge.clone() {
        if let (Some(pod), Some(extra_pod)) = (state.pod.as_mut(), extra.pod) {
            merge(pod, extra_pod);
        }
        merge(&mut state.host, extra.host);
        state.host_preferred_src.extend(extra.host_preferred_src);
    }
    state.apply(&how.tamper);
    golden(&dir.join("snapshot.json"), &pretty(&state));
    if how.record {
        golden(
            &dir.join("record.json"),
            &pretty(&prepared.compiled.record()),
        );
    }
}

fn pretty<T: serde::Serialize>(value: &T) -> String {
    format!("{}\n", serde_json::to_string_pretty(value).unwrap())
}

/// Runs the real binary, as an operator would.
fn router_plan(dir: &Path, case: &Case, output: &str) -> (String, i32) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_router"));
    cmd.current_dir(dir)
        .args([
            "plan",
            "--config",
            "config.json",
            "--snapshot",
            "snapshot.json",
        ])
        .args(["--ifname", &case.ifname, "--output", output]);
    if dir.join("prev-result.json").exists() {
        cmd.args(["--prev-result", "prev-result.json"]);
    }
    if dir.join("record.json").exists() {
        cmd.args(["--record", "record.json"]);
    }
    if case.del {
        cmd.arg("--del");
    }
    let out = cmd.env_remove("CNI_COMMAND").output().unwrap();
    assert!(
        out.stderr.is_empty(),
        "{}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    (
        String::from_utf8(out.stdout).unwrap(),
        out.status.code().unwrap_or(-1),
    )
}

fn run_case(dir: &Path) {
    let case: Case = serde_json::from_value(read_json(&dir.join("case.json"))).unwrap();
    if let Some(how) = &case.derive {
        derive(dir, how);
    }
    let (text, code) = router_plan(dir, &case, "text");
    golden(&dir.join("expected-plan.txt"), &text);
    let (json, json_code) = router_plan(dir, &case, "json");
    golden(&dir.join("expected-plan.json"), &json);
    let parsed: Value = serde_json::from_str(&json).unwrap();
    let pending = parsed["pending"].as_u64().unwrap() + parsed["blocked_count"].as_u64().unwrap();
    assert_eq!(code, json_code);
    assert_eq!(
        code,
        if pending == 0 { 0 } else { 2 },
        "{}: exit code",
        dir.display()
    );
}

/// The folders of `fixtures/` that are not golden cases: the hostile-input corpus that
/// tests/hostile_input.rs runs, and the podman configs of tests/podman_kernel.rs.
const NOT_CASES: [&str; 2] = ["bad-input", "podman"];

/// Every other folder of `fixtures/` is a case: a folder without `case.json` (a
/// typo, a case half-written) fails here instead of being skipped in silence.
fn case_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = fs::read_dir(fixtures())
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir() && !NOT_CASES.iter().any(|other| p.ends_with(other)))
        .collect();
    for dir in &dirs {
        assert!(
            dir.join("case.json").is_file(),
            "{}: a fixture folder without case.json",
            dir.display()
        );
    }
    dirs.sort();
    dirs
}

#[test]
fn every_fixture_plans_as_its_golden_files_say() {
    let dirs = case_dirs();
    assert!(dirs.len() >= 12, "only {} fixture cases", dirs.len());
    for dir in dirs {
        run_case(&dir);
    }
}

fn expected(name: &str) -> String {
    fs::read_to_string(fixtures().join(name).join("expected-plan.txt")).unwrap()
}

#[test]
fn a_pod_where_add_already_ran_has_nothing_to_do() {
    assert_eq!(expected("add-already-ran"), "nothing to do\n");
    assert_eq!(expected("add-already-ran-with-record"), "nothing to do\n");
}

#[test]
fn the_drifted_pod_lists_exactly_the_repairs() {
    let text = expected("add-drifted");
    for repair in [
        "+ ip rule add from all to 10.240.0.0/12 lookup 100 pref 1000 proto 176",
        "~ sysctl -w net.ipv4.conf.all.rp_filter=0  # was 1",
        "~ ip link set dev net1 address 0a:0b:c0:a8:32:0a  # was da:5e:d2:d6:b7:6d",
        "+ ip route add 192.168.50.10 dev veth2df2119e table 500 scope link proto 176",
        "+ ip neigh replace 192.168.50.1 lladdr a6:03:c3:8d:c9:f4 dev eth0 nud permanent proto 176",
    ] {
        assert!(text.contains(repair), "missing {repair:?} in\n{text}");
    }
    assert!(text.ends_with("5 ops pending\n"), "{text}");
}

#[test]
fn del_with_and_without_prev_result_remove_the_same_objects() {
    let with = expected("del-with-prev-result");
    let without = expected("del-without-prev-result");
    let lines = |t: &str| {
        t.lines()
            .filter(|l| l.trim_start().starts_with(['-', '+', '~']))
            .filter(|l| !l.contains("link set") && !l.contains("sysctl"))
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    assert_eq!(lines(&with), lines(&without));
    assert!(
        with.contains("~ ip route replace default via 10.244.1.1 dev eth0 proto boot"),
        "{with}"
    );
}

#[test]
fn a_second_attachment_never_removes_what_the_first_one_owns() {
    let text = expected("add-net2-second-macvlan");
    assert!(
        !text.contains("192.168.50.10 dev veth2df2119e table 500"),
        "{text}"
    );
    assert!(!text.contains("- ip neigh del"), "{text}");
    assert!(!text.contains("lookup 100"), "{text}");
}
