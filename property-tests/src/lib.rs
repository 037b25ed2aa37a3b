//! Strategies shared by the property suites in `tests/`.

use std::fmt::Write as _;

use planner::catalogue::{Hypervisor, InstanceLimits};
use planner::max_pods::{CniVersion, Options};
use proptest::prelude::*;

/// Any instance shape the catalogue could hold (1–24 ENIs on the default card, 2–64 IPv4
/// addresses per ENI), not only the ones it does hold.
pub fn instance_limits() -> impl Strategy<Value = InstanceLimits> {
    (
        1u8..=24,
        2u8..=64,
        prop_oneof![
            Just(Hypervisor::Nitro),
            Just(Hypervisor::Xen),
            Just(Hypervisor::Unknown)
        ],
        any::<bool>(),
        0u8..=120,
        proptest::option::of(1u16..=896),
    )
        .prop_map(
            |(enis, ips, hypervisor, bare_metal, branch, vcpus)| InstanceLimits {
                name: "prop.test",
                hypervisor,
                bare_metal,
                max_enis: enis,
                ipv4_per_eni: ips,
                default_network_card_index: 0,
                network_cards: Box::leak(vec![enis].into_boxed_slice()),
                branch_enis: branch,
                trunking: branch > 0,
                vcpus,
            },
        )
}

/// Any combination of max-pods options.
pub fn options() -> impl Strategy<Value = Options> {
    (
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        proptest::option::of(1u32..=30),
        0u32..=4,
        (1u32..=2, 0u32..=30),
        proptest::option::of(1u32..=512),
    )
        .prop_map(
            |(pd, cn, sgp, max_eni, reserved, (major, minor), vcpus)| Options {
                prefix_delegation: pd,
                custom_networking: cn,
                security_groups_for_pods: sgp,
                max_eni: max_eni.and_then(std::num::NonZeroU32::new),
                reserved_enis: reserved,
                cni_version: CniVersion {
                    major,
                    minor,
                    patch: 0,
                },
                vcpus,
            },
        )
}

/// One entry of the real catalogue.
pub fn catalogue_entry() -> impl Strategy<Value = &'static InstanceLimits> {
    let all = planner::catalogue::all();
    (0..all.len()).prop_map(move |i| &all[i])
}

/// Instance types used by the generated cluster specs (small and large, Nitro and Xen).
pub const SPEC_TYPES: &[&str] = &[
    "t3.small",
    "t3.medium",
    "m5.large",
    "m5.xlarge",
    "c5.4xlarge",
    "m4.large",
    "r6g.2xlarge",
];

/// VPC CNI settings the generated specs use (YAML flow maps).
pub const SPEC_SETTINGS: &[&str] = &[
    "{}",
    "{ WARM_ENI_TARGET: 0 }",
    "{ WARM_IP_TARGET: 3 }",
    "{ WARM_IP_TARGET: 5, MINIMUM_IP_TARGET: 12 }",
    "{ ENABLE_PREFIX_DELEGATION: true, WARM_PREFIX_TARGET: 1 }",
    "{ ENABLE_PREFIX_DELEGATION: true, WARM_IP_TARGET: 8 }",
    "{ MAX_ENI: 2 }",
];

/// A small cluster spec: one subnet of /22 to /26 (others may use some of it), one node
/// group of one to three types, a density, churn, growth.
pub fn small_cluster_spec() -> impl Strategy<Value = String> {
    (
        22u8..=26,
        0u32..=40,
        proptest::collection::vec(0..SPEC_TYPES.len(), 1..=3),
        0..SPEC_SETTINGS.len(),
        (1u32..=60, 1u32..=40),
        (0u32..=50, 0u32..=100, 0u32..=50),
        any::<u64>(),
    )
        .prop_map(
            |(len, used, types, setting, (nodes, pods), (growth, churn, node_churn), seed)| {
                let types: Vec<&str> = types.iter().map(|&i| SPEC_TYPES[i]).collect();
                format!(
                    "vpc_cidrs: [10.0.0.0/16]
seed: {seed}
subnets: [{{ id: s, cidr: 10.0.0.0/{len}, az: z1, used: {used} }}]
node_groups:
  - name: g
    instance_types: [{}]
    nodes: {{ min: 1, max: {nodes} }}
    cni: {}
    pods: {{ per_node: {pods}, growth_percent_per_month: {growth}, churn_percent_per_hour: {churn}, node_churn_percent_per_day: {node_churn} }}
",
                    types.join(", "),
                    SPEC_SETTINGS[setting]
                )
            },
        )
}

/// A cluster spec for layouts: one to three groups over one to three AZs, up to 3,000 nodes.
pub fn layout_cluster_spec() -> impl Strategy<Value = String> {
    (
        1usize..=3,
        proptest::collection::vec(
            (0..SPEC_TYPES.len(), 0..SPEC_SETTINGS.len(), 1u32..=1000, 1u32..=60),
            1..=3,
        ),
    )
        .prop_map(|(azs, groups)| {
            let mut s = String::from("vpc_cidrs: [10.0.0.0/16]\nsubnets:\n");
            for a in 0..azs {
                let _ = writeln!(s, "  - {{ id: s{a}, cidr: 10.0.{}.0/20, az: z{a} }}", a * 16);
            }
            s.push_str("node_groups:\n");
            for (i, (t, setting, nodes, pods)) in groups.into_iter().enumerate() {
                let _ = writeln!(
                    s,
                    "  - {{ name: g{i}, instance_types: [{}], nodes: {nodes}, cni: {}, pods: {{ per_node: {pods} }} }}",
                    SPEC_TYPES[t], SPEC_SETTINGS[setting]
                );
            }
            s
        })
}
