//! # cloud
//!
//! EC2 and IMDS for eniplan, behind two async traits:
//!
//! * [`Ec2`] — every EC2 call ipamd and the planner make, with results converted to plain values
//!   ([`model`]) and errors classified once into [`CloudError`];
//! * [`Imds`] — the instance metadata service (IMDSv2), read through [`imds::identity`] and
//!   [`imds::interfaces`].
//!
//! Implementations: [`aws::AwsEc2`] and [`aws::AwsImds`] on the AWS SDK for Rust, and
//! [`fake::FakeEc2`] / [`fake::FakeImds`], a stateful in-memory EC2 built on the planner's subnet
//! model, with error, latency and throttling injection. [`Guarded`] wraps either with EC2-shaped
//! client-side token buckets and jittered retries. One contract test suite
//! (`cloud/tests/contract.rs`) runs against the fake and against the LocalStack harness (driven
//! by the dev-only `harness-client` crate).
#![deny(missing_docs)]

pub mod aws;
mod error;
pub mod fake;
mod guard;
pub mod imds;
pub mod model;

use std::collections::BTreeMap;
use std::future::Future;
use std::net::Ipv4Addr;

use ipnetwork::Ipv4Network;
use planner::pool::EniId;

pub use error::{CloudError, backoff};
pub use guard::{Guarded, Observer, RetryPolicy};
use model::{CreateEni, EniFilter, Instance, InstanceTypeInfo, NetworkInterface, SubnetInfo};

/// Shorthand.
pub type Result<T, E = CloudError> = std::result::Result<T, E>;

/// The EC2 API as eniplan uses it. Every method is one EC2 action (paginated ones return every
/// page); names follow the action.
pub trait Ec2: Send + Sync {
    /// DescribeInstances for these ids.
    fn describe_instances(
        &self,
        ids: &[String],
    ) -> impl Future<Output = Result<Vec<Instance>>> + Send;
    /// DescribeInstanceTypes for these names.
    fn describe_instance_types(
        &self,
        names: &[String],
    ) -> impl Future<Output = Result<Vec<InstanceTypeInfo>>> + Send;
    /// DescribeSubnets for these ids.
    fn describe_subnets(
        &self,
        ids: &[String],
    ) -> impl Future<Output = Result<Vec<SubnetInfo>>> + Send;
    /// DescribeNetworkInterfaces with filters, every page.
    fn describe_network_interfaces(
        &self,
        filter: &EniFilter,
    ) -> impl Future<Output = Result<Vec<NetworkInterface>>> + Send;
    /// CreateNetworkInterface.
    fn create_network_interface(
        &self,
        request: &CreateEni,
    ) -> impl Future<Output = Result<NetworkInterface>> + Send;
    /// AttachNetworkInterface; returns the attachment id.
    fn attach_network_interface(
        &self,
        eni: &EniId,
        instance_id: &str,
        device_index: u32,
        network_card_index: u32,
    ) -> impl Future<Output = Result<String>> + Send;
    /// ModifyNetworkInterfaceAttribute `Attachment.DeleteOnTermination`.
    fn set_delete_on_termination(
        &self,
        eni: &EniId,
        attachment_id: &str,
        delete: bool,
    ) -> impl Future<Output = Result<()>> + Send;
    /// DetachNetworkInterface.
    fn detach_network_interface(
        &self,
        attachment_id: &str,
        force: bool,
    ) -> impl Future<Output = Result<()>> + Send;
    /// DeleteNetworkInterface.
    fn delete_network_interface(&self, eni: &EniId) -> impl Future<Output = Result<()>> + Send;
    /// AssignPrivateIpAddresses with `SecondaryPrivateIpAddressCount`; returns the new addresses.
    fn assign_private_ips(
        &self,
        eni: &EniId,
        count: u32,
    ) -> impl Future<Output = Result<Vec<Ipv4Addr>>> + Send;
    /// AssignPrivateIpAddresses with `Ipv4PrefixCount`; returns the new prefixes.
    fn assign_prefixes(
        &self,
        eni: &EniId,
        count: u32,
    ) -> impl Future<Output = Result<Vec<Ipv4Network>>> + Send;
    /// UnassignPrivateIpAddresses with `PrivateIpAddresses`.
    fn unassign_private_ips(
        &self,
        eni: &EniId,
        ips: &[Ipv4Addr],
    ) -> impl Future<Output = Result<()>> + Send;
    /// UnassignPrivateIpAddresses with `Ipv4Prefixes`.
    fn unassign_prefixes(
        &self,
        eni: &EniId,
        prefixes: &[Ipv4Network],
    ) -> impl Future<Output = Result<()>> + Send;
    /// CreateTags.
    fn create_tags(
        &self,
        resources: &[String],
        tags: &BTreeMap<String, String>,
    ) -> impl Future<Output = Result<()>> + Send;
}

/// The instance metadata service: one GET of a metadata path under `/latest/`.
pub trait Imds: Send + Sync {
    /// The value at `path` (e.g. `meta-data/instance-id`); `None` when IMDS answers 404.
    fn get(&self, path: &str) -> impl Future<Output = Result<Option<String>>> + Send;
}

/// Implements [`Ec2`] for a pointer type by forwarding every call to the pointee.
macro_rules! forward_ec2 {
    ($(#[$doc:meta])* $ptr:ty) => {
        $(#[$doc])*
        impl<T: Ec2> Ec2 for $ptr {
            async fn describe_instances(&self, ids: &[String]) -> Result<Vec<Instance>> {
                (**self).describe_instances(ids).await
            }
            async fn describe_instance_types(&self, names: &[String]) -> Result<Vec<InstanceTypeInfo>> {
                (**self).describe_instance_types(names).await
            }
            async fn describe_subnets(&self, ids: &[String]) -> Result<Vec<SubnetInfo>> {
                (**self).describe_subnets(ids).await
            }
            async fn describe_network_interfaces(&self, filter: &EniFilter) -> Result<Vec<NetworkInterface>> {
                (**self).describe_network_interfaces(filter).await
            }
            async fn create_network_interface(&self, request: &CreateEni) -> Result<NetworkInterface> {
                (**self).create_network_interface(request).await
            }
            async fn attach_network_interface(&self, eni: &EniId, instance_id: &str, device_index: u32, network_card_index: u32) -> Result<String> {
                (**self).attach_network_interface(eni, instance_id, device_index, network_card_index).await
            }
            async fn set_delete_on_termination(&self, eni: &EniId, attachment_id: &str, delete: bool) -> Result<()> {
                (**self).set_delete_on_termination(eni, attachment_id, delete).await
            }
            async fn detach_network_interface(&self, attachment_id: &str, force: bool) -> Result<()> {
                (**self).detach_network_interface(attachment_id, force).await
            }
            async fn delete_network_interface(&self, eni: &EniId) -> Result<()> {
                (**self).delete_network_interface(eni).await
            }
            async fn assign_private_ips(&self, eni: &EniId, count: u32) -> Result<Vec<Ipv4Addr>> {
                (**self).assign_private_ips(eni, count).await
            }
            async fn assign_prefixes(&self, eni: &EniId, count: u32) -> Result<Vec<Ipv4Network>> {
                (**self).assign_prefixes(eni, count).await
            }
            async fn unassign_private_ips(&self, eni: &EniId, ips: &[Ipv4Addr]) -> Result<()> {
                (**self).unassign_private_ips(eni, ips).await
            }
            async fn unassign_prefixes(&self, eni: &EniId, prefixes: &[Ipv4Network]) -> Result<()> {
                (**self).unassign_prefixes(eni, prefixes).await
            }
            async fn create_tags(&self, resources: &[String], tags: &BTreeMap<String, String>) -> Result<()> {
                (**self).create_tags(resources, tags).await
            }
        }
    };
}

forward_ec2!(
    /// A shared reference to an [`Ec2`] is one too (so [`Guarded`] can wrap a borrowed client).
    &T
);
forward_ec2!(
    /// An `Arc` of an [`Ec2`] is one too (the daemon shares one client between tasks).
    std::sync::Arc<T>
);
