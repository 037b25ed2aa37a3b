//! Replays every committed corpus input and every crash ever found through its target's check,
//! on stable: what the fuzzers established stays established without nightly.

use std::path::{Path, PathBuf};

fn inputs(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.expect("a readable directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

#[test]
fn every_corpus_input_and_every_crash_passes_its_check() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut failed = Vec::new();
    for (name, check) in eniplan_fuzz::TARGETS {
        let corpus = inputs(&root.join("corpus").join(name));
        assert!(
            !corpus.is_empty(),
            "fuzz/corpus/{name} is empty: seed it (scripts/fuzz --seed) and commit it"
        );
        let regressions = inputs(&root.join("regressions").join(name));
        let before = eniplan_fuzz::accepted_count();
        for file in corpus.iter().chain(&regressions) {
            let data = std::fs::read(file).expect("a readable input");
            if std::panic::catch_unwind(|| check(&data)).is_err() {
                failed.push(
                    file.strip_prefix(root)
                        .unwrap_or(file)
                        .display()
                        .to_string(),
                );
            }
        }
        assert!(
            eniplan_fuzz::accepted_count() > before,
            "no input in fuzz/corpus/{name} is accepted: its round trips are never checked"
        );
    }
    assert!(
        failed.is_empty(),
        "inputs that fail their check: {failed:#?}"
    );
}

#[test]
fn every_target_has_a_fuzz_driver() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let manifest =
        std::fs::read_to_string(root.join("driver/Cargo.toml")).expect("the driver's manifest");
    for (name, _) in eniplan_fuzz::TARGETS {
        let source = std::fs::read_to_string(root.join(format!("driver/fuzz_targets/{name}.rs")))
            .unwrap_or_else(|_| panic!("fuzz/driver/fuzz_targets/{name}.rs is missing"));
        assert!(
            source.contains(&format!("eniplan_fuzz::target(\"{name}\")")),
            "{name}.rs runs another check"
        );
        assert!(
            manifest.contains(&format!("name = \"{name}\"")),
            "driver/Cargo.toml has no [[bin]] {name}"
        );
    }
}
