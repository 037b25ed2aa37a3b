//! The embedded EC2 instance catalogue: networking limits for every instance type the
//! AWS VPC CNI knows, generated from `data/` by `cargo xtask gen-catalogue`.
//!
//! Lookups are a binary search over a static, sorted table: no parsing at run time.
//!
//! ```
//! let m5 = planner::catalogue::lookup("m5.large").unwrap();
//! assert_eq!((m5.max_enis, m5.ipv4_per_eni, m5.vcpus), (3, 10, Some(2)));
//! assert_eq!(planner::catalogue::all().len(), 1391);
//! ```

use std::cmp::Ordering;

use serde::Serialize;

use crate::error::{Error, Result};

#[rustfmt::skip]
mod table;

/// The hypervisor EC2 reports for an instance type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Hypervisor {
    /// AWS Nitro.
    Nitro,
    /// Xen (older generations).
    Xen,
    /// EC2 reports none: nearly always bare metal (the CNI table spells it "unknown").
    Unknown,
}

impl Hypervisor {
    /// The lower-case name used in tables, JSON and filters.
    pub fn as_str(self) -> &'static str {
        match self {
            Hypervisor::Nitro => "nitro",
            Hypervisor::Xen => "xen",
            Hypervisor::Unknown => "unknown",
        }
    }
}

impl std::fmt::Display for Hypervisor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The networking limits of one instance type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct InstanceLimits {
    /// EC2 instance type, e.g. `m5.large`.
    pub name: &'static str,
    /// The hypervisor EC2 reports.
    pub hypervisor: Hypervisor,
    /// A `*.metal*` type.
    pub bare_metal: bool,
    /// ENIs the VPC CNI uses: the limit of the **default network card** (not the instance total).
    pub max_enis: u8,
    /// Private IPv4 addresses per ENI, the primary included.
    pub ipv4_per_eni: u8,
    /// Index of the default network card.
    pub default_network_card_index: u8,
    /// Maximum ENIs of each network card, by card index.
    pub network_cards: &'static [u8],
    /// Branch ENIs (security groups for pods) the VPC resource controller allows; 0 when not
    /// trunking-compatible.
    pub branch_enis: u8,
    /// Whether the type can carry a trunk ENI (security groups for pods).
    pub trunking: bool,
    /// Default vCPU count, when known (28 types have none in the data).
    pub vcpus: Option<u16>,
}

impl InstanceLimits {
    /// The family part of the name (`m5` for `m5.large`).
    pub fn family(&self) -> &'static str {
        family_of(self.name)
    }

    /// ENIs over all network cards (EC2's instance-wide `MaximumNetworkInterfaces`).
    ///
    /// ```
    /// let p5 = planner::catalogue::lookup("p5.48xlarge").unwrap();
    /// assert_eq!((p5.max_enis, p5.total_enis()), (2, 64));
    /// ```
    pub fn total_enis(&self) -> u32 {
        self.network_cards.iter().map(|&n| u32::from(n)).sum()
    }
}

fn family_of(name: &str) -> &str {
    name.split_once('.').map_or(name, |(family, _)| family)
}

/// Every instance type, sorted byte-wise by name.
pub fn all() -> &'static [InstanceLimits] {
    &table::TYPES
}

/// Finds one instance type by exact name (case-insensitive, surrounding blanks ignored).
///
/// ```
/// assert_eq!(planner::catalogue::lookup(" M5.Large ").unwrap().name, "m5.large");
/// let err = planner::catalogue::lookup("m5.lrge").unwrap_err();
/// assert_eq!(err.to_string(), r#"unknown instance type "m5.lrge"; did you mean m5.large?"#);
/// ```
pub fn lookup(name: &str) -> Result<&'static InstanceLimits> {
    let wanted = name.trim().to_ascii_lowercase();
    find(&wanted).ok_or_else(|| Error::UnknownInstanceType {
        name: name.to_owned(),
        suggestions: suggestions(&wanted)
            .into_iter()
            .map(str::to_owned)
            .collect(),
    })
}

fn find(name: &str) -> Option<&'static InstanceLimits> {
    let types = all();
    types
        .binary_search_by(|t| t.name.cmp(name))
        .ok()
        .map(|i| &types[i])
}

/// Up to three catalogue names close to `name`, best first.
pub fn suggestions(name: &str) -> Vec<&'static str> {
    const MAX: usize = 3;
    let name = name.trim().to_ascii_lowercase();
    // A bare family ("m5") suggests its sizes, smallest first.
    if !name.contains('.') {
        let mut sizes: Vec<_> = all().iter().filter(|t| t.family() == name).collect();
        if !sizes.is_empty() {
            sizes.sort_by(|a, b| size_order(a.name, b.name));
            return sizes.iter().take(MAX).map(|t| t.name).collect();
        }
    }
    let mut scored: Vec<(usize, &'static InstanceLimits)> = all()
        .iter()
        .map(|t| (strsim::damerau_levenshtein(&name, t.name), t))
        .collect();
    let Some(best) = scored.iter().map(|(d, _)| *d).min() else {
        return Vec::new();
    };
    // Farther than a third of the name is a guess, not a suggestion.
    if best > (name.len() / 3).max(2) {
        return Vec::new();
    }
    scored.retain(|(d, _)| *d == best);
    scored.sort_by(|a, b| size_order(a.1.name, b.1.name));
    scored.iter().take(MAX).map(|(_, t)| t.name).collect()
}

/// Orders names by family, then by size (nano < … < large < xlarge < 2xlarge < … < metal),
/// the order people read instance types in.
///
/// ```
/// let mut names = vec!["m5.2xlarge", "m5.metal", "m5.large", "m5.xlarge", "m5.12xlarge"];
/// names.sort_by(|a, b| planner::catalogue::size_order(a, b));
/// assert_eq!(names, ["m5.large", "m5.xlarge", "m5.2xlarge", "m5.12xlarge", "m5.metal"]);
/// ```
pub fn size_order(a: &str, b: &str) -> Ordering {
    fn key(name: &str) -> (&str, u32, &str) {
        let (family, size) = name.split_once('.').unwrap_or((name, ""));
        (family, size_rank(size), size)
    }
    key(a).cmp(&key(b))
}

fn size_rank(size: &str) -> u32 {
    const METAL: u32 = 100_000;
    match size {
        "nano" => 0,
        "micro" => 1,
        "small" => 2,
        "medium" => 3,
        "large" => 4,
        "xlarge" => 5,
        "metal" => METAL,
        _ => {
            if let Some(n) = size
                .strip_suffix("xlarge")
                .and_then(|n| n.parse::<u32>().ok())
            {
                4 + n
            } else if let Some(n) = size
                .strip_prefix("metal-")
                .and_then(|s| s.strip_suffix("xl"))
                .and_then(|n| n.parse::<u32>().ok())
            {
                METAL + n
            } else {
                2 * METAL
            }
        }
    }
}

/// Every family name (`m5`, `c7g`, …), sorted.
pub fn families() -> Vec<&'static str> {
    let set: std::collections::BTreeSet<&'static str> =
        all().iter().map(InstanceLimits::family).collect();
    set.into_iter().collect()
}

/// Checks a family name, suggesting close ones when it is unknown.
///
/// ```
/// assert_eq!(planner::catalogue::family("M5").unwrap(), "m5");
/// let err = planner::catalogue::family("m5z").unwrap_err().to_string();
/// assert!(err.contains("did you mean"), "{err}");
/// ```
pub fn family(name: &str) -> Result<&'static str> {
    let wanted = name.trim().to_ascii_lowercase();
    let families = families();
    if let Some(f) = families.iter().find(|f| **f == wanted) {
        return Ok(f);
    }
    let mut scored: Vec<(usize, &str)> = families
        .iter()
        .map(|f| (strsim::damerau_levenshtein(&wanted, f), *f))
        .collect();
    scored.sort_unstable();
    let best = scored.first().map_or(usize::MAX, |(d, _)| *d);
    let suggestions = if best <= 2 {
        scored
            .iter()
            .filter(|(d, _)| *d == best)
            .take(3)
            .map(|(_, f)| (*f).to_owned())
            .collect()
    } else {
        Vec::new()
    };
    Err(Error::UnknownFamily {
        name: name.to_owned(),
        suggestions,
    })
}

/// Whether `arg` uses shell pattern syntax (`*`, `?` or `[`).
pub fn is_pattern(arg: &str) -> bool {
    arg.contains(['*', '?', '['])
}

/// Instance types whose names match a shell-style pattern (`m5.*`, `c?g.large`, `m[56].large`),
/// in size order. Matching is case-insensitive.
///
/// ```
/// let m5: Vec<_> = planner::catalogue::matching("m5.*").unwrap().iter().map(|t| t.name).collect();
/// assert_eq!(&m5[..3], ["m5.large", "m5.xlarge", "m5.2xlarge"]);
/// assert!(planner::catalogue::matching("zz.*").is_err());
/// ```
pub fn matching(pattern: &str) -> Result<Vec<&'static InstanceLimits>> {
    let compiled = glob::Pattern::new(&pattern.trim().to_ascii_lowercase()).map_err(|e| {
        Error::InvalidPattern {
            pattern: pattern.to_owned(),
            reason: e.msg.to_owned(),
        }
    })?;
    let mut found: Vec<_> = all().iter().filter(|t| compiled.matches(t.name)).collect();
    if found.is_empty() {
        return Err(Error::PatternMatchesNothing {
            pattern: pattern.to_owned(),
        });
    }
    found.sort_by(|a, b| size_order(a.name, b.name));
    Ok(found)
}

/// Resolves command-line arguments, each an exact name or a pattern, into instance types.
/// Order follows the arguments; a type named twice appears once. Fails on the first argument
/// that names nothing, so callers never print partial results.
///
/// ```
/// let types = planner::catalogue::resolve(&["t3.medium", "m5.*", "m5.large"]).unwrap();
/// assert_eq!(types[0].name, "t3.medium");
/// assert_eq!(types.iter().filter(|t| t.name == "m5.large").count(), 1);
/// assert_eq!(planner::catalogue::resolve(&["m5.large,c5.large"]).unwrap().len(), 2);
/// let listed = planner::catalogue::resolve(&["m5.large,c5.large"]).unwrap();
/// assert_eq!(listed.len(), 2);
/// ```
pub fn resolve<S: AsRef<str>>(args: &[S]) -> Result<Vec<&'static InstanceLimits>> {
    let mut out: Vec<&'static InstanceLimits> = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    // `m5.large,c5.large` is a list, as people paste it from other tools.
    let parts = args
        .iter()
        .flat_map(|a| a.as_ref().split(',').map(str::trim));
    for arg in parts {
        let found = if is_pattern(arg) {
            matching(arg)?
        } else {
            vec![lookup(arg)?]
        };
        for t in found {
            if seen.insert(t.name) {
                out.push(t);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_sorted_and_unique_so_binary_search_works() {
        assert!(all().windows(2).all(|w| w[0].name < w[1].name));
    }

    #[test]
    fn every_type_is_found_by_lookup() {
        for t in all() {
            assert_eq!(lookup(t.name).unwrap().name, t.name);
        }
    }

    #[test]
    fn data_summary_counts_match_the_data_readme() {
        let count = |f: &dyn Fn(&InstanceLimits) -> bool| all().iter().filter(|t| f(t)).count();
        assert_eq!(all().len(), 1391);
        assert_eq!(count(&|t| t.hypervisor == Hypervisor::Nitro), 1150);
        assert_eq!(count(&|t| t.hypervisor == Hypervisor::Xen), 80);
        assert_eq!(count(&|t| t.hypervisor == Hypervisor::Unknown), 161);
        assert_eq!(count(&|t| t.bare_metal), 160);
        assert_eq!(count(&|t| t.network_cards.len() > 1), 67);
        assert_eq!(count(&|t| t.trunking), 1059);
        assert_eq!(count(&|t| t.vcpus.is_some()), 1363);
    }

    #[test]
    fn known_entries() {
        let t = lookup("t3.medium").unwrap();
        assert_eq!(
            (t.max_enis, t.ipv4_per_eni, t.trunking, t.branch_enis),
            (3, 6, false, 0)
        );
        let c = lookup("c6in.32xlarge").unwrap();
        assert_eq!((c.max_enis, c.total_enis(), c.ipv4_per_eni), (8, 16, 50));
        let m = lookup("m5.metal").unwrap();
        assert_eq!(
            (m.hypervisor, m.bare_metal, m.branch_enis),
            (Hypervisor::Unknown, true, 120)
        );
        assert_eq!(lookup("c7g.metal").unwrap().hypervisor, Hypervisor::Nitro);
        assert_eq!(lookup("trn1.32xlarge").unwrap().network_cards.len(), 8);
    }

    #[test]
    fn family_suggests_its_smallest_sizes() {
        assert_eq!(suggestions("m5"), ["m5.large", "m5.xlarge", "m5.2xlarge"]);
    }

    #[test]
    fn nonsense_gets_no_suggestion() {
        assert!(suggestions("definitely-not-a-type").is_empty());
    }

    #[test]
    fn bad_pattern_is_reported() {
        let err = matching("m5.[").unwrap_err();
        assert!(matches!(err, Error::InvalidPattern { .. }), "{err}");
    }

    #[test]
    fn size_rank_orders_metal_variants_after_sizes() {
        let mut names = vec![
            "c8gn.metal-48xl",
            "c8gn.48xlarge",
            "c8gn.metal-24xl",
            "c8gn.medium",
        ];
        names.sort_by(|a, b| size_order(a, b));
        assert_eq!(
            names,
            [
                "c8gn.medium",
                "c8gn.48xlarge",
                "c8gn.metal-24xl",
                "c8gn.metal-48xl"
            ]
        );
    }
}

/// An instance type's networking limits as EC2's DescribeInstanceTypes reports them: how a type
/// launched after the catalogue was built gets its limits (`ipamd` at start, `eniplan max-pods
/// --live`). [`Described::limits`] applies the catalogue's own rules, so the same arithmetic
/// runs whichever way the limits came.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Described {
    /// The type's name.
    pub name: String,
    /// `nitro`, `xen`, or empty when EC2 reports none.
    pub hypervisor: String,
    /// A bare-metal type.
    pub bare_metal: bool,
    /// Private IPv4 addresses per ENI, the primary included (`Ipv4AddressesPerInterface`).
    pub ipv4_per_eni: u32,
    /// Instance-wide ENIs (`MaximumNetworkInterfaces`).
    pub max_enis: u32,
    /// The default network card's index.
    pub default_network_card_index: u32,
    /// Maximum ENIs of each network card, by card index (empty when EC2 lists no cards).
    pub network_cards: Vec<u32>,
    /// Default vCPUs.
    pub vcpus: Option<u32>,
}

impl Described {
    /// The limits the catalogue would hold for this type: the ENIs of the default network card
    /// (what the VPC CNI uses; the instance-wide count when EC2 lists no cards), no trunking
    /// (branch ENI counts come only from the resource controller's table). The value lives as
    /// long as the process: it is made once, for the type the process runs on.
    ///
    /// ```
    /// use planner::catalogue::Described;
    /// let q9 = Described {
    ///     name: "q9.large".into(), hypervisor: "nitro".into(), bare_metal: false,
    ///     ipv4_per_eni: 12, max_enis: 4, default_network_card_index: 0,
    ///     network_cards: vec![4], vcpus: Some(2),
    /// };
    /// let limits = q9.limits().unwrap();
    /// let pods = planner::max_pods::max_pods(limits, &Default::default()).max_pods;
    /// assert_eq!(pods, 4 * (12 - 1) + 2);
    /// ```
    ///
    /// # Errors
    /// [`Error::UnusableInstanceType`] when EC2's numbers cannot describe a node eniplan can
    /// serve: no ENI, fewer than two addresses per ENI, or counts beyond the catalogue's range.
    pub fn limits(&self) -> Result<&'static InstanceLimits> {
        let unusable = |reason: String| Error::UnusableInstanceType {
            name: self.name.clone(),
            reason,
        };
        let name = self.name.trim().to_ascii_lowercase();
        if name.is_empty() || !name.contains('.') {
            return Err(unusable("it is not an instance type name".to_owned()));
        }
        let small = |what: &str, n: u32| {
            u8::try_from(n).map_err(|_| unusable(format!("{what} is {n}, above 255")))
        };
        let cards: Vec<u8> = self
            .network_cards
            .iter()
            .map(|&n| small("a network card's ENI count", n))
            .collect::<Result<_>>()?;
        let default_card = small(
            "the default network card index",
            self.default_network_card_index,
        )?;
        let max_enis = match cards.get(usize::from(default_card)) {
            Some(&n) => n,
            None if cards.is_empty() => small("MaximumNetworkInterfaces", self.max_enis)?,
            None => {
                return Err(unusable(format!(
                    "its default network card {default_card} is not among its {} cards",
                    cards.len()
                )));
            }
        };
        if max_enis == 0 {
            return Err(unusable("it allows no network interface".to_owned()));
        }
        let ipv4_per_eni = small("Ipv4AddressesPerInterface", self.ipv4_per_eni)?;
        if ipv4_per_eni < 2 {
            return Err(unusable(format!(
                "an ENI holds {ipv4_per_eni} IPv4 address, so no pod can have one"
            )));
        }
        let hypervisor = match self.hypervisor.as_str() {
            "nitro" => Hypervisor::Nitro,
            "xen" => Hypervisor::Xen,
            _ => Hypervisor::Unknown,
        };
        let network_cards: &'static [u8] = if cards.is_empty() {
            Box::leak(Box::new([max_enis]))
        } else {
            Box::leak(cards.into_boxed_slice())
        };
        Ok(Box::leak(Box::new(InstanceLimits {
            name: Box::leak(name.into_boxed_str()),
            hypervisor,
            bare_metal: self.bare_metal,
            max_enis,
            ipv4_per_eni,
            default_network_card_index: default_card,
            network_cards,
            branch_enis: 0,
            trunking: false,
            vcpus: self.vcpus.and_then(|v| u16::try_from(v).ok()),
        })))
    }
}
