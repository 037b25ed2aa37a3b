//! `cargo xtask refresh-catalogue PAGE.json...`: refreshes `data/` from EC2's own
//! DescribeInstanceTypes output and regenerates the embedded table, printing how every max pods
//! value changes.
//!
//! The pages are what `aws ec2 describe-instance-types --output json` prints: one file when the
//! CLI paginates for you, or one per page with `--no-paginate`/`--starting-token`, in which case
//! every page but one carries a `NextToken` and all of them must be given (a listing with a page
//! missing would silently drop types). EC2 lists the types of one region: types missing from
//! the pages are kept as they were (another region's), and the fields only the VPC resource
//! controller's table has (`branch_enis`, `trunking`) are kept for known types and start at
//! "not trunking" for new ones.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use planner::catalogue::Described;
use planner::max_pods::{Options, max_pods};
use serde::Deserialize;

use crate::catalogue::{Card, Record, TYPES_FILE, VCPUS_FILE};

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Page {
    instance_types: Vec<TypeInfo>,
    next_token: Option<String>,
}

/// One `InstanceTypeInfo` of the output; only what the catalogue holds.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TypeInfo {
    instance_type: String,
    #[serde(default)]
    hypervisor: String,
    #[serde(default)]
    bare_metal: bool,
    network_info: NetworkInfo,
    v_cpu_info: Option<VCpuInfo>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct NetworkInfo {
    maximum_network_interfaces: u32,
    ipv4_addresses_per_interface: u32,
    #[serde(default)]
    default_network_card_index: u32,
    #[serde(default)]
    network_cards: Vec<NetworkCard>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct NetworkCard {
    network_card_index: u32,
    maximum_network_interfaces: u32,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct VCpuInfo {
    default_v_cpus: u32,
}

/// Reads the pages: every type once, and no page missing.
fn read_pages(pages: &[PathBuf]) -> Result<Vec<TypeInfo>, String> {
    if pages.is_empty() {
        return Err("no page given: pass the JSON of `aws ec2 describe-instance-types`".to_owned());
    }
    let mut out: Vec<TypeInfo> = Vec::new();
    let mut open = Vec::new();
    for path in pages {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let page: Page = serde_json::from_str(&text)
            .map_err(|e| format!("{}: not DescribeInstanceTypes output ({e})", path.display()))?;
        if page.next_token.is_some() {
            open.push(path.display().to_string());
        }
        for t in page.instance_types {
            if out.iter().any(|o| o.instance_type == t.instance_type) {
                return Err(format!(
                    "{}: {} is listed twice across the pages",
                    path.display(),
                    t.instance_type
                ));
            }
            out.push(t);
        }
    }
    if open.len() != pages.len() - 1 {
        return Err(format!(
            "{} of {} pages carry a NextToken ({}): exactly one page (the last) has none when \
             the listing is complete; fetch the missing page with --starting-token",
            open.len(),
            pages.len(),
            open.join(", ")
        ));
    }
    Ok(out)
}

/// EC2's description as a data record, keeping `keep`'s trunking fields.
fn record_of(d: &TypeInfo, keep: Option<&Record>) -> Result<Record, String> {
    let name = d.instance_type.to_ascii_lowercase();
    let mut cards: Vec<Card> = d
        .network_info
        .network_cards
        .iter()
        .map(|c| Card {
            index: c.network_card_index,
            max_enis: c.maximum_network_interfaces,
        })
        .collect();
    cards.sort_by_key(|c| c.index);
    if cards.is_empty() {
        cards.push(Card {
            index: 0,
            max_enis: d.network_info.maximum_network_interfaces,
        });
    }
    let default = d.network_info.default_network_card_index;
    let max_enis = cards
        .iter()
        .find(|c| c.index == default)
        .map(|c| c.max_enis)
        .ok_or_else(|| format!("{name}: its default network card {default} is not listed"))?;
    Ok(Record {
        name,
        hypervisor: d.hypervisor.clone(),
        bare_metal: d.bare_metal,
        max_enis,
        ipv4_per_eni: d.network_info.ipv4_addresses_per_interface,
        default_network_card_index: default,
        network_cards: cards,
        branch_enis: keep.map_or(0, |k| k.branch_enis),
        trunking: keep.is_some_and(|k| k.trunking),
    })
}

/// Max pods (secondary-IP mode, the kubelet's default) with the planner's own arithmetic.
fn pods(r: &Record, vcpus: Option<u32>) -> Result<u32, String> {
    let described = Described {
        name: r.name.clone(),
        hypervisor: r.hypervisor.clone(),
        bare_metal: r.bare_metal,
        ipv4_per_eni: r.ipv4_per_eni,
        max_enis: r.max_enis,
        default_network_card_index: r.default_network_card_index,
        network_cards: r.network_cards.iter().map(|c| c.max_enis).collect(),
        vcpus,
    };
    let limits = described.limits().map_err(|e| e.to_string())?;
    Ok(max_pods(limits, &Options::default()).max_pods)
}

/// Merges the pages into `data/` under `root`, regenerates the table, and reports the changes.
pub fn refresh(root: &Path, pages: &[PathBuf]) -> Result<String, String> {
    let described = read_pages(pages)?;
    let read = |rel: &str| {
        std::fs::read_to_string(root.join(rel)).map_err(|e| format!("cannot read {rel}: {e}"))
    };
    let old: Vec<Record> =
        serde_json::from_str(&read(TYPES_FILE)?).map_err(|e| format!("{TYPES_FILE}: {e}"))?;
    let mut vcpus: BTreeMap<String, u32> =
        serde_json::from_str(&read(VCPUS_FILE)?).map_err(|e| format!("{VCPUS_FILE}: {e}"))?;
    let old_vcpus = vcpus.clone();
    let mut records: BTreeMap<String, Record> =
        old.iter().map(|r| (r.name.clone(), r.clone())).collect();
    let mut report = String::new();
    let (mut added, mut changed) = (0, 0);
    for d in &described {
        let name = d.instance_type.to_ascii_lowercase();
        let before = records.get(&name).cloned();
        let after = record_of(d, before.as_ref())?;
        if let Some(v) = d.v_cpu_info.as_ref().map(|v| v.default_v_cpus) {
            vcpus.insert(name.clone(), v);
        }
        let new_pods = pods(&after, vcpus.get(&name).copied())?;
        match &before {
            None => {
                added += 1;
                let _ = writeln!(report, "+ {name}: max pods {new_pods} (new type)");
            }
            Some(b) if *b != after => {
                changed += 1;
                let old_pods = pods(b, old_vcpus.get(&name).copied())?;
                let _ = writeln!(
                    report,
                    "~ {name}: max pods {old_pods} -> {new_pods} ({} ENIs x {} addresses -> {} x {})",
                    b.max_enis, b.ipv4_per_eni, after.max_enis, after.ipv4_per_eni
                );
            }
            Some(_) => {}
        }
        records.insert(name, after);
    }
    let kept = records.len() - described.len();
    let lines: Vec<String> = records
        .values()
        .map(|r| format!("  {}", r.line()))
        .collect();
    std::fs::write(
        root.join(TYPES_FILE),
        format!("[\n{}\n]\n", lines.join(",\n")),
    )
    .map_err(|e| format!("cannot write {TYPES_FILE}: {e}"))?;
    let vcpu_lines: Vec<String> = vcpus.iter().map(|(k, v)| format!("{k:?}: {v}")).collect();
    std::fs::write(
        root.join(VCPUS_FILE),
        format!("{{\n{}\n}}\n", vcpu_lines.join(",\n")),
    )
    .map_err(|e| format!("cannot write {VCPUS_FILE}: {e}"))?;
    let table = crate::catalogue::write(root)?;
    let _ = writeln!(
        report,
        "{} types described: {added} new, {changed} changed, {} unchanged; {kept} not in these \
         pages kept as they were\n{table}",
        described.len(),
        described.len() - added - changed
    );
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A copy of the project's data and table under a fresh directory.
    fn scratch() -> PathBuf {
        static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("xtask-refresh-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let root = crate::workspace_root();
        for rel in [TYPES_FILE, VCPUS_FILE, "planner/src/catalogue/table.rs"] {
            let to = dir.join(rel);
            std::fs::create_dir_all(to.parent().unwrap()).unwrap();
            std::fs::copy(root.join(rel), to).unwrap();
        }
        dir
    }

    fn page(dir: &Path, name: &str, types: &str, next: Option<&str>) -> PathBuf {
        let path = dir.join(name);
        let token = next.map_or(String::new(), |t| format!(r#", "NextToken": "{t}""#));
        std::fs::write(&path, format!(r#"{{"InstanceTypes": [{types}]{token}}}"#)).unwrap();
        path
    }

    fn described(name: &str, enis: u32, ips: u32) -> String {
        format!(
            r#"{{"InstanceType": "{name}", "Hypervisor": "nitro", "BareMetal": false, "VCpuInfo": {{"DefaultVCpus": 2}}, "NetworkInfo": {{"MaximumNetworkInterfaces": {enis}, "Ipv4AddressesPerInterface": {ips}, "DefaultNetworkCardIndex": 0, "NetworkCards": [{{"NetworkCardIndex": 0, "MaximumNetworkInterfaces": {enis}}}]}}}}"#
        )
    }

    #[test]
    fn two_pages_add_a_type_change_one_and_keep_the_rest() {
        let dir = scratch();
        let pages = [
            page(&dir, "p1.json", &described("q9.large", 4, 12), Some("t1")),
            page(&dir, "p2.json", &described("m5.large", 3, 12), None),
        ];
        let report = refresh(&dir, &pages).unwrap();
        assert!(
            report.contains("+ q9.large: max pods 46 (new type)"),
            "{report}"
        );
        assert!(report.contains("~ m5.large: max pods 29 -> 35"), "{report}");
        assert!(
            report.contains("2 types described: 1 new, 1 changed"),
            "{report}"
        );
        let data: Vec<Record> =
            serde_json::from_str(&std::fs::read_to_string(dir.join(TYPES_FILE)).unwrap()).unwrap();
        let m5 = data.iter().find(|r| r.name == "m5.large").unwrap();
        assert_eq!((m5.ipv4_per_eni, m5.trunking), (12, true), "trunking kept");
        assert!(
            data.iter().any(|r| r.name == "c5.large"),
            "other types kept"
        );
        let table = std::fs::read_to_string(dir.join("planner/src/catalogue/table.rs")).unwrap();
        assert!(table.contains(r#"name: "q9.large""#));
        // The refreshed data is the generator's input: its own check passes.
        crate::catalogue::check(&dir).unwrap();
        // The same pages again change nothing.
        let again = refresh(&dir, &pages).unwrap();
        assert!(again.contains("0 new, 0 changed, 2 unchanged"), "{again}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_missing_page_or_a_repeated_type_is_refused_and_nothing_is_written() {
        let dir = scratch();
        let before = std::fs::read_to_string(dir.join(TYPES_FILE)).unwrap();
        let open = page(&dir, "p1.json", &described("q9.large", 4, 12), Some("t1"));
        let err = refresh(&dir, std::slice::from_ref(&open)).unwrap_err();
        assert!(
            err.contains("NextToken") && err.contains("--starting-token"),
            "{err}"
        );
        let twice = page(&dir, "p2.json", &described("q9.large", 4, 12), None);
        let err = refresh(&dir, &[open, twice]).unwrap_err();
        assert!(err.contains("q9.large is listed twice"), "{err}");
        assert_eq!(
            std::fs::read_to_string(dir.join(TYPES_FILE)).unwrap(),
            before
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
