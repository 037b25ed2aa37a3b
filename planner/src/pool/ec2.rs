//! The EC2 side of the engine's data: the calls it asks for ([`Ec2Call`]), what EC2 did when
//! one succeeded ([`Outcome`]) and why one failed ([`Failure`]).

use std::fmt;
use std::net::Ipv4Addr;

use ipnetwork::Ipv4Network;
use serde::{Deserialize, Serialize};

use super::EniId;
#[cfg(doc)]
use super::Input;

/// What EC2 did, for an operation that succeeded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "kebab-case")]
pub enum Outcome {
    /// CreateNetworkInterface + AttachNetworkInterface succeeded.
    EniCreated {
        /// The new ENI.
        eni: EniId,
        /// Its device number.
        device: u32,
        /// Its primary address.
        primary_ip: Ipv4Addr,
        /// Secondary addresses it came with.
        ips: Vec<Ipv4Addr>,
        /// Prefixes it came with.
        prefixes: Vec<Ipv4Network>,
    },
    /// AssignPrivateIpAddresses (count) succeeded with these new addresses.
    IpsAssigned {
        /// The new addresses.
        ips: Vec<Ipv4Addr>,
    },
    /// AssignPrivateIpAddresses (prefix count) succeeded with these prefixes.
    PrefixesAssigned {
        /// The new prefixes.
        prefixes: Vec<Ipv4Network>,
    },
    /// UnassignPrivateIpAddresses succeeded.
    Unassigned,
    /// DetachNetworkInterface + DeleteNetworkInterface succeeded.
    EniDeleted,
    /// DescribeNetworkInterfaces of one ENI.
    EniDescribed {
        /// Its secondary addresses.
        ips: Vec<Ipv4Addr>,
        /// Its prefixes.
        prefixes: Vec<Ipv4Network>,
    },
}

/// Why an EC2 operation failed, classified once by the adapter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "failure", rename_all = "kebab-case")]
pub enum Failure {
    /// `InsufficientCidrBlocks`: no aligned free /28 in the subnet.
    InsufficientCidrBlocks,
    /// `InsufficientFreeAddressesInSubnet`.
    InsufficientFreeAddresses,
    /// `PrivateIpAddressLimitExceeded`: the ENI is fuller than the engine believed.
    IpLimitExceeded,
    /// `AttachmentLimitExceeded`: the instance has no free ENI slot.
    AttachmentLimitExceeded,
    /// Throttled after the adapter's retries.
    Throttled,
    /// The ENI (or attachment) does not exist.
    NotFound,
    /// The caller lacks an IAM permission.
    Unauthorized {
        /// The IAM action, e.g. `ec2:AssignPrivateIpAddresses`.
        action: String,
    },
    /// Anything else (transient or not), with its message.
    Other {
        /// The error as the adapter printed it.
        message: String,
    },
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::InsufficientCidrBlocks => f.write_str("InsufficientCidrBlocks"),
            Failure::InsufficientFreeAddresses => f.write_str("InsufficientFreeAddressesInSubnet"),
            Failure::IpLimitExceeded => f.write_str("PrivateIpAddressLimitExceeded"),
            Failure::AttachmentLimitExceeded => f.write_str("AttachmentLimitExceeded"),
            Failure::Throttled => f.write_str("RequestLimitExceeded"),
            Failure::NotFound => f.write_str("NotFound"),
            Failure::Unauthorized { action } => write!(f, "UnauthorizedOperation ({action})"),
            Failure::Other { message } => f.write_str(message),
        }
    }
}

impl Failure {
    /// The subnet has no room: starts the 120 s growth back-off.
    pub fn is_subnet_full(&self) -> bool {
        matches!(
            self,
            Failure::InsufficientCidrBlocks | Failure::InsufficientFreeAddresses
        )
    }
}

/// An EC2 operation the engine wants done. The executor runs it and feeds the result back as
/// [`Input::Outcome`] with the same `op`. At most one is in flight per ENI.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "api")]
pub enum Ec2Call {
    /// CreateNetworkInterface (with `ips` secondary addresses or `prefixes` /28s) in the node's
    /// pod subnet, then AttachNetworkInterface at the lowest free device index, then
    /// `DeleteOnTermination`.
    CreateEni {
        /// Secondary addresses to create it with.
        ips: u32,
        /// Prefixes to create it with.
        prefixes: u32,
    },
    /// AssignPrivateIpAddresses with `SecondaryPrivateIpAddressCount`.
    AssignIps {
        /// The ENI.
        eni: EniId,
        /// How many.
        count: u32,
    },
    /// AssignPrivateIpAddresses with `Ipv4PrefixCount`.
    AssignPrefixes {
        /// The ENI.
        eni: EniId,
        /// How many.
        count: u32,
    },
    /// UnassignPrivateIpAddresses with these addresses.
    UnassignIps {
        /// The ENI.
        eni: EniId,
        /// The addresses.
        ips: Vec<Ipv4Addr>,
    },
    /// UnassignPrivateIpAddresses with these prefixes.
    UnassignPrefixes {
        /// The ENI.
        eni: EniId,
        /// The prefixes.
        prefixes: Vec<Ipv4Network>,
    },
    /// DetachNetworkInterface then DeleteNetworkInterface.
    DeleteEni {
        /// The ENI.
        eni: EniId,
    },
    /// DescribeNetworkInterfaces for one ENI (after `PrivateIpAddressLimitExceeded`).
    DescribeEni {
        /// The ENI.
        eni: EniId,
    },
}

impl Ec2Call {
    /// The EC2 API name(s) this call stands for, for counting.
    pub fn api(&self) -> &'static str {
        match self {
            Ec2Call::CreateEni { .. } => "CreateNetworkInterface",
            Ec2Call::AssignIps { .. } | Ec2Call::AssignPrefixes { .. } => {
                "AssignPrivateIpAddresses"
            }
            Ec2Call::UnassignIps { .. } | Ec2Call::UnassignPrefixes { .. } => {
                "UnassignPrivateIpAddresses"
            }
            Ec2Call::DeleteEni { .. } => "DeleteNetworkInterface",
            Ec2Call::DescribeEni { .. } => "DescribeNetworkInterfaces",
        }
    }
}

impl fmt::Display for Ec2Call {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ec2Call::CreateEni { ips, prefixes: 0 } => {
                write!(f, "CreateNetworkInterface(ips={ips})")
            }
            Ec2Call::CreateEni { prefixes, .. } => {
                write!(f, "CreateNetworkInterface(prefixes={prefixes})")
            }
            Ec2Call::AssignIps { eni, count } => {
                write!(f, "AssignPrivateIpAddresses({eni}, ips={count})")
            }
            Ec2Call::AssignPrefixes { eni, count } => {
                write!(f, "AssignPrivateIpAddresses({eni}, prefixes={count})")
            }
            Ec2Call::UnassignIps { eni, ips } => {
                write!(f, "UnassignPrivateIpAddresses({eni}, {} ips)", ips.len())
            }
            Ec2Call::UnassignPrefixes { eni, prefixes } => {
                write!(
                    f,
                    "UnassignPrivateIpAddresses({eni}, {} prefixes)",
                    prefixes.len()
                )
            }
            Ec2Call::DeleteEni { eni } => {
                write!(f, "DetachNetworkInterface+DeleteNetworkInterface({eni})")
            }
            Ec2Call::DescribeEni { eni } => write!(f, "DescribeNetworkInterfaces({eni})"),
        }
    }
}
