//! The plugin binary wiring pods in real network namespaces: one namespace stands for the node,
//! one per pod, created as a container runtime creates them; the plugin runs inside the node's
//! namespace, executed as a runtime executes it (environment and stdin per the CNI spec), and
//! talks to ipamd (in this process, on the `cloud` fake EC2) over its Unix socket. The state of
//! the namespaces is read back with `ip -j` and checked; traffic between pods is real TCP.
//!
//! Needs root and iproute2's `ip` (installed by `scripts/test`). Every namespace is removed at
//! the end, also when a test fails.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::{Value, json};

mod common;
use common::{Netns, add_until_served, conf, exec_plugin, ip, ipamd, tcp};

/// Runs eniplan-cni in `node` as a runtime does.
fn plugin(node: &Netns, command: &str, pod: Option<(&Netns, &str)>, stdin: &Value) -> Output {
    exec_plugin(node, env!("CARGO_BIN_EXE_eniplan-cni"), command, pod, stdin)
}

fn ok_json(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "plugin failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("a JSON result")
}

/// The node's primary ENI: `eth0` in the node's namespace with the node's address, its peer in
/// `vpc` (which stands for the VPC router).
fn primary_eni(node: &Netns, vpc: &Netns, addr: Ipv4Addr) {
    ip(&[
        "-n", &node.0, "link", "add", "eth0", "type", "veth", "peer", "name", "vpc0", "netns",
        &vpc.0,
    ]);
    ip(&[
        "-n",
        &node.0,
        "addr",
        "add",
        &format!("{addr}/20"),
        "dev",
        "eth0",
    ]);
    ip(&["-n", &node.0, "link", "set", "eth0", "up"]);
    ip(&["-n", &vpc.0, "link", "set", "vpc0", "up"]);
    ip(&[
        "netns",
        "exec",
        &node.0,
        "sysctl",
        "-qw",
        "net.ipv4.ip_forward=1",
    ]);
}

/// Connects from inside `from` to `to:port`, where a listener in `at` answers: the address it
/// saw the connection come from.
fn tcp_between(from: &Netns, at: &Netns, to: Ipv4Addr, port: u16) -> Result<Ipv4Addr, String> {
    tcp(
        &from.path(),
        &at.path(),
        SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port),
        SocketAddrV4::new(to, port),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(
    clippy::too_many_lines,
    clippy::many_single_char_names,
    reason = "one scenario, read top to bottom"
)]
async fn add_wires_two_pods_that_reach_each_other_and_del_leaves_nothing() {
    let pid = std::process::id();
    let dir = std::env::temp_dir().join(format!("eniplan-cni-datapath-{pid}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let node = Netns::new(format!("enp-node-{pid}"));
    let vpc = Netns::new(format!("enp-vpc-{pid}"));
    let a = Netns::new(format!("enp-a-{pid}"));
    let b = Netns::new(format!("enp-b-{pid}"));
    let d = ipamd(&dir, "m5.large").await;
    primary_eni(&node, &vpc, d.node_ip);
    let node_before = node.state();
    let log = dir.join("plugin.log");
    let c = conf(&d.socket, "1.1.0", &log);

    let ra = ok_json(&plugin(&node, "ADD", Some((&a, "web-a")), &c));
    let rb = ok_json(&plugin(&node, "ADD", Some((&b, "web-b")), &c));
    let ip_of = |r: &Value| -> Ipv4Addr {
        r["ips"][0]["address"]
            .as_str()
            .and_then(|s| s.strip_suffix("/32"))
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no /32 in {r}"))
    };
    let (ia, ib) = (ip_of(&ra), ip_of(&rb));
    assert_ne!(ia, ib);
    assert_eq!(ra["cniVersion"], "1.1.0");
    assert_eq!(ra["interfaces"][1]["sandbox"], a.path());

    // The pod side, as the VPC CNI builds it.
    let addrs = a.json(&["addr", "show", "dev", "eth0"]);
    let addr = &addrs[0]["addr_info"];
    assert!(
        addr.as_array()
            .unwrap()
            .iter()
            .any(|x| x["local"] == ia.to_string() && x["prefixlen"] == 32),
        "{addrs}"
    );
    assert_eq!(addrs[0]["mtu"], 9001);
    let routes = a.json(&["route", "show"]);
    assert!(
        routes
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["dst"] == "default" && r["gateway"] == "169.254.1.1"),
        "{routes}"
    );
    assert!(
        routes
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["dst"] == "169.254.1.1" && r["scope"] == "link"),
        "{routes}"
    );
    let host_veth = ra["interfaces"][0]["name"].as_str().unwrap().to_owned();
    let neigh = a.json(&["neigh", "show", "dev", "eth0"]);
    assert!(
        neigh
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["dst"] == "169.254.1.1"
                && n["lladdr"] == ra["interfaces"][0]["mac"]
                && n["state"]
                    .as_array()
                    .is_some_and(|s| s.contains(&json!("PERMANENT")))),
        "{neigh}"
    );
    // The node side.
    let r = node.json(&["route", "show", &format!("{ia}/32")]);
    assert_eq!(r[0]["dev"], host_veth.as_str(), "{r}");
    let rules = node.json(&["rule", "show"]);
    assert!(
        rules
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["priority"] == 512 && x["dst"] == ia.to_string() && x["table"] == "main"),
        "{rules}"
    );

    // Real traffic, both ways through the node.
    assert_eq!(tcp_between(&a, &b, ib, 18080), Ok(ia));
    assert_eq!(tcp_between(&b, &a, ia, 18081), Ok(ib));

    // DEL leaves the node as it was; a second DEL and one without anything in ipamd succeed.
    for (ns, name) in [(&a, "web-a"), (&b, "web-b")] {
        let out = plugin(&node, "DEL", Some((ns, name)), &c);
        assert!(out.status.success(), "{out:?}");
        assert!(out.stdout.is_empty(), "DEL prints nothing");
        let again = plugin(&node, "DEL", Some((ns, name)), &c);
        assert!(again.status.success(), "repeated DEL: {again:?}");
    }
    assert_eq!(
        node.state(),
        node_before,
        "the node is as it was before the pods"
    );
    assert!(
        std::fs::read_to_string(&log)
            .unwrap()
            .lines()
            .all(|l| serde_json::from_str::<Value>(l).is_ok()),
        "log lines are JSON"
    );
    d.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_ipamd_add_is_try_again_later_and_status_is_50() {
    let pid = std::process::id();
    let node = Netns::new(format!("enp-node2-{pid}"));
    let pod = Netns::new(format!("enp-c-{pid}"));
    let before = pod.state();
    let dir = std::env::temp_dir().join(format!("eniplan-cni-noipamd-{pid}"));
    std::fs::create_dir_all(&dir).unwrap();
    let socket = dir.join("nobody.sock");
    let c = conf(&socket, "1.1.0", &dir.join("plugin.log"));
    let out = plugin(&node, "ADD", Some((&pod, "web")), &c);
    assert!(!out.status.success());
    let e: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(e["code"], 11, "{e}");
    assert!(
        e["msg"]
            .as_str()
            .unwrap()
            .contains(&socket.display().to_string()),
        "{e}"
    );
    assert_eq!(pod.state(), before, "nothing was built");
    let status = plugin(&node, "STATUS", None, &c);
    let e: Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(e["code"], 50, "{e}");
    // DEL without ipamd cleans the node side but asks to be retried: the address may still
    // be booked in ipamd.
    let del = plugin(&node, "DEL", Some((&pod, "web")), &c);
    let e: Value = serde_json::from_slice(&del.stdout).unwrap();
    assert_eq!(e["code"], 11, "{e}");
    assert!(e["msg"].as_str().unwrap().contains("still booked"), "{e}");
    assert_eq!(pod.state(), before, "nothing was built or left");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A world of one node (with its primary ENI) and `pods` pod namespaces, removed on drop.
struct World {
    node: Netns,
    _vpc: Netns,
    pods: Vec<Netns>,
    dir: PathBuf,
}

impl World {
    fn new(tag: &str, pods: usize, node_ip: Ipv4Addr, dir: PathBuf) -> World {
        let pid = std::process::id();
        let node = Netns::new(format!("enp-{tag}n-{pid}"));
        let vpc = Netns::new(format!("enp-{tag}v-{pid}"));
        primary_eni(&node, &vpc, node_ip);
        let pods = (0..pods)
            .map(|i| Netns::new(format!("enp-{tag}{i}-{pid}")))
            .collect();
        World {
            node,
            _vpc: vpc,
            pods,
            dir,
        }
    }
}

impl Drop for World {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("eniplan-cni-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The node's priority-1536 rules: (pod address, table).
fn from_pod_rules(node: &Netns) -> Vec<(String, Value)> {
    node.json(&["rule", "show"])
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["priority"] == 1536)
        .map(|r| {
            (
                r["src"].as_str().unwrap_or_default().to_owned(),
                r["table"].clone(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secondary_eni_pods_get_the_rule_to_their_enis_table() {
    let dir = temp_dir("secondary");
    let d = ipamd(&dir, "m5.large").await;
    // m5.large: 9 addresses per ENI; the tenth pod is on a secondary ENI.
    let w = World::new("s", 12, d.node_ip, dir.clone());
    let before = w.node.state();
    let c = conf(&d.socket, "0.4.0", &dir.join("plugin.log"));
    let mut seen = Vec::new();
    for (i, pod) in w.pods.iter().enumerate() {
        let r = ok_json(&plugin(&w.node, "ADD", Some((pod, &format!("p{i}"))), &c));
        assert_eq!(r["ips"][0]["version"], "4", "a 0.4.0 result");
        seen.push(
            r["ips"][0]["address"]
                .as_str()
                .unwrap()
                .trim_end_matches("/32")
                .to_owned(),
        );
    }
    let rules = from_pod_rules(&w.node);
    assert!(!rules.is_empty(), "some pods are on a secondary ENI");
    for (src, table) in &rules {
        assert!(seen.contains(src), "{src} is one of the pods");
        // Device N's table is N + 1: never main (254) for a secondary ENI.
        let t: u64 = table
            .as_str()
            .and_then(|t| t.parse().ok())
            .expect("a numbered table");
        assert!((2..254).contains(&t), "table {t}");
    }
    assert!(
        rules.len() < seen.len(),
        "pods on the primary ENI have no such rule"
    );
    for (i, pod) in w.pods.iter().enumerate() {
        let out = plugin(&w.node, "DEL", Some((pod, &format!("p{i}"))), &c);
        assert!(out.status.success(), "{out:?}");
    }
    assert!(from_pod_rules(&w.node).is_empty());
    assert_eq!(w.node.state(), before);
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_adds_at_once_get_distinct_addresses_and_64_dels_leave_nothing() {
    let dir = temp_dir("storm");
    let d = ipamd(&dir, "m5.4xlarge").await;
    let w = std::sync::Arc::new(World::new("m", 64, d.node_ip, dir.clone()));
    let before = w.node.state();
    let c = std::sync::Arc::new(conf(&d.socket, "1.0.0", &dir.join("plugin.log")));
    let adds: Vec<_> = (0..64)
        .map(|i| {
            let (w, c) = (w.clone(), c.clone());
            std::thread::spawn(move || add_until_served(&w.node, &w.pods[i], &format!("m{i}"), &c))
        })
        .collect();
    let ips: std::collections::BTreeSet<String> = adds
        .into_iter()
        .map(|t| {
            t.join().unwrap()["ips"][0]["address"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(ips.len(), 64, "64 distinct addresses");
    let dels: Vec<_> = (0..64)
        .map(|i| {
            let (w, c) = (w.clone(), c.clone());
            std::thread::spawn(move || {
                plugin(&w.node, "DEL", Some((&w.pods[i], &format!("m{i}"))), &c)
            })
        })
        .collect();
    for t in dels {
        let out = t.join().unwrap();
        assert!(out.status.success(), "{out:?}");
    }
    assert_eq!(w.node.state(), before, "64 DELs leave the node as it was");
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_finds_a_removed_route_and_gc_releases_what_is_not_listed() {
    let dir = temp_dir("check");
    let d = ipamd(&dir, "m5.large").await;
    let w = World::new("k", 2, d.node_ip, dir.clone());
    let before = w.node.state();
    let c = conf(&d.socket, "1.1.0", &dir.join("plugin.log"));
    let r0 = ok_json(&plugin(&w.node, "ADD", Some((&w.pods[0], "k0")), &c));
    let r1 = ok_json(&plugin(&w.node, "ADD", Some((&w.pods[1], "k1")), &c));
    let ip0 = r0["ips"][0]["address"]
        .as_str()
        .unwrap()
        .trim_end_matches("/32")
        .to_owned();
    let with_prev = |r: &Value| {
        let mut c = c.clone();
        c["prevResult"] = r.clone();
        c
    };
    let checked = plugin(&w.node, "CHECK", Some((&w.pods[0], "k0")), &with_prev(&r0));
    assert!(checked.status.success(), "{checked:?}");
    assert!(checked.stdout.is_empty(), "CHECK prints nothing");
    // A prevResult naming another pod's address: ipamd disagrees.
    let wrong = plugin(&w.node, "CHECK", Some((&w.pods[0], "k0")), &with_prev(&r1));
    let e: Value = serde_json::from_slice(&wrong.stdout).unwrap();
    assert_eq!(e["code"], 102, "{e}");
    // GC with only k1 listed: k0's address goes back and its node side is removed.
    let mut gc = c.clone();
    gc["cni.dev/valid-attachments"] = json!([{"containerID": "c-k1", "ifname": "eth0"}]);
    let out = plugin(&w.node, "GC", None, &gc);
    assert!(out.status.success(), "{out:?}");
    let veth0 = r0["interfaces"][0]["name"].as_str().unwrap();
    let links = w.node.state()["links"].clone();
    assert!(
        !links.as_array().unwrap().contains(&json!(veth0)),
        "{links}"
    );
    let gone = plugin(&w.node, "CHECK", Some((&w.pods[0], "k0")), &with_prev(&r0));
    let e: Value = serde_json::from_slice(&gone.stdout).unwrap();
    assert_eq!(e["code"], 102, "{e}");
    assert!(
        e["msg"].as_str().unwrap().contains("holds no address"),
        "{e}"
    );
    let kept = plugin(&w.node, "CHECK", Some((&w.pods[1], "k1")), &with_prev(&r1));
    assert!(
        kept.status.success(),
        "the listed pod is untouched: {kept:?}"
    );
    // The node loses its route to k1: CHECK says so, naming the address.
    let ip1 = r1["ips"][0]["address"]
        .as_str()
        .unwrap()
        .trim_end_matches("/32")
        .to_owned();
    ip(&["-n", &w.node.0, "route", "del", &format!("{ip1}/32")]);
    let broken = plugin(&w.node, "CHECK", Some((&w.pods[1], "k1")), &with_prev(&r1));
    let e: Value = serde_json::from_slice(&broken.stdout).unwrap();
    assert_eq!(e["code"], 102, "{e}");
    assert!(e["msg"].as_str().unwrap().contains(&ip1), "{e}");
    assert!(
        !w.node
            .json(&["rule", "show"])
            .to_string()
            .contains(&format!("\"{ip0}\"")),
        "k0's rules went with GC"
    );
    assert!(
        plugin(&w.node, "DEL", Some((&w.pods[1], "k1")), &c)
            .status
            .success()
    );
    assert_eq!(w.node.state(), before);
    d.stop().await;
}

/// A plugin of Debian's `containernetworking-plugins` (installed by `scripts/test`), chained
/// after eniplan-cni as a runtime chains it: `prevResult` is eniplan-cni's result.
fn chained(
    node: &Netns,
    plugin_name: &str,
    command: &str,
    pod: (&Netns, &str),
    stdin: &Value,
) -> Output {
    exec_plugin(
        node,
        &format!("/usr/lib/cni/{plugin_name}"),
        command,
        Some(pod),
        stdin,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn portmap_and_bandwidth_chained_after_it_get_a_result_they_can_use() {
    let dir = temp_dir("portmap");
    let d = ipamd(&dir, "m5.large").await;
    let w = World::new("p", 1, d.node_ip, dir.clone());
    // containernetworking-plugins 1.1 speaks up to 1.0.0.
    let c = conf(&d.socket, "1.0.0", &dir.join("plugin.log"));
    let result = ok_json(&plugin(&w.node, "ADD", Some((&w.pods[0], "web")), &c));
    let portmap = json!({
        "cniVersion": "1.0.0",
        "name": "aws-cni",
        "type": "portmap",
        "capabilities": {"portMappings": true},
        "snat": true,
        "runtimeConfig": {"portMappings": [{"hostPort": 18443, "containerPort": 8080, "protocol": "tcp"}]},
        "prevResult": result,
    });
    let out = chained(&w.node, "portmap", "ADD", (&w.pods[0], "web"), &portmap);
    assert!(
        out.status.success(),
        "portmap ADD: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let passed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        passed["ips"], result["ips"],
        "portmap passes eniplan-cni's result on"
    );
    let reached = tcp(
        &w.node.path(),
        &w.pods[0].path(),
        SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 8080),
        SocketAddrV4::new(d.node_ip, 18443),
    );
    assert!(
        reached.is_ok(),
        "the host port reaches the pod: {reached:?}"
    );
    // bandwidth after portmap: its prevResult is what portmap passed on.
    let bandwidth = json!({
        "cniVersion": "1.0.0",
        "name": "aws-cni",
        "type": "bandwidth",
        "capabilities": {"bandwidth": true},
        "runtimeConfig": {"bandwidth": {"ingressRate": 8_000_000, "ingressBurst": 80_000, "egressRate": 8_000_000, "egressBurst": 80_000}},
        "prevResult": passed,
    });
    let out = chained(&w.node, "bandwidth", "ADD", (&w.pods[0], "web"), &bandwidth);
    assert!(
        out.status.success(),
        "bandwidth ADD: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let host_veth = result["interfaces"][0]["name"].as_str().unwrap();
    let qdisc = Command::new("tc")
        .args(["-n", &w.node.0, "qdisc", "show", "dev", host_veth])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&qdisc.stdout).contains("tbf"),
        "a rate limit on the host end: {qdisc:?}"
    );
    let out = chained(&w.node, "bandwidth", "DEL", (&w.pods[0], "web"), &bandwidth);
    assert!(out.status.success(), "bandwidth DEL: {out:?}");
    let out = chained(&w.node, "portmap", "DEL", (&w.pods[0], "web"), &portmap);
    assert!(out.status.success(), "portmap DEL: {out:?}");
    assert!(
        plugin(&w.node, "DEL", Some((&w.pods[0], "web")), &c)
            .status
            .success()
    );
    d.stop().await;
}
