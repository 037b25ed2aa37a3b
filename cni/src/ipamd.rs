//! The plugin's side of the socket: AddNetwork and DelNetwork over `rpc.CNIBackend`, and the
//! health check STATUS asks.

use std::path::PathBuf;
use std::time::Duration;

use eniplan_rpc::cni_backend_client::CniBackendClient;
use eniplan_rpc::{
    AddNetworkReply, AddNetworkRequest, CheckNetworkReply, CheckNetworkRequest, DelNetworkReply,
    DelNetworkRequest, GarbageCollectReply, GarbageCollectRequest,
};
use hyper_util::rt::TokioIo;
use tonic::transport::{Channel, Endpoint, Uri};

use crate::spec::{Code, Error};

/// How long the plugin waits for ipamd to accept a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long one call may take (ipamd answers from its warm pool in microseconds; the rest is
/// headroom for a node under load).
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// This release: sent as `ClientVersion`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// A connection to ipamd.
pub struct Ipamd {
    client: CniBackendClient<Channel>,
    channel: Channel,
    socket: String,
}

impl Ipamd {
    /// Connects to ipamd's socket.
    ///
    /// # Errors
    /// Code 11 (try again later) naming the socket when ipamd does not answer.
    pub async fn connect(socket: &str) -> Result<Ipamd, Error> {
        let path = PathBuf::from(socket);
        let channel = Endpoint::from_static("http://localhost")
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(CALL_TIMEOUT)
            .connect_with_connector(tower::service_fn(move |_: Uri| {
                let path = path.clone();
                async move {
                    Ok::<_, std::io::Error>(TokioIo::new(
                        tokio::net::UnixStream::connect(path).await?,
                    ))
                }
            }))
            .await
            .map_err(|e| {
                Error::new(
                    Code::TryAgainLater,
                    format!("ipamd is not reachable at {socket}: {e}"),
                )
                .details(
                    "is the eniplan ipamd (aws-node) pod running on this node? the kubelet retries",
                )
            })?;
        Ok(Ipamd {
            client: CniBackendClient::new(channel.clone()),
            channel,
            socket: socket.to_owned(),
        })
    }

    /// Whether ipamd's standard health service reports `grpc.health.v1.aws-node` as SERVING
    /// (what the aws-node entrypoint waits for).
    pub async fn healthy(&self) -> bool {
        let mut health = tonic_health::pb::health_client::HealthClient::new(self.channel.clone());
        health
            .check(tonic_health::pb::HealthCheckRequest {
                service: "grpc.health.v1.aws-node".to_owned(),
            })
            .await
            .is_ok_and(|r| {
                r.into_inner().status
                    == tonic_health::pb::health_check_response::ServingStatus::Serving as i32
            })
    }

    fn status(&self, call: &str, s: &tonic::Status) -> Error {
        let code = match s.code() {
            tonic::Code::Unavailable
            | tonic::Code::ResourceExhausted
            | tonic::Code::DeadlineExceeded => Code::TryAgainLater,
            _ => Code::IpamdRefused,
        };
        Error::new(
            code,
            format!(
                "ipamd ({}) {call}: {}: {}",
                self.socket,
                s.code(),
                s.message()
            ),
        )
    }

    /// AddNetwork.
    ///
    /// # Errors
    /// Code 11 when ipamd has no address yet or is going away, 100 when it refuses.
    pub async fn add(&mut self, request: AddNetworkRequest) -> Result<AddNetworkReply, Error> {
        let reply = self
            .client
            .add_network(request)
            .await
            .map_err(|s| self.status("AddNetwork", &s))?
            .into_inner();
        if !reply.success {
            return Err(Error::new(
                Code::IpamdRefused,
                "ipamd could not assign an address to the container",
            ));
        }
        Ok(reply)
    }

    /// DelNetwork; `Ok(None)` when ipamd does not know the pod (already released).
    ///
    /// # Errors
    /// As [`Ipamd::add`].
    pub async fn del(
        &mut self,
        request: DelNetworkRequest,
    ) -> Result<Option<DelNetworkReply>, Error> {
        match self.client.del_network(request).await {
            Ok(r) => Ok(Some(r.into_inner())),
            Err(s) if s.code() == tonic::Code::NotFound && s.message().contains("unknown pod") => {
                Ok(None)
            }
            Err(s) => Err(self.status("DelNetwork", &s)),
        }
    }

    /// CheckNetwork: whether ipamd holds the attachment's address.
    ///
    /// # Errors
    /// As [`Ipamd::add`].
    pub async fn check(
        &mut self,
        request: CheckNetworkRequest,
    ) -> Result<CheckNetworkReply, Error> {
        self.client
            .check_network(request)
            .await
            .map(tonic::Response::into_inner)
            .map_err(|s| self.status("CheckNetwork", &s))
    }

    /// GarbageCollect: releases every attachment of the network not listed.
    ///
    /// # Errors
    /// As [`Ipamd::add`].
    pub async fn gc(
        &mut self,
        request: GarbageCollectRequest,
    ) -> Result<GarbageCollectReply, Error> {
        self.client
            .garbage_collect(request)
            .await
            .map(tonic::Response::into_inner)
            .map_err(|s| self.status("GarbageCollect", &s))
    }
}
