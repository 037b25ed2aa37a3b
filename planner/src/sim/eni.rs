//! The one model of EC2's network interfaces: the limits an instance type imposes (from the
//! catalogue), address and prefix allocation on a [`Subnet`], and the EC2 error codes, as typed
//! [`Error`]s ([`Error::ec2_code`]).
//!
//! Two executors share it: [`super::Ec2Model`] (one node, instant answers, for the planner's
//! simulations) and `cloud::fake::FakeEc2` (a region behind the async `Ec2` trait, adding ids,
//! MACs, tags, attachment state, descriptions and filters, fault injection). Neither implements
//! a limit, an allocation or an error code of its own.
//!
//! ```
//! use planner::catalogue::lookup;
//! use planner::sim::eni::{self, EniAddresses};
//! use planner::subnet::{Placement, Subnet};
//! let m5 = lookup("m5.large")?;
//! let mut subnet = Subnet::new("10.0.0.0/24".parse()?)?;
//! let (mut e, _, _) = EniAddresses::allocate(&mut subnet, Placement::Lowest, 0, 0)?;
//! e.assign_ips(m5, "eni-1", &mut subnet, Placement::Lowest, 9)?;
//! let full = e.assign_ips(m5, "eni-1", &mut subnet, Placement::Lowest, 1).unwrap_err();
//! assert_eq!(full.ec2_code(), Some("PrivateIpAddressLimitExceeded"));
//! assert_eq!(eni::slots_per_eni(m5), 9);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use ipnetwork::Ipv4Network;
use serde::Serialize;

use crate::catalogue::InstanceLimits;
use crate::error::{Error, Result};
use crate::pool::Failure;
use crate::subnet::{Placement, Subnet};

/// Secondary addresses and prefixes one ENI of this type can hold: `ipv4_per_eni − 1` (the
/// primary address takes the first).
pub fn slots_per_eni(limits: &InstanceLimits) -> u32 {
    u32::from(limits.ipv4_per_eni).saturating_sub(1)
}

/// ENIs network card `card` can attach (`None`: the type has no such card).
pub fn enis_on_card(limits: &InstanceLimits, card: u32) -> Option<u32> {
    let card = usize::try_from(card).ok()?;
    limits.network_cards.get(card).map(|&n| u32::from(n))
}

/// `AttachmentLimitExceeded` unless card `card`, which holds `attached` ENIs, can take one more.
pub fn check_attachment(limits: &InstanceLimits, card: u32, attached: u32) -> Result<()> {
    let limit = enis_on_card(limits, card).unwrap_or(0);
    if attached >= limit {
        return Err(Error::AttachmentLimitExceeded {
            instance_type: limits.name.to_owned(),
            card,
            limit,
        });
    }
    Ok(())
}

/// `PrivateIpAddressLimitExceeded` unless an ENI holding `held` secondary addresses and prefixes
/// can take `requested` more (`requested = 0` checks the ENI itself, as an attachment does).
pub fn check_slots(limits: &InstanceLimits, eni: &str, held: u32, requested: u32) -> Result<()> {
    let limit = slots_per_eni(limits);
    if held.saturating_add(requested) > limit {
        return Err(Error::PrivateIpAddressLimitExceeded {
            eni: eni.to_owned(),
            held,
            requested,
            limit,
        });
    }
    Ok(())
}

/// The pool engine's view of an EC2 refusal.
pub fn failure(e: &Error) -> Failure {
    match e {
        Error::InsufficientCidrBlocks { .. } => Failure::InsufficientCidrBlocks,
        Error::InsufficientFreeAddressesInSubnet { .. } => Failure::InsufficientFreeAddresses,
        Error::PrivateIpAddressLimitExceeded { .. } => Failure::IpLimitExceeded,
        Error::AttachmentLimitExceeded { .. } => Failure::AttachmentLimitExceeded,
        Error::NotAssigned { .. } => Failure::Other {
            message: format!("InvalidParameterValue: {e}"),
        },
        other => Failure::Other {
            message: other.to_string(),
        },
    }
}

/// The addresses EC2 holds for one ENI. Every change is atomic: a refused request changes
/// neither the ENI nor the subnet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EniAddresses {
    /// Primary address.
    pub primary_ip: Ipv4Addr,
    /// Secondary addresses.
    pub ips: BTreeSet<Ipv4Addr>,
    /// Delegated prefixes.
    pub prefixes: BTreeSet<Ipv4Network>,
}

impl EniAddresses {
    /// CreateNetworkInterface's allocation: a primary address, `ips` secondary addresses and
    /// `prefixes` prefixes from `subnet`, all or nothing. Also returns the new secondary
    /// addresses and prefixes in the order the subnet handed them out.
    pub fn allocate(
        subnet: &mut Subnet,
        placement: Placement,
        ips: u32,
        prefixes: u32,
    ) -> Result<(EniAddresses, Vec<Ipv4Addr>, Vec<Ipv4Network>)> {
        let primary_ip = subnet.allocate_ip(placement)?;
        let new_ips = match subnet.allocate_ips(ips, placement) {
            Ok(v) => v,
            Err(e) => {
                let _ = subnet.release_ip(primary_ip);
                return Err(e);
            }
        };
        let new_prefixes = match subnet.allocate_prefixes(prefixes, placement) {
            Ok(v) => v,
            Err(e) => {
                for ip in new_ips.iter().chain([&primary_ip]) {
                    let _ = subnet.release_ip(*ip);
                }
                return Err(e);
            }
        };
        let addresses = EniAddresses {
            primary_ip,
            ips: new_ips.iter().copied().collect(),
            prefixes: new_prefixes.iter().copied().collect(),
        };
        Ok((addresses, new_ips, new_prefixes))
    }

    /// Secondary addresses and prefixes held (the slots of [`slots_per_eni`]).
    pub fn slots(&self) -> u32 {
        u32::try_from(self.ips.len() + self.prefixes.len()).unwrap_or(u32::MAX)
    }

    /// AssignPrivateIpAddresses of `count` addresses on an ENI of type `limits` (`eni` names it
    /// in errors): the slot limit, then an atomic allocation.
    pub fn assign_ips(
        &mut self,
        limits: &InstanceLimits,
        eni: &str,
        subnet: &mut Subnet,
        placement: Placement,
        count: u32,
    ) -> Result<Vec<Ipv4Addr>> {
        check_slots(limits, eni, self.slots(), count)?;
        self.add_ips(subnet, placement, count)
    }

    /// AssignPrivateIpAddresses of `count` prefixes (see [`EniAddresses::assign_ips`]).
    pub fn assign_prefixes(
        &mut self,
        limits: &InstanceLimits,
        eni: &str,
        subnet: &mut Subnet,
        placement: Placement,
        count: u32,
    ) -> Result<Vec<Ipv4Network>> {
        check_slots(limits, eni, self.slots(), count)?;
        self.add_prefixes(subnet, placement, count)
    }

    /// Allocates `count` addresses onto the ENI with no limit check: for an ENI that is not
    /// attached (EC2 checks its limit when it is attached) or for other software's assignments.
    pub fn add_ips(
        &mut self,
        subnet: &mut Subnet,
        placement: Placement,
        count: u32,
    ) -> Result<Vec<Ipv4Addr>> {
        let got = subnet.allocate_ips(count, placement)?;
        self.ips.extend(got.iter().copied());
        Ok(got)
    }

    /// Allocates `count` prefixes onto the ENI with no limit check (see [`EniAddresses::add_ips`]).
    pub fn add_prefixes(
        &mut self,
        subnet: &mut Subnet,
        placement: Placement,
        count: u32,
    ) -> Result<Vec<Ipv4Network>> {
        let got = subnet.allocate_prefixes(count, placement)?;
        self.prefixes.extend(got.iter().copied());
        Ok(got)
    }

    /// UnassignPrivateIpAddresses of addresses: every one must be on the ENI, or nothing changes
    /// ([`Error::NotAssigned`], `InvalidParameterValue`).
    pub fn unassign_ips(&mut self, eni: &str, subnet: &mut Subnet, ips: &[Ipv4Addr]) -> Result<()> {
        if let Some(ip) = ips.iter().find(|ip| !self.ips.contains(ip)) {
            return Err(Error::NotAssigned {
                eni: eni.to_owned(),
                item: ip.to_string(),
            });
        }
        for ip in ips {
            self.ips.remove(ip);
            let _ = subnet.release_ip(*ip);
        }
        Ok(())
    }

    /// UnassignPrivateIpAddresses of prefixes (see [`EniAddresses::unassign_ips`]).
    pub fn unassign_prefixes(
        &mut self,
        eni: &str,
        subnet: &mut Subnet,
        prefixes: &[Ipv4Network],
    ) -> Result<()> {
        if let Some(p) = prefixes.iter().find(|p| !self.prefixes.contains(p)) {
            return Err(Error::NotAssigned {
                eni: eni.to_owned(),
                item: p.to_string(),
            });
        }
        for p in prefixes {
            self.prefixes.remove(p);
            let _ = subnet.release_prefix(*p);
        }
        Ok(())
    }

    /// DeleteNetworkInterface: every address and prefix goes back to the subnet.
    pub fn release(&self, subnet: &mut Subnet) {
        for ip in self.ips.iter().chain([&self.primary_ip]) {
            let _ = subnet.release_ip(*ip);
        }
        for p in &self.prefixes {
            let _ = subnet.release_prefix(*p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalogue::lookup;

    fn subnet(cidr: &str) -> Subnet {
        Subnet::new(cidr.parse().unwrap()).unwrap()
    }

    #[test]
    fn a_refused_create_changes_nothing() {
        // A /28: 11 usable addresses, no free /28 once one address is used.
        let mut s = subnet("10.0.0.0/28");
        let before = s.clone();
        let e = EniAddresses::allocate(&mut s, Placement::Lowest, 2, 1).unwrap_err();
        assert_eq!(e.ec2_code(), Some("InsufficientCidrBlocks"));
        assert_eq!(s, before);
        let e = EniAddresses::allocate(&mut s, Placement::Lowest, 11, 0).unwrap_err();
        assert_eq!(e.ec2_code(), Some("InsufficientFreeAddressesInSubnet"));
        assert_eq!(s, before);
    }

    #[test]
    fn limits_come_from_the_catalogue() {
        let p5 = lookup("p5.48xlarge").unwrap();
        assert_eq!(enis_on_card(p5, 0), Some(u32::from(p5.network_cards[0])));
        assert_eq!(enis_on_card(p5, 99), None);
        let e = check_attachment(p5, 99, 0).unwrap_err();
        assert_eq!(e.ec2_code(), Some("AttachmentLimitExceeded"));
        let m5 = lookup("m5.large").unwrap();
        assert!(check_attachment(m5, 0, 2).is_ok());
        assert!(check_attachment(m5, 0, 3).is_err());
        assert!(check_slots(m5, "eni-1", 9, 0).is_ok());
        assert!(check_slots(m5, "eni-1", 10, 0).is_err());
    }

    #[test]
    fn the_default_card_limit_is_the_catalogues_max_enis() {
        // The node model attaches on the default card through `check_attachment`: the limit
        // it sees is the `max_enis` every max-pods figure uses.
        for t in crate::catalogue::all() {
            let card = u32::from(t.default_network_card_index);
            assert_eq!(
                enis_on_card(t, card),
                Some(u32::from(t.max_enis)),
                "{}",
                t.name
            );
        }
    }

    #[test]
    fn unassign_of_anything_not_held_is_refused_whole() {
        let m5 = lookup("m5.large").unwrap();
        let mut s = subnet("10.0.0.0/24");
        let (mut e, _, _) = EniAddresses::allocate(&mut s, Placement::Lowest, 3, 0).unwrap();
        let held: Vec<Ipv4Addr> = e.ips.iter().copied().collect();
        let stranger = Ipv4Addr::new(10, 0, 0, 200);
        let err = e
            .unassign_ips("eni-1", &mut s, &[held[0], stranger])
            .unwrap_err();
        assert_eq!(err.to_string(), "10.0.0.200 is not assigned to eni-1");
        assert_eq!(
            failure(&err),
            Failure::Other {
                message: "InvalidParameterValue: 10.0.0.200 is not assigned to eni-1".into()
            }
        );
        assert_eq!(e.ips.len(), 3);
        e.unassign_ips("eni-1", &mut s, &held).unwrap();
        let p = e
            .assign_prefixes(m5, "eni-1", &mut s, Placement::Lowest, 1)
            .unwrap();
        e.release(&mut s);
        assert_eq!(s.free_addresses(), s.usable(), "{p:?}");
    }
}
