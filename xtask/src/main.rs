//! `cargo xtask <task>`: project chores that need no extra tools.
//!
//! * `gen-catalogue` regenerates `planner/src/catalogue/table.rs` from `data/*.json`.
//! * `gen-catalogue --check` fails (exit 1) when the committed table is stale.

mod catalogue;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one level below the workspace root")
        .to_path_buf()
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        ["gen-catalogue"] => report(catalogue::write(&workspace_root())),
        ["gen-catalogue", "--check"] => report(catalogue::check(&workspace_root())),
        _ => {
            eprintln!("usage: cargo xtask gen-catalogue [--check]");
            ExitCode::from(2)
        }
    }
}

fn report(result: Result<String, String>) -> ExitCode {
    match result {
        Ok(message) => {
            println!("{message}");
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}
