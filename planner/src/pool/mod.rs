//! The warm-pool engine: one node's pool of secondary IPs or /28 prefixes as a pure,
//! deterministic state machine. The daemon executes its actions against EC2; `eniplan simulate`
//! and the forecasts execute them against an in-memory EC2 model. Same inputs, same actions.
//!
//! * **Pure**: [`Pool::step`] takes the time as an argument and returns actions; no I/O, no clock.
//! * **Deterministic**: ENIs in device order, addresses ascending, `BTreeMap`s only.
//! * **One mutating EC2 call in flight per ENI**, and one growth call per node at a time.
//! * **Same settings as the AWS VPC CNI** ([`PoolConfig`]), with its documented behaviour, except
//!   where its quirks hurt users (`docs/decisions/0002-pool-engine-quirks.md`):
//!   cooling addresses are neither handed out, released, nor counted as available; pods are
//!   packed into the fullest prefix; an ENI is freed only if the pool would not immediately need
//!   it again; with `ENIPLAN_PD_FALLBACK` a subnet without free /28s yields secondary IPs.
//!
//! ```
//! use planner::catalogue::lookup;
//! use planner::pool::{Input, Pool, PoolConfig, PodKey, Time};
//! use planner::sim::Node;
//! // S-02: m5.large, WARM_ENI_TARGET=1: one ENI of 9 addresses at rest, three after 10 pods.
//! let mut node = Node::new(lookup("m5.large")?, PoolConfig::default(), "10.0.0.0/16")?;
//! node.settle();
//! assert_eq!((node.pool.snapshot().enis.len(), node.pool.snapshot().total), (1, 9));
//! for i in 0..10 {
//!     node.add_pod(&format!("pod-{i}"));
//!     node.settle();
//! }
//! let s = node.pool.snapshot();
//! assert_eq!((s.enis.len(), s.total, s.available), (3, 27, 17));
//! # Ok::<(), planner::Error>(())
//! ```
//!
//! The engine is split by concern: [`targets`] turns every warm and minimum target into a
//! number; `state` holds the ENIs, blocks and the assignable-block index; `decide` runs the
//! periodic decisions and frees ENIs; `grow` and `shrink` size the growth and release calls;
//! `apply` applies EC2 outcomes; `observe` adopts IMDS/EC2 observations and the checkpoint;
//! `snapshot` renders the pool for introspection. This file holds [`Pool::step`] and the pod
//! requests.

mod apply;
mod config;
mod decide;
mod ec2;
mod grow;
mod observe;
mod shrink;
mod snapshot;
mod state;
pub mod targets;
#[cfg(test)]
mod testing;
mod types;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::Ipv4Addr;

use crate::catalogue::InstanceLimits;
use crate::max_pods::{AddressMode, supports_prefix_delegation};

pub use config::{PoolConfig, VARIABLES, parse_bool};
pub use ec2::{Ec2Call, Failure, Outcome};
pub use snapshot::{AddressView, EniSnapshot, PoolSnapshot};
pub use state::Pool;
use state::{Slot, ip_u32};
use targets::{Counters, floor_only};
pub use types::{
    Action, EniId, Input, NoAddress, ObservedEni, OpId, PodAddress, PodKey, Reply, Time,
};

impl Pool {
    /// A pool for a node of this instance type. Prefix delegation falls back to secondary IPs on
    /// types that are neither Nitro nor bare metal, as ipamd does ([`Pool::mode_note`] says so).
    pub fn new(limits: &InstanceLimits, config: PoolConfig) -> Pool {
        let (mode, mode_note) = if config.prefix_delegation && !supports_prefix_delegation(limits) {
            (
                AddressMode::SecondaryIp,
                Some(format!(
                    "prefix delegation needs a Nitro or bare-metal instance ({} is {}); using secondary IPs",
                    limits.name, limits.hypervisor
                )),
            )
        } else if config.prefix_delegation {
            (AddressMode::PrefixDelegation, None)
        } else {
            (AddressMode::SecondaryIp, None)
        };
        Pool {
            config,
            mode,
            mode_note,
            ipv4_per_eni: u32::from(limits.ipv4_per_eni),
            card_enis: u32::from(limits.max_enis),
            trunking: limits.trunking,
            enis: BTreeMap::new(),
            device_of: BTreeMap::new(),
            unmanaged: BTreeSet::new(),
            pods: BTreeMap::new(),
            pending: BTreeMap::new(),
            next_op: 1,
            counters: Counters::default(),
            candidates: BTreeSet::new(),
            cooling_queue: VecDeque::new(),
            growth_in_flight: None,
            growth_retry_at: Time(0),
            growth_failure: None,
            subnet_full: None,
            fallback_until: None,
            last_decrease: None,
            released_recently: BTreeMap::new(),
            leftovers_dirty: true,
            initialized: false,
            terminating: false,
            schedulable: true,
            new_enis_blocked: None,
            now: Time(0),
        }
    }

    /// The allocation mode in effect.
    pub fn mode(&self) -> AddressMode {
        self.mode
    }

    /// Why the mode differs from the one asked for, if it does.
    pub fn mode_note(&self) -> Option<&str> {
        self.mode_note.as_deref()
    }

    /// The settings.
    pub fn config(&self) -> &PoolConfig {
        &self.config
    }

    /// Every pod and its address, in key order.
    pub fn pods(&self) -> impl Iterator<Item = (&PodKey, Ipv4Addr)> {
        self.pods.iter().map(|(k, &(_, ip))| (k, ip))
    }

    /// ENIs the node may hold, all kinds counted: `min(MAX_ENI, card limit)`.
    pub fn max_enis(&self) -> u32 {
        self.config
            .max_eni
            .map_or(self.card_enis, |m| m.min(self.card_enis))
    }

    fn per_eni_slots(&self) -> u32 {
        self.ipv4_per_eni.saturating_sub(1)
    }

    fn has_trunk(&self) -> bool {
        self.enis.values().any(|e| e.trunk)
    }

    /// ENIs usable by the pool: the ENI limit minus unmanaged ENIs and the reserved trunk slot.
    fn eni_budget(&self) -> u32 {
        let reserved_trunk = u32::from(self.config.pod_eni && self.trunking && !self.has_trunk());
        let unmanaged = u32::try_from(self.unmanaged.len()).unwrap_or(u32::MAX);
        self.max_enis()
            .saturating_sub(unmanaged)
            .saturating_sub(reserved_trunk)
    }

    /// Whether the ENI budget has room for one more ENI, regardless of whether one may be
    /// created now.
    fn eni_slot_free(&self) -> bool {
        let creating = self
            .pending
            .values()
            .filter(|p| matches!(p.call, Ec2Call::CreateEni { .. }))
            .count();
        let held = self.enis.len() + creating;
        u32::try_from(held).unwrap_or(u32::MAX) < self.eni_budget()
    }

    fn has_room_for_eni(&self) -> bool {
        self.new_enis_blocked.is_none() && self.eni_slot_free()
    }

    /// Feeds one input at time `now` and returns what to do. Time never goes backwards: an
    /// earlier `now` than the last one is treated as the last one.
    pub fn step(&mut self, now: Time, input: Input) -> Vec<Action> {
        self.now = self.now.max(now);
        self.expire_cooling();
        let mut out = Vec::new();
        let input_was_tick = matches!(input, Input::Tick);
        let maintain = match input {
            Input::Tick => true,
            Input::AddPod { key } => {
                self.add_pod(key, &mut out);
                true
            }
            Input::DelPod { key } => {
                self.del_pod(key, &mut out);
                true
            }
            Input::Outcome { op, result } => {
                self.outcome(op, result, &mut out);
                true
            }
            Input::Observed { enis } => {
                self.observe(enis, &mut out);
                false
            }
            Input::Restore { allocations } => {
                self.restore(allocations, &mut out);
                false
            }
            Input::Terminate => {
                self.terminating = true;
                false
            }
            Input::Schedulable { schedulable } => {
                self.schedulable = schedulable;
                true
            }
            Input::Draining { draining } => {
                self.config.draining = draining && self.config.release_warm_unschedulable;
                true
            }
            Input::MaxPods { max_pods } => {
                self.config.max_pods = max_pods;
                true
            }
            Input::NewEnis { blocked } => {
                if self.new_enis_blocked.is_some() && blocked.is_none() {
                    // A growth that failed for want of a place may be retried at once.
                    self.growth_retry_at = self.now;
                }
                self.new_enis_blocked = blocked;
                true
            }
        };
        // The pool is re-evaluated on every tick (the daemon's 5 s loop), which batches routine
        // top-ups and shrinks into few EC2 calls. Between ticks eniplan acts at once only when it
        // is urgent: no assignable address is left, so the next pod would wait. (The reference
        // waits for the tick even then; ENIPLAN_REFERENCE_RULES does too.)
        let urgent = !self.config.reference_rules && self.counters.available() == 0;
        let maintain = maintain && (input_was_tick || urgent);
        if maintain && self.initialized {
            self.maintain(&mut out);
        }
        out
    }

    fn expire_cooling(&mut self) {
        let cooldown = self.config.ip_cooldown;
        while let Some(&(at, device, ip)) = self.cooling_queue.front() {
            if self.now < at + cooldown {
                break;
            }
            self.cooling_queue.pop_front();
            let Some(base) = self.block_base(device, ip) else {
                continue;
            };
            let offset = usize::try_from(ip - base).unwrap_or(0);
            self.update_block(device, base, |b| {
                if b.slots.get(offset) == Some(&Slot::Cooling(at)) {
                    b.slots[offset] = Slot::Free;
                    b.cooling -= 1;
                }
            });
        }
    }

    fn pod_address(&self, device: u32, ip: Ipv4Addr) -> PodAddress {
        PodAddress {
            ip,
            eni: self.enis[&device].id.clone(),
            device,
        }
    }

    fn add_pod(&mut self, key: PodKey, out: &mut Vec<Action>) {
        if let Some(&(device, ip)) = self.pods.get(&key) {
            let address = self.pod_address(device, ip);
            out.push(Action::Reply(Reply::Assigned { key, address }));
            return;
        }
        if !self.initialized {
            out.push(Action::Reply(Reply::NoAddress {
                key,
                reason: NoAddress::NotReady,
            }));
            return;
        }
        let Some(&(_, device, base)) = self.candidates.first() else {
            // Grow first so the reason can say so, then answer.
            self.maintain(out);
            let reason = self.no_address_reason();
            out.push(Action::Reply(Reply::NoAddress { key, reason }));
            return;
        };
        let offset = self
            .update_block(device, base, |b| {
                let i = b.slots.iter().position(|s| *s == Slot::Free)?;
                b.slots[i] = Slot::Assigned;
                b.used += 1;
                Some(i)
            })
            .flatten()
            .expect("a candidate block has a free slot");
        let ip = Ipv4Addr::from(base + u32::try_from(offset).unwrap_or(0));
        self.pods.insert(key.clone(), (device, ip));
        let address = self.pod_address(device, ip);
        out.push(Action::Reply(Reply::Assigned { key, address }));
    }

    fn del_pod(&mut self, key: PodKey, out: &mut Vec<Action>) {
        let Some((device, ip)) = self.pods.remove(&key) else {
            out.push(Action::Reply(Reply::UnknownPod { key }));
            return;
        };
        let address = self.pod_address(device, ip);
        self.free_slot(device, ip_u32(ip));
        out.push(Action::Reply(Reply::Released { key, address }));
    }

    /// Unbinds an address; it cools down before reuse.
    fn free_slot(&mut self, device: u32, ip: u32) {
        let Some(base) = self.block_base(device, ip) else {
            return;
        };
        let offset = usize::try_from(ip - base).unwrap_or(0);
        let now = self.now;
        let cool = !self.config.ip_cooldown.is_zero();
        self.update_block(device, base, |b| {
            if b.slots[offset] == Slot::Assigned {
                b.used -= 1;
                if cool {
                    b.slots[offset] = Slot::Cooling(now);
                    b.cooling += 1;
                } else {
                    b.slots[offset] = Slot::Free;
                }
            }
        });
        if cool {
            self.cooling_queue.push_back((now, device, ip));
        }
    }

    fn no_address_reason(&self) -> NoAddress {
        if self.growth_in_flight.is_some() {
            return NoAddress::Growing;
        }
        if self.terminating {
            return NoAddress::Terminating;
        }
        if self.config.draining {
            return NoAddress::Draining;
        }
        if !self.may_change_enis() {
            return NoAddress::Unschedulable;
        }
        if let Some((until, failure)) = &self.subnet_full
            && self.now < *until
        {
            return NoAddress::SubnetFull {
                failure: failure.clone(),
                until: *until,
            };
        }
        if let Some(failure) = &self.growth_failure
            && self.now < self.growth_retry_at
        {
            return NoAddress::GrowthRetrying {
                failure: failure.clone(),
                until: self.growth_retry_at,
            };
        }
        if self.counters.cooling > 0 {
            // The earliest release still cooling.
            let cooldown = self.config.ip_cooldown;
            if let Some(&(at, _, _)) = self
                .cooling_queue
                .iter()
                .find(|(at, _, _)| self.now < *at + cooldown)
            {
                return NoAddress::AllCooling {
                    until: at + cooldown,
                };
            }
        }
        if self.config.disable_provisioning {
            return NoAddress::ProvisioningDisabled;
        }
        if self.counters.total >= self.config.max_pods {
            return NoAddress::MaxPodsReached {
                max_pods: self.config.max_pods,
            };
        }
        if floor_only(&self.config) {
            return NoAddress::MinimumIpTargetReached {
                minimum_ip_target: self.config.minimum_ip_target,
            };
        }
        if let Some(reason) = &self.new_enis_blocked
            && self.eni_slot_free()
        {
            return NoAddress::NewEnisBlocked {
                why: reason.clone(),
            };
        }
        NoAddress::NodeFull {
            max_enis: self.eni_budget(),
        }
    }
}
