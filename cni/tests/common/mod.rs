//! What the plugin's tests and bench share: network namespaces, executing a plugin as a
//! container runtime does, and ipamd in the test process on the `cloud` fake EC2.
#![allow(dead_code, reason = "each test binary uses part of it")]

pub mod stub;
pub mod world;

use std::collections::BTreeMap;
use std::io::{Read as _, Write as _};
use std::net::{IpAddr, Ipv4Addr, SocketAddrV4, TcpListener, TcpStream};
use std::os::fd::AsFd as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use cloud::fake::{FakeEc2, FakeImds};
use ipamd::Stage;
use ipamd::config::Config;
use serde_json::{Value, json};
use tokio::sync::watch;

/// A network namespace, deleted on drop.
pub struct Netns(pub String);

impl Netns {
    pub fn new(name: String) -> Netns {
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        ip(&["netns", "add", &name]);
        ip(&["-n", &name, "link", "set", "lo", "up"]);
        Netns(name)
    }

    pub fn path(&self) -> String {
        format!("/var/run/netns/{}", self.0)
    }

    /// `ip -n <ns> -j <args>` as JSON.
    pub fn json(&self, args: &[&str]) -> Value {
        let mut full = vec!["-n", &self.0, "-j"];
        full.extend_from_slice(args);
        let out = ip(&full);
        serde_json::from_slice(&out.stdout).unwrap_or(Value::Array(Vec::new()))
    }

    /// Everything a pod's wiring could leave behind: links, and the IPv4 addresses, routes of
    /// every table, rules and neighbours (IPv6 link-local setup runs on its own clock).
    pub fn state(&self) -> Value {
        json!({
            "links": self.json(&["link", "show"]).as_array().map(|l| l.iter().map(|x| x["ifname"].clone()).collect::<Vec<_>>()),
            "addresses": self.json(&["-4", "addr", "show"]),
            "routes": self.json(&["-4", "route", "show", "table", "all"]),
            "rules": self.json(&["-4", "rule", "show"]),
            "neighbours": self.json(&["-4", "neigh", "show"]),
        })
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).output();
    }
}

pub fn ip(args: &[&str]) -> Output {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Executes the CNI plugin `binary` inside `node` as a container runtime does: the spec's
/// environment (`CNI_ARGS` with the kubelet's pod keys) and the configuration on stdin.
pub fn exec_plugin(
    node: &Netns,
    binary: &str,
    command: &str,
    pod: Option<(&Netns, &str)>,
    stdin: &Value,
) -> Output {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", &node.0, binary])
        .env_clear()
        .env("CNI_COMMAND", command)
        .env("CNI_PATH", "/usr/lib/cni")
        // Debian's plugins run iptables and tc.
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some((ns, name)) = pod {
        cmd.env("CNI_CONTAINERID", format!("c-{name}"))
            .env("CNI_NETNS", ns.path())
            .env("CNI_IFNAME", "eth0")
            .env(
                "CNI_ARGS",
                format!(
                    "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME={name};K8S_POD_UID=uid-{name}"
                ),
            );
    }
    let mut child = cmd.spawn().expect("run the plugin");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.to_string().as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

pub struct Daemon {
    pub stage: watch::Sender<Stage>,
    pub task: tokio::task::JoinHandle<ipamd::Result<()>>,
    pub socket: PathBuf,
    /// The node's primary address (its primary ENI's).
    pub node_ip: Ipv4Addr,
}

/// ipamd on the fake EC2 for a node of `instance_type`, its socket in `dir`.
pub async fn ipamd(dir: &Path, instance_type: &str) -> Daemon {
    ipamd_with(dir, instance_type, &[]).await
}

/// [`ipamd`] with more variables; returns once ipamd answers its health check.
pub async fn ipamd_with(dir: &Path, instance_type: &str, extra: &[(&str, &str)]) -> Daemon {
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
        ("ENIPLAN_HOST_NETWORKING", "false".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .chain(
        extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    )
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

/// A network config for eniplan-cni at `version`, logging to `log`, talking to `socket`, its
/// branch-pod records beside the log (`cni-state`), never in the host's `/run/eniplan-cni`.
pub fn conf(socket: &Path, version: &str, log: &Path) -> Value {
    json!({
        "cniVersion": version,
        "name": "aws-cni",
        "type": "eniplan-cni",
        "vethPrefix": "eni",
        "mtu": "9001",
        "pluginLogFile": log.display().to_string(),
        "pluginLogLevel": "Debug",
        "ipamdSocket": socket.display().to_string(),
        "stateDir": log.with_file_name("cni-state").display().to_string(),
    })
}

/// Moves the calling thread into the network namespace at `path`.
pub fn enter(path: &str) {
    let f = std::fs::File::open(path).unwrap();
    nix::sched::setns(f.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
}

/// A TCP connection from inside the namespace at `from` to `target`, answered "pong" by a
/// listener bound to `listen` inside the namespace at `at`: the address the listener saw the
/// connection come from, or why there was none. The client gives up after 5 s; when it fails,
/// it wakes the listener by connecting to it from inside `at`, so nothing waits longer.
pub fn tcp(
    from: &str,
    at: &str,
    listen: SocketAddrV4,
    target: SocketAddrV4,
) -> Result<Ipv4Addr, String> {
    let (ready, bound) = std::sync::mpsc::channel();
    let at_path = at.to_owned();
    let listener = std::thread::spawn(move || -> Result<IpAddr, String> {
        enter(&at_path);
        let l = TcpListener::bind(listen).map_err(|e| format!("bind {listen}: {e}"));
        let l = match l {
            Ok(l) => {
                ready.send(Ok(())).unwrap();
                l
            }
            Err(e) => {
                ready.send(Err(e.clone())).unwrap();
                return Err(e);
            }
        };
        let (mut s, peer) = l.accept().map_err(|e| e.to_string())?;
        let _ = s.write_all(b"pong");
        Ok(peer.ip())
    });
    bound.recv().unwrap()?;
    let from_path = from.to_owned();
    let reply = std::thread::spawn(move || -> Result<String, String> {
        enter(&from_path);
        let mut s = TcpStream::connect_timeout(&target.into(), Duration::from_secs(5))
            .map_err(|e| format!("connect to {target}: {e}"))?;
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).map_err(|e| e.to_string())?;
        Ok(text)
    })
    .join()
    .unwrap();
    if reply.is_err() {
        // Wake the listener: a connection from its own namespace to its own address.
        let at_path = at.to_owned();
        let local = if listen.ip().is_unspecified() {
            SocketAddrV4::new(Ipv4Addr::LOCALHOST, listen.port())
        } else {
            listen
        };
        std::thread::spawn(move || {
            enter(&at_path);
            let _ = TcpStream::connect_timeout(&local.into(), Duration::from_secs(1));
        })
        .join()
        .unwrap();
    }
    let seen = listener.join().unwrap();
    match (reply, seen) {
        (Ok(text), Ok(IpAddr::V4(peer))) if text == "pong" => Ok(peer),
        (Ok(text), Ok(peer)) => Err(format!("answered {text:?} from {peer}")),
        (Ok(_), Err(e)) => Err(format!("listener: {e}")),
        (Err(e), _) => Err(e),
    }
}

/// DEL of `pod` as the runtime does it; it must succeed.
pub fn del(node: &Netns, pod: &Netns, name: &str, conf: &Value) {
    let out = exec_plugin(
        node,
        env!("CARGO_BIN_EXE_eniplan-cni"),
        "DEL",
        Some((pod, name)),
        conf,
    );
    assert!(
        out.status.success(),
        "DEL {name}: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// ADD as the kubelet does it: again while the answer is "try again later" (code 11), until a
/// deadline (each attempt is a process start, so the retries pace themselves); the result.
pub fn add_until_served(node: &Netns, pod: &Netns, name: &str, c: &Value) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_mins(1);
    loop {
        let out = exec_plugin(
            node,
            env!("CARGO_BIN_EXE_eniplan-cni"),
            "ADD",
            Some((pod, name)),
            c,
        );
        if out.status.success() {
            return serde_json::from_slice(&out.stdout).unwrap();
        }
        let e: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(e["code"], 11, "{name}: {e}");
        assert!(
            std::time::Instant::now() < deadline,
            "{name} was never served: {e}"
        );
    }
}
