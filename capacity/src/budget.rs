//! EC2 API budgets of a scale-up (or a node-recycle wave): the calls each new node's ipamd
//! makes, replayed against EC2's per-account token buckets ([`planner::ec2api`]), giving the time
//! until the last pod has an address, and the settings that would shorten it.
//!
//! Per node, the calls are the warm-pool engine's own ([`planner::pool`], run by
//! [`planner::sim::Node`]): the node starts, its pool warms up, then all its pods arrive at once
//! (a scale-up schedules them together) and the engine grows the pool. A `CreateEni` is
//! `CreateNetworkInterface`, `AttachNetworkInterface` and `ModifyNetworkInterfaceAttribute`
//! (DeleteOnTermination); ipamd's start-up adds `DescribeInstances`, one filtered
//! `DescribeNetworkInterfaces` and a `CreateTags` of the primary ENI. A node's calls run one
//! after the other (ipamd has one growth call in flight), each taking `latency`, each waiting
//! for a token of its bucket; buckets start full and are shared by every node (the account's
//! other callers are left out: scale `share` down to leave them room).
//!
//! ```
//! use planner::ec2api::bucket;
//! // 500 new nodes each creating one ENI: CreateNetworkInterface's bucket (100, 5/s) lets the
//! // first 100 through at once and the other 400 at 5/s: 80 s.
//! assert_eq!(bucket("CreateNetworkInterface").seconds_for(500), 80);
//! ```

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::time::Duration;

use serde::Serialize;

use crate::error::Result;
use crate::forecast::{GroupShapes, Progress, build_shapes};
use crate::spec::Cluster;
use planner::catalogue::InstanceLimits;
use planner::ec2api;
use planner::pool::{Ec2Call, PoolConfig, Reply};
use planner::sim::{Node, TICK};

/// What to replay.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// New nodes.
    pub nodes: u32,
    /// Only this node group (default: every group, in proportion to its current size).
    pub group: Option<String>,
    /// Launch nodes in batches of this many (default: all at once).
    pub batch: Option<u32>,
    /// Time between batches.
    pub interval: Duration,
    /// Time one EC2 call takes.
    pub latency: Duration,
    /// Share of each bucket's refill this cluster may use (1.0: all of it).
    pub share: f64,
}

impl Default for Request {
    fn default() -> Self {
        Request {
            nodes: 0,
            group: None,
            batch: None,
            interval: Duration::from_mins(1),
            latency: Duration::from_millis(200),
            share: 1.0,
        }
    }
}

/// Calls of one API in the replay.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ApiUse {
    /// EC2 action.
    pub api: &'static str,
    /// Bucket family.
    pub bucket: &'static str,
    /// Bucket capacity and refill per second.
    pub capacity: u32,
    /// Refill per second (before `share`).
    pub refill_per_sec: u32,
    /// Calls.
    pub calls: u64,
    /// Calls per node (average).
    pub per_node: f64,
    /// Seconds calls waited for a token, in all.
    pub waited_s: f64,
    /// Longest wait of one call, seconds.
    pub max_wait_s: f64,
}

/// A change that would shorten the wave.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Suggestion {
    /// What to change.
    pub change: String,
    /// Time to ready of the last pod with it, seconds.
    pub last_pod_ready_s: f64,
    /// EC2 calls with it.
    pub calls: u64,
}

/// The replay's result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Budget {
    /// Nodes launched.
    pub nodes: u32,
    /// Pods placed on them.
    pub pods: u64,
    /// Calls in all.
    pub calls: u64,
    /// Seconds from the first launch until the last node's last call finished: the last pod
    /// has an address.
    pub last_pod_ready_s: f64,
    /// The same with unlimited buckets (only latency and the engine's own pacing).
    pub unthrottled_s: f64,
    /// Per API, by name.
    pub apis: Vec<ApiUse>,
    /// The bucket that made calls wait longest in all.
    pub bottleneck: Option<&'static str>,
    /// Changes that would make it faster, fastest first.
    pub suggestions: Vec<Suggestion>,
}

/// One call a node makes, `at` after the node started, as the engine issued it.
#[derive(Debug, Clone, Copy, PartialEq)]
struct NodeCall {
    api: &'static str,
    at: Duration,
}

/// Runs the engine for one new node: start-up calls, warm-up, then `pods` pods at once, ticking
/// until they all have an address (at most 30 minutes).
fn node_calls(limits: &InstanceLimits, config: &PoolConfig, pods: u32) -> Result<Vec<NodeCall>> {
    let mut node = Node::new(limits, config.clone(), "10.0.0.0/16")?;
    let mut calls = vec![
        NodeCall {
            api: "DescribeInstances",
            at: Duration::ZERO,
        },
        NodeCall {
            api: "DescribeNetworkInterfaces",
            at: Duration::ZERO,
        },
        NodeCall {
            api: "CreateTags",
            at: Duration::ZERO,
        },
    ];
    // The node is Ready (its pool warmed up for one tick) before pods are scheduled on it.
    node.advance(TICK);
    let mut waiting: Vec<String> = (0..pods).map(|i| format!("p{i}")).collect();
    let deadline = node.now + Duration::from_mins(30);
    while !waiting.is_empty() && node.now < deadline {
        waiting.retain(|id| !matches!(node.add_pod(id), Reply::Assigned { .. }));
        node.advance(TICK);
    }
    for e in &node.events {
        let at = Duration::from_millis(e.time.as_millis());
        match &e.call {
            Ec2Call::CreateEni { .. } => {
                for api in [
                    "CreateNetworkInterface",
                    "AttachNetworkInterface",
                    "ModifyNetworkInterfaceAttribute",
                ] {
                    calls.push(NodeCall { api, at });
                }
            }
            Ec2Call::DeleteEni { .. } => {
                for api in ["DetachNetworkInterface", "DeleteNetworkInterface"] {
                    calls.push(NodeCall { api, at });
                }
            }
            other => calls.push(NodeCall {
                api: other.api(),
                at,
            }),
        }
    }
    Ok(calls)
}

/// What a replay gives: when the last call finished, per API (calls, seconds waited, longest
/// wait), and per node the wait of its last call.
struct Replayed {
    last: f64,
    per_api: BTreeMap<&'static str, (u64, f64, f64)>,
    last_wait: Vec<f64>,
}

/// The replay of many nodes' call lists against shared buckets ([`ec2api::TokenBucket`], the
/// limiter `cloud::Guarded` runs).
fn replay(plans: &[(f64, &[NodeCall])], latency: f64, share: f64, limited: bool) -> Replayed {
    // Event queue: (ready time, node, call index), earliest first; ties by node.
    let mut heap: BinaryHeap<Reverse<(u64, usize, usize)>> = BinaryHeap::new();
    let micros = |s: f64| -> u64 {
        #[expect(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "non-negative seconds of a simulation, far below 2^53 µs"
        )]
        let v = (s.max(0.0) * 1e6).round() as u64;
        v
    };
    let mut done_at = vec![0.0f64; plans.len()];
    for (i, (start, calls)) in plans.iter().enumerate() {
        done_at[i] = *start;
        if let Some(first) = calls.first() {
            heap.push(Reverse((micros(start + first.at.as_secs_f64()), i, 0)));
        }
    }
    let mut buckets: BTreeMap<&'static str, ec2api::TokenBucket> = BTreeMap::new();
    let mut per_api: BTreeMap<&'static str, (u64, f64, f64)> = BTreeMap::new();
    let mut last_wait = vec![0.0f64; plans.len()];
    let mut last = 0.0f64;
    while let Some(Reverse((ready_us, node, idx))) = heap.pop() {
        #[expect(clippy::cast_precision_loss, reason = "µs below 2^53")]
        let ready = ready_us as f64 / 1e6;
        let call = plans[node].1[idx];
        let b = ec2api::bucket(call.api);
        let wait = if limited {
            buckets
                .entry(b.family)
                .or_insert_with(|| ec2api::TokenBucket::full(b, share))
                .take(Duration::from_micros(ready_us))
                .as_secs_f64()
        } else {
            0.0
        };
        let start = ready + wait;
        last_wait[node] = wait;
        let e = per_api.entry(call.api).or_default();
        e.0 += 1;
        e.1 += wait;
        e.2 = e.2.max(wait);
        let done = start + latency;
        done_at[node] = done;
        last = last.max(done);
        if let Some(next) = plans[node].1.get(idx + 1) {
            // Not before the previous call is done, nor before the engine asked for it.
            let at = done.max(plans[node].0 + next.at.as_secs_f64());
            heap.push(Reverse((micros(at), node, idx + 1)));
        }
    }
    Replayed {
        last,
        per_api,
        last_wait,
    }
}

/// The wait before each call is sent, for calls made at these times (from the start of the
/// wave) by independent callers sharing the account's buckets, refills scaled by `share`: the
/// replay's limiter, one call at a time. `cloud::Guarded` runs the same limiter against the
/// clock; `cloud/tests/limiter.rs` feeds both the same calls and compares the waits.
pub fn token_waits(calls: &[(Duration, &'static str)], share: f64) -> Vec<Duration> {
    let lists: Vec<[NodeCall; 1]> = calls
        .iter()
        .map(|&(at, api)| [NodeCall { api, at }])
        .collect();
    let plans: Vec<(f64, &[NodeCall])> = lists.iter().map(|l| (0.0, &l[..])).collect();
    replay(&plans, 0.0, share, true)
        .last_wait
        .into_iter()
        .map(Duration::from_secs_f64)
        .collect()
}

struct Wave {
    plans: Vec<(f64, usize)>,
    pods: u64,
}

fn wave(cluster: &Cluster, shapes: &[GroupShapes], request: &Request) -> Wave {
    // Which group each new node belongs to.
    let groups: Vec<usize> = match &request.group {
        Some(name) => cluster
            .groups
            .iter()
            .position(|g| &g.name == name)
            .into_iter()
            .collect(),
        None => (0..cluster.groups.len()).collect(),
    };
    let weights: Vec<u64> = groups
        .iter()
        .map(|&g| u64::from(cluster.groups[g].current.max(1)))
        .collect();
    let total: u64 = weights.iter().sum::<u64>().max(1);
    let mut next_index: Vec<u32> = cluster.groups.iter().map(|g| g.current).collect();
    let mut plans = Vec::new();
    let mut pods = 0u64;
    let mut given = vec![0u64; groups.len()];
    for n in 0..request.nodes {
        // The group furthest below its share so far.
        let pick = (0..groups.len())
            .max_by_key(|&i| {
                (
                    i128::from(weights[i]) * i128::from(n + 1) * 1000 / i128::from(total)
                        - i128::from(given[i]) * 1000,
                    Reverse(i),
                )
            })
            .unwrap_or(0);
        given[pick] += 1;
        let g = groups[pick];
        let k = next_index[g];
        next_index[g] += 1;
        let shape = shapes[g].shape_of(k);
        let start = match request.batch {
            Some(b) if b > 0 => f64::from(n / b) * request.interval.as_secs_f64(),
            _ => 0.0,
        };
        pods += u64::from(shapes[g].shapes[shape].pods);
        plans.push((start, g * 1_000_000 + shape));
    }
    Wave { plans, pods }
}

fn run(
    cluster: &Cluster,
    request: &Request,
    progress: &mut dyn FnMut(Progress),
) -> Result<(Budget, u64)> {
    let shapes = build_shapes(cluster, progress)?;
    let w = wave(cluster, &shapes, request);
    // Engine call lists per (group, shape), once each.
    let mut lists: BTreeMap<usize, Vec<NodeCall>> = BTreeMap::new();
    for &(_, key) in &w.plans {
        if let std::collections::btree_map::Entry::Vacant(v) = lists.entry(key) {
            let (g, s) = (key / 1_000_000, key % 1_000_000);
            let shape = &shapes[g].shapes[s];
            let config = &cluster.groups[g]
                .types
                .iter()
                .find(|t| t.limits.name == shape.limits.name)
                .map_or_else(PoolConfig::default, |t| t.config.clone());
            let pool_pods = shape.pods.saturating_sub(shape.profile.steady.branch_pods);
            v.insert(node_calls(shape.limits, config, pool_pods)?);
        }
    }
    let plans: Vec<(f64, &[NodeCall])> = w
        .plans
        .iter()
        .map(|(start, key)| (*start, lists[key].as_slice()))
        .collect();
    let latency = request.latency.as_secs_f64();
    let Replayed { last, per_api, .. } = replay(&plans, latency, request.share, true);
    let free = replay(&plans, latency, request.share, false).last;
    let calls: u64 = per_api.values().map(|v| v.0).sum();
    let apis: Vec<ApiUse> = per_api
        .iter()
        .map(|(api, (n, waited, max_wait))| {
            let b = ec2api::bucket(api);
            #[expect(clippy::cast_precision_loss, reason = "call counts far below 2^52")]
            let per_node = *n as f64 / f64::from(request.nodes.max(1));
            ApiUse {
                api,
                bucket: b.family,
                capacity: b.capacity,
                refill_per_sec: b.refill_per_sec,
                calls: *n,
                per_node,
                waited_s: *waited,
                max_wait_s: *max_wait,
            }
        })
        .collect();
    let bottleneck = apis
        .iter()
        .filter(|a| a.waited_s > 0.0)
        .max_by(|a, b| a.waited_s.total_cmp(&b.waited_s))
        .map(|a| a.bucket);
    Ok((
        Budget {
            nodes: request.nodes,
            pods: w.pods,
            calls,
            last_pod_ready_s: last,
            unthrottled_s: free,
            apis,
            bottleneck,
            suggestions: Vec::new(),
        },
        calls,
    ))
}

fn with_vars(cluster: &Cluster, vars: &[(&str, &str)]) -> Option<Cluster> {
    let mut c = cluster.clone();
    for g in &mut c.groups {
        let mut merged = g.vars.clone();
        for (k, v) in vars {
            merged.insert((*k).to_owned(), (*v).to_owned());
        }
        let base = PoolConfig::from_vars(&merged).ok()?;
        for t in &mut g.types {
            if base.prefix_delegation && !planner::max_pods::supports_prefix_delegation(t.limits) {
                return None;
            }
            let max_pods = if base.prefix_delegation && !t.config.prefix_delegation {
                planner::max_pods::max_pods(
                    t.limits,
                    &planner::max_pods::Options {
                        prefix_delegation: true,
                        custom_networking: base.custom_networking,
                        security_groups_for_pods: base.pod_eni,
                        ..planner::max_pods::Options::default()
                    },
                )
                .recommended_max_pods
            } else {
                t.config.max_pods
            };
            t.config = PoolConfig {
                max_pods,
                ..base.clone()
            };
        }
        g.vars = merged;
    }
    Some(c)
}

/// Replays a scale-up of `request.nodes` nodes and tries the changes that could shorten it:
/// prefix delegation (one call per 16 addresses, usually no new ENI), a `MINIMUM_IP_TARGET` of
/// the node's pods (all addresses in the first calls), and batches sized to the smallest bucket.
pub fn budget(
    cluster: &Cluster,
    request: &Request,
    progress: &mut dyn FnMut(Progress),
) -> Result<Budget> {
    let (mut base, _) = run(cluster, request, progress)?;
    let mut suggestions = Vec::new();
    let most_pods = cluster
        .groups
        .iter()
        .flat_map(|g| g.densities.iter().map(|d| d.0))
        .max()
        .unwrap_or(0);
    let uses_pd = cluster
        .groups
        .iter()
        .all(|g| g.types.iter().all(|t| t.config.prefix_delegation));
    let minimum = most_pods.to_string();
    let mut variants: Vec<(String, Vec<(&str, &str)>)> = Vec::new();
    if !uses_pd {
        variants.push((
            "ENABLE_PREFIX_DELEGATION=true WARM_PREFIX_TARGET=1".into(),
            vec![
                ("ENABLE_PREFIX_DELEGATION", "true"),
                ("WARM_PREFIX_TARGET", "1"),
            ],
        ));
    }
    if most_pods > 0 {
        // Every address a node needs in its first call(s), instead of growing step by step.
        variants.push((
            format!("MINIMUM_IP_TARGET={minimum} WARM_IP_TARGET=2"),
            vec![("MINIMUM_IP_TARGET", &minimum), ("WARM_IP_TARGET", "2")],
        ));
        variants.push((
            format!("ENABLE_PREFIX_DELEGATION=true MINIMUM_IP_TARGET={minimum} WARM_IP_TARGET=8"),
            vec![
                ("ENABLE_PREFIX_DELEGATION", "true"),
                ("MINIMUM_IP_TARGET", &minimum),
                ("WARM_IP_TARGET", "8"),
            ],
        ));
    }
    for (change, vars) in variants {
        let Some(c) = with_vars(cluster, &vars) else {
            continue;
        };
        let (b, calls) = run(&c, request, &mut |_| {})?;
        if b.last_pod_ready_s < base.last_pod_ready_s {
            suggestions.push(Suggestion {
                change,
                last_pod_ready_s: b.last_pod_ready_s,
                calls,
            });
        }
    }
    // Batches that never drain a bucket: per bucket family, capacity / calls per node.
    if request.batch.is_none() && request.nodes > 1 {
        let mut per_family: BTreeMap<&str, (f64, f64)> = BTreeMap::new();
        for a in &base.apis {
            let e = per_family
                .entry(a.bucket)
                .or_insert((f64::from(a.capacity), 0.0));
            e.1 += a.per_node;
        }
        let batch = per_family
            .values()
            .map(|(cap, per)| if *per > 0.0 { cap / per } else { f64::MAX })
            .fold(f64::MAX, f64::min)
            .floor()
            .max(1.0);
        let refill_time = base
            .apis
            .iter()
            .map(|a| a.per_node * batch / (f64::from(a.refill_per_sec) * request.share))
            .fold(0.0, f64::max)
            .ceil()
            .max(1.0);
        #[expect(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "a batch is between 1 and the node count"
        )]
        let b = (batch as u32).min(request.nodes);
        if b < request.nodes {
            let r = Request {
                batch: Some(b),
                interval: Duration::from_secs_f64(refill_time),
                ..request.clone()
            };
            let (bb, calls) = run(cluster, &r, &mut |_| {})?;
            // Batching smooths the burst (no throttling errors, no retries storm) even when the
            // last pod is not earlier: report it when it is not much later.
            if bb.last_pod_ready_s <= base.last_pod_ready_s * 1.1 {
                suggestions.push(Suggestion {
                    change: format!(
                        "launch in batches of {b} nodes every {refill_time}s (no bucket runs dry)"
                    ),
                    last_pod_ready_s: bb.last_pod_ready_s,
                    calls,
                });
            }
        }
    }
    suggestions.sort_by(|a, b| a.last_pod_ready_s.total_cmp(&b.last_pod_ready_s));
    base.suggestions = suggestions;
    Ok(base)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::load;

    fn cluster(extra: &str) -> Cluster {
        load(&format!(
            r"
vpc_cidrs: [10.0.0.0/16]
subnets: [{{ id: a, cidr: 10.0.0.0/16, az: z1 }}]
node_groups:
  - name: g
    instance_types: [m5.large]
    nodes: 10
    pods: {{ per_node: 20 }}
    {extra}
"
        ))
        .unwrap()
    }

    #[test]
    fn one_node_default_to_engine_calls_and_no_wait() {
        let c = cluster("");
        let b = budget(
            &c,
            &Request {
                nodes: 1,
                ..Request::default()
            },
            &mut |_| {},
        )
        .unwrap();
        let by: BTreeMap<&str, u64> = b.apis.iter().map(|a| (a.api, a.calls)).collect();
        // 20 pods on an m5.large with WARM_ENI_TARGET=1: 3 ENIs, 2 of them created.
        assert_eq!(by["CreateNetworkInterface"], 2);
        assert_eq!(by["AttachNetworkInterface"], 2);
        assert_eq!(by["CreateTags"], 1);
        assert!(b.apis.iter().all(|a| a.waited_s == 0.0));
        assert!((b.last_pod_ready_s - b.unthrottled_s).abs() < 1e-9);
    }

    #[test]
    fn five_hundred_nodes_to_create_bucket_wait_and_prefix_suggestion() {
        let c = cluster("");
        let b = budget(
            &c,
            &Request {
                nodes: 500,
                ..Request::default()
            },
            &mut |_| {},
        )
        .unwrap();
        let create = b
            .apis
            .iter()
            .find(|a| a.api == "CreateNetworkInterface")
            .unwrap();
        assert_eq!(create.calls, 1000);
        // 1000 creates through a 100/5 s bucket: the last one waits at least (1000−100)/5 s.
        assert!(b.last_pod_ready_s >= 180.0, "{}", b.last_pod_ready_s);
        assert!(b.last_pod_ready_s > b.unthrottled_s + 100.0);
        assert!(b.bottleneck.is_some());
        // Prefix delegation sized up front: one AssignPrivateIpAddresses per node, no new ENI.
        let best = &b.suggestions[0];
        assert!(
            best.change
                .contains("ENABLE_PREFIX_DELEGATION=true MINIMUM_IP_TARGET=20"),
            "{:?}",
            b.suggestions
        );
        assert!(best.last_pod_ready_s < b.last_pod_ready_s / 2.0);
        assert!(
            b.suggestions
                .iter()
                .all(|s| s.last_pod_ready_s < b.last_pod_ready_s * 1.1)
        );
    }

    #[test]
    fn prefix_delegation_with_warm_prefix_target_to_three_assigns_per_node_on_one_bucket() {
        // WARM_PREFIX_TARGET=1 grows one prefix per call as pods arrive: every call lands on
        // AssignPrivateIpAddresses's bucket, so a large wave is slower than with ENIs.
        let pd = cluster("cni: { ENABLE_PREFIX_DELEGATION: true, WARM_PREFIX_TARGET: 1 }");
        let (b, _) = run(
            &pd,
            &Request {
                nodes: 500,
                ..Request::default()
            },
            &mut |_| {},
        )
        .unwrap();
        let assign = b
            .apis
            .iter()
            .find(|a| a.api == "AssignPrivateIpAddresses")
            .unwrap();
        assert_eq!(assign.calls, 1500);
        assert!(b.apis.iter().all(|a| a.api != "CreateNetworkInterface"));
        // (1500 − 100) / 5 = 280 s of refill for the last call.
        assert!(b.last_pod_ready_s >= 280.0, "{}", b.last_pod_ready_s);
    }

    #[test]
    fn replay_to_fifo_token_bucket_arithmetic() {
        let one = [NodeCall {
            api: "AttachNetworkInterface",
            at: Duration::ZERO,
        }];
        let plans: Vec<(f64, &[NodeCall])> = (0..60).map(|_| (0.0, &one[..])).collect();
        let r = replay(&plans, 0.0, 1.0, true);
        // Bucket 50, 5/s: call 60 waits (60 − 50) / 5 = 2 s.
        assert!((r.last - 2.0).abs() < 1e-6, "{}", r.last);
        assert!((r.per_api["AttachNetworkInterface"].2 - 2.0).abs() < 1e-6);
    }
}
