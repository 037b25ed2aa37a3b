//! ipamd refusing to start, as a user meets it — bad Kubernetes settings, another daemon on its
//! socket, arguments it does not take: the real binary, its message and exit code.

use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::Command;

/// A state directory of its own (the tests run in parallel).
fn fresh_dir() -> PathBuf {
    static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("eniplan-refusal-{}-{call}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs ipamd with `dir` as its state directory and home, IMDS and EC2 pointed at a port
/// nothing listens on; its exit code and stderr.
fn ipamd_in(dir: &Path, env: &[(&str, &str)]) -> (Option<i32>, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ipamd"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", dir) // no ~/.kube/config
        .env("ENIPLAN_STATE_DIR", dir)
        .env("ENIPLAN_HOST_NETWORKING", "false")
        .env("AWS_REGION", "us-west-2")
        .env("AWS_EC2_ENDPOINT", "http://127.0.0.1:9") // never reached
        .env("ENIPLAN_IMDS_ENDPOINT", "http://127.0.0.1:9")
        .env("DISABLE_INTROSPECTION", "true")
        .env("DISABLE_METRICS", "true");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn ipamd(env: &[(&str, &str)]) -> (Option<i32>, String) {
    let dir = fresh_dir();
    let result = ipamd_in(&dir, env);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

#[test]
fn a_node_name_without_any_kubernetes_client_configuration_exits_8() {
    let (code, err) = ipamd(&[("MY_NODE_NAME", "n1")]);
    assert_eq!(code, Some(8), "{err}");
    assert!(
        err.contains("KUBECONFIG") && err.contains("service account"),
        "{err}"
    );
}

#[test]
fn custom_networking_without_a_node_name_exits_2_naming_the_variable() {
    let (code, err) = ipamd(&[("AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG", "true")]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("MY_NODE_NAME"), "{err}");
}

#[test]
fn an_eniconfig_key_that_is_no_label_key_exits_2() {
    let (code, err) = ipamd(&[
        ("MY_NODE_NAME", "n1"),
        ("ENI_CONFIG_LABEL_DEF", "zone, region"),
    ]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("ENI_CONFIG_LABEL_DEF") && err.contains("zone, region"),
        "{err}"
    );
}

#[test]
fn enable_pod_eni_without_a_node_name_exits_2_naming_the_variable() {
    let (code, err) = ipamd(&[("ENABLE_POD_ENI", "true")]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("MY_NODE_NAME") && err.contains("ENABLE_POD_ENI"),
        "{err}"
    );
}

#[test]
fn a_socket_another_process_serves_is_left_alone_and_start_up_exits_9() {
    let dir = fresh_dir();
    let socket = dir.join("ipamd.sock");
    // The other daemon (aws-node's ipamd in real life).
    let other = UnixListener::bind(&socket).unwrap();
    let (code, err) = ipamd_in(&dir, &[]);
    assert_eq!(code, Some(9), "{err}");
    assert!(
        err.contains(&socket.display().to_string())
            && err.contains("aws-node")
            && err.contains("docs/install.md"),
        "the message names the socket, the likely owner and where to read on: {err}"
    );
    assert!(
        !err.contains("IMDS") && !err.contains("EC2"),
        "refused before IMDS or EC2 was asked: {err}"
    );
    // The other process still has its socket: nothing was removed or rebound.
    other.set_nonblocking(true).unwrap();
    let _client = UnixStream::connect(&socket).expect("the other daemon's socket still answers");
    assert!(
        other.accept().is_ok(),
        "the connection reached the other daemon"
    );
    drop(other);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn version_and_help_answer_without_starting_and_other_arguments_exit_2() {
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_ipamd"))
            .args(args)
            .env_clear()
            .output()
            .unwrap()
    };
    let v = run(&["--version"]);
    assert_eq!(v.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&v.stdout).trim(),
        format!("ipamd {}", env!("CARGO_PKG_VERSION"))
    );
    let h = run(&["--help"]);
    assert_eq!(h.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&h.stdout).contains("docs/configuration.md"));
    let bad = run(&["--warm-eni-target", "2"]);
    assert_eq!(bad.status.code(), Some(2));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("--warm-eni-target") && err.contains("environment variables"),
        "{err}"
    );
}
