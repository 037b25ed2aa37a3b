//! Bad input to the plugin binary, as a runtime would hand it over: every case gets the spec's
//! error object on stdout with the right code, a non-zero exit, and nothing on the node (no
//! ipamd is even asked: the socket named does not exist).

use std::io::Write as _;
use std::process::{Command, Output, Stdio};

use serde_json::{Value, json};

const ENV: &[(&str, &str)] = &[
    ("CNI_COMMAND", "ADD"),
    ("CNI_CONTAINERID", "c1"),
    ("CNI_NETNS", "/var/run/netns/does-not-exist"),
    ("CNI_IFNAME", "eth0"),
    ("CNI_PATH", "/opt/cni/bin"),
    ("CNI_ARGS", "K8S_POD_NAMESPACE=default;K8S_POD_NAME=p"),
];

fn conf() -> Value {
    json!({"cniVersion": "1.0.0", "name": "aws-cni", "type": "eniplan-cni",
           "ipamdSocket": "/nonexistent/ipamd.sock", "pluginLogFile": "stderr"})
}

fn run(env: &[(&str, &str)], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_eniplan-cni"))
        .env_clear()
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    // A plugin may stop reading early (an oversized stdin): a broken pipe is not the test's error.
    let _ = input.write_all(stdin);
    drop(input);
    child.wait_with_output().unwrap()
}

fn error(out: &Output) -> Value {
    assert!(!out.status.success(), "{out:?}");
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    assert!(v["msg"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
    v
}

fn with(key: &str, value: Value) -> Vec<u8> {
    let mut c = conf();
    c[key] = value;
    serde_json::to_vec(&c).unwrap()
}

#[test]
fn garbage_and_oversized_stdin_are_code_6() {
    let e = error(&run(ENV, b"\x00\x01 not json"));
    assert_eq!(e["code"], 6, "{e}");
    let big = vec![b' '; 2 * 1024 * 1024];
    let e = error(&run(ENV, &big));
    assert_eq!(e["code"], 6, "{e}");
    assert!(e["msg"].as_str().unwrap().contains("bytes"), "{e}");
}

#[test]
fn missing_variables_are_code_4_naming_them() {
    for drop in ["CNI_COMMAND", "CNI_CONTAINERID", "CNI_IFNAME", "CNI_NETNS"] {
        let env: Vec<_> = ENV.iter().copied().filter(|(k, _)| *k != drop).collect();
        let e = error(&run(&env, &serde_json::to_vec(&conf()).unwrap()));
        assert_eq!(e["code"], 4, "{drop}: {e}");
        assert!(e["msg"].as_str().unwrap().starts_with(drop), "{e}");
    }
}

#[test]
fn an_unsupported_version_is_code_1_in_the_newest_version() {
    let e = error(&run(ENV, &with("cniVersion", "0.2.0".into())));
    assert_eq!(e["code"], 1, "{e}");
    assert_eq!(e["cniVersion"], "1.1.0");
}

#[test]
fn bad_values_are_code_7_naming_key_and_value_in_the_configs_version() {
    for (key, value) in [
        ("vethPrefix", json!("abcde")),
        ("mtu", json!(10_000)),
        ("mtu", json!("100")),
    ] {
        let e = error(&run(ENV, &with(key, value.clone())));
        assert_eq!(e["code"], 7, "{key}: {e}");
        assert!(e["msg"].as_str().unwrap().starts_with(key), "{e}");
        assert_eq!(e["cniVersion"], "1.0.0", "{e}");
    }
}

#[test]
fn an_unopenable_netns_is_code_3() {
    let e = error(&run(ENV, &serde_json::to_vec(&conf()).unwrap()));
    assert_eq!(e["code"], 3, "{e}");
    assert!(e["msg"].as_str().unwrap().contains("does-not-exist"), "{e}");
}

#[test]
fn version_answers_without_a_configuration_of_a_spoken_version() {
    let out = run(&[("CNI_COMMAND", "VERSION")], br#"{"cniVersion":"0.2.0"}"#);
    assert!(out.status.success(), "{out:?}");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["cniVersion"], "1.1.0");
    assert_eq!(v["supportedVersions"].as_array().unwrap().len(), 5);
}

#[test]
fn deeply_nested_stdin_is_code_6_not_a_crash() {
    // 100,000 levels: far past serde_json's recursion limit, well under the size limit.
    let mut deep = b"{\"cniVersion\":\"1.0.0\",\"name\":\"aws-cni\",\"x\":".to_vec();
    deep.extend(std::iter::repeat_n(b'[', 100_000));
    deep.extend(std::iter::repeat_n(b']', 100_000));
    deep.push(b'}');
    let out = run(ENV, &deep);
    let e = error(&out);
    assert_eq!(e["code"], 6, "{e}");
    assert!(e["msg"].as_str().unwrap().contains("recursion"), "{e}");
}

#[test]
fn the_log_file_is_never_world_writable_even_under_umask_0() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = std::env::temp_dir().join(format!("eniplan-cni-log-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let log = dir.join("plugin.log");
    let mut c = conf();
    c["pluginLogFile"] = json!(log.to_str().unwrap());
    // The runtime's umask is not ours to trust: run the plugin under umask 0.
    let mut child = Command::new("sh")
        .args([
            "-c",
            "umask 000; exec \"$0\"",
            env!("CARGO_BIN_EXE_eniplan-cni"),
        ])
        .env_clear()
        .envs(ENV.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&serde_json::to_vec(&c).unwrap())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    error(&out); // no ipamd: the ADD fails, after logging
    let mode = std::fs::metadata(&log).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, eniplan_cni::log::LOG_MODE, "log file mode {mode:o}");
    assert_eq!(mode & 0o022, 0, "writable by group or others: {mode:o}");
    std::fs::remove_dir_all(&dir).unwrap();
}
