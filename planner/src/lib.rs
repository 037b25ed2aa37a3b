//! # planner
//!
//! The pure core of eniplan: everything that can be decided without touching a network, a
//! clock or the environment.
//!
//! * [`catalogue`] — the embedded EC2 instance catalogue (ENI and address limits, trunking,
//!   vCPUs) for 1391 instance types, generated from `data/`.
//! * [`max_pods`] — max pods for every VPC CNI mode, with the arithmetic spelled out.
//! * [`subnet`] — one subnet's address space: AWS-reserved addresses, aligned /28 prefixes.
//! * [`pool`] and [`sim`] — the warm-pool engine and the in-memory EC2 it runs against.
//! * Capacity planning: [`spec`] (the cluster spec), [`footprint`] (a node shape run through
//!   the engine), [`forecast`] (subnets over time), [`blocks`] (/28 maps), [`layout`]
//!   (custom networking), [`budget`] (EC2 API budgets), [`gates`] (CI checks).
//!
//! ```
//! use planner::{catalogue, max_pods};
//! let m5 = catalogue::lookup("m5.large")?;
//! assert_eq!(max_pods::max_pods(m5, &max_pods::Options::default()).max_pods, 29);
//! # Ok::<(), planner::Error>(())
//! ```
#![deny(missing_docs)]

pub mod blocks;
pub mod budget;
pub mod catalogue;
pub mod ec2api;
mod error;
pub mod footprint;
pub mod forecast;
pub mod gates;
pub mod layout;
pub mod max_pods;
pub mod pool;
pub mod sim;
pub mod spec;
pub mod subnet;

pub use error::{Error, Result, SpecIssue};
