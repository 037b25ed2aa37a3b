//! [`Guarded`]: client-side rate limiting shaped like EC2's token buckets, and retries with
//! jittered exponential back-off, around any [`Ec2`].
//!
//! The limiter is the planner's [`TokenBucket`] (one per API family), the same one
//! `capacity::budget` replays for `eniplan api-budget`: here it is fed the tokio clock and the
//! call sleeps for the wait it returns.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::Ipv4Addr;
use std::sync::Mutex;
use std::time::Duration;

use ipnetwork::Ipv4Network;
use planner::ec2api::{self, TokenBucket};
use planner::pool::EniId;
use planner::rng::Rng;
use tokio::time::Instant;

use crate::model::{
    CreateEni, EniFilter, Instance, InstanceTypeInfo, NetworkInterface, SubnetInfo,
};
use crate::{CloudError, Ec2, Result, backoff};

/// How calls are retried.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Attempts per call, the first included (1 = no retry).
    pub max_attempts: u32,
    /// First back-off.
    pub base: Duration,
    /// Longest back-off.
    pub cap: Duration,
    /// Client-side token buckets (EC2's sizes and refill rates) before each call.
    pub rate_limit: bool,
    /// Scales every bucket's refill rate (1.0 = EC2's; lower to leave room for other callers).
    pub rate_share: f64,
    /// Seed of the jitter ([`planner::rng::Rng`]).
    pub seed: u64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 8,
            base: Duration::from_millis(200),
            cap: Duration::from_secs(20),
            rate_limit: true,
            rate_share: 1.0,
            seed: 0x9e37_79b9_7f4a_7c15,
        }
    }
}

struct State {
    /// Buckets by family; their time is measured from `origin`.
    buckets: BTreeMap<&'static str, TokenBucket>,
    origin: Instant,
    rng: Rng,
}

/// Called after every attempt of every call: the API, the error (if any) and how long it took.
pub type Observer =
    std::sync::Arc<dyn Fn(&'static str, Option<&CloudError>, Duration) + Send + Sync>;

/// An [`Ec2`] with client-side rate limiting and retries. Retries only what may succeed again
/// (throttling, 5xx, timeouts); every other error returns at once.
pub struct Guarded<E> {
    inner: E,
    policy: RetryPolicy,
    state: Mutex<State>,
    observer: Option<Observer>,
}

impl<E: Ec2> Guarded<E> {
    /// Wraps `inner`.
    pub fn new(inner: E, policy: RetryPolicy) -> Guarded<E> {
        Guarded {
            inner,
            policy,
            state: Mutex::new(State {
                buckets: BTreeMap::new(),
                origin: Instant::now(),
                rng: Rng::new(policy.seed),
            }),
            observer: None,
        }
    }

    /// Reports every attempt (for metrics: retried errors are counted too).
    #[must_use]
    pub fn observed_by(mut self, observer: Observer) -> Guarded<E> {
        self.observer = Some(observer);
        self
    }

    /// The wrapped client.
    pub fn inner(&self) -> &E {
        &self.inner
    }

    /// Takes a token for `api`, returning how long to wait for it.
    fn reserve(&self, api: &'static str) -> Duration {
        if !self.policy.rate_limit {
            return Duration::ZERO;
        }
        let mut state = self.state.lock().expect("limiter lock");
        let now = Instant::now().saturating_duration_since(state.origin);
        let bucket = ec2api::bucket(api);
        let share = self.policy.rate_share;
        state
            .buckets
            .entry(bucket.family)
            .or_insert_with(|| TokenBucket::full(bucket, share))
            .take(now)
    }

    fn jitter(&self) -> f64 {
        self.state.lock().expect("limiter lock").rng.unit()
    }

    async fn run<T, F, Fut>(&self, api: &'static str, f: F) -> Result<T>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let mut attempt = 1;
        loop {
            let wait = self.reserve(api);
            if !wait.is_zero() {
                tokio::time::sleep(wait).await;
            }
            let started = Instant::now();
            let result = f().await;
            if let Some(observe) = &self.observer {
                observe(api, result.as_ref().err(), started.elapsed());
            }
            match result {
                Ok(v) => return Ok(v),
                Err(e) if e.is_retryable() && attempt < self.policy.max_attempts => {
                    let d = backoff(attempt, self.policy.base, self.policy.cap, self.jitter());
                    tokio::time::sleep(d).await;
                    attempt += 1;
                }
                Err(e) => return Err(e.after_attempts(attempt)),
            }
        }
    }
}

impl<E: Ec2> Ec2 for Guarded<E> {
    async fn describe_instances(&self, ids: &[String]) -> Result<Vec<Instance>> {
        self.run("DescribeInstances", || self.inner.describe_instances(ids))
            .await
    }
    async fn describe_instance_types(&self, names: &[String]) -> Result<Vec<InstanceTypeInfo>> {
        self.run("DescribeInstanceTypes", || {
            self.inner.describe_instance_types(names)
        })
        .await
    }
    async fn describe_subnets(&self, ids: &[String]) -> Result<Vec<SubnetInfo>> {
        self.run("DescribeSubnets", || self.inner.describe_subnets(ids))
            .await
    }
    async fn describe_network_interfaces(
        &self,
        filter: &EniFilter,
    ) -> Result<Vec<NetworkInterface>> {
        self.run("DescribeNetworkInterfaces", || {
            self.inner.describe_network_interfaces(filter)
        })
        .await
    }
    async fn create_network_interface(&self, request: &CreateEni) -> Result<NetworkInterface> {
        self.run("CreateNetworkInterface", || {
            self.inner.create_network_interface(request)
        })
        .await
    }
    async fn attach_network_interface(
        &self,
        eni: &EniId,
        instance_id: &str,
        device_index: u32,
        card: u32,
    ) -> Result<String> {
        self.run("AttachNetworkInterface", || {
            self.inner
                .attach_network_interface(eni, instance_id, device_index, card)
        })
        .await
    }
    async fn set_delete_on_termination(
        &self,
        eni: &EniId,
        attachment_id: &str,
        delete: bool,
    ) -> Result<()> {
        self.run("ModifyNetworkInterfaceAttribute", || {
            self.inner
                .set_delete_on_termination(eni, attachment_id, delete)
        })
        .await
    }
    async fn detach_network_interface(&self, attachment_id: &str, force: bool) -> Result<()> {
        self.run("DetachNetworkInterface", || {
            self.inner.detach_network_interface(attachment_id, force)
        })
        .await
    }
    async fn delete_network_interface(&self, eni: &EniId) -> Result<()> {
        self.run("DeleteNetworkInterface", || {
            self.inner.delete_network_interface(eni)
        })
        .await
    }
    async fn assign_private_ips(&self, eni: &EniId, count: u32) -> Result<Vec<Ipv4Addr>> {
        self.run("AssignPrivateIpAddresses", || {
            self.inner.assign_private_ips(eni, count)
        })
        .await
    }
    async fn assign_prefixes(&self, eni: &EniId, count: u32) -> Result<Vec<Ipv4Network>> {
        self.run("AssignPrivateIpAddresses", || {
            self.inner.assign_prefixes(eni, count)
        })
        .await
    }
    async fn unassign_private_ips(&self, eni: &EniId, ips: &[Ipv4Addr]) -> Result<()> {
        self.run("UnassignPrivateIpAddresses", || {
            self.inner.unassign_private_ips(eni, ips)
        })
        .await
    }
    async fn unassign_prefixes(&self, eni: &EniId, prefixes: &[Ipv4Network]) -> Result<()> {
        self.run("UnassignPrivateIpAddresses", || {
            self.inner.unassign_prefixes(eni, prefixes)
        })
        .await
    }
    async fn create_tags(
        &self,
        resources: &[String],
        tags: &BTreeMap<String, String>,
    ) -> Result<()> {
        self.run("CreateTags", || self.inner.create_tags(resources, tags))
            .await
    }
}

/// Retry failures are typed errors too.
impl From<tokio::time::error::Elapsed> for CloudError {
    fn from(_: tokio::time::error::Elapsed) -> Self {
        CloudError::Transient {
            api: "timeout",
            attempts: 1,
            message: "deadline elapsed".to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::{FakeEc2, Fault};

    fn node() -> FakeEc2 {
        let ec2 = FakeEc2::new();
        let vpc = ec2.create_vpc("10.0.0.0/16".parse().unwrap());
        let subnet = ec2
            .create_subnet(&vpc, "10.0.0.0/20".parse().unwrap(), "us-west-2a")
            .unwrap();
        ec2.run_instance("c5.18xlarge", &subnet).unwrap();
        ec2
    }

    async fn primary(ec2: &FakeEc2) -> EniId {
        ec2.describe_network_interfaces(&EniFilter::default())
            .await
            .unwrap()[0]
            .id
            .clone()
    }

    #[tokio::test(start_paused = true)]
    async fn client_side_buckets_pace_a_burst_like_ec2() {
        let ec2 = node();
        let eni = primary(&ec2).await;
        let guarded = Guarded::new(ec2.clone(), RetryPolicy::default());
        let tags = BTreeMap::from([("k".to_owned(), "v".to_owned())]);
        // CreateTags: bucket 100, refill 10/s. 130 calls: 100 at once, 30 more over 3 s.
        let start = Instant::now();
        for _ in 0..130 {
            guarded
                .create_tags(std::slice::from_ref(&eni.0), &tags)
                .await
                .unwrap();
        }
        let took = start.elapsed();
        assert!(
            took >= Duration::from_millis(2900) && took <= Duration::from_millis(3100),
            "{took:?}"
        );
        // Describe calls draw from another bucket: not delayed.
        let start = Instant::now();
        guarded
            .describe_network_interfaces(&EniFilter::default())
            .await
            .unwrap();
        assert_eq!(start.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn transient_errors_are_retried_with_backoff() {
        let ec2 = node();
        let eni = primary(&ec2).await;
        let policy = RetryPolicy {
            rate_limit: false,
            ..RetryPolicy::default()
        };
        let guarded = Guarded::new(ec2.clone(), policy);
        ec2.inject(
            "AssignPrivateIpAddresses",
            Fault {
                code: "InternalError".into(),
                probability: 1.0,
                count: Some(2),
            },
        );
        let start = Instant::now();
        let ips = guarded.assign_private_ips(&eni, 3).await.unwrap();
        assert_eq!(ips.len(), 3);
        assert_eq!(ec2.calls()["AssignPrivateIpAddresses"], 3);
        // Two back-offs, each at most base × 2^(n−1): 200 ms + 400 ms.
        assert!(
            start.elapsed() <= Duration::from_millis(600),
            "{:?}",
            start.elapsed()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn other_errors_are_not_retried() {
        let ec2 = node();
        let eni = primary(&ec2).await;
        let guarded = Guarded::new(ec2.clone(), RetryPolicy::default());
        ec2.inject(
            "AssignPrivateIpAddresses",
            Fault {
                code: "InsufficientCidrBlocks".into(),
                probability: 1.0,
                count: Some(1),
            },
        );
        let err = guarded.assign_prefixes(&eni, 1).await.unwrap_err();
        assert!(
            matches!(err, CloudError::InsufficientCidrBlocks { .. }),
            "{err:?}"
        );
        assert_eq!(ec2.calls()["AssignPrivateIpAddresses"], 1);
    }

    #[tokio::test(start_paused = true)]
    async fn exhausted_retries_report_the_attempts() {
        let ec2 = node();
        let eni = primary(&ec2).await;
        let policy = RetryPolicy {
            max_attempts: 3,
            rate_limit: false,
            ..RetryPolicy::default()
        };
        let guarded = Guarded::new(ec2.clone(), policy);
        ec2.inject(
            "*",
            Fault {
                code: "RequestLimitExceeded".into(),
                probability: 1.0,
                count: None,
            },
        );
        let err = guarded.unassign_private_ips(&eni, &[]).await.unwrap_err();
        assert_eq!(
            err,
            CloudError::Throttled {
                api: "UnassignPrivateIpAddresses",
                attempts: 3
            }
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_fraction_of_calls_fails_with_probability() {
        let ec2 = node();
        ec2.inject(
            "DescribeSubnets",
            Fault {
                code: "RequestLimitExceeded".into(),
                probability: 0.3,
                count: None,
            },
        );
        let mut failures = 0;
        for _ in 0..1000 {
            if ec2.describe_subnets(&[]).await.is_err() {
                failures += 1;
            }
        }
        assert!((200..400).contains(&failures), "{failures}");
    }
}
