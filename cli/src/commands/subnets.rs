//! `eniplan subnets`: /28 block maps from the spec or, with `--live`, from EC2.

use std::fmt::Write as _;

use capacity::blocks::{BlockMap, EniUsage, SubnetUsage, block_map};
use cloud::Ec2;
use cloud::model::{EniFilter, NetworkInterface, SubnetInfo};

use super::common::{self, Bar, thousands};
use crate::args::{Output, SubnetsArgs};
use crate::outcome::{CommandError, CommandOutput};
use crate::{render, svg};

pub fn run(args: &SubnetsArgs) -> Result<CommandOutput, CommandError> {
    let output = Output::from(args.output);
    let mut usages = if args.live {
        let ids = if args.subnet.is_empty() {
            let path = args.spec.as_ref().ok_or_else(|| {
                CommandError::Usage("--live needs --subnet IDs or a SPEC naming the subnets".into())
            })?;
            common::read_spec(path)?
                .subnets
                .iter()
                .map(|s| s.id.clone())
                .collect()
        } else {
            args.subnet.clone()
        };
        read_live(args, &ids)?
    } else {
        let path = args
            .spec
            .as_ref()
            .ok_or_else(|| CommandError::Usage("a SPEC is needed without --live".into()))?;
        let cluster = common::read_spec(path)?;
        let bar = Bar::new(args.progress);
        capacity::forecast::current_usage(&cluster, &mut |p| bar.update(p))?
    };
    if !args.subnet.is_empty() {
        if let Some(missing) = args
            .subnet
            .iter()
            .find(|id| !usages.iter().any(|u| &&u.id == id))
        {
            let known: Vec<&str> = usages.iter().map(|u| u.id.as_str()).collect();
            return Err(CommandError::Usage(format!(
                "--subnet {missing:?}: no such subnet (known: {})",
                known.join(", ")
            )));
        }
        usages.retain(|u| args.subnet.contains(&u.id));
    }
    let maps = usages
        .iter()
        .map(|u| block_map(u, args.top))
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(path) = &args.plot {
        common::write_file(path, &svg::block_maps(&maps))?;
    }
    let stdout = if output == Output::Json {
        render::json(&maps)?
    } else {
        text(&maps, output, args)
    };
    Ok(CommandOutput {
        stdout,
        ..CommandOutput::default()
    })
}

fn text(maps: &[BlockMap], output: Output, args: &SubnetsArgs) -> String {
    let md = output == Output::Markdown;
    let rows: Vec<Vec<String>> = maps
        .iter()
        .map(|m| {
            vec![
                m.id.clone(),
                m.az.clone(),
                m.stats.cidr.to_string(),
                thousands(u64::from(m.stats.free_addresses)),
                thousands(u64::from(m.counts.free)),
                thousands(u64::from(m.counts.partial)),
                thousands(u64::from(m.counts.full)),
                thousands(u64::from(m.counts.prefix)),
                thousands(u64::from(m.counts.reserved)),
                format!("{:.2} {}", m.stats.fragmentation, m.band),
            ]
        })
        .collect();
    let mut out = render::table(
        output,
        &[
            "SUBNET",
            "AZ",
            "CIDR",
            "FREE ADDRS",
            "FREE /28",
            "PARTIAL",
            "FULL",
            "PREFIX",
            "RESERVED",
            "FRAGMENTATION",
        ],
        &rows,
        &[3, 4, 5, 6, 7, 8],
    );
    for m in maps {
        let show_map = args.map || (!args.no_map && m.blocks.len() <= 1024);
        if show_map {
            if md {
                let _ = writeln!(out, "\n#### {} block map\n\n```", m.id);
            } else {
                let _ = writeln!(
                    out,
                    "\n{} block map (. free  + partly used  # full  P prefix  R reserved)",
                    m.id
                );
            }
            for (i, row) in m.blocks.chunks(64).enumerate() {
                let line: String = row.iter().map(|b| b.class.glyph()).collect();
                let _ = writeln!(out, "{:<18} {line}", m.blocks[i * 64].cidr.ip());
            }
            if md {
                out.push_str("```\n");
            }
        }
        if !m.drain.is_empty() {
            if md {
                let _ = writeln!(out, "\n#### {}: release these first\n", m.id);
            } else {
                let _ = writeln!(out, "\n{}: ENIs whose release frees the most /28s", m.id);
            }
            let rows: Vec<Vec<String>> = m
                .drain
                .iter()
                .map(|d| {
                    vec![
                        d.eni.clone(),
                        if d.owner.is_empty() {
                            "-".into()
                        } else {
                            d.owner.clone()
                        },
                        d.blocks_freed.to_string(),
                        d.prefixes.to_string(),
                        d.addresses.to_string(),
                    ]
                })
                .collect();
            out.push_str(&render::table(
                output,
                &[
                    "ENI",
                    "OWNER",
                    "/28s FREED",
                    "OF WHICH PREFIXES",
                    "ADDRESSES",
                ],
                &rows,
                &[2, 3, 4],
            ));
        }
    }
    out
}

/// EC2's view of one subnet as the planner's input: every ENI with its addresses; the owner is
/// the attached instance, else the description, else the interface type.
pub fn usage_from(
    info: &SubnetInfo,
    enis: &[NetworkInterface],
) -> Result<SubnetUsage, CommandError> {
    let mut out = Vec::with_capacity(enis.len());
    for e in enis {
        if e.subnet_id != info.id {
            continue;
        }
        for a in std::iter::once(&e.primary_ip).chain(&e.secondary_ips) {
            capacity::blocks::check_inside(info.cidr, *a)?;
        }
        let owner = match (&e.attachment, e.description.is_empty()) {
            (Some(a), _) => a.instance_id.clone(),
            (None, false) => e.description.clone(),
            (None, true) => e.interface_type.as_str().to_owned(),
        };
        out.push(EniUsage {
            id: e.id.0.clone(),
            owner,
            primary: e.primary_ip,
            ips: e.secondary_ips.clone(),
            prefixes: e.prefixes.clone(),
        });
    }
    out.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(SubnetUsage {
        id: info.id.clone(),
        cidr: info.cidr,
        az: info.availability_zone.clone(),
        enis: out,
        others: Vec::new(),
        reserved: Vec::new(),
    })
}

/// Reads the subnets and their ENIs: one DescribeSubnets, then per subnet one paginated
/// DescribeNetworkInterfaces filtered on `subnet-id`.
pub async fn live_usage<E: Ec2>(ec2: &E, ids: &[String]) -> Result<Vec<SubnetUsage>, CommandError> {
    let infos = ec2
        .describe_subnets(ids)
        .await
        .map_err(|e| CommandError::Internal(e.to_string()))?;
    let mut out = Vec::new();
    for id in ids {
        let info = infos
            .iter()
            .find(|s| &s.id == id)
            .ok_or_else(|| CommandError::Usage(format!("subnet {id:?} was not found in EC2")))?;
        let filter = EniFilter {
            subnet_id: Some(id.clone()),
            ..EniFilter::default()
        };
        let enis = ec2
            .describe_network_interfaces(&filter)
            .await
            .map_err(|e| CommandError::Internal(e.to_string()))?;
        out.push(usage_from(info, &enis)?);
    }
    Ok(out)
}

fn read_live(args: &SubnetsArgs, ids: &[String]) -> Result<Vec<SubnetUsage>, CommandError> {
    let settings = cloud::aws::AwsSettings {
        region: args.region.clone(),
        ec2_endpoint: args.endpoint.clone(),
        ..cloud::aws::AwsSettings::default()
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CommandError::Internal(format!("cannot start the async runtime: {e}")))?;
    rt.block_on(async {
        let ec2 = cloud::aws::AwsEc2::new(&settings)
            .await
            .map_err(|e| CommandError::Internal(e.to_string()))?;
        let guarded = cloud::Guarded::new(ec2, cloud::RetryPolicy::default());
        live_usage(&guarded, ids).await
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use cloud::fake::FakeEc2;
    use cloud::model::CreateEni;

    #[tokio::test]
    async fn fake_ec2_to_block_map_with_instances_and_prefixes() {
        let ec2 = FakeEc2::new();
        let vpc = ec2.create_vpc("10.0.0.0/16".parse().unwrap());
        let subnet = ec2
            .create_subnet(&vpc, "10.0.0.0/24".parse().unwrap(), "eu-west-1a")
            .unwrap();
        let other = ec2
            .create_subnet(&vpc, "10.0.1.0/24".parse().unwrap(), "eu-west-1a")
            .unwrap();
        let instance = ec2.run_instance("m5.large", &subnet).unwrap();
        ec2.run_instance("m5.large", &other).unwrap();
        let eni = ec2
            .create_network_interface(&CreateEni {
                subnet_id: subnet.clone(),
                description: "aws-K8S-test".into(),
                prefixes: 2,
                ..CreateEni::default()
            })
            .await
            .unwrap();
        let usage = live_usage(&ec2, std::slice::from_ref(&subnet))
            .await
            .unwrap();
        assert_eq!(usage.len(), 1);
        let u = &usage[0];
        assert_eq!(u.enis.len(), 2, "only the subnet's ENIs: {:?}", u.enis);
        assert!(u.enis.iter().any(|e| e.owner == instance));
        let created = u.enis.iter().find(|e| e.id == eni.id.0).unwrap();
        assert_eq!(created.owner, "aws-K8S-test");
        assert_eq!(created.prefixes.len(), 2);
        let map = block_map(u, 5).unwrap();
        assert_eq!(map.counts.prefix, 2);
        assert_eq!(map.stats.free_addresses, 251 - 2 - 32);
        // The fake makes one filtered DescribeNetworkInterfaces per subnet.
        assert_eq!(ec2.calls().get("DescribeNetworkInterfaces"), Some(&1));
    }

    #[tokio::test]
    async fn unknown_subnet_to_error() {
        let ec2 = FakeEc2::new();
        let err = live_usage(&ec2, &["subnet-nope".to_owned()])
            .await
            .unwrap_err();
        assert!(
            matches!(&err, CommandError::Usage(m) | CommandError::Internal(m) if m.contains("subnet-nope")),
            "{err:?}"
        );
    }

    #[test]
    fn address_outside_the_subnet_to_error() {
        let info = SubnetInfo {
            id: "s".into(),
            vpc_id: "v".into(),
            cidr: "10.0.0.0/28".parse().unwrap(),
            availability_zone: "z".into(),
            available_ip_addresses: 11,
            tags: std::collections::BTreeMap::new(),
        };
        let eni = NetworkInterface {
            id: planner::pool::EniId("eni-1".into()),
            subnet_id: "s".into(),
            vpc_id: "v".into(),
            availability_zone: "z".into(),
            description: String::new(),
            mac: String::new(),
            interface_type: cloud::model::InterfaceType::Interface,
            status: "available".into(),
            primary_ip: "10.0.0.99".parse().unwrap(),
            secondary_ips: vec![],
            prefixes: vec![],
            attachment: None,
            tags: std::collections::BTreeMap::new(),
            security_groups: vec![],
        };
        assert!(usage_from(&info, std::slice::from_ref(&eni)).is_err());
        let inside = NetworkInterface {
            primary_ip: "10.0.0.9".parse().unwrap(),
            ..eni
        };
        let u = usage_from(&info, &[inside]).unwrap();
        assert_eq!(u.enis[0].owner, "interface");
    }
}
