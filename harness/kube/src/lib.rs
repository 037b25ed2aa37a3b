//! # kube-fake
//!
//! A stateful fake Kubernetes API server for eniplan's tests, in the spirit of the EC2 harness:
//! the real HTTP/JSON API for what ipamd and its tests use, so that `kubectl` and kube-rs's
//! watchers talk to it unmodified. No kube-apiserver can be installed on the machines the tests
//! run on (see `harness/README.md`).
//!
//! What it serves: discovery (`/version`, `/api`, `/apis`, resource lists), namespaces, nodes,
//! pods (with `eviction`), events (core and `events.k8s.io`), CRDs and the custom resources they
//! define (validated and pruned against their structural schema). Every type supports get,
//! list (label and field selectors, `limit`/`continue`), watch (from a resource version, with
//! bookmarks, `sendInitialEvents`, selector transitions as `ADDED`/`DELETED`, `410 Gone` once
//! the version is compacted), create (`generateName`), update (`409 Conflict` on a stale
//! version), merge, strategic-merge and JSON patches, status subresources, delete with
//! preconditions, and deletecollection. It stands in for the controllers a test relies on: the
//! node lifecycle controller's unschedulable taint. It does not run a scheduler, a kubelet or a
//! garbage collector: pods are created with `spec.nodeName` and deleted at once.
//!
//! Faults: [`FakeApi::down`]/[`FakeApi::up`] (connection refused), [`FakeApi::delay`],
//! [`FakeApi::throttle`] (429), [`FakeApi::drop_watches`], [`FakeApi::expire_next_watches`] and
//! [`FakeApi::compact`] (410). [`FakeApi::requests`] counts requests by verb and resource.
#![deny(missing_docs)]

pub mod error;
mod openapi;
mod patch;
pub mod rbac;
pub mod resources;
pub mod schema;
pub mod select;
mod server;
pub mod store;
mod watch;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::{oneshot, watch as signal};
use tokio::task::JoinHandle;

pub use error::ApiError;
pub use store::Store;

/// Settings of a fake.
#[derive(Debug, Clone)]
pub struct Options {
    /// How often watches that allow bookmarks get one.
    pub bookmark_every: Duration,
    /// Changes kept for watches to resume from; older versions get 410 Gone.
    pub history: usize,
    /// Port on 127.0.0.1 (0: any free one).
    pub port: u16,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            bookmark_every: Duration::from_secs(5),
            history: 100_000,
            port: 0,
        }
    }
}

/// Faults switched on by a test.
pub struct Faults {
    delay_ms: AtomicU64,
    throttle: AtomicU32,
    expire: AtomicU32,
    kill: signal::Sender<u64>,
}

impl Faults {
    fn delay(&self) -> Duration {
        Duration::from_millis(self.delay_ms.load(Ordering::Relaxed))
    }

    fn take(counter: &AtomicU32) -> bool {
        counter
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
            .is_ok()
    }

    fn take_throttle(&self) -> bool {
        Faults::take(&self.throttle)
    }

    fn take_expire(&self) -> bool {
        Faults::take(&self.expire)
    }
}

/// State shared by the server's tasks.
pub struct Shared {
    store: Mutex<Store>,
    faults: Faults,
    counts: Mutex<BTreeMap<String, u64>>,
    addr: SocketAddr,
    bookmark_every: Duration,
    /// Service-account tokens: token → (namespace, name).
    tokens: Mutex<BTreeMap<String, (String, String)>>,
    /// Bumped on every counted request (what [`FakeApi::until_requests`] waits on).
    counted: signal::Sender<u64>,
}

impl Shared {
    fn count(&self, verb: &str, resource: &str) {
        let key = if resource.is_empty() {
            verb.to_owned()
        } else {
            format!("{verb} {resource}")
        };
        *self.counts.lock().expect("counts").entry(key).or_default() += 1;
        self.counted.send_modify(|n| *n += 1);
    }
}

/// A running fake API server on loopback.
pub struct FakeApi {
    shared: Arc<Shared>,
    server: Mutex<Option<(oneshot::Sender<()>, JoinHandle<()>)>>,
}

async fn serve(shared: Arc<Shared>) -> std::io::Result<(oneshot::Sender<()>, JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(shared.addr).await?;
    let app = axum::Router::new()
        .fallback(server::handle)
        .with_state(Arc::clone(&shared));
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await;
    });
    Ok((stop, task))
}

impl FakeApi {
    /// Starts a fake with default options on a free loopback port.
    pub async fn start() -> std::io::Result<FakeApi> {
        FakeApi::start_with(Options::default()).await
    }

    /// Starts a fake.
    pub async fn start_with(options: Options) -> std::io::Result<FakeApi> {
        let probe = std::net::TcpListener::bind(("127.0.0.1", options.port))?;
        let addr = probe.local_addr()?;
        drop(probe);
        let (kill, _) = signal::channel(0);
        let shared = Arc::new(Shared {
            store: Mutex::new(Store::new(options.history)),
            faults: Faults {
                delay_ms: AtomicU64::new(0),
                throttle: AtomicU32::new(0),
                expire: AtomicU32::new(0),
                kill,
            },
            counts: Mutex::new(BTreeMap::new()),
            addr,
            bookmark_every: options.bookmark_every,
            tokens: Mutex::new(BTreeMap::new()),
            counted: signal::channel(0).0,
        });
        let server = serve(Arc::clone(&shared)).await?;
        Ok(FakeApi {
            shared,
            server: Mutex::new(Some(server)),
        })
    }

    /// The server's address.
    pub fn addr(&self) -> SocketAddr {
        self.shared.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.shared.addr)
    }

    /// A kubeconfig for `kubectl` and kube-rs (plain HTTP on loopback, no credentials).
    pub fn kubeconfig(&self) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {}\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake\ncurrent-context: fake\nusers:\n- name: fake\n  user: {{}}\n",
            self.url()
        )
    }

    /// A bearer token for the service account `namespace`/`name`: requests with it may do only
    /// what the ClusterRoles bound to that account allow (`kubectl apply` the RBAC manifest).
    /// Tokens minted earlier for the account stay valid (as bound tokens do until they expire).
    pub fn service_account_token(&self, namespace: &str, name: &str) -> String {
        let mut tokens = self.shared.tokens.lock().expect("tokens");
        let token = format!(
            "sa-token-{namespace}-{name}-{}-{}",
            self.addr().port(),
            tokens.len()
        );
        tokens.insert(token.clone(), (namespace.to_owned(), name.to_owned()));
        token
    }

    /// Rotates the account's token as a kubelet's projected volume does when the old one
    /// expires: a new token is minted, every earlier one is refused from now on (401), and the
    /// open watch streams end (as they do when their token expires). Returns the new token.
    pub fn rotate_service_account_token(&self, namespace: &str, name: &str) -> String {
        let token = self.service_account_token(namespace, name);
        self.shared
            .tokens
            .lock()
            .expect("tokens")
            .retain(|t, (ns, n)| *t == token || ns != namespace || n != name);
        self.drop_watches();
        token
    }

    /// A kubeconfig that reads its bearer token from `path` (`tokenFile`), as the in-cluster
    /// configuration does: clients re-read it, so a rotated token is picked up.
    pub fn kubeconfig_with_token_file(&self, path: &std::path::Path) -> String {
        self.kubeconfig().replace(
            "  user: {}\n",
            &format!("  user:\n    tokenFile: {}\n", path.display()),
        )
    }

    /// A kubeconfig that authenticates with `token`.
    pub fn kubeconfig_with_token(&self, token: &str) -> String {
        self.kubeconfig()
            .replace("  user: {}\n", &format!("  user:\n    token: {token}\n"))
    }

    /// Writes [`FakeApi::kubeconfig`] to `path`.
    pub fn write_kubeconfig(&self, path: &std::path::Path) -> std::io::Result<()> {
        std::fs::write(path, self.kubeconfig())
    }

    /// Requests so far, by `"verb resource"` (`"watch pods"`, `"list nodes"`, `"patch
    /// nodes/status"`, `"discovery"`, `"throttled"`, `"unauthorized"`, `"forbidden"`); those
    /// with a service-account token also as `"as NAME verb resource"` and `"authenticated
    /// NAME"`.
    pub fn requests(&self) -> BTreeMap<String, u64> {
        self.shared.counts.lock().expect("counts").clone()
    }

    /// Waits (at most `deadline`) until `requests()[key]` reaches `at_least`; whether it did.
    pub async fn until_requests(&self, key: &str, at_least: u64, deadline: Duration) -> bool {
        let mut counted = self.shared.counted.subscribe();
        let reached = |c: &FakeApi| c.requests().get(key).copied().unwrap_or(0) >= at_least;
        let wait = async {
            while !reached(self) {
                if counted.changed().await.is_err() {
                    return;
                }
            }
        };
        tokio::time::timeout(deadline, wait).await.is_ok() && reached(self)
    }

    /// Forgets the request counts.
    pub fn reset_requests(&self) {
        self.shared.counts.lock().expect("counts").clear();
    }

    /// Delays every response by `d`.
    pub fn delay(&self, d: Duration) {
        let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        self.shared.faults.delay_ms.store(ms, Ordering::Relaxed);
    }

    /// Answers the next `n` requests with 429 Too Many Requests (`Retry-After: 1`).
    pub fn throttle(&self, n: u32) {
        self.shared.faults.throttle.store(n, Ordering::Relaxed);
    }

    /// Answers the next `n` watches with a 410 Gone `ERROR` event.
    pub fn expire_next_watches(&self, n: u32) {
        self.shared.faults.expire.store(n, Ordering::Relaxed);
    }

    /// Ends every open watch stream (clients see the stream close mid-way).
    pub fn drop_watches(&self) {
        self.shared.faults.kill.send_modify(|g| *g += 1);
    }

    /// Forgets the change history: resuming any watch from an earlier version gets 410 Gone.
    pub fn compact(&self) {
        self.shared.store.lock().expect("store").compact();
    }

    /// Stops listening: open streams end and new connections are refused until [`FakeApi::up`].
    pub async fn down(&self) {
        self.drop_watches();
        let server = self.server.lock().expect("server").take();
        if let Some((stop, task)) = server {
            let _ = stop.send(());
            let _ = task.await;
        }
    }

    /// Listens again on the same address, with the same objects.
    pub async fn up(&self) -> std::io::Result<()> {
        let server = serve(Arc::clone(&self.shared)).await?;
        *self.server.lock().expect("server") = Some(server);
        Ok(())
    }

    /// Creates an object directly (bulk fixtures a test would otherwise send one by one).
    pub fn create(
        &self,
        group: &str,
        version: &str,
        plural: &str,
        ns: &str,
        object: Value,
    ) -> Result<Value, ApiError> {
        let mut store = self.shared.store.lock().expect("store");
        let kind = store
            .kind(group, version, plural)
            .cloned()
            .ok_or_else(|| ApiError::no_route(&format!("{group}/{version}/{plural}")))?;
        store.create(&kind, ns, object)
    }

    /// One object as stored, if it exists.
    pub fn get(
        &self,
        group: &str,
        version: &str,
        plural: &str,
        ns: &str,
        name: &str,
    ) -> Option<Value> {
        let store = self.shared.store.lock().expect("store");
        let kind = store.kind(group, version, plural)?.clone();
        store.get(&kind, ns, name).ok()
    }

    /// Every object of a type, in all namespaces.
    pub fn list(&self, group: &str, version: &str, plural: &str) -> Vec<Value> {
        let store = self.shared.store.lock().expect("store");
        let Some(kind) = store.kind(group, version, plural).cloned() else {
            return Vec::new();
        };
        store.objects(&kind, None).cloned().collect()
    }
}

/// Runs `kubectl` with `KUBECONFIG=kubeconfig` (and a discovery cache of its own, beside it),
/// `stdin` as its input, for at most a minute:
/// (success, stdout, stderr). The tests' fixtures go through this, as a user's would.
///
/// # Panics
/// When kubectl cannot be started or does not finish within a minute.
pub async fn kubectl(
    kubeconfig: &std::path::Path,
    args: &[&str],
    stdin: Option<&str>,
) -> (bool, String, String) {
    use tokio::io::AsyncWriteExt as _;
    // kubectl caches discovery by host:port under ~/.kube/cache: a fake server on a port an
    // earlier one used would be taken to serve the earlier one's resources (a CRD it never had).
    // Each kubeconfig gets a cache of its own, beside it.
    let cache = kubeconfig.with_file_name("kubectl-cache");
    let mut child = tokio::process::Command::new("kubectl")
        .arg(format!("--cache-dir={}", cache.display()))
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("kubectl is installed (scripts/test installs Debian's kubernetes-client)");
    let mut input = child.stdin.take().expect("piped");
    if let Some(text) = stdin {
        input
            .write_all(text.as_bytes())
            .await
            .expect("kubectl reads its input");
    }
    drop(input);
    let out = tokio::time::timeout(Duration::from_mins(1), child.wait_with_output())
        .await
        .expect("kubectl finishes within a minute")
        .expect("kubectl's output");
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.success(), text(&out.stdout), text(&out.stderr))
}
