//! `eniplan layout`: custom-networking plans.

use capacity::layout::{self, Request};

use super::common;
use crate::args::{LayoutArgs, LayoutFormat};
use crate::outcome::{CommandError, CommandOutput};
use crate::render;

pub fn run(args: &LayoutArgs) -> Result<CommandOutput, CommandError> {
    let cluster = common::read_spec(&args.spec)?;
    let cidr = args.cidr;
    let headroom = args.headroom / 100.0;
    let plan = layout::plan(
        &cluster,
        &Request {
            cidr,
            azs: args.azs.clone(),
            headroom,
        },
    )?;
    let mut notes = Vec::new();
    if !plan.in_vpc {
        notes.push(format!(
            "{cidr} is not one of the spec's vpc_cidrs: the Terraform associates it with the VPC first"
        ));
    }
    let stdout = match args.format {
        LayoutFormat::Yaml => layout::eniconfigs(&plan, &args.security_groups),
        LayoutFormat::Terraform => layout::terraform(&plan),
        LayoutFormat::Json => render::json(&plan)?,
    };
    Ok(CommandOutput {
        stdout,
        notes,
        negative: false,
    })
}
