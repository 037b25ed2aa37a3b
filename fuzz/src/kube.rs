//! What ipamd reads from the Kubernetes API: the `vpc.amazonaws.com/pod-eni` annotation and
//! ENIConfig objects.

use eniplan_crd::ENIConfig;
use eniplan_crd::pod_eni::{self, BranchEni};

/// The annotation's value. An accepted branch ENI is usable as ipamd uses it (VLAN 1–4094, the
/// address inside its subnet, a lower-case MAC), and the annotation a controller would write
/// for it reads back equal. A refusal is bounded (4 KiB, escapes included) whatever the value's
/// size (it goes into a log line and the pod's Event).
pub fn pod_eni_annotation(data: &[u8]) {
    let Ok(value) = std::str::from_utf8(data) else {
        return; // annotations are strings
    };
    match pod_eni::parse(value) {
        Err(e) => {
            let shown = e.to_string();
            assert!(shown.len() < 4096, "an error of {} bytes", shown.len());
        }
        Ok(b) => {
            crate::accepted();
            assert!((1..=4094).contains(&b.vlan), "VLAN {}", b.vlan);
            let (base, len) = b.subnet;
            assert!(len <= 32);
            let mask = if len == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(len))
            };
            assert_eq!(u32::from(b.ip) & mask, u32::from(base) & mask, "{b:?}");
            assert_eq!(b.mac.len(), 17);
            assert!(
                b.mac
                    .bytes()
                    .all(|c| c == b':' || c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
            );
            assert_eq!(pod_eni::parse(&written(&b)).ok(), Some(b));
        }
    }
}

/// The annotation as the resource controller writes it for `b`.
fn written(b: &BranchEni) -> String {
    let mut item = serde_json::json!({
        "ifAddress": b.mac,
        "privateIp": b.ip.to_string(),
        "vlanId": b.vlan,
        "subnetCidr": format!("{}/{}", b.subnet.0, b.subnet.1),
    });
    if let Some(id) = &b.eni_id {
        item["eniId"] = id.clone().into();
    }
    serde_json::Value::Array(vec![item]).to_string()
}

/// An ENIConfig object as the watcher receives it (JSON). An object that deserialises either
/// validates or is refused with a short message naming it; a valid one serialises and reads
/// back equal and still valid, and holds only IDs of the right shapes, at most 16 groups.
pub fn eniconfig(data: &[u8]) {
    let Ok(object) = serde_json::from_slice::<ENIConfig>(data) else {
        return;
    };
    if let Err(e) = object.validate() {
        let shown = e.to_string();
        let name_len = object.metadata.name.as_deref().map_or(0, str::len);
        assert!(
            shown.len() < 4096 + name_len,
            "an error of {} bytes",
            shown.len()
        );
        return;
    }
    crate::accepted();
    assert!(eniplan_crd::is_ec2_id("subnet", &object.spec.subnet));
    assert!(object.spec.security_groups.len() <= eniplan_crd::MAX_SECURITY_GROUPS);
    assert!(
        object
            .spec
            .security_groups
            .iter()
            .all(|g| eniplan_crd::is_ec2_id("sg", g))
    );
    let json = serde_json::to_vec(&object).expect("an object serialises");
    let back: ENIConfig = serde_json::from_slice(&json).expect("and reads back");
    assert_eq!(back.spec, object.spec);
    assert_eq!(back.metadata, object.metadata);
    assert!(back.validate().is_ok());
}
