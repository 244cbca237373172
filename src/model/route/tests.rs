//! model::route tests: routes normalise as the kernel does.

use super::*;

#[test]
fn ipv6_routes_normalise_metric_and_scope_like_the_kernel() {
    let route = Route::link(
        100,
        "fd00::1:2/64".parse().unwrap(),
        "eth0",
        ROUTER_PROTOCOL,
    );
    assert_eq!(route.key.dst.to_string(), "fd00::/64");
    assert_eq!(route.key.metric, IPV6_DEFAULT_METRIC);
    assert_eq!(route.scope, RouteScope::Universe);
}
