//! A double of the EKS VPC resource controller, for security groups for pods (reference §7):
//! what it does for one node, against the EC2 harness and a Kubernetes API (`kube_fake`).
//!
//! * It watches the node's `CNINode` (`vpcresources.k8s.aws/v1alpha1`). Once its
//!   `spec.features` holds `SecurityGroupsForPods` (ipamd writes it), it adopts the trunk ENI
//!   attached to the instance, or creates one (`InterfaceType` trunk, description `trunk-eni`,
//!   tag `node.k8s.amazonaws.com/instance_id`, the node's subnet and groups) and attaches it at
//!   the highest free device index.
//! * It watches the node's pods (`spec.nodeName`). A pod whose first container has a
//!   `vpc.amazonaws.com/pod-eni…` limit and no `vpc.amazonaws.com/pod-eni` annotation gets a
//!   branch ENI (description `branch-eni`, the trunk's subnet, the node's groups), associated
//!   with the trunk at the lowest free VLAN id 1..=120, and the annotation (JSON merge patch).
//! * A deleted pod's branch is disassociated and deleted after the cool-down.
//!
//! Everything is driven by watch events (kube-runtime watchers, no polling); a failed step is
//! logged on stderr, recorded as [`State::last_error`] and tried again on the next event or,
//! while something is failing, after a short back-off. The work runs in one spawned task,
//! aborted when the [`ResourceController`] is dropped. Tests wait with
//! [`ResourceController::until`].
//!
//! Not modelled: `SecurityGroupPolicy` (every branch gets the node's groups), the webhook
//! (tests put the limit on the pod), custom networking's ENIConfig subnet, the branch limit
//! per instance type (EC2, that is the harness, refuses an association beyond it), node
//! deletion.

mod ec2;
mod run;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use cloud::aws::AwsEc2;
use kube::config::KubeConfigOptions;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use ec2::{BRANCH_DESCRIPTION, INSTANCE_TAG, TRUNK_DESCRIPTION, TRUNK_TAG, VLAN_IDS, VLAN_TAG};

/// The pod annotation (and, as a prefix, the extended resource) of a branch ENI.
pub const POD_ENI: &str = "vpc.amazonaws.com/pod-eni";
/// The CNINode feature that asks for a trunk.
pub const SECURITY_GROUPS_FOR_PODS: &str = "SecurityGroupsForPods";

/// A pod: namespace and name.
pub type PodKey = (String, String);

/// The node the double manages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeSpec {
    /// The Kubernetes node name (the CNINode's name, the pods' `spec.nodeName`).
    pub name: String,
    /// The EC2 instance.
    pub instance_id: String,
    /// Where a new trunk goes.
    pub subnet_id: String,
    /// Groups of the trunk and of every branch (none: the VPC's default group).
    pub security_groups: Vec<String>,
}

/// A pod's branch ENI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Branch {
    /// The branch ENI.
    pub eni_id: String,
    /// Its MAC, lower case.
    pub mac: String,
    /// Its primary private IPv4 address.
    pub ip: String,
    /// Its VLAN id on the trunk.
    pub vlan: u16,
    /// The trunk association (`trunk-assoc-…`).
    pub association_id: String,
    /// The CIDR of the branch's subnet.
    pub subnet_cidr: String,
}

impl Branch {
    /// The `vpc.amazonaws.com/pod-eni` annotation for this branch: a JSON array of one object
    /// with the resource controller's keys (`ENIDetails`; no IPv6, so its two fields are empty).
    pub fn annotation(&self) -> String {
        serde_json::json!([{
            "eniId": self.eni_id,
            "ifAddress": self.mac,
            "privateIp": self.ip,
            "ipv6Addr": "",
            "vlanId": self.vlan,
            "subnetCidr": self.subnet_cidr,
            "subnetV6Cidr": "",
            "associationID": self.association_id,
        }])
        .to_string()
    }
}

/// Settings of the double.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// How long a deleted pod's branch waits before it is disassociated and deleted (the
    /// resource controller's `branch-eni-cooldown`, 60 s there; here 0 by default).
    pub cooldown: Duration,
    /// Whether pods get branches and annotations; while off, they wait unannotated.
    pub annotating: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            cooldown: Duration::ZERO,
            annotating: true,
        }
    }
}

/// What the double has seen and done, published after every step.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct State {
    /// The CNINode has been listed (whether or not it exists).
    pub cninode_synced: bool,
    /// The node's pods have been listed.
    pub pods_synced: bool,
    /// The CNINode's features hold `SecurityGroupsForPods`.
    pub sgp_requested: bool,
    /// The trunk ENI, once created or adopted.
    pub trunk: Option<String>,
    /// Whether the trunk was adopted (it was attached already) rather than created.
    pub trunk_adopted: bool,
    /// [`Options::annotating`] as the task last read it.
    pub annotating: bool,
    /// Every live pod's branch (also one whose annotation has not been written yet).
    pub branches: BTreeMap<PodKey, Branch>,
    /// Pods this double annotated.
    pub annotated: BTreeSet<PodKey>,
    /// Pods that want a branch and have no annotation yet.
    pub waiting: BTreeSet<PodKey>,
    /// Branches of deleted pods, in their cool-down (or failing to be deleted).
    pub cooling: Vec<(PodKey, Branch)>,
    /// Branch ENIs deleted, in order.
    pub deleted: Vec<String>,
    /// The last error (EC2, the API server, a watch), kept after a later retry succeeded.
    pub last_error: Option<String>,
    /// How many errors there were.
    pub errors: u64,
}

/// The running double; dropping it stops it (EC2 and pods are left as they are).
#[derive(Debug)]
pub struct ResourceController {
    state: watch::Receiver<State>,
    options: watch::Sender<Options>,
    task: JoinHandle<()>,
}

/// Starts the double for `node` with default [`Options`]: EC2 through `ec2` (the harness), the
/// Kubernetes API of the kubeconfig at `kubeconfig`.
///
/// # Panics
/// When the kubeconfig cannot be read or gives no client.
pub async fn start(ec2: AwsEc2, kubeconfig: &Path, node: NodeSpec) -> ResourceController {
    ResourceController::start(ec2, kubeconfig, node).await
}

impl ResourceController {
    /// Starts the double for `node` with default [`Options`]; see [`start`].
    ///
    /// # Panics
    /// When the kubeconfig cannot be read or gives no client.
    pub async fn start(ec2: AwsEc2, kubeconfig: &Path, node: NodeSpec) -> ResourceController {
        ResourceController::start_with(ec2, kubeconfig, node, Options::default()).await
    }

    /// Starts the double for `node` with `options` (e.g. annotating off from the start).
    ///
    /// # Panics
    /// When the kubeconfig cannot be read or gives no client.
    pub async fn start_with(
        ec2: AwsEc2,
        kubeconfig: &Path,
        node: NodeSpec,
        options: Options,
    ) -> ResourceController {
        let config = kube::config::Kubeconfig::read_from(kubeconfig)
            .unwrap_or_else(|e| panic!("read the kubeconfig {}: {e}", kubeconfig.display()));
        let config = kube::Config::from_custom_kubeconfig(config, &KubeConfigOptions::default())
            .await
            .unwrap_or_else(|e| panic!("the kubeconfig {}: {e}", kubeconfig.display()));
        let client = kube::Client::try_from(config).expect("a Kubernetes client");
        let (state_tx, state) = watch::channel(State {
            annotating: options.annotating,
            ..State::default()
        });
        let (options, options_rx) = watch::channel(options);
        let ec2 = ec2::Ec2::new(ec2.sdk().clone(), node.clone());
        let task = tokio::spawn(run::run(client, ec2, node.name, options_rx, state_tx));
        ResourceController {
            state,
            options,
            task,
        }
    }

    /// The trunk ENI's id, once there is one.
    pub fn trunk(&self) -> Option<String> {
        self.state.borrow().trunk.clone()
    }

    /// Every live pod's branch, by namespace and name.
    pub fn branches(&self) -> BTreeMap<PodKey, Branch> {
        self.state.borrow().branches.clone()
    }

    /// The whole state now.
    pub fn state(&self) -> State {
        self.state.borrow().clone()
    }

    /// Turns branching and annotating pods on or off. Off, new pods stay unannotated (a CNI
    /// ADD before the controller has annotated); on again, the waiting pods are handled at
    /// once. To start with it off, use [`ResourceController::start_with`].
    pub fn set_annotating(&self, on: bool) {
        self.options.send_modify(|o| o.annotating = on);
    }

    /// Sets the cool-down of branches of pods deleted from now on.
    pub fn set_cooldown(&self, cooldown: Duration) {
        self.options.send_modify(|o| o.cooldown = cooldown);
    }

    /// Waits until `f` holds for the state (re-checked on every change, no sleeping) and
    /// returns that state.
    ///
    /// # Panics
    /// After `deadline`, or when the double's task has ended, naming `what` and showing the
    /// state (with its last error).
    pub async fn until<F>(&self, what: &str, deadline: Duration, mut f: F) -> State
    where
        F: FnMut(&State) -> bool,
    {
        let mut state = self.state.clone();
        let waited = tokio::time::timeout(deadline, async {
            state.wait_for(|s| f(s)).await.map(|s| s.clone())
        })
        .await;
        match waited {
            Ok(Ok(s)) => s,
            Ok(Err(watch::error::RecvError { .. })) => panic!(
                "resource controller: its task ended while waiting for {what}; state: {:#?}",
                *state.borrow()
            ),
            Err(tokio::time::error::Elapsed { .. }) => panic!(
                "resource controller: timed out after {deadline:?} waiting for {what}; state: {:#?}",
                *state.borrow()
            ),
        }
    }
}

impl Drop for ResourceController {
    fn drop(&mut self) {
        self.task.abort();
    }
}
