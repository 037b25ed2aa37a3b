//! Which checkpoint entries belong to pods that are gone from this node (S-35's purpose, from
//! the API rather than host veths). Pure: the pool loop asks [`candidates`] with the watch's
//! pods, the sweeper confirms each candidate with a GET ([`confirmed`]) before the pool loop
//! releases it.
//!
//! The checkpoint (`vpc-cni-ipam/1`) records a pod's namespace and name but not its UID, so a
//! pod deleted and created again under the same name on the same node while ipamd was down
//! would keep its predecessor's entry alive for good. An entry is therefore also gone when the
//! pod now under its name was created (`metadata.creationTimestamp`, API server clock) more
//! than [`RECREATED_MARGIN`] after the entry's ADD (`allocationTimestamp`, this node's clock).
//! The new pod's own ADD comes after its creation, so its entry is never taken for gone while
//! the two clocks disagree by less than the margin.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;

use crate::checkpoint::Entry;
use crate::driver::Candidate;
use planner::pool::PodKey;

/// How much later than an entry's ADD the pod under its name must have been created for the
/// entry to count as its predecessor's: the clock skew between the node and the API server
/// this tolerates. A pod recreated sooner than this after its predecessor's ADD keeps the old
/// entry as before.
pub const RECREATED_MARGIN: Duration = Duration::from_mins(1);

/// This node's pods as the watch has them: (namespace, name) → creation time, Unix ns (`None`
/// when the API gave none).
pub type PodsOnNode = BTreeMap<(String, String), Option<i64>>;

/// A pod's creation time, Unix ns.
pub fn created_at(p: &Pod) -> Option<i64> {
    let t = p.metadata.creation_timestamp.as_ref()?;
    i64::try_from(t.0.as_nanosecond()).ok()
}

/// Whether a pod created at `created` (Unix ns) is a newer pod than the one an entry allocated
/// at `allocated_at` (Unix ns) was for. An entry without a timestamp (0) or a pod without one
/// is never taken for recreated.
pub fn recreated_since(created: Option<i64>, allocated_at: i64) -> bool {
    let margin = i64::try_from(RECREATED_MARGIN.as_nanos()).unwrap_or(i64::MAX);
    allocated_at > 0 && created.is_some_and(|c| c > allocated_at.saturating_add(margin))
}

/// Checkpoint entries whose pod the watch does not have, or has only as a newer pod of the
/// same name, and whose ADD and the watch's first list (`listed_at`) are both older than
/// `grace` at `now` (all Unix ns). Entries without a pod name are kept, as the reference keeps
/// them.
pub fn candidates<'a>(
    entries: impl IntoIterator<Item = (&'a PodKey, &'a Entry)>,
    pods: &PodsOnNode,
    listed_at: i64,
    grace: Duration,
    now: i64,
) -> Vec<Candidate> {
    let grace = i64::try_from(grace.as_nanos()).unwrap_or(i64::MAX);
    entries
        .into_iter()
        .filter(|(_, e)| {
            let m = &e.metadata;
            let id = (m.pod_namespace.clone(), m.pod_name.clone());
            !m.pod_name.is_empty()
                && pods
                    .get(&id)
                    .is_none_or(|created| recreated_since(*created, e.allocation_timestamp))
                && now.saturating_sub(e.allocation_timestamp.max(listed_at)) >= grace
        })
        .map(|(k, e)| Candidate {
            key: k.clone(),
            namespace: e.metadata.pod_namespace.clone(),
            name: e.metadata.pod_name.clone(),
            allocated_at: e.allocation_timestamp,
        })
        .collect()
}

/// Whether the API's answer to a GET of a candidate's pod confirms it gone from `node`: no such
/// pod, the pod on another node, or a pod of that name created after the candidate's ADD
/// (beyond [`RECREATED_MARGIN`]).
pub fn confirmed(answer: Option<&Pod>, node: &str, allocated_at: i64) -> bool {
    let Some(p) = answer else { return true };
    let elsewhere = p
        .spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .is_some_and(|n| n != node);
    elsewhere || recreated_since(created_at(p), allocated_at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::Metadata;
    use serde_json::json;

    const S: i64 = 1_000_000_000;
    /// 2026-01-01T00:00:00Z, Unix ns.
    const T0: i64 = 1_767_225_600 * S;

    fn entry(container: &str, pod: &str, allocated_at: i64) -> (PodKey, Entry) {
        let e = Entry {
            network_name: "aws-cni".into(),
            container_id: container.into(),
            if_name: "eth0".into(),
            ipv4: Some("10.0.0.5".into()),
            ipv6: None,
            allocation_timestamp: allocated_at,
            metadata: Metadata {
                pod_namespace: "default".into(),
                pod_name: pod.into(),
                ..Metadata::default()
            },
        };
        (e.key(), e)
    }

    fn pod(created: &str, node: &str) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "web-0", "namespace": "default", "creationTimestamp": created},
            "spec": {"nodeName": node, "containers": []},
        }))
        .unwrap()
    }

    fn names(c: &[Candidate]) -> Vec<&str> {
        c.iter().map(|c| c.key.container_id.as_str()).collect()
    }

    #[test]
    fn a_pod_recreated_under_the_same_name_makes_the_old_entry_a_candidate_not_the_new_one() {
        let grace = Duration::from_mins(1);
        // The old pod's ADD at T0; ipamd down; the pod deleted and created again at T0 + 10 min
        // (API server clock); its ADD at T0 + 10 min 2 s (node clock) got a new entry.
        let recreated = T0 + 600 * S;
        let entries: BTreeMap<_, _> = [
            entry("old", "web-0", T0),
            entry("new", "web-0", recreated + 2 * S),
            entry("other", "web-1", T0),
        ]
        .into_iter()
        .collect();
        let pods: PodsOnNode = [
            (("default".into(), "web-0".into()), Some(recreated)),
            (("default".into(), "web-1".into()), Some(T0 - 5 * S)),
        ]
        .into_iter()
        .collect();
        let listed_at = recreated + 3 * S;
        // Within the grace period after the watch's list, nothing is a candidate.
        let early = candidates(&entries, &pods, listed_at, grace, listed_at + 59 * S);
        assert!(early.is_empty(), "{early:?}");
        // After it, the old entry only: the new pod's entry is newer than its pod, web-1's pod
        // is older than its entry.
        let now = listed_at + 60 * S;
        let c = candidates(&entries, &pods, listed_at, grace, now);
        assert_eq!(names(&c), ["old"]);
        assert_eq!(c[0].allocated_at, T0);

        // The new pod's ADD while the node's clock is behind the API server's by 59 s (its
        // entry then looks 57 s older than its pod): still within the margin, kept.
        let skewed: BTreeMap<_, _> = [entry("new", "web-0", recreated + 2 * S - 59 * S)]
            .into_iter()
            .collect();
        let c = candidates(&skewed, &pods, listed_at, grace, now + 600 * S);
        assert!(c.is_empty(), "skew within the margin: {c:?}");
        // Beyond the margin the rule cannot tell: documented, and why the margin is a minute.
        let skewed: BTreeMap<_, _> = [entry("new", "web-0", recreated - 61 * S)]
            .into_iter()
            .collect();
        assert_eq!(
            names(&candidates(&skewed, &pods, listed_at, grace, now + 600 * S)),
            ["new"]
        );

        // Unknown times never make an entry a candidate while its pod exists.
        let unknown: BTreeMap<_, _> = [entry("zero", "web-0", 0)].into_iter().collect();
        assert!(candidates(&unknown, &pods, listed_at, grace, now).is_empty());
        let no_created: PodsOnNode = [(("default".into(), "web-0".into()), None)]
            .into_iter()
            .collect();
        assert_eq!(
            names(&candidates(&entries, &no_created, listed_at, grace, now)),
            ["other"],
            "web-1 is not in this list at all; web-0 without a creation time keeps both entries"
        );
    }

    #[test]
    fn a_get_confirms_a_missing_a_moved_or_a_recreated_pod_only() {
        let node = "n1";
        assert!(confirmed(None, node, T0), "404");
        assert!(
            confirmed(Some(&pod("2026-01-01T00:00:00Z", "n2")), node, T0),
            "on another node"
        );
        assert!(
            !confirmed(Some(&pod("2025-12-31T23:00:00Z", node)), node, T0),
            "the same pod, created before its ADD"
        );
        assert!(
            !confirmed(Some(&pod("2026-01-01T00:01:00Z", node)), node, T0),
            "created exactly the margin after the ADD: kept"
        );
        assert!(
            confirmed(Some(&pod("2026-01-01T00:01:01Z", node)), node, T0),
            "created after the ADD beyond the margin: a new pod of the same name"
        );
        assert!(
            !confirmed(Some(&pod("2026-01-01T00:10:00Z", node)), node, 0),
            "an entry without a timestamp"
        );
        let p = pod("2026-01-01T00:10:00.5Z", node);
        assert_eq!(created_at(&p), Some(T0 + 600 * S + S / 2));
    }
}
