#!/usr/bin/env bash
# The README's "With podman" session: Debian's podman 4.3 with its CNI backend running
# router, in a throwaway node netns ("pdemo-node", uplink up0 to "pdemo-ext"). podman runs
# under `nsenter --net` (not `ip netns exec`, which remounts /sys: runc then fails with "no
# cgroup mount found in mountinfo") with the configs of fixtures/podman/ and its own
# storage, run root, tmp dir and CNI config dir in a scratch directory, so the machine's
# podman state and /etc/containers are not touched. The image is Debian's busybox-static
# imported as a rootfs tar (no registry). Needs root, podman, runc, busybox-static and
# containernetworking-plugins; removes everything it made on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --quiet
ROUTER=$PWD/target/debug/router
NODE=pdemo-node EXT=pdemo-ext
WORK=$(mktemp -d)
DATA_DIR=/run/router-podman-demo LOG_FILE=/var/log/router-podman-demo.log
IMAGE=localhost/busybox:demo
export CONTAINERS_CONF=$WORK/containers.conf CONTAINERS_STORAGE_CONF=$WORK/storage.conf
NEW_DIRS=()
for dir in /var/lib/cni /var/lib/containers; do [ -e "$dir" ] || NEW_DIRS+=("$dir"); done

pm() { timeout 120 nsenter --net=/run/netns/$NODE podman "$@"; }
cleanup() {
    pm rm -f -a -t 0 >/dev/null 2>&1 || true
    pm rmi -f -a >/dev/null 2>&1 || true
    for ns in $NODE $EXT; do ip netns del "$ns" 2>/dev/null || true; done
    rm -rf "$WORK" "$DATA_DIR" "$LOG_FILE" "${NEW_DIRS[@]}"
}
trap cleanup EXIT

for ns in $NODE $EXT; do ip netns add "$ns"; ip -n "$ns" link set lo up; done
ip link add up0 netns $NODE type veth peer name ext0 netns $EXT
ip -n $NODE link set up0 up && ip -n $EXT link set ext0 up
ip -n $NODE addr add 192.168.50.1/24 dev up0
ip -n $EXT addr add 192.168.50.254/24 dev ext0

mkdir -p "$WORK/net.d" "$WORK/cni-bin" "$WORK/rootfs/bin"
fill() {
    sed -e "s|@WORK@|$WORK|g" -e "s|@DATA_DIR@|$DATA_DIR|g" -e "s|@LOG_FILE@|$LOG_FILE|g" \
        "fixtures/podman/$1" > "$2"
}
fill containers.conf "$WORK/containers.conf"
fill storage.conf "$WORK/storage.conf"
fill overlay.conflist "$WORK/net.d/overlay.conflist"
fill mac.conflist "$WORK/net.d/mac.conflist"
ln -s /usr/lib/cni/* "$WORK/cni-bin/"
"$ROUTER" install --cni-bin-dir "$WORK/cni-bin" > /dev/null
cp /bin/busybox "$WORK/rootfs/bin/"
for applet in $(/bin/busybox --list); do
    [ "$applet" = busybox ] || ln -s busybox "$WORK/rootfs/bin/$applet"
done
tar -C "$WORK/rootfs" -cf "$WORK/rootfs.tar" .

# What the session shows as commands is run as: podman in the node netns; router and ip in
# the node netns; `ip` in a container through `podman exec`.
step() { printf '\n# %s\n' "$*"; }
# podman's error line only (it also warns that a network is "not found in CNI cache").
errors() { grep '^Error' || true; }
shown() { sed -e "s|$WORK|/scratch|g"; }

step "cat containers.conf   # the [network] dirs point at a scratch directory here"
grep -v '^#' "$WORK/containers.conf" | grep -v '^$' | shown
step "cat net.d/overlay.conflist net.d/mac.conflist"
shown < "$WORK/net.d/overlay.conflist"
shown < "$WORK/net.d/mac.conflist"

step "podman import rootfs.tar $IMAGE   # /bin/busybox from busybox-static and its applet links"
pm import "$WORK/rootfs.tar" $IMAGE 2>/dev/null | tail -1 | cut -c1-19

step "podman run -d --name web --network overlay $IMAGE sleep 3600"
pm run -d --name web --network overlay $IMAGE sleep 3600 | cut -c1-12
step "podman network connect mac web"
pm network connect mac web 2>&1 | errors
step "podman exec web ip rule"
pm exec web ip rule
step "podman exec web ip route show table 100"
pm exec web ip route show table 100
step "podman exec web ip route"
pm exec web ip route
step "ping -c1 -W1 192.168.50.100   # the node reaches the macvlan address"
ip netns exec $NODE ping -c1 -W1 192.168.50.100 > /dev/null && echo reachable || echo unreachable
step "router check --all   # podman's cache in /var/lib/cni/results"
nsenter --net=/run/netns/$NODE "$ROUTER" check --all || echo "exit $?"
step "podman network disconnect mac web; podman exec web ip rule; ls $DATA_DIR"
pm network disconnect mac web 2>&1 | errors
pm exec web ip rule
ls "$DATA_DIR"

step "for i in 1 2 3 4 5 6; do podman run -d --name both\$i --network overlay --network mac $IMAGE sleep 3600; done"
for i in 1 2 3 4 5 6; do
    if out=$(pm run -d --name both$i --network overlay --network mac $IMAGE sleep 3600 2>&1); then
        echo "both$i: $(echo "$out" | tail -1 | cut -c1-12) running, $(pm exec both$i ip rule | grep -c 'lookup 100') rules to table 100, $(pm exec both$i ip route | grep -c '^default') default in main"
    else
        echo "both$i: exit $?: $(echo "$out" | errors)"
    fi
done

step "podman run -d --name web2 --network overlay ...; podman network connect mac web2; podman restart web2"
pm run -d --name web2 --network overlay $IMAGE sleep 3600 > /dev/null
pm network connect mac web2 2>&1 | errors
if out=$(pm restart -t 0 web2 2>&1); then echo "exit 0"; else echo "exit $?: $(echo "$out" | errors)"; fi

step "podman rm -f -t 0 --all; ip rule; ip route show table 500; ls $DATA_DIR   # on the node"
pm rm -f -t 0 -a > /dev/null
ip -n $NODE rule
ip -n $NODE route show table 500 2>/dev/null || true
ls "$DATA_DIR"
