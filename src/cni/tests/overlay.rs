//! cni tests, the overlay interface missing or taken by the chained interface itself (code
//! 104): nothing changed, DEL after it, a later ADD once the overlay interface exists.

use super::*;

/// The pod as a runtime that attaches networks in random order leaves it when router runs
/// first: no eth0, none of its routes or sysctls.
fn without_eth0(mut state: ActualState) -> ActualState {
    let pod = state.pod.as_mut().unwrap();
    pod.links.remove("eth0");
    pod.macs.remove("eth0");
    pod.routes.retain(|k, _| k.dev.as_deref() != Some("eth0"));
    pod.sysctls.retain(|k, _| k.iface != "eth0");
    state
}

#[test]
fn add_without_the_overlay_interface_is_code_104_naming_it_and_the_netns_and_changes_nothing() {
    let h = Harness::new();
    let state = without_eth0(h.kernel.state());
    h.kernel.set_state(state.clone());
    let conf = netconf("1.0.0", true);
    let out = h.command("ADD", &conf);
    assert_error(
        &out,
        Code::OverlayUnusable,
        "overlay_interface eth0 is not in the pod",
    );
    let msg = body(&out)["msg"].as_str().unwrap().to_string();
    for part in [
        "/var/run/netns/pod-1",
        "nothing was changed",
        "podman network connect",
    ] {
        assert!(msg.contains(part), "{part} not in {msg}");
    }
    assert_eq!(h.kernel.state(), state);
    assert!(h.records.load("c1", "net1").unwrap().is_none());
}

/// podman names a container's interfaces in random order too: the macvlan network may get
/// eth0, which router would then take for the overlay interface.
#[test]
fn add_chained_to_the_overlay_interface_itself_is_code_104_and_changes_nothing() {
    let h = Harness::new();
    let before = h.kernel.state();
    let mut conf = netconf("1.0.0", true);
    conf["overlay_interface"] = json!("net1");
    let out = h.command("ADD", &conf);
    assert_error(
        &out,
        Code::OverlayUnusable,
        "overlay_interface net1 is the interface router is chained to",
    );
    assert_eq!(h.kernel.state(), before);
    assert!(h.records.load("c1", "net1").unwrap().is_none());
    assert_eq!(h.command("DEL", &conf).exit_code, 0);
    assert_eq!(h.kernel.state(), before);
}

#[test]
fn del_after_an_add_refused_for_a_missing_overlay_succeeds_and_leaves_unowned_objects() {
    let h = Harness::new();
    let mut state = without_eth0(h.kernel.state());
    // An unowned rule on exactly the key router would own: DEL must not take it.
    let mut lookalike = crate::model::Rule::owned_lookup(
        crate::model::Family::Ipv4,
        1000,
        None,
        Some("10.240.0.0/12".parse().unwrap()),
        100,
    );
    lookalike.protocol = 0;
    state.pod.as_mut().unwrap().insert_rule(lookalike);
    h.kernel.set_state(state.clone());
    let conf = netconf("1.0.0", true);
    assert_error(&h.command("ADD", &conf), Code::OverlayUnusable, "eth0");
    assert_eq!(h.command("DEL", &conf).exit_code, 0);
    assert_eq!(h.kernel.state(), state);
    assert!(h.records.load("c1", "net1").unwrap().is_none());
}

#[test]
fn an_add_once_the_overlay_exists_takes_it_as_p_after_a_refused_one() {
    let h = Harness::new();
    let with_eth0 = h.kernel.state();
    h.kernel.set_state(without_eth0(with_eth0.clone()));
    let conf = netconf("1.0.0", true);
    assert_error(&h.command("ADD", &conf), Code::OverlayUnusable, "eth0");
    h.kernel.set_state(with_eth0);
    assert_eq!(h.command("ADD", &conf).exit_code, 0);
    let record = h.records.load("c1", "net1").unwrap().unwrap();
    let moved = &record.moved[&crate::model::Family::Ipv4];
    assert_eq!(moved.interface, "eth0");
    assert!(!moved.removed_from_main.is_empty());
    assert_eq!(h.command("CHECK", &conf).exit_code, 0);
}

#[test]
fn check_of_an_attachment_whose_overlay_went_away_is_code_104_not_a_repair_target() {
    let h = Harness::new();
    let conf = netconf("1.0.0", true);
    assert_eq!(h.command("ADD", &conf).exit_code, 0);
    let record = h.records.load("c1", "net1").unwrap();
    h.kernel.set_state(without_eth0(h.kernel.state()));
    assert_error(&h.command("CHECK", &conf), Code::OverlayUnusable, "eth0");
    assert_eq!(h.records.load("c1", "net1").unwrap(), record);
}
