//! # ipamd
//!
//! eniplan's node daemon: it keeps a warm pool of secondary IPs or /28 prefixes on the node's
//! ENIs with the same engine the planner simulates (`planner::pool`), talks to EC2 through the
//! `cloud` adapters, and hands pod addresses to the CNI plugin over gRPC on a Unix socket.
//! `docs/ipamd.md` describes start-up, the loop and the interfaces.
#![deny(missing_docs)]

pub mod allocatable;
pub mod authority;
pub mod checkpoint;
pub mod client;
pub mod config;
pub mod driver;
mod error;
pub mod executor;
pub mod hostnet;
pub mod introspect;
pub mod k8s;
pub mod leaks;
pub mod metrics;
pub mod node;
pub mod reconcile;
pub mod rpc;
mod serve;
pub mod server;

use std::sync::Arc;
use std::time::Duration;

use cloud::{Ec2, Guarded, Imds, RetryPolicy};
use planner::pool::{Input, Pool, Time};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

pub use error::{Error, Exit, Result};

use crate::config::Config;
use crate::driver::{Driver, Event};
use crate::executor::Executor;
use crate::metrics::Metrics;

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
    serve::ensure_socket_free(&serve::socket_path(&config)).await?;
    let config = Arc::new(config);
    let metrics = Arc::new(Metrics::new(&config.version));
    let report_calls: cloud::Observer = {
        let metrics = Arc::clone(&metrics);
        Arc::new(move |api, error, took| metrics.ec2_call(api, error, took))
    };
    let ec2 = Arc::new(Guarded::new(ec2, RetryPolicy::default()).observed_by(report_calls));
    // The Kubernetes watchers start at once and sync while the node is discovered.
    let mut kube = k8s::start(&config, &metrics).await?;

    // 1. The node, from IMDS and EC2 (once EC2 shows what the checkpoint holds).
    let (node, observed) = node::discover(&*ec2, &imds, &config).await?;
    tracing::info!(instance = %node.identity.instance_id, instance_type = %node.identity.instance_type, enis = observed.len(), "node discovered");
    allocatable::refresh(&node, &config);
    let entries = checkpoint::load(&config.checkpoint)?;
    let observed = node::await_checkpointed(&*ec2, &node, &config, observed, &entries).await?;
    let mut pool = Pool::new(node.limits, config.pool_for(node.limits));
    if let Some(note) = pool.mode_note() {
        tracing::warn!("{note}");
    }
    pool.step(
        Time(0),
        Input::Observed {
            enis: observed.clone(),
        },
    );

    // 2. Pod ownership from the checkpoint; the pool loop keeps it from what was kept.
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
        facts: kube.as_ref().map(|k| k.facts.clone()),
    });
    let (tx, rx) = mpsc::channel(4096);
    let mut driver = Driver::new(
        pool,
        start,
        exec,
        tx.clone(),
        ckpt,
        Arc::clone(&metrics),
        &observed,
    );
    if let Some(kube) = &kube {
        driver.set_notices(kube.events());
    }
    let loop_task = Tasks(vec![tokio::spawn(driver.run(rx))]);

    // 4. What the cluster says (bounded wait), then pre-scale, then serve.
    if let Some(kube) = &mut kube {
        let default_max_pods = config.pool_for(node.limits).max_pods;
        let trunking = node.limits.trunking;
        join_cluster(kube, &tx, &config, default_max_pods, trunking, &metrics).await;
    }
    prescale(&tx, &config, stage.clone()).await?;
    let mut servers =
        Tasks(serve::start(&config, &node, &tx, &metrics, kube.as_ref(), stage.clone()).await?);
    tracing::info!(took_ms = start.elapsed().as_millis(), "ready");

    let background = Tasks(vec![
        tokio::spawn(ticker(tx.clone(), config.tick)),
        tokio::spawn(reconcile::reconciler(
            Arc::clone(&ec2),
            imds,
            Arc::clone(&node),
            Arc::clone(&config),
            tx.clone(),
            Arc::clone(&metrics),
        )),
        tokio::spawn(leaks::sweeper(
            Arc::clone(&ec2),
            Arc::clone(&node),
            Arc::clone(&config),
        )),
    ]);
    wait_for(stage.clone(), Stage::Terminating).await;
    tracing::info!("terminating: the pool no longer grows; pods are still served");
    let _ = tx.send(Event::Terminate).await;
    wait_for(stage, Stage::Exit).await;
    drop(background);
    for s in std::mem::take(&mut servers.0) {
        let _ = s.await;
    }
    drop(tx);
    drop(loop_task);
    Ok(())
}

/// Tasks of the daemon, aborted when dropped: at the orderly exit, on an early error return,
/// and when an embedding drops `run`'s future, so that none of them — the socket's server least
/// of all — outlives the daemon.
struct Tasks(Vec<tokio::task::JoinHandle<()>>);

impl Drop for Tasks {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

/// Waits (bounded) for the watchers' first answer, tells the engine, and keeps it told.
async fn join_cluster(
    kube: &mut k8s::Kube,
    tx: &mpsc::Sender<Event>,
    config: &Arc<Config>,
    default_max_pods: u32,
    trunking: bool,
    metrics: &Arc<Metrics>,
) {
    if !kube.synced(config.pool.custom_networking).await {
        tracing::warn!(
            wait_s = k8s::STARTUP_WAIT.as_secs(),
            "the Kubernetes API has not answered yet; starting with what the checkpoint and EC2 give, and retrying"
        );
    }
    let first = k8s::Inputs::from_facts(&kube.facts.borrow(), config, default_max_pods);
    metrics
        .new_enis_blocked
        .set(i64::from(first.new_enis_blocked.is_some()));
    let _ = tx.send(Event::Cluster(first.clone())).await;
    if config.pool.pod_eni && !trunking {
        tracing::warn!(
            "ENABLE_POD_ENI is set, but this instance type cannot carry a trunk ENI: no security groups for pods on this node"
        );
    }
    let wanted = k8s::cninode::Wanted {
        custom_networking: config.pool.custom_networking,
        security_groups_for_pods: config.pool.pod_eni && trunking,
    };
    if wanted.custom_networking || wanted.security_groups_for_pods {
        let (client, node) = (kube.client.clone(), kube.node.clone());
        tokio::spawn(k8s::cninode::keep(client, node, kube.facts.clone(), wanted));
    }
    if let Some(node) = &config.node_name {
        tokio::spawn(k8s::pod_sweeper(
            kube.facts.clone(),
            kube.client.clone(),
            node.clone(),
            tx.clone(),
            config.pod_release_grace,
        ));
    }
    tokio::spawn(k8s::feed(
        kube.facts.clone(),
        tx.clone(),
        Arc::clone(config),
        default_max_pods,
        first,
        Arc::clone(metrics),
    ));
}

pub(crate) async fn wait_for(mut stage: watch::Receiver<Stage>, at_least: Stage) {
    let _ = stage.wait_for(|s| *s >= at_least).await;
}

/// Waits until the pool is quiet (a tick asks EC2 for nothing and no call is in flight), at
/// most two minutes. With custom networking an empty pool then stops start-up, as in the
/// reference, when EC2 refused the ENI (a wrong ENIConfig subnet); when no usable ENIConfig is
/// known yet, ipamd serves instead and says why (pods wait with that reason, `/v1/decisions`,
/// a node Event) until one appears — the reference exits and restarts until then.
///
/// A SIGTERM during pre-scaling ends the wait at once: the daemon goes on to serve, already
/// terminating (no more growth), instead of holding a node's pods back for up to two minutes
/// of EC2 calls nobody will use (the kubelet kills it 30 s after the signal).
async fn prescale(
    tx: &mpsc::Sender<Event>,
    config: &Config,
    stage: watch::Receiver<Stage>,
) -> Result<()> {
    let (q, r) = oneshot::channel();
    let _ = tx.send(Event::Settle(q)).await;
    tracing::info!("pre-scaling: waiting for the pool to reach its targets");
    let settled = tokio::select! {
        settled = tokio::time::timeout(Duration::from_mins(2), r) => settled,
        () = wait_for(stage, Stage::Terminating) => {
            tracing::info!("pre-scaling cut short: terminating");
            return Ok(());
        }
    };
    let Ok(view) = settled else {
        tracing::warn!("pre-scaling did not settle within 2 minutes; serving anyway");
        return Ok(());
    };
    let view =
        view.map_err(|_| Error::Startup("the pool loop stopped during pre-scaling".into()))?;
    let blocked = view
        .cluster
        .as_ref()
        .and_then(|c| c.new_enis_blocked.as_deref());
    if let (true, 0, Some(why)) = (config.pool.custom_networking, view.snapshot.total, blocked) {
        tracing::error!(%why, "custom networking: no ENI for pods yet; serving, and waiting for a usable ENIConfig");
    } else if config.pool.custom_networking && view.snapshot.total == 0 {
        return Err(Error::Startup("custom networking: no ENI with pod addresses could be attached (check the ENIConfig subnet)".into()));
    }
    Ok(())
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
