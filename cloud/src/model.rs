//! The EC2 and IMDS objects eniplan reads, converted from the SDK's shapes (where every field is
//! optional) into values with the fields eniplan needs.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use ipnetwork::Ipv4Network;
use planner::pool::{EniId, ObservedEni};
use serde::{Deserialize, Serialize};

/// `InterfaceType` of an ENI.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum InterfaceType {
    /// A regular ENI.
    Interface,
    /// A trunk ENI (security groups for pods).
    Trunk,
    /// A branch ENI.
    Branch,
    /// An EFA ENI.
    Efa,
    /// An EFA-only ENI.
    EfaOnly,
    /// Anything else EC2 reports.
    Other(String),
}

impl InterfaceType {
    /// Parses EC2's spelling.
    pub fn parse(s: &str) -> InterfaceType {
        match s {
            "interface" | "" => InterfaceType::Interface,
            "trunk" => InterfaceType::Trunk,
            "branch" => InterfaceType::Branch,
            "efa" => InterfaceType::Efa,
            "efa-only" => InterfaceType::EfaOnly,
            other => InterfaceType::Other(other.to_owned()),
        }
    }

    /// EC2's spelling.
    pub fn as_str(&self) -> &str {
        match self {
            InterfaceType::Interface => "interface",
            InterfaceType::Trunk => "trunk",
            InterfaceType::Branch => "branch",
            InterfaceType::Efa => "efa",
            InterfaceType::EfaOnly => "efa-only",
            InterfaceType::Other(s) => s,
        }
    }
}

/// An ENI's attachment to an instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Attachment {
    /// `eni-attach-…`.
    pub id: String,
    /// The instance.
    pub instance_id: String,
    /// Device index (0 = primary).
    pub device_index: u32,
    /// Network card index.
    pub network_card_index: u32,
    /// Deleted with the instance.
    pub delete_on_termination: bool,
    /// `attached`, `attaching`, `detaching`, `detached`.
    pub status: String,
}

/// An elastic network interface.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NetworkInterface {
    /// ENI id.
    pub id: EniId,
    /// Subnet.
    pub subnet_id: String,
    /// VPC.
    pub vpc_id: String,
    /// Availability zone.
    pub availability_zone: String,
    /// Description.
    pub description: String,
    /// MAC address (lower case).
    pub mac: String,
    /// Interface type.
    pub interface_type: InterfaceType,
    /// `available` or `in-use` (or another EC2 status).
    pub status: String,
    /// Primary private IPv4 address.
    pub primary_ip: Ipv4Addr,
    /// Secondary private IPv4 addresses, ascending.
    pub secondary_ips: Vec<Ipv4Addr>,
    /// Delegated IPv4 prefixes, ascending.
    pub prefixes: Vec<Ipv4Network>,
    /// Attachment, when attached.
    pub attachment: Option<Attachment>,
    /// Tags.
    pub tags: BTreeMap<String, String>,
    /// Security group ids.
    pub security_groups: Vec<String>,
}

/// A subnet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SubnetInfo {
    /// Subnet id.
    pub id: String,
    /// VPC.
    pub vpc_id: String,
    /// IPv4 CIDR.
    pub cidr: Ipv4Network,
    /// Availability zone.
    pub availability_zone: String,
    /// EC2's `AvailableIpAddressCount`.
    pub available_ip_addresses: u32,
    /// Tags.
    pub tags: BTreeMap<String, String>,
}

/// An instance, as DescribeInstances shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Instance {
    /// Instance id.
    pub id: String,
    /// Instance type.
    pub instance_type: String,
    /// Subnet of the primary ENI.
    pub subnet_id: String,
    /// VPC.
    pub vpc_id: String,
    /// Availability zone.
    pub availability_zone: String,
    /// Primary private address.
    pub private_ip: Ipv4Addr,
    /// Attached ENI ids by device index.
    pub network_interfaces: BTreeMap<u32, EniId>,
}

/// Networking limits of an instance type, as DescribeInstanceTypes shows them (and as ipamd
/// caches them in its state directory).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceTypeInfo {
    /// Instance type.
    pub name: String,
    /// ENIs over all cards (`MaximumNetworkInterfaces`).
    pub max_enis: u32,
    /// Max ENIs per card, by card index.
    pub network_cards: Vec<u32>,
    /// Default network card.
    pub default_network_card_index: u32,
    /// IPv4 addresses per ENI.
    pub ipv4_per_eni: u32,
    /// `nitro`, `xen` or empty.
    pub hypervisor: String,
    /// Bare metal.
    pub bare_metal: bool,
    /// Default vCPUs.
    pub vcpus: Option<u32>,
}

impl InstanceTypeInfo {
    /// The limits in the planner's terms, for [`planner::catalogue::Described::limits`].
    pub fn described(&self) -> planner::catalogue::Described {
        planner::catalogue::Described {
            name: self.name.clone(),
            hypervisor: self.hypervisor.clone(),
            bare_metal: self.bare_metal,
            ipv4_per_eni: self.ipv4_per_eni,
            max_enis: self.max_enis,
            default_network_card_index: self.default_network_card_index,
            network_cards: self.network_cards.clone(),
            vcpus: self.vcpus,
        }
    }
}

/// Which ENIs to describe (every field narrows; empty means no filter).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EniFilter {
    /// Exactly these ENIs.
    pub ids: Vec<EniId>,
    /// Attached to this instance.
    pub instance_id: Option<String>,
    /// In this subnet.
    pub subnet_id: Option<String>,
    /// In this VPC.
    pub vpc_id: Option<String>,
    /// `available` or `in-use`.
    pub status: Option<String>,
    /// Carrying this tag key.
    pub tag_key: Option<String>,
    /// Carrying these tags with these values.
    pub tags: BTreeMap<String, String>,
}

/// What a new ENI should look like.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CreateEni {
    /// Subnet to create it in.
    pub subnet_id: String,
    /// Description (`aws-K8S-<instance id>` by convention).
    pub description: String,
    /// Security groups (empty: the VPC default).
    pub security_groups: Vec<String>,
    /// Secondary addresses to create it with.
    pub secondary_ips: u32,
    /// Prefixes to create it with.
    pub prefixes: u32,
    /// `trunk` for security groups for pods; `None` for a regular ENI.
    pub interface_type: Option<InterfaceType>,
    /// Tags.
    pub tags: BTreeMap<String, String>,
}

/// The instance identity from IMDS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InstanceIdentity {
    /// Instance id.
    pub instance_id: String,
    /// Instance type.
    pub instance_type: String,
    /// Availability zone.
    pub availability_zone: String,
    /// Region.
    pub region: String,
    /// Primary private address.
    pub private_ip: Ipv4Addr,
    /// MAC of the primary ENI.
    pub mac: String,
}

/// One ENI as IMDS shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImdsInterface {
    /// MAC.
    pub mac: String,
    /// Device number.
    pub device_number: u32,
    /// Network card.
    pub network_card: u32,
    /// ENI id.
    pub interface_id: EniId,
    /// Subnet.
    pub subnet_id: String,
    /// Subnet CIDR.
    pub subnet_cidr: Ipv4Network,
    /// VPC CIDRs.
    pub vpc_cidrs: Vec<Ipv4Network>,
    /// Security groups.
    pub security_groups: Vec<String>,
    /// Private IPv4 addresses, the primary first.
    pub local_ipv4s: Vec<Ipv4Addr>,
    /// Delegated prefixes.
    pub ipv4_prefixes: Vec<Ipv4Network>,
}

impl ImdsInterface {
    /// The engine's view of this ENI (managed, not a trunk: EC2 tags decide those).
    pub fn observed(&self) -> Option<ObservedEni> {
        let (&primary_ip, secondaries) = self.local_ipv4s.split_first()?;
        Some(ObservedEni {
            id: self.interface_id.clone(),
            device: self.device_number,
            primary_ip,
            ips: secondaries.to_vec(),
            prefixes: self.ipv4_prefixes.clone(),
            trunk: false,
            unmanaged: false,
        })
    }
}
