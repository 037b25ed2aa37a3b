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

mod config;
pub mod targets;
mod types;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::Ipv4Addr;

use ipnetwork::Ipv4Network;
use serde::Serialize;

use crate::catalogue::InstanceLimits;
use crate::max_pods::{AddressMode, supports_prefix_delegation};

pub use config::{PoolConfig, VARIABLES, parse_bool};
use targets::{Counters, PREFIX, Targets, addresses_per_eni, is_high, is_low, target_state};
pub use types::{
    Action, Ec2Call, EniId, Failure, Input, NoAddress, ObservedEni, OpId, Outcome, PodAddress,
    PodKey, Reply, Time,
};

/// One address slot of a block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    /// Never used, or released long ago.
    Free,
    /// Bound to a pod.
    Assigned,
    /// Released by a pod at this time; assignable again after `IP_COOLDOWN_PERIOD`.
    Cooling(Time),
}

/// A secondary IP (one slot) or a delegated prefix (16 slots).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Block {
    prefix: bool,
    slots: Vec<Slot>,
    used: u8,
    cooling: u8,
    /// Handed back to EC2; waiting for the outcome. Not assignable, not counted.
    releasing: bool,
    /// When EC2 gave it to the pool: an observation older than the grant may not show it yet.
    added_at: Time,
}

impl Block {
    fn new(prefix: bool, added_at: Time) -> Block {
        Block {
            prefix,
            slots: vec![Slot::Free; if prefix { 16 } else { 1 }],
            used: 0,
            cooling: 0,
            releasing: false,
            added_at,
        }
    }
    fn size(&self) -> u32 {
        if self.prefix { PREFIX } else { 1 }
    }
    fn idle(&self) -> bool {
        self.used == 0 && self.cooling == 0
    }
    fn has_assignable(&self) -> bool {
        u32::from(self.used) + u32::from(self.cooling) < self.size()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Eni {
    id: EniId,
    device: u32,
    primary_ip: Ipv4Addr,
    trunk: bool,
    added_at: Time,
    /// Keyed by the block's base address.
    blocks: BTreeMap<u32, Block>,
    /// The mutating EC2 call in flight on this ENI.
    busy: Option<OpId>,
    /// Being detached and deleted.
    deleting: bool,
    assigned: u32,
    cooling: u32,
}

impl Eni {
    fn primary(&self) -> bool {
        self.device == 0
    }
}

/// What an in-flight operation was for.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Pending {
    call: Ec2Call,
    /// The ENI it runs on (`None` for a new ENI).
    device: Option<u32>,
    /// 1 for the first try, 2 for the single-address retry.
    attempt: u8,
    growth: bool,
}

/// The pool of one node. See the module documentation.
#[derive(Debug, Clone)]
pub struct Pool {
    config: PoolConfig,
    mode: AddressMode,
    mode_note: Option<String>,
    ipv4_per_eni: u32,
    card_enis: u32,
    trunking: bool,
    enis: BTreeMap<u32, Eni>,
    device_of: BTreeMap<EniId, u32>,
    unmanaged: BTreeSet<EniId>,
    pods: BTreeMap<PodKey, (u32, Ipv4Addr)>,
    pending: BTreeMap<OpId, Pending>,
    next_op: u64,
    counters: Counters,
    /// Blocks with an assignable slot: fullest prefix first, then device, then address.
    candidates: BTreeSet<(Reverse<u8>, u32, u32)>,
    cooling_queue: VecDeque<(Time, u32, u32)>,
    growth_in_flight: Option<OpId>,
    growth_retry_at: Time,
    subnet_full: Option<(Time, Failure)>,
    fallback_until: Option<Time>,
    last_decrease: Option<Time>,
    released_recently: BTreeMap<u32, Time>,
    leftovers_dirty: bool,
    initialized: bool,
    terminating: bool,
    schedulable: bool,
    now: Time,
}

/// How long growth waits after a failed call that was not a subnet-full error (one pool check).
const GROWTH_RETRY: std::time::Duration = std::time::Duration::from_secs(5);

fn ip_u32(ip: Ipv4Addr) -> u32 {
    u32::from(ip)
}

fn net_of(base: u32, prefix: bool) -> Ipv4Network {
    Ipv4Network::new(Ipv4Addr::from(base), if prefix { 28 } else { 32 })
        .expect("28 and 32 are valid IPv4 prefix lengths")
}

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
            subnet_full: None,
            fallback_until: None,
            last_decrease: None,
            released_recently: BTreeMap::new(),
            leftovers_dirty: true,
            initialized: false,
            terminating: false,
            schedulable: true,
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

    /// The address a pod holds, if any.
    pub fn address_of(&self, key: &PodKey) -> Option<Ipv4Addr> {
        self.pods.get(key).map(|&(_, ip)| ip)
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

    fn has_room_for_eni(&self) -> bool {
        let creating = self
            .pending
            .values()
            .filter(|p| matches!(p.call, Ec2Call::CreateEni { .. }))
            .count();
        let held = self.enis.len() + creating;
        u32::try_from(held).unwrap_or(u32::MAX) < self.eni_budget()
    }

    fn fallback_active(&self) -> bool {
        self.fallback_until.is_some_and(|t| self.now < t)
    }

    /// Whether a block of this kind counts in the pool (the mode's kind; secondary IPs too in
    /// prefix mode when the fallback is enabled).
    fn eligible(&self, prefix: bool) -> bool {
        match self.mode {
            AddressMode::SecondaryIp => !prefix,
            AddressMode::PrefixDelegation => prefix || self.config.pd_fallback,
        }
    }

    fn usable_eni(&self, eni: &Eni) -> bool {
        let idle_primary = self.config.custom_networking && eni.primary() && eni.blocks.is_empty();
        !(eni.trunk || eni.deleting || idle_primary)
    }

    fn candidate_key(
        &self,
        eni: &Eni,
        base: u32,
        block: &Block,
    ) -> Option<(Reverse<u8>, u32, u32)> {
        (self.usable_eni(eni)
            && self.eligible(block.prefix)
            && !block.releasing
            && block.has_assignable())
        .then_some((
            Reverse(if block.prefix { block.used } else { 0 }),
            eni.device,
            base,
        ))
    }

    /// Recomputes the counters and the candidate index from the ENIs (after structural changes).
    fn rebuild(&mut self) {
        let mut c = Counters::default();
        let mut candidates = BTreeSet::new();
        for eni in self.enis.values() {
            if !self.usable_eni(eni) {
                continue;
            }
            for (&base, block) in &eni.blocks {
                if !self.eligible(block.prefix) || block.releasing {
                    continue;
                }
                c.total += block.size();
                c.assigned += u32::from(block.used);
                c.cooling += u32::from(block.cooling);
                if block.prefix {
                    c.prefixes += 1;
                    c.free_prefixes += u32::from(block.idle());
                    c.unassigned_prefixes += u32::from(block.used == 0);
                }
                if let Some(k) = self.candidate_key(eni, base, block) {
                    candidates.insert(k);
                }
            }
        }
        self.counters = c;
        self.candidates = candidates;
        self.leftovers_dirty = true;
    }

    /// Applies `f` to one block, keeping counters and the candidate index in step.
    fn update_block<R>(
        &mut self,
        device: u32,
        base: u32,
        f: impl FnOnce(&mut Block) -> R,
    ) -> Option<R> {
        let eni = self.enis.get(&device)?;
        let block = eni.blocks.get(&base)?;
        let counted = self.usable_eni(eni) && self.eligible(block.prefix) && !block.releasing;
        let before_key = self.candidate_key(eni, base, block);
        let (used0, cool0, idle0) = (block.used, block.cooling, block.idle());
        let eni = self.enis.get_mut(&device)?;
        let block = eni.blocks.get_mut(&base)?;
        let r = f(block);
        let (used1, cool1, idle1, prefix) = (block.used, block.cooling, block.idle(), block.prefix);
        eni.assigned = eni.assigned + u32::from(used1) - u32::from(used0);
        eni.cooling = eni.cooling + u32::from(cool1) - u32::from(cool0);
        if counted {
            let c = &mut self.counters;
            c.assigned = c.assigned + u32::from(used1) - u32::from(used0);
            c.cooling = c.cooling + u32::from(cool1) - u32::from(cool0);
            if prefix {
                c.free_prefixes = c.free_prefixes + u32::from(idle1) - u32::from(idle0);
                c.unassigned_prefixes =
                    c.unassigned_prefixes + u32::from(used1 == 0) - u32::from(used0 == 0);
            }
        } else if used1 < used0 {
            self.leftovers_dirty = true;
        }
        let eni = &self.enis[&device];
        let after_key = self.candidate_key(eni, base, &eni.blocks[&base]);
        if before_key != after_key {
            if let Some(k) = before_key {
                self.candidates.remove(&k);
            }
            if let Some(k) = after_key {
                self.candidates.insert(k);
            }
        }
        Some(r)
    }

    fn op(&mut self) -> OpId {
        let id = OpId(self.next_op);
        self.next_op += 1;
        id
    }

    fn call(
        &mut self,
        out: &mut Vec<Action>,
        call: Ec2Call,
        device: Option<u32>,
        growth: bool,
        reason: String,
    ) -> OpId {
        let op = self.op();
        if let Some(d) = device
            && let Some(eni) = self.enis.get_mut(&d)
        {
            eni.busy = Some(op);
        }
        if growth {
            self.growth_in_flight = Some(op);
        }
        self.pending.insert(
            op,
            Pending {
                call: call.clone(),
                device,
                attempt: 1,
                growth,
            },
        );
        out.push(Action::Call { op, call, reason });
        op
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

    /// The base of the block holding `ip` on ENI `device`.
    fn block_base(&self, device: u32, ip: u32) -> Option<u32> {
        let eni = self.enis.get(&device)?;
        if eni.blocks.get(&ip).is_some_and(|b| !b.prefix) {
            return Some(ip);
        }
        let base = ip & !0xF;
        eni.blocks.get(&base).filter(|b| b.prefix).map(|_| base)
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

    /// The counters decisions read. With `ENIPLAN_REFERENCE_RULES`, cooling addresses count as
    /// available and prefixes holding only cooling addresses as free, as in the reference.
    fn decision_counters(&self) -> Counters {
        if self.config.reference_rules {
            Counters {
                cooling: 0,
                free_prefixes: self.counters.unassigned_prefixes,
                ..self.counters
            }
        } else {
            self.counters
        }
    }

    /// Whether a block may be handed back to EC2: nothing bound, and (unless the reference's
    /// rules are asked for) nothing cooling down.
    fn releasable(&self, b: &Block) -> bool {
        !b.releasing
            && if self.config.reference_rules {
                b.used == 0
            } else {
                b.idle()
            }
    }

    fn targets(&self) -> Targets {
        target_state(&self.config, self.mode, &self.decision_counters())
    }

    fn pool_low(&self) -> bool {
        self.counters.total < self.config.max_pods
            && is_low(
                &self.config,
                self.mode,
                self.ipv4_per_eni,
                &self.decision_counters(),
            )
    }

    /// ENIs and addresses may be attached or ENIs freed: not while the node is cordoned
    /// (`node.kubernetes.io/unschedulable`), unless `AWS_MANAGE_ENIS_NON_SCHEDULABLE`.
    fn may_change_enis(&self) -> bool {
        self.schedulable || self.config.manage_enis_non_schedulable
    }

    fn may_grow(&self) -> bool {
        self.may_change_enis()
            && !self.terminating
            && !self.config.disable_provisioning
            && self.growth_in_flight.is_none()
            && self.now >= self.growth_retry_at
            && self
                .subnet_full
                .as_ref()
                .is_none_or(|(until, _)| self.now >= *until)
    }

    fn maintain(&mut self, out: &mut Vec<Action>) {
        if !self.config.disable_provisioning {
            if self.leftovers_dirty {
                self.release_leftovers(out);
            }
            if self.pool_low() {
                if self.may_grow() {
                    self.grow(out);
                }
            } else if is_high(&self.config, self.mode, &self.decision_counters()) {
                self.shrink(out);
            }
            self.release_fallback_ips(out);
            if !self.terminating && self.may_change_enis() {
                self.free_eni(out);
            }
        }
        // Forget reconcile cooldowns that have passed.
        let horizon = self.now - self.config.reconcile_cooldown;
        self.released_recently.retain(|_, at| *at > horizon);
    }

    /// Releases unbound blocks of the inactive mode (leftovers of a mode switch).
    fn release_leftovers(&mut self, out: &mut Vec<Action>) {
        self.leftovers_dirty = false;
        let mut work = Vec::new();
        for eni in self.enis.values() {
            if eni.trunk || eni.deleting {
                continue;
            }
            let idle: Vec<(u32, bool)> = eni
                .blocks
                .iter()
                .filter(|(_, b)| !self.eligible(b.prefix) && b.idle() && !b.releasing)
                .map(|(&base, b)| (base, b.prefix))
                .collect();
            if idle.is_empty() {
                continue;
            }
            if eni.busy.is_some() {
                self.leftovers_dirty = true;
                continue;
            }
            work.push((eni.device, idle));
        }
        for (device, idle) in work {
            let prefixes: Vec<u32> = idle.iter().filter(|(_, p)| *p).map(|(b, _)| *b).collect();
            let ips: Vec<u32> = idle.iter().filter(|(_, p)| !*p).map(|(b, _)| *b).collect();
            let mode = self.mode;
            if !prefixes.is_empty() {
                self.release_blocks(out, device, &prefixes, true, format!("{} unused prefixes left over from prefix delegation; the pool runs in {mode} mode", prefixes.len()));
            } else if !ips.is_empty() {
                self.release_blocks(out, device, &ips, false, format!("{} unused secondary IPs left over from secondary-IP mode; the pool runs in {mode} mode", ips.len()));
            }
            if !prefixes.is_empty() && !ips.is_empty() {
                self.leftovers_dirty = true;
            }
        }
    }

    /// Marks blocks as releasing and asks EC2 to unassign them.
    fn release_blocks(
        &mut self,
        out: &mut Vec<Action>,
        device: u32,
        bases: &[u32],
        prefix: bool,
        reason: String,
    ) {
        let Some(eni) = self.enis.get_mut(&device) else {
            return;
        };
        for base in bases {
            if let Some(b) = eni.blocks.get_mut(base) {
                b.releasing = true;
            }
        }
        let id = eni.id.clone();
        let call = if prefix {
            Ec2Call::UnassignPrefixes {
                eni: id,
                prefixes: bases.iter().map(|&b| net_of(b, true)).collect(),
            }
        } else {
            Ec2Call::UnassignIps {
                eni: id,
                ips: bases.iter().map(|&b| Ipv4Addr::from(b)).collect(),
            }
        };
        self.rebuild();
        self.call(out, call, Some(device), false, reason);
    }

    fn grow_reason(&self, t: &Targets) -> String {
        let c = &self.decision_counters();
        if t.ip_targets {
            format!(
                "pool short of {} addresses: {} available (not cooling) of {} held; WARM_IP_TARGET={}, MINIMUM_IP_TARGET={}",
                t.short,
                c.available(),
                c.total,
                self.config.warm_ip_target,
                self.config.minimum_ip_target
            )
        } else if self.mode == AddressMode::PrefixDelegation {
            format!(
                "pool low: {} available (not cooling) < WARM_PREFIX_TARGET {} × 16 (or none left)",
                c.available(),
                self.config.warm_prefix_target
            )
        } else {
            format!(
                "pool low: {} available (not cooling) < WARM_ENI_TARGET {} × {} addresses per ENI (or none left)",
                c.available(),
                self.config.warm_eni_target,
                self.per_eni_slots()
            )
        }
    }

    fn grow(&mut self, out: &mut Vec<Action>) {
        let t = self.targets();
        let slots = self.per_eni_slots();
        let use_prefixes = self.mode == AddressMode::PrefixDelegation && !self.fallback_active();
        // How much to ask for, in units of the call (prefixes or addresses).
        let amount = if use_prefixes {
            if t.ip_targets {
                t.short_prefixes.max(1)
            } else {
                self.config
                    .warm_prefix_target
                    .saturating_sub(self.decision_counters().free_prefixes)
                    .max(1)
            }
        } else if self.mode == AddressMode::PrefixDelegation {
            // Fallback: secondary IPs for the addresses the prefix targets lack.
            let need = if t.ip_targets {
                t.short
            } else {
                (self.config.warm_prefix_target * PREFIX)
                    .saturating_sub(self.decision_counters().available())
            };
            need.max(1)
        } else if t.ip_targets {
            t.short
        } else {
            slots
        };
        if amount == 0 {
            return;
        }
        let mut reason = self.grow_reason(&t);
        if self.mode == AddressMode::PrefixDelegation && !use_prefixes {
            reason.push_str("; ENIPLAN_PD_FALLBACK: the subnet had no free /28, so secondary IPs");
        }
        // Step A: top up the first ENI with room, by device number.
        let candidate = self.enis.values().find(|e| {
            let excluded = e.trunk || e.deleting || (self.config.custom_networking && e.primary());
            !excluded
                && e.busy.is_none()
                && u32::try_from(e.blocks.len()).unwrap_or(u32::MAX) < slots
        });
        if let Some(eni) = candidate {
            let room = slots - u32::try_from(eni.blocks.len()).unwrap_or(slots);
            let n = amount.min(room);
            let (id, device) = (eni.id.clone(), eni.device);
            let call = if use_prefixes {
                Ec2Call::AssignPrefixes { eni: id, count: n }
            } else {
                Ec2Call::AssignIps { eni: id, count: n }
            };
            self.call(out, call, Some(device), true, reason);
            return;
        }
        // Step B: a new ENI, created with its addresses.
        if self.enis.values().any(|e| {
            e.busy.is_some()
                && !e.trunk
                && !e.deleting
                && u32::try_from(e.blocks.len()).unwrap_or(u32::MAX) < slots
        }) {
            return; // an ENI with room is busy; wait for it rather than attach another
        }
        if !self.has_room_for_eni() {
            return;
        }
        // A shortage that only cooling addresses cause is covered on existing ENIs, not with a
        // new one (five EC2 calls for a 30-second gap), unless a pod would wait right now.
        let counting_cooling = Counters {
            cooling: 0,
            free_prefixes: self.counters.unassigned_prefixes,
            ..self.counters
        };
        if !self.config.reference_rules
            && self.counters.available() > 0
            && !is_low(
                &self.config,
                self.mode,
                self.ipv4_per_eni,
                &counting_cooling,
            )
        {
            return;
        }
        let n = amount.min(slots).max(1);
        let call = if use_prefixes {
            Ec2Call::CreateEni {
                ips: 0,
                prefixes: n,
            }
        } else {
            Ec2Call::CreateEni {
                ips: n,
                prefixes: 0,
            }
        };
        reason.push_str("; every usable ENI is full, so a new ENI");
        self.call(out, call, None, true, reason);
    }

    fn shrink(&mut self, out: &mut Vec<Action>) {
        if self
            .last_decrease
            .is_some_and(|t| self.now.since(t) < self.config.decrease_interval)
        {
            return;
        }
        let t = self.targets();
        let prefixes = self.mode == AddressMode::PrefixDelegation;
        let mut over = match (t.ip_targets, prefixes) {
            (true, true) => t.over_prefixes,
            (true, false) => t.over,
            (false, true) => self
                .decision_counters()
                .free_prefixes
                .saturating_sub(self.config.warm_prefix_target),
            (false, false) => 0,
        };
        if over == 0 {
            return;
        }
        let reason = if t.ip_targets {
            format!(
                "pool above its targets by {over} {}: {} available of {} held; WARM_IP_TARGET={}, MINIMUM_IP_TARGET={}",
                if prefixes { "prefixes" } else { "addresses" },
                self.counters.available(),
                self.counters.total,
                self.config.warm_ip_target,
                self.config.minimum_ip_target
            )
        } else {
            format!(
                "{} unused prefixes > WARM_PREFIX_TARGET {}",
                self.decision_counters().free_prefixes,
                self.config.warm_prefix_target
            )
        };
        // Highest device first, so whole ENIs empty out; highest addresses first.
        let mut work = Vec::new();
        for eni in self.enis.values().rev() {
            if over == 0 {
                break;
            }
            if !self.usable_eni(eni) || eni.busy.is_some() {
                continue;
            }
            let bases: Vec<u32> = eni
                .blocks
                .iter()
                .rev()
                .filter(|(_, b)| {
                    b.prefix == prefixes && self.eligible(b.prefix) && self.releasable(b)
                })
                .map(|(&base, _)| base)
                .take(usize::try_from(over).unwrap_or(usize::MAX))
                .collect();
            if bases.is_empty() {
                continue;
            }
            over -= u32::try_from(bases.len()).unwrap_or(over);
            work.push((eni.device, bases));
        }
        if work.is_empty() {
            return;
        }
        for (device, bases) in work {
            self.release_blocks(out, device, &bases, prefixes, reason.clone());
        }
        self.last_decrease = Some(self.now);
    }

    /// Prefix mode with the fallback: hand back idle secondary IPs the pool does not need, so
    /// the node returns to prefixes once the subnet has /28s again.
    fn release_fallback_ips(&mut self, out: &mut Vec<Action>) {
        if self.mode != AddressMode::PrefixDelegation
            || !self.config.pd_fallback
            || self.fallback_active()
        {
            return;
        }
        if self
            .last_decrease
            .is_some_and(|t| self.now.since(t) < self.config.decrease_interval)
        {
            return;
        }
        let need = if self.config.ip_targets_defined() {
            self.config.warm_ip_target.max(
                self.config
                    .minimum_ip_target
                    .saturating_sub(self.counters.total),
            )
        } else {
            self.config.warm_prefix_target * PREFIX
        };
        let mut spare = self.counters.available().saturating_sub(need);
        let mut work = Vec::new();
        for eni in self.enis.values().rev() {
            if spare == 0 {
                break;
            }
            if !self.usable_eni(eni) || eni.busy.is_some() {
                continue;
            }
            let bases: Vec<u32> = eni
                .blocks
                .iter()
                .rev()
                .filter(|(_, b)| !b.prefix && b.idle() && !b.releasing)
                .map(|(&base, _)| base)
                .take(usize::try_from(spare).unwrap_or(usize::MAX))
                .collect();
            spare -= u32::try_from(bases.len()).unwrap_or(spare);
            if !bases.is_empty() {
                work.push((eni.device, bases));
            }
        }
        if work.is_empty() {
            return;
        }
        for (device, bases) in work {
            self.release_blocks(
                out,
                device,
                &bases,
                false,
                "fallback secondary IPs no longer needed".to_owned(),
            );
        }
        self.last_decrease = Some(self.now);
    }

    /// `shouldRemoveExtraENIs` + `getDeletableENI`: frees at most one ENI per step.
    fn free_eni(&mut self, out: &mut Vec<Action>) {
        let t = self.targets();
        let c = self.decision_counters();
        let full = addresses_per_eni(self.mode, self.ipv4_per_eni);
        let w_target = if self.mode == AddressMode::PrefixDelegation {
            self.config.warm_prefix_target
        } else {
            self.config.warm_eni_target
        };
        let any_idle = self
            .enis
            .values()
            .any(|e| !e.primary() && !e.trunk && e.assigned == 0);
        let should = t.ip_targets
            || c.available() >= (w_target + 1) * full
            || (self.mode == AddressMode::PrefixDelegation && any_idle);
        if !should || !any_idle {
            return;
        }
        let round = |n: u32| {
            if self.mode == AddressMode::PrefixDelegation {
                n.div_ceil(PREFIX) * PREFIX
            } else {
                n
            }
        };
        let mut chosen = None;
        for eni in self.enis.values().rev() {
            if eni.primary()
                || eni.trunk
                || eni.deleting
                || eni.busy.is_some()
                || eni.assigned != 0
                || eni.cooling != 0
            {
                continue;
            }
            if self.now.since(eni.added_at) < self.config.eni_min_lifetime {
                continue;
            }
            // What the pool would hold without this ENI.
            let mut after = c;
            for b in eni
                .blocks
                .values()
                .filter(|b| self.eligible(b.prefix) && !b.releasing)
            {
                after.total -= b.size();
                if b.prefix {
                    after.prefixes -= 1;
                    after.free_prefixes -= u32::from(if self.config.reference_rules {
                        b.used == 0
                    } else {
                        b.idle()
                    });
                }
            }
            if t.ip_targets {
                let w = self.config.warm_ip_target;
                let m = self.config.minimum_ip_target;
                if w != 0 && after.available() < round(w) {
                    continue;
                }
                if m != 0 && after.total < round(m) {
                    continue;
                }
            }
            if self.mode == AddressMode::PrefixDelegation
                && after.free_prefixes < self.config.warm_prefix_target
            {
                continue;
            }
            // eniplan: never free what the pool would immediately need again (S-09).
            if !self.config.reference_rules
                && is_low(&self.config, self.mode, self.ipv4_per_eni, &after)
                && after.total < self.config.max_pods
            {
                continue;
            }
            chosen = Some((eni.device, eni.id.clone(), after));
            break;
        }
        let Some((device, id, after)) = chosen else {
            return;
        };
        let reason = format!(
            "{id} (device {device}) holds no pod and is older than {}s; without it the pool still holds {} addresses, {} available",
            self.config.eni_min_lifetime.as_secs(),
            after.total,
            after.available()
        );
        if let Some(eni) = self.enis.get_mut(&device) {
            eni.deleting = true;
        }
        self.rebuild();
        self.call(
            out,
            Ec2Call::DeleteEni { eni: id },
            Some(device),
            false,
            reason,
        );
    }

    fn no_address_reason(&self) -> NoAddress {
        if self.growth_in_flight.is_some() {
            return NoAddress::Growing;
        }
        if self.terminating {
            return NoAddress::Terminating;
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
        if self.config.warm_ip_target == 0 && self.config.minimum_ip_target > 0 {
            return NoAddress::MinimumIpTargetReached {
                minimum_ip_target: self.config.minimum_ip_target,
            };
        }
        NoAddress::NodeFull {
            max_enis: self.eni_budget(),
        }
    }

    fn outcome(&mut self, op: OpId, result: Result<Outcome, Failure>, out: &mut Vec<Action>) {
        let Some(pending) = self.pending.remove(&op) else {
            return;
        };
        if self.growth_in_flight == Some(op) {
            self.growth_in_flight = None;
        }
        if let Some(d) = pending.device
            && let Some(eni) = self.enis.get_mut(&d)
            && eni.busy == Some(op)
        {
            eni.busy = None;
        }
        match result {
            Ok(done) => self.succeeded(&pending, done),
            Err(failure) => self.failed(&pending, failure, out),
        }
    }

    fn add_blocks(&mut self, device: u32, ips: &[Ipv4Addr], prefixes: &[Ipv4Network]) {
        let Some(eni) = self.enis.get_mut(&device) else {
            return;
        };
        let primary = ip_u32(eni.primary_ip);
        for ip in ips {
            let ip = ip_u32(*ip);
            if ip != primary {
                eni.blocks
                    .entry(ip)
                    .or_insert_with(|| Block::new(false, self.now));
            }
        }
        for p in prefixes {
            eni.blocks
                .entry(ip_u32(p.network()))
                .or_insert_with(|| Block::new(true, self.now));
        }
        self.rebuild();
    }

    fn succeeded(&mut self, pending: &Pending, done: Outcome) {
        match done {
            Outcome::EniCreated {
                eni,
                device,
                primary_ip,
                ips,
                prefixes,
            } => {
                self.device_of.insert(eni.clone(), device);
                self.enis.insert(
                    device,
                    Eni {
                        id: eni,
                        device,
                        primary_ip,
                        trunk: false,
                        added_at: self.now,
                        blocks: BTreeMap::new(),
                        busy: None,
                        deleting: false,
                        assigned: 0,
                        cooling: 0,
                    },
                );
                self.add_blocks(device, &ips, &prefixes);
            }
            Outcome::IpsAssigned { ips } => {
                if let Some(d) = pending.device {
                    self.add_blocks(d, &ips, &[]);
                }
            }
            Outcome::PrefixesAssigned { prefixes } => {
                if let Some(d) = pending.device {
                    self.add_blocks(d, &[], &prefixes);
                }
            }
            Outcome::Unassigned => {
                if let Some(d) = pending.device {
                    let released: Vec<u32> = match &pending.call {
                        Ec2Call::UnassignIps { ips, .. } => {
                            ips.iter().map(|&ip| ip_u32(ip)).collect()
                        }
                        Ec2Call::UnassignPrefixes { prefixes, .. } => {
                            prefixes.iter().map(|p| ip_u32(p.network())).collect()
                        }
                        _ => Vec::new(),
                    };
                    if let Some(eni) = self.enis.get_mut(&d) {
                        for base in &released {
                            eni.blocks.remove(base);
                        }
                    }
                    for base in released {
                        self.released_recently.insert(base, self.now);
                    }
                    self.rebuild();
                }
            }
            Outcome::EniDeleted => {
                if let Some(d) = pending.device {
                    self.remove_eni(d, &mut Vec::new());
                }
            }
            Outcome::EniDescribed { ips, prefixes } => {
                if let Some(d) = pending.device {
                    self.sync_eni(d, &ips, &prefixes, &mut Vec::new());
                }
            }
        }
    }

    fn failed(&mut self, pending: &Pending, failure: Failure, out: &mut Vec<Action>) {
        match &pending.call {
            Ec2Call::AssignIps { eni, count } | Ec2Call::AssignPrefixes { eni, count } => {
                let device = pending.device;
                if failure == Failure::IpLimitExceeded {
                    let call = Ec2Call::DescribeEni { eni: eni.clone() };
                    self.call(
                        out,
                        call,
                        device,
                        false,
                        format!("EC2 says {eni} is full ({failure}); reading it back"),
                    );
                    return;
                }
                let prefixes = matches!(pending.call, Ec2Call::AssignPrefixes { .. });
                if pending.attempt == 1 && *count > 1 {
                    let call = if prefixes {
                        Ec2Call::AssignPrefixes {
                            eni: eni.clone(),
                            count: 1,
                        }
                    } else {
                        Ec2Call::AssignIps {
                            eni: eni.clone(),
                            count: 1,
                        }
                    };
                    let retry = self.call(
                        out,
                        call,
                        device,
                        true,
                        format!("retrying with one after {failure}"),
                    );
                    if let Some(p) = self.pending.get_mut(&retry) {
                        p.attempt = 2;
                    }
                    return;
                }
                if prefixes && failure == Failure::InsufficientCidrBlocks && self.config.pd_fallback
                {
                    self.start_fallback();
                    return;
                }
                self.growth_failed(failure);
            }
            Ec2Call::CreateEni { prefixes, .. } => {
                if *prefixes > 0
                    && failure == Failure::InsufficientCidrBlocks
                    && self.config.pd_fallback
                {
                    self.start_fallback();
                    return;
                }
                self.growth_failed(failure);
            }
            Ec2Call::UnassignIps { .. } | Ec2Call::UnassignPrefixes { .. } => {
                // Still on the ENI: take the blocks back.
                if let Some(eni) = pending.device.and_then(|d| self.enis.get_mut(&d)) {
                    for b in eni.blocks.values_mut() {
                        b.releasing = false;
                    }
                }
                self.rebuild();
            }
            Ec2Call::DeleteEni { .. } => {
                if failure == Failure::NotFound {
                    if let Some(d) = pending.device {
                        self.remove_eni(d, out);
                    }
                } else if let Some(eni) = pending.device.and_then(|d| self.enis.get_mut(&d)) {
                    eni.deleting = false;
                    self.rebuild();
                }
            }
            Ec2Call::DescribeEni { .. } => {}
        }
    }

    fn start_fallback(&mut self) {
        self.fallback_until = Some(self.now + self.config.subnet_full_backoff);
    }

    fn growth_failed(&mut self, failure: Failure) {
        if failure.is_subnet_full() {
            self.subnet_full = Some((self.now + self.config.subnet_full_backoff, failure));
        } else {
            self.growth_retry_at = self.now + GROWTH_RETRY;
        }
    }

    /// Removes an ENI and every pod address on it (reported as force-removed).
    fn remove_eni(&mut self, device: u32, out: &mut Vec<Action>) {
        let Some(eni) = self.enis.remove(&device) else {
            return;
        };
        self.device_of.remove(&eni.id);
        let lost: Vec<PodKey> = self
            .pods
            .iter()
            .filter(|(_, (d, _))| *d == device)
            .map(|(k, _)| k.clone())
            .collect();
        for key in lost {
            if let Some((_, ip)) = self.pods.remove(&key) {
                out.push(Action::Reply(Reply::ForceRemoved { key, ip }));
            }
        }
        self.rebuild();
    }

    /// Makes one ENI's blocks equal EC2's view: adds what EC2 has (unless the pool released it
    /// moments ago), drops what EC2 no longer has (pods holding it lose it).
    fn sync_eni(
        &mut self,
        device: u32,
        ips: &[Ipv4Addr],
        prefixes: &[Ipv4Network],
        out: &mut Vec<Action>,
    ) {
        let Some(eni) = self.enis.get(&device) else {
            return;
        };
        let primary = ip_u32(eni.primary_ip);
        let mut seen: BTreeMap<u32, bool> = ips
            .iter()
            .map(|&ip| (ip_u32(ip), false))
            .filter(|(ip, _)| *ip != primary)
            .collect();
        seen.extend(prefixes.iter().map(|p| (ip_u32(p.network()), true)));
        // An observation may predate what EC2 just granted (IMDS lags): blocks younger than the
        // reconcile cooldown are kept even when it does not show them.
        let horizon = self.now - self.config.reconcile_cooldown;
        let gone: Vec<u32> = eni
            .blocks
            .iter()
            .filter(|(base, b)| !b.releasing && seen.get(base) != Some(&b.prefix))
            .filter(|(_, b)| b.added_at <= horizon)
            .map(|(&base, _)| base)
            .collect();
        let new: Vec<(u32, bool)> = seen
            .iter()
            .filter(|(base, _)| !eni.blocks.contains_key(base))
            .filter(|(base, _)| {
                self.released_recently
                    .get(base)
                    .is_none_or(|at| *at <= horizon)
            })
            .map(|(&b, &p)| (b, p))
            .collect();
        for base in gone {
            let lost: Vec<PodKey> = self
                .pods
                .iter()
                .filter(|(_, (d, ip))| {
                    *d == device && (ip_u32(*ip) == base || (ip_u32(*ip) & !0xF) == base)
                })
                .filter(|(_, (_, ip))| self.block_base(device, ip_u32(*ip)) == Some(base))
                .map(|(k, _)| k.clone())
                .collect();
            for key in lost {
                if let Some((_, ip)) = self.pods.remove(&key) {
                    out.push(Action::Reply(Reply::ForceRemoved { key, ip }));
                }
            }
            if let Some(eni) = self.enis.get_mut(&device) {
                eni.blocks.remove(&base);
            }
        }
        if let Some(eni) = self.enis.get_mut(&device) {
            for (base, prefix) in new {
                eni.blocks.insert(base, Block::new(prefix, self.now));
            }
            // Per-ENI counters from scratch.
            eni.assigned = eni.blocks.values().map(|b| u32::from(b.used)).sum();
            eni.cooling = eni.blocks.values().map(|b| u32::from(b.cooling)).sum();
        }
        self.rebuild();
    }

    fn observe(&mut self, observed: Vec<ObservedEni>, out: &mut Vec<Action>) {
        let first = !self.initialized;
        self.initialized = true;
        let mut present = BTreeSet::new();
        for o in observed {
            present.insert(o.id.clone());
            if o.unmanaged {
                self.unmanaged.insert(o.id.clone());
                if let Some(d) = self.device_of.get(&o.id).copied() {
                    self.remove_eni(d, out);
                }
                continue;
            }
            self.unmanaged.remove(&o.id);
            if let Some(d) = self.device_of.get(&o.id).copied() {
                if self
                    .enis
                    .get(&d)
                    .is_some_and(|e| e.busy.is_none() && !e.deleting)
                {
                    if let Some(eni) = self.enis.get_mut(&d) {
                        eni.trunk = o.trunk;
                    }
                    self.sync_eni(d, &o.ips, &o.prefixes, out);
                }
            } else {
                let added_at = if first {
                    Time(0).max(self.now - self.config.eni_min_lifetime)
                } else {
                    self.now
                };
                self.device_of.insert(o.id.clone(), o.device);
                self.enis.insert(
                    o.device,
                    Eni {
                        id: o.id.clone(),
                        device: o.device,
                        primary_ip: o.primary_ip,
                        trunk: o.trunk,
                        added_at,
                        blocks: BTreeMap::new(),
                        busy: None,
                        deleting: false,
                        assigned: 0,
                        cooling: 0,
                    },
                );
                if !o.trunk {
                    self.add_blocks(o.device, &o.ips, &o.prefixes);
                }
            }
        }
        self.unmanaged.retain(|id| present.contains(id));
        // ENIs EC2 no longer shows (and that are not being created or deleted by us) are gone.
        // Likewise an ENI the pool attached moments ago may be missing from a stale observation.
        let horizon = self.now - self.config.reconcile_cooldown;
        let vanished: Vec<u32> = self
            .enis
            .values()
            .filter(|e| !present.contains(&e.id) && e.busy.is_none())
            .filter(|e| first || e.added_at <= horizon)
            .map(|e| e.device)
            .collect();
        for d in vanished {
            self.remove_eni(d, out);
        }
        self.rebuild();
    }

    fn restore(&mut self, allocations: Vec<(PodKey, Ipv4Addr)>, out: &mut Vec<Action>) {
        for (key, ip) in allocations {
            let found = self
                .enis
                .values()
                .find_map(|e| self.block_base(e.device, ip_u32(ip)).map(|b| (e.device, b)));
            let Some((device, base)) = found else {
                out.push(Action::Reply(Reply::RestoreDropped {
                    key,
                    ip,
                    why: "the address is on no ENI of this node".to_owned(),
                }));
                continue;
            };
            if self.pods.contains_key(&key) {
                out.push(Action::Reply(Reply::RestoreDropped {
                    key,
                    ip,
                    why: "the pod key appears twice in the checkpoint".to_owned(),
                }));
                continue;
            }
            let offset = usize::try_from(ip_u32(ip) - base).unwrap_or(0);
            let took = self
                .update_block(device, base, |b| match b.slots[offset] {
                    Slot::Assigned => false,
                    Slot::Cooling(_) => {
                        b.cooling -= 1;
                        b.slots[offset] = Slot::Assigned;
                        b.used += 1;
                        true
                    }
                    Slot::Free => {
                        b.slots[offset] = Slot::Assigned;
                        b.used += 1;
                        true
                    }
                })
                .unwrap_or(false);
            if took {
                self.pods.insert(key.clone(), (device, ip));
                let address = self.pod_address(device, ip);
                out.push(Action::Reply(Reply::Restored { key, address }));
            } else {
                out.push(Action::Reply(Reply::RestoreDropped {
                    key,
                    ip,
                    why: "another pod already holds the address".to_owned(),
                }));
            }
        }
        self.leftovers_dirty = true;
    }

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
