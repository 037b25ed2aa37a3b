//! Every exec probe written in `deploy/`, run exactly as the kubelet runs it: the command line
//! from the manifest, as a process, with the container's environment from the manifest, against
//! a running daemon (in-process, on the `cloud` fake). A probe must pass while the daemon
//! serves and fail when there is no daemon, so a probe that can never pass (or never fail) is
//! caught before a node restarts ipamd forever.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use cloud::fake::{FakeEc2, FakeImds};
use ipamd::Stage;
use ipamd::config::Config;
use tokio::sync::watch;

/// Where the image puts the binaries (the manifest's paths).
const IMAGE_BIN: &str = "/usr/local/bin/";

/// One `exec` probe of a container in a manifest.
#[derive(Debug)]
struct Probe {
    file: String,
    kind: String,
    command: Vec<String>,
    /// The container's literal `env` values (`valueFrom` entries are skipped).
    env: BTreeMap<String, String>,
}

/// Reads the exec probes of every container (init containers too) of every workload in a
/// manifest, with the container's literal `env` values. A probe that is not `exec` is not
/// this test's business; an `exec` without a command list fails the test.
fn probes(file: &Path) -> Vec<Probe> {
    use serde::Deserialize as _;
    let text = std::fs::read_to_string(file).unwrap();
    let mut out = Vec::new();
    for doc in serde_norway::Deserializer::from_str(&text) {
        let doc = serde_json::Value::deserialize(doc)
            .unwrap_or_else(|e| panic!("{}: not YAML: {e}", file.display()));
        let pod = &doc["spec"]["template"]["spec"];
        let containers = ["initContainers", "containers"]
            .iter()
            .filter_map(|k| pod[*k].as_array())
            .flatten();
        for c in containers {
            let env: BTreeMap<String, String> = c["env"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|e| {
                    Some((
                        e["name"].as_str()?.to_owned(),
                        e["value"].as_str()?.to_owned(),
                    ))
                })
                .collect();
            for kind in ["readinessProbe", "livenessProbe", "startupProbe"] {
                let exec = &c[kind]["exec"];
                if exec.is_null() {
                    continue;
                }
                let command = exec["command"]
                    .as_array()
                    .and_then(|a| a.iter().map(|v| v.as_str().map(str::to_owned)).collect())
                    .unwrap_or_else(|| {
                        panic!("{}: {kind}: {exec} has no command list", file.display())
                    });
                out.push(Probe {
                    file: file.display().to_string(),
                    kind: kind.to_owned(),
                    command,
                    env: env.clone(),
                });
            }
        }
    }
    out
}

fn every_probe() -> Vec<Probe> {
    let deploy = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy");
    let mut files: Vec<_> = std::fs::read_dir(&deploy)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    files.iter().flat_map(|f| probes(f)).collect()
}

/// Runs a probe as the kubelet does: the manifest's command (its image path mapped to the
/// binary cargo built), the container's environment and the state directory the daemon uses.
fn run(probe: &Probe, state_dir: &Path) -> Output {
    let (program, args) = probe.command.split_first().expect("a probe command");
    let name = program
        .strip_prefix(IMAGE_BIN)
        .unwrap_or_else(|| panic!("{}: {program} is not under {IMAGE_BIN}", probe.file));
    let binary = match name {
        "ipamd-client" => env!("CARGO_BIN_EXE_ipamd-client"),
        "ipamd" => env!("CARGO_BIN_EXE_ipamd"),
        other => panic!(
            "{}: {} runs {other}, which the image does not ship",
            probe.file, probe.kind
        ),
    };
    Command::new(binary)
        .args(args)
        .env_clear()
        .envs(&probe.env)
        .env("ENIPLAN_STATE_DIR", state_dir)
        .output()
        .expect("run the probe")
}

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("eniplan-probe-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn the_manifests_have_probes_and_they_run_the_shipped_client() {
    let probes = every_probe();
    let kinds: Vec<_> = probes.iter().map(|p| p.kind.as_str()).collect();
    assert!(
        kinds.contains(&"readinessProbe")
            && kinds.contains(&"livenessProbe")
            && kinds.contains(&"startupProbe"),
        "{probes:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_exec_probe_passes_against_a_serving_daemon_and_fails_without_one() {
    let probes = every_probe();
    let dir = temp_dir("serve");
    for p in &probes {
        let out = run(p, &dir);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{} {}: must fail while no daemon serves: {out:?}",
            p.file,
            p.kind
        );
    }

    let ec2 = FakeEc2::new();
    let vpc = ec2.create_vpc("10.0.0.0/16".parse().unwrap());
    let subnet = ec2
        .create_subnet(&vpc, "10.0.0.0/20".parse().unwrap(), "us-west-2a")
        .unwrap();
    let instance = ec2.run_instance("m5.large", &subnet).unwrap();
    let vars = BTreeMap::from([
        ("ENIPLAN_STATE_DIR".to_owned(), dir.display().to_string()),
        ("DISABLE_INTROSPECTION".to_owned(), "true".to_owned()),
        ("DISABLE_METRICS".to_owned(), "true".to_owned()),
        ("ENIPLAN_HOST_NETWORKING".to_owned(), "false".to_owned()),
    ]);
    let (stage, rx) = watch::channel(Stage::Running);
    let daemon = tokio::spawn(ipamd::run(
        Config::from_vars(&vars).unwrap(),
        ec2.clone(),
        FakeImds::new(&ec2, &instance),
        rx,
    ));
    let deadline = Instant::now() + Duration::from_secs(30);
    while ipamd::client::health(&dir.join("ipamd.sock")).await != Ok(true) {
        assert!(
            Instant::now() < deadline,
            "the daemon did not serve in 30 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    for p in &probes {
        let out = tokio::task::block_in_place(|| run(p, &dir));
        assert!(
            out.status.success(),
            "{} {} {:?} failed against a serving daemon: {}",
            p.file,
            p.kind,
            p.command,
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "SERVING");
    }

    let _ = stage.send(Stage::Exit);
    daemon.await.unwrap().unwrap();
    for p in &probes {
        let out = run(p, &dir);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{} {}: after exit",
            p.file,
            p.kind
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn usage_errors_exit_2_and_name_the_problem() {
    let out = Command::new(env!("CARGO_BIN_EXE_ipamd-client"))
        .arg("helth")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("helth"),
        "{out:?}"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_ipamd-client"))
        .args(["add"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "add needs a container id");
}
