//! Serving: the gRPC socket the CNI plugin talks to (with the standard health service), the
//! introspection endpoint and the Prometheus endpoint. Each server stops when the daemon's
//! stage reaches [`Stage::Exit`].

use std::path::Path;
use std::sync::Arc;

use tokio::sync::{mpsc, watch};

use crate::config::{Bind, Config};
use crate::driver::Event;
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::node::Node;
use crate::{Stage, authority, introspect, rpc, server, wait_for};

/// The largest gRPC request the socket decodes: a plugin's request is a few hundred bytes of
/// names, so anything near this is not a plugin. Larger ones are refused (`OUT_OF_RANGE`, from
/// the message's length prefix) before they are buffered, instead of at tonic's default 4 MiB.
pub const MAX_REQUEST: usize = 64 * 1024;

fn bind_unix(path: &Path) -> Result<tokio::net::UnixListener> {
    use std::os::unix::fs::PermissionsExt as _;
    let _ = std::fs::remove_file(path);
    let l = tokio::net::UnixListener::bind(path).map_err(|source| Error::Io {
        what: "cannot listen on",
        path: path.to_owned(),
        source,
    })?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660)).map_err(|source| {
        Error::Io {
            what: "cannot restrict",
            path: path.to_owned(),
            source,
        }
    })?;
    Ok(l)
}

/// The gRPC socket in the state directory.
pub(crate) fn socket_path(config: &Config) -> std::path::PathBuf {
    config.state_dir.join("ipamd.sock")
}

/// Refuses to go on when another process answers on the socket: it would be replaced and its
/// ENIs fought over. A file nobody listens on (a previous run's) is left for [`start`] to
/// replace. Checked before the daemon touches IMDS, EC2 or the host.
pub(crate) async fn ensure_socket_free(path: &Path) -> Result<()> {
    let connect = tokio::net::UnixStream::connect(path);
    match tokio::time::timeout(std::time::Duration::from_secs(2), connect).await {
        // Connected, or a listener so busy it does not accept within 2 s: someone is there.
        Ok(Ok(_)) | Err(_) => Err(Error::SocketInUse {
            path: path.to_owned(),
        }),
        Ok(Err(_)) => Ok(()),
    }
}

async fn bind_tcp(addr: std::net::SocketAddr) -> Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Io {
            what: "cannot listen on",
            path: addr.to_string().into(),
            source,
        })
}

/// Serves `router` on `listener` in a background task until `exit` resolves.
fn serve_http<L>(
    listener: L,
    router: axum::Router,
    exit: impl Future<Output = ()> + Send + 'static,
) -> tokio::task::JoinHandle<()>
where
    L: axum::serve::Listener,
    L::Addr: std::fmt::Debug,
{
    tokio::spawn(async move {
        let _ = axum::serve(listener, router)
            .with_graceful_shutdown(exit)
            .await;
    })
}

/// Binds every listener (an error if one cannot be bound) and serves in background tasks.
pub(crate) async fn start(
    config: &Arc<Config>,
    node: &Arc<Node>,
    tx: &mpsc::Sender<Event>,
    metrics: &Arc<Metrics>,
    kube: Option<&crate::k8s::Kube>,
    stage: watch::Receiver<Stage>,
) -> Result<Vec<tokio::task::JoinHandle<()>>> {
    let mut tasks = Vec::new();
    // gRPC on the socket, with the standard health service.
    let socket = socket_path(config);
    let listener = bind_unix(&socket)?;
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_serving::<rpc::cni_backend_server::CniBackendServer<server::Service>>()
        .await;
    reporter
        .set_service_status(
            "grpc.health.v1.aws-node",
            tonic_health::ServingStatus::Serving,
        )
        .await;
    let service = server::Service {
        tx: tx.clone(),
        version: config.version.clone(),
        vpc_cidrs: node.vpc_cidrs.iter().map(ToString::to_string).collect(),
        external_snat: config.external_snat,
        network_policy_mode: config.network_policy_mode.clone(),
        metrics: Arc::clone(metrics),
        branches: crate::k8s::branch::Branches::new(kube, config, node),
    };
    let exit = wait_for(stage.clone(), Stage::Exit);
    tasks.push(tokio::spawn(async move {
        // Every client's :authority is accepted (gRPC C-core sends the socket path).
        let incoming = tokio_stream::StreamExt::map(
            tokio_stream::wrappers::UnixListenerStream::new(listener),
            |conn| conn.map(authority::Normalize::new),
        );
        if let Err(e) = tonic::transport::Server::builder()
            .add_service(health)
            .add_service(
                rpc::cni_backend_server::CniBackendServer::new(service)
                    .max_decoding_message_size(MAX_REQUEST),
            )
            .serve_with_incoming_shutdown(incoming, exit)
            .await
        {
            tracing::error!(error = %e, "gRPC server stopped");
        }
    }));
    let http = introspect::Http {
        tx: tx.clone(),
        config: Arc::clone(config),
        subnet_id: node.subnet_id.clone(),
        metrics: Arc::clone(metrics),
        facts: kube.map(|k| k.facts.clone()),
    };
    if let Some(bind) = &config.introspection {
        let router = introspect::introspection(http.clone());
        let exit = wait_for(stage.clone(), Stage::Exit);
        tasks.push(match bind {
            Bind::Tcp(addr) => serve_http(bind_tcp(*addr).await?, router, exit),
            Bind::Unix(path) => serve_http(bind_unix(path)?, router, exit),
        });
    }
    if let Some(addr) = config.metrics {
        let router = introspect::metrics_router(http);
        let exit = wait_for(stage, Stage::Exit);
        tasks.push(serve_http(bind_tcp(addr).await?, router, exit));
    }
    Ok(tasks)
}
