//! `eniplan subnets`: /28 block maps from the spec or, with `--live`, from EC2 (the `live`
//! cargo feature; see [`live`]).

#[cfg(feature = "live")]
pub mod live;

use std::fmt::Write as _;

use capacity::blocks::{BlockMap, block_map};

use super::common::{self, Bar, thousands};
use crate::args::{Output, SubnetsArgs};
use crate::outcome::{CommandError, CommandOutput};
use crate::{render, svg};

pub fn run(args: &SubnetsArgs) -> Result<CommandOutput, CommandError> {
    let output = Output::from(args.output);
    let mut usages = if args.live {
        let ids = if args.subnet.is_empty() {
            let path = args.spec.as_ref().ok_or_else(|| {
                CommandError::Usage("--live needs --subnet IDs or a SPEC naming the subnets".into())
            })?;
            common::read_spec(path)?
                .subnets
                .iter()
                .map(|s| s.id.clone())
                .collect()
        } else {
            args.subnet.clone()
        };
        read_live(args, &ids)?
    } else {
        let path = args
            .spec
            .as_ref()
            .ok_or_else(|| CommandError::Usage("a SPEC is needed without --live".into()))?;
        let cluster = common::read_spec(path)?;
        let bar = Bar::new(args.progress);
        capacity::forecast::current_usage(&cluster, &mut |p| bar.update(p))?
    };
    if !args.subnet.is_empty() {
        if let Some(missing) = args
            .subnet
            .iter()
            .find(|id| !usages.iter().any(|u| &&u.id == id))
        {
            let known: Vec<&str> = usages.iter().map(|u| u.id.as_str()).collect();
            return Err(CommandError::Usage(format!(
                "--subnet {missing:?}: no such subnet (known: {})",
                known.join(", ")
            )));
        }
        usages.retain(|u| args.subnet.contains(&u.id));
    }
    let maps = usages
        .iter()
        .map(|u| block_map(u, args.top))
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(path) = &args.plot {
        common::write_file(path, &svg::block_maps(&maps))?;
    }
    let stdout = if output == Output::Json {
        render::json(&maps)?
    } else {
        text(&maps, output, args)
    };
    Ok(CommandOutput {
        stdout,
        ..CommandOutput::default()
    })
}

fn text(maps: &[BlockMap], output: Output, args: &SubnetsArgs) -> String {
    let md = output == Output::Markdown;
    let rows: Vec<Vec<String>> = maps
        .iter()
        .map(|m| {
            vec![
                m.id.clone(),
                m.az.clone(),
                m.stats.cidr.to_string(),
                thousands(u64::from(m.stats.free_addresses)),
                thousands(u64::from(m.counts.free)),
                thousands(u64::from(m.counts.partial)),
                thousands(u64::from(m.counts.full)),
                thousands(u64::from(m.counts.prefix)),
                thousands(u64::from(m.counts.reserved)),
                format!("{:.2} {}", m.stats.fragmentation, m.band),
            ]
        })
        .collect();
    let mut out = render::table(
        output,
        &[
            "SUBNET",
            "AZ",
            "CIDR",
            "FREE ADDRS",
            "FREE /28",
            "PARTIAL",
            "FULL",
            "PREFIX",
            "RESERVED",
            "FRAGMENTATION",
        ],
        &rows,
        &[3, 4, 5, 6, 7, 8],
    );
    for m in maps {
        let show_map = args.map || (!args.no_map && m.blocks.len() <= 1024);
        if show_map {
            if md {
                let _ = writeln!(out, "\n#### {} block map\n\n```", m.id);
            } else {
                let _ = writeln!(
                    out,
                    "\n{} block map (. free  + partly used  # full  P prefix  R reserved)",
                    m.id
                );
            }
            for (i, row) in m.blocks.chunks(64).enumerate() {
                let line: String = row.iter().map(|b| b.class.glyph()).collect();
                let _ = writeln!(out, "{:<18} {line}", m.blocks[i * 64].cidr.ip());
            }
            if md {
                out.push_str("```\n");
            }
        }
        if !m.drain.is_empty() {
            if md {
                let _ = writeln!(out, "\n#### {}: release these first\n", m.id);
            } else {
                let _ = writeln!(out, "\n{}: ENIs whose release frees the most /28s", m.id);
            }
            let rows: Vec<Vec<String>> = m
                .drain
                .iter()
                .map(|d| {
                    vec![
                        d.eni.clone(),
                        if d.owner.is_empty() {
                            "-".into()
                        } else {
                            d.owner.clone()
                        },
                        d.blocks_freed.to_string(),
                        d.prefixes.to_string(),
                        d.addresses.to_string(),
                    ]
                })
                .collect();
            out.push_str(&render::table(
                output,
                &[
                    "ENI",
                    "OWNER",
                    "/28s FREED",
                    "OF WHICH PREFIXES",
                    "ADDRESSES",
                ],
                &rows,
                &[2, 3, 4],
            ));
        }
    }
    out
}

#[cfg(feature = "live")]
fn read_live(
    args: &SubnetsArgs,
    ids: &[String],
) -> Result<Vec<capacity::blocks::SubnetUsage>, CommandError> {
    live::read(args.ec2.region.clone(), args.ec2.endpoint.clone(), ids)
}

/// Without the `live` feature the CLI has no AWS SDK in it (a first build in seconds, not
/// minutes): say how to get one that has.
#[cfg(not(feature = "live"))]
fn read_live(
    _args: &SubnetsArgs,
    _ids: &[String],
) -> Result<Vec<capacity::blocks::SubnetUsage>, CommandError> {
    Err(CommandError::Usage(
        "--live: this eniplan was built without EC2 access; build one with \
         `cargo install --path cli --features live` (or run from a clone with \
         `cargo run -p eniplan --features live -- subnets --live ...`)"
            .into(),
    ))
}
