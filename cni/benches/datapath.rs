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

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

#[path = "../tests/common/mod.rs"]
mod common;
use common::{Netns, exec_plugin, ip};

const PLUGIN: &str = env!("CARGO_BIN_EXE_eniplan-cni");

/// Executes a plugin for `pod` as a runtime does; returns the wall time.
fn exec(
    node: &Netns,
    binary: &str,
    command: &str,
    pod: &Netns,
    name: &str,
    stdin: &Value,
) -> Duration {
    let start = Instant::now();
    let out = exec_plugin(node, binary, command, Some((pod, name)), stdin);
    let took = start.elapsed();
    assert!(
        out.status.success(),
        "{binary} {command}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    took
}

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

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::too_many_lines, reason = "one bench, read top to bottom")]
async fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let pods = if quick { 50 } else { 300 };
    let pid = std::process::id();
    // tmpfs when there is one, as /var/run/aws-node (ipamd's checkpoint) is on a node.
    let base = if std::path::Path::new("/dev/shm").is_dir() {
        std::path::PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    let dir = base.join(format!("eniplan-cni-bench-{pid}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("state")).unwrap();

    // ipamd start to the conflist.
    let started = Instant::now();
    let d = common::ipamd_with(
        &dir.join("state"),
        "m5.4xlarge",
        &[
            ("WARM_IP_TARGET", "70"),
            ("IP_COOLDOWN_PERIOD", "0"),
            ("ENIPLAN_TICK_INTERVAL_MS", "5000"),
        ],
    )
    .await;
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

    let node = Netns::new(format!("enb-node-{pid}"));
    ip(&[
        "netns",
        "exec",
        &node.0,
        "sysctl",
        "-qw",
        "net.ipv4.ip_forward=1",
    ]);
    let ours = json!({"cniVersion": "1.0.0", "name": "aws-cni", "type": "eniplan-cni",
        "ipamdSocket": socket.display().to_string(), "pluginLogFile": dir.join("plugin.log").display().to_string(),
        "pluginLogLevel": "Info"});
    let ptp = json!({"cniVersion": "1.0.0", "name": "bench-ptp", "type": "ptp", "mtu": 9001,
        "ipam": {"type": "host-local", "subnet": "10.200.0.0/16", "dataDir": dir.join("host-local").display().to_string()}});

    // Warm both paths once (page cache, ipamd's pool).
    {
        let p = Netns::new(format!("enb-w-{pid}"));
        exec(&node, PLUGIN, "ADD", &p, "warm", &ours);
        exec(&node, PLUGIN, "DEL", &p, "warm", &ours);
        exec(&node, "/usr/lib/cni/ptp", "ADD", &p, "warm", &ptp);
        exec(&node, "/usr/lib/cni/ptp", "DEL", &p, "warm", &ptp);
    }
    let (mut e_add_del, mut p_add_del, mut start_only) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..pods {
        let pod = Netns::new(format!("enb-{i}-{pid}"));
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
        .map(|i| Netns::new(format!("enb-s{i}-{pid}")))
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
    d.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}
