//! `cargo bench -p ipamd --bench cluster`: ipamd's Kubernetes figures for docs/benchmarks.md,
//! with the release binary on the LocalStack harness and the fake API server.
//!
//! 1. API requests ipamd sends at steady state (a minute with nothing changing), and what its
//!    watches' renewals add per hour.
//! 2. RSS with 1 pod in the cluster and with 10,000 more on other nodes.
//! 3. Time from relabelling a node to a usable ENIConfig until the pool shows the next ENI,
//!    over several nodes; each run then checks in EC2 that the ENI is in the ENIConfig's subnet
//!    (untimed), and fails if not.
#![allow(clippy::disallowed_methods, reason = "a benchmark reads the clock")]

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::cluster::{
    Cluster, cluster_env, env_refs, insert_foreign_pods, pod_yaml, rss_kib, secondary_enis, until,
};
use common::node;
use serde_json::Value;

/// kube's watcher asks the API server to end each watch after this long.
const WATCH_TIMEOUT_S: f64 = 290.0;

fn ipamd_requests(c: &Cluster) -> u64 {
    c.fake
        .requests()
        .iter()
        .filter(|(k, _)| k.starts_with("as eniplan-ipamd "))
        .map(|(_, n)| n)
        .sum()
}

async fn steady_state_and_memory() {
    let n = node("bench-k8s", "m5.large", "10.0.192.0/20").await;
    let c = Cluster::start(&n.dir).await;
    let name = "ip-10-0-192-10.us-west-2.compute.internal";
    c.register(name, "us-west-2a", 29).await;
    c.kubectl(&["create", "-f", "-"], Some(&pod_yaml("mine", name)))
        .await;
    let env = cluster_env(&c, name);
    let env = env_refs(&env);
    let d = n.start(&env).await;
    n.at_rest().await;
    let start_requests = ipamd_requests(&c);
    let watches = c
        .fake
        .requests()
        .iter()
        .filter(|(k, _)| k.starts_with("as eniplan-ipamd watch "))
        .count();
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_mins(1)).await;
    let idle = ipamd_requests(&c) - start_requests;
    #[expect(clippy::cast_precision_loss, reason = "small counts")]
    let per_hour = idle as f64 * 3600.0 / t0.elapsed().as_secs_f64()
        + watches as f64 * 3600.0 / WATCH_TIMEOUT_S;
    println!(
        "steady state: {idle} requests in {:.0} s (measured); {watches} watches renewed every {WATCH_TIMEOUT_S} s → {per_hour:.0} requests per node per hour (computed: the idle rate + watches × 3600 / {WATCH_TIMEOUT_S}; start-up: {start_requests})",
        t0.elapsed().as_secs_f64()
    );

    let pid = d.child.id();
    let before = rss_kib(pid);
    insert_foreign_pods(&c.fake, 10_000);
    c.kubectl(&["cordon", name], None).await;
    until(&n, "/v1/decisions", "the cordon", |v: &Value| {
        v["kubernetes"]["engine"]["schedulable"] == false
    })
    .await;
    let after = rss_kib(pid);
    println!(
        "RSS: {before} KiB with 1 pod in the cluster, {after} KiB with 10,000 more on other nodes"
    );
    d.stop();
}

async fn relabel_to_eni(i: usize) -> Duration {
    let third = 208 + i;
    let n = node(
        &format!("bench-relabel-{i}"),
        "m5.large",
        &format!("10.0.{third}.0/24"),
    )
    .await;
    let second = 64 + i;
    let pod_subnet = harness_client::pod_subnet(
        &n.ec2,
        &n.subnet,
        &format!("100.{second}.0.0/16"),
        &format!("100.{second}.0.0/20"),
    )
    .await;
    let sg = harness_client::security_group(&n.ec2, &n.subnet, &format!("bench-{i}")).await;
    let c = Cluster::start(&n.dir).await;
    c.kubectl(&["apply", "-f", "-"], Some(common::cluster::CRD))
        .await;
    c.eniconfig("pods-a", &pod_subnet, &[&sg]).await;
    let name = format!("ip-10-0-{third}-10.us-west-2.compute.internal");
    c.register(&name, "us-west-2a", 29).await;
    c.kubectl(
        &[
            "label",
            "node",
            &name,
            "k8s.amazonaws.com/eniConfig=missing",
        ],
        None,
    )
    .await;
    let mut env = cluster_env(&c, &name);
    env.push(("AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG", "true".into()));
    let env = env_refs(&env);
    let d = n.start(&env).await;
    n.at_rest().await;
    let t0 = Instant::now();
    c.kubectl(
        &[
            "label",
            "node",
            &name,
            "k8s.amazonaws.com/eniConfig=pods-a",
            "--overwrite",
        ],
        None,
    )
    .await;
    until(&n, "/v1/pool", "a second ENI", |v: &Value| {
        v["snapshot"]["enis"]
            .as_array()
            .is_some_and(|e| e.len() == 2)
    })
    .await;
    let took = t0.elapsed();
    // The time counts only if that ENI is the one asked for: in the ENIConfig's subnet, with
    // its security group, as EC2 describes it (this check is not part of the time).
    let secondary = secondary_enis(&n).await;
    assert_eq!(secondary.len(), 1, "{secondary:?}");
    assert_eq!(
        secondary[0].subnet_id, pod_subnet,
        "the new ENI is in the ENIConfig's subnet"
    );
    assert_eq!(secondary[0].security_groups, vec![sg]);
    d.stop();
    took
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    steady_state_and_memory().await;
    let mut times = Vec::new();
    for i in 0..5 {
        times.push(relabel_to_eni(i).await);
    }
    times.sort();
    println!(
        "label change → next ENI in the ENIConfig's subnet: p50 {:?}, max {:?} over {} nodes (includes kubectl's own run)",
        times[times.len() / 2],
        times[times.len() - 1],
        times.len()
    );
}
