//! The periodic decisions (`maintain`: grow, shrink, release, free an ENI), the predicates
//! they read, and freeing a whole ENI (`shouldRemoveExtraENIs` + `getDeletableENI`).

use super::state::Block;
use super::targets::{
    Counters, Targets, is_high, needs_growth, should_free_eni, target_state,
    targets_hold_without_eni,
};
use super::{Action, Ec2Call, Pool};

impl Pool {
    pub(super) fn fallback_active(&self) -> bool {
        self.fallback_until.is_some_and(|t| self.now < t)
    }

    /// The counters decisions read. With `ENIPLAN_REFERENCE_RULES`, cooling addresses count as
    /// available and prefixes holding only cooling addresses as free, as in the reference.
    pub(super) fn decision_counters(&self) -> Counters {
        if self.config.reference_rules {
            self.counters.counting_cooling()
        } else {
            self.counters
        }
    }

    /// Whether a block may be handed back to EC2: nothing bound, and (unless the reference's
    /// rules are asked for) nothing cooling down.
    fn releasable(&self, b: &Block) -> bool {
        b.releasable(self.config.reference_rules)
    }

    pub(super) fn targets(&self) -> Targets {
        target_state(&self.config, self.mode, &self.decision_counters())
    }

    fn pool_low(&self) -> bool {
        needs_growth(
            &self.config,
            self.mode,
            self.ipv4_per_eni,
            &self.decision_counters(),
        )
    }

    /// Shrinks are at least `decrease_interval` apart (30 s in the reference).
    pub(super) fn may_decrease(&self) -> bool {
        self.last_decrease
            .is_none_or(|t| self.now.since(t) >= self.config.decrease_interval)
    }

    /// ENIs and addresses may be attached or ENIs freed: not while the node is cordoned
    /// (`node.kubernetes.io/unschedulable`), unless `AWS_MANAGE_ENIS_NON_SCHEDULABLE`.
    pub(super) fn may_change_enis(&self) -> bool {
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

    pub(super) fn maintain(&mut self, out: &mut Vec<Action>) {
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
            // A draining node frees idle ENIs even while cordoned: handing back is the point.
            if !self.terminating && (self.may_change_enis() || self.config.draining) {
                self.free_eni(out);
            }
        }
        // Forget reconcile cooldowns that have passed.
        let horizon = self.now - self.config.reconcile_cooldown;
        self.released_recently.retain(|_, at| *at > horizon);
    }

    /// `shouldRemoveExtraENIs` + `getDeletableENI`: frees at most one ENI per step.
    fn free_eni(&mut self, out: &mut Vec<Action>) {
        let c = self.decision_counters();
        let any_idle = self
            .enis
            .values()
            .any(|e| !e.primary() && !e.trunk && e.assigned == 0);
        if !should_free_eni(&self.config, self.mode, self.ipv4_per_eni, &c, any_idle) || !any_idle {
            return;
        }
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
                    after.free_prefixes -= u32::from(self.releasable(b));
                }
            }
            if !targets_hold_without_eni(&self.config, self.mode, &after) {
                continue;
            }
            // eniplan: never free what the pool would immediately need again (S-09).
            if !self.config.reference_rules
                && needs_growth(&self.config, self.mode, self.ipv4_per_eni, &after)
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
}
