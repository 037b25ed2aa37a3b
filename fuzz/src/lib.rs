//! What each fuzz target checks, as plain functions over bytes.
//!
//! `cargo fuzz` drives them from `fuzz/driver` (nightly, libFuzzer; `scripts/fuzz` runs every
//! target for a set time), and `tests/replay.rs` replays the committed corpora
//! (`fuzz/corpus/<target>`) and every crash ever found (`fuzz/regressions/<target>`) on stable,
//! so the README's test command covers them without nightly.
//!
//! Each target parses outside input the way the product does and then checks more than "no
//! panic" where it can: a parsed value re-serialises to the same meaning, an error names the
//! offending value, a rejected input changes nothing. A broken property panics, which libFuzzer
//! records as a crash.

pub mod cloud;
pub mod cni;
pub mod daemon;
pub mod kube;
pub mod planning;

/// A target: its name (the file names under `fuzz/`) and its check.
pub type Target = (&'static str, fn(&[u8]));

/// Every target, in the order `scripts/fuzz` runs them.
pub const TARGETS: &[Target] = &[
    ("cni_config", cni::config),
    ("cni_prev_result", cni::prev_result),
    ("cni_gc_attachments", cni::gc_attachments),
    ("checkpoint", daemon::checkpoint),
    ("rpc_messages", daemon::rpc_messages),
    ("socket_authority", daemon::socket_authority),
    ("daemon_env", daemon::env),
    ("pod_eni_annotation", kube::pod_eni_annotation),
    ("eniconfig", kube::eniconfig),
    ("imds_answers", cloud::imds_answers),
    ("ec2_replies", cloud::ec2_replies),
    ("cluster_spec", planning::cluster_spec),
    ("trace", planning::trace),
];

/// The check named `name`.
pub fn target(name: &str) -> Option<fn(&[u8])> {
    TARGETS.iter().find(|(n, _)| *n == name).map(|(_, f)| *f)
}

thread_local! {
    static ACCEPTED: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Marks that the current input reached its target's accepting path (the one the round trips
/// and invariants check), so the replay test can tell a corpus that only exercises refusals.
pub(crate) fn accepted() {
    ACCEPTED.with(|c| c.set(c.get() + 1));
}

/// How many inputs on this thread reached an accepting path so far.
pub fn accepted_count() -> u64 {
    ACCEPTED.with(std::cell::Cell::get)
}

/// `data` cut at NUL bytes: one input, several fields (how the structured targets read theirs).
pub(crate) fn fields(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    data.split(|b| *b == 0)
}
