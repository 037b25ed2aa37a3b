//! The planner's one error type.

use thiserror::Error;

/// Everything the planner can refuse. Each variant carries the offending value.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum Error {
    /// The instance type is not in the embedded catalogue.
    #[error("unknown instance type {name:?}; {}", suggest(suggestions))]
    UnknownInstanceType {
        /// The name as the user gave it.
        name: String,
        /// Close names from the catalogue, best first (may be empty).
        suggestions: Vec<String>,
    },
    /// EC2 describes the instance type with limits no node could be served with.
    #[error("EC2 describes instance type {name:?} in a way eniplan cannot use: {reason}")]
    UnusableInstanceType {
        /// The type.
        name: String,
        /// What is wrong with its limits.
        reason: String,
    },
    /// The instance family is not in the catalogue.
    #[error("unknown instance family {name:?}; {}", suggest_family(suggestions))]
    UnknownFamily {
        /// The name as given.
        name: String,
        /// Close families, best first (may be empty).
        suggestions: Vec<String>,
    },
    /// A shell-style pattern is malformed.
    #[error("invalid instance-type pattern {pattern:?}: {reason}")]
    InvalidPattern {
        /// The pattern as given.
        pattern: String,
        /// What the pattern parser objected to.
        reason: String,
    },
    /// A pattern matched no instance type.
    #[error(
        "pattern {pattern:?} matches no instance type; patterns use shell syntax (*, ?, [..]) over names such as m5.large, e.g. 'm5.*'"
    )]
    PatternMatchesNothing {
        /// The pattern as given.
        pattern: String,
    },
    /// A VPC CNI version string could not be parsed.
    #[error(
        "invalid CNI version {value:?}: expected MAJOR.MINOR[.PATCH] such as 1.19.0 (a leading 'v' and a '-suffix' are allowed)"
    )]
    InvalidCniVersion {
        /// The string as given.
        value: String,
    },
    /// `MAX_ENI` / `--max-eni` must allow at least one ENI.
    #[error(
        "invalid max ENIs {value}: must be at least 1 (leave it unset to use the instance type's limit)"
    )]
    InvalidMaxEni {
        /// The value as given.
        value: u32,
    },
    /// A subnet CIDR that AWS would not accept: prefix length outside /16../28 or host bits set.
    #[error("invalid subnet CIDR {cidr}: {reason}")]
    InvalidSubnetCidr {
        /// The CIDR as given.
        cidr: String,
        /// What is wrong with it, and the fix.
        reason: String,
    },
    /// A CIDR given as a delegated prefix (or as a range) is not a usable, aligned block.
    #[error("invalid prefix {prefix}: {reason}")]
    InvalidPrefix {
        /// The CIDR as given.
        prefix: String,
        /// What is wrong with it, and the fix.
        reason: String,
    },
    /// EC2 `InsufficientFreeAddressesInSubnet`: fewer free addresses than requested.
    #[error(
        "InsufficientFreeAddressesInSubnet: subnet {subnet} has {free} free addresses but {requested} were requested; use a larger subnet, spread ENIs over more subnets (subnet discovery or custom networking) or lower the warm targets"
    )]
    InsufficientFreeAddressesInSubnet {
        /// The subnet's CIDR.
        subnet: String,
        /// Addresses asked for in the (atomic) request.
        requested: u32,
        /// Free addresses in the subnet at the time of the request.
        free: u32,
    },
    /// EC2 `InsufficientCidrBlocks`: fewer entirely free, aligned /28 blocks than prefixes
    /// requested, even though free addresses may remain (fragmentation).
    #[error(
        "InsufficientCidrBlocks: subnet {subnet} has {free_blocks} free aligned /28 blocks but {requested} prefixes were requested ({free_addresses} addresses are free, but a prefix needs 16 free addresses in one aligned /28); use a larger or dedicated subnet for prefix delegation, or set aside a range with a subnet CIDR reservation (aws ec2 create-subnet-cidr-reservation --reservation-type prefix)"
    )]
    InsufficientCidrBlocks {
        /// The subnet's CIDR.
        subnet: String,
        /// Prefixes asked for in the (atomic) request.
        requested: u32,
        /// Entirely free aligned /28 blocks at the time of the request.
        free_blocks: u32,
        /// Free addresses at the time of the request.
        free_addresses: u32,
    },
    /// EC2 `PrivateIpAddressLimitExceeded`: the ENI would hold more secondary addresses and
    /// prefixes than its instance type allows (`ipv4_per_eni − 1`).
    #[error(
        "PrivateIpAddressLimitExceeded: {eni} holds {held} secondary addresses or prefixes of at most {limit} and cannot take {requested} more; use fewer per call, another ENI or prefix delegation"
    )]
    PrivateIpAddressLimitExceeded {
        /// The ENI (or `a new interface`).
        eni: String,
        /// Secondary addresses and prefixes it holds.
        held: u32,
        /// Asked for in the (atomic) request.
        requested: u32,
        /// The instance type's limit.
        limit: u32,
    },
    /// EC2 `AttachmentLimitExceeded`: the network card has no free ENI slot.
    #[error(
        "AttachmentLimitExceeded: {instance_type} allows {limit} network interfaces on card {card}; detach one or use a larger instance type"
    )]
    AttachmentLimitExceeded {
        /// The instance type.
        instance_type: String,
        /// The network card index.
        card: u32,
        /// ENIs the card can attach.
        limit: u32,
    },
    /// EC2 `InvalidParameterValue` of an unassign: the address or prefix is not on the ENI.
    #[error("{item} is not assigned to {eni}")]
    NotAssigned {
        /// The ENI.
        eni: String,
        /// The address or prefix as given.
        item: String,
    },
    /// An address, prefix or range lies (partly) outside the subnet.
    #[error("{addr} is not inside subnet {subnet}; use an address or prefix within {subnet}")]
    AddressNotInSubnet {
        /// The address, prefix or range as given.
        addr: String,
        /// The subnet's CIDR.
        subnet: String,
    },
    /// A specific address was requested but it is not free.
    #[error("address {addr} is {state}; request a free address or let the allocator choose one")]
    AddressUnavailable {
        /// The address as given.
        addr: String,
        /// What currently holds it.
        state: crate::subnet::AddressState,
    },
    /// A specific /28 was requested as a prefix but not all of its 16 addresses are free.
    #[error(
        "prefix {prefix} cannot be delegated: {addr} is {state} and a delegated prefix needs all 16 addresses free; request a free /28 or let the allocator choose one"
    )]
    PrefixUnavailable {
        /// The prefix as given.
        prefix: String,
        /// The lowest address of the prefix that is not free.
        addr: String,
        /// What holds that address.
        state: crate::subnet::AddressState,
    },
    /// A release named an address or prefix that was not allocated as that kind.
    #[error(
        "{what} cannot be released: it is {state}; release only secondary IPs and prefixes that this subnet handed out"
    )]
    NotAllocated {
        /// What was to be released, e.g. `secondary IP 10.0.0.9` or `prefix 10.0.0.16/28`.
        what: String,
        /// What the address (for a prefix: its lowest used address, if any) actually is.
        state: crate::subnet::AddressState,
    },
    /// A line of a pod trace file cannot be read.
    #[error("trace line {line}: {reason}: {text:?}")]
    InvalidTrace {
        /// 1-based line number.
        line: usize,
        /// The line as written.
        text: String,
        /// What is wrong and what is expected.
        reason: String,
    },
    /// A pool setting (a VPC CNI variable) has a value eniplan cannot use.
    #[error("invalid {name}={value:?}: expected {expected}")]
    InvalidSetting {
        /// The variable, e.g. `WARM_IP_TARGET`.
        name: String,
        /// The value as given.
        value: String,
        /// What is accepted.
        expected: String,
    },
}

impl Error {
    /// The EC2 error code this refusal is, for the errors EC2 itself returns (`None` for the
    /// planner's own input errors).
    ///
    /// ```
    /// let e = planner::Error::NotAssigned { eni: "eni-1".into(), item: "10.0.0.9".into() };
    /// assert_eq!(e.ec2_code(), Some("InvalidParameterValue"));
    /// ```
    pub fn ec2_code(&self) -> Option<&'static str> {
        Some(match self {
            Error::InsufficientFreeAddressesInSubnet { .. } => "InsufficientFreeAddressesInSubnet",
            Error::InsufficientCidrBlocks { .. } => "InsufficientCidrBlocks",
            Error::PrivateIpAddressLimitExceeded { .. } => "PrivateIpAddressLimitExceeded",
            Error::AttachmentLimitExceeded { .. } => "AttachmentLimitExceeded",
            Error::NotAssigned { .. } => "InvalidParameterValue",
            _ => return None,
        })
    }
}

fn suggest_family(suggestions: &[String]) -> String {
    if suggestions.is_empty() {
        "families are the part before the dot, such as m5 or c7g".to_owned()
    } else {
        suggest(suggestions)
    }
}

fn suggest(suggestions: &[String]) -> String {
    match suggestions {
        [] => "run `eniplan instance-types` to list the known types".to_owned(),
        [one] => format!("did you mean {one}?"),
        [init @ .., last] => format!("did you mean {} or {last}?", init.join(", ")),
    }
}

/// Shorthand used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_type_message_lists_suggestions() {
        let e = Error::UnknownInstanceType {
            name: "m5.lrge".into(),
            suggestions: vec!["m5.large".into()],
        };
        assert_eq!(
            e.to_string(),
            r#"unknown instance type "m5.lrge"; did you mean m5.large?"#
        );
        let e = Error::UnknownInstanceType {
            name: "m5.x".into(),
            suggestions: vec!["m5.large".into(), "m5.xlarge".into(), "m6.xlarge".into()],
        };
        assert_eq!(
            e.to_string(),
            r#"unknown instance type "m5.x"; did you mean m5.large, m5.xlarge or m6.xlarge?"#
        );
        let e = Error::UnknownInstanceType {
            name: "zz".into(),
            suggestions: vec![],
        };
        assert!(e.to_string().contains("eniplan instance-types"));
    }
}
