//! `docs/iam-policy.json` grants exactly the EC2 actions that ipamd and `eniplan subnets --live`
//! send, and its conditions name only tags ipamd puts on every ENI it creates. Everything is
//! read from source, so a new call or a renamed tag fails here rather than on a node:
//!
//! * the SDK operation of each method of `impl Ec2 for AwsEc2` (`self.client.<operation>()` in
//!   `cloud/src/aws.rs`), mapped `snake_case` → `ec2:PascalCase`;
//! * which of those methods the binaries call (`.<method>(` in the non-test code of
//!   `ipamd/src` and `cli/src`): a method only tests use needs no grant;
//! * the tags from the constants in `ipamd/src/node.rs` that `new_eni_tags` always inserts.
//!
//! Why each statement has its resources and conditions: `terraform/README.md`, section IAM.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::Value;

const ADAPTER: &str = include_str!("../src/aws.rs");
const POLICY: &str = include_str!("../../docs/iam-policy.json");
const NODE: &str = include_str!("../../ipamd/src/node.rs");
/// Crates whose binaries run with the policy: the daemon and the CLI (`subnets --live`).
const CALLERS: [&str; 2] = ["ipamd/src", "cli/src"];

fn compact(text: &str) -> String {
    text.chars().filter(|c| !c.is_whitespace()).collect()
}

/// `describe_subnets` → `ec2:DescribeSubnets`.
fn action(operation: &str) -> String {
    let pascal: String = operation
        .split('_')
        .map(|word| {
            let mut chars = word.chars();
            chars.next().map_or_else(String::new, |first| {
                first.to_ascii_uppercase().to_string() + chars.as_str()
            })
        })
        .collect();
    format!("ec2:{pascal}")
}

/// The text from `start` up to the first line that is a lone `}` (the end of a top-level item).
fn item<'a>(source: &'a str, start: &str) -> &'a str {
    let from = source
        .find(start)
        .unwrap_or_else(|| panic!("`{start}` is no longer in the source; update this test"));
    let len = source[from..].find("\n}\n").expect("the item ends");
    &source[from..from + len]
}

/// Identifiers called on `self.client` in compacted text: `self.client.create_tags()`.
fn sdk_calls(compacted: &str) -> Vec<String> {
    compacted
        .match_indices("self.client.")
        .filter_map(|(at, marker)| {
            let rest = &compacted[at + marker.len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            rest[name.len()..].starts_with("()").then_some(name)
        })
        .collect()
}

/// Method of `impl Ec2 for AwsEc2` → the SDK operations it sends.
fn adapter_operations() -> BTreeMap<String, BTreeSet<String>> {
    let before = &ADAPTER[..ADAPTER.find("impl Ec2 for AwsEc2 {").expect("the impl")];
    assert_eq!(
        sdk_calls(&compact(before)),
        Vec::<String>::new(),
        "cloud/src/aws.rs calls EC2 outside `impl Ec2 for AwsEc2`; move the call into a trait \
         method so that this test sees it"
    );
    let mut out = BTreeMap::new();
    for method in item(ADAPTER, "impl Ec2 for AwsEc2 {")
        .split("\n    async fn ")
        .skip(1)
    {
        let name = method[..method.find('(').expect("a signature")].to_owned();
        let operations: BTreeSet<String> = sdk_calls(&compact(method)).into_iter().collect();
        assert!(
            !operations.is_empty(),
            "AwsEc2::{name} calls no `self.client.<operation>()`: this test no longer reads \
             the adapter right"
        );
        // The adapter names each call in its errors (`let api = "CreateTags";`): it must be the
        // action this test derives, so the snake_case mapping is checked against the code.
        if let Some((_, rest)) = method.split_once("let api = \"") {
            let api = &rest[..rest.find('"').expect("a closing quote")];
            for operation in &operations {
                assert_eq!(action(operation), format!("ec2:{api}"), "AwsEc2::{name}");
            }
        }
        out.insert(name, operations);
    }
    assert!(
        out.len() >= 10,
        "found only {out:?} in `impl Ec2 for AwsEc2`"
    );
    out
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The callers' production code, compacted, by file. Test code is left out: what follows
/// `#[cfg(test)]` in a file (test modules sit at the end) and files named `tests.rs`.
fn callers_code() -> Vec<(String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = Vec::new();
    for dir in CALLERS {
        rust_files(&root.join(dir), &mut files);
    }
    files
        .into_iter()
        .filter(|p| p.file_name().is_none_or(|n| n != "tests.rs"))
        .map(|p| {
            let text = std::fs::read_to_string(&p).expect("a source file");
            let code = text.split("#[cfg(test)]").next().unwrap_or_default();
            let shown = p.strip_prefix(&root).unwrap_or(&p).display().to_string();
            (shown, compact(code))
        })
        .collect()
}

/// `ec2:Action` → the adapter methods that send it and the files that call those methods.
fn actions_sent() -> (BTreeMap<String, Vec<String>>, Vec<String>) {
    let code = callers_code();
    let mut sent: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut unused = Vec::new();
    for (method, operations) in adapter_operations() {
        let call = format!(".{method}(");
        let files: Vec<&str> = code
            .iter()
            .filter(|(_, text)| text.contains(&call))
            .map(|(file, _)| file.as_str())
            .collect();
        if files.is_empty() {
            unused.push(method);
            continue;
        }
        for operation in operations {
            sent.entry(action(&operation))
                .or_default()
                .push(format!("AwsEc2::{method} (called in {})", files.join(", ")));
        }
    }
    (sent, unused)
}

fn policy() -> Vec<Value> {
    let doc: Value = serde_json::from_str(POLICY).expect("docs/iam-policy.json is JSON");
    doc["Statement"]
        .as_array()
        .expect("docs/iam-policy.json has a Statement list")
        .clone()
}

/// A string or a list of strings (IAM allows both for Action, Resource and condition values).
fn strings(value: &Value) -> Vec<String> {
    match value {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => items.iter().flat_map(strings).collect(),
        _ => vec![],
    }
}

#[test]
fn the_policy_grants_exactly_the_actions_the_binaries_send() {
    let (sent, unused) = actions_sent();
    let granted: BTreeSet<String> = policy()
        .iter()
        .flat_map(|s| strings(&s["Action"]))
        .collect();
    let mut problems = Vec::new();
    for (action, by) in &sent {
        if !granted.contains(action) {
            problems.push(format!(
                "docs/iam-policy.json does not grant {action}, which {} sends: add it to a \
                 statement (scoped as tightly as EC2 allows) and explain it in \
                 terraform/README.md, section IAM",
                by.join("; ")
            ));
        }
    }
    for action in &granted {
        if !sent.contains_key(action) {
            problems.push(format!(
                "docs/iam-policy.json grants {action}, which neither ipamd nor `eniplan subnets \
                 --live` sends (adapter methods no binary calls: {}): remove it from the policy \
                 and from terraform/README.md",
                unused.join(", ")
            ));
        }
    }
    assert!(problems.is_empty(), "\n{}\n", problems.join("\n"));
}

#[test]
fn only_describe_calls_are_granted_on_every_resource() {
    for statement in policy() {
        if strings(&statement["Resource"]).iter().any(|r| r == "*") {
            for action in strings(&statement["Action"]) {
                assert!(
                    action.starts_with("ec2:Describe"),
                    "statement {} grants {action} on \"*\": EC2 authorises it per resource, so \
                     name the resource types (arn:aws:ec2:*:*:network-interface/* ...)",
                    statement["Sid"]
                );
            }
        }
    }
}

/// The values of `pub const NAME: &str = "value";` in `source`, by name.
fn constants(source: &str) -> BTreeMap<&str, &str> {
    source
        .lines()
        .filter_map(|line| {
            let rest = line.trim().strip_prefix("pub const ")?;
            let (name, value) = rest.split_once(": &str = \"")?;
            Some((name, value.strip_suffix("\";")?))
        })
        .collect()
}

/// The tag keys `new_eni_tags` inserts on every path: `tags.insert(CONSTANT...` at the
/// function's top level (four spaces in), not inside an `if`.
fn tags_on_every_new_eni() -> BTreeSet<String> {
    let values = constants(NODE);
    let body = item(NODE, "pub fn new_eni_tags(");
    let keys: BTreeSet<String> = body
        .lines()
        .filter_map(|line| line.strip_prefix("    tags.insert("))
        .filter_map(|rest| rest.split_once(".to_owned()").map(|(name, _)| name))
        .map(|name| {
            (*values
                .get(name)
                .unwrap_or_else(|| panic!("{name} is not a `pub const` of ipamd/src/node.rs")))
            .to_owned()
        })
        .collect();
    assert!(
        keys.contains(values["TAG_INSTANCE_ID"]),
        "new_eni_tags no longer always sets TAG_INSTANCE_ID: {keys:?}"
    );
    keys
}

#[test]
fn tag_conditions_name_tags_ipamd_always_sets() {
    let set = tags_on_every_new_eni();
    let mut named = BTreeMap::new();
    for statement in policy() {
        let Some(operators) = statement["Condition"].as_object() else {
            continue;
        };
        for (operator, keys) in operators {
            for (key, value) in keys.as_object().expect("condition keys") {
                let tags = match key.split_once('/') {
                    Some(("aws:RequestTag" | "aws:ResourceTag" | "ec2:ResourceTag", tag)) => {
                        vec![tag.to_owned()]
                    }
                    _ if key == "aws:TagKeys" => strings(value),
                    _ => continue,
                };
                for tag in tags {
                    named.insert(tag, format!("{} ({operator} {key})", statement["Sid"]));
                }
            }
        }
    }
    assert!(
        !named.is_empty(),
        "docs/iam-policy.json no longer conditions any call on the tags of ipamd's ENIs"
    );
    for (tag, place) in &named {
        assert!(
            set.contains(tag),
            "docs/iam-policy.json, statement {place}, names the tag {tag:?}, which \
             new_eni_tags (ipamd/src/node.rs) does not put on every ENI it creates (it always \
             sets {set:?}): a node would be refused; condition on one of those instead"
        );
    }
}
