//! Handing addresses back to EC2: the shrink above the targets, the fallback secondary IPs
//! no longer needed, and the leftovers of a mode switch.

use std::net::Ipv4Addr;

use crate::max_pods::AddressMode;

use super::state::net_of;
use super::targets::{fallback_spare, surplus};
use super::{Action, Ec2Call, Pool};

impl Pool {
    /// `decreaseDatastorePool`: hands back what the targets leave over, at most every
    /// `decrease_interval`.
    pub(super) fn shrink(&mut self, out: &mut Vec<Action>) {
        if !self.may_decrease() {
            return;
        }
        let t = self.targets();
        let prefixes = self.mode == AddressMode::PrefixDelegation;
        let over = surplus(&self.config, self.mode, &self.decision_counters());
        if over == 0 {
            return;
        }
        let reason = if self.config.draining {
            format!(
                "the node is cordoned or draining (ENIPLAN_RELEASE_WARM_WHEN_UNSCHEDULABLE): handing back {over} unused {}",
                if prefixes { "prefixes" } else { "addresses" }
            )
        } else if t.ip_targets {
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
        let cooling_is_free = self.config.reference_rules;
        self.release_idle(out, prefixes, over, cooling_is_free, &reason);
    }

    /// Prefix mode with the fallback: hand back idle secondary IPs the pool does not need, so
    /// the node returns to prefixes once the subnet has /28s again.
    pub(super) fn release_fallback_ips(&mut self, out: &mut Vec<Action>) {
        if self.mode != AddressMode::PrefixDelegation
            || !self.config.pd_fallback
            || self.fallback_active()
        {
            return;
        }
        if !self.may_decrease() {
            return;
        }
        let spare = fallback_spare(&self.config, &self.counters);
        self.release_idle(
            out,
            false,
            spare,
            false,
            "fallback secondary IPs no longer needed",
        );
    }

    /// The release loop of the shrink and the fallback: hands back up to `count` counted blocks
    /// of one kind (`prefix`) that hold no pod and, unless `cooling_is_free` (the reference's
    /// rule), no cooling address. Highest device first, so whole ENIs empty out, and highest
    /// address first; ENIs with a call in flight are skipped; one unassign call per ENI. If
    /// anything was released, the decrease time is recorded.
    fn release_idle(
        &mut self,
        out: &mut Vec<Action>,
        prefix: bool,
        mut count: u32,
        cooling_is_free: bool,
        reason: &str,
    ) {
        let mut work = Vec::new();
        for eni in self.enis.values().rev() {
            if count == 0 {
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
                    b.prefix == prefix && self.eligible(b.prefix) && b.releasable(cooling_is_free)
                })
                .map(|(&base, _)| base)
                .take(usize::try_from(count).unwrap_or(usize::MAX))
                .collect();
            if bases.is_empty() {
                continue;
            }
            count -= u32::try_from(bases.len()).unwrap_or(count);
            work.push((eni.device, bases));
        }
        if work.is_empty() {
            return;
        }
        for (device, bases) in work {
            self.release_blocks(out, device, &bases, prefix, reason.to_owned());
        }
        self.last_decrease = Some(self.now);
    }

    /// Releases unbound blocks of the inactive mode (leftovers of a mode switch).
    pub(super) fn release_leftovers(&mut self, out: &mut Vec<Action>) {
        self.leftovers_dirty = false;
        let mut work = Vec::new();
        for eni in self.enis.values() {
            if eni.trunk || eni.deleting {
                continue;
            }
            let idle: Vec<(u32, bool)> = eni
                .blocks
                .iter()
                .filter(|(_, b)| !self.eligible(b.prefix) && b.releasable(false))
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
}

#[cfg(test)]
mod tests {
    use super::super::testing::{ip, prefix_pool, sip_pool};
    use super::*;
    use crate::pool::{Input, PodKey, Time};

    /// The unassign calls among the actions: (ENI, addresses or prefix bases).
    fn unassigned(actions: &[Action]) -> Vec<(String, Vec<String>)> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Call {
                    call: Ec2Call::UnassignIps { eni, ips },
                    ..
                } => Some((eni.0.clone(), ips.iter().map(ToString::to_string).collect())),
                Action::Call {
                    call: Ec2Call::UnassignPrefixes { eni, prefixes },
                    ..
                } => Some((
                    eni.0.clone(),
                    prefixes.iter().map(|p| p.ip().to_string()).collect(),
                )),
                _ => None,
            })
            .collect()
    }

    fn owned(v: &[(&str, &[&str])]) -> Vec<(String, Vec<String>)> {
        v.iter()
            .map(|(e, ips)| {
                (
                    (*e).to_owned(),
                    ips.iter().map(|s| (*s).to_owned()).collect(),
                )
            })
            .collect()
    }

    /// Two ENIs of secondary IPs; pods on 10.0.0.10 and .12, and .11 released (cooling).
    fn pool_with_pods() -> Pool {
        let mut pool = sip_pool(&[
            &[
                "10.0.0.10",
                "10.0.0.11",
                "10.0.0.12",
                "10.0.0.13",
                "10.0.0.14",
            ],
            &["10.0.1.10", "10.0.1.11"],
        ]);
        for key in ["a", "b", "c"] {
            pool.step(
                Time(1),
                Input::AddPod {
                    key: PodKey::new(key),
                },
            );
        }
        pool.step(
            Time(2),
            Input::DelPod {
                key: PodKey::new("b"),
            },
        );
        assert_eq!((pool.counters.assigned, pool.counters.cooling), (2, 1));
        pool
    }

    #[test]
    fn release_never_takes_an_assigned_or_cooling_address() {
        let mut pool = pool_with_pods();
        let mut out = Vec::new();
        pool.release_idle(&mut out, false, 100, false, "test");
        // Highest device first, highest address first; .10 and .12 hold pods, .11 cools.
        assert_eq!(
            unassigned(&out),
            owned(&[
                ("eni-1", &["10.0.1.11", "10.0.1.10"]),
                ("eni-0", &["10.0.0.14", "10.0.0.13"]),
            ])
        );
        assert_eq!(pool.last_decrease, Some(pool.now));
        // Both ENIs now have a call in flight: nothing more is released, no decrease recorded.
        pool.last_decrease = None;
        let mut again = Vec::new();
        pool.release_idle(&mut again, false, 100, false, "test");
        assert!(
            again.is_empty() && pool.last_decrease.is_none(),
            "{again:?}"
        );
    }

    #[test]
    fn release_under_the_references_rule_takes_cooling_addresses_never_assigned_ones() {
        let mut pool = pool_with_pods();
        let mut out = Vec::new();
        pool.release_idle(&mut out, false, 3, true, "test");
        // At most 3: the two on eni-1, then the highest idle one on eni-0.
        assert_eq!(
            unassigned(&out),
            owned(&[
                ("eni-1", &["10.0.1.11", "10.0.1.10"]),
                ("eni-0", &["10.0.0.14"])
            ])
        );
        let mut pool = pool_with_pods();
        let mut out = Vec::new();
        pool.release_idle(&mut out, false, 100, true, "test");
        assert_eq!(
            unassigned(&out)[1],
            owned(&[("eni-0", &["10.0.0.14", "10.0.0.13", "10.0.0.11"])])[0]
        );
    }

    #[test]
    fn release_takes_only_the_kind_asked_for_and_marks_it_releasing() {
        let mut pool = prefix_pool(&[&["10.0.0.16/28", "10.0.0.32/28"]]);
        let mut out = Vec::new();
        pool.release_idle(&mut out, false, 100, false, "test");
        assert!(out.is_empty(), "no secondary IPs to release: {out:?}");
        pool.release_idle(&mut out, true, 1, false, "test");
        assert_eq!(unassigned(&out), owned(&[("eni-0", &["10.0.0.32"])]));
        let eni = &pool.enis[&0];
        assert!(eni.blocks[&ip("10.0.0.32")].releasing && !eni.blocks[&ip("10.0.0.16")].releasing);
        // A releasing block no longer counts.
        assert_eq!((pool.counters.prefixes, pool.counters.total), (1, 16));
    }
}
