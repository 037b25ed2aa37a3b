//! The plugin's side of branch-ENI pods: reading ipamd's answer, the result's `dummy`
//! interface that carries the VLAN (as the VPC CNI writes it, so DEL and CHECK need no ipamd
//! and pods wired by `aws-cni` are torn down too), the host end's possible names, and the
//! record of each attachment that lets GC find branch pods (ipamd holds nothing for them).

use std::net::Ipv4Addr;
use std::path::PathBuf;

use eniplan_rpc::AddNetworkReply;
use serde::{Deserialize, Serialize};

use crate::spec::{Attachment, CniResult, Code, Env, Error, Interface, NetConf, SgMode};
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

/// A branch-ENI pod's attachment as ADD recorded it (`<stateDir>/branches/<network>/`), for
/// GC to tear down when the runtime no longer lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// `CNI_CONTAINERID`.
    pub container_id: String,
    /// `CNI_IFNAME`.
    pub ifname: String,
    /// The VLAN.
    pub vlan: u16,
    /// The pod's address.
    pub ip: Ipv4Addr,
    /// The host end's possible names ([`host_veths`]).
    pub host_veths: Vec<String>,
}

/// A name safe as one path component (container ids and interface names nearly always are).
fn component(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn records_dir(conf: &NetConf) -> PathBuf {
    PathBuf::from(&conf.state_dir)
        .join("branches")
        .join(component(&conf.name))
}

fn record_path(conf: &NetConf, container_id: &str, ifname: &str) -> PathBuf {
    records_dir(conf).join(format!(
        "{}_{}.json",
        component(container_id),
        component(ifname)
    ))
}

fn io(what: &str, path: &std::path::Path, e: impl std::fmt::Display) -> Error {
    Error::new(Code::Io, format!("{what} {}: {e}", path.display()))
        .details("the plugin's stateDir must be writable by the runtime (default /run/eniplan-cni)")
}

/// Records the branch pod `namespace/pod` ADD just wired for this attachment.
///
/// # Errors
/// Code 5 when the state directory cannot be written.
pub fn remember(
    conf: &NetConf,
    env: &Env,
    vlan: u16,
    ip: Ipv4Addr,
    (namespace, pod): (&str, &str),
) -> Result<(), Error> {
    record(
        conf,
        &Record {
            container_id: env.container_id.clone(),
            ifname: env.ifname.clone(),
            vlan,
            ip,
            host_veths: host_veths(conf, None, namespace, pod),
        },
    )
}

/// Writes `rec` whole (a temporary file renamed into place).
///
/// # Errors
/// Code 5 when the state directory cannot be written.
pub fn record(conf: &NetConf, rec: &Record) -> Result<(), Error> {
    let dir = records_dir(conf);
    std::fs::create_dir_all(&dir).map_err(|e| io("creating", &dir, e))?;
    let path = record_path(conf, &rec.container_id, &rec.ifname);
    let tmp = path.with_extension("tmp");
    let text = serde_json::to_vec(rec).expect("a record serialises");
    std::fs::write(&tmp, text).map_err(|e| io("writing", &tmp, e))?;
    std::fs::rename(&tmp, &path).map_err(|e| io("renaming into", &path, e))
}

/// The record of an attachment, if ADD wrote one.
pub fn recorded(conf: &NetConf, container_id: &str, ifname: &str) -> Option<Record> {
    serde_json::from_slice(&std::fs::read(record_path(conf, container_id, ifname)).ok()?).ok()
}

/// Drops the record of an attachment (none is fine).
pub fn forget(conf: &NetConf, container_id: &str, ifname: &str) {
    let _ = std::fs::remove_file(record_path(conf, container_id, ifname));
}

/// The recorded attachments of this network that `valid` does not list. A record that cannot be
/// read is skipped (and left for a person to look at); a missing directory is none.
pub fn stale(conf: &NetConf, valid: &[Attachment]) -> Vec<Record> {
    let Ok(entries) = std::fs::read_dir(records_dir(conf)) else {
        return Vec::new();
    };
    let mut out: Vec<Record> = entries
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
        .filter_map(|e| serde_json::from_slice(&std::fs::read(e.path()).ok()?).ok())
        .filter(|r: &Record| {
            !valid
                .iter()
                .any(|a| a.container_id == r.container_id && a.ifname == r.ifname)
        })
        .collect();
    out.sort_by(|a, b| a.container_id.cmp(&b.container_id));
    out
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
    fn records_survive_until_forgotten_and_gc_sees_only_the_unlisted() {
        let dir = std::env::temp_dir().join(format!("eniplan-records-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let conf = NetConf::parse(
            serde_json::json!({"cniVersion": "1.1.0", "name": "aws-cni", "type": "eniplan-cni",
                "stateDir": dir.display().to_string()})
            .to_string()
            .as_bytes(),
        )
        .unwrap();
        let rec = |id: &str, vlan| Record {
            container_id: id.into(),
            ifname: "eth0".into(),
            vlan,
            ip: Ipv4Addr::new(10, 0, 96, 23),
            host_veths: vec!["vlan0123456789a".into()],
        };
        record(&conf, &rec("c1", 7)).unwrap();
        record(&conf, &rec("c/2", 8)).unwrap();
        let listed = |id: &str| Attachment {
            container_id: id.into(),
            ifname: "eth0".into(),
        };
        assert_eq!(stale(&conf, &[listed("c1")]), [rec("c/2", 8)]);
        assert_eq!(stale(&conf, &[listed("c1"), listed("c/2")]), []);
        forget(&conf, "c1", "eth0");
        assert_eq!(stale(&conf, &[]), [rec("c/2", 8)]);
        std::fs::remove_dir_all(&dir).unwrap();
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
