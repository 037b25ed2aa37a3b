//! Security groups for pods: the `vpc.amazonaws.com/pod-eni` pod annotation the VPC resource
//! controller writes once it has created a branch ENI for a pod and associated it with the
//! node's trunk ENI. ipamd answers such a pod's ADD from it (the branch address, its VLAN, MAC
//! and subnet gateway) instead of from its warm pool.
//!
//! The annotation is a JSON array with one object per branch ENI; the pod's interface is the
//! first. The controller spells the VLAN `vlanId` (the VPC CNI's own struct says `vlanID` and
//! relies on Go's case-insensitive decoding: both are accepted here). A missing or partial
//! annotation is the normal state of a pod the controller has not reached yet, so the caller
//! answers with a retryable failure carrying [`Error::PodEni`]'s reason.

use std::net::Ipv4Addr;

use serde::Deserialize;

use crate::Error;

/// The annotation's key.
pub const ANNOTATION: &str = "vpc.amazonaws.com/pod-eni";
/// The extended resource a pod's first container requests to get a branch ENI (the
/// controller's webhook adds it for pods a `SecurityGroupPolicy` selects).
pub const RESOURCE: &str = "vpc.amazonaws.com/pod-eni";
/// The largest annotation read (the controller writes a few hundred bytes; anything near this is
/// not its work and is refused before it is parsed).
pub const MAX_LEN: usize = 16 * 1024;

/// One element of the annotation as the controller writes it (unknown keys are ignored).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Element {
    eni_id: Option<String>,
    if_address: Option<String>,
    private_ip: Option<String>,
    #[serde(alias = "vlanID")]
    vlan_id: Option<i64>,
    subnet_cidr: Option<String>,
}

/// A pod's branch ENI, validated: what ipamd needs to answer the pod's ADD.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BranchEni {
    /// The branch ENI (`eni-…`), when the controller named it.
    pub eni_id: Option<String>,
    /// Its MAC, lower case, colon-separated.
    pub mac: String,
    /// The pod's address.
    pub ip: Ipv4Addr,
    /// The VLAN tag the trunk carries the branch's traffic on (1 to 4094).
    pub vlan: u16,
    /// The branch subnet's base address and prefix length.
    pub subnet: (Ipv4Addr, u8),
}

impl BranchEni {
    /// The subnet's gateway: its base address + 1, as everywhere in a VPC.
    ///
    /// ```
    /// let b = eniplan_crd::pod_eni::parse(r#"[{"ifAddress":"0e:5f:12:34:56:78",
    ///     "privateIp":"10.0.96.23","vlanId":7,"subnetCidr":"10.0.96.0/19"}]"#).unwrap();
    /// assert_eq!(b.gateway(), std::net::Ipv4Addr::new(10, 0, 96, 1));
    /// ```
    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.subnet.0).wrapping_add(1))
    }
}

/// A field's value as an error shows it: at most 64 characters, so that a hostile or broken
/// annotation cannot make the log line and Event carrying the error arbitrarily long.
fn shown(field: &str) -> String {
    format!("{:?}", clip(field, 64))
}

/// `text`'s first `n` characters, marked when cut.
fn clip(text: &str, n: usize) -> String {
    let mut s: String = text.chars().take(n).collect();
    if s.len() < text.len() {
        s.push('…');
    }
    s
}

fn problem(value: &str, problem: impl Into<String>) -> Error {
    Error::PodEni {
        value: clip(value, 200),
        problem: problem.into(),
    }
}

/// Reads the annotation's first branch ENI (IPv4).
///
/// ```
/// use eniplan_crd::pod_eni::parse;
/// let b = parse(r#"[{"eniId":"eni-0a1b2c3d","ifAddress":"0E:5F:12:34:56:78",
///     "privateIp":"10.0.96.23","vlanId":7,"subnetCidr":"10.0.96.0/19",
///     "associationID":"trunk-assoc-0c1d"}]"#).unwrap();
/// assert_eq!((b.vlan, b.mac.as_str()), (7, "0e:5f:12:34:56:78"));
/// assert!(parse("[]").unwrap_err().to_string().contains("no branch ENI"));
/// assert!(parse(r#"[{"ifAddress":"0e:5f:12:34:56:78","privateIp":"10.0.96.23",
///     "subnetCidr":"10.0.96.0/19"}]"#).unwrap_err().to_string().contains("vlanId"));
/// ```
///
/// # Errors
/// [`Error::PodEni`] with the value (shortened) and what is missing or wrong: not JSON, not
/// a non-empty array, no `ifAddress`/`privateIp`/`vlanId`/`subnetCidr`, or one that does not
/// parse, a VLAN outside 1–4094, an address outside its subnet.
pub fn parse(value: &str) -> Result<BranchEni, Error> {
    if value.len() > MAX_LEN {
        return Err(problem(
            value,
            format!(
                "{} bytes, more than the {MAX_LEN} a controller writes",
                value.len()
            ),
        ));
    }
    let list: Vec<Element> = serde_json::from_str(value).map_err(|e| {
        // serde's message quotes the offending string whole: clip it.
        problem(
            value,
            format!(
                "not a JSON array of branch ENIs: {}",
                clip(&e.to_string(), 160)
            ),
        )
    })?;
    let Some(first) = list.into_iter().next() else {
        return Err(problem(
            value,
            "no branch ENI in it yet (the resource controller has not created one)",
        ));
    };
    let field = |name: &str, v: Option<String>| {
        v.filter(|s| !s.is_empty())
            .ok_or_else(|| problem(value, format!("no {name}")))
    };
    let mac = field("ifAddress", first.if_address)?;
    let mac = parse_mac(&mac).ok_or_else(|| {
        problem(
            value,
            format!("ifAddress {} is not a MAC (six hex bytes)", shown(&mac)),
        )
    })?;
    let ip_text = field("privateIp", first.private_ip)?;
    let ip: Ipv4Addr = ip_text.parse().map_err(|_| {
        problem(
            value,
            format!("privateIp {} is not an IPv4 address", shown(&ip_text)),
        )
    })?;
    let vlan = match first.vlan_id {
        None | Some(0) => return Err(problem(value, "no vlanId")),
        Some(v) => u16::try_from(v)
            .ok()
            .filter(|v| (1..=4094).contains(v))
            .ok_or_else(|| problem(value, format!("vlanId {v} is not a VLAN (1 to 4094)")))?,
    };
    let cidr = field("subnetCidr", first.subnet_cidr)?;
    let subnet = parse_cidr(&cidr).ok_or_else(|| {
        problem(
            value,
            format!("subnetCidr {} is not an IPv4 CIDR", shown(&cidr)),
        )
    })?;
    let mask = u32::MAX.checked_shl(32 - u32::from(subnet.1)).unwrap_or(0);
    if u32::from(ip) & mask != u32::from(subnet.0) {
        return Err(problem(
            value,
            format!("privateIp {ip} is not in subnetCidr {cidr}"),
        ));
    }
    Ok(BranchEni {
        eni_id: first.eni_id.filter(|s| !s.is_empty()),
        mac,
        ip,
        vlan,
        subnet,
    })
}

/// `aa:bb:cc:dd:ee:ff` (any case) in lower case, or `None`.
fn parse_mac(text: &str) -> Option<String> {
    let parts: Vec<&str> = text.split(':').collect();
    let ok = parts.len() == 6
        && parts
            .iter()
            .all(|p| p.len() == 2 && p.chars().all(|c| c.is_ascii_hexdigit()));
    ok.then(|| text.to_ascii_lowercase())
}

/// `a.b.c.d/n` with the host bits clear, as `(base, n)`.
fn parse_cidr(text: &str) -> Option<(Ipv4Addr, u8)> {
    let (addr, len) = text.split_once('/')?;
    let addr: Ipv4Addr = addr.parse().ok()?;
    let len: u8 = len.parse().ok().filter(|l| *l <= 32)?;
    let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
    (u32::from(addr) & !mask == 0).then_some((addr, len))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"[{"eniId":"eni-0a1b2c3d4e5f60001","ifAddress":"0e:5f:12:34:56:78","privateIp":"10.0.96.23","ipv6Addr":"","vlanId":7,"subnetCidr":"10.0.96.0/19","subnetV6Cidr":"","associationID":"trunk-assoc-0c1d2e3f"}]"#;

    #[test]
    fn the_controllers_annotation_reads_with_either_vlan_spelling() {
        let b = parse(GOOD).unwrap();
        assert_eq!(b.eni_id.as_deref(), Some("eni-0a1b2c3d4e5f60001"));
        assert_eq!(b.ip, Ipv4Addr::new(10, 0, 96, 23));
        assert_eq!(b.subnet, (Ipv4Addr::new(10, 0, 96, 0), 19));
        assert_eq!(b.gateway(), Ipv4Addr::new(10, 0, 96, 1));
        let upper = GOOD.replace("vlanId", "vlanID");
        assert_eq!(parse(&upper).unwrap().vlan, 7);
    }

    #[test]
    fn every_bad_annotation_says_what_is_wrong() {
        for (bad, says) in [
            ("not json", "not a JSON array"),
            ("{}", "not a JSON array"),
            ("[]", "no branch ENI"),
            (
                &GOOD.replace(r#""ifAddress":"0e:5f:12:34:56:78","#, ""),
                "no ifAddress",
            ),
            (
                &GOOD.replace("0e:5f:12:34:56:78", "0e:5f:12"),
                "is not a MAC",
            ),
            (
                &GOOD.replace(r#""privateIp":"10.0.96.23","#, ""),
                "no privateIp",
            ),
            (
                &GOOD.replace("10.0.96.23", "10.0.200.23"),
                "not in subnetCidr",
            ),
            (&GOOD.replace(r#""vlanId":7"#, r#""vlanId":0"#), "no vlanId"),
            (
                &GOOD.replace(r#""vlanId":7"#, r#""vlanId":5000"#),
                "not a VLAN",
            ),
            (
                &GOOD.replace("10.0.96.0/19", "10.0.96.1/19"),
                "not an IPv4 CIDR",
            ),
            (&GOOD.replace("10.0.96.0/19", ""), "no subnetCidr"),
        ] {
            let e = parse(bad).unwrap_err().to_string();
            assert!(e.contains(says), "{bad}: {e}");
            assert!(e.contains(ANNOTATION), "{e}");
        }
    }

    #[test]
    fn an_oversized_annotation_is_refused_before_parsing_and_shown_short() {
        let huge = format!("[{}]", " ".repeat(MAX_LEN));
        let e = parse(&huge).unwrap_err().to_string();
        assert!(e.contains("more than"), "{e}");
        assert!(e.len() < 400, "{} bytes of message", e.len());
    }

    #[test]
    fn a_long_bad_field_is_shown_clipped() {
        // Under the size limit, but every field long: each message quotes at most 64
        // characters of it (serde's own message, 160).
        let long = "z".repeat(8000);
        for bad in [
            GOOD.replace("0e:5f:12:34:56:78", &long),
            GOOD.replace("10.0.96.23", &long),
            GOOD.replace("10.0.96.0/19", &long),
            GOOD.replace("7,", &format!("\"{long}\",")),
        ] {
            let e = parse(&bad).unwrap_err().to_string();
            assert!(
                e.len() < 1024,
                "{} bytes of message: {}",
                e.len(),
                &e[..200]
            );
        }
    }
}
