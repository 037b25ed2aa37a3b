//! `cargo bench -p ipamd --bench daemon`: the daemon's figures for docs/benchmarks.md.
//!
//! 1. ADD+DEL round trip over the socket (warm pool, in-process daemon on the `cloud` fake, the
//!    checkpoint on tmpfs as /var/run/aws-node is on a node), p50/p99, against a bare Unix-socket
//!    echo round trip.
//!    Then ipamd's share of an ADD: AddNetwork and DelNetwork against a bare health check on the
//!    same connection to ipamd's socket.
//! 2. Sustained durable ADD+DEL pairs per second with concurrent clients (group commit).
//! 3. Against the LocalStack harness with the real binary: time from start to a warm pool, RSS
//!    with 250 pods, and the EC2 calls the warm-up made.
#![allow(clippy::disallowed_methods, reason = "a benchmark reads the clock")]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cloud::fake::{FakeEc2, FakeImds};
use ipamd::Stage;
use ipamd::client::{add_request, connect, del_request};
use ipamd::config::Config;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::watch;

fn state_dir(name: &str) -> PathBuf {
    // tmpfs, like /var/run/aws-node on a node.
    let base = if Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    let d = base.join(format!("eniplan-bench-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    #[expect(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss,
        reason = "an index into a short vector"
    )]
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

async fn echo_round_trips(n: usize) -> Vec<Duration> {
    let dir = state_dir("echo");
    let path = dir.join("echo.sock");
    let listener = tokio::net::UnixListener::bind(&path).unwrap();
    tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 256];
        loop {
            let Ok(k) = s.read(&mut buf).await else {
                return;
            };
            if k == 0 || s.write_all(&buf[..k]).await.is_err() {
                return;
            }
        }
    });
    let mut c = tokio::net::UnixStream::connect(&path).await.unwrap();
    let msg = [7u8; 128]; // about the size of an AddNetworkRequest
    let mut buf = [0u8; 128];
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        c.write_all(&msg).await.unwrap();
        c.read_exact(&mut buf).await.unwrap();
        out.push(t.elapsed());
    }
    out
}

/// A bare gRPC unary call (the standard health check) over a Unix socket: tonic's floor.
async fn grpc_round_trips(n: usize) -> Vec<Duration> {
    use hyper_util::rt::TokioIo;
    use tonic::transport::{Endpoint, Uri};
    let dir = state_dir("grpc");
    let sock = dir.join("health.sock");
    let listener = tokio::net::UnixListener::bind(&sock).unwrap();
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("bench", tonic_health::ServingStatus::Serving)
        .await;
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(health)
            .serve_with_incoming(tokio_stream::wrappers::UnixListenerStream::new(listener)),
    );
    let path = sock.clone();
    let channel = Endpoint::try_from("http://[::1]:1")
        .unwrap()
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let path = path.clone();
            async move {
                Ok::<_, std::io::Error>(TokioIo::new(tokio::net::UnixStream::connect(path).await?))
            }
        }))
        .await
        .unwrap();
    let mut client = tonic_health::pb::health_client::HealthClient::new(channel);
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        client
            .check(tonic_health::pb::HealthCheckRequest {
                service: "bench".into(),
            })
            .await
            .unwrap();
        out.push(t.elapsed());
    }
    out
}

async fn daemon(name: &str) -> (PathBuf, watch::Sender<Stage>) {
    let ec2 = FakeEc2::new();
    let vpc = ec2.create_vpc("10.0.0.0/16".parse().unwrap());
    let subnet = ec2
        .create_subnet(&vpc, "10.0.0.0/18".parse().unwrap(), "us-west-2a")
        .unwrap();
    let instance = ec2.run_instance("c5.18xlarge", &subnet).unwrap();
    let dir = state_dir(name);
    let vars = [
        ("ENIPLAN_STATE_DIR", dir.display().to_string()),
        ("DISABLE_INTROSPECTION", "true".into()),
        ("DISABLE_METRICS", "true".into()),
        ("ENIPLAN_HOST_NETWORKING", "false".into()),
        ("WARM_IP_TARGET", "64".into()),
        ("IP_COOLDOWN_PERIOD", "0".into()),
        ("ENIPLAN_MAX_PODS", "250".into()),
    ];
    let config = Config::from_vars(
        &vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect(),
    )
    .unwrap();
    let (tx, rx) = watch::channel(Stage::Running);
    // On a thread and runtime of its own, as the real daemon is a process (one thread, as main).
    let imds = FakeImds::new(&ec2, &instance);
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(ipamd::run(config, ec2, imds, rx))
    });
    while connect(&dir.join("ipamd.sock")).await.is_err() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    (dir, tx)
}

async fn round_trips(socket: &Path, n: usize) -> Vec<Duration> {
    let mut c = connect(socket).await.unwrap();
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let id = format!("{i:064x}");
        let t = Instant::now();
        c.add_network(add_request(&id, "bench", "pod"))
            .await
            .unwrap();
        c.del_network(del_request(&id, "bench", "pod"))
            .await
            .unwrap();
        out.push(t.elapsed());
    }
    out
}

/// ipamd's share of an ADD: on one connection to ipamd's socket, each round is a bare health
/// check, an AddNetwork and a DelNetwork, each timed on its own.
async fn share_round_trips(socket: &Path, n: usize) -> [Vec<Duration>; 3] {
    let channel = ipamd::client::channel(socket).await.unwrap();
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
    let mut c = eniplan_rpc::cni_backend_client::CniBackendClient::new(channel);
    let mut out = [const { Vec::new() }; 3];
    for i in 0..n {
        let id = format!("{i:064x}");
        let t = Instant::now();
        health
            .check(tonic_health::pb::HealthCheckRequest {
                service: "grpc.health.v1.aws-node".into(),
            })
            .await
            .unwrap();
        out[0].push(t.elapsed());
        let t = Instant::now();
        c.add_network(add_request(&id, "bench", "pod"))
            .await
            .unwrap();
        out[1].push(t.elapsed());
        let t = Instant::now();
        c.del_network(del_request(&id, "bench", "pod"))
            .await
            .unwrap();
        out[2].push(t.elapsed());
    }
    for v in &mut out {
        v.sort_unstable();
    }
    out
}

async fn throughput(socket: &Path, clients: usize, per_client: usize) -> f64 {
    let start = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|w| {
            let socket = socket.to_owned();
            tokio::spawn(async move {
                let mut c = connect(&socket).await.unwrap();
                for i in 0..per_client {
                    let id = format!("w{w}-{i}");
                    c.add_network(add_request(&id, "bench", "pod"))
                        .await
                        .unwrap();
                    c.del_network(del_request(&id, "bench", "pod"))
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    #[expect(clippy::cast_precision_loss, reason = "a rate")]
    let pairs = (clients * per_client) as f64;
    pairs / start.elapsed().as_secs_f64()
}

fn rss_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

async fn against_harness() {
    let ec2 = harness_client::ec2().await;
    let subnet = harness_client::subnet(&ec2, "10.0.192.0/20").await;
    let instance = harness_client::instance(&ec2, "c5.18xlarge", &subnet).await;
    let imds = harness_client::imds_endpoint(&instance);
    let dir = state_dir("harness");
    let exe = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/release/ipamd");
    let exe = if exe.exists() {
        exe
    } else {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/debug/ipamd")
    };
    let t = Instant::now();
    let mut child = Command::new(&exe)
        .env("ENIPLAN_STATE_DIR", &dir)
        .env("ENIPLAN_HOST_NETWORKING", "false")
        .env("AWS_EC2_ENDPOINT", &harness_client::info().ec2_endpoint)
        .env("ENIPLAN_IMDS_ENDPOINT", &imds)
        .env("AWS_REGION", "us-west-2")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env(
            "INTROSPECTION_BIND_ADDRESS",
            format!("unix:{}/i.sock", dir.display()),
        )
        .env("ENIPLAN_METRICS_BIND_ADDRESS", "127.0.0.1:0")
        .env("ENIPLAN_MAX_PODS", "250")
        .env("AWS_VPC_K8S_CNI_LOGLEVEL", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start ipamd (build it first: cargo build --release -p ipamd)");
    while connect(&dir.join("ipamd.sock")).await.is_err() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let ready = t.elapsed();
    println!(
        "start to warm pool (c5.18xlarge, WARM_ENI_TARGET=1, harness): {:.0} ms  [{}]",
        ready.as_secs_f64() * 1000.0,
        exe.display()
    );
    let (rss0, _) = rss_kib(child.id());
    let mut c = connect(&dir.join("ipamd.sock")).await.unwrap();
    for i in 0..250 {
        let id = format!("{i:064x}");
        loop {
            if c.add_network(add_request(&id, "bench", "pod"))
                .await
                .is_ok()
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (rss, hwm) = rss_kib(child.id());
    println!("RSS: {rss0} KiB warm with no pods; {rss} KiB with 250 pods (peak {hwm} KiB)");
    let _ = child.kill();
    let _ = child.wait();
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut echo = echo_round_trips(20_000).await;
        echo.sort_unstable();
        let mut grpc = grpc_round_trips(10_000).await;
        grpc.sort_unstable();
        let (dir, stop) = daemon("rtt").await;
        let socket = dir.join("ipamd.sock");
        round_trips(&socket, 500).await; // warm-up
        let mut rtt = round_trips(&socket, 5_000).await;
        rtt.sort_unstable();
        println!(
            "== ADD+DEL round trip over the socket (sequential, warm pool, checkpoint on tmpfs)"
        );
        println!(
            "echo:    p50 {:>8.1?}  p99 {:>8.1?}",
            percentile(&echo, 0.5),
            percentile(&echo, 0.99)
        );
        println!(
            "gRPC:    p50 {:>8.1?}  p99 {:>8.1?}   (one bare unary call: tonic's floor)",
            percentile(&grpc, 0.5),
            percentile(&grpc, 0.99)
        );
        println!(
            "ipamd:   p50 {:>8.1?}  p99 {:>8.1?}   (p99 = {:.1}× the echo p99)",
            percentile(&rtt, 0.5),
            percentile(&rtt, 0.99),
            percentile(&rtt, 0.99).as_secs_f64() / percentile(&echo, 0.99).as_secs_f64()
        );
        share_round_trips(&socket, 500).await; // warm-up
        let [health, add, del] = share_round_trips(&socket, 5_000).await;
        println!("\n== ipamd's share of an ADD: one connection to ipamd's socket");
        for (name, v) in [
            ("health", &health),
            ("AddNetwork", &add),
            ("DelNetwork", &del),
        ] {
            println!(
                "{name:<11} p50 {:>8.1?}  p99 {:>8.1?}   ({:.2}× / {:.2}× the health check)",
                percentile(v, 0.5),
                percentile(v, 0.99),
                percentile(v, 0.5).as_secs_f64() / percentile(&health, 0.5).as_secs_f64(),
                percentile(v, 0.99).as_secs_f64() / percentile(&health, 0.99).as_secs_f64()
            );
        }
        println!("\n== durable ADD+DEL pairs per second (group commit)");
        for clients in [1, 4, 16, 64] {
            let rate = throughput(&socket, clients, 4_000 / clients).await;
            println!("{clients:>3} clients: {rate:>8.0} pairs/s");
        }
        let _ = stop.send(Stage::Exit);
        if std::env::args().any(|a| a == "--harness") {
            println!("\n== against the LocalStack harness (real binary)");
            against_harness().await;
        }
        let _ = Arc::new(());
    });
}
