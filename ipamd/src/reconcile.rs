//! Reconciling the pool with the node: every `reconcile` interval, IMDS's view of the node's
//! ENIs is compared with the pool ([`agrees`], pure); where they differ, or an ENI is new or
//! gone, EC2 is asked and decides (IMDS can lag EC2 by seconds, so it never removes anything on
//! its own). Each EC2 look also refreshes the node's capacity file (unmanaged ENIs may change).

use std::sync::Arc;

use cloud::{Ec2, Imds};
use planner::pool::{AddressView, ObservedEni};
use tokio::sync::{mpsc, oneshot};

use crate::config::Config;
use crate::driver::{Event, View};
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::node::{self, Node};

/// How often the node is reconciled while a trunk ENI is awaited.
const TRUNK_LOOK: std::time::Duration = std::time::Duration::from_secs(5);

/// Whether IMDS's view of the node matches the pool: the same managed ENIs, and on each managed
/// pod ENI the same secondary addresses and prefixes as the pool holds (addresses the pool is
/// releasing do not count: EC2 may or may not have dropped them yet). `observed` is `None` when
/// IMDS shows an ENI whose flags are unknown, which never agrees.
pub fn agrees(
    observed: Option<&[ObservedEni]>,
    addresses: &[AddressView],
    pool_enis: usize,
) -> bool {
    let Some(observed) = observed else {
        return false;
    };
    let same_addresses = observed
        .iter()
        .filter(|o| !o.unmanaged && !o.trunk)
        .all(|o| {
            let held = addresses.iter().filter(|a| a.eni == o.id && !a.releasing);
            let mut pool_ips: Vec<_> = held
                .clone()
                .filter(|a| a.prefix.is_none())
                .map(|a| a.ip)
                .collect();
            let mut pool_prefixes: Vec<_> = held.filter_map(|a| a.prefix).collect();
            pool_ips.sort_unstable();
            pool_prefixes.sort_unstable();
            pool_prefixes.dedup();
            let mut ips = o.ips.clone();
            ips.sort_unstable();
            let mut prefixes = o.prefixes.clone();
            prefixes.sort_unstable();
            ips == pool_ips && prefixes == pool_prefixes
        });
    same_addresses && observed.iter().filter(|o| !o.unmanaged).count() == pool_enis
}

/// Reconciles every `config.reconcile` (at most every 5 s while a trunk ENI is awaited) until
/// aborted; also refreshes the node subnet's free-address gauge every `config.reconcile`.
pub(crate) async fn reconciler<E: Ec2, I: Imds>(
    ec2: Arc<E>,
    imds: I,
    node: Arc<Node>,
    config: Arc<Config>,
    tx: mpsc::Sender<Event>,
    metrics: Arc<Metrics>,
) {
    let mut last_gauge = None;
    loop {
        // Start-up just observed. While a trunk ENI is awaited (security groups for pods), the
        // node looks every few seconds, as the reference, so branch pods wait little.
        let awaiting_trunk = config.pool.pod_eni
            && node.limits.trunking
            && node.trunk.lock().expect("trunk").is_none();
        let period = if awaiting_trunk {
            config.reconcile.min(TRUNK_LOOK)
        } else {
            config.reconcile
        };
        tokio::time::sleep(period).await;
        if let Err(e) = once(&*ec2, &imds, &node, &config, &tx).await {
            tracing::warn!(error = %e, "reconcile failed; will retry");
        }
        // The node subnet's free addresses, for capacity dashboards: at the normal cadence
        // only (not every few seconds while a trunk is awaited).
        if last_gauge.is_some_and(|t: tokio::time::Instant| t.elapsed() < config.reconcile) {
            continue;
        }
        last_gauge = Some(tokio::time::Instant::now());
        match ec2
            .describe_subnets(std::slice::from_ref(&node.subnet_id))
            .await
        {
            Ok(subnets) => {
                for s in subnets {
                    metrics
                        .subnet_available
                        .with_label_values(&[s.id.as_str()])
                        .set(i64::from(s.available_ip_addresses));
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot read the subnet's free addresses"),
        }
    }
}

/// One reconcile pass: IMDS first; EC2 only when IMDS and the pool disagree.
pub async fn once<E: Ec2, I: Imds>(
    ec2: &E,
    imds: &I,
    node: &Node,
    config: &Config,
    tx: &mpsc::Sender<Event>,
) -> Result<()> {
    let interfaces = cloud::imds::interfaces(imds)
        .await
        .map_err(|source| Error::Cloud {
            what: "reconcile: reading IMDS".into(),
            source,
        })?;
    if let Some(host) = &node.hostnet {
        host.sync(&node.host_enis(&interfaces), std::time::Duration::ZERO)
            .await;
    }
    let view = query(tx).await?;
    let observed = node::observe_from_imds(node, &interfaces);
    if agrees(
        observed.as_deref(),
        &view.addresses,
        view.snapshot.enis.len(),
    ) {
        return Ok(());
    }
    let observed = node::observe_from_ec2(ec2, node, config).await?;
    crate::allocatable::refresh(node, config);
    tx.send(Event::Observed(observed))
        .await
        .map_err(|_| stopped())?;
    Ok(())
}

async fn query(tx: &mpsc::Sender<Event>) -> Result<View> {
    let (q, r) = oneshot::channel();
    tx.send(Event::Query(q)).await.map_err(|_| stopped())?;
    r.await.map_err(|_| stopped())
}

fn stopped() -> Error {
    Error::Startup("the pool loop stopped".into())
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use ipnetwork::Ipv4Network;
    use planner::pool::EniId;

    use super::*;

    fn ip(last: u8) -> Ipv4Addr {
        Ipv4Addr::new(10, 0, 0, last)
    }

    fn eni(id: &str, device: u32, ips: &[u8], prefixes: &[&str]) -> ObservedEni {
        ObservedEni {
            id: EniId(id.into()),
            device,
            primary_ip: ip(200 + u8::try_from(device).unwrap()),
            ips: ips.iter().map(|&l| ip(l)).collect(),
            prefixes: prefixes.iter().map(|p| p.parse().unwrap()).collect(),
            trunk: false,
            unmanaged: false,
        }
    }

    fn held(id: &str, last: u8, prefix: Option<&str>, releasing: bool) -> AddressView {
        AddressView {
            ip: ip(last),
            eni: EniId(id.into()),
            prefix: prefix.map(|p| p.parse::<Ipv4Network>().unwrap()),
            pod: None,
            cooling_since: None,
            releasing,
        }
    }

    #[test]
    fn the_same_addresses_in_any_order_agree() {
        let observed = [eni("eni-a", 0, &[7, 5, 6], &[])];
        let pool = [
            held("eni-a", 5, None, false),
            held("eni-a", 6, None, false),
            held("eni-a", 7, None, false),
        ];
        assert!(agrees(Some(&observed), &pool, 1));
    }

    #[test]
    fn an_address_only_one_side_has_disagrees() {
        let observed = [eni("eni-a", 0, &[5, 6], &[])];
        let pool = [held("eni-a", 5, None, false)];
        assert!(!agrees(Some(&observed), &pool, 1), "IMDS has one more");
        let observed = [eni("eni-a", 0, &[5], &[])];
        let pool = [held("eni-a", 5, None, false), held("eni-a", 6, None, false)];
        assert!(!agrees(Some(&observed), &pool, 1), "the pool has one more");
    }

    #[test]
    fn addresses_being_released_are_not_compared() {
        let observed = [eni("eni-a", 0, &[5], &[])];
        let pool = [held("eni-a", 5, None, false), held("eni-a", 6, None, true)];
        assert!(agrees(Some(&observed), &pool, 1));
    }

    #[test]
    fn a_prefix_is_one_entry_however_many_of_its_addresses_are_held() {
        let observed = [eni("eni-a", 0, &[], &["10.0.0.16/28"])];
        let pool: Vec<_> = (16..32)
            .map(|l| held("eni-a", l, Some("10.0.0.16/28"), false))
            .collect();
        assert!(agrees(Some(&observed), &pool, 1));
        let observed = [eni("eni-a", 0, &[], &["10.0.0.32/28"])];
        assert!(!agrees(Some(&observed), &pool, 1), "a different prefix");
    }

    #[test]
    fn a_missing_or_extra_eni_disagrees_and_unknown_flags_never_agree() {
        let observed = [eni("eni-a", 0, &[], &[]), eni("eni-b", 1, &[], &[])];
        assert!(!agrees(Some(&observed), &[], 1), "IMDS shows a new ENI");
        assert!(
            !agrees(Some(&observed[..1]), &[], 2),
            "the pool has an ENI IMDS lost"
        );
        assert!(!agrees(None, &[], 0));
    }

    #[test]
    fn unmanaged_and_trunk_enis_carry_no_pool_addresses() {
        let mut trunk = eni("eni-t", 1, &[9], &[]);
        trunk.trunk = true;
        let mut other = eni("eni-u", 2, &[8], &[]);
        other.unmanaged = true;
        let observed = [eni("eni-a", 0, &[5], &[]), trunk, other];
        let pool = [held("eni-a", 5, None, false)];
        // The trunk counts as one of the pool's ENIs; the unmanaged one does not.
        assert!(agrees(Some(&observed), &pool, 2));
        assert!(!agrees(Some(&observed), &pool, 3));
    }
}
