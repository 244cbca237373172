//! cni tests, GC and STATUS: what GC collects and keeps, its valid-attachments list, the
//! 1.1.0 gate and version errors first, STATUS over a real data_dir.

use super::*;

#[test]
fn gc_collects_unlisted_attachments_and_keeps_what_a_listed_one_wants() {
    let h = Harness::new();
    let before = h.kernel.state();
    assert_eq!(h.command("ADD", &netconf("1.1.0", true)).exit_code, 0);
    let attached = h.kernel.state();
    // A stale attachment whose record wants the very objects c1's does (an address reused).
    let mut twin = h.records.load("c1", "net1").unwrap().unwrap();
    twin.container_id = "c2".into();
    h.records.save(&twin).unwrap();

    let out = h.invoke(
        &gc_env(),
        gc_input(json!([{"containerID": "c1", "ifname": "net1"}]))
            .to_string()
            .as_bytes(),
    );
    assert_eq!(out, Output::success(None), "{}", out.stdout);
    assert_eq!(saved_records(&h), ids(&[("c1", "net1")]));
    assert_eq!(
        h.kernel.state(),
        attached,
        "a valid attachment's object went"
    );

    let out = h.invoke(&gc_env(), gc_input(json!([])).to_string().as_bytes());
    assert_eq!(out.exit_code, 0, "{}", out.stdout);
    assert!(saved_records(&h).is_empty());
    let after = h.kernel.state();
    // GC reaches the host only (no netns is named): the pod keeps what ADD made.
    assert_eq!(after.pod, attached.pod);
    let mut host = after.host.clone();
    host.sysctls = before.host.sysctls.clone();
    assert_eq!(
        host, before.host,
        "owned host objects or the host rule were left"
    );
}

#[test]
fn gc_leaves_other_networks_records_and_entries_without_ifname_keep_the_container() {
    let h = Harness::new();
    assert_eq!(h.command("ADD", &netconf("1.1.0", true)).exit_code, 0);
    let mut other = h.records.load("c1", "net1").unwrap().unwrap();
    other.container_id = "c9".into();
    other.network = Some("another-network".into());
    h.records.save(&other).unwrap();
    let out = h.invoke(
        &gc_env(),
        gc_input(json!([{"containerID": "c1"}]))
            .to_string()
            .as_bytes(),
    );
    assert_eq!(out.exit_code, 0, "{}", out.stdout);
    assert_eq!(saved_records(&h), ids(&[("c1", "net1"), ("c9", "net1")]));
}

#[test]
fn gc_without_a_usable_valid_attachments_list_is_code_7_and_collects_nothing() {
    let h = Harness::new();
    assert_eq!(h.command("ADD", &netconf("1.1.0", true)).exit_code, 0);
    let state = h.kernel.state();
    let missing = netconf("1.1.0", false);
    assert_error(
        &h.invoke(&gc_env(), missing.to_string().as_bytes()),
        Code::InvalidConfig,
        VALID_ATTACHMENTS_KEY,
    );
    for bad in [
        json!("c1"),
        json!({"containerID": "c1"}),
        json!([{"containerID": 5}]),
        json!([{"containerID": "c1", "ifname": ["net1"]}]),
    ] {
        let out = h.invoke(&gc_env(), gc_input(bad.clone()).to_string().as_bytes());
        assert_error(&out, Code::InvalidConfig, VALID_ATTACHMENTS_KEY);
    }
    assert_eq!(saved_records(&h), ids(&[("c1", "net1")]));
    assert_eq!(h.kernel.state(), state);
}

#[test]
fn gc_and_status_need_cni_version_1_1_0() {
    let h = Harness::new();
    for version in ["0.3.1", "0.4.0", "1.0.0"] {
        let mut conf = gc_input(json!([]));
        conf["cniVersion"] = json!(version);
        let out = h.invoke(&gc_env(), conf.to_string().as_bytes());
        assert_error(&out, Code::IncompatibleVersion, "GC needs cniVersion 1.1.0");
        assert_eq!(body(&out)["cniVersion"], version);
        let out = h.invoke(&[("CNI_COMMAND", "STATUS")], conf.to_string().as_bytes());
        assert_error(
            &out,
            Code::IncompatibleVersion,
            "STATUS needs cniVersion 1.1.0",
        );
    }
}

#[test]
fn status_is_ready_with_no_output_and_skip_call_gc_does_nothing() {
    let h = Harness::new();
    let out = h.invoke(
        &[("CNI_COMMAND", "STATUS")],
        netconf("1.1.0", false).to_string().as_bytes(),
    );
    assert_eq!(out, Output::success(None));
    assert_eq!(h.command("ADD", &netconf("1.1.0", true)).exit_code, 0);
    let mut conf = gc_input(json!([]));
    conf["skip_call"] = json!(true);
    assert_eq!(
        h.invoke(&gc_env(), conf.to_string().as_bytes()),
        Output::success(None)
    );
    assert_eq!(saved_records(&h), ids(&[("c1", "net1")]));
}

/// STATUS over records in a real directory: ready, or code 50 naming data_dir.
fn status_with_data_dir(data_dir: &Path) -> Output {
    let mut conf = netconf("1.1.0", false);
    conf["data_dir"] = json!(data_dir);
    let factory = |config: &Config, _: &Invocation| -> Result<Backends> {
        let kernel = Arc::new(ModelKernel::new(ActualState::default()));
        Ok(Backends {
            snapshots: Box::new(kernel.clone()),
            executor: Box::new(kernel),
            records: Box::new(crate::record::MemRecords::default()),
            host: Box::new(crate::record::FileRecords::confined(
                &config.data_root,
                &config.data_dir,
            )),
            probe: Box::new(crate::conflict::NoConflicts),
            attachment_lock: None,
        })
    };
    let allowed = std::env::temp_dir().display().to_string();
    let env = |name: &str| match name {
        "CNI_COMMAND" => Some("STATUS".to_string()),
        ALLOWED_DIRS_VAR => Some(allowed.clone()),
        _ => None,
    };
    run(&env, &mut conf.to_string().as_bytes(), &factory)
}

#[test]
fn status_is_code_50_naming_data_dir_when_it_cannot_be_created_or_written() {
    let root = std::env::temp_dir().join(format!("router-status-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    let usable = root.join("data");
    assert_eq!(status_with_data_dir(&usable), Output::success(None));
    assert!(usable.is_dir(), "STATUS creates data_dir as ADD would");
    assert_eq!(
        std::fs::read_dir(&usable).unwrap().count(),
        0,
        "the probe file stayed"
    );
    let file = root.join("a-file");
    std::fs::write(&file, b"not a directory").unwrap();
    for unusable in [file.clone(), file.join("data")] {
        let out = status_with_data_dir(&unusable);
        assert_error(&out, Code::NotAvailable, "is not usable");
        assert!(
            out.stdout.contains(&*unusable.to_string_lossy()),
            "{}",
            out.stdout
        );
    }
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn status_and_gc_answer_a_version_error_before_a_config_error() {
    let h = Harness::new();
    let mut conf = netconf("1.0.0", false);
    conf["migrate_route"] = json!(5);
    conf[VALID_ATTACHMENTS_KEY] = json!([]);
    for env in [vec![("CNI_COMMAND", "STATUS")], gc_env()] {
        let out = h.invoke(&env, conf.to_string().as_bytes());
        assert_error(&out, Code::IncompatibleVersion, "1.1.0");
    }
    let version = h.invoke(&[("CNI_COMMAND", "VERSION")], conf.to_string().as_bytes());
    assert_eq!(version.exit_code, 0);
}
