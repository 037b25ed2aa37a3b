//! The /28 block map of a subnet from the ENIs in it (as one `DescribeNetworkInterfaces`
//! filtered on the subnet returns them, or as the forecast places a spec's nodes): which
//! aligned /28s are free, partly used, full, delegated as prefixes or reserved, how fragmented
//! the free space is, and which ENIs' release would free the most whole /28s (the ENIs to
//! drain first so prefix delegation works again).
//!
//! ```
//! use capacity::blocks::{block_map, EniUsage, SubnetUsage};
//! let usage = SubnetUsage {
//!     id: "subnet-a".into(),
//!     cidr: "10.0.0.0/26".parse()?,
//!     az: "z1".into(),
//!     enis: vec![
//!         EniUsage::new("eni-1", "10.0.0.20".parse()?, vec!["10.0.0.21".parse()?], vec![]),
//!         EniUsage::new("eni-2", "10.0.0.36".parse()?, vec![], vec![]),
//!     ],
//!     others: vec![],
//!     reserved: vec![],
//! };
//! let map = block_map(&usage, 5)?;
//! // 4 blocks: two hold AWS-reserved addresses, the other two are partly used.
//! assert_eq!((map.counts.reserved, map.counts.partial, map.counts.free), (2, 2, 0));
//! // Releasing either ENI frees one whole /28.
//! assert_eq!(map.drain[0].blocks_freed, 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use ipnetwork::Ipv4Network;
use serde::Serialize;

use crate::error::Result;
use planner::subnet::{ADDRESSES_PER_PREFIX, BlockState, Subnet, SubnetStats};

/// One ENI's addresses in the subnet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EniUsage {
    /// ENI id (or, for a spec, the node's name).
    pub id: String,
    /// What it belongs to: an instance id, a description, a node group.
    pub owner: String,
    /// Its primary private address.
    pub primary: Ipv4Addr,
    /// Secondary private addresses.
    pub ips: Vec<Ipv4Addr>,
    /// Delegated /28 prefixes.
    pub prefixes: Vec<Ipv4Network>,
}

impl EniUsage {
    /// An ENI with no owner text.
    pub fn new(
        id: &str,
        primary: Ipv4Addr,
        ips: Vec<Ipv4Addr>,
        prefixes: Vec<Ipv4Network>,
    ) -> EniUsage {
        EniUsage {
            id: id.to_owned(),
            owner: String::new(),
            primary,
            ips,
            prefixes,
        }
    }
}

/// Everything in one subnet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SubnetUsage {
    /// Subnet id.
    pub id: String,
    /// CIDR.
    pub cidr: Ipv4Network,
    /// AZ.
    pub az: String,
    /// ENIs.
    pub enis: Vec<EniUsage>,
    /// Single addresses used by something that is not a listed ENI.
    pub others: Vec<Ipv4Addr>,
    /// Ranges held aside (subnet CIDR reservations, ranges the spec marks as taken).
    pub reserved: Vec<Ipv4Network>,
}

/// How a block is classed on the map.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BlockClass {
    /// All 16 addresses free: a prefix can be delegated here.
    Free,
    /// Some addresses used: no prefix fits.
    Partial,
    /// Every address used by single addresses.
    Full,
    /// Delegated as one prefix.
    Prefix,
    /// Holds AWS-reserved addresses or lies in a reserved range: never a prefix.
    Reserved,
}

impl BlockClass {
    /// One character for text maps: `.` free, `+` partial, `#` full, `P` prefix, `R` reserved.
    pub fn glyph(self) -> char {
        match self {
            BlockClass::Free => '.',
            BlockClass::Partial => '+',
            BlockClass::Full => '#',
            BlockClass::Prefix => 'P',
            BlockClass::Reserved => 'R',
        }
    }
}

/// One block of the map.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Block {
    /// The /28.
    pub cidr: Ipv4Network,
    /// Its class.
    pub class: BlockClass,
    /// Used addresses (AWS-reserved ones included).
    pub used: u8,
}

/// Blocks per class.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Free.
    pub free: u32,
    /// Partly used.
    pub partial: u32,
    /// Full.
    pub full: u32,
    /// Delegated prefixes.
    pub prefix: u32,
    /// Reserved.
    pub reserved: u32,
}

/// An ENI whose release frees whole /28s.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Drain {
    /// ENI id.
    pub eni: String,
    /// Owner.
    pub owner: String,
    /// Blocks that become entirely free (its delegated prefixes included).
    pub blocks_freed: u32,
    /// Of which its own prefixes.
    pub prefixes: u32,
    /// Addresses it holds.
    pub addresses: u32,
}

/// The map and its summary.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BlockMap {
    /// Subnet id.
    pub id: String,
    /// AZ.
    pub az: String,
    /// Counters of the subnet model.
    pub stats: SubnetStats,
    /// Blocks per class.
    pub counts: Counts,
    /// `stats.fragmentation` in words: healthy (< 0.25), moderate (< 0.5), high (< 0.75),
    /// critical.
    pub band: &'static str,
    /// Every block, lowest first.
    pub blocks: Vec<Block>,
    /// The ENIs whose release frees the most /28s, best first (ties: more addresses, then id).
    pub drain: Vec<Drain>,
}

fn band(f: f64) -> &'static str {
    if f < 0.25 {
        "healthy"
    } else if f < 0.5 {
        "moderate"
    } else if f < 0.75 {
        "high"
    } else {
        "critical"
    }
}

/// Builds the map; `top` limits the drain list. Fails when an address lies outside the subnet
/// or is listed twice ([`planner::Error::AddressNotInSubnet`], [`planner::Error::AddressUnavailable`]).
#[expect(
    clippy::too_many_lines,
    reason = "build, classify, rank: one pass each"
)]
pub fn block_map(usage: &SubnetUsage, top: usize) -> Result<BlockMap> {
    let mut s = Subnet::new(usage.cidr)?;
    let mut reserved_blocks = vec![false; s.blocks() as usize];
    let base = u32::from(usage.cidr.network());
    for r in &usage.reserved {
        s.occupy_range(*r)?;
        let first = (u32::from(r.network()).saturating_sub(base)) / ADDRESSES_PER_PREFIX;
        let last = (u32::from(r.broadcast()).saturating_sub(base)) / ADDRESSES_PER_PREFIX;
        for b in first..=last {
            if let Some(slot) = reserved_blocks.get_mut(b as usize) {
                *slot = true;
            }
        }
    }
    for a in &usage.others {
        s.occupy(*a)?;
    }
    // Per block: addresses held by each ENI (by index); prefixes count as 16.
    let mut by_block: BTreeMap<u32, BTreeMap<usize, u32>> = BTreeMap::new();
    let block_of = |a: Ipv4Addr| (u32::from(a) - base) / ADDRESSES_PER_PREFIX;
    for (i, e) in usage.enis.iter().enumerate() {
        for a in std::iter::once(&e.primary).chain(&e.ips) {
            s.allocate_specific_ip(*a)?;
            *by_block
                .entry(block_of(*a))
                .or_default()
                .entry(i)
                .or_default() += 1;
        }
        for p in &e.prefixes {
            s.allocate_specific_prefix(*p)?;
            *by_block
                .entry(block_of(p.network()))
                .or_default()
                .entry(i)
                .or_default() += ADDRESSES_PER_PREFIX;
        }
    }
    let mut counts = Counts::default();
    let mut blocks = Vec::with_capacity(s.blocks() as usize);
    for ((cidr, state), reserved) in s.block_map().zip(reserved_blocks) {
        let (class, used) = match state {
            BlockState::Reserved { used } => (BlockClass::Reserved, used),
            _ if reserved => (BlockClass::Reserved, 16),
            BlockState::Free => (BlockClass::Free, 0),
            BlockState::Partial { used } => (BlockClass::Partial, used),
            BlockState::Full => (BlockClass::Full, 16),
            BlockState::Delegated => (BlockClass::Prefix, 16),
        };
        match class {
            BlockClass::Free => counts.free += 1,
            BlockClass::Partial => counts.partial += 1,
            BlockClass::Full => counts.full += 1,
            BlockClass::Prefix => counts.prefix += 1,
            BlockClass::Reserved => counts.reserved += 1,
        }
        blocks.push(Block { cidr, class, used });
    }
    // A block frees when one ENI holds all of its used addresses and nothing else uses it.
    let mut freed: BTreeMap<usize, (u32, u32)> = BTreeMap::new();
    for (b, owners) in &by_block {
        let block = &blocks[*b as usize];
        if block.class == BlockClass::Reserved || owners.len() != 1 {
            continue;
        }
        let (&eni, &held) = owners.iter().next().unwrap_or((&0, &0));
        if held == u32::from(block.used) {
            let entry = freed.entry(eni).or_default();
            entry.0 += 1;
            if block.class == BlockClass::Prefix {
                entry.1 += 1;
            }
        }
    }
    let mut drain: Vec<Drain> = freed
        .into_iter()
        .map(|(i, (blocks_freed, prefixes))| {
            let e = &usage.enis[i];
            Drain {
                eni: e.id.clone(),
                owner: e.owner.clone(),
                blocks_freed,
                prefixes,
                addresses: 1
                    + u32::try_from(e.ips.len()).unwrap_or(u32::MAX)
                    + ADDRESSES_PER_PREFIX * u32::try_from(e.prefixes.len()).unwrap_or(u32::MAX),
            }
        })
        .collect();
    drain.sort_by(|a, b| {
        b.blocks_freed
            .cmp(&a.blocks_freed)
            .then(b.addresses.cmp(&a.addresses))
            .then(a.eni.cmp(&b.eni))
    });
    drain.truncate(top);
    let stats = s.stats();
    Ok(BlockMap {
        id: usage.id.clone(),
        az: usage.az.clone(),
        band: band(stats.fragmentation),
        stats,
        counts,
        blocks,
        drain,
    })
}

/// Checks that an address belongs to the subnet, for callers converting EC2 data.
pub fn check_inside(cidr: Ipv4Network, addr: Ipv4Addr) -> Result<()> {
    if cidr.contains(addr) {
        Ok(())
    } else {
        Err(planner::Error::AddressNotInSubnet {
            addr: addr.to_string(),
            subnet: cidr.to_string(),
        }
        .into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Error;

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    fn usage(enis: Vec<EniUsage>) -> SubnetUsage {
        SubnetUsage {
            id: "s".into(),
            cidr: "10.0.0.0/24".parse().unwrap(),
            az: "z".into(),
            enis,
            others: vec![ip("10.0.0.200")],
            reserved: vec!["10.0.0.224/27".parse().unwrap()],
        }
    }

    #[test]
    fn enis_to_classes_counts_and_drain_order() {
        let u = usage(vec![
            // eni-a: primary + 2 IPs in block 1, a prefix at block 2.
            EniUsage::new(
                "eni-a",
                ip("10.0.0.16"),
                vec![ip("10.0.0.17"), ip("10.0.0.18")],
                vec!["10.0.0.32/28".parse().unwrap()],
            ),
            // eni-b: one address in block 3 and one in block 4 shared with eni-c.
            EniUsage::new("eni-b", ip("10.0.0.48"), vec![ip("10.0.0.64")], vec![]),
            EniUsage::new("eni-c", ip("10.0.0.65"), vec![], vec![]),
        ]);
        let m = block_map(&u, 10).unwrap();
        // 16 blocks: the first (AWS) and the /27 reservation (2 blocks, the last AWS too).
        assert_eq!(
            m.counts,
            Counts {
                free: 8,
                partial: 4,
                full: 0,
                prefix: 1,
                reserved: 3,
            }
        );
        assert_eq!(m.blocks[2].class, BlockClass::Prefix);
        assert_eq!(m.blocks[12].class, BlockClass::Partial); // .200, another tenant
        assert_eq!(m.blocks[14].class, BlockClass::Reserved);
        // eni-a frees blocks 1 and 2; eni-b frees block 3 only (block 4 is shared).
        let order: Vec<(&str, u32)> = m
            .drain
            .iter()
            .map(|d| (d.eni.as_str(), d.blocks_freed))
            .collect();
        assert_eq!(order, [("eni-a", 2), ("eni-b", 1)]);
        assert_eq!(m.drain[0].prefixes, 1);
        assert_eq!(m.band, "moderate");
    }

    #[test]
    fn duplicate_or_outside_address_to_error() {
        let dup = usage(vec![
            EniUsage::new("a", ip("10.0.0.20"), vec![], vec![]),
            EniUsage::new("b", ip("10.0.0.20"), vec![], vec![]),
        ]);
        assert!(matches!(
            block_map(&dup, 3),
            Err(Error::Core(planner::Error::AddressUnavailable { .. }))
        ));
        let outside = usage(vec![EniUsage::new("a", ip("10.0.1.20"), vec![], vec![])]);
        assert!(matches!(
            block_map(&outside, 3),
            Err(Error::Core(planner::Error::AddressNotInSubnet { .. }))
        ));
    }
}
