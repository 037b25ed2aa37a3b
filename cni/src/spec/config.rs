//! The network configuration on stdin: the spec's keys and the plugin's own (the VPC CNI's
//! `aws-cni` names, so its conflists work unchanged).

use serde::Deserialize;
use serde_json::Value;

use super::error::{Code, Error};
use super::version::Version;

/// The most stdin the plugin reads: a network configuration is a few KiB; more is refused
/// (code 6) rather than buffered.
pub const MAX_STDIN: usize = 1024 * 1024;

/// The pod MTU range accepted: IPv4's minimum to the VPC's jumbo frames.
const MTU_RANGE: std::ops::RangeInclusive<u32> = 576..=9001;

/// How branch-ENI pods (security groups for pods) are isolated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SgMode {
    /// Pod traffic only through the branch ENI (`strict`, the default).
    Strict,
    /// Pod traffic may use the node's routes (`standard`).
    Standard,
}

/// The plugin log's level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    /// Everything.
    Debug,
    /// Requests and results.
    Info,
    /// Problems that did not fail the request.
    Warn,
    /// Failures only.
    Error,
}

/// One attachment a runtime says is still in use (GC's `cni.dev/valid-attachments`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Attachment {
    /// The container.
    #[serde(rename = "containerID")]
    pub container_id: String,
    /// Its interface.
    pub ifname: String,
}

/// Where branch-ENI pods' attachments are recorded unless `stateDir` says otherwise.
pub const DEFAULT_STATE_DIR: &str = "/run/eniplan-cni";

/// The validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct NetConf {
    /// `cniVersion`.
    pub version: Version,
    /// `name`: the network's name (part of the allocation key).
    pub name: String,
    /// `type`: the plugin's name.
    pub kind: String,
    /// `vethPrefix` (default `eni`): the host veth's name prefix, at most 4 characters.
    pub veth_prefix: String,
    /// `mtu` (string or number, default 9001): the pod interface's MTU.
    pub mtu: u32,
    /// `podSGEnforcingMode` (default `strict`).
    pub sg_mode: SgMode,
    /// `pluginLogFile` (default `/var/log/aws-routed-eni/plugin.log`; `stdout` is refused: stdout
    /// carries the result).
    pub log_file: String,
    /// `pluginLogLevel` (default `Debug`, as the VPC CNI's).
    pub log_level: LogLevel,
    /// `prevResult`, as sent (chained plugins, DEL, CHECK).
    pub prev_result: Option<Value>,
    /// `runtimeConfig["io.kubernetes.cri.pod-annotations"]`.
    pub pod_annotations: serde_json::Map<String, Value>,
    /// GC: `cni.dev/valid-attachments` (or the older `cni.dev/attachments`).
    pub valid_attachments: Option<Vec<Attachment>>,
    /// `ipamdSocket` (eniplan's own key; default `/var/run/aws-node/ipamd.sock`): where ipamd
    /// listens.
    pub ipamd_socket: String,
    /// `stateDir` (eniplan's own key; default `/run/eniplan-cni`): where the branch-ENI pods'
    /// attachments are recorded for GC (tmpfs: they end with the node's boot, as the pods do).
    pub state_dir: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Wire {
    cni_version: Option<String>,
    name: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    veth_prefix: Option<String>,
    mtu: Option<Value>,
    #[serde(rename = "podSGEnforcingMode")]
    pod_sg_enforcing_mode: Option<String>,
    plugin_log_file: Option<String>,
    plugin_log_level: Option<String>,
    prev_result: Option<Value>,
    runtime_config: Option<Value>,
    #[serde(rename = "cni.dev/valid-attachments")]
    valid_attachments: Option<Vec<Attachment>>,
    #[serde(rename = "cni.dev/attachments")]
    attachments: Option<Vec<Attachment>>,
    ipamd_socket: Option<String>,
    state_dir: Option<String>,
}

impl NetConf {
    /// Reads stdin's bytes.
    ///
    /// # Errors
    /// Code 6 for bytes that are not a JSON object (or are over [`MAX_STDIN`]), 1 for an
    /// unsupported `cniVersion`, 7 for an invalid value (naming the key and the value).
    pub fn parse(stdin: &[u8]) -> Result<NetConf, Error> {
        if stdin.len() > MAX_STDIN {
            return Err(Error::new(
                Code::Decode,
                format!("the network configuration is {} bytes", stdin.len()),
            )
            .details(format!("at most {MAX_STDIN} bytes are read")));
        }
        // Whole-document JSON first: deserialising straight into `Wire` would skip unknown
        // keys without checking their strings (invalid UTF-8, lone surrogates), accepting
        // stdin that is not JSON (found by the fuzz target `cni_config`).
        let value: Value = serde_json::from_slice(stdin).map_err(|e| {
            Error::new(
                Code::Decode,
                format!("the network configuration on stdin is not valid JSON: {e}"),
            )
        })?;
        let wire = Wire::deserialize(&value).map_err(|e| {
            Error::new(
                Code::Decode,
                format!("the network configuration on stdin has a value of the wrong type: {e}"),
            )
        })?;
        let version_text = wire
            .cni_version
            .as_deref()
            .ok_or_else(|| Error::new(Code::InvalidConfig, "cniVersion is missing"))?;
        let version = Version::parse(version_text)?;
        let name = network_name(wire.name.as_deref())?;
        let veth_prefix = veth_prefix(wire.veth_prefix.as_deref())?;
        let mtu = mtu(wire.mtu.as_ref())?;
        let sg_mode = match wire.pod_sg_enforcing_mode.as_deref() {
            None | Some("strict") => SgMode::Strict,
            Some("standard") => SgMode::Standard,
            Some(other) => return Err(invalid("podSGEnforcingMode", other, "strict or standard")),
        };
        let log_file = wire
            .plugin_log_file
            .clone()
            .unwrap_or_else(|| "/var/log/aws-routed-eni/plugin.log".to_owned());
        if log_file == "stdout" || log_file.is_empty() {
            return Err(invalid(
                "pluginLogFile",
                &log_file,
                "a file path or stderr (stdout carries the result)",
            ));
        }
        let log_level = log_level(wire.plugin_log_level.as_deref())?;
        let pod_annotations = wire
            .runtime_config
            .as_ref()
            .and_then(|r| r.get("io.kubernetes.cri.pod-annotations"))
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        Ok(NetConf {
            version,
            name,
            kind: wire.kind.unwrap_or_default(),
            veth_prefix,
            mtu,
            sg_mode,
            log_file,
            log_level,
            prev_result: wire.prev_result.filter(|v| !v.is_null()),
            pod_annotations,
            valid_attachments: wire.valid_attachments.or(wire.attachments),
            ipamd_socket: wire
                .ipamd_socket
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| eniplan_rpc::DEFAULT_SOCKET.to_owned()),
            state_dir: wire
                .state_dir
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| DEFAULT_STATE_DIR.to_owned()),
        })
    }

    /// The version of an error printed before the configuration could be read fully: the
    /// `cniVersion` if stdin had a supported one, else the latest.
    pub fn version_of(stdin: &[u8]) -> Version {
        serde_json::from_slice::<Value>(stdin)
            .ok()
            .and_then(|v| v.get("cniVersion")?.as_str().map(Version::parse))
            .and_then(Result::ok)
            .unwrap_or(Version::LATEST)
    }
}

fn invalid(key: &str, value: &str, expected: &str) -> Error {
    Error::new(Code::InvalidConfig, format!("{key} {value:?} is invalid")).details(expected)
}

/// `name`: required; the spec's network-name characters.
fn network_name(name: Option<&str>) -> Result<String, Error> {
    let name = name
        .filter(|n| !n.is_empty())
        .ok_or_else(|| Error::new(Code::InvalidConfig, "name is missing"))?;
    if name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
    {
        Ok(name.to_owned())
    } else {
        Err(invalid(
            "name",
            name,
            "letters, digits, '_', '.' and '-' (the spec's network names)",
        ))
    }
}

/// `vethPrefix`: 1–4 letters or digits, default `eni`.
fn veth_prefix(prefix: Option<&str>) -> Result<String, Error> {
    let prefix = prefix.unwrap_or("eni");
    if !prefix.is_empty() && prefix.len() <= 4 && prefix.chars().all(|c| c.is_ascii_alphanumeric())
    {
        Ok(prefix.to_owned())
    } else {
        Err(invalid(
            "vethPrefix",
            prefix,
            "1 to 4 letters or digits (the host veth is the prefix and 11 hex digits, within \
             Linux's 15-character limit)",
        ))
    }
}

/// `mtu`: a number or a numeric string in [`MTU_RANGE`], default 9001.
fn mtu(value: Option<&Value>) -> Result<u32, Error> {
    let Some(v) = value else {
        return Ok(9001);
    };
    let text = match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    text.trim()
        .parse::<u32>()
        .ok()
        .filter(|m| MTU_RANGE.contains(m))
        .ok_or_else(|| invalid("mtu", &text, "a number from 576 to 9001"))
}

/// `pluginLogLevel` (default debug).
fn log_level(level: Option<&str>) -> Result<LogLevel, Error> {
    match level {
        None => Ok(LogLevel::Debug),
        Some(l) => LogLevel::parse(l)
            .ok_or_else(|| invalid("pluginLogLevel", l, "Debug, Info, Warn or Error")),
    }
}

impl LogLevel {
    /// A level's name, any case (the VPC CNI writes `DEBUG`; logrus's `trace`, `warning`,
    /// `fatal` and `panic` are accepted as their nearest level).
    pub fn parse(s: &str) -> Option<LogLevel> {
        match s.to_ascii_lowercase().as_str() {
            "debug" | "trace" => Some(LogLevel::Debug),
            "info" => Some(LogLevel::Info),
            "warn" | "warning" => Some(LogLevel::Warn),
            "error" | "fatal" | "panic" => Some(LogLevel::Error),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AWS: &str = r#"{"cniVersion":"0.4.0","name":"aws-cni","type":"eniplan-cni",
        "vethPrefix":"eni","mtu":"9001","podSGEnforcingMode":"strict",
        "pluginLogFile":"/var/log/aws-routed-eni/plugin.log","pluginLogLevel":"DEBUG",
        "capabilities":{"io.kubernetes.cri.pod-annotations":true},
        "runtimeConfig":{"io.kubernetes.cri.pod-annotations":{"k8s.amazonaws.com/nicConfig":"x"}}}"#;

    fn with(key: &str, value: Value) -> Vec<u8> {
        let mut v: Value = serde_json::from_str(AWS).unwrap();
        v[key] = value;
        serde_json::to_vec(&v).unwrap()
    }

    #[test]
    fn the_vpc_cni_conflist_entry_parses() {
        let c = NetConf::parse(AWS.as_bytes()).unwrap();
        assert_eq!(c.version, Version::V0_4_0);
        assert_eq!(c.name, "aws-cni");
        assert_eq!(c.veth_prefix, "eni");
        assert_eq!(c.mtu, 9001);
        assert_eq!(c.sg_mode, SgMode::Strict);
        assert_eq!(c.log_level, LogLevel::Debug);
        assert_eq!(c.pod_annotations["k8s.amazonaws.com/nicConfig"], "x");
        assert_eq!(c.prev_result, None);
    }

    #[test]
    fn mtu_as_a_number_or_a_string_within_range() {
        assert_eq!(NetConf::parse(&with("mtu", 1500.into())).unwrap().mtu, 1500);
        assert_eq!(NetConf::parse(&with("mtu", "576".into())).unwrap().mtu, 576);
        for bad in [Value::from(575), Value::from(9002), Value::from("jumbo")] {
            let e = NetConf::parse(&with("mtu", bad.clone())).unwrap_err();
            assert_eq!(e.code, Code::InvalidConfig, "{bad}");
            assert!(e.msg.starts_with("mtu "), "{e:?}");
            assert!(e.details.contains("576 to 9001"));
        }
    }

    #[test]
    fn bad_values_are_code_7_naming_key_and_value() {
        for (key, value) in [
            ("vethPrefix", "abcde"),
            ("vethPrefix", "e-n"),
            ("podSGEnforcingMode", "loose"),
            ("pluginLogLevel", "chatty"),
            ("pluginLogFile", "stdout"),
            ("name", "aws cni"),
        ] {
            let e = NetConf::parse(&with(key, value.into())).unwrap_err();
            assert_eq!(e.code, Code::InvalidConfig, "{key}");
            assert_eq!(e.msg, format!("{key} {value:?} is invalid"));
        }
    }

    #[test]
    fn undecodable_oversized_and_unversioned_stdin() {
        assert_eq!(
            NetConf::parse(b"\x00garbage").unwrap_err().code,
            Code::Decode
        );
        assert_eq!(NetConf::parse(b"[1,2]").unwrap_err().code, Code::Decode);
        let big = vec![b' '; MAX_STDIN + 1];
        let e = NetConf::parse(&big).unwrap_err();
        assert_eq!(e.code, Code::Decode);
        assert!(e.msg.contains(&(MAX_STDIN + 1).to_string()));
        let e = NetConf::parse(&with("cniVersion", "0.2.0".into())).unwrap_err();
        assert_eq!(e.code, Code::IncompatibleVersion);
        assert_eq!(
            NetConf::version_of(br#"{"cniVersion":"1.0.0"}"#),
            Version::V1_0_0
        );
        assert_eq!(NetConf::version_of(b"garbage"), Version::LATEST);
    }

    #[test]
    fn gc_attachments_under_either_key() {
        let list = serde_json::json!([{"containerID": "c1", "ifname": "eth0"}]);
        for key in ["cni.dev/valid-attachments", "cni.dev/attachments"] {
            let c = NetConf::parse(&with(key, list.clone())).unwrap();
            assert_eq!(
                c.valid_attachments,
                Some(vec![Attachment {
                    container_id: "c1".into(),
                    ifname: "eth0".into()
                }])
            );
        }
    }
}
