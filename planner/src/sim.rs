//! An in-memory EC2 for one node, and a driver that runs the pool engine against it.
//!
//! [`Ec2Model`] executes the engine's [`Ec2Call`]s the way EC2 does, through [`eni`], the one
//! model of EC2's network interfaces: unique addresses from a real subnet model (AWS-reserved
//! addresses, aligned /28 prefixes, fragmentation), the instance type's ENI and per-ENI address
//! limits, EC2's error codes; it adds device numbers and a count of API calls. [`Node`] wires it
//! to a [`Pool`]: the planner's simulations, `eniplan simulate` and the property tests run it.
//! The `cloud` crate's fake (`cloud::fake::FakeEc2`) executes the same [`eni`] model behind the
//! async `Ec2` trait, for a whole region (ids, MACs, tags, attachment state, faults).
//!
//! ```
//! use planner::catalogue::lookup;
//! use planner::pool::PoolConfig;
//! use planner::sim::Node;
//! let mut node = Node::new(lookup("t3.small")?, PoolConfig::default(), "10.0.0.0/24")?;
//! node.settle();                              // TA-01: 1 ENI holding 3 addresses
//! assert_eq!(node.pool.snapshot().total, 3);
//! assert_eq!(node.ec2.calls().get("AssignPrivateIpAddresses"), Some(&1));
//! # Ok::<(), planner::Error>(())
//! ```

pub mod eni;

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::time::Duration;

use ipnetwork::Ipv4Network;
use serde::Serialize;

use crate::catalogue::InstanceLimits;
use crate::error::{Error, Result};
use crate::pool::{
    Action, Ec2Call, EniId, Failure, Input, ObservedEni, OpId, Outcome, PodKey, Pool, PoolConfig,
    Reply, Time,
};
use crate::subnet::{Placement, Subnet};
use eni::EniAddresses;

/// One ENI in the model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ModelEni {
    /// ENI id.
    pub id: EniId,
    /// Device number.
    pub device: u32,
    /// Its addresses.
    #[serde(flatten)]
    pub addresses: EniAddresses,
}

/// EC2 as one node sees it: its subnet, its ENIs (on the default network card), its limits.
#[derive(Debug, Clone)]
pub struct Ec2Model {
    subnet: Subnet,
    placement: Placement,
    limits: InstanceLimits,
    enis: BTreeMap<u32, ModelEni>,
    next_eni: u64,
    calls: BTreeMap<&'static str, u64>,
}

impl Ec2Model {
    /// A node of this type in a subnet, with its primary ENI attached (device 0).
    pub fn new(limits: &InstanceLimits, subnet: Subnet, placement: Placement) -> Result<Ec2Model> {
        let mut m = Ec2Model {
            subnet,
            placement,
            limits: *limits,
            enis: BTreeMap::new(),
            next_eni: 1,
            calls: BTreeMap::new(),
        };
        let (addresses, _, _) = EniAddresses::allocate(&mut m.subnet, placement, 0, 0)?;
        m.insert_eni(0, addresses);
        Ok(m)
    }

    fn insert_eni(&mut self, device: u32, addresses: EniAddresses) -> EniId {
        let id = EniId(format!("eni-{:017x}", self.next_eni));
        self.next_eni += 1;
        self.enis.insert(
            device,
            ModelEni {
                id: id.clone(),
                device,
                addresses,
            },
        );
        id
    }

    /// Assigns addresses to an ENI behind the pool's back (another tool did it), as EC2 would.
    pub fn assign_out_of_band(&mut self, device: u32, ips: u32) -> Result<Vec<Ipv4Addr>> {
        match self.enis.get_mut(&device) {
            Some(e) => e.addresses.add_ips(&mut self.subnet, self.placement, ips),
            None => self.subnet.allocate_ips(ips, self.placement),
        }
    }

    /// The subnet.
    pub fn subnet(&self) -> &Subnet {
        &self.subnet
    }

    /// Mutable access to the subnet, to model other tenants.
    pub fn subnet_mut(&mut self) -> &mut Subnet {
        &mut self.subnet
    }

    /// The ENIs, by device number.
    pub fn enis(&self) -> impl Iterator<Item = &ModelEni> {
        self.enis.values()
    }

    /// API calls made so far, by EC2 API name.
    pub fn calls(&self) -> &BTreeMap<&'static str, u64> {
        &self.calls
    }

    /// Total API calls made so far.
    pub fn total_calls(&self) -> u64 {
        self.calls.values().sum()
    }

    fn count(&mut self, api: &'static str) {
        *self.calls.entry(api).or_default() += 1;
    }

    /// The network card the node's ENIs are on (the VPC CNI uses the default card).
    fn card(&self) -> u32 {
        u32::from(self.limits.default_network_card_index)
    }

    fn free_device(&self) -> Option<u32> {
        let limit = eni::enis_on_card(&self.limits, self.card()).unwrap_or(0);
        (0..limit).find(|d| !self.enis.contains_key(d))
    }

    /// One call of `api` on the addresses of ENI `id`, with the node's limits, subnet and
    /// placement: `NotFound` for an unknown ENI, EC2's error codes for what `f` refuses.
    fn on_eni<T>(
        &mut self,
        api: &'static str,
        id: &EniId,
        f: impl FnOnce(&mut EniAddresses, &InstanceLimits, &mut Subnet, Placement) -> Result<T>,
    ) -> std::result::Result<T, Failure> {
        self.count(api);
        let device = self.device_of(id).ok_or(Failure::NotFound)?;
        let e = self.enis.get_mut(&device).ok_or(Failure::NotFound)?;
        f(
            &mut e.addresses,
            &self.limits,
            &mut self.subnet,
            self.placement,
        )
        .map_err(|e| eni::failure(&e))
    }

    fn device_of(&self, id: &EniId) -> Option<u32> {
        self.enis.values().find(|e| &e.id == id).map(|e| e.device)
    }

    /// What IMDS would report: every attached ENI.
    pub fn observed(&self) -> Vec<ObservedEni> {
        self.enis
            .values()
            .map(|e| ObservedEni {
                id: e.id.clone(),
                device: e.device,
                primary_ip: e.addresses.primary_ip,
                ips: e.addresses.ips.iter().copied().collect(),
                prefixes: e.addresses.prefixes.iter().copied().collect(),
                trunk: false,
                unmanaged: false,
            })
            .collect()
    }

    fn create_eni(&mut self, ips: u32, prefixes: u32) -> std::result::Result<Outcome, Failure> {
        self.count("CreateNetworkInterface");
        let fail = |e: Error| eni::failure(&e);
        eni::check_slots(&self.limits, "a new interface", 0, ips + prefixes).map_err(fail)?;
        let (addresses, new_ips, new_prefixes) =
            EniAddresses::allocate(&mut self.subnet, self.placement, ips, prefixes)
                .map_err(fail)?;
        self.count("AttachNetworkInterface");
        let attached = u32::try_from(self.enis.len()).unwrap_or(u32::MAX);
        let device = eni::check_attachment(&self.limits, self.card(), attached)
            .ok()
            .and_then(|()| self.free_device());
        let Some(device) = device else {
            // Created but cannot attach: EC2 leaves an available ENI; we delete it.
            addresses.release(&mut self.subnet);
            self.count("DeleteNetworkInterface");
            return Err(Failure::AttachmentLimitExceeded);
        };
        self.count("ModifyNetworkInterfaceAttribute");
        let primary_ip = addresses.primary_ip;
        let eni = self.insert_eni(device, addresses);
        Ok(Outcome::EniCreated {
            eni,
            device,
            primary_ip,
            ips: new_ips,
            prefixes: new_prefixes,
        })
    }

    /// Executes one call as EC2 would. Atomic: a failed call changes nothing (except the count).
    pub fn execute(&mut self, call: &Ec2Call) -> std::result::Result<Outcome, Failure> {
        match call {
            Ec2Call::CreateEni { ips, prefixes } => self.create_eni(*ips, *prefixes),
            Ec2Call::AssignIps { eni, count } => self
                .on_eni(
                    "AssignPrivateIpAddresses",
                    eni,
                    |a, limits, subnet, placement| {
                        a.assign_ips(limits, &eni.0, subnet, placement, *count)
                    },
                )
                .map(|ips| Outcome::IpsAssigned { ips }),
            Ec2Call::AssignPrefixes { eni, count } => self
                .on_eni(
                    "AssignPrivateIpAddresses",
                    eni,
                    |a, limits, subnet, placement| {
                        a.assign_prefixes(limits, &eni.0, subnet, placement, *count)
                    },
                )
                .map(|prefixes| Outcome::PrefixesAssigned { prefixes }),
            Ec2Call::UnassignIps { eni, ips } => self
                .on_eni("UnassignPrivateIpAddresses", eni, |a, _, subnet, _| {
                    a.unassign_ips(&eni.0, subnet, ips)
                })
                .map(|()| Outcome::Unassigned),
            Ec2Call::UnassignPrefixes { eni, prefixes } => self
                .on_eni("UnassignPrivateIpAddresses", eni, |a, _, subnet, _| {
                    a.unassign_prefixes(&eni.0, subnet, prefixes)
                })
                .map(|()| Outcome::Unassigned),
            Ec2Call::DeleteEni { eni } => {
                self.count("DetachNetworkInterface");
                let device = self.device_of(eni).ok_or(Failure::NotFound)?;
                if device == 0 {
                    return Err(Failure::Other { message: "OperationNotPermitted: the primary network interface cannot be detached".to_owned() });
                }
                self.count("DeleteNetworkInterface");
                let e = self.enis.remove(&device).ok_or(Failure::NotFound)?;
                e.addresses.release(&mut self.subnet);
                Ok(Outcome::EniDeleted)
            }
            Ec2Call::DescribeEni { eni } => {
                self.count("DescribeNetworkInterfaces");
                let device = self.device_of(eni).ok_or(Failure::NotFound)?;
                let e = &self.enis[&device].addresses;
                Ok(Outcome::EniDescribed {
                    ips: e.ips.iter().copied().collect(),
                    prefixes: e.prefixes.iter().copied().collect(),
                })
            }
        }
    }
}

/// One thing that happened in a simulation, for `--explain` and tests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Event {
    /// When.
    pub time: Time,
    /// The operation.
    pub op: OpId,
    /// The call.
    pub call: Ec2Call,
    /// Why the engine asked for it.
    pub reason: String,
    /// What EC2 answered (`None` = success).
    pub failure: Option<Failure>,
}

/// The pool check period the daemon uses: ticks every 5 s.
pub const TICK: Duration = Duration::from_secs(5);

/// A node: the pool engine driving the EC2 model, with a clock.
#[derive(Debug, Clone)]
pub struct Node {
    /// The engine.
    pub pool: Pool,
    /// EC2.
    pub ec2: Ec2Model,
    /// The simulation clock.
    pub now: Time,
    /// Every EC2 call so far.
    pub events: Vec<Event>,
    /// Failures to inject, in order, for the next calls of an API (by API name).
    pub inject: BTreeMap<&'static str, Vec<Failure>>,
    /// Pod ADDs answered with no address so far.
    pub no_address: u64,
}

impl Node {
    /// A node of `limits` in a fresh subnet `cidr`, its pool initialised from the model (not yet
    /// grown: call [`Node::settle`]). Addresses are placed lowest-first.
    pub fn new(limits: &InstanceLimits, config: PoolConfig, cidr: &str) -> Result<Node> {
        let net: Ipv4Network =
            cidr.parse()
                .map_err(|e: ipnetwork::IpNetworkError| Error::InvalidSubnetCidr {
                    cidr: cidr.to_owned(),
                    reason: e.to_string(),
                })?;
        Node::with_ec2(
            limits,
            config,
            Ec2Model::new(limits, Subnet::new(net)?, Placement::Lowest)?,
        )
    }

    /// A node over a prepared EC2 model (other tenants, placement policy).
    pub fn with_ec2(limits: &InstanceLimits, config: PoolConfig, ec2: Ec2Model) -> Result<Node> {
        let mut node = Node {
            pool: Pool::new(limits, config),
            ec2,
            now: Time(0),
            events: Vec::new(),
            inject: BTreeMap::new(),
            no_address: 0,
        };
        let enis = node.ec2.observed();
        node.input(Input::Observed { enis });
        Ok(node)
    }

    /// Feeds one input now, executes every call it leads to (EC2 answers at once), and returns
    /// the replies to pods.
    pub fn input(&mut self, input: Input) -> Vec<Reply> {
        let mut replies = Vec::new();
        let mut queue = vec![input];
        while let Some(next) = queue.pop() {
            for action in self.pool.step(self.now, next) {
                match action {
                    Action::Reply(r) => replies.push(r),
                    Action::Call { op, call, reason } => {
                        let injected = self
                            .inject
                            .get_mut(call.api())
                            .and_then(|v| (!v.is_empty()).then(|| v.remove(0)));
                        let result = match injected {
                            Some(f) => Err(f),
                            None => self.ec2.execute(&call),
                        };
                        self.events.push(Event {
                            time: self.now,
                            op,
                            call,
                            reason,
                            failure: result.as_ref().err().cloned(),
                        });
                        queue.insert(0, Input::Outcome { op, result });
                    }
                }
            }
        }
        replies
    }

    /// A pod ADD with key `aws-cni/<id>/eth0`.
    pub fn add_pod(&mut self, id: &str) -> Reply {
        self.pod(Input::AddPod {
            key: PodKey::new(id),
        })
    }

    /// A pod DEL.
    pub fn del_pod(&mut self, id: &str) -> Reply {
        self.pod(Input::DelPod {
            key: PodKey::new(id),
        })
    }

    fn pod(&mut self, input: Input) -> Reply {
        let replies = self.input(input);
        replies
            .into_iter()
            .find(|r| !matches!(r, Reply::ForceRemoved { .. }))
            .expect("a pod request is always answered")
    }

    /// Advances the clock by `d`, ticking every [`TICK`].
    pub fn advance(&mut self, d: Duration) {
        let end = self.now + d;
        while self.now < end {
            let step = TICK.min(end.since(self.now));
            self.now = self.now + step;
            self.input(Input::Tick);
        }
    }

    /// Ticks until the pool is quiet: no EC2 call for longer than every timer of the engine
    /// (shrink interval, ENI lifetime, cooldowns, back-off), at most one simulated hour.
    /// Returns the time it took.
    pub fn settle(&mut self) -> Duration {
        let start = self.now;
        let config = self.pool.config();
        let quiet = config
            .decrease_interval
            .max(config.eni_min_lifetime)
            .max(config.ip_cooldown)
            .max(config.subnet_full_backoff)
            .max(config.reconcile_cooldown)
            + TICK;
        self.input(Input::Tick);
        let mut last = self.events.len();
        let mut quiet_since = self.now;
        while self.now.since(quiet_since) <= quiet
            && self.now.since(start) < Duration::from_hours(1)
        {
            self.advance(TICK);
            if self.events.len() != last {
                last = self.events.len();
                quiet_since = self.now;
            }
        }
        self.now.since(start)
    }

    /// Reconciles the pool with the model (as the daemon does with IMDS/EC2).
    pub fn reconcile(&mut self) -> Vec<Reply> {
        let enis = self.ec2.observed();
        self.input(Input::Observed { enis })
    }

    /// Whether the pool's view equals EC2's: same managed ENIs, same addresses and prefixes.
    pub fn consistent(&self) -> std::result::Result<(), String> {
        let mut pool: BTreeMap<EniId, (BTreeSet<Ipv4Addr>, BTreeSet<Ipv4Network>)> =
            BTreeMap::new();
        for a in self.pool.addresses() {
            let entry = pool.entry(a.eni.clone()).or_default();
            match a.prefix {
                Some(p) => {
                    entry.1.insert(p);
                }
                None => {
                    entry.0.insert(a.ip);
                }
            }
        }
        for e in self.ec2.enis() {
            let (ips, prefixes) = pool.remove(&e.id).unwrap_or_default();
            let held = &e.addresses;
            if ips != held.ips || prefixes != held.prefixes {
                return Err(format!(
                    "{}: pool holds {} ips / {} prefixes, EC2 {} / {}",
                    e.id,
                    ips.len(),
                    prefixes.len(),
                    held.ips.len(),
                    held.prefixes.len()
                ));
            }
        }
        if let Some((id, _)) = pool
            .into_iter()
            .find(|(_, (i, p))| !i.is_empty() || !p.is_empty())
        {
            return Err(format!("{id}: in the pool but not in EC2"));
        }
        Ok(())
    }
}

/// One pod event of a trace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "event", content = "pod", rename_all = "lowercase")]
pub enum PodEvent {
    /// CNI ADD of this pod.
    Add(String),
    /// CNI DEL of this pod.
    Del(String),
}

/// A pod event at a time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TimedEvent {
    /// When.
    pub at: Time,
    /// What.
    pub event: PodEvent,
}

/// Parses a trace file: one event per line, `<time> add|del <pod>`, where time is seconds with
/// an optional unit (`90`, `90s`, `1.5m`, `2h`, `250ms`); `#` starts a comment. Times must not
/// go backwards.
///
/// ```
/// let t = planner::sim::parse_trace("0 add web-1\n30s add web-2 # second\n2m del web-1\n")?;
/// assert_eq!(t.len(), 3);
/// assert_eq!(t[2].at, planner::pool::Time::from_secs(120));
/// assert!(planner::sim::parse_trace("5 remove web-1").is_err());
/// # Ok::<(), planner::Error>(())
/// ```
pub fn parse_trace(text: &str) -> Result<Vec<TimedEvent>> {
    let mut out: Vec<TimedEvent> = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let bad = |reason: &str| Error::InvalidTrace {
            line: n + 1,
            text: raw.to_owned(),
            reason: reason.to_owned(),
        };
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [time, verb, pod] = fields[..] else {
            return Err(bad("expected `<time> add|del <pod>`, e.g. `30s add web-1`"));
        };
        let at = parse_time(time).ok_or_else(|| {
            bad("the time must be a number of seconds with an optional unit (ms, s, m, h)")
        })?;
        let event = match verb {
            "add" => PodEvent::Add(pod.to_owned()),
            "del" | "delete" => PodEvent::Del(pod.to_owned()),
            _ => return Err(bad("the event must be `add` or `del`")),
        };
        if out.last().is_some_and(|last| last.at > at) {
            return Err(bad("times must not go backwards"));
        }
        out.push(TimedEvent { at, event });
    }
    Ok(out)
}

fn parse_time(s: &str) -> Option<Time> {
    let (num, scale) = if let Some(n) = s.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1000.0)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60_000.0)
    } else if let Some(n) = s.strip_suffix('h') {
        (n, 3_600_000.0)
    } else {
        (s, 1000.0)
    };
    let v: f64 = num.parse().ok()?;
    if !v.is_finite() || v < 0.0 || v * scale > 1e15 {
        return None;
    }
    #[expect(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "checked finite, non-negative and bounded above"
    )]
    let ms = (v * scale).round() as u64;
    Some(Time(ms))
}

/// The pool after one step of a simulation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StepReport {
    /// Pods holding an address.
    pub pods: u32,
    /// Pod ADDs in this step that got no address.
    pub unserved: u32,
    /// Simulation time at the end of the step.
    pub time: Time,
    /// ENIs attached (managed, trunk included).
    pub enis: u32,
    /// Pod-usable addresses held.
    pub ips: u32,
    /// Prefixes held.
    pub prefixes: u32,
    /// Addresses bound to pods.
    pub assigned: u32,
    /// Addresses assignable now.
    pub free: u32,
    /// Addresses cooling down.
    pub cooldown: u32,
    /// EC2 API calls made during the step, by API.
    pub ec2_calls: BTreeMap<&'static str, u64>,
    /// The engine's calls during the step, with reasons.
    #[serde(skip)]
    pub events: Vec<Event>,
}

impl Node {
    fn report(
        &self,
        before: &BTreeMap<&'static str, u64>,
        events_from: usize,
        unserved: u32,
    ) -> StepReport {
        let s = self.pool.snapshot();
        let ec2_calls = self
            .ec2
            .calls()
            .iter()
            .filter_map(|(api, n)| {
                let d = n - before.get(api).copied().unwrap_or(0);
                (d > 0).then_some((*api, d))
            })
            .collect();
        StepReport {
            pods: s.pods,
            unserved,
            time: self.now,
            enis: u32::try_from(s.enis.len()).unwrap_or(u32::MAX),
            ips: s.total,
            prefixes: s.prefixes,
            assigned: s.assigned,
            free: s.available,
            cooldown: s.cooling,
            ec2_calls,
            events: self.events[events_from..].to_vec(),
        }
    }

    /// Runs a pod-count trace: the first step settles the empty node (if the first count is 0)
    /// or ramps to it; each step adds or deletes pods one at a time (newest deleted first),
    /// settling after each, and reports the settled pool.
    pub fn run_counts(&mut self, counts: &[u32]) -> Vec<StepReport> {
        let mut reports = Vec::with_capacity(counts.len());
        let mut live: Vec<String> = Vec::new();
        let mut next = 0u64;
        for &target in counts {
            let before = self.ec2.calls().clone();
            let from = self.events.len();
            let mut unserved = 0;
            self.settle();
            let target = usize::try_from(target).unwrap_or(usize::MAX);
            while live.len() < target {
                let id = format!("pod-{next}");
                if !matches!(self.add_pod(&id), Reply::Assigned { .. }) {
                    // As kubelet would: retry once the pool has had time to grow.
                    self.settle();
                    if !matches!(self.add_pod(&id), Reply::Assigned { .. }) {
                        // The node cannot serve more pods: the rest of the step goes unserved.
                        unserved = u32::try_from(target - live.len()).unwrap_or(u32::MAX);
                        break;
                    }
                }
                next += 1;
                live.push(id);
                self.settle();
            }
            while live.len() > target {
                if let Some(id) = live.pop() {
                    self.del_pod(&id);
                }
                self.settle();
            }
            reports.push(self.report(&before, from, unserved));
        }
        reports
    }

    /// Runs a timed trace: events at their times (counted from the settled start), the pool
    /// ticking every [`TICK`] in between.
    /// One step per distinct time, reported just before the next time (the last after settling).
    pub fn run_timed(&mut self, events: &[TimedEvent]) -> Vec<StepReport> {
        let mut reports = Vec::new();
        let mut i = 0;
        self.settle();
        // Trace times count from the settled start.
        let origin = self.now;
        let when = |e: &TimedEvent| Time(origin.as_millis() + e.at.as_millis());
        while i < events.len() {
            let at = when(&events[i]);
            let before = self.ec2.calls().clone();
            let from = self.events.len();
            if at > self.now {
                self.advance(at.since(self.now));
            }
            let mut unserved = 0;
            while i < events.len() && when(&events[i]) == at {
                match &events[i].event {
                    PodEvent::Add(pod) => {
                        if !matches!(self.add_pod(pod), Reply::Assigned { .. }) {
                            unserved += 1;
                        }
                    }
                    PodEvent::Del(pod) => {
                        self.del_pod(pod);
                    }
                }
                i += 1;
            }
            match events.get(i) {
                Some(next) => self.advance(when(next).since(self.now)),
                None => {
                    self.settle();
                }
            }
            reports.push(self.report(&before, from, unserved));
        }
        reports
    }
}
