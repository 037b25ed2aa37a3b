//! Introspection (the reference's paths on `INTROSPECTION_BIND_ADDRESS`, plus `/v1/pool`,
//! `/v1/decisions` and `/v1/config`) and the Prometheus endpoint. Loopback by default.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Json, Response};
use axum::routing::get;
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};

use crate::config::Config;
use crate::driver::{Event, View};
use crate::metrics::Metrics;
use crate::node::route_table;

/// Shared state of the HTTP handlers.
#[derive(Clone)]
pub struct Http {
    /// To the pool loop.
    pub tx: mpsc::Sender<Event>,
    /// The configuration.
    pub config: Arc<Config>,
    /// The node's subnet, for `/v1/enis`.
    pub subnet_id: String,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// What the Kubernetes watchers have seen; `None` without `MY_NODE_NAME`.
    pub facts: Option<tokio::sync::watch::Receiver<crate::k8s::Facts>>,
}

/// Every introspection path (besides `/metrics`), as `/` lists them.
pub const PATHS: &[&str] = &[
    "/v1/enis",
    "/v1/eni-configs",
    "/v1/networkutils-env-settings",
    "/v1/ipamd-env-settings",
    "/v1/pool",
    "/v1/decisions",
    "/v1/config",
];

async fn view(http: &Http) -> Option<View> {
    let (tx, rx) = oneshot::channel();
    http.tx.send(Event::Query(tx)).await.ok()?;
    rx.await.ok()
}

fn unavailable() -> Response {
    (
        http::StatusCode::SERVICE_UNAVAILABLE,
        "the pool loop is not running",
    )
        .into_response()
}

async fn enis(State(http): State<Http>) -> Response {
    let Some(v) = view(&http).await else {
        return unavailable();
    };
    let mut enis = serde_json::Map::new();
    for e in &v.snapshot.enis {
        let mut cidrs: BTreeMap<String, Value> = BTreeMap::new();
        for a in v.addresses.iter().filter(|a| a.eni == e.id) {
            let (cidr, is_prefix) = match a.prefix {
                Some(p) => (p.to_string(), true),
                None => (format!("{}/32", a.ip), false),
            };
            let entry = cidrs.entry(cidr.clone()).or_insert_with(|| {
                json!({"Cidr": cidr, "IPAddresses": {}, "IsPrefix": is_prefix, "AddressFamily": "4"})
            });
            if a.pod.is_some() || a.cooling_since.is_some() {
                // Like the reference since v1.23: never expose container ids (they forge DELs).
                entry["IPAddresses"][a.ip.to_string()] = json!({
                    "Address": a.ip.to_string(),
                    "IPAMKey": {"networkName": a.pod.as_ref().map_or("", |p| p.network_name.as_str()), "containerID": "", "ifName": ""},
                    "Assigned": a.pod.is_some(),
                    "CoolingSinceMs": a.cooling_since.map(planner::pool::Time::as_millis),
                });
            }
        }
        enis.insert(
            e.id.0.clone(),
            json!({
                "ID": e.id.0, "IsPrimary": e.primary, "IsTrunk": e.trunk, "IsEFA": false,
                "DeviceNumber": e.device, "AvailableIPv4Cidrs": cidrs, "IsExcludedForPodIPs": false,
                "RouteTableID": route_table(e.device), "SubnetID": http.subnet_id,
            }),
        );
    }
    Json(json!({"0": {"TotalIPs": v.snapshot.total, "AssignedIPs": v.snapshot.assigned, "ENIs": enis}})).into_response()
}

async fn pool(State(http): State<Http>) -> Response {
    match view(&http).await {
        Some(v) => Json(json!({"snapshot": v.snapshot, "addresses": v.addresses})).into_response(),
        None => unavailable(),
    }
}

async fn decisions(State(http): State<Http>) -> Response {
    match view(&http).await {
        Some(v) => {
            let kubernetes = http.facts.as_ref().map(|f| {
                let f = f.borrow();
                json!({
                    "node": f.node, "node_synced": f.node_synced,
                    "eni_configs_synced": f.eni_configs_synced, "last_error": f.last_error,
                    "placement": f.placement(http.config.pool.custom_networking),
                    "engine": v.cluster,
                })
            });
            Json(json!({"decisions": v.decisions, "last_no_address": v.last_no_address, "kubernetes": kubernetes}))
                .into_response()
        }
        None => unavailable(),
    }
}

async fn config(State(http): State<Http>) -> Json<Value> {
    Json(serde_json::to_value(&*http.config).unwrap_or(Value::Null))
}

async fn ipamd_env(State(http): State<Http>) -> Json<Value> {
    let p = &http.config.pool;
    Json(json!({
        "WARM_IP_TARGET": p.warm_ip_target, "WARM_ENI_TARGET": p.warm_eni_target,
        "MINIMUM_IP_TARGET": p.minimum_ip_target, "WARM_PREFIX_TARGET": p.warm_prefix_target,
        "ENABLE_PREFIX_DELEGATION": p.prefix_delegation,
        "AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG": p.custom_networking,
        "AWS_MANAGE_ENIS_NON_SCHEDULABLE": p.manage_enis_non_schedulable,
        "ENABLE_SUBNET_DISCOVERY": false,
    }))
}

async fn networkutils_env(State(http): State<Http>) -> Json<Value> {
    Json(json!({"AWS_VPC_K8S_CNI_EXTERNALSNAT": http.config.external_snat}))
}

/// The node's ENIConfig name as a JSON string, as the reference answers (S-22).
async fn eni_configs(State(http): State<Http>) -> Json<Value> {
    let name = http
        .facts
        .as_ref()
        .and_then(|f| f.borrow().node.as_ref().map(|n| n.eni_config.clone()))
        .unwrap_or_else(|| eniplan_crd::DEFAULT_ENICONFIG.to_owned());
    Json(json!(name))
}

async fn commands() -> Json<Value> {
    Json(json!({"AvailableCommands": PATHS}))
}

async fn metrics(State(http): State<Http>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        http.metrics.render(),
    )
        .into_response()
}

/// The introspection routes.
pub fn introspection(http: Http) -> Router {
    Router::new()
        .route("/v1/enis", get(enis))
        .route("/v1/eni-configs", get(eni_configs))
        .route("/v1/networkutils-env-settings", get(networkutils_env))
        .route("/v1/ipamd-env-settings", get(ipamd_env))
        .route("/v1/pool", get(pool))
        .route("/v1/decisions", get(decisions))
        .route("/v1/config", get(config))
        .fallback(commands)
        .with_state(http)
}

/// The metrics route.
pub fn metrics_router(http: Http) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .with_state(http)
}
