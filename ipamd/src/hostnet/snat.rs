//! SNAT and connmark on the primary ENI, as the VPC CNI lays them out (so `iptables -t nat -S`
//! reads the same on an eniplan node):
//!
//! * `nat/AWS-SNAT-CHAIN-0`, jumped to from `POSTROUTING`: traffic to the VPC's CIDRs and to
//!   `AWS_VPC_K8S_CNI_EXCLUDE_SNAT_CIDRS` returns; everything else not leaving through a VLAN
//!   link (branch pods) and not to a local address is SNATed to the node's primary address
//!   (`--random-fully` for `prng`, `--random` for `hashrandom`).
//! * `nat/AWS-CONNMARK-CHAIN-0`, jumped to from `PREROUTING` for traffic from the pods' host
//!   ends: connections to outside the VPC get the connmark bit, and `PREROUTING` copies it to the
//!   packet mark, so rule 1024 sends them out of the primary ENI even from a secondary-ENI pod
//!   (whose replies come back to the SNAT address on the primary).
//! * with `AWS_VPC_CNI_NODE_PORT_SUPPORT`, `mangle/PREROUTING`: connections that reach the node's
//!   own addresses through the primary ENI (NodePorts) get the bit, and packets from the pods get
//!   it back, so replies leave through the primary ENI too.
//!
//! With `AWS_VPC_K8S_CNI_EXTERNALSNAT=true` the two nat chains and their jumps are removed.

use std::net::Ipv4Addr;

use ipnetwork::Ipv4Network;

use super::iptables::{Iptables, Rule, rule};
use super::{HostConfig, RandomizeSnat};
use crate::error::Result;

/// The SNAT chain (nat table).
pub const SNAT_CHAIN: &str = "AWS-SNAT-CHAIN-0";
/// The outbound-connection mark chain (nat table).
pub const CONNMARK_CHAIN: &str = "AWS-CONNMARK-CHAIN-0";

/// What the primary ENI's rules are made from.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The primary ENI's link name.
    pub primary_link: String,
    /// The node's primary address (the SNAT source).
    pub primary_ip: Ipv4Addr,
    /// The VPC's IPv4 CIDRs.
    pub vpc_cidrs: Vec<Ipv4Network>,
    /// The settings.
    pub config: HostConfig,
    /// The iptables backend the node uses.
    pub iptables: Iptables,
}

/// One `-d CIDR -j RETURN` rule per CIDR, with the VPC CNI's comment.
fn returns(cidrs: &[Ipv4Network], comment: &str) -> Vec<Rule> {
    cidrs
        .iter()
        .map(|c| {
            let c = c.to_string();
            rule(&[
                "-d",
                &c,
                "-m",
                "comment",
                "--comment",
                comment,
                "-j",
                "RETURN",
            ])
        })
        .collect()
}

impl Plan {
    fn mark(&self) -> String {
        format!("{:#x}/{:#x}", self.config.connmark, self.config.connmark)
    }

    fn pods(&self) -> String {
        format!("{}+", self.config.veth_prefix)
    }

    /// `AWS-SNAT-CHAIN-0`'s rules, in order.
    pub fn snat_rules(&self) -> Vec<Rule> {
        let mut rules = returns(&self.vpc_cidrs, "AWS SNAT CHAIN");
        rules.extend(returns(
            &self.config.exclude_snat_cidrs,
            "AWS SNAT CHAIN EXCLUSION",
        ));
        let ip = self.primary_ip.to_string();
        let mut last = rule(&[
            "!",
            "-o",
            "vlan+",
            "-m",
            "comment",
            "--comment",
            "AWS, SNAT",
            "-m",
            "addrtype",
            "!",
            "--dst-type",
            "LOCAL",
            "-j",
            "SNAT",
            "--to-source",
            &ip,
        ]);
        match self.config.randomize_snat {
            RandomizeSnat::Prng => last.push("--random-fully".into()),
            RandomizeSnat::HashRandom => last.push("--random".into()),
            RandomizeSnat::None => {}
        }
        rules.push(last);
        rules
    }

    /// `AWS-CONNMARK-CHAIN-0`'s rules, in order.
    pub fn connmark_rules(&self) -> Vec<Rule> {
        let cidrs: Vec<Ipv4Network> = self
            .vpc_cidrs
            .iter()
            .chain(&self.config.exclude_snat_cidrs)
            .copied()
            .collect();
        let mut rules = returns(&cidrs, "AWS CONNMARK CHAIN, VPC CIDR");
        let mark = self.mark();
        rules.push(rule(&[
            "-m",
            "comment",
            "--comment",
            "AWS, CONNMARK",
            "-j",
            "CONNMARK",
            "--set-xmark",
            &mark,
        ]));
        rules
    }

    /// The nat jumps into the chains and the mark restore: (chain, rule).
    pub fn nat_hooks(&self) -> Vec<(&'static str, Rule)> {
        let mask = format!("{:#x}", self.config.connmark);
        vec![
            (
                "POSTROUTING",
                rule(&[
                    "-m",
                    "comment",
                    "--comment",
                    "AWS SNAT CHAIN",
                    "-j",
                    SNAT_CHAIN,
                ]),
            ),
            (
                "PREROUTING",
                rule(&[
                    "-i",
                    &self.pods(),
                    "-m",
                    "comment",
                    "--comment",
                    "AWS, outbound connections",
                    "-j",
                    CONNMARK_CHAIN,
                ]),
            ),
            (
                "PREROUTING",
                rule(&[
                    "-m",
                    "comment",
                    "--comment",
                    "AWS, CONNMARK",
                    "-j",
                    "CONNMARK",
                    "--restore-mark",
                    "--mask",
                    &mask,
                ]),
            ),
        ]
    }

    /// The NodePort rules of `mangle/PREROUTING`.
    pub fn node_port_rules(&self) -> Vec<Rule> {
        let set = self.mark();
        let restore = format!("{:#x}", self.config.connmark);
        vec![
            rule(&[
                "-i",
                &self.primary_link,
                "-m",
                "comment",
                "--comment",
                "AWS, primary ENI",
                "-m",
                "addrtype",
                "--dst-type",
                "LOCAL",
                "--limit-iface-in",
                "-j",
                "CONNMARK",
                "--set-xmark",
                &set,
            ]),
            rule(&[
                "-i",
                &self.pods(),
                "-m",
                "comment",
                "--comment",
                "AWS, primary ENI",
                "-j",
                "CONNMARK",
                "--restore-mark",
                "--mask",
                &restore,
            ]),
        ]
    }
}

/// Writes what `plan` asks for and removes what it no longer does; unchanged rules are not
/// touched.
///
/// # Errors
/// [`crate::Error::HostNetwork`] with iptables' message.
pub async fn apply(plan: &Plan) -> Result<()> {
    let iptables = &plan.iptables;
    if plan.config.external_snat {
        for (chain, r) in plan.nat_hooks() {
            iptables.remove("nat", chain, &r).await?;
        }
        iptables.remove_chain("nat", SNAT_CHAIN).await?;
        iptables.remove_chain("nat", CONNMARK_CHAIN).await?;
    } else {
        let snat = iptables
            .set_chain("nat", SNAT_CHAIN, &plan.snat_rules())
            .await?;
        let mark = iptables
            .set_chain("nat", CONNMARK_CHAIN, &plan.connmark_rules())
            .await?;
        let mut hooks = false;
        for (chain, r) in plan.nat_hooks() {
            hooks |= iptables.ensure("nat", chain, &r).await?;
        }
        tracing::info!(
            changed = snat || mark || hooks,
            "SNAT to {} outside {:?}",
            plan.primary_ip,
            plan.vpc_cidrs
        );
    }
    for r in plan.node_port_rules() {
        if plan.config.node_port_support {
            iptables.ensure("mangle", "PREROUTING", &r).await?;
        } else {
            iptables.remove("mangle", "PREROUTING", &r).await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(randomize: RandomizeSnat) -> Plan {
        Plan {
            primary_link: "eth0".into(),
            primary_ip: "10.0.0.10".parse().unwrap(),
            vpc_cidrs: vec!["10.0.0.0/16".parse().unwrap()],
            config: HostConfig {
                eni_mtu: 9001,
                veth_prefix: "eni".into(),
                external_snat: false,
                exclude_snat_cidrs: vec!["192.168.0.0/16".parse().unwrap()],
                randomize_snat: randomize,
                node_port_support: true,
                connmark: 0x80,
                iptables_mode: crate::hostnet::iptables::Mode::Auto,
                local_rule_after_vlans: false,
            },
            iptables: Iptables::NFT,
        }
    }

    #[test]
    fn snat_returns_for_the_vpc_and_exclusions_then_snats_to_the_node() {
        let rules = plan(RandomizeSnat::Prng).snat_rules();
        assert_eq!(rules.len(), 3);
        assert_eq!(rules[0][..2], ["-d", "10.0.0.0/16"]);
        assert_eq!(rules[1][..2], ["-d", "192.168.0.0/16"]);
        let last = rules[2].join(" ");
        assert!(
            last.ends_with("-j SNAT --to-source 10.0.0.10 --random-fully"),
            "{last}"
        );
        assert!(last.starts_with("! -o vlan+"), "{last}");
        let hash = plan(RandomizeSnat::HashRandom).snat_rules();
        assert!(hash[2].join(" ").ends_with("10.0.0.10 --random"));
        let none = plan(RandomizeSnat::None).snat_rules();
        assert!(none[2].join(" ").ends_with("--to-source 10.0.0.10"));
    }

    #[test]
    fn connmark_marks_what_leaves_the_vpc_from_the_pods() {
        let p = plan(RandomizeSnat::Prng);
        let rules = p.connmark_rules();
        assert_eq!(rules.len(), 3, "the VPC, the exclusion, the mark");
        assert!(rules[2].join(" ").ends_with("--set-xmark 0x80/0x80"));
        let hooks = p.nat_hooks();
        assert_eq!(hooks[1].1[..2], ["-i", "eni+"]);
        assert!(p.node_port_rules()[0].starts_with(&["-i".to_owned(), "eth0".to_owned()]));
    }
}
