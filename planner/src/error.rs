//! The planner's one error type.

use thiserror::Error;

/// Everything the planner can refuse. Each variant carries the offending value.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum Error {
    /// The instance type is not in the embedded catalogue.
    #[error("unknown instance type {name:?}; {}", suggest(suggestions))]
    UnknownInstanceType {
        /// The name as the user gave it.
        name: String,
        /// Close names from the catalogue, best first (may be empty).
        suggestions: Vec<String>,
    },
    /// A shell-style pattern is malformed.
    #[error("invalid instance-type pattern {pattern:?}: {reason}")]
    InvalidPattern {
        /// The pattern as given.
        pattern: String,
        /// What the pattern parser objected to.
        reason: String,
    },
    /// A pattern matched no instance type.
    #[error(
        "pattern {pattern:?} matches no instance type; patterns use shell syntax (*, ?, [..]) over names such as m5.large, e.g. 'm5.*'"
    )]
    PatternMatchesNothing {
        /// The pattern as given.
        pattern: String,
    },
    /// A VPC CNI version string could not be parsed.
    #[error("invalid CNI version {value:?}: expected MAJOR.MINOR[.PATCH] such as 1.19.0 (a leading 'v' and a '-suffix' are allowed)")]
    InvalidCniVersion {
        /// The string as given.
        value: String,
    },
    /// `MAX_ENI` / `--max-eni` must allow at least one ENI.
    #[error("invalid max ENIs {value}: must be at least 1 (leave it unset to use the instance type's limit)")]
    InvalidMaxEni {
        /// The value as given.
        value: u32,
    },
}

fn suggest(suggestions: &[String]) -> String {
    match suggestions {
        [] => "run `eniplan instance-types` to list the known types".to_owned(),
        [one] => format!("did you mean {one}?"),
        [init @ .., last] => format!("did you mean {} or {last}?", init.join(", ")),
    }
}

/// Shorthand used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_type_message_lists_suggestions() {
        let e = Error::UnknownInstanceType {
            name: "m5.lrge".into(),
            suggestions: vec!["m5.large".into()],
        };
        assert_eq!(e.to_string(), r#"unknown instance type "m5.lrge"; did you mean m5.large?"#);
        let e = Error::UnknownInstanceType {
            name: "m5.x".into(),
            suggestions: vec!["m5.large".into(), "m5.xlarge".into(), "m6.xlarge".into()],
        };
        assert_eq!(
            e.to_string(),
            r#"unknown instance type "m5.x"; did you mean m5.large, m5.xlarge or m6.xlarge?"#
        );
        let e = Error::UnknownInstanceType { name: "zz".into(), suggestions: vec![] };
        assert!(e.to_string().contains("eniplan instance-types"));
    }
}
