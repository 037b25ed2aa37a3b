//! The real adapters: [`AwsEc2`] on `aws-sdk-ec2` and [`AwsImds`] on `aws-config`'s IMDSv2
//! client. SDK shapes (every field optional) are converted here, once; a missing field is a
//! typed [`CloudError::MissingField`], never a panic. SDK retries are off: [`crate::Guarded`]
//! retries what is worth retrying, with EC2-shaped client-side rate limits.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_config::imds::client::error::ImdsError;
use aws_config::provider_config::ProviderConfig;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_ec2::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_ec2::types as t;
use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
use ipnetwork::Ipv4Network;
use planner::pool::EniId;

use crate::model::{
    Attachment, CreateEni, EniFilter, Instance, InstanceTypeInfo, InterfaceType, NetworkInterface,
    SubnetInfo,
};
use crate::{CloudError, Ec2, Imds, Result};

/// How to reach AWS. Built by the binaries from their configuration; nothing here reads the
/// environment except the SDK's own default credential chain (environment, profile, web
/// identity/IRSA, EKS Pod Identity / container credentials, instance role).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AwsSettings {
    /// Region (`None`: the SDK's default chain decides).
    pub region: Option<String>,
    /// EC2 endpoint override (`AWS_EC2_ENDPOINT`), e.g. the LocalStack harness.
    pub ec2_endpoint: Option<String>,
    /// IMDS endpoint override (`ENIPLAN_IMDS_ENDPOINT`), e.g. the harness's IMDS.
    pub imds_endpoint: Option<String>,
    /// Static credentials (tests), instead of the default chain.
    pub static_credentials: Option<(String, String)>,
    /// Per-attempt timeout of one EC2 call.
    pub attempt_timeout: Option<Duration>,
}

fn http_client() -> aws_smithy_runtime_api::client::http::SharedHttpClient {
    aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https()
}

/// EC2 through the AWS SDK.
#[derive(Clone, Debug)]
pub struct AwsEc2 {
    client: aws_sdk_ec2::Client,
}

impl AwsEc2 {
    /// A client for `settings`.
    pub async fn new(settings: &AwsSettings) -> Result<AwsEc2> {
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .http_client(http_client())
            .retry_config(RetryConfig::disabled())
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(3))
                    .operation_attempt_timeout(
                        settings.attempt_timeout.unwrap_or(Duration::from_secs(10)),
                    )
                    .build(),
            );
        if let Some(region) = &settings.region {
            loader = loader.region(aws_config::Region::new(region.clone()));
        }
        if let Some(endpoint) = &settings.ec2_endpoint {
            loader = loader.endpoint_url(endpoint.clone());
        }
        if let Some((key, secret)) = &settings.static_credentials {
            loader = loader.credentials_provider(aws_sdk_ec2::config::Credentials::new(
                key,
                secret,
                None,
                None,
                "eniplan-static",
            ));
        }
        let config = loader.load().await;
        if config.region().is_none() {
            return Err(CloudError::Config(
                "no AWS region: set AWS_REGION (or AWS_DEFAULT_REGION), or run where IMDS tells it"
                    .to_owned(),
            ));
        }
        Ok(AwsEc2 {
            client: aws_sdk_ec2::Client::new(&config),
        })
    }

    /// The adapter over a client built elsewhere (the fuzz targets' replayed replies, tooling
    /// with its own configuration).
    pub fn from_sdk(client: aws_sdk_ec2::Client) -> AwsEc2 {
        AwsEc2 { client }
    }

    /// The SDK client, for calls outside the [`Ec2`] trait (test set-up, tooling).
    pub fn sdk(&self) -> &aws_sdk_ec2::Client {
        &self.client
    }
}

/// Classifies an SDK error once.
fn classify<E>(
    api: &'static str,
    err: &SdkError<E, aws_smithy_runtime_api::http::Response>,
) -> CloudError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match err {
        SdkError::ServiceError(se) => {
            let e = se.err();
            match e.code() {
                Some(code) => CloudError::from_code(api, code, e.message().unwrap_or("")),
                None if se.raw().status().is_server_error() => CloudError::Transient {
                    api,
                    attempts: 1,
                    message: format!("HTTP {} with no error code", se.raw().status().as_u16()),
                },
                None => CloudError::Other {
                    api,
                    code: "unknown".to_owned(),
                    message: DisplayErrorContext(err).to_string(),
                },
            }
        }
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            CloudError::Transient {
                api,
                attempts: 1,
                message: DisplayErrorContext(err).to_string(),
            }
        }
        _ => CloudError::Other {
            api,
            code: "unknown".to_owned(),
            message: DisplayErrorContext(err).to_string(),
        },
    }
}

fn need<'a>(api: &'static str, field: &'static str, v: Option<&'a str>) -> Result<&'a str> {
    v.ok_or(CloudError::MissingField { api, field })
}

fn parse<T: std::str::FromStr>(api: &'static str, field: &'static str, v: &str) -> Result<T> {
    v.parse().map_err(|_| CloudError::BadField {
        api,
        field,
        value: v.to_owned(),
    })
}

fn count(v: Option<i32>) -> u32 {
    v.and_then(|n| u32::try_from(n).ok()).unwrap_or(0)
}

fn to_i32(api: &'static str, field: &'static str, v: u32) -> Result<i32> {
    i32::try_from(v).map_err(|_| CloudError::BadField {
        api,
        field,
        value: v.to_string(),
    })
}

fn tags(set: &[t::Tag]) -> BTreeMap<String, String> {
    set.iter()
        .filter_map(|t| Some((t.key()?.to_owned(), t.value().unwrap_or("").to_owned())))
        .collect()
}

fn eni(api: &'static str, e: &t::NetworkInterface) -> Result<NetworkInterface> {
    let primary_ip = parse(
        api,
        "NetworkInterface.PrivateIpAddress",
        need(
            api,
            "NetworkInterface.PrivateIpAddress",
            e.private_ip_address(),
        )?,
    )?;
    let mut secondary_ips: Vec<Ipv4Addr> = e
        .private_ip_addresses()
        .iter()
        .filter(|a| a.primary() != Some(true))
        .filter_map(|a| a.private_ip_address())
        .map(|s| parse(api, "PrivateIpAddresses.PrivateIpAddress", s))
        .collect::<Result<_>>()?;
    secondary_ips.retain(|ip| *ip != primary_ip);
    secondary_ips.sort_unstable();
    let mut prefixes: Vec<Ipv4Network> = e
        .ipv4_prefixes()
        .iter()
        .filter_map(|p| p.ipv4_prefix())
        .map(|s| parse(api, "Ipv4Prefixes.Ipv4Prefix", s))
        .collect::<Result<_>>()?;
    prefixes.sort_unstable();
    let attachment = match e.attachment() {
        Some(a) if a.instance_id().is_some() => Some(Attachment {
            id: a.attachment_id().unwrap_or_default().to_owned(),
            instance_id: a.instance_id().unwrap_or_default().to_owned(),
            device_index: count(a.device_index()),
            network_card_index: count(a.network_card_index()),
            delete_on_termination: a.delete_on_termination().unwrap_or(false),
            status: a
                .status()
                .map(|s| s.as_str().to_owned())
                .unwrap_or_default(),
        }),
        _ => None,
    };
    Ok(NetworkInterface {
        id: EniId(
            need(
                api,
                "NetworkInterface.NetworkInterfaceId",
                e.network_interface_id(),
            )?
            .to_owned(),
        ),
        subnet_id: e.subnet_id().unwrap_or_default().to_owned(),
        vpc_id: e.vpc_id().unwrap_or_default().to_owned(),
        availability_zone: e.availability_zone().unwrap_or_default().to_owned(),
        description: e.description().unwrap_or_default().to_owned(),
        mac: e.mac_address().unwrap_or_default().to_ascii_lowercase(),
        interface_type: InterfaceType::parse(
            e.interface_type()
                .map_or("interface", t::NetworkInterfaceType::as_str),
        ),
        status: e
            .status()
            .map(|s| s.as_str().to_owned())
            .unwrap_or_default(),
        primary_ip,
        secondary_ips,
        prefixes,
        attachment,
        tags: tags(e.tag_set()),
        security_groups: e
            .groups()
            .iter()
            .filter_map(|g| g.group_id().map(str::to_owned))
            .collect(),
    })
}

fn filters(filter: &EniFilter) -> Vec<t::Filter> {
    let f = |name: &str, value: &str| t::Filter::builder().name(name).values(value).build();
    let mut out = Vec::new();
    if let Some(v) = &filter.instance_id {
        out.push(f("attachment.instance-id", v));
    }
    if let Some(v) = &filter.subnet_id {
        out.push(f("subnet-id", v));
    }
    if let Some(v) = &filter.vpc_id {
        out.push(f("vpc-id", v));
    }
    if let Some(v) = &filter.status {
        out.push(f("status", v));
    }
    if let Some(v) = &filter.tag_key {
        out.push(f("tag-key", v));
    }
    for (k, v) in &filter.tags {
        out.push(f(&format!("tag:{k}"), v));
    }
    out
}

impl Ec2 for AwsEc2 {
    async fn describe_instances(&self, ids: &[String]) -> Result<Vec<Instance>> {
        let api = "DescribeInstances";
        let reservations = self
            .client
            .describe_instances()
            .set_instance_ids(Some(ids.to_vec()))
            .into_paginator()
            .items()
            .send()
            .collect::<std::result::Result<Vec<_>, _>>()
            .await
            .map_err(|e| classify(api, &e))?;
        let mut out = Vec::new();
        for r in &reservations {
            for i in r.instances() {
                let network_interfaces = i
                    .network_interfaces()
                    .iter()
                    .filter_map(|n| {
                        let d = count(n.attachment()?.device_index());
                        Some((d, EniId(n.network_interface_id()?.to_owned())))
                    })
                    .collect();
                out.push(Instance {
                    id: need(api, "Instance.InstanceId", i.instance_id())?.to_owned(),
                    instance_type: i
                        .instance_type()
                        .map(|t| t.as_str().to_owned())
                        .unwrap_or_default(),
                    subnet_id: i.subnet_id().unwrap_or_default().to_owned(),
                    vpc_id: i.vpc_id().unwrap_or_default().to_owned(),
                    availability_zone: i
                        .placement()
                        .and_then(|p| p.availability_zone())
                        .unwrap_or_default()
                        .to_owned(),
                    private_ip: parse(
                        api,
                        "Instance.PrivateIpAddress",
                        need(api, "Instance.PrivateIpAddress", i.private_ip_address())?,
                    )?,
                    network_interfaces,
                });
            }
        }
        Ok(out)
    }

    async fn describe_instance_types(&self, names: &[String]) -> Result<Vec<InstanceTypeInfo>> {
        let api = "DescribeInstanceTypes";
        let types = self
            .client
            .describe_instance_types()
            .set_instance_types(Some(
                names
                    .iter()
                    .map(|n| t::InstanceType::from(n.as_str()))
                    .collect(),
            ))
            .into_paginator()
            .items()
            .send()
            .collect::<std::result::Result<Vec<_>, _>>()
            .await
            .map_err(|e| classify(api, &e))?;
        types
            .iter()
            .map(|it| {
                let net = it.network_info().ok_or(CloudError::MissingField {
                    api,
                    field: "InstanceTypeInfo.NetworkInfo",
                })?;
                let mut cards: Vec<(u32, u32)> = net
                    .network_cards()
                    .iter()
                    .map(|c| {
                        (
                            count(c.network_card_index()),
                            count(c.maximum_network_interfaces()),
                        )
                    })
                    .collect();
                cards.sort_unstable();
                Ok(InstanceTypeInfo {
                    name: it.instance_type().map(|t| t.as_str().to_owned()).ok_or(
                        CloudError::MissingField {
                            api,
                            field: "InstanceTypeInfo.InstanceType",
                        },
                    )?,
                    max_enis: count(net.maximum_network_interfaces()),
                    network_cards: cards.into_iter().map(|(_, n)| n).collect(),
                    default_network_card_index: count(net.default_network_card_index()),
                    ipv4_per_eni: count(net.ipv4_addresses_per_interface()),
                    hypervisor: it
                        .hypervisor()
                        .map(|h| h.as_str().to_owned())
                        .unwrap_or_default(),
                    bare_metal: it.bare_metal().unwrap_or(false),
                    vcpus: it
                        .v_cpu_info()
                        .and_then(t::VCpuInfo::default_v_cpus)
                        .and_then(|n| u32::try_from(n).ok()),
                })
            })
            .collect()
    }

    async fn describe_subnets(&self, ids: &[String]) -> Result<Vec<SubnetInfo>> {
        let api = "DescribeSubnets";
        let subnets = self
            .client
            .describe_subnets()
            .set_subnet_ids(Some(ids.to_vec()))
            .into_paginator()
            .items()
            .send()
            .collect::<std::result::Result<Vec<_>, _>>()
            .await
            .map_err(|e| classify(api, &e))?;
        subnets
            .iter()
            .map(|s| {
                Ok(SubnetInfo {
                    id: need(api, "Subnet.SubnetId", s.subnet_id())?.to_owned(),
                    vpc_id: s.vpc_id().unwrap_or_default().to_owned(),
                    cidr: parse(
                        api,
                        "Subnet.CidrBlock",
                        need(api, "Subnet.CidrBlock", s.cidr_block())?,
                    )?,
                    availability_zone: s.availability_zone().unwrap_or_default().to_owned(),
                    available_ip_addresses: count(s.available_ip_address_count()),
                    tags: tags(s.tags()),
                })
            })
            .collect()
    }

    async fn describe_network_interfaces(
        &self,
        filter: &EniFilter,
    ) -> Result<Vec<NetworkInterface>> {
        let api = "DescribeNetworkInterfaces";
        let mut req = self
            .client
            .describe_network_interfaces()
            .set_filters(Some(filters(filter)));
        if filter.ids.is_empty() {
            req = req.max_results(1000);
        } else {
            req = req
                .set_network_interface_ids(Some(filter.ids.iter().map(|i| i.0.clone()).collect()));
        }
        let enis = req
            .into_paginator()
            .items()
            .send()
            .collect::<std::result::Result<Vec<_>, _>>()
            .await
            .map_err(|e| classify(api, &e))?;
        enis.iter().map(|e| eni(api, e)).collect()
    }

    async fn create_network_interface(&self, request: &CreateEni) -> Result<NetworkInterface> {
        let api = "CreateNetworkInterface";
        let mut req = self
            .client
            .create_network_interface()
            .subnet_id(&request.subnet_id)
            .description(&request.description)
            .set_groups(
                (!request.security_groups.is_empty()).then(|| request.security_groups.clone()),
            );
        if request.secondary_ips > 0 {
            req = req.secondary_private_ip_address_count(to_i32(
                api,
                "SecondaryPrivateIpAddressCount",
                request.secondary_ips,
            )?);
        }
        if request.prefixes > 0 {
            req = req.ipv4_prefix_count(to_i32(api, "Ipv4PrefixCount", request.prefixes)?);
        }
        if let Some(kind) = &request.interface_type {
            req = req.interface_type(t::NetworkInterfaceCreationType::from(kind.as_str()));
        }
        if !request.tags.is_empty() {
            req = req.tag_specifications(
                t::TagSpecification::builder()
                    .resource_type(t::ResourceType::NetworkInterface)
                    .set_tags(Some(
                        request
                            .tags
                            .iter()
                            .map(|(k, v)| t::Tag::builder().key(k).value(v).build())
                            .collect(),
                    ))
                    .build(),
            );
        }
        let out = req.send().await.map_err(|e| classify(api, &e))?;
        eni(
            api,
            out.network_interface().ok_or(CloudError::MissingField {
                api,
                field: "NetworkInterface",
            })?,
        )
    }

    async fn attach_network_interface(
        &self,
        eni_id: &EniId,
        instance_id: &str,
        device_index: u32,
        network_card_index: u32,
    ) -> Result<String> {
        let api = "AttachNetworkInterface";
        let out = self
            .client
            .attach_network_interface()
            .network_interface_id(&eni_id.0)
            .instance_id(instance_id)
            .device_index(to_i32(api, "DeviceIndex", device_index)?)
            .network_card_index(to_i32(api, "NetworkCardIndex", network_card_index)?)
            .send()
            .await
            .map_err(|e| classify(api, &e))?;
        Ok(need(api, "AttachmentId", out.attachment_id())?.to_owned())
    }

    async fn set_delete_on_termination(
        &self,
        eni_id: &EniId,
        attachment_id: &str,
        delete: bool,
    ) -> Result<()> {
        let api = "ModifyNetworkInterfaceAttribute";
        self.client
            .modify_network_interface_attribute()
            .network_interface_id(&eni_id.0)
            .attachment(
                t::NetworkInterfaceAttachmentChanges::builder()
                    .attachment_id(attachment_id)
                    .delete_on_termination(delete)
                    .build(),
            )
            .send()
            .await
            .map_err(|e| classify(api, &e))?;
        Ok(())
    }

    async fn detach_network_interface(&self, attachment_id: &str, force: bool) -> Result<()> {
        let api = "DetachNetworkInterface";
        self.client
            .detach_network_interface()
            .attachment_id(attachment_id)
            .force(force)
            .send()
            .await
            .map_err(|e| classify(api, &e))?;
        Ok(())
    }

    async fn delete_network_interface(&self, eni_id: &EniId) -> Result<()> {
        let api = "DeleteNetworkInterface";
        self.client
            .delete_network_interface()
            .network_interface_id(&eni_id.0)
            .send()
            .await
            .map_err(|e| classify(api, &e))?;
        Ok(())
    }

    async fn assign_private_ips(&self, eni_id: &EniId, n: u32) -> Result<Vec<Ipv4Addr>> {
        let api = "AssignPrivateIpAddresses";
        let out = self
            .client
            .assign_private_ip_addresses()
            .network_interface_id(&eni_id.0)
            .secondary_private_ip_address_count(to_i32(api, "SecondaryPrivateIpAddressCount", n)?)
            .send()
            .await
            .map_err(|e| classify(api, &e))?;
        let mut ips: Vec<Ipv4Addr> = out
            .assigned_private_ip_addresses()
            .iter()
            .filter_map(|a| a.private_ip_address())
            .map(|s| parse(api, "AssignedPrivateIpAddresses", s))
            .collect::<Result<_>>()?;
        ips.sort_unstable();
        Ok(ips)
    }

    async fn assign_prefixes(&self, eni_id: &EniId, n: u32) -> Result<Vec<Ipv4Network>> {
        let api = "AssignPrivateIpAddresses";
        let out = self
            .client
            .assign_private_ip_addresses()
            .network_interface_id(&eni_id.0)
            .ipv4_prefix_count(to_i32(api, "Ipv4PrefixCount", n)?)
            .send()
            .await
            .map_err(|e| classify(api, &e))?;
        let mut prefixes: Vec<Ipv4Network> = out
            .assigned_ipv4_prefixes()
            .iter()
            .filter_map(|p| p.ipv4_prefix())
            .map(|s| parse(api, "AssignedIpv4Prefixes", s))
            .collect::<Result<_>>()?;
        prefixes.sort_unstable();
        Ok(prefixes)
    }

    async fn unassign_private_ips(&self, eni_id: &EniId, ips: &[Ipv4Addr]) -> Result<()> {
        let api = "UnassignPrivateIpAddresses";
        self.client
            .unassign_private_ip_addresses()
            .network_interface_id(&eni_id.0)
            .set_private_ip_addresses(Some(ips.iter().map(ToString::to_string).collect()))
            .send()
            .await
            .map_err(|e| classify(api, &e))?;
        Ok(())
    }

    async fn unassign_prefixes(&self, eni_id: &EniId, prefixes: &[Ipv4Network]) -> Result<()> {
        let api = "UnassignPrivateIpAddresses";
        self.client
            .unassign_private_ip_addresses()
            .network_interface_id(&eni_id.0)
            .set_ipv4_prefixes(Some(prefixes.iter().map(ToString::to_string).collect()))
            .send()
            .await
            .map_err(|e| classify(api, &e))?;
        Ok(())
    }

    async fn create_tags(
        &self,
        resources: &[String],
        tag_map: &BTreeMap<String, String>,
    ) -> Result<()> {
        let api = "CreateTags";
        self.client
            .create_tags()
            .set_resources(Some(resources.to_vec()))
            .set_tags(Some(
                tag_map
                    .iter()
                    .map(|(k, v)| t::Tag::builder().key(k).value(v).build())
                    .collect(),
            ))
            .send()
            .await
            .map_err(|e| classify(api, &e))?;
        Ok(())
    }
}

/// IMDSv2 through `aws-config`'s client: session tokens with a TTL, refreshed on expiry and on a
/// 401, timeouts and retries on 5xx.
#[derive(Debug, Clone)]
pub struct AwsImds {
    client: aws_config::imds::Client,
}

impl AwsImds {
    /// A client for the node's IMDS, or `settings.imds_endpoint`.
    pub fn new(settings: &AwsSettings) -> Result<AwsImds> {
        let config = ProviderConfig::without_region().with_http_client(http_client());
        let mut builder = aws_config::imds::Client::builder()
            .configure(&config)
            .token_ttl(Duration::from_hours(6))
            .connect_timeout(Duration::from_secs(1))
            .read_timeout(Duration::from_secs(2))
            .max_attempts(4);
        if let Some(endpoint) = &settings.imds_endpoint {
            builder = builder
                .endpoint(endpoint)
                .map_err(|e| CloudError::Config(format!("IMDS endpoint {endpoint:?}: {e}")))?;
        }
        Ok(AwsImds {
            client: builder.build(),
        })
    }
}

impl Imds for AwsImds {
    async fn get(&self, path: &str) -> Result<Option<String>> {
        match self.client.get(format!("/latest/{path}")).await {
            Ok(v) => Ok(Some(v.as_ref().to_owned())),
            Err(ImdsError::ErrorResponse(r)) if r.response().status().as_u16() == 404 => Ok(None),
            Err(e) => Err(CloudError::Transient {
                api: "IMDS",
                attempts: 1,
                message: format!("{path}: {}", DisplayErrorContext(&e)),
            }),
        }
    }
}
