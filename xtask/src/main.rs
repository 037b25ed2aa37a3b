//! `cargo xtask <task>`: project chores that need no extra tools.
//!
//! * `gen-catalogue` regenerates `planner/src/catalogue/table.rs` from `data/*.json`.
//! * `gen-catalogue --check` fails (exit 1) when the committed table is stale.
//! * `refresh-catalogue PAGE.json...` merges EC2's DescribeInstanceTypes output into `data/`,
//!   regenerates the table and prints how each max pods value changes (`refresh.rs`).
//! * `gen-crds` writes `deploy/crds/eniconfigs.yaml`, its copy in the Helm chart
//!   (`charts/eniplan/crds/`) and `harness/kube/crds/cninodes.yaml` from `eniplan-crd`'s types
//!   (the crate's tests fail when a file is stale).

mod catalogue;
mod refresh;

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
        ["gen-crds"] => report(gen_crds(&workspace_root())),
        ["refresh-catalogue", pages @ ..] => {
            let pages: Vec<PathBuf> = pages.iter().map(PathBuf::from).collect();
            report(refresh::refresh(&workspace_root(), &pages))
        }
        _ => {
            eprintln!(
                "usage: cargo xtask gen-catalogue [--check] | gen-crds | refresh-catalogue PAGE.json..."
            );
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

fn gen_crds(root: &Path) -> Result<String, String> {
    let dir = root.join("deploy/crds");
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let path = dir.join("eniconfigs.yaml");
    let yaml = serde_norway::to_string(&eniplan_crd::eniconfig_crd()).map_err(|e| e.to_string())?;
    let chart = root.join("charts/eniplan/crds");
    std::fs::create_dir_all(&chart).map_err(|e| format!("{}: {e}", chart.display()))?;
    for path in [&path, &chart.join("eniconfigs.yaml")] {
        std::fs::write(path, format!("{}{yaml}", eniplan_crd::MANIFEST_HEADER))
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    let fixture = root.join("harness/kube/crds");
    std::fs::create_dir_all(&fixture).map_err(|e| format!("{}: {e}", fixture.display()))?;
    let cninodes = fixture.join("cninodes.yaml");
    let yaml = serde_norway::to_string(&eniplan_crd::cninode_crd()).map_err(|e| e.to_string())?;
    std::fs::write(&cninodes, format!("{}{yaml}", eniplan_crd::CNINODE_HEADER))
        .map_err(|e| format!("{}: {e}", cninodes.display()))?;
    Ok(format!(
        "wrote {}, {} and {}",
        path.display(),
        chart.join("eniconfigs.yaml").display(),
        cninodes.display()
    ))
}
