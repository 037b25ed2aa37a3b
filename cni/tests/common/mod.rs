//! What the plugin's tests share: ipamd in the test process, on the `cloud` fake EC2.
#![allow(dead_code, reason = "each test binary uses part of it")]

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use cloud::fake::{FakeEc2, FakeImds};
use ipamd::Stage;
use ipamd::config::Config;
use tokio::sync::watch;

pub struct Daemon {
    pub stage: watch::Sender<Stage>,
    pub task: tokio::task::JoinHandle<ipamd::Result<()>>,
    pub socket: PathBuf,
    /// The node's primary address (its primary ENI's).
    pub node_ip: Ipv4Addr,
}

/// ipamd on the fake EC2 for a node of `instance_type`, its socket in `dir`.
pub async fn ipamd(dir: &Path, instance_type: &str) -> Daemon {
    let ec2 = FakeEc2::new();
    let vpc = ec2.create_vpc("10.0.0.0/16".parse().unwrap());
    let subnet = ec2
        .create_subnet(&vpc, "10.0.0.0/20".parse().unwrap(), "us-west-2a")
        .unwrap();
    let instance = ec2.run_instance(instance_type, &subnet).unwrap();
    let node_ip = cloud::Ec2::describe_instances(&ec2, std::slice::from_ref(&instance))
        .await
        .unwrap()[0]
        .private_ip;
    let vars: BTreeMap<String, String> = [
        ("ENIPLAN_STATE_DIR", dir.display().to_string()),
        ("DISABLE_INTROSPECTION", "true".into()),
        ("DISABLE_METRICS", "true".into()),
        ("ENIPLAN_TICK_INTERVAL_MS", "50".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let (stage, rx) = watch::channel(Stage::Running);
    let imds = FakeImds::new(&ec2, &instance);
    let task = tokio::spawn(ipamd::run(Config::from_vars(&vars).unwrap(), ec2, imds, rx));
    let socket = dir.join("ipamd.sock");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while ipamd::client::health(&socket).await != Ok(true) {
        assert!(
            std::time::Instant::now() < deadline,
            "ipamd did not become healthy"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Daemon {
        stage,
        task,
        socket,
        node_ip,
    }
}

impl Daemon {
    pub async fn stop(self) {
        let _ = self.stage.send(Stage::Exit);
        self.task.await.unwrap().unwrap();
    }
}
