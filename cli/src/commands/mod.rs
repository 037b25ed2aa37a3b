//! One module per subcommand.

pub mod instance_types;
pub mod max_pods;
pub mod simulate;
