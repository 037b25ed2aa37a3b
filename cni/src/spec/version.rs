//! CNI specification versions: the ones this plugin speaks and how a result's shape depends on
//! them.

use std::fmt;

use serde::Serialize;

use super::error::{Code, Error};

/// A CNI specification version this plugin speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Version {
    /// 0.3.0.
    V0_3_0,
    /// 0.3.1.
    V0_3_1,
    /// 0.4.0 (adds CHECK; what the VPC CNI's conflist declares).
    V0_4_0,
    /// 1.0.0 (drops `ips[].version`).
    V1_0_0,
    /// 1.1.0 (adds STATUS and GC).
    V1_1_0,
}

/// Every version the plugin speaks, oldest first (the VERSION reply lists them).
pub const SUPPORTED: [Version; 5] = [
    Version::V0_3_0,
    Version::V0_3_1,
    Version::V0_4_0,
    Version::V1_0_0,
    Version::V1_1_0,
];

impl Version {
    /// The newest version, for errors that come before a version is known.
    pub const LATEST: Version = Version::V1_1_0;

    /// The version's string, as in `cniVersion`.
    pub fn as_str(self) -> &'static str {
        match self {
            Version::V0_3_0 => "0.3.0",
            Version::V0_3_1 => "0.3.1",
            Version::V0_4_0 => "0.4.0",
            Version::V1_0_0 => "1.0.0",
            Version::V1_1_0 => "1.1.0",
        }
    }

    /// Reads a `cniVersion`.
    ///
    /// # Errors
    /// Code 1 (incompatible version), naming the value and the versions spoken.
    pub fn parse(s: &str) -> Result<Version, Error> {
        SUPPORTED
            .iter()
            .copied()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| {
                Error::new(
                    Code::IncompatibleVersion,
                    format!("cniVersion {s:?} is not supported"),
                )
                .details(format!("supported versions: {}", supported_list()))
            })
    }

    /// Whether results carry `ips[].version` (before 1.0.0).
    pub fn ip_version_field(self) -> bool {
        self < Version::V1_0_0
    }

    /// Whether CHECK exists (0.4.0 on).
    pub fn has_check(self) -> bool {
        self >= Version::V0_4_0
    }

    /// Whether STATUS and GC exist (1.1.0).
    pub fn has_status_and_gc(self) -> bool {
        self >= Version::V1_1_0
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Version {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

fn supported_list() -> String {
    SUPPORTED
        .iter()
        .map(|v| v.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The VERSION command's reply: the `cniVersion` asked about (or the latest) and every version
/// spoken.
pub fn version_reply(asked: Option<Version>) -> serde_json::Value {
    serde_json::json!({
        "cniVersion": asked.unwrap_or(Version::LATEST).as_str(),
        "supportedVersions": SUPPORTED.iter().map(|v| v.as_str()).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_supported_version_round_trips_and_others_are_code_1() {
        for v in SUPPORTED {
            assert_eq!(Version::parse(v.as_str()), Ok(v));
        }
        let e = Version::parse("0.2.0").unwrap_err();
        assert_eq!(e.code, Code::IncompatibleVersion);
        assert!(e.msg.contains("\"0.2.0\""), "{e:?}");
        assert!(e.details.contains("1.1.0"));
        assert!(Version::parse("1.1").is_err());
    }

    #[test]
    fn shapes_by_version() {
        assert!(Version::V0_4_0.ip_version_field());
        assert!(!Version::V1_0_0.ip_version_field());
        assert!(!Version::V0_3_1.has_check());
        assert!(Version::V0_4_0.has_check());
        assert!(Version::V1_1_0.has_status_and_gc());
        assert!(!Version::V1_0_0.has_status_and_gc());
        let reply = version_reply(Some(Version::V0_4_0));
        assert_eq!(reply["cniVersion"], "0.4.0");
        assert_eq!(reply["supportedVersions"].as_array().map(Vec::len), Some(5));
    }
}
