//! `router agent` on a real kernel: a node made of throwaway netns (the "host" netns plays
//! the node), pods attached by the real chain (ptp as eth0, macvlan + static + router as
//! net1), and the agent started by the test as a child process of the built binary inside
//! the node netns, with the node's own data_dir and result cache. Every test kills its
//! agent and removes its namespaces and directories on any exit (Drop guards); the
//! machine's own netns is never touched.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::cni::*;
use common::operator::*;
use router::netns::run_in_netns;

/// The agent's endpoint inside the node netns (a fresh netns: the port is free).
const AGENT_PORT: u16 = 9641;

/// A running agent; killed (and waited for) when dropped.
struct Agent {
    child: Child,
    log: PathBuf,
    host: PathBuf,
    port: u16,
}

impl Agent {
    fn start(node: &Node, cache: &Cache, extra: &[&str]) -> Agent {
        Agent::start_on(node, cache, AGENT_PORT, extra)
    }

    fn start_on(node: &Node, cache: &Cache, port: u16, extra: &[&str]) -> Agent {
        let log = node.dir.join(&format!("agent-{port}.log"));
        let stderr = std::fs::File::create(&log).unwrap();
        let data_dir = node.dir.join("router");
        let listen = format!("127.0.0.1:{port}");
        let child = Command::new("ip")
            .args(["netns", "exec", &node.host.name])
            .arg(router_bin())
            .args(["agent", "--cache-dir", cache.path(), "--data-dir"])
            .arg(&data_dir)
            .args(["--listen", &listen, "--log-level", "debug"])
            .args(extra)
            .env_remove("CNI_COMMAND")
            .envs([allowed_dirs_env()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap();
        let agent = Agent {
            child,
            log,
            host: node.host.path(),
            port,
        };
        agent.wait_ready();
        agent
    }

    /// One GET on the agent's endpoint from inside the node netns: (status, body).
    fn get(&self, path: &str) -> Option<(u16, String)> {
        http_get(&self.host, self.port, path)
    }

    fn pid(&self) -> nix::unistd::Pid {
        nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).unwrap())
    }

    fn wait_ready(&self) {
        let ready = wait_for(Duration::from_secs(20), || {
            self.get("/readyz").is_some_and(|(status, _)| status == 200)
        });
        assert!(ready, "the agent never became ready:\n{}", self.log());
    }

    fn metrics(&self) -> String {
        let (status, body) = self.get("/metrics").expect("the agent answers /metrics");
        assert_eq!(status, 200);
        body
    }

    /// The value of one sample of /metrics (0 when absent).
    fn metric(&self, sample: &str) -> f64 {
        sample_value(&self.metrics(), sample)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The JSON log lines whose message is `message`.
    fn lines(&self, message: &str) -> Vec<serde_json::Value> {
        self.log()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|l| l["fields"]["message"] == message)
            .collect()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One GET to 127.0.0.1:`port` from inside the netns at `netns`: (status, body).
fn http_get(netns: &std::path::Path, port: u16, path: &str) -> Option<(u16, String)> {
    let path = path.to_string();
    run_in_netns(netns, move || {
        let answer = (|| -> std::io::Result<String> {
            let mut stream = TcpStream::connect(("127.0.0.1", port))?;
            stream.set_read_timeout(Some(Duration::from_secs(5)))?;
            write!(
                stream,
                "GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
            )?;
            let mut text = String::new();
            stream.read_to_string(&mut text)?;
            Ok(text)
        })();
        Ok(answer.ok())
    })
    .unwrap()
    .and_then(|text| {
        let status = text.split_whitespace().nth(1)?.parse().ok()?;
        let body = text.split_once("\r\n\r\n")?.1.to_string();
        Some((status, body))
    })
}

fn sample_value(metrics: &str, sample: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            (name == sample).then(|| value.parse().ok())?
        })
        .unwrap_or(0.0)
}

/// Polls `done` until it holds or `limit` passes; whether it held.
fn wait_for(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if done() {
            return true;
        }
        if start.elapsed() > limit {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// How long a test waits for a repair before it fails: far above what a repair takes, so
/// a slow CI machine does not fail a test that proves a repair, not a speed.
const REPAIR_WAIT: Duration = Duration::from_secs(10);

/// A node with `count` pods attached and cached.
struct Cluster {
    pods: Vec<(Pod, Network, Network)>,
    cache: Cache,
    node: Node,
}

fn cluster(tag: &str, count: u8) -> Cluster {
    let node = Node::new(tag);
    let cache = Cache::new(&format!("{tag}c"));
    let pods = (1..=count)
        .map(|i| {
            let (pod, overlay, net1) = attached_pod(&node, &format!("{tag}{i}"), i);
            cache.write(&net1, &pod.id, Some(&pod.netns.path()));
            (pod, overlay, net1)
        })
        .collect();
    Cluster { pods, cache, node }
}

/// A node with `count` pods whose net1 is IPv4 only: the macvlan plugin waits for IPv6
/// duplicate address detection on every ADD (about 2 s), which many cycles cannot afford.
fn cluster_v4(tag: &str, count: u8) -> Cluster {
    let node = Node::new(tag);
    let cache = Cache::new(&format!("{tag}c"));
    let pods = (1..=count)
        .map(|i| {
            let pod = Pod::new(&format!("{tag}{i}"));
            let mut overlay = overlay_network(&node, i, &[4, 6]);
            assert!(overlay.add(&node, &pod).ok);
            let mut net1 = macvlan_network(&node, "net1", i, &[4], serde_json::json!({}));
            let out = net1.add(&node, &pod);
            assert!(out.ok, "net1 ADD: {} {}", out.stdout, out.stderr);
            cache.write(&net1, &pod.id, Some(&pod.netns.path()));
            (pod, overlay, net1)
        })
        .collect();
    Cluster { pods, cache, node }
}

/// The sum of every sample of a metric family (all label sets).
fn total(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

/// How many repair lines name this pod's net1 and an object of this kind.
fn repair_lines(agent: &Agent, container: &str, kind: &str) -> usize {
    agent
        .lines("repaired")
        .iter()
        .filter(|l| {
            l["fields"]["container"] == container
                && l["fields"]["ifname"] == "net1"
                && l["fields"]["object"]
                    .as_str()
                    .is_some_and(|o| o.starts_with(kind))
        })
        .count()
}

fn repairs(agent: &Agent) -> f64 {
    total(&agent.metrics(), "router_agent_repairs_total")
}

/// A state's lines in order: rules of one priority re-added by a repair come after the
/// others in a listing, and their order among equals does not change what they do.
fn sorted(state: &str) -> Vec<&str> {
    let mut lines: Vec<&str> = state.lines().filter(|l| !l.trim().is_empty()).collect();
    lines.sort_unstable();
    lines
}

/// Waits until `state()` is `expected` again, failing with the difference and the log.
fn wait_back(agent: &Agent, what: &str, expected: &str, state: impl Fn() -> String) {
    let back = wait_for(REPAIR_WAIT, || sorted(&state()) == sorted(expected));
    assert!(
        back,
        "{what}: not repaired\nexpected:\n{expected}\nnow:\n{}\nagent log:\n{}",
        state(),
        agent.log()
    );
}

#[test]
fn a_deleted_pod_rule_route_in_the_pod_table_and_permanent_neighbour_are_put_back() {
    let c = cluster("apod", 1);
    let pod = &c.pods[0].0;
    let agent = Agent::start(&c.node, &c.cache, &[]);
    let clean = pod_state(pod);
    let damage: [(&str, &[&str]); 3] = [
        (
            "rule",
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
        ),
        (
            "route in table 100",
            &["route", "del", NODE_V4, "dev", "eth0", "table", "100"],
        ),
        ("neighbour", &["neigh", "del", NODE_V4, "dev", "eth0"]),
    ];
    for (what, command) in damage {
        let object = what.split_whitespace().next().unwrap_or(what);
        let repaired_before = repair_lines(&agent, &pod.id, object);
        // The agent may repair before a listing could show the damage: the proof is its
        // repair line for the object, and the pod as it was.
        pod.netns.ipx(command);
        wait_back(&agent, what, &clean, || pod_state(pod));
        assert!(
            wait_for(REPAIR_WAIT, || repair_lines(&agent, &pod.id, object)
                > repaired_before),
            "no repair line for the {what}:\n{}",
            agent.log()
        );
    }
    let lines = agent.lines("repaired");
    assert!(
        lines.iter().any(|l| l["fields"]["cause"]
            .as_str()
            .is_some_and(|c| c.contains("kernel event in the pod netns"))),
        "no repair was caused by a pod event: {lines:#?}"
    );
    assert!(repairs(&agent) >= 3.0);
}

#[test]
fn what_networkd_does_on_the_node_is_undone_for_every_pod() {
    let c = cluster("anetd", 2);
    let agent = Agent::start(&c.node, &c.cache, &[]);
    let clean = host_state(&c.node);
    // systemd-networkd removes the rules and routes it did not configure.
    c.node
        .host
        .ipx(&["rule", "del", "pref", "1000", "lookup", "500"]);
    c.node
        .host
        .ipx(&["-6", "rule", "del", "pref", "1000", "lookup", "500"]);
    c.node.host.ipx(&["route", "flush", "table", "500"]);
    c.node.host.ipx(&["-6", "route", "flush", "table", "500"]);
    wait_back(&agent, "host side", &clean, || host_state(&c.node));
    for (pod, _, _) in &c.pods {
        assert!(
            wait_for(REPAIR_WAIT, || repair_lines(&agent, &pod.id, "route") > 0),
            "{} was not repaired:\n{}",
            pod.id,
            agent.log()
        );
    }
}

#[test]
fn a_node_address_added_gets_its_route_in_every_pod_and_removed_loses_it() {
    let c = cluster("aaddr", 2);
    let agent = Agent::start(&c.node, &c.cache, &[]);
    let has_route = |pod: &Pod| {
        pod.netns
            .ipx(&["route", "show", "table", "main"])
            .lines()
            .any(|l| l.starts_with("192.168.60.1 dev eth0 proto 176"))
    };
    c.node
        .host
        .ipx(&["addr", "add", "192.168.60.1/24", "dev", "up0"]);
    for (pod, _, _) in &c.pods {
        assert!(
            wait_for(REPAIR_WAIT, || has_route(pod)),
            "{}: no host-address route to the new node address:\n{}\n{}",
            pod.id,
            pod_state(pod),
            agent.log()
        );
    }
    c.node
        .host
        .ipx(&["addr", "del", "192.168.60.1/24", "dev", "up0"]);
    for (pod, _, _) in &c.pods {
        assert!(
            wait_for(REPAIR_WAIT, || !has_route(pod)),
            "{}: the route to the removed node address stayed:\n{}",
            pod.id,
            pod_state(pod)
        );
    }
}

#[test]
fn the_pods_permanent_neighbour_follows_a_new_mac_of_the_host_veth() {
    let c = cluster("amac", 1);
    let pod = &c.pods[0].0;
    let agent = Agent::start(&c.node, &c.cache, &[]);
    let veth = host_veth(&c.node, &underlay_v4(1));
    let neighbour = |pod: &Pod| pod.netns.ipx(&["neigh", "show", NODE_V4, "dev", "eth0"]);
    let old = c.node.host.link_mac(&veth);
    assert!(neighbour(pod).contains(&old), "{}", neighbour(pod));
    // What udev's MACAddressPolicy does to a new veth after the plugins read it.
    let new = "02:aa:bb:cc:dd:01";
    c.node
        .host
        .ipx(&["link", "set", "dev", &veth, "address", new]);
    assert!(
        wait_for(REPAIR_WAIT, || neighbour(pod).contains(new)),
        "the neighbour kept the old MAC: {}\n{}",
        neighbour(pod),
        agent.log()
    );
}

#[test]
fn an_unowned_route_in_routers_place_is_reported_and_never_removed() {
    let c = cluster("ablk", 1);
    let pod = &c.pods[0].0;
    let agent = Agent::start(&c.node, &c.cache, &["--resync-interval", "500ms"]);
    let unowned = format!("{NODE_V4} via 10.244.1.1 dev eth0 table 100");
    pod.netns
        .ipx(&["route", "del", NODE_V4, "dev", "eth0", "table", "100"]);
    let mut add = vec!["route", "add"];
    add.extend(unowned.split_whitespace());
    pod.netns.ipx(&add);
    let reported = wait_for(REPAIR_WAIT, || {
        sample_value(
            &agent.metrics(),
            "router_agent_drifts_found_total{kind=\"route\",state=\"blocked\"}",
        ) >= 2.0
            && !agent
                .lines("an unowned object is in the way: reported, left alone")
                .is_empty()
    });
    assert!(reported, "not reported:\n{}", agent.log());
    // Reported again at each look (several resyncs by now), never touched.
    let table = pod.netns.table("-4", "100");
    assert!(
        table.lines().any(|l| l.trim_end() == unowned),
        "the unowned route was touched:\n{table}"
    );
    assert!(agent.metric("router_agent_attachments{state=\"error\"}") >= 1.0);
}

/// Waits until the agent listens in `pods` pod netns (its first reads are done).
fn wait_listening(agent: &Agent, pods: f64) {
    let listening = wait_for(REPAIR_WAIT, || {
        agent.metric("router_agent_subscriptions{netns=\"pod\"}") == pods
    });
    assert!(
        listening,
        "the agent does not listen in {pods} pods:\n{}",
        agent.log()
    );
}

/// The MACs the node's uplink filters for (a macvlan's while it exists).
fn uplink_macs(node: &Node) -> String {
    node.host.exec(&["bridge", "fdb", "show", "dev", "up0"])
}

#[test]
fn a_pod_netns_deleted_without_del_is_let_go_and_reported_gone() {
    let c = cluster("agone", 1);
    let pod = &c.pods[0].0;
    let agent = Agent::start(&c.node, &c.cache, &[]);
    wait_listening(&agent, 1.0);
    let mac = pod.netns.link_mac("net1");
    assert!(uplink_macs(&c.node).contains(&mac));
    // The runtime removes the netns without calling DEL. Only the agent's socket could
    // keep the netns, and with it the macvlan, alive now.
    common::run("ip", &["netns", "del", &pod.netns.name]);
    let freed = wait_for(REPAIR_WAIT, || !uplink_macs(&c.node).contains(&mac));
    assert!(
        freed,
        "the pod's macvlan is still on the node: its netns is held\n{}",
        agent.log()
    );
    let gone = wait_for(REPAIR_WAIT, || {
        agent.metric("router_agent_attachments{state=\"gone\"}") == 1.0
    });
    assert!(gone, "not reported gone:\n{}", agent.metrics());
    assert_eq!(
        agent.metric("router_agent_subscriptions{netns=\"pod\"}"),
        0.0
    );
    assert!(!agent
        .lines("the pod netns is gone: let go; its host side is left to DEL and GC")
        .is_empty());
    // What is left of it is DEL's and GC's: its record stays for them.
    let record = c
        .node
        .dir
        .join("router")
        .join(format!("{}-net1.json", pod.id));
    assert!(
        record.exists(),
        "the agent removed the record of a gone pod"
    );
}

/// What router owns anywhere on the node and in the pods: protocol 176 objects.
fn owned_anywhere(c: &Cluster) -> String {
    let mut found = String::new();
    let mut netns: Vec<&common::Netns> = vec![&c.node.host];
    netns.extend(c.pods.iter().map(|(pod, _, _)| &pod.netns));
    for ns in netns {
        for family in ["-4", "-6"] {
            for what in [
                vec!["rule", "show"],
                vec!["route", "show", "table", "all"],
                vec!["neigh", "show"],
            ] {
                let mut args = vec![family];
                args.extend(what);
                for line in ns.ipx(&args).lines() {
                    if line.contains("proto 176") {
                        found.push_str(&format!("{}: {line}\n", ns.name));
                    }
                }
            }
        }
    }
    found
}

/// ADD/DEL cycles of net1 on 4 pods with an agent running (resyncing every 500 ms): a DEL
/// is never undone, nothing is left after the last one, and the agent never repairs
/// anything (the plugin leaves every attachment right; a repair would be the agent acting
/// in the middle of a run).
#[test]
fn add_del_cycles_with_the_agent_running_recreate_nothing_and_leave_nothing() {
    const CYCLES: usize = 200;
    let mut c = cluster_v4("acyc", 4);
    let agent = Agent::start(&c.node, &c.cache, &["--resync-interval", "500ms"]);
    wait_listening(&agent, 4.0);
    let data_dir = c.node.dir.join("router");
    for cycle in 0..=CYCLES {
        for (pod, _, net1) in &c.pods {
            let out = net1.del(&c.node, pod);
            assert!(out.ok, "cycle {cycle}: DEL {}: {}", pod.id, out.stdout);
        }
        let left = owned_anywhere(&c);
        let pods_owned: Vec<&str> = left.lines().filter(|l| !l.contains("h: ")).collect();
        assert!(
            pods_owned.is_empty(),
            "cycle {cycle}: router's objects in the pods after DEL: {pods_owned:#?}\n{}",
            agent.log()
        );
        if cycle == CYCLES {
            break;
        }
        for (pod, _, net1) in &mut c.pods {
            let out = net1.add(&c.node, pod);
            assert!(out.ok, "cycle {cycle}: ADD {}: {}", pod.id, out.stdout);
        }
    }
    // Longer than a resync and a debounce: anything the agent would re-create, it has.
    std::thread::sleep(Duration::from_millis(1500));
    let left = owned_anywhere(&c);
    assert!(
        left.is_empty(),
        "left after the last DEL:\n{left}\n{}",
        agent.log()
    );
    let files: Vec<String> = std::fs::read_dir(&data_dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".json") || n.ends_with(".lock") && n != "host.lock")
        .collect();
    assert!(files.is_empty(), "left in data_dir: {files:?}");
    assert!(
        agent.lines("repaired").is_empty(),
        "the agent repaired during ADD/DEL cycles:\n{}",
        agent.log()
    );
    assert_eq!(
        agent.metric("router_agent_subscriptions{netns=\"pod\"}"),
        0.0
    );
}

/// The node and every pod as router shapes them, in order.
fn everything(c: &Cluster) -> Vec<String> {
    let mut all = vec![host_state(&c.node)];
    all.extend(c.pods.iter().map(|(pod, _, _)| pod_state(pod)));
    all.iter()
        .flat_map(|s| sorted(s))
        .map(String::from)
        .collect()
}

#[test]
fn an_agent_restarted_on_a_clean_node_changes_nothing_and_two_agents_converge() {
    let c = cluster("arst", 2);
    let first = Agent::start(&c.node, &c.cache, &[]);
    wait_listening(&first, 2.0);
    drop(first);
    let clean = everything(&c);
    let second = Agent::start(&c.node, &c.cache, &[]);
    wait_listening(&second, 2.0);
    assert_eq!(everything(&c), clean);
    assert_eq!(repairs(&second), 0.0, "{}", second.log());
    // A rolling update: the old and the new agent at once, then networkd's damage.
    let third = Agent::start_on(&c.node, &c.cache, AGENT_PORT + 1, &[]);
    wait_listening(&third, 2.0);
    c.node
        .host
        .ipx(&["rule", "del", "pref", "1000", "lookup", "500"]);
    c.node.host.ipx(&["route", "flush", "table", "500"]);
    let back = wait_for(REPAIR_WAIT, || everything(&c) == clean);
    assert!(back, "not converged:\n{}\n{}", second.log(), third.log());
    // Converged and still: no object flaps between the two.
    for _ in 0..10 {
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(everything(&c), clean);
    }
    assert!(repairs(&second) + repairs(&third) >= 1.0);
    for agent in [&second, &third] {
        assert!(
            agent.lines("attachment in error").is_empty(),
            "{}",
            agent.log()
        );
    }
}

#[test]
fn a_burst_of_5000_route_changes_overflows_the_pod_subscription_and_a_resync_puts_the_pod_right() {
    use nix::sys::signal::{kill, Signal};

    let c = cluster("aovf", 1);
    let pod = &c.pods[0].0;
    let agent = Agent::start(&c.node, &c.cache, &[]);
    wait_listening(&agent, 1.0);
    let clean = pod_state(pod);
    // 2,500 routes added and removed in a table router does not use, with router's rule
    // deleted among them, while the agent is stopped: more than its socket can queue.
    let mut batch = String::new();
    for i in 0..2500u32 {
        batch.push_str(&format!(
            "route add 10.99.{}.{}/32 dev eth0 table 777\n",
            i / 250,
            i % 250
        ));
        if i == 1000 {
            batch.push_str("rule del to 10.96.0.0/12 lookup 100 pref 1000\n");
        }
    }
    for i in 0..2500u32 {
        batch.push_str(&format!(
            "route del 10.99.{}.{}/32 dev eth0 table 777\n",
            i / 250,
            i % 250
        ));
    }
    let file = c.node.dir.join("burst.batch");
    std::fs::write(&file, batch).unwrap();
    kill(agent.pid(), Signal::SIGSTOP).unwrap();
    pod.netns.ipx(&["-batch", file.to_str().unwrap()]);
    kill(agent.pid(), Signal::SIGCONT).unwrap();
    let detected = wait_for(REPAIR_WAIT, || {
        agent.metric("router_agent_subscription_overflows_total{netns=\"pod\"}") >= 1.0
    });
    assert!(detected, "no overflow detected:\n{}", agent.log());
    wait_back(&agent, "pod after the burst", &clean, || pod_state(pod));
    assert_eq!(
        agent.metric("router_agent_subscriptions{netns=\"pod\"}"),
        1.0
    );
}

/// Prometheus started by a test in the node netns; killed when dropped.
struct Prometheus(Child);

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_real_prometheus_scraping_the_agent_shows_its_repairs() {
    // The node netns is the test's own: no other process listens on this port there.
    const PROMETHEUS_PORT: u16 = 19090;
    let c = cluster("aprom", 1);
    let pod = &c.pods[0].0;
    let agent = Agent::start(&c.node, &c.cache, &[]);
    wait_listening(&agent, 1.0);
    let config = c.node.dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: router-agent\n    static_configs:\n      \
             - targets: ['127.0.0.1:{AGENT_PORT}']\n"
        ),
    )
    .unwrap();
    let log = std::fs::File::create(c.node.dir.join("prometheus.log")).unwrap();
    let _prometheus = Prometheus(
        Command::new("ip")
            .args(["netns", "exec", &c.node.host.name, "/usr/bin/prometheus"])
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                c.node.dir.join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{PROMETHEUS_PORT}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("Debian's prometheus package provides /usr/bin/prometheus"),
    );
    let clean = pod_state(pod);
    delete_service_rule(pod);
    wait_back(&agent, "rule", &clean, || pod_state(pod));
    let query = "/api/v1/query?query=sum(router_agent_repairs_total)";
    let mut last = String::new();
    let seen = wait_for(Duration::from_secs(60), || {
        let Some((200, body)) = http_get(&c.node.host.path(), PROMETHEUS_PORT, query) else {
            return false;
        };
        last = body.clone();
        let doc: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        doc["data"]["result"][0]["value"][1]
            .as_str()
            .and_then(|v| v.parse::<f64>().ok())
            .is_some_and(|v| v >= 1.0)
    });
    let prometheus_log =
        std::fs::read_to_string(c.node.dir.join("prometheus.log")).unwrap_or_default();
    assert!(
        seen,
        "Prometheus never showed a repair: {last}\n{prometheus_log}"
    );
}

#[test]
fn report_only_finds_and_reports_drift_and_changes_nothing() {
    let c = cluster("arep", 1);
    let pod = &c.pods[0].0;
    let agent = Agent::start(&c.node, &c.cache, &["--report-only"]);
    wait_listening(&agent, 1.0);
    delete_service_rule(pod);
    let reported = wait_for(REPAIR_WAIT, || {
        agent.metric("router_agent_attachments{state=\"drift\"}") == 1.0
    });
    assert!(reported, "drift not reported:\n{}", agent.log());
    assert!(
        sample_value(
            &agent.metrics(),
            "router_agent_drifts_found_total{kind=\"rule\",state=\"missing\"}"
        ) >= 1.0
    );
    assert!(!agent.lines("drift found (report only)").is_empty());
    assert!(
        !pod.netns.ipx(&["rule"]).contains("10.96.0.0/12"),
        "changed"
    );
    assert_eq!(repairs(&agent), 0.0);
}

/// What a plugin run does to the agent: while ADD, CHECK or DEL holds the attachment's
/// lock (held here by the test, as the plugin holds it), the agent repairs nothing of that
/// attachment; once the run ends, it does.
#[test]
fn an_attachment_whose_plugin_run_holds_its_lock_is_repaired_only_after_the_run() {
    let c = cluster("alock", 1);
    let pod = &c.pods[0].0;
    let agent = Agent::start(&c.node, &c.cache, &[]);
    wait_listening(&agent, 1.0);
    let clean = pod_state(pod);
    let records = router::record::FileRecords::new(&c.node.dir.join("router"));
    let run = records
        .lock_attachment(&pod.id, "net1", false)
        .unwrap()
        .expect("the data_dir exists");
    delete_service_rule(pod);
    // The agent tries again and again while the run lasts; nothing changes meanwhile.
    let tried_at = Instant::now();
    while tried_at.elapsed() < Duration::from_millis(800) {
        assert!(
            !pod.netns.ipx(&["rule"]).contains("10.96.0.0/12"),
            "repaired during the run"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(run);
    wait_back(&agent, "rule after the run", &clean, || pod_state(pod));
}

/// An ADD while the agent runs: its record is picked up (the agent listens in the new pod)
/// and a DEL lets it go (the pod's socket closed), whether or not data_dir existed when the
/// agent started.
#[test]
fn a_pod_added_while_the_agent_runs_is_kept_and_forgotten_at_its_del() {
    let c = cluster("anew", 0);
    let agent = Agent::start(&c.node, &c.cache, &[]);
    let (pod, _overlay, net1) = attached_pod(&c.node, "anew1", 1);
    wait_listening(&agent, 1.0);
    assert!(!agent.lines("record found: attachment kept").is_empty());
    let clean = pod_state(&pod);
    delete_service_rule(&pod);
    wait_back(&agent, "rule of the pod added later", &clean, || {
        pod_state(&pod)
    });
    assert!(net1.del(&c.node, &pod).ok);
    wait_listening(&agent, 0.0);
    assert!(!agent
        .lines("record removed (DEL): attachment forgotten")
        .is_empty());
    assert!(
        !pod.netns.ipx(&["rule"]).contains("proto 176"),
        "re-created after DEL"
    );
}

/// On the node the agent reads only what an attachment can own (through its host veth); an
/// unowned route in the slot of one of router's, through another device, is met by the
/// repair (the kernel refuses router's exclusive add) and reported, never removed.
#[test]
fn an_unowned_route_in_routers_place_on_the_node_is_reported_and_never_removed() {
    let c = cluster("ablkh", 1);
    let agent = Agent::start(&c.node, &c.cache, &[]);
    wait_listening(&agent, 1.0);
    let veth = host_veth(&c.node, &underlay_v4(1));
    let unowned = format!("{} dev up0 table 500 scope link", underlay_v4(1));
    // In one batch, so that the slot is never empty long enough for a repair to fill it.
    let batch = c.node.dir.join("slot.batch");
    std::fs::write(
        &batch,
        format!(
            "route del {} dev {veth} table 500\nroute add {unowned}\n",
            underlay_v4(1)
        ),
    )
    .unwrap();
    c.node.host.ipx(&["-batch", batch.to_str().unwrap()]);
    let reported = wait_for(REPAIR_WAIT, || {
        agent.metric("router_agent_attachments{state=\"error\"}") == 1.0
            && !agent.lines("attachment in error").is_empty()
    });
    assert!(reported, "not reported:\n{}", agent.log());
    let error = agent.lines("attachment in error");
    assert!(
        error.iter().any(|l| l["fields"]["error"]
            .as_str()
            .is_some_and(|e| e.contains(&underlay_v4(1)))),
        "the error does not name the route: {error:#?}"
    );
    assert!(agent.metric("router_agent_repair_failures_total") >= 1.0);
    let table = c.node.host.table("-4", "500");
    assert!(
        table.lines().any(|l| l.trim_end() == unowned),
        "the unowned route was touched:\n{table}"
    );
}

/// Raw bytes sent to the agent's endpoint from inside the node netns; what came back.
fn http_raw(agent: &Agent, request: Vec<u8>) -> String {
    let port = agent.port;
    run_in_netns(&agent.host, move || {
        let answer = (|| -> std::io::Result<String> {
            let mut stream = TcpStream::connect(("127.0.0.1", port))?;
            stream.set_read_timeout(Some(Duration::from_secs(10)))?;
            stream.write_all(&request)?;
            let mut text = Vec::new();
            let _ = stream.read_to_end(&mut text);
            Ok(String::from_utf8_lossy(&text).into_owned())
        })();
        Ok(answer.unwrap_or_default())
    })
    .unwrap()
}

#[test]
fn the_endpoint_answers_only_its_gets_bounds_requests_and_idle_connections_delay_no_repair() {
    let c = cluster("ahttp", 1);
    let pod = &c.pods[0].0;
    let agent = Agent::start(&c.node, &c.cache, &[]);
    wait_listening(&agent, 1.0);
    assert_eq!(agent.get("/healthz").map(|(s, _)| s), Some(200));
    assert_eq!(agent.get("/nothing").map(|(s, _)| s), Some(404));
    let post = http_raw(
        &agent,
        b"POST /metrics HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}"
            .to_vec(),
    );
    assert!(post.starts_with("HTTP/1.1 405"), "{post}");
    let mut huge = b"GET /metrics HTTP/1.1\r\nHost: t\r\nX-Big: ".to_vec();
    huge.extend(std::iter::repeat_n(b'a', 64 * 1024));
    huge.extend(b"\r\n\r\n");
    let refused = http_raw(&agent, huge);
    assert!(
        refused.is_empty() || refused.starts_with("HTTP/1.1 431"),
        "a 64 KiB header was served: {}",
        &refused[..refused.len().min(200)]
    );
    // A flood of idle connections (more than the endpoint serves at once), held open.
    let port = agent.port;
    let idle = run_in_netns(&agent.host, move || {
        Ok((0..200)
            .filter_map(|_| TcpStream::connect(("127.0.0.1", port)).ok())
            .collect::<Vec<_>>())
    })
    .unwrap();
    assert!(idle.len() >= 100, "{} connections", idle.len());
    let clean = pod_state(pod);
    delete_service_rule(pod);
    wait_back(&agent, "rule during the flood", &clean, || pod_state(pod));
    drop(idle);
    // Served again once the flood is gone (idle ones are closed by the header timeout).
    let answers = wait_for(REPAIR_WAIT, || {
        agent.get("/healthz").is_some_and(|(s, _)| s == 200)
    });
    assert!(answers, "the endpoint does not answer after the flood");
}

/// Writes one generation of a ConfigMap volume as the kubelet does: the files in a new
/// `..<generation>` directory, then `..data` swapped to it in one rename, the visible file
/// a link through `..data`.
fn configmap_generation(dir: &std::path::Path, generation: &str, file: &str, content: &str) {
    let real = dir.join(format!("..{generation}"));
    std::fs::create_dir_all(&real).unwrap();
    std::fs::write(real.join(file), content).unwrap();
    let staged = dir.join("..data_tmp");
    let _ = std::fs::remove_file(&staged);
    std::os::unix::fs::symlink(format!("..{generation}"), &staged).unwrap();
    std::fs::rename(&staged, dir.join("..data")).unwrap();
    let visible = dir.join(file);
    if std::fs::symlink_metadata(&visible).is_err() {
        std::os::unix::fs::symlink(format!("..data/{file}"), &visible).unwrap();
    }
}

/// `--config-dir`: the network's config in a ConfigMap directory. At start it is the config
/// the pods were added with (nothing to do); swapped to a version with one more service
/// CIDR, every pod gets the new rule, once, and the runtime's CHECK with the ADD-time
/// config is clean since the record keeps the rolled-out one.
#[test]
fn a_config_directory_swapped_to_a_new_version_is_rolled_out_to_every_pod_once() {
    let c = cluster_v4("acfg", 2);
    let dir = TempDir::new("acfgd");
    let mut conflist = c.pods[0].2.conflist.clone();
    configmap_generation(
        &dir.0,
        "2026_12_06_1",
        "net.conflist",
        &conflist.to_string(),
    );
    let dir_arg = dir.0.to_str().unwrap().to_string();
    let agent = Agent::start(&c.node, &c.cache, &["--config-dir", &dir_arg]);
    let outcome = |outcome: &str| {
        agent.metric(&format!(
            "router_agent_rollouts_total{{outcome=\"{outcome}\"}}"
        ))
    };
    let unchanged = wait_for(REPAIR_WAIT, || outcome("unchanged") == 2.0);
    assert!(
        unchanged,
        "the first read was not found unchanged:\n{}",
        agent.log()
    );

    conflist["plugins"][1]["service_hijack_subnet"] =
        serde_json::json!(["10.96.0.0/12", "10.97.0.0/16", "fd00:10:96::/108"]);
    configmap_generation(
        &dir.0,
        "2026_12_06_2",
        "net.conflist",
        &conflist.to_string(),
    );
    let has_rule = |pod: &Pod| {
        pod.netns
            .ipx(&["rule"])
            .contains("to 10.97.0.0/16 lookup 100")
    };
    let rolled = wait_for(REPAIR_WAIT, || {
        c.pods.iter().all(|(pod, _, _)| has_rule(pod)) && outcome("rolled_out") == 2.0
    });
    assert!(rolled, "v2 did not reach every pod:\n{}", agent.log());
    // Read again every second: the same content is not rolled out again.
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(outcome("rolled_out"), 2.0, "{}", agent.log());
    assert_eq!(outcome("refused") + outcome("failed"), 0.0);
    for (pod, _, net1) in &c.pods {
        let check = net1.invoke_one(&c.node, pod, "CHECK", "router");
        assert!(check.ok, "CHECK with the ADD-time config: {}", check.stdout);
    }

    // A change a live pod cannot take is refused and counted, never forced.
    let before: Vec<String> = c
        .pods
        .iter()
        .map(|(p, _, _)| p.netns.ipx(&["rule"]))
        .collect();
    conflist["plugins"][1]["route_table"] = serde_json::json!(150);
    configmap_generation(
        &dir.0,
        "2026_12_06_3",
        "net.conflist",
        &conflist.to_string(),
    );
    let refused = wait_for(REPAIR_WAIT, || outcome("refused") == 2.0);
    assert!(refused, "route_table was not refused:\n{}", agent.log());
    let after: Vec<String> = c
        .pods
        .iter()
        .map(|(p, _, _)| p.netns.ipx(&["rule"]))
        .collect();
    assert_eq!(after, before);
}
