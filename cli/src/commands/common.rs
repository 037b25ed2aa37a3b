//! What the spec-driven commands share: reading the spec, the progress bar, number formats.

use std::path::Path;

use capacity::forecast::{self, Progress};
use capacity::spec::Cluster;
use indicatif::{ProgressBar, ProgressStyle};

use crate::args::{ProgressMode, SpecOptions};
use crate::outcome::CommandError;

/// The largest cluster spec read: a thousand node groups and subnets take well under 1 MiB.
pub const MAX_SPEC_BYTES: u64 = 4 * 1024 * 1024;
/// The largest env file read (`simulate --env-file`).
pub const MAX_ENV_FILE_BYTES: u64 = 1024 * 1024;
/// The largest trace read (`simulate --trace`): about three million events.
pub const MAX_TRACE_BYTES: u64 = 64 * 1024 * 1024;

/// Reads the `what` at `path` as text, refusing one over `max` bytes before reading it (a
/// wrong path can name a disk image), with errors that name the file.
pub fn read_input(path: &Path, what: &str, max: u64) -> Result<String, CommandError> {
    let cannot = |e: std::io::Error| {
        CommandError::Usage(format!("cannot read {what} {}: {e}", path.display()))
    };
    let size = std::fs::metadata(path).map_err(cannot)?.len();
    if size > max {
        return Err(CommandError::Usage(format!(
            "{what} {} is {size} bytes; eniplan reads at most {max} (is this the right file?)",
            path.display()
        )));
    }
    std::fs::read_to_string(path).map_err(cannot)
}

/// Reads and validates a cluster spec. Problems name the file.
pub fn read_spec(path: &Path) -> Result<Cluster, CommandError> {
    let text = read_input(path, "cluster spec", MAX_SPEC_BYTES)?;
    capacity::spec::load(&text).map_err(|e| CommandError::Usage(format!("{}: {e}", path.display())))
}

/// The forecast settings from the shared flags.
pub fn forecast_options(o: &SpecOptions) -> forecast::Options {
    forecast::Options {
        window: o.window,
        horizon_days: o.horizon,
    }
}

/// A progress bar on stderr, drawn only when stderr is a terminal (indicatif hides it
/// otherwise), and never with `--progress never`.
pub struct Bar {
    bar: Option<ProgressBar>,
}

impl Bar {
    /// A bar for this mode.
    pub fn new(mode: ProgressMode) -> Bar {
        let bar = (mode == ProgressMode::Auto).then(|| {
            let b = ProgressBar::new(0);
            if let Ok(style) =
                ProgressStyle::with_template("{msg:>14} [{bar:40}] {pos}/{len} {elapsed}")
            {
                b.set_style(style.progress_chars("=> "));
            }
            b
        });
        Bar { bar }
    }

    /// Updates the bar from a planner progress report.
    pub fn update(&self, p: Progress) {
        if let Some(b) = &self.bar {
            if b.length() != Some(p.total) || b.message() != p.phase {
                b.set_length(p.total);
                b.set_message(p.phase);
            }
            b.set_position(p.done);
        }
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

/// `12345` → `12,345`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Seconds as `3m 20s`, `1h 02m`, `45.2s`.
pub fn duration(secs: f64) -> String {
    if secs < 60.0 {
        return format!("{secs:.1}s");
    }
    let whole = planner_round(secs);
    if whole < 3600 {
        format!("{}m {:02}s", whole / 60, whole % 60)
    } else {
        format!("{}h {:02}m", whole / 3600, whole / 60 % 60)
    }
}

fn planner_round(v: f64) -> u64 {
    #[expect(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "a non-negative duration in seconds, far below 2^53"
    )]
    let r = v.max(0.0).round() as u64;
    r
}

/// Days as `in 197 days`, `now`, `not within 730 days`.
pub fn days(d: Option<u32>, horizon: u32) -> String {
    match d {
        Some(0) => "now".to_owned(),
        Some(d) => format!("{d} days"),
        None => format!("> {horizon} days"),
    }
}

/// Writes a file the user asked for (a plot).
pub fn write_file(path: &Path, text: &str) -> Result<(), CommandError> {
    std::fs::write(path, text)
        .map_err(|e| CommandError::Internal(format!("cannot write {}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_to_readable_text() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(1234), "1,234");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(duration(12.34), "12.3s");
        assert_eq!(duration(200.0), "3m 20s");
        assert_eq!(duration(3725.0), "1h 02m");
        assert_eq!(days(Some(0), 730), "now");
        assert_eq!(days(None, 730), "> 730 days");
    }
}
