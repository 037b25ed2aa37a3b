//! A stateful, in-memory EC2 and IMDS, faithful where ipamd needs it: subnets hand out real,
//! unique addresses (AWS reserves 5 per subnet) and aligned /28 prefixes through the planner's
//! subnet model, with `InsufficientCidrBlocks` / `InsufficientFreeAddressesInSubnet`; instance
//! types carry the catalogue's ENI and per-ENI limits (`AttachmentLimitExceeded`,
//! `PrivateIpAddressLimitExceeded`); ENIs have attachment state, tags, types and MACs. Errors,
//! latency and throttling can be injected per API.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use cloud::{Ec2, fake::FakeEc2};
//! let ec2 = FakeEc2::new();
//! let vpc = ec2.create_vpc("10.0.0.0/16".parse().unwrap());
//! let subnet = ec2.create_subnet(&vpc, "10.0.0.0/24".parse().unwrap(), "us-west-2a").unwrap();
//! let instance = ec2.run_instance("m5.large", &subnet).unwrap();
//! let enis = ec2.describe_network_interfaces(&Default::default()).await.unwrap();
//! let primary = &enis[0].id;
//! let ips = ec2.assign_private_ips(primary, 9).await.unwrap();
//! assert_eq!(ips.len(), 9);
//! // m5.large: 10 addresses per ENI, the primary included.
//! assert!(ec2.assign_private_ips(primary, 1).await.is_err());
//! # let _ = instance; });
//! ```

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use ipnetwork::Ipv4Network;
use planner::catalogue;
use planner::pool::EniId;
use planner::rng::Rng;
use planner::subnet::{Placement, Subnet};

use crate::model::{
    Attachment, CreateEni, EniFilter, Instance, InstanceTypeInfo, InterfaceType, NetworkInterface,
    SubnetInfo,
};
use crate::{CloudError, Ec2, Imds, Result};

/// An injected failure: the next calls of an API fail with an EC2 error code.
#[derive(Debug, Clone, PartialEq)]
pub struct Fault {
    /// EC2 error code, e.g. `RequestLimitExceeded`, `InternalError`, `InsufficientCidrBlocks`.
    pub code: String,
    /// Probability that a call fails (1.0 = every call while `count` lasts).
    pub probability: f64,
    /// How many failures in all (`None` = no limit).
    pub count: Option<u32>,
}

struct FakeSubnet {
    info: SubnetInfo,
    model: Subnet,
}

struct FakeInstance {
    instance_type: &'static catalogue::InstanceLimits,
    subnet_id: String,
    private_ip: Ipv4Addr,
}

#[derive(Default)]
struct State {
    next_id: u64,
    vpcs: BTreeMap<String, Ipv4Network>,
    subnets: BTreeMap<String, FakeSubnet>,
    instances: BTreeMap<String, FakeInstance>,
    enis: BTreeMap<EniId, NetworkInterface>,
    faults: BTreeMap<String, Fault>,
    latency: Duration,
    rng: Rng,
    calls: BTreeMap<&'static str, u64>,
}

impl State {
    fn id(&mut self, prefix: &str) -> String {
        self.next_id += 1;
        format!("{prefix}-{:017x}", self.next_id)
    }

    fn mac(&mut self) -> String {
        self.next_id += 1;
        let n = self.next_id;
        format!(
            "02:00:{:02x}:{:02x}:{:02x}:{:02x}",
            (n >> 24) & 0xff,
            (n >> 16) & 0xff,
            (n >> 8) & 0xff,
            n & 0xff
        )
    }

    /// Counts the call and fires an injected fault if one applies.
    fn enter(&mut self, api: &'static str) -> Result<()> {
        *self.calls.entry(api).or_default() += 1;
        for key in [api, "*"] {
            let Some(fault) = self.faults.get(key).cloned() else {
                continue;
            };
            if fault.count == Some(0) {
                continue;
            }
            if fault.probability >= 1.0 || self.rng.unit() < fault.probability {
                if let Some(f) = self.faults.get_mut(key) {
                    f.count = f.count.map(|c| c - 1);
                }
                return Err(CloudError::from_code(
                    api,
                    &fault.code,
                    "injected by the fake",
                ));
            }
        }
        Ok(())
    }

    fn eni(&self, api: &'static str, id: &EniId) -> Result<&NetworkInterface> {
        self.enis
            .get(id)
            .ok_or_else(|| not_found(api, "InvalidNetworkInterfaceID.NotFound", &id.0))
    }

    fn subnet(&mut self, api: &'static str, id: &str) -> Result<&mut FakeSubnet> {
        self.subnets
            .get_mut(id)
            .ok_or_else(|| not_found(api, "InvalidSubnetID.NotFound", id))
    }

    fn sync_available(&mut self, subnet_id: &str) {
        if let Some(s) = self.subnets.get_mut(subnet_id) {
            s.info.available_ip_addresses = s.model.free_addresses();
        }
    }

    fn slots_limit(&self, eni: &NetworkInterface) -> Option<u32> {
        let instance = &self
            .instances
            .get(&eni.attachment.as_ref()?.instance_id)?
            .instance_type;
        Some(u32::from(instance.ipv4_per_eni) - 1)
    }
}

impl State {
    /// AssignPrivateIpAddresses (addresses or prefixes): the ENI's slot limit, then an atomic
    /// allocation from its subnet.
    fn assign<T: Ord + Copy>(
        &mut self,
        eni: &EniId,
        count: u32,
        what: &str,
        allocate: impl FnOnce(&mut Subnet, u32) -> planner::Result<Vec<T>>,
        list: impl FnOnce(&mut NetworkInterface) -> &mut Vec<T>,
    ) -> Result<Vec<T>> {
        let api = "AssignPrivateIpAddresses";
        self.enter(api)?;
        let e = self.eni(api, eni)?;
        let used = u32::try_from(e.secondary_ips.len() + e.prefixes.len()).unwrap_or(u32::MAX);
        if self
            .slots_limit(e)
            .is_some_and(|limit| used + count > limit)
        {
            return Err(CloudError::from_code(
                api,
                "PrivateIpAddressLimitExceeded",
                &format!("{eni} cannot hold {count} more {what}"),
            ));
        }
        let subnet_id = e.subnet_id.clone();
        let got = allocate(&mut self.subnet(api, &subnet_id)?.model, count)
            .map_err(|e| subnet_error(api, &e))?;
        let held = list(self.enis.get_mut(eni).expect("checked above"));
        held.extend(&got);
        held.sort_unstable();
        self.sync_available(&subnet_id);
        Ok(got)
    }

    /// UnassignPrivateIpAddresses (addresses or prefixes): all must be on the ENI, or nothing
    /// changes.
    fn unassign<T: PartialEq + Copy + std::fmt::Display>(
        &mut self,
        eni: &EniId,
        items: &[T],
        what: &str,
        release: impl Fn(&mut Subnet, T) -> planner::Result<()>,
        list: impl FnOnce(&mut NetworkInterface) -> &mut Vec<T>,
    ) -> Result<()> {
        let api = "UnassignPrivateIpAddresses";
        self.enter(api)?;
        let subnet_id = self.eni(api, eni)?.subnet_id.clone();
        let held = list(self.enis.get_mut(eni).expect("checked above"));
        if let Some(x) = items.iter().find(|x| !held.contains(x)) {
            return Err(CloudError::from_code(
                api,
                "InvalidParameterValue",
                &format!("{x} is not a {what} of {eni}"),
            ));
        }
        held.retain(|x| !items.contains(x));
        let model = &mut self.subnet(api, &subnet_id)?.model;
        for x in items {
            let _ = release(model, *x);
        }
        self.sync_available(&subnet_id);
        Ok(())
    }
}

fn not_found(api: &'static str, code: &str, id: &str) -> CloudError {
    CloudError::from_code(api, code, &format!("The resource '{id}' does not exist"))
}

fn subnet_error(api: &'static str, e: &planner::Error) -> CloudError {
    match e {
        planner::Error::InsufficientCidrBlocks { .. } => {
            CloudError::from_code(api, "InsufficientCidrBlocks", &e.to_string())
        }
        planner::Error::InsufficientFreeAddressesInSubnet { .. } => {
            CloudError::from_code(api, "InsufficientFreeAddressesInSubnet", &e.to_string())
        }
        other => CloudError::from_code(api, "InvalidParameterValue", &other.to_string()),
    }
}

/// The in-memory EC2. Clones share state.
#[derive(Clone)]
pub struct FakeEc2 {
    state: Arc<Mutex<State>>,
}

impl Default for FakeEc2 {
    fn default() -> Self {
        FakeEc2::new()
    }
}

impl FakeEc2 {
    /// An empty region.
    pub fn new() -> FakeEc2 {
        FakeEc2 {
            state: Arc::new(Mutex::new(State {
                rng: Rng::new(0x2545_f491_4f6c_dd1d),
                ..State::default()
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().expect("fake EC2 state")
    }

    /// Creates a VPC.
    pub fn create_vpc(&self, cidr: Ipv4Network) -> String {
        let mut s = self.lock();
        let id = s.id("vpc");
        s.vpcs.insert(id.clone(), cidr);
        id
    }

    /// Creates a subnet (its addresses allocated lowest first, as the harness does).
    pub fn create_subnet(
        &self,
        vpc_id: &str,
        cidr: Ipv4Network,
        availability_zone: &str,
    ) -> Result<String> {
        let model = Subnet::new(cidr).map_err(|e| {
            CloudError::from_code("CreateSubnet", "InvalidSubnet.Range", &e.to_string())
        })?;
        let mut s = self.lock();
        if !s.vpcs.contains_key(vpc_id) {
            return Err(not_found("CreateSubnet", "InvalidVpcID.NotFound", vpc_id));
        }
        let id = s.id("subnet");
        let info = SubnetInfo {
            id: id.clone(),
            vpc_id: vpc_id.to_owned(),
            cidr,
            availability_zone: availability_zone.to_owned(),
            available_ip_addresses: model.free_addresses(),
            tags: BTreeMap::new(),
        };
        s.subnets.insert(id.clone(), FakeSubnet { info, model });
        Ok(id)
    }

    /// Marks addresses of a subnet as used by other tenants (load balancers, other nodes).
    pub fn occupy(&self, subnet_id: &str, range: Ipv4Network) -> Result<u32> {
        let mut s = self.lock();
        let n = s
            .subnet("occupy", subnet_id)?
            .model
            .occupy_range(range)
            .map_err(|e| subnet_error("occupy", &e))?;
        s.sync_available(subnet_id);
        Ok(n)
    }

    /// Starts an instance with its primary ENI (device 0, deleted on termination).
    pub fn run_instance(&self, instance_type: &str, subnet_id: &str) -> Result<String> {
        let api = "RunInstances";
        let limits =
            catalogue::lookup(instance_type).map_err(|_| CloudError::UnknownInstanceType {
                api,
                name: instance_type.to_owned(),
            })?;
        let mut s = self.lock();
        let ip = s
            .subnet(api, subnet_id)?
            .model
            .allocate_ip(Placement::Lowest)
            .map_err(|e| subnet_error(api, &e))?;
        let (vpc_id, az) = {
            let sub = &s.subnets[subnet_id].info;
            (sub.vpc_id.clone(), sub.availability_zone.clone())
        };
        let instance_id = s.id("i");
        let eni_id = EniId(s.id("eni"));
        let attachment_id = s.id("eni-attach");
        let mac = s.mac();
        s.enis.insert(
            eni_id.clone(),
            NetworkInterface {
                id: eni_id,
                subnet_id: subnet_id.to_owned(),
                vpc_id,
                availability_zone: az,
                description: String::new(),
                mac,
                interface_type: InterfaceType::Interface,
                status: "in-use".to_owned(),
                primary_ip: ip,
                secondary_ips: Vec::new(),
                prefixes: Vec::new(),
                attachment: Some(Attachment {
                    id: attachment_id,
                    instance_id: instance_id.clone(),
                    device_index: 0,
                    network_card_index: 0,
                    delete_on_termination: true,
                    status: "attached".to_owned(),
                }),
                tags: BTreeMap::new(),
                security_groups: vec!["sg-default".to_owned()],
            },
        );
        s.instances.insert(
            instance_id.clone(),
            FakeInstance {
                instance_type: limits,
                subnet_id: subnet_id.to_owned(),
                private_ip: ip,
            },
        );
        s.sync_available(subnet_id);
        Ok(instance_id)
    }

    /// Makes the next calls of `api` (an EC2 action name, or `*` for all) fail.
    pub fn inject(&self, api: &str, fault: Fault) {
        self.lock().faults.insert(api.to_owned(), fault);
    }

    /// Removes every injected fault.
    pub fn clear_faults(&self) {
        self.lock().faults.clear();
    }

    /// Adds latency to every call (use with a paused tokio clock in tests).
    pub fn set_latency(&self, latency: Duration) {
        self.lock().latency = latency;
    }

    /// Calls made so far, by API.
    pub fn calls(&self) -> BTreeMap<&'static str, u64> {
        self.lock().calls.clone()
    }

    /// Free addresses and aligned /28s of a subnet.
    pub fn subnet_free(&self, subnet_id: &str) -> Option<(u32, u32)> {
        let s = self.lock();
        s.subnets
            .get(subnet_id)
            .map(|f| (f.model.free_addresses(), f.model.free_blocks()))
    }

    async fn delay(&self) {
        let latency = self.lock().latency;
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
    }

    /// Releases every address of an ENI back to its subnet.
    fn release_all(s: &mut State, eni: &NetworkInterface) {
        if let Some(sub) = s.subnets.get_mut(&eni.subnet_id) {
            for ip in eni.secondary_ips.iter().chain([&eni.primary_ip]) {
                let _ = sub.model.release_ip(*ip);
            }
            for p in &eni.prefixes {
                let _ = sub.model.release_prefix(*p);
            }
        }
        s.sync_available(&eni.subnet_id);
    }
}

fn matches(filter: &EniFilter, e: &NetworkInterface) -> bool {
    (filter.ids.is_empty() || filter.ids.contains(&e.id))
        && filter
            .instance_id
            .as_ref()
            .is_none_or(|i| e.attachment.as_ref().is_some_and(|a| &a.instance_id == i))
        && filter.subnet_id.as_ref().is_none_or(|s| &e.subnet_id == s)
        && filter.vpc_id.as_ref().is_none_or(|v| &e.vpc_id == v)
        && filter.status.as_ref().is_none_or(|st| &e.status == st)
        && filter
            .tag_key
            .as_ref()
            .is_none_or(|k| e.tags.contains_key(k))
        && filter.tags.iter().all(|(k, v)| e.tags.get(k) == Some(v))
}

impl Ec2 for FakeEc2 {
    async fn describe_instances(&self, ids: &[String]) -> Result<Vec<Instance>> {
        let api = "DescribeInstances";
        self.delay().await;
        let mut s = self.lock();
        s.enter(api)?;
        let mut out = Vec::new();
        for id in ids {
            let i = s
                .instances
                .get(id)
                .ok_or_else(|| not_found(api, "InvalidInstanceID.NotFound", id))?;
            let sub = &s.subnets[&i.subnet_id].info;
            let network_interfaces = s
                .enis
                .values()
                .filter_map(|e| {
                    e.attachment
                        .as_ref()
                        .filter(|a| &a.instance_id == id)
                        .map(|a| (a.device_index, e.id.clone()))
                })
                .collect();
            out.push(Instance {
                id: id.clone(),
                instance_type: i.instance_type.name.to_owned(),
                subnet_id: i.subnet_id.clone(),
                vpc_id: sub.vpc_id.clone(),
                availability_zone: sub.availability_zone.clone(),
                private_ip: i.private_ip,
                network_interfaces,
            });
        }
        Ok(out)
    }

    async fn describe_instance_types(&self, names: &[String]) -> Result<Vec<InstanceTypeInfo>> {
        let api = "DescribeInstanceTypes";
        self.delay().await;
        self.lock().enter(api)?;
        names
            .iter()
            .map(|n| {
                let t = catalogue::lookup(n).map_err(|_| CloudError::UnknownInstanceType {
                    api,
                    name: n.clone(),
                })?;
                Ok(InstanceTypeInfo {
                    name: t.name.to_owned(),
                    max_enis: t.total_enis(),
                    network_cards: t.network_cards.iter().map(|&c| u32::from(c)).collect(),
                    default_network_card_index: u32::from(t.default_network_card_index),
                    ipv4_per_eni: u32::from(t.ipv4_per_eni),
                    hypervisor: if t.hypervisor == catalogue::Hypervisor::Unknown {
                        String::new()
                    } else {
                        t.hypervisor.to_string()
                    },
                    bare_metal: t.bare_metal,
                    vcpus: t.vcpus.map(u32::from),
                })
            })
            .collect()
    }

    async fn describe_subnets(&self, ids: &[String]) -> Result<Vec<SubnetInfo>> {
        let api = "DescribeSubnets";
        self.delay().await;
        let mut s = self.lock();
        s.enter(api)?;
        ids.iter()
            .map(|id| {
                s.subnets
                    .get(id)
                    .map(|f| f.info.clone())
                    .ok_or_else(|| not_found(api, "InvalidSubnetID.NotFound", id))
            })
            .collect()
    }

    async fn describe_network_interfaces(
        &self,
        filter: &EniFilter,
    ) -> Result<Vec<NetworkInterface>> {
        let api = "DescribeNetworkInterfaces";
        self.delay().await;
        let mut s = self.lock();
        s.enter(api)?;
        if let Some(missing) = filter.ids.iter().find(|id| !s.enis.contains_key(id)) {
            return Err(not_found(
                api,
                "InvalidNetworkInterfaceID.NotFound",
                &missing.0,
            ));
        }
        Ok(s.enis
            .values()
            .filter(|e| matches(filter, e))
            .cloned()
            .collect())
    }

    async fn create_network_interface(&self, request: &CreateEni) -> Result<NetworkInterface> {
        let api = "CreateNetworkInterface";
        self.delay().await;
        let mut s = self.lock();
        s.enter(api)?;
        if request.secondary_ips > 0 && request.prefixes > 0 {
            return Err(CloudError::from_code(
                api,
                "InvalidParameterCombination",
                "secondary addresses and prefixes cannot be mixed",
            ));
        }
        let sub = s.subnet(api, &request.subnet_id)?;
        let (vpc_id, az) = (sub.info.vpc_id.clone(), sub.info.availability_zone.clone());
        // All or nothing.
        let primary = sub
            .model
            .allocate_ip(Placement::Lowest)
            .map_err(|e| subnet_error(api, &e))?;
        let ips = match sub
            .model
            .allocate_ips(request.secondary_ips, Placement::Lowest)
        {
            Ok(v) => v,
            Err(e) => {
                let _ = sub.model.release_ip(primary);
                return Err(subnet_error(api, &e));
            }
        };
        let prefixes = match sub
            .model
            .allocate_prefixes(request.prefixes, Placement::Lowest)
        {
            Ok(v) => v,
            Err(e) => {
                for ip in ips.iter().chain([&primary]) {
                    let _ = sub.model.release_ip(*ip);
                }
                return Err(subnet_error(api, &e));
            }
        };
        let id = EniId(s.id("eni"));
        let mac = s.mac();
        let eni = NetworkInterface {
            id: id.clone(),
            subnet_id: request.subnet_id.clone(),
            vpc_id,
            availability_zone: az,
            description: request.description.clone(),
            mac,
            interface_type: request
                .interface_type
                .clone()
                .unwrap_or(InterfaceType::Interface),
            status: "available".to_owned(),
            primary_ip: primary,
            secondary_ips: ips,
            prefixes,
            attachment: None,
            tags: request.tags.clone(),
            security_groups: if request.security_groups.is_empty() {
                vec!["sg-default".to_owned()]
            } else {
                request.security_groups.clone()
            },
        };
        s.enis.insert(id, eni.clone());
        s.sync_available(&request.subnet_id);
        Ok(eni)
    }

    async fn attach_network_interface(
        &self,
        eni: &EniId,
        instance_id: &str,
        device_index: u32,
        network_card_index: u32,
    ) -> Result<String> {
        let api = "AttachNetworkInterface";
        self.delay().await;
        let mut s = self.lock();
        s.enter(api)?;
        let limits = s
            .instances
            .get(instance_id)
            .ok_or_else(|| not_found(api, "InvalidInstanceID.NotFound", instance_id))?
            .instance_type;
        let e = s.eni(api, eni)?;
        if e.attachment.is_some() {
            return Err(CloudError::from_code(
                api,
                "InvalidParameterValue",
                &format!("{eni} is already attached"),
            ));
        }
        let card_limit = limits
            .network_cards
            .get(network_card_index as usize)
            .copied()
            .ok_or_else(|| {
                CloudError::from_code(
                    api,
                    "InvalidParameterValue",
                    &format!("network card {network_card_index} does not exist"),
                )
            })?;
        let attached: Vec<&Attachment> = s
            .enis
            .values()
            .filter_map(|e| e.attachment.as_ref())
            .filter(|a| a.instance_id == instance_id)
            .collect();
        if attached
            .iter()
            .any(|a| a.device_index == device_index && a.network_card_index == network_card_index)
        {
            return Err(CloudError::from_code(
                api,
                "InvalidParameterValue",
                &format!("device index {device_index} is in use"),
            ));
        }
        let on_card = attached
            .iter()
            .filter(|a| a.network_card_index == network_card_index)
            .count();
        if on_card >= usize::from(card_limit) {
            return Err(CloudError::from_code(
                api,
                "AttachmentLimitExceeded",
                &format!(
                    "{} allows {card_limit} network interfaces on card {network_card_index}",
                    limits.name
                ),
            ));
        }
        let slots = u32::from(limits.ipv4_per_eni) - 1;
        let used = u32::try_from(e.secondary_ips.len() + e.prefixes.len()).unwrap_or(u32::MAX);
        if used > slots {
            return Err(CloudError::from_code(
                api,
                "PrivateIpAddressLimitExceeded",
                "the interface holds more addresses than the instance type allows",
            ));
        }
        let id = s.id("eni-attach");
        let e = s.enis.get_mut(eni).expect("checked above");
        "in-use".clone_into(&mut e.status);
        e.attachment = Some(Attachment {
            id: id.clone(),
            instance_id: instance_id.to_owned(),
            device_index,
            network_card_index,
            delete_on_termination: false,
            status: "attached".to_owned(),
        });
        Ok(id)
    }

    async fn set_delete_on_termination(
        &self,
        eni: &EniId,
        attachment_id: &str,
        delete: bool,
    ) -> Result<()> {
        let api = "ModifyNetworkInterfaceAttribute";
        self.delay().await;
        let mut s = self.lock();
        s.enter(api)?;
        let e = s
            .enis
            .get_mut(eni)
            .ok_or_else(|| not_found(api, "InvalidNetworkInterfaceID.NotFound", &eni.0))?;
        match e.attachment.as_mut() {
            Some(a) if a.id == attachment_id => {
                a.delete_on_termination = delete;
                Ok(())
            }
            _ => Err(not_found(
                api,
                "InvalidAttachmentID.NotFound",
                attachment_id,
            )),
        }
    }

    async fn detach_network_interface(&self, attachment_id: &str, _force: bool) -> Result<()> {
        let api = "DetachNetworkInterface";
        self.delay().await;
        let mut s = self.lock();
        s.enter(api)?;
        let e = s
            .enis
            .values_mut()
            .find(|e| e.attachment.as_ref().is_some_and(|a| a.id == attachment_id))
            .ok_or_else(|| not_found(api, "InvalidAttachmentID.NotFound", attachment_id))?;
        if e.attachment.as_ref().is_some_and(|a| a.device_index == 0) {
            return Err(CloudError::from_code(
                api,
                "OperationNotPermitted",
                "the primary network interface cannot be detached",
            ));
        }
        e.attachment = None;
        "available".clone_into(&mut e.status);
        Ok(())
    }

    async fn delete_network_interface(&self, eni: &EniId) -> Result<()> {
        let api = "DeleteNetworkInterface";
        self.delay().await;
        let mut s = self.lock();
        s.enter(api)?;
        let e = s.eni(api, eni)?;
        if e.attachment.is_some() {
            return Err(CloudError::from_code(
                api,
                "InvalidNetworkInterface.InUse",
                &format!("{eni} is currently in use"),
            ));
        }
        let e = s.enis.remove(eni).expect("checked above");
        FakeEc2::release_all(&mut s, &e);
        Ok(())
    }

    async fn assign_private_ips(&self, eni: &EniId, count: u32) -> Result<Vec<Ipv4Addr>> {
        self.delay().await;
        self.lock().assign(
            eni,
            count,
            "addresses",
            |m, n| m.allocate_ips(n, Placement::Lowest),
            |e| &mut e.secondary_ips,
        )
    }

    async fn assign_prefixes(&self, eni: &EniId, count: u32) -> Result<Vec<Ipv4Network>> {
        self.delay().await;
        self.lock().assign(
            eni,
            count,
            "prefixes",
            |m, n| m.allocate_prefixes(n, Placement::Lowest),
            |e| &mut e.prefixes,
        )
    }

    async fn unassign_private_ips(&self, eni: &EniId, ips: &[Ipv4Addr]) -> Result<()> {
        self.delay().await;
        self.lock()
            .unassign(eni, ips, "secondary address", Subnet::release_ip, |e| {
                &mut e.secondary_ips
            })
    }

    async fn unassign_prefixes(&self, eni: &EniId, prefixes: &[Ipv4Network]) -> Result<()> {
        self.delay().await;
        self.lock()
            .unassign(eni, prefixes, "prefix", Subnet::release_prefix, |e| {
                &mut e.prefixes
            })
    }

    async fn create_tags(
        &self,
        resources: &[String],
        tags: &BTreeMap<String, String>,
    ) -> Result<()> {
        let api = "CreateTags";
        self.delay().await;
        let mut s = self.lock();
        s.enter(api)?;
        for r in resources {
            let id = EniId(r.clone());
            let e = s
                .enis
                .get_mut(&id)
                .ok_or_else(|| not_found(api, "InvalidNetworkInterfaceID.NotFound", r))?;
            e.tags
                .extend(tags.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        Ok(())
    }
}

/// IMDS for one instance of a [`FakeEc2`], rendered from its live state.
#[derive(Clone)]
pub struct FakeImds {
    ec2: FakeEc2,
    instance_id: String,
}

impl FakeImds {
    /// IMDS as seen from `instance_id`.
    pub fn new(ec2: &FakeEc2, instance_id: &str) -> FakeImds {
        FakeImds {
            ec2: ec2.clone(),
            instance_id: instance_id.to_owned(),
        }
    }

    fn render(&self, path: &str) -> Option<String> {
        let s = self.ec2.lock();
        let instance = s.instances.get(&self.instance_id)?;
        let sub = &s.subnets[&instance.subnet_id].info;
        let attached: Vec<&NetworkInterface> = s
            .enis
            .values()
            .filter(|e| {
                e.attachment
                    .as_ref()
                    .is_some_and(|a| a.instance_id == self.instance_id)
            })
            .collect();
        let primary = attached
            .iter()
            .find(|e| e.attachment.as_ref().is_some_and(|a| a.device_index == 0))?;
        let region = sub
            .availability_zone
            .trim_end_matches(|c: char| c.is_ascii_alphabetic())
            .to_owned();
        let lines = |v: Vec<String>| v.join("\n");
        let p = path.strip_prefix("meta-data/")?;
        match p {
            "instance-id" => return Some(self.instance_id.clone()),
            "instance-type" => return Some(instance.instance_type.name.to_owned()),
            "local-ipv4" => return Some(instance.private_ip.to_string()),
            "mac" => return Some(primary.mac.clone()),
            "placement/availability-zone" => return Some(sub.availability_zone.clone()),
            "placement/region" => return Some(region),
            "network/interfaces/macs/" => {
                return Some(lines(
                    attached.iter().map(|e| format!("{}/", e.mac)).collect(),
                ));
            }
            _ => {}
        }
        let rest = p.strip_prefix("network/interfaces/macs/")?;
        let (mac, leaf) = rest.split_once('/')?;
        let e = attached.iter().find(|e| e.mac == mac)?;
        let a = e.attachment.as_ref()?;
        let esub = &s.subnets.get(&e.subnet_id)?.info;
        let vpc = s.vpcs.get(&e.vpc_id)?;
        Some(match leaf {
            "device-number" => a.device_index.to_string(),
            "network-card" => a.network_card_index.to_string(),
            "interface-id" => e.id.0.clone(),
            "subnet-id" => e.subnet_id.clone(),
            "subnet-ipv4-cidr-block" => esub.cidr.to_string(),
            "vpc-id" => e.vpc_id.clone(),
            "vpc-ipv4-cidr-block" | "vpc-ipv4-cidr-blocks" => vpc.to_string(),
            "security-group-ids" => lines(e.security_groups.clone()),
            "local-ipv4s" => lines(
                std::iter::once(e.primary_ip)
                    .chain(e.secondary_ips.iter().copied())
                    .map(|ip| ip.to_string())
                    .collect(),
            ),
            "ipv4-prefix" if !e.prefixes.is_empty() => {
                lines(e.prefixes.iter().map(ToString::to_string).collect())
            }
            _ => return None,
        })
    }
}

impl Imds for FakeImds {
    async fn get(&self, path: &str) -> Result<Option<String>> {
        Ok(self.render(path))
    }
}
