//! The cluster spec: the file a platform team keeps in git to describe a cluster's address
//! space (VPC CIDRs, subnets and what already uses them), its node groups (instance types,
//! node counts, AZ spread, VPC CNI settings by their variable names) and its pod demand
//! (density, growth, churn). [`parse`] reads the YAML (or JSON, a subset of YAML) and
//! [`validate`] checks everything at once, naming each problem by its location:
//!
//! ```
//! let text = r#"
//! vpc_cidrs: [10.0.0.0/16]
//! subnets:
//!   - { id: subnet-a, cidr: 10.0.0.0/19, az: eu-west-1a }
//! node_groups:
//!   - name: general
//!     instance_types: [m5.lrge]
//!     nodes: 10
//!     pods: { per_node: 20 }
//! "#;
//! let err = capacity::spec::load(text).unwrap_err().to_string();
//! assert!(err.contains(r#"node_groups[0].instance_types[0]: unknown instance type "m5.lrge"; did you mean m5.large?"#), "{err}");
//! ```
//!
//! The JSON Schema of the file is [`schema_json`] (committed as `docs/cluster-spec.schema.json`).

use std::collections::{BTreeMap, BTreeSet};

use ipnetwork::Ipv4Network;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result, SpecIssue};
use planner::catalogue::{self, InstanceLimits};
use planner::max_pods::{self, AddressMode};
use planner::pool::{PoolConfig, VARIABLES};
use planner::subnet::Subnet;

/// The file as written. See `docs/planning.md` for a worked example of every field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "eniplan cluster spec")]
pub struct SpecFile {
    /// A name for reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    /// The VPC's IPv4 CIDR blocks, primary and secondary (e.g. `10.0.0.0/16`, `100.64.0.0/16`).
    pub vpc_cidrs: Vec<String>,
    /// The subnets nodes and pods use.
    pub subnets: Vec<SubnetSpec>,
    /// The node groups (managed node groups, Karpenter node pools, ASGs).
    pub node_groups: Vec<NodeGroupSpec>,
    /// Seed of the EC2-like random address placement (default 1). The same spec and seed give
    /// the same forecast.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
}

/// One subnet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SubnetSpec {
    /// Subnet id (`subnet-0abc…`) or any unique name.
    pub id: String,
    /// IPv4 CIDR, /16 to /28, inside one of `vpc_cidrs`.
    pub cidr: String,
    /// Availability zone (`eu-west-1a`).
    pub az: String,
    /// Tags (informational; `kubernetes.io/role/cni` is shown in reports).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    /// Addresses already used by others (other instances, load balancers, endpoints), placed
    /// at random like EC2 places them. Use `taken` when you know the ranges.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub used: Option<u32>,
    /// Ranges (CIDRs inside the subnet) held by others or by a subnet CIDR reservation.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub taken: Vec<String>,
}

/// An instance type, alone or with a weight (the share of nodes it gets).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(
    untagged,
    expecting = "an instance type such as m5.large, or {type: m5.large, weight: 2}"
)]
pub enum InstanceTypeEntry {
    /// Just the name (weight 1).
    Name(String),
    /// A name and a weight.
    Weighted {
        /// Instance type, e.g. `m5.large`.
        #[serde(rename = "type")]
        name: String,
        /// Relative share of the group's nodes (at least 1).
        weight: u32,
    },
}

/// How many nodes: a fixed count, or an autoscaling range.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(
    untagged,
    expecting = "a node count such as 10, or {min: 3, max: 50, current: 10}"
)]
pub enum NodeCount {
    /// Always this many.
    Fixed(u32),
    /// An autoscaling range: `current` (default `min`) now, `max` at peak.
    Range {
        /// Fewest nodes.
        min: u32,
        /// Most nodes: the peak the forecast checks.
        max: u32,
        /// Nodes today (default: `min`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        current: Option<u32>,
    },
}

/// A VPC CNI variable's value as YAML writes it: `5`, `true` or `"5"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged, expecting = "a VPC CNI value: a number, true/false, or text")]
pub enum CniValue {
    /// A boolean.
    Bool(bool),
    /// A whole number.
    Int(u64),
    /// Text, as in an env file.
    Text(String),
}

impl CniValue {
    /// The value as the VPC CNI reads it from its environment.
    pub fn as_env(&self) -> String {
        match self {
            CniValue::Bool(b) => b.to_string(),
            CniValue::Int(n) => n.to_string(),
            CniValue::Text(s) => s.clone(),
        }
    }
}

/// One node group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NodeGroupSpec {
    /// Unique name.
    pub name: String,
    /// Instance types, optionally weighted (`[m5.large, {type: m5.xlarge, weight: 2}]`).
    pub instance_types: Vec<InstanceTypeEntry>,
    /// Node count: `10` or `{min: 3, max: 50, current: 10}`.
    pub nodes: NodeCount,
    /// AZs the nodes spread over evenly (default: the AZs of `subnets`, else of every subnet).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub azs: Vec<String>,
    /// The node subnets (default: every subnet in `azs` that is no group's pod subnet).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subnets: Vec<String>,
    /// Custom networking: the ENIConfig subnet of each AZ (AZ → subnet id). Needs
    /// `AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG: true`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pod_subnets: BTreeMap<String, String>,
    /// VPC CNI settings by variable name (`WARM_ENI_TARGET`, `WARM_IP_TARGET`,
    /// `MINIMUM_IP_TARGET`, `WARM_PREFIX_TARGET`, `ENABLE_PREFIX_DELEGATION`, `MAX_ENI`,
    /// `AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG`, `ENABLE_POD_ENI`, `IP_COOLDOWN_PERIOD`, …).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub cni: BTreeMap<String, CniValue>,
    /// The kubelet's max pods (default: the EKS recommended value for the type and mode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_pods: Option<u32>,
    /// Pod demand.
    pub pods: PodDemand,
}

/// Pods per node, and how demand moves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PodDemand {
    /// Pods per node that need a VPC address (host-network pods excluded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_node: Option<u32>,
    /// Or a distribution of densities over the nodes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub distribution: Vec<DensityShare>,
    /// Node-count growth, percent per month (30 days), compounded.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub growth_percent_per_month: f64,
    /// Pods replaced (deleted and recreated) per hour, percent of the node's pods.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub churn_percent_per_hour: f64,
    /// Nodes replaced (terminated and relaunched) per day, percent of the group.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub node_churn_percent_per_day: f64,
    /// Percent of pods with their own security groups (branch ENIs; needs `ENABLE_POD_ENI`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub security_group_pods_percent: f64,
}

#[expect(
    clippy::trivially_copy_pass_by_ref,
    reason = "serde's skip_serializing_if passes a reference"
)]
fn is_zero(v: &f64) -> bool {
    *v == 0.0
}

/// One density of a distribution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DensityShare {
    /// Pods per node.
    pub pods: u32,
    /// Relative share of nodes (at least 1).
    pub weight: u32,
}

// ----- the validated model ------------------------------------------------------------------

/// A validated cluster.
#[derive(Debug, Clone, PartialEq)]
pub struct Cluster {
    /// Name for reports (`cluster` or "cluster").
    pub name: String,
    /// VPC CIDR blocks.
    pub vpc_cidrs: Vec<Ipv4Network>,
    /// Subnets, in file order.
    pub subnets: Vec<SubnetDef>,
    /// Node groups, in file order.
    pub groups: Vec<Group>,
    /// Placement seed.
    pub seed: u64,
    /// Things worth knowing that are not errors.
    pub notes: Vec<String>,
}

/// A validated subnet.
#[derive(Debug, Clone, PartialEq)]
pub struct SubnetDef {
    /// Id.
    pub id: String,
    /// CIDR.
    pub cidr: Ipv4Network,
    /// AZ.
    pub az: String,
    /// Tags.
    pub tags: BTreeMap<String, String>,
    /// Addresses used by others, placed at random.
    pub used: u32,
    /// Ranges held by others.
    pub taken: Vec<Ipv4Network>,
}

impl SubnetDef {
    /// The subnet's address space with `taken` occupied (not yet `used`: that is placed with the
    /// cluster's seed by the forecast).
    pub fn model(&self) -> Result<Subnet> {
        let mut s = Subnet::new(self.cidr)?;
        for t in &self.taken {
            s.occupy_range(*t)?;
        }
        Ok(s)
    }
}

/// One instance type of a group and its settings.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupType {
    /// Catalogue entry.
    pub limits: &'static InstanceLimits,
    /// Share of the group's nodes.
    pub weight: u32,
    /// Pool settings for this type (max pods filled in).
    pub config: PoolConfig,
    /// The mode the pool runs in on this type.
    pub mode: AddressMode,
}

/// A validated node group.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    /// Name.
    pub name: String,
    /// Instance types.
    pub types: Vec<GroupType>,
    /// Nodes now.
    pub current: u32,
    /// Fewest nodes.
    pub min: u32,
    /// Most nodes (the peak).
    pub max: u32,
    /// AZs, in order.
    pub azs: Vec<String>,
    /// Node subnets (indices into [`Cluster::subnets`]), grouped by AZ in `azs` order.
    pub node_subnets: BTreeMap<String, Vec<usize>>,
    /// Custom networking: pod subnet index per AZ.
    pub pod_subnets: BTreeMap<String, usize>,
    /// Custom networking on.
    pub custom_networking: bool,
    /// The variables as given (for reports).
    pub vars: BTreeMap<String, String>,
    /// Densities (pods per node) and their weights.
    pub densities: Vec<(u32, u32)>,
    /// Growth per month as a fraction.
    pub growth_per_month: f64,
    /// Pod churn per hour as a fraction.
    pub churn_per_hour: f64,
    /// Node churn per day as a fraction.
    pub node_churn_per_day: f64,
    /// Share of pods on branch ENIs, as a fraction.
    pub sgp_share: f64,
}

/// Parses a spec without validating it.
pub fn parse(text: &str) -> Result<SpecFile> {
    serde_norway::from_str(text).map_err(|e| Error::InvalidSpec {
        issues: vec![SpecIssue {
            path: String::new(),
            message: e.to_string(),
        }],
    })
}

/// Parses and validates.
pub fn load(text: &str) -> Result<Cluster> {
    validate(&parse(text)?)
}

/// The JSON Schema of [`SpecFile`], pretty-printed with a trailing newline.
pub fn schema_json() -> String {
    let schema = schemars::schema_for!(SpecFile);
    let mut s = serde_json::to_string_pretty(&schema).unwrap_or_default();
    s.push('\n');
    s
}

struct Issues(Vec<SpecIssue>);

impl Issues {
    fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(SpecIssue {
            path: path.into(),
            message: message.into(),
        });
    }
}

fn parse_cidr(text: &str) -> std::result::Result<Ipv4Network, String> {
    let net: Ipv4Network = text
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not an IPv4 CIDR such as 10.0.0.0/19"))?;
    if net.ip() != net.network() {
        return Err(format!(
            "{text} has host bits set; did you mean {}/{}?",
            net.network(),
            net.prefix()
        ));
    }
    Ok(net)
}

fn percent(issues: &mut Issues, path: &str, v: f64, max: f64) -> f64 {
    if !v.is_finite() || v < 0.0 || v > max {
        issues.push(path, format!("{v} is not a percentage between 0 and {max}"));
        0.0
    } else {
        v / 100.0
    }
}

/// Checks a parsed spec and builds the [`Cluster`]; every problem is reported, each with its
/// location, in one [`Error::InvalidSpec`].
#[expect(
    clippy::too_many_lines,
    reason = "one pass over the file, in file order"
)]
pub fn validate(spec: &SpecFile) -> Result<Cluster> {
    let mut issues = Issues(Vec::new());
    let mut notes = Vec::new();

    // VPC CIDRs.
    let mut vpc_cidrs = Vec::new();
    if spec.vpc_cidrs.is_empty() {
        issues.push("vpc_cidrs", "at least one CIDR is needed");
    }
    for (i, c) in spec.vpc_cidrs.iter().enumerate() {
        let path = format!("vpc_cidrs[{i}]");
        match parse_cidr(c) {
            Ok(net) if !(16..=28).contains(&net.prefix()) => issues.push(
                path,
                format!("{net}: a VPC CIDR block is /16 to /28 (AWS limit)"),
            ),
            Ok(net) => {
                if let Some(other) = vpc_cidrs.iter().find(|o: &&Ipv4Network| o.overlaps(net)) {
                    issues.push(path, format!("{net} overlaps {other}"));
                } else {
                    vpc_cidrs.push(net);
                }
            }
            Err(m) => issues.push(path, m),
        }
    }

    // Subnets.
    let mut subnets: Vec<SubnetDef> = Vec::new();
    let mut by_id: BTreeMap<&str, usize> = BTreeMap::new();
    if spec.subnets.is_empty() {
        issues.push("subnets", "at least one subnet is needed");
    }
    for (i, s) in spec.subnets.iter().enumerate() {
        let path = format!("subnets[{i}]");
        if s.id.trim().is_empty() {
            issues.push(format!("{path}.id"), "must not be empty");
        } else if by_id.contains_key(s.id.as_str()) {
            issues.push(
                format!("{path}.id"),
                format!("{:?} is used by another subnet too", s.id),
            );
        }
        if s.az.trim().is_empty() {
            issues.push(format!("{path}.az"), "must not be empty");
        }
        let cidr = match parse_cidr(&s.cidr) {
            Ok(net) => match Subnet::new(net) {
                Ok(_) => Some(net),
                Err(planner::Error::InvalidSubnetCidr { reason, .. }) => {
                    issues.push(format!("{path}.cidr"), format!("{net}: {reason}"));
                    None
                }
                Err(e) => {
                    issues.push(format!("{path}.cidr"), e.to_string());
                    None
                }
            },
            Err(m) => {
                issues.push(format!("{path}.cidr"), m);
                None
            }
        };
        let Some(cidr) = cidr else { continue };
        if !vpc_cidrs.is_empty() && !vpc_cidrs.iter().any(|v| v.is_supernet_of(cidr)) {
            let list: Vec<String> = vpc_cidrs.iter().map(ToString::to_string).collect();
            issues.push(
                format!("{path}.cidr"),
                format!(
                    "{cidr} is not inside a VPC CIDR ({}); add its block to vpc_cidrs",
                    list.join(", ")
                ),
            );
        }
        if let Some(other) = subnets.iter().find(|o| o.cidr.overlaps(cidr)) {
            issues.push(
                format!("{path}.cidr"),
                format!("{cidr} overlaps subnet {} ({})", other.id, other.cidr),
            );
        }
        let mut taken = Vec::new();
        for (j, t) in s.taken.iter().enumerate() {
            match parse_cidr(t) {
                Ok(net) if cidr.is_supernet_of(net) => taken.push(net),
                Ok(net) => issues.push(
                    format!("{path}.taken[{j}]"),
                    format!("{net} is not inside the subnet {cidr}"),
                ),
                Err(m) => issues.push(format!("{path}.taken[{j}]"), m),
            }
        }
        let def = SubnetDef {
            id: s.id.clone(),
            cidr,
            az: s.az.clone(),
            tags: s.tags.clone(),
            used: s.used.unwrap_or(0),
            taken,
        };
        if let Ok(model) = def.model()
            && def.used > model.free_addresses()
        {
            issues.push(
                format!("{path}.used"),
                format!(
                    "{} addresses cannot be used in {cidr}: only {} are free (usable minus taken)",
                    def.used,
                    model.free_addresses()
                ),
            );
        }
        by_id.insert(&s.id, subnets.len());
        subnets.push(def);
    }
    let all_azs: Vec<String> = {
        let mut seen = BTreeSet::new();
        subnets
            .iter()
            .filter(|s| seen.insert(s.az.clone()))
            .map(|s| s.az.clone())
            .collect()
    };
    let pod_subnet_ids: BTreeSet<&str> = spec
        .node_groups
        .iter()
        .flat_map(|g| g.pod_subnets.values().map(String::as_str))
        .collect();

    // Node groups.
    let mut groups = Vec::new();
    let mut names = BTreeSet::new();
    if spec.node_groups.is_empty() {
        issues.push("node_groups", "at least one node group is needed");
    }
    for (gi, g) in spec.node_groups.iter().enumerate() {
        let path = format!("node_groups[{gi}]");
        if g.name.trim().is_empty() {
            issues.push(format!("{path}.name"), "must not be empty");
        } else if !names.insert(g.name.clone()) {
            issues.push(
                format!("{path}.name"),
                format!("{:?} is used by another node group too", g.name),
            );
        }

        // CNI settings.
        let mut vars = BTreeMap::new();
        let mut vars_ok = true;
        for (k, v) in &g.cni {
            if VARIABLES.iter().any(|(name, _, _)| name == k) {
                vars.insert(k.clone(), v.as_env());
            } else {
                vars_ok = false;
                let close = VARIABLES
                    .iter()
                    .map(|(n, _, _)| (strsim::damerau_levenshtein(n, k), *n))
                    .min()
                    .filter(|(d, _)| *d <= 3)
                    .map_or_else(
                        || "see docs/configuration.md for the variables eniplan reads".to_owned(),
                        |(_, n)| format!("did you mean {n}?"),
                    );
                issues.push(
                    format!("{path}.cni.{k}"),
                    format!("unknown VPC CNI variable; {close}"),
                );
            }
        }
        let base_config = match PoolConfig::from_vars(&vars) {
            Ok(c) => Some(c),
            Err(planner::Error::InvalidSetting {
                name,
                value,
                expected,
            }) => {
                vars_ok = false;
                issues.push(
                    format!("{path}.cni.{name}"),
                    format!("{value:?} is not valid: expected {expected}"),
                );
                None
            }
            Err(e) => {
                vars_ok = false;
                issues.push(format!("{path}.cni"), e.to_string());
                None
            }
        };
        let custom_networking = base_config.as_ref().is_some_and(|c| c.custom_networking);

        // Instance types.
        let mut types = Vec::new();
        if g.instance_types.is_empty() {
            issues.push(
                format!("{path}.instance_types"),
                "at least one instance type is needed",
            );
        }
        for (ti, t) in g.instance_types.iter().enumerate() {
            let tpath = format!("{path}.instance_types[{ti}]");
            let (name, weight) = match t {
                InstanceTypeEntry::Name(n) => (n.as_str(), 1),
                InstanceTypeEntry::Weighted { name, weight } => (name.as_str(), *weight),
            };
            if weight == 0 {
                issues.push(format!("{tpath}.weight"), "must be at least 1");
            }
            match catalogue::lookup(name) {
                Ok(limits) => {
                    if let Some(base) = &base_config {
                        let options = max_pods::Options {
                            prefix_delegation: base.prefix_delegation,
                            custom_networking: base.custom_networking,
                            security_groups_for_pods: base.pod_eni,
                            max_eni: base.max_eni.and_then(std::num::NonZeroU32::new),
                            ..max_pods::Options::default()
                        };
                        let mp = max_pods::max_pods(limits, &options);
                        if mp.enis_for_pods == 0 {
                            issues.push(
                                tpath.clone(),
                                format!(
                                    "{}: no ENI is left to carry pod addresses with these settings (custom networking, MAX_ENI, trunk); pods would never start",
                                    limits.name
                                ),
                            );
                        }
                        let config = PoolConfig {
                            max_pods: g.max_pods.unwrap_or(mp.recommended_max_pods),
                            ..base.clone()
                        };
                        if base.prefix_delegation && mp.mode == AddressMode::SecondaryIp {
                            notes.push(format!(
                                "{tpath}: {} cannot use prefix delegation ({}); its nodes use secondary IPs",
                                limits.name, limits.hypervisor
                            ));
                        }
                        types.push(GroupType {
                            limits,
                            weight: weight.max(1),
                            config,
                            mode: mp.mode,
                        });
                    }
                }
                Err(e) => issues.push(tpath, e.to_string()),
            }
        }

        // Node counts.
        let (min, max, current) = match g.nodes {
            NodeCount::Fixed(n) => (n, n, n),
            NodeCount::Range { min, max, current } => {
                let current = current.unwrap_or(min);
                if min > max {
                    issues.push(
                        format!("{path}.nodes"),
                        format!("min {min} is above max {max}"),
                    );
                } else if !(min..=max).contains(&current) {
                    issues.push(
                        format!("{path}.nodes.current"),
                        format!("{current} is outside min {min} to max {max}"),
                    );
                }
                (min, max, current)
            }
        };
        if max == 0 {
            issues.push(
                format!("{path}.nodes"),
                "the group needs at least one node at peak",
            );
        }
        if max > 1_000_000 {
            issues.push(
                format!("{path}.nodes"),
                format!("{max} nodes is beyond what eniplan forecasts (at most 1,000,000)"),
            );
        }

        // Subnets and AZs.
        let mut explicit = Vec::new();
        for (si, id) in g.subnets.iter().enumerate() {
            match by_id.get(id.as_str()) {
                Some(&i) => explicit.push(i),
                None => issues.push(
                    format!("{path}.subnets[{si}]"),
                    format!("no subnet has id {id:?}"),
                ),
            }
        }
        let azs: Vec<String> = if !g.azs.is_empty() {
            g.azs.clone()
        } else if !explicit.is_empty() {
            let mut seen = BTreeSet::new();
            explicit
                .iter()
                .map(|&i| subnets[i].az.clone())
                .filter(|az| seen.insert(az.clone()))
                .collect()
        } else {
            all_azs.clone()
        };
        let mut node_subnets: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for (ai, az) in azs.iter().enumerate() {
            let chosen: Vec<usize> = if explicit.is_empty() {
                subnets
                    .iter()
                    .enumerate()
                    .filter(|(_, s)| &s.az == az && !pod_subnet_ids.contains(s.id.as_str()))
                    .map(|(i, _)| i)
                    .collect()
            } else {
                explicit
                    .iter()
                    .copied()
                    .filter(|&i| &subnets[i].az == az)
                    .collect()
            };
            if chosen.is_empty() {
                let p = if g.azs.is_empty() {
                    format!("{path}.azs")
                } else {
                    format!("{path}.azs[{ai}]")
                };
                issues.push(p, format!("no node subnet in AZ {az:?} for this group"));
            }
            node_subnets.insert(az.clone(), chosen);
        }
        for &i in &explicit {
            if !azs.contains(&subnets[i].az) {
                issues.push(
                    format!("{path}.subnets"),
                    format!(
                        "subnet {} is in {}, which is not one of the group's azs",
                        subnets[i].id, subnets[i].az
                    ),
                );
            }
        }
        let mut pod_subnets = BTreeMap::new();
        for (az, id) in &g.pod_subnets {
            let p = format!("{path}.pod_subnets.{az}");
            match by_id.get(id.as_str()) {
                Some(&i) => {
                    if &subnets[i].az == az {
                        pod_subnets.insert(az.clone(), i);
                    } else {
                        issues.push(
                            p,
                            format!(
                                "subnet {id} is in {}, not {az}: an ENIConfig subnet must be in the node's AZ",
                                subnets[i].az
                            ),
                        );
                    }
                }
                None => issues.push(p, format!("no subnet has id {id:?}")),
            }
        }
        if vars_ok && custom_networking {
            for az in &azs {
                if !g.pod_subnets.contains_key(az) {
                    issues.push(
                        format!("{path}.pod_subnets"),
                        format!(
                            "custom networking is on but AZ {az} has no pod subnet (its ENIConfig); add `{az}: <subnet id>`"
                        ),
                    );
                }
            }
        } else if vars_ok && !g.pod_subnets.is_empty() {
            issues.push(
                format!("{path}.pod_subnets"),
                "pod subnets are used only with custom networking; set AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG: true in cni",
            );
        }

        // Pod demand.
        let d = &g.pods;
        let densities: Vec<(u32, u32)> = match (d.per_node, d.distribution.is_empty()) {
            (Some(n), true) => vec![(n, 1)],
            (None, false) => {
                for (di, s) in d.distribution.iter().enumerate() {
                    if s.weight == 0 {
                        issues.push(
                            format!("{path}.pods.distribution[{di}].weight"),
                            "must be at least 1",
                        );
                    }
                }
                d.distribution
                    .iter()
                    .map(|s| (s.pods, s.weight.max(1)))
                    .collect()
            }
            (Some(_), false) => {
                issues.push(
                    format!("{path}.pods"),
                    "give per_node or distribution, not both",
                );
                Vec::new()
            }
            (None, true) => {
                issues.push(
                    format!("{path}.pods"),
                    "give per_node (e.g. `per_node: 30`) or a distribution",
                );
                Vec::new()
            }
        };
        let growth = percent(
            &mut issues,
            &format!("{path}.pods.growth_percent_per_month"),
            d.growth_percent_per_month,
            1000.0,
        );
        let churn = percent(
            &mut issues,
            &format!("{path}.pods.churn_percent_per_hour"),
            d.churn_percent_per_hour,
            1000.0,
        );
        let node_churn = percent(
            &mut issues,
            &format!("{path}.pods.node_churn_percent_per_day"),
            d.node_churn_percent_per_day,
            100.0,
        );
        let sgp = percent(
            &mut issues,
            &format!("{path}.pods.security_group_pods_percent"),
            d.security_group_pods_percent,
            100.0,
        );
        if sgp > 0.0 && base_config.as_ref().is_some_and(|c| !c.pod_eni) {
            issues.push(
                format!("{path}.pods.security_group_pods_percent"),
                "pods with their own security groups need ENABLE_POD_ENI: true in cni",
            );
        }
        for t in &types {
            // Pods on branch ENIs (security groups for pods) need no pool address.
            let most_pods = densities.iter().map(|(p, _)| *p).max().unwrap_or(0);
            let most = if t.config.pod_eni && t.limits.trunking {
                crate::footprint::round_u32(f64::from(most_pods) * (1.0 - sgp))
            } else {
                most_pods
            };
            let cap = max_pods::max_pods(
                t.limits,
                &max_pods::Options {
                    prefix_delegation: t.config.prefix_delegation,
                    custom_networking: t.config.custom_networking,
                    security_groups_for_pods: t.config.pod_eni,
                    max_eni: t.config.max_eni.and_then(std::num::NonZeroU32::new),
                    ..max_pods::Options::default()
                },
            )
            .pod_addresses
            .min(t.config.max_pods);
            if most > cap {
                notes.push(format!(
                    "{path}: {most} pods per node need pool addresses, more than a {} holds ({cap} pod addresses, max pods {}); the rest are reported as unserved",
                    t.limits.name, t.config.max_pods
                ));
            }
        }

        groups.push(Group {
            name: g.name.clone(),
            types,
            current,
            min,
            max,
            azs,
            node_subnets,
            pod_subnets,
            custom_networking,
            vars,
            densities,
            growth_per_month: growth,
            churn_per_hour: churn,
            node_churn_per_day: node_churn,
            sgp_share: sgp,
        });
    }

    if !issues.0.is_empty() {
        return Err(Error::InvalidSpec { issues: issues.0 });
    }
    Ok(Cluster {
        name: spec.cluster.clone().unwrap_or_else(|| "cluster".to_owned()),
        vpc_cidrs,
        subnets,
        groups,
        seed: spec.seed.unwrap_or(1),
        notes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r"
cluster: demo
vpc_cidrs: [10.0.0.0/16, 100.64.0.0/16]
subnets:
  - { id: subnet-a, cidr: 10.0.0.0/19, az: eu-west-1a, used: 10, taken: [10.0.1.0/24] }
  - { id: subnet-b, cidr: 10.0.32.0/19, az: eu-west-1b }
  - { id: pods-a, cidr: 100.64.0.0/17, az: eu-west-1a }
  - { id: pods-b, cidr: 100.64.128.0/17, az: eu-west-1b }
node_groups:
  - name: general
    instance_types: [m5.large, { type: m5.xlarge, weight: 2 }]
    nodes: { min: 3, max: 30, current: 6 }
    cni: { WARM_IP_TARGET: 5, ENABLE_PREFIX_DELEGATION: false }
    pods: { per_node: 20, growth_percent_per_month: 10 }
  - name: cn
    instance_types: [c5.xlarge]
    nodes: 4
    pod_subnets: { eu-west-1a: pods-a, eu-west-1b: pods-b }
    cni: { AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG: true }
    pods: { distribution: [{ pods: 10, weight: 1 }, { pods: 30, weight: 3 }] }
";

    #[test]
    fn good_spec_to_cluster_with_defaults_filled_in() {
        let c = load(GOOD).unwrap();
        assert_eq!((c.name.as_str(), c.seed, c.subnets.len()), ("demo", 1, 4));
        let g = &c.groups[0];
        assert_eq!((g.min, g.current, g.max), (3, 6, 30));
        assert_eq!(g.azs, ["eu-west-1a", "eu-west-1b"]);
        // Pod subnets of another group are not node subnets.
        assert_eq!(g.node_subnets["eu-west-1a"], [0]);
        assert_eq!(g.types[1].weight, 2);
        assert_eq!(g.types[0].config.warm_ip_target, 5);
        assert_eq!(g.types[0].config.max_pods, 29);
        assert!((g.growth_per_month - 0.1).abs() < 1e-12);
        let cn = &c.groups[1];
        assert!(cn.custom_networking);
        assert_eq!(cn.pod_subnets["eu-west-1b"], 3);
        assert_eq!(cn.densities, [(10, 1), (30, 3)]);
        assert_eq!(c.subnets[0].taken[0].to_string(), "10.0.1.0/24");
    }

    #[test]
    fn every_error_reported_with_its_location() {
        let bad = r"
vpc_cidrs: [10.0.0.0/16, 10.0.0.0/8]
subnets:
  - { id: a, cidr: 10.0.0.0/19, az: x, taken: [10.1.0.0/24] }
  - { id: a, cidr: 10.0.16.0/20, az: x }
  - { id: c, cidr: 192.168.0.0/24, az: y }
node_groups:
  - name: g
    instance_types: [m5.large, m5.lrge]
    nodes: { min: 5, max: 2 }
    cni: { WARM_IP_TAGRET: 5, WARM_ENI_TARGET: lots }
    pod_subnets: { x: a }
    pods: { per_node: 10, distribution: [{ pods: 3, weight: 1 }] }
";
        let err = load(bad).unwrap_err();
        let text = err.to_string();
        for expected in [
            "vpc_cidrs[1]: 10.0.0.0/8: a VPC CIDR block is /16 to /28",
            "subnets[0].taken[0]: 10.1.0.0/24 is not inside the subnet 10.0.0.0/19",
            "subnets[1].id: \"a\" is used by another subnet too",
            "subnets[1].cidr: 10.0.16.0/20 overlaps subnet a (10.0.0.0/19)",
            "subnets[2].cidr: 192.168.0.0/24 is not inside a VPC CIDR (10.0.0.0/16)",
            "node_groups[0].instance_types[1]: unknown instance type \"m5.lrge\"; did you mean m5.large?",
            "node_groups[0].nodes: min 5 is above max 2",
            "node_groups[0].cni.WARM_IP_TAGRET: unknown VPC CNI variable; did you mean WARM_IP_TARGET?",
            "node_groups[0].pods: give per_node or distribution, not both",
        ] {
            assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
        }
        let Error::InvalidSpec { issues } = err else {
            panic!("{err:?}")
        };
        assert!(issues.len() >= 9, "{issues:?}");
    }

    #[test]
    fn bad_cni_value_to_variable_path() {
        let text = GOOD.replace("WARM_IP_TARGET: 5", "WARM_IP_TARGET: five");
        let err = load(&text).unwrap_err().to_string();
        assert!(
            err.contains(
                "node_groups[0].cni.WARM_IP_TARGET: \"five\" is not valid: expected a whole number"
            ),
            "{err}"
        );
    }

    #[test]
    fn custom_networking_without_pod_subnet_to_error_naming_the_az() {
        let text = GOOD.replace("eu-west-1a: pods-a, ", "");
        let err = load(&text).unwrap_err().to_string();
        assert!(
            err.contains("node_groups[1].pod_subnets: custom networking is on but AZ eu-west-1a has no pod subnet"),
            "{err}"
        );
    }

    #[test]
    fn yaml_type_error_to_path_and_line() {
        let text = GOOD.replace("nodes: 4", "nodes: four");
        let err = load(&text).unwrap_err().to_string();
        assert!(
            err.contains("node_groups[1]: a node count such as 10, or {min: 3, max: 50, current: 10} at line 15"),
            "{err}"
        );
        let err = load("vpc_cidrs: [10.0.0.0/16]\nsubnet: []\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field `subnet`"), "{err}");
    }

    #[test]
    fn host_bits_to_suggested_network() {
        let text = GOOD.replace("cidr: 10.0.32.0/19", "cidr: 10.0.33.0/19");
        let err = load(&text).unwrap_err().to_string();
        assert!(
            err.contains(
                "subnets[1].cidr: 10.0.33.0/19 has host bits set; did you mean 10.0.32.0/19?"
            ),
            "{err}"
        );
    }

    #[test]
    fn schema_names_every_top_level_field() {
        let schema: serde_json::Value = serde_json::from_str(&schema_json()).unwrap();
        let props = schema["properties"].as_object().unwrap();
        for key in ["vpc_cidrs", "subnets", "node_groups", "seed", "cluster"] {
            assert!(props.contains_key(key), "{key}");
        }
    }
}
