#!/usr/bin/env python3
"""Whole-process benchmarks of the router plugin against Debian's Go meta plugins, on real
network namespaces (root needed; nothing outside the namespaces it makes is touched).

    sudo python3 scripts/bench.py [--rounds 30]

It measures the binary that ships (static, built by scripts/build-static.sh) against Debian's
sbr, both run from copies made at its start (a long-written binary starts slower on this
VM than a fresh copy of itself; see `fresh_copies`). It re-runs
itself inside a throwaway "node" netns, so that plugin invocations are timed
from inside the host netns (no `ip netns exec` in the measurement), builds fresh pods
(eth0 from ptp + host-local, net1 from macvlan + static) and times, alternating:

- router ADD vs sbr ADD on identical pods, then DEL vs DEL;
- VERSION of each (process start);
- router ADD with mac_prefix (only_op_mac) vs a bare `ip link set address` on a macvlan;
- a router ADD and DEL with 1,000 additional_hijack_subnet CIDRs, and the peak RSS of an
  ADD, measured with GNU time (`/usr/bin/time`, Debian package `time`);
- router ADD on an empty node vs a node already holding 500 other pods' owned host routes
  (table 500) and permanent neighbours, vs one with 100 other pods' host veths, in rotation;
- 50 pods ADDed at once (a burst): on each fresh pod (eth0 only) a chain of macvlan + static
  then the plugin, as a runtime runs it, each ADD timed within its chain: six bursts of
  router (with the host-lock waits it logs) alternating with six of sbr (the reference);
- the phases of an ADD and a DEL from process start to exit: start-up and tear-down from
  the monotonic clock noted around the process against its own `process` log line, the
  rest from its `phase` lines (config, set-up, records, lock, snapshot, plan, record, apply,
  verify, result, release, output), what main spent outside them as `unnamed`, and the
  share named;
- compile + plan of 10,000 routes + 1,000 CIDRs (`cargo bench --bench pure_path`; skip with
  --no-pure).

Each section, and compile + plan, starts once the machine is quiet (idle for 90% of a
quarter second, waited for up to 15 s): the kernel tears a deleted netns down after `ip
netns del` returns, and a section that follows hundreds of deleted pods would share the
CPUs with that. router's data_dir is a tmpfs the bench mounts in its own mount namespace,
as /run is on a node (`data_root`).

It prints medians (ms), the ratios and whether each target holds. A benchmark, never a test.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

CNI = "/usr/lib/cni"
TIME = "/usr/bin/time"  # Debian package `time`
NODE = f"rtbench-node-{os.getpid()}"
EXT = f"rtbench-ext-{os.getpid()}"


def sh(*args, **kw):
    return subprocess.run(args, check=True, capture_output=True, text=True, **kw).stdout


def cni_env(command, netns, ifname, container):
    return {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "CNI_COMMAND": command,
            "CNI_CONTAINERID": container, "CNI_NETNS": netns, "CNI_IFNAME": ifname,
            "CNI_PATH": CNI,
            # router's log lives in the bench's temp dir (data_dir is on /run, allowed anyway).
            "ROUTER_ALLOWED_DIRS": tempfile.gettempdir()}


def invoke(plugin, command, netns, ifname, conf, container="bench", clock=None):
    """Runs one plugin as a runtime does; returns (seconds, stdout). With `clock` (a dict),
    also notes the monotonic clock (ns, the clock router's `process` line uses) just before
    the start and just after the reaping, as `spawned` and `reaped`."""
    env = cni_env(command, netns, ifname, container)
    data = json.dumps(conf).encode()
    start = time.perf_counter()
    spawned = time.monotonic_ns()
    proc = subprocess.run([plugin], env=env, input=data, capture_output=True)
    reaped = time.monotonic_ns()
    elapsed = time.perf_counter() - start
    if clock is not None:
        clock.update(spawned=spawned, reaped=reaped)
    if proc.returncode != 0:
        raise RuntimeError(f"{plugin} {command} failed: {proc.stdout.decode()} {proc.stderr.decode()}")
    return elapsed, proc.stdout.decode()


def invoke_rss(plugin, command, netns, ifname, conf, container="bench"):
    """Runs a plugin under GNU time (`/usr/bin/time -v` reports the same number); returns
    (seconds, peak RSS in KiB). A fork from Python would count Python's own pages: the
    kernel keeps the larger RSS across exec."""
    env = cni_env(command, netns, ifname, container)
    with tempfile.NamedTemporaryFile("r") as report:
        start = time.perf_counter()
        proc = subprocess.run([TIME, "-f", "%M", "-o", report.name, plugin], env=env,
                              input=json.dumps(conf).encode(), capture_output=True)
        elapsed = time.perf_counter() - start
        if proc.returncode != 0:
            raise RuntimeError(f"{plugin} {command} failed: {proc.stdout.decode()}")
        return elapsed, int(report.read().split()[-1])


class Pod:
    """A pod netns with eth0 (ptp + host-local) and net1 (macvlan + static)."""

    count = 0

    def __init__(self, work, net1=True):
        Pod.count += 1
        self.index = Pod.count
        self.name = f"rtbench-pod-{os.getpid()}-{self.index}"
        sh("ip", "netns", "add", self.name)
        sh("ip", "-n", self.name, "link", "set", "lo", "up")
        self.netns = f"/var/run/netns/{self.name}"
        self.id = f"bench-{self.index}"
        self.ptp = {"cniVersion": "1.0.0", "name": "k8s", "type": "ptp", "ipMasq": False,
                    "ipam": {"type": "host-local", "dataDir": f"{work}/ipam",
                             "ranges": [[{"subnet": "10.244.0.0/16"}]],
                             "routes": [{"dst": "0.0.0.0/0"}]}}
        octet = self.index % 250 + 2
        self.macvlan = {"cniVersion": "1.0.0", "name": "mv", "type": "macvlan", "master": "up0",
                        "mode": "bridge",
                        "ipam": {"type": "static",
                                 "addresses": [{"address": f"192.168.{50 + self.index // 250}.{octet}/16",
                                                "gateway": "192.168.0.254"}],
                                 "routes": [{"dst": "0.0.0.0/0"}]}}
        invoke(f"{CNI}/ptp", "ADD", self.netns, "eth0", self.ptp, self.id)
        self.prev = None
        if net1:
            _, out = invoke(f"{CNI}/macvlan", "ADD", self.netns, "net1", self.macvlan, self.id)
            self.prev = json.loads(out)

    def conf(self, plugin_conf, prev=None):
        conf = dict(plugin_conf)
        conf["prevResult"] = prev if prev is not None else self.prev
        return conf

    def remove(self):
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True)


def data_root():
    """Where router's data_dir goes: a tmpfs, as /run (the default data_dir is
    /run/cni/router) is on a node. On a machine whose /run is a disk (this VM's is ext4,
    where creating a file costs ~0.4 ms, and an ADD creates two: its lock file and its
    record), the bench would time the disk instead."""
    return f"/run/rtbench-{os.getpid()}"


def mount_data_root(outer_mnt):
    """Mounts a tmpfs at `data_root()` in this process's own mount namespace (`ip netns
    exec` gives it one, a slave of the machine's, so the mount is seen by the plugins this
    bench starts and by nothing outside; it goes with the namespace). Returns whether it
    did; in the mount namespace of the outer process (`outer_mnt`) it leaves /run as it is
    and says so."""
    root = data_root()
    os.makedirs(root, mode=0o700, exist_ok=True)
    if os.readlink("/proc/self/ns/mnt") == outer_mnt:
        print(f"note: no mount namespace of its own: data_dir stays on {root}'s filesystem")
        return False
    sh("mount", "-t", "tmpfs", "-o", "size=64m,mode=0700", "rtbench", root)
    return True


def router_conf(work, extra=None, level="info"):
    conf = {"cniVersion": "1.0.0", "name": "mv", "type": "router",
            "overlay_hijack_subnet": ["10.244.0.0/16"], "service_hijack_subnet": ["10.96.0.0/12"],
            "data_dir": f"{data_root()}/router",
            "log_options": {"log_file": f"{work}/router.log", "log_level": level}}
    conf.update(extra or {})
    return conf


SBR = {"cniVersion": "1.0.0", "name": "mv", "type": "sbr"}


def fresh_copies(router, into):
    """Copies router and sbr into `into`, both written just now. On this VM a binary whose
    file was written long ago starts measurably slower than a fresh copy of itself (sbr:
    3.07 vs 2.78 ms per ADD, side by side): timing a freshly built router against
    Debian's long-installed sbr flattered router by ~10%. Both copies are equal in that."""
    os.makedirs(into, exist_ok=True)
    for source, name in ((router, "router"), (f"{CNI}/sbr", "sbr")):
        shutil.copy2(source, os.path.join(into, name))
    return os.path.join(into, "router"), os.path.join(into, "sbr")


def median_ms(samples):
    return statistics.median(samples) * 1000


def add_del_pairs(router, sbr, work, rounds):
    """Alternating router and sbr ADD then DEL on identical fresh pods."""
    times = {"router ADD": [], "sbr ADD": [], "router DEL": [], "sbr DEL": []}
    conf = router_conf(work)
    for i in range(rounds):
        pods = {"router": Pod(work), "sbr": Pod(work)}
        order = ["router", "sbr"] if i % 2 == 0 else ["sbr", "router"]
        results = {}
        for who in order:
            pod = pods[who]
            plugin, plugin_conf = (router, conf) if who == "router" else (sbr, SBR)
            t, out = invoke(plugin, "ADD", pod.netns, "net1", pod.conf(plugin_conf), pod.id)
            times[f"{who} ADD"].append(t)
            results[who] = json.loads(out)
        for who in order:
            pod = pods[who]
            plugin, plugin_conf = (router, conf) if who == "router" else (sbr, SBR)
            t, _ = invoke(plugin, "DEL", pod.netns, "net1", pod.conf(plugin_conf, results[who]), pod.id)
            times[f"{who} DEL"].append(t)
        for pod in pods.values():
            pod.remove()
    return times


def version_pairs(router, sbr, rounds):
    times = {"router VERSION": [], "sbr VERSION": []}
    for i in range(rounds * 3):
        for who in (["router", "sbr"] if i % 2 == 0 else ["sbr", "router"]):
            plugin = router if who == "router" else sbr
            t, _ = invoke(plugin, "VERSION", "", "", {"cniVersion": "1.0.0"})
            times[f"{who} VERSION"].append(t)
    return times


def snapshot_times(router, work, rounds):
    """One read of the pod and host state (process start included): ADD does two, the plan
    and the verification."""
    conf_path = os.path.join(work, "router-conf.json")
    with open(conf_path, "w") as f:
        json.dump(router_conf(work), f)
    times = {"router snapshot (1 read)": []}
    for _ in range(rounds):
        pod = Pod(work)
        prev_path = os.path.join(work, "prev.json")
        with open(prev_path, "w") as f:
            json.dump(pod.prev, f)
        start = time.perf_counter()
        sh(router, "snapshot", "--netns", pod.netns, "--config", conf_path, "--ifname", "net1",
           "--prev-result", prev_path,
           env=dict(os.environ, ROUTER_ALLOWED_DIRS=tempfile.gettempdir()))
        times["router snapshot (1 read)"].append(time.perf_counter() - start)
        pod.remove()
    return times


def mac_pairs(router, work, rounds):
    """router ADD with mac_prefix (only_op_mac) vs a bare `ip link set address`."""
    times = {"router ADD mac_prefix": [], "ip link set address": []}
    conf = router_conf(work, {"mac_prefix": "0a:0b", "only_op_mac": True})
    for i in range(rounds):
        pod = Pod(work)
        t, _ = invoke(router, "ADD", pod.netns, "net1", pod.conf(conf), pod.id)
        times["router ADD mac_prefix"].append(t)
        start = time.perf_counter()
        sh("ip", "-n", pod.name, "link", "set", "net1", "address", f"0a:0c:00:00:00:{i % 250:02x}")
        times["ip link set address"].append(time.perf_counter() - start)
        pod.remove()
    return times


def thousand_cidrs(router, work, rounds):
    cidrs = [f"100.{64 + i // 256}.{i % 256}.0/24" for i in range(1000)]
    conf = router_conf(work, {"additional_hijack_subnet": cidrs})
    times = {"router ADD 1000 CIDRs": [], "router DEL 1000 CIDRs": []}
    rss = []
    for _ in range(max(3, rounds // 3)):
        pod = Pod(work)
        t, peak = invoke_rss(router, "ADD", pod.netns, "net1", pod.conf(conf), pod.id)
        times["router ADD 1000 CIDRs"].append(t)
        rss.append(peak)
        rules = sh("ip", "-n", pod.name, "rule").count("proto 176")
        assert rules >= 1000, f"only {rules} rules"
        t, _ = invoke_rss(router, "DEL", pod.netns, "net1", pod.conf(conf), pod.id)
        times["router DEL 1000 CIDRs"].append(t)
        pod.remove()
    return times, rss


def dense_node_pairs(router, work, rounds):
    """router ADD on the node as it is vs with 500 other pods' owned host routes in table
    500 and permanent neighbours (on up0, the node's uplink), and vs with 100 other pods'
    host veths (each with a /32, as ptp gives them), in rotation."""
    others = [(f"10.250.{i // 250}.{i % 250 + 1}", f"02:fa:00:00:{i // 250:02x}:{i % 250 + 1:02x}")
              for i in range(500)]
    routes = "".join(f"route add {a}/32 dev up0 table 500 proto 176 scope link\n"
                     f"neigh add {a} lladdr {m} dev up0 nud permanent proto 176\n" for a, m in others)
    unroutes = "".join(f"route del {a}/32 dev up0 table 500 proto 176\nneigh del {a} dev up0\n"
                       for a, _ in others)
    veths = "".join(f"link add vethrb{i} type veth peer name rtbp{i}\naddr add 10.251.0.1/32 dev vethrb{i}\n"
                    f"link set vethrb{i} up\n" for i in range(100))
    unveths = "".join(f"link del vethrb{i}\n" for i in range(100))
    setups = {"router ADD, empty node": ("", ""),
              "router ADD, 500 other pods": (routes, unroutes),
              "router ADD, 100 other pods' veths": (veths, unveths)}
    times = {key: [] for key in setups}
    conf = router_conf(work)
    keys = list(setups)
    for i in range(rounds):
        for key in keys[i % 3:] + keys[:i % 3]:
            setup, teardown = setups[key]
            if setup:
                subprocess.run(["ip", "-batch", "-"], input=setup, text=True, check=True)
            pod = Pod(work)
            t, out = invoke(router, "ADD", pod.netns, "net1", pod.conf(conf), pod.id)
            times[key].append(t)
            invoke(router, "DEL", pod.netns, "net1", pod.conf(conf, json.loads(out)), pod.id)
            pod.remove()
            if teardown:
                subprocess.run(["ip", "-batch", "-"], input=teardown, text=True, check=True)
    return times


def log_lines(path, start):
    with open(path) as f:
        f.seek(start)
        for line in f:
            try:
                yield json.loads(line)
            except ValueError:
                continue


def burst(plugin, conf, work, pods=50):
    """50 pods ADDed at once, each as a runtime chains it: macvlan (static IPAM) on net1,
    then `plugin` with macvlan's result. Each plugin ADD is timed inside its own chain, so
    what it measures is the plugin under the load of the other chains, not the order in
    which this script reaps them."""
    fresh = [Pod(work, net1=False) for _ in range(pods)]
    gate = threading.Barrier(pods)
    latencies, failures = [], []

    def chain(pod):
        gate.wait()
        try:
            _, out = invoke(f"{CNI}/macvlan", "ADD", pod.netns, "net1", pod.macvlan, pod.id)
            pod.prev = json.loads(out)
            t, _ = invoke(plugin, "ADD", pod.netns, "net1", pod.conf(conf), pod.id)
            latencies.append(t)
        except RuntimeError as failure:
            failures.append(failure)

    threads = [threading.Thread(target=chain, args=(pod,)) for pod in fresh]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise failures[0]
    for pod in fresh:
        invoke(plugin, "DEL", pod.netns, "net1", pod.conf(conf), pod.id)
        pod.remove()
    return latencies


def bursts(router, sbr, work, rounds=6):
    """router's bursts, alternating with sbr's as the reference (how much a plugin's ADD
    stretches when 50 chains share this machine's cores), the one that goes first swapped
    each round; each plugin's latencies pooled over its bursts. One burst's median moves
    by a third from one burst to the next on 2 cores, so the ratio takes six of each. router runs at its default log level, as on a node: a host-lock wait
    of 1 ms or more is logged at info, and the ADDs' "done" lines show the log was read
    (waits None when it was not)."""
    conf = router_conf(work)
    log = conf["log_options"]["log_file"]
    start = os.path.getsize(log) if os.path.exists(log) else 0
    latencies = {"router ADD in a 50-pod burst": [], "sbr ADD in a 50-pod burst": []}
    runs = [("router ADD in a 50-pod burst", router, conf), ("sbr ADD in a 50-pod burst", sbr, SBR)]
    for i in range(rounds):
        for name, plugin, plugin_conf in (runs if i % 2 == 0 else runs[::-1]):
            latencies[name] += burst(plugin, plugin_conf, work)
    fields = [l.get("fields", {}) for l in log_lines(log, start)]
    adds_done = sum(1 for f in fields if f.get("message") == "done" and f.get("command") == "Add")
    waits = [f["waited_us"] / 1e6 for f in fields if f.get("message") == "host lock acquired"]
    read = adds_done == len(latencies["router ADD in a 50-pod burst"])
    return latencies, waits if read else None


# The phases of a run in order, from the runtime starting the process to reaping it:
# start-up (exec to main, measured from outside on the monotonic clock), config (stdin, env,
# parsing), set-up (the log opened, the backends and the pod's visitor made), records (the
# attachment's record and its pod's other records read), lock (waiting
# for the host lock), snapshot, plan, record, apply, verify, result, release (the run's
# backends dropped: the pod's sockets and files, the attachment lock), output (stdout),
# unnamed (what main spent outside every phase) and tear-down (main's return to the reaping).
PHASES = ["start-up", "config", "set-up", "records", "lock", "snapshot", "plan", "record", "apply",
          "verify", "result", "release", "output", "unnamed", "tear-down"]


def phase_breakdown(router, work, rounds):
    """Median duration (us) of each phase of an ADD and a DEL: those router logs at debug
    level, and from its `process` line (main's entry and return on the monotonic clock)
    against the clock noted when it was started and reaped, the start-up, the tear-down
    and what main spent outside every phase. Also each run's share named by a phase."""
    conf = router_conf(work, level="debug")
    log = conf["log_options"]["log_file"]
    found = {}
    for _ in range(rounds):
        pod = Pod(work)
        prev = {"ADD": pod.prev}
        for command in ("ADD", "DEL"):
            start = os.path.getsize(log) if os.path.exists(log) else 0
            clock = {}
            _, out = invoke(router, command, pod.netns, "net1", pod.conf(conf, prev[command]),
                            pod.id, clock=clock)
            if command == "ADD":
                prev["DEL"] = json.loads(out)
            total = (clock["reaped"] - clock["spawned"]) / 1e3
            per_run, process = {}, None
            for line in log_lines(log, start):
                fields = line.get("fields", {})
                if fields.get("message") == "phase":
                    per_run[fields["phase"]] = per_run.get(fields["phase"], 0) + fields["us"]
                elif fields.get("message") == "process":
                    process = fields
            if process is not None:
                inside = (process["leaving_ns"] - process["entered_ns"]) / 1e3
                per_run["start-up"] = (process["entered_ns"] - clock["spawned"]) / 1e3
                per_run["tear-down"] = (clock["reaped"] - process["leaving_ns"]) / 1e3
                per_run["unnamed"] = max(0.0, inside - sum(
                    us for phase, us in per_run.items() if phase not in ("start-up", "tear-down")))
            named = sum(us for phase, us in per_run.items() if phase != "unnamed")
            found.setdefault((command, "total"), []).append(total)
            found.setdefault((command, "named %"), []).append(100 * named / total)
            for phase, us in per_run.items():
                found.setdefault((command, phase), []).append(us)
        pod.remove()
    return found


def pure_path():
    """compile + plan medians (ms) from criterion, by input size."""
    out = subprocess.run(["cargo", "bench", "--bench", "pure_path", "--", "compile_plan"],
                         capture_output=True, text=True, check=True).stdout
    medians, name = {}, None
    units = {"ns": 1e-6, "µs": 1e-3, "us": 1e-3, "ms": 1.0, "s": 1e3}
    for line in out.splitlines():
        words = line.split()
        if words and words[0].startswith("compile_plan/"):
            name = int(words[0].split("/")[1])
        if name is not None and "time:" in words:
            i = words.index("time:")
            medians[name] = float(words[i + 3]) * units[words[i + 4]]
            name = None
    return medians


def simple_add_rss(router, work):
    pod = Pod(work)
    _, peak = invoke_rss(router, "ADD", pod.netns, "net1", pod.conf(router_conf(work)), pod.id)
    pod.remove()
    return peak


SECTIONS = ["version", "add_del", "snapshot", "mac", "cidrs", "rss", "dense", "burst", "phases"]


def cpu_times():
    """(idle, total) jiffies of every CPU so far, from /proc/stat."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    return fields[3] + fields[4], sum(fields)


def quiet(timeout=15.0, window=0.25, idle_share=0.9):
    """Waits (up to `timeout` s) until the machine has been idle for `idle_share` of a
    `window`, and returns the seconds waited (None: it never was). A deleted netns is torn
    down by the kernel's workers after `ip netns del` returns: a section that follows one
    that deleted hundreds of pods would otherwise share the CPUs with that teardown, and
    the plugin that runs first in its rounds would pay more of it."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        idle0, total0 = cpu_times()
        time.sleep(window)
        idle1, total1 = cpu_times()
        if total1 > total0 and (idle1 - idle0) / (total1 - total0) >= idle_share:
            return time.monotonic() - start
    return None


def measure(router, sbr, work, sections, rounds):
    """Runs the chosen sections, each once the machine is quiet (`quiet`); returns the
    samples, peak RSS figures, lock waits, phases."""
    results, rss, waits, phases = {}, {}, None, {}
    chosen = [name for name in SECTIONS if name in sections]
    for name in chosen:
        if quiet() is None:
            print(f"note: the machine was not quiet before section {name}")
        if name == "version":
            results.update(version_pairs(router, sbr, rounds))
        elif name == "add_del":
            results.update(add_del_pairs(router, sbr, work, rounds))
        elif name == "snapshot":
            results.update(snapshot_times(router, work, rounds))
        elif name == "mac":
            results.update(mac_pairs(router, work, rounds))
        elif name == "cidrs":
            cidr_times, rss["1000-CIDR ADD"] = thousand_cidrs(router, work, rounds)
            results.update(cidr_times)
        elif name == "rss":
            rss["ADD"] = [simple_add_rss(router, work)]
        elif name == "dense":
            results.update(dense_node_pairs(router, work, rounds))
        elif name == "burst":
            burst_times, waits = bursts(router, sbr, work)
            results.update(burst_times)
        elif name == "phases":
            phases = phase_breakdown(router, work, rounds)
    return results, rss, waits, phases


def print_phases(phases):
    print()
    print(f"{'phase (median us)':20} {'ADD':>8} {'DEL':>8}")
    for phase in PHASES + ["total", "named %"]:
        cells = [statistics.median(phases[(c, phase)]) if (c, phase) in phases else None
                 for c in ("ADD", "DEL")]
        print(f"{phase:20} " + " ".join(f"{c:8.0f}" if c is not None else f"{'-':>8}" for c in cells))


def targets(med, rss, waits, phases=None):
    """(name, figure, target, met) for every target whose measurements ran (--only may skip
    some); met is None for a figure only reported."""
    burst = "router ADD in a 50-pod burst"
    ratio = lambda a, b: (med[a] / med[b]) if a in med and b in med else None
    # A log that was not read proves nothing (inf, missed); no wait logged: none >= 1 ms.
    max_wait = None
    if burst in med:
        max_wait = float("inf") if waits is None else max(waits, default=0) * 1000
    mac = ("router ADD mac_prefix", "ip link set address")
    rows = [
        ("router ADD / sbr ADD", ratio("router ADD", "sbr ADD"), "<= 0.75", 0.75),
        ("router DEL / sbr DEL", ratio("router DEL", "sbr DEL"), "<= 0.75", 0.75),
        ("  stretch: ADD / sbr ADD", ratio("router ADD", "sbr ADD"), "<= 0.5", 0.5),
        ("  stretch: DEL / sbr DEL", ratio("router DEL", "sbr DEL"), "<= 0.5", 0.5),
        ("ADD, 500 pods / empty node", ratio("router ADD, 500 other pods", "router ADD, empty node"), "<= 1.1", 1.1),
        ("ADD, 100 veths / empty node", ratio("router ADD, 100 other pods' veths", "router ADD, empty node"), "(reported)", None),
        # 3x alone cannot be met on 2 cores by any plugin (sbr stretches as much): the
        # target is relative to the reference plugin in the same burst.
        ("50-pod burst ADD / alone", ratio(burst, "router ADD"), "(reported)", None),
        ("burst: max lock wait (ms)", max_wait, "<= 100 (0: <1)", 100),
        ("  sbr's burst ADD / alone", ratio("sbr ADD in a 50-pod burst", "sbr ADD"), "(reference)", None),
        ("burst ADD: router / sbr", ratio(burst, "sbr ADD in a 50-pod burst"), "<= 1", 1),
        ("router VERSION / sbr VERSION", ratio("router VERSION", "sbr VERSION"), "(process start)", None),
        ("mac_prefix ADD - bare ip (ms)", med[mac[0]] - med[mac[1]] if mac[0] in med else None, "<= 2", 2),
        ("1000-CIDR ADD (ms)", med.get("router ADD 1000 CIDRs"), "<= 100", 100),
        ("1000-CIDR DEL (ms)", med.get("router DEL 1000 CIDRs"), "<= 100", 100),
        ("peak RSS of an ADD (MB)", rss["ADD"][0] / 1024 if "ADD" in rss else None, "<= 8", 8),
        ("peak RSS, 1000-CIDR ADD (MB)", max(rss["1000-CIDR ADD"]) / 1024 if "1000-CIDR ADD" in rss else None, "(reported)", None),
    ]
    for command in ("ADD", "DEL"):
        named = (phases or {}).get((command, "named %"))
        if named:
            rows.append((f"{command}: time named by phases (%)", statistics.median(named), ">= 90", None))
    for name, value, target, bound in rows:
        if value is None:
            continue
        if target == ">= 90":
            yield name, value, target, value >= 90
        else:
            yield name, value, target, None if bound is None else value <= bound


def inner(args):
    router = args.router
    sections = args.only.split(",") if args.only else SECTIONS
    work = tempfile.mkdtemp(prefix="rtbench-")
    mounted = False
    try:
        mounted = mount_data_root(args.outer_mnt)
        results, rss, waits, phases = measure(router, args.sbr, work, sections, args.rounds)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if mounted:
            subprocess.run(["umount", data_root()], capture_output=True)
        shutil.rmtree(data_root(), ignore_errors=True)
    med = {k: median_ms(v) for k, v in results.items()}
    print(f"{'measurement':34} {'median ms':>10} {'n':>4}")
    for k, v in results.items():
        print(f"{k:34} {med[k]:10.2f} {len(v):4}")
    if phases:
        print_phases(phases)
    checks = list(targets(med, rss, waits, phases))
    if args.pure and not args.only:
        quiet()
        pure = pure_path()
        checks.append(("compile+plan 10k (ms)", pure[10000], "<= 10", pure[10000] <= 10))
        growth = pure[10000] / pure[1000]
        checks.append(("compile+plan 1k -> 10k (x)", growth, "<= 12 (linear)", growth <= 12))
    print()
    for name, value, target, ok in checks:
        verdict = "-" if ok is None else ("met" if ok else "MISSED")
        print(f"{name:30} {value:8.2f}  target {target:16} {verdict}")


def outer(args):
    if os.geteuid() != 0:
        sys.exit("needs root (it makes network namespaces)")
    if not os.path.exists(TIME):
        sys.exit("needs GNU time for peak RSS: apt-get install time")
    # The binary that ships (static, deploy/Dockerfile), as a node runs it.
    subprocess.run(["bash", "scripts/build-static.sh", "--quiet"], check=True, stdout=subprocess.DEVNULL)
    bins = tempfile.mkdtemp(prefix="rtbench-bin-")
    router, sbr = fresh_copies(os.path.abspath("target/static/router"), bins)
    try:
        sh("ip", "netns", "add", NODE)
        sh("ip", "netns", "add", EXT)
        sh("ip", "link", "add", "up0", "netns", NODE, "type", "veth", "peer", "name", "ext0", "netns", EXT)
        for ns, dev, addr in ((NODE, "up0", "192.168.0.1/16"), (EXT, "ext0", "192.168.0.254/16")):
            sh("ip", "-n", ns, "link", "set", "lo", "up")
            sh("ip", "-n", ns, "link", "set", dev, "up")
            sh("ip", "-n", ns, "addr", "add", addr, "dev", dev)
        subprocess.run(["ip", "netns", "exec", NODE, sys.executable, os.path.abspath(__file__),
                        "--inner", "--router", router, "--sbr", sbr, "--rounds", str(args.rounds),
                        "--outer-mnt", os.readlink("/proc/self/ns/mnt")]
                       + ([] if args.pure else ["--no-pure"])
                       + (["--only", args.only] if args.only else []), check=True)
    finally:
        for ns in (NODE, EXT):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        shutil.rmtree(bins, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--no-pure", dest="pure", action="store_false",
                        help="skip compile + plan (cargo bench --bench pure_path)")
    parser.add_argument("--only", help="comma-separated sections to run (" + ",".join(SECTIONS)
                        + "); the targets whose figures they give are checked (no pure path)")
    parser.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--router", help=argparse.SUPPRESS)
    parser.add_argument("--sbr", help=argparse.SUPPRESS)
    parser.add_argument("--outer-mnt", help=argparse.SUPPRESS)
    args = parser.parse_args()
    inner(args) if args.inner else outer(args)


if __name__ == "__main__":
    main()
