//! `eniplan-cni install`: what the aws-node entrypoint does for the plugin. It validates the
//! VPC CNI's variables, waits until ipamd answers its health check (the kubelet marks the node
//! Ready as soon as a conflist exists, so writing it early sends pods to a node that cannot
//! serve them), copies the plugin into the host's CNI bin directory and writes
//! `10-aws.conflist` into the host's CNI conf directory, both atomically (a temporary file in
//! the same directory, then a rename).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::spec::LogLevel;

/// The conflist's file name (the VPC CNI's, so a node migrating from aws-node has one).
pub const CONFLIST: &str = "10-aws.conflist";

/// Why install stopped; `main` maps each to its exit code (`docs/cni.md`).
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// A variable has a value the plugin cannot use (exit 2).
    #[error("{name}={value:?} is invalid: {expected}")]
    Invalid {
        /// The variable.
        name: &'static str,
        /// Its value.
        value: String,
        /// What is accepted.
        expected: &'static str,
    },
    /// ipamd did not answer health in time (exit 3).
    #[error(
        "ipamd at {socket} did not answer its health check within {waited_s} s; the conflist was not written"
    )]
    NotHealthy {
        /// The socket asked.
        socket: String,
        /// How long install waited.
        waited_s: u64,
    },
    /// A file could not be written (exit 4).
    #[error("cannot write {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

/// The settings install reads, by the VPC CNI's variable names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// `HOST_CNI_BIN_PATH` (default `/host/opt/cni/bin`).
    pub bin_dir: PathBuf,
    /// `HOST_CNI_CONFDIR_PATH` (default `/host/etc/cni/net.d`).
    pub conf_dir: PathBuf,
    /// `POD_MTU`, else `AWS_VPC_ENI_MTU` (default 9001).
    pub mtu: u32,
    /// `AWS_VPC_K8S_CNI_VETHPREFIX` (default `eni`).
    pub veth_prefix: String,
    /// `AWS_VPC_K8S_PLUGIN_LOG_FILE` (default `/var/log/aws-routed-eni/plugin.log`; empty means
    /// stderr).
    pub log_file: String,
    /// `AWS_VPC_K8S_PLUGIN_LOG_LEVEL` (default `Debug`).
    pub log_level: String,
    /// `POD_SECURITY_GROUP_ENFORCING_MODE` (default `strict`).
    pub sg_mode: String,
    /// `ENABLE_BANDWIDTH_PLUGIN` (default false): chain the `bandwidth` plugin.
    pub bandwidth: bool,
    /// `ENIPLAN_IPAMD_SOCKET` (default `/var/run/aws-node/ipamd.sock`).
    pub socket: String,
    /// `DISABLE_TCP_EARLY_DEMUX` (default false): set `net.ipv4.tcp_early_demux=0` on the node,
    /// so that the node's own connections to strict-mode branch pods (kubelet probes) work.
    pub disable_tcp_early_demux: bool,
}

impl Settings {
    /// Reads and validates the variables.
    ///
    /// # Errors
    /// [`InstallError::Invalid`] naming the variable, its value and what is accepted.
    pub fn from_vars(vars: &BTreeMap<String, String>) -> Result<Settings, InstallError> {
        let get = |k: &str| vars.get(k).map(String::as_str).filter(|v| !v.is_empty());
        let mtu_var = if get("POD_MTU").is_some() {
            "POD_MTU"
        } else {
            "AWS_VPC_ENI_MTU"
        };
        let mtu = match get(mtu_var) {
            None => 9001,
            Some(v) => v
                .trim()
                .parse::<u32>()
                .ok()
                .filter(|m| (576..=9001).contains(m))
                .ok_or_else(|| InstallError::Invalid {
                    name: mtu_var,
                    value: v.to_owned(),
                    expected: "a number from 576 to 9001",
                })?,
        };
        let veth_prefix = get("AWS_VPC_K8S_CNI_VETHPREFIX")
            .unwrap_or("eni")
            .to_owned();
        if veth_prefix.len() > 4
            || !veth_prefix.chars().all(|c| c.is_ascii_alphanumeric())
            || ["eth", "lo", "vlan"].contains(&veth_prefix.as_str())
        {
            return Err(InstallError::Invalid {
                name: "AWS_VPC_K8S_CNI_VETHPREFIX",
                value: veth_prefix,
                expected: "1 to 4 letters or digits, not eth, lo or vlan (the node's own links)",
            });
        }
        // Set but empty means stderr, as the VPC CNI's entrypoint reads it.
        let log_file = match vars.get("AWS_VPC_K8S_PLUGIN_LOG_FILE").map(String::as_str) {
            None => "/var/log/aws-routed-eni/plugin.log".to_owned(),
            Some("") => "stderr".to_owned(),
            Some(v) => v.to_owned(),
        };
        if log_file == "stdout" {
            return Err(InstallError::Invalid {
                name: "AWS_VPC_K8S_PLUGIN_LOG_FILE",
                value: log_file,
                expected: "a file path or stderr (the plugin's stdout carries its result)",
            });
        }
        let sg_mode = get("POD_SECURITY_GROUP_ENFORCING_MODE").unwrap_or("strict");
        if !["strict", "standard"].contains(&sg_mode) {
            return Err(InstallError::Invalid {
                name: "POD_SECURITY_GROUP_ENFORCING_MODE",
                value: sg_mode.to_owned(),
                expected: "strict or standard",
            });
        }
        let flag = |name: &'static str| match get(name) {
            None => Ok(false),
            Some(v) if v.eq_ignore_ascii_case("true") => Ok(true),
            Some(v) if v.eq_ignore_ascii_case("false") => Ok(false),
            Some(v) => Err(InstallError::Invalid {
                name,
                value: v.to_owned(),
                expected: "true or false",
            }),
        };
        let bandwidth = flag("ENABLE_BANDWIDTH_PLUGIN")?;
        let disable_tcp_early_demux = flag("DISABLE_TCP_EARLY_DEMUX")?;
        let log_level = get("AWS_VPC_K8S_PLUGIN_LOG_LEVEL").unwrap_or("Debug");
        if LogLevel::parse(log_level).is_none() {
            return Err(InstallError::Invalid {
                name: "AWS_VPC_K8S_PLUGIN_LOG_LEVEL",
                value: log_level.to_owned(),
                expected: "Debug, Info, Warn or Error",
            });
        }
        let settings = Settings {
            bin_dir: PathBuf::from(get("HOST_CNI_BIN_PATH").unwrap_or("/host/opt/cni/bin")),
            conf_dir: PathBuf::from(get("HOST_CNI_CONFDIR_PATH").unwrap_or("/host/etc/cni/net.d")),
            mtu,
            veth_prefix,
            log_file,
            log_level: log_level.to_owned(),
            sg_mode: sg_mode.to_owned(),
            bandwidth,
            socket: get("ENIPLAN_IPAMD_SOCKET")
                .unwrap_or(eniplan_rpc::DEFAULT_SOCKET)
                .to_owned(),
            disable_tcp_early_demux,
        };
        Ok(settings)
    }

    fn plugin_entry(&self, version: &str) -> Value {
        json!({
            "cniVersion": version,
            "name": "aws-cni",
            "type": "eniplan-cni",
            "vethPrefix": self.veth_prefix,
            "mtu": self.mtu.to_string(),
            "podSGEnforcingMode": self.sg_mode,
            "pluginLogFile": self.log_file,
            "pluginLogLevel": self.log_level,
            "ipamdSocket": self.socket,
            "capabilities": {"io.kubernetes.cri.pod-annotations": true},
        })
    }

    /// The conflist: `cniVersion` 0.4.0 as the VPC CNI's (older kubelets and runtimes read it),
    /// CHECK disabled, the plugin, then `portmap` and, when enabled, `bandwidth`.
    pub fn conflist(&self) -> Value {
        let mut entry = self.plugin_entry("0.4.0");
        if let Some(o) = entry.as_object_mut() {
            o.remove("cniVersion");
            o.remove("name");
        }
        let mut plugins = vec![
            entry,
            json!({"type": "portmap", "capabilities": {"portMappings": true}, "snat": true}),
        ];
        if self.bandwidth {
            plugins.push(json!({"type": "bandwidth", "capabilities": {"bandwidth": true}}));
        }
        json!({
            "cniVersion": "0.4.0",
            "name": "aws-cni",
            "disableCheck": true,
            "plugins": plugins,
        })
    }
}

/// Writes `bytes` to `path` through a temporary file in the same directory and a rename, so a
/// reader sees the old file or the new one, never a part; `mode` is set before the rename.
///
/// # Errors
/// [`InstallError::Io`].
pub fn write_atomically(path: &Path, bytes: &[u8], mode: u32) -> Result<(), InstallError> {
    use std::os::unix::fs::PermissionsExt as _;
    let io = |source| InstallError::Io {
        path: path.to_owned(),
        source,
    };
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    std::fs::create_dir_all(dir).map_err(io)?;
    let name = path
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let tmp = dir.join(format!(".{name}.eniplan-{}", std::process::id()));
    let result = std::fs::write(&tmp, bytes)
        .and_then(|()| std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode)))
        .and_then(|()| std::fs::rename(&tmp, path));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(io)
}

/// The node's TCP early-demux switch (per network namespace: the node's, where the installer
/// runs with the host network).
pub const TCP_EARLY_DEMUX: &str = "/proc/sys/net/ipv4/tcp_early_demux";

/// With `DISABLE_TCP_EARLY_DEMUX`, turns TCP early demux off on the node, as the VPC CNI's
/// init container does: the node's connections to strict-mode branch pods get their replies
/// through the trunk, and early demux would hand those to the socket on a stale route (they
/// time out; `cni/tests/vlan_vm.rs` shows both). Needs a writable `/proc/sys` (a privileged
/// container: the chart makes the installer one only with this setting).
///
/// # Errors
/// [`InstallError::Io`] naming the file.
pub fn apply_sysctls(settings: &Settings) -> Result<(), InstallError> {
    if !settings.disable_tcp_early_demux {
        return Ok(());
    }
    std::fs::write(TCP_EARLY_DEMUX, "0").map_err(|source| InstallError::Io {
        path: TCP_EARLY_DEMUX.into(),
        source,
    })
}

/// Copies the plugin (`exe`) into the bin directory and writes the conflist.
///
/// # Errors
/// [`InstallError::Io`].
pub fn write_files(settings: &Settings, exe: &Path) -> Result<(), InstallError> {
    let binary = std::fs::read(exe).map_err(|source| InstallError::Io {
        path: exe.to_owned(),
        source,
    })?;
    write_atomically(&settings.bin_dir.join("eniplan-cni"), &binary, 0o755)?;
    let mut text = serde_json::to_string_pretty(&settings.conflist()).expect("JSON");
    text.push('\n');
    write_atomically(&settings.conf_dir.join(CONFLIST), text.as_bytes(), 0o644)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect()
    }

    #[test]
    fn defaults_to_the_vpc_cni_conflist() {
        let s = Settings::from_vars(&BTreeMap::new()).unwrap();
        let c = s.conflist();
        assert_eq!(c["cniVersion"], "0.4.0");
        assert_eq!(c["disableCheck"], true);
        assert_eq!(c["plugins"][0]["type"], "eniplan-cni");
        assert_eq!(c["plugins"][0]["mtu"], "9001");
        assert_eq!(c["plugins"][0]["vethPrefix"], "eni");
        assert_eq!(c["plugins"][1]["type"], "portmap");
        assert_eq!(c["plugins"].as_array().map(Vec::len), Some(2));
        assert_eq!(s.conf_dir, PathBuf::from("/host/etc/cni/net.d"));
    }

    #[test]
    fn variables_shape_the_conflist() {
        let s = Settings::from_vars(&vars(&[
            ("AWS_VPC_ENI_MTU", "9001"),
            ("POD_MTU", "1500"),
            ("AWS_VPC_K8S_CNI_VETHPREFIX", "pod"),
            ("ENABLE_BANDWIDTH_PLUGIN", "true"),
            ("AWS_VPC_K8S_PLUGIN_LOG_FILE", ""),
            ("AWS_VPC_K8S_PLUGIN_LOG_LEVEL", "INFO"),
        ]))
        .unwrap();
        let c = s.conflist();
        assert_eq!(c["plugins"][0]["mtu"], "1500", "POD_MTU wins");
        assert_eq!(c["plugins"][0]["vethPrefix"], "pod");
        assert_eq!(c["plugins"][0]["pluginLogFile"], "stderr");
        assert_eq!(c["plugins"][2]["type"], "bandwidth");
    }

    #[test]
    fn bad_values_name_the_variable() {
        for (k, v) in [
            ("POD_MTU", "500"),
            ("AWS_VPC_ENI_MTU", "jumbo"),
            ("AWS_VPC_K8S_CNI_VETHPREFIX", "vlan"),
            ("AWS_VPC_K8S_CNI_VETHPREFIX", "abcde"),
            ("AWS_VPC_K8S_PLUGIN_LOG_FILE", "stdout"),
            ("POD_SECURITY_GROUP_ENFORCING_MODE", "loose"),
            ("ENABLE_BANDWIDTH_PLUGIN", "yes"),
            ("AWS_VPC_K8S_PLUGIN_LOG_LEVEL", "chatty"),
        ] {
            let e = Settings::from_vars(&vars(&[(k, v)])).unwrap_err();
            let text = e.to_string();
            assert!(text.starts_with(&format!("{k}={v:?}")), "{text}");
        }
    }

    #[test]
    fn atomic_writes_leave_no_temporary_file() {
        let dir = std::env::temp_dir().join(format!("eniplan-cni-atomic-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("a/b/10-aws.conflist");
        write_atomically(&path, b"one", 0o644).unwrap();
        write_atomically(&path, b"two", 0o644).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
