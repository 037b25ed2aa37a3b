//! Table tests of the watermark arithmetic, with the reference's vectors.

use super::*;

/// `WARM_IP_TARGET`, `MINIMUM_IP_TARGET`.
fn ip(w: u32, m: u32) -> PoolConfig {
    PoolConfig {
        warm_ip_target: w,
        minimum_ip_target: m,
        ..PoolConfig::default()
    }
}

#[test]
fn minimum_only_never_grows_beyond_the_floor() {
    // S-06: m = 10, w unset, 10 held, all assigned: short = max(0 − 0, 10 − 10) = 0.
    let c = Counters {
        total: 10,
        assigned: 10,
        ..Counters::default()
    };
    let t = target_state(&ip(0, 10), AddressMode::SecondaryIp, &c);
    assert_eq!((t.short, t.over), (0, 0));
    assert!(!is_low(&ip(0, 10), AddressMode::SecondaryIp, 10, &c));
}

#[test]
fn over_never_cuts_below_the_minimum() {
    let c = Counters {
        total: 12,
        assigned: 0,
        ..Counters::default()
    };
    let t = target_state(&ip(1, 10), AddressMode::SecondaryIp, &c);
    assert_eq!(t.over, 2);
}

#[test]
fn cooling_addresses_are_not_available() {
    let c = Counters {
        total: 10,
        assigned: 5,
        cooling: 3,
        ..Counters::default()
    };
    assert_eq!(c.available(), 2);
    let t = target_state(&ip(3, 0), AddressMode::SecondaryIp, &c);
    assert_eq!((t.short, t.over), (1, 0));
}

#[test]
fn warm_eni_target_zero_grows_only_when_empty() {
    let config = PoolConfig {
        warm_eni_target: 0,
        ..PoolConfig::default()
    };
    let empty = Counters {
        total: 9,
        assigned: 9,
        ..Counters::default()
    };
    let one_left = Counters {
        total: 9,
        assigned: 8,
        ..Counters::default()
    };
    assert!(is_low(&config, AddressMode::SecondaryIp, 10, &empty));
    assert!(!is_low(&config, AddressMode::SecondaryIp, 10, &one_left));
}

#[test]
fn prefix_target_high_counts_free_prefixes() {
    let config = PoolConfig {
        warm_prefix_target: 1,
        prefix_delegation: true,
        ..PoolConfig::default()
    };
    let c = Counters {
        total: 48,
        assigned: 3,
        prefixes: 3,
        free_prefixes: 2,
        cooling: 0,
        unassigned_prefixes: 2,
    };
    assert!(is_high(&config, AddressMode::PrefixDelegation, &c));
    assert!(!is_low(&config, AddressMode::PrefixDelegation, 4, &c));
}

// The reference's vectors (§11 of `vpc-cni-ipamd-behaviour.md`): TA-xx are SIP rows of
// `eni-and-ip-target.md`, TB-xx PD rows of `prefix-and-ip-target.md`, S-xx group C. Rows
// describe the pool settled at the row's pod count unless they say "before" (the state that
// triggers the row's last growth). t3.small: L_ip = 4; m5.large: 10; p3dn.24xlarge: 50.

const SIP: AddressMode = AddressMode::SecondaryIp;
const PD: AddressMode = AddressMode::PrefixDelegation;

/// `WARM_ENI_TARGET` (SIP) or `WARM_PREFIX_TARGET` (PD), no IP targets.
fn warm(mode: AddressMode, target: u32) -> PoolConfig {
    match mode {
        AddressMode::SecondaryIp => PoolConfig {
            warm_eni_target: target,
            ..PoolConfig::default()
        },
        AddressMode::PrefixDelegation => PoolConfig {
            warm_prefix_target: target,
            prefix_delegation: true,
            ..PoolConfig::default()
        },
    }
}

/// Counters of a pool holding `total` addresses, `assigned` of them to pods, none cooling.
fn held(total: u32, assigned: u32) -> Counters {
    Counters {
        total,
        assigned,
        ..Counters::default()
    }
}

/// Counters of a prefix pool: `prefixes` held, `free` of them without pods, none cooling.
fn prefixes(prefixes: u32, assigned: u32, free: u32) -> Counters {
    Counters {
        total: prefixes * ADDRESSES_PER_PREFIX,
        assigned,
        prefixes,
        free_prefixes: free,
        unassigned_prefixes: free,
        cooling: 0,
    }
}

#[test]
fn target_state_table() {
    // (row, config, mode, counters, (short, over, short_prefixes, over_prefixes))
    let rows = [
        ("TA-04 before", ip(1, 1), SIP, held(0, 0), (1, 0, 0, 0)),
        ("TA-04", ip(1, 1), SIP, held(1, 0), (0, 0, 0, 0)),
        ("TA-05", ip(1, 1), SIP, held(6, 5), (0, 0, 0, 0)),
        ("TA-07 before", ip(2, 5), SIP, held(0, 0), (5, 0, 0, 0)),
        ("TA-07", ip(2, 5), SIP, held(5, 0), (0, 0, 0, 0)),
        ("TA-08", ip(2, 5), SIP, held(7, 5), (0, 0, 0, 0)),
        ("TA-13 before", ip(5, 10), SIP, held(0, 0), (10, 0, 0, 0)),
        ("TA-13", ip(5, 10), SIP, held(10, 0), (0, 0, 0, 0)),
        ("TA-14", ip(5, 10), SIP, held(12, 7), (0, 0, 0, 0)),
        ("TA-14, 8th pod", ip(5, 10), SIP, held(12, 8), (1, 0, 0, 0)),
        ("TA-15", ip(5, 10), SIP, held(20, 15), (0, 0, 0, 0)),
        (
            "TA-15, 5 pods leave",
            ip(5, 10),
            SIP,
            held(20, 10),
            (0, 5, 0, 0),
        ),
        ("TA-16", ip(5, 10), SIP, held(50, 45), (0, 0, 0, 0)),
        ("TB-06", ip(1, 1), PD, prefixes(1, 0, 1), (0, 15, 0, 0)),
        ("TB-07", ip(1, 1), PD, prefixes(1, 5, 0), (0, 10, 0, 0)),
        ("TB-08", ip(1, 1), PD, prefixes(2, 17, 0), (0, 14, 0, 0)),
        ("TB-09", ip(1, 1), PD, prefixes(4, 58, 0), (0, 5, 0, 0)),
        // TB-10: short = max(7 − 0, 20 − 0) = 20 → ceil(20 / 16) = 2 prefixes at once ...
        (
            "TB-10 before",
            ip(7, 20),
            PD,
            prefixes(0, 0, 0),
            (20, 0, 2, 0),
        ),
        // ... and overP = min(2, 2 − ceil(7/16), 2 − ceil(20/16)) = 0: nothing released.
        ("TB-10", ip(7, 20), PD, prefixes(2, 0, 2), (0, 12, 0, 0)),
        ("TB-11", ip(7, 20), PD, prefixes(2, 5, 1), (0, 12, 0, 0)),
        ("TB-12", ip(7, 20), PD, prefixes(2, 17, 0), (0, 8, 0, 0)),
        (
            "TB-13 before",
            ip(7, 20),
            PD,
            prefixes(4, 58, 0),
            (1, 0, 1, 0),
        ),
        ("TB-13", ip(7, 20), PD, prefixes(5, 58, 1), (0, 15, 0, 0)),
        ("TB-17", ip(5, 10), PD, prefixes(1, 0, 1), (0, 6, 0, 0)),
        ("TB-18", ip(5, 10), PD, prefixes(1, 7, 0), (0, 4, 0, 0)),
        (
            "TB-19 before",
            ip(5, 10),
            PD,
            prefixes(1, 15, 0),
            (4, 0, 1, 0),
        ),
        ("TB-19", ip(5, 10), PD, prefixes(2, 15, 1), (0, 12, 0, 0)),
        // TB-19's pods leave: one of the two free prefixes goes, back to TB-17.
        (
            "TB-19, pods leave",
            ip(5, 10),
            PD,
            prefixes(2, 0, 2),
            (0, 22, 0, 1),
        ),
        ("TB-20", ip(5, 10), PD, prefixes(4, 45, 1), (0, 14, 0, 0)),
    ];
    for (row, config, mode, c, want) in rows {
        let t = target_state(&config, mode, &c);
        assert!(t.ip_targets, "{row}");
        assert_eq!(
            (t.short, t.over, t.short_prefixes, t.over_prefixes),
            want,
            "{row}"
        );
    }
    // No IP targets: nothing to compute.
    assert_eq!(
        target_state(&warm(PD, 1), PD, &prefixes(1, 0, 1)),
        Targets::default()
    );
}

#[test]
fn growth_request_table() {
    // (row, config, mode, prefix fallback, L_ip, counters, request)
    let rows = [
        // A whole ENI's worth of secondary IPs (TA-02: t3.small ENIs of 3).
        ("TA-02 before", warm(SIP, 1), SIP, false, 4, held(6, 5), 3),
        ("S-02 before", warm(SIP, 1), SIP, false, 10, held(18, 10), 9),
        // IP targets: exactly the shortage; none once met (then no call at all).
        ("TA-13 before", ip(5, 10), SIP, false, 50, held(0, 0), 10),
        ("TA-14, 8th pod", ip(5, 10), SIP, false, 50, held(12, 8), 1),
        ("TA-04", ip(1, 1), SIP, false, 4, held(1, 0), 0),
        // PD: shortPrefixesForWPT, at least 1.
        (
            "TB-01 before",
            warm(PD, 1),
            PD,
            false,
            4,
            prefixes(0, 0, 0),
            1,
        ),
        (
            "TB-02 before",
            warm(PD, 1),
            PD,
            false,
            4,
            prefixes(1, 5, 0),
            1,
        ),
        (
            "S-13 before",
            warm(PD, 3),
            PD,
            false,
            4,
            prefixes(0, 0, 0),
            3,
        ),
        // PD with IP targets: ceil(short / 16), at least 1.
        (
            "TB-10 before",
            ip(7, 20),
            PD,
            false,
            4,
            prefixes(0, 0, 0),
            2,
        ),
        (
            "TB-19 before",
            ip(5, 10),
            PD,
            false,
            50,
            prefixes(1, 15, 0),
            1,
        ),
        // ENIPLAN_PD_FALLBACK: the same needs in secondary IPs.
        (
            "TB-10 before, fallback",
            ip(7, 20),
            PD,
            true,
            4,
            held(0, 0),
            20,
        ),
        (
            "TB-02 before, fallback",
            warm(PD, 1),
            PD,
            true,
            4,
            held(16, 5),
            5,
        ),
        ("TB-01, fallback", warm(PD, 1), PD, true, 4, held(16, 0), 1),
    ];
    for (row, config, mode, fallback, l_ip, c, want) in rows {
        assert_eq!(
            growth_request(&config, mode, fallback, l_ip, &c),
            want,
            "{row}"
        );
    }
}

#[test]
fn surplus_table_and_is_high() {
    // (row, config, mode, counters, blocks that may be released)
    let rows = [
        // SIP with WARM_ENI_TARGET: never; only whole ENIs go.
        ("TA-02", warm(SIP, 1), SIP, held(9, 5), 0),
        ("S-04, pods deleted", warm(SIP, 1), SIP, held(9, 0), 0),
        ("TA-15", ip(5, 10), SIP, held(20, 15), 0),
        ("TA-15, 5 pods leave", ip(5, 10), SIP, held(20, 10), 5),
        // Never below the floor: 12 held, w = 1, m = 10 → 2.
        ("floor", ip(1, 10), SIP, held(12, 0), 2),
        ("TB-05", warm(PD, 1), PD, prefixes(5, 58, 1), 0),
        // S-16: 40 pods (4 prefixes) drain to 0: freePrefixes − 1 in one call.
        ("S-16, drained", warm(PD, 1), PD, prefixes(4, 0, 4), 3),
        ("TB-10", ip(7, 20), PD, prefixes(2, 0, 2), 0),
        ("TB-19, pods leave", ip(5, 10), PD, prefixes(2, 0, 2), 1),
    ];
    for (row, config, mode, c, want) in rows {
        assert_eq!(surplus(&config, mode, &c), want, "{row}");
        assert_eq!(is_high(&config, mode, &c), want > 0, "{row}");
    }
}

#[test]
fn freeing_an_eni_table() {
    // shouldRemoveExtraENIs: (row, config, mode, L_ip, counters, a freeable ENI, answer)
    let rows = [
        // S-04: t3.small (M = 3), WARM_ENI_TARGET = 1: frees while available ≥ 2 × 3.
        (
            "S-04, all deleted",
            warm(SIP, 1),
            SIP,
            4,
            held(9, 0),
            true,
            true,
        ),
        (
            "S-04, 9 → 3 pods",
            warm(SIP, 1),
            SIP,
            4,
            held(9, 3),
            true,
            true,
        ),
        (
            "S-04, 9 → 4 pods",
            warm(SIP, 1),
            SIP,
            4,
            held(9, 4),
            true,
            false,
        ),
        ("TA-02", warm(SIP, 1), SIP, 4, held(9, 5), true, false),
        // IP targets: always (the per-ENI checks decide).
        ("TA-16", ip(5, 10), SIP, 50, held(50, 45), false, true),
        // PD: 2 × 48 available, or an ENI without pods.
        (
            "TB-05",
            warm(PD, 1),
            PD,
            4,
            prefixes(5, 58, 1),
            false,
            false,
        ),
        (
            "TB-05, ENI without pods",
            warm(PD, 1),
            PD,
            4,
            prefixes(5, 58, 1),
            true,
            true,
        ),
    ];
    for (row, config, mode, l_ip, c, freeable, want) in rows {
        assert_eq!(
            should_free_eni(&config, mode, l_ip, &c, freeable),
            want,
            "{row}"
        );
    }
    // getDeletableENI 5–7: (row, config, mode, counters without the ENI, may go)
    let rows = [
        // TA-16: the second ENI holds the 50th address; without it 4 < 5 free.
        ("TA-16", ip(5, 10), SIP, held(49, 45), false),
        // S-05: WARM_IP_TARGET = 3: the other ENIs keep ≥ 3 free addresses.
        ("S-05, 2 pods", ip(3, 0), SIP, held(9, 2), true),
        ("S-05, 7 pods", ip(3, 0), SIP, held(9, 7), false),
        ("TA-07", ip(2, 5), SIP, held(5, 0), true),
        ("TA-07, one ENI", ip(2, 5), SIP, held(3, 0), false),
        // PD rounds w and m up to prefixes (TB-10: 7 → 16, 20 → 32).
        ("TB-10", ip(7, 20), PD, prefixes(2, 0, 2), true),
        ("TB-10, one prefix", ip(7, 20), PD, prefixes(1, 0, 1), false),
        ("TB-11, one prefix", ip(7, 20), PD, prefixes(1, 5, 0), false),
        // WARM_PREFIX_TARGET free prefixes remain (S-17).
        ("S-17", warm(PD, 1), PD, prefixes(1, 0, 1), true),
        ("S-17, none free", warm(PD, 1), PD, prefixes(1, 3, 0), false),
    ];
    for (row, config, mode, after, want) in rows {
        assert_eq!(
            targets_hold_without_eni(&config, mode, &after),
            want,
            "{row}"
        );
    }
}

#[test]
fn small_conversions_table() {
    // §2.7: in PD, w and m are rounded up to a multiple of 16 (TB-10: 7 → 16, 20 → 32).
    for (mode, n, want) in [
        (PD, 7, 16),
        (PD, 20, 32),
        (PD, 16, 16),
        (PD, 0, 0),
        (SIP, 7, 7),
    ] {
        assert_eq!(round_up_to_prefixes(mode, n), want, "{mode} {n}");
    }
    // shortPrefixesForWPT: S-13 (WPT 3, none held) → 3; TB-02 before → 1; TB-02 → 0.
    for (config, c, want) in [
        (warm(PD, 3), prefixes(0, 0, 0), 3),
        (warm(PD, 1), prefixes(1, 5, 0), 1),
        (warm(PD, 1), prefixes(2, 5, 1), 0),
    ] {
        assert_eq!(short_prefixes_for_wpt(&config, &c), want);
    }
    assert_eq!(warm_prefix_addresses(&warm(PD, 3)), 48); // S-13: 48 addresses
    // S-06: MINIMUM_IP_TARGET alone holds the floor; TA-13 has both targets.
    assert!(floor_only(&ip(0, 10)));
    assert!(!floor_only(&ip(5, 10)) && !floor_only(&PoolConfig::default()));
}

#[test]
fn needs_growth_stops_at_max_pods() {
    // S-10: m5.large WARM_ENI_TARGET = 1, max pods 20: at 10 pods 18 < 20 still grows ...
    let capped = |mode, target, max_pods| PoolConfig {
        max_pods,
        ..warm(mode, target)
    };
    assert!(needs_growth(&capped(SIP, 1, 20), SIP, 10, &held(18, 10)));
    // ... then 27 ≥ 20 blocks growth whatever the pods.
    assert!(!needs_growth(&capped(SIP, 1, 20), SIP, 10, &held(27, 27)));
    // S-12: PD WPT = 1, max pods 29: the 2nd prefix at the first pod, never a 3rd.
    assert!(needs_growth(&capped(PD, 1, 29), PD, 10, &prefixes(1, 1, 0)));
    assert!(!needs_growth(
        &capped(PD, 1, 29),
        PD,
        10,
        &prefixes(2, 17, 0)
    ));
}

#[test]
fn fallback_keeps_the_warm_targets_in_addresses() {
    // (config, counters, kept, spare)
    let rows = [
        // WARM_PREFIX_TARGET = 1: 16 addresses; 25 available → 9 spare.
        (warm(PD, 1), held(30, 5), 16, 9),
        (warm(PD, 1), held(16, 5), 16, 0),
        // IP targets: max(w, m − total).
        (ip(5, 10), held(8, 0), 5, 3),
        (ip(2, 20), held(8, 0), 12, 0),
    ];
    for (config, c, keep, spare) in rows {
        assert_eq!(
            (fallback_keep(&config, &c), fallback_spare(&config, &c)),
            (keep, spare),
            "{c:?}"
        );
    }
}

#[test]
fn counting_cooling_is_the_references_view() {
    // S-32/S-33: a cooling address is not assignable, but the reference counts it.
    let c = Counters {
        total: 16,
        assigned: 5,
        cooling: 3,
        prefixes: 1,
        free_prefixes: 0,
        unassigned_prefixes: 0,
    };
    assert_eq!(c.available(), 8);
    assert_eq!(c.counting_cooling().available(), 11);
    let idle = Counters {
        assigned: 0,
        unassigned_prefixes: 1,
        ..c
    };
    assert_eq!(idle.counting_cooling().free_prefixes, 1);
}
