//! Runs the engine's EC2 calls with the `cloud` adapters and turns their results into the
//! engine's outcomes. A dumb interpreter: every decision was taken by `planner::pool`.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cloud::model::{CreateEni, NetworkInterface};
use cloud::{CloudError, Ec2};
use planner::pool::{Ec2Call, EniId, Failure, Outcome};

use crate::config::Config;
use crate::hostnet::{EniHost, LINK_WAIT};
use crate::metrics::Metrics;
use crate::node::{Node, new_eni_tags, rfc3339};

/// Executes calls for one node.
pub struct Executor<E> {
    /// The (guarded) EC2 client.
    pub ec2: E,
    /// The node.
    pub node: Arc<Node>,
    /// The configuration.
    pub config: Arc<Config>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// What the Kubernetes API says (ENIConfigs, for custom networking); `None` off a cluster.
    pub facts: Option<tokio::sync::watch::Receiver<crate::k8s::Facts>>,
}

impl<E: Ec2> Executor<E> {
    /// Runs `call`; `devices` are the device indexes in use (for a new ENI's attachment).
    pub async fn execute(&self, call: Ec2Call, devices: BTreeSet<u32>) -> Result<Outcome, Failure> {
        match call {
            Ec2Call::CreateEni { ips, prefixes } => self.create_eni(ips, prefixes, &devices).await,
            Ec2Call::AssignIps { eni, count } => {
                let r = self.ec2.assign_private_ips(&eni, count).await;
                r.map(|ips| Outcome::IpsAssigned { ips })
                    .map_err(|e| e.to_failure())
            }
            Ec2Call::AssignPrefixes { eni, count } => {
                let r = self.ec2.assign_prefixes(&eni, count).await;
                r.map(|prefixes| Outcome::PrefixesAssigned { prefixes })
                    .map_err(|e| e.to_failure())
            }
            Ec2Call::UnassignIps { eni, ips } => {
                let r = self.ec2.unassign_private_ips(&eni, &ips).await;
                r.map(|()| Outcome::Unassigned).map_err(|e| e.to_failure())
            }
            Ec2Call::UnassignPrefixes { eni, prefixes } => {
                let r = self.ec2.unassign_prefixes(&eni, &prefixes).await;
                r.map(|()| Outcome::Unassigned).map_err(|e| e.to_failure())
            }
            Ec2Call::DeleteEni { eni } => self.delete_eni(&eni).await,
            Ec2Call::DescribeEni { eni } => {
                let filter = cloud::model::EniFilter {
                    ids: vec![eni],
                    ..Default::default()
                };
                let r = self.ec2.describe_network_interfaces(&filter).await;
                let enis = r.map_err(|e| e.to_failure())?;
                let e = enis.first().ok_or(Failure::NotFound)?;
                Ok(Outcome::EniDescribed {
                    ips: e.secondary_ips.clone(),
                    prefixes: e.prefixes.clone(),
                })
            }
        }
    }

    async fn create_eni(
        &self,
        ips: u32,
        prefixes: u32,
        devices: &BTreeSet<u32>,
    ) -> Result<Outcome, Failure> {
        let instance = self.node.identity.instance_id.clone();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_secs();
        let (subnet_id, security_groups) = self.placement()?;
        let request = CreateEni {
            subnet_id,
            description: format!("aws-K8S-{instance}"),
            security_groups,
            secondary_ips: ips,
            prefixes,
            interface_type: None,
            tags: new_eni_tags(&self.config, &instance, rfc3339(now)),
        };
        let created = self.ec2.create_network_interface(&request).await;
        let eni = created.map_err(|e| e.to_failure())?;
        let device = (1..100).find(|d| !devices.contains(d)).unwrap_or(1);
        let attached = self
            .ec2
            .attach_network_interface(&eni.id, &instance, device, 0)
            .await;
        let attachment = match attached {
            Ok(a) => a,
            Err(e) => {
                // Never leak the ENI we just created.
                self.delete_with_retries(&eni.id).await;
                return Err(e.to_failure());
            }
        };
        self.node
            .attachments
            .lock()
            .expect("attachments")
            .insert(eni.id.clone(), attachment.clone());
        let dot = self
            .ec2
            .set_delete_on_termination(&eni.id, &attachment, true)
            .await;
        if let Err(e) = dot {
            tracing::warn!(eni = %eni.id, error = %e, "cannot set DeleteOnTermination; freeing the ENI");
            let _ = self.delete_eni(&eni.id).await;
            return Err(e.to_failure());
        }
        self.node
            .flags
            .lock()
            .expect("flags")
            .insert(eni.id.clone(), (false, false));
        if let Err(e) = self.setup_host(&eni, device).await {
            tracing::warn!(eni = %eni.id, error = %e, "cannot set up the new ENI's host networking; freeing it");
            let _ = self.delete_eni(&eni.id).await;
            return Err(Failure::Other {
                message: e.to_string(),
            });
        }
        Ok(Outcome::EniCreated {
            eni: eni.id,
            device,
            primary_ip: eni.primary_ip,
            ips: eni.secondary_ips,
            prefixes: eni.prefixes,
        })
    }

    /// The subnet and security groups of a new ENI: the node's, or with custom networking the
    /// ENIConfig's as it is now (a changed ENIConfig applies to new ENIs only; an empty group
    /// list means the primary ENI's, as in the reference).
    fn placement(&self) -> Result<(String, Vec<String>), Failure> {
        let custom = self.config.pool.custom_networking;
        let placement = match &self.facts {
            Some(f) => f.borrow().placement(custom),
            None if custom => crate::k8s::Placement::Blocked {
                why: "custom networking needs the Kubernetes API (MY_NODE_NAME)".into(),
            },
            None => crate::k8s::Placement::NodeSubnet,
        };
        match placement {
            crate::k8s::Placement::NodeSubnet => Ok((
                self.node.subnet_id.clone(),
                self.node.security_groups.clone(),
            )),
            crate::k8s::Placement::EniConfig {
                name,
                subnet,
                security_groups,
            } => {
                let groups = if security_groups.is_empty() {
                    tracing::warn!(eniconfig = %name, "the ENIConfig names no security groups; the new ENI gets the primary ENI's");
                    self.node.security_groups.clone()
                } else {
                    security_groups
                };
                Ok((subnet, groups))
            }
            crate::k8s::Placement::Blocked { why } => Err(Failure::Other { message: why }),
        }
    }

    /// The new ENI's link, route table and rule (waiting for EC2's hotplug), before any of its
    /// addresses reaches a pod.
    async fn setup_host(&self, eni: &NetworkInterface, device: u32) -> crate::Result<()> {
        let Some(host) = &self.node.hostnet else {
            return Ok(());
        };
        let subnet = if eni.subnet_id == self.node.subnet_id {
            self.node.subnet_cidr
        } else {
            let subnets = self
                .ec2
                .describe_subnets(std::slice::from_ref(&eni.subnet_id))
                .await
                .map_err(|source| crate::Error::Cloud {
                    what: format!("describing subnet {}", eni.subnet_id),
                    source,
                })?;
            subnets.first().map(|s| s.cidr).ok_or_else(|| {
                crate::Error::Startup(format!("subnet {} not found", eni.subnet_id))
            })?
        };
        let eni = EniHost {
            id: eni.id.clone(),
            mac: eni.mac.clone(),
            device,
            primary_ip: eni.primary_ip,
            subnet,
        };
        host.setup_eni(&eni, LINK_WAIT).await
    }

    async fn delete_eni(&self, eni: &EniId) -> Result<Outcome, Failure> {
        // First out of the ENIs whose host networking reconcile keeps: IMDS goes on listing an
        // ENI for a while after its detach, and a pass in between must not set it up again.
        self.node.flags.lock().expect("flags").remove(eni);
        if let Some(host) = &self.node.hostnet
            && let Err(e) = host.release_eni(eni).await
        {
            tracing::warn!(%eni, error = %e, "cannot remove the ENI's route table and rule");
        }
        let attachment = self
            .node
            .attachments
            .lock()
            .expect("attachments")
            .get(eni)
            .cloned();
        if let Some(a) = attachment {
            let r = self.ec2.detach_network_interface(&a, false).await;
            match r {
                Ok(()) | Err(CloudError::NotFound { .. }) => {}
                Err(e) => return Err(e.to_failure()),
            }
            self.node
                .attachments
                .lock()
                .expect("attachments")
                .remove(eni);
        }
        if self.delete_with_retries(eni).await {
            Ok(Outcome::EniDeleted)
        } else {
            Err(Failure::Other {
                message: format!("{eni} could not be deleted; the leaked-ENI sweep will retry"),
            })
        }
    }

    /// Deletes an ENI, waiting out `InvalidNetworkInterface.InUse` while a detach completes
    /// (12 tries, 500 ms doubling, as the reference). `NotFound` counts as deleted.
    async fn delete_with_retries(&self, eni: &EniId) -> bool {
        let mut wait = Duration::from_millis(500);
        for _ in 0..12 {
            let r = self.ec2.delete_network_interface(eni).await;
            match r {
                Ok(()) | Err(CloudError::NotFound { .. }) => return true,
                Err(CloudError::Invalid { code, .. })
                    if code == "InvalidNetworkInterface.InUse" =>
                {
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(30));
                }
                Err(e) => {
                    tracing::warn!(%eni, error = %e, "cannot delete ENI");
                    return false;
                }
            }
        }
        false
    }
}
