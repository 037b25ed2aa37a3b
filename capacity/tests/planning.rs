//! The worked examples of docs/planning.md, reproduced: each test loads the example spec the
//! document shows and checks the figures the document quotes.

use std::time::Duration;

use capacity::forecast::{Forecast, Options, forecast};
use capacity::layout::{Request, eniconfigs, plan};

fn run(text: &str, window: Duration) -> Forecast {
    let cluster = capacity::spec::load(text).unwrap();
    forecast(
        &cluster,
        &Options {
            window,
            horizon_days: 730,
        },
        &mut |_| {},
    )
    .unwrap()
}

const DEFAULT: &str = include_str!("../../docs/examples/three-az-default.yaml");
const WARM_IP: &str = include_str!("../../docs/examples/three-az-warm-ip.yaml");
const PD: &str = include_str!("../../docs/examples/pd-fragmented.yaml");
const CN: &str = include_str!("../../docs/examples/custom-networking.yaml");

#[test]
fn example_1_default_settings_exhaust_three_slash_19s_at_465_nodes() {
    let f = run(DEFAULT, Duration::from_hours(24));
    let g = &f.groups[0];
    // The engine's footprints: 20 pods → 3 ENIs (42 pool + 3 primaries), 30 pods → 4 ENIs.
    let per_node: Vec<(u32, u32, u32)> = g
        .shapes
        .iter()
        .map(|s| (s.pods, s.addresses_per_node, s.peak.warm()))
        .collect();
    assert_eq!(per_node, [(20, 45, 22), (30, 60, 26)]);
    // 3 × 8,187 usable addresses hold 465 nodes: inside the 400–500 users report.
    assert_eq!((g.max_nodes, g.max_nodes_by_count), (465, 465));
    assert!((400..=500).contains(&g.max_nodes));
    // Growing 10 % a month from 150 nodes, subnet-a runs out on day 357.
    assert_eq!(f.days_to_exhaustion, Some(357));
    // At the peak of 600 nodes, 45 per AZ do not fit.
    assert!(
        f.subnets
            .iter()
            .all(|s| s.unplaced_at_peak >= 44 && s.headroom_percent < -28.0)
    );
    // Half the pool is warm: 1,200 warm addresses for 1,250 pods in each subnet today.
    assert_eq!((f.subnets[0].now.pods, f.subnets[0].now.warm), (1250, 1200));
}

#[test]
fn example_2_warm_ip_target_fits_the_peak_and_lasts_longer() {
    let f = run(WARM_IP, Duration::from_hours(24));
    let g = &f.groups[0];
    let per_node: Vec<(u32, u32)> = g
        .shapes
        .iter()
        .map(|s| (s.pods, s.addresses_per_node))
        .collect();
    assert_eq!(per_node, [(20, 28), (30, 39)]);
    assert_eq!(g.max_nodes, 732);
    assert!(f.subnets.iter().all(|s| s.unplaced_at_peak == 0));
    assert!(
        f.subnets
            .iter()
            .all(|s| (s.headroom_percent - 18.2).abs() < 0.05)
    );
    assert_eq!(f.days_to_exhaustion, Some(499));
}

#[test]
fn example_3_prefix_delegation_runs_out_of_slash_28s_with_addresses_free() {
    let f = run(PD, Duration::from_hours(24));
    let s = &f.subnets[0];
    let g = &f.groups[0];
    // Today: 10 nodes fit, leaving 1,273 free addresses but only 2 free /28s.
    assert_eq!((s.now.nodes, s.now.free, s.now.free_blocks), (10, 1273, 2));
    // By counting addresses 29 nodes would fit; in /28s only the 10 of today.
    assert_eq!((g.max_nodes, g.max_nodes_by_count), (10, 29));
    let limit = g.limited_by.as_ref().unwrap();
    assert_eq!(
        (limit.subnet.as_str(), limit.error),
        ("subnet-shared", "InsufficientCidrBlocks")
    );
    // Recycling a node (its replacement launches first) fails at minute 290 with 1,240
    // addresses free.
    let x = s.window.fragmented.as_ref().unwrap();
    assert_eq!(
        (x.minute, x.free_addresses, x.error),
        (290, 1240, "InsufficientCidrBlocks")
    );
}

#[test]
fn example_4_custom_networking_layout_in_100_64_slash_16() {
    let cluster = capacity::spec::load(CN).unwrap();
    let request = |cidr: &str| Request {
        cidr: cidr.parse().unwrap(),
        azs: vec![],
        headroom: 0.3,
    };
    let l = plan(&cluster, &request("100.64.0.0/16")).unwrap();
    let carved: Vec<(String, String, u32, u32)> = l
        .subnets
        .iter()
        .map(|s| (s.az.clone(), s.cidr.to_string(), s.nodes, s.needed))
        .collect();
    assert_eq!(
        carved,
        [
            (
                "eu-west-1a".to_owned(),
                "100.64.0.0/18".to_owned(),
                140,
                9035
            ),
            (
                "eu-west-1b".to_owned(),
                "100.64.64.0/18".to_owned(),
                140,
                8990
            ),
            (
                "eu-west-1c".to_owned(),
                "100.64.128.0/18".to_owned(),
                140,
                8990
            ),
        ]
    );
    assert_eq!(l.unused[0].to_string(), "100.64.192.0/18");
    assert_eq!(l.max_pods["m5.2xlarge"], 44);
    assert_eq!(eniconfigs(&l, &[]).matches("kind: ENIConfig").count(), 3);
    // A /17 is short by 16,384 addresses.
    let err = plan(&cluster, &request("100.64.0.0/17")).unwrap_err();
    assert!(err.to_string().contains("short by 16384"), "{err}");
    // Today the pods sit in the /22 node subnets, and the peak does not fit there.
    let f = run(CN, Duration::from_hours(1));
    assert!(f.subnets.iter().all(|s| s.unplaced_at_peak > 120));
}

/// The module and example in terraform/ are checked by `terraform fmt` and
/// scripts/check-terraform; here, the HCL `eniplan layout` emits.
#[test]
fn generated_hcl_parses() {
    let cluster = capacity::spec::load(CN).unwrap();
    let l = plan(
        &cluster,
        &Request {
            cidr: "100.65.0.0/16".parse().unwrap(),
            azs: vec![],
            headroom: 0.3,
        },
    )
    .unwrap();
    let body = hcl::parse(&capacity::layout::terraform(&l)).unwrap();
    assert!(body.blocks().any(|b| b.identifier() == "output"));
}
