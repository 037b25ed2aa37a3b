//! The node's `CNINode`: with custom networking, the feature `CustomNetworking` names the
//! node's ENIConfig (none for `default`, as the reference), so the VPC resource controller puts
//! trunk and branch ENIs where the node's pods go. Created when missing; other features are
//! kept; a stale write (409) is read again and retried.

use std::time::Duration;

use eniplan_crd::cninode::{CNINode, CNINodeSpec, CUSTOM_NETWORKING, with_feature};
use kube::api::PostParams;
use kube::{Api, Client};
use tokio::sync::watch;

use super::Facts;

/// How long a failed write waits before the next try.
const RETRY: Duration = Duration::from_secs(5);

/// Keeps the feature equal to the node's ENIConfig for as long as the facts change.
pub async fn keep(client: Client, node: String, mut facts: watch::Receiver<Facts>) {
    let api: Api<CNINode> = Api::all(client);
    let mut written: Option<Option<String>> = None;
    loop {
        let want = facts.borrow_and_update().node.as_ref().map(|n| {
            (n.eni_config != eniplan_crd::DEFAULT_ENICONFIG).then(|| n.eni_config.clone())
        });
        if let Some(value) = want
            && written.as_ref() != Some(&value)
        {
            match ensure(&api, &node, value.as_deref()).await {
                Ok(()) => {
                    tracing::info!(feature = CUSTOM_NETWORKING, value = ?value, "CNINode feature written");
                    written = Some(value);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot write the CNINode feature; retrying");
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

async fn ensure(api: &Api<CNINode>, node: &str, value: Option<&str>) -> kube::Result<()> {
    loop {
        let Some(mut current) = api.get_opt(node).await? else {
            let features = with_feature(&[], CUSTOM_NETWORKING, value).unwrap_or_default();
            let fresh = CNINode::new(
                node,
                CNINodeSpec {
                    features,
                    ..CNINodeSpec::default()
                },
            );
            match api.create(&PostParams::default(), &fresh).await {
                Err(kube::Error::Api(e)) if e.code == 409 => continue, // created meanwhile
                other => return other.map(|_| ()),
            }
        };
        let Some(features) = with_feature(&current.spec.features, CUSTOM_NETWORKING, value) else {
            return Ok(());
        };
        current.spec.features = features;
        match api.replace(node, &PostParams::default(), &current).await {
            Err(kube::Error::Api(e)) if e.code == 409 => {} // changed meanwhile: read again
            other => return other.map(|_| ()),
        }
    }
}
