//! Strategies shared by the property suites in `tests/`.

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
