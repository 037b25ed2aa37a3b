//! `cargo bench -p planner --bench forecast`: the forecast's figures for docs/benchmarks.md.
//!
//! 1. The headline: 5,000 nodes × 110 pods (m5.large, prefix delegation), 24 h of pod and
//!    node churn, growth followed for two years: wall time (best of 3) and peak heap.
//! 2. Scaling: the same cluster at 500, 5,000 and 50,000 nodes (subnets scale with it: one
//!    /16 per 400 nodes), to check that time grows linearly.
//!
//! `-- --quick` runs one repetition and skips 50,000 nodes.
#![allow(
    clippy::disallowed_methods,
    reason = "a benchmark reads the clock to measure; the forecast it drives never does"
)]

use std::fmt::Write as _;
use std::process::Command;
use std::time::{Duration, Instant};

use capacity::forecast::{Options, forecast};

/// Peak resident set size of this process in MiB (Linux `VmHWM`), 0 elsewhere.
fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u32>().ok())
        })
        .map_or(0.0, |kib| f64::from(kib) / 1024.0)
}

/// A spec of `nodes` m5.large nodes with 110 pods each (prefix delegation), over three AZs,
/// one /16 subnet (and VPC CIDR) per 400 nodes.
fn spec(nodes: u32) -> String {
    let subnets = nodes.div_ceil(400).max(3);
    let mut s = String::from("cluster: bench\nvpc_cidrs: [");
    for i in 0..subnets {
        let _ = write!(s, "{}10.{i}.0.0/16", if i == 0 { "" } else { ", " });
    }
    s.push_str("]\nsubnets:\n");
    for i in 0..subnets {
        let _ = writeln!(
            s,
            "  - {{ id: subnet-{i}, cidr: 10.{i}.0.0/16, az: az-{}, used: 200 }}",
            i % 3
        );
    }
    let _ = write!(
        s,
        "node_groups:
  - name: workers
    instance_types: [m5.large]
    nodes: {{ min: {nodes}, max: {nodes} }}
    cni: {{ ENABLE_PREFIX_DELEGATION: true, WARM_PREFIX_TARGET: 1 }}
    pods:
      per_node: 110
      growth_percent_per_month: 5
      churn_percent_per_hour: 20
      node_churn_percent_per_day: 10
"
    );
    s
}

/// One size, in this process: prints `wall_s peak_rss_mib placed pods shortages days`.
fn one(nodes: u32, reps: u32) {
    let cluster = capacity::spec::load(&spec(nodes)).expect("bench spec");
    let options = Options::default();
    let mut best = Duration::MAX;
    let mut last = None;
    for _ in 0..reps {
        let t = Instant::now();
        let f = forecast(&cluster, &options, &mut |_| {}).expect("forecast");
        best = best.min(t.elapsed());
        last = Some(f);
    }
    let f = last.expect("at least one repetition");
    let placed: u32 = f.subnets.iter().map(|s| s.now.nodes).sum();
    let pods: u32 = f.subnets.iter().map(|s| s.now.pods).sum();
    let shortages: u32 = f.subnets.iter().map(|s| s.window.shortages).sum();
    println!(
        "{:.3} {:.1} {placed} {pods} {shortages} {}",
        best.as_secs_f64(),
        peak_rss_mib(),
        f.days_to_exhaustion
            .map_or_else(|| "-".to_owned(), |d| d.to_string())
    );
}

/// Runs one size in a fresh process, so its peak RSS is its own.
fn measure(nodes: u32, reps: u32) -> Vec<String> {
    let exe = std::env::current_exe().expect("the bench binary");
    let out = Command::new(exe)
        .args(["--one", &nodes.to_string(), &reps.to_string()])
        .output()
        .expect("run the bench binary");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--one") {
        let nodes = args[i + 1].parse().expect("node count");
        let reps = args[i + 2].parse().expect("repetitions");
        one(nodes, reps);
        return;
    }
    let quick = args.iter().any(|a| a == "--quick");
    let reps = if quick { 1 } else { 3 };
    println!("## forecast: 5,000 nodes × 110 pods, 24 h churn window (best of {reps})\n");
    let m = measure(5_000, reps);
    println!(
        "wall {} s, peak RSS {} MiB; {} nodes placed, {} pods, {} shortages in the window, first subnet exhausted in {} days",
        m[0], m[1], m[2], m[3], m[4], m[5]
    );
    println!(
        "\n## scaling\n\n| nodes | wall (s) | ms per 1,000 nodes | peak RSS (MiB) |\n|---|---|---|---|"
    );
    let sizes: &[u32] = if quick {
        &[500, 5_000]
    } else {
        &[500, 5_000, 50_000]
    };
    for &n in sizes {
        let m = measure(n, if n > 5_000 { 1 } else { reps });
        let wall: f64 = m[0].parse().expect("seconds");
        println!(
            "| {n} | {wall:.2} | {:.0} | {} |",
            wall * 1_000_000.0 / f64::from(n),
            m[1]
        );
    }
}
