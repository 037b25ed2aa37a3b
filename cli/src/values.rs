//! Typed flag values, parsed by clap before any command runs: a bad value fails at parse time
//! with clap's usage error naming the flag (`invalid value 'forever' for '--window <DURATION>'`,
//! exit 2) and what the flag accepts.
//!
//! ```text
//! percent("12.5%") = 12.5      days("12w") = 84      duration("90m") = 5400 s
//! ```

use std::time::Duration;

use ipnetwork::Ipv4Network;

/// A percentage: `20%`, `20` or `12.5%`, from 0 to 1000.
pub fn percent(value: &str) -> Result<f64, String> {
    let v = value.trim();
    let number = v.strip_suffix('%').unwrap_or(v).trim();
    match number.parse::<f64>() {
        Ok(p) if p.is_finite() && (0.0..=1000.0).contains(&p) => Ok(p),
        _ => Err("expected a percentage such as 20% (0 to 1000)".into()),
    }
}

/// A share of something whole: a percentage above 0 and at most 100%.
pub fn share(value: &str) -> Result<f64, String> {
    match percent(value) {
        Ok(p) if p > 0.0 && p <= 100.0 => Ok(p),
        _ => Err("expected a percentage above 0 and at most 100%, such as 50%".into()),
    }
}

/// A number of days: `90d`, `12w`, `1y` (365 days) or a bare number of days; at most 100 years.
pub fn days(value: &str) -> Result<u32, String> {
    scaled(value, &[('d', 1), ('w', 7), ('y', 365)], 1)
        .filter(|d| *d <= 36_500)
        .and_then(|d| u32::try_from(d).ok())
        .ok_or_else(|| {
            "expected a number of days such as 90d, 12w or 1y (at most 100 years)".into()
        })
}

/// A duration: `30s`, `90m`, `24h`, `2d`, or a bare number of hours; at most 30 days.
pub fn duration(value: &str) -> Result<Duration, String> {
    scaled(
        value,
        &[('s', 1), ('m', 60), ('h', 3600), ('d', 86_400)],
        3600,
    )
    .filter(|s| *s <= 30 * 86_400)
    .map(Duration::from_secs)
    .ok_or_else(|| "expected a duration such as 30s, 90m, 24h or 2d (at most 30 days)".into())
}

/// A whole number with an optional unit suffix, times that unit's scale (`bare` without one);
/// `None` when it is not a number or overflows.
fn scaled(value: &str, units: &[(char, u64)], bare: u64) -> Option<u64> {
    let v = value.trim();
    let (number, scale) = units
        .iter()
        .find_map(|&(unit, scale)| v.strip_suffix(unit).map(|n| (n, scale)))
        .unwrap_or((v, bare));
    number.trim().parse::<u64>().ok()?.checked_mul(scale)
}

/// An IPv4 CIDR with its prefix length, such as `100.64.0.0/16`.
pub fn cidr(value: &str) -> Result<Ipv4Network, String> {
    let expected = || "expected an IPv4 CIDR with its prefix length, such as 100.64.0.0/16".into();
    let v = value.trim();
    if !v.contains('/') {
        return Err(expected());
    }
    v.parse().map_err(|_| expected())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages() {
        assert!((percent(" 12.5 % ").unwrap() - 12.5).abs() < 1e-12);
        assert!((percent("20").unwrap() - 20.0).abs() < 1e-12);
        assert!(percent("-3%").unwrap_err().contains("0 to 1000"));
        assert!(percent("1001%").is_err());
        assert!(percent("NaN").is_err());
        assert!(share("0%").is_err());
        assert!(share("101%").is_err());
        assert!((share("100%").unwrap() - 100.0).abs() < 1e-12);
    }

    #[test]
    fn days_with_units() {
        assert_eq!(days("90"), Ok(90));
        assert_eq!(days("90d"), Ok(90));
        assert_eq!(days("12w"), Ok(84));
        assert_eq!(days("1y"), Ok(365));
        assert_eq!(days("100y"), Ok(36_500));
        assert!(days("101y").is_err());
        assert!(days("soon").is_err());
        assert!(days("-1d").is_err());
    }

    #[test]
    fn durations_with_units() {
        assert_eq!(duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(duration("90m"), Ok(Duration::from_mins(90)));
        assert_eq!(duration("24"), Ok(Duration::from_hours(24)));
        assert_eq!(duration("2d"), Ok(Duration::from_hours(48)));
        assert_eq!(duration("30d"), Ok(Duration::from_hours(720)));
        assert!(duration("31d").is_err());
        assert!(duration("forever").unwrap_err().contains("24h"));
    }

    #[test]
    fn cidrs_need_a_prefix_length() {
        assert_eq!(cidr("100.64.0.0/16").unwrap().prefix(), 16);
        assert!(cidr("100.64.0.0").is_err());
        assert!(cidr("100.64.0.0/33").is_err());
        assert!(cidr("fd00::/8").is_err());
    }
}
