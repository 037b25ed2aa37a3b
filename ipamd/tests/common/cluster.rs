//! The Kubernetes side of the daemon's end-to-end tests and benches: the fake API server, set up
//! with kubectl as a cluster would be, and ipamd pointed at it under its ClusterRole.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use ipamd::client::{add_request, connect};
use ipamd::rpc::AddNetworkRequest;
use kube_fake::FakeApi;
use serde_json::Value;

use super::Node;

pub const CRD: &str = include_str!("../../../deploy/crds/eniconfigs.yaml");
pub const CNINODE_CRD: &str = include_str!("../../../harness/kube/crds/cninodes.yaml");
pub const RBAC: &str = include_str!("../../../deploy/rbac.yaml");

pub struct Cluster {
    pub fake: FakeApi,
    /// The admin's (kubectl's).
    pub kubeconfig: PathBuf,
    /// ipamd's: the service account of `deploy/rbac.yaml`, held to its ClusterRole, its token
    /// read from [`Cluster::token_file`] as in a pod.
    pub ipamd_kubeconfig: PathBuf,
    /// The service account's token, as the kubelet projects it into the pod.
    pub token_file: PathBuf,
}

impl Cluster {
    pub async fn start(dir: &std::path::Path) -> Cluster {
        let fake = FakeApi::start().await.expect("fake API server");
        let kubeconfig = dir.join("kubeconfig");
        fake.write_kubeconfig(&kubeconfig).unwrap();
        let token = fake.service_account_token("kube-system", "eniplan-ipamd");
        let token_file = dir.join("ipamd.token");
        std::fs::write(&token_file, token).unwrap();
        let ipamd_kubeconfig = dir.join("ipamd.kubeconfig");
        std::fs::write(
            &ipamd_kubeconfig,
            fake.kubeconfig_with_token_file(&token_file),
        )
        .unwrap();
        let c = Cluster {
            fake,
            kubeconfig,
            ipamd_kubeconfig,
            token_file,
        };
        c.kubectl(&["apply", "-f", "-"], Some(RBAC)).await;
        c
    }

    /// Rotates ipamd's token: the API server refuses the old one from now on, and the new one
    /// replaces the file atomically, as the kubelet does (a symlink swap there, a rename here).
    pub fn rotate_token(&self) {
        let token = self
            .fake
            .rotate_service_account_token("kube-system", "eniplan-ipamd");
        let tmp = self.token_file.with_extension("new");
        std::fs::write(&tmp, token).unwrap();
        std::fs::rename(&tmp, &self.token_file).unwrap();
    }

    /// Waits (deadline 60 s) until the node's CNINode exists with exactly these features.
    pub async fn until_cninode_features(&self, node: &str, want: &Value) {
        let deadline = Instant::now() + Duration::from_mins(1);
        loop {
            let features = self.cninode_features(node).await;
            if features == *want {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "CNINode features: {features}, want {want}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The node's CNINode features (`Null` while it does not exist).
    pub async fn cninode_features(&self, node: &str) -> Value {
        let (ok, out, err) =
            kube_fake::kubectl(&self.kubeconfig, &["get", "cnd", node, "-o", "json"], None).await;
        if !ok {
            assert!(err.contains("NotFound"), "kubectl get cnd {node}: {err}");
            return Value::Null;
        }
        serde_json::from_str::<Value>(&out).unwrap()["spec"]["features"].clone()
    }

    /// ipamd sent nothing its ClusterRole does not allow.
    pub fn assert_within_rbac(&self) {
        let requests = self.fake.requests();
        assert!(
            !requests.contains_key("forbidden"),
            "ipamd was refused: {requests:?}"
        );
        assert!(
            requests.contains_key("authenticated eniplan-ipamd"),
            "ipamd authenticated as its service account: {requests:?}"
        );
    }

    /// Runs kubectl with `stdin`; panics with its error output when it fails.
    pub async fn kubectl(&self, args: &[&str], stdin: Option<&str>) -> String {
        let (ok, out, err) = kube_fake::kubectl(&self.kubeconfig, args, stdin).await;
        assert!(ok, "kubectl {args:?}: {err}");
        out
    }

    /// Registers a node the way the kubelet does: the object, then its status.
    pub async fn register(&self, name: &str, zone: &str, max_pods: u32) {
        let node = format!(
            "apiVersion: v1\nkind: Node\nmetadata:\n  name: {name}\n  labels:\n    topology.kubernetes.io/zone: {zone}\n"
        );
        self.kubectl(&["create", "-f", "-"], Some(&node)).await;
        self.set_max_pods(name, max_pods).await;
    }

    /// Sets the node's `status.capacity.pods` (and allocatable), as the kubelet reports it.
    pub async fn set_max_pods(&self, name: &str, max_pods: u32) {
        let status = format!(
            r#"{{"status":{{"capacity":{{"pods":"{max_pods}"}},"allocatable":{{"pods":"{max_pods}"}}}}}}"#
        );
        let patch = [
            "patch",
            "node",
            name,
            "--subresource=status",
            "--type=merge",
            "-p",
            &status,
        ];
        self.kubectl(&patch, None).await;
    }

    pub async fn eniconfig(&self, name: &str, subnet: &str, groups: &[&str]) {
        let groups = groups.join(", ");
        let doc = format!(
            "apiVersion: crd.k8s.amazonaws.com/v1alpha1\nkind: ENIConfig\nmetadata:\n  name: {name}\nspec:\n  subnet: {subnet}\n  securityGroups: [{groups}]\n"
        );
        self.kubectl(&["apply", "-f", "-"], Some(&doc)).await;
    }
}

/// The environment that points ipamd at the fake cluster as node `name`.
pub fn cluster_env<'a>(c: &'a Cluster, name: &'a str) -> Vec<(&'a str, String)> {
    vec![
        ("KUBECONFIG", c.ipamd_kubeconfig.display().to_string()),
        ("MY_NODE_NAME", name.to_owned()),
    ]
}

/// Polls an introspection path until `ok` holds (deadline 60 s); returns the last answer.
pub async fn until(n: &Node, path: &str, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
    until_within(n, path, what, Duration::from_mins(1), ok).await
}

/// [`until`] with its own deadline.
pub async fn until_within(
    n: &Node,
    path: &str,
    what: &str,
    within: Duration,
    ok: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let v = n.introspect(path).await;
        if ok(&v) {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: never happened; last {path}: {v}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits (deadline 60 s) until the events.k8s.io Events satisfy `ok`; returns them.
pub async fn until_events(c: &Cluster, ok: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_mins(1);
    loop {
        let out = c
            .kubectl(&["get", "events.events.k8s.io", "-A", "-o", "json"], None)
            .await;
        let list: Value = serde_json::from_str(&out).unwrap();
        let items = list["items"].as_array().cloned().unwrap_or_default();
        if ok(&items) {
            return items;
        }
        assert!(
            Instant::now() < deadline,
            "the expected Events never came: {items:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A pod ADD through the socket: its address, or ipamd's reason.
pub async fn add(n: &Node, id: &str) -> Result<Ipv4Addr, String> {
    add_sandbox(n, id, id).await
}

/// [`add`] for pod `pod` (namespace `default`) with its own container id: a pod's new
/// sandbox, or a new pod of an old pod's name.
pub async fn add_sandbox(n: &Node, container_id: &str, pod: &str) -> Result<Ipv4Addr, String> {
    let mut client = connect(&n.socket()).await.unwrap();
    match client
        .add_network(add_request(container_id, "default", pod))
        .await
    {
        Ok(r) => Ok(r.into_inner().ip_allocation_metadata[0]
            .ipv4_addr
            .parse()
            .unwrap()),
        Err(status) => Err(status.message().to_owned()),
    }
}

/// A pod ADD as eniplan-cni sends it, with the pod's UID (read from the API, as the runtime
/// passes it in `K8S_POD_UID`); the container id is the pod's name. Retried (deadline 30 s)
/// while the pool grows for it.
pub async fn add_with_uid(c: &Cluster, n: &Node, pod: &str) -> Ipv4Addr {
    let uid = c
        .kubectl(&["get", "pod", pod, "-o", "jsonpath={.metadata.uid}"], None)
        .await;
    assert!(!uid.is_empty(), "pod {pod} has no UID");
    let mut request = add_request(pod, "default", pod);
    request.k8s_pod_uid = uid;
    until_served(n, request).await
}

/// [`add`], retried (deadline 30 s) while the pool grows for it, as the kubelet retries.
pub async fn add_when_ready(n: &Node, id: &str) -> Ipv4Addr {
    until_served(n, add_request(id, "default", id)).await
}

/// Sends `request` until ipamd gives an address (deadline 30 s), as the kubelet retries.
async fn until_served(n: &Node, request: AddNetworkRequest) -> Ipv4Addr {
    let mut client = connect(&n.socket()).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match client.add_network(request.clone()).await {
            Ok(r) => {
                return r.into_inner().ip_allocation_metadata[0]
                    .ipv4_addr
                    .parse()
                    .unwrap();
            }
            Err(s) => assert!(
                Instant::now() < deadline,
                "{} got no address: {}",
                request.k8s_pod_name,
                s.message()
            ),
        }
        tokio::time::sleep(Duration::from_millis(50)).await; // the kubelet's retry, bounded above
    }
}

/// Several pods on `node` in one document stream (one `kubectl apply`).
pub fn pods_yaml(names: &[&str], node: &str) -> String {
    names
        .iter()
        .map(|p| pod_yaml(p, node))
        .collect::<Vec<_>>()
        .join("---\n")
}

pub fn pod_yaml(name: &str, node: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: default\nspec:\n  nodeName: {node}\n  containers:\n  - name: c\n    image: pause\n"
    )
}

/// The pods holding addresses, by container id, from `/v1/pool`.
pub fn holders(view: &Value) -> std::collections::BTreeMap<String, String> {
    view["addresses"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| {
            let id = a["pod"]["container_id"].as_str()?;
            Some((id.to_owned(), a["ip"].as_str()?.to_owned()))
        })
        .collect()
}

/// The engine's inputs as `/v1/decisions` shows them.
pub async fn engine(n: &Node) -> Value {
    n.introspect("/v1/decisions").await["kubernetes"]["engine"].clone()
}

/// ipamd's resident set, from /proc.
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

/// `n` pods on 100 nodes that are not ipamd's, through the fake's store (the same admission as
/// its HTTP create): kubectl's client-side rate limit would take minutes for 10,000 POSTs.
pub fn insert_foreign_pods(fake: &FakeApi, n: usize) {
    for i in 0..n {
        let pod = serde_json::json!({
            "metadata": {"name": format!("foreign-{i:05}"), "namespace": "default",
                         "labels": {"app": "web"}},
            "spec": {"nodeName": format!("node-{:03}", i % 100),
                     "containers": [{"name": "c", "image": "pause"}]},
        });
        fake.create("", "v1", "pods", "default", pod).unwrap();
    }
}

/// A free loopback address for ipamd's metrics (`ENIPLAN_METRICS_BIND_ADDRESS`).
pub fn metrics_address() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    format!("127.0.0.1:{}", listener.local_addr().unwrap().port())
}

/// The value of an unlabelled metric on ipamd's `/metrics` at `addr`.
pub fn metric(addr: &str, name: &str) -> Option<f64> {
    let (status, text) = harness_client::http("GET", &format!("http://{addr}/metrics"), "");
    assert_eq!(status, 200, "{text}");
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// The instance's ENIs other than the primary, as EC2 describes them, by device index.
pub async fn secondary_enis(n: &Node) -> Vec<cloud::model::NetworkInterface> {
    use cloud::Ec2 as _;
    let mut enis: Vec<_> = n
        .ec2
        .describe_network_interfaces(&cloud::model::EniFilter {
            instance_id: Some(n.instance.clone()),
            ..cloud::model::EniFilter::default()
        })
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.attachment.as_ref().is_some_and(|a| a.device_index != 0))
        .collect();
    enis.sort_by_key(|e| e.attachment.as_ref().map(|a| a.device_index));
    enis
}

/// The container ids of the checkpoint's entries, in file order.
pub fn checkpoint_containers(path: &std::path::Path) -> Vec<String> {
    let ckpt: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    ckpt["allocations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["containerID"].as_str().unwrap().to_owned())
        .collect()
}

/// The `allocationTimestamp` of the checkpoint's entry for `container_id`.
pub fn checkpoint_timestamp(path: &std::path::Path, container_id: &str) -> i64 {
    let ckpt: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    ckpt["allocations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["containerID"] == container_id)
        .and_then(|a| a["allocationTimestamp"].as_i64())
        .unwrap_or_else(|| panic!("no entry for {container_id}: {ckpt}"))
}

/// Rewrites the `allocationTimestamp` of the entry for `container_id` (ipamd stopped).
pub fn set_checkpoint_timestamp(path: &std::path::Path, container_id: &str, at: i64) {
    let mut ckpt: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let entry = ckpt["allocations"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|a| a["containerID"] == container_id)
        .unwrap();
    entry["allocationTimestamp"] = at.into();
    std::fs::write(path, serde_json::to_vec(&ckpt).unwrap()).unwrap();
}

/// Unix nanoseconds now (the checkpoint's `allocationTimestamp` unit).
pub fn unix_nanos() -> i64 {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    i64::try_from(d.as_nanos()).unwrap()
}

/// `(name, value)` pairs as `Node::start` takes them.
pub fn env_refs<'a>(env: &'a [(&'a str, String)]) -> Vec<(&'a str, &'a str)> {
    env.iter().map(|(k, v)| (*k, v.as_str())).collect()
}
