//! ipamd's host networking against a real kernel: each test makes a fresh network namespace
//! that stands for the node, with links carrying the ENIs' MACs, runs `HostNet` on a
//! thread inside it (netlink sockets and the `iptables` children it spawns live there), and
//! reads the result back with `ip -j` and `iptables -S`.
//!
//! Needs root, iproute2 and iptables (installed by `scripts/test`). The namespaces are removed
//! on drop, also when a test fails.

use std::future::Future;
use std::os::fd::AsFd as _;
use std::process::Command;
use std::time::Duration;

use ipamd::hostnet::iptables::Mode;
use ipamd::hostnet::{EniHost, HostConfig, HostNet, RandomizeSnat};
use planner::pool::EniId;
use serde_json::Value;

struct Ns(String);

impl Ns {
    fn new(tag: &str) -> Ns {
        let name = format!("enp-host-{tag}-{}", std::process::id());
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        run("ip", &["netns", "add", &name]);
        run("ip", &["-n", &name, "link", "set", "lo", "up"]);
        Ns(name)
    }

    fn ip(&self, args: &[&str]) -> String {
        let mut full = vec!["-n", &self.0];
        full.extend_from_slice(args);
        run("ip", &full)
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut full = vec!["-j"];
        full.extend_from_slice(args);
        serde_json::from_str(&self.ip(&full)).unwrap_or(Value::Array(Vec::new()))
    }

    fn exec(&self, cmd: &[&str]) -> String {
        let mut full = vec!["netns", "exec", &self.0];
        full.extend_from_slice(cmd);
        run("ip", &full)
    }

    /// A link standing for an ENI: its MAC, down, MTU 1500 (a veth whose peer, up, stands
    /// for the VPC: this kernel has no dummy links).
    fn eni_link(&self, name: &str, mac: &str) {
        let peer = format!("v{name}");
        self.ip(&[
            "link", "add", name, "address", mac, "type", "veth", "peer", "name", &peer,
        ]);
        self.ip(&["link", "set", &peer, "up"]);
    }

    /// Rules, every table's routes and the nat and mangle tables: what a restart must not
    /// change.
    fn state(&self) -> (String, String, String, String) {
        (
            self.ip(&["-4", "rule", "show"]),
            self.ip(&["-4", "route", "show", "table", "all"]),
            self.exec(&["iptables", "-w", "-t", "nat", "-S"]),
            self.exec(&["iptables", "-w", "-t", "mangle", "-S"]),
        )
    }

    /// Runs `f` on a thread inside the namespace, on a runtime of its own.
    fn run<F, T>(&self, f: impl FnOnce() -> F + Send + 'static) -> T
    where
        F: Future<Output = T>,
        T: Send + 'static,
    {
        let path = format!("/var/run/netns/{}", self.0);
        std::thread::spawn(move || {
            let ns = std::fs::File::open(&path).unwrap();
            nix::sched::setns(ns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(f())
        })
        .join()
        .unwrap()
    }
}

impl Drop for Ns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).output();
    }
}

fn run(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd).args(args).output().expect(cmd);
    assert!(
        out.status.success(),
        "{cmd} {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn config() -> HostConfig {
    HostConfig {
        eni_mtu: 9001,
        veth_prefix: "eni".into(),
        external_snat: false,
        exclude_snat_cidrs: Vec::new(),
        randomize_snat: RandomizeSnat::Prng,
        node_port_support: true,
        connmark: 0x80,
        iptables_mode: Mode::Auto,
        local_rule_after_vlans: false,
    }
}

const PRIMARY_MAC: &str = "02:00:00:00:00:10";
const SECONDARY_MAC: &str = "02:00:00:00:00:11";

fn primary() -> EniHost {
    EniHost {
        id: EniId("eni-primary".into()),
        mac: PRIMARY_MAC.into(),
        device: 0,
        primary_ip: "10.0.0.10".parse().unwrap(),
        subnet: "10.0.0.0/20".parse().unwrap(),
    }
}

fn secondary() -> EniHost {
    EniHost {
        id: EniId("eni-second".into()),
        mac: SECONDARY_MAC.into(),
        device: 1,
        primary_ip: "10.0.16.9".parse().unwrap(),
        subnet: "10.0.16.0/20".parse().unwrap(),
    }
}

/// The node as it boots: the primary ENI configured (by DHCP), a secondary one bare.
fn node(tag: &str) -> Ns {
    let ns = Ns::new(tag);
    ns.eni_link("eth0", PRIMARY_MAC);
    ns.ip(&["addr", "add", "10.0.0.10/20", "dev", "eth0"]);
    ns.ip(&["link", "set", "eth0", "up"]);
    ns.ip(&["route", "add", "default", "via", "10.0.0.1", "dev", "eth0"]);
    ns.eni_link("eth1", SECONDARY_MAC);
    ns
}

#[test]
fn a_secondary_eni_gets_its_link_table_and_rule_and_release_removes_them() {
    let ns = node("eni");
    // Another ENI's rule left for table 2 by an earlier life of the node.
    ns.ip(&[
        "rule",
        "add",
        "from",
        "10.0.99.9",
        "lookup",
        "2",
        "priority",
        "32765",
    ]);
    let before = ns.state();
    let name = ns.0.clone();

    let (set_up, again, released) = ns.run(move || async move {
        let ns = Ns(name);
        let host = HostNet::connect(config()).unwrap();
        host.setup_eni(&secondary(), Duration::from_secs(1))
            .await
            .unwrap();
        let set_up = ns.state();
        host.setup_eni(&secondary(), Duration::from_secs(1))
            .await
            .unwrap();
        let again = ns.state();
        host.release_eni(&secondary().id).await.unwrap();
        let released = ns.state();
        std::mem::forget(ns); // the test's own Ns removes the namespace
        (set_up, again, released)
    });

    let rules = &set_up.0;
    assert!(rules.contains("32765:\tfrom 10.0.16.9 lookup 2"), "{rules}");
    assert!(
        !rules.contains("10.0.99.9"),
        "the stale rule for table 2 goes:\n{rules}"
    );
    let routes = &set_up.1;
    assert!(
        routes.contains("default via 10.0.16.1 dev eth1 table 2"),
        "{routes}"
    );
    assert!(
        routes.contains("10.0.16.0/20 dev eth1 table 2 proto static scope link"),
        "{routes}"
    );
    assert!(
        !routes
            .lines()
            .any(|l| l.starts_with("10.0.16.0/20") && !l.contains("table")),
        "no main-table route to the ENI's subnet (it is reached through eth0):\n{routes}"
    );
    let link = &ns.json(&["link", "show", "eth1"])[0];
    assert_eq!(link["mtu"], 9001, "{link}");
    assert!(
        link["flags"].as_array().unwrap().iter().any(|f| f == "UP"),
        "{link}"
    );
    let addr = ns.json(&["-4", "addr", "show", "eth1"]);
    let info = &addr[0]["addr_info"][0];
    assert_eq!(
        (info["local"].as_str(), info["prefixlen"].as_u64()),
        (Some("10.0.16.9"), Some(20))
    );

    assert_eq!(set_up, again, "a second setup changes nothing");
    assert!(!released.0.contains("32765"), "{}", released.0);
    assert!(!released.1.contains("table 2"), "{}", released.1);
    assert_ne!(before, released, "the stale rule stays gone");
}

#[test]
fn a_link_that_appears_while_waiting_is_found_from_the_kernels_notification() {
    let ns = Ns::new("hotplug");
    let name = ns.0.clone();
    let (found, missing) = ns.run(move || async move {
        let host = HostNet::connect(config()).unwrap();
        // The link is made by a child process while the wait is under way (EC2's hotplug).
        let hotplug = async {
            // (The child starts in this thread's namespace, so the peer is made here too.)
            let peer = format!("hp{}", std::process::id());
            let status = tokio::process::Command::new("ip")
                .args([
                    "link",
                    "add",
                    "eth1",
                    "netns",
                    &name,
                    "address",
                    SECONDARY_MAC,
                ])
                .args(["type", "veth", "peer", "name", &peer])
                .status()
                .await
                .unwrap();
            assert!(status.success());
        };
        let (found, ()) = tokio::join!(
            host.link_by_mac(SECONDARY_MAC, Duration::from_secs(30)),
            hotplug
        );
        let missing = host
            .link_by_mac("02:00:00:00:00:99", Duration::from_millis(200))
            .await;
        (
            found.map(|l| l.header.index),
            missing.map(|l| l.header.index),
        )
    });
    let index = found.unwrap();
    let link = &ns.json(&["link", "show", "eth1"])[0];
    assert_eq!(link["ifindex"].as_u64(), Some(u64::from(index)), "{link}");
    let err = missing.unwrap_err();
    assert!(err.to_string().contains("02:00:00:00:00:99"), "{err}");
}

#[test]
fn a_missing_link_is_an_error_naming_the_mac_with_exit_code_7() {
    let ns = Ns::new("nolink");
    let err = ns.run(|| async {
        let host = HostNet::connect(config()).unwrap();
        host.setup_eni(&secondary(), Duration::ZERO)
            .await
            .unwrap_err()
    });
    assert!(err.to_string().contains(SECONDARY_MAC), "{err}");
    assert_eq!(err.exit(), ipamd::Exit::HostNetwork);
    assert_eq!(ipamd::Exit::HostNetwork as i32, 7);
}

#[test]
fn the_primary_eni_gets_snat_and_connmark_once_and_they_follow_the_settings() {
    let ns = node("snat");
    let vpc: Vec<ipnetwork::Ipv4Network> = vec!["10.0.0.0/16".parse().unwrap()];
    let name = ns.0.clone();
    let states = ns.run(move || async move {
        let ns = Ns(name);
        let mut states = Vec::new();
        let mut excluded = config();
        excluded.exclude_snat_cidrs = vec!["192.168.0.0/16".parse().unwrap()];
        let external = HostConfig {
            external_snat: true,
            ..config()
        };
        let neither = HostConfig {
            external_snat: true,
            node_port_support: false,
            ..config()
        };
        for cfg in [config(), config(), excluded, external, neither] {
            let host = HostNet::connect(cfg).unwrap();
            host.setup_primary(&primary(), &vpc).await.unwrap();
            states.push(ns.state());
        }
        std::mem::forget(ns);
        states
    });
    let rp = ns.exec(&["cat", "/proc/sys/net/ipv4/conf/eth0/rp_filter"]);
    assert_eq!(rp.trim(), "2");

    let (rules, _, nat, mangle) = &states[0];
    assert!(
        rules.contains("1024:\tfrom all fwmark 0x80/0x80 lookup main"),
        "{rules}"
    );
    for want in [
        "-A POSTROUTING -m comment --comment \"AWS SNAT CHAIN\" -j AWS-SNAT-CHAIN-0",
        "-A AWS-SNAT-CHAIN-0 -d 10.0.0.0/16 -m comment --comment \"AWS SNAT CHAIN\" -j RETURN",
        "--dst-type LOCAL -j SNAT --to-source 10.0.0.10 --random-fully",
        "-A PREROUTING -i eni+ -m comment --comment \"AWS, outbound connections\" -j AWS-CONNMARK-CHAIN-0",
        "-j CONNMARK --set-xmark 0x80/0x80",
    ] {
        assert!(nat.contains(want), "nat lacks {want}:\n{nat}");
    }
    assert!(mangle.contains("-A PREROUTING -i eth0"), "{mangle}");
    assert_eq!(
        states[0], states[1],
        "a restart with the same settings changes nothing"
    );

    let nat = &states[2].2;
    let exclusion = nat
        .find("-d 192.168.0.0/16")
        .expect("the exclusion returns");
    let snat = nat.find("-j SNAT").unwrap();
    assert!(
        exclusion < snat,
        "the exclusion comes before the SNAT rule:\n{nat}"
    );
    assert_eq!(nat.matches("-j SNAT").count(), 1, "{nat}");

    let (rules, _, nat, mangle) = &states[3];
    assert!(
        !nat.contains("AWS-SNAT-CHAIN-0") && !nat.contains("AWS-CONNMARK-CHAIN-0"),
        "{nat}"
    );
    assert!(
        mangle.contains("AWS, primary ENI"),
        "NodePort rules stay: {mangle}"
    );
    assert!(rules.contains("fwmark 0x80/0x80"), "{rules}");

    let (rules, _, _, mangle) = &states[4];
    assert!(!mangle.contains("AWS"), "{mangle}");
    assert!(!rules.contains("fwmark"), "{rules}");
}

#[test]
fn strict_security_groups_for_pods_move_the_local_rule_after_the_vlan_rules_once() {
    let ns = node("lrule");
    let vpc: Vec<ipnetwork::Ipv4Network> = vec!["10.0.0.0/16".parse().unwrap()];
    let name = ns.0.clone();
    let states = ns.run(move || async move {
        let ns = Ns(name);
        let mut states = vec![ns.state().0];
        let strict = HostConfig {
            local_rule_after_vlans: true,
            ..config()
        };
        for cfg in [config(), strict.clone(), strict] {
            let host = HostNet::connect(cfg).unwrap();
            host.setup_primary(&primary(), &vpc).await.unwrap();
            states.push(ns.state().0);
        }
        std::mem::forget(ns);
        states
    });
    let local_at = |rules: &str| -> Vec<String> {
        rules
            .lines()
            .filter(|l| l.ends_with("lookup local"))
            .map(|l| l.split(':').next().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        local_at(&states[0]),
        ["0"],
        "as the kernel boots: {}",
        states[0]
    );
    assert_eq!(
        local_at(&states[1]),
        ["0"],
        "standard or no pod ENI: left alone"
    );
    assert_eq!(local_at(&states[2]), ["20"], "strict: {}", states[2]);
    assert_eq!(states[2], states[3], "a restart changes nothing");
}

#[test]
fn rp_filter_is_set_through_netlink_where_proc_sys_is_read_only() {
    use nix::mount::{MsFlags, mount};
    let ns = node("rofs");
    let path = "/proc/sys/net/ipv4/conf/eth0/rp_filter";
    ns.exec(&["sh", "-c", &format!("echo 0 > {path}")]);
    let vpc: Vec<ipnetwork::Ipv4Network> = vec!["10.0.0.0/16".parse().unwrap()];
    let name = ns.0.clone();
    let (write, setup) = ns.run(move || async move {
        let ns = Ns(name);
        // What a container runtime gives an unprivileged container: /proc/sys read-only (in a
        // mount namespace of this thread's own, so nothing else sees it).
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS).unwrap();
        let none = None::<&str>;
        mount(none, "/", none, MsFlags::MS_REC | MsFlags::MS_PRIVATE, none).unwrap();
        mount(Some("/proc/sys"), "/proc/sys", none, MsFlags::MS_BIND, none).unwrap();
        let ro = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
        mount(none, "/proc/sys", none, ro, none).unwrap();
        let write = std::fs::write(path, "2").map_err(|e| e.raw_os_error());
        let host = HostNet::connect(config()).unwrap();
        let setup = host.setup_primary(&primary(), &vpc).await;
        std::mem::forget(ns);
        (write, setup.map_err(|e| e.to_string()))
    });
    assert_eq!(
        write,
        Err(Some(nix::errno::Errno::EROFS as i32)),
        "/proc/sys was read-only"
    );
    setup.expect("the primary ENI is set up without writing /proc/sys");
    assert_eq!(ns.exec(&["cat", path]).trim(), "2");
}

#[test]
fn the_snat_chains_go_to_the_iptables_backend_the_node_already_uses() {
    let vpc: Vec<ipnetwork::Ipv4Network> = vec!["10.0.0.0/16".parse().unwrap()];
    // A node whose kube-proxy writes the legacy tables (Amazon Linux 2): three rules there.
    let legacy_node = node("legacy");
    legacy_node.exec(&["iptables-legacy", "-w", "-t", "nat", "-N", "KUBE-SERVICES"]);
    for chain in ["PREROUTING", "OUTPUT", "POSTROUTING"] {
        legacy_node.exec(&[
            "iptables-legacy",
            "-w",
            "-t",
            "nat",
            "-A",
            chain,
            "-j",
            "KUBE-SERVICES",
        ]);
    }
    // A node with nothing yet, and one forced to legacy although its rules are in neither.
    let fresh_node = node("fresh");
    let forced_node = node("forced");
    for (ns, mode) in [
        (&legacy_node, Mode::Auto),
        (&fresh_node, Mode::Auto),
        (&forced_node, Mode::Legacy),
    ] {
        let name = ns.0.clone();
        let vpc = vpc.clone();
        ns.run(move || async move {
            let ns = Ns(name);
            let cfg = HostConfig {
                iptables_mode: mode,
                ..config()
            };
            HostNet::connect(cfg)
                .unwrap()
                .setup_primary(&primary(), &vpc)
                .await
                .unwrap();
            std::mem::forget(ns);
        });
    }
    let has_snat = |ns: &Ns, cmd: &str| {
        let out = Command::new("ip")
            .args(["netns", "exec", &ns.0, cmd, "-w", "-t", "nat", "-S"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).contains("-N AWS-SNAT-CHAIN-0")
    };
    assert!(
        has_snat(&legacy_node, "iptables-legacy"),
        "legacy node: legacy tables"
    );
    assert!(
        !has_snat(&legacy_node, "iptables-nft"),
        "and nothing in nf_tables"
    );
    assert!(
        has_snat(&fresh_node, "iptables-nft"),
        "fresh node: nf_tables"
    );
    assert!(!has_snat(&fresh_node, "iptables-legacy"));
    assert!(
        has_snat(&forced_node, "iptables-legacy"),
        "ENIPLAN_IPTABLES_MODE=legacy"
    );
    assert!(!has_snat(&forced_node, "iptables-nft"));
}
