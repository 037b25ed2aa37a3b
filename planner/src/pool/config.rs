//! Pool settings, named and parsed as the AWS VPC CNI names them, so users can switch without
//! relearning. Parsing is pure: callers pass the variables in (the daemon from its environment,
//! `eniplan simulate` from `--set` and env files).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use crate::error::{Error, Result};

/// Variables that shape the pool, with their defaults, for documentation and `--set` checks.
pub const VARIABLES: &[(&str, &str, &str)] = &[
    (
        "WARM_ENI_TARGET",
        "1",
        "secondary-IP mode: keep this many ENIs' worth of free addresses",
    ),
    (
        "WARM_IP_TARGET",
        "0 (unset)",
        "keep this many free addresses (overrides WARM_ENI_TARGET / WARM_PREFIX_TARGET)",
    ),
    (
        "MINIMUM_IP_TARGET",
        "0 (unset)",
        "hold at least this many addresses in total",
    ),
    (
        "WARM_PREFIX_TARGET",
        "0 (unset)",
        "prefix delegation: keep this many completely unused /28 prefixes",
    ),
    (
        "ENABLE_PREFIX_DELEGATION",
        "false",
        "allocate /28 prefixes instead of secondary IPs (Nitro or bare metal)",
    ),
    (
        "MAX_ENI",
        "unset",
        "use at most this many ENIs (at least 1)",
    ),
    (
        "AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG",
        "false",
        "custom networking: pods use ENIConfig subnets, never the primary ENI",
    ),
    (
        "ENABLE_POD_ENI",
        "false",
        "security groups for pods: reserve an ENI slot for the trunk ENI",
    ),
    (
        "IP_COOLDOWN_PERIOD",
        "30",
        "seconds a released address waits before it is handed out again",
    ),
    (
        "AWS_MANAGE_ENIS_NON_SCHEDULABLE",
        "false",
        "attach and free ENIs and addresses even while the node is cordoned",
    ),
    (
        "DISABLE_NETWORK_RESOURCE_PROVISIONING",
        "false",
        "never call EC2 to change ENIs or addresses; use what is attached",
    ),
    (
        "ENIPLAN_PD_FALLBACK",
        "false",
        "prefix delegation: fall back to secondary IPs when the subnet has no free /28",
    ),
    (
        "ENIPLAN_RELEASE_WARM_WHEN_UNSCHEDULABLE",
        "false",
        "a cordoned or draining node keeps no warm addresses: it hands every unused one back",
    ),
    (
        "ENIPLAN_REFERENCE_RULES",
        "false",
        "decide exactly as the AWS VPC CNI does, quirks included (for comparisons)",
    ),
];

/// Validated pool settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PoolConfig {
    /// `WARM_ENI_TARGET`.
    pub warm_eni_target: u32,
    /// `WARM_IP_TARGET` (0 = unset).
    pub warm_ip_target: u32,
    /// `MINIMUM_IP_TARGET` (0 = unset).
    pub minimum_ip_target: u32,
    /// `WARM_PREFIX_TARGET` (0 = unset).
    pub warm_prefix_target: u32,
    /// `ENABLE_PREFIX_DELEGATION` as requested (the pool falls back on unsupported types).
    pub prefix_delegation: bool,
    /// `MAX_ENI`.
    pub max_eni: Option<u32>,
    /// `AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG`.
    pub custom_networking: bool,
    /// `ENABLE_POD_ENI`.
    pub pod_eni: bool,
    /// `IP_COOLDOWN_PERIOD`.
    #[serde(with = "secs")]
    pub ip_cooldown: Duration,
    /// `DISABLE_NETWORK_RESOURCE_PROVISIONING`.
    pub disable_provisioning: bool,
    /// `AWS_MANAGE_ENIS_NON_SCHEDULABLE`.
    pub manage_enis_non_schedulable: bool,
    /// `ENIPLAN_PD_FALLBACK`.
    pub pd_fallback: bool,
    /// `ENIPLAN_RELEASE_WARM_WHEN_UNSCHEDULABLE` (VPC CNI #3263).
    pub release_warm_unschedulable: bool,
    /// Not a variable: the node is cordoned or draining and `release_warm_unschedulable` is
    /// on (set through [`super::Input::Draining`]). The warm targets are then zero: the pool
    /// holds what pods use and hands the rest back.
    #[serde(skip)]
    pub draining: bool,
    /// `ENIPLAN_REFERENCE_RULES`: the reference's decisions, quirks included: cooling addresses
    /// count as available and may be released, ENIs are freed without hysteresis, and the pool
    /// is only re-evaluated on ticks.
    pub reference_rules: bool,
    /// The node's kubelet max pods: growth stops once the pool holds this many addresses.
    pub max_pods: u32,
    /// Minimum time between two shrink batches (30 s in the reference).
    #[serde(with = "secs")]
    pub decrease_interval: Duration,
    /// Minimum age of an ENI before it may be freed (60 s).
    #[serde(with = "secs")]
    pub eni_min_lifetime: Duration,
    /// Growth pause after the subnet reported no room (120 s).
    #[serde(with = "secs")]
    pub subnet_full_backoff: Duration,
    /// Addresses the pool released are not re-adopted by reconcile for this long (60 s).
    #[serde(with = "secs")]
    pub reconcile_cooldown: Duration,
}

mod secs {
    pub fn serialize<S: serde::Serializer>(
        d: &std::time::Duration,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            warm_eni_target: 1,
            warm_ip_target: 0,
            minimum_ip_target: 0,
            warm_prefix_target: 0,
            prefix_delegation: false,
            max_eni: None,
            custom_networking: false,
            pod_eni: false,
            ip_cooldown: Duration::from_secs(30),
            disable_provisioning: false,
            manage_enis_non_schedulable: false,
            pd_fallback: false,
            release_warm_unschedulable: false,
            draining: false,
            reference_rules: false,
            max_pods: 110,
            decrease_interval: Duration::from_secs(30),
            eni_min_lifetime: Duration::from_mins(1),
            subnet_full_backoff: Duration::from_mins(2),
            reconcile_cooldown: Duration::from_mins(1),
        }
    }
}

impl PoolConfig {
    /// Whether `WARM_IP_TARGET` or `MINIMUM_IP_TARGET` is set ("IP-target mode", which overrides
    /// `WARM_ENI_TARGET` and `WARM_PREFIX_TARGET` for growing and shrinking).
    pub fn ip_targets_defined(&self) -> bool {
        self.warm_ip_target != 0 || self.minimum_ip_target != 0
    }

    /// Parses VPC CNI variables. Unset or empty variables take their defaults; every other
    /// value must parse (unlike the reference, which silently falls back, eniplan refuses a
    /// value it cannot read and names it). `max_pods` is not a variable: set it afterwards.
    ///
    /// ```
    /// use std::collections::BTreeMap;
    /// use planner::pool::PoolConfig;
    /// let vars = BTreeMap::from([("WARM_IP_TARGET".to_owned(), "5".to_owned())]);
    /// let config = PoolConfig::from_vars(&vars).unwrap();
    /// assert_eq!((config.warm_ip_target, config.warm_eni_target), (5, 1));
    /// let bad = BTreeMap::from([("WARM_IP_TARGET".to_owned(), "five".to_owned())]);
    /// assert!(PoolConfig::from_vars(&bad).unwrap_err().to_string().contains("WARM_IP_TARGET"));
    /// ```
    pub fn from_vars(vars: &BTreeMap<String, String>) -> Result<PoolConfig> {
        let get = |name: &str| vars.get(name).map(|v| v.trim()).filter(|v| !v.is_empty());
        let mut c = PoolConfig::default();
        if let Some(v) = get("WARM_ENI_TARGET") {
            c.warm_eni_target = parse_count("WARM_ENI_TARGET", v)?;
        }
        if let Some(v) = get("WARM_IP_TARGET") {
            c.warm_ip_target = parse_count("WARM_IP_TARGET", v)?;
        }
        if let Some(v) = get("MINIMUM_IP_TARGET") {
            c.minimum_ip_target = parse_count("MINIMUM_IP_TARGET", v)?;
        }
        if let Some(v) = get("WARM_PREFIX_TARGET") {
            c.warm_prefix_target = parse_count("WARM_PREFIX_TARGET", v)?;
        }
        if let Some(v) = get("ENABLE_PREFIX_DELEGATION") {
            c.prefix_delegation = parse_bool("ENABLE_PREFIX_DELEGATION", v)?;
        }
        if let Some(v) = get("MAX_ENI") {
            let n = parse_count("MAX_ENI", v)?;
            if n == 0 {
                return Err(invalid(
                    "MAX_ENI",
                    v,
                    "an integer of at least 1 (leave it unset for the instance limit)",
                ));
            }
            c.max_eni = Some(n);
        }
        if let Some(v) = get("AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG") {
            c.custom_networking = parse_bool("AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG", v)?;
        }
        if let Some(v) = get("ENABLE_POD_ENI") {
            c.pod_eni = parse_bool("ENABLE_POD_ENI", v)?;
        }
        if let Some(v) = get("IP_COOLDOWN_PERIOD") {
            c.ip_cooldown = Duration::from_secs(u64::from(parse_count("IP_COOLDOWN_PERIOD", v)?));
        }
        if let Some(v) = get("DISABLE_NETWORK_RESOURCE_PROVISIONING") {
            c.disable_provisioning = parse_bool("DISABLE_NETWORK_RESOURCE_PROVISIONING", v)?;
        }
        if let Some(v) = get("AWS_MANAGE_ENIS_NON_SCHEDULABLE") {
            c.manage_enis_non_schedulable = parse_bool("AWS_MANAGE_ENIS_NON_SCHEDULABLE", v)?;
        }
        if let Some(v) = get("ENIPLAN_REFERENCE_RULES") {
            c.reference_rules = parse_bool("ENIPLAN_REFERENCE_RULES", v)?;
        }
        if let Some(v) = get("ENIPLAN_PD_FALLBACK") {
            c.pd_fallback = parse_bool("ENIPLAN_PD_FALLBACK", v)?;
        }
        if let Some(v) = get("ENIPLAN_RELEASE_WARM_WHEN_UNSCHEDULABLE") {
            c.release_warm_unschedulable =
                parse_bool("ENIPLAN_RELEASE_WARM_WHEN_UNSCHEDULABLE", v)?;
        }
        c.validate()?;
        Ok(c)
    }

    /// Cross-variable rules. Prefix delegation needs a target to size its pool (the reference
    /// entrypoint refuses to start otherwise; it compares the values as strings, eniplan as
    /// numbers).
    pub fn validate(&self) -> Result<()> {
        if self.prefix_delegation
            && self.warm_prefix_target == 0
            && self.warm_ip_target == 0
            && self.minimum_ip_target == 0
        {
            return Err(Error::InvalidSetting {
                name: "ENABLE_PREFIX_DELEGATION".to_owned(),
                value: "true".to_owned(),
                expected: "one of WARM_PREFIX_TARGET, WARM_IP_TARGET or MINIMUM_IP_TARGET above 0 with prefix delegation (the usual choice is WARM_PREFIX_TARGET=1)".to_owned(),
            });
        }
        Ok(())
    }
}

fn invalid(name: &str, value: &str, expected: &str) -> Error {
    Error::InvalidSetting {
        name: name.to_owned(),
        value: value.to_owned(),
        expected: expected.to_owned(),
    }
}

fn parse_count(name: &str, value: &str) -> Result<u32> {
    value
        .parse::<u32>()
        .map_err(|_| invalid(name, value, "a whole number of 0 or more"))
}

/// Booleans as Go's `strconv.ParseBool` reads them (the VPC CNI's parser), so every eniplan
/// binary accepts the same spellings.
///
/// ```
/// use planner::pool::parse_bool;
/// assert_eq!(parse_bool("ENABLE_POD_ENI", "True"), Ok(true));
/// assert!(parse_bool("ENABLE_POD_ENI", "yes").is_err());
/// ```
pub fn parse_bool(name: &str, value: &str) -> Result<bool> {
    match value {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err(invalid(
            name,
            value,
            "true or false (also 1/0, t/f, TRUE/FALSE, True/False)",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn defaults_match_the_reference() {
        let c = PoolConfig::from_vars(&BTreeMap::new()).unwrap();
        assert_eq!(c, PoolConfig::default());
        assert_eq!(
            (c.warm_eni_target, c.ip_cooldown),
            (1, Duration::from_secs(30))
        );
        assert!(!c.ip_targets_defined());
    }

    #[test]
    fn every_variable_parses() {
        let c = PoolConfig::from_vars(&vars(&[
            ("WARM_ENI_TARGET", "2"),
            ("WARM_IP_TARGET", "5"),
            ("MINIMUM_IP_TARGET", "10"),
            ("WARM_PREFIX_TARGET", "1"),
            ("ENABLE_PREFIX_DELEGATION", "True"),
            ("MAX_ENI", "3"),
            ("AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG", "t"),
            ("ENABLE_POD_ENI", "1"),
            ("IP_COOLDOWN_PERIOD", "0"),
            ("DISABLE_NETWORK_RESOURCE_PROVISIONING", "FALSE"),
            ("ENIPLAN_PD_FALLBACK", "true"),
        ]))
        .unwrap();
        assert_eq!(
            (c.warm_eni_target, c.warm_ip_target, c.minimum_ip_target),
            (2, 5, 10)
        );
        assert!(c.prefix_delegation && c.custom_networking && c.pod_eni && c.pd_fallback);
        assert!(!c.disable_provisioning);
        assert_eq!((c.max_eni, c.ip_cooldown), (Some(3), Duration::ZERO));
        assert!(c.ip_targets_defined());
    }

    #[test]
    fn empty_values_mean_unset() {
        let c = PoolConfig::from_vars(&vars(&[("WARM_IP_TARGET", ""), ("MAX_ENI", " ")])).unwrap();
        assert_eq!((c.warm_ip_target, c.max_eni), (0, None));
    }

    #[test]
    fn bad_values_name_the_variable_value_and_what_is_accepted() {
        for (name, value, expected) in [
            ("WARM_ENI_TARGET", "-1", "a whole number"),
            ("WARM_PREFIX_TARGET", "abc", "a whole number"),
            ("MAX_ENI", "0", "at least 1"),
            ("ENABLE_POD_ENI", "yes", "true or false"),
            ("IP_COOLDOWN_PERIOD", "1.5", "a whole number"),
        ] {
            let err = PoolConfig::from_vars(&vars(&[(name, value)]))
                .unwrap_err()
                .to_string();
            assert!(
                err.contains(name) && err.contains(value) && err.contains(expected),
                "{err}"
            );
        }
    }

    #[test]
    fn prefix_delegation_needs_a_target_compared_as_numbers() {
        // S-46: PD with no target is refused; "00" is zero (the reference compared strings).
        let err = PoolConfig::from_vars(&vars(&[
            ("ENABLE_PREFIX_DELEGATION", "true"),
            ("WARM_IP_TARGET", "00"),
        ]))
        .unwrap_err();
        assert!(err.to_string().contains("WARM_PREFIX_TARGET=1"), "{err}");
        let ok = PoolConfig::from_vars(&vars(&[
            ("ENABLE_PREFIX_DELEGATION", "true"),
            ("WARM_PREFIX_TARGET", "1"),
        ]));
        assert!(ok.is_ok());
    }
}
