//! `cargo bench -p cloud --bench harness`: EC2 calls per second the adapter sustains against the
//! LocalStack harness (started or reused), sequentially and with concurrent callers. The harness
//! (a Python process) is the bottleneck; the figure says what tests and simulations can expect.
#![allow(clippy::disallowed_methods, reason = "a benchmark reads the clock")]

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use cloud::Ec2;
use cloud::model::EniFilter;

async fn rate<F, Fut>(n: usize, f: F) -> f64
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = ()>,
{
    let t = Instant::now();
    for i in 0..n {
        f(i).await;
    }
    #[expect(clippy::cast_precision_loss, reason = "a rate")]
    let r = n as f64 / t.elapsed().as_secs_f64();
    r
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let ec2 = Arc::new(harness_client::ec2().await);
        let subnet = harness_client::subnet(&ec2, "10.0.0.0/20").await;
        let instance = harness_client::instance(&ec2, "c5.18xlarge", &subnet).await;
        let filter = EniFilter {
            instance_id: Some(instance.clone()),
            ..EniFilter::default()
        };
        let primary = ec2.describe_network_interfaces(&filter).await.unwrap()[0]
            .id
            .clone();
        let n = 200;
        let describe = rate(n, |_| {
            let (ec2, filter) = (Arc::clone(&ec2), filter.clone());
            async move {
                ec2.describe_network_interfaces(&filter).await.unwrap();
            }
        })
        .await;
        let pairs = rate(n / 2, |_| {
            let (ec2, eni) = (Arc::clone(&ec2), primary.clone());
            async move {
                let ips = ec2.assign_private_ips(&eni, 1).await.unwrap();
                ec2.unassign_private_ips(&eni, &ips).await.unwrap();
            }
        })
        .await;
        println!("sequential DescribeNetworkInterfaces (filtered): {describe:.0} calls/s");
        println!(
            "sequential AssignPrivateIpAddresses + Unassign: {:.0} calls/s",
            pairs * 2.0
        );
        let t = Instant::now();
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let (ec2, filter) = (Arc::clone(&ec2), filter.clone());
                tokio::spawn(async move {
                    for _ in 0..50 {
                        ec2.describe_network_interfaces(&filter).await.unwrap();
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        println!(
            "8 concurrent callers, DescribeNetworkInterfaces: {:.0} calls/s",
            400.0 / t.elapsed().as_secs_f64()
        );
    });
}
