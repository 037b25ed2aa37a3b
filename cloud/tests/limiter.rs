//! One limiter: the same call sequence through `cloud::Guarded` (the daemon's client-side
//! limiter, on the tokio clock) and through `capacity::budget` (the replay behind `eniplan
//! api-budget`) gives the same wait for every call.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use cloud::fake::FakeEc2;
use cloud::model::EniFilter;
use cloud::{Ec2, Guarded, RetryPolicy};
use tokio::time::Instant;

/// The calls: bursts past the buckets of three families, pauses that refill them part way, and
/// calls that arrive while earlier ones still queue.
fn calls() -> Vec<(Duration, &'static str)> {
    let ms = Duration::from_millis;
    let mut calls = Vec::new();
    let mut add = |at: Duration, api: &'static str, n: usize| {
        calls.extend(std::iter::repeat_n((at, api), n));
    };
    add(ms(0), "CreateTags", 120); // bucket 100, 10/s
    add(ms(0), "DetachNetworkInterface", 60); // the mutating bucket: 50, 5/s
    add(ms(1000), "DescribeSubnets", 150); // 100, 20/s
    add(ms(1500), "CreateTags", 30); // still queued behind the first burst
    add(ms(5000), "DetachNetworkInterface", 10);
    add(ms(30_000), "CreateTags", 110); // refilled to 100, not more
    add(ms(30_000), "AttachNetworkInterface", 45); // the same mutating bucket as detach
    calls
}

async fn through_guarded(calls: &[(Duration, &'static str)], share: f64) -> Vec<Duration> {
    let ec2 = FakeEc2::new();
    let vpc = ec2.create_vpc("10.0.0.0/16".parse().unwrap());
    let subnet = ec2
        .create_subnet(&vpc, "10.0.0.0/20".parse().unwrap(), "us-west-2a")
        .unwrap();
    let instance = ec2.run_instance("c5.18xlarge", &subnet).unwrap();
    let eni = ec2
        .describe_network_interfaces(&EniFilter::default())
        .await
        .unwrap()[0]
        .id
        .clone();
    let start = Instant::now();
    let guarded = Arc::new(Guarded::new(
        ec2,
        RetryPolicy {
            rate_share: share,
            ..RetryPolicy::default()
        },
    ));
    let tags = Arc::new(BTreeMap::from([("k".to_owned(), "v".to_owned())]));
    let mut tasks = Vec::new();
    for &(at, api) in calls {
        let (guarded, tags, eni, instance) =
            (guarded.clone(), tags.clone(), eni.clone(), instance.clone());
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep_until(start + at).await;
            let sent = Instant::now();
            // The fake answers at once, so the time a call takes is its wait for a token.
            // Errors (a detach of no attachment…) are not retried: one token each.
            match api {
                "CreateTags" => {
                    guarded
                        .create_tags(std::slice::from_ref(&eni.0), &tags)
                        .await
                        .unwrap();
                }
                "DescribeSubnets" => {
                    guarded.describe_subnets(&[]).await.unwrap();
                }
                "DetachNetworkInterface" => {
                    let _ = guarded
                        .detach_network_interface("eni-attach-0", false)
                        .await;
                }
                "AttachNetworkInterface" => {
                    let _ = guarded
                        .attach_network_interface(&eni, &instance, 0, 0)
                        .await;
                }
                other => unreachable!("{other}"),
            }
            sent.elapsed()
        }));
    }
    let mut waits = Vec::new();
    for t in tasks {
        waits.push(t.await.unwrap());
    }
    waits
}

/// Waits per (time, bucket family), sorted: calls of one family ready at the same instant are
/// interchangeable (tokio wakes them in no promised order), so their waits are compared as a set.
fn by_group(
    calls: &[(Duration, &'static str)],
    waits: &[Duration],
) -> BTreeMap<(Duration, &'static str), Vec<Duration>> {
    let mut groups: BTreeMap<(Duration, &'static str), Vec<Duration>> = BTreeMap::new();
    for (&(at, api), &wait) in calls.iter().zip(waits) {
        groups
            .entry((at, planner::ec2api::bucket(api).family))
            .or_default()
            .push(wait);
    }
    for v in groups.values_mut() {
        v.sort_unstable();
    }
    groups
}

#[tokio::test(start_paused = true)]
async fn guarded_and_the_budget_replay_wait_the_same() {
    let calls = calls();
    for share in [1.0, 0.5] {
        let guarded = by_group(&calls, &through_guarded(&calls, share).await);
        let replayed = by_group(&calls, &capacity::budget::token_waits(&calls, share));
        let mut throttled = 0;
        for (key, g) in &guarded {
            let r = &replayed[key];
            for (g, r) in g.iter().zip(r) {
                // tokio's timer has millisecond resolution and rounds up.
                assert!(
                    g.abs_diff(*r) <= Duration::from_millis(1),
                    "share {share}, {key:?}: guarded {g:?}, replayed {r:?}"
                );
                throttled += usize::from(!r.is_zero());
            }
        }
        // Not vacuous: the sequence does drain buckets.
        assert!(throttled > 100, "share {share}: {throttled} calls waited");
    }
    // The arithmetic, once by hand: 120 CreateTags at 0 (100, 10/s): the last waits 2 s.
    let replayed = capacity::budget::token_waits(&calls, 1.0);
    assert!(replayed[119].abs_diff(Duration::from_secs(2)) < Duration::from_micros(1));
}
