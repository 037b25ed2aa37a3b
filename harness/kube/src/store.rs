//! The fake's storage: every object by type, namespace and name, one resource version counter
//! for all of them (as etcd's revision), and the recent changes watches replay.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use serde_json::{Value, json};
use tokio::sync::broadcast;

use crate::error::ApiError;
use crate::resources::Kind;
use crate::{patch, schema};

/// One write, as watches see it.
#[derive(Debug)]
pub struct Change {
    /// The resource version the write produced.
    pub rv: u64,
    /// `Kind::key` of the object's type.
    pub kind: String,
    /// The object before (`None` on create).
    pub old: Option<Value>,
    /// The object after (`None` on delete).
    pub new: Option<Value>,
}

/// Object identity: type key, namespace (empty when cluster-scoped), name.
type Key = (String, String, String);

/// How a PATCH body is to be read (by its content type).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchKind {
    /// `application/merge-patch+json`.
    Merge,
    /// `application/strategic-merge-patch+json`.
    Strategic,
    /// `application/json-patch+json`.
    Json,
}

/// The store.
pub struct Store {
    rv: u64,
    uid: u64,
    kinds: BTreeMap<String, Kind>,
    objects: BTreeMap<Key, Value>,
    history: VecDeque<Arc<Change>>,
    history_max: usize,
    /// Watches from a version older than this get 410 Gone.
    compacted: u64,
    changes: broadcast::Sender<Arc<Change>>,
}

fn now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

fn meta_str<'a>(o: &'a Value, field: &str) -> &'a str {
    o["metadata"][field].as_str().unwrap_or_default()
}

impl Store {
    /// An empty cluster with the built-in types and its usual namespaces.
    pub fn new(history_max: usize) -> Store {
        let (changes, _) = broadcast::channel(1 << 16);
        let mut s = Store {
            rv: 1,
            uid: 0,
            kinds: Kind::builtins().into_iter().map(|k| (k.key(), k)).collect(),
            objects: BTreeMap::new(),
            history: VecDeque::new(),
            history_max,
            compacted: 0,
            changes,
        };
        for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            let kind = s.kinds["/namespaces"].clone();
            s.create(&kind, "", json!({"metadata": {"name": ns}}))
                .expect("a fresh store takes its namespaces");
        }
        s
    }

    /// The current resource version.
    pub fn rv(&self) -> u64 {
        self.rv
    }

    /// The oldest version a watch may start from.
    pub fn compacted(&self) -> u64 {
        self.compacted
    }

    /// Forgets every change so far: a watch from any earlier version gets 410 Gone.
    pub fn compact(&mut self) {
        self.history.clear();
        self.compacted = self.rv;
    }

    /// Every type served, by key.
    pub fn kinds(&self) -> &BTreeMap<String, Kind> {
        &self.kinds
    }

    /// The type at `group`/`version`/`plural`.
    pub fn kind(&self, group: &str, version: &str, plural: &str) -> Option<&Kind> {
        self.kinds
            .get(&format!("{group}/{plural}"))
            .filter(|k| k.version == version)
    }

    /// Changes after `rv` of type `kind`, and a receiver for the ones to come (no gap between).
    pub fn since(
        &self,
        kind: &str,
        rv: u64,
    ) -> (Vec<Arc<Change>>, broadcast::Receiver<Arc<Change>>) {
        let past = self
            .history
            .iter()
            .filter(|c| c.rv > rv && c.kind == kind)
            .cloned()
            .collect();
        (past, self.changes.subscribe())
    }

    /// Every object of a type (in one namespace, or all), in name order.
    pub fn objects<'a>(
        &'a self,
        kind: &Kind,
        ns: Option<&'a str>,
    ) -> impl Iterator<Item = &'a Value> + 'a {
        let key = kind.key();
        self.objects
            .range((key.clone(), String::new(), String::new())..)
            .take_while(move |((k, _, _), _)| *k == key)
            .filter(move |((_, n, _), _)| ns.is_none_or(|ns| ns == n))
            .map(|(_, v)| v)
    }

    fn key(kind: &Kind, ns: &str, name: &str) -> Key {
        let ns = if kind.namespaced { ns } else { "" };
        (kind.key(), ns.to_owned(), name.to_owned())
    }

    /// One object.
    pub fn get(&self, kind: &Kind, ns: &str, name: &str) -> Result<Value, ApiError> {
        self.objects
            .get(&Store::key(kind, ns, name))
            .cloned()
            .ok_or_else(|| ApiError::not_found(kind, name))
    }

    fn record(&mut self, kind: &Kind, old: Option<Value>, new: Option<Value>) {
        let change = Arc::new(Change {
            rv: self.rv,
            kind: kind.key(),
            old,
            new,
        });
        self.history.push_back(Arc::clone(&change));
        while self.history.len() > self.history_max {
            if let Some(c) = self.history.pop_front() {
                self.compacted = c.rv;
            }
        }
        let _ = self.changes.send(change);
    }

    /// Validation every write of a type goes through: the custom resource schema, the identity
    /// fields, and what the built-in controllers this fake stands in for would add.
    fn admit(kind: &Kind, obj: &mut Value) -> Result<(), ApiError> {
        if !obj.is_object() {
            return Err(ApiError::bad_request(
                "the body is not a JSON object".into(),
            ));
        }
        obj["apiVersion"] = kind.api_version().into();
        obj["kind"] = kind.kind.clone().into();
        if let Some(schema) = &kind.schema {
            let errors = schema::validate(schema, obj);
            if !errors.is_empty() {
                return Err(ApiError::invalid(kind, meta_str(obj, "name"), &errors));
            }
        }
        if kind.kind == "Node" {
            sync_unschedulable_taint(obj);
        }
        if kind.kind == "CustomResourceDefinition" {
            Kind::from_crd(obj)
                .map_err(|e| ApiError::invalid(kind, meta_str(obj, "name"), &[e]))?;
        }
        Ok(())
    }

    /// Creates an object (`generateName` honoured); answers it as stored.
    pub fn create(&mut self, kind: &Kind, ns: &str, mut obj: Value) -> Result<Value, ApiError> {
        Store::admit(kind, &mut obj)?;
        if kind.namespaced
            && !self
                .objects
                .contains_key(&("/namespaces".into(), String::new(), ns.to_owned()))
        {
            return Err(ApiError::not_found(&self.kinds["/namespaces"], ns));
        }
        if meta_str(&obj, "name").is_empty() {
            let base = meta_str(&obj, "generateName").to_owned();
            if base.is_empty() {
                return Err(ApiError::invalid(
                    kind,
                    "",
                    &["metadata.name: Required value: name or generateName is required".into()],
                ));
            }
            obj["metadata"]["name"] = format!("{base}{:05x}", self.uid + 1).into();
        }
        let name = meta_str(&obj, "name").to_owned();
        let key = Store::key(kind, ns, &name);
        if self.objects.contains_key(&key) {
            return Err(ApiError::exists(kind, &name));
        }
        self.rv += 1;
        self.uid += 1;
        let m = &mut obj["metadata"];
        if kind.namespaced {
            m["namespace"] = ns.into();
        } else if let Some(m) = m.as_object_mut() {
            m.remove("namespace");
        }
        m["uid"] = format!("00000000-0000-4000-8000-{:012x}", self.uid).into();
        m["resourceVersion"] = self.rv.to_string().into();
        m["creationTimestamp"] = now().into();
        m["generation"] = 1.into();
        match kind.kind.as_str() {
            "Pod" => {
                obj["status"] = json!({"phase": "Pending", "qosClass": "BestEffort"});
            }
            "Namespace" => obj["status"] = json!({"phase": "Active"}),
            "CustomResourceDefinition" => {
                obj["status"] = json!({"conditions": [
                    {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found"},
                    {"type": "Established", "status": "True", "reason": "InitialNamesAccepted", "message": "the initial names have been accepted"}],
                    "acceptedNames": obj["spec"]["names"].clone(), "storedVersions": [obj["spec"]["versions"][0]["name"].clone()]});
                let served = Kind::from_crd(&obj).expect("admitted");
                self.kinds.insert(served.key(), served);
            }
            _ if kind.status && kind.schema.is_some() => {
                if let Some(o) = obj.as_object_mut() {
                    o.remove("status");
                }
            }
            _ => {}
        }
        self.objects.insert(key, obj.clone());
        self.record(kind, None, Some(obj.clone()));
        Ok(obj)
    }

    /// Replaces an object (PUT). A stale `metadata.resourceVersion` is a 409 Conflict; with a
    /// status subresource, the main resource keeps its status and `/status` keeps the rest.
    pub fn replace(
        &mut self,
        kind: &Kind,
        ns: &str,
        name: &str,
        obj: Value,
        status_only: bool,
    ) -> Result<Value, ApiError> {
        let old = self.get(kind, ns, name)?;
        if meta_str(&obj, "name") != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({}) does not match the name on the URL ({name})",
                meta_str(&obj, "name")
            )));
        }
        let wanted = meta_str(&obj, "resourceVersion");
        if !wanted.is_empty() && wanted != meta_str(&old, "resourceVersion") {
            return Err(ApiError::conflict(kind, name));
        }
        let obj = split_status(kind, &old, obj, status_only);
        self.write(kind, ns, name, old, obj)
    }

    /// Applies a PATCH to an object; a `metadata.resourceVersion` in the patch is a
    /// precondition, as in the API server.
    pub fn patch(
        &mut self,
        kind: &Kind,
        ns: &str,
        name: &str,
        how: PatchKind,
        body: &Value,
        status_only: bool,
    ) -> Result<Value, ApiError> {
        let old = self.get(kind, ns, name)?;
        let mut obj = old.clone();
        match how {
            PatchKind::Merge => patch::merge(&mut obj, body),
            PatchKind::Strategic => patch::strategic(&mut obj, body),
            PatchKind::Json => {
                patch::json_patch(&mut obj, body).map_err(ApiError::unprocessable)?;
            }
        }
        let wanted = meta_str(&obj, "resourceVersion");
        if wanted != meta_str(&old, "resourceVersion") {
            return Err(ApiError::conflict(kind, name));
        }
        let obj = split_status(kind, &old, obj, status_only);
        self.write(kind, ns, name, old, obj)
    }

    fn write(
        &mut self,
        kind: &Kind,
        ns: &str,
        name: &str,
        old: Value,
        mut obj: Value,
    ) -> Result<Value, ApiError> {
        // Identity fields are the server's.
        for f in [
            "uid",
            "creationTimestamp",
            "namespace",
            "generation",
            "deletionTimestamp",
        ] {
            obj["metadata"][f] = old["metadata"][f].clone();
        }
        obj["metadata"]["name"] = name.into();
        Store::admit(kind, &mut obj)?;
        if let Some(m) = obj["metadata"].as_object_mut() {
            m.retain(|_, v| !v.is_null());
        }
        if obj == old {
            return Ok(old); // a no-op write changes nothing, not even the version
        }
        if obj["spec"] != old["spec"] {
            let g = old["metadata"]["generation"].as_u64().unwrap_or(1) + 1;
            obj["metadata"]["generation"] = g.into();
        }
        self.rv += 1;
        obj["metadata"]["resourceVersion"] = self.rv.to_string().into();
        if kind.kind == "CustomResourceDefinition" {
            let served = Kind::from_crd(&obj).expect("admitted");
            self.kinds.insert(served.key(), served);
        }
        self.objects.insert(Store::key(kind, ns, name), obj.clone());
        self.record(kind, Some(old), Some(obj.clone()));
        Ok(obj)
    }

    /// Deletes an object (at once: no kubelet or garbage collector waits on it). A
    /// `preconditions.resourceVersion` or `uid` that does not match is a 409 Conflict.
    pub fn delete(
        &mut self,
        kind: &Kind,
        ns: &str,
        name: &str,
        options: &Value,
    ) -> Result<Value, ApiError> {
        let old = self.get(kind, ns, name)?;
        let pre = &options["preconditions"];
        for f in ["resourceVersion", "uid"] {
            if let Some(want) = pre[f].as_str()
                && want != meta_str(&old, f)
            {
                return Err(ApiError::conflict(kind, name));
            }
        }
        self.objects.remove(&Store::key(kind, ns, name));
        if kind.kind == "CustomResourceDefinition"
            && let Ok(served) = Kind::from_crd(&old)
        {
            let doomed: Vec<Key> = self
                .objects
                .keys()
                .filter(|k| k.0 == served.key())
                .cloned()
                .collect();
            for k in doomed {
                if let Some(o) = self.objects.remove(&k) {
                    self.rv += 1;
                    self.record(&served, Some(o), None);
                }
            }
            self.kinds.remove(&served.key());
        }
        self.rv += 1;
        let mut gone = old.clone();
        gone["metadata"]["resourceVersion"] = self.rv.to_string().into();
        // A watch's DELETED event carries the object as it was, at the deletion's version.
        self.record(kind, Some(gone.clone()), None);
        Ok(gone)
    }
}

/// With a status subresource, a write to the main resource keeps the stored status and a write
/// to `/status` keeps everything else.
fn split_status(kind: &Kind, old: &Value, mut obj: Value, status_only: bool) -> Value {
    if !kind.status {
        return obj;
    }
    if status_only {
        let status = obj["status"].take();
        obj = old.clone();
        obj["status"] = status;
    } else {
        obj["status"] = old["status"].clone();
    }
    obj
}

/// The node lifecycle controller's `TaintNodesByCondition`: a cordoned node carries the
/// `node.kubernetes.io/unschedulable:NoSchedule` taint, an uncordoned one does not.
fn sync_unschedulable_taint(node: &mut Value) {
    const KEY: &str = "node.kubernetes.io/unschedulable";
    let cordoned = node["spec"]["unschedulable"] == Value::Bool(true);
    let mut taints: Vec<Value> = node["spec"]["taints"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let has = taints.iter().any(|t| t["key"] == KEY);
    if cordoned && !has {
        taints.push(json!({"key": KEY, "effect": "NoSchedule", "timeAdded": now()}));
    } else if !cordoned && has {
        taints.retain(|t| t["key"] != KEY);
    } else {
        return;
    }
    if taints.is_empty() {
        if let Some(spec) = node["spec"].as_object_mut() {
            spec.remove("taints");
        }
    } else {
        node["spec"]["taints"] = Value::Array(taints);
    }
}
