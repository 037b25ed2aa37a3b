//! Validation of custom resources against their CRD's structural schema (`openAPIV3Schema`), and
//! pruning of fields the schema does not declare, as the API server does on create and update.

use serde_json::Value;

fn type_ok(kind: &str, v: &Value) -> bool {
    match kind {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "boolean" => v.is_boolean(),
        "integer" => v.is_i64() || v.is_u64(),
        "number" => v.is_number(),
        _ => true,
    }
}

fn preserves(schema: &Value) -> bool {
    schema["x-kubernetes-preserve-unknown-fields"] == Value::Bool(true)
}

/// Validates `v` at `path` against `schema`, pushing one message per violation in the API
/// server's wording (`spec.subnet: Required value`).
fn check(schema: &Value, v: &mut Value, path: &str, errors: &mut Vec<String>) {
    if v.is_null() && schema["nullable"] == Value::Bool(true) {
        return;
    }
    if let Some(kind) = schema["type"].as_str()
        && !type_ok(kind, v)
    {
        let got = match v {
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::Number(_) => "number",
            Value::String(_) => "string",
            Value::Array(_) => "array",
            Value::Object(_) => "object",
        };
        errors.push(format!(
            "{path}: Invalid value: \"{got}\": {path} in body must be of type {kind}: \"{got}\""
        ));
        return;
    }
    if let Some(values) = schema["enum"].as_array()
        && !values.contains(v)
    {
        errors.push(format!("{path}: Unsupported value: {v}"));
    }
    match v {
        Value::Object(map) => {
            for r in schema["required"].as_array().into_iter().flatten() {
                if let Some(r) = r.as_str()
                    && !map.contains_key(r)
                {
                    errors.push(format!("{}: Required value", join(path, r)));
                }
            }
            let props = schema["properties"].as_object();
            let extra = &schema["additionalProperties"];
            let keep_unknown = preserves(schema);
            let mut prune = Vec::new();
            for (k, child) in map.iter_mut() {
                let at = join(path, k);
                if let Some(s) = props.and_then(|p| p.get(k)) {
                    check(s, child, &at, errors);
                } else if extra.is_object() {
                    check(extra, child, &at, errors);
                } else if !keep_unknown
                    && !(path.is_empty() && (k == "apiVersion" || k == "kind" || k == "metadata"))
                {
                    prune.push(k.clone());
                }
            }
            for k in prune {
                map.remove(&k);
            }
        }
        Value::Array(items) => {
            if let Some(max) = schema["maxItems"].as_u64()
                && items.len() as u64 > max
            {
                errors.push(format!(
                    "{path}: Too many: {}: must have at most {max} items",
                    items.len()
                ));
            }
            for (i, item) in items.iter_mut().enumerate() {
                check(&schema["items"], item, &format!("{path}[{i}]"), errors);
            }
        }
        Value::String(s) => {
            if let Some(max) = schema["maxLength"].as_u64()
                && s.chars().count() as u64 > max
            {
                errors.push(format!(
                    "{path}: Too long: may not be more than {max} bytes"
                ));
            }
        }
        _ => {}
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// Validates and prunes `object` in place; the errors, if any, in the API server's wording.
pub fn validate(schema: &Value, object: &mut Value) -> Vec<String> {
    let mut errors = Vec::new();
    check(schema, object, "", &mut errors);
    errors
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({"type": "object", "properties": {
            "spec": {"type": "object", "required": ["subnet"], "properties": {
                "subnet": {"type": "string"},
                "securityGroups": {"type": "array", "items": {"type": "string"}, "maxItems": 2}}}}})
    }

    #[test]
    fn required_fields_types_and_limits_are_enforced() {
        let mut o = json!({"spec": {"securityGroups": ["a", 1, "c"]}});
        let errors = validate(&schema(), &mut o);
        assert_eq!(errors.len(), 3, "{errors:?}");
        assert!(
            errors[0].starts_with("spec.subnet: Required value"),
            "{errors:?}"
        );
        assert!(
            errors.iter().any(|e| e.contains("spec.securityGroups[1]")),
            "{errors:?}"
        );
        assert!(errors.iter().any(|e| e.contains("at most 2")), "{errors:?}");
    }

    #[test]
    fn unknown_fields_are_pruned_unless_preserved() {
        let mut o = json!({"kind": "X", "spec": {"subnet": "s", "extra": 1}, "other": 2});
        assert!(validate(&schema(), &mut o).is_empty());
        assert_eq!(o, json!({"kind": "X", "spec": {"subnet": "s"}}));
        let mut s = schema();
        s["x-kubernetes-preserve-unknown-fields"] = json!(true);
        let mut o = json!({"spec": {"subnet": "s"}, "other": 2});
        assert!(validate(&s, &mut o).is_empty());
        assert_eq!(o["other"], 2);
    }
}
