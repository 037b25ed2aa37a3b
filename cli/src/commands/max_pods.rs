//! `eniplan max-pods`.

use std::fmt::Write as _;
use std::num::NonZeroU32;

use planner::catalogue::{self, InstanceLimits};
use planner::max_pods::{self, MaxPods, Note, Options};
use serde::Serialize;

use crate::args::{MaxPodsArgs, Output};
use crate::outcome::{CommandError, CommandOutput};
use crate::render;

/// One JSON object of `--output json`.
#[derive(Serialize)]
struct JsonRow<'a> {
    #[serde(flatten)]
    result: &'a MaxPods,
    hypervisor: catalogue::Hypervisor,
    bare_metal: bool,
    settings: &'a Options,
    #[serde(skip_serializing_if = "Option::is_none")]
    explain: Option<&'a [String]>,
}

pub fn run(args: &MaxPodsArgs) -> Result<CommandOutput, CommandError> {
    let types: Vec<&'static InstanceLimits> = if args.all {
        let mut all: Vec<_> = catalogue::all().iter().collect();
        all.sort_by(|a, b| catalogue::size_order(a.name, b.name));
        all
    } else {
        catalogue::resolve(&args.types)?
    };
    let options = Options {
        prefix_delegation: args.prefix_delegation,
        custom_networking: args.custom_networking,
        security_groups_for_pods: args.security_groups_for_pods,
        max_eni: args.max_eni.and_then(NonZeroU32::new),
        reserved_enis: args.reserved_enis,
        cni_version: args.cni_version,
        vcpus: args.vcpus,
    };
    let results: Vec<(MaxPods, &InstanceLimits)> = types
        .iter()
        .map(|t| (max_pods::max_pods(t, &options), *t))
        .collect();
    // A bare number only answers a question about one named type; a pattern or a list that
    // happens to match one type still prints its name.
    let single = !args.all
        && args.types.len() == 1
        && !catalogue::is_pattern(&args.types[0])
        && !args.types[0].contains(',');
    if args.explain
        && matches!(
            args.output,
            Some(Output::Plain | Output::Table | Output::Markdown)
        )
    {
        return Err(CommandError::Usage(
            "--explain prints the derivation as text; use it without --output, or with --output json".to_owned(),
        ));
    }
    let output = args
        .output
        .unwrap_or(if single { Output::Plain } else { Output::Table });
    let value = |r: &MaxPods| {
        if args.uncapped {
            r.max_pods
        } else {
            r.recommended_max_pods
        }
    };

    let mut report = CommandOutput::default();
    if output == Output::Json {
        let rows: Vec<JsonRow<'_>> = results
            .iter()
            .map(|(r, t)| JsonRow {
                result: r,
                hypervisor: t.hypervisor,
                bare_metal: t.bare_metal,
                settings: &options,
                explain: args.explain.then_some(r.steps.as_slice()),
            })
            .collect();
        report.stdout = render::json(&rows)?;
        return Ok(report);
    }
    if args.explain {
        report.stdout = explain(&results);
        return Ok(report);
    }
    match output {
        Output::Plain => {
            for (r, _) in &results {
                if single {
                    let _ = writeln!(report.stdout, "{}", value(r));
                    report.notes.extend(r.notes.iter().map(ToString::to_string));
                } else {
                    let _ = writeln!(report.stdout, "{} {}", r.instance_type, value(r));
                    report
                        .notes
                        .extend(r.notes.iter().map(|n| format!("{}: {n}", r.instance_type)));
                }
            }
        }
        Output::Table | Output::Markdown => {
            report.stdout = table(output, &results, options.security_groups_for_pods);
        }
        Output::Json => unreachable!("handled above"),
    }
    Ok(report)
}

fn short_note(note: &Note) -> &'static str {
    match note {
        Note::PrefixDelegationNeedsNitro { .. } => "no PD: not Nitro",
        Note::PrefixDelegationNeedsNewerCni { .. } => "no PD: CNI < 1.9",
        Note::NotTrunkingCompatible => "no trunk ENI",
        Note::NoEnisForPods => "no ENI for pods: never Ready",
        Note::ReservedEnisClamped { .. } => "reserved ENIs clamped",
        Note::NoSlotForTrunk => "no slot for trunk",
        Note::VcpusUnknown => "vCPUs unknown",
    }
}

fn table(output: Output, results: &[(MaxPods, &InstanceLimits)], sgp: bool) -> String {
    let mut header = vec![
        "TYPE",
        "MODE",
        "VCPUS",
        "ENIS",
        "ADDRS/ENI",
        "POD ADDRS",
        "MAX PODS",
        "RECOMMENDED",
    ];
    if sgp {
        header.push("BRANCH ENIS");
    }
    let any_notes = results.iter().any(|(r, _)| !r.notes.is_empty());
    if any_notes {
        header.push("NOTES");
    }
    let rows: Vec<Vec<String>> = results
        .iter()
        .map(|(r, _)| {
            let mut row = vec![
                r.instance_type.to_owned(),
                r.mode.to_string(),
                r.vcpus.map_or_else(|| "?".to_owned(), |v| v.to_string()),
                format!("{}/{}", r.enis_for_pods, r.card_enis),
                r.pod_addresses_per_eni.to_string(),
                r.pod_addresses.to_string(),
                r.max_pods.to_string(),
                r.recommended_max_pods.to_string(),
            ];
            if sgp {
                row.push(r.branch_enis.unwrap_or(0).to_string());
            }
            if any_notes {
                row.push(
                    r.notes
                        .iter()
                        .map(short_note)
                        .collect::<Vec<_>>()
                        .join("; "),
                );
            }
            row
        })
        .collect();
    let numeric_end = if any_notes {
        header.len() - 1
    } else {
        header.len()
    };
    let numeric: Vec<usize> = (2..numeric_end).collect();
    render::table(output, &header, &rows, &numeric)
}

fn explain(results: &[(MaxPods, &InstanceLimits)]) -> String {
    let mut out = String::new();
    for (i, (r, t)) in results.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let _ = writeln!(
            out,
            "{}: {} recommended max pods ({} ENI-limited), {}",
            r.instance_type, r.recommended_max_pods, r.max_pods, r.mode
        );
        let _ = writeln!(
            out,
            "  instance: {} ENIs on the default card, {} IPv4 addresses per ENI, hypervisor {}{}",
            t.max_enis,
            t.ipv4_per_eni,
            t.hypervisor,
            if t.bare_metal { ", bare metal" } else { "" }
        );
        for (n, step) in r.steps.iter().enumerate() {
            let _ = writeln!(out, "  {:>2}. {step}", n + 1);
        }
        if let Some(branch) = r.branch_enis {
            let _ = writeln!(
                out,
                "  branch ENIs (vpc.amazonaws.com/pod-eni): {branch}, separate from max pods"
            );
        }
        for note in &r.notes {
            let _ = writeln!(out, "  note: {note}");
        }
    }
    out
}
