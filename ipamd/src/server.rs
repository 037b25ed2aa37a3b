//! The CNI-facing gRPC service (`rpc.CNIBackend`) on the Unix socket, with the AWS VPC CNI's
//! semantics (§4.3–§4.4 of the reference): idempotent ADD per key, DEL of an unknown key
//! reported as `datastore: unknown pod`, a version handshake. eniplan answers bad requests with
//! precise gRPC errors instead of a bare `Success=false`.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};
use tonic::{Request, Response, Status};

use crate::checkpoint::Metadata;
use crate::driver::{Durable, Event};
use crate::metrics::Metrics;
use crate::node::route_table;
use crate::rpc::cni_backend_server::CniBackend;
use crate::rpc::{
    AddNetworkReply, AddNetworkRequest, Attachment, CheckNetworkReply, CheckNetworkRequest,
    DelNetworkReply, DelNetworkRequest, GarbageCollectReply, GarbageCollectRequest,
    IpAllocationMetadata,
};

/// The service.
pub struct Service {
    /// To the pool loop.
    pub tx: mpsc::Sender<Event>,
    /// The version clients must present (or "").
    pub version: String,
    /// VPC CIDRs for the reply.
    pub vpc_cidrs: Vec<String>,
    /// `AWS_VPC_K8S_CNI_EXTERNALSNAT`.
    pub external_snat: bool,
    /// `NETWORK_POLICY_ENFORCING_MODE`.
    pub network_policy_mode: String,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Branch-ENI pods (`ENABLE_POD_ENI=true` on a cluster); `None` otherwise.
    pub branches: Option<Arc<crate::k8s::branch::Branches>>,
}

/// The message the reference daemon and plugin use for an unknown pod on DEL.
pub const UNKNOWN_POD: &str = "datastore: unknown pod";

/// The wire form of a pod's address.
fn allocation(address: &planner::pool::PodAddress) -> IpAllocationMetadata {
    IpAllocationMetadata {
        ipv4_addr: address.ip.to_string(),
        ipv6_addr: String::new(),
        device_number: i32::try_from(address.device).unwrap_or(i32::MAX),
        route_table_id: route_table(address.device),
    }
}

/// The wire form of a branch-ENI pod's address: device -1, table 0 (the plugin uses the VLAN's
/// table, VLAN id + 100).
fn branch_allocation(b: &eniplan_crd::pod_eni::BranchEni) -> IpAllocationMetadata {
    IpAllocationMetadata {
        ipv4_addr: b.ip.to_string(),
        ipv6_addr: String::new(),
        device_number: -1,
        route_table_id: 0,
    }
}

fn required(field: &str, value: &str) -> Result<(), Status> {
    if value.is_empty() {
        return Err(Status::invalid_argument(format!(
            "{field} is required and was empty"
        )));
    }
    Ok(())
}

/// The allocation key of a request, each part required.
///
/// # Errors
/// `INVALID_ARGUMENT` naming the first empty part.
pub fn key(
    network_name: String,
    container_id: String,
    if_name: String,
) -> Result<planner::pool::PodKey, Status> {
    required("ContainerID", &container_id)?;
    required("IfName", &if_name)?;
    required("NetworkName", &network_name)?;
    Ok(planner::pool::PodKey {
        network_name,
        container_id,
        if_name,
    })
}

/// The `reason` label of a DelNetwork: the two reasons plugins send (the VPC CNI's and
/// eniplan's), empty counted as `PodDeleted`, anything else as `other`. A client-chosen label
/// value would let any caller on the socket grow the metrics without bound.
pub fn del_reason(reason: &str) -> &'static str {
    match reason {
        "" | "PodDeleted" => "PodDeleted",
        "SetupNSFailed" => "SetupNSFailed",
        _ => "other",
    }
}

async fn durable(d: Durable) -> Result<(), Status> {
    match d.await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(Status::internal(format!(
            "the checkpoint could not be written ({e}); nothing was assigned"
        ))),
        Err(_) => Err(Status::unavailable("the daemon is shutting down")),
    }
}

impl Service {
    /// The pool's view (every held address with its pod).
    async fn view(&self) -> Result<crate::driver::View, Status> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Event::Query(tx))
            .await
            .map_err(|_| Status::unavailable("the pool loop has stopped"))?;
        rx.await
            .map_err(|_| Status::unavailable("the pool loop has stopped"))
    }

    /// Releases `key` as DEL does; `None` for an unknown pod.
    async fn release(
        &self,
        key: planner::pool::PodKey,
    ) -> Result<Option<planner::pool::PodAddress>, Status> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Event::Del { key, reply: tx })
            .await
            .map_err(|_| Status::unavailable("the pool loop has stopped"))?;
        match rx
            .await
            .map_err(|_| Status::unavailable("the pool loop has stopped"))?
        {
            Some((address, ack)) => {
                durable(ack).await?;
                Ok(Some(address))
            }
            None => Ok(None),
        }
    }

    /// The reply to a branch-ENI pod's ADD: its own address on its branch ENI, no pool address
    /// (device -1, table 0, as the reference), and what the plugin needs for the VLAN.
    fn branch_reply(&self, a: &crate::k8s::branch::BranchAnswer) -> AddNetworkReply {
        AddNetworkReply {
            success: true,
            ip_allocation_metadata: vec![branch_allocation(&a.branch)],
            use_external_snat: self.external_snat,
            vpc_v4_cidrs: self.vpc_cidrs.clone(),
            pod_vlan_id: i32::from(a.branch.vlan),
            pod_eni_mac: a.branch.mac.clone(),
            pod_eni_subnet_gw: a.branch.gateway().to_string(),
            parent_if_index: i32::try_from(a.parent_if_index).unwrap_or(i32::MAX),
            network_policy_mode: self.network_policy_mode.clone(),
            ..AddNetworkReply::default()
        }
    }

    /// Answers `namespace/name`'s ADD when it is a branch-ENI pod (`Ok(Some)`), or says it takes
    /// a pool address (`Ok(None)`).
    async fn add_branch(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<AddNetworkReply>, Status> {
        let Some(branches) = &self.branches else {
            return Ok(None);
        };
        match branches.add(namespace, name).await {
            Ok(None) => Ok(None),
            Ok(Some(a)) => {
                self.metrics.add_requests.inc();
                self.metrics
                    .branch_adds
                    .with_label_values(&["served"])
                    .inc();
                tracing::info!(pod = %format!("{namespace}/{name}"), eni = ?a.branch.eni_id, ip = %a.branch.ip, vlan = a.branch.vlan, trunk = %a.trunk.id, "branch-ENI pod served");
                Ok(Some(self.branch_reply(&a)))
            }
            Err(status) => {
                self.metrics.add_requests.inc();
                self.metrics.branch_adds.with_label_values(&["retry"]).inc();
                tracing::info!(pod = %format!("{namespace}/{name}"), reason = %status.message(), "ADD to be retried");
                Err(status)
            }
        }
    }

    /// DEL of a key the pool does not hold: a branch-ENI pod's VLAN when the pod still names
    /// one, else `datastore: unknown pod` (which the plugin takes as already released). Never
    /// an error otherwise: ipamd holds nothing for such a pod, and DEL must not block teardown.
    async fn del_unknown(&self, r: &DelNetworkRequest) -> Result<DelNetworkReply, Status> {
        let unknown = || Err(Status::not_found(UNKNOWN_POD));
        let Some(branches) = &self.branches else {
            return unknown();
        };
        match branches
            .del(&r.k8s_pod_namespace, &r.k8s_pod_name, &r.k8s_pod_uid)
            .await
        {
            Ok(Some(b)) => Ok(DelNetworkReply {
                success: true,
                ip_allocation_metadata: vec![branch_allocation(&b)],
                pod_vlan_id: i32::from(b.vlan),
                network_policy_mode: self.network_policy_mode.clone(),
            }),
            Ok(None) => unknown(),
            Err(status) => {
                tracing::info!(pod = %format!("{}/{}", r.k8s_pod_namespace, r.k8s_pod_name), reason = %status.message(), "DEL of an unknown key: no branch ENI answered");
                unknown()
            }
        }
    }

    fn check_version(&self, client: &str) -> Result<(), Status> {
        eniplan_rpc::check_client_version(client, &self.version)
            .map_err(Status::failed_precondition)
    }
}

#[tonic::async_trait]
impl CniBackend for Service {
    async fn add_network(
        &self,
        request: Request<AddNetworkRequest>,
    ) -> Result<Response<AddNetworkReply>, Status> {
        let r = request.into_inner();
        self.check_version(&r.client_version)?;
        let key = key(r.network_name, r.container_id, r.if_name)?;
        if r.requires_multi_nic_attachment {
            return Err(Status::invalid_argument(
                "multi-NIC attachment was requested, but eniplan manages only the default network card (ENABLE_MULTI_NIC is not supported)",
            ));
        }
        if let Some(reply) = self
            .add_branch(&r.k8s_pod_namespace, &r.k8s_pod_name)
            .await?
        {
            return Ok(Response::new(reply));
        }
        let meta = Metadata {
            pod_namespace: r.k8s_pod_namespace,
            pod_name: r.k8s_pod_name,
            pod_uid: r.k8s_pod_uid,
            interfaces_count: 1,
        };
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Event::Add {
                key: key.clone(),
                meta,
                reply: tx,
            })
            .await
            .map_err(|_| Status::unavailable("the pool loop has stopped"))?;
        match rx
            .await
            .map_err(|_| Status::unavailable("the pool loop has stopped"))?
        {
            Ok((address, ack)) => {
                if let Err(status) = durable(ack).await {
                    let _ = self.tx.send(Event::Undo(key)).await;
                    return Err(status);
                }
                Ok(Response::new(AddNetworkReply {
                    success: true,
                    ip_allocation_metadata: vec![allocation(&address)],
                    use_external_snat: self.external_snat,
                    vpc_v4_cidrs: self.vpc_cidrs.clone(),
                    network_policy_mode: self.network_policy_mode.clone(),
                    ..AddNetworkReply::default()
                }))
            }
            Err(reason) => Err(Status::resource_exhausted(format!(
                "no IP address for {key}: {reason}"
            ))),
        }
    }

    async fn del_network(
        &self,
        request: Request<DelNetworkRequest>,
    ) -> Result<Response<DelNetworkReply>, Status> {
        let r = request.into_inner();
        self.check_version(&r.client_version)?;
        self.metrics
            .del_requests
            .with_label_values(&[del_reason(&r.reason)])
            .inc();
        let key = key(
            r.network_name.clone(),
            r.container_id.clone(),
            r.if_name.clone(),
        )?;
        match self.release(key).await? {
            Some(address) => Ok(Response::new(DelNetworkReply {
                success: true,
                ip_allocation_metadata: vec![allocation(&address)],
                network_policy_mode: self.network_policy_mode.clone(),
                ..DelNetworkReply::default()
            })),
            None => self.del_unknown(&r).await.map(Response::new),
        }
    }

    async fn check_network(
        &self,
        request: Request<CheckNetworkRequest>,
    ) -> Result<Response<CheckNetworkReply>, Status> {
        let r = request.into_inner();
        self.check_version(&r.client_version)?;
        let key = key(r.network_name, r.container_id, r.if_name)?;
        let view = self.view().await?;
        let held = view.addresses.iter().find(|a| a.pod.as_ref() == Some(&key));
        let device = |eni: &planner::pool::EniId| {
            view.snapshot
                .enis
                .iter()
                .find(|e| &e.id == eni)
                .map_or(0, |e| e.device)
        };
        Ok(Response::new(CheckNetworkReply {
            owned: held.is_some(),
            ip_allocation_metadata: held.map(|a| {
                allocation(&planner::pool::PodAddress {
                    ip: a.ip,
                    eni: a.eni.clone(),
                    device: device(&a.eni),
                })
            }),
        }))
    }

    async fn garbage_collect(
        &self,
        request: Request<GarbageCollectRequest>,
    ) -> Result<Response<GarbageCollectReply>, Status> {
        let r = request.into_inner();
        self.check_version(&r.client_version)?;
        required("NetworkName", &r.network_name)?;
        let view = self.view().await?;
        let stale: Vec<planner::pool::PodKey> = view
            .addresses
            .iter()
            .filter_map(|a| a.pod.clone())
            .filter(|k| k.network_name == r.network_name)
            .filter(|k| {
                !r.valid
                    .iter()
                    .any(|v| v.container_id == k.container_id && v.if_name == k.if_name)
            })
            .collect();
        let mut reply = GarbageCollectReply::default();
        for key in stale {
            let attachment = Attachment {
                container_id: key.container_id.clone(),
                if_name: key.if_name.clone(),
            };
            if let Some(address) = self.release(key).await? {
                reply.released.push(attachment);
                reply.ip_allocation_metadata.push(allocation(&address));
            }
        }
        Ok(Response::new(reply))
    }
}
