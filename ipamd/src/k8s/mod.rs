//! ipamd's Kubernetes side: kube-runtime watchers on this node (`MY_NODE_NAME`, by field
//! selector) and, with custom networking, on the ENIConfigs; what they see becomes [`Facts`],
//! and the facts become the engine's inputs (max pods, cordon, where new ENIs go).
//!
//! Watches are the only traffic at steady state: no polling. A dropped watch resumes from its
//! resource version, a `410 Gone` relists, an unreachable API server is retried with kube's
//! default back-off; meanwhile the pool keeps serving from the checkpoint and EC2 with the
//! last facts it had (`docs/ipamd.md`, "Kubernetes").

pub mod branch;
pub mod client;
pub mod cninode;
pub mod events;
pub mod facts;
pub mod gone;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use eniplan_crd::ENIConfig;
use eniplan_crd::ENIConfigSpec;
use futures::{StreamExt, stream};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event as Watched};
use kube::{Api, Client};
use serde::Serialize;
use tokio::sync::{mpsc, watch};

pub use facts::{Facts, NodeInfo, Placement};

use crate::config::Config;
use crate::driver::Event;
use crate::error::Result;
use crate::metrics::Metrics;

/// How long start-up waits for the first answer of the API server before pre-scaling with what
/// it has (the catalogue's max pods; with custom networking, no new ENI until the ENIConfig is
/// known). The reference blocks until the API server answers; eniplan serves the pods the
/// checkpoint and EC2 can serve meanwhile.
pub const STARTUP_WAIT: Duration = Duration::from_secs(10);

/// The running Kubernetes side.
pub struct Kube {
    /// What the watchers have seen.
    pub facts: watch::Receiver<Facts>,
    /// The client (for Events).
    pub client: Client,
    /// `MY_NODE_NAME`.
    pub node: String,
}

/// What the engine is told, from the facts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Inputs {
    /// Max pods: `ENIPLAN_MAX_PODS`, else the node's `status.capacity.pods`, else the
    /// catalogue's.
    pub max_pods: u32,
    /// Where [`Inputs::max_pods`] came from.
    pub max_pods_from: &'static str,
    /// No `node.kubernetes.io/unschedulable` taint.
    pub schedulable: bool,
    /// Cordoned or carrying a draining taint.
    pub draining: bool,
    /// Why new ENIs may not be created now.
    pub new_enis_blocked: Option<String>,
}

impl Inputs {
    /// The engine's inputs from the facts; `default_max_pods` is the catalogue's.
    pub fn from_facts(f: &Facts, config: &Config, default_max_pods: u32) -> Inputs {
        let node = f.node.as_ref();
        let (max_pods, max_pods_from) = match (config.max_pods, node.and_then(|n| n.max_pods)) {
            (Some(n), _) => (n, "ENIPLAN_MAX_PODS"),
            (None, Some(n)) => (n, "node status.capacity.pods"),
            (None, None) => (default_max_pods, "the instance type's ENI limits"),
        };
        let new_enis_blocked = match f.placement(config.pool.custom_networking) {
            Placement::Blocked { why } => Some(why),
            _ => None,
        };
        Inputs {
            max_pods,
            max_pods_from,
            schedulable: node.is_none_or(|n| n.schedulable),
            draining: node.is_some_and(|n| n.draining.is_some()),
            new_enis_blocked,
        }
    }
}

/// Connects and starts the watchers; `None` without `MY_NODE_NAME` (ipamd off a cluster).
pub async fn start(config: &Config, metrics: &Arc<Metrics>) -> Result<Option<Kube>> {
    let Some(node) = config.node_name.clone() else {
        return Ok(None);
    };
    let client = client::connect(metrics).await?;
    let (tx, facts) = watch::channel(Facts::default());
    tokio::spawn(watch_all(
        client.clone(),
        node,
        config.eni_config_annotation.clone(),
        config.eni_config_label.clone(),
        config.pool.custom_networking,
        tx,
        Arc::clone(metrics),
    ));
    Ok(Some(Kube {
        facts,
        client,
        node: config.node_name.clone().unwrap_or_default(),
    }))
}

impl Kube {
    /// Starts the Event publisher; the pool loop sends it notices.
    pub fn events(&self) -> events::Notices {
        let (notices, queue) = mpsc::channel(256);
        tokio::spawn(events::publisher(
            self.client.clone(),
            self.node.clone(),
            self.facts.clone(),
            queue,
        ));
        notices
    }

    /// Waits (at most [`STARTUP_WAIT`]) until the watchers have listed what the pool needs.
    pub async fn synced(&mut self, custom_networking: bool) -> bool {
        let ready = |f: &Facts| f.node_synced && (!custom_networking || f.eni_configs_synced);
        let waited = tokio::time::timeout(STARTUP_WAIT, self.facts.wait_for(ready)).await;
        matches!(waited, Ok(Ok(_)))
    }
}

#[expect(
    clippy::large_enum_variant,
    reason = "one event at a time, folded into the facts at once"
)]
enum Update {
    Node(watcher::Result<Watched<Node>>),
    EniConfig(watcher::Result<Watched<ENIConfig>>),
    Pod(watcher::Result<Watched<Pod>>),
}

/// A pod's identity as the checkpoint records it.
fn pod_id(p: &Pod) -> (String, String) {
    (
        p.metadata.namespace.clone().unwrap_or_default(),
        p.metadata.name.clone().unwrap_or_default(),
    )
}

/// Runs the watchers for good, folding their events into the facts.
async fn watch_all(
    client: Client,
    node: String,
    annotation_key: String,
    label_key: String,
    custom_networking: bool,
    tx: watch::Sender<Facts>,
    metrics: Arc<Metrics>,
) {
    let by_name = watcher::Config::default().fields(&format!("metadata.name={node}"));
    let nodes = watcher::watcher(Api::<Node>::all(client.clone()), by_name)
        .default_backoff()
        .map(Update::Node)
        .boxed();
    let eni_configs = if custom_networking {
        watcher::watcher(
            Api::<ENIConfig>::all(client.clone()),
            watcher::Config::default(),
        )
        .default_backoff()
        .map(Update::EniConfig)
        .boxed()
    } else {
        stream::pending().boxed()
    };
    // Only this node's pods: memory does not grow with the cluster (VPC CNI #2436).
    let on_node = watcher::Config::default().fields(&format!("spec.nodeName={node}"));
    let pods = watcher::watcher(Api::<Pod>::all(client), on_node)
        .default_backoff()
        .map(Update::Pod)
        .boxed();
    let mut updates = stream::select(stream::select(nodes, eni_configs), pods);
    let mut fold = Fold {
        tx,
        metrics,
        annotation_key,
        label_key,
        nodes: None,
        eni_configs: BTreeMap::new(),
        pods: gone::PodsOnNode::new(),
    };
    while let Some(update) = updates.next().await {
        match update {
            Update::Node(Ok(e)) => fold.node(e),
            Update::EniConfig(Ok(e)) => fold.eni_config(e),
            Update::Pod(Ok(e)) => fold.pod(e),
            Update::Node(Err(e)) => fold.failed("nodes", &e),
            Update::EniConfig(Err(e)) => fold.failed("eniconfigs", &e),
            Update::Pod(Err(e)) => fold.failed("pods", &e),
        }
    }
}

/// Folds watch events into the facts; lists are buffered until their `InitDone`, so the facts
/// never show half a relist.
struct Fold {
    tx: watch::Sender<Facts>,
    metrics: Arc<Metrics>,
    annotation_key: String,
    label_key: String,
    nodes: Option<NodeInfo>,
    eni_configs: BTreeMap<String, ENIConfigSpec>,
    pods: gone::PodsOnNode,
}

impl Fold {
    fn info(&self, n: &Node) -> NodeInfo {
        NodeInfo::from_node(n, &self.annotation_key, &self.label_key)
    }

    fn failed(&self, resource: &str, e: &watcher::Error) {
        self.metrics
            .kube_watch_restarts
            .with_label_values(&[resource])
            .inc();
        tracing::warn!(resource, error = %e, "Kubernetes watch failed; retrying with back-off");
        let message = e.to_string();
        self.tx.send_if_modified(|f| {
            let changed = f.last_error.as_ref() != Some(&message);
            f.last_error = Some(message);
            changed
        });
    }

    fn node(&mut self, event: Watched<Node>) {
        match event {
            Watched::Init => self.nodes = None,
            Watched::InitApply(n) => self.nodes = Some(self.info(&n)),
            Watched::InitDone => {
                let listed = self.nodes.take();
                self.tx.send_if_modified(|f| {
                    let changed = f.node != listed || !f.node_synced || f.last_error.is_some();
                    (f.node, f.node_synced, f.last_error) = (listed, true, None);
                    changed
                });
            }
            Watched::Apply(n) => {
                let now = Some(self.info(&n));
                self.tx.send_if_modified(|f| {
                    let changed = f.node != now;
                    f.node = now;
                    changed
                });
            }
            Watched::Delete(_) => self.tx.send_modify(|f| f.node = None),
        }
    }

    fn eni_config(&mut self, event: Watched<ENIConfig>) {
        match event {
            Watched::Init => self.eni_configs.clear(),
            Watched::InitApply(e) => {
                self.eni_configs.insert(e.name().to_owned(), e.spec);
            }
            Watched::InitDone => {
                let listed = std::mem::take(&mut self.eni_configs);
                self.tx.send_if_modified(|f| {
                    let changed =
                        f.eni_configs != listed || !f.eni_configs_synced || f.last_error.is_some();
                    (f.eni_configs, f.eni_configs_synced, f.last_error) = (listed, true, None);
                    changed
                });
            }
            Watched::Apply(e) => {
                self.tx.send_if_modified(|f| {
                    let name = e.name().to_owned();
                    let changed = f.eni_configs.get(&name) != Some(&e.spec);
                    f.eni_configs.insert(name, e.spec);
                    changed
                });
            }
            Watched::Delete(e) => self.tx.send_modify(|f| {
                f.eni_configs.remove(e.name());
            }),
        }
    }

    fn pod(&mut self, event: Watched<Pod>) {
        match event {
            Watched::Init => self.pods.clear(),
            Watched::InitApply(p) => {
                self.pods.insert(pod_id(&p), gone::seen(&p));
            }
            Watched::InitDone => {
                let listed = Arc::new(std::mem::take(&mut self.pods));
                self.tx.send_modify(|f| {
                    f.pod_count = listed.len();
                    f.pods = listed;
                    f.pods_current_since
                        .get_or_insert_with(crate::driver::unix_nanos);
                });
            }
            Watched::Apply(p) => {
                self.tx.send_if_modified(|f| {
                    let seen = gone::seen(&p);
                    let before = Arc::make_mut(&mut f.pods).insert(pod_id(&p), seen.clone());
                    f.pod_count = f.pods.len();
                    before != Some(seen)
                });
            }
            Watched::Delete(p) => self.tx.send_modify(|f| {
                Arc::make_mut(&mut f.pods).remove(&pod_id(&p));
                f.pod_count = f.pods.len();
            }),
        }
    }
}

/// Every `grace / 4`, once the pod watch has listed, asks the pool loop which addresses are
/// held for pods the watch does not have (or has only as a newer pod of the same name,
/// [`gone`]), confirms each with a GET (the watch may lag or be down: only a 404, the pod now
/// on another node, or a pod of that name created after the address's ADD counts), and has
/// those released.
pub async fn pod_sweeper(
    facts: watch::Receiver<Facts>,
    client: Client,
    node: String,
    tx: mpsc::Sender<Event>,
    grace: Duration,
) {
    let mut every = tokio::time::interval((grace / 4).max(Duration::from_millis(250)));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // When the watch had first listed, on the monotonic clock (a wall-clock step moves neither
    // this nor the pool loop's ADD times): at the latest a tick after it did.
    let mut listed = None;
    loop {
        every.tick().await;
        let (pods, current) = {
            let f = facts.borrow();
            (Arc::clone(&f.pods), f.pods_current_since.is_some())
        };
        if !current {
            continue;
        }
        let listed = *listed.get_or_insert_with(tokio::time::Instant::now);
        let (reply, answer) = tokio::sync::oneshot::channel();
        let ask = Event::GoneCandidates {
            pods,
            listed,
            grace,
            reply,
        };
        if tx.send(ask).await.is_err() {
            return;
        }
        let Ok(candidates) = answer.await else { return };
        let mut confirmed = Vec::new();
        for c in candidates {
            let api: Api<Pod> = Api::namespaced(client.clone(), &c.namespace);
            match api.get_opt(&c.name).await {
                Ok(p) if gone::confirmed(p.as_ref(), &node, &c) => confirmed.push(c),
                Ok(_) => {}
                Err(e) => {
                    tracing::debug!(pod = %c.name, error = %e, "cannot confirm the pod is gone; keeping its address");
                }
            }
        }
        if !confirmed.is_empty() && tx.send(Event::ReleaseGone(confirmed)).await.is_err() {
            return;
        }
    }
}

/// Tells the pool loop whenever the facts change what the engine should know.
pub async fn feed(
    mut facts: watch::Receiver<Facts>,
    tx: mpsc::Sender<Event>,
    config: Arc<Config>,
    default_max_pods: u32,
    mut last: Inputs,
    metrics: Arc<Metrics>,
) {
    while facts.changed().await.is_ok() {
        let now = Inputs::from_facts(&facts.borrow_and_update(), &config, default_max_pods);
        if now == last {
            continue;
        }
        metrics
            .new_enis_blocked
            .set(i64::from(now.new_enis_blocked.is_some()));
        if tx.send(Event::Cluster(now.clone())).await.is_err() {
            return;
        }
        last = now;
    }
}
