//! The resource controller's EC2 calls: find, create and attach the trunk, create and
//! associate branches, disassociate and delete them. Errors come back as text naming the
//! action and EC2's code, for the state's `last_error`.

use std::collections::{BTreeSet, HashMap};

use aws_sdk_ec2::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_ec2::types::{
    Filter, NetworkInfo, NetworkInterfaceAttachment, NetworkInterfaceAttachmentChanges,
    NetworkInterfaceCreationType, NetworkInterfaceType, Reservation, ResourceType, Tag,
    TagSpecification, TrunkInterfaceAssociation,
};

use super::{Branch, NodeSpec};

/// Description of the trunk ENI (the resource controller's `trunk-eni`).
pub const TRUNK_DESCRIPTION: &str = "trunk-eni";
/// Description of a branch ENI (the resource controller's `branch-eni`).
pub const BRANCH_DESCRIPTION: &str = "branch-eni";
/// Tag naming the instance, on the trunk and on every branch.
pub const INSTANCE_TAG: &str = "node.k8s.amazonaws.com/instance_id";
/// Tag naming the trunk, on every branch.
pub const TRUNK_TAG: &str = "vpcresources.k8s.aws/trunk-eni-id";
/// Tag naming the VLAN id, on every branch.
pub const VLAN_TAG: &str = "vpcresources.k8s.aws/vlan-id";
/// The VLAN ids the resource controller hands out (its largest branch count is 120).
pub const VLAN_IDS: std::ops::RangeInclusive<u16> = 1..=120;

/// The trunk the branches go on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trunk {
    /// Its ENI id.
    pub id: String,
    /// Its subnet, where branches are created.
    pub subnet_id: String,
    /// That subnet's CIDR (the annotation's `subnetCidr`).
    pub subnet_cidr: String,
}

/// What deleting a branch came to.
#[derive(Debug)]
pub struct Deleted {
    /// The branch ENI is gone (deleted now, or already).
    pub gone: bool,
    /// What went wrong on the way, if anything (a failed disassociation does not stop the
    /// delete, as in the resource controller).
    pub error: Option<String>,
}

/// EC2 for one node.
pub struct Ec2 {
    sdk: aws_sdk_ec2::Client,
    node: NodeSpec,
    /// A trunk created but not attached yet: attached on the next try, never created twice.
    unattached_trunk: Option<String>,
    max_interfaces: Option<i32>,
    subnet_cidrs: HashMap<String, String>,
}

/// `action: Code: message`, or the SDK's whole error chain when EC2 did not answer.
fn failed<E, R>(action: &str, e: &SdkError<E, R>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match e.code() {
        Some(code) => format!("{action}: {code}: {}", e.message().unwrap_or_default()),
        None => format!("{action}: {}", DisplayErrorContext(e)),
    }
}

fn tag(key: &str, value: &str) -> Tag {
    Tag::builder().key(key).value(value).build()
}

impl Ec2 {
    /// EC2 through `sdk` for `node`.
    pub fn new(sdk: aws_sdk_ec2::Client, node: NodeSpec) -> Ec2 {
        Ec2 {
            sdk,
            node,
            unattached_trunk: None,
            max_interfaces: None,
            subnet_cidrs: HashMap::new(),
        }
    }

    fn groups(&self) -> Option<Vec<String>> {
        (!self.node.security_groups.is_empty()).then(|| self.node.security_groups.clone())
    }

    /// The instance's trunk: the attached one, adopted, else a new one attached at the highest
    /// free device index.
    pub async fn ensure_trunk(&mut self) -> Result<(Trunk, bool), String> {
        let attached = self
            .sdk
            .describe_network_interfaces()
            .filters(
                Filter::builder()
                    .name("attachment.instance-id")
                    .values(&self.node.instance_id)
                    .build(),
            )
            .send()
            .await
            .map_err(|e| failed("DescribeNetworkInterfaces", &e))?;
        let enis = attached.network_interfaces();
        if let Some(trunk) = enis
            .iter()
            .find(|n| n.interface_type() == Some(&NetworkInterfaceType::Trunk))
        {
            let id = trunk.network_interface_id().unwrap_or_default().to_owned();
            let subnet_id = trunk.subnet_id().unwrap_or_default().to_owned();
            let subnet_cidr = self.subnet_cidr(&subnet_id).await?;
            return Ok((
                Trunk {
                    id,
                    subnet_id,
                    subnet_cidr,
                },
                false,
            ));
        }
        let used: BTreeSet<i32> = enis
            .iter()
            .filter_map(|n| {
                n.attachment()
                    .and_then(NetworkInterfaceAttachment::device_index)
            })
            .collect();
        let max = self.max_interfaces().await?;
        let index = (0..max).rev().find(|i| !used.contains(i)).ok_or_else(|| {
            format!(
                "no free device index for a trunk ENI on {} (maximum {max}, in use {used:?})",
                self.node.instance_id
            )
        })?;
        let id = if let Some(id) = self.unattached_trunk.clone() {
            id
        } else {
            let id = self.create_trunk().await?;
            self.unattached_trunk = Some(id.clone());
            id
        };
        let attached = self
            .sdk
            .attach_network_interface()
            .network_interface_id(&id)
            .instance_id(&self.node.instance_id)
            .device_index(index)
            .send()
            .await
            .map_err(|e| failed(&format!("AttachNetworkInterface {id} at {index}"), &e))?;
        self.unattached_trunk = None;
        // As the resource controller does, so the trunk goes with the instance.
        if let Some(attachment) = attached.attachment_id()
            && let Err(e) = self
                .sdk
                .modify_network_interface_attribute()
                .network_interface_id(&id)
                .attachment(
                    NetworkInterfaceAttachmentChanges::builder()
                        .attachment_id(attachment)
                        .delete_on_termination(true)
                        .build(),
                )
                .send()
                .await
        {
            let what = format!("ModifyNetworkInterfaceAttribute {id} DeleteOnTermination");
            eprintln!("resource-controller: {} (ignored)", failed(&what, &e));
        }
        let subnet_id = self.node.subnet_id.clone();
        let subnet_cidr = self.subnet_cidr(&subnet_id).await?;
        Ok((
            Trunk {
                id,
                subnet_id,
                subnet_cidr,
            },
            true,
        ))
    }

    async fn create_trunk(&self) -> Result<String, String> {
        let created = self
            .sdk
            .create_network_interface()
            .subnet_id(&self.node.subnet_id)
            .set_groups(self.groups())
            .interface_type(NetworkInterfaceCreationType::Trunk)
            .description(TRUNK_DESCRIPTION)
            .tag_specifications(
                TagSpecification::builder()
                    .resource_type(ResourceType::NetworkInterface)
                    .tags(tag(INSTANCE_TAG, &self.node.instance_id))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| failed("CreateNetworkInterface (trunk)", &e))?;
        created
            .network_interface()
            .and_then(|n| n.network_interface_id())
            .map(str::to_owned)
            .ok_or_else(|| "CreateNetworkInterface (trunk): no ENI id in the answer".to_owned())
    }

    /// `MaximumNetworkInterfaces` of the instance's type (asked once).
    async fn max_interfaces(&mut self) -> Result<i32, String> {
        if let Some(max) = self.max_interfaces {
            return Ok(max);
        }
        let described = self
            .sdk
            .describe_instances()
            .instance_ids(&self.node.instance_id)
            .send()
            .await
            .map_err(|e| failed("DescribeInstances", &e))?;
        let instance_type = described
            .reservations()
            .iter()
            .flat_map(Reservation::instances)
            .find_map(|i| i.instance_type().cloned())
            .ok_or_else(|| format!("DescribeInstances: no type for {}", self.node.instance_id))?;
        let types = self
            .sdk
            .describe_instance_types()
            .instance_types(instance_type.clone())
            .send()
            .await
            .map_err(|e| failed("DescribeInstanceTypes", &e))?;
        let max = types
            .instance_types()
            .first()
            .and_then(|t| t.network_info())
            .and_then(NetworkInfo::maximum_network_interfaces)
            .ok_or_else(|| {
                format!(
                    "DescribeInstanceTypes: no MaximumNetworkInterfaces for {}",
                    instance_type.as_str()
                )
            })?;
        self.max_interfaces = Some(max);
        Ok(max)
    }

    /// A subnet's CIDR (asked once per subnet).
    async fn subnet_cidr(&mut self, subnet_id: &str) -> Result<String, String> {
        if let Some(cidr) = self.subnet_cidrs.get(subnet_id) {
            return Ok(cidr.clone());
        }
        let described = self
            .sdk
            .describe_subnets()
            .subnet_ids(subnet_id)
            .send()
            .await
            .map_err(|e| failed("DescribeSubnets", &e))?;
        let cidr = described
            .subnets()
            .first()
            .and_then(|s| s.cidr_block())
            .ok_or_else(|| format!("DescribeSubnets: no CIDR for {subnet_id}"))?
            .to_owned();
        self.subnet_cidrs.insert(subnet_id.to_owned(), cidr.clone());
        Ok(cidr)
    }

    /// The lowest VLAN id in [`VLAN_IDS`] that none of the trunk's associations uses.
    async fn free_vlan(&self, trunk: &str) -> Result<u16, String> {
        let mut used = BTreeSet::new();
        let mut next = None;
        loop {
            let page = self
                .sdk
                .describe_trunk_interface_associations()
                .filters(
                    Filter::builder()
                        .name("trunk-interface-association.trunk-interface-id")
                        .values(trunk)
                        .build(),
                )
                .max_results(255)
                .set_next_token(next)
                .send()
                .await
                .map_err(|e| failed("DescribeTrunkInterfaceAssociations", &e))?;
            used.extend(
                page.interface_associations()
                    .iter()
                    .filter_map(TrunkInterfaceAssociation::vlan_id),
            );
            next = page.next_token().map(str::to_owned);
            if next.is_none() {
                break;
            }
        }
        VLAN_IDS
            .into_iter()
            .find(|v| !used.contains(&i32::from(*v)))
            .ok_or_else(|| format!("no free VLAN id on trunk {trunk} (in use: {used:?})"))
    }

    /// A new branch ENI in the trunk's subnet, associated with the trunk at the lowest free
    /// VLAN id. A branch that cannot be associated is deleted again.
    pub async fn create_branch(&self, trunk: &Trunk) -> Result<Branch, String> {
        let vlan = self.free_vlan(&trunk.id).await?;
        let created = self
            .sdk
            .create_network_interface()
            .subnet_id(&trunk.subnet_id)
            .set_groups(self.groups())
            .interface_type(NetworkInterfaceCreationType::Branch)
            .description(BRANCH_DESCRIPTION)
            .tag_specifications(
                TagSpecification::builder()
                    .resource_type(ResourceType::NetworkInterface)
                    .tags(tag(TRUNK_TAG, &trunk.id))
                    .tags(tag(INSTANCE_TAG, &self.node.instance_id))
                    .tags(tag(VLAN_TAG, &vlan.to_string()))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| failed("CreateNetworkInterface (branch)", &e))?;
        let eni = created.network_interface();
        let field = |what: &str, v: Option<&str>| {
            v.map(str::to_owned)
                .ok_or_else(|| format!("CreateNetworkInterface (branch): no {what} in the answer"))
        };
        let eni_id = field("ENI id", eni.and_then(|n| n.network_interface_id()))?;
        let mac = field("MAC", eni.and_then(|n| n.mac_address()))?.to_lowercase();
        let ip = field("private IP", eni.and_then(|n| n.private_ip_address()))?;
        // The SDK fills in a ClientToken, kept across its own retries; the harness answers a
        // retry with the same token with the first answer.
        let associated = self
            .sdk
            .associate_trunk_interface()
            .branch_interface_id(&eni_id)
            .trunk_interface_id(&trunk.id)
            .vlan_id(i32::from(vlan))
            .send()
            .await;
        let association_id = match associated {
            Ok(out) => out
                .interface_association()
                .and_then(|a| a.association_id())
                .map(str::to_owned),
            Err(e) => {
                let error = failed(
                    &format!(
                        "AssociateTrunkInterface {eni_id} to {} VLAN {vlan}",
                        trunk.id
                    ),
                    &e,
                );
                if let Err(e) = self
                    .sdk
                    .delete_network_interface()
                    .network_interface_id(&eni_id)
                    .send()
                    .await
                {
                    eprintln!(
                        "resource-controller: {}",
                        failed(
                            &format!("DeleteNetworkInterface {eni_id} (unassociated)"),
                            &e
                        )
                    );
                }
                return Err(error);
            }
        };
        Ok(Branch {
            eni_id,
            mac,
            ip,
            vlan,
            association_id: association_id.unwrap_or_default(),
            subnet_cidr: trunk.subnet_cidr.clone(),
        })
    }

    /// DisassociateTrunkInterface, then DeleteNetworkInterface even when that failed (the
    /// resource controller's order since its PR #372). An association or ENI that is gone
    /// already counts as done.
    pub async fn delete_branch(&self, branch: &Branch) -> Deleted {
        let mut error = None;
        if !branch.association_id.is_empty()
            && let Err(e) = self
                .sdk
                .disassociate_trunk_interface()
                .association_id(&branch.association_id)
                .send()
                .await
            && e.code() != Some("InvalidAssociationID.NotFound")
        {
            error = Some(failed(
                &format!("DisassociateTrunkInterface {}", branch.association_id),
                &e,
            ));
        }
        let deleted = self
            .sdk
            .delete_network_interface()
            .network_interface_id(&branch.eni_id)
            .send()
            .await;
        match deleted {
            Ok(_) => Deleted { gone: true, error },
            Err(e) if e.code() == Some("InvalidNetworkInterfaceID.NotFound") => {
                Deleted { gone: true, error }
            }
            Err(e) => Deleted {
                gone: false,
                error: Some(failed(
                    &format!("DeleteNetworkInterface {}", branch.eni_id),
                    &e,
                )),
            },
        }
    }
}
