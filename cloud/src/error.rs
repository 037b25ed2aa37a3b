//! `CloudError`: every EC2/IMDS failure, classified once.

use std::time::Duration;

use planner::pool::Failure;
use thiserror::Error;

/// Why an EC2 or IMDS call failed. Adapters classify SDK errors into these once; callers match
/// on the variant, never on strings.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum CloudError {
    /// `RequestLimitExceeded` (or the client-side budget ran out) after every retry.
    #[error(
        "{api}: throttled by EC2 (RequestLimitExceeded) after {attempts} attempts; lower the pool's churn or raise the account's limits"
    )]
    Throttled {
        /// The EC2 API.
        api: &'static str,
        /// Attempts made.
        attempts: u32,
    },
    /// `InsufficientCidrBlocks`: no aligned free /28 in the subnet.
    #[error(
        "{api}: InsufficientCidrBlocks: the subnet has no free, aligned /28 for a prefix ({message}); use a larger or dedicated subnet, or reserve prefix space with a subnet CIDR reservation"
    )]
    InsufficientCidrBlocks {
        /// The EC2 API.
        api: &'static str,
        /// EC2's message.
        message: String,
    },
    /// `InsufficientFreeAddressesInSubnet`.
    #[error("{api}: InsufficientFreeAddressesInSubnet: the subnet is out of addresses ({message})")]
    InsufficientFreeAddresses {
        /// The EC2 API.
        api: &'static str,
        /// EC2's message.
        message: String,
    },
    /// `PrivateIpAddressLimitExceeded`: the ENI holds its maximum of addresses and prefixes.
    #[error("{api}: PrivateIpAddressLimitExceeded: the ENI is full ({message})")]
    IpLimitExceeded {
        /// The EC2 API.
        api: &'static str,
        /// EC2's message.
        message: String,
    },
    /// `AttachmentLimitExceeded`: the instance has no free ENI slot.
    #[error("{api}: AttachmentLimitExceeded: the instance has no free ENI slot ({message})")]
    AttachmentLimitExceeded {
        /// The EC2 API.
        api: &'static str,
        /// EC2's message.
        message: String,
    },
    /// A resource does not exist (`*.NotFound`).
    #[error("{api}: {code}: {message}")]
    NotFound {
        /// The EC2 API.
        api: &'static str,
        /// EC2's code, e.g. `InvalidNetworkInterfaceID.NotFound`.
        code: String,
        /// EC2's message.
        message: String,
    },
    /// The caller lacks an IAM permission.
    #[error(
        "{api}: UnauthorizedOperation: the node's role lacks the IAM action {action}; add it to the policy (docs/iam-policy.json)"
    )]
    Unauthorized {
        /// The EC2 API.
        api: &'static str,
        /// The missing IAM action, e.g. `ec2:AssignPrivateIpAddresses`.
        action: String,
    },
    /// EC2 refused the credentials themselves, not a permission: expired or rotated (an IRSA or
    /// Pod Identity token past its life, a revoked key), or signed with a clock far off EC2's.
    /// The SDK's provider chain fetches fresh credentials; the engine retries on its next tick.
    #[error(
        "{api}: {code}: EC2 refused ipamd's credentials ({message}): they expired or were rotated, or the node's clock is off; the AWS SDK fetches fresh ones from its chain (IRSA, Pod Identity, the instance role), so check that source and the node's time"
    )]
    Credentials {
        /// The EC2 API.
        api: &'static str,
        /// EC2's code (`AuthFailure`, `ExpiredToken`, `RequestExpired`, …).
        code: String,
        /// EC2's message.
        message: String,
    },
    /// EC2 refused a parameter (`InvalidParameterValue`, `InvalidParameterCombination`, an
    /// attached ENI that cannot be deleted, …).
    #[error("{api}: {code}: {message}")]
    Invalid {
        /// The EC2 API.
        api: &'static str,
        /// EC2's code.
        code: String,
        /// EC2's message.
        message: String,
    },
    /// A 5xx, a timeout or a connection failure that persisted through every retry.
    #[error("{api}: transient failure after {attempts} attempts: {message}")]
    Transient {
        /// The EC2 API (or `IMDS`).
        api: &'static str,
        /// Attempts made.
        attempts: u32,
        /// The last error, with its cause chain.
        message: String,
    },
    /// A response lacked a field eniplan needs.
    #[error("{api}: the response has no {field}")]
    MissingField {
        /// The EC2 API (or `IMDS`).
        api: &'static str,
        /// The field, e.g. `NetworkInterface.NetworkInterfaceId`.
        field: &'static str,
    },
    /// A response field could not be parsed.
    #[error("{api}: cannot parse {field} {value:?}")]
    BadField {
        /// The EC2 API (or `IMDS`).
        api: &'static str,
        /// The field.
        field: &'static str,
        /// The value as received.
        value: String,
    },
    /// An instance type EC2 does not know.
    #[error("{api}: unknown instance type {name:?}")]
    UnknownInstanceType {
        /// The EC2 API.
        api: &'static str,
        /// The type.
        name: String,
    },
    /// Anything else EC2 said, with its code.
    #[error("{api}: {code}: {message}")]
    Other {
        /// The EC2 API.
        api: &'static str,
        /// EC2's code (or `unknown`).
        code: String,
        /// EC2's message, or the SDK error with its cause chain.
        message: String,
    },
    /// The client could not be configured (bad endpoint URL, …).
    #[error("configuration: {0}")]
    Config(String),
}

impl CloudError {
    /// Whether retrying the same call may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            CloudError::Throttled { .. } | CloudError::Transient { .. }
        )
    }

    /// The engine's view of the failure, for `planner::pool::Input::Outcome`.
    pub fn to_failure(&self) -> Failure {
        match self {
            CloudError::InsufficientCidrBlocks { .. } => Failure::InsufficientCidrBlocks,
            CloudError::InsufficientFreeAddresses { .. } => Failure::InsufficientFreeAddresses,
            CloudError::IpLimitExceeded { .. } => Failure::IpLimitExceeded,
            CloudError::AttachmentLimitExceeded { .. } => Failure::AttachmentLimitExceeded,
            CloudError::Throttled { .. } => Failure::Throttled,
            CloudError::NotFound { .. } => Failure::NotFound,
            CloudError::Unauthorized { action, .. } => Failure::Unauthorized {
                action: action.clone(),
            },
            other => Failure::Other {
                message: other.to_string(),
            },
        }
    }

    /// Classifies an EC2 error code and message, as every adapter must.
    ///
    /// ```
    /// use cloud::CloudError;
    /// let e = CloudError::from_code("AssignPrivateIpAddresses", "InsufficientCidrBlocks", "no /28");
    /// assert!(matches!(e, CloudError::InsufficientCidrBlocks { .. }));
    /// let e = CloudError::from_code("CreateNetworkInterface", "UnauthorizedOperation", "denied");
    /// assert_eq!(e.to_string().contains("ec2:CreateNetworkInterface"), true);
    /// ```
    pub fn from_code(api: &'static str, code: &str, message: &str) -> CloudError {
        let message = message.to_owned();
        match code {
            "RequestLimitExceeded" | "Throttling" | "ThrottlingException" => {
                CloudError::Throttled { api, attempts: 1 }
            }
            "InsufficientCidrBlocks" => CloudError::InsufficientCidrBlocks { api, message },
            "InsufficientFreeAddressesInSubnet" => {
                CloudError::InsufficientFreeAddresses { api, message }
            }
            "PrivateIpAddressLimitExceeded" => CloudError::IpLimitExceeded { api, message },
            "AttachmentLimitExceeded" => CloudError::AttachmentLimitExceeded { api, message },
            "AuthFailure"
            | "ExpiredToken"
            | "RequestExpired"
            | "InvalidClientTokenId"
            | "SignatureDoesNotMatch" => CloudError::Credentials {
                api,
                code: code.to_owned(),
                message,
            },
            "UnauthorizedOperation" | "AccessDenied" => CloudError::Unauthorized {
                api,
                action: format!("ec2:{api}"),
            },
            "InternalError" | "InternalFailure" | "ServiceUnavailable" | "Unavailable" => {
                CloudError::Transient {
                    api,
                    attempts: 1,
                    message: format!("{code}: {message}"),
                }
            }
            "InvalidInstanceType" => CloudError::UnknownInstanceType { api, name: message },
            c if c.ends_with(".NotFound") || c.ends_with("NotFound") => CloudError::NotFound {
                api,
                code: c.to_owned(),
                message,
            },
            c if c.starts_with("Invalid")
                || c == "OperationNotPermitted"
                || c == "MissingParameter" =>
            {
                CloudError::Invalid {
                    api,
                    code: c.to_owned(),
                    message,
                }
            }
            c => CloudError::Other {
                api,
                code: c.to_owned(),
                message,
            },
        }
    }

    /// Marks a retried error with the number of attempts made.
    #[must_use]
    pub fn after_attempts(self, n: u32) -> CloudError {
        match self {
            CloudError::Throttled { api, .. } => CloudError::Throttled { api, attempts: n },
            CloudError::Transient { api, message, .. } => CloudError::Transient {
                api,
                attempts: n,
                message,
            },
            other => other,
        }
    }
}

/// How long to wait before retry `attempt` (1-based): exponential from `base`, capped, with
/// "full jitter" drawn from `unit` in [0, 1).
///
/// ```
/// use std::time::Duration;
/// let d = cloud::backoff(3, Duration::from_millis(100), Duration::from_secs(5), 0.5);
/// assert_eq!(d, Duration::from_millis(200)); // 100 ms × 2² × 0.5
/// ```
pub fn backoff(attempt: u32, base: Duration, cap: Duration, unit: f64) -> Duration {
    let exp = base.saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
    exp.min(cap).mul_f64(unit.clamp(0.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_classified_once() {
        let api = "AssignPrivateIpAddresses";
        assert!(CloudError::from_code(api, "RequestLimitExceeded", "").is_retryable());
        assert!(CloudError::from_code(api, "InternalError", "boom").is_retryable());
        assert!(!CloudError::from_code(api, "InvalidParameterValue", "x").is_retryable());
        assert!(matches!(
            CloudError::from_code(api, "InvalidNetworkInterfaceID.NotFound", "gone"),
            CloudError::NotFound { .. }
        ));
        assert!(matches!(
            CloudError::from_code(api, "InvalidNetworkInterface.InUse", "attached"),
            CloudError::Invalid { .. }
        ));
        assert_eq!(
            CloudError::from_code(api, "PrivateIpAddressLimitExceeded", "").to_failure(),
            Failure::IpLimitExceeded
        );
        assert_eq!(
            CloudError::from_code(api, "UnauthorizedOperation", "").to_failure(),
            Failure::Unauthorized {
                action: "ec2:AssignPrivateIpAddresses".into()
            }
        );
    }

    #[test]
    fn backoff_grows_and_caps() {
        let base = Duration::from_millis(100);
        let cap = Duration::from_secs(1);
        assert_eq!(backoff(1, base, cap, 1.0), base);
        assert_eq!(backoff(4, base, cap, 1.0), Duration::from_millis(800));
        assert_eq!(backoff(9, base, cap, 1.0), cap);
        assert_eq!(backoff(9, base, cap, 0.0), Duration::ZERO);
    }
}
