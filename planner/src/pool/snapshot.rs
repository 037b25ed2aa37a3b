//! Read-only views of the pool: [`PoolSnapshot`] (counters and ENIs) and [`AddressView`]
//! (every held address), for tests, simulations, introspection and metrics.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use ipnetwork::Ipv4Network;
use serde::Serialize;

use crate::max_pods::AddressMode;

use super::state::{Block, Slot, net_of};
use super::{Ec2Call, EniId, OpId, PodKey, Pool, Time};

impl Pool {
    /// The pool as it is now.
    pub fn snapshot(&self) -> PoolSnapshot {
        let enis = self
            .enis
            .values()
            .map(|e| EniSnapshot {
                id: e.id.clone(),
                device: e.device,
                primary: e.primary(),
                trunk: e.trunk,
                deleting: e.deleting,
                ips: u32::try_from(e.blocks.values().filter(|b| !b.prefix).count())
                    .unwrap_or(u32::MAX),
                prefixes: u32::try_from(e.blocks.values().filter(|b| b.prefix).count())
                    .unwrap_or(u32::MAX),
                addresses: e.blocks.values().map(Block::size).sum(),
                assigned: e.assigned,
                cooling: e.cooling,
                busy: e.busy,
            })
            .collect();
        PoolSnapshot {
            time: self.now,
            mode: self.mode,
            initialized: self.initialized,
            terminating: self.terminating,
            enis,
            unmanaged_enis: u32::try_from(self.unmanaged.len()).unwrap_or(u32::MAX),
            max_enis: self.max_enis(),
            eni_budget: self.eni_budget(),
            total: self.counters.total,
            assigned: self.counters.assigned,
            cooling: self.counters.cooling,
            available: self.counters.available(),
            prefixes: self.counters.prefixes,
            free_prefixes: self.counters.free_prefixes,
            pods: u32::try_from(self.pods.len()).unwrap_or(u32::MAX),
            in_flight: self
                .pending
                .iter()
                .map(|(op, p)| (*op, p.call.clone()))
                .collect(),
            subnet_full_until: self
                .subnet_full
                .as_ref()
                .map(|(t, _)| *t)
                .filter(|t| self.now < *t),
            fallback_until: self.fallback_until.filter(|t| self.now < *t),
        }
    }

    /// Every held address with its state, for introspection and property tests.
    pub fn addresses(&self) -> Vec<AddressView> {
        let owner: BTreeMap<Ipv4Addr, &PodKey> =
            self.pods.iter().map(|(k, &(_, ip))| (ip, k)).collect();
        let mut v = Vec::new();
        for e in self.enis.values() {
            for (&base, b) in &e.blocks {
                for (i, slot) in b.slots.iter().enumerate() {
                    let ip = Ipv4Addr::from(base + u32::try_from(i).unwrap_or(0));
                    v.push(AddressView {
                        ip,
                        eni: e.id.clone(),
                        prefix: b.prefix.then(|| net_of(base, true)),
                        pod: owner.get(&ip).map(|k| (*k).clone()),
                        cooling_since: match slot {
                            Slot::Cooling(t) => Some(*t),
                            _ => None,
                        },
                        releasing: b.releasing,
                    });
                }
            }
        }
        v
    }
}

/// One ENI in a [`PoolSnapshot`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EniSnapshot {
    /// ENI id.
    pub id: EniId,
    /// Device number.
    pub device: u32,
    /// The primary ENI.
    pub primary: bool,
    /// A trunk ENI.
    pub trunk: bool,
    /// Being deleted.
    pub deleting: bool,
    /// Secondary IPs held.
    pub ips: u32,
    /// Prefixes held.
    pub prefixes: u32,
    /// Addresses held (IPs + 16 × prefixes).
    pub addresses: u32,
    /// Addresses bound to pods.
    pub assigned: u32,
    /// Addresses cooling down.
    pub cooling: u32,
    /// The EC2 call in flight on it.
    pub busy: Option<OpId>,
}

/// The pool's state, for tests, simulations, introspection and metrics.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PoolSnapshot {
    /// The engine's time.
    pub time: Time,
    /// Allocation mode in effect.
    pub mode: AddressMode,
    /// Initialised from IMDS.
    pub initialized: bool,
    /// Shutting down.
    pub terminating: bool,
    /// Managed ENIs by device number (trunk included).
    pub enis: Vec<EniSnapshot>,
    /// Attached ENIs the pool does not manage.
    pub unmanaged_enis: u32,
    /// `min(MAX_ENI, card limit)`.
    pub max_enis: u32,
    /// ENIs the pool may hold: `max_enis` minus unmanaged ENIs and a reserved trunk slot.
    pub eni_budget: u32,
    /// Pod-usable addresses held.
    pub total: u32,
    /// Bound to pods.
    pub assigned: u32,
    /// Cooling down.
    pub cooling: u32,
    /// Assignable now: `total − assigned − cooling`.
    pub available: u32,
    /// Prefixes held.
    pub prefixes: u32,
    /// Prefixes with no bound or cooling address.
    pub free_prefixes: u32,
    /// Pods holding an address.
    pub pods: u32,
    /// EC2 calls in flight.
    pub in_flight: Vec<(OpId, Ec2Call)>,
    /// Growth paused until then (subnet full).
    pub subnet_full_until: Option<Time>,
    /// Prefix fallback to secondary IPs active until then.
    pub fallback_until: Option<Time>,
}

/// One held address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AddressView {
    /// The address.
    pub ip: Ipv4Addr,
    /// Its ENI.
    pub eni: EniId,
    /// The prefix it belongs to, if any.
    pub prefix: Option<Ipv4Network>,
    /// The pod holding it.
    pub pod: Option<PodKey>,
    /// Cooling since.
    pub cooling_since: Option<Time>,
    /// Being released to EC2.
    pub releasing: bool,
}
