//! One suite of `Ec2`/`Imds` behaviours, run against the in-memory fake and against the
//! LocalStack harness (`harness/up`, started by the first harness test or reused), with the same
//! assertions: the fake is verified against LocalStack, and both against what EC2 does.
//!
//! Every harness test talks only to 127.0.0.1 (region, credentials and endpoints are explicit,
//! so no SDK default chain looks for real AWS or the real IMDS).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::Duration;

use cloud::aws::{AwsEc2, AwsImds, AwsSettings};
use cloud::fake::{FakeEc2, FakeImds, Fault};
use cloud::model::{CreateEni, EniFilter, InterfaceType};
use cloud::{CloudError, Ec2, Guarded, Imds, RetryPolicy};
use ipnetwork::Ipv4Network;
use planner::pool::EniId;

/// What a contract test needs from an environment besides the two traits.
trait Env {
    type E: Ec2;
    type I: Imds;
    fn ec2(&self) -> &Self::E;
    /// A new VPC and one subnet of `cidr` in it.
    async fn subnet(&self, cidr: &str) -> String;
    /// A running instance of `instance_type` in `subnet`.
    async fn instance(&self, instance_type: &str, subnet: &str) -> String;
    /// IMDS as `instance` sees it.
    async fn imds(&self, instance: &str) -> Self::I;
    /// The next `count` calls of `api` fail with `code`.
    async fn fail_next(&self, api: &str, code: &str, count: u32);
}

// ------------------------------------------------------------------------------------------
// The fake.

struct Fake {
    ec2: FakeEc2,
}

impl Env for Fake {
    type E = FakeEc2;
    type I = FakeImds;
    fn ec2(&self) -> &FakeEc2 {
        &self.ec2
    }
    async fn subnet(&self, cidr: &str) -> String {
        let vpc = self.ec2.create_vpc("10.0.0.0/16".parse().unwrap());
        self.ec2
            .create_subnet(&vpc, cidr.parse().unwrap(), "us-west-2a")
            .unwrap()
    }
    async fn instance(&self, instance_type: &str, subnet: &str) -> String {
        self.ec2.run_instance(instance_type, subnet).unwrap()
    }
    async fn imds(&self, instance: &str) -> FakeImds {
        FakeImds::new(&self.ec2, instance)
    }
    async fn fail_next(&self, api: &str, code: &str, count: u32) {
        self.ec2.inject(
            api,
            Fault {
                code: code.to_owned(),
                probability: 1.0,
                count: Some(count),
            },
        );
    }
}

fn fake() -> Fake {
    Fake {
        ec2: FakeEc2::new(),
    }
}

// ------------------------------------------------------------------------------------------
// The LocalStack harness (harness_client starts or reuses it).

struct Harness {
    ec2: AwsEc2,
}

async fn harness() -> Harness {
    Harness {
        ec2: harness_client::ec2().await,
    }
}

impl Env for Harness {
    type E = AwsEc2;
    type I = AwsImds;
    fn ec2(&self) -> &AwsEc2 {
        &self.ec2
    }
    async fn subnet(&self, cidr: &str) -> String {
        harness_client::subnet(&self.ec2, cidr).await
    }
    async fn instance(&self, instance_type: &str, subnet: &str) -> String {
        harness_client::instance(&self.ec2, instance_type, subnet).await
    }
    async fn imds(&self, instance: &str) -> AwsImds {
        let endpoint = harness_client::imds_endpoint(instance);
        AwsImds::new(&AwsSettings {
            imds_endpoint: Some(endpoint),
            ..AwsSettings::default()
        })
        .unwrap()
    }
    async fn fail_next(&self, api: &str, code: &str, count: u32) {
        harness_client::fault(api, code, 1.0, Some(count));
    }
}

// ------------------------------------------------------------------------------------------
// The contract.

fn in_subnet(cidr: &str, ip: Ipv4Addr) -> bool {
    let net: Ipv4Network = cidr.parse().unwrap();
    let (first, last) = (u32::from(net.network()), u32::from(net.broadcast()));
    let v = u32::from(ip);
    // AWS reserves the first four addresses and the last.
    v >= first + 4 && v < last
}

async fn primary_eni<V: Env>(env: &V, instance: &str) -> EniId {
    let enis = env
        .ec2()
        .describe_network_interfaces(&EniFilter {
            instance_id: Some(instance.to_owned()),
            ..EniFilter::default()
        })
        .await
        .unwrap();
    enis.iter()
        .find(|e| e.attachment.as_ref().is_some_and(|a| a.device_index == 0))
        .expect("a primary ENI")
        .id
        .clone()
}

async fn new_eni<V: Env>(
    env: &V,
    subnet: &str,
    ips: u32,
    prefixes: u32,
    tag: &str,
) -> cloud::model::NetworkInterface {
    env.ec2()
        .create_network_interface(&CreateEni {
            subnet_id: subnet.to_owned(),
            description: "aws-K8S-contract".into(),
            secondary_ips: ips,
            prefixes,
            tags: BTreeMap::from([("eniplan-test".to_owned(), tag.to_owned())]),
            ..CreateEni::default()
        })
        .await
        .unwrap()
}

async fn instances_and_types<V: Env>(env: V) {
    let subnet = env.subnet("10.0.1.0/24").await;
    let id = env.instance("m5.large", &subnet).await;
    let found = env
        .ec2()
        .describe_instances(std::slice::from_ref(&id))
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].instance_type, "m5.large");
    assert!(in_subnet("10.0.1.0/24", found[0].private_ip));
    assert!(found[0].network_interfaces.contains_key(&0));
    let types = env
        .ec2()
        .describe_instance_types(&["m5.large".into()])
        .await
        .unwrap();
    assert_eq!(
        (
            types[0].max_enis,
            types[0].ipv4_per_eni,
            types[0].hypervisor.as_str()
        ),
        (3, 10, "nitro")
    );
    let err = env
        .ec2()
        .describe_instance_types(&["m5.huge".into()])
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            CloudError::UnknownInstanceType { .. } | CloudError::Invalid { .. }
        ),
        "{err:?}"
    );
}

async fn eni_lifecycle_and_unique_addresses<V: Env>(env: V) {
    let subnet = env.subnet("10.0.2.0/24").await;
    let instance = env.instance("m5.large", &subnet).await;
    let a = new_eni(&env, &subnet, 3, 0, "lifecycle").await;
    assert_eq!(
        (
            a.status.as_str(),
            a.secondary_ips.len(),
            a.attachment.is_none()
        ),
        ("available", 3, true)
    );
    assert_eq!(a.interface_type, InterfaceType::Interface);
    assert!(
        a.mac.len() == 17
            && a.mac
                .split(':')
                .all(|p| p.len() == 2 && u8::from_str_radix(p, 16).is_ok()),
        "{}",
        a.mac
    );
    let attachment = env
        .ec2()
        .attach_network_interface(&a.id, &instance, 1, 0)
        .await
        .unwrap();
    env.ec2()
        .set_delete_on_termination(&a.id, &attachment, true)
        .await
        .unwrap();
    let more = env.ec2().assign_private_ips(&a.id, 4).await.unwrap();
    assert_eq!(more.len(), 4, "the reply lists only the new addresses");
    let b = new_eni(&env, &subnet, 5, 0, "lifecycle").await;
    let tagged = env
        .ec2()
        .describe_network_interfaces(&EniFilter {
            tags: BTreeMap::from([("eniplan-test".into(), "lifecycle".into())]),
            ..EniFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(tagged.len(), 2);
    let a2 = tagged.iter().find(|e| e.id == a.id).unwrap();
    let att = a2.attachment.as_ref().unwrap();
    assert_eq!(
        (
            a2.status.as_str(),
            att.device_index,
            att.delete_on_termination
        ),
        ("in-use", 1, true)
    );
    let mut all: Vec<Ipv4Addr> = tagged
        .iter()
        .flat_map(|e| e.secondary_ips.iter().copied().chain([e.primary_ip]))
        .collect();
    let n = all.len();
    assert_eq!(n, 2 + 7 + 5);
    all.sort_unstable();
    all.dedup();
    assert_eq!(all.len(), n, "addresses are unique");
    assert!(
        all.iter().all(|ip| in_subnet("10.0.2.0/24", *ip)),
        "no reserved or foreign address: {all:?}"
    );
    // Delete: refused while attached, fine after detaching, then gone.
    let err = env.ec2().delete_network_interface(&a.id).await.unwrap_err();
    assert!(
        matches!(err, CloudError::Invalid { ref code, .. } if code == "InvalidNetworkInterface.InUse"),
        "{err:?}"
    );
    env.ec2()
        .detach_network_interface(&attachment, false)
        .await
        .unwrap();
    env.ec2().delete_network_interface(&a.id).await.unwrap();
    env.ec2().delete_network_interface(&b.id).await.unwrap();
    let err = env
        .ec2()
        .describe_network_interfaces(&EniFilter {
            ids: vec![a.id.clone()],
            ..EniFilter::default()
        })
        .await
        .unwrap_err();
    assert!(matches!(err, CloudError::NotFound { .. }), "{err:?}");
}

async fn per_eni_and_per_instance_limits<V: Env>(env: V) {
    let subnet = env.subnet("10.0.3.0/24").await;
    let instance = env.instance("m5.large", &subnet).await;
    let primary = primary_eni(&env, &instance).await;
    // m5.large: 10 addresses per ENI, the primary included.
    assert_eq!(
        env.ec2()
            .assign_private_ips(&primary, 9)
            .await
            .unwrap()
            .len(),
        9
    );
    let err = env.ec2().assign_private_ips(&primary, 1).await.unwrap_err();
    assert!(matches!(err, CloudError::IpLimitExceeded { .. }), "{err:?}");
    // 3 ENIs per instance.
    for device in 1..=2 {
        let e = new_eni(&env, &subnet, 0, 0, "limits").await;
        env.ec2()
            .attach_network_interface(&e.id, &instance, device, 0)
            .await
            .unwrap();
    }
    let fourth = new_eni(&env, &subnet, 0, 0, "limits").await;
    let err = env
        .ec2()
        .attach_network_interface(&fourth.id, &instance, 3, 0)
        .await
        .unwrap_err();
    assert!(
        matches!(err, CloudError::AttachmentLimitExceeded { .. }),
        "{err:?}"
    );
}

async fn prefixes_are_aligned_and_released<V: Env>(env: V) {
    let subnet = env.subnet("10.0.4.0/24").await;
    let instance = env.instance("m5.large", &subnet).await;
    let primary = primary_eni(&env, &instance).await;
    let before = env
        .ec2()
        .describe_subnets(std::slice::from_ref(&subnet))
        .await
        .unwrap()[0]
        .available_ip_addresses;
    let prefixes = env.ec2().assign_prefixes(&primary, 2).await.unwrap();
    assert_eq!(prefixes.len(), 2);
    for p in &prefixes {
        assert_eq!(p.prefix(), 28);
        assert_eq!(u32::from(p.network()) % 16, 0, "{p} is aligned");
        assert!(
            in_subnet("10.0.4.0/24", p.network()) && in_subnet("10.0.4.0/24", p.broadcast()),
            "{p}"
        );
    }
    let after = env
        .ec2()
        .describe_subnets(std::slice::from_ref(&subnet))
        .await
        .unwrap()[0]
        .available_ip_addresses;
    assert_eq!(before - after, 32);
    let seen = env
        .ec2()
        .describe_network_interfaces(&EniFilter {
            ids: vec![primary.clone()],
            ..EniFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(seen[0].prefixes, prefixes);
    env.ec2()
        .unassign_prefixes(&primary, &prefixes[..1])
        .await
        .unwrap();
    let seen = env
        .ec2()
        .describe_network_interfaces(&EniFilter {
            ids: vec![primary.clone()],
            ..EniFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(seen[0].prefixes, prefixes[1..]);
    let end = env
        .ec2()
        .describe_subnets(std::slice::from_ref(&subnet))
        .await
        .unwrap()[0]
        .available_ip_addresses;
    assert_eq!(before - end, 16);
}

async fn fragmented_subnet_has_no_prefix<V: Env>(env: V) {
    // A /27 holds two /28s, and both contain addresses AWS reserves: no prefix ever fits,
    // although 27 addresses are free.
    let subnet = env.subnet("10.0.5.0/27").await;
    let instance = env.instance("m5.large", &subnet).await;
    let primary = primary_eni(&env, &instance).await;
    let err = env.ec2().assign_prefixes(&primary, 1).await.unwrap_err();
    assert!(
        matches!(err, CloudError::InsufficientCidrBlocks { .. }),
        "{err:?}"
    );
    assert_eq!(
        env.ec2()
            .assign_private_ips(&primary, 2)
            .await
            .unwrap()
            .len(),
        2,
        "addresses are still free"
    );
}

async fn exhausted_subnet_refuses_atomically<V: Env>(env: V) {
    // A /28: 11 usable addresses. The instance takes one.
    let subnet = env.subnet("10.0.6.0/28").await;
    let instance = env.instance("m5.large", &subnet).await;
    let primary = primary_eni(&env, &instance).await;
    env.ec2().assign_private_ips(&primary, 8).await.unwrap();
    let free = env
        .ec2()
        .describe_subnets(std::slice::from_ref(&subnet))
        .await
        .unwrap()[0]
        .available_ip_addresses;
    assert_eq!(free, 2);
    let err = env
        .ec2()
        .create_network_interface(&CreateEni {
            subnet_id: subnet.clone(),
            secondary_ips: 2,
            ..CreateEni::default()
        })
        .await
        .unwrap_err();
    assert!(
        matches!(err, CloudError::InsufficientFreeAddresses { .. }),
        "{err:?}"
    );
    let free = env
        .ec2()
        .describe_subnets(std::slice::from_ref(&subnet))
        .await
        .unwrap()[0]
        .available_ip_addresses;
    assert_eq!(free, 2, "a refused request takes nothing");
}

async fn bad_requests_are_typed<V: Env>(env: V) {
    let subnet = env.subnet("10.0.7.0/24").await;
    let instance = env.instance("m5.large", &subnet).await;
    let primary = primary_eni(&env, &instance).await;
    let err = env
        .ec2()
        .unassign_private_ips(&primary, &["10.0.7.200".parse().unwrap()])
        .await
        .unwrap_err();
    assert!(matches!(err, CloudError::Invalid { .. }), "{err:?}");
    let err = env
        .ec2()
        .assign_private_ips(&EniId("eni-0000000000000dead".into()), 1)
        .await
        .unwrap_err();
    assert!(matches!(err, CloudError::NotFound { .. }), "{err:?}");
    let trunk = env
        .ec2()
        .create_network_interface(&CreateEni {
            subnet_id: subnet,
            interface_type: Some(InterfaceType::Trunk),
            ..CreateEni::default()
        })
        .await
        .unwrap();
    assert_eq!(trunk.interface_type, InterfaceType::Trunk);
}

async fn imds_describes_the_node<V: Env>(env: V) {
    let subnet = env.subnet("10.0.8.0/24").await;
    let instance = env.instance("m5.large", &subnet).await;
    let extra = new_eni(&env, &subnet, 2, 0, "imds").await;
    env.ec2()
        .attach_network_interface(&extra.id, &instance, 1, 0)
        .await
        .unwrap();
    let primary = primary_eni(&env, &instance).await;
    let prefixes = env.ec2().assign_prefixes(&primary, 1).await.unwrap();
    let imds = env.imds(&instance).await;
    let me = cloud::imds::identity(&imds).await.unwrap();
    assert_eq!(
        (me.instance_id.as_str(), me.instance_type.as_str()),
        (instance.as_str(), "m5.large")
    );
    assert_eq!(
        (me.availability_zone.as_str(), me.region.as_str()),
        ("us-west-2a", "us-west-2")
    );
    let interfaces = cloud::imds::interfaces(&imds).await.unwrap();
    assert_eq!(interfaces.len(), 2);
    assert_eq!(interfaces[0].interface_id, primary);
    assert_eq!(
        interfaces[0].local_ipv4s[0], me.private_ip,
        "the primary address comes first"
    );
    assert_eq!(interfaces[0].ipv4_prefixes, prefixes);
    assert_eq!(interfaces[0].mac, me.mac);
    assert_eq!(
        interfaces[0].subnet_cidr,
        "10.0.8.0/24".parse::<Ipv4Network>().unwrap()
    );
    assert_eq!(
        (
            interfaces[1].interface_id.clone(),
            interfaces[1].device_number
        ),
        (extra.id.clone(), 1)
    );
    assert_eq!(interfaces[1].local_ipv4s.len(), 3);
    let observed = interfaces[1].observed().unwrap();
    assert_eq!(observed.ips.len(), 2);
}

async fn throttling_is_retried_then_typed<V: Env>(env: V) {
    let subnet = env.subnet("10.0.9.0/24").await;
    let instance = env.instance("m5.large", &subnet).await;
    let primary = primary_eni(&env, &instance).await;
    let policy = RetryPolicy {
        max_attempts: 4,
        base: Duration::from_millis(1),
        cap: Duration::from_millis(5),
        ..RetryPolicy::default()
    };
    let guarded = Guarded::new(env.ec2(), policy);
    let tags = BTreeMap::from([("k".to_owned(), "v".to_owned())]);
    env.fail_next("CreateTags", "RequestLimitExceeded", 2).await;
    guarded
        .create_tags(std::slice::from_ref(&primary.0), &tags)
        .await
        .expect("two throttles are retried away");
    env.fail_next("CreateTags", "RequestLimitExceeded", 4).await;
    let err = guarded
        .create_tags(std::slice::from_ref(&primary.0), &tags)
        .await
        .unwrap_err();
    assert_eq!(
        err,
        CloudError::Throttled {
            api: "CreateTags",
            attempts: 4
        }
    );
    env.fail_next("CreateTags", "UnauthorizedOperation", 1)
        .await;
    let err = guarded.create_tags(&[primary.0], &tags).await.unwrap_err();
    assert!(
        matches!(err, CloudError::Unauthorized { ref action, .. } if action == "ec2:CreateTags"),
        "{err:?}"
    );
}

macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        mod on_fake {
            $(#[tokio::test] async fn $name() { super::$name(super::fake()).await; })*
        }
        mod on_harness {
            $(#[tokio::test] async fn $name() { super::$name(super::harness().await).await; })*
        }
    };
}

contract!(
    instances_and_types,
    eni_lifecycle_and_unique_addresses,
    per_eni_and_per_instance_limits,
    prefixes_are_aligned_and_released,
    fragmented_subnet_has_no_prefix,
    exhausted_subnet_refuses_atomically,
    bad_requests_are_typed,
    imds_describes_the_node,
    throttling_is_retried_then_typed,
);
