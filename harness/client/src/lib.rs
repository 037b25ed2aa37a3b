//! # harness-client
//!
//! Test support, never shipped: start (or reuse) the LocalStack harness (`harness/up`) and
//! drive it: provision VPCs, subnets and instances through the SDK, get an IMDS endpoint for an
//! instance, inject faults. A dev-dependency of `cloud`'s contract suite and benches and of the
//! daemon's end-to-end tests; everything talks to 127.0.0.1 only. It panics where a test cannot
//! go on without the harness. [`resource_controller`] is a double of the EKS VPC resource
//! controller (trunk and branch ENIs for security groups for pods).

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use cloud::aws::{AwsEc2, AwsSettings};

pub mod resource_controller;

/// The AMI instances run: moto's built-in `amazon-eks-node-linux` image (as `harness/up`).
/// Named, not looked up: an unfiltered DescribeImages costs moto seconds.
pub const AMI: &str = "ami-ekslinux";

/// Where the harness listens.
#[derive(Debug, Clone)]
pub struct HarnessInfo {
    /// `EC2_ENDPOINT`.
    pub ec2_endpoint: String,
    /// `HARNESS_CONTROL`.
    pub control: String,
}

/// Starts the harness once per process (or reuses a running one) and returns its endpoints.
///
/// # Panics
/// When `harness/up` fails: a test that needs EC2 cannot run without it.
pub fn info() -> &'static HarnessInfo {
    static INFO: OnceLock<HarnessInfo> = OnceLock::new();
    INFO.get_or_init(|| {
        let up = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../up");
        let out = std::process::Command::new("bash")
            .arg(&up)
            .output()
            .expect("run harness/up");
        assert!(
            out.status.success(),
            "harness/up failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let var = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(&format!("{name}=")))
                .unwrap_or_else(|| panic!("harness/up printed no {name}:\n{text}"))
                .trim()
                .to_owned()
        };
        HarnessInfo {
            ec2_endpoint: var("EC2_ENDPOINT"),
            control: var("HARNESS_CONTROL"),
        }
    })
}

/// A minimal HTTP/1.1 request to a loopback server; returns the status and the body.
///
/// # Panics
/// When the server cannot be reached.
pub fn http(method: &str, url: &str, body: &str) -> (u16, String) {
    let rest = url.strip_prefix("http://").expect("an http:// URL");
    let (host, path) = rest
        .split_once('/')
        .map_or((rest, "/".to_owned()), |(h, p)| (h, format!("/{p}")));
    let mut stream = TcpStream::connect(host).expect("connect to the harness");
    stream
        .set_read_timeout(Some(Duration::from_mins(1)))
        .expect("timeout");
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("write the request");
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .expect("read the response");
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// The harness's settings for an AWS client.
pub fn settings() -> AwsSettings {
    AwsSettings {
        region: Some("us-west-2".into()),
        ec2_endpoint: Some(info().ec2_endpoint.clone()),
        imds_endpoint: None,
        static_credentials: Some(("test".into(), "test".into())),
        attempt_timeout: Some(Duration::from_secs(30)),
    }
}

/// A client of the harness's EC2.
///
/// # Panics
/// When the client cannot be configured.
pub async fn ec2() -> AwsEc2 {
    AwsEc2::new(&settings())
        .await
        .expect("a harness EC2 client")
}

/// Creates a VPC (10.0.0.0/16) with one subnet of `cidr`; returns the subnet id.
///
/// # Panics
/// When EC2 refuses.
pub async fn subnet(ec2: &AwsEc2, cidr: &str) -> String {
    let sdk = ec2.sdk();
    let vpc = sdk
        .create_vpc()
        .cidr_block("10.0.0.0/16")
        .send()
        .await
        .expect("CreateVpc");
    let vpc_id = vpc
        .vpc()
        .and_then(|v| v.vpc_id())
        .expect("a VPC id")
        .to_owned();
    let subnet = sdk
        .create_subnet()
        .vpc_id(&vpc_id)
        .cidr_block(cidr)
        .availability_zone("us-west-2a")
        .send()
        .await
        .expect("CreateSubnet");
    subnet
        .subnet()
        .and_then(|s| s.subnet_id())
        .expect("a subnet id")
        .to_owned()
}

/// The VPC of `subnet`.
async fn vpc_of(ec2: &AwsEc2, subnet: &str) -> String {
    let described = ec2
        .sdk()
        .describe_subnets()
        .subnet_ids(subnet)
        .send()
        .await
        .expect("DescribeSubnets");
    described
        .subnets()
        .first()
        .and_then(|s| s.vpc_id())
        .expect("the subnet's VPC")
        .to_owned()
}

/// A pod subnet for custom networking: associates `vpc_cidr` (a secondary CIDR such as
/// 100.64.0.0/16) with the VPC of `node_subnet` and creates `cidr` in it, in the same zone;
/// returns the subnet id.
///
/// # Panics
/// When EC2 refuses.
pub async fn pod_subnet(ec2: &AwsEc2, node_subnet: &str, vpc_cidr: &str, cidr: &str) -> String {
    let sdk = ec2.sdk();
    let vpc_id = vpc_of(ec2, node_subnet).await;
    sdk.associate_vpc_cidr_block()
        .vpc_id(&vpc_id)
        .cidr_block(vpc_cidr)
        .send()
        .await
        .expect("AssociateVpcCidrBlock");
    let subnet = sdk
        .create_subnet()
        .vpc_id(&vpc_id)
        .cidr_block(cidr)
        .availability_zone("us-west-2a")
        .send()
        .await
        .expect("CreateSubnet");
    subnet
        .subnet()
        .and_then(|s| s.subnet_id())
        .expect("a subnet id")
        .to_owned()
}

/// A security group in the VPC of `subnet`; returns its id.
///
/// # Panics
/// When EC2 refuses.
pub async fn security_group(ec2: &AwsEc2, subnet: &str, name: &str) -> String {
    let sdk = ec2.sdk();
    let vpc_id = vpc_of(ec2, subnet).await;
    sdk.create_security_group()
        .vpc_id(vpc_id)
        .group_name(name)
        .description(format!("eniplan test {name}"))
        .send()
        .await
        .expect("CreateSecurityGroup")
        .group_id()
        .expect("a group id")
        .to_owned()
}

/// Runs one instance of `instance_type` in `subnet`; returns its id.
///
/// # Panics
/// When EC2 refuses.
pub async fn instance(ec2: &AwsEc2, instance_type: &str, subnet: &str) -> String {
    let out = ec2
        .sdk()
        .run_instances()
        .image_id(AMI)
        .instance_type(aws_sdk_ec2::types::InstanceType::from(instance_type))
        .subnet_id(subnet)
        .min_count(1)
        .max_count(1)
        .send()
        .await
        .expect("RunInstances");
    out.instances()
        .first()
        .and_then(|i| i.instance_id())
        .expect("an instance id")
        .to_owned()
}

/// An IMDS endpoint serving `instance`.
///
/// # Panics
/// When the harness refuses.
pub fn imds_endpoint(instance: &str) -> String {
    let (status, body) = http(
        "POST",
        &format!("{}/imds", info().control),
        &format!(r#"{{"instance_id": "{instance}"}}"#),
    );
    assert_eq!(status, 200, "{body}");
    body.split('"')
        .skip_while(|s| *s != "endpoint")
        .nth(2)
        .expect("an endpoint in the reply")
        .to_owned()
}

/// Adds a fault rule (see `harness/README.md`): calls of `action` (or `*`) fail with `code`.
///
/// # Panics
/// When the harness refuses.
pub fn fault(action: &str, code: &str, probability: f64, count: Option<u32>) {
    let count = count.map_or_else(|| "null".to_owned(), |c| c.to_string());
    let body = format!(
        r#"{{"action": "{action}", "code": "{code}", "probability": {probability}, "count": {count}, "seed": 7}}"#
    );
    let (status, reply) = http("POST", &format!("{}/faults", info().control), &body);
    assert_eq!(status, 200, "{reply}");
}

/// Adds a latency rule: every call of `action` (or `*`) is answered `ms` milliseconds late.
///
/// # Panics
/// When the harness refuses.
pub fn latency(action: &str, ms: u32) {
    let body = format!(r#"{{"action": "{action}", "latency_ms": {ms}}}"#);
    let (status, reply) = http("POST", &format!("{}/faults", info().control), &body);
    assert_eq!(status, 200, "{reply}");
}

/// Removes every fault rule and makes EC2 consistent again ([`consistency`]).
///
/// # Panics
/// When the harness refuses.
pub fn clear_faults() {
    for route in ["faults", "consistency"] {
        let (status, reply) = http("DELETE", &format!("{}/{route}", info().control), "");
        assert_eq!(status, 200, "{reply}");
    }
}

/// Sets EC2's eventual consistency (`POST /consistency`, harness/README.md): `settings` is a
/// JSON object with any of `describe_lag_ms`, `imds_lag_ms` and `stuck_attachments`.
/// Answers the harness's settings and counters.
///
/// # Panics
/// When the harness refuses.
pub fn consistency(settings: &str) -> serde_json::Value {
    let (status, reply) = http("POST", &format!("{}/consistency", info().control), settings);
    assert_eq!(status, 200, "{reply}");
    serde_json::from_str(&reply).expect("the harness answers JSON")
}

/// An instance stood up as a node in network namespaces (`POST /node`, harness/README.md):
/// removed again on drop.
#[derive(Debug)]
pub struct NodeWorld {
    /// The node's name.
    pub name: String,
    /// The namespace standing for the instance (`eniplan-<name>`).
    pub netns: String,
    /// The namespace standing for the VPC's router.
    pub vpc_netns: String,
    /// An address outside the VPC, on the VPC namespace's loopback.
    pub outside: std::net::Ipv4Addr,
}

/// Stands `instance` up as node `name` (1 to 8 letters, digits or `-`); new ENIs' links
/// appear `hotplug_delay_ms` after their attach.
///
/// # Panics
/// When the harness refuses (not root, a leftover namespace, an unknown instance).
pub fn node(name: &str, instance: &str, hotplug_delay_ms: u32) -> NodeWorld {
    node_with_ports(name, instance, hotplug_delay_ms, &[])
}

/// As [`node`], and each of `forward_ports` is forwarded from `127.0.0.1:<port>` inside the
/// node namespace to `127.0.0.1:<port>` in the host's (as the EC2 endpoint is), so a process
/// in the node reaches a server of the test process, such as `kube_fake::FakeApi`, with the
/// same kubeconfig.
///
/// # Panics
/// When the harness refuses (not root, a leftover namespace, an unknown instance, a port that
/// is 0, repeated or the EC2 endpoint's).
pub fn node_with_ports(
    name: &str,
    instance: &str,
    hotplug_delay_ms: u32,
    forward_ports: &[u16],
) -> NodeWorld {
    let ports = forward_ports
        .iter()
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    let (status, body) = http(
        "POST",
        &format!("{}/node", info().control),
        &format!(
            r#"{{"name": "{name}", "instance_id": "{instance}", "hotplug_delay_ms": {hotplug_delay_ms}, "forward_ports": [{ports}]}}"#
        ),
    );
    assert_eq!(status, 200, "POST /node: {body}");
    let field = |key: &str| {
        body.split('"')
            .skip_while(|s| *s != key)
            .nth(2)
            .unwrap_or_else(|| panic!("no {key} in {body}"))
            .to_owned()
    };
    NodeWorld {
        name: name.to_owned(),
        netns: field("netns"),
        vpc_netns: field("vpc_netns"),
        outside: field("outside").parse().expect("an IPv4 address"),
    }
}

impl Drop for NodeWorld {
    fn drop(&mut self) {
        let _ = http(
            "DELETE",
            &format!("{}/node?name={}", info().control, self.name),
            "",
        );
    }
}
