#!/usr/bin/env bash
# A real ADD / CHECK / tamper / CHECK / DEL session, in throwaway network namespaces:
# "demo-node" plays the node (the plugins run there), "demo-ext" the upstream router on
# the node's uplink, "demo-pod" the pod. eth0 comes from Debian's ptp + host-local, net1
# from macvlan + static, then router. Needs root, iproute2, python3 and Debian's
# containernetworking-plugins; removes everything it made on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --quiet --release
ROUTER=$PWD/target/release/router
NODE=demo-node POD=demo-pod EXT=demo-ext
WORK=$(mktemp -d)
cleanup() {
    for ns in $POD $NODE $EXT; do ip netns del "$ns" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT

for ns in $NODE $EXT $POD; do ip netns add "$ns"; ip -n "$ns" link set lo up; done
ip link add up0 netns $NODE type veth peer name ext0 netns $EXT
ip -n $NODE link set up0 up && ip -n $EXT link set ext0 up
ip -n $NODE addr add 192.168.50.1/24 dev up0
ip -n $EXT addr add 192.168.50.254/24 dev ext0

# cni PLUGIN COMMAND IFNAME: runs a plugin in the node netns as a runtime would (router's
# data_dir and log live in $WORK, which ROUTER_ALLOWED_DIRS allows).
cni() {
    ip netns exec $NODE env -i CNI_COMMAND="$2" CNI_CONTAINERID=demo CNI_NETNS=/var/run/netns/$POD \
        CNI_IFNAME="$3" CNI_PATH=/usr/lib/cni ROUTER_ALLOWED_DIRS="$WORK" "$1"
}
# conf FILE [PREV]: the plugin config with name, cniVersion and prevResult injected.
conf() {
    python3 -c 'import json,sys; c=json.load(open(sys.argv[1])); p=sys.argv[2:] and json.load(open(sys.argv[2]))
if p: c["prevResult"]=p
print(json.dumps(c))' "$@"
}

cat > "$WORK/ptp.json" <<EOF
{"cniVersion":"1.0.0","name":"k8s","type":"ptp","ipMasq":false,
 "ipam":{"type":"host-local","dataDir":"$WORK/ipam","ranges":[[{"subnet":"10.244.1.0/24"}]],"routes":[{"dst":"0.0.0.0/0"}]}}
EOF
cat > "$WORK/macvlan.json" <<EOF
{"cniVersion":"1.0.0","name":"macvlan-overlay","type":"macvlan","master":"up0","mode":"bridge",
 "ipam":{"type":"static","addresses":[{"address":"192.168.50.10/24","gateway":"192.168.50.254"}],"routes":[{"dst":"0.0.0.0/0"}]}}
EOF
cat > "$WORK/router.json" <<EOF
{"cniVersion":"1.0.0","name":"macvlan-overlay","type":"router",
 "overlay_hijack_subnet":["10.244.0.0/16"],"service_hijack_subnet":["10.96.0.0/12"],
 "rp_filter":{"set_host":true,"value":0},"mac_prefix":"0a:0b",
 "data_dir":"$WORK/router","log_options":{"log_file":"$WORK/router.log"}}
EOF

step() { printf '\n$ %s\n' "$*"; }

conf "$WORK/ptp.json" | cni /usr/lib/cni/ptp ADD eth0 > /dev/null
conf "$WORK/macvlan.json" | cni /usr/lib/cni/macvlan ADD net1 > "$WORK/prev.json"

step "ip netns exec demo-node ping -c1 -W1 192.168.50.10   # the node cannot reach a macvlan pod"
ip netns exec $NODE ping -c1 -W1 192.168.50.10 > /dev/null && echo reachable || echo "unreachable"

step "router ADD (prevResult from macvlan)"
conf "$WORK/router.json" "$WORK/prev.json" | cni "$ROUTER" ADD net1 | tee "$WORK/result.json"
step "ip netns exec demo-node ping -c1 -W1 192.168.50.10"
ip netns exec $NODE ping -c1 -W1 192.168.50.10 > /dev/null && echo reachable || echo "unreachable"
step "ip -n demo-pod rule"
ip -n $POD rule
step "ip -n demo-pod route show table 100"
ip -n $POD route show table 100
step "ip -n demo-node rule; ip -n demo-node route show table 500"
ip -n $NODE rule
ip -n $NODE route show table 500

step "router CHECK   # no output, exit 0"
conf "$WORK/router.json" "$WORK/result.json" | cni "$ROUTER" CHECK net1 && echo "exit $?"

step "ip -n demo-pod rule del to 10.96.0.0/12 lookup 100 pref 1000; ip netns exec demo-pod sysctl -w net.ipv4.conf.net1.rp_filter=1"
ip -n $POD rule del to 10.96.0.0/12 lookup 100 pref 1000
ip netns exec $POD sysctl -qw net.ipv4.conf.net1.rp_filter=1
step "router CHECK"
conf "$WORK/router.json" "$WORK/result.json" | cni "$ROUTER" CHECK net1 | python3 -m json.tool || true

step "router DEL, then macvlan DEL (the runtime's reverse order; the pod lives on with eth0)"
conf "$WORK/router.json" "$WORK/result.json" | cni "$ROUTER" DEL net1 && echo "exit $?"
conf "$WORK/macvlan.json" "$WORK/prev.json" | cni /usr/lib/cni/macvlan DEL net1
step "ip -n demo-pod rule; ip -n demo-pod route; ip -n demo-node rule"
ip -n $POD rule
ip -n $POD route
ip -n $NODE rule
