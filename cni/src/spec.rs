//! The CNI specification 1.1.0 as a plugin sees it.
//!
//! The runtime runs the plugin with `CNI_*` environment variables ([`Env`]) and the network
//! configuration on stdin ([`NetConf`], at the `cniVersion` it negotiated); the plugin prints a
//! [`CniResult`] in that version, or an [`Error`] object with one of the spec's codes.

mod config;
mod env;
mod error;
mod result;
mod version;

pub use config::{Attachment, LogLevel, MAX_STDIN, NetConf, SgMode};
pub use env::{Command, Env};
pub use error::{Code, Error};
pub use result::{CniResult, Interface, IpConfig, Route};
pub use version::{SUPPORTED, Version, version_reply};
