//! Growth (`increaseDatastorePool`): top up the first ENI with room, or attach a new ENI.

use crate::max_pods::AddressMode;
use crate::subnet::ADDRESSES_PER_PREFIX;

use super::targets::{Targets, growth_request, is_low};
use super::{Action, Ec2Call, Pool};

impl Pool {
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
                "pool low: {} available (not cooling) < WARM_PREFIX_TARGET {} × {ADDRESSES_PER_PREFIX} (or none left)",
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

    pub(super) fn grow(&mut self, out: &mut Vec<Action>) {
        let t = self.targets();
        let slots = self.per_eni_slots();
        let use_prefixes = self.mode == AddressMode::PrefixDelegation && !self.fallback_active();
        // How much to ask for, in units of the call (prefixes or addresses).
        let amount = growth_request(
            &self.config,
            self.mode,
            !use_prefixes,
            self.ipv4_per_eni,
            &self.decision_counters(),
        );
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
        let counting_cooling = self.counters.counting_cooling();
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
}
