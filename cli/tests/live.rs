//! `eniplan subnets --live` and `eniplan max-pods --live` end to end, as a user runs them: the
//! binary built with the `live` feature reads a subnet of the LocalStack EC2 harness (one
//! instance and one ENI with two /28 prefixes in it) and draws its block map, and asks EC2 for
//! the limits of the harness's day-one type. Without the feature, the same commands are refused
//! with exit 2 and the way to build a CLI that has EC2 access.

use std::process::Command;

use insta_cmd::get_cargo_bin;

fn eniplan() -> Command {
    Command::new(get_cargo_bin("eniplan"))
}

#[cfg(feature = "live")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_block_map_of_a_harness_subnet() {
    use cloud::Ec2;
    use cloud::model::CreateEni;

    let ec2 = harness_client::ec2().await;
    let subnet = harness_client::subnet(&ec2, "10.0.240.0/24").await;
    let instance = harness_client::instance(&ec2, "m5.large", &subnet).await;
    let eni = ec2
        .create_network_interface(&CreateEni {
            subnet_id: subnet.clone(),
            description: "aws-K8S-live-test".into(),
            prefixes: 2,
            ..CreateEni::default()
        })
        .await
        .expect("CreateNetworkInterface");
    let info = harness_client::info();
    let out = eniplan()
        .args([
            "subnets",
            "--live",
            "--subnet",
            &subnet,
            "--region",
            "us-west-2",
            "--endpoint",
            &info.ec2_endpoint,
            "--output",
            "json",
        ])
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env_remove("AWS_PROFILE")
        .output()
        .expect("run eniplan");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "exit {:?}: {stderr}", out.status);
    let maps: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    let map = &maps.as_array().expect("a list of block maps")[0];
    assert_eq!(map["id"], subnet.as_str());
    assert_eq!(map["counts"]["prefix"], 2, "{map}");
    // A /24 has 251 usable addresses: the instance's primary, the ENI's primary and its two
    // prefixes (32) are taken.
    assert_eq!(map["stats"]["free_addresses"], 251 - 2 - 32, "{map}");
    let owners: Vec<&str> = map["drain"]
        .as_array()
        .expect("drain candidates")
        .iter()
        .filter_map(|d| d["owner"].as_str())
        .collect();
    assert!(
        owners.contains(&"aws-K8S-live-test") || owners.contains(&instance.as_str()),
        "{owners:?}"
    );
    ec2.delete_network_interface(&eni.id)
        .await
        .expect("DeleteNetworkInterface");
}

#[cfg(feature = "live")]
#[test]
fn live_with_an_unreachable_endpoint_is_exit_3() {
    let out = eniplan()
        .args([
            "subnets",
            "--live",
            "--subnet",
            "subnet-0abc",
            "--region",
            "us-west-2",
            // A port nothing listens on (loopback only).
            "--endpoint",
            "http://127.0.0.1:9",
        ])
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_MAX_ATTEMPTS", "1")
        .output()
        .expect("run eniplan");
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("error:"));
}

/// `eniplan max-pods --live` against the harness, whose `q9.large` no catalogue knows.
#[cfg(feature = "live")]
fn max_pods_live(args: &[&str], endpoint: &str) -> std::process::Output {
    eniplan()
        .args([
            "max-pods",
            "--live",
            "--region",
            "us-west-2",
            "--endpoint",
            endpoint,
        ])
        .args(args)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_MAX_ATTEMPTS", "1")
        .env_remove("AWS_PROFILE")
        .output()
        .expect("run eniplan")
}

#[cfg(feature = "live")]
#[test]
fn max_pods_live_reads_a_day_one_type_from_ec2_and_says_so() {
    let endpoint = &harness_client::info().ec2_endpoint;
    let out = max_pods_live(&["q9.large"], endpoint);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "exit {:?}: {stderr}", out.status);
    // EC2's 4 ENIs of 12 addresses, through the catalogue's arithmetic: 4 × 11 + 2.
    assert_eq!(String::from_utf8_lossy(&out.stdout), "46\n");
    assert!(stderr.contains("q9.large: limits from EC2"), "{stderr}");

    let out = max_pods_live(&["m5.large,q9.large", "--output", "json"], endpoint);
    assert!(out.status.success(), "{out:?}");
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    let sources: Vec<(&str, &str, u64)> = rows
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| {
            (
                r["instance_type"].as_str().unwrap(),
                r["limits_from"].as_str().unwrap(),
                r["max_pods"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        sources,
        [("m5.large", "catalogue", 29), ("q9.large", "ec2", 46)]
    );

    let out = max_pods_live(&["q9.large", "--explain"], endpoint);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("4 ENIs on the default card, 12 IPv4 addresses per ENI"),
        "{text}"
    );
    assert!(
        text.contains("limits from EC2's DescribeInstanceTypes"),
        "{text}"
    );
}

#[cfg(feature = "live")]
#[test]
fn max_pods_live_asks_ec2_nothing_for_catalogued_types_and_names_unknown_ones() {
    // Nothing listens on the endpoint: a catalogued type never needs it.
    let out = max_pods_live(&["m5.large"], "http://127.0.0.1:9");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "29\n");
    // A type EC2 does not know either: the catalogue's error and its exit code.
    let out = max_pods_live(&["m5.lrge"], &harness_client::info().ec2_endpoint);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("did you mean m5.large"), "{stderr}");
    // EC2 unreachable for an unknown type: exit 3, naming the call.
    let out = max_pods_live(&["q9.large"], "http://127.0.0.1:9");
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("ec2:DescribeInstanceTypes") && stderr.contains("q9.large"),
        "{stderr}"
    );
}

#[cfg(not(feature = "live"))]
#[test]
fn live_without_the_feature_says_how_to_build_it() {
    let out = eniplan()
        .args(["subnets", "--live", "--subnet", "subnet-0abc"])
        .output()
        .expect("run eniplan");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--features live") && stderr.contains("--live"),
        "{stderr}"
    );
    let out = eniplan()
        .args(["max-pods", "--live", "q9.large"])
        .output()
        .expect("run eniplan");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--features live"));
}
