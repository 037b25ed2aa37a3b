//! Whole-process tests of the `eniplan` binary: stdout, stderr and exit code, as insta
//! snapshots (see `tests/snapshots/`). Review changes with `cargo insta review` or by reading
//! the `.snap.new` files.

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};

use insta_cmd::{assert_cmd_snapshot, get_cargo_bin};

fn eniplan() -> Command {
    Command::new(get_cargo_bin("eniplan"))
}

macro_rules! snap {
    ($name:ident, [$($arg:expr),* $(,)?]) => {
        #[test]
        fn $name() {
            let args: &[&str] = &[$($arg),*];
            assert_cmd_snapshot!(stringify!($name), eniplan().args(args));
        }
    };
}

// The headline: one type, bare number.
snap!(max_pods_m5_large, ["max-pods", "m5.large"]);
snap!(max_pods_t3_medium, ["max-pods", "t3.medium"]);
snap!(
    max_pods_p5_48xlarge_default_card,
    ["max-pods", "p5.48xlarge"]
);
snap!(
    max_pods_m5_large_custom_networking,
    ["max-pods", "m5.large", "--custom-networking"]
);
snap!(
    max_pods_m5_large_prefix_delegation,
    ["max-pods", "m5.large", "--prefix-delegation"]
);
snap!(
    max_pods_m5_large_prefix_delegation_uncapped,
    ["max-pods", "m5.large", "--prefix-delegation", "--uncapped"]
);
snap!(
    max_pods_show_max_allowed_alias,
    ["max-pods", "c6in.32xlarge", "--show-max-allowed"]
);
snap!(max_pods_trn1_32xlarge, ["max-pods", "trn1.32xlarge"]);
snap!(
    max_pods_xen_prefix_delegation_falls_back,
    ["max-pods", "m4.xlarge", "--prefix-delegation"]
);
snap!(
    max_pods_old_cni_prefix_delegation_falls_back,
    [
        "max-pods",
        "m5.large",
        "--prefix-delegation",
        "--cni-version",
        "1.8.0"
    ]
);
snap!(max_pods_unknown_vcpus, ["max-pods", "p3.16xlarge"]);
snap!(
    max_pods_vcpus_override,
    ["max-pods", "p3.16xlarge", "--vcpus", "64"]
);

// Several types, every format.
snap!(max_pods_pattern_table, ["max-pods", "m5.*"]);
snap!(
    max_pods_mixed_table_with_notes,
    [
        "max-pods",
        "m4.large",
        "m5.large",
        "t3.medium",
        "--prefix-delegation",
        "--security-groups-for-pods"
    ]
);
snap!(
    max_pods_markdown,
    ["max-pods", "m5.large", "m5.xlarge", "--output", "markdown"]
);
snap!(
    max_pods_plain_several,
    ["max-pods", "t3.*", "--output", "plain"]
);
snap!(
    max_pods_json,
    [
        "max-pods",
        "m5.large",
        "t3.medium",
        "--security-groups-for-pods",
        "--max-eni",
        "2",
        "--output",
        "json"
    ]
);
snap!(
    max_pods_explain_everything,
    [
        "max-pods",
        "m5.xlarge",
        "--explain",
        "--prefix-delegation",
        "--custom-networking",
        "--security-groups-for-pods",
        "--max-eni",
        "3",
        "--reserved-enis",
        "1"
    ]
);
snap!(
    max_pods_explain_multi_card,
    ["max-pods", "p5.48xlarge", "--explain"]
);
snap!(
    max_pods_explain_json,
    ["max-pods", "t3.small", "--explain", "--output", "json"]
);

// Bad input: exit 2, nothing on stdout.
snap!(max_pods_unknown_type, ["max-pods", "m5.lrge"]);
snap!(
    max_pods_unknown_type_after_good_one,
    ["max-pods", "m5.large", "m5.lrge"]
);
snap!(max_pods_unknown_family_suggests_sizes, ["max-pods", "m5"]);
snap!(max_pods_pattern_matches_nothing, ["max-pods", "zz.*"]);
snap!(max_pods_bad_pattern, ["max-pods", "m5.["]);
snap!(
    max_pods_max_eni_zero,
    ["max-pods", "m5.large", "--max-eni", "0"]
);
snap!(
    max_pods_max_eni_not_a_number,
    ["max-pods", "m5.large", "--max-eni", "two"]
);
snap!(
    max_pods_bad_cni_version,
    ["max-pods", "m5.large", "--cni-version", "abc"]
);
snap!(max_pods_no_type, ["max-pods"]);
snap!(max_pods_all_with_type, ["max-pods", "--all", "m5.large"]);

// The catalogue.
snap!(instance_types_pattern, ["instance-types", "p5*"]);
snap!(
    instance_types_filters,
    [
        "instance-types",
        "--family",
        "c6in",
        "--min-enis",
        "8",
        "--trunking"
    ]
);
snap!(
    instance_types_xen_metal_none,
    ["instance-types", "--hypervisor", "xen", "--bare-metal"]
);
snap!(
    instance_types_plain,
    ["instance-types", "t3*", "--output", "plain"]
);
snap!(
    instance_types_json,
    ["instance-types", "c6in.32xlarge", "--output", "json"]
);
snap!(
    instance_types_markdown,
    ["instance-types", "--family", "t4g", "--output", "markdown"]
);
snap!(
    instance_types_conflicting_filters,
    ["instance-types", "--trunking", "--no-trunking"]
);
snap!(instance_types_unknown_type, ["instance-types", "c7z.large"]);

// Help is part of the interface.
snap!(help, ["--help"]);
snap!(help_max_pods, ["max-pods", "--help"]);
snap!(help_instance_types, ["instance-types", "--help"]);
snap!(no_command, []);

fn json_of(args: &[&str]) -> serde_json::Value {
    let out = eniplan().args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn all_types_json_has_one_object_per_catalogue_entry_in_every_mode() {
    for flags in [
        &[][..],
        &["--prefix-delegation"],
        &["--custom-networking"],
        &["--security-groups-for-pods"],
        &[
            "--prefix-delegation",
            "--custom-networking",
            "--security-groups-for-pods",
            "--max-eni",
            "4",
        ],
    ] {
        let mut args = vec!["max-pods", "--all", "--output", "json"];
        args.extend_from_slice(flags);
        let rows = json_of(&args);
        let rows = rows.as_array().unwrap();
        assert_eq!(rows.len(), 1391, "{flags:?}");
        for row in rows {
            let max = row["max_pods"].as_u64().unwrap();
            let rec = row["recommended_max_pods"].as_u64().unwrap();
            assert!(rec <= max && rec <= 250, "{row}");
            let mode = row["mode"].as_str().unwrap();
            assert!(
                mode == "secondary-ip" || mode == "prefix-delegation",
                "{row}"
            );
        }
    }
}

#[test]
fn all_types_default_json_agrees_with_the_catalogue_formula() {
    let rows = json_of(&["max-pods", "--all", "--output", "json"]);
    let types = json_of(&["instance-types", "--output", "json"]);
    let by_name: std::collections::BTreeMap<&str, &serde_json::Value> = types
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["name"].as_str().unwrap(), t))
        .collect();
    for row in rows.as_array().unwrap() {
        let t = by_name[row["instance_type"].as_str().unwrap()];
        let e = t["max_enis"].as_u64().unwrap();
        let i = t["ipv4_per_eni"].as_u64().unwrap();
        assert_eq!(row["max_pods"].as_u64().unwrap(), e * (i - 1) + 2, "{row}");
        assert_eq!(t["max_pods"], row["max_pods"]);
    }
}

#[test]
fn closed_stdout_is_not_an_error() {
    // The --all table is far larger than a pipe buffer, so the writer meets the closed pipe.
    let mut child = eniplan()
        .args(["max-pods", "--all", "--explain"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.starts_with("a1.medium:"), "{first}");
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

// Review follow-ups: lists, patterns matching one type, flag combinations, odd numbers.
snap!(max_pods_comma_list, ["max-pods", "m5.large,c5.large"]);
snap!(
    max_pods_pattern_matching_one_type_names_it,
    ["max-pods", "m[5].large"]
);
snap!(
    max_pods_explain_with_table_is_refused,
    ["max-pods", "m5.large", "--explain", "--output", "table"]
);
snap!(
    max_pods_negative_max_eni,
    ["max-pods", "m5.large", "--max-eni", "-1"]
);
snap!(
    max_pods_huge_max_eni_means_all,
    ["max-pods", "m5.large", "--max-eni", "99999999999"]
);
snap!(
    max_pods_trunk_needs_a_free_slot,
    [
        "max-pods",
        "m5.large",
        "--max-eni",
        "1",
        "--security-groups-for-pods",
        "--explain"
    ]
);
snap!(
    max_pods_reserved_enis_never_take_the_primary,
    ["max-pods", "m5.large", "--reserved-enis", "5"]
);
snap!(
    max_pods_custom_networking_without_pod_enis,
    ["max-pods", "hpc6id.32xlarge", "--custom-networking"]
);
snap!(max_pods_empty_name, ["max-pods", ""]);
snap!(
    instance_types_unknown_family,
    ["instance-types", "--family", "m5z"]
);

// `eniplan simulate`.
snap!(
    simulate_s02_m5_large,
    ["simulate", "--instance-type", "m5.large", "--pods", "0,10"]
);
snap!(
    simulate_s02_json,
    [
        "simulate", "-t", "m5.large", "--pods", "0,10", "--output", "json"
    ]
);
snap!(
    simulate_warm_ip_target_explain,
    [
        "simulate",
        "-t",
        "t3.small",
        "--pods",
        "0,4,0",
        "--set",
        "WARM_IP_TARGET=1",
        "--explain"
    ]
);
snap!(
    simulate_prefix_delegation,
    [
        "simulate",
        "-t",
        "t3.small",
        "--pods",
        "0,5,58,0",
        "--set",
        "ENABLE_PREFIX_DELEGATION=true",
        "--set",
        "WARM_PREFIX_TARGET=1",
        "--max-pods",
        "110"
    ]
);
snap!(
    simulate_node_full_leaves_pods_unserved,
    ["simulate", "-t", "t3.small", "--pods", "0,12"]
);
snap!(
    simulate_timed_trace,
    [
        "simulate",
        "-t",
        "m5.large",
        "--trace",
        "tests/data/churn.trace",
        "--set",
        "WARM_IP_TARGET=1",
        "--explain"
    ]
);
snap!(
    simulate_env_file,
    [
        "simulate",
        "-t",
        "m5.large",
        "--pods",
        "0,3",
        "--env-file",
        "tests/data/targets.env"
    ]
);
snap!(
    simulate_pd_on_xen_falls_back,
    [
        "simulate",
        "-t",
        "m4.large",
        "--pods",
        "0",
        "--set",
        "ENABLE_PREFIX_DELEGATION=true",
        "--set",
        "WARM_PREFIX_TARGET=1"
    ]
);
snap!(
    simulate_unknown_setting,
    [
        "simulate",
        "-t",
        "m5.large",
        "--pods",
        "0",
        "--set",
        "WARM_IP_TAGRET=5"
    ]
);
snap!(
    simulate_bad_setting_value,
    [
        "simulate",
        "-t",
        "m5.large",
        "--pods",
        "0",
        "--set",
        "WARM_IP_TARGET=five"
    ]
);
snap!(
    simulate_pd_without_target,
    [
        "simulate",
        "-t",
        "m5.large",
        "--pods",
        "0",
        "--set",
        "ENABLE_PREFIX_DELEGATION=true"
    ]
);
snap!(
    simulate_missing_trace_file,
    [
        "simulate",
        "-t",
        "m5.large",
        "--trace",
        "tests/data/nope.trace"
    ]
);
snap!(
    simulate_bad_subnet,
    [
        "simulate",
        "-t",
        "m5.large",
        "--pods",
        "0",
        "--subnet",
        "10.0.0.0/8"
    ]
);
snap!(simulate_needs_pods_or_trace, ["simulate", "-t", "m5.large"]);
snap!(help_simulate, ["simulate", "--help"]);
