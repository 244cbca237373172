#!/usr/bin/env bash
# The README's "Reports for CI and monitoring": `router check --all` as JUnit XML and in the
# Prometheus text format, on a node made of throwaway network namespaces. "rdemo-node"
# plays the node, "rdemo-ext" the upstream router on its uplink, "rdemo-a" and "rdemo-b"
# two pods whose eth0 comes from Debian's ptp + host-local and net1 from macvlan + static,
# then router, run as libcni runs a chain. The result cache is written in libcni's format
# under /tmp/reportsdemo. Pod b is then tampered with (a rule deleted, an rp_filter
# changed, the node's route to it deleted). Prints each command and its real output;
# checks the outputs with junitparser and promtool. Needs root, iproute2, python3 with
# junitparser, Debian's containernetworking-plugins and prometheus; removes what it made.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --quiet
ROUTER=$PWD/target/debug/router
NODE=rdemo-node EXT=rdemo-ext
WORK=/tmp/reportsdemo
CACHE=$WORK/run/cni
cleanup() {
    for ns in rdemo-a rdemo-b $NODE $EXT; do ip netns del "$ns" 2>/dev/null || true; done
    rm -rf "$WORK"
}
cleanup
trap cleanup EXIT
mkdir -p "$CACHE/results" "$WORK/textfile"

for ns in $NODE $EXT rdemo-a rdemo-b; do ip netns add "$ns"; ip -n "$ns" link set lo up; done
ip link add up0 netns $NODE type veth peer name ext0 netns $EXT
ip -n $NODE link set up0 up && ip -n $EXT link set ext0 up
ip -n $NODE addr add 192.168.50.1/24 dev up0
ip -n $EXT addr add 192.168.50.254/24 dev ext0

cat > "$WORK/k8s.conflist" <<EOF
{"cniVersion":"1.0.0","name":"k8s","plugins":[{"type":"ptp","ipMasq":false,
 "ipam":{"type":"host-local","dataDir":"$WORK/ipam","ranges":[[{"subnet":"10.244.1.0/24"}]],"routes":[{"dst":"0.0.0.0/0"}]}}]}
EOF
# net1's conflist for the pod with underlay address 192.168.50.$1.
net1_conflist() {
    cat <<EOF
{"cniVersion":"1.0.0","name":"macvlan-net1","plugins":[
 {"type":"macvlan","master":"up0","mode":"bridge",
  "ipam":{"type":"static","addresses":[{"address":"192.168.50.$1/24","gateway":"192.168.50.254"}],"routes":[{"dst":"0.0.0.0/0"}]}},
 {"type":"router","overlay_hijack_subnet":["10.244.0.0/16"],"service_hijack_subnet":["10.96.0.0/12"],
  "rp_filter":{"set_host":true,"value":0},"data_dir":"$WORK/router","log_options":{"log_file":"$WORK/router.log"}}]}
EOF
}

# attach CONFLIST ID POD IFNAME: ADD through the chain in the node netns (each plugin
# given the conflist's name and cniVersion and the previous result), then the cache entry
# libcni writes: the conflist as base64, the final result, the netns.
attach() {
    python3 - "$@" "$ROUTER" "$CACHE" <<'EOF'
import base64, json, subprocess, sys
conflist_file, cid, pod, ifname, router, cache = sys.argv[1:]
conflist = json.load(open(conflist_file))
netns = f"/run/netns/{pod}"
env = {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": cid, "CNI_NETNS": netns,
       "CNI_IFNAME": ifname, "CNI_PATH": "/usr/lib/cni"}
prev = None
for plugin in conflist["plugins"]:
    conf = dict(plugin, name=conflist["name"], cniVersion=conflist["cniVersion"])
    if prev is not None:
        conf["prevResult"] = prev
    binary = router if plugin["type"] == "router" else f"/usr/lib/cni/{plugin['type']}"
    out = subprocess.run(["ip", "netns", "exec", "rdemo-node", "env", "-i"]
                         + [f"{k}={v}" for k, v in env.items()] + [binary],
                         input=json.dumps(conf).encode(), capture_output=True, check=True)
    prev = json.loads(out.stdout)
entry = {"kind": "cniCacheV1", "containerId": cid,
         "config": base64.b64encode(json.dumps(conflist).encode()).decode(),
         "ifName": ifname, "networkName": conflist["name"], "netns": netns,
         "cniArgs": [["K8S_POD_NAMESPACE", "default"], ["K8S_POD_NAME", pod]], "result": prev}
with open(f"{cache}/results/{conflist['name']}-{cid}-{ifname}", "w") as f:
    json.dump(entry, f)
EOF
}

net1_conflist 11 > "$WORK/net1-a.conflist"
net1_conflist 12 > "$WORK/net1-b.conflist"
attach "$WORK/k8s.conflist" 5d2f8c1a9b3e rdemo-a eth0
attach "$WORK/net1-a.conflist" 5d2f8c1a9b3e rdemo-a net1
attach "$WORK/k8s.conflist" a41c7e9d2f60 rdemo-b eth0
attach "$WORK/net1-b.conflist" a41c7e9d2f60 rdemo-b net1

# Drift behind router's back in pod b and on the node.
veth=$(ip -n $NODE route show table 500 | awk '$1 == "192.168.50.12" { print $3 }')
ip -n rdemo-b rule del to 10.96.0.0/12 lookup 100 pref 1000
ip netns exec rdemo-b sysctl -qw net.ipv4.conf.net1.rp_filter=1
ip -n $NODE route del 192.168.50.12 dev "$veth" table 500

# show ARGS...: the command as an operator types it on the node, its output, its exit code.
show() {
    printf '# router %s\n' "$*"
    local code=0
    ip netns exec $NODE env NO_COLOR=1 "$ROUTER" "$@" || code=$?
    printf '# echo $?\n%s\n' "$code"
}

show check --all --cache-dir $CACHE --output junit | tee "$WORK/junit.txt"
show check --all --cache-dir $CACHE --output prometheus | tee "$WORK/prom.txt"
show check --all --cache-dir $CACHE --repair --output prometheus --write $WORK/textfile/router.prom
printf "# grep -v '^#' %s\n" "$WORK/textfile/router.prom"
grep -v '^#' "$WORK/textfile/router.prom"

# The real consumers agree.
sed -n '/^<?xml/,/^<\/testsuites>/p' "$WORK/junit.txt" > "$WORK/junit.xml"
python3 -c 'import sys; from junitparser import JUnitXml; x = JUnitXml.fromfile(sys.argv[1])
print("junitparser:", x.tests, "tests,", x.failures, "failures,", x.errors, "errors,", x.skipped, "skipped")' \
    "$WORK/junit.xml" >&2
grep -v '^# router \|^# echo \|^[0-9]$' "$WORK/prom.txt" | promtool check metrics >&2 &&
    promtool check metrics < "$WORK/textfile/router.prom" >&2 && echo "promtool: both pass" >&2
