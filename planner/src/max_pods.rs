//! Max pods per node for every VPC CNI mode, with the derivation kept step by step.
//!
//! The formulas, in the order they are applied (E = ENIs of the default network card,
//! I = IPv4 addresses per ENI, primary included):
//!
//! 1. `enis = min(max_eni, E)` when `MAX_ENI` / `--max-eni` is set;
//! 2. minus ENIs taken by other software (`--reserved-enis`);
//! 3. minus one slot for the trunk ENI with security groups for pods, on trunking-compatible types;
//! 4. minus the primary ENI with custom networking (after the clamp, as the EKS calculator does);
//! 5. `slots = I − 1` per ENI (the primary address carries no pod); with prefix delegation each
//!    slot is a /28, so a slot holds 16 addresses;
//! 6. `max_pods = enis × slots × (16 | 1) + 2` (two host-network pods: aws-node, kube-proxy);
//! 7. recommended = `min(max_pods, 110)` when vCPUs ≤ 30, else `min(max_pods, 250)`.
//!
//! ```
//! use planner::max_pods::{max_pods, Options};
//! use planner::catalogue::lookup;
//! let m5 = lookup("m5.large").unwrap();
//! assert_eq!(max_pods(m5, &Options::default()).max_pods, 29);           // 3 × 9 + 2
//! let pd = Options { prefix_delegation: true, ..Options::default() };
//! let r = max_pods(m5, &pd);
//! assert_eq!((r.max_pods, r.recommended_max_pods), (434, 110));         // 3 × 9 × 16 + 2, capped
//! let cn = Options { custom_networking: true, ..Options::default() };
//! assert_eq!(max_pods(m5, &cn).max_pods, 20);                           // (3 − 1) × 9 + 2
//! ```

use std::fmt;
use std::num::NonZeroU32;
use std::str::FromStr;

use serde::{Serialize, Serializer};

use crate::catalogue::{Hypervisor, InstanceLimits};
use crate::error::{Error, Result};
use crate::subnet::ADDRESSES_PER_PREFIX;

/// Pods on the host network that count toward the kubelet's limit but use no VPC address.
pub const HOST_NETWORK_PODS: u32 = 2;
/// EKS guidance: recommended max pods on instances with at most [`SMALL_INSTANCE_VCPUS`] vCPUs.
pub const SMALL_INSTANCE_CAP: u32 = 110;
/// EKS guidance: recommended max pods on larger instances.
pub const LARGE_INSTANCE_CAP: u32 = 250;
/// The vCPU count up to which [`SMALL_INSTANCE_CAP`] applies (strictly more gets the large cap).
pub const SMALL_INSTANCE_VCPUS: u32 = 30;

/// A VPC CNI release, `MAJOR.MINOR.PATCH`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CniVersion {
    /// Major version.
    pub major: u32,
    /// Minor version.
    pub minor: u32,
    /// Patch version.
    pub patch: u32,
}

impl CniVersion {
    /// The release whose behaviour eniplan follows (v1.23.1); the default for `--cni-version`.
    pub const CURRENT: CniVersion = CniVersion {
        major: 1,
        minor: 23,
        patch: 1,
    };
    /// The first release with IPv4 prefix delegation (v1.9.0).
    pub const PREFIX_DELEGATION: CniVersion = CniVersion {
        major: 1,
        minor: 9,
        patch: 0,
    };
}

impl Default for CniVersion {
    fn default() -> Self {
        CniVersion::CURRENT
    }
}

impl fmt::Display for CniVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

impl Serialize for CniVersion {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl FromStr for CniVersion {
    type Err = Error;

    /// Accepts `1.19`, `1.19.0`, `v1.19.0` and `v1.19.0-eksbuild.1`.
    ///
    /// ```
    /// use planner::max_pods::CniVersion;
    /// assert_eq!("v1.19.0-eksbuild.1".parse::<CniVersion>().unwrap().to_string(), "1.19.0");
    /// assert!("abc".parse::<CniVersion>().is_err());
    /// ```
    fn from_str(s: &str) -> Result<Self> {
        let bad = || Error::InvalidCniVersion {
            value: s.to_owned(),
        };
        let trimmed = s.trim();
        let core = trimmed.strip_prefix('v').unwrap_or(trimmed);
        let core = core.split_once(['-', '+']).map_or(core, |(c, _)| c);
        let parts: Vec<&str> = core.split('.').collect();
        if !(2..=3).contains(&parts.len()) {
            return Err(bad());
        }
        let num = |p: &str| {
            if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            p.parse::<u32>().map_err(|_| bad())
        };
        Ok(CniVersion {
            major: num(parts[0])?,
            minor: num(parts[1])?,
            patch: parts.get(2).map_or(Ok(0), |p| num(p))?,
        })
    }
}

/// Validates a `MAX_ENI` value: it must allow at least one ENI.
///
/// ```
/// assert_eq!(planner::max_pods::max_eni(2).unwrap().get(), 2);
/// assert!(planner::max_pods::max_eni(0).is_err());
/// ```
pub fn max_eni(value: u32) -> Result<NonZeroU32> {
    NonZeroU32::new(value).ok_or(Error::InvalidMaxEni { value })
}

/// The VPC CNI settings that shape max pods.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Options {
    /// `ENABLE_PREFIX_DELEGATION`: ask for /28 prefixes instead of secondary IPs.
    pub prefix_delegation: bool,
    /// `AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG`: pods use `ENIConfig` subnets, the primary ENI carries none.
    pub custom_networking: bool,
    /// `ENABLE_POD_ENI`: security groups for pods (one ENI slot becomes the trunk ENI).
    pub security_groups_for_pods: bool,
    /// `MAX_ENI`: at most this many ENIs.
    pub max_eni: Option<NonZeroU32>,
    /// ENIs attached by other software that the CNI does not manage.
    pub reserved_enis: u32,
    /// The VPC CNI release (prefix delegation needs 1.9 or later).
    pub cni_version: CniVersion,
    /// vCPUs to use for the recommended cap, overriding (or supplying) the catalogue's.
    pub vcpus: Option<u32>,
}

/// How pod addresses are allocated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AddressMode {
    /// Each pod address is a secondary private IPv4 address of an ENI.
    SecondaryIp,
    /// Each secondary slot of an ENI holds a /28 prefix of 16 pod addresses.
    PrefixDelegation,
}

impl AddressMode {
    /// The kebab-case name used in output.
    pub fn as_str(self) -> &'static str {
        match self {
            AddressMode::SecondaryIp => "secondary-ip",
            AddressMode::PrefixDelegation => "prefix-delegation",
        }
    }
}

impl fmt::Display for AddressMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Something the user should know about a result: a requested feature that did not apply,
/// or an input the result had to assume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Note {
    /// Prefix delegation was asked for, but the type is neither Nitro nor bare metal.
    PrefixDelegationNeedsNitro {
        /// The type's hypervisor.
        hypervisor: Hypervisor,
    },
    /// Prefix delegation was asked for, but the CNI release predates it.
    PrefixDelegationNeedsNewerCni {
        /// The release given.
        version: CniVersion,
    },
    /// Security groups for pods were asked for, but the type cannot carry a trunk ENI.
    NotTrunkingCompatible,
    /// Custom networking left no ENI to carry pod addresses: ipamd cannot attach one, its
    /// start-up fails and the node never becomes Ready.
    NoEnisForPods,
    /// More ENIs were reserved than exist beside the primary ENI (which is always the CNI's).
    ReservedEnisClamped {
        /// `--reserved-enis` as given.
        asked: u32,
        /// What the type allows.
        possible: u32,
    },
    /// Security groups for pods: no ENI slot is free beside the primary for the trunk ENI.
    NoSlotForTrunk,
    /// The catalogue has no vCPU count for the type; the 110 cap was assumed.
    VcpusUnknown,
}

impl fmt::Display for Note {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Note::PrefixDelegationNeedsNitro { hypervisor } => write!(
                f,
                "prefix delegation needs a Nitro or bare-metal instance (hypervisor: {hypervisor}); using secondary IPs"
            ),
            Note::PrefixDelegationNeedsNewerCni { version } => write!(
                f,
                "prefix delegation needs VPC CNI {} or later (given {version}); using secondary IPs",
                CniVersion::PREFIX_DELEGATION
            ),
            Note::NotTrunkingCompatible => f.write_str(
                "security groups for pods: this type is not trunking-compatible, so no trunk ENI and no branch ENIs",
            ),
            Note::NoEnisForPods => f.write_str(
                "custom networking leaves no ENI to carry pod addresses: ipamd cannot attach one, its start-up fails and the node never becomes Ready",
            ),
            Note::ReservedEnisClamped { asked, possible } => write!(
                f,
                "{asked} reserved ENIs requested, but only {possible} can be: the primary ENI always belongs to the CNI"
            ),
            Note::NoSlotForTrunk => f.write_str(
                "security groups for pods: no ENI slot is free beside the primary ENI, so no trunk ENI and no branch ENIs",
            ),
            Note::VcpusUnknown => write!(
                f,
                "the catalogue has no vCPU count for this type; assumed at most {SMALL_INSTANCE_VCPUS} (cap {SMALL_INSTANCE_CAP}); pass --vcpus to set it"
            ),
        }
    }
}

impl Serialize for Note {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Max pods for one instance type under one set of options, with the inputs and the derivation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MaxPods {
    /// The instance type.
    pub instance_type: &'static str,
    /// The ENI-limited max pods, uncapped (what `eni-max-pods.txt` and nodeadm compute).
    pub max_pods: u32,
    /// The kubelet value EKS recommends: `max_pods` capped at 110 (≤ 30 vCPUs) or 250.
    pub recommended_max_pods: u32,
    /// The cap applied for `recommended_max_pods` (110 or 250).
    pub recommended_cap: u32,
    /// vCPUs used for the cap (`None`: unknown, the small-instance cap was assumed).
    pub vcpus: Option<u32>,
    /// The allocation mode in effect (prefix delegation may fall back to secondary IPs).
    pub mode: AddressMode,
    /// ENIs of the default network card (the CNI's ENI limit).
    pub card_enis: u32,
    /// ENIs that carry pod addresses after every subtraction.
    pub enis_for_pods: u32,
    /// IPv4 addresses per ENI from the catalogue, primary included.
    pub ips_per_eni: u32,
    /// Pod addresses one ENI carries: `ips_per_eni − 1`, ×16 with prefix delegation.
    pub pod_addresses_per_eni: u32,
    /// Pod addresses on the node: `enis_for_pods × pod_addresses_per_eni`.
    pub pod_addresses: u32,
    /// Whether one ENI slot went to the trunk ENI (security groups for pods).
    pub trunk_eni: bool,
    /// Branch ENIs for pods with their own security groups (`vpc.amazonaws.com/pod-eni`), when
    /// security groups for pods are on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub branch_enis: Option<u32>,
    /// What the user should know (fallbacks, assumptions).
    pub notes: Vec<Note>,
    /// The derivation, one line per step, in the order applied.
    #[serde(skip)]
    pub steps: Vec<String>,
}

/// Computes max pods for `limits` under `options`. Pure and total: every combination of a
/// catalogue entry and options has an answer (subtractions saturate at zero ENIs).
///
/// ```
/// use planner::max_pods::{max_pods, Options};
/// use planner::catalogue::lookup;
/// let p5 = lookup("p5.48xlarge").unwrap();          // 32 cards; the default card has 2 ENIs
/// assert_eq!(max_pods(p5, &Options::default()).max_pods, 100);   // 2 × 49 + 2
/// let trn = lookup("trn1.32xlarge").unwrap();       // 128 vCPUs: the cap is 250
/// assert_eq!(max_pods(trn, &Options::default()).recommended_max_pods, 247);
/// let sgp = Options { security_groups_for_pods: true, ..Options::default() };
/// let r = max_pods(lookup("m5.large").unwrap(), &sgp);
/// assert_eq!((r.max_pods, r.branch_enis), (20, Some(9)));       // trunk takes a slot
/// ```
pub fn max_pods(limits: &InstanceLimits, options: &Options) -> MaxPods {
    let mut steps = Vec::new();
    let mut notes = Vec::new();
    let card_enis = u32::from(limits.max_enis);
    let ips_per_eni = u32::from(limits.ipv4_per_eni);
    let card_note = if limits.network_cards.len() > 1 {
        format!(
            " (of {} over all {} cards; the CNI uses only the default card)",
            limits.total_enis(),
            limits.network_cards.len()
        )
    } else {
        String::new()
    };
    steps.push(format!(
        "ENIs on the default network card (card {}): {card_enis}{card_note}",
        limits.default_network_card_index
    ));

    let (enis, trunk_eni, branch_enis) = enis_for_pods(limits, options, &mut steps, &mut notes);

    let mode = effective_mode(limits, options, &mut notes);
    let slots = ips_per_eni.saturating_sub(1);
    steps.push(format!(
        "secondary slots per ENI: {ips_per_eni} IPv4 addresses − 1 primary = {slots}"
    ));
    let pod_addresses_per_eni = match mode {
        AddressMode::SecondaryIp => slots,
        AddressMode::PrefixDelegation => {
            let per_eni = slots * ADDRESSES_PER_PREFIX;
            steps.push(format!(
                "prefix delegation: each slot holds a /28 of {ADDRESSES_PER_PREFIX} addresses: {slots} × {ADDRESSES_PER_PREFIX} = {per_eni} per ENI"
            ));
            per_eni
        }
    };
    let pod_addresses = enis * pod_addresses_per_eni;
    steps.push(format!(
        "pod addresses: {enis} × {pod_addresses_per_eni} = {pod_addresses}"
    ));
    let max_pods = pod_addresses + HOST_NETWORK_PODS;
    steps.push(format!(
        "max pods: {pod_addresses} + {HOST_NETWORK_PODS} host-network pods (aws-node, kube-proxy) = {max_pods}"
    ));

    let vcpus = options.vcpus.or(limits.vcpus.map(u32::from));
    let recommended_cap = recommended_cap(vcpus);
    if vcpus.is_none() && max_pods > SMALL_INSTANCE_CAP {
        notes.push(Note::VcpusUnknown);
    }
    let recommended_max_pods = max_pods.min(recommended_cap);
    let vcpu_text = vcpus.map_or_else(|| "unknown vCPUs".to_owned(), |v| format!("{v} vCPUs"));
    let relation = if vcpus.is_some_and(|v| v > SMALL_INSTANCE_VCPUS) {
        ">"
    } else {
        "≤"
    };
    steps.push(format!(
        "recommended: {vcpu_text} {relation} {SMALL_INSTANCE_VCPUS} → cap {recommended_cap}: min({max_pods}, {recommended_cap}) = {recommended_max_pods}"
    ));

    MaxPods {
        instance_type: limits.name,
        max_pods,
        recommended_max_pods,
        recommended_cap,
        vcpus,
        mode,
        card_enis,
        enis_for_pods: enis,
        ips_per_eni,
        pod_addresses_per_eni,
        pod_addresses,
        trunk_eni,
        branch_enis,
        notes,
        steps,
    }
}

/// Steps 1–4: the ENIs left to carry pod addresses, whether a trunk ENI takes a slot, and the
/// branch-ENI capacity when security groups for pods are on.
fn enis_for_pods(
    limits: &InstanceLimits,
    options: &Options,
    steps: &mut Vec<String>,
    notes: &mut Vec<Note>,
) -> (u32, bool, Option<u32>) {
    let mut enis = u32::from(limits.max_enis);
    if let Some(max) = options.max_eni {
        let clamped = enis.min(max.get());
        steps.push(format!("MAX_ENI {max}: min({max}, {enis}) = {clamped}"));
        enis = clamped;
    }
    if options.reserved_enis > 0 {
        // The primary ENI always belongs to the CNI, so other software can hold at most the rest.
        let reserved = options.reserved_enis.min(enis - 1);
        if reserved < options.reserved_enis {
            notes.push(Note::ReservedEnisClamped {
                asked: options.reserved_enis,
                possible: reserved,
            });
        }
        let left = enis - reserved;
        steps.push(format!(
            "ENIs reserved for other software: {enis} − {reserved} = {left}"
        ));
        enis = left;
    }
    // The trunk needs a free slot beside the primary ENI (ipamd only asks for one then).
    let trunk_eni = options.security_groups_for_pods && limits.trunking && enis >= 2;
    let branch_enis = if options.security_groups_for_pods {
        if trunk_eni {
            let left = enis - 1;
            steps.push(format!(
                "security groups for pods: one ENI slot holds the trunk ENI: {enis} − 1 = {left}"
            ));
            enis = left;
            Some(u32::from(limits.branch_enis))
        } else if limits.trunking {
            steps.push(
                "security groups for pods: no free ENI slot beside the primary, so no trunk ENI"
                    .to_owned(),
            );
            notes.push(Note::NoSlotForTrunk);
            Some(0)
        } else {
            steps
                .push("security groups for pods: not trunking-compatible, no trunk ENI".to_owned());
            notes.push(Note::NotTrunkingCompatible);
            Some(0)
        }
    } else {
        None
    };
    if options.custom_networking {
        let left = enis.saturating_sub(1);
        steps.push(format!(
            "custom networking: the primary ENI carries no pods: {enis} − 1 = {left}"
        ));
        enis = left;
    }
    if enis == 0 {
        notes.push(Note::NoEnisForPods);
    }
    steps.push(format!("ENIs carrying pod addresses: {enis}"));

    (enis, trunk_eni, branch_enis)
}

/// The EKS recommended cap for a vCPU count: 110 up to 30 vCPUs, 250 above; 110 when unknown.
///
/// ```
/// use planner::max_pods::recommended_cap;
/// assert_eq!(recommended_cap(Some(30)), 110);
/// assert_eq!(recommended_cap(Some(32)), 250);
/// assert_eq!(recommended_cap(None), 110);
/// ```
pub fn recommended_cap(vcpus: Option<u32>) -> u32 {
    match vcpus {
        Some(v) if v > SMALL_INSTANCE_VCPUS => LARGE_INSTANCE_CAP,
        _ => SMALL_INSTANCE_CAP,
    }
}

/// Whether ipamd runs prefix delegation on this type: Nitro or bare metal. (The retired EKS
/// calculator script accepted only `hypervisor == nitro`, refusing bare metal; ipamd allows it.)
///
/// ```
/// use planner::catalogue::lookup;
/// use planner::max_pods::supports_prefix_delegation;
/// assert!(supports_prefix_delegation(lookup("m5.large").unwrap()));
/// assert!(supports_prefix_delegation(lookup("m5.metal").unwrap()));
/// assert!(!supports_prefix_delegation(lookup("m4.xlarge").unwrap()));
/// ```
pub fn supports_prefix_delegation(limits: &InstanceLimits) -> bool {
    limits.hypervisor == Hypervisor::Nitro || limits.bare_metal
}

fn effective_mode(
    limits: &InstanceLimits,
    options: &Options,
    notes: &mut Vec<Note>,
) -> AddressMode {
    if !options.prefix_delegation {
        return AddressMode::SecondaryIp;
    }
    if options.cni_version < CniVersion::PREFIX_DELEGATION {
        notes.push(Note::PrefixDelegationNeedsNewerCni {
            version: options.cni_version,
        });
        return AddressMode::SecondaryIp;
    }
    if !supports_prefix_delegation(limits) {
        notes.push(Note::PrefixDelegationNeedsNitro {
            hypervisor: limits.hypervisor,
        });
        return AddressMode::SecondaryIp;
    }
    AddressMode::PrefixDelegation
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalogue::{all, lookup};

    fn run(name: &str, options: Options) -> MaxPods {
        max_pods(lookup(name).unwrap(), &options)
    }
    fn pd() -> Options {
        Options {
            prefix_delegation: true,
            ..Options::default()
        }
    }
    fn cn() -> Options {
        Options {
            custom_networking: true,
            ..Options::default()
        }
    }

    #[test]
    fn m5_large_secondary_ip_is_29() {
        let r = run("m5.large", Options::default());
        assert_eq!(
            (r.max_pods, r.recommended_max_pods, r.mode),
            (29, 29, AddressMode::SecondaryIp)
        );
        assert_eq!((r.enis_for_pods, r.pod_addresses_per_eni), (3, 9));
    }

    #[test]
    fn t3_medium_is_17() {
        assert_eq!(run("t3.medium", Options::default()).max_pods, 17);
    }

    #[test]
    fn p5_48xlarge_uses_only_the_default_card() {
        let r = run("p5.48xlarge", Options::default());
        assert_eq!((r.max_pods, r.recommended_max_pods), (100, 100));
        assert_eq!(run("p5.48xlarge", cn()).max_pods, 51);
        let p = run("p5.48xlarge", pd());
        assert_eq!((p.max_pods, p.recommended_max_pods), (1570, 250));
    }

    #[test]
    fn m5_large_custom_networking_is_20() {
        assert_eq!(run("m5.large", cn()).max_pods, 20);
    }

    #[test]
    fn m5_large_prefix_delegation_is_434_uncapped_110_recommended() {
        let r = run("m5.large", pd());
        assert_eq!(
            (r.max_pods, r.recommended_max_pods, r.mode),
            (434, 110, AddressMode::PrefixDelegation)
        );
    }

    #[test]
    fn trn1_32xlarge_is_247() {
        let r = run("trn1.32xlarge", Options::default());
        assert_eq!((r.max_pods, r.recommended_max_pods), (247, 247));
    }

    #[test]
    fn default_mode_matches_the_cni_formula_for_every_type() {
        for t in all() {
            let r = max_pods(t, &Options::default());
            let expected = u32::from(t.max_enis) * (u32::from(t.ipv4_per_eni) - 1) + 2;
            assert_eq!(r.max_pods, expected, "{}", t.name);
        }
    }

    #[test]
    fn eni_max_pods_txt_examples() {
        for (name, pods) in [
            ("t3.nano", 4),
            ("t2.micro", 4),
            ("t3.small", 11),
            ("m5.xlarge", 58),
            ("m4.xlarge", 58),
            ("m4.4xlarge", 234),
            ("c5.4xlarge", 234),
            ("a1.metal", 234),
            ("c6in.32xlarge", 394),
            ("p4d.24xlarge", 737),
            ("m5.24xlarge", 737),
            ("c5.metal", 737),
            ("x8i.metal-96xl", 1514),
        ] {
            assert_eq!(run(name, Options::default()).max_pods, pods, "{name}");
        }
    }

    #[test]
    fn calculator_script_cases() {
        // amazon-eks-ami's own tests of max-pods-calculator.sh.
        let v1112: CniVersion = "1.11.2".parse().unwrap();
        let r = run(
            "m5.8xlarge",
            Options {
                cni_version: v1112,
                ..Options::default()
            },
        );
        assert_eq!(r.recommended_max_pods, 234);
        let r = run(
            "m5.8xlarge",
            Options {
                cni_version: v1112,
                prefix_delegation: true,
                ..Options::default()
            },
        );
        assert_eq!(r.recommended_max_pods, 250);
        assert_eq!(run("c6in.32xlarge", Options::default()).max_pods, 394);
        let v175: CniVersion = "1.7.5".parse().unwrap();
        assert_eq!(
            run(
                "m4.xlarge",
                Options {
                    cni_version: v175,
                    ..Options::default()
                }
            )
            .recommended_max_pods,
            58
        );
        // Default mode is capped too: m5.4xlarge (16 vCPU) → 110, m5.24xlarge → 250.
        assert_eq!(
            run("m5.4xlarge", Options::default()).recommended_max_pods,
            110
        );
        assert_eq!(
            run("m5.24xlarge", Options::default()).recommended_max_pods,
            250
        );
    }

    /// Scenarios S-57 … S-60 of the ipamd behaviour reference (max pods).
    #[test]
    fn reference_scenarios_s57_to_s60() {
        let v1120: CniVersion = "1.12.0".parse().unwrap();
        let base = Options {
            cni_version: v1120,
            ..Options::default()
        };
        let with = |f: fn(&mut Options)| {
            let mut o = base;
            f(&mut o);
            o
        };
        // S-57: the eni-max-pods.txt formula.
        for (name, pods) in [
            ("t3.small", 11),
            ("t3.medium", 17),
            ("m5.large", 29),
            ("m5.xlarge", 58),
            ("m4.4xlarge", 234),
            ("c6in.32xlarge", 394),
            ("p3dn.24xlarge", 737),
            ("p4d.24xlarge", 737),
        ] {
            assert_eq!(run(name, base).max_pods, pods, "S-57 {name}");
        }
        // S-58: (type, options, recommended, uncapped).
        let pd = with(|o| o.prefix_delegation = true);
        let cn = with(|o| o.custom_networking = true);
        let cn_pd = with(|o| {
            o.custom_networking = true;
            o.prefix_delegation = true;
        });
        let old = with(|o| {
            o.prefix_delegation = true;
            o.cni_version = CniVersion {
                major: 1,
                minor: 8,
                patch: 0,
            };
        });
        for (name, opts, rec, raw) in [
            ("t3.small", base, 11, 11),
            ("t3.small", pd, 110, 146),
            ("t3.small", cn, 8, 8),
            ("m5.large", base, 29, 29),
            ("m5.large", pd, 110, 434),
            ("m5.large", cn, 20, 20),
            ("m5.large", cn_pd, 110, 290),
            ("m5.large", old, 29, 29),
        ] {
            let r = run(name, opts);
            assert_eq!(
                (r.recommended_max_pods, r.max_pods),
                (rec, raw),
                "S-58 {name} {opts:?}"
            );
        }
        // S-59: c6in.32xlarge recommended 250 beside the raw 394.
        assert_eq!(run("c6in.32xlarge", base).recommended_max_pods, 250);
        // S-60: m4.4xlarge (xen) with PD → SIP 234 capped to 110; c5.4xlarge --max-eni 2 → 60;
        // c5.18xlarge → 250 (raw 737); m5.24xlarge custom → 250 (raw 688).
        assert_eq!(run("m4.4xlarge", pd).recommended_max_pods, 110);
        assert_eq!(run("m4.4xlarge", pd).max_pods, 234);
        let two = with(|o| o.max_eni = NonZeroU32::new(2));
        assert_eq!(run("c5.4xlarge", two).recommended_max_pods, 60);
        let r = run("c5.18xlarge", base);
        assert_eq!((r.recommended_max_pods, r.max_pods), (250, 737));
        let r = run("m5.24xlarge", cn);
        assert_eq!((r.recommended_max_pods, r.max_pods), (250, 688));
        // S-60 a1.metal with PD: the script says 110 (no PD on metal); eniplan applies PD
        // like ipamd (raw 3714) and recommends the same 110.
        let r = run("a1.metal", pd);
        assert_eq!(
            (r.mode, r.recommended_max_pods, r.max_pods),
            (AddressMode::PrefixDelegation, 110, 3714)
        );
    }

    #[test]
    fn max_eni_clamps_before_custom_networking() {
        let two = Some(max_eni(2).unwrap());
        let r = run(
            "m5.xlarge",
            Options {
                max_eni: two,
                ..Options::default()
            },
        );
        assert_eq!(r.max_pods, 2 * 14 + 2);
        let r = run(
            "m5.xlarge",
            Options {
                max_eni: two,
                custom_networking: true,
                ..Options::default()
            },
        );
        assert_eq!(r.max_pods, 14 + 2);
        // A larger MAX_ENI than the card allows changes nothing.
        let big = Some(max_eni(50).unwrap());
        assert_eq!(
            run(
                "m5.large",
                Options {
                    max_eni: big,
                    ..Options::default()
                }
            )
            .max_pods,
            29
        );
    }

    #[test]
    fn custom_networking_on_a_single_eni_type_leaves_only_host_network_pods() {
        let r = run("hpc6id.32xlarge", cn());
        assert_eq!((r.max_pods, r.enis_for_pods), (2, 0));
        assert!(r.notes.contains(&Note::NoEnisForPods));
        assert_eq!(
            run(
                "hpc6id.32xlarge",
                Options {
                    prefix_delegation: true,
                    custom_networking: true,
                    ..Options::default()
                }
            )
            .max_pods,
            2
        );
    }

    #[test]
    fn prefix_delegation_applies_on_nitro_bare_metal_unlike_the_calculator_script() {
        let r = run(
            "m5.metal",
            Options {
                prefix_delegation: true,
                max_eni: Some(max_eni(1).unwrap()),
                ..Options::default()
            },
        );
        assert_eq!(r.mode, AddressMode::PrefixDelegation);
        assert_eq!(r.max_pods, 49 * 16 + 2); // the script would say 51
        assert_eq!(r.recommended_max_pods, 250);
    }

    #[test]
    fn prefix_delegation_falls_back_on_xen_and_says_so() {
        let r = run("m4.xlarge", pd());
        assert_eq!((r.mode, r.max_pods), (AddressMode::SecondaryIp, 58));
        assert_eq!(
            r.notes,
            [Note::PrefixDelegationNeedsNitro {
                hypervisor: Hypervisor::Xen
            }]
        );
        // cr1.8xlarge reports no hypervisor and is not bare metal: no prefix delegation either.
        assert_eq!(run("cr1.8xlarge", pd()).mode, AddressMode::SecondaryIp);
    }

    #[test]
    fn prefix_delegation_needs_cni_1_9() {
        let old = Options {
            cni_version: "1.8.9".parse().unwrap(),
            ..pd()
        };
        let r = run("m5.large", old);
        assert_eq!((r.mode, r.max_pods), (AddressMode::SecondaryIp, 29));
        assert!(matches!(
            r.notes[0],
            Note::PrefixDelegationNeedsNewerCni { .. }
        ));
        let new = Options {
            cni_version: "1.9.0".parse().unwrap(),
            ..pd()
        };
        assert_eq!(run("m5.large", new).mode, AddressMode::PrefixDelegation);
    }

    #[test]
    fn security_groups_for_pods_reserves_the_trunk_slot_only_on_trunking_types() {
        let sgp = Options {
            security_groups_for_pods: true,
            ..Options::default()
        };
        let r = run("m5.large", sgp);
        assert_eq!(
            (r.max_pods, r.trunk_eni, r.branch_enis),
            (20, true, Some(9))
        );
        let r = run("t3.medium", sgp);
        assert_eq!(
            (r.max_pods, r.trunk_eni, r.branch_enis),
            (17, false, Some(0))
        );
        assert_eq!(r.notes, [Note::NotTrunkingCompatible]);
        assert_eq!(run("m5.large", Options::default()).branch_enis, None);
    }

    #[test]
    fn reserved_enis_subtract_but_never_take_the_primary() {
        let reserved = |n| Options {
            reserved_enis: n,
            ..Options::default()
        };
        assert_eq!(run("m5.large", reserved(1)).max_pods, 20);
        let r = run("m5.large", reserved(9));
        assert_eq!((r.max_pods, r.enis_for_pods), (11, 1));
        assert_eq!(
            r.notes,
            [Note::ReservedEnisClamped {
                asked: 9,
                possible: 2
            }]
        );
    }

    #[test]
    fn trunk_needs_a_slot_beside_the_primary() {
        let one = Options {
            security_groups_for_pods: true,
            max_eni: Some(max_eni(1).unwrap()),
            ..Options::default()
        };
        let r = run("m5.large", one);
        assert_eq!(
            (r.max_pods, r.trunk_eni, r.branch_enis),
            (11, false, Some(0))
        );
        assert_eq!(r.notes, [Note::NoSlotForTrunk]);
        let two = Options {
            max_eni: Some(max_eni(2).unwrap()),
            ..one
        };
        let r = run("m5.large", two);
        assert_eq!(
            (r.max_pods, r.trunk_eni, r.branch_enis),
            (11, true, Some(9))
        );
    }

    #[test]
    fn vcpus_override_and_unknown_vcpus() {
        let r = run("p3.16xlarge", Options::default()); // no vCPU count in the data
        assert_eq!(
            (r.max_pods, r.recommended_max_pods, r.vcpus),
            (234, 110, None)
        );
        assert!(r.notes.contains(&Note::VcpusUnknown));
        let r = run(
            "p3.16xlarge",
            Options {
                vcpus: Some(64),
                ..Options::default()
            },
        );
        assert_eq!(r.recommended_max_pods, 234);
        assert!(r.notes.is_empty());
    }

    #[test]
    fn steps_show_every_subtraction() {
        let r = run(
            "m5.large",
            Options {
                prefix_delegation: true,
                custom_networking: true,
                security_groups_for_pods: true,
                reserved_enis: 0,
                ..Options::default()
            },
        );
        let text = r.steps.join("\n");
        assert!(text.contains("trunk ENI: 3 − 1 = 2"), "{text}");
        assert!(
            text.contains("primary ENI carries no pods: 2 − 1 = 1"),
            "{text}"
        );
        assert!(text.contains("9 × 16 = 144 per ENI"), "{text}");
        assert!(text.contains("min(146, 110) = 110"), "{text}");
    }

    #[test]
    fn cni_version_parsing() {
        for (s, v) in [
            ("1.9", (1, 9, 0)),
            ("v1.23.1", (1, 23, 1)),
            ("2.0.0+meta", (2, 0, 0)),
        ] {
            let c: CniVersion = s.parse().unwrap();
            assert_eq!((c.major, c.minor, c.patch), v, "{s}");
        }
        for bad in ["abc", "1", "1.x", "1.2.3.4", "", "-1.2", "1..2"] {
            assert_eq!(
                bad.parse::<CniVersion>(),
                Err(Error::InvalidCniVersion { value: bad.into() }),
                "{bad}"
            );
        }
    }
}
