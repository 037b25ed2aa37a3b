//! The fake against a real client: every fixture and check here goes through `kubectl`, as the
//! ipamd tests set theirs.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use kube_fake::FakeApi;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;

struct Cluster {
    fake: FakeApi,
    kubeconfig: PathBuf,
    _dir: TempDir,
}

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const CRD: &str = include_str!("../../../deploy/crds/eniconfigs.yaml");

impl Cluster {
    async fn start() -> Cluster {
        let fake = FakeApi::start().await.expect("fake API server");
        let dir = std::env::temp_dir().join(format!(
            "kube-fake-{}-{}",
            std::process::id(),
            fake.addr().port()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let kubeconfig = dir.join("kubeconfig");
        fake.write_kubeconfig(&kubeconfig).unwrap();
        Cluster {
            fake,
            kubeconfig,
            _dir: TempDir(dir),
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new("kubectl");
        let cache = self.kubeconfig.with_file_name("kubectl-cache");
        c.arg(format!("--cache-dir={}", cache.display()))
            .args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .kill_on_drop(true);
        c
    }

    /// Runs kubectl to completion: (success, stdout, stderr).
    async fn run(&self, args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
        kube_fake::kubectl(&self.kubeconfig, args, stdin).await
    }

    async fn ok(&self, args: &[&str], stdin: Option<&str>) -> String {
        let (ok, out, err) = self.run(args, stdin).await;
        assert!(ok, "kubectl {args:?} failed: {err}");
        out
    }

    async fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.extend(["-o", "json"]);
        serde_json::from_str(&self.ok(&all, None).await).unwrap()
    }
}

fn node(name: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Node\nmetadata:\n  name: {name}\n  labels:\n    topology.kubernetes.io/zone: us-east-1a\nstatus:\n  capacity:\n    pods: \"110\"\n"
    )
}

fn pod(name: &str, node: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: default\n  labels:\n    app: web\nspec:\n  nodeName: {node}\n  containers:\n  - name: c\n    image: pause\n"
    )
}

/// Reads watch events (`kubectl get --watch --output-watch-events -o json`) until `n` arrived.
async fn events(child: &mut tokio::process::Child, n: usize) -> Vec<(String, String)> {
    let stdout = child.stdout.as_mut().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let mut buf = String::new();
    let mut out = Vec::new();
    while out.len() < n {
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .expect("the watch delivers its events")
            .unwrap()
            .expect("the watch stays open");
        buf.push_str(&line);
        if let Ok(v) = serde_json::from_str::<Value>(&buf) {
            buf.clear();
            out.push((
                v["type"].as_str().unwrap().to_owned(),
                v["object"]["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            ));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_creates_labels_annotates_cordons_and_drains_a_node() {
    let c = Cluster::start().await;
    let name = "ip-10-0-0-1.ec2.internal";
    c.ok(&["create", "-f", "-"], Some(&node(name))).await;
    c.ok(
        &["label", "node", name, "k8s.amazonaws.com/eniConfig=a"],
        None,
    )
    .await;
    c.ok(
        &["annotate", "node", name, "k8s.amazonaws.com/eniConfig=b"],
        None,
    )
    .await;
    c.ok(&["cordon", name], None).await;
    let n = c.json(&["get", "node", name]).await;
    assert_eq!(n["metadata"]["labels"]["k8s.amazonaws.com/eniConfig"], "a");
    assert_eq!(
        n["metadata"]["annotations"]["k8s.amazonaws.com/eniConfig"],
        "b"
    );
    assert_eq!(n["spec"]["unschedulable"], true);
    assert_eq!(
        n["spec"]["taints"][0]["key"], "node.kubernetes.io/unschedulable",
        "the node controller's taint"
    );
    assert_eq!(
        n["status"]["capacity"]["pods"], "110",
        "a node keeps the status it registers with"
    );

    c.ok(&["create", "-f", "-"], Some(&pod("web", name))).await;
    let drained = c
        .ok(&["drain", name, "--force", "--timeout=30s"], None)
        .await;
    assert!(drained.contains("evicted"), "{drained}");
    let (_, out, _) = c.run(&["get", "pods", "-o", "name"], None).await;
    assert!(out.is_empty(), "the eviction deleted the pod: {out}");

    c.ok(&["uncordon", name], None).await;
    let n = c.json(&["get", "node", name]).await;
    assert!(
        n["spec"]["taints"].is_null(),
        "uncordon removes the taint: {n}"
    );
    c.ok(
        &[
            "patch",
            "node",
            name,
            "--subresource=status",
            "--type=merge",
            "-p",
            r#"{"status":{"capacity":{"pods":"58"}}}"#,
        ],
        None,
    )
    .await;
    let n = c.json(&["get", "node", name]).await;
    assert_eq!(n["status"]["capacity"]["pods"], "58");
    c.ok(
        &["label", "node", name, "k8s.amazonaws.com/eniConfig-"],
        None,
    )
    .await;
    let n = c.json(&["get", "node", name]).await;
    assert!(
        n["metadata"]["labels"]
            .get("k8s.amazonaws.com/eniConfig")
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eniconfigs_are_validated_against_the_crd_that_kubectl_applied() {
    let c = Cluster::start().await;
    let (ok, _, err) = c.run(&["get", "eniconfigs"], None).await;
    assert!(
        !ok && err.contains("the server doesn't have a resource type"),
        "{err}"
    );
    c.ok(&["apply", "-f", "-"], Some(CRD)).await;
    c.ok(
        &[
            "wait",
            "--for",
            "condition=established",
            "crd/eniconfigs.crd.k8s.amazonaws.com",
        ],
        None,
    )
    .await;
    let good = "apiVersion: crd.k8s.amazonaws.com/v1alpha1\nkind: ENIConfig\nmetadata:\n  name: us-east-1a\nspec:\n  subnet: subnet-0123456789abcdef0\n  securityGroups: [sg-0123456789abcdef0]\n  futureField: pruned\nextra: kept\n";
    c.ok(&["apply", "-f", "-"], Some(good)).await;
    let e = c.json(&["get", "eniconfig", "us-east-1a"]).await;
    assert_eq!(e["spec"]["subnet"], "subnet-0123456789abcdef0");
    // The CRD preserves unknown fields at the root only, as upstream's: the API server prunes
    // them inside the spec.
    assert_eq!(e["extra"], "kept");
    assert!(e["spec"].get("futureField").is_none(), "{e}");

    let bad = "apiVersion: crd.k8s.amazonaws.com/v1alpha1\nkind: ENIConfig\nmetadata:\n  name: bad\nspec:\n  securityGroups: [7]\n";
    let (ok, _, err) = c.run(&["apply", "-f", "-"], Some(bad)).await;
    assert!(!ok, "an invalid ENIConfig is refused");
    assert!(err.contains("spec.subnet: Required value"), "{err}");
    assert!(err.contains("spec.securityGroups[0]"), "{err}");
    assert!(
        c.fake
            .get("crd.k8s.amazonaws.com", "v1alpha1", "eniconfigs", "", "bad")
            .is_none()
    );

    c.ok(&["delete", "crd", "eniconfigs.crd.k8s.amazonaws.com"], None)
        .await;
    let (ok, _, _) = c.run(&["get", "eniconfigs"], None).await;
    assert!(!ok, "deleting the CRD removes the type");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_field_selected_watch_sees_pods_arrive_and_leave_its_selection() {
    let c = Cluster::start().await;
    let mut watch = c.command(&[
        "get",
        "pods",
        "-A",
        "--watch",
        "--output-watch-events",
        "-o",
        "json",
        "--field-selector",
        "spec.nodeName=n1",
        "-l",
        "app=web",
    ]);
    watch.stdout(Stdio::piped()).stderr(Stdio::null());
    let mut watch = watch.spawn().unwrap();
    // The watch starts with the current state; a pod on another node is never seen.
    c.ok(&["create", "-f", "-"], Some(&pod("other", "n2")))
        .await;
    c.ok(&["create", "-f", "-"], Some(&pod("a", "n1"))).await;
    c.ok(&["label", "pod", "a", "app=db", "--overwrite"], None)
        .await; // leaves the selection
    c.ok(&["label", "pod", "a", "app=web", "--overwrite"], None)
        .await; // and comes back
    c.ok(&["delete", "pod", "a"], None).await;
    let seen = events(&mut watch, 4).await;
    let want = [
        ("ADDED", "a"),
        ("DELETED", "a"),
        ("ADDED", "a"),
        ("DELETED", "a"),
    ];
    assert_eq!(seen, want.map(|(t, n)| (t.to_owned(), n.to_owned())));
    let _ = watch.kill().await;

    let (ok, _, err) = c
        .run(
            &["get", "pods", "--field-selector", "spec.hostname=x"],
            None,
        )
        .await;
    assert!(
        !ok && err.contains("field label not supported: spec.hostname"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_writes_conflict_and_compacted_versions_are_gone() {
    let c = Cluster::start().await;
    c.ok(&["create", "-f", "-"], Some(&node("n1"))).await;
    let old = c.json(&["get", "node", "n1"]).await;
    c.ok(&["label", "node", "n1", "x=1"], None).await;
    let (ok, _, err) = c.run(&["replace", "-f", "-"], Some(&old.to_string())).await;
    assert!(
        !ok && err.contains("the object has been modified"),
        "a stale replace conflicts: {err}"
    );

    let rv = old["metadata"]["resourceVersion"].as_str().unwrap();
    let path = format!("/api/v1/nodes?watch=1&resourceVersion={rv}");
    c.fake.compact();
    let out = c
        .ok(&["get", "--raw", &path, "--request-timeout=5s"], None)
        .await;
    let first: Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    assert_eq!(first["type"], "ERROR");
    assert_eq!(first["object"]["code"], 410, "{first}");
    assert_eq!(first["object"]["reason"], "Expired");

    // A 429 carries Retry-After; client-go waits and retries.
    c.fake.throttle(1);
    let out = c.ok(&["get", "--raw", "/api/v1/nodes"], None).await;
    assert!(out.contains("NodeList"), "{out}");
    assert_eq!(c.fake.requests().get("throttled"), Some(&1));
}

/// One HTTP/1.1 request with a bearer token (kubectl sends none over plain HTTP; kube-rs and
/// the in-cluster clients do): status and body.
async fn with_token(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    token: &str,
    body: &str,
) -> (u16, String) {
    use tokio::io::AsyncReadExt as _;
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: fake\r\nAuthorization: Bearer {token}\r\nContent-Type: application/merge-patch+json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    let status = out.split_whitespace().nth(1).unwrap().parse().unwrap();
    (
        status,
        out.split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_account_may_do_only_what_its_cluster_role_allows() {
    let c = Cluster::start().await;
    c.ok(
        &["apply", "-f", "-"],
        Some(include_str!("../../../deploy/rbac.yaml")),
    )
    .await;
    c.ok(&["create", "-f", "-"], Some(&node("n1"))).await;
    let token = c.fake.service_account_token("kube-system", "eniplan-ipamd");
    let addr = c.fake.addr();
    let (code, body) = with_token(
        addr,
        "GET",
        "/api/v1/nodes?fieldSelector=metadata.name%3Dn1",
        &token,
        "",
    )
    .await;
    assert_eq!(code, 200, "list nodes is in the role: {body}");
    let (code, body) = with_token(addr, "GET", "/api/v1/nodes/n1", &token, "").await;
    assert_eq!(code, 403, "get on a node is not: {body}");
    assert!(
        body.contains("User \\\"system:serviceaccount:kube-system:eniplan-ipamd\\\" cannot get resource \\\"nodes\\\""),
        "{body}"
    );
    // (The role may patch a node — the legacy trunk label — but never delete one.)
    let (code, _) = with_token(addr, "DELETE", "/api/v1/nodes/n1", &token, "").await;
    assert_eq!(code, 403, "nor is deleting it");
    let (code, _) = with_token(addr, "GET", "/api/v1/nodes", "made-up", "").await;
    assert_eq!(code, 401, "an unknown token is refused");
    let (code, _) = with_token(addr, "GET", "/apis", &token, "").await;
    assert_eq!(code, 200, "discovery is open to every account");
    let n = c.json(&["get", "node", "n1"]).await;
    assert_eq!(
        n["metadata"]["name"], "n1",
        "the refused delete changed nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_token_replaces_the_old_one() {
    let c = Cluster::start().await;
    c.ok(
        &["apply", "-f", "-"],
        Some(include_str!("../../../deploy/rbac.yaml")),
    )
    .await;
    let addr = c.fake.addr();
    let list = "/api/v1/nodes?fieldSelector=metadata.name%3Dn1";
    let old = c.fake.service_account_token("kube-system", "eniplan-ipamd");
    let other = c.fake.service_account_token("kube-system", "someone-else");
    assert_eq!(with_token(addr, "GET", list, &old, "").await.0, 200);
    let new = c
        .fake
        .rotate_service_account_token("kube-system", "eniplan-ipamd");
    assert_ne!(new, old);
    let (code, _) = with_token(addr, "GET", list, &old, "").await;
    assert_eq!(code, 401, "the old token is refused after rotation");
    assert_eq!(c.fake.requests().get("unauthorized"), Some(&1));
    assert_eq!(with_token(addr, "GET", list, &new, "").await.0, 200);
    let (code, _) = with_token(addr, "GET", "/apis", &other, "").await;
    assert_eq!(code, 200, "another account's token is untouched");
}
