//! The node world's side of the plugin's tests and benches: the real `ipamd` binary inside a
//! node namespace the harness stood up (harness/README.md "The node world"), and what its
//! checkpoint and the pods' namespaces show.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use super::Netns;

/// The `ipamd` binary cargo built beside this test or bench (`target/<profile>/ipamd`). Cargo
/// builds a dependency's binaries only when that package is tested too (the workspace run), so
/// after `cargo test -p eniplan-cni` alone it could be an old one: a binary older than the
/// sources it is built from fails the test instead of being run. A bench (the release
/// profile) needs `cargo build --release -p ipamd` first.
pub fn ipamd_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(Path::parent).unwrap();
    let bin = dir.join("ipamd");
    let hint = if dir.ends_with("release") {
        "build it with `cargo build --release -p ipamd`"
    } else {
        "build it with `cargo build -p ipamd` (or run `cargo test --workspace`)"
    };
    let built = std::fs::metadata(&bin)
        .and_then(|m| m.modified())
        .unwrap_or_else(|e| panic!("{}: {e}: {hint}", bin.display()));
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    for krate in ["ipamd", "planner", "cloud", "rpc", "netlink"] {
        if let Some((path, changed)) = newest(&root.join(krate).join("src"))
            && changed > built
        {
            panic!("{} is older than {}: {hint}", bin.display(), path.display());
        }
    }
    bin
}

/// The most recently modified file under `dir`.
fn newest(dir: &Path) -> Option<(PathBuf, std::time::SystemTime)> {
    let mut best: Option<(PathBuf, std::time::SystemTime)> = None;
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let path = entry.path();
        let candidate = if path.is_dir() {
            newest(&path)
        } else {
            entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .map(|t| (path, t))
        };
        if let Some(c) = candidate
            && best.as_ref().is_none_or(|b| c.1 > b.1)
        {
            best = Some(c);
        }
    }
    best
}

/// ipamd running inside the node's namespace; killed on drop.
pub struct Ipamd {
    pub child: Child,
    pub dir: PathBuf,
    /// Signalled when ipamd logs "ready" (its socket is serving).
    ready: std::sync::mpsc::Receiver<()>,
}

impl Ipamd {
    pub fn start(netns: &str, dir: &Path, extra: &[(&str, &str)]) -> Ipamd {
        let ec2 = &harness_client::info().ec2_endpoint;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("ipamd.log"))
            .unwrap();
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", netns])
            .arg(ipamd_binary())
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("ENIPLAN_STATE_DIR", dir)
            // The node's loopback forwards the harness's port (harness/README.md).
            .env("AWS_EC2_ENDPOINT", ec2)
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env(
                "INTROSPECTION_BIND_ADDRESS",
                format!("unix:{}", dir.join("introspect.sock").display()),
            )
            .env("DISABLE_METRICS", "true")
            .env("ENIPLAN_TICK_INTERVAL_MS", "200")
            .env("IP_COOLDOWN_PERIOD", "0")
            // Two ENIs: the host networking the test compares across restarts stays put
            // (a third ENI attached meanwhile would be growth, not a rewrite).
            .env("MAX_ENI", "2")
            .envs(extra.iter().copied())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("run ipamd");
        // Its log lines (stderr) go on to the log file; the "ready" line is signalled.
        let stderr = child.stderr.take().unwrap();
        let (tx, ready) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut log = log;
            for line in std::io::BufRead::lines(std::io::BufReader::new(stderr)) {
                let Ok(line) = line else { break };
                let _ = writeln!(log, "{line}");
                if line.contains(" ipamd: ready took_ms=") {
                    let _ = tx.send(());
                }
            }
        });
        Ipamd {
            child,
            dir: dir.to_owned(),
            ready,
        }
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.join("ipamd.sock")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("ipamd.log")).unwrap_or_default()
    }

    /// Waits until the daemon says it is ready (its log closes early if it exits), then checks
    /// it answers its health check.
    pub async fn ready(&mut self) {
        if self.ready.recv_timeout(Duration::from_secs(90)).is_err() {
            let status = self.child.try_wait().unwrap();
            panic!("ipamd not ready (exit: {status:?}):\n{}", self.log());
        }
        assert_eq!(
            ipamd::client::health(&self.socket()).await,
            Ok(true),
            "{}",
            self.log()
        );
    }

    /// Stops it as a second signal does (SIGINT exits at once).
    pub fn stop(mut self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-INT", &pid]).status();
        let status = self.child.wait().unwrap();
        assert!(status.success(), "ipamd: {status}\n{}", self.log());
        std::mem::forget(self);
    }
}

impl Drop for Ipamd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The checkpoint's pods: container id → address.
pub fn checkpointed(dir: &Path) -> std::collections::BTreeMap<String, String> {
    checkpointed_field(dir, "/ipv4")
}

/// One field (a JSON pointer into each entry) of every checkpoint entry, by container id.
pub fn checkpointed_field(dir: &Path, pointer: &str) -> std::collections::BTreeMap<String, String> {
    let text = std::fs::read_to_string(dir.join("ipam.json")).unwrap_or_default();
    if text.is_empty() {
        return std::collections::BTreeMap::new();
    }
    let file: Value = serde_json::from_str(&text).expect("the checkpoint is whole JSON");
    file["allocations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["containerID"].as_str().unwrap().to_owned(),
                a.pointer(pointer)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
            )
        })
        .collect()
}

/// Whether the pod's namespace holds its interface (what a wired pod has).
pub fn wired(pod: &Netns) -> bool {
    Command::new("ip")
        .args(["-n", &pod.0, "link", "show", "eth0"])
        .output()
        .unwrap()
        .status
        .success()
}
