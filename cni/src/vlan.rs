//! Branch-ENI pods (security groups for pods): the pod's traffic leaves the node tagged with
//! its branch ENI's VLAN on the trunk ENI's link, so the branch's security groups apply. The
//! layout is the VPC CNI's (`docs/cni.md`, "Branch-ENI pods"):
//!
//! * the veth pair and the pod side exactly as for a pool pod; the host end is named with the
//!   prefix `vlan` in strict mode (the conflist's `vethPrefix` in standard mode);
//! * a VLAN link `vlan.eth.<vlan>` on the trunk's link (`ParentIfIndex`) carrying the branch
//!   ENI's MAC, up, without an address; a leftover link of that name is replaced;
//! * route table `<vlan> + 100`: the subnet gateway on the VLAN link (scope link) and the
//!   default route via it;
//! * **strict**: the pod's `/32` through the host end in that table (not in main), and rules at
//!   priority 10 sending everything that comes in on the VLAN link or the host end to it: all
//!   of the pod's traffic, node-local too, passes the branch's security groups;
//! * **standard**: the pool pod's rules (512 to the pod → main, 1536 from the pod → the VLAN's
//!   table) and its `/32` in main: node-local traffic keeps working without the trunk.
//!
//! DEL removes the VLAN link (the kernel drops the table's routes with it), every priority-10
//! rule of the table, the pod's 512/1536 rules and the veth pair; both modes' pieces, since the
//! mode may have changed since ADD. Missing pieces are not errors.

use std::net::Ipv4Addr;
use std::os::fd::OwnedFd;

use eniplan_netlink::{is_exists, is_gone, parse_mac, rule_priority, rule_table};
use futures::TryStreamExt as _;
use rtnetlink::packet_route::route::RouteScope;
use rtnetlink::packet_route::rule::{RuleAction, RuleAttribute, RuleMessage};
use rtnetlink::{Handle, LinkUnspec, LinkVlan, RouteMessageBuilder};

use crate::spec::{Code, Error, SgMode};
use crate::wire::{self, Built, Plan};

/// Rule priority of the strict mode's interface rules (before the local table, which ipamd
/// moves to priority 20).
pub const VLAN_RULE_PRIORITY: u32 = 10;

/// What ipamd answered for a branch-ENI pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Branch {
    /// The VLAN id (1 to 4094).
    pub vlan: u16,
    /// The branch ENI's MAC.
    pub mac: String,
    /// The branch subnet's gateway.
    pub gateway: Ipv4Addr,
    /// The trunk's link on the node.
    pub parent: u32,
    /// `podSGEnforcingMode`.
    pub mode: SgMode,
}

/// The VLAN link's name.
///
/// ```
/// assert_eq!(eniplan_cni::vlan::link_name(7), "vlan.eth.7");
/// ```
pub fn link_name(vlan: u16) -> String {
    format!("vlan.eth.{vlan}")
}

/// The VLAN's route table: the VLAN id + 100 (101 to 4194, clear of the ENI tables).
///
/// ```
/// assert_eq!(eniplan_cni::vlan::table(7), 107);
/// ```
pub fn table(vlan: u16) -> u32 {
    u32::from(vlan) + 100
}

/// The host end's prefix: `vlan` in strict mode (ipamd's SNAT and connmark rules and network
/// policy agents recognise such pods by it), the conflist's in standard mode.
pub fn veth_prefix(mode: SgMode, configured: &str) -> &str {
    match mode {
        SgMode::Strict => "vlan",
        SgMode::Standard => configured,
    }
}

fn wiring(what: &str, e: impl std::fmt::Display) -> Error {
    Error::new(Code::Wiring, format!("{what}: {e}"))
}

/// Builds everything in the module docs for `plan` (whose `table` is ignored: the VLAN's is
/// used).
///
/// # Errors
/// Code 101 naming the step that failed; the caller undoes what was built with [`del`].
pub async fn add(
    host: &Handle,
    pod: &Handle,
    pod_ns: &OwnedFd,
    plan: &Plan,
    branch: &Branch,
) -> Result<Built, Error> {
    let (host_index, built) = wire::veth(host, pod, pod_ns, plan).await?;
    // Rules a previous pod left on a host end of the same name (the VPC CNI purges them too).
    for rule in vlan_rules(host, |r| iif(r) == Some(plan.host_veth.as_str())).await? {
        delete_rule(host, rule).await?;
    }
    let vlan_index = vlan_link(host, branch).await?;
    let t = table(branch.vlan);
    let name = link_name(branch.vlan);
    let gw_route = RouteMessageBuilder::<Ipv4Addr>::new()
        .destination_prefix(branch.gateway, 32)
        .output_interface(vlan_index)
        .scope(RouteScope::Link)
        .table_id(t)
        .build();
    host.route()
        .add(gw_route)
        .replace()
        .execute()
        .await
        .map_err(|e| {
            wiring(
                &format!("adding {} dev {name} to table {t}", branch.gateway),
                e,
            )
        })?;
    let default = RouteMessageBuilder::<Ipv4Addr>::new()
        .gateway(branch.gateway)
        .output_interface(vlan_index)
        .table_id(t)
        .build();
    host.route()
        .add(default)
        .replace()
        .execute()
        .await
        .map_err(|e| wiring(&format!("adding the default route of table {t}"), e))?;
    match branch.mode {
        SgMode::Strict => {
            wire::route_to_pod(host, plan.ip, host_index, t).await?;
            for from in [name.as_str(), plan.host_veth.as_str()] {
                add_iif_rule(host, from, t).await?;
            }
        }
        SgMode::Standard => {
            let standard = Plan {
                table: t,
                ..plan.clone()
            };
            wire::wire_node(host, &standard, host_index).await?;
        }
    }
    Ok(built)
}

/// Creates `vlan.eth.<vlan>` on the trunk's link with the branch's MAC (replacing a leftover)
/// and sets it up; its index.
async fn vlan_link(host: &Handle, branch: &Branch) -> Result<u32, Error> {
    let name = link_name(branch.vlan);
    if let Some(old) = wire::link(host, &name).await? {
        host.link()
            .del(old.header.index)
            .execute()
            .await
            .map_err(|e| wiring(&format!("removing the stale {name}"), e))?;
    }
    let mac = parse_mac(&branch.mac).ok_or_else(|| {
        Error::new(
            Code::IpamdRefused,
            format!(
                "ipamd answered with branch MAC {:?}, not six hex octets",
                branch.mac
            ),
        )
    })?;
    let link = LinkVlan::new(&name, branch.parent, branch.vlan)
        .address(mac.to_vec())
        .build();
    host.link().add(link).execute().await.map_err(|e| {
        wiring(
            &format!(
                "creating {name} (VLAN {} on the trunk's link {}; the kernel needs 802.1Q, module 8021q)",
                branch.vlan, branch.parent
            ),
            e,
        )
    })?;
    let index = wire::link(host, &name)
        .await?
        .ok_or_else(|| wiring(&format!("the new {name}"), "not found"))?
        .header
        .index;
    host.link()
        .set(LinkUnspec::new_with_index(index).up().build())
        .execute()
        .await
        .map_err(|e| wiring(&format!("setting {name} up"), e))?;
    Ok(index)
}

async fn add_iif_rule(host: &Handle, from: &str, t: u32) -> Result<(), Error> {
    match host
        .rule()
        .add()
        .v4()
        .input_interface(from.to_owned())
        .table_id(t)
        .action(RuleAction::ToTable)
        .priority(VLAN_RULE_PRIORITY)
        .execute()
        .await
    {
        Ok(()) => Ok(()),
        Err(e) if is_exists(&e) => Ok(()),
        Err(e) => Err(wiring(
            &format!("adding rule {VLAN_RULE_PRIORITY} iif {from} to table {t}"),
            e,
        )),
    }
}

fn iif(r: &RuleMessage) -> Option<&str> {
    r.attributes.iter().find_map(|a| match a {
        RuleAttribute::Iifname(n) => Some(n.as_str()),
        _ => None,
    })
}

/// The node's priority-10 rules that `keep` selects.
async fn vlan_rules(
    host: &Handle,
    keep: impl Fn(&RuleMessage) -> bool,
) -> Result<Vec<RuleMessage>, Error> {
    Ok(wire::node_rules(host)
        .await?
        .into_iter()
        .filter(|r| rule_priority(r) == Some(VLAN_RULE_PRIORITY) && keep(r))
        .collect())
}

async fn delete_rule(host: &Handle, rule: RuleMessage) -> Result<(), Error> {
    match host.rule().del(rule).execute().await {
        Ok(()) => Ok(()),
        Err(e) if is_gone(&e) => Ok(()),
        Err(e) => Err(wiring(
            &format!("removing a priority-{VLAN_RULE_PRIORITY} rule"),
            e,
        )),
    }
}

/// Removes what [`add`] built for a branch pod on `vlan`: the VLAN link, the table's rules, the
/// pod's rules and the host end `host_veth` (with `ip`, the address ipamd or `prevResult`
/// named). What is already gone is not an error.
///
/// # Errors
/// Code 101 when something that exists cannot be removed.
pub async fn del(
    host: &Handle,
    host_veth: &str,
    ip: Option<Ipv4Addr>,
    vlan: u16,
) -> Result<(), Error> {
    let name = link_name(vlan);
    if let Some(l) = wire::link(host, &name).await? {
        match host.link().del(l.header.index).execute().await {
            Ok(()) => {}
            Err(e) if is_gone(&e) => {}
            Err(e) => return Err(wiring(&format!("removing {name}"), e)),
        }
    }
    let t = table(vlan);
    for rule in vlan_rules(host, |r| rule_table(r) == t).await? {
        delete_rule(host, rule).await?;
    }
    wire::del(host, host_veth, ip).await
}

/// CHECK: everything [`add`] built for `plan` and `vlan` in `mode` is there (the MAC and the
/// parent are not in `prevResult`, so the link is checked by name, kind of traffic and table).
///
/// # Errors
/// Code 102 naming what is missing or different.
pub async fn check(
    host: &Handle,
    pod: &Handle,
    plan: &Plan,
    vlan: u16,
    mode: SgMode,
) -> Result<(), Error> {
    let differs = |what: String| Error::new(Code::CheckFailed, what);
    let host_index = wire::check_veth(host, pod, plan).await?;
    let name = link_name(vlan);
    let vlan_link = wire::link(host, &name)
        .await?
        .ok_or_else(|| differs(format!("the node has no VLAN link {name}")))?;
    let t = table(vlan);
    let routes: Vec<_> = host
        .route()
        .get(RouteMessageBuilder::<Ipv4Addr>::new().table_id(t).build())
        .execute()
        .try_collect()
        .await
        .map_err(|e| wiring(&format!("listing table {t}"), e))?;
    let default_on_vlan = routes.iter().any(|r| {
        eniplan_netlink::route_table(r) == t
            && r.header.destination_prefix_length == 0
            && eniplan_netlink::route_oif(r) == Some(vlan_link.header.index)
    });
    if !default_on_vlan {
        return Err(differs(format!(
            "table {t} has no default route via {name}"
        )));
    }
    match mode {
        SgMode::Strict => {
            let to_pod = routes.iter().any(|r| {
                eniplan_netlink::route_table(r) == t
                    && eniplan_netlink::route_destination(r) == Some(plan.ip)
                    && eniplan_netlink::route_oif(r) == Some(host_index)
            });
            if !to_pod {
                return Err(differs(format!(
                    "table {t} has no route to {} through {}",
                    plan.ip, plan.host_veth
                )));
            }
            let rules = vlan_rules(host, |r| rule_table(r) == t).await?;
            for from in [name.as_str(), plan.host_veth.as_str()] {
                if !rules.iter().any(|r| iif(r) == Some(from)) {
                    return Err(differs(format!(
                        "the node has no rule {VLAN_RULE_PRIORITY} iif {from} to table {t}"
                    )));
                }
            }
            Ok(())
        }
        SgMode::Standard => {
            if wire::route_device(host, plan.ip).await? != Some(host_index) {
                return Err(differs(format!(
                    "the node's route to {} does not go through {}",
                    plan.ip, plan.host_veth
                )));
            }
            let standard = Plan {
                table: t,
                ..plan.clone()
            };
            wire::check_rules(host, &standard).await
        }
    }
}
