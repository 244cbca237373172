//! The plugin still works when its log file cannot be opened: it logs JSON lines to stderr
//! instead, and stdout keeps only the CNI answer.

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::{json, Value};

#[test]
fn an_unopenable_log_file_falls_back_to_json_lines_on_stderr() {
    let data_dir = std::env::temp_dir().join(format!("router-logfb-{}", std::process::id()));
    let conf = json!({
        "cniVersion": "1.0.0",
        "name": "net",
        "type": "router",
        "overlay_hijack_subnet": ["10.244.0.0/16"],
        "service_hijack_subnet": [],
        "data_dir": data_dir,
        // /proc refuses new directories: the file can never be opened.
        "log_options": { "log_level": "info", "log_file": "/proc/router-no-such-dir/router.log" }
    });
    let mut child = Command::new(env!("CARGO_BIN_EXE_router"))
        .env_clear()
        .env("CNI_COMMAND", "DEL")
        .env("CNI_CONTAINERID", "logfallback")
        .env("CNI_IFNAME", "net1")
        // The log file lies in an allowed directory that refuses new directories.
        .env(
            "ROUTER_ALLOWED_DIRS",
            format!("/proc:{}", std::env::temp_dir().display()),
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(conf.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let _ = std::fs::remove_dir_all(&data_dir);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(out.stdout.is_empty(), "DEL prints nothing on stdout");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<Value> = stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l["fields"]["message"] == "cannot open the log file: logging to stderr"),
        "{stderr}"
    );
    assert!(
        lines.iter().any(|l| l["fields"]["message"] == "done"),
        "{stderr}"
    );
}
