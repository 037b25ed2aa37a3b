//! CI gates over a [`Forecast`]: each gate is checked for every subnet (or node group) it
//! concerns, and every check is reported, passed or failed, so a report can list them all
//! (Markdown, JSON, JUnit: one test case per check).
//!
//! The flag values themselves (`20%`, `12w`) are parsed by the CLI (`cli/src/values.rs`).

use serde::Serialize;

use crate::forecast::Forecast;

/// The gates asked for (`None`/`false`: not checked).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Gates {
    /// `--fail-under-headroom P`: every subnet keeps at least P % of its usable addresses free
    /// at peak.
    pub min_headroom_percent: Option<f64>,
    /// `--fail-if-exhausted-within D`: no subnet runs out within D days of growth.
    pub exhausted_within_days: Option<u32>,
    /// `--fail-under-free-blocks N`: every subnet used for prefixes keeps at least N free /28s
    /// during the churn window.
    pub min_free_blocks: Option<u32>,
    /// `--fail-if-fragmented`: no prefix request fails while addresses remain during the window.
    pub fragmented: bool,
    /// `--fail-if-unserved`: every pod of the density gets an address on its node.
    pub unserved: bool,
    /// `--fail-if-over-capacity`: every group's peak fits (`max_nodes ≥ peak`).
    pub over_capacity: bool,
}

/// One check.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Check {
    /// The gate, as its flag names it.
    pub gate: &'static str,
    /// The subnet or node group checked.
    pub subject: String,
    /// Whether it holds.
    pub passed: bool,
    /// The measured value and the limit, in words.
    pub detail: String,
}

/// Every check of every gate asked for, in gate order, then subject order.
#[expect(clippy::too_many_lines, reason = "one short section per gate")]
pub fn evaluate(f: &Forecast, gates: &Gates) -> Vec<Check> {
    let mut out = Vec::new();
    if let Some(min) = gates.min_headroom_percent {
        for s in &f.subnets {
            if s.peak.nodes == 0 && s.unplaced_at_peak == 0 {
                continue;
            }
            out.push(Check {
                gate: "fail-under-headroom",
                subject: s.id.clone(),
                passed: s.headroom_percent >= min,
                detail: format!(
                    "{:.1} % free at peak ({} of {} usable addresses), limit {min} %",
                    s.headroom_percent, s.peak.free, s.usable
                ),
            });
        }
    }
    if let Some(days) = gates.exhausted_within_days {
        for s in &f.subnets {
            if s.peak.nodes == 0 && s.now.nodes == 0 {
                continue;
            }
            let (passed, detail) = match s.days_to_exhaustion {
                Some(d) if d <= days => (
                    false,
                    format!("runs out in {d} days under the growth rates, limit {days} days"),
                ),
                Some(d) => (true, format!("runs out in {d} days, limit {days} days")),
                None => (
                    true,
                    format!(
                        "does not run out within {} days, limit {days} days",
                        f.horizon_days
                    ),
                ),
            };
            out.push(Check {
                gate: "fail-if-exhausted-within",
                subject: s.id.clone(),
                passed,
                detail,
            });
        }
    }
    if let Some(min) = gates.min_free_blocks {
        for s in f.subnets.iter().filter(|s| s.now.nodes > 0) {
            out.push(Check {
                gate: "fail-under-free-blocks",
                subject: s.id.clone(),
                passed: s.window.min_free_blocks >= min,
                detail: format!(
                    "at least {} free /28s during the {} h window, limit {min}",
                    s.window.min_free_blocks, s.window.hours
                ),
            });
        }
    }
    if gates.fragmented {
        for s in f.subnets.iter().filter(|s| s.now.nodes > 0) {
            let (passed, detail) = match &s.window.fragmented {
                Some(x) => (
                    false,
                    format!(
                        "InsufficientCidrBlocks at minute {} with {} addresses free (node group {})",
                        x.minute, x.free_addresses, x.group
                    ),
                ),
                None => (
                    true,
                    format!(
                        "every prefix request of the {} h window found a free /28",
                        s.window.hours
                    ),
                ),
            };
            out.push(Check {
                gate: "fail-if-fragmented",
                subject: s.id.clone(),
                passed,
                detail,
            });
        }
    }
    if gates.unserved {
        for g in &f.groups {
            let unserved: u32 = g.shapes.iter().map(|s| s.unserved).max().unwrap_or(0);
            out.push(Check {
                gate: "fail-if-unserved",
                subject: g.name.clone(),
                passed: unserved == 0,
                detail: if unserved == 0 {
                    "every node serves its pods".to_owned()
                } else {
                    format!("up to {unserved} pods per node get no address (node capacity)")
                },
            });
        }
    }
    if gates.over_capacity {
        for g in &f.groups {
            out.push(Check {
                gate: "fail-if-over-capacity",
                subject: g.name.clone(),
                passed: g.max_nodes >= g.peak,
                detail: format!("peak {} nodes, capacity {} nodes", g.peak, g.max_nodes),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forecast::{Options, forecast};
    use crate::spec::load;

    #[test]
    fn small_subnet_to_failed_headroom_and_capacity_checks() {
        let c = load(
            r"
vpc_cidrs: [10.0.0.0/16]
subnets:
  - { id: small, cidr: 10.0.0.0/24, az: z1 }
  - { id: big, cidr: 10.0.16.0/20, az: z2 }
node_groups:
  - { name: g, instance_types: [m5.large], nodes: { min: 2, max: 20 }, pods: { per_node: 10 } }
",
        )
        .unwrap();
        let f = forecast(
            &c,
            &Options {
                window: std::time::Duration::from_hours(1),
                horizon_days: 30,
            },
            &mut |_| {},
        )
        .unwrap();
        let checks = evaluate(
            &f,
            &Gates {
                min_headroom_percent: Some(20.0),
                over_capacity: true,
                ..Gates::default()
            },
        );
        let failed: Vec<(&str, &str)> = checks
            .iter()
            .filter(|c| !c.passed)
            .map(|c| (c.gate, c.subject.as_str()))
            .collect();
        // 10 nodes × 30 addresses in a /24 (251): does not fit; the /20 has room.
        assert_eq!(
            failed,
            [
                ("fail-under-headroom", "small"),
                ("fail-if-over-capacity", "g")
            ]
        );
        assert_eq!(checks.len(), 3);
    }
}
