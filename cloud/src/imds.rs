//! Reading the node from IMDS: the identity and every attached ENI, parsed once here for every
//! [`Imds`] implementation.

use std::net::Ipv4Addr;

use ipnetwork::Ipv4Network;
use planner::pool::EniId;

use crate::model::{ImdsInterface, InstanceIdentity};
use crate::{CloudError, Imds, Result};

const API: &str = "IMDS";

async fn required<I: Imds>(imds: &I, path: &'static str) -> Result<String> {
    imds.get(path)
        .await?
        .map(|s| s.trim().to_owned())
        .ok_or(CloudError::MissingField {
            api: API,
            field: path,
        })
}

fn parse<T: std::str::FromStr>(field: &'static str, value: &str) -> Result<T> {
    value.trim().parse().map_err(|_| CloudError::BadField {
        api: API,
        field,
        value: value.to_owned(),
    })
}

fn lines(text: &str) -> impl Iterator<Item = &str> {
    text.lines().map(str::trim).filter(|l| !l.is_empty())
}

/// A MAC as IMDS and EC2 spell it: six lower-case hex pairs.
fn mac(field: &'static str, value: &str) -> Result<String> {
    let v = value.trim().trim_end_matches('/').to_ascii_lowercase();
    let ok = v.len() == 17
        && v.split(':').count() == 6
        && v.split(':')
            .all(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_hexdigit()));
    if ok {
        Ok(v)
    } else {
        Err(CloudError::BadField {
            api: API,
            field,
            value: value.to_owned(),
        })
    }
}

/// The instance identity (`meta-data/instance-id`, `instance-type`, placement, `local-ipv4`,
/// `mac`).
pub async fn identity<I: Imds>(imds: &I) -> Result<InstanceIdentity> {
    let availability_zone = required(imds, "meta-data/placement/availability-zone").await?;
    let region = match imds.get("meta-data/placement/region").await? {
        Some(r) => r.trim().to_owned(),
        // Older IMDS: the region is the zone without its letter.
        None => availability_zone
            .trim_end_matches(|c: char| c.is_ascii_alphabetic())
            .to_owned(),
    };
    Ok(InstanceIdentity {
        instance_id: required(imds, "meta-data/instance-id").await?,
        instance_type: required(imds, "meta-data/instance-type").await?,
        availability_zone,
        region,
        private_ip: parse(
            "meta-data/local-ipv4",
            &required(imds, "meta-data/local-ipv4").await?,
        )?,
        mac: mac("meta-data/mac", &required(imds, "meta-data/mac").await?)?,
    })
}

/// Every attached ENI, by device number.
pub async fn interfaces<I: Imds>(imds: &I) -> Result<Vec<ImdsInterface>> {
    let macs = required(imds, "meta-data/network/interfaces/macs/").await?;
    let mut out = Vec::new();
    for m in lines(&macs) {
        let m = mac("meta-data/network/interfaces/macs/", m)?;
        out.push(interface(imds, &m).await?);
    }
    out.sort_by_key(|i| (i.network_card, i.device_number));
    Ok(out)
}

async fn interface<I: Imds>(imds: &I, mac: &str) -> Result<ImdsInterface> {
    let base = format!("meta-data/network/interfaces/macs/{mac}/");
    let get = |leaf: &str| {
        let path = format!("{base}{leaf}");
        async move { imds.get(&path).await }
    };
    let need = |leaf: &'static str, v: Option<String>| {
        v.ok_or(CloudError::MissingField {
            api: API,
            field: leaf,
        })
    };
    let device_number = parse(
        "device-number",
        &need("device-number", get("device-number").await?)?,
    )?;
    let network_card = match get("network-card").await? {
        Some(v) => parse("network-card", &v)?,
        None => 0,
    };
    let interface_id = EniId(
        need("interface-id", get("interface-id").await?)?
            .trim()
            .to_owned(),
    );
    let subnet_id = need("subnet-id", get("subnet-id").await?)?
        .trim()
        .to_owned();
    let subnet_cidr = parse(
        "subnet-ipv4-cidr-block",
        &need(
            "subnet-ipv4-cidr-block",
            get("subnet-ipv4-cidr-block").await?,
        )?,
    )?;
    let vpc_cidrs = match get("vpc-ipv4-cidr-blocks").await? {
        Some(v) => lines(&v)
            .map(|l| parse::<Ipv4Network>("vpc-ipv4-cidr-blocks", l))
            .collect::<Result<_>>()?,
        None => Vec::new(),
    };
    let security_groups = get("security-group-ids")
        .await?
        .map(|v| lines(&v).map(str::to_owned).collect())
        .unwrap_or_default();
    let local_ipv4s: Vec<Ipv4Addr> = lines(&need("local-ipv4s", get("local-ipv4s").await?)?)
        .map(|l| parse("local-ipv4s", l))
        .collect::<Result<_>>()?;
    let ipv4_prefixes = match get("ipv4-prefix").await? {
        Some(v) => lines(&v)
            .map(|l| parse::<Ipv4Network>("ipv4-prefix", l))
            .collect::<Result<_>>()?,
        None => Vec::new(),
    };
    Ok(ImdsInterface {
        mac: mac.to_owned(),
        device_number,
        network_card,
        interface_id,
        subnet_id,
        subnet_cidr,
        vpc_cidrs,
        security_groups,
        local_ipv4s,
        ipv4_prefixes,
    })
}
