//! What the node is: its identity from IMDS, its limits from the catalogue (or, for a type the
//! catalogue does not know, EC2), its ENIs from IMDS enriched (and, where they disagree,
//! corrected) by EC2.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use cloud::model::{EniFilter, ImdsInterface, InstanceIdentity, InterfaceType, NetworkInterface};
use cloud::{Ec2, Imds};
use ipnetwork::Ipv4Network;
use planner::catalogue::{self, InstanceLimits};
use planner::pool::{EniId, ObservedEni};

use crate::config::Config;
use crate::error::{Error, Result};
use crate::hostnet::{EniHost, HostNet};

/// Tag ipamd writes on ENIs it creates: the owning instance.
pub const TAG_INSTANCE_ID: &str = "node.k8s.amazonaws.com/instance_id";
/// Tag ipamd writes on ENIs it creates: creation time (RFC 3339).
pub const TAG_CREATED_AT: &str = "node.k8s.amazonaws.com/createdAt";
/// Tag that marks an ENI as not managed (`true`).
pub const TAG_NO_MANAGE: &str = "node.k8s.amazonaws.com/no_manage";
/// Cluster tag.
pub const TAG_CLUSTER: &str = "cluster.k8s.amazonaws.com/name";

/// The node as discovered at start-up.
#[derive(Debug)]
pub struct Node {
    /// From IMDS.
    pub identity: InstanceIdentity,
    /// From the catalogue, or EC2 for a type it does not know ([`limits`]).
    pub limits: &'static InstanceLimits,
    /// Where [`Node::limits`] came from.
    pub limits_from: LimitsSource,
    /// The primary ENI's subnet (where new ENIs go without custom networking).
    pub subnet_id: String,
    /// VPC CIDRs (sent to the plugin).
    pub vpc_cidrs: Vec<Ipv4Network>,
    /// The primary ENI's security groups (new ENIs get them).
    pub security_groups: Vec<String>,
    /// Attachment id of each ENI (needed to detach), kept current by the executor.
    pub attachments: Mutex<BTreeMap<EniId, String>>,
    /// Trunk and unmanaged flags learned from EC2, by attached ENI.
    pub flags: Mutex<BTreeMap<EniId, (bool, bool)>>,
    /// The trunk ENI (security groups for pods), as EC2 last showed it attached.
    pub trunk: Mutex<Option<Trunk>>,
    /// The unmanaged-ENI count of the last capacity file written (`None` before the first).
    pub published_unmanaged: Mutex<Option<u32>>,
    /// The VPC, learned from EC2 at start-up.
    pub vpc_id: std::sync::OnceLock<String>,
    /// The primary ENI's subnet CIDR (new ENIs' route tables need it).
    pub subnet_cidr: Ipv4Network,
    /// The primary ENI's id.
    pub primary_eni: EniId,
    /// The node's host networking (`None` with `ENIPLAN_HOST_NETWORKING=false`).
    pub hostnet: Option<HostNet>,
}

/// The node's trunk ENI: branch-ENI pods' traffic leaves on VLANs of its link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trunk {
    /// Its id.
    pub id: EniId,
    /// Its MAC (how the host's link is found).
    pub mac: String,
    /// Its device index.
    pub device: u32,
}

impl Node {
    /// The primary ENI as the host sees it.
    pub fn primary_host(&self) -> EniHost {
        EniHost {
            id: self.primary_eni.clone(),
            mac: self.identity.mac.clone(),
            device: 0,
            primary_ip: self.identity.private_ip,
            subnet: self.subnet_cidr,
        }
    }

    /// The secondary ENIs IMDS lists whose host networking ipamd owns: managed, not trunks,
    /// on the default card (flags learned from EC2; an ENI not yet seen there is left for the
    /// next pass).
    pub fn host_enis(&self, interfaces: &[ImdsInterface]) -> Vec<EniHost> {
        let flags = self.flags.lock().expect("flags");
        interfaces
            .iter()
            .filter(|i| i.device_number != 0 && i.network_card == 0)
            .filter(|i| flags.get(&i.interface_id) == Some(&(false, false)))
            .filter_map(|i| {
                Some(EniHost {
                    id: i.interface_id.clone(),
                    mac: i.mac.clone(),
                    device: i.device_number,
                    primary_ip: *i.local_ipv4s.first()?,
                    subnet: i.subnet_cidr,
                })
            })
            .collect()
    }
}

fn cloud_err(what: &str) -> impl FnOnce(cloud::CloudError) -> Error + '_ {
    move |source| Error::Cloud {
        what: what.to_owned(),
        source,
    }
}

/// Where the instance's limits came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LimitsSource {
    /// The embedded catalogue.
    Catalogue,
    /// EC2's DescribeInstanceTypes, asked at this start.
    Ec2,
    /// EC2's answer to an earlier start, from the state directory.
    Cache,
}

impl LimitsSource {
    /// The name used in logs and in the capacity file.
    pub fn as_str(self) -> &'static str {
        match self {
            LimitsSource::Catalogue => "catalogue",
            LimitsSource::Ec2 => "ec2",
            LimitsSource::Cache => "cache",
        }
    }
}

/// Where EC2's description of `instance_type` is kept between starts.
pub fn limits_cache(state_dir: &Path, instance_type: &str) -> PathBuf {
    let safe: String = instance_type
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    state_dir.join(format!("instance-type-{safe}.json"))
}

/// The instance's limits: the embedded catalogue's entry; for a type it does not know (one
/// launched after the catalogue was built), EC2's DescribeInstanceTypes, asked once and kept in
/// the state directory so that later starts ask nothing ([`limits_cache`]). The same
/// arithmetic applies either way ([`planner::catalogue::Described::limits`]).
///
/// # Errors
/// An unknown type EC2 cannot describe (the call refused, say for a missing
/// `ec2:DescribeInstanceTypes` permission, or no such type), or one it describes with limits no
/// node could be served with.
pub async fn limits<E: Ec2>(
    ec2: &E,
    instance_type: &str,
    state_dir: &Path,
) -> Result<(&'static InstanceLimits, LimitsSource)> {
    let unknown = match catalogue::lookup(instance_type) {
        Ok(limits) => return Ok((limits, LimitsSource::Catalogue)),
        Err(e) => e,
    };
    let cache = limits_cache(state_dir, instance_type);
    if let Some(info) = read_cached(&cache, instance_type) {
        let limits = info.described().limits().map_err(Error::Pool)?;
        tracing::info!(instance_type, file = %cache.display(), "limits from EC2 (cached)");
        return Ok((limits, LimitsSource::Cache));
    }
    let described = ec2
        .describe_instance_types(&[instance_type.to_owned()])
        .await
        .map_err(|source| Error::Cloud {
            what: format!(
                "instance type {instance_type} is not in eniplan's catalogue, and asking EC2 for its limits (ec2:DescribeInstanceTypes) failed"
            ),
            source,
        })?;
    let Some(info) = described.into_iter().find(|i| i.name == instance_type) else {
        return Err(Error::Pool(unknown));
    };
    let limits = info.described().limits().map_err(Error::Pool)?;
    tracing::info!(
        instance_type,
        max_enis = limits.max_enis,
        ipv4_per_eni = limits.ipv4_per_eni,
        "limits from EC2: the catalogue does not know this type"
    );
    let kept = serde_json::to_vec_pretty(&info)
        .map_err(std::io::Error::other)
        .and_then(|json| crate::allocatable::replace(&cache, &json));
    if let Err(e) = kept {
        tracing::warn!(error = %e, file = %cache.display(), "cannot keep EC2's limits; the next start asks again");
    }
    Ok((limits, LimitsSource::Ec2))
}

/// EC2's description kept by an earlier start, if it is there, readable and of this type.
fn read_cached(path: &Path, instance_type: &str) -> Option<cloud::model::InstanceTypeInfo> {
    let text = std::fs::read(path).ok()?;
    match serde_json::from_slice::<cloud::model::InstanceTypeInfo>(&text) {
        Ok(info) if info.name == instance_type => Some(info),
        Ok(_) | Err(_) => {
            tracing::warn!(file = %path.display(), "ignoring an unreadable instance-type cache; asking EC2");
            None
        }
    }
}

/// Whether an ENI is left alone (§3.9 of the reference): `no_manage=true`, EFA-only, or (with
/// `MANAGE_UNTAGGED_ENI=false`) not tagged as this instance's. The primary is always managed.
fn unmanaged(config: &Config, instance_id: &str, e: &NetworkInterface) -> bool {
    if e.attachment.as_ref().is_some_and(|a| a.device_index == 0) {
        return false;
    }
    if let Some(v) = e.tags.get(TAG_NO_MANAGE) {
        return v == "true";
    }
    if e.interface_type == InterfaceType::EfaOnly {
        return true;
    }
    if e.tags
        .get(TAG_INSTANCE_ID)
        .is_some_and(|v| v == instance_id)
    {
        return false;
    }
    !config.manage_untagged_enis
}

/// The engine's view of the ENIs from EC2, which is authoritative: every ENI attached to the
/// instance (IMDS can lag behind a new attachment or address); an attachment still `attaching`
/// (or `detaching`) does not count.
pub async fn observe_from_ec2<E: Ec2>(
    ec2: &E,
    node: &Node,
    config: &Config,
) -> Result<Vec<ObservedEni>> {
    let filter = EniFilter {
        instance_id: Some(node.identity.instance_id.clone()),
        ..EniFilter::default()
    };
    let described = ec2
        .describe_network_interfaces(&filter)
        .await
        .map_err(cloud_err("describing the node's ENIs"))?;
    let mut out = Vec::new();
    let mut attachments = node.attachments.lock().expect("attachments");
    let mut flags = node.flags.lock().expect("flags");
    flags.clear(); // an ENI detached since the last look is no longer counted
    let mut trunk = None;
    for e in &described {
        let Some(a) = &e.attachment else { continue };
        if a.network_card_index != 0 {
            continue; // eniplan manages the default card
        }
        attachments.insert(e.id.clone(), a.id.clone());
        if matches!(a.status.as_str(), "attaching" | "detaching" | "detached") {
            // The instance does not have this ENI (yet, or any more): an attachment can stay
            // `attaching` for minutes, and its addresses must not reach pods meanwhile.
            continue;
        }
        let _ = node.vpc_id.set(e.vpc_id.clone());
        let is_trunk = e.interface_type == InterfaceType::Trunk;
        let unmanaged = unmanaged(config, &node.identity.instance_id, e);
        flags.insert(e.id.clone(), (is_trunk, unmanaged));
        if is_trunk {
            trunk = Some(Trunk {
                id: e.id.clone(),
                mac: e.mac.to_ascii_lowercase(),
                device: a.device_index,
            });
        }
        out.push(ObservedEni {
            id: e.id.clone(),
            device: a.device_index,
            primary_ip: e.primary_ip,
            ips: e.secondary_ips.clone(),
            prefixes: e.prefixes.clone(),
            trunk: is_trunk,
            unmanaged,
        });
    }
    let mut known = node.trunk.lock().expect("trunk");
    if *known != trunk {
        if let Some(t) = &trunk {
            tracing::info!(eni = %t.id, mac = %t.mac, device = t.device, "trunk ENI found");
        } else {
            tracing::warn!("the trunk ENI is no longer attached");
        }
        *known = trunk;
    }
    out.sort_by_key(|o| o.device);
    Ok(out)
}

/// How long start-up waits for EC2 to show every address the checkpoint holds. EC2 is
/// eventually consistent: an address assigned or an ENI attached moments before a restart may
/// not be described yet, and restoring without it would drop a running pod's address and later
/// hand it to another pod.
pub const CHECKPOINT_WAIT: Duration = Duration::from_secs(20);

/// Re-reads EC2 every second until it shows each address of `entries` on one of the node's
/// ENIs, or [`CHECKPOINT_WAIT`] has passed; returns the last view. What is still missing then
/// is dropped by the restore, which logs each entry and why.
///
/// # Errors
/// [`Error::Cloud`] when EC2 cannot be read.
pub async fn await_checkpointed<E: Ec2>(
    ec2: &E,
    node: &Node,
    config: &Config,
    mut observed: Vec<ObservedEni>,
    entries: &[crate::checkpoint::Entry],
) -> Result<Vec<ObservedEni>> {
    let wanted: Vec<Ipv4Addr> = entries
        .iter()
        .filter_map(|e| e.ipv4.as_deref()?.parse().ok())
        .collect();
    let missing = |observed: &[ObservedEni]| {
        let shown = |ip: &Ipv4Addr| {
            observed.iter().any(|o| {
                o.ips.contains(ip)
                    || o.primary_ip == *ip
                    || o.prefixes.iter().any(|p| p.contains(*ip))
            })
        };
        wanted.iter().filter(|ip| !shown(ip)).count()
    };
    let mut left = missing(&observed);
    if left == 0 {
        return Ok(observed);
    }
    let start = Instant::now();
    tracing::info!(
        missing = left,
        "EC2 does not show every address in the checkpoint yet; waiting for it (EC2 is eventually consistent)"
    );
    while left > 0 && start.elapsed() < CHECKPOINT_WAIT {
        tokio::time::sleep(Duration::from_secs(1)).await;
        observed = observe_from_ec2(ec2, node, config).await?;
        left = missing(&observed);
    }
    let waited_ms = start.elapsed().as_millis();
    if left == 0 {
        tracing::info!(waited_ms, "EC2 shows every address in the checkpoint");
    } else {
        tracing::warn!(
            missing = left,
            waited_ms,
            "EC2 still does not show some addresses in the checkpoint; their pods lose them"
        );
    }
    Ok(observed)
}

/// The engine's view from IMDS alone, for ENIs whose flags are already known; `None` when an
/// ENI is new or one EC2 last showed is gone from IMDS (EC2 must be asked).
pub fn observe_from_imds(node: &Node, interfaces: &[ImdsInterface]) -> Option<Vec<ObservedEni>> {
    let flags = node.flags.lock().expect("flags");
    let gone = flags
        .keys()
        .any(|id| !interfaces.iter().any(|i| &i.interface_id == id));
    if gone {
        return None;
    }
    interfaces
        .iter()
        .map(|i| {
            let &(trunk, unmanaged) = flags.get(&i.interface_id)?;
            let mut o = i.observed()?;
            o.trunk = trunk;
            o.unmanaged = unmanaged;
            Some(o)
        })
        .collect()
}

/// Discovers the node: IMDS identity and interfaces, the catalogue's limits, EC2's view of the
/// ENIs; then sets up its host networking (the primary ENI, and every secondary ENI already
/// attached, as after a restart).
pub async fn discover<E: Ec2, I: Imds>(
    ec2: &E,
    imds: &I,
    config: &Config,
) -> Result<(Node, Vec<ObservedEni>)> {
    let identity = cloud::imds::identity(imds)
        .await
        .map_err(cloud_err("reading the instance identity from IMDS"))?;
    let interfaces = cloud::imds::interfaces(imds)
        .await
        .map_err(cloud_err("reading the network interfaces from IMDS"))?;
    let primary = interfaces
        .iter()
        .find(|i| i.mac == identity.mac)
        .or_else(|| interfaces.iter().find(|i| i.device_number == 0))
        .ok_or_else(|| {
            Error::Startup(format!(
                "IMDS lists no primary network interface (mac {})",
                identity.mac
            ))
        })?;
    let (limits, limits_from) = limits(ec2, &identity.instance_type, &config.state_dir).await?;
    let node = Node {
        limits,
        limits_from,
        subnet_id: primary.subnet_id.clone(),
        vpc_cidrs: primary.vpc_cidrs.clone(),
        security_groups: primary.security_groups.clone(),
        identity,
        attachments: Mutex::new(BTreeMap::new()),
        flags: Mutex::new(BTreeMap::new()),
        published_unmanaged: Mutex::new(None),
        trunk: Mutex::new(None),
        vpc_id: std::sync::OnceLock::new(),
        subnet_cidr: primary.subnet_cidr,
        primary_eni: primary.interface_id.clone(),
        hostnet: config.host.clone().map(HostNet::connect).transpose()?,
    };
    let observed = observe_from_ec2(ec2, &node, config).await?;
    if let Some(host) = &node.hostnet {
        host.setup_primary(&node.primary_host(), &node.vpc_cidrs)
            .await?;
        host.sync(
            &node.host_enis(&interfaces),
            crate::hostnet::STARTUP_LINK_WAIT,
        )
        .await;
    }
    Ok((node, observed))
}

/// The ENI tags for a new ENI.
pub fn new_eni_tags(
    config: &Config,
    instance_id: &str,
    now_rfc3339: String,
) -> BTreeMap<String, String> {
    let mut tags = config.additional_tags.clone();
    tags.insert(TAG_INSTANCE_ID.to_owned(), instance_id.to_owned());
    tags.insert(TAG_CREATED_AT.to_owned(), now_rfc3339);
    if let Some(cluster) = &config.cluster_name {
        tags.insert(TAG_CLUSTER.to_owned(), cluster.clone());
        tags.insert("eks:eni:owner".to_owned(), "amazon-vpc-cni".to_owned());
    }
    tags
}

/// RFC 3339 UTC for a Unix time in seconds (no calendar crate needed for one format).
///
/// ```
/// assert_eq!(ipamd::node::rfc3339(1_767_225_600), "2026-01-01T00:00:00Z");
/// assert_eq!(ipamd::node::rfc3339(951_782_400), "2000-02-29T00:00:00Z");
/// ```
pub fn rfc3339(unix_secs: u64) -> String {
    let days = unix_secs / 86_400;
    let rem = unix_secs % 86_400;
    // Howard Hinnant's civil-from-days, for days since 1970-01-01.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// The route table a pod's address uses: the main table for the primary ENI, else device + 1
/// (as the VPC CNI numbers them).
pub fn route_table(device: u32) -> i32 {
    if device == 0 {
        254
    } else {
        i32::try_from(device + 1).unwrap_or(i32::MAX)
    }
}
