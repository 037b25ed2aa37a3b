//! Properties of the capacity planner: forecasts, /28 block maps, custom-networking layouts.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::time::Duration;

use capacity::blocks::{BlockClass, EniUsage, SubnetUsage, block_map};
use capacity::forecast::{Options, forecast};
use capacity::layout::{Request, plan};
use planner::subnet::{Ipv4Network, Placement, Subnet};
use property_tests::{layout_cluster_spec, small_cluster_spec};
use proptest::prelude::*;

fn options() -> Options {
    Options {
        window: Duration::from_hours(1),
        horizon_days: 60,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// No forecast promises a node the address space cannot hold: every node a group reaches
    /// holds its shape's addresses, and all of them fit in what the subnet has free.
    #[test]
    fn forecast_never_reports_more_nodes_than_addresses_allow(text in small_cluster_spec()) {
        let Ok(cluster) = capacity::spec::load(&text) else {
            // Settings a type cannot run (no ENI left for pods) are refused, not forecast.
            return Ok(());
        };
        let f = forecast(&cluster, &options(), &mut |_| {}).unwrap();
        let s = &f.subnets[0];
        let g = &f.groups[0];
        let cheapest = g.shapes.iter().map(|x| x.addresses_per_node).min().unwrap();
        let room = s.usable - s.others;
        prop_assert!(
            u64::from(g.max_nodes) * u64::from(cheapest) <= u64::from(room),
            "{} nodes × {} addresses > {} free\n{}", g.max_nodes, cheapest, room, text
        );
        prop_assert!(g.max_nodes <= g.max_nodes_by_count);
        // The address accounting adds up, now and at peak.
        for u in [&s.now, &s.peak] {
            prop_assert_eq!(
                u.used,
                u.pods + u.warm + u.node_primaries + u.eni_primaries + u.trunks + u.others
            );
            prop_assert_eq!(u.used + u.free, s.usable);
            prop_assert!(u.free_blocks <= s.delegatable_blocks);
        }
        // A peak that was placed in full is within the group's capacity: the largest node
        // count is searched on the same address space, so it can be no smaller. (With one group
        // and one subnet, the peak placed is the group's peak.)
        if s.unplaced_at_peak == 0 {
            prop_assert_eq!(s.peak.nodes, g.peak);
            prop_assert!(
                g.peak <= g.max_nodes,
                "peak {} placed, but capacity says {}\n{}", g.peak, g.max_nodes, text
            );
        }
    }

    /// The block map agrees with a brute-force recount of every address, and each drain
    /// candidate frees exactly the /28s a recount without its ENI shows.
    #[test]
    fn block_accounting_matches_brute_force(
        len in 24u8..=27,
        picks in proptest::collection::vec((0u32..256, 0u8..4), 0..60),
        prefix_picks in proptest::collection::vec(0u32..16, 0..6),
        seed in any::<u64>(),
    ) {
        let cidr = Ipv4Network::new(Ipv4Addr::new(10, 9, 0, 0), len).unwrap();
        let size = cidr.size();
        let base = u32::from(cidr.network());
        // Build a consistent set of ENIs on a scratch subnet.
        let mut scratch = Subnet::new(cidr).unwrap();
        let mut enis: Vec<EniUsage> = (0..4)
            .map(|i| EniUsage::new(&format!("eni-{i}"), Ipv4Addr::UNSPECIFIED, vec![], vec![]))
            .collect();
        for b in prefix_picks {
            let net = Ipv4Network::new(Ipv4Addr::from(base + 16 * (b % (size / 16))), 28).unwrap();
            if scratch.allocate_specific_prefix(net).is_ok() {
                enis[(b % 4) as usize].prefixes.push(net);
            }
        }
        for (off, owner) in picks {
            let a = Ipv4Addr::from(base + off % size);
            if scratch.allocate_specific_ip(a).is_ok() {
                let e = &mut enis[owner as usize];
                if e.primary == Ipv4Addr::UNSPECIFIED {
                    e.primary = a;
                } else {
                    e.ips.push(a);
                }
            }
        }
        // ENIs with no primary hold no address: give them one if any is free, else drop them.
        let mut kept = Vec::new();
        for mut e in enis {
            if e.primary == Ipv4Addr::UNSPECIFIED {
                match scratch.allocate_ip(Placement::Scattered { seed }) {
                    Ok(a) => e.primary = a,
                    // No free address left for a primary: the ENI (and its prefixes) is left out.
                    Err(_) => continue,
                }
            }
            kept.push(e);
        }
        let usage = SubnetUsage {
            id: "s".into(), cidr, az: "z".into(), enis: kept.clone(), others: vec![], reserved: vec![],
        };
        let map = block_map(&usage, 100).unwrap();
        // Brute force: which addresses are used.
        let mut used: BTreeSet<u32> = BTreeSet::new();
        for e in &kept {
            used.insert(u32::from(e.primary));
            used.extend(e.ips.iter().map(|a| u32::from(*a)));
            for p in &e.prefixes {
                used.extend((0..16).map(|i| u32::from(p.network()) + i));
            }
        }
        let prefix_blocks: BTreeSet<u32> =
            kept.iter().flat_map(|e| e.prefixes.iter().map(|p| u32::from(p.network()))).collect();
        let blocks = size / 16;
        let (mut free, mut partial, mut full) = (0, 0, 0);
        for b in 0..blocks {
            let start = base + 16 * b;
            let n = (start..start + 16).filter(|a| used.contains(a)).count();
            let class = map.blocks[b as usize].class;
            if b == 0 || b == blocks - 1 {
                prop_assert_eq!(class, BlockClass::Reserved);
            } else if prefix_blocks.contains(&start) {
                prop_assert_eq!(class, BlockClass::Prefix);
            } else if n == 0 {
                free += 1;
                prop_assert_eq!(class, BlockClass::Free);
            } else if n == 16 {
                full += 1;
                prop_assert_eq!(class, BlockClass::Full);
            } else {
                partial += 1;
                prop_assert_eq!(class, BlockClass::Partial);
            }
        }
        prop_assert_eq!((map.counts.free, map.counts.partial, map.counts.full), (free, partial, full));
        prop_assert_eq!(map.stats.free_addresses, size - 5 - u32::try_from(used.len()).unwrap()
            + u32::try_from(used.iter().filter(|a| {
                let off = *a - base; off < 4 || off == size - 1
            }).count()).unwrap());
        // Drain: freed blocks = free blocks without the ENI − free blocks with it.
        for d in &map.drain {
            let without: Vec<EniUsage> = kept.iter().filter(|e| e.id != d.eni).cloned().collect();
            let m2 = block_map(&SubnetUsage { enis: without, ..usage.clone() }, 0).unwrap();
            prop_assert_eq!(m2.counts.free - map.counts.free, d.blocks_freed, "{}", d.eni);
        }
        for e in &kept {
            if map.drain.iter().all(|d| d.eni != e.id) {
                let without: Vec<EniUsage> = kept.iter().filter(|x| x.id != e.id).cloned().collect();
                let m2 = block_map(&SubnetUsage { enis: without, ..usage.clone() }, 0).unwrap();
                prop_assert_eq!(m2.counts.free, map.counts.free, "{} frees /28s but is not listed", e.id);
            }
        }
    }

    /// Layouts never overlap, never leave the CIDR, give every AZ the room it asked for, and a
    /// refusal says exactly by how much the CIDR is short.
    #[test]
    fn layouts_never_overlap_and_stay_inside_the_cidr(
        text in layout_cluster_spec(),
        prefix in 14u8..=21,
        third in 64u8..=127,
        headroom in 0u32..=100,
    ) {
        let Ok(cluster) = capacity::spec::load(&text) else { return Ok(()); };
        let cidr = Ipv4Network::new(Ipv4Addr::new(100, third, 0, 0), prefix).unwrap();
        let cidr = Ipv4Network::new(cidr.network(), prefix).unwrap();
        let h = f64::from(headroom) / 100.0;
        match plan(&cluster, &Request { cidr, azs: vec![], headroom: h }) {
            Ok(l) => {
                let mut total = 0u64;
                for (i, s) in l.subnets.iter().enumerate() {
                    prop_assert!(cidr.is_supernet_of(s.cidr), "{} outside {}", s.cidr, cidr);
                    prop_assert!(s.cidr.prefix() >= 16 && s.cidr.prefix() <= 28);
                    for t in &l.subnets[i + 1..] {
                        prop_assert!(!s.cidr.overlaps(t.cidr), "{} overlaps {}", s.cidr, t.cidr);
                    }
                    for u in &l.unused {
                        prop_assert!(!s.cidr.overlaps(*u));
                    }
                    prop_assert!(f64::from(s.usable) >= (f64::from(s.needed) * (1.0 + h)).ceil());
                    total += u64::from(s.cidr.size());
                }
                total += l.unused.iter().map(|u| u64::from(u.size())).sum::<u64>();
                prop_assert_eq!(total, u64::from(cidr.size()));
            }
            Err(capacity::Error::LayoutDoesNotFit { needed, available, short_by, .. }) => {
                prop_assert_eq!(available, u64::from(cidr.size()));
                prop_assert!(needed > available);
                prop_assert_eq!(short_by, needed - available);
            }
            Err(capacity::Error::LayoutSubnetTooLarge { needed, short_by, .. }) => {
                prop_assert!(needed > 65_536);
                prop_assert_eq!(short_by, needed - 65_536);
            }
            Err(e) => prop_assert!(false, "unexpected error {e}"),
        }
    }
}
