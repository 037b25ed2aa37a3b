//! What the daemon's end-to-end tests share: a node on the EC2 harness (an instance, its
//! subnet and IMDS endpoint, a state directory) and the real `ipamd` binary running for it.
#![allow(dead_code)] // each test binary uses its own part

pub mod cluster;

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cloud::Ec2;
use cloud::aws::AwsEc2;
use cloud::model::EniFilter;
use ipamd::client::connect;
use serde_json::Value;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

pub struct Node {
    pub ec2: AwsEc2,
    pub instance: String,
    pub subnet: String,
    pub imds: String,
    pub dir: PathBuf,
}

pub async fn node(name: &str, instance_type: &str, cidr: &str) -> Node {
    let ec2 = harness_client::ec2().await;
    let subnet = harness_client::subnet(&ec2, cidr).await;
    let instance = harness_client::instance(&ec2, instance_type, &subnet).await;
    let imds = harness_client::imds_endpoint(&instance);
    let dir = std::env::temp_dir().join(format!("eniplan-e2e-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    Node {
        ec2,
        instance,
        subnet,
        imds,
        dir,
    }
}

pub struct Daemon {
    pub child: Child,
    pub log: PathBuf,
}

impl Node {
    pub fn socket(&self) -> PathBuf {
        self.dir.join("ipamd.sock")
    }

    /// Starts the real binary and waits until its socket answers.
    pub async fn start(&self, env: &[(&str, &str)]) -> Daemon {
        self.launch(None, env).await
    }

    /// [`Node::start`] inside the node world's namespace `netns` (harness/README.md): IMDS at
    /// its real address, the EC2 endpoint (and any port the world forwards) on its loopback,
    /// the instance's ENIs as links with their MACs.
    pub async fn start_in(&self, netns: &str, env: &[(&str, &str)]) -> Daemon {
        self.launch(Some(netns), env).await
    }

    /// The real binary as [`Node::start`] runs it, its stderr appended to `ipamd.log`.
    pub fn command(&self, netns: Option<&str>, env: &[(&str, &str)]) -> (Command, PathBuf) {
        let log = self.dir.join("ipamd.log");
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let mut cmd = match netns {
            Some(netns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", netns, env!("CARGO_BIN_EXE_ipamd")]);
                c
            }
            None => Command::new(env!("CARGO_BIN_EXE_ipamd")),
        };
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("ENIPLAN_STATE_DIR", &self.dir)
            .env("ENIPLAN_HOST_NETWORKING", "false")
            .env("AWS_EC2_ENDPOINT", &harness_client::info().ec2_endpoint);
        if netns.is_none() {
            cmd.env("ENIPLAN_IMDS_ENDPOINT", &self.imds);
        }
        cmd.env("AWS_REGION", "us-west-2")
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env(
                "INTROSPECTION_BIND_ADDRESS",
                format!("unix:{}", self.dir.join("introspect.sock").display()),
            )
            .env("DISABLE_METRICS", "true")
            .env("ENIPLAN_TICK_INTERVAL_MS", "200")
            .env("ENIPLAN_RECONCILE_INTERVAL_SECS", "2")
            .env("AWS_VPC_K8S_CNI_LOGLEVEL", "info")
            .stdout(Stdio::null())
            .stderr(out);
        for (k, v) in env {
            cmd.env(k, v);
        }
        (cmd, log)
    }

    /// Runs the binary as [`Node::start`] does, for a start-up expected to fail: its exit code
    /// and what this run logged.
    pub fn run_to_exit(&self, env: &[(&str, &str)]) -> (Option<i32>, String) {
        let (mut cmd, log) = self.command(None, env);
        let before = std::fs::read_to_string(&log).map_or(0, |t| t.len());
        let status = cmd.status().expect("run ipamd");
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        (status.code(), text[before..].to_owned())
    }

    async fn launch(&self, netns: Option<&str>, env: &[(&str, &str)]) -> Daemon {
        let (mut cmd, log) = self.command(netns, env);
        let mut child = cmd.spawn().expect("start ipamd");
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            if connect(&self.socket()).await.is_ok() {
                break;
            }
            if let Some(status) = child.try_wait().unwrap() {
                panic!(
                    "ipamd exited ({status}) before serving:\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            assert!(
                Instant::now() < deadline,
                "ipamd did not serve within 90 s:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Daemon { child, log }
    }

    /// GET an introspection path over the Unix socket.
    pub async fn introspect(&self, path: &str) -> Value {
        let mut s = tokio::net::UnixStream::connect(self.dir.join("introspect.sock"))
            .await
            .unwrap();
        s.write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        let body = out.split_once("\r\n\r\n").map_or("", |(_, b)| b);
        serde_json::from_str(body).unwrap_or_else(|e| panic!("{path}: {e}: {out}"))
    }

    /// Waits until the pool has no EC2 call in flight (twice in a row), then returns its view.
    pub async fn at_rest(&self) -> Value {
        let deadline = Instant::now() + Duration::from_mins(1);
        let mut quiet = 0;
        loop {
            let v = self.introspect("/v1/pool").await;
            if v["snapshot"]["in_flight"]
                .as_array()
                .is_some_and(Vec::is_empty)
            {
                quiet += 1;
                if quiet == 3 {
                    return v;
                }
            } else {
                quiet = 0;
            }
            assert!(
                Instant::now() < deadline,
                "the pool never came to rest: {v}"
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    /// EC2's secondary addresses and prefixes on the instance's ENIs.
    pub async fn ec2_view(&self) -> (BTreeSet<Ipv4Addr>, BTreeSet<String>) {
        let enis = self
            .ec2
            .describe_network_interfaces(&EniFilter {
                instance_id: Some(self.instance.clone()),
                ..EniFilter::default()
            })
            .await
            .unwrap();
        let ips = enis
            .iter()
            .flat_map(|e| e.secondary_ips.iter().copied())
            .collect();
        let prefixes = enis
            .iter()
            .flat_map(|e| e.prefixes.iter().map(ToString::to_string))
            .collect();
        (ips, prefixes)
    }

    /// The pool's addresses and prefixes (as `/v1/pool` shows them) equal EC2's.
    pub async fn assert_agrees(&self) -> Value {
        let view = self.at_rest().await;
        let mut ips = BTreeSet::new();
        let mut prefixes = BTreeSet::new();
        for a in view["addresses"].as_array().unwrap() {
            match a["prefix"].as_str() {
                Some(p) => {
                    prefixes.insert(p.to_owned());
                }
                None => {
                    ips.insert(a["ip"].as_str().unwrap().parse::<Ipv4Addr>().unwrap());
                }
            }
        }
        let (ec2_ips, ec2_prefixes) = self.ec2_view().await;
        assert_eq!(ips, ec2_ips, "secondary IPs: pool vs EC2");
        assert_eq!(prefixes, ec2_prefixes, "prefixes: pool vs EC2");
        view
    }

    /// Unattached ENIs that this node's daemon created (tagged with the instance id).
    pub async fn leaked_enis(&self) -> usize {
        let filter = EniFilter {
            subnet_id: Some(self.subnet.clone()),
            status: Some("available".into()),
            tags: BTreeMap::from([(
                ipamd::node::TAG_INSTANCE_ID.to_owned(),
                self.instance.clone(),
            )]),
            ..EniFilter::default()
        };
        self.ec2
            .describe_network_interfaces(&filter)
            .await
            .unwrap()
            .len()
    }
}

impl Daemon {
    pub fn kill9(mut self) {
        let _ = self.child.kill(); // SIGKILL
        let _ = self.child.wait();
    }
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
    pub fn stop(mut self) {
        // SIGTERM twice: stop growing, then exit. The second signal is sent only once the
        // daemon has logged that it is terminating, so the two cannot coalesce into one.
        let pid = self.child.id().to_string();
        let term = || {
            let _ = Command::new("kill").args(["-TERM", &pid]).status();
        };
        // The log is appended to across restarts of the same node: count, don't just look.
        let terminations = || self.log_text().matches("terminating:").count();
        let before = terminations();
        term();
        let deadline = Instant::now() + Duration::from_secs(10);
        while terminations() == before {
            assert!(
                Instant::now() < deadline,
                "ipamd did not start terminating on SIGTERM:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        term();
        while self.child.try_wait().unwrap().is_none() {
            assert!(
                Instant::now() < deadline,
                "ipamd did not exit on the second SIGTERM:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// A test that fails before `stop` or `kill9` must not leave its daemon running (it would keep
/// serving a dead test's harness node, and hold its sockets): the process is killed here.
impl Drop for Daemon {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

pub fn total(view: &Value) -> u64 {
    view["snapshot"]["total"].as_u64().unwrap()
}
