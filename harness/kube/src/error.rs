//! Failures as the API server reports them: a `Status` object with the HTTP code, a reason
//! clients switch on (`NotFound`, `AlreadyExists`, `Conflict`, `Invalid`, `Expired`, …) and a
//! message in the API server's words.

use serde_json::{Value, json};

use crate::resources::Kind;

/// A failed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub code: u16,
    /// `Status.reason`.
    pub reason: &'static str,
    /// `Status.message`.
    pub message: String,
    /// `Status.details`.
    pub details: Value,
}

fn details(kind: &Kind, name: &str) -> Value {
    json!({"name": name, "group": kind.group, "kind": kind.plural})
}

impl ApiError {
    /// 404.
    pub fn not_found(kind: &Kind, name: &str) -> ApiError {
        ApiError {
            code: 404,
            reason: "NotFound",
            message: format!("{} \"{name}\" not found", resource(kind)),
            details: details(kind, name),
        }
    }

    /// 404 for a path that names no resource type.
    pub fn no_route(path: &str) -> ApiError {
        ApiError {
            code: 404,
            reason: "NotFound",
            message: format!("the server could not find the requested resource ({path})"),
            details: json!({}),
        }
    }

    /// 409 on create.
    pub fn exists(kind: &Kind, name: &str) -> ApiError {
        ApiError {
            code: 409,
            reason: "AlreadyExists",
            message: format!("{} \"{name}\" already exists", resource(kind)),
            details: details(kind, name),
        }
    }

    /// 409 on a stale update.
    pub fn conflict(kind: &Kind, name: &str) -> ApiError {
        ApiError {
            code: 409,
            reason: "Conflict",
            message: format!(
                "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again",
                resource(kind)
            ),
            details: details(kind, name),
        }
    }

    /// 422 with the field errors.
    pub fn invalid(kind: &Kind, name: &str, errors: &[String]) -> ApiError {
        let causes: Vec<Value> = errors
            .iter()
            .map(|e| {
                let (field, message) = e.split_once(": ").unwrap_or(("", e));
                json!({"reason": "FieldValueInvalid", "message": message, "field": field})
            })
            .collect();
        let mut d = details(kind, name);
        d["kind"] = kind.kind.clone().into();
        d["causes"] = causes.into();
        ApiError {
            code: 422,
            reason: "Invalid",
            message: format!("{} \"{name}\" is invalid: {}", kind.kind, errors.join(", ")),
            details: d,
        }
    }

    /// 422 for a patch that cannot be applied.
    pub fn unprocessable(message: String) -> ApiError {
        ApiError {
            code: 422,
            reason: "Invalid",
            message,
            details: json!({}),
        }
    }

    /// 400.
    pub fn bad_request(message: String) -> ApiError {
        ApiError {
            code: 400,
            reason: "BadRequest",
            message,
            details: json!({}),
        }
    }

    /// 410: the requested version has been compacted away.
    pub fn expired(rv: u64, oldest: u64) -> ApiError {
        ApiError {
            code: 410,
            reason: "Expired",
            message: format!("too old resource version: {rv} ({oldest})"),
            details: json!({}),
        }
    }

    /// 429: client-side throttling was not enough.
    pub fn throttled() -> ApiError {
        ApiError {
            code: 429,
            reason: "TooManyRequests",
            message: "Too many requests, please try again later.".into(),
            details: json!({"retryAfterSeconds": 1}),
        }
    }

    /// 405.
    pub fn method(method: &str, path: &str) -> ApiError {
        ApiError {
            code: 405,
            reason: "MethodNotAllowed",
            message: format!(
                "the server does not allow this method on the requested resource ({method} {path})"
            ),
            details: json!({}),
        }
    }

    /// 415.
    pub fn media_type(content_type: &str) -> ApiError {
        ApiError {
            code: 415,
            reason: "UnsupportedMediaType",
            message: format!(
                "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json (got {content_type:?})"
            ),
            details: json!({}),
        }
    }

    /// The `Status` object.
    pub fn status(&self) -> Value {
        json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "details": self.details,
            "code": self.code,
        })
    }
}

fn resource(kind: &Kind) -> String {
    if kind.group.is_empty() {
        kind.plural.clone()
    } else {
        format!("{}.{}", kind.plural, kind.group)
    }
}
