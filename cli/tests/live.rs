//! `eniplan subnets --live` end to end, as a user runs it: the binary built with the `live`
//! feature reads a subnet of the LocalStack EC2 harness (one instance and one ENI with two /28
//! prefixes in it) and draws its block map. Without the feature, the same command is refused
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
}
