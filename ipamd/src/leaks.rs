//! The leaked-ENI sweep (behaviour doc S-53): ENIs that an ipamd created for this cluster and
//! lost — left `available`, unattached — are deleted once they are old enough, like the
//! reference's hourly sweep. Whether one ENI is leaked is the pure [`verdict`]; the sweep only
//! lists candidates and carries the verdicts out.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use cloud::Ec2;
use cloud::model::{EniFilter, NetworkInterface};

use crate::config::Config;
use crate::error::{Error, Result};
use crate::node::{self, Node};

/// The description every ENI ipamd creates carries (as the reference's).
pub const DESCRIPTION_PREFIX: &str = "aws-K8S-";

/// What the sweep does with one candidate ENI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Not ipamd's, or still attached: never touched.
    NotOurs,
    /// Ours and unattached, but younger than the minimum age: kept (it may be attaching).
    TooYoung,
    /// Ours, unattached and old enough: deleted.
    Delete,
    /// Ours and unattached, but without a readable `createdAt` tag: tagged with the current
    /// time, so that the next sweep can age it (the reference does the same).
    TagCreatedAt,
}

/// Decides one ENI: `now_secs` is Unix seconds; `min_age` the youngest age deleted. An ENI
/// whose `createdAt` tag is missing or unreadable is never deleted on sight: it is tagged
/// first and aged from then on (behaviour doc S-53).
pub fn verdict(eni: &NetworkInterface, now_secs: u64, min_age: Duration) -> Verdict {
    if !eni.description.starts_with(DESCRIPTION_PREFIX) || eni.attachment.is_some() {
        return Verdict::NotOurs;
    }
    match eni
        .tags
        .get(node::TAG_CREATED_AT)
        .and_then(|t| parse_rfc3339(t))
    {
        Some(created) if now_secs.saturating_sub(created) >= min_age.as_secs() => Verdict::Delete,
        Some(_) => Verdict::TooYoung,
        None => Verdict::TagCreatedAt,
    }
}

/// Sweeps every `leak_sweep_interval` until aborted (off with `DISABLE_LEAKED_ENI_CLEANUP`).
pub(crate) async fn sweeper<E: Ec2>(ec2: Arc<E>, node: Arc<Node>, config: Arc<Config>) {
    if !config.leaked_eni_cleanup {
        return;
    }
    let mut interval = tokio::time::interval(config.leak_sweep_interval);
    interval.tick().await; // the first tick is immediate
    loop {
        interval.tick().await;
        if let Err(e) = sweep(&*ec2, &node, &config, SystemTime::now()).await {
            tracing::warn!(error = %e, "leaked-ENI sweep failed");
        }
    }
}

/// One sweep at `now`; returns the ENIs deleted.
pub async fn sweep<E: Ec2>(
    ec2: &E,
    node: &Node,
    config: &Config,
    now: SystemTime,
) -> Result<Vec<NetworkInterface>> {
    let mut filter = EniFilter {
        tag_key: Some(node::TAG_INSTANCE_ID.into()),
        status: Some("available".into()),
        vpc_id: node.vpc_id.get().cloned(),
        ..EniFilter::default()
    };
    if let Some(c) = &config.cluster_name {
        filter.tags.insert(node::TAG_CLUSTER.into(), c.clone());
    }
    let candidates = ec2
        .describe_network_interfaces(&filter)
        .await
        .map_err(|source| Error::Cloud {
            what: "leaked-ENI sweep".into(),
            source,
        })?;
    let now_secs = now
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut deleted = Vec::new();
    for e in candidates {
        match verdict(&e, now_secs, config.leak_min_age) {
            Verdict::NotOurs | Verdict::TooYoung => {}
            Verdict::Delete => {
                if ec2.delete_network_interface(&e.id).await.is_ok() {
                    tracing::info!(eni = %e.id, "deleted a leaked ENI");
                    deleted.push(e);
                }
            }
            Verdict::TagCreatedAt => {
                let tags = std::collections::BTreeMap::from([(
                    node::TAG_CREATED_AT.to_owned(),
                    node::rfc3339(now_secs),
                )]);
                let _ = ec2.create_tags(std::slice::from_ref(&e.id.0), &tags).await;
            }
        }
    }
    Ok(deleted)
}
/// Parses `YYYY-MM-DDTHH:MM:SS` (UTC, any suffix ignored) to Unix seconds.
///
/// ```
/// assert_eq!(ipamd::leaks::parse_rfc3339("2026-01-01T00:00:00Z"), Some(1_767_225_600));
/// assert_eq!(ipamd::leaks::parse_rfc3339("garbage"), None);
/// ```
pub fn parse_rfc3339(text: &str) -> Option<u64> {
    let bytes = text.as_bytes();
    if bytes.len() < 19
        || bytes[4] != b'-'
        || bytes[7] != b'-'
        || bytes[10] != b'T'
        || bytes[13] != b':'
        || bytes[16] != b':'
    {
        return None;
    }
    let field = |r: std::ops::Range<usize>| text.get(r)?.parse::<u64>().ok();
    let (year, month, day) = (field(0..4)?, field(5..7)?, field(8..10)?);
    let (hour, minute, second) = (field(11..13)?, field(14..16)?, field(17..19)?);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
        || year < 1970
    {
        return None;
    }
    // Days from civil (Howard Hinnant), for years from 1970.
    let (year, month) = if month <= 2 {
        (year - 1, month + 9)
    } else {
        (year, month - 3)
    };
    let era = year / 400;
    let year_of_era = year - era * 400;
    let day_of_year = (153 * month + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    let days = (era * 146_097 + day_of_era).checked_sub(719_468)?;
    Some(days * 86_400 + hour * 3600 + minute * 60 + second)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::net::Ipv4Addr;

    use cloud::model::{Attachment, InterfaceType};
    use planner::pool::EniId;

    use super::*;

    const JAN_1: u64 = 1_767_225_600; // 2026-01-01T00:00:00Z
    const FIVE_MINUTES: Duration = Duration::from_mins(5);

    fn eni(description: &str, created_at: Option<&str>, attached: bool) -> NetworkInterface {
        NetworkInterface {
            id: EniId("eni-1".into()),
            subnet_id: "subnet-1".into(),
            vpc_id: "vpc-1".into(),
            availability_zone: "us-west-2a".into(),
            description: description.into(),
            mac: "02:00:00:00:00:01".into(),
            interface_type: InterfaceType::Interface,
            status: if attached { "in-use" } else { "available" }.into(),
            primary_ip: Ipv4Addr::new(10, 0, 0, 9),
            secondary_ips: vec![],
            prefixes: vec![],
            attachment: attached.then(|| Attachment {
                id: "eni-attach-1".into(),
                instance_id: "i-1".into(),
                device_index: 1,
                network_card_index: 0,
                delete_on_termination: true,
                status: "attached".into(),
            }),
            tags: created_at
                .map(|t| BTreeMap::from([(node::TAG_CREATED_AT.to_owned(), t.to_owned())]))
                .unwrap_or_default(),
            security_groups: vec![],
        }
    }

    #[test]
    fn the_age_gate_is_inclusive_at_the_minimum_age() {
        let e = eni("aws-K8S-i-1", Some("2026-01-01T00:00:00Z"), false);
        assert_eq!(verdict(&e, JAN_1, FIVE_MINUTES), Verdict::TooYoung);
        assert_eq!(verdict(&e, JAN_1 + 299, FIVE_MINUTES), Verdict::TooYoung);
        assert_eq!(verdict(&e, JAN_1 + 300, FIVE_MINUTES), Verdict::Delete);
        assert_eq!(verdict(&e, JAN_1 + 86_400, FIVE_MINUTES), Verdict::Delete);
    }

    #[test]
    fn a_clock_behind_the_tag_never_deletes() {
        let e = eni("aws-K8S-i-1", Some("2026-01-01T00:00:00Z"), false);
        assert_eq!(verdict(&e, JAN_1 - 3600, FIVE_MINUTES), Verdict::TooYoung);
    }

    #[test]
    fn enis_without_a_readable_created_at_are_tagged_not_deleted() {
        for tag in [None, Some("yesterday"), Some("2026-13-01T00:00:00Z")] {
            let e = eni("aws-K8S-i-1", tag, false);
            assert_eq!(
                verdict(&e, JAN_1, FIVE_MINUTES),
                Verdict::TagCreatedAt,
                "{tag:?}"
            );
        }
    }

    #[test]
    fn attached_or_foreign_enis_are_never_touched() {
        let old = Some("2020-01-01T00:00:00Z");
        assert_eq!(
            verdict(&eni("aws-K8S-i-1", old, true), JAN_1, FIVE_MINUTES),
            Verdict::NotOurs
        );
        assert_eq!(
            verdict(&eni("my database", old, false), JAN_1, FIVE_MINUTES),
            Verdict::NotOurs
        );
    }

    #[test]
    fn rfc3339_round_trips_with_the_tag_writer() {
        for t in [0, 951_782_400, JAN_1, 4_102_444_799] {
            assert_eq!(parse_rfc3339(&node::rfc3339(t)), Some(t));
        }
        assert_eq!(parse_rfc3339("2026-01-01T24:00:00Z"), None);
        assert_eq!(parse_rfc3339("1969-12-31T23:59:59Z"), None);
    }
}
