//! The watermark arithmetic of the warm pool (§2.3–§2.4 of the ipamd reference), as pure
//! functions of the pool's counters.
//!
//! eniplan's one deliberate difference: `available` excludes addresses that are cooling down
//! after a pod released them (the reference counts them as available). A cooling address cannot
//! be handed out, so counting it let new pods wait for a cooldown the pool could have covered
//! (VPC CNI issue #2896). Excluding it everywhere — growth, shrink and ENI freeing — makes the
//! pool cover its warm target with addresses that are really assignable, and never releases
//! what it would immediately need again. See `docs/decisions/0002-pool-engine-quirks.md`.

use crate::max_pods::AddressMode;

use super::PoolConfig;

/// Addresses in one prefix.
pub const PREFIX: u32 = 16;

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
        t.short_prefixes = short.div_ceil(PREFIX);
        let need_warm = (c.assigned + c.cooling + w).div_ceil(PREFIX);
        let need_min = m.div_ceil(PREFIX);
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
        AddressMode::PrefixDelegation => slots * PREFIX,
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
        AddressMode::PrefixDelegation => (config.warm_prefix_target, PREFIX),
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
    let t = target_state(config, mode, c);
    if t.ip_targets {
        return match mode {
            AddressMode::SecondaryIp => t.over > 0,
            AddressMode::PrefixDelegation => t.over_prefixes > 0,
        };
    }
    mode == AddressMode::PrefixDelegation && c.free_prefixes > config.warm_prefix_target
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sip(w: u32, m: u32) -> PoolConfig {
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
        let t = target_state(&sip(0, 10), AddressMode::SecondaryIp, &c);
        assert_eq!((t.short, t.over), (0, 0));
        assert!(!is_low(&sip(0, 10), AddressMode::SecondaryIp, 10, &c));
    }

    #[test]
    fn over_never_cuts_below_the_minimum() {
        let c = Counters {
            total: 12,
            assigned: 0,
            ..Counters::default()
        };
        let t = target_state(&sip(1, 10), AddressMode::SecondaryIp, &c);
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
        let t = target_state(&sip(3, 0), AddressMode::SecondaryIp, &c);
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
}
