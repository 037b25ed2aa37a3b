//! # eniplan-cni
//!
//! The CNI plugin's library: the CNI 1.1.0 contract as the plugin sees it ([`spec`]: versions,
//! the environment, the network configuration, results and errors, for configs at 0.3.1, 0.4.0,
//! 1.0.0 and 1.1.0). Everything here is pure: it parses what the runtime hands over and renders
//! what goes back, so every rule is unit-tested without a runtime.
#![deny(missing_docs)]

pub mod install;
pub mod ipamd;
pub mod log;
pub mod plugin;
pub mod spec;
pub mod vlan;
pub mod wire;
