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

// Capacity planning (issue 6): every command and format, exit codes. The specs are the worked
// examples of docs/planning.md.
const DEFAULT: &str = "../docs/examples/three-az-default.yaml";
const WARM_IP: &str = "../docs/examples/three-az-warm-ip.yaml";
const PD: &str = "../docs/examples/pd-fragmented.yaml";
const CN: &str = "../docs/examples/custom-networking.yaml";

snap!(forecast_three_az_default, ["forecast", DEFAULT]);
snap!(forecast_three_az_warm_ip_target, ["forecast", WARM_IP]);
snap!(forecast_pd_fragmented, ["forecast", PD]);
snap!(
    forecast_two_subnets_per_az_custom_networking_and_sgp,
    [
        "forecast",
        "tests/data/two-subnets-per-az.yaml",
        "--window",
        "3h"
    ]
);
snap!(
    forecast_markdown,
    ["forecast", CN, "--output", "markdown", "--window", "2h"]
);
snap!(
    forecast_json,
    [
        "forecast",
        PD,
        "--output",
        "json",
        "--window",
        "1h",
        "--horizon",
        "90d"
    ]
);
snap!(forecast_bad_spec, ["forecast", "tests/data/bad-spec.yaml"]);
snap!(
    forecast_yaml_syntax_error,
    ["forecast", "tests/data/syntax-error.yaml"]
);
snap!(forecast_missing_spec, ["forecast", "tests/data/nope.yaml"]);
snap!(
    forecast_bad_window,
    ["forecast", DEFAULT, "--window", "forever"]
);
snap!(forecast_plain_is_refused, ["forecast", PD, "-o", "plain"]);
snap!(
    subnets_live_without_spec_or_ids,
    ["subnets", "--live", "--region", "eu-west-1"]
);
snap!(subnets_pd_fragmented, ["subnets", PD]);
snap!(
    subnets_markdown_one_subnet,
    [
        "subnets", DEFAULT, "--subnet", "subnet-b", "--output", "markdown", "--top", "3"
    ]
);
snap!(
    subnets_json,
    ["subnets", PD, "--output", "json", "--no-map", "--top", "2"]
);
snap!(
    subnets_unknown_subnet,
    ["subnets", PD, "--subnet", "subnet-x"]
);
snap!(subnets_live_needs_subnets, ["subnets", "--live"]);
snap!(layout_yaml, ["layout", CN, "--cidr", "100.64.0.0/16"]);
snap!(
    layout_terraform,
    [
        "layout",
        CN,
        "--cidr",
        "100.64.0.0/16",
        "--format",
        "terraform"
    ]
);
snap!(
    layout_json_outside_vpc,
    [
        "layout",
        CN,
        "--cidr",
        "100.65.0.0/16",
        "--format",
        "json",
        "--headroom",
        "50%"
    ]
);
snap!(
    layout_security_groups_and_azs,
    [
        "layout",
        CN,
        "--cidr",
        "100.64.0.0/16",
        "--security-group",
        "sg-0123",
        "--azs",
        "eu-west-1a,eu-west-1b,eu-west-1c"
    ]
);
snap!(
    layout_does_not_fit,
    ["layout", CN, "--cidr", "100.64.0.0/17"]
);
snap!(
    layout_overlaps_a_subnet,
    ["layout", CN, "--cidr", "10.0.0.0/16"]
);
snap!(layout_bad_cidr, ["layout", CN, "--cidr", "100.64.0.0"]);
snap!(
    api_budget_default,
    ["api-budget", DEFAULT, "--scale-up", "500"]
);
snap!(
    api_budget_batches_markdown,
    [
        "api-budget",
        WARM_IP,
        "--scale-up",
        "200",
        "--batch",
        "50",
        "--interval",
        "30s",
        "--output",
        "markdown"
    ]
);
snap!(
    api_budget_json,
    ["api-budget", PD, "--scale-up", "20", "--output", "json"]
);
snap!(
    api_budget_unknown_group,
    ["api-budget", CN, "--scale-up", "10", "--node-group", "gpu"]
);
snap!(
    report_markdown_passes,
    [
        "report",
        WARM_IP,
        "--window",
        "1h",
        "--fail-if-exhausted-within",
        "90d",
        "--fail-if-fragmented"
    ]
);
snap!(
    report_markdown_fails,
    [
        "report",
        DEFAULT,
        "--window",
        "1h",
        "--fail-under-headroom",
        "20%",
        "--fail-if-exhausted-within",
        "1y",
        "--fail-if-over-capacity"
    ]
);
snap!(
    report_junit_fragmented,
    [
        "report",
        PD,
        "--format",
        "junit",
        "--fail-if-fragmented",
        "--fail-under-free-blocks",
        "4",
        "--fail-if-unserved"
    ]
);
snap!(
    report_json_no_gates,
    [
        "report",
        PD,
        "--format",
        "json",
        "--window",
        "1h",
        "--horizon",
        "30d"
    ]
);
snap!(
    report_bad_gate_value,
    ["report", DEFAULT, "--fail-under-headroom", "lots"]
);
snap!(help_forecast, ["forecast", "--help"]);
snap!(help_subnets, ["subnets", "--help"]);
snap!(help_layout, ["layout", "--help"]);
snap!(help_api_budget, ["api-budget", "--help"]);
snap!(help_report, ["report", "--help"]);

fn run(args: &[&str]) -> std::process::Output {
    eniplan().args(args).output().unwrap()
}

#[test]
fn report_exit_codes_zero_one_two() {
    let pass = run(&[
        "report",
        WARM_IP,
        "--window",
        "1h",
        "--fail-under-headroom",
        "10%",
    ]);
    assert_eq!(pass.status.code(), Some(0));
    let fail = run(&[
        "report",
        DEFAULT,
        "--window",
        "1h",
        "--fail-under-headroom",
        "20%",
    ]);
    assert_eq!(fail.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&fail.stdout).contains("**FAIL**"),
        "the report is printed even when a gate fails"
    );
    let bad = run(&["report", "tests/data/bad-spec.yaml"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(bad.stdout.is_empty(), "nothing on stdout for bad input");
}

#[test]
fn junit_report_is_well_formed_xml_with_one_case_per_check() {
    let out = run(&[
        "report",
        DEFAULT,
        "--window",
        "1h",
        "--format",
        "junit",
        "--fail-under-headroom",
        "20%",
        "--fail-if-over-capacity",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8(out.stdout).unwrap();
    let mut reader = quick_xml::Reader::from_str(&text);
    let (mut cases, mut failures) = (0, 0);
    loop {
        match reader.read_event().unwrap() {
            quick_xml::events::Event::Start(e) if e.name().as_ref() == b"testcase" => cases += 1,
            quick_xml::events::Event::Start(e) if e.name().as_ref() == b"failure" => {
                failures += 1;
            }
            quick_xml::events::Event::Eof => break,
            _ => {}
        }
    }
    // Three subnets for the headroom gate, one group for the capacity gate.
    assert_eq!((cases, failures), (4, 4));
}

#[test]
fn plots_are_svg_documents() {
    let dir = std::env::temp_dir().join(format!("eniplan-plot-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let forecast_svg = dir.join("forecast.svg");
    let map_svg = dir.join("map.svg");
    let out = run(&[
        "forecast",
        PD,
        "--window",
        "6h",
        "--plot",
        forecast_svg.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0));
    let svg = std::fs::read_to_string(&forecast_svg).unwrap();
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    assert!(svg.contains("polyline"), "the addresses-over-time lines");
    assert!(svg.contains("<path d="), "the /28 exhaustion marker");
    let out = run(&["subnets", PD, "--plot", map_svg.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    let svg = std::fs::read_to_string(&map_svg).unwrap();
    // A /21 has 128 blocks: one rectangle each, plus the legend's five and the background.
    assert_eq!(svg.matches("<rect").count(), 128 + 5 + 1);
    quick_xml::Reader::from_str(&svg)
        .read_event()
        .expect("well-formed");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn progress_is_silent_when_stderr_is_not_a_terminal() {
    let out = run(&["forecast", DEFAULT, "--window", "1h"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn committed_json_schema_matches_the_spec_types() {
    let out = run(&["schema"]);
    assert_eq!(out.status.code(), Some(0));
    let committed = std::fs::read_to_string("../docs/cluster-spec.schema.json").unwrap();
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        committed,
        "docs/cluster-spec.schema.json is stale: run `cargo run -p eniplan -- schema > docs/cluster-spec.schema.json`"
    );
}

#[test]
fn worked_examples_are_valid_against_the_schema_fields() {
    // Every example parses and validates (the docs promise they run as written).
    for spec in [DEFAULT, WARM_IP, PD, CN] {
        let text = std::fs::read_to_string(spec).unwrap();
        capacity::spec::load(&text).unwrap_or_else(|e| panic!("{spec}: {e}"));
    }
}

#[test]
fn oversized_and_alias_bomb_specs_are_refused_early() {
    use std::fmt::Write as _;
    let dir = std::env::temp_dir().join(format!("eniplan-bounds-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // Over the limit: refused from its size, before a byte is read.
    let big = dir.join("big.yaml");
    let file = std::fs::File::create(&big).unwrap();
    file.set_len(4 * 1024 * 1024 + 1).unwrap();
    let out = run(&["forecast", big.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("4194305 bytes") && stderr.contains("at most 4194304"),
        "{stderr}"
    );
    // YAML aliases nine deep (9^9 strings if expanded): refused as a bad spec, not expanded.
    let mut bomb =
        String::from("subnets: &a [\"x\",\"x\",\"x\",\"x\",\"x\",\"x\",\"x\",\"x\",\"x\"]\n");
    for level in 0..8 {
        let (prev, this) = (format!("l{level}"), format!("l{}", level + 1));
        let prev = if level == 0 { "a".to_owned() } else { prev };
        let refs = vec![format!("*{prev}"); 9].join(",");
        let _ = writeln!(bomb, "x{level}: &{this} [{refs}]");
    }
    let path = dir.join("bomb.yaml");
    std::fs::write(&path, bomb).unwrap();
    let out = run(&["forecast", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}
