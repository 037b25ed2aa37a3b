//! `eniplan-cni install` as the aws-node container runs it: the VPC CNI's variables in, the
//! plugin and `10-aws.conflist` out, written only once ipamd answers its health check.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

mod common;

fn temp_dir(tag: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("eniplan-cni-install-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn install(dir: &Path, socket: &Path, extra: &[(&str, &str)], args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_eniplan-cni"));
    cmd.arg("install")
        .args(args)
        .env_clear()
        .env("HOST_CNI_BIN_PATH", dir.join("bin"))
        .env("HOST_CNI_CONFDIR_PATH", dir.join("net.d"))
        .env("ENIPLAN_IPAMD_SOCKET", socket);
    for (k, v) in extra {
        cmd.env(k, v);
    }
    cmd.output().expect("run eniplan-cni install")
}

#[test]
fn bad_variables_exit_2_naming_them_and_write_nothing() {
    let dir = temp_dir("bad");
    for (k, v) in [
        ("AWS_VPC_K8S_CNI_VETHPREFIX", "vlan"),
        ("POD_MTU", "500"),
        ("ENABLE_BANDWIDTH_PLUGIN", "maybe"),
        ("DISABLE_TCP_EARLY_DEMUX", "1"),
    ] {
        let out = install(
            &dir,
            &dir.join("none.sock"),
            &[(k, v)],
            &["--wait-secs", "1"],
        );
        assert_eq!(out.status.code(), Some(2), "{k}={v}: {out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(&format!("{k}={v:?}")), "{stderr}");
    }
    for args in [
        &["--wait", "x"][..],
        &["--wait-secs"],
        &["--wait-secs", "soon"],
    ] {
        let out = install(&dir, &dir.join("none.sock"), &[], args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("usage: eniplan-cni install"));
    }
    assert!(!dir.join("net.d").exists() && !dir.join("bin").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn without_a_healthy_ipamd_no_conflist_is_written() {
    let dir = temp_dir("unhealthy");
    let socket = dir.join("nobody.sock");
    let out = install(&dir, &socket, &[], &["--wait-secs", "1"]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains(&socket.display().to_string()));
    assert!(!dir.join("net.d/10-aws.conflist").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn disable_tcp_early_demux_turns_it_off_in_the_nodes_namespace_only() {
    let dir = temp_dir("demux");
    let node = common::Netns::new(format!("demux-{}", std::process::id()));
    let read = |ns: &str| {
        let out = Command::new("ip")
            .args([
                "netns",
                "exec",
                ns,
                "cat",
                eniplan_cni::install::TCP_EARLY_DEMUX,
            ])
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    assert_eq!(read(&node.0), "1", "a namespace starts with early demux on");
    let host_before = std::fs::read_to_string(eniplan_cni::install::TCP_EARLY_DEMUX).unwrap();
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            &node.0,
            env!("CARGO_BIN_EXE_eniplan-cni"),
            "install",
            "--wait-secs",
            "1",
        ])
        .env_clear()
        .env("HOST_CNI_BIN_PATH", dir.join("bin"))
        .env("HOST_CNI_CONFDIR_PATH", dir.join("net.d"))
        .env("ENIPLAN_IPAMD_SOCKET", dir.join("none.sock"))
        .env("DISABLE_TCP_EARLY_DEMUX", "true")
        .output()
        .unwrap();
    // Set before the wait for ipamd (which fails here: nobody answers).
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert_eq!(read(&node.0), "0");
    assert_eq!(
        std::fs::read_to_string(eniplan_cni::install::TCP_EARLY_DEMUX).unwrap(),
        host_before,
        "only the namespace the installer runs in"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_ipamd_healthy_the_plugin_and_conflist_are_installed() {
    let dir = temp_dir("ok");
    let state = dir.join("state");
    std::fs::create_dir_all(&state).unwrap();
    let d = common::ipamd(&state, "m5.large").await;
    let socket = d.socket.clone();
    let out = tokio::task::spawn_blocking({
        let dir = dir.clone();
        move || {
            install(
                &dir,
                &socket,
                &[("POD_MTU", "1500"), ("ENABLE_BANDWIDTH_PLUGIN", "true")],
                &["--wait-secs", "10"],
            )
        }
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{out:?}");
    let conflist: Value =
        serde_json::from_slice(&std::fs::read(dir.join("net.d/10-aws.conflist")).unwrap()).unwrap();
    assert_eq!(conflist["name"], "aws-cni");
    assert_eq!(conflist["plugins"][0]["type"], "eniplan-cni");
    assert_eq!(conflist["plugins"][0]["mtu"], "1500");
    assert_eq!(
        conflist["plugins"][0]["ipamdSocket"],
        d.socket.display().to_string()
    );
    let types: Vec<&str> = conflist["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["type"].as_str())
        .collect();
    assert_eq!(types, ["eniplan-cni", "portmap", "bandwidth"]);
    // The installed plugin is this build, and it runs.
    let installed = dir.join("bin/eniplan-cni");
    assert_eq!(
        std::fs::read(&installed).unwrap(),
        std::fs::read(env!("CARGO_BIN_EXE_eniplan-cni")).unwrap()
    );
    let version = Command::new(&installed)
        .env("CNI_COMMAND", "VERSION")
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&version.stdout).unwrap();
    assert!(
        v["supportedVersions"]
            .as_array()
            .unwrap()
            .contains(&"0.4.0".into())
    );
    d.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_running_installs_then_stays_up_until_sigterm() {
    use std::io::{BufRead as _, BufReader};
    let dir = temp_dir("keep");
    let state = dir.join("state");
    std::fs::create_dir_all(&state).unwrap();
    let d = common::ipamd(&state, "m5.large").await;
    let mut child = Command::new(env!("CARGO_BIN_EXE_eniplan-cni"))
        .args(["install", "--keep-running", "--wait-secs", "10"])
        .env_clear()
        .env("HOST_CNI_BIN_PATH", dir.join("bin"))
        .env("HOST_CNI_CONFDIR_PATH", dir.join("net.d"))
        .env("ENIPLAN_IPAMD_SOCKET", &d.socket)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Its stderr says when it has installed and is waiting (it closes if the process exits).
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let waiting = tokio::task::spawn_blocking(move || {
        lines
            .by_ref()
            .map_while(Result::ok)
            .find(|l| l.contains("staying up until SIGTERM"))
    })
    .await
    .unwrap();
    assert!(waiting.is_some(), "it stayed up after installing");
    assert!(dir.join("net.d/10-aws.conflist").exists());
    assert!(child.try_wait().unwrap().is_none(), "still running");
    let pid = i32::try_from(child.id()).unwrap();
    assert_eq!(kill(pid, "TERM"), 0);
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert_eq!(status.code(), Some(0), "SIGTERM ends it cleanly");
    d.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// `kill -SIG PID` with the command (no libc call in the test).
fn kill(pid: i32, sig: &str) -> i32 {
    Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .status()
        .unwrap()
        .code()
        .unwrap_or(-1)
}
