//! EC2's request-rate limits, per API: each account and region has a token bucket per action
//! (or family of actions). A call takes a token; the bucket refills at a fixed rate. [`bucket`]
//! gives the sizes; [`TokenBucket`] is the one limiter of the workspace, run by the `cloud`
//! crate's client-side limiter (`cloud::Guarded`, which reads the clock and sleeps) and by the
//! API-budget forecasts (`capacity::budget`, which replays calls in simulated time), so the
//! forecast is of the limiter the daemon runs.
//!
//! The numbers are EC2's documented defaults for an account (the EC2 API reference, "Request
//! throttling for the Amazon EC2 API",
//! <https://docs.aws.amazon.com/ec2/latest/devguide/ec2-api-throttling.html>).
//!
//! ```
//! use planner::ec2api::bucket;
//! let b = bucket("AssignPrivateIpAddresses");
//! assert_eq!((b.capacity, b.refill_per_sec), (100, 5));
//! // 500 nodes each creating one ENI at once: the first 100 go at once, the rest at 5/s.
//! assert_eq!(b.seconds_for(500), 80);
//! ```

use std::time::Duration;

use serde::Serialize;

/// One token bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Bucket {
    /// The bucket's family name.
    pub family: &'static str,
    /// Tokens when full (the burst).
    pub capacity: u32,
    /// Tokens added per second.
    pub refill_per_sec: u32,
}

impl Bucket {
    /// Whole seconds until `calls` calls have been allowed, starting from a full bucket and no
    /// other caller: `max(0, calls − capacity) / refill`, rounded up.
    pub fn seconds_for(&self, calls: u32) -> u32 {
        calls
            .saturating_sub(self.capacity)
            .div_ceil(self.refill_per_sec.max(1))
    }
}

/// The state of one token bucket, with EC2's semantics ("Request throttling" in the EC2 API
/// reference): the bucket holds at most `capacity` tokens and gains `refill_per_sec` a second; a
/// call needs one whole token, and a call that finds none is throttled. As a client-side
/// limiter it *delays* such a call instead: [`TokenBucket::take`] returns how long the call must
/// wait until its token is there, and reserves it, so what the caller sends never exceeds the
/// bucket. The balance never goes below zero: a call that has to wait moves the bucket's clock
/// to the moment it is sent, so calls are served first come, first served.
///
/// Time is an argument (`now`, from any fixed origin, never going backwards between calls).
///
/// ```
/// use std::time::Duration;
/// use planner::ec2api::{TokenBucket, bucket};
/// let mut b = TokenBucket::full(bucket("AttachNetworkInterface"), 1.0); // 50, 5/s
/// let waits: Vec<Duration> = (0..52).map(|_| b.take(Duration::ZERO)).collect();
/// assert_eq!(waits[49], Duration::ZERO);                  // the burst
/// assert_eq!(waits[50], Duration::from_millis(200));      // then one token every 1/5 s
/// assert_eq!(waits[51], Duration::from_millis(400));
/// // The last token was reserved for 400 ms; by 1 s, 3 more have come in.
/// assert_eq!(b.take(Duration::from_secs(1)), Duration::ZERO);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct TokenBucket {
    capacity: f64,
    refill_per_sec: f64,
    /// Tokens at `at`, in `0..=capacity`.
    tokens: f64,
    /// Seconds since the origin of the last update (at or after the last call's send time).
    at: f64,
}

impl TokenBucket {
    /// A full bucket of these sizes at time zero, its refill scaled by `share` (1.0 = all of it;
    /// lower to leave room for the account's other callers). A bucket with no refill
    /// (`share <= 0`) does not limit: [`TokenBucket::take`] always answers zero.
    pub fn full(bucket: Bucket, share: f64) -> TokenBucket {
        TokenBucket {
            capacity: f64::from(bucket.capacity),
            refill_per_sec: f64::from(bucket.refill_per_sec) * share,
            tokens: f64::from(bucket.capacity),
            at: 0.0,
        }
    }

    /// Takes the token of a call ready at `now` and returns how long the call must wait before
    /// it is sent (zero while the bucket has a token).
    pub fn take(&mut self, now: Duration) -> Duration {
        let refill = self.refill_per_sec;
        if refill.is_nan() || refill <= 0.0 {
            return Duration::ZERO;
        }
        let ready = now.as_secs_f64();
        let t = ready.max(self.at);
        self.tokens = (self.tokens + (t - self.at) * refill).min(self.capacity);
        self.at = t;
        let send = if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            t
        } else {
            let wait = (1.0 - self.tokens) / refill;
            self.tokens = 0.0;
            self.at = t + wait;
            t + wait
        };
        Duration::from_secs_f64(send - ready)
    }
}

const fn b(family: &'static str, capacity: u32, refill_per_sec: u32) -> Bucket {
    Bucket {
        family,
        capacity,
        refill_per_sec,
    }
}

/// The bucket an EC2 API draws from. Describe calls are taken as filtered (eniplan always
/// filters or names its resources).
pub fn bucket(api: &str) -> Bucket {
    match api {
        "AssignPrivateIpAddresses" => b("AssignPrivateIpAddresses", 100, 5),
        "UnassignPrivateIpAddresses" => b("UnassignPrivateIpAddresses", 100, 5),
        "CreateNetworkInterface" => b("CreateNetworkInterface", 100, 5),
        "DeleteNetworkInterface" => b("DeleteNetworkInterface", 100, 5),
        "ModifyNetworkInterfaceAttribute" => b("ModifyNetworkInterfaceAttribute", 100, 5),
        "CreateTags" => b("CreateTags", 100, 10),
        "AttachNetworkInterface" | "DetachNetworkInterface" => b("mutating", 50, 5),
        "CreateSubnetCidrReservation" => b("CreateSubnetCidrReservation", 5, 1),
        a if a.starts_with("Describe") => b("describe", 100, 20),
        _ => b("mutating", 50, 5),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attach_and_detach_share_the_generic_mutating_bucket() {
        assert_eq!(
            bucket("AttachNetworkInterface"),
            bucket("DetachNetworkInterface")
        );
        assert_eq!(bucket("AttachNetworkInterface").capacity, 50);
        assert_eq!(bucket("DescribeNetworkInterfaces").refill_per_sec, 20);
        assert_eq!(bucket("RunInstances").family, "mutating");
    }

    #[test]
    fn the_closed_form_is_the_bucket_run_call_by_call() {
        for api in ["AttachNetworkInterface", "CreateTags", "DescribeSubnets"] {
            let spec = bucket(api);
            let mut b = TokenBucket::full(spec, 1.0);
            let mut last = Duration::ZERO;
            for _ in 0..500 {
                last = b.take(Duration::ZERO);
            }
            let closed_form = f64::from(spec.seconds_for(500));
            assert!(
                (last.as_secs_f64() - closed_form).abs() < 1e-6,
                "{api}: {last:?}"
            );
        }
    }

    #[test]
    fn a_bucket_refills_up_to_its_capacity_and_never_below_zero() {
        let mut b = TokenBucket::full(bucket("CreateSubnetCidrReservation"), 1.0); // 5, 1/s
        for _ in 0..5 {
            assert_eq!(b.take(Duration::ZERO), Duration::ZERO);
        }
        // Empty: the next two wait 1 s and 2 s (first come, first served).
        assert_eq!(b.take(Duration::ZERO), Duration::from_secs(1));
        assert_eq!(b.take(Duration::ZERO), Duration::from_secs(2));
        // An hour idle refills 5 tokens, not 3600.
        let later = Duration::from_hours(1);
        for _ in 0..5 {
            assert_eq!(b.take(later), Duration::ZERO);
        }
        assert_eq!(b.take(later), Duration::from_secs(1));
        // Half the refill: a token every 2 s.
        let mut half = TokenBucket::full(bucket("CreateSubnetCidrReservation"), 0.5);
        for _ in 0..5 {
            half.take(Duration::ZERO);
        }
        assert_eq!(half.take(Duration::ZERO), Duration::from_secs(2));
        // No refill: no limit.
        let mut none = TokenBucket::full(bucket("CreateSubnetCidrReservation"), 0.0);
        assert!((0..10).all(|_| none.take(Duration::ZERO).is_zero()));
    }

    #[test]
    fn seconds_for_a_wave() {
        let attach = bucket("AttachNetworkInterface");
        assert_eq!(attach.seconds_for(50), 0);
        assert_eq!(attach.seconds_for(500), 90);
    }
}
