//! Properties of `planner::max_pods` over generated instance shapes and every option mix.

use planner::catalogue::InstanceLimits;
use planner::max_pods::{AddressMode, Note, Options, max_pods};
use property_tests::{catalogue_entry, instance_limits, options};
use proptest::prelude::*;

fn config() -> ProptestConfig {
    ProptestConfig::with_cases(2_000)
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn monotone_in_enis(limits in instance_limits(), opts in options()) {
        prop_assume!(limits.max_enis < 24);
        let more = InstanceLimits { max_enis: limits.max_enis + 1, ..limits };
        prop_assert!(max_pods(&more, &opts).max_pods >= max_pods(&limits, &opts).max_pods);
        prop_assert!(max_pods(&more, &opts).recommended_max_pods >= max_pods(&limits, &opts).recommended_max_pods);
    }

    #[test]
    fn monotone_in_ips_per_eni(limits in instance_limits(), opts in options()) {
        prop_assume!(limits.ipv4_per_eni < 64);
        let more = InstanceLimits { ipv4_per_eni: limits.ipv4_per_eni + 1, ..limits };
        prop_assert!(max_pods(&more, &opts).max_pods >= max_pods(&limits, &opts).max_pods);
    }

    #[test]
    fn custom_networking_never_gives_more(limits in instance_limits(), opts in options()) {
        let without = Options { custom_networking: false, ..opts };
        let with = Options { custom_networking: true, ..opts };
        let (a, b) = (max_pods(&limits, &without), max_pods(&limits, &with));
        prop_assert!(b.max_pods <= a.max_pods);
        // Exactly one ENI fewer (unless none was left).
        prop_assert_eq!(b.enis_for_pods, a.enis_for_pods.saturating_sub(1));
    }

    #[test]
    fn prefix_delegation_never_gives_less_before_caps(limits in instance_limits(), opts in options()) {
        let sip = max_pods(&limits, &Options { prefix_delegation: false, ..opts });
        let pd = max_pods(&limits, &Options { prefix_delegation: true, ..opts });
        prop_assert!(pd.max_pods >= sip.max_pods);
        if pd.mode == AddressMode::PrefixDelegation {
            prop_assert_eq!(pd.pod_addresses, sip.pod_addresses * 16);
        } else {
            prop_assert_eq!(pd.max_pods, sip.max_pods);
            prop_assert!(!pd.notes.is_empty(), "a fallback must say why");
        }
    }

    #[test]
    fn recommended_never_exceeds_uncapped_or_the_cap(limits in instance_limits(), opts in options()) {
        let r = max_pods(&limits, &opts);
        prop_assert!(r.recommended_max_pods <= r.max_pods);
        prop_assert!(r.recommended_max_pods <= 250);
        prop_assert!(r.recommended_max_pods == r.max_pods || r.recommended_max_pods == r.recommended_cap);
    }

    #[test]
    fn max_eni_only_ever_lowers(limits in instance_limits(), opts in options()) {
        let unclamped = max_pods(&limits, &Options { max_eni: None, ..opts });
        let clamped = max_pods(&limits, &opts);
        prop_assert!(clamped.max_pods <= unclamped.max_pods);
        prop_assert!(clamped.enis_for_pods <= u32::from(limits.max_enis));
    }

    #[test]
    fn result_is_the_formula_of_its_parts(limits in instance_limits(), opts in options()) {
        let r = max_pods(&limits, &opts);
        let per_slot = if r.mode == AddressMode::PrefixDelegation { 16 } else { 1 };
        prop_assert_eq!(r.pod_addresses_per_eni, (u32::from(limits.ipv4_per_eni) - 1) * per_slot);
        prop_assert_eq!(r.max_pods, r.enis_for_pods * r.pod_addresses_per_eni + 2);
    }

    #[test]
    fn every_catalogue_entry_is_consistent(t in catalogue_entry(), opts in options()) {
        let r = max_pods(t, &opts);
        prop_assert!(r.enis_for_pods <= u32::from(t.max_enis));
        prop_assert!(u32::from(t.max_enis) <= t.total_enis());
        prop_assert_eq!(r.branch_enis.is_some(), opts.security_groups_for_pods);
        // A trunk only with the feature on, on a trunking type, with a slot beside the primary.
        prop_assert!(!r.trunk_eni || (opts.security_groups_for_pods && t.trunking));
        if opts.security_groups_for_pods && t.trunking && !r.trunk_eni {
            prop_assert!(r.notes.contains(&Note::NoSlotForTrunk), "{:?}", r.notes);
            prop_assert_eq!(r.branch_enis, Some(0));
        }
    }

    #[test]
    fn only_custom_networking_can_leave_no_pod_eni(limits in instance_limits(), opts in options()) {
        // Reserved ENIs never take the primary, and the trunk needs a slot beside it.
        let r = max_pods(&limits, &Options { custom_networking: false, ..opts });
        prop_assert!(r.enis_for_pods >= 1);
        prop_assert!(r.max_pods > u32::from(limits.ipv4_per_eni));
    }
}
