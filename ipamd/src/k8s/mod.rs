//! ipamd's Kubernetes side: kube-runtime watchers on this node (`MY_NODE_NAME`, by field
//! selector) and, with custom networking, on the ENIConfigs; what they see becomes [`Facts`],
//! and the facts become the engine's inputs (max pods, cordon, where new ENIs go).
//!
//! Watches are the only traffic at steady state: no polling. A dropped watch resumes from its
//! resource version, a `410 Gone` relists, an unreachable API server is retried with kube's
//! default back-off; meanwhile the pool keeps serving from the checkpoint and EC2 with the
//! last facts it had (`docs/ipamd.md`, "Kubernetes").

pub mod client;
pub mod facts;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use eniplan_crd::ENIConfig;
use eniplan_crd::ENIConfigSpec;
use futures::{StreamExt, stream};
use k8s_openapi::api::core::v1::Node;
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
    Ok(Some(Kube { facts, client }))
}

impl Kube {
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
        watcher::watcher(Api::<ENIConfig>::all(client), watcher::Config::default())
            .default_backoff()
            .map(Update::EniConfig)
            .boxed()
    } else {
        stream::pending().boxed()
    };
    let mut updates = stream::select(nodes, eni_configs);
    let info = |n: &Node| NodeInfo::from_node(n, &annotation_key, &label_key);
    let (mut node_list, mut ec_list): (Option<NodeInfo>, BTreeMap<String, ENIConfigSpec>) =
        (None, BTreeMap::new());
    while let Some(update) = updates.next().await {
        let failed = |resource: &str, e: &watcher::Error| {
            metrics
                .kube_watch_restarts
                .with_label_values(&[resource])
                .inc();
            tracing::warn!(resource, error = %e, "Kubernetes watch failed; retrying with back-off");
            let message = e.to_string();
            tx.send_if_modified(|f| {
                let changed = f.last_error.as_ref() != Some(&message);
                f.last_error = Some(message);
                changed
            });
        };
        match update {
            Update::Node(Ok(event)) => match event {
                watcher::Event::Init => node_list = None,
                watcher::Event::InitApply(n) => node_list = Some(info(&n)),
                watcher::Event::InitDone => {
                    let listed = node_list.take();
                    tx.send_if_modified(|f| {
                        let changed = f.node != listed || !f.node_synced || f.last_error.is_some();
                        (f.node, f.node_synced, f.last_error) = (listed, true, None);
                        changed
                    });
                }
                watcher::Event::Apply(n) => {
                    let now = Some(info(&n));
                    tx.send_if_modified(|f| {
                        let changed = f.node != now;
                        f.node = now;
                        changed
                    });
                }
                watcher::Event::Delete(_) => {
                    tx.send_modify(|f| f.node = None);
                }
            },
            Update::EniConfig(Ok(event)) => match event {
                watcher::Event::Init => ec_list.clear(),
                watcher::Event::InitApply(e) => {
                    ec_list.insert(e.name().to_owned(), e.spec);
                }
                watcher::Event::InitDone => {
                    let listed = std::mem::take(&mut ec_list);
                    tx.send_if_modified(|f| {
                        let changed = f.eni_configs != listed
                            || !f.eni_configs_synced
                            || f.last_error.is_some();
                        (f.eni_configs, f.eni_configs_synced, f.last_error) = (listed, true, None);
                        changed
                    });
                }
                watcher::Event::Apply(e) => {
                    tx.send_if_modified(|f| {
                        let name = e.name().to_owned();
                        let changed = f.eni_configs.get(&name) != Some(&e.spec);
                        f.eni_configs.insert(name, e.spec);
                        changed
                    });
                }
                watcher::Event::Delete(e) => {
                    tx.send_modify(|f| {
                        f.eni_configs.remove(e.name());
                    });
                }
            },
            Update::Node(Err(e)) => failed("nodes", &e),
            Update::EniConfig(Err(e)) => failed("eniconfigs", &e),
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
