//! Helpers for the pool's unit tests: small pools built from an observation of their ENIs.

use std::net::Ipv4Addr;

use ipnetwork::Ipv4Network;

use crate::catalogue::lookup;

use super::{EniId, Input, ObservedEni, Pool, PoolConfig, Time};

/// An address as the pool keys it.
pub(super) fn ip(s: &str) -> u32 {
    u32::from(s.parse::<Ipv4Addr>().expect("a test address"))
}

/// An m5.large pool (provisioning off, so only the unit under test acts) initialised from ENIs
/// on devices 0, 1, …, each with the given secondary IPs or prefixes; primary IPs are
/// `10.0.<device>.4`.
fn pool(config: PoolConfig, enis: &[&[&str]], prefixes: bool) -> Pool {
    let mut pool = Pool::new(lookup("m5.large").expect("m5.large is catalogued"), config);
    let observed = enis
        .iter()
        .zip(0u8..)
        .map(|(blocks, d)| ObservedEni {
            id: EniId(format!("eni-{d}")),
            device: u32::from(d),
            primary_ip: Ipv4Addr::new(10, 0, d, 4),
            ips: if prefixes {
                vec![]
            } else {
                blocks
                    .iter()
                    .map(|s| s.parse().expect("a test address"))
                    .collect()
            },
            prefixes: if prefixes {
                blocks
                    .iter()
                    .map(|s| s.parse::<Ipv4Network>().expect("a test prefix"))
                    .collect()
            } else {
                vec![]
            },
            trunk: false,
            unmanaged: false,
        })
        .collect();
    let actions = pool.step(Time(0), Input::Observed { enis: observed });
    assert!(actions.is_empty(), "{actions:?}");
    pool
}

/// A prefix-delegation pool holding these /28s.
pub(super) fn prefix_pool(enis: &[&[&str]]) -> Pool {
    let config = PoolConfig {
        prefix_delegation: true,
        warm_prefix_target: 1,
        disable_provisioning: true,
        ..PoolConfig::default()
    };
    pool(config, enis, true)
}

/// A secondary-IP pool (`WARM_ENI_TARGET=1`) holding these addresses.
pub(super) fn sip_pool(enis: &[&[&str]]) -> Pool {
    let config = PoolConfig {
        disable_provisioning: true,
        ..PoolConfig::default()
    };
    pool(config, enis, false)
}
