//! Which checkpoint entries belong to pods that are gone from this node (S-35's purpose, from
//! the API rather than host veths). Pure: the pool loop asks [`candidates`] with the watch's
//! pods, the sweeper confirms each candidate with a GET ([`confirmed`]) before the pool loop
//! releases it.
//!
//! A pod deleted and created again under the same name on the same node while ipamd was down
//! must not keep its predecessor's entry alive. eniplan-cni sends the pod's UID with each ADD
//! (`K8S_POD_UID` from the runtime), ipamd keeps it in the entry, and the entry is gone once the
//! pod under its name has another UID. The reference's checkpoint has no UID, so for an entry
//! without one (written by the VPC CNI, or ADDed by its plugin) the clocks decide: gone when the
//! pod now under its name was created (`metadata.creationTimestamp`, API server clock) more
//! than [`RECREATED_MARGIN`] after the entry's ADD (`allocationTimestamp`, this node's clock).
//! That fallback trusts the two clocks to agree within the margin; the UID needs no clock, so
//! a step of the node's clock cannot make a running pod's entry look like its predecessor's.

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

/// A pod as the watch has it: what tells it from another pod of the same name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodSeen {
    /// `metadata.uid` (empty when the API gave none).
    pub uid: String,
    /// `metadata.creationTimestamp`, Unix ns.
    pub created: Option<i64>,
}

/// This node's pods as the watch has them, by (namespace, name).
pub type PodsOnNode = BTreeMap<(String, String), PodSeen>;

/// What the watch keeps of a pod.
pub fn seen(p: &Pod) -> PodSeen {
    let created = p.metadata.creation_timestamp.as_ref();
    PodSeen {
        uid: p.metadata.uid.clone().unwrap_or_default(),
        created: created.and_then(|t| i64::try_from(t.0.as_nanosecond()).ok()),
    }
}

/// Whether `pod`, now under an entry's name, is a newer pod than the one the entry (with pod
/// UID `uid`, ADDed at `allocated_at`, Unix ns) was for: by UID when both are known, else by
/// [`recreated_since`].
pub fn superseded(uid: &str, allocated_at: i64, pod: &PodSeen) -> bool {
    if !uid.is_empty() && !pod.uid.is_empty() {
        return uid != pod.uid;
    }
    recreated_since(pod.created, allocated_at)
}

/// Whether a pod created at `created` (Unix ns) is a newer pod than the one an entry allocated
/// at `allocated_at` (Unix ns) was for. An entry without a timestamp (0) or a pod without one
/// is never taken for recreated.
pub fn recreated_since(created: Option<i64>, allocated_at: i64) -> bool {
    let margin = i64::try_from(RECREATED_MARGIN.as_nanos()).unwrap_or(i64::MAX);
    allocated_at > 0 && created.is_some_and(|c| c > allocated_at.saturating_add(margin))
}

/// Checkpoint entries whose pod the watch does not have, or has only as a newer pod of the
/// same name, among those `settled` accepts (the caller's grace period, on a clock of its
/// choosing). Entries without a pod name are kept, as the reference keeps them.
pub fn candidates<'a>(
    entries: impl IntoIterator<Item = (&'a PodKey, &'a Entry)>,
    pods: &PodsOnNode,
    settled: impl Fn(&PodKey) -> bool,
) -> Vec<Candidate> {
    entries
        .into_iter()
        .filter(|(k, e)| {
            let m = &e.metadata;
            let id = (m.pod_namespace.clone(), m.pod_name.clone());
            !m.pod_name.is_empty()
                && pods
                    .get(&id)
                    .is_none_or(|pod| superseded(&m.pod_uid, e.allocation_timestamp, pod))
                && settled(k)
        })
        .map(|(k, e)| Candidate {
            key: k.clone(),
            namespace: e.metadata.pod_namespace.clone(),
            name: e.metadata.pod_name.clone(),
            uid: e.metadata.pod_uid.clone(),
            allocated_at: e.allocation_timestamp,
        })
        .collect()
}

/// Whether the API's answer to a GET of candidate `c`'s pod confirms it gone from `node`: no
/// such pod, the pod on another node, or a newer pod of that name ([`superseded`]).
pub fn confirmed(answer: Option<&Pod>, node: &str, c: &Candidate) -> bool {
    let Some(p) = answer else { return true };
    let elsewhere = p
        .spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .is_some_and(|n| n != node);
    elsewhere || superseded(&c.uid, c.allocated_at, &seen(p))
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

    fn with_uid(e: (PodKey, Entry), uid: &str) -> (PodKey, Entry) {
        let (k, mut e) = e;
        e.metadata.pod_uid = uid.into();
        (k, e)
    }

    fn at(created: i64) -> PodSeen {
        PodSeen {
            uid: String::new(),
            created: Some(created),
        }
    }

    fn candidate(uid: &str, allocated_at: i64) -> Candidate {
        let (key, _) = entry("c", "web-0", allocated_at);
        Candidate {
            key,
            namespace: "default".into(),
            name: "web-0".into(),
            uid: uid.into(),
            allocated_at,
        }
    }

    fn pod(created: &str, node: &str) -> Pod {
        pod_with_uid(created, node, "")
    }

    fn pod_with_uid(created: &str, node: &str, uid: &str) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "web-0", "namespace": "default", "creationTimestamp": created,
                         "uid": uid},
            "spec": {"nodeName": node, "containers": []},
        }))
        .unwrap()
    }

    fn names(c: &[Candidate]) -> Vec<&str> {
        c.iter().map(|c| c.key.container_id.as_str()).collect()
    }

    #[test]
    fn a_pod_recreated_under_the_same_name_makes_the_old_entry_a_candidate_not_the_new_one() {
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
            (("default".into(), "web-0".into()), at(recreated)),
            (("default".into(), "web-1".into()), at(T0 - 5 * S)),
        ]
        .into_iter()
        .collect();
        // Within the grace period (the caller's clock), nothing is a candidate.
        let early = candidates(&entries, &pods, |_| false);
        assert!(early.is_empty(), "{early:?}");
        // After it, the old entry only: the new pod's entry is newer than its pod, web-1's pod
        // is older than its entry.
        let c = candidates(&entries, &pods, |_| true);
        assert_eq!(names(&c), ["old"]);
        assert_eq!(c[0].allocated_at, T0);

        // The new pod's ADD while the node's clock is behind the API server's by 59 s (its
        // entry then looks 57 s older than its pod): still within the margin, kept.
        let skewed: BTreeMap<_, _> = [entry("new", "web-0", recreated + 2 * S - 59 * S)]
            .into_iter()
            .collect();
        let c = candidates(&skewed, &pods, |_| true);
        assert!(c.is_empty(), "skew within the margin: {c:?}");
        // Beyond the margin the rule cannot tell: documented, and why the margin is a minute.
        let skewed: BTreeMap<_, _> = [entry("new", "web-0", recreated - 61 * S)]
            .into_iter()
            .collect();
        assert_eq!(names(&candidates(&skewed, &pods, |_| true)), ["new"]);

        // Unknown times never make an entry a candidate while its pod exists.
        let unknown: BTreeMap<_, _> = [entry("zero", "web-0", 0)].into_iter().collect();
        assert!(candidates(&unknown, &pods, |_| true).is_empty());
        let no_created: PodsOnNode = [(("default".into(), "web-0".into()), PodSeen::default())]
            .into_iter()
            .collect();
        assert_eq!(
            names(&candidates(&entries, &no_created, |_| true)),
            ["other"],
            "web-1 is not in this list at all; web-0 without a creation time keeps both entries"
        );
    }

    #[test]
    fn with_uids_no_clock_decides() {
        // The node's clock stepped back an hour: the running pod's entry looks an hour older
        // than its pod. With its UID recorded it is kept; the recreated pod's old entry goes.
        let created = T0 + 3600 * S;
        let entries: BTreeMap<_, _> = [
            with_uid(entry("running", "web-0", T0), "uid-2"),
            with_uid(entry("old", "web-1", T0), "uid-1"),
        ]
        .into_iter()
        .collect();
        let pod = |uid: &str| PodSeen {
            uid: uid.into(),
            created: Some(created),
        };
        let pods: PodsOnNode = [
            (("default".into(), "web-0".into()), pod("uid-2")),
            (("default".into(), "web-1".into()), pod("uid-3")),
        ]
        .into_iter()
        .collect();
        assert_eq!(names(&candidates(&entries, &pods, |_| true)), ["old"]);
        // A UID on one side only: the clocks decide, as for the reference's entries.
        assert!(superseded("", T0, &pod("uid-2")));
        assert!(superseded("uid-2", T0, &at(created)));
        assert!(!superseded("", created, &pod("uid-2")));
    }

    #[test]
    fn a_get_confirms_a_missing_a_moved_or_a_recreated_pod_only() {
        let node = "n1";
        assert!(confirmed(None, node, &candidate("", T0)), "404");
        assert!(
            confirmed(
                Some(&pod("2026-01-01T00:00:00Z", "n2")),
                node,
                &candidate("", T0)
            ),
            "on another node"
        );
        assert!(
            !confirmed(
                Some(&pod("2025-12-31T23:00:00Z", node)),
                node,
                &candidate("", T0)
            ),
            "the same pod, created before its ADD"
        );
        assert!(
            !confirmed(
                Some(&pod("2026-01-01T00:01:00Z", node)),
                node,
                &candidate("", T0)
            ),
            "created exactly the margin after the ADD: kept"
        );
        assert!(
            confirmed(
                Some(&pod("2026-01-01T00:01:01Z", node)),
                node,
                &candidate("", T0)
            ),
            "created after the ADD beyond the margin: a new pod of the same name"
        );
        assert!(
            !confirmed(
                Some(&pod("2026-01-01T00:10:00Z", node)),
                node,
                &candidate("", 0)
            ),
            "an entry without a timestamp"
        );
        // With UIDs: the same UID is the same pod whatever the clocks say; another is not.
        let late = pod_with_uid("2026-01-01T01:00:00Z", node, "uid-1");
        assert!(!confirmed(Some(&late), node, &candidate("uid-1", T0)));
        assert!(confirmed(Some(&late), node, &candidate("uid-0", T0)));
        let p = pod("2026-01-01T00:10:00.5Z", node);
        assert_eq!(seen(&p).created, Some(T0 + 600 * S + S / 2));
    }
}
