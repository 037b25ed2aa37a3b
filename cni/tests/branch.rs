//! Branch-ENI pods in the node namespace of this machine, whose kernel has no 802.1Q: what
//! can be shown without a VLAN link (the VLAN itself is shown in `vlan_vm.rs`, in a VM). The
//! plugin binary runs as a runtime runs it; a stand-in answers as ipamd answers.
//!
//! Needs root and iproute2's `ip` (installed by `scripts/test`).

use std::process::Output;

use serde_json::{Value, json};

mod common;

use common::stub::{Book, Stub, branch_reply};
use common::{Netns, conf, exec_plugin, ip};

fn plugin(node: &Netns, command: &str, pod: &Netns, name: &str, stdin: &Value) -> Output {
    exec_plugin(
        node,
        env!("CARGO_BIN_EXE_eniplan-cni"),
        command,
        Some((pod, name)),
        stdin,
    )
}

fn ns(tag: &str) -> Netns {
    Netns::new(format!("br-{tag}-{}", std::process::id()))
}

/// Whether this kernel can make a VLAN link (in a namespace of its own).
fn kernel_has_vlans() -> bool {
    let scratch = ns("probe");
    ip(&[
        "-n", &scratch.0, "link", "add", "t0", "type", "veth", "peer", "name", "t1",
    ]);
    std::process::Command::new("ip")
        .args([
            "-n", &scratch.0, "link", "add", "link", "t0", "name", "t0.7", "type", "vlan", "id",
            "7",
        ])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The node: a trunk link whose index ipamd would answer as `ParentIfIndex`.
fn node_with_trunk(tag: &str) -> (Netns, u32) {
    let node = ns(tag);
    ip(&[
        "-n",
        &node.0,
        "link",
        "add",
        "eth1",
        "type",
        "veth",
        "peer",
        "name",
        "trunk-peer",
    ]);
    ip(&["-n", &node.0, "link", "set", "eth1", "up"]);
    let index = node.json(&["link", "show", "eth1"])[0]["ifindex"]
        .as_u64()
        .unwrap();
    (node, u32::try_from(index).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_branch_pod_on_a_kernel_without_8021q_fails_with_101_and_leaves_nothing() {
    let (node, trunk) = node_with_trunk("no8021q");
    let pod = ns("no8021q-pod");
    let dir = tempdir("no8021q");
    let socket = dir.join("ipamd.sock");
    let mut book = Book::default();
    book.answers.insert(
        "shop".into(),
        branch_reply("10.0.96.23", 7, "0e:00:00:00:07:01", "10.0.96.1", trunk),
    );
    let stub = Stub::serve(&socket, book);
    let before = (node.state(), pod.state());
    let out = plugin(
        &node,
        "ADD",
        &pod,
        "shop",
        &conf(&socket, "1.1.0", &dir.join("plugin.log")),
    );
    let reply: Value = serde_json::from_slice(&out.stdout).unwrap();
    if kernel_has_vlans() {
        // A kernel with 802.1Q: the VLAN link is there (the VM test checks the rest).
        assert!(out.status.success(), "{reply}");
        assert_eq!(
            node.json(&["link", "show", "vlan.eth.7"])[0]["address"],
            "0e:00:00:00:07:01"
        );
        return;
    }
    assert!(!out.status.success());
    assert_eq!(reply["code"], 101, "{reply}");
    let msg = reply["msg"].as_str().unwrap();
    assert!(msg.contains("vlan.eth.7") && msg.contains("8021q"), "{msg}");
    // Rolled back: the veth, its rules and routes are gone, the address is handed back.
    assert_eq!((node.state(), pod.state()), before, "nothing left behind");
    assert_eq!(stub.calls(), ["add shop", "del shop SetupNSFailed"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn del_of_a_branch_pod_clears_its_rules_and_veth_from_prev_result_without_ipamd() {
    let (node, _) = node_with_trunk("del");
    let pod = ns("del-pod");
    let dir = tempdir("del");
    let socket = dir.join("ipamd.sock");
    let stub = Stub::serve(&socket, Book::default());
    let before = node.state();
    // What ADD leaves for a strict pod on VLAN 7, short of the VLAN link this kernel lacks.
    let host_veth = eniplan_cni::wire::host_veth_name("vlan", "default", "shop");
    ip(&[
        "-n", &node.0, "link", "add", &host_veth, "type", "veth", "peer", "name", "eth0", "netns",
        &pod.0,
    ]);
    ip(&["-n", &node.0, "link", "set", &host_veth, "up"]);
    ip(&[
        "-n",
        &node.0,
        "route",
        "add",
        "10.0.96.23/32",
        "dev",
        &host_veth,
        "scope",
        "link",
        "table",
        "107",
    ]);
    for iif in ["vlan.eth.7", host_veth.as_str()] {
        ip(&[
            "-n", &node.0, "rule", "add", "pref", "10", "iif", iif, "lookup", "107",
        ]);
    }
    // And a standard pod's rules on VLAN 8.
    ip(&[
        "-n",
        &node.0,
        "rule",
        "add",
        "pref",
        "512",
        "to",
        "10.0.128.9",
        "lookup",
        "main",
    ]);
    ip(&[
        "-n",
        &node.0,
        "rule",
        "add",
        "pref",
        "1536",
        "from",
        "10.0.128.9",
        "lookup",
        "108",
    ]);
    let prev = |veth: &str, ip: &str, vlan: &str| {
        json!({"cniVersion": "1.1.0", "interfaces": [
            {"name": veth}, {"name": "eth0", "sandbox": pod.path()},
            {"name": eniplan_cni::wire::host_veth_name("dummy", "default", "shop"), "mac": vlan}],
            "ips": [{"address": format!("{ip}/32"), "interface": 1}]})
    };
    let mut c = conf(&socket, "1.1.0", &dir.join("plugin.log"));
    c["prevResult"] = prev(&host_veth, "10.0.96.23", "7");
    for _ in 0..2 {
        let out = plugin(&node, "DEL", &pod, "shop", &c);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    let standard_veth = eniplan_cni::wire::host_veth_name("eni", "default", "shop");
    c["prevResult"] = prev(&standard_veth, "10.0.128.9", "8");
    let out = plugin(&node, "DEL", &pod, "shop", &c);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(node.state(), before, "rules, routes and the veth are gone");
    assert!(
        stub.calls().is_empty(),
        "ipamd holds nothing for branch pods: {:?}",
        stub.calls()
    );
}

fn tempdir(tag: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("eniplan-branch-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
