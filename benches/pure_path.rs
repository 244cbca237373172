//! The pure path of one ADD (parse + compile + plan + render) on a calico-like dual-stack
//! pod with N routes already in the pod's main table (all P's, so all copied into T) and N
//! hijack CIDRs (capped at 1,000 as the performance target states them).
//! Two groups: the whole pure path, and compile + plan alone (the performance target).
//! `cargo bench --bench pure_path`; never a timed test in CI.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use router::compile::{compile, CompileInput};
use router::config::{parse_netconf, AllowedDirs, Config, PrevView};
use router::model::{ActualState, Mode, Route, MAIN_TABLE};
use router::plan::{plan, Plan};
use router::render::{render_text, NetnsLabels};
use serde_json::{json, Value};

const SNAPSHOT: &str = include_str!("../fixtures/add-seed-dual-stack/snapshot.json");
const PREV: &str = include_str!("../fixtures/add-seed-dual-stack/prev-result.json");
const MAX_CIDRS: usize = 1_000;

fn config_with_cidrs(n: usize) -> Value {
    let cidrs: Vec<String> = (0..n.min(MAX_CIDRS))
        .map(|i| format!("10.{}.{}.0/24", (i / 256) % 256, i % 256))
        .collect();
    json!({
        "cniVersion": "1.0.0",
        "name": "macvlan-overlay",
        "type": "router",
        "overlay_hijack_subnet": ["10.240.0.0/12", "fd00:10:244::/96"],
        "service_hijack_subnet": ["172.96.0.0/18"],
        "additional_hijack_subnet": cidrs,
        "mac_prefix": "0a:0b"
    })
}

fn world_with_routes(n: usize) -> ActualState {
    let mut world: ActualState = serde_json::from_str(SNAPSHOT).expect("fixture snapshot");
    if let Some(pod) = world.pod.as_mut() {
        for i in 0..n {
            let dst = format!("198.18.{}.{}/32", (i / 256) % 256, i % 256);
            pod.insert_route(Route::link(
                MAIN_TABLE,
                dst.parse().expect("prefix"),
                "eth0",
                3,
            ));
        }
    }
    world
}

/// compile + plan: the reconciler's pure core.
fn compile_plan(config: &Config, prev: &PrevView, world: &ActualState) -> Plan {
    let compiled = compile(&CompileInput {
        config,
        container_id: "bench",
        ifname: "net1",
        prev: Some(prev),
        actual: world,
        record: None,
        peers: &[],
        mode: Mode::Add,
    })
    .expect("compile");
    plan(&compiled.desired, world, Mode::Add)
}

/// parse + compile + plan + render, as one ADD does before it touches the kernel.
fn pure_path(config: &Value, prev: &Value, world: &ActualState) -> usize {
    let conf = parse_netconf(config, &AllowedDirs::default()).expect("config");
    let view = PrevView::parse(prev).expect("prevResult");
    let plan = compile_plan(&conf.config, &view, world);
    let labels = NetnsLabels {
        pod: "pod".into(),
        host: "host".into(),
    };
    render_text(&plan, &labels, false).len()
}

fn bench(c: &mut Criterion) {
    let prev: Value = serde_json::from_str(PREV).expect("fixture prevResult");
    let mut group = c.benchmark_group("parse_compile_plan_render");
    for n in [10, 1_000, 10_000] {
        let config = config_with_cidrs(n);
        let world = world_with_routes(n);
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| pure_path(&config, &prev, &world))
        });
    }
    group.finish();
    let view = PrevView::parse(&prev).expect("fixture prevResult");
    let mut group = c.benchmark_group("compile_plan");
    for n in [10, 1_000, 10_000] {
        let config = parse_netconf(&config_with_cidrs(n), &AllowedDirs::default())
            .expect("config")
            .config;
        let world = world_with_routes(n);
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| compile_plan(&config, &view, &world).ops.len())
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
