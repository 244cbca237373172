#!/usr/bin/env python3
"""Whole-process benchmarks of the router plugin against Debian's Go meta plugins, on real
network namespaces (root needed; nothing outside the namespaces it makes is touched).

    sudo python3 scripts/bench.py [--rounds 30]

It re-runs itself inside a throwaway "node" netns, so that plugin invocations are timed
from inside the host netns (no `ip netns exec` in the measurement), builds fresh pods
(eth0 from ptp + host-local, net1 from macvlan + static) and times, alternating:

- router ADD vs sbr ADD on identical pods, then DEL vs DEL;
- VERSION of each (process start);
- router ADD with mac_prefix (only_op_mac) vs a bare `ip link set address` on a macvlan;
- a router ADD and DEL with 1,000 additional_hijack_subnet CIDRs, and the peak RSS of an
  ADD, measured with GNU time (`/usr/bin/time`, Debian package `time`).

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


def invoke(plugin, command, netns, ifname, conf, container="bench"):
    """Runs one plugin as a runtime does; returns (seconds, stdout)."""
    env = cni_env(command, netns, ifname, container)
    data = json.dumps(conf).encode()
    start = time.perf_counter()
    proc = subprocess.run([plugin], env=env, input=data, capture_output=True)
    elapsed = time.perf_counter() - start
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

    def __init__(self, work):
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
        _, out = invoke(f"{CNI}/macvlan", "ADD", self.netns, "net1", self.macvlan, self.id)
        self.prev = json.loads(out)

    def conf(self, plugin_conf, prev=None):
        conf = dict(plugin_conf)
        conf["prevResult"] = prev if prev is not None else self.prev
        return conf

    def remove(self):
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True)


def router_conf(work, extra=None):
    # data_dir on /run (tmpfs), as the default /run/cni/router is on a node: the record's
    # fsync costs nothing there, milliseconds on a disk.
    conf = {"cniVersion": "1.0.0", "name": "mv", "type": "router",
            "overlay_hijack_subnet": ["10.244.0.0/16"], "service_hijack_subnet": ["10.96.0.0/12"],
            "data_dir": f"/run/rtbench-{os.getpid()}/router",
            "log_options": {"log_file": f"{work}/router.log"}}
    conf.update(extra or {})
    return conf


SBR = {"cniVersion": "1.0.0", "name": "mv", "type": "sbr"}


def median_ms(samples):
    return statistics.median(samples) * 1000


def add_del_pairs(router, work, rounds):
    """Alternating router and sbr ADD then DEL on identical fresh pods."""
    times = {"router ADD": [], "sbr ADD": [], "router DEL": [], "sbr DEL": []}
    conf = router_conf(work)
    for i in range(rounds):
        pods = {"router": Pod(work), "sbr": Pod(work)}
        order = ["router", "sbr"] if i % 2 == 0 else ["sbr", "router"]
        results = {}
        for who in order:
            pod = pods[who]
            plugin, plugin_conf = (router, conf) if who == "router" else (f"{CNI}/sbr", SBR)
            t, out = invoke(plugin, "ADD", pod.netns, "net1", pod.conf(plugin_conf), pod.id)
            times[f"{who} ADD"].append(t)
            results[who] = json.loads(out)
        for who in order:
            pod = pods[who]
            plugin, plugin_conf = (router, conf) if who == "router" else (f"{CNI}/sbr", SBR)
            t, _ = invoke(plugin, "DEL", pod.netns, "net1", pod.conf(plugin_conf, results[who]), pod.id)
            times[f"{who} DEL"].append(t)
        for pod in pods.values():
            pod.remove()
    return times


def version_pairs(router, rounds):
    times = {"router VERSION": [], "sbr VERSION": []}
    for i in range(rounds * 3):
        for who in (["router", "sbr"] if i % 2 == 0 else ["sbr", "router"]):
            plugin = router if who == "router" else f"{CNI}/sbr"
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
           "--prev-result", prev_path)
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


def simple_add_rss(router, work):
    pod = Pod(work)
    _, peak = invoke_rss(router, "ADD", pod.netns, "net1", pod.conf(router_conf(work)), pod.id)
    pod.remove()
    return peak


def inner(args):
    router = args.router
    work = tempfile.mkdtemp(prefix="rtbench-")
    try:
        results = {}
        results.update(version_pairs(router, args.rounds))
        results.update(add_del_pairs(router, work, args.rounds))
        results.update(snapshot_times(router, work, args.rounds))
        results.update(mac_pairs(router, work, args.rounds))
        cidr_times, cidr_rss = thousand_cidrs(router, work, args.rounds)
        results.update(cidr_times)
        add_rss = simple_add_rss(router, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(f"/run/rtbench-{os.getpid()}", ignore_errors=True)
    med = {k: median_ms(v) for k, v in results.items()}
    print(f"{'measurement':28} {'median ms':>10} {'n':>4}")
    for k, v in results.items():
        print(f"{k:28} {med[k]:10.2f} {len(v):4}")
    ratio = lambda a, b: med[a] / med[b]
    checks = [
        ("router ADD / sbr ADD", ratio("router ADD", "sbr ADD"), "<= 0.5", ratio("router ADD", "sbr ADD") <= 0.5),
        ("router DEL / sbr DEL", ratio("router DEL", "sbr DEL"), "<= 0.5", ratio("router DEL", "sbr DEL") <= 0.5),
        ("router VERSION / sbr VERSION", ratio("router VERSION", "sbr VERSION"), "(process start)", True),
        ("mac_prefix ADD - bare ip (ms)", med["router ADD mac_prefix"] - med["ip link set address"], "<= 2", med["router ADD mac_prefix"] - med["ip link set address"] <= 2),
        ("1000-CIDR ADD (ms)", med["router ADD 1000 CIDRs"], "<= 100", med["router ADD 1000 CIDRs"] <= 100),
        ("1000-CIDR DEL (ms)", med["router DEL 1000 CIDRs"], "<= 100", med["router DEL 1000 CIDRs"] <= 100),
        ("peak RSS of an ADD (MB)", add_rss / 1024, "<= 8", add_rss / 1024 <= 8),
        ("peak RSS, 1000-CIDR ADD (MB)", max(cidr_rss) / 1024, "(reported)", True),
    ]
    print()
    for name, value, target, ok in checks:
        print(f"{name:30} {value:8.2f}  target {target:16} {'met' if ok else 'MISSED'}")


def outer(args):
    if os.geteuid() != 0:
        sys.exit("needs root (it makes network namespaces)")
    if not os.path.exists(TIME):
        sys.exit("needs GNU time for peak RSS: apt-get install time")
    subprocess.run(["cargo", "build", "--release", "--quiet"], check=True)
    router = os.path.abspath("target/release/router")
    try:
        sh("ip", "netns", "add", NODE)
        sh("ip", "netns", "add", EXT)
        sh("ip", "link", "add", "up0", "netns", NODE, "type", "veth", "peer", "name", "ext0", "netns", EXT)
        for ns, dev, addr in ((NODE, "up0", "192.168.0.1/16"), (EXT, "ext0", "192.168.0.254/16")):
            sh("ip", "-n", ns, "link", "set", "lo", "up")
            sh("ip", "-n", ns, "link", "set", dev, "up")
            sh("ip", "-n", ns, "addr", "add", addr, "dev", dev)
        subprocess.run(["ip", "netns", "exec", NODE, sys.executable, os.path.abspath(__file__),
                        "--inner", "--router", router, "--rounds", str(args.rounds)], check=True)
    finally:
        for ns in (NODE, EXT):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--router", help=argparse.SUPPRESS)
    args = parser.parse_args()
    inner(args) if args.inner else outer(args)


if __name__ == "__main__":
    main()
