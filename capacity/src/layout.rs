//! Custom-networking layouts: carve per-AZ pod subnets out of a secondary CIDR (typically from
//! 100.64.0.0/10), sized for the node groups at peak with headroom, and emit what a cluster
//! needs to use them: one ENIConfig per AZ (selected by `topology.kubernetes.io/zone`), the
//! ipamd settings, and Terraform for the subnets.
//!
//! Sizing runs the same engine as the forecast, with `AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG=true`
//! forced: per node, everything but the node's primary address lives in the pod subnet (ENI
//! primaries, the pool, trunk and branch ENIs). A subnet for `n` addresses is the smallest
//! power of two `S` with `S − 5 ≥ n × (1 + headroom)`; with prefixes it must also hold
//! `prefixes + singles` whole /28s besides the two reserved ones (every single address may break
//! a /28, as EC2 places them at random). Subnets are carved largest first, each aligned on its
//! size, lowest address first: they never overlap and never leave the CIDR.
//!
//! ```
//! let cluster = capacity::spec::load(r#"
//! vpc_cidrs: [10.0.0.0/16]
//! subnets:
//!   - { id: a, cidr: 10.0.0.0/20, az: z1 }
//!   - { id: b, cidr: 10.0.16.0/20, az: z2 }
//! node_groups:
//!   - { name: g, instance_types: [m5.large], nodes: 100, pods: { per_node: 15 } }
//! "#)?;
//! let req = capacity::layout::Request { cidr: "100.64.0.0/16".parse()?, azs: vec![], headroom: 0.3 };
//! let layout = capacity::layout::plan(&cluster, &req)?;
//! // 50 nodes per AZ; m5.large with custom networking: 2 ENIs × (1 + 9) = 20 pod-subnet addresses.
//! assert_eq!(layout.subnets[0].needed, 1000);
//! assert_eq!(layout.subnets[0].cidr.to_string(), "100.64.0.0/21"); // 1300 → 2048
//! assert_eq!(layout.subnets[1].cidr.to_string(), "100.64.8.0/21");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::BTreeMap;
use std::fmt::Write as _;

use ipnetwork::Ipv4Network;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::forecast::{Progress, build_shapes};
use crate::spec::Cluster;
use planner::max_pods;
use planner::subnet::{ADDRESSES_PER_PREFIX, AWS_RESERVED_ADDRESSES, MIN_SUBNET_PREFIX_LEN};

/// What to lay out.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// The CIDR to carve (a VPC secondary CIDR, e.g. `100.64.0.0/16`).
    pub cidr: Ipv4Network,
    /// AZs to create pod subnets in (empty: every AZ a node group runs in).
    pub azs: Vec<String>,
    /// Extra room over the peak demand, as a fraction (0.3 = 30 %).
    pub headroom: f64,
}

/// One per-AZ pod subnet.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PodSubnet {
    /// AZ (also the ENIConfig's name).
    pub az: String,
    /// Its CIDR.
    pub cidr: Ipv4Network,
    /// Usable addresses (size − 5).
    pub usable: u32,
    /// Nodes at peak in the AZ.
    pub nodes: u32,
    /// Addresses the nodes hold in it at peak.
    pub needed: u32,
    /// Of which in /28 prefixes.
    pub prefixes: u32,
    /// Free at peak, percent of usable.
    pub headroom_percent: f64,
}

/// A custom-networking plan.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Layout {
    /// Cluster name.
    pub cluster: String,
    /// The CIDR carved.
    pub cidr: Ipv4Network,
    /// Whether the CIDR is one of the spec's VPC CIDRs (else it must be associated first).
    pub in_vpc: bool,
    /// Headroom asked for, percent.
    pub headroom_percent: f64,
    /// One subnet per AZ, in AZ order.
    pub subnets: Vec<PodSubnet>,
    /// Parts of the CIDR left free, lowest first.
    pub unused: Vec<Ipv4Network>,
    /// The ipamd (aws-node) settings custom networking needs.
    pub settings: BTreeMap<&'static str, &'static str>,
    /// Max pods per instance type with custom networking (the kubelet value changes!).
    pub max_pods: BTreeMap<&'static str, u32>,
}

fn size_for(needed: u32, prefixes: u32, singles: u32, headroom: f64) -> u64 {
    let grow = |n: u32| -> u64 {
        #[expect(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "non-negative, and below 2^40 for any subnet"
        )]
        let v = (f64::from(n) * (1.0 + headroom)).ceil().max(0.0) as u64;
        v
    };
    let want = grow(needed) + u64::from(AWS_RESERVED_ADDRESSES);
    let mut size = u64::from(ADDRESSES_PER_PREFIX);
    while size < want {
        size *= 2;
    }
    if prefixes > 0 {
        let blocks = grow(prefixes) + grow(singles) + 2;
        while size / u64::from(ADDRESSES_PER_PREFIX) < blocks {
            size *= 2;
        }
    }
    size
}

fn prefix_len_for(size: u64) -> u8 {
    // size is a power of two between 16 and 2^32.
    u8::try_from(32 - size.trailing_zeros()).unwrap_or(0)
}

/// Plans the layout. Refuses ([`Error::LayoutDoesNotFit`]) when the subnets need more than the
/// CIDR holds, saying by how much, and ([`Error::LayoutSubnetTooLarge`]) when one AZ needs more
/// than a /16; [`Error::InvalidArgument`] when the CIDR overlaps a subnet of
/// the spec or a group runs in an AZ the request leaves out.
#[expect(clippy::too_many_lines, reason = "demand, sizing, carving, in order")]
pub fn plan(cluster: &Cluster, request: &Request) -> Result<Layout> {
    let cidr = request.cidr;
    if cidr.ip() != cidr.network() {
        return Err(Error::InvalidArgument {
            name: "--cidr".into(),
            value: cidr.to_string(),
            expected: format!(
                "a CIDR without host bits, e.g. {}/{}",
                cidr.network(),
                cidr.prefix()
            ),
        });
    }
    if let Some(s) = cluster.subnets.iter().find(|s| s.cidr.overlaps(cidr)) {
        return Err(Error::InvalidArgument {
            name: "--cidr".into(),
            value: cidr.to_string(),
            expected: format!(
                "a CIDR that overlaps no existing subnet ({} is {})",
                s.id, s.cidr
            ),
        });
    }
    if !request.headroom.is_finite() || request.headroom < 0.0 {
        return Err(Error::InvalidArgument {
            name: "--headroom".into(),
            value: request.headroom.to_string(),
            expected: "a percentage of 0 or more".into(),
        });
    }
    // Custom networking everywhere; the kubelet max pods follows unless the spec pinned it.
    let mut forced = cluster.clone();
    let mut max_pods_by_type = BTreeMap::new();
    for g in &mut forced.groups {
        g.custom_networking = true;
        for t in &mut g.types {
            let options = |cn| max_pods::Options {
                prefix_delegation: t.config.prefix_delegation,
                custom_networking: cn,
                security_groups_for_pods: t.config.pod_eni,
                max_eni: t.config.max_eni.and_then(std::num::NonZeroU32::new),
                ..max_pods::Options::default()
            };
            let before = max_pods::max_pods(t.limits, &options(false)).recommended_max_pods;
            let after = max_pods::max_pods(t.limits, &options(true)).recommended_max_pods;
            if t.config.max_pods == before {
                t.config.max_pods = after;
            }
            t.config.custom_networking = true;
            max_pods_by_type.insert(t.limits.name, t.config.max_pods);
        }
    }
    let shapes = build_shapes(&forced, &mut |_: Progress| {})?;
    let azs: Vec<String> = if request.azs.is_empty() {
        let mut seen = Vec::new();
        for g in &cluster.groups {
            for az in &g.azs {
                if !seen.contains(az) {
                    seen.push(az.clone());
                }
            }
        }
        seen
    } else {
        request.azs.clone()
    };
    // Demand per AZ at peak.
    let mut demand: BTreeMap<&str, (u32, u64, u64)> = BTreeMap::new(); // nodes, singles, prefixes
    for (gi, g) in forced.groups.iter().enumerate() {
        let n_az = u32::try_from(g.azs.len()).unwrap_or(1).max(1);
        for k in 0..g.max {
            let az = &g.azs[(k % n_az) as usize];
            if !azs.contains(az) {
                return Err(Error::InvalidArgument {
                    name: "--azs".into(),
                    value: azs.join(","),
                    expected: format!(
                        "every AZ the node groups run in (node group {} runs in {az})",
                        g.name
                    ),
                });
            }
            let f = shapes[gi].shapes[shapes[gi].shape_of(k)].profile.peak;
            let e = demand.entry(az.as_str()).or_default();
            e.0 += 1;
            e.1 += u64::from(f.eni_primaries() + f.ips + f.trunk_addresses());
            e.2 += u64::from(f.prefixes);
        }
    }
    let mut wanted: Vec<(String, u64, u32, u32, u32)> = Vec::new(); // az, size, nodes, needed, prefixes
    for az in &azs {
        let (nodes, singles, prefixes) = demand.get(az.as_str()).copied().unwrap_or_default();
        let singles = u32::try_from(singles).unwrap_or(u32::MAX);
        let prefixes = u32::try_from(prefixes).unwrap_or(u32::MAX);
        let needed = singles.saturating_add(prefixes.saturating_mul(ADDRESSES_PER_PREFIX));
        let size = size_for(needed, prefixes, singles, request.headroom);
        let largest = 1u64 << (32 - MIN_SUBNET_PREFIX_LEN);
        if size > largest {
            return Err(Error::LayoutSubnetTooLarge {
                az: az.clone(),
                needed: size,
                short_by: size - largest,
            });
        }
        wanted.push((az.clone(), size, nodes, needed, prefixes));
    }
    let total: u64 = wanted.iter().map(|w| w.1).sum();
    let available = u64::from(cidr.size());
    if total > available {
        let detail = wanted
            .iter()
            .map(|(az, size, ..)| format!("{az} /{}", prefix_len_for(*size)))
            .collect::<Vec<_>>()
            .join(", ");
        return Err(Error::LayoutDoesNotFit {
            cidr: cidr.to_string(),
            needed: total,
            available,
            short_by: total - available,
            detail,
            suggested_prefix: prefix_len_for(total.next_power_of_two()),
        });
    }
    // Carve: largest first, ties by AZ order; each from the lowest free aligned block.
    let mut order: Vec<usize> = (0..wanted.len()).collect();
    order.sort_by(|&a, &b| wanted[b].1.cmp(&wanted[a].1).then(a.cmp(&b)));
    let mut free: Vec<Ipv4Network> = vec![cidr];
    let mut carved: Vec<Option<Ipv4Network>> = vec![None; wanted.len()];
    for i in order {
        let len = prefix_len_for(wanted[i].1);
        // The smallest free block that holds it, lowest first among equals.
        let Some(pos) = (0..free.len())
            .filter(|&j| free[j].prefix() <= len)
            .max_by(|&a, &b| {
                free[a]
                    .prefix()
                    .cmp(&free[b].prefix())
                    .then(free[b].network().cmp(&free[a].network()))
            })
        else {
            return Err(Error::LayoutDoesNotFit {
                cidr: cidr.to_string(),
                needed: total,
                available,
                short_by: 1,
                detail: "the aligned blocks do not pack".into(),
                suggested_prefix: cidr.prefix().saturating_sub(1),
            });
        };
        let mut block = free.remove(pos);
        while block.prefix() < len {
            let half = block.prefix() + 1;
            let low =
                Ipv4Network::new(block.network(), half).map_err(|_| Error::InvalidArgument {
                    name: "--cidr".into(),
                    value: cidr.to_string(),
                    expected: "a valid CIDR".into(),
                })?;
            let high_addr =
                std::net::Ipv4Addr::from(u32::from(block.network()) + (1u32 << (32 - half)));
            let high = Ipv4Network::new(high_addr, half).map_err(|_| Error::InvalidArgument {
                name: "--cidr".into(),
                value: cidr.to_string(),
                expected: "a valid CIDR".into(),
            })?;
            free.push(high);
            block = low;
        }
        carved[i] = Some(block);
    }
    free.sort_by_key(Ipv4Network::network);
    let subnets = wanted
        .iter()
        .zip(carved)
        .map(|((az, size, nodes, needed, prefixes), c)| {
            let usable = u32::try_from(*size).unwrap_or(u32::MAX) - AWS_RESERVED_ADDRESSES;
            PodSubnet {
                az: az.clone(),
                cidr: c.unwrap_or(cidr),
                usable,
                nodes: *nodes,
                needed: *needed,
                prefixes: *prefixes,
                headroom_percent: 100.0 * (f64::from(usable) - f64::from(*needed))
                    / f64::from(usable),
            }
        })
        .collect();
    Ok(Layout {
        cluster: cluster.name.clone(),
        cidr,
        in_vpc: cluster.vpc_cidrs.iter().any(|v| v.is_supernet_of(cidr)),
        headroom_percent: request.headroom * 100.0,
        subnets,
        unused: free,
        settings: BTreeMap::from([
            ("AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG", "true"),
            ("ENI_CONFIG_LABEL_DEF", "topology.kubernetes.io/zone"),
        ]),
        max_pods: max_pods_by_type,
    })
}

fn tf_name(az: &str) -> String {
    az.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

/// The ENIConfig manifests (one per AZ, named after it) and the aws-node settings, as YAML.
/// Subnet ids are not known before the subnets exist: each `spec.subnet` is a placeholder
/// naming the CIDR to look up (or take from the Terraform output `pod_subnet_ids`).
///
/// ```
/// # let cluster = capacity::spec::load("vpc_cidrs: [10.0.0.0/16]\nsubnets: [{ id: a, cidr: 10.0.0.0/20, az: z1 }]\nnode_groups: [{ name: g, instance_types: [m5.large], nodes: 2, pods: { per_node: 5 } }]\n")?;
/// # let req = capacity::layout::Request { cidr: "100.64.0.0/16".parse()?, azs: vec![], headroom: 0.3 };
/// let yaml = capacity::layout::eniconfigs(&capacity::layout::plan(&cluster, &req)?, &[]);
/// assert!(yaml.contains("kind: ENIConfig\nmetadata:\n  name: z1\n"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn eniconfigs(layout: &Layout, security_groups: &[String]) -> String {
    let mut out = format!(
        "# Custom networking for {}: one ENIConfig per AZ, selected by the node label\n# topology.kubernetes.io/zone. Generated by eniplan layout; replace each\n# subnet placeholder with the id of the subnet created for its CIDR\n# (terraform output pod_subnet_ids).\n",
        layout.cluster
    );
    for s in &layout.subnets {
        let _ = writeln!(
            out,
            "#   {}: {} ({} usable), {} addresses at peak ({} nodes), {:.1} % free",
            s.az, s.cidr, s.usable, s.needed, s.nodes, s.headroom_percent
        );
    }
    for s in &layout.subnets {
        let _ = write!(
            out,
            "---\napiVersion: crd.k8s.amazonaws.com/v1alpha1\nkind: ENIConfig\nmetadata:\n  name: {}\nspec:\n  subnet: subnet-for-{}  # {} in {}\n",
            s.az,
            s.cidr.to_string().replace(['.', '/'], "-"),
            s.cidr,
            s.az
        );
        if !security_groups.is_empty() {
            out.push_str("  securityGroups:\n");
            for sg in security_groups {
                let _ = writeln!(out, "    - {sg}");
            }
        }
    }
    out.push_str(
        "# aws-node (ipamd) settings, e.g. kubectl -n kube-system set env daemonset/aws-node",
    );
    for (k, v) in &layout.settings {
        let _ = write!(out, " {k}={v}");
    }
    out.push('\n');
    out.push_str("# kubelet max pods with custom networking:");
    for (t, n) in &layout.max_pods {
        let _ = write!(out, " {t}={n}");
    }
    out.push('\n');
    out
}

/// Terraform (HCL) for the subnets: an optional CIDR association with the VPC, one
/// `aws_subnet` per AZ, and the ids by AZ as an output: a module whose output
/// `terraform/modules/eniplan` takes (`terraform/examples/custom-networking`).
pub fn terraform(layout: &Layout) -> String {
    let mut out = format!(
        "# Pod subnets for {} (custom networking), generated by eniplan layout.\n\nvariable \"vpc_id\" {{\n  type        = string\n  description = \"The cluster's VPC.\"\n}}\n\n",
        layout.cluster
    );
    let vpc_ref = if layout.in_vpc {
        "var.vpc_id".to_owned()
    } else {
        let _ = write!(
            out,
            "resource \"aws_vpc_ipv4_cidr_block_association\" \"pods\" {{\n  vpc_id     = var.vpc_id\n  cidr_block = \"{}\"\n}}\n\n",
            layout.cidr
        );
        "aws_vpc_ipv4_cidr_block_association.pods.vpc_id".to_owned()
    };
    for s in &layout.subnets {
        let _ = write!(
            out,
            "resource \"aws_subnet\" \"pods_{}\" {{\n  vpc_id            = {vpc_ref}\n  cidr_block        = \"{}\"\n  availability_zone = \"{}\"\n\n  tags = {{\n    Name                   = \"{}-pods-{}\"\n    \"eniplan/purpose\"      = \"pods\"\n    \"eniplan/usable\"       = \"{}\"\n  }}\n}}\n\n",
            tf_name(&s.az),
            s.cidr,
            s.az,
            layout.cluster,
            s.az,
            s.usable
        );
    }
    out.push_str("output \"pod_subnet_ids\" {\n  description = \"ENIConfig subnet id by AZ.\"\n  value = {\n");
    for s in &layout.subnets {
        let _ = writeln!(
            out,
            "    \"{}\" = aws_subnet.pods_{}.id",
            s.az,
            tf_name(&s.az)
        );
    }
    out.push_str("  }\n}\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::load;

    fn cluster(nodes: u32) -> Cluster {
        load(&format!(
            r"
vpc_cidrs: [10.0.0.0/16, 100.64.0.0/16]
subnets:
  - {{ id: a, cidr: 10.0.0.0/20, az: eu-west-1a }}
  - {{ id: b, cidr: 10.0.16.0/20, az: eu-west-1b }}
  - {{ id: c, cidr: 10.0.32.0/20, az: eu-west-1c }}
node_groups:
  - {{ name: g, instance_types: [m5.xlarge], nodes: {nodes}, pods: {{ per_node: 30 }} }}
"
        ))
        .unwrap()
    }

    fn req(cidr: &str, headroom: f64) -> Request {
        Request {
            cidr: cidr.parse().unwrap(),
            azs: vec![],
            headroom,
        }
    }

    #[test]
    fn three_azs_to_aligned_disjoint_subnets_inside_the_cidr() {
        let l = plan(&cluster(600), &req("100.64.0.0/16", 0.3)).unwrap();
        assert_eq!(l.subnets.len(), 3);
        assert!(l.in_vpc);
        for s in &l.subnets {
            assert!(l.cidr.is_supernet_of(s.cidr));
            assert!(s.headroom_percent >= 23.0, "{s:?}");
            assert_eq!(s.nodes, 200);
        }
        for (i, a) in l.subnets.iter().enumerate() {
            for b in &l.subnets[i + 1..] {
                assert!(!a.cidr.overlaps(b.cidr));
            }
        }
        assert_eq!(l.max_pods["m5.xlarge"], 44);
    }

    #[test]
    fn too_small_cidr_to_refusal_with_shortfall() {
        let err = plan(&cluster(3000), &req("100.64.0.0/18", 0.3)).unwrap_err();
        let Error::LayoutDoesNotFit {
            needed,
            available,
            short_by,
            suggested_prefix,
            ..
        } = err.clone()
        else {
            panic!("{err}")
        };
        assert_eq!(available, 16_384);
        assert_eq!(short_by, needed - available);
        assert!(suggested_prefix < 18);
        assert!(err.to_string().contains("short by"), "{err}");
    }

    #[test]
    fn overlapping_cidr_to_invalid_argument() {
        let err = plan(&cluster(3), &req("10.0.0.0/16", 0.3)).unwrap_err();
        assert!(
            err.to_string().contains("overlaps no existing subnet"),
            "{err}"
        );
    }

    #[test]
    fn terraform_and_manifests_name_every_az() {
        let l = plan(&cluster(30), &req("100.65.0.0/16", 0.1)).unwrap();
        let tf = terraform(&l);
        // Valid HCL (the parser does reject broken input), with one subnet per AZ.
        assert!(hcl::parse("resource \"aws_subnet\" \"x\" {\n  cidr_block = \n").is_err());
        let body = hcl::parse(&tf).unwrap_or_else(|e| panic!("{e}\n{tf}"));
        let subnets = body
            .blocks()
            .filter(|b| b.identifier() == "resource" && b.labels()[0].as_str() == "aws_subnet")
            .count();
        assert_eq!(subnets, 3);
        assert!(tf.contains("aws_vpc_ipv4_cidr_block_association"));
        assert!(tf.contains("resource \"aws_subnet\" \"pods_eu_west_1c\""));
        let yaml = eniconfigs(&l, &["sg-1".into()]);
        assert_eq!(yaml.matches("kind: ENIConfig").count(), 3);
        assert!(yaml.contains("    - sg-1"));
        assert!(yaml.contains("ENI_CONFIG_LABEL_DEF=topology.kubernetes.io/zone"));
    }

    #[test]
    fn the_eniconfigs_are_objects_of_the_crd_ipamd_reads() {
        let l = plan(&cluster(30), &req("100.65.0.0/16", 0.1)).unwrap();
        let yaml = eniconfigs(&l, &["sg-0a1b2c3d".into()]);
        let objects: Vec<eniplan_crd::ENIConfig> = serde_norway::Deserializer::from_str(&yaml)
            .map(|doc| <serde_json::Value as serde::Deserialize>::deserialize(doc).unwrap())
            .filter(|doc| !doc.is_null()) // the heading comments
            .map(|doc| serde_json::from_value(doc).unwrap_or_else(|e| panic!("{e}\n{yaml}")))
            .collect();
        let names: Vec<&str> = objects.iter().map(eniplan_crd::ENIConfig::name).collect();
        let azs: Vec<&str> = l.subnets.iter().map(|s| s.az.as_str()).collect();
        assert_eq!(names, azs);
        for (object, subnet) in objects.iter().zip(&l.subnets) {
            assert_eq!(object.spec.security_groups, vec!["sg-0a1b2c3d"]);
            // The subnet is a placeholder until the subnet exists; with its id filled in, as the
            // header asks, the object passes ipamd's checks.
            assert!(
                object
                    .spec
                    .subnet
                    .ends_with(&subnet.cidr.to_string().replace(['.', '/'], "-"))
            );
            let mut filled = object.clone();
            filled.spec.subnet = "subnet-0123456789abcdef0".into();
            assert_eq!(filled.validate(), Ok(()));
        }
    }
}
