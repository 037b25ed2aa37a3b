//! The OpenAPI v3 documents kubectl reads before it writes: for each type, a PATCH operation
//! that accepts `fieldValidation`, so kubectl leaves validation to the server (the fake holds
//! no schemas of the built-in types; custom resources are validated against their CRD).

use serde_json::{Map, Value, json};

use crate::resources::Kind;

fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// `/openapi/v3`: one entry per group version.
pub fn root<'a>(kinds: impl Iterator<Item = &'a Kind>) -> Value {
    let mut paths = Map::new();
    for k in kinds {
        let p = gv_path(&k.group, &k.version);
        let url = format!("/openapi/v3/{p}?hash=0");
        paths.insert(p, json!({"serverRelativeURL": url}));
    }
    json!({"paths": paths})
}

/// `/openapi/v3/api/v1`, `/openapi/v3/apis/GROUP/VERSION`.
pub fn group<'a>(kinds: impl Iterator<Item = &'a Kind>) -> Value {
    let mut paths = Map::new();
    for k in kinds {
        let gvk = json!([{"group": k.group, "version": k.version, "kind": k.kind}]);
        let op = json!({
            "x-kubernetes-group-version-kind": gvk[0],
            "parameters": [{"name": "fieldValidation", "in": "query", "schema": {"type": "string", "uniqueItems": true}}],
            "responses": {"200": {"description": "OK"}},
        });
        let base = format!("/{}", gv_path(&k.group, &k.version));
        let item = if k.namespaced {
            format!("{base}/namespaces/{{namespace}}/{}/{{name}}", k.plural)
        } else {
            format!("{base}/{}/{{name}}", k.plural)
        };
        paths.insert(item, json!({"patch": op, "put": op}));
    }
    json!({"openapi": "3.0.0", "info": {"title": "Kubernetes (eniplan fake)", "version": "v1.32.0"}, "paths": paths, "components": {"schemas": {}}})
}
