//! # eniplan-rpc
//!
//! The contract between the CNI plugin and ipamd: the gRPC service `rpc.CNIBackend`
//! (`AddNetwork`, `DelNetwork`) over a Unix socket, wire-compatible with the AWS VPC CNI's, so
//! that its `aws-cni` plugin (from v1.20.0 on) and `eniplan-cni` both talk to eniplan's ipamd.
//! The messages, client and server are generated from `proto/rpc.proto`; [`check_client_version`]
//! is the version policy both sides share.
#![allow(
    missing_docs,
    unreachable_pub,
    unused_qualifications,
    clippy::pedantic,
    clippy::nursery,
    reason = "generated code mirrors the proto"
)]

include!(concat!(env!("OUT_DIR"), "/rpc.rs"));

/// The socket the daemon serves and the plugin dials (as the VPC CNI's).
pub const DEFAULT_SOCKET: &str = "/var/run/aws-node/ipamd.sock";

/// The first VPC CNI plugin release whose replies this daemon's match: v1.20.0 changed
/// `AddNetworkReply` field 2 from a string to a repeated message.
pub const FIRST_VPC_CNI_VERSION: (u64, u64, u64) = (1, 20, 0);

/// Whether ipamd serves a plugin that sent `client` as its `ClientVersion`: `""` (unset, as the
/// VPC CNI's own builds send it), `own` (this release's eniplan-cni), or a VPC CNI release
/// `vX.Y.Z[-suffix]` from v1.20.0 on. The error says why a version is refused.
///
/// ```
/// use eniplan_rpc::check_client_version;
/// assert!(check_client_version("", "0.1.0").is_ok());
/// assert!(check_client_version("0.1.0", "0.1.0").is_ok());
/// assert!(check_client_version("v1.20.0", "0.1.0").is_ok());
/// assert!(check_client_version("v1.21.1-eksbuild.3", "0.1.0").is_ok());
/// assert!(check_client_version("v1.19.6", "0.1.0").unwrap_err().contains("v1.20.0"));
/// assert!(check_client_version("banana", "0.1.0").is_err());
/// ```
pub fn check_client_version(client: &str, own: &str) -> Result<(), String> {
    if client.is_empty() || client == own {
        return Ok(());
    }
    let (a, b, c) = FIRST_VPC_CNI_VERSION;
    match vpc_cni_version(client) {
        Some(v) if v >= FIRST_VPC_CNI_VERSION => Ok(()),
        Some(_) => Err(format!(
            "wrong client version {client:?}: VPC CNI plugins before v{a}.{b}.{c} read \
             AddNetworkReply field 2 as a string and would misread this daemon's replies; \
             upgrade the plugin to v{a}.{b}.{c} or later, or install eniplan-cni {own}"
        )),
        None => Err(format!(
            "wrong client version {client:?}: this daemon is {own:?} and serves eniplan-cni \
             {own} or the VPC CNI's plugin from v{a}.{b}.{c} on"
        )),
    }
}

/// `vX.Y.Z` with an optional `-suffix` (as in `v1.21.1-eksbuild.3`).
fn vpc_cni_version(s: &str) -> Option<(u64, u64, u64)> {
    let core = s.strip_prefix('v')?;
    let core = core.split_once(['-', '+']).map_or(core, |(c, _)| c);
    let mut parts = core.split('.').map(|p| p.parse::<u64>().ok());
    let v = (parts.next()??, parts.next()??, parts.next()??);
    parts.next().is_none().then_some(v)
}
