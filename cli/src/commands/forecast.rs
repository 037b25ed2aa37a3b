//! `eniplan forecast`.

use std::fmt::Write as _;

use capacity::forecast::{Forecast, forecast};

use super::common::{self, Bar, days, thousands};
use crate::args::{ForecastArgs, Output};
use crate::outcome::{CommandError, CommandOutput};
use crate::{render, svg};

pub fn run(args: &ForecastArgs) -> Result<CommandOutput, CommandError> {
    let cluster = common::read_spec(&args.spec.spec)?;
    let options = common::forecast_options(&args.spec);
    let output = Output::from(args.output);
    let f = {
        let bar = Bar::new(args.spec.progress);
        forecast(&cluster, &options, &mut |p| bar.update(p))?
    };
    if let Some(path) = &args.plot {
        common::write_file(path, &svg::forecast(&f))?;
    }
    let stdout = if output == Output::Json {
        render::json(&f)?
    } else {
        text(&f, output)
    };
    Ok(CommandOutput {
        stdout,
        notes: f.notes.clone(),
        negative: false,
    })
}

fn pct(v: f64) -> String {
    format!("{v:.1}%")
}

/// The forecast as tables (terminal or Markdown). Shared with `eniplan report`.
#[expect(clippy::too_many_lines, reason = "five tables, one after the other")]
pub fn text(f: &Forecast, output: Output) -> String {
    let md = output == Output::Markdown;
    let mut out = String::new();
    let heading = |out: &mut String, title: &str| {
        if md {
            let _ = writeln!(out, "\n### {title}\n");
        } else {
            let _ = writeln!(out, "\n{}", title.to_uppercase());
        }
    };
    let _ = writeln!(
        out,
        "{}: forecast over {} subnets and {} node groups (seed {}, churn window {} h, growth horizon {} days)",
        f.cluster,
        f.subnets.len(),
        f.groups.len(),
        f.seed,
        f.window_hours,
        f.horizon_days
    );

    heading(&mut out, "Subnets now (addresses by use)");
    let rows: Vec<Vec<String>> = f
        .subnets
        .iter()
        .map(|s| {
            let u = &s.now;
            vec![
                s.id.clone(),
                s.az.clone(),
                s.cidr.to_string(),
                thousands(u64::from(s.usable)),
                u.nodes.to_string(),
                thousands(u64::from(u.pods)),
                thousands(u64::from(u.warm)),
                thousands(u64::from(u.node_primaries)),
                thousands(u64::from(u.eni_primaries)),
                thousands(u64::from(u.trunks)),
                thousands(u64::from(u.others)),
                thousands(u64::from(u.free)),
                thousands(u64::from(u.free_blocks)),
            ]
        })
        .collect();
    out.push_str(&render::table(
        output,
        &[
            "SUBNET", "AZ", "CIDR", "USABLE", "NODES", "PODS", "WARM", "NODE IPS", "ENI IPS",
            "TRUNKS", "OTHERS", "FREE", "FREE /28",
        ],
        &rows,
        &(3..13).collect::<Vec<_>>(),
    ));

    if f.azs.iter().any(|a| a.subnets.len() > 1) {
        heading(&mut out, "AZs (their subnets added up)");
        let rows: Vec<Vec<String>> = f
            .azs
            .iter()
            .map(|a| {
                vec![
                    a.az.clone(),
                    a.subnets.len().to_string(),
                    thousands(u64::from(a.usable)),
                    a.now.nodes.to_string(),
                    thousands(u64::from(a.now.pods)),
                    thousands(u64::from(a.now.warm)),
                    thousands(u64::from(
                        a.now.node_primaries + a.now.eni_primaries + a.now.trunks,
                    )),
                    thousands(u64::from(a.now.free)),
                    a.peak.nodes.to_string(),
                    thousands(u64::from(a.peak.free)),
                    pct(a.headroom_percent),
                    days(a.days_to_exhaustion, f.horizon_days),
                ]
            })
            .collect();
        out.push_str(&render::table(
            output,
            &[
                "AZ",
                "SUBNETS",
                "USABLE",
                "NODES",
                "PODS",
                "WARM",
                "PRIMARIES",
                "FREE",
                "PEAK NODES",
                "PEAK FREE",
                "HEADROOM",
                "EXHAUSTED IN",
            ],
            &rows,
            &(1..11).collect::<Vec<_>>(),
        ));
    }

    heading(&mut out, "Subnets at peak");
    let rows: Vec<Vec<String>> = f
        .subnets
        .iter()
        .map(|s| {
            let u = &s.peak;
            vec![
                s.id.clone(),
                u.nodes.to_string(),
                s.unplaced_at_peak.to_string(),
                thousands(u64::from(u.pods)),
                thousands(u64::from(u.warm)),
                thousands(u64::from(u.free)),
                thousands(u64::from(u.free_blocks)),
                pct(s.headroom_percent),
                days(s.days_to_exhaustion, f.horizon_days),
            ]
        })
        .collect();
    out.push_str(&render::table(
        output,
        &[
            "SUBNET",
            "NODES",
            "DO NOT FIT",
            "PODS",
            "WARM",
            "FREE",
            "FREE /28",
            "HEADROOM",
            "EXHAUSTED IN",
        ],
        &rows,
        &(1..8).collect::<Vec<_>>(),
    ));

    heading(&mut out, "Node groups");
    let rows: Vec<Vec<String>> = f
        .groups
        .iter()
        .map(|g| {
            vec![
                g.name.clone(),
                g.current.to_string(),
                g.peak.to_string(),
                thousands(u64::from(g.max_nodes)),
                thousands(u64::from(g.max_nodes_by_count)),
                g.limited_by
                    .as_ref()
                    .map_or_else(|| "-".to_owned(), |l| format!("{} ({})", l.subnet, l.error)),
                format!("{}%", g.growth_percent_per_month),
                days(g.days_to_exhaustion, f.horizon_days),
            ]
        })
        .collect();
    out.push_str(&render::table(
        output,
        &[
            "GROUP",
            "NOW",
            "PEAK",
            "MAX NODES",
            "BY COUNT",
            "LIMITED BY",
            "GROWTH/MONTH",
            "EXHAUSTED IN",
        ],
        &rows,
        &[1, 2, 3, 4],
    ));

    heading(
        &mut out,
        "Node shapes (the warm-pool engine's result per node)",
    );
    let rows: Vec<Vec<String>> = f
        .groups
        .iter()
        .flat_map(|g| {
            g.shapes.iter().map(|s| {
                vec![
                    g.name.clone(),
                    s.instance_type.to_owned(),
                    s.mode.to_string(),
                    format!("{:.0}%", s.share_percent),
                    s.pods.to_string(),
                    s.max_pods.to_string(),
                    s.peak.enis.to_string(),
                    if s.peak.prefixes > 0 {
                        format!("{} ({} /28)", s.peak.pool_addresses(), s.peak.prefixes)
                    } else {
                        s.peak.pool_addresses().to_string()
                    },
                    s.peak.warm().to_string(),
                    s.addresses_per_node.to_string(),
                    s.unserved.to_string(),
                ]
            })
        })
        .collect();
    out.push_str(&render::table(
        output,
        &[
            "GROUP",
            "TYPE",
            "MODE",
            "SHARE",
            "PODS",
            "MAX PODS",
            "ENIS",
            "POOL",
            "WARM",
            "ADDRS/NODE",
            "UNSERVED",
        ],
        &rows,
        &[3, 4, 5, 6, 8, 9, 10],
    ));

    heading(&mut out, &format!("Churn window ({} h)", f.window_hours));
    let rows: Vec<Vec<String>> = f
        .subnets
        .iter()
        .map(|s| {
            let w = &s.window;
            vec![
                s.id.clone(),
                thousands(u64::from(w.min_free_addresses)),
                thousands(u64::from(w.min_free_blocks)),
                thousands(u64::from(w.end_free_blocks)),
                format!("{:.2}", w.end_fragmentation),
                w.shortages.to_string(),
                w.fragmented.as_ref().map_or_else(
                    || "-".to_owned(),
                    |x| {
                        format!(
                            "minute {} ({} addresses free)",
                            x.minute,
                            thousands(u64::from(x.free_addresses))
                        )
                    },
                ),
            ]
        })
        .collect();
    out.push_str(&render::table(
        output,
        &[
            "SUBNET",
            "MIN FREE",
            "MIN FREE /28",
            "END FREE /28",
            "FRAGMENTATION",
            "SHORTAGES",
            "/28s RAN OUT WITH ADDRESSES LEFT",
        ],
        &rows,
        &[1, 2, 3, 4, 5],
    ));
    out
}
