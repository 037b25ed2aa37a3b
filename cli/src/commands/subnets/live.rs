//! `eniplan subnets --live`: EC2's view of the subnets as the planner's input. Built only with
//! the `live` cargo feature, which brings in `cloud` and the AWS SDK (decision 0005).

use capacity::blocks::{EniUsage, SubnetUsage};
use cloud::Ec2;
use cloud::model::{EniFilter, NetworkInterface, SubnetInfo};

use crate::outcome::CommandError;

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

/// Reads `ids` from EC2 through the AWS SDK (credentials from its default chain) behind the
/// client-side rate limiter, on a one-thread runtime.
pub fn read(
    region: Option<String>,
    endpoint: Option<String>,
    ids: &[String],
) -> Result<Vec<SubnetUsage>, CommandError> {
    crate::commands::ec2::with_ec2(region, endpoint, async |ec2| live_usage(ec2, ids).await)
}

#[cfg(test)]
mod tests {
    use super::*;
    use capacity::blocks::block_map;
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
