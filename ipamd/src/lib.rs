//! # ipamd
//!
//! eniplan's node daemon: it keeps a warm pool of secondary IPs or /28 prefixes on the node's
//! ENIs with the same engine the planner simulates (`planner::pool`), talks to EC2 through the
//! `cloud` adapters, and hands pod addresses to the CNI plugin over gRPC on a Unix socket.
//! `docs/ipamd.md` describes start-up, the loop and the interfaces.
#![deny(missing_docs)]

pub mod checkpoint;
pub mod client;
pub mod config;
pub mod driver;
mod error;
pub mod executor;
pub mod introspect;
pub mod metrics;
pub mod node;
pub mod rpc;
pub mod server;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use cloud::model::{EniFilter, NetworkInterface};
use cloud::{Ec2, Guarded, Imds, RetryPolicy};
use planner::max_pods::{self, Options};
use planner::pool::{Input, Pool, Time};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

pub use error::{Error, Result};

use crate::config::{Bind, Config};
use crate::driver::{Driver, Event};
use crate::executor::Executor;
use crate::metrics::Metrics;
use crate::node::Node;

/// What the daemon has been told to do by signals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stage {
    /// Normal operation.
    Running,
    /// SIGTERM: stop growing and freeing ENIs, keep serving pods.
    Terminating,
    /// Exit now.
    Exit,
}

/// Runs the daemon until `stage` reaches [`Stage::Exit`].
pub async fn run<E, I>(config: Config, ec2: E, imds: I, stage: watch::Receiver<Stage>) -> Result<()>
where
    E: Ec2 + 'static,
    I: Imds + 'static,
{
    let start = Instant::now();
    std::fs::create_dir_all(&config.state_dir).map_err(|source| Error::Io {
        what: "cannot create the state directory",
        path: config.state_dir.clone(),
        source,
    })?;
    let config = Arc::new(config);
    let metrics = Arc::new(Metrics::new(&config.version));
    let report_calls: cloud::Observer = {
        let metrics = Arc::clone(&metrics);
        Arc::new(move |api, error, took| metrics.ec2_call(api, error, took))
    };
    let ec2 = Arc::new(Guarded::new(ec2, RetryPolicy::default()).observed_by(report_calls));

    // 1. The node, from IMDS and EC2.
    let (node, observed) = node::discover(&*ec2, &imds, &config).await?;
    tracing::info!(instance = %node.identity.instance_id, instance_type = %node.identity.instance_type, enis = observed.len(), "node discovered");
    let mut pool_config = config.pool.clone();
    pool_config.max_pods = config
        .max_pods
        .unwrap_or_else(|| max_pods::max_pods(node.limits, &Options::default()).max_pods);
    let mut pool = Pool::new(node.limits, pool_config);
    if let Some(note) = pool.mode_note() {
        tracing::warn!("{note}");
    }
    pool.step(
        Time(0),
        Input::Observed {
            enis: observed.clone(),
        },
    );

    // 2. Pod ownership from the checkpoint; the writer starts with what was kept.
    let entries = checkpoint::load(&config.checkpoint)?;
    let kept = driver::restore(&mut pool, &entries);
    tracing::info!(
        restored = kept.len(),
        dropped = entries.len() - kept.len(),
        "checkpoint restored"
    );
    let ckpt = checkpoint::Checkpointer::start(config.checkpoint.clone(), kept)?;

    // 3. The loop.
    let node = Arc::new(node);
    let exec = Arc::new(Executor {
        ec2: Arc::clone(&ec2),
        node: Arc::clone(&node),
        config: Arc::clone(&config),
        metrics: Arc::clone(&metrics),
    });
    let (tx, rx) = mpsc::channel(4096);
    let driver = Driver::new(
        pool,
        start,
        exec,
        tx.clone(),
        ckpt,
        Arc::clone(&metrics),
        &observed,
    );
    let loop_task = tokio::spawn(driver.run(rx));

    // 4. Pre-scale, then serve.
    prescale(&tx, &config).await?;
    let servers = serve(&config, &node, &tx, &metrics, stage.clone()).await?;
    tracing::info!(took_ms = start.elapsed().as_millis(), "ready");

    let background = vec![
        tokio::spawn(ticker(tx.clone(), config.tick)),
        tokio::spawn(reconciler(
            Arc::clone(&ec2),
            imds,
            Arc::clone(&node),
            Arc::clone(&config),
            tx.clone(),
            Arc::clone(&metrics),
        )),
        tokio::spawn(leak_sweeper(
            Arc::clone(&ec2),
            Arc::clone(&node),
            Arc::clone(&config),
        )),
    ];
    wait_for(stage.clone(), Stage::Terminating).await;
    tracing::info!("terminating: the pool no longer grows; pods are still served");
    let _ = tx.send(Event::Terminate).await;
    wait_for(stage, Stage::Exit).await;
    for task in background {
        task.abort();
    }
    for s in servers {
        let _ = s.await;
    }
    drop(tx);
    loop_task.abort();
    Ok(())
}

async fn wait_for(mut stage: watch::Receiver<Stage>, at_least: Stage) {
    let _ = stage.wait_for(|s| *s >= at_least).await;
}

/// Waits until the pool is quiet (a tick asks EC2 for nothing and no call is in flight), at
/// most two minutes; with custom networking an empty pool then stops start-up, as in the
/// reference.
async fn prescale(tx: &mpsc::Sender<Event>, config: &Config) -> Result<()> {
    let (q, r) = oneshot::channel();
    let _ = tx.send(Event::Settle(q)).await;
    let Ok(view) = tokio::time::timeout(Duration::from_mins(2), r).await else {
        tracing::warn!("pre-scaling did not settle within 2 minutes; serving anyway");
        return Ok(());
    };
    let view =
        view.map_err(|_| Error::Startup("the pool loop stopped during pre-scaling".into()))?;
    if config.pool.custom_networking && view.snapshot.total == 0 {
        return Err(Error::Startup("custom networking: no ENI with pod addresses could be attached (check the ENIConfig subnet)".into()));
    }
    Ok(())
}

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

async fn serve(
    config: &Arc<Config>,
    node: &Arc<Node>,
    tx: &mpsc::Sender<Event>,
    metrics: &Arc<Metrics>,
    stage: watch::Receiver<Stage>,
) -> Result<Vec<tokio::task::JoinHandle<()>>> {
    let mut tasks = Vec::new();
    // gRPC on the socket, with the standard health service.
    let socket = config.state_dir.join("ipamd.sock");
    let listener = bind_unix(&socket)?;
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_serving::<rpc::c_n_i_backend_server::CNIBackendServer<server::Service>>()
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
    };
    let exit = wait_for(stage.clone(), Stage::Exit);
    tasks.push(tokio::spawn(async move {
        let incoming = tokio_stream::wrappers::UnixListenerStream::new(listener);
        if let Err(e) = tonic::transport::Server::builder()
            .add_service(health)
            .add_service(rpc::c_n_i_backend_server::CNIBackendServer::new(service))
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
    };
    if let Some(bind) = &config.introspection {
        let router = introspect::introspection(http.clone());
        let exit = wait_for(stage.clone(), Stage::Exit);
        match bind {
            Bind::Tcp(addr) => {
                let l = tokio::net::TcpListener::bind(addr)
                    .await
                    .map_err(|source| Error::Io {
                        what: "cannot listen on",
                        path: addr.to_string().into(),
                        source,
                    })?;
                tasks.push(tokio::spawn(async move {
                    let _ = axum::serve(l, router).with_graceful_shutdown(exit).await;
                }));
            }
            Bind::Unix(path) => {
                let l = bind_unix(path)?;
                tasks.push(tokio::spawn(async move {
                    let _ = axum::serve(l, router).with_graceful_shutdown(exit).await;
                }));
            }
        }
    }
    if let Some(addr) = config.metrics {
        let l = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| Error::Io {
                what: "cannot listen on",
                path: addr.to_string().into(),
                source,
            })?;
        let router = introspect::metrics_router(http);
        let exit = wait_for(stage, Stage::Exit);
        tasks.push(tokio::spawn(async move {
            let _ = axum::serve(l, router).with_graceful_shutdown(exit).await;
        }));
    }
    Ok(tasks)
}

async fn ticker(tx: mpsc::Sender<Event>, every: Duration) {
    let mut interval = tokio::time::interval(every);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        if tx.send(Event::Tick).await.is_err() {
            return;
        }
    }
}

/// Compares IMDS with the pool; where they differ (or an ENI is new), EC2 decides.
async fn reconciler<E: Ec2, I: Imds>(
    ec2: Arc<E>,
    imds: I,
    node: Arc<Node>,
    config: Arc<Config>,
    tx: mpsc::Sender<Event>,
    metrics: Arc<Metrics>,
) {
    let mut interval = tokio::time::interval(config.reconcile);
    interval.tick().await; // the first tick is immediate; start-up just observed
    loop {
        interval.tick().await;
        if let Err(e) = reconcile_once(&*ec2, &imds, &node, &config, &tx).await {
            tracing::warn!(error = %e, "reconcile failed; will retry");
        }
        // The node subnet's free addresses, for capacity dashboards.
        match ec2
            .describe_subnets(std::slice::from_ref(&node.subnet_id))
            .await
        {
            Ok(subnets) => {
                for s in subnets {
                    metrics
                        .subnet_available
                        .with_label_values(&[s.id.as_str()])
                        .set(i64::from(s.available_ip_addresses));
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot read the subnet's free addresses"),
        }
    }
}

/// One reconcile pass (also used by tests).
pub async fn reconcile_once<E: Ec2, I: Imds>(
    ec2: &E,
    imds: &I,
    node: &Node,
    config: &Config,
    tx: &mpsc::Sender<Event>,
) -> Result<()> {
    let interfaces = cloud::imds::interfaces(imds)
        .await
        .map_err(|source| Error::Cloud {
            what: "reconcile: reading IMDS".into(),
            source,
        })?;
    let (q, r) = oneshot::channel();
    tx.send(Event::Query(q))
        .await
        .map_err(|_| Error::Startup("the pool loop stopped".into()))?;
    let view = r
        .await
        .map_err(|_| Error::Startup("the pool loop stopped".into()))?;
    let agrees = node::observe_from_imds(node, &interfaces).is_some_and(|observed| {
        observed
            .iter()
            .filter(|o| !o.unmanaged && !o.trunk)
            .all(|o| {
                let mut pool_ips: Vec<_> = view
                    .addresses
                    .iter()
                    .filter(|a| a.eni == o.id && a.prefix.is_none() && !a.releasing)
                    .map(|a| a.ip)
                    .collect();
                let mut pool_prefixes: Vec<_> = view
                    .addresses
                    .iter()
                    .filter(|a| a.eni == o.id && !a.releasing)
                    .filter_map(|a| a.prefix)
                    .collect();
                pool_ips.sort_unstable();
                pool_prefixes.sort_unstable();
                pool_prefixes.dedup();
                let mut ips = o.ips.clone();
                ips.sort_unstable();
                let mut prefixes = o.prefixes.clone();
                prefixes.sort_unstable();
                ips == pool_ips && prefixes == pool_prefixes
            })
            && observed.iter().filter(|o| !o.unmanaged).count() == view.snapshot.enis.len()
    });
    if agrees {
        return Ok(());
    }
    let observed = node::observe_from_ec2(ec2, node, config).await?;
    tx.send(Event::Observed(observed))
        .await
        .map_err(|_| Error::Startup("the pool loop stopped".into()))?;
    Ok(())
}

/// Deletes ENIs that ipamd created and lost (left `available`), once they are older than five
/// minutes, like the reference's hourly sweep.
async fn leak_sweeper<E: Ec2>(ec2: Arc<E>, node: Arc<Node>, config: Arc<Config>) {
    if !config.leaked_eni_cleanup {
        return;
    }
    let mut interval = tokio::time::interval(config.leak_sweep_interval);
    interval.tick().await; // the first tick is immediate
    loop {
        interval.tick().await;
        if let Err(e) = sweep_leaked(&*ec2, &node, &config, std::time::SystemTime::now()).await {
            tracing::warn!(error = %e, "leaked-ENI sweep failed");
        }
    }
}

/// One sweep; returns the ENIs deleted.
pub async fn sweep_leaked<E: Ec2>(
    ec2: &E,
    node: &Node,
    config: &Config,
    now: std::time::SystemTime,
) -> Result<Vec<NetworkInterface>> {
    let mut filter = EniFilter {
        tag_key: Some(node::TAG_INSTANCE_ID.into()),
        status: Some("available".into()),
        vpc_id: node.vpc_id.get().cloned(),
        ..EniFilter::default()
    };
    if let Some(c) = &config.cluster_name {
        filter.tags.insert(node::TAG_CLUSTER.into(), c.clone());
    }
    let candidates = ec2
        .describe_network_interfaces(&filter)
        .await
        .map_err(|source| Error::Cloud {
            what: "leaked-ENI sweep".into(),
            source,
        })?;
    let now_secs = now
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut deleted = Vec::new();
    for e in candidates
        .into_iter()
        .filter(|e| e.description.starts_with("aws-K8S-") && e.attachment.is_none())
    {
        match e
            .tags
            .get(node::TAG_CREATED_AT)
            .and_then(|t| parse_rfc3339(t))
        {
            Some(created) if now_secs.saturating_sub(created) >= config.leak_min_age.as_secs() => {
                if ec2.delete_network_interface(&e.id).await.is_ok() {
                    tracing::info!(eni = %e.id, "deleted a leaked ENI");
                    deleted.push(e);
                }
            }
            Some(_) => {}
            None => {
                let tags = std::collections::BTreeMap::from([(
                    node::TAG_CREATED_AT.to_owned(),
                    node::rfc3339(now_secs),
                )]);
                let _ = ec2.create_tags(std::slice::from_ref(&e.id.0), &tags).await;
            }
        }
    }
    Ok(deleted)
}

/// Parses `YYYY-MM-DDTHH:MM:SS` (UTC, any suffix ignored) to Unix seconds.
///
/// ```
/// assert_eq!(ipamd::parse_rfc3339("2026-01-01T00:00:00Z"), Some(1_767_225_600));
/// assert_eq!(ipamd::parse_rfc3339("garbage"), None);
/// ```
pub fn parse_rfc3339(text: &str) -> Option<u64> {
    let bytes = text.as_bytes();
    if bytes.len() < 19
        || bytes[4] != b'-'
        || bytes[7] != b'-'
        || bytes[10] != b'T'
        || bytes[13] != b':'
        || bytes[16] != b':'
    {
        return None;
    }
    let field = |r: std::ops::Range<usize>| text.get(r)?.parse::<u64>().ok();
    let (year, month, day) = (field(0..4)?, field(5..7)?, field(8..10)?);
    let (hour, minute, second) = (field(11..13)?, field(14..16)?, field(17..19)?);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
        || year < 1970
    {
        return None;
    }
    // Days from civil (Howard Hinnant), for years from 1970.
    let (year, month) = if month <= 2 {
        (year - 1, month + 9)
    } else {
        (year, month - 3)
    };
    let era = year / 400;
    let year_of_era = year - era * 400;
    let day_of_year = (153 * month + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    let days = (era * 146_097 + day_of_era).checked_sub(719_468)?;
    Some(days * 86_400 + hour * 3600 + minute * 60 + second)
}
