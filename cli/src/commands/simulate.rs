//! `eniplan simulate`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use planner::catalogue;
use planner::max_pods::{self, Options};
use planner::pool::{PoolConfig, Time, VARIABLES};
use planner::sim::{self, Node, StepReport};
use serde::Serialize;

use crate::args::{Output, SimulateArgs};
use crate::outcome::{CommandError, CommandOutput};
use crate::render;

/// Reads `VAR=VALUE` lines: blank lines and `#` comments skipped, `export ` and matching quotes
/// stripped.
fn parse_env_file(path: &std::path::Path) -> Result<Vec<(String, String)>, CommandError> {
    let text = super::common::read_input(path, "env file", super::common::MAX_ENV_FILE_BYTES)?;
    let mut out = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((k, v)) = line.split_once('=') else {
            return Err(CommandError::Usage(format!(
                "{}:{}: expected VAR=VALUE, found {raw:?}",
                path.display(),
                n + 1
            )));
        };
        let v = v.trim();
        let v = v
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .or_else(|| v.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
            .unwrap_or(v);
        out.push((k.trim().to_owned(), v.to_owned()));
    }
    Ok(out)
}

fn settings(args: &SimulateArgs) -> Result<BTreeMap<String, String>, CommandError> {
    let mut vars = BTreeMap::new();
    let mut pairs = match &args.env_file {
        Some(path) => parse_env_file(path)?,
        None => Vec::new(),
    };
    for s in &args.set {
        let (k, v) = s.split_once('=').ok_or_else(|| {
            CommandError::Usage(format!(
                "--set {s:?}: expected VAR=VALUE, e.g. --set WARM_IP_TARGET=5"
            ))
        })?;
        pairs.push((k.trim().to_owned(), v.trim().to_owned()));
    }
    for (k, v) in pairs {
        if !VARIABLES.iter().any(|(name, _, _)| *name == k) {
            let known: Vec<&str> = VARIABLES.iter().map(|(name, _, _)| *name).collect();
            return Err(CommandError::Usage(format!(
                "unknown setting {k:?}; eniplan simulate understands {}",
                known.join(", ")
            )));
        }
        vars.insert(k, v);
    }
    Ok(vars)
}

#[derive(Serialize)]
struct ApiCount {
    api: &'static str,
    count: u64,
}

fn api_counts(calls: &BTreeMap<&'static str, u64>) -> Vec<ApiCount> {
    calls
        .iter()
        .map(|(api, count)| ApiCount { api, count: *count })
        .collect()
}

#[derive(Serialize)]
struct JsonStep {
    pods: u32,
    unserved: u32,
    time_s: f64,
    enis: u32,
    ips: u32,
    prefixes: u32,
    assigned: u32,
    free: u32,
    cooldown: u32,
    ec2_calls: Vec<ApiCount>,
    #[serde(skip_serializing_if = "Option::is_none")]
    explain: Option<Vec<String>>,
}

#[derive(Serialize)]
struct JsonReport<'a> {
    instance_type: &'static str,
    mode: max_pods::AddressMode,
    #[serde(skip_serializing_if = "Option::is_none")]
    mode_note: Option<&'a str>,
    max_pods: u32,
    subnet: ipnetwork::Ipv4Network,
    settings: &'a PoolConfig,
    steps: Vec<JsonStep>,
    ec2_calls_total: Vec<ApiCount>,
}

fn time_text(t: Time) -> String {
    let s = t.as_millis() / 1000;
    format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

fn short_api(api: &str) -> &str {
    match api {
        "CreateNetworkInterface" => "Create",
        "AttachNetworkInterface" => "Attach",
        "ModifyNetworkInterfaceAttribute" => "Modify",
        "AssignPrivateIpAddresses" => "Assign",
        "UnassignPrivateIpAddresses" => "Unassign",
        "DetachNetworkInterface" => "Detach",
        "DeleteNetworkInterface" => "Delete",
        "DescribeNetworkInterfaces" => "Describe",
        other => other,
    }
}

fn calls_text(calls: &BTreeMap<&'static str, u64>) -> String {
    calls
        .iter()
        .map(|(api, n)| format!("{} {n}", short_api(api)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn event_lines(step: &StepReport) -> Vec<String> {
    step.events
        .iter()
        .map(|e| {
            let outcome = e
                .failure
                .as_ref()
                .map_or_else(String::new, |f| format!(" → failed: {f}"));
            format!("[{}] {}{outcome}: {}", time_text(e.time), e.call, e.reason)
        })
        .collect()
}

pub fn run(args: &SimulateArgs) -> Result<CommandOutput, CommandError> {
    let limits = catalogue::lookup(&args.instance_type)?;
    let vars = settings(args)?;
    let mut config = PoolConfig::from_vars(&vars)?;
    config.max_pods = args
        .max_pods
        .unwrap_or_else(|| max_pods::max_pods(limits, &Options::default()).max_pods);
    let mut node = Node::new(limits, config.clone(), &args.subnet.to_string())?;
    let steps = match &args.trace {
        Some(path) => {
            let text = super::common::read_input(path, "trace", super::common::MAX_TRACE_BYTES)?;
            let events = sim::parse_trace(&text)?;
            if events.is_empty() {
                return Err(CommandError::Usage(format!(
                    "trace {} has no events",
                    path.display()
                )));
            }
            node.run_timed(&events)
        }
        None => node.run_counts(&args.pods),
    };
    let mut report = CommandOutput::default();
    if let Some(note) = node.pool.mode_note() {
        report.notes.push(note.to_owned());
    }
    let output = args.output.unwrap_or(Output::Table);
    let run = Run {
        args,
        limits,
        config: &config,
        vars: &vars,
        node: &node,
        steps: &steps,
    };
    report.stdout = if output == Output::Json {
        run.json()?
    } else {
        run.text(output)
    };
    Ok(report)
}

/// Everything one simulation produced, for rendering.
struct Run<'a> {
    args: &'a SimulateArgs,
    limits: &'static catalogue::InstanceLimits,
    config: &'a PoolConfig,
    vars: &'a BTreeMap<String, String>,
    node: &'a Node,
    steps: &'a [StepReport],
}

impl Run<'_> {
    fn json(&self) -> Result<String, CommandError> {
        let (args, limits, config, node, steps) =
            (self.args, self.limits, self.config, self.node, self.steps);
        let totals = node.ec2.calls();
        let mode = node.pool.mode();
        let json = JsonReport {
            instance_type: limits.name,
            mode,
            mode_note: node.pool.mode_note(),
            max_pods: config.max_pods,
            subnet: args.subnet,
            settings: config,
            steps: steps
                .iter()
                .map(|s| JsonStep {
                    pods: s.pods,
                    unserved: s.unserved,
                    time_s: Duration::from_millis(s.time.as_millis()).as_secs_f64(),
                    enis: s.enis,
                    ips: s.ips,
                    prefixes: s.prefixes,
                    assigned: s.assigned,
                    free: s.free,
                    cooldown: s.cooldown,
                    ec2_calls: api_counts(&s.ec2_calls),
                    explain: args.explain.then(|| event_lines(s)),
                })
                .collect(),
            ec2_calls_total: api_counts(totals),
        };
        render::json(&json)
    }

    fn text(&self, output: Output) -> String {
        let (args, limits, config, vars, node, steps) = (
            self.args,
            self.limits,
            self.config,
            self.vars,
            self.node,
            self.steps,
        );
        let totals = node.ec2.calls();
        let mode = node.pool.mode();
        let mut out = String::new();
        let set: Vec<String> = vars.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let _ = writeln!(
            out,
            "{} ({mode}), max pods {}, subnet {}, {}",
            limits.name,
            config.max_pods,
            args.subnet,
            if set.is_empty() {
                "default settings".to_owned()
            } else {
                set.join(" ")
            }
        );
        let _ = writeln!(out);
        let pd = mode == max_pods::AddressMode::PrefixDelegation;
        let unserved = steps.iter().any(|s| s.unserved > 0);
        let mut header = vec!["STEP", "TIME", "PODS", "ENIS", "IPS"];
        if pd {
            header.push("PREFIXES");
        }
        header.extend(["ASSIGNED", "FREE", "COOLDOWN"]);
        if unserved {
            header.push("UNSERVED");
        }
        header.push("EC2 CALLS");
        let rows: Vec<Vec<String>> = steps
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let mut row = vec![
                    (i + 1).to_string(),
                    time_text(s.time),
                    s.pods.to_string(),
                    s.enis.to_string(),
                    s.ips.to_string(),
                ];
                if pd {
                    row.push(s.prefixes.to_string());
                }
                row.extend([
                    s.assigned.to_string(),
                    s.free.to_string(),
                    s.cooldown.to_string(),
                ]);
                if unserved {
                    row.push(s.unserved.to_string());
                }
                row.push(calls_text(&s.ec2_calls));
                row
            })
            .collect();
        let numeric: Vec<usize> = (2..header.len() - 1).collect();
        out.push_str(&render::table(output, &header, &rows, &numeric));
        if args.explain {
            for (i, s) in steps.iter().enumerate() {
                let lines = event_lines(s);
                if lines.is_empty() {
                    continue;
                }
                let _ = writeln!(out, "\nstep {}:", i + 1);
                for l in lines {
                    let _ = writeln!(out, "  {l}");
                }
            }
        }
        let _ = writeln!(out, "\nEC2 calls: {} in all", totals.values().sum::<u64>());
        for (api, n) in totals {
            let _ = writeln!(out, "  {api:<33} {n:>6}");
        }
        out
    }
}
