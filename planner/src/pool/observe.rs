//! Observations: adopting the ENIs and addresses IMDS/EC2 report (start-up and periodic
//! reconciliation), and restoring pod allocations from the checkpoint.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use ipnetwork::Ipv4Network;

use super::state::{Block, Eni, Slot, ip_u32};
use super::{Action, ObservedEni, PodKey, Pool, Reply, Time};

impl Pool {
    pub(super) fn observe(&mut self, observed: Vec<ObservedEni>, out: &mut Vec<Action>) {
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
                    Eni::new(o.id.clone(), o.device, o.primary_ip, o.trunk, added_at),
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

    /// Makes one ENI's blocks equal EC2's view: adds what EC2 has (unless the pool released it
    /// moments ago), drops what EC2 no longer has (pods holding it lose it).
    pub(super) fn sync_eni(
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

    pub(super) fn restore(&mut self, allocations: Vec<(PodKey, Ipv4Addr)>, out: &mut Vec<Action>) {
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
}
