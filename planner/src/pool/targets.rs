//! The watermark arithmetic of the warm pool (§2.3–§2.7 of the ipamd reference), as pure
//! functions of the settings and the pool's counters. Every warm and minimum target
//! (`WARM_ENI_TARGET`, `WARM_IP_TARGET`, `MINIMUM_IP_TARGET`, `WARM_PREFIX_TARGET`) is turned
//! into a number here and nowhere else: how far the pool is from its targets, how much one
//! growth call asks for, how much may be released, and whether an ENI may go.
//!
//! eniplan's one deliberate difference: `available` excludes addresses that are cooling down
//! after a pod released them (the reference counts them as available). A cooling address cannot
//! be handed out, so counting it let new pods wait for a cooldown the pool could have covered
//! (VPC CNI issue #2896). Excluding it everywhere — growth, shrink and ENI freeing — makes the
//! pool cover its warm target with addresses that are really assignable, and never releases
//! what it would immediately need again. See `docs/decisions/0002-pool-engine-quirks.md`.

use crate::max_pods::AddressMode;
use crate::subnet::ADDRESSES_PER_PREFIX;

use super::PoolConfig;

/// The pool counters the decisions read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Addresses held in usable blocks (16 per prefix, 1 per secondary IP).
    pub total: u32,
    /// Addresses bound to pods.
    pub assigned: u32,
    /// Unbound addresses still cooling down.
    pub cooling: u32,
    /// Prefixes held.
    pub prefixes: u32,
    /// Prefixes with no bound and no cooling address.
    pub free_prefixes: u32,
    /// Prefixes with no bound address (cooling ones included): the reference's "free".
    pub unassigned_prefixes: u32,
}

impl Counters {
    /// Addresses a pod could get right now: `total − assigned − cooling`.
    pub fn available(&self) -> u32 {
        self.total
            .saturating_sub(self.assigned)
            .saturating_sub(self.cooling)
    }

    /// The reference's view of the same pool: cooling addresses count as available, and
    /// prefixes holding only cooling addresses as free.
    pub(crate) fn counting_cooling(&self) -> Counters {
        Counters {
            cooling: 0,
            free_prefixes: self.unassigned_prefixes,
            ..*self
        }
    }
}

/// The result of the target-state function.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Targets {
    /// Whether `WARM_IP_TARGET` or `MINIMUM_IP_TARGET` is set.
    pub ip_targets: bool,
    /// Addresses missing for the targets (IP-target mode).
    pub short: u32,
    /// Addresses above the targets (IP-target mode).
    pub over: u32,
    /// Prefixes to request (PD, IP-target mode): `ceil(short / 16)`.
    pub short_prefixes: u32,
    /// Prefixes that may be released (PD, IP-target mode).
    pub over_prefixes: u32,
}

/// `targetState`: how far the pool is from `WARM_IP_TARGET` (w) and `MINIMUM_IP_TARGET` (m).
///
/// ```
/// use planner::max_pods::AddressMode;
/// use planner::pool::PoolConfig;
/// use planner::pool::targets::{target_state, Counters};
/// // TB-10: t3.small, PD, w = 7, m = 20, nothing held yet: ceil(20 / 16) = 2 prefixes short.
/// let config = PoolConfig { warm_ip_target: 7, minimum_ip_target: 20, ..PoolConfig::default() };
/// let t = target_state(&config, AddressMode::PrefixDelegation, &Counters::default());
/// assert_eq!((t.short, t.short_prefixes), (20, 2));
/// // SIP, w = 5: 3 available of 10 held → 2 short.
/// let c = Counters { total: 10, assigned: 7, ..Counters::default() };
/// let config = PoolConfig { warm_ip_target: 5, ..PoolConfig::default() };
/// assert_eq!(target_state(&config, AddressMode::SecondaryIp, &c).short, 2);
/// ```
pub fn target_state(config: &PoolConfig, mode: AddressMode, c: &Counters) -> Targets {
    if config.draining {
        // Zero warm targets: nothing is short, every assignable address is over.
        return Targets {
            ip_targets: true,
            short: 0,
            over: c.available(),
            short_prefixes: 0,
            over_prefixes: if mode == AddressMode::PrefixDelegation {
                c.free_prefixes
            } else {
                0
            },
        };
    }
    let (w, m) = (config.warm_ip_target, config.minimum_ip_target);
    if w == 0 && m == 0 {
        return Targets::default();
    }
    let available = c.available();
    let short = w.saturating_sub(available).max(m.saturating_sub(c.total));
    let over = available.saturating_sub(w).min(c.total.saturating_sub(m));
    let mut t = Targets {
        ip_targets: true,
        short,
        over,
        short_prefixes: 0,
        over_prefixes: 0,
    };
    if mode == AddressMode::PrefixDelegation {
        t.short_prefixes = short.div_ceil(ADDRESSES_PER_PREFIX);
        let need_warm = (c.assigned + c.cooling + w).div_ceil(ADDRESSES_PER_PREFIX);
        let need_min = m.div_ceil(ADDRESSES_PER_PREFIX);
        t.over_prefixes = c
            .free_prefixes
            .min(c.prefixes.saturating_sub(need_warm))
            .min(c.prefixes.saturating_sub(need_min));
    }
    t
}

/// Addresses one ENI holds when full: `M = L_ip − 1` (SIP) or `16 × (L_ip − 1)` (PD).
///
/// ```
/// use planner::max_pods::AddressMode;
/// use planner::pool::targets::addresses_per_eni;
/// assert_eq!(addresses_per_eni(AddressMode::SecondaryIp, 10), 9);         // m5.large
/// assert_eq!(addresses_per_eni(AddressMode::PrefixDelegation, 10), 144);
/// ```
pub fn addresses_per_eni(mode: AddressMode, ipv4_per_eni: u32) -> u32 {
    let slots = ipv4_per_eni.saturating_sub(1);
    match mode {
        AddressMode::SecondaryIp => slots,
        AddressMode::PrefixDelegation => slots * ADDRESSES_PER_PREFIX,
    }
}

/// `isDatastorePoolTooLow`, without the max-pods stop (the caller checks that first).
///
/// ```
/// use planner::max_pods::AddressMode;
/// use planner::pool::PoolConfig;
/// use planner::pool::targets::{is_low, Counters};
/// let config = PoolConfig::default(); // WARM_ENI_TARGET = 1
/// // m5.large, 10 pods on 18 addresses: 8 free < 1 × 9 → low (S-02 grows to 3 ENIs).
/// let c = Counters { total: 18, assigned: 10, ..Counters::default() };
/// assert!(is_low(&config, AddressMode::SecondaryIp, 10, &c));
/// ```
pub fn is_low(config: &PoolConfig, mode: AddressMode, ipv4_per_eni: u32, c: &Counters) -> bool {
    let t = target_state(config, mode, c);
    if t.ip_targets {
        return t.short > 0;
    }
    let available = c.available();
    let (target, unit) = match mode {
        AddressMode::PrefixDelegation => (config.warm_prefix_target, ADDRESSES_PER_PREFIX),
        AddressMode::SecondaryIp => (
            config.warm_eni_target,
            addresses_per_eni(mode, ipv4_per_eni),
        ),
    };
    available < unit * target || (target == 0 && available == 0)
}

/// `isDatastorePoolTooHigh`: IP targets → `over > 0`; PD → more free prefixes than
/// `WARM_PREFIX_TARGET`; SIP with `WARM_ENI_TARGET` → never (only whole ENIs are freed).
pub fn is_high(config: &PoolConfig, mode: AddressMode, c: &Counters) -> bool {
    surplus(config, mode, c) > 0
}

/// `isDatastorePoolTooLow` in full: low, and the pool holds fewer addresses than the node may
/// run pods (growth stops at `total ≥ max_pods`).
pub(crate) fn needs_growth(
    config: &PoolConfig,
    mode: AddressMode,
    ipv4_per_eni: u32,
    c: &Counters,
) -> bool {
    c.total < config.max_pods && is_low(config, mode, ipv4_per_eni, c)
}

/// `WARM_PREFIX_TARGET` in addresses: `16 × WARM_PREFIX_TARGET`.
pub(crate) fn warm_prefix_addresses(config: &PoolConfig) -> u32 {
    config.warm_prefix_target * ADDRESSES_PER_PREFIX
}

/// `shortPrefixesForWPT`: prefixes missing for `WARM_PREFIX_TARGET` free prefixes.
pub(crate) fn short_prefixes_for_wpt(config: &PoolConfig, c: &Counters) -> u32 {
    config.warm_prefix_target.saturating_sub(c.free_prefixes)
}

/// What one growth call asks for, in the call's unit: prefixes when it requests prefixes,
/// addresses otherwise (`ips_in_prefix_mode`: the prefix fallback, which covers what the prefix
/// targets lack with secondary IPs). 0 only in secondary-IP mode with IP targets already met.
///
/// * PD: `max(1, ceil(short / 16))` with IP targets, else `max(1, shortPrefixesForWPT)`;
/// * PD fallback: `max(1, short)` with IP targets, else `max(1, 16 × WPT − available)`;
/// * SIP: `short` with IP targets, else a whole ENI's worth (`L_ip − 1`).
pub(crate) fn growth_request(
    config: &PoolConfig,
    mode: AddressMode,
    ips_in_prefix_mode: bool,
    ipv4_per_eni: u32,
    c: &Counters,
) -> u32 {
    let t = target_state(config, mode, c);
    match mode {
        AddressMode::PrefixDelegation if !ips_in_prefix_mode => {
            if t.ip_targets {
                t.short_prefixes.max(1)
            } else {
                short_prefixes_for_wpt(config, c).max(1)
            }
        }
        AddressMode::PrefixDelegation => {
            let need = if t.ip_targets {
                t.short
            } else {
                warm_prefix_addresses(config).saturating_sub(c.available())
            };
            need.max(1)
        }
        AddressMode::SecondaryIp if t.ip_targets => t.short,
        AddressMode::SecondaryIp => addresses_per_eni(mode, ipv4_per_eni),
    }
}

/// How many blocks of the mode's kind the shrink may release (prefixes in PD, addresses in
/// SIP): `over` / `overP` with IP targets, `freePrefixes − WARM_PREFIX_TARGET` in PD, and 0
/// with `WARM_ENI_TARGET` (only whole ENIs are freed). `isDatastorePoolTooHigh` is `> 0`.
pub(crate) fn surplus(config: &PoolConfig, mode: AddressMode, c: &Counters) -> u32 {
    let t = target_state(config, mode, c);
    match (t.ip_targets, mode) {
        (true, AddressMode::PrefixDelegation) => t.over_prefixes,
        (true, AddressMode::SecondaryIp) => t.over,
        (false, AddressMode::PrefixDelegation) => {
            c.free_prefixes.saturating_sub(config.warm_prefix_target)
        }
        (false, AddressMode::SecondaryIp) => 0,
    }
}

/// Prefix fallback: the available addresses to keep when handing back fallback secondary IPs:
/// `max(WARM_IP_TARGET, MINIMUM_IP_TARGET − total)` with IP targets, else `16 × WPT`.
pub(crate) fn fallback_keep(config: &PoolConfig, c: &Counters) -> u32 {
    if config.ip_targets_defined() {
        config
            .warm_ip_target
            .max(config.minimum_ip_target.saturating_sub(c.total))
    } else {
        warm_prefix_addresses(config)
    }
}

/// Prefix fallback: how many idle fallback secondary IPs may be handed back: the available
/// addresses beyond [`fallback_keep`].
pub(crate) fn fallback_spare(config: &PoolConfig, c: &Counters) -> u32 {
    c.available().saturating_sub(fallback_keep(config, c))
}

/// A need in addresses as the mode can hold it: rounded up to whole prefixes in PD
/// (`16 × ceil(n / 16)`), unchanged in SIP (§2.7: "in PD `w` is rounded up to a multiple of 16").
pub(crate) fn round_up_to_prefixes(mode: AddressMode, n: u32) -> u32 {
    match mode {
        AddressMode::PrefixDelegation => n.div_ceil(ADDRESSES_PER_PREFIX) * ADDRESSES_PER_PREFIX,
        AddressMode::SecondaryIp => n,
    }
}

/// `shouldRemoveExtraENIs`: with IP targets always (the real checks are per ENI); else when
/// `available ≥ (T + 1) × M` (T = `WARM_ENI_TARGET`, or `WARM_PREFIX_TARGET` in PD), or in PD
/// when `freeable_exists` (some ENI other than the primary and the trunk holds no pod).
pub(crate) fn should_free_eni(
    config: &PoolConfig,
    mode: AddressMode,
    ipv4_per_eni: u32,
    c: &Counters,
    freeable_exists: bool,
) -> bool {
    let t = target_state(config, mode, c);
    let full = addresses_per_eni(mode, ipv4_per_eni);
    let warm = match mode {
        AddressMode::PrefixDelegation => config.warm_prefix_target,
        AddressMode::SecondaryIp => config.warm_eni_target,
    };
    t.ip_targets
        || c.available() >= (warm + 1) * full
        || (mode == AddressMode::PrefixDelegation && freeable_exists)
}

/// `getDeletableENI` items 5–7: whether the pool would still meet its targets with `after`, its
/// counters without the ENI: `available ≥ WARM_IP_TARGET` and `total ≥ MINIMUM_IP_TARGET`
/// (each when set, rounded up to prefixes in PD), and in PD at least `WARM_PREFIX_TARGET` free
/// prefixes.
pub(crate) fn targets_hold_without_eni(
    config: &PoolConfig,
    mode: AddressMode,
    after: &Counters,
) -> bool {
    if config.draining {
        return true;
    }
    let (w, m) = (config.warm_ip_target, config.minimum_ip_target);
    if w != 0 && after.available() < round_up_to_prefixes(mode, w) {
        return false;
    }
    if m != 0 && after.total < round_up_to_prefixes(mode, m) {
        return false;
    }
    !(mode == AddressMode::PrefixDelegation && after.free_prefixes < config.warm_prefix_target)
}

/// `MINIMUM_IP_TARGET` without `WARM_IP_TARGET`: the pool holds the floor and never grows
/// beyond it, so a pod without an address has reached the floor.
pub(crate) fn floor_only(config: &PoolConfig) -> bool {
    config.warm_ip_target == 0 && config.minimum_ip_target > 0
}

#[cfg(test)]
mod tests;
