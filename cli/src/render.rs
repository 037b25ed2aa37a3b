//! Table rendering shared by the commands.

use tabled::builder::Builder;
use tabled::settings::object::Columns;
use tabled::settings::{Alignment, Padding, Style};

use crate::args::Output;

/// Renders rows under a header as a terminal or Markdown table. Columns listed in `numeric`
/// are right-aligned.
pub fn table(output: Output, header: &[&str], rows: &[Vec<String>], numeric: &[usize]) -> String {
    let mut builder = Builder::with_capacity(rows.len() + 1, header.len());
    builder.push_record(header.iter().copied());
    for row in rows {
        builder.push_record(row.iter().map(String::as_str));
    }
    let mut table = builder.build();
    match output {
        Output::Markdown => {
            table.with(Style::markdown());
        }
        _ => {
            // kubectl-like: no borders, columns three spaces apart, nothing before the first.
            table.with(Style::empty()).with(Padding::new(0, 3, 0, 0));
        }
    }
    for &col in numeric {
        table.modify(Columns::one(col), Alignment::right());
    }
    let mut text = table.to_string();
    // Padding leaves trailing blanks on every line; they only get in the way.
    text = text
        .lines()
        .map(str::trim_end)
        .collect::<Vec<_>>()
        .join("\n");
    text.push('\n');
    text
}

/// Pretty JSON with a trailing newline.
pub fn json<T: serde::Serialize>(value: &T) -> Result<String, crate::outcome::CommandError> {
    let mut s = serde_json::to_string_pretty(value).map_err(|e| {
        crate::outcome::CommandError::Internal(format!("cannot serialise JSON: {e}"))
    })?;
    s.push('\n');
    Ok(s)
}
