//! The double's task: folds the CNINode and pod watch events, then does what they call for
//! (a pass), publishing the state after every step.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::{StreamExt as _, stream};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Patch, PatchParams};
use kube::core::{ApiResource, DynamicObject, GroupVersionKind};
use kube::runtime::WatchStreamExt as _;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client};
use tokio::sync::watch;
use tokio::time::Instant;

use super::ec2::{Ec2, Trunk};
use super::{Branch, Options, POD_ENI, PodKey, SECURITY_GROUPS_FOR_PODS, State};

/// The first wait before a failed pass is tried again without an event; it doubles up to
/// [`MAX_RETRY`] while passes keep failing.
const FIRST_RETRY: Duration = Duration::from_millis(200);
const MAX_RETRY: Duration = Duration::from_secs(5);

#[expect(
    clippy::large_enum_variant,
    reason = "one event at a time, folded at once"
)]
enum Update {
    CniNode(watcher::Result<Event<DynamicObject>>),
    Pod(watcher::Result<Event<Pod>>),
}

/// What the double keeps of a pod.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PodView {
    uid: String,
    /// The first container has a `vpc.amazonaws.com/pod-eni…` limit.
    wants: bool,
    /// It carries the `vpc.amazonaws.com/pod-eni` annotation.
    annotated: bool,
}

fn pod_key(pod: &Pod) -> PodKey {
    (
        pod.metadata.namespace.clone().unwrap_or_default(),
        pod.metadata.name.clone().unwrap_or_default(),
    )
}

fn pod_view(pod: &Pod) -> PodView {
    let wants = pod
        .spec
        .as_ref()
        .and_then(|s| s.containers.first())
        .and_then(|c| c.resources.as_ref())
        .and_then(|r| r.limits.as_ref())
        .is_some_and(|l| l.keys().any(|k| k.starts_with(POD_ENI)));
    PodView {
        uid: pod.metadata.uid.clone().unwrap_or_default(),
        wants,
        annotated: pod
            .metadata
            .annotations
            .as_ref()
            .is_some_and(|a| a.contains_key(POD_ENI)),
    }
}

/// Whether a CNINode's `spec.features` holds `SecurityGroupsForPods`.
fn asks_for_trunk(cninode: &DynamicObject) -> bool {
    cninode.data["spec"]["features"]
        .as_array()
        .is_some_and(|f| {
            f.iter()
                .any(|f| f["name"].as_str() == Some(SECURITY_GROUPS_FOR_PODS))
        })
}

/// A deleted pod's branch waiting for its cool-down to end.
struct Cooling {
    due: Instant,
    pod: PodKey,
    branch: Branch,
}

struct Controller {
    client: Client,
    ec2: Ec2,
    node: String,
    options: Options,
    trunk: Option<Trunk>,
    pods: BTreeMap<PodKey, PodView>,
    /// Pods listed since the last `Init`, until `InitDone`.
    relist: Option<BTreeMap<PodKey, PodView>>,
    /// What the CNINode list since the last `Init` said, until `InitDone`.
    cninode_relist: Option<bool>,
    cooling: Vec<Cooling>,
    retry_at: Option<Instant>,
    backoff: Duration,
    state: State,
    tx: watch::Sender<State>,
}

/// Runs the double until its handle goes.
pub async fn run(
    client: Client,
    ec2: Ec2,
    node: String,
    mut options: watch::Receiver<Options>,
    tx: watch::Sender<State>,
) {
    let cninode = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("vpcresources.k8s.aws", "v1alpha1", "CNINode"),
        "cninodes",
    );
    let by_name = watcher::Config::default().fields(&format!("metadata.name={node}"));
    let cninodes = watcher::watcher(
        Api::<DynamicObject>::all_with(client.clone(), &cninode),
        by_name,
    )
    .default_backoff()
    .map(Update::CniNode)
    .boxed();
    let on_node = watcher::Config::default().fields(&format!("spec.nodeName={node}"));
    let pods = watcher::watcher(Api::<Pod>::all(client.clone()), on_node)
        .default_backoff()
        .map(Update::Pod)
        .boxed();
    let mut updates = stream::select(cninodes, pods);
    let first = *options.borrow_and_update();
    let state = tx.borrow().clone();
    let mut c = Controller {
        client,
        ec2,
        node,
        options: first,
        trunk: None,
        pods: BTreeMap::new(),
        relist: None,
        cninode_relist: None,
        cooling: Vec::new(),
        retry_at: None,
        backoff: FIRST_RETRY,
        state,
        tx,
    };
    loop {
        let wake = c.next_wake();
        tokio::select! {
            update = updates.next() => match update {
                Some(Update::CniNode(Ok(e))) => c.cninode(e),
                Some(Update::Pod(Ok(e))) => c.pod(e),
                Some(Update::CniNode(Err(e))) => c.error(format!("watch cninodes: {e}")),
                Some(Update::Pod(Err(e))) => c.error(format!("watch pods: {e}")),
                None => return,
            },
            changed = options.changed() => {
                if changed.is_err() {
                    return;
                }
                c.options = *options.borrow_and_update();
                c.state.annotating = c.options.annotating;
            }
            () = tokio::time::sleep_until(wake.unwrap_or_else(Instant::now)), if wake.is_some() => {}
        }
        c.publish();
        c.pass().await;
    }
}

impl Controller {
    fn log(&self, what: &str) {
        eprintln!("resource-controller {}: {what}", self.node);
    }

    fn error(&mut self, e: String) {
        self.log(&e);
        self.state.last_error = Some(e);
        self.state.errors += 1;
    }

    /// Sends the state to the handle if it changed.
    fn publish(&mut self) {
        self.state.waiting = self
            .pods
            .iter()
            .filter(|(k, p)| p.wants && !p.annotated && !self.state.annotated.contains(*k))
            .map(|(k, _)| k.clone())
            .collect();
        self.state.cooling = self
            .cooling
            .iter()
            .map(|c| (c.pod.clone(), c.branch.clone()))
            .collect();
        let now = &self.state;
        self.tx.send_if_modified(|s| {
            let changed = s != now;
            if changed {
                s.clone_from(now);
            }
            changed
        });
    }

    /// When to wake up without an event: a retry, or a cool-down that ends.
    fn next_wake(&self) -> Option<Instant> {
        self.cooling
            .iter()
            .map(|c| c.due)
            .chain(self.retry_at)
            .min()
    }

    fn cninode(&mut self, event: Event<DynamicObject>) {
        match event {
            Event::Apply(o) => self.state.sgp_requested = asks_for_trunk(&o),
            Event::Delete(_) => self.state.sgp_requested = false,
            Event::Init => self.cninode_relist = Some(false),
            Event::InitApply(o) => self.cninode_relist = Some(asks_for_trunk(&o)),
            Event::InitDone => {
                self.state.sgp_requested = self.cninode_relist.take().unwrap_or(false);
                self.state.cninode_synced = true;
            }
        }
    }

    fn pod(&mut self, event: Event<Pod>) {
        match event {
            Event::Apply(p) => self.pod_seen(pod_key(&p), pod_view(&p)),
            Event::Delete(p) => {
                let key = pod_key(&p);
                self.pods.remove(&key);
                self.forget(&key);
            }
            Event::Init => self.relist = Some(BTreeMap::new()),
            Event::InitApply(p) => match &mut self.relist {
                Some(listed) => {
                    listed.insert(pod_key(&p), pod_view(&p));
                }
                None => self.pod_seen(pod_key(&p), pod_view(&p)),
            },
            Event::InitDone => {
                let listed = self.relist.take().unwrap_or_default();
                let gone: Vec<PodKey> = self
                    .pods
                    .iter()
                    .filter(|(k, p)| listed.get(*k).is_none_or(|l| l.uid != p.uid))
                    .map(|(k, _)| k.clone())
                    .collect();
                for key in &gone {
                    self.forget(key);
                }
                self.pods = listed;
                self.state.pods_synced = true;
            }
        }
    }

    fn pod_seen(&mut self, key: PodKey, view: PodView) {
        if self.pods.get(&key).is_some_and(|old| old.uid != view.uid) {
            self.forget(&key); // deleted and made again under the same name
        }
        self.pods.insert(key, view);
    }

    /// A pod is gone: its branch (if any) starts its cool-down.
    fn forget(&mut self, key: &PodKey) {
        self.state.annotated.remove(key);
        if let Some(branch) = self.state.branches.remove(key) {
            self.log(&format!(
                "pod {}/{} gone: branch {} cools down for {:?}",
                key.0, key.1, branch.eni_id, self.options.cooldown
            ));
            self.cooling.push(Cooling {
                due: Instant::now() + self.options.cooldown,
                pod: key.clone(),
                branch,
            });
        }
    }

    /// Does what the state calls for: the trunk, the waiting pods' branches, the branches whose
    /// cool-down has ended. A failure schedules a retry.
    async fn pass(&mut self) {
        let mut clean = true;
        if self.state.sgp_requested && self.trunk.is_none() {
            match self.ec2.ensure_trunk().await {
                Ok((trunk, created)) => {
                    let how = if created { "created" } else { "adopted" };
                    self.log(&format!("trunk {} {how}", trunk.id));
                    self.state.trunk = Some(trunk.id.clone());
                    self.state.trunk_adopted = !created;
                    self.trunk = Some(trunk);
                }
                Err(e) => {
                    self.error(e);
                    clean = false;
                }
            }
            self.publish();
        }
        if let Some(trunk) = self.trunk.clone()
            && self.options.annotating
        {
            let waiting: Vec<PodKey> = self.state.waiting.iter().cloned().collect();
            for key in waiting {
                clean &= self.branch_pod(&trunk, &key).await;
                self.publish();
            }
        }
        let now = Instant::now();
        let (due, later) = std::mem::take(&mut self.cooling)
            .into_iter()
            .partition::<Vec<_>, _>(|c| c.due <= now);
        self.cooling = later;
        for mut c in due {
            let deleted = self.ec2.delete_branch(&c.branch).await;
            if let Some(e) = deleted.error {
                self.error(e);
                clean = false;
            }
            if deleted.gone {
                self.log(&format!("branch {} deleted", c.branch.eni_id));
                self.state.deleted.push(c.branch.eni_id);
            } else {
                c.due = now + self.backoff;
                self.cooling.push(c);
            }
            self.publish();
        }
        if clean {
            self.retry_at = None;
            self.backoff = FIRST_RETRY;
        } else {
            self.retry_at = Some(Instant::now() + self.backoff);
            self.backoff = (self.backoff * 2).min(MAX_RETRY);
        }
        self.publish();
    }

    /// Gives a waiting pod its branch (unless it has one whose annotation failed) and
    /// annotates it; false on a failure.
    async fn branch_pod(&mut self, trunk: &Trunk, key: &PodKey) -> bool {
        let (namespace, name) = key;
        let branch = match self.state.branches.get(key) {
            Some(branch) => branch.clone(),
            None => match self.ec2.create_branch(trunk).await {
                Ok(branch) => {
                    self.log(&format!(
                        "pod {namespace}/{name}: branch {} VLAN {} ({}, {})",
                        branch.eni_id, branch.vlan, branch.ip, branch.mac
                    ));
                    self.state.branches.insert(key.clone(), branch.clone());
                    branch
                }
                Err(e) => {
                    self.error(format!("pod {namespace}/{name}: {e}"));
                    return false;
                }
            },
        };
        let patch = serde_json::json!({
            "metadata": {"annotations": {POD_ENI: branch.annotation()}}
        });
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        match pods
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => {
                self.state.annotated.insert(key.clone());
                true
            }
            Err(kube::Error::Api(status)) if status.is_not_found() => {
                // Deleted meanwhile (its delete event, folded later, finds nothing to do).
                self.pods.remove(key);
                self.forget(key);
                true
            }
            Err(e) => {
                self.error(format!("pod {namespace}/{name}: annotate: {e}"));
                false
            }
        }
    }
}
