//! The node's real pod capacity, written where node bootstrap can read it (eks-ami PR #2293
//! asks for this instead of a max-pods table): `<state dir>/allocatable.json`, i.e.
//! `/var/run/aws-node/allocatable.json` on the host, replaced atomically.
//!
//! It is `planner::max_pods` (the arithmetic `eniplan max-pods` and the VPC CNI's calculator
//! use) for this instance with the daemon's real settings — prefix delegation, custom
//! networking, security groups for pods, `MAX_ENI` — and the ENIs it found attached but does not
//! manage subtracted. It is written at start and again whenever that count changes (an
//! unmanaged ENI attached or detached later, seen by the reconcile loop's EC2 look). A kubelet
//! restart (or a nodeadm `maxPodsExpression` that reads the file) then gets the count ipamd can
//! serve; on a fresh node, before ipamd ran, `eniplan max-pods TYPE` with the same flags gives
//! the same number offline.

use std::num::NonZeroU32;
use std::path::Path;

use planner::max_pods::{self, MaxPods, Options};
use serde::Serialize;

use crate::config::Config;
use crate::node::Node;

/// The file's name in the state directory.
pub const FILE: &str = "allocatable.json";

/// What the file holds.
#[derive(Debug, Clone, Serialize)]
pub struct Allocatable {
    /// Format version of this file.
    pub version: u32,
    /// The instance.
    pub instance_id: String,
    /// ENIs attached but not managed by ipamd (subtracted).
    pub unmanaged_enis: u32,
    /// Where the instance type's limits came from: `catalogue`, `ec2` (a type the catalogue
    /// does not know, described by EC2 at this start) or `cache` (at an earlier start).
    pub limits_from: crate::node::LimitsSource,
    /// The result and its parts (`max_pods`, `recommended_max_pods`, `pod_addresses`, `mode`…).
    pub max_pods: MaxPods,
}

/// The node's capacity under `config`.
pub fn compute(node: &Node, config: &Config) -> Allocatable {
    let unmanaged = node
        .flags
        .lock()
        .expect("flags")
        .values()
        .filter(|(trunk, unmanaged)| *unmanaged && !*trunk)
        .count();
    let unmanaged = u32::try_from(unmanaged).unwrap_or(u32::MAX);
    let options = Options {
        prefix_delegation: config.pool.prefix_delegation,
        custom_networking: config.pool.custom_networking,
        security_groups_for_pods: config.pool.pod_eni,
        max_eni: config.pool.max_eni.and_then(NonZeroU32::new),
        reserved_enis: unmanaged,
        ..Options::default()
    };
    Allocatable {
        version: 1,
        instance_id: node.identity.instance_id.clone(),
        unmanaged_enis: unmanaged,
        limits_from: node.limits_from,
        max_pods: max_pods::max_pods(node.limits, &options),
    }
}

/// Computes the capacity and writes the file when it differs from the last one written (at
/// start, always), logging the result. A failure to write is a warning — pods are served all
/// the same — and is tried again at the next call.
pub fn refresh(node: &Node, config: &Config) {
    let a = compute(node, config);
    let mut published = node.published_unmanaged.lock().expect("published");
    if *published == Some(a.unmanaged_enis) {
        return;
    }
    let (max_pods, pod_addresses) = (a.max_pods.max_pods, a.max_pods.pod_addresses);
    match write(&config.state_dir, &a) {
        Ok(()) => {
            *published = Some(a.unmanaged_enis);
            tracing::info!(
                max_pods,
                pod_addresses,
                unmanaged_enis = a.unmanaged_enis,
                file = FILE,
                "node capacity published"
            );
        }
        Err(e) => tracing::warn!(error = %e, file = FILE, "cannot write the node's capacity file"),
    }
}

/// Writes the file atomically (a temporary file renamed over it).
pub fn write(state_dir: &Path, a: &Allocatable) -> std::io::Result<()> {
    let text = serde_json::to_string_pretty(a).map_err(std::io::Error::other)?;
    replace(&state_dir.join(FILE), (text + "\n").as_bytes())
}

/// Replaces `path` with `bytes` atomically: a temporary file beside it, renamed over it.
pub fn replace(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}
