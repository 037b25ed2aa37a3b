//! PATCH bodies: JSON merge patch (RFC 7386), the strategic merge patch kubectl sends for
//! built-in types (lists with a merge key are merged by it), and JSON patch (RFC 6902).

use serde_json::{Map, Value};

/// RFC 7386: objects merge recursively, `null` deletes, anything else replaces.
pub fn merge(target: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let t = target.as_object_mut().expect("object");
    for (k, v) in p {
        if v.is_null() {
            t.remove(k);
        } else {
            merge(t.entry(k.clone()).or_insert(Value::Null), v);
        }
    }
}

/// The merge key of a list field in the built-in types eniplan's tests patch (from the
/// Kubernetes API's `patchMergeKey` tags).
fn merge_key(field: &str) -> Option<&'static str> {
    Some(match field {
        "taints" => "key",
        "conditions" | "addresses" => "type",
        "containers" | "initContainers" | "volumes" | "env" | "volumeMounts" => "name",
        "ports" => "containerPort",
        _ => return None,
    })
}

/// A strategic merge patch: as a merge patch, except that lists with a merge key merge element
/// by element (`$patch: delete` removes one), `$retainKeys` and `$setElementOrder` directives
/// are honoured or ignored as the API server does for these fields.
pub fn strategic(target: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if p.get("$patch").and_then(Value::as_str) == Some("replace") {
        let mut p = p.clone();
        p.remove("$patch");
        *target = Value::Object(p);
        return;
    }
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let t = target.as_object_mut().expect("object");
    for (k, v) in p {
        if k.starts_with('$') {
            continue;
        }
        match (v, merge_key(k)) {
            (Value::Null, _) => {
                t.remove(k);
            }
            (Value::Array(items), Some(key)) => {
                let list = t
                    .entry(k.clone())
                    .or_insert_with(|| Value::Array(Vec::new()));
                if !list.is_array() {
                    *list = Value::Array(Vec::new());
                }
                let list = list.as_array_mut().expect("array");
                for item in items {
                    let id = &item[key];
                    let pos = list.iter().position(|e| &e[key] == id);
                    let delete = item.get("$patch").and_then(Value::as_str) == Some("delete");
                    match (pos, delete) {
                        (Some(i), true) => {
                            list.remove(i);
                        }
                        (None, true) => {}
                        (Some(i), false) => strategic(&mut list[i], item),
                        (None, false) => {
                            let mut fresh = Value::Null;
                            strategic(&mut fresh, item);
                            list.push(fresh);
                        }
                    }
                }
            }
            _ => strategic(t.entry(k.clone()).or_insert(Value::Null), v),
        }
    }
}

fn pointer_parts(path: &str) -> Result<Vec<String>, String> {
    let rest = path
        .strip_prefix('/')
        .ok_or_else(|| format!("JSON patch path {path:?} does not start with '/'"))?;
    Ok(rest
        .split('/')
        .map(|p| p.replace("~1", "/").replace("~0", "~"))
        .collect())
}

/// RFC 6902 `add`, `remove`, `replace` and `test` (what kubectl and controllers send).
pub fn json_patch(target: &mut Value, ops: &Value) -> Result<(), String> {
    let ops = ops
        .as_array()
        .ok_or("a JSON patch is a list of operations")?;
    for op in ops {
        let name = op["op"].as_str().unwrap_or_default();
        let path = op["path"]
            .as_str()
            .ok_or("a JSON patch operation needs a path")?;
        let mut parts = pointer_parts(path)?;
        let last = parts.pop().ok_or("empty JSON patch path")?;
        let parent = parts
            .iter()
            .try_fold(&mut *target, |v, p| match v {
                Value::Object(m) => m.get_mut(p),
                Value::Array(a) => p.parse::<usize>().ok().and_then(|i| a.get_mut(i)),
                _ => None,
            })
            .ok_or_else(|| format!("JSON patch path {path:?} does not exist"))?;
        let value = op.get("value").cloned().unwrap_or(Value::Null);
        match (name, parent) {
            ("test", p) => {
                if p.get(&last) != Some(&value) {
                    return Err(format!("JSON patch test failed at {path:?}"));
                }
            }
            ("add" | "replace", Value::Object(m)) => {
                m.insert(last, value);
            }
            ("add", Value::Array(a)) if last == "-" => a.push(value),
            ("add" | "replace", Value::Array(a)) => {
                let i: usize = last.parse().map_err(|_| format!("bad index in {path:?}"))?;
                if i > a.len() || (name == "replace" && i == a.len()) {
                    return Err(format!("JSON patch index out of range in {path:?}"));
                }
                if name == "replace" {
                    a[i] = value;
                } else {
                    a.insert(i, value);
                }
            }
            ("remove", Value::Object(m)) => {
                m.remove(&last)
                    .ok_or_else(|| format!("JSON patch path {path:?} does not exist"))?;
            }
            ("remove", Value::Array(a)) => {
                let i: usize = last.parse().map_err(|_| format!("bad index in {path:?}"))?;
                if i >= a.len() {
                    return Err(format!("JSON patch index out of range in {path:?}"));
                }
                a.remove(i);
            }
            (other, _) => {
                return Err(format!(
                    "unsupported JSON patch operation {other:?} at {path:?}"
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_deletes_with_null_and_replaces_lists() {
        let mut v = json!({"metadata": {"labels": {"a": "1", "b": "2"}}, "l": [1, 2]});
        merge(
            &mut v,
            &json!({"metadata": {"labels": {"a": null, "c": "3"}}, "l": [3]}),
        );
        assert_eq!(
            v,
            json!({"metadata": {"labels": {"b": "2", "c": "3"}}, "l": [3]})
        );
    }

    #[test]
    fn strategic_patch_merges_taints_by_key() {
        let mut node = json!({"spec": {"taints": [{"key": "a", "effect": "NoSchedule"}]}});
        strategic(
            &mut node,
            &json!({"spec": {"$setElementOrder/taints": [{"key": "a"}, {"key": "b"}],
                     "taints": [{"key": "b", "effect": "NoExecute"}]}}),
        );
        assert_eq!(
            node["spec"]["taints"],
            json!([{"key": "a", "effect": "NoSchedule"}, {"key": "b", "effect": "NoExecute"}])
        );
        strategic(
            &mut node,
            &json!({"spec": {"taints": [{"key": "a", "$patch": "delete"}]}}),
        );
        assert_eq!(
            node["spec"]["taints"],
            json!([{"key": "b", "effect": "NoExecute"}])
        );
    }

    #[test]
    fn json_patch_applies_operations_in_order_and_fails_whole() {
        let mut v = json!({"metadata": {"finalizers": ["x"]}});
        json_patch(
            &mut v,
            &json!([{"op": "add", "path": "/metadata/finalizers/-", "value": "y"},
                    {"op": "remove", "path": "/metadata/finalizers/0"}]),
        )
        .unwrap();
        assert_eq!(v, json!({"metadata": {"finalizers": ["y"]}}));
        let err = json_patch(&mut v, &json!([{"op": "remove", "path": "/nope"}])).unwrap_err();
        assert!(err.contains("/nope"), "{err}");
    }
}
