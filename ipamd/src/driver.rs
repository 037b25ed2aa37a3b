//! The pool loop: one task owns the engine (`planner::pool::Pool`) and turns ticks, pod requests,
//! EC2 outcomes and observations into its inputs; it dispatches the calls the engine asks for
//! to executor tasks, whose outcomes come back as events. Replies to pods wait for the
//! checkpoint to be on disk.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use cloud::Ec2;
use planner::pool::{
    Action, AddressView, Failure, Input, NoAddress, ObservedEni, OpId, Outcome, PodAddress, PodKey,
    Pool, PoolSnapshot, Reply, Time,
};
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::checkpoint::{Checkpointer, Entry, Metadata};
use crate::executor::Executor;
use crate::metrics::Metrics;

/// A checkpoint acknowledgement: resolves once the change is on disk.
pub type Durable = oneshot::Receiver<Result<(), String>>;

/// Most requests one checkpoint write acknowledges.
const GROUP_COMMIT_MAX: usize = 256;

/// Inputs of the loop.
pub enum Event {
    /// CNI ADD.
    Add {
        /// The pod's key.
        key: PodKey,
        /// Pod metadata for the checkpoint.
        meta: Metadata,
        /// The answer.
        reply: oneshot::Sender<Result<(PodAddress, Durable), NoAddress>>,
    },
    /// CNI DEL.
    Del {
        /// The pod's key.
        key: PodKey,
        /// The answer: the released address, or `None` for an unknown pod.
        reply: oneshot::Sender<Option<(PodAddress, Durable)>>,
    },
    /// The pool check timer.
    Tick,
    /// An EC2 call finished.
    Outcome {
        /// The operation.
        op: OpId,
        /// Its result.
        result: Result<Outcome, Failure>,
    },
    /// A reconcile pass observed these ENIs (every attached one, unmanaged included).
    Observed(Vec<ObservedEni>),
    /// The checkpoint write of this ADD failed: undo the assignment.
    Undo(PodKey),
    /// A read of the state, for introspection and reconcile.
    Query(oneshot::Sender<View>),
    /// Start-up: tick, and answer once a tick asks EC2 for nothing more (the pool is quiet).
    Settle(oneshot::Sender<View>),
    /// SIGTERM: stop growing.
    Terminate,
    /// What the Kubernetes API says the engine should know changed.
    Cluster(crate::k8s::Inputs),
    /// This node's pods, as the watch (listed at `listed_at`, Unix ns) has them: answers the
    /// checkpoint entries whose pod is not among them (or is only as a newer pod of the same
    /// name) and whose ADD and that list are both older than `grace` — candidates the caller
    /// confirms with the API before releasing ([`crate::k8s::gone`]).
    GoneCandidates {
        /// (namespace, name) of every pod on the node, with its UID and creation time.
        pods: Arc<crate::k8s::gone::PodsOnNode>,
        /// When (monotonic) the sweeper first saw the watch listed.
        listed: Instant,
        /// `ENIPLAN_POD_RELEASE_GRACE_SECS`.
        grace: std::time::Duration,
        /// The candidates.
        reply: oneshot::Sender<Vec<Candidate>>,
    },
    /// Candidates the API confirmed gone: their addresses are released (unless re-added since).
    ReleaseGone(Vec<Candidate>),
}

/// A checkpoint entry whose pod may be gone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// The pod's key.
    pub key: PodKey,
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// Its UID as recorded at the ADD (empty if unknown then).
    pub uid: String,
    /// Its ADD's time (Unix ns): a re-ADD since makes the candidate stale.
    pub allocated_at: i64,
}

/// What introspection shows.
#[derive(Debug, Clone, Serialize)]
pub struct View {
    /// The engine's snapshot.
    pub snapshot: PoolSnapshot,
    /// Every held address.
    pub addresses: Vec<AddressView>,
    /// The most recent decisions, newest last.
    pub decisions: Vec<Decision>,
    /// The last pod ADD that got no address, and why.
    pub last_no_address: Option<NoAddressRecord>,
    /// What the engine was last told from the Kubernetes API.
    pub cluster: Option<crate::k8s::Inputs>,
}

/// One EC2 call the engine asked for.
#[derive(Debug, Clone, Serialize)]
pub struct Decision {
    /// Engine time, ms.
    pub time_ms: u64,
    /// Operation id.
    pub op: OpId,
    /// The call.
    pub call: String,
    /// Why.
    pub reason: String,
    /// `pending`, `ok`, or the failure.
    pub outcome: String,
}

/// The last failed ADD.
#[derive(Debug, Clone, Serialize)]
pub struct NoAddressRecord {
    /// Engine time, ms.
    pub time_ms: u64,
    /// The pod.
    pub pod: String,
    /// Why.
    pub reason: NoAddress,
    /// In words.
    pub message: String,
}

const DECISIONS_KEPT: usize = 200;

/// The loop's state.
pub struct Driver<E> {
    pool: Pool,
    start: Instant,
    exec: Arc<Executor<E>>,
    tx: mpsc::Sender<Event>,
    ckpt: Checkpointer,
    metrics: Arc<Metrics>,
    ip_max: u32,
    devices: BTreeSet<u32>,
    decisions: VecDeque<Decision>,
    last_no_address: Option<NoAddressRecord>,
    /// `Settle` callers waiting for the pool to become quiet.
    settling: Vec<oneshot::Sender<View>>,
    cluster: Option<crate::k8s::Inputs>,
    notices: Option<crate::k8s::events::Notices>,
    /// When (monotonic) each pod ADDed since start-up got its address: the gone-pod grace is
    /// measured on this clock, which a step of the wall clock does not move. Restored entries
    /// count from start-up.
    added: BTreeMap<PodKey, Instant>,
}

/// Now, in Unix nanoseconds (the checkpoint's timestamps).
pub(crate) fn unix_nanos() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

impl<E: Ec2 + 'static> Driver<E> {
    /// A driver over an initialised pool.
    pub fn new(
        pool: Pool,
        start: Instant,
        exec: Arc<Executor<E>>,
        tx: mpsc::Sender<Event>,
        ckpt: Checkpointer,
        metrics: Arc<Metrics>,
        observed: &[ObservedEni],
    ) -> Driver<E> {
        let ip_max = {
            let s = pool.snapshot();
            let per_eni = planner::pool::targets::addresses_per_eni(
                s.mode,
                u32::from(exec.node.limits.ipv4_per_eni),
            );
            per_eni * s.eni_budget
        };
        Driver {
            pool,
            start,
            exec,
            tx,
            ckpt,
            metrics,
            ip_max,
            devices: observed.iter().map(|o| o.device).collect(),
            decisions: VecDeque::new(),
            last_no_address: None,
            settling: Vec::new(),
            cluster: None,
            notices: None,
            added: BTreeMap::new(),
        }
    }

    /// Sends Kubernetes Events for what an operator must act on.
    pub fn set_notices(&mut self, notices: crate::k8s::events::Notices) {
        self.notices = Some(notices);
    }

    fn notify(&self, subject: crate::k8s::events::Subject, reason: &'static str, note: String) {
        if let Some(n) = &self.notices {
            let warning = !matches!(reason, "ENIConfigUsable");
            let _ = n.try_send(crate::k8s::events::Notice {
                subject,
                warning,
                reason,
                note,
            });
        }
    }

    fn view(&self) -> View {
        View {
            snapshot: self.pool.snapshot(),
            addresses: self.pool.addresses(),
            decisions: self.decisions.iter().cloned().collect(),
            last_no_address: self.last_no_address.clone(),
            cluster: self.cluster.clone(),
        }
    }

    /// Ticks if nothing is in flight; if the tick asked for nothing either, answers every
    /// `Settle` caller.
    fn settle(&mut self) {
        if self.settling.is_empty() || !self.pool.snapshot().in_flight.is_empty() {
            return;
        }
        self.step(Input::Tick);
        let view = self.view();
        if view.snapshot.in_flight.is_empty() {
            for reply in self.settling.drain(..) {
                let _ = reply.send(view.clone());
            }
        }
    }

    fn now(&self) -> Time {
        Time(u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX))
    }

    /// Feeds one input and dispatches the calls; returns the replies.
    fn step(&mut self, input: Input) -> Vec<Reply> {
        let now = self.now();
        let actions = self.pool.step(now, input);
        let mut replies = Vec::new();
        for action in actions {
            match action {
                Action::Reply(r) => replies.push(r),
                Action::Call { op, call, reason } => {
                    tracing::info!(%op, %call, %reason, "EC2 call");
                    self.decisions.push_back(Decision {
                        time_ms: now.as_millis(),
                        op,
                        call: call.to_string(),
                        reason,
                        outcome: "pending".into(),
                    });
                    while self.decisions.len() > DECISIONS_KEPT {
                        self.decisions.pop_front();
                    }
                    let mut devices = self.devices.clone();
                    devices.extend(self.pool.snapshot().enis.iter().map(|e| e.device));
                    let exec = Arc::clone(&self.exec);
                    let tx = self.tx.clone();
                    tokio::spawn(async move {
                        let result = exec.execute(call, devices).await;
                        let _ = tx.send(Event::Outcome { op, result }).await;
                    });
                }
            }
        }
        for r in &replies {
            if let Reply::ForceRemoved { key, ip } = r {
                tracing::warn!(pod = %key, %ip, "EC2 no longer has this pod's address; removed");
                self.metrics.force_removed_ips.inc();
                self.ckpt.remove(key);
            }
        }
        self.metrics.observe(&self.pool.snapshot(), self.ip_max);
        replies
    }

    fn add(
        &mut self,
        key: PodKey,
        meta: Metadata,
        reply: oneshot::Sender<Result<(PodAddress, Durable), NoAddress>>,
    ) {
        self.metrics.add_requests.inc();
        let replies = self.step(Input::AddPod { key: key.clone() });
        let answer = replies.into_iter().find_map(|r| match r {
            Reply::Assigned { key: k, address } if k == key => Some(Ok(address)),
            Reply::NoAddress { key: k, reason } if k == key => Some(Err(reason)),
            _ => None,
        });
        match answer {
            Some(Ok(address)) => {
                let entry = Entry {
                    network_name: key.network_name.clone(),
                    container_id: key.container_id.clone(),
                    if_name: key.if_name.clone(),
                    ipv4: Some(address.ip.to_string()),
                    ipv6: None,
                    allocation_timestamp: unix_nanos(),
                    metadata: Metadata {
                        interfaces_count: 1,
                        ..meta
                    },
                };
                self.added.insert(key.clone(), Instant::now());
                self.ckpt.put(key, entry);
                let _ = reply.send(Ok((address, self.ckpt.sync())));
            }
            Some(Err(reason)) => {
                self.metrics.no_available.inc();
                if !meta.pod_name.is_empty() {
                    let subject = crate::k8s::events::Subject::Pod {
                        namespace: meta.pod_namespace.clone(),
                        name: meta.pod_name.clone(),
                    };
                    self.notify(subject, "FailedToAssignIP", reason.to_string());
                }
                if matches!(
                    reason,
                    NoAddress::NodeFull { .. } | NoAddress::MaxPodsReached { .. }
                ) {
                    let subject = crate::k8s::events::Subject::Node;
                    self.notify(subject, "NodeIPLimitReached", reason.to_string());
                }
                tracing::warn!(pod = %key, %reason, "no address for pod");
                self.last_no_address = Some(NoAddressRecord {
                    time_ms: self.now().as_millis(),
                    pod: key.to_string(),
                    message: reason.to_string(),
                    reason: reason.clone(),
                });
                let _ = reply.send(Err(reason));
            }
            None => {
                self.metrics
                    .ipamd_errors
                    .with_label_values(&["addPod"])
                    .inc();
                let _ = reply.send(Err(NoAddress::NotReady));
            }
        }
    }

    /// Handles one event.
    pub fn handle(&mut self, event: Event) {
        match event {
            Event::Add { key, meta, reply } => self.add(key, meta, reply),
            Event::Del { key, reply } => {
                let replies = self.step(Input::DelPod { key: key.clone() });
                let released = replies.into_iter().find_map(|r| match r {
                    Reply::Released { key: k, address } if k == key => Some(address),
                    _ => None,
                });
                match released {
                    Some(address) => {
                        self.ckpt.remove(&key);
                        let _ = reply.send(Some((address, self.ckpt.sync())));
                    }
                    None => {
                        let _ = reply.send(None);
                    }
                }
            }
            Event::Tick => {
                self.step(Input::Tick);
            }
            Event::Outcome { op, result } => {
                if let Some(d) = self.decisions.iter_mut().rev().find(|d| d.op == op) {
                    d.outcome = match &result {
                        Ok(_) => "ok".into(),
                        Err(f) => f.to_string(),
                    };
                }
                match &result {
                    Err(f) if f.is_subnet_full() => {
                        tracing::warn!(%op, failure = %f, "EC2 call failed");
                        let note = format!(
                            "the subnet has no room for the pool's next addresses ({f}); growth pauses and retries"
                        );
                        self.notify(crate::k8s::events::Subject::Node, "SubnetFull", note);
                    }
                    Err(f @ Failure::Unauthorized { action }) => {
                        tracing::warn!(%op, failure = %f, "EC2 call failed");
                        let note = format!(
                            "ipamd's IAM role lacks {action}; grant it (docs/iam-policy.json)"
                        );
                        self.notify(
                            crate::k8s::events::Subject::Node,
                            "EC2PermissionDenied",
                            note,
                        );
                    }
                    Err(f) => tracing::warn!(%op, failure = %f, "EC2 call failed"),
                    Ok(o) => tracing::debug!(%op, outcome = ?o, "EC2 call done"),
                }
                self.step(Input::Outcome { op, result });
                self.settle();
            }
            Event::Observed(enis) => {
                self.devices = enis.iter().map(|o| o.device).collect();
                let before = self.pool.snapshot().enis.len();
                let replies = self.step(Input::Observed { enis });
                let removed_enis = before.saturating_sub(self.pool.snapshot().enis.len());
                if removed_enis > 0
                    && replies
                        .iter()
                        .any(|r| matches!(r, Reply::ForceRemoved { .. }))
                {
                    self.metrics.force_removed_enis.inc();
                }
                self.metrics
                    .reconcile
                    .with_label_values(&["eniReconcile"])
                    .inc();
            }
            Event::Undo(key) => {
                self.metrics
                    .ipamd_errors
                    .with_label_values(&["checkpoint"])
                    .inc();
                self.step(Input::DelPod { key });
            }
            Event::Query(reply) => {
                let _ = reply.send(self.view());
            }
            Event::Settle(reply) => {
                self.settling.push(reply);
                self.settle();
            }
            Event::Terminate => {
                self.step(Input::Terminate);
            }
            Event::Cluster(now) => self.cluster(now),
            Event::GoneCandidates {
                pods,
                listed,
                grace,
                reply,
            } => {
                let _ = reply.send(self.gone_candidates(&pods, listed, grace));
            }
            Event::ReleaseGone(confirmed) => self.release_gone(confirmed),
        }
    }

    /// Checkpoint entries whose pod is gone, as far as the watch tells ([`crate::k8s::gone`]),
    /// among those whose ADD and the watch's first list are both older than `grace`.
    fn gone_candidates(
        &mut self,
        pods: &crate::k8s::gone::PodsOnNode,
        listed: Instant,
        grace: std::time::Duration,
    ) -> Vec<Candidate> {
        let ckpt = &self.ckpt;
        self.added.retain(|k, _| ckpt.entries().contains_key(k));
        let (added, start, now) = (&self.added, self.start, Instant::now());
        let settled = |key: &PodKey| {
            let at = added.get(key).copied().unwrap_or(start);
            now.saturating_duration_since(at.max(listed)) >= grace
        };
        crate::k8s::gone::candidates(ckpt.entries(), pods, settled)
    }

    /// Releases the addresses of pods the API confirmed gone from this node (S-35's purpose,
    /// from the API rather than host veths).
    fn release_gone(&mut self, confirmed: Vec<Candidate>) {
        for c in confirmed {
            let same = self
                .ckpt
                .entries()
                .get(&c.key)
                .is_some_and(|e| e.allocation_timestamp == c.allocated_at);
            if !same {
                continue; // DEL'd or re-ADDed meanwhile
            }
            let (key, pod) = (c.key, format!("{}/{}", c.namespace, c.name));
            let replies = self.step(Input::DelPod { key: key.clone() });
            let ip = replies.iter().find_map(|r| match r {
                Reply::Released { address, .. } => Some(address.ip),
                _ => None,
            });
            tracing::warn!(%pod, key = %key, ip = ?ip, "the pod no longer exists on this node; its address is released");
            self.metrics.pods_gone.inc();
            self.ckpt.remove(&key);
        }
    }

    /// Feeds what changed in the cluster's view to the engine.
    fn cluster(&mut self, now: crate::k8s::Inputs) {
        let before = self.cluster.take();
        // Where new ENIs may go first: the other inputs may make the engine grow at once.
        if before
            .as_ref()
            .is_none_or(|b| b.new_enis_blocked != now.new_enis_blocked)
        {
            let subject = crate::k8s::events::Subject::Node;
            match &now.new_enis_blocked {
                Some(why) => {
                    tracing::warn!(%why, "no new ENI can be created");
                    let reason = crate::k8s::events::blocked_reason(why);
                    self.notify(subject, reason, why.clone());
                }
                None if before.is_some() => {
                    tracing::info!("new ENIs may be created again");
                    let usable = "the node's ENIConfig is usable; new ENIs go to its subnet";
                    self.notify(subject, "ENIConfigUsable", usable.into());
                }
                None => {}
            }
            self.step(Input::NewEnis {
                blocked: now.new_enis_blocked.clone(),
            });
        }
        if before.as_ref().is_none_or(|b| b.max_pods != now.max_pods) {
            tracing::info!(
                max_pods = now.max_pods,
                from = now.max_pods_from,
                "max pods"
            );
            self.step(Input::MaxPods {
                max_pods: now.max_pods,
            });
        }
        if before
            .as_ref()
            .is_none_or(|b| b.schedulable != now.schedulable)
        {
            tracing::info!(schedulable = now.schedulable, "node schedulability");
            self.step(Input::Schedulable {
                schedulable: now.schedulable,
            });
        }
        if before.as_ref().is_none_or(|b| b.draining != now.draining) {
            tracing::info!(draining = now.draining, "node cordoned or draining");
            self.step(Input::Draining {
                draining: now.draining,
            });
        }
        self.cluster = Some(now);
    }

    /// Runs until every sender is gone.
    pub async fn run(mut self, mut rx: mpsc::Receiver<Event>) {
        while let Some(event) = rx.recv().await {
            self.handle(event);
            // Group commit: what is already queued is handled before one write acknowledges
            // it all (bounded, so a flood still gets its acknowledgements in batches).
            for _ in 0..GROUP_COMMIT_MAX {
                match rx.try_recv() {
                    Ok(event) => self.handle(event),
                    Err(_) => break,
                }
            }
            self.ckpt.flush();
        }
    }
}

/// Restores pod ownership from checkpoint entries into a freshly observed pool; returns the
/// entries kept (those whose address is on one of the node's ENIs), each the very entry whose
/// address the pool restored, so the rewritten checkpoint and the pool agree even when a
/// damaged file names a key twice.
pub fn restore(pool: &mut Pool, entries: &[Entry]) -> BTreeMap<PodKey, Entry> {
    let mut allocations = Vec::new();
    let mut by_claim: BTreeMap<(PodKey, Ipv4Addr), &Entry> = BTreeMap::new();
    for e in entries {
        match e.ipv4.as_deref().map(str::parse::<Ipv4Addr>) {
            Some(Ok(ip)) => {
                allocations.push((e.key(), ip));
                by_claim.entry((e.key(), ip)).or_insert(e);
            }
            _ => {
                tracing::warn!(pod = %e.key(), "checkpoint entry without a usable IPv4 address dropped");
            }
        }
    }
    let mut kept = BTreeMap::new();
    for action in pool.step(Time(0), Input::Restore { allocations }) {
        match action {
            Action::Reply(Reply::Restored { key, address }) => {
                if let Some(e) = by_claim.get(&(key.clone(), address.ip)) {
                    kept.insert(key, (*e).clone());
                }
            }
            Action::Reply(Reply::RestoreDropped { key, ip, why }) => {
                tracing::warn!(pod = %key, %ip, %why, "checkpoint entry dropped");
            }
            _ => {}
        }
    }
    kept
}
