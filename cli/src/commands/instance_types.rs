//! `eniplan instance-types`.

use std::fmt::Write as _;

use planner::catalogue::{self, Hypervisor, InstanceLimits};
use planner::max_pods::{self, Options};
use serde::Serialize;

use crate::args::{HypervisorFilter, InstanceTypesArgs, Output};
use crate::outcome::{CommandError, CommandOutput};
use crate::render;

#[derive(Serialize)]
struct JsonRow<'a> {
    #[serde(flatten)]
    limits: &'a InstanceLimits,
    total_enis: u32,
    max_pods: u32,
}

pub fn run(args: &InstanceTypesArgs) -> Result<CommandOutput, CommandError> {
    let candidates: Vec<&'static InstanceLimits> = if args.patterns.is_empty() {
        let mut all: Vec<_> = catalogue::all().iter().collect();
        all.sort_by(|a, b| catalogue::size_order(a.name, b.name));
        all
    } else {
        catalogue::resolve(&args.patterns)?
    };
    let families: Vec<&str> = args
        .family
        .iter()
        .map(|f| catalogue::family(f))
        .collect::<Result<_, _>>()?;
    let selected: Vec<&InstanceLimits> = candidates
        .into_iter()
        .filter(|t| families.is_empty() || families.contains(&t.family()))
        .filter(|t| match args.hypervisor {
            None => true,
            Some(HypervisorFilter::Nitro) => t.hypervisor == Hypervisor::Nitro,
            Some(HypervisorFilter::Xen) => t.hypervisor == Hypervisor::Xen,
            Some(HypervisorFilter::Unknown) => t.hypervisor == Hypervisor::Unknown,
        })
        .filter(|t| !args.trunking || t.trunking)
        .filter(|t| !args.no_trunking || !t.trunking)
        .filter(|t| !args.bare_metal || t.bare_metal)
        .filter(|t| args.min_enis.is_none_or(|n| u32::from(t.max_enis) >= n))
        .collect();
    if selected.is_empty() {
        return Err(CommandError::NoMatch(
            "no instance type matches these filters".to_owned(),
        ));
    }
    let default_pods = |t: &InstanceLimits| max_pods::max_pods(t, &Options::default()).max_pods;

    let stdout = match args.output {
        Output::Json => {
            let rows: Vec<JsonRow<'_>> = selected
                .iter()
                .map(|t| JsonRow {
                    limits: t,
                    total_enis: t.total_enis(),
                    max_pods: default_pods(t),
                })
                .collect();
            render::json(&rows)?
        }
        Output::Plain => selected.iter().fold(String::new(), |mut s, t| {
            let _ = writeln!(s, "{}", t.name);
            s
        }),
        Output::Table | Output::Markdown => {
            let header = [
                "TYPE",
                "VCPUS",
                "HYPERVISOR",
                "METAL",
                "CARDS",
                "ENIS",
                "TOTAL ENIS",
                "IPV4/ENI",
                "TRUNKING",
                "BRANCH ENIS",
                "MAX PODS",
            ];
            let yes_no = |b: bool| if b { "yes" } else { "no" }.to_owned();
            let rows: Vec<Vec<String>> = selected
                .iter()
                .map(|t| {
                    vec![
                        t.name.to_owned(),
                        t.vcpus.map_or_else(|| "?".to_owned(), |v| v.to_string()),
                        t.hypervisor.to_string(),
                        yes_no(t.bare_metal),
                        t.network_cards.len().to_string(),
                        t.max_enis.to_string(),
                        t.total_enis().to_string(),
                        t.ipv4_per_eni.to_string(),
                        yes_no(t.trunking),
                        t.branch_enis.to_string(),
                        default_pods(t).to_string(),
                    ]
                })
                .collect();
            render::table(args.output, &header, &rows, &[1, 4, 5, 6, 7, 9, 10])
        }
    };
    Ok(CommandOutput {
        stdout,
        ..CommandOutput::default()
    })
}
