//! The node's `CNINode`, where ipamd tells the VPC resource controller what the node does:
//! with custom networking the feature `CustomNetworking` names the node's ENIConfig (none for
//! `default`, as the reference), so trunk and branch ENIs go where the node's pods go; with
//! `ENABLE_POD_ENI` on a trunking-compatible type the feature `SecurityGroupsForPods` asks the
//! controller for a trunk ENI and branch ENIs (reference §7.1–7.2), and so does the legacy node
//! label `vpc.amazonaws.com/has-trunk-attached=false` for older controllers. Created when
//! missing; other features are kept; a stale write (409) is read again and retried.

use std::time::Duration;

use eniplan_crd::cninode::{
    CNINode, CNINodeSpec, CUSTOM_NETWORKING, Feature, SECURITY_GROUPS_FOR_PODS, with_feature,
};
use k8s_openapi::api::core::v1::Node;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};
use tokio::sync::watch;

use super::Facts;
use super::facts::HAS_TRUNK_LABEL;

/// How long a failed write waits before the next try.
const RETRY: Duration = Duration::from_secs(5);

/// Which features the node's CNINode carries (each with its value; `None` removes it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wanted {
    /// Custom networking: `CustomNetworking` follows the node's ENIConfig.
    pub custom_networking: bool,
    /// Security groups for pods: `SecurityGroupsForPods` (value "").
    pub security_groups_for_pods: bool,
}

impl Wanted {
    /// The features for `facts`, once the node has been read.
    fn features(self, facts: &Facts) -> Option<Vec<(&'static str, Option<String>)>> {
        let node = facts.node.as_ref()?;
        let mut out = Vec::new();
        if self.custom_networking {
            let name = (node.eni_config != eniplan_crd::DEFAULT_ENICONFIG)
                .then(|| node.eni_config.clone());
            out.push((CUSTOM_NETWORKING, name));
        }
        if self.security_groups_for_pods {
            out.push((SECURITY_GROUPS_FOR_PODS, Some(String::new())));
        }
        Some(out)
    }
}

/// Keeps the features equal to what `wanted` asks for as the facts change; with security
/// groups for pods also labels the node `vpc.amazonaws.com/has-trunk-attached=false` while the
/// label is absent, for controller releases that predate the CNINode (written at most once per
/// run, and only while the watch shows no label).
pub async fn keep(client: Client, node: String, mut facts: watch::Receiver<Facts>, wanted: Wanted) {
    let nodes: Api<Node> = Api::all(client.clone());
    let api: Api<CNINode> = Api::all(client);
    let mut written = None;
    let mut labelled = false; // once per run: a label seen late is not written over
    loop {
        let label_missing = wanted.security_groups_for_pods
            && !labelled
            && facts
                .borrow()
                .node
                .as_ref()
                .is_some_and(|n| n.has_trunk_label.is_none());
        if label_missing {
            let patch = serde_json::json!({"metadata": {"labels": {HAS_TRUNK_LABEL: "false"}}});
            if let Err(e) = nodes
                .patch(&node, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                tracing::warn!(error = %e, label = HAS_TRUNK_LABEL, "cannot label the node; retrying");
                tokio::time::sleep(RETRY).await;
                continue;
            }
            tracing::info!(
                label = HAS_TRUNK_LABEL,
                "node labelled: a trunk ENI is wanted"
            );
            labelled = true;
        }
        let want = wanted.features(&facts.borrow_and_update());
        if let Some(want) = want
            && written.as_ref() != Some(&want)
        {
            match ensure(&api, &node, &want).await {
                Ok(()) => {
                    tracing::info!(features = ?want, "CNINode features written");
                    written = Some(want);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot write the CNINode features; retrying");
                    tokio::time::sleep(RETRY).await;
                    continue;
                }
            }
        }
        if facts.changed().await.is_err() {
            return;
        }
    }
}

/// `features` with every wanted one applied; `None` when nothing changes.
fn apply(features: &[Feature], want: &[(&str, Option<String>)]) -> Option<Vec<Feature>> {
    let mut out = features.to_vec();
    let mut changed = false;
    for (name, value) in want {
        if let Some(next) = with_feature(&out, name, value.as_deref()) {
            out = next;
            changed = true;
        }
    }
    changed.then_some(out)
}

async fn ensure(
    api: &Api<CNINode>,
    node: &str,
    want: &[(&str, Option<String>)],
) -> kube::Result<()> {
    loop {
        let Some(mut current) = api.get_opt(node).await? else {
            let fresh = CNINode::new(
                node,
                CNINodeSpec {
                    features: apply(&[], want).unwrap_or_default(),
                    ..CNINodeSpec::default()
                },
            );
            match api.create(&PostParams::default(), &fresh).await {
                Err(kube::Error::Api(e)) if e.code == 409 => continue, // created meanwhile
                other => return other.map(|_| ()),
            }
        };
        let Some(features) = apply(&current.spec.features, want) else {
            return Ok(());
        };
        current.spec.features = features;
        match api.replace(node, &PostParams::default(), &current).await {
            Err(kube::Error::Api(e)) if e.code == 409 => {} // changed meanwhile: read again
            other => return other.map(|_| ()),
        }
    }
}
