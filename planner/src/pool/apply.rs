//! Applying EC2 outcomes: new ENIs and addresses join the pool, released ones leave it, and
//! failures are retried once, read back, or turned into a growth pause or the prefix fallback.

use std::net::Ipv4Addr;

use ipnetwork::Ipv4Network;

use super::state::{Block, Eni, Pending, ip_u32};
use super::{Action, Ec2Call, Failure, OpId, Outcome, PodKey, Pool, Reply};

/// How long growth waits after a failed call that was not a subnet-full error (one pool check).
const GROWTH_RETRY: std::time::Duration = std::time::Duration::from_secs(5);

impl Pool {
    pub(super) fn outcome(
        &mut self,
        op: OpId,
        result: Result<Outcome, Failure>,
        out: &mut Vec<Action>,
    ) {
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

    pub(super) fn add_blocks(&mut self, device: u32, ips: &[Ipv4Addr], prefixes: &[Ipv4Network]) {
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
                self.enis
                    .insert(device, Eni::new(eni, device, primary_ip, false, self.now));
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
            self.growth_failure = Some(failure);
        }
    }

    /// Removes an ENI and every pod address on it (reported as force-removed).
    pub(super) fn remove_eni(&mut self, device: u32, out: &mut Vec<Action>) {
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
}
