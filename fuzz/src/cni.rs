//! The plugin's stdin: the network configuration, `prevResult` and GC's attachment list.

use eniplan_cni::spec::{Attachment, CniResult, Code, NetConf, Version};
use serde_json::Value;

/// The codes a configuration can be refused with; anything else means a parser reported the
/// wrong kind of failure (the runtime reacts to the code).
const CONFIG_CODES: [Code; 3] = [Code::IncompatibleVersion, Code::Decode, Code::InvalidConfig];

/// `NetConf::parse` on stdin's bytes.
///
/// * A refusal carries a configuration code and prints as the spec's error object (valid JSON
///   with `code` and `msg`, in the version the runtime asked for when it could be read).
/// * An accepted configuration means the same after a re-serialisation (key order, spacing and
///   escapes are not meaning), and its `prevResult`, if any, is checked as [`prev_result`] does.
pub fn config(data: &[u8]) {
    match NetConf::parse(data) {
        Err(e) => {
            assert!(
                CONFIG_CODES.contains(&e.code),
                "code {:?} for a config: {e}",
                e.code
            );
            let printed: Value = serde_json::from_str(&e.to_json(NetConf::version_of(data)))
                .expect("the error object is JSON");
            assert_eq!(printed["code"], u64::from(e.code.number()));
            assert!(printed["msg"].as_str().is_some_and(|m| !m.is_empty()));
        }
        Ok(conf) => {
            crate::accepted();
            let value: Value = serde_json::from_slice(data).expect("accepted stdin is JSON");
            let again = serde_json::to_vec_pretty(&value).expect("a JSON value serialises");
            let reread = NetConf::parse(&again).expect("the same configuration, re-serialised");
            // `prevResult` is kept as JSON, whose floats serde_json reads to within an ulp (not
            // bit for bit, without its float_roundtrip feature): compare it by its meaning,
            // the result it reads as; everything else exactly.
            let meaning =
                |c: &NetConf| c.prev_result.as_ref().map(|p| CniResult::from_prev(p).ok());
            assert_eq!(
                meaning(&reread),
                meaning(&conf),
                "re-serialising changed prevResult"
            );
            let bare = |c: NetConf| NetConf {
                prev_result: None,
                ..c
            };
            assert_eq!(
                bare(reread),
                bare(conf.clone()),
                "re-serialising changed the configuration's meaning"
            );
            if let Some(prev) = &conf.prev_result {
                check_prev(prev);
            }
        }
    }
}

/// `CniResult::from_prev` on a JSON value: an accepted result printed in the latest version
/// reads back equal, and prints the same again.
pub fn prev_result(data: &[u8]) {
    if let Ok(value) = serde_json::from_slice::<Value>(data) {
        check_prev(&value);
    }
}

fn check_prev(prev: &Value) {
    let Ok(result) = CniResult::from_prev(prev) else {
        return;
    };
    crate::accepted();
    let printed = result.to_json(Version::LATEST);
    let reread = CniResult::from_prev(&printed).expect("a printed result reads back");
    assert_eq!(
        reread, result,
        "printing and reading back changed the result"
    );
    assert_eq!(reread.to_json(Version::LATEST), printed);
}

/// GC's `cni.dev/valid-attachments`, the value taken from the input (JSON) inside an otherwise
/// valid 1.1.0 configuration. Accepted exactly when it is `null` (no list) or an array of
/// objects with string `containerID` and `ifname` (an independent reading of the spec's GC
/// section), and then holding exactly those pairs, in order.
pub fn gc_attachments(data: &[u8]) {
    let Ok(value) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let stdin = serde_json::json!({
        "cniVersion": "1.1.0",
        "name": "aws-cni",
        "type": "eniplan-cni",
        "cni.dev/valid-attachments": value,
    });
    let parsed = NetConf::parse(&serde_json::to_vec(&stdin).expect("JSON serialises"))
        .map(|conf| attachment_pairs(conf.valid_attachments));
    let expected: Option<Option<Vec<(String, String)>>> = if value.is_null() {
        Some(None)
    } else {
        value.as_array().and_then(|items| {
            items
                .iter()
                .map(|a| {
                    let container = a.get("containerID")?.as_str()?;
                    let ifname = a.get("ifname")?.as_str()?;
                    Some((container.to_owned(), ifname.to_owned()))
                })
                .collect::<Option<Vec<_>>>()
                .map(Some)
        })
    };
    match (parsed, expected) {
        (Ok(got), Some(expected)) => {
            crate::accepted();
            assert_eq!(got, expected);
        }
        (Err(e), None) => assert_eq!(e.code, Code::Decode, "{e}"),
        (Ok(got), None) => panic!("accepted {value} as {got:?}"),
        (Err(e), Some(_)) => panic!("refused a valid attachment list {value}: {e}"),
    }
}

fn attachment_pairs(list: Option<Vec<Attachment>>) -> Option<Vec<(String, String)>> {
    list.map(|l| l.into_iter().map(|a| (a.container_id, a.ifname)).collect())
}
