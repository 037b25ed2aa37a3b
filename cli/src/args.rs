//! Command-line definitions (clap derive). Doc comments here are the `--help` text.
#![allow(
    clippy::struct_excessive_bools,
    reason = "command-line flags are booleans"
)]

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::values;

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
    /// Forecast a cluster's subnets from its spec: addresses by use, headroom at peak, the most
    /// nodes each group reaches, time to exhaustion, /28 fragmentation under churn.
    ///
    /// Every node shape runs the warm-pool engine (the one ipamd runs); nodes are placed on the
    /// subnets' real address space at random like EC2 places them (seeded), and a churn window
    /// is replayed step by step. See docs/planning.md.
    Forecast(ForecastArgs),
    /// The /28 block map of subnets (free, partly used, full, prefix, reserved), a
    /// fragmentation score, and the ENIs whose release frees the most /28s.
    ///
    /// From the spec (today's nodes, placed as the forecast places them) or, with --live, from
    /// EC2: one paginated DescribeNetworkInterfaces filtered on each subnet.
    Subnets(SubnetsArgs),
    /// Plan custom networking: per-AZ pod subnets carved from a secondary CIDR, sized for the
    /// node groups at peak with headroom; ENIConfig manifests, ipamd settings, Terraform.
    Layout(LayoutArgs),
    /// The EC2 calls a scale-up (or node-recycle wave) makes, replayed against EC2's token
    /// buckets: time until the last pod has an address, and settings that shorten it.
    #[command(name = "api-budget")]
    ApiBudget(ApiBudgetArgs),
    /// A capacity report for CI (Markdown for a job summary, JSON, JUnit XML) with gates: exit
    /// 1 when a gate fails.
    Report(ReportArgs),
    /// Print the JSON Schema of the cluster spec (docs/cluster-spec.schema.json).
    Schema,
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

    /// Ask EC2 (DescribeInstanceTypes) for the limits of types the catalogue does not know, as
    /// ipamd does for a type launched after the catalogue was built; the answer says which
    /// limits came from EC2 (a CLI built with `--features live`).
    #[arg(long, conflicts_with = "all")]
    pub live: bool,

    /// Where --live reads EC2.
    #[command(flatten)]
    pub ec2: Ec2Args,
}

/// Where a command's `--live` reads EC2 (the flag itself is the command's own).
#[derive(Debug, Args)]
pub struct Ec2Args {
    /// AWS region for --live [default: the SDK's chain: AWS_REGION, profile, IMDS].
    #[arg(long, value_name = "REGION", requires = "live")]
    pub region: Option<String>,

    /// EC2 endpoint for --live (e.g. a LocalStack).
    #[arg(
        long,
        value_name = "URL",
        env = "AWS_EC2_ENDPOINT",
        hide_env_values = true,
        requires = "live"
    )]
    pub endpoint: Option<String>,
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
    #[arg(long, value_name = "CIDR", default_value = "10.0.0.0/16", value_parser = values::cidr)]
    pub subnet: ipnetwork::Ipv4Network,

    /// Say why the engine made each EC2 call.
    #[arg(long)]
    pub explain: bool,

    /// Output format [default: table].
    #[arg(long, short = 'o', value_enum)]
    pub output: Option<Output>,
}

/// Output formats of the planning commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TableOutput {
    /// Aligned tables for terminals.
    Table,
    /// Everything as one JSON document.
    Json,
    /// Markdown tables (fit a GitHub job summary).
    Markdown,
}

impl From<TableOutput> for Output {
    fn from(o: TableOutput) -> Output {
        match o {
            TableOutput::Table => Output::Table,
            TableOutput::Json => Output::Json,
            TableOutput::Markdown => Output::Markdown,
        }
    }
}

/// `--progress` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProgressMode {
    /// A progress bar on stderr when it is a terminal.
    Auto,
    /// Never.
    Never,
}

/// Options every spec-driven command shares.
#[derive(Debug, Args)]
pub struct SpecOptions {
    /// The cluster spec (YAML or JSON; see docs/planning.md and docs/cluster-spec.schema.json).
    #[arg(value_name = "SPEC")]
    pub spec: std::path::PathBuf,

    /// Length of the simulated churn window (24h, 90m, 2d).
    #[arg(long, value_name = "DURATION", default_value = "24h", value_parser = values::duration)]
    pub window: std::time::Duration,

    /// How far ahead to follow growth (90d, 12w, 2y).
    #[arg(long, value_name = "DAYS", default_value = "730d", value_parser = values::days)]
    pub horizon: u32,

    /// Progress bar on stderr (shown only on a terminal).
    #[arg(long, value_enum, default_value = "auto")]
    pub progress: ProgressMode,
}

/// Arguments of `eniplan forecast`.
#[derive(Debug, Args)]
pub struct ForecastArgs {
    #[command(flatten)]
    pub spec: SpecOptions,

    /// Write a picture: addresses over time per subnet with the exhaustion point (SVG).
    #[arg(long, value_name = "FILE")]
    pub plot: Option<std::path::PathBuf>,

    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value = "table")]
    pub output: TableOutput,
}

/// Arguments of `eniplan subnets`.
#[derive(Debug, Args)]
pub struct SubnetsArgs {
    /// The cluster spec (not needed with --live and --subnet).
    #[arg(value_name = "SPEC", required_unless_present = "live")]
    pub spec: Option<std::path::PathBuf>,

    /// Only these subnets (ids; repeatable or comma-separated). With --live and no SPEC, the
    /// subnets to read.
    #[arg(long, value_name = "ID", value_delimiter = ',')]
    pub subnet: Vec<String>,

    /// Read the subnets from EC2 instead of the spec (credentials from the AWS SDK's default
    /// chain).
    #[arg(long)]
    pub live: bool,

    /// Where --live reads EC2.
    #[command(flatten)]
    pub ec2: Ec2Args,

    /// ENIs listed as drain candidates per subnet.
    #[arg(long, value_name = "N", default_value_t = 5)]
    pub top: usize,

    /// Print the block map (one character per /28) in table output [default: for subnets of
    /// 1024 blocks (/18) or fewer].
    #[arg(long, conflicts_with = "no_map")]
    pub map: bool,

    /// Do not print the block map.
    #[arg(long)]
    pub no_map: bool,

    /// Write a picture of the block maps (SVG).
    #[arg(long, value_name = "FILE")]
    pub plot: Option<std::path::PathBuf>,

    /// Progress bar on stderr (shown only on a terminal).
    #[arg(long, value_enum, default_value = "auto")]
    pub progress: ProgressMode,

    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value = "table")]
    pub output: TableOutput,
}

/// `eniplan layout --format` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LayoutFormat {
    /// ENIConfig manifests and the ipamd settings.
    Yaml,
    /// Terraform (HCL) for the subnets.
    Terraform,
    /// The plan as JSON.
    Json,
}

/// Arguments of `eniplan layout`.
#[derive(Debug, Args)]
pub struct LayoutArgs {
    /// The cluster spec.
    #[arg(value_name = "SPEC")]
    pub spec: std::path::PathBuf,

    /// The CIDR to carve into pod subnets (a VPC secondary CIDR, e.g. 100.64.0.0/16).
    #[arg(long, value_name = "CIDR", value_parser = values::cidr)]
    pub cidr: ipnetwork::Ipv4Network,

    /// AZs to create pod subnets in [default: every AZ a node group runs in].
    #[arg(long, value_name = "AZ", value_delimiter = ',')]
    pub azs: Vec<String>,

    /// Room over the peak demand.
    #[arg(long, value_name = "PERCENT", default_value = "30%", value_parser = values::percent)]
    pub headroom: f64,

    /// Security groups for the ENIConfigs (repeatable) [default: none, so the node's].
    #[arg(long = "security-group", value_name = "SG")]
    pub security_groups: Vec<String>,

    /// What to print.
    #[arg(long, value_enum, default_value = "yaml")]
    pub format: LayoutFormat,
}

/// Arguments of `eniplan api-budget`.
#[derive(Debug, Args)]
pub struct ApiBudgetArgs {
    /// The cluster spec.
    #[arg(value_name = "SPEC")]
    pub spec: std::path::PathBuf,

    /// New nodes in the wave (a scale-up, or the replacements of a recycle).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub scale_up: u32,

    /// Only this node group [default: every group, in proportion to its size].
    #[arg(long, value_name = "NAME")]
    pub node_group: Option<String>,

    /// Launch the nodes in batches of N (a recycle wave) [default: all at once].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub batch: Option<u32>,

    /// Time between batches.
    #[arg(
        long,
        value_name = "DURATION",
        default_value = "60s",
        value_parser = values::duration,
        requires = "batch"
    )]
    pub interval: std::time::Duration,

    /// Time one EC2 call takes.
    #[arg(long, value_name = "MS", default_value_t = 200)]
    pub latency_ms: u64,

    /// Share of each bucket's refill this cluster may use (other callers share the account).
    #[arg(long, value_name = "PERCENT", default_value = "100%", value_parser = values::share)]
    pub share: f64,

    /// Progress bar on stderr (shown only on a terminal).
    #[arg(long, value_enum, default_value = "auto")]
    pub progress: ProgressMode,

    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value = "table")]
    pub output: TableOutput,
}

/// `eniplan report --format` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    /// Markdown (fits a GitHub job summary: `>> $GITHUB_STEP_SUMMARY`).
    Markdown,
    /// JSON: the checks and the whole forecast.
    Json,
    /// JUnit XML: one test case per check.
    Junit,
}

/// Arguments of `eniplan report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    #[command(flatten)]
    pub spec: SpecOptions,

    /// What to print.
    #[arg(long, value_enum, default_value = "markdown")]
    pub format: ReportFormat,

    /// Fail when a subnet keeps less than this share of its addresses free at peak.
    #[arg(long, value_name = "PERCENT", value_parser = values::percent)]
    pub fail_under_headroom: Option<f64>,

    /// Fail when a subnet runs out within this time under the growth rates.
    #[arg(long, value_name = "DAYS", value_parser = values::days)]
    pub fail_if_exhausted_within: Option<u32>,

    /// Fail when a subnet's free /28s drop below N during the churn window.
    #[arg(long, value_name = "N")]
    pub fail_under_free_blocks: Option<u32>,

    /// Fail when a prefix request finds no free /28 although addresses remain.
    #[arg(long)]
    pub fail_if_fragmented: bool,

    /// Fail when a node cannot give every pod of its density an address.
    #[arg(long)]
    pub fail_if_unserved: bool,

    /// Fail when a node group's peak does not fit its subnets.
    #[arg(long)]
    pub fail_if_over_capacity: bool,
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
