//! The plugin's side of branch-ENI pods: reading ipamd's answer, the result's `dummy`
//! interface that carries the VLAN (as the VPC CNI writes it, so DEL and CHECK need no ipamd
//! and pods wired by `aws-cni` are torn down too), and the host end's possible names.

use std::net::Ipv4Addr;

use eniplan_rpc::AddNetworkReply;

use crate::spec::{CniResult, Code, Error, Interface, NetConf, SgMode};
use crate::vlan::{self, Branch};
use crate::wire;

/// The branch in ipamd's ADD answer; `None` for a pool pod (`PodVlanId` 0).
///
/// # Errors
/// Code 100 when the answer names a VLAN but not a usable MAC, gateway or trunk link.
pub fn from_reply(reply: &AddNetworkReply, mode: SgMode) -> Result<Option<Branch>, Error> {
    if reply.pod_vlan_id == 0 {
        return Ok(None);
    }
    let bad = |what: String| {
        Error::new(
            Code::IpamdRefused,
            format!("ipamd's answer for a branch-ENI pod: {what}"),
        )
    };
    let vlan = u16::try_from(reply.pod_vlan_id)
        .ok()
        .filter(|v| (1..=4094).contains(v))
        .ok_or_else(|| bad(format!("VLAN {} is not 1 to 4094", reply.pod_vlan_id)))?;
    let gateway: Ipv4Addr = reply.pod_eni_subnet_gw.parse().map_err(|_| {
        bad(format!(
            "gateway {:?} is not an IPv4 address",
            reply.pod_eni_subnet_gw
        ))
    })?;
    let parent = u32::try_from(reply.parent_if_index)
        .ok()
        .filter(|i| *i > 0)
        .ok_or_else(|| {
            bad(format!(
                "trunk link index {} is not a link",
                reply.parent_if_index
            ))
        })?;
    if eniplan_netlink::parse_mac(&reply.pod_eni_mac).is_none() {
        return Err(bad(format!(
            "MAC {:?} is not six hex octets",
            reply.pod_eni_mac
        )));
    }
    Ok(Some(Branch {
        vlan,
        mac: reply.pod_eni_mac.clone(),
        gateway,
        parent,
        mode,
    }))
}

/// The result's third interface for a branch pod: `dummy<hash>` whose `mac` is the VLAN id.
pub fn dummy(namespace: &str, pod: &str, vlan: u16) -> Interface {
    Interface {
        name: wire::host_veth_name("dummy", namespace, pod),
        mac: vlan.to_string(),
        sandbox: String::new(),
        mtu: None,
    }
}

/// The VLAN a previous result names in its `dummy` interface (a branch pod); `None` for a pool
/// pod (no such interface, or VLAN 0 as `aws-cni` writes for pool pods).
///
/// # Errors
/// Code 7 when the `dummy` interface's VLAN is not a number.
pub fn prev_vlan(prev: &CniResult) -> Result<Option<u16>, Error> {
    let Some(dummy) = prev
        .interfaces
        .iter()
        .find(|i| i.name.starts_with("dummy") && i.sandbox.is_empty())
    else {
        return Ok(None);
    };
    let vlan: u16 = dummy.mac.parse().map_err(|_| {
        Error::new(
            Code::InvalidConfig,
            format!(
                "prevResult: interface {} should carry a VLAN id, not {:?}",
                dummy.name, dummy.mac
            ),
        )
    })?;
    Ok((vlan != 0).then_some(vlan))
}

/// The names the host end of a branch pod can have: the one a previous result names, then the
/// strict and the standard mode's (the mode may have changed since ADD).
pub fn host_veths(
    conf: &NetConf,
    prev: Option<&CniResult>,
    namespace: &str,
    pod: &str,
) -> Vec<String> {
    let mut names: Vec<String> = prev
        .and_then(|p| p.interfaces.first())
        .filter(|i| i.sandbox.is_empty())
        .map(|i| i.name.clone())
        .into_iter()
        .collect();
    for mode in [SgMode::Strict, SgMode::Standard] {
        let name = wire::host_veth_name(vlan::veth_prefix(mode, &conf.veth_prefix), namespace, pod);
        if !names.contains(&name) {
            names.push(name);
        }
    }
    names
}

/// Removes a branch pod's node side: [`vlan::del`] for the first name, the other possible
/// host ends after it.
///
/// # Errors
/// Code 101 when something that exists cannot be removed.
pub async fn teardown(
    host: &rtnetlink::Handle,
    names: &[String],
    ip: Option<Ipv4Addr>,
    vlan: u16,
) -> Result<(), Error> {
    let Some((first, others)) = names.split_first() else {
        return Ok(());
    };
    vlan::del(host, first, ip, vlan).await?;
    for name in others {
        wire::del(host, name, None).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(vlan: i32, mac: &str, gw: &str, parent: i32) -> AddNetworkReply {
        AddNetworkReply {
            success: true,
            pod_vlan_id: vlan,
            pod_eni_mac: mac.to_owned(),
            pod_eni_subnet_gw: gw.to_owned(),
            parent_if_index: parent,
            ..AddNetworkReply::default()
        }
    }

    #[test]
    fn a_pool_answer_is_no_branch_and_a_branch_answer_is_checked_field_by_field() {
        assert_eq!(
            from_reply(&reply(0, "", "", 0), SgMode::Strict).unwrap(),
            None
        );
        let b = from_reply(
            &reply(7, "0e:5f:12:34:56:78", "10.0.96.1", 3),
            SgMode::Standard,
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            (b.vlan, b.parent, b.gateway.to_string()),
            (7, 3, "10.0.96.1".to_owned())
        );
        for (r, what) in [
            (
                reply(5000, "0e:5f:12:34:56:78", "10.0.96.1", 3),
                "VLAN 5000",
            ),
            (reply(7, "0e:5f", "10.0.96.1", 3), "MAC \"0e:5f\""),
            (reply(7, "0e:5f:12:34:56:78", "", 3), "gateway \"\""),
            (
                reply(7, "0e:5f:12:34:56:78", "10.0.96.1", 0),
                "trunk link index 0",
            ),
        ] {
            let e = from_reply(&r, SgMode::Strict).unwrap_err();
            assert_eq!(e.code, Code::IpamdRefused);
            assert!(e.msg.contains(what), "{}", e.msg);
        }
    }

    #[test]
    fn the_dummy_interface_carries_the_vlan_both_ways() {
        let prev = CniResult {
            interfaces: vec![
                Interface {
                    name: "vlan0123456789a".into(),
                    mac: String::new(),
                    sandbox: String::new(),
                    mtu: None,
                },
                dummy("shop", "web", 42),
            ],
            ips: Vec::new(),
            routes: Vec::new(),
        };
        assert_eq!(prev_vlan(&prev).unwrap(), Some(42));
        // aws-cni's pool pods carry VLAN 0 in it: not a branch pod.
        let mut pool = prev.clone();
        pool.interfaces[1].mac = "0".into();
        assert_eq!(prev_vlan(&pool).unwrap(), None);
        pool.interfaces[1].mac = "seven".into();
        assert_eq!(prev_vlan(&pool).unwrap_err().code, Code::InvalidConfig);
    }
}
