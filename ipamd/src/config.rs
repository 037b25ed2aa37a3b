//! Configuration, parsed once from the environment (the AWS VPC CNI's variable names) into a
//! validated [`Config`]. Nothing else in the daemon reads the environment. Every variable is
//! listed in `docs/configuration.md`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use planner::catalogue::InstanceLimits;
use planner::max_pods::{self, Options};
use planner::pool::PoolConfig;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::hostnet::{HostConfig, RandomizeSnat};

/// Where a server listens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Bind {
    /// A TCP address.
    Tcp(SocketAddr),
    /// A Unix socket path (`unix:/path`).
    Unix(PathBuf),
}

/// The daemon's validated settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Config {
    /// The pool engine's settings (WARM_*, MINIMUM_IP_TARGET, prefix delegation, …).
    pub pool: PoolConfig,
    /// `ENIPLAN_MAX_PODS`: the kubelet's max pods, when known (else the catalogue's value:
    /// see [`Config::pool_for`]).
    pub max_pods: Option<u32>,
    /// `ENIPLAN_STATE_DIR` (default `/var/run/aws-node`): socket and checkpoint.
    pub state_dir: PathBuf,
    /// `AWS_VPC_K8S_CNI_BACKING_STORE` (default `<state dir>/ipam.json`).
    pub checkpoint: PathBuf,
    /// `INTROSPECTION_BIND_ADDRESS` (default `127.0.0.1:61679`); `None` if disabled.
    pub introspection: Option<Bind>,
    /// `ENIPLAN_METRICS_BIND_ADDRESS` (default `127.0.0.1:61678`); `None` if `DISABLE_METRICS`.
    pub metrics: Option<SocketAddr>,
    /// `AWS_EC2_ENDPOINT`.
    pub ec2_endpoint: Option<String>,
    /// `ENIPLAN_IMDS_ENDPOINT`.
    pub imds_endpoint: Option<String>,
    /// `AWS_REGION` / `AWS_DEFAULT_REGION` (else IMDS).
    pub region: Option<String>,
    /// `CLUSTER_NAME`.
    pub cluster_name: Option<String>,
    /// `ADDITIONAL_ENI_TAGS` (keys containing `k8s.amazonaws.com` dropped).
    pub additional_tags: BTreeMap<String, String>,
    /// `MANAGE_UNTAGGED_ENI`.
    pub manage_untagged_enis: bool,
    /// `DISABLE_LEAKED_ENI_CLEANUP`.
    pub leaked_eni_cleanup: bool,
    /// `ENIPLAN_LEAK_SWEEP_INTERVAL_SECS` (default 3600): how often leaked ENIs are swept.
    pub leak_sweep_interval: Duration,
    /// `ENIPLAN_LEAK_MIN_AGE_SECS` (default 300): an unattached ENI younger than this is kept.
    pub leak_min_age: Duration,
    /// `AWS_VPC_K8S_CNI_EXTERNALSNAT` (echoed to the plugin).
    pub external_snat: bool,
    /// `NETWORK_POLICY_ENFORCING_MODE` (echoed to the plugin).
    pub network_policy_mode: String,
    /// `MY_NODE_NAME`: this node's name in the Kubernetes API; unset, ipamd runs without it.
    pub node_name: Option<String>,
    /// `ENI_CONFIG_ANNOTATION_DEF` (default `k8s.amazonaws.com/eniConfig`).
    pub eni_config_annotation: String,
    /// `ENI_CONFIG_LABEL_DEF` (default `k8s.amazonaws.com/eniConfig`).
    pub eni_config_label: String,
    /// `ENIPLAN_POD_RELEASE_GRACE_SECS` (default 60): an address whose pod the API no longer
    /// lists is released after this long.
    pub pod_release_grace: Duration,
    /// `VPC_CNI_VERSION` / the build version: the gRPC `ClientVersion` accepted besides "".
    pub version: String,
    /// `ENIPLAN_TICK_INTERVAL_MS` (default 5000): how often the pool is evaluated.
    pub tick: Duration,
    /// `ENIPLAN_RECONCILE_INTERVAL_SECS` (default 60): how often IMDS/EC2 are compared.
    pub reconcile: Duration,
    /// `HTTP_TIMEOUT` (default 10 s, at least 10): per-attempt EC2 timeout.
    pub http_timeout: Duration,
    /// `AWS_VPC_K8S_CNI_LOGLEVEL`.
    pub log_level: String,
    /// The node's host networking; `None` with `ENIPLAN_HOST_NETWORKING=false` (ipamd off a
    /// node: a laptop against a test endpoint, the tests that run it in the host's namespace).
    pub host: Option<HostConfig>,
}

/// Every variable the daemon reads besides the pool engine's (`planner::pool::VARIABLES`). The
/// test `docs_list_every_variable` checks that [`Config::from_vars`] reads no other and that
/// `docs/configuration.md` has a table row for each.
pub const DAEMON_VARIABLES: &[&str] = &[
    "ENABLE_IPv4",
    "ENABLE_IPv6",
    "ENABLE_MULTI_NIC",
    "ENIPLAN_MAX_PODS",
    "ENIPLAN_STATE_DIR",
    "AWS_VPC_K8S_CNI_BACKING_STORE",
    "INTROSPECTION_BIND_ADDRESS",
    "DISABLE_INTROSPECTION",
    "ENIPLAN_METRICS_BIND_ADDRESS",
    "DISABLE_METRICS",
    "AWS_EC2_ENDPOINT",
    "ENIPLAN_IMDS_ENDPOINT",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "CLUSTER_NAME",
    "ADDITIONAL_ENI_TAGS",
    "MANAGE_UNTAGGED_ENI",
    "DISABLE_LEAKED_ENI_CLEANUP",
    "ENIPLAN_LEAK_SWEEP_INTERVAL_SECS",
    "ENIPLAN_LEAK_MIN_AGE_SECS",
    "AWS_VPC_K8S_CNI_EXTERNALSNAT",
    "NETWORK_POLICY_ENFORCING_MODE",
    "MY_NODE_NAME",
    "ENI_CONFIG_ANNOTATION_DEF",
    "ENI_CONFIG_LABEL_DEF",
    "ENIPLAN_POD_RELEASE_GRACE_SECS",
    "VPC_CNI_VERSION",
    "ENIPLAN_TICK_INTERVAL_MS",
    "ENIPLAN_RECONCILE_INTERVAL_SECS",
    "HTTP_TIMEOUT",
    "AWS_VPC_K8S_CNI_LOGLEVEL",
    "ENIPLAN_HOST_NETWORKING",
    "AWS_VPC_ENI_MTU",
    "AWS_VPC_K8S_CNI_VETHPREFIX",
    "AWS_VPC_K8S_CNI_EXCLUDE_SNAT_CIDRS",
    "AWS_VPC_K8S_CNI_RANDOMIZESNAT",
    "AWS_VPC_CNI_NODE_PORT_SUPPORT",
    "AWS_VPC_K8S_CNI_CONNMARK",
    "ENIPLAN_IPTABLES_MODE",
    "POD_SECURITY_GROUP_ENFORCING_MODE",
];

fn invalid(name: &str, value: &str, expected: &str) -> Error {
    Error::Config {
        name: name.to_owned(),
        value: value.to_owned(),
        expected: expected.to_owned(),
    }
}

fn parse_bool(name: &str, value: &str) -> Result<bool> {
    planner::pool::parse_bool(name, value).map_err(|_| {
        invalid(
            name,
            value,
            "true or false (also 1/0, t/f, TRUE/FALSE, True/False)",
        )
    })
}

fn parse_bind(name: &str, value: &str) -> Result<Bind> {
    if let Some(path) = value.strip_prefix("unix:") {
        if path.is_empty() {
            return Err(invalid(name, value, "host:port or unix:/path"));
        }
        return Ok(Bind::Unix(PathBuf::from(path)));
    }
    parse_addr(name, value).map(Bind::Tcp)
}

/// `host:port`, with `:port` meaning every interface.
fn parse_addr(name: &str, value: &str) -> Result<SocketAddr> {
    let full = if value.starts_with(':') {
        format!("0.0.0.0{value}")
    } else {
        value.to_owned()
    };
    full.parse()
        .map_err(|_| invalid(name, value, "host:port (e.g. 127.0.0.1:61679) or :port"))
}

impl Config {
    /// The engine's settings for this node: [`Config::pool`] with max pods resolved — the one
    /// value parsing cannot know, because it depends on the instance type IMDS reports:
    /// `ENIPLAN_MAX_PODS` when set, else the type's ENI-limited max pods from the catalogue.
    pub fn pool_for(&self, limits: &InstanceLimits) -> PoolConfig {
        PoolConfig {
            max_pods: self
                .max_pods
                .unwrap_or_else(|| max_pods::max_pods(limits, &Options::default()).max_pods),
            ..self.pool.clone()
        }
    }

    /// Parses the variables (the process environment, or a test's map).
    #[expect(
        clippy::too_many_lines,
        reason = "the one place that reads every variable, in order"
    )]
    pub fn from_vars(vars: &BTreeMap<String, String>) -> Result<Config> {
        let get = |k: &str| vars.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
        let flag = |k: &str, default: bool| get(k).map_or(Ok(default), |v| parse_bool(k, v));
        let number = |k: &str| -> Result<Option<u64>> {
            get(k)
                .map(|v| {
                    v.parse::<u64>()
                        .map_err(|_| invalid(k, v, "a whole number"))
                })
                .transpose()
        };

        // The reference refuses to start when ENABLE_IPv4 is missing; eniplan takes the
        // documented default (true).
        let ipv4 = flag("ENABLE_IPv4", true)?;
        let ipv6 = flag("ENABLE_IPv6", false)?;
        if ipv6 || !ipv4 {
            return Err(invalid(
                if ipv6 { "ENABLE_IPv6" } else { "ENABLE_IPv4" },
                get(if ipv6 { "ENABLE_IPv6" } else { "ENABLE_IPv4" }).unwrap_or(""),
                "IPv4 only (ENABLE_IPv4=true, ENABLE_IPv6=false): eniplan does not manage IPv6 prefixes yet",
            ));
        }
        if flag("ENABLE_MULTI_NIC", false)? {
            return Err(invalid(
                "ENABLE_MULTI_NIC",
                get("ENABLE_MULTI_NIC").unwrap_or(""),
                "false: eniplan manages the default network card only",
            ));
        }

        let pool = PoolConfig::from_vars(vars)?;
        let max_pods = number("ENIPLAN_MAX_PODS")?
            .map(|n| {
                u32::try_from(n)
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| invalid("ENIPLAN_MAX_PODS", &n.to_string(), "a positive number"))
            })
            .transpose()?;
        let state_dir = PathBuf::from(get("ENIPLAN_STATE_DIR").unwrap_or("/var/run/aws-node"));
        let checkpoint = get("AWS_VPC_K8S_CNI_BACKING_STORE")
            .map_or_else(|| state_dir.join("ipam.json"), PathBuf::from);
        let introspection = if flag("DISABLE_INTROSPECTION", false)? {
            None
        } else {
            Some(parse_bind(
                "INTROSPECTION_BIND_ADDRESS",
                get("INTROSPECTION_BIND_ADDRESS").unwrap_or("127.0.0.1:61679"),
            )?)
        };
        let metrics = if flag("DISABLE_METRICS", false)? {
            None
        } else {
            Some(parse_addr(
                "ENIPLAN_METRICS_BIND_ADDRESS",
                get("ENIPLAN_METRICS_BIND_ADDRESS").unwrap_or("127.0.0.1:61678"),
            )?)
        };
        let additional_tags = match get("ADDITIONAL_ENI_TAGS") {
            None => BTreeMap::new(),
            Some(v) => {
                let map: BTreeMap<String, String> = serde_json::from_str(v).map_err(|e| {
                    invalid(
                        "ADDITIONAL_ENI_TAGS",
                        v,
                        &format!("a JSON object of string tags ({e})"),
                    )
                })?;
                map.into_iter()
                    .filter(|(k, _)| !k.contains("k8s.amazonaws.com"))
                    .collect()
            }
        };
        let network_policy_mode = get("NETWORK_POLICY_ENFORCING_MODE")
            .unwrap_or("")
            .to_ascii_lowercase();
        if !["", "none", "strict", "standard"].contains(&network_policy_mode.as_str()) {
            return Err(invalid(
                "NETWORK_POLICY_ENFORCING_MODE",
                &network_policy_mode,
                "none, strict or standard",
            ));
        }
        let log_level = get("AWS_VPC_K8S_CNI_LOGLEVEL")
            .unwrap_or("info")
            .to_ascii_lowercase();
        if !["debug", "info", "warn", "error", "fatal", "trace"].contains(&log_level.as_str()) {
            return Err(invalid(
                "AWS_VPC_K8S_CNI_LOGLEVEL",
                &log_level,
                "debug, info, warn, error or fatal",
            ));
        }
        let tick = number("ENIPLAN_TICK_INTERVAL_MS")?.unwrap_or(5000);
        if tick == 0 {
            return Err(invalid(
                "ENIPLAN_TICK_INTERVAL_MS",
                "0",
                "a positive number of milliseconds",
            ));
        }
        let node_name = get("MY_NODE_NAME").map(str::to_owned);
        if pool.custom_networking && node_name.is_none() {
            return Err(invalid(
                "MY_NODE_NAME",
                "",
                "the node's name (the DaemonSet sets it from spec.nodeName): custom networking reads the node's ENIConfig from the Kubernetes API",
            ));
        }
        if pool.pod_eni && node_name.is_none() {
            return Err(invalid(
                "MY_NODE_NAME",
                "",
                "the node's name (the DaemonSet sets it from spec.nodeName): ENABLE_POD_ENI tells the VPC resource controller through the node's CNINode and reads branch pods from the Kubernetes API",
            ));
        }
        let eni_config_key = |k: &str| {
            let v = get(k).unwrap_or(eniplan_crd::DEFAULT_ENICONFIG_KEY);
            if v.len() > 316 || v.contains(char::is_whitespace) || v.contains(',') {
                return Err(invalid(
                    k,
                    v,
                    "a label or annotation key such as topology.kubernetes.io/zone",
                ));
            }
            Ok(v.to_owned())
        };
        let eni_config_annotation = eni_config_key("ENI_CONFIG_ANNOTATION_DEF")?;
        let eni_config_label = eni_config_key("ENI_CONFIG_LABEL_DEF")?;
        let external_snat = flag("AWS_VPC_K8S_CNI_EXTERNALSNAT", false)?;
        // Checked whether or not ipamd does the host networking: the plugin reads it too.
        let strict_sg = strict_pod_sg(get("POD_SECURITY_GROUP_ENFORCING_MODE"))?;
        let host = if flag("ENIPLAN_HOST_NETWORKING", true)? {
            Some(
                host_config(
                    get("AWS_VPC_ENI_MTU"),
                    get("AWS_VPC_K8S_CNI_VETHPREFIX"),
                    external_snat,
                    get("AWS_VPC_K8S_CNI_EXCLUDE_SNAT_CIDRS"),
                    get("AWS_VPC_K8S_CNI_RANDOMIZESNAT"),
                    flag("AWS_VPC_CNI_NODE_PORT_SUPPORT", true)?,
                    get("AWS_VPC_K8S_CNI_CONNMARK"),
                )
                .and_then(|h| {
                    Ok(HostConfig {
                        iptables_mode: iptables_mode(get("ENIPLAN_IPTABLES_MODE"))?,
                        local_rule_after_vlans: pool.pod_eni && strict_sg,
                        ..h
                    })
                })?,
            )
        } else {
            None
        };
        Ok(Config {
            pool,
            max_pods,
            state_dir,
            checkpoint,
            introspection,
            metrics,
            ec2_endpoint: get("AWS_EC2_ENDPOINT").map(str::to_owned),
            imds_endpoint: get("ENIPLAN_IMDS_ENDPOINT").map(str::to_owned),
            region: get("AWS_REGION")
                .or(get("AWS_DEFAULT_REGION"))
                .map(str::to_owned),
            cluster_name: get("CLUSTER_NAME").map(str::to_owned),
            additional_tags,
            manage_untagged_enis: flag("MANAGE_UNTAGGED_ENI", true)?,
            leaked_eni_cleanup: !flag("DISABLE_LEAKED_ENI_CLEANUP", false)?,
            leak_sweep_interval: Duration::from_secs(
                number("ENIPLAN_LEAK_SWEEP_INTERVAL_SECS")?
                    .unwrap_or(3600)
                    .max(1),
            ),
            leak_min_age: Duration::from_secs(number("ENIPLAN_LEAK_MIN_AGE_SECS")?.unwrap_or(300)),
            external_snat,
            network_policy_mode,
            node_name,
            eni_config_annotation,
            eni_config_label,
            pod_release_grace: Duration::from_secs(
                number("ENIPLAN_POD_RELEASE_GRACE_SECS")?
                    .unwrap_or(60)
                    .max(1),
            ),
            version: get("VPC_CNI_VERSION")
                .unwrap_or(env!("CARGO_PKG_VERSION"))
                .to_owned(),
            tick: Duration::from_millis(tick),
            reconcile: Duration::from_secs(
                number("ENIPLAN_RECONCILE_INTERVAL_SECS")?
                    .unwrap_or(60)
                    .max(1),
            ),
            http_timeout: Duration::from_secs(number("HTTP_TIMEOUT")?.unwrap_or(10).max(10)),
            log_level,
            host,
        })
    }
}

/// The host networking settings from their variables' values (`from_vars` reads them).
fn host_config(
    mtu: Option<&str>,
    veth_prefix: Option<&str>,
    external_snat: bool,
    exclude: Option<&str>,
    randomize: Option<&str>,
    node_port_support: bool,
    connmark: Option<&str>,
) -> Result<HostConfig> {
    let eni_mtu = match mtu {
        None => 9001,
        Some(v) => v
            .parse::<u32>()
            .ok()
            .filter(|m| (576..=9001).contains(m))
            .ok_or_else(|| invalid("AWS_VPC_ENI_MTU", v, "a number from 576 to 9001"))?,
    };
    let veth_prefix = veth_prefix.unwrap_or("eni").to_owned();
    if veth_prefix.len() > 4
        || !veth_prefix.chars().all(|c| c.is_ascii_alphanumeric())
        || ["eth", "lo", "vlan"].contains(&veth_prefix.as_str())
    {
        return Err(invalid(
            "AWS_VPC_K8S_CNI_VETHPREFIX",
            &veth_prefix,
            "1 to 4 letters or digits, not eth, lo or vlan (the node's own links)",
        ));
    }
    let exclude_snat_cidrs = exclude
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(|c| {
            c.parse::<ipnetwork::Ipv4Network>().map_err(|_| {
                invalid(
                    "AWS_VPC_K8S_CNI_EXCLUDE_SNAT_CIDRS",
                    c,
                    "a comma-separated list of IPv4 CIDRs such as 192.168.0.0/16",
                )
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let randomize_snat = match randomize.map(str::to_ascii_lowercase).as_deref() {
        None | Some("prng") => RandomizeSnat::Prng,
        Some("hashrandom") => RandomizeSnat::HashRandom,
        Some("none") => RandomizeSnat::None,
        Some(other) => {
            return Err(invalid(
                "AWS_VPC_K8S_CNI_RANDOMIZESNAT",
                other,
                "prng, hashrandom or none",
            ));
        }
    };
    let connmark = match connmark {
        None => 0x80,
        Some(v) => {
            let n = v
                .strip_prefix("0x")
                .or_else(|| v.strip_prefix("0X"))
                .map_or_else(|| v.parse::<u32>(), |h| u32::from_str_radix(h, 16));
            n.ok().filter(|n| *n != 0).ok_or_else(|| {
                invalid(
                    "AWS_VPC_K8S_CNI_CONNMARK",
                    v,
                    "a non-zero 32-bit mark, decimal or 0x-hex (default 0x80)",
                )
            })?
        }
    };
    Ok(HostConfig {
        eni_mtu,
        veth_prefix,
        external_snat,
        exclude_snat_cidrs,
        randomize_snat,
        node_port_support,
        connmark,
        iptables_mode: crate::hostnet::iptables::Mode::Auto,
        local_rule_after_vlans: false,
    })
}

/// `POD_SECURITY_GROUP_ENFORCING_MODE`: whether it is `strict` (the default) rather than
/// `standard`.
fn strict_pod_sg(value: Option<&str>) -> Result<bool> {
    match value {
        None | Some("strict") => Ok(true),
        Some("standard") => Ok(false),
        Some(other) => Err(invalid(
            "POD_SECURITY_GROUP_ENFORCING_MODE",
            other,
            "strict or standard (the same value as the CNI plugin's)",
        )),
    }
}

/// `ENIPLAN_IPTABLES_MODE`: `auto` (default), `nft` or `legacy`.
fn iptables_mode(value: Option<&str>) -> Result<crate::hostnet::iptables::Mode> {
    use crate::hostnet::iptables::Mode;
    match value.map(str::to_ascii_lowercase).as_deref() {
        None | Some("auto") => Ok(Mode::Auto),
        Some("nft") => Ok(Mode::Nft),
        Some("legacy") => Ok(Mode::Legacy),
        Some(_) => Err(invalid(
            "ENIPLAN_IPTABLES_MODE",
            value.unwrap_or_default(),
            "auto (the backend the node's rules are in), nft or legacy",
        )),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    /// Variables named in a table row of the document (`| `A`, `B` | … |`).
    fn documented() -> BTreeSet<String> {
        let doc = include_str!("../../docs/configuration.md");
        doc.lines()
            .filter(|l| l.starts_with("| `"))
            .filter_map(|l| l.split('|').nth(1))
            .flat_map(|cell| cell.split('`').skip(1).step_by(2).map(str::to_owned))
            .collect()
    }

    #[test]
    fn docs_list_every_variable() {
        // Every quoted upper-case name that from_vars passes to its readers.
        let src = include_str!("config.rs");
        let body = &src[src.find("pub fn from_vars").unwrap()..src.find("#[cfg(test)]").unwrap()];
        let read: BTreeSet<&str> = ["get(\"", "flag(\"", "number(\""]
            .iter()
            .flat_map(|reader| {
                body.match_indices(reader)
                    .map(move |(i, _)| &body[i + reader.len()..])
            })
            .filter_map(|rest| rest.split('"').next())
            .collect();
        let known: BTreeSet<&str> = DAEMON_VARIABLES
            .iter()
            .copied()
            .chain(planner::pool::VARIABLES.iter().map(|v| v.0))
            .collect();
        assert!(read.len() >= 20, "the readers were not found: {read:?}");
        for v in &read {
            assert!(known.contains(v), "{v} is read but not in DAEMON_VARIABLES");
        }
        let doc = documented();
        for v in &known {
            assert!(doc.contains(*v), "docs/configuration.md has no row for {v}");
        }
    }

    #[test]
    fn max_pods_is_the_override_else_the_instance_types_eni_limited_value() {
        let m5 = planner::catalogue::lookup("m5.large").unwrap();
        let c = Config::from_vars(&BTreeMap::new()).unwrap();
        assert_eq!(c.pool_for(m5).max_pods, 29);
        let c = Config::from_vars(&vars(&[("ENIPLAN_MAX_PODS", "58")])).unwrap();
        assert_eq!(c.pool_for(m5).max_pods, 58);
        assert_eq!(c.pool_for(m5).warm_eni_target, c.pool.warm_eni_target);
    }

    #[test]
    fn defaults() {
        let c = Config::from_vars(&BTreeMap::new()).unwrap();
        assert_eq!(c.state_dir, PathBuf::from("/var/run/aws-node"));
        assert_eq!(c.checkpoint, PathBuf::from("/var/run/aws-node/ipam.json"));
        assert_eq!(
            c.introspection,
            Some(Bind::Tcp("127.0.0.1:61679".parse().unwrap()))
        );
        assert_eq!(c.metrics, Some("127.0.0.1:61678".parse().unwrap()));
        assert_eq!(
            (c.tick, c.reconcile),
            (Duration::from_secs(5), Duration::from_mins(1))
        );
        assert!(c.manage_untagged_enis && c.leaked_eni_cleanup);
        let host = c.host.expect("host networking is on by default");
        assert_eq!(
            (host.eni_mtu, host.veth_prefix.as_str(), host.connmark),
            (9001, "eni", 0x80)
        );
        assert_eq!(host.randomize_snat, RandomizeSnat::Prng);
        assert!(host.node_port_support && !host.external_snat);
    }

    #[test]
    fn host_networking_settings() {
        let c = Config::from_vars(&vars(&[
            ("AWS_VPC_ENI_MTU", "1500"),
            ("AWS_VPC_K8S_CNI_VETHPREFIX", "pod"),
            ("AWS_VPC_K8S_CNI_EXTERNALSNAT", "true"),
            (
                "AWS_VPC_K8S_CNI_EXCLUDE_SNAT_CIDRS",
                "192.168.0.0/16, 172.16.0.0/12",
            ),
            ("AWS_VPC_K8S_CNI_RANDOMIZESNAT", "HashRandom"),
            ("AWS_VPC_CNI_NODE_PORT_SUPPORT", "false"),
            ("AWS_VPC_K8S_CNI_CONNMARK", "0x4000"),
        ]))
        .unwrap();
        let host = c.host.unwrap();
        assert_eq!((host.eni_mtu, host.veth_prefix.as_str()), (1500, "pod"));
        assert!(host.external_snat && !host.node_port_support);
        assert_eq!(host.exclude_snat_cidrs.len(), 2);
        assert_eq!(host.randomize_snat, RandomizeSnat::HashRandom);
        assert_eq!(host.connmark, 0x4000);
        let off = Config::from_vars(&vars(&[("ENIPLAN_HOST_NETWORKING", "false")])).unwrap();
        assert_eq!(off.host, None);
    }

    #[test]
    fn overrides() {
        let c = Config::from_vars(&vars(&[
            ("ENIPLAN_STATE_DIR", "/tmp/x"),
            ("INTROSPECTION_BIND_ADDRESS", "unix:/tmp/x/introspect.sock"),
            ("DISABLE_METRICS", "true"),
            (
                "ADDITIONAL_ENI_TAGS",
                r#"{"team":"net","k8s.amazonaws.com/x":"y"}"#,
            ),
            ("ENIPLAN_MAX_PODS", "58"),
            ("WARM_IP_TARGET", "3"),
        ]))
        .unwrap();
        assert_eq!(c.checkpoint, PathBuf::from("/tmp/x/ipam.json"));
        assert_eq!(
            c.introspection,
            Some(Bind::Unix("/tmp/x/introspect.sock".into()))
        );
        assert_eq!(c.metrics, None);
        assert_eq!(
            c.additional_tags,
            BTreeMap::from([("team".to_owned(), "net".to_owned())])
        );
        assert_eq!((c.max_pods, c.pool.warm_ip_target), (Some(58), 3));
    }

    #[test]
    fn invalid_values_name_the_variable() {
        for (k, v, want) in [
            ("ENABLE_IPv6", "true", "IPv4 only"),
            ("ENABLE_IPv4", "false", "IPv4 only"),
            ("INTROSPECTION_BIND_ADDRESS", "nowhere", "host:port"),
            ("ADDITIONAL_ENI_TAGS", "{nope", "JSON object"),
            (
                "NETWORK_POLICY_ENFORCING_MODE",
                "loose",
                "none, strict or standard",
            ),
            ("WARM_ENI_TARGET", "-1", "whole number"),
            ("ENIPLAN_TICK_INTERVAL_MS", "0", "positive"),
            ("ENABLE_MULTI_NIC", "true", "default network card"),
            ("AWS_VPC_ENI_MTU", "9002", "576 to 9001"),
            ("ENIPLAN_IPTABLES_MODE", "nftables", "auto (the backend"),
            (
                "POD_SECURITY_GROUP_ENFORCING_MODE",
                "loose",
                "strict or standard",
            ),
            ("AWS_VPC_K8S_CNI_VETHPREFIX", "eth", "not eth"),
            (
                "AWS_VPC_K8S_CNI_EXCLUDE_SNAT_CIDRS",
                "10.0.0.0/33",
                "IPv4 CIDRs",
            ),
            (
                "AWS_VPC_K8S_CNI_RANDOMIZESNAT",
                "sometimes",
                "prng, hashrandom",
            ),
            ("AWS_VPC_K8S_CNI_CONNMARK", "0x0", "non-zero"),
            ("ENIPLAN_HOST_NETWORKING", "maybe", "true or false"),
        ] {
            let err = Config::from_vars(&vars(&[(k, v)])).unwrap_err();
            let text = err.to_string();
            assert!(text.contains(k) && text.contains(want), "{text}");
            assert_eq!(err.exit(), crate::Exit::Config);
        }
    }
}
