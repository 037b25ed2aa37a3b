//! What ADD builds on the node and in the pod, and how DEL and CHECK find it again, over
//! rtnetlink (no `ip` or `sysctl` processes). The layout is the VPC CNI's, so operators'
//! commands carry over (`docs/cni.md`):
//!
//! * a veth pair: the host end `<vethPrefix><11 hex of sha1("<namespace>.<pod>")>`, the pod end
//!   `CNI_IFNAME`, both at the configured MTU;
//! * in the pod: the address as a `/32`, a link route to the gateway 169.254.1.1, the default
//!   route via it, and a permanent neighbour entry for it with the host end's MAC;
//! * on the node: a `/32` route to the pod through the host end (main table), a rule at
//!   priority 512 sending traffic *to* the pod to the main table and, when the address is on a
//!   secondary ENI, a rule at priority 1536 sending traffic *from* the pod to that ENI's table.
//!
//! DEL and CHECK find everything from the kernel (the host end by name, the pod address by the
//! host route through it, the rules by that address), so DEL works without `prevResult` and
//! after ipamd has restarted.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use eniplan_netlink::{
    ENODEV, add_source_rule, is_exists, is_gone, link_mac, parse_mac, route_destination, route_oif,
    rule_priority, rule_table,
};
use futures::TryStreamExt as _;
use rtnetlink::packet_route::link::{InfoData, InfoVeth, LinkMessage};
use rtnetlink::packet_route::route::{RouteAddress, RouteAttribute, RouteMessage, RouteScope};
use rtnetlink::packet_route::rule::{RuleAction, RuleAttribute, RuleMessage};
use rtnetlink::{Handle, IpVersion, LinkMessageBuilder, LinkUnspec, LinkVeth, RouteMessageBuilder};
use sha1::{Digest as _, Sha1};

use crate::spec::{Code, Error};

/// The pod's gateway: link-local, answered by the host end (through the static neighbour).
pub const GATEWAY: Ipv4Addr = Ipv4Addr::new(169, 254, 1, 1);
/// The main routing table.
pub const MAIN_TABLE: u32 = 254;
/// Rule priority: traffic to a pod looks up the main table.
pub const TO_POD_PRIORITY: u32 = 512;
/// Rule priority: traffic from a secondary-ENI pod looks up its ENI's table.
pub const FROM_POD_PRIORITY: u32 = 1536;

/// The host end's name: the prefix and the first 11 hex digits of sha1("namespace.pod"), as the
/// VPC CNI names it.
///
/// ```
/// use eniplan_cni::wire::host_veth_name;
/// let name = host_veth_name("eni", "default", "web-0");
/// assert_eq!(name.len(), 14);
/// assert!(name.starts_with("eni"));
/// assert_eq!(name, host_veth_name("eni", "default", "web-0"));
/// assert_ne!(name, host_veth_name("eni", "default", "web-1"));
/// ```
pub fn host_veth_name(prefix: &str, namespace: &str, pod: &str) -> String {
    let digest = Sha1::digest(format!("{namespace}.{pod}").as_bytes());
    let hex = digest.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    });
    format!("{prefix}{}", &hex[..11])
}

/// What ADD is asked to build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The host end's name.
    pub host_veth: String,
    /// The pod end's name (`CNI_IFNAME`).
    pub pod_if: String,
    /// The pod's address.
    pub ip: Ipv4Addr,
    /// The route table of the address's ENI ([`MAIN_TABLE`] for the primary ENI).
    pub table: u32,
    /// MTU of both ends.
    pub mtu: u32,
}

/// What ADD built, for the result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Built {
    /// The host end's MAC.
    pub host_mac: String,
    /// The pod end's MAC.
    pub pod_mac: String,
}

fn wiring(what: &str, e: impl std::fmt::Display) -> Error {
    Error::new(Code::Wiring, format!("{what}: {e}"))
}

/// A netlink connection in the current network namespace, served by a task on the runtime.
///
/// # Errors
/// Code 101 when no netlink socket can be opened.
pub fn connect() -> Result<Handle, Error> {
    let (conn, handle, _) =
        rtnetlink::new_connection().map_err(|e| wiring("opening a netlink socket", e))?;
    tokio::spawn(conn);
    Ok(handle)
}

/// The calling thread's network namespace, to come back to.
///
/// # Errors
/// Code 5 when `/proc/self/ns/net` cannot be opened.
pub fn current_netns() -> Result<OwnedFd, Error> {
    std::fs::File::open("/proc/thread-self/ns/net")
        .map(OwnedFd::from)
        .map_err(|e| Error::new(Code::Io, format!("opening /proc/thread-self/ns/net: {e}")))
}

/// Opens the pod's namespace (`CNI_NETNS`).
///
/// # Errors
/// Code 3 (unknown container) when the path does not exist or is not a namespace.
pub fn open_netns(path: &str) -> Result<OwnedFd, Error> {
    let f = std::fs::File::open(path).map_err(|e| {
        Error::new(
            Code::UnknownContainer,
            format!("CNI_NETNS {path:?} cannot be opened: {e}"),
        )
    })?;
    Ok(OwnedFd::from(f))
}

/// A netlink connection inside `netns`: the socket is opened there (a socket keeps the
/// namespace it was created in) and the thread returns to `home`.
///
/// # Errors
/// Code 101 when the namespace cannot be entered.
pub fn connect_in(netns: &OwnedFd, home: &OwnedFd) -> Result<Handle, Error> {
    use nix::sched::{CloneFlags, setns};
    setns(netns.as_fd(), CloneFlags::CLONE_NEWNET)
        .map_err(|e| wiring("entering the pod's network namespace", e))?;
    let handle = connect();
    setns(home.as_fd(), CloneFlags::CLONE_NEWNET)
        .map_err(|e| wiring("returning to the node's network namespace", e))?;
    handle
}

/// The link named `name`, if there is one.
pub(crate) async fn link(handle: &Handle, name: &str) -> Result<Option<LinkMessage>, Error> {
    match handle
        .link()
        .get()
        .match_name(name.to_owned())
        .execute()
        .try_next()
        .await
    {
        Ok(link) => Ok(link),
        Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -ENODEV => Ok(None),
        Err(e) => Err(wiring(&format!("looking up link {name}"), e)),
    }
}

/// Builds everything in the module docs. A leftover host end of the same name (an ADD retried
/// after a failure) is removed first.
///
/// # Errors
/// Code 101 naming the step that failed; the caller undoes what was built with [`del`].
pub async fn add(
    host: &Handle,
    pod: &Handle,
    pod_ns: &OwnedFd,
    plan: &Plan,
) -> Result<Built, Error> {
    let (host_index, built) = veth(host, pod, pod_ns, plan).await?;
    wire_node(host, plan, host_index).await?;
    Ok(built)
}

/// The veth pair and the pod side (a leftover host end of the same name is removed first);
/// the host end's index and both MACs.
///
/// # Errors
/// Code 101 naming the step that failed.
pub(crate) async fn veth(
    host: &Handle,
    pod: &Handle,
    pod_ns: &OwnedFd,
    plan: &Plan,
) -> Result<(u32, Built), Error> {
    if let Some(old) = link(host, &plan.host_veth).await? {
        host.link()
            .del(old.header.index)
            .execute()
            .await
            .map_err(|e| wiring(&format!("removing the stale {}", plan.host_veth), e))?;
    }
    // The pod end is created directly in the pod's namespace under its final name.
    let peer = LinkMessageBuilder::<LinkUnspec>::new()
        .name(plan.pod_if.clone())
        .mtu(plan.mtu)
        .setns_by_fd(pod_ns.as_raw_fd())
        .build();
    let veth = LinkVeth::new(&plan.host_veth, &plan.pod_if)
        .mtu(plan.mtu)
        .set_info_data(InfoData::Veth(InfoVeth::Peer(peer)))
        .build();
    host.link().add(veth).execute().await.map_err(|e| {
        wiring(
            &format!("creating veth {} / {}", plan.host_veth, plan.pod_if),
            e,
        )
    })?;
    let host_link = link(host, &plan.host_veth)
        .await?
        .ok_or_else(|| wiring("the new host end", "not found"))?;
    let host_index = host_link.header.index;
    let host_mac = link_mac(&host_link);
    host.link()
        .set(LinkUnspec::new_with_index(host_index).up().build())
        .execute()
        .await
        .map_err(|e| wiring(&format!("setting {} up", plan.host_veth), e))?;
    let pod_mac = wire_pod(pod, plan, &host_mac).await?;
    Ok((host_index, Built { host_mac, pod_mac }))
}

/// The pod side: its end up with the address, the gateway's link route, the default route and
/// the gateway's permanent neighbour entry (the host end's MAC). Returns the pod end's MAC.
async fn wire_pod(pod: &Handle, plan: &Plan, host_mac: &str) -> Result<String, Error> {
    if let Some(lo) = link(pod, "lo").await? {
        pod.link()
            .set(LinkUnspec::new_with_index(lo.header.index).up().build())
            .execute()
            .await
            .map_err(|e| wiring("setting the pod's lo up", e))?;
    }
    let pod_link = link(pod, &plan.pod_if)
        .await?
        .ok_or_else(|| wiring(&format!("the pod end {}", plan.pod_if), "not found"))?;
    let pod_index = pod_link.header.index;
    let pod_mac = link_mac(&pod_link);
    pod.link()
        .set(LinkUnspec::new_with_index(pod_index).up().build())
        .execute()
        .await
        .map_err(|e| wiring(&format!("setting {} up", plan.pod_if), e))?;
    pod.address()
        .add(pod_index, IpAddr::V4(plan.ip), 32)
        .execute()
        .await
        .map_err(|e| wiring(&format!("adding {}/32 to {}", plan.ip, plan.pod_if), e))?;
    let gw_route = RouteMessageBuilder::<Ipv4Addr>::new()
        .destination_prefix(GATEWAY, 32)
        .output_interface(pod_index)
        .scope(RouteScope::Link)
        .build();
    pod.route()
        .add(gw_route)
        .execute()
        .await
        .map_err(|e| wiring("adding the pod's route to 169.254.1.1", e))?;
    let default = RouteMessageBuilder::<Ipv4Addr>::new()
        .gateway(GATEWAY)
        .output_interface(pod_index)
        .build();
    pod.route()
        .add(default)
        .execute()
        .await
        .map_err(|e| wiring("adding the pod's default route", e))?;
    let mac = parse_mac(host_mac).ok_or_else(|| {
        wiring(
            "reading the host end's MAC",
            format!("{host_mac:?} is not six hex octets"),
        )
    })?;
    pod.neighbours()
        .add(pod_index, IpAddr::V4(GATEWAY))
        .link_layer_address(&mac)
        .execute()
        .await
        .map_err(|e| wiring("adding the pod's neighbour entry for 169.254.1.1", e))?;
    Ok(pod_mac)
}

/// The node's `/32` route to the pod `ip` through the host end `host_index`, in `table`.
///
/// # Errors
/// Code 101.
pub(crate) async fn route_to_pod(
    host: &Handle,
    ip: Ipv4Addr,
    host_index: u32,
    table: u32,
) -> Result<(), Error> {
    let to_pod = RouteMessageBuilder::<Ipv4Addr>::new()
        .destination_prefix(ip, 32)
        .output_interface(host_index)
        .scope(RouteScope::Link)
        .table_id(table)
        .build();
    host.route()
        .add(to_pod)
        .replace()
        .execute()
        .await
        .map_err(|e| {
            wiring(
                &format!("adding the node's route to {ip} in table {table}"),
                e,
            )
        })
}

/// The node side: the `/32` route through the host end and the rules.
pub(crate) async fn wire_node(host: &Handle, plan: &Plan, host_index: u32) -> Result<(), Error> {
    route_to_pod(host, plan.ip, host_index, MAIN_TABLE).await?;
    // An ADD repeated for the same pod finds its rule there already.
    match host
        .rule()
        .add()
        .v4()
        .destination_prefix(plan.ip, 32)
        .table_id(MAIN_TABLE)
        .action(RuleAction::ToTable)
        .priority(TO_POD_PRIORITY)
        .execute()
        .await
    {
        Ok(()) => {}
        Err(e) if is_exists(&e) => {}
        Err(e) => {
            return Err(wiring(
                &format!("adding rule {TO_POD_PRIORITY} to {}", plan.ip),
                e,
            ));
        }
    }
    if plan.table != MAIN_TABLE {
        match add_source_rule(host, plan.ip, plan.table, FROM_POD_PRIORITY).await {
            Ok(()) => {}
            Err(e) if is_exists(&e) => {}
            Err(e) => {
                return Err(wiring(
                    &format!(
                        "adding rule {FROM_POD_PRIORITY} from {} to table {}",
                        plan.ip, plan.table
                    ),
                    e,
                ));
            }
        }
    }
    Ok(())
}

/// The node's IPv4 `/32` routes (the ones ADD writes are among them).
async fn host_routes(host: &Handle) -> Result<Vec<RouteMessage>, Error> {
    let routes: Vec<RouteMessage> = host
        .route()
        .get(RouteMessageBuilder::<Ipv4Addr>::new().build())
        .execute()
        .try_collect()
        .await
        .map_err(|e| wiring("listing the node's routes", e))?;
    Ok(routes
        .into_iter()
        .filter(|r| r.header.destination_prefix_length == 32)
        .collect())
}

/// The pod addresses routed through the host end `index` (its `/32` routes in the main table).
async fn pod_addresses(host: &Handle, index: u32) -> Result<Vec<Ipv4Addr>, Error> {
    Ok(host_routes(host)
        .await?
        .iter()
        .filter(|r| r.attributes.contains(&RouteAttribute::Oif(index)))
        .filter_map(route_destination)
        .collect())
}

/// Every IPv4 rule of the node.
pub(crate) async fn node_rules(host: &Handle) -> Result<Vec<RuleMessage>, Error> {
    host.rule()
        .get(IpVersion::V4)
        .execute()
        .try_collect()
        .await
        .map_err(|e| wiring("listing the node's rules", e))
}

/// The node's rules for `ip`: priority 512 to it, 1536 from it.
async fn rules_of(host: &Handle, ip: Ipv4Addr) -> Result<Vec<RuleMessage>, Error> {
    Ok(node_rules(host)
        .await?
        .into_iter()
        .filter(|r| {
            let prio = rule_priority(r);
            let to = r
                .attributes
                .contains(&RuleAttribute::Destination(IpAddr::V4(ip)))
                && r.header.dst_len == 32;
            let from = r
                .attributes
                .contains(&RuleAttribute::Source(IpAddr::V4(ip)))
                && r.header.src_len == 32;
            (prio == Some(TO_POD_PRIORITY) && to) || (prio == Some(FROM_POD_PRIORITY) && from)
        })
        .collect())
}

/// Removes what ADD built for the host end `host_veth` (and for `extra`, an address a
/// `prevResult` or ipamd named): the rules of its addresses, their routes, and the veth pair
/// (deleting the host end deletes the pod end). What is already gone is not an error.
///
/// # Errors
/// Code 101 when something that exists cannot be removed.
pub async fn del(host: &Handle, host_veth: &str, extra: Option<Ipv4Addr>) -> Result<(), Error> {
    let link = link(host, host_veth).await?;
    remove(host, link, extra).await
}

/// Removes what ADD built for the pod address `ip` when the host end's name is not known (GC):
/// the host end is the link its `/32` route goes through.
///
/// # Errors
/// As [`del`].
pub async fn del_address(host: &Handle, ip: Ipv4Addr) -> Result<(), Error> {
    let link = match route_device(host, ip).await? {
        Some(index) => host
            .link()
            .get()
            .match_index(index)
            .execute()
            .try_next()
            .await
            .ok()
            .flatten(),
        None => None,
    };
    remove(host, link, Some(ip)).await
}

/// [`del`]'s work, for the host end `link` if it exists.
async fn remove(
    host: &Handle,
    link: Option<LinkMessage>,
    extra: Option<Ipv4Addr>,
) -> Result<(), Error> {
    let mut ips = match &link {
        Some(l) => pod_addresses(host, l.header.index).await?,
        None => Vec::new(),
    };
    ips.extend(extra.filter(|ip| !ips.contains(ip)));
    for ip in ips {
        for rule in rules_of(host, ip).await? {
            match host.rule().del(rule).execute().await {
                Ok(()) => {}
                Err(e) if is_gone(&e) => {}
                Err(e) => return Err(wiring(&format!("removing a rule of {ip}"), e)),
            }
        }
    }
    if let Some(l) = link {
        match host.link().del(l.header.index).execute().await {
            Ok(()) => {}
            Err(e) if is_gone(&e) => {}
            Err(e) => {
                return Err(wiring(&format!("removing link {}", l.header.index), e));
            }
        }
    }
    Ok(())
}

/// The link the node's `/32` route to `ip` goes through.
pub(crate) async fn route_device(host: &Handle, ip: Ipv4Addr) -> Result<Option<u32>, Error> {
    Ok(host_routes(host)
        .await?
        .iter()
        .filter(|r| {
            r.attributes
                .contains(&RouteAttribute::Destination(RouteAddress::Inet(ip)))
        })
        .find_map(route_oif))
}

/// CHECK: everything ADD built for `plan` is there; the error names the first difference.
///
/// # Errors
/// Code 102 naming what is missing or different.
pub async fn check(host: &Handle, pod: &Handle, plan: &Plan) -> Result<(), Error> {
    let differs = |what: String| Error::new(Code::CheckFailed, what);
    let host_index = check_veth(host, pod, plan).await?;
    if route_device(host, plan.ip).await? != Some(host_index) {
        return Err(differs(format!(
            "the node's route to {} does not go through {}",
            plan.ip, plan.host_veth
        )));
    }
    check_rules(host, plan).await
}

/// CHECK of the veth pair and the pod side; the host end's index.
///
/// # Errors
/// Code 102 naming what is missing or different.
pub(crate) async fn check_veth(host: &Handle, pod: &Handle, plan: &Plan) -> Result<u32, Error> {
    let differs = |what: String| Error::new(Code::CheckFailed, what);
    let host_link = link(host, &plan.host_veth)
        .await?
        .ok_or_else(|| differs(format!("the node has no link {}", plan.host_veth)))?;
    let pod_link = link(pod, &plan.pod_if)
        .await?
        .ok_or_else(|| differs(format!("the pod has no interface {}", plan.pod_if)))?;
    let addresses: Vec<_> = pod
        .address()
        .get()
        .set_link_index_filter(pod_link.header.index)
        .execute()
        .try_collect()
        .await
        .map_err(|e| wiring("listing the pod's addresses", e))?;
    let has_ip = addresses.iter().any(|a| {
        a.header.prefix_len == 32
            && a.attributes.iter().any(|x| {
                matches!(x, rtnetlink::packet_route::address::AddressAttribute::Local(IpAddr::V4(v)) if *v == plan.ip)
            })
    });
    if !has_ip {
        return Err(differs(format!(
            "{} does not hold {}/32",
            plan.pod_if, plan.ip
        )));
    }
    let pod_routes: Vec<RouteMessage> = pod
        .route()
        .get(RouteMessageBuilder::<Ipv4Addr>::new().build())
        .execute()
        .try_collect()
        .await
        .map_err(|e| wiring("listing the pod's routes", e))?;
    let default_via_gateway = pod_routes.iter().any(|r| {
        r.header.destination_prefix_length == 0
            && r.attributes
                .contains(&RouteAttribute::Gateway(RouteAddress::Inet(GATEWAY)))
    });
    if !default_via_gateway {
        return Err(differs(format!(
            "the pod has no default route via {GATEWAY}"
        )));
    }
    Ok(host_link.header.index)
}

/// CHECK of the rules of `plan.ip`: 512 to it, and 1536 from it to its table.
///
/// # Errors
/// Code 102 naming the missing rule.
pub(crate) async fn check_rules(host: &Handle, plan: &Plan) -> Result<(), Error> {
    let differs = |what: String| Error::new(Code::CheckFailed, what);
    let rules = rules_of(host, plan.ip).await?;
    let has = |prio: u32, table: u32| {
        rules
            .iter()
            .any(|r| rule_priority(r) == Some(prio) && rule_table(r) == table)
    };
    if !has(TO_POD_PRIORITY, MAIN_TABLE) {
        return Err(differs(format!(
            "the node has no rule {TO_POD_PRIORITY} to {}",
            plan.ip
        )));
    }
    if plan.table != MAIN_TABLE && !has(FROM_POD_PRIORITY, plan.table) {
        return Err(differs(format!(
            "the node has no rule {FROM_POD_PRIORITY} from {} to table {}",
            plan.ip, plan.table
        )));
    }
    Ok(())
}
