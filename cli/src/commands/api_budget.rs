//! `eniplan api-budget`.

use std::fmt::Write as _;
use std::time::Duration;

use capacity::budget::{Budget, Request, budget};

use super::common::{self, Bar, thousands};
use crate::args::{ApiBudgetArgs, Output};
use crate::outcome::{CommandError, CommandOutput};
use crate::render;

pub fn run(args: &ApiBudgetArgs) -> Result<CommandOutput, CommandError> {
    let cluster = common::read_spec(&args.spec)?;
    if let Some(name) = &args.node_group
        && !cluster.groups.iter().any(|g| &g.name == name)
    {
        let known: Vec<&str> = cluster.groups.iter().map(|g| g.name.as_str()).collect();
        return Err(CommandError::Usage(format!(
            "--node-group {name:?}: no such node group (the spec has {})",
            known.join(", ")
        )));
    }
    let output = Output::from(args.output);
    let share = args.share / 100.0;
    let request = Request {
        nodes: args.scale_up,
        group: args.node_group.clone(),
        batch: args.batch,
        interval: args.interval,
        latency: Duration::from_millis(args.latency_ms),
        share,
    };
    let b = {
        let bar = Bar::new(args.progress);
        budget(&cluster, &request, &mut |p| bar.update(p))?
    };
    let stdout = if output == Output::Json {
        render::json(&b)?
    } else {
        text(&b, output, &request)
    };
    Ok(CommandOutput {
        stdout,
        ..CommandOutput::default()
    })
}

fn text(b: &Budget, output: Output, request: &Request) -> String {
    let mut out = String::new();
    let wave = match request.batch {
        Some(n) => format!(
            "in batches of {n} every {}",
            common::duration(request.interval.as_secs_f64())
        ),
        None => "all at once".to_owned(),
    };
    let _ = writeln!(
        out,
        "scale-up of {} nodes ({} pods), {wave}: the last pod has an address after {} ({} without throttling); {} EC2 calls",
        thousands(u64::from(b.nodes)),
        thousands(b.pods),
        common::duration(b.last_pod_ready_s),
        common::duration(b.unthrottled_s),
        thousands(b.calls)
    );
    if let Some(bucket) = b.bottleneck {
        let _ = writeln!(out, "bottleneck: the {bucket:?} token bucket");
    }
    out.push('\n');
    let rows: Vec<Vec<String>> = b
        .apis
        .iter()
        .map(|a| {
            vec![
                a.api.to_owned(),
                a.bucket.to_owned(),
                format!("{} / {}/s", a.capacity, a.refill_per_sec),
                thousands(a.calls),
                format!("{:.1}", a.per_node),
                common::duration(a.waited_s),
                common::duration(a.max_wait_s),
            ]
        })
        .collect();
    out.push_str(&render::table(
        output,
        &[
            "API",
            "BUCKET",
            "BURST / REFILL",
            "CALLS",
            "PER NODE",
            "WAITED (SUM)",
            "LONGEST WAIT",
        ],
        &rows,
        &[3, 4, 5, 6],
    ));
    if b.suggestions.is_empty() {
        out.push_str(
            "\nno setting tried (prefix delegation, MINIMUM_IP_TARGET, batches) is faster\n",
        );
    } else {
        out.push_str("\nfaster with:\n");
        for s in &b.suggestions {
            let _ = writeln!(
                out,
                "  {}: last pod after {} ({} calls)",
                s.change,
                common::duration(s.last_pod_ready_s),
                thousands(s.calls)
            );
        }
    }
    out
}
