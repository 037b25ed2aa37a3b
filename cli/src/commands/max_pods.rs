//! `eniplan max-pods`.

use std::collections::BTreeSet;
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
    /// `catalogue`, or `ec2` for a type only EC2 knows (`--live`).
    limits_from: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    explain: Option<&'a [String]>,
}

/// What EC2 says about the types the catalogue does not know.
#[cfg(feature = "live")]
fn from_ec2(
    args: &MaxPodsArgs,
    names: &[String],
) -> Result<Vec<&'static InstanceLimits>, CommandError> {
    let infos = crate::commands::ec2::describe_types(
        args.ec2.region.clone(),
        args.ec2.endpoint.clone(),
        names,
    )?;
    names
        .iter()
        .zip(infos)
        .map(|(name, info)| match info {
            Some(info) => Ok(info.described().limits()?),
            // EC2 does not know it either: the catalogue's error, with its suggestions.
            None => Err(catalogue::lookup(name).map(|_| ()).unwrap_err().into()),
        })
        .collect()
}

/// Without the `live` feature the CLI has no AWS SDK in it: say how to get one that has.
#[cfg(not(feature = "live"))]
fn from_ec2(
    _args: &MaxPodsArgs,
    _names: &[String],
) -> Result<Vec<&'static InstanceLimits>, CommandError> {
    Err(CommandError::Usage(
        "--live: this eniplan was built without EC2 access; build one with \
         `cargo install --path cli --features live` (or run from a clone with \
         `cargo run -p eniplan --features live -- max-pods --live ...`)"
            .into(),
    ))
}

/// The named types: the catalogue's, and with `--live` EC2's for exact names the catalogue does
/// not know (patterns match the catalogue only); the names whose limits came from EC2.
fn resolve(
    args: &MaxPodsArgs,
) -> Result<(Vec<&'static InstanceLimits>, BTreeSet<&'static str>), CommandError> {
    if !args.live {
        return Ok((catalogue::resolve(&args.types)?, BTreeSet::new()));
    }
    let names: Vec<String> = args
        .types
        .iter()
        .flat_map(|t| t.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty())
        .collect();
    let unknown: Vec<String> = names
        .iter()
        .filter(|n| !catalogue::is_pattern(n) && catalogue::lookup(n).is_err())
        .cloned()
        .collect();
    if unknown.is_empty() {
        return Ok((catalogue::resolve(&args.types)?, BTreeSet::new()));
    }
    let described = from_ec2(args, &unknown)?;
    let mut types = Vec::new();
    for name in &names {
        match unknown.iter().position(|u| u == name) {
            Some(i) => types.push(described[i]),
            None => types.extend(catalogue::resolve(std::slice::from_ref(name))?),
        }
    }
    Ok((types, described.iter().map(|t| t.name).collect()))
}

pub fn run(args: &MaxPodsArgs) -> Result<CommandOutput, CommandError> {
    let (types, ec2_named): (Vec<&'static InstanceLimits>, BTreeSet<&'static str>) = if args.all {
        let mut all: Vec<_> = catalogue::all().iter().collect();
        all.sort_by(|a, b| catalogue::size_order(a.name, b.name));
        (all, BTreeSet::new())
    } else {
        resolve(args)?
    };
    let source = |name: &str| {
        if ec2_named.contains(name) {
            "ec2"
        } else {
            "catalogue"
        }
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
                limits_from: source(t.name),
                explain: args.explain.then_some(r.steps.as_slice()),
            })
            .collect();
        report.stdout = render::json(&rows)?;
        return Ok(report);
    }
    report.notes.extend(ec2_named.iter().map(|name| {
        format!(
            "{name}: limits from EC2 (DescribeInstanceTypes); the catalogue does not know this type"
        )
    }));
    if args.explain {
        report.stdout = explain(&results, &ec2_named);
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

fn explain(results: &[(MaxPods, &InstanceLimits)], ec2_named: &BTreeSet<&'static str>) -> String {
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
            "  instance: {} ENIs on the default card, {} IPv4 addresses per ENI, hypervisor {}{} ({})",
            t.max_enis,
            t.ipv4_per_eni,
            t.hypervisor,
            if t.bare_metal { ", bare metal" } else { "" },
            if ec2_named.contains(t.name) {
                "limits from EC2's DescribeInstanceTypes"
            } else {
                "limits from the catalogue"
            }
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
