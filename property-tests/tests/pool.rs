//! Properties of the warm-pool engine (`planner::pool`) driving the in-memory EC2 model
//! (`planner::sim::Node`), over random pod traces: adds, deletes (some repeated), clock jumps
//! with and without settling, and injected EC2 failures that later stop.
//!
//! One harness runs every trace and checks, after every operation, the properties its test asks
//! for. The expected steady states are written here from the reference's closed forms
//! (`vpc-cni-ipamd-behaviour.md` §2.3–§2.7, §2.13) and eniplan's documented differences
//! (cooling addresses are not available, an ENI is freed only if the pool would not be low
//! without it, pods pack into the fullest prefix); they never call the planner's own arithmetic.
//!
//! Conventions of the oracle (`Shape`): `L` = IPv4 addresses per ENI, `slots = L − 1` secondary
//! IPs or prefixes per ENI, `M` = addresses per full ENI (`slots`, or `16 × slots` with prefix
//! delegation), `B = min(MAX_ENI, max ENIs)` the ENI budget, `C = B × M` the capacity, `n` the
//! pods holding an address at the end, `w`/`m`/`W` the targets.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::time::Duration;

use planner::catalogue::{Hypervisor, InstanceLimits, lookup};
use planner::max_pods::AddressMode;
use planner::pool::{
    AddressView, Ec2Call, EniId, Failure, PodKey, PoolConfig, PoolSnapshot, Reply, Time,
};
use planner::sim::{Event, Node, TICK};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::TestCaseError;

// ---------------------------------------------------------------------------------------------
// Generators.

/// A representative set: tiny (t3.small, 3 addresses per ENI), common Nitro types, a large type
/// (p3dn, 15 ENIs × 49), a Xen type (m4.xlarge: prefix delegation falls back to secondary IPs)
/// and a bare-metal type without a hypervisor (a1.metal: prefix delegation works).
const TYPES: &[&str] = &[
    "t3.small",
    "m5.large",
    "m5.xlarge",
    "c5.4xlarge",
    "p3dn.24xlarge",
    "m4.xlarge",
    "a1.metal",
];

/// No kubelet cap in the way.
const UNCAPPED: u32 = 100_000;

#[derive(Debug, Clone)]
struct Case {
    limits: &'static InstanceLimits,
    config: PoolConfig,
    /// The pod subnet.
    subnet: &'static str,
}

/// A subnet large enough never to matter.
const LARGE_SUBNET: &str = "10.0.0.0/16";

/// Instance type and settings. `minimum_ip_target` is a parameter so the floor property can
/// insist on one.
fn case_with(minimum_ip_target: impl Strategy<Value = u32>) -> impl Strategy<Value = Case> {
    (
        prop::sample::select(TYPES),
        0u32..=3,
        prop_oneof![2 => Just(0u32), 1 => 1u32..=20],
        minimum_ip_target,
        0u32..=3,
        any::<bool>(),
        prop_oneof![Just(None), (1u32..=4).prop_map(Some)],
        prop_oneof![Just(0u64), Just(30u64)],
        any::<bool>(),
    )
        .prop_map(
            |(name, wet, wit, mit, wpt, pd, max_eni, cooldown, eni_limited)| {
                let limits = lookup(name).expect("a catalogue type");
                // The max-pods value of the ENI-limited formula (secondary IPs), or no cap. With
                // prefix delegation the former caps growth well below the capacity (S-12).
                let max_pods = if eni_limited {
                    u32::from(limits.max_enis) * (u32::from(limits.ipv4_per_eni) - 1) + 2
                } else {
                    UNCAPPED
                };
                let mut config = PoolConfig {
                    warm_eni_target: wet,
                    warm_ip_target: wit,
                    minimum_ip_target: mit,
                    warm_prefix_target: wpt,
                    prefix_delegation: pd,
                    max_eni,
                    ip_cooldown: Duration::from_secs(cooldown),
                    max_pods,
                    ..PoolConfig::default()
                };
                if config.validate().is_err() {
                    // Prefix delegation needs a target (S-46); the usual choice.
                    config.warm_prefix_target = 1;
                }
                config.validate().expect("valid settings");
                Case {
                    limits,
                    config,
                    subnet: LARGE_SUBNET,
                }
            },
        )
}

/// The same cases in subnets that may run out of addresses (a /24: 251 usable; a /26: 59, and
/// only two aligned free /28s once the primary address is taken), so EC2 itself refuses
/// (InsufficientFreeAddressesInSubnet, InsufficientCidrBlocks).
fn in_any_subnet(case: impl Strategy<Value = Case>) -> impl Strategy<Value = Case> {
    (
        case,
        prop_oneof![
            2 => Just(LARGE_SUBNET),
            1 => Just("10.0.0.0/24"),
            1 => Just("10.0.0.0/26"),
        ],
    )
        .prop_map(|(case, subnet)| Case { subnet, ..case })
}

fn case() -> impl Strategy<Value = Case> {
    case_with(prop_oneof![2 => Just(0u32), 1 => 1u32..=30])
}

/// The EC2 APIs failures are injected into.
const APIS: &[&str] = &[
    "AssignPrivateIpAddresses",
    "CreateNetworkInterface",
    "UnassignPrivateIpAddresses",
    "DeleteNetworkInterface",
];

#[derive(Debug, Clone)]
enum Op {
    /// CNI ADD of a new pod.
    Add,
    /// CNI DEL of one of the pods holding an address (nothing if there is none).
    Del(Index),
    /// CNI DEL of a pod (or of a key never added, if no pod holds an address), then the same DEL
    /// again at once.
    DelTwice(Index),
    /// Let this many seconds pass (ticking every 5 s) without waiting for the pool to settle.
    Wait(u32),
    /// Let the pool settle.
    Settle,
    /// Reconcile the pool with EC2, as the daemon does periodically.
    Reconcile,
    /// Make the next calls of an EC2 API fail.
    Fail {
        api: &'static str,
        failure: Failure,
        times: usize,
    },
}

fn failure() -> impl Strategy<Value = Failure> {
    prop_oneof![
        Just(Failure::Throttled),
        Just(Failure::Other {
            message: "InternalError".to_owned()
        }),
        Just(Failure::InsufficientFreeAddresses),
        Just(Failure::IpLimitExceeded),
    ]
}

fn wait() -> impl Strategy<Value = Op> {
    (1u32..=90).prop_map(Op::Wait)
}

/// Pods only arrive (the closed forms' setting), at random pace.
fn growth_op() -> impl Strategy<Value = Op> {
    prop_oneof![6 => Just(Op::Add), 2 => wait(), 1 => Just(Op::Settle)]
}

/// Pods arrive and leave; EC2 always answers.
fn pod_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => Just(Op::Add),
        3 => any::<Index>().prop_map(Op::Del),
        1 => any::<Index>().prop_map(Op::DelTwice),
        2 => wait(),
        1 => Just(Op::Settle),
    ]
}

/// Pods arrive and leave, and EC2 sometimes fails.
fn faulty_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => pod_op(),
        1 => Just(Op::Reconcile),
        1 => (prop::sample::select(APIS), failure(), 1usize..=3)
            .prop_map(|(api, failure, times)| Op::Fail { api, failure, times }),
    ]
}

fn trace(op: impl Strategy<Value = Op>) -> impl Strategy<Value = Vec<Op>> {
    prop::collection::vec(op, 1..=200)
}

// ---------------------------------------------------------------------------------------------
// The oracle's view of a node, from the instance limits and settings alone.

#[derive(Debug, Clone, Copy)]
struct Shape {
    /// Prefix delegation in effect (requested, and Nitro or bare metal).
    pd: bool,
    /// Secondary IPs or prefixes per ENI: `L − 1`.
    slots: u32,
    /// Addresses per full ENI.
    per_eni: u32,
    /// ENIs the pool may hold.
    budget: u32,
    /// Addresses the pool may hold.
    capacity: u32,
}

impl Shape {
    fn of(case: &Case) -> Shape {
        let limits = case.limits;
        let pd = case.config.prefix_delegation
            && (limits.hypervisor == Hypervisor::Nitro || limits.bare_metal);
        let slots = u32::from(limits.ipv4_per_eni) - 1;
        let per_eni = if pd { 16 * slots } else { slots };
        let max_enis = u32::from(limits.max_enis);
        let budget = case.config.max_eni.map_or(max_enis, |m| m.min(max_enis));
        Shape {
            pd,
            slots,
            per_eni,
            budget,
            capacity: budget * per_eni,
        }
    }
}

fn count(n: usize) -> u32 {
    u32::try_from(n).expect("small counts")
}

// ---------------------------------------------------------------------------------------------
// The harness.

/// Which properties to check while a trace runs.
#[derive(Debug, Clone, Copy, Default)]
struct Checks {
    /// (1) No address is held by two pods; every pod's address is held by the pool.
    unique: bool,
    /// (2) ENIs and addresses within the instance limits and MAX_ENI, in the pool and in EC2.
    limits: bool,
    /// (3) At least MINIMUM_IP_TARGET addresses whenever the pool has settled.
    floor: bool,
    /// (5) An ADD fails only if no free, non-cooling address exists; it never gets a cooling one.
    add: bool,
    /// (6) A repeated DEL is reported as unknown and changes nothing.
    idempotent_del: bool,
    /// With prefix delegation, an ADD takes an address of the fullest prefix that has one.
    packing: bool,
    /// (9) The pool agrees with EC2 after every operation.
    consistent: bool,
}

struct Harness {
    case: Case,
    shape: Shape,
    checks: Checks,
    node: Node,
    /// Pods holding an address, in arrival order.
    live: Vec<String>,
    next_pod: u32,
    /// Every address a pod released: (address, ENI, when, EC2 calls made before).
    releases: Vec<(Ipv4Addr, EniId, Time, usize)>,
    deleted_any: bool,
    injected_any: bool,
    /// Replies and snapshots after every operation, for the determinism property.
    replies: Vec<Reply>,
    snapshots: Vec<PoolSnapshot>,
}

impl Harness {
    fn new(case: &Case, checks: Checks) -> Harness {
        let node = Node::new(case.limits, case.config.clone(), case.subnet).expect("a node");
        Harness {
            case: case.clone(),
            shape: Shape::of(case),
            checks,
            node,
            live: Vec::new(),
            next_pod: 0,
            releases: Vec::new(),
            deleted_any: false,
            injected_any: false,
            replies: Vec::new(),
            snapshots: Vec::new(),
        }
    }

    /// Runs a trace, then lets EC2 answer normally and the node settle.
    fn run(case: &Case, checks: Checks, ops: &[Op]) -> Result<Harness, TestCaseError> {
        let mut h = Harness::new(case, checks);
        for op in ops {
            h.apply(op)?;
        }
        h.node.inject.clear();
        h.apply(&Op::Settle)?;
        Ok(h)
    }

    fn apply(&mut self, op: &Op) -> Result<(), TestCaseError> {
        match op {
            Op::Add => self.add()?,
            Op::Del(i) => {
                if !self.live.is_empty() {
                    let id = self.live.remove(i.index(self.live.len()));
                    self.del(&id)?;
                }
            }
            Op::DelTwice(i) => self.del_twice(*i)?,
            Op::Wait(secs) => self.wait(Duration::from_secs(u64::from(*secs)))?,
            Op::Settle => self.settle()?,
            Op::Reconcile => {
                let replies = self.node.reconcile();
                if self.checks.consistent {
                    prop_assert!(replies.is_empty(), "reconcile answered {replies:?}");
                }
                self.replies.extend(replies);
            }
            Op::Fail {
                api,
                failure,
                times,
            } => {
                let queue = self.node.inject.entry(api).or_default();
                queue.extend(std::iter::repeat_n(failure.clone(), *times));
                self.injected_any = true;
            }
        }
        self.snapshots.push(self.node.pool.snapshot());
        self.assert_invariants()
    }

    /// Lets time pass, ticking every 5 s as the daemon does, checking after every tick.
    fn wait(&mut self, d: Duration) -> Result<(), TestCaseError> {
        let end = self.node.now + d;
        while self.node.now < end {
            self.node.advance(TICK.min(end.since(self.node.now)));
            self.assert_invariants()?;
        }
        Ok(())
    }

    /// Ticks, checking after every tick, until no EC2 call was made for longer than every timer
    /// of the engine; then lets `Node::settle` confirm the node is quiet.
    fn settle(&mut self) -> Result<(), TestCaseError> {
        let c = &self.case.config;
        let quiet = [
            c.decrease_interval,
            c.eni_min_lifetime,
            c.ip_cooldown,
            c.subnet_full_backoff,
            c.reconcile_cooldown,
        ]
        .into_iter()
        .max()
        .unwrap_or_default()
            + TICK;
        let start = self.node.now;
        let (mut calls, mut since) = (self.node.events.len(), self.node.now);
        while self.node.now.since(since) <= quiet
            && self.node.now.since(start) < Duration::from_hours(1)
        {
            self.wait(TICK)?;
            if self.node.events.len() != calls {
                (calls, since) = (self.node.events.len(), self.node.now);
            }
        }
        self.node.settle();
        if self.checks.floor {
            self.assert_floor()?;
        }
        Ok(())
    }

    /// Addresses a pod could get now: held, unbound, not being released, not cooling.
    fn free_now(&self, addresses: &[AddressView]) -> BTreeSet<Ipv4Addr> {
        let (now, cooldown) = (self.node.now, self.case.config.ip_cooldown);
        addresses
            .iter()
            .filter(|a| {
                a.pod.is_none()
                    && !a.releasing
                    && a.cooling_since.is_none_or(|t| now >= t + cooldown)
            })
            .map(|a| a.ip)
            .collect()
    }

    fn add(&mut self) -> Result<(), TestCaseError> {
        let id = format!("pod-{}", self.next_pod);
        self.next_pod += 1;
        let before = self.node.pool.snapshot();
        let addresses = self.node.pool.addresses();
        let free = self.free_now(&addresses);
        let reply = self.node.add_pod(&id);
        self.replies.push(reply.clone());
        match reply {
            Reply::Assigned { key, address } => {
                prop_assert_eq!(&key, &PodKey::new(id.as_str()));
                if self.checks.add {
                    prop_assert!(
                        free.contains(&address.ip),
                        "{id} got {}, which was not a free, non-cooling address",
                        address.ip
                    );
                }
                if self.checks.packing && self.shape.pd {
                    assert_fullest_prefix(&addresses, &free, address.ip)?;
                }
                self.live.push(id);
            }
            Reply::NoAddress { reason, .. } => {
                if self.checks.add {
                    prop_assert!(
                        before.available == 0 && free.is_empty(),
                        "{id} got no address ({reason:?}) while {} were available: {:?}",
                        before.available,
                        free
                    );
                }
            }
            other => prop_assert!(false, "ADD answered {other:?}"),
        }
        Ok(())
    }

    fn del(&mut self, id: &str) -> Result<(), TestCaseError> {
        let calls_before = self.node.events.len();
        let reply = self.node.del_pod(id);
        self.replies.push(reply.clone());
        match reply {
            Reply::Released { address, .. } => {
                self.releases
                    .push((address.ip, address.eni, self.node.now, calls_before));
                self.deleted_any = true;
            }
            other => prop_assert!(false, "DEL of {id} answered {other:?}"),
        }
        Ok(())
    }

    fn del_twice(&mut self, i: Index) -> Result<(), TestCaseError> {
        let id = if self.live.is_empty() {
            format!("ghost-{}", self.next_pod)
        } else {
            self.live.remove(i.index(self.live.len()))
        };
        if id.starts_with("ghost-") {
            let reply = self.node.del_pod(&id);
            prop_assert_eq!(
                &reply,
                &Reply::UnknownPod {
                    key: PodKey::new(id.as_str())
                }
            );
            self.replies.push(reply);
        } else {
            self.del(&id)?;
        }
        let before = self.state();
        let reply = self.node.del_pod(&id);
        self.replies.push(reply.clone());
        if self.checks.idempotent_del {
            prop_assert_eq!(
                reply,
                Reply::UnknownPod {
                    key: PodKey::new(id.as_str())
                }
            );
            let after = self.state();
            prop_assert!(
                after == before,
                "a repeated DEL of {id} changed the pool:\nbefore {before:?}\nafter  {after:?}"
            );
        }
        Ok(())
    }

    /// Everything a DEL could change, the engine's clock left out.
    fn state(&self) -> (PoolSnapshot, Vec<AddressView>, Vec<Event>) {
        let mut snapshot = self.node.pool.snapshot();
        snapshot.time = Time(0);
        (
            snapshot,
            self.node.pool.addresses(),
            self.node.events.clone(),
        )
    }

    fn assert_invariants(&self) -> Result<(), TestCaseError> {
        let s = self.node.pool.snapshot();
        prop_assert!(
            s.in_flight.is_empty(),
            "the model answers every call at once: {:?}",
            s.in_flight
        );
        if self.checks.unique {
            self.assert_unique()?;
        }
        if self.checks.limits {
            self.assert_limits(&s)?;
        }
        if self.checks.consistent {
            self.node.consistent().map_err(TestCaseError::fail)?;
        }
        Ok(())
    }

    /// (1) Pod addresses are distinct, held by the pool on an ENI as that pod's, never an ENI's
    /// primary address; the pool holds no address twice.
    fn assert_unique(&self) -> Result<(), TestCaseError> {
        let pool = &self.node.pool;
        let addresses = pool.addresses();
        let held: BTreeMap<Ipv4Addr, &AddressView> = addresses.iter().map(|a| (a.ip, a)).collect();
        prop_assert_eq!(
            held.len(),
            addresses.len(),
            "the pool holds an address twice"
        );
        let primaries: BTreeSet<Ipv4Addr> = self
            .node
            .ec2
            .enis()
            .map(|e| e.addresses.primary_ip)
            .collect();
        let mut seen = BTreeSet::new();
        for (key, ip) in pool.pods() {
            prop_assert!(seen.insert(ip), "{ip} is held by two pods");
            prop_assert!(
                !primaries.contains(&ip),
                "{key} holds the primary address {ip}"
            );
            let Some(a) = held.get(&ip) else {
                return Err(TestCaseError::fail(format!(
                    "{key} holds {ip}, which no ENI of the pool holds"
                )));
            };
            prop_assert_eq!(a.pod.as_ref(), Some(key));
            prop_assert!(
                a.cooling_since.is_none() && !a.releasing,
                "{key}'s {ip} is {a:?}"
            );
        }
        let pods: BTreeSet<String> = pool.pods().map(|(k, _)| k.container_id.clone()).collect();
        let live: BTreeSet<String> = self.live.iter().cloned().collect();
        prop_assert_eq!(
            pods,
            live,
            "the pods holding addresses are the ones that got one"
        );
        Ok(())
    }

    /// (2) Per ENI at most `L − 1` secondary IPs and prefixes, at most `B` ENIs, as the pool and
    /// as EC2 see it.
    fn assert_limits(&self, s: &PoolSnapshot) -> Result<(), TestCaseError> {
        let Shape { slots, budget, .. } = self.shape;
        prop_assert!(
            count(s.enis.len()) <= budget,
            "the pool holds {} ENIs, budget {budget}",
            s.enis.len()
        );
        for e in &s.enis {
            prop_assert!(
                e.ips + e.prefixes <= slots,
                "pool: {} holds {} ips + {} prefixes > {slots}",
                e.id,
                e.ips,
                e.prefixes
            );
        }
        let enis: Vec<_> = self.node.ec2.enis().collect();
        prop_assert!(
            count(enis.len()) <= budget,
            "EC2 has {} ENIs, budget {budget}",
            enis.len()
        );
        for e in enis {
            prop_assert!(
                count(e.addresses.ips.len() + e.addresses.prefixes.len()) <= slots,
                "EC2: {} holds {} ips + {} prefixes > {slots}",
                e.id,
                e.addresses.ips.len(),
                e.addresses.prefixes.len()
            );
        }
        Ok(())
    }

    /// (3) A settled pool holds at least MINIMUM_IP_TARGET addresses, unless the node cannot
    /// (capacity) or may not (kubelet max pods: growth stops once `total ≥ max_pods`, §2.4).
    fn assert_floor(&self) -> Result<(), TestCaseError> {
        let s = self.node.pool.snapshot();
        let c = &self.case.config;
        let floor = c.minimum_ip_target.min(self.shape.capacity).min(c.max_pods);
        prop_assert!(
            s.total >= floor,
            "settled at {} addresses < floor {floor}",
            s.total
        );
        Ok(())
    }

    /// (7) Releases happen in shrink batches at least `decrease_interval` apart, and never
    /// release an address (or delete an ENI with an address) a pod released less than
    /// IP_COOLDOWN_PERIOD earlier. Every UnassignPrivateIpAddresses of these traces comes from
    /// shrink: nothing is left over from another mode, and the PD fallback is off.
    fn assert_release_timing(&self) -> Result<(), TestCaseError> {
        let config = &self.case.config;
        // A release a pod made before EC2 call `call` (by order: a pod's address may leave the
        // pool and come back, EC2 placing lowest-first, within one instant) less than the
        // cooldown earlier.
        let cooling = |ip: Option<Ipv4Addr>, eni: &EniId, call: usize, at: Time| {
            self.releases.iter().find(|(a, e, t, before)| {
                *before <= call
                    && at < *t + config.ip_cooldown
                    && ip.is_none_or(|ip| ip == *a)
                    && e == eni
            })
        };
        let mut batches: Vec<Time> = Vec::new();
        for (i, ev) in self.node.events.iter().enumerate() {
            let (eni, released): (&EniId, Vec<Ipv4Addr>) = match &ev.call {
                Ec2Call::UnassignIps { eni, ips } => (eni, ips.clone()),
                Ec2Call::UnassignPrefixes { eni, prefixes } => {
                    (eni, prefixes.iter().flat_map(|p| p.iter()).collect())
                }
                Ec2Call::DeleteEni { eni } => {
                    let hit = cooling(None, eni, i, ev.time);
                    prop_assert!(
                        hit.is_none(),
                        "{eni} deleted at {} while {hit:?} was cooling",
                        ev.time
                    );
                    continue;
                }
                _ => continue,
            };
            if batches.last() != Some(&ev.time) {
                batches.push(ev.time);
            }
            for ip in released {
                let hit = cooling(Some(ip), eni, i, ev.time);
                prop_assert!(
                    hit.is_none(),
                    "{ip} released to EC2 at {} while cooling: {hit:?}",
                    ev.time
                );
            }
        }
        for pair in batches.windows(2) {
            prop_assert!(
                pair[1].since(pair[0]) >= config.decrease_interval,
                "shrink batches at {} and {}",
                pair[0],
                pair[1]
            );
        }
        Ok(())
    }
}

/// Pods pack into the fullest prefix (an eniplan difference: the reference takes the first
/// prefix with room in map order): the prefix `ip` came from held the most pods of all prefixes
/// with a free, non-cooling address.
fn assert_fullest_prefix(
    before: &[AddressView],
    free: &BTreeSet<Ipv4Addr>,
    ip: Ipv4Addr,
) -> Result<(), TestCaseError> {
    // Pods and free addresses per prefix.
    let mut prefixes: BTreeMap<(EniId, Ipv4Addr), (u32, bool)> = BTreeMap::new();
    for a in before {
        if let Some(p) = a.prefix {
            let e = prefixes.entry((a.eni.clone(), p.network())).or_default();
            e.0 += u32::from(a.pod.is_some());
            e.1 |= free.contains(&a.ip);
        }
    }
    let Some(chosen) = before.iter().find(|a| a.ip == ip) else {
        return Err(TestCaseError::fail(format!("{ip} was not held")));
    };
    let Some(p) = chosen.prefix else {
        return Err(TestCaseError::fail(format!("{ip} is not in a prefix")));
    };
    let pods = prefixes[&(chosen.eni.clone(), p.network())].0;
    let fullest = prefixes.values().filter(|(_, f)| *f).map(|(n, _)| *n).max();
    prop_assert_eq!(
        Some(pods),
        fullest,
        "{} went to a prefix holding {} pods: {:?}",
        ip,
        pods,
        prefixes
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// (4) The settled pool against the closed forms of §2.13.
//
// The closed forms assume pods arrive one at a time into fill-first ENIs. They hold exactly
// after a trace without deletes and without EC2 failures ("exact" below; pods may still arrive
// in bursts between clock jumps, since the pool reacts to every ADD). Deletes leave pods
// scattered over ENIs and prefixes, and failures can leave an ENI partly filled, so for any
// other trace the properties are the bounds the decision rules imply at rest: the pool is not
// low, not high, and holds no ENI it would free (§2.4, §2.6, §2.7 and eniplan's "not low
// without it" rule). Everything is cut off by the ENI budget and by growth stopping once
// `total ≥ max_pods` (which may overshoot by one growth call).

impl Harness {
    fn assert_steady_state(&self) -> Result<(), TestCaseError> {
        let s = self.node.pool.snapshot();
        let sh = self.shape;
        let c = &self.case.config;
        prop_assert_eq!(
            s.mode == AddressMode::PrefixDelegation,
            sh.pd,
            "the mode in effect"
        );
        prop_assert_eq!(s.cooling, 0, "settled well past the cooldown");
        let n = s.pods;
        prop_assert_eq!(n, count(self.live.len()));
        let blocks: u32 = s
            .enis
            .iter()
            .map(|e| if sh.pd { e.prefixes } else { e.ips })
            .sum();
        let others: u32 = s
            .enis
            .iter()
            .map(|e| if sh.pd { e.ips } else { e.prefixes })
            .sum();
        prop_assert_eq!(others, 0, "no blocks of the other mode");
        let exact = !self.deleted_any && !self.injected_any;
        if exact {
            // Growth tops up the first ENI with room and creates one only when all are full.
            let enis = count(s.enis.len());
            prop_assert_eq!(
                enis,
                blocks.div_ceil(sh.slots).max(1),
                "ENIs fill first: {:?}",
                s.enis
            );
        }
        let ip_targets = c.warm_ip_target > 0 || c.minimum_ip_target > 0;
        match (sh.pd, ip_targets) {
            (false, true) => self.sip_ip_targets(&s, n),
            (false, false) => self.sip_warm_eni_target(&s, n, exact),
            (true, true) => self.pd_ip_targets(&s, n, exact),
            (true, false) => self.pd_warm_prefix_target(&s, n, exact),
        }
    }

    /// SIP with WARM_IP_TARGET `w` / MINIMUM_IP_TARGET `m`: `total = max(n + w, m)`, exact after
    /// any trace (the pool grows and shrinks single addresses), cut off by `C`; if that is above
    /// max pods, growth may stop anywhere from max pods up.
    fn sip_ip_targets(&self, snap: &PoolSnapshot, n: u32) -> Result<(), TestCaseError> {
        let config = &self.case.config;
        let target = (n + config.warm_ip_target)
            .max(config.minimum_ip_target)
            .min(self.shape.capacity);
        if target <= config.max_pods {
            prop_assert_eq!(snap.total, target, "total = max(n + w, m) for {} pods", n);
            // Every ENI but the primary holds something (an emptied one is freed).
            for e in snap.enis.iter().filter(|e| !e.primary) {
                prop_assert!(e.addresses > 0, "{} is empty and was not freed", e.id);
            }
        } else {
            prop_assert!(
                (config.max_pods..=target).contains(&snap.total),
                "total {} outside [max pods {}, target {target}]",
                snap.total,
                config.max_pods
            );
        }
        Ok(())
    }

    /// SIP with WARM_ENI_TARGET `W`: after growth, `ENIs = max(1, ceil(n/M) + W)` full ENIs
    /// (`W = 0`: one more as soon as none is free, `ceil((n+1)/M)`, kept: S-09). At rest in any
    /// case: at least `W·M` free (1 if `W = 0`), and no pod-less ENI left that the rules would
    /// free (`available ≥ (W+1)·M`, and the pool not low without it).
    fn sip_warm_eni_target(
        &self,
        snap: &PoolSnapshot,
        n: u32,
        exact: bool,
    ) -> Result<(), TestCaseError> {
        let config = &self.case.config;
        let (w, m) = (config.warm_eni_target, self.shape.per_eni);
        let available = snap.total - n;
        let low = |available: u32| available < w * m || (w == 0 && available == 0);
        prop_assert!(
            !low(available) || snap.total >= config.max_pods || snap.total == self.shape.capacity,
            "low at rest: {available} available of {}",
            snap.total
        );
        for e in snap.enis.iter().filter(|e| !e.primary && e.assigned == 0) {
            let without = available - e.addresses;
            let freeable = available >= (w + 1) * m
                && !(low(without) && snap.total - e.addresses < config.max_pods);
            prop_assert!(
                !freeable,
                "{} is pod-less and freeable: {available} available",
                e.id
            );
        }
        if exact {
            let wanted = if w == 0 {
                (n + 1).div_ceil(m)
            } else {
                n.div_ceil(m) + w
            };
            let enis = wanted
                .min(self.shape.budget)
                .min(config.max_pods.div_ceil(m));
            prop_assert_eq!(
                (count(snap.enis.len()), snap.total),
                (enis, enis * m),
                "{} pods, WARM_ENI_TARGET {}",
                n,
                w
            );
        }
        Ok(())
    }

    /// PD with WARM_PREFIX_TARGET `W`: after growth, `prefixes = ceil(n/16) + W` with pods packed
    /// into `ceil(n/16)` prefixes. In any case at rest: at most `W` free prefixes (shrink) and at
    /// least `16·W` free addresses (growth), so `ceil(n/16) + W ≤ prefixes ≤ used + W`.
    fn pd_warm_prefix_target(
        &self,
        snap: &PoolSnapshot,
        n: u32,
        exact: bool,
    ) -> Result<(), TestCaseError> {
        let config = &self.case.config;
        let w = config.warm_prefix_target;
        let (prefixes, free) = (snap.prefixes, snap.free_prefixes);
        let used = prefixes - free;
        let closed_form = n.div_ceil(16) + w;
        let capped =
            snap.total >= config.max_pods || prefixes == self.shape.budget * self.shape.slots;
        prop_assert!(free <= w, "{free} free prefixes > WARM_PREFIX_TARGET {w}");
        prop_assert!(used <= n, "{used} prefixes in use by {n} pods");
        prop_assert!(
            prefixes >= closed_form || capped,
            "{prefixes} prefixes < ceil({n}/16) + {w}"
        );
        if exact {
            prop_assert_eq!(used, n.div_ceil(16), "pods pack into the fullest prefix");
            prop_assert!(
                prefixes == closed_form || (prefixes < closed_form && capped),
                "{prefixes} prefixes, closed form {closed_form}"
            );
        }
        Ok(())
    }

    /// PD with IP targets: `prefixes = max(ceil((n + w)/16), ceil(m/16))` after growth; in any
    /// case at least that (not short), and exactly that if any prefix is free (not over).
    fn pd_ip_targets(&self, snap: &PoolSnapshot, n: u32, exact: bool) -> Result<(), TestCaseError> {
        let config = &self.case.config;
        let target = (n + config.warm_ip_target)
            .div_ceil(16)
            .max(config.minimum_ip_target.div_ceil(16));
        let (prefixes, free) = (snap.prefixes, snap.free_prefixes);
        let capped =
            snap.total >= config.max_pods || prefixes == self.shape.budget * self.shape.slots;
        prop_assert!(
            prefixes >= target || capped,
            "{prefixes} prefixes < target {target}"
        );
        prop_assert!(
            free == 0 || prefixes <= target,
            "{prefixes} prefixes with {free} free > target {target}"
        );
        if exact {
            prop_assert_eq!(
                prefixes - free,
                n.div_ceil(16),
                "pods pack into the fullest prefix"
            );
            prop_assert!(
                prefixes == target || (prefixes < target && capped),
                "{prefixes} prefixes, closed form {target}"
            );
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// The properties.

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// (1) After every step, pod addresses are distinct and each is an address the pool holds on
    /// one of its ENIs.
    #[test]
    fn no_address_is_ever_held_by_two_pods(case in in_any_subnet(case()), ops in trace(faulty_op())) {
        Harness::run(&case, Checks { unique: true, ..Checks::default() }, &ops)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// (2) Neither the pool nor EC2 ever holds more than `L − 1` secondary IPs and prefixes on
    /// an ENI, or more than `min(MAX_ENI, max ENIs)` ENIs.
    #[test]
    fn held_addresses_never_exceed_instance_limits_or_max_eni(case in in_any_subnet(case()), ops in trace(faulty_op())) {
        Harness::run(&case, Checks { limits: true, ..Checks::default() }, &ops)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// (3) Whenever the pool has settled (EC2 answering, a large subnet), it holds at least
    /// `min(MINIMUM_IP_TARGET, capacity, max pods)` addresses.
    #[test]
    fn pool_never_holds_fewer_than_minimum_ip_target_once_settled(
        case in case_with(1u32..=30),
        ops in trace(pod_op()),
    ) {
        Harness::run(&case, Checks { floor: true, ..Checks::default() }, &ops)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(384))]

    /// (4) After pods only arrived, the settled pool is exactly the closed form of §2.13.
    #[test]
    fn growth_converges_to_the_closed_form(case in case(), ops in trace(growth_op())) {
        let h = Harness::run(&case, Checks::default(), &ops)?;
        h.assert_steady_state()?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(384))]

    /// (4) After any pod trace, the settled pool is within the bounds the closed forms and
    /// decision rules give.
    #[test]
    fn any_trace_converges_within_the_closed_form_bounds(case in case(), ops in trace(pod_op())) {
        let h = Harness::run(&case, Checks::default(), &ops)?;
        h.assert_steady_state()?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// (5) An ADD is refused only when no held address is free and done cooling, and it never
    /// gets a cooling or taken one.
    #[test]
    fn pod_add_never_fails_while_a_free_cool_address_exists(case in in_any_subnet(case()), ops in trace(faulty_op())) {
        Harness::run(&case, Checks { add: true, ..Checks::default() }, &ops)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(192))]

    /// With prefix delegation, pods pack into the fullest prefix with room.
    #[test]
    fn pods_pack_into_the_fullest_prefix(
        case in in_any_subnet(case()).prop_map(|mut c| {
            c.config.prefix_delegation = true;
            if c.config.validate().is_err() {
                c.config.warm_prefix_target = 1;
            }
            c
        }),
        ops in trace(faulty_op()),
    ) {
        Harness::run(&case, Checks { packing: true, ..Checks::default() }, &ops)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// (6) A second DEL of the same key is reported as unknown and changes nothing.
    #[test]
    fn delete_is_idempotent(
        case in in_any_subnet(case()),
        ops in trace(prop_oneof![4 => faulty_op(), 1 => any::<Index>().prop_map(Op::DelTwice)]),
    ) {
        Harness::run(&case, Checks { idempotent_del: true, ..Checks::default() }, &ops)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// (7) Shrink batches are at least the decrease interval apart, and no address a pod
    /// released is handed back to EC2 (alone, in its prefix or with its ENI) while cooling.
    #[test]
    fn nothing_is_released_within_the_shrink_interval_or_while_cooling(
        case in in_any_subnet(case()),
        ops in trace(faulty_op()),
    ) {
        let h = Harness::run(&case, Checks::default(), &ops)?;
        h.assert_release_timing()?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// (8) The same trace gives the same EC2 calls, replies and snapshots.
    #[test]
    fn same_trace_gives_same_events_and_snapshots(case in in_any_subnet(case()), ops in trace(faulty_op())) {
        let a = Harness::run(&case, Checks::default(), &ops)?;
        let b = Harness::run(&case, Checks::default(), &ops)?;
        prop_assert!(a.node.events == b.node.events, "EC2 calls differ");
        prop_assert!(a.replies == b.replies, "replies differ");
        prop_assert!(a.snapshots == b.snapshots, "snapshots differ");
        prop_assert!(a.node.pool.addresses() == b.node.pool.addresses(), "addresses differ");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// (9) The pool and EC2 agree after every step, failures included (injected, or a small
    /// subnet running out); once the failures stop and the node settles, a reconcile finds
    /// nothing to change and, in a large subnet, the pool holds its minimum and is within the
    /// closed-form bounds.
    #[test]
    fn pool_and_ec2_agree_after_failures_stop(case in in_any_subnet(case()), ops in trace(faulty_op())) {
        let mut h = Harness::run(&case, Checks { consistent: true, ..Checks::default() }, &ops)?;
        let before = h.state();
        let replies = h.node.reconcile();
        prop_assert!(replies.is_empty(), "reconcile answered {replies:?}");
        prop_assert!(h.state() == before, "reconcile changed the pool");
        if case.subnet == LARGE_SUBNET {
            h.assert_floor()?;
            h.assert_steady_state()?;
        }
    }
}
