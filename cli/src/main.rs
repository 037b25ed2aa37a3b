//! `eniplan`: the planner CLI. Thin: parses arguments, calls the `planner` and `capacity`
//! libraries, renders. This file only parses, dispatches and maps a command's outcome
//! ([`outcome`]) to an exit code.
//!
//! Exit codes (documented in docs/cli.md):
//! * 0 — success;
//! * 1 — the command ran but the answer is negative (no type matched the filters; a capacity
//!   gate of `eniplan report` failed);
//! * 2 — bad input (unknown instance type, invalid flag value, pattern matching nothing);
//! * 3 — internal or I/O error.

mod args;
mod commands;
mod outcome;
mod render;
mod svg;
mod values;

use std::io::Write as _;
use std::process::ExitCode;

use clap::Parser as _;

use outcome::{CommandError, CommandOutput};

/// Documented exit codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Exit {
    Success = 0,
    Negative = 1,
    BadInput = 2,
    Internal = 3,
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> Self {
        ExitCode::from(e as u8)
    }
}

fn main() -> ExitCode {
    let cli = args::Cli::parse(); // clap prints usage errors itself and exits 2
    let result = match &cli.command {
        args::Command::MaxPods(a) => commands::max_pods::run(a),
        args::Command::InstanceTypes(a) => commands::instance_types::run(a),
        args::Command::Simulate(a) => commands::simulate::run(a),
        args::Command::Forecast(a) => commands::forecast::run(a),
        args::Command::Subnets(a) => commands::subnets::run(a),
        args::Command::Layout(a) => commands::layout::run(a),
        args::Command::ApiBudget(a) => commands::api_budget::run(a),
        args::Command::Report(a) => commands::report::run(a),
        args::Command::Schema => Ok(CommandOutput {
            stdout: capacity::spec::schema_json(),
            ..CommandOutput::default()
        }),
    };
    match result {
        Ok(report) => emit(&report).into(),
        Err(err) => {
            let (exit, message) = match err {
                CommandError::Planner(e) => (Exit::BadInput, e.to_string()),
                CommandError::Capacity(e) => (Exit::BadInput, e.to_string()),
                CommandError::Usage(m) => (Exit::BadInput, m),
                CommandError::NoMatch(m) => (Exit::Negative, m),
                CommandError::Internal(m) => (Exit::Internal, m),
            };
            eprintln!("error: {message}");
            exit.into()
        }
    }
}

/// Writes a command's output. A closed stdout (`eniplan ... | head`) is not an error.
fn emit(report: &CommandOutput) -> Exit {
    let mut out = std::io::stdout().lock();
    match out
        .write_all(report.stdout.as_bytes())
        .and_then(|()| out.flush())
    {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Exit::Success,
        Err(e) => {
            eprintln!("error: cannot write output: {e}");
            return Exit::Internal;
        }
    }
    let mut err = std::io::stderr().lock();
    for note in &report.notes {
        let _ = writeln!(err, "note: {note}");
    }
    if report.negative {
        Exit::Negative
    } else {
        Exit::Success
    }
}
