//! The pool's state: address slots, blocks (a secondary IP or a /28 prefix), ENIs, in-flight
//! operations and the [`Pool`] struct itself, plus the two structures kept in step with the
//! blocks — the counters and the index of blocks with an assignable slot.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::Ipv4Addr;

use ipnetwork::Ipv4Network;

use crate::max_pods::AddressMode;

use super::PoolConfig;
use super::targets::Counters;
use super::{Action, Ec2Call, EniId, Failure, OpId, PodKey, Time};
use crate::subnet::ADDRESSES_PER_PREFIX;

/// One address slot of a block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Slot {
    /// Never used, or released long ago.
    Free,
    /// Bound to a pod.
    Assigned,
    /// Released by a pod at this time; assignable again after `IP_COOLDOWN_PERIOD`.
    Cooling(Time),
}

/// A secondary IP (one slot) or a delegated prefix (16 slots).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Block {
    pub(super) prefix: bool,
    pub(super) slots: Vec<Slot>,
    pub(super) used: u8,
    pub(super) cooling: u8,
    /// Handed back to EC2; waiting for the outcome. Not assignable, not counted.
    pub(super) releasing: bool,
    /// When EC2 gave it to the pool: an observation older than the grant may not show it yet.
    pub(super) added_at: Time,
}

impl Block {
    pub(super) fn new(prefix: bool, added_at: Time) -> Block {
        Block {
            prefix,
            slots: vec![
                Slot::Free;
                if prefix {
                    ADDRESSES_PER_PREFIX as usize
                } else {
                    1
                }
            ],
            used: 0,
            cooling: 0,
            releasing: false,
            added_at,
        }
    }
    #[inline]
    pub(super) fn size(&self) -> u32 {
        if self.prefix { ADDRESSES_PER_PREFIX } else { 1 }
    }
    #[inline]
    pub(super) fn idle(&self) -> bool {
        self.used == 0 && self.cooling == 0
    }
    #[inline]
    pub(super) fn has_assignable(&self) -> bool {
        u32::from(self.used) + u32::from(self.cooling) < self.size()
    }
    /// Whether it may be handed back to EC2: not already releasing, nothing bound, and (unless
    /// `cooling_is_free`, the reference's rule) nothing cooling down.
    pub(super) fn releasable(&self, cooling_is_free: bool) -> bool {
        !self.releasing
            && if cooling_is_free {
                self.used == 0
            } else {
                self.idle()
            }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Eni {
    pub(super) id: EniId,
    pub(super) device: u32,
    pub(super) primary_ip: Ipv4Addr,
    pub(super) trunk: bool,
    pub(super) added_at: Time,
    /// Keyed by the block's base address.
    pub(super) blocks: BTreeMap<u32, Block>,
    /// The mutating EC2 call in flight on this ENI.
    pub(super) busy: Option<OpId>,
    /// Being detached and deleted.
    pub(super) deleting: bool,
    pub(super) assigned: u32,
    pub(super) cooling: u32,
}

impl Eni {
    /// A managed ENI with no blocks yet.
    pub(super) fn new(
        id: EniId,
        device: u32,
        primary_ip: Ipv4Addr,
        trunk: bool,
        added_at: Time,
    ) -> Eni {
        Eni {
            id,
            device,
            primary_ip,
            trunk,
            added_at,
            blocks: BTreeMap::new(),
            busy: None,
            deleting: false,
            assigned: 0,
            cooling: 0,
        }
    }
    pub(super) fn primary(&self) -> bool {
        self.device == 0
    }
}

/// What an in-flight operation was for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Pending {
    pub(super) call: Ec2Call,
    /// The ENI it runs on (`None` for a new ENI).
    pub(super) device: Option<u32>,
    /// 1 for the first try, 2 for the single-address retry.
    pub(super) attempt: u8,
    pub(super) growth: bool,
}

/// A key of the assignable-block index: fullest prefix first (secondary IPs rank as empty
/// prefixes), then device, then base address.
pub(super) type CandidateKey = (Reverse<u8>, u32, u32);

/// The pool of one node. See the module documentation.
#[derive(Debug, Clone)]
pub struct Pool {
    pub(super) config: PoolConfig,
    pub(super) mode: AddressMode,
    pub(super) mode_note: Option<String>,
    pub(super) ipv4_per_eni: u32,
    pub(super) card_enis: u32,
    pub(super) trunking: bool,
    pub(super) enis: BTreeMap<u32, Eni>,
    pub(super) device_of: BTreeMap<EniId, u32>,
    pub(super) unmanaged: BTreeSet<EniId>,
    pub(super) pods: BTreeMap<PodKey, (u32, Ipv4Addr)>,
    pub(super) pending: BTreeMap<OpId, Pending>,
    pub(super) next_op: u64,
    pub(super) counters: Counters,
    /// Blocks with an assignable slot: fullest prefix first, then device, then address.
    pub(super) candidates: BTreeSet<CandidateKey>,
    pub(super) cooling_queue: VecDeque<(Time, u32, u32)>,
    pub(super) growth_in_flight: Option<OpId>,
    pub(super) growth_retry_at: Time,
    /// Why the last growth call failed (the reason pods are given until `growth_retry_at`).
    pub(super) growth_failure: Option<Failure>,
    pub(super) subnet_full: Option<(Time, Failure)>,
    pub(super) fallback_until: Option<Time>,
    pub(super) last_decrease: Option<Time>,
    pub(super) released_recently: BTreeMap<u32, Time>,
    pub(super) leftovers_dirty: bool,
    pub(super) initialized: bool,
    pub(super) terminating: bool,
    pub(super) schedulable: bool,
    /// Why new ENIs cannot be created now (custom networking without a usable ENIConfig).
    pub(super) new_enis_blocked: Option<String>,
    pub(super) now: Time,
}

#[inline]
pub(super) fn ip_u32(ip: Ipv4Addr) -> u32 {
    u32::from(ip)
}

pub(super) fn net_of(base: u32, prefix: bool) -> Ipv4Network {
    Ipv4Network::new(Ipv4Addr::from(base), if prefix { 28 } else { 32 })
        .expect("28 and 32 are valid IPv4 prefix lengths")
}

impl Pool {
    /// Whether a block of this kind counts in the pool (the mode's kind; secondary IPs too in
    /// prefix mode when the fallback is enabled).
    #[inline]
    pub(super) fn eligible(&self, prefix: bool) -> bool {
        match self.mode {
            AddressMode::SecondaryIp => !prefix,
            AddressMode::PrefixDelegation => prefix || self.config.pd_fallback,
        }
    }

    #[inline]
    pub(super) fn usable_eni(&self, eni: &Eni) -> bool {
        let idle_primary = self.config.custom_networking && eni.primary() && eni.blocks.is_empty();
        !(eni.trunk || eni.deleting || idle_primary)
    }

    #[inline]
    fn candidate_key(&self, eni: &Eni, base: u32, block: &Block) -> Option<CandidateKey> {
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
    pub(super) fn rebuild(&mut self) {
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
    pub(super) fn update_block<R>(
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

    /// The base of the block holding `ip` on ENI `device`.
    #[inline]
    pub(super) fn block_base(&self, device: u32, ip: u32) -> Option<u32> {
        let eni = self.enis.get(&device)?;
        if eni.blocks.get(&ip).is_some_and(|b| !b.prefix) {
            return Some(ip);
        }
        let base = ip & !0xF;
        eni.blocks.get(&base).filter(|b| b.prefix).map(|_| base)
    }

    fn op(&mut self) -> OpId {
        let id = OpId(self.next_op);
        self.next_op += 1;
        id
    }

    /// Emits an EC2 call and records it as pending (marking its ENI busy, and growth in flight
    /// if it is a growth call).
    pub(super) fn call(
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
}

#[cfg(test)]
mod tests {
    use super::super::testing::{ip, prefix_pool};
    use super::*;
    use crate::pool::{Input, PodKey, Reply};

    fn assigned_ip(actions: &[Action]) -> Ipv4Addr {
        match actions {
            [Action::Reply(Reply::Assigned { address, .. })] => address.ip,
            other => panic!("expected one assignment, got {other:?}"),
        }
    }

    #[test]
    fn index_puts_the_fullest_prefix_first_then_device_then_address() {
        // Two prefixes on device 0 (10.0.0.16/28, 10.0.0.32/28), one on device 1 (10.0.1.16/28).
        let mut pool = prefix_pool(&[&["10.0.0.16/28", "10.0.0.32/28"], &["10.0.1.16/28"]]);
        let keys: Vec<_> = pool.candidates.iter().copied().collect();
        // All empty: device, then address.
        let empty = Reverse(0);
        assert_eq!(
            keys,
            vec![
                (empty, 0, ip("10.0.0.16")),
                (empty, 0, ip("10.0.0.32")),
                (empty, 1, ip("10.0.1.16")),
            ]
        );
        // A pod on .16/28 makes it the fullest prefix.
        let now = Time(1);
        let a = pool.step(
            now,
            Input::AddPod {
                key: PodKey::new("a"),
            },
        );
        assert_eq!(assigned_ip(&a), Ipv4Addr::new(10, 0, 0, 16));
        // ADDs pack, so make device 1's prefix fuller by hand: its key must move ahead.
        pool.update_block(1, ip("10.0.1.16"), |b| {
            b.slots[0] = Slot::Assigned;
            b.slots[1] = Slot::Assigned;
            b.used = 2;
        });
        let first: Vec<_> = pool.candidates.iter().take(2).copied().collect();
        assert_eq!(
            first,
            vec![
                (Reverse(2), 1, ip("10.0.1.16")),
                (Reverse(1), 0, ip("10.0.0.16"))
            ]
        );
        // The next ADD goes to the fullest prefix, whatever its device.
        let b = pool.step(
            now,
            Input::AddPod {
                key: PodKey::new("b"),
            },
        );
        assert_eq!(assigned_ip(&b), Ipv4Addr::new(10, 0, 1, 18));
    }

    #[test]
    fn a_full_or_releasing_block_leaves_the_index_and_counters_follow() {
        let mut pool = prefix_pool(&[&["10.0.0.16/28"]]);
        let base = ip("10.0.0.16");
        pool.update_block(0, base, |b| {
            b.slots.iter_mut().for_each(|s| *s = Slot::Assigned);
            b.used = 16;
        });
        assert!(pool.candidates.is_empty());
        assert_eq!(
            (pool.counters.assigned, pool.counters.free_prefixes),
            (16, 0)
        );
        pool.update_block(0, base, |b| {
            b.slots[3] = Slot::Cooling(Time(0));
            b.used = 15;
            b.cooling = 1;
        });
        assert_eq!(pool.candidates.len(), 0, "a cooling slot is not assignable");
        assert_eq!((pool.counters.assigned, pool.counters.cooling), (15, 1));
        pool.update_block(0, base, |b| {
            b.slots[4] = Slot::Free;
            b.used = 14;
        });
        assert_eq!(pool.candidates.len(), 1);
        pool.enis
            .get_mut(&0)
            .unwrap()
            .blocks
            .get_mut(&base)
            .unwrap()
            .releasing = true;
        pool.rebuild();
        assert!(pool.candidates.is_empty());
        assert_eq!(pool.counters, Counters::default());
    }

    #[test]
    fn releasable_blocks_hold_no_pod_and_under_eniplan_rules_nothing_cooling() {
        let mut b = Block::new(true, Time(0));
        assert!(b.releasable(false) && b.releasable(true));
        b.cooling = 1;
        assert!(!b.releasable(false) && b.releasable(true));
        b.cooling = 0;
        b.used = 1;
        assert!(!b.releasable(false) && !b.releasable(true));
        b.used = 0;
        b.releasing = true;
        assert!(!b.releasable(false) && !b.releasable(true));
    }
}
