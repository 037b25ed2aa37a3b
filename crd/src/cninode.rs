//! `CNINode` (`cninodes.vpcresources.k8s.aws`, `v1alpha1`, cluster-scoped, short name `cnd`):
//! one per node, named like it, where the node's CNI tells the VPC resource controller which
//! features it runs (`CustomNetworking` with the ENIConfig's name, `SecurityGroupsForPods`).
//! EKS installs the CRD; eniplan only writes features into the node's object.

use std::collections::BTreeMap;

use kube_derive::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The feature name for custom networking; its value is the node's ENIConfig.
pub const CUSTOM_NETWORKING: &str = "CustomNetworking";
/// The feature name for security groups for pods.
pub const SECURITY_GROUPS_FOR_PODS: &str = "SecurityGroupsForPods";

/// `CNINode.spec`.
#[derive(
    CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema,
)]
#[kube(
    group = "vpcresources.k8s.aws",
    version = "v1alpha1",
    kind = "CNINode",
    plural = "cninodes",
    shortname = "cnd",
    status = "CNINodeStatus",
    doc = "The CNI features a node runs, for the VPC resource controller.",
    crates(
        kube_core = "::kube_core",
        k8s_openapi = "::k8s_openapi",
        schemars = "::schemars",
        serde = "::serde",
        serde_json = "::serde_json"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct CNINodeSpec {
    /// Features the node's CNI runs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub features: Vec<Feature>,
    /// Tags the resource controller puts on the node's trunk and branch ENIs.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
}

/// One feature.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct Feature {
    /// `CustomNetworking` or `SecurityGroupsForPods`.
    pub name: String,
    /// For `CustomNetworking`, the ENIConfig's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

/// `CNINode.status`: empty.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct CNINodeStatus {}

/// `features` with `name` set to `value` (added, replaced, or with `None` removed); the others
/// kept in order. `None` when nothing changes.
///
/// ```
/// use eniplan_crd::cninode::{Feature, with_feature};
/// let f = |n: &str, v: Option<&str>| Feature { name: n.into(), value: v.map(Into::into) };
/// let sgp = vec![f("SecurityGroupsForPods", None)];
/// let cn = with_feature(&sgp, "CustomNetworking", Some("us-east-1a")).unwrap();
/// assert_eq!(cn, vec![f("SecurityGroupsForPods", None), f("CustomNetworking", Some("us-east-1a"))]);
/// assert_eq!(with_feature(&cn, "CustomNetworking", Some("us-east-1a")), None);
/// assert_eq!(with_feature(&cn, "CustomNetworking", None), Some(sgp));
/// ```
pub fn with_feature(features: &[Feature], name: &str, value: Option<&str>) -> Option<Vec<Feature>> {
    let mut out: Vec<Feature> = features
        .iter()
        .filter(|f| f.name != name)
        .cloned()
        .collect();
    if let Some(v) = value {
        out.push(Feature {
            name: name.to_owned(),
            value: Some(v.to_owned()),
        });
    }
    let same = out.len() == features.len() && out.iter().all(|f| features.contains(f));
    (!same).then_some(out)
}
