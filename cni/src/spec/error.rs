//! The spec's error object: `{cniVersion, code, msg, details}` on stdout, with its codes, and
//! eniplan's own codes from 100 on (`docs/cni.md` lists them).

use serde::Serialize;

use super::version::Version;

/// An error code: the spec's (1–99) and the plugin's own (100 and up).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// 1: the config's `cniVersion` is not spoken.
    IncompatibleVersion,
    /// 2: a field the plugin does not support (named with its value).
    UnsupportedField,
    /// 3: the container is unknown or does not exist.
    UnknownContainer,
    /// 4: a `CNI_*` variable is missing or invalid.
    InvalidEnvironment,
    /// 5: an I/O failure (reading stdin, writing results, the log file).
    Io,
    /// 6: stdin could not be decoded.
    Decode,
    /// 7: the network configuration is invalid (the key and value are named).
    InvalidConfig,
    /// 11: try again later: ipamd is unreachable or has no address yet (the kubelet retries).
    TryAgainLater,
    /// 50 (STATUS): the plugin cannot serve new pods (ipamd unreachable).
    NotAvailable,
    /// 100: ipamd refused the request, with its reason.
    IpamdRefused,
    /// 101: wiring the pod's network failed (a netlink request, with what it was).
    Wiring,
    /// 102: CHECK found the pod's network different from what ADD built.
    CheckFailed,
}

impl Code {
    /// The number on the wire.
    pub fn number(self) -> u32 {
        match self {
            Code::IncompatibleVersion => 1,
            Code::UnsupportedField => 2,
            Code::UnknownContainer => 3,
            Code::InvalidEnvironment => 4,
            Code::Io => 5,
            Code::Decode => 6,
            Code::InvalidConfig => 7,
            Code::TryAgainLater => 11,
            Code::NotAvailable => 50,
            Code::IpamdRefused => 100,
            Code::Wiring => 101,
            Code::CheckFailed => 102,
        }
    }
}

impl Serialize for Code {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u32(self.number())
    }
}

/// A plugin failure, printed as the spec's error object.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("CNI error {}: {msg}{}", code.number(), if details.is_empty() { String::new() } else { format!(" ({details})") })]
pub struct Error {
    /// The code.
    pub code: Code,
    /// What went wrong, naming the offending value.
    pub msg: String,
    /// More context: what is accepted, what to do.
    pub details: String,
}

impl Error {
    /// An error with no details yet.
    pub fn new(code: Code, msg: impl Into<String>) -> Error {
        Error {
            code,
            msg: msg.into(),
            details: String::new(),
        }
    }

    /// The same error with `details`.
    #[must_use]
    pub fn details(mut self, details: impl Into<String>) -> Error {
        self.details = details.into();
        self
    }

    /// The error object for stdout, in `version` (the config's when it could be read).
    pub fn to_json(&self, version: Version) -> String {
        #[derive(Serialize)]
        struct Wire<'a> {
            #[serde(rename = "cniVersion")]
            cni_version: Version,
            code: Code,
            msg: &'a str,
            #[serde(skip_serializing_if = "str::is_empty")]
            details: &'a str,
        }
        serde_json::to_string(&Wire {
            cni_version: version,
            code: self.code,
            msg: &self.msg,
            details: &self.details,
        })
        .expect("an error object serialises")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_error_object_has_the_spec_keys() {
        let e = Error::new(Code::InvalidConfig, "vethPrefix \"abcde\" is too long")
            .details("at most 4 characters");
        let v: serde_json::Value = serde_json::from_str(&e.to_json(Version::V0_4_0)).unwrap();
        assert_eq!(v["cniVersion"], "0.4.0");
        assert_eq!(v["code"], 7);
        assert_eq!(v["msg"], "vethPrefix \"abcde\" is too long");
        assert_eq!(v["details"], "at most 4 characters");
        let bare: serde_json::Value =
            serde_json::from_str(&Error::new(Code::TryAgainLater, "x").to_json(Version::LATEST))
                .unwrap();
        assert!(bare.get("details").is_none());
        assert_eq!(bare["code"], 11);
    }
}
