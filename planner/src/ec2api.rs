//! EC2's request-rate limits, per API: each account and region has a token bucket per action
//! (or family of actions). A call takes a token; the bucket refills at a fixed rate. Used by the
//! `cloud` crate's client-side limiter and by the planner's API-budget forecasts.
//!
//! The numbers are EC2's documented defaults (EC2 API reference, "Request throttling"), as
//! collected in `docs/reference/landscape.md` §3 of the project's shared material.
//!
//! ```
//! use planner::ec2api::bucket;
//! let b = bucket("AssignPrivateIpAddresses");
//! assert_eq!((b.capacity, b.refill_per_sec), (100, 5));
//! // 500 nodes each creating one ENI at once: the first 100 go at once, the rest at 5/s.
//! assert_eq!(b.seconds_for(500), 80);
//! ```

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
    fn seconds_for_a_wave() {
        let attach = bucket("AttachNetworkInterface");
        assert_eq!(attach.seconds_for(50), 0);
        assert_eq!(attach.seconds_for(500), 90);
    }
}
