//! The real `ipamd` binary against the LocalStack harness (started by the tests, or reused):
//! warm-up, churn through the socket, crash safety under `kill -9`, injected EC2 faults. After
//! every scenario EC2 (as the harness sees it) and the daemon's snapshot must agree.
//!
//! The tests share the harness's fault rules, so they run one at a time (a global lock).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ipamd::client::{add_request, connect, del_request};
use planner::rng::Rng;
use tokio::io::AsyncWriteExt as _;
use tokio::sync::Mutex;

mod common;

use common::{node, total};

static SERIAL: Mutex<()> = Mutex::const_new(());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warm_up_secondary_ips_m5_large() {
    let _serial = SERIAL.lock().await;
    let n = node("sip-m5", "m5.large", "10.0.16.0/20").await;
    let d = n.start(&[]).await;
    let view = n.assert_agrees().await;
    // WARM_ENI_TARGET=1: one ENI's worth, 9 addresses on the primary.
    assert_eq!(total(&view), 9);
    assert_eq!(view["snapshot"]["enis"].as_array().unwrap().len(), 1);
    // The node's capacity, for node bootstrap: 3 ENIs × 9 pod addresses, + 2 host-network pods.
    let text = std::fs::read_to_string(n.dir.join(ipamd::allocatable::FILE)).unwrap();
    let capacity: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(capacity["max_pods"]["max_pods"], 29, "{capacity}");
    assert_eq!(capacity["max_pods"]["pod_addresses"], 27);
    assert_eq!(capacity["instance_id"], n.instance.as_str());
    d.stop();
}

/// The capacity file a node's bootstrap reads, until `ok` holds for it (a minute at most). It
/// waits on the kernel's word that a file in the state directory was replaced (inotify; the
/// file is written by a rename), not on a timer; the watch is set before the first read, so
/// no change is missed.
fn until_capacity(n: &common::Node, what: &str, ok: impl Fn(&serde_json::Value) -> bool) {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
    use std::os::fd::AsFd as _;
    let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC).unwrap();
    inotify
        .add_watch(&n.dir, AddWatchFlags::IN_MOVED_TO)
        .unwrap();
    let deadline = Instant::now() + Duration::from_mins(1);
    loop {
        let text = std::fs::read_to_string(n.dir.join(ipamd::allocatable::FILE)).unwrap();
        let capacity: serde_json::Value = serde_json::from_str(&text).unwrap();
        if ok(&capacity) {
            return;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "{what}: never; last {capacity}");
        let mut ready = [PollFd::new(inotify.as_fd(), PollFlags::POLLIN)];
        poll(
            &mut ready,
            PollTimeout::try_from(left).unwrap_or(PollTimeout::MAX),
        )
        .unwrap();
        let _ = inotify.read_events(); // drained; which file it was does not matter
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unmanaged_eni_attached_later_lowers_the_published_capacity() {
    use cloud::Ec2 as _;
    let _serial = SERIAL.lock().await;
    let n = node("unmanaged-late", "m5.large", "10.0.208.0/20").await;
    let d = n.start(&[]).await;
    n.assert_agrees().await;
    tokio::task::block_in_place(|| {
        until_capacity(&n, "29 at start", |c| c["max_pods"]["max_pods"] == 29);
    });
    // Someone else's ENI (tagged `no_manage`) attached at device 2, beside ipamd's pool.
    let eni = n
        .ec2
        .create_network_interface(&cloud::model::CreateEni {
            subnet_id: n.subnet.clone(),
            description: "not eniplan's".into(),
            security_groups: Vec::new(),
            secondary_ips: 0,
            prefixes: 0,
            interface_type: None,
            tags: BTreeMap::from([("node.k8s.amazonaws.com/no_manage".into(), "true".into())]),
        })
        .await
        .unwrap();
    let attachment = n
        .ec2
        .attach_network_interface(&eni.id, &n.instance, 2, 0)
        .await
        .unwrap();
    // One ENI fewer for pods: 2 × 9 + 2.
    tokio::task::block_in_place(|| {
        until_capacity(&n, "the unmanaged ENI subtracted", |c| {
            c["unmanaged_enis"] == 1 && c["max_pods"]["max_pods"] == 20
        });
    });
    n.assert_agrees().await;
    n.ec2
        .detach_network_interface(&attachment, true)
        .await
        .unwrap();
    tokio::task::block_in_place(|| {
        until_capacity(&n, "the ENI's slot given back", |c| {
            c["unmanaged_enis"] == 0 && c["max_pods"]["max_pods"] == 29
        });
    });
    n.ec2.delete_network_interface(&eni.id).await.unwrap();
    d.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warm_up_ip_targets_m5_large() {
    let _serial = SERIAL.lock().await;
    let n = node("targets-m5", "m5.large", "10.0.32.0/20").await;
    let d = n
        .start(&[("WARM_IP_TARGET", "5"), ("MINIMUM_IP_TARGET", "10")])
        .await;
    let view = n.assert_agrees().await;
    let per_eni: Vec<u64> = view["snapshot"]["enis"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["addresses"].as_u64().unwrap())
        .collect();
    assert_eq!(
        per_eni,
        [9, 1],
        "MINIMUM_IP_TARGET=10 on m5.large: the primary full, then one more"
    );
    d.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warm_up_secondary_ips_t3_small() {
    let _serial = SERIAL.lock().await;
    let n = node("sip-t3", "t3.small", "10.0.48.0/20").await;
    let d = n.start(&[]).await;
    let view = n.assert_agrees().await;
    assert_eq!(total(&view), 3, "S-41: t3.small holds 3 addresses at rest");
    d.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warm_up_prefix_delegation_t3_small_and_m5_large() {
    let _serial = SERIAL.lock().await;
    for (name, ty, cidr) in [
        ("pd-t3", "t3.small", "10.0.64.0/20"),
        ("pd-m5", "m5.large", "10.0.80.0/20"),
    ] {
        let n = node(name, ty, cidr).await;
        // A prefix-delegation node's kubelet runs with the recommended max pods (110), not the
        // secondary-IP value that would stop the pool at one prefix on t3.small (S-12).
        let d = n
            .start(&[
                ("ENABLE_PREFIX_DELEGATION", "true"),
                ("WARM_PREFIX_TARGET", "1"),
                ("ENIPLAN_MAX_PODS", "110"),
            ])
            .await;
        let view = n.assert_agrees().await;
        assert_eq!(
            (view["snapshot"]["prefixes"].as_u64(), total(&view)),
            (Some(1), 16),
            "{ty}"
        );
        // A pod gets an address from the prefix; the pool then adds a second prefix.
        let mut client = connect(&n.socket()).await.unwrap();
        let r = client
            .add_network(add_request("c0", "ns", "p"))
            .await
            .unwrap()
            .into_inner();
        let ip: Ipv4Addr = r.ip_allocation_metadata[0].ipv4_addr.parse().unwrap();
        let view = n.assert_agrees().await;
        assert_eq!(view["snapshot"]["prefixes"].as_u64(), Some(2), "{ty}");
        let first: ipnetwork::Ipv4Network = view["addresses"][0]["prefix"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(
            first.contains(ip),
            "{ty}: the pod's address comes from the first prefix"
        );
        d.stop();
    }
}

/// Live pods as the clients know them, checked for double assignment on every acknowledged ADD.
#[derive(Default)]
struct Ledger {
    /// address → (pod, being deleted)
    by_ip: BTreeMap<String, (String, bool)>,
    /// pod → address
    pods: BTreeMap<String, String>,
}

impl Ledger {
    fn added(&mut self, pod: &str, ip: &str) {
        if let Some((holder, deleting)) = self.by_ip.get(ip) {
            assert!(
                holder == pod || *deleting,
                "{ip} given to {pod} while {holder} still holds it"
            );
        }
        if let Some(old) = self.pods.get(pod) {
            assert_eq!(old, ip, "{pod} got a second address");
        }
        self.by_ip.insert(ip.to_owned(), (pod.to_owned(), false));
        self.pods.insert(pod.to_owned(), ip.to_owned());
    }
    fn deleting(&mut self, pod: &str) {
        if let Some(ip) = self.pods.get(pod)
            && let Some(e) = self.by_ip.get_mut(ip)
        {
            e.1 = true;
        }
    }
    fn deleted(&mut self, pod: &str, ip: &str) {
        assert_eq!(
            self.pods.remove(pod).as_deref(),
            Some(ip),
            "DEL of {pod} released another address"
        );
        if self.by_ip.get(ip).is_some_and(|(h, _)| h == pod) {
            self.by_ip.remove(ip);
        }
    }
}

/// `ops` random ADD/DEL calls from one client, sharing the ledger with the others.
async fn churn(
    socket: PathBuf,
    ledger: Arc<std::sync::Mutex<Ledger>>,
    worker: u64,
    ops: usize,
    max_live: usize,
) {
    let mut client = connect(&socket).await.unwrap();
    let mut rng = Rng::new(0x9e37_79b9_7f4a_7c15 ^ (worker + 1));
    let mut mine: Vec<String> = Vec::new();
    let mut next = 0;
    for _ in 0..ops {
        let add = mine.is_empty() || (mine.len() < max_live && rng.next_u64().is_multiple_of(2));
        if add {
            let pod = format!("w{worker}-{next}");
            next += 1;
            match client.add_network(add_request(&pod, "churn", &pod)).await {
                Ok(r) => {
                    let ip = r.into_inner().ip_allocation_metadata[0].ipv4_addr.clone();
                    ledger.lock().unwrap().added(&pod, &ip);
                    mine.push(pod);
                }
                Err(status) => {
                    assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
                }
            }
        } else {
            let idx = usize::try_from(rng.next_u64() % mine.len() as u64).unwrap();
            let pod = mine.swap_remove(idx);
            ledger.lock().unwrap().deleting(&pod);
            let r = client
                .del_network(del_request(&pod, "churn", &pod))
                .await
                .expect("every delete of a live pod releases")
                .into_inner();
            ledger
                .lock()
                .unwrap()
                .deleted(&pod, &r.ip_allocation_metadata[0].ipv4_addr);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn churn_of_2000_requests_never_double_assigns_and_ec2_matches_at_rest() {
    let _serial = SERIAL.lock().await;
    let n = node("churn", "m5.xlarge", "10.0.96.0/20").await;
    let d = n
        .start(&[("WARM_IP_TARGET", "5"), ("IP_COOLDOWN_PERIOD", "0")])
        .await;
    let ledger = Arc::new(std::sync::Mutex::new(Ledger::default()));
    let workers: Vec<_> = (0..4)
        .map(|w| tokio::spawn(churn(n.socket(), Arc::clone(&ledger), w, 500, 10)))
        .collect();
    for w in workers {
        w.await.unwrap();
    }
    let live = ledger.lock().unwrap().pods.len();
    let view = n.assert_agrees().await;
    assert_eq!(
        view["snapshot"]["pods"].as_u64(),
        Some(live as u64),
        "the daemon and the clients agree on the live pods"
    );
    // Drain: every delete releases, and EC2 still matches.
    let pods: Vec<String> = ledger.lock().unwrap().pods.keys().cloned().collect();
    let mut client = connect(&n.socket()).await.unwrap();
    for pod in pods {
        client
            .del_network(del_request(&pod, "churn", &pod))
            .await
            .unwrap();
    }
    let view = n.assert_agrees().await;
    assert_eq!(view["snapshot"]["assigned"].as_u64(), Some(0));
    d.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[expect(clippy::too_many_lines, reason = "one scenario, read top to bottom")]
async fn kill_9_twenty_times_during_churn_loses_nothing_and_leaks_nothing() {
    let _serial = SERIAL.lock().await;
    let n = node("crash", "m5.large", "10.0.112.0/20").await;
    let env = [
        ("WARM_IP_TARGET", "3"),
        ("IP_COOLDOWN_PERIOD", "0"),
        ("ENIPLAN_LEAK_SWEEP_INTERVAL_SECS", "1"),
        ("ENIPLAN_LEAK_MIN_AGE_SECS", "0"),
    ];
    let mut live: BTreeMap<String, String> = BTreeMap::new();
    let mut rng = Rng::new(42);
    let mut next = 0;
    for round in 0..20 {
        let d = n.start(&env).await;
        let mut client = connect(&n.socket()).await.unwrap();
        // Ownership survived the crash: every live pod gets its own address back.
        for (pod, ip) in &live {
            let r = client
                .add_network(add_request(pod, "crash", pod))
                .await
                .unwrap()
                .into_inner();
            assert_eq!(
                &r.ip_allocation_metadata[0].ipv4_addr, ip,
                "round {round}: {pod} lost its address"
            );
        }
        // Churn in the background; kill -9 at a random moment.
        let socket = n.socket();
        let ops: Vec<(bool, String)> = (0..40)
            .map(|_| {
                if live.len() < 12 && (live.is_empty() || rng.next_u64().is_multiple_of(2)) {
                    next += 1;
                    (true, format!("k{next}"))
                } else {
                    let keys: Vec<&String> = live.keys().collect();
                    (
                        false,
                        keys[usize::try_from(rng.next_u64() % keys.len() as u64).unwrap()].clone(),
                    )
                }
            })
            .collect();
        let task = tokio::spawn(async move {
            let mut client = connect(&socket).await.unwrap();
            let mut done: Vec<(bool, String, Option<String>)> = Vec::new();
            for (add, pod) in ops {
                let r = if add {
                    client
                        .add_network(add_request(&pod, "crash", &pod))
                        .await
                        .map(|r| r.into_inner().ip_allocation_metadata[0].ipv4_addr.clone())
                } else {
                    client
                        .del_network(del_request(&pod, "crash", &pod))
                        .await
                        .map(|r| r.into_inner().ip_allocation_metadata[0].ipv4_addr.clone())
                };
                if let Ok(ip) = r {
                    done.push((add, pod, Some(ip)));
                } else {
                    done.push((add, pod, None));
                    break; // the daemon died under us
                }
            }
            done
        });
        tokio::time::sleep(Duration::from_millis(rng.next_u64() % 400)).await;
        d.kill9();
        for (add, pod, ip) in task.await.unwrap() {
            match (add, ip) {
                (true, Some(ip)) => {
                    assert!(
                        !live.iter().any(|(p, i)| *i == ip && *p != pod),
                        "round {round}: {ip} given twice"
                    );
                    live.insert(pod, ip);
                }
                (false, Some(_)) => {
                    live.remove(&pod);
                }
                // Unanswered: the kubelet would retry. An ADD retried later gets its address
                // (or a new one); a DEL is retried now, after the restart below.
                (true, None) => {}
                (false, None) => {
                    let d = n.start(&env).await;
                    let mut c = connect(&n.socket()).await.unwrap();
                    let _ = c.del_network(del_request(&pod, "crash", &pod)).await;
                    live.remove(&pod);
                    d.kill9();
                }
            }
        }
    }
    // Clean up: every live pod deleted, the pool at rest, EC2 equal to the pool, no leaked ENI.
    let d = n.start(&env).await;
    let mut client = connect(&n.socket()).await.unwrap();
    for (pod, ip) in &live {
        let r = client
            .add_network(add_request(pod, "crash", pod))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(&r.ip_allocation_metadata[0].ipv4_addr, ip);
        client
            .del_network(del_request(pod, "crash", pod))
            .await
            .unwrap();
    }
    // Pods whose ADD was cut short may still hold an address: the checkpoint lists them.
    for entry in ipamd::checkpoint::load(&n.dir.join("ipam.json")).unwrap() {
        let _ = client
            .del_network(del_request(
                &entry.container_id,
                "crash",
                &entry.container_id,
            ))
            .await;
    }
    let view = n.assert_agrees().await;
    assert_eq!(view["snapshot"]["assigned"].as_u64(), Some(0));
    let deadline = Instant::now() + Duration::from_secs(20);
    while n.leaked_enis().await > 0 {
        assert!(Instant::now() < deadline, "leaked ENIs were not swept");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    d.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_and_5xx_are_retried_and_nothing_leaks() {
    let _serial = SERIAL.lock().await;
    let n = node("faults", "m5.large", "10.0.128.0/20").await;
    harness_client::fault("*", "RequestLimitExceeded", 0.3, None);
    harness_client::fault("AssignPrivateIpAddresses", "InternalError", 0.2, None);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let metrics_addr = format!("127.0.0.1:{port}");
    let d = n
        .start(&[
            ("WARM_IP_TARGET", "4"),
            ("IP_COOLDOWN_PERIOD", "0"),
            ("DISABLE_METRICS", "false"),
            ("ENIPLAN_METRICS_BIND_ADDRESS", metrics_addr.as_str()),
        ])
        .await;
    let mut client = connect(&n.socket()).await.unwrap();
    for i in 0..15 {
        let pod = format!("f{i}");
        // Under faults a pod may have to wait for the pool: retry as the kubelet does.
        let mut tries = 0;
        loop {
            match client.add_network(add_request(&pod, "faults", &pod)).await {
                Ok(_) => break,
                Err(s) if s.code() == tonic::Code::ResourceExhausted && tries < 100 => {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(s) => panic!("{pod}: {s:?}"),
            }
        }
    }
    harness_client::clear_faults();
    let view = n.assert_agrees().await;
    assert_eq!(view["snapshot"]["assigned"].as_u64(), Some(15));
    assert!(
        total(&view) >= 19,
        "the pool recovered to its target: {}",
        total(&view)
    );
    assert_eq!(n.leaked_enis().await, 0);
    // Every declared metric is exported (the faults made the error series appear). The subnet
    // gauge is refreshed on the reconcile interval, and under faults its DescribeSubnets may
    // have failed every time so far: wait, with a deadline, for a pass without faults.
    let deadline = Instant::now() + Duration::from_secs(30);
    let text = loop {
        let (status, text) =
            harness_client::http("GET", &format!("http://{metrics_addr}/metrics"), "");
        assert_eq!(status, 200);
        let missing: Vec<_> = ipamd::metrics::NAMES
            .iter()
            .filter(|name| !text.lines().any(|l| l.starts_with(*name)))
            .collect();
        if missing.is_empty() {
            break text;
        }
        assert!(
            Instant::now() < deadline,
            "{missing:?} not exported within 30 s:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert!(
        text.contains(r#"eniplan_ec2_calls_total{api="AssignPrivateIpAddresses",outcome="ok"}"#)
    );
    d.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insufficient_cidr_blocks_backs_off_then_recovers() {
    let _serial = SERIAL.lock().await;
    let n = node("cidr", "m5.large", "10.0.144.0/20").await;
    let d = n
        .start(&[
            ("ENABLE_PREFIX_DELEGATION", "true"),
            ("WARM_PREFIX_TARGET", "1"),
        ])
        .await;
    n.assert_agrees().await;
    harness_client::fault(
        "AssignPrivateIpAddresses",
        "InsufficientCidrBlocks",
        1.0,
        None,
    );
    let mut client = connect(&n.socket()).await.unwrap();
    // Fill the first prefix: the pool wants a second one and EC2 refuses.
    for i in 0..16 {
        client
            .add_network(add_request(&format!("c{i}"), "ns", "p"))
            .await
            .unwrap();
    }
    // Wait (by polling, not by time) until the engine has met the refusal and backs off.
    let deadline = Instant::now() + Duration::from_secs(20);
    while n.introspect("/v1/pool").await["snapshot"]["subnet_full_until"].is_null() {
        assert!(
            Instant::now() < deadline,
            "the refusal never reached the pool"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Every further ADD finds the back-off, not a new EC2 call.
    for _ in 0..10 {
        let err = client
            .add_network(add_request("c16", "ns", "p"))
            .await
            .unwrap_err();
        assert!(
            err.message().contains("InsufficientCidrBlocks"),
            "{}",
            err.message()
        );
    }
    let decisions = n.introspect("/v1/decisions").await;
    let failed = decisions["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["outcome"] == "InsufficientCidrBlocks")
        .count();
    assert!(
        (1..=2).contains(&failed),
        "a refusal and at most one retry, then a back-off, not a storm: {decisions}"
    );
    assert!(
        decisions["last_no_address"]["message"]
            .as_str()
            .unwrap()
            .contains("subnet has no room")
    );
    harness_client::clear_faults();
    d.stop();
    // A restart clears the back-off; the pool recovers and matches EC2.
    let d = n
        .start(&[
            ("ENABLE_PREFIX_DELEGATION", "true"),
            ("WARM_PREFIX_TARGET", "1"),
        ])
        .await;
    let mut client = connect(&n.socket()).await.unwrap();
    client
        .add_network(add_request("c16", "ns", "p"))
        .await
        .unwrap();
    let view = n.assert_agrees().await;
    assert_eq!(view["snapshot"]["assigned"].as_u64(), Some(17));
    d.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_on_the_socket_change_nothing() {
    let _serial = SERIAL.lock().await;
    let n = node("bad", "t3.small", "10.0.160.0/20").await;
    let d = n.start(&[]).await;
    let before = n.assert_agrees().await;
    let mut client = connect(&n.socket()).await.unwrap();
    let mut empty = add_request("x", "ns", "p");
    empty.container_id.clear();
    assert_eq!(
        client.add_network(empty).await.unwrap_err().code(),
        tonic::Code::InvalidArgument
    );
    let mut old = add_request("x", "ns", "p");
    old.client_version = "v1".into();
    assert_eq!(
        client.add_network(old).await.unwrap_err().code(),
        tonic::Code::FailedPrecondition
    );
    assert_eq!(
        client
            .del_network(del_request("nobody", "ns", "p"))
            .await
            .unwrap_err()
            .message(),
        "datastore: unknown pod"
    );
    {
        let mut raw = tokio::net::UnixStream::connect(n.socket()).await.unwrap();
        let _ = raw.write_all(&[0xff; 64]).await;
    }
    let after = n.assert_agrees().await;
    assert_eq!(before["snapshot"]["total"], after["snapshot"]["total"]);
    assert_eq!(after["snapshot"]["pods"].as_u64(), Some(0));
    assert!(
        ipamd::checkpoint::load(&n.dir.join("ipam.json"))
            .unwrap()
            .is_empty()
    );
    d.stop();
}

/// A type launched after the catalogue was built (the harness's `q9.large`: 4 ENIs of 12
/// addresses) starts with EC2's limits, keeps them for later starts, and without them and
/// without the permission to ask says exactly which permission is missing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_day_one_instance_type_gets_its_limits_from_ec2_once() {
    let _serial = SERIAL.lock().await;
    assert!(
        planner::catalogue::lookup("q9.large").is_err(),
        "q9.large must stay unknown"
    );
    let n = node("day-one", "q9.large", "10.0.16.0/20").await;
    let d = n.start(&[("MINIMUM_IP_TARGET", "12")]).await;
    assert!(d.log_text().contains("limits from EC2"), "{}", d.log_text());
    tokio::task::block_in_place(|| {
        until_capacity(&n, "EC2's limits published", |c| {
            c["limits_from"] == "ec2" && c["max_pods"]["max_pods"] == 4 * (12 - 1) + 2
        });
    });
    let view = n.assert_agrees().await;
    let per_eni: Vec<u64> = view["snapshot"]["enis"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["addresses"].as_u64().unwrap())
        .collect();
    assert_eq!(
        per_eni,
        [11, 1],
        "12 addresses an ENI: the primary full, then one more"
    );
    d.stop();
    let cache = ipamd::node::limits_cache(&n.dir, "q9.large");
    assert!(cache.exists(), "EC2's answer was not kept");

    // Later starts read the kept answer: the permission can go.
    harness_client::fault("DescribeInstanceTypes", "UnauthorizedOperation", 1.0, None);
    let d = n.start(&[("MINIMUM_IP_TARGET", "12")]).await;
    tokio::task::block_in_place(|| {
        until_capacity(&n, "the kept limits", |c| c["limits_from"] == "cache");
    });
    n.assert_agrees().await;
    d.stop();

    // Neither kept nor allowed: start-up stops, naming the type and the permission.
    std::fs::remove_file(&cache).unwrap();
    let (code, log) = n.run_to_exit(&[]);
    harness_client::clear_faults();
    assert_eq!(code, Some(4), "{log}");
    assert!(
        log.contains("q9.large") && log.contains("ec2:DescribeInstanceTypes"),
        "{log}"
    );
}
