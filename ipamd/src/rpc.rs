//! The CNI-facing gRPC API, wire-compatible with the AWS VPC CNI's `rpc.CNIBackend` (field
//! numbers as in its `rpc/rpc.proto`), so its `aws-cni` plugin and eniplan's plugin can both talk
//! to this daemon. Messages are written out by hand (prost derive); `build.rs` generates the
//! service plumbing. `docs/ipamd.md` lists the schema.
#![allow(
    missing_docs,
    reason = "generated service code and wire structs mirror the proto"
)]
#![allow(clippy::pedantic, reason = "generated code")]
#![allow(unused_qualifications, reason = "generated code")]

/// `AddNetworkRequest`.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct AddNetworkRequest {
    #[prost(string, tag = "1")]
    pub k8s_pod_name: String,
    #[prost(string, tag = "2")]
    pub k8s_pod_namespace: String,
    #[prost(string, tag = "3")]
    pub k8s_pod_infra_container_id: String,
    #[prost(string, tag = "4")]
    pub netns: String,
    #[prost(string, tag = "5")]
    pub if_name: String,
    #[prost(string, tag = "6")]
    pub network_name: String,
    #[prost(string, tag = "7")]
    pub container_id: String,
    #[prost(string, tag = "8")]
    pub client_version: String,
    #[prost(bool, tag = "9")]
    pub requires_multi_nic_attachment: bool,
}

/// One address handed to a pod.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct IpAllocationMetadata {
    #[prost(string, tag = "1")]
    pub ipv4_addr: String,
    #[prost(string, tag = "2")]
    pub ipv6_addr: String,
    #[prost(int32, tag = "3")]
    pub device_number: i32,
    #[prost(int32, tag = "4")]
    pub route_table_id: i32,
}

/// `AddNetworkReply`.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct AddNetworkReply {
    #[prost(bool, tag = "1")]
    pub success: bool,
    #[prost(message, repeated, tag = "2")]
    pub ip_allocation_metadata: Vec<IpAllocationMetadata>,
    #[prost(bool, tag = "5")]
    pub use_external_snat: bool,
    #[prost(string, repeated, tag = "6")]
    pub vpc_v4_cidrs: Vec<String>,
    #[prost(int32, tag = "7")]
    pub pod_vlan_id: i32,
    #[prost(string, tag = "8")]
    pub pod_eni_mac: String,
    #[prost(string, tag = "9")]
    pub pod_eni_subnet_gw: String,
    #[prost(int32, tag = "10")]
    pub parent_if_index: i32,
    #[prost(string, repeated, tag = "12")]
    pub vpc_v6_cidrs: Vec<String>,
    #[prost(string, tag = "13")]
    pub network_policy_mode: String,
}

/// `DelNetworkRequest`.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct DelNetworkRequest {
    #[prost(string, tag = "1")]
    pub k8s_pod_name: String,
    #[prost(string, tag = "2")]
    pub k8s_pod_namespace: String,
    #[prost(string, tag = "3")]
    pub k8s_pod_infra_container_id: String,
    #[prost(string, tag = "5")]
    pub reason: String,
    #[prost(string, tag = "6")]
    pub if_name: String,
    #[prost(string, tag = "7")]
    pub network_name: String,
    #[prost(string, tag = "8")]
    pub container_id: String,
    #[prost(string, tag = "9")]
    pub client_version: String,
    #[prost(string, tag = "10")]
    pub k8s_pod_uid: String,
}

/// `DelNetworkReply`.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct DelNetworkReply {
    #[prost(bool, tag = "1")]
    pub success: bool,
    #[prost(message, repeated, tag = "2")]
    pub ip_allocation_metadata: Vec<IpAllocationMetadata>,
    #[prost(int32, tag = "4")]
    pub pod_vlan_id: i32,
    #[prost(string, tag = "6")]
    pub network_policy_mode: String,
}

include!(concat!(env!("OUT_DIR"), "/rpc.CNIBackend.rs"));
