//! The ADD result, rendered in the requested version, and read back from `prevResult` (DEL,
//! CHECK) whatever version wrote it.

use std::net::Ipv4Addr;

use ipnetwork::Ipv4Network;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::error::{Code, Error};
use super::version::Version;

/// An interface the plugin created or configured.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interface {
    /// Its name.
    pub name: String,
    /// Its MAC address (`aa:bb:...`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub mac: String,
    /// The network namespace it is in; empty for the host's.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sandbox: String,
    /// Its MTU (1.1.0 results only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
}

/// An address given to the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpConfig {
    /// The address with its prefix length (`/32` for a pod).
    pub address: Ipv4Network,
    /// The gateway, when there is one to name.
    pub gateway: Option<Ipv4Addr>,
    /// The index in `interfaces` of the interface holding it.
    pub interface: Option<usize>,
}

/// A route in the container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    /// Destination.
    pub dst: Ipv4Network,
    /// Next hop, when not on-link.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gw: Option<Ipv4Addr>,
}

/// An ADD result.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CniResult {
    /// Interfaces, host side first.
    pub interfaces: Vec<Interface>,
    /// Addresses.
    pub ips: Vec<IpConfig>,
    /// Routes.
    pub routes: Vec<Route>,
}

#[derive(Serialize, Deserialize)]
struct WireIp {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    version: Option<String>,
    address: Ipv4Network,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gateway: Option<Ipv4Addr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    interface: Option<usize>,
}

#[derive(Serialize, Deserialize)]
struct Wire {
    #[serde(
        rename = "cniVersion",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    cni_version: String,
    #[serde(default)]
    interfaces: Vec<Interface>,
    #[serde(default)]
    ips: Vec<WireIp>,
    #[serde(default)]
    routes: Vec<Route>,
    #[serde(default)]
    dns: Value,
}

impl CniResult {
    /// The result as JSON in `version`: `ips[].version` before 1.0.0, interface MTUs from 1.1.0.
    pub fn to_json(&self, version: Version) -> Value {
        let wire = Wire {
            cni_version: version.as_str().to_owned(),
            interfaces: self
                .interfaces
                .iter()
                .map(|i| Interface {
                    mtu: i.mtu.filter(|_| version >= Version::V1_1_0),
                    ..i.clone()
                })
                .collect(),
            ips: self
                .ips
                .iter()
                .map(|ip| WireIp {
                    version: version.ip_version_field().then(|| "4".to_owned()),
                    address: ip.address,
                    gateway: ip.gateway,
                    interface: ip.interface,
                })
                .collect(),
            routes: self.routes.clone(),
            dns: serde_json::json!({}),
        };
        serde_json::to_value(wire).expect("a result serialises")
    }

    /// Reads a `prevResult` of any spoken version (IPv6 entries are skipped: eniplan's pods
    /// are IPv4).
    ///
    /// # Errors
    /// Code 7 when it is not a result.
    pub fn from_prev(prev: &Value) -> Result<CniResult, Error> {
        let mut v = prev.clone();
        if let Some(ips) = v.get_mut("ips").and_then(Value::as_array_mut) {
            ips.retain(|ip| {
                ip.get("address")
                    .and_then(Value::as_str)
                    .is_some_and(|a| a.parse::<Ipv4Network>().is_ok())
            });
        }
        let wire: Wire = serde_json::from_value(v).map_err(|e| {
            Error::new(
                Code::InvalidConfig,
                format!("prevResult is not a CNI result: {e}"),
            )
        })?;
        Ok(CniResult {
            interfaces: wire.interfaces,
            ips: wire
                .ips
                .into_iter()
                .map(|ip| IpConfig {
                    address: ip.address,
                    gateway: ip.gateway,
                    interface: ip.interface,
                })
                .collect(),
            routes: wire.routes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> CniResult {
        CniResult {
            interfaces: vec![
                Interface {
                    name: "eni1a2b3c4d5e6".into(),
                    mac: "0a:58:0a:00:00:01".into(),
                    sandbox: String::new(),
                    mtu: Some(9001),
                },
                Interface {
                    name: "eth0".into(),
                    mac: "0a:58:0a:00:00:02".into(),
                    sandbox: "/var/run/netns/p".into(),
                    mtu: Some(9001),
                },
            ],
            ips: vec![IpConfig {
                address: "10.0.3.7/32".parse().unwrap(),
                gateway: None,
                interface: Some(1),
            }],
            routes: vec![Route {
                dst: "0.0.0.0/0".parse().unwrap(),
                gw: Some("169.254.1.1".parse().unwrap()),
            }],
        }
    }

    #[test]
    fn rendered_per_version() {
        let old = sample().to_json(Version::V0_4_0);
        assert_eq!(old["cniVersion"], "0.4.0");
        assert_eq!(old["ips"][0]["version"], "4");
        assert!(old["interfaces"][0].get("mtu").is_none());
        assert_eq!(old["interfaces"][1]["sandbox"], "/var/run/netns/p");
        assert!(old["interfaces"][0].get("sandbox").is_none());
        let new = sample().to_json(Version::V1_1_0);
        assert!(new["ips"][0].get("version").is_none());
        assert_eq!(new["interfaces"][0]["mtu"], 9001);
        assert_eq!(new["routes"][0]["gw"], "169.254.1.1");
        assert!(
            sample().to_json(Version::V1_0_0)["interfaces"][0]
                .get("mtu")
                .is_none()
        );
    }

    #[test]
    fn every_version_reads_back_and_ipv6_is_skipped() {
        for v in super::super::version::SUPPORTED {
            let mut json = sample().to_json(v);
            json["ips"]
                .as_array_mut()
                .unwrap()
                .push(serde_json::json!({"address": "fd00::1/128", "interface": 1}));
            let back = CniResult::from_prev(&json).unwrap();
            assert_eq!(back.ips, sample().ips, "{v}");
            assert_eq!(back.interfaces.len(), 2);
        }
        let e = CniResult::from_prev(&serde_json::json!({"ips": "x"})).unwrap_err();
        assert_eq!(e.code, Code::InvalidConfig);
    }
}
