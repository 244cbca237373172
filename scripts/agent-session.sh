#!/usr/bin/env bash
# A real `router agent` session, in throwaway network namespaces: "agent-node" plays the
# node (the plugins and the agent run there), "agent-ext" the upstream router on the node's
# uplink, "agent-pod1" and "agent-pod2" two pods (eth0 from Debian's ptp + host-local, net1
# from macvlan + static, then router). The agent is started, the damage systemd-networkd
# does is done by hand (the host rule deleted, table 500 flushed), and the agent's repair
# log lines and /metrics before and after are shown. Needs root, iproute2, python3, curl
# and Debian's containernetworking-plugins; removes everything it made on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --quiet
ROUTER=$PWD/target/debug/router
NODE=agent-node EXT=agent-ext PODS="agent-pod1 agent-pod2"
WORK=$(mktemp -d)
AGENT_PID=
cleanup() {
    if [ -n "$AGENT_PID" ]; then kill "$AGENT_PID" 2>/dev/null; wait "$AGENT_PID" 2>/dev/null || true; fi
    for ns in $PODS $NODE $EXT; do ip netns del "$ns" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT

for ns in $NODE $EXT $PODS; do ip netns add "$ns"; ip -n "$ns" link set lo up; done
ip link add up0 netns $NODE type veth peer name ext0 netns $EXT
ip -n $NODE link set up0 up && ip -n $EXT link set ext0 up
ip -n $NODE addr add 192.168.50.1/24 dev up0
ip -n $EXT addr add 192.168.50.254/24 dev ext0

# cni POD PLUGIN COMMAND IFNAME: runs a plugin in the node netns as a runtime would.
cni() {
    ip netns exec $NODE env -i CNI_COMMAND="$3" CNI_CONTAINERID="$1" CNI_NETNS=/var/run/netns/$1 \
        CNI_IFNAME="$4" CNI_PATH=/usr/lib/cni ROUTER_ALLOWED_DIRS="$WORK" "$2"
}
# conf FILE [PREV]: the plugin config with prevResult injected.
conf() {
    python3 -c 'import json,sys; c=json.load(open(sys.argv[1])); p=sys.argv[2:] and json.load(open(sys.argv[2]))
if p: c["prevResult"]=p
print(json.dumps(c))' "$@"
}
cat > "$WORK/router.json" <<EOF
{"cniVersion":"1.0.0","name":"macvlan-overlay","type":"router",
 "overlay_hijack_subnet":["10.244.0.0/16"],"service_hijack_subnet":["10.96.0.0/12"],
 "data_dir":"$WORK/router","log_options":{"log_file":"$WORK/router.log"}}
EOF
i=0
for pod in $PODS; do
    i=$((i + 1))
    cat > "$WORK/ptp-$pod.json" <<EOF
{"cniVersion":"1.0.0","name":"k8s","type":"ptp","ipMasq":false,
 "ipam":{"type":"host-local","dataDir":"$WORK/ipam","ranges":[[{"subnet":"10.244.$i.0/24"}]],"routes":[{"dst":"0.0.0.0/0"}]}}
EOF
    cat > "$WORK/macvlan-$pod.json" <<EOF
{"cniVersion":"1.0.0","name":"macvlan-overlay","type":"macvlan","master":"up0","mode":"bridge",
 "ipam":{"type":"static","addresses":[{"address":"192.168.50.1$i/24","gateway":"192.168.50.254"}],"routes":[{"dst":"0.0.0.0/0"}]}}
EOF
    conf "$WORK/ptp-$pod.json" | cni $pod /usr/lib/cni/ptp ADD eth0 > /dev/null
    conf "$WORK/macvlan-$pod.json" | cni $pod /usr/lib/cni/macvlan ADD net1 > "$WORK/prev-$pod.json"
    conf "$WORK/router.json" "$WORK/prev-$pod.json" | cni $pod "$ROUTER" ADD net1 > /dev/null
done

step() { printf '\n$ %s\n' "$*"; }
metrics() {
    ip netns exec $NODE curl -s http://127.0.0.1:9641/metrics |
        grep -E '^router_agent_(attachments|repairs_total|drifts_found_total|repair_failures_total|event_to_repair_seconds_(count|sum)|subscriptions)' || true
}

step "ip netns exec agent-node router agent --data-dir $WORK/router --cache-dir $WORK/cache --listen 127.0.0.1:9641 &"
mkdir -p "$WORK/cache"
# ROUTER_ALLOWED_DIRS as for the plugin: the recorded config's data_dir and log are in $WORK.
ip netns exec $NODE env ROUTER_ALLOWED_DIRS="$WORK" "$ROUTER" agent --data-dir "$WORK/router" \
    --cache-dir "$WORK/cache" --listen 127.0.0.1:9641 2> "$WORK/agent.log" &
AGENT_PID=$!
until ip netns exec $NODE curl -sf http://127.0.0.1:9641/readyz > /dev/null; do sleep 0.1; done
sleep 0.5
step "curl -s http://127.0.0.1:9641/readyz"
ip netns exec $NODE curl -s http://127.0.0.1:9641/readyz
step "curl -s http://127.0.0.1:9641/metrics   # before (excerpt)"
metrics
step "ip -n agent-node rule; ip -n agent-node route show table 500"
ip -n $NODE rule
ip -n $NODE route show table 500

step "ip -n agent-node rule del pref 1000 lookup 500; ip -n agent-node route flush table 500   # what networkd does"
ip -n $NODE rule del pref 1000 lookup 500
ip -n $NODE route flush table 500
sleep 1
step "ip -n agent-node rule; ip -n agent-node route show table 500   # a second later"
ip -n $NODE rule
ip -n $NODE route show table 500
step "grep '\"repaired\"' agent.log   # the agent's repair lines (JSON on stderr)"
grep '"repaired"' "$WORK/agent.log"
step "curl -s http://127.0.0.1:9641/metrics   # after (excerpt)"
metrics
