//! What the planner CLI reads: cluster specs (YAML or JSON) and pod-event trace files.

use planner::sim::{PodEvent, parse_trace};

/// A cluster spec. A valid one, written back as JSON (which is YAML), validates to the same
/// cluster; a refusal lists at least one issue.
pub fn cluster_spec(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(spec) = capacity::spec::parse(text) else {
        return;
    };
    match capacity::spec::validate(&spec) {
        Err(capacity::Error::InvalidSpec { issues }) => assert!(!issues.is_empty()),
        Err(_) => {}
        Ok(cluster) => {
            crate::accepted();
            let json = serde_json::to_string(&spec).expect("a spec serialises");
            let again = capacity::spec::load(&json).expect("a valid spec, written back, loads");
            assert_eq!(again, cluster, "writing the spec back changed the cluster");
        }
    }
}

/// A trace file. Accepted events are in time order, and the trace written back (milliseconds,
/// one event a line) reads back equal.
pub fn trace(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(events) = parse_trace(text) else {
        return;
    };
    crate::accepted();
    assert!(events.windows(2).all(|w| w[0].at <= w[1].at));
    let written: String = events
        .iter()
        .map(|e| match &e.event {
            PodEvent::Add(pod) => format!("{}ms add {pod}\n", e.at.0),
            PodEvent::Del(pod) => format!("{}ms del {pod}\n", e.at.0),
        })
        .collect();
    assert_eq!(
        parse_trace(&written).expect("a written trace reads back"),
        events
    );
}
