//! What one node holds in its subnets, decided by the warm-pool engine ([`planner::pool`]) that
//! the daemon runs — never by a separate formula. A *shape* is an instance type, its pool
//! settings, a pod density, a pod churn rate and a share of pods on branch ENIs; nodes of the
//! same shape run the same deterministic engine trace, so the forecast simulates each shape once
//! ([`profile`]) and reuses it for every node of that shape.
//!
//! ```
//! use planner::catalogue::lookup;
//! use capacity::footprint::profile;
//! use planner::pool::PoolConfig;
//! // m5.large, WARM_ENI_TARGET=1, 10 pods: the engine holds 3 ENIs of 9 addresses (S-02).
//! let config = PoolConfig { max_pods: 29, ..PoolConfig::default() };
//! let p = profile(lookup("m5.large")?, &config, 10, 0.0, 0.0)?;
//! assert_eq!((p.steady.enis, p.steady.pool_addresses(), p.steady.warm()), (3, 27, 17));
//! // Addresses in the subnet: 27 pool addresses + 3 ENI primaries (the node's own included).
//! assert_eq!(p.steady.subnet_addresses(), 30);
//! # Ok::<(), capacity::Error>(())
//! ```

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use serde::Serialize;

use crate::error::Result;
use planner::catalogue::InstanceLimits;
use planner::max_pods;
use planner::pool::{PoolConfig, Reply};
use planner::sim::{Node, TICK};
use planner::subnet::ADDRESSES_PER_PREFIX;

/// How often the churn cycle is sampled (the forecast's time step).
pub const SAMPLE: Duration = Duration::from_mins(5);
/// Length of the simulated churn cycle of one node.
pub const CYCLE: Duration = Duration::from_hours(1);

/// What one node holds at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Footprint {
    /// Pods holding a pool address.
    pub pods: u32,
    /// Pods on branch ENIs (security groups for pods), each holding its branch ENI's address.
    pub branch_pods: u32,
    /// ENIs the pool manages, the primary included (each has a primary address).
    pub enis: u32,
    /// Secondary IPs held by the pool.
    pub ips: u32,
    /// /28 prefixes held by the pool.
    pub prefixes: u32,
    /// A trunk ENI is attached (security groups for pods): one more primary address.
    pub trunk: bool,
}

impl Footprint {
    /// Addresses in the pool: secondary IPs plus 16 per prefix.
    pub fn pool_addresses(&self) -> u32 {
        self.ips + ADDRESSES_PER_PREFIX * self.prefixes
    }

    /// Pool addresses no pod holds: the warm pool (and cooling addresses).
    pub fn warm(&self) -> u32 {
        self.pool_addresses().saturating_sub(self.pods)
    }

    /// Primaries of the ENIs beside the node's primary ENI.
    pub fn eni_primaries(&self) -> u32 {
        self.enis.saturating_sub(1)
    }

    /// Trunk and branch ENI addresses.
    pub fn trunk_addresses(&self) -> u32 {
        u32::from(self.trunk) + self.branch_pods
    }

    /// Every subnet address the node holds: its primary, the other ENI primaries, the pool, the
    /// trunk and branch ENIs. (With custom networking all but the first live in the pod subnet.)
    pub fn subnet_addresses(&self) -> u32 {
        1 + self.eni_primaries() + self.pool_addresses() + self.trunk_addresses()
    }
}

/// One shape's engine results.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Profile {
    /// After ramping from 0 to the density one pod at a time, the pool settling after each.
    pub steady: Footprint,
    /// Pods the node could not serve at all (density above its capacity).
    pub unserved: u32,
    /// Footprints every [`SAMPLE`] over one [`CYCLE`] of pod churn (a pod deleted and a new
    /// one added at once, evenly spaced); one entry, `steady`, without churn. Each sample is the
    /// largest footprint seen in its interval.
    pub cycle: Vec<Footprint>,
    /// The largest footprint (by subnet addresses) of `steady` and `cycle`.
    pub peak: Footprint,
    /// Pod ADDs during the churn cycle that found no assignable address at once and waited
    /// for the pool to grow (or a cooldown to end).
    pub churn_waits: u32,
    /// EC2 calls of the ramp, by API.
    pub ramp_calls: BTreeMap<&'static str, u64>,
}

fn footprint(node: &Node, pods: u32, branch_pods: u32, trunk: bool) -> Footprint {
    let (mut enis, mut ips, mut prefixes) = (0u32, 0u32, 0u32);
    for e in node.ec2.enis() {
        enis += 1;
        ips += u32::try_from(e.addresses.ips.len()).unwrap_or(u32::MAX);
        prefixes += u32::try_from(e.addresses.prefixes.len()).unwrap_or(u32::MAX);
    }
    Footprint {
        pods,
        branch_pods,
        enis,
        ips,
        prefixes,
        trunk,
    }
}

fn larger(a: Footprint, b: Footprint) -> Footprint {
    if b.subnet_addresses() > a.subnet_addresses() {
        b
    } else {
        a
    }
}

/// Runs the engine for one shape: `pods` pods per node (of which `sgp_share` on branch ENIs
/// when the type has a trunk ENI), then one hour in which `churn_per_hour × pods` pods are
/// replaced. Deterministic.
pub fn profile(
    limits: &InstanceLimits,
    config: &PoolConfig,
    pods: u32,
    sgp_share: f64,
    churn_per_hour: f64,
) -> Result<Profile> {
    let mp = max_pods::max_pods(
        limits,
        &max_pods::Options {
            prefix_delegation: config.prefix_delegation,
            custom_networking: config.custom_networking,
            security_groups_for_pods: config.pod_eni,
            max_eni: config.max_eni.and_then(std::num::NonZeroU32::new),
            ..max_pods::Options::default()
        },
    );
    let trunk = mp.trunk_eni;
    let branch_pods = if trunk {
        round_u32(f64::from(pods) * sgp_share).min(mp.branch_enis.unwrap_or(0))
    } else {
        0
    };
    let pool_pods = pods - branch_pods;
    let mut node = Node::new(limits, config.clone(), "10.0.0.0/16")?;
    let reports = node.run_counts(&[0, pool_pods]);
    let unserved = reports.last().map_or(0, |r| r.unserved);
    let served = pool_pods - unserved;
    let steady = footprint(&node, served, branch_pods, trunk);
    let ramp_calls = node.ec2.calls().clone();

    let replacements = round_u32(f64::from(served) * churn_per_hour);
    let mut cycle = Vec::new();
    let mut churn_waits = 0;
    if replacements == 0 {
        cycle.push(steady);
    } else {
        let mut live: VecDeque<String> = (0..served).map(|i| format!("pod-{i}")).collect();
        let mut waiting: VecDeque<String> = VecDeque::new();
        let spacing = CYCLE.as_millis() / u128::from(replacements);
        let start = node.now;
        let mut done = 0u32;
        let mut next_id = 0u64;
        let mut sample = footprint(&node, served, branch_pods, trunk);
        let mut elapsed = Duration::ZERO;
        while elapsed < CYCLE {
            // Events due by now.
            while done < replacements && u128::from(done) * spacing <= elapsed.as_millis() {
                if let Some(old) = live.pop_front() {
                    node.del_pod(&old);
                }
                let id = format!("churn-{next_id}");
                next_id += 1;
                if matches!(node.add_pod(&id), Reply::Assigned { .. }) {
                    live.push_back(id);
                } else {
                    churn_waits += 1;
                    waiting.push_back(id);
                }
                done += 1;
            }
            node.advance(TICK);
            elapsed = node.now.since(start);
            // Kubelet retries pods that got no address.
            for _ in 0..waiting.len() {
                if let Some(id) = waiting.pop_front() {
                    if matches!(node.add_pod(&id), Reply::Assigned { .. }) {
                        live.push_back(id);
                    } else {
                        waiting.push_back(id);
                    }
                }
            }
            let pods_now = u32::try_from(live.len()).unwrap_or(u32::MAX);
            sample = larger(sample, footprint(&node, pods_now, branch_pods, trunk));
            if elapsed.as_millis().is_multiple_of(SAMPLE.as_millis()) {
                cycle.push(sample);
                sample = footprint(&node, pods_now, branch_pods, trunk);
            }
        }
    }
    let peak = cycle.iter().copied().fold(steady, larger);
    Ok(Profile {
        steady,
        unserved,
        cycle,
        peak,
        churn_waits,
        ramp_calls,
    })
}

/// Rounds a non-negative value to the nearest whole number, saturating.
pub(crate) fn round_u32(v: f64) -> u32 {
    if !v.is_finite() || v <= 0.0 {
        0
    } else if v >= f64::from(u32::MAX) {
        u32::MAX
    } else {
        #[expect(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "checked finite, non-negative and below u32::MAX"
        )]
        let r = v.round() as u32;
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use planner::catalogue::lookup;

    fn config(pairs: &[(&str, &str)], max_pods: u32) -> PoolConfig {
        let vars = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        PoolConfig {
            max_pods,
            ..PoolConfig::from_vars(&vars).unwrap()
        }
    }

    #[test]
    fn warm_ip_target_to_small_warm_pool() {
        // WARM_IP_TARGET=5: 20 pods hold 25 addresses on an m5.xlarge (14 per ENI): 2 ENIs.
        let p = profile(
            lookup("m5.xlarge").unwrap(),
            &config(&[("WARM_IP_TARGET", "5")], 58),
            20,
            0.0,
            0.0,
        )
        .unwrap();
        assert_eq!((p.steady.pool_addresses(), p.steady.warm()), (25, 5));
        assert_eq!(p.steady.enis, 2);
        assert_eq!(p.cycle, [p.steady]);
    }

    #[test]
    fn prefix_delegation_to_prefixes_and_one_spare() {
        // WARM_PREFIX_TARGET=1: 30 pods fill 2 prefixes; one more stays free.
        let p = profile(
            lookup("m5.large").unwrap(),
            &config(
                &[
                    ("ENABLE_PREFIX_DELEGATION", "true"),
                    ("WARM_PREFIX_TARGET", "1"),
                ],
                110,
            ),
            30,
            0.0,
            0.0,
        )
        .unwrap();
        assert_eq!((p.steady.prefixes, p.steady.ips, p.steady.enis), (3, 0, 1));
        assert_eq!(p.steady.subnet_addresses(), 1 + 48);
    }

    #[test]
    fn density_above_capacity_to_unserved() {
        let p = profile(lookup("t3.small").unwrap(), &config(&[], 11), 20, 0.0, 0.0).unwrap();
        // t3.small: 3 ENIs × 3 addresses.
        assert_eq!((p.steady.pods, p.unserved), (9, 11));
    }

    #[test]
    fn churn_with_warm_ip_target_to_cooling_overhead_in_the_cycle() {
        // Replacing pods while released addresses cool down: the pool holds more at peak.
        let c = config(&[("WARM_IP_TARGET", "2")], 58);
        let p = profile(lookup("m5.xlarge").unwrap(), &c, 20, 0.0, 6.0).unwrap();
        assert_eq!(p.cycle.len(), 12);
        assert!(
            p.peak.pool_addresses() > p.steady.pool_addresses(),
            "{:?} vs {:?}",
            p.peak,
            p.steady
        );
    }

    #[test]
    fn security_group_pods_to_trunk_and_branches() {
        let c = config(&[("ENABLE_POD_ENI", "true")], 20);
        let p = profile(lookup("m5.large").unwrap(), &c, 10, 0.2, 0.0).unwrap();
        assert!(p.steady.trunk);
        assert_eq!((p.steady.branch_pods, p.steady.pods), (2, 8));
        assert_eq!(p.steady.trunk_addresses(), 3);
    }
}
