//! A node as on EC2: the harness stands an instance up in network namespaces (its ENIs as
//! links with their MACs, the VPC's router with EC2's source/destination check, an address
//! outside the VPC; harness/README.md "The node world"). The real `ipamd` binary runs inside
//! the node's namespace with its production defaults (IMDS at 169.254.169.254, only the EC2
//! endpoint pointed at the harness), sets up the host networking of every ENI it attaches, and
//! the real plugin wires pods, each in its own namespace. Traffic is real TCP.
//!
//! Needs root, iproute2, iptables and the harness (`scripts/test` provides them) and the
//! `ipamd` binary next to this test's (`cargo test --workspace` builds it).

use std::mem::ManuallyDrop;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::process::Command;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use serde_json::Value;

mod common;
use common::world::{Ipamd, checkpointed, checkpointed_field, wired};
use common::{Netns, add_until_served, conf, del, exec_plugin};

/// ADDs `pod` as the kubelet does (again while the answer is "try again later"); its address.
fn add(node: &Netns, pod: &Netns, name: &str, conf: &Value) -> Ipv4Addr {
    let result = add_until_served(node, pod, name, conf);
    let address = result["ips"][0]["address"].as_str().unwrap();
    address.split('/').next().unwrap().parse().unwrap()
}

fn ip_in(netns: &str, args: &[&str]) -> String {
    let out = Command::new("ip")
        .args(["-n", netns])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn exec_in(netns: &str, cmd: &[&str]) -> String {
    let out = Command::new("ip")
        .args(["netns", "exec", netns])
        .args(cmd)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// What ipamd owns on the node: rules, every table's routes, the nat and mangle tables.
fn host_state(netns: &str) -> String {
    let rules: Vec<String> = ip_in(netns, &["-4", "rule", "show"])
        .lines()
        // The pods' rules are the plugin's, not ipamd's.
        .filter(|l| !l.starts_with("512:") && !l.starts_with("1536:"))
        .map(str::to_owned)
        .collect();
    format!(
        "{}\n{}\n{}\n{}",
        rules.join("\n"),
        ip_in(netns, &["-4", "route", "show", "table", "all"]),
        exec_in(netns, &["iptables", "-w", "-t", "nat", "-S"]),
        exec_in(netns, &["iptables", "-w", "-t", "mangle", "-S"]),
    )
}

/// The route table of the ENI a pod's address came from: its `from POD` rule's table, `None`
/// for the primary ENI (whose pods use the main table).
fn pod_table(netns: &str, pod: Ipv4Addr) -> Option<String> {
    ip_in(netns, &["-4", "rule", "show"])
        .lines()
        .find(|l| l.starts_with("1536:") && l.contains(&format!("from {pod} ")))
        .and_then(|l| l.rsplit(' ').next().map(str::to_owned))
}

static PORT: AtomicU16 = AtomicU16::new(20_000);

/// Connects from inside the namespace `from` to `to`, where a listener inside `at` answers;
/// the address the listener saw the connection come from, or why there was none.
fn tcp(from: &str, at: &str, to: Ipv4Addr) -> Result<Ipv4Addr, String> {
    let port = PORT.fetch_add(1, Ordering::Relaxed);
    let addr = SocketAddrV4::new(to, port);
    common::tcp(
        &format!("/var/run/netns/{from}"),
        &format!("/var/run/netns/{at}"),
        addr,
        addr,
    )
}

/// Packets the VPC router received from an ENI (its peer link's counter).
fn received_from(vpc: &str, peer: &str) -> u64 {
    let v: Value = serde_json::from_str(&ip_in(vpc, &["-j", "-s", "link", "show", peer])).unwrap();
    v[0]["stats64"]["rx"]["packets"].as_u64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::too_many_lines, reason = "one scenario, read top to bottom")]
async fn pods_on_every_eni_reach_each_other_the_vpc_and_outside_through_snat() {
    let pid = std::process::id();
    let ec2 = harness_client::ec2().await;
    let subnet = harness_client::subnet(&ec2, "10.0.0.0/20").await;
    // t3.medium: 3 ENIs of 6 addresses, so the sixth pod lands on the second ENI.
    let instance = harness_client::instance(&ec2, "t3.medium", &subnet).await;
    let world = harness_client::node(&format!("s{}", pid % 1_000_000), &instance, 200);
    let node = ManuallyDrop::new(Netns(world.netns.clone()));
    let (ns, vpc) = (world.netns.as_str(), world.vpc_netns.as_str());
    let dir = std::env::temp_dir().join(format!("eniplan-cni-node-{pid}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut daemon = Ipamd::start(ns, &dir, &[]);
    daemon.ready().await;
    let conf = conf(&daemon.socket(), "1.1.0", &dir.join("plugin.log"));
    let node_ip: Ipv4Addr = ip_in(ns, &["-4", "-o", "addr", "show", "eth0"])
        .split_whitespace()
        .nth(3)
        .and_then(|a| a.split('/').next())
        .unwrap()
        .parse()
        .unwrap();

    // Pods until one is on a secondary ENI.
    let mut pods = Vec::new();
    let secondary = loop {
        assert!(
            pods.len() < 8,
            "no pod reached a secondary ENI:\n{}",
            daemon.log()
        );
        let name = format!("p{}", pods.len());
        let pod = Netns::new(format!("enp-nd-{pid}-{}", pods.len()));
        let address = add(&node, &pod, &name, &conf);
        let table = pod_table(ns, address);
        pods.push((pod, name, address));
        if let Some(table) = table {
            break (pods.len() - 1, table);
        }
    };
    let (p_ns, _, p_ip) = (&pods[0].0.0, &pods[0].1, pods[0].2);
    let (s_ns, s_ip) = (&pods[secondary.0].0.0, pods[secondary.0].2);
    assert_eq!(secondary.1, "2", "device 1's table is 2");

    // ipamd set the second ENI up: its link, table 2 and its primary address's rule.
    let eth1 = ip_in(ns, &["-4", "-o", "addr", "show", "eth1"]);
    let eth1_ip = eth1
        .split_whitespace()
        .nth(3)
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_owned();
    assert!(
        eth1.contains("/20"),
        "the ENI's primary address with the subnet's length: {eth1}"
    );
    let link = ip_in(ns, &["link", "show", "eth1"]);
    assert!(link.contains("mtu 9001") && link.contains(",UP"), "{link}");
    let table = ip_in(ns, &["-4", "route", "show", "table", "2"]);
    assert!(table.contains("default via 10.0.0.1 dev eth1"), "{table}");
    let rules = ip_in(ns, &["-4", "rule", "show"]);
    assert!(
        rules.contains(&format!("32765:\tfrom {eth1_ip} lookup 2")),
        "{rules}"
    );
    assert!(
        rules.contains("1024:\tfrom all fwmark 0x80/0x80 lookup main"),
        "{rules}"
    );

    // Pod to pod across ENIs, both ways, without SNAT.
    assert_eq!(tcp(p_ns, s_ns, s_ip), Ok(p_ip));
    assert_eq!(tcp(s_ns, p_ns, p_ip), Ok(s_ip));
    // To its own node.
    assert_eq!(tcp(s_ns, ns, node_ip), Ok(s_ip));
    // Into the VPC (the router's address) from the secondary ENI's pod: it leaves through
    // eth1, the only ENI EC2's source/destination check lets its address out of.
    let eth1_peer = {
        // The VPC side of eth1: the link whose peer's index is eth1's (one node per VPC here).
        let eth1: Value =
            serde_json::from_str(&ip_in(ns, &["-j", "link", "show", "eth1"])).unwrap();
        let index = eth1[0]["ifindex"].as_u64();
        let links: Value = serde_json::from_str(&ip_in(vpc, &["-j", "link", "show"])).unwrap();
        links
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["link_index"].as_u64() == index && l["link_netnsid"].is_number())
            .map_or_else(
                || panic!("no VPC peer of eth1 in {links}"),
                |l| l["ifname"].as_str().unwrap().to_owned(),
            )
    };
    let before = received_from(vpc, &eth1_peer);
    assert_eq!(tcp(s_ns, vpc, "10.0.0.1".parse().unwrap()), Ok(s_ip));
    assert!(
        received_from(vpc, &eth1_peer) >= before + 3,
        "the handshake went through eth1"
    );
    // Outside the VPC: SNATed to the node's address, out of the primary ENI (connmark), from
    // both ENIs' pods.
    assert_eq!(tcp(p_ns, vpc, world.outside), Ok(node_ip));
    assert_eq!(tcp(s_ns, vpc, world.outside), Ok(node_ip));

    // A restart finds its own host networking and changes nothing; pods keep working.
    let before = host_state(ns);
    daemon.stop();
    let mut daemon = Ipamd::start(ns, &dir, &[]);
    daemon.ready().await;
    assert_eq!(
        host_state(ns),
        before,
        "ipamd's second start rewrote the node"
    );
    assert_eq!(tcp(s_ns, vpc, world.outside), Ok(node_ip));

    // External SNAT: the chains go, pods reach outside with their own addresses.
    daemon.stop();
    let mut daemon = Ipamd::start(ns, &dir, &[("AWS_VPC_K8S_CNI_EXTERNALSNAT", "true")]);
    daemon.ready().await;
    let nat = exec_in(ns, &["iptables", "-w", "-t", "nat", "-S"]);
    assert!(
        !nat.contains("AWS-SNAT-CHAIN-0") && !nat.contains("AWS-CONNMARK-CHAIN-0"),
        "{nat}"
    );
    assert_eq!(tcp(p_ns, vpc, world.outside), Ok(p_ip));
    assert_eq!(tcp(s_ns, vpc, world.outside), Ok(s_ip));

    for (pod, name, _) in &pods {
        del(&node, pod, name, &conf);
    }
    let rules = ip_in(ns, &["-4", "rule", "show"]);
    assert!(
        !rules.contains("512:") && !rules.contains("1536:"),
        "{rules}"
    );
    daemon.stop();
    drop(pods);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Runs `command` for every pod at once; `kill` is called once `after` of them succeeded.
fn storm(
    node: &Netns,
    pods: &[(Netns, String)],
    command: &str,
    conf: &Value,
    after: usize,
    kill: impl FnOnce(),
) -> Vec<bool> {
    let done = std::sync::Mutex::new(0usize);
    let changed = std::sync::Condvar::new();
    std::thread::scope(|s| {
        let runs: Vec<_> = pods
            .iter()
            .map(|(pod, name)| {
                let (done, changed) = (&done, &changed);
                s.spawn(move || {
                    let out = exec_plugin(
                        node,
                        env!("CARGO_BIN_EXE_eniplan-cni"),
                        command,
                        Some((pod, name)),
                        conf,
                    );
                    if out.status.success() {
                        *done.lock().unwrap() += 1;
                        changed.notify_all();
                    }
                    out.status.success()
                })
            })
            .collect();
        let guard = done.lock().unwrap();
        let (guard, timeout) = changed
            .wait_timeout_while(guard, Duration::from_mins(1), |n| *n < after)
            .unwrap();
        assert!(
            !timeout.timed_out(),
            "fewer than {after} {command}s succeeded in 60 s"
        );
        drop(guard);
        kill();
        runs.into_iter().map(|r| r.join().unwrap()).collect()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::too_many_lines, reason = "one scenario, read top to bottom")]
async fn sigkill_during_add_and_del_storms_loses_and_doubles_no_address() {
    let pid = std::process::id();
    let ec2 = harness_client::ec2().await;
    let subnet = harness_client::subnet(&ec2, "10.0.0.0/20").await;
    let instance = harness_client::instance(&ec2, "m5.xlarge", &subnet).await;
    let world = harness_client::node(&format!("k{}", pid % 1_000_000), &instance, 200);
    let node = ManuallyDrop::new(Netns(world.netns.clone()));
    let ns = world.netns.as_str();
    let dir = std::env::temp_dir().join(format!("eniplan-cni-kill-{pid}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    // A pool big enough for every pod at once (28 addresses on two ENIs).
    let pool = [("MINIMUM_IP_TARGET", "26"), ("WARM_IP_TARGET", "2")];
    let mut daemon = Ipamd::start(ns, &dir, &pool);
    daemon.ready().await;
    let conf = conf(&daemon.socket(), "1.1.0", &dir.join("plugin.log"));
    let pods: Vec<(Netns, String)> = (0..24)
        .map(|i| (Netns::new(format!("enp-kl-{pid}-{i}")), format!("k{i}")))
        .collect();

    // ADD storm, ipamd SIGKILLed once three pods are up.
    let child_pid = daemon.child.id().to_string();
    let added = storm(&node, &pods, "ADD", &conf, 3, || {
        let _ = Command::new("kill").args(["-KILL", &child_pid]).status();
    });
    drop(daemon);
    let mut daemon = Ipamd::start(ns, &dir, &pool);
    daemon.ready().await;
    // Every ADD that succeeded is wired and checkpointed; every one that failed left no
    // interface; no address is on two pods. (A failed ADD may still be booked: ipamd may have
    // committed it and died before answering. The runtime's DEL of a failed ADD, below, frees
    // it, as the CNI spec has runtimes do.)
    let book = checkpointed(&dir);
    // The pod's UID from CNI_ARGS (K8S_POD_UID) is kept with each entry.
    let uids = checkpointed_field(&dir, "/metadata/k8sPodUID");
    let mut seen = std::collections::BTreeSet::new();
    for ((pod, name), ok) in pods.iter().zip(&added) {
        let id = format!("c-{name}");
        if *ok {
            assert!(wired(pod), "{name} succeeded but has no interface");
            let address = book
                .get(&id)
                .unwrap_or_else(|| panic!("{name} succeeded but is not checkpointed: {book:?}"));
            assert_eq!(uids.get(&id), Some(&format!("uid-{name}")), "{name}'s UID");
            assert!(
                seen.insert(address.clone()),
                "{address} is on two pods: {book:?}"
            );
        } else {
            assert!(!wired(pod), "{name} failed but kept its interface");
        }
    }
    eprintln!(
        "ADD storm: {} of {} succeeded before and while ipamd was killed",
        added.iter().filter(|ok| **ok).count(),
        added.len()
    );
    // The runtime DELs what failed (CNI: a failed ADD is cleaned up with DEL) and retries the
    // ADDs: every pod ends up with an address of its own.
    for ((pod, name), ok) in pods.iter().zip(&added) {
        if !ok {
            del(&node, pod, name, &conf);
            assert!(
                !checkpointed(&dir).contains_key(&format!("c-{name}")),
                "DEL {name} left it booked"
            );
            add(&node, pod, name, &conf);
        }
    }
    let book = checkpointed(&dir);
    let addresses: std::collections::BTreeSet<_> = book.values().collect();
    assert_eq!((book.len(), addresses.len()), (24, 24), "{book:?}");

    // DEL storm, ipamd SIGKILLed as soon as one pod is down; the runtime retries the DELs that
    // failed (and only those), and then nothing is left, in ipamd or on the node.
    let child_pid = daemon.child.id().to_string();
    let deleted = storm(&node, &pods, "DEL", &conf, 1, || {
        let _ = Command::new("kill").args(["-KILL", &child_pid]).status();
    });
    eprintln!(
        "DEL storm: {} of {} succeeded",
        deleted.iter().filter(|ok| **ok).count(),
        deleted.len()
    );
    drop(daemon);
    let mut daemon = Ipamd::start(ns, &dir, &pool);
    daemon.ready().await;
    for ((pod, name), ok) in pods.iter().zip(&deleted) {
        if !ok {
            del(&node, pod, name, &conf);
        }
        assert!(!wired(pod), "{name} still has its interface after DEL");
    }
    assert_eq!(checkpointed(&dir), std::collections::BTreeMap::new());
    let rules = ip_in(ns, &["-4", "rule", "show"]);
    assert!(
        !rules.contains("512:") && !rules.contains("1536:"),
        "{rules}"
    );
    let links = ip_in(ns, &["-o", "link", "show"]);
    assert!(
        !links.contains(": eni"),
        "a pod's host link is left:\n{links}"
    );
    daemon.stop();
    drop(pods);
    let _ = std::fs::remove_dir_all(&dir);
}
