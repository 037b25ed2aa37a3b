//! Prometheus metrics: the AWS VPC CNI's `awscni_*` names (dashboards and the cni-metrics-helper
//! keep working) plus eniplan's own. Gauges are derived from the engine's snapshot after each
//! step; counters from requests and EC2 outcomes. Every metric is listed in `docs/metrics.md`,
//! and a test checks that the scenario tests emit them all.

use std::time::Duration;

use cloud::CloudError;
use planner::pool::PoolSnapshot;
use prometheus::{
    Encoder as _, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
    Opts, Registry, TextEncoder,
};

/// Every metric the daemon exports.
pub struct Metrics {
    registry: Registry,
    /// `awscni_eni_max`.
    pub eni_max: IntGauge,
    /// `awscni_ip_max`.
    pub ip_max: IntGauge,
    /// `awscni_eni_allocated`.
    pub eni_allocated: IntGauge,
    /// `awscni_total_ip_addresses`.
    pub total_ips: IntGauge,
    /// `awscni_assigned_ip_addresses`.
    pub assigned_ips: IntGauge,
    /// `awscni_total_ipv4_prefixes`.
    pub total_prefixes: IntGauge,
    /// `awscni_assigned_ip_per_eni`.
    pub assigned_per_eni: IntGaugeVec,
    /// `awscni_no_available_ip_addresses`.
    pub no_available: IntCounter,
    /// `awscni_add_ip_req_count`.
    pub add_requests: IntCounter,
    /// `awscni_del_ip_req_count`.
    pub del_requests: IntCounterVec,
    /// `awscni_force_removed_ips`.
    pub force_removed_ips: IntCounter,
    /// `awscni_force_removed_enis`.
    pub force_removed_enis: IntCounter,
    /// `awscni_reconcile_count`.
    pub reconcile: IntCounterVec,
    /// `awscni_aws_api_latency_ms`.
    pub api_latency: HistogramVec,
    /// `awscni_aws_api_error_count`.
    pub api_errors: IntCounterVec,
    /// `awscni_ec2api_req_count`.
    pub ec2_requests: IntCounterVec,
    /// `awscni_ec2api_error_count`.
    pub ec2_errors: IntCounterVec,
    /// `awscni_ipamd_error_count`.
    pub ipamd_errors: IntCounterVec,
    /// `awscni_build_info`.
    pub build_info: IntGaugeVec,
    /// `eniplan_pool_cooling_addresses`.
    pub cooling: IntGauge,
    /// `eniplan_pool_available_addresses`.
    pub available: IntGauge,
    /// `eniplan_ec2_calls_total`.
    pub ec2_calls: IntCounterVec,
    /// `eniplan_subnet_available_addresses`.
    pub subnet_available: IntGaugeVec,
    /// `eniplan_ec2_calls_in_flight`.
    pub in_flight: IntGauge,
    /// `eniplan_kube_requests_total`.
    pub kube_requests: IntCounterVec,
    /// `eniplan_kube_watch_restarts_total`.
    pub kube_watch_restarts: IntCounterVec,
    /// `eniplan_new_enis_blocked`.
    pub new_enis_blocked: IntGauge,
    /// `eniplan_gone_pod_addresses_released_total`.
    pub pods_gone: IntCounter,
    /// `eniplan_branch_pod_adds_total`.
    pub branch_adds: IntCounterVec,
}

/// Every metric name, for docs/metrics.md and the coverage test.
pub const NAMES: &[&str] = &[
    "awscni_eni_max",
    "awscni_ip_max",
    "awscni_eni_allocated",
    "awscni_total_ip_addresses",
    "awscni_assigned_ip_addresses",
    "awscni_total_ipv4_prefixes",
    "awscni_assigned_ip_per_eni",
    "awscni_no_available_ip_addresses",
    "awscni_add_ip_req_count",
    "awscni_del_ip_req_count",
    "awscni_force_removed_ips",
    "awscni_force_removed_enis",
    "awscni_reconcile_count",
    "awscni_aws_api_latency_ms",
    "awscni_aws_api_error_count",
    "awscni_ec2api_req_count",
    "awscni_ec2api_error_count",
    "awscni_ipamd_error_count",
    "awscni_build_info",
    "eniplan_pool_cooling_addresses",
    "eniplan_pool_available_addresses",
    "eniplan_ec2_calls_total",
    "eniplan_subnet_available_addresses",
    "eniplan_ec2_calls_in_flight",
    "eniplan_kube_requests_total",
    "eniplan_kube_watch_restarts_total",
    "eniplan_new_enis_blocked",
    "eniplan_gone_pod_addresses_released_total",
    "eniplan_branch_pod_adds_total",
];

fn gauge(r: &Registry, name: &str, help: &str) -> IntGauge {
    let g = IntGauge::new(name, help).expect("valid metric");
    r.register(Box::new(g.clone())).expect("unique metric");
    g
}

fn gauge_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let g = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric");
    r.register(Box::new(g.clone())).expect("unique metric");
    g
}

fn counter(r: &Registry, name: &str, help: &str) -> IntCounter {
    let c = IntCounter::new(name, help).expect("valid metric");
    r.register(Box::new(c.clone())).expect("unique metric");
    c
}

fn counter_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
    r.register(Box::new(c.clone())).expect("unique metric");
    c
}

fn to_i64(n: u32) -> i64 {
    i64::from(n)
}

impl Metrics {
    /// A registry with every metric.
    #[expect(clippy::too_many_lines, reason = "one declaration per metric")]
    pub fn new(version: &str) -> Metrics {
        let r = Registry::new();
        let api_latency = HistogramVec::new(
            HistogramOpts::new("awscni_aws_api_latency_ms", "AWS API call latency in ms").buckets(
                vec![
                    5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10_000.0,
                ],
            ),
            &["api", "error", "status"],
        )
        .expect("valid metric");
        r.register(Box::new(api_latency.clone()))
            .expect("unique metric");
        let m = Metrics {
            eni_max: gauge(
                &r,
                "awscni_eni_max",
                "ENIs the pool may use (limit minus unmanaged ENIs)",
            ),
            ip_max: gauge(&r, "awscni_ip_max", "Addresses the pool may hold"),
            eni_allocated: gauge(
                &r,
                "awscni_eni_allocated",
                "ENIs held, primary and trunk included",
            ),
            total_ips: gauge(&r, "awscni_total_ip_addresses", "Pod-usable addresses held"),
            assigned_ips: gauge(
                &r,
                "awscni_assigned_ip_addresses",
                "Addresses assigned to pods",
            ),
            total_prefixes: gauge(&r, "awscni_total_ipv4_prefixes", "IPv4 /28 prefixes held"),
            assigned_per_eni: gauge_vec(
                &r,
                "awscni_assigned_ip_per_eni",
                "Addresses assigned to pods, per ENI",
                &["eni"],
            ),
            no_available: counter(
                &r,
                "awscni_no_available_ip_addresses",
                "Pod ADDs that found no address",
            ),
            add_requests: counter(&r, "awscni_add_ip_req_count", "AddNetwork requests"),
            del_requests: counter_vec(
                &r,
                "awscni_del_ip_req_count",
                "DelNetwork requests",
                &["reason"],
            ),
            force_removed_ips: counter(
                &r,
                "awscni_force_removed_ips",
                "Addresses removed by reconcile while a pod held them",
            ),
            force_removed_enis: counter(
                &r,
                "awscni_force_removed_enis",
                "ENIs removed by reconcile while pods held addresses on them",
            ),
            reconcile: counter_vec(
                &r,
                "awscni_reconcile_count",
                "Reconcile passes by kind",
                &["fn"],
            ),
            api_latency,
            api_errors: counter_vec(
                &r,
                "awscni_aws_api_error_count",
                "AWS API errors by code",
                &["api", "error"],
            ),
            ec2_requests: counter_vec(
                &r,
                "awscni_ec2api_req_count",
                "EC2 requests by API",
                &["fn"],
            ),
            ec2_errors: counter_vec(
                &r,
                "awscni_ec2api_error_count",
                "EC2 failures by API",
                &["fn"],
            ),
            ipamd_errors: counter_vec(
                &r,
                "awscni_ipamd_error_count",
                "Internal errors by function",
                &["fn"],
            ),
            build_info: gauge_vec(
                &r,
                "awscni_build_info",
                "Build information",
                &["version", "goversion"],
            ),
            cooling: gauge(
                &r,
                "eniplan_pool_cooling_addresses",
                "Addresses cooling down after a pod released them",
            ),
            available: gauge(
                &r,
                "eniplan_pool_available_addresses",
                "Addresses assignable now",
            ),
            ec2_calls: counter_vec(
                &r,
                "eniplan_ec2_calls_total",
                "EC2 calls by API and outcome (ok or the error code)",
                &["api", "outcome"],
            ),
            subnet_available: gauge_vec(
                &r,
                "eniplan_subnet_available_addresses",
                "Free addresses of the node's subnets, as EC2 reports them",
                &["subnet"],
            ),
            in_flight: gauge(
                &r,
                "eniplan_ec2_calls_in_flight",
                "EC2 calls the pool is waiting for",
            ),
            kube_requests: counter_vec(
                &r,
                "eniplan_kube_requests_total",
                "Kubernetes API requests by verb, resource and HTTP status (or error)",
                &["verb", "resource", "code"],
            ),
            kube_watch_restarts: counter_vec(
                &r,
                "eniplan_kube_watch_restarts_total",
                "Kubernetes watches that failed and were restarted, by resource",
                &["resource"],
            ),
            new_enis_blocked: gauge(
                &r,
                "eniplan_new_enis_blocked",
                "1 while new ENIs may not be created (custom networking without a usable ENIConfig; the reason is in /v1/decisions)",
            ),
            pods_gone: counter(
                &r,
                "eniplan_gone_pod_addresses_released_total",
                "Addresses released because their pod no longer exists on the node (deleted while ipamd was down, or its DEL never came)",
            ),
            branch_adds: counter_vec(
                &r,
                "eniplan_branch_pod_adds_total",
                "ADDs of pods that request a branch ENI, by result (served, retry)",
                &["result"],
            ),
            registry: r,
        };
        m.build_info.with_label_values(&[version, "rust"]).set(1);
        // Series that dashboards expect from the start, at zero.
        m.del_requests.with_label_values(&["PodDeleted"]);
        m.reconcile.with_label_values(&["eniReconcile"]);
        for result in ["served", "retry"] {
            m.branch_adds.with_label_values(&[result]);
        }
        m.ipamd_errors.with_label_values(&["checkpoint"]);
        for resource in ["nodes", "pods", "eniconfigs"] {
            m.kube_watch_restarts.with_label_values(&[resource]);
        }
        m.kube_requests
            .with_label_values(&["watch", "nodes", "200"]);
        m
    }

    /// Updates the gauges from a snapshot.
    pub fn observe(&self, s: &PoolSnapshot, ip_max: u32) {
        self.eni_max.set(to_i64(s.eni_budget));
        self.ip_max.set(to_i64(ip_max));
        self.eni_allocated
            .set(i64::try_from(s.enis.len()).unwrap_or(i64::MAX));
        self.total_ips.set(to_i64(s.total));
        self.assigned_ips.set(to_i64(s.assigned));
        self.total_prefixes.set(to_i64(s.prefixes));
        self.cooling.set(to_i64(s.cooling));
        self.available.set(to_i64(s.available));
        self.in_flight
            .set(i64::try_from(s.in_flight.len()).unwrap_or(i64::MAX));
        self.assigned_per_eni.reset();
        for e in &s.enis {
            self.assigned_per_eni
                .with_label_values(&[e.id.0.as_str()])
                .set(to_i64(e.assigned));
        }
    }

    /// Records one EC2 call.
    pub fn ec2_call(&self, api: &str, error: Option<&CloudError>, took: Duration) {
        let code = error.map(error_code);
        let status = code.clone().unwrap_or_else(|| "200".to_owned());
        #[expect(clippy::cast_precision_loss, reason = "milliseconds fit an f64")]
        let ms = took.as_millis() as f64;
        self.api_latency
            .with_label_values(&[api, if error.is_some() { "true" } else { "false" }, &status])
            .observe(ms);
        self.ec2_requests.with_label_values(&[api]).inc();
        self.ec2_calls
            .with_label_values(&[api, code.as_deref().unwrap_or("ok")])
            .inc();
        if let Some(c) = code {
            self.ec2_errors.with_label_values(&[api]).inc();
            self.api_errors.with_label_values(&[api, &c]).inc();
        }
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}

/// A short code for an error, as a label.
pub fn error_code(e: &CloudError) -> String {
    match e {
        CloudError::Throttled { .. } => "RequestLimitExceeded".to_owned(),
        CloudError::InsufficientCidrBlocks { .. } => "InsufficientCidrBlocks".to_owned(),
        CloudError::InsufficientFreeAddresses { .. } => {
            "InsufficientFreeAddressesInSubnet".to_owned()
        }
        CloudError::IpLimitExceeded { .. } => "PrivateIpAddressLimitExceeded".to_owned(),
        CloudError::AttachmentLimitExceeded { .. } => "AttachmentLimitExceeded".to_owned(),
        CloudError::Unauthorized { .. } => "UnauthorizedOperation".to_owned(),
        CloudError::NotFound { code, .. }
        | CloudError::Credentials { code, .. }
        | CloudError::Invalid { code, .. }
        | CloudError::Other { code, .. } => code.clone(),
        CloudError::Transient { .. } => "Transient".to_owned(),
        _ => "Other".to_owned(),
    }
}
