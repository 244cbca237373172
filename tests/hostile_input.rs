//! Hostile input through the real binary (BEHAVIOUR 7: a CNI error for any input, never a
//! panic): malformed, truncated and non-UTF-8 stdin, 16 MiB of it, deep nesting, a wrong
//! JSON type for every config key, broken prevResults, container ids and interface names
//! that try to leave data_dir, unknown commands, netns paths that are missing or no netns.
//! Each case asserts the CNI error code, a message saying what is wrong, exit 1 without a
//! panic, and that nothing changed: the test's pod and host netns are compared before and
//! after, and the files of the temp dir holding data_dir (which no case may create), except
//! the log file. The static cases are the files of `fixtures/bad-input/` (`NAME.stdin` and
//! `NAME.expect.json`: command, code, message); the others are built here. Files a config
//! names outside the allowed directories (ROUTER_ALLOWED_DIRS is the scene's temp dir) are
//! victims in a second temp dir: never written, renamed or removed, and a DEL still succeeds.

mod common;

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::cni::{router_bin, Shell, TempDir};
use common::{topology, unique, Topology};
use serde_json::{json, Value};

/// A case that runs longer has hung (a FIFO opened for reading would block forever).
const TIMEOUT: Duration = Duration::from_secs(20);
const IP: &str = "/usr/sbin/ip";
/// Error messages echo input only as an excerpt: a message past this says too much.
const MAX_MSG: usize = 2048;

/// One run of the binary.
struct Run {
    exit: Option<i32>,
    signal: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    fn body(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or(Value::Null)
    }
}

/// A node (host netns) and a pod attached like the real chain leaves it, a temp dir for
/// data_dir and the log, and files that are not netns: a plain file, a directory, a FIFO.
struct Scene {
    topo: Topology,
    dir: TempDir,
    /// Not allowed: a config naming a file here is refused.
    outside: TempDir,
}

/// What a victim of a hostile config holds (it is a copy of nothing real).
const VICTIM: &[u8] = b"root:$6$not-a-real-hash:19000:0:99999:7:::\n";

impl Scene {
    fn new(tag: &str) -> Scene {
        let scene = Scene {
            topo: topology(),
            dir: TempDir::new(tag),
            outside: TempDir::new(&format!("{tag}-out")),
        };
        fs::write(scene.victim(), VICTIM).unwrap();
        fs::write(scene.dir.join("a-file"), b"not a netns").unwrap();
        fs::create_dir_all(scene.dir.join("a-dir")).unwrap();
        let fifo = std::ffi::CString::new(scene.fifo().as_os_str().as_bytes()).unwrap();
        // SAFETY: a NUL-terminated path that outlives the call.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
        scene
    }

    /// A file outside the allowed directories that configs name.
    fn victim(&self) -> PathBuf {
        self.outside.join("victim")
    }

    fn fifo(&self) -> PathBuf {
        self.dir.join("fifo")
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn log_dir(&self) -> PathBuf {
        self.dir.join("log")
    }

    /// The only directory ROUTER_ALLOWED_DIRS allows: the temp dir holding data_dir and log.
    fn allowed_dir(&self) -> PathBuf {
        self.dir.0.clone()
    }

    fn netns(&self) -> PathBuf {
        self.topo.pod.path()
    }

    fn env(&self, command: &str) -> Vec<(OsString, OsString)> {
        [
            ("CNI_COMMAND", command.as_bytes()),
            ("CNI_CONTAINERID", b"ctr-hostile".as_slice()),
            ("CNI_NETNS", self.netns().as_os_str().as_bytes()),
            ("CNI_IFNAME", b"net1".as_slice()),
            ("CNI_PATH", b"/usr/lib/cni".as_slice()),
            (
                "ROUTER_ALLOWED_DIRS",
                self.allowed_dir().as_os_str().as_bytes(),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (OsString::from(k), OsStr::from_bytes(v).to_os_string()))
        .collect()
    }

    /// A valid ADD input for the pod's net1 (nothing in the corpus may get this far).
    fn config(&self) -> Value {
        json!({
            "cniVersion": "1.0.0",
            "name": "hostile",
            "type": "router",
            "overlay_hijack_subnet": ["10.244.0.0/16"],
            "service_hijack_subnet": ["10.96.0.0/12"],
            "data_dir": self.data_dir(),
            "log_options": { "log_file": self.log_dir().join("router.log") },
            "prevResult": {
                "cniVersion": "1.0.0",
                "interfaces": [{ "name": "net1", "mac": "02:50:00:00:00:02", "sandbox": self.netns() }],
                "ips": [{ "address": "192.168.50.2/24", "gateway": "192.168.50.254", "interface": 0 }]
            }
        })
    }

    /// The placeholders of the corpus files, filled with this scene's paths.
    fn fill(&self, stdin: Vec<u8>) -> Vec<u8> {
        let Ok(text) = String::from_utf8(stdin.clone()) else {
            return stdin;
        };
        text.replace("@DATA_DIR@", &self.data_dir().to_string_lossy())
            .replace(
                "@LOG_FILE@",
                &self.log_dir().join("router.log").to_string_lossy(),
            )
            .replace("@NETNS@", &self.netns().to_string_lossy())
            .replace("@VICTIM@", &self.victim().to_string_lossy())
            .replace("@OUTSIDE@", &self.outside.0.to_string_lossy())
            .into_bytes()
    }

    fn fill_text(&self, text: &str) -> String {
        String::from_utf8_lossy(&self.fill(text.as_bytes().to_vec())).into_owned()
    }

    /// `ip netns exec <host> router` with only these variables, `stdin` fed from a thread.
    fn run(&self, env: &[(OsString, OsString)], stdin: Vec<u8>) -> Run {
        // By absolute path: with a cleared environment a PATH lookup makes std fork (the
        // child would then count this test process's pages in its peak memory).
        let mut child = Command::new(IP)
            .args(["netns", "exec", &self.topo.host.name])
            .arg(router_bin())
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut input = child.stdin.take().unwrap();
        // The binary stops reading at its limit: the rest meets a closed pipe (EPIPE).
        let writer = std::thread::spawn(move || {
            let _ = input.write_all(&stdin);
        });
        let mut out = child.stdout.take().unwrap();
        let mut err = child.stderr.take().unwrap();
        let stdout = std::thread::spawn(move || {
            let mut s = Vec::new();
            let _ = out.read_to_end(&mut s);
            s
        });
        let stderr = std::thread::spawn(move || {
            let mut s = Vec::new();
            let _ = err.read_to_end(&mut s);
            s
        });
        let status = wait_bounded(child.id() as i32, &mut child);
        writer.join().unwrap();
        let text = |h: std::thread::JoinHandle<Vec<u8>>| {
            String::from_utf8_lossy(&h.join().unwrap()).into_owned()
        };
        Run {
            exit: libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status)),
            signal: libc::WIFSIGNALED(status).then(|| libc::WTERMSIG(status)),
            stdout: text(stdout),
            stderr: text(stderr),
        }
    }

    /// The binary's peak resident memory (KiB) on this input, as GNU time measures it:
    /// its own fork of a small process, so the count is router's alone (a child spawned
    /// from this test process would start with the test's pages in its high-water mark).
    /// None when /usr/bin/time is not installed.
    fn peak_rss_kb(&self, env: &[(OsString, OsString)], stdin: Vec<u8>) -> Option<u64> {
        let time = Path::new("/usr/bin/time");
        if !time.exists() {
            return None;
        }
        let report = self.dir.0.with_extension("rss");
        let mut child = Command::new(time)
            .args(["-f", "%M", "-o"])
            .arg(&report)
            .args([IP, "netns", "exec", &self.topo.host.name])
            .arg(router_bin())
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut input = child.stdin.take().unwrap();
        let writer = std::thread::spawn(move || {
            let _ = input.write_all(&stdin);
        });
        wait_bounded(child.id() as i32, &mut child);
        writer.join().unwrap();
        let text = fs::read_to_string(&report).unwrap_or_default();
        let _ = fs::remove_file(&report);
        text.lines().last().and_then(|l| l.trim().parse().ok())
    }

    /// Every file under the temp dirs but the log (its content, or what kind of file it is).
    fn files(&self) -> BTreeMap<PathBuf, Vec<u8>> {
        let mut files = BTreeMap::new();
        walk(&self.dir.0, &self.log_dir(), &mut files);
        walk(&self.outside.0, &self.log_dir(), &mut files);
        files
    }

    /// What the test's pod and host netns hold, as `ip` and `sysctl` print it.
    fn netns_state(&self) -> String {
        let mut parts = Vec::new();
        for ns in [&self.topo.pod, &self.topo.host] {
            for args in [
                &["-d", "link", "show"][..],
                &["addr", "show"],
                &["rule"],
                &["-6", "rule"],
                &["route", "show", "table", "all"],
                &["-6", "route", "show", "table", "all"],
                &["neigh", "show", "nud", "permanent"],
            ] {
                parts.push(ns.ipx(args));
            }
            parts.push(ns.exec(&["sysctl", "-a", "--pattern", "rp_filter|disable_ipv6"]));
        }
        parts.join("\n")
    }
}

fn walk(dir: &Path, skip: &Path, files: &mut BTreeMap<PathBuf, Vec<u8>>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path == skip {
            continue;
        }
        let kind = entry.file_type().unwrap();
        if kind.is_dir() {
            files.insert(path.clone(), b"<dir>".to_vec());
            walk(&path, skip, files);
        } else if kind.is_fifo() {
            files.insert(path, b"<fifo>".to_vec());
        } else if kind.is_symlink() {
            let target = fs::read_link(&path).unwrap_or_default();
            files.insert(path, format!("<link to {}>", target.display()).into_bytes());
        } else {
            files.insert(path.clone(), fs::read(&path).unwrap_or_default());
        }
    }
}

/// Reaps `pid` and returns its wait status; kills it (and fails) past TIMEOUT.
fn wait_bounded(pid: i32, child: &mut std::process::Child) -> i32 {
    let started = Instant::now();
    loop {
        let mut status = 0;
        // SAFETY: a plain out-parameter; the pid is our own child, not yet reaped.
        let rc = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if rc == pid {
            return status;
        }
        assert!(rc == 0, "waitpid: {}", std::io::Error::last_os_error());
        if started.elapsed() > TIMEOUT {
            let _ = child.kill();
            panic!("the plugin hung for over {TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// A case: its input, and the error it must give.
struct Case {
    name: String,
    env: Vec<(OsString, OsString)>,
    stdin: Vec<u8>,
    code: u64,
    msg: String,
}

/// Runs every case, asserting the error and that nothing changed; returns the runs.
fn run_cases(scene: &Scene, cases: Vec<Case>) -> Vec<(String, Run)> {
    assert!(!cases.is_empty());
    let files = scene.files();
    let state = scene.netns_state();
    let mut runs = Vec::new();
    for case in cases {
        let run = scene.run(&case.env, case.stdin);
        let name = &case.name;
        assert_eq!(
            run.signal, None,
            "{name}: killed by a signal\n{}",
            run.stderr
        );
        assert!(!run.stderr.contains("panicked"), "{name}: {}", run.stderr);
        assert_eq!(run.exit, Some(1), "{name}: {} {}", run.stdout, run.stderr);
        let body = run.body();
        assert_eq!(body["code"], case.code, "{name}: {}", run.stdout);
        let msg = body["msg"].as_str().unwrap_or_default();
        assert!(
            msg.contains(&case.msg),
            "{name}: {msg:?} lacks {:?}",
            case.msg
        );
        assert!(msg.len() < MAX_MSG, "{name}: a {}-byte message", msg.len());
        assert!(
            !scene.data_dir().exists(),
            "{name}: data_dir was created for input that cannot be served"
        );
        assert_eq!(scene.files(), files, "{name}: a file changed");
        runs.push((case.name, run));
    }
    assert_eq!(scene.netns_state(), state, "a netns changed");
    runs
}

fn case(name: &str, env: Vec<(OsString, OsString)>, stdin: Vec<u8>, code: u64, msg: &str) -> Case {
    Case {
        name: name.to_string(),
        env,
        stdin,
        code,
        msg: msg.to_string(),
    }
}

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/bad-input")
}

#[test]
fn the_bad_input_corpus_is_refused_with_its_code_and_message() {
    let scene = Scene::new("corpus");
    let mut cases = Vec::new();
    let mut names: Vec<PathBuf> = fs::read_dir(corpus_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "stdin"))
        .collect();
    names.sort();
    for stdin_file in names {
        let name = stdin_file
            .file_stem()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let expect: Value = serde_json::from_slice(
            &fs::read(stdin_file.with_extension("expect.json"))
                .unwrap_or_else(|e| panic!("{name}.expect.json: {e}")),
        )
        .unwrap();
        let command = expect["command"].as_str().unwrap_or("ADD");
        cases.push(case(
            &name,
            scene.env(command),
            scene.fill(fs::read(&stdin_file).unwrap()),
            expect["code"].as_u64().unwrap(),
            &scene.fill_text(expect["msg"].as_str().unwrap()),
        ));
    }
    let count = cases.len();
    run_cases(&scene, cases);
    println!("bad-input corpus: {count} cases refused, nothing changed");
}

/// Wrong values (mostly wrong JSON types) for every key of the config: code 7 naming the key
/// (cniVersion of another type too; an unknown version string is code 1).
#[test]
fn a_wrong_type_for_any_config_key_is_code_7_naming_it() {
    let scene = Scene::new("types");
    let wrong: Vec<(&str, Value)> = vec![
        ("cniVersion", json!(1)),
        ("cniVersion", json!(["1.0.0"])),
        ("cniVersion", json!({})),
        ("name", json!(5)),
        ("name", json!(["hostile"])),
        ("overlay_hijack_subnet", json!("10.244.0.0/16")),
        ("overlay_hijack_subnet", json!([5])),
        ("overlay_hijack_subnet", json!({"a": 1})),
        ("overlay_hijack_subnet", json!(["not-a-cidr"])),
        ("overlay_hijack_subnet", json!(["10.244.1.0/16"])),
        ("service_hijack_subnet", json!(true)),
        ("service_hijack_subnet", json!([null])),
        ("additional_hijack_subnet", json!("10.1.0.0/16")),
        ("additional_hijack_subnet", json!([["10.1.0.0/16"]])),
        ("migrate_route", json!("1")),
        ("migrate_route", json!(1.5)),
        ("migrate_route", json!(true)),
        ("migrate_route", json!(2)),
        ("overlay_interface", json!(5)),
        ("overlay_interface", json!("eth0/x")),
        ("overlay_interface", json!("")),
        ("overlay_interface", json!("a-very-long-interface-name")),
        ("host_rule_table", json!("500")),
        ("host_rule_table", json!(500.5)),
        ("host_rule_table", json!(-1)),
        ("host_rule_table", json!(254)),
        ("host_rule_table", json!(4294967296u64)),
        ("route_table", json!([100])),
        ("route_table", json!(0)),
        ("rule_priority", json!("1000")),
        ("rule_priority", json!(40000)),
        ("host_rule_priority", json!({})),
        ("host_rule_priority", json!(0)),
        ("skip_call", json!("true")),
        ("skip_call", json!(1)),
        ("sriov", json!("false")),
        ("rp_filter", json!("strict")),
        ("rp_filter", json!(2)),
        ("rp_filter", json!({"set_host": "yes"})),
        ("rp_filter", json!({"value": "2"})),
        ("rp_filter", json!({"value": 3})),
        ("mac_prefix", json!(5)),
        ("mac_prefix", json!("0a-0b")),
        ("mac_prefix", json!("01:00")),
        ("only_op_mac", json!("yes")),
        ("only_op_mac", json!(true)),
        ("ip_conflict", json!(true)),
        ("ip_conflict", json!({"enabled": "yes"})),
        ("ip_conflict", json!({"enabled": true, "interval": 5})),
        ("ip_conflict", json!({"enabled": true, "interval": "0s"})),
        (
            "ip_conflict",
            json!({"enabled": true, "interval": "1 hour"}),
        ),
        ("ip_conflict", json!({"enabled": true, "retries": "3"})),
        ("ip_conflict", json!({"enabled": true, "retries": 0})),
        ("log_options", json!("debug")),
        ("log_options", json!({"log_level": 5})),
        ("log_options", json!({"log_level": "loud"})),
        ("log_options", json!({"log_file": 5})),
        ("log_options", json!({"log_max_size": "1"})),
        ("log_options", json!({"log_max_count": -1})),
        ("log_options", json!({"log_max_age": []})),
        ("data_dir", json!(5)),
        ("data_dir", json!("relative/dir")),
        ("data_dir", json!("/tmp/../etc")),
        ("prevResult", json!("x")),
        ("prevResult", json!(5)),
        ("prevResult", json!([])),
    ];
    let count = wrong.len();
    let cases = wrong
        .into_iter()
        .map(|(key, value)| {
            let mut conf = scene.config();
            conf[key] = value.clone();
            let stdin = conf.to_string().into_bytes();
            case(&format!("{key} = {value}"), scene.env("ADD"), stdin, 7, key)
        })
        .chain([case(
            "cniVersion 9.9.9",
            scene.env("ADD"),
            {
                let mut conf = scene.config();
                conf["cniVersion"] = json!("9.9.9");
                conf.to_string().into_bytes()
            },
            1,
            "\"9.9.9\" is not one of",
        )])
        .collect();
    run_cases(&scene, cases);
    println!("wrong config values: {count} cases, every key named, nothing changed");
}

/// CNI_* variables: unknown commands, ids and names that try to leave data_dir (`/`, `..`,
/// invalid UTF-8, over-long), missing ones. No record may be written anywhere.
#[test]
fn bad_variables_are_code_4_and_no_file_is_written_outside_data_dir() {
    let scene = Scene::new("env");
    let escape = unique("escape");
    let escapes = [
        format!("../{escape}"),
        format!("../../{escape}"),
        format!("a/../../{escape}"),
    ];
    let stdin = scene.config().to_string().into_bytes();
    let with = |var: &str, value: &[u8]| {
        let mut env = scene.env("ADD");
        env.retain(|(k, _)| k != var);
        env.push((var.into(), OsStr::from_bytes(value).to_os_string()));
        env
    };
    let without = |var: &str| {
        let mut env = scene.env("ADD");
        env.retain(|(k, _)| k != var);
        env
    };
    let mut cases = Vec::new();
    for command in ["FROB", "add", "ADD ", "", "DEL\n"] {
        cases.push(case(
            &format!("CNI_COMMAND={command:?}"),
            with("CNI_COMMAND", command.as_bytes()),
            stdin.clone(),
            4,
            "is not one of ADD, DEL, CHECK, VERSION, GC, STATUS",
        ));
    }
    let long_id = "c".repeat(300);
    let mut ids: Vec<&[u8]> = escapes.iter().map(|e| e.as_bytes()).collect();
    ids.extend([
        b"a/b".as_slice(),
        b"..",
        b".",
        b".hidden",
        b"-lead",
        b"\xff\xfe",
        b"ctr\nid",
        long_id.as_bytes(),
    ]);
    for id in ids {
        for command in ["ADD", "DEL", "CHECK"] {
            let mut env = with("CNI_CONTAINERID", id);
            env.retain(|(k, _)| k != "CNI_COMMAND");
            env.push(("CNI_COMMAND".into(), command.into()));
            let name = format!(
                "{command} CNI_CONTAINERID={:?}",
                String::from_utf8_lossy(id)
            );
            cases.push(case(&name, env, stdin.clone(), 4, "CNI_CONTAINERID"));
        }
    }
    let long_ifname = "net1234567890123";
    for ifname in [
        "a/b".as_bytes(),
        b"..",
        b".",
        long_ifname.as_bytes(),
        b"net 1",
        b"net:1",
        b"\xff",
    ] {
        let name = format!("CNI_IFNAME={:?}", String::from_utf8_lossy(ifname));
        cases.push(case(
            &name,
            with("CNI_IFNAME", ifname),
            stdin.clone(),
            4,
            "CNI_IFNAME",
        ));
    }
    for var in ["CNI_CONTAINERID", "CNI_IFNAME", "CNI_NETNS"] {
        cases.push(case(
            &format!("no {var}"),
            without(var),
            stdin.clone(),
            4,
            &format!("missing {var}"),
        ));
        cases.push(case(
            &format!("empty {var}"),
            with(var, b""),
            stdin.clone(),
            4,
            &format!("missing {var}"),
        ));
    }
    cases.push(case(
        "relative CNI_NETNS",
        with("CNI_NETNS", b"run/netns/x"),
        stdin.clone(),
        4,
        "is not an absolute path",
    ));
    let count = cases.len();
    run_cases(&scene, cases);
    for e in &escapes {
        for base in [
            scene.dir.0.clone(),
            std::env::temp_dir(),
            PathBuf::from("/"),
        ] {
            let leaked = base.join(format!("{}-net1.json", e.trim_start_matches("../")));
            assert!(!leaked.exists(), "{} was written", leaked.display());
        }
    }
    println!("bad CNI_* variables: {count} cases, no file written anywhere");
}

/// CNI_NETNS that is missing or not a netns: ADD and CHECK are code 3 naming the path, before
/// the host lock is taken (no data_dir) and without blocking on a FIFO.
#[test]
fn a_missing_or_unreadable_netns_is_code_3_and_never_hangs() {
    let scene = Scene::new("netns");
    let stdin = scene.config().to_string().into_bytes();
    let paths: Vec<PathBuf> = vec![
        PathBuf::from(format!("/run/netns/{}", unique("nonexistent"))),
        scene.dir.join("a-file"),
        scene.dir.join("a-dir"),
        scene.fifo(),
        PathBuf::from("/etc/hostname/x"),
        PathBuf::from("/dev/null"),
        PathBuf::from(format!("/{}", "n".repeat(5000))),
    ];
    let mut cases = Vec::new();
    for path in &paths {
        for command in ["ADD", "CHECK"] {
            let mut env = scene.env(command);
            env.retain(|(k, _)| k != "CNI_NETNS");
            env.push(("CNI_NETNS".into(), path.clone().into_os_string()));
            cases.push(case(
                &format!("{command} CNI_NETNS={}", path.display()),
                env,
                stdin.clone(),
                3,
                "is not a network namespace",
            ));
        }
    }
    let started = Instant::now();
    run_cases(&scene, cases);
    println!(
        "netns paths: {} cases (FIFO included) in {:?}",
        paths.len() * 2,
        started.elapsed()
    );
}

/// 16 MiB of stdin is refused after reading at most 4 MiB (bounded memory), deep nesting
/// meets serde_json's recursion limit (code 6, not a stack overflow).
#[test]
fn huge_and_deeply_nested_stdin_is_code_6_with_bounded_memory() {
    let scene = Scene::new("size");
    let deep = |depth: usize| format!("{}{}", "[".repeat(depth), "]".repeat(depth)).into_bytes();
    let mut nested_in_config = scene.config().to_string();
    nested_in_config.insert_str(1, &format!("\"x\": {},", "[".repeat(100_000)));
    let mut huge = scene.config().to_string().into_bytes();
    huge.resize(16 << 20, b' ');
    run_cases(
        &scene,
        vec![
            case(
                "16 MiB",
                scene.env("ADD"),
                huge,
                6,
                "larger than 4194304 bytes",
            ),
            case(
                "depth 100000",
                scene.env("ADD"),
                deep(100_000),
                6,
                "recursion limit exceeded",
            ),
            case(
                "depth 129",
                scene.env("ADD"),
                deep(129),
                6,
                "recursion limit exceeded",
            ),
            case(
                "nested in the config",
                scene.env("ADD"),
                nested_in_config.into_bytes(),
                6,
                "recursion limit exceeded",
            ),
        ],
    );
    // Peak memory of the binary on 16 MiB, against 4 MiB (the most it reads) and 1 byte.
    let mut at_limit = vec![b' '; 4 << 20];
    at_limit[0] = b'{';
    let mut huge = vec![b' '; 16 << 20];
    huge[0] = b'{';
    let env = scene.env("ADD");
    let rss = [
        scene.peak_rss_kb(&env, b"{".to_vec()),
        scene.peak_rss_kb(&env, at_limit),
        scene.peak_rss_kb(&env, huge),
    ];
    let [Some(one_byte), Some(limit), Some(huge)] = rss else {
        println!("memory: /usr/bin/time is not installed, peak RSS not measured");
        return;
    };
    println!(
        "memory: peak RSS {huge} KiB on 16 MiB of stdin, {limit} KiB on 4 MiB, {one_byte} KiB on 1 byte"
    );
    assert!(
        huge <= limit + 1024,
        "16 MiB of stdin took {huge} KiB, 4 MiB {limit} KiB: not bounded by the limit"
    );
    assert!(huge < one_byte + 12 * 1024, "{huge} KiB vs {one_byte} KiB");
}

/// The files a hostile config aims at, as they are: everything outside the allowed
/// directory, the foreign files and links planted inside it, and any rotation of them.
fn victims(scene: &Scene, planted: &[PathBuf]) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut files = BTreeMap::new();
    walk(&scene.outside.0, &scene.log_dir(), &mut files);
    for path in planted {
        let mut kind = fs::symlink_metadata(path)
            .map(|m| format!("{:?}", m.file_type()).into_bytes())
            .unwrap_or_default();
        kind.extend(fs::read(path).unwrap_or_default());
        files.insert(path.clone(), kind);
    }
    for entry in fs::read_dir(&scene.dir.0).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if planted.iter().any(|p| {
            p.file_name()
                .is_some_and(|n| name.starts_with(&format!("{}.", n.to_string_lossy())))
        }) {
            files.insert(entry.path(), b"<a rotation>".to_vec());
        }
    }
    files
}

/// BEHAVIOUR (issue 12): a config cannot make router write, rename or remove a file that is
/// not its own: a log file outside the allowed directories, a symlink at an allowed log
/// path, another program's file (larger than log_max_size) named as the log, a data_dir
/// outside the allowed directories or through a symlink. ADD, CHECK and GC refuse what they
/// can refuse; DEL always succeeds (with a usable config it removes the scene's owned
/// objects, as a DEL does); the victims stay byte for byte, under their names.
#[test]
fn a_config_cannot_make_router_write_rename_or_remove_a_file_not_its_own() {
    let scene = Scene::new("victims");
    let (link_log, big_log, link_dir) = (
        scene.dir.join("link.log"),
        scene.dir.join("big.log"),
        scene.dir.join("linkdir"),
    );
    std::os::unix::fs::symlink(scene.victim(), &link_log).unwrap();
    std::os::unix::fs::symlink(&scene.outside.0, &link_dir).unwrap();
    fs::write(&big_log, VICTIM.repeat((2 << 20) / VICTIM.len() + 1)).unwrap();
    let planted = [link_log.clone(), big_log.clone(), link_dir.clone()];
    let before = victims(&scene, &planted);
    let outside_data = scene.outside.join("data");
    let cases: Vec<(&str, Value, Option<u64>)> = vec![
        (
            "log_file outside",
            json!({"log_options": {"log_file": scene.victim()}}),
            Some(7),
        ),
        (
            "a symlink at the log path",
            json!({"log_options": {"log_file": link_log}}),
            None,
        ),
        (
            "a foreign file larger than log_max_size as the log",
            json!({"log_options": {"log_file": big_log, "log_max_size": 1}}),
            None,
        ),
        (
            "data_dir outside",
            json!({"data_dir": outside_data}),
            Some(7),
        ),
        (
            "data_dir through a symlink",
            json!({"data_dir": link_dir.join("data")}),
            Some(5),
        ),
    ];
    for (name, patch, refused) in cases {
        let mut conf = scene.config();
        conf["cniVersion"] = json!("1.1.0");
        conf["cni.dev/valid-attachments"] = json!([]);
        for (k, v) in patch.as_object().unwrap() {
            conf[k] = v.clone();
        }
        let stdin = conf.to_string().into_bytes();
        let mut commands = vec!["CHECK", "GC", "DEL", "DEL"];
        if refused == Some(5) {
            // Only this case reaches data_dir on ADD: the others are refused with code 7 by
            // the corpus, and ADD with a usable config would change the test's pod.
            commands.insert(0, "ADD");
        }
        for command in commands {
            let run = scene.run(&scene.env(command), stdin.clone());
            assert_eq!(run.signal, None, "{name} {command}: {}", run.stderr);
            assert!(!run.stderr.contains("panicked"), "{name}: {}", run.stderr);
            if command == "DEL" {
                assert_eq!(
                    run.exit,
                    Some(0),
                    "{name} DEL: {} {}",
                    run.stdout,
                    run.stderr
                );
                assert!(run.stdout.is_empty(), "{name} DEL: {}", run.stdout);
            } else if let Some(code) = refused {
                assert_eq!(run.body()["code"], code, "{name} {command}: {}", run.stdout);
            } else if command == "GC" {
                assert_eq!(run.exit, Some(0), "{name} GC: {}", run.stdout);
            }
            assert_eq!(
                victims(&scene, &planted),
                before,
                "{name} {command}: a victim changed"
            );
        }
    }
    assert!(
        !outside_data.exists(),
        "data_dir was made outside the allowed directories"
    );
}
