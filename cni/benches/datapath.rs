//! The plugin's figures (issue 10), in the namespace world of `tests/datapath.rs`: run as root,
//! `cargo bench -p eniplan-cni --bench datapath` (`-- --quick` for 50 pods instead of 300).
//!
//! * ADD + DEL wall time per pod, `eniplan-cni` (against ipamd on the cloud fake, in this
//!   process) beside Debian's `ptp` + `host-local` on the same node namespace, interleaved pod
//!   by pod so both see the same machine; p50 and p99;
//! * where eniplan-cni's time goes: process start (a VERSION exec), the ipamd round trip
//!   (AddNetwork + DelNetwork from a client in this process) and the rest (netlink);
//! * 64 ADDs started at once: time until the last pod is wired;
//! * ipamd start to the conflist written by `eniplan-cni install`.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cloud::fake::{FakeEc2, FakeImds};
use ipamd::Stage;
use ipamd::config::Config;
use serde_json::{Value, json};
use tokio::sync::watch;

const PLUGIN: &str = env!("CARGO_BIN_EXE_eniplan-cni");

struct Netns(String);

impl Netns {
    fn new(name: &str) -> Netns {
        let _ = Command::new("ip").args(["netns", "del", name]).output();
        run("ip", &["netns", "add", name]);
        run("ip", &["-n", name, "link", "set", "lo", "up"]);
        Netns(name.to_owned())
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).output();
    }
}

fn run(cmd: &str, args: &[&str]) {
    let out = Command::new(cmd).args(args).output().expect(cmd);
    assert!(out.status.success(), "{cmd} {args:?}: {out:?}");
}

/// Executes a plugin in `node` as a runtime does; returns the wall time.
fn exec(
    node: &Netns,
    binary: &str,
    command: &str,
    pod: &Netns,
    name: &str,
    stdin: &Value,
) -> Duration {
    let start = Instant::now();
    let mut child = Command::new("ip")
        .args(["netns", "exec", &node.0, binary])
        .env_clear()
        .env("CNI_COMMAND", command)
        .env("CNI_PATH", "/usr/lib/cni")
        .env("CNI_CONTAINERID", format!("c-{name}"))
        .env("CNI_NETNS", format!("/var/run/netns/{}", pod.0))
        .env("CNI_IFNAME", "eth0")
        .env(
            "CNI_ARGS",
            format!("IgnoreUnknown=1;K8S_POD_NAMESPACE=bench;K8S_POD_NAME={name}"),
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let took = start.elapsed();
    assert!(
        out.status.success(),
        "{binary} {command}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    took
}

/// The `per_mille`/1000 quantile of sorted samples (nearest rank).
fn percentile(sorted: &[Duration], per_mille: usize) -> Duration {
    sorted[((sorted.len() - 1) * per_mille)
        .div_ceil(1000)
        .min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn report(name: &str, mut samples: Vec<Duration>) -> (Duration, Duration) {
    samples.sort_unstable();
    let (p50, p99) = (percentile(&samples, 500), percentile(&samples, 990));
    println!(
        "{name:<44} p50 {:>10}   p99 {:>10}   ({} samples)",
        ms(p50),
        ms(p99),
        samples.len()
    );
    (p50, p99)
}

struct Daemon {
    stage: watch::Sender<Stage>,
    task: tokio::task::JoinHandle<ipamd::Result<()>>,
    socket: PathBuf,
}

fn ipamd(dir: &Path, instance_type: &str) -> (Daemon, Instant) {
    let ec2 = FakeEc2::new();
    let vpc = ec2.create_vpc("10.0.0.0/16".parse().unwrap());
    let subnet = ec2
        .create_subnet(&vpc, "10.0.0.0/18".parse().unwrap(), "us-west-2a")
        .unwrap();
    let instance = ec2.run_instance(instance_type, &subnet).unwrap();
    let vars: BTreeMap<String, String> = [
        ("ENIPLAN_STATE_DIR", dir.display().to_string()),
        ("DISABLE_INTROSPECTION", "true".into()),
        ("DISABLE_METRICS", "true".into()),
        ("WARM_IP_TARGET", "70".into()),
        ("IP_COOLDOWN_PERIOD", "0".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let (stage, rx) = watch::channel(Stage::Running);
    let imds = FakeImds::new(&ec2, &instance);
    let started = Instant::now();
    let task = tokio::spawn(ipamd::run(Config::from_vars(&vars).unwrap(), ec2, imds, rx));
    (
        Daemon {
            stage,
            task,
            socket: dir.join("ipamd.sock"),
        },
        started,
    )
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::too_many_lines, reason = "one bench, read top to bottom")]
async fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let pods = if quick { 50 } else { 300 };
    let pid = std::process::id();
    let dir = std::env::temp_dir().join(format!("eniplan-cni-bench-{pid}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("state")).unwrap();

    // ipamd start to the conflist.
    let (d, started) = ipamd(&dir.join("state"), "m5.4xlarge");
    let socket = d.socket.clone();
    let conf_dir = dir.join("net.d");
    let install = {
        let (socket, dir) = (socket.clone(), dir.clone());
        tokio::task::spawn_blocking(move || {
            Command::new(PLUGIN)
                .arg("install")
                .env_clear()
                .env("HOST_CNI_BIN_PATH", dir.join("bin"))
                .env("HOST_CNI_CONFDIR_PATH", dir.join("net.d"))
                .env("ENIPLAN_IPAMD_SOCKET", &socket)
                .output()
                .unwrap()
        })
    };
    let out = install.await.unwrap();
    assert!(out.status.success(), "{out:?}");
    let to_conflist = started.elapsed();
    assert!(conf_dir.join("10-aws.conflist").exists());
    println!("ipamd start to conflist written: {}", ms(to_conflist));

    let node = Netns::new(&format!("enb-node-{pid}"));
    run(
        "ip",
        &[
            "netns",
            "exec",
            &node.0,
            "sysctl",
            "-qw",
            "net.ipv4.ip_forward=1",
        ],
    );
    let ours = json!({"cniVersion": "1.0.0", "name": "aws-cni", "type": "eniplan-cni",
        "ipamdSocket": socket.display().to_string(), "pluginLogFile": dir.join("plugin.log").display().to_string(),
        "pluginLogLevel": "Info"});
    let ptp = json!({"cniVersion": "1.0.0", "name": "bench-ptp", "type": "ptp", "mtu": 9001,
        "ipam": {"type": "host-local", "subnet": "10.200.0.0/16", "dataDir": dir.join("host-local").display().to_string()}});

    // Warm both paths once (page cache, ipamd's pool).
    {
        let p = Netns::new(&format!("enb-w-{pid}"));
        exec(&node, PLUGIN, "ADD", &p, "warm", &ours);
        exec(&node, PLUGIN, "DEL", &p, "warm", &ours);
        exec(&node, "/usr/lib/cni/ptp", "ADD", &p, "warm", &ptp);
        exec(&node, "/usr/lib/cni/ptp", "DEL", &p, "warm", &ptp);
    }
    let (mut e_add_del, mut p_add_del, mut start_only) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..pods {
        let pod = Netns::new(&format!("enb-{i}-{pid}"));
        let name = format!("b{i}");
        e_add_del.push(
            exec(&node, PLUGIN, "ADD", &pod, &name, &ours)
                + exec(&node, PLUGIN, "DEL", &pod, &name, &ours),
        );
        p_add_del.push(
            exec(&node, "/usr/lib/cni/ptp", "ADD", &pod, &name, &ptp)
                + exec(&node, "/usr/lib/cni/ptp", "DEL", &pod, &name, &ptp),
        );
        let v = Instant::now();
        let out = Command::new("ip")
            .args(["netns", "exec", &node.0, PLUGIN])
            .env_clear()
            .env("CNI_COMMAND", "VERSION")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(out.status.success());
        start_only.push(v.elapsed());
    }
    let (e50, e99) = report("eniplan-cni ADD+DEL", e_add_del);
    let (p50, p99) = report("ptp + host-local ADD+DEL", p_add_del);
    println!(
        "ratio eniplan-cni / ptp: p50 {:.2}x, p99 {:.2}x",
        e50.as_secs_f64() / p50.as_secs_f64(),
        e99.as_secs_f64() / p99.as_secs_f64()
    );
    report("process start (VERSION, two execs per ADD+DEL)", start_only);
    let mut client = ipamd::client::connect(&socket).await.unwrap();
    let mut rpc = Vec::new();
    for i in 0..pods {
        let id = format!("rpc{i}");
        let t = Instant::now();
        client
            .add_network(ipamd::client::add_request(&id, "bench", &id))
            .await
            .unwrap();
        client
            .del_network(ipamd::client::del_request(&id, "bench", &id))
            .await
            .unwrap();
        rpc.push(t.elapsed());
    }
    report("ipamd AddNetwork + DelNetwork round trips", rpc);

    // 64 at once.
    let storm: Vec<Netns> = (0..64)
        .map(|i| Netns::new(&format!("enb-s{i}-{pid}")))
        .collect();
    let storm = std::sync::Arc::new(storm);
    let node = std::sync::Arc::new(node);
    let ours = std::sync::Arc::new(ours);
    let t = Instant::now();
    let threads: Vec<_> = (0..64)
        .map(|i| {
            let (storm, node, ours) = (storm.clone(), node.clone(), ours.clone());
            std::thread::spawn(move || {
                exec(&node, PLUGIN, "ADD", &storm[i], &format!("s{i}"), &ours)
            })
        })
        .collect();
    for th in threads {
        th.join().unwrap();
    }
    println!("64 ADDs at once: last pod wired after {}", ms(t.elapsed()));
    for i in 0..64 {
        exec(&node, PLUGIN, "DEL", &storm[i], &format!("s{i}"), &ours);
    }
    let _ = d.stage.send(Stage::Exit);
    let _ = d.task.await;
    let _ = std::fs::remove_dir_all(&dir);
}
