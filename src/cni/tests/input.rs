//! cni tests, the input: VERSION, CNI_* variables, stdin, cniVersion gates, config and
//! prevResult rejections, the allowed directories. Each answers with its code and changes nothing.

use super::*;

#[test]
fn version_lists_the_supported_versions_and_echoes_the_request() {
    let h = Harness::new();
    let out = h.invoke(&[("CNI_COMMAND", "VERSION")], br#"{"cniVersion":"0.4.0"}"#);
    assert_eq!(out.exit_code, 0);
    let b = body(&out);
    assert_eq!(b["cniVersion"], "0.4.0");
    assert_eq!(
        b["supportedVersions"],
        json!(["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"])
    );
}

#[test]
fn missing_variables_are_code_4_naming_each() {
    let h = Harness::new();
    let out = h.invoke(&[("CNI_COMMAND", "ADD"), ("CNI_CONTAINERID", "c1")], b"{}");
    assert_error(&out, Code::InvalidEnv, "missing CNI_NETNS, CNI_IFNAME");
    let out = h.invoke(&[("CNI_COMMAND", "DEL")], b"{}");
    assert_error(
        &out,
        Code::InvalidEnv,
        "missing CNI_CONTAINERID, CNI_IFNAME",
    );
}

#[test]
fn unknown_command_and_bad_identities_are_code_4() {
    let h = Harness::new();
    assert_error(
        &h.invoke(&[("CNI_COMMAND", "FROB")], b"{}"),
        Code::InvalidEnv,
        "FROB",
    );
    let mut env = pod_env("ADD");
    env[1] = ("CNI_CONTAINERID", "../../etc");
    assert_error(&h.invoke(&env, b"{}"), Code::InvalidEnv, "CNI_CONTAINERID");
    let mut env = pod_env("ADD");
    env[3] = ("CNI_IFNAME", "net/1");
    assert_error(&h.invoke(&env, b"{}"), Code::InvalidEnv, "CNI_IFNAME");
    let mut env = pod_env("ADD");
    env[2] = ("CNI_NETNS", "relative/path");
    assert_error(&h.invoke(&env, b"{}"), Code::InvalidEnv, "CNI_NETNS");
}

#[test]
fn undecodable_stdin_is_code_6() {
    let h = Harness::new();
    assert_error(
        &h.invoke(&pod_env("ADD"), b"{not json"),
        Code::Decode,
        "not JSON",
    );
    assert_error(
        &h.invoke(&pod_env("ADD"), &[0xff, 0xfe, b'{']),
        Code::Decode,
        "not UTF-8",
    );
    let huge = vec![b' '; (MAX_STDIN + 10) as usize];
    assert_error(
        &h.invoke(&pod_env("ADD"), &huge),
        Code::Decode,
        "larger than",
    );
}

#[test]
fn invalid_config_is_code_7_echoing_the_config_version() {
    let h = Harness::new();
    let mut conf = netconf("0.4.0", true);
    conf["migrate_route"] = json!(5);
    let out = h.command("ADD", &conf);
    assert_error(&out, Code::InvalidConfig, "migrate_route = 5");
    assert_eq!(body(&out)["cniVersion"], "0.4.0");
}

#[test]
fn check_below_0_4_0_is_code_1() {
    let h = Harness::new();
    assert_error(
        &h.command("CHECK", &netconf("0.3.1", true)),
        Code::IncompatibleVersion,
        "0.4.0",
    );
}

#[test]
fn add_without_prev_result_is_code_7() {
    let h = Harness::new();
    assert_error(
        &h.command("ADD", &netconf("1.0.0", false)),
        Code::InvalidConfig,
        "prevResult",
    );
}

#[test]
fn ids_and_names_with_nul_slash_dots_or_too_long_are_code_4() {
    let h = Harness::new();
    let long_id = "a".repeat(crate::record::MAX_CONTAINER_ID_LEN + 1);
    for (var, value) in [
        ("CNI_CONTAINERID", "c\0../x"),
        ("CNI_CONTAINERID", "a/b"),
        ("CNI_CONTAINERID", ".."),
        ("CNI_CONTAINERID", long_id.as_str()),
        ("CNI_IFNAME", "net\0x"),
        ("CNI_IFNAME", ".."),
        ("CNI_IFNAME", "a/b"),
        ("CNI_IFNAME", "net1234567890123"),
        ("CNI_NETNS", "/run/netns/a\0b"),
    ] {
        let mut env = pod_env("ADD");
        env.retain(|(k, _)| *k != var);
        env.push((var, value));
        let out = h.invoke(&env, netconf("1.0.0", true).to_string().as_bytes());
        assert_error(&out, Code::InvalidEnv, var);
        assert!(out.stdout.len() < 1024, "{}", out.stdout);
    }
    assert!(h.records.all().unwrap().is_empty());
}

#[test]
fn add_whose_prev_result_gives_c_no_address_is_code_7() {
    let h = Harness::new();
    let before = h.kernel.state();
    let mut conf = netconf("1.0.0", true);
    conf["prevResult"]["ips"] = json!([]);
    assert_error(
        &h.command("ADD", &conf),
        Code::InvalidConfig,
        "no address of net1",
    );
    let mut conf = netconf("1.0.0", true);
    conf["prevResult"]["interfaces"][0]["name"] = json!("net7");
    assert_error(
        &h.command("ADD", &conf),
        Code::InvalidConfig,
        "no address of net1",
    );
    assert_eq!(h.kernel.state(), before);
}

#[test]
fn stdin_is_read_no_further_than_the_limit() {
    /// An endless stdin that counts what was taken from it.
    struct Endless(u64);
    impl Read for Endless {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            buf.fill(b' ');
            self.0 += buf.len() as u64;
            Ok(buf.len())
        }
    }
    let mut stdin = Endless(0);
    let err = read_stdin(&mut stdin).unwrap_err();
    assert_eq!(err.code(), Code::Decode);
    assert!(stdin.0 <= MAX_STDIN + 64 * 1024, "read {} bytes", stdin.0);
}

#[test]
fn router_allowed_dirs_allows_more_directories_for_both_keys() {
    let h = Harness::new();
    let mut conf = netconf("1.0.0", true);
    conf["data_dir"] = json!("/srv/router/data");
    conf["log_options"] = json!({"log_file": "/srv/logs/router.log"});
    let out = h.command("ADD", &conf);
    assert_error(&out, Code::InvalidConfig, "/run, /var/run");
    let mut env = pod_env("ADD");
    env.push((ALLOWED_DIRS_VAR, "relative:/srv/router:/srv/logs"));
    let out = h.invoke(&env, conf.to_string().as_bytes());
    assert_eq!(out.exit_code, 0, "{}", out.stdout);
}
