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
        let (port, path) = (self.port, path.to_string());
        run_in_netns(&self.host, move || {
            let answer = (|| -> std::io::Result<String> {
                let mut stream = TcpStream::connect(("127.0.0.1", port))?;
                stream.set_read_timeout(Some(Duration::from_secs(5)))?;
                write!(
                    stream,
                    "GET {path} HTTP/1.1\r\nHost: agent\r\nConnection: close\r\n\r\n"
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
