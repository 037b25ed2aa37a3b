//! The capacity library's one error type: its own refusals (a spec with problems, a layout
//! that does not fit, a bad value) and, wrapped, the core's.

use thiserror::Error;

/// Everything capacity planning can refuse. Each variant carries the offending value.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum Error {
    /// The core refused something (an unknown instance type, a bad subnet CIDR, EC2's
    /// address errors replayed on the subnet model, an invalid VPC CNI setting).
    #[error(transparent)]
    Core(#[from] planner::Error),
    /// The cluster spec has problems; each names its location (`node_groups[2].nodes`).
    #[error("{}", issues_text(issues))]
    InvalidSpec {
        /// Every problem found, in file order.
        issues: Vec<SpecIssue>,
    },
    /// A command-line value (a percentage, a duration, a CIDR) cannot be read.
    #[error("invalid {name} {value:?}: expected {expected}")]
    InvalidArgument {
        /// The flag or field, e.g. `--fail-under-headroom`.
        name: String,
        /// The value as given.
        value: String,
        /// What is accepted.
        expected: String,
    },
    /// A custom-networking layout does not fit in the CIDR it was given.
    #[error(
        "the layout does not fit: {needed} addresses are needed ({detail}) but {cidr} has {available}; short by {short_by}. Use a larger CIDR (a /{suggested_prefix} fits), lower --headroom, or fewer nodes"
    )]
    LayoutDoesNotFit {
        /// The CIDR given.
        cidr: String,
        /// Addresses the per-AZ subnets need (rounded up to CIDR sizes).
        needed: u64,
        /// Addresses in the CIDR.
        available: u64,
        /// `needed − available` (at least 1).
        short_by: u64,
        /// The subnets that were wanted, e.g. `3 × /17`.
        detail: String,
        /// The prefix length of the smallest CIDR that would hold them.
        suggested_prefix: u8,
    },
    /// One AZ alone needs a pod subnet larger than AWS allows.
    #[error(
        "AZ {az} needs a pod subnet of {needed} addresses, but an AWS subnet is at most a /16 (65536); short by {short_by}. Split its node groups over more AZs, lower --headroom, or use prefix delegation"
    )]
    LayoutSubnetTooLarge {
        /// The AZ.
        az: String,
        /// Addresses (a power of two) its subnet would need.
        needed: u64,
        /// `needed − 65536`.
        short_by: u64,
    },
}

/// One problem of a cluster spec.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SpecIssue {
    /// Where: `node_groups[2].instance_types[0]` (empty for a YAML syntax error, whose message
    /// carries the path and line).
    pub path: String,
    /// What is wrong and, where there is one, the fix.
    pub message: String,
}

impl std::fmt::Display for SpecIssue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

fn issues_text(issues: &[SpecIssue]) -> String {
    match issues {
        [one] => format!("cluster spec: {one}"),
        many => {
            let mut s = format!("cluster spec: {} problems:", many.len());
            for i in many {
                s.push_str("\n  ");
                s.push_str(&i.to_string());
            }
            s
        }
    }
}

/// Shorthand used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
