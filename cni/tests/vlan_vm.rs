//! Branch-ENI pods on a real 802.1Q implementation. This machine's kernel has no VLAN support,
//! so the test boots a Debian kernel that has it under qemu (software emulation,
//! `scripts/vm-run`) and runs itself inside, with the real `eniplan-cni`:
//!
//! * the node namespace has a trunk link (`eth1`) and a primary ENI (`eth0`); the VPC
//!   namespace terminates VLANs 7 and 8 on the trunk's peer with the branch subnets' gateways
//!   and knows each branch address by its branch MAC, as EC2's fabric does;
//! * a stand-in for ipamd answers ADD with what ipamd answers (the daemon's side is tested
//!   against the harness in `ipamd/tests/branch_pods.rs`);
//! * a strict pod (VLAN 7), a standard pod (VLAN 8) and a pool pod are wired, CHECKed, reach the
//!   VPC, are reached from the node, and are removed with DEL, leaving the node as it was.
//!
//! Without arguments this is the host side: it boots the VM and reads the verdict from the
//! serial console. `guest` runs the checks (only inside the VM).

use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use serde_json::Value;

mod common;

use common::stub::{Book, Stub, branch_reply, pool_reply};
use common::{Netns, exec_plugin, ip};

const PASSED: &str = "vlan-vm guest: every check passed";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // As a libtest binary would: `--list` names the test, a filter that does not match skips it.
    if args.iter().any(|a| a == "--list") {
        println!("vlan_vm: test");
        return;
    }
    if let Some(filter) = args.iter().find(|a| !a.starts_with('-') && *a != "guest")
        && !"vlan_vm".contains(filter.as_str())
    {
        println!("test result: ok. 0 passed; 1 filtered out");
        return;
    }
    if args.first().map(String::as_str) == Some("guest") {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        // The stand-in ipamd is served by the runtime's workers while the checks run here.
        let _inside = runtime.enter();
        let bench = std::env::args().nth(2).as_deref() == Some("--bench");
        guest(bench);
        println!("{PASSED}");
        return;
    }
    host();
}

/// Boots the VM with this binary and the plugin in it; fails unless the guest passed.
fn host() {
    let exe = std::env::current_exe().unwrap();
    let plugin = env!("CARGO_BIN_EXE_eniplan-cni");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let started = Instant::now();
    let out = Command::new("bash")
        .arg(root.join("scripts/vm-run"))
        .args(["--timeout", "600", "--mem", "768"])
        .arg("--bin")
        .arg(&exe)
        .args(["--bin", plugin, "--"])
        .arg(&exe)
        .arg("guest")
        // ENIPLAN_VM_BENCH=1: the guest also times branch and pool pods (docs/benchmarks.md).
        .args(std::env::var_os("ENIPLAN_VM_BENCH").map(|_| "--bench"))
        .output()
        .expect("run scripts/vm-run");
    let console = String::from_utf8_lossy(&out.stdout);
    eprintln!(
        "vlan_vm: the VM ran for {:.1} s (scripts/vm-run, exit {})",
        started.elapsed().as_secs_f64(),
        out.status
    );
    for line in console.lines().filter(|l| l.contains("vlan-vm bench:")) {
        eprintln!("{line}");
    }
    assert!(
        out.status.success() && console.contains(PASSED),
        "the VM test failed ({}):\n{console}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    println!("test vlan_vm ... ok");
}

fn sh(ns: &str, args: &[&str]) {
    let mut full = vec!["-n", ns];
    full.extend_from_slice(args);
    ip(&full);
}

fn links(ns: &Netns) -> Vec<String> {
    ns.json(&["link", "show"])
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["ifname"].as_str().unwrap().to_owned())
        .collect()
}

fn rules(ns: &Netns) -> Vec<String> {
    let out = ip(&["-n", &ns.0, "-4", "rule", "show"]);
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn table(ns: &Netns, t: u32) -> String {
    let out = ip(&["-n", &ns.0, "-4", "route", "show", "table", &t.to_string()]);
    String::from_utf8(out.stdout).unwrap()
}

/// Packets the VPC namespace sent on `link`.
fn sent(vpc: &Netns, link: &str) -> u64 {
    let v = vpc.json(&["-s", "link", "show", link]);
    v[0]["stats64"]["tx"]["packets"].as_u64().unwrap()
}

/// Packets the VPC namespace received on `link`.
fn received(vpc: &Netns, link: &str) -> u64 {
    let v = vpc.json(&["-s", "link", "show", link]);
    v[0]["stats64"]["rx"]["packets"].as_u64().unwrap()
}

static PORT: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(30_000);

/// A TCP connection from namespace `from` to `to`, answered in `at`; the peer address seen.
fn tcp(from: &Netns, at: &Netns, to: Ipv4Addr) -> Result<Ipv4Addr, String> {
    let port = PORT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let addr = SocketAddrV4::new(to, port);
    common::tcp(&from.path(), &at.path(), addr, addr)
}

fn plugin(node: &Netns, command: &str, pod: &Netns, name: &str, conf: &Value) -> Value {
    let out = exec_plugin(
        node,
        env!("CARGO_BIN_EXE_eniplan-cni"),
        command,
        Some((pod, name)),
        conf,
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{command} {name}: {text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

fn with(conf: &Value, key: &str, value: Value) -> Value {
    let mut c = conf.clone();
    c[key] = value;
    c
}

#[allow(clippy::too_many_lines, reason = "one scenario, read top to bottom")]
fn guest(bench: bool) {
    let node = Netns::new("node".into());
    let vpc = Netns::new("vpc".into());
    // The primary ENI and the trunk, each a veth pair into the VPC namespace.
    ip(&[
        "link", "add", "eth0", "netns", "node", "type", "veth", "peer", "name", "p0", "netns",
        "vpc",
    ]);
    ip(&[
        "link", "add", "eth1", "netns", "node", "type", "veth", "peer", "name", "trunk", "netns",
        "vpc",
    ]);
    for (ns, link) in [
        ("node", "eth0"),
        ("node", "eth1"),
        ("vpc", "p0"),
        ("vpc", "trunk"),
    ] {
        sh(ns, &["link", "set", link, "up"]);
    }
    // Both route: the node between pods and ENIs, the VPC between subnets.
    for ns in ["node", "vpc"] {
        ip(&[
            "netns",
            "exec",
            ns,
            "sysctl",
            "-qw",
            "net.ipv4.ip_forward=1",
        ]);
    }
    sh("node", &["addr", "add", "10.0.0.10/20", "dev", "eth0"]);
    sh(
        "node",
        &["route", "add", "default", "via", "10.0.0.1", "dev", "eth0"],
    );
    sh("vpc", &["addr", "add", "10.0.0.1/20", "dev", "p0"]);
    sh(
        "vpc",
        &[
            "route",
            "add",
            "10.0.0.20/32",
            "via",
            "10.0.0.10",
            "dev",
            "p0",
        ],
    );
    // The VPC's side of the branches: each VLAN ends at its subnet's gateway, and the fabric
    // delivers each branch address to its branch MAC.
    let branches = [
        (
            "shop-strict",
            7,
            "0e:00:00:00:07:01",
            "10.0.96.23",
            "10.0.96.1",
            "10.0.96.1/19",
        ),
        (
            "shop-standard",
            8,
            "0e:00:00:00:08:01",
            "10.0.128.9",
            "10.0.128.1",
            "10.0.128.1/19",
        ),
    ];
    for (_, vlan, mac, pod_ip, _, gw_cidr) in branches {
        let v = format!("v{vlan}");
        sh(
            "vpc",
            &[
                "link",
                "add",
                "link",
                "trunk",
                "name",
                &v,
                "type",
                "vlan",
                "id",
                &vlan.to_string(),
            ],
        );
        sh("vpc", &["addr", "add", gw_cidr, "dev", &v]);
        sh("vpc", &["link", "set", &v, "up"]);
        sh(
            "vpc",
            &[
                "neigh",
                "add",
                pod_ip,
                "lladdr",
                mac,
                "dev",
                &v,
                "nud",
                "permanent",
            ],
        );
    }
    // ipamd with ENABLE_POD_ENI and strict mode moves the local rule after the VLAN rules
    // (ipamd/tests/hostnet.rs checks it does).
    sh("node", &["rule", "add", "pref", "20", "lookup", "local"]);
    sh("node", &["rule", "del", "pref", "0", "lookup", "local"]);
    let trunk = node.json(&["link", "show", "eth1"])[0]["ifindex"]
        .as_u64()
        .unwrap();
    let trunk = u32::try_from(trunk).unwrap();
    let before = (links(&node), rules(&node));

    let dir = std::env::temp_dir().join("vlan-vm");
    std::fs::create_dir_all(&dir).unwrap();
    let socket = dir.join("ipamd.sock");
    let mut book = Book::default();
    for (name, vlan, mac, pod_ip, gw, _) in branches {
        book.answers
            .insert(name.to_owned(), branch_reply(pod_ip, vlan, mac, gw, trunk));
    }
    book.answers
        .insert("web".to_owned(), pool_reply("10.0.0.20"));
    let del_standard = ipamd::rpc::DelNetworkReply {
        success: true,
        ip_allocation_metadata: book.answers["shop-standard"].ip_allocation_metadata.clone(),
        pod_vlan_id: 8,
        ..Default::default()
    };
    book.del_answers
        .insert("shop-standard".to_owned(), del_standard);
    let stub = Stub::serve(&socket, book);
    let strict = common::conf(&socket, "1.1.0", &dir.join("plugin.log"));
    let standard = with(&strict, "podSGEnforcingMode", Value::from("standard"));

    // Strict: the VLAN link with the branch MAC on the trunk, table 107, the interface rules.
    let a = Netns::new("pod-strict".into());
    let result = plugin(&node, "ADD", &a, "shop-strict", &strict);
    let dummy = result["interfaces"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"].as_str().unwrap().starts_with("dummy"));
    assert_eq!(dummy.unwrap()["mac"], "7", "{result}");
    assert_eq!(result["ips"][0]["gateway"], "10.0.96.1", "{result}");
    let host_veth = result["interfaces"][0]["name"].as_str().unwrap().to_owned();
    assert!(host_veth.starts_with("vlan"), "{host_veth}");
    let link = node.json(&["-d", "link", "show", "vlan.eth.7"]);
    assert_eq!(link[0]["address"], "0e:00:00:00:07:01", "{link}");
    assert_eq!(link[0]["linkinfo"]["info_kind"], "vlan", "{link}");
    assert_eq!(link[0]["linkinfo"]["info_data"]["id"], 7, "{link}");
    assert_eq!(link[0]["link"], "eth1", "the trunk is its parent: {link}");
    let t107 = table(&node, 107);
    assert!(
        t107.contains("default via 10.0.96.1 dev vlan.eth.7"),
        "{t107}"
    );
    assert!(
        t107.lines()
            .any(|l| l.starts_with(&format!("10.0.96.23 dev {host_veth} "))
                && l.trim_end().ends_with("scope link")),
        "{t107}"
    );
    let now = rules(&node);
    for want in [
        "10:\tfrom all iif vlan.eth.7 lookup 107".to_owned(),
        format!("10:\tfrom all iif {host_veth} lookup 107"),
    ] {
        assert!(now.contains(&want), "{want} in {now:?}");
    }
    assert!(
        !table(&node, 254).contains("10.0.96.23"),
        "strict: no route to the pod in main"
    );

    // Standard: the pool pod's rules pointing at table 108, the route in main.
    let b = Netns::new("pod-standard".into());
    let result = plugin(&node, "ADD", &b, "shop-standard", &standard);
    let std_veth = result["interfaces"][0]["name"].as_str().unwrap().to_owned();
    assert!(std_veth.starts_with("eni"), "{std_veth}");
    assert!(table(&node, 108).contains("default via 10.0.128.1 dev vlan.eth.8"));
    let now = rules(&node);
    assert!(
        now.contains(&"512:\tfrom all to 10.0.128.9 lookup main".to_owned()),
        "{now:?}"
    );
    assert!(
        now.contains(&"1536:\tfrom 10.0.128.9 lookup 108".to_owned()),
        "{now:?}"
    );

    // A pool pod on the same node.
    let c = Netns::new("pod-web".into());
    plugin(&node, "ADD", &c, "web", &strict);

    // CHECK: each as built.
    let prev = |r: &Value, conf: &Value| with(conf, "prevResult", r.clone());
    let strict_result = plugin(&node, "ADD", &a, "shop-strict", &strict);
    plugin(
        &node,
        "CHECK",
        &a,
        "shop-strict",
        &prev(&strict_result, &strict),
    );
    let standard_result = plugin(&node, "ADD", &b, "shop-standard", &standard);
    plugin(
        &node,
        "CHECK",
        &b,
        "shop-standard",
        &prev(&standard_result, &standard),
    );

    // Traffic: each branch pod reaches its gateway through its VLAN, untranslated.
    for (pod, vlan, pod_ip, gw) in [
        (&a, 7, "10.0.96.23", "10.0.96.1"),
        (&b, 8, "10.0.128.9", "10.0.128.1"),
    ] {
        let v = format!("v{vlan}");
        let seen = received(&vpc, &v);
        let peer =
            tcp(pod, &vpc, gw.parse().unwrap()).unwrap_or_else(|e| panic!("{pod_ip} → {gw}: {e}"));
        assert_eq!(peer.to_string(), pod_ip);
        assert!(
            received(&vpc, &v) > seen,
            "the traffic came in on VLAN {vlan}"
        );
    }
    // Node-local traffic: to the strict pod it leaves through the VPC (whose VLAN brings it back
    // to the pod, its security groups applying); to the standard pod it goes directly.
    let route_to =
        |dst: &str| String::from_utf8(ip(&["-n", "node", "route", "get", dst]).stdout).unwrap();
    assert!(
        route_to("10.0.96.23").contains("via 10.0.0.1 dev eth0"),
        "{}",
        route_to("10.0.96.23")
    );
    assert!(
        route_to("10.0.128.9").contains(&format!("dev {std_veth}")),
        "{}",
        route_to("10.0.128.9")
    );
    tcp(&node, &b, "10.0.128.9".parse().unwrap()).expect("node → standard pod");
    // The node's own connection to the strict pod gets its replies through the trunk: with
    // TCP early demux on (the kernel's default) they go to the socket on a stale route and the
    // connection times out; `eniplan-cni install` with DISABLE_TCP_EARLY_DEMUX=true turns it off
    // (cni/tests/install.rs), as here, and it works — through the VPC and VLAN 7.
    tcp(&node, &a, "10.0.96.23".parse().unwrap())
        .expect_err("node → strict pod with early demux on");
    ip(&[
        "netns",
        "exec",
        "node",
        "/bin/sh",
        "-c",
        "echo 0 > /proc/sys/net/ipv4/tcp_early_demux",
    ]);
    let sent7 = sent(&vpc, "v7");
    let peer = tcp(&node, &a, "10.0.96.23".parse().unwrap()).expect("node → strict pod");
    assert_eq!(peer, "10.0.0.10".parse::<Ipv4Addr>().unwrap());
    assert!(sent(&vpc, "v7") > sent7, "it came to the pod on VLAN 7");
    // The pool pod keeps working beside them.
    assert_eq!(
        tcp(&c, &vpc, "10.0.0.1".parse().unwrap()).expect("pool pod → VPC"),
        "10.0.0.20".parse::<Ipv4Addr>().unwrap()
    );
    tcp(&node, &c, "10.0.0.20".parse().unwrap()).expect("node → pool pod");

    // GC: the runtime no longer lists the strict pod; its node side goes (found by the record
    // ADD wrote), the others stay.
    let records = dir.join("cni-state/branches/aws-cni");
    assert!(records.join("c-shop-strict_eth0.json").exists());
    let gc = with(
        &strict,
        "cni.dev/valid-attachments",
        serde_json::json!([{"containerID": "c-shop-standard", "ifname": "eth0"},
                           {"containerID": "c-web", "ifname": "eth0"}]),
    );
    let out = exec_plugin(&node, env!("CARGO_BIN_EXE_eniplan-cni"), "GC", None, &gc);
    assert!(
        out.status.success(),
        "GC: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        !links(&node).contains(&"vlan.eth.7".to_owned()),
        "GC removed the VLAN"
    );
    assert!(table(&node, 107).is_empty(), "{}", table(&node, 107));
    assert!(!rules(&node).iter().any(|r| r.contains("lookup 107")));
    assert!(!records.join("c-shop-strict_eth0.json").exists());
    assert!(
        links(&node).contains(&"vlan.eth.8".to_owned()),
        "the listed pods stay"
    );

    // DEL from prevResult (no ipamd call), and without one (ipamd names the VLAN); twice.
    for _ in 0..2 {
        plugin(
            &node,
            "DEL",
            &a,
            "shop-strict",
            &prev(&strict_result, &strict),
        );
    }
    assert!(!links(&node).contains(&"vlan.eth.7".to_owned()));
    assert!(table(&node, 107).is_empty(), "{}", table(&node, 107));
    // Without prevResult: ADD's record names the VLAN (no ipamd call either).
    plugin(&node, "DEL", &b, "shop-standard", &standard);
    assert!(!links(&node).contains(&"vlan.eth.8".to_owned()));
    assert!(
        !stub.calls().iter().any(|c| c.starts_with("del shop")),
        "{:?}",
        stub.calls()
    );
    // Without prevResult and without a record (a pod wired before, say): ipamd names it.
    plugin(&node, "ADD", &b, "shop-standard", &standard);
    std::fs::remove_file(records.join("c-shop-standard_eth0.json")).unwrap();
    plugin(&node, "DEL", &b, "shop-standard", &standard);
    assert!(!links(&node).contains(&"vlan.eth.8".to_owned()));
    plugin(&node, "DEL", &c, "web", &strict);
    let calls = stub.calls();
    assert!(
        !calls.iter().any(|c| c.starts_with("del shop-strict")),
        "{calls:?}"
    );
    assert!(
        calls.contains(&"del shop-standard PodDeleted".to_owned()),
        "{calls:?}"
    );
    assert_eq!(
        (links(&node), rules(&node)),
        before,
        "the node is as before the pods"
    );
    assert!(table(&node, 108).is_empty());
    if bench {
        timings(&node, &a, &c, &strict);
    }
}

/// ADD+DEL of a strict branch pod and of a pool pod, 20 of each, in this VM (software
/// emulation: compare the two, not with the host's figures).
fn timings(node: &Netns, branch_pod: &Netns, pool_pod: &Netns, conf: &Value) {
    let mut report = Vec::new();
    for (label, pod, name) in [
        ("branch", branch_pod, "shop-strict"),
        ("pool", pool_pod, "web"),
    ] {
        let mut took: Vec<f64> = (0..20)
            .map(|_| {
                let t = Instant::now();
                let r = plugin(node, "ADD", pod, name, conf);
                plugin(node, "DEL", pod, name, &with(conf, "prevResult", r));
                t.elapsed().as_secs_f64() * 1000.0
            })
            .collect();
        took.sort_by(f64::total_cmp);
        report.push(format!(
            "{label} ADD+DEL p50 {:.1} ms p90 {:.1} ms",
            took[10], took[18]
        ));
    }
    println!("vlan-vm bench: {}", report.join("; "));
}
