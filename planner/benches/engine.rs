//! `cargo bench -p planner --bench engine`: the pool engine's figures for docs/benchmarks.md.
//!
//! 1. Throughput: pod ADD+DEL events per second on one core, warm pool, no EC2 calls.
//! 2. Memory: heap bytes of a pool's state at 110 and 737 pods (a counting allocator).
//! 3. API economy: EC2 calls eniplan's rules make against the reference's rules
//!    (`ENIPLAN_REFERENCE_RULES`) for the same traces.
#![allow(
    clippy::disallowed_methods,
    reason = "a benchmark reads the clock to measure; the engine it drives never does"
)]

use std::alloc::System;
use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

use planner::catalogue::lookup;
use planner::pool::{EniId, Input, ObservedEni, PodKey, Pool, PoolConfig, Time};
use planner::rng::Rng;
use planner::sim::Node;
use stats_alloc::{INSTRUMENTED_SYSTEM, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Heap bytes currently allocated.
fn live() -> isize {
    let s = GLOBAL.stats();
    s.bytes_allocated.cast_signed() - s.bytes_deallocated.cast_signed() + s.bytes_reallocated
}

/// A pool over pre-attached ENIs full of addresses (provisioning off: no EC2 in the loop).
fn warm_pool(instance: &str, prefix_delegation: bool) -> Pool {
    let limits = lookup(instance).unwrap();
    let config = PoolConfig {
        disable_provisioning: true,
        prefix_delegation,
        warm_prefix_target: u32::from(prefix_delegation),
        max_pods: 100_000,
        ..PoolConfig::default()
    };
    let mut pool = Pool::new(limits, config);
    let slots = u32::from(limits.ipv4_per_eni) - 1;
    let enis = (0..u32::from(limits.max_enis))
        .map(|d| {
            let base = 0x0a00_0000 + (d << 12); // 10.0.(16·d).0/20 per ENI
            ObservedEni {
                id: EniId(format!("eni-{d}")),
                device: d,
                primary_ip: std::net::Ipv4Addr::from(base + 4000),
                ips: if prefix_delegation {
                    vec![]
                } else {
                    (0..slots)
                        .map(|i| std::net::Ipv4Addr::from(base + 16 + i))
                        .collect()
                },
                prefixes: if prefix_delegation {
                    (0..slots)
                        .map(|i| {
                            ipnetwork::Ipv4Network::new(
                                std::net::Ipv4Addr::from(base + 16 * (i + 1)),
                                28,
                            )
                            .unwrap()
                        })
                        .collect()
                } else {
                    vec![]
                },
                trunk: false,
                unmanaged: false,
            }
        })
        .collect();
    pool.step(Time(0), Input::Observed { enis });
    pool
}

fn throughput(instance: &str, pd: bool, live_pods: usize, events: usize) -> f64 {
    let mut pool = warm_pool(instance, pd);
    let keys: Vec<PodKey> = (0..live_pods * 2)
        .map(|i| PodKey::new(format!("{i:064x}")))
        .collect();
    let mut t = 0u64;
    for k in &keys[..live_pods] {
        pool.step(Time(t), Input::AddPod { key: k.clone() });
    }
    // Steady churn: delete pod i, add pod i + live_pods; 1 s between events, so the 30 s
    // cooldown keeps about 15 addresses cooling, as on a busy node.
    let start = Instant::now();
    let mut i = 0usize;
    while i < events / 2 {
        let old = &keys[i % keys.len()];
        let new = &keys[(i + live_pods) % keys.len()];
        t += 1000;
        black_box(pool.step(Time(t), Input::DelPod { key: old.clone() }));
        t += 1000;
        black_box(pool.step(Time(t), Input::AddPod { key: new.clone() }));
        i += 1;
    }
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(
        pool.snapshot().pods as usize,
        live_pods,
        "the churn keeps the pod count"
    );
    #[expect(clippy::cast_precision_loss, reason = "an events-per-second figure")]
    let rate = (i * 2) as f64 / secs;
    rate
}

fn state_bytes(instance: &str, pd: bool, pods: usize) -> isize {
    let before = live();
    let mut pool = warm_pool(instance, pd);
    for i in 0..pods {
        pool.step(
            Time(0),
            Input::AddPod {
                key: PodKey::new(format!("{i:064x}")),
            },
        );
    }
    let bytes = live() - before;
    assert_eq!(pool.snapshot().pods as usize, pods);
    drop(black_box(pool));
    bytes
}

fn calls(
    instance: &str,
    vars: &[(&str, &str)],
    reference: bool,
    trace: impl Fn(&mut Node),
) -> (u64, BTreeMap<&'static str, u64>, u64) {
    let mut map: BTreeMap<String, String> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    map.insert("ENIPLAN_REFERENCE_RULES".into(), reference.to_string());
    let mut config = PoolConfig::from_vars(&map).unwrap();
    let limits = lookup(instance).unwrap();
    config.max_pods = u32::from(limits.max_enis) * (u32::from(limits.ipv4_per_eni) - 1) * 16 + 2;
    let mut node = Node::new(limits, config, "10.0.0.0/16").unwrap();
    node.settle();
    trace(&mut node);
    node.settle();
    node.consistent().unwrap();
    (
        node.ec2.total_calls(),
        node.ec2.calls().clone(),
        node.no_address,
    )
}

fn ramp(node: &mut Node, from: usize, to: usize) {
    for i in from..to {
        node.add_pod(&format!("p{i}"));
        node.settle();
    }
}

fn drain(node: &mut Node, from: usize, to: usize) {
    for i in (to..from).rev() {
        node.del_pod(&format!("p{i}"));
        node.settle();
    }
}

/// 1,000 events: pods arrive and leave in bursts with a seeded generator, 0–20 s apart.
fn churn(node: &mut Node) {
    let mut rng = Rng::new(0x2545_f491_4f6c_dd1d);
    let mut next = || rng.next_u64();
    let mut live: Vec<u64> = Vec::new();
    let mut id = 0u64;
    for _ in 0..1000 {
        let add = live.len() < 5 || (live.len() < 25 && next() % 2 == 0);
        if add {
            node.add_pod(&format!("c{id}"));
            live.push(id);
            id += 1;
        } else {
            let idx = usize::try_from(next() % live.len() as u64).unwrap_or(0);
            let victim = live.swap_remove(idx);
            node.del_pod(&format!("c{victim}"));
        }
        node.advance(Duration::from_secs(next() % 21));
    }
}

/// Bursts: 6 pods arrive together, leave together 20 s later, and the next 6 arrive 20 s
/// after that, while the last burst's addresses are still cooling down. 50 rounds.
fn bursts(node: &mut Node) {
    for round in 0..50 {
        for i in 0..6 {
            node.add_pod(&format!("b{round}-{i}"));
        }
        node.advance(Duration::from_secs(20));
        for i in 0..6 {
            node.del_pod(&format!("b{round}-{i}"));
        }
        node.advance(Duration::from_secs(20));
    }
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let events = if quick { 200_000 } else { 4_000_000 };
    println!("== engine throughput (pod ADD+DEL events, one core, warm pool, 30 s cooldown)");
    for (instance, pd, pods) in [
        ("m5.large", false, 10),
        ("c5.18xlarge", false, 110),
        ("c5.18xlarge", false, 400),
        ("m5.large", true, 110),
        ("c5.18xlarge", true, 737),
    ] {
        let mut best: f64 = 0.0;
        for _ in 0..3 {
            best = best.max(throughput(instance, pd, pods, events));
        }
        println!(
            "{instance:<12} {:<17} {pods:>4} live pods: {:>10.0} events/s",
            if pd {
                "prefix-delegation"
            } else {
                "secondary-ip"
            },
            best
        );
    }
    memory();
    api_economy();
}

fn memory() {
    println!("\n== state per node (heap bytes of the pool)");
    for (instance, pd, pods) in [
        ("c5.18xlarge", false, 110),
        ("c5.18xlarge", false, 735),
        ("c5.18xlarge", true, 110),
        ("c5.18xlarge", true, 737),
    ] {
        let b = state_bytes(instance, pd, pods);
        println!(
            "{instance:<12} {:<17} {pods:>4} pods: {b:>8} bytes ({:.1} KiB)",
            if pd {
                "prefix-delegation"
            } else {
                "secondary-ip"
            },
            f64::from(i32::try_from(b).unwrap_or(i32::MAX)) / 1024.0
        );
    }
}

/// A named trace: (name, instance type, settings, the trace).
type Case<'a> = (
    &'a str,
    &'a str,
    Vec<(&'a str, &'a str)>,
    &'a dyn Fn(&mut Node),
);

fn api_economy() {
    println!("\n== EC2 calls: eniplan rules vs reference rules (same trace, same in-memory EC2)");
    let s05 = |n: &mut Node| {
        ramp(n, 0, 20);
        drain(n, 20, 2);
    };
    let s16 = |n: &mut Node| {
        ramp(n, 0, 40);
        for i in (0..40).rev() {
            n.del_pod(&format!("p{i}"));
        }
    };
    let s09 = |n: &mut Node| {
        ramp(n, 0, 9);
        n.advance(Duration::from_hours(1));
    };
    let cases: [Case<'_>; 6] = [
        (
            "S-05 ramp 20, drain to 2",
            "m5.large",
            vec![("WARM_IP_TARGET", "3")],
            &s05,
        ),
        (
            "S-16 PD 40 pods to 0",
            "m5.large",
            vec![
                ("ENABLE_PREFIX_DELEGATION", "true"),
                ("WARM_PREFIX_TARGET", "1"),
            ],
            &s16,
        ),
        (
            "S-09 WARM_ENI_TARGET=0, 1 h",
            "m5.large",
            vec![("WARM_ENI_TARGET", "0")],
            &s09,
        ),
        (
            "churn 1000 events, WARM_IP_TARGET=2",
            "m5.large",
            vec![("WARM_IP_TARGET", "2")],
            &churn,
        ),
        (
            "churn 1000 events, WARM_ENI_TARGET=1",
            "m5.large",
            vec![],
            &churn,
        ),
        (
            "bursts of 6 in cooldown, WARM_IP_TARGET=6",
            "m5.large",
            vec![("WARM_IP_TARGET", "6")],
            &bursts,
        ),
    ];
    for (name, instance, vars, trace) in cases {
        let (ours, ours_by_api, ours_waits) = calls(instance, &vars, false, trace);
        let (reference, reference_by_api, reference_waits) = calls(instance, &vars, true, trace);
        println!(
            "{name:<40} EC2 calls: eniplan {ours:>5}, reference rules {reference:>5}   pod ADDs without an address: eniplan {ours_waits:>3}, reference rules {reference_waits:>3}"
        );
        if std::env::args().any(|a| a == "--by-api") {
            println!("    eniplan   {ours_by_api:?}\n    reference {reference_by_api:?}");
        }
    }
}
