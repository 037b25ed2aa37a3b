//! Cluster capacity forecasts: what the node groups of a [`Cluster`] consume in each subnet,
//! how many nodes each group can reach, the headroom at peak, the time to exhaustion under
//! growth, and — simulated on the subnets' real address space — when /28 prefixes run out
//! while addresses remain.
//!
//! How it works (see `docs/decisions/0003-forecasts-run-the-engine.md`):
//!
//! 1. Every node *shape* (type, settings, density, churn) runs the warm-pool engine once
//!    ([`footprint::profile`]): the ENIs, secondary IPs and prefixes a node holds come from the
//!    same [`planner::pool`] the daemon runs.
//! 2. Nodes are placed on [`Subnet`] models: AZs round-robin, the group's subnets in each AZ
//!    round-robin, instance types and densities by their weights (a low-discrepancy sequence,
//!    so every prefix of the node list has the right mix). Addresses are placed the way EC2
//!    places them, at random from the spec's seed ([`Placement::Scattered`]); other tenants'
//!    `used` addresses too.
//! 3. Capacities are brute force: nodes are added one at a time until an allocation fails
//!    (`InsufficientFreeAddressesInSubnet` or `InsufficientCidrBlocks`), so a forecast can never
//!    promise a node the address space cannot hold.
//! 4. A timeline replays the churn window (24 h by default, 5-minute steps): each node follows
//!    its shape's churn cycle (prefixes and addresses come and go), nodes are recycled at the
//!    node churn rate (the replacement is launched first, with new random addresses, then the
//!    old node terminates, as a rolling update does), groups grow. Every failed
//!    allocation is recorded; a prefix failure while 16 or more addresses are free is
//!    fragmentation.
//!
//! ```
//! let cluster = capacity::spec::load(r#"
//! vpc_cidrs: [10.0.0.0/16]
//! subnets: [{ id: a, cidr: 10.0.0.0/24, az: z1 }]
//! node_groups:
//!   - { name: g, instance_types: [m5.large], nodes: 2, pods: { per_node: 10 } }
//! "#)?;
//! let f = capacity::forecast::forecast(&cluster, &capacity::forecast::Options::default(), &mut |_| {})?;
//! // Each m5.large holds 3 ENIs × (1 primary + 9 pool addresses) for 10 pods (S-02): 30.
//! assert_eq!(f.subnets[0].now.used - f.subnets[0].others, 60);
//! // 251 usable addresses: 8 such nodes fit (240), the 9th does not.
//! assert_eq!(f.groups[0].max_nodes, 8);
//! # Ok::<(), capacity::Error>(())
//! ```

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::Duration;

use ipnetwork::Ipv4Network;
use serde::Serialize;

use crate::blocks::{EniUsage, SubnetUsage};
use crate::error::Result;
use crate::footprint::{self, Footprint, Profile, SAMPLE};
use crate::spec::Cluster;
use planner::catalogue::InstanceLimits;
use planner::max_pods::AddressMode;
use planner::subnet::{ADDRESSES_PER_PREFIX, Placement, Subnet};

/// Forecast settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// Length of the simulated churn window.
    pub window: Duration,
    /// How far ahead growth is followed, in days.
    pub horizon_days: u32,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            window: Duration::from_hours(24),
            horizon_days: 730,
        }
    }
}

/// Progress of a long forecast, for a progress bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// What is running.
    pub phase: &'static str,
    /// Units done.
    pub done: u64,
    /// Units in all.
    pub total: u64,
}

/// Addresses of one subnet, by what holds them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Usage {
    /// Nodes placed in (or using) the subnet.
    pub nodes: u32,
    /// Pool addresses bound to pods.
    pub pods: u32,
    /// Pool addresses no pod holds: the warm pool.
    pub warm: u32,
    /// Primary addresses of the nodes (their primary ENIs).
    pub node_primaries: u32,
    /// Primary addresses of the other ENIs.
    pub eni_primaries: u32,
    /// Trunk and branch ENI addresses (security groups for pods).
    pub trunks: u32,
    /// Addresses of other tenants (`used` and `taken`).
    pub others: u32,
    /// Everything in use, AWS-reserved addresses excluded.
    pub used: u32,
    /// Free addresses.
    pub free: u32,
    /// Entirely free aligned /28 blocks.
    pub free_blocks: u32,
    /// [`Subnet::fragmentation`].
    pub fragmentation: f64,
}

/// A failed allocation during the churn window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Shortage {
    /// Minutes into the window.
    pub minute: u64,
    /// The EC2 error.
    pub error: &'static str,
    /// Free addresses at that moment.
    pub free_addresses: u32,
    /// Free aligned /28s at that moment.
    pub free_blocks: u32,
    /// The node group whose node asked.
    pub group: String,
}

/// The churn window of one subnet.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Window {
    /// Hours simulated.
    pub hours: f64,
    /// Fewest free /28s seen.
    pub min_free_blocks: u32,
    /// Free /28s at the end.
    pub end_free_blocks: u32,
    /// Fewest free addresses seen.
    pub min_free_addresses: u32,
    /// Fragmentation at the end.
    pub end_fragmentation: f64,
    /// The first `InsufficientCidrBlocks` while 16 or more addresses were free: /28s ran out
    /// although addresses remain.
    pub fragmented: Option<Shortage>,
    /// The first failed allocation of any kind.
    pub first_shortage: Option<Shortage>,
    /// Failed allocations in all.
    pub shortages: u32,
    /// (minute, used addresses, free /28s) every step.
    pub series: Vec<(u64, u32, u32)>,
}

/// One subnet's forecast.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SubnetForecast {
    /// Id.
    pub id: String,
    /// CIDR.
    pub cidr: Ipv4Network,
    /// AZ.
    pub az: String,
    /// Usable addresses (size − 5).
    pub usable: u32,
    /// Delegatable /28 blocks.
    pub delegatable_blocks: u32,
    /// Addresses of other tenants.
    pub others: u32,
    /// With every group at its current node count.
    pub now: Usage,
    /// With every group at its peak (max) node count.
    pub peak: Usage,
    /// Free addresses at peak, percent of usable. Negative when the nodes at peak do not fit:
    /// then it is the addresses still missing, as a percentage of usable.
    pub headroom_percent: f64,
    /// Nodes that could not be placed at peak (in this subnet).
    pub unplaced_at_peak: u32,
    /// Days until the groups' growth no longer fits (0: not even today); `None`: not within the
    /// horizon.
    pub days_to_exhaustion: Option<u32>,
    /// The churn window.
    pub window: Window,
    /// (day, used addresses) under growth, for plots.
    pub growth_series: Vec<(u32, u32)>,
}

/// One node shape of a group.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ShapeForecast {
    /// Instance type.
    pub instance_type: &'static str,
    /// Mode in effect.
    pub mode: AddressMode,
    /// Pods per node asked for.
    pub pods: u32,
    /// Share of the group's nodes, percent.
    pub share_percent: f64,
    /// The kubelet max pods used.
    pub max_pods: u32,
    /// Engine result at rest.
    pub steady: Footprint,
    /// Largest footprint under churn.
    pub peak: Footprint,
    /// Pods the node cannot serve.
    pub unserved: u32,
    /// Subnet addresses per node at peak.
    pub addresses_per_node: u32,
    /// Pod ADDs that waited for an address during the churn hour.
    pub churn_waits: u32,
}

/// What stopped a group from growing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Limit {
    /// The subnet that refused.
    pub subnet: String,
    /// EC2's error: `InsufficientFreeAddressesInSubnet` or `InsufficientCidrBlocks`.
    pub error: &'static str,
}

/// One node group's forecast.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupForecast {
    /// Name.
    pub name: String,
    /// Nodes now.
    pub current: u32,
    /// Nodes at peak.
    pub peak: u32,
    /// The most nodes the group reaches, the others staying as they are now, before a subnet
    /// refuses an allocation (brute force on the subnet models).
    pub max_nodes: u32,
    /// The subnet that refused the next node, and its error.
    pub limited_by: Option<Limit>,
    /// The same bound by counting addresses only (and whole /28s for prefixes), ignoring
    /// where EC2 puts them: `max_nodes` is at most this; less means fragmentation.
    pub max_nodes_by_count: u32,
    /// Growth per month, percent.
    pub growth_percent_per_month: f64,
    /// Node shapes.
    pub shapes: Vec<ShapeForecast>,
    /// Days until this group's growth no longer fits (all groups growing).
    pub days_to_exhaustion: Option<u32>,
}

/// One AZ: its subnets added up.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AzForecast {
    /// The AZ.
    pub az: String,
    /// Its subnets, in spec order.
    pub subnets: Vec<String>,
    /// Usable addresses of its subnets.
    pub usable: u32,
    /// Every category summed over its subnets, now (nodes counted once each; fragmentation:
    /// the largest of its subnets').
    pub now: Usage,
    /// The same at peak.
    pub peak: Usage,
    /// Free at peak (minus what nodes that do not fit still need), percent of usable.
    pub headroom_percent: f64,
    /// The first of its subnets' days to exhaustion.
    pub days_to_exhaustion: Option<u32>,
}

fn add_usage(a: &mut Usage, b: &Usage) {
    a.nodes += b.nodes;
    a.pods += b.pods;
    a.warm += b.warm;
    a.node_primaries += b.node_primaries;
    a.eni_primaries += b.eni_primaries;
    a.trunks += b.trunks;
    a.others += b.others;
    a.used += b.used;
    a.free += b.free;
    a.free_blocks += b.free_blocks;
    a.fragmentation = a.fragmentation.max(b.fragmentation);
}

fn by_az(subnets: &[SubnetForecast]) -> Vec<AzForecast> {
    let mut out: Vec<AzForecast> = Vec::new();
    // Per AZ: free at peak minus what the nodes that do not fit still need, in addresses.
    let mut room: Vec<f64> = Vec::new();
    for s in subnets {
        let i = if let Some(i) = out.iter().position(|a| a.az == s.az) {
            i
        } else {
            out.push(AzForecast {
                az: s.az.clone(),
                subnets: Vec::new(),
                usable: 0,
                now: Usage::default(),
                peak: Usage::default(),
                headroom_percent: 0.0,
                days_to_exhaustion: None,
            });
            room.push(0.0);
            out.len() - 1
        };
        let a = &mut out[i];
        a.subnets.push(s.id.clone());
        a.usable += s.usable;
        add_usage(&mut a.now, &s.now);
        add_usage(&mut a.peak, &s.peak);
        room[i] += s.headroom_percent / 100.0 * f64::from(s.usable);
        a.headroom_percent = 100.0 * room[i] / f64::from(a.usable);
        a.days_to_exhaustion = match (a.days_to_exhaustion, s.days_to_exhaustion) {
            (Some(x), Some(y)) => Some(x.min(y)),
            (x, y) => x.or(y),
        };
    }
    // A node with custom networking uses two subnets of its AZ: count it once, by its primary.
    for a in &mut out {
        a.now.nodes = a.now.node_primaries;
        a.peak.nodes = a.peak.node_primaries;
    }
    out
}

/// The whole forecast.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Forecast {
    /// Cluster name.
    pub cluster: String,
    /// Seed used for placement.
    pub seed: u64,
    /// Churn window, hours.
    pub window_hours: f64,
    /// Growth horizon, days.
    pub horizon_days: u32,
    /// Per subnet, in spec order.
    pub subnets: Vec<SubnetForecast>,
    /// Per AZ, in order of first appearance.
    pub azs: Vec<AzForecast>,
    /// Per node group, in spec order.
    pub groups: Vec<GroupForecast>,
    /// Days until the first subnet runs out under growth.
    pub days_to_exhaustion: Option<u32>,
    /// Notes from validation and the forecast.
    pub notes: Vec<String>,
}

// ----- shapes --------------------------------------------------------------------------------

/// A node shape with its engine profile.
#[derive(Debug, Clone)]
pub(crate) struct Shape {
    pub(crate) limits: &'static InstanceLimits,
    pub(crate) mode: AddressMode,
    pub(crate) pods: u32,
    pub(crate) max_pods: u32,
    pub(crate) weight: u64,
    pub(crate) profile: Profile,
}

/// Per group: shapes (type × density) with their cumulative weights.
#[derive(Debug, Clone)]
pub(crate) struct GroupShapes {
    pub(crate) shapes: Vec<Shape>,
    pub(crate) total_weight: u64,
}

impl GroupShapes {
    /// The shape of node `k`: a low-discrepancy walk over the cumulative weights.
    pub(crate) fn shape_of(&self, k: u32) -> usize {
        if self.shapes.len() == 1 {
            return 0;
        }
        // Golden-ratio sequence in fixed point: every prefix of nodes has close to the weighted mix.
        let x = u128::from(u64::from(k).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 11);
        let point = u64::try_from((x * u128::from(self.total_weight)) >> 53).unwrap_or(0);
        let mut acc = 0;
        for (i, s) in self.shapes.iter().enumerate() {
            acc += s.weight;
            if point < acc {
                return i;
            }
        }
        self.shapes.len() - 1
    }
}

pub(crate) fn build_shapes(
    cluster: &Cluster,
    progress: &mut dyn FnMut(Progress),
) -> Result<Vec<GroupShapes>> {
    let total: u64 = cluster
        .groups
        .iter()
        .map(|g| (g.types.len() * g.densities.len()) as u64)
        .sum();
    let mut done = 0;
    let mut memo: BTreeMap<(String, String, u32, u64, u64), Profile> = BTreeMap::new();
    let mut out = Vec::new();
    for g in &cluster.groups {
        let mut shapes = Vec::new();
        for t in &g.types {
            for &(pods, w) in &g.densities {
                let key = (
                    t.limits.name.to_owned(),
                    format!("{:?}", t.config),
                    pods,
                    g.sgp_share.to_bits(),
                    g.churn_per_hour.to_bits(),
                );
                let profile = if let Some(p) = memo.get(&key) {
                    p.clone()
                } else {
                    let p = footprint::profile(
                        t.limits,
                        &t.config,
                        pods,
                        g.sgp_share,
                        g.churn_per_hour,
                    )?;
                    memo.insert(key, p.clone());
                    p
                };
                shapes.push(Shape {
                    limits: t.limits,
                    mode: t.mode,
                    pods,
                    max_pods: t.config.max_pods,
                    weight: u64::from(t.weight) * u64::from(w),
                    profile,
                });
                done += 1;
                progress(Progress {
                    phase: "node shapes",
                    done,
                    total,
                });
            }
        }
        let total_weight = shapes.iter().map(|s| s.weight).sum();
        out.push(GroupShapes {
            shapes,
            total_weight,
        });
    }
    Ok(out)
}

// ----- placement ----------------------------------------------------------------------------

#[derive(Debug, Clone, Default)]
struct Held {
    primary: Option<Ipv4Addr>,
    eni_primaries: Vec<Ipv4Addr>,
    ips: Vec<Ipv4Addr>,
    prefixes: Vec<Ipv4Network>,
    trunks: Vec<Ipv4Addr>,
    pods: u32,
}

#[derive(Debug, Clone)]
struct PlacedNode {
    group: usize,
    index: u32,
    shape: usize,
    node_subnet: usize,
    pod_subnet: usize,
    held: Held,
}

/// Counters per subnet, by category.
#[derive(Debug, Clone, Copy, Default)]
struct Tally {
    nodes: u32,
    pods: u32,
    warm: u32,
    node_primaries: u32,
    eni_primaries: u32,
    trunks: u32,
}

/// Why an allocation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Refusal {
    subnet: usize,
    error: &'static str,
    free_addresses: u32,
    free_blocks: u32,
}

/// The subnets with nodes on them.
#[derive(Debug, Clone)]
struct Space {
    subnets: Vec<Subnet>,
    others: Vec<u32>,
    /// Other tenants' addresses placed at random (`used`).
    scattered: Vec<Vec<Ipv4Addr>>,
    tally: Vec<Tally>,
    placement: Placement,
}

fn refusal(subnet: usize, s: &Subnet, e: &planner::Error) -> Refusal {
    Refusal {
        subnet,
        error: match e {
            planner::Error::InsufficientCidrBlocks { .. } => "InsufficientCidrBlocks",
            _ => "InsufficientFreeAddressesInSubnet",
        },
        free_addresses: s.free_addresses(),
        free_blocks: s.free_blocks(),
    }
}

impl Space {
    fn new(cluster: &Cluster) -> Result<Space> {
        let placement = Placement::Scattered { seed: cluster.seed };
        let mut subnets = Vec::new();
        let mut others = Vec::new();
        let mut scattered = Vec::new();
        for def in &cluster.subnets {
            let mut s = def.model()?;
            let before = s.free_addresses();
            let taken = s.allocate_ips(def.used, placement)?;
            // Other tenants' addresses are not ours: mark them as such.
            for &a in &taken {
                s.release_ip(a)?;
                s.occupy(a)?;
            }
            scattered.push(taken);
            others.push(s.usable() - before + def.used);
            subnets.push(s);
        }
        let n = subnets.len();
        Ok(Space {
            subnets,
            others,
            scattered,
            tally: vec![Tally::default(); n],
            placement,
        })
    }

    /// A copy holding only the subnets in `keep` (the others are tiny stand-ins a placement
    /// restricted to `keep` never touches), so per-subnet searches do not copy every subnet.
    fn subset(&self, keep: &std::collections::BTreeSet<usize>) -> Result<Space> {
        let stand_in = Subnet::new(Ipv4Network::new(Ipv4Addr::UNSPECIFIED, 28).map_err(|_| {
            planner::Error::InvalidPrefix {
                prefix: "0.0.0.0/28".into(),
                reason: "a stand-in subnet".into(),
            }
        })?)?;
        Ok(Space {
            subnets: self
                .subnets
                .iter()
                .enumerate()
                .map(|(i, s)| {
                    if keep.contains(&i) {
                        s.clone()
                    } else {
                        stand_in.clone()
                    }
                })
                .collect(),
            others: self.others.clone(),
            scattered: Vec::new(),
            tally: self.tally.clone(),
            placement: self.placement,
        })
    }

    fn usage(&self, i: usize) -> Usage {
        let s = &self.subnets[i];
        let t = self.tally[i];
        Usage {
            nodes: t.nodes,
            pods: t.pods,
            warm: t.warm,
            node_primaries: t.node_primaries,
            eni_primaries: t.eni_primaries,
            trunks: t.trunks,
            others: self.others[i],
            used: s.usable() - s.free_addresses(),
            free: s.free_addresses(),
            free_blocks: s.free_blocks(),
            fragmentation: s.fragmentation(),
        }
    }

    fn adjust_ips(
        &mut self,
        subnet: usize,
        held: &mut Vec<Ipv4Addr>,
        target: u32,
    ) -> std::result::Result<(), Refusal> {
        let have = u32::try_from(held.len()).unwrap_or(u32::MAX);
        let s = &mut self.subnets[subnet];
        if target > have {
            match s.allocate_ips(target - have, self.placement) {
                Ok(v) => held.extend(v),
                Err(e) => return Err(refusal(subnet, s, &e)),
            }
        } else {
            for _ in target..have {
                if let Some(a) = held.pop() {
                    let _ = s.release_ip(a);
                }
            }
        }
        Ok(())
    }

    fn adjust_prefixes(
        &mut self,
        subnet: usize,
        held: &mut Vec<Ipv4Network>,
        target: u32,
    ) -> std::result::Result<(), Refusal> {
        let have = u32::try_from(held.len()).unwrap_or(u32::MAX);
        let s = &mut self.subnets[subnet];
        if target > have {
            for _ in have..target {
                match s.allocate_prefix(self.placement) {
                    Ok(p) => held.push(p),
                    Err(e) => return Err(refusal(subnet, s, &e)),
                }
            }
        } else {
            for _ in target..have {
                if let Some(p) = held.pop() {
                    let _ = s.release_prefix(p);
                }
            }
        }
        Ok(())
    }

    fn untally(&mut self, node: &PlacedNode) {
        let h = &node.held;
        let pool = u32::try_from(h.ips.len()).unwrap_or(0)
            + ADDRESSES_PER_PREFIX * u32::try_from(h.prefixes.len()).unwrap_or(0);
        let (ns, ps) = (node.node_subnet, node.pod_subnet);
        if h.primary.is_some() {
            self.tally[ns].nodes -= 1;
            self.tally[ns].node_primaries -= 1;
            if ps != ns {
                self.tally[ps].nodes -= 1;
            }
        }
        let t = &mut self.tally[ps];
        t.eni_primaries -= u32::try_from(h.eni_primaries.len()).unwrap_or(0);
        t.trunks -= u32::try_from(h.trunks.len()).unwrap_or(0);
        t.pods -= h.pods.min(pool);
        t.warm -= pool - h.pods.min(pool);
    }

    fn retally(&mut self, node: &PlacedNode) {
        let h = &node.held;
        let pool = u32::try_from(h.ips.len()).unwrap_or(0)
            + ADDRESSES_PER_PREFIX * u32::try_from(h.prefixes.len()).unwrap_or(0);
        let (ns, ps) = (node.node_subnet, node.pod_subnet);
        if h.primary.is_some() {
            self.tally[ns].nodes += 1;
            self.tally[ns].node_primaries += 1;
            if ps != ns {
                self.tally[ps].nodes += 1;
            }
        }
        let t = &mut self.tally[ps];
        t.eni_primaries += u32::try_from(h.eni_primaries.len()).unwrap_or(0);
        t.trunks += u32::try_from(h.trunks.len()).unwrap_or(0);
        t.pods += h.pods.min(pool);
        t.warm += pool - h.pods.min(pool);
    }

    /// Makes the node hold `f`, allocating or releasing the difference. On a refusal the node
    /// keeps what it got so far.
    fn fit(&mut self, node: &mut PlacedNode, f: &Footprint) -> std::result::Result<(), Refusal> {
        self.untally(node);
        let result = self.fit_inner(node, f);
        self.retally(node);
        result
    }

    fn fit_inner(
        &mut self,
        node: &mut PlacedNode,
        f: &Footprint,
    ) -> std::result::Result<(), Refusal> {
        let (ns, ps) = (node.node_subnet, node.pod_subnet);
        let h = &mut node.held;
        if h.primary.is_none() {
            let s = &mut self.subnets[ns];
            match s.allocate_ip(self.placement) {
                Ok(a) => h.primary = Some(a),
                Err(e) => return Err(refusal(ns, s, &e)),
            }
        }
        h.pods = f.pods;
        // Release before allocating, so a shrinking kind makes room for a growing one.
        let mut order = [
            (0, f.eni_primaries()),
            (1, f.ips),
            (2, f.prefixes),
            (3, f.trunk_addresses()),
        ];
        order.sort_by_key(|&(kind, target)| {
            let have = match kind {
                0 => h.eni_primaries.len(),
                1 => h.ips.len(),
                2 => h.prefixes.len(),
                _ => h.trunks.len(),
            };
            (u32::try_from(have).unwrap_or(u32::MAX) < target, kind)
        });
        for (kind, target) in order {
            match kind {
                0 => self.adjust_ips(ps, &mut h.eni_primaries, target)?,
                1 => self.adjust_ips(ps, &mut h.ips, target)?,
                2 => self.adjust_prefixes(ps, &mut h.prefixes, target)?,
                _ => self.adjust_ips(ps, &mut h.trunks, target)?,
            }
        }
        Ok(())
    }

    /// Releases everything the node holds.
    fn release(&mut self, node: &mut PlacedNode) {
        self.untally(node);
        let (ns, ps) = (node.node_subnet, node.pod_subnet);
        let h = std::mem::take(&mut node.held);
        if let Some(a) = h.primary {
            let _ = self.subnets[ns].release_ip(a);
        }
        let s = &mut self.subnets[ps];
        for a in h.eni_primaries.iter().chain(&h.ips).chain(&h.trunks) {
            let _ = s.release_ip(*a);
        }
        for p in h.prefixes {
            let _ = s.release_prefix(p);
        }
    }
}

/// The indices below `count` of group `g`'s nodes that use subnet `i` (as node or pod
/// subnet), ascending: the inverse of [`subnets_of`], by stride.
fn indices_in(cluster: &Cluster, g: usize, count: u32, i: usize) -> Vec<u32> {
    let group = &cluster.groups[g];
    let n_az = u32::try_from(group.azs.len()).unwrap_or(1).max(1);
    let mut out = Vec::new();
    for (ai, az) in (0u32..).zip(&group.azs) {
        let list = &group.node_subnets[az];
        let pod = group
            .pod_subnets
            .get(az)
            .copied()
            .filter(|_| group.custom_networking);
        if pod == Some(i) {
            out.extend((ai..count).step_by(n_az as usize));
            continue;
        }
        let n = u32::try_from(list.len()).unwrap_or(1).max(1);
        for (pos, &sub) in (0u32..).zip(list) {
            if sub == i {
                let first = ai + n_az * pos;
                out.extend((first..count).step_by((n_az * n) as usize));
            }
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// Where node `k` of group `g` goes: (node subnet, pod subnet).
fn subnets_of(cluster: &Cluster, g: usize, k: u32) -> (usize, usize) {
    let group = &cluster.groups[g];
    let n_az = u32::try_from(group.azs.len()).unwrap_or(1).max(1);
    let az = &group.azs[(k % n_az) as usize];
    let list = &group.node_subnets[az];
    let n = u32::try_from(list.len()).unwrap_or(1).max(1);
    let node_subnet = list[((k / n_az) % n) as usize];
    let pod_subnet = if group.custom_networking {
        group.pod_subnets.get(az).copied().unwrap_or(node_subnet)
    } else {
        node_subnet
    };
    (node_subnet, pod_subnet)
}

fn new_node(cluster: &Cluster, shapes: &[GroupShapes], g: usize, k: u32) -> PlacedNode {
    let (node_subnet, pod_subnet) = subnets_of(cluster, g, k);
    PlacedNode {
        group: g,
        index: k,
        shape: shapes[g].shape_of(k),
        node_subnet,
        pod_subnet,
        held: Held::default(),
    }
}

/// What a placement left out.
#[derive(Debug, Clone, Default)]
struct Placed {
    nodes: Vec<PlacedNode>,
    /// The first refusal per group.
    refused: Vec<Option<Refusal>>,
    /// The first refusal per subnet.
    by_subnet: Vec<Option<Refusal>>,
    /// Nodes (group, index) that did not fit.
    unplaced: Vec<(usize, u32)>,
}

/// Places `counts[g]` nodes of each group (interleaved), each holding its shape's peak. A node
/// that does not fit is left out and placing goes on, so every subnet that runs out says so.
/// With `only`, nodes that touch no subnet of `only` are skipped (subnets fill independently).
fn place(
    cluster: &Cluster,
    shapes: &[GroupShapes],
    space: &mut Space,
    counts: &[u32],
    only: Option<usize>,
) -> Placed {
    let mut out = Placed {
        refused: vec![None; counts.len()],
        by_subnet: vec![None; space.subnets.len()],
        ..Placed::default()
    };
    // The node indices of each group to place: all of them, or (with `only`) those whose
    // subnets include `only`, enumerated by stride so the cost follows the subnet's nodes.
    let lists: Vec<Vec<u32>> = counts
        .iter()
        .enumerate()
        .map(|(g, &count)| match only {
            None => (0..count).collect(),
            Some(i) => indices_in(cluster, g, count, i),
        })
        .collect();
    let most = lists.iter().map(Vec::len).max().unwrap_or(0);
    for p in 0..most {
        for (g, list) in lists.iter().enumerate() {
            let Some(&k) = list.get(p) else { continue };
            let mut node = new_node(cluster, shapes, g, k);
            let f = shapes[g].shapes[node.shape].profile.peak;
            match space.fit(&mut node, &f) {
                Ok(()) => out.nodes.push(node),
                Err(r) => {
                    space.release(&mut node);
                    out.refused[g].get_or_insert(r);
                    out.by_subnet[r.subnet].get_or_insert(r);
                    out.unplaced.push((g, k));
                }
            }
        }
    }
    out
}

/// Adds nodes of group `g` after `from` until one is refused; returns how many fit in all.
fn fill(
    cluster: &Cluster,
    shapes: &[GroupShapes],
    space: &mut Space,
    g: usize,
    from: u32,
) -> (u32, Option<Refusal>) {
    let mut k = from;
    loop {
        let mut node = new_node(cluster, shapes, g, k);
        let f = shapes[g].shapes[node.shape].profile.peak;
        if let Err(r) = space.fit(&mut node, &f) {
            space.release(&mut node);
            return (k, Some(r));
        }
        k += 1;
        if k >= 10_000_000 {
            return (k, None);
        }
    }
}

/// The count bound: nodes of group `g` that fit by address arithmetic alone, as if every free
/// address could go anywhere (prefixes included): an upper bound of the placement.
fn count_bound(
    cluster: &Cluster,
    shapes: &[GroupShapes],
    base: &Space,
    g: usize,
    from: u32,
) -> u32 {
    let mut free: Vec<i64> = base
        .subnets
        .iter()
        .map(|s| i64::from(s.free_addresses()))
        .collect();
    let mut k = from;
    loop {
        let (ns, ps) = subnets_of(cluster, g, k);
        let f = shapes[g].shapes[shapes[g].shape_of(k)].profile.peak;
        let pod_side = i64::from(f.subnet_addresses() - 1);
        free[ns] -= 1;
        free[ps] -= pod_side;
        if free[ns] < 0 || free[ps] < 0 {
            return k;
        }
        k += 1;
        if k >= 10_000_000 {
            return k;
        }
    }
}

/// For each subnet, the subnets a node using it may also use (itself, and with custom
/// networking the node or pod subnet of the same AZ).
fn paired_subnets(cluster: &Cluster) -> Vec<std::collections::BTreeSet<usize>> {
    let mut out: Vec<std::collections::BTreeSet<usize>> = (0..cluster.subnets.len())
        .map(|i| std::collections::BTreeSet::from([i]))
        .collect();
    for g in &cluster.groups {
        for (az, list) in &g.node_subnets {
            if let Some(&p) = g.pod_subnets.get(az).filter(|_| g.custom_networking) {
                for &n in list {
                    out[n].insert(p);
                    out[p].insert(n);
                }
            }
        }
    }
    out
}

fn counts_at_day(cluster: &Cluster, day: u32) -> Vec<u32> {
    cluster
        .groups
        .iter()
        .map(|g| {
            if g.growth_per_month == 0.0 || g.current == 0 {
                g.current
            } else {
                let factor = (1.0 + g.growth_per_month).powf(f64::from(day) / 30.0);
                footprint::round_u32((f64::from(g.current) * factor).ceil())
            }
        })
        .collect()
}

/// Runs the forecast. `progress` is called as shapes are simulated and as the window advances.
#[expect(
    clippy::too_many_lines,
    reason = "the phases of the forecast, in order; each is a few lines"
)]
pub fn forecast(
    cluster: &Cluster,
    options: &Options,
    progress: &mut dyn FnMut(Progress),
) -> Result<Forecast> {
    let shapes = build_shapes(cluster, progress)?;
    let empty = Space::new(cluster)?;
    let mut notes = cluster.notes.clone();

    // Now.
    let current: Vec<u32> = cluster.groups.iter().map(|g| g.current).collect();
    let mut now_space = empty.clone();
    let now = place(cluster, &shapes, &mut now_space, &current, None);
    for (g, r) in now.refused.iter().enumerate() {
        if let Some(r) = r {
            notes.push(format!(
                "node group {}: its {} current nodes do not fit today: subnet {} refused with {}",
                cluster.groups[g].name,
                cluster.groups[g].current,
                cluster.subnets[r.subnet].id,
                r.error
            ));
        }
    }

    // Peak.
    let peak: Vec<u32> = cluster.groups.iter().map(|g| g.max).collect();
    let mut peak_space = empty.clone();
    let at_peak = place(cluster, &shapes, &mut peak_space, &peak, None);
    let mut unplaced = vec![0u32; cluster.subnets.len()];
    let mut shortfall = vec![0u32; cluster.subnets.len()];
    for &(g, k) in &at_peak.unplaced {
        let (ns, ps) = subnets_of(cluster, g, k);
        let f = shapes[g].shapes[shapes[g].shape_of(k)].profile.peak;
        unplaced[ns] += 1;
        shortfall[ns] = shortfall[ns].saturating_add(1);
        shortfall[ps] = shortfall[ps].saturating_add(f.subnet_addresses() - 1);
    }

    // Max nodes per group, the others as now.
    let mut groups = Vec::new();
    for (g, group) in cluster.groups.iter().enumerate() {
        let others: Vec<u32> = current
            .iter()
            .enumerate()
            .map(|(i, &c)| if i == g { 0 } else { c })
            .collect();
        let mut space = empty.clone();
        let _ = place(cluster, &shapes, &mut space, &others, None);
        let bound = count_bound(cluster, &shapes, &space, g, 0);
        let (max_nodes, limit) = fill(cluster, &shapes, &mut space, g, 0);
        progress(Progress {
            phase: "capacity",
            done: g as u64 + 1,
            total: cluster.groups.len() as u64,
        });
        #[expect(
            clippy::cast_precision_loss,
            reason = "weights are small integers; a share is a percentage"
        )]
        let total_weight = shapes[g].total_weight.max(1) as f64;
        let shape_rows = shapes[g]
            .shapes
            .iter()
            .map(|s| ShapeForecast {
                instance_type: s.limits.name,
                mode: s.mode,
                pods: s.pods,
                share_percent: 100.0 * u32::try_from(s.weight).map_or(f64::MAX, f64::from)
                    / total_weight,
                max_pods: s.max_pods,
                steady: s.profile.steady,
                peak: s.profile.peak,
                unserved: s.profile.unserved,
                addresses_per_node: s.profile.peak.subnet_addresses(),
                churn_waits: s.profile.churn_waits,
            })
            .collect();
        groups.push(GroupForecast {
            name: group.name.clone(),
            current: group.current,
            peak: group.max,
            max_nodes,
            limited_by: limit.map(|r| Limit {
                subnet: cluster.subnets[r.subnet].id.clone(),
                error: r.error,
            }),
            max_nodes_by_count: bound,
            growth_percent_per_month: group.growth_per_month * 100.0,
            shapes: shape_rows,
            days_to_exhaustion: None,
        });
    }

    // Growth: per subnet, the first day its share of the grown cluster no longer fits
    // (bisection: the node counts only grow with the day; subnets fill independently, so each
    // is placed alone).
    let paired = paired_subnets(cluster);
    let refused_in = |day: u32, i: usize| -> Result<bool> {
        let mut space = empty.subset(&paired[i])?;
        let counts = counts_at_day(cluster, day);
        Ok(place(cluster, &shapes, &mut space, &counts, Some(i)).by_subnet[i].is_some())
    };
    let grows = cluster.groups.iter().any(|g| g.growth_per_month > 0.0);
    let mut subnet_days: Vec<Option<u32>> = vec![None; cluster.subnets.len()];
    for (i, day) in subnet_days.iter_mut().enumerate() {
        if now.by_subnet[i].is_some() {
            *day = Some(0);
        } else if grows && refused_in(options.horizon_days, i)? {
            let (mut lo, mut hi) = (0u32, options.horizon_days);
            while hi - lo > 1 {
                let mid = lo + (hi - lo) / 2;
                if refused_in(mid, i)? {
                    hi = mid;
                } else {
                    lo = mid;
                }
            }
            *day = Some(hi);
        }
        progress(Progress {
            phase: "growth",
            done: i as u64 + 1,
            total: cluster.subnets.len() as u64,
        });
    }
    let exhaustion: Option<u32> = subnet_days.iter().flatten().copied().min();
    for (g, out) in groups.iter_mut().enumerate() {
        let group = &cluster.groups[g];
        let mine: Vec<usize> = group
            .node_subnets
            .values()
            .flatten()
            .chain(group.pod_subnets.values())
            .copied()
            .collect();
        out.days_to_exhaustion = mine.iter().filter_map(|&i| subnet_days[i]).min();
    }
    // Growth series per subnet: used addresses by day, counted from the peak footprints.
    let series_days = exhaustion.map_or(options.horizon_days, |d| {
        (d + d / 4 + 1).min(options.horizon_days)
    });
    let growth_series = growth_series(cluster, &shapes, &empty, series_days);

    // The churn window.
    let windows = timeline(cluster, &shapes, &now_space, now.nodes, options, progress);
    let windows = windows.windows;

    let subnets: Vec<SubnetForecast> = cluster
        .subnets
        .iter()
        .enumerate()
        .map(|(i, def)| {
            let s = &empty.subnets[i];
            let peak_usage = peak_space.usage(i);
            // Free addresses at peak minus what the nodes that did not fit would still need.
            let headroom = 100.0 * (f64::from(peak_usage.free) - f64::from(shortfall[i]))
                / f64::from(s.usable());
            let days = subnet_days[i];
            SubnetForecast {
                id: def.id.clone(),
                cidr: def.cidr,
                az: def.az.clone(),
                usable: s.usable(),
                delegatable_blocks: s.delegatable_blocks(),
                others: empty.others[i],
                now: now_space.usage(i),
                peak: peak_usage,
                headroom_percent: headroom,
                unplaced_at_peak: unplaced[i],
                days_to_exhaustion: days,
                window: windows[i].clone(),
                growth_series: growth_series[i].clone(),
            }
        })
        .collect();

    Ok(Forecast {
        cluster: cluster.name.clone(),
        seed: cluster.seed,
        window_hours: options.window.as_secs_f64() / 3600.0,
        horizon_days: options.horizon_days,
        azs: by_az(&subnets),
        subnets,
        groups,
        days_to_exhaustion: exhaustion,
        notes,
    })
}

/// The subnets as they are today: every group at its current node count, placed as the
/// forecast places them (one entry per node and subnet, named `<group>-<index>`), other tenants'
/// addresses and taken ranges. This is what `eniplan subnets SPEC` maps.
pub fn current_usage(
    cluster: &Cluster,
    progress: &mut dyn FnMut(Progress),
) -> Result<Vec<SubnetUsage>> {
    let shapes = build_shapes(cluster, progress)?;
    let mut space = Space::new(cluster)?;
    let current: Vec<u32> = cluster.groups.iter().map(|g| g.current).collect();
    let nodes = place(cluster, &shapes, &mut space, &current, None).nodes;
    let mut out: Vec<SubnetUsage> = cluster
        .subnets
        .iter()
        .enumerate()
        .map(|(i, def)| SubnetUsage {
            id: def.id.clone(),
            cidr: def.cidr,
            az: def.az.clone(),
            enis: Vec::new(),
            others: space.scattered[i].clone(),
            reserved: def.taken.clone(),
        })
        .collect();
    for n in &nodes {
        let group = &cluster.groups[n.group];
        let shape = &shapes[n.group].shapes[n.shape];
        let name = format!("{}-{:04}", group.name, n.index);
        let owner = format!("{} {}", group.name, shape.limits.name);
        let h = &n.held;
        let Some(primary) = h.primary else { continue };
        let mut singles: Vec<Ipv4Addr> = h
            .eni_primaries
            .iter()
            .chain(&h.ips)
            .chain(&h.trunks)
            .copied()
            .collect();
        if n.pod_subnet == n.node_subnet {
            out[n.node_subnet].enis.push(EniUsage {
                id: name,
                owner,
                primary,
                ips: singles,
                prefixes: h.prefixes.clone(),
            });
        } else {
            out[n.node_subnet].enis.push(EniUsage {
                id: name.clone(),
                owner: owner.clone(),
                primary,
                ips: Vec::new(),
                prefixes: Vec::new(),
            });
            if !singles.is_empty() || !h.prefixes.is_empty() {
                let first = if singles.is_empty() {
                    None
                } else {
                    Some(singles.remove(0))
                };
                if let Some(first) = first {
                    out[n.pod_subnet].enis.push(EniUsage {
                        id: format!("{name}-pods"),
                        owner,
                        primary: first,
                        ips: singles,
                        prefixes: h.prefixes.clone(),
                    });
                }
            }
        }
    }
    Ok(out)
}

fn growth_series(
    cluster: &Cluster,
    shapes: &[GroupShapes],
    empty: &Space,
    days: u32,
) -> Vec<Vec<(u32, u32)>> {
    let n = cluster.subnets.len();
    let step = (days / 60).max(1);
    let mut out = vec![Vec::new(); n];
    let mut day = 0;
    loop {
        let counts = counts_at_day(cluster, day);
        let mut used: Vec<u64> = (0..n)
            .map(|i| u64::from(empty.subnets[i].usable() - empty.subnets[i].free_addresses()))
            .collect();
        for (g, &count) in counts.iter().enumerate() {
            // Sum by (subnets, shape) without walking millions of nodes one by one when large.
            let stride = (count / 20_000).max(1);
            let mut k = 0;
            while k < count {
                let (ns, ps) = subnets_of(cluster, g, k);
                let f = shapes[g].shapes[shapes[g].shape_of(k)].profile.peak;
                let take = u64::from(stride.min(count - k));
                used[ns] += take;
                used[ps] += take * u64::from(f.subnet_addresses() - 1);
                k += stride;
            }
        }
        for (i, u) in used.into_iter().enumerate() {
            out[i].push((day, u32::try_from(u).unwrap_or(u32::MAX)));
        }
        if day >= days {
            break;
        }
        day = (day + step).min(days);
    }
    out
}

struct Timeline {
    windows: Vec<Window>,
}

/// Replays the churn window on the placed nodes.
#[expect(
    clippy::too_many_lines,
    reason = "one loop over the window's steps: growth, node churn, pod churn, sampling"
)]
fn timeline(
    cluster: &Cluster,
    shapes: &[GroupShapes],
    start: &Space,
    mut nodes: Vec<PlacedNode>,
    options: &Options,
    progress: &mut dyn FnMut(Progress),
) -> Timeline {
    let mut space = start.clone();
    let n_sub = cluster.subnets.len();
    let steps = u64::try_from(options.window.as_millis() / SAMPLE.as_millis()).unwrap_or(0);
    let mut windows: Vec<Window> = (0..n_sub)
        .map(|i| {
            let s = &space.subnets[i];
            Window {
                hours: options.window.as_secs_f64() / 3600.0,
                min_free_blocks: s.free_blocks(),
                end_free_blocks: s.free_blocks(),
                min_free_addresses: s.free_addresses(),
                end_fragmentation: s.fragmentation(),
                fragmented: None,
                first_shortage: None,
                shortages: 0,
                series: vec![(0, s.usable() - s.free_addresses(), s.free_blocks())],
            }
        })
        .collect();
    let mut per_group: Vec<u32> = vec![0; cluster.groups.len()];
    for n in &nodes {
        per_group[n.group] = per_group[n.group].max(n.index + 1);
    }
    let mut recycle_debt = vec![0.0f64; cluster.groups.len()];
    let mut recycle_next = vec![0usize; cluster.groups.len()];
    let step_days = SAMPLE.as_secs_f64() / 86_400.0;
    let record = |windows: &mut Vec<Window>, r: &Refusal, minute: u64, group: &str| {
        let w = &mut windows[r.subnet];
        let shortage = Shortage {
            minute,
            error: r.error,
            free_addresses: r.free_addresses,
            free_blocks: r.free_blocks,
            group: group.to_owned(),
        };
        w.shortages += 1;
        w.min_free_blocks = w.min_free_blocks.min(r.free_blocks);
        w.min_free_addresses = w.min_free_addresses.min(r.free_addresses);
        if w.first_shortage.is_none() {
            w.first_shortage = Some(shortage.clone());
        }
        if r.error == "InsufficientCidrBlocks"
            && r.free_addresses >= ADDRESSES_PER_PREFIX
            && w.fragmented.is_none()
        {
            w.fragmented = Some(shortage);
        }
    };
    for step in 1..=steps {
        let minute = step * 5;
        let day = u32::try_from(minute / 1440).unwrap_or(u32::MAX);
        // Growth (capped at the group's max).
        let targets = counts_at_day(cluster, day);
        for (g, group) in cluster.groups.iter().enumerate() {
            let want = targets[g].min(group.max);
            while per_group[g] < want {
                let mut node = new_node(cluster, shapes, g, per_group[g]);
                let f = shapes[g].shapes[node.shape].profile.cycle[0];
                if let Err(r) = space.fit(&mut node, &f) {
                    record(&mut windows, &r, minute, &group.name);
                }
                nodes.push(node);
                per_group[g] += 1;
            }
        }
        // Node churn: replace the longest-running nodes of each group.
        for (g, group) in cluster.groups.iter().enumerate() {
            if group.node_churn_per_day == 0.0 {
                continue;
            }
            let members: Vec<usize> = nodes
                .iter()
                .enumerate()
                .filter(|(_, x)| x.group == g)
                .map(|(i, _)| i)
                .collect();
            #[expect(clippy::cast_precision_loss, reason = "node counts are far below 2^52")]
            let n = members.len() as f64;
            recycle_debt[g] += group.node_churn_per_day * n * step_days;
            while recycle_debt[g] >= 1.0 && !members.is_empty() {
                recycle_debt[g] -= 1.0;
                let i = members[recycle_next[g] % members.len()];
                recycle_next[g] += 1;
                // Launch the replacement first (a rolling update surges), then terminate the
                // old node; a replacement that gets no addresses leaves the old node running.
                let mut fresh = PlacedNode {
                    held: Held::default(),
                    ..nodes[i].clone()
                };
                let f = shapes[g].shapes[fresh.shape].profile.cycle[0];
                match space.fit(&mut fresh, &f) {
                    Ok(()) => {
                        space.release(&mut nodes[i]);
                        nodes[i] = fresh;
                    }
                    Err(r) => {
                        space.release(&mut fresh);
                        record(&mut windows, &r, minute, &group.name);
                    }
                }
            }
        }
        // Every node follows its shape's churn cycle (phase-shifted per node).
        for node in &mut nodes {
            let cycle = &shapes[node.group].shapes[node.shape].profile.cycle;
            let phase = (step + u64::from(node.index)) % cycle.len() as u64;
            let f = cycle[usize::try_from(phase).unwrap_or(0)];
            let unchanged = node.held.primary.is_some()
                && node.held.pods == f.pods
                && node.held.ips.len() == f.ips as usize
                && node.held.prefixes.len() == f.prefixes as usize
                && node.held.eni_primaries.len() == f.eni_primaries() as usize
                && node.held.trunks.len() == f.trunk_addresses() as usize;
            if unchanged {
                continue;
            }
            if let Err(r) = space.fit(node, &f) {
                record(&mut windows, &r, minute, &cluster.groups[node.group].name);
            }
        }
        for (i, w) in windows.iter_mut().enumerate() {
            let s = &space.subnets[i];
            w.min_free_blocks = w.min_free_blocks.min(s.free_blocks());
            w.min_free_addresses = w.min_free_addresses.min(s.free_addresses());
            w.series
                .push((minute, s.usable() - s.free_addresses(), s.free_blocks()));
        }
        progress(Progress {
            phase: "churn window",
            done: step,
            total: steps,
        });
    }
    for (i, w) in windows.iter_mut().enumerate() {
        w.end_free_blocks = space.subnets[i].free_blocks();
        w.end_fragmentation = space.subnets[i].fragmentation();
    }
    Timeline { windows }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::load;

    fn run(text: &str) -> Forecast {
        let c = load(text).unwrap();
        forecast(
            &c,
            &Options {
                window: Duration::from_hours(2),
                horizon_days: 365,
            },
            &mut |_| {},
        )
        .unwrap()
    }

    #[test]
    fn one_group_to_breakdown_that_adds_up() {
        let f = run(r"
vpc_cidrs: [10.0.0.0/16]
subnets: [{ id: a, cidr: 10.0.0.0/22, az: z1, used: 20 }]
node_groups:
  - { name: g, instance_types: [m5.large], nodes: { min: 2, max: 10, current: 4 }, pods: { per_node: 10 } }
");
        let s = &f.subnets[0];
        let u = s.now;
        assert_eq!(u.nodes, 4);
        assert_eq!(
            (u.pods, u.warm, u.node_primaries, u.eni_primaries),
            (40, 68, 4, 8)
        );
        assert_eq!(u.others, 20);
        assert_eq!(
            u.used,
            u.pods + u.warm + u.node_primaries + u.eni_primaries + u.others
        );
        assert_eq!(s.peak.nodes, 10);
        assert_eq!(s.peak.used - s.others, 300);
        // 1019 usable − 20 others = 999: 33 nodes of 30.
        assert_eq!(f.groups[0].max_nodes, 33);
        assert_eq!(f.groups[0].max_nodes_by_count, 33);
        assert_eq!(
            f.groups[0].limited_by,
            Some(Limit {
                subnet: "a".to_owned(),
                error: "InsufficientFreeAddressesInSubnet"
            })
        );
        assert!((s.headroom_percent - 100.0 * 699.0 / 1019.0).abs() < 1e-9);
        assert_eq!(f.days_to_exhaustion, None);
    }

    #[test]
    fn growth_to_day_of_exhaustion() {
        let f = run(r"
vpc_cidrs: [10.0.0.0/16]
subnets: [{ id: a, cidr: 10.0.0.0/22, az: z1 }]
node_groups:
  - { name: g, instance_types: [m5.large], nodes: { min: 2, max: 10, current: 10 }, pods: { per_node: 10, growth_percent_per_month: 10 } }
");
        // 33 nodes fit; 10 × 1.1^(d/30) > 33 first at d = ceil(30 × ln(3.3)/ln(1.1)) ≈ 376 > 365.
        assert_eq!(f.days_to_exhaustion, None);
        let g = run(r"
vpc_cidrs: [10.0.0.0/16]
subnets: [{ id: a, cidr: 10.0.0.0/22, az: z1 }]
node_groups:
  - { name: g, instance_types: [m5.large], nodes: { min: 2, max: 10, current: 10 }, pods: { per_node: 10, growth_percent_per_month: 20 } }
");
        // ceil(10 × 1.2^(d/30)) ≥ 34 ⇔ 1.2^(d/30) > 3.3 ⇔ d > 30 × ln 3.3 / ln 1.2 = 196.5.
        let d = g.days_to_exhaustion.unwrap();
        assert_eq!(d, 197, "{d}");
        assert_eq!(g.subnets[0].days_to_exhaustion, Some(197));
    }

    #[test]
    fn indices_in_to_exactly_the_nodes_subnets_of_places_there() {
        let c = load(
            r"
vpc_cidrs: [10.0.0.0/16, 100.64.0.0/16]
subnets:
  - { id: a1, cidr: 10.0.0.0/24, az: z1 }
  - { id: a2, cidr: 10.0.1.0/24, az: z1 }
  - { id: b1, cidr: 10.0.2.0/24, az: z2 }
  - { id: pa, cidr: 100.64.0.0/24, az: z1 }
  - { id: pb, cidr: 100.64.1.0/24, az: z2 }
node_groups:
  - { name: g, instance_types: [m5.large], nodes: 50, pods: { per_node: 5 } }
  - name: cn
    instance_types: [m5.large]
    nodes: 50
    pod_subnets: { z1: pa, z2: pb }
    cni: { AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG: true }
    pods: { per_node: 5 }
",
        )
        .unwrap();
        for g in 0..2 {
            for i in 0..c.subnets.len() {
                let brute: Vec<u32> = (0..47)
                    .filter(|&k| {
                        let (ns, ps) = subnets_of(&c, g, k);
                        ns == i || ps == i
                    })
                    .collect();
                assert_eq!(indices_in(&c, g, 47, i), brute, "group {g} subnet {i}");
            }
        }
    }

    #[test]
    fn shape_of_to_weighted_mix_on_every_prefix() {
        let c = load(
            r"
vpc_cidrs: [10.0.0.0/16]
subnets: [{ id: a, cidr: 10.0.0.0/20, az: z1 }]
node_groups:
  - { name: g, instance_types: [m5.large, { type: m5.xlarge, weight: 3 }], nodes: 40, pods: { per_node: 5 } }
",
        )
        .unwrap();
        let shapes = build_shapes(&c, &mut |_| {}).unwrap();
        for n in [8u32, 20, 40, 400] {
            let big = (0..n).filter(|&k| shapes[0].shape_of(k) == 1).count();
            let expected = f64::from(n) * 0.75;
            #[expect(clippy::cast_precision_loss, reason = "small counts")]
            let diff = (big as f64 - expected).abs();
            assert!(diff <= 2.0, "{n}: {big} vs {expected}");
        }
    }
}
