//! `eniplan report`: the forecast with CI gates, as Markdown, JSON or JUnit XML. Exit 1 when a
//! gate fails (the report is still printed).

use std::fmt::Write as _;

use capacity::forecast::{Forecast, forecast};
use capacity::gates::{self, Check, Gates};
use serde::Serialize;

use super::common::{self, Bar};
use crate::args::{Output, ReportArgs, ReportFormat};
use crate::outcome::{CommandError, CommandOutput};
use crate::render;

fn gates_of(args: &ReportArgs) -> Gates {
    Gates {
        min_headroom_percent: args.fail_under_headroom,
        exhausted_within_days: args.fail_if_exhausted_within,
        min_free_blocks: args.fail_under_free_blocks,
        fragmented: args.fail_if_fragmented,
        unserved: args.fail_if_unserved,
        over_capacity: args.fail_if_over_capacity,
    }
}

#[derive(Serialize)]
struct JsonReport<'a> {
    passed: bool,
    failed: usize,
    checks: &'a [Check],
    forecast: &'a Forecast,
}

pub fn run(args: &ReportArgs) -> Result<CommandOutput, CommandError> {
    let cluster = common::read_spec(&args.spec.spec)?;
    let options = common::forecast_options(&args.spec);
    let g = gates_of(args);
    let f = {
        let bar = Bar::new(args.spec.progress);
        forecast(&cluster, &options, &mut |p| bar.update(p))?
    };
    let checks = gates::evaluate(&f, &g);
    let failed = checks.iter().filter(|c| !c.passed).count();
    let stdout = match args.format {
        ReportFormat::Markdown => markdown(&f, &checks),
        ReportFormat::Json => render::json(&JsonReport {
            passed: failed == 0,
            failed,
            checks: &checks,
            forecast: &f,
        })?,
        ReportFormat::Junit => junit(&f, &checks),
    };
    Ok(CommandOutput {
        stdout,
        notes: f.notes.clone(),
        negative: failed > 0,
    })
}

fn markdown(f: &Forecast, checks: &[Check]) -> String {
    let failed = checks.iter().filter(|c| !c.passed).count();
    let mut out = format!("## eniplan capacity report: {}\n\n", f.cluster);
    if checks.is_empty() {
        out.push_str("No gates were asked for (see `eniplan report --help`).\n");
    } else if failed == 0 {
        let _ = writeln!(
            out,
            ":white_check_mark: **All {} checks passed.**",
            checks.len()
        );
    } else {
        let _ = writeln!(out, ":x: **{failed} of {} checks failed.**", checks.len());
    }
    if !checks.is_empty() {
        out.push('\n');
        let rows: Vec<Vec<String>> = checks
            .iter()
            .map(|c| {
                vec![
                    format!("`--{}`", c.gate),
                    c.subject.clone(),
                    if c.passed { "pass" } else { "**FAIL**" }.to_owned(),
                    c.detail.clone(),
                ]
            })
            .collect();
        out.push_str(&render::table(
            Output::Markdown,
            &["gate", "subject", "result", "detail"],
            &rows,
            &[],
        ));
    }
    out.push('\n');
    out.push_str(&super::forecast::text(f, Output::Markdown));
    if !f.notes.is_empty() {
        out.push_str("\n### Notes\n\n");
        for n in &f.notes {
            let _ = writeln!(out, "* {n}");
        }
    }
    out
}

fn xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

/// JUnit XML: one test case per check (class = the gate, name = the subnet or group).
pub fn junit(f: &Forecast, checks: &[Check]) -> String {
    let failed = checks.iter().filter(|c| !c.passed).count();
    let n = checks.len();
    let mut out = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"eniplan\" tests=\"{n}\" failures=\"{failed}\">\n  <testsuite name=\"eniplan capacity: {}\" tests=\"{n}\" failures=\"{failed}\" errors=\"0\" skipped=\"0\">\n",
        xml(&f.cluster)
    );
    for c in checks {
        let _ = write!(
            out,
            "    <testcase classname=\"eniplan.{}\" name=\"{}\"",
            c.gate,
            xml(&c.subject)
        );
        if c.passed {
            let _ = writeln!(
                out,
                ">\n      <system-out>{}</system-out>\n    </testcase>",
                xml(&c.detail)
            );
        } else {
            let _ = writeln!(
                out,
                ">\n      <failure type=\"{}\" message=\"{}\">{}</failure>\n    </testcase>",
                c.gate,
                xml(&c.detail),
                xml(&c.detail)
            );
        }
    }
    out.push_str("  </testsuite>\n</testsuites>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xml_special_characters_to_entities() {
        assert_eq!(
            xml(r#"<a & 'b' "c">"#),
            "&lt;a &amp; &apos;b&apos; &quot;c&quot;&gt;"
        );
    }
}
