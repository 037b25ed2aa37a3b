//! The Kubernetes custom resources eniplan reads, defined once: the types ipamd watches, the
//! validation it applies before creating an ENI, and the CRD manifest shipped in `deploy/`
//! (generated from these types by `cargo xtask gen-crds`; a test keeps the file equal).
//!
//! [`ENIConfig`] is the VPC CNI's custom-networking object, `eniconfigs.crd.k8s.amazonaws.com`
//! version `v1alpha1`, cluster-scoped: the subnet and security groups for a node's new ENIs.
//! Its schema is upstream's: `spec.subnet` required, `spec.securityGroups` optional, an empty
//! status, unknown fields preserved at the root (objects written for other tools still load).
//! [`select_eniconfig`] is which one a node names, in the VPC CNI's order.
//!
//! [`pod_eni`] reads the pod annotation the VPC resource controller writes for a pod with a
//! branch ENI of its own (security groups for pods).

pub mod cninode;
pub mod pod_eni;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube_core::CustomResourceExt as _;
use kube_derive::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// EC2's limit on security groups per network interface (the default quota; AWS raises it to
/// 16 on request, so more is a warning upstream and an error nowhere).
pub const MAX_SECURITY_GROUPS: usize = 16;

/// `ENIConfig.spec`: where a node's new ENIs go.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[kube(
    group = "crd.k8s.amazonaws.com",
    version = "v1alpha1",
    kind = "ENIConfig",
    plural = "eniconfigs",
    status = "ENIConfigStatus",
    doc = "The subnet and security groups for a node's new ENIs (VPC CNI custom networking).",
    crates(
        kube_core = "::kube_core",
        k8s_openapi = "::k8s_openapi",
        schemars = "::schemars",
        serde = "::serde",
        serde_json = "::serde_json"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct ENIConfigSpec {
    /// The subnet of the ENIs (`subnet-…`); it must be in the node's availability zone.
    pub subnet: String,
    /// Their security groups (`sg-…`); empty means the node's primary ENI's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub security_groups: Vec<String>,
}

/// `ENIConfig.status`: empty, as upstream's.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct ENIConfigStatus {}

/// Why a custom resource or annotation cannot be used; each names the object or value and what
/// is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// `spec.subnet` is not a subnet ID.
    #[error(
        "ENIConfig {name}: spec.subnet {value:?} is not a subnet ID (subnet- and 8 or 17 hex digits)"
    )]
    Subnet {
        /// The ENIConfig.
        name: String,
        /// The value found.
        value: String,
    },
    /// An entry of `spec.securityGroups` is not a security group ID.
    #[error(
        "ENIConfig {name}: spec.securityGroups[{index}] {value:?} is not a security group ID (sg- and 8 or 17 hex digits)"
    )]
    SecurityGroup {
        /// The ENIConfig.
        name: String,
        /// Its position in the list.
        index: usize,
        /// The value found.
        value: String,
    },
    /// More security groups than an ENI can carry.
    #[error(
        "ENIConfig {name}: spec.securityGroups has {count} entries; an ENI carries at most {MAX_SECURITY_GROUPS}"
    )]
    TooManySecurityGroups {
        /// The ENIConfig.
        name: String,
        /// How many it lists.
        count: usize,
    },
    /// A pod's `vpc.amazonaws.com/pod-eni` annotation cannot serve it (yet).
    #[error("pod annotation vpc.amazonaws.com/pod-eni {value:?}: {problem}")]
    PodEni {
        /// The annotation (its first 200 characters).
        value: String,
        /// What is missing or wrong.
        problem: String,
    },
}

/// Whether `value` is an EC2 resource ID with `prefix`: the prefix, a dash, and 8 or 17
/// lower-case hex digits.
///
/// ```
/// use eniplan_crd::is_ec2_id;
/// assert!(is_ec2_id("subnet", "subnet-0123456789abcdef0"));
/// assert!(is_ec2_id("sg", "sg-0a1b2c3d"));
/// assert!(!is_ec2_id("sg", "sg-0A1B2C3D"));
/// assert!(!is_ec2_id("subnet", "subnet-for-us-west-2a"));
/// assert!(!is_ec2_id("subnet", "sg-0a1b2c3d"));
/// ```
pub fn is_ec2_id(prefix: &str, value: &str) -> bool {
    value
        .strip_prefix(prefix)
        .and_then(|rest| rest.strip_prefix('-'))
        .is_some_and(|hex| {
            matches!(hex.len(), 8 | 17)
                && hex
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        })
}

impl ENIConfig {
    /// The object's name (`metadata.name`), empty when unset.
    pub fn name(&self) -> &str {
        self.metadata.name.as_deref().unwrap_or_default()
    }

    /// Checks what the CRD's schema cannot: the IDs' shapes and the security-group limit.
    ///
    /// # Errors
    /// The first problem found, naming the object and the value.
    pub fn validate(&self) -> Result<(), Error> {
        let name = self.name().to_owned();
        if !is_ec2_id("subnet", &self.spec.subnet) {
            return Err(Error::Subnet {
                name,
                value: self.spec.subnet.clone(),
            });
        }
        if self.spec.security_groups.len() > MAX_SECURITY_GROUPS {
            return Err(Error::TooManySecurityGroups {
                name,
                count: self.spec.security_groups.len(),
            });
        }
        for (index, sg) in self.spec.security_groups.iter().enumerate() {
            if !is_ec2_id("sg", sg) {
                return Err(Error::SecurityGroup {
                    name,
                    index,
                    value: sg.clone(),
                });
            }
        }
        Ok(())
    }
}

/// The ENIConfig CRD as shipped: the derived definition, with upstream's
/// `x-kubernetes-preserve-unknown-fields` at the root of the schema.
pub fn eniconfig_crd() -> CustomResourceDefinition {
    let mut crd = ENIConfig::crd();
    for version in &mut crd.spec.versions {
        if let Some(schema) = version
            .schema
            .as_mut()
            .and_then(|s| s.open_api_v3_schema.as_mut())
        {
            schema.x_kubernetes_preserve_unknown_fields = Some(true);
        }
    }
    crd
}

/// The CNINode CRD as EKS installs it (the tests' fake API server applies it from
/// `harness/kube/crds/cninodes.yaml`, written by `cargo xtask gen-crds`).
pub fn cninode_crd() -> CustomResourceDefinition {
    cninode::CNINode::crd()
}

/// The comment heading `harness/kube/crds/cninodes.yaml`.
pub const CNINODE_HEADER: &str = "# The CNINode CRD (vpcresources.k8s.aws/v1alpha1) as EKS installs it, for the fake API server of
# the tests; generated from eniplan-crd's Rust type by `cargo xtask gen-crds`; do not edit.
";

/// The comment heading `deploy/crds/eniconfigs.yaml`; the rest of the file is [`eniconfig_crd`]
/// as YAML (written by `cargo xtask gen-crds`).
pub const MANIFEST_HEADER: &str = "# The ENIConfig CRD (crd.k8s.amazonaws.com/v1alpha1), generated from eniplan-crd's Rust type\n# by `cargo xtask gen-crds`; do not edit (a test keeps this file equal to the type).\n";

/// The node label that names a node's ENIConfig before anything else (the VPC CNI's, for
/// ENIConfigs managed out of band).
pub const EXTERNAL_ENICONFIG_LABEL: &str = "vpc.amazonaws.com/externalEniConfig";
/// The default of `ENI_CONFIG_ANNOTATION_DEF` and `ENI_CONFIG_LABEL_DEF`.
pub const DEFAULT_ENICONFIG_KEY: &str = "k8s.amazonaws.com/eniConfig";
/// The ENIConfig a node uses when nothing on it names one.
pub const DEFAULT_ENICONFIG: &str = "default";

/// Where a node's ENIConfig name came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Source {
    /// The label [`EXTERNAL_ENICONFIG_LABEL`].
    ExternalLabel,
    /// The annotation named by `ENI_CONFIG_ANNOTATION_DEF`.
    Annotation,
    /// The label named by `ENI_CONFIG_LABEL_DEF`.
    Label,
    /// Nothing named one: [`DEFAULT_ENICONFIG`].
    Default,
}

/// The ENIConfig a node selects, in the VPC CNI's order (behaviour doc S-22): the label
/// [`EXTERNAL_ENICONFIG_LABEL`], the annotation `annotation_key`, the label `label_key`, then
/// [`DEFAULT_ENICONFIG`]. An empty key means [`DEFAULT_ENICONFIG_KEY`]; an empty value names
/// nothing.
///
/// ```
/// use std::collections::BTreeMap;
/// use eniplan_crd::{Source, select_eniconfig};
/// let map = |kv: &[(&str, &str)]| -> BTreeMap<String, String> {
///     kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
/// };
/// let labels = map(&[("k8s.amazonaws.com/eniConfig", "a"), ("topology.kubernetes.io/zone", "us-west-2a")]);
/// let annotations = map(&[("k8s.amazonaws.com/eniConfig", "b")]);
/// assert_eq!(select_eniconfig(&labels, &annotations, "", ""), ("b".into(), Source::Annotation));
/// assert_eq!(select_eniconfig(&labels, &map(&[]), "", ""), ("a".into(), Source::Label));
/// assert_eq!(
///     select_eniconfig(&labels, &map(&[]), "", "topology.kubernetes.io/zone"),
///     ("us-west-2a".into(), Source::Label)
/// );
/// let mut external = labels.clone();
/// external.insert("vpc.amazonaws.com/externalEniConfig".into(), "x".into());
/// assert_eq!(select_eniconfig(&external, &annotations, "", ""), ("x".into(), Source::ExternalLabel));
/// assert_eq!(select_eniconfig(&map(&[]), &map(&[]), "", ""), ("default".into(), Source::Default));
/// ```
pub fn select_eniconfig(
    labels: &std::collections::BTreeMap<String, String>,
    annotations: &std::collections::BTreeMap<String, String>,
    annotation_key: &str,
    label_key: &str,
) -> (String, Source) {
    let key = |k: &str| {
        if k.is_empty() {
            DEFAULT_ENICONFIG_KEY.to_owned()
        } else {
            k.to_owned()
        }
    };
    let named = |map: &std::collections::BTreeMap<String, String>, k: &str| {
        map.get(k).filter(|v| !v.is_empty()).cloned()
    };
    if let Some(name) = named(labels, EXTERNAL_ENICONFIG_LABEL) {
        return (name, Source::ExternalLabel);
    }
    if let Some(name) = named(annotations, &key(annotation_key)) {
        return (name, Source::Annotation);
    }
    if let Some(name) = named(labels, &key(label_key)) {
        return (name, Source::Label);
    }
    (DEFAULT_ENICONFIG.to_owned(), Source::Default)
}
