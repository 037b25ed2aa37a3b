//! # capacity
//!
//! Capacity planning for pod IP addresses, built on the `planner` core: what the `eniplan`
//! CLI answers about a whole cluster. Pure like the core (no I/O, no clock, no environment);
//! it adds the cluster spec's YAML and JSON Schema, which the daemon never needs.
//!
//! * [`spec`] — the cluster spec: serde types, JSON Schema, validation with locations.
//! * [`footprint`] — one node shape run through the core's warm-pool engine.
//! * [`forecast`] — subnets over time: placement, capacities, growth, the /28 churn window.
//! * [`blocks`] — /28 block maps and which ENIs to drain.
//! * [`layout`] — custom-networking plans, ENIConfig manifests and Terraform.
//! * [`budget`] — EC2 API budgets: the engine's calls against EC2's token buckets.
//! * [`gates`] — CI checks over a forecast.
#![deny(missing_docs)]

pub mod blocks;
pub mod budget;
mod error;
pub mod footprint;
pub mod forecast;
pub mod gates;
pub mod layout;
pub mod spec;

pub use error::{Error, Result, SpecIssue};
