//! The VPC subnet address-space model: which IPv4 addresses of one subnet are free, reserved by
//! AWS, used by other tenants, allocated as secondary IPs, or inside delegated /28 prefixes.
//!
//! # AWS rules modelled
//!
//! * A subnet is a canonical IPv4 CIDR from /16 (65 536 addresses) to /28 (16 addresses).
//! * AWS reserves five addresses of every subnet: the network address and the next three
//!   (`.0` router, `.1` VPC router, `.2` DNS, `.3` future use) and the last (broadcast). So a
//!   subnet has `size − 5` **usable** addresses: 251 in a /24, 11 in a /28. This is EC2's
//!   `AvailableIpAddressCount` of an empty subnet.
//! * A delegated IPv4 prefix is a /28 aligned on a 16-address boundary whose 16 addresses are
//!   all free. The first /28 (it holds `.0`–`.3`) and the last (it holds the broadcast address)
//!   can therefore never be delegated: a /24 has 16 − 2 = 14 delegatable /28s, a /26 has 2, and
//!   a /27 or /28 has none.
//! * EC2 answers a request for more addresses than are free with
//!   `InsufficientFreeAddressesInSubnet` ([`Error::InsufficientFreeAddressesInSubnet`]), and a
//!   request for more prefixes than there are entirely free aligned /28s with
//!   `InsufficientCidrBlocks` ([`Error::InsufficientCidrBlocks`]) — even when thousands of
//!   addresses remain free but scattered over partly used blocks (fragmentation). Both are
//!   atomic: a batch either succeeds completely or changes nothing.
//!
//! # Representation
//!
//! The subnet is cut into its aligned /28 *blocks* (4096 in a /16). Each block keeps `u16` bit
//! masks (bit `i` = address `block base + i`): one per kind of use, plus their union, the
//! occupancy mask. A block's free address count is the number of zero bits of the occupancy
//! mask and it can be delegated exactly when the mask is zero. Totals are kept incrementally and
//! three ordered indices (free blocks, blocks with a free address, partly used blocks by
//! fullness) make every allocation `O(log blocks)`, so statistics are `O(1)`.
//!
//! Placement is chosen by a deterministic [`Placement`] policy: [`Placement::Lowest`],
//! [`Placement::Packed`] (fill the fullest partly used block first so whole /28s stay free) or
//! [`Placement::Scattered`] (pseudo-random like real EC2, reproducible from a seed).
//!
//! ```
//! use planner::subnet::{Placement, Subnet};
//! let mut s = Subnet::new("10.0.0.0/24".parse()?)?;
//! assert_eq!((s.usable(), s.free_blocks(), s.fragmentation()), (251, 14, 0.0));
//!
//! let ip = s.allocate_ip(Placement::Lowest)?;
//! assert_eq!(ip.to_string(), "10.0.0.4"); // .0 to .3 are reserved by AWS
//! let prefix = s.allocate_prefix(Placement::Lowest)?;
//! assert_eq!(prefix.to_string(), "10.0.0.16/28"); // the first /28 holds reserved addresses
//! assert_eq!((s.free_addresses(), s.free_blocks()), (251 - 1 - 16, 13));
//!
//! // One address taken in each remaining delegatable block: 221 addresses free, but no /28.
//! for block in 2..15 {
//!     s.allocate_specific_ip(std::net::Ipv4Addr::new(10, 0, 0, block * 16))?;
//! }
//! assert_eq!((s.free_addresses(), s.free_blocks()), (221, 0));
//! assert!(matches!(
//!     s.allocate_prefix(Placement::Lowest),
//!     Err(planner::Error::InsufficientCidrBlocks { free_blocks: 0, free_addresses: 221, .. })
//! ));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::BTreeSet;
use std::fmt;
use std::net::Ipv4Addr;

pub use ipnetwork::Ipv4Network;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::rng::Rng;

/// Addresses in one delegated IPv4 prefix (/28), which is also one aligned block of the
/// subnet model. The one name of this 16 in the workspace.
pub const ADDRESSES_PER_PREFIX: u32 = 16;
/// Prefix length of a block and of a delegated IPv4 prefix.
pub const BLOCK_PREFIX_LEN: u8 = 28;
/// The largest subnet AWS allows (shortest prefix length).
pub const MIN_SUBNET_PREFIX_LEN: u8 = 16;
/// The smallest subnet AWS allows (longest prefix length).
pub const MAX_SUBNET_PREFIX_LEN: u8 = 28;
/// Addresses AWS reserves in every subnet: the first four and the last.
pub const AWS_RESERVED_ADDRESSES: u32 = 5;

/// Every address of a block.
const FULL: u16 = u16::MAX;
/// The network address and the three after it, in the first block.
const RESERVED_HEAD: u16 = 0b1111;
/// The broadcast address, in the last block.
const RESERVED_TAIL: u16 = 1 << 15;
/// Random probes [`Placement::Scattered`] makes before walking to the next free address.
const SCATTER_PROBES: u32 = 8;

/// How an allocator chooses among free addresses or free /28 blocks. Every policy is
/// deterministic: the same operations on the same subnet give the same addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(tag = "policy", rename_all = "kebab-case")]
pub enum Placement {
    /// The lowest free address; for prefixes, the lowest free aligned /28.
    Lowest,
    /// Addresses go to the lowest free address of the *fullest* partly used block (ties: the
    /// lowest block), and only when no block is partly used to the lowest free block, so whole
    /// /28s stay free for prefixes — the anti-fragmentation policy. Prefixes: as `Lowest`.
    Packed,
    /// Pseudo-random, like real EC2. Addresses are drawn uniformly by up to eight random
    /// probes; if all hit used addresses, the first free address at or after one more random
    /// point (wrapping) is taken. Prefixes are drawn the same way among the blocks.
    ///
    /// The generator ([`crate::rng::Rng`], splitmix64) lives in the [`Subnet`]: it is seeded from `seed` the first
    /// time it is used and whenever a different seed is passed; calls with the same seed
    /// continue one stream. Failed requests do not advance it.
    Scattered {
        /// Seed of the generator.
        seed: u64,
    },
}

/// What one address of a subnet is used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AddressState {
    /// Free: can be allocated.
    Free,
    /// One of the five addresses AWS reserves in every subnet.
    Reserved,
    /// Used by something outside the model (other instances, load balancers, endpoints…);
    /// see [`Subnet::occupy`] and [`Subnet::occupy_range`].
    OtherTenant,
    /// Allocated as a secondary private IP ([`Subnet::allocate_ip`]).
    SecondaryIp,
    /// Inside a delegated /28 prefix ([`Subnet::allocate_prefix`]).
    Prefix,
}

impl fmt::Display for AddressState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AddressState::Free => "free",
            AddressState::Reserved => "reserved by AWS",
            AddressState::OtherTenant => "used by another tenant",
            AddressState::SecondaryIp => "allocated as a secondary IP",
            AddressState::Prefix => "inside a delegated prefix",
        })
    }
}

/// The state of one aligned /28 block, as listed by [`Subnet::block_map`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum BlockState {
    /// All 16 addresses free: the block can be delegated as a prefix.
    Free,
    /// Some, not all, addresses used (no AWS-reserved address in the block).
    Partial {
        /// Used addresses, 1 to 15.
        used: u8,
    },
    /// All 16 addresses used, not as one delegated prefix.
    Full,
    /// Delegated as one prefix.
    Delegated,
    /// Holds AWS-reserved addresses (the first and the last block): never delegatable.
    Reserved {
        /// Used addresses, the reserved ones included (at least 1, at most 16).
        used: u8,
    },
}

/// A compact summary of a subnet, for reports and JSON output.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SubnetStats {
    /// The subnet's CIDR.
    pub cidr: Ipv4Network,
    /// Addresses in the CIDR.
    pub size: u32,
    /// `size − 5` (AWS reserves five addresses).
    pub usable: u32,
    /// Free addresses (EC2's `AvailableIpAddressCount`).
    pub free_addresses: u32,
    /// Entirely free aligned /28 blocks (prefixes that can still be delegated).
    pub free_blocks: u32,
    /// Blocks without AWS-reserved addresses (the most prefixes the subnet can ever hold).
    pub delegatable_blocks: u32,
    /// Addresses allocated as secondary IPs.
    pub allocated_ips: u32,
    /// Delegated /28 prefixes.
    pub allocated_prefixes: u32,
    /// Addresses used by other tenants.
    pub other_tenant_addresses: u32,
    /// See [`Subnet::fragmentation`].
    pub fragmentation: f64,
}

/// Per-block bit masks; bit `i` is address `block base + i`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Block {
    /// Union of all uses (the occupancy mask).
    used: u16,
    /// AWS-reserved addresses.
    reserved: u16,
    /// Other tenants.
    other: u16,
    /// Secondary IPs.
    ips: u16,
    /// Delegated as a whole prefix (then every other mask is zero).
    prefix: bool,
}

impl Block {
    fn union(&self) -> u16 {
        self.reserved | self.other | self.ips | if self.prefix { FULL } else { 0 }
    }

    fn free(&self) -> u32 {
        (!self.used).count_ones()
    }

    /// The lowest free bit; 16 when the block is full.
    fn lowest_free(&self) -> u32 {
        self.used.trailing_ones()
    }

    fn state(&self, bit: u32) -> AddressState {
        let m = 1u16 << bit;
        if self.prefix {
            AddressState::Prefix
        } else if self.reserved & m != 0 {
            AddressState::Reserved
        } else if self.other & m != 0 {
            AddressState::OtherTenant
        } else if self.ips & m != 0 {
            AddressState::SecondaryIp
        } else {
            AddressState::Free
        }
    }
}

/// The [`Placement::Scattered`] stream: the workspace's generator ([`crate::rng::Rng`],
/// splitmix64) and the seed it was started from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct Scatter {
    seed: Option<u64>,
    rng: Rng,
}

impl Scatter {
    fn use_seed(&mut self, seed: u64) {
        if self.seed != Some(seed) {
            self.seed = Some(seed);
            self.rng = Rng::new(seed);
        }
    }

    fn below(&mut self, n: u32) -> u32 {
        self.rng.below(n)
    }
}

/// One VPC subnet's IPv4 address space. See the [module documentation](self).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subnet {
    cidr: Ipv4Network,
    /// The network address as a number.
    base: u32,
    /// Addresses in the CIDR.
    size: u32,
    blocks: Vec<Block>,
    free_addresses: u32,
    free_block_count: u32,
    allocated_ips: u32,
    allocated_prefixes: u32,
    other_tenant: u32,
    /// Blocks with all 16 addresses free.
    free_blocks: BTreeSet<u32>,
    /// Blocks with at least one free address.
    open_blocks: BTreeSet<u32>,
    /// Blocks with 1 to 15 free addresses, keyed by (free addresses, block).
    partial_blocks: BTreeSet<(u32, u32)>,
    rng: Scatter,
}

impl Subnet {
    /// A subnet with only the five AWS-reserved addresses in use.
    ///
    /// Fails with [`Error::InvalidSubnetCidr`] when the prefix length is outside /16../28 or
    /// host bits are set (`10.0.0.1/24`).
    ///
    /// ```
    /// use planner::subnet::Subnet;
    /// let s = Subnet::new("10.0.0.0/28".parse()?)?;
    /// assert_eq!((s.size(), s.usable(), s.free_blocks()), (16, 11, 0));
    /// assert!(Subnet::new("10.0.0.0/29".parse()?).is_err());
    /// assert!(Subnet::new("10.0.0.1/24".parse()?).is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new(cidr: Ipv4Network) -> Result<Subnet> {
        let len = cidr.prefix();
        if !(MIN_SUBNET_PREFIX_LEN..=MAX_SUBNET_PREFIX_LEN).contains(&len) {
            return Err(Error::InvalidSubnetCidr {
                cidr: cidr.to_string(),
                reason: format!(
                    "prefix length /{len} is outside /{MIN_SUBNET_PREFIX_LEN} to /{MAX_SUBNET_PREFIX_LEN}, the subnet sizes AWS allows"
                ),
            });
        }
        if cidr.ip() != cidr.network() {
            return Err(Error::InvalidSubnetCidr {
                cidr: cidr.to_string(),
                reason: format!(
                    "host bits are set; the subnet would be {}/{len}",
                    cidr.network()
                ),
            });
        }
        let size = cidr.size();
        let mut blocks = vec![Block::default(); (size / ADDRESSES_PER_PREFIX) as usize];
        if let Some(first) = blocks.first_mut() {
            first.reserved |= RESERVED_HEAD;
        }
        if let Some(last) = blocks.last_mut() {
            last.reserved |= RESERVED_TAIL;
        }
        let mut subnet = Subnet {
            cidr,
            base: u32::from(cidr.network()),
            size,
            blocks,
            free_addresses: 0,
            free_block_count: 0,
            allocated_ips: 0,
            allocated_prefixes: 0,
            other_tenant: 0,
            free_blocks: BTreeSet::new(),
            open_blocks: BTreeSet::new(),
            partial_blocks: BTreeSet::new(),
            rng: Scatter::default(),
        };
        subnet.rebuild();
        Ok(subnet)
    }

    /// The subnet's CIDR.
    pub fn cidr(&self) -> Ipv4Network {
        self.cidr
    }

    /// Whether `addr` lies inside the subnet's CIDR (reserved addresses included).
    pub fn contains(&self, addr: Ipv4Addr) -> bool {
        self.offset(addr).is_some()
    }

    /// What `addr` is used for, or `None` when it lies outside the subnet.
    ///
    /// ```
    /// use planner::subnet::{AddressState, Subnet};
    /// let s = Subnet::new("10.0.0.0/24".parse()?)?;
    /// assert_eq!(s.state("10.0.0.3".parse()?), Some(AddressState::Reserved));
    /// assert_eq!(s.state("10.0.0.4".parse()?), Some(AddressState::Free));
    /// assert_eq!(s.state("10.0.0.255".parse()?), Some(AddressState::Reserved));
    /// assert_eq!(s.state("10.0.1.0".parse()?), None);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn state(&self, addr: Ipv4Addr) -> Option<AddressState> {
        let off = self.offset(addr)?;
        Some(self.blocks[(off / ADDRESSES_PER_PREFIX) as usize].state(off % ADDRESSES_PER_PREFIX))
    }

    /// Addresses in the CIDR: `2^(32 − prefix length)`.
    ///
    /// ```
    /// # use planner::subnet::Subnet;
    /// assert_eq!(Subnet::new("10.0.0.0/16".parse()?)?.size(), 65_536);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn size(&self) -> u32 {
        self.size
    }

    /// Usable addresses: `size − 5`, since AWS reserves the first four and the last address.
    ///
    /// ```
    /// # use planner::subnet::Subnet;
    /// assert_eq!(Subnet::new("10.0.0.0/24".parse()?)?.usable(), 251);
    /// assert_eq!(Subnet::new("10.0.0.0/28".parse()?)?.usable(), 11);
    /// assert_eq!(Subnet::new("10.0.0.0/16".parse()?)?.usable(), 65_531);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn usable(&self) -> u32 {
        self.size - AWS_RESERVED_ADDRESSES
    }

    /// Aligned /28 blocks in the subnet: `size / 16`.
    ///
    /// ```
    /// # use planner::subnet::Subnet;
    /// assert_eq!(Subnet::new("10.0.0.0/16".parse()?)?.blocks(), 4096);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn blocks(&self) -> u32 {
        self.size / ADDRESSES_PER_PREFIX
    }

    /// Blocks without AWS-reserved addresses — the most prefixes the subnet can ever hold:
    /// `size / 16 − 2`, or 0 for a /27 or /28.
    ///
    /// ```
    /// # use planner::subnet::Subnet;
    /// assert_eq!(Subnet::new("10.0.0.0/24".parse()?)?.delegatable_blocks(), 14);
    /// assert_eq!(Subnet::new("10.0.0.0/26".parse()?)?.delegatable_blocks(), 2);
    /// assert_eq!(Subnet::new("10.0.0.0/27".parse()?)?.delegatable_blocks(), 0);
    /// assert_eq!(Subnet::new("10.0.0.0/28".parse()?)?.delegatable_blocks(), 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn delegatable_blocks(&self) -> u32 {
        self.blocks().saturating_sub(2)
    }

    /// Free addresses: `usable − secondary IPs − 16 × prefixes − other tenants` (EC2's
    /// `AvailableIpAddressCount`).
    ///
    /// ```
    /// use planner::subnet::{Placement, Subnet};
    /// let mut s = Subnet::new("10.0.0.0/24".parse()?)?;
    /// s.allocate_ips(3, Placement::Packed)?;
    /// s.allocate_prefix(Placement::Packed)?;
    /// s.occupy("10.0.0.200".parse()?)?;
    /// assert_eq!(s.free_addresses(), 251 - 3 - 16 - 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn free_addresses(&self) -> u32 {
        self.free_addresses
    }

    /// Aligned /28 blocks whose 16 addresses are all free: the prefixes that can still be
    /// delegated.
    ///
    /// ```
    /// use planner::subnet::Subnet;
    /// let mut s = Subnet::new("10.0.0.0/24".parse()?)?;
    /// assert_eq!(s.free_blocks(), 14);
    /// s.occupy("10.0.0.40".parse()?)?; // inside 10.0.0.32/28
    /// assert_eq!(s.free_blocks(), 13);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn free_blocks(&self) -> u32 {
        self.free_block_count
    }

    /// Addresses allocated as secondary IPs.
    pub fn allocated_ips(&self) -> u32 {
        self.allocated_ips
    }

    /// Delegated /28 prefixes.
    pub fn allocated_prefixes(&self) -> u32 {
        self.allocated_prefixes
    }

    /// Addresses used by other tenants ([`Subnet::occupy`], [`Subnet::occupy_range`]).
    pub fn other_tenant_addresses(&self) -> u32 {
        self.other_tenant
    }

    /// How fragmented the free space is, in `[0, 1]`:
    ///
    /// `fragmentation = 1 − 16 × free_blocks / F`, where `F` is the number of free addresses
    /// outside the first and last block (their AWS-reserved addresses mean they can never be
    /// delegated, so their free addresses do not count as fragmentation); 0 when `F = 0`.
    ///
    /// 0 means every free address can still be handed out inside a prefix; 1 means addresses
    /// are free but no aligned /28 is (prefix requests fail with `InsufficientCidrBlocks`).
    ///
    /// ```
    /// use planner::subnet::Subnet;
    /// let mut s = Subnet::new("10.0.0.0/24".parse()?)?;
    /// assert_eq!(s.fragmentation(), 0.0);
    /// s.occupy("10.0.0.16".parse()?)?; // one address in one of the 14 delegatable blocks
    /// // F = 14 × 16 − 1 = 223 free, 13 free blocks: 1 − 208 / 223
    /// assert!((s.fragmentation() - (1.0 - 208.0 / 223.0)).abs() < 1e-12);
    /// for block in 2..15 {
    ///     s.occupy(std::net::Ipv4Addr::new(10, 0, 0, block * 16))?;
    /// }
    /// assert_eq!((s.free_blocks(), s.fragmentation()), (0, 1.0));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn fragmentation(&self) -> f64 {
        let f = self.free_addresses - self.free_in_reserved_blocks();
        if f == 0 {
            0.0
        } else {
            1.0 - f64::from(self.free_block_count * ADDRESSES_PER_PREFIX) / f64::from(f)
        }
    }

    /// The summary of all statistics.
    ///
    /// ```
    /// use planner::subnet::Subnet;
    /// let s = Subnet::new("10.0.0.0/24".parse()?)?.stats();
    /// assert_eq!((s.usable, s.free_addresses, s.free_blocks, s.delegatable_blocks), (251, 251, 14, 14));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn stats(&self) -> SubnetStats {
        SubnetStats {
            cidr: self.cidr,
            size: self.size,
            usable: self.usable(),
            free_addresses: self.free_addresses,
            free_blocks: self.free_block_count,
            delegatable_blocks: self.delegatable_blocks(),
            allocated_ips: self.allocated_ips,
            allocated_prefixes: self.allocated_prefixes,
            other_tenant_addresses: self.other_tenant,
            fragmentation: self.fragmentation(),
        }
    }

    /// Every aligned /28 block with its state, lowest first (no allocation; `O(1)` per item).
    ///
    /// ```
    /// use planner::subnet::{BlockState, Placement, Subnet};
    /// let mut s = Subnet::new("10.0.0.0/26".parse()?)?;
    /// s.allocate_prefix(Placement::Lowest)?;
    /// s.occupy("10.0.0.33".parse()?)?;
    /// let states: Vec<BlockState> = s.block_map().map(|(_, state)| state).collect();
    /// assert_eq!(
    ///     states,
    ///     [
    ///         BlockState::Reserved { used: 4 },
    ///         BlockState::Delegated,
    ///         BlockState::Partial { used: 1 },
    ///         BlockState::Reserved { used: 1 },
    ///     ]
    /// );
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn block_map(&self) -> impl ExactSizeIterator<Item = (Ipv4Network, BlockState)> + '_ {
        self.blocks.iter().zip(0..self.blocks()).map(|(blk, b)| {
            // Cannot fail: a block's count of used addresses is at most 16.
            let used = u8::try_from(blk.used.count_ones()).unwrap_or(u8::MAX);
            let state = if blk.reserved != 0 {
                BlockState::Reserved { used }
            } else if blk.prefix {
                BlockState::Delegated
            } else if blk.used == 0 {
                BlockState::Free
            } else if blk.used == FULL {
                BlockState::Full
            } else {
                BlockState::Partial { used }
            };
            (self.block_net(b), state)
        })
    }

    /// Allocates one secondary IP chosen by `placement`.
    ///
    /// Fails with [`Error::InsufficientFreeAddressesInSubnet`] when no address is free.
    ///
    /// ```
    /// use planner::subnet::{Placement, Subnet};
    /// let mut s = Subnet::new("10.0.0.0/24".parse()?)?;
    /// assert_eq!(s.allocate_ip(Placement::Lowest)?.to_string(), "10.0.0.4");
    /// assert_eq!(s.allocate_ip(Placement::Lowest)?.to_string(), "10.0.0.5");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn allocate_ip(&mut self, placement: Placement) -> Result<Ipv4Addr> {
        let (b, bit) = self
            .pick_address(placement)
            .ok_or_else(|| self.insufficient_addresses(1))?;
        self.update(b, |blk| blk.ips |= 1 << bit);
        Ok(self.addr_at(b, bit))
    }

    /// Allocates `n` secondary IPs chosen by `placement`, all or nothing: when fewer than `n`
    /// addresses are free it fails with [`Error::InsufficientFreeAddressesInSubnet`] and
    /// changes nothing. `n = 0` returns an empty list.
    ///
    /// ```
    /// use planner::subnet::{Placement, Subnet};
    /// let mut s = Subnet::new("10.0.0.0/28".parse()?)?;
    /// assert!(s.allocate_ips(12, Placement::Lowest).is_err()); // only 11 usable
    /// assert_eq!(s.free_addresses(), 11);
    /// assert_eq!(s.allocate_ips(11, Placement::Lowest)?.len(), 11);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn allocate_ips(&mut self, n: u32, placement: Placement) -> Result<Vec<Ipv4Addr>> {
        if n > self.free_addresses {
            return Err(self.insufficient_addresses(n));
        }
        let mut out = Vec::with_capacity(n as usize);
        for _ in 0..n {
            let Some((b, bit)) = self.pick_address(placement) else {
                // Unreachable while the counters are right; undo to stay atomic regardless.
                for addr in out {
                    let _ = self.release_ip(addr);
                }
                return Err(self.insufficient_addresses(n));
            };
            self.update(b, |blk| blk.ips |= 1 << bit);
            out.push(self.addr_at(b, bit));
        }
        Ok(out)
    }

    /// Allocates the given address as a secondary IP.
    ///
    /// Fails with [`Error::AddressNotInSubnet`] or, when the address is reserved by AWS or
    /// already used, [`Error::AddressUnavailable`].
    ///
    /// ```
    /// use planner::subnet::{Placement, Subnet};
    /// let mut s = Subnet::new("10.0.0.0/24".parse()?)?;
    /// s.allocate_specific_ip("10.0.0.4".parse()?)?;
    /// assert!(s.allocate_specific_ip("10.0.0.4".parse()?).is_err()); // taken
    /// assert!(s.allocate_specific_ip("10.0.0.1".parse()?).is_err()); // reserved
    /// assert!(s.allocate_specific_ip("10.0.1.4".parse()?).is_err()); // outside
    /// assert_eq!(s.allocate_ip(Placement::Lowest)?.to_string(), "10.0.0.5");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn allocate_specific_ip(&mut self, addr: Ipv4Addr) -> Result<()> {
        let (b, bit) = self.free_address(addr)?;
        self.update(b, |blk| blk.ips |= 1 << bit);
        Ok(())
    }

    /// Releases a secondary IP. Fails with [`Error::NotAllocated`] (changing nothing) when the
    /// address is not allocated as a secondary IP, or [`Error::AddressNotInSubnet`].
    ///
    /// ```
    /// use planner::subnet::{Placement, Subnet};
    /// let mut s = Subnet::new("10.0.0.0/24".parse()?)?;
    /// let ip = s.allocate_ip(Placement::Packed)?;
    /// s.release_ip(ip)?;
    /// assert!(s.release_ip(ip).is_err()); // already free
    /// assert_eq!(s.free_addresses(), 251);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn release_ip(&mut self, addr: Ipv4Addr) -> Result<()> {
        let (b, bit) = self.locate(addr)?;
        let state = self.blocks[b as usize].state(bit);
        if state != AddressState::SecondaryIp {
            return Err(Error::NotAllocated {
                what: format!("secondary IP {addr}"),
                state,
            });
        }
        self.update(b, |blk| blk.ips &= !(1 << bit));
        Ok(())
    }

    /// Delegates one free aligned /28 chosen by `placement` (`Lowest` and `Packed` both take
    /// the lowest free block).
    ///
    /// Fails with [`Error::InsufficientCidrBlocks`] when no aligned /28 is entirely free, even
    /// if free addresses remain.
    ///
    /// ```
    /// use planner::subnet::{Placement, Subnet};
    /// let mut s = Subnet::new("10.0.0.0/26".parse()?)?;
    /// assert_eq!(s.allocate_prefix(Placement::Lowest)?.to_string(), "10.0.0.16/28");
    /// assert_eq!(s.allocate_prefix(Placement::Lowest)?.to_string(), "10.0.0.32/28");
    /// assert!(s.allocate_prefix(Placement::Lowest).is_err()); // 27 addresses left, no /28
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn allocate_prefix(&mut self, placement: Placement) -> Result<Ipv4Network> {
        let b = self
            .pick_block(placement)
            .ok_or_else(|| self.insufficient_blocks(1))?;
        self.update(b, |blk| blk.prefix = true);
        Ok(self.block_net(b))
    }

    /// Delegates `n` free aligned /28s chosen by `placement`, all or nothing: when fewer than
    /// `n` blocks are free it fails with [`Error::InsufficientCidrBlocks`] and changes nothing.
    /// `n = 0` returns an empty list.
    ///
    /// ```
    /// use planner::subnet::{Placement, Subnet};
    /// let mut s = Subnet::new("10.0.0.0/24".parse()?)?;
    /// assert!(s.allocate_prefixes(15, Placement::Lowest).is_err()); // 14 delegatable
    /// assert_eq!(s.allocate_prefixes(14, Placement::Lowest)?.len(), 14);
    /// assert_eq!(s.free_addresses(), 251 - 14 * 16);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn allocate_prefixes(&mut self, n: u32, placement: Placement) -> Result<Vec<Ipv4Network>> {
        if n > self.free_block_count {
            return Err(self.insufficient_blocks(n));
        }
        let mut out = Vec::with_capacity(n as usize);
        for _ in 0..n {
            let Some(b) = self.pick_block(placement) else {
                // Unreachable while the counters are right; undo to stay atomic regardless.
                for net in out {
                    let _ = self.release_prefix(net);
                }
                return Err(self.insufficient_blocks(n));
            };
            self.update(b, |blk| blk.prefix = true);
            out.push(self.block_net(b));
        }
        Ok(out)
    }

    /// Delegates the given /28. It must be an aligned /28 inside the subnet
    /// ([`Error::InvalidPrefix`], [`Error::AddressNotInSubnet`]) with all 16 addresses free
    /// ([`Error::PrefixUnavailable`] names the lowest used one).
    ///
    /// ```
    /// use planner::subnet::Subnet;
    /// let mut s = Subnet::new("10.0.0.0/24".parse()?)?;
    /// s.allocate_specific_prefix("10.0.0.32/28".parse()?)?;
    /// assert!(s.allocate_specific_prefix("10.0.0.0/28".parse()?).is_err()); // reserved .0-.3
    /// assert!(s.allocate_specific_prefix("10.0.0.40/28".parse()?).is_err()); // not aligned
    /// assert_eq!(s.free_blocks(), 13);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn allocate_specific_prefix(&mut self, prefix: Ipv4Network) -> Result<()> {
        let b = self.prefix_block(prefix)?;
        let blk = self.blocks[b as usize];
        if blk.used != 0 {
            let bit = blk.used.trailing_zeros();
            return Err(Error::PrefixUnavailable {
                prefix: prefix.to_string(),
                addr: self.addr_at(b, bit).to_string(),
                state: blk.state(bit),
            });
        }
        self.update(b, |blk| blk.prefix = true);
        Ok(())
    }

    /// Releases a delegated prefix, freeing its 16 addresses. Fails with
    /// [`Error::NotAllocated`] (changing nothing) when the /28 is not delegated.
    ///
    /// ```
    /// use planner::subnet::{Placement, Subnet};
    /// let mut s = Subnet::new("10.0.0.0/24".parse()?)?;
    /// let p = s.allocate_prefix(Placement::Lowest)?;
    /// s.release_prefix(p)?;
    /// assert!(s.release_prefix(p).is_err());
    /// assert_eq!((s.free_addresses(), s.free_blocks()), (251, 14));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn release_prefix(&mut self, prefix: Ipv4Network) -> Result<()> {
        let b = self.prefix_block(prefix)?;
        let blk = self.blocks[b as usize];
        if !blk.prefix {
            let (what, state) = if blk.used == 0 {
                (format!("prefix {prefix}"), AddressState::Free)
            } else {
                let bit = blk.used.trailing_zeros();
                (
                    format!("prefix {prefix} (address {})", self.addr_at(b, bit)),
                    blk.state(bit),
                )
            };
            return Err(Error::NotAllocated { what, state });
        }
        self.update(b, |blk| blk.prefix = false);
        Ok(())
    }

    /// Marks one free address as used by another tenant (an instance, a load balancer, an
    /// endpoint…). Fails like [`Subnet::allocate_specific_ip`].
    pub fn occupy(&mut self, addr: Ipv4Addr) -> Result<()> {
        let (b, bit) = self.free_address(addr)?;
        self.update(b, |blk| blk.other |= 1 << bit);
        Ok(())
    }

    /// Marks every free address of `range` (a canonical CIDR inside the subnet) as used by
    /// another tenant and returns how many changed. AWS-reserved addresses and addresses
    /// already used by other tenants are skipped, so whole ranges such as "the first /26" can be
    /// given; an address allocated by this model in the range fails the call with
    /// [`Error::AddressUnavailable`] and changes nothing.
    ///
    /// ```
    /// use planner::subnet::Subnet;
    /// let mut s = Subnet::new("10.0.0.0/24".parse()?)?;
    /// assert_eq!(s.occupy_range("10.0.0.0/26".parse()?)?, 60); // 64 minus .0-.3
    /// assert_eq!((s.free_addresses(), s.free_blocks()), (191, 11));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn occupy_range(&mut self, range: Ipv4Network) -> Result<u32> {
        let (first, last) = self.range_offsets(range)?;
        for (b, mask) in Self::range_blocks(first, last) {
            let blk = &self.blocks[b as usize];
            let allocated = (blk.ips | if blk.prefix { FULL } else { 0 }) & mask;
            if allocated != 0 {
                let bit = allocated.trailing_zeros();
                return Err(Error::AddressUnavailable {
                    addr: self.addr_at(b, bit).to_string(),
                    state: blk.state(bit),
                });
            }
        }
        let mut changed = 0;
        for (b, mask) in Self::range_blocks(first, last) {
            let add = mask & !self.blocks[b as usize].used;
            if add != 0 {
                changed += add.count_ones();
                self.update(b, |blk| blk.other |= add);
            }
        }
        Ok(changed)
    }

    /// Frees every address of `range` (a canonical CIDR inside the subnet) that is used by
    /// another tenant and returns how many changed; other addresses are left alone.
    ///
    /// ```
    /// use planner::subnet::Subnet;
    /// let mut s = Subnet::new("10.0.0.0/24".parse()?)?;
    /// s.occupy_range("10.0.0.64/27".parse()?)?;
    /// assert_eq!(s.vacate_range("10.0.0.64/28".parse()?)?, 16);
    /// assert_eq!(s.other_tenant_addresses(), 16);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn vacate_range(&mut self, range: Ipv4Network) -> Result<u32> {
        let (first, last) = self.range_offsets(range)?;
        let mut changed = 0;
        for (b, mask) in Self::range_blocks(first, last) {
            let remove = mask & self.blocks[b as usize].other;
            if remove != 0 {
                changed += remove.count_ones();
                self.update(b, |blk| blk.other &= !remove);
            }
        }
        Ok(changed)
    }

    // ----- internals -------------------------------------------------------------------------

    /// Recomputes every mask union, counter and index from the per-kind masks.
    fn rebuild(&mut self) {
        self.free_addresses = 0;
        self.free_block_count = 0;
        self.allocated_ips = 0;
        self.allocated_prefixes = 0;
        self.other_tenant = 0;
        self.free_blocks.clear();
        self.open_blocks.clear();
        self.partial_blocks.clear();
        for (blk, b) in self.blocks.iter_mut().zip(0u32..) {
            blk.used = blk.union();
            let free = blk.free();
            self.free_addresses += free;
            self.allocated_ips += blk.ips.count_ones();
            self.other_tenant += blk.other.count_ones();
            self.allocated_prefixes += u32::from(blk.prefix);
            if free == ADDRESSES_PER_PREFIX {
                self.free_block_count += 1;
                self.free_blocks.insert(b);
            }
            if free > 0 {
                self.open_blocks.insert(b);
            }
            if free > 0 && free < ADDRESSES_PER_PREFIX {
                self.partial_blocks.insert((free, b));
            }
        }
    }

    /// Applies `change` to block `b` and keeps every counter and index in step.
    fn update(&mut self, b: u32, change: impl FnOnce(&mut Block)) {
        let blk = &mut self.blocks[b as usize];
        let old = *blk;
        change(blk);
        blk.used = blk.union();
        let new = *blk;
        self.allocated_ips = self.allocated_ips + new.ips.count_ones() - old.ips.count_ones();
        self.other_tenant = self.other_tenant + new.other.count_ones() - old.other.count_ones();
        self.allocated_prefixes =
            self.allocated_prefixes + u32::from(new.prefix) - u32::from(old.prefix);
        if old.used == new.used {
            return;
        }
        let (old_free, new_free) = (old.free(), new.free());
        self.free_addresses = self.free_addresses + new_free - old_free;
        if old_free == ADDRESSES_PER_PREFIX {
            self.free_blocks.remove(&b);
            self.free_block_count -= 1;
        }
        if new_free == ADDRESSES_PER_PREFIX {
            self.free_blocks.insert(b);
            self.free_block_count += 1;
        }
        if old_free == 0 {
            self.open_blocks.insert(b);
        }
        if new_free == 0 {
            self.open_blocks.remove(&b);
        }
        if old_free > 0 && old_free < ADDRESSES_PER_PREFIX {
            self.partial_blocks.remove(&(old_free, b));
        }
        if new_free > 0 && new_free < ADDRESSES_PER_PREFIX {
            self.partial_blocks.insert((new_free, b));
        }
    }

    /// Chooses a free address as (block, bit); `None` only when none is free.
    fn pick_address(&mut self, placement: Placement) -> Option<(u32, u32)> {
        let b = match placement {
            Placement::Lowest => *self.open_blocks.first()?,
            Placement::Packed => match self.partial_blocks.first() {
                Some(&(_, b)) => b,
                None => *self.free_blocks.first()?,
            },
            Placement::Scattered { seed } => {
                if self.free_addresses == 0 {
                    return None;
                }
                self.rng.use_seed(seed);
                for _ in 0..SCATTER_PROBES {
                    let off = self.rng.below(self.size);
                    let (b, bit) = (off / ADDRESSES_PER_PREFIX, off % ADDRESSES_PER_PREFIX);
                    if self.blocks[b as usize].used & (1 << bit) == 0 {
                        return Some((b, bit));
                    }
                }
                let off = self.rng.below(self.size);
                let (b, bit) = (off / ADDRESSES_PER_PREFIX, off % ADDRESSES_PER_PREFIX);
                let at_or_after = !self.blocks[b as usize].used & (FULL << bit);
                if at_or_after != 0 {
                    return Some((b, at_or_after.trailing_zeros()));
                }
                *self
                    .open_blocks
                    .range(b + 1..)
                    .next()
                    .or_else(|| self.open_blocks.first())?
            }
        };
        Some((b, self.blocks[b as usize].lowest_free()))
    }

    /// Chooses an entirely free block; `None` only when none is.
    fn pick_block(&mut self, placement: Placement) -> Option<u32> {
        match placement {
            Placement::Lowest | Placement::Packed => self.free_blocks.first().copied(),
            Placement::Scattered { seed } => {
                if self.free_block_count == 0 {
                    return None;
                }
                self.rng.use_seed(seed);
                let blocks = self.blocks();
                for _ in 0..SCATTER_PROBES {
                    let b = self.rng.below(blocks);
                    if self.blocks[b as usize].used == 0 {
                        return Some(b);
                    }
                }
                let b = self.rng.below(blocks);
                self.free_blocks
                    .range(b..)
                    .next()
                    .or_else(|| self.free_blocks.first())
                    .copied()
            }
        }
    }

    /// Free addresses in the blocks holding AWS-reserved addresses (first and last).
    fn free_in_reserved_blocks(&self) -> u32 {
        match self.blocks.as_slice() {
            [] => 0,
            [only] => only.free(),
            [first, .., last] => first.free() + last.free(),
        }
    }

    fn offset(&self, addr: Ipv4Addr) -> Option<u32> {
        u32::from(addr)
            .checked_sub(self.base)
            .filter(|off| *off < self.size)
    }

    /// (block, bit) of an address inside the subnet.
    fn locate(&self, addr: Ipv4Addr) -> Result<(u32, u32)> {
        let off = self.offset(addr).ok_or_else(|| self.not_in_subnet(addr))?;
        Ok((off / ADDRESSES_PER_PREFIX, off % ADDRESSES_PER_PREFIX))
    }

    /// (block, bit) of an address that must be inside the subnet and free.
    fn free_address(&self, addr: Ipv4Addr) -> Result<(u32, u32)> {
        let (b, bit) = self.locate(addr)?;
        match self.blocks[b as usize].state(bit) {
            AddressState::Free => Ok((b, bit)),
            state => Err(Error::AddressUnavailable {
                addr: addr.to_string(),
                state,
            }),
        }
    }

    /// The block index of a prefix that must be an aligned /28 inside the subnet.
    fn prefix_block(&self, prefix: Ipv4Network) -> Result<u32> {
        if prefix.prefix() != BLOCK_PREFIX_LEN {
            return Err(Error::InvalidPrefix {
                prefix: prefix.to_string(),
                reason: format!(
                    "a delegated IPv4 prefix is a /{BLOCK_PREFIX_LEN}, not a /{}",
                    prefix.prefix()
                ),
            });
        }
        if prefix.ip() != prefix.network() {
            return Err(Error::InvalidPrefix {
                prefix: prefix.to_string(),
                reason: format!(
                    "not aligned on a 16-address boundary; the /28 holding it is {}/{BLOCK_PREFIX_LEN}",
                    prefix.network()
                ),
            });
        }
        let off = self
            .offset(prefix.ip())
            .ok_or_else(|| self.not_in_subnet(prefix))?;
        Ok(off / ADDRESSES_PER_PREFIX)
    }

    /// First and last offsets of a canonical CIDR that must lie inside the subnet.
    fn range_offsets(&self, range: Ipv4Network) -> Result<(u32, u32)> {
        if range.ip() != range.network() {
            return Err(Error::InvalidPrefix {
                prefix: range.to_string(),
                reason: format!(
                    "host bits are set; the range would be {}/{}",
                    range.network(),
                    range.prefix()
                ),
            });
        }
        match (self.offset(range.network()), self.offset(range.broadcast())) {
            (Some(first), Some(last)) => Ok((first, last)),
            _ => Err(self.not_in_subnet(range)),
        }
    }

    /// The blocks an offset range touches, each with the mask of its addresses in the range.
    fn range_blocks(first: u32, last: u32) -> impl Iterator<Item = (u32, u16)> {
        (first / ADDRESSES_PER_PREFIX..=last / ADDRESSES_PER_PREFIX).map(move |b| {
            let lo = first.max(b * ADDRESSES_PER_PREFIX) - b * ADDRESSES_PER_PREFIX;
            let hi = last.min(b * ADDRESSES_PER_PREFIX + ADDRESSES_PER_PREFIX - 1)
                - b * ADDRESSES_PER_PREFIX;
            (b, (FULL << lo) & (FULL >> (ADDRESSES_PER_PREFIX - 1 - hi)))
        })
    }

    fn addr_at(&self, b: u32, bit: u32) -> Ipv4Addr {
        Ipv4Addr::from(self.base + b * ADDRESSES_PER_PREFIX + bit)
    }

    fn block_net(&self, b: u32) -> Ipv4Network {
        Ipv4Network::new(self.addr_at(b, 0), BLOCK_PREFIX_LEN)
            .expect("a /28 is a valid IPv4 prefix length")
    }

    fn not_in_subnet(&self, what: impl fmt::Display) -> Error {
        Error::AddressNotInSubnet {
            addr: what.to_string(),
            subnet: self.cidr.to_string(),
        }
    }

    fn insufficient_addresses(&self, requested: u32) -> Error {
        Error::InsufficientFreeAddressesInSubnet {
            subnet: self.cidr.to_string(),
            requested,
            free: self.free_addresses,
        }
    }

    fn insufficient_blocks(&self, requested: u32) -> Error {
        Error::InsufficientCidrBlocks {
            subnet: self.cidr.to_string(),
            requested,
            free_blocks: self.free_block_count,
            free_addresses: self.free_addresses,
        }
    }
}

#[cfg(test)]
#[allow(
    clippy::float_cmp,
    reason = "fragmentation 0 and 1 are computed exactly"
)]
mod tests {
    use super::*;

    const POLICIES: [Placement; 4] = [
        Placement::Lowest,
        Placement::Packed,
        Placement::Scattered { seed: 1 },
        Placement::Scattered { seed: 0xDEAD_BEEF },
    ];

    fn net(s: &str) -> Ipv4Network {
        s.parse().unwrap()
    }

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    fn subnet(s: &str) -> Subnet {
        Subnet::new(net(s)).unwrap()
    }

    fn is_aws_reserved(s: &Subnet, addr: Ipv4Addr) -> bool {
        let off = u32::from(addr) - u32::from(s.cidr().network());
        off < 4 || off == s.size() - 1
    }

    /// Recounts everything address by address through the public API and checks it against
    /// the incremental counters; then checks the indices against a from-scratch rebuild.
    fn assert_consistent(s: &Subnet) {
        let (mut free, mut ips, mut in_prefixes, mut other, mut reserved) = (0, 0, 0, 0, 0);
        for addr in s.cidr().iter() {
            match s.state(addr).unwrap() {
                AddressState::Free => free += 1,
                AddressState::SecondaryIp => ips += 1,
                AddressState::Prefix => in_prefixes += 1,
                AddressState::OtherTenant => other += 1,
                AddressState::Reserved => {
                    assert!(is_aws_reserved(s, addr), "{addr} marked reserved");
                    reserved += 1;
                }
            }
        }
        let free_blocks = (0..s.blocks())
            .filter(|b| {
                (0..ADDRESSES_PER_PREFIX)
                    .all(|i| s.blocks[*b as usize].state(i) == AddressState::Free)
            })
            .count();
        assert_eq!(reserved, AWS_RESERVED_ADDRESSES);
        assert_eq!(free, s.free_addresses());
        assert_eq!(ips, s.allocated_ips());
        assert_eq!(in_prefixes, s.allocated_prefixes() * ADDRESSES_PER_PREFIX);
        assert_eq!(other, s.other_tenant_addresses());
        assert_eq!(free_blocks, s.free_blocks() as usize);
        assert_eq!(free + ips + in_prefixes + other, s.usable());
        let map_free = s
            .block_map()
            .filter(|(_, st)| *st == BlockState::Free)
            .count();
        assert_eq!(map_free, free_blocks);
        let f = s.fragmentation();
        assert!((0.0..=1.0).contains(&f), "fragmentation {f}");
        let mut rebuilt = s.clone();
        rebuilt.rebuild();
        assert_eq!(&rebuilt, s, "incremental state differs from a rebuild");
    }

    #[test]
    fn prefix_length_outside_16_to_28_is_invalid_subnet_cidr() {
        for cidr in ["10.0.0.0/15", "10.0.0.0/8", "10.0.0.0/29", "10.0.0.1/32"] {
            let err = Subnet::new(net(cidr)).unwrap_err();
            let Error::InvalidSubnetCidr { cidr: got, reason } = &err else {
                panic!("{err:?}")
            };
            assert_eq!(got, cidr);
            assert!(reason.contains("/16 to /28"), "{reason}");
        }
    }

    #[test]
    fn host_bits_set_is_invalid_subnet_cidr_naming_the_network() {
        let err = Subnet::new(net("10.0.0.1/24")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid subnet CIDR 10.0.0.1/24: host bits are set; the subnet would be 10.0.0.0/24"
        );
    }

    #[test]
    fn every_allowed_size_to_usable_and_delegatable_counts() {
        for len in 16..=28u8 {
            let s =
                Subnet::new(Ipv4Network::new(Ipv4Addr::new(10, 0, 0, 0), len).unwrap()).unwrap();
            let size = 1u32 << (32 - len);
            assert_eq!(
                (s.size(), s.usable(), s.free_addresses()),
                (size, size - 5, size - 5)
            );
            assert_eq!(s.free_blocks(), (size / 16).saturating_sub(2), "/{len}");
            assert_eq!(s.delegatable_blocks(), s.free_blocks());
            assert_eq!(s.fragmentation(), 0.0);
            assert_eq!(s.block_map().len(), (size / 16) as usize);
            assert_consistent(&s);
        }
    }

    #[test]
    fn exhausting_any_policy_never_hands_out_reserved_addresses() {
        for cidr in ["10.1.2.0/28", "10.1.2.0/27", "10.1.2.0/26", "10.1.0.0/23"] {
            for policy in POLICIES {
                let mut s = subnet(cidr);
                let mut got = BTreeSet::new();
                while let Ok(addr) = s.allocate_ip(policy) {
                    assert!(!is_aws_reserved(&s, addr), "{policy:?} handed out {addr}");
                    assert!(s.contains(addr));
                    assert!(got.insert(addr), "{policy:?} handed out {addr} twice");
                }
                assert_eq!(got.len(), s.usable() as usize);
                assert_consistent(&s);
            }
        }
    }

    #[test]
    fn thousands_of_allocations_to_unique_addresses() {
        for policy in POLICIES {
            let mut s = subnet("10.20.0.0/20");
            let all = s.allocate_ips(4091, policy).unwrap();
            let unique: BTreeSet<_> = all.iter().copied().collect();
            assert_eq!(unique.len(), 4091, "{policy:?}");
            assert!(
                all.iter()
                    .all(|a| s.state(*a) == Some(AddressState::SecondaryIp))
            );
            assert_eq!((s.free_addresses(), s.allocated_ips()), (0, 4091));
            assert_consistent(&s);
        }
    }

    #[test]
    fn full_subnet_to_insufficient_free_addresses_with_counts() {
        let mut s = subnet("10.0.0.0/28");
        s.allocate_ips(8, Placement::Packed).unwrap();
        assert_eq!(
            s.allocate_ips(5, Placement::Packed),
            Err(Error::InsufficientFreeAddressesInSubnet {
                subnet: "10.0.0.0/28".into(),
                requested: 5,
                free: 3,
            })
        );
        s.allocate_ips(3, Placement::Scattered { seed: 9 }).unwrap();
        for policy in POLICIES {
            assert_eq!(
                s.allocate_ip(policy),
                Err(Error::InsufficientFreeAddressesInSubnet {
                    subnet: "10.0.0.0/28".into(),
                    requested: 1,
                    free: 0,
                })
            );
        }
        assert_eq!(s.allocate_ips(0, Placement::Lowest), Ok(vec![]));
    }

    #[test]
    fn one_ip_in_every_block_to_insufficient_cidr_blocks() {
        let mut s = subnet("10.0.0.0/24");
        for b in 1..15u8 {
            s.allocate_specific_ip(Ipv4Addr::new(10, 0, 0, b * 16 + 7))
                .unwrap();
        }
        assert_eq!(
            (s.free_addresses(), s.free_blocks(), s.fragmentation()),
            (237, 0, 1.0)
        );
        for policy in POLICIES {
            assert_eq!(
                s.allocate_prefix(policy),
                Err(Error::InsufficientCidrBlocks {
                    subnet: "10.0.0.0/24".into(),
                    requested: 1,
                    free_blocks: 0,
                    free_addresses: 237,
                })
            );
        }
        // Addresses remain for secondary IPs.
        assert!(s.allocate_ip(Placement::Packed).is_ok());
        assert_consistent(&s);
    }

    #[test]
    fn slash28_and_slash27_subnets_to_no_prefix_ever() {
        for (cidr, free) in [("10.0.0.0/28", 11), ("10.0.0.32/27", 27)] {
            let mut s = subnet(cidr);
            assert_eq!(
                s.allocate_prefix(Placement::Lowest),
                Err(Error::InsufficientCidrBlocks {
                    subnet: cidr.into(),
                    requested: 1,
                    free_blocks: 0,
                    free_addresses: free,
                })
            );
            assert_eq!(s.fragmentation(), 0.0);
        }
    }

    #[test]
    fn failed_batches_to_unchanged_subnet() {
        for policy in POLICIES {
            let mut s = subnet("10.0.0.0/25");
            s.allocate_prefixes(2, policy).unwrap();
            s.allocate_ips(20, policy).unwrap();
            let before = s.clone();
            let free = s.free_addresses();
            assert!(matches!(
                s.allocate_ips(free + 1, policy),
                Err(Error::InsufficientFreeAddressesInSubnet { requested, free: f, .. })
                    if requested == free + 1 && f == free
            ));
            assert_eq!(s, before, "{policy:?}: failed IP batch left traces");
            let blocks = s.free_blocks();
            assert!(matches!(
                s.allocate_prefixes(blocks + 1, policy),
                Err(Error::InsufficientCidrBlocks { requested, free_blocks, .. })
                    if requested == blocks + 1 && free_blocks == blocks
            ));
            assert_eq!(s, before, "{policy:?}: failed prefix batch left traces");
            // Exactly what is free succeeds.
            s.allocate_prefixes(blocks, policy).unwrap();
            let free = s.free_addresses();
            s.allocate_ips(free, policy).unwrap();
            assert_eq!(s.free_addresses(), 0);
            assert_consistent(&s);
        }
    }

    #[test]
    fn release_ip_of_anything_but_a_secondary_ip_to_not_allocated() {
        let mut s = subnet("10.0.0.0/24");
        let p = s.allocate_specific_prefix(net("10.0.0.32/28"));
        p.unwrap();
        s.occupy(ip("10.0.0.100")).unwrap();
        let before = s.clone();
        for (addr, state) in [
            ("10.0.0.50", AddressState::Free),
            ("10.0.0.0", AddressState::Reserved),
            ("10.0.0.255", AddressState::Reserved),
            ("10.0.0.33", AddressState::Prefix),
            ("10.0.0.100", AddressState::OtherTenant),
        ] {
            assert_eq!(
                s.release_ip(ip(addr)),
                Err(Error::NotAllocated {
                    what: format!("secondary IP {addr}"),
                    state
                })
            );
        }
        assert_eq!(
            s.release_ip(ip("10.0.1.5")),
            Err(Error::AddressNotInSubnet {
                addr: "10.0.1.5".into(),
                subnet: "10.0.0.0/24".into()
            })
        );
        assert_eq!(s, before);
        let a = s.allocate_ip(Placement::Lowest).unwrap();
        s.release_ip(a).unwrap();
        assert_eq!(
            s.release_ip(a).unwrap_err(),
            Error::NotAllocated {
                what: format!("secondary IP {a}"),
                state: AddressState::Free,
            }
        );
    }

    #[test]
    fn release_prefix_of_anything_but_a_delegated_prefix_errors() {
        let mut s = subnet("10.0.0.0/24");
        s.allocate_specific_ip(ip("10.0.0.70")).unwrap();
        let before = s.clone();
        let cases = [
            (
                "10.0.0.16/28",
                Error::NotAllocated {
                    what: "prefix 10.0.0.16/28".into(),
                    state: AddressState::Free,
                },
            ),
            (
                "10.0.0.64/28",
                Error::NotAllocated {
                    what: "prefix 10.0.0.64/28 (address 10.0.0.70)".into(),
                    state: AddressState::SecondaryIp,
                },
            ),
            (
                "10.0.0.0/28",
                Error::NotAllocated {
                    what: "prefix 10.0.0.0/28 (address 10.0.0.0)".into(),
                    state: AddressState::Reserved,
                },
            ),
            (
                "10.0.1.0/28",
                Error::AddressNotInSubnet {
                    addr: "10.0.1.0/28".into(),
                    subnet: "10.0.0.0/24".into(),
                },
            ),
        ];
        for (prefix, err) in cases {
            assert_eq!(s.release_prefix(net(prefix)), Err(err));
        }
        for bad in ["10.0.0.16/27", "10.0.0.17/32", "10.0.0.24/28"] {
            assert!(
                matches!(s.release_prefix(net(bad)), Err(Error::InvalidPrefix { ref prefix, .. }) if prefix == bad),
                "{bad}"
            );
        }
        assert_eq!(s, before);
    }

    #[test]
    fn release_prefix_to_all_sixteen_addresses_free() {
        let mut s = subnet("10.0.0.0/24");
        let p = s.allocate_prefix(Placement::Scattered { seed: 3 }).unwrap();
        assert_eq!(p.prefix(), 28);
        assert!(p.iter().all(|a| s.state(a) == Some(AddressState::Prefix)));
        assert_eq!(
            (s.free_addresses(), s.free_blocks(), s.allocated_prefixes()),
            (235, 13, 1)
        );
        s.release_prefix(p).unwrap();
        assert!(p.iter().all(|a| s.state(a) == Some(AddressState::Free)));
        assert_eq!(
            (s.free_addresses(), s.free_blocks(), s.allocated_prefixes()),
            (251, 14, 0)
        );
        assert_consistent(&s);
    }

    #[test]
    fn specific_ip_in_use_to_address_unavailable_naming_the_state() {
        let mut s = subnet("10.0.0.0/24");
        s.allocate_specific_prefix(net("10.0.0.48/28")).unwrap();
        s.occupy(ip("10.0.0.9")).unwrap();
        s.allocate_specific_ip(ip("10.0.0.10")).unwrap();
        for (addr, state) in [
            ("10.0.0.2", AddressState::Reserved),
            ("10.0.0.255", AddressState::Reserved),
            ("10.0.0.9", AddressState::OtherTenant),
            ("10.0.0.10", AddressState::SecondaryIp),
            ("10.0.0.50", AddressState::Prefix),
        ] {
            assert_eq!(
                s.allocate_specific_ip(ip(addr)),
                Err(Error::AddressUnavailable {
                    addr: addr.into(),
                    state
                })
            );
            assert_eq!(
                s.occupy(ip(addr)),
                Err(Error::AddressUnavailable {
                    addr: addr.into(),
                    state
                })
            );
        }
        assert!(matches!(
            s.allocate_specific_ip(ip("192.168.0.5")),
            Err(Error::AddressNotInSubnet { .. })
        ));
        assert_consistent(&s);
    }

    #[test]
    fn specific_prefix_in_use_to_prefix_unavailable_naming_lowest_used_address() {
        let mut s = subnet("10.0.0.0/24");
        s.occupy(ip("10.0.0.45")).unwrap();
        s.allocate_specific_ip(ip("10.0.0.41")).unwrap();
        assert_eq!(
            s.allocate_specific_prefix(net("10.0.0.32/28")),
            Err(Error::PrefixUnavailable {
                prefix: "10.0.0.32/28".into(),
                addr: "10.0.0.41".into(),
                state: AddressState::SecondaryIp,
            })
        );
        assert_eq!(
            s.allocate_specific_prefix(net("10.0.0.240/28")),
            Err(Error::PrefixUnavailable {
                prefix: "10.0.0.240/28".into(),
                addr: "10.0.0.255".into(),
                state: AddressState::Reserved,
            })
        );
        s.allocate_specific_prefix(net("10.0.0.64/28")).unwrap();
        assert_eq!(
            s.allocate_specific_prefix(net("10.0.0.64/28")),
            Err(Error::PrefixUnavailable {
                prefix: "10.0.0.64/28".into(),
                addr: "10.0.0.64".into(),
                state: AddressState::Prefix,
            })
        );
        assert!(matches!(
            s.allocate_specific_prefix(net("10.0.0.64/29")),
            Err(Error::InvalidPrefix { .. })
        ));
    }

    #[test]
    fn lowest_policy_to_ascending_addresses_and_blocks() {
        let mut s = subnet("10.0.0.0/24");
        let ips = s.allocate_ips(13, Placement::Lowest).unwrap();
        let want: Vec<Ipv4Addr> = (4..17).map(|i| Ipv4Addr::new(10, 0, 0, i)).collect();
        assert_eq!(ips, want);
        let prefixes = s.allocate_prefixes(2, Placement::Lowest).unwrap();
        assert_eq!(prefixes, [net("10.0.0.32/28"), net("10.0.0.48/28")]);
        s.release_ip(ip("10.0.0.6")).unwrap();
        assert_eq!(s.allocate_ip(Placement::Lowest), Ok(ip("10.0.0.6")));
    }

    #[test]
    fn packed_policy_to_fullest_partial_block_first() {
        let mut s = subnet("10.0.0.0/24");
        // Fresh: the first block (12 free) fills, then the last (15 free), then the lowest free.
        let ips = s.allocate_ips(28, Placement::Packed).unwrap();
        assert_eq!(ips[0], ip("10.0.0.4"));
        assert_eq!(ips[11], ip("10.0.0.15"));
        assert_eq!(ips[12], ip("10.0.0.240"));
        assert_eq!(ips[26], ip("10.0.0.254"));
        assert_eq!(ips[27], ip("10.0.0.16"));
        // A fuller partial block elsewhere wins over the lower, emptier one.
        s.occupy_range(net("10.0.0.128/29")).unwrap();
        s.occupy_range(net("10.0.0.136/30")).unwrap();
        assert_eq!(s.allocate_ip(Placement::Packed), Ok(ip("10.0.0.140")));
        // A freed address in the fullest block is refilled first.
        s.release_ip(ip("10.0.0.9")).unwrap();
        assert_eq!(s.allocate_ip(Placement::Packed), Ok(ip("10.0.0.9")));
        assert_consistent(&s);
    }

    #[test]
    fn same_churn_trace_to_more_free_blocks_packed_than_scattered() {
        fn run(policy: Placement) -> Subnet {
            let mut s = subnet("10.8.0.0/20");
            let mut live = s.allocate_ips(600, policy).unwrap();
            // Pods churn: every third goes away, then new pods arrive.
            let mut i = 0;
            live.retain(|a| {
                i += 1;
                if i % 3 == 0 {
                    s.release_ip(*a).unwrap();
                    false
                } else {
                    true
                }
            });
            live.extend(s.allocate_ips(300, policy).unwrap());
            assert_eq!(s.allocated_ips(), 700);
            assert_consistent(&s);
            s
        }
        let packed = run(Placement::Packed);
        let lowest = run(Placement::Lowest);
        let scattered = run(Placement::Scattered { seed: 42 });
        // 700 addresses fit in ceil((700 − 27) / 16) = 43 blocks besides the reserved two.
        assert_eq!(packed.free_blocks(), 254 - 43);
        assert!(packed.free_blocks() >= lowest.free_blocks());
        assert!(
            packed.free_blocks() > 2 * scattered.free_blocks(),
            "packed {} vs scattered {}",
            packed.free_blocks(),
            scattered.free_blocks()
        );
        assert!(packed.fragmentation() < scattered.fragmentation());
    }

    #[test]
    fn scattered_seed_to_reproducible_spread_addresses() {
        let draw = |seed| {
            let mut s = subnet("10.0.0.0/20");
            let mut v = s.allocate_ips(50, Placement::Scattered { seed }).unwrap();
            v.extend(
                s.allocate_prefixes(5, Placement::Scattered { seed })
                    .unwrap()
                    .iter()
                    .map(|p| p.ip()),
            );
            v
        };
        assert_eq!(draw(7), draw(7));
        assert_ne!(draw(7), draw(8));
        let v = draw(7);
        let blocks: BTreeSet<u32> = v.iter().map(|a| u32::from(*a) >> 4).collect();
        assert!(
            blocks.len() > 40,
            "scattered addresses should touch many blocks: {}",
            blocks.len()
        );
        assert_ne!(v[..50].to_vec(), {
            let mut w = v[..50].to_vec();
            w.sort();
            w
        });
    }

    #[test]
    fn scattered_prefixes_to_unique_free_aligned_blocks() {
        let mut s = subnet("10.0.0.0/22");
        s.occupy_range(net("10.0.1.0/25")).unwrap();
        let prefixes = s
            .allocate_prefixes(s.free_blocks(), Placement::Scattered { seed: 5 })
            .unwrap();
        let unique: BTreeSet<_> = prefixes.iter().copied().collect();
        assert_eq!(unique.len(), 62 - 8);
        for p in &prefixes {
            assert_eq!((p.prefix(), u32::from(p.ip()) % 16), (28, 0));
            assert!(!net("10.0.1.0/25").overlaps(*p));
        }
        assert_eq!(s.free_blocks(), 0);
        assert_consistent(&s);
    }

    #[test]
    fn occupy_range_to_skipped_reserved_and_refused_allocated() {
        let mut s = subnet("10.0.0.0/24");
        s.occupy(ip("10.0.0.5")).unwrap();
        assert_eq!(s.occupy_range(net("10.0.0.0/29")), Ok(3)); // .4 .6 .7
        assert_eq!(s.occupy_range(net("10.0.0.255/32")), Ok(0));
        s.allocate_specific_ip(ip("10.0.0.77")).unwrap();
        let before = s.clone();
        assert_eq!(
            s.occupy_range(net("10.0.0.64/26")),
            Err(Error::AddressUnavailable {
                addr: "10.0.0.77".into(),
                state: AddressState::SecondaryIp
            })
        );
        assert_eq!(s, before);
        assert!(matches!(
            s.occupy_range(net("10.0.0.0/23")),
            Err(Error::AddressNotInSubnet { .. })
        ));
        assert!(matches!(
            s.occupy_range(net("10.0.0.3/26")),
            Err(Error::InvalidPrefix { .. })
        ));
        assert_eq!(s, before);
        assert_eq!(s.other_tenant_addresses(), 4);
        assert_consistent(&s);
    }

    #[test]
    fn vacate_range_to_only_other_tenant_addresses_freed() {
        let mut s = subnet("10.0.0.0/24");
        assert_eq!(s.occupy_range(net("10.0.0.0/24")), Ok(251));
        assert_eq!((s.free_addresses(), s.free_blocks()), (0, 0));
        assert_eq!(s.vacate_range(net("10.0.0.32/27")), Ok(32));
        let p = s.allocate_prefix(Placement::Packed).unwrap();
        let a = s.allocate_ip(Placement::Packed).unwrap();
        assert_eq!(s.vacate_range(net("10.0.0.0/24")), Ok(251 - 32));
        assert_eq!(s.state(a), Some(AddressState::SecondaryIp));
        assert_eq!(s.state(p.ip()), Some(AddressState::Prefix));
        assert_eq!(s.state(ip("10.0.0.0")), Some(AddressState::Reserved));
        assert_eq!(s.other_tenant_addresses(), 0);
        assert_consistent(&s);
    }

    #[test]
    fn block_map_to_every_block_state() {
        let mut s = subnet("10.0.0.0/25");
        s.allocate_specific_prefix(net("10.0.0.16/28")).unwrap();
        s.occupy_range(net("10.0.0.32/28")).unwrap();
        s.allocate_specific_ip(ip("10.0.0.50")).unwrap();
        s.allocate_specific_ip(ip("10.0.0.51")).unwrap();
        s.allocate_ips(12, Placement::Packed).unwrap();
        let map: Vec<_> = s.block_map().collect();
        assert_eq!(map.len(), 8);
        assert_eq!(
            map[0],
            (net("10.0.0.0/28"), BlockState::Reserved { used: 16 })
        );
        assert_eq!(map[1], (net("10.0.0.16/28"), BlockState::Delegated));
        assert_eq!(map[2], (net("10.0.0.32/28"), BlockState::Full));
        assert_eq!(
            map[3],
            (net("10.0.0.48/28"), BlockState::Partial { used: 2 })
        );
        assert_eq!(map[4], (net("10.0.0.64/28"), BlockState::Free));
        assert_eq!(
            map[7],
            (net("10.0.0.112/28"), BlockState::Reserved { used: 1 })
        );
    }

    #[test]
    fn stats_to_compact_json() {
        let mut s = subnet("10.0.0.0/24");
        s.allocate_ips(2, Placement::Lowest).unwrap();
        s.allocate_prefix(Placement::Lowest).unwrap();
        s.occupy(ip("10.0.0.100")).unwrap();
        let json = serde_json::to_value(s.stats()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "cidr": "10.0.0.0/24",
                "size": 256,
                "usable": 251,
                "free_addresses": 232,
                "free_blocks": 12,
                "delegatable_blocks": 14,
                "allocated_ips": 2,
                "allocated_prefixes": 1,
                "other_tenant_addresses": 1,
                "fragmentation": 1.0 - 192.0 / 207.0,
            })
        );
        assert_eq!(
            serde_json::to_value(BlockState::Partial { used: 3 }).unwrap(),
            serde_json::json!({ "state": "partial", "used": 3 })
        );
        assert_eq!(
            serde_json::to_value(Placement::Scattered { seed: 4 }).unwrap(),
            serde_json::json!({ "policy": "scattered", "seed": 4 })
        );
        assert_eq!(
            serde_json::to_value(AddressState::OtherTenant).unwrap(),
            "other-tenant"
        );
    }

    #[test]
    fn error_messages_to_aws_code_value_and_fix() {
        let mut s = subnet("10.0.0.0/28");
        s.allocate_ips(11, Placement::Lowest).unwrap();
        let msg = s.allocate_ip(Placement::Lowest).unwrap_err().to_string();
        assert!(
            msg.starts_with("InsufficientFreeAddressesInSubnet: subnet 10.0.0.0/28 has 0 free"),
            "{msg}"
        );
        assert!(msg.contains("larger subnet"), "{msg}");
        let msg = s
            .allocate_prefixes(2, Placement::Lowest)
            .unwrap_err()
            .to_string();
        assert!(
            msg.starts_with(
                "InsufficientCidrBlocks: subnet 10.0.0.0/28 has 0 free aligned /28 blocks but 2"
            ),
            "{msg}"
        );
        assert!(msg.contains("subnet CIDR reservation"), "{msg}");
        let msg = s.release_ip(ip("10.0.0.0")).unwrap_err().to_string();
        assert_eq!(
            msg,
            "secondary IP 10.0.0.0 cannot be released: it is reserved by AWS; release only secondary IPs and prefixes that this subnet handed out"
        );
        let msg = s
            .allocate_specific_ip(ip("10.0.0.4"))
            .unwrap_err()
            .to_string();
        assert_eq!(
            msg,
            "address 10.0.0.4 is allocated as a secondary IP; request a free address or let the allocator choose one"
        );
        let msg = s
            .allocate_specific_ip(ip("10.0.0.16"))
            .unwrap_err()
            .to_string();
        assert_eq!(
            msg,
            "10.0.0.16 is not inside subnet 10.0.0.0/28; use an address or prefix within 10.0.0.0/28"
        );
        let msg = s
            .release_prefix(net("10.0.0.8/28"))
            .unwrap_err()
            .to_string();
        assert_eq!(
            msg,
            "invalid prefix 10.0.0.8/28: not aligned on a 16-address boundary; the /28 holding it is 10.0.0.0/28"
        );
    }

    /// Random operations (a fixed-seed stream, so the test is deterministic) on small subnets,
    /// recounting everything from scratch after each one; failed operations must change nothing.
    #[test]
    fn random_operations_to_counters_equal_recount() {
        for (cidr, seed) in [
            ("10.0.0.0/28", 1),
            ("10.0.0.0/27", 2),
            ("10.0.0.64/26", 3),
            ("10.0.1.0/25", 4),
            ("10.0.0.0/24", 5),
        ] {
            let mut rng = Rng::new(seed);
            let mut s = subnet(cidr);
            let base = u32::from(s.cidr().network());
            let (mut ips, mut prefixes): (Vec<Ipv4Addr>, Vec<Ipv4Network>) = (vec![], vec![]);
            let (mut ok, mut failed, mut max_prefixes) = (0, 0, 0);
            for step in 0..1500 {
                let policy = POLICIES[rng.below(4) as usize];
                let any_addr = Ipv4Addr::from(base + rng.below(s.size() + 8));
                let any_block =
                    Ipv4Network::new(Ipv4Addr::from(base + 16 * rng.below(s.blocks() + 1)), 28)
                        .unwrap();
                let before = s.clone();
                let result: Result<()> = match rng.below(14) {
                    0 | 1 => s.allocate_ip(policy).map(|a| ips.push(a)),
                    2 => s.allocate_ips(rng.below(6), policy).map(|v| ips.extend(v)),
                    3 => s.allocate_prefix(policy).map(|p| prefixes.push(p)),
                    4 => s
                        .allocate_prefixes(rng.below(3), policy)
                        .map(|v| prefixes.extend(v)),
                    5 => s
                        .allocate_specific_ip(any_addr)
                        .map(|()| ips.push(any_addr)),
                    6 => s
                        .allocate_specific_prefix(any_block)
                        .map(|()| prefixes.push(any_block)),
                    7 if !ips.is_empty() => {
                        let i = rng.below(u32::try_from(ips.len()).unwrap()) as usize;
                        s.release_ip(ips.swap_remove(i))
                    }
                    8 if !prefixes.is_empty() => {
                        let i = rng.below(u32::try_from(prefixes.len()).unwrap()) as usize;
                        s.release_prefix(prefixes.swap_remove(i))
                    }
                    7 | 11 => s
                        .release_ip(any_addr)
                        .map(|()| ips.retain(|a| *a != any_addr)),
                    8 | 12 => s
                        .release_prefix(any_block)
                        .map(|()| prefixes.retain(|p| *p != any_block)),
                    9 => s.occupy(any_addr),
                    10 => {
                        let len = 28 + u8::try_from(rng.below(5)).unwrap();
                        let range = Ipv4Network::new(any_addr, len).unwrap();
                        let range = Ipv4Network::new(range.network(), len).unwrap();
                        s.occupy_range(range).map(|_| ())
                    }
                    _ => s.vacate_range(any_block).map(|_| ()),
                };
                if result.is_err() {
                    failed += 1;
                    assert_eq!(
                        s, before,
                        "{cidr} step {step}: failed operation changed the subnet"
                    );
                } else {
                    ok += 1;
                }
                max_prefixes = max_prefixes.max(prefixes.len());
                assert_consistent(&s);
                let tracked: BTreeSet<_> = ips.iter().copied().collect();
                assert_eq!(
                    tracked.len(),
                    ips.len(),
                    "duplicate secondary IP handed out"
                );
                assert_eq!(u32::try_from(ips.len()).unwrap(), s.allocated_ips());
                assert_eq!(
                    u32::try_from(prefixes.len()).unwrap(),
                    s.allocated_prefixes()
                );
            }
            eprintln!("{cidr}: {ok} ok, {failed} failed, up to {max_prefixes} prefixes");
            assert!(
                ok > 300 && failed > 100,
                "{cidr}: {ok} succeeded, {failed} failed"
            );
            assert_eq!(max_prefixes > 0, s.delegatable_blocks() > 0);
        }
    }

    #[test]
    fn slash16_full_cycle_to_consistent_counters() {
        let mut s = subnet("10.0.0.0/16");
        let all = s.allocate_ips(65_531, Placement::Packed).unwrap();
        assert_eq!(s.free_addresses(), 0);
        for a in &all {
            s.release_ip(*a).unwrap();
        }
        assert_eq!((s.free_addresses(), s.free_blocks()), (65_531, 4094));
        let prefixes = s
            .allocate_prefixes(4094, Placement::Scattered { seed: 11 })
            .unwrap();
        assert_eq!(prefixes.iter().collect::<BTreeSet<_>>().len(), 4094);
        assert_eq!(s.free_addresses(), 65_531 - 4094 * 16);
        s.allocate_ips(27, Placement::Scattered { seed: 11 })
            .unwrap();
        assert_eq!(s.free_addresses(), 0);
        assert_consistent(&s);
    }
}
