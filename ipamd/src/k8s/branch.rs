//! Security groups for pods, what a pod asks for (reference §4.3, §7): a pod whose first
//! container's limits name `vpc.amazonaws.com/pod-eni` gets a branch ENI of its own from the VPC
//! resource controller, never an address from the warm pool, and ipamd answers its ADD from the
//! pod's `vpc.amazonaws.com/pod-eni` annotation. Until the controller has written a usable
//! annotation the ADD is to be retried (the kubelet does), with the reason.

use eniplan_crd::pod_eni::{self, BranchEni};
use k8s_openapi::api::core::v1::Pod;

/// Where a pod's address comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PodNetwork {
    /// The node's warm pool (every pod that does not request a branch ENI).
    Pool,
    /// Its own branch ENI, as the annotation describes it.
    Branch(BranchEni),
}

/// Whether the pod requests a branch ENI: a resource starting with `vpc.amazonaws.com/pod-eni`
/// in its first container's limits (where the controller's webhook puts it).
pub fn requests_branch(pod: &Pod) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.containers.first())
        .and_then(|c| c.resources.as_ref())
        .and_then(|r| r.limits.as_ref())
        .is_some_and(|limits| limits.keys().any(|k| k.starts_with(pod_eni::RESOURCE)))
}

/// Where `pod`'s address comes from.
///
/// # Errors
/// The reason to give the kubelet when the pod requests a branch ENI but its annotation is
/// missing or unusable (the ADD is retried until the controller has written it).
pub fn classify(pod: &Pod) -> Result<PodNetwork, String> {
    if !requests_branch(pod) {
        return Ok(PodNetwork::Pool);
    }
    let annotation = pod
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(pod_eni::ANNOTATION));
    match annotation {
        None => Err(format!(
            "the pod requests {} but has no {} annotation yet: the VPC resource controller has \
             not created its branch ENI (is ENABLE_POD_ENI on the node's CNINode, and the \
             controller running?)",
            pod_eni::RESOURCE,
            pod_eni::ANNOTATION
        )),
        Some(value) => pod_eni::parse(value)
            .map(PodNetwork::Branch)
            .map_err(|e| e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(limits: &str, annotation: Option<&str>) -> Pod {
        let annotations = annotation.map_or(
            serde_json::Value::Null,
            |a| serde_json::json!({ pod_eni::ANNOTATION: a }),
        );
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web", "namespace": "shop", "annotations": annotations},
            "spec": {"containers": [
                {"name": "app", "resources": {"limits": serde_json::from_str::<serde_json::Value>(limits).unwrap()}},
                {"name": "sidecar"}
            ]}
        }))
        .unwrap()
    }

    const ANNOTATED: &str = r#"[{"eniId":"eni-0a1b2c3d","ifAddress":"0e:5f:12:34:56:78","privateIp":"10.0.96.23","vlanId":7,"subnetCidr":"10.0.96.0/19"}]"#;

    #[test]
    fn a_pod_without_the_resource_takes_a_pool_address_whatever_its_annotations() {
        let p = pod(r#"{"cpu": "1"}"#, Some(ANNOTATED));
        assert_eq!(classify(&p), Ok(PodNetwork::Pool));
        // Only the first container counts, as in the reference.
        let mut p = pod(r#"{"cpu": "1"}"#, Some(ANNOTATED));
        p.spec.as_mut().unwrap().containers[1].resources =
            pod(r#"{"vpc.amazonaws.com/pod-eni": "1"}"#, None)
                .spec
                .unwrap()
                .containers[0]
                .resources
                .clone();
        assert_eq!(classify(&p), Ok(PodNetwork::Pool));
    }

    #[test]
    fn a_branch_pod_is_answered_from_its_annotation() {
        let p = pod(r#"{"vpc.amazonaws.com/pod-eni": "1"}"#, Some(ANNOTATED));
        let Ok(PodNetwork::Branch(b)) = classify(&p) else {
            panic!("{:?}", classify(&p));
        };
        assert_eq!((b.vlan, b.ip.to_string()), (7, "10.0.96.23".to_owned()));
    }

    #[test]
    fn a_branch_pod_not_yet_annotated_or_badly_annotated_is_retried_with_the_reason() {
        let late = classify(&pod(r#"{"vpc.amazonaws.com/pod-eni": "1"}"#, None)).unwrap_err();
        assert!(
            late.contains("no vpc.amazonaws.com/pod-eni annotation yet"),
            "{late}"
        );
        let empty =
            classify(&pod(r#"{"vpc.amazonaws.com/pod-eni": "1"}"#, Some("[]"))).unwrap_err();
        assert!(empty.contains("no branch ENI"), "{empty}");
    }
}
