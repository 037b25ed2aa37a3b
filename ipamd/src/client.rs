//! A client of the daemon's socket: used by `ipamd-client`, the tests and the benchmarks.

use std::path::{Path, PathBuf};

use hyper_util::rt::TokioIo;
use tonic::transport::{Channel, Endpoint, Uri};
use tower::service_fn;

use crate::rpc::cni_backend_client::CniBackendClient;
use crate::rpc::{AddNetworkRequest, DelNetworkRequest};

/// A gRPC channel over the daemon's Unix socket.
pub async fn channel(socket: &Path) -> Result<Channel, tonic::transport::Error> {
    let path: PathBuf = socket.to_owned();
    Endpoint::try_from("http://[::1]:50051")?
        .connect_with_connector(service_fn(move |_: Uri| {
            let path = path.clone();
            async move {
                Ok::<_, std::io::Error>(TokioIo::new(tokio::net::UnixStream::connect(path).await?))
            }
        }))
        .await
}

/// Connects to the daemon's Unix socket.
pub async fn connect(socket: &Path) -> Result<CniBackendClient<Channel>, tonic::transport::Error> {
    Ok(CniBackendClient::new(channel(socket).await?))
}

/// Asks the standard gRPC health service whether `rpc.CNIBackend` is serving.
pub async fn health(socket: &Path) -> Result<bool, String> {
    let channel = channel(socket)
        .await
        .map_err(|e| format!("cannot connect to {}: {e}", socket.display()))?;
    let mut client = tonic_health::pb::health_client::HealthClient::new(channel);
    let reply = client
        .check(tonic_health::pb::HealthCheckRequest {
            service: "grpc.health.v1.aws-node".to_owned(),
        })
        .await
        .map_err(|s| format!("{}: {}", s.code(), s.message()))?;
    Ok(reply.into_inner().status
        == tonic_health::pb::health_check_response::ServingStatus::Serving as i32)
}

/// An ADD request for a container, as the CNI plugin builds it.
pub fn add_request(container_id: &str, namespace: &str, pod: &str) -> AddNetworkRequest {
    AddNetworkRequest {
        k8s_pod_name: pod.to_owned(),
        k8s_pod_namespace: namespace.to_owned(),
        k8s_pod_infra_container_id: container_id.to_owned(),
        netns: format!("/var/run/netns/{container_id}"),
        if_name: "eth0".to_owned(),
        network_name: "aws-cni".to_owned(),
        container_id: container_id.to_owned(),
        client_version: String::new(),
        requires_multi_nic_attachment: false,
        k8s_pod_uid: String::new(),
    }
}

/// The matching DEL request.
pub fn del_request(container_id: &str, namespace: &str, pod: &str) -> DelNetworkRequest {
    DelNetworkRequest {
        k8s_pod_name: pod.to_owned(),
        k8s_pod_namespace: namespace.to_owned(),
        k8s_pod_infra_container_id: container_id.to_owned(),
        reason: "PodDeleted".to_owned(),
        if_name: "eth0".to_owned(),
        network_name: "aws-cni".to_owned(),
        container_id: container_id.to_owned(),
        client_version: String::new(),
        k8s_pod_uid: String::new(),
    }
}
