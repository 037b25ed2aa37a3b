//! A stateful, in-memory EC2 and IMDS, faithful where ipamd needs it. Limits, address
//! allocation and error codes are the planner's one model of EC2's network interfaces
//! ([`planner::sim::eni`], also run by `planner::sim::Ec2Model`): subnets hand out real, unique
//! addresses (AWS reserves 5 per subnet) and aligned /28 prefixes from the planner's subnet
//! model, with `InsufficientCidrBlocks` / `InsufficientFreeAddressesInSubnet`; instance types
//! carry the catalogue's ENI and per-ENI limits (`AttachmentLimitExceeded`,
//! `PrivateIpAddressLimitExceeded`). What only the fake has is here: a region of VPCs, subnets
//! and instances, ids, MACs, tags, types, attachment state, filters, IMDS, and errors and
//! throttling injected per API.
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

use ipnetwork::Ipv4Network;
use planner::catalogue;
use planner::pool::EniId;
use planner::rng::Rng;
use planner::sim::eni::{self, EniAddresses};
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

/// An ENI: what only the fake keeps (`iface`, whose address fields stay empty) and its
/// addresses in the planner's model.
struct FakeEni {
    iface: NetworkInterface,
    addresses: EniAddresses,
}

impl FakeEni {
    /// The ENI as DescribeNetworkInterfaces shows it.
    fn view(&self) -> NetworkInterface {
        NetworkInterface {
            primary_ip: self.addresses.primary_ip,
            secondary_ips: self.addresses.ips.iter().copied().collect(),
            prefixes: self.addresses.prefixes.iter().copied().collect(),
            ..self.iface.clone()
        }
    }
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
    enis: BTreeMap<EniId, FakeEni>,
    faults: BTreeMap<String, Fault>,
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

    fn eni(&self, api: &'static str, id: &EniId) -> Result<&FakeEni> {
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

    /// The instance type of the instance an ENI is attached to (`None`: not attached).
    fn attached_type(&self, e: &FakeEni) -> Option<&'static catalogue::InstanceLimits> {
        let instance = &e.iface.attachment.as_ref()?.instance_id;
        Some(self.instances.get(instance)?.instance_type)
    }

    /// One address change of an ENI (assign or unassign, addresses or prefixes) in the
    /// planner's model: `change` gets the ENI's addresses, its instance type when attached (EC2
    /// checks the limit of a detached ENI when it is attached) and its subnet.
    fn change<T>(
        &mut self,
        api: &'static str,
        eni: &EniId,
        change: impl FnOnce(
            &mut EniAddresses,
            Option<&'static catalogue::InstanceLimits>,
            &mut Subnet,
        ) -> planner::Result<T>,
    ) -> Result<T> {
        self.enter(api)?;
        let e = self.eni(api, eni)?;
        let limits = self.attached_type(e);
        let subnet_id = e.iface.subnet_id.clone();
        let State { subnets, enis, .. } = self;
        let model = &mut subnets
            .get_mut(&subnet_id)
            .ok_or_else(|| not_found(api, "InvalidSubnetID.NotFound", &subnet_id))?
            .model;
        let addresses = &mut enis.get_mut(eni).expect("checked above").addresses;
        let out = change(addresses, limits, model).map_err(|e| ec2_error(api, &e))?;
        self.sync_available(&subnet_id);
        Ok(out)
    }
}

fn not_found(api: &'static str, code: &str, id: &str) -> CloudError {
    CloudError::from_code(api, code, &format!("The resource '{id}' does not exist"))
}

/// A refusal of the planner's model as EC2 returns it: its EC2 code, else
/// `InvalidParameterValue`.
fn ec2_error(api: &'static str, e: &planner::Error) -> CloudError {
    CloudError::from_code(
        api,
        e.ec2_code().unwrap_or("InvalidParameterValue"),
        &e.to_string(),
    )
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
            .map_err(|e| ec2_error("occupy", &e))?;
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
        let (addresses, _, _) = EniAddresses::allocate(
            &mut s.subnet(api, subnet_id)?.model,
            Placement::Lowest,
            0,
            0,
        )
        .map_err(|e| ec2_error(api, &e))?;
        let ip = addresses.primary_ip;
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
            FakeEni {
                iface: NetworkInterface {
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
                addresses,
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

    /// Calls made so far, by API.
    pub fn calls(&self) -> BTreeMap<&'static str, u64> {
        self.lock().calls.clone()
    }

    /// Releases every address of an ENI back to its subnet.
    fn release_all(s: &mut State, eni: &FakeEni) {
        if let Some(sub) = s.subnets.get_mut(&eni.iface.subnet_id) {
            eni.addresses.release(&mut sub.model);
        }
        s.sync_available(&eni.iface.subnet_id);
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
                .map(|e| &e.iface)
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
            .filter(|e| matches(filter, &e.iface))
            .map(FakeEni::view)
            .collect())
    }

    async fn create_network_interface(&self, request: &CreateEni) -> Result<NetworkInterface> {
        let api = "CreateNetworkInterface";
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
        // All or nothing; no limit yet (EC2 checks it when the ENI is attached).
        let (addresses, _, _) = EniAddresses::allocate(
            &mut sub.model,
            Placement::Lowest,
            request.secondary_ips,
            request.prefixes,
        )
        .map_err(|e| ec2_error(api, &e))?;
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
            primary_ip: addresses.primary_ip,
            secondary_ips: Vec::new(),
            prefixes: Vec::new(),
            attachment: None,
            tags: request.tags.clone(),
            security_groups: if request.security_groups.is_empty() {
                vec!["sg-default".to_owned()]
            } else {
                request.security_groups.clone()
            },
        };
        let eni = FakeEni {
            iface: eni,
            addresses,
        };
        let view = eni.view();
        s.enis.insert(id, eni);
        s.sync_available(&request.subnet_id);
        Ok(view)
    }

    async fn attach_network_interface(
        &self,
        eni: &EniId,
        instance_id: &str,
        device_index: u32,
        network_card_index: u32,
    ) -> Result<String> {
        let api = "AttachNetworkInterface";
        let mut s = self.lock();
        s.enter(api)?;
        let limits = s
            .instances
            .get(instance_id)
            .ok_or_else(|| not_found(api, "InvalidInstanceID.NotFound", instance_id))?
            .instance_type;
        let e = s.eni(api, eni)?;
        if e.iface.attachment.is_some() {
            return Err(CloudError::from_code(
                api,
                "InvalidParameterValue",
                &format!("{eni} is already attached"),
            ));
        }
        if eni::enis_on_card(limits, network_card_index).is_none() {
            return Err({
                CloudError::from_code(
                    api,
                    "InvalidParameterValue",
                    &format!("network card {network_card_index} does not exist"),
                )
            });
        }
        let attached: Vec<&Attachment> = s
            .enis
            .values()
            .filter_map(|e| e.iface.attachment.as_ref())
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
        let on_card = u32::try_from(on_card).unwrap_or(u32::MAX);
        eni::check_attachment(limits, network_card_index, on_card)
            .and_then(|()| eni::check_slots(limits, &eni.0, e.addresses.slots(), 0))
            .map_err(|e| ec2_error(api, &e))?;
        let id = s.id("eni-attach");
        let e = &mut s.enis.get_mut(eni).expect("checked above").iface;
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
        let mut s = self.lock();
        s.enter(api)?;
        let e = s
            .enis
            .get_mut(eni)
            .ok_or_else(|| not_found(api, "InvalidNetworkInterfaceID.NotFound", &eni.0))?;
        match e.iface.attachment.as_mut() {
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
        let mut s = self.lock();
        s.enter(api)?;
        let e = s
            .enis
            .values_mut()
            .map(|e| &mut e.iface)
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
        let mut s = self.lock();
        s.enter(api)?;
        let e = s.eni(api, eni)?;
        if e.iface.attachment.is_some() {
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
        self.lock().change(
            "AssignPrivateIpAddresses",
            eni,
            |held, limits, subnet| match limits {
                Some(l) => held.assign_ips(l, &eni.0, subnet, Placement::Lowest, count),
                None => held.add_ips(subnet, Placement::Lowest, count),
            },
        )
    }

    async fn assign_prefixes(&self, eni: &EniId, count: u32) -> Result<Vec<Ipv4Network>> {
        self.lock().change(
            "AssignPrivateIpAddresses",
            eni,
            |held, limits, subnet| match limits {
                Some(l) => held.assign_prefixes(l, &eni.0, subnet, Placement::Lowest, count),
                None => held.add_prefixes(subnet, Placement::Lowest, count),
            },
        )
    }

    async fn unassign_private_ips(&self, eni: &EniId, ips: &[Ipv4Addr]) -> Result<()> {
        self.lock()
            .change("UnassignPrivateIpAddresses", eni, |held, _, subnet| {
                held.unassign_ips(&eni.0, subnet, ips)
            })
    }

    async fn unassign_prefixes(&self, eni: &EniId, prefixes: &[Ipv4Network]) -> Result<()> {
        self.lock()
            .change("UnassignPrivateIpAddresses", eni, |held, _, subnet| {
                held.unassign_prefixes(&eni.0, subnet, prefixes)
            })
    }

    async fn create_tags(
        &self,
        resources: &[String],
        tags: &BTreeMap<String, String>,
    ) -> Result<()> {
        let api = "CreateTags";
        let mut s = self.lock();
        s.enter(api)?;
        for r in resources {
            let id = EniId(r.clone());
            let e = s
                .enis
                .get_mut(&id)
                .ok_or_else(|| not_found(api, "InvalidNetworkInterfaceID.NotFound", r))?;
            e.iface
                .tags
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
        let attached: Vec<NetworkInterface> = s
            .enis
            .values()
            .map(FakeEni::view)
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
