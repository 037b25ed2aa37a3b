//! Security groups for pods, what a pod asks for (reference §4.3, §7): a pod whose first
//! container's limits name `vpc.amazonaws.com/pod-eni` gets a branch ENI of its own from the VPC
//! resource controller, never an address from the warm pool, and ipamd answers its ADD from the
//! pod's `vpc.amazonaws.com/pod-eni` annotation. Until the controller has written a usable
//! annotation the ADD is to be retried (the kubelet does), with the reason.

use std::sync::Arc;
use std::time::Duration;

use eniplan_crd::pod_eni::{self, BranchEni};
use k8s_openapi::api::core::v1::Pod;
use kube::{Api, Client};
use tonic::Status;

use crate::node::{Node, Trunk};

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

/// How long an ADD or DEL waits for the pod's GET.
const POD_READ_LIMIT: Duration = Duration::from_secs(3);

/// How long an ADD waits for the trunk's link to appear after EC2 attached the trunk (the
/// hotplug takes a moment on a real instance).
const TRUNK_LINK_WAIT: Duration = Duration::from_secs(2);

/// Answers for branch-ENI pods: reads the pod from the API server (a GET per ADD, as the
/// reference; the annotation changes once, when the controller writes it) and the trunk from
/// what EC2 last showed.
pub struct Branches {
    /// ipamd's client.
    pub client: Client,
    /// The node (its trunk and host networking).
    pub node: Arc<Node>,
}

/// What a branch pod's ADD is answered with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BranchAnswer {
    /// The pod's branch ENI.
    pub branch: BranchEni,
    /// The trunk it is associated with.
    pub trunk: Trunk,
    /// The trunk's link on this host (the VLAN link's parent).
    pub parent_if_index: u32,
}

impl Branches {
    /// With `ENABLE_POD_ENI=true` on a cluster, ADDs of branch-ENI pods are answered from the
    /// pod's annotation; `None` otherwise.
    pub fn new(
        kube: Option<&super::Kube>,
        config: &crate::config::Config,
        node: &Arc<Node>,
    ) -> Option<Arc<Branches>> {
        let kube = kube.filter(|_| config.pool.pod_eni)?;
        Some(Arc::new(Branches {
            client: kube.client.clone(),
            node: Arc::clone(node),
        }))
    }

    /// The pod (retryable while the API server cannot be reached); `None` when it is gone.
    /// Bounded by [`POD_READ_LIMIT`], well inside the plugin's 10 s per call, so a slow API
    /// server turns into "try again" (ADD) or "unknown pod" (DEL), never a plugin timeout.
    async fn pod(&self, namespace: &str, name: &str) -> Result<Option<Pod>, Status> {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        let unreadable = |why: String| {
            Status::unavailable(format!(
                "cannot read pod {namespace}/{name} from the Kubernetes API to see whether it \
                 requests a branch ENI: {why}"
            ))
        };
        match tokio::time::timeout(POD_READ_LIMIT, api.get_opt(name)).await {
            Ok(read) => read.map_err(|e| unreadable(e.to_string())),
            Err(_) => Err(unreadable(format!(
                "no answer within {} s",
                POD_READ_LIMIT.as_secs()
            ))),
        }
    }

    /// Where the ADD of `namespace/name` takes its address from: the pool, or (answered in
    /// full) its branch ENI. A branch pod not yet annotated, or a trunk not yet attached or
    /// linked, is `Unavailable` with the reason: the kubelet retries.
    ///
    /// # Errors
    /// The status to answer the plugin with.
    pub async fn add(&self, namespace: &str, name: &str) -> Result<Option<BranchAnswer>, Status> {
        let Some(pod) = self.pod(namespace, name).await? else {
            return Err(Status::unavailable(format!(
                "pod {namespace}/{name} is not in the Kubernetes API (yet?), so ipamd cannot tell \
                 whether it requests a branch ENI (ENABLE_POD_ENI=true)"
            )));
        };
        let branch = match classify(&pod) {
            Ok(PodNetwork::Pool) => return Ok(None),
            Ok(PodNetwork::Branch(b)) => b,
            Err(why) => {
                return Err(Status::unavailable(format!(
                    "pod {namespace}/{name}: {why}"
                )));
            }
        };
        let trunk = self.node.trunk.lock().expect("trunk").clone();
        let Some(trunk) = trunk else {
            return Err(Status::unavailable(format!(
                "pod {namespace}/{name} has branch ENI {} but no trunk ENI is attached to this \
                 instance yet (ipamd looks every few seconds)",
                b_id(&branch)
            )));
        };
        let index = match &self.node.hostnet {
            Some(host) => host
                .trunk_link(&trunk.mac, TRUNK_LINK_WAIT)
                .await
                .map_err(|e| Status::unavailable(e.to_string()))?,
            None => crate::hostnet::find_link_index(&trunk.mac)
                .await
                .map_err(|e| Status::unavailable(e.to_string()))?
                .ok_or_else(|| {
                    Status::unavailable(format!(
                        "no link on this host has the trunk ENI {}'s MAC {}",
                        trunk.id, trunk.mac
                    ))
                })?,
        };
        Ok(Some(BranchAnswer {
            branch,
            trunk,
            parent_if_index: index,
        }))
    }

    /// DEL of a key the pool does not know: the pod's branch ENI when it has one, `None` when
    /// the pod is gone or has none (the plugin tears down from its previous result).
    ///
    /// # Errors
    /// `FailedPrecondition` when the pod of that name is another pod (a different UID);
    /// `Unavailable` when the API server cannot be read.
    pub async fn del(
        &self,
        namespace: &str,
        name: &str,
        uid: &str,
    ) -> Result<Option<BranchEni>, Status> {
        let Some(pod) = self.pod(namespace, name).await? else {
            return Ok(None);
        };
        let current = pod.metadata.uid.as_deref().unwrap_or_default();
        if !uid.is_empty() && !current.is_empty() && uid != current {
            return Err(Status::failed_precondition(format!(
                "pod {namespace}/{name} is now another pod (UID {current}, the DEL names {uid}); \
                 its branch ENI is not this DEL's"
            )));
        }
        Ok(match classify(&pod) {
            Ok(PodNetwork::Branch(b)) => Some(b),
            _ => None,
        })
    }
}

fn b_id(b: &BranchEni) -> &str {
    b.eni_id.as_deref().unwrap_or("(unnamed)")
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
