//! ipamd's side of the node's datapath (the VPC CNI's `networkutils`): what the kernel needs
//! before a pod address on an ENI can carry traffic. The plugin wires each pod; this module wires
//! each ENI, once, when it is attached or when ipamd starts on a node that has it.
//!
//! For a secondary ENI (device N, route table N + 1):
//! * its link, found by MAC (waiting for it: EC2's hotplug takes a while), gets the MTU, is set
//!   up and gets the ENI's primary address with the subnet's prefix length; the main-table
//!   subnet route the kernel adds for that address is removed (the subnet is reached through
//!   the primary ENI, as on a fresh node);
//! * table N + 1 gets the subnet as a link route and the default route via the subnet's gateway
//!   (its base + 1);
//! * a rule at priority [`ENI_PRIMARY_PRIORITY`] sends traffic from the ENI's primary address to
//!   table N + 1.
//!
//! Releasing the ENI removes the rule and the table (the link goes with the detach).
//!
//! For the primary ENI: the loose reverse-path filter (`rp_filter=2`), the SNAT chain for traffic
//! leaving the VPC ([`snat`]) and the connmark rules that keep replies on the primary ENI.
//! Everything is checked before it is written, so a restart finds its own state and leaves it.

pub mod iptables;
pub mod snat;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Mutex;
use std::time::Duration;

use eniplan_netlink::{
    add_source_rule, is_exists, is_gone, link_mac, link_name, route_table, rule_priority,
    rule_table,
};
use futures::{StreamExt as _, TryStreamExt as _};
use ipnetwork::Ipv4Network;
use planner::pool::EniId;
use rtnetlink::packet_core::NetlinkPayload;
use rtnetlink::packet_route::address::AddressAttribute;
use rtnetlink::packet_route::link::{LinkAttribute, LinkMessage};
use rtnetlink::packet_route::route::{RouteMessage, RouteProtocol, RouteScope};
use rtnetlink::packet_route::rule::{RuleAction, RuleAttribute, RuleMessage};
use rtnetlink::packet_route::{AddressFamily, RouteNetlinkMessage};
use rtnetlink::{Handle, IpVersion, LinkUnspec, RouteMessageBuilder};
use serde::Serialize;

use crate::error::{Error, Result};

/// Rule priority: traffic from a secondary ENI's primary address looks up the ENI's table.
pub const ENI_PRIMARY_PRIORITY: u32 = 32765;
/// Rule priority: connection-marked traffic (replies to NodePort and SNATed connections) looks
/// up the main table, so it leaves through the primary ENI.
pub const CONNMARK_PRIORITY: u32 = 1024;
/// The main routing table.
pub const MAIN_TABLE: u32 = 254;
/// The local routing table.
const LOCAL_TABLE: u8 = 255;
/// Where the local table's rule goes with strict security groups for pods (after the VLAN
/// rules at 10), as the VPC CNI.
pub const LOCAL_RULE_PRIORITY: u32 = 20;
/// How long a new ENI's link may take to appear after EC2 attached it.
pub const LINK_WAIT: Duration = Duration::from_mins(1);
/// How long start-up waits for the link of an ENI EC2 already lists as attached; one still
/// missing is left to the reconcile passes.
pub const STARTUP_LINK_WAIT: Duration = Duration::from_secs(5);

/// `AWS_VPC_K8S_CNI_RANDOMIZESNAT`: how SNAT picks source ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum RandomizeSnat {
    /// `none`: the kernel's sequential choice.
    None,
    /// `hashrandom`: `--random`.
    HashRandom,
    /// `prng` (default): `--random-fully`.
    Prng,
}

/// Host networking settings (parsed by [`crate::config::Config::from_vars`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostConfig {
    /// `AWS_VPC_ENI_MTU` (default 9001): MTU of every ENI link.
    pub eni_mtu: u32,
    /// `AWS_VPC_K8S_CNI_VETHPREFIX` (default `eni`): the pods' host ends, for the connmark rules.
    pub veth_prefix: String,
    /// `AWS_VPC_K8S_CNI_EXTERNALSNAT`: no SNAT chain on the node.
    pub external_snat: bool,
    /// `AWS_VPC_K8S_CNI_EXCLUDE_SNAT_CIDRS`: destinations never SNATed besides the VPC's.
    pub exclude_snat_cidrs: Vec<Ipv4Network>,
    /// `AWS_VPC_K8S_CNI_RANDOMIZESNAT`.
    pub randomize_snat: RandomizeSnat,
    /// `AWS_VPC_CNI_NODE_PORT_SUPPORT` (default true): the NodePort connmark rules.
    pub node_port_support: bool,
    /// `AWS_VPC_K8S_CNI_CONNMARK` (default 0x80): the connection mark bit.
    pub connmark: u32,
    /// `ENIPLAN_IPTABLES_MODE` (default `auto`): the iptables backend written to.
    pub iptables_mode: iptables::Mode,
    /// `ENABLE_POD_ENI=true` with `POD_SECURITY_GROUP_ENFORCING_MODE=strict`: the local
    /// table's rule moves from priority 0 to 20, after the branch pods' VLAN rules (10), so that
    /// even their node-local traffic leaves through the trunk and its security groups.
    pub local_rule_after_vlans: bool,
}

/// One ENI as the host sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EniHost {
    /// The ENI.
    pub id: EniId,
    /// Its MAC (lower case), which names its link.
    pub mac: String,
    /// Device index (0 is the primary).
    pub device: u32,
    /// The ENI's primary address.
    pub primary_ip: Ipv4Addr,
    /// Its subnet.
    pub subnet: Ipv4Network,
}

impl EniHost {
    /// The ENI's route table: device + 1 (the primary uses main).
    pub fn table(&self) -> u32 {
        if self.device == 0 {
            MAIN_TABLE
        } else {
            self.device + 1
        }
    }

    /// The subnet's gateway: its base address + 1, as in every VPC subnet.
    ///
    /// ```
    /// # use ipamd::hostnet::EniHost;
    /// let eni = EniHost {
    ///     id: planner::pool::EniId("eni-1".into()),
    ///     mac: "02:00:00:00:00:01".into(),
    ///     device: 1,
    ///     primary_ip: "10.0.16.9".parse().unwrap(),
    ///     subnet: "10.0.16.0/20".parse().unwrap(),
    /// };
    /// assert_eq!(eni.gateway().to_string(), "10.0.16.1");
    /// assert_eq!(eni.table(), 2);
    /// ```
    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.subnet.network()).wrapping_add(1))
    }
}

fn failed(what: impl Into<String>) -> impl FnOnce(rtnetlink::Error) -> Error {
    let what = what.into();
    move |e| Error::HostNetwork {
        what,
        reason: e.to_string(),
    }
}

/// The node's host networking, over one netlink connection in ipamd's network namespace.
pub struct HostNet {
    handle: Handle,
    config: HostConfig,
    /// The ENIs set up so far, to undo on release.
    configured: Mutex<BTreeMap<EniId, EniHost>>,
}

impl std::fmt::Debug for HostNet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostNet")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl HostNet {
    /// Opens the netlink connection (its task runs on the current runtime).
    ///
    /// # Errors
    /// [`Error::HostNetwork`] when no netlink socket can be opened.
    pub fn connect(config: HostConfig) -> Result<HostNet> {
        let (conn, handle, _) = rtnetlink::new_connection().map_err(|e| Error::HostNetwork {
            what: "opening a netlink socket".into(),
            reason: e.to_string(),
        })?;
        tokio::spawn(conn);
        Ok(HostNet {
            handle,
            config,
            configured: Mutex::new(BTreeMap::new()),
        })
    }

    /// The settings.
    pub fn config(&self) -> &HostConfig {
        &self.config
    }

    /// The link whose MAC is `mac`, waiting up to `wait` for it to appear. The wait listens
    /// to the kernel's link notifications (subscribed before the first listing, so a link that
    /// appears in between is not missed) rather than polling.
    ///
    /// # Errors
    /// [`Error::HostNetwork`] when no such link appears in time.
    pub async fn link_by_mac(&self, mac: &str, wait: Duration) -> Result<LinkMessage> {
        let mut events = if wait.is_zero() {
            None
        } else {
            let (conn, _, messages) =
                rtnetlink::new_multicast_connection(&[rtnetlink::MulticastGroup::Link]).map_err(
                    |e| Error::HostNetwork {
                        what: "subscribing to link notifications".into(),
                        reason: e.to_string(),
                    },
                )?;
            Some((tokio::spawn(conn), messages))
        };
        let found = self.find_link(mac).await;
        let found = match (found, &mut events) {
            (Ok(None), Some((_, messages))) => {
                let appeared = async {
                    while let Some((message, _)) = messages.next().await {
                        if let NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(l)) =
                            message.payload
                            && link_mac(&l) == mac
                        {
                            return Some(l);
                        }
                    }
                    None
                };
                Ok(tokio::time::timeout(wait, appeared).await.ok().flatten())
            }
            (other, _) => other,
        };
        if let Some((task, _)) = events {
            task.abort();
        }
        found?.ok_or_else(|| Error::HostNetwork {
            what: format!("finding the link of MAC {mac}"),
            reason: format!(
                "no link has this MAC after {} s (is the ENI attached to this instance?)",
                wait.as_secs()
            ),
        })
    }

    /// The trunk ENI's link (security groups for pods), up with the ENI MTU: branch pods'
    /// VLAN links are made on it. Waits up to `wait` for EC2's hotplug. It gets no address and
    /// no route table of its own: each branch pod's VLAN has its table.
    ///
    /// # Errors
    /// [`Error::HostNetwork`] when the link does not appear or cannot be set up.
    pub async fn trunk_link(&self, mac: &str, wait: Duration) -> Result<u32> {
        let link = self.link_by_mac(mac, wait).await?;
        let index = link.header.index;
        let mtu = self.config.eni_mtu;
        let up = link
            .header
            .flags
            .contains(rtnetlink::packet_route::link::LinkFlags::Up);
        if !up || !link.attributes.contains(&LinkAttribute::Mtu(mtu)) {
            let name = link_name(&link);
            self.handle
                .link()
                .set(LinkUnspec::new_with_index(index).mtu(mtu).up().build())
                .execute()
                .await
                .map_err(failed(format!(
                    "setting the trunk link {name} up with MTU {mtu}"
                )))?;
        }
        Ok(index)
    }

    /// Moves the local table's rule from priority 0 to [`LOCAL_RULE_PRIORITY`] (the new one
    /// first, so local delivery never stops); done already is fine.
    async fn move_local_rule(&self) -> Result<()> {
        let local = |prio: u32| {
            let mut r = RuleMessage::default();
            r.header.family = AddressFamily::Inet;
            r.header.action = RuleAction::ToTable;
            r.header.table = LOCAL_TABLE;
            r.attributes.push(RuleAttribute::Priority(prio));
            r
        };
        let mut add = self.handle.rule().add().v4();
        *add.message_mut() = local(LOCAL_RULE_PRIORITY);
        match add.execute().await {
            Ok(()) => {}
            Err(e) if is_exists(&e) => {}
            Err(e) => {
                return Err(failed(format!(
                    "adding the local table's rule at priority {LOCAL_RULE_PRIORITY}"
                ))(e));
            }
        }
        match self.handle.rule().del(local(0)).execute().await {
            Ok(()) => {
                tracing::info!(
                    priority = LOCAL_RULE_PRIORITY,
                    "the local table's rule moved after the branch pods' VLAN rules"
                );
                Ok(())
            }
            Err(e) if is_gone(&e) => Ok(()),
            Err(e) => Err(failed("removing the local table's rule at priority 0")(e)),
        }
    }

    /// The link whose MAC is `mac` now, if any.
    async fn find_link(&self, mac: &str) -> Result<Option<LinkMessage>> {
        let links: Vec<LinkMessage> = self
            .handle
            .link()
            .get()
            .execute()
            .try_collect()
            .await
            .map_err(failed("listing links"))?;
        Ok(links.into_iter().find(|l| link_mac(l) == mac))
    }

    /// Sets up the primary ENI: `rp_filter=2` on its link, SNAT and connmark.
    ///
    /// # Errors
    /// [`Error::HostNetwork`] naming the step.
    pub async fn setup_primary(&self, primary: &EniHost, vpc_cidrs: &[Ipv4Network]) -> Result<()> {
        let link = self.link_by_mac(&primary.mac, Duration::ZERO).await?;
        let name = link_name(&link);
        let path = format!("/proc/sys/net/ipv4/conf/{name}/rp_filter");
        if std::fs::read_to_string(&path)
            .ok()
            .as_deref()
            .map(str::trim)
            != Some("2")
        {
            self.set_loose_rp_filter(link.header.index, &name).await?;
        }
        let plan = snat::Plan {
            primary_link: name.clone(),
            primary_ip: primary.primary_ip,
            vpc_cidrs: vpc_cidrs.to_vec(),
            config: self.config.clone(),
            iptables: iptables::Iptables::resolve(self.config.iptables_mode).await,
        };
        snat::apply(&plan).await?;
        let wanted = self.config.node_port_support || !self.config.external_snat;
        self.ensure_connmark_rule(wanted).await?;
        if self.config.local_rule_after_vlans {
            self.move_local_rule().await?;
        }
        tracing::info!(link = %name, external_snat = self.config.external_snat, "primary ENI set up");
        Ok(())
    }

    /// `rp_filter=2` on a link through rtnetlink (RTM_SETLINK carrying the link's IPv4 device
    /// configuration), not through `/proc/sys`: a container runtime mounts `/proc/sys` read-only
    /// in any unprivileged container, while this needs only `NET_ADMIN`.
    async fn set_loose_rp_filter(&self, index: u32, name: &str) -> Result<()> {
        use rtnetlink::packet_core::DefaultNla;
        use rtnetlink::packet_route::link::{AfSpecInet, AfSpecUnspec};
        /// `IFLA_INET_CONF` inside `IFLA_AF_SPEC`/`AF_INET`, and `IPV4_DEVCONF_RP_FILTER`.
        const IFLA_INET_CONF: u16 = 1;
        const IPV4_DEVCONF_RP_FILTER: u16 = 8;
        // On a set, the kernel reads IFLA_INET_CONF as nested attributes, one per setting
        // (type = the setting's index, a u32 value); on a dump it is a flat array, which is
        // all netlink-packet-route's `InetDevConf` emits, hence the hand-made attribute.
        let mut conf = Vec::with_capacity(8);
        conf.extend_from_slice(&8u16.to_ne_bytes());
        conf.extend_from_slice(&IPV4_DEVCONF_RP_FILTER.to_ne_bytes());
        conf.extend_from_slice(&2u32.to_ne_bytes());
        let mut msg = LinkUnspec::new_with_index(index).build();
        msg.attributes
            .push(LinkAttribute::AfSpecUnspec(vec![AfSpecUnspec::Inet(vec![
                AfSpecInet::Other(DefaultNla::new(IFLA_INET_CONF, conf)),
            ])]));
        self.handle
            .link()
            .set(msg)
            .execute()
            .await
            .map_err(failed(format!(
                "setting rp_filter of {name} to 2 (loose reverse-path filter)"
            )))
    }

    /// The rule that sends connection-marked traffic to the main table, present or not.
    async fn ensure_connmark_rule(&self, wanted: bool) -> Result<()> {
        let mark = self.config.connmark;
        let existing: Vec<RuleMessage> = self
            .rules()
            .await?
            .into_iter()
            .filter(|r| {
                rule_priority(r) == Some(CONNMARK_PRIORITY)
                    && r.attributes.contains(&RuleAttribute::FwMark(mark))
            })
            .collect();
        if wanted && existing.is_empty() {
            let mut req = self
                .handle
                .rule()
                .add()
                .v4()
                .table_id(MAIN_TABLE)
                .action(RuleAction::ToTable)
                .priority(CONNMARK_PRIORITY);
            let msg = req.message_mut();
            msg.attributes.push(RuleAttribute::FwMark(mark));
            msg.attributes.push(RuleAttribute::FwMask(mark));
            req.execute().await.map_err(failed(format!(
                "adding rule {CONNMARK_PRIORITY} fwmark {mark:#x}"
            )))?;
        }
        if !wanted {
            for r in existing {
                self.del_rule(r).await?;
            }
        }
        Ok(())
    }

    /// Sets up a secondary ENI (module docs); waits up to `wait` for its link. Idempotent.
    ///
    /// # Errors
    /// [`Error::HostNetwork`] naming the step.
    pub async fn setup_eni(&self, eni: &EniHost, wait: Duration) -> Result<()> {
        let link = self.link_by_mac(&eni.mac, wait).await?;
        let index = link.header.index;
        let name = link_name(&link);
        let mtu = self.config.eni_mtu;
        let up = link
            .header
            .flags
            .contains(rtnetlink::packet_route::link::LinkFlags::Up);
        let has_mtu = link.attributes.contains(&LinkAttribute::Mtu(mtu));
        if !up || !has_mtu {
            self.handle
                .link()
                .set(LinkUnspec::new_with_index(index).mtu(mtu).up().build())
                .execute()
                .await
                .map_err(failed(format!("setting {name} up with MTU {mtu}")))?;
        }
        self.ensure_address(index, &name, eni).await?;
        self.ensure_table(index, &name, eni).await?;
        self.ensure_primary_rule(eni).await?;
        let first = self
            .configured
            .lock()
            .expect("configured")
            .insert(eni.id.clone(), eni.clone())
            .is_none();
        // Every reconcile pass checks each ENI again: only the first time is news.
        if first {
            tracing::info!(eni = %eni.id, link = %name, table = eni.table(), "ENI set up");
        } else {
            tracing::debug!(eni = %eni.id, link = %name, table = eni.table(), "ENI checked");
        }
        Ok(())
    }

    /// The ENI's primary address on its link, without the main-table subnet route.
    async fn ensure_address(&self, index: u32, name: &str, eni: &EniHost) -> Result<()> {
        let addresses: Vec<_> = self
            .handle
            .address()
            .get()
            .set_link_index_filter(index)
            .execute()
            .try_collect()
            .await
            .map_err(failed(format!("listing the addresses of {name}")))?;
        let present = addresses.iter().any(|a| {
            a.attributes
                .contains(&AddressAttribute::Local(IpAddr::V4(eni.primary_ip)))
        });
        let len = eni.subnet.prefix();
        if !present {
            match self
                .handle
                .address()
                .add(index, IpAddr::V4(eni.primary_ip), len)
                .execute()
                .await
            {
                Ok(()) => {}
                Err(e) if is_exists(&e) => {}
                Err(e) => {
                    return Err(failed(format!("adding {}/{len} to {name}", eni.primary_ip))(e));
                }
            }
        }
        // The route the kernel added with the address (also one an earlier owner left).
        let kernel_route = RouteMessageBuilder::<Ipv4Addr>::new()
            .destination_prefix(eni.subnet.network(), len)
            .output_interface(index)
            .table_id(MAIN_TABLE)
            .scope(RouteScope::Link)
            .protocol(RouteProtocol::Kernel)
            .build();
        match self.handle.route().del(kernel_route).execute().await {
            Ok(()) => Ok(()),
            Err(e) if is_gone(&e) => Ok(()),
            Err(e) => Err(failed(format!(
                "removing the main-table route to {} via {name}",
                eni.subnet
            ))(e)),
        }
    }

    /// Table N + 1: the subnet as a link route, the default route via the gateway.
    async fn ensure_table(&self, index: u32, name: &str, eni: &EniHost) -> Result<()> {
        let table = eni.table();
        let subnet = RouteMessageBuilder::<Ipv4Addr>::new()
            .destination_prefix(eni.subnet.network(), eni.subnet.prefix())
            .output_interface(index)
            .scope(RouteScope::Link)
            .table_id(table)
            .build();
        let default = RouteMessageBuilder::<Ipv4Addr>::new()
            .gateway(eni.gateway())
            .output_interface(index)
            .table_id(table)
            .build();
        for (route, what) in [(subnet, "the subnet route"), (default, "the default route")] {
            self.handle
                .route()
                .add(route)
                .replace()
                .execute()
                .await
                .map_err(failed(format!("adding {what} of table {table} via {name}")))?;
        }
        Ok(())
    }

    /// The rule from the ENI's primary address to its table, and no stale one for that address.
    async fn ensure_primary_rule(&self, eni: &EniHost) -> Result<()> {
        let table = eni.table();
        let mut present = false;
        for r in self.rules().await? {
            if rule_priority(&r) != Some(ENI_PRIMARY_PRIORITY) {
                continue;
            }
            let from_it = r
                .attributes
                .contains(&RuleAttribute::Source(IpAddr::V4(eni.primary_ip)));
            if from_it && rule_table(&r) == table && !present {
                present = true;
            } else if from_it || rule_table(&r) == table {
                self.del_rule(r).await?; // another ENI's old rule for this table or address
            }
        }
        if !present {
            add_source_rule(&self.handle, eni.primary_ip, table, ENI_PRIMARY_PRIORITY)
                .await
                .map_err(failed(format!(
                    "adding rule {ENI_PRIMARY_PRIORITY} from {} to table {table}",
                    eni.primary_ip
                )))?;
        }
        Ok(())
    }

    /// Sets up each of `enis` (start-up and every reconcile pass find the attached ones);
    /// a failure is logged and retried on the next pass. Returns how many failed.
    pub async fn sync(&self, enis: &[EniHost], wait: Duration) -> usize {
        let mut failed = 0;
        for eni in enis {
            if let Err(e) = self.setup_eni(eni, wait).await {
                tracing::warn!(eni = %eni.id, error = %e, "cannot set up the ENI's host networking; retrying on the next reconcile");
                failed += 1;
            }
        }
        failed
    }

    /// Undoes [`HostNet::setup_eni`] for an ENI about to be detached: its rule and its table.
    /// An ENI this process never set up is looked for by nothing and left alone.
    ///
    /// # Errors
    /// [`Error::HostNetwork`] naming the step.
    pub async fn release_eni(&self, id: &EniId) -> Result<()> {
        let Some(eni) = self.configured.lock().expect("configured").remove(id) else {
            return Ok(());
        };
        let table = eni.table();
        for r in self.rules().await? {
            if rule_priority(&r) == Some(ENI_PRIMARY_PRIORITY) && rule_table(&r) == table {
                self.del_rule(r).await?;
            }
        }
        let routes: Vec<RouteMessage> = self
            .handle
            .route()
            .get(
                RouteMessageBuilder::<Ipv4Addr>::new()
                    .table_id(table)
                    .build(),
            )
            .execute()
            .try_collect()
            .await
            .map_err(failed(format!("listing table {table}")))?;
        for r in routes.into_iter().filter(|r| route_table(r) == table) {
            match self.handle.route().del(r).execute().await {
                Ok(()) => {}
                Err(e) if is_gone(&e) => {}
                Err(e) => return Err(failed(format!("removing a route of table {table}"))(e)),
            }
        }
        tracing::info!(eni = %id, table, "ENI released from the host");
        Ok(())
    }

    async fn rules(&self) -> Result<Vec<RuleMessage>> {
        self.handle
            .rule()
            .get(IpVersion::V4)
            .execute()
            .try_collect()
            .await
            .map_err(failed("listing rules"))
    }

    async fn del_rule(&self, r: RuleMessage) -> Result<()> {
        match self.handle.rule().del(r).execute().await {
            Ok(()) => Ok(()),
            Err(e) if is_gone(&e) => Ok(()),
            Err(e) => Err(failed("removing a rule")(e)),
        }
    }
}

/// The index of the link whose MAC is `mac` in ipamd's network namespace, read over a netlink
/// connection of its own (for `ENIPLAN_HOST_NETWORKING=false`, where ipamd changes nothing on
/// the host but the plugin still needs the trunk's link).
///
/// # Errors
/// [`Error::HostNetwork`] when netlink cannot be read.
pub async fn find_link_index(mac: &str) -> Result<Option<u32>> {
    let (conn, handle, _) = rtnetlink::new_connection().map_err(|e| Error::HostNetwork {
        what: "opening a netlink socket".into(),
        reason: e.to_string(),
    })?;
    let task = tokio::spawn(conn);
    let links: std::result::Result<Vec<LinkMessage>, _> =
        handle.link().get().execute().try_collect().await;
    task.abort();
    let links = links.map_err(failed("listing links"))?;
    Ok(links
        .into_iter()
        .find(|l| link_mac(l) == mac)
        .map(|l| l.header.index))
}
