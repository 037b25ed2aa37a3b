//! Faults real nodes meet, on the real binary against the EC2 harness: an IAM permission
//! missing for one action, a state directory that is full or read-only, SIGTERM while the
//! pool is still being pre-scaled.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use cloud::Ec2 as _;
use common::node;
use ipamd::client::{add_request, connect, del_request};
use tokio::sync::Mutex;

/// The harness's fault rules are global: one test at a time.
static SERIAL: Mutex<()> = Mutex::const_new(());

/// This test's turn, on a harness with no fault left by an earlier test that failed.
async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    let turn = SERIAL.lock().await;
    harness_client::clear_faults();
    turn
}

/// Waits, with a deadline, until `ok` holds for the daemon's log.
fn until_logged(log: &Path, what: &str, ok: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_mins(1);
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if ok(&text) {
            return text;
        }
        assert!(Instant::now() < deadline, "{what}: never logged:\n{text}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

type Client = ipamd::rpc::cni_backend_client::CniBackendClient<tonic::transport::Channel>;

/// ADD as the kubelet does it: retried while ipamd answers `RESOURCE_EXHAUSTED` (the pool is
/// waiting for EC2), failing after a minute.
async fn add_until_served(client: &mut Client, id: &str) -> ipamd::rpc::AddNetworkReply {
    let deadline = Instant::now() + Duration::from_mins(1);
    loop {
        match client.add_network(add_request(id, "default", id)).await {
            Ok(r) => {
                let r = r.into_inner();
                assert!(r.success, "{id}: {r:?}");
                return r;
            }
            Err(s) if s.code() == tonic::Code::ResourceExhausted => {
                assert!(Instant::now() < deadline, "{id} never served: {s}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(s) => panic!("{id}: {s}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_denied_action_is_named_and_pods_are_served_once_it_is_granted() {
    let _serial = serial().await;
    let n = node("denied", "m5.large", "10.0.16.0/20").await;
    // The role lacks ec2:AssignPrivateIpAddresses (the VPC CNI crash-looped on this, #3704).
    harness_client::fault(
        "AssignPrivateIpAddresses",
        "UnauthorizedOperation",
        1.0,
        None,
    );
    let d = n.start(&[("ENIPLAN_TICK_INTERVAL_MS", "100")]).await;
    let mut client = connect(&n.socket()).await.unwrap();
    let refused = client
        .add_network(add_request("c-denied", "default", "web-0"))
        .await
        .expect_err("no address can be had");
    assert_eq!(refused.code(), tonic::Code::ResourceExhausted, "{refused}");
    let decisions = n.introspect("/v1/decisions").await.to_string();
    assert!(
        decisions.contains("UnauthorizedOperation (ec2:AssignPrivateIpAddresses)"),
        "{decisions}"
    );
    let log = d.log_text();
    assert!(log.contains("ec2:AssignPrivateIpAddresses"), "{log}");
    // Granted: the next tick's call succeeds and the pod is served, no restart needed.
    harness_client::clear_faults();
    add_until_served(&mut client, "c-denied").await;
    n.assert_agrees().await;
    d.stop();
}

/// A tmpfs mounted for the test at `dir`, unmounted when dropped (even on a failed assert).
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(dir).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .unwrap();
        assert!(status.success(), "mount tmpfs on {}", dir.display());
        Tmpfs(dir.to_owned())
    }

    fn remount(&self, mode: &str) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,{mode}")])
            .arg(&self.0)
            .status()
            .unwrap();
        assert!(status.success(), "remount {mode}");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// The checkpoint's entries, by container id.
fn checkpointed(path: &Path) -> Vec<String> {
    let entries = ipamd::checkpoint::load(path).unwrap();
    let mut ids: Vec<String> = entries.into_iter().map(|e| e.container_id).collect();
    ids.sort();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_or_read_only_state_directory_refuses_adds_and_loses_nothing() {
    let _serial = serial().await;
    let n = node("full-disk", "m5.large", "10.0.32.0/20").await;
    let fs = Tmpfs::mount(&n.dir.join("ckpt"), "64k");
    let ckpt = fs.0.join("ipam.json");
    let d = n
        .start(&[("AWS_VPC_K8S_CNI_BACKING_STORE", ckpt.to_str().unwrap())])
        .await;
    let mut client = connect(&n.socket()).await.unwrap();
    for i in 0..3 {
        let id = format!("c-kept-{i}");
        client
            .add_network(add_request(&id, "default", &id))
            .await
            .unwrap();
    }
    let kept = checkpointed(&ckpt);
    assert_eq!(kept.len(), 3);

    // Full: fill the rest of the tmpfs.
    let filler = fs.0.join("filler");
    let _ = std::fs::write(&filler, vec![0u8; 128 * 1024]); // ENOSPC part-way: the disk is full
    let refused = client
        .add_network(add_request("c-full", "default", "c-full"))
        .await
        .expect_err("no ADD is acknowledged that the checkpoint does not hold");
    assert_eq!(refused.code(), tonic::Code::Internal, "{refused}");
    assert!(
        refused
            .message()
            .contains("checkpoint could not be written")
            && refused.message().contains("No space left on device"),
        "{refused}"
    );
    assert_eq!(
        checkpointed(&ckpt),
        kept,
        "the acknowledged entries are intact"
    );
    // The refused pod holds nothing: the pool gave its address back.
    let pool = n.introspect("/v1/pool").await;
    assert!(!pool.to_string().contains("c-full"), "{pool}");
    std::fs::remove_file(&filler).unwrap();

    // Read-only: the same.
    fs.remount("ro");
    let refused = client
        .add_network(add_request("c-ro", "default", "c-ro"))
        .await
        .expect_err("refused on a read-only state directory");
    assert!(
        refused.message().contains("Read-only file system"),
        "{refused}"
    );
    assert_eq!(checkpointed(&ckpt), kept);
    fs.remount("rw");

    // Space again: the refused pods are served (the kubelet retries), nothing was lost.
    for id in ["c-full", "c-ro"] {
        client
            .add_network(add_request(id, "default", id))
            .await
            .unwrap();
    }
    client
        .del_network(del_request("c-kept-0", "default", "c-kept-0"))
        .await
        .unwrap();
    assert_eq!(
        checkpointed(&ckpt),
        ["c-full", "c-kept-1", "c-kept-2", "c-ro"]
    );
    n.assert_agrees().await;
    d.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_pre_scaling_serves_at_once_and_exits_cleanly() {
    let _serial = serial().await;
    let n = node("prescale-term", "m5.large", "10.0.48.0/20").await;
    // Pre-scaling would take a minute: every address assignment answers 20 s late.
    harness_client::latency("AssignPrivateIpAddresses", 20_000);
    let (mut cmd, log) = n.command(None, &[("MINIMUM_IP_TARGET", "20")]);
    let mut child = cmd.spawn().unwrap();
    until_logged(&log, "pre-scaling", |t| t.contains("pre-scaling: waiting"));
    let pid = child.id().to_string();
    let signalled = Instant::now();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    let text = until_logged(&log, "ready after SIGTERM", |t| t.contains(" ready"));
    assert!(
        text.contains("pre-scaling cut short: terminating"),
        "{text}"
    );
    assert!(
        signalled.elapsed() < Duration::from_secs(15),
        "served {:?} after SIGTERM, while an EC2 call takes 20 s",
        signalled.elapsed()
    );
    // Terminating: the socket answers the plugin (a DEL of a pod it never saw).
    let mut client = connect(&n.socket()).await.unwrap();
    match client
        .del_network(del_request("c-gone", "default", "c-gone"))
        .await
    {
        Ok(_) => {}
        Err(s) => assert!(
            s.message().contains("unknown pod"),
            "DEL while terminating: {s}"
        ),
    }
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert!(status.success(), "exit {status}");
    harness_client::clear_faults();
    // A restart finds EC2 and its checkpoint consistent (the assignment in flight at the
    // signal either landed and is adopted, or did not happen).
    let d = n.start(&[]).await;
    n.assert_agrees().await;
    d.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_credentials_are_named_and_waited_out() {
    let _serial = serial().await;
    let n = node("expired", "m5.large", "10.0.64.0/20").await;
    let d = n
        .start(&[("WARM_IP_TARGET", "2"), ("ENIPLAN_TICK_INTERVAL_MS", "100")])
        .await;
    let mut client = connect(&n.socket()).await.unwrap();
    // The session token expires: the next 20 EC2 calls are refused as EC2 refuses them.
    harness_client::fault("*", "ExpiredToken", 1.0, Some(20));
    for i in 0..6 {
        add_until_served(&mut client, &format!("c-exp-{i}")).await;
    }
    let log = d.log_text();
    assert!(
        log.contains("ExpiredToken") && log.contains("refused ipamd's credentials"),
        "the log says what was refused: {log}"
    );
    assert!(
        !log.contains("lacks the IAM action"),
        "an expired token is not a missing permission"
    );
    harness_client::clear_faults();
    let view = n.assert_agrees().await;
    assert_eq!(view["snapshot"]["assigned"].as_u64(), Some(6));
    d.stop();
}

/// The address `/v1/pool` shows the pod of `container` holding, if any.
fn held_by(view: &serde_json::Value, container: &str) -> Option<String> {
    view["addresses"].as_array()?.iter().find_map(|a| {
        let holder = a["pod"]["container_id"].as_str()?;
        (holder == container).then(|| a["ip"].as_str().unwrap_or_default().to_owned())
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_while_ec2_lags_keeps_every_checkpointed_address() {
    let _serial = serial().await;
    let n = node("lagging", "m5.large", "10.0.80.0/20").await;
    // EC2 describes an assignment or an attachment only 8 s after it (eventual consistency).
    harness_client::consistency(r#"{"describe_lag_ms": 8000}"#);
    let d = n.start(&[("WARM_IP_TARGET", "2")]).await;
    let mut client = connect(&n.socket()).await.unwrap();
    let first = add_until_served(&mut client, "c-lag-0").await;
    let ip = first.ip_allocation_metadata[0].ipv4_addr.clone();
    // Crash and restart at once: EC2 does not describe c-lag-0's address yet.
    d.kill9();
    let d = n.start(&[("WARM_IP_TARGET", "2")]).await;
    let log = d.log_text();
    assert!(
        log.contains("waiting for it (EC2 is eventually consistent)"),
        "{log}"
    );
    let view = n.introspect("/v1/pool").await;
    assert_eq!(
        held_by(&view, "c-lag-0").as_deref(),
        Some(ip.as_str()),
        "c-lag-0 keeps its address: {view}"
    );
    // Nobody else gets it, while EC2 still lags and after.
    let mut client = connect(&n.socket()).await.unwrap();
    for i in 1..8 {
        let id = format!("c-lag-{i}");
        let r = add_until_served(&mut client, &id).await;
        let given = &r.ip_allocation_metadata[0].ipv4_addr;
        assert_ne!(given, &ip, "{id} was given c-lag-0's address");
    }
    harness_client::clear_faults();
    let view = n.assert_agrees().await;
    assert_eq!(held_by(&view, "c-lag-0").as_deref(), Some(ip.as_str()));
    assert_eq!(view["snapshot"]["assigned"].as_u64(), Some(8));
    d.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attachment_stuck_attaching_is_freed_and_its_addresses_never_served() {
    let _serial = serial().await;
    let n = node("stuck", "m5.large", "10.0.96.0/20").await;
    let world = harness_client::node("stuck", &n.instance, 0);
    // No warm ENI: the second ENI is created for the pods below, and its attachment never
    // completes (the instance never sees it: no link, not in IMDS).
    let env = [
        ("ENIPLAN_HOST_NETWORKING", "true"),
        ("WARM_ENI_TARGET", "0"),
        ("WARM_IP_TARGET", "1"),
        ("ENIPLAN_TICK_INTERVAL_MS", "100"),
    ];
    let d = n.start_in(&world.netns, &env).await;
    harness_client::consistency(r#"{"stuck_attachments": 1}"#);
    let mut client = connect(&n.socket()).await.unwrap();
    let primary = n.introspect("/v1/pool").await["snapshot"]["enis"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // m5.large: 9 secondary addresses on the primary ENI; the tenth pod needs a second ENI.
    for i in 0..9 {
        add_until_served(&mut client, &format!("c-stuck-{i}")).await;
    }
    let stuck = {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let state = harness_client::consistency("{}");
            if let Some(id) = state["stuck"][0].as_str() {
                break id.to_owned();
            }
            assert!(
                Instant::now() < deadline,
                "no attachment got stuck: {state}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    // While it is stuck, no address of it reaches the pool or a pod, however often the node is
    // reconciled (every 2 s here), until ipamd gives up on its link and frees it.
    let freed = "cannot set up the new ENI's host networking; freeing it";
    let deadline = Instant::now() + Duration::from_mins(2);
    while !d.log_text().contains(freed) {
        let view = n.introspect("/v1/pool").await;
        let on_stuck = view["addresses"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["eni"] == stuck.as_str());
        assert!(!on_stuck, "the pool took the stuck ENI's addresses: {view}");
        match client
            .add_network(add_request("c-stuck-9", "default", "c-stuck-9"))
            .await
        {
            Ok(r) => panic!("served while the only new ENI is stuck: {r:?}"),
            Err(s) => assert_eq!(s.code(), tonic::Code::ResourceExhausted, "{s}"),
        }
        assert!(Instant::now() < deadline, "the stuck ENI was never freed");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Then a new ENI attaches normally and the pod is served on it.
    let r = add_until_served(&mut client, "c-stuck-9").await;
    assert_ne!(r.ip_allocation_metadata[0].device_number, 0, "{r:?}");
    let view = n.assert_agrees().await;
    let enis: Vec<&str> = view["snapshot"]["enis"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["id"].as_str())
        .collect();
    assert!(
        enis.contains(&primary.as_str()) && !enis.contains(&stuck.as_str()),
        "{view}"
    );
    let gone = n
        .ec2
        .describe_network_interfaces(&cloud::model::EniFilter {
            ids: vec![planner::pool::EniId(stuck.clone())],
            ..cloud::model::EniFilter::default()
        })
        .await;
    assert!(
        gone.as_ref().is_ok_and(Vec::is_empty) || gone.is_err(),
        "the stuck ENI was deleted: {gone:?}"
    );
    assert_eq!(n.leaked_enis().await, 0);
    d.stop();
}

/// The ENI ids the harness's (lagging) IMDS lists for the node.
async fn imds_enis(imds: &cloud::aws::AwsImds) -> Vec<String> {
    let interfaces = cloud::imds::interfaces(imds).await.unwrap();
    interfaces.into_iter().map(|i| i.interface_id.0).collect()
}

/// The ENI ids `/v1/pool` holds.
fn pool_enis(view: &serde_json::Value) -> Vec<String> {
    view["snapshot"]["enis"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| Some(e["id"].as_str()?.to_owned()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lagging_imds_neither_revives_a_freed_eni_nor_hides_a_new_one() {
    let _serial = serial().await;
    let n = node("imdslag", "m5.large", "10.0.112.0/20").await;
    let world = harness_client::node("imdslag", &n.instance, 0);
    let imds = cloud::aws::AwsImds::new(&cloud::aws::AwsSettings {
        imds_endpoint: Some(n.imds.clone()),
        ..harness_client::settings()
    })
    .unwrap();
    // An empty ENI attached before ipamd starts: the pool grows on the primary ENI and frees
    // this one, which it does not need.
    let spare = n
        .ec2
        .create_network_interface(&cloud::model::CreateEni {
            subnet_id: n.subnet.clone(),
            description: "spare".into(),
            security_groups: Vec::new(),
            secondary_ips: 0,
            prefixes: 0,
            interface_type: None,
            tags: std::collections::BTreeMap::new(),
        })
        .await
        .unwrap()
        .id;
    n.ec2
        .attach_network_interface(&spare, &n.instance, 1, 0)
        .await
        .unwrap();
    // IMDS answers as the instance was 10 s ago (reconciles run every 2 s).
    harness_client::consistency(r#"{"imds_lag_ms": 10000}"#);
    let env = [
        ("ENIPLAN_HOST_NETWORKING", "true"),
        ("WARM_IP_TARGET", "1"),
        ("ENIPLAN_TICK_INTERVAL_MS", "100"),
    ];
    let d = n.start_in(&world.netns, &env).await;
    let freed = |text: &str| text.contains(&format!("ENI released from the host eni={}", spare.0));
    let deadline = Instant::now() + Duration::from_mins(2);
    while !freed(&d.log_text()) {
        assert!(Instant::now() < deadline, "the spare ENI was never freed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // While IMDS still lists the freed ENI, the pool never takes it back and its host
    // networking is not set up again.
    let mut listed = 0;
    loop {
        let at_imds = imds_enis(&imds).await.contains(&spare.0);
        let view = n.at_rest().await;
        assert!(!pool_enis(&view).contains(&spare.0), "revived: {view}");
        if !at_imds {
            break;
        }
        listed += 1;
        assert!(
            Instant::now() < deadline,
            "IMDS lists the freed ENI for ever"
        );
    }
    assert!(listed > 0, "IMDS never lagged behind the detach");
    let log = d.log_text();
    assert!(
        !log.contains(&format!(
            "cannot set up the ENI's host networking; retrying on the next reconcile eni={}",
            spare.0
        )),
        "{log}"
    );
    let rules = Command::new("ip")
        .args(["netns", "exec", &world.netns, "ip", "rule", "show"])
        .output()
        .unwrap();
    let rules = String::from_utf8_lossy(&rules.stdout);
    assert!(
        !rules.contains("lookup 2"),
        "the freed ENI's rule is back:\n{rules}"
    );

    // A new ENI, which IMDS does not list for 10 s, is kept and serves its pod meanwhile.
    let mut client = connect(&n.socket()).await.unwrap();
    let mut last = None;
    for i in 0..10 {
        last = Some(add_until_served(&mut client, &format!("c-imds-{i}")).await);
    }
    let last = last.unwrap();
    assert_ne!(last.ip_allocation_metadata[0].device_number, 0, "{last:?}");
    let view = n.introspect("/v1/pool").await;
    let new = view["snapshot"]["enis"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["device"] != 0)
        .and_then(|e| e["id"].as_str())
        .unwrap_or_else(|| panic!("no second ENI: {view}"))
        .to_owned();
    let mut unlisted = 0;
    while !imds_enis(&imds).await.contains(&new) {
        unlisted += 1;
        let view = n.at_rest().await;
        assert!(
            pool_enis(&view).contains(&new),
            "dropped before IMDS listed it: {view}"
        );
        assert!(Instant::now() < deadline, "IMDS never lists the new ENI");
    }
    assert!(unlisted > 0, "IMDS never lagged behind the attach");
    n.assert_agrees().await;
    d.stop();
}
