#!/usr/bin/env bash
# Builds the router binary that ships: statically linked against glibc, not position
# independent, at target/static/router. A CNI plugin is copied onto nodes whose C library
# router never saw (an image built on one distribution, a node running another), and it
# starts on every pod's ADD and DEL: a static binary runs on any glibc-free or older node
# and starts without the dynamic loader (ARCHITECTURE "Performance": about 0.3 ms less per
# invocation on the benchmark machine). The build names the host's target explicitly so
# that the flags apply to router and its libraries only, not to the proc-macros cargo
# builds for the host (which cannot be static).
set -euo pipefail
cd "$(dirname "$0")/.."

triple=$(rustc -vV | sed -n 's/^host: //p')
RUSTFLAGS="-C target-feature=+crt-static -C relocation-model=static" \
    cargo build --release --locked --bin router --target "$triple" "$@"
install -D -m 0755 "target/$triple/release/router" target/static/router
echo target/static/router
