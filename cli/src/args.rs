//! Command-line definitions (clap derive). Doc comments here are the `--help` text.
#![allow(
    clippy::struct_excessive_bools,
    reason = "command-line flags are booleans"
)]

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Plan pod IP capacity for Kubernetes on AWS.
///
/// eniplan knows the networking limits of every EC2 instance type offline and computes what the
/// AWS VPC CNI will do with them.
#[derive(Debug, Parser)]
#[command(
    name = "eniplan",
    version,
    propagate_version = true,
    max_term_width = 100
)]
#[command(
    after_help = "Exit codes: 0 success, 1 no match / gate failed, 2 bad input, 3 internal error."
)]
pub struct Cli {
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Max pods per node for instance types under VPC CNI settings.
    ///
    /// With one instance type and no --output, prints the bare number to set as the kubelet's
    /// max-pods (the EKS recommended value, capped at 110 or 250), like the EKS
    /// max-pods-calculator.sh. --uncapped prints the ENI-limited value instead.
    #[command(name = "max-pods")]
    MaxPods(MaxPodsArgs),
    /// List the embedded instance catalogue, with filters.
    #[command(name = "instance-types")]
    InstanceTypes(InstanceTypesArgs),
    /// Simulate one node's warm pool (the engine ipamd runs) for a pod trace.
    ///
    /// Runs eniplan's pool engine against an in-memory EC2 (real subnet arithmetic, the
    /// instance type's limits) and prints, per step, the ENIs, addresses and prefixes held, free
    /// and cooling, and every EC2 call made.
    Simulate(SimulateArgs),
}

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Bare values: one number for one type, `TYPE VALUE` lines for several.
    Plain,
    /// An aligned table for terminals.
    Table,
    /// A JSON array, one object per instance type.
    Json,
    /// A Markdown table (fits a GitHub job summary).
    Markdown,
}

/// Arguments of `eniplan max-pods`.
#[derive(Debug, Args)]
pub struct MaxPodsArgs {
    /// Instance types: exact names (m5.large) or shell patterns ('m5.*', 'c?g.large').
    #[arg(
        value_name = "TYPE",
        required_unless_present = "all",
        conflicts_with = "all"
    )]
    pub types: Vec<String>,

    /// Every instance type in the catalogue.
    #[arg(long)]
    pub all: bool,

    /// Prefix delegation (ENABLE_PREFIX_DELEGATION): each slot holds a /28 of 16 addresses.
    /// Applies on Nitro and bare-metal types with VPC CNI 1.9 or later; elsewhere falls back
    /// to secondary IPs and says so.
    #[arg(long)]
    pub prefix_delegation: bool,

    /// Custom networking (AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG): the primary ENI carries no pods.
    #[arg(long)]
    pub custom_networking: bool,

    /// Security groups for pods (ENABLE_POD_ENI): one ENI slot goes to the trunk ENI on
    /// trunking-compatible types; also reports branch-ENI capacity (vpc.amazonaws.com/pod-eni).
    #[arg(long)]
    pub security_groups_for_pods: bool,

    /// MAX_ENI: use at most N ENIs (at least 1; more than the type has means all of them).
    #[arg(long, value_name = "N", value_parser = parse_max_eni, allow_negative_numbers = true)]
    pub max_eni: Option<u32>,

    /// ENIs attached by other software that the CNI does not manage.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 0,
        allow_negative_numbers = true
    )]
    pub reserved_enis: u32,

    /// VPC CNI release (MAJOR.MINOR[.PATCH]); prefix delegation needs 1.9 or later.
    #[arg(long, value_name = "X.Y.Z", default_value_t = planner::max_pods::CniVersion::CURRENT, value_parser = parse_cni_version)]
    pub cni_version: planner::max_pods::CniVersion,

    /// vCPUs for the 110/250 recommendation, for types the catalogue has none for (or to override).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..), allow_negative_numbers = true)]
    pub vcpus: Option<u32>,

    /// Plain output prints the ENI-limited value without the 110/250 cap (alias:
    /// --show-max-allowed). Tables and JSON always show both.
    #[arg(long, alias = "show-max-allowed")]
    pub uncapped: bool,

    /// Show the derivation step by step (text; with --output json, an `explain` array).
    #[arg(long)]
    pub explain: bool,

    /// Output format [default: plain for one type, table for several].
    #[arg(long, short = 'o', value_enum)]
    pub output: Option<Output>,
}

/// Arguments of `eniplan simulate`.
#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// The node's instance type.
    #[arg(long, short = 't', value_name = "TYPE")]
    pub instance_type: String,

    /// A VPC CNI setting, e.g. --set WARM_IP_TARGET=5 (repeatable; see docs/configuration.md).
    #[arg(long = "set", value_name = "VAR=VALUE")]
    pub set: Vec<String>,

    /// Read settings from an env file (VAR=VALUE lines; `export`, quotes and # comments allowed).
    /// --set wins over the file.
    #[arg(long, value_name = "FILE")]
    pub env_file: Option<std::path::PathBuf>,

    /// The kubelet's max pods [default: the ENI-limited value in secondary-IP mode, as EKS
    /// bootstraps set it].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..), allow_negative_numbers = true)]
    pub max_pods: Option<u32>,

    /// Pod counts, one step each: pods are added or deleted one at a time, the pool settling
    /// after each (e.g. --pods 0,10,30,5).
    #[arg(
        long,
        value_name = "N,N,...",
        value_delimiter = ',',
        required_unless_present = "trace",
        conflicts_with = "trace",
        allow_negative_numbers = true
    )]
    pub pods: Vec<u32>,

    /// A file of timed pod events, one per line: `<time> add|del <pod>` (time in s, or with a
    /// unit: 250ms, 30s, 2m, 1h).
    #[arg(long, value_name = "FILE")]
    pub trace: Option<std::path::PathBuf>,

    /// The node's subnet.
    #[arg(long, value_name = "CIDR", default_value = "10.0.0.0/16")]
    pub subnet: String,

    /// Say why the engine made each EC2 call.
    #[arg(long)]
    pub explain: bool,

    /// Output format [default: table].
    #[arg(long, short = 'o', value_enum)]
    pub output: Option<Output>,
}

/// Arguments of `eniplan instance-types`.
#[derive(Debug, Args)]
pub struct InstanceTypesArgs {
    /// Names or shell patterns ('m5.*'); all types when omitted.
    #[arg(value_name = "PATTERN")]
    pub patterns: Vec<String>,

    /// Only this family (m5, c7g, ...); repeatable.
    #[arg(long, value_name = "FAMILY")]
    pub family: Vec<String>,

    /// Only this hypervisor.
    #[arg(long, value_enum)]
    pub hypervisor: Option<HypervisorFilter>,

    /// Only trunking-compatible types (security groups for pods).
    #[arg(long, conflicts_with = "no_trunking")]
    pub trunking: bool,

    /// Only types that are not trunking-compatible.
    #[arg(long)]
    pub no_trunking: bool,

    /// Only bare-metal types.
    #[arg(long)]
    pub bare_metal: bool,

    /// Only types whose default network card takes at least N ENIs.
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub min_enis: Option<u32>,

    /// Output format [default: table].
    #[arg(long, short = 'o', value_enum, default_value = "table")]
    pub output: Output,
}

/// `--hypervisor` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum HypervisorFilter {
    /// AWS Nitro.
    Nitro,
    /// Xen.
    Xen,
    /// None reported (bare metal, and cr1/hs1).
    #[value(alias = "none")]
    Unknown,
}

fn parse_max_eni(s: &str) -> Result<u32, String> {
    let n: u64 = s.trim().parse().map_err(|_| {
        format!("{s:?} is not a whole number of 1 or more; MAX_ENI takes an integer of at least 1")
    })?;
    // Like ipamd: a MAX_ENI above the type's limit means the limit.
    let n = u32::try_from(n).unwrap_or(u32::MAX);
    planner::max_pods::max_eni(n)
        .map(std::num::NonZeroU32::get)
        .map_err(|e| e.to_string())
}

fn parse_cni_version(s: &str) -> Result<planner::max_pods::CniVersion, String> {
    s.parse().map_err(|e: planner::Error| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn max_eni_zero_is_rejected_with_the_reason() {
        let err = parse_max_eni("0").unwrap_err();
        assert!(err.contains("must be at least 1"), "{err}");
        assert!(
            parse_max_eni("x")
                .unwrap_err()
                .contains("\"x\" is not a whole number")
        );
        assert!(
            parse_max_eni("-1")
                .unwrap_err()
                .contains("\"-1\" is not a whole number")
        );
        assert_eq!(parse_max_eni("4"), Ok(4));
        assert_eq!(parse_max_eni("99999999999"), Ok(u32::MAX));
    }
}
