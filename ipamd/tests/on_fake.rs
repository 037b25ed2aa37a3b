//! The daemon in-process against the `cloud` fake: start-up, the socket API, the checkpoint,
//! restart, reconcile, introspection and metrics. (The same behaviours against the LocalStack
//! harness, with the real binary, are in `tests/on_harness.rs`.)

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use cloud::Ec2;
use cloud::fake::{FakeEc2, FakeImds};
use cloud::model::EniFilter;
use ipamd::Stage;
use ipamd::client::{add_request, connect, del_request};
use ipamd::config::Config;
use tokio::sync::watch;

struct Daemon {
    dir: PathBuf,
    stage: watch::Sender<Stage>,
    task: tokio::task::JoinHandle<ipamd::Result<()>>,
}

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("eniplan-ipamd-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn node(instance_type: &str, cidr: &str) -> (FakeEc2, String) {
    let ec2 = FakeEc2::new();
    let vpc = ec2.create_vpc("10.0.0.0/16".parse().unwrap());
    let subnet = ec2
        .create_subnet(&vpc, cidr.parse().unwrap(), "us-west-2a")
        .unwrap();
    let instance = ec2.run_instance(instance_type, &subnet).unwrap();
    (ec2, instance)
}

fn config(dir: &Path, extra: &[(&str, &str)]) -> Config {
    let mut vars: BTreeMap<String, String> = BTreeMap::from([
        ("ENIPLAN_STATE_DIR".into(), dir.display().to_string()),
        ("DISABLE_INTROSPECTION".into(), "true".into()),
        ("DISABLE_METRICS".into(), "true".into()),
        ("ENIPLAN_TICK_INTERVAL_MS".into(), "50".into()),
        ("ENIPLAN_HOST_NETWORKING".into(), "false".into()),
    ]);
    for (k, v) in extra {
        vars.insert((*k).into(), (*v).into());
    }
    Config::from_vars(&vars).unwrap()
}

async fn start(ec2: &FakeEc2, instance: &str, dir: &Path, extra: &[(&str, &str)]) -> Daemon {
    let (stage, rx) = watch::channel(Stage::Running);
    let task = tokio::spawn(ipamd::run(
        config(dir, extra),
        ec2.clone(),
        FakeImds::new(ec2, instance),
        rx,
    ));
    // Ready when the socket answers.
    for _ in 0..200 {
        if connect(&dir.join("ipamd.sock")).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Daemon {
        dir: dir.to_owned(),
        stage,
        task,
    }
}

/// A daemon on a runtime and thread of its own, so that [`Crashable::crash`] ends it as a
/// crash ends a process: dropping the runtime drops every task it spawned, the socket's server
/// with its listener included, before `crash` returns.
struct Crashable {
    crash: tokio::sync::oneshot::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

impl Crashable {
    async fn start(ec2: &FakeEc2, instance: &str, dir: &Path) -> Crashable {
        let (ready_tx, ready) = tokio::sync::oneshot::channel();
        let (crash, crashed) = tokio::sync::oneshot::channel::<()>();
        let (ec2, instance, dir) = (ec2.clone(), instance.to_owned(), dir.to_owned());
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let daemon = runtime.block_on(async {
                let daemon = start(&ec2, &instance, &dir, &[]).await;
                let _ = ready_tx.send(());
                let _ = crashed.await;
                daemon
            });
            // The runtime goes first, its tasks with it; the daemon never sees a stage change.
            drop(runtime);
            drop(daemon);
        });
        ready.await.expect("the daemon's thread started it");
        Crashable { crash, thread }
    }

    fn crash(self) {
        let _ = self.crash.send(());
        self.thread.join().unwrap();
    }
}

impl Daemon {
    async fn stop(self) {
        let _ = self.stage.send(Stage::Exit);
        self.task.await.unwrap().unwrap();
    }
    fn socket(&self) -> PathBuf {
        self.dir.join("ipamd.sock")
    }
}

async fn enis(ec2: &FakeEc2, instance: &str) -> Vec<cloud::model::NetworkInterface> {
    ec2.describe_network_interfaces(&EniFilter {
        instance_id: Some(instance.into()),
        ..EniFilter::default()
    })
    .await
    .unwrap()
}

async fn secondary_count(ec2: &FakeEc2, instance: &str) -> usize {
    enis(ec2, instance)
        .await
        .iter()
        .map(|e| e.secondary_ips.len() + 16 * e.prefixes.len())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warms_up_serves_pods_and_persists_them() {
    let (ec2, instance) = node("m5.large", "10.0.0.0/20");
    let dir = temp_dir("serve");
    let d = start(&ec2, &instance, &dir, &[]).await;
    assert_eq!(
        ipamd::client::health(&d.socket()).await,
        Ok(true),
        "the health service reports SERVING"
    );
    // WARM_ENI_TARGET=1 on m5.large: one ENI's worth (9) is warm before serving.
    assert_eq!(secondary_count(&ec2, &instance).await, 9);
    let mut client = connect(&d.socket()).await.unwrap();
    let mut ips = BTreeSet::new();
    for i in 0..12 {
        let reply = client
            .add_network(add_request(&format!("c{i}"), "default", &format!("p{i}")))
            .await
            .unwrap()
            .into_inner();
        assert!(reply.success);
        assert_eq!(reply.vpc_v4_cidrs, vec!["10.0.0.0/16".to_owned()]);
        ips.insert(reply.ip_allocation_metadata[0].ipv4_addr.clone());
    }
    assert_eq!(ips.len(), 12, "every pod has its own address");
    // ADD is idempotent per key.
    let again = client
        .add_network(add_request("c3", "default", "p3"))
        .await
        .unwrap()
        .into_inner();
    assert!(ips.contains(&again.ip_allocation_metadata[0].ipv4_addr));
    // The checkpoint holds the 12 pods, in the reference format.
    let entries = ipamd::checkpoint::load(&dir.join("ipam.json")).unwrap();
    assert_eq!(entries.len(), 12);
    assert_eq!(
        entries
            .iter()
            .filter_map(|e| e.ipv4.clone())
            .collect::<BTreeSet<_>>(),
        ips
    );
    // DEL releases; a second DEL is the reference's "unknown pod".
    let del = client
        .del_network(del_request("c0", "default", "p0"))
        .await
        .unwrap()
        .into_inner();
    assert!(del.success);
    let err = client
        .del_network(del_request("c0", "default", "p0"))
        .await
        .unwrap_err();
    assert_eq!(
        (err.code(), err.message()),
        (tonic::Code::NotFound, "datastore: unknown pod")
    );
    assert_eq!(
        ipamd::checkpoint::load(&dir.join("ipam.json"))
            .unwrap()
            .len(),
        11
    );
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_precise_errors_and_change_nothing() {
    let (ec2, instance) = node("t3.small", "10.0.0.0/20");
    let dir = temp_dir("bad");
    let d = start(&ec2, &instance, &dir, &[]).await;
    let mut client = connect(&d.socket()).await.unwrap();
    let before = secondary_count(&ec2, &instance).await;
    let mut missing = add_request("", "default", "p");
    missing.container_id.clear();
    let err = client.add_network(missing).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(err.message().contains("ContainerID"), "{}", err.message());
    let mut wrong = add_request("c1", "default", "p");
    wrong.client_version = "v0.0.1-other".into();
    let err = client.add_network(wrong).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::FailedPrecondition);
    let mut multi = add_request("c1", "default", "p");
    multi.requires_multi_nic_attachment = true;
    assert_eq!(
        client.add_network(multi).await.unwrap_err().code(),
        tonic::Code::InvalidArgument
    );
    let err = client
        .del_network(del_request("never-added", "default", "p"))
        .await
        .unwrap_err();
    assert_eq!(err.message(), "datastore: unknown pod");
    // Garbage bytes on the socket: the connection fails, the daemon keeps serving.
    {
        use tokio::io::AsyncWriteExt as _;
        let mut raw = tokio::net::UnixStream::connect(d.socket()).await.unwrap();
        let _ = raw
            .write_all(b"GET / HTTP/1.0\r\n\r\n\x00\x01garbage")
            .await;
    }
    // Checked before the valid ADD below, which may legitimately grow the pool (t3.small's
    // warm ENI target asks for a second ENI once one address is taken).
    assert_eq!(
        secondary_count(&ec2, &instance).await,
        before,
        "nothing changed in EC2 for the bad requests"
    );
    assert!(
        ipamd::checkpoint::load(&dir.join("ipam.json")).map_or(true, |entries| entries.is_empty()),
        "no pod was checkpointed for the bad requests"
    );
    let ok = client
        .add_network(add_request("c1", "default", "p"))
        .await
        .unwrap()
        .into_inner();
    assert!(ok.success, "the daemon still serves after the garbage");
    assert_eq!(
        ipamd::checkpoint::load(&dir.join("ipam.json"))
            .unwrap()
            .len(),
        1
    );
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_keeps_pod_ownership_and_never_double_assigns() {
    let (ec2, instance) = node("m5.large", "10.0.0.0/20");
    let dir = temp_dir("restart");
    let first = Crashable::start(&ec2, &instance, &dir).await;
    let mut client = connect(&dir.join("ipamd.sock")).await.unwrap();
    let mut owned = BTreeMap::new();
    for i in 0..5 {
        let r = client
            .add_network(add_request(&format!("c{i}"), "ns", "p"))
            .await
            .unwrap()
            .into_inner();
        owned.insert(
            format!("c{i}"),
            r.ip_allocation_metadata[0].ipv4_addr.clone(),
        );
    }
    // Crash: no clean shutdown; every task of the daemon, its socket's server too, is gone.
    first.crash();
    let d = start(&ec2, &instance, &dir, &[]).await;
    let mut client = connect(&d.socket()).await.unwrap();
    // The same keys get the same addresses back; new pods get other ones.
    for (c, ip) in &owned {
        let r = client
            .add_network(add_request(c, "ns", "p"))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(&r.ip_allocation_metadata[0].ipv4_addr, ip);
    }
    let fresh = client
        .add_network(add_request("new", "ns", "p"))
        .await
        .unwrap()
        .into_inner();
    assert!(
        !owned
            .values()
            .any(|ip| *ip == fresh.ip_allocation_metadata[0].ipv4_addr)
    );
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_checkpoint_stops_startup() {
    let (ec2, instance) = node("m5.large", "10.0.0.0/20");
    let dir = temp_dir("corrupt");
    std::fs::write(dir.join("ipam.json"), "{\"version\":\"vpc-cni-ipam/9\"}").unwrap();
    let (_stage, rx) = watch::channel(Stage::Running);
    let err = ipamd::run(
        config(&dir, &[]),
        ec2.clone(),
        FakeImds::new(&ec2, &instance),
        rx,
    )
    .await
    .unwrap_err();
    assert_eq!(err.exit(), ipamd::Exit::Checkpoint);
    assert!(err.to_string().contains("vpc-cni-ipam/9"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefix_delegation_warms_up_with_prefixes() {
    let (ec2, instance) = node("t3.small", "10.0.0.0/20");
    let dir = temp_dir("pd");
    let d = start(
        &ec2,
        &instance,
        &dir,
        &[
            ("ENABLE_PREFIX_DELEGATION", "true"),
            ("WARM_PREFIX_TARGET", "1"),
            ("ENIPLAN_MAX_PODS", "110"),
        ],
    )
    .await;
    let e = enis(&ec2, &instance).await;
    assert_eq!(
        (e.len(), e[0].prefixes.len(), e[0].secondary_ips.len()),
        (1, 1, 0)
    );
    let mut client = connect(&d.socket()).await.unwrap();
    let r = client
        .add_network(add_request("c", "ns", "p"))
        .await
        .unwrap()
        .into_inner();
    let ip: std::net::Ipv4Addr = r.ip_allocation_metadata[0].ipv4_addr.parse().unwrap();
    assert!(e[0].prefixes[0].contains(ip));
    // 15 free < 16: the next tick asks for a second prefix.
    for _ in 0..100 {
        if enis(&ec2, &instance).await[0].prefixes.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(enis(&ec2, &instance).await[0].prefixes.len(), 2);
    d.stop().await;
}

/// Runs the C-core client (Python grpcio, from `harness/grpc-python`) once against `socket`.
async fn c_core_add(socket: &Path, version: &str, container: &str) -> serde_json::Value {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = tokio::process::Command::new(root.join("harness/grpc-python"))
        .arg(root.join("ipamd/tests/c_core_client.py"))
        .arg(root.join("rpc/proto/rpc.proto"))
        .arg(socket)
        .arg(version)
        .arg(container)
        .output()
        .await
        .expect("run harness/grpc-python");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_c_core_client_and_vpc_cni_plugin_versions_are_served() {
    let (ec2, instance) = node("m5.large", "10.0.0.0/20");
    let dir = temp_dir("c-core");
    let d = start(&ec2, &instance, &dir, &[]).await;
    // gRPC C-core sends the socket path as :authority; the VPC CNI's plugin its release.
    let reply = c_core_add(&d.socket(), "v1.20.0", "py-1").await;
    assert_eq!(reply["success"], true, "{reply}");
    assert_eq!(reply["ips"].as_array().map(Vec::len), Some(1), "{reply}");
    assert_eq!(reply["vpc_v4_cidrs"][0], "10.0.0.0/16");
    let unset = c_core_add(&d.socket(), "", "py-2").await;
    assert_eq!(unset["success"], true, "{unset}");
    assert_ne!(unset["ips"][0], reply["ips"][0], "two pods, two addresses");
    // Before v1.20.0 the reply's field 2 was a string: such a plugin is refused, with why.
    let old = c_core_add(&d.socket(), "v1.19.0", "py-3").await;
    assert_eq!(old["code"], "FAILED_PRECONDITION", "{old}");
    assert!(
        old["details"]
            .as_str()
            .is_some_and(|s| s.contains("v1.20.0")),
        "{old}"
    );
    assert_eq!(
        ipamd::checkpoint::load(&dir.join("ipam.json"))
            .unwrap()
            .len(),
        2,
        "the refused request assigned nothing"
    );
    // A tonic client presenting a VPC CNI release is served too.
    let mut client = connect(&d.socket()).await.unwrap();
    let mut vpc_cni = add_request("go-1", "default", "go");
    vpc_cni.client_version = "v1.21.1-eksbuild.3".into();
    assert!(
        client
            .add_network(vpc_cni)
            .await
            .unwrap()
            .into_inner()
            .success
    );
    d.stop().await;
}
