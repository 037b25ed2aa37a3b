//! A 250-pod node under load (issue 14): the real `ipamd` in a node namespace of the harness
//! (prefix delegation, max pods 250, every EC2 call answered 50 ms late) and the real plugin,
//! driven by 8 parallel "runtimes" through 10,000 pod events (ADD and DEL). Run as root, with
//! the harness's requirements (`scripts/test` installs them): `cargo build --release -p ipamd &&
//! cargo bench -p eniplan-cni --bench load` (`-- --events N --latency-ms N` to change them).
//!
//! Checked on the way, so a fast wrong answer cannot pass: with all 250 pods up (after the
//! ramp, and again after the churn) every pod is checkpointed under its own address; at the
//! end nothing is checkpointed, ipamd's pool equals EC2's view of the node and no ENI leaked.
//! Reported: wall time, ADD and DEL latency (p50, p99), CPU time per event of ipamd and of the
//! plugin processes (each with its `ip netns exec`), and ipamd's resident memory.

use std::collections::{BTreeMap, BTreeSet};
use std::mem::ManuallyDrop;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use serde_json::Value;

#[path = "../tests/common/mod.rs"]
mod common;
use common::world::{Ipamd, checkpointed, wired};
use common::{Netns, add_until_served, conf};

const RUNTIMES: usize = 8;
const PODS: usize = 250;

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map_or(default, |v| v.parse().expect("a number"))
}

/// CPU seconds of `/proc/<pid>/stat`: the process's own (fields 14 and 15), or that of its
/// children it has waited for (16 and 17). USER_HZ is 100 on Linux.
fn cpu_seconds(pid: &str, children: bool) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
    // fields[0] is field 3 (state): field n is fields[n - 3].
    let (a, b) = if children { (13, 14) } else { (11, 12) };
    let ticks: u64 = fields[a].parse::<u64>().unwrap() + fields[b].parse::<u64>().unwrap();
    #[expect(clippy::cast_precision_loss, reason = "CPU ticks, far below 2^52")]
    let s = ticks as f64 / 100.0;
    s
}

fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

fn percentile(sorted: &[Duration], per_mille: usize) -> Duration {
    sorted[((sorted.len() - 1) * per_mille)
        .div_ceil(1000)
        .min(sorted.len() - 1)]
}

/// Every pod up: checkpointed under its own address, and wired.
fn all_up(dir: &std::path::Path, pods: &[(Netns, String)]) {
    let book = checkpointed(dir);
    let addresses: BTreeSet<&String> = book.values().collect();
    assert_eq!(
        (book.len(), addresses.len()),
        (PODS, PODS),
        "250 pods, 250 distinct addresses"
    );
    for (pod, name) in pods {
        assert!(book.contains_key(&format!("c-{name}")), "{name} not booked");
        assert!(wired(pod), "{name} not wired");
    }
}

/// One runtime's share of the events on its `pods`: ramp up, churn (DEL then ADD of one pod
/// at a time), tear down; the ADD and DEL latencies. Waits at `barrier` after the ramp and
/// before the teardown so the checks see every pod up.
fn runtime(
    node: &Netns,
    pods: &[(Netns, String)],
    conf: &Value,
    events: usize,
    barrier: &Barrier,
) -> (Vec<Duration>, Vec<Duration>) {
    let (mut adds, mut dels) = (Vec::new(), Vec::new());
    let add = |pod: &Netns, name: &str, adds: &mut Vec<Duration>| {
        let t = Instant::now();
        add_until_served(node, pod, name, conf);
        adds.push(t.elapsed());
    };
    let del = |pod: &Netns, name: &str, dels: &mut Vec<Duration>| {
        let t = Instant::now();
        common::del(node, pod, name, conf);
        dels.push(t.elapsed());
    };
    for (pod, name) in pods {
        add(pod, name, &mut adds);
    }
    barrier.wait(); // ramp done
    barrier.wait(); // checked
    let churn = (events - 2 * pods.len()) / 2;
    for i in 0..churn {
        let (pod, name) = &pods[i % pods.len()];
        del(pod, name, &mut dels);
        add(pod, name, &mut adds);
    }
    barrier.wait(); // churn done
    barrier.wait(); // checked
    for (pod, name) in pods {
        del(pod, name, &mut dels);
    }
    (adds, dels)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let events = usize::try_from(arg("--events", 10_000)).unwrap();
    let latency = u32::try_from(arg("--latency-ms", 50)).unwrap();
    let pid = std::process::id();
    let ec2 = harness_client::ec2().await;
    let subnet = harness_client::subnet(&ec2, "10.0.0.0/20").await;
    let instance = harness_client::instance(&ec2, "m5.large", &subnet).await;
    let world = harness_client::node(&format!("ld{}", pid % 100_000), &instance, 200);
    let node = ManuallyDrop::new(Netns(world.netns.clone()));
    let dir = std::env::temp_dir().join(format!("eniplan-cni-load-{pid}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    harness_client::latency("*", latency);
    let mut daemon = Ipamd::start(
        &world.netns,
        &dir,
        &[
            ("ENABLE_PREFIX_DELEGATION", "true"),
            ("WARM_PREFIX_TARGET", "1"),
            ("ENIPLAN_MAX_PODS", "250"),
        ],
    );
    daemon.ready().await;
    // `ip netns exec` execs ipamd in place: the child is the daemon.
    let ipamd_pid = daemon.child.id().to_string();
    let c = conf(&daemon.socket(), "1.1.0", &dir.join("plugin.log"));
    let pods: Vec<(Netns, String)> = (0..PODS)
        .map(|i| (Netns::new(format!("enp-ld-{pid}-{i}")), format!("l{i}")))
        .collect();
    let shares: Vec<&[(Netns, String)]> = pods.chunks(PODS.div_ceil(RUNTIMES)).collect();
    let per_runtime = events / shares.len();
    let barrier = Barrier::new(shares.len() + 1);
    let (cpu_ipamd, cpu_plugins) = (cpu_seconds(&ipamd_pid, false), cpu_seconds("self", true));
    let start = Instant::now();
    let (mut adds, mut dels) = std::thread::scope(|s| {
        let runs: Vec<_> = shares
            .iter()
            .map(|share| {
                let (node, c, barrier) = (&*node, &c, &barrier);
                s.spawn(move || runtime(node, share, c, per_runtime, barrier))
            })
            .collect();
        barrier.wait();
        all_up(&dir, &pods);
        println!(
            "ramp: {PODS} pods up after {:.1} s",
            start.elapsed().as_secs_f64()
        );
        barrier.wait();
        barrier.wait();
        all_up(&dir, &pods);
        barrier.wait();
        let mut adds = Vec::new();
        let mut dels = Vec::new();
        for r in runs {
            let (a, d) = r.join().unwrap();
            adds.extend(a);
            dels.extend(d);
        }
        (adds, dels)
    });
    let wall = start.elapsed();
    let cpu_ipamd = cpu_seconds(&ipamd_pid, false) - cpu_ipamd;
    let cpu_plugins = cpu_seconds("self", true) - cpu_plugins;
    let rss = status_kib(ipamd_pid.parse().unwrap(), "VmRSS:");
    let hwm = status_kib(ipamd_pid.parse().unwrap(), "VmHWM:");
    assert!(checkpointed(&dir).is_empty(), "pods left booked");
    harness_client::clear_faults();

    let prefixes = at_rest_agrees(&dir.join("introspect.sock"), &ec2, &instance).await;

    let n = adds.len() + dels.len();
    adds.sort_unstable();
    dels.sort_unstable();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    #[expect(clippy::cast_precision_loss, reason = "event counts")]
    let per = |s: f64| s * 1000.0 / n as f64;
    println!(
        "{n} events ({} ADD, {} DEL) from {} runtimes, EC2 +{latency} ms: {:.1} s wall",
        adds.len(),
        dels.len(),
        shares.len(),
        wall.as_secs_f64()
    );
    println!(
        "ADD p50 {:.1} ms p99 {:.1} ms; DEL p50 {:.1} ms p99 {:.1} ms",
        ms(percentile(&adds, 500)),
        ms(percentile(&adds, 990)),
        ms(percentile(&dels, 500)),
        ms(percentile(&dels, 990))
    );
    println!(
        "CPU per event: ipamd {:.3} ms, plugin (with ip netns exec) {:.2} ms",
        per(cpu_ipamd),
        per(cpu_plugins)
    );
    println!("ipamd RSS {rss} KiB, peak {hwm} KiB; prefixes at rest: {prefixes}");
    daemon.stop();
    drop(pods);
    drop(world);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Waits until the pool is at rest, checks that its prefixes per ENI are EC2's; their total.
async fn at_rest_agrees(socket: &std::path::Path, ec2: &cloud::aws::AwsEc2, instance: &str) -> u64 {
    let deadline = Instant::now() + Duration::from_mins(2);
    let view = loop {
        let v: Value = serde_json::from_str(&introspect(socket, "/v1/pool")).unwrap();
        if v["snapshot"]["in_flight"]
            .as_array()
            .is_some_and(Vec::is_empty)
        {
            break v;
        }
        assert!(Instant::now() < deadline, "never at rest: {v}");
        std::thread::sleep(Duration::from_millis(200));
    };
    let in_ec2 = prefixes_in_ec2(ec2, instance).await;
    let in_pool: BTreeMap<String, u64> = view["snapshot"]["enis"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["id"].as_str().unwrap().to_owned(),
                e["prefixes"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        in_pool, in_ec2,
        "the pool and EC2 disagree at rest (prefixes per ENI)"
    );
    in_pool.values().sum()
}

/// How many /28 prefixes EC2 shows on each of the instance's ENIs.
async fn prefixes_in_ec2(ec2: &cloud::aws::AwsEc2, instance: &str) -> BTreeMap<String, u64> {
    use cloud::Ec2 as _;
    let filter = cloud::model::EniFilter {
        instance_id: Some(instance.to_owned()),
        ..Default::default()
    };
    ec2.describe_network_interfaces(&filter)
        .await
        .unwrap()
        .iter()
        .map(|e| (e.id.0.clone(), e.prefixes.len() as u64))
        .collect()
}

/// GET over the introspection socket.
fn introspect(socket: &std::path::Path, path: &str) -> String {
    use std::io::{Read as _, Write as _};
    let mut s = std::os::unix::net::UnixStream::connect(socket).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out.split_once("\r\n\r\n")
        .map_or(String::new(), |(_, b)| b.to_owned())
}
