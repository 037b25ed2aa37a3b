//! Plain data in and out of the pool engine: time, keys, observations, inputs, replies and
//! actions (the EC2 calls, outcomes and failures are in `ec2.rs`).
//! Everything is `Debug + Clone + PartialEq + Serialize`, so tests assert on it, `eniplan
//! simulate` prints it, and the daemon's executor interprets it.

use std::fmt;
use std::net::Ipv4Addr;
use std::ops::{Add, Sub};
use std::time::Duration;

use ipnetwork::Ipv4Network;
use serde::{Deserialize, Serialize};

use super::{Ec2Call, Failure, Outcome};

/// A point in time on the engine's clock: milliseconds since an arbitrary epoch chosen by the
/// caller (the daemon uses its start; simulations start at 0). The engine never reads a clock.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Time(pub u64);

impl Time {
    /// `secs` seconds after the epoch.
    pub const fn from_secs(secs: u64) -> Time {
        Time(secs * 1000)
    }
    /// Milliseconds since the epoch.
    pub const fn as_millis(self) -> u64 {
        self.0
    }
    /// Time elapsed since `earlier` (zero if `earlier` is later).
    pub fn since(self, earlier: Time) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0))
    }
}

impl Add<Duration> for Time {
    type Output = Time;
    fn add(self, d: Duration) -> Time {
        Time(
            self.0
                .saturating_add(u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        )
    }
}

impl Sub<Duration> for Time {
    type Output = Time;
    fn sub(self, d: Duration) -> Time {
        Time(
            self.0
                .saturating_sub(u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        )
    }
}

impl fmt::Display for Time {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:03}s", self.0 / 1000, self.0 % 1000)
    }
}

/// The CNI key of a pod's address: the CNI spec's primary key (network name, container id,
/// interface name). The network namespace is deliberately not part of it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PodKey {
    /// The conflist's `name` (`aws-cni`).
    pub network_name: String,
    /// `CNI_CONTAINERID`.
    pub container_id: String,
    /// `CNI_IFNAME` (normally `eth0`).
    pub if_name: String,
}

impl PodKey {
    /// A key on the default network `aws-cni`, interface `eth0`.
    pub fn new(container_id: impl Into<String>) -> PodKey {
        PodKey {
            network_name: "aws-cni".to_owned(),
            container_id: container_id.into(),
            if_name: "eth0".to_owned(),
        }
    }
}

impl fmt::Display for PodKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}/{}",
            self.network_name, self.container_id, self.if_name
        )
    }
}

/// An ENI id (`eni-0123…`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EniId(pub String);

impl fmt::Display for EniId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Identifies one EC2 operation the engine asked for; its outcome comes back with the same id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct OpId(pub u64);

impl fmt::Display for OpId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "op-{}", self.0)
    }
}

/// One ENI as IMDS/EC2 report it (start-up and periodic reconciliation).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObservedEni {
    /// ENI id.
    pub id: EniId,
    /// Attachment device number (0 = the primary ENI).
    pub device: u32,
    /// The ENI's primary private address (never given to pods).
    pub primary_ip: Ipv4Addr,
    /// Secondary private addresses.
    pub ips: Vec<Ipv4Addr>,
    /// Delegated IPv4 prefixes.
    pub prefixes: Vec<Ipv4Network>,
    /// A trunk ENI (security groups for pods): counts as an ENI, never carries pool addresses.
    pub trunk: bool,
    /// Not managed by eniplan (a `no_manage` tag, another owner, EFA-only): counts against the
    /// ENI limit and is otherwise ignored.
    pub unmanaged: bool,
}

/// Inputs to [`super::Pool::step`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "input", rename_all = "kebab-case")]
pub enum Input {
    /// Time passed; re-evaluate the pool.
    Tick,
    /// A pod needs an address (CNI ADD). Idempotent per key.
    AddPod {
        /// The pod's key.
        key: PodKey,
    },
    /// A pod's address is no longer needed (CNI DEL). Idempotent: an unknown key is reported.
    DelPod {
        /// The pod's key.
        key: PodKey,
    },
    /// The result of an EC2 operation the engine asked for.
    Outcome {
        /// The operation.
        op: OpId,
        /// What EC2 answered.
        result: Result<Outcome, Failure>,
    },
    /// The node's ENIs as IMDS/EC2 see them now. The first one initialises the pool; later ones
    /// reconcile it (EC2 is the truth).
    Observed {
        /// Every attached ENI.
        enis: Vec<ObservedEni>,
    },
    /// Pod ownership from a checkpoint, after the first `Observed`.
    Restore {
        /// The checkpoint's allocations.
        allocations: Vec<(PodKey, Ipv4Addr)>,
    },
    /// The daemon is shutting down: stop growing and freeing ENIs, keep serving pods.
    Terminate,
    /// The node's `node.kubernetes.io/unschedulable:NoSchedule` taint was set (`false`) or
    /// removed (`true`). A cordoned node neither attaches nor frees ENIs and addresses unless
    /// `AWS_MANAGE_ENIS_NON_SCHEDULABLE`; shrinking still runs.
    Schedulable {
        /// Whether the node is schedulable.
        schedulable: bool,
    },
    /// The node is cordoned or draining (`true`) or no longer (`false`). With
    /// `ENIPLAN_RELEASE_WARM_WHEN_UNSCHEDULABLE` the pool then keeps no warm addresses: it
    /// stops growing and hands back every unused address, prefix and idle ENI.
    Draining {
        /// Whether the node is being drained.
        draining: bool,
    },
    /// The kubelet's max pods, as the node reports it (growth stops at this many addresses).
    MaxPods {
        /// Pods the kubelet admits.
        max_pods: u32,
    },
    /// Whether new ENIs may be created: `Some(reason)` while they may not (custom networking
    /// with no usable ENIConfig); the ENIs already attached keep growing.
    NewEnis {
        /// Why not, or `None` once they may.
        blocked: Option<String>,
    },
}

/// Why a pod got no address. The daemon reports it in the CNI error and `/v1/decisions`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "reason", rename_all = "kebab-case")]
pub enum NoAddress {
    /// The pool has not been initialised from IMDS yet.
    NotReady,
    /// Free addresses exist but all are cooling down after pods released them.
    AllCooling {
        /// When the first one becomes assignable.
        until: Time,
    },
    /// The pool is growing; an EC2 call is in flight.
    Growing,
    /// Every usable ENI slot is taken and every ENI is full (instance limit or `MAX_ENI`).
    NodeFull {
        /// ENIs the node may use.
        max_enis: u32,
    },
    /// The pool already holds as many addresses as the node may run pods (kubelet max-pods).
    MaxPodsReached {
        /// The node's max pods.
        max_pods: u32,
    },
    /// `MINIMUM_IP_TARGET` is set and `WARM_IP_TARGET` is not: the pool never grows past it.
    MinimumIpTargetReached {
        /// The target.
        minimum_ip_target: u32,
    },
    /// EC2 said the subnet has no room; growth is paused.
    SubnetFull {
        /// What EC2 said.
        failure: Failure,
        /// When growth resumes.
        until: Time,
    },
    /// The last growth call failed (not for want of room in the subnet); it is retried at
    /// `until`.
    GrowthRetrying {
        /// What EC2 (or the node) answered.
        failure: Failure,
        /// When growth is tried again.
        until: Time,
    },
    /// The daemon is shutting down and no longer grows the pool.
    Terminating,
    /// The node is cordoned and `AWS_MANAGE_ENIS_NON_SCHEDULABLE` is off.
    Unschedulable,
    /// `DISABLE_NETWORK_RESOURCE_PROVISIONING`: the pool only uses what is attached.
    ProvisioningDisabled,
    /// The node is cordoned or draining and `ENIPLAN_RELEASE_WARM_WHEN_UNSCHEDULABLE` keeps no
    /// warm addresses.
    Draining,
    /// The attached ENIs are full and a new one may not be created (see [`Input::NewEnis`]).
    NewEnisBlocked {
        /// Why.
        why: String,
    },
}

impl fmt::Display for NoAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NoAddress::NotReady => f.write_str("the address pool is not initialised yet"),
            NoAddress::AllCooling { until } => write!(
                f,
                "all free addresses are cooling down after release (IP_COOLDOWN_PERIOD); the first is free at {until}"
            ),
            NoAddress::Growing => f.write_str("no free address yet; the pool is growing (EC2 call in flight)"),
            NoAddress::NodeFull { max_enis } => write!(
                f,
                "the node is full: all {max_enis} usable ENIs hold their maximum addresses (instance limit or MAX_ENI)"
            ),
            NoAddress::MaxPodsReached { max_pods } => write!(
                f,
                "the pool holds as many addresses as the node's max pods ({max_pods}) and does not grow further"
            ),
            NoAddress::MinimumIpTargetReached { minimum_ip_target } => write!(
                f,
                "MINIMUM_IP_TARGET={minimum_ip_target} without WARM_IP_TARGET caps the pool; set WARM_IP_TARGET to grow beyond it"
            ),
            NoAddress::SubnetFull { failure, until } => write!(
                f,
                "the subnet has no room ({failure}); growth resumes at {until}"
            ),
            NoAddress::GrowthRetrying { failure, until } => write!(
                f,
                "growing the pool failed ({failure}); it is retried at {until}"
            ),
            NoAddress::Terminating => f.write_str("the daemon is shutting down and does not grow the pool"),
            NoAddress::ProvisioningDisabled => f.write_str(
                "every attached address is in use and DISABLE_NETWORK_RESOURCE_PROVISIONING forbids attaching more",
            ),
            NoAddress::Draining => f.write_str(
                "the node is cordoned or draining and ENIPLAN_RELEASE_WARM_WHEN_UNSCHEDULABLE keeps no warm addresses; uncordon it for new pods",
            ),
            NoAddress::NewEnisBlocked { why } => write!(
                f,
                "the attached ENIs are full and no new ENI can be created: {why}"
            ),
            NoAddress::Unschedulable => f.write_str(
                "the node is cordoned (node.kubernetes.io/unschedulable) and AWS_MANAGE_ENIS_NON_SCHEDULABLE is off, so the pool does not grow",
            ),
        }
    }
}

/// A pod's address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PodAddress {
    /// The address.
    pub ip: Ipv4Addr,
    /// The ENI it lives on.
    pub eni: EniId,
    /// That ENI's device number (the route table is `device + 1`, main for 0).
    pub device: u32,
}

/// Answers to pods.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "reply", rename_all = "kebab-case")]
pub enum Reply {
    /// ADD: the pod's address (the same one again for a repeated ADD).
    Assigned {
        /// The pod.
        key: PodKey,
        /// Its address.
        address: PodAddress,
    },
    /// ADD: no address, and why.
    NoAddress {
        /// The pod.
        key: PodKey,
        /// Why.
        reason: NoAddress,
    },
    /// DEL: the address was released (it cools down before reuse).
    Released {
        /// The pod.
        key: PodKey,
        /// The address it had.
        address: PodAddress,
    },
    /// DEL of a key that holds nothing (already released, or never assigned).
    UnknownPod {
        /// The pod.
        key: PodKey,
    },
    /// Restore: ownership taken over from the checkpoint.
    Restored {
        /// The pod.
        key: PodKey,
        /// Its address.
        address: PodAddress,
    },
    /// Restore: the entry was dropped (its address is on no ENI, or is claimed twice).
    RestoreDropped {
        /// The pod.
        key: PodKey,
        /// The address in the checkpoint.
        ip: Ipv4Addr,
        /// Why.
        why: String,
    },
    /// Reconcile: EC2 no longer has this pod's address; the pod lost it.
    ForceRemoved {
        /// The pod.
        key: PodKey,
        /// The address it had.
        ip: Ipv4Addr,
    },
}

/// What the engine wants done.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum Action {
    /// Call EC2.
    Call {
        /// Identifies the outcome.
        op: OpId,
        /// The call.
        call: Ec2Call,
        /// Why the engine asked for it, in words.
        reason: String,
    },
    /// Answer a pod request.
    Reply(Reply),
}
