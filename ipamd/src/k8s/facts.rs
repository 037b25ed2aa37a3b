//! What ipamd knows from the Kubernetes API, and what follows from it for the pool: the
//! kubelet's max pods, whether the node is cordoned or draining, and where new ENIs go.

use std::collections::BTreeMap;

use eniplan_crd::{ENIConfig, ENIConfigSpec, Source, select_eniconfig};
use k8s_openapi::api::core::v1::Node;
use serde::Serialize;

/// The taint the node lifecycle controller puts on a cordoned node (the reference's signal for
/// `AWS_MANAGE_ENIS_NON_SCHEDULABLE`).
pub const UNSCHEDULABLE_TAINT: &str = "node.kubernetes.io/unschedulable";

/// Taints that mean the node is being drained for removal (Karpenter, cluster-autoscaler).
pub const DRAINING_TAINTS: &[&str] = &["karpenter.sh/disrupted", "ToBeDeletedByClusterAutoscaler"];

/// The node, as far as the pool cares.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeInfo {
    /// `metadata.name`.
    pub name: String,
    /// `metadata.uid` (Events refer to it).
    pub uid: String,
    /// `status.capacity.pods`: the kubelet's max pods.
    pub max_pods: Option<u32>,
    /// No `node.kubernetes.io/unschedulable` taint.
    pub schedulable: bool,
    /// Cordoned (`spec.unschedulable`) or carrying a draining taint: which.
    pub draining: Option<String>,
    /// The ENIConfig the node names, and where the name came from.
    pub eni_config: String,
    /// Where [`NodeInfo::eni_config`] came from.
    pub eni_config_source: Source,
    /// The legacy label `vpc.amazonaws.com/has-trunk-attached`, when set.
    pub has_trunk_label: Option<String>,
}

impl NodeInfo {
    /// Reads a Node object; `annotation_key`/`label_key` are `ENI_CONFIG_ANNOTATION_DEF` and
    /// `ENI_CONFIG_LABEL_DEF`.
    pub fn from_node(node: &Node, annotation_key: &str, label_key: &str) -> NodeInfo {
        let meta = &node.metadata;
        let empty = BTreeMap::new();
        let (eni_config, eni_config_source) = select_eniconfig(
            meta.labels.as_ref().unwrap_or(&empty),
            meta.annotations.as_ref().unwrap_or(&empty),
            annotation_key,
            label_key,
        );
        let spec = node.spec.as_ref();
        let taints = spec.and_then(|s| s.taints.as_deref()).unwrap_or_default();
        let tainted = |key: &str| taints.iter().any(|t| t.key == key);
        let cordoned =
            spec.and_then(|s| s.unschedulable).unwrap_or(false) || tainted(UNSCHEDULABLE_TAINT);
        let draining = if cordoned {
            Some("cordoned".to_owned())
        } else {
            DRAINING_TAINTS
                .iter()
                .find(|t| tainted(t))
                .map(|t| format!("taint {t}"))
        };
        let max_pods = node
            .status
            .as_ref()
            .and_then(|s| s.capacity.as_ref())
            .and_then(|c| c.get("pods"))
            .and_then(|q| q.0.parse::<u32>().ok())
            .filter(|n| *n > 0);
        NodeInfo {
            name: meta.name.clone().unwrap_or_default(),
            uid: meta.uid.clone().unwrap_or_default(),
            max_pods,
            schedulable: !tainted(UNSCHEDULABLE_TAINT),
            draining,
            eni_config,
            eni_config_source,
            has_trunk_label: meta
                .labels
                .as_ref()
                .and_then(|l| l.get(HAS_TRUNK_LABEL))
                .cloned(),
        }
    }
}

/// The node label through which the VPC resource controller's older releases were asked for a
/// trunk (`"false"`; the controller sets `"true"` once it is attached).
pub const HAS_TRUNK_LABEL: &str = "vpc.amazonaws.com/has-trunk-attached";

/// Everything the watchers have seen.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Facts {
    /// The node, once read (`None` before, or when the API has no such node).
    pub node: Option<NodeInfo>,
    /// The node watch has listed at least once (a `None` node is then really missing).
    pub node_synced: bool,
    /// The ENIConfigs have been listed at least once.
    pub eni_configs_synced: bool,
    /// Every ENIConfig, by name (one per zone, typically).
    #[serde(skip)]
    pub eni_configs: BTreeMap<String, ENIConfigSpec>,
    /// The last error a watch reported, while it retries.
    pub last_error: Option<String>,
    /// This node's pods (namespace, name) with their UID and creation time, from the
    /// `spec.nodeName` watch.
    #[serde(skip)]
    pub pods: std::sync::Arc<super::gone::PodsOnNode>,
    /// How many pods [`Facts::pods`] holds.
    pub pod_count: usize,
    /// When (Unix ns) the pod watch first listed; `None` before.
    pub pods_current_since: Option<i64>,
}

/// Where the next ENI goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "placement", rename_all = "kebab-case")]
pub enum Placement {
    /// The node's own subnet and security groups (no custom networking).
    NodeSubnet,
    /// Custom networking: the ENIConfig's subnet and security groups (empty: the primary
    /// ENI's, as the reference).
    EniConfig {
        /// The ENIConfig's name.
        name: String,
        /// `spec.subnet`.
        subnet: String,
        /// `spec.securityGroups`.
        security_groups: Vec<String>,
    },
    /// Custom networking, but no usable ENIConfig: no new ENI.
    Blocked {
        /// Why, for `/v1/decisions`, the Event and the pod's error.
        why: String,
    },
}

impl Facts {
    /// Where new ENIs go now.
    pub fn placement(&self, custom_networking: bool) -> Placement {
        if !custom_networking {
            return Placement::NodeSubnet;
        }
        let blocked = |why: String| Placement::Blocked { why };
        let error = self
            .last_error
            .as_deref()
            .map(|e| format!(" (last error: {e})"))
            .unwrap_or_default();
        let Some(node) = &self.node else {
            return blocked(if self.node_synced {
                "the node is not in the Kubernetes API (check MY_NODE_NAME), so its ENIConfig is unknown".into()
            } else {
                format!(
                    "the node's ENIConfig is not known yet: the Kubernetes API has not answered{error}"
                )
            });
        };
        if !self.eni_configs_synced {
            return blocked(format!(
                "the ENIConfigs are not known yet: the Kubernetes API has not listed them{error}"
            ));
        }
        let from = match node.eni_config_source {
            Source::ExternalLabel => format!("label {}", eniplan_crd::EXTERNAL_ENICONFIG_LABEL),
            Source::Annotation => "the node's annotation".into(),
            Source::Label => "the node's label".into(),
            Source::Default => "no label or annotation on the node: the default".into(),
        };
        let Some(spec) = self.eni_configs.get(&node.eni_config) else {
            return blocked(format!(
                "ENIConfig {:?} ({from}) does not exist; create it or label the node with an existing one",
                node.eni_config
            ));
        };
        let ec = ENIConfig::new(&node.eni_config, spec.clone());
        if let Err(e) = ec.validate() {
            return blocked(format!(
                "ENIConfig {:?} ({from}) is invalid: {e}",
                node.eni_config
            ));
        }
        Placement::EniConfig {
            name: node.eni_config.clone(),
            subnet: ec.spec.subnet.clone(),
            security_groups: ec.spec.security_groups.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use eniplan_crd::ENIConfigSpec;
    use serde_json::json;

    fn node(v: serde_json::Value) -> Node {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn a_node_gives_its_max_pods_cordon_drain_and_eniconfig() {
        let n = node(json!({
            "metadata": {"name": "n1", "uid": "u", "labels": {"topology.kubernetes.io/zone": "us-east-1a"}},
            "spec": {"taints": [{"key": "karpenter.sh/disrupted", "effect": "NoSchedule"}]},
            "status": {"capacity": {"pods": "110", "cpu": "2"}}
        }));
        let info = NodeInfo::from_node(&n, "", "topology.kubernetes.io/zone");
        assert_eq!(info.max_pods, Some(110));
        assert!(
            info.schedulable,
            "only the unschedulable taint stops the reference's growth"
        );
        assert_eq!(
            info.draining.as_deref(),
            Some("taint karpenter.sh/disrupted")
        );
        assert_eq!(
            (info.eni_config.as_str(), info.eni_config_source),
            ("us-east-1a", Source::Label)
        );

        let cordoned = node(
            json!({"metadata": {"name": "n1"}, "spec": {"unschedulable": true,
            "taints": [{"key": UNSCHEDULABLE_TAINT, "effect": "NoSchedule"}]}}),
        );
        let info = NodeInfo::from_node(&cordoned, "", "");
        assert!(!info.schedulable);
        assert_eq!(info.draining.as_deref(), Some("cordoned"));
        assert_eq!(info.max_pods, None);
        assert_eq!(info.eni_config, "default");
    }

    #[test]
    fn custom_networking_places_new_enis_only_with_a_usable_eniconfig() {
        let info = NodeInfo::from_node(
            &node(
                json!({"metadata": {"name": "n1", "labels": {"k8s.amazonaws.com/eniConfig": "a"}}}),
            ),
            "",
            "",
        );
        let mut f = Facts::default();
        assert_eq!(f.placement(false), Placement::NodeSubnet);
        let why = |p: Placement| match p {
            Placement::Blocked { why } => why,
            other => panic!("{other:?}"),
        };
        assert!(why(f.placement(true)).contains("not known yet"));
        f.node = Some(info);
        f.node_synced = true;
        f.eni_configs_synced = true;
        assert!(
            why(f.placement(true)).contains("ENIConfig \"a\" (the node's label) does not exist")
        );
        let mut ec = ENIConfig::new(
            "a",
            ENIConfigSpec {
                subnet: "subnet-1".into(),
                security_groups: vec![],
            },
        );
        f.eni_configs.insert("a".into(), ec.spec.clone());
        assert!(
            why(f.placement(true)).contains("invalid"),
            "subnet-1 is not a subnet ID"
        );
        ec.spec.subnet = "subnet-0123456789abcdef0".into();
        f.eni_configs.insert("a".into(), ec.spec);
        assert_eq!(
            f.placement(true),
            Placement::EniConfig {
                name: "a".into(),
                subnet: "subnet-0123456789abcdef0".into(),
                security_groups: vec![]
            }
        );
    }
}
