//! Kubernetes Events for what an operator must act on: on the node (ENIConfig missing or
//! invalid, subnet full, node limits reached, an EC2 permission missing) and on a pod whose ADD
//! got no address. Published with kube's `Recorder` (events.k8s.io/v1, repeated ones as a
//! series); the same notice is sent at most once per [`REPEAT_AFTER`], so a storm of failing
//! ADDs costs the API server one request, not one per retry.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::ObjectReference;
use kube::Client;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::Facts;

/// The same notice (object, reason, note) is published again only after this long.
pub const REPEAT_AFTER: Duration = Duration::from_mins(5);

/// What an Event is about.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Subject {
    /// This node.
    Node,
    /// A pod on it.
    Pod {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
    },
}

/// One Event to publish.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Notice {
    /// About what.
    pub subject: Subject,
    /// `Warning` (else `Normal`).
    pub warning: bool,
    /// PascalCase reason (`ENIConfigNotFound`, `SubnetFull`, `FailedToAssignIP`…).
    pub reason: &'static str,
    /// The message, in the words `/v1/decisions` uses.
    pub note: String,
}

/// Where the pool loop sends notices (never waits: a full queue drops one).
pub type Notices = mpsc::Sender<Notice>;

/// Publishes notices until the senders are gone.
pub async fn publisher(
    client: Client,
    node: String,
    facts: watch::Receiver<Facts>,
    mut rx: mpsc::Receiver<Notice>,
) {
    let reporter = Reporter {
        controller: "eniplan-ipamd".into(),
        instance: Some(node.clone()),
    };
    let recorder = Recorder::new(client, reporter);
    let mut sent: BTreeMap<Notice, Instant> = BTreeMap::new();
    while let Some(n) = rx.recv().await {
        let now = Instant::now();
        sent.retain(|_, at| now.duration_since(*at) < REPEAT_AFTER);
        if sent.contains_key(&n) {
            continue;
        }
        let reference = match &n.subject {
            Subject::Node => ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Node".into()),
                name: Some(node.clone()),
                uid: facts.borrow().node.as_ref().map(|i| i.uid.clone()),
                ..ObjectReference::default()
            },
            Subject::Pod { namespace, name } => ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Pod".into()),
                namespace: Some(namespace.clone()),
                name: Some(name.clone()),
                ..ObjectReference::default()
            },
        };
        let event = Event {
            type_: if n.warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: n.reason.into(),
            note: Some(n.note.chars().take(1000).collect()),
            action: "AllocateAddresses".into(),
            secondary: None,
        };
        match recorder.publish(&event, &reference).await {
            Ok(()) => {
                sent.insert(n, now);
            }
            Err(e) => {
                tracing::warn!(reason = n.reason, error = %e, "cannot publish a Kubernetes Event");
            }
        }
    }
}

/// The reason of a notice about new ENIs being blocked, from its explanation.
pub fn blocked_reason(why: &str) -> &'static str {
    if why.contains("does not exist") {
        "ENIConfigNotFound"
    } else if why.contains("is invalid") {
        "ENIConfigInvalid"
    } else {
        "ENIConfigUnknown"
    }
}
