//! ipamd refuses to start beside another process that serves its socket (aws-node, or a second
//! ipamd), as a user meets it: the real binary, its message and exit code, and the other
//! process's socket left working.

use std::os::unix::net::{UnixListener, UnixStream};
use std::process::Command;

#[test]
fn a_socket_another_process_serves_is_left_alone_and_start_up_exits_9() {
    let dir = std::env::temp_dir().join(format!("eniplan-beside-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let socket = dir.join("ipamd.sock");
    // The other daemon (aws-node's ipamd in real life).
    let other = UnixListener::bind(&socket).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ipamd"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", &dir)
        .env("ENIPLAN_STATE_DIR", &dir)
        .env("ENIPLAN_HOST_NETWORKING", "false")
        .env("AWS_REGION", "us-west-2")
        .env("AWS_EC2_ENDPOINT", "http://127.0.0.1:9") // never reached
        .env("ENIPLAN_IMDS_ENDPOINT", "http://127.0.0.1:9")
        .env("DISABLE_INTROSPECTION", "true")
        .env("DISABLE_METRICS", "true")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(9), "{err}");
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
