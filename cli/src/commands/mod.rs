//! One module per subcommand.

pub mod api_budget;
pub mod common;
#[cfg(feature = "live")]
pub mod ec2;
pub mod forecast;
pub mod instance_types;
pub mod layout;
pub mod max_pods;
pub mod report;
pub mod simulate;
pub mod subnets;
