#!/usr/bin/env python3
"""Benchmark of `router agent` with 100 attachments, on real network namespaces (root
needed; nothing outside the namespaces it makes is touched).

    sudo python3 scripts/bench_agent.py [--pods 100] [--idle 60]

Kept apart from scripts/bench.py (which times the plugin against sbr) and built on its
helpers (pods from ptp + host-local and macvlan + static, router's config). It runs the
release build (`cargo build --release`) from a fresh copy, re-runs itself inside a
throwaway "node" netns and:

- attaches --pods pods (router ADD on each), starts the agent, then times router ADD on
  2 x --adds more pods, alternating without the agent (stopped while idle) and with it
  (medians);
- reads the first full resync's duration from the agent's /metrics;
- measures the agent's CPU time over --idle seconds of a quiet node (/proc/PID/stat) and
  its RSS afterwards (/proc/PID/status);
- event to repair, from the kernel's own notifications (`ip -ts monitor`, microsecond
  timestamps): a pod rule deleted (one sample per trial, in pods taken in turn), and table
  500 flushed on the node (one sample per route: from its deletion to its re-addition).

It prints each figure against its target, met or missed. A benchmark, never a test.
"""

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import datetime

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import CNI, Pod, fresh_copies, invoke, router_conf, sh  # noqa: E402

NODE = f"rtagent-node-{os.getpid()}"
EXT = f"rtagent-ext-{os.getpid()}"
PORT = 9641
STAMP = re.compile(r"^\[(\S+)\] (Deleted )?(.*)$")


def metrics():
    with urllib.request.urlopen(f"http://127.0.0.1:{PORT}/metrics", timeout=5) as r:
        return r.read().decode()


def sample(text, name):
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return 0.0


def wait(cond, limit=30.0):
    end = time.monotonic() + limit
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.02)
    return False


def ready():
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{PORT}/readyz", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class Monitor:
    """`ip -ts monitor OBJECTS` in a netns (or here), its lines with their timestamps."""

    def __init__(self, netns, objects):
        args = ["ip", "-ts"] + (["-n", netns] if netns else []) + ["monitor"] + objects
        self.out = tempfile.NamedTemporaryFile("r", suffix=".mon")
        self.proc = subprocess.Popen(args, stdout=self.out, stderr=subprocess.DEVNULL)
        time.sleep(0.2)

    def stop(self):
        self.proc.terminate()
        self.proc.wait()
        lines = []
        for line in open(self.out.name):
            m = STAMP.match(line.rstrip())
            if m:
                at = datetime.fromisoformat(m.group(1)).timestamp()
                lines.append((at, m.group(2) is not None, m.group(3).strip()))
        self.out.close()
        return lines


def repair_latencies(lines, key):
    """For each object (by `key(text)`), the time from its deletion to its re-addition."""
    deleted, out = {}, []
    for at, is_del, text in lines:
        k = key(text)
        if k is None:
            continue
        if is_del:
            deleted.setdefault(k, at)
        elif k in deleted:
            out.append(at - deleted.pop(k))
    return out, len(deleted)


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def add_router(router, pod, work, container):
    conf = pod.conf(router_conf(work))
    elapsed, _ = invoke(router, "ADD", pod.netns, "net1", conf, container)
    return elapsed


def inner(args):
    work = tempfile.mkdtemp(prefix="rtagent-")
    data_dir = f"/run/rtbench-{os.getpid()}/router"
    os.makedirs(f"{work}/cache", exist_ok=True)
    pods, agent = [], None
    try:
        for _ in range(args.pods):
            pod = Pod(work)
            add_router(args.router, pod, work, pod.id)
            pods.append(pod)
        extra, without, with_agent = [], [], []
        log = open(f"{work}/agent.log", "w")
        env = dict(os.environ, ROUTER_ALLOWED_DIRS=tempfile.gettempdir())
        agent = subprocess.Popen([args.router, "agent", "--data-dir", data_dir,
                                  "--cache-dir", f"{work}/cache", "--listen", f"127.0.0.1:{PORT}",
                                  "--resync-interval", args.resync],
                                 stderr=log, stdout=subprocess.DEVNULL, env=env)
        if not wait(ready, 60):
            sys.exit("the agent never became ready")
        resync = sample(metrics(), "router_agent_resync_duration_seconds_sum")
        # ADD with and without the agent, alternating so that the machine's load drifting
        # over the run weighs on both alike. "Without" is the agent stopped (SIGSTOP) while
        # idle: it holds no lock then, and takes no CPU.
        for i in range(2 * args.adds):
            pod = Pod(work)
            time.sleep(0.3)
            if i % 2 == 0:
                os.kill(agent.pid, signal.SIGSTOP)
                without.append(add_router(args.router, pod, work, pod.id))
                os.kill(agent.pid, signal.SIGCONT)
            else:
                with_agent.append(add_router(args.router, pod, work, pod.id))
            extra.append(pod)
        wait(lambda: sample(metrics(), 'router_agent_subscriptions{netns="pod"}')
             >= args.pods + 2 * args.adds, 30)
        time.sleep(2)
        cpu0, t0 = cpu_seconds(agent.pid), time.monotonic()
        time.sleep(args.idle)
        idle_cpu = (cpu_seconds(agent.pid) - cpu0) / (time.monotonic() - t0) * 100
        rss = rss_mb(agent.pid)
        if args.perf:
            subprocess.run(["perf", "record", "-q", "-g", "-o", f"{work}/perf.data", "-p",
                            str(agent.pid), "--", "sleep", "5"], capture_output=True)
            report = subprocess.run(["perf", "report", "-q", "--stdio", "--no-children", "-i",
                                     f"{work}/perf.data", "--sort", "dso,symbol", "-g", "none"],
                                    capture_output=True, text=True).stdout
            print("\n".join(report.splitlines()[:40]))
        if args.strace:
            out = subprocess.run(["strace", "-c", "-f", "-p", str(agent.pid)], capture_output=True,
                                 text=True, timeout=20, preexec_fn=None,
                                 input=None) if False else None
            proc = subprocess.Popen(["strace", "-c", "-f", "-p", str(agent.pid)],
                                    stderr=subprocess.PIPE, text=True)
            time.sleep(10)
            proc.terminate()
            print(proc.communicate()[1][:3000])

        rule_lat, rule_lost = [], 0
        for i in range(args.trials):
            pod = pods[i % len(pods)]
            mon = Monitor(pod.name, ["rule"])
            sh("ip", "-n", pod.name, "rule", "del", "to", "10.96.0.0/12", "lookup", "100",
               "pref", "1000")
            wait(lambda: "10.96.0.0/12" in sh("ip", "-n", pod.name, "rule"), 10)
            time.sleep(0.05)
            lat, lost = repair_latencies(mon.stop(), lambda t: t if "10.96.0.0/12" in t else None)
            rule_lat += lat
            rule_lost += lost
            time.sleep(0.15)
        flush_lat, flush_lost = [], 0
        count = lambda: sh("ip", "route", "show", "table", "500").count("\n")
        routes = count()
        for _ in range(args.flushes):
            mon = Monitor(None, ["route"])
            sh("ip", "route", "flush", "table", "500")
            wait(lambda: count() >= routes, 20)
            time.sleep(0.1)
            key = lambda t: t.split()[0] if "table 500" in t else None
            lat, lost = repair_latencies(mon.stop(), key)
            flush_lat += lat
            flush_lost += lost
            time.sleep(0.5)
    finally:
        if agent:
            agent.kill()
            agent.wait()
        for pod in pods + locals().get("extra", []):
            pod.remove()
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(f"/run/rtbench-{os.getpid()}", ignore_errors=True)

    add_without = statistics.median(without) * 1000
    add_with = statistics.median(with_agent) * 1000
    print(f"attachments: {args.pods} (+{2 * args.adds} for the ADD timing)")
    print(f"ADD median without the agent {add_without:.2f} ms, with it {add_with:.2f} ms")
    print(f"pod rule deleted: {len(rule_lat)} repairs ({rule_lost} not seen repaired)")
    print(f"table 500 flushed: {len(flush_lat)} route repairs over {args.flushes} flushes "
          f"({flush_lost} not seen repaired)")
    checks = [
        ("rule: event to repair median (ms)", statistics.median(rule_lat) * 1000, "<= 100", 100),
        ("rule: event to repair p99 (ms)", percentile(rule_lat, 99) * 1000, "<= 1000", 1000),
        ("flush: event to repair median (ms)", statistics.median(flush_lat) * 1000, "<= 100", 100),
        ("flush: event to repair p99 (ms)", percentile(flush_lat, 99) * 1000, "<= 1000", 1000),
        (f"idle CPU over {args.idle}s, resync every {args.resync} (% of a core)", idle_cpu,
         "<= 0.5", 0.5),
        ("RSS (MB)", rss, "<= 40", 40),
        ("first full resync (s)", resync, "<= 2", 2),
        ("ADD with / without agent (x)", add_with / add_without, "<= 1.1", 1.1),
    ]
    print()
    for name, value, target, limit in checks:
        print(f"{name:40} {value:10.3f}  target {target:8} {'met' if value <= limit else 'MISSED'}")


def outer(args):
    if os.geteuid() != 0:
        sys.exit("needs root (it makes network namespaces)")
    subprocess.run(["cargo", "build", "--release", "--quiet"], check=True)
    bins = tempfile.mkdtemp(prefix="rtagent-bin-")
    router, _ = fresh_copies(os.path.abspath("target/release/router"), bins)
    try:
        sh("ip", "netns", "add", NODE)
        sh("ip", "netns", "add", EXT)
        sh("ip", "link", "add", "up0", "netns", NODE, "type", "veth", "peer", "name", "ext0", "netns", EXT)
        for ns, dev, addr in ((NODE, "up0", "192.168.0.1/16"), (EXT, "ext0", "192.168.0.254/16")):
            sh("ip", "-n", ns, "link", "set", "lo", "up")
            sh("ip", "-n", ns, "link", "set", dev, "up")
            sh("ip", "-n", ns, "addr", "add", addr, "dev", dev)
        subprocess.run(["ip", "netns", "exec", NODE, sys.executable, os.path.abspath(__file__),
                        "--inner", "--router", router, "--pods", str(args.pods),
                        "--idle", str(args.idle), "--trials", str(args.trials),
                        "--flushes", str(args.flushes), "--resync", args.resync,
                        "--adds", str(args.adds)]
                       + (["--strace"] if args.strace else [])
                       + (["--perf"] if args.perf else []), check=True)
    finally:
        for ns in (NODE, EXT):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        shutil.rmtree(bins, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=100)
    parser.add_argument("--idle", type=int, default=60)
    parser.add_argument("--trials", type=int, default=50, help="pod rules deleted")
    parser.add_argument("--adds", type=int, default=20, help="ADDs timed with and without the agent")
    parser.add_argument("--resync", default="60s", help="the agent's --resync-interval")
    parser.add_argument("--strace", action="store_true", help="print the agent's syscalls over 10 s of idle")
    parser.add_argument("--perf", action="store_true", help="print where the agent spends 5 s of idle (perf)")
    parser.add_argument("--flushes", type=int, default=5, help="table 500 flushes")
    parser.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--router", help=argparse.SUPPRESS)
    args = parser.parse_args()
    inner(args) if args.inner else outer(args)


if __name__ == "__main__":
    main()
