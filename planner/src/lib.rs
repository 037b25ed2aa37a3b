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
//! * [`ec2api`] — EC2's API families and their token buckets.
//! * [`rng`] — the one seeded generator (splitmix64) of the workspace; not for cryptography.
//!
//! Capacity planning (cluster specs, forecasts, layouts, API budgets, CI gates) builds on this
//! core in the `capacity` crate; the daemon needs none of it.
//!
//! ```
//! use planner::{catalogue, max_pods};
//! let m5 = catalogue::lookup("m5.large")?;
//! assert_eq!(max_pods::max_pods(m5, &max_pods::Options::default()).max_pods, 29);
//! # Ok::<(), planner::Error>(())
//! ```
#![deny(missing_docs)]

pub mod catalogue;
pub mod ec2api;
mod error;
pub mod max_pods;
pub mod pool;
pub mod rng;
pub mod sim;
pub mod subnet;

pub use error::{Error, Result};
