//! The workspace's one seeded pseudo-random generator: splitmix64 (Steele, Lea and Flood,
//! "Fast splittable pseudorandom number generators", 2014).
//!
//! Chosen because it is tiny, has no bad seeds (any `u64`, zero included, starts a full-period
//! stream), passes BigCrush, and is the generator the subnet model's scattered placement (and so
//! every committed forecast figure) has always used. It is **not** cryptographically secure:
//! its output is predictable from one value. Use it only where a reproducible spread is wanted —
//! address placement, fault injection in the fake, retry jitter, benches and tests — never for
//! secrets, tokens or anything an adversary must not guess.
//!
//! ```
//! use planner::rng::Rng;
//! let mut a = Rng::new(7);
//! let mut b = Rng::new(7);
//! assert_eq!(a.next_u64(), b.next_u64()); // same seed, same stream
//! assert!(a.below(10) < 10);
//! let u = a.unit();
//! assert!((0.0..1.0).contains(&u));
//! ```

/// A splitmix64 stream. See the [module documentation](self).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Rng {
    state: u64,
}

impl Rng {
    /// The stream of `seed`.
    pub const fn new(seed: u64) -> Rng {
        Rng { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A value in `0..n` (`n > 0`; the modulo bias is below 2⁻⁴⁰ for `n ≤ 65 536`).
    pub fn below(&mut self, n: u32) -> u32 {
        // Cannot fail: the remainder is below `n`.
        u32::try_from(self.next_u64() % u64::from(n)).unwrap_or(0)
    }

    /// A uniform float in `[0, 1)`, from the top 53 bits.
    pub fn unit(&mut self) -> f64 {
        #[expect(
            clippy::cast_precision_loss,
            reason = "53 random bits into a unit float"
        )]
        let u = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        u
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix64_reference_values() {
        // The first outputs of splitmix64 seeded with 0 (the reference implementation's).
        let mut r = Rng::new(0);
        assert_eq!(r.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(r.next_u64(), 0x6E78_9E6A_A1B9_65F4);
        assert_eq!(r.next_u64(), 0x06C4_5D18_8009_454F);
    }

    #[test]
    fn below_and_unit_stay_in_range() {
        let mut r = Rng::new(42);
        for _ in 0..10_000 {
            assert!(r.below(3) < 3);
            let u = r.unit();
            assert!((0.0..1.0).contains(&u), "{u}");
        }
    }
}
