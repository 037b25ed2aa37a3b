//! A client of the daemon's socket: used by `ipamd-client`, the tests and the benchmarks.

use std::path::{Path, PathBuf};

use hyper_util::rt::TokioIo;
use tonic::transport::{Channel, Endpoint, Uri};
use tower::service_fn;

use crate::rpc::c_n_i_backend_client::CNIBackendClient;
use crate::rpc::{AddNetworkRequest, DelNetworkRequest};

/// Connects to the daemon's Unix socket.
pub async fn connect(socket: &Path) -> Result<CNIBackendClient<Channel>, tonic::transport::Error> {
    let path: PathBuf = socket.to_owned();
    let channel = Endpoint::try_from("http://[::1]:50051")?
        .connect_with_connector(service_fn(move |_: Uri| {
            let path = path.clone();
            async move {
                Ok::<_, std::io::Error>(TokioIo::new(tokio::net::UnixStream::connect(path).await?))
            }
        }))
        .await?;
    Ok(CNIBackendClient::new(channel))
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
