//! The real `ipamd` binary on the EC2 harness with a Kubernetes API: the fake API server
//! (`kube-fake`) runs in the test, every fixture is set with `kubectl`, and ipamd's kube-rs
//! watchers talk to it through a kubeconfig, as they would to a cluster.

use std::time::{Duration, Instant};

use cloud::Ec2;
use cloud::model::EniFilter;
use ipnetwork::Ipv4Network;
use serde_json::Value;
use tokio::sync::Mutex;

mod common;

use common::cluster::{
    CNINODE_CRD, CRD, Cluster, add, add_sandbox, add_when_ready, add_with_uid,
    checkpoint_containers, checkpoint_timestamp, cluster_env, engine, env_refs, holders,
    insert_foreign_pods, metric, metrics_address, pod_yaml, pods_yaml, rss_kib, secondary_enis,
    set_checkpoint_timestamp, unix_nanos, until, until_events, until_within,
};
use common::node;

static SERIAL: Mutex<()> = Mutex::const_new(());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_networking_puts_new_enis_in_the_eniconfig_subnet_once_it_exists() {
    let _serial = SERIAL.lock().await;
    let n = node("cn-m5", "m5.large", "10.0.96.0/20").await;
    let pod_cidr: Ipv4Network = "100.64.0.0/19".parse().unwrap();
    let pod_subnet =
        harness_client::pod_subnet(&n.ec2, &n.subnet, "100.64.0.0/16", "100.64.0.0/19").await;
    let sg = harness_client::security_group(&n.ec2, &n.subnet, "pods-cn").await;
    let c = Cluster::start(&n.dir).await;
    c.kubectl(&["apply", "-f", "-"], Some(CRD)).await;
    let name = "ip-10-0-96-10.us-west-2.compute.internal";
    c.register(name, "us-west-2a", 29).await;
    // The node's CNINode exists already with a feature someone else wrote; ipamd keeps it.
    c.kubectl(&["apply", "-f", "-"], Some(CNINODE_CRD)).await;
    let cninode = format!(
        "apiVersion: vpcresources.k8s.aws/v1alpha1\nkind: CNINode\nmetadata:\n  name: {name}\nspec:\n  features:\n  - name: SecurityGroupsForPods\n"
    );
    c.kubectl(&["create", "-f", "-"], Some(&cninode)).await;

    // Custom networking by zone, and no ENIConfig for the zone yet.
    let mut env = cluster_env(&c, name);
    env.push(("AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG", "true".into()));
    env.push(("ENI_CONFIG_LABEL_DEF", "topology.kubernetes.io/zone".into()));
    env.push(("ENIPLAN_METRICS_BIND_ADDRESS", "127.0.0.1:0".into()));
    let env = env_refs(&env);
    let d = n.start(&env).await;
    let decisions = n.introspect("/v1/decisions").await;
    let k = &decisions["kubernetes"];
    assert_eq!(k["node"]["eni_config"], "us-west-2a", "{k}");
    assert_eq!(k["placement"]["placement"], "blocked", "{k}");
    let why = k["engine"]["new_enis_blocked"].as_str().unwrap();
    assert!(
        why.contains("ENIConfig \"us-west-2a\"") && why.contains("does not exist"),
        "{why}"
    );
    assert_eq!(n.introspect("/v1/eni-configs").await, "us-west-2a");
    // Custom networking: the primary carries no pods, (3 − 1) × 9 + 2 (behaviour doc §6.4).
    let text = std::fs::read_to_string(n.dir.join(ipamd::allocatable::FILE)).unwrap();
    let capacity: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(capacity["max_pods"]["max_pods"], 20, "{capacity}");
    let want = serde_json::json!([{"name": "SecurityGroupsForPods"}, {"name": "CustomNetworking", "value": "us-west-2a"}]);
    c.until_cninode_features(name, &want).await;
    let enis = |v: &Value| v["snapshot"]["enis"].as_array().unwrap().len();
    assert_eq!(enis(&n.at_rest().await), 1, "no ENI without the ENIConfig");
    let refused = add(&n, "early")
        .await
        .expect_err("the primary ENI carries no pod");
    assert!(
        refused.contains("no new ENI can be created") && refused.contains("does not exist"),
        "{refused}"
    );
    // The operator hears it from the cluster: an Event on the node and on the pod.
    let events = until_events(&c, |e| {
        e.iter()
            .any(|e| e["reason"] == "ENIConfigNotFound" && e["regarding"]["name"] == name)
            && e.iter()
                .any(|e| e["reason"] == "FailedToAssignIP" && e["regarding"]["name"] == "early")
    })
    .await;
    let node_event = events
        .iter()
        .find(|e| e["reason"] == "ENIConfigNotFound")
        .unwrap();
    assert_eq!(node_event["type"], "Warning");
    assert!(
        node_event["note"].as_str().unwrap().contains("us-west-2a"),
        "{node_event}"
    );

    // The ENIConfig appears: the next ENI goes into its subnet, with its security group.
    c.eniconfig("us-west-2a", &pod_subnet, &[&sg]).await;
    let view = until(&n, "/v1/pool", "an ENI in the pod subnet", |v| enis(v) == 2).await;
    assert_eq!(
        view["snapshot"]["enis"][0]["addresses"], 0,
        "the primary carries no pod addresses: {view}"
    );
    let described = n
        .ec2
        .describe_network_interfaces(&EniFilter {
            instance_id: Some(n.instance.clone()),
            ..EniFilter::default()
        })
        .await
        .unwrap();
    let secondary: Vec<_> = described
        .iter()
        .filter(|e| e.attachment.as_ref().is_some_and(|a| a.device_index != 0))
        .collect();
    assert_eq!(secondary.len(), 1);
    assert_eq!(secondary[0].subnet_id, pod_subnet);
    assert_eq!(secondary[0].security_groups, vec![sg.clone()]);
    let ip = add(&n, "pod-a")
        .await
        .expect("a pod address once the ENI is there");
    assert!(
        pod_cidr.contains(ip),
        "{ip} is in the pod subnet {pod_cidr}"
    );
    n.assert_agrees().await;
    d.stop();
    c.assert_within_rbac();
}

/// Two pod subnets for custom networking in the VPC of the node's subnet, each (id, CIDR):
/// 100.64.0.0/19 (A) and 100.65.0.0/19 (B).
async fn two_pod_subnets(n: &common::Node) -> [(String, Ipv4Network); 2] {
    let mut subnets = Vec::new();
    for second in ["64", "65"] {
        let cidr = format!("100.{second}.0.0/19");
        let vpc_cidr = format!("100.{second}.0.0/16");
        let id = harness_client::pod_subnet(&n.ec2, &n.subnet, &vpc_cidr, &cidr).await;
        subnets.push((id, cidr.parse().unwrap()));
    }
    subnets.try_into().unwrap()
}

/// The custom-networking environment of these tests (ENIConfig by zone, metrics on `metrics`).
fn custom_networking_env<'a>(
    c: &'a Cluster,
    name: &'a str,
    metrics: &str,
) -> Vec<(&'a str, String)> {
    let mut env = cluster_env(c, name);
    env.push(("AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG", "true".into()));
    env.push(("ENI_CONFIG_LABEL_DEF", "topology.kubernetes.io/zone".into()));
    // Two warm addresses: the first ENI serves the first pods without a second one.
    env.push(("WARM_IP_TARGET", "2".into()));
    env.push(("DISABLE_METRICS", "false".into()));
    env.push(("ENIPLAN_METRICS_BIND_ADDRESS", metrics.to_owned()));
    env
}

/// The EC2 calls `/v1/decisions` lists.
fn calls(decisions: &Value) -> Vec<String> {
    decisions["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["call"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_eniconfig_creates_no_eni_and_says_so_in_an_event_decisions_and_a_metric() {
    let _serial = SERIAL.lock().await;
    let n = node("cn-invalid-m5", "m5.large", "10.0.80.0/20").await;
    let subnet_a =
        harness_client::pod_subnet(&n.ec2, &n.subnet, "100.64.0.0/16", "100.64.0.0/19").await;
    let sg = harness_client::security_group(&n.ec2, &n.subnet, "pods-invalid").await;
    let c = Cluster::start(&n.dir).await;
    c.kubectl(&["apply", "-f", "-"], Some(CRD)).await;
    let name = "ip-10-0-80-10.us-west-2.compute.internal";
    c.register(name, "us-west-2a", 29).await;
    // The CRD's schema takes any string as the subnet (as upstream's); ipamd's validation not.
    c.eniconfig("us-west-2a", "not-a-subnet", &[&sg]).await;
    c.kubectl(&["create", "-f", "-"], Some(&pod_yaml("p0", name)))
        .await;
    let metrics = metrics_address();
    let env = custom_networking_env(&c, name, &metrics);
    let d = n.start(&env_refs(&env)).await;

    let decisions = until(&n, "/v1/decisions", "new ENIs blocked", |v| {
        v["kubernetes"]["engine"]["new_enis_blocked"].is_string()
    })
    .await;
    let k = &decisions["kubernetes"];
    let why = k["engine"]["new_enis_blocked"].as_str().unwrap();
    assert!(
        why.contains("ENIConfig \"us-west-2a\"")
            && why.contains("is invalid")
            && why.contains("not-a-subnet"),
        "{why}"
    );
    assert_eq!(k["placement"]["placement"], "blocked", "{k}");
    assert_eq!(metric(&metrics, "eniplan_new_enis_blocked"), Some(1.0));
    let refused = add(&n, "p0").await.expect_err("no ENI to serve a pod from");
    assert!(refused.contains("is invalid"), "{refused}");
    let events = until_events(&c, |e| {
        e.iter()
            .any(|e| e["reason"] == "ENIConfigInvalid" && e["regarding"]["name"] == name)
    })
    .await;
    let event = events
        .iter()
        .find(|e| e["reason"] == "ENIConfigInvalid")
        .unwrap();
    assert_eq!(event["type"], "Warning");
    assert!(
        event["note"].as_str().unwrap().contains("not-a-subnet"),
        "{event}"
    );
    n.at_rest().await;
    assert!(secondary_enis(&n).await.is_empty(), "no ENI was created");
    let asked = calls(&n.introspect("/v1/decisions").await);
    assert!(
        !asked
            .iter()
            .any(|c| c.starts_with("CreateNetworkInterface")),
        "no ENI was even asked for: {asked:?}"
    );

    // Fixed: the metric drops and the pod gets an address from the ENIConfig's subnet.
    c.eniconfig("us-west-2a", &subnet_a, &[&sg]).await;
    add_when_ready(&n, "p0").await;
    assert_eq!(metric(&metrics, "eniplan_new_enis_blocked"), Some(0.0));
    let enis = secondary_enis(&n).await;
    assert_eq!(enis.len(), 1, "{enis:?}");
    assert_eq!(enis[0].subnet_id, subnet_a);
    n.assert_agrees().await;
    d.stop();
    c.assert_within_rbac();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_eniconfig_applies_to_new_enis_only_and_leaves_enis_with_pods_alone() {
    let _serial = SERIAL.lock().await;
    let n = node("cn-change-m5", "m5.large", "10.0.64.0/20").await;
    let [(subnet_a, cidr_a), (subnet_b, cidr_b)] = two_pod_subnets(&n).await;
    let sg = harness_client::security_group(&n.ec2, &n.subnet, "pods-change").await;
    let c = Cluster::start(&n.dir).await;
    c.kubectl(&["apply", "-f", "-"], Some(CRD)).await;
    let name = "ip-10-0-64-10.us-west-2.compute.internal";
    c.register(name, "us-west-2a", 29).await;
    c.eniconfig("us-west-2a", &subnet_a, &[&sg]).await;
    let pods: Vec<String> = (0..11).map(|i| format!("p{i}")).collect();
    let pods: Vec<&str> = pods.iter().map(String::as_str).collect();
    c.kubectl(&["create", "-f", "-"], Some(&pods_yaml(&pods, name)))
        .await;
    let metrics = metrics_address();
    let env = custom_networking_env(&c, name, &metrics);
    let d = n.start(&env_refs(&env)).await;

    // The first ENI in subnet A, the first pods on it.
    let first_ips = [
        add_when_ready(&n, "p0").await,
        add_when_ready(&n, "p1").await,
    ];
    n.assert_agrees().await;
    let first = secondary_enis(&n).await;
    assert_eq!(first.len(), 1, "{first:?}");
    assert_eq!(first[0].subnet_id, subnet_a);
    for ip in first_ips {
        assert!(first[0].secondary_ips.contains(&ip), "{ip} on {first:?}");
        assert!(cidr_a.contains(ip), "{ip} in subnet A {cidr_a}");
    }

    // The ENIConfig now names subnet B: once ipamd has it, more pods make the pool grow.
    c.eniconfig("us-west-2a", &subnet_b, &[&sg]).await;
    until(&n, "/v1/decisions", "subnet B as the next ENI's", |v| {
        v["kubernetes"]["placement"]["subnet"] == subnet_b.as_str()
    })
    .await;
    for p in &pods[2..] {
        add_when_ready(&n, p).await;
    }
    let view = n.assert_agrees().await;
    let after = secondary_enis(&n).await;
    assert_eq!(after.len(), 2, "{after:?}");
    // The first ENI and its pods stay where they were: no churn.
    assert_eq!(after[0].id, first[0].id, "the first ENI is still attached");
    assert_eq!(after[0].subnet_id, subnet_a);
    assert!(
        first[0]
            .secondary_ips
            .iter()
            .all(|ip| after[0].secondary_ips.contains(ip)),
        "the first ENI kept its addresses: {first:?} → {after:?}"
    );
    let held = holders(&view);
    assert_eq!(held.len(), pods.len(), "{held:?}");
    assert_eq!(held["p0"], first_ips[0].to_string());
    assert_eq!(held["p1"], first_ips[1].to_string());
    let asked = calls(&n.introspect("/v1/decisions").await);
    assert!(
        !asked.iter().any(|c| c.contains("DetachNetworkInterface")),
        "no ENI was detached: {asked:?}"
    );
    // The new ENI is in the changed ENIConfig's subnet, and pods got addresses from it.
    assert_eq!(after[1].subnet_id, subnet_b);
    assert_eq!(after[1].security_groups, vec![sg.clone()]);
    assert!(after[0].secondary_ips.iter().all(|ip| cidr_a.contains(*ip)));
    assert!(after[1].secondary_ips.iter().all(|ip| cidr_b.contains(*ip)));
    let in_b = held
        .values()
        .filter(|ip| cidr_b.contains(ip.parse().unwrap()))
        .count();
    assert!(in_b >= 1, "growth served pods from subnet B: {held:?}");
    d.stop();
    c.assert_within_rbac();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefix_delegation_sizes_the_pool_for_the_kubelets_max_pods() {
    let _serial = SERIAL.lock().await;
    let n = node("pd110-m5", "m5.large", "10.0.112.0/20").await;
    let c = Cluster::start(&n.dir).await;
    let name = "ip-10-0-112-10.us-west-2.compute.internal";
    c.register(name, "us-west-2a", 110).await;
    let mut env = cluster_env(&c, name);
    env.push(("ENABLE_PREFIX_DELEGATION", "true".into()));
    env.push(("WARM_PREFIX_TARGET", "1".into()));
    let env = env_refs(&env);
    let d = n.start(&env).await;
    let decisions = n.introspect("/v1/decisions").await;
    let engine = &decisions["kubernetes"]["engine"];
    assert_eq!(engine["max_pods"], 110, "{engine}");
    assert_eq!(engine["max_pods_from"], "node status.capacity.pods");
    // m5.large's ENI-limited max pods is 29: a pool sized for it would stop at two prefixes.
    for i in 0..60 {
        let id = format!("p{i}");
        let deadline = Instant::now() + Duration::from_secs(30);
        while add(&n, &id).await.is_err() {
            assert!(Instant::now() < deadline, "pod {i} got no address");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let view = n.assert_agrees().await;
    assert!(
        view["snapshot"]["prefixes"].as_u64().unwrap() >= 4,
        "{}",
        view["snapshot"]
    );
    assert!(
        c.fake.requests().contains_key("watch nodes"),
        "{:?}",
        c.fake.requests()
    );
    d.stop();
    c.assert_within_rbac();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_deleted_while_ipamd_is_stopped_loses_its_address_after_restart() {
    let _serial = SERIAL.lock().await;
    let n = node("gone-m5", "m5.large", "10.0.128.0/20").await;
    let c = Cluster::start(&n.dir).await;
    let name = "ip-10-0-128-10.us-west-2.compute.internal";
    c.register(name, "us-west-2a", 29).await;
    // A pod on another node with a deleted pod's name must not keep it alive.
    c.register("other-node", "us-west-2a", 29).await;
    for p in ["a", "b", "c"] {
        c.kubectl(&["create", "-f", "-"], Some(&pod_yaml(p, name)))
            .await;
    }
    let mut env = cluster_env(&c, name);
    env.push(("ENIPLAN_POD_RELEASE_GRACE_SECS", "2".into()));
    let env = env_refs(&env);
    let d = n.start(&env).await;
    let mut ips = std::collections::BTreeMap::new();
    for p in ["a", "b", "c"] {
        ips.insert(p.to_owned(), add(&n, p).await.unwrap().to_string());
    }
    d.kill9();

    c.kubectl(&["delete", "pod", "b"], None).await;
    c.kubectl(&["create", "-f", "-"], Some(&pod_yaml("b", "other-node")))
        .await;
    let d = n.start(&env).await;
    let view = until(&n, "/v1/pool", "b's address released", |v| {
        !holders(v).contains_key("b")
    })
    .await;
    let held = holders(&view);
    assert_eq!(
        held.get("a"),
        ips.get("a"),
        "a keeps its address through the restart"
    );
    assert_eq!(
        held.get("c"),
        ips.get("c"),
        "c keeps its address through the restart"
    );
    let ckpt: Value =
        serde_json::from_str(&std::fs::read_to_string(n.dir.join("ipam.json")).unwrap()).unwrap();
    let kept: Vec<&str> = ckpt["allocations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["containerID"].as_str().unwrap())
        .collect();
    assert_eq!(kept, ["a", "c"], "the checkpoint no longer holds b");
    // Confirmed with a GET before release; steady state is otherwise watches only.
    let requests = c.fake.requests();
    assert!(
        requests.get("get pods").is_some_and(|&n| n >= 1),
        "{requests:?}"
    );
    n.assert_agrees().await;
    d.stop();
    c.assert_within_rbac();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_recreated_under_its_name_while_ipamd_is_stopped_frees_the_old_address_only() {
    let _serial = SERIAL.lock().await;
    let n = node("recreated-m5", "m5.large", "10.0.48.0/20").await;
    let c = Cluster::start(&n.dir).await;
    let name = "ip-10-0-48-10.us-west-2.compute.internal";
    c.register(name, "us-west-2a", 29).await;
    c.kubectl(&["create", "-f", "-"], Some(&pods_yaml(&["a", "d"], name)))
        .await;
    let mut env = cluster_env(&c, name);
    env.push(("ENIPLAN_POD_RELEASE_GRACE_SECS", "2".into()));
    let env = env_refs(&env);
    let d = n.start(&env).await;
    let a = add(&n, "a").await.unwrap().to_string();
    let old_d = add(&n, "d").await.unwrap().to_string();
    d.kill9();

    // d is deleted and created again under its name on this node (a StatefulSet's pod). The
    // checkpoint has no UID, only the old ADD's time: it is made to look ten minutes old, as if
    // the first d had run that long, beyond the one-minute margin for clock skew.
    c.kubectl(&["delete", "pod", "d"], None).await;
    c.kubectl(&["create", "-f", "-"], Some(&pod_yaml("d", name)))
        .await;
    let path = n.dir.join("ipam.json");
    let old_at = checkpoint_timestamp(&path, "d");
    set_checkpoint_timestamp(&path, "d", old_at - 600_000_000_000);

    let d = n.start(&env).await;
    // The new d's sandbox is added as soon as ipamd serves, while the old d's entry is held.
    let new_d = add_sandbox(&n, "d-new", "d").await.unwrap().to_string();
    assert_ne!(new_d, old_d, "the old d's address is still held");
    let view = until(&n, "/v1/pool", "the old d's address released", |v| {
        !holders(v).contains_key("d")
    })
    .await;
    let held = holders(&view);
    assert_eq!(held.get("a"), Some(&a), "a keeps its address");
    assert_eq!(held.get("d-new"), Some(&new_d), "the new d keeps its own");
    assert_eq!(checkpoint_containers(&path), ["a", "d-new"]);

    // The new d's entry outlives its own grace period: once it is older than that, a is
    // deleted (no DEL), and the sweep that releases a has looked at the new d's entry too.
    let grace_over = checkpoint_timestamp(&path, "d-new") + 2_000_000_000;
    let deadline = Instant::now() + Duration::from_secs(10);
    while unix_nanos() < grace_over {
        assert!(
            Instant::now() < deadline,
            "the clock never passed the grace period"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    c.kubectl(&["delete", "pod", "a"], None).await;
    let view = until(&n, "/v1/pool", "a's address released", |v| {
        !holders(v).contains_key("a")
    })
    .await;
    let held = holders(&view);
    assert_eq!(
        held.get("d-new"),
        Some(&new_d),
        "the new d still holds its address"
    );
    assert_eq!(held.len(), 1, "{held:?}");
    assert_eq!(checkpoint_containers(&path), ["d-new"]);
    n.assert_agrees().await;
    d.stop();
    c.assert_within_rbac();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipamd_converges_through_an_api_outage_dropped_watches_and_410() {
    let _serial = SERIAL.lock().await;
    let n = node("faults-m5", "m5.large", "10.0.144.0/20").await;
    let c = Cluster::start(&n.dir).await;
    let name = "ip-10-0-144-10.us-west-2.compute.internal";
    c.register(name, "us-west-2a", 110).await;
    let mut env = cluster_env(&c, name);
    env.push(("ENABLE_PREFIX_DELEGATION", "true".into()));
    env.push(("WARM_PREFIX_TARGET", "1".into()));
    let env = env_refs(&env);
    // The pods exist in the API (ipamd would release an address held for none after the grace
    // period).
    c.kubectl(
        &["create", "-f", "-"],
        Some(&pods_yaml(&["before", "during", "after"], name)),
    )
    .await;

    // Down at start: ipamd serves with the catalogue's max pods, then learns the node's.
    c.fake.down().await;
    let d = n.start(&env).await;
    assert_eq!(
        engine(&n).await["max_pods"],
        29,
        "the ENI-limited value while the API is down"
    );
    let before = add(&n, "before")
        .await
        .expect("pods are served while the API is down");
    c.fake.up().await.unwrap();
    until(
        &n,
        "/v1/decisions",
        "the node's max pods once the API answers",
        |v| v["kubernetes"]["engine"]["max_pods"] == 110,
    )
    .await;

    // Down while the watches are open: ipamd sees them fail, keeps serving pods from the
    // checkpoint and EC2, and a change made as the API comes back arrives.
    until(&n, "/v1/decisions", "the watches healthy", |v| {
        v["kubernetes"]["last_error"].is_null()
    })
    .await;
    c.fake.down().await;
    until(&n, "/v1/decisions", "the outage seen by the watches", |v| {
        v["kubernetes"]["last_error"].is_string()
    })
    .await;
    let during = add(&n, "during")
        .await
        .expect("pods are served while the API is down");
    assert_eq!(
        engine(&n).await["max_pods"],
        110,
        "the last facts are kept through the outage"
    );
    c.fake.up().await.unwrap();
    c.set_max_pods(name, 87).await;
    // The watcher's back-off may have grown to its 30 s cap during the outage at start.
    until_within(
        &n,
        "/v1/decisions",
        "the change made as the API came back",
        Duration::from_mins(2),
        |v| v["kubernetes"]["engine"]["max_pods"] == 87,
    )
    .await;
    let view = n.assert_agrees().await;
    let held = holders(&view);
    assert_eq!(held.get("before"), Some(&before.to_string()));
    assert_eq!(held.get("during"), Some(&during.to_string()));
    assert_eq!(held.len(), 2, "{held:?}");

    // A watch dropped mid-stream resumes; a change made meanwhile still arrives.
    c.fake.drop_watches();
    c.set_max_pods(name, 58).await;
    until(
        &n,
        "/v1/decisions",
        "the change made while the watch was down",
        |v| v["kubernetes"]["engine"]["max_pods"] == 58,
    )
    .await;

    // 410 Gone: the history is compacted and the streams dropped; the watcher relists.
    let relists = c.fake.requests().get("list nodes").copied().unwrap_or(0);
    c.fake.compact();
    c.fake.expire_next_watches(3);
    c.fake.drop_watches();
    c.kubectl(&["cordon", name], None).await;
    until(&n, "/v1/decisions", "the cordon after a relist", |v| {
        v["kubernetes"]["engine"]["schedulable"] == false
    })
    .await;
    assert!(
        c.fake.requests()["list nodes"] > relists,
        "410 made the watcher list again"
    );

    // Nothing was lost or handed out twice.
    let after = add(&n, "after").await.expect("still serving");
    let view = n.assert_agrees().await;
    let held = holders(&view);
    assert_eq!(held.get("before"), Some(&before.to_string()));
    assert_eq!(held.get("during"), Some(&during.to_string()));
    assert_eq!(held.get("after"), Some(&after.to_string()));
    let distinct: std::collections::BTreeSet<_> = held.values().collect();
    assert_eq!(distinct.len(), 3, "three pods, three addresses: {held:?}");
    d.stop();
    c.assert_within_rbac();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cordoned_node_hands_its_warm_addresses_back_and_warms_again_when_uncordoned() {
    let _serial = SERIAL.lock().await;
    let n = node("drain-m5", "m5.large", "10.0.160.0/20").await;
    let c = Cluster::start(&n.dir).await;
    let name = "ip-10-0-160-10.us-west-2.compute.internal";
    c.register(name, "us-west-2a", 29).await;
    let mut env = cluster_env(&c, name);
    env.push(("ENIPLAN_RELEASE_WARM_WHEN_UNSCHEDULABLE", "true".into()));
    let env = env_refs(&env);
    let d = n.start(&env).await;
    for p in ["a", "b"] {
        add(&n, p).await.unwrap();
    }
    let total = |v: &Value| v["snapshot"]["total"].as_u64().unwrap();
    let warm = total(&n.assert_agrees().await);
    assert!(warm >= 9, "a warm pool first: {warm}");

    c.kubectl(&["cordon", name], None).await;
    let view = until(&n, "/v1/pool", "only the pods' addresses held", |v| {
        total(v) == 2
    })
    .await;
    assert_eq!(holders(&view).len(), 2, "the pods keep theirs");
    let decisions = n.introspect("/v1/decisions").await;
    let said = decisions["decisions"].as_array().unwrap().iter().any(|d| {
        d["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("ENIPLAN_RELEASE_WARM_WHEN_UNSCHEDULABLE")
    });
    assert!(said, "/v1/decisions says why: {decisions}");
    n.assert_agrees().await;
    let refused = add(&n, "late")
        .await
        .expect_err("no new address while draining");
    assert!(refused.contains("cordoned or draining"), "{refused}");

    c.kubectl(&["uncordon", name], None).await;
    until(&n, "/v1/pool", "warm again", |v| total(v) >= 9).await;
    add(&n, "late")
        .await
        .expect("a pod address once uncordoned");
    n.assert_agrees().await;
    d.stop();
    c.assert_within_rbac();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_pods_on_other_nodes_cost_ipamd_no_memory_and_no_requests() {
    let _serial = SERIAL.lock().await;
    let n = node("foreign-m5", "m5.large", "10.0.176.0/20").await;
    let c = Cluster::start(&n.dir).await;
    let name = "ip-10-0-176-10.us-west-2.compute.internal";
    c.register(name, "us-west-2a", 29).await;
    c.kubectl(&["create", "-f", "-"], Some(&pod_yaml("mine", name)))
        .await;
    let env = cluster_env(&c, name);
    let env = env_refs(&env);
    let d = n.start(&env).await;
    n.at_rest().await;
    // One node change first, so both readings follow the same work (a watch event, a tick).
    c.kubectl(&["cordon", name], None).await;
    until(&n, "/v1/decisions", "the cordon", |v| {
        v["kubernetes"]["engine"]["schedulable"] == false
    })
    .await;
    let pid = d.child.id();
    let before = rss_kib(pid);
    let base = c.fake.requests();

    // 10,000 pods on 100 other nodes.
    insert_foreign_pods(&c.fake, 10_000);
    assert_eq!(c.fake.list("", "v1", "pods").len(), 10_001);
    // A change on this node still arrives (the watch is live), then memory is read.
    c.kubectl(&["uncordon", name], None).await;
    until(&n, "/v1/decisions", "the uncordon", |v| {
        v["kubernetes"]["engine"]["schedulable"] == true
    })
    .await;
    let after = rss_kib(pid);
    let grown = after.saturating_sub(before);
    println!(
        "ipamd RSS: {before} KiB with 1 pod in the cluster, {after} KiB with 10,001 (grew {grown} KiB)"
    );
    assert!(
        grown < 1024,
        "RSS grew {grown} KiB with 10,000 foreign pods ({before} → {after} KiB)"
    );
    let decisions = n.introspect("/v1/decisions").await;
    assert_eq!(decisions["kubernetes"]["node"]["name"], name);
    // ipamd's watches delivered the cordon; it sent no request at all meanwhile (no polling).
    let requests = c.fake.requests();
    let by_ipamd: Vec<_> = requests
        .iter()
        .filter(|(k, n)| k.starts_with("as eniplan-ipamd") && base.get(*k) != Some(n))
        .collect();
    assert!(by_ipamd.is_empty(), "ipamd sent {by_ipamd:?}");
    d.stop();
    c.assert_within_rbac();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttled_and_slow_api_is_waited_out_while_pods_are_served() {
    let _serial = SERIAL.lock().await;
    let n = node("slow-m5", "m5.large", "10.0.240.0/20").await;
    let c = Cluster::start(&n.dir).await;
    let name = "ip-10-0-240-10.us-west-2.compute.internal";
    c.register(name, "us-west-2a", 29).await;
    let env = cluster_env(&c, name);
    let env = env_refs(&env);
    let d = n.start(&env).await;
    assert_eq!(engine(&n).await["max_pods"], 29);

    // Every answer 300 ms late, and ipamd's next two requests refused with 429.
    c.fake.delay(Duration::from_millis(300));
    c.fake.throttle(2);
    c.fake.drop_watches();
    // A real pod (one only ipamd knew of would be released as gone after the grace period).
    c.kubectl(&["create", "-f", "-"], Some(&pod_yaml("meanwhile", name)))
        .await;
    add(&n, "meanwhile")
        .await
        .expect("pods are served while the API throttles");
    assert!(
        c.fake
            .until_requests("throttled", 2, Duration::from_mins(1))
            .await,
        "ipamd's watch never came back: {:?}",
        c.fake.requests()
    );
    c.set_max_pods(name, 58).await;
    until(
        &n,
        "/v1/decisions",
        "the change after the throttling",
        |v| v["kubernetes"]["engine"]["max_pods"] == 58,
    )
    .await;
    c.fake.delay(Duration::ZERO);
    let view = n.assert_agrees().await;
    assert_eq!(holders(&view).len(), 1, "one pod, one address");
    d.stop();
    c.assert_within_rbac();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_service_account_token_is_picked_up_without_a_restart() {
    let _serial = SERIAL.lock().await;
    let n = node("token-m5", "m5.large", "10.0.224.0/20").await;
    let c = Cluster::start(&n.dir).await;
    let name = "ip-10-0-224-10.us-west-2.compute.internal";
    c.register(name, "us-west-2a", 29).await;
    let env = cluster_env(&c, name);
    let env = env_refs(&env);
    let d = n.start(&env).await;
    assert_eq!(engine(&n).await["max_pods"], 29);

    // The old token is refused and the watches end; ipamd's next requests get 401.
    c.rotate_token();
    assert!(
        c.fake
            .until_requests("unauthorized", 1, Duration::from_mins(1))
            .await,
        "ipamd never came back with the old token: {:?}",
        c.fake.requests()
    );
    // A real pod: it must keep its address although ipamd cannot see it while refused (one
    // only ipamd knew of would be released as gone after the grace period).
    c.kubectl(&["create", "-f", "-"], Some(&pod_yaml("meanwhile", name)))
        .await;
    add(&n, "meanwhile")
        .await
        .expect("pods are served while the token is refused");
    // A change made after the rotation can only arrive through a request with the new token
    // (kube-rs re-reads the token file at least every 50 s, then the watcher's back-off).
    c.set_max_pods(name, 58).await;
    until_within(
        &n,
        "/v1/decisions",
        "the change seen with the new token",
        Duration::from_mins(3),
        |v| v["kubernetes"]["engine"]["max_pods"] == 58,
    )
    .await;
    let view = n.assert_agrees().await;
    assert_eq!(holders(&view).len(), 1, "one pod, one address");
    d.stop();
    c.assert_within_rbac();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enable_pod_eni_asks_for_a_trunk_through_the_cninode_on_trunking_types_only() {
    let _serial = SERIAL.lock().await;
    let n = node("sgp-m5", "m5.large", "10.0.192.0/20").await;
    let c = Cluster::start(&n.dir).await;
    c.kubectl(&["apply", "-f", "-"], Some(CNINODE_CRD)).await;
    let name = "ip-10-0-192-10.us-west-2.compute.internal";
    c.register(name, "us-west-2a", 29).await;
    let mut env = cluster_env(&c, name);
    env.push(("ENABLE_POD_ENI", "true".into()));
    let env = env_refs(&env);
    let d = n.start(&env).await;
    // No CNINode before: ipamd creates it with the feature (value "", as the reference).
    let want = serde_json::json!([{"name": "SecurityGroupsForPods", "value": ""}]);
    c.until_cninode_features(name, &want).await;
    // The trunk's slot stays free: 2 ENIs for pods, 2 × 9 + 2 pods (behaviour doc §7.2).
    let text = std::fs::read_to_string(n.dir.join(ipamd::allocatable::FILE)).unwrap();
    let capacity: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(capacity["max_pods"]["max_pods"], 20, "{capacity}");
    d.stop();
    c.assert_within_rbac();

    // A type that cannot carry a trunk: a warning, and nothing asked of the controller.
    let n = node("sgp-t3", "t3.medium", "10.0.208.0/20").await;
    let name = "ip-10-0-208-10.us-west-2.compute.internal";
    c.register(name, "us-west-2a", 17).await;
    let mut env = cluster_env(&c, name);
    env.push(("ENABLE_POD_ENI", "true".into()));
    let env = env_refs(&env);
    let d = n.start(&env).await;
    assert!(
        d.log_text().contains("cannot carry a trunk ENI"),
        "{}",
        d.log_text()
    );
    assert_eq!(c.cninode_features(name).await, Value::Null, "no CNINode");
    d.stop();
}

/// libfaketime (Debian's `faketime`, which scripts/test installs).
fn libfaketime() -> String {
    let found = std::fs::read_dir("/usr/lib")
        .unwrap()
        .flatten()
        .map(|d| d.path().join("faketime/libfaketime.so.1"))
        .find(|p| p.exists());
    let lib = found.expect("libfaketime is missing: apt-get install faketime");
    lib.display().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_of_the_nodes_clock_frees_no_running_pods_address() {
    let _serial = SERIAL.lock().await;
    let n = node("clock-m5", "m5.large", "10.0.160.0/20").await;
    let c = Cluster::start(&n.dir).await;
    let name = "ip-10-0-160-10.us-west-2.compute.internal";
    c.register(name, "us-west-2a", 29).await;
    c.kubectl(
        &["create", "-f", "-"],
        Some(&pods_yaml(&["a", "gone-1", "gone-2"], name)),
    )
    .await;
    // ipamd's wall clock, through libfaketime, steps as this file says; its monotonic clock
    // (every timer) is left alone, as a real step leaves it.
    let clock = n.dir.join("faketime");
    std::fs::write(&clock, "+0\n").unwrap();
    let mut env = cluster_env(&c, name);
    env.push(("ENIPLAN_POD_RELEASE_GRACE_SECS", "2".into()));
    env.push(("LD_PRELOAD", libfaketime()));
    env.push(("FAKETIME_TIMESTAMP_FILE", clock.display().to_string()));
    env.push(("FAKETIME_NO_CACHE", "1".into()));
    env.push(("FAKETIME_DONT_FAKE_MONOTONIC", "1".into()));
    let env = env_refs(&env);
    let d = n.start(&env).await;
    let mut ips = std::collections::BTreeMap::new();
    for p in ["a", "gone-1", "gone-2"] {
        ips.insert(p.to_owned(), add_with_uid(&c, &n, p).await.to_string());
    }

    // The node's clock steps back five minutes; then pod b is created (API server clock) and
    // added: its entry's time is five minutes before its pod's creation.
    std::fs::write(&clock, "-5m\n").unwrap();
    c.kubectl(&["create", "-f", "-"], Some(&pod_yaml("b", name)))
        .await;
    ips.insert("b".into(), add_with_uid(&c, &n, "b").await.to_string());
    let path = n.dir.join("ipam.json");
    assert!(
        checkpoint_timestamp(&path, "b") < unix_nanos() - 240_000_000_000,
        "the step took effect"
    );
    let ckpt: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let uids: Vec<&str> = ckpt["allocations"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["metadata"]["k8sPodUID"].as_str())
        .collect();
    assert_eq!(uids.len(), 4, "each entry keeps its pod's UID: {ckpt}");
    // A pod deleted without a DEL is released: a sweep has looked at b's entry, older than
    // the grace period, and kept it.
    c.kubectl(&["delete", "pod", "gone-1"], None).await;
    let view = until(&n, "/v1/pool", "gone-1's address released", |v| {
        !holders(v).contains_key("gone-1")
    })
    .await;
    let held = holders(&view);
    for p in ["a", "b", "gone-2"] {
        assert_eq!(held.get(p), ips.get(p), "{p} keeps its address: {held:?}");
    }

    // Stepped forward again (ten minutes): every entry looks older, nothing else changes.
    std::fs::write(&clock, "+5m\n").unwrap();
    c.kubectl(&["delete", "pod", "gone-2"], None).await;
    let view = until(&n, "/v1/pool", "gone-2's address released", |v| {
        !holders(v).contains_key("gone-2")
    })
    .await;
    let held = holders(&view);
    assert_eq!(held.len(), 2, "{held:?}");
    for p in ["a", "b"] {
        assert_eq!(held.get(p), ips.get(p), "{p} keeps its address: {held:?}");
    }
    n.assert_agrees().await;
    d.stop();
    c.assert_within_rbac();
}
