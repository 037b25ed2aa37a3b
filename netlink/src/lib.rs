//! What ipamd's host networking and the CNI plugin both need from rtnetlink's messages: the
//! kernel's errno in an error, the attributes they look things up by, and MACs as text. One copy,
//! so the two halves of the datapath read the kernel the same way.

use std::net::Ipv4Addr;

use rtnetlink::packet_route::link::{LinkAttribute, LinkMessage};
use rtnetlink::packet_route::route::{RouteAddress, RouteAttribute, RouteMessage};
use rtnetlink::packet_route::rule::{RuleAction, RuleAttribute, RuleMessage};

/// `ENOENT`: no such object (a rule or route already removed).
pub const ENOENT: i32 = 2;
/// `ESRCH`: no such route (the kernel's answer to deleting a missing route).
pub const ESRCH: i32 = 3;
/// `EEXIST`: the object is already there.
pub const EEXIST: i32 = 17;
/// `ENODEV`: no such link.
pub const ENODEV: i32 = 19;

/// The kernel's errno in a netlink error, if that is what it is.
pub fn errno(e: &rtnetlink::Error) -> Option<i32> {
    match e {
        rtnetlink::Error::NetlinkError(m) => Some(-m.raw_code()),
        _ => None,
    }
}

/// Whether `e` says the object to remove or look up is already gone (`ENOENT`, `ESRCH`,
/// `ENODEV`): removing what is not there is success for DEL and release.
pub fn is_gone(e: &rtnetlink::Error) -> bool {
    matches!(errno(e), Some(ENOENT | ESRCH | ENODEV))
}

/// Whether `e` says the object is already there.
pub fn is_exists(e: &rtnetlink::Error) -> bool {
    errno(e) == Some(EEXIST)
}

/// A MAC as lower-case colon-separated hex, as IMDS and EC2 write it.
///
/// ```
/// assert_eq!(eniplan_netlink::mac_text(&[0x02, 0xab, 0, 0, 0, 0x0f]), "02:ab:00:00:00:0f");
/// ```
pub fn mac_text(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 3);
    for (i, b) in bytes.iter().enumerate() {
        if i > 0 {
            s.push(':');
        }
        s.push(char::from(HEX[usize::from(b >> 4)]));
        s.push(char::from(HEX[usize::from(b & 0xf)]));
    }
    s
}
const HEX: &[u8; 16] = b"0123456789abcdef";

/// A MAC written as [`mac_text`] writes it, as bytes; `None` when it is not six hex octets.
///
/// ```
/// use eniplan_netlink::parse_mac;
/// assert_eq!(parse_mac("02:AB:00:00:00:0f"), Some([2, 0xab, 0, 0, 0, 0xf]));
/// assert_eq!(parse_mac("02:ab:00:00:00"), None);
/// assert_eq!(parse_mac("02:ab:00:00:00:zz"), None);
/// ```
pub fn parse_mac(text: &str) -> Option<[u8; 6]> {
    let mut out = [0u8; 6];
    let mut parts = text.split(':');
    for byte in &mut out {
        let part = parts.next()?;
        if part.len() != 2 {
            return None;
        }
        *byte = u8::from_str_radix(part, 16).ok()?;
    }
    parts.next().is_none().then_some(out)
}

/// The link's MAC ([`mac_text`]), empty when it has none.
pub fn link_mac(link: &LinkMessage) -> String {
    link.attributes
        .iter()
        .find_map(|a| match a {
            LinkAttribute::Address(mac) => Some(mac_text(mac)),
            _ => None,
        })
        .unwrap_or_default()
}

/// The link's name, empty when the message carries none.
pub fn link_name(link: &LinkMessage) -> String {
    link.attributes
        .iter()
        .find_map(|a| match a {
            LinkAttribute::IfName(n) => Some(n.clone()),
            _ => None,
        })
        .unwrap_or_default()
}

/// The rule's priority, if it has one.
pub fn rule_priority(r: &RuleMessage) -> Option<u32> {
    r.attributes.iter().find_map(|a| match a {
        RuleAttribute::Priority(p) => Some(*p),
        _ => None,
    })
}

/// The rule's table: the 32-bit attribute when present (tables above 255), else the header's.
pub fn rule_table(r: &RuleMessage) -> u32 {
    r.attributes
        .iter()
        .find_map(|a| match a {
            RuleAttribute::Table(t) => Some(*t),
            _ => None,
        })
        .unwrap_or(u32::from(r.header.table))
}

/// The route's table, read as [`rule_table`] reads a rule's.
pub fn route_table(r: &RouteMessage) -> u32 {
    r.attributes
        .iter()
        .find_map(|a| match a {
            RouteAttribute::Table(t) => Some(*t),
            _ => None,
        })
        .unwrap_or(u32::from(r.header.table))
}

/// The route's output link, if it names one.
pub fn route_oif(r: &RouteMessage) -> Option<u32> {
    r.attributes.iter().find_map(|a| match a {
        RouteAttribute::Oif(i) => Some(*i),
        _ => None,
    })
}

/// The route's IPv4 destination, if it has one.
pub fn route_destination(r: &RouteMessage) -> Option<Ipv4Addr> {
    r.attributes.iter().find_map(|a| match a {
        RouteAttribute::Destination(RouteAddress::Inet(ip)) => Some(*ip),
        _ => None,
    })
}

/// Adds the rule "from `ip`/32 look up `table`" at `priority` (a secondary ENI's primary address
/// in ipamd, a secondary-ENI pod in the plugin).
pub async fn add_source_rule(
    handle: &rtnetlink::Handle,
    ip: Ipv4Addr,
    table: u32,
    priority: u32,
) -> Result<(), rtnetlink::Error> {
    handle
        .rule()
        .add()
        .v4()
        .source_prefix(ip, 32)
        .table_id(table)
        .action(RuleAction::ToTable)
        .priority(priority)
        .execute()
        .await
}
